"""Reading a weights file that a user gives beside a model (an embedding, a VAE), without running its code."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch


def read_weights_file(path: Path, kind: str, error: type[Exception]) -> object:
    """The file's contents: a safetensors dict, or a torch pickle read with weights only (no code runs); a file
    cut short, damaged or holding more than tensors is an `error` naming the `kind` file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        if path.suffix.lower() == ".safetensors":
            return load_file(str(path))
        return torch.load(path, map_location="cpu", weights_only=True)
    except (SafetensorError, OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise error(
            f"{kind} file {str(path)!r} cannot be read as weights (cut short, damaged, or holding more than "
            f"tensors: {first[:160]})."
        ) from None
