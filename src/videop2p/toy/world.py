"""A procedural toy world: one or two coloured shapes moving over a textured background.

Every clip comes with its caption, per-frame ground-truth masks and its parameters, so that edits
made in this world have a ground truth.
"""

from __future__ import annotations

import enum
import numbers
import re
from dataclasses import asdict, dataclass, field

import numpy as np

from videop2p.config import OptionError, check_number, not_a_member


class Shape(enum.StrEnum):
    CIRCLE = "circle"
    SQUARE = "square"
    TRIANGLE = "triangle"


class Color(enum.StrEnum):
    RED = "red"
    ORANGE = "orange"
    YELLOW = "yellow"
    GREEN = "green"
    BLUE = "blue"
    PURPLE = "purple"


class Background(enum.StrEnum):
    GRASS = "grass"
    SAND = "sand"
    WATER = "water"
    SNOW = "snow"


class Motion(enum.StrEnum):
    LINEAR = "linear"
    BOUNCE = "bounce"
    ARC = "arc"


class Size(enum.StrEnum):
    SMALL = "small"
    BIG = "big"


# RGB of each object colour (saturated) and each background (muted), chosen to be far apart.
COLOR_RGB: dict[Color, tuple[int, int, int]] = {
    Color.RED: (225, 35, 35),
    Color.ORANGE: (245, 135, 20),
    Color.YELLOW: (240, 220, 30),
    Color.GREEN: (30, 200, 60),
    Color.BLUE: (35, 80, 235),
    Color.PURPLE: (150, 45, 205),
}
BACKGROUND_RGB: dict[Background, tuple[int, int, int]] = {
    Background.GRASS: (85, 125, 55),
    Background.SAND: (215, 195, 150),
    Background.WATER: (45, 100, 150),
    Background.SNOW: (236, 240, 246),
}
# Object radius as a fraction of the frame side.
MIN_FRAME_SIDE = 16  # the smallest frame the world draws, in pixels
MAX_FRAME_SIDE = 1024  # the largest: 2 frames take 2.3 s and 0.6 GB to render (4096: 44 s, 9 GB)
MAX_CLIP_PIXELS = 2**28  # frames x side^2 held at once (frames and masks: about 1 GB)
SIZE_FRACTION: dict[Size, float] = {Size.SMALL: 0.14, Size.BIG: 0.22}
VERBS = ("moving", "sliding", "gliding")
_SUPERSAMPLE = 4


def parse_enum(kind: type[enum.Enum], value: str | enum.Enum, option: str | None = None) -> enum.Enum:
    """Parse `value` into the enum `kind`, or raise an OptionError of `option` (the kind's name by default)
    naming the valid values."""
    if isinstance(value, kind):
        return value
    try:
        return kind(str(value).lower())
    except ValueError:
        raise OptionError(option or kind.__name__.lower(), f"{not_a_member(value, kind)}.") from None


@dataclass(frozen=True)
class ToyObject:
    """One object of a toy clip."""

    shape: Shape  # outline of the object
    color: Color  # fill colour
    size: Size = Size.BIG  # radius class


@dataclass
class ToyClipSpec:
    """Everything that determines a toy clip."""

    objects: list[ToyObject]  # one or two objects, drawn in order
    background: Background = Background.GRASS  # textured background
    motion: Motion = Motion.LINEAR  # motion path of every object
    frames: int = 8  # number of frames
    size: int = 64  # side of the square frame in pixels
    seed: int = 0  # seeds texture, start point and direction
    verb: str = "moving"  # verb used in the caption

    def caption(self) -> str:
        return caption_for(self.objects, self.background, self.verb)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["objects"] = [{k: v.value for k, v in asdict(o).items()} for o in self.objects]
        d["background"] = self.background.value
        d["motion"] = self.motion.value
        return d


@dataclass
class ToyClip:
    """A rendered clip with its ground truth."""

    frames: np.ndarray  # (F, H, W, 3) uint8
    masks: np.ndarray  # (F, n_objects, H, W) bool, coverage >= 0.5
    spec: ToyClipSpec
    centers: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (F, n_objects, 2) xy pixels

    @property
    def caption(self) -> str:
        return self.spec.caption()


def object_phrase(obj: ToyObject, with_size: bool = False, with_color: bool = True) -> str:
    words = ([obj.size.value] if with_size else []) + ([obj.color.value] if with_color else []) + [obj.shape.value]
    return " ".join(words)


