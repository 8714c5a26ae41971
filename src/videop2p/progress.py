"""Per-stage progress: a tqdm bar plus an optional hook told of every step (a UI's progress, cancellation)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")
StepHook = Callable[[str, int, int], None]  # (stage, steps done, total); may raise to stop the stage


LOG_INTERVAL = 30.0  # seconds between a bar's redraws where it writes to a log (a file, a pipe, CI)


def _is_log(stream) -> bool:
    """Whether `stream` is a log (a file, a pipe): no terminal, and no notebook's cell output, which shows each
    drawing in place as a terminal does (ipykernel's stream)."""
    if type(stream).__module__.startswith("ipykernel"):
        return False
    isatty = getattr(stream, "isatty", None)
    try:
        return not (isatty and isatty())
    except (ValueError, OSError):  # a closed stream
        return True


def progress_bar(iterable: Iterable[T] | None = None, **kwargs) -> tqdm:
    """A tqdm bar (`kwargs` are tqdm's) that, where its stream (stderr by default) is a log (`_is_log`), redraws
    every LOG_INTERVAL seconds rather than ten times a second: a log file gets a line's worth a stage, not
    thousands of drawings. tqdm's own setting, `TQDM_MININTERVAL` in the environment, is left to rule.

    In a log every bar is drawn on its own line (position 0): a bar inside another (a stage inside a long
    clip's windows) would otherwise move a terminal's cursor up to its row, an escape a log shows as `[A`."""
    if not _is_log(kwargs.get("file") or sys.stderr):
        return tqdm(iterable, **kwargs)
    chosen = any(key.upper() == "TQDM_MININTERVAL" for key in os.environ)
    if not chosen:  # miniters 1: no stale redraw by tqdm's monitor
        kwargs = {"mininterval": LOG_INTERVAL, "miniters": 1, **kwargs}
    return tqdm(iterable, **{"position": 0, **kwargs})


class Cancelled(RuntimeError):
    """A run stopped on request; no result of the stopped stage was written (its kept steps stay, to resume)."""


def steps(items: Iterable[T], stage: str, show: bool, on_step: StepHook | None = None) -> Iterator[T]:
    """Iterate `items` under a tqdm bar named `stage`, calling `on_step` before each item and at the end."""
    items = list(items)
    total = len(items)
    for i, item in enumerate(progress_bar(items, desc=stage, disable=not show)):
        if on_step is not None:
            on_step(stage, i, total)
        yield item
    if on_step is not None:
        on_step(stage, total, total)
