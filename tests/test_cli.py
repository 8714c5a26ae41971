import dataclasses
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from videop2p.cli import app
from videop2p.io.video import read_video
from videop2p.io.writing import write_frames
from videop2p.testing import assert_one_line_error
from videop2p.toy.world import Color, Shape, ToyClipSpec, ToyObject, render_clip

SRC = "a red circle moving on the grass"
TGT = "a blue circle moving on the grass"
runner = CliRunner()


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    from videop2p.models.loading import save_pretrained_folder
    from videop2p.testing import dummy_components

    return save_pretrained_folder(dummy_components(), tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    clip = render_clip(ToyClipSpec([ToyObject(Shape.CIRCLE, Color.RED)], frames=4, size=32, seed=1))
    return write_frames(clip.frames, tmp_path_factory.mktemp("clip") / "frames")


LONG = "n" * 300  # a name longer than a file's may be (255 bytes on the usual file systems)
URL = "https://example.com/clips/rabbit.mp4"  # a link given for a path
WRITE_IN = "a local folder to write in"


def _args(tiny_dir, clip_dir, out, ws, *extra):
    blend = [] if "--blend" in extra else ["--blend", "circle", "circle"]  # given twice: one pair per target
    return [
        "run",
        str(clip_dir),
        "--source",
        SRC,
        "--target",
        TGT,
        "--model",
        str(tiny_dir),
        "--out",
        str(out),
        "--workspace",
        str(ws),
        "--frames",
        "4",
        "--tune-steps",
        "2",
        "--steps",
        "3",
        *blend,
        "--inversion",  # null-text's optimisation is tested in test_inversion; here it would double each run
        "fast",
        "--quiet",
        *extra,
    ]


def _invoke(args):
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result


def _manifest(out):
    return json.loads((out / "outputs.json").read_text())


def test_each_target_takes_its_own_blend_pair_from_the_command_line(tiny_dir, clip_dir, tmp_path):
    out = tmp_path / "out"
    second = "a red circle moving on the snow"
    _invoke(_args(tiny_dir, clip_dir, out, tmp_path / "ws", "--target", second, "--blend", "circle,-", "circle,-"))
    m = _manifest(out)
    assert m["targets"] == [TGT, second] and m["blend"] == [["circle", "circle"], None]
    assert 0.0 <= m["mask_coverage"][0] <= 1.0 and m["mask_coverage"][1] is None
    report = (out / "report.md").read_text()
    assert "the blend mask of 'circle'/'circle' covers" in report and f"`{second}` (swap; no local blending)" in report
    assert m["outputs"]["masks"] == ["mask_1.gif"] and not (out / "mask_2.gif").exists()  # no blending: no mask
    assert "![mask 1](mask_1.gif)" in report and "mask 2" not in report
    assert yaml.safe_load((out / "config.yaml").read_text())["edit"]["blend"] == [["circle", "circle"], None]
    rerun = tmp_path / "rerun"  # the kept config runs again with the same pairs: the edit is reused
    _invoke(["run", "--config", str(out / "config.yaml"), "--out", str(rerun), "--quiet"])
    assert _manifest(rerun)["stages"]["edit"]["action"] == "reused"
    repeated = tmp_path / "repeated"  # --blend once per target, as --target is given: the same pairs
    _invoke(_args(tiny_dir, clip_dir, repeated, tmp_path / "ws", "--target", second, *PAIRS_REPEATED))
    assert _manifest(repeated)["blend"] == [["circle", "circle"], None]
    assert _manifest(repeated)["stages"]["edit"]["action"] == "reused"
    second_only = tmp_path / "second"  # the second target's mask alone, under its own number
    _invoke(
        _args(
            tiny_dir,
            clip_dir,
            second_only,
            tmp_path / "ws",
            "--target",
            second,
            "--blend",
            "-",
            "-",
            "--blend",
            "circle",
            "circle",
        )
    )
    assert _manifest(second_only)["outputs"]["masks"] == ["mask_2.gif"] and not (second_only / "mask_1.gif").exists()
    assert "![mask 2](mask_2.gif)" in (second_only / "report.md").read_text()


PAIRS_REPEATED = ("--blend", "circle", "circle", "--blend", "-", "-")


def test_a_per_target_flag_given_again_is_the_next_targets_value():
    from typer.main import get_command

    from videop2p.cli import UsageError, per_target_flags

    run = get_command(app).commands["run"]
    args = ["c.mp4", "--target", "t1", "--blend", "a", "b", "--force", "--target", "t2", "--blend", "c", "d"]
    assert per_target_flags(run, [*args, "--steps", "3"]) == [
        *("c.mp4", "--target", "t1", "--blend", "a,c", "b,d", "--force", "--target", "t2", "--steps", "3")
    ]
    three = [*args, "--subtract", "x", "y", "--blend", "-", "-", "--subtract", "z", "w"]
    assert per_target_flags(run, three)[3:6] == ["--blend", "a,c,-", "b,d,-"]
    assert per_target_flags(run, three)[-3:] == ["--subtract", "x,z", "y,w"]
    for same in (
        ["c.mp4", "--blend", "a", "b"],  # once: every target's
        ["c.mp4", "--blend", "a", "b", "--", "--blend", "c", "d"],  # past --, not options
        ["c.mp4", "--target", "--blend", "--blend", "a", "b"],  # a prompt that reads --blend is a prompt
        ["c.mp4", "--blend", "a", "b", "--blend", "c"],  # too few words: the parser says so
    ):
        assert per_target_flags(run, same) == same
    with pytest.raises(UsageError, match="each repeated --subtract is one target's two words"):
        per_target_flags(run, ["--subtract", "a,b", "c,d", "--subtract", "e", "f"])
    windows = ["--cross-replace", "0.2", "--self-replace", "0.4", "--cross-replace=0.8", "--threshold", "0.3"]
    assert per_target_flags(run, windows) == [
        "--cross-replace",
        "0.2,0.8",
        "--self-replace",
        "0.4",
        "--threshold",
        "0.3",
    ]
    with pytest.raises(UsageError, match="--threshold 0.3 --threshold 0.4,0.5: each repeated --threshold is one"):
        per_target_flags(run, ["--threshold", "0.3", "--threshold", "0.4,0.5"])


def test_an_edits_warnings_are_kept_in_its_report_and_with_the_edit(tiny_dir, clip_dir, tmp_path):
    first, again = tmp_path / "first", tmp_path / "again"
    _invoke(_args(tiny_dir, clip_dir, first, tmp_path / "ws", "--threshold", "0"))  # every cell in the mask
    warnings = _manifest(first)["warnings"]  # the random model's far reconstruction first (the run's), then the edit's
    assert len(warnings) == 2 and warnings[0].startswith("The reconstruction is far from the clip")
    assert warnings[1].startswith("Local blending kept nothing of the source: the mask of")
    assert f"## Warnings\n\n- {warnings[0]}\n- {warnings[1]}\n" in (first / "report.md").read_text()
    _invoke(_args(tiny_dir, clip_dir, again, tmp_path / "ws", "--threshold", "0"))
    m = _manifest(again)
    assert m["stages"]["edit"]["action"] == "reused" and m["warnings"] == warnings  # kept with the edit


def test_a_dry_run_prints_the_plan_and_the_settings_as_a_config_file_and_writes_nothing(tiny_dir, clip_dir, tmp_path):
    out, ws = tmp_path / "o", tmp_path / "ws"
    args = _args(tiny_dir, clip_dir, out, ws, "--preset", "quick", "--tune-steps", "2")
    result = runner.invoke(app, [*args, "--dry-run"])
    assert result.exit_code == 0, result.output
    assert not out.exists() and not ws.exists()  # nothing computed or written
    plan = [line.split()[1:3] for line in result.stdout.splitlines() if line.startswith("#   ")]
    assert plan == [["tune", "compute"], ["invert", "compute"], ["edit", "compute"]]
    printed = yaml.safe_load(result.stdout)
    assert (printed["tune"]["steps"], printed["tune"]["frames"], printed["workspace"]) == (2, 4, str(ws))
    kept = tmp_path / "printed.yaml"  # the settings printed are a config file, and run as the run would
    kept.write_text(result.stdout)
    _invoke(["run", "--config", str(kept), "--quiet"])
    assert yaml.safe_load((out / "config.yaml").read_text()) == printed
    again = runner.invoke(app, [*args, "--dry-run"])
    assert [line.split()[2] for line in again.stdout.splitlines() if line.startswith("#   ")] == ["reuse"] * 3
    inverted = Path(again.stdout.split("\n#   invert")[1].split()[1])  # its entry, as the plan names it
    inverted.write_bytes(inverted.read_bytes()[:100])  # a damaged entry: the run would invert again
    damaged = runner.invoke(app, [*args, "--dry-run"]).stdout.splitlines()
    row = next(i for i, line in enumerate(damaged) if line.startswith("#   invert"))
    assert damaged[row].split()[2] == "compute" and "(the kept entry does not load:" in damaged[row + 1]
    assert yaml.safe_load("\n".join(damaged)) == printed  # the reason is a comment
    tuned = runner.invoke(app, ["tune", *args[1:], "--tune-steps", "3", "--dry-run"])  # the first stage alone
    assert [line.split()[1:3] for line in tuned.stdout.splitlines() if line.startswith("#   ")] == [["tune", "compute"]]
    assert "# the settings (`--config` takes this file):" in tuned.stdout  # `tune` writes no config.yaml
    assert f"# the settings, as {out / 'config.yaml'} would keep them" in result.stdout
    bad = runner.invoke(app, [*args, "--reweight", "dog=2", "--dry-run"])  # checked as a run checks it
    assert_one_line_error(bad, "--reweight 'dog' is not in the target prompt")


def test_run_writes_every_output_named_in_the_manifest(tiny_dir, clip_dir, tmp_path):
    out = tmp_path / "out ü"  # the resolved config keeps the path as typed, in UTF-8
    _invoke(
        _args(
            tiny_dir,
            clip_dir,
            out,
            tmp_path / "ws",
            "--target",
            "a green circle moving on the grass",
            "--png-frames",
            "--fps",
            "12",
        )
    )
    m = _manifest(out)
    assert m["fps"] == 12 and read_video(out / "edit_1.mp4").fps == 12  # a folder of frames, at the rate given
    assert yaml.safe_load((out / "config.yaml").read_text(encoding="utf-8"))["video"]["fps"] == 12  # rerunnable
    assert m["targets"] == [TGT, "a green circle moving on the grass"]
    assert m["outputs"]["edits"] == ["edit_1.mp4", "edit_2.mp4"]
    for key in ("edits", "edits_gif", "masks", "attention"):
        for name in m["outputs"][key]:
            assert (out / name).is_file(), name
    assert m["outputs"]["edits_png"] == ["edit_1", "edit_2"]  # --png-frames: each edit's frames, lossless
    for k in (1, 2):
        assert read_video(out / f"edit_{k}").frames.shape == read_video(out / f"edit_{k}.mp4").frames.shape
    assert "Lossless frames: `edit_1/`, `edit_2/`" in (out / "report.md").read_text()
    assert yaml.safe_load((out / "config.yaml").read_text(encoding="utf-8"))["png_frames"] is True
    for key in ("source", "reconstruction", "side_by_side", "report", "config"):
        assert (out / m["outputs"][key]).is_file()
    assert read_video(out / "edit_1.mp4").num_frames == 4
    assert set(m["stages"]) >= {"tune", "invert", "edit"} and m["stages"]["edit"]["unet_evaluations"] > 0
    assert "side_by_side.gif" in (out / "report.md").read_text()
    report = (out / "report.md").read_text()  # each attention map under the prompt it belongs to
    assert "![source attention](attention_source.png)" in report and "![target 2 attention](attention_2.png)" in report
    assert len(m["mask_coverage"]) == 2 and all(0.0 <= c <= 1.0 for c in m["mask_coverage"])
    assert m["blend"] == [["circle", "circle"]] * 2  # one pair: every target's
    assert f"the blend mask of 'circle'/'circle' covers {m['mask_coverage'][0]:.0%} of the frames" in report
    assert (
        "out ü" in (out / "config.yaml").read_text(encoding="utf-8") and "\\xFC" not in (out / "report.md").read_text()
    )
    assert yaml.safe_load((out / "config.yaml").read_text(encoding="utf-8"))["out"] == str(out)


def test_second_run_reuses_and_changed_settings_invalidate_exactly_their_stages(tiny_dir, clip_dir, tmp_path):
    ws = tmp_path / "ws"
    _invoke(_args(tiny_dir, clip_dir, tmp_path / "a", ws))
    first = _manifest(tmp_path / "a")["stages"]
    assert first["tune"]["action"] == "computed" and first["invert"]["action"] == "computed"
    _invoke(_args(tiny_dir, clip_dir, tmp_path / "b", ws))
    again = _manifest(tmp_path / "b")["stages"]
    again_model = _manifest(tmp_path / "b")["model"]
    assert again["tune"]["action"] == "reused" and again["invert"]["action"] == "reused"
    a, b = read_video(tmp_path / "a" / "edit_1.gif").frames, read_video(tmp_path / "b" / "edit_1.gif").frames
    assert np.abs(a.astype(int) - b).max() <= 3  # same edit (GIF palette rounding aside)
    _invoke(_args(tiny_dir, clip_dir, tmp_path / "c", ws, "--inversion", "null-text"))
    changed = _manifest(tmp_path / "c")["stages"]
    assert changed["tune"]["action"] == "reused" and changed["invert"]["action"] == "computed"
    _invoke(_args(tiny_dir, clip_dir, tmp_path / "d", ws, "--lr", "1e-4"))
    retuned = _manifest(tmp_path / "d")["stages"]
    assert retuned["tune"]["action"] == "computed" and retuned["invert"]["action"] == "computed"
    _invoke(_args(tiny_dir, clip_dir, tmp_path / "e", ws, "--force"))
    assert _manifest(tmp_path / "e")["stages"]["tune"]["action"] == "computed"
    copy = shutil.copytree(tiny_dir, tmp_path / "elsewhere" / "same-weights")  # same model, other folder
    _invoke(_args(copy, clip_dir, tmp_path / "f", ws))
    moved = _manifest(tmp_path / "f")
    assert moved["model"] != again_model and moved["model"].endswith(again_model.rpartition("@")[2])
    assert moved["stages"]["tune"]["action"] == "reused" and moved["stages"]["invert"]["action"] == "reused"


def test_stage_by_stage_equals_run(tiny_dir, clip_dir, tmp_path):
    from videop2p.store.workspace import Workspace

    base = _args(tiny_dir, clip_dir, tmp_path / "staged", tmp_path / "ws1")
    tuned = _invoke(["tune", *base[1:]]).output.strip().splitlines()[-1]
    (kept,) = Workspace(tmp_path / "ws1").clips()  # each stage says the clip's key, which `export` takes
    assert tuned.startswith("tune: computed in ") and f"ws1, clip {kept.key} (`videop2p export {kept.key} DIR" in tuned
    assert f"clip {kept.key} " in _invoke(["invert", *base[1:]]).output.strip().splitlines()[-1]
    _invoke(["edit", *base[1:]])
    stages = _manifest(tmp_path / "staged")["stages"]
    assert stages["tune"]["action"] == "reused" and stages["invert"]["action"] == "reused"
    _invoke(_args(tiny_dir, clip_dir, tmp_path / "direct", tmp_path / "ws2"))
    staged, direct = (
        read_video(tmp_path / "staged" / "edit_1.gif").frames,
        read_video(tmp_path / "direct" / "edit_1.gif").frames,
    )
    assert np.abs(staged.astype(int) - direct).max() <= 3


def test_official_yaml_pair_is_accepted_and_bad_keys_rejected(tiny_dir, clip_dir, tmp_path):
    tune = {
        "pretrained_model_path": str(tiny_dir),
        "output_dir": str(tmp_path / "theirs"),
        "train_data": {
            "video_path": str(clip_dir),
            "prompt": SRC,
            "n_sample_frames": 4,
            "width": 32,
            "height": 32,
            "sample_start_idx": 0,
            "sample_frame_rate": 1,
        },
        "learning_rate": 3e-5,
        "max_train_steps": 2,
        "trainable_modules": ["attn1.to_q", "attn2.to_q", "attn_temp"],
        "seed": 33,
        "mixed_precision": "fp16",
        "gradient_checkpointing": True,
        "enable_xformers_memory_efficient_attention": True,
    }
    p2p = {
        "pretrained_model_path": str(tmp_path / "theirs"),  # their tuned model: tune's output_dir
        "image_path": str(clip_dir),
        "prompt": SRC,
        "prompts": [SRC, TGT],
        "blend_word": ["circle", "circle"],
        "eq_params": {"words": ["blue"], "values": [2]},
        "save_name": "blue",
        "is_word_swap": True,
        "cross_replace_steps": 0.2,
        "self_replace_steps": 0.5,
    }
    (tmp_path / "tune.yaml").write_text(yaml.safe_dump(tune))
    (tmp_path / "p2p.yaml").write_text(yaml.safe_dump(p2p))
    _invoke(
        [
            "run",
            "--config",
            str(tmp_path / "tune.yaml"),
            "--config",
            str(tmp_path / "p2p.yaml"),
            "--out",
            str(tmp_path / "o"),
            "--steps",
            "3",
            "--quiet",
            "--workspace",
            str(tmp_path / "ws"),
        ]
    )
    m = _manifest(tmp_path / "o")
    assert m["targets"] == [TGT] and m["modes"] == ["swap"] and m["size"] == [32, 32]
    resolved = yaml.safe_load((tmp_path / "o" / "config.yaml").read_text())
    assert resolved["edit"]["reweight"] == {"blue": 2.0} and resolved["tune"]["steps"] == 2
    # Unless --out names another folder, an edit goes where their scripts leave it: results/ in the tuned
    # model's folder (the p2p config's pretrained_model_path, else the tune config's output_dir).
    from videop2p.config import load_config

    assert (tmp_path / "theirs" / "model_index.json").is_file()  # their run_tuning.py's tuned model, as they write it
    assert not (tmp_path / "theirs" / "results").exists()  # the edit went to --out
    assert load_config([tmp_path / "tune.yaml", tmp_path / "p2p.yaml"]).out == str(tmp_path / "theirs" / "results")
    (tmp_path / "p2p_alone.yaml").write_text(yaml.safe_dump({**p2p, "pretrained_model_path": "tuned"}))
    assert load_config([tmp_path / "p2p_alone.yaml"]).out == str(Path("tuned") / "results")
    assert load_config([tmp_path / "tune.yaml"]).out == str(tmp_path / "theirs" / "results")
    from videop2p.config import RunConfig

    # their run_videop2p.py's other arguments: the frames it edits, the precision it casts the model to
    for extra, dtype in (({"video_len": 4}, "float32"), ({"mixed_precision": "fp16"}, "float16")):
        (tmp_path / "args.yaml").write_text(yaml.safe_dump({**p2p, **extra}))
        both = load_config([tmp_path / "tune.yaml", tmp_path / "args.yaml"])
        assert both.video.frames == 4 and both.dtype == dtype
    for extra, message in (
        ({"video_len": 16}, "video_len 16 of the p2p config differs from train_data.n_sample_frames 4"),
        ({"image_path": str(clip_dir / "x")}, "of the p2p config contradicts train_data.video_path"),
        ({"mixed_precision": ["fp16"]}, "mixed_precision ['fp16'] of the p2p config is not one of fp32, fp16, bf16"),
    ):
        (tmp_path / "args.yaml").write_text(yaml.safe_dump({**p2p, **extra}))
        bad = runner.invoke(
            app, ["run", "--config", str(tmp_path / "tune.yaml"), "--config", str(tmp_path / "args.yaml")]
        )
        assert_one_line_error(bad, message)
    (tmp_path / "unset.yaml").write_text(yaml.safe_dump({**tune, "seed": None, "mixed_precision": None}))
    unset = load_config([tmp_path / "unset.yaml"]).tune  # their `main` takes None for both
    assert unset.seed == RunConfig().tune.seed and unset.mixed_precision == "no"
    (tmp_path / "same.yaml").write_text(yaml.safe_dump({**p2p, "image_path": f"{clip_dir}/./"}))
    assert load_config([tmp_path / "tune.yaml", tmp_path / "same.yaml"]).video.path == str(clip_dir)  # one place
    (tmp_path / "alone.yaml").write_text(yaml.safe_dump({**p2p, "video_len": 16}))
    assert load_config([tmp_path / "alone.yaml"]).video.frames == 16
    (tmp_path / "nodir.yaml").write_text(yaml.safe_dump({**tune, "output_dir": None}))
    bad = runner.invoke(app, ["run", "--config", str(tmp_path / "nodir.yaml")])
    assert bad.exit_code == 2 and "output_dir None" in bad.output and len(bad.output.strip().splitlines()) == 1
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({**p2p, "blend_words": ["a", "b"]}))
    bad = runner.invoke(app, ["run", "--config", str(tmp_path / "bad.yaml")])
    assert bad.exit_code == 2 and "blend_words" in bad.output
    (tmp_path / "ours.yaml").write_text(yaml.safe_dump({"source": SRC, "edit": {"treshold": 0.3}}))
    bad = runner.invoke(app, ["run", "--config", str(tmp_path / "ours.yaml")])
    assert bad.exit_code == 2 and "treshold" in bad.output


