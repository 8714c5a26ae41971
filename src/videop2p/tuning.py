"""Stage 1: tune the T2S model on the clip (Tune-A-Video recipe), and save/load the result as a delta."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers.training_utils import cast_training_params

from videop2p.config import TuneConfig
from videop2p.models.loading import SDComponents
from videop2p.models.t2s import T2SModel, backward, checkpointing, optimizer_step
from videop2p.progress import StepHook, progress_bar
from videop2p.sampling import check_finite, half_hint
from videop2p.store.codec import all_finite, load_tensors, read_meta, save_tensors
from videop2p.store.workspace import StepFiles
from videop2p.windows import WindowPlan, frame_subset, plan_windows

logger = logging.getLogger(__name__)


class DeltaMismatchError(ValueError):
    """A tuned delta made for another model, clip or size."""


@dataclass
class TuneResult:
    """Losses of a tuning run and the metadata that identifies its delta."""

    losses: list[float]  # denoising loss per step
    metadata: dict = field(default_factory=dict)  # what the delta was made for
    resumed_from: int = 0  # steps already done by an interrupted run this one resumed


def diffusion_target(scheduler, latents: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The training target: the noise, or the velocity for v-prediction (Salimans & Ho 2022)."""
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return scheduler.get_velocity(latents, noise, t)
    raise ValueError(f"unsupported prediction type {kind!r}; expected 'epsilon' or 'v_prediction'.")


def denoising_loss(
    model: T2SModel,
    scheduler,
    z0: torch.Tensor,
    text: torch.Tensor,
    generator: torch.Generator,
    anchors: tuple[int, ...] = (0,),
) -> torch.Tensor:
    """MSE between the model's prediction and the target at one random timestep for the whole clip
    (or window: `anchors` are the positions of its anchor frames)."""
    noise = torch.randn(z0.shape, generator=generator, device=generator.device).to(z0)
    t = torch.randint(
        0, scheduler.config.num_train_timesteps, (z0.shape[0],), generator=generator, device=generator.device
    )
    t = t.to(z0.device)
    zt = scheduler.add_noise(z0, noise, t)
    pred = model(zt, t, text, anchors)
    return F.mse_loss(pred.float(), diffusion_target(scheduler, z0, noise, t).float())


HALF = (torch.float16, torch.bfloat16)


def compute_dtype(weights: torch.dtype, device: torch.device, mixed_precision: str) -> torch.dtype | None:
    """The autocast dtype of a tuning step: the weights' own half dtype, else the mixed-precision
    setting's on CUDA; None: plain float32."""
    if weights in HALF:
        return weights
    if mixed_precision == "no" or device.type != "cuda":
        return None
    return {"fp16": torch.float16, "bf16": torch.bfloat16}[mixed_precision]


def divergence_hint(cfg: TuneConfig, half: torch.dtype | None, updated: bool) -> str:
    """What to change when tuning diverges: the learning rate once weights have moved, or the
    precision it ran in; before any update, the model itself."""
    lr = f"tune with a lower learning rate than {cfg.lr:g} (the official rate is {TuneConfig.lr:g})"
    first = "the model's predictions are not finite before any update"
    return "; ".join(filter(None, [lr if updated else first, half_hint(half) if half is not None else ""]))


def check_weights(params: dict[str, torch.Tensor], step: int, cfg: TuneConfig, half: torch.dtype | None) -> None:
    """Stop a tuning whose trainable weights are no longer finite after `step` steps."""
    for name, p in params.items():
        check_finite(p, "Tuning", step, cfg.steps, f"the tuned weight {name}", divergence_hint(cfg, half, True))


def training_state(
    params: dict[str, torch.Tensor],
    opt: torch.optim.Optimizer,
    gen: torch.Generator,
    losses: list[float],
    scaler: torch.amp.GradScaler | None,
) -> dict[str, torch.Tensor]:
    """Everything a tuning run needs to go on exactly as if it had not stopped: the trainable
    weights, AdamW's moments and step counts, the generator (noise, timesteps, frames) and the losses."""
    state = {f"param.{name}": p.detach() for name, p in params.items()}
    for index, slots in opt.state_dict()["state"].items():  # index: the parameter's place in `params`
        for slot, value in slots.items():
            state[f"opt.{index}.{slot}"] = torch.as_tensor(value).detach()  # no copy: written before the next step
    state["generator"] = gen.get_state()
    state["losses"] = torch.tensor(losses, dtype=torch.float64)
    if scaler is not None and scaler.is_enabled():  # a scaler without CUDA is disabled and has no state
        state["scaler.scale"] = torch.tensor(scaler.get_scale(), dtype=torch.float64)
        state["scaler.growth_tracker"] = torch.tensor(scaler.state_dict()["_growth_tracker"])
    return state


