import pytest
import torch

from videop2p.models.t2s import T2SModel
from videop2p.store.codec import load_tensors
from videop2p.tuning import DeltaMismatchError, TuneConfig, denoising_loss, load_delta, save_delta, tune


def _clip(seed=1, f=3):
    g = torch.Generator().manual_seed(seed)
    mean = torch.randn(1, f, 4, 8, 8, generator=g)
    return mean, torch.full_like(mean, 0.01), torch.randn(1, 77, 32, generator=g)


@torch.no_grad()
def _eval_loss(model, tiny, mean, text):
    g = torch.Generator().manual_seed(123)
    return sum(float(denoising_loss(model, tiny.scheduler, mean, text, g)) for _ in range(16)) / 16


@pytest.mark.parametrize("components", ["tiny", "tiny_v"])
def test_tuning_lowers_loss_and_changes_exactly_the_trainable_set(components, request):
    tiny = request.getfixturevalue(components)
    model = T2SModel.from_image_unet(tiny.unet)
    mean, std, text = _clip()
    before = {n: p.detach().clone() for n, p in model.unet.named_parameters()}
    loss0 = _eval_loss(model, tiny, mean, text)
    result = tune(model, tiny, (mean, std), text, TuneConfig(steps=40, lr=2e-3, progress=False))
    loss1 = _eval_loss(model, tiny, mean, text)
    assert len(result.losses) == 40
    assert loss1 < loss0 * 0.95, (loss0, loss1)
    trainable = set(model.trainable_parameters())
    for n, p in model.unet.named_parameters():
        if n in trainable:
            assert not torch.equal(p, before[n]), f"trainable {n} did not change (lost gradient?)"
        else:
            assert torch.equal(p, before[n]), f"frozen {n} changed"


def test_delta_round_trips_exactly_and_refuses_other_inputs(tiny, tmp_path):
    model = T2SModel.from_image_unet(tiny.unet)
    mean, std, text = _clip()
    tune(model, tiny, (mean, std), text, TuneConfig(steps=3, lr=1e-3, progress=False))
    meta = {
        "base_model": tiny.info.fingerprint,
        "num_frames": 3,
        "size": [16, 16],
        "frames_hash": "abc",
        "frame_mode": "first",
    }
    path = save_delta(model, tmp_path / "delta.safetensors", meta)
    fresh = T2SModel.from_image_unet(tiny.unet)
    assert load_delta(fresh, path, expected=meta)["num_frames"] == 3
    for (n, a), (_, b) in zip(model.unet.state_dict().items(), fresh.unet.state_dict().items(), strict=True):
        assert torch.equal(a, b), n
    n_delta = sum(p.numel() for p in model.trainable_parameters().values())
    assert n_delta < sum(p.numel() for p in model.unet.parameters()) / 2
    for key, value in (("base_model", "0123456789abcdef"), ("num_frames", 8), ("size", [32, 16])):
        with pytest.raises(DeltaMismatchError, match=key):
            load_delta(T2SModel.from_image_unet(tiny.unet), path, expected={**meta, key: value})


def test_gradient_checkpointing_gives_the_same_update_in_every_block(tiny):
    """The official code's reentrant checkpointing left every down block untrained; ours must not."""
    mean, std, text = _clip(seed=4)
    models = {}
    for ckpt in (False, True):
        model = T2SModel.from_image_unet(tiny.unet)
        tune(model, tiny, (mean, std), text, TuneConfig(steps=2, lr=1e-3, gradient_checkpointing=ckpt, progress=False))
        models[ckpt] = model.trainable_parameters()
    start = T2SModel.from_image_unet(tiny.unet).trainable_parameters()
    down = [n for n in start if n.startswith("down_blocks")]
    assert down and all(not torch.equal(models[True][n], start[n]) for n in down)
    for n in start:
        assert torch.allclose(models[True][n], models[False][n], atol=1e-6), n


def test_a_cancelled_tuning_leaves_the_unet_frozen_in_eval_mode_without_checkpointing(tiny):
    from videop2p.progress import Cancelled

    model = T2SModel.from_image_unet(tiny.unet)
    model.unet.eval()
    mean, std, text = _clip()

    def stop_at_third_step(stage, i, total):
        if i == 2:
            raise Cancelled(stage)

    with pytest.raises(Cancelled):
        tune(model, tiny, (mean, std), text, TuneConfig(steps=10, progress=False), on_step=stop_at_third_step)
    assert not model.unet.training
    assert not model.unet.is_gradient_checkpointing
    assert not any(p.requires_grad for p in model.unet.parameters())


