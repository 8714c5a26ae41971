"""The store: one atomic writer, one codec, and a workspace whose entries follow the tuned model."""

import dataclasses
import json
import logging
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from videop2p.config import InversionConfig, InversionMethod, TuneConfig, VideoConfig, WindowConfig
from videop2p.io.hdr import HLG
from videop2p.io.video import VideoError, probe_video
from videop2p.io.writing import write_frames, write_mp4
from videop2p.pipeline import VideoP2P
from videop2p.store.codec import CorruptFileError, load_tensors, read_meta, read_tensor, save_tensors
from videop2p.store.files import atomic_path, write_json
from videop2p.store.workspace import Workspace
from videop2p.toy.world import Color, Shape, ToyClipSpec, ToyObject, render_clip

PROMPT = "a red circle moving on the grass"


def test_atomic_writer_replaces_on_success_and_leaves_the_old_file_on_failure(tmp_path):
    target = tmp_path / "a" / "entry.json"
    write_json(target, {"v": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in target.parent.iterdir()] == ["entry.json"]  # no temporary left behind
    with atomic_path(tmp_path / "frames", directory=True) as d:
        (d / "1.png").write_bytes(b"x")
    with atomic_path(tmp_path / "frames", directory=True) as d:
        (d / "2.png").write_bytes(b"y")
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == ["2.png"]


def test_codec_round_trips_and_names_a_truncated_or_foreign_file(tmp_path):
    path = save_tensors(tmp_path / "t.safetensors", {"x": torch.arange(6.0).reshape(2, 3)}, {"prompt": PROMPT})
    tensors, meta = load_tensors(path)
    assert torch.equal(tensors["x"], torch.arange(6.0).reshape(2, 3)) and meta == {"prompt": PROMPT}
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(CorruptFileError, match="t.safetensors"):
        load_tensors(path)
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(CorruptFileError, match="not written by videop2p"):
        read_meta(tmp_path / "foreign.safetensors")


def test_codec_writes_what_safetensors_reads_and_reads_a_large_tensor_one_row_at_a_time(tmp_path):
    from safetensors.torch import load_file

    from videop2p.store.codec import DTYPES, Rows, all_finite, file_rows, rows_of

    g = torch.Generator().manual_seed(0)
    tensors = {f"t{i}": (torch.randn(3, 2, generator=g) * 50).to(dtype) for i, dtype in enumerate(DTYPES)}
    tensors |= {"scalar": torch.tensor(2.5), "empty": torch.zeros(0, 4), "strided": torch.randn(4, 6, generator=g).T}
    steps = [torch.randn(1, 3, 4, generator=g) for _ in range(5)]
    path = save_tensors(tmp_path / "t.safetensors", {**tensors, "steps": rows_of(steps)}, {"prompt": PROMPT})
    read = load_file(str(path))  # safetensors' own reader
    assert all(torch.equal(read[k], v) and read[k].dtype == v.dtype for k, v in tensors.items())
    assert torch.equal(read["steps"], torch.stack(steps))
    loaded, meta = load_tensors(path, rows=["steps"])
    assert meta == {"prompt": PROMPT} and torch.equal(loaded["t0"], tensors["t0"])
    rows = loaded["steps"]
    assert rows.shape == (5, 1, 3, 4) and len(rows) == 5 and rows.dtype == torch.float32
    assert (
        torch.equal(rows[1], steps[1]) and torch.equal(rows[-1], steps[4]) and torch.equal(rows.stack(), read["steps"])
    )
    assert torch.equal(rows.reversed()[0], steps[4])
    with pytest.raises(IndexError):
        rows[5]
    assert all_finite(loaded)
    steps[3][0, 1, 2] = float("nan")
    save_tensors(path, {"steps": rows_of(steps)}, {})
    assert not all_finite({"steps": file_rows(path, "steps")})  # one row of five holds a NaN
    with pytest.raises(
        ValueError, match="a row of 'steps' is torch.float32 \\(2, 4\\), not torch.float32 \\(1, 3, 4\\)"
    ):
        save_tensors(
            path, {"steps": Rows(lambda k: torch.zeros(2, 4) if k == 2 else steps[k], 5, (1, 3, 4), torch.float32)}, {}
        )
    assert file_rows(path, "steps").shape == (5, 1, 3, 4)  # the file written before is left as it was


@pytest.fixture(scope="module")
def clip_path(tmp_path_factory):
    clip = render_clip(ToyClipSpec([ToyObject(Shape.CIRCLE, Color.RED)], frames=3, size=32, seed=2))
    return write_frames(clip.frames, tmp_path_factory.mktemp("clip") / "frames")


def test_an_inversion_is_filed_under_the_delta_it_was_made_with(tiny, clip_path, tmp_path):
    """Regression: inverting a 1-step tuned model must not file the inversion where a 2-step run finds it."""
    vp = VideoP2P(tiny, Workspace(tmp_path / "ws"))
    clip = vp.load_clip(VideoConfig(path=str(clip_path), frames=3))
    inv_cfg = InversionConfig(method=InversionMethod.FAST, steps=2, progress=False)
    short, _ = vp.tune(clip, PROMPT, TuneConfig(steps=1, progress=False))
    _, first = vp.invert(short, clip, PROMPT, inv_cfg)  # no tuning settings passed: the model says what it is
    assert first.action == "computed" and f"clip-{short.delta_key}" in first.entry
    longer, _ = vp.tune(clip, PROMPT, TuneConfig(steps=2, progress=False))
    assert longer.delta_key != short.delta_key
    _, second = vp.invert(longer, clip, PROMPT, inv_cfg)
    assert second.action == "computed" and f"clip-{longer.delta_key}" in second.entry
    again, _ = vp.tune(clip, PROMPT, TuneConfig(steps=1, progress=False))
    _, third = vp.invert(again, clip, PROMPT, inv_cfg)
    assert third.action == "reused" and third.entry == first.entry and third.unet_evaluations == 0


def test_other_frames_inverted_and_edited_with_a_tuned_model_are_filed_apart_from_its_own_clip(
    tiny, clip_path, tmp_path
):
    """Regression: the API's inversion and edit of frames other than those the model was tuned on (as many of
    them) took the tuned clip's keys: the edit of the other frames was the tuned clip's, reused, and each
    inversion overwrote the other's entry."""
    vp = VideoP2P(tiny, Workspace(tmp_path / "ws"))
    own = vp.load_clip(VideoConfig(path=str(clip_path), frames=3))
    other = vp.clip_from_frames(own.frames[::-1].copy(), fps=own.fps)  # the same count, other frames
    model, _ = vp.tune(own, PROMPT, TuneConfig(steps=1, progress=False))
    inv_cfg = InversionConfig(method=InversionMethod.FAST, steps=2, progress=False)
    targets = ["a blue circle moving on the grass"]
    own_inversion, first = vp.invert(model, own, PROMPT, inv_cfg)
    own_edit, _ = vp.edit(model, own_inversion, PROMPT, targets, {"progress": False})
    other_inversion, inverted = vp.invert(model, other, PROMPT, inv_cfg)
    other_edit, edited = vp.edit(model, other_inversion, PROMPT, targets, {"progress": False})
    assert inverted.action == "computed" and edited.action == "computed"
    assert not np.array_equal(other_edit.reconstruction, own_edit.reconstruction)
    _, again = vp.invert(model, own, PROMPT, inv_cfg)  # the tuned clip's own entry is still there
    _, other_again = vp.edit(model, other_inversion, PROMPT, targets, {"progress": False})
    assert again.action == "reused" and again.entry == first.entry != inverted.entry
    assert other_again.action == "reused" and other_again.entry == edited.entry
    assert len(list((tmp_path / "ws").rglob("inv-*.safetensors"))) == 2
    longer, _ = vp.tune(own, PROMPT, TuneConfig(steps=2, progress=False))  # another model, the same clip
    own_longer, _ = vp.invert(longer, own, PROMPT, inv_cfg)
    _, with_own = vp.edit(longer, own_longer, PROMPT, targets, {"progress": False})
    _, with_other = vp.edit(longer, own_inversion, PROMPT, targets, {"progress": False})  # the first's
    assert with_own.action == with_other.action == "computed" and with_own.entry != with_other.entry


def test_an_interrupted_tuning_resumes_in_the_workspace_and_its_state_goes_once_the_delta_is_kept(
    tiny, clip_path, tmp_path
):
    from videop2p.progress import Cancelled

    cfg = TuneConfig(steps=8, save_seconds=0, progress=False)
    plain = VideoP2P(tiny, None)
    clip = plain.load_clip(VideoConfig(path=str(clip_path), frames=3))
    whole, _ = plain.tune(clip, PROMPT, cfg)
    vp = VideoP2P(tiny, Workspace(tmp_path / "ws"))

    def stop(stage, i, total):
        if i == 5:
            raise Cancelled(stage)

    with pytest.raises(Cancelled):
        vp.tune(clip, PROMPT, cfg, on_step=stop)
    (kept,) = (tmp_path / "ws").rglob("tune.steps/*.safetensors")
    (stopped,) = Workspace(tmp_path / "ws").clips()
    assert not stopped.tuned and stopped.tuning_at == 5 and stopped.unfinished == 1
    assert kept.name == "tune-00005.safetensors" and not list((tmp_path / "ws").rglob("tune.safetensors"))
    model, report = vp.tune(clip, PROMPT, cfg)
    assert report.action == "resumed" and report.unet_evaluations == 3  # steps 5-7 only
    assert model.delta_key == whole.delta_key
    for (n, a), b in zip(whole.trainable_parameters().items(), model.trainable_parameters().values(), strict=True):
        assert torch.equal(a, b), n
    assert not list((tmp_path / "ws").rglob("tune.steps"))  # the delta is kept: its state is gone
    with pytest.raises(Cancelled):
        vp.tune(clip, PROMPT, cfg, force=True, on_step=stop)  # a state at step 5 again
    _, again = vp.tune(clip, PROMPT, cfg, force=True)  # forced: every step again, the state not read
    assert again.action == "computed" and again.unet_evaluations == 8


def test_a_tuning_that_fails_before_keeping_anything_or_diverges_leaves_no_clip_folder(tiny, clip_path, tmp_path):
    from videop2p.progress import Cancelled
    from videop2p.sampling import DivergedError

    ws = tmp_path / "ws"
    vp = VideoP2P(tiny, Workspace(ws))
    clip = vp.load_clip(VideoConfig(path=str(clip_path), frames=3))

    def stop(stage, i, total):
        raise Cancelled(stage)

    with pytest.raises(Cancelled):  # stopped at its first step, before any state was kept
        vp.tune(clip, PROMPT, TuneConfig(steps=4, progress=False), on_step=stop)
    assert not ws.exists()  # not even the workspace root: nothing was kept in it
    diverging = TuneConfig(steps=20, lr=1e12, save_seconds=0, progress=False)  # a state kept at every step
    with pytest.raises(DivergedError):
        vp.tune(clip, PROMPT, diverging)
    assert not ws.exists()  # the states before the divergence would only diverge again

    def another_run_closes_it(stage, i, total):  # as a run of the same clip that failed meanwhile would
        for key in ws.glob("clip-*/key.json"):
            Workspace(ws).close_unused(key.with_name("tune.safetensors"))

    vp.tune(clip, PROMPT, TuneConfig(steps=1, progress=False), on_step=another_run_closes_it)
    assert len(list(ws.glob("clip-*/key.json"))) == 1  # written again with the delta
    with pytest.raises(DivergedError):
        vp.tune(clip, PROMPT, diverging)
    (entry,) = Workspace(ws).clips()  # the other clip's folder and the root stay
    assert entry.tuned and entry.identity["tune"]["steps"] == 1
    model, _ = vp.tune(clip, PROMPT, TuneConfig(steps=1, progress=False))
    with pytest.raises(DivergedError, match="Null-text optimisation diverged"):  # after its DDIM steps were kept
        vp.invert(model, clip, PROMPT, InversionConfig(steps=3, lr=1e30, progress=False))
    assert not (entry.folder / "inversions").exists()


def test_each_stage_of_the_api_refuses_bad_settings_and_prompts_before_writing(tiny, clip_path, tmp_path):
    from videop2p.config import EditConfig

    vp = VideoP2P(tiny, Workspace(tmp_path / "ws"))
    clip = vp.load_clip(VideoConfig(path=str(clip_path), frames=3))
    for prompt, cfg, message in (
        (PROMPT, TuneConfig(steps=-1), "tune.steps: -1"),  # as the API caller set it
        (PROMPT, TuneConfig(lr=float("nan")), "lr: nan"),
        ("", TuneConfig(steps=1), "The source prompt .* is empty; give a sentence"),
        (5, TuneConfig(steps=1), "source: 5 is not valid; expected text"),
        (" ".join(["red"] * 80), TuneConfig(steps=1), "82 tokens"),
    ):
        with pytest.raises(ValueError, match=message):
            vp.tune(clip, prompt, cfg)
    assert not (tmp_path / "ws").exists() or not list((tmp_path / "ws").rglob("*.safetensors"))
    model, _ = vp.tune(clip, PROMPT, TuneConfig(steps=1, progress=False))
    for cfg, message in (
        (InversionConfig(method="magic"), "'magic' is not one of null-text, fast"),
        (InversionConfig(steps=0), "steps: 0"),
        (InversionConfig(steps=5000), "5000 is more than this model's scheduler allows: at most 999"),
        (InversionConfig(steps=1000), "1000 is more than .* at most 999 .*'leading' spacing, offset 1"),  # t = 1000
        (InversionConfig(guidance=float("inf")), "inversion.guidance: inf"),
    ):
        with pytest.raises(ValueError, match=message):
            vp.invert(model, clip, PROMPT, cfg)
    inversion, _ = vp.invert(model, clip, PROMPT, InversionConfig(method=InversionMethod.FAST, steps=2, progress=False))
    target = "a blue circle moving on the grass"
    for source, targets, cfg, message in (
        (PROMPT, [], EditConfig(), r"targets \[\] holds no prompt; give at least one target prompt"),
        (PROMPT, (target, 5), EditConfig(), "targets: 5 is not valid; expected text"),
        (PROMPT, {target: 1}, EditConfig(), "expected a list of prompts"),
        ("a red square moving on the grass", [target], EditConfig(), "not the prompt the clip was inverted with"),
        (PROMPT, [target], EditConfig(guidance=-1), "guidance: -1"),
        (PROMPT, [target], EditConfig(threshold=float("nan")), "threshold: nan"),
    ):
        with pytest.raises(ValueError, match=message):
            vp.edit(model, inversion, source, targets, cfg)
    for call, given, wanted in (
        (lambda: vp.tune(clip, PROMPT, EditConfig()), "EditConfig", "TuneConfig"),
        (lambda: vp.invert(model, clip, PROMPT, TuneConfig()), "TuneConfig", "InversionConfig"),
        (lambda: vp.edit(model, inversion, PROMPT, [target], InversionConfig()), "InversionConfig", "EditConfig"),
    ):
        with pytest.raises(TypeError, match=f"expected an? {wanted} or a dict of its fields, got {given}"):
            call()
    assert not list((tmp_path / "ws").rglob("edit*"))


def test_each_stage_of_the_api_takes_a_dict_of_its_settings_as_its_config(tiny, clip_path, tmp_path):
    from videop2p.config import ConfigError, EditConfig

    vp = VideoP2P(tiny, Workspace(tmp_path / "ws"))
    clip = vp.load_clip({"path": str(clip_path), "frames": 2, "stride": 2})  # a clip's settings, as a config has them
    assert clip.frames.shape[0] == 2
    assert np.array_equal(clip.frames, vp.load_clip(VideoConfig(path=str(clip_path), frames=2, stride=2)).frames)
    window = {"size": 2, "overlap": 1}
    model, tuned = vp.tune(clip, PROMPT, {"steps": 1, "progress": False}, window=window)
    _, again = vp.tune(clip, PROMPT, TuneConfig(steps=1, progress=False), window=WindowConfig(size=2, overlap=1))
    assert (tuned.action, again.action, again.entry) == ("computed", "reused", tuned.entry)  # the same settings
    inversion, inverted = vp.invert(
        model, clip, PROMPT, {"method": "fast", "steps": 2, "progress": False}, window=window
    )
    fast = InversionConfig(method=InversionMethod.FAST, steps=2, progress=False)
    _, again = vp.invert(model, clip, PROMPT, fast, window=WindowConfig(size=2, overlap=1))
    assert (inverted.action, again.action, again.entry) == ("computed", "reused", inverted.entry)
    target = "a blue circle moving on the grass"
    out, edited = vp.edit(model, inversion, PROMPT, [target], {"blend": ["circle", "circle"]}, window=window)
    blended = EditConfig(blend=("circle", "circle"))
    _, again = vp.edit(model, inversion, PROMPT, [target], blended, window=WindowConfig(size=2, overlap=1))
    assert (edited.action, again.action, again.entry) == ("computed", "reused", edited.entry)
    one, alone = vp.edit(model, inversion, PROMPT, target, blended, window=window)  # one prompt as text, as diffusers
    assert (alone.action, alone.entry, len(one.edits)) == ("reused", edited.entry, 1)
    for call, message in (  # an unknown key is named with the valid ones, before any work
        (
            lambda: vp.load_clip({"path": str(clip_path), "size": 32}),
            "Unknown key 'size' \\(a frame size is video's width and",
        ),
        (
            lambda: vp.tune(clip, "a red square", {"stpes": 1}),
            "Unknown key 'stpes' \\(did you mean 'steps'\\?\\); valid keys",
        ),
        (lambda: vp.invert(model, clip, "a red square", {"blend": 1}), "Unknown key 'blend'; valid keys are: "),
        (lambda: vp.edit(model, inversion, PROMPT, [target], {"threshold": "high"}), "threshold: 'high'"),
        (lambda: vp.edit(model, inversion, PROMPT, [target], window={"overlap": -1}), "overlap: -1"),
    ):
        with pytest.raises((ConfigError, ValueError), match=message):
            call()
    assert len(list((tmp_path / "ws").rglob("edit-*.safetensors"))) == 1


def test_each_run_reports_only_its_own_stages(tiny, clip_path, tmp_path):
    from videop2p.config import RunConfig

    vp = VideoP2P(tiny, Workspace(tmp_path / "ws"))
    manifests = []
    for name, target in (("a", "a blue circle moving on the grass"), ("b", "a green circle moving on the grass")):
        cfg = RunConfig(source=PROMPT, targets=[target], out=str(tmp_path / name), quiet=True)
        cfg.video = VideoConfig(path=str(clip_path), frames=3)
        cfg.tune.steps, cfg.inversion.steps, cfg.inversion.method = 1, 2, InversionMethod.FAST
        manifests.append(vp.run(cfg))
    first, second = manifests
    assert [e["stage"] for e in first["workspace"]] == ["tune", "invert", "edit"]
    assert [e["action"] for e in second["workspace"]] == ["reused", "reused", "computed"]
    assert second["stages"]["edit"]["unet_evaluations"] > 0 and second["stages"]["tune"]["unet_evaluations"] == 0
    log = [json.loads(line) for line in (tmp_path / "ws" / "events.jsonl").read_text().splitlines()]
    assert len(log) == 6  # the workspace's own history keeps both runs


def test_a_half_precision_vae_is_never_recast_in_place(tiny):
    import copy

    from videop2p.latents import decode_latents

    comps = copy.copy(tiny)
    comps.vae = copy.deepcopy(tiny.vae).to(torch.bfloat16)
    comps.vae_float32 = None
    comps.vae.register_to_config(force_upcast=True)
    frames = decode_latents(comps, torch.randn(1, 2, 4, 4, 4))
    assert frames.shape[:2] == (1, 2) and comps.vae.dtype is torch.bfloat16
    assert comps.vae_float32 is not None and comps.vae_float32.dtype is torch.float32
    assert np.isfinite(frames.astype(float)).all()


def test_a_run_tunes_with_its_own_frame_attention_and_group_norm(tiny, clip_path, tmp_path):
    """A run's config decides the T2S architecture, not the settings the pipeline was built with
    (the web editor builds one pipeline and runs many forms through it)."""
    from videop2p.config import FrameAttentionMode, GroupNormMode, RunConfig

    vp = VideoP2P(tiny, Workspace(tmp_path / "ws"))  # built with the defaults: first, frame
    cfg = RunConfig(source=PROMPT, targets=["a blue circle moving on the grass"], out=str(tmp_path / "o"), quiet=True)
    cfg.video = VideoConfig(path=str(clip_path), frames=3)
    cfg.tune.steps, cfg.inversion.steps, cfg.inversion.method = 1, 2, InversionMethod.FAST
    cfg.frame_attention, cfg.group_norm = FrameAttentionMode.SPARSE_CAUSAL, GroupNormMode.CLIP
    manifest = vp.run(cfg)
    key = json.loads((tmp_path / "ws" / Path(manifest["workspace"][0]["entry"]).parent.name / "key.json").read_text())
    assert (key["frame_mode"], key["group_norm"]) == ("sparse-causal", "clip")


@pytest.mark.parametrize("method", list(InversionMethod))
def test_a_half_precision_model_runs_every_stage_and_edits_from_a_float32_inversion(tiny, clip_path, tmp_path, method):
    """Regression: the VAE's float32 latents reached a bfloat16 UNet ("mat1 and mat2 must have the same
    dtype"), so `--dtype float16|bfloat16` failed at the inversion, and an inversion made in float32
    failed the same way in the edit. The dtype changes every result, so a workspace keeps each apart."""
    from videop2p.models.loading import load_components, save_pretrained_folder

    folder = save_pretrained_folder(tiny, tmp_path / "model")
    inv_cfg = InversionConfig(method=method, steps=2, inner_steps=2, progress=False)
    target = ["a blue circle moving on the grass"]
    inversions, recons, keys = {}, {}, {}
    for dtype in (torch.float32, torch.bfloat16):
        vp = VideoP2P(load_components(folder, dtype=dtype), Workspace(tmp_path / "ws"))  # one workspace
        clip = vp.load_clip(VideoConfig(path=str(clip_path), frames=3))
        model, tuned = vp.tune(clip, PROMPT, TuneConfig(steps=1, progress=False))
        inversion, inverted = vp.invert(model, clip, PROMPT, inv_cfg)
        assert (tuned.action, inverted.action) == ("computed", "computed") and inversion.latent_T.dtype == dtype
        out, _ = vp.edit(model, inversion, PROMPT, target)
        assert torch.isfinite(out.result.latents).all()
        inversions[dtype], recons[dtype], keys[dtype] = inversion, out.reconstruction.astype(float), model.delta_key
    assert keys[torch.float32] != keys[torch.bfloat16]
    assert np.abs(recons[torch.bfloat16] - recons[torch.float32]).mean() < 8.0  # of 255 (bfloat16 keeps 3 digits)
    out, edited = vp.edit(model, inversions[torch.float32], PROMPT, ["a green circle moving on the grass"])
    assert edited.action == "computed" and out.result.latents.dtype == torch.bfloat16
    assert np.abs(out.reconstruction.astype(float) - recons[torch.float32]).mean() < 8.0


def test_a_run_into_an_earlier_runs_folder_leaves_none_of_its_numbered_outputs(tiny, clip_path, tmp_path):
    """Regression: a second run with fewer targets (or no blend) into the same --out left the first run's
    edit_2.*, mask_*.* and attention_2.png beside its own outputs (and PNG frames' folders, edit_K/, once
    they could be written); files and folders that are not a run's stay."""
    from videop2p.config import RunConfig

    vp = VideoP2P(tiny, Workspace(tmp_path / "ws"))
    out = tmp_path / "out"
    for targets, blend, png in (
        (["a blue circle moving on the grass", "a green circle moving on the grass"], ("circle", "circle"), True),
        (["a green circle moving on the grass"], None, False),
    ):
        if png:
            assert not out.exists()
        else:  # the first run's PNG frames were written; a folder of the same form with other files is the user's
            assert {p.name for p in (out / "edit_2").iterdir()} == {"1.png", "2.png", "3.png"}
            (out / "edit_9").mkdir()
            (out / "edit_9" / "1.png").write_bytes(b"mine")
            (out / "edit_9" / "notes.txt").write_text("mine")
        cfg = RunConfig(source=PROMPT, targets=targets, out=str(out), quiet=True, png_frames=png)
        cfg.video = VideoConfig(path=str(clip_path), frames=3)
        cfg.tune.steps, cfg.inversion.steps, cfg.inversion.method = 1, 2, InversionMethod.FAST
        cfg.edit.blend = blend
        manifest = vp.run(cfg)
        (out / "notes.txt").write_text("mine")
        (out / "edit_final.mp4").write_bytes(b"mine")
    names = {p.name for p in out.iterdir()}
    assert not {"edit_2.mp4", "edit_2.gif", "mask_1.gif", "mask_1.mp4", "attention_2.png", "edit_1", "edit_2"} & names
    assert {"edit_1.mp4", "edit_1.gif", "attention_1.png", "notes.txt", "edit_final.mp4", "edit_9"} <= names
    listed = [n for v in manifest["outputs"].values() for n in ([v] if isinstance(v, str) else v)]
    assert all((out / n).is_file() for n in listed)


def test_frames_far_above_the_models_size_are_warned_about_before_any_work(tiny, clip_path, caplog):
    """A CPU run at many times the model's area can be killed by the system for memory without a word
    of ours (the bundled model at 4096x4096: killed after 45 s); the clip's loading says so first."""
    import logging

    from videop2p.pipeline import LARGE_AREA

    vp = VideoP2P(tiny, None)
    native = tiny.info.native_size
    with caplog.at_level(logging.WARNING, logger="videop2p.pipeline"):
        vp.load_clip(VideoConfig(path=str(clip_path), frames=3, width=2 * native, height=2 * native))
        assert not caplog.records  # 4x the area: within what the model is used at (SD 1.5 at 1024x1024)
        step = tiny.info.size_multiple
        side = (int(native * LARGE_AREA**0.5) // step + 1) * step  # the next allowed side above the limit
        vp.load_clip(VideoConfig(path=str(clip_path), frames=3, width=side, height=side))
    (record,) = caplog.records
    assert (
        f"{side}x{side} frames have" in record.getMessage() and "on the CPU the system may stop" in record.getMessage()
    )
    own = vp.load_clip(VideoConfig(path=str(clip_path), frames=3)).size  # the size a run takes without one
    assert record.getMessage().endswith(f"; --size {own[0]}x{own[1]} works at its own area")


def test_loading_a_part_of_a_longer_clip_says_which_part_and_how_to_take_all(tiny, tmp_path, caplog):
    """The official 8 frames of a 2-second clip are a quarter second of it: loading says so (which frames,
    how long), and says nothing where every frame is taken."""
    import logging

    path = write_mp4(np.zeros((60, 32, 32, 3), np.uint8), tmp_path / "long.mp4", 30.0)
    vp = VideoP2P(tiny, None)
    said = []
    for video in (VideoConfig(path=str(path)), VideoConfig(path=str(path), frames=5, start=2, stride=3)):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="videop2p.pipeline"):
            vp.load_clip(video)
        said.append([r.getMessage() for r in caplog.records if "holds" in r.getMessage()])
    tail = ": --frames 0 edits every frame, --start and --stride pick others"
    assert said[0] == [f"{path} holds 60 frames; 8 of them are edited (frames 1-8, 0.267 s){tail}"]
    assert said[1] == [f"{path} holds 60 frames; 5 of them are edited (every 3rd frame of frames 3-15, 0.5 s){tail}"]
    for whole in (VideoConfig(path=str(path), frames=None), VideoConfig(path=str(path), frames=60)):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="videop2p.pipeline"):
            vp.load_clip(whole)
        assert not [r for r in caplog.records if "holds" in r.getMessage()]


