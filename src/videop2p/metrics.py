"""Image metrics shared by the evaluation suite and the toy model's checks."""

from __future__ import annotations

import numpy as np


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Peak signal-to-noise ratio of uint8 images in dB, over the pixels of `mask` when it selects any."""
    d = (a.astype(np.float64) - b.astype(np.float64)) ** 2
    mse = float(d[mask].mean()) if mask is not None and mask.any() else float(d.mean())
    return 10 * np.log10(255.0**2 / max(mse, 1e-10))