@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float16, 0.15), (torch.bfloat16, 0.6)])
def test_a_half_precision_unet_tunes_like_a_float32_one(tiny, dtype, tolerance):
    """The trainable set trains in float32 (master weights) and returns to the UNet's dtype.

    Trained in fp16 itself the losses turn NaN; in bf16 most of each 3e-5 step rounds away. What is
    left here is the half-precision forward pass and the final rounding of the weights.
    """
    import copy

    model = T2SModel.from_image_unet(tiny.unet)
    mean, std, text = _clip()
    init = {n: p.detach().clone() for n, p in model.trainable_parameters().items()}
    half = copy.deepcopy(model)
    half.unet.to(dtype)
    cfg = TuneConfig(steps=20, lr=3e-5, progress=False)
    tune(model, tiny, (mean, std), text, cfg)
    result = tune(half, tiny, (mean.to(dtype), std.to(dtype)), text.to(dtype), cfg)
    assert all(torch.isfinite(torch.tensor(result.losses)))
    update = error = 0.0
    for n, p in half.trainable_parameters().items():
        assert p.dtype == dtype and not p.requires_grad
        want = model.trainable_parameters()[n].detach() - init[n]
        got = p.detach().float() - init[n].to(dtype).float()
        update += float(want.abs().sum())
        error += float((got - want).abs().sum())
    assert error < tolerance * update, error / update


def test_tuning_on_a_frame_subset_trains_every_trainable_tensor_on_fewer_rows(tiny):
    model = T2SModel.from_image_unet(tiny.unet)
    mean, std, text = _clip(f=6)
    before = {n: p.detach().clone() for n, p in model.trainable_parameters().items()}
    rows = []
    hook = model.unet.conv_in.register_forward_hook(lambda m, i, o: rows.append(o.shape[0]))
    result = tune(model, tiny, (mean, std), text, TuneConfig(steps=5, frames=3, lr=2e-3, progress=False))
    hook.remove()
    assert rows == [3] * 5 and result.metadata["frames"] == 3  # 3 of the 6 frames in every step
    for n, p in model.trainable_parameters().items():
        assert not torch.equal(p, before[n]), f"{n} did not change"
    full = T2SModel.from_image_unet(tiny.unet)
    tune(full, tiny, (mean, std), text, TuneConfig(steps=5, lr=2e-3, progress=False))
    sub = T2SModel.from_image_unet(tiny.unet)
    tune(sub, tiny, (mean, std), text, TuneConfig(steps=5, frames=6, lr=2e-3, progress=False))
    for (n, a), b in zip(full.trainable_parameters().items(), sub.trainable_parameters().values(), strict=True):
        assert torch.equal(a, b), f"frames=6 of 6 should be the official run ({n})"


def test_a_setting_added_later_keeps_the_keys_of_results_kept_before_it():
    from videop2p.config import settings_of

    assert "frames" not in settings_of(TuneConfig(steps=3))  # unset: the key every earlier delta was kept under
    assert settings_of(TuneConfig(steps=3, frames=4))["frames"] == 4


def _stop_at(step):
    from videop2p.progress import Cancelled

    def hook(stage, i, total):
        if i == step:
            raise Cancelled(stage)

    return hook


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_an_interrupted_tuning_resumes_from_its_kept_state_to_the_same_weights(tiny, tmp_path, dtype):
    """Stopped at step 7 with a state kept after every step, the next run starts at step 7 and ends
    with exactly the weights and losses of a run that never stopped (noise, timesteps, windows,
    frames, AdamW, and the loss scale of a float16 model)."""
    import copy

    from videop2p.config import WindowConfig
    from videop2p.progress import Cancelled
    from videop2p.store.workspace import StepFiles
    from videop2p.windows import plan_windows

    unet = copy.deepcopy(tiny.unet).to(dtype)
    mean, std, text = _clip(seed=5, f=5)
    plan = plan_windows(5, WindowConfig(size=3, overlap=1))  # each step: one window at a random place
    assert len(plan.windows) > 1
    cfg = TuneConfig(steps=10, frames=3, lr=2e-3, save_seconds=0, progress=False)
    whole = T2SModel.from_image_unet(unet)
    expected = tune(whole, tiny, (mean, std), text, cfg, plan=plan)
    saved = StepFiles(tmp_path / "tune.steps", {"clip": "abc", "steps": 10})
    with pytest.raises(Cancelled):
        tune(T2SModel.from_image_unet(unet), tiny, (mean, std), text, cfg, _stop_at(7), plan, saved)
    assert [p.name for p in (tmp_path / "tune.steps").iterdir()] == ["tune-00007.safetensors"]  # the last one only
    if dtype == torch.float16:
        assert "scaler.scale" in load_tensors(tmp_path / "tune.steps" / "tune-00007.safetensors")[0]
    seen = []
    resumed = T2SModel.from_image_unet(unet)
    result = tune(resumed, tiny, (mean, std), text, cfg, lambda s, i, n: seen.append(i), plan, saved)
    assert result.resumed_from == 7 and seen == [7, 8, 9]
    assert result.losses == expected.losses
    for (n, a), b in zip(whole.trainable_parameters().items(), resumed.trainable_parameters().values(), strict=True):
        assert torch.equal(a, b), n