def test_a_10_bit_prores_clips_edits_stay_10_bit_video(tiny, tmp_path, caplog):
    """An editor's 10-bit ProRes export (4:2:2) is read without a note, seen by the model at 8 bits, and
    its edits are 10-bit HEVC pasted into its own frames, said in outputs.json and report.md."""
    import logging

    import av

    from videop2p.config import RunConfig
    from videop2p.io.video import DEEP_SDR

    y, x = np.mgrid[0:32, 0:32]
    frames = [np.round(np.stack([60 + 0.3 * x + t, 60 + 0.5 * y, 90 + 0.2 * (x + y)], -1) * 257) for t in range(3)]
    with av.open(str(tmp_path / "export.mov"), "w") as c:
        s = c.add_stream("prores_ks", rate=8)
        s.width, s.height, s.pix_fmt = 32, 32, "yuv422p10le"
        for f in frames:
            c.mux(s.encode(av.VideoFrame.from_ndarray(f.astype(np.uint16), format="rgb48le")))
        c.mux(s.encode())
    vp = VideoP2P(tiny, None)
    cfg = RunConfig(source=PROMPT, targets=["a blue circle moving on the grass"], out=str(tmp_path / "o"), quiet=True)
    cfg.video = VideoConfig(path=str(tmp_path / "export.mov"), frames=3)
    cfg.tune.steps, cfg.inversion.steps, cfg.inversion.method = 1, 2, InversionMethod.FAST
    with caplog.at_level(logging.WARNING, logger="videop2p.pipeline"):
        clip = vp.load_clip(cfg.video)
    assert not caplog.records and clip.deep == DEEP_SDR and clip.frames.dtype == np.uint8
    manifest = vp.run(cfg)
    far = "The reconstruction is far from the clip"  # the random model's, as any run's of it
    assert manifest["bits"] == 10 and manifest["hdr"] is None and [w[: len(far)] for w in manifest["warnings"]] == [far]
    assert "SDR video (10-bit HEVC)" in (tmp_path / "o" / "report.md").read_text()
    with av.open(str(tmp_path / "o" / "edit_1.mp4")) as c:
        assert (c.streams.video[0].codec_context.name, c.streams.video[0].codec_context.pix_fmt) == (
            "hevc",
            "yuv420p10le",
        )
    assert probe_video(tmp_path / "o" / "reconstruction.mp4").deep is None  # the model's own videos stay 8-bit