def test_load_config_takes_one_path_or_a_list_and_names_what_is_neither(tmp_path):
    """`load_config("run.yaml")` read each letter of the path as a file ("Config file 'r' does not
    exist"), and a dict of settings each of its keys; one path is one file, and what is no path is named."""
    from videop2p.config import ConfigError, load_config

    (tmp_path / "run.yaml").write_text(yaml.safe_dump({"source": SRC, "video": {"frames": 4}}))
    for given in (tmp_path / "run.yaml", str(tmp_path / "run.yaml"), [tmp_path / "run.yaml"], (tmp_path / "run.yaml",)):
        loaded = load_config(given)
        assert loaded.source == SRC and loaded.video.frames == 4
    with pytest.raises(ConfigError, match=r"Config file '.*missing.yaml' does not exist"):
        load_config(str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match="a dict of their settings goes to VideoP2P.run"):
        load_config({"source": SRC})
    for bad, kind in ((5, "int"), (None, "NoneType"), ([tmp_path / "run.yaml", 5], "int")):
        with pytest.raises(ConfigError, match=f"A config file is a path to a YAML file, got {kind}"):
            load_config(bad)


def test_config_files_are_read_once_and_their_kind_decided_in_one_place(tmp_path):
    """`read_config_files` reads each file and names what it holds; `load_config` and the messages of a
    lone tune config or a missing tuned folder take those readings (the files are not read again)."""
    from videop2p.config import (
        ConfigError,
        ConfigFile,
        ConfigKind,
        load_config,
        missing_tuned_model,
        read_config_files,
        tune_config_alone,
    )

    tune = {"pretrained_model_path": "base", "output_dir": "theirs", "train_data": {"prompt": SRC}}
    p2p = {"pretrained_model_path": "./theirs", "prompts": [SRC, TGT], "blend_word": ["circle", "circle"]}
    ours = {"source": SRC, "targets": [TGT]}
    paths = []
    for name, data in (("tune", tune), ("p2p", p2p), ("ours", ours), ("path_only", {"image_path": "clip"})):
        paths.append(tmp_path / f"{name}.yaml")
        paths[-1].write_text(yaml.safe_dump(data))
    files = read_config_files(paths)
    assert [f.kind for f in files] == [ConfigKind.TUNE, ConfigKind.P2P, ConfigKind.OURS, ConfigKind.OFFICIAL]
    for p in paths:
        p.unlink()  # read already: nothing below opens them
    assert read_config_files(files) == files
    assert load_config(files[:2]).targets == [TGT] and load_config(files[2:3]).targets == [TGT]
    assert tune_config_alone(files[:1]) == paths[0]
    assert tune_config_alone(files[:2]) is None and tune_config_alone(files[2:3]) is None
    assert missing_tuned_model(files[1:2], "./theirs", tmp_path) == (paths[1], "./theirs")
    assert missing_tuned_model(files[:2], "./theirs", tmp_path) is None  # its tune config makes it
    p2p_hub = ConfigFile(paths[1], {**p2p, "pretrained_model_path": "someone/theirs"}, ConfigKind.P2P)
    assert missing_tuned_model([p2p_hub], "someone/theirs", tmp_path) is None  # a hub id's form: the hub's to say
    (tmp_path / "theirs").mkdir()
    assert missing_tuned_model(files[1:2], "./theirs", tmp_path) is None  # made already
    assert missing_tuned_model(files[1:2], "./another", tmp_path) is None  # not the folder their tuning writes
    for mixed in ([files[0], files[2]], [files[0], files[0]], [files[3]]):
        with pytest.raises(ConfigError, match="at most one official tune config and one official p2p config"):
            load_config(mixed)
    with pytest.raises(ConfigError, match="Pass one videop2p config, got 2"):
        load_config([files[2], files[2]])
    with pytest.raises(ConfigError, match="does not exist"):
        read_config_files([tmp_path / "gone.yaml"])


def test_reading_a_config_over_a_base_leaves_the_base_as_it_was(tmp_path):
    """`load_config`, `fill_run` and `from_official` build on a copy of the `base` they are given."""
    import copy

    from videop2p.config import RunConfig, fill_run, from_official, load_config

    base = RunConfig(source="a rabbit", targets=["a cat"])
    base.tune.steps, base.edit.blend = 7, ("rabbit", "cat")
    before = copy.deepcopy(base)
    (tmp_path / "ours.yaml").write_text(yaml.safe_dump({"source": SRC, "tune": {"steps": 3}, "edit": {"blend": None}}))
    cfg = load_config([tmp_path / "ours.yaml"], base)
    assert (cfg.source, cfg.tune.steps, cfg.edit.blend, cfg.targets) == (SRC, 3, None, ["a cat"])
    cfg = fill_run({"video": "clip.mp4", "edit": {"threshold": 0.6}}, "", base)
    assert (cfg.video.path, cfg.edit.threshold, cfg.tune.steps) == ("clip.mp4", 0.6, 7)
    cfg = from_official({"train_data": {"prompt": SRC, "n_sample_frames": 4}, "max_train_steps": 2}, None, base)
    assert (cfg.source, cfg.video.frames, cfg.tune.steps) == (SRC, 4, 2)
    assert base == before


def _official_pair(tiny_dir, clip_dir, tmp_path, steps: int = 2) -> tuple[Path, Path, Path]:
    """The authors' two configs for a 4-frame toy clip on the tiny model: their tuned model goes to
    `theirs` (tune's output_dir), which the p2p config loads (its pretrained_model_path)."""
    theirs = tmp_path / "theirs"
    tune = {
        "pretrained_model_path": str(tiny_dir),
        "output_dir": str(theirs),
        "train_data": {"video_path": str(clip_dir), "prompt": SRC, "n_sample_frames": 4, "width": 32, "height": 32},
        "max_train_steps": steps,
    }
    p2p = {
        "pretrained_model_path": str(theirs),
        "image_path": str(clip_dir),
        "prompt": SRC,
        "prompts": [SRC, TGT],
        "blend_word": ["circle", "circle"],
        "is_word_swap": True,
        "fast": True,
    }
    (tmp_path / "tune.yaml").write_text(yaml.safe_dump(tune))
    (tmp_path / "p2p.yaml").write_text(yaml.safe_dump(p2p))
    return tmp_path / "tune.yaml", tmp_path / "p2p.yaml", theirs


def test_a_clip_or_model_a_config_file_names_wrongly_is_named_by_its_file_and_key(tiny_dir, clip_dir, tmp_path):
    """A clip path that is not there, more frames than the clip holds, a start past its end or a model folder
    that is not there, given by a config file (ours or the authors'), was said as the command line says it,
    "Video path 'x' does not exist." or "(--frames 4; --frames 0: every frame)", naming neither the file nor
    its key; the authors' `video_path: 5` was "--video 5", and a file's `out`, `workspace` or `model_config`
    "--out", "--workspace" or "--model-config", flags there were none of. Given on the command line, each is
    said as before (and the clip's path says what it may be)."""
    tune, p2p, _ = _official_pair(tiny_dir, clip_dir, tmp_path)
    theirs = yaml.safe_load(tune.read_text())
    gone = tmp_path / "gone"
    for key, value, said in (
        ("video_path", str(gone), f"train_data.video_path '{gone}' does not exist; give a video file, an animated"),
        ("video_path", 5, "train_data.video_path 5 is not valid; expected text."),
        ("n_sample_frames", 9, f"train_data.n_sample_frames 9 asks for more frames than {clip_dir} holds: it has 4 "),
    ):
        bad = tmp_path / f"bad-{key}.yaml"
        bad.write_text(yaml.safe_dump({**theirs, "train_data": {**theirs["train_data"], key: value}}))
        assert_one_line_error(runner.invoke(app, ["tune", "--config", str(bad), "--quiet"]), f"{bad}: {said}")
    bad = tmp_path / "bad-model.yaml"
    bad.write_text(yaml.safe_dump({**theirs, "pretrained_model_path": str(gone)}))
    said = f"{bad}: pretrained_model_path '{gone}' does not exist; give a diffusers folder"
    assert_one_line_error(runner.invoke(app, ["tune", "--config", str(bad), "--quiet"]), said)
    bad = tmp_path / "bad-image.yaml"
    bad.write_text(yaml.safe_dump({**yaml.safe_load(p2p.read_text()), "image_path": str(gone)}))
    said = f"{bad}: image_path '{gone}' does not exist; give a video file"
    r = runner.invoke(app, ["edit", "--config", str(bad), "--model", str(tiny_dir), "--quiet"])  # not tuned yet
    assert_one_line_error(r, said)

    ours = tmp_path / "run.yaml"
    base = {"source": SRC, "targets": [TGT], "model": str(tiny_dir), "out": str(tmp_path / "o")}
    for video, said in (
        ({"path": str(clip_dir), "frames": 6}, "video.frames 6 asks for more frames than"),
        ({"path": str(clip_dir), "start": 7}, f"video.start 7 is past the last frame of {clip_dir}, frame 3"),
        ({"path": str(clip_dir / "1.png"), "frames": 1, "fps": 10}, "video.fps 10 is given to a folder of frames only"),
        (str(gone), f"video.path '{gone}' does not exist; give a video file"),
    ):
        ours.write_text(yaml.safe_dump({**base, "video": video}))
        assert_one_line_error(runner.invoke(app, ["run", "--config", str(ours), "--dry-run"]), f"{ours}: {said}")
    ours.write_text(yaml.safe_dump({**base, "video": {"path": str(clip_dir), "frames": 4}, "model": str(gone)}))
    said = f"{ours}: model '{gone}' does not exist; give a diffusers folder"
    assert_one_line_error(runner.invoke(app, ["run", "--config", str(ours), "--dry-run"]), said)
    clip = {"path": str(clip_dir), "frames": 4}
    for key, value, said in (  # folders to write and an architecture, which were said as flags there were none of
        ("out", str(ours), f"out '{ours}' is a file, not a folder; give a folder for the outputs."),
        ("workspace", str(ours), f"workspace '{ours}' is a file, not a folder; give a folder to keep tuned clips in."),
        ("model_config", str(tiny_dir), f"model_config '{tiny_dir}' describes an original single-file checkpoint"),
    ):
        ours.write_text(yaml.safe_dump({**base, "video": clip, key: value}))
        assert_one_line_error(runner.invoke(app, ["run", "--config", str(ours), "--dry-run"]), f"{ours}: {said}")
    r = runner.invoke(app, ["run", "--config", str(ours), "--model-config", str(clip_dir), "--dry-run"])
    assert_one_line_error(r, f"error: --model-config '{clip_dir}' describes", "(--model FILE.safetensors or .ckpt)")
    missing = str(tmp_path / "gone.safetensors")
    for key, value, said in (  # a VAE, LoRA or embedding file not there, which were said by their kind alone
        ("vae", missing, f"vae '{missing}' does not exist; give a .safetensors or .ckpt"),
        ("lora", {missing: 0.5}, f"lora '{missing}' does not exist; give a .safetensors or .bin or .pt or .ckpt"),
        ("embeddings", {missing: "<x>"}, f"embeddings '{missing}' does not exist; give a .safetensors or .pt"),
    ):
        ours.write_text(yaml.safe_dump({**base, "video": clip, key: value}))
        assert_one_line_error(runner.invoke(app, ["run", "--config", str(ours), "--dry-run"]), f"{ours}: {said}")
    ours.write_text(yaml.safe_dump({**base, "video": clip}))
    for flag, kind in (("--vae", "VAE"), ("--lora", "LoRA"), ("--embedding", "embedding")):  # a flag's, as before
        r = runner.invoke(app, ["run", "--config", str(ours), flag, missing, "--dry-run"])
        assert_one_line_error(r, f"error: {kind} file '{missing}' does not exist; give")
    # given on the command line, over the file's: said as the command line says it
    ours.write_text(yaml.safe_dump({**base, "video": {"path": str(clip_dir), "frames": 6}}))
    r = runner.invoke(app, ["run", str(gone), "--config", str(ours), "--dry-run"])
    assert_one_line_error(r, f"error: Video path '{gone}' does not exist; give a video file")
    r = runner.invoke(app, ["run", "--config", str(ours), "--frames", "6", "--dry-run"])
    assert_one_line_error(r, "(--frames 4; --frames 0: every frame)")
    r = runner.invoke(app, ["run", "--config", str(ours), "--frames", "4", "--model", str(gone), "--dry-run"])
    assert_one_line_error(r, f"error: Model folder '{gone}' does not exist", "(--model).")
    ours.write_text(yaml.safe_dump({**base, "video": {"path": str(clip_dir), "frames": 4}, "source": "red " * 80}))
    r = runner.invoke(app, ["run", "--config", str(ours), "--source", " ".join(["red"] * 81), "--dry-run"])
    assert_one_line_error(r, "error: --source 'red red", "(6 too many)")  # the flag's prompt, not the file's


def test_a_word_its_prompt_lacks_is_named_by_the_flag_or_file_key_that_gave_it(tiny_dir, clip_dir, tmp_path):
    """`--blend cat circle` said "blend word: Word 'cat' is not in prompt ...", naming no flag, and the
    authors' `eq_params` or `is_word_swap` by neither their file nor their key."""
    args = _args(tiny_dir, clip_dir, tmp_path / "o", tmp_path / "ws")
    for extra, said in (
        (["--blend", "cat", "circle"], "--blend 'cat' is not in the source prompt 'a red circle moving on the grass'"),
        (["--blend", "circle", "cat"], "--blend 'cat' is not in the target prompt 'a blue circle moving on the grass'"),
        (["--reweight", "cat=2"], "--reweight 'cat' is not in the target prompt"),
        (["--cross-replace-word", "cat=0.4"], "--cross-replace-word 'cat' is not in the target prompt"),
        (["--mode", "swap", "--target", "a big blue circle moving on the grass"], "--mode swap needs prompts with"),
        (["--target", " ".join(["red"] * 80)], "--target 'red red red"),  # and over the limit: which target
    ):
        extra_args = _args(tiny_dir, clip_dir, tmp_path / "o", tmp_path / "ws", *extra, "--dry-run")
        assert_one_line_error(runner.invoke(app, extra_args), said, "words" if "red red" not in said else "(target 2)")
    ours = tmp_path / "run.yaml"
    ours.write_text(yaml.safe_dump({"edit": {"cross_replace_words": {"blu": 0.5}}}))
    said = f"{ours}: edit.cross_replace_words 'blu' is not in the target prompt"
    assert_one_line_error(runner.invoke(app, [*args, "--config", str(ours), "--dry-run"]), said)
    _, p2p, _ = _official_pair(tiny_dir, clip_dir, tmp_path)
    theirs = yaml.safe_load(p2p.read_text())
    flags = ["--model", str(tiny_dir), "--size", "32x32", "--frames", "4", "--dry-run"]
    for key, value, said in (
        ("eq_params", {"words": ["blu"], "values": [2]}, "eq_params 'blu' is not in the target prompt"),
        ("prompts", [SRC, "a big blue circle moving on the grass"], "is_word_swap swap needs prompts with the same"),
    ):
        p2p.write_text(yaml.safe_dump({**theirs, key: value}))
        assert_one_line_error(runner.invoke(app, ["edit", "--config", str(p2p), *flags]), f"{p2p}: {said}")
    assert not (tmp_path / "o").exists() and not (tmp_path / "ws").exists()


def test_the_authors_two_steps_tune_then_edit_with_their_configs(tiny_dir, clip_dir, tmp_path):
    """`videop2p tune --config X-tune.yaml` then `videop2p edit --config X-p2p.yaml`, as their
    run_tuning.py then run_videop2p.py: the tuned model is a folder in output_dir that the p2p config
    loads untuned, and the edit lands in its results/, as `run` with both configs makes it."""
    from videop2p.models.tav import DELTA_KEY, is_authors_folder

    tune, p2p, theirs = _official_pair(tiny_dir, clip_dir, tmp_path)
    r = runner.invoke(app, ["edit", "--config", str(p2p), "--quiet"])  # the second step first: how to make it
    assert_one_line_error(r, f"pretrained_model_path {str(theirs)!r}", "videop2p tune --config TUNE.yaml")
    for command in ("run", "edit"):  # the first step given to a command that edits: which config is missing
        r = runner.invoke(app, [command, "--config", str(tune), "--quiet"])
        assert_one_line_error(r, f"{tune} is a Tune-A-Video / Video-P2P tune config", "--config P2P.yaml")
    r = runner.invoke(app, ["run", "--config", str(tune), "--target", TGT, "--frames", "9", "--quiet"])
    assert_one_line_error(r, "fewer than the 9 asked for")  # with a target it is a run like any other
    assert not theirs.exists() and not (tmp_path / "results").exists()
    _invoke(["tune", "--config", str(tune), "--quiet"])
    assert is_authors_folder(theirs) and (theirs / "model_index.json").is_file()
    recorded = json.loads((theirs / "unet" / "config.json").read_text())[DELTA_KEY]
    info = _invoke(["info", "--model", str(theirs)]).output
    assert (
        "tuned: a Tune-A-Video / Video-P2P folder (frame attention first, GroupNorm frame): a run edits with it as it is"
        in info
    )
    assert "tuned:" not in _invoke(["info", "--model", str(tiny_dir)]).output
    _invoke(["edit", "--config", str(p2p), "--size", "32x32", "--frames", "4", "--steps", "3", "--quiet"])
    m = _manifest(theirs / "results")
    assert m["targets"] == [TGT] and m["stages"]["tune"]["unet_evaluations"] == 0  # loaded tuned, not tuned again
    # `run` with the same tuning finds it in the folder and writes nothing; results/ and the workspace stay
    before = (theirs / "unet" / "config.json").stat().st_mtime_ns
    both = tmp_path / "both"
    _invoke(["run", "--config", str(tune), "--config", str(p2p), "--steps", "3", "--out", str(both), "--quiet"])
    from_folder, in_one_go = (read_video(d / "edit_1.gif").frames for d in (theirs / "results", both))
    assert yaml.safe_load((both / "config.yaml").read_text())["save_tuned"] == str(theirs)  # a rerun writes it there
    from videop2p.config import RunConfig
    from videop2p.outputs import rerunnable

    assert rerunnable(RunConfig(save_tuned="tuned/x"))["save_tuned"] == str(Path("tuned/x").resolve())
    assert np.abs(from_folder.astype(int) - in_one_go).max() <= 3
    assert json.loads((theirs / "unet" / "config.json").read_text())[DELTA_KEY] == recorded
    assert (theirs / "unet" / "config.json").stat().st_mtime_ns == before
    # other tuning settings replace the model's parts and keep the rest of the folder
    tune_3, *_ = _official_pair(tiny_dir, clip_dir, tmp_path, steps=3)
    _invoke(["tune", "--config", str(tune_3), "--quiet"])
    assert json.loads((theirs / "unet" / "config.json").read_text())[DELTA_KEY] != recorded
    assert (theirs / "results" / "outputs.json").is_file() and (theirs / ".videop2p-workspace").is_dir()
    # a base model's folder is never written over: one line, before any work
    r = runner.invoke(app, ["tune", "--config", str(tune), "--save-tuned", str(tiny_dir), "--quiet"])
    assert_one_line_error(r, "not a tuned Tune-A-Video / Video-P2P folder")
    assert not is_authors_folder(tiny_dir)


