"""OpenEXR frames: a VFX plate's scene-linear light, read through FFmpeg's decoder.

Frames are written (`encode_exr`) by FFmpeg's encoder, half or full floats as the plate's were, ZIP
in blocks of 16 lines, with the plate's chromaticities put in the header (FFmpeg writes none).

The header is read here, without decoding a pixel: the frame's size is its display window (what
players show, and what FFmpeg decodes: pixels of the data window outside it are cut, the rest of
it is black; FFmpeg places the data window as if the display window started at (0, 0), so one that
does not is refused), its primaries its `chromaticities` attribute (BT.709's where it has none, as the
OpenEXR specification says). Pixels come as FFmpeg's planar float formats (half or float; luminance
alone as grey), alpha left out: OpenEXR's colour is premultiplied, so that is the image over black.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from videop2p.io.hdr import BT709_XY

EXR_MAGIC = b"v/1\x01"  # 20000630, little-endian
HEADER_READ = 1 << 16  # bytes read for a header at first: a few hundred bytes, more with a preview image
HEADER_LIMIT = 1 << 24  # bytes of header read at most
FLOAT_PLANES = re.compile(r"(gbrap|gbrp|graya|gray)f(16|32)(le|be)")  # FFmpeg's planar float formats
PLANE_ORDER = {"gbrp": (2, 0, 1), "gbrap": (2, 0, 1), "gray": (0, 0, 0), "graya": (0, 0, 0)}  # R, G, B planes
LINES_PER_CHUNK = {0: 1, 1: 1, 2: 1, 3: 16, 4: 32, 5: 16, 6: 32, 7: 32, 8: 32, 9: 256}  # by compression
SINGLE_PART_FLAGS = 0x800 | 0x1000  # version bits of deep and multi-part files, whose chunks are laid out otherwise
TILED_FLAG, ONE_LEVEL = 0x200, 0  # a tiled file's version bit; its tiles' level mode without mipmaps


@dataclass(frozen=True)
class ExrHeader:
    """What a frame's header says: its size and colours, and where its chunks are listed."""

    size: tuple[int, int]  # (width, height) of its display window
    chromaticities: tuple[float, ...] | None  # red, green, blue, white: x, y each, where the file says them
    chunks: int | None = None  # how many chunks its offset table lists; None where that is not counted here
    table_at: int = 0  # the byte its offset table starts at
    tiled: bool = False  # its chunks are tiles (a 20-byte head each), else scanlines (8 bytes)

    @property
    def primaries(self) -> tuple[float, ...]:
        """Its primaries and white: its chromaticities, BT.709's where it says none (OpenEXR's default)."""
        return self.chromaticities or BT709_XY


def is_exr(path: Path) -> bool:
    """Whether a file is an OpenEXR image, by its content."""
    with open(path, "rb") as f:
        return f.read(4) == EXR_MAGIC


def read_header(path: Path) -> ExrHeader:
    """A frame's `ExrHeader`; a ValueError says what is wrong with a header that cannot be read. Its first
    HEADER_READ bytes are read, and more only for a header that does not end in them."""
    with open(path, "rb") as f:
        data = f.read(HEADER_READ)
        try:
            return _parse_header(data)
        except _CutShort:
            if len(data) < HEADER_READ:
                raise ValueError("its header is cut short") from None
            return _parse_header(data + f.read(HEADER_LIMIT - len(data)))


class _CutShort(ValueError):
    """The bytes read end inside the header."""

    def __init__(self):
        super().__init__("its header is cut short")


def _parse_header(data: bytes) -> ExrHeader:
    """`read_header` of a file's first bytes."""
    if len(data) < 8 or data[:4] != EXR_MAGIC:
        raise ValueError("not an OpenEXR header")
    attributes, at = {}, 8
    while True:  # name \0 type \0 size (int32) value, ..., then an empty name
        name, at = _string(data, at)
        if not name:
            break
        kind, at = _string(data, at)
        if at + 4 > len(data):
            raise _CutShort
        (length,) = struct.unpack_from("<i", data, at)
        at += 4
        if length < 0:
            raise ValueError(f"its attribute {name!r} has a negative size")
        if at + length > len(data):
            raise _CutShort
        attributes[name] = (kind, data[at : at + length])
        at += length
    window = attributes.get("displayWindow")
    if window is None or window[0] != "box2i" or len(window[1]) != 16:
        raise ValueError("its header has no display window")
    x0, y0, x1, y1 = struct.unpack("<4i", window[1])
    if x1 < x0 or y1 < y0:
        raise ValueError(f"its display window ({x0}, {y0}) - ({x1}, {y1}) is empty")
    if (x0, y0) != (0, 0):  # FFmpeg places the data window as if it were: its frame would be shifted
        raise ValueError(
            f"its display window starts at ({x0}, {y0}), which FFmpeg's decoder does not place; write the plate "
            "with its display window at (0, 0) (the data window may reach beyond it)"
        )
    chromaticities = None
    said = attributes.get("chromaticities")
    if said is not None and said[0] == "chromaticities" and len(said[1]) == 32:
        chromaticities = tuple(float(v) for v in struct.unpack("<8f", said[1]))
    (version,) = struct.unpack_from("<i", data, 4)
    chunks = None if version & SINGLE_PART_FLAGS else _chunk_count(attributes, bool(version & TILED_FLAG))
    size = (x1 - x0 + 1, y1 - y0 + 1)
    return ExrHeader(size, chromaticities, chunks, at, bool(version & TILED_FLAG))


