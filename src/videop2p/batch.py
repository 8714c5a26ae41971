"""Batches of edits: many jobs, tuning and inversion once per clip, locally or on Ray.

A jobs file lists runs (each a `RunConfig`, with shared `defaults`). Jobs that share a clip (same
frames, source prompt, model and tuning settings) form a group that runs in one worker, in order,
so the workspace gives them one tuning and one inversion. A job that fails while it runs is reported
and the others go on (locally, a job whose inputs are wrong stops the batch before any job runs); a
job whose outputs were finished by an earlier run of the same batch is skipped.
"""

from __future__ import annotations

import copy
import functools
import logging
import os
import socket
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from videop2p.config import (
    ADAPTER_FILES,
    ADAPTER_SUFFIXES,
    OPTIONS,
    WORKSPACE_NAME,
    BatchSettings,
    ConfigError,
    Executor,
    OptionError,
    Preset,
    RunConfig,
    SettingProblem,
    VideoConfig,
    check_folder,
    extra_install,
    file_key,
    file_kind,
    files_preset,
    fill_run,
    given_by,
    holds,
    hub_file_id,
    is_link,
    link_reason,
    load_config,
    load_yaml,
    meant_key,
    missing_tuned_model,
    missing_tuned_model_message,
    named_preset,
    on_tuned_model,
    path_shorthand,
    preset_config,
    ray_host_port,
    read_config_files,
    to_plain,
    tune_config_alone,
    validate,
)
from videop2p.store.files import read_json, write_json
from videop2p.store.workspace import key_of

if TYPE_CHECKING:
    from videop2p.pipeline import PlannedStage, VideoP2P

logger = logging.getLogger(__name__)

RAY_INSTALL = extra_install("ray")
_BATCH_KEYS = {"jobs", "defaults", "out", "workspace"}
_JOB_NOT_IN_KEY = {"quiet", "force", "out", "workspace", "device"}  # settings that do not change a job's outputs
# settings added after jobs were keyed: left out at their default, so that a job finished before they existed
# stays finished
_ADDED_SINCE_KEYED = {"png_frames", "save_tuned"}


class BatchError(ValueError):
    """A jobs file, executor or workspace that cannot run."""


@dataclass
class Job:
    """One run of the batch."""

    name: str
    config: RunConfig
    named: dict[str, str] = field(default_factory=dict)  # option -> its config file's key, where one gave it
    place: str = ""  # where the jobs file gives it, as its errors name it: `jobs[2] (snow)` ("": by its name)

    @property
    def where(self) -> str:
        """How an error of this job names it: by its place in the jobs file, else by its name."""
        return self.place or self.name

    @property
    def key(self) -> str:
        """Hash of every setting that changes this job's outputs."""
        plain = {k: v for k, v in to_plain(self.config).items() if k not in _JOB_NOT_IN_KEY}
        for stage in ("tune", "inversion", "edit"):
            plain[stage].pop("progress", None)  # display only
        for name in _ADDED_SINCE_KEYED:
            if plain[name] == getattr(RunConfig(), name):
                del plain[name]
        return key_of(plain)

    @property
    def group(self) -> str:
        """Jobs with the same group share one tuned model and inversion."""
        c = to_plain(self.config)
        return key_of(
            {
                k: c[k]
                for k in (
                    "video",
                    "source",
                    "model",
                    "lora",
                    "embeddings",
                    "tune",
                    "frame_attention",
                    "window",
                    "dtype",
                    "device",
                )
            }
        )


@dataclass
class JobResult:
    """What became of one job."""

    name: str
    status: str  # "done", "skipped" or "failed"
    out: str
    seconds: float = 0.0
    stages: dict = field(default_factory=dict)  # per stage: seconds and computed/reused
    error: str | None = None
    worker: str = ""  # host and process that ran it
    warnings: list[str] = field(default_factory=list)  # what its edit warned about (also in its report.md)


# -- the jobs file ---------------------------------------------------------------------------------
def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _resolve(value: str, base: Path) -> str:
    """The path `value` made absolute from `base`; a link (`https://...`) as it is, for the check that reads it
    to name it (`config.link_reason`) as given."""
    if is_link(value):
        return value
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else (base / p).resolve())


