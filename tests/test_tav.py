"""Tune-A-Video / Video-P2P tuned checkpoints: written in the authors' layout and read back exactly."""

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from videop2p.cli import app
from videop2p.config import OFFICIAL_TUNE_STEPS, ExportFormat, FrameAttentionMode, TuneConfig, VideoConfig
from videop2p.exporting import export_tuned
from videop2p.io.video import read_video
from videop2p.io.writing import write_frames
from videop2p.models.loading import is_video_model, load_components, save_pretrained_folder
from videop2p.models.tav import from_authors_key, to_authors_key
from videop2p.pipeline import VideoP2P
from videop2p.store.workspace import Workspace
from videop2p.testing import assert_one_line_error
from videop2p.toy.world import Color, Shape, ToyClipSpec, ToyObject, render_clip
from videop2p.ui import Session

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "tav_unet3d_keys_tiny.json").read_text())
PROMPT = "a red circle moving on the grass"
runner = CliRunner()


@pytest.fixture(scope="module")
def tuned(tmp_path_factory, tiny):
    """A tiny model folder, a clip, and that clip tuned 2 steps in a workspace (sparse-causal frames)."""
    root = tmp_path_factory.mktemp("tav")
    base = save_pretrained_folder(tiny, root / "base")
    clip = render_clip(ToyClipSpec([ToyObject(Shape.CIRCLE, Color.RED)], frames=3, size=32, seed=3))
    clip_dir = write_frames(clip.frames, root / "clip")
    vp = VideoP2P(load_components(str(base)), Workspace(root / "ws"), FrameAttentionMode.SPARSE_CAUSAL)
    video = vp.load_clip(VideoConfig(path=str(clip_dir), frames=3))
    model, report = vp.tune(video, PROMPT, TuneConfig(steps=2, progress=False))
    entry = Path(report.entry).parent
    out = export_tuned(vp.components, entry, root / "exported", ExportFormat.TUNE_A_VIDEO)
    return base, vp, video, model, entry, out


def test_key_mapping_round_trips_every_key(tiny):
    from videop2p.models.t2s import T2SModel

    keys = T2SModel.from_image_unet(tiny.unet).unet.state_dict()
    assert all(from_authors_key(to_authors_key(k)) == k for k in keys)
    assert to_authors_key("up_blocks.1.attentions.0.transformer_blocks.0.temporal.norm.weight").endswith(
        "transformer_blocks.0.norm_temp.weight"
    )


def test_export_has_exactly_the_authors_keys_and_shapes(tuned):
    _, _, _, _, _, out = tuned
    state = torch.load(out / "unet" / "diffusion_pytorch_model.bin", weights_only=True)
    assert {k: list(v.shape) for k, v in state.items()} == FIXTURE["keys"]
    config = json.loads((out / "unet" / "config.json").read_text())
    assert config["_class_name"] == "UNet3DConditionModel"
    assert config["down_block_types"] == list(FIXTURE["config"]["down_block_types"])
    assert config["up_block_types"] == list(FIXTURE["config"]["up_block_types"])
    assert config["videop2p_frame_attention"] == "sparse-causal"
    for part in ("tokenizer", "text_encoder", "vae", "scheduler"):
        assert (out / part).is_dir()


def test_a_loaded_folder_predicts_bit_identically_and_is_not_tuned_again(tuned):
    _, vp, video, model, _, out = tuned
    loaded = VideoP2P(load_components(str(out)))  # asked for the default (first); the folder says sparse-causal
    assert loaded.architecture()[0] is FrameAttentionMode.SPARSE_CAUSAL
    again, report = loaded.tune(video, PROMPT)
    assert report.unet_evaluations == 0  # tuning skipped: the folder is already tuned
    torch.manual_seed(0)
    z, text = torch.randn(1, 3, 4, 4, 4), torch.randn(1, 77, 32)
    with torch.no_grad():
        assert torch.equal(model(z, 500, text), again(z, 500, text))
    more, report = loaded.tune(video, PROMPT, TuneConfig(steps=1, progress=False))  # asked: continues from it
    # the web editor's Tuning steps field shows the steps a run takes by default, found without loading the model
    # (Gradio shows no blank number: its 0, no tuning, was sent for the official default, so the editor never tuned)
    base = tuned[0]
    assert Session(str(out), base.parent / "ui").default_tune_steps() == 0 and is_video_model(out)
    assert Session(str(base), base.parent / "ui").default_tune_steps() == OFFICIAL_TUNE_STEPS
    assert Session(None, base.parent / "ui").default_tune_steps() == OFFICIAL_TUNE_STEPS  # the bundled model
    assert not is_video_model(base) and not is_video_model(base / "unet" / "config.json")
    assert not is_video_model("x" * 300)  # a name no file can have: not one (loading it says why)
    assert report.unet_evaluations == 1
    start, tuned_more = again.trainable_parameters(), more.trainable_parameters()
    assert any(not torch.equal(start[k], tuned_more[k]) for k in start)


