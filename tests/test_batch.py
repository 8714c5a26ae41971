import copy
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file
from typer.testing import CliRunner

from videop2p.batch import BatchError, BatchSettings, Executor, group_jobs, load_jobs, run_batch, write_manifest
from videop2p.cli import app
from videop2p.io.video import read_video
from videop2p.io.writing import write_frames
from videop2p.testing import assert_one_line_error
from videop2p.toy.world import Background, Color, Motion, Shape, ToyClipSpec, ToyObject, render_clip

runner = CliRunner()


@pytest.fixture(scope="module")
def jobs_file(tmp_path_factory):
    """Four jobs on two toy clips of the bundled model's world; one diverges in its edit."""
    root = tmp_path_factory.mktemp("batch")
    for name, shape, color in (("circle", Shape.CIRCLE, Color.RED), ("square", Shape.SQUARE, Color.BLUE)):
        spec = ToyClipSpec([ToyObject(shape, color)], Background.GRASS, Motion.LINEAR, frames=4, size=64, seed=3)
        write_frames(render_clip(spec).frames, root / name)
    data = {
        "defaults": {
            "video": {"frames": 4},
            "tune": {"steps": 3},
            "inversion": {"steps": 4, "method": "fast"},
        },
        "jobs": [
            {
                "name": "blue",
                "video": "circle",
                "source": "a red circle moving on the grass",
                "targets": ["a blue circle moving on the grass"],
                "edit": {"blend": ["circle", "circle"]},
            },
            {
                "name": "diverges",
                "video": "circle",
                "source": "a red circle moving on the grass",
                "targets": ["a green circle moving on the grass"],
                "edit": {"guidance": 1e300},  # valid input, but float32 overflows in the edit
            },
            {
                "name": "green",
                "video": "circle",
                "source": "a red circle moving on the grass",
                "targets": ["a green circle moving on the grass"],
            },
            {
                "name": "square",
                "video": {"path": "square"},
                "source": "a blue square moving on the grass",
                "targets": ["a red square moving on the grass"],
            },
        ],
    }
    path = root / "jobs.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _events(ws):
    return [json.loads(line) for line in (ws / "events.jsonl").read_text().splitlines()]


def _statuses(results):
    return {r.name: r.status for r in results}


