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
        raise error(
            f"{kind} file {str(path)!r} cannot be read as weights (cut short, damaged, or holding more than "
            f"tensors: {_reason(e)[:160]})."
        ) from None


WEIGHTS_ONLY_REFUSAL = "WeightsUnpickler error:"  # where torch's weights-only reading says what it found


def first_line(error: BaseException) -> str:
    """An error's message in one line: its first, or its type's name where it says nothing."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _reason(error: BaseException) -> str:
    """A failed read's reason in one line: torch's weights-only refusal by what it found (an operand of no
    pickle, a class that is not a tensor's) rather than by its first lines of advice; anything else by its
    first line."""
    text = str(error).strip()
    if WEIGHTS_ONLY_REFUSAL in text:
        found = text.split(WEIGHTS_ONLY_REFUSAL, 1)[1].strip()
        return found.splitlines()[0].split(". Please use")[0].strip() if found else type(error).__name__
    return first_line(error)