def test_bad_inputs_fail_before_any_work(tiny_dir, clip_dir, tmp_path):
    ws = tmp_path / "ws"
    args = _args(tiny_dir, clip_dir, tmp_path / "o", ws)
    args[args.index("--blend") + 1] = "dog"
    r = runner.invoke(app, args)
    assert r.exit_code == 2 and "--blend 'dog' is not in the source prompt" in r.output
    assert not list(ws.rglob("*.safetensors"))
    r = runner.invoke(app, _args(tiny_dir, clip_dir, tmp_path / "o", ws, "--frames", "40"))
    assert r.exit_code == 2 and "fewer than the 40 asked for. Ask for at most 4 frames (--frames 4;" in r.output
    default = _args(tiny_dir, clip_dir, tmp_path / "o", ws)
    del default[default.index("--frames") : default.index("--frames") + 2]  # the official 8 of a 4-frame clip
    assert_one_line_error(
        runner.invoke(app, default),
        "fewer than the 8 asked for (the default, the authors' n_sample_frames)",
        "(--frames 4; --frames 0: every frame)",
    )
    # the clip is checked before the model is loaded: a model path that is not there is not reached
    for stage in ("run", "tune", "invert", "edit"):
        args = _args(tmp_path / "no-model", clip_dir, tmp_path / "o", ws, "--frames", "40")
        r = runner.invoke(app, [stage, *args[1:]])
        assert r.exit_code == 2 and "fewer than the 40 asked" in r.output, stage
        args[args.index(str(clip_dir))] = str(tmp_path / "no-clip")
        r = runner.invoke(app, [stage, *args[1:]])
        assert_one_line_error(r, f"Video path '{tmp_path / 'no-clip'}' does not exist; give a video file")
    r = runner.invoke(app, _args(tiny_dir, clip_dir, tmp_path / "o", ws, "--size", "31x32"))  # the VAE halves
    odd = "31 is not allowed by the model: sides must be positive multiples of 2; nearest valid widths are 30 and 32."
    assert_one_line_error(r, f"--size width {odd}")  # named by what gave it, once the model is loaded
    (tmp_path / "odd.yaml").write_text("video: {width: 31}\n")
    for stage in ("run", "tune"):  # `tune` takes no targets, whose check names it in `run`: the clip's reading does
        args = [stage, *_args(tiny_dir, clip_dir, tmp_path / "o", ws, "--config", str(tmp_path / "odd.yaml"))[1:]]
        assert_one_line_error(runner.invoke(app, args), f"odd.yaml: video.width {odd}")
    r = runner.invoke(
        app, [*_args(tiny_dir, clip_dir, tmp_path / "o", ws), "--config", str(tmp_path / "odd.yaml"), "--size", "32x33"]
    )
    assert_one_line_error(r, "--size height 33 is not allowed")  # the flag over the file
    assert not list(ws.rglob("*.safetensors")) and not (tmp_path / "o").exists()
    r = runner.invoke(app, _args(tiny_dir, clip_dir, tmp_path / "o", ws, "--size", "1x32"))
    assert r.exit_code == 2 and "the smallest valid width is 2" in r.output
    r = runner.invoke(app, _args(tiny_dir, clip_dir, tmp_path / "o", ws, "--size", "0x32"))
    assert r.exit_code == 2 and "--size '0x32' is not valid" in r.output
    r = runner.invoke(app, _args(tiny_dir, clip_dir, tmp_path / "o", ws, "--frames", "2", "--start", "99"))
    assert r.exit_code == 2 and "start=99 is past its last frame" in r.output
    r = runner.invoke(app, _args(tiny_dir, clip_dir, tmp_path / "o", ws, "--inversion", "magic"))
    assert r.exit_code == 2 and "--inversion 'magic' is not one of null-text, fast" in r.output
    r = runner.invoke(app, _args(tiny_dir, clip_dir, tmp_path / "o", ws, "--reweight", "blue"))
    assert r.exit_code == 2 and "--reweight 'blue' must be WORD=FACTOR" in r.output
    assert not list(ws.rglob("*.safetensors"))


def test_a_run_whose_decoded_clips_cannot_fit_in_memory_is_refused_before_tuning(
    tiny_dir, clip_dir, tmp_path, monkeypatch
):
    import videop2p.pipeline as pipeline

    assert runner.invoke(app, _args(tiny_dir, clip_dir, tmp_path / "fits", tmp_path / "ws1")).exit_code == 0
    manifest = json.loads((tmp_path / "fits" / "outputs.json").read_text())
    (width, height), frames = manifest["size"], manifest["frames"]
    need = (1 + 1) * frames * width * height * 3  # the reconstruction and one edit, 8-bit, beside the clip
    monkeypatch.setattr(pipeline, "free_memory", lambda: need - 1)
    ws, out = tmp_path / "ws2", tmp_path / "o"
    r = runner.invoke(app, _args(tiny_dir, clip_dir, out, ws))
    shown = f"{frames} frames of {width}x{height} need"
    assert_one_line_error(r, shown, "and 1 edit, held with the clip", f"take at most {frames - 1} frames (--frames)")
    assert not list(ws.rglob("*.safetensors")) and not out.exists()  # no tuning, nothing written
    from videop2p.config import EditConfig, InversionConfig, TuneConfig, VideoConfig

    vp = pipeline.VideoP2P.from_pretrained(str(tiny_dir), workspace=tmp_path / "ws1")  # the API's own stages
    clip = vp.load_clip(VideoConfig(path=str(clip_dir), frames=frames))
    model, _ = vp.tune(clip, SRC, TuneConfig(steps=2, progress=False))
    inversion, _ = vp.invert(model, clip, SRC, InversionConfig(steps=3, progress=False))
    with pytest.raises(ValueError, match=shown):
        vp.edit(model, inversion, SRC, [TGT], EditConfig(progress=False))
    monkeypatch.setattr(pipeline, "free_memory", lambda: need)  # exactly enough: the run goes on
    assert runner.invoke(app, _args(tiny_dir, clip_dir, out, ws)).exit_code == 0


def test_a_clip_too_long_for_memory_is_refused_before_it_is_decoded(tiny_dir, clip_dir, tmp_path, monkeypatch):
    import videop2p.pipeline as pipeline
    from videop2p.config import VideoConfig

    vp = pipeline.VideoP2P.from_pretrained(str(tiny_dir))
    clip = vp.load_clip(VideoConfig(path=str(clip_dir), frames=None))  # every frame: what it would hold
    frames, (width, height) = len(clip.frames), clip.size
    decoded = []

    def read_video(*args, **kwargs):
        decoded.append(args)
        raise ValueError("decoding started")

    monkeypatch.setattr(pipeline, "read_video", read_video)
    monkeypatch.setattr(pipeline, "free_memory", lambda: frames * width * height * 3 - 1)
    with pytest.raises(ValueError, match=rf"^{frames} frames of {width}x{height} need .* for the clip, and"):
        vp.load_clip(VideoConfig(path=str(clip_dir), frames=None))
    ws, out = tmp_path / "ws", tmp_path / "o"
    for stage in ("run", "tune"):
        r = runner.invoke(app, [stage, *_args(tiny_dir, clip_dir, out, ws, "--frames", "0")[1:]])
        assert_one_line_error(r, "for the clip, and", f"take at most {frames - 1} frames (--frames)")
    assert not decoded and not out.exists() and not list(ws.rglob("*.safetensors"))
    r = runner.invoke(app, _args(tiny_dir, clip_dir, out, ws, "--frames", "0", "--stride", "2"))
    assert_one_line_error(r, "decoding started")  # every other frame: half the clip, which fits, is read
    assert len(decoded) == 1
    webm = tmp_path / "clip.webm"  # a container that keeps no frame count: its packets are counted
    with av.open(str(webm), "w") as container:
        stream = container.add_stream("libvpx-vp9", rate=8)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for frame in clip.frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    with pytest.raises(ValueError, match=rf"^{frames} frames of {width}x{height} need .* for the clip, and"):
        vp.load_clip(VideoConfig(path=str(webm), frames=None))
    assert len(decoded) == 1


def test_the_memory_floor_of_the_decoded_clips_counts_every_target():
    from videop2p.pipeline import check_memory_for_clips

    frame = 512 * 512 * 3
    check_memory_for_clips(1000, (512, 512), 2, free=3 * 1000 * frame)
    with pytest.raises(
        ValueError, match=r"1000 frames of 512x512 need 2\.2 GiB more .* and 2 edits, .* at most 999 frames"
    ):
        check_memory_for_clips(1000, (512, 512), 2, free=3 * 1000 * frame - 1)
    check_memory_for_clips(1000, (512, 512), 2, free=4 * 1000 * frame, read=False)  # the clip counts too
    with pytest.raises(ValueError, match=r"for the clip, the reconstruction and 2 edits, .* at most 999 frames"):
        check_memory_for_clips(1000, (512, 512), 2, free=4 * 1000 * frame - 1, read=False)
    with pytest.raises(ValueError, match=r"for the clip, and .* at most 499 frames \(--frames\), a smaller --size\.$"):
        check_memory_for_clips(1000, (512, 512), 0, free=500 * frame - 1, read=False)  # tuning it alone
    with pytest.raises(ValueError, match=r"is free; not one frame fits at this size; give a smaller --size\.$"):
        check_memory_for_clips(8, (100000, 100000), 0, free=2 * 100000**2, read=False)  # "at most 0": every frame


def test_flat_options_set_their_settings_and_bad_ones_are_named():
    from videop2p.config import ConfigError, OptionError, RunConfig, apply_options

    cfg = apply_options(
        RunConfig(),
        {"frames": 5, "tune_steps": 3, "inversion": "fast", "guidance": 5.0, "reweight": ["blue=2"], "width": None},
    )
    assert (cfg.video.frames, cfg.tune.steps, cfg.inversion.method.value) == (5, 3, "fast")
    assert cfg.edit.guidance == cfg.inversion.guidance == 5.0 and cfg.edit.reweight == {"blue": 2.0}
    assert cfg.video.width is None  # None leaves a setting as it is
    with pytest.raises(OptionError, match="mode: 'magic' is not one of auto, swap, refine") as e:
        apply_options(RunConfig(), {"mode": "magic"})
    assert e.value.option == "mode"
    assert apply_options(RunConfig(), {"mask_norm": "range"}).edit.mask_norm.value == "range"
    assert apply_options(RunConfig(), {"frame_attention_control": True}).edit.control_frame_attention is True
    with pytest.raises(OptionError, match="mask_norm: 'median' is not one of max, range"):
        apply_options(RunConfig(), {"mask_norm": "median"})
    with pytest.raises(ConfigError, match="Unknown option 'colour'; valid options are: .*guidance"):
        apply_options(RunConfig(), {"colour": "red"})


def test_a_bad_word_pair_is_the_settings_error_whoever_gives_it():
    """A blend of one word is named by its setting, once: the flat options (the editor's fields) said "blend
    blend needs two words" and an API caller's dict got a ConfigError of no setting, where every other bad
    value is an OptionError with the setting and its reason apart."""
    from videop2p.config import OptionError, RunConfig, apply_options, fill

    with pytest.raises(OptionError) as flat:
        apply_options(RunConfig(), {"blend": ["circle"]})
    with pytest.raises(OptionError) as given:
        fill(RunConfig, {"edit": {"blend": ["circle"]}})
    assert (flat.value.option, given.value.option) == ("blend", "edit.blend")
    for e in (flat.value, given.value):
        assert e.reason.startswith("needs two words [source_word, target_word]"), e.reason
        assert str(e) == f"edit.blend: {e.reason}"


def test_a_blend_threshold_per_target_from_flags_and_files_and_bad_ones_named(tmp_path):
    from videop2p.config import OptionError, RunConfig, apply_options, load_config, validate

    assert apply_options(RunConfig(), {"threshold": "0.3,0.9"}).edit.threshold == [0.3, 0.9]
    assert apply_options(RunConfig(), {"threshold": "0.4"}).edit.threshold == 0.4  # one for every target
    assert apply_options(RunConfig(), {"threshold": 0.5}).edit.threshold == 0.5  # the editor's number
    with pytest.raises(OptionError, match=r"threshold: '0.3,x' is not valid; expected a number from 0 to 1, or one"):
        apply_options(RunConfig(), {"threshold": "0.3,x"})
    run = tmp_path / "run.yaml"
    run.write_text(
        "source: a red circle\ntargets: [a blue circle, a red square]\nvideo: clip.mp4\nedit: {threshold: [0.3, 0.9]}\n"
    )
    cfg = load_config([run])
    assert cfg.edit.threshold == [0.3, 0.9]
    validate(cfg)
    cfg.targets = ["a blue circle"]
    with pytest.raises(OptionError, match="threshold: gives 2 thresholds for 1 target prompt; give one for every"):
        validate(cfg)
    cfg.targets, cfg.edit.threshold = ["a blue circle", "a red square"], [0.3, 1.5]
    with pytest.raises(OptionError, match="threshold: 1.5 is not valid; expected a finite number from 0 to 1"):
        validate(cfg)
    cfg.edit.threshold = []
    with pytest.raises(OptionError, match=r"threshold: \[\] is not valid"):
        validate(cfg)


def test_windows_per_target_from_flags_and_files_and_bad_ones_named(tmp_path):
    from videop2p.config import ConfigError, OptionError, RunConfig, apply_options, load_config, validate
    from videop2p.outputs import rerunnable

    for name in ("cross_replace", "self_replace"):
        assert apply_options(RunConfig(), {name: "0.3,0.9"}).edit.__dict__[name] == [(0.0, 0.3), (0.0, 0.9)]
        assert apply_options(RunConfig(), {name: "0.4"}).edit.__dict__[name] == 0.4  # one for every target
        assert apply_options(RunConfig(), {name: 0.5}).edit.__dict__[name] == 0.5  # the editor's slider
        with pytest.raises(
            ConfigError, match=rf"{name}: '0.3,x' is not valid; expected a fraction from 0 to 1, or one"
        ):
            apply_options(RunConfig(), {name: "0.3,x"})
    run = tmp_path / "run.yaml"
    run.write_text(
        "source: a red circle\ntargets: [a blue circle, a red square]\nvideo: clip.mp4\n"
        "edit: {cross_replace: [0.2, 0.8], self_replace: [[0, 0.3], 0.6]}\n"
    )
    cfg = load_config([run])  # two numbers are one (start, end) window, as the authors' code reads them
    assert cfg.edit.cross_replace == (0.2, 0.8) and cfg.edit.self_replace == [(0, 0.3), 0.6]
    validate(cfg)
    again = tmp_path / "again.yaml"  # a run's config.yaml, read again, is the same run
    again.write_text(yaml.safe_dump(rerunnable(apply_options(load_config([run]), {"cross_replace": "0.1,0.7"}))))
    assert load_config([again]).edit.cross_replace == [(0.0, 0.1), (0.0, 0.7)]
    assert load_config([again]).edit.self_replace == [(0, 0.3), 0.6]
    cfg.targets = ["a blue circle"]
    with pytest.raises(OptionError, match="self_replace: gives 2 windows for 1 target prompt; give one for every"):
        validate(cfg)
    cfg.targets, cfg.edit.self_replace = ["a blue circle", "a red square"], [(0.0, 0.3), 1.5]
    with pytest.raises(OptionError, match="self_replace: 1.5 is not valid; expected a finite number from 0 to 1"):
        validate(cfg)
    cfg.edit.self_replace = [(0.6, 0.3), 0.5]
    with pytest.raises(OptionError, match=r"self_replace: \(0.6, 0.3\) is not valid; start must not exceed end"):
        validate(cfg)
    run.write_text(
        "source: a red circle\ntargets: [a, b, c]\nvideo: clip.mp4\nedit: {cross_replace: [0.2, 0.5, 0.8]}\n"
    )
    with pytest.raises(
        OptionError,
        match=r"cross_replace: \[0.2, 0.5, 0.8\] is not valid; expected a fraction or \[start, end\], or one per target, comma-separated",
    ):
        validate(load_config([run]))