def test_hdr_or_interlaced_video_is_said_at_loading_with_what_the_edit_keeps(tiny, tmp_path, caplog):
    """A phone's default HDR clip (HLG) is tone-mapped as it is read, so its edit is SDR video; an
    interlaced one is deinterlaced as it is read, so its edit is progressive: each said once, at loading."""
    import logging

    import av

    frames = np.zeros((3, 32, 32, 3), np.uint8)
    for name, colour, options in (("hlg", (9, 18, 9), {}), ("fields", (2, 2, 2), {"x264-params": "tff=1"})):
        with av.open(str(tmp_path / f"{name}.mp4"), "w") as c:  # as such a clip says it is (8 bits here)
            s = c.add_stream("libx264", rate=8)
            s.width, s.height, s.pix_fmt, s.options = 32, 32, "yuv420p", options
            s.codec_context.color_primaries, s.codec_context.color_trc, s.codec_context.colorspace = colour
            for f in frames:
                c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
            c.mux(s.encode())
    vp = VideoP2P(tiny, None)
    with caplog.at_level(logging.WARNING, logger="videop2p.pipeline"):
        vp.load_clip(VideoConfig(path=str(write_mp4(frames, tmp_path / "sdr.mp4", 8.0)), frames=3))
        assert not caplog.records
        clip = vp.load_clip(VideoConfig(path=str(tmp_path / "hlg.mp4"), frames=3))
        vp.load_clip(VideoConfig(path=str(tmp_path / "fields.mp4"), frames=3))
    hdr, fields = (r.getMessage() for r in caplog.records)
    assert "hlg.mp4 is HDR video (HLG, ARIB STD-B67): the model sees it as an SDR screen shows it" in hdr
    assert hdr.endswith("the previews are SDR.") and "deinterlac" not in hdr and clip.frames.shape[0] == 3
    assert "fields.mp4 is interlaced (two fields in each frame): it is deinterlaced as it is read" in fields
    assert fields.endswith("and the edit is progressive video.") and "HDR video" not in fields
    from videop2p.config import RunConfig  # a run keeps what loading said in its outputs.json and report.md

    cfg = RunConfig(source=PROMPT, targets=["a blue circle moving on the grass"], out=str(tmp_path / "o"), quiet=True)
    cfg.video = VideoConfig(path=str(tmp_path / "hlg.mp4"), frames=3)
    cfg.tune.steps, cfg.inversion.steps, cfg.inversion.method = 1, 2, InversionMethod.FAST
    manifest = vp.run(cfg)
    assert manifest["warnings"][0] == hdr and f"## Warnings\n\n- {hdr}" in (tmp_path / "o" / "report.md").read_text()
    assert manifest["hdr"] == "HLG" and probe_video(tmp_path / "o" / "edit_1.mp4").deep.transfer == HLG  # stays HDR
    (tmp_path / "junk.mp4").write_bytes(b"not a video")  # what cannot be read is named as before, not by this check
    for name, words in (("missing.mp4", "does not exist"), ("junk.mp4", "is not a readable video")):
        with pytest.raises(VideoError, match=words):
            vp.load_clip(VideoConfig(path=str(tmp_path / name), frames=3))