@pytest.fixture(scope="module")
def local_run(jobs_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    jobs, ws = load_jobs(jobs_file, out=str(out / "outputs"), workspace=str(out / "ws"))
    given = copy.deepcopy(jobs)
    results = run_batch(jobs, ws)  # quiet, as BatchSettings' default asks, on its own copies of the jobs
    assert jobs == given and not any(job.config.quiet for job in jobs)
    return out, jobs, ws, results


def test_jobs_file_groups_by_clip_and_resolves_paths_beside_the_file(jobs_file):
    jobs, ws = load_jobs(jobs_file)
    assert [j.name for j in jobs] == ["blue", "diverges", "green", "square"]
    assert jobs[0].config.video.path == str(jobs_file.parent / "circle")
    assert jobs[0].config.tune.steps == 3 and jobs[3].config.inversion.steps == 4  # defaults merged
    assert ws == jobs_file.parent / "jobs-outputs" / ".videop2p-workspace"
    data = yaml.safe_load(jobs_file.read_text())
    data["jobs"][0]["save_tuned"] = "tuned/blue"
    (jobs_file.parent / "tuned.yaml").write_text(yaml.safe_dump(data))
    tuned, _ = load_jobs(jobs_file.parent / "tuned.yaml")
    assert tuned[0].config.save_tuned == str(jobs_file.parent / "tuned" / "blue")  # beside the file, as clips
    assert tuned[1].key == jobs[1].key  # a job without it keeps the key it was finished under
    assert [[j.name for j in g] for g in group_jobs(jobs)] == [["blue", "diverges", "green"], ["square"]]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"jobs": []}, "non-empty list"),
        ({"jobz": [{}]}, "jobz"),
        ({"jobs": [{"video": "a", "source": "s", "targets": ["t"], "tune": {"stepz": 1}}]}, "stepz"),
        ({"jobs": [{"video": "a", "source": "s"}]}, "needs video, source and targets"),
        ({"jobs": [{"video": " ", "source": "s", "targets": ["t"]}]}, r"needs video, source and targets; got ' '"),
        (
            {"jobs": [{"video": "a", "source": " ", "targets": ["t"]}]},
            r"needs video, source and targets; got 'a', ''",
        ),  # blank: none
        ({"jobs": [{"video": "a", "source": "s", "targets": ["t", ""]}]}, r"targets '' \(target 2\) is empty"),
        ({"jobs": [{"name": "x", "video": "a", "source": "s", "targets": ["t"]}] * 2}, "unique"),
        ({"jobs": [{"name": "..", "video": "a"}]}, r"name '\.\.' must be unique, non-empty, not '\.' or '\.\.'"),
        ({"jobs": [{"name": " ", "video": "a"}]}, r"name ' ' must be unique, non-empty"),
        (  # a job's name is its output folder's: `rabbit.mp4` would be a folder named as a video
            {"jobs": [{"name": "rabbit.mp4", "video": "a"}]},
            r"^jobs\[0\]: name 'rabbit.mp4' is a video file's name, .*; give a name such as 'rabbit'\.$",
        ),
        ({"out": "edits.gif", "jobs": [{"video": "a"}]}, r"out '.*edits.gif' names a picture file, not a folder"),
        ({"jobs": [{"name": ["a"], "video": "a"}]}, r"name \['a'\] is not valid; expected text"),
        ({"jobs": [{"name": True, "video": "a"}]}, r"name True is not valid; expected text"),
        ({"jobs": [{"video": "a", "source": "s", "targets": ["t"], "out": "o"}]}, "whole batch"),
        (
            {"jobs": [{"video": "a", "source": "s", "targets": ["t"], "edit": {"guidance": float("nan")}}]},
            "guidance nan",
        ),
        ({"jobs": [{"video": "a", "source": "s", "targets": ["t"], "tune": {"steps": -1}}]}, "tune.steps -1"),
        (
            {"out": 5, "jobs": [{"video": "a", "source": "s", "targets": ["t"]}]},
            "'out' .* must be a folder path, got 5",
        ),
        ({"workspace": " ", "jobs": [{"video": "a"}]}, r"'workspace' in .* names no folder \(' '\); give one, or"),
        ({"defaults": [], "jobs": [{"video": "a"}]}, r"'defaults' in .* must be a mapping of run settings, got \[\]"),
        ({"defaults": 0, "jobs": [{"video": "a"}]}, "must be a mapping of run settings, got 0"),
        ({"jobs": [{"video": "a", "source": 5, "targets": ["t"]}]}, "source 5 is not valid; expected text"),
        ({"jobs": [{"video": "a", "source": "s", "targets": ["t"], "tune": 3}]}, r"tune: 3 is not valid"),
        (  # a key of another section is told where it goes; a bad default is named as one
            {"defaults": {"steps": 3}, "jobs": [{"video": "a", "source": "s", "targets": ["t"]}]},
            r"^defaults: Unknown key 'steps'; it goes under 'inversion' or 'tune' \(e.g. inversion: \{steps: ...\}\)",
        ),
        (
            {"jobs": [{"video": "a", "source": "s", "targets": ["t"], "inversion": {"blend": ["a", "b"]}}]},
            r"^jobs\[0\] \(job-1\): Unknown key 'blend' under 'inversion'; it goes under 'edit' or 'window'",
        ),
        ({"jobs": [{"config": 5}]}, r"^jobs\[0\] \(job-1\): config 5 must be a config file's path or a list"),
        ({"jobs": [{"config": ["a.yaml", ""]}]}, r"^jobs\[0\] \(job-1\): config \['a.yaml', ''\] must be"),
        ({"jobs": [{"name": "x", "config": "gone.yaml"}]}, r"^jobs\[0\] \(x\): Config file '.*gone.yaml' does not"),
        ({"defaults": {"config": "a.yaml"}, "jobs": [{"video": "a"}]}, r"^defaults: Unknown key 'config'"),
    ],
)
def test_bad_jobs_files_are_rejected_with_the_offending_key(tmp_path, data, message):
    path = tmp_path / "jobs.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(BatchError, match=message):
        load_jobs(path)


