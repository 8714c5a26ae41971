"""Stage 2: DDIM inversion of the clip and the source-branch settings that reconstruct it.

Methods: null-text optimisation with one embedding per step shared by all frames (Video-P2P),
fast (no optimisation, guidance 1), direct inversion (Ju et al. 2024, PnP Inversion) and
negative-prompt inversion (Miyake et al. 2023).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from videop2p.config import InversionConfig, InversionMethod, TuneConfig, brief_repr, settings_of
from videop2p.models.t2s import T2SModel, backward, backward_step, checkpointing, optimizer_step
from videop2p.progress import StepHook, steps
from videop2p.sampling import (
    DDIMSchedule,
    EvalCounter,
    cfg,
    check_finite,
    ddim_schedule,
    denoise_step,
    half_hint,
    invert_step,
    predict,
)
from videop2p.store.codec import Rows, all_finite, file_rows, load_tensors, read_meta, rows_of, save_tensors
from videop2p.store.workspace import StepFiles
from videop2p.windows import WindowPlan, frame_subset, plan_windows

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
    # (T + 1, 1, F, C, h, w) z_0..z_T: the latents the source branch takes, so an edit need not guide it.
    # Direct inversion: DDIM inversion's, which the source is put back onto; null-text: the optimisation's
    # own guided sampling, which the source branch would retrace step for step. None: the source is sampled.
    # Read one step at a time (from the workspace entry, or held on the CPU without a workspace), so that
    # a long clip's T + 1 copies of its latents are never in memory, or on the device, together.
    trajectory: Rows | None = None
    meta: dict = field(default_factory=dict)  # prompt, frames hash, model fingerprint, settings, counts

    __repr__ = brief_repr

    def check(self, expected: dict) -> None:
        """Refuse use with another clip, model or prompt."""
        check_made_for(self.meta, expected)


def check_made_for(meta: dict, expected: dict) -> None:
    """Refuse an inversion whose metadata `meta` names another clip, model or prompt than `expected`."""
    for key, value in expected.items():
        if meta.get(key) != value:
            raise InversionMismatchError(
                f"Inversion was made for {key}={meta.get(key)!r}, not {value!r}; invert again."
            )


def _kept_latent(first: torch.Tensor, saved: StepFiles, phase: str, k: int) -> torch.Tensor:
    return first.cpu().contiguous() if k == 0 else saved.tensor(phase, k - 1, "z")


def _steps(first: torch.Tensor, later: list[torch.Tensor], n: int, saved: StepFiles | None, phase: str) -> Rows:
    """`first` and the latent after each of the n steps of `phase`: read from its kept step files (with
    `saved`), else from `later`, held on the CPU."""
    if saved is None:
        return rows_of([first.cpu().contiguous(), *later])
    return Rows(functools.partial(_kept_latent, first, saved, phase), n + 1, tuple(first.shape), first.dtype)


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
    plan: WindowPlan | None = None,
    saved: StepFiles | None = None,
) -> Rows:
    """DDIM inversion keeping every latent: (1, F, C, h, w) -> (T + 1, 1, F, C, h, w), z_0 first.

    With `saved`, every finished step is kept there (and read from there, one at a time) and an
    interrupted inversion resumes after the last one; without, the latents are held on the CPU."""
    done = saved.count("ddim") if saved is not None else 0
    z = saved.tensor("ddim", done - 1, "z", z0.device).to(z0) if done else z0
    later: list[torch.Tensor] = []
    for i, t in enumerate(steps(reversed(sched.timesteps), "ddim inversion", progress, on_step)):
        if i < done:
            continue
        if guidance == 1.0:
            out = predict(model, z, t, cond, counter, "ddim_inversion", plan, show=progress)
        else:
            both = predict(
                model, torch.cat([z, z]), t, torch.cat([uncond, cond]), counter, "ddim_inversion", plan, show=progress
            )
            out = cfg(both[:1], both[1:], guidance)
        z = invert_step(out, z, t, sched)
        check_finite(z, "DDIM inversion", i + 1, len(sched.timesteps), "the latent", _model_hint(model))
        if saved is not None:
            saved.save("ddim", i, {"z": z})
        else:
            later.append(z.cpu().contiguous())  # as a step file gives it back
    return _steps(z0, later, len(sched.timesteps), saved, "ddim")


def _model_hint(model: T2SModel) -> str:
    """What to try when a tuned model's predictions stop being finite: its precision, else the learning rate
    it was tuned with (weights moved too far stay finite, their predictions need not), else its weights."""
    if half := half_hint(model.unet.dtype):
        return half
    tuned = (
        f"tune it again with a lower learning rate (the official rate is {TuneConfig.lr:g}), or check the base model's weights"
        if model.delta_key is not None
        else "check its weights"
    )
    return f"the model's predictions are not finite: {tuned}"


def _frame_mse(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-frame mean squared error of (1, F, C, h, w) latents, in float32: (F,)."""
    return (x.float() - target.float()).pow(2).mean(dim=(0, 2, 3, 4))