def test_more_frames_per_step_than_the_clip_has_is_every_frame_and_reuses_its_results(tiny, clip_path, tmp_path):
    vp = VideoP2P(tiny, Workspace(tmp_path / "ws"))
    clip = vp.load_clip(VideoConfig(path=str(clip_path), frames=3))
    every, tuned = vp.tune(clip, PROMPT, TuneConfig(steps=1, progress=False))
    inv_cfg = InversionConfig(steps=2, inner_steps=1, progress=False)  # null-text: its loss reads the frames
    _, inverted = vp.invert(every, clip, PROMPT, inv_cfg)
    more, again = vp.tune(clip, PROMPT, TuneConfig(steps=1, frames=5, progress=False))
    assert again.action == "reused" and more.delta_key == every.delta_key
    _, inverted_again = vp.invert(more, clip, PROMPT, dataclasses.replace(inv_cfg, frames=3))
    assert inverted_again.action == "reused" and inverted_again.entry == inverted.entry
    fewer, computed = vp.tune(clip, PROMPT, TuneConfig(steps=1, frames=2, progress=False))
    assert computed.action == "computed" and fewer.delta_key != every.delta_key


def test_an_entry_locked_by_one_process_waits_in_another_until_released(tmp_path):
    import subprocess
    import sys

    ws = Workspace(tmp_path / "ws")
    entry = tmp_path / "ws" / "clip-x" / "tune.safetensors"
    other = [
        sys.executable,
        "-c",
        "from pathlib import Path\nfrom videop2p.store.workspace import Workspace\n"
        f"with Workspace(Path({str(tmp_path / 'ws')!r})).lock(Path({str(entry)!r})): print('locked')",
    ]
    with ws.lock(entry), pytest.raises(subprocess.TimeoutExpired):
        subprocess.run(other, capture_output=True, timeout=3)
    done = subprocess.run(other, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "locked", done.stderr


def test_a_run_waiting_for_another_says_so_again_while_it_waits(tmp_path, caplog):
    """A run waiting for another's entry (minutes, for a tuning) is not silent: it says it waits, then
    again with the time waited, until the lock is free."""
    import threading

    ws = Workspace(tmp_path / "ws")
    entry = tmp_path / "ws" / "clip-x" / "tune.safetensors"
    held, free = threading.Event(), threading.Event()

    def hold():
        with ws.lock(entry):
            held.set()
            free.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(30)
    threading.Timer(0.5, free.set).start()
    with caplog.at_level(logging.INFO, logger="videop2p.store.workspace"), ws.lock(entry, "tune: waiting", every=0.1):
        assert free.is_set()  # taken only once the holder let go
    holder.join(30)
    notes = [r.getMessage() for r in caplog.records]
    assert notes[0] == "tune: waiting" and len(notes) >= 3
    assert all(n.startswith("tune: waiting (") and n.endswith(" s so far)") for n in notes[1:])


def test_two_runs_of_one_entry_compute_it_once_the_second_waiting_and_reusing_it(tmp_path, caplog):
    """Two runs sharing a workspace (processes, or the web editor's threads) on the same clip: the second
    waits for the first instead of computing beside it (the first, on finishing, removed the kept steps
    the second was reading: "not a readable safetensors file"), then loads what the first saved."""
    import threading

    from videop2p.store.workspace import reuse_or_compute

    ws = Workspace(tmp_path / "ws")
    entry = tmp_path / "ws" / "clip-x" / "inversions" / "inv-y.safetensors"
    started, computed, reports = threading.Event(), [], {}

    def compute():
        started.set()
        time.sleep(1.0)  # the second run arrives meanwhile
        computed.append(threading.current_thread().name)
        return torch.ones(3)

    def run(name):
        reports[name] = reuse_or_compute(
            ws,
            "invert",
            entry,
            False,
            compute,
            lambda: read_tensor(entry, "x"),
            lambda v: save_tensors(entry, {"x": v}, {}),
            lambda v: 1,
        )

    first = threading.Thread(target=run, args=("first",), name="first")
    second = threading.Thread(target=run, args=("second",), name="second")
    with caplog.at_level(logging.INFO, logger="videop2p.store.workspace"):
        first.start()
        started.wait(30)
        second.start()
        first.join(60)
        second.join(60)
    assert computed == ["first"]
    assert reports["first"][1].action == "computed" and reports["second"][1].action == "reused"
    assert torch.equal(reports["second"][0], torch.ones(3))
    assert f"invert: another run is computing {entry}; waiting for it to finish" in caplog.text
    entry.write_bytes(b"damaged")  # an entry that does not load is computed again, said once
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="videop2p.store.workspace"):
        run("again")
    assert reports["again"][1].action == "computed" and torch.equal(read_tensor(entry, "x"), torch.ones(3))
    assert caplog.text.count(f"ignoring workspace invert entry {entry}") == 1


def test_the_default_workspace_is_beside_the_output_folder_unless_that_is_where_the_user_is(tmp_path, monkeypatch):
    from videop2p.store.workspace import default_workspace

    here = tmp_path / "project"
    here.mkdir()
    monkeypatch.chdir(here)
    assert default_workspace("out") == default_workspace("other") == here / ".videop2p-workspace"  # shared
    assert default_workspace(tmp_path / "elsewhere" / "o") == tmp_path / "elsewhere" / ".videop2p-workspace"
    assert default_workspace(".") == here / ".videop2p-workspace"  # not in the parent folder
    assert default_workspace("..") == tmp_path / ".videop2p-workspace"