def _tune_fresh(tiny, cfg, on_step=None, saved=None):
    """Tune a freshly inflated model on `_clip()`; returns the TuneResult."""
    mean, std, text = _clip()
    return tune(T2SModel.from_image_unet(tiny.unet), tiny, (mean, std), text, cfg, on_step, None, saved)


def test_a_kept_tuning_state_for_other_settings_or_damaged_is_not_resumed(tiny, tmp_path):
    from videop2p.progress import Cancelled
    from videop2p.store.workspace import StepFiles

    cfg = TuneConfig(steps=6, lr=2e-3, save_seconds=0, progress=False)
    fresh = _tune_fresh(tiny, cfg)
    with pytest.raises(Cancelled):
        _tune_fresh(tiny, cfg, _stop_at(5), StepFiles(tmp_path, {"clip": "a"}))
    other = _tune_fresh(tiny, cfg, saved=StepFiles(tmp_path, {"clip": "b"}))
    assert other.resumed_from == 0 and other.losses == fresh.losses
    (tmp_path / "tune-00005.safetensors").write_bytes(b"not a safetensors file")  # "b"'s last state
    damaged = _tune_fresh(tiny, cfg, saved=StepFiles(tmp_path, {"clip": "a"}))
    assert damaged.resumed_from == 0 and damaged.losses == fresh.losses


def test_the_state_interval_is_checked_and_is_not_part_of_a_results_key():
    from videop2p.config import OptionError, check_tune, settings_of

    assert settings_of(TuneConfig(steps=3, save_seconds=7)) == settings_of(TuneConfig(steps=3))
    for bad in (-1, float("nan"), float("inf"), "often"):
        with pytest.raises(OptionError, match="save_seconds"):
            check_tune(TuneConfig(save_seconds=bad))
    for good in (0, 2.5, None):
        check_tune(TuneConfig(save_seconds=good))


@pytest.mark.parametrize("seconds", [3600.0, None])
def test_no_state_is_kept_before_its_time_or_when_asked_for_none(tiny, tmp_path, seconds):
    from videop2p.progress import Cancelled
    from videop2p.store.workspace import StepFiles

    with pytest.raises(Cancelled):
        _tune_fresh(
            tiny, TuneConfig(steps=5, save_seconds=seconds, progress=False), _stop_at(4), StepFiles(tmp_path, {})
        )
    assert not list(tmp_path.glob("tune-*"))


def test_a_disk_that_refuses_the_state_costs_the_resume_not_the_tuning(tiny, tmp_path, caplog):
    from videop2p.store.workspace import StepFiles

    cfg = TuneConfig(steps=4, lr=2e-3, save_seconds=0, progress=False)
    expected = _tune_fresh(tiny, cfg)
    (tmp_path / "a-file").write_text("x")  # the states' folder cannot be made under a file
    with caplog.at_level("WARNING"):
        result = _tune_fresh(tiny, cfg, saved=StepFiles(tmp_path / "a-file" / "tune.steps", {"clip": "a"}))
    assert result.losses == expected.losses
    warnings = [r for r in caplog.records if "could not keep the tuning state" in r.getMessage()]
    assert len(warnings) == 1  # warned once, then no more tries


