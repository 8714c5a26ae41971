import csv
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from videop2p.evaluation import (
    EditKind,
    Method,
    _model_key,
    bar_method,
    by_kind_markdown,
    judge,
    make_suite,
    success_by_kind,
)
from videop2p.models.loading import load_components, model_info, save_pretrained_folder
from videop2p.toy.world import COLOR_RGB, Color, render_clip


def test_suite_is_seeded_and_covers_every_edit_kind():
    a, b = make_suite(10, seed=3), make_suite(10, seed=3)
    assert [c.target for c in a] == [c.target for c in b]
    assert {c.kind for c in a} == set(EditKind)
    for c in a:
        assert c.source != c.target


def test_judge_gives_perfect_scores_to_the_ground_truth_and_fails_an_unedited_clip():
    case = next(c for c in make_suite(5, seed=1) if c.kind is EditKind.COLOR)
    clip = render_clip(case.spec)
    unedited = judge(case, clip, clip.frames, clip.frames)
    assert unedited["edit_success"] == 0.0
    assert unedited["background_psnr"] > 90 and unedited["reconstruction_psnr"] > 90
    assert abs(unedited["colour_jitter"]) < 0.5 and unedited["position_jitter"] < 0.5  # checker-found masks
    assert unedited["object_iou"] > 0.9
    edited = clip.frames.copy()
    edited[clip.masks[:, 0]] = COLOR_RGB[Color(case.want["color"])]
    perfect = judge(case, clip, edited, clip.frames)
    assert perfect["edit_success"] == 1.0 and perfect["background_psnr"] > 90
    broken = edited.copy()
    broken[:, :8] = 0  # damage the background
    assert judge(case, clip, broken, clip.frames)["background_psnr"] < 30


def test_an_edited_object_that_moved_is_not_a_success():
    case = next(c for c in make_suite(5, seed=1) if c.kind is EditKind.COLOR)
    clip = render_clip(case.spec)
    moved = clip.frames.copy()
    background = np.median(clip.frames[:, :2].reshape(-1, 3), axis=0).astype(np.uint8)
    moved[clip.masks[:, 0]] = background  # the object vanishes from its place...
    shifted = np.roll(clip.masks[:, 0], 20, axis=1)
    moved[shifted] = COLOR_RGB[Color(case.want["color"])]  # ...and reappears, recoloured, lower down
    result = judge(case, clip, moved, clip.frames)
    assert result["edit_success"] == 0.0 and result["object_iou"] < 0.5
    assert result["position_jitter"] >= 0.0


def test_clip_metrics_from_a_local_model_and_a_note_without_one(tmp_path):
    from videop2p.evaluation import clip_scores, load_clip_scorer

    scorer, note = load_clip_scorer(None)
    assert scorer is None and "skipped" in note
    with pytest.raises(ValueError, match="CLIP model .*missing' is not available locally"):  # asked for: refused
        load_clip_scorer(str(tmp_path / "missing"))
    scorer, note = load_clip_scorer(str(_tiny_clip_model(tmp_path / "clip")))
    assert scorer is not None and str(tmp_path / "clip") in note
    clip = render_clip(make_suite(1, seed=2)[0].spec)
    scores = clip_scores(scorer, clip.frames, "a red circle moving on the grass")
    assert -1 <= scores["clip_text_alignment"] <= 1 and 0.5 < scores["clip_frame_consistency"] <= 1.0 + 1e-6
    still = clip_scores(scorer, np.repeat(clip.frames[:1], 3, axis=0), "a red circle")
    assert abs(still["clip_frame_consistency"] - 1.0) < 1e-5  # identical frames are perfectly consistent


