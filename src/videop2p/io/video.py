"""Reading clips: containers through PyAV, animated images and frame folders through Pillow, upright, in
sRGB and as an SDR screen shows them (or in a deep clip's own form); their checks, selection and sizes.
Writing them is `io.writing`'s."""

from __future__ import annotations

import contextlib
import io
import itertools
import logging
import math
import os
import re
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np
from PIL import Image, ImageCms, ImageSequence, UnidentifiedImageError

from videop2p.config import (
    COUNT_MAX,
    DEFAULT_FPS,
    FPS_RANGE,
    IMAGE_SUFFIXES,
    VIDEO_SUFFIXES,
    OptionError,
    ResizeMode,
    SettingProblem,
    VideoConfig,
    brief_repr,
    check_number,
    plain_number,
    unusable_reason,
)
from videop2p.io.exr import check_complete, is_exr, read_header, read_linear
from videop2p.io.hdr import (
    BT2020_XY,
    HDR_PEAK,
    HLG,
    PQ,
    REFERENCE_WHITE,
    content_peak,
    hdr_to_sdr_converter,
    linear_to_pq,
    sdr_to_hdr_converter,
)

logger = logging.getLogger(__name__)

GIF_MIN_DELAY = 2  # centiseconds, a GIF's unit of time: browsers show a frame of 0 or 1 cs ...
GIF_SHORT_DELAY_SHOWN = 10  # ... for 10 cs
BT709 = 1  # ITU-R BT.709, in FFmpeg's numbering of colour matrices, primaries and transfers
LIMITED_RANGE = 1  # FFmpeg's number of video's limited (MPEG, 16-235) range
UNSPECIFIED = 2  # FFmpeg's number of a colour matrix the file does not say
RESERVED_MATRIX = 3  # FFmpeg's number of a reserved (meaningless) colour matrix
BT601 = 5  # FFmpeg's number of the BT.601 matrix (BT.470 BG; SMPTE 170M's, 6, is the same)
BT2020 = 9  # FFmpeg's number of the BT.2020 (non-constant luminance) matrix, HDR's
FULL_RANGE = 2  # FFmpeg's number of the full (JPEG, 0-255) range
HDR_TRANSFERS = {PQ: "PQ, SMPTE ST 2084", HLG: "HLG, ARIB STD-B67"}  # the transfers read tone-mapped (`hdr`)
INTERLACED = {2, 3, 4, 5}  # FFmpeg's field orders of interlaced video (top or bottom field first)
VP9_ALPHA = "libvpx-vp9"  # the decoder of a VP9 stream with alpha (`_decoded`)


class VideoError(SettingProblem, ValueError):
    """A video that cannot be read as asked (`option`: video, frames or start, where it is that value)."""


@dataclass(frozen=True)
class AudioSpan:
    """The sound of the selected frames: a span of a file's first audio stream."""

    path: str  # the container holding it
    start: float  # seconds
    end: float  # seconds


@dataclass
class Video:
    """Decoded frames and their frame rate."""

    frames: np.ndarray  # (F, H, W, 3) uint8
    fps: float  # frames per second of the selected frames (their average, where they are not evenly spaced)
    audio: AudioSpan | None = None  # their sound, when the file has an audio stream
    times: np.ndarray | None = None  # (F + 1,) s: when each is shown from the first, and the last ends; None: even

    __repr__ = brief_repr

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return int(self.frames.shape[2]), int(self.frames.shape[1])


def natural_key(name: str) -> list:
    """Sort key that orders "2.jpg" before "10.jpg"."""
    return [int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", name)]


def _listed(folder: Path) -> list[Path]:
    """What a folder holds, hidden entries aside (a `.DS_Store`, macOS's `._1.jpg`), in natural order: the
    order its frames are read in."""
    return sorted((p for p in folder.iterdir() if not p.name.startswith(".")), key=lambda p: natural_key(p.name))


ICC_SPACES = {"RGB": "RGB ", "RGBA": "RGB ", "CMYK": "CMYK"}  # a mode -> its ICC profile's colour space
Transforms = dict[tuple[bytes, str], "ImageCms.ImageCmsTransform | None"]  # (profile, mode) -> to sRGB, or None


def _srgb_transform(icc: bytes, mode: str) -> ImageCms.ImageCmsTransform | None:
    """LittleCMS's transform from an embedded ICC profile of an image of `mode` (`ICC_SPACES`) to sRGB, at
    the profile's own rendering intent, as a colour-managed viewer draws it; None where that changes no
    colour by more than a level (an sRGB profile: a camera's usual, whose curve tables LittleCMS rounds
    a level off in a few colours), or the profile is not one of the mode's colour space or cannot be read
    (the pixels are then taken as sRGB, as an unmanaged viewer shows them)."""
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if profile.profile.xcolor_space != ICC_SPACES[mode]:
            return None
        out = "RGBA" if mode == "RGBA" else "RGB"
        said = profile.profile.rendering_intent  # 0-3 (ICC.1, 7.2.15); another value: the default, perceptual
        intent = ImageCms.Intent(said) if said in set(ImageCms.Intent) else ImageCms.Intent.PERCEPTUAL
        transform = ImageCms.buildTransform(profile, ImageCms.createProfile("sRGB"), mode, out, intent)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None
    if mode == "CMYK":
        return transform
    levels = np.arange(0, 256, 5, dtype=np.uint8)  # 52 levels a channel, 0 and 255 among them
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(len(levels), -1, 3)
    probe = Image.fromarray(grid if mode == "RGB" else np.concatenate([grid, np.full_like(grid[..., :1], 255)], -1))
    moved = np.abs(np.asarray(ImageCms.applyTransform(probe, transform)).astype(np.int16) - np.asarray(probe))
    return None if moved.max() <= 1 else transform


def _colour_managed(img: Image.Image, transforms: Transforms | None = None) -> Image.Image:
    """An image with an embedded ICC profile (a phone photo's Display P3, a camera's Adobe RGB, a print
    CMYK JPEG's) in sRGB, as colour-managed viewers show it (`_srgb_transform`); any other image as it is.
    `transforms`: the transforms built so far, by profile and mode (a folder's frames share one)."""
    icc = img.info.get("icc_profile")
    if not icc or img.mode not in ICC_SPACES:
        return img
    transforms = {} if transforms is None else transforms
    if (icc, img.mode) not in transforms:
        transforms[icc, img.mode] = _srgb_transform(icc, img.mode)
    transform = transforms[icc, img.mode]
    return img if transform is None else ImageCms.applyTransform(img, transform)


def _profile_conversions(path: Path, transforms: Transforms) -> tuple[str, ...]:
    """What reading a clip's pictures converts by their colour profiles (`transforms`, as `_colour_managed`
    kept them: those that change colours), a sentence each profile."""
    said = []
    for (icc, _), transform in transforms.items():
        if transform is not None:
            try:
                name = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc))).strip() or "unnamed"
            except (ImageCms.PyCMSError, OSError, ValueError):
                name = "unnamed"
            said.append(
                f"{path}'s pictures carry a colour profile ({name}): they are read in sRGB, as colour-managed "
                "viewers show them, and the edits are sRGB."
            )
    return tuple(dict.fromkeys(said))