def _broken_copy(out: Path, tmp_path: Path, edit) -> Path:
    copy = shutil.copytree(out, tmp_path / "broken")
    weights = copy / "unet" / "diffusion_pytorch_model.bin"
    state = torch.load(weights, weights_only=True)
    edit(state)
    torch.save(state, weights)
    return copy


def test_altered_truncated_or_foreign_checkpoints_are_named(tuned, tmp_path):
    out = tuned[5]
    key = "down_blocks.0.attentions.0.transformer_blocks.0.attn_temp.to_q.weight"
    renamed = _broken_copy(out, tmp_path / "a", lambda s: s.update({key.replace("to_q", "to_x"): s.pop(key)}))
    with pytest.raises(ValueError, match=r"attn_temp.to_x.weight' maps to no layer.*attn_temp.to_q.weight' is missing"):
        load_components(str(renamed))  # refused when read, before any work
    missing = _broken_copy(out, tmp_path / "b", lambda s: s.pop("conv_in.weight"))
    with pytest.raises(ValueError, match="conv_in.weight"):
        load_components(str(missing))
    reshaped = _broken_copy(out, tmp_path / "c", lambda s: s.update({key: torch.zeros(3, 3)}))
    with pytest.raises(ValueError, match=r"attn_temp.to_q.weight' has shape \(3, 3\)"):
        load_components(str(reshaped))
    foreign = _broken_copy(out, tmp_path / "d", lambda s: [s.pop(k) for k in list(s) if "_temp." in k])
    with pytest.raises(ValueError, match="no temporal layers"):
        load_components(str(foreign))
    truncated = shutil.copytree(out, tmp_path / "e")
    weights = truncated / "unet" / "diffusion_pytorch_model.bin"
    weights.write_bytes(weights.read_bytes()[:2000])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load_components(str(truncated))