def _config_files(value: object, here: Path, where: str) -> list[str]:
    """A job's `config`: one config file or a list of them (ours, or the official tune and p2p pair),
    relative to the jobs file."""
    if value is None:
        return []
    files = [value] if isinstance(value, str) else value
    if not isinstance(files, list) or not files or not all(isinstance(f, str) and f.strip() for f in files):
        raise BatchError(f"{where}: config {value!r} must be a config file's path or a list of them.")
    return [_resolve(f, here) for f in files]


def load_jobs(path: str | os.PathLike, out: str | None = None, workspace: str | None = None) -> tuple[list[Job], Path]:
    """Jobs of a jobs file (validated, paths made absolute) and the workspace root they share."""
    path = Path(path)
    data = load_yaml(path)
    unknown = set(data) - _BATCH_KEYS
    if unknown:
        meant = "".join(meant_key(key, _BATCH_KEYS) for key in sorted(unknown, key=str)[:1])
        raise BatchError(f"Unknown key(s) {sorted(unknown)} in {path}{meant}; valid keys are {sorted(_BATCH_KEYS)}.")
    raw_jobs = data.get("jobs")
    if not isinstance(raw_jobs, list) or not raw_jobs:
        raise BatchError(f"{path} needs a non-empty list under 'jobs', got {raw_jobs!r}.")
    out_root, ws_root = _batch_folders(path, data, out, workspace)
    defaults = _batch_defaults(path, data)
    jobs, names = [], set()
    for i, raw in enumerate(raw_jobs):
        if not isinstance(raw, dict):
            raise BatchError(f"jobs[{i}] in {path} must be a mapping, got {raw!r}.")
        raw = dict(raw)
        name = raw.pop("name", None)
        if name is not None and (isinstance(name, bool) or not isinstance(name, str | int)):  # 2024 is a name
            raise BatchError(f"jobs[{i}]: name {name!r} is not valid; expected text (its output folder's name).")
        name = f"job-{i + 1}" if name is None else str(name)
        if name in names or not name.strip() or "/" in name or name in (".", ".."):  # its folder under `out`
            raise BatchError(f"jobs[{i}]: name {name!r} must be unique, non-empty, not '.' or '..' and without '/'.")
        if kind := file_kind(name):  # its output folder: made under that name, as though it were the edit's file
            raise BatchError(
                f"jobs[{i}]: name {name!r} is {kind} file's name, and a job's name is its output folder's; give a name "
                f"such as {Path(name).stem!r}."
            )
        names.add(name)
        place = f"jobs[{i}] ({name})"
        cfg, named = _job_config(raw, defaults, path.resolve().parent, place)
        cfg.out, cfg.workspace = str(out_root / name), str(ws_root)
        jobs.append(Job(name, cfg, named, place))
    return jobs, ws_root


