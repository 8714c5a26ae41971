"""Noise schedules: Stable Diffusion's, shifted for a smaller latent grid, and rescaled to zero terminal SNR."""

import math

import pytest
import torch
from diffusers import DDIMScheduler

from videop2p.models.schedulers import make_scheduler, scheduler_config_problem, sd_alphas_cumprod, shift_log_snr
from videop2p.sampling import DDIMSchedule, ddim_schedule, denoise_step, invert_step, to_x0_eps


def _log_snr(a: torch.Tensor) -> torch.Tensor:
    return torch.log(a) - torch.log1p(-a)


def test_the_default_is_stable_diffusions_schedule():
    s = make_scheduler()
    reference = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    torch.testing.assert_close(s.alphas_cumprod, reference.alphas_cumprod)
    assert s.config.trained_betas is None and s.config.prediction_type == "epsilon"


@pytest.mark.parametrize("shift", [0.5, 2.0, 4.0])
def test_a_shift_raises_the_log_snr_by_twice_its_log_at_every_timestep(shift):
    base = sd_alphas_cumprod()
    shifted = shift_log_snr(base, shift)
    torch.testing.assert_close(_log_snr(shifted) - _log_snr(base), torch.full_like(base, 2 * math.log(shift)))


def test_zero_terminal_snr_ends_in_pure_noise_and_the_folder_reproduces_it(tmp_path):
    s = make_scheduler("v_prediction", snr_shift=4.0, zero_terminal_snr=True, timestep_spacing="trailing")
    a = s.alphas_cumprod
    assert a[-1] == 0 and bool((a[1:] < a[:-1]).all())  # strictly decreasing to exactly 0
    # the shift gives more signal than SD's schedule over most of the trajectory; the rescale takes it to 0 at the end
    assert bool((a[:900] > sd_alphas_cumprod().float()[:900]).all())
    s.save_pretrained(tmp_path)
    again = DDIMScheduler.from_pretrained(tmp_path)
    assert torch.equal(again.alphas_cumprod, a)
    assert again.config.prediction_type == "v_prediction"
    sched = ddim_schedule(again, 50)
    assert sched.timesteps[0] == 999 and sched.timesteps[-1] == 19  # sampling starts from pure noise


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"prediction_type": "sample"}, "prediction_type='sample'"),
        ({"timestep_spacing": "middle"}, "timestep_spacing='middle'"),
        ({"snr_shift": 0.0}, "snr_shift=0.0"),
        ({"snr_shift": float("nan")}, "snr_shift=nan"),
        ({"zero_terminal_snr": True}, "v_prediction"),
    ],
)
def test_bad_schedules_are_refused_by_name(kwargs, named):
    with pytest.raises(ValueError, match=named.replace("(", r"\(")):
        make_scheduler(**kwargs)


def test_ddim_steps_through_the_pure_noise_timestep_stay_finite():
    s = make_scheduler("v_prediction", snr_shift=4.0, zero_terminal_snr=True, timestep_spacing="trailing")
    sched: DDIMSchedule = ddim_schedule(s, 10)
    x, v = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    x0, eps = to_x0_eps(v, x, sched.alpha(999), "v_prediction")
    torch.testing.assert_close(x0, -v)  # at zero SNR the latent is all noise: x0 = -v, eps = x
    torch.testing.assert_close(eps, x)
    down = denoise_step(v, x, 999, sched)
    up = invert_step(v, x, 999, sched)  # inverting onto the last timestep lands on the noise estimate
    assert torch.isfinite(down).all() and torch.isfinite(up).all()
    torch.testing.assert_close(up, eps)  # the noise a model told "t = 999" sees in x: x itself