def test_export_refuses_another_model_and_an_empty_entry(tuned, tiny, tmp_path):
    base, _, _, _, entry, _ = tuned
    result = runner.invoke(app, ["export", str(entry), str(tmp_path / "x"), "--format", "tune-a-video"])
    assert (
        result.exit_code == 2 and "pass the --model (and --vae, --lora, --embedding) it was tuned from" in result.output
    )  # bundled model loaded
    assert f"{base.name!r}, as its latest run named it" in result.output  # the name the workspace's history keeps
    result = runner.invoke(app, ["export", str(tmp_path), str(tmp_path / "y"), "--model", str(tmp_path / "none")])
    assert result.exit_code == 2 and "holds no tuned delta" in result.output  # named before any model is loaded
    result = runner.invoke(app, ["export", str(tmp_path / "clip-gone"), str(tmp_path / "y")])
    assert (
        result.exit_code == 2 and "clip-gone does not exist; give a workspace clip folder (clip-<key>/" in result.output
    )
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "tune.safetensors").write_bytes((entry / "tune.safetensors").read_bytes()[:100])
    result = runner.invoke(app, ["export", str(tmp_path / "bad"), str(tmp_path / "y"), "--model", str(base)])
    assert result.exit_code == 2 and "is not a readable safetensors file" in result.output
    save_file({"w": torch.zeros(1)}, str(tmp_path / "bad" / "tune.safetensors"))
    result = runner.invoke(app, ["export", str(tmp_path / "bad"), str(tmp_path / "y"), "--model", str(base)])
    assert result.exit_code == 2 and "has no videop2p metadata" in result.output
    assert not (tmp_path / "y").exists()
    result = runner.invoke(app, ["export", str(entry), str(tmp_path / "z"), "--model", str(base), "--format", "x"])
    assert result.exit_code == 2 and "--format 'x' is not one of diffusers-delta, tune-a-video" in result.output
    assert ExportFormat("video-p2p") is ExportFormat.TUNE_A_VIDEO  # the authors' two repositories, one layout
    result = runner.invoke(app, ["export", str(entry), str(tmp_path / "delta"), "--model", str(base)])
    assert (
        result.exit_code == 0
        and (tmp_path / "delta" / "tune.safetensors").read_bytes() == (entry / "tune.safetensors").read_bytes()
    )
    again = runner.invoke(app, ["export", str(entry), str(tmp_path / "delta"), "--model", str(base)])
    assert again.exit_code == 0  # an earlier export of the same format is replaced
    key, ws = entry.name.removeprefix("clip-"), ["--workspace", str(entry.parent)]  # as `workspace list` shows it
    by_key = runner.invoke(app, ["export", key[:6], str(tmp_path / "by-key"), "--model", str(base), *ws])
    by_name = runner.invoke(app, ["export", entry.name, str(tmp_path / "by-name"), "--model", str(base), *ws])
    assert by_name.exit_code == 0 and (tmp_path / "by-name" / "tune.safetensors").is_file()  # its folder's name
    assert (
        by_key.exit_code == 0
        and (tmp_path / "by-key" / "tune.safetensors").read_bytes() == (entry / "tune.safetensors").read_bytes()
    )
    result = runner.invoke(app, ["export", "zz", str(tmp_path / "by-key2"), "--model", str(base), *ws])
    assert_one_line_error(result, f"'zz' matches no clip of {entry.parent}; its clips: {key}")
    result = runner.invoke(app, ["export", key, str(tmp_path / "by-key2"), "--workspace", str(tmp_path / "no-ws")])
    assert_one_line_error(result, f"{key} is no clip folder here, and no workspace is at", "--workspace WORKSPACE")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    for fmt in ("diffusers-delta", "tune-a-video"):
        result = runner.invoke(app, ["export", str(entry), str(mine), "--model", str(base), "--format", fmt])
        assert result.exit_code == 2 and "already holds other files (notes.txt)" in result.output
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    result = runner.invoke(
        app, ["export", str(entry), str(tmp_path / "delta"), "--model", str(base), "--format", "tune-a-video"]
    )
    assert result.exit_code == 2 and "key.json, tune.safetensors" in result.output  # a delta is not a folder of theirs
    result = runner.invoke(app, ["export", str(entry), str(base), "--model", str(base), "--format", "tune-a-video"])
    assert result.exit_code == 2 and "already holds other files" in result.output  # the base model is not replaced
    theirs = tmp_path / "theirs"  # a tuned folder with the edits their run_videop2p.py wrote into it
    for written in range(2):
        result = runner.invoke(app, ["export", str(entry), str(theirs), "--model", str(base), "--format", "video-p2p"])
        assert result.exit_code == 0, result.output
        if not written:
            (theirs / "results").mkdir()
            (theirs / "results" / "origami.gif").write_bytes(b"GIF89a")
    assert (theirs / "results" / "origami.gif").read_bytes() == b"GIF89a" and (theirs / "unet").is_dir()


def test_a_failed_move_of_a_tuned_folders_other_files_puts_back_those_moved(tmp_path, monkeypatch):
    """Writing a tuned model into a folder that holds more (results, a workspace) moves the rest across by
    renaming; one that cannot be moved (in use, on some systems) leaves every one where it was."""
    import errno
    import os

    from videop2p.models import loading

    results, workspace, dest = tmp_path / "f" / "results", tmp_path / "f" / ".videop2p-workspace", tmp_path / "new"
    for folder in (results, workspace, dest):
        folder.mkdir(parents=True)
    (results / "edit_1.mp4").write_bytes(b"video")
    rename = os.replace

    def busy(src, dst):
        if Path(src).name == workspace.name:
            raise OSError(errno.EBUSY, "in use", str(src))
        rename(src, dst)

    monkeypatch.setattr(loading.os, "replace", busy)
    with pytest.raises(OSError, match="in use"):
        loading._move_across([results, workspace], dest)
    monkeypatch.undo()
    assert (results / "edit_1.mp4").read_bytes() == b"video" and workspace.is_dir() and not any(dest.iterdir())
    loading._move_across([results, workspace], dest)
    assert sorted(p.name for p in dest.iterdir()) == [".videop2p-workspace", "results"]


