"""Edits at the input's own resolution: the working-size edit is scaled back over the part of the input
it was made from and pasted through the feathered local-blend mask, so that every pixel outside the
edited region is the input's own.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

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


def feathered(mask: torch.Tensor, size: tuple[int, int], radius: int) -> torch.Tensor:
    """A (h, w) bool mask scaled to `size` (H, W), grown by `radius` pixels and then softened over
    `radius` pixels: 1 on the mask, 0 from 2 * radius away, in between a ramp."""
    m = F.interpolate(mask[None, None].float(), size=size, mode="nearest")
    if radius > 0:
        k = 2 * radius + 1
        m = F.max_pool2d(m, k, 1, radius)
        m = F.avg_pool2d(m, k, 1, radius, count_include_pad=False)
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
) -> Iterator[np.ndarray]:
    """Paste working-size `edited` frames (F, h, w, 3) into the input frames (each (H, W, 3), read one
    at a time) through `paste_weights` (masks (F, h_m, w_m) bool, or None for the whole edited frame);
    yields the pasted frames one by one, so a long clip at full resolution is never held whole."""
    _, h, w, _ = edited.shape
    for f, original in enumerate(originals):
        h0, w0 = original.shape[:2]
        src, dst = working_boxes((w0, h0), (w, h), resize)
        weight = paste_weights(masks[f : f + 1] if masks is not None else None, (w0, h0), (w, h), resize, cell)
        m = weight[0].numpy()[..., None]
        scaled = Image.fromarray(edited[f, dst[1] : dst[3], dst[0] : dst[2]]).resize(
            (src[2] - src[0], src[3] - src[1]), Image.BICUBIC
        )
        part = np.zeros_like(original, dtype=np.float32)  # the edit, scaled over the box it shows
        part[src[1] : src[3], src[0] : src[2]] = np.asarray(scaled, dtype=np.float32)
        mixed = np.round(original * (1 - m) + part * m)
        yield np.where(m > 0, mixed, original).astype(np.uint8)