def caption_for(
    objects: list[ToyObject],
    background: Background,
    verb: str = "moving",
    with_size: bool = False,
    with_color: bool = True,
) -> str:
    """The canonical caption, e.g. "a red circle moving on the grass" ("a circle moving on the grass"
    without its colour)."""
    phrases = " and ".join(f"a {object_phrase(o, with_size, with_color)}" for o in objects)
    verb_part = f" {verb}" if verb else ""
    return f"{phrases}{verb_part} on the {background.value}"


_CAPTION_RE = re.compile(
    r"^a (?:(?P<size>small|big) )?(?P<color>\w+) (?P<shape>\w+)"
    r"(?: and a (?:(?P<size2>small|big) )?(?P<color2>\w+) (?P<shape2>\w+))?"
    r"(?: (?P<verb>\w+))? on the (?P<bg>\w+)$"
)


def parse_caption(caption: str) -> tuple[list[ToyObject], Background]:
    """Parse a caption written by `caption_for` back into its objects and background."""
    m = _CAPTION_RE.match(caption.strip().lower())
    if m is None:
        raise ValueError(f"Caption {caption!r} is not of the form 'a [size] COLOR SHAPE [verb] on the BACKGROUND'.")
    objects = [
        ToyObject(parse_enum(Shape, m["shape"]), parse_enum(Color, m["color"]), parse_enum(Size, m["size"] or "big"))
    ]
    if m["shape2"]:
        objects.append(
            ToyObject(
                parse_enum(Shape, m["shape2"]), parse_enum(Color, m["color2"]), parse_enum(Size, m["size2"] or "big")
            )
        )
    return objects, parse_enum(Background, m["bg"])


def background_texture(background: Background, size: int, rng: np.random.Generator) -> np.ndarray:
    """A smooth, seeded texture of the background, (H, W, 3) float in [0, 255]."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    base = np.array(BACKGROUND_RGB[background], dtype=np.float32)
    phase = rng.uniform(0, 2 * np.pi, size=3)
    if background is Background.GRASS:  # near-vertical blades
        t = np.sin(2 * np.pi * (6 * x + 0.8 * y) + phase[0]) + 0.5 * np.sin(2 * np.pi * 11 * x + phase[1])
        amp = 9.0
    elif background is Background.SAND:  # diagonal ripples
        t = np.sin(2 * np.pi * 4 * (x + y) + phase[0]) + 0.4 * np.sin(2 * np.pi * 7 * (x - y) + phase[1])
        amp = 8.0
    elif background is Background.WATER:  # horizontal waves
        t = np.sin(2 * np.pi * (5 * y + 0.6 * np.sin(2 * np.pi * 2 * x + phase[2])) + phase[0])
        amp = 10.0
    else:  # snow: soft blotches
        t = np.sin(2 * np.pi * 3 * x + phase[0]) * np.sin(2 * np.pi * 3 * y + phase[1])
        amp = 5.0
    return np.clip(base[None, None, :] + amp * t[..., None], 0, 255)


def shape_coverage(shape: Shape, center: tuple[float, float], radius: float, size: int) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] of a shape centred at `center` (pixels), (H, W)."""
    n = size * _SUPERSAMPLE
    ys, xs = np.mgrid[0:n, 0:n].astype(np.float32)
    xs = (xs + 0.5) / _SUPERSAMPLE - center[0]
    ys = (ys + 0.5) / _SUPERSAMPLE - center[1]
    if shape is Shape.CIRCLE:
        inside = xs**2 + ys**2 <= radius**2
    elif shape is Shape.SQUARE:
        half = radius * 0.886  # same area as the circle
        inside = (np.abs(xs) <= half) & (np.abs(ys) <= half)
    else:  # upward triangle, base at the bottom
        h = radius * 1.1
        top, bottom = -h, h
        half_base = 1.15 * h
        frac = (ys - top) / (bottom - top)
        inside = (ys >= top) & (ys <= bottom) & (np.abs(xs) <= frac * half_base)
    # (H*s, W*s) -> (H, W, s, s) -> mean
    return inside.reshape(size, _SUPERSAMPLE, size, _SUPERSAMPLE).mean(axis=(1, 3))


