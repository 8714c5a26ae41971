"""DDIM steps in both directions and classifier-free-guided predictions, from the model's own scheduler."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from videop2p.models.t2s import T2SModel
from videop2p.windows import Window, WindowPlan, windowed


class DivergedError(ValueError):
    """A stage whose numbers stopped being finite (NaN or infinite): nothing of it is kept."""


def check_finite(x: torch.Tensor, stage: str, step: int, total: int, what: str, hint: str) -> None:
    """Stop a stage at the step where `x` stops being finite, naming the step and what would help."""
    if not bool(torch.isfinite(x).all()):
        raise DivergedError(
            f"{stage} diverged at step {step} of {total}: {what} is not finite (NaN or infinite); {hint}"
        )


def half_hint(dtype: torch.dtype) -> str:
    """What to try when a model's numbers overflow: float32 or bfloat16 when it runs in float16."""
    return "in float16 they can overflow: run in float32 or bfloat16" if dtype is torch.float16 else ""


@dataclass
class EvalCounter:
    """UNet evaluations (one video through the UNet counts one) per phase."""

    counts: Counter = field(default_factory=Counter)

    def add(self, phase: str, videos: int) -> None:
        self.counts[phase] += videos


@dataclass(frozen=True)
class DDIMSchedule:
    """Timesteps (descending) and the cumulative alphas that DDIM needs."""

    timesteps: list[int]  # e.g. [981, 961, ..., 1] for 50 steps
    alphas_cumprod: torch.Tensor  # (num_train_timesteps,)
    final_alpha_cumprod: float  # alpha used below the first timestep
    step_size: int  # num_train_timesteps // num_inference_steps
    prediction_type: str  # "epsilon" or "v_prediction"

    def alpha(self, t: int) -> float:
        return float(self.alphas_cumprod[t]) if t >= 0 else self.final_alpha_cumprod


def steps_fit(scheduler, num_steps: int) -> bool:
    """Whether `num_steps` DDIM steps stay within the scheduler's training timesteps, spacing and offset
    included ("leading" spacing with an offset of 1, as Stable Diffusion's, reaches timestep
    1000 of 0-999 at 1000 steps). Read from a copy: the model's scheduler is not touched."""
    n = scheduler.config.num_train_timesteps
    if not 1 <= num_steps <= n:
        return False
    probe = type(scheduler).from_config(scheduler.config)
    probe.set_timesteps(num_steps)
    return int(probe.timesteps.max()) < n


def most_steps(scheduler, upto: int) -> int:
    """The largest DDIM step count up to `upto` that `steps_fit` the scheduler (1 when none larger does)."""
    return next(
        (k for k in range(min(upto, scheduler.config.num_train_timesteps), 1, -1) if steps_fit(scheduler, k)), 1
    )


def check_steps(scheduler, num_steps: int) -> None:
    """Refuse a DDIM step count the scheduler cannot take, naming the most it can."""
    if not steps_fit(scheduler, num_steps):
        c = scheduler.config
        raise ValueError(
            f"steps {num_steps} is more than this model's scheduler allows: at most {most_steps(scheduler, num_steps)} "
            f"({c.num_train_timesteps} training timesteps, {c.timestep_spacing!r} spacing, offset {c.steps_offset})."
        )


def ddim_schedule(scheduler, num_steps: int) -> DDIMSchedule:
    """Read timesteps, alphas and the final alpha from a diffusers scheduler configured by the model."""
    scheduler.set_timesteps(num_steps)
    return DDIMSchedule(
        timesteps=[int(t) for t in scheduler.timesteps],
        alphas_cumprod=scheduler.alphas_cumprod.detach().cpu().double(),
        final_alpha_cumprod=float(scheduler.final_alpha_cumprod),
        step_size=scheduler.config.num_train_timesteps // num_steps,
        prediction_type=scheduler.config.prediction_type,
    )


def to_x0_eps(
    out: torch.Tensor, x: torch.Tensor, alpha: float, prediction_type: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Clean-latent and noise estimates from a model output (Salimans & Ho 2022 for v)."""
    a, s = alpha**0.5, (1 - alpha) ** 0.5
    if prediction_type == "epsilon":
        return (x - s * out) / a, out
    if prediction_type == "v_prediction":
        return a * x - s * out, a * out + s * x
    raise ValueError(f"unsupported prediction type {prediction_type!r}")


def ddim_move(x0: torch.Tensor, eps: torch.Tensor, alpha_to: float) -> torch.Tensor:
    """Deterministic DDIM update to noise level `alpha_to` (Song et al. 2021, eq. 12 with sigma = 0)."""
    return alpha_to**0.5 * x0 + (1 - alpha_to) ** 0.5 * eps


def denoise_step(out: torch.Tensor, x: torch.Tensor, t: int, sched: DDIMSchedule) -> torch.Tensor:
    """One DDIM sampling step from t to t - step_size."""
    x0, eps = to_x0_eps(out, x, sched.alpha(t), sched.prediction_type)
    return ddim_move(x0, eps, sched.alpha(t - sched.step_size))


def invert_step(out: torch.Tensor, x: torch.Tensor, t: int, sched: DDIMSchedule) -> torch.Tensor:
    """One DDIM inversion step from t - step_size up to t, with the model evaluated at t.

    DDIM inversion (Mokady et al. 2023, sec. 3) reuses the noise the model predicts at t for the step
    that leaves t - step_size. An epsilon model gives that noise directly. A v-prediction model's noise
    is read at the level the model was told, eps = sqrt(abar_t) v + sqrt(1 - abar_t) x (Salimans & Ho
    2022), so that a v-model inverts exactly as the epsilon model it is equivalent to; the clean
    estimate then follows from x's own level. Reading the noise at t - step_size instead (diffusers'
    DDIMInverseScheduler) breaks the round trip on shifted schedules (docs/bundled_layout.md).
    """
    alpha_from, alpha_to = sched.alpha(t - sched.step_size), sched.alpha(t)
    _, eps = to_x0_eps(out, x, alpha_to, sched.prediction_type)
    x0, _ = to_x0_eps(eps, x, alpha_from, "epsilon")
    return ddim_move(x0, eps, alpha_to)


def cfg(uncond: torch.Tensor, cond: torch.Tensor, guidance: float) -> torch.Tensor:
    """Classifier-free guidance (Ho & Salimans 2022)."""
    return uncond + guidance * (cond - uncond)


def predict(
    model: T2SModel,
    latents: torch.Tensor,
    t: int,
    text: torch.Tensor,
    counter: EvalCounter | None = None,
    phase: str = "",
    plan: WindowPlan | None = None,
    on_window: Callable[[Window], None] | None = None,
    show: bool = False,
) -> torch.Tensor:
    """Model output for a batch of videos (B, F, C, h, w) with text (B, L, D); with a window `plan`,
    window by window, each reading the anchors, blended over the overlaps."""
    if counter is not None:
        counter.add(phase, latents.shape[0])
    text = text.to(latents.dtype)
    if plan is None:
        return model(latents, t, text)
    return windowed(lambda z, w: model(z, t, text, w.anchors), latents, plan, on_window, show)