def _tiny_clip_model(folder: Path) -> Path:
    """A CLIP model and processor of a few small layers saved into `folder`, as `from_pretrained` reads one."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    from videop2p.models.tokenizer import bundled_tokenizer

    torch.manual_seed(0)
    text = {"hidden_size": 32, "intermediate_size": 37, "num_attention_heads": 4, "num_hidden_layers": 2}
    vision = {**text, "image_size": 32, "patch_size": 8}
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).save_pretrained(folder)
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=image_processor, tokenizer=bundled_tokenizer()).save_pretrained(folder)
    return folder


def test_a_clip_model_is_read_from_the_cache_by_its_id_revision_or_link_and_other_links_are_named(hub_cache):
    """`--clip-model` takes what `--model` takes of the hub: an id, `owner/name@REVISION` and the page's link
    (which was looked up as a hub id and refused with the hub library's complaint of its form), from the cache
    alone; an id the cache lacks says how to put it there, and a link off the hub is named as a link."""
    from videop2p.evaluation import load_clip_scorer

    _tiny_clip_model(hub_cache.snapshot("someone/tiny-clip"))
    _tiny_clip_model(hub_cache.snapshot("someone/tiny-clip", "v2"))
    for name in ("someone/tiny-clip", "https://huggingface.co/someone/tiny-clip", "someone/tiny-clip@v2"):
        scorer, note = load_clip_scorer(name)
        assert scorer is not None and note == f"CLIP metrics from {name}"
    scorer, _ = load_clip_scorer("https://huggingface.co/someone/tiny-clip/tree/v2")
    assert scorer is not None
    with pytest.raises(ValueError, match=r"not in the Hugging Face cache; `hf download someone/other --revision v3`"):
        load_clip_scorer("https://huggingface.co/someone/other/tree/v3")
    with pytest.raises(ValueError, match=r"^CLIP model 's3://bucket/clip' is a link, not a path on this machine; "):
        load_clip_scorer("s3://bucket/clip")
    with pytest.raises(ValueError, match=r"^CLIP model 'nnn.*' \(300 characters\) names no file or folder"):
        load_clip_scorer("n" * 300)  # found by bench/cli_fuzz.py: an OSError of the file system's, not a line
    assert hub_cache.connects == []


def test_eval_refuses_a_clip_model_before_the_model_is_loaded(tmp_path, monkeypatch):
    """The CLIP model an evaluation asks for is loaded before the model it evaluates, so a bad one is its one
    line before any work (it was loaded after the model, which logged its loading first)."""
    from typer.testing import CliRunner

    import videop2p.models.loading
    from videop2p.cli import app
    from videop2p.testing import assert_one_line_error

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the CLIP model was checked")

    monkeypatch.setattr(videop2p.models.loading, "load_components", refuse)
    args = ["eval", "--cases", "1", "--out", str(tmp_path / "ev"), "--clip-model", "ftp://host/clip"]
    assert_one_line_error(CliRunner().invoke(app, args), "CLIP model 'ftp://host/clip' is a link")
    assert not (tmp_path / "ev").exists()


def test_eval_with_a_clip_model_that_is_not_there_stops_before_the_first_case(tmp_path):
    from typer.testing import CliRunner

    from videop2p.cli import app
    from videop2p.testing import assert_one_line_error

    args = ["eval", "--cases", "1", "--out", str(tmp_path / "ev"), "--clip-model", str(tmp_path / "nope")]
    assert_one_line_error(CliRunner().invoke(app, args), "CLIP model", "is not available locally (no such folder)")
    (tmp_path / "scores.json").write_text("{}")  # a file (say another run's --json), not a model's folder
    args[-1] = str(tmp_path / "scores.json")
    assert_one_line_error(CliRunner().invoke(app, args), "scores.json' is not available locally (a file, not a model's")
    args[-1] = " "  # an unset variable's value does not skip the metrics it was asked for
    assert_one_line_error(CliRunner().invoke(app, args), "--clip-model ' ' names no model", "or leave it out")
    assert not (tmp_path / "ev").exists()


def fake_comps(identity: str = "toy@1234"):
    """What `evaluate` reads of the components when `run_case` is faked: the model's fingerprint and dtype."""
    info = SimpleNamespace(identity=identity, fingerprint=identity.rpartition("@")[2])
    return SimpleNamespace(info=info, unet=SimpleNamespace(dtype=torch.float32))


def test_a_stopped_evaluation_goes_on_where_it_stopped_and_new_settings_rerun(tmp_path, monkeypatch):
    import videop2p.evaluation as ev

    calls = []

    def fake_run_case(comps, case, s, scorer=None, clip=None):
        calls.append(case.target)
        if len(calls) == 3 and stop_at_third:
            raise KeyboardInterrupt  # the run is stopped during its third case
        keys = ("edit_success", "frames_right", "object_iou", "background_psnr", "background_ssim")
        keys += ("reconstruction_psnr", "colour_jitter", "position_jitter", "mask_coverage", "seconds")
        metrics = {k: float(len(calls)) for k in keys}
        frames = np.zeros_like(render_clip(case.spec).frames)
        return {"Video-P2P": {**metrics, "frames": frames, "reconstruction_frames": frames}}

    monkeypatch.setattr(ev, "run_case", fake_run_case)
    settings = ev.EvalSettings(tune_steps=1, steps=1, frames=2, methods=[ev.Method.VIDEO_P2P])
    comps = fake_comps()
    stop_at_third = True
    with pytest.raises(KeyboardInterrupt):
        ev.evaluate(comps, 4, tmp_path, settings)
    assert sorted(p.name for p in (tmp_path / "cases").iterdir()) == ["case000.json", "case001.json"]
    stop_at_third, calls[:] = False, []
    result = ev.evaluate(comps, 4, tmp_path, settings)
    suite = ev.make_suite(4, 0, 2)
    assert calls == [suite[2].target, suite[3].target]  # the two kept cases were read back, not run
    assert [r["case"] for r in result["rows"]] == [0, 1, 2, 3]
    assert result["rows"][0]["edit_success"] == 1.0  # the kept case's own numbers
    calls[:] = []
    ev.evaluate(fake_comps("toy@5678"), 4, tmp_path, settings)  # other weights: every case runs again
    assert len(calls) == 4
    calls[:] = []
    settings.tune_steps = 2  # other settings: every case runs again
    ev.evaluate(comps, 4, tmp_path, settings)
    assert len(calls) == 4
    calls[:] = []
    ev.evaluate(comps, 4, tmp_path, settings, resume=False)
    assert len(calls) == 4


def test_shards_split_the_suite_and_a_plain_run_reads_every_shard_back(tmp_path, monkeypatch):
    import videop2p.evaluation as ev

    calls = []

    def fake_run_case(comps, case, s, scorer=None, clip=None):
        calls.append(case.target)
        keys = ("edit_success", "frames_right", "object_iou", "background_psnr", "background_ssim")
        keys += ("reconstruction_psnr", "colour_jitter", "position_jitter", "mask_coverage", "seconds")
        frames = np.zeros_like(render_clip(case.spec).frames)
        return {"Video-P2P": {**{k: 0.5 for k in keys}, "frames": frames, "reconstruction_frames": frames}}

    monkeypatch.setattr(ev, "run_case", fake_run_case)
    settings = ev.EvalSettings(tune_steps=1, steps=1, frames=2, methods=[ev.Method.VIDEO_P2P])
    comps = fake_comps()
    suite = ev.make_suite(5, 0, 2)
    first = ev.evaluate(comps, 5, tmp_path, settings, shard=(0, 2))
    assert calls == [suite[0].target, suite[2].target, suite[4].target]
    assert [r["case"] for r in first["rows"]] == [0, 2, 4] and first["cases"] == 3
    calls[:] = []
    second = ev.evaluate(comps, 5, tmp_path, settings, shard=(1, 2))
    assert calls == [suite[1].target, suite[3].target]
    # the last shard's tables hold every kept case, the other shard's too
    assert [r["case"] for r in second["rows"]] == [0, 1, 2, 3, 4] and second["cases"] == 2
    with open(tmp_path / "cases.csv") as f:
        assert [int(r["case"]) for r in csv.DictReader(f)] == [0, 1, 2, 3, 4]
    calls[:] = []
    full = ev.evaluate(comps, 5, tmp_path, settings)
    assert calls == [] and full["cases_read_back"] == 5  # every case was kept by one shard or the other
    assert [r["case"] for r in full["rows"]] == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="shard 2/2"):
        ev.evaluate(comps, 5, tmp_path, settings, shard=(2, 2))