def early_stop_threshold(early_stop: float, i: int) -> float:
    """The loss under which null-text's inner iterations stop at step i: `epsilon + i * 2e-5` in the
    authors' `null_optimization` (Mokady et al. 2023's code, kept by Video-P2P)."""
    return early_stop + i * 2e-5


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
    plan: WindowPlan | None = None,
) -> torch.Tensor:
    """Optimise one shared unconditional embedding at step i (Mokady et al. 2023, Alg. 1; Video-P2P sec. 3.2).

    The embedding and the loss stay in float32 whatever the model's dtype (cast on the way in): in
    fp16, Adam's epsilon underflows and the embedding turns NaN. A half-precision model's backward
    runs with loss scaling, so that small gradients survive.

    With windows, the loss is every window's own frames' error weighted by the window's share of
    them, so it sums to the clip's mean error where windows do not overlap and bounds the error of
    the blended prediction where they do (convexity); its gradient is accumulated window by window,
    so memory is one window's.

    c.frames: each iteration's loss reads that many frames of each window, its anchors and others
    drawn anew (from a generator seeded by the step, so a resumed run draws the same), so an
    iteration costs that many frames' forward and backward. The embedding is shared by every frame,
    and the iterations of a step see different frames; the step is then taken on every frame.
    None: every frame (official).
    """
    emb = uncond.detach().float().clone().requires_grad_(True)
    opt = torch.optim.Adam([emb], lr=c.lr * (1.0 - i / 100.0))
    scaler = torch.amp.GradScaler(z.device.type) if z.dtype is torch.float16 else None
    parts = plan or plan_windows(z.shape[1])
    gen = torch.Generator().manual_seed(i)
    for _ in range(c.inner_steps):
        seen = [frame_subset(w, c.frames, gen) for w in parts.windows]  # (frames of each window the loss reads)
        every = all(s is w for s, w in zip(seen, parts.windows, strict=True))
        if parts.whole and every:
            out = cfg(predict(model, z, t, emb, counter, "null_text", plan), cond_out, c.guidance)
            loss = F.mse_loss(denoise_step(out, z, t, sched).float(), target.float())  # over every frame of the clip
            opt.zero_grad(set_to_none=True)
            backward_step(loss, opt, scaler)
            value = loss.item()
        else:
            shares = [  # each window's share of each frame it reads
                weight[[w.own_frames.index(f) for f in s.own_frames]]
                for s, w, weight in zip(seen, parts.windows, parts.weights, strict=True)
            ]
            total = parts.num_frames if every else float(sum(share.sum() for share in shares))
            opt.zero_grad(set_to_none=True)
            value = 0.0
            for window, share in zip(seen, shares, strict=True):
                rows, own = list(window.frames), list(window.own)
                out = cfg(model(z[:, rows], t, emb.to(z.dtype), window.anchors), cond_out[:, rows], c.guidance)
                err = _frame_mse(denoise_step(out, z[:, rows], t, sched)[:, own], target[:, window.own_frames])
                loss = (err * share.to(err)).sum() / total
                backward(loss, scaler)
                value += loss.item()
            if counter is not None:
                counter.add("null_text", 1)
            optimizer_step(opt, scaler)
        if value < early_stop_threshold(c.early_stop, i):
            break
    return emb.detach()