def test_a_run_killed_mid_write_leaves_the_workspace_valid(tiny_dir, clip_dir, tmp_path):
    ws = tmp_path / "ws"
    args = _args(tiny_dir, clip_dir, tmp_path / "o", ws)
    args[args.index("--tune-steps") + 1] = "100000"
    proc = subprocess.Popen(
        [sys.executable, "-m", "videop2p.cli", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 60
    while time.time() < deadline and not list(ws.rglob("key.json")):
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not list(ws.rglob("tune.safetensors"))  # nothing half-written under a valid name
    # a torn file under the final name (e.g. from a foreign copy) is ignored and recomputed, not loaded
    clip_dirs = [p.parent for p in ws.rglob("key.json")]
    (clip_dirs[0] / "tune.safetensors").write_bytes(b"\x00\x01 torn")
    _invoke(_args(tiny_dir, clip_dir, tmp_path / "o", ws))
    assert _manifest(tmp_path / "o")["stages"]["tune"]["action"] == "computed"


@pytest.mark.parametrize(
    ("stop", "code", "said"), [(signal.SIGINT, 130, "interrupted: "), (signal.SIGTERM, 143, "stopped (SIGTERM): ")]
)
def test_ctrl_c_says_how_to_resume_and_keeps_the_tuning_state(tiny_dir, clip_dir, tmp_path, stop, code, said):
    """Ctrl-C, and SIGTERM (`timeout`, `kill`, a scheduler or container stopping the command), which ended the
    process at once with no word, its stage's lock and temporary files left behind."""
    ws = tmp_path / "ws"
    (tmp_path / "c.yaml").write_text("tune: {save_seconds: 0}\n")
    args = [*_args(tiny_dir, clip_dir, tmp_path / "o", ws), "--config", str(tmp_path / "c.yaml")]
    args[args.index("--tune-steps") + 1] = "100000"
    proc = (
        subprocess.Popen(  # SIGINT at its default, whatever the test runner's is (a shell's background job ignores it)
            [sys.executable, "-m", "videop2p.cli", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    )
    deadline = time.time() + 60
    while time.time() < deadline and not list(ws.rglob("tune.steps/tune-*.safetensors")):
        time.sleep(0.1)
    proc.send_signal(stop)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith(f"{said}no result"), err
    assert "resumes it" in err and str(ws) in err
    assert list(ws.rglob("tune.steps/tune-*.safetensors")) and not list(ws.rglob("tune.safetensors"))
    # the state before the last is removed once the last is written: a Ctrl-C between the two keeps both
    at = max(int(kept.stem.removeprefix("tune-")) for kept in ws.rglob("tune.steps/tune-*.safetensors"))
    assert f"{at}/100000" in _invoke(["workspace", "list", str(ws)]).output  # how far the stopped tuning got


def test_sigterm_stops_a_batch_as_ctrl_c_does_not_as_one_jobs_failure(tiny_dir, clip_dir, tmp_path):
    """SIGTERM stops the whole batch (exit 143, the stopped job neither failed nor done), where an exception
    would be taken for its job's failure and the next job run."""
    job = {"video": str(clip_dir), "source": SRC, "targets": [TGT], "model": str(tiny_dir)}
    defaults = {"video": {"frames": 4}, "tune": {"steps": 100000, "save_seconds": 0}, "inversion": {"method": "fast"}}
    jobs = {"out": str(tmp_path / "b"), "defaults": defaults, "jobs": [{"name": "a", **job}, {"name": "b", **job}]}
    (tmp_path / "jobs.yaml").write_text(yaml.safe_dump(jobs))
    proc = subprocess.Popen(
        [sys.executable, "-m", "videop2p.cli", "batch", str(tmp_path / "jobs.yaml"), "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 60
    while time.time() < deadline and not list(tmp_path.rglob("tune.steps/tune-*.safetensors")):
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1].startswith("stopped (SIGTERM): the same command skips every finished job")
    assert "failed" not in err + out and not (tmp_path / "b" / "b").exists()


def test_attention_slicing_flag_gives_the_same_edit(tiny_dir, clip_dir, tmp_path):
    _invoke(_args(tiny_dir, clip_dir, tmp_path / "plain", tmp_path / "ws1"))
    _invoke(_args(tiny_dir, clip_dir, tmp_path / "sliced", tmp_path / "ws2", "--attention-slicing", "8"))
    resolved = yaml.safe_load((tmp_path / "sliced" / "config.yaml").read_text())
    assert resolved["attention_slicing"] == 8
    plain, sliced = (read_video(tmp_path / d / "edit_1.gif").frames.astype(int) for d in ("plain", "sliced"))
    assert np.abs(plain - sliced).max() <= 3
    bad = runner.invoke(app, _args(tiny_dir, clip_dir, tmp_path / "bad", tmp_path / "ws3", "--attention-slicing", "0"))
    assert bad.exit_code == 2 and "--attention-slicing 0" in bad.output and not (tmp_path / "bad").exists()


def test_size_may_give_one_side_and_the_other_keeps_the_clips_aspect_ratio(tiny_dir, tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (4, 24, 48, 3), dtype=np.uint8)  # 2:1
    clip = write_frames(frames, tmp_path / "wide")
    (tmp_path / "c.yaml").write_text("video: {width: 16, height: 16}\n")  # a flag's one side overrides both
    for size, shape in (("32x", (16, 32)), ("x8", (8, 16)), ("16X", (8, 16))):
        out = tmp_path / f"o{size}"
        _invoke([*_args(tiny_dir, clip, out, tmp_path / "ws", "--size", size), "--config", str(tmp_path / "c.yaml")])
        assert read_video(out / "edit_1.gif").frames.shape[1:3] == shape, size
        video = yaml.safe_load((out / "config.yaml").read_text())["video"]
        assert (video["width"], video["height"]) == ((int(size[:-1]), None) if size[-1] in "xX" else (None, 8))
    for size in ("x", "32xa", "x-8"):
        result = runner.invoke(app, _args(tiny_dir, clip, tmp_path / "bad", tmp_path / "ws", "--size", size))
        assert_one_line_error(result, f"--size {size!r}", "one side (512x or x288" if size != "x-8" else ">= 1")
        assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize(
    "flags, needles",
    [
        (["--guidance", "nan"], ["--guidance nan", "finite number"]),
        (["--lr", "inf"], ["--lr inf"]),
        (["--cross-replace", "1.5"], ["--cross-replace 1.5", "from 0 to 1"]),
        (["--threshold", "-0.1"], ["--threshold -0.1"]),
        (["--steps", "0"], ["--steps 0", ">= 1"]),
        (["--device", "tpu:7"], ["'tpu:7'", "valid: cpu"]),
        (["--dtype", "float64"], ["--dtype 'float64'", "float32, float16, bfloat16"]),
        (["--lr", "0"], ["--lr 0", "> 0"]),
        (["--seed", str(2**64)], [f"--seed {2**64}", "from 0 to 18446744073709551615"]),  # past torch's seeds
        (["--frames", "9" * 400], ["--frames 99999999999999999999... (400 digits)", "to 2147483647"]),
        (["--size", "99999999999x32"], ["--size '99999999999x32'", "from 1 to 2147483647"]),
        (["--tune-steps", "9" * 20], ["--tune-steps 99999999999999999999", "from 0 to 2147483647"]),  # no run for ever
        (["--window", str(2**31)], [f"--window {2**31}", "from 2 to 2147483647"]),
        (["--attention-slicing", "9" * 20], ["--attention-slicing 99999999999999999999", "to 2147483647"]),
        (["--preset", ""], ["--preset '' is not one of official, quick"]),  # not the official one in silence
        (["--reweight", "blue=2", "--reweight", "blue=3"], ["'blue' is reweighted twice"]),
        (["--target", "  "], ["--target '' (target 2) is empty", "at least one word"]),  # spaces around: none of it
        (["--blend", "circle,grass", "circle"], ["--blend", "'circle,grass' and 'circle' give 2 source and 1 target"]),
        (["--blend", "circle,circle", "circle,circle"], ["--blend gives 2 word pairs for 1 target prompt"]),
        (["--blend", "circle,-", "circle,circle"], ["--blend", "['-', 'circle'] has one word"]),
        ([*PAIRS_REPEATED], ["--blend gives 2 word pairs for 1 target prompt"]),  # not the last one alone
        (["--cross-replace", "0.2", "--cross-replace", "0.8"], ["--cross-replace gives 2 windows for 1 target"]),
        (["--subtract", "dog", "circle"], ["--subtract 'dog' is not in the source prompt", "its words are ['a'"]),
        (
            [
                "--target",
                "a blue circle moving on the snow",
                "--blend",
                "circle,-",
                "circle,-",
                "--subtract",
                "grass",
                "snow",
            ],
            [
                "--subtract ['grass', 'snow'] is given for target 2 without blend words",
                "give blend words for it too, or no subtract words",
            ],
        ),
        (["--reweight", "blue=1e30"], ["--reweight blue=1e+30 is not valid", "from -100 to 100"]),
        (["--cross-replace-word", "blue=1.5"], ["--cross-replace-word blue=1.5 is not valid", "from 0 to 1"]),
        (["--cross-replace-word", "blue"], ["--cross-replace-word 'blue' must be WORD=FRACTION, e.g. lion=0.4"]),
        (["--cross-replace-word", "blue=0.4", "--cross-replace-word", "blue=0.6"], ["'blue' is given twice"]),
        (["--reweight", "blue=-101"], ["--reweight blue=-101.0 is not valid"]),
    ],
)
def test_bad_numbers_names_and_devices_are_one_line_errors_before_any_work(
    tiny_dir, clip_dir, tmp_path, flags, needles
):
    result = runner.invoke(app, _args(tiny_dir, clip_dir, tmp_path / "o", tmp_path / "ws", *flags))
    assert_one_line_error(result, *needles)
    assert not (tmp_path / "o").exists() and not (tmp_path / "ws").exists()


@pytest.mark.parametrize(
    "text, needles",
    [
        ("source: [a, b]\ntargets: [a cat]\n", ["c.yaml: source ['a', 'b']", "expected text"]),
        ("source: a circle\ntargets: [7]\n", ["c.yaml: targets 7", "expected text"]),
        (  # a YAML literal block keeps its line breaks (a folded one joins them: `test_a_prompt_..._folded_block`)
            "source: |\n  a red circle\n  on the grass\ntargets: [a blue circle on the grass]\n",
            ["c.yaml: source 'a red circle\\non the grass' is not valid", "(it holds '\\n'; in a YAML file, a folded"],
        ),
        ('source: a circle\ntargets: ["a blue\\tcircle"]\n', ["c.yaml: targets 'a blue\\tcircle'", "(it holds '\\t')"]),
        ("source: a circle\nvideo: 5\n", ["video: 5", "a mapping"]),
        ("source: a circle\nedit: {reweight: [1, 2]}\n", ["c.yaml: edit.reweight 1", "WORD=FACTOR"]),
        (
            "source: a\nedit: {mode: swop}\n",
            ["c.yaml: edit.mode 'swop' is not one of auto, swap, refine (did you mean"],
        ),
        ("source: a\ncomposite: yes\n", ["c.yaml: composite 'yes' is not one of auto, sdr, off."]),  # as a number's
        ("source: a circle\nedit: {reweight: {blue: abc}}\n", ["c.yaml: edit.reweight blue='abc'", "finite factor"]),
        ("source: a circle\nedit: {blend: [circle, 3]}\n", ["c.yaml: edit.blend ['circle', 3]", "two words"]),
        (": : :\n", ["not valid YAML at line 1, column 1"]),
        (
            "source: a\ntune: {lr: 1.0e-4}\ntune: {lr: 2.0e-4}\n",
            ["line 3, column 1: key 'tune' appears twice (first at line 2)"],
        ),
        ("source: a\ntune: {lr: 1.0e-4, lr: 2.0e-4}\n", ["key 'lr' appears twice"]),
        (b"\xff\xfe not text", ["is not text (utf-16-le cannot read it)", "UTF-16 or UTF-32 with a byte order mark"]),
        ("source: un caf\u00e9\n".encode("latin-1"), ["is not text (utf-8 cannot read it)"]),
        (None, ["cannot be read (Is a directory)"]),  # the config path is a folder
        ("prompt: a circle\nprompts: a circle\nimage_path: x\n", ["c.yaml: prompts 'a circle' is not valid", "a list"]),
        (
            "image_path: x\nprompt: a\nprompts: [a, b]\neq_params: {words: [b], values: [x]}\n",
            ["c.yaml: eq_params.values 'x' is not valid"],
        ),
        (
            "image_path: x\nprompt: a\nprompts: [a, b]\nis_word_swap: maybe\n",
            ["c.yaml: is_word_swap 'maybe' is not true or false"],
        ),
        (
            "image_path: x\nprompt: a b\nprompts: [a b, a b]\neq_params: {words: [b, b], values: [2, 3]}\n",
            ["eq_params.words ['b', 'b'] names a word twice"],
        ),
        ("source: a\ntargets: [b]\ninversion: {lr: 0}\n", ["inversion.lr 0 is not valid", "> 0"]),
        ("source: a\ntargets: [b]\nwindow: {size: 1}\n", ["1 is not valid", ">= 2"]),
        ("pretrained_model_path: x\ntrain_data: 5\n", ["c.yaml: train_data 5 is not valid", "a mapping"]),
        (
            "pretrained_model_path: x\ntrain_data: {prompt: a}\nlearning_rate: fast\n",
            ["c.yaml: learning_rate 'fast' is not valid; expected a number."],
        ),
        (
            "train_data: {prompt: a}\nadam_weight_decay: 0.1\n",
            ["c.yaml: adam_weight_decay 0.1 is not supported", "0.01"],
        ),
        ("train_data: {prompt: a}\nlr_scheduler: cosine\n", ["c.yaml: lr_scheduler 'cosine' is not", "'constant'"]),
        ("train_data: {prompt: a}\nmax_grad_norm: 0\n", ["max_grad_norm 0.0 is not valid", "> 0"]),
        ("source: a\ntargets: [b]\ntune: {max_grad_norm: .nan}\n", ["max_grad_norm nan is not valid"]),
        (
            "source: a\ntargets: [b]\ninversion: {guidance: 5}\n",
            ["inversion.guidance 5 is not the edit's guidance 7.5"],
        ),
        (
            "source: a\ntargets: [b]\nedit: {guidance: 5}\ninversion: {guidance: 6}\n",
            ["inversion.guidance 6 is not the edit's guidance 5", "--guidance, or edit.guidance alone"],
        ),
    ],
)
def test_badly_typed_config_values_are_one_line_errors(tiny_dir, clip_dir, tmp_path, text, needles):
    if text is None:
        (tmp_path / "c.yaml").mkdir()
    elif isinstance(text, bytes):
        (tmp_path / "c.yaml").write_bytes(text)
    else:
        (tmp_path / "c.yaml").write_text(text)
    args = ["run", "--config", str(tmp_path / "c.yaml"), str(clip_dir), "--model", str(tiny_dir)]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "o"), "--workspace", str(tmp_path / "ws")])
    assert_one_line_error(result, *needles)
    assert not (tmp_path / "o").exists() and not (tmp_path / "ws").exists()


def test_a_prompt_written_as_a_yaml_folded_block_is_its_words(tiny_dir, clip_dir, tmp_path):
    """Regression: a long prompt written as YAML writes it, a folded block (`>`), ends in a line break, and was
    refused ("a prompt is one line"); in our config, the authors' pair and a flag alike, the whitespace around
    a prompt is none of it, so the run and its workspace keys are those of the prompt on one line."""
    from videop2p.config import load_config

    (tmp_path / "ours.yaml").write_text(
        "video: clip.mp4\nsource: >\n  a red circle\n  on the grass\ntargets:\n  - >\n    a blue circle\n"
        "    on the grass\n  - 'a red square on the grass  '\n"
    )
    cfg = load_config([tmp_path / "ours.yaml"])
    assert (cfg.source, cfg.targets) == ("a red circle on the grass", ["a blue circle on the grass"] + [
        "a red square on the grass"
    ])  # fmt: skip
    (tmp_path / "one.yaml").write_text("source: a red circle\ntargets: a blue circle\n")  # one target, no list
    assert load_config([tmp_path / "one.yaml"]).targets == ["a blue circle"]
    tune = "train_data:\n  video_path: clip\n  prompt: >\n    a rabbit is jumping\n    on the grass\n"
    p2p = "image_path: clip\nprompt: a rabbit is jumping on the grass\nprompts:\n  - a rabbit is jumping on the grass\n"
    (tmp_path / "t.yaml").write_text(tune)
    (tmp_path / "p.yaml").write_text(p2p + "  - >\n    a origami rabbit is jumping\n    on the grass\n")
    cfg = load_config([tmp_path / "t.yaml", tmp_path / "p.yaml"])
    assert (cfg.source, cfg.targets) == (
        "a rabbit is jumping on the grass",
        ["a origami rabbit is jumping on the grass"],
    )
    flags = [
        "--source",
        f"{SRC}  ",
        "--target",
        f" {TGT}",
        "--model",
        str(tiny_dir),
        "--workspace",
        str(tmp_path / "ws"),
    ]
    r = runner.invoke(app, ["run", str(clip_dir), *flags, "--frames", "4", "--dry-run"])
    assert (
        r.exit_code == 0 and f"\nsource: {SRC}\n" in r.output and f"\n- {TGT}\n" in r.output
    )  # as config.yaml keeps it


def test_config_files_give_blend_pairs_per_target_as_lists_or_comma_separated_words(tmp_path):
    from videop2p.config import OptionError, load_config, validate

    forms = {
        "lists": "edit: {blend: [[circle, circle], null, [grass, snow]]}",
        "commas": "edit: {blend: ['circle, -, grass', 'circle, -, snow']}",
        "dashes": "edit: {blend: [[circle, circle], [-, -], [grass, snow]]}",
    }
    targets = "targets: [a blue circle on the grass, a big circle on the grass, a circle on the snow]\n"
    for name, text in forms.items():
        (tmp_path / f"{name}.yaml").write_text(f"source: a circle on the grass\n{targets}{text}\n")
        cfg = load_config([tmp_path / f"{name}.yaml"])
        assert cfg.edit.blend == [("circle", "circle"), None, ("grass", "snow")], name
        validate(cfg)
    cfg.targets = cfg.targets[:2]  # three pairs for two targets: named before any work
    with pytest.raises(OptionError, match=r"^edit.blend: gives 3 word pairs for 2 target prompts"):
        validate(cfg)
    (tmp_path / "off.yaml").write_text("edit: {blend: [-, -]}\n")  # '- -' alone: no blending
    assert load_config([tmp_path / "off.yaml"]).edit.blend is None
    (tmp_path / "comma.yaml").write_text("edit: {blend: ['motorbike,', 'motorbike,']}\n")  # copied with its comma
    assert load_config([tmp_path / "comma.yaml"]).edit.blend == ("motorbike", "motorbike")


def test_one_guidance_is_the_edits_and_the_null_text_inversions_from_files_jobs_and_flags(tmp_path):
    from videop2p.batch import load_jobs
    from videop2p.config import RunConfig, apply_options, fill_run, load_config, validate

    (tmp_path / "edit.yaml").write_text("source: a\ntargets: [b]\nedit: {guidance: 5}\n")
    cfg = load_config([tmp_path / "edit.yaml"])
    assert cfg.edit.guidance == cfg.inversion.guidance == 5  # null-text is fitted to the guidance the edit uses
    validate(cfg)
    assert fill_run({"edit": {"guidance": 4}}).inversion.guidance == 4  # `VideoP2P.run`'s dict, read the same way
    (tmp_path / "inv.yaml").write_text("source: a\ntargets: [b]\ninversion: {guidance: 5}\n")
    flagged = apply_options(load_config([tmp_path / "inv.yaml"]), {"guidance": 6.0})  # the flag sets both
    assert flagged.edit.guidance == flagged.inversion.guidance == 6
    unflagged = apply_options(load_config([tmp_path / "inv.yaml"]), {"steps": 10})  # the file's value is kept
    assert unflagged.inversion.guidance == 5 and unflagged.edit.guidance == RunConfig().edit.guidance
    (tmp_path / "jobs.yaml").write_text(
        "defaults: {edit: {guidance: 3}}\njobs:\n  - {video: clip, source: a, targets: [b]}\n"
    )
    (job,), _ = load_jobs(tmp_path / "jobs.yaml")
    assert job.config.edit.guidance == job.config.inversion.guidance == 3


def test_config_files_are_read_in_each_encoding_yaml_allows(tmp_path):
    from videop2p.batch import load_jobs
    from videop2p.config import load_config

    text = "source: un caf\u00e9 rouge\r\ntargets: [un caf\u00e9 bleu]\r\ntune: {steps: 2}\r\n"  # CRLF, as on Windows
    read = {}
    for encoding in ("utf-8", "utf-8-sig", "utf-16", "utf-16-be", "utf-32", "utf-32-be"):  # -be: no mark written
        data = text.encode(encoding)
        if encoding.endswith("-be"):
            data = "\ufeff".encode(encoding) + data  # a big-endian mark, as editors write it
        (tmp_path / f"{encoding}.yaml").write_bytes(data)
        cfg = load_config([tmp_path / f"{encoding}.yaml"])
        read[encoding] = (cfg.source, tuple(cfg.targets), cfg.tune.steps)
    assert set(read.values()) == {("un caf\u00e9 rouge", ("un caf\u00e9 bleu",), 2)}, read
    jobs = "jobs:\n  - {video: clip.mp4, source: a caf\u00e9, targets: [b]}\n"  # PowerShell 5's `>` writes this
    (tmp_path / "jobs.yaml").write_bytes(jobs.encode("utf-16"))
    assert load_jobs(tmp_path / "jobs.yaml")[0][0].config.source == "a caf\u00e9"


def test_config_files_read_numbers_and_booleans_as_yaml_1_2_does(tmp_path):
    from videop2p.batch import load_jobs
    from videop2p.config import OptionError, RunConfig, VideoConfig, WindowConfig, check_window, load_config, validate

    (tmp_path / "run.yaml").write_text(
        "source: a red circle\ntargets: [a blue circle]\ntune: {lr: 3e-5, steps: 2}\n"
        "inversion: {early_stop: 1e-5, lr: 1E-2}\nedit: {reweight: {blue: 2e0}}\n"
    )
    cfg = load_config([tmp_path / "run.yaml"])
    assert (cfg.tune.lr, cfg.inversion.early_stop, cfg.inversion.lr, cfg.edit.reweight) == (
        3e-5,
        1e-5,
        1e-2,
        {"blue": 2.0},
    )
    (tmp_path / "jobs.yaml").write_text(
        "jobs:\n  - {name: a, video: clip.mp4, source: a red circle, targets: [a blue circle], tune: {lr: 5e-5}}\n"
    )
    assert load_jobs(tmp_path / "jobs.yaml")[0][0].config.tune.lr == 5e-5
    (tmp_path / "every.yaml").write_text(  # as --frames 0
        "video: {path: clip.mp4, frames: 0}\nwindow: {size: 0}\ntune: {frames: 0}\ninversion: {frames: 0}\n"
    )
    every = load_config([tmp_path / "every.yaml"])
    assert (every.video.frames, every.window.size, every.tune.frames, every.inversion.frames) == (None,) * 4
    (tmp_path / "every.yaml").write_text("video: {path: clip.mp4, frames: false}\n")
    with pytest.raises(OptionError, match="frames: False is not valid"):
        validate(load_config([tmp_path / "every.yaml"]))
    with pytest.raises(OptionError, match="0 is not valid; expected a whole number >= 2, or None: the whole clip"):
        check_window(WindowConfig(size=0))  # the API's dataclass: its None is the whole clip
    with pytest.raises(OptionError, match="0 is not valid; expected a whole number >= 1, or None: every frame"):
        validate(RunConfig(video=VideoConfig(path="clip.mp4", frames=0)))
    (tmp_path / "quoted.yaml").write_text('source: "1e5"\ntargets: ["2e5"]\n')  # quoted text stays text
    assert load_config([tmp_path / "quoted.yaml"]).source == "1e5"
    (tmp_path / "words.yaml").write_text("composite: off\ntune: {mixed_precision: no, gradient_checkpointing: false}\n")
    cfg = load_config([tmp_path / "words.yaml"])  # YAML 1.1 made booleans of off and no
    assert (cfg.composite.value, cfg.tune.mixed_precision, cfg.tune.gradient_checkpointing) == ("off", "no", False)
    (tmp_path / "anchors.yaml").write_text(  # keys merged in with << may be overridden: not a repeated key
        "defaults: {tune: &quick {steps: 2, lr: 1.0e-4}}\n"
        "jobs:\n  - {name: a, video: clip.mp4, source: a, targets: [b], tune: {<<: *quick, lr: 5.0e-5}}\n"
    )
    assert load_jobs(tmp_path / "anchors.yaml")[0][0].config.tune.lr == 5e-5
    args = ["run", "clip.mp4", "--source", "a", "--target", "b", "--config", str(tmp_path / "yes.yaml")]
    (tmp_path / "yes.yaml").write_text("tune: {gradient_checkpointing: yes}\n")
    assert_one_line_error(runner.invoke(app, args), "checkpointing 'yes' is not true or false")
    (tmp_path / "yes.yaml").write_text("png_frames: sometimes\n")
    assert_one_line_error(runner.invoke(app, args), "yes.yaml: png_frames 'sometimes' is not true or false")


def test_a_bad_value_is_named_where_it_was_given_and_a_whole_float_is_a_whole_number(tiny_dir, clip_dir, tmp_path):
    from videop2p.batch import BatchError, load_jobs
    from videop2p.config import fill_run

    run = tmp_path / "run.yaml"
    args = ["run", str(clip_dir), "--source", SRC, "--target", TGT, "--model", str(tiny_dir), "--out", str(tmp_path)]
    for written, said in (
        ("tune: {steps: 2.5}", "run.yaml: tune.steps 2.5 is not valid; expected a whole number >= 0."),
        ("video: {frames: -1}", "run.yaml: video.frames -1 is not valid; expected a whole number >= 1"),
        ("edit: {guidance: .nan}", "run.yaml: edit.guidance nan is not valid; expected a finite number >= 0."),
        ("edit: {mask_side: 0}", "run.yaml: edit.mask_side 0 is not valid; expected a whole number >= 1."),
    ):
        run.write_text(written + "\n")
        assert_one_line_error(runner.invoke(app, [*args, "--config", str(run), "--dry-run"]), f"{tmp_path}/{said}")
    run.write_text("tune: {steps: 2.5}\n")  # a flag overrides the file's: the flag's value is the bad one
    assert_one_line_error(
        runner.invoke(app, [*args, "--config", str(run), "--tune-steps", "-1", "--dry-run"]), "--tune-steps -1 is not"
    )
    run.write_text("tune: {steps: 2.0}\nvideo: {frames: 4e0}\n")  # whole, as `--tune-steps 2.0` reads it
    printed = yaml.safe_load(_invoke([*args, "--config", str(run), "--dry-run"]).stdout)
    assert (printed["tune"]["steps"], printed["video"]["frames"]) == (2, 4)
    assert type(fill_run({"inversion": {"steps": 50.0}}).inversion.steps) is int  # the API's dict, as a file
    assert type(fill_run({"edit": {"guidance": 7.0}}).edit.guidance) is float  # a number that need not be whole
    (tmp_path / "jobs.yaml").write_text(
        "defaults: {tune: {steps: 2.5}}\n"
        f"jobs:\n  - {{name: a, video: {clip_dir}, source: a red circle, targets: [a blue circle]}}\n"
    )
    with pytest.raises(BatchError, match=r"^jobs\[0\] \(a\): tune.steps 2.5 is not valid"):  # the file's key
        load_jobs(tmp_path / "jobs.yaml")
    for written, said in (  # a misspelt key, a flag's name written as a key: what it may have meant
        ("edit: {treshold: 0.5}", "Unknown key 'treshold' under 'edit' (did you mean 'threshold'?); valid keys"),
        ("target: [a blue circle]", "Unknown key 'target' (did you mean 'targets'?)"),
        ("tune_steps: 3", "Unknown key 'tune_steps' (--tune-steps is tune: {steps: ...} in a file)"),
        ("blend: [circle, circle]", "Unknown key 'blend'; it goes under 'edit' or 'window' (e.g. edit: {blend: ...})"),
        ("zzz: 1", "Unknown key 'zzz'; valid keys are: "),  # nothing near it
    ):
        run.write_text(written + "\n")
        assert_one_line_error(runner.invoke(app, [*args, "--config", str(run), "--dry-run"]), f"{run}: {said}")
    (tmp_path / "jobs.yaml").write_text("default: {}\njobs: []\n")
    with pytest.raises(
        BatchError, match=r"Unknown key\(s\) \['default'\] in .*jobs.yaml \(did you mean 'defaults'\?\)"
    ):
        load_jobs(tmp_path / "jobs.yaml")


def test_a_bad_value_of_the_authors_pair_is_named_by_their_file_and_key(tiny_dir, clip_dir, tmp_path):
    """A value of their tune or p2p config is named as they wrote it (`X-tune.yaml: train_data.n_sample_frames`),
    whether it fails while their file is read or when the settings are checked; a flag over it is named by the
    flag; a batch job's config pair as the command line's, its own keys by theirs."""
    from videop2p.batch import BatchError, load_jobs

    tune, p2p, _ = _official_pair(tiny_dir, clip_dir, tmp_path)
    written = {"tune": yaml.safe_load(tune.read_text()), "p2p": yaml.safe_load(p2p.read_text())}
    cases = (
        ("tune", ("train_data", "n_sample_frames"), -2, "train_data.n_sample_frames -2 is not valid; expected a whole"),
        ("tune", ("train_data", "sample_frame_rate"), 0, "train_data.sample_frame_rate 0 is not valid"),
        ("tune", ("train_data", "width"), 0, "train_data.width 0 is not valid"),
        ("tune", ("learning_rate",), -1, "learning_rate -1.0 is not valid; expected a finite number > 0."),
        ("tune", ("learning_rate",), "abc", "learning_rate 'abc' is not valid; expected a number."),
        ("tune", ("seed",), 3.5, "seed 3.5 is not valid; expected a whole number >= 0."),
        ("tune", ("mixed_precision",), "fp8", "mixed_precision 'fp8' is not one of no, fp16, bf16."),
        ("tune", ("max_train_stepz",), 5, "Unknown key 'max_train_stepz' in an official Video-P2P config"),
        ("p2p", ("video_len",), 0, "video_len 0 of the p2p config differs from train_data.n_sample_frames 4"),
        ("p2p", ("cross_replace_steps",), 1.5, "cross_replace_steps 1.5 is not valid"),
        ("p2p", ("eq_params",), {"words": ["blue"], "values": ["x"]}, "eq_params.values 'x' is not valid"),
        ("p2p", ("is_word_swap",), "maybe", "is_word_swap 'maybe' is not true or false"),
    )
    for which, key, value, said in cases:
        bad = json.loads(json.dumps(written[which]))
        (bad if len(key) == 1 else bad[key[0]])[key[-1]] = value
        path = tmp_path / f"bad-{which}.yaml"
        path.write_text(yaml.safe_dump(bad))
        files = [path, p2p] if which == "tune" else [tune, path]
        args = ["run", "--config", str(files[0]), "--config", str(files[1]), "--out", str(tmp_path / "o"), "--dry-run"]
        assert_one_line_error(runner.invoke(app, args), f"{path}: {said}")
        assert not (tmp_path / "o").exists()
    path = tmp_path / "bad-tune.yaml"
    path.write_text(yaml.safe_dump({**written["tune"], "seed": -1}))
    args = ["run", "--config", str(path), "--config", str(p2p), "--dry-run"]
    assert_one_line_error(runner.invoke(app, [*args, "--seed", "-2"]), "--seed -2 is not valid")  # the flag's value
    jobs = tmp_path / "jobs.yaml"
    for own, said in (({}, f"{path}: seed -1 is not valid"), ({"tune": {"seed": -3}}, ": tune.seed -3 is not valid")):
        jobs.write_text(yaml.safe_dump({"jobs": [{"name": "a", "config": [str(path), str(p2p)], **own}]}))
        with pytest.raises(BatchError, match=r"^jobs\[0\] \(a\): " + re.escape(said.removeprefix(": "))):
            load_jobs(jobs)


# two values each of the authors' keys, for the test below
_THEIR_VALUES = {
    "prompt": ("a red circle", "a red square"),
    "train_data.prompt": ("a red circle", "a red square"),
    "prompts": (["a red circle", "a blue circle"], ["a red circle", "a green circle"]),
    "video_len": (4, 5),
    "train_data.n_sample_frames": (4, 5),
    "train_data.video_path": ("data/rabbit", "data/car"),
    "image_path": ("data/rabbit", "data/car"),
    "train_data.sample_start_idx": (1, 2),
    "train_data.sample_frame_rate": (1, 2),
    "train_data.width": (32, 64),
    "train_data.height": (32, 64),
    "max_train_steps": (1, 2),
    "learning_rate": (1e-5, 2e-5),
    "seed": (1, 2),
    "mixed_precision": ("fp16", "bf16"),
    "gradient_checkpointing": (True, False),
    "max_grad_norm": (1.0, 2.0),
    "pretrained_model_path": ("a", "b"),
    "output_dir": ("a", "b"),
    "blend_word": (["circle", "circle"], ["red", "blue"]),
    "eq_params": ({"words": ["blue"], "values": [2]}, {"words": ["blue"], "values": [3]}),
    "is_word_swap": (True, False),
    "cross_replace_steps": ({"default_": 0.2, "blue": 0.5}, {"default_": 0.4, "blue": 0.6}),
    "self_replace_steps": (0.5, 0.6),
}


def test_each_setting_is_named_by_the_authors_key_it_is_read_from():
    """`config.given_by`'s table of the authors' keys agrees with `from_official`, which reads them: each key it
    names for a setting, alone in its file, sets that setting."""
    import dataclasses

    from videop2p.config import _OFFICIAL_SETTINGS, ConfigKind, from_official

    def read(kind, their, value):
        *section, key = their.split(".")
        data = {section[0]: {key: value}} if section else {key: value}
        tune, p2p = (data, None) if kind is ConfigKind.TUNE else (None, data)
        if p2p is not None and their == "prompts":
            p2p["prompt"] = value[0]  # their source-first convention
        setting = dataclasses.asdict(from_official(tune, p2p))
        for part in ours.split("."):  # `edit.blend`: the edit's blend
            setting = setting[part]
        return setting

    for ours, theirs in _OFFICIAL_SETTINGS.items():
        for kind, their in theirs:
            a, b = (read(kind, their, value) for value in _THEIR_VALUES[their])
            assert a != b, (ours, their)


def test_a_misspelt_name_is_told_the_one_it_may_mean(tiny_dir, clip_dir, tmp_path):
    args = ["run", str(clip_dir), "--source", SRC, "--target", TGT, "--model", str(tiny_dir), "--out", str(tmp_path)]
    for flags, said in (
        (
            ["--inversion", "nulltext"],
            "--inversion 'nulltext' is not one of null-text, fast, direct, negative-prompt "
            "(did you mean 'null-text'?).",
        ),
        (
            ["--dtype", "flaot16"],
            "--dtype 'flaot16' is not one of float32, float16, bfloat16 (did you mean 'float16'?).",
        ),
        (["--preset", "quik"], "--preset 'quik' is not one of official, quick (did you mean 'quick'?)."),
        (["--resize", "zoom"], "--resize 'zoom' is not one of crop, pad, stretch."),  # near none of them
        # another name of one: the authors' and accelerate's mixed_precision, torch's
        (["--dtype", "fp16"], "--dtype 'fp16' is not one of float32, float16, bfloat16 (did you mean 'float16'?)."),
        (["--dtype", "BF16"], "--dtype 'BF16' is not one of float32, float16, bfloat16 (did you mean 'bfloat16'?)."),
        (["--dtype", "half"], "(did you mean 'float16'?)."),
        (["--mode", "replace"], "--mode 'replace' is not one of auto, swap, refine (did you mean 'swap'?)."),  # P2P's
    ):
        assert_one_line_error(runner.invoke(app, [*args, *flags, "--dry-run"]), said)
    from videop2p.pipeline import VideoP2P

    with pytest.raises(ValueError, match=r"^dtype: 'fp32' is not one of .* \(did you mean 'float32'\?\)\.$"):
        VideoP2P.from_pretrained(None, dtype="fp32")  # the API's
    (tmp_path / "run.yaml").write_text("tune: {mixed_precision: fp61}\n")
    result = runner.invoke(app, [*args, "--config", str(tmp_path / "run.yaml"), "--dry-run"])
    assert_one_line_error(result, "tune.mixed_precision 'fp61' is not one of no, fp16, bf16 (did you mean 'fp16'?).")
    (tmp_path / "run.yaml").write_text("tune: {mixed_precision: bfloat16}\n")  # a dtype's name for it
    result = runner.invoke(app, [*args, "--config", str(tmp_path / "run.yaml"), "--dry-run"])
    assert_one_line_error(
        result, "tune.mixed_precision 'bfloat16' is not one of no, fp16, bf16 (did you mean 'bf16'?)."
    )
    export = runner.invoke(app, ["export", str(tmp_path), str(tmp_path / "x"), "--format", "tuneavideo"])
    assert_one_line_error(export, "--format 'tuneavideo' is not one of diffusers-delta, tune-a-video (did you mean")


def test_truncated_or_foreign_weights_are_one_line_errors(tiny_dir, clip_dir, tmp_path):
    broken = shutil.copytree(tiny_dir, tmp_path / "broken")
    weights = broken / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    result = runner.invoke(app, _args(broken, clip_dir, tmp_path / "o", tmp_path / "ws", "--model", str(broken)))
    assert_one_line_error(result, str(broken))
    flat = tmp_path / "model.safetensors"
    flat.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header}")
    result = runner.invoke(app, _args(tiny_dir, clip_dir, tmp_path / "o", tmp_path / "ws", "--model", str(flat)))
    assert_one_line_error(result, "model.safetensors")
    assert not (tmp_path / "o").exists() and not (tmp_path / "ws").exists()


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("model", b"", "is empty (0 bytes)"),  # a file without a suffix is read as a torch save
        ("model.safetensors", b"", "is empty (0 bytes)"),
        ("model.ckpt", bytes(range(7, 250)) * 40, "is not a checkpoint, or is truncated"),
        ("model.bin", "torch zip cut short", "is not a checkpoint, or is truncated"),
    ],
)
def test_a_single_file_that_cannot_be_a_checkpoint_is_named_before_diffusers_reads_it(
    tiny_dir, clip_dir, tmp_path, name, content, message
):
    import torch

    bad = tmp_path / name
    if content == "torch zip cut short":  # a real torch save (a zip archive) without its end
        torch.save({"weight": torch.zeros(4096)}, bad)
        content = bad.read_bytes()[:2000]
    bad.write_bytes(content)
    result = runner.invoke(app, _args(tiny_dir, clip_dir, tmp_path / "o", tmp_path / "ws", "--model", str(bad)))
    assert_one_line_error(result, repr(str(bad)), message)
    assert not (tmp_path / "o").exists() and not (tmp_path / "ws").exists()