def test_a_failed_write_is_an_os_error_naming_the_file_whatever_the_writer_raised(tmp_path, monkeypatch):
    import errno

    from safetensors.torch import save_file

    from videop2p.store import codec

    folder = tmp_path / "a-folder"
    folder.mkdir()
    # safetensors' own error (diffusers' writers use it), from a real failed write (its target is a folder):
    # SafetensorError, not OSError
    with pytest.raises(OSError) as e, atomic_path(tmp_path / "entry.safetensors"):
        save_file({"x": torch.zeros(2)}, str(folder))
    assert e.value.errno == errno.EISDIR and e.value.filename == str(tmp_path / "entry.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-folder"]  # no temporary left

    def full(f, tensors, metadata):  # the disk fills up under the tensors' writer
        f.write(b"12345678")
        raise OSError(errno.ENOSPC, "No space left on device", f.name)

    monkeypatch.setattr(codec, "_write_safetensors", full)
    with pytest.raises(OSError) as e:
        save_tensors(tmp_path / "delta.safetensors", {"x": torch.zeros(2)}, {})
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(tmp_path / "delta.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-folder"]
    with pytest.raises(ValueError, match="not a write"), atomic_path(tmp_path / "b.txt"):  # passes as it is
        raise ValueError("not a write")
    with pytest.raises(OSError) as e, atomic_path(tmp_path / "export", directory=True) as tmp:
        raise OSError(errno.ENOSPC, "No space left on device", str(folder / "src"), None, str(tmp / "unet" / "w.bin"))
    assert e.value.filename == str(tmp_path / "export" / "unet" / "w.bin")  # a copy's target, where it was going
    with pytest.raises(OSError) as e, atomic_path(tmp_path / "c.txt"):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(folder / "missing"))
    assert e.value.filename == str(folder / "missing")  # another file's error names that file


def test_staged_files_land_as_a_set_or_not_at_all(tmp_path):
    from videop2p.store.files import staged_files

    with pytest.raises(OSError), staged_files(tmp_path / "new" / "deeper") as stage:
        write_json(stage / "a.json", {})
        raise OSError(28, "No space left on device", str(stage / "b.json"))
    assert not (tmp_path / "new").exists()  # made for the set: gone with it
    kept = tmp_path / "kept"
    write_json(kept / "old.json", {"v": 1})
    with pytest.raises(OSError) as e, staged_files(kept) as stage:
        write_json(stage / "old.json", {"v": 2})
        raise OSError(28, "No space left on device", str(stage / "b.json"))
    assert e.value.filename == str(kept / "b.json")  # where it was going, not the hidden folder
    assert [p.name for p in kept.iterdir()] == ["old.json"] and json.loads((kept / "old.json").read_text())["v"] == 1
    with staged_files(kept, last="b.json") as stage:
        write_json(stage / "old.json", {"v": 2})
        write_json(stage / "b.json", {})
    assert sorted(p.name for p in kept.iterdir()) == ["b.json", "old.json"]
    assert json.loads((kept / "old.json").read_text())["v"] == 2


def test_frames_held_in_memory_are_the_same_clip_as_their_file_and_reuse_its_tuning(tiny, clip_path, tmp_path):
    from PIL import Image

    from videop2p.io.video import read_video

    vp = VideoP2P(tiny, Workspace(tmp_path / "ws"))
    from_file = vp.load_clip(VideoConfig(path=str(clip_path), frames=3, width=24, height=16))
    frames = read_video(clip_path, 0, 3, 1).frames  # (3, 32, 32, 3), cropped to 24x16 like the file's
    for given in (frames, [Image.fromarray(f) for f in frames], list(frames), torch.from_numpy(frames)):
        clip = vp.clip_from_frames(given, width=24, height=16)
        assert clip.digest == from_file.digest and np.array_equal(clip.frames, from_file.frames)
    numpy_numbers = vp.clip_from_frames(frames, fps=np.float32(12), width=np.int64(24), height=np.int32(16))
    assert numpy_numbers.digest == from_file.digest and type(numpy_numbers.fps) is float
    _, first = vp.tune(from_file, PROMPT, TuneConfig(steps=1, progress=False))
    _, again = vp.tune(vp.clip_from_frames(frames, fps=12, width=24, height=16), PROMPT, TuneConfig(steps=1))
    assert first.action == "computed" and again.action == "reused"
    assert vp.clip_from_frames(frames).size == vp.load_clip(VideoConfig(path=str(clip_path), frames=3)).size
    for kwargs, said in (  # a bad argument is named as the caller wrote it
        ({"fps": -1}, "fps: -1 is not valid; expected a finite number > 0."),
        ({"width": 2.5}, "width: 2.5 is not valid; expected a whole number >= 1."),
        ({"resize": "squash"}, "resize: 'squash' is not one of crop, pad, stretch."),
        (
            {"width": 25},
            "width: 25 is not allowed by the model: sides must be positive multiples of 2; nearest valid "
            "widths are 24 and 26.",
        ),
    ):
        with pytest.raises(ValueError, match=f"^{re.escape(said)}$"):
            vp.clip_from_frames(frames, **kwargs)


def test_greyscale_and_rgba_frames_in_memory_are_read_as_their_files_frames_are(tiny):
    """Greyscale arrays ((F, H, W), (F, H, W, 1); a grey video read by imageio) and RGBA ones (a GIF's frames read
    with their alpha) are the clip that the same frames as PIL images, or as files, make: grey repeated in R, G
    and B, transparency over black."""
    from PIL import Image

    rng = np.random.default_rng(0)
    vp = VideoP2P(tiny, None)
    grey, rgba = rng.integers(0, 256, (2, 8, 10), np.uint8), rng.integers(0, 256, (2, 8, 10, 4), np.uint8)
    as_images = vp.clip_from_frames([Image.fromarray(f, "L") for f in grey])
    for given in (grey, grey[..., None], torch.from_numpy(grey), list(grey), grey / 255.0):
        clip = vp.clip_from_frames(given)
        assert clip.digest == as_images.digest and np.array_equal(clip.frames, as_images.frames)
    assert np.array_equal(as_images.frames[..., 0], as_images.frames[..., 2])
    as_images = vp.clip_from_frames([Image.fromarray(f, "RGBA") for f in rgba])
    for given in (rgba, list(rgba), rgba / 255.0):
        assert vp.clip_from_frames(given).digest == as_images.digest
    opaque = rgba.copy()
    opaque[..., 3] = 255
    assert vp.clip_from_frames(opaque).digest == vp.clip_from_frames(opaque[..., :3]).digest


def test_an_edit_pasted_through_the_api_is_the_one_run_writes_at_the_clips_own_size(tiny, clip_path, tmp_path):
    """`VideoP2P.paste` gives the staged API what `run` writes: the edit pasted into the input's frames at their own
    size through its blend mask (the clip's frames are 32x32, worked at 24x16)."""
    from videop2p.config import RunConfig
    from videop2p.io.video import read_video

    vp = VideoP2P(tiny, Workspace(tmp_path / "ws"))
    cfg = RunConfig(source=PROMPT, targets=["a blue circle moving on the grass"], out=str(tmp_path / "o"))
    cfg.video, cfg.quiet, cfg.png_frames = VideoConfig(path=str(clip_path), frames=3, width=24, height=16), True, True
    cfg.tune.steps, cfg.inversion.steps, cfg.inversion.method = 1, 2, InversionMethod.FAST
    cfg.edit.blend = ("red", "blue")
    vp.run(cfg)
    clip = vp.load_clip(cfg.video)
    model, _ = vp.tune(clip, PROMPT, cfg.tune)
    inversion, _ = vp.invert(model, clip, PROMPT, cfg.inversion)
    out, edited = vp.edit(model, inversion, PROMPT, cfg.targets, cfg.edit)
    pasted = np.stack(list(vp.paste(clip, out)))
    assert edited.action == "reused" and clip.size == (24, 16) and pasted.shape == (3, 32, 32, 3)
    np.testing.assert_array_equal(pasted, read_video(tmp_path / "o" / "edit_1").frames)  # run's lossless PNGs
    in_memory = vp.clip_from_frames(clip.frames, width=24, height=16)  # at the working size: the edit itself
    assert np.array_equal(np.stack(list(vp.paste(in_memory, out))), out.edits[0])
    with pytest.raises(ValueError, match=r"target 1 is not valid; expected 0 to 0: `out` holds 1 edit\.$"):
        vp.paste(clip, out, 1)
    with pytest.raises(ValueError, match=r"^target an ndarray of shape \(3, 32, 32, 3\) is not valid; expected 0"):
        vp.paste(clip, out, pasted)  # the frames given for the target
    other = vp.load_clip(dataclasses.replace(cfg.video, frames=2))
    with pytest.raises(ValueError, match="out's edits are 3 frames at 24x16, the clip 2 at 24x16"):
        vp.paste(other, out)


