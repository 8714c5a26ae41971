"""Tune-A-Video / Video-P2P tuned checkpoints: read them into the text-to-set model and write it back.

The authors' `run_tuning.py` (Video-P2P) and `train_tuneavideo.py` (Tune-A-Video) save a diffusers
folder whose `unet/` holds their `UNet3DConditionModel`: the image UNet's modules under the same
names (its convolutions "inflated" to act per frame with unchanged weights), plus two modules per
transformer block, `attn_temp` (temporal attention) and `norm_temp` (its LayerNorm). Our T2S model
holds the same tensors under other names for some of them; `docs/tune_a_video_layout.md` has the
table, `to_authors_key` / `from_authors_key` the mapping.

Their config names the 3D block classes; ours the 2D ones. Which frames frame attention reads is
not in their files (Video-P2P: frame 0; Tune-A-Video: frames 0 and i-1), nor their GroupNorm
statistics (over the clip); a folder we write records both.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from videop2p.config import FrameAttentionMode, GroupNormMode
from videop2p.models.t2s import is_temporal, temporal_shapes, video_key
from videop2p.store.files import atomic_path, read_json, write_json

CLASS_NAME = "UNet3DConditionModel"
FRAME_KEY = "videop2p_frame_attention"  # our record of the frame-attention kind in unet/config.json
DELTA_KEY = "videop2p_tuning"  # our record of the tuning's workspace key: a folder that holds it is not written again
NORM_KEY = "videop2p_group_norm"  # our record of the GroupNorm statistics (absent: the authors', over the clip)
WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
_BLOCKS_3D = {  # the authors' block class -> diffusers' image block class
    "CrossAttnDownBlock3D": "CrossAttnDownBlock2D",
    "DownBlock3D": "DownBlock2D",
    "CrossAttnUpBlock3D": "CrossAttnUpBlock2D",
    "UpBlock3D": "UpBlock2D",
    "UNetMidBlock3DCrossAttn": "UNetMidBlock2DCrossAttn",
}
_BLOCKS_2D = {v: k for k, v in _BLOCKS_3D.items()}
_TEMP_OURS = re.compile(r"(\.transformer_blocks\.\d+)\.temporal\.(attn|norm)\.")
_TEMP_THEIRS = re.compile(r"(\.transformer_blocks\.\d+)\.(attn|norm)_temp\.")
_BLOCK_OURS = re.compile(r"(\.transformer_blocks\.\d+)\.block\.")


class CheckpointError(ValueError):
    """A tuned video checkpoint that does not fit the layout or its own config."""


@dataclass
class VideoWeights:
    """What a tuned video checkpoint adds to its image UNet."""

    temporal: dict[str, torch.Tensor]  # temporal-layer tensors under the inflated UNet's names
    frame_mode: FrameAttentionMode | None  # recorded frame attention; None: not recorded (authors' folders)
    group_norm: GroupNormMode  # recorded GroupNorm statistics; the authors' (over the clip) when not recorded
    source: str  # the folder they came from


def to_authors_key(name: str) -> str:
    """A key of our inflated UNet -> the authors' `UNet3DConditionModel` key."""
    name = _TEMP_OURS.sub(lambda m: f"{m.group(1)}.{m.group(2)}_temp.", name)
    return _BLOCK_OURS.sub(r"\1.", name)


def from_authors_key(name: str) -> str:
    """An authors' `UNet3DConditionModel` key -> the key of our inflated UNet."""
    if _TEMP_THEIRS.search(name):
        return _TEMP_THEIRS.sub(lambda m: f"{m.group(1)}.temporal.{m.group(2)}.", name)
    return video_key(name)


def folder_unet_config(path: str | os.PathLike) -> dict | None:
    """The `unet/config.json` of a model folder when it names the authors' `UNet3DConditionModel`, else None."""
    try:
        config = read_json(Path(path) / "unet" / "config.json")
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) and config.get("_class_name") == CLASS_NAME else None


def is_authors_folder(path: str | os.PathLike) -> bool:
    """True for a model folder whose `unet/config.json` names the authors' `UNet3DConditionModel`."""
    return folder_unet_config(path) is not None


def image_unet_config(config: dict) -> dict:
    """The authors' UNet config -> a `UNet2DConditionModel` config of the same image layers."""

    def block(name: str) -> str:
        if name not in _BLOCKS_3D:
            raise CheckpointError(f"unet/config.json names block type {name!r}; known: {', '.join(_BLOCKS_3D)}.")
        return _BLOCKS_3D[name]

    out = {k: v for k, v in config.items() if not k.startswith("_") and k not in (FRAME_KEY, NORM_KEY, DELTA_KEY)}
    out["down_block_types"] = [block(b) for b in config["down_block_types"]]
    out["up_block_types"] = [block(b) for b in config["up_block_types"]]
    out["mid_block_type"] = block(config.get("mid_block_type", "UNetMidBlock3DCrossAttn"))
    return out


def authors_unet_config(
    config: dict, frame_mode: FrameAttentionMode, group_norm: GroupNormMode, delta_key: str | None = None
) -> dict:
    """A `UNet2DConditionModel` config -> the authors' UNet config (with our records of how it was tuned,
    and of the tuning's workspace key when it is known)."""
    out = {k: v for k, v in config.items() if not k.startswith("_")}
    out["_class_name"] = CLASS_NAME
    out["down_block_types"] = [_BLOCKS_2D[b] for b in config["down_block_types"]]
    out["up_block_types"] = [_BLOCKS_2D[b] for b in config["up_block_types"]]
    out["mid_block_type"] = _BLOCKS_2D[config.get("mid_block_type") or "UNetMidBlock2DCrossAttn"]
    out[FRAME_KEY] = frame_mode.value
    out[NORM_KEY] = group_norm.value
    if delta_key is not None:
        out[DELTA_KEY] = delta_key
    return out