def test_a_torch_save_passes_the_file_check_and_reaches_the_checkpoint_reader(tmp_path):
    import torch

    from videop2p.models.loading import check_model_path

    for name in ("model.ckpt", "model"):
        torch.save({"weight": torch.zeros(4)}, tmp_path / name)
        check_model_path(tmp_path / name)  # a zip archive: what diffusers makes of its keys is its reader's call
    (tmp_path / "legacy.pt").write_bytes(b"\x80\x02" + bytes(30))  # a pickle before torch 1.6's zip files
    check_model_path(tmp_path / "legacy.pt")


def test_transformers_lines_about_image_processors_stay_out_of_a_stable_diffusion_run(clip_dir, tmp_path):
    import torch

    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    bare = subprocess.run(
        [sys.executable, "-c", "from diffusers import StableDiffusionPipeline"], capture_output=True, text=True, env=env
    )
    assert "requires torchvision" in bare.stderr  # diffusers' pipelines make transformers say it, without torchvision
    torch.save({"weight": torch.zeros(4)}, tmp_path / "model.ckpt")  # read by diffusers: no architecture offline
    args = ["run", str(clip_dir), "--frames", "4", "--source", "a", "--target", "b", "--out", str(tmp_path / "o")]
    run = subprocess.run(
        [sys.executable, "-m", "videop2p.cli", *args, "--model", str(tmp_path / "model.ckpt")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert run.returncode == 2 and "error: Could not load the single-file checkpoint" in run.stderr
    assert "requires torchvision" not in run.stderr and "[transformers]" not in run.stderr


def test_weights_that_are_not_finite_are_named_before_any_work(tiny_dir, clip_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    damaged = shutil.copytree(tiny_dir, tmp_path / "damaged")
    weights = damaged / "vae" / "diffusion_pytorch_model.safetensors"
    tensors = load_file(weights)
    name = sorted(k for k in tensors if k.endswith(".weight"))[3]
    tensors[name].view(-1)[-1] = float("nan")
    save_file(tensors, weights)
    result = runner.invoke(app, _args(damaged, clip_dir, tmp_path / "o", tmp_path / "ws", "--model", str(damaged)))
    assert_one_line_error(result, f"vae.{name}", "NaN or infinite", "damaged")
    assert not (tmp_path / "o").exists() and not (tmp_path / "ws").exists()


def test_a_model_whose_files_lack_a_weight_is_one_line_in_every_command_that_loads_it(tiny_dir, clip_dir, tmp_path):
    """transformers drew a missing text-encoder weight at random and ran (after printing its table of keys);
    diffusers left a UNet's unloaded, and the run ended in a traceback. Both are one line now, with nothing
    else said, before anything is written."""
    from safetensors.torch import load_file, save_file

    from videop2p.models.loading import bundled_model_path

    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    for part, pick in (("text_encoder", "final_layer_norm.weight"), ("unet", "attn2.to_k.weight")):
        damaged = shutil.copytree(bundled_model_path(), tmp_path / f"no-{part}")  # of the toy's configuration
        (weights,) = (damaged / part).glob("*.safetensors")
        tensors = load_file(weights)
        del tensors[next(k for k in sorted(tensors) if k.endswith(pick))]
        save_file(tensors, weights, metadata={"format": "pt"})
        commands = {
            "run": _args(tiny_dir, clip_dir, tmp_path / "o", tmp_path / "ws", "--model", str(damaged)),
            "toy eval": ["toy", "eval", "--model", str(damaged), "--seeds", "1", "--steps", "2"],
            "toy train": ["toy", "train", str(tmp_path / "train"), "--init-from", str(damaged), "--image-size", "32"],
        }
        for name, args in commands.items():
            run = subprocess.run([sys.executable, "-m", "videop2p.cli", *args], capture_output=True, text=True, env=env)
            lines = (run.stdout + run.stderr).strip().splitlines()
            assert run.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), (name, run.stderr)
            assert f"no-{part}/{part}" in lines[0] and pick in lines[0], (name, lines[0])
        assert not any((tmp_path / d).exists() for d in ("o", "ws", "train"))


def test_a_full_disk_is_one_line_naming_the_file_and_leaves_no_half_set_of_outputs(
    tiny_dir, clip_dir, tmp_path, monkeypatch
):
    import errno

    from PIL import Image

    def full(*args, **kwargs):  # what PIL raises when the disk fills: no file name
        raise OSError(errno.ENOSPC, "No space left on device")

    out, ws = tmp_path / "o", tmp_path / "ws"
    with monkeypatch.context() as m:
        m.setattr(Image.Image, "save", full)  # the gifs and PNGs fail; the mp4s before them were written
        result = runner.invoke(app, _args(tiny_dir, clip_dir, out, ws))
    assert_one_line_error(result, "No space left on device", f"{out / 'source.gif'}'", "the disk is full")
    assert not out.exists()  # the mp4s written before the failure went with it
    assert len(list(ws.rglob("*.safetensors"))) == 3  # tuning, inversion and edit stay for the next run
    out.mkdir()
    (out / "mine.txt").write_text("the user's")
    with monkeypatch.context() as m:
        m.setattr(Image.Image, "save", full)
        assert runner.invoke(app, _args(tiny_dir, clip_dir, out, ws)).exit_code == 2
    assert [p.name for p in out.iterdir()] == ["mine.txt"]  # a folder that was there keeps what it held
    result = _invoke(_args(tiny_dir, clip_dir, out, ws))
    manifest = json.loads((out / "outputs.json").read_text())
    assert all(s.get("action", "reused") == "reused" for s in manifest["stages"].values())
    assert (out / "source.gif").exists() and (out / "mine.txt").exists()
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no hidden folder left


def test_the_config_a_run_writes_runs_it_again_from_any_folder(tiny_dir, clip_dir, tmp_path, monkeypatch):
    import shutil

    shutil.copytree(clip_dir, tmp_path / "here" / "clip")
    shutil.copytree(tiny_dir, tmp_path / "here" / "model")
    monkeypatch.chdir(tmp_path / "here")
    args = _args("model", "clip", "o", "ws")  # every path relative to where the user is
    _invoke(args)
    resolved = yaml.safe_load((tmp_path / "here" / "o" / "config.yaml").read_text())
    assert resolved["video"]["path"] == str(tmp_path / "here" / "clip")
    assert (resolved["model"], resolved["out"]) == (str(tmp_path / "here" / "model"), str(tmp_path / "here" / "o"))
    monkeypatch.chdir(tmp_path)
    _invoke(["run", "--config", str(tmp_path / "here" / "o" / "config.yaml")])
    stages = _manifest(tmp_path / "here" / "o")["stages"]
    assert [stages[s]["action"] for s in ("tune", "invert", "edit")] == ["reused"] * 3


def test_a_tuning_that_diverges_is_one_line_naming_the_rate_and_keeps_no_result(tiny_dir, clip_dir, tmp_path):
    args = _args(tiny_dir, clip_dir, tmp_path / "o", tmp_path / "ws", "--tune-steps", "20", "--lr", "1e12")
    result = runner.invoke(app, args)
    assert_one_line_error(result, "Tuning diverged at step", "of 20", "lower learning rate than 1e+12")
    assert not (tmp_path / "o").exists()
    assert not (tmp_path / "ws").exists()  # no clip folder, no kept state, no workspace


def test_a_tuning_whose_weights_stay_finite_but_overflow_the_inversion_names_the_rate(tiny_dir, clip_dir, tmp_path):
    """One step at a huge rate moves the weights far but leaves them finite; the inversion's predictions are
    not, and its error says to tune again with a lower rate rather than only to check the model."""
    args = _args(tiny_dir, clip_dir, tmp_path / "o", tmp_path / "ws", "--tune-steps", "1", "--lr", "1e20")
    result = runner.invoke(app, args)
    assert_one_line_error(result, "inversion diverged at step 1", "tune it again with a lower learning rate")
    assert not (tmp_path / "o").exists()


def test_presets_start_from_their_settings_under_config_files_and_flags(tmp_path):
    from videop2p.cli import _build_config, _presets_help
    from videop2p.config import PRESETS, Preset, RunConfig, apply_options, preset_config

    quick = preset_config("quick")
    assert quick == apply_options(RunConfig(), PRESETS[Preset.QUICK]) and quick != RunConfig()
    assert preset_config("official") == RunConfig()
    flags = dict.fromkeys(("size", "window", "frames", "force", "quiet"))
    cfg, _ = _build_config("clip.mp4", SRC, [TGT], None, preset="quick", **flags)
    assert (cfg.tune.steps, cfg.tune.frames, cfg.inversion.method) == (
        quick.tune.steps,
        quick.tune.frames,
        quick.inversion.method,
    )
    yml = tmp_path / "run.yaml"
    yml.write_text("tune: {lr: 0.001}\ninversion: {method: null-text}\n")
    cfg, _ = _build_config("clip.mp4", SRC, [TGT], [yml], preset="quick", tune_steps=7, **flags)
    assert (cfg.tune.lr, cfg.inversion.method.value) == (0.001, "null-text")  # the file over the preset
    assert (cfg.tune.steps, cfg.tune.frames) == (7, quick.tune.frames)  # the flag over both
    help_text = runner.invoke(app, ["run", "--help"], terminal_width=200).output
    assert "quick (--tune-steps" in " ".join(help_text.replace("│", " ").split())  # the box's borders aside
    assert "--no-tune-checkpointing --inversion fast" in _presets_help()  # a switch reads as the flag that sets it
    assert quick.tune.gradient_checkpointing is False and RunConfig().tune.gradient_checkpointing is True
    flags["tune_checkpointing"] = True
    cfg, _ = _build_config("clip.mp4", SRC, [TGT], None, preset="quick", **flags)
    assert cfg.tune.gradient_checkpointing is True and cfg.tune.frames == quick.tune.frames  # the flag over the preset
    cfg, _ = _build_config("clip.mp4", SRC, [TGT], None, preset="quick", tune_frames=0, null_text_frames=0, **flags)
    assert (cfg.tune.frames, cfg.inversion.frames) == (None, None)  # 0: back to every frame, the official


@pytest.mark.parametrize("name", ["edit.mp4", "edit.MOV", "frames.png"])
def test_an_output_folder_named_as_a_video_or_a_picture_is_refused_before_any_work(tiny_dir, clip_dir, tmp_path, name):
    """`--out edit.mp4` (the edit's file, as a user would name it) made a folder `edit.mp4` holding the
    outputs; it is refused in one line that names the folder to give, and nothing is written. A folder there
    already under such a name is written in, as before, and so is one given with a closing slash."""
    from videop2p.config import check_folder

    out = tmp_path / "runs" / name
    result = runner.invoke(app, _args(tiny_dir, clip_dir, out, tmp_path / "ws"))
    kind = "a picture" if name.endswith(".png") else "a video"
    assert_one_line_error(result, f"--out {str(out)!r} names {kind} file, not a folder", repr(str(out.with_suffix(""))))
    assert not (tmp_path / "runs").exists() and not (tmp_path / "ws").exists()
    config = tmp_path / "run.yaml"
    config.write_text(f"out: {out}\n")
    args = _args(tiny_dir, clip_dir, tmp_path / "o", tmp_path / "ws")
    del args[args.index("--out") : args.index("--out") + 2]  # the file's `out` read
    assert_one_line_error(
        runner.invoke(app, [*args, "--config", str(config)]), f"{config}: out {str(out)!r} names {kind} file"
    )
    assert not (tmp_path / "runs").exists() and not (tmp_path / "ws").exists()
    out.mkdir(parents=True)
    check_folder("--out", out, "for the outputs")  # there already: a folder
    check_folder("--out", tmp_path / "v1.2", "for the outputs")  # a dot in a folder's name is no file's suffix
    check_folder("--out", f"{tmp_path / 'new'}/{name}/", "for the outputs")  # said to be a folder by its slash


def test_a_config_file_or_a_jobs_file_names_a_preset_under_its_own_settings(tmp_path):
    from videop2p.batch import BatchError, load_jobs
    from videop2p.cli import _build_config
    from videop2p.config import ConfigError, Preset, RunConfig, fill_run, load_config, preset_config

    quick, flags = preset_config("quick"), dict.fromkeys(("size", "window", "frames", "force", "quiet"))
    yml = tmp_path / "run.yaml"
    yml.write_text("preset: quick\ntune: {lr: 0.001}\n")
    cfg, preset = _build_config("clip.mp4", SRC, [TGT], [yml], **flags)
    assert (cfg.tune.steps, cfg.tune.frames, cfg.inversion.method) == (
        quick.tune.steps,
        quick.tune.frames,
        quick.inversion.method,
    )
    assert cfg.tune.lr == 0.001  # the file's own settings over its preset
    assert preset is Preset.QUICK  # its margin said, as for the flag's, once the settings are checked
    cfg, preset = _build_config("clip.mp4", SRC, [TGT], [yml], preset="official", **flags)
    assert (cfg.tune.steps, cfg.tune.frames, cfg.tune.lr) == (RunConfig().tune.steps, None, 0.001)  # the flag's
    assert preset is Preset.OFFICIAL
    assert (load_config(yml).tune.frames, load_config(yml).tune.lr) == (quick.tune.frames, 0.001)  # the library's
    assert fill_run({"preset": "quick", "video": "clip.mp4"}).tune.steps == quick.tune.steps  # `VideoP2P.run`'s dict
    assert fill_run({"preset": "quick"}, base=RunConfig()) == RunConfig()  # a base given is where it starts
    yml.write_text("preset: fastest\n")
    result = runner.invoke(app, ["run", "clip.mp4", "--source", SRC, "--target", TGT, "--config", str(yml)])
    assert_one_line_error(result, f"{yml}: preset 'fastest' is not one of official, quick.")
    with pytest.raises(
        ConfigError, match=r"Unknown key 'presets' \(did you mean 'preset'\?\); valid keys are: .*, preset,"
    ):
        fill_run({"presets": "quick"})

    jobs = tmp_path / "jobs.yaml"
    job = {"video": "clip.mp4", "source": SRC, "targets": [TGT]}
    both = {"defaults": {"preset": "quick"}, "jobs": [{"name": "a", **job}, {"name": "b", "preset": "official", **job}]}
    yml.write_text("tune: {lr: 0.001}\n")
    both["jobs"].append({"name": "c", "config": str(yml), **job})
    jobs.write_text(yaml.safe_dump(both))
    (a, b, c), _ = load_jobs(jobs)
    assert (a.config.tune.steps, b.config.tune.steps, c.config.tune.steps) == (
        quick.tune.steps,
        RunConfig().tune.steps,
        quick.tune.steps,
    )
    assert (c.config.tune.lr, c.config.inversion.method) == (0.001, quick.inversion.method)  # the file over the preset
    jobs.write_text(yaml.safe_dump({"defaults": {"preset": 3}, "jobs": [job]}))
    with pytest.raises(BatchError, match="preset 3 is not one of official, quick"):
        load_jobs(jobs)


@pytest.mark.parametrize("stage", ["run", "tune", "invert", "edit"])
def test_stage_help_groups_every_option_by_what_it_sets(stage):
    import re

    help_text = runner.invoke(app, [stage, "--help"], env={"COLUMNS": "160"}).output
    panels, current = {}, None
    for line in help_text.splitlines():
        if head := re.match(r"╭─ (.+?) ─", line):
            current = panels.setdefault(head.group(1), [])
        elif row := re.match(r"│ (--[a-z-]+)(?: +(--[a-z-]+))?(?: +-[a-z])? +<", line):  # an option's row (a short
            current += [name for name in row.groups() if name]  # alias aside), not its description
    assert list(panels)[2:] == [
        "Clip and prompts",
        "Model and device",
        "Stage 1: tuning",
        "Stage 2: inversion",
        "Stage 3: editing",
        "Long clips and full resolution",
        "Outputs and workspace",
    ]
    assert panels["Options"] == ["--help"]  # every setting sits in a panel of its own kind
    assert {"--blend", "--reweight", "--cross-replace", "--frame-attention-control"} <= set(panels["Stage 3: editing"])
    assert {"--inversion", "--steps", "--guidance"} <= set(panels["Stage 2: inversion"])
    assert {"--tune-steps", "--lr", "--tune-checkpointing", "--no-tune-checkpointing"} <= set(panels["Stage 1: tuning"])
    assert {"--window", "--composite"} <= set(panels["Long clips and full resolution"])
    assert {"--out", "--workspace", "--force", "--quiet"} <= set(panels["Outputs and workspace"])
    options = [name for names in panels.values() for name in names]
    assert len(options) == len(set(options)) > 40  # each option once
    from videop2p.config import RunConfig

    flat = " ".join(line.strip("│ ") for line in help_text.splitlines())
    assert f"names one (default: {RunConfig().out})." in flat  # --out: what it holds, and its default, the config's


def _commands(group, prefix=()):
    """Every command of a click group, by its words (`("toy", "render")`)."""
    for name, command in getattr(group, "commands", {}).items():
        yield (*prefix, name), command
        yield from _commands(command, (*prefix, name))


def test_every_choice_a_command_takes_is_listed_in_its_help_with_the_default_its_settings_give():
    """A choice's values are each listed in its flag's help, and its default is the settings' (`toy render`
    wrote its shapes, colours, backgrounds, motions and sizes, and their defaults, by hand)."""
    import enum

    import typer

    from videop2p.config import DTYPES, OPTIONS, RunConfig
    from videop2p.toy.world import Background, Color, Motion, Shape, Size, ToyClipSpec, ToyObject

    run, checked = RunConfig(), 0
    toy_render = {"shape": Shape, "color": Color, "background": Background, "motion": Motion, "object_size": Size}
    for words, command in _commands(typer.main.get_command(app)):
        for param in command.params:
            if param.name == "dtype":
                assert all(name in param.help for name in DTYPES), (words, param.help)
            if words == ("toy", "render") and param.name in toy_render:
                kind = toy_render[param.name]
            elif param.name in OPTIONS:
                section, attr = OPTIONS[param.name]
                kind = type(getattr(run if section is None else getattr(run, section), attr))
            else:
                continue
            if issubclass(kind, enum.Enum):
                assert all(m.value in param.help for m in kind), (words, param.name, param.help)
                checked += 1
    assert checked >= 20  # run, tune, invert and edit's choices, and toy render's
    spec, obj = ToyClipSpec([ToyObject(Shape.CIRCLE, Color.RED)]), ToyObject(Shape.CIRCLE, Color.RED)
    params = {p.name: p.default for p in typer.main.get_command(app).commands["toy"].commands["render"].params}
    assert (params["background"], params["motion"]) == (spec.background.value, spec.motion.value)
    assert params["object_size"] == obj.size.value


def test_toy_eval_samples_with_the_step_count_and_guidance_of_a_run():
    import inspect

    from videop2p.config import RunConfig
    from videop2p.toy.quality import evaluate_model

    run = RunConfig()
    help_text = runner.invoke(app, ["toy", "eval", "--help"], terminal_width=200).output
    help_text = " ".join(help_text.replace("│", " ").split())  # the box's borders aside
    assert f"(those of videop2p run). [default: {run.inversion.steps}]" in help_text
    assert f"(that of videop2p run). [default: {run.edit.guidance}]" in help_text
    params = inspect.signature(evaluate_model).parameters
    assert (params["steps"].default, params["guidance"].default) == (run.inversion.steps, run.edit.guidance)


def test_eval_help_names_every_method_and_says_the_budgets_the_evaluation_runs_with():
    """`videop2p eval --help` read its defaults from no settings (30 cases, 200 tuning steps written in its text)
    and did not name the methods `--method` takes."""
    from videop2p import evaluation
    from videop2p.config import QUICK_CASES, SUITE_CASES, EvalSettings, Method, quick_settings

    assert (evaluation.EvalSettings, evaluation.Method) == (EvalSettings, Method)  # the ones evaluate() reads
    full, quick = EvalSettings(), quick_settings()
    help_text = runner.invoke(app, ["eval", "--help"], terminal_width=300).output
    help_text = " ".join(help_text.replace("│", " ").split())  # the box's borders aside
    assert f"Only these methods (repeatable): {', '.join(m.value for m in Method)}." in help_text
    assert f"Number of cases (default {SUITE_CASES}, quick {QUICK_CASES})." in help_text
    assert f"Tuning steps per clip (default {full.tune_steps}, quick {quick.tune_steps})." in help_text
    assert f"DDIM steps (default {full.steps}, quick {quick.steps})." in help_text
    assert f"{QUICK_CASES} cases of {quick.frames} frames" in help_text


def test_a_quick_preset_run_and_bad_presets_or_frame_counts(tiny_dir, clip_dir, tmp_path, monkeypatch):
    from videop2p.config import PRESET_MARGINS, Preset

    args = _args(tiny_dir, clip_dir, tmp_path / "o", tmp_path / "ws", "--preset", "quick", "--tune-frames", "2")
    args.remove("--quiet")
    result = _invoke(args)
    assert f"preset quick: {PRESET_MARGINS[Preset.QUICK]}" in " ".join(result.output.split())  # its measured margin
    resolved = yaml.safe_load((tmp_path / "o" / "config.yaml").read_text())
    assert resolved["tune"]["frames"] == 2 and resolved["inversion"]["method"] == "fast"
    result = runner.invoke(app, _args(tiny_dir, clip_dir, tmp_path / "b", tmp_path / "ws2", "--preset", "fastest"))
    assert_one_line_error(result, "--preset 'fastest'", "official, quick")
    bad = _args(tiny_dir, clip_dir, tmp_path / "b", tmp_path / "ws2", "--preset", "quick", "--steps", "0")
    bad.remove("--quiet")  # the preset's margin is said once the settings are good, not before their error
    assert_one_line_error(runner.invoke(app, bad), "--steps 0")
    result = runner.invoke(app, _args(tiny_dir, clip_dir, tmp_path / "b", tmp_path / "ws2", "--tune-frames", "1"))
    assert_one_line_error(result, "--tune-frames 1", ">= 2")
    _invoke(_args(tiny_dir, clip_dir, tmp_path / "all", tmp_path / "ws3", "--null-text-frames", "0"))  # every frame
    assert yaml.safe_load((tmp_path / "all" / "config.yaml").read_text())["inversion"]["frames"] is None
    bad = tmp_path / "bad.yaml"
    bad.write_text("tune: {gradient_checkpointing: sometimes}\n")
    result = runner.invoke(app, [*_args(tiny_dir, clip_dir, tmp_path / "b", tmp_path / "ws2"), "--config", str(bad)])
    assert_one_line_error(result, "bad.yaml: tune.gradient_checkpointing 'sometimes'", "true or false")
    bad.write_text("edit: {control_frame_attention: sometimes}\n")
    result = runner.invoke(app, [*_args(tiny_dir, clip_dir, tmp_path / "b", tmp_path / "ws2"), "--config", str(bad)])
    assert_one_line_error(result, "bad.yaml: edit.control_frame_attention 'sometimes'", "true or false")
    seen = []

    def settings_only(comps, n, out, settings, **kw):  # what the suite is given, not run
        seen.append((settings.tune_frames, settings.null_text_frames))
        raise RuntimeError("not run")

    monkeypatch.setattr("videop2p.evaluation.evaluate", settings_only)
    for flag in ("--tune-frames", "--null-text-frames"):  # 0: every frame, as a run's flag
        runner.invoke(app, ["eval", "--quick", "--out", str(tmp_path / "ev"), flag, "0"])
    assert seen == [(None, None), (None, None)]
    monkeypatch.undo()
    result = runner.invoke(app, ["eval", "--out", str(tmp_path / "b"), "--null-text-frames", "1.5"])
    assert result.exit_code != 0 and not (tmp_path / "b").exists()
    result = runner.invoke(app, ["eval", "--out", str(tmp_path / "b"), "--null-text-frames", "1"])
    assert_one_line_error(result, "--null-text-frames 1", ">= 2")
    assert not (tmp_path / "b").exists() and not (tmp_path / "ws2").exists()


@pytest.mark.parametrize(
    ("flags", "needles"),
    [
        (["--tune-steps", "-3"], ("--tune-steps -3", "expected a whole number")),
        (["--steps", "0"], ("--steps 0", "expected a whole number")),
        (["--device", "tpu"], ("device 'tpu' is not available here", "valid: cpu")),
        (["--dtype", "float64"], ("--dtype 'float64'", "float32, float16, bfloat16")),
        (["--steps", "1000"], ("steps 1000 is more than this model's scheduler allows: at most 999",)),
    ],
)
def test_demo_refuses_bad_budgets_and_devices_before_any_work(tmp_path, flags, needles):
    result = runner.invoke(app, ["demo", "--out", str(tmp_path / "demo"), *flags])
    assert_one_line_error(result, *needles)
    assert not (tmp_path / "demo").exists()


def test_demo_runs_in_half_precision(tmp_path):
    out = tmp_path / "demo"
    result = runner.invoke(app, ["demo", "--out", str(out), "--tune-steps", "1", "--steps", "2", "--dtype", "bfloat16"])
    assert result.exit_code == 0, result.output
    for edit in ("swap", "refine", "reweight"):
        resolved = yaml.safe_load((out / edit / "config.yaml").read_text())
        assert resolved["dtype"] == "bfloat16" and (out / edit / "side_by_side.mp4").stat().st_size > 0
    (key,) = (out / "workspace").glob("clip-*/key.json")  # tuned by the half-precision model: one clip for all three
    assert json.loads(key.read_text())["tune"]["dtype"] == "bfloat16"


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--seeds", "0"], "--seeds 0"),
        (["--steps", "0"], "--steps 0"),
        (["--guidance", "nan"], "--guidance nan"),
        (["--device", "tpu"], "device 'tpu' is not available here"),
        (["--model", "/nonexistent/model"], "Model folder '/nonexistent/model' does not exist"),
        (["--model", "{model}"], "vae holds no weights"),
        (["--model", "{bare}"], "has no model_index.json"),
        (["--steps", "1000"], "steps 1000 is more than this model's scheduler allows: at most 999"),
        (["--seeds", "9" * 20], "--seeds 99999999999999999999 is not valid; expected a whole number from 1 to"),
        (["--model", "{video}"], "is not an image model: its unet is tuneavideo's UNet3DConditionModel"),  # exported
        (["--model", "{broken}"], "model_index.json is not valid JSON"),
    ],
)
def test_toy_eval_refuses_bad_settings_before_loading(flags, needle, tiny_dir, tmp_path):
    import shutil

    model, bare, video, broken = (tmp_path / name for name in ("model", "bare", "video", "broken"))
    shutil.copytree(tiny_dir, model)
    for weights in (model / "vae").glob("*.safetensors"):
        weights.unlink()
    shutil.copytree(tiny_dir, bare)
    (bare / "model_index.json").unlink()
    shutil.copytree(tiny_dir, video)  # as `videop2p export --format tune-a-video` names its UNet
    index = json.loads((video / "model_index.json").read_text())
    index["unet"] = ["tuneavideo", "UNet3DConditionModel"]
    (video / "model_index.json").write_text(json.dumps(index))
    shutil.copytree(tiny_dir, broken)
    (broken / "model_index.json").write_text("{bad")
    flags = [f.format(model=model, bare=bare, video=video, broken=broken) for f in flags]
    result = runner.invoke(app, ["toy", "eval", *flags, "--json", str(tmp_path / "r.json")])
    assert_one_line_error(result, needle)
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--cases", "0"], "--cases 0"),
        (["--cases", "9" * 20], "from 1 to 2147483647"),  # a suite that would never end
        (["--tune-steps", "-1"], "--tune-steps -1"),
        (["--steps", "0"], "--steps 0"),
    ],
)
def test_eval_refuses_bad_budgets_before_any_case(flags, needle, tmp_path):
    result = runner.invoke(app, ["eval", "--out", str(tmp_path / "ev"), *flags])
    assert_one_line_error(result, needle, "expected a whole number")
    assert not (tmp_path / "ev").exists()


