"""Stage 2: DDIM inversion of the clip and the source-branch settings that reconstruct it.

Methods: null-text optimisation with one embedding per step shared by all frames (Video-P2P),
fast (no optimisation, guidance 1), direct inversion (Ju et al. 2024, PnP Inversion) and
negative-prompt inversion (Miyake et al. 2023).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from videop2p.config import InversionConfig, InversionMethod, settings_of
from videop2p.models.t2s import T2SModel, backward_step, checkpointing
from videop2p.progress import StepHook, steps
from videop2p.sampling import DDIMSchedule, EvalCounter, cfg, ddim_schedule, denoise_step, invert_step, predict
from videop2p.store.codec import load_tensors, save_tensors

logger = logging.getLogger(__name__)


class InversionMismatchError(ValueError):
    """A saved inversion made for another clip, model, prompt or setting."""


@dataclass
class InversionResult:
    """Everything an edit needs from an inversion of one clip with one prompt."""

    method: InversionMethod
    latent_T: torch.Tensor  # (1, F, C, h, w) the inverted noise, start of sampling
    latent_0: torch.Tensor  # (1, F, C, h, w) the clean latents that were inverted
    timesteps: list[int]  # sampling timesteps, descending
    uncond_embeddings: torch.Tensor | None = None  # (T, 1, L, D) null-text, one per step shared by all frames
    trajectory: torch.Tensor | None = None  # (T + 1, 1, F, C, h, w) z_0..z_T, for direct inversion
    meta: dict = field(default_factory=dict)  # prompt, frames hash, model fingerprint, settings, counts

    def check(self, expected: dict) -> None:
        """Refuse use with another clip, model or prompt."""
        for key, value in expected.items():
            if self.meta.get(key) != value:
                raise InversionMismatchError(
                    f"Inversion was made for {key}={self.meta.get(key)!r}, not {value!r}; invert again."
                )


@torch.no_grad()
def ddim_invert(
    model: T2SModel,
    z0: torch.Tensor,
    cond: torch.Tensor,
    uncond: torch.Tensor,
    sched: DDIMSchedule,
    guidance: float = 1.0,
    counter: EvalCounter | None = None,
    progress: bool = True,
    on_step: StepHook | None = None,
) -> torch.Tensor:
    """DDIM inversion keeping every latent: (1, F, C, h, w) -> (T + 1, 1, F, C, h, w), z_0 first."""
    latents = [z0]
    z = z0
    for t in steps(reversed(sched.timesteps), "ddim inversion", progress, on_step):
        if guidance == 1.0:
            out = predict(model, z, t, cond, counter, "ddim_inversion")
        else:
            both = predict(model, torch.cat([z, z]), t, torch.cat([uncond, cond]), counter, "ddim_inversion")
            out = cfg(both[:1], both[1:], guidance)
        z = invert_step(out, z, t, sched)
        latents.append(z)
    return torch.stack(latents)


def null_text_step(
    model: T2SModel,
    z: torch.Tensor,
    target: torch.Tensor,
    t: int,
    i: int,
    cond_out: torch.Tensor,
    uncond: torch.Tensor,
    sched: DDIMSchedule,
    c: InversionConfig,
    counter: EvalCounter | None,
) -> torch.Tensor:
    """Optimise one shared unconditional embedding at step i (Mokady et al. 2023, Alg. 1; Video-P2P sec. 3.2).

    The embedding and the loss stay in float32 whatever the model's dtype (cast on the way in): in
    fp16, Adam's epsilon underflows and the embedding turns NaN. A half-precision model's backward
    runs with loss scaling, so that small gradients survive.
    """
    emb = uncond.detach().float().clone().requires_grad_(True)
    opt = torch.optim.Adam([emb], lr=c.lr * (1.0 - i / 100.0))
    scaler = torch.amp.GradScaler(z.device.type) if z.dtype is torch.float16 else None
    for _ in range(c.inner_steps):
        out = cfg(predict(model, z, t, emb, counter, "null_text"), cond_out, c.guidance)
        loss = F.mse_loss(denoise_step(out, z, t, sched).float(), target.float())  # over every frame of the clip
        opt.zero_grad(set_to_none=True)
        backward_step(loss, opt, scaler)
        if loss.item() < c.early_stop + i * 2e-5:
            break
    return emb.detach()


def optimise_null_text(
    model: T2SModel,
    trajectory: torch.Tensor,
    cond: torch.Tensor,
    uncond: torch.Tensor,
    sched: DDIMSchedule,
    c: InversionConfig,
    counter: EvalCounter | None = None,
    on_step: StepHook | None = None,
) -> torch.Tensor:
    """Per-step unconditional embeddings (T, 1, L, D) that make guided sampling retrace the inversion."""
    model.unet.requires_grad_(False)
    embeddings = []
    z = trajectory[-1]
    emb = uncond
    n = len(sched.timesteps)
    with checkpointing(model.unet, c.gradient_checkpointing):
        for i, t in enumerate(steps(sched.timesteps, "null-text optimisation", c.progress, on_step)):
            with torch.no_grad():
                cond_out = predict(model, z, t, cond, counter, "null_text")  # once per timestep
            with torch.enable_grad():
                emb = null_text_step(model, z, trajectory[n - i - 1], t, i, cond_out, emb, sched, c, counter)
            embeddings.append(emb)
            with torch.no_grad():
                guided = cfg(predict(model, z, t, emb, counter, "null_text"), cond_out, c.guidance)
                z = denoise_step(guided, z, t, sched)
    return torch.stack(embeddings)


def invert(
    model: T2SModel,
    scheduler,
    z0: torch.Tensor,
    cond: torch.Tensor,
    uncond: torch.Tensor,
    c: InversionConfig,
    meta: dict | None = None,
    counter: EvalCounter | None = None,
    on_step: StepHook | None = None,
) -> InversionResult:
    """Invert clean latents z0 (1, F, C, h, w) with the source prompt embedding `cond` (1, L, D)."""
    method = InversionMethod(c.method)
    sched = ddim_schedule(scheduler, c.steps)
    counter = counter or EvalCounter()
    trajectory = ddim_invert(model, z0, cond, uncond, sched, c.inversion_guidance, counter, c.progress, on_step)
    result = InversionResult(
        method=method, latent_T=trajectory[-1].clone(), latent_0=z0.clone(), timesteps=sched.timesteps
    )
    if method is InversionMethod.NULL_TEXT:
        result.uncond_embeddings = optimise_null_text(model, trajectory, cond, uncond, sched, c, counter, on_step)
    elif method is InversionMethod.DIRECT:
        result.trajectory = trajectory
    result.meta = {**(meta or {}), "settings": settings_of(c), "unet_evaluations": dict(counter.counts)}
    return result


def save_inversion(result: InversionResult, path: str | os.PathLike) -> Path:
    """Keep an inversion's tensors and metadata."""
    tensors = {"latent_T": result.latent_T, "latent_0": result.latent_0}
    if result.uncond_embeddings is not None:
        tensors["uncond_embeddings"] = result.uncond_embeddings
    if result.trajectory is not None:
        tensors["trajectory"] = result.trajectory
    meta = {"method": result.method.value, "timesteps": result.timesteps, "meta": result.meta}
    return save_tensors(path, tensors, meta)


def load_inversion(
    path: str | os.PathLike, expected: dict | None = None, device: str | torch.device = "cpu"
) -> InversionResult:
    """Read a saved inversion; `expected` entries must match its metadata."""
    tensors, meta = load_tensors(path, device)
    result = InversionResult(
        method=InversionMethod(meta["method"]),
        latent_T=tensors["latent_T"],
        latent_0=tensors["latent_0"],
        timesteps=meta["timesteps"],
        uncond_embeddings=tensors.get("uncond_embeddings"),
        trajectory=tensors.get("trajectory"),
        meta=meta["meta"],
    )
    if expected:
        result.check(expected)
    return result