def test_a_tuning_with_other_settings_than_the_kept_one_says_so(tiny, clip_path, tmp_path, caplog):
    """`videop2p tune --tune-steps 2` then `videop2p edit` (500 steps by default) tuned anew without a word:
    a run that tunes while the workspace keeps the same clip tuned otherwise names the nearest settings."""
    vp = VideoP2P(tiny, Workspace(tmp_path / "ws"))
    clip = vp.load_clip(VideoConfig(path=str(clip_path), frames=2, width=16, height=16))
    with caplog.at_level(logging.WARNING, logger="videop2p.pipeline"):
        vp.tune(clip, PROMPT, TuneConfig(steps=1, progress=False))
        vp.tune(clip, PROMPT, TuneConfig(steps=1, progress=False))  # reused
        vp.tune(clip, "another prompt for it", TuneConfig(steps=1, progress=False))  # another clip's key
        assert not caplog.records
        _, report = vp.tune(clip, PROMPT, TuneConfig(steps=2, lr=1e-4, progress=False))
    assert report.action == "computed"
    (record,) = caplog.records
    assert record.getMessage() == (
        "tuning anew: the workspace keeps this clip tuned with other settings (tune.steps 1 (this run: 2), tune.lr "
        "3e-05 (this run: 0.0001)); the same settings reuse it"
    )
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="videop2p.pipeline"):
        vp.tune(clip, PROMPT, TuneConfig(steps=2, lr=1e-4, progress=False), frame_mode="sparse-causal")
    (record,) = caplog.records  # of the two kept, the nearer: one setting apart, not three
    assert "(frame_attention first (this run: sparse-causal)); the same" in record.getMessage()


def test_a_kept_result_of_settings_left_unset_names_what_they_stand_for(tiny, clip_path, tmp_path, caplog):
    """`--tune-frames 4`, then the default: "frames 4 (this run: None)", of no stage; a window's settings as a
    Python dict, a float32 run's dtype as None."""
    vp = VideoP2P(tiny, Workspace(tmp_path / "ws"))
    clip = vp.load_clip(VideoConfig(path=str(clip_path), frames=3, width=16, height=16))
    with caplog.at_level(logging.WARNING, logger="videop2p.pipeline"):
        vp.tune(clip, PROMPT, TuneConfig(steps=1, frames=2, progress=False))
        vp.tune(clip, PROMPT, TuneConfig(steps=1, progress=False))
        model, _ = vp.tune(clip, PROMPT, TuneConfig(steps=1, progress=False), window=WindowConfig(size=2, overlap=1))
        vp.invert(model, clip, PROMPT, InversionConfig(steps=2, frames=2), window=WindowConfig(size=2, overlap=1))
        vp.invert(model, clip, PROMPT, InversionConfig(steps=2), window=WindowConfig(size=2, overlap=1))
    said = [r.getMessage() for r in caplog.records]
    assert said[0].startswith("tuning anew: the workspace keeps this clip tuned with other settings (tune.frames 2 ")
    assert "(tune.frames 2 (this run: every frame))" in said[0]
    assert "(window the whole clip at once (this run: size 2, overlap 1, anchors first))" in said[1]
    assert "(inversion.frames 2 (this run: every frame))" in said[2] and len(said) == 3


def test_a_tuning_kept_in_the_current_folders_workspace_is_named_by_a_run_that_tunes_elsewhere(
    tiny, clip_path, tmp_path, caplog, monkeypatch
):
    """`videop2p tune CLIP` keeps its work in ./.videop2p-workspace; `videop2p edit CLIP --out results/cat`
    in results/.videop2p-workspace (beside its output folder), where it tuned again without a word."""
    monkeypatch.chdir(tmp_path)
    here = VideoP2P(tiny, Workspace(tmp_path / ".videop2p-workspace"))
    clip = here.load_clip(VideoConfig(path=str(clip_path), frames=2, width=16, height=16))
    here.tune(clip, PROMPT, TuneConfig(steps=1, progress=False))
    elsewhere = VideoP2P(tiny, Workspace(tmp_path / "results" / ".videop2p-workspace"))
    with caplog.at_level(logging.WARNING, logger="videop2p.pipeline"):
        elsewhere.tune(clip, PROMPT, TuneConfig(steps=1, progress=False))
        elsewhere.tune(clip, PROMPT, TuneConfig(steps=1, progress=False))  # reused there now: nothing said
        here.tune(clip, PROMPT, TuneConfig(steps=1, progress=False))
    (record,) = caplog.records
    assert record.getMessage() == (
        f"tuning anew in {tmp_path / 'results' / '.videop2p-workspace'}: {tmp_path / '.videop2p-workspace'} keeps "
        "this clip tuned with these settings; a run with that workspace reuses it"
    )


def test_an_inversion_with_other_settings_than_the_kept_one_says_so(tiny, clip_path, tmp_path, caplog):
    """`videop2p invert --inversion fast` then `videop2p edit` (null-text by default) inverted anew silently."""
    vp = VideoP2P(tiny, Workspace(tmp_path / "ws"))
    clip = vp.load_clip(VideoConfig(path=str(clip_path), frames=2, width=16, height=16))
    model, _ = vp.tune(clip, PROMPT, TuneConfig(steps=1, progress=False))
    with caplog.at_level(logging.WARNING, logger="videop2p.pipeline"):
        vp.invert(model, clip, PROMPT, InversionConfig(method="fast", steps=2))
        vp.invert(model, clip, PROMPT, InversionConfig(method="fast", steps=2))  # reused
        vp.invert(model, clip, "another prompt for it", InversionConfig(method="fast", steps=2))  # not this clip's
        assert not caplog.records
        _, report = vp.invert(model, clip, PROMPT, InversionConfig(method="direct", steps=2))
    assert report.action == "computed"
    (record,) = caplog.records
    assert record.getMessage() == (
        "inverting anew: the workspace keeps this clip inverted with other settings (inversion.method fast (this run: "
        "direct)); the same settings reuse it"
    )


@pytest.mark.parametrize(
    ("frames", "kwargs", "message"),
    [
        (np.full((2, 8, 8, 3), 255.0, np.float32), {}, r"values from 255 to 255 \(float32\); give floats in 0-1"),
        (np.zeros((2, 8, 8, 2), np.uint8), {}, r"shape \(2, 8, 8, 2\) are not \(F, H, W, 3\) with F, H, W >= 1 \(RGB;"),
        (np.zeros((8, 8, 3), np.uint8), {}, r"shape \(8, 8, 3\) are not \(F, H, W, 3\)"),  # one image, not a clip
        (np.zeros((2, 3, 8, 8), np.float32), {}, r"too\); channels first\? \.permute\(0, 2, 3, 1\) \(torch\)"),
        (np.zeros((0, 8, 8, 3), np.uint8), {}, r"shape \(0, 8, 8, 3\)"),
        ([], {}, "the sequence of frames is empty"),
        ("clip.mp4", {}, "got str"),
        ([np.zeros((8, 8, 3), np.uint8), np.zeros((4, 8, 3), np.uint8)], {}, "mixed shapes"),
        ([np.zeros((8, 8, 3), np.uint8), "frame"], {}, "got str"),
        (np.zeros((2, 8, 8, 3), np.uint8), {"fps": float("nan")}, "fps: nan is not valid"),
        (np.zeros((2, 8, 8, 3), np.uint8), {"width": 1.5}, "width: 1.5 is not valid"),
        (np.zeros((2, 8, 8, 3), np.uint8), {"resize": "zoom"}, "'zoom' is not one of crop, pad, stretch"),
    ],
)
def test_frames_that_are_not_a_clip_are_named_before_any_work(tiny, frames, kwargs, message):
    with pytest.raises(ValueError, match=message):
        VideoP2P(tiny, None).clip_from_frames(frames, **kwargs)


def test_an_object_given_for_a_setting_is_named_in_one_line_by_its_kind(tiny, clip_path, tmp_path):
    """Regression: a `Clip` or an array given to `run` for the video (or a list for a number) was quoted whole,
    the array's numbers over hundreds of lines."""
    vp = VideoP2P(tiny, None)
    clip = vp.load_clip(VideoConfig(path=str(clip_path), frames=3))
    run = {"source": PROMPT, "targets": ["a blue circle moving on the grass"], "out": str(tmp_path / "o")}
    for video, message in (
        (clip, "video: a Clip is not valid; expected a mapping of its settings."),
        (clip.frames, f"video: an ndarray of shape {clip.frames.shape} is not valid; expected a mapping of its"),
        ({"path": clip}, "video.path: a Clip is not valid; expected text."),
        ({"path": str(clip_path), "fps": torch.zeros(2, 300)}, "video.fps: a Tensor of shape (2, 300) is not valid"),
        ({"path": str(clip_path), "frames": list(range(500))}, "video.frames: a list of 500 items is not valid"),
    ):
        with pytest.raises(ValueError) as e:
            vp.run({**run, "video": video})
        assert str(e.value).startswith(message) and "\n" not in str(e.value), str(e.value)[:200]
    assert not (tmp_path / "o").exists()


def test_the_stages_name_an_argument_of_the_wrong_kind(tiny, tmp_path):
    eight = write_frames(render_clip(ToyClipSpec([ToyObject(Shape.CIRCLE, Color.RED)], size=32)).frames, tmp_path / "c")
    vp = VideoP2P(tiny, None)
    clip = vp.load_clip(eight)  # a path alone: the defaults for the rest, as `videop2p run CLIP` takes them
    assert clip.digest == vp.load_clip(str(eight)).digest == vp.load_clip(VideoConfig(path=str(eight))).digest
    clip_path = eight
    with pytest.raises(
        TypeError, match=r"clip must be a Clip \(what `load_clip` or `clip_from_frames` returns\), got str"
    ):
        vp.tune(str(clip_path), PROMPT, TuneConfig(steps=1))
    with pytest.raises(TypeError, match="video must be a VideoConfig .*got int"):
        vp.load_clip(3)
    model, _ = vp.tune(clip, PROMPT, TuneConfig(steps=1, progress=False))
    with pytest.raises(TypeError, match="model must be a T2SModel .*got Clip"):
        vp.invert(clip, model, PROMPT)  # arguments swapped
    inversion, _ = vp.invert(model, clip, PROMPT, InversionConfig(method=InversionMethod.FAST, steps=2))
    with pytest.raises(TypeError, match="inversion must be an InversionResult .*got str"):
        vp.edit(model, "inversion", PROMPT, [PROMPT])
    with pytest.raises(TypeError, match="model must be a T2SModel .*got UNet2DConditionModel"):
        vp.edit(tiny.unet, inversion, PROMPT, [PROMPT])


