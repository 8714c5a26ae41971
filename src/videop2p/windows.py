"""Long clips: overlapping windows of frames that all read the same anchor frames.

Video-P2P's frame attention reads one anchor (frame 0) from every frame, so windows that each carry
the anchor stay consistent in identity and appearance however long the clip is. At every step each
window is predicted on its own and the predictions are combined over the overlaps, as MultiDiffusion
(Bar-Tal et al. 2023, eq. 5) combines image regions, with time in place of space: by MultiDiffusion's plain
average (default), or by a linear cross-fade over each overlap. This removes the seams
that temporal attention, seeing only its own window, would leave. Peak memory is one window's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch

from videop2p.config import AnchorMode, WindowBlend, WindowConfig
from videop2p.progress import progress_bar


@dataclass(frozen=True)
class Window:
    """The frames one model call sees: its own span of the clip plus the anchor frames."""

    frames: tuple[int, ...]  # clip indices of the rows given to the model, ascending
    anchors: tuple[int, ...]  # positions in `frames` of the anchor frames
    own: tuple[int, ...]  # positions in `frames` of the window's own span (extra anchors excluded)

    @property
    def own_frames(self) -> list[int]:
        """Clip indices of the window's own span."""
        return [self.frames[p] for p in self.own]

    @property
    def anchor_frames(self) -> tuple[int, ...]:
        """Clip indices of the anchors."""
        return tuple(self.frames[p] for p in self.anchors)


@dataclass(frozen=True)
class WindowPlan:
    """How a clip of `num_frames` frames is split, and each window's share of every frame it owns."""

    num_frames: int
    windows: tuple[Window, ...]
    weights: tuple[torch.Tensor, ...]  # per window, (len(own),) weights; over windows they sum to 1 per frame
    settings: dict | None = None  # what decides the split; None: the whole clip with the official anchor

    @property
    def whole(self) -> bool:
        return len(self.windows) == 1

    def key(self) -> dict:
        """What a saved result made with this plan is keyed on besides its own settings: nothing for
        the whole clip with the official anchor (so short clips keep their keys)."""
        return {"windows": self.settings} if self.settings is not None else {}

    def sample(self, generator: torch.Generator) -> Window:
        """A window of the plan's length at a random start (tuning), carrying the anchors."""
        if self.whole:
            return self.windows[0]
        length = len(self.windows[0].own)
        start = int(torch.randint(0, self.num_frames - length + 1, (1,), generator=generator, device=generator.device))
        return _window(range(start, start + length), self.windows[0].anchor_frames)


def frames_per_step(count: int | None, plan: WindowPlan) -> int | None:
    """`count` frames per step, or None where it takes every frame of any window the plan gives (a
    sampled one included: its own span and every anchor), so that asking for more frames than a clip
    has is the same setting, and the same saved result, as asking for every frame."""
    window = plan.windows[0]
    most = plan.num_frames if plan.whole else len(window.own) + len(window.anchors)
    return None if count is None or count >= most else count


def frame_subset(window: Window, count: int | None, generator: torch.Generator) -> Window:
    """`count` of the window's frames for one tuning step: its anchors and others drawn at random
    without replacement, in clip order (None, or not fewer than it has: the window itself).

    Temporal attention has no position encoding (Tune-A-Video), so a subset is a shorter clip of the
    same motion, and frame attention still reads the anchors."""
    if count is None or count >= len(window.frames):
        return window
    anchors = window.anchor_frames
    others = [f for f in window.frames if f not in anchors]
    draw = torch.randperm(len(others), generator=generator, device=generator.device)[: max(count - len(anchors), 0)]
    return _window(window.own_frames, anchors, [*anchors, *(others[int(i)] for i in draw)])