def test_local_batch_tunes_once_per_clip_and_isolates_a_failing_job(local_run):
    out, jobs, ws, results = local_run
    assert _statuses(results) == {"blue": "done", "diverges": "failed", "green": "done", "square": "done"}
    bad = next(r for r in results if r.name == "diverges")
    assert "The edit diverged at step 1" in bad.error and "guidance" in bad.error
    assert not (out / "outputs" / "diverges").exists()  # nothing half-written
    events = _events(ws)
    tunes = [e["action"] for e in events if e["stage"] == "tune"]
    inversions = [e["action"] for e in events if e["stage"] == "invert"]
    assert tunes == ["computed", "reused", "reused", "computed"]  # one tuning per clip, four jobs
    assert inversions == ["computed", "computed", "reused", "computed"]  # guidance is in the inversion's key
    green = next(r for r in results if r.name == "green")
    assert green.stages["tune"]["action"] == "reused" and green.stages["edit"]["action"] == "computed"
    for name in ("blue", "green", "square"):
        manifest = json.loads((out / "outputs" / name / "outputs.json").read_text())
        assert (out / "outputs" / name / manifest["outputs"]["edits"][0]).exists()
        assert next(r for r in results if r.name == name).warnings == manifest["warnings"]  # in batch.json too


def test_rerun_skips_finished_jobs_and_retries_the_failed_one(local_run):
    out, jobs, ws, _ = local_run
    before = len(_events(ws))
    settings = BatchSettings(executor="local")  # the executor's name, as a config file gives it
    results = run_batch(jobs, ws, settings)
    assert _statuses(results) == {"blue": "skipped", "diverges": "failed", "green": "skipped", "square": "skipped"}
    again = _events(ws)[before:]  # only the failed job ran again, on its kept tuning and inversion
    assert [(e["stage"], e["action"]) for e in again] == [("tune", "reused"), ("invert", "reused")]
    write_manifest(results, out / "again.json", settings, 0.0)
    assert json.loads((out / "again.json").read_text())["executor"] == "local"


def test_ray_executor_gives_the_local_outputs(local_run, jobs_file, tmp_path):
    pytest.importorskip("ray", reason="the ray extra is part of the test extra")
    out, _, ws_local, _ = local_run
    jobs, ws = load_jobs(jobs_file, out=str(tmp_path / "outputs"), workspace=str(tmp_path / "ws"))
    results = run_batch(jobs, ws, BatchSettings(executor=Executor.RAY, num_cpus=torch.get_num_threads()))
    assert _statuses(results) == {"blue": "done", "diverges": "failed", "green": "done", "square": "done"}
    by_name = {r.name: r for r in results}
    assert by_name["blue"].worker == by_name["green"].worker  # a clip's jobs share one task
    assert all(r.worker.split(":")[1] != str(os.getpid()) for r in results)  # run by Ray workers
    ours, theirs = sorted((tmp_path / "ws").rglob("*.safetensors")), sorted(ws_local.rglob("*.safetensors"))
    assert [p.relative_to(tmp_path / "ws") for p in ours] == [p.relative_to(ws_local) for p in theirs]
    for a, b in zip(ours, theirs, strict=True):  # tuned deltas, inversions and edit latents: bit for bit
        ta, tb = load_file(a), load_file(b)
        assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta), a.name
    for name in ("blue", "green", "square"):  # the GIFs: x264 does not always write the same mp4 (docs/long_clips.md)
        mine = read_video(tmp_path / "outputs" / name / "edit_1.gif").frames.astype(int)
        local = read_video(out / "outputs" / name / "edit_1.gif").frames.astype(int)
        assert np.abs(mine - local).mean() < 2.0, name  # VAE decoding in another process may round differently


def test_ray_executor_without_ray_names_the_install_command(local_run, monkeypatch):
    _, jobs, ws, _ = local_run
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(BatchError, match=r"pip install 'videop2p\[ray\]'"):
        run_batch(jobs, ws, BatchSettings(executor=Executor.RAY))


