import pytest
import torch

from videop2p.editing import EditConfig, reconstruct
from videop2p.inversion import (
    InversionConfig,
    InversionMethod,
    InversionMismatchError,
    invert,
    load_inversion,
    optimise_null_text,
    save_inversion,
)
from videop2p.latents import encode_prompts
from videop2p.models.t2s import T2SModel
from videop2p.sampling import ddim_schedule

SRC = "a red circle moving on the grass"
STEPS = 10


def _setup(components, frames=3):
    model = T2SModel.from_image_unet(components.unet)
    g = torch.Generator().manual_seed(0)
    z0 = torch.randn(1, frames, 4, 8, 8, generator=g) * 0.5
    return model, z0, encode_prompts(components, [SRC]), encode_prompts(components, [""])


def _mse(a, b):
    return float((a - b).pow(2).mean())


def _rec(model, comps, inv):
    return reconstruct(model, comps, inv, SRC, EditConfig(progress=False))


@pytest.mark.parametrize("name", ["tiny", "tiny_v", "tiny_zsnr"])
def test_each_method_reconstructs(name, request):
    comps = request.getfixturevalue(name)
    model, z0, cond, empty = _setup(comps)
    results = {
        m: invert(model, comps.scheduler, z0, cond, empty, InversionConfig(method=m, steps=STEPS, progress=False))
        for m in InversionMethod
    }
    errors = {m: _mse(_rec(model, comps, r), z0) for m, r in results.items()}
    # plain DDIM inversion sampled back with guidance 7.5 and the empty prompt
    plain = results[InversionMethod.FAST]
    plain.method = InversionMethod.NULL_TEXT
    plain.uncond_embeddings = empty[None].expand(STEPS, 1, *empty.shape[1:])
    plain_error = _mse(_rec(model, comps, plain), z0)
    assert errors[InversionMethod.NULL_TEXT] * 2 < plain_error, (errors, plain_error)
    assert errors[InversionMethod.DIRECT] < 1e-10
    assert errors[InversionMethod.FAST] < plain_error


def test_fast_mode_is_guidance_one_ddim(tiny):
    model, z0, cond, empty = _setup(tiny)
    inv = invert(model, tiny.scheduler, z0, cond, empty, InversionConfig(method="fast", steps=STEPS, progress=False))
    sched = ddim_schedule(tiny.scheduler, STEPS)
    from videop2p.sampling import denoise_step

    z = inv.latent_T
    with torch.no_grad():
        for t in sched.timesteps:
            z = denoise_step(model(z, t, cond), z, t, sched)
    torch.testing.assert_close(_rec(model, tiny, inv), z, atol=1e-5, rtol=1e-4)


def test_one_shared_embedding_per_step_and_objective_over_all_frames(tiny):
    model, z0, cond, empty = _setup(tiny, frames=4)
    inv = invert(model, tiny.scheduler, z0, cond, empty, InversionConfig(method="null-text", steps=4, progress=False))
    assert inv.uncond_embeddings.shape == (4, 1, 77, 32)
    assert inv.meta["unet_evaluations"]["ddim_inversion"] == 4
    # the conditional prediction once per step: evaluations = steps * (1 + inner + 1) at most
    assert inv.meta["unet_evaluations"]["null_text"] <= 4 * 12
    # the objective reads every frame: a trajectory that differs only in frame 3 changes the embeddings
    traj = torch.stack([z0] * 5)
    sched = ddim_schedule(tiny.scheduler, 4)
    c = InversionConfig(steps=4, inner_steps=2, progress=False)
    a, _ = optimise_null_text(model, traj, cond, empty, sched, c)
    traj2 = traj.clone()
    traj2[:, :, 3] += 0.5
    b, _ = optimise_null_text(model, traj2, cond, empty, sched, c)
    assert not torch.equal(a[0], b[0])


