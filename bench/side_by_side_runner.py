"""One side of `bench/side_by_side.py`: runs in the authors' virtual environment or in ours.

Commands (JSON results go to --json):
  build  DIR                 a tiny SD-1.5-shaped model with random weights (authors' environment:
                             diffusers 0.11 writes the .bin files both sides load)
  authors-tune / authors-p2p the authors' run_tuning.py / run_videop2p.py from a checkout
  ours                       videop2p's tune, invert and edit of the same clip

It imports nothing from videop2p unless it runs "ours", so the authors' environment needs none of
our dependencies. Stage times and peak resident memory are taken around the stages of one process;
the memory sampler reads /proc/self/status every 10 ms.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import json
import os
import sys
import threading
import time
import types
from pathlib import Path


class StageClock:
    """Wall time and peak RSS (MiB) of named consecutive stages of this process."""

    def __init__(self):
        self.stages: dict[str, dict] = {}
        self.tune_steps: list[float] = []  # when each tuning step ended
        self._name: str | None = None
        self._start = 0.0
        self._peak = 0.0
        self._stop = threading.Event()
        threading.Thread(target=self._sample, daemon=True).start()

    @staticmethod
    def rss_mib() -> float:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self._peak = max(self._peak, self.rss_mib())

    def mark(self, name: str | None) -> None:
        """End the current stage (if any) and start `name` (None: just end)."""
        now = time.perf_counter()
        if self._name is not None:
            self._peak = max(self._peak, self.rss_mib())
            self.stages[self._name] = {"seconds": now - self._start, "peak_mib": self._peak}
        self._name, self._start, self._peak = name, now, self.rss_mib()

    def close(self) -> dict:
        self.mark(None)
        self._stop.set()
        return self.stages


# ---------------------------------------------------------------- the authors' environment


def build_model(folder: Path, seed: int) -> None:
    """Tiny random model with SD 1.5's block structure, VAE and scheduler (512x512 -> 64x64 latents)."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    width = 64  # text width = cross-attention width
    unet = UNet2DConditionModel(
        sample_size=64,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        block_out_channels=(32, 64, 64, 64),
        layers_per_block=2,
        attention_head_dim=8,
        cross_attention_dim=width,
        norm_num_groups=32,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(32, 32, 64, 64),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=32,
        sample_size=512,
    )
    text = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=49408,
            hidden_size=width,
            intermediate_size=4 * width,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=77,
        )
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        num_train_timesteps=1000,
    )
    folder.mkdir(parents=True, exist_ok=True)
    unet.save_pretrained(folder / "unet")
    config = json.loads((folder / "unet" / "config.json").read_text())
    config.pop("mid_block_type", None)  # as SD 1.5's own config: Tune-A-Video reads the key's absence as its 3-D block
    (folder / "unet" / "config.json").write_text(json.dumps(config, indent=2))
    vae.save_pretrained(folder / "vae")
    text.save_pretrained(folder / "text_encoder")
    scheduler.save_pretrained(folder / "scheduler")
    (folder / "model_index.json").write_text(
        json.dumps(
            {
                "_class_name": "StableDiffusionPipeline",
                "_diffusers_version": "0.11.1",
                "scheduler": ["diffusers", "DDIMScheduler"],
                "text_encoder": ["transformers", "CLIPTextModel"],
                "tokenizer": ["transformers", "CLIPTokenizer"],
                "unet": ["diffusers", "UNet2DConditionModel"],
                "vae": ["diffusers", "AutoencoderKL"],
            }
        )
    )


