"""The one atomic writer: every artefact goes to a temporary path beside its target and is renamed
into place, so a reader sees the old file or the new one, never half of one (huggingface_hub's
download-then-move pattern)."""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import os
import re
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _temporary(path: Path) -> Path:
    """A hidden sibling of `path` unique to this machine, process and thread, with the same suffix."""
    return path.with_name(f".{path.stem}.{socket.gethostname()}.{os.getpid()}.{threading.get_ident()}.tmp{path.suffix}")


def _remove_abandoned_temporaries(path: Path) -> None:
    """The temporaries of `path` whose writer was killed outright on this machine (a tuned delta of
    Stable Diffusion's size is hundreds of MiB): their process is gone. (A stopped tuning's step files
    go with their folder once the delta is kept.)"""
    head, tail = f".{path.stem}.{socket.gethostname()}.", f".tmp{path.suffix}"
    found = path.parent.glob(f"{glob.escape(head)}*{glob.escape(tail)}")
    _remove_dead_writers((tmp, tmp.name[len(head) : -len(tail)].split(".")[0]) for tmp in found)


def _remove_dead_writers(found: Iterator[tuple[Path, str]]) -> None:
    """Remove each (file or folder, the process id its name holds) whose process is gone."""
    for item, pid in found:
        if not pid.isdigit() or _running(int(pid)):
            continue
        if item.is_dir():
            shutil.rmtree(item, ignore_errors=True)
        else:
            item.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path (a folder when `directory`) that replaces `path` when the block ends
    without an exception, and is removed when it raises."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_temporaries(path)
    tmp = _temporary(path)
    if directory:
        tmp.mkdir()
    try:
        yield tmp
        if directory and path.is_dir():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except Exception as e:
        failed = write_failure(e, path, tmp)
        if failed is None:
            raise
        raise failed from e
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


def check_writable(what: str, path: str | os.PathLike, purpose: str) -> None:
    """Before any work: a folder `path` can be made (or written into, when it is there), tried by making
    and removing a hidden folder in the nearest folder of it that exists, so that a read-only disk or
    a folder without permission is named now, not after the stages that write into it. ValueError
    names it, as `config.check_folder` does (which runs first: no part of the path is a file)."""
    path = Path(path).expanduser()
    failed = _cannot_write_in(path)
    if failed is not None:
        raise ValueError(
            f"{what} {str(path)!r} cannot be written ({failed}); give a folder you can write in {purpose}."
        )


def check_file_writable(what: str, path: str | os.PathLike) -> None:
    """Before any work: a file `path` can be written at the end, tried as `check_writable` tries a folder, in
    the nearest folder of its own that exists (`config.check_file` runs first: the path is no folder, and no
    part of it a file)."""
    failed = _cannot_write_in(Path(path).expanduser().parent)
    if failed is not None:
        raise ValueError(
            f"{what} {str(path)!r} cannot be written ({failed}); give a path in a folder you can write in."
        )


def _cannot_write_in(folder: Path) -> str | None:
    """Why nothing can be made in `folder` (the system's words), tried by making and removing a hidden folder in
    the nearest folder of it that exists; None where it can."""
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".videop2p-probe-", dir=_nearest_folder(folder)))
    except OSError as e:
        return e.strerror
    return None


def check_room(what: str, path: str | os.PathLike, need: int, purpose: str) -> None:
    """Before a long stage: the disk of folder `path` has `need` bytes free for what it will write at
    its end (`purpose`), so that a full disk is named before the work, not after it."""
    path = Path(path).expanduser()
    free = shutil.disk_usage(_nearest_folder(path)).free
    if free < need:
        raise ValueError(
            f"{what} {str(path)!r} has {_mib(free)} free; {purpose} take {_mib(need)}: free some space "
            "there, or give another folder."
        )


def _mib(size: int) -> str:
    """A byte count in MiB, to a tenth below 10 MiB."""
    return f"{size / 2**20:.{1 if size < 10 * 2**20 else 0}f} MiB"