def read_state(unet_dir: Path) -> dict[str, torch.Tensor]:
    """The UNet weights of a folder (`.safetensors` preferred, else the authors' `.bin`)."""
    for name in WEIGHT_FILES:
        path = unet_dir / name
        if not path.exists():
            continue
        try:
            if path.suffix == ".safetensors":
                return load_file(str(path))
            return _load_bin(path)
        except (SafetensorError, OSError, RuntimeError, EOFError, ValueError) as e:
            raise CheckpointError(f"{path} is truncated or corrupt ({str(e).strip().splitlines()[0]}).") from None
    raise CheckpointError(f"{unet_dir} holds no UNet weights ({' or '.join(WEIGHT_FILES)}).")


def _load_bin(path: Path) -> dict[str, torch.Tensor]:
    """A torch-saved state dict, memory-mapped (pages read on use) unless it is in the legacy format."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as e:
        if "mmap" not in str(e):
            raise
        return torch.load(path, map_location="cpu", weights_only=True)


def split_state(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Authors' UNet state -> (image-UNet state under diffusers' names, temporal state under ours)."""
    image, temporal = {}, {}
    for key, value in state.items():
        ours = from_authors_key(key)
        if is_temporal(ours):
            temporal[ours] = value
        else:
            image[key] = value  # the image UNet's own name: the authors kept diffusers' names
    if not temporal:
        raise CheckpointError("the checkpoint has no temporal layers (attn_temp, norm_temp): not a tuned video UNet.")
    return image, temporal


def check_video_state(
    unet: torch.nn.Module, image: dict[str, torch.Tensor], temporal: dict[str, torch.Tensor], what: str
):
    """Every image key and temporal key of a checkpoint fits `unet` (the image UNet its config builds)."""
    found = {video_key(k): v for k, v in image.items()} | temporal
    expected = {video_key(k): v.shape for k, v in unet.state_dict().items()} | temporal_shapes(unet)
    check_fits(found, expected, what)


def check_fits(found: dict[str, torch.Tensor], expected: dict[str, torch.Size], what: str) -> None:
    """Raise CheckpointError naming (in the authors' layout) the keys that map nowhere, are missing or misshapen."""
    extra, missing = sorted(set(found) - set(expected)), sorted(set(expected) - set(found))
    problems = []
    if extra:
        problems.append(f"{to_authors_key(extra[0])!r} maps to no layer of this model ({len(extra)} such keys)")
    if missing:
        problems.append(f"{to_authors_key(missing[0])!r} is missing ({len(missing)} keys)")
    for key, value in found.items():
        if key in expected and tuple(value.shape) != tuple(expected[key]):
            shapes = f"{tuple(value.shape)}, the model expects {tuple(expected[key])}"
            problems.append(f"{to_authors_key(key)!r} has shape {shapes}")
            break
    if problems:
        raise CheckpointError(f"{what}: " + "; ".join(problems) + ".")


def _recorded(config: dict, key: str, kind: type, default):
    value = config.get(key)
    if value is None:
        return default
    try:
        return kind(value)
    except ValueError:
        valid = ", ".join(m.value for m in kind)
        raise CheckpointError(f"unet/config.json: {key} {value!r} is not one of {valid}.") from None


def frame_mode_of(config: dict) -> FrameAttentionMode | None:
    """The frame attention a folder records, or None (the authors' folders do not say)."""
    return _recorded(config, FRAME_KEY, FrameAttentionMode, None)


def group_norm_of(config: dict) -> GroupNormMode:
    """The GroupNorm statistics a folder was tuned with: recorded, else the authors' (over the clip)."""
    return _recorded(config, NORM_KEY, GroupNormMode, GroupNormMode.CLIP)


def write_unet(
    video_state: dict[str, torch.Tensor],
    image_config: dict,
    frame_mode: FrameAttentionMode,
    group_norm: GroupNormMode,
    dest: Path,
    delta_key: str | None = None,
) -> None:
    """Write an inflated UNet's state as the authors' `unet/` folder (config.json and the `.bin`
    their diffusers 0.11 reads)."""
    state = {to_authors_key(k): v.detach().contiguous().cpu() for k, v in video_state.items()}
    with atomic_path(dest / "unet" / WEIGHT_FILES[1]) as tmp:
        torch.save(state, tmp)
    write_json(dest / "unet" / "config.json", authors_unet_config(image_config, frame_mode, group_norm, delta_key))


def apply_temporal(unet: torch.nn.Module, temporal: dict[str, torch.Tensor]) -> None:
    """Load a checkpoint's temporal layers (checked when it was read) into an inflated UNet."""
    expected = {k: v.shape for k, v in unet.state_dict().items() if is_temporal(k)}
    check_fits(temporal, expected, "the checkpoint's temporal layers")
    unet.load_state_dict(temporal, strict=False)  # only the temporal keys; the rest came with the image UNet


_VAE_ATTENTION = {"to_q.": "query.", "to_k.": "key.", "to_v.": "value.", "to_out.0.": "proj_attn."}


def legacy_vae_key(name: str) -> str:
    """A VAE key -> diffusers 0.11's name (its mid-block attention used query/key/value/proj_attn);
    today's diffusers reads both."""
    if ".mid_block.attentions." not in name:
        return name
    for new, old in _VAE_ATTENTION.items():
        name = name.replace(f".{new}", f".{old}")
    return name


def legacy_text_encoder_key(name: str) -> str:
    """A CLIP text-encoder key -> transformers 4's name (under `text_model.`); transformers 5 reads both."""
    return name if name.startswith("text_model.") else f"text_model.{name}"
