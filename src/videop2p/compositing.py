"""Edits at the input's own resolution: the working-size edit is scaled back over the part of the input
it was made from and pasted through the feathered local-blend mask, so that every pixel outside the
edited region is the input's own.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from videop2p.config import ResizeMode

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels, end exclusive


def working_boxes(source: tuple[int, int], work: tuple[int, int], mode: ResizeMode | str) -> tuple[Box, Box]:
    """Where `resize_frames` put the input: the box of the input (width, height) `source` that the
    working frame shows, and the box of the working frame (width, height) `work` that shows it."""
    (w0, h0), (w, h) = source, work
    mode = ResizeMode(mode)
    if mode is ResizeMode.STRETCH:
        return (0, 0, w0, h0), (0, 0, w, h)
    s = max(w / w0, h / h0) if mode is ResizeMode.CROP else min(w / w0, h / h0)
    sw, sh = max(1, round(w0 * s)), max(1, round(h0 * s))
    if mode is ResizeMode.CROP:  # the working frame is the centre of the scaled input
        x, y = (sw - w) // 2, (sh - h) // 2
        return (round(x / s), round(y / s), round((x + w) / s), round((y + h) / s)), (0, 0, w, h)
    x, y = (w - sw) // 2, (h - sh) // 2  # pad: the scaled input sits in the middle of the working frame
    return (0, 0, w0, h0), (x, y, x + sw, y + sh)


FEATHER_RADIUS = 4  # the widest feathering, in pixels, computed at the output's own size


def feathered(mask: torch.Tensor, size: tuple[int, int], radius: int) -> torch.Tensor:
    """A (h, w) bool mask scaled to `size` (H, W), grown by `radius` pixels and then softened over
    `radius` pixels: 1 on the mask, 0 from about 2 * radius away, in between a ramp.

    A wider feathering is computed on a grid `radius // FEATHER_RADIUS` times coarser and scaled up
    bilinearly (the ramp is linear, so it stays one; it reaches up to three coarse cells further), the
    mask grown by one more coarse cell so that the ramp starts at 1 from its edge: pooling windows of
    2 * radius + 1 pixels cost 19 s a 1080p frame, the coarse grid milliseconds (bench/composite.py)."""
    scale = max(1, radius // FEATHER_RADIUS)
    grid = (math.ceil(size[0] / scale), math.ceil(size[1] / scale))
    r = round(radius / scale)  # radius itself when scale is 1
    grow = r + (scale > 1)  # the coarse grid's cell at the mask's edge is 1 too
    m = F.interpolate(mask[None, None].float(), size=grid, mode="nearest")
    if r > 0:
        m = F.max_pool2d(m, 2 * grow + 1, 1, grow)
        m = F.avg_pool2d(m, 2 * r + 1, 1, r, count_include_pad=False)
    if scale > 1:  # scaled up, and exactly 1 on the mask's own pixels
        m = F.interpolate(m, size=size, mode="bilinear", align_corners=False)
        m = torch.maximum(m, F.interpolate(mask[None, None].float(), size=size, mode="nearest"))
    return m[0, 0].clamp(0, 1)


def paste_weights(
    masks: torch.Tensor | None,
    source: tuple[int, int],
    work: tuple[int, int],
    resize: ResizeMode | str,
    cell: int = 8,
) -> torch.Tensor:
    """(F, H, W) weight of the edit at each input pixel: the feathered mask inside the box the working
    frame shows, 0 outside it (None: 1 over the whole box). Pixels of weight 0 keep the input's values.

    masks: (F, h_m, w_m) bool local-blend masks; source and work are (width, height); `cell` is the
    side in working pixels of one mask cell (the VAE's factor), which sets the feathering.
    """
    (w0, h0), (w, h) = source, work
    src, dst = working_boxes(source, work, resize)
    box = (src[3] - src[1], src[2] - src[0])
    out = torch.zeros(1 if masks is None else len(masks), h0, w0)
    if masks is None:
        out[:, src[1] : src[3], src[0] : src[2]] = 1.0
        return out
    radius = math.ceil(cell * box[1] / max(dst[2] - dst[0], 1) / 2)
    for f, mask in enumerate(masks):
        full = F.interpolate(mask[None, None].float(), size=(h, w), mode="nearest")[0, 0].bool()
        out[f, src[1] : src[3], src[0] : src[2]] = feathered(full[dst[1] : dst[3], dst[0] : dst[2]], box, radius)
    return out


def composite(
    originals: Iterable[np.ndarray],
    edited: np.ndarray,
    masks: torch.Tensor | None,
    resize: ResizeMode | str,
    cell: int = 8,
    to_signal: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Iterator[np.ndarray]:
    """Paste working-size `edited` frames (F, h, w, 3) into the input frames (each (H, W, 3), read one
    at a time) through `paste_weights` (masks (F, h_m, w_m) bool, or None for the whole edited frame);
    yields the pasted frames one by one, so a long clip at full resolution is never held whole.

    The input frames are 8-bit, or a deep clip's own 16-bit values (HDR, or SDR of more than 8 bits), into
    which the edit is pasted in their form: `to_signal` turns the edit's scaled 8-bit pixels (h', w', 3)
    into it (`io.video.to_signal_converter`)."""
    _, h, w, _ = edited.shape
    for f, original in enumerate(originals):
        h0, w0 = original.shape[:2]
        src, dst = working_boxes((w0, h0), (w, h), resize)
        weight = paste_weights(masks[f : f + 1] if masks is not None else None, (w0, h0), (w, h), resize, cell)[0]
        rows, cols = weight.amax(1).nonzero().flatten(), weight.amax(0).nonzero().flatten()
        if len(rows) == 0:  # nothing of this frame is edited
            yield original
            continue
        y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1  # inside `src`
        scaled = Image.fromarray(edited[f, dst[1] : dst[3], dst[0] : dst[2]]).resize(
            (src[2] - src[0], src[3] - src[1]), Image.BICUBIC
        )  # the edit, scaled over the box it shows; blended where its weight is not 0, a box's worth of work
        part = np.asarray(scaled)[y0 - src[1] : y1 - src[1], x0 - src[0] : x1 - src[0]]  # (h', w', 3) uint8
        part = (to_signal(part) if to_signal is not None else part).astype(np.float32)  # in the input's form
        m, kept = weight[y0:y1, x0:x1].numpy()[..., None], original[y0:y1, x0:x1]
        out = original.copy()
        out[y0:y1, x0:x1] = np.where(m > 0, np.round(kept * (1 - m) + part * m), kept).astype(original.dtype)
        yield out