def install_stand_ins(authors: Path) -> None:
    """The two stand-ins their code needs on a CPU: xformers' attention as torch SDPA on 4-D tensors
    (exactly where their code enables xformers), and torchvision's make_grid (for their gif writer)."""
    import torch.nn.functional as F

    def memory_efficient_attention(query, key, value, attn_bias=None, **_):
        # (B*heads, N, d) -> (1, B*heads, N, d): 3-D inputs make torch materialise the whole matrix
        out = F.scaled_dot_product_attention(query[None], key[None], value[None], attn_mask=attn_bias)
        return out[0]

    ops = types.ModuleType("xformers.ops")
    ops.memory_efficient_attention = memory_efficient_attention
    ops.__spec__ = importlib.machinery.ModuleSpec("xformers.ops", None)
    xformers = types.ModuleType("xformers")
    xformers.__spec__ = importlib.machinery.ModuleSpec("xformers", None)
    xformers.ops = ops
    xformers.__version__ = "0.0.16"
    sys.modules["xformers"], sys.modules["xformers.ops"] = xformers, ops

    def make_grid(x, nrow=8, padding=2):
        n, c, h, w = x.shape
        cols = min(nrow, n)
        rows = (n + cols - 1) // cols
        grid = x.new_zeros(c, rows * (h + padding) + padding, cols * (w + padding) + padding)
        for i in range(n):
            r, q = divmod(i, cols)
            top, left = r * (h + padding) + padding, q * (w + padding) + padding
            grid[:, top : top + h, left : left + w] = x[i]
        return grid

    if "torchvision" not in sys.modules:
        tv = types.ModuleType("torchvision")
        tv.utils = types.ModuleType("torchvision.utils")
        tv.utils.make_grid = make_grid
        sys.modules["torchvision"], sys.modules["torchvision.utils"] = tv, tv.utils

    sys.path.insert(0, str(authors))
    import diffusers.utils.import_utils as iu

    iu._xformers_available = True
    iu.is_xformers_available = lambda: True
    from tuneavideo.models import attention as tav_attention

    tav_attention.xformers = xformers
    tav_attention.is_xformers_available = lambda: True

    def enable(self, use: bool) -> None:  # their method, minus the CUDA probe
        self.attn1._use_memory_efficient_attention_xformers = use
        if self.attn2 is not None:
            self.attn2._use_memory_efficient_attention_xformers = use

    tav_attention.BasicTransformerBlock.set_use_memory_efficient_attention_xformers = enable
    from diffusers.models import attention as d_attention

    d_attention.xformers = xformers  # their blocks call diffusers' own xformers path

    for name in ("CrossAttention", "AttentionBlock"):  # diffusers' own blocks inside theirs
        cls = getattr(d_attention, name, None)
        if cls is not None and hasattr(cls, "set_use_memory_efficient_attention_xformers"):
            cls.set_use_memory_efficient_attention_xformers = lambda self, use, *a, **k: None
    try:
        from diffusers.models import cross_attention as d_cross

        d_cross.CrossAttention.set_use_memory_efficient_attention_xformers = lambda self, use, *a, **k: None
    except ImportError:
        pass


def authors_tune(a, clock: StageClock) -> None:
    from omegaconf import OmegaConf

    install_stand_ins(Path(a.authors))
    import run_tuning

    cfg = OmegaConf.create(
        {
            "pretrained_model_path": a.model,
            "output_dir": a.output,
            "train_data": {
                "video_path": a.clip,
                "prompt": a.source,
                "n_sample_frames": a.frames,
                "width": 512,
                "height": 512,
                "sample_start_idx": 0,
                "sample_frame_rate": 1,
            },
            "validation_data": {
                "prompts": [a.source],
                "video_length": a.frames,
                "width": 512,
                "height": 512,
                "num_inference_steps": 50,
                "guidance_scale": 12.5,
                "use_inv_latent": True,
                "num_inv_steps": 50,
            },
            "learning_rate": 3e-5,
            "train_batch_size": 1,
            "max_train_steps": a.tune_steps,
            "checkpointing_steps": 10**9,
            "validation_steps": 10**9,  # their configs validate at step 500; left out of the timing
            "trainable_modules": ["attn1.to_q", "attn2.to_q", "attn_temp"],
            "seed": 33,
            "mixed_precision": "no",
            "use_8bit_adam": False,
            "gradient_checkpointing": True,
            "enable_xformers_memory_efficient_attention": True,
        }
    )
    import torch

    step = torch.optim.AdamW.step

    def timed_step(self, *args, **kwargs):  # their optimiser's step ends each tuning step
        out = step(self, *args, **kwargs)
        clock.tune_steps.append(time.perf_counter())
        return out

    torch.optim.AdamW.step = timed_step
    clock.mark("tune")
    run_tuning.main(**cfg)


def authors_p2p(a, clock: StageClock) -> None:
    install_stand_ins(Path(a.authors))
    import ptp_utils
    import run_videop2p

    register = ptp_utils.register_attention_control

    def marked(model, controller):  # called with None as inversion starts, with the controller as editing starts
        clock.mark("invert" if controller is None else "edit")
        return register(model, controller)

    ptp_utils.register_attention_control = marked
    if a.inner_steps != 10:  # their invert() takes num_inner_steps=10 from its default
        import inspect

        original_main = run_videop2p.main
        source = inspect.getsource(original_main).replace(
            "null_inversion.invert(image_path, prompt, offsets=(0,0,0,0), verbose=True)",
            f"null_inversion.invert(image_path, prompt, offsets=(0,0,0,0), num_inner_steps={a.inner_steps}, verbose=True)",
        )
        namespace = run_videop2p.__dict__
        exec(compile(source, run_videop2p.__file__, "exec"), namespace)
    if a.steps != 50:  # their DDIM step count is a module constant, and their pipeline's default
        run_videop2p.NUM_DDIM_STEPS = a.steps
        pipeline_cls = run_videop2p.TuneAVideoPipeline
        call = pipeline_cls.__call__

        def with_steps(self, *args, **kwargs):
            kwargs.setdefault("num_inference_steps", a.steps)
            return call(self, *args, **kwargs)

        pipeline_cls.__call__ = with_steps
    clock.mark("load")
    run_videop2p.main(
        pretrained_model_path=a.output,
        image_path=a.clip,
        prompt=a.source,
        prompts=[a.source, a.target],
        eq_params={"words": [a.reweight_word], "values": [a.reweight]},
        save_name="edit",
        is_word_swap=False,
        blend_word=[a.blend, a.blend],
        video_len=a.frames,
        fast=a.fast,
    )


