"""Measure the toy model: does it draw what the caption says, and does its VAE reconstruct toy frames."""

from __future__ import annotations

import itertools
import json
import logging
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from videop2p.config import COUNT_MAX, EditConfig, InversionConfig, check_edit, check_inversion, check_number
from videop2p.metrics import psnr
from videop2p.progress import progress_bar
from videop2p.toy.checker import read_image
from videop2p.toy.data import object_cells, splice, to_tensor, to_uint8
from videop2p.toy.settings import TOY_EVAL_SEEDS
from videop2p.toy.world import Background, Color, Shape, ToyObject, caption_for, random_spec, render_clip

logger = logging.getLogger(__name__)


@torch.no_grad()
def vae_psnr(pipe, n: int = 128, seed: int = 123) -> float:
    """Mean PSNR of VAE reconstructions (posterior mean) of random toy frames."""
    rng = np.random.default_rng(seed)
    frames = np.stack([render_clip(random_spec(rng, frames=1)).frames[0] for _ in range(n)])
    x = to_tensor(frames).to(pipe.vae.device)  # (N, 3, H, W) in [-1, 1]
    y = pipe.vae.decode(pipe.vae.encode(x).latent_dist.mean).sample
    return float(np.mean([psnr(a, b) for a, b in zip(frames, to_uint8(y), strict=True)]))


@torch.no_grad()
def pasted_round_trip(vae, images: np.ndarray, masks: np.ndarray, grow: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Latents pasted as local blending pastes them, and what a VAE should decode them into.

    Each frame's object cells (the latent cells holding any of its mask's pixels, grown by `grow`) are
    pasted over the next frame's latents (posterior means) and decoded; the expected frame is the two
    frames' pixels pasted along the same cells. images (N, H, W, 3) uint8, masks (N, H, W) bool;
    returns (decoded, expected), (N, 3, H, W) in [-1, 1] each.
    """
    x = to_tensor(images).to(vae.device)
    nxt = torch.roll(torch.arange(len(x)), -1)
    z = vae.encode(x).latent_dist.mean
    cells = object_cells(torch.from_numpy(masks), x.shape[-1] // z.shape[-1], [grow] * len(x)).to(x)
    return vae.decode(splice(z, z[nxt], cells)).sample, splice(x, x[nxt], cells)


def colours_kept(frames: np.ndarray, images: np.ndarray, masks: np.ndarray) -> float:
    """Share of `frames` (N, H, W, 3) uint8 whose object (at its mask in `images`) the judge reads in its own colour."""
    pairs = zip(frames, images, masks, strict=True)
    return float(np.mean([read_image(f, m).color == read_image(i, m).color for f, i, m in pairs]))


def check_eval_inputs(model_path: str | Path, seeds: int, steps: int, guidance: float, device: str) -> None:
    """Refuse, before loading anything, a model folder that is not there, a seed count below 1, steps or
    guidance out of range (a run's own checks, OptionError naming them) and a device this machine lacks."""
    from diffusers import DDIMScheduler

    from videop2p.models.loading import check_device, check_model_path, check_scheduler_config
    from videop2p.sampling import check_steps

    check_number(None, "seeds", seeds, 1, whole=True, cap=COUNT_MAX)
    check_inversion(InversionConfig(steps=steps))
    check_edit(EditConfig(guidance=guidance))
    check_device(device)
    check_model_path(model_path)  # its parts and their weights
    if not (Path(model_path) / "model_index.json").is_file():  # what StableDiffusionPipeline reads first
        raise ValueError(f"{model_path} is not a model folder (it has no model_index.json).")
    parts = json.loads((Path(model_path) / "model_index.json").read_text())  # valid: `check_model_path` read it
    for name, part in parts.items():  # [library, class] per component; a tuned video model's UNet is tuneavideo's
        if isinstance(part, list) and len(part) == 2 and part[0] not in (None, "diffusers", "transformers"):
            raise ValueError(
                f"{model_path} is not an image model: its {name} is {part[0]}'s {part[1]} (a Tune-A-Video or "
                "Video-P2P folder); `toy eval` judges an image model's folder, such as `videop2p toy train`'s."
            )
    scheduler_config = DDIMScheduler.load_config(model_path, subfolder="scheduler")
    check_scheduler_config(scheduler_config, Path(model_path).name)
    check_steps(DDIMScheduler.from_config(scheduler_config), steps)


def evaluate_model(
    model_path: str | Path,
    seeds: int = TOY_EVAL_SEEDS,
    steps: int = InversionConfig.steps,
    guidance: float = EditConfig.guidance,
    progress: bool = True,
    device: str = "cpu",
) -> dict:
    """Generate every (shape, colour, background) caption with `seeds` seeds and judge with the checker.

    The step count and guidance default to the ones Video-P2P samples with (50 DDIM steps, 7.5), so a
    model is judged as the product uses it.

    The initial noise is drawn on the CPU, so a GPU judges the same images as the CPU up to rounding.
    """
    from videop2p.models.loading import image_pipeline, load_components

    check_eval_inputs(model_path, seeds, steps, guidance, device)
    c = load_components(model_path, device=device)  # every weight checked, sampled with DDIM as the product does
    pipe = image_pipeline(c.tokenizer, c.text_encoder, c.vae, c.unet, c.scheduler)
    pipe.set_progress_bar_config(disable=True)
    combos = list(itertools.product(Shape, Color, Background))
    size = c.info.native_size  # the model's native side, as every run reads it
    hits = defaultdict(list)
    per_value = defaultdict(list)
    for seed in progress_bar(range(seeds), desc="toy eval", disable=not progress):
        prompts = [caption_for([ToyObject(s, c)], b) for s, c, b in combos]
        gen = torch.Generator().manual_seed(seed)
        images = pipe(
            prompts,
            num_inference_steps=steps,
            guidance_scale=guidance,
            height=size,
            width=size,
            generator=gen,
            output_type="np",
        ).images
        for (s, c, b), img in zip(combos, images, strict=True):
            r = read_image((img * 255).round().astype(np.uint8))
            for attr, want, got in (("shape", s, r.shape), ("color", c, r.color), ("background", b, r.background)):
                hits[attr].append(want == got)
                per_value[f"{attr}={want.value}"].append(want == got)
    return {
        "images": len(combos) * seeds,
        "accuracy": {k: float(np.mean(v)) for k, v in hits.items()},
        "per_value": {k: float(np.mean(v)) for k, v in sorted(per_value.items())},
        "vae_psnr_db": vae_psnr(pipe),
        "steps": steps,
        "guidance": guidance,
    }


def format_report(result: dict) -> str:
    acc = result["accuracy"]
    lines = [
        f"images judged: {result['images']} (DDIM {result['steps']} steps, guidance {result['guidance']})",
        "| attribute | accuracy |",
        "|---|---|",
        *(f"| {k} | {v:.1%} |" for k, v in acc.items()),
        f"| VAE reconstruction PSNR | {result['vae_psnr_db']:.1f} dB |",
        "",
        "| value | accuracy |",
        "|---|---|",
        *(f"| {k} | {v:.0%} |" for k, v in result["per_value"].items()),
    ]
    return "\n".join(lines)
