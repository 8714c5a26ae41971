"""Long clips in windows: the split, the anchor every window reads, bounded calls, exact agreement
with whole-clip processing when one window covers the clip, and an interrupted inversion resuming."""

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from videop2p.config import OptionError, RunConfig, WindowConfig, validate
from videop2p.editing import EditConfig, edit
from videop2p.inversion import InversionConfig, invert
from videop2p.latents import encode_prompts
from videop2p.models.t2s import T2SModel
from videop2p.sampling import predict
from videop2p.windows import anchor_frames, plan_windows

SRC = "a red circle moving on the grass"
TGT = "a blue circle moving on the grass"


@pytest.mark.parametrize(("frames", "size", "overlap"), [(10, 4, 1), (33, 8, 2), (128, 16, 4), (17, 16, 0), (5, 8, 2)])
def test_windows_cover_the_clip_with_the_overlap_and_the_anchor(frames, size, overlap):
    plan = plan_windows(frames, WindowConfig(size=size, overlap=overlap))
    cover = torch.zeros(frames)
    for w, weight in zip(plan.windows, plan.weights, strict=True):
        assert w.frames[w.anchors[0]] == 0  # every window reads frame 0
        assert len(w.own) == min(size, frames)  # no short window
        cover[w.own_frames] += weight
    assert torch.allclose(cover, torch.ones(frames))  # each frame's shares sum to one
    for a, b in zip(plan.windows, plan.windows[1:], strict=False):
        assert len(set(a.own_frames) & set(b.own_frames)) >= overlap
    assert plan.whole == (frames <= size)


@pytest.mark.parametrize("overlap", [1, 4])
def test_ramp_weights_cross_fade_without_jumps(overlap):
    plan = plan_windows(45, WindowConfig(size=12, overlap=overlap, blend="ramp"))
    step = 1 / (overlap + 1) + 1e-6
    for weight in plan.weights:
        assert weight.diff().abs().max() <= step  # a window fades in and out, never jumps
    first = plan.weights[0]
    assert first[0] == 1 and first[-1] < 1  # the clip's own ends are not faded
    uniform = plan_windows(45, WindowConfig(size=12, overlap=overlap))  # the default: MultiDiffusion's average
    assert {round(float(v), 3) for w in uniform.weights for v in w} <= {1.0, 0.5, 0.333}
    assert plan.settings["blend"] == "ramp" and "blend" not in uniform.settings


def test_first_middle_anchors_are_in_every_window():
    plan = plan_windows(40, WindowConfig(size=8, overlap=2, anchors="first+middle"))
    assert anchor_frames(40, "first+middle") == (0, 20)
    for w in plan.windows:
        assert [w.frames[p] for p in w.anchors] == [0, 20]
    assert plan.settings == {"size": 8, "overlap": 2, "anchors": "first+middle"}
    assert plan_windows(8, WindowConfig()).settings is None  # a short clip keeps the official key


@pytest.mark.parametrize(("option", "value", "expected"), [("size", 1, "window"), ("overlap", 16, "overlap")])
def test_bad_window_settings_are_named(option, value, expected):
    cfg = RunConfig()
    setattr(cfg.window, option, value)
    with pytest.raises(OptionError) as e:
        validate(cfg)
    assert e.value.option == expected and repr(value) in str(e.value)


def test_cli_refuses_bad_windows_in_one_line(tmp_path):
    from videop2p.cli import app

    for flags, words in (
        (["--window", "1"], ["--window 1"]),
        (["--window", "6", "--overlap", "6"], ["--overlap 6", "window of 6 frames", "from 0 to 5"]),
        (["--window", "3"], ["--overlap 4", "window of 3 frames", "from 0 to 2", "at least 5 frames"]),  # the default
    ):
        r = CliRunner().invoke(app, ["run", str(tmp_path), "--source", SRC, "--target", TGT, *flags])
        assert r.exit_code == 2 and all(w in r.output for w in words) and "Traceback" not in r.output, r.output
        assert len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "outputs").exists()