@pytest.mark.parametrize("shard", ["3/2", "a/b", "1", ""])
def test_eval_rejects_a_bad_shard_by_name(shard):
    from typer.testing import CliRunner

    from videop2p.cli import app

    result = CliRunner().invoke(app, ["eval", "--shard", shard])
    assert result.exit_code == 2
    assert f"--shard {shard!r} must be K/N" in result.output


def test_bars_are_checked_on_the_full_method_or_else_its_fast_mode():
    assert bar_method([Method.FAST, Method.TUNE_A_VIDEO]) is Method.FAST  # the quick run's method
    assert bar_method([Method.VIDEO_P2P, Method.FAST]) is Method.VIDEO_P2P
    assert bar_method([Method.TUNE_A_VIDEO, Method.PER_FRAME]) is None  # neither ran: no bars to check


def test_kept_cases_follow_the_weights_not_the_folder_they_were_loaded_from(tiny, tmp_path):
    here = load_components(save_pretrained_folder(tiny, tmp_path / "here"))
    there = load_components(save_pretrained_folder(tiny, tmp_path / "elsewhere"))
    assert here.info.identity != there.info.identity  # the source name differs
    assert _model_key(here) == _model_key(there) and here.info.fingerprint in _model_key(here)
    with torch.no_grad():
        next(there.unet.parameters()).add_(1.0)
    changed = model_info(there.tokenizer, there.text_encoder, there.vae, there.unet, there.scheduler, source="here")
    assert changed.fingerprint != here.info.fingerprint  # other weights: their kept cases are not read back


