"""A workspace that keeps tuned deltas, inversions and edits so later edits of the same clip reuse them.

One folder per clip identity (clip, model weights, size, frame attention, tuning settings): its key
is the tuned model's `delta_key`. Inversions and edits live inside it, keyed on their own settings,
so an inversion is always filed under the delta it was made with. Entries are written through the
atomic writer under a file lock, so a run killed at any moment never leaves an entry that loads.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock, Timeout

from videop2p.config import WORKSPACE_NAME
from videop2p.store.codec import CorruptFileError, load_tensors, read_meta, read_tensor, save_tensors
from videop2p.store.files import read_json, write_json

WAITING_NOTE_S = 60.0  # how often a run waiting for another's entry says it is still waiting
TUNING_KEYS = ("tune", "frame_mode", "group_norm")  # what of a clip's identity its tuning settings give
DELTA_FILE = "tune.safetensors"  # a tuned clip's own tensors and identity, in its workspace folder (and exports)

logger = logging.getLogger(__name__)


def is_delta_identity(meta: dict) -> bool:
    """Whether a tensors file's metadata is a tuned clip's identity (what `DELTA_FILE` holds): the model it
    was tuned from and its frame attention."""
    return "frame_mode" in meta and "model" in meta


# A kept result's setting as a config file names it: a clip identity's own keys, else its stage's section's
IDENTITY_KEYS = {"frame_mode": "frame_attention", "group_norm": "group_norm", "dtype": "dtype", "windows": "window"}
# what a setting left out of a key (or kept as None) stands for: float32 weights, the whole clip in one window,
# every frame in each tuning or null-text step
UNSET_MEANS = {"dtype": "float32", "windows": "the whole clip at once", "frames": "every frame"}


def setting_name(key: str, section: str) -> str:
    """The config file's name of a kept result's setting `key` of stage `section` ("tune": `tune.frames`)."""
    return IDENTITY_KEYS.get(key, f"{section}.{key}")


def setting_value(key: str, value: Any) -> str:
    """A kept setting's value as a message reads it: a setting left unset as what it stands for (`UNSET_MEANS`),
    a mapping as its pairs (`size 4, overlap 2`)."""
    if value is None:
        return UNSET_MEANS.get(key, "none")
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    return str(value)


def settings_difference(mine: dict, theirs: dict, section: str) -> list[str]:
    """How the settings `theirs` of stage `section` differ from `mine`, one `tune.steps 2 (this run: 500)` per
    setting (each compared as it is stored: a tuple as the list its file holds; a setting one of them leaves
    out as what that stands for)."""
    mine, theirs = _as_stored(mine), _as_stored(theirs)
    keys = [k for k in {**theirs, **mine} if mine.get(k) != theirs.get(k)]
    return [
        f"{setting_name(k, section)} {setting_value(k, theirs.get(k))} (this run: {setting_value(k, mine.get(k))})"
        for k in keys
    ]


def tuning_difference(identity: dict, other: dict) -> list[str]:
    """How the tuning settings of the clip identity `other` differ from `identity`'s (`settings_difference`)."""
    return settings_difference(_tuning_settings(identity), _tuning_settings(other), "tune")


def set_apart(identities: list[dict]) -> list[dict]:
    """For each clip identity, its tuning settings (`{"seed": 7}`) that differ from another's of the same clip,
    prompt and model: what tells kept tunings of one clip apart (none for a clip tuned once), each setting where
    its value is not the one most of them share (with no such value, every tuning's), named and read as
    `settings_difference` says them (`{"tune.seed": "7", "dtype": "float16"}`; left out: as what that stands for)."""
    stored = [_as_stored(i) for i in identities]
    clip_of = [json.dumps(_untuned(i), sort_keys=True) for i in stored]
    settings = [_tuning_settings(i) for i in stored]
    shared = {
        clip: _shared_values([s for s, c in zip(settings, clip_of, strict=True) if c == clip]) for clip in clip_of
    }
    return [
        {setting_name(k, "tune"): setting_value(k, mine.get(k)) for k, v in shared[clip].items() if _held(mine, k) != v}
        for mine, clip in zip(settings, clip_of, strict=True)
    ]