def _batch_folders(path: Path, data: dict, out: str | None, workspace: str | None) -> tuple[Path, Path]:
    """The jobs' output and workspace roots: as given (from the current folder), else as the jobs file
    says (from its folder), else `<its name>-outputs` beside it with the workspace in it."""
    for key in ("out", "workspace"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise BatchError(f"'{key}' in {path} must be a folder path, got {data[key]!r}.")
        if isinstance(data.get(key), str) and not data[key].strip():  # `key:` alone (null) is the default
            raise BatchError(f"'{key}' in {path} names no folder ({data[key]!r}); give one, or leave it out.")
        if said := link_reason(data.get(key), "give a local folder, or leave it out"):
            raise BatchError(f"'{key}' in {path}: {said}")
    here = path.resolve().parent
    out_root = Path(_resolve(out, Path.cwd()) if out else _resolve(data.get("out") or f"{path.stem}-outputs", here))
    if workspace:
        ws_root = Path(_resolve(workspace, Path.cwd()))
    else:
        ws_root = Path(_resolve(data["workspace"], here)) if data.get("workspace") else out_root / WORKSPACE_NAME
    try:
        check_folder("out", out_root, "for the jobs' outputs")
        check_folder("workspace", ws_root, "to keep tuned clips in")
    except ValueError as e:
        raise BatchError(str(e)) from None
    return out_root, ws_root


def _batch_defaults(path: Path, data: dict) -> dict:
    """The jobs file's `defaults`, checked where they are written, not in the first job that inherits them."""
    defaults = {} if data.get("defaults") is None else data["defaults"]  # `defaults:` alone: none
    if not isinstance(defaults, dict):
        raise BatchError(f"'defaults' in {path} must be a mapping of run settings, got {defaults!r}.")
    if "video" in defaults:
        defaults = {**defaults, "video": path_shorthand(defaults["video"])}
    try:
        fill_run(defaults, "defaults: ")
    except (ConfigError, OptionError) as e:
        raise BatchError(
            f"defaults: {file_key(e.option)} {e.reason}" if isinstance(e, OptionError) else str(e)
        ) from None
    return defaults


def _job_config(raw: dict, defaults: dict, here: Path, where: str) -> tuple[RunConfig, dict[str, str]]:
    """A job's settings (`raw`, its keys but its name): its config files, under the defaults and its own
    keys (as under `run`'s flags), validated, its paths made absolute from `here`, the jobs file's folder;
    and how a bad one is named where a config file gave it (`Job.named`: the setting the loaded model checks,
    a side that is no multiple of its VAE's factor, is named as these checks name theirs)."""
    keys = {key: path_shorthand(value) if key == "video" else value for key, value in raw.items() if key != "config"}
    configs = _config_files(raw.get("config"), here, where)
    merged = _merge(defaults, keys)
    if "out" in merged or "workspace" in merged:
        raise BatchError(f"{where}: 'out' and 'workspace' are set for the whole batch, not per job.")
    try:  # the job's preset (its own, else the defaults'), else one its config file names; under the file
        files = read_config_files(configs)
        preset = named_preset(merged) or files_preset(files)
        start = None if preset is None else preset_config(preset)
        base = load_config(files, start, here) if files else start
    except ConfigError as e:
        raise BatchError(f"{where}: {e}") from None
    try:
        cfg = fill_run(merged, f"{where}: ", base)
        validate(cfg)
    except OptionError as e:  # named by the job's key, or by its config file's that gave it
        given = None if holds(merged, file_key(e.option)) else given_by(e.option, files)
        raise BatchError(f"{where}: {given or file_key(e.option)} {e.reason}") from None
    except ConfigError as e:  # named where it is by `fill_run`
        raise BatchError(str(e)) from None
    if not cfg.video.path.strip() or not cfg.source.strip() or not cfg.targets:  # blank: no clip, no prompt
        alone = tune_config_alone(files)
        their = f" ({alone} is an official tune config, which holds no edit: give its p2p config too)" if alone else ""
        raise BatchError(
            f"{where} needs video, source and targets{their}; got {cfg.video.path!r}, {cfg.source!r}, {cfg.targets!r}."
        )
    missing = missing_tuned_model(files, cfg.model, here)
    if missing is not None:
        both = "give their tune config beside it (`config: [TUNE.yaml, P2P.yaml]`)"
        raise BatchError(f"{where}: {missing_tuned_model_message(missing, both, 'another `model`')}")
    _resolve_job_paths(cfg, here)
    if preset not in (None, Preset.OFFICIAL):  # its tuning steps are fewer than an image model's 500
        from videop2p.models.loading import is_video_model

        if is_video_model(cfg.model):
            given = holds(merged, "tune.steps") or given_by("tune_steps", files) is not None
            cfg = on_tuned_model(cfg, preset, given)
    named = {o: given_by(o, files) for o in OPTIONS if not holds(merged, file_key(o))}
    return cfg, {o: given for o, given in named.items() if given is not None}


def _resolve_job_paths(cfg: RunConfig, here: Path) -> None:
    """A job's paths made absolute from `here`, the jobs file's folder: the clip, a model or VAE folder
    beside it (otherwise a hub id), the tuned folder to write, LoRA and embedding files."""
    cfg.video.path = _resolve(cfg.video.path, here)
    if cfg.model and os.path.exists(here / cfg.model):  # False for a name too long for a file: its check says so
        cfg.model = _resolve(cfg.model, here)
    if cfg.vae and os.path.exists(here / cfg.vae):
        cfg.vae = _resolve(cfg.vae, here)
    if cfg.save_tuned:  # a folder to write, as `out`: relative to the jobs file
        cfg.save_tuned = _resolve(cfg.save_tuned, here)
    for key in ADAPTER_FILES:  # a hub repository's file stays as it is, where the jobs file has none of its name
        hub = [p for p in getattr(cfg, key) if hub_file_id(p, ADAPTER_SUFFIXES[key]) and not os.path.exists(here / p)]
        placed = {(path if path in hub else _resolve(path, here)): v for path, v in getattr(cfg, key).items()}
        setattr(cfg, key, placed)


def group_jobs(jobs: list[Job]) -> list[list[Job]]:
    """Jobs grouped by clip, groups in order of first appearance."""
    groups: dict[str, list[Job]] = {}
    for job in jobs:
        groups.setdefault(job.group, []).append(job)
    return list(groups.values())


# -- running ---------------------------------------------------------------------------------------
def is_finished(job: Job) -> bool:
    """True when an earlier run wrote this exact job's outputs."""
    try:
        done = read_json(Path(job.config.out, "job.json"))
    except (OSError, ValueError):
        return False
    return done.get("key") == job.key and Path(job.config.out, "outputs.json").exists()


def _mark_finished(job: Job, result: JobResult) -> None:
    write_json(Path(job.config.out, "job.json"), {"key": job.key, "name": job.name, "stages": result.stages})


def ray_task(jobs: list[Job], sentinel: str | None, threads: int) -> list[JobResult]:
    """Entry point of a Ray worker process: torch gets the task's CPUs as threads, then `run_group`."""
    import torch

    torch.set_num_threads(threads)
    return run_group(jobs, sentinel)


def model_spec(cfg: RunConfig) -> dict:
    """What a job's pipeline is loaded with: `VideoP2P.from_pretrained`'s arguments."""
    return {
        "model": cfg.model,
        "device": cfg.device,
        "dtype": cfg.dtype,
        "workspace": cfg.workspace,
        "frame_mode": cfg.frame_attention.value,
        "attention_slicing": cfg.attention_slicing,
        "group_norm": cfg.group_norm.value,
        "model_config": cfg.model_config,
        "vae": cfg.vae,
        "lora": cfg.lora,
        "embeddings": cfg.embeddings,
    }


@dataclass
class LoadedModel:
    """The one model a worker keeps loaded, for every job that asks for the same one (the local
    executor passes it from clip group to clip group, so a batch of many clips loads its model once)."""

    spec: dict | None = None  # what it was loaded with: `VideoP2P.from_pretrained`'s arguments
    pipe: VideoP2P | None = None

    def for_job(self, cfg: RunConfig) -> VideoP2P:
        """The pipeline `cfg` runs on: the kept one, or a new one loaded in its place."""
        from videop2p.pipeline import VideoP2P

        spec = model_spec(cfg)
        if spec != self.spec:
            self.spec = self.pipe = None  # the model before goes before the next is loaded
            self.pipe, self.spec = VideoP2P.from_pretrained(**spec), spec
        return self.pipe


def run_group(jobs: list[Job], sentinel: str | None = None, loaded: LoadedModel | None = None) -> list[JobResult]:
    """Run one clip's jobs in order in this process, sharing one loaded model (`loaded`, kept for the
    next group when the caller passes one) and the workspace."""
    worker = f"{socket.gethostname()}:{os.getpid()}"
    root = Path(jobs[0].config.workspace)
    if sentinel is not None and not (root / sentinel).exists():
        message = (
            f"workspace root {root} is not visible from worker {worker}; give a workspace on storage that "
            "every Ray node mounts at the same path"
        )
        return [JobResult(j.name, "failed", j.config.out, error=message, worker=worker) for j in jobs]
    loaded = LoadedModel() if loaded is None else loaded
    results = []
    for job in jobs:
        cfg = job.config
        if is_finished(job):
            logger.info("%s: finished by an earlier run, skipped", job.name)
            results.append(JobResult(job.name, "skipped", cfg.out, worker=worker))
            continue
        _log_job(job)
        started = time.perf_counter()
        try:
            manifest = loaded.for_job(cfg).run(cfg)
        except Exception as e:  # one failing job must not stop the others
            logger.error("%s failed: %s", job.name, _said(e, job))
            logger.debug("%s", traceback.format_exc())
            seconds = time.perf_counter() - started
            results.append(JobResult(job.name, "failed", cfg.out, seconds, error=_describe(e, job), worker=worker))
            continue
        stages = {
            k: {"seconds": round(v["seconds"], 3), "action": v.get("action", "")} for k, v in manifest["stages"].items()
        }
        seconds = time.perf_counter() - started
        result = JobResult(job.name, "done", cfg.out, seconds, stages, worker=worker, warnings=manifest["warnings"])
        _mark_finished(job, result)
        results.append(result)
    return results


def _log_job(job: Job) -> None:
    """The line a job's log begins with: its clip, prompts and output folder (what its stages log follows)."""
    cfg = job.config
    targets = ", ".join(repr(t) for t in cfg.targets)
    logger.info("%s: %s, %r -> %s (outputs in %s)", job.name, cfg.video.path, cfg.source, targets, cfg.out)


def _describe(e: BaseException, job: Job | None = None) -> str:
    """A failure in one line, as batch.json keeps it: the error's type and what it says (`_said`)."""
    return f"{type(e).__name__}: {_said(e, job)}"


def _said(e: BaseException, job: Job | None) -> str:
    """What a job's error says, a bad setting of it (an OptionError; a clip or model that cannot be used, a
    `SettingProblem` of one setting) named as the jobs file's checks name one: by its config file's key where
    one gave it (`Job.named`), else by the job's."""
    if job is None or not isinstance(e, OptionError | SettingProblem) or e.option is None:
        return str(e)
    return f"{job.named.get(e.option, file_key(e.option))} {e.reason}"


def _run_local(
    groups: list[list[Job]], settings: BatchSettings, sentinel: str, loaded: LoadedModel | None = None
) -> list[JobResult]:
    loaded = LoadedModel() if loaded is None else loaded
    return [r for group in groups for r in run_group(group, sentinel, loaded)]


def import_ray():
    try:
        import ray
    except ImportError:
        raise BatchError(f"--executor ray needs Ray, which is not installed: {RAY_INSTALL}") from None
    return ray


RAY_ANSWER_SECONDS = 5.0  # how long a cluster's head is given to accept a connection before it is named absent


def check_ray_address(address: str | None) -> None:
    """A cluster address that nothing answers is named at once: Ray itself retries it for minutes."""
    target = ray_host_port(address) if address else None
    if target is None:
        return
    try:
        with socket.create_connection(target, timeout=RAY_ANSWER_SECONDS):
            pass
    except OSError as e:
        raise BatchError(
            f"no Ray cluster answers at --address {address} ({e.strerror or e}); start one there (`ray start "
            "--head`), or leave --address out to start a local Ray for the batch."
        ) from None


def _run_ray(groups: list[list[Job]], settings: BatchSettings, sentinel: str) -> list[JobResult]:
    ray = import_ray()
    started_here = not ray.is_initialized()
    if started_here:
        kwargs = {"include_dashboard": False, "log_to_driver": not settings.quiet}
        try:
            ray.init(**({"address": settings.address} if settings.address else {}), **kwargs)
        except Exception as e:  # noqa: BLE001 (Ray's own errors, e.g. Ray Client without its extra, as one line)
            where = f"join the Ray cluster at {settings.address}" if settings.address else "start a local Ray"
            raise BatchError(f"could not {where}: {str(e).strip().splitlines()[0]}") from None
    try:
        task = ray.remote(num_cpus=settings.num_cpus, num_gpus=settings.num_gpus, max_retries=0)(ray_task)
        threads = max(1, int(settings.num_cpus))
        futures = [task.remote(group, sentinel, threads) for group in groups]
        results = []
        for group, future in zip(groups, futures, strict=True):
            try:
                results.extend(ray.get(future))
            except Exception as e:  # a worker that died takes its group with it, no more
                results.extend(
                    JobResult(j.name, "failed", j.config.out, error=f"Ray task failed: {_describe(e)}") for j in group
                )
        return results
    finally:
        if started_here:
            ray.shutdown()


_EXECUTORS: dict[Executor, Callable] = {Executor.LOCAL: _run_local, Executor.RAY: _run_ray}


def _check_clip(video: VideoConfig) -> None:
    """The clip is readable and holds the frames asked for, judged as `videop2p run` judges it before
    its model loads (`check_video`: headers and declared counts, nothing decoded)."""
    from videop2p.io.video import check_video

    check_video(video.path, video.start, video.frames, video.stride, video.fps)


def _check_model_config(cfg: RunConfig) -> None:
    """`--model-config` only for an original checkpoint, naming a diffusers folder or a hub id."""
    from videop2p.models.loading import check_model_config

    check_model_config(cfg.model, cfg.model_config)


def _check_vae(vae: str) -> None:
    from videop2p.models.vae import check_vae_spec

    check_vae_spec(vae)


def _check_lora(lora: tuple[str, float]) -> None:
    from videop2p.models.lora import check_lora

    check_lora(*lora)


def _check_embedding(embedding: tuple[str, str | None]) -> None:
    from videop2p.models.embeddings import check_embedding

    check_embedding(*embedding)


def check_local_inputs(jobs: list[Job], loaded: LoadedModel | None = None) -> None:
    """Before any job runs here, every unfinished job's clip holds the frames it asks for, its model
    path (with the architecture it names, if any) is there, and its prompts, words and schedules suit
    its model (`VideoP2P.check_inputs`, each model loaded once, the first group's last so that it stays
    loaded in `loaded` for the run): a typo in a path, a frame count or a blend word fails the batch at
    once, naming the job, instead of after the jobs before it. (A Ray task checks its own: the driver
    may not see the nodes' files.)"""
    from videop2p.models.loading import check_model_path

    todo = [job for job in jobs if not is_finished(job)]
    seen: set[tuple] = set()
    for job in todo:
        cfg = job.config
        v = cfg.video
        checks = (
            (("video", v.path, v.start, v.frames, v.stride, v.fps), _check_clip, v),
            (("model", cfg.model), check_model_path, cfg.model),
            (("model_config", cfg.model, cfg.model_config), _check_model_config, cfg),
            (("vae", cfg.vae), _check_vae, cfg.vae),
            *((("lora", path, scale), _check_lora, (path, scale)) for path, scale in cfg.lora.items()),
            *((("embedding", p, token), _check_embedding, (p, token)) for p, token in cfg.embeddings.items()),
        )
        for key, check, value in checks:
            if value is None or key in seen:
                continue
            try:
                check(value)
            except (ValueError, OSError) as e:  # VideoError, ModelNotFoundError
                raise BatchError(f"{job.where}: {_said(e, job)}") from None
            seen.add(key)
    by_model: dict[str, list[Job]] = {}
    for job in todo:
        by_model.setdefault(key_of(model_spec(job.config)), []).append(job)
    loaded = LoadedModel() if loaded is None else loaded
    for model_jobs in reversed(by_model.values()):  # the first job's model is loaded last, and kept
        for job in model_jobs:
            try:
                loaded.for_job(job.config).check_inputs(job.config)
            except (ValueError, OSError) as e:  # an OptionError too: a side its model cannot take
                raise BatchError(f"{job.where}: {_said(e, job)}") from None


def run_batch(jobs: list[Job], workspace: Path, settings: BatchSettings | None = None) -> list[JobResult]:
    """Run every job with the chosen executor; results in job order."""
    settings = settings or BatchSettings()
    executor = Executor(settings.executor)  # the enum or its name
    jobs = [replace(job, config=replace(job.config, quiet=settings.quiet)) for job in jobs]  # the caller's stay
    run = _EXECUTORS[executor]
    if executor is Executor.RAY:
        import_ray()  # fail before any work when Ray is missing, or no cluster is at the address
        check_ray_address(settings.address)
    else:
        loaded = LoadedModel()
        check_local_inputs(jobs, loaded)
        run = functools.partial(_run_local, loaded=loaded)
    workspace.mkdir(parents=True, exist_ok=True)
    sentinel = f".batch-{uuid.uuid4().hex}"
    (workspace / sentinel).write_text(socket.gethostname())
    try:
        results = run(group_jobs(jobs), settings, sentinel)
    finally:
        (workspace / sentinel).unlink(missing_ok=True)
    order = {j.name: i for i, j in enumerate(jobs)}
    return sorted(results, key=lambda r: order[r.name])


@dataclass
class JobPlan:
    """What `run_batch` would do with one job (`dry_run_batch`)."""

    name: str
    status: str  # "skip" (finished by an earlier run) or "run"
    out: str
    stages: list[PlannedStage] = field(default_factory=list)


def dry_run_batch(jobs: list[Job]) -> list[JobPlan]:
    """What `run_batch` would do with `jobs`, in job order, with nothing computed or written: the jobs
    checked as it checks them here (`check_local_inputs`), a job an earlier run finished skipped, and each
    other job's stages as `VideoP2P.dry_run` says them, a workspace entry that a job before it in the batch
    computes counted as reused (the jobs in the order this process runs them)."""
    loaded = LoadedModel()
    check_local_inputs(jobs, loaded)
    coming: set[str] = set()  # the entries the jobs planned so far compute
    plans = {}
    for job in (job for group in group_jobs(jobs) for job in group):
        if is_finished(job):
            plans[job.name] = JobPlan(job.name, "skip", job.config.out)
            continue
        _log_job(job)
        try:
            found = loaded.for_job(job.config).dry_run(job.config)
        except (ValueError, OSError) as e:  # a side the loaded model cannot take, a clip that does not decode
            raise BatchError(f"{job.where}: {_said(e, job)}") from None
        force = job.config.force
        stages = [  # an entry the batch computes first: reused, whatever the workspace keeps of it now
            replace(s, action="reuse", why=None) if s.entry in coming and not force else s for s in found.stages
        ]
        coming |= {s.entry for s in stages if s.entry is not None and s.action != "reuse"}
        plans[job.name] = JobPlan(job.name, "run", job.config.out, stages)
    return [plans[job.name] for job in jobs]


def plan_table(plans: list[JobPlan]) -> str:
    """A plain-text table of a dry run: job, whether it runs, what each stage would do, outputs; then why a
    kept entry would not be reused."""
    head = f"{'job':20s} {'plan':6s} {'tune':8s} {'invert':8s} {'edit':8s} outputs"
    lines = [head, "-" * len(head)]
    for p in plans:
        actions = {s.stage: s.action for s in p.stages}
        cells = " ".join(f"{actions.get(stage, '-'):8s}" for stage in ("tune", "invert", "edit"))
        lines.append(f"{p.name[:20]:20s} {p.status:6s} {cells} {p.out}")
    lines += [f"{p.name}: {s.stage}: {s.why}" for p in plans for s in p.stages if s.why]  # a damaged entry kept
    return "\n".join(lines)


def write_manifest(results: list[JobResult], path: Path, settings: BatchSettings, seconds: float) -> None:
    """The batch manifest, written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "executor": Executor(settings.executor).value,
        "seconds": seconds,
        "counts": {s: sum(r.status == s for r in results) for s in ("done", "skipped", "failed")},
        "jobs": [asdict(r) for r in results],
    }
    write_json(path, data)


def summary_table(results: list[JobResult]) -> str:
    """A plain-text table: job, status, time per stage, outputs or error."""
    head = f"{'job':20s} {'status':8s} {'tune':>14s} {'invert':>14s} {'edit':>14s} {'total':>8s}  outputs / error"
    lines = [head, "-" * len(head)]
    for r in results:
        cells = []
        for stage in ("tune", "invert", "edit"):
            s = r.stages.get(stage)
            cells.append(f"{s['seconds']:6.1f}s {s['action'][:7]:7s}" if s else f"{'-':>14s}")
        error = (r.error or "failed").strip().splitlines() or ["failed"]
        tail = error[0] if r.status == "failed" else r.out  # a torch error runs on for lines; batch.json keeps all
        if r.warnings:
            tail += f" ({len(r.warnings)} warning{'s' if len(r.warnings) > 1 else ''}: see its report.md)"
        lines.append(f"{r.name[:20]:20s} {r.status:8s} {' '.join(cells)} {r.seconds:7.1f}s  {tail}")
    return "\n".join(lines)
