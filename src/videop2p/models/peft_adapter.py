"""PEFT adapters (`PeftModel.save_pretrained`: a folder of `adapter_config.json` and `adapter_model.safetensors`)
fused into a loaded model's UNet or text encoder by PEFT itself: whatever method the folder holds that PEFT merges
(LoRA, LoHa, LoKr, OFT, BOFT, IA3, ...), as PEFT's own Stable Diffusion DreamBooth examples save them, one folder
per adapted part (`OUT/unet`, `OUT/text_encoder`). diffusers' LoRA loader reads none of these folders.

At a scale s other than 1 a layer's weight is W + s (W' - W), W' PEFT's merged weight: the LoRA formula for LoRA,
LoHa and LoKr, and for OFT and IA3 the rule LyCORIS applies to its own (a rotation or factor taken s of the way).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from videop2p.models.weights import first_line, read_weights_file, safetensors_header

PEFT_CONFIG = "adapter_config.json"  # PEFT's: the adapter's method, layers and settings
PEFT_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")  # PEFT's: the adapter's weights
PEFT_PARTS = ("unet", "text_encoder")  # the folders PEFT's DreamBooth examples save each adapted part's adapter in
METHOD_NAMES = {"LORA": "LoRA", "LOHA": "LoHa", "LOKR": "LoKr"}  # PEFT's method names as their papers write them
# CLIPTextModel's module paths, in a text encoder adapter's keys (transformers 5 flattens away `text_model.`)
TEXT_ENCODER_MARKS = ("text_model.", ".encoder.layers.", "final_layer_norm", "token_embedding")


class PeftAdapterError(ValueError):
    """A PEFT adapter folder that is incomplete, damaged, or not of this model."""


def peft_adapters(path: str | os.PathLike) -> list[Path] | None:
    """The PEFT adapter folders `path` names: the folder itself where it holds `adapter_config.json`, the folder
    of an `adapter_model` file with its config beside it, or a folder's `unet` and `text_encoder` folders that
    hold one (PEFT's DreamBooth examples' output); None where it names none."""
    p = Path(path).expanduser()
    if p.is_file():
        return [p.parent] if p.name in PEFT_WEIGHTS and (p.parent / PEFT_CONFIG).is_file() else None
    if not p.is_dir():
        return None
    if (p / PEFT_CONFIG).is_file():
        return [p]
    return [p / part for part in PEFT_PARTS if (p / part / PEFT_CONFIG).is_file()] or None


def adapter_name(path: str | os.PathLike) -> str:
    """What the PEFT adapter `path` is called in a model's name and the logs: the folder it was saved as (the one
    above `unet`/`text_encoder`, as PEFT's examples name their output)."""
    p = Path(path).expanduser()
    if p.name in PEFT_WEIGHTS:
        p = p.parent
    if p.name in PEFT_PARTS and p.parent.name:
        p = p.parent
    return p.name