def _random_temporal(model: T2SModel) -> T2SModel:
    """Temporal layers with non-zero outputs, so that frames of a window do depend on each other."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.unet.named_parameters():
            if ".temporal.attn.to_out" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return model


def test_every_window_reads_the_anchor_and_nothing_else_outside_itself(tiny):
    model = _random_temporal(T2SModel.from_image_unet(tiny.unet))
    plan = plan_windows(10, WindowConfig(size=4, overlap=1))
    text = encode_prompts(tiny, [SRC])
    z = torch.randn(1, 10, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        base = predict(model, z, 500, text, plan=plan)
        for frame, changed in (
            (0, set(range(10))),
            (9, {f for w in plan.windows if 9 in w.frames for f in w.own_frames}),
        ):
            bumped = z.clone()
            bumped[:, frame] += 1.0
            diff = (predict(model, bumped, 500, text, plan=plan) - base).abs().amax(dim=(0, 2, 3, 4))
            assert {f for f in range(10) if diff[f] > 1e-6} == changed, (frame, diff)
        whole = predict(model, z, 500, text)  # the whole clip: every frame sees every frame
        bumped = z.clone()
        bumped[:, 9] += 1.0
        assert ((predict(model, bumped, 500, text) - whole).abs().amax(dim=(0, 2, 3, 4)) > 1e-6).all()


def test_one_window_covering_the_clip_agrees_exactly_with_whole_clip_processing(tiny):
    model = _random_temporal(T2SModel.from_image_unet(tiny.unet))
    z0 = torch.randn(1, 5, 4, 8, 8, generator=torch.Generator().manual_seed(0)) * 0.5
    cond, empty = encode_prompts(tiny, [SRC]), encode_prompts(tiny, [""])
    c = InversionConfig(steps=4, inner_steps=3, progress=False)
    plan = plan_windows(5, WindowConfig(size=5))
    whole = invert(model, tiny.scheduler, z0, cond, empty, c)
    covered = invert(model, tiny.scheduler, z0, cond, empty, c, plan=plan)
    assert torch.equal(whole.latent_T, covered.latent_T)
    assert torch.equal(whole.uncond_embeddings, covered.uncond_embeddings)
    e = EditConfig(progress=False, blend=("circle", "circle"), blend_start=0.0)
    a = edit(model, tiny, whole, SRC, [TGT], e)
    b = edit(model, tiny, whole, SRC, [TGT], e, windows=plan)
    assert torch.equal(a.latents, b.latents) and torch.equal(a.masks, b.masks)


def test_windowed_stages_call_the_model_on_one_window_at_most(tiny):
    from videop2p.tuning import TuneConfig, tune

    model = T2SModel.from_image_unet(tiny.unet)
    plan = plan_windows(12, WindowConfig(size=4, overlap=1))
    seen = []
    hook = model.unet.register_forward_pre_hook(lambda m, args, kw: seen.append(args[0].shape[0]), with_kwargs=True)
    z0 = torch.randn(1, 12, 4, 8, 8, generator=torch.Generator().manual_seed(0)) * 0.5
    cond, empty = encode_prompts(tiny, [SRC]), encode_prompts(tiny, [""])
    try:
        before = {k: v.clone() for k, v in model.trainable_parameters().items()}
        tune(model, tiny, (z0, torch.zeros_like(z0)), cond, TuneConfig(steps=3, progress=False), plan=plan)
        assert any(not torch.equal(before[k], v) for k, v in model.trainable_parameters().items())
        inv = invert(
            model, tiny.scheduler, z0, cond, empty, InversionConfig(steps=3, inner_steps=2, progress=False), plan=plan
        )
        result = edit(
            model, tiny, inv, SRC, [TGT], EditConfig(progress=False, blend=("circle", "circle")), windows=plan
        )
    finally:
        hook.remove()
    assert result.latents.shape == (2, 12, 4, 8, 8) and result.masks.shape[:2] == (1, 12)
    assert torch.isfinite(result.latents).all()
    rows = 4  # editing: the unconditional rows of source and target, then their conditional rows
    assert max(seen) <= rows * 5 and min(seen) >= 4  # a window of 4 (+ the anchor), never the 12 frames
    assert result.attention.shape[1] == 12  # maps are kept for every clip frame


def test_an_interrupted_inversion_resumes_from_its_last_finished_step(tmp_path):
    from videop2p.pipeline import VideoP2P
    from videop2p.progress import Cancelled
    from videop2p.testing import dummy_components

    comps = dummy_components()
    frames = np.random.default_rng(0).integers(0, 255, (6, 16, 16, 3), dtype=np.uint8)
    from videop2p.latents import frames_hash
    from videop2p.pipeline import Clip

    clip = Clip(frames, 8.0, frames_hash(frames))
    window = WindowConfig(size=4, overlap=1)
    c = InversionConfig(steps=6, inner_steps=2, progress=False)
    vp = VideoP2P(comps, workspace=None)
    from videop2p.config import TuneConfig

    model, _ = vp.tune(clip, SRC, TuneConfig(steps=0, progress=False), window=window)
    model.delta_key = "k"
    uninterrupted, _ = vp.invert(model, clip, SRC, c, window=window)

    from videop2p.store.workspace import Workspace

    vp = VideoP2P(comps, workspace=Workspace(tmp_path))

    def stop(stage, done, total):
        if stage == "null-text optimisation" and done == 3:
            raise Cancelled("stopped")

    with pytest.raises(Cancelled):
        vp.invert(model, clip, SRC, c, on_step=stop, window=window)
    steps_dir = next(tmp_path.rglob("*.steps"))
    assert len(list(steps_dir.glob("ddim-*"))) == 6 and len(list(steps_dir.glob("null_text-*"))) == 3
    resumed, report = vp.invert(model, clip, SRC, c, window=window)
    assert report.action == "computed"
    assert report.unet_evaluations < sum(uninterrupted.meta["unet_evaluations"].values()) / 2
    assert torch.equal(resumed.latent_T, uninterrupted.latent_T)
    assert torch.equal(resumed.uncond_embeddings, uninterrupted.uncond_embeddings)
    assert not steps_dir.exists()  # finished: the steps are gone, the entry is there
    # the path the source branch takes is read from the entry, one step at a time
    assert torch.equal(resumed.trajectory.stack(), uninterrupted.trajectory.stack())


def test_cli_zero_means_every_frame_and_the_whole_clip():
    from videop2p.cli import _build_config

    cfg, _ = _build_config("clip.mp4", SRC, [TGT], None, size=None, frames=0, window=0)
    assert cfg.video.frames is None and cfg.window.size is None
    cfg, _ = _build_config(
        "clip.mp4", SRC, [TGT], None, size=None, frames=40, window=8, overlap=2, anchors="first+middle"
    )
    assert (cfg.video.frames, cfg.window.size, cfg.window.overlap, cfg.window.anchors.value) == (
        40,
        8,
        2,
        "first+middle",
    )


@pytest.mark.parametrize(
    "frames, size, anchors, count", [(8, None, "first", 4), (40, 16, "first+middle", 5), (8, None, "first", 2)]
)
def test_a_tuning_frame_subset_keeps_the_anchors_and_draws_the_rest_from_the_window(frames, size, anchors, count):
    from videop2p.windows import frame_subset

    plan = plan_windows(frames, WindowConfig(size=size, anchors=anchors))
    g = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(50):
        window = plan.sample(g)
        sub = frame_subset(window, count, g)
        assert len(sub.frames) == count and list(sub.frames) == sorted(set(sub.frames))
        assert set(sub.frames) <= set(window.frames)
        assert sub.anchor_frames == window.anchor_frames  # the same anchors, at their new positions
        assert set(sub.own_frames) == set(sub.frames) & set(window.own_frames)
        seen |= set(sub.frames)
    assert seen == set(range(frames)) if size is None else len(seen) > count  # every frame gets its turn
    assert frame_subset(window, None, g) is window and frame_subset(window, len(window.frames), g) is window


@pytest.mark.parametrize("frames, size, anchors", [(8, None, "first"), (40, 16, "first"), (40, 16, "first+middle")])
def test_frames_per_step_drops_a_count_only_where_every_step_reads_whole_windows(frames, size, anchors):
    from videop2p.windows import frame_subset, frames_per_step

    plan = plan_windows(frames, WindowConfig(size=size, anchors=anchors))
    g = torch.Generator().manual_seed(0)
    windows = [plan.sample(g) for _ in range(50)] + list(plan.windows)  # tuning's and the inversion's
    for count in range(2, frames + 3):
        kept = frames_per_step(count, plan)
        assert kept in (None, count)
        if kept is None:
            assert all(frame_subset(w, count, g) is w for w in windows)
    assert frames_per_step(2, plan) == 2 and frames_per_step(None, plan) is None
    if plan.whole:  # one frame short of the clip still draws
        assert frames_per_step(frames - 1, plan) == frames - 1
