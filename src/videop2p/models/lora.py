"""LoRA weights (Hu et al. 2022, "LoRA: Low-Rank Adaptation of Large Language Models") fused into a
loaded model before it is tuned: W <- W + scale * (alpha / rank) * up @ down for each layer they name.

A LoRA file trained for Stable Diffusion 1.x/2.x (a style, a character) is read by diffusers' loader, whatever its
layout (diffusers', its attention processors' of before 0.17 too, PEFT's, kohya-ss's or the A1111 web UI's key
names), a LyCORIS file's LoHa, LoKr, Tucker LoCon, full, IA3, DoRA, OFT, BOFT, GLoRA and norm layers (kohya-ss's
OFT too) by `lycoris` (diffusers reads none for these models), a PEFT adapter's folder by PEFT (`peft_adapter`),
and fused for good: the model is then an ordinary one with other weights, so its fingerprint, and with it every
workspace entry, is that of the fused weights, and tuning, inversion and editing see no adapter at all.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import torch

from videop2p.config import (
    LORA_SCALE_MAX,
    LORA_SUFFIXES,
    LoraScale,
    SettingProblem,
    hub_file_id,
    lora_part_scales,
    lora_scale_problem,
    lora_scale_text,
    missing_weights_reason,
    too_long_reason,
    weights_file_problem,
)
from videop2p.models.hub import adapter_file, hub_sibling
from videop2p.models.lycoris import (
    TEXT_PREFIX,
    LycorisError,
    fuse_lycoris,
    is_lycoris,
    kohya_layers,
    layer_label,
    split_lycoris,
)
from videop2p.models.peft_adapter import (
    PEFT_CONFIG,
    PEFT_WEIGHTS,
    PeftAdapterError,
    adapted_part,
    adapter_name,
    adapter_problem,
    fuse_peft_adapter,
    peft_adapters,
)
from videop2p.models.weights import named_keys, read_weights_file, safetensors_header

logger = logging.getLogger(__name__)

# diffusers' (0.42) refusal of kohya-ss-named keys it has no conversion for, followed by their names
UNCONVERTED = "The following keys have not been correctly renamed:"
# diffusers' (0.42) refusal of a kohya-ss text encoder LoRA without out_proj layers (it tells their layout by those)
UNINFERRED = "Could not automatically infer state dict type"


class LoraError(SettingProblem, ValueError):
    """A LoRA file that cannot be fused into the model, or a scale out of range (as the `lora` setting's
    problem where the file is not there)."""


class _PartWithoutKeys(logging.Filter):
    """Drops diffusers' note that a LoRA file has no keys for one part of the model (most LoRAs adapt the
    UNet alone), and its report of a file that failed to load (its error, with a line per layer): what it
    adapts, that it adapts nothing, or why it cannot be fused, is said here in one line (`fuse_loras`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return (
            "No LoRA keys associated to" not in message and "was unsuccessful with the following error" not in message
        )


LORA_LOGGERS = ("diffusers.loaders.lora_base", "diffusers.loaders.peft")  # where diffusers (0.42) reports on a LoRA


@contextlib.contextmanager
def _quiet_part_notes() -> Iterator[None]:
    """`_PartWithoutKeys` on diffusers' LoRA loggers while a file loads, and off again after."""
    loggers, note = [logging.getLogger(name) for name in LORA_LOGGERS], _PartWithoutKeys()
    for lora_logger in loggers:
        lora_logger.addFilter(note)
    try:
        yield
    finally:
        for lora_logger in loggers:
            lora_logger.removeFilter(note)


def check_lora(path: str | os.PathLike, scale: LoraScale) -> None:
    """Refuse a LoRA file that is missing, empty or of a kind the loader does not read, and a scale
    not finite or beyond +-LORA_SCALE_MAX, naming the value and what would be valid."""
    if too_long := too_long_reason(path):
        raise LoraError(f"LoRA file {too_long}", "lora", too_long)
    adapters = peft_adapters(path)
    if adapters is not None:  # a PEFT adapter's folder (or its weights file): its config and weights are there
        said = next(filter(None, map(adapter_problem, adapters)), None)
        problem = f"LoRA {str(path)!r}, a PEFT adapter: {said}." if said else None
    elif Path(path).name in PEFT_WEIGHTS and Path(path).expanduser().is_file():  # without its config: no method
        problem = (
            f"LoRA file {str(path)!r} is a PEFT adapter's weights without its {PEFT_CONFIG} beside it; give the "
            "folder PEFT saved, which holds both."
        )
    else:
        problem = weights_file_problem(path, "LoRA", LORA_SUFFIXES, "LoRA weights", hub=True)
    named, sep, after = str(path).rpartition("=")
    if problem and sep and not Path(path).expanduser().exists() and Path(named).expanduser().is_file():
        problem = (  # FILE=SCALE with no number after `=` is read as one name (`config.parse_lora`)
            f"LoRA file {str(path)!r} does not exist, and {after!r} is not a scale for {named!r}; FILE=SCALE takes "
            f"a finite number from {-LORA_SCALE_MAX:g} to {LORA_SCALE_MAX:g}, e.g. {named}=0.8."
        )
    elif problem and (missing := missing_weights_reason(path, LORA_SUFFIXES, "LoRA weights", hub=True)):
        raise LoraError(problem, "lora", missing)  # the `lora` setting's: a config file's is named by its key
    problem = problem or lora_scale_problem(str(path), scale)
    if problem:
        raise LoraError(problem)


def lora_file(path: str | os.PathLike) -> Path:
    """The local file of the LoRA `path` names: the file itself, or a hub repository's (`hub.adapter_file`; a
    repository alone stands for diffusers' pytorch_lora_weights file, else PEFT's adapter_model, else its one LoRA
    file)."""
    from diffusers.loaders.lora_base import LORA_WEIGHT_NAME, LORA_WEIGHT_NAME_SAFE

    preferred = (LORA_WEIGHT_NAME_SAFE, LORA_WEIGHT_NAME, *PEFT_WEIGHTS)
    return adapter_file(path, "LoRA", LORA_SUFFIXES, preferred, LoraError)


def _is_peft(path: str | os.PathLike) -> bool:
    """Whether the LoRA `path` names a PEFT adapter: its folder, or its weights file (a hub repository's too)."""
    return peft_adapters(path) is not None or Path(path).name in PEFT_WEIGHTS


def lora_name(path: str | os.PathLike) -> str:
    """What the LoRA `path` is called in the logs: its file's name, or a PEFT adapter's folder's
    (`peft_adapter.adapter_name`)."""
    return adapter_name(path) if _is_peft(path) else Path(path).name


def lora_stem(path: str | os.PathLike) -> str:
    """What the LoRA `path` adds to a model's name: its file's name less the suffix, or a PEFT adapter's folder's."""
    return adapter_name(path) if _is_peft(path) else Path(path).stem


def _reason(error: BaseException) -> str:
    """What a LoRA loader's error means, in a few words (PEFT's own lists every layer it did not find)."""
    text = str(error).strip()
    if "Unable to load weights from checkpoint file" in text:
        return "it cannot be read as weights (cut short, damaged, or not a weights file)"
    if "not found in the base model" in text:
        return "the layers it names are not this model's (a LoRA of another architecture?)"
    if "size mismatch" in text or "Error(s) in loading state_dict" in text:
        return "its layers' sizes are not this model's (a LoRA of another architecture, such as SDXL's?)"
    if isinstance(error, KeyError) and "lora" in str(error.args[:1]):  # kohya-ss's: a lora_down without its lora_up
        return f"it lacks {error.args[0]}, which its other weights of that layer call for (it is incomplete or damaged)"
    if UNCONVERTED in text:  # kohya-ss-named keys that are no LoRA's: diffusers lists them after a blank line
        keys = sorted(k.strip() for k in text.split(UNCONVERTED, 1)[1].split(",") if k.strip())
        return f"its keys are of no LoRA layout that diffusers reads ({named_keys(keys) if keys else 'none named'})"
    first = text.splitlines()[0] if text else type(error).__name__
    first = first if len(first) <= 200 else first[:200] + "..."
    return (
        f"{first.rstrip('.')} (LoRA weights for Stable Diffusion 1.x/2.x in diffusers', PEFT's or kohya-ss's "
        "layout are read)"
    )


def _adapted_layers(adapter: str, *modules: torch.nn.Module) -> int:
    """How many layers of `modules` PEFT gave the adapter `adapter` (a LoRA layer keeps one `lora_A` per adapter)."""
    return sum(adapter in getattr(layer, "lora_A", {}) for module in modules for layer in module.modules())


def _non_finite_weight(adapter: str, *modules: torch.nn.Module) -> str | None:
    """The name of a weight of the adapter `adapter` that holds NaN or infinite values, or None."""
    for module in modules:
        for name, weight in module.named_parameters():
            if f".{adapter}." in name and not bool(torch.isfinite(weight).all()):
                return name
    return None


# a UNet's module paths, as diffusers' `UNet2DConditionModel.save_attn_procs` wrote a LoRA's keys before 0.17 (no
# `unet.` before them: `down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_q_lora.down.weight`)
UNET_BLOCKS = ("down_blocks.", "mid_block.", "up_blocks.")


def _unprefixed_unet(keys) -> bool:
    """Whether a LoRA's `keys` are a UNet's attention processors' as diffusers saved them before 0.17, with no
    part named: its loader (0.42) reads only keys under `unet.` or `text_encoder.`, so it adapted no layer."""
    keys = [str(k) for k in keys]
    return bool(keys) and all(k.startswith(UNET_BLOCKS) for k in keys)


def _read_here(keys: list[str]) -> bool:
    """Whether a LoRA of these `keys` is read here (`_read_state`): a LyCORIS one, or a UNet's unprefixed."""
    return is_lycoris(keys) or _unprefixed_unet(keys)


def _unet_adapter_file(header: tuple[list[str], dict[str, str]] | None) -> bool:
    """Whether a LoRA file of this safetensors `header` (`weights.safetensors_header`) is a UNet's saved by diffusers'
    `save_lora_adapter`: a UNet's unprefixed keys with its `LoraConfig` in the metadata (`lora_adapter_metadata`:
    its alpha, which the keys do not hold), read by the UNet's own loader (`load_lora_adapter`), as diffusers reads
    it back."""
    from diffusers.loaders.lora_base import LORA_ADAPTER_METADATA_KEY

    return header is not None and LORA_ADAPTER_METADATA_KEY in header[1] and _unprefixed_unet(header[0])


def _read_state(path: Path, header: tuple[list[str], dict[str, str]] | None) -> dict[str, torch.Tensor] | None:
    """The weights of the LoRA file `path`, read here where they must be (`_read_here`: a LyCORIS layer, or a
    UNet's unprefixed keys, given back under `unet.` as the loader reads them) or where that spares the loader a
    second reading: a .safetensors file's names (its `header`) tell, and its weights are read only if they are read
    here (diffusers' loader maps the others itself); any other file (.pt, .bin, .ckpt) is read whole, once. None
    where the loader is to read the file itself, or where it cannot be read (the loader then says why)."""
    if path.suffix.lower() == ".safetensors" and (header is None or not _read_here(header[0])):
        return None
    state = _read_weights(path)
    if state is None or not all(isinstance(key, str) for key in state):
        return None
    return {f"unet.{key}": tensor for key, tensor in state.items()} if _unprefixed_unet(state) else state


def fuse_loras(pipe, lora: dict[str, LoraScale], source: str) -> tuple[tuple[str, str], ...]:
    """Fuse each LoRA file of `lora` (path -> scale) into the text encoder and UNet of `pipe` (diffusers'
    `StableDiffusionPipeline` of the model's modules, `loading.image_pipeline`: what it fuses is theirs), in
    place, through diffusers' loader and PEFT (the adapters are then removed); a LyCORIS file's LoHa, LoKr,
    Tucker LoCon, full, IA3, DoRA, OFT, GLoRA and norm layers by `lycoris.fuse_lycoris` (its LoRA layers, if any,
    by diffusers, after them); a PEFT adapter's folder by PEFT; a kohya-ss LoRA diffusers cannot convert by its
    formula (`_plain_kohya`). Each file acts on the weights the files before it left (diffusers' adapters are
    fused before a file fused here: a DoRA, IA3, OFT or GLoRA layer multiplies what it finds).
    A scale is one for both parts, or (the UNet's, the text encoder's) (`config.lora_part_scales`).
    A file that is not LoRA weights, or whose layers are not this model's (another architecture's), is a
    LoraError naming it, and so is one that adapts no layer or holds NaN or infinite values. Returns, for each
    file, (its name, what it gave: "LoKr 1, LoRA 3 at scale -0.5")."""
    text_encoder, unet = pipe.text_encoder, pipe.unet
    files = {path: _local(path) for path in lora}  # a hub repository's, found or downloaded before any is fused
    names, fused = [], []
    for i, path in enumerate(lora):  # each file and scale checked by the caller first (`check_lora`)
        name = f"lora{i}"
        if isinstance(files[path], list):  # a PEFT adapter: fused by PEFT, part by part, on the LoRAs before it fused
            names = _fuse_loaded(pipe, names, lora)
            kinds = _fuse_peft(pipe, path, files[path], lora[path], source)
            _said(path, kinds, lora[path], source, fused)
            continue
        header = safetensors_header(files[path])
        own = _unet_adapter_file(header)  # read by the UNet's own loader, its config from its header
        state = None if own else _read_state(files[path], header)
        lycoris, rest = split_lycoris(state) if state is not None else ({}, None)
        kinds = Counter(layer_label(w) for w in lycoris.values())  # {"LoHa": layers, ...}, said once fused
        if lycoris:  # on the LoRAs before it fused (diffusers' adapters wrap the layers it names)
            names = _fuse_loaded(pipe, names, lora)
            _fuse_here(lycoris, pipe, lora[path], path, source)
        if state is None or rest:  # a LoRA's layers: diffusers' loader, from the weights read here or the file
            try:
                with _quiet_part_notes():
                    if own:  # its alpha is in its header
                        folder, file = str(files[path].parent), files[path].name  # a file's name: its header read
                        pipe.unet.load_lora_adapter(
                            folder, weight_name=file, prefix=None, adapter_name=name, _pipeline=pipe
                        )
                    else:
                        pipe.load_lora_weights(rest or str(files[path]), adapter_name=name)
            except ImportError as e:
                raise LoraError(f"fusing LoRA weights needs PEFT ({e}): pip install peft") from e
            except (ValueError, KeyError, RuntimeError, OSError) as e:
                plain = _plain_kohya(rest or state or _read_weights(files[path])) if UNINFERRED in str(e) else None
                if plain is None:
                    pipe.unload_lora_weights()
                    raise LoraError(f"LoRA file {str(path)!r} could not be fused into {source}: {_reason(e)}.") from e
                pipe.delete_adapters(name)  # what diffusers had loaded of it before it stopped
                names = _fuse_loaded(pipe, names, lora)
                _fuse_here(plain, pipe, lora[path], path, source, plain=True)
                kinds["LoRA"] = len(plain)
                _said(path, kinds, lora[path], source, fused)
                continue
            names.append(name)
            kinds["LoRA"] = _adapted_layers(name, text_encoder, unet)
            damaged = _non_finite_weight(name, text_encoder, unet)
            if damaged is not None:  # fused, it would make the model's layer NaN and be named as the model's
                pipe.unload_lora_weights()
                raise LoraError(
                    f"LoRA file {str(path)!r} holds NaN or infinite values (its {damaged.replace(f'.{name}.', '.')}); "
                    "it is damaged (download it again)."
                )
        if not sum(kinds.values()):
            pipe.unload_lora_weights()
        _said(path, kinds, lora[path], source, fused)
    _fuse_loaded(pipe, names, lora)
    return tuple(fused)


def _fuse_loaded(pipe, names: list[str], lora: dict[str, LoraScale]) -> list[str]:
    """Fuse the adapters diffusers' loader added to `pipe` (`names`: "lora{i}" for the i-th file of `lora`), each
    at its file's scale (its UNet's and text encoder's), and remove them; the adapters left: none."""
    if names:
        scales = {f"lora{i}": scale for i, scale in enumerate(lora.values())}
        pipe.set_adapters(names, adapter_weights=[_adapter_weight(pipe, name, scales[name]) for name in names])
        pipe.fuse_lora(adapter_names=names, lora_scale=1.0)
        pipe.unload_lora_weights()  # the adapters go; the fused weights stay
    return []


def _read_weights(path: Path) -> dict[str, torch.Tensor] | None:
    """The LoRA file's weights, or None where they cannot be read as a dict of tensors."""
    try:
        state = read_weights_file(path, "LoRA", LoraError)
    except LoraError:
        return None
    return state if isinstance(state, dict) else None


def _plain_kohya(state: dict[str, torch.Tensor] | None) -> dict[str, dict[str, torch.Tensor]] | None:
    """A kohya-ss LoRA's layers ({layer: {lora_up.weight, lora_down.weight, alpha}}), or None where `state` is not
    one (of other names, or of no layer)."""
    if not state or not all(str(key).startswith(("lora_unet_", TEXT_PREFIX)) for key in state):
        return None
    layers: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in state.items():
        layer, _, name = str(key).partition(".")
        if name not in ("lora_up.weight", "lora_down.weight", "alpha"):
            return None
        layers.setdefault(layer, {})[name] = tensor
    return layers


def _fuse_here(layers: dict, pipe, scale: LoraScale, path: str, source: str, plain: bool = False) -> None:
    """Fuse a file's kohya-named `layers` into `pipe`'s UNet and text encoder at `scale` (`lycoris.fuse_lycoris`):
    its LyCORIS layers, or with `plain` a kohya-ss LoRA's (`_plain_kohya`) by the LoRA formula, W += scale
    (alpha / r) up down, where diffusers' loader cannot convert them; a LoraError naming the file where they do
    not fit (its pending adapters removed: the caller discards the model)."""
    try:
        fuse_lycoris(layers, kohya_layers(pipe.unet, pipe.text_encoder), lora_part_scales(scale), plain=plain)
    except LycorisError as e:
        pipe.unload_lora_weights()
        raise LoraError(f"LoRA file {str(path)!r} could not be fused into {source}: {e}.") from None


def _adapter_weight(pipe, name: str, scale: LoraScale) -> float | dict[str, float]:
    """The weight diffusers' `set_adapters` takes for the adapter `name` at `scale`: one number where the UNet's and
    the text encoder's are one, else {part: its scale} for the parts the adapter has (diffusers warns of others)."""
    unet, text = lora_part_scales(scale)
    if unet == text:
        return unet
    parts = {"unet": unet, "text_encoder": text}
    return {part: value for part, value in parts.items() if name in getattr(getattr(pipe, part), "peft_config", {})}


def _local(path: str) -> Path | list[Path]:
    """Where the LoRA `path` is read from: its local file (`lora_file`: a hub repository's, from the cache or
    downloaded), or the folders of a PEFT adapter (`peft_adapter.peft_adapters`), a hub repository's where the
    cache holds its config beside its weights or it can be downloaded (`hub.hub_sibling`); a LoraError for a PEFT
    adapter's weights alone."""
    folders = peft_adapters(path)
    if folders is not None:
        return folders
    local = lora_file(path)
    if local.name in PEFT_WEIGHTS:
        hub = hub_file_id(path, LORA_SUFFIXES) if not Path(path).expanduser().exists() else None
        if hub is not None and not (local.parent / PEFT_CONFIG).is_file():  # its config, beside it in the cache
            hub_sibling(local, hub.repo, PEFT_CONFIG)
        folders = peft_adapters(local)
        if folders is None:
            raise LoraError(
                f"LoRA {path!r} is a PEFT adapter's weights ({local.name}), read with the {PEFT_CONFIG} beside it: "
                "download the repository (`hf download OWNER/NAME --local-dir DIR`) and give DIR (or DIR/unet)."
            )
        return folders
    return local


def _fuse_peft(pipe, path: str, folders: list[Path], scale: LoraScale, source: str) -> Counter:
    """Fuse the PEFT adapter `path` names (each part's folder of `folders`) into `pipe`'s UNet and text encoder at
    `scale` (each part's); {"PEFT OFT": layers, ...}, or a LoraError naming it."""
    kinds: Counter = Counter()
    for folder in folders:
        try:
            part = adapted_part(folder)
            part_scale = lora_part_scales(scale)[part == "text_encoder"]
            method, layers = fuse_peft_adapter(getattr(pipe, part), folder, part_scale)
        except PeftAdapterError as e:
            raise LoraError(f"LoRA {str(path)!r} could not be fused into {source}: {e}.") from None
        kinds[f"PEFT {method}"] += layers
    return kinds


def _said(path: str, kinds: Counter, scale: LoraScale, source: str, fused: list) -> None:
    """Log what the LoRA `path` gave (`kinds`, its layers by kind) and add it to `fused`; a LoraError where it
    adapted no layer."""
    layers = sum(kinds.values())
    if not layers:
        raise LoraError(
            f"LoRA file {str(path)!r} adapts no layer of {source}: the layers it names are not this model's "
            "(a LoRA of another architecture?)."
        )
    said = ", ".join(f"{kind} {count}" for kind, count in kinds.items() if count)
    logger.info(
        "LoRA %s: %d layers of %s (%s), scale %s", lora_name(path), layers, source, said, lora_scale_text(scale)
    )
    fused.append((lora_name(path), f"{said} at scale {lora_scale_text(scale)}"))