def peft_method(folder: Path) -> str:
    """The adapter's method as its config names it ("LORA", "OFT", ...), or a PeftAdapterError where the config
    cannot be read, or names no method or one the installed PEFT does not know."""
    try:
        config = json.loads((folder / PEFT_CONFIG).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PeftAdapterError(f"{folder.name}/{PEFT_CONFIG} cannot be read as JSON ({e})") from None
    method = config.get("peft_type") if isinstance(config, dict) else None
    if not isinstance(method, str) or not method:
        raise PeftAdapterError(f"{folder.name}/{PEFT_CONFIG} names no method (no peft_type: not PEFT's adapter config)")
    from peft import PeftType, __version__

    if method not in PeftType.__members__:
        raise PeftAdapterError(
            f"{folder.name}/{PEFT_CONFIG} names the method {method!r}, which PEFT {__version__} does not know (a newer "
            "PEFT's, or not PEFT's)"
        )
    return method


def weights_of(folder: Path) -> Path:
    """The adapter's weights file in `folder`, or a PeftAdapterError where it has none or an empty one."""
    found = [folder / name for name in PEFT_WEIGHTS if (folder / name).is_file()]
    if not found:
        raise PeftAdapterError(f"{folder.name}/ holds {PEFT_CONFIG} but no {' or '.join(PEFT_WEIGHTS)}")
    if found[0].stat().st_size == 0:
        raise PeftAdapterError(f"{folder.name}/{found[0].name} is empty (0 bytes)")
    return found[0]


def adapter_problem(folder: Path) -> str | None:
    """What is wrong with the PEFT adapter folder `folder` before it is read (its config, its weights file), or
    None."""
    try:
        peft_method(folder)
        weights_of(folder)
    except PeftAdapterError as e:
        return str(e)
    return None


def adapted_part(folder: Path) -> str:
    """The model part ("unet" or "text_encoder") the adapter in `folder` adapts: the folder's name where it is
    one, else its weights' layer names (a text encoder's: CLIP's, `TEXT_ENCODER_MARKS`)."""
    if folder.name in PEFT_PARTS:
        return folder.name
    path = weights_of(folder)
    header = safetensors_header(path)
    if header is not None:
        keys = header[0]
    elif path.suffix.lower() == ".safetensors":
        raise PeftAdapterError(f"{folder.name}/{path.name} cannot be read as weights (cut short or damaged)")
    else:
        keys = list(read_weights_file(path, "PEFT adapter", PeftAdapterError))
    return "text_encoder" if any(mark in str(key) for key in keys for mark in TEXT_ENCODER_MARKS) else "unet"


def _tuned_layers(model) -> dict[str, torch.nn.Module]:
    """The layers PEFT wrapped in `model` (a PeftModel), by their names in the part."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    return {name: m for name, m in model.base_model.model.named_modules() if isinstance(m, BaseTunerLayer)}


def fuse_peft_adapter(part: torch.nn.Module, folder: Path, scale: float) -> tuple[str, int]:
    """Fuse the PEFT adapter saved in `folder` into the model part `part` (a UNet or text encoder), in place, at
    `scale`, by PEFT: wrapped, loaded, merged and unwrapped (`PeftModel.merge_and_unload`), then each adapted layer
    taken `scale` of the way from its weights before. Returns (the method, the layers adapted). A PeftAdapterError
    where PEFT cannot read, fit or merge it, where the file's weights are not all the layers' it wraps, or where
    the merge is not finite; the part may then be changed part-way (the caller discards the model)."""
    from peft import PeftConfig, PeftModel

    method = peft_method(folder)
    method = METHOD_NAMES.get(method, method)
    try:
        config = PeftConfig.from_pretrained(str(folder))
        if config.is_prompt_learning or getattr(config, "is_adaption_prompt", False):
            raise PeftAdapterError(f"its {method} adapter learns prompts, not weights: it has nothing to fuse")
        config.inference_mode = True
        model = PeftModel(part, config, adapter_name="videop2p")
        result = model.load_adapter(str(folder), adapter_name="videop2p")
    except PeftAdapterError:
        raise
    except (ValueError, TypeError, KeyError, RuntimeError, AttributeError, NotImplementedError, OSError) as e:
        raise PeftAdapterError(
            f"PEFT cannot fit its {method} adapter to this model's {adapted_part(folder).replace('_', ' ')}: {_why(e)}"
        ) from None
    missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    if missing or unexpected:
        keys = [key.replace(".videop2p.", ".") for key in (missing or unexpected)[:2]]  # as the file names them
        said = "lacks weights of layers its config adapts" if missing else "holds weights of no layer its config adapts"
        raise PeftAdapterError(f"it {said} ({', '.join(keys)}{' ...' if len(missing or unexpected) > 2 else ''})")
    layers = _tuned_layers(model)
    before = {  # at a scale other than 1, each adapted layer's weight and bias (a LoRA may train it) before the merge
        f"{name}.{kind}": tensor.detach().clone()
        for name, layer in layers.items()
        for kind, tensor in layer.get_base_layer().named_parameters(recurse=False)
        if scale != 1
    }
    try:
        model.merge_and_unload(safe_merge=True)  # NaN in a merged weight: a ValueError naming its layer
    except (ValueError, RuntimeError, NotImplementedError) as e:
        raise PeftAdapterError(f"PEFT cannot merge its {method} adapter: {_why(e)}") from None
    with torch.no_grad():
        for name, tensor in before.items():
            merged = part.get_parameter(name)
            merged.copy_(tensor + scale * (merged - tensor))
    return method, len(layers)


def _why(error: BaseException) -> str:
    """What PEFT's error says, in one line (its size mismatches are a line per layer)."""
    if "size mismatch" in str(error):
        return "its layers' sizes are not this model's (an adapter of another architecture, such as SDXL's?)"
    return first_line(error).rstrip(".")