def test_eval_refuses_more_steps_than_the_models_scheduler_takes_before_any_case(tmp_path):
    result = runner.invoke(app, ["eval", "--out", str(tmp_path / "ev"), "--steps", "1000", "--cases", "1"])
    assert_one_line_error(result, "steps 1000 is more than this model's scheduler allows: at most 999")
    assert not (tmp_path / "ev").exists()


@pytest.mark.parametrize("command", [["eval", "--quick", "--out", "{tmp}/ev"], ["toy", "eval", "--seeds", "1"]])
def test_a_json_path_that_cannot_be_written_is_refused_before_any_work(command, tmp_path):
    (tmp_path / "afile").write_text("x")
    command = [c.format(tmp=tmp_path) for c in command]
    for json_path, needle in (
        (tmp_path / "afile" / "r.json", "lies under"),
        (tmp_path, "is a folder; give a file name"),
    ):
        result = runner.invoke(app, [*command, "--json", str(json_path)])
        assert_one_line_error(result, f"--json '{json_path}'", needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


@pytest.mark.parametrize("command", [["eval", "--quick"], ["info"], ["ui"]])
def test_a_missing_or_broken_model_is_one_line_for_every_command(command, tmp_path):
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not weights")
    cases = [(str(tmp_path / "absent"), "does not exist")]
    if command != ["ui"]:  # the editor reads a model file at its first edit; it checks only that it is there
        cases.append((str(broken), "broken.safetensors"))
    for model, needle in cases:
        out = ["--out", str(tmp_path / "ev")] if command[0] == "eval" else []
        result = runner.invoke(app, [*command, "--model", model, *out])
        assert "Traceback" not in result.output and needle in result.output, result.output
        if command == ["info"]:  # info reports the model and carries on
            assert result.exit_code == 0 and "not available: " in result.output
        else:
            assert_one_line_error(result, needle)


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--port", "99999"], "--port 99999"),
        (["--device", "tpu"], "'tpu'"),
        (["--dtype", "float64"], "--dtype 'float64'"),
    ],
)
def test_ui_refuses_bad_settings_before_starting(flags, needle, tmp_path):
    assert_one_line_error(runner.invoke(app, ["ui", "--root", str(tmp_path / "ui"), *flags]), needle)
    assert not (tmp_path / "ui").exists()


def test_ui_refuses_a_host_a_port_or_a_root_it_cannot_use_before_loading_anything(tmp_path):
    import socket

    ui = ["ui", "--root", str(tmp_path / "ui")]
    result = runner.invoke(app, [*ui, "--host", "not..a..host"])
    assert_one_line_error(result, "--host 'not..a..host' is not a name or address to listen on", "127.0.0.1")
    with socket.socket() as taken:  # another program listens on the port
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(app, [*ui, "--port", str(port)])
    assert_one_line_error(result, f"cannot listen on 127.0.0.1:{port}", "give another --port")
    assert not (tmp_path / "ui").exists()
    result = runner.invoke(app, ["ui", "--root", "/proc/videop2p-ui"])  # /proc takes no new folders
    assert_one_line_error(result, "--root '/proc/videop2p-ui' cannot be written", "give a folder you can write in")