def _quick_run(clip_path, out) -> dict:
    """A run's settings as a dict: a colour swap of 3 frames, one tuning step, 2 fast inversion steps."""
    return {
        "source": PROMPT,
        "targets": [PROMPT.replace("red", "blue")],
        "video": {"path": str(clip_path), "frames": 3},
        "tune": {"steps": 1},
        "inversion": {"method": "fast", "steps": 2},
        "out": str(out),
        "quiet": True,
    }


def test_run_takes_its_settings_as_a_dict_read_as_a_config_file_is(tiny, clip_path, tmp_path):
    from videop2p.config import ConfigError

    vp = VideoP2P(tiny, Workspace(tmp_path / "ws"))
    settings = _quick_run(clip_path, tmp_path / "o")
    manifest = vp.run(settings)
    assert manifest["targets"] == settings["targets"] and (tmp_path / "o" / "outputs.json").exists()
    with pytest.raises(ConfigError, match="Unknown key 'sourc'"):
        vp.run({**settings, "sourc": PROMPT})
    with pytest.raises(TypeError, match="cfg must be a RunConfig .*got list"):
        vp.run([PROMPT])


def test_paths_given_as_path_objects_are_taken_as_their_text_and_a_clips_selection_is_checked_first(
    tiny, clip_path, tmp_path
):
    import copy

    import yaml

    from videop2p.config import OptionError, fill_run

    vp = VideoP2P(tiny, Workspace(tmp_path / "ws"))
    settings = fill_run(_quick_run(clip_path, tmp_path / "o"))
    settings.video.path, settings.out, settings.workspace = Path(clip_path), tmp_path / "o", tmp_path / "ws"
    given = copy.deepcopy(settings)
    manifest = vp.run(settings)
    assert isinstance(settings.out, Path) and settings == given  # the caller's settings are left as they were
    written = yaml.safe_load((tmp_path / "o" / "config.yaml").read_text())
    assert (written["video"]["path"], written["out"]) == (str(clip_path), str(tmp_path / "o"))
    assert manifest["frames"] == settings.video.frames
    assert vp.load_clip(VideoConfig(path=Path(clip_path), frames=2)).frames.shape[0] == 2
    for bad, named in (
        ({"frames": 0}, "video.frames: 0 is not valid"),
        ({"stride": 0}, "video.stride: 0 is not valid"),
    ):
        with pytest.raises(OptionError, match=f"^{named}; expected a whole number >= 1"):  # not num_frames, ...
            vp.load_clip(VideoConfig(path=str(clip_path), **bad))
    with pytest.raises(OptionError, match="^video.path: 3 is not valid; expected text"):
        vp.load_clip(VideoConfig(path=3))


DID = {"reuse": "reused", "resume": "resumed", "compute": "computed"}  # a dry run's word -> the run's report


def test_a_dry_run_says_what_each_stage_would_do_as_the_run_then_does_and_writes_nothing(
    tiny, clip_path, tmp_path, monkeypatch
):
    from videop2p import pipeline
    from videop2p.progress import Cancelled

    ws, out = tmp_path / "ws", tmp_path / "o"
    vp = VideoP2P(tiny, Workspace(ws))
    settings = _quick_run(clip_path, out)

    def said(found):
        return [s.action for s in found.stages]

    def did(manifest):
        return [manifest["stages"][s]["action"] for s in ("tune", "invert", "edit")]

    first = vp.dry_run(settings)
    assert said(first) == ["compute"] * 3 and not ws.exists() and not out.exists()  # nothing written
    assert first.settings.workspace == str(ws) and first.settings.tune.steps == 1
    assert did(vp.run(settings)) == ["computed"] * 3
    assert all(Path(s.entry).is_file() for s in first.stages)  # the entries it named are those the run kept
    assert said(vp.dry_run(settings)) == ["reuse"] * 3
    windows = {"video": {"path": str(clip_path), "frames": 3}, "window": {"size": 2, "overlap": 1}}
    for change, expected in (
        ({"edit": {"cross_replace": 0.5}}, ["reuse", "reuse", "compute"]),
        ({"inversion": {"method": "fast", "steps": 3}}, ["reuse", "compute", "compute"]),
        ({"tune": {"steps": 2}}, ["compute"] * 3),
        (windows, ["compute"] * 3),  # a clip in windows
        ({"force": True}, ["compute"] * 3),
    ):
        changed = {**settings, **change, "out": str(tmp_path / "again")}
        assert said(vp.dry_run(changed)) == expected, change
        assert did(vp.run(changed)) == [DID[a] for a in expected], change
        assert said(vp.dry_run(changed)) == (["reuse"] * 3 if "force" not in change else ["compute"] * 3)

    stopped = {**settings, "tune": {"steps": 3, "save_seconds": 0}}

    def stop(stage, i, total):
        if stage == "tune" and i == 2:
            raise Cancelled(stage)

    with pytest.raises(Cancelled):
        vp.run(stopped, on_step=stop)
    assert said(vp.dry_run(stopped)) == ["resume", "compute", "compute"]
    assert did(vp.run(stopped)) == ["resumed", "computed", "computed"]
    alone = {k: v for k, v in settings.items() if k != "targets"}  # `videop2p tune` and `invert`: no targets
    assert [s.stage for s in vp.dry_run(alone, "invert").stages] == ["tune", "invert"]
    assert said(VideoP2P(tiny, None).dry_run(settings)) == ["compute"] * 3  # no workspace: nothing reused
    with pytest.raises(ValueError, match="last 'write' is not a stage; valid: tune, invert, edit"):
        vp.dry_run(settings, "write")
    clip = vp.load_clip(settings["video"]).frames.nbytes
    monkeypatch.setattr(pipeline, "free_memory", lambda: 2 * clip - 1)  # the clip; not its reconstruction and edit
    assert [s.stage for s in vp.dry_run(alone, "invert").stages] == ["tune", "invert"]  # the clip alone: it fits
    with pytest.raises(ValueError, match="memory"):  # the run would be refused before tuning: so is its dry run
        vp.dry_run(settings)