def _chunk_count(attributes: dict[str, tuple[str, bytes]], tiled: bool) -> int | None:
    """How many chunks a single-part file's offset table lists (OpenEXR's file layout): its data window's
    lines in blocks of its compression's height, or its tiles at one level; None where it says neither
    clearly (a tiled file with mipmaps)."""
    window, compression = attributes.get("dataWindow"), attributes.get("compression")
    if window is None or len(window[1]) != 16 or compression is None or len(compression[1]) != 1:
        return None
    x0, y0, x1, y1 = struct.unpack("<4i", window[1])
    if x1 < x0 or y1 < y0:
        return 0
    if not tiled:
        lines = LINES_PER_CHUNK.get(compression[1][0])
        return None if lines is None else -(-(y1 - y0 + 1) // lines)
    tiles = attributes.get("tiles")
    if tiles is None or len(tiles[1]) != 9:
        return None
    width, height, mode = struct.unpack("<IIB", tiles[1])
    if mode & 0xF != ONE_LEVEL or not width or not height:
        return None
    return -(-(x1 - x0 + 1) // width) * -(-(y1 - y0 + 1) // height)


def check_complete(path: Path, header: ExrHeader) -> None:
    """A ValueError where a file's chunks do not all lie in it: a file cut short, or one whose writer
    stopped before every chunk was written (its offset left 0). FFmpeg decodes such a file with the
    missing lines black, without a word."""
    if header.chunks is None:
        return
    length = path.stat().st_size
    with open(path, "rb") as f:
        f.seek(header.table_at)
        table = f.read(8 * header.chunks)
        if len(table) < 8 * header.chunks:
            raise ValueError("it is cut short in its offset table")
        offsets = struct.unpack(f"<{header.chunks}Q", table)
        if not offsets:
            return
        head = 20 if header.tiled else 8  # a chunk's coordinates, then its data's size (int32)
        last = max(offsets)
        if min(offsets) < header.table_at + len(table) or last + head > length:
            raise ValueError("a chunk of it lies outside the file: it is cut short or was not written whole")
        f.seek(last + head - 4)
        (size,) = struct.unpack("<i", f.read(4))
    if size < 0 or last + head + size > length:
        raise ValueError("it is cut short in its last chunk")


def _string(data: bytes, at: int) -> tuple[str, int]:
    """The null-terminated string at `at` and the offset after it."""
    end = data.find(b"\0", at)
    if end < 0:
        raise _CutShort
    return data[at:end].decode("latin-1"), end + 1


def read_linear(path: Path) -> np.ndarray:
    """A frame's scene-linear RGB (H, W, 3) as FFmpeg decodes it, float16 or float32 as stored (values as
    stored: negative, above 1, not-a-number); a ValueError names what FFmpeg could not read."""
    try:
        with av.open(str(path)) as container:
            frame = next(container.decode(video=0))
    except (av.error.FFmpegError, StopIteration) as e:
        raise ValueError(str(e) or "FFmpeg decoded no frame") from e
    name = frame.format.name  # e.g. gbrpf32le, gbrapf16le, grayf32le
    form = FLOAT_PLANES.fullmatch(name)
    if form is None:
        raise ValueError(f"FFmpeg decodes it as {name}, not as planes of floats")
    kind, bits, order = form.groups()
    dtype = np.dtype(("<" if order == "le" else ">") + ("f2" if bits == "16" else "f4"))
    planes = [
        np.frombuffer(bytes(plane), dtype).reshape(frame.height, plane.line_size // dtype.itemsize)[:, : frame.width]
        for plane in frame.planes
    ]
    return np.stack([planes[i] for i in PLANE_ORDER[kind]], axis=-1).astype(dtype.newbyteorder("="))  # (H, W, 3)


def encode_exr(light: np.ndarray, chromaticities: tuple[float, ...] | None = None) -> bytes:
    """(H, W, 3) light as an OpenEXR file's bytes, half floats for float16 and full ones otherwise (ZIP in
    blocks of 16 lines), saying `chromaticities` where given (an attribute FFmpeg's encoder does not write)."""
    height, width = light.shape[:2]
    codec = av.codec.CodecContext.create("exr", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "gbrpf32le"
    codec.options = {"format": "half" if light.dtype == np.float16 else "float", "compression": "zip16"}
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(light, dtype=np.float32), format="gbrpf32le")
    data = b"".join(bytes(packet) for packet in [*codec.encode(frame), *codec.encode(None)])
    if chromaticities is None:
        return data
    return _with_attribute(data, "chromaticities", "chromaticities", struct.pack("<8f", *chromaticities))


def _with_attribute(data: bytes, name: str, kind: str, value: bytes) -> bytes:
    """A single-part scanline file's bytes with one more header attribute, put before the header's closing
    null byte, each entry of its offset table moved on by the attribute's length."""
    header = _parse_header(data)
    attribute = name.encode() + b"\0" + kind.encode() + b"\0" + struct.pack("<i", len(value)) + value
    end, table = header.table_at - 1, header.table_at + 8 * header.chunks  # the closing null; the table's end
    offsets = np.frombuffer(data, "<u8", header.chunks, header.table_at) + np.uint64(len(attribute))
    return data[:end] + attribute + data[end : header.table_at] + offsets.astype("<u8").tobytes() + data[table:]
