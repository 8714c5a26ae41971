"""A workspace that keeps tuned deltas and inversions so later edits of the same clip reuse them.

One folder per (clip, model, size, tuning settings); inversions inside it per (prompt, method,
settings). Entries are written to a temporary file and renamed, under a file lock, so a run killed
at any moment never leaves an entry that loads as valid.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from videop2p.io.files import write_json_atomic

logger = logging.getLogger(__name__)


def key_of(data: dict) -> str:
    """A stable short hash of a JSON-able dict."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class StageEvent:
    """What happened to a stage in this run."""

    stage: str  # "tune" or "invert"
    action: str  # "computed" or "reused"
    path: str  # the workspace entry
    seconds: float  # wall time of the stage


@dataclass
class Workspace:
    """The workspace root and the events of this process."""

    root: Path
    events: list[StageEvent] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.root.mkdir(parents=True, exist_ok=True)

    def clip_dir(self, clip_key: dict) -> Path:
        d = self.root / f"clip-{key_of(clip_key)}"
        d.mkdir(parents=True, exist_ok=True)
        meta = d / "key.json"
        if not meta.exists():
            write_json_atomic(meta, clip_key)
        return d

    def tune_path(self, clip_key: dict) -> Path:
        return self.clip_dir(clip_key) / "tune.safetensors"

    def inversion_path(self, clip_key: dict, inv_key: dict) -> Path:
        d = self.clip_dir(clip_key) / "inversions"
        d.mkdir(exist_ok=True)
        return d / f"inv-{key_of(inv_key)}.safetensors"

    def edit_path(self, clip_key: dict, edit_key: dict) -> Path:
        d = self.clip_dir(clip_key) / "edits"
        d.mkdir(exist_ok=True)
        return d / f"edit-{key_of(edit_key)}.safetensors"

    @contextlib.contextmanager
    def lock(self, entry: Path) -> Iterator[None]:
        """Exclusive lock on one entry, so two runs never write it at once."""
        lock_path = entry.with_name(f".{entry.name}.lock")
        with open(lock_path, "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def record(self, stage: str, action: str, path: Path, started: float) -> None:
        event = StageEvent(stage, action, str(path), time.perf_counter() - started)
        self.events.append(event)
        logger.info("%s: %s (%s) in %.1f s", stage, action, path, event.seconds)
        with open(self.root / "events.jsonl", "a") as f:
            f.write(json.dumps(event.__dict__) + "\n")


def default_workspace(out_dir: str | os.PathLike) -> Path:
    return Path(out_dir).resolve().parent / ".videop2p-workspace"