def test_an_export_onto_a_full_disk_is_one_line_naming_the_file_and_writes_nothing(tuned, tmp_path, monkeypatch):
    import errno

    import videop2p.exporting

    base, _, _, _, entry, _ = tuned

    def full(src, dst, **kwargs):  # as the system reports a copy that fills the disk: source, then target
        raise OSError(errno.ENOSPC, "No space left on device", str(src), None, str(dst))

    monkeypatch.setattr(videop2p.exporting.shutil, "copyfile", full)
    result = runner.invoke(app, ["export", str(entry), str(tmp_path / "delta"), "--model", str(base)])
    assert_one_line_error(
        result, "No space left on device", f"{tmp_path / 'delta' / 'tune.safetensors'}'", "disk is full"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_toy_clip_edited_from_its_exported_folder_equals_the_workspace_edit(tmp_path):
    clip = render_clip(ToyClipSpec([ToyObject(Shape.CIRCLE, Color.RED)], frames=4, size=64, seed=5))
    clip_dir = write_frames(clip.frames, tmp_path / "clip")
    common = [str(clip_dir), "--source", PROMPT, "--target", "a blue circle moving on the grass", "--frames", "4"]
    common += ["--steps", "4", "--inversion", "fast", "--blend", "circle", "circle", "--quiet"]
    ws = tmp_path / "ws"
    first = runner.invoke(
        app, ["run", *common, "--tune-steps", "3", "--out", str(tmp_path / "a"), "--workspace", str(ws)]
    )
    assert first.exit_code == 0, first.output
    entry = next(ws.glob("clip-*"))
    exported = runner.invoke(app, ["export", str(entry), str(tmp_path / "tav"), "--format", "tune-a-video"])
    assert exported.exit_code == 0, exported.output
    args = ["run", *common, "--model", str(tmp_path / "tav"), "--out", str(tmp_path / "b"), "--workspace", str(ws)]
    second = runner.invoke(app, args)
    assert second.exit_code == 0, second.output
    manifest = json.loads((tmp_path / "b" / "outputs.json").read_text())
    assert manifest["stages"]["tune"]["unet_evaluations"] == 0  # the folder's tuning, not a new one
    a, b = (read_video(tmp_path / d / "edit_1.gif").frames for d in ("a", "b"))
    assert np.array_equal(a, b)


def test_a_run_records_the_architecture_a_tuned_folder_runs_with(tuned, tmp_path, caplog):
    """config.yaml, the report and the dry run keep the frame attention and GroupNorm the run used: what a
    tuned folder records (here sparse-causal frames), or for an authors' folder, which records neither, their
    GroupNorm over the clip, not the defaults the run was given."""
    from videop2p.config import GroupNormMode, RunConfig

    *_, video, _, _, out = tuned
    caplog.set_level(logging.INFO, logger="videop2p.pipeline")
    authors = shutil.copytree(out, tmp_path / "authors")
    config = json.loads((authors / "unet" / "config.json").read_text())
    for ours in ("videop2p_frame_attention", "videop2p_group_norm"):
        config.pop(ours)
    (authors / "unet" / "config.json").write_text(json.dumps(config))
    for folder, mode, norm in (
        (out, FrameAttentionMode.SPARSE_CAUSAL, GroupNormMode.FRAME),
        (authors, FrameAttentionMode.FIRST, GroupNormMode.CLIP),
    ):
        vp = VideoP2P(load_components(str(folder)), Workspace(tmp_path / "ws"))
        cfg = RunConfig(
            video=VideoConfig(path=video.video.path, frames=3),
            source=PROMPT,
            targets=["a blue circle moving on the grass"],
            out=str(tmp_path / folder.name),
            quiet=True,
        )
        cfg.inversion.method, cfg.inversion.steps = "fast", 2
        planned = vp.dry_run(cfg)
        assert (planned.settings.frame_attention, planned.settings.group_norm) == (mode, norm)
        caplog.clear()
        manifest = vp.run(cfg)
        # the folder is tuned: its tuning of 0 steps is said to be skipped, before the run and by it
        assert planned.stages[0].action == "skip" and manifest["stages"]["tune"]["action"] == "skipped"
        kept = (tmp_path / folder.name / "config.yaml").read_text()
        assert f"frame_attention: {mode.value}\ngroup_norm: {norm.value}\n" in kept
        report = (tmp_path / folder.name / "report.md").read_text()
        assert f"frame_attention: {mode.value}\ngroup_norm: {norm.value}\n" in report
        # said once, that the folder's own is used: a note, where the run asked for nothing but the defaults
        said = [r for r in caplog.records if "was tuned with" in r.getMessage()]
        warned = [w for w in manifest["warnings"] if not w.startswith("The reconstruction is far")]  # a random model's
        assert [r.levelname for r in said] == ["INFO"] and warned == []
        # the web editor's Frame attention and Group norm fields show them, found without loading the model
        session = Session(str(folder), tmp_path / "ui")
        assert session.default_architecture() == (mode.value, norm.value)
        from videop2p.ui import build_app

        fields = {b.label: getattr(b, "value", None) for b in build_app(session).blocks.values() if hasattr(b, "label")}
        assert (fields["Frame attention"], fields["Group norm"]) == (mode.value, norm.value)
    assert (cfg.frame_attention, cfg.group_norm) == (FrameAttentionMode.FIRST, GroupNormMode.FRAME)  # the caller's
    caplog.clear()  # another asked for than the default, and not the folder's: a warning, in the run's report too
    cfg.group_norm, cfg.out = GroupNormMode.CLIP, str(tmp_path / "asked")
    manifest = VideoP2P(load_components(str(out)), Workspace(tmp_path / "ws")).run(cfg)
    said = [r for r in caplog.records if "was tuned with frame GroupNorm; using it" in r.getMessage()]
    warned = [w for w in manifest["warnings"] if not w.startswith("The reconstruction is far")]  # a random model's
    assert [r.levelname for r in said] == ["WARNING"] and warned == [said[0].getMessage()]
    assert "group_norm: frame\n" in (tmp_path / "asked" / "config.yaml").read_text()
    assert f"- {said[0].getMessage()}" in (tmp_path / "asked" / "report.md").read_text()


def _perturbed_tiny_model(tiny):
    """The fixture's model: the tiny components inflated, temporal layers perturbed (generator seed 1)."""
    from videop2p.config import GroupNormMode
    from videop2p.models.t2s import T2SModel

    model = T2SModel.from_image_unet(tiny.unet, FrameAttentionMode.FIRST, GroupNormMode.CLIP)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.unet.named_parameters():
            if ".temporal." in name:
                p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model


def test_clip_group_norm_reproduces_the_authors_unet3d_on_their_own_output(tiny, tmp_path):
    """The fixture holds the output of the authors' UNet3DConditionModel (their code, run apart) on this
    model's exported folder: our T2S model, from memory and from that folder, gives it to float precision."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from videop2p.config import GroupNormMode
    from videop2p.models.loading import save_video_folder

    fixture = Path(__file__).parent / "fixtures" / "authors_forward_tiny.safetensors"
    io = load_file(str(fixture))
    with safe_open(str(fixture), framework="pt") as f:
        assert "dvlab-research/Video-P2P" in f.metadata()["provenance"]
    model = _perturbed_tiny_model(tiny)
    with torch.no_grad():
        torch.testing.assert_close(model(io["latents"], 500, io["text"]), io["authors_output"], atol=1e-5, rtol=1e-4)
    folder = save_video_folder(
        tiny, model.unet.state_dict(), FrameAttentionMode.FIRST, GroupNormMode.CLIP, tmp_path / "f"
    )
    config = json.loads((folder / "unet" / "config.json").read_text())
    for ours in ("videop2p_frame_attention", "videop2p_group_norm"):  # an authors' folder records neither
        config.pop(ours)
    (folder / "unet" / "config.json").write_text(json.dumps(config))
    loaded = VideoP2P(load_components(str(folder)))
    assert loaded.architecture() == (FrameAttentionMode.FIRST, GroupNormMode.CLIP)  # the authors' statistics
    mode, norm = loaded.architecture()
    from videop2p.models.t2s import T2SModel
    from videop2p.models.tav import apply_temporal

    again = T2SModel.from_image_unet(loaded.components.unet, mode, norm)
    apply_temporal(again.unet, loaded.components.video.temporal)
    with torch.no_grad():
        torch.testing.assert_close(again(io["latents"], 500, io["text"]), io["authors_output"], atol=1e-5, rtol=1e-4)


def test_a_hub_id_of_a_tuned_folder_loads_from_the_cache_offline(tuned, tmp_path, monkeypatch):
    """`--model org/name` of a Tune-A-Video library model: recognised from its cached unet/config.json."""
    import huggingface_hub.constants

    out = tuned[5]
    repo = tmp_path / "hub" / "models--tav-library--a-red-circle"
    shutil.copytree(out, repo / "snapshots" / "0123abcd")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    comps = load_components("tav-library/a-red-circle")
    assert comps.video is not None and len(comps.video.temporal) > 0
    assert comps.info.fingerprint == load_components(str(out)).info.fingerprint  # the same weights
    # the web editor's Tuning steps field shows the default before loading it: none for this one
    assert is_video_model("tav-library/a-red-circle") and not is_video_model("tav-library/not-downloaded")


def test_the_other_parts_are_written_in_the_names_older_readers_know_and_read_back_unchanged(tuned, tiny):
    """The authors' transformers 4.25 reads vocab.json/merges.txt and `text_model.` keys; their diffusers
    0.11 reads the VAE's query/key/value/proj_attn. Checked against their environment when written (the
    closing note); here: the names, and that today's loaders read the same weights back."""
    from safetensors.torch import load_file

    out = tuned[5]
    assert {"vocab.json", "merges.txt"} <= {p.name for p in (out / "tokenizer").iterdir()}
    text_keys = load_file(str(out / "text_encoder" / "model.safetensors"))
    assert all(k.startswith("text_model.") for k in text_keys)
    vae_keys = load_file(str(out / "vae" / "diffusion_pytorch_model.safetensors"))
    mid = [k for k in vae_keys if ".mid_block.attentions." in k and "group_norm" not in k]
    assert mid and all(k.split(".")[-2] in ("query", "key", "value", "proj_attn") for k in mid)
    loaded = load_components(str(out))
    for ours, theirs in ((tiny.vae, loaded.vae), (tiny.text_encoder, loaded.text_encoder)):
        a, b = ours.state_dict(), theirs.state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    text = "a red circle moving on the grass"
    assert loaded.tokenizer(text).input_ids == tiny.tokenizer(text).input_ids


