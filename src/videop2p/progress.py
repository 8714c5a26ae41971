"""Per-stage progress: a tqdm bar plus an optional hook told of every step (a UI's progress, cancellation)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")
StepHook = Callable[[str, int, int], None]  # (stage, steps done, total); may raise to stop the stage


class Cancelled(RuntimeError):
    """A run stopped on request; no result of the stopped stage was written (its kept steps stay, to resume)."""


def steps(items: Iterable[T], stage: str, show: bool, on_step: StepHook | None = None) -> Iterator[T]:
    """Iterate `items` under a tqdm bar named `stage`, calling `on_step` before each item and at the end."""
    items = list(items)
    total = len(items)
    for i, item in enumerate(tqdm(items, desc=stage, disable=not show)):
        if on_step is not None:
            on_step(stage, i, total)
        yield item
    if on_step is not None:
        on_step(stage, total, total)