def optimise_null_text(
    model: T2SModel,
    trajectory: Rows | torch.Tensor,
    cond: torch.Tensor,
    uncond: torch.Tensor,
    sched: DDIMSchedule,
    c: InversionConfig,
    counter: EvalCounter | None = None,
    on_step: StepHook | None = None,
    plan: WindowPlan | None = None,
    saved: StepFiles | None = None,
) -> tuple[torch.Tensor, Rows]:
    """Per-step unconditional embeddings (T, 1, L, D) that make guided sampling retrace the inversion,
    and the latents that guided sampling takes with them, (T + 1, 1, F, C, h, w) z_0 first: the source
    branch of an edit takes the same steps, so it can read them instead of computing them.

    trajectory: DDIM inversion's latents, z_0 first, read one step at a time. With `saved`, every
    finished step's embedding and latent are kept there (the latents read from there) and an
    interrupted run resumes; without, the latents are held on the CPU."""
    model.unet.requires_grad_(False)
    z_T = trajectory[-1].to(uncond.device)
    done = saved.count("null_text") if saved is not None else 0
    embeddings = [saved.tensor("null_text", k, "embedding", uncond.device) for k in range(done)]
    z = saved.tensor("null_text", done - 1, "z", uncond.device).to(z_T) if done else z_T
    later: list[torch.Tensor] = []  # the latent after each step, without `saved`
    emb = embeddings[-1] if done else uncond
    n = len(sched.timesteps)
    # DDIM inversion's predictions were finite with this model: what makes them not is the optimisation
    lower = f"optimise with a lower learning rate than {c.lr:g} (the official rate is {InversionConfig.lr:g})"
    hint = "; ".join(filter(None, [lower, half_hint(model.unet.dtype)]))
    with checkpointing(model.unet, c.gradient_checkpointing):
        for i, t in enumerate(steps(sched.timesteps, "null-text optimisation", c.progress, on_step)):
            if i < done:
                continue
            with torch.no_grad():
                cond_out = predict(model, z, t, cond, counter, "null_text", plan, show=c.progress)  # once per step
            target = trajectory[n - i - 1].to(z)
            with torch.enable_grad():
                emb = null_text_step(model, z, target, t, i, cond_out, emb, sched, c, counter, plan)
            embeddings.append(emb)
            with torch.no_grad():
                uncond_out = predict(model, z, t, emb, counter, "null_text", plan, show=c.progress)
                z = denoise_step(cfg(uncond_out, cond_out, c.guidance), z, t, sched)
            check_finite(emb, "Null-text optimisation", i + 1, n, "the embedding", hint)
            check_finite(z, "Null-text optimisation", i + 1, n, "the latent", hint)
            if saved is not None:
                saved.save("null_text", i, {"embedding": emb, "z": z})
            else:
                later.append(z.cpu().contiguous())  # as a step file gives it back
    return torch.stack(embeddings), _steps(z_T, later, n, saved, "null_text").reversed()


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
    plan: WindowPlan | None = None,
    saved: StepFiles | None = None,
) -> InversionResult:
    """Invert clean latents z0 (1, F, C, h, w) with the source prompt embedding `cond` (1, L, D).

    plan: windows of a long clip (None: the whole clip at once); saved: where finished steps are kept
    so that an interrupted inversion resumes."""
    method = InversionMethod(c.method)
    sched = ddim_schedule(scheduler, c.steps)
    counter = counter or EvalCounter()
    z0 = z0.to(model.unet.dtype)  # a VAE's float32 latents into a half-precision model's dtype
    trajectory = ddim_invert(
        model, z0, cond, uncond, sched, c.inversion_guidance, counter, c.progress, on_step, plan, saved
    )
    result = InversionResult(
        method=method, latent_T=trajectory[-1].to(z0, copy=True), latent_0=z0.clone(), timesteps=sched.timesteps
    )
    if method is InversionMethod.NULL_TEXT:
        result.uncond_embeddings, result.trajectory = optimise_null_text(
            model, trajectory, cond, uncond, sched, c, counter, on_step, plan, saved
        )
    elif method is InversionMethod.DIRECT:
        result.trajectory = trajectory
    windows = plan.settings if plan is not None else None
    result.meta = {
        **(meta or {}),
        "settings": settings_of(c),
        "windows": windows,
        "unet_evaluations": dict(counter.counts),
    }
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


def kept_at(result: InversionResult, path: str | os.PathLike) -> InversionResult:
    """The same inversion with its trajectory read from the entry saved at `path`, not from the step
    files it was computed in (removed once the entry is saved)."""
    if result.trajectory is None:
        return result
    return dataclasses.replace(result, trajectory=file_rows(path, "trajectory"))


def check_inversion_entry(path: str | os.PathLike, expected: dict) -> None:
    """What `load_inversion` checks of a kept inversion before reading its tensors (its header alone): that
    it is whole, of a known method, and made for `expected`. `VideoP2P.dry_run` asks it of an entry it
    would reuse."""
    meta = read_meta(path)
    InversionMethod(meta["method"])
    check_made_for(meta["meta"], expected)


def load_inversion(
    path: str | os.PathLike, expected: dict | None = None, device: str | torch.device = "cpu"
) -> InversionResult:
    """Read a saved inversion; `expected` entries must match its metadata. Its trajectory is read from
    the file one step at a time, when the edit asks for it."""
    tensors, meta = load_tensors(path, device, rows=["trajectory"])
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
    if not all_finite(tensors):  # kept by a version that did not check
        raise InversionMismatchError(f"Inversion {path} holds values that are not finite; invert again.")
    return result
