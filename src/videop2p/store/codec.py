"""The one tensors-with-metadata format: safetensors with a JSON document under the `videop2p` key.

Tuned deltas, inversions, edits and single-file models are all written and read here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from videop2p.store.files import atomic_path

META_KEY = "videop2p"


class CorruptFileError(ValueError):
    """A tensors file that is missing, truncated or not one of ours."""


def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict) -> Path:
    """Write `tensors` (moved to the CPU, made contiguous) and `meta` (JSON) atomically."""
    plain = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(plain, str(tmp), metadata={META_KEY: json.dumps(meta, default=str)})
    return Path(path)


def _open_error(path: str | os.PathLike, e: Exception) -> CorruptFileError:
    return CorruptFileError(f"{path} is not a readable safetensors file, or is truncated ({e}).")


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
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata()
    except (SafetensorError, OSError) as e:
        raise _open_error(path, e) from None
    return _parse_meta(path, raw, required)


def all_finite(tensors: dict[str, torch.Tensor]) -> bool:
    """Whether every value of every tensor is finite (a saved result with NaN in it is damaged)."""
    return all(bool(torch.isfinite(t).all()) for t in tensors.values())


def load_tensors(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, metadata) of a file written by `save_tensors`, read in one pass."""
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as f:
            meta = _parse_meta(path, f.metadata(), required=True)
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no iterator)
    except (SafetensorError, OSError) as e:
        raise _open_error(path, e) from None
    return tensors, meta