def _nearest_folder(path: Path) -> Path:
    """`path`, or the nearest folder above it that exists (where a folder at `path` would be made)."""
    return next(p for p in (path, *path.parents) if p.exists())


STAGE_PREFIX = ".videop2p-writing-"  # then host, process and thread: the hidden folder of a set being written


def _remove_abandoned(root: Path) -> None:
    """The hidden folders of sets whose writer was killed outright (SIGKILL, the system's out-of-memory
    killer) on this machine: their process is gone. Other machines' (a shared disk) are left alone."""
    found = root.glob(f"{glob.escape(STAGE_PREFIX + socket.gethostname())}-*")
    _remove_dead_writers((folder, folder.name.rsplit("-", 2)[-2]) for folder in found)


def _running(pid: int) -> bool:
    """Whether process `pid` exists (POSIX: signal 0 probes it; elsewhere it is taken to run, as
    Windows' os.kill would end it)."""
    if os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, under another user
        return True
    return True


@contextlib.contextmanager
def staged_files(root: str | os.PathLike, last: str | None = None) -> Iterator[Path]:
    """Yield a hidden folder inside `root` to write a set of files into; when the block ends without
    an exception, each is moved into `root` (renames on one disk: no copy, no space needed), `last`
    after the others, so that `root` gains the whole set or, when the block raises, none of it (the
    folder goes, and so do `root` and the folders above it that this made, when nothing else is in them)."""
    root = Path(root)
    made = [d for d in (root, *root.parents) if not d.exists()]  # the folders this makes, innermost first
    _remove_abandoned(root)
    stage = root / f"{STAGE_PREFIX}{socket.gethostname()}-{os.getpid()}-{threading.get_ident()}"
    stage.mkdir(parents=True, exist_ok=True)
    try:
        yield stage
        for entry in sorted(stage.iterdir(), key=lambda p: p.name == last):
            if entry.is_dir() and (root / entry.name).is_dir():
                shutil.rmtree(root / entry.name)
            os.replace(entry, root / entry.name)
    except OSError as e:  # named by where the file was going, not by the hidden folder
        if e.errno is None or e.filename is None or stage not in Path(e.filename).parents:
            raise
        raise OSError(e.errno, e.strerror, str(root / Path(e.filename).relative_to(stage))) from e
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        for folder in made:
            with contextlib.suppress(OSError):  # not empty: the set was moved in
                folder.rmdir()


_OS_ERROR = re.compile(r"\(os error (\d+)\)")  # how Rust's io::Error ends (safetensors' SafetensorError)
LOW_SPACE = 1 << 20  # bytes: a write that failed with less free than this ran out of room


def write_failure(e: Exception, path: Path, tmp: Path) -> OSError | None:
    """The OSError behind a writer's failure that does not say it is one, naming `path`: safetensors'
    SafetensorError carries the OS error in its text, and torch.save's stream writer only says
    "unexpected pos", so a full disk is told by the space left beside `tmp`. None when `e` is not
    a write failure (or already an OSError)."""
    if isinstance(e, OSError):  # named by the temporary (or a file in it: a folder's), or not at all (PIL, PyAV)
        if not e.errno:
            return None
        named = [Path(n) for n in (e.filename2, e.filename) if n is not None]  # a copy names its target second
        inside = next((n for n in named if n == tmp or tmp in n.parents), None)
        if named and inside is None:
            return None
        where = path if inside is None else path / inside.relative_to(tmp)
        return OSError(e.errno, e.strerror or os.strerror(e.errno), str(where))
    found = _OS_ERROR.search(str(e))
    if found is not None:
        code = int(found.group(1))
        return OSError(code, os.strerror(code), str(path))
    try:
        full = shutil.disk_usage(tmp.parent).free < LOW_SPACE
    except OSError:
        full = False
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) if full else None


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write `text` to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def read_json(path: str | os.PathLike) -> Any:
    """A JSON file as `write_json` writes it (UTF-8 whatever the platform's default)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write `data` as indented JSON to `path` atomically."""
    return write_text(path, json.dumps(data, indent=2, default=str))