def test_ui_without_gradio_names_the_extra_to_install_before_anything_is_made(tmp_path, monkeypatch):
    """`pip install videop2p` leaves out the editor's extra: `videop2p ui` was a traceback from inside the
    editor's start, after its folder was made; a caller of `ui.launch` is told the same."""
    from videop2p.ui import launch

    monkeypatch.setitem(sys.modules, "gradio", None)  # as if not installed: importing it raises ImportError
    result = runner.invoke(app, ["ui", "--root", str(tmp_path / "ui")])
    assert_one_line_error(result, "the web UI needs gradio", "pip install 'videop2p[ui]'")
    assert not (tmp_path / "ui").exists()
    with pytest.raises(ImportError, match=r"needs gradio .*pip install 'videop2p\[ui\]'"):
        launch(root=tmp_path / "ui")
    assert not (tmp_path / "ui").exists()


def test_the_editor_serves_where_its_settings_say_from_the_command_line_and_from_python():
    """`videop2p ui` and `ui.launch` wrote the editor's host, port and folder each for itself."""
    import inspect

    from videop2p.cli import ui
    from videop2p.config import UiSettings
    from videop2p.ui import launch

    settings = dataclasses.asdict(UiSettings())
    for command in (ui, launch):
        defaults = {k: p.default for k, p in inspect.signature(command).parameters.items() if k in settings}
        assert {k: str(v) for k, v in defaults.items()} == {k: str(v) for k, v in settings.items()}
    help_text = " ".join(runner.invoke(app, ["ui", "--help"], terminal_width=200).output.split())
    assert all(f"[default: {value}]" in help_text for value in settings.values())


def test_an_output_or_workspace_path_that_is_a_file_is_refused_before_any_work(tiny_dir, clip_dir, tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("mine")
    result = runner.invoke(app, _args(tiny_dir, clip_dir, a_file, tmp_path / "ws"))
    assert_one_line_error(result, "out", "is a file, not a folder")
    assert not (tmp_path / "ws").exists() or not list((tmp_path / "ws").rglob("*.safetensors"))
    result = runner.invoke(app, _args(tiny_dir, clip_dir, tmp_path / "o", a_file))
    assert_one_line_error(result, "workspace", "is a file, not a folder")
    assert a_file.read_text() == "mine" and not (tmp_path / "o").exists()


def test_an_output_or_workspace_folder_that_cannot_be_written_is_refused_before_any_work(tiny_dir, clip_dir, tmp_path):
    # /proc takes no new folders: a read-only disk or a folder without permission reads the same
    result = runner.invoke(app, _args(tiny_dir, clip_dir, "/proc/videop2p-out", tmp_path / "ws"))
    assert_one_line_error(result, "out '/proc/videop2p-out' cannot be written (", "give a folder you can write in")
    assert not (tmp_path / "ws").exists()  # refused before tuning, not after the edit
    result = runner.invoke(app, _args(tiny_dir, clip_dir, tmp_path / "o", "/proc/videop2p-ws"))
    assert_one_line_error(result, "workspace '/proc/videop2p-ws' cannot be written (")
    assert not (tmp_path / "o").exists() and not list(tmp_path.glob(".videop2p-probe-*"))
    # without --workspace, the one beside --out: the message named that workspace, which nobody gave
    alone = _args(tiny_dir, clip_dir, "/proc/videop2p-out", "-")
    alone = alone[: alone.index("--workspace")] + alone[alone.index("--workspace") + 2 :]
    assert_one_line_error(runner.invoke(app, alone), "--out '/proc/videop2p-out' cannot be written (")
    export = ["export", str(tmp_path), "/proc/videop2p-export"]  # named before the entry and the model are read
    assert_one_line_error(runner.invoke(app, export), "OUT '/proc/videop2p-export' cannot be written (", "the export")


def test_a_file_written_at_the_end_that_cannot_be_written_is_refused_before_any_work(tmp_path):
    """`eval --json /proc/x.json` ran the whole suite, then ended in a FileNotFoundError's traceback."""
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text(yaml.safe_dump({"jobs": [{"video": str(tmp_path), "source": SRC, "targets": [TGT]}]}))
    for argv in (
        ["eval", "--quick", "--out", str(tmp_path / "eval"), "--json", "/proc/videop2p-eval.json"],
        ["toy", "eval", "--json", "/proc/videop2p-toy/eval.json"],
        ["batch", str(jobs), "--manifest", "/proc/videop2p-batch.json"],
    ):
        flag = next(a for a in argv if a in ("--json", "--manifest"))
        said = f"{flag} {argv[argv.index(flag) + 1]!r} cannot be written ("
        assert_one_line_error(runner.invoke(app, argv), said, "give a path in a folder you can write in")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jobs.yaml"]


def test_every_command_refuses_a_folder_that_is_or_lies_under_a_file_before_any_work(tiny_dir, clip_dir, tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("mine")
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text(yaml.safe_dump({"jobs": [{"video": str(clip_dir), "source": SRC, "targets": [TGT]}]}))
    for folder, shown in ((a_file, "is a file, not a folder"), (a_file / "sub", f"lies under {str(a_file)!r}, a file")):
        commands = {
            "--out": [["demo", "--out", str(folder)], ["eval", "--cases", "1", "--out", str(folder)]],
            "OUT_DIR": [["toy", "render", str(folder)], ["toy", "train", str(folder)], ["toy", "ground", str(folder)]],
            "--root": [["ui", "--root", str(folder)]],
            "out": [["batch", str(jobs), "--out", str(folder)]],
            "workspace": [["batch", str(jobs), "--out", str(tmp_path / "b"), "--workspace", str(folder)]],
        }
        commands["--out"].append(_args(tiny_dir, clip_dir, folder, tmp_path / "ws"))
        for flag, argvs in commands.items():
            for argv in argvs:
                assert_one_line_error(runner.invoke(app, argv), f"{flag} ", shown, "give a folder")
    assert a_file.read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "jobs.yaml"]


def test_workspace_list_and_remove_show_and_free_exactly_what_they_name(tiny_dir, clip_dir, tmp_path):
    from videop2p.cli import _cut  # the clip's path, cut to the column's width where it is longer (any temp folder)
    from videop2p.store.workspace import Workspace

    ws = tmp_path / "ws"
    _invoke(_args(tiny_dir, clip_dir, tmp_path / "a", ws))
    _invoke(_args(tiny_dir, clip_dir, tmp_path / "b", ws, "--lr", "1e-4", "--seed", "7"))  # another clip entry
    clips = Workspace(ws).clips()
    first = next(c for c in clips if c.identity["tune"]["lr"] != 1e-4)  # the default run's (it runs again below)
    second = next(c for c in clips if c is not first)
    listing = _invoke(["workspace", "list", str(ws)]).output
    assert first.key in listing and second.key in listing and SRC in listing and "2 clip(s)" in listing
    assert _invoke(["workspace", "list", "--workspace", str(ws)]).output == listing  # as `run` names it
    steps = first.identity["tune"]["steps"]
    rows = {c.key: next(line for line in listing.splitlines() if line.startswith(c.key)) for c in (first, second)}
    assert f"{steps} lr 3e-05" in rows[first.key] and f"{steps} lr 0.0001" in rows[second.key]  # told apart
    assert listing.splitlines()[0].endswith("last used         differs in")  # and by the settings not shown
    header = listing.splitlines()[0]  # each column as wide as its widest cell: the model's name here
    assert header.index("video") == len(first.key) + 2 + max(len("model"), len(tiny_dir.name)) + 2
    for row in rows.values():  # numbers right-aligned under their header
        assert row[: header.index("edits") + len("edits")].endswith(" 1") and row[header.index("MiB") - 1] == " "
    assert rows[first.key].endswith("  tune.seed 33")
    assert rows[second.key].endswith("  tune.seed 7") and "lr" not in rows[second.key].split("  ")[-1]
    for c in (first, second):  # the names the runs knew the model and the clip by (the clip's from its end)
        assert c.seen == {"model": f"{tiny_dir.name}@{c.identity['model']}", "clip": str(clip_dir.resolve())}
        assert rows[c.key].split()[1:3] == [tiny_dir.name, _cut(str(clip_dir.resolve()), 32, left=True)]
    records = [json.loads(line) for line in _invoke(["workspace", "list", str(ws), "--json"]).output.splitlines()]
    assert [r["key"] for r in records] == [c.key for c in clips]  # a line each, in the table's order, for scripts
    for r, c in zip(records, clips, strict=True):
        assert (r["identity"], r["model"], r["clip"], r["bytes"]) == (c.identity, *c.seen.values(), c.size_bytes)
        assert (r["tuned"], r["inversions"], r["edits"], r["unfinished"]) == (True, 1, 1, 0)
    assert {r["key"]: r["differs_in"] for r in records} == {first.key: {"tune.seed": "33", "tune.lr": "3e-05"},
                                                             second.key: {"tune.seed": "7", "tune.lr": "0.0001"}}  # fmt: skip
    history = ws / "events.jsonl"  # a history written before the names were kept: the model's fingerprint
    kept = history.read_text()
    history.write_text("".join(line.replace(', "model"', ', "was"') + "\n" for line in kept.splitlines()))
    old = next(
        line for line in _invoke(["workspace", "list", str(ws)]).output.splitlines() if line.startswith(first.key)
    )
    assert old.split()[1:3] == [first.identity["model"], _cut(str(clip_dir.resolve()), 32, left=True)]
    history.write_text(kept)
    assert all(c.tuned and c.inversions == 1 and c.edits == 1 and c.unfinished == 0 for c in (first, second))
    stopped = first.folder / "inversions" / "inv-0.steps"  # what a stopped inversion leaves
    stopped.mkdir()
    (stopped / "ddim-00000.safetensors").write_bytes(b"x" * 1000)
    assert {c.key: c.unfinished for c in Workspace(ws).clips()} == {first.key: 1, second.key: 0}
    dry = _invoke(["workspace", "remove", "--workspace", str(ws), "--unfinished", "--dry-run"]).output
    assert f"would remove the kept states of {first.key}" in dry and second.key not in dry and stopped.exists()
    assert dry.splitlines()[-1] == f"would free {1000 / 2**20:.1f} MiB"  # what the stopped state holds
    dry = _invoke(["workspace", "remove", str(ws), "--clip", second.key, "--dry-run"]).output
    assert dry.splitlines()[-1] == f"would free {second.size_bytes / 2**20:.1f} MiB" and second.folder.is_dir()
    _invoke(["workspace", "remove", str(ws), "--unfinished"])
    assert not stopped.exists() and (first.folder / "tune.safetensors").is_file()
    assert "nothing to remove" in _invoke(["workspace", "remove", str(ws), "--older-than", "1"]).output
    removed = _invoke(["workspace", "remove", str(ws), "--clip", first.key[:6]]).output
    assert f"removed clip {first.key}" in removed and "freed" in removed
    assert [c.key for c in Workspace(ws).clips()] == [second.key]
    again = _manifest_of_run(tiny_dir, clip_dir, tmp_path / "c", ws)  # the workspace still works: tuned anew
    assert again["tune"]["action"] == "computed"
    for args, needles in (
        (["remove", str(ws)], ("say what to remove",)),
        (["remove", str(ws), "--clip", "zz"], ("'zz' matches no clip", second.key)),
        (["remove", str(ws), "--clip", first.key, "--clip", ""], ("--clip '' names no clip",)),  # '' starts every key
        (["remove", str(ws), "--older-than", "-1"], ("--older-than -1",)),
        (["list", str(tmp_path / "nowhere")], ("no workspace at", "does not exist")),
        (["list", str(tmp_path / "a" / "outputs.json")], ("no workspace at", "it is a file")),
        (["remove", str(tmp_path / "a"), "--older-than", "0"], ("is not a videop2p workspace",)),
        (["list", str(ws), "--workspace", str(tmp_path / "a")], ("give the workspace once: ROOT", "differ")),
    ):
        assert_one_line_error(runner.invoke(app, ["workspace", *args]), *needles)
    assert (tmp_path / "a" / "outputs.json").is_file() and len(Workspace(ws).clips()) == 2


def test_a_workspace_not_where_it_is_looked_for_is_named_where_it_is(tmp_path, monkeypatch):
    """`videop2p workspace list` (or `export KEY`) after `run ... --out outputs/blue`, whose workspace is beside the
    output folder, said only that none was in the current folder: it names those below it."""
    monkeypatch.chdir(tmp_path)
    for kept in ("outputs", "runs/a"):  # a history is a workspace; an empty folder of the name is not
        (tmp_path / kept / ".videop2p-workspace").mkdir(parents=True)
        (tmp_path / kept / ".videop2p-workspace" / "events.jsonl").write_text("{}\n")
    (tmp_path / "empty" / ".videop2p-workspace").mkdir(parents=True)
    found = "; found: outputs/.videop2p-workspace, runs/a/.videop2p-workspace."
    assert_one_line_error(runner.invoke(app, ["workspace", "list"]), "no workspace at .videop2p-workspace", found)
    assert_one_line_error(runner.invoke(app, ["export", "1fb8", "x"]), "no workspace is at", found)
    said = runner.invoke(app, ["workspace", "list", "outputs"])  # the output folder given: the one beside it
    assert_one_line_error(said, "outputs is not a videop2p workspace", found)
    (tmp_path / "runs" / "a" / ".videop2p-workspace" / "events.jsonl").unlink()
    said = runner.invoke(app, ["workspace", "list"]).output.strip()
    assert said.endswith("output folder); found: outputs/.videop2p-workspace."), said


def _manifest_of_run(tiny_dir, clip_dir, out, ws):
    _invoke(_args(tiny_dir, clip_dir, out, ws))
    return _manifest(out)["stages"]


@pytest.mark.parametrize(
    "error",
    [
        "CUDA out of memory. Tried to allocate 20.00 GiB. GPU 0 has a total capacity of 79.15 GiB",
        "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: you tried to "
        "allocate 68719476736 bytes.",
    ],
)
def test_running_out_of_memory_is_one_line_naming_lighter_settings(tiny_dir, clip_dir, tmp_path, monkeypatch, error):
    import torch

    from videop2p.pipeline import VideoP2P

    def out_of_memory(self, cfg):
        raise (torch.OutOfMemoryError if "CUDA" in error else RuntimeError)(error + "\nmore of torch's text")

    monkeypatch.setattr(VideoP2P, "run", out_of_memory)  # what a clip too large for the device does
    result = runner.invoke(app, _args(tiny_dir, clip_dir, tmp_path / "o", tmp_path / "ws"))
    # on the CPU, half the memory without float16's slowness there (models.loading.lighter_dtype)
    assert_one_line_error(result, "out of memory on cpu", error.split(". ")[0], "--dtype bfloat16,", "--window 8")


def test_other_runtime_errors_are_not_called_out_of_memory(tiny_dir, clip_dir, tmp_path, monkeypatch):
    from videop2p.pipeline import VideoP2P

    def broken(self, cfg):
        raise RuntimeError("a bug")

    monkeypatch.setattr(VideoP2P, "run", broken)
    result = runner.invoke(app, _args(tiny_dir, clip_dir, tmp_path / "o", tmp_path / "ws"))
    assert result.exit_code == 1 and isinstance(result.exception, RuntimeError)


def test_a_full_disk_is_one_line(tiny_dir, clip_dir, tmp_path, monkeypatch):
    import errno

    from videop2p.pipeline import VideoP2P

    def disk_full(self, cfg):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "o" / "edit_1.mp4"))

    monkeypatch.setattr(VideoP2P, "run", disk_full)
    result = runner.invoke(app, _args(tiny_dir, clip_dir, tmp_path / "o", tmp_path / "ws"))
    assert_one_line_error(result, "could not read or write a file", "No space left on device", "edit_1.mp4")


@pytest.mark.parametrize(
    ("module", "function", "args", "says"),
    [
        ("videop2p.demo", "run_demo", ["demo", "--out", "{tmp}/d"], "resumes it from its workspace"),
        ("videop2p.evaluation", "evaluate", ["eval", "--out", "{tmp}/e", "--cases", "1"], "reads them back"),
        ("videop2p.toy.train", "train_toy_model", ["toy", "train", "{tmp}/t"], "from its checkpoint in"),
        ("videop2p.batch", "run_batch", ["batch", "{tmp}/jobs.yaml"], "skips every finished job"),
    ],
)
def test_ctrl_c_in_a_long_command_says_how_the_same_command_goes_on(
    clip_dir, tmp_path, monkeypatch, module, function, args, says
):
    import importlib

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(importlib.import_module(module), function, interrupted)
    jobs = {
        "out": str(tmp_path / "b"),
        "jobs": [{"name": "a", "video": str(clip_dir), "source": SRC, "targets": [TGT]}],
    }
    (tmp_path / "jobs.yaml").write_text(yaml.safe_dump(jobs))
    result = runner.invoke(app, [a.format(tmp=tmp_path) for a in args])
    assert result.exit_code == 130 and "Traceback" not in result.output, result.output
    assert result.output.strip().splitlines()[-1].startswith("interrupted: ") and says in result.output


def test_the_authors_per_word_windows_read_as_prompt_to_prompt_reads_them():
    from videop2p.config import from_official

    p2p = {"prompt": SRC, "prompts": [SRC, TGT], "is_word_swap": True}
    words = from_official(None, {**p2p, "cross_replace_steps": {"default_": 0.8, "blue": 0.4}}).edit
    assert words.cross_replace == 0.8 and words.cross_replace_words == {"blue": 0.4}
    no_default = from_official(None, {**p2p, "cross_replace_steps": {"blue": [0.1, 0.5]}}).edit
    assert tuple(no_default.cross_replace) == (0.0, 1.0) and no_default.cross_replace_words == {"blue": [0.1, 0.5]}
    assert from_official(None, {**p2p, "cross_replace_steps": 0.3}).edit.cross_replace == 0.3
    assert from_official(None, p2p).edit.cross_replace == 0.2  # run_videop2p.py's own default


def test_the_authors_tuning_optimiser_keys_are_read_or_held_to_their_defaults():
    """run_tuning.py clips gradients to max_grad_norm (read); its AdamW and schedule keys are what the
    tuning here always uses at their defaults (accepted, even as YAML text), another value is refused."""
    from videop2p.config import ConfigError, TuneConfig, from_official

    tune = {"train_data": {"prompt": SRC}}
    assert from_official(tune, None).tune.max_grad_norm == TuneConfig().max_grad_norm == 1.0
    assert from_official({**tune, "max_grad_norm": "0.5"}, None).tune.max_grad_norm == 0.5
    defaults = {"adam_epsilon": "1e-08", "adam_beta2": 0.999, "scale_lr": False, "lr_scheduler": "constant"}
    assert from_official({**tune, **defaults, "lr_warmup_steps": 10}, None).tune == from_official(tune, None).tune
    with pytest.raises(ConfigError, match="train_batch_size 2 is not supported; the tuning here uses 1"):
        from_official({**tune, "train_batch_size": 2}, None)


def test_an_inpainting_model_is_refused_in_one_line_before_any_work(clip_dir, tmp_path):
    from videop2p.models.loading import save_pretrained_folder
    from videop2p.testing import dummy_components

    folder = save_pretrained_folder(dummy_components(unet_overrides={"in_channels": 9}), tmp_path / "inpaint")
    result = runner.invoke(app, _args(folder, clip_dir, tmp_path / "o", tmp_path / "ws"))
    assert_one_line_error(result, "inpaint: its UNet takes 9 input channels", "text-to-image Stable Diffusion")
    assert not (tmp_path / "o").exists() and not (tmp_path / "ws").exists()


def test_the_clips_own_folder_of_frames_is_refused_as_the_output_folder(tiny_dir, clip_dir, tmp_path):
    clip = shutil.copytree(clip_dir, tmp_path / "frames")
    before = sorted(p.name for p in clip.iterdir())
    result = runner.invoke(app, _args(tiny_dir, clip, clip, tmp_path / "ws"))
    assert_one_line_error(result, f"out '{clip}' is the clip's own folder of frames", "give another folder")
    assert sorted(p.name for p in clip.iterdir()) == before and not (tmp_path / "ws").exists()


def test_an_original_checkpoint_runs_with_model_config_and_is_the_same_model_as_its_folder(
    tiny_dir, clip_dir, tmp_path, monkeypatch
):
    from ldm_checkpoint import ldm_state_dict
    from safetensors.torch import save_file

    from videop2p.models.loading import load_components

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    original = tmp_path / "original.safetensors"
    save_file(ldm_state_dict(load_components(tiny_dir)), original)
    ws = tmp_path / "ws"
    _invoke(_args(tiny_dir, clip_dir, tmp_path / "folder", ws))
    args = _args(original, clip_dir, tmp_path / "file", ws, "--model-config", str(tiny_dir))
    _invoke(args)
    stages = _manifest(tmp_path / "file")["stages"]
    assert stages["tune"]["action"] == stages["invert"]["action"] == "reused"  # the same weights, the same key
    bad = runner.invoke(app, [*_args(tiny_dir, clip_dir, tmp_path / "bad", ws), "--model-config", str(tiny_dir)])
    assert_one_line_error(bad, "--model-config", "describes an original single-file checkpoint")
    assert not (tmp_path / "bad").exists()