# ---------------------------------------------------------------- ours


def ours(a, clock: StageClock) -> None:
    """Tune once with the preset, then invert and edit in each of --modes (stages "invert:MODE", "edit:MODE")."""
    import dataclasses

    import torch

    from videop2p.config import EditConfig, VideoConfig, preset_config
    from videop2p.outputs import write_run_outputs
    from videop2p.pipeline import VideoP2P

    cfg = preset_config(a.preset)
    cfg.source, cfg.targets, cfg.quiet, cfg.force = a.source, [a.target], True, True
    cfg.video = VideoConfig(path=a.clip, frames=a.frames, width=512, height=512)
    cfg.tune.steps = a.tune_steps
    cfg.inversion.inner_steps = a.inner_steps
    cfg.inversion.steps = a.steps
    if a.null_text_frames is not None:  # 0: every frame
        cfg.inversion.frames = a.null_text_frames or None
    cfg.edit = EditConfig(blend=(a.blend, a.blend), reweight={a.reweight_word: a.reweight})
    cfg.tune.progress = cfg.inversion.progress = cfg.edit.progress = False
    torch.set_num_threads(a.threads)
    clock.mark("load")
    vp = VideoP2P.from_pretrained(a.model, "cpu", "float32", str(Path(a.output) / "workspace"))
    clip = vp.load_clip(cfg.video)
    clock.mark("tune")
    model, _ = vp.tune(clip, cfg.source, cfg.tune, True, lambda *_: clock.tune_steps.append(time.perf_counter()))
    for mode in a.modes:
        run = dataclasses.replace(cfg, out=str(Path(a.output) / mode))
        run.inversion = dataclasses.replace(cfg.inversion, method=mode)
        clock.mark(f"invert:{mode}")
        inversion, r_inv = vp.invert(model, clip, run.source, run.inversion, True)
        clock.mark(f"edit:{mode}")
        out, r_edit = vp.edit(model, inversion, run.source, run.targets, run.edit, True)
        write_run_outputs(run, clip, out, [r_inv, r_edit], vp.components.info)
        del inversion, out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["build", "authors-tune", "authors-p2p", "ours"])
    p.add_argument("--json", required=True)
    p.add_argument("--authors", default="")
    p.add_argument("--model", default="")
    p.add_argument("--output", default="")
    p.add_argument("--clip", default="")
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--source", default="")
    p.add_argument("--target", default="")
    p.add_argument("--blend", default="")
    p.add_argument("--reweight-word", default="")
    p.add_argument("--reweight", type=float, default=2.0)
    p.add_argument("--tune-steps", type=int, default=500)
    p.add_argument("--inner-steps", type=int, default=10)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--fast", action="store_true")
    p.add_argument("--preset", default="official")
    p.add_argument("--modes", nargs="+", default=["fast", "null-text"])
    p.add_argument("--null-text-frames", type=int, default=None)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    clock = StageClock()
    started = time.perf_counter()
    if a.command == "build":
        build_model(Path(a.model), a.seed)
    elif a.command == "authors-tune":
        authors_tune(a, clock)
    elif a.command == "authors-p2p":
        authors_p2p(a, clock)
    else:
        ours(a, clock)
    stages = clock.close()
    gaps = sorted(later - earlier for earlier, later in zip(clock.tune_steps, clock.tune_steps[1:], strict=False))
    result = {
        "command": a.command,
        "stages": stages,
        "seconds": time.perf_counter() - started,
        "tune_step_seconds": gaps[len(gaps) // 2] if gaps else None,  # median; the first step's warm-up left out
        "tune_steps": a.tune_steps if "tune" in stages else None,
    }
    Path(a.json).write_text(json.dumps(result, indent=1))
    os._exit(0)  # their accelerate trackers and our samplers: nothing left to wait for


if __name__ == "__main__":
    main()