def test_batch_command_prints_a_summary_writes_a_manifest_and_fails_on_a_failed_job(local_run, jobs_file):
    out, _, ws, _ = local_run
    result = runner.invoke(app, ["batch", str(jobs_file), "--out", str(out / "outputs"), "--workspace", str(ws)])
    assert result.exit_code == 1, result.output
    assert "diverges" in result.output and "diverged at step 1" in result.output and "skipped" in result.output
    manifest = json.loads((out / "outputs" / "batch.json").read_text())
    assert manifest["counts"] == {"done": 0, "skipped": 3, "failed": 1}
    assert [j["name"] for j in manifest["jobs"]] == ["blue", "diverges", "green", "square"]
    bad = runner.invoke(app, ["batch", str(jobs_file), "--executor", "dask"])
    assert bad.exit_code == 2 and "dask" in bad.output


def test_a_quiet_batch_prints_its_failures_and_summary_but_no_line_per_job(local_run, jobs_file):
    import subprocess

    out, _, ws, _ = local_run
    args = ["batch", str(jobs_file), "--out", str(out / "outputs"), "--workspace", str(ws)]
    loud, quiet = (
        subprocess.run([sys.executable, "-m", "videop2p.cli", *args, *extra], capture_output=True, text=True)
        for extra in ([], ["--quiet"])
    )
    assert loud.returncode == quiet.returncode == 1  # the diverging job fails again, the others are skipped
    assert "INFO videop2p.batch: blue: finished by an earlier run, skipped" in loud.stderr
    assert "INFO" not in quiet.stderr and "diverged at step 1" in quiet.stdout + quiet.stderr
    assert "0 done, 3 skipped, 1 failed" in quiet.stdout


def test_a_dry_run_of_a_batch_says_what_its_run_did_and_writes_nothing(local_run, jobs_file, tmp_path, caplog):

    from videop2p.batch import dry_run_batch, plan_table

    jobs, _ = load_jobs(jobs_file, out=str(tmp_path / "outputs"), workspace=str(tmp_path / "ws"))
    with caplog.at_level("INFO", logger="videop2p.batch"):
        plans = dry_run_batch(jobs)  # as `local_run` found the batch: nothing kept yet
    said = [r.getMessage() for r in caplog.records if r.name == "videop2p.batch"]
    assert [line.split(":")[0] for line in said] == [job.name for job in jobs]  # each job's log begins with it
    assert said[0].endswith(f"'a blue circle moving on the grass' (outputs in {tmp_path / 'outputs' / 'blue'})")
    assert not (tmp_path / "outputs").exists() and not (tmp_path / "ws").exists()
    out, _, ws, results = local_run
    ran = {r.name: [r.stages[s]["action"] for s in ("tune", "invert", "edit")] for r in results if r.stages}
    said = {p.name: [s.action for s in p.stages] for p in plans}
    word = {"computed": "compute", "reused": "reuse", "resumed": "resume"}  # a run's report -> a dry run's word
    assert {n: said[n] for n in ran} == {n: [word[a] for a in did] for n, did in ran.items()}
    assert said["diverges"] == ["reuse", "compute", "compute"]  # blue's tuning; its guidance keys its inversion
    again, _ = load_jobs(jobs_file, out=str(out / "outputs"), workspace=str(ws))
    assert {p.name: (p.status, [s.action for s in p.stages]) for p in dry_run_batch(again)} == {
        "blue": ("skip", []),
        "diverges": ("run", ["reuse", "reuse", "compute"]),  # what it kept before its edit failed
        "green": ("skip", []),
        "square": ("skip", []),
    }
    result = runner.invoke(app, ["batch", str(jobs_file), "--out", str(tmp_path / "o"), "--dry-run", "-q"])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split()[1:5] for line in result.output.splitlines()[2:-1]}
    assert rows["green"] == ["run", "reuse", "reuse", "compute"] and rows["square"][1:] == ["compute"] * 3
    assert "4 jobs: 4 would run, 0 skipped; nothing was computed or written" in result.output
    assert not (tmp_path / "o").exists()
    kept = shutil.copytree(ws, tmp_path / "damaged-ws")  # its blue and green share a tuning: damaged, blue redoes it
    tuned = Path(next(p.stages[0].entry for p in dry_run_batch(again) if p.name == "diverges"))
    copied = kept / tuned.relative_to(ws)
    copied.write_bytes(copied.read_bytes()[:100])
    fresh, _ = load_jobs(jobs_file, out=str(tmp_path / "fresh"), workspace=str(kept))  # no job finished there
    said = {p.name: p.stages[0] for p in dry_run_batch(fresh)}
    assert (said["blue"].action, said["diverges"].action, said["green"].action) == ("compute", "reuse", "reuse")
    assert "the kept entry does not load" in said["blue"].why and said["green"].why is None  # blue's redo is read
    table = plan_table(dry_run_batch(fresh)).splitlines()
    assert [line.split(":")[0] for line in table[6:]] == ["blue"]  # the reason under the table, for blue alone