def _to_rgb(img: Image.Image, transforms: Transforms | None = None) -> np.ndarray:
    """An image's pixels as (H, W, 3) uint8 sRGB as a viewer shows them: colour-managed from its ICC profile
    (`_colour_managed`, `transforms` its cache), transparency over black, deep greyscale scaled to 8 bits."""
    if img.mode.startswith("I") or img.mode == "F":  # 16-bit or float greyscale: Pillow's RGB would clip it
        a = np.asarray(img, dtype=np.float64)
        if img.mode.startswith("I;16"):
            top = 65535.0
        else:  # "I" (32-bit) or "F": the range its values suggest
            top = 1.0 if img.mode == "F" and a.max() <= 1.0 else 255.0 if a.max() <= 255 else 65535.0
        grey = np.clip(np.rint(a / top * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=-1)
    img = _colour_managed(img.convert("RGBA") if img.mode == "P" else img, transforms)
    if img.mode in ("RGBA", "LA"):
        img = img if img.mode == "RGBA" else img.convert("RGBA")
        bg = Image.new("RGBA", img.size, (0, 0, 0, 255))
        img = Image.alpha_composite(bg, img)
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def _picture_rgb(img: Image.Image, transforms: Transforms) -> np.ndarray:
    """A PIL image held in memory as its file's frame is read (`_iter_frame_dir`): its pixels in sRGB
    (`_to_rgb`), turned upright as its EXIF Orientation says (`_oriented`; one that Pillow's `exif_transpose`
    turned already says none)."""
    return _oriented(_to_rgb(img, transforms), 1 if _turned_by_pillow(img) else _orientation(img))


def as_frames(frames: object) -> np.ndarray:
    """Frames held in memory as (F, H, W, 3) uint8: an array of that shape (or what numpy reads as one:
    a torch tensor on the CPU), or a sequence of PIL images (any mode, converted as files' frames are) or
    of (H, W, 3) arrays; floats in 0-1 as diffusers' pipelines give them (`uint8_frames`); greyscale
    ((F, H, W), (F, H, W, 1)) and RGBA arrays as a file's such frames are read (`rgb_channels`). VideoError
    names what does not fit."""
    if isinstance(frames, np.ndarray):
        arr = frames
    elif isinstance(frames, list | tuple):
        if not frames:
            raise VideoError("No frames given: the sequence of frames is empty.")
        transforms: Transforms = {}
        images = [_picture_rgb(f, transforms) if isinstance(f, Image.Image) else f for f in frames]
        if not all(isinstance(f, np.ndarray) for f in images):
            kinds = sorted({type(f).__name__ for f in images if not isinstance(f, np.ndarray)})
            raise VideoError(f"Frames must be PIL images or (H, W, 3) uint8 arrays; got {', '.join(kinds)}.")
        sizes = sorted({f.shape for f in images}, key=str)
        if len(sizes) > 1:
            raise VideoError(f"The frames have mixed shapes ({', '.join(map(str, sizes[:3]))}); all must match.")
        arr = np.stack(images)
    elif hasattr(frames, "__array__"):  # a torch tensor on the CPU, ...
        try:
            arr = np.asarray(frames)
        except (TypeError, RuntimeError, ValueError) as e:
            raise VideoError(f"Frames of type {type(frames).__name__} cannot be read as an array ({e}).") from None
    else:
        raise VideoError(
            f"Frames must be an (F, H, W, 3) uint8 array or a list of PIL images, got {type(frames).__name__}."
        )
    grey = arr.ndim == 3 and arr.shape[-1] not in (3, 4)  # (F, H, W); an (H, W, 3) image is no clip
    if not (grey or (arr.ndim == 4 and arr.shape[-1] in (1, 3, 4))) or 0 in arr.shape:
        first = arr.ndim == 4 and arr.shape[1] in (1, 3, 4)  # (F, C, H, W): torch's layout, diffusers' "pt"
        hint = "; channels first? .permute(0, 2, 3, 1) (torch) or .transpose(0, 2, 3, 1) (numpy)" if first else ""
        raise VideoError(
            f"Frames of shape {tuple(arr.shape)} are not (F, H, W, 3) with F, H, W >= 1 (RGB; RGBA or greyscale, "
            f"(F, H, W, 4) or (F, H, W), are read too){hint}."
        )
    return rgb_channels(uint8_frames(arr, "Frames"))


def rgb_channels(frames: np.ndarray) -> np.ndarray:
    """(F, H, W, 3) uint8 frames from greyscale ones, (F, H, W) or (F, H, W, 1), repeated in R, G and B, or
    from RGBA ones over black, as a file's greyscale and transparent frames are read (`_to_rgb`); RGB ones
    as they are."""
    if frames.ndim == 3:
        frames = frames[..., None]
    if frames.shape[-1] == 1:
        return np.repeat(frames, 3, axis=-1)
    if frames.shape[-1] == 4:  # alpha-composited over opaque black, rounded as Pillow's `alpha_composite`
        rgb, alpha = frames[..., :3].astype(np.uint16), frames[..., 3:].astype(np.uint16)
        return ((rgb * alpha + 127) // 255).astype(np.uint8)
    return frames


def uint8_frames(arr: np.ndarray, what: str) -> np.ndarray:
    """`arr` as uint8: itself; floats in 0-1 (the frames diffusers' pipelines give, `output_type="np"`) times 255,
    rounded as diffusers' `numpy_to_pil` rounds them; integers in 0-255 as they are. VideoError, beginning with
    `what`, names the values of anything else (floats in 0-255 or -1-1, 16-bit integers, NaN)."""
    if arr.dtype == np.uint8:
        return arr
    valid = "give floats in 0-1 (as diffusers' pipelines give frames) or integers in 0-255"
    if arr.dtype.kind not in "fiu":
        raise VideoError(f"{what}: {arr.dtype} values are not pixels; {valid}.")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise VideoError(f"{what}: NaN or infinite values ({arr.dtype}); {valid}.")
    low, high, top = arr.min().item(), arr.max().item(), 1 if arr.dtype.kind == "f" else 255
    if low < 0 or high > top:
        raise VideoError(f"{what}: values from {low:.4g} to {high:.4g} ({arr.dtype}); {valid}.")
    return (arr.astype(np.float32) * 255).round().astype(np.uint8) if top == 1 else arr.astype(np.uint8)


Transform = Callable[[np.ndarray], np.ndarray]  # applied to each kept frame as it is decoded (a resize)
ToSdr = Callable[["DeepSignal"], Callable[[np.ndarray], np.ndarray]]  # a signal's `to_sdr_converter`


@dataclass
class _Decoded:
    """What a reader found: the kept frames (None where not wanted), the file's frame size, rate, sound."""

    frames: list[np.ndarray | None]
    size: tuple[int, int]  # (width, height) of the file's frames
    fps: float
    has_audio: bool = False
    times: list[float | None] | None = None  # each frame's presentation time in the file (seconds), when known
    end: float | None = None  # when the last frame ends (seconds), when known
    conversions: tuple[str, ...] = ()  # what the reader converts so that the frames are not in the file's form
    deep: DeepSignal | None = None  # the stream's own signal, where it is HDR or deeper than 8 bits


def _wanted(i: int, wanted: range | None) -> bool:
    return wanted is None or i in wanted


def _kept(frame: np.ndarray, transform: Transform | None) -> np.ndarray:
    return transform(frame) if transform is not None else frame


EXIF_ORIENTATION = 0x0112  # EXIF's (and TIFF's) Orientation tag (CIPA DC-008, 4.6.4.A; TIFF 6.0, tag 274)
XMP_ORIENTATION = re.compile(r'tiff:Orientation(?:="|>)([0-9])')  # XMP's, as Pillow's `getexif` reads it


def _orientation(img: Image.Image) -> int:
    """An image's EXIF (or TIFF) Orientation, read before its pixels are: 1 where its pixels are stored as
    shown (or it says nothing, or nonsense); 2-8 where they are stored mirrored and/or turned, as a phone's
    portrait photo is stored sideways, and viewers show them upright (`_oriented`)."""
    try:
        if img.format == "PNG" and "exif" not in img.info:  # Pillow's `getexif` would decode it whole
            value = _png_orientation(img) or 1
        else:
            value = img.getexif().get(EXIF_ORIENTATION, 1)
    except (OSError, ValueError, SyntaxError, struct.error):  # a damaged EXIF block: its pixels as stored
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _png_orientation(img: Image.Image) -> int | None:
    """The Orientation of a PNG with no eXIf chunk before its image data, as Pillow's `getexif` reads it once
    the image is decoded (an eXIf chunk after the data, PNG 3rd edition 11.3.3.6 allows it; else its XMP's),
    but from the file's chunk headers alone (`_png_chunks`), decoding nothing; None where it says none."""
    late = None
    if getattr(img, "filename", ""):
        with open(img.filename, "rb") as f:
            late = next((f.read(length) for kind, length in _png_chunks(f) if kind == b"eXIf"), None)
    if late is not None:
        exif = Image.Exif()
        exif.load(b"Exif\0\0" + late)  # as Pillow keeps the chunk
        if EXIF_ORIENTATION in exif:
            return exif[EXIF_ORIENTATION]
    xmp = img.info.get("XML:com.adobe.xmp") or img.info.get("xmp") or ""
    found = XMP_ORIENTATION.search(xmp if isinstance(xmp, str) else xmp.decode("latin-1"))
    return int(found[1]) if found else None


def _png_chunks(f: BinaryIO) -> Iterator[tuple[bytes, int]]:
    """Each chunk of a PNG file open at its start, as (type, length) with the file at the chunk's data (the
    caller reads it, or not: the next step skips to the next chunk either way); none where it is no PNG, up
    to IEND or a header cut short (PNG specification, section 5.3)."""
    if f.read(8) != PNG_SIGNATURE:
        return
    at = 8
    while len(head := f.read(8)) == 8:
        length, kind = struct.unpack(">I4s", head)
        yield kind, length
        if kind == b"IEND":
            return
        at += 8 + length + 4  # its header, data and CRC
        f.seek(at)


def _turned_by_pillow(img: Image.Image) -> bool:
    """Whether Pillow shows the image itself: a TIFF's size is said as shown and its pixels are turned as
    they load (Pillow >= 11.3, the floor), while other formats' (and FFmpeg's reading of any) are as stored."""
    return img.format == "TIFF"


ORIENTED: dict[int, Callable[[np.ndarray], np.ndarray]] = {  # (H, W, C) as stored -> as shown, by Orientation
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, k=-1),
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
    8: lambda a: np.rot90(a, k=1),
}


def _oriented(rgb: np.ndarray, orientation: int) -> np.ndarray:
    """Pixels (H, W, C) as an image of this EXIF Orientation is shown (Pillow's `ImageOps.exif_transpose`):
    2 mirrored left to right, 3 turned 180 degrees, 4 mirrored top to bottom, 5 transposed, 6 turned 90
    degrees clockwise, 7 transversed, 8 turned 90 degrees counter-clockwise; 1 as stored."""
    shown = ORIENTED[orientation](rgb)
    return shown if orientation == 1 else np.ascontiguousarray(shown)


def _oriented_size(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    """A stored (width, height) as an image of this EXIF Orientation is shown: swapped where it is turned a
    quarter (5-8)."""
    return (size[1], size[0]) if orientation >= 5 else size


def _draft(img: Image.Image, small: tuple[int, int] | None) -> None:
    """Ask a JPEG for its pixels at 1/2, 1/4 or 1/8 of its size where that still covers `small` (width,
    height, as stored: `_oriented_size`): its decoder scales in the DCT, at a fraction of the cost; other
    formats decode whole."""
    if small is not None and img.format == "JPEG":
        factor = max(small[0] / img.width, small[1] / img.height)
        if factor < 1:
            img.draft("RGB", (math.ceil(img.width * factor), math.ceil(img.height * factor)))


def _iter_frame_dir(
    path: Path,
    wanted: range | None,
    transform: Transform | None,
    small: tuple[int, int] | None = None,
    signal: bool = False,
    transforms: Transforms | None = None,
) -> Iterator[tuple[Path, tuple[int, int], np.ndarray | None, DeepSignal | None]]:
    """Each image of a folder of frames in natural order: its file, its (width, height), its pixels (transformed;
    a JPEG decoded smaller where it is to be resized to `small`, `_draft`) when it is wanted, and its own
    signal where it is a 16-bit RGB PNG or TIFF (`_image_deep`) or a 10-bit DPX (a film scan's, which
    FFmpeg reads: `_dpx_frame`) or an OpenEXR image (`_exr_frame`): HDR tone-mapped as an HDR video's frames
    are, SDR rounded to 8 bits, or with `signal` left in its own 16-bit form; one at a time; files that are
    not images are passed over. `path` may be one OpenEXR file (`_frames_of_one`), its one frame.
    `transforms`: where the wanted frames' colour profiles' transforms are kept (`_colour_managed`)."""
    files = [path] if path.is_file() else [p for p in _listed(path) if p.is_file()]
    converters: dict[DeepSignal, Callable[[np.ndarray], np.ndarray]] = {}
    transforms = {} if transforms is None else transforms  # the ICC profiles' transforms to sRGB, built once

    def to_sdr(deep: DeepSignal) -> Callable[[np.ndarray], np.ndarray]:
        """`to_sdr_converter` of a signal, its tables built once for the folder's frames (12 ms for PQ's)."""
        if deep not in converters:
            converters[deep] = to_sdr_converter(deep)
        return converters[deep]

    index, skipped = 0, []
    for f in files:
        try:
            with Image.open(f) as img:  # Pillow detects the format from the content, not the extension
                turn, by_pillow = _orientation(img), _turned_by_pillow(img)
                size = img.size if by_pillow else _oriented_size(img.size, turn)  # from the header
                deep = _image_deep(f, img)
                frame = None
                if _wanted(index, wanted):  # pixels decoded for wanted frames only
                    _draft(img, None if small is None else _oriented_size(small, turn))
                    if deep is None:
                        rgb = _to_rgb(img, transforms)
                        rgb = rgb if by_pillow else _oriented(rgb, turn)
                    else:  # FFmpeg's decoders leave the pixels as stored
                        rgb = _oriented(_deep_image_pixels(f, deep, signal, to_sdr), turn)
                    frame = _kept(rgb, transform)
        except (UnidentifiedImageError, OSError) as e:
            read = _dpx_frame if _is_dpx(f) else _exr_frame if is_exr(f) else None  # Pillow reads neither
            if read is not None:
                size, frame, deep = read(f, _wanted(index, wanted), signal, to_sdr)
                frame = _kept(frame, transform) if frame is not None else None
            elif f.suffix.lower() in UNREAD_PICTURES:
                raise VideoError(_unread_picture(f)) from e
            elif f.suffix.lower() in IMAGE_SUFFIXES:
                empty = f.stat().st_size == 0  # a copy or download that never finished
                raise VideoError(
                    f"Frame {f} is {'empty (0 bytes)' if empty else f'not a readable image ({e})'}."
                ) from e
            else:
                skipped.append(f.name)
                continue
        index += 1
        yield f, size, frame, deep
    if skipped:
        logger.info("ignored %d non-image files in %s", len(skipped), path)


DPX_MAGIC = (b"SDPX", b"XPDS")  # SMPTE 268M's first four bytes, big- or little-endian


def _is_dpx(path: Path) -> bool:
    """Whether a file is a DPX image, by its content."""
    with open(path, "rb") as f:
        return f.read(4) in DPX_MAGIC


DPX_SIZE, DPX_BITS = 772, 803  # SMPTE 268M: pixels per line and lines (two U32), then element 1's bit size (U8)


def _dpx_frame(
    path: Path, wanted: bool, signal: bool, to_sdr: ToSdr
) -> tuple[tuple[int, int], np.ndarray | None, DeepSignal | None]:
    """A DPX image's (width, height) and signal (10-bit SDR where it holds more than 8 bits) from its header,
    and where `wanted` its pixels as FFmpeg reads them, as its players show them (its code values: a log
    scan stays log): 8-bit RGB; deeper ones read at 16 bits and rounded, or with `signal` left so."""
    with open(path, "rb") as f:
        head = f.read(DPX_BITS + 1)
    if len(head) <= DPX_BITS:
        raise VideoError(f"Frame {path} is not a readable image (its DPX header is cut short).")
    order = ">" if head[:4] == DPX_MAGIC[0] else "<"
    size = struct.unpack(f"{order}II", head[DPX_SIZE : DPX_SIZE + 8])
    deep = DEEP_SDR if head[DPX_BITS] > 8 else None
    if not wanted:
        return size, None, deep
    pixels = _ffmpeg_image(path, "rgb24") if deep is None else _deep_image_pixels(path, deep, signal, to_sdr)
    return size, pixels, deep


def _exr_frame(
    path: Path, wanted: bool, signal: bool, to_sdr: ToSdr
) -> tuple[tuple[int, int], np.ndarray | None, DeepSignal]:
    """An OpenEXR image's (width, height) from its header and, where `wanted`, its pixels: its scene-linear
    light carried to PQ (`hdr.linear_to_pq`: its 1 at HDR's reference white, BT.2020), so that it is read as
    an HDR video's frame is, as an SDR screen shows it (8-bit RGB), or with `signal` in that PQ form."""
    try:
        header = read_header(path)
        if not wanted:
            return header.size, None, EXR_SIGNAL
        check_complete(path, header)
        pq = linear_to_pq(read_linear(path), header.primaries)
    except ValueError as e:
        raise VideoError(f"Frame {path} is not a readable OpenEXR image ({e}).") from e
    return header.size, pq if signal else to_sdr(EXR_SIGNAL)(pq), EXR_SIGNAL


def _held(folder: Path) -> str:
    """What a folder of no frames holds that was likely meant (a video, or a folder of frames within it),
    as a hint to add to its error; "" where it holds neither."""
    entries = _listed(folder)
    videos = [f.name for f in entries if f.is_file() and f.suffix.lower() in VIDEO_SUFFIXES]
    if videos:
        return f"; it holds {videos[0]}: give that file, not its folder."
    for inner in (f for f in entries if f.is_dir()):
        with contextlib.suppress(OSError):  # a folder it may not read is no hint
            if any(is_frame_name(g.name) for g in inner.iterdir()):
                return f"; it holds a folder of frames, {inner.name}: give that folder."
    return ""


def _mixed_sizes(folder: Path, firsts: dict[tuple[int, int], Path]) -> str:
    """The error of a folder whose frames differ in size (`firsts`: each size's first frame, in the
    folder's order): its sizes, and the first frame not of the first frame's size, named."""
    detail = ", ".join(f"{w}x{h}" for w, h in sorted(firsts, key=lambda s: (s[1], s[0])))
    (first, first_file), (odd, odd_file) = list(firsts.items())[:2]
    turned = any((h, w) in firsts for w, h in firsts if w != h)  # a phone's portrait and landscape shots
    hint = "; some are portrait and some landscape: turn them alike" if turned else ""
    return (
        f"Frames in {folder} have mixed sizes ({detail}): {odd_file.name} is {odd[0]}x{odd[1]}, the first frame "
        f"{first_file.name} {first[0]}x{first[1]}{hint}; all frames must have the same size."
    )


def _read_frame_dir(
    path: Path, wanted: range | None, transform: Transform | None, small: tuple[int, int] | None = None
) -> _Decoded:
    frames, sizes, deep, transforms = [], {}, None, {}
    for file, size, frame, said in _iter_frame_dir(path, wanted, transform, small, transforms=transforms):
        sizes.setdefault(size, file)  # each size's first frame, to name
        frames.append(frame)
        if len(frames) == 1:  # the folder's signal is its first frame's
            deep = said
    if not frames:
        raise VideoError(
            f"Directory {path} contains no image frames; expected files such as 1.jpg, 2.jpg, ...{_held(path)}"
        )
    if len(sizes) > 1:
        raise VideoError(_mixed_sizes(path, sizes))
    conversions = (_hdr_conversion(path, deep),) if deep is not None and deep.hdr else ()
    return _Decoded(
        frames,
        next(iter(sizes)),
        DEFAULT_FPS,
        conversions=conversions + _profile_conversions(path, transforms),
        deep=deep,
    )


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHROMATICITY_UNITS, LIGHT_UNITS = 50000, 10000  # HDR10's: x, y in 0.00002, light in 0.0001 cd/m2 (ST 2086)


def _png_deep(path: Path) -> DeepSignal | None:
    """A 16-bit RGB PNG's signal: HDR where its cICP chunk says so (PNG 3rd edition: BT.2020 primaries, PQ
    or HLG, no matrix), with its mDCv and cLLi chunks' HDR10 metadata, else 16-bit SDR; None for any other
    PNG. Reads the chunks before the image data only."""
    cicp, mdcv, clli, depth_type = None, None, None, None
    with open(path, "rb") as f:
        for kind, length in _png_chunks(f):
            if kind == b"IDAT" or length > 1 << 20:
                break
            data = f.read(length)
            if kind == b"IHDR" and length == 13:
                depth_type = data[8:10]  # bit depth, colour type
            elif kind == b"cICP" and length == 4:
                cicp = tuple(data)
            elif kind == b"mDCv" and length == 24:
                mdcv = struct.unpack(">8HII", data)
            elif kind == b"cLLi" and length == 8:
                clli = struct.unpack(">II", data)
    if depth_type != bytes([16, 2]):
        return None
    if cicp is None or cicp[0] != BT2020 or cicp[1] not in HDR_TRANSFERS or cicp[2]:
        return DEEP_SDR
    mastering = (*(v / CHROMATICITY_UNITS for v in mdcv[:8]), *(v / LIGHT_UNITS for v in mdcv[8:])) if mdcv else None
    light_level = (round(clli[0] / LIGHT_UNITS), round(clli[1] / LIGHT_UNITS)) if clli else None
    return DeepSignal(cicp[1], mastering, light_level)


TIFF_BITS, TIFF_SAMPLES, TIFF_SAMPLE_FORMAT, TIFF_UNSIGNED = 258, 277, 339, 1  # TIFF 6.0's tags, and unsigned ints


def _image_deep(path: Path, img: Image.Image) -> DeepSignal | None:
    """An image file's signal where 8 bits do not hold it: a 16-bit RGB PNG's (`_png_deep`), or 16-bit SDR
    for a TIFF of three unsigned 16-bit samples a pixel (a VFX plate's); None for any other image."""
    if img.format == "PNG":
        return _png_deep(path)
    if img.format == "TIFF":
        tags = img.tag_v2
        unsigned = all(v == TIFF_UNSIGNED for v in _as_tuple(tags.get(TIFF_SAMPLE_FORMAT, TIFF_UNSIGNED)))
        if tags.get(TIFF_SAMPLES) == 3 and set(_as_tuple(tags.get(TIFF_BITS))) == {16} and unsigned:
            return DEEP_SDR
    return None


def _as_tuple(value) -> tuple:
    return tuple(value) if isinstance(value, tuple | list) else (value,)


def _deep_image_pixels(path: Path, deep: DeepSignal, signal: bool, to_sdr: ToSdr) -> np.ndarray:
    """A 16-bit PNG's or TIFF's (`_image_deep`) pixels as an SDR screen shows them, (H, W, 3) uint8 (HDR:
    `hdr.hdr_to_sdr`; SDR: rounded to 8 bits), or with `signal` its own R'G'B' (H, W, 3) uint16 (Pillow
    reads 16-bit RGB as 8 bits, cut rather than rounded: FFmpeg reads it)."""
    rgb = _ffmpeg_image(path, "rgb48le")
    return rgb if signal else to_sdr(deep)(rgb)


def _ffmpeg_image(path: Path, form: str) -> np.ndarray:
    """An image file's pixels as FFmpeg decodes them, in the `form` `to_ndarray` takes (rgb24, rgb48le); a
    VideoError names a file it cannot read."""
    try:
        with av.open(str(path)) as container:
            return next(container.decode(video=0)).to_ndarray(format=form)
    except (av.error.FFmpegError, StopIteration) as e:
        raise VideoError(f"Frame {path} is not a readable image ({e}).") from e


def sixteen_to_eight(rgb: np.ndarray) -> np.ndarray:
    """16-bit values (any shape) rounded to the nearest 8-bit ones (x 255 / 65535)."""
    return ((rgb.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def _read_animated_image(img: Image.Image, path: Path, wanted: range | None, transform: Transform | None) -> _Decoded:
    """An image file's frames (`img`, opened from `path`: an animated GIF, WebP or PNG, or a picture's one),
    turned upright as its Orientation says (`_oriented`), in sRGB (`_colour_managed`), its rate read from
    its frames' durations as browsers show them (a GIF frame of 0 or 1 cs for 10 cs)."""
    frames, durations, transforms = [], [], {}
    turn = 1 if _turned_by_pillow(img) else _orientation(img)  # the file's, as viewers show each of its frames
    size = _oriented_size(img.size, turn)
    for i, frame in enumerate(ImageSequence.Iterator(img)):
        wants = _wanted(i, wanted)
        frames.append(_kept(_oriented(_to_rgb(frame.copy(), transforms), turn), transform) if wants else None)
        durations.append(frame.info.get("duration", 0) or 0)
    if img.format == "GIF":
        durations = [ms if ms >= 10 * GIF_MIN_DELAY else 10 * GIF_SHORT_DELAY_SHOWN for ms in durations]
    mean_ms = float(np.mean(durations)) if durations else 0.0
    said = _profile_conversions(path, transforms)
    if mean_ms <= 0:  # no durations: shown evenly, at the default rate
        return _Decoded(frames, size, DEFAULT_FPS, conversions=said)
    starts = np.cumsum([0, *durations]) / 1000.0  # each frame's start, and the last one's end
    times = [float(t) for t in starts[:-1]]
    return _Decoded(frames, size, 1000.0 / mean_ms, times=times, end=float(starts[-1]), conversions=said)


DISPLAY_ORIENTATIONS = {  # a display matrix's (a, b, c, d) signs -> the EXIF Orientation showing the same (`_oriented`)
    (1, 0, 0, 1): 1,
    (-1, 0, 0, 1): 2,  # mirrored left to right (a phone editor's flip)
    (-1, 0, 0, -1): 3,
    (1, 0, 0, -1): 4,
    (0, 1, 1, 0): 5,
    (0, 1, -1, 0): 6,  # turned a quarter clockwise (a phone's portrait clip)
    (0, -1, -1, 0): 7,
    (0, -1, 1, 0): 8,
}
QUARTER_TURNS = {0: 1, 1: 8, 2: 3, 3: 6}  # counter-clockwise quarter turns -> the EXIF Orientation showing the same


def _display_orientation(frame: av.VideoFrame) -> int:
    """The EXIF Orientation (`_oriented`) that shows a decoded frame as its display matrix says, as ffmpeg's
    autorotate does: turned (a phone's portrait clip is stored sideways) and mirrored (a phone editor's flip
    is a matrix too); 1 where it has none. A matrix of another angle than a quarter turn, or one PyAV
    cannot list (`_display_matrix`), gives its nearest quarter turn."""
    matrix = _display_matrix(frame)
    if matrix is not None:
        signs = tuple(int(np.sign(v)) for v in (matrix[0], matrix[1], matrix[3], matrix[4]))
        if signs in DISPLAY_ORIENTATIONS:
            return DISPLAY_ORIENTATIONS[signs]
    degrees = getattr(frame, "rotation", 0)
    return QUARTER_TURNS[round(degrees / 90) % 4 if math.isfinite(degrees) and abs(degrees) <= 360 else 0]


def _display_matrix(frame: av.VideoFrame) -> np.ndarray | None:
    """A frame's display matrix (9 int32: a, b, u, c, d, v, x, y, w; a to d in 16.16 fixed point), as FFmpeg
    attaches it from the file's track header; None where it has none (or PyAV lists none: `_side_data`)."""
    for data in _side_data(frame):
        if data.type == av.sidedata.sidedata.Type.DISPLAYMATRIX:
            return np.frombuffer(bytes(data), np.int32, count=9)
    return None


def _side_data(frame: av.VideoFrame) -> list:
    """The side data FFmpeg attached to a decoded frame. PyAV lists it by its kinds from 18.1.1 (a mapping
    whose keys are `Type`s) and as the data itself before; before 18.1.1 it lists none where the frame also
    carries a kind newer than PyAV knows (FFmpeg 8's EXIF, MV-HEVC's view ids): none is read then."""
    try:
        listed = frame.side_data
        return [listed[item] if isinstance(item, av.sidedata.sidedata.Type) else item for item in listed]
    except ValueError:  # PyAV < 18.1.1: its enum of side data kinds lacks one the frame carries
        logger.debug("side data of a kind PyAV does not know: none of the frame's is read")
        return []


def _pixel_aspect(stream) -> Fraction:
    """The stream's sample (pixel) aspect ratio: 1 for square pixels, e.g. 4/3 for HDV's 1440x1080
    shown at 1920x1080; 1 where the file does not say or says nonsense."""
    sar = stream.sample_aspect_ratio
    return Fraction(sar) if sar and 1 / 16 <= sar <= 16 else Fraction(1)


def _square_width(width: int, sar: Fraction) -> int:
    """The width a row of `width` pixels of aspect `sar` is shown at, in square pixels (ffmpeg's display width)."""
    return round(width * sar)


def _source_colour(frame: av.VideoFrame, hdr: bool) -> dict:
    """How to read a YUV frame's colours, said to the converter outright rather than left to its defaults:
    its file's matrix and range where it says them; where it says no matrix, the one players take:
    BT.2020 for HDR, BT.709 for HD (at least 1280 wide or more than 576 high; mpv's rule, as VLC and SDL
    have it), else BT.601. Nothing for a frame that is not YUV."""
    if not frame.format.name.startswith("yuv"):
        return {}
    matrix = frame.colorspace
    if matrix in (UNSPECIFIED, RESERVED_MATRIX):
        matrix = BT2020 if hdr else BT709 if frame.width >= 1280 or frame.height > 576 else BT601
    said = {"src_colorspace": matrix}
    if frame.color_range in (LIMITED_RANGE, FULL_RANGE):  # unsaid: limited, or full for the yuvj formats
        said["src_color_range"] = frame.color_range
    return said


def _hdr_metadata(frame: av.VideoFrame) -> tuple[tuple[float, ...] | None, tuple[int, int] | None]:
    """The HDR10 metadata a frame's file says, as FFmpeg attaches it to decoded frames as side data (from
    the codec's SEI or the container's boxes): its mastering display (SMPTE ST 2086: the x, y of its red,
    green and blue primaries and white point, then its peak and black in cd/m2) and its content light
    level (CTA-861.3: MaxCLL, MaxFALL in cd/m2); None for what it does not say, or where PyAV lists none of
    the frame's side data (`_side_data`): the peak is then the default one (`DeepSignal.peak`)."""
    mastering = light_level = None
    for data in _side_data(frame):
        if data.type == av.sidedata.sidedata.Type.CONTENT_LIGHT_LEVEL:  # AVContentLightMetadata: MaxCLL, MaxFALL
            light_level = tuple(int(v) for v in np.frombuffer(bytes(data), np.uint32, count=2))
        elif data.type == av.sidedata.sidedata.Type.MASTERING_DISPLAY_METADATA:
            # AVMasteringDisplayMetadata: 10 AVRationals (primaries 3x2, white point, min and max
            # luminance) as (num, den) int pairs, then has_primaries, has_luminance
            fields = np.frombuffer(bytes(data), np.int32, count=22)
            values = [float(n / d) if d > 0 else 0.0 for n, d in zip(fields[0:20:2], fields[1:20:2], strict=True)]
            if fields[21] and values[9] > 0:  # its luminance said (a peak of 0 says nothing)
                primaries = values[:8] if fields[20] else list(BT2020_XY)
                mastering = (*primaries, values[9], values[8])
    return mastering, light_level


@dataclass(frozen=True)
class DeepSignal:
    """A stream's own signal where 8-bit SDR does not hold it: HDR video (BT.2100: BT.2020 colours, PQ or HLG)
    with the HDR10 metadata its file says, or SDR video of more than 8 bits a component (BT.709). Its edits
    keep it when they are written as 10-bit video (`write_mp4`)."""

    transfer: int  # PQ or HLG (HDR), or BT709 (SDR), FFmpeg's numbers
    mastering: tuple[float, ...] | None = None  # ST 2086: R, G, B, white x, y (8 values), then peak, black cd/m2
    light_level: tuple[int, int] | None = None  # CTA-861.3: MaxCLL, MaxFALL in cd/m2
    linear: bool = False  # carried to PQ from scene-linear light (OpenEXR frames: `_exr_frame`)

    @property
    def hdr(self) -> bool:
        """Whether it is HDR video (PQ or HLG)."""
        return self.transfer in HDR_TRANSFERS

    @property
    def said_peak(self) -> float | None:
        """cd/m2: the brightest light a PQ stream's file says it holds (`hdr.content_peak`); None for HLG,
        shown on its nominal display whatever its file says, for SDR, or where the file says neither."""
        if self.transfer != PQ:
            return None
        return content_peak(
            self.light_level[0] if self.light_level else None, self.mastering[8] if self.mastering else None
        )

    @property
    def peak(self) -> float:
        """cd/m2: the light an HDR stream's highlights roll off from (HDR_PEAK where the file says none)."""
        return HDR_PEAK if self.said_peak is None else self.said_peak

    @property
    def name(self) -> str:
        """PQ, HLG or SDR."""
        return {PQ: "PQ", HLG: "HLG"}.get(self.transfer, "SDR")


DEEP_SDR = DeepSignal(BT709)  # SDR video of more than 8 bits a component
EXR_SIGNAL = DeepSignal(PQ, linear=True)  # OpenEXR frames' light, as HDR video's signal


def _deep_format(name: str) -> bool:
    """Whether FFmpeg's pixel format `name` holds more than 8 bits a component (yuv420p10le, p010le,
    yuv422p12le, rgb48le, ...)."""
    return max(c.bits for c in av.VideoFormat(name).components) > 8


def to_signal_converter(deep: DeepSignal) -> Callable[[np.ndarray], np.ndarray]:
    """What turns 8-bit BT.709 RGB (H, W, 3) as an SDR screen shows it into `deep`'s own R'G'B' (H, W, 3)
    uint16: HDR's (`hdr.sdr_to_hdr`, its tables built once), or the same SDR values at 16 bits (x 257)."""
    return sdr_to_hdr_converter(deep.transfer, deep.peak) if deep.hdr else eight_to_sixteen


def to_sdr_converter(deep: DeepSignal) -> Callable[[np.ndarray], np.ndarray]:
    """`to_signal_converter`'s way back: `deep`'s own R'G'B' (H, W, 3) uint16 as an SDR screen shows it, 8-bit
    BT.709: tone-mapped from an HDR stream's peak (`hdr.hdr_to_sdr`, its tables built once), or rounded."""
    return hdr_to_sdr_converter(deep.transfer, deep.peak) if deep.hdr else sixteen_to_eight


def eight_to_sixteen(rgb: np.ndarray) -> np.ndarray:
    """8-bit values (any shape) as the same values at 16 bits (x 257: 255 -> 65535)."""
    return rgb.astype(np.uint16) * 257


@dataclass(frozen=True)
class _Showing:
    """How players show a stream's frames, decided at its first frame (`_showing`)."""

    sar: Fraction = Fraction(1)  # its pixels' aspect (`_pixel_aspect`)
    deep: DeepSignal | None = None  # its own signal where 8 bits do not hold it; HDR frames are tone-mapped ...
    to_sdr: Callable[[np.ndarray], np.ndarray] | None = field(default=None, compare=False)  # ... by this
    size: tuple[int, int] | None = None  # (width, height) its first frame is shown at: a later frame of another
    # size (a stream joined from parts) is scaled to it, as FFmpeg's scaler does
    alpha: bool = False  # its frames carry an alpha plane, composited over black (`_display_rgb`)
    orientation: int = 1  # the EXIF Orientation its display matrix shows it in (`_display_orientation`)


def _showing(stream, first: av.VideoFrame) -> _Showing:
    """A stream's `_Showing`, from its headers and its `first` decoded frame: its size, its format (more than 8
    bits a component: deep SDR) and side data (a PQ clip's peak is one for the whole clip, so that its frames
    are tone-mapped alike)."""
    transfer, sar = stream.codec_context.color_trc, _pixel_aspect(stream)
    if transfer in HDR_TRANSFERS:
        deep = DeepSignal(transfer, *_hdr_metadata(first))
    else:  # deep SDR is read at 16 bits and rounded: FFmpeg's 8-bit RGB of 10-bit YUV is up to 4 levels off
        deep = DEEP_SDR if _deep_format(first.format.name) else None
    to_sdr = to_sdr_converter(deep) if deep is not None else None  # an HDR clip's tables once a clip
    orientation = _display_orientation(first)  # the track's, read once: listing side data holds each frame longer
    return _Showing(sar, deep, to_sdr, _upright_size(first, sar, orientation), _has_alpha(first), orientation)


def _has_alpha(frame: av.VideoFrame) -> bool:
    """Whether a decoded frame carries an alpha plane (ProRes 4444, FFV1, PNG or QuickTime Animation in a
    MOV, VP9 with alpha read by libvpx: `_decoded`)."""
    return any(component.is_alpha for component in frame.format.components)


def over_black(rgba: np.ndarray) -> np.ndarray:
    """(H, W, 4) uint8 or uint16 colour and alpha composited over opaque black, (H, W, 3) of the same
    type: each colour times its alpha over the largest value, rounded (what Pillow's `alpha_composite`
    makes of a picture), with Pillow's shifts for the division by 2^bits - 1 (exact, and faster)."""
    bits = 8 * rgba.dtype.itemsize
    wide = np.uint16 if bits == 8 else np.uint32  # holds the product and the shifts' sums
    x = rgba[..., :3].astype(wide)  # (H, W, 3), worked on in place
    x *= rgba[..., 3:]
    x += wide(1 << (bits - 1))
    x += x >> bits
    x >>= bits
    return x.astype(rgba.dtype)


def _read_size(frame: av.VideoFrame, showing: _Showing, small: tuple[int, int] | None) -> dict:
    """The size to convert a frame to RGB at, as `to_ndarray` takes it: the size that covers `small`
    (width, height as shown) where the frame is larger, scaled by area in its own signal as FFmpeg
    converts it, so that the conversion, the tone mapping of an HDR frame (its cost is per pixel) and the
    resize to `small` work on the pixels the resize keeps (a phone's 3840x2160 frame read for 512x512 is
    converted at 911x512); {} to convert it whole."""
    if small is None:
        return {}
    width, height = _oriented_size(small, showing.orientation)  # as the frame is stored
    shown_width = _square_width(frame.width, showing.sar)
    factor = max(width / shown_width, height / frame.height)
    if factor >= 1:
        return {}
    return {
        "width": min(frame.width, math.ceil(frame.width * factor)),
        "height": min(frame.height, math.ceil(frame.height * factor)),
        "interpolation": "AREA",
    }


def _display_rgb(
    frame: av.VideoFrame, showing: _Showing = _Showing(), small: tuple[int, int] | None = None, signal: bool = False
) -> np.ndarray:
    """A decoded frame's 8-bit RGB (H, W, 3) in BT.709, as an SDR screen shows it (`_source_colour`),
    smaller where it is to be resized to `small` (`_read_size`); a frame of a deep stream (`showing.deep`)
    read at 16 bits, then tone-mapped from an HDR stream's peak (`hdr.hdr_to_sdr`) or rounded to 8 bits,
    or with `signal` left in its own form: R'G'B' (H, W, 3) uint16 (HDR: BT.2020, its transfer)."""
    read, deep, alpha = _read_size(frame, showing, small), showing.deep, showing.alpha
    if deep is not None:
        rgb = frame.to_ndarray(format="rgba64le" if alpha else "rgb48le", **_source_colour(frame, hdr=deep.hdr), **read)
        rgb = over_black(rgb) if alpha else rgb  # as a picture with alpha is read (`_to_rgb`)
        return rgb if signal else showing.to_sdr(rgb)
    rgb = frame.to_ndarray(format="rgba" if alpha else "rgb24", **_source_colour(frame, hdr=False), **read)
    return over_black(rgb) if alpha else rgb


def _resampled(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 or uint16 frame resampled to `size` (width, height), bicubic."""
    if rgb.dtype == np.uint8:
        return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BICUBIC))
    channels = [  # Pillow resamples 16-bit values one channel at a time, as floats
        np.asarray(Image.fromarray(rgb[..., c].astype(np.float32)).resize(size, Image.Resampling.BICUBIC))
        for c in range(3)
    ]
    return np.clip(np.round(np.stack(channels, axis=-1)), 0, np.iinfo(rgb.dtype).max).astype(rgb.dtype)


def _upright(
    frame: av.VideoFrame, showing: _Showing = _Showing(), small: tuple[int, int] | None = None, signal: bool = False
) -> np.ndarray:
    """A decoded frame as RGB (H, W, 3) as players show it: in BT.709 (`_display_rgb`; with `signal`, an
    HDR frame's own 16-bit values), in square pixels (an anamorphic clip's non-square pixels resampled to
    its display width), turned and mirrored as its display matrix says (a phone's portrait clip is stored
    sideways with a rotation to show it upright: `showing.orientation`), as ffmpeg's autorotate does; at
    the stream's first size (`showing.size`) where the stream changes size. `small`: the size the frame is
    to be resized to (`_display_rgb`)."""
    if showing.size is not None and _upright_size(frame, showing.sar, showing.orientation) != showing.size:
        return _resampled(_upright(frame, replace(showing, size=None), None, signal), showing.size)
    rgb, sar = _display_rgb(frame, showing, small, signal), showing.sar
    if sar != 1:  # to square pixels: the frame's width, or smaller (`_read_size`)
        rgb = _resampled(rgb, (_square_width(rgb.shape[1], sar), rgb.shape[0]))
    return _oriented(rgb, showing.orientation)


def _upright_size(frame: av.VideoFrame, sar: Fraction, orientation: int) -> tuple[int, int]:
    """A decoded frame's (width, height) as shown: in square pixels (`sar`), turned as `orientation` says."""
    return _oriented_size((_square_width(frame.width, sar), frame.height), orientation)


def _stream_rate(stream: av.video.stream.VideoStream) -> float:
    """A video stream's frames a second: its average rate, else FFmpeg's guess from its own rate and time
    base where that is in FPS_RANGE (an IVF file, AV1's or VP9's raw container, says no average), else
    DEFAULT_FPS (the frames' own times, read beside it, are kept where they differ from it)."""
    if stream.average_rate:
        return float(stream.average_rate)
    guessed = stream.guessed_rate
    return float(guessed) if guessed and FPS_RANGE[0] <= guessed <= FPS_RANGE[1] else DEFAULT_FPS


def _read_container(
    path: Path,
    wanted: range | None,
    transform: Transform | None,
    pixels: bool = True,
    small: tuple[int, int] | None = None,
) -> _Decoded:
    """Frames are decoded one by one and only the `wanted` ones kept (transformed; None each without
    `pixels`: their sizes only, no conversion to RGB), so memory holds the selection only; decoding
    stops after its last frame. `small`: the size `transform` brings frames to (`_display_rgb`)."""
    frames, times, has_audio, size, showing, resized = [], [], False, (0, 0), None, False
    try:
        with av.open(str(path)) as container:
            stream = _clip_stream(container, path)
            has_audio = bool(container.streams.audio)
            fps = _stream_rate(stream)
            conversions = ()
            for i, frame in _frames_until(container, stream, wanted):
                if showing is None:
                    showing = _showing(stream, frame)
                    conversions = _conversions(path, stream, showing)
                own, size = _upright_size(frame, showing.sar, showing.orientation), showing.size
                if 0 in own:
                    break
                if own != size and not resized:  # said once: each such frame is scaled (`_upright`)
                    resized = True
                    logger.warning(
                        "%s changes its frame size at frame %d (%dx%d to %dx%d): its frames are read at %dx%d, "
                        "the first frame's, as FFmpeg scales them",
                        path,
                        i,
                        *size,
                        *own,
                        *size,
                    )
                wants = pixels and _wanted(i, wanted)  # only wanted frames are converted to RGB
                frames.append(_kept(_upright(frame, showing, small), transform) if wants else None)
                times.append(frame.time)
    except av.error.FFmpegError as e:
        if not frames:
            raise VideoError(
                f"{path} is not a readable video ({_ffmpeg_reason(e)}); supported: mp4, mov, webm, mkv, avi, gif, webp "
                "or a folder of frames."
            ) from e
        logger.warning("%s is truncated: decoded %d frames before the error (%s)", path, len(frames), _ffmpeg_reason(e))
    if not frames and size == (0, 0):
        raise VideoError(f"{path} contains no decodable video frames.")
    deep = showing.deep if showing is not None else None
    return _Decoded(frames, size, fps, has_audio, times, conversions=conversions, deep=deep)


def _ffmpeg_reason(error: av.error.FFmpegError) -> str:
    """FFmpeg's words for a failure without PyAV's '[Errno N]', and what they most often mean: a file
    cut short loses an mp4's index (written after the frames), and with it the codec's description."""
    reason = error.strerror or str(error)
    if isinstance(error, av.error.DecoderNotFoundError):
        return f"{reason}: its video codec could not be read; the file may be cut short, damaged, or in a codec this FFmpeg lacks"
    if isinstance(error, av.error.InvalidDataError):
        return f"{reason}: the file may be cut short, damaged, or not a video"
    return reason


def _pulled(graph: av.filter.Graph) -> Iterator[av.VideoFrame]:
    """The frames a filter graph has ready."""
    while True:
        try:
            yield graph.pull()
        except (av.error.BlockingIOError, av.error.EOFError):
            return


def _progressive(stream, frames: Iterator[av.VideoFrame]) -> Iterator[av.VideoFrame]:
    """A stream's decoded frames as progressive frames: an interlaced stream's through FFmpeg's yadif (one
    frame per frame, each at its own time; the frames it marks interlaced only), as players deinterlace;
    a progressive stream's as they are."""
    if stream.codec_context.field_order not in INTERLACED:
        yield from frames
        return
    graph = av.filter.Graph()
    source, sink = graph.add_buffer(template=stream), graph.add("buffersink")
    yadif = graph.add("yadif", "mode=send_frame:parity=auto:deint=interlaced")
    source.link_to(yadif)
    yadif.link_to(sink)
    graph.configure()
    for frame in frames:
        graph.push(frame)
        yield from _pulled(graph)  # yadif holds one frame back: it reads the next field too
    graph.push(None)
    yield from _pulled(graph)


def _decoded(container, stream) -> Iterator[av.VideoFrame]:
    """A video stream's decoded frames; a VP9 stream with alpha (WebM's `ALPHA_MODE`) by libvpx's decoder
    where this FFmpeg has it, which reads the alpha plane that FFmpeg's own VP9 decoder leaves out."""
    if (
        stream.codec_context.name != "vp9"
        or stream.metadata.get("alpha_mode") != "1"
        or VP9_ALPHA not in av.codecs_available
    ):
        yield from container.decode(stream)
        return
    decoder = av.CodecContext.create(VP9_ALPHA, "r")
    for packet in container.demux(stream):
        yield from decoder.decode(packet if packet.size else None)  # the last, empty packet flushes it


def _clip_stream(container: av.container.InputContainer, path: Path) -> av.video.stream.VideoStream:
    """A container's first video stream that moves: not a cover picture (an audio file's album art, a
    downloaded video's thumbnail), which FFmpeg lists as a video stream of one frame (`attached_pic`)."""
    moving = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
    if not moving:
        only = " (only a cover picture)" if container.streams.video else ""
        raise VideoError(f"{path} has no video stream{only}; give a video, or a folder of frames.")
    return moving[0]


def _frames_until(container, stream, wanted: range | None) -> Iterator[tuple[int, av.VideoFrame]]:
    """The decoded (`_progressive`) frames of a container's video `stream` with their index, up to the last
    `wanted` one (decoding stops there)."""
    for i, frame in enumerate(_progressive(stream, _decoded(container, stream))):
        yield i, frame
        if wanted is not None and len(wanted) and i >= wanted[-1]:
            return


def _check_path(path: str | os.PathLike) -> None:
    """A clip's path names something that is there, and not an empty file (a VideoError names it)."""
    if not str(path).strip():  # `Path("")` would read the current folder
        raise VideoError(
            f"The clip's path {str(path)!r} is empty; give a video file, an animated image or a folder of frames."
        )
    if unusable := unusable_reason(path):
        raise VideoError(f"Video path {unusable}", "video", unusable)
    path = Path(path)
    if not path.exists():
        reason = f"{str(path)!r} does not exist; give a video file, an animated image or a folder of frames."
        raise VideoError(f"Video path {reason}", "video", reason)
    if path.is_file() and path.stat().st_size == 0:
        raise VideoError(f"Video file {path} is empty (0 bytes).")


def _decode(
    path: Path,
    wanted: range | None = None,
    transform: Transform | None = None,
    pixels: bool = True,
    small: tuple[int, int] | None = None,
) -> _Decoded:
    """Decode a clip, keeping (and transforming) only the `wanted` frames; without `pixels`, a container's
    frames are decoded for their sizes only (images are read whole either way). `small`: the size
    `transform` brings frames to, where a video's frame may be converted smaller (`_display_rgb`) and a
    JPEG frame decoded smaller (`_draft`)."""
    _check_path(path)
    if _frames_of_one(path):
        return _read_frame_dir(path, wanted, transform, small)
    try:
        with Image.open(path) as img:
            return _read_animated_image(img, path, wanted, transform)
    except UnidentifiedImageError as e:
        if path.suffix.lower() in UNREAD_PICTURES:  # FFmpeg would read one tile of it as a video
            raise VideoError(_unread_picture(path)) from e
    except OSError as e:
        raise VideoError(f"Image file {path} is truncated or corrupt ({e}).") from e
    return _read_container(path, wanted, transform, pixels, small)


def _frames_of_one(path: Path) -> bool:
    """Whether a clip is read as a folder of frames is (`_read_frame_dir`): a folder, or one OpenEXR file
    (FFmpeg's own reading of it as a one-frame video would clip its light at 1)."""
    return path.is_dir() or (path.is_file() and is_exr(path))


@dataclass(frozen=True)
class Probe:
    """What a clip says before it is read, from its first frame and headers."""

    size: tuple[int, int]  # (width, height) of its frames as shown
    conversions: tuple[str, ...]  # what reading it converts (HDR tone-mapped, fields deinterlaced), each a sentence
    deep: DeepSignal | None = None  # its own signal, where it is HDR or deeper than 8 bits
    fps: float = DEFAULT_FPS  # its frame rate (a folder of frames: DEFAULT_FPS)
    audio: bool = False  # whether it has sound


def clip_words(probe: Probe, count: int | None) -> str:
    """A clip's size as shown, rate, length (`count`: the frames it declares, `declared_frames`) and sound in
    words, as `videop2p info` and the web editor say them."""
    length = f"{count} frame{'s' * (count != 1)}, {count / probe.fps:.2f} s" if count else "its frame count not said"
    sound = "with sound" if probe.audio else "no sound"
    return f"{probe.size[0]}x{probe.size[1]} as shown, {probe.fps:.4g} fps, {length}, {sound}"


def signal_words(deep: DeepSignal | None) -> str:
    """A clip's signal (`Probe.deep`) in words, as `videop2p info` and the web editor say it: how it is
    seen, and what its edits are written as."""
    if deep is None:
        return "8-bit SDR"
    if deep.linear:
        return (
            "OpenEXR frames, scene-linear light: read as HDR video (PQ), seen tone-mapped as an SDR screen shows "
            "it; its edits are HDR video"
        )
    if deep.hdr:
        return f"HDR video ({deep.name}): seen tone-mapped as an SDR screen shows it; its edits stay HDR video"
    return (
        "SDR of more than 8 bits a component: seen at 8 bits; its edits are pasted into its own frames as 10-bit HEVC"
    )


def probe_video(path: str | os.PathLike) -> Probe:
    """A clip's `Probe`, from its first frame only (a container's not converted to RGB); a missing or
    unreadable clip is a VideoError naming it."""
    _check_path(path)
    decoded = _decode(Path(path), range(1), pixels=False)
    return Probe(decoded.size, decoded.conversions, decoded.deep, decoded.fps, decoded.has_audio)


def video_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) of a clip's frames, from its first frame only."""
    return probe_video(path).size


UNREAD_PICTURES = frozenset({".heic", ".heif"})  # a phone's HEIF photos: Pillow reads none without a plug-in


def _unread_picture(path: Path) -> str:
    """Why a HEIF picture (`UNREAD_PICTURES`) that Pillow cannot open is not read, and what to give instead."""
    return (
        f"{path} is a HEIC/HEIF picture, which is not read here (Pillow opens one only with the pillow-heif "
        "plug-in registered); give it as JPEG, PNG or AVIF (on a Mac: sips -s format jpeg FILE --out FILE.jpg)."
    )


def is_frame_name(name: str) -> bool:
    """Whether a file of this name counts as a frame of a folder of frames: an image's suffix, and not
    hidden (a `.DS_Store`, or macOS's `._1.jpg` beside `1.jpg`)."""
    return not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES


def frames_needed(start: int, num_frames: int | None, stride: int) -> int | None:
    """How many frames a clip must hold for the selection (`read_video`'s start, count and stride) to be
    whole: up to its last frame; None for every frame from `start`."""
    return None if num_frames is None else start + (num_frames - 1) * stride + 1


def declared_frames(path: str | os.PathLike, enough: int | None = None) -> int | None:
    """The frame count a clip declares, read without decoding a frame (None where it cannot say): a
    container's count (Matroska and WebM keep none: their video packets are counted, read but not
    decoded, and only up to `enough` where it is given, so that a selection from the start of a long
    file does not read all of it: a clip holding at least `enough` frames says `enough`), an animated
    image's, a folder's image files (by name: a file of another name that holds an image is not
    counted). A damaged file may hold fewer than it declares."""
    _check_path(path)
    path = Path(path)
    if path.is_dir():
        return sum(1 for p in path.iterdir() if p.is_file() and is_frame_name(p.name))
    try:
        with Image.open(path) as img:
            return int(getattr(img, "n_frames", 1))
    except (UnidentifiedImageError, OSError):
        pass
    try:
        with av.open(str(path)) as container:
            stream = _clip_stream(container, path)
            count = int(stream.frames)  # 0 where the container does not say
            if not count:  # one packet per frame; the demuxer's closing packets are empty
                packets = (packet for packet in container.demux(stream) if packet.size)
                count = sum(1 for _ in itertools.islice(packets, enough))  # None: every packet
            return count or None
    except (av.error.FFmpegError, VideoError):
        return None  # read_video names what is wrong with it


def selected_count(available: int, start: int, num_frames: int | None, stride: int) -> int:
    """Frames a selection (the official sample_start_idx, n_sample_frames, sample_frame_rate) takes
    from a clip of `available` frames: every stride-th from `start`, at most `num_frames`."""
    n = len(range(start, available, stride))
    return n if num_frames is None else min(n, num_frames)


def check_selection(path: str | os.PathLike, count: int, start: int, num_frames: int | None, stride: int) -> None:
    """That a clip of `count` frames holds the selection `read_video` takes from it (`selected_count`);
    else a `VideoError` naming what it holds and what to ask for instead."""
    available = selected_count(count, start, None, stride)
    has = f"{path} has {_count(count, 'frame')}"
    if available == 0:
        raise VideoError(
            f"{has}; start={start} is past its last frame ({count - 1}).",
            "start",
            f"{start} is past the last frame of {path}, frame {count - 1} (frames count from 0); give a start from "
            f"0 to {count - 1}.",
        )
    if num_frames is not None and available < num_frames:
        default = " (the default, the authors' n_sample_frames)" if num_frames == VideoConfig.frames else ""
        raise VideoError(
            f"{has}; start={start}, stride={stride} gives {available}, fewer than the {num_frames} asked "
            f"for{default}. Ask for at most {_count(available, 'frame')} (--frames {available}; --frames 0: every "
            "frame), or lower start or stride.",
            "frames",
            f"{num_frames} asks for more frames than {path} holds: it has {_count(count, 'frame')}, and start "
            f"{start}, stride {stride} give {available}; ask for at most {available}, or a lower start or stride.",
        )


def _check_frame_size(path: str | os.PathLike, size: tuple[int, int]) -> None:
    if size[0] == 0 or size[1] == 0:
        raise VideoError(f"{path} has zero-size frames ({size[0]}x{size[1]}).")


def reading_numbers(
    start: int, num_frames: int | None, stride: int, fps: float | None
) -> tuple[int, int | None, int, float | None]:
    """A selection (`read_video`'s) and frame rate as Python's numbers (numpy's taken too), refused
    (OptionError, naming the argument) unless the selection is whole numbers in range and the rate a
    finite number in FPS_RANGE, before the clip is opened."""
    start, num_frames, stride, fps = (plain_number(x) for x in (start, num_frames, stride, fps))
    if num_frames is not None:
        check_number(None, "num_frames", num_frames, 1, whole=True, cap=COUNT_MAX)
    check_number(None, "start", start, 0, whole=True, cap=COUNT_MAX)
    check_number(None, "stride", stride, 1, whole=True, cap=COUNT_MAX)
    if fps is not None:
        check_number(None, "fps", fps, *FPS_RANGE)
    return start, num_frames, stride, fps


def check_frame_rate(path: str | os.PathLike, fps: float | None) -> None:
    """A frame rate is given to a folder of frames only: a video or an animated image keeps its own (a
    VideoError names it), so that its frames stay in step with its sound and times."""
    if fps is not None and not Path(path).is_dir():
        raise VideoError(
            f"{path} keeps its own frame rate; a frame rate ({fps:g} fps) is given to a folder of frames only.",
            "fps",
            f"{fps:g} is given to a folder of frames only; {path} keeps its own frame rate.",
        )


def check_video(
    path: str | os.PathLike, start: int = 0, num_frames: int | None = None, stride: int = 1, fps: float | None = None
) -> None:
    """What `read_video` would refuse, found without decoding the clip: a path missing, an empty,
    damaged or unknown file, zero-size frames, too few frames for the selection, a frame rate given to
    what has its own. A file is judged by its first frame and declared frame count (`declared_frames`: one
    that holds fewer frames than it declares passes, and `read_video` names it); a folder by every image's
    header (unreadable and mixed-size frames too)."""
    start, num_frames, stride, fps = reading_numbers(start, num_frames, stride, fps)
    _check_path(path)
    check_frame_rate(path, fps)
    if Path(path).is_dir():
        decoded = _read_frame_dir(Path(path), range(0), None)  # headers only
        count, size = len(decoded.frames), decoded.size
    else:
        size, count = video_size(path), declared_frames(path, frames_needed(start, num_frames, stride))
    _check_frame_size(path, size)
    if count is not None:
        check_selection(path, count, start, num_frames, stride)


def _count(n: int, noun: str) -> str:
    """'1 frame', '8 frames'."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def timing_drift(times: list[float | None], period: float) -> float:
    """How far (seconds) frames shown at `times` stray from a constant rate of one per `period` started
    at the first: 0 for a constant-rate clip; frames whose time is unknown are left out."""
    known = [(k, t) for k, t in enumerate(times) if t is not None]
    return max((abs(t - known[0][1] - k * period) for k, t in known), default=0.0)


def _selection_times(decoded: _Decoded, picked: range, period: float) -> np.ndarray | None:
    """(F + 1,) seconds: when each `picked` frame is shown, from the first, and when the last ends (the
    time of the frame after it, or the file's end when it ends before that frame, where known, else one
    `period` later); None where they are evenly spaced (within half a period: a constant rate, written
    as such), their times are unknown, or they do not increase (written at the constant rate)."""
    times = decoded.times
    if not times or any(times[i] is None for i in picked):
        return None
    after = picked[-1] + picked.step  # the frame after the last one picked
    if after < len(times) and times[after] is not None:
        end = times[after]
    else:
        end = decoded.end if after >= len(times) and decoded.end is not None else times[picked[-1]] + period
    shown = np.array([*(times[i] for i in picked), end]) - times[picked[0]]
    if np.any(np.diff(shown) <= 0):  # times that go back (a stream joined from parts) or repeat: evenly
        return None
    return shown if timing_drift(list(shown), period) > 0.5 * period else None


def read_video(
    path: str | os.PathLike,
    start: int = 0,
    num_frames: int | None = None,
    stride: int = 1,
    transform: Transform | None = None,
    small: tuple[int, int] | None = None,
    fps: float | None = None,
) -> Video:
    """Read a clip and select `num_frames` frames from `start` every `stride` frames, each passed
    through `transform` (e.g. a resize) as it is decoded, so that memory holds the selection only.
    Where `transform` resizes to `small` (width, height), a video's frame is converted to RGB at the size
    that covers it rather than whole (and an HDR frame tone-mapped there: the cost is per pixel), and a
    folder's JPEG frame decoded at 1/2, 1/4 or 1/8 of its size where that still covers it.

    These are the official `sample_start_idx`, `n_sample_frames` and `sample_frame_rate`. The frame
    rate of the selection is the file's divided by `stride`, so that it lasts as long as the frames
    it was taken from and keeps in step with their sound (`audio`, the same span of the file's).
    Frames not evenly spaced (a variable frame rate, a GIF's uneven delays) keep their own times
    (`times`), which the writers keep too. `fps`: a folder of frames' rate (default DEFAULT_FPS); a video or
    an animated image has its own (`check_frame_rate`).
    """
    start, num_frames, stride, fps = reading_numbers(start, num_frames, stride, fps)
    _check_path(path)
    check_frame_rate(path, fps)
    wanted = (
        range(start, start + num_frames * stride, stride) if num_frames is not None else range(start, 2**62, stride)
    )
    decoded = _decode(Path(path), wanted, transform, small=small)
    frames, fps = decoded.frames, fps or decoded.fps
    _check_frame_size(path, decoded.size)
    check_selection(path, len(frames), start, num_frames, stride)
    num_frames = selected_count(len(frames), start, num_frames, stride)
    picked = frames[start : start + num_frames * stride : stride]
    times = _selection_times(decoded, range(start, start + num_frames * stride, stride), stride / fps)
    audio = None
    if decoded.has_audio:  # from where the first frame is shown (a video stream may start after its sound)
        first = decoded.times[start] if decoded.times and decoded.times[start] is not None else start / fps
        audio = AudioSpan(str(path), first, first + (times[-1] if times is not None else num_frames * stride / fps))
    del frames, decoded  # each frame is then held by `picked` alone
    clip = np.empty((len(picked), *picked[0].shape), dtype=np.uint8)  # (F, H, W, 3)
    for i in range(len(picked)):  # np.stack held every frame twice at its end; this holds each once
        clip[i], picked[i] = picked[i], None
    return Video(frames=clip, fps=fps / stride, audio=audio, times=times)


def iter_video(
    path: str | os.PathLike, start: int, num_frames: int, stride: int = 1, signal: bool = False
) -> Iterator[np.ndarray]:
    """The selected frames one at a time, at the file's size: a second pass over a long clip holds one
    frame in memory (containers and folders of frames; animated images are read whole). With `signal`,
    a deep clip's frames (`Probe.deep`: HDR, or SDR of more than 8 bits) in its own form ((H, W, 3) uint16
    R'G'B', `_display_rgb`), not tone-mapped nor rounded; a folder's 8-bit frames among them made so."""
    path = Path(path)
    wanted = range(start, start + num_frames * stride, stride)
    if _frames_of_one(path):
        to_signal = None  # the folder's signal is its first frame's (`_read_frame_dir`)
        for i, (_, _, frame, said) in enumerate(_iter_frame_dir(path, wanted, None, signal=signal)):
            if i == 0 and signal and said is not None:
                to_signal = to_signal_converter(said)
            if frame is not None:
                yield to_signal(frame) if to_signal is not None and frame.dtype == np.uint8 else frame
            if i >= wanted[-1]:
                return
        return
    if not _is_container(path):
        yield from read_video(path, start, num_frames, stride).frames
        return
    with av.open(str(path)) as container:
        stream = _clip_stream(container, path)
        showing = None
        for i, frame in _frames_until(container, stream, wanted):
            showing = showing or _showing(stream, frame)
            if i in wanted:
                yield _upright(frame, showing, signal=signal)


def _conversions(path: Path, stream, showing: _Showing) -> tuple[str, ...]:
    """What reading `stream` converts, from what the reader converts by (`showing`, for `_display_rgb`;
    the field order, for `_progressive`), so that the edit is not in the file's own form, each a sentence."""
    codec, said = stream.codec_context, []
    if showing.deep is not None and showing.deep.hdr:
        said.append(_hdr_conversion(path, showing.deep))
    if showing.alpha:
        said.append(
            f"{path} has an alpha channel: its frames are read composited over black, as pictures with alpha are, "
            "and the edit is opaque."
        )
    if codec.field_order in INTERLACED:
        said.append(
            f"{path} is interlaced (two fields in each frame): it is deinterlaced as it is read (FFmpeg's yadif, "
            "one frame per frame), and the edit is progressive video."
        )
    return tuple(said)


def _hdr_conversion(path: Path, hdr: DeepSignal) -> str:
    """What reading an HDR clip converts, as a sentence."""
    peak = (
        "HLG's nominal display"
        if hdr.transfer == HLG
        else "as the file says"
        if hdr.said_peak is not None
        else "assumed: the file does not say its peak"
    )
    if hdr.linear:
        return (
            f"{path} holds OpenEXR frames, scene-linear light: read as HDR video (PQ, BT.2020; their 1 at HDR's "
            f"reference white, {REFERENCE_WHITE:g} cd/m2; their primaries as their files say, BT.709 where they say "
            "none), the model sees them as an SDR screen shows it (tone-mapped to BT.709, their highlights rolled "
            f"off from {hdr.peak:g} cd/m2); the edits' mp4s are pasted into those frames and are HDR video (PQ; "
            "--png-frames: OpenEXR frames too, the plate's own light wherever nothing is pasted; --composite sdr: "
            "SDR; --composite off: SDR at the working size), the previews are SDR."
        )
    return (
        f"{path} is HDR video ({HDR_TRANSFERS[hdr.transfer]}): the model sees it as an SDR screen shows it "
        f"(tone-mapped to BT.709, its reference white {REFERENCE_WHITE:g} cd/m2 as the screen's white, its "
        f"highlights rolled off from {hdr.peak:g} cd/m2, {peak}); the edits' mp4s are pasted into its own "
        "frames and stay HDR (--composite sdr: SDR; --composite off: SDR at the working size), the "
        "previews are SDR."
    )


def _is_container(path: Path) -> bool:
    try:
        with Image.open(path):
            return False
    except (UnidentifiedImageError, OSError):
        return True


def nearest_valid_sizes(value: int, multiple: int) -> tuple[int, int]:
    lo = max(multiple, (value // multiple) * multiple)
    return lo, lo + multiple


def check_size(width: int | None, height: int | None, multiple: int) -> None:
    """Raise OptionError (the side's setting: `width`, `height`) unless both sides are positive multiples
    of `multiple`; a side not given (None) is one `resolve_size` makes so."""
    for name, v in (("width", width), ("height", height)):
        if v is not None and (v <= 0 or v % multiple):
            lo, hi = nearest_valid_sizes(max(v, 1), multiple)
            valid = f"the smallest valid {name} is {lo}" if v < lo else f"nearest valid {name}s are {lo} and {hi}"
            raise OptionError(
                name, f"{v} is not allowed by the model: sides must be positive multiples of {multiple}; {valid}."
            )


def _snap(value: float, multiple: int) -> int:
    """`value` rounded to the nearest positive multiple of `multiple`."""
    return max(multiple, int(round(value / multiple)) * multiple)


def resolve_size(
    src_size: tuple[int, int], width: int | None, height: int | None, base: int, multiple: int, step: int | None = None
) -> tuple[int, int]:
    """Target (width, height): given sides are validated as multiples of `multiple`; a missing one keeps the
    source aspect ratio, rounded to a multiple of `multiple`.

    With neither given, the area is about `base` squared (the model's native size) and both sides are
    multiples of `step` (default `multiple`: a model's own choice of size halves exactly at every level).
    """
    sw, sh = src_size
    if width is None and height is None:
        scale = base / np.sqrt(sw * sh)
        width, height = _snap(sw * scale, step or multiple), _snap(sh * scale, step or multiple)
    elif width is None:
        width = _snap(height * sw / sh, multiple)
    elif height is None:
        height = _snap(width * sh / sw, multiple)
    check_size(width, height, multiple)
    return width, height


def working_words(size: tuple[int, int], working: tuple[int, int], other: str) -> str:
    """How a clip of `size` (as shown) is worked at `working` by the model, as `videop2p info` and the web editor
    say it; `other`: how to ask for another size."""
    back = f"; its edits are pasted back at {size[0]}x{size[1]}" if working != size else ""
    return f"worked at {working[0]}x{working[1]} by this model ({other}){back}"


def resize_frames(frames: np.ndarray, width: int, height: int, mode: ResizeMode | str = ResizeMode.CROP) -> np.ndarray:
    """Resize (F, H, W, 3) frames to (F, height, width, 3) by crop, pad or stretch.

    A crop resamples only the part of the frame it keeps (Pillow's `box`: the centre of the frame scaled
    to cover the size), so it never holds the whole scaled frame, which for a size of another aspect ratio
    can be far larger than the size itself (64x64 frames cropped to 100000x64: 10^10 pixels)."""
    mode = ResizeMode(mode)
    _, h, w, _ = frames.shape
    if (w, h) == (width, height):
        return frames.copy()
    out = np.zeros((len(frames), height, width, 3), dtype=np.uint8)
    if mode is ResizeMode.STRETCH:
        sw, sh = width, height
    else:
        s = max(width / w, height / h) if mode is ResizeMode.CROP else min(width / w, height / h)
        sw, sh = max(1, round(w * s)), max(1, round(h * s))
    if mode is ResizeMode.CROP:  # the part of the (sw, sh) scaled frame at its centre, in the frame's own pixels
        x0, y0 = (sw - width) // 2, (sh - height) // 2
        box = (x0 * w / sw, y0 * h / sh, (x0 + width) * w / sw, (y0 + height) * h / sh)
        for i, fr in enumerate(frames):
            out[i] = np.asarray(Image.fromarray(fr).resize((width, height), Image.Resampling.BICUBIC, box=box))
        return out
    for i, fr in enumerate(frames):
        img = np.asarray(Image.fromarray(fr).resize((sw, sh), Image.Resampling.BICUBIC))
        if mode is ResizeMode.PAD:
            y0, x0 = (height - sh) // 2, (width - sw) // 2
            out[i, y0 : y0 + sh, x0 : x0 + sw] = img
        else:
            out[i] = img
    return out


def plate_files(path: str | os.PathLike) -> list[Path] | None:
    """An OpenEXR plate's frames in the order they are read: one `.exr` file, or a folder holding OpenEXR
    files only (hidden ones aside); None for any other clip (a folder with other files in it counts its
    frames by what each file holds, `_iter_frame_dir`)."""
    path = Path(path)
    if not path.is_dir():
        return [path] if path.is_file() and is_exr(path) else None
    files = _listed(path)
    if not files or not all(p.is_file() and is_exr(p) for p in files):
        return None
    return files
