"""The one tensors-with-metadata format: safetensors with a JSON document under the `videop2p` key.

Tuned deltas, inversions, edits and single-file models are all written and read here. A tensor too
large to hold whole (an inversion's T + 1 steps of a long clip's latents) is written and read one row
at a time (`Rows`).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import struct
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import torch
from safetensors import SafetensorError, safe_open

from videop2p.store.files import atomic_path

META_KEY = "videop2p"
# torch dtype -> safetensors' name for it (the format's specification, huggingface/safetensors README)
DTYPES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}
_BY_NAME = {name: dtype for dtype, name in DTYPES.items()}


class CorruptFileError(ValueError):
    """A tensors file that is missing, truncated or not one of ours."""


@dataclass(frozen=True)
class Rows:
    """A tensor (N, *row_shape) read one row (first-axis index) at a time, so that it is never in memory
    whole: an inversion's T + 1 steps of a long clip's latents, kept in a file or in a stage's step
    files. `read(k)` gives row k, 0 <= k < N; indexing takes negative k as a tensor does."""

    read: Callable[[int], torch.Tensor]
    count: int
    row_shape: tuple[int, ...]
    dtype: torch.dtype

    @property
    def shape(self) -> torch.Size:
        return torch.Size((self.count, *self.row_shape))

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, k: int) -> torch.Tensor:
        if not -self.count <= k < self.count:
            raise IndexError(f"row {k} of {self.count}")
        return self.read(k % self.count)

    def __iter__(self) -> Iterator[torch.Tensor]:
        return (self.read(k) for k in range(self.count))

    def stack(self) -> torch.Tensor:
        """Every row in one tensor (N, *row_shape): for short ones only."""
        return torch.stack(list(self))

    def reversed(self) -> Rows:
        """The same rows, last first."""
        return Rows(functools.partial(_read_reversed, self), self.count, self.row_shape, self.dtype)


def _read_reversed(rows: Rows, k: int) -> torch.Tensor:
    return rows.read(rows.count - 1 - k)


def _parts(t: torch.Tensor | Rows) -> Iterator[torch.Tensor] | list[torch.Tensor]:
    """A `Rows` value's rows, one at a time, or a tensor whole."""
    return t if isinstance(t, Rows) else [t]


def rows_of(rows: Sequence[torch.Tensor]) -> Rows:
    """Rows held in memory (a short clip's, or a stage run without a workspace to keep them in)."""
    kept = list(rows)
    return Rows(kept.__getitem__, len(kept), tuple(kept[0].shape), kept[0].dtype)


def _tensor_bytes(t: torch.Tensor) -> memoryview:
    """The bytes of a tensor in the format's little-endian layout, without a copy on the CPU."""
    return memoryview(t.detach().contiguous().cpu().reshape(-1).view(torch.uint8).numpy())


def _write_safetensors(f: BinaryIO, tensors: Mapping[str, torch.Tensor | Rows], metadata: dict[str, str]) -> None:
    """The safetensors layout (an 8-byte header length, a JSON header padded to 8 bytes, then every
    tensor's bytes in order), each `Rows` value written row by row; safetensors' own writer builds the
    whole file in memory first."""
    header: dict = {"__metadata__": metadata}
    start = 0
    for name, t in tensors.items():
        if t.dtype not in DTYPES:
            raise TypeError(f"tensor {name!r} has dtype {t.dtype}, which the file format does not hold")
        end = start + t.shape.numel() * t.dtype.itemsize
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [start, end]}
        start = end
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    f.write(struct.pack("<Q", len(text)) + text)
    for name, t in tensors.items():
        for part in _parts(t):
            if isinstance(t, Rows) and (tuple(part.shape), part.dtype) != (t.row_shape, t.dtype):
                raise ValueError(f"a row of {name!r} is {part.dtype} {tuple(part.shape)}, not {t.dtype} {t.row_shape}")
            f.write(_tensor_bytes(part))


def save_tensors(path: str | os.PathLike, tensors: Mapping[str, torch.Tensor | Rows], meta: dict) -> Path:
    """Write `tensors` (tensors on any device, or `Rows` read one row at a time) and `meta` (JSON)
    atomically."""
    if sys.byteorder != "little":  # the format is little-endian; torch's bytes are the machine's
        raise OSError("videop2p writes its files on little-endian machines only")
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        _write_safetensors(f, tensors, {META_KEY: json.dumps(meta, default=str)})
    return Path(path)


@contextlib.contextmanager
def _opened(path: str | os.PathLike, device: str | torch.device = "cpu") -> Iterator[Any]:
    """safe_open on `path`; a file that is missing (removed since: `videop2p workspace remove`),
    truncated or not safetensors, or a tensor name it lacks, is a CorruptFileError naming it."""
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as f:
            yield f
    except (SafetensorError, OSError) as e:
        raise CorruptFileError(f"{path} is not a readable safetensors file, or is truncated ({e}).") from None


def _parse_meta(path: str | os.PathLike, raw: dict | None, required: bool) -> dict:
    doc = (raw or {}).get(META_KEY)
    if doc is None:
        if required:
            raise CorruptFileError(f"{path} has no videop2p metadata; it was not written by videop2p.")
        return {}
    return json.loads(doc)


def read_meta(path: str | os.PathLike, required: bool = True) -> dict:
    """The JSON metadata of a tensors file (only its header is read); {} for another program's file
    when not `required`. CorruptFileError names a file that cannot be read."""
    with _opened(path) as f:
        raw = f.metadata()
    return _parse_meta(path, raw, required)


def all_finite(tensors: Mapping[str, torch.Tensor | Rows]) -> bool:
    """Whether every value of every tensor is finite (a saved result with NaN in it is damaged); `Rows`
    are read one row at a time."""
    return all(bool(torch.isfinite(part).all()) for t in tensors.values() for part in _parts(t))


def _read_row(path: str, name: str, k: int) -> torch.Tensor:
    with _opened(path) as f:
        return f.get_slice(name)[k]


def file_rows(path: str | os.PathLike, name: str) -> Rows:
    """Tensor `name` of a tensors file, read one row at a time from the file (onto the CPU) when asked."""
    with _opened(path) as f:
        return _rows_in(path, f, name)


def _rows_in(path: str | os.PathLike, f, name: str) -> Rows:
    """`file_rows` of `path`, whose header `f` (a safetensors handle) has already read."""
    found = f.get_slice(name)
    shape, dtype = found.get_shape(), found.get_dtype()
    return Rows(functools.partial(_read_row, str(path), name), shape[0], tuple(shape[1:]), _BY_NAME[dtype])


def read_tensor(path: str | os.PathLike, name: str, device: str | torch.device = "cpu") -> torch.Tensor:
    """Tensor `name` of a file written by `save_tensors`, read alone."""
    with _opened(path, device) as f:
        return f.get_tensor(name)


def load_tensors(
    path: str | os.PathLike, device: str | torch.device = "cpu", rows: Sequence[str] = ()
) -> tuple[dict[str, torch.Tensor | Rows], dict]:
    """(tensors, metadata) of a file written by `save_tensors`, read in one pass; a tensor named in
    `rows` comes back as `Rows` read from the file when asked (onto the CPU)."""
    with _opened(path, device) as f:
        meta = _parse_meta(path, f.metadata(), required=True)
        names = list(f.keys())
        tensors = {k: f.get_tensor(k) if k not in rows else _rows_in(path, f, k) for k in names}
    return tensors, meta