def test_changed_job_is_not_skipped(local_run, jobs_file):
    out, jobs, ws, _ = local_run
    changed, _ = load_jobs(jobs_file, out=str(out / "outputs"), workspace=str(ws))
    changed = [j for j in changed if j.name == "green"]
    changed[0].config.edit.guidance = changed[0].config.inversion.guidance = 5.0  # one guidance: both
    results = run_batch(changed, ws)
    assert _statuses(results) == {"green": "done"}
    assert results[0].stages["tune"]["action"] == "reused"
    changed[0].config.png_frames = True  # an output asked for: run again, the edit itself reused
    results = run_batch(changed, ws)
    assert _statuses(results) == {"green": "done"} and results[0].stages["edit"]["action"] == "reused"
    assert (Path(changed[0].config.out) / "edit_1" / "1.png").is_file()
    key = changed[0].key
    changed[0].config.save_tuned = str(out / "tuned-green")  # the tuned model asked for too: written, work reused
    assert changed[0].key != key
    results = run_batch(changed, ws)
    assert _statuses(results) == {"green": "done"} and results[0].stages["tune"]["action"] == "reused"
    assert (out / "tuned-green" / "unet" / "config.json").is_file()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--executor", "spark"], "--executor 'spark' is not one of local, ray"),
        (["--gpus-per-task", "nan"], "--gpus-per-task nan"),
        (["--cpus-per-task", "0"], "--cpus-per-task 0.0 is not valid; expected a finite number > 0"),
        (["--address", "ray://head:10001"], "--address 'ray://head:10001' is for Ray; add --executor ray"),
        (["--gpus-per-task", "1"], "--gpus-per-task 1.0 is for Ray; add --executor ray (the local executor"),
        (["--manifest", "{tmp}"], "is a folder; give a file name"),
        (["--executor", "ray", "--address", "head"], "--address 'head' is not a Ray cluster address; expected HOST"),
        (  # nothing listens there: named at once (Ray itself retries for minutes)
            ["--executor", "ray", "--address", "127.0.0.1:{port}"],
            "no Ray cluster answers at --address 127.0.0.1:{port} (Connection refused); start one there",
        ),
    ],
)
def test_bad_batch_flags_are_one_line_errors_before_any_job(tmp_path, flags, message):
    import socket

    path = tmp_path / "jobs.yaml"
    path.write_text(yaml.safe_dump({"jobs": [{"video": "a", "source": "s", "targets": ["t"]}]}))
    with socket.socket() as s:  # a port nothing listens on once it is closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    flags = [f.format(tmp=tmp_path, port=port) for f in flags]
    message = message.format(port=port)
    result = runner.invoke(app, ["batch", str(path), "--out", str(tmp_path / "o"), *flags])
    assert_one_line_error(result, message)
    assert not (tmp_path / "o").exists()


def test_the_summary_table_keeps_one_line_per_job_whatever_the_error():
    from videop2p.batch import JobResult, summary_table

    results = [
        JobResult("big", "failed", "out/big", error="OutOfMemoryError: CUDA out of memory.\nIf reserved but..."),
        JobResult("ok", "done", "out/ok", 1.5, {"tune": {"seconds": 1.0, "action": "resumed"}}),
        JobResult("warned", "done", "out/warned", 1.5, warnings=["Target 2 changes 'snow', but ..."]),
    ]
    lines = summary_table(results).splitlines()
    assert len(lines) == 5 and lines[2].endswith("OutOfMemoryError: CUDA out of memory.")
    assert "resumed" in lines[3] and lines[3].endswith("out/ok")
    assert lines[4].endswith("out/warned (1 warning: see its report.md)")