def _shared_values(tunings: list[dict]) -> dict[str, str | None]:
    """Of the settings in which `tunings` (one clip's) differ, the value most of them share (`_held`), or None
    where no value is held by more than any other."""
    shared = {}
    for k in dict.fromkeys(k for t in tunings for k in t):
        counts = Counter(_held(t, k) for t in tunings)
        if len(counts) > 1:
            (common, most), *rest = counts.most_common()
            shared[k] = common if rest[0][1] < most else None
    return shared


def _held(settings: dict, key: str) -> str:
    """The value `settings` hold for `key`, comparable across tunings (None where they leave it out)."""
    return json.dumps(settings.get(key), sort_keys=True)


def _as_stored(data: dict) -> dict:
    """`data` as a JSON file holds it (tuples as lists, other values as `key_of` reads them)."""
    return json.loads(json.dumps(data, default=str))


def _untuned(identity: dict) -> dict:
    """A clip identity without its tuning settings: the clip, prompt and model that tunings of it share."""
    return {k: v for k, v in identity.items() if k not in TUNING_KEYS}


def _tuning_settings(identity: dict) -> dict:
    return {**{k: identity.get(k) for k in TUNING_KEYS if k != "tune"}, **(identity.get("tune") or {})}


def key_of(data: dict) -> str:
    """A stable short hash of a JSON-able dict."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def clip_identity(
    model: str,
    frames_hash: str,
    size: tuple[int, int],
    num_frames: int,
    prompt: str,
    frame_mode: str,
    group_norm: str,
    tune: dict,
) -> dict:
    """The one identity of a tuned clip: what its delta is valid for and where its entries are filed.

    `model` is the weights' fingerprint (the same from a hub id or a local copy); `tune` holds the
    tuning settings that change the result.
    """
    return {
        "model": model,
        "frames_hash": frames_hash,
        "size": list(size),
        "num_frames": num_frames,
        "prompt": prompt,
        "frame_mode": frame_mode,
        "group_norm": group_norm,
        "tune": tune,
    }


@dataclass(frozen=True)
class StageReport:
    """What one stage of one run did."""

    stage: str  # "load", "tune", "invert", "edit" or "write"
    action: str  # "computed", "resumed" (computed on from a stopped run's kept state), "reused" or "skipped"
    # (nothing to compute: a tuning of 0 steps keeps the model's weights as they are, and files them)
    seconds: float  # wall time of the stage
    unet_evaluations: int = 0  # UNet calls it made (0 when reused)
    entry: str | None = None  # the workspace entry it read or wrote

    def to_dict(self) -> dict:
        """Its fields, as outputs.json and the workspace's history keep them."""
        return asdict(self)