def state_fits(state: dict[str, torch.Tensor], params: dict[str, torch.Tensor], step: int) -> bool:
    """Whether a kept state holds exactly these trainable tensors, shapes included, and one loss per
    step (a state from another version of the model's trainable set is not resumed: warned, not used)."""
    names = {k.removeprefix("param.") for k in state if k.startswith("param.")}
    fits = names == set(params) and all(state[f"param.{n}"].shape == p.shape for n, p in params.items())
    fits = fits and "generator" in state and state.get("losses", torch.empty(0)).numel() == step
    fits = fits and all(int(k.split(".")[1]) < len(params) for k in state if k.startswith("opt."))
    if not fits:
        logger.warning("the kept tuning state does not fit this model's trainable set; tuning from step 0")
    return fits


def restore_training_state(
    state: dict[str, torch.Tensor],
    params: dict[str, torch.Tensor],
    opt: torch.optim.Optimizer,
    gen: torch.Generator,
    scaler: torch.amp.GradScaler | None,
) -> list[float]:
    """Put a `training_state` back (weights, optimiser, generator, loss scale); returns its losses."""
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(state[f"param.{name}"])
    saved = opt.state_dict()
    slots: dict[int, dict] = {}
    for key, value in state.items():
        if key.startswith("opt."):
            _, index, slot = key.split(".", 2)
            slots.setdefault(int(index), {})[slot] = value
    saved["state"] = slots
    opt.load_state_dict(saved)
    gen.set_state(state["generator"])
    if scaler is not None and scaler.is_enabled() and "scaler.scale" in state:
        scaler.load_state_dict(
            {
                **scaler.state_dict(),
                "scale": float(state["scaler.scale"]),
                "_growth_tracker": int(state["scaler.growth_tracker"]),
            }
        )
    return state["losses"].tolist()


def keep_state(saved: StepFiles, step: int, state: dict[str, torch.Tensor]) -> StepFiles | None:
    """Keep a tuning state; a disk that refuses it (full, read-only) costs the resume, not the tuning:
    returns None (keep no more) after a warning."""
    try:
        saved.save_latest("tune", step, state)
    except OSError as e:
        logger.warning("could not keep the tuning state in %s (%s); tuning goes on without it", saved.root, e)
        return None
    return saved