def test_saved_inversion_reproduces_bit_for_bit_and_refuses_other_inputs(tiny, tmp_path):
    model, z0, cond, empty = _setup(tiny)
    meta = {"prompt": SRC, "frames_hash": "abc", "model": tiny.info.fingerprint}
    inv = invert(
        model, tiny.scheduler, z0, cond, empty, InversionConfig(method="null-text", steps=4, progress=False), meta=meta
    )
    path = save_inversion(inv, tmp_path / "inv.safetensors")
    loaded = load_inversion(path, expected=meta)
    assert torch.equal(_rec(model, tiny, inv), _rec(model, tiny, loaded))
    for key, value in (("prompt", "another prompt"), ("frames_hash", "xyz"), ("model", "fedcba9876543210")):
        with pytest.raises(InversionMismatchError, match=key):
            load_inversion(path, expected={**meta, key: value})
    direct = invert(model, tiny.scheduler, z0, cond, empty, InversionConfig(method="direct", steps=4, progress=False))
    assert load_inversion(save_inversion(direct, tmp_path / "d.safetensors")).trajectory.shape == (5, 1, 3, 4, 8, 8)


def test_null_text_with_gradient_checkpointing_finds_the_same_embeddings(tiny):
    model, z0, cond, empty = _setup(tiny)
    runs = [
        invert(
            model,
            tiny.scheduler,
            z0,
            cond,
            empty,
            InversionConfig(steps=4, gradient_checkpointing=ckpt, progress=False),
        )
        for ckpt in (False, True)
    ]
    assert torch.allclose(runs[0].uncond_embeddings, runs[1].uncond_embeddings, atol=1e-5)
    assert not model.unet.is_gradient_checkpointing  # switched off again afterwards
    assert runs[0].meta["settings"] == runs[1].meta["settings"]  # a memory switch, not part of the key


def test_null_text_on_a_half_precision_model_stays_finite_and_close_to_float32(tiny):
    import copy

    model, z0, cond, empty = _setup(tiny)
    cfg = InversionConfig(steps=6, progress=False)
    ref = invert(model, tiny.scheduler, z0, cond, empty, cfg).uncond_embeddings
    half = copy.deepcopy(model)
    half.unet.half()
    got = invert(half, tiny.scheduler, z0.half(), cond.half(), empty.half(), cfg).uncond_embeddings
    assert torch.isfinite(got).all()  # an fp16 embedding under Adam turned NaN
    moved = (ref - empty).abs().mean()  # how far the optimisation moved the embedding
    assert (got.float() - ref).abs().mean() < 0.15 * moved


def _unet_frames(model):
    """Frame counts the UNet saw with gradients on (the null-text loss's passes)."""
    seen = []
    hook = model.unet.register_forward_pre_hook(
        lambda _, args: seen.append(args[0].shape[0]) if torch.is_grad_enabled() else None
    )
    return seen, hook


def test_null_text_on_some_frames_reads_those_frames_and_still_reconstructs(tiny):
    model, z0, cond, empty = _setup(tiny, frames=6)
    base = InversionConfig(method="null-text", steps=STEPS, progress=False)
    every = invert(model, tiny.scheduler, z0, cond, empty, base)
    # as many frames as the clip has: the official optimisation, bit for bit
    same = invert(model, tiny.scheduler, z0, cond, empty, InversionConfig(**{**vars(base), "frames": 6}))
    assert torch.equal(same.uncond_embeddings, every.uncond_embeddings)
    seen, hook = _unet_frames(model)
    try:
        c = InversionConfig(**{**vars(base), "frames": 2})
        some = invert(model, tiny.scheduler, z0, cond, empty, c)
    finally:
        hook.remove()
    assert seen and set(seen) == {2}  # every iteration's forward and backward on 2 of the 6 frames
    assert not torch.equal(some.uncond_embeddings, every.uncond_embeddings)
    again = invert(model, tiny.scheduler, z0, cond, empty, c)
    assert torch.equal(again.uncond_embeddings, some.uncond_embeddings)  # the draws are fixed per step
    # the step is still taken on every frame, so the source reconstructs about as well
    fast = invert(model, tiny.scheduler, z0, cond, empty, InversionConfig(method="fast", steps=STEPS, progress=False))
    fast.method, fast.uncond_embeddings = InversionMethod.NULL_TEXT, empty[None].expand(STEPS, 1, *empty.shape[1:])
    plain = _mse(_rec(model, tiny, fast), z0)
    assert _mse(_rec(model, tiny, some), z0) * 2 < plain, (_mse(_rec(model, tiny, some), z0), plain)