@pytest.mark.parametrize("spacing", ["leading", "trailing"])
def test_a_v_model_inverts_exactly_as_the_epsilon_model_it_re_expresses(spacing):
    """DDIM inversion reuses the noise the model predicts at t; a v-model that is an epsilon model written
    as v = (eps - sqrt(1 - abar_t) x) / sqrt(abar_t) must take the same step, on any schedule."""
    v_sched = ddim_schedule(make_scheduler("v_prediction", snr_shift=4.0, timestep_spacing=spacing), 10)
    e_sched = ddim_schedule(make_scheduler("epsilon", snr_shift=4.0, timestep_spacing=spacing), 10)
    gen = torch.Generator().manual_seed(0)
    x, eps = torch.randn(2, 4, 8, 8, generator=gen), torch.randn(2, 4, 8, 8, generator=gen)
    for t in v_sched.timesteps:
        a = v_sched.alpha(t)
        v = (eps - (1 - a) ** 0.5 * x) / a**0.5
        torch.testing.assert_close(invert_step(v, x, t, v_sched), invert_step(eps, x, t, e_sched))
        torch.testing.assert_close(denoise_step(v, x, t, v_sched), denoise_step(eps, x, t, e_sched))


def test_the_most_ddim_steps_are_read_from_the_schedulers_spacing_and_offset(tiny):
    from diffusers import DDIMScheduler

    from videop2p.sampling import ddim_schedule, most_steps, steps_fit

    leading = tiny.scheduler  # SD's: leading spacing, offset 1
    assert steps_fit(leading, 999) and not steps_fit(leading, 1000) and most_steps(leading, 5000) == 999
    assert max(ddim_schedule(leading, 999).timesteps) == 999
    trailing = DDIMScheduler.from_config(leading.config, timestep_spacing="trailing", steps_offset=0)
    assert steps_fit(trailing, 1000) and not steps_fit(trailing, 1001) and most_steps(trailing, 1001) == 1000
    before = list(leading.timesteps)
    steps_fit(leading, 7)
    assert list(leading.timesteps) == before  # the model's own scheduler is not touched


SD15_SCHEDULER = {  # Stable Diffusion 1.5's scheduler_config.json (a PNDM config, read as DDIM's)
    "_class_name": "PNDMScheduler",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
    "clip_sample": False,
}


@pytest.mark.parametrize(
    "config",
    [
        SD15_SCHEDULER,
        {**SD15_SCHEDULER, "prediction_type": "v_prediction"},  # Stable Diffusion 2.x at 768
        {"num_train_timesteps": 1000},  # every other key at DDIM's default
        dict(make_scheduler("v_prediction", 4.0, True, "trailing").config),  # trained betas ending at 1
    ],
)
def test_the_schedulers_of_real_models_pass_the_config_check(config):
    assert scheduler_config_problem(config) is None


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"num_train_timesteps": 0}, "num_train_timesteps 0 is not valid; expected a whole number >= 2"),
        ({"num_train_timesteps": 10.5}, "num_train_timesteps 10.5 is not valid"),
        ({"trained_betas": [0.5, 0.5]}, "trained_betas holds 2 values; expected one per training timestep (1000)"),
        ({"trained_betas": [0.01] * 999 + [float("nan")]}, "trained_betas holds nan; expected numbers in (0, 1]"),
        ({"trained_betas": [0.0] * 1000}, "trained_betas holds 0.0"),
        ({"beta_schedule": "cosine"}, "beta_schedule 'cosine' is not valid; expected one of linear, scaled_linear"),
        ({"beta_end": 2.0}, "beta_end 2.0 is not valid; expected a number in (0, 1]"),
        ({"prediction_type": "sample"}, "prediction_type 'sample' is not valid; expected one of epsilon, v_prediction"),
        ({"timestep_spacing": "middle"}, "timestep_spacing 'middle' is not valid; expected one of leading, trailing"),
        ({"steps_offset": 1000}, "steps_offset 1000 is not valid; expected a whole number from 0 to 999"),
        ({"steps_offset": -1}, "steps_offset -1 is not valid"),
    ],
)
def test_a_scheduler_config_ddim_cannot_use_is_named_by_its_key(changes, named):
    assert named in scheduler_config_problem({**SD15_SCHEDULER, **changes})