def tune(
    model: T2SModel,
    components: SDComponents,
    posterior: tuple[torch.Tensor, torch.Tensor],
    text: torch.Tensor,
    cfg: TuneConfig,
    on_step: StepHook | None = None,
    plan: WindowPlan | None = None,
    saved: StepFiles | None = None,
) -> TuneResult:
    """Fine-tune the trainable set of `model` in place on one clip.

    posterior: scaled VAE mean and std of the frames, each (1, F, C, h, w); text: (1, L, D).
    plan: windows of a long clip; each step then trains on one window at a random place, anchors
    included, so a step costs one window whatever the clip length. cfg.frames: each step trains on
    that many of the window's frames, its anchors included, drawn anew each step.
    saved: with it, the training state is kept every `cfg.save_seconds` (counted from the end of the
    last write), and a run that finds a state made for the same settings resumes from it and ends
    with the same weights as one that never stopped.
    """
    cfg = cfg.resolved()
    unet = model.unet
    weights = unet.dtype
    device = next(unet.parameters()).device
    half = compute_dtype(weights, device, cfg.mixed_precision)
    unet.requires_grad_(False)
    params = model.trainable_parameters()
    for p in params.values():
        p.requires_grad_(True)
    # Half-precision weights: the trainable set trains in float32 (master weights) under autocast.
    # Trained in fp16 itself, AdamW's steps overflow to NaN; in bf16, most of a 3e-5 step rounds away.
    cast_training_params(unet, torch.float32)
    opt = torch.optim.AdamW(params.values(), lr=cfg.lr)
    was_training = unet.training
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    scaler = torch.amp.GradScaler(device.type) if half is torch.float16 else None
    amp = torch.autocast(device.type, dtype=half) if half is not None else contextlib.nullcontext()
    mean, std = posterior
    plan = plan or plan_windows(mean.shape[1])  # default: the whole clip, frame 0 the anchor
    losses, start = [], 0
    found = saved.latest("tune") if saved is not None else None
    if found is not None and found[0] < cfg.steps and state_fits(found[1], params, found[0]):
        start = found[0]
        losses = restore_training_state(found[1], params, opt, gen, scaler)
    last_kept = time.monotonic()
    try:  # a cancelled or failed run leaves the UNet as it found it: eval mode, frozen, its own dtype
        unet.train()
        with checkpointing(unet, cfg.gradient_checkpointing):
            bar = progress_bar(
                range(start, cfg.steps), desc="tune", disable=not cfg.progress, initial=start, total=cfg.steps
            )
            for i in bar:
                if on_step is not None:
                    on_step("tune", i, cfg.steps)
                window = frame_subset(plan.sample(gen), cfg.frames, gen)  # the clip, or a window, or some of its frames
                rows = list(window.frames)
                m, s = (mean, std) if len(rows) == mean.shape[1] else (mean[:, rows], std[:, rows])
                z0 = m + s * torch.randn(m.shape, generator=gen, device=device).to(m)  # (1, F_w, C, h, w)
                with amp:
                    loss = denoising_loss(
                        model, components.scheduler, z0.to(weights), text.to(weights), gen, window.anchors
                    )
                if scaler is None:  # with fp16 loss scaling, an overflowed step is the scaler's to skip
                    hint = divergence_hint(cfg, half, updated=i > 0)
                    check_finite(loss.detach(), "Tuning", i + 1, cfg.steps, "the loss", hint)
                opt.zero_grad(set_to_none=True)
                backward(loss, scaler)
                if cfg.max_grad_norm is not None:  # the authors' accelerator.clip_grad_norm_, on true gradients
                    if scaler is not None:
                        scaler.unscale_(opt)
                    torch.nn.utils.clip_grad_norm_(params.values(), cfg.max_grad_norm)
                optimizer_step(opt, scaler)
                losses.append(float(loss.detach()))
                bar.set_postfix(
                    loss=f"{sum(losses[-20:]) / len(losses[-20:]):.4f}", refresh=False
                )  # drawn with the bar
                done = i + 1
                due = cfg.save_seconds is not None and time.monotonic() - last_kept >= cfg.save_seconds
                if saved is not None and due and done < cfg.steps:
                    check_weights(params, done, cfg, half)  # a state is kept only of finite weights
                    saved = keep_state(saved, done, training_state(params, opt, gen, losses, scaler))
                    last_kept = time.monotonic()
    finally:
        cast_training_params(unet, weights)
        unet.train(was_training)
        unet.requires_grad_(False)
    check_weights(params, cfg.steps, cfg, half)
    return TuneResult(
        losses=losses,
        metadata={"steps": cfg.steps, "frames": cfg.frames, "lr": cfg.lr, "seed": cfg.seed},
        resumed_from=start,
    )


def save_delta(model: T2SModel, path: str | os.PathLike, identity: dict) -> Path:
    """Write only the trainable tensors, with the clip identity they were tuned for."""
    return save_tensors(path, dict(model.trainable_parameters()), identity)


def check_delta(found: dict, expected: dict) -> None:
    """Refuse a delta made for another clip identity (model, clip, size, frames, tuning settings)."""
    for key, value in expected.items():
        if found.get(key) != value:
            raise DeltaMismatchError(
                f"Tuned delta was made for {key}={found.get(key)!r}, but this run has {key}={value!r}; tune again for this input."
            )


def check_delta_entry(path: str | os.PathLike, expected: dict) -> None:
    """What `load_delta` checks of a kept delta before reading its weights (its header alone): that it is
    whole, and made for `expected`'s identity. `VideoP2P.dry_run` asks it of an entry it would reuse."""
    check_delta(read_meta(path), expected)


def load_delta(model: T2SModel, path: str | os.PathLike, expected: dict | None = None) -> dict:
    """Apply a saved delta onto a freshly inflated model after checking it fits; returns its identity."""
    if expected:
        check_delta_entry(path, expected)
    tensors, meta = load_tensors(path)
    params = model.trainable_parameters()
    if set(tensors) != set(params):
        missing, extra = sorted(set(params) - set(tensors)), sorted(set(tensors) - set(params))
        raise DeltaMismatchError(
            f"Delta {path} does not fit this model: missing {missing[:3]}, unexpected {extra[:3]}."
        )
    if not all_finite(tensors):  # kept by a version that did not check
        raise DeltaMismatchError(f"Delta {path} holds weights that are not finite; tune again.")
    with torch.no_grad():
        for name, p in params.items():
            if p.shape != tensors[name].shape:
                raise DeltaMismatchError(
                    f"Delta tensor {name} has shape {tuple(tensors[name].shape)}, model expects {tuple(p.shape)}."
                )
            p.copy_(tensors[name].to(p))
    return meta
