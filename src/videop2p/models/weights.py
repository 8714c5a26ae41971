"""Reading weights: a file that a user gives beside a model (an embedding, a VAE), without running its code,
and a model's part from its folder, checked to be the model its config describes."""

from __future__ import annotations

import logging
import pickle
import re
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

# torch's refusal of a tensor of another shape (`load_state_dict`; one line per tensor)
_TORCH_SHAPE = re.compile(
    r"size mismatch for (\S+): copying a param with shape torch\.Size\((\[[^\]]*\])\) from checkpoint, the shape in "
    r"current model is torch\.Size\((\[[^\]]*\])\)"
)
# diffusers' refusal of a tensor whose shape differs from its config's (0.42, `load_model_dict_into_meta`)
_SHAPE_REFUSAL = re.compile(
    r"because (\S+) expected shape torch\.Size\((\[[^\]]*\])\), but got torch\.Size\((\[[^\]]*\])\)"
)


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


def safetensors_header(path: Path) -> tuple[list[str], dict[str, str]] | None:
    """(the tensor names, the metadata) of the .safetensors file `path`, read without its tensors; None where it is
    no .safetensors file or its header cannot be read."""
    from safetensors import SafetensorError, safe_open

    if path.suffix.lower() != ".safetensors":
        return None
    try:
        with safe_open(str(path), "pt") as f:
            return list(f.keys()), dict(f.metadata() or {})
    except (SafetensorError, OSError):
        return None


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


def named_keys(keys) -> str:
    """Tensor names as an error shows them: the first, and how many more."""
    keys = sorted(keys)
    return keys[0] + (f" and {len(keys) - 1} more" if len(keys) > 1 else "")


def _mismatch(what: str, key: str, held: str, made: str) -> str:
    return (
        f"{what}: the weight {key} is {held} in its files but {made} by its config.json; the config "
        "and the weights are of different models."
    )


# A model part's weights file as diffusers and transformers name it: plain (`diffusion_pytorch_model.safetensors`,
# `model.safetensors`, `pytorch_model.bin`), of a variant (`diffusion_pytorch_model.fp16.safetensors`), one shard
# of several (`model.fp16-00001-of-00002.safetensors`) or the shards' index (`model.safetensors.index.fp16.json`).
_WEIGHTS_NAME = re.compile(
    r"^(?:diffusion_pytorch_model|model|pytorch_model)(?:\.(?P<variant>\w+?))?(?:-\d+-of-\d+)?"
    r"\.(?P<format>safetensors|bin)$"
)
_INDEX_NAME = re.compile(
    r"^(?:diffusion_pytorch_model|model|pytorch_model)\.(?P<format>safetensors|bin)\.index(?:\.(?P<variant>\w+))?"
    r"\.json$"
)
PREFERRED_VARIANTS = ("fp32", "fp16", "bf16")  # of several variants and no plain files, the first of these held


def weights_load_kwargs(names) -> dict:
    """`from_pretrained`'s `variant` and `use_safetensors` for a model part whose folder holds the files
    `names`: its plain weights where it has them (what diffusers and transformers load unless told), else
    the one variant it holds (a folder written with `save_pretrained(variant="fp16")` holds only those), of
    several the first in PREFERRED_VARIANTS, else the first by name; safetensors where those files are
    safetensors (told, diffusers does not first fail to find them and log it as an error). Empty where the
    names hold no weights file."""
    formats: dict[str | None, set[str]] = {}  # variant (None: plain) -> formats of its files
    for name in names:
        found = _WEIGHTS_NAME.match(name) or _INDEX_NAME.match(name)
        if found is not None:
            formats.setdefault(found["variant"], set()).add(found["format"])
    if not formats:
        return {}
    variant = None if None in formats else min(formats, key=_variant_rank)
    return {"variant": variant, "use_safetensors": "safetensors" in formats[variant]}


def _variant_rank(variant: str) -> tuple[int, str]:
    return (PREFERRED_VARIANTS.index(variant) if variant in PREFERRED_VARIANTS else len(PREFERRED_VARIANTS), variant)


def load_pretrained(cls, name: str, what: str, error: type[Exception], **kwargs):
    """`cls.from_pretrained(name, **kwargs)` of a diffusers or transformers model, refused as an `error` naming
    `what` when its files do not make the model its config describes: a tensor the config makes that the
    files lack (diffusers leaves it unloaded, transformers draws it at random; either would go on to be
    edited with) or one of another shape. Tensors the files hold beyond the model's are left out, as both
    libraries do, and said in one line. A local folder's files are read as `weights_load_kwargs` finds them
    (a variant's only, .bin only); a hub id's are the caller's to give (`hub.hub_load_kwargs`)."""
    from transformers import PreTrainedModel

    folder = Path(name, kwargs.get("subfolder") or "")
    if "variant" not in kwargs and folder.is_dir():
        kwargs.update(weights_load_kwargs(f.name for f in folder.iterdir()))
    if issubclass(cls, PreTrainedModel):  # a shape refused by us, in one line, not by its table and an error
        kwargs["ignore_mismatched_sizes"] = True
    try:
        model, info = cls.from_pretrained(name, output_loading_info=True, **kwargs)
    except ValueError as e:
        found = _SHAPE_REFUSAL.search(str(e))
        if found is None:
            raise
        key, made, held = found.groups()
        raise error(_mismatch(what, key, held, made)) from None
    if info["mismatched_keys"]:
        key, held, made = sorted(info["mismatched_keys"])[0]
        raise error(_mismatch(what, key, str(list(held)), str(list(made))))
    if info["missing_keys"]:
        n, named = len(info["missing_keys"]), named_keys(info["missing_keys"])
        raise error(
            f"{what}: its files lack {n} weight{'s' * (n > 1)} that its config.json makes ({named}); they are "
            "incomplete or of another model (download or convert it again)."
        )
    if info["unexpected_keys"]:
        logger.warning(
            "%s: its files hold weights that its config.json does not make (%s); they are left out",
            what,
            named_keys(info["unexpected_keys"]),
        )
    return model


def load_state(module: torch.nn.Module, state: dict[str, torch.Tensor], what: str, error: type[Exception], hint: str):
    """`module.load_state_dict(state)`, every key checked: a weight of another shape than the module's, one the
    module has and `state` lacks, or one it holds beyond the module's is an `error` naming `what`, the first
    such weight, and `hint` (what to give instead), in one line."""
    try:
        missing, unexpected = module.load_state_dict(state, strict=False)
    except RuntimeError as e:  # strict or not, a shape that differs is refused, a line per tensor
        found = _TORCH_SHAPE.search(str(e))
        if found is None:
            raise error(f"{what}: {first_line(e)}; {hint}") from None
        key, held, made = found.groups()
        raise error(f"{what}: the weight {key} is {held} in its files but {made} in the model; {hint}") from None
    if missing:
        raise error(f"{what}: weights of the model are not in its files ({named_keys(missing)}); {hint}")
    if unexpected:
        raise error(f"{what}: its files hold weights that the model has not ({named_keys(unexpected)}); {hint}")