def motion_path(motion: Motion, frames: int, radius: float, size: int, rng: np.random.Generator) -> np.ndarray:
    """Object centres (F, 2) in pixels along a seeded path that keeps the object in the frame."""
    lo, hi = radius * 1.25, size - radius * 1.25
    t = np.linspace(0.0, 1.0, frames) if frames > 1 else np.zeros(1)
    start = rng.uniform(lo, hi, size=2)
    direction = rng.choice([-1.0, 1.0])
    span = (hi - lo) * 0.5
    x0 = start[0]
    xs = x0 + direction * span * t
    xs = np.where(xs > hi, 2 * hi - xs, xs)
    xs = np.where(xs < lo, 2 * lo - xs, xs)
    if motion is Motion.LINEAR:
        ys = start[1] + rng.uniform(-0.3, 0.3) * span * t
    elif motion is Motion.BOUNCE:
        ys = hi - (hi - lo) * 0.6 * np.abs(np.sin(np.pi * 1.5 * t))
    else:  # arc: a parabola through the middle of the path
        ys = hi - (hi - lo) * 0.7 * 4 * t * (1 - t)
    ys = np.clip(ys, lo, hi)
    return np.stack([xs, ys], axis=1)


def render_clip(spec: ToyClipSpec) -> ToyClip:
    """Render a clip deterministically from its spec."""
    check_number(None, "frames", spec.frames, 1, whole=True)
    check_number(None, "size", spec.size, MIN_FRAME_SIDE, MAX_FRAME_SIDE, whole=True)
    if spec.frames * spec.size**2 > MAX_CLIP_PIXELS:
        most = MAX_CLIP_PIXELS // spec.size**2
        raise ValueError(
            f"{spec.frames} frames of {spec.size}x{spec.size} pixels are too many to render at once; at most {most} at this size."
        )
    if isinstance(spec.seed, bool) or not isinstance(spec.seed, numbers.Integral) or spec.seed < 0:
        raise OptionError("seed", f"{spec.seed!r} is not valid; expected a whole number >= 0.")
    if not 1 <= len(spec.objects) <= 2:
        raise ValueError(f"a toy clip has one or two objects, got {len(spec.objects)}.")
    rng = np.random.default_rng(spec.seed)
    bg = background_texture(spec.background, spec.size, rng)
    radii = [SIZE_FRACTION[o.size] * spec.size for o in spec.objects]
    paths = [motion_path(spec.motion, spec.frames, r, spec.size, rng) for r in radii]
    frames = np.empty((spec.frames, spec.size, spec.size, 3), dtype=np.uint8)
    masks = np.zeros((spec.frames, len(spec.objects), spec.size, spec.size), dtype=bool)
    for f in range(spec.frames):
        img = bg.copy()
        for k, (obj, r, path) in enumerate(zip(spec.objects, radii, paths, strict=True)):
            cov = shape_coverage(obj.shape, (path[f, 0], path[f, 1]), r, spec.size)[..., None]  # (H, W, 1)
            img = img * (1 - cov) + np.array(COLOR_RGB[obj.color], dtype=np.float32) * cov
            masks[f, k] = cov[..., 0] >= 0.5
            for j in range(k):  # a later object hides an earlier one
                masks[f, j] &= ~masks[f, k]
        frames[f] = np.clip(np.round(img), 0, 255).astype(np.uint8)
    centers = np.stack(paths, axis=1)  # (F, n_objects, 2)
    return ToyClip(frames=frames, masks=masks, spec=spec, centers=centers)


def random_spec(rng: np.random.Generator, frames: int = 1, size: int = 64, two_objects_p: float = 0.0) -> ToyClipSpec:
    """A uniformly drawn spec (used for training data and evaluation suites)."""
    n = 2 if rng.random() < two_objects_p else 1
    objects = [
        ToyObject(
            Shape(rng.choice([s.value for s in Shape])),
            Color(rng.choice([c.value for c in Color])),
            Size(rng.choice([s.value for s in Size])),
        )
        for _ in range(n)
    ]
    return ToyClipSpec(
        objects=objects,
        background=Background(rng.choice([b.value for b in Background])),
        motion=Motion(rng.choice([m.value for m in Motion])),
        frames=frames,
        size=size,
        seed=int(rng.integers(0, 2**31 - 1)),
        verb=str(rng.choice(VERBS)),
    )
