"""Scheduler helpers shared by every model: Stable Diffusion's schedule, and the shifted, zero-terminal-SNR
variants a model trained at another latent size may use."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from diffusers import DDIMScheduler
from diffusers.schedulers.scheduling_ddim import rescale_zero_terminal_snr

from videop2p.config import OptionError, check_number

PREDICTION_TYPES = ("epsilon", "v_prediction")
TIMESTEP_SPACINGS = ("leading", "trailing", "linspace")


def sd_alphas_cumprod(num_train_timesteps: int = 1000) -> torch.Tensor:
    """Stable Diffusion 1.x's cumulative alphas: scaled-linear betas 0.00085 to 0.012. (T,) float64."""
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, num_train_timesteps, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, dim=0)


def shift_log_snr(alphas_cumprod: torch.Tensor, shift: float) -> torch.Tensor:
    """Cumulative alphas whose log-SNR is raised by 2 ln(shift) at every timestep.

    Hoogeboom et al. 2023 ("simple diffusion", sec. 3.1): a schedule made for a base resolution keeps
    the same low-frequency signal at resolution d when its log-SNR is shifted by 2 ln(base / d). A model
    whose latents are `shift` times smaller than Stable Diffusion's 64x64 takes shift = 64 / side, so
    that its layout is decided as early in the trajectory as Stable Diffusion's.
    """
    log_snr = torch.log(alphas_cumprod) - torch.log1p(-alphas_cumprod) + 2 * math.log(shift)
    return torch.sigmoid(log_snr)


def betas_from_alphas_cumprod(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """Per-step betas of a cumulative-alpha curve: beta_t = 1 - abar_t / abar_{t-1}. (T,)"""
    previous = torch.cat([alphas_cumprod.new_ones(1), alphas_cumprod[:-1]])
    return 1.0 - alphas_cumprod / previous


def _as_setting(key: str, value=None) -> str:
    return key if value is None else f"{key}={value!r}"


def check_schedule(
    prediction_type: str,
    snr_shift: float,
    zero_terminal_snr: bool,
    timestep_spacing: str,
    show: Callable[..., str] = _as_setting,
) -> None:
    """Refuse a schedule `make_scheduler` cannot build, naming the bad value as `show(key, value)` prints
    it (a setting by default; the command line passes its flags)."""
    if prediction_type not in PREDICTION_TYPES:
        raise ValueError(
            f"{show('prediction_type', prediction_type)} is not valid; expected one of {', '.join(PREDICTION_TYPES)}."
        )
    if timestep_spacing not in TIMESTEP_SPACINGS:
        raise ValueError(
            f"{show('timestep_spacing', timestep_spacing)} is not valid; expected one of {', '.join(TIMESTEP_SPACINGS)}."
        )
    if not (math.isfinite(snr_shift) and snr_shift > 0):
        raise ValueError(
            f"{show('snr_shift', snr_shift)} is not valid; expected a positive number (1: Stable Diffusion's schedule)."
        )
    if zero_terminal_snr and prediction_type != "v_prediction":
        raise ValueError(
            f"{show('zero_terminal_snr')} needs {show('prediction_type', 'v_prediction')}: an epsilon model "
            "cannot predict the image from pure noise."
        )


BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")  # DDIMScheduler's, where no trained betas are given


def _whole_problem(key: str, value, low: int, high: float = math.inf) -> str | None:
    """`config.check_number`'s reason why `value` is not a whole number in [low, high], after `key`; or None."""
    try:
        check_number(None, key, value, low, high, whole=True)
    except OptionError as e:
        return f"{key} {e.reason.rstrip('.')}"
    return None


def _rate(value) -> bool:
    """A beta: a finite number in (0, 1] (1 at the end of a zero-terminal-SNR schedule)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and 0 < value <= 1


def scheduler_config_problem(config: dict) -> str | None:
    """What makes a model's scheduler config unusable for DDIM sampling and inversion, in words naming the
    key and what would be valid, or None. diffusers takes such a config and fails later, mid-run (trained
    betas fewer than the training timesteps index past their end) or with its own words."""
    n = config.get("num_train_timesteps", 1000)
    problem = _whole_problem("num_train_timesteps", n, 2)
    if problem is not None:
        return problem
    betas = config.get("trained_betas")
    if betas is not None:
        if not isinstance(betas, list | tuple) or len(betas) != n:
            count = len(betas) if isinstance(betas, list | tuple) else type(betas).__name__
            return f"trained_betas holds {count} values; expected one per training timestep ({n})"
        bad = next((b for b in betas if not _rate(b)), None)
        if bad is not None:
            return f"trained_betas holds {bad!r}; expected numbers in (0, 1]"
    else:
        schedule = config.get("beta_schedule", "linear")
        if schedule not in BETA_SCHEDULES:
            return f"beta_schedule {schedule!r} is not valid; expected one of {', '.join(BETA_SCHEDULES)}"
        for key in ("beta_start", "beta_end"):
            if not _rate(config.get(key, 0.0001)):
                return f"{key} {config.get(key)!r} is not valid; expected a number in (0, 1]"
    for key, valid in (("prediction_type", PREDICTION_TYPES), ("timestep_spacing", TIMESTEP_SPACINGS)):
        value = config.get(key, valid[0])
        if value not in valid:
            return f"{key} {value!r} is not valid; expected one of {', '.join(valid)}"
    return _whole_problem("steps_offset", config.get("steps_offset", 0), 0, n - 1)


def make_scheduler(
    prediction_type: str = "epsilon",
    snr_shift: float = 1.0,
    zero_terminal_snr: bool = False,
    timestep_spacing: str = "leading",
) -> DDIMScheduler:
    """DDIM with Stable Diffusion 1.x's schedule, or that schedule shifted and rescaled.

    With the defaults: scaled-linear betas 0.00085-0.012 over 1000 steps, as in Stable Diffusion.
    `snr_shift` > 1 raises the log-SNR by 2 ln(snr_shift) (`shift_log_snr`); `zero_terminal_snr`
    rescales the schedule so that the last timestep is pure noise (Lin et al. 2024, "Common diffusion
    noise schedules and sample steps are flawed", Algorithm 1), which needs v-prediction and
    'trailing' timesteps to sample from pure noise. A changed schedule is written as the final
    `trained_betas`, so that any diffusers version that reads the folder gets the same schedule.
    """
    check_schedule(prediction_type, snr_shift, zero_terminal_snr, timestep_spacing)
    trained_betas = None
    if snr_shift != 1.0 or zero_terminal_snr:
        betas = betas_from_alphas_cumprod(shift_log_snr(sd_alphas_cumprod(), snr_shift))
        if zero_terminal_snr:
            betas = rescale_zero_terminal_snr(betas)
        trained_betas = betas.tolist()
    return DDIMScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        trained_betas=trained_betas,
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,  # read by "leading" only; pipelines reset any other value to 1
        prediction_type=prediction_type,
        timestep_spacing=timestep_spacing,
    )
