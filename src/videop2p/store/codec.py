"""The one tensors-with-metadata format: safetensors with a JSON document under the `videop2p` key.

Tuned deltas, inversions, edits and single-file models are all written and read here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

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


def read_meta(path: str | os.PathLike) -> dict:
    """The JSON metadata of a tensors file; CorruptFileError names the file when it cannot be read."""
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(META_KEY)
    except (SafetensorError, OSError) as e:
        raise CorruptFileError(f"{path} is not a readable safetensors file ({e}).") from None
    if raw is None:
        raise CorruptFileError(f"{path} has no videop2p metadata; it was not written by videop2p.")
    return json.loads(raw)


def load_tensors(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, metadata) of a file written by `save_tensors`."""
    meta = read_meta(path)
    try:
        tensors = load_file(str(path), device=str(device))
    except (SafetensorError, OSError) as e:
        raise CorruptFileError(f"{path} is truncated or corrupt ({e}).") from None
    return tensors, meta