def test_a_configs_relative_paths_are_read_from_the_current_folder_or_else_beside_the_config(
    tiny_dir, clip_dir, tmp_path, monkeypatch
):
    from videop2p.config import load_config

    project = tmp_path / "project"
    shutil.copytree(clip_dir, project / "clip")
    (project / "run.yaml").write_text(f"source: {SRC}\ntargets: [{TGT}]\nvideo: clip\nmodel: weights\n")
    shutil.copytree(tiny_dir, project / "weights")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_config([project / "run.yaml"])
    assert (cfg.video.path, cfg.model) == (str(project / "clip"), str(project / "weights"))
    (elsewhere / "clip").mkdir()  # the current folder has one too: it wins, as the authors' scripts read paths
    assert load_config([project / "run.yaml"]).video.path == "clip"
    (elsewhere / "clip").rmdir()
    monkeypatch.setenv("HOME", str(tmp_path))  # `~/` is the home folder, as a shell reads it
    (project / "home.yaml").write_text(
        f"source: {SRC}\ntargets: [{TGT}]\nvideo: ~/project/clip\nvae: ~/project/weights\n"
    )
    with open(project / "home.yaml", "a") as f:
        f.write("out: ~/res\nworkspace: ~/ws\n")  # folders to write too, not a folder named ~
    cfg = load_config([project / "home.yaml"])
    assert (cfg.video.path, cfg.vae) == (str(project / "clip"), str(project / "weights"))
    assert (cfg.out, cfg.workspace) == (str(tmp_path / "res"), str(tmp_path / "ws"))
    flags = ["--frames", "4", "--tune-steps", "1", "--steps", "2", "--inversion", "fast"]
    result = runner.invoke(app, ["run", "--config", str(project / "run.yaml"), *flags])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    "args, needles",
    [
        (
            ["run", "clip.mp4", "--seed", "1.5"],
            ["--seed '1.5' is not valid; expected a whole number", "videop2p run --help"],
        ),
        (["run", "--guidance=abc"], ["--guidance 'abc' is not valid; expected a number"]),
        (["toy", "render", "--size", "big"], ["--size 'big' is not valid", "videop2p toy render --help"]),
        (["run", "--frobnicate"], ["No such option: --frobnicate"]),
        (["runn"], ["No such command 'runn'", "Did you mean 'run'?"]),
        (  # too few words at the end of the line: said as before a flag, with the command's help
            ["run", "--blend", "rabbit"],
            ["--blend takes 2 words; it was given only 'rabbit' at the end of the command.", "videop2p run --help"],
        ),
        (["edit", "c.mp4", "--subtract"], ["--subtract takes 2 words; it was given none at the end", "edit --help"]),
        (["toy", "render", "--frames"], ["Option '--frames' requires an argument.", "videop2p toy render --help"]),
        (  # a flag taken as the missing word, then its value an extra argument
            ["run", "clip.mp4", "--blend", "rabbit", "--out", "o1"],
            ["--blend takes 2 words; it was given only 'rabbit' before --out.", "videop2p run --help"],
        ),
        (
            ["edit", "clip.mp4", "--source", "a b", "--subtract", "--blend", "a", "b"],
            ["--subtract takes 2 words; it was given none before --blend.", "videop2p edit --help"],
        ),
        (  # a flag taken as both words
            ["run", "clip.mp4", "--source", "a b", "--target", "a c", "--blend", "--out", "o1"],
            ["--blend ['--out', 'o1'] is not valid: --out is a flag, not a word; give two words."],
        ),
        (["edit", "--target", "a c"], ['missing source prompt: give --source "a sentence that describes the clip"']),
        (["edit", "--source", "", "--target", "a c"], ["missing source prompt: give --source", "videop2p edit --help"]),
        (
            ["edit", "--source", "  ", "--target", "a c"],
            ["missing source prompt: give --source", "videop2p edit --help"],
        ),
        (["run", "--source", "a b", "--target", "a c"], ["missing video: give the clip's path", "videop2p run --help"]),
        (["run", "clip.mp4", "--source", "a b"], ['missing target prompt: give --target "the source prompt with']),
        (["edit", "clip.mp4", "--source", "a b"], ["missing target prompt: give --target", "videop2p edit --help"]),
        (["batch"], ["Missing argument", "videop2p batch --help"]),
        (["demo", "--out", ""], ["--out '' names no folder; give one (. for the current folder)."]),  # not here
        (["ui", "--root= "], ["--root ' ' names no folder"]),
        (["run", "clip.mp4", "--source", "a b", "--target", "a c", "--workspace", ""], ["--workspace '' names no"]),
        (  # a word pair given once per target, and in the comma-separated form too
            ["run", "clip.mp4", "--source", "a b", "--blend", "a", "b", "--blend", "a,b", "c,d"],
            ["--blend a b --blend a,b c,d: each repeated --blend is one target's two words", "not both"],
        ),
        # an option given twice: the last value is the one read, and the one named
        (["toy", "render", "o", "--frames", "2", "--frames", "abc"], ["--frames 'abc' is not valid"]),
        (["run", "clip.mp4", "--seed", "x", "--seed=1.5"], ["--seed '1.5' is not valid"]),
        (["demo", "--out", "o", "--out", ""], ["--out '' names no folder"]),
        (["run", "--lora", "a.safetensors", "--lora", "b.safetensors=x", "--seed", "y"], ["--seed 'y' is not valid"]),
        # a path flag given an empty value, which would read as the current folder
        (["eval", "--json", ""], ["--json '' names no file; give one."]),
        (["run", "--config", "a.yaml", "--config", " "], ["--config ' ' names no file"]),
        (["toy", "ground", "g", "--init", ""], ["--init '' names no model folder"]),
        # an argument (each is a file or folder) given a blank value, which would read as the current folder
        (["toy", "render", "--frames", "2", ""], ["out_dir '' names no file or folder; give one (. for the current"]),
        (["export", "clip-1", " "], ["out ' ' names no file or folder"]),
        (["info", ""], ["clip '' names no file or folder"]),
        (["workspace", "remove", "--clip", "a", ""], ["root '' names no file or folder"]),
        # a path too long to look up (a part over the file system's limit, 255 bytes on the usual ones): named
        *(
            (
                args,
                [
                    f"{named} '{'n' * 28}'…'{'n' * 28}' (300 characters) names no file or folder: a name here has at "
                    "most ",
                    " bytes, and a part of it has 300; give a shorter one.",
                ],
            )
            for args, named in (
                (["run", LONG, "--source", "a b", "--target", "a c"], "video"),
                (["run", "clip.mp4", "--source", "a b", "--target", "a c", "--out", LONG], "--out"),
                (["run", "clip.mp4", "--source", "a b", "--target", "a c", "--workspace", LONG], "--workspace"),
                (["tune", "clip.mp4", "--source", "a b", "--save-tuned", LONG], "--save-tuned"),
                (["run", "clip.mp4", "--source", "a b", "--target", "a c", "--model", LONG], "--model"),
                (["edit", "clip.mp4", "--source", "a b", "--target", "a c", "--vae", LONG], "--vae"),
                (["run", "--config", LONG], "--config"),
                (["info", LONG], "clip"),
                (["workspace", "list", LONG], "root"),
                (["batch", LONG], "jobs_file"),
                (["toy", "render", LONG], "out_dir"),
                (["ui", "--root", LONG], "--root"),
            )
        ),
        # a link given for a path, which a path type reads as folders `https:` and the host: named as given
        *(
            (args, [f"{named} '{link}' is a link, not a path on this machine; give {instead}."])
            for args, named, link, instead in (
                (["run", URL, "--source", "a b", "--target", "a c"], "video", URL, "the path of a local copy"),
                (["run", "c.mp4", "--source", "a b", "--target", "a c", "--out", URL], "--out", URL, WRITE_IN),
                (["run", "c.mp4", "--workspace", "s3://bucket/ws"], "--workspace", "s3://bucket/ws", WRITE_IN),
                (["tune", "c.mp4", "--source", "a b", "--save-tuned", URL], "--save-tuned", URL, WRITE_IN),
                (["run", "--config", "c.yaml", "--config", URL], "--config", URL, "the path of a local copy"),
                (["eval", "--json", URL], "--json", URL, "a local file to write"),
                (["export", "clip-1", URL], "out", URL, WRITE_IN),
                (["batch", URL], "jobs_file", URL, "the path of a local copy"),
                (["workspace", "list", URL], "root", URL, "the path of a local copy"),
                (["ui", "--root", URL], "--root", URL, WRITE_IN),
            )
        ),
        (
            ["info", "file:///data/my%20clip.mp4"],
            ["clip 'file:///data/my%20clip.mp4' is a link, not a path; give its path, '/data/my clip.mp4'."],
        ),
        (["run", "clip.mp4", "--lora", f"0.5={LONG}"], [f"--lora '0.5={'n' * 24}'…", "(304 characters)"]),
        (["run", "clip.mp4", "--embedding", f"<cat>={LONG}"], ["--embedding '<cat>=", "a part of it has 306"]),
        (["run", "clip.mp4", "--out", "/" + f"{'n' * 200}/" * 25], ["a path here has at most", "and it has 5026"]),
    ],  # fmt: skip
)
def test_usage_errors_of_the_command_are_one_line_naming_the_value(args, needles, capsys, tmp_path, monkeypatch):
    from videop2p.cli import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(args)
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert e.value.code == 2 and out == "" and len(lines) == 1 and lines[0].startswith("error: "), err
    assert all(n in lines[0] for n in needles), lines[0]
    assert not list(tmp_path.iterdir())


def test_a_library_warning_on_a_damaged_frame_is_one_line_before_the_error(tiny_dir, clip_dir, tmp_path):
    frames = tmp_path / "frames"
    shutil.copytree(clip_dir, frames)
    damaged = sorted(frames.iterdir())[1]
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32)).save(buffer, format="TIFF")  # a TIFF named .jpg, cut inside its header
    damaged.write_bytes(buffer.getvalue()[:100])
    args = _args(tiny_dir, frames, tmp_path / "o", tmp_path / "ws")  # as a user runs it: Python's own warning display
    proc = subprocess.run([sys.executable, "-m", "videop2p.cli", *args], capture_output=True, text=True, timeout=300)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and lines[-1].startswith(f"error: Frame {damaged} is not a readable image"), lines
    assert lines[:-1] and all(line.startswith("WARNING py.warnings: UserWarning: ") for line in lines[:-1]), lines
    assert not (tmp_path / "o").exists()


def test_version_prints_the_installed_packages_version_and_nothing_else():
    from importlib.metadata import version

    from videop2p import __version__

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output == f"videop2p {__version__}\n"
    assert version("videop2p") == __version__  # the package's metadata (pyproject) and the module agree
    module = subprocess.run([sys.executable, "-m", "videop2p", "--version"], capture_output=True, text=True)
    assert module.returncode == 0 and module.stdout == f"videop2p {__version__}\n"  # where the script is off PATH
    usage = subprocess.run([sys.executable, "-m", "videop2p", "run", "--size", "0x8"], capture_output=True, text=True)
    assert usage.returncode == 2 and usage.stderr.startswith("error: --size '0x8' is not valid")


def test_info_names_the_python_and_the_versions_of_torch_and_the_model_libraries():
    """pip installs other releases on other Pythons (PyAV 19 and numpy 2.5 on 3.12 and 3.13, not on 3.11):
    `info`, what a report of a problem starts from, said torch's version alone."""
    import platform
    from importlib.metadata import version

    import torch

    lines = runner.invoke(app, ["info"]).output.splitlines()
    assert lines[1] == (
        f"python {platform.python_version()}, torch {torch.__version__}, diffusers {version('diffusers')}, "
        f"transformers {version('transformers')}, accelerate {version('accelerate')}, peft {version('peft')}"
    )
    assert lines[4].startswith(f"video: PyAV {version('av')}, FFmpeg's libavcodec ")


def test_the_command_exits_with_its_commands_code(capsys):
    from videop2p.cli import main

    for args, code in ((["--help"], 0), (["info"], 0), ([], 2), (["run", "--size", "0x8", "clip.mp4"], 2)):
        with pytest.raises(SystemExit) as e:
            main(args)
        assert e.value.code == code, args
    out, err = capsys.readouterr()
    assert "videop2p" in out and "Usage" in out  # the help, and the help a bare command prints
    assert err.strip().splitlines()[-1].startswith("error: --size '0x8' is not valid")


AUTHORS_P2P = {  # the six p2p configs of the authors' repository: prompts, blend words, eq_params, swap, windows
    "bird-forest": ("a bird flying in the forest", "children drawing of a bird flying in the forest", None),
    "car-drive": ("a car is driving on the road", "a car is driving on the railway", ("road", "railway")),
    "man-motor": (  # a forced swap of words of unequal token counts: "man" (1) for "Spider-Man" (3)
        "a man is driving a motorbike in the forest",
        "a Spider-Man is driving a motorbike in the forest",
        ("man", "Spider-Man"),
    ),
    "penguin-run": ("a penguin is running on the ice", "a crochet penguin is running on the ice", ("penguin",) * 2),
    "rabbit-jump": ("a rabbit is jumping on the grass", "a origami rabbit is jumping on the grass", ("rabbit",) * 2),
    "tiger-forest": ("a tiger is walking in the forest", "a Lego tiger is walking in the forest", ("tiger",) * 2),
}
AUTHORS_EDITS = {  # each one's eq_params (words -> values), is_word_swap, windows (None: the script's 0.2 and 0.5)
    "bird-forest": ({"children": 5, "drawing": 2}, False, (0.8, 0.7)),
    "car-drive": ({"railway": 2}, True, None),
    "man-motor": ({"Spider-Man": 4}, True, None),
    "penguin-run": ({"crochet": 4}, False, None),
    "rabbit-jump": ({"origami": 2}, False, None),
    "tiger-forest": ({"Lego": 2}, False, None),
}


@pytest.mark.parametrize("name", list(AUTHORS_P2P))
def test_each_of_the_authors_p2p_configs_makes_the_plan_their_script_makes(name, tiny, tmp_path):
    """A p2p config of each shape the authors' repository holds (their prompts, words and numbers) is read
    as their run_videop2p.py reads it: the source prompt first among `prompts`, is_word_swap forcing a swap
    (man-motor's "man" -> "Spider-Man" of unequal token counts too) or a refinement whatever the words,
    blend words, eq_params as reweighting, their windows or the script's defaults (0.2 and 0.5); and the
    plan the editor builds from it with the model's tokenizer is that edit."""
    from videop2p.config import load_config
    from videop2p.editing import build_plan

    (source, target, blend), (factors, swap, windows) = AUTHORS_P2P[name], AUTHORS_EDITS[name]
    data = {"pretrained_model_path": "./outputs/x", "image_path": "./data/x", "prompt": source, "save_name": name}
    data |= {"prompts": [source, target], "eq_params": {"words": list(factors), "values": list(factors.values())}}
    data |= {"is_word_swap": swap} | ({"blend_word": list(blend)} if blend else {})
    if windows:
        data |= {"cross_replace_steps": windows[0], "self_replace_steps": windows[1]}
    for swapped in (swap, False):  # their script refines when is_word_swap is false, whatever the words
        (tmp_path / f"{name}-p2p.yaml").write_text(yaml.safe_dump({**data, "is_word_swap": swapped}))
        cfg = load_config([tmp_path / f"{name}-p2p.yaml"])
        assert cfg.source == source and cfg.targets == [target]
        assert cfg.edit.reweight == {word: float(v) for word, v in factors.items()}
        assert (cfg.edit.cross_replace, cfg.edit.self_replace) == (windows or (0.2, 0.5))
        assert (tuple(cfg.edit.blend) if cfg.edit.blend else None) == blend
        plan, modes = build_plan(tiny, cfg.source, cfg.targets, cfg.edit, 10, (8, 8))
        assert modes == ["swap" if swapped else "refine"] and plan.targets[0].factors == cfg.edit.reweight
        assert plan.targets[0].self_window == (0, int(10 * (windows or (0.2, 0.5))[1]))
        assert (plan.blend is None) == (blend is None)


def test_a_target_words_own_cross_attention_window_is_a_flag(tiny_dir, clip_dir, tmp_path):
    """Prompt-to-prompt's per-word windows (`cross_replace_steps={"default_": 0.8, "lion": 0.4}`) were a config
    file's alone: `--cross-replace-word WORD=FRACTION` gives one, kept in the run's config.yaml, and the plan
    replaces that word's maps for its own steps, the others' for --cross-replace's."""
    from videop2p.config import load_config
    from videop2p.editing import build_plan
    from videop2p.models.loading import load_components

    out = tmp_path / "o"
    args = _args(tiny_dir, clip_dir, out, tmp_path / "ws", "--cross-replace", "0.8", "--cross-replace-word", "blue=0.4")
    printed = yaml.safe_load(_invoke([*args, "--dry-run"]).stdout)
    assert printed["edit"]["cross_replace"] == 0.8 and printed["edit"]["cross_replace_words"] == {"blue": 0.4}
    (tmp_path / "kept.yaml").write_text(yaml.safe_dump(printed))
    cfg = load_config(tmp_path / "kept.yaml")
    assert cfg.edit.cross_replace_words == {"blue": 0.4}
    plan, _ = build_plan(load_components(str(tiny_dir)), cfg.source, cfg.targets, cfg.edit, 10, (8, 8))
    alpha = plan.targets[0].cross_alpha  # (T + 1, L): 1 where a token's maps are the source's
    blue, circle = 2, 3  # <start> a blue circle ...
    assert int(alpha[:, blue].sum()) == int(0.4 * 11) and int(alpha[:, circle].sum()) == int(0.8 * 11)


def test_a_target_given_twice_with_the_same_settings_is_warned_of(tiny_dir, clip_dir, tmp_path):
    """`--target T --target T` made the same edit twice, a branch of every step more, without a word."""
    from videop2p.config import EditConfig
    from videop2p.editing import repeated_targets

    other = "a green circle moving on the grass"
    assert repeated_targets([TGT, other, TGT, TGT], EditConfig()) == [(2, 0), (3, 0)]
    assert repeated_targets([TGT, TGT], EditConfig(threshold=[0.3, 0.5])) == []  # settings of its own: another edit
    assert repeated_targets([TGT, TGT], EditConfig(blend=[("circle", "circle"), None])) == []
    _invoke(_args(tiny_dir, clip_dir, tmp_path / "o", tmp_path / "ws", "--target", TGT))
    said = "target 2 is target 1 again with the same settings: its edit is the same; give each target once"
    assert [w for w in _manifest(tmp_path / "o")["warnings"] if "again" in w] == [
        f"{said} (each one costs a branch of every step)"
    ]
    assert said in (tmp_path / "o" / "report.md").read_text()


@pytest.mark.parametrize("command", [[], ["run"], ["workspace", "list"], ["toy", "eval"]])
def test_short_help_flag_prints_the_same_help(command):
    long, short = (runner.invoke(app, [*command, flag], terminal_width=200) for flag in ("--help", "-h"))
    assert long.exit_code == short.exit_code == 0 and "Usage: " in short.output
    assert short.output == long.output


def test_every_help_text_is_drawn_as_written_with_no_break_inside_a_sentence():
    """typer draws a help text's line breaks as they are: a docstring wrapped at the source's width broke the
    help's sentence mid-line (`workspace list`'s "disk use, last" / "use, and ...")."""
    import typer.main

    def texts(command, name):
        yield name, command.help or ""
        for param in command.params:
            yield f"{name} {param.name}", getattr(param, "help", None) or ""
        for sub, c in getattr(command, "commands", {}).items():
            yield from texts(c, f"{name} {sub}")

    broken = [(name, text) for name, text in texts(typer.main.get_command(app), "videop2p") if "\n" in text.strip()]
    assert not broken, broken


def test_short_quiet_flag_hides_the_progress_bars(tiny_dir, clip_dir, tmp_path):
    args = _args(tiny_dir, clip_dir, tmp_path / "o", tmp_path / "ws")
    args.remove("--quiet")
    shown = _invoke([*args, "--force"]).output
    hidden = _invoke([*args, "--force", "-q"]).output
    assert "it/s" in shown and "it/s" not in hidden, hidden
    assert f"(manifest: outputs.json; tuning and inversion kept in the workspace {tmp_path / 'ws'})" in hidden
    said = hidden.strip().splitlines()[-1]  # what to open first, each file there
    opened = said.removeprefix("side by side (source | reconstruction | edits): ").split("; ")
    assert Path(opened[0]).is_file() and opened[0].endswith("side_by_side.mp4"), said
    assert opened[1:] == ["edits: edit_1.mp4", "report.md"] and (Path(opened[0]).parent / "edit_1.mp4").is_file()


@pytest.mark.parametrize("attr", ["out", "workspace", "save_tuned"])
def test_an_empty_folder_in_a_runs_settings_is_refused_not_taken_for_the_current_one(attr):
    from videop2p.config import OptionError, RunConfig, VideoConfig, validate

    cfg = RunConfig(source=SRC, targets=[TGT], video=VideoConfig(path="clip.mp4"))
    setattr(cfg, attr, " ")
    with pytest.raises(OptionError, match=f"{attr}: ' ' is not a folder; give one, such as "):
        validate(cfg)