def test_success_is_counted_per_method_and_edit_kind():
    rows = [
        {"case": 0, "kind": "colour swap", "method": "Video-P2P", "edit_success": 1.0},
        {"case": 0, "kind": "colour swap", "method": "fast", "edit_success": 0.0},
        {"case": 1, "kind": "shape swap", "method": "Video-P2P", "edit_success": 0.0},
        {"case": 1, "kind": "shape swap", "method": "fast", "edit_success": 1.0},
        {"case": 5, "kind": "colour swap", "method": "Video-P2P", "edit_success": 1.0},
        {"case": 5, "kind": "colour swap", "method": "fast", "edit_success": float("nan")},  # not judged: no success
    ]
    table = success_by_kind(rows)
    assert table == {
        "Video-P2P": {"colour swap": (2, 2), "shape swap": (0, 1)},
        "fast": {"colour swap": (0, 2), "shape swap": (1, 1)},
    }
    md = by_kind_markdown(table).splitlines()
    assert md[0] == "| method | colour swap | shape swap |"
    assert md[2:] == ["| Video-P2P | 2 of 2 | 0 of 1 |", "| fast | 0 of 2 | 1 of 1 |"]


def test_an_identity_case_edits_a_clip_into_its_own_prompt_and_wants_it_unchanged():
    import videop2p.evaluation as ev
    from videop2p.toy.world import parse_caption

    for case in ev.make_suite(5):  # every edit kind, refinements' colourless prompts included
        same = ev.identity_case(case.spec)
        obj = case.spec.objects[0]
        assert same.spec is case.spec and same.source == same.target
        assert parse_caption(same.source) == (case.spec.objects, case.spec.background)  # the clip's full caption
        assert same.blend == (obj.shape.value, obj.shape.value) and same.want == {"color": obj.color.value}
