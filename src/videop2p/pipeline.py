"""The Python API: load a model once, then tune, invert and edit clips, reusing a workspace."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml
from safetensors import SafetensorError

from videop2p.config import RunConfig, VideoConfig, to_plain
from videop2p.editing import EditConfig, EditResult, edit, load_edit_result, save_edit_result
from videop2p.inversion import (
    NOT_SETTINGS,
    InversionConfig,
    InversionMismatchError,
    InversionResult,
    invert,
    load_inversion,
    save_inversion,
)
from videop2p.io.video import read_video, resize_frames, resolve_size, side_by_side, write_video
from videop2p.latents import decode_latents, encode_posterior, encode_prompts, frames_hash
from videop2p.models.attention import FrameAttentionMode
from videop2p.models.loading import SDComponents, load_components
from videop2p.models.t2s import T2SModel
from videop2p.outputs import attention_grid, mask_overlay, report_markdown, upsample_masks
from videop2p.progress import StepHook
from videop2p.sampling import EvalCounter
from videop2p.tuning import DeltaMismatchError, TuneConfig, delta_metadata, load_delta, save_delta, tune
from videop2p.workspace import Workspace, key_of

logger = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass
class Clip:
    """Selected, resized frames of a clip."""

    frames: np.ndarray  # (F, H, W, 3) uint8
    fps: float  # frame rate for writing
    digest: str  # content hash of the frames
    posterior: tuple[torch.Tensor, torch.Tensor] | None = None  # scaled VAE mean and std, (1, F, C, h, w) each

    @property
    def size(self) -> tuple[int, int]:
        return int(self.frames.shape[2]), int(self.frames.shape[1])


@dataclass
class EditOutput:
    """Decoded results of one editing pass."""

    reconstruction: np.ndarray  # (F, H, W, 3)
    edits: list[np.ndarray]  # per target, (F, H, W, 3)
    result: EditResult  # latents, masks, maps, counts


def parse_dtype(name: str) -> torch.dtype:
    if name not in _DTYPES:
        raise ValueError(f"dtype {name!r} is not one of {', '.join(_DTYPES)}.")
    return _DTYPES[name]


class VideoP2P:
    """Video-P2P with a loaded model: `tune`, `invert`, `edit`, or `run` for all three."""

    def __init__(
        self,
        components: SDComponents,
        workspace: Workspace | None = None,
        frame_mode: FrameAttentionMode | str = FrameAttentionMode.FIRST,
        attention_slicing: int | None = None,
    ):
        self.components = components
        self.workspace = workspace
        self.frame_mode = FrameAttentionMode(frame_mode)
        self.attention_slicing = attention_slicing  # query chunk of every attention layer; None: off

    @classmethod
    def from_pretrained(
        cls,
        model: str | None = None,
        device: str = "cpu",
        dtype: str = "float32",
        workspace: str | Path | None = None,
        frame_mode: str = "first",
        attention_slicing: int | None = None,
    ) -> VideoP2P:
        """Load a model (None: the bundled toy model); `workspace` enables reuse between runs."""
        components = load_components(model, device=device, dtype=parse_dtype(dtype))
        return cls(components, Workspace(Path(workspace)) if workspace else None, frame_mode, attention_slicing)

    @property
    def device(self) -> torch.device:
        return self.components.unet.device

    # -- input -------------------------------------------------------------------------------------
    def load_clip(self, video: VideoConfig) -> Clip:
        """Read, select and resize frames to a size the model allows."""
        raw = read_video(video.path, video.start, video.frames, video.stride)
        info = self.components.info
        width, height = resolve_size(raw.size, video.width, video.height, info.native_size, info.size_multiple)
        frames = resize_frames(raw.frames, width, height, video.resize)
        return Clip(frames=frames, fps=raw.fps, digest=frames_hash(frames))

    def posterior(self, clip: Clip) -> tuple[torch.Tensor, torch.Tensor]:
        """Scaled VAE posterior of the clip, encoded once per clip and kept on it."""
        if clip.posterior is None:
            clip.posterior = encode_posterior(self.components, clip.frames)
        return clip.posterior

    def clip_key(self, clip: Clip, prompt: str, cfg: TuneConfig) -> dict:
        return {
            "frames_hash": clip.digest,
            "model": self.components.info.fingerprint,  # the weights, wherever they were loaded from
            "size": list(clip.size),
            "num_frames": len(clip.frames),
            "prompt": prompt,
            "frame_mode": self.frame_mode.value,
            "tune": {"steps": cfg.steps, "lr": cfg.lr, "seed": cfg.seed, "mixed_precision": cfg.mixed_precision},
        }

    # -- stage 1 -----------------------------------------------------------------------------------
    def tune(
        self,
        clip: Clip,
        prompt: str,
        cfg: TuneConfig | None = None,
        force: bool = False,
        on_step: StepHook | None = None,
    ) -> T2SModel:
        """The T2S model tuned on `clip`; loaded from the workspace when it has it."""
        cfg = cfg or TuneConfig()
        started = time.perf_counter()
        model = T2SModel.from_image_unet(self.components.unet, self.frame_mode)
        if self.attention_slicing is not None:
            model.set_attention_slicing(self.attention_slicing)
        meta = delta_metadata(
            self.components, len(clip.frames), clip.size, prompt, clip.digest, cfg, self.frame_mode.value
        )
        path = self.workspace.tune_path(self.clip_key(clip, prompt, cfg)) if self.workspace else None
        reusable = path is not None and path.exists() and not force
        if reusable and self._reuse("tune", path, lambda: load_delta(model, path, expected=meta), started) is not None:
            return model
        if cfg.steps > 0:
            posterior = self.posterior(clip)
            text = encode_prompts(self.components, [prompt])
            tune(model, self.components, posterior, text, cfg, on_step)
        if path is not None:
            self._keep("tune", path, lambda: save_delta(model, path, meta), started)
        return model

    # -- stage 2 -----------------------------------------------------------------------------------
    def invert(
        self,
        model: T2SModel,
        clip: Clip,
        prompt: str,
        cfg: InversionConfig | None = None,
        force: bool = False,
        tune_cfg: TuneConfig | None = None,
        on_step: StepHook | None = None,
    ) -> InversionResult:
        """Invert `clip` with `prompt`; loaded from the workspace when it has it."""
        cfg = cfg or InversionConfig()
        started = time.perf_counter()
        settings = {k: (v.value if hasattr(v, "value") else v) for k, v in vars(cfg).items() if k not in NOT_SETTINGS}
        expected = {"prompt": prompt, "frames_hash": clip.digest, "model": self.components.info.fingerprint}
        path = None
        if self.workspace is not None:
            path = self.workspace.inversion_path(
                self.clip_key(clip, prompt, tune_cfg or TuneConfig()), {**expected, **settings}
            )
            if path.exists() and not force:
                reused = self._reuse(
                    "invert", path, lambda: load_inversion(path, expected=expected, device=self.device), started
                )
                if reused is not None:
                    return reused
        z0, _ = self.posterior(clip)
        cond = encode_prompts(self.components, [prompt])
        empty = encode_prompts(self.components, [""])
        result = invert(model, self.components.scheduler, z0, cond, empty, cfg, meta=expected, on_step=on_step)
        if path is not None:
            self._keep("invert", path, lambda: save_inversion(result, path), started)
        return result

    # -- stage 3 -----------------------------------------------------------------------------------
    def edit(
        self,
        model: T2SModel,
        inversion: InversionResult,
        source: str,
        targets: list[str],
        cfg: EditConfig | None = None,
        on_step: StepHook | None = None,
    ) -> EditOutput:
        """Edit with decoupled guidance and attention control; decoded frames of every branch."""
        result = edit(
            model, self.components, inversion, source, targets, cfg or EditConfig(), EvalCounter(), on_step=on_step
        )
        frames = decode_latents(self.components, result.latents)  # (1 + K, F, H, W, 3)
        return EditOutput(reconstruction=frames[0], edits=list(frames[1:]), result=result)

    def _edit_cached(
        self, model: T2SModel, inversion: InversionResult, clip: Clip, cfg: RunConfig, on_step: StepHook | None = None
    ) -> tuple[EditOutput, str]:
        """An edit from the workspace when it has this exact one, else computed and kept."""
        if self.workspace is None:
            return self.edit(model, inversion, cfg.source, cfg.targets, cfg.edit, on_step), "computed"
        plain = {k: v for k, v in to_plain(cfg.edit).items() if k != "progress"}
        inv = {k: v for k, v in to_plain(cfg.inversion).items() if k not in NOT_SETTINGS}
        key = {"source": cfg.source, "targets": cfg.targets, "edit": plain, "inversion": inv}
        path = self.workspace.edit_path(self.clip_key(clip, cfg.source, cfg.tune), key)
        started = time.perf_counter()
        result = (
            self._reuse("edit", path, lambda: load_edit_result(path, self.device), started)
            if path.exists() and not cfg.force
            else None
        )
        if result is not None:
            frames = decode_latents(self.components, result.latents)
            return EditOutput(reconstruction=frames[0], edits=list(frames[1:]), result=result), "reused"
        out = self.edit(model, inversion, cfg.source, cfg.targets, cfg.edit, on_step)
        self._keep("edit", path, lambda: save_edit_result(out.result, path), started)
        return out, "computed"

    def _reuse(self, stage: str, path: Path, load, started: float):
        """`load()` a workspace entry; None (and a warning) when it is mismatched or unreadable."""
        try:
            value = load()
        except (DeltaMismatchError, InversionMismatchError, SafetensorError, OSError, KeyError, ValueError) as e:
            logger.warning("ignoring workspace %s entry %s: %s", stage, path, e)
            return None
        self.workspace.record(stage, "reused", path, started)
        return value

    def _keep(self, stage: str, path: Path, save, started: float) -> None:
        """`save()` an entry under the workspace lock and record it."""
        with self.workspace.lock(path):
            save()
        self.workspace.record(stage, "computed", path, started)

    # -- everything --------------------------------------------------------------------------------
    def run(self, cfg: RunConfig, on_step: StepHook | None = None) -> dict:
        """Tune, invert and edit, write every output and `outputs.json`; returns the manifest.

        `on_step(stage, done, total)` hears of every step of every stage (and may raise to stop).
        """
        if not cfg.targets:
            raise ValueError("Give at least one target prompt.")
        if not cfg.source.strip():
            raise ValueError("Give the source prompt that describes the clip.")
        self.check_inputs(cfg)
        progress = not cfg.quiet
        cfg.tune.progress = cfg.inversion.progress = cfg.edit.progress = progress
        stages: dict[str, dict] = {}
        t0 = time.perf_counter()
        clip = self.load_clip(cfg.video)
        stages["load"] = {"seconds": time.perf_counter() - t0}
        t0 = time.perf_counter()
        model = self.tune(clip, cfg.source, cfg.tune, cfg.force, on_step)
        stages["tune"] = {
            "seconds": time.perf_counter() - t0,
            "action": self._last_action("tune"),
            "unet_evaluations": 0 if self._last_action("tune") == "reused" else cfg.tune.steps,
        }
        t0 = time.perf_counter()
        inversion = self.invert(model, clip, cfg.source, cfg.inversion, cfg.force, cfg.tune, on_step)
        action = self._last_action("invert")
        stages["invert"] = {
            "seconds": time.perf_counter() - t0,
            "action": action,
            "unet_evaluations": 0 if action == "reused" else sum(inversion.meta.get("unet_evaluations", {}).values()),
        }
        t0 = time.perf_counter()
        out, action = self._edit_cached(model, inversion, clip, cfg, on_step)
        stages["edit"] = {
            "seconds": time.perf_counter() - t0,
            "action": action,
            "unet_evaluations": 0 if action == "reused" else out.result.counts.get("edit", 0),
        }
        t0 = time.perf_counter()
        manifest = self.write_outputs(cfg, clip, out, stages)
        stages["write"] = {"seconds": time.perf_counter() - t0}
        Path(cfg.out, "outputs.json").write_text(json.dumps(manifest, indent=2))
        return manifest

    def check_inputs(self, cfg: RunConfig) -> None:
        """Validate prompts, words and schedules before any expensive stage."""
        from videop2p.editing import build_plan

        info = self.components.info
        side = info.native_size // info.vae_scale_factor
        build_plan(self.components, cfg.source, cfg.targets, cfg.edit, cfg.inversion.steps, (side, side))
        if cfg.tune.steps < 0 or cfg.inversion.steps < 1:
            raise ValueError(
                f"tune steps must be >= 0 and DDIM steps >= 1, got {cfg.tune.steps} and {cfg.inversion.steps}."
            )

    def _last_action(self, stage: str) -> str:
        if self.workspace is None:
            return "computed"
        events = [e for e in self.workspace.events if e.stage == stage]
        return events[-1].action if events else "computed"

    def write_outputs(self, cfg: RunConfig, clip: Clip, out: EditOutput, stages: dict) -> dict:
        """Videos, overlays, attention grids, report and manifest into `cfg.out`."""
        from PIL import Image

        root = Path(cfg.out)
        root.mkdir(parents=True, exist_ok=True)
        fps = clip.fps
        files: dict[str, list[str] | str] = {"edits": [], "edits_gif": [], "masks": [], "attention": []}
        write_video(clip.frames, root / "source.mp4", fps)
        write_video(out.reconstruction, root / "reconstruction.mp4", fps)
        write_video(out.reconstruction, root / "reconstruction.gif", fps)
        files["source"], files["reconstruction"] = "source.mp4", "reconstruction.mp4"
        for k, frames in enumerate(out.edits, start=1):
            write_video(frames, root / f"edit_{k}.mp4", fps)
            write_video(frames, root / f"edit_{k}.gif", fps)
            files["edits"].append(f"edit_{k}.mp4")
            files["edits_gif"].append(f"edit_{k}.gif")
        labels = ["source", "reconstruction", *cfg.targets]
        grid = side_by_side([clip.frames, out.reconstruction, *out.edits], labels)
        write_video(grid, root / "side_by_side.mp4", fps)
        write_video(grid, root / "side_by_side.gif", fps)
        files["side_by_side"] = "side_by_side.mp4"
        res = out.result
        if res.masks is not None:
            for k in range(res.masks.shape[0]):
                masks = upsample_masks(res.masks[k], clip.frames.shape[1:3])
                write_video(mask_overlay(clip.frames, masks), root / f"mask_{k + 1}.mp4", fps)
                write_video(mask_overlay(clip.frames, masks), root / f"mask_{k + 1}.gif", fps)
                files["masks"].append(f"mask_{k + 1}.gif")
        if res.attention is not None:
            for p, tokens in enumerate(res.tokens):
                name = "attention_source.png" if p == 0 else f"attention_{p}.png"
                Image.fromarray(attention_grid(res.attention[p], tokens)).save(root / name)
                files["attention"].append(name)
        config_yaml = yaml.safe_dump(to_plain(cfg), sort_keys=False)
        (root / "config.yaml").write_text(config_yaml)
        manifest = {
            "source": cfg.source,
            "targets": cfg.targets,
            "modes": res.modes,
            "mask_coverage": [float(m.float().mean()) for m in res.masks] if res.masks is not None else None,
            "model": self.components.info.identity,
            "frames": len(clip.frames),
            "size": list(clip.size),
            "stages": stages,
            "outputs": {**files, "report": "report.md", "config": "config.yaml"},
            "workspace": [e.__dict__ for e in self.workspace.events] if self.workspace else [],
            "key": key_of({"frames": clip.digest, "targets": cfg.targets}),
        }
        (root / "report.md").write_text(report_markdown({**manifest, "config_yaml": config_yaml}))
        return manifest
