"""Image metrics shared by the evaluation suite and the toy model's checks."""

from __future__ import annotations

import numpy as np


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Peak signal-to-noise ratio of uint8 images in dB, over the pixels of `mask` when it selects any."""
    d = (a.astype(np.float64) - b.astype(np.float64)) ** 2
    mse = float(d[mask].mean()) if mask is not None and mask.any() else float(d.mean())
    return _decibels(mse)


def video_psnr(a: np.ndarray, b: np.ndarray) -> float:
    """`psnr` of two (F, H, W, C) uint8 videos over every pixel, summed a frame at a time (a long clip's
    float copy is never held whole)."""
    total = sum(float(((x.astype(np.float64) - y.astype(np.float64)) ** 2).sum()) for x, y in zip(a, b, strict=True))
    return _decibels(total / max(a.size, 1))


def _decibels(mse: float) -> float:
    """PSNR of uint8 values of mean squared error `mse` (a floor of 1e-10: equal images give 148 dB, not inf)."""
    return 10 * np.log10(255.0**2 / max(mse, 1e-10))