def test_null_text_on_some_frames_of_each_window(tiny):
    from videop2p.config import WindowConfig
    from videop2p.windows import plan_windows

    model, z0, cond, empty = _setup(tiny, frames=7)
    plan = plan_windows(7, WindowConfig(size=4, overlap=1))
    c = InversionConfig(method="null-text", steps=4, inner_steps=2, frames=3, progress=False)
    seen, hook = _unet_frames(model)
    try:
        inv = invert(model, tiny.scheduler, z0, cond, empty, c, plan=plan)
    finally:
        hook.remove()
    assert set(seen) == {3}
    assert torch.isfinite(inv.uncond_embeddings).all() and inv.trajectory.shape == (5, *z0.shape)


def test_an_inversion_that_stops_being_finite_names_its_step_and_cause(tiny, tmp_path):
    from videop2p.sampling import DivergedError

    model, z0, cond, empty = _setup(tiny)
    fast = InversionConfig(method=InversionMethod.FAST, steps=STEPS, progress=False)
    with pytest.raises(
        DivergedError, match=f"Null-text optimisation diverged at step \\d+ of {STEPS}: the embedding .*1e\\+15"
    ):
        invert(model, tiny.scheduler, z0, cond, empty, InversionConfig(steps=STEPS, lr=1e15, progress=False))
    with torch.no_grad():
        model.unet.conv_out.bias.fill_(float("nan"))
    with pytest.raises(DivergedError, match=f"DDIM inversion diverged at step 1 of {STEPS}: .*check its weights"):
        invert(model, tiny.scheduler, z0, cond, empty, fast)


def test_a_kept_inversion_that_is_not_finite_is_refused_so_the_workspace_inverts_again(tiny, tmp_path):
    model, z0, cond, empty = _setup(tiny)
    inv = invert(
        model, tiny.scheduler, z0, cond, empty, InversionConfig(method=InversionMethod.FAST, steps=4, progress=False)
    )
    inv.latent_T[0, 0, 0, 0, 0] = float("nan")
    path = save_inversion(inv, tmp_path / "inv.safetensors")
    with pytest.raises(InversionMismatchError, match="not finite; invert again"):
        load_inversion(path)


@pytest.mark.parametrize("method", [InversionMethod.NULL_TEXT, InversionMethod.DIRECT])
def test_an_inversion_with_step_files_reads_its_trajectory_from_them_one_step_at_a_time(tiny, tmp_path, method):
    from videop2p.store.codec import CorruptFileError
    from videop2p.store.workspace import StepFiles

    model, z0, cond, empty = _setup(tiny)
    c = InversionConfig(method=method, steps=STEPS, inner_steps=2, progress=False)
    in_memory = invert(model, tiny.scheduler, z0, cond, empty, c)
    saved = StepFiles(tmp_path / "inv.steps", {"clip": "abc"})
    kept = invert(model, tiny.scheduler, z0, cond, empty, c, saved=saved)
    assert torch.equal(kept.trajectory.stack(), in_memory.trajectory.stack())
    loaded = load_inversion(save_inversion(kept, tmp_path / "inv.safetensors"))  # written step by step
    saved.clear()
    with pytest.raises(CorruptFileError):  # none of its steps was held in memory: they are read from their files
        kept.trajectory[1]
    assert torch.equal(loaded.trajectory.stack(), in_memory.trajectory.stack())
    assert torch.equal(_rec(model, tiny, loaded), _rec(model, tiny, in_memory))
    (tmp_path / "inv.safetensors").unlink()  # removed meanwhile (`videop2p workspace remove`): the file is named
    with pytest.raises(CorruptFileError, match="inv.safetensors"):
        loaded.trajectory[2]
