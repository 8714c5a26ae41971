"""A deterministic judge that reads a toy-world image back into (shape, colour, background)."""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

from videop2p.toy.world import BACKGROUND_RGB, COLOR_RGB, Background, Color, Shape

# Fill ratio of the object inside its bounding box: (robust box) triangle ~0.63, circle ~0.82, square 1.0.
_TRIANGLE_MAX_FILL = 0.71
_CIRCLE_MAX_FILL = 0.93
_OBJECT_DISTANCE = 45.0  # RGB distance from the background colour that marks object pixels


@dataclass(frozen=True)
class Reading:
    """What the checker reads off one image."""

    shape: Shape | None  # None when no object was found
    color: Color | None
    background: Background
    mask: np.ndarray  # (H, W) bool, the object pixels used


def _hue(rgb: np.ndarray) -> tuple[float, float, float]:
    h, s, v = colorsys.rgb_to_hsv(*(np.asarray(rgb, dtype=np.float64) / 255.0))
    return h * 360.0, s, v


_COLOR_HUES = {c: _hue(np.array(rgb))[0] for c, rgb in COLOR_RGB.items()}


def classify_color(pixels: np.ndarray) -> Color:
    """Nearest object colour by hue of the median pixel, (N, 3) uint8 -> Color."""
    h, _, _ = _hue(np.median(pixels.reshape(-1, 3), axis=0))
    return min(_COLOR_HUES, key=lambda c: min(abs(h - _COLOR_HUES[c]), 360 - abs(h - _COLOR_HUES[c])))


def classify_background(pixels: np.ndarray) -> Background:
    """Nearest background by RGB distance of the median pixel, (N, 3) uint8 -> Background."""
    med = np.median(pixels.reshape(-1, 3).astype(np.float64), axis=0)
    return min(BACKGROUND_RGB, key=lambda b: float(np.sum((med - np.array(BACKGROUND_RGB[b])) ** 2)))


def classify_shape(mask: np.ndarray) -> Shape | None:
    """Shape from the fill ratio of the mask inside its robust bounding box."""
    ys, xs = np.nonzero(mask)
    if len(ys) < 6:
        return None
    y0, y1 = np.percentile(ys, [1, 99])
    x0, x1 = np.percentile(xs, [1, 99])
    box = (y1 - y0 + 1) * (x1 - x0 + 1)
    fill = float(len(ys)) / max(box, 1.0)
    if fill < _TRIANGLE_MAX_FILL:
        return Shape.TRIANGLE
    return Shape.CIRCLE if fill < _CIRCLE_MAX_FILL else Shape.SQUARE


def border_pixels(image: np.ndarray, width: int = 2) -> np.ndarray:
    """Pixels of the frame's border, (N, 3)."""
    top, bottom = image[:width].reshape(-1, 3), image[-width:].reshape(-1, 3)
    left, right = image[:, :width].reshape(-1, 3), image[:, -width:].reshape(-1, 3)
    return np.concatenate([top, bottom, left, right])


def object_mask(image: np.ndarray, background_rgb: np.ndarray) -> np.ndarray:
    """Pixels far from the background colour, (H, W) bool."""
    dist = np.sqrt(np.sum((image.astype(np.float64) - background_rgb[None, None]) ** 2, axis=-1))
    return dist > _OBJECT_DISTANCE


def read_image(image: np.ndarray, mask: np.ndarray | None = None) -> Reading:
    """Read (shape, colour, background) from an (H, W, 3) uint8 image; `mask` gives the object if known."""
    if mask is None:
        background = classify_background(border_pixels(image))
        mask = object_mask(image, np.median(border_pixels(image).astype(np.float64), axis=0))
    else:
        outside = image[~mask]
        background = classify_background(outside if len(outside) else border_pixels(image))
    if mask.sum() < 6:
        return Reading(shape=None, color=None, background=background, mask=mask)
    return Reading(shape=classify_shape(mask), color=classify_color(image[mask]), background=background, mask=mask)