def test_a_presets_fewer_tuning_steps_do_not_tune_a_tuned_folder_again(tuned, tmp_path):
    """`--preset quick`'s 200 steps are fewer than an image model's 500; a tuned folder takes none (README: "not
    tuned again"), by the CLI, a config file, a batch and the API, unless steps are given."""
    import yaml

    from videop2p.batch import load_jobs
    from videop2p.ui import preset_fields

    base, vp, video, _, _, out = tuned
    clip = video.video.path

    def steps(model, *more):
        said = runner.invoke(app, ["run", clip, "--source", PROMPT, "--target", "a blue circle moving on the grass",
                                   "--model", str(model), "--out", str(tmp_path / "o"), "--frames", "3", "--dry-run", *more])  # fmt: skip
        assert said.exit_code == 0, said.output
        return yaml.safe_load("\n".join(line for line in said.stdout.splitlines() if not line.startswith("#")))["tune"][
            "steps"
        ]

    assert steps(out, "--preset", "quick") == 0  # the folder's own: none
    assert steps(base, "--preset", "quick") == 200  # an image model: the preset's
    assert steps(out, "--preset", "quick", "--tune-steps", "3") == 3  # asked: continues from it
    config = tmp_path / "quick.yaml"
    config.write_text("preset: quick\n")
    assert steps(out, "--config", str(config)) == 0
    config.write_text("preset: quick\ntune:\n  steps: 4\n")
    assert steps(out, "--config", str(config)) == 4
    jobs = tmp_path / "jobs.yaml"
    job = {
        "video": {"path": clip, "frames": 3},
        "source": PROMPT,
        "targets": ["a blue circle moving on the grass"],
        "preset": "quick",
    }
    jobs.write_text(yaml.safe_dump({"jobs": [{**job, "model": str(out)}, {**job, "model": str(base)},
                                              {**job, "model": str(out), "tune": {"steps": 5}}]}))  # fmt: skip
    assert [j.config.tune.steps for j in load_jobs(jobs)[0]] == [None, 200, 5]  # None: the model's, none here
    api = VideoP2P(load_components(str(out)), Workspace(tmp_path / "ws"))
    assert api.dry_run(job).settings.tune.steps == 0
    assert vp.dry_run(job).settings.tune.steps == 200  # not tuned yet
    assert preset_fields("quick", pretuned=True)[0]["tune_steps"] is None  # the web editor's field: the model's
    assert preset_fields("quick")[0]["tune_steps"] == 200