def test_a_clip_may_be_named_by_its_path_alone_in_defaults_jobs_and_run_configs(tmp_path):
    """`video: clip.mp4` stands for `video: {path: clip.mp4}` wherever a run's settings are read."""
    from videop2p.config import VideoConfig, load_config

    data = {
        "defaults": {"video": "clip"},
        "jobs": [{"source": "a", "targets": ["b"], "video": {"frames": 2}}, {"source": "a", "targets": ["c"]}],
    }
    (tmp_path / "jobs.yaml").write_text(yaml.safe_dump(data))
    jobs, _ = load_jobs(tmp_path / "jobs.yaml")
    clip = str(tmp_path / "clip")
    assert [(j.config.video.path, j.config.video.frames) for j in jobs] == [(clip, 2), (clip, VideoConfig().frames)]
    (tmp_path / "run.yaml").write_text("source: a\ntargets: [b]\nvideo: clip.mp4\n")
    assert load_config([tmp_path / "run.yaml"]).video.path == "clip.mp4"


def test_a_job_may_be_the_authors_config_pair_under_the_defaults_and_its_own_keys(tmp_path, monkeypatch):
    """`config: [configs/x-tune.yaml, configs/x-p2p.yaml]` runs the authors' pair as `run --config` does,
    their relative paths read from the jobs file's folder (their scripts' working folder); the defaults
    and the job's own keys override it as `run`'s flags do; the tuned model goes to their output_dir."""
    (tmp_path / "configs").mkdir()
    (tmp_path / "data" / "rabbit").mkdir(parents=True)
    tune = {
        "pretrained_model_path": "videop2p-toy",
        "output_dir": "./outputs/rabbit-jump",
        "train_data": {"video_path": "./data/rabbit", "prompt": "a rabbit is jumping", "n_sample_frames": 8},
        "max_train_steps": 500,
        "learning_rate": 3e-5,
    }
    p2p = {
        "pretrained_model_path": "./outputs/rabbit-jump",
        "image_path": "./data/rabbit",
        "prompt": "a rabbit is jumping",
        "prompts": ["a rabbit is jumping", "a origami rabbit is jumping"],
        "blend_word": ["rabbit", "rabbit"],
        "eq_params": {"words": ["origami"], "values": [2]},
        "is_word_swap": False,
    }
    (tmp_path / "configs" / "tune.yaml").write_text(yaml.safe_dump(tune))
    (tmp_path / "configs" / "p2p.yaml").write_text(yaml.safe_dump(p2p))
    pair = ["configs/tune.yaml", "configs/p2p.yaml"]
    data = {
        "defaults": {"tune": {"steps": 3}},
        "jobs": [
            {"name": "theirs", "config": pair},
            {"name": "mine", "config": pair, "video": {"frames": 2}, "tune": {"lr": 1e-4}},
        ],
    }
    (tmp_path / "jobs.yaml").write_text(yaml.safe_dump(data))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the jobs file's folder, not the current one, is where their paths are read from
    (theirs, mine), _ = load_jobs(tmp_path / "jobs.yaml")
    for job in (theirs, mine):
        c = job.config
        assert c.video.path == str(tmp_path / "data" / "rabbit") and c.source == "a rabbit is jumping"
        assert c.targets == ["a origami rabbit is jumping"] and c.edit.reweight == {"origami": 2.0}
        assert c.edit.blend == ("rabbit", "rabbit") and c.model == "videop2p-toy"
        assert c.save_tuned == str(tmp_path / "outputs" / "rabbit-jump") and c.out == str(
            tmp_path / "jobs-outputs" / job.name
        )
        assert c.tune.steps == 3  # the defaults over their max_train_steps
    assert (theirs.config.video.frames, theirs.config.tune.lr) == (8, 3e-5)
    assert (mine.config.video.frames, mine.config.tune.lr) == (2, 1e-4)  # the job's own keys over both
    data["jobs"] = [{"name": "tune-only", "config": pair[0]}]  # the tune config alone holds no edit
    (tmp_path / "jobs.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(BatchError, match=r"^jobs\[0\] \(tune-only\) needs .*tune.yaml is an official tune config"):
        load_jobs(tmp_path / "jobs.yaml")
    data["jobs"] = [{"name": "p2p-only", "config": pair[1]}]  # edits with the folder their tuning writes
    (tmp_path / "jobs.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(BatchError, match=r"^jobs\[0\] \(p2p-only\): pretrained_model_path './outputs/rabbit-jump' of"):
        load_jobs(tmp_path / "jobs.yaml")
    data["jobs"] = [{"name": "p2p-toy", "config": pair[1], "model": "videop2p-toy"}]  # another model: edited
    (tmp_path / "jobs.yaml").write_text(yaml.safe_dump(data))
    assert load_jobs(tmp_path / "jobs.yaml")[0][0].config.model == "videop2p-toy"
    (tmp_path / "outputs" / "rabbit-jump").mkdir(parents=True)  # their tuning done: its folder is the model
    data["jobs"] = [{"name": "p2p-only", "config": pair[1]}]
    (tmp_path / "jobs.yaml").write_text(yaml.safe_dump(data))
    assert load_jobs(tmp_path / "jobs.yaml")[0][0].config.model == str(tmp_path / "outputs" / "rabbit-jump")
    (tmp_path / "ours.yaml").write_text("source: a rabbit is jumping\n")  # ours, without targets: no such hint
    data["jobs"] = [{"name": "ours", "config": "ours.yaml", "video": "data/rabbit"}]
    (tmp_path / "jobs.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(BatchError, match=r"^jobs\[0\] \(ours\) needs video, source and targets; got"):
        load_jobs(tmp_path / "jobs.yaml")


def test_a_local_batch_names_a_missing_clip_too_few_frames_or_a_missing_model_before_any_job(tmp_path):
    """Each refusal names the job by its place in the jobs file, as the file's own checks do (it said `typo:`)."""
    import shutil

    spec = ToyClipSpec([ToyObject(Shape.CIRCLE, Color.RED)], Background.GRASS, Motion.LINEAR, frames=4, size=64)
    write_frames(render_clip(spec).frames, tmp_path / "clip")
    source = "a red circle moving on the grass"
    job = {"name": "blue", "video": "clip", "source": source, "targets": [source.replace("red", "blue")]}
    defaults = {"video": {"frames": 4}, "tune": {"steps": 1}, "inversion": {"steps": 2, "method": "fast"}}
    data = {"defaults": defaults, "jobs": [job]}
    path = tmp_path / "jobs.yaml"
    theirs = tmp_path / "tune.yaml"  # the authors' tune config: a side the model's VAE cannot take, by their key
    theirs.write_text(yaml.safe_dump({"train_data": {"video_path": "clip", "prompt": source, "width": 63}}))
    (tmp_path / "gone.yaml").write_text(yaml.safe_dump({"train_data": {"video_path": "clpi", "prompt": source}}))
    for extra, shown in (
        (
            {"name": "typo", "video": "clpi"},
            ("jobs[1] (typo): video.path '", "clpi' does not exist; give a video file"),
        ),
        (
            {"name": "long", "video": {"path": "clip", "frames": 16}},
            ("jobs[1] (long): video.frames 16 asks", "it has 4 frames"),
        ),
        (
            {"name": "no-model", "model": str(tmp_path / "sd15")},
            ("jobs[1] (no-model): model '", "does not exist; give a"),
        ),
        (
            {"name": "gone", "config": ["gone.yaml"], "video": {"frames": 4}},
            ("jobs[1] (gone): ", "gone.yaml: train_data.video_path '", "does not exist"),
        ),
        (
            {"name": "own-config", "model_config": "clip"},
            ("jobs[1] (own-config): model_config 'clip' describes", "its own configs"),
        ),
        (
            {"name": "no-lora", "lora": {"style.safetensors": 0.5}},
            ("jobs[1] (no-lora): lora '", "style.safetensors' does not exist; give"),
        ),
        (
            {"name": "no-emb", "embeddings": ["style.pt=<s>"]},
            ("jobs[1] (no-emb): embeddings '", "style.pt' does not exist; give"),
        ),
        (
            {"name": "no-vae", "vae": "ft-mse.safetensors"},
            ("jobs[1] (no-vae): vae '", "ft-mse.safetensors' does not exist; give"),
        ),
        (
            {"name": "bad-word", "edit": {"blend": ["triangle", "circle"]}},
            ("jobs[1] (bad-word): edit.blend 'triangle' is not in the source prompt",),
        ),
        (
            {"name": "long-prompt", "targets": [" ".join(["red"] * 80)]},
            ("jobs[1] (long-prompt): targets 'red red", "82 tokens", "limit of 77"),
        ),
        (
            {"name": "odd", "video": {"path": "clip", "width": 63}},
            ("jobs[1] (odd): video.width 63 is not allowed by the model",),
        ),
        (
            {"name": "theirs", "config": ["tune.yaml"]},
            ("jobs[1] (theirs): ", "tune.yaml: train_data.width 63 is not allowed"),
        ),
    ):
        path.write_text(yaml.safe_dump({**data, "jobs": [job, {**job, **extra}]}))
        assert_one_line_error(runner.invoke(app, ["batch", str(path)]), *shown)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["clip", "gone.yaml", "jobs.yaml", "tune.yaml"]  # no more
    path.write_text(yaml.safe_dump(data))
    assert runner.invoke(app, ["batch", str(path)]).exit_code == 0
    shutil.rmtree(tmp_path / "clip")  # a finished job's clip may go: the job is skipped, not checked
    result = runner.invoke(app, ["batch", str(path)])
    assert result.exit_code == 0 and "0 done, 1 skipped, 0 failed" in result.output


def test_a_local_batch_of_several_clips_loads_its_model_once(tmp_path, caplog):
    source = "a red circle moving on the grass"
    jobs = []
    for seed in (1, 2):
        spec = ToyClipSpec(
            [ToyObject(Shape.CIRCLE, Color.RED)], Background.GRASS, Motion.LINEAR, frames=2, size=64, seed=seed
        )
        write_frames(render_clip(spec).frames, tmp_path / f"clip{seed}")
        jobs.append({"name": f"c{seed}", "video": f"clip{seed}", "source": source, "targets": [source]})
    defaults = {"video": {"frames": 2}, "tune": {"steps": 1}, "inversion": {"steps": 2, "method": "fast"}}
    (tmp_path / "jobs.yaml").write_text(yaml.safe_dump({"defaults": defaults, "jobs": jobs}))
    loaded, ws = load_jobs(tmp_path / "jobs.yaml")
    assert len(group_jobs(loaded)) == 2
    with caplog.at_level("INFO", logger="videop2p"):
        results = run_batch(loaded, ws)
    assert _statuses(results) == {"c1": "done", "c2": "done"}
    said = [r.getMessage() for r in caplog.records]
    assert sum(line.startswith("loaded ") for line in said) == 1
    # each job's log begins with the job: its clip, prompts and outputs, before its stages' lines
    starts = [k for k, line in enumerate(said) if line.startswith(("c1: ", "c2: "))]
    assert [said[k] for k in starts] == [
        f"c{seed}: {tmp_path / f'clip{seed}'}, {source!r} -> {source!r} (outputs in {tmp_path / 'jobs-outputs' / f'c{seed}'})"
        for seed in (1, 2)
    ]
    assert all(any(line.startswith("tune: computed") for line in said[k:]) for k in starts)


def test_a_hub_repositorys_lora_or_embedding_stays_a_hub_id_in_jobs_and_rerun_configs(jobs_file):
    """Placed beside the jobs file, a LoRA or embedding file there is made absolute, a hub repository's
    (`owner/name`, `owner/name/FILE`) stays as it is, and so it is kept in a run's config.yaml."""
    from videop2p.outputs import rerunnable

    (jobs_file.parent / "style.safetensors").write_bytes(b"x")
    data = yaml.safe_load(jobs_file.read_text())
    hub = {"someone/style-lora": 0.5, "someone/styles/a.safetensors": 1.0}
    data["jobs"][0]["lora"] = {"style.safetensors": 0.8, "missing.safetensors": 1.0, **hub}
    data["jobs"][0]["embeddings"] = {"sd-concepts-library/cat-toy": None}
    (jobs_file.parent / "hub.yaml").write_text(yaml.safe_dump(data))
    cfg = load_jobs(jobs_file.parent / "hub.yaml")[0][0].config
    here = jobs_file.parent.resolve()
    assert cfg.lora == {str(here / "style.safetensors"): 0.8, str(here / "missing.safetensors"): 1.0, **hub}
    assert cfg.embeddings == {"sd-concepts-library/cat-toy": None}
    kept = rerunnable(cfg)
    assert kept["lora"] == cfg.lora and kept["embeddings"] == cfg.embeddings