def test_a_kept_state_that_does_not_fit_the_trainable_set_is_not_resumed(tiny, tmp_path, caplog):
    from videop2p.progress import Cancelled
    from videop2p.store.codec import save_tensors
    from videop2p.store.workspace import StepFiles

    cfg = TuneConfig(steps=6, lr=2e-3, save_seconds=0, progress=False)
    fresh = _tune_fresh(tiny, cfg)
    saved = StepFiles(tmp_path, {"clip": "a"})
    with pytest.raises(Cancelled):
        _tune_fresh(tiny, cfg, _stop_at(5), saved)
    path = tmp_path / "tune-00005.safetensors"
    state, meta = load_tensors(path)
    name = next(k for k in state if k.startswith("param."))
    save_tensors(path, {**state, name: torch.zeros(3)}, meta)  # another shape: another version's trainable set
    with caplog.at_level("WARNING"):
        result = _tune_fresh(tiny, cfg, saved=saved)
    assert result.resumed_from == 0 and result.losses == fresh.losses
    assert any("does not fit" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_each_tuning_step_clips_the_gradient_norm_as_the_authors_script_does(tiny, dtype, monkeypatch):
    """run_tuning.py clips the gradients to `max_grad_norm` (1.0) before every step; in float16 the
    clipping reads the unscaled gradients, so the loss scale does not change what is clipped."""
    import copy

    import videop2p.tuning as tuning

    seen, step = [], tuning.optimizer_step

    def spy(opt, scaler):  # the gradients the optimiser steps on (unscaled already where clipped)
        grads = [p.grad for group in opt.param_groups for p in group["params"] if p.grad is not None]
        seen.append(float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))))
        step(opt, scaler)

    monkeypatch.setattr(tuning, "optimizer_step", spy)
    mean, std, text = _clip()
    norms = {}
    for limit in (None, 1e-3):
        model = T2SModel.from_image_unet(tiny.unet)
        model.unet.to(dtype)
        seen.clear()
        cfg = TuneConfig(steps=4, lr=1e-3, max_grad_norm=limit, progress=False)
        tune(copy.deepcopy(model), tiny, (mean.to(dtype), std.to(dtype)), text.to(dtype), cfg)
        norms[limit] = list(seen)
    assert min(norms[None]) > 1e-3  # unclipped, the gradients are larger than the limit (float16: and scaled)
    assert max(norms[1e-3]) <= 1e-3 * 1.001
    assert TuneConfig().max_grad_norm == 1.0  # the script's default


def test_a_diverging_tuning_stops_at_its_step_naming_the_rate_and_keeps_nothing(tiny, tmp_path):
    from videop2p.sampling import DivergedError
    from videop2p.store.workspace import StepFiles

    model = T2SModel.from_image_unet(tiny.unet)
    mean, std, text = _clip()
    saved = StepFiles(tmp_path, {"key": "k"})
    cfg = TuneConfig(steps=20, lr=1e12, save_seconds=0, progress=False)
    with pytest.raises(
        DivergedError,
        match=r"Tuning diverged at step \d+ of 20: the (loss|tuned weight \S+) is not finite.*lower learning rate than 1e\+12",
    ) as e:
        tune(model, tiny, (mean, std), text, cfg, saved=saved)
    step = int(e.value.args[0].split("step ")[1].split(" ")[0])
    assert 1 < step <= 20  # the first step's loss was finite: the rate, not the model, is named
    found = saved.latest("tune")  # kept at every step until then
    assert found is not None and found[0] < step
    assert all(torch.isfinite(v).all() for v in found[1].values() if v.is_floating_point())


def test_a_model_whose_predictions_are_not_finite_is_named_at_the_first_step(tiny):
    from videop2p.sampling import DivergedError

    model = T2SModel.from_image_unet(tiny.unet)
    with torch.no_grad():
        model.unet.conv_out.bias.fill_(float("nan"))
    mean, std, text = _clip()
    with pytest.raises(DivergedError, match="step 1 of 5: the loss .*not finite before any update"):
        tune(model, tiny, (mean, std), text, TuneConfig(steps=5, progress=False))


def test_a_kept_delta_that_is_not_finite_is_refused_so_the_workspace_tunes_again(tiny, tmp_path):
    model = T2SModel.from_image_unet(tiny.unet)
    name, p = next(iter(model.trainable_parameters().items()))
    with torch.no_grad():
        p.view(-1)[0] = float("inf")
    path = save_delta(model, tmp_path / "delta.safetensors", {"num_frames": 3})
    with pytest.raises(DeltaMismatchError, match="not finite; tune again"):
        load_delta(T2SModel.from_image_unet(tiny.unet), path, expected={"num_frames": 3})
