"""Edits at the input's own resolution: the working-size edit is scaled back over the part of the input
it was made from and pasted through the feathered local-blend mask, so that every pixel outside the
edited region is the input's own.
"""

from __future__ import annotations

import math

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


def composite(
    original: np.ndarray,
    edited: np.ndarray,
    masks: torch.Tensor | None,
    resize: ResizeMode | str,
    cell: int = 8,
) -> np.ndarray:
    """Paste working-size `edited` frames (F, h, w, 3) into the input frames `original` (F, H, W, 3).

    masks: (F, h_m, w_m) bool local-blend masks (None: the whole edited frame is used); `cell` is the
    side in working pixels of one mask cell (the VAE's factor), which sets the feathering.
    """
    (_, h0, w0, _), (_, h, w, _) = original.shape, edited.shape
    src, dst = working_boxes((w0, h0), (w, h), resize)
    box_w, box_h = src[2] - src[0], src[3] - src[1]
    scale = box_w / max(dst[2] - dst[0], 1)
    radius = math.ceil(cell * scale / 2) if masks is not None else 0
    out = original.copy()
    for f in range(len(original)):
        part = Image.fromarray(edited[f, dst[1] : dst[3], dst[0] : dst[2]]).resize((box_w, box_h), Image.BICUBIC)
        region = original[f, src[1] : src[3], src[0] : src[2]].astype(np.float32)
        if masks is None:
            out[f, src[1] : src[3], src[0] : src[2]] = np.asarray(part)
            continue
        full = F.interpolate(masks[f][None, None].float(), size=(h, w), mode="nearest")[0, 0].bool()
        m = feathered(full[dst[1] : dst[3], dst[0] : dst[2]], (box_h, box_w), radius).numpy()[..., None]
        mixed = region * (1 - m) + np.asarray(part, dtype=np.float32) * m
        out[f, src[1] : src[3], src[0] : src[2]] = np.where(m > 0, np.round(mixed), region).astype(np.uint8)
    return out