def anchor_frames(num_frames: int, mode: AnchorMode | str) -> tuple[int, ...]:
    """Clip indices of the anchor frames: frame 0, and with FIRST_MIDDLE the middle frame too."""
    if AnchorMode(mode) is AnchorMode.FIRST or num_frames < 3:
        return (0,)
    return (0, num_frames // 2)


def spans(num_frames: int, size: int, overlap: int) -> list[range]:
    """Spans of `size` frames from the clip's first frame to its last, as few as share at least
    `overlap` frames with their neighbours, spread evenly (so no window is short or redundant)."""
    if num_frames <= size:
        return [range(num_frames)]
    count = math.ceil((num_frames - overlap) / (size - overlap))
    starts = [round(i * (num_frames - size) / (count - 1)) for i in range(count)]
    return [range(s, s + size) for s in starts]


def _window(span: Iterable[int], anchors: tuple[int, ...], frames: Iterable[int] | None = None) -> Window:
    """The window of `span` and the anchors; `frames`: only these of its frames (default: all of them)."""
    span = set(span)
    frames = sorted(set(frames) if frames is not None else span | set(anchors))
    return Window(
        frames=tuple(frames),
        anchors=tuple(frames.index(a) for a in anchors),
        own=tuple(i for i, f in enumerate(frames) if f in span),
    )


def plan_windows(num_frames: int, cfg: WindowConfig | None = None) -> WindowPlan:
    """Windows for a clip: one for the whole clip when it fits, else overlapping spans with the anchors."""
    cfg = cfg or WindowConfig()
    size = num_frames if cfg.size is None else cfg.size
    anchors = anchor_frames(num_frames, cfg.anchors)
    windows = tuple(_window(s, anchors) for s in spans(num_frames, size, cfg.overlap))
    raw = [_shares(i, windows, WindowBlend(cfg.blend)) for i in range(len(windows))]
    cover = torch.zeros(num_frames)
    for w, r in zip(windows, raw, strict=True):
        cover[w.own_frames] += r
    weights = tuple(r / cover[w.own_frames] for w, r in zip(windows, raw, strict=True))  # sum to 1 per frame
    split = len(windows) > 1 or AnchorMode(cfg.anchors) is not AnchorMode.FIRST
    settings = None
    if split:
        settings = {"size": size, "overlap": cfg.overlap, "anchors": AnchorMode(cfg.anchors).value}
        if len(windows) > 1 and WindowBlend(cfg.blend) is not WindowBlend.UNIFORM:
            settings["blend"] = WindowBlend(cfg.blend).value
    return WindowPlan(num_frames, windows, weights, settings)


def _shares(i: int, windows: tuple[Window, ...], blend: WindowBlend) -> torch.Tensor:
    """Unnormalised share of window i in each of its own frames: 1, or with RAMP a linear ramp over the
    frames it shares with the window before it and with the one after it (a cross-fade)."""
    own = windows[i].own_frames
    n = len(own)
    share = torch.ones(n)
    if blend is WindowBlend.UNIFORM:
        return share
    j = torch.arange(n, dtype=torch.float32)
    if i > 0:
        left = len(set(own) & set(windows[i - 1].own_frames))  # frames shared with the previous window
        share = torch.minimum(share, (j + 1) / (left + 1))
    if i < len(windows) - 1:
        right = len(set(own) & set(windows[i + 1].own_frames))
        share = torch.minimum(share, (n - j) / (right + 1))
    return share


def windowed(
    call: Callable[[torch.Tensor, Window], torch.Tensor],
    latents: torch.Tensor,
    plan: WindowPlan,
    on_window: Callable[[Window], None] | None = None,
    show: bool = False,
) -> torch.Tensor:
    """`call(latents[:, window.frames], window)` for every window, blended into (B, F, ...) outputs."""
    if plan.whole:
        window = plan.windows[0]
        if on_window is not None:
            on_window(window)
        return call(latents, window)
    out = None
    for window, weight in zip(each_window(plan, show), plan.weights, strict=True):
        if on_window is not None:
            on_window(window)
        part = call(latents[:, list(window.frames)], window)  # (B, F_w, ...)
        if out is None:
            out = torch.zeros(latents.shape[0], plan.num_frames, *part.shape[2:], dtype=part.dtype, device=part.device)
        shape = (1, -1) + (1,) * (part.dim() - 2)
        out[:, window.own_frames] += part[:, list(window.own)] * weight.to(part).reshape(shape)
    return out


def each_window(plan: WindowPlan, show: bool) -> Iterator[Window]:
    """The plan's windows under a transient tqdm bar that says which window is running."""
    yield from progress_bar(plan.windows, desc="window", leave=False, disable=not show or plan.whole)