@dataclass(frozen=True)
class Workspace:
    """The workspace root; holds no state beyond the files under it."""

    root: Path

    def clip_dir(self, delta_key: str) -> Path:
        """The folder of the tuned clip `delta_key` (`key_of` its identity): its delta, inversions and edits."""
        return Path(self.root) / f"clip-{delta_key}"

    def delta_path(self, delta_key: str) -> Path:
        """Where the tuned delta of clip `delta_key` is kept."""
        return self.clip_dir(delta_key) / DELTA_FILE

    def open_clip(self, identity: dict) -> Path:
        """Create the folder of `identity` with its `key.json` (for people to read) when new; returns
        where its tuned delta is kept."""
        key = key_of(identity)
        if not (self.clip_dir(key) / "key.json").exists():
            write_json(self.clip_dir(key) / "key.json", identity)
        return self.delta_path(key)

    def close_unused(self, path: Path) -> None:
        """After a tuning that failed before it kept anything: remove the folder `open_clip` made for
        it (its `key.json` alone) and the workspace root when nothing else is in it either. A folder
        with anything more (a kept state, another run's files) stays; a run of the same clip that
        opened it meanwhile writes `key.json` again with its delta."""
        folder = path.parent
        if not folder.is_dir() or {p.name for p in folder.iterdir()} - {"key.json", _lock_file(path).name}:
            return
        for p in folder.iterdir():
            p.unlink(missing_ok=True)
        for d in (folder, Path(self.root)):
            with contextlib.suppress(OSError):  # not empty: another run's files are there
                d.rmdir()

    def close_failed(self, entry: Path) -> None:
        """After a stage that stopped before saving `entry`: remove the entry's lock file and its folder
        when nothing else is there (kept steps, other entries and a clip's `key.json` keep it), so that
        a stopped stage leaves only what it kept to resume. A run waiting on the removed file takes the lock
        on a new one (filelock >= 3.21 retries a lock taken on a removed file), so no third run gets in
        beside it."""
        with contextlib.suppress(OSError):  # a lock file another process holds, on Windows
            _lock_file(entry).unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # not empty
            entry.parent.rmdir()

    def inversion_path(self, delta_key: str, inversion_key: dict) -> Path:
        """Where an inversion of the tuned clip `delta_key` with the settings of `inversion_key` is kept."""
        return self.clip_dir(delta_key) / "inversions" / f"inv-{key_of(inversion_key)}.safetensors"

    def steps_of(self, entry: Path, meta: dict) -> StepFiles:
        """Where the finished steps of `entry` are kept while it is being computed."""
        return StepFiles(entry.with_name(f"{entry.stem}.steps"), meta)

    def has_kept_steps(self, entry: Path) -> bool:
        """Whether a stopped run kept finished steps of `entry` (`steps_of`'s folder holds any)."""
        root = Path(self.steps_of(entry, {}).root)
        return root.is_dir() and any(root.iterdir())

    def edit_path(self, delta_key: str, edit_key: dict) -> Path:
        """Where an edit of the tuned clip `delta_key` with the prompts and settings of `edit_key` is kept."""
        return self.clip_dir(delta_key) / "edits" / f"edit-{key_of(edit_key)}.safetensors"

    @contextlib.contextmanager
    def lock(self, entry: Path, waiting: str | None = None, every: float = WAITING_NOTE_S) -> Iterator[None]:
        """Exclusive lock on one entry, so two runs (processes, or threads of one) never compute or write it
        at once (an OS file lock, on every platform: `flock` on Linux and macOS, `msvcrt` on Windows);
        `waiting` is logged when another holds it, and again with the time waited `every` seconds."""
        entry.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(_lock_file(entry))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            if waiting:
                logger.info(waiting)
            started = time.monotonic()
            while True:
                try:
                    lock.acquire(timeout=every)
                    break
                except Timeout:
                    if waiting:
                        logger.info("%s (%.0f s so far)", waiting, time.monotonic() - started)
        try:
            yield
        finally:
            lock.release()

    def log(self, report: StageReport, seen: dict | None = None) -> None:
        """Append a stage's report, with the time, to the workspace's history (`events.jsonl`); `seen`: the
        names the run knew its model and clip by (`seen_names`), which `workspace list` shows."""
        logger.info("%s: %s (%s) in %.1f s", report.stage, report.action, report.entry, report.seconds)
        Path(self.root).mkdir(parents=True, exist_ok=True)
        with open(Path(self.root) / "events.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps({**report.to_dict(), **(seen or {}), "at": time.time()}) + "\n")

    def tuned_otherwise(self, identity: dict) -> list[dict]:
        """The identities of the clips kept tuned here that are `identity`'s clip, prompt and model tuned with
        other settings (TUNING_KEYS differ): a run that asks for other settings tunes anew, and may say so."""
        identity = _as_stored(identity)
        same = _untuned(identity)
        found = []
        for folder in sorted(Path(self.root).glob("clip-*")):
            if not (folder / DELTA_FILE).is_file():
                continue
            try:
                other = read_json(folder / "key.json")
            except (OSError, ValueError):
                continue
            if isinstance(other, dict) and other != identity and _untuned(other) == same:
                found.append(other)
        return found

    def inverted_otherwise(self, delta_key: str, prompt: str, frames_hash: str, settings: dict) -> list[dict]:
        """The settings of the inversions kept for the tuned clip `delta_key` of the same frames and prompt
        but other `settings`: a run that asks for other settings inverts anew, and may say so."""
        settings, found = _as_stored(settings), []
        for file in sorted((self.clip_dir(delta_key) / "inversions").glob("inv-*.safetensors")):
            try:
                meta = read_meta(file).get("meta")
            except (OSError, CorruptFileError, ValueError):
                continue
            same = isinstance(meta, dict) and (meta.get("prompt"), meta.get("frames_hash")) == (prompt, frames_hash)
            if same and isinstance(meta.get("settings"), dict) and meta["settings"] != settings:
                found.append(meta["settings"])
        return found

    def history(self) -> tuple[dict[str, float], dict[str, dict[str, str]]]:
        """What the history (`events.jsonl`) says of each clip folder (by its name, `clip-<key>`): when a run
        last used it, and the names its latest runs knew its model and clip by (`seen_names`)."""
        used: dict[str, float] = {}
        seen: dict[str, dict[str, str]] = {}
        for event in read_events(self.root):  # in the order they were written: a later name replaces one before
            parts = reversed(Path(str(event.get("entry") or "")).parts)  # the innermost clip-<key>/ folder
            folder = next((part for part in parts if part.startswith("clip-")), None)
            if folder is not None and isinstance(event.get("at"), int | float):
                used[folder] = max(used.get(folder, 0.0), float(event["at"]))
                names = {k: event[k] for k in SEEN_NAMES if isinstance(event.get(k), str) and event[k]}
                seen[folder] = {**seen.get(folder, {}), **names}
        return used, seen

    def clips(self) -> list[ClipEntry]:
        """Every tuned clip kept here, the most recently used first, with the names its latest runs knew its
        model and clip by."""
        used, seen = self.history()
        found = [
            clip_entry(d, used.get(d.name), seen.get(d.name, {}))
            for d in sorted(Path(self.root).glob("clip-*"))
            if d.is_dir()
        ]
        return sorted(found, key=lambda c: c.last_used, reverse=True)

    def remove(self, entry: ClipEntry, unfinished_only: bool = False, dry_run: bool = False) -> int:
        """Delete a tuned clip with its inversions and edits (or only the kept states of its stopped
        stages); returns the bytes freed (with `dry_run`, deletes nothing and returns what it would free).
        Only folders this workspace made are touched."""
        if entry.folder.parent.resolve() != Path(self.root).resolve() or not entry.folder.name.startswith("clip-"):
            raise ValueError(f"{entry.folder} is not a clip folder of the workspace {self.root}.")
        folders = sorted(entry.folder.rglob("*.steps")) if unfinished_only else [entry.folder]
        freed = sum(folder_bytes(folder) for folder in folders)
        for folder in [] if dry_run else folders:
            shutil.rmtree(folder, ignore_errors=True)
        return freed


@dataclass(frozen=True)
class ClipEntry:
    """One tuned clip of a workspace: what it was tuned for and what is kept of it."""

    folder: Path  # clip-<key>/
    identity: dict  # its key.json: model, clip, size, frames, prompt, settings ({} when unreadable)
    tuned: bool  # its tuned delta is there
    tuning_at: int | None  # without it: the step of a stopped tuning's kept state, if any
    inversions: int
    edits: int
    unfinished: int  # kept states of stopped stages (resumed by the next run with their settings)
    size_bytes: int
    last_used: float  # seconds since the epoch: the latest run that used it, else its newest file
    seen: dict = field(default_factory=dict)  # "model", "clip": the names its latest runs knew them by (`seen_names`)

    @property
    def key(self) -> str:
        return self.folder.name.removeprefix("clip-")


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


SEEN_NAMES = ("model", "clip")  # what a run's history says of its model and clip beside its stages' reports


def seen_names(model: str, clip: str | os.PathLike | None = None) -> dict[str, str]:
    """The names a run knows its model by (`ModelInfo.identity`: its source, `@`, its fingerprint) and its clip
    by (the file or folder it was read from, made absolute; none for frames given in memory), as the
    workspace's history keeps them beside a stage's report (`Workspace.log`)."""
    return {"model": model, **({"clip": str(Path(clip).resolve())} if clip else {})}


def seen_model_name(seen: dict) -> str | None:
    """The name a run loaded its model by, of the names its history keeps (`seen_names`): the source part of the
    model's identity (`videop2p-toy`, a folder's or hub repository's name), without its fingerprint; None if none."""
    model = seen.get("model")
    return model.rpartition("@")[0] if isinstance(model, str) else None


def read_events(root: str | os.PathLike) -> list[dict]:
    """The workspace's history (`events.jsonl`), skipping lines that do not read (a run killed mid-line)."""
    path = Path(root) / "events.jsonl"
    if not path.is_file():
        return []
    events = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            event = json.loads(line)
            if isinstance(event, dict):
                events.append(event)
    return events


def clip_entry(folder: Path, last_used: float | None = None, seen: dict | None = None) -> ClipEntry:
    """What a clip folder holds; `last_used` and `seen` from the history (`Workspace.clips`), else the newest
    file's time and no names."""
    try:
        identity = read_json(folder / "key.json")
    except (OSError, ValueError):
        identity = {}
    files = [p for p in folder.rglob("*") if p.is_file()]
    newest = max((p.stat().st_mtime for p in files), default=folder.stat().st_mtime)
    return ClipEntry(
        folder=folder,
        identity=identity if isinstance(identity, dict) else {},
        tuned=(folder / DELTA_FILE).is_file(),
        tuning_at=max(StepFiles(folder / "tune.steps", {}).kept("tune"), default=None),
        inversions=len(list(folder.glob("inversions/inv-*.safetensors"))),
        edits=len(list(folder.glob("edits/edit-*.safetensors"))),
        unfinished=len(list(folder.rglob("*.steps"))),
        size_bytes=sum(p.stat().st_size for p in files),
        last_used=last_used if last_used is not None else newest,
        seen=dict(seen or {}),
    )


@dataclass(frozen=True)
class StepFiles:
    """The finished steps of a long stage, one file each beside its entry (or only the last state,
    `save_latest`), so that a stage interrupted at any moment resumes from its last finished step.
    Steps made for other settings (`meta`) or damaged are ignored; `clear` removes them once the
    entry is saved."""

    root: Path  # folder of the step files
    meta: dict  # what the steps are made for

    def path(self, phase: str, step: int) -> Path:
        return Path(self.root) / f"{phase}-{step:05d}.safetensors"

    def kept(self, phase: str) -> list[int]:
        """The steps of `phase` that have a file here, in order (read from the names `path` gives)."""
        names = (p.stem.removeprefix(f"{phase}-") for p in Path(self.root).glob(f"{phase}-*.safetensors"))
        return sorted(int(n) for n in names if n.isdigit())

    def made_for(self) -> dict:
        """`meta` as it reads back from a step file (what a kept step must carry to be used)."""
        return json.loads(json.dumps(self.meta, default=str))

    def save(self, phase: str, step: int, tensors: dict) -> None:
        save_tensors(self.path(phase, step), tensors, {"for": self.meta, "phase": phase, "step": step})

    def count(self, phase: str) -> int:
        """How many consecutive finished steps of `phase`, from step 0 on, are kept here for these
        settings (only their headers are read: a damaged or truncated file ends the count)."""
        done, made_for = 0, self.made_for()
        while self.path(phase, done).exists():
            try:
                meta = read_meta(self.path(phase, done))  # safetensors checks the file's length against its header
            except CorruptFileError as e:
                logger.warning("ignoring a damaged step file: %s", e)
                break
            if not _made_for(meta, made_for, phase):
                break
            done += 1
        if done:
            logger.info("resuming %s from step %d (%s)", phase, done, self.root)
        return done

    def tensor(self, phase: str, step: int, name: str, device: str | torch.device = "cpu") -> torch.Tensor:
        """Tensor `name` of a kept step (one that `count` counted), read alone."""
        return read_tensor(self.path(phase, step), name, device)

    def save_latest(self, phase: str, step: int, tensors: dict) -> None:
        """Keep the state of `phase` after `step` steps in place of any earlier one (a stage that
        resumes from its last state, not from every step)."""
        self.save(phase, step, tensors)
        for older in self.kept(phase):
            if older != step:
                self.path(phase, older).unlink(missing_ok=True)

    def latest(self, phase: str, device: str = "cpu") -> tuple[int, dict] | None:
        """The last kept state of `phase` made for these settings, as (steps done, tensors); None
        when there is none. Damaged states and states made for other settings are ignored."""
        made_for = self.made_for()
        for step in reversed(self.kept(phase)):
            path = self.path(phase, step)
            try:  # the header first: a state made for other settings is not read whole (SD 1.5's: 851 MiB)
                meta = read_meta(path)
                if not _made_for(meta, made_for, phase):
                    continue
                tensors, _ = load_tensors(path, device)
            except CorruptFileError as e:
                logger.warning("ignoring a damaged step file: %s", e)
                continue
            logger.info("resuming %s from step %d (%s)", phase, meta["step"], self.root)
            return int(meta["step"]), tensors
        return None

    def clear(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _made_for(meta: dict, made_for: dict, phase: str) -> bool:
    """Whether a kept step's metadata says it is a step of `phase` made for these settings."""
    return meta.get("for") == made_for and meta.get("phase") == phase


def _lock_file(entry: Path) -> Path:
    """The file an entry's lock is taken on, beside it."""
    return entry.with_name(f".{entry.name}.lock")


def _loaded(stage: str, path: Path | None, load: Callable[[], Any]) -> Any:
    """`load()` of the entry at `path` when it is there; None when it is not, or does not load (warned)."""
    if path is None or not path.exists():
        return None
    try:
        return load()
    except (OSError, KeyError, ValueError) as e:
        logger.warning("ignoring workspace %s entry %s: %s", stage, path, e)
        return None


def reuse_or_compute(
    workspace: Workspace | None,
    stage: str,
    path: Path | None,
    force: bool,
    compute: Callable[[], Any],
    load: Callable[[], Any],
    save: Callable[[Any], Any],
    evaluations: Callable[[Any], int],
    resumed: Callable[[Any], bool] | None = None,
    skipped: bool = False,
    seen: dict | None = None,
) -> tuple[Any, StageReport]:
    """`load()` the entry at `path` when it is there and valid (unless `force`), else `compute()` and
    `save` it, both under the entry's lock; returns the value and what was done ("resumed" when
    `resumed` says the computation went on from a stopped run's kept state; "skipped" where a computation
    was `skipped`: there was nothing to compute, and its value was saved as it is); the history keeps the report
    with the names of `seen` (`seen_names`). A run that finds another
    computing the same entry waits for it and loads what it saved (two runs sharing a workspace would
    otherwise both compute it, and one would lose the kept steps the other removes on finishing). An
    entry that does not load (another version, a mismatch, a damaged file) is recomputed with a warning."""
    started = time.perf_counter()
    absent = path is None or not path.exists()
    value = None if force else _loaded(stage, path, load)
    action = "computed" if value is None else "reused"
    if value is None and workspace is not None and path is not None:
        with workspace.lock(path, f"{stage}: another run is computing {path}; waiting for it to finish"):
            if absent and not force:  # saved while this run waited (one that did not load is not read twice)
                value = _loaded(stage, path, load)
            action = "computed" if value is None else "reused"
            if value is None:
                try:
                    value = compute()
                except BaseException:
                    workspace.close_failed(path)
                    raise
                save(value)
    elif value is None:
        value = compute()
    count = evaluations(value) if action == "computed" else 0
    if action == "computed" and resumed is not None and resumed(value):
        action = "resumed"
    elif action == "computed" and skipped:
        action = "skipped"
    report = StageReport(stage, action, time.perf_counter() - started, count, str(path) if path else None)
    if workspace is not None and path is not None:
        workspace.log(report, seen)
    return value, report


def here_workspace_with(root: str | os.PathLike, delta_key: str) -> Path | None:
    """The current folder's `.videop2p-workspace` (where a run without `--out` keeps its work) when it is
    not `root` and keeps the tuned clip `delta_key`: a run into another output folder, whose workspace is
    beside that one, tunes again, and may say where the same tuning is."""
    here = Path.cwd() / WORKSPACE_NAME
    if here.resolve() == Path(root).resolve() or not Workspace(here).delta_path(delta_key).is_file():
        return None
    return here


def default_workspace(out_dir: str | os.PathLike) -> Path:
    """`.videop2p-workspace` beside the output folder, so that runs into other output folders share it;
    inside it when the output folder is the current folder or above it (`--out .` keeps the workspace
    where the user is, not in a parent folder they may not own)."""
    out, here = Path(out_dir).resolve(), Path.cwd().resolve()
    return out / WORKSPACE_NAME if out == here or out in here.parents else out.parent / WORKSPACE_NAME