def test_a_dry_run_computes_a_damaged_kept_entry_as_the_run_does_and_says_why(tiny, clip_path, tmp_path, caplog):
    from safetensors.torch import save_file

    vp = VideoP2P(tiny, Workspace(tmp_path / "ws"))
    settings = _quick_run(clip_path, tmp_path / "o")
    entries = {s.stage: Path(s.entry) for s in vp.dry_run(settings).stages}
    vp.run(settings)
    truncated = {"tune": "truncated", "invert": "truncated", "edit": "not written by videop2p"}
    for stage in ("tune", "invert", "edit"):
        kept = entries[stage].read_bytes()
        if stage == "edit":  # another program's tensors file: no videop2p metadata
            save_file({"latents": torch.zeros(1)}, str(entries[stage]))
        else:
            entries[stage].write_bytes(kept[: len(kept) // 2])
        found = {s.stage: s for s in vp.dry_run(settings).stages}
        assert found[stage].action == "compute" and truncated[stage] in found[stage].why, stage
        assert all(s.action == "reuse" and s.why is None for s in found.values() if s.stage != stage), stage
        caplog.clear()
        manifest = vp.run({**settings, "out": str(tmp_path / stage)})
        assert {s: manifest["stages"][s]["action"] for s in found} == {
            s: "computed" if s == stage else "reused" for s in found
        }
        assert f"ignoring workspace {stage} entry" in caplog.text
        assert [s.action for s in vp.dry_run(settings).stages] == ["reuse"] * 3  # computed anew and kept
        assert entries[stage].read_bytes() == kept  # the same work as before


def test_a_runs_config_yaml_names_the_workspace_it_ran_in_so_that_rerunning_it_reuses_the_work(
    tiny, clip_path, tmp_path
):
    import yaml

    from videop2p.config import fill_run

    ws = tmp_path / "ws"
    vp = VideoP2P(tiny, Workspace(ws))  # the workspace given to the pipeline, not in the settings (as the demo)
    settings = _quick_run(clip_path, tmp_path / "o")
    vp.run(settings)
    written = yaml.safe_load((tmp_path / "o" / "config.yaml").read_text())
    assert written["workspace"] == str(ws.resolve())
    again = vp.run(fill_run({**written, "out": str(tmp_path / "o2")}))
    assert {again["stages"][s]["action"] for s in ("tune", "invert", "edit")} == {"reused"}
    with pytest.raises(ValueError, match=r"^workspace '.*elsewhere' is not the one this pipeline keeps its work in"):
        vp.run({**settings, "workspace": str(tmp_path / "elsewhere")})  # it would be ignored
    assert not (tmp_path / "elsewhere").exists()
    with pytest.raises(ValueError, match=r"keeps its work in \(None\)"):
        VideoP2P(tiny).run({**settings, "workspace": str(ws)})


def test_a_runs_settings_name_the_model_only_as_the_pipeline_loaded_it_and_its_config_yaml_records_it(
    tiny, clip_path, tmp_path, monkeypatch
):
    """The stages run the loaded model: a run's settings naming another model, adapter, VAE, device or precision
    are refused (they were ignored, and config.yaml recorded them); left out, config.yaml records the loaded
    ones, so that `--config OUT/config.yaml` loads the model the run used. A run's attention slicing is its own
    (it was ignored too)."""
    import yaml

    from videop2p.models.loading import save_pretrained_folder

    monkeypatch.chdir(tmp_path)
    save_pretrained_folder(tiny, tmp_path / "model")
    vp = VideoP2P.from_pretrained("model", workspace=tmp_path / "ws")
    settings = _quick_run(clip_path, tmp_path / "o")
    assert vp.dry_run(settings).settings.model == "model"  # left out: the loaded one
    for same in ({"model": "./model"}, {"model": str(tmp_path / "model")}, {"device": "cpu:0"}):
        assert vp.dry_run({**settings, **same}).settings.model == "model", same  # the same files, the same device
    for name, other in (
        ("model", "videop2p-toy"),
        ("vae", str(tmp_path / "model" / "vae")),
        ("lora", {str(tmp_path / "style.safetensors"): 1.0}),
        ("dtype", "bfloat16"),
        ("device", "cuda"),
        ("device", "not-a-device"),
    ):
        with pytest.raises(ValueError, match=rf"^{name} .* is not the one this pipeline was loaded with .*"
                                             rf"from_pretrained\({name}=\.\.\.\), or leave the settings' {name} out\.$"):  # fmt: skip
            vp.run({**settings, name: other})
    assert not (tmp_path / "o").exists()
    vp.run(settings)
    recorded = yaml.safe_load((tmp_path / "o" / "config.yaml").read_text())
    assert Path(recorded["model"]).resolve() == (tmp_path / "model").resolve()  # the loaded one (from anywhere)
    # attention slicing is a run's (the web editor's field): the pipeline's where the run leaves it out
    assert (
        recorded["attention_slicing"] is None
        and vp.dry_run({**settings, "attention_slicing": 8}).settings.attention_slicing == 8
    )
    sliced = VideoP2P(tiny, attention_slicing=16)
    assert sliced.dry_run(settings).settings.attention_slicing == 16
    clip = sliced.load_clip(settings["video"])
    assert sliced.tune(clip, PROMPT, {"steps": 0}, attention_slicing=4)[0].query_chunk == 4
    assert sliced.tune(clip, PROMPT, {"steps": 0})[0].query_chunk == 16
    bundled = VideoP2P.from_pretrained(None)
    with pytest.raises(ValueError, match=r"loaded with \(the bundled model, videop2p-toy\)"):
        bundled.dry_run({**settings, "model": "model"})
    assert bundled.dry_run({**settings, "model": "videop2p-toy"}).settings.model is None  # its name: the same
    assert VideoP2P(tiny).dry_run({**settings, "model": "elsewhere"}).settings.model == "elsewhere"  # not known


def test_a_tuning_whose_weights_the_workspace_disk_cannot_hold_is_refused_before_it_starts(
    tiny, clip_path, tmp_path, monkeypatch
):
    import shutil
    from collections import namedtuple

    from videop2p.store import files

    vp = VideoP2P(tiny, Workspace(tmp_path / "ws"))
    clip = vp.load_clip(VideoConfig(path=str(clip_path), frames=3))
    usage = namedtuple("usage", "total used free")
    real = shutil.disk_usage

    def full(path):  # the disk as a full one reports itself
        return usage(real(path).total, real(path).total - 4096, 4096)

    monkeypatch.setattr(files.shutil, "disk_usage", full)
    with pytest.raises(ValueError, match=r"workspace '.*ws' has 0.0 MiB free; the tuned weights take \d+\.\d MiB"):
        vp.tune(clip, PROMPT, TuneConfig(steps=1, progress=False))
    assert not (tmp_path / "ws").exists()  # refused before the tuning, nothing written
    monkeypatch.setattr(files.shutil, "disk_usage", real)
    vp.tune(clip, PROMPT, TuneConfig(steps=1, progress=False))
    monkeypatch.setattr(files.shutil, "disk_usage", full)
    _, again = vp.tune(clip, PROMPT, TuneConfig(steps=1, progress=False))
    assert again.action == "reused"  # a kept delta needs no room


def test_a_set_whose_writer_was_killed_leaves_its_hidden_folder_only_until_the_next_set(tmp_path):
    import socket
    import subprocess
    import sys

    from videop2p.store.files import STAGE_PREFIX, staged_files

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = socket.gethostname()
    killed = tmp_path / f"{STAGE_PREFIX}{host}-{int(gone.stdout)}-1"  # its process has ended
    alive = tmp_path / f"{STAGE_PREFIX}{host}-{os.getpid()}-1"  # another thread of this process, writing
    elsewhere = tmp_path / f"{STAGE_PREFIX}other-host-{int(gone.stdout)}-1"  # a machine sharing the disk
    for folder in (killed, alive, elsewhere):
        write_json(folder / "half.json", {})
    with staged_files(tmp_path) as stage:
        write_json(stage / "a.json", {})
    assert not killed.exists() and alive.exists() and elsewhere.exists() and (tmp_path / "a.json").exists()


def test_a_file_whose_writer_was_killed_leaves_its_temporary_only_until_the_file_is_written_again(tmp_path):
    import socket
    import subprocess
    import sys

    gone = int(
        subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout
    )
    host = socket.gethostname()
    killed = tmp_path / f".entry.{host}.{gone}.1.tmp.json"
    writing = tmp_path / f".entry.{host}.{os.getpid()}.1.tmp.json"  # another thread of this process
    other = tmp_path / f".entry.other-host.{gone}.1.tmp.json"  # a machine sharing the disk
    unrelated = tmp_path / f".other.{host}.{gone}.1.tmp.json"  # another file's
    for p in (killed, writing, other, unrelated):
        p.write_text("half")
    write_json(tmp_path / "entry.json", {"v": 1})
    assert not killed.exists() and writing.exists() and other.exists() and unrelated.exists()


def test_a_tuned_delta_given_as_the_model_is_named_as_one_not_read_as_a_checkpoint(tiny, clip_path, tmp_path):
    from videop2p.exporting import export_tuned
    from videop2p.models.loading import ModelNotFoundError, check_model_path, load_components

    vp = VideoP2P(tiny, Workspace(tmp_path / "ws"))
    clip = vp.load_clip(VideoConfig(path=str(clip_path), frames=3))
    model, _ = vp.tune(clip, PROMPT, TuneConfig(steps=1, progress=False))
    entry = vp.workspace.clip_dir(model.delta_key)
    export = export_tuned(tiny, entry, tmp_path / "delta")  # diffusers-delta, the default
    for given in (entry, export, export / "tune.safetensors"):
        message = rf"^{given} is a tuned clip's delta .* not a model: give --model the model it was tuned from"
        with pytest.raises(ModelNotFoundError, match=message):
            check_model_path(given)
        with pytest.raises(ModelNotFoundError, match=message):
            load_components(given)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"model": 5}, TypeError, "model must be a hub id or a folder's or file's path, got int"),
        ({"vae": 3}, TypeError, "vae must be"),  # not looked up on the hub as '3'
        ({"workspace": " "}, ValueError, "workspace ' ' names no folder"),
        ({"frame_mode": "x"}, ValueError, "frame_attention: 'x' is not one of first, sparse-causal"),
        ({"group_norm": None}, ValueError, "group_norm: None is not one of frame, clip"),
        ({"attention_slicing": 0}, ValueError, "attention_slicing: 0 is not valid; expected a whole number >= 1"),
        ({"dtype": "float8"}, ValueError, "dtype: 'float8' is not one of float32"),
        ({"lora": 3}, ValueError, "lora: 3 is not valid; expected FILE=SCALE pairs"),  # a list of them is taken
        ({"lora": ["style.safetensors", " "]}, ValueError, "lora: ' ' must be FILE or FILE=SCALE"),
        ({"lora": {"style.safetensors": float("nan")}}, ValueError, "LoRA scale nan for 'style.safetensors'"),
    ],
)
def test_from_pretrained_refuses_bad_settings_by_name_before_loading(kwargs, error, message, tmp_path, monkeypatch):
    import videop2p.pipeline as pipeline

    monkeypatch.setattr(pipeline, "load_components", lambda *a, **k: pytest.fail("loaded before its settings"))
    with pytest.raises(error, match=message):
        VideoP2P.from_pretrained(**{"workspace": tmp_path / "ws", **kwargs})
    assert not (tmp_path / "ws").exists()


def test_a_blank_clip_path_is_named_not_read_as_the_current_folder(tiny):
    with pytest.raises(VideoError, match="The clip's path ' ' is empty; give a video file"):
        VideoP2P(tiny).load_clip(" ")


def test_a_workspace_under_home_is_read_as_a_shell_reads_it(tiny_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    vp = VideoP2P.from_pretrained(str(tiny_folder), workspace="~/ws")
    assert vp.workspace.root == tmp_path / "ws" and not (tmp_path / "~").exists()
    vp._check_workspace("~/ws")  # a run's settings naming it the same way name the same workspace


def test_kept_tunings_of_one_clip_are_told_apart_by_the_settings_they_differ_in():
    from videop2p.store.workspace import clip_identity, set_apart

    def tuned(prompt="a red circle", norm="frame", **tune):
        return clip_identity("m", "h", (64, 64), 8, prompt, "first", norm, {"steps": 500, "seed": 33, **tune})

    identities = [
        tuned(),
        tuned(norm="clip"),
        tuned(seed=7, dtype="float16"),
        tuned(prompt="a blue circle"),  # another prompt's tuning: another clip, tuned once
    ]
    assert set_apart(identities) == [  # what is not the value most of them share
        {},
        {"group_norm": "clip"},
        {"tune.seed": "7", "dtype": "float16"},
        {},
    ]
    # two tunings, or none sharing a value: each its own; a float32 tuning's dtype, which its key leaves out
    assert set_apart([tuned(), tuned(norm="clip")]) == [{"group_norm": "frame"}, {"group_norm": "clip"}]
    assert set_apart([tuned(), tuned(dtype="bfloat16"), tuned(dtype="float16")])[0] == {"dtype": "float32"}
