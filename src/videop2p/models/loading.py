"""Load Stable Diffusion components from a folder, a hub id or a single file, and report their facts."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from safetensors import SafetensorError
from transformers import AddedToken, CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from videop2p.config import (
    DTYPE_ALIASES,
    DTYPES,
    LOCAL_COPY,
    FrameAttentionMode,
    GroupNormMode,
    HubFile,
    LoraScale,
    SettingProblem,
    hub_download_command,
    hub_file_of,
    hub_name,
    hub_repository,
    link_reason,
    not_one_of,
    too_long_reason,
)
from videop2p.models import tav
from videop2p.models.embeddings import add_embeddings, added_tokens, check_embedding, embedding_words
from videop2p.models.hub import hub_file, hub_files, hub_load_kwargs, hub_offline, named_as_given
from videop2p.models.lora import check_lora, fuse_loras, lora_stem
from videop2p.models.schedulers import scheduler_config_problem
from videop2p.models.tokenizer import bundled_tokenizer
from videop2p.models.vae import check_scaling_factor, check_vae_spec, load_vae, vae_name
from videop2p.models.weights import first_line, load_pretrained, load_state, weights_load_kwargs
from videop2p.store.codec import CorruptFileError, load_tensors, read_meta, save_tensors
from videop2p.store.files import atomic_path, read_json
from videop2p.store.workspace import DELTA_FILE, is_delta_identity

logger = logging.getLogger(__name__)

_FLAT_FORMAT = "videop2p-single-file-v1"
_TORCH_SAVE_SUFFIXES = {".ckpt", ".pt", ".pth", ".bin"}  # what diffusers reads with torch.load (any but .safetensors)
MODEL_FILE_SUFFIXES = (".safetensors", *sorted(_TORCH_SAVE_SUFFIXES))  # a single-file checkpoint's
_LAYER_RE = re.compile(r"^(down_blocks|mid_block|up_blocks)\.?(\d*)\..*\.(attn1|attn2)\.processor$")


class ModelNotFoundError(SettingProblem, FileNotFoundError):
    """A model that is neither a local path nor in the Hugging Face cache (`option`: model, where it is its
    path or id)."""


class ModelLoadError(SettingProblem, ValueError):
    """Model files that exist but cannot be loaded: truncated, corrupt, or not a model (`option`: model_config,
    where it is an architecture given for a model that carries its own)."""


@dataclass(frozen=True)
class AttentionLayer:
    """Facts of one attention layer of the UNet."""

    name: str  # processor name, e.g. "up_blocks.1.attentions.0.transformer_blocks.0.attn2.processor"
    cross: bool  # True for cross-attention (attn2), False for self-attention (attn1)
    place: str  # "down", "mid" or "up"
    downsample: int  # spatial downsampling relative to the latent (1, 2, 4, ...)


@dataclass(frozen=True)
class ModelInfo:
    """What later stages need to know about a model, read from it rather than hard-coded."""

    identity: str  # source name plus a fingerprint of configs and weights
    vae_scale_factor: int  # pixels per latent cell along a side
    scaling_factor: float  # multiplies VAE posterior means into the diffusion latent space
    latent_channels: int  # channels of the latent
    sample_size: int  # native latent side of the UNet (of a (height, width) pair: the side of its area's square)
    prediction_type: str  # "epsilon", "v_prediction" or "sample"
    max_tokens: int  # tokenizer length limit including start and end tokens
    cross_attention_dim: int  # width of the text embedding
    attention_layers: tuple[AttentionLayer, ...] = field(default_factory=tuple)  # every attention layer
    embeddings: tuple[tuple[str, int], ...] = ()  # (prompt word, vectors) of each textual-inversion embedding
    loras: tuple[tuple[str, str], ...] = ()  # (file name, what it gave at its scale) of each fused LoRA file

    @property
    def fingerprint(self) -> str:
        """The configs-and-weights part of `identity`: the same wherever the model was loaded from."""
        return self.identity.rpartition("@")[2]

    @property
    def native_size(self) -> int:
        """The model's native image side in pixels."""
        return self.sample_size * self.vae_scale_factor

    @property
    def size_multiple(self) -> int:
        """Image sides must be multiples of this: the VAE's factor. The UNet takes any latent size (a side its
        downsamplers leave odd is upsampled back to its own size, as diffusers' UNet does), as diffusers'
        pipelines and the authors' code take any multiple of 8 for Stable Diffusion."""
        return self.vae_scale_factor

    @property
    def size_step(self) -> int:
        """The sizes the model picks itself (a clip's aspect ratio at its native area) are multiples of this: the
        VAE's factor times the UNet's total downsampling, where every level's latent halves exactly."""
        return (
            self.vae_scale_factor * max(layer.downsample for layer in self.attention_layers)
            if self.attention_layers
            else self.vae_scale_factor
        )

    def to_dict(self) -> dict:
        return {
            "identity": self.identity,
            "vae_scale_factor": self.vae_scale_factor,
            "scaling_factor": self.scaling_factor,
            "latent_channels": self.latent_channels,
            "sample_size": self.sample_size,
            "prediction_type": self.prediction_type,
            "max_tokens": self.max_tokens,
            "cross_attention_dim": self.cross_attention_dim,
            "attention_resolutions": sorted({layer.downsample for layer in self.attention_layers}),
            **({"embeddings": dict(self.embeddings)} if self.embeddings else {}),
            **({"loras": dict(self.loras)} if self.loras else {}),
        }


@dataclass
class SDComponents:
    """The parts of a Stable Diffusion model that Video-P2P uses."""

    tokenizer: CLIPTokenizer
    text_encoder: CLIPTextModel
    vae: AutoencoderKL
    unet: UNet2DConditionModel
    scheduler: DDIMScheduler
    info: ModelInfo
    video: tav.VideoWeights | None = None  # temporal layers of a tuned Tune-A-Video / Video-P2P folder
    vae_float32: AutoencoderKL | None = field(default=None, repr=False)  # made on first need by a half VAE


_DTYPES = {name: getattr(torch, name) for name in DTYPES}


def parse_dtype(name: str) -> torch.dtype:
    """torch dtype of a name: float32, float16 or bfloat16."""
    if name not in _DTYPES:
        raise ValueError(f"dtype {not_one_of(name, _DTYPES, DTYPE_ALIASES)}.")
    return _DTYPES[name]


def dtype_name(dtype: torch.dtype) -> str:
    """The name `parse_dtype` reads for a dtype (float32, float16 or bfloat16)."""
    return next(name for name, known in _DTYPES.items() if known == dtype)


def available_devices() -> list[str]:
    """Device names this machine has."""
    names = ["cpu"]
    if torch.cuda.is_available():
        names += ["cuda", *(f"cuda:{i}" for i in range(torch.cuda.device_count()))]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        names.append("mps")
    return names


def lighter_dtype(device: str | torch.device | None) -> str:
    """The half precision (frozen weights and activations in 16 bits) to name for less memory on `device`:
    bfloat16 on the CPU (float16 runs there several times slower; docs/half_precision.md), float16 on a
    GPU; as a flag."""
    if device is None:
        return "--dtype bfloat16 (float16 on a GPU)"
    return "--dtype bfloat16" if torch.device(device).type == "cpu" else "--dtype float16"


def check_device(device: str | torch.device) -> torch.device:
    """A device this machine has, or a one-line ValueError naming the bad one and the valid ones."""
    available = available_devices()
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        parsed = None
    if parsed is None or (parsed.type != "cpu" and str(parsed) not in available):
        raise ValueError(f"device {str(device)!r} is not available here; valid: {', '.join(available)}.")
    return parsed


BUNDLED_MODEL = "videop2p-toy"  # names the bundled model where a model must be named (an authors' config)


def bundled_model_path() -> Path:
    """Folder of the bundled toy-world model (a diffusers pipeline folder)."""
    return Path(str(resources.files("videop2p") / "data" / "toy_model"))


def is_bundled(model: str | os.PathLike | None) -> bool:
    """Whether `model` asks for the bundled model: None (no model given) or its name."""
    return model is None or str(model) == BUNDLED_MODEL


def model_location(model: str | os.PathLike | None) -> str | os.PathLike:
    """Where a model is read from: the bundled model's folder when it asks for it, else `model` itself."""
    return bundled_model_path() if is_bundled(model) else model


def attention_layers(unet: UNet2DConditionModel) -> tuple[AttentionLayer, ...]:
    """Every attention processor name of `unet` with its kind and resolution."""
    n_down = len(unet.config.block_out_channels)
    out = []
    for name in unet.attn_processors:
        m = _LAYER_RE.match(name)
        if m is None:
            continue
        place, idx, kind = m.group(1), m.group(2), m.group(3)
        if place == "down_blocks":
            level = int(idx)
        elif place == "mid_block":
            level = n_down - 1
        else:
            level = n_down - 1 - int(idx)
        out.append(AttentionLayer(name=name, cross=kind == "attn2", place=place.split("_")[0], downsample=2**level))
    return tuple(out)


def fingerprint(*modules: torch.nn.Module, configs: tuple = (), tensors: dict[str, torch.Tensor] | None = None) -> str:
    """A short hash of configurations and a strided sample of every weight tensor (of `modules` and `tensors`)."""
    h = hashlib.sha256()
    volatile = {"transformers_version", "architectures", "torch_dtype", "dtype", "output_attentions", "return_dict"}
    for cfg in configs:
        stable = {k: v for k, v in cfg.items() if not k.startswith("_") and k not in volatile}
        h.update(json.dumps(stable, sort_keys=True, default=str).encode())
    states = [module.state_dict() for module in modules] + ([tensors] if tensors else [])
    for state in states:
        for name, t in state.items():
            flat = t.detach().reshape(-1)
            sample = flat[:: max(1, flat.numel() // 64)].float().cpu()
            h.update(name.encode())
            h.update(sample.numpy().tobytes())
    return h.hexdigest()[:16]


def _tuple_of(value) -> tuple:
    """A config value that is one value or one per block (or per side), as a tuple."""
    return tuple(value) if isinstance(value, list | tuple) else (value,)


def check_architecture(unet_config: dict, vae_config: dict, text_width: int, source: str) -> None:
    """Refuse a model that Video-P2P cannot edit with: a UNet that takes more than the VAE's latents
    (inpainting, depth or image-conditioned models), one conditioned on more than the text (SDXL's
    added time and pooled-text embeddings, class labels), or a text encoder of another width."""
    wanted = "; give a text-to-image Stable Diffusion model (1.x or 2.x)."
    latents, inputs = int(vae_config["latent_channels"]), int(unet_config["in_channels"])
    if inputs != latents:
        raise ModelLoadError(
            f"{source}: its UNet takes {inputs} input channels but its VAE gives {latents} latent channels "
            f"(an inpainting, depth or image-conditioned model){wanted}"
        )
    extra = {k: unet_config.get(k) for k in ("addition_embed_type", "class_embed_type") if unet_config.get(k)}
    if extra:
        shown = ", ".join(f"{k}={v!r}" for k, v in extra.items())
        raise ModelLoadError(
            f"{source}: its UNet is conditioned on more than the text ({shown}: an SDXL or unCLIP model){wanted}"
        )
    sizes = unet_config.get("sample_size")  # the latent side it was trained at: one, or (height, width)
    if not 1 <= len(_tuple_of(sizes)) <= 2 or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in _tuple_of(sizes)
    ):
        raise ModelLoadError(
            f"{source}: its UNet's sample_size {sizes!r} is not valid; expected a whole number of latent cells >= 1 "
            "or a (height, width) pair of them (Stable Diffusion 1.5: 64)."
        )
    check_scaling_factor(vae_config, f"{source}/vae", ModelLoadError)
    widths = unet_config["cross_attention_dim"]  # one width, or one per block
    if any(int(w) != text_width for w in _tuple_of(widths)):
        raise ModelLoadError(
            f"{source}: its UNet attends to text of width {widths} but its text "
            f"encoder gives {text_width} (a second text encoder, as in SDXL, is not read){wanted}"
        )


def added_token_rows(tokenizer, text_encoder) -> dict[str, torch.Tensor]:
    """The input embedding of every token added to the tokenizer beside its own specials (textual-inversion
    embeddings), keyed by token: a strided sample of the whole table would miss them."""
    weight = text_encoder.get_input_embeddings().weight  # (V, D)
    return {f"added_token.{t}": weight[i] for t, i in added_tokens(tokenizer).items() if i < weight.shape[0]}


def model_info(tokenizer, text_encoder, vae, unet, scheduler, source: str, video=None) -> ModelInfo:
    """Read the facts of loaded components (a tuned video folder's temporal layers and the tokens added
    to the tokenizer count in the fingerprint)."""
    configs = (dict(unet.config), dict(vae.config), text_encoder.config.to_dict(), dict(scheduler.config))
    tensors = {**(video.temporal if video else {}), **added_token_rows(tokenizer, text_encoder)}
    return ModelInfo(
        identity=f"{source}@{fingerprint(unet, vae, text_encoder, configs=configs, tensors=tensors or None)}",
        vae_scale_factor=2 ** (len(vae.config.block_out_channels) - 1),
        scaling_factor=float(vae.config.scaling_factor),
        latent_channels=int(vae.config.latent_channels),
        sample_size=_native_side(unet.config.sample_size),
        prediction_type=str(scheduler.config.prediction_type),
        max_tokens=int(tokenizer.model_max_length),
        cross_attention_dim=int(unet.config.cross_attention_dim),
        attention_layers=attention_layers(unet),
        embeddings=tuple(embedding_words(tokenizer).items()),
    )


def _native_side(sample_size: int | Sequence[int]) -> int:
    """The latent side of a UNet's `sample_size`: one number, or a (height, width) pair as diffusers allows,
    whose square of the same area is what a working size is chosen from (its aspect comes from the clip)."""
    sides = _tuple_of(sample_size)
    return max(1, round(math.prod(int(n) for n in sides) ** (1 / len(sides))))


def check_scheduler_config(scheduler_config: dict, source: str) -> None:
    """Refuse a model (`source` names it) whose scheduler config DDIM cannot sample and invert with."""
    problem = scheduler_config_problem(dict(scheduler_config))
    if problem is not None:
        raise ModelLoadError(f"{source}: its scheduler's {problem} (scheduler/scheduler_config.json).")


def _ddim(scheduler_config: dict, source: str) -> DDIMScheduler:
    """The model's DDIM scheduler, its config checked first."""
    check_scheduler_config(scheduler_config, source)
    return DDIMScheduler.from_config(scheduler_config)


FOLDER_PARTS = ("tokenizer", "text_encoder", "vae", "unet", "scheduler")  # a diffusers SD folder's subfolders
WEIGHTED_PARTS = ("text_encoder", "vae", "unet")  # those with weights files


def _load_folder(
    path: Path,
    local_files_only: bool,
    name: str | None = None,
    files: dict[str, dict] | None = None,
    revision: str | None = None,
) -> tuple:
    """(tokenizer, text encoder, VAE, image UNet, scheduler, video weights or None) of a diffusers folder
    or hub id; an authors' tuned video folder gives its image UNet and its temporal layers apart. Errors
    name the model as `name` (default: the folder's name; a hub id's snapshot is a commit hash). A hub id's
    parts are read from the files `files` names for each (`hub_load_kwargs`; a local folder's are found in it),
    at its `revision` (None: main)."""
    kw = {"local_files_only": local_files_only, **({"revision": revision} if revision else {})}
    read = {part: (files or {}).get(part, {}) for part in WEIGHTED_PARTS}
    name = name or path.name
    check_architecture(  # from the configs alone: a model of another kind is named before its weights are read
        UNet2DConditionModel.load_config(str(path), subfolder="unet", **kw),
        AutoencoderKL.load_config(str(path), subfolder="vae", **kw),
        CLIPTextConfig.from_pretrained(str(path), subfolder="text_encoder", **kw).hidden_size,
        name,
    )
    scheduler = _ddim(DDIMScheduler.load_config(str(path), subfolder="scheduler", **kw), name)
    tokenizer = CLIPTokenizer.from_pretrained(str(path), subfolder="tokenizer", **kw)
    text_encoder = load_pretrained(
        CLIPTextModel,
        str(path),
        f"{name}/text_encoder",
        ModelLoadError,
        subfolder="text_encoder",
        **read["text_encoder"],
        **kw,
    )
    vae = load_pretrained(AutoencoderKL, str(path), f"{name}/vae", ModelLoadError, subfolder="vae", **read["vae"], **kw)
    if tav.is_authors_folder(path):
        unet, video = _load_video_unet(path)
    else:
        unet = load_pretrained(
            UNet2DConditionModel,
            str(path),
            f"{name}/unet",
            ModelLoadError,
            subfolder="unet",
            **read["unet"],
            **kw,
        )
        video = None
    return tokenizer, text_encoder, vae, unet, scheduler, video


def _load_video_unet(path: Path) -> tuple[UNet2DConditionModel, tav.VideoWeights]:
    """The image UNet and the temporal layers of a Tune-A-Video / Video-P2P tuned folder, every key checked."""
    config = read_json(path / "unet" / "config.json")
    with torch.device("meta"):  # no random initialisation: every tensor comes from the file
        unet = UNet2DConditionModel.from_config(tav.image_unet_config(config))
    image_state, temporal = tav.split_state(tav.read_state(path / "unet"))
    tav.check_video_state(unet, image_state, temporal, f"{path / 'unet'}")
    unet.load_state_dict(image_state, assign=True)
    return unet, tav.VideoWeights(temporal, tav.frame_mode_of(config), tav.group_norm_of(config), str(path))


def _hub_video_folder(repo: str, revision: str | None) -> Path | None:
    """A downloaded snapshot of a hub repository (at `revision`) that holds an authors' tuned video folder,
    else None."""
    from huggingface_hub import hf_hub_download, snapshot_download

    config = Path(hf_hub_download(repo, "unet/config.json", revision=revision))
    if not tav.is_authors_folder(config.parent.parent):
        return None
    parts = ["model_index.json", *(f"{part}/*" for part in FOLDER_PARTS)]
    return Path(snapshot_download(repo, revision=revision, allow_patterns=parts))


def video_model_config(model: str | os.PathLike | None) -> dict | None:
    """The `unet/config.json` of `model` when it is a tuned Tune-A-Video / Video-P2P folder (which a run tunes no
    further by default, with the frame attention and GroupNorm it records), found without loading it or asking
    the hub: a local folder's, or that of a hub repository's snapshot in the Hugging Face cache (None where
    neither is there: an image model, a file, a repository not yet downloaded)."""
    if is_bundled(model):
        return None
    path = Path(model).expanduser()
    if os.path.isdir(path):  # (False for a name too long for a file, which loading it names)
        return tav.folder_unet_config(path)
    if os.path.isfile(path) or _hub_model_file(model):  # a single-file checkpoint: an image model
        return None
    from huggingface_hub import try_to_load_from_cache

    hub = hub_repository(str(model))
    if hub is None:
        return None
    try:
        config = try_to_load_from_cache(hub.repo, "unet/config.json", revision=hub.revision)
    except (ValueError, OSError):  # a name the hub's library refuses
        return None
    return tav.folder_unet_config(Path(config).parent.parent) if isinstance(config, str) else None


def is_video_model(model: str | os.PathLike | None) -> bool:
    """Whether `model` is a tuned Tune-A-Video / Video-P2P folder (`video_model_config`)."""
    return video_model_config(model) is not None


def _load_hub(hub: HubFile) -> tuple:
    """`_load_folder`'s parts of a hub repository at its revision: from its snapshot in the Hugging Face cache
    when that holds them (no request made), else downloaded, unless HF_HUB_OFFLINE is set."""
    from huggingface_hub import snapshot_download

    repo, revision, name = hub.repo, hub.revision, hub_name(hub)
    try:
        snapshot = Path(snapshot_download(repo, revision=revision, local_files_only=True))
        _check_json_files(snapshot)
        return _load_folder(snapshot, local_files_only=True, name=name)
    except OSError as e:
        error = e
    if not hub_offline():
        logger.info("%s is not in the Hugging Face cache; downloading it from the hub", name)
        try:
            files = hub_files(repo, revision)  # one request: a hub out of reach or a repository it lacks is said
            video_folder = _hub_video_folder(repo, revision) if "unet/config.json" in files else None
            if video_folder is not None:
                return _load_folder(video_folder, local_files_only=False, name=name)
            return _load_folder(
                Path(repo), local_files_only=False, name=name, files=hub_load_kwargs(files), revision=revision
            )
        except OSError as e:
            error = e
    raise ModelNotFoundError(
        f"Model {name!r} is not a local path and could not be loaded from the Hugging Face hub or its cache "
        f"({type(error).__name__}: {first_line(error)}). On a connected machine run `{hub_download_command(hub)}`, "
        "or pass a local diffusers folder or a .safetensors file."
    ) from error


def _load_local_folder(path: Path) -> tuple:
    """`_load_folder` of a local folder; a truncated, corrupt or missing part is a ModelLoadError naming it."""
    try:
        return _load_folder(path, local_files_only=True)
    except ModelLoadError:  # a model of another kind, named already
        raise
    except (OSError, ValueError, RuntimeError, SafetensorError) as e:
        raise ModelLoadError(f"{path} could not be loaded as a Stable Diffusion folder: {first_line(e)}") from None


def image_pipeline(tokenizer, text_encoder, vae, unet, scheduler):
    """diffusers' text-to-image `StableDiffusionPipeline` of these very modules, without a safety checker:
    to write them as a folder, to generate images with them, or to fuse LoRAs into them."""
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def save_pretrained_folder(components: SDComponents, path: str | os.PathLike) -> Path:
    """Write the components as a standard diffusers Stable Diffusion folder."""
    c = components
    image_pipeline(c.tokenizer, c.text_encoder, c.vae, c.unet, c.scheduler).save_pretrained(path)
    return Path(path)


def _save_legacy_tokenizer(tokenizer, dest: Path) -> None:
    """The tokenizer as saved now, plus the `vocab.json` and `merges.txt` that older transformers
    (the authors' 4.25) read."""
    tokenizer.save_pretrained(dest)
    added = added_tokens(tokenizer)
    if added:  # textual-inversion tokens, where older transformers look for them
        (dest / "added_tokens.json").write_text(json.dumps(added, ensure_ascii=False), encoding="utf-8")
    model = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    (dest / "vocab.json").write_text(json.dumps(model["vocab"], ensure_ascii=False), encoding="utf-8")
    (dest / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")


def _legacy_weights(path: Path, rename) -> None:
    """Rewrite a saved safetensors file with `rename(key)` applied to every key (older readers' names)."""
    from safetensors.torch import load_file, save_file

    state = load_file(str(path))
    save_file({rename(k): v for k, v in state.items()}, str(path), metadata={"format": "pt"})


VIDEO_FOLDER_PARTS = ("model_index.json", "tokenizer", "text_encoder", "vae", "scheduler", "unet")


def save_video_folder(
    components: SDComponents,
    video_state: dict[str, torch.Tensor],
    frame_mode: FrameAttentionMode,
    group_norm: GroupNormMode,
    path: str | os.PathLike,
    delta_key: str | None = None,
) -> Path:
    """Write a tuned clip as the authors' Tune-A-Video / Video-P2P folder: the base model's tokenizer,
    text encoder, VAE and scheduler beside `unet/` in their `UNet3DConditionModel` layout.

    `video_state` is the inflated UNet's state dict (image and temporal layers); written atomically,
    replacing only an earlier folder's model parts (what else it holds is moved across: the results
    and workspace that the authors' scripts and ours keep there). `delta_key`, the tuning's workspace
    key, is recorded in `unet/config.json`.
    """
    index = {
        "_class_name": "TuneAVideoPipeline",
        "_diffusers_version": "0.11.1",
        "scheduler": ["diffusers", "DDIMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["tuneavideo", tav.CLASS_NAME],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    with atomic_path(path, directory=True) as tmp:
        _save_legacy_tokenizer(components.tokenizer, tmp / "tokenizer")
        components.text_encoder.save_pretrained(tmp / "text_encoder")
        _legacy_weights(tmp / "text_encoder" / "model.safetensors", tav.legacy_text_encoder_key)
        components.vae.save_pretrained(tmp / "vae")
        _legacy_weights(tmp / "vae" / "diffusion_pytorch_model.safetensors", tav.legacy_vae_key)
        components.scheduler.save_pretrained(tmp / "scheduler")
        (tmp / "model_index.json").write_text(json.dumps(index, indent=2))
        tav.write_unet(video_state, dict(components.unet.config), frame_mode, group_norm, tmp, delta_key)
        if Path(path).is_dir():
            _move_across([p for p in Path(path).iterdir() if p.name not in VIDEO_FOLDER_PARTS], tmp)
    return Path(path)


def _move_across(paths: list[Path], dest: Path) -> None:
    """Move `paths` into folder `dest` by renaming (same disk: nothing copied); if one cannot be moved
    (a file in use, on some systems), those already moved go back before the error is raised."""
    moved = []
    try:
        for path in paths:
            os.replace(path, dest / path.name)
            moved.append(path)
    except OSError:
        for path in reversed(moved):
            os.replace(dest / path.name, path)
        raise


def save_single_file(components: SDComponents, path: str | os.PathLike) -> Path:
    """Save UNet, VAE and text encoder with their configs into one `.safetensors` file."""
    tensors = {}
    for prefix, module in (
        ("unet", components.unet),
        ("vae", components.vae),
        ("text_encoder", components.text_encoder),
    ):
        for k, v in module.state_dict().items():
            tensors[f"{prefix}.{k}"] = v
    meta = {
        "format": _FLAT_FORMAT,
        "unet": dict(components.unet.config),
        "vae": dict(components.vae.config),
        "text_encoder": components.text_encoder.config.to_dict(),
        "scheduler": dict(components.scheduler.config),
        "max_tokens": components.tokenizer.model_max_length,
        "added_tokens": list(added_tokens(components.tokenizer)),  # textual-inversion tokens, their rows the encoder's
    }
    return save_tensors(path, tensors, meta)


def _clean_config(cfg: dict) -> dict:
    return {k: v for k, v in cfg.items() if not k.startswith("_")}


def _load_flat_file(path: Path) -> tuple:
    state, meta = load_tensors(path)
    unet = UNet2DConditionModel.from_config(_clean_config(meta["unet"]))
    vae = AutoencoderKL.from_config(_clean_config(meta["vae"]))
    text_encoder = CLIPTextModel(CLIPTextConfig(**_clean_config(meta["text_encoder"])))
    for prefix, module in (("unet", unet), ("vae", vae), ("text_encoder", text_encoder)):
        sub = {k[len(prefix) + 1 :]: v for k, v in state.items() if k.startswith(prefix + ".")}
        hint = "the file was cut or changed after `save_single_file` wrote it; write it again."
        load_state(module, sub, f"{path} ({prefix})", ModelLoadError, hint)
    tokenizer = bundled_tokenizer()
    tokenizer.model_max_length = int(meta.get("max_tokens", tokenizer.model_max_length))
    tokenizer.add_tokens([AddedToken(t, single_word=True) for t in meta.get("added_tokens", [])])
    return tokenizer, text_encoder, vae, unet, _ddim(meta["scheduler"], path.name), None


def _is_flat_file(path: Path) -> bool:
    if path.suffix != ".safetensors":
        return False
    try:
        return read_meta(path, required=False).get("format") == _FLAT_FORMAT  # {}: an original checkpoint
    except CorruptFileError as e:
        raise ModelLoadError(str(e)) from None


def _load_original_checkpoint(path: Path, config: str | None, local_files_only: bool) -> tuple:
    """The parts of an original (LDM) single-file checkpoint, of the architecture `config` names (a diffusers
    folder, or a hub repository at its revision; None: diffusers' guess, read from the hub)."""
    from diffusers import StableDiffusionPipeline

    hub = hub_file_of(config, ()) if config is not None else None  # a local folder of its name comes first
    at = {"config": hub.repo, "revision": hub.revision} if hub is not None else {"config": config}
    try:
        pipe = StableDiffusionPipeline.from_single_file(str(path), local_files_only=local_files_only, **at)
    except Exception as e:  # noqa: BLE001 (whatever the checkpoint reader raises becomes one line)
        if "meta tensor" in str(e):  # a part's tensor that the file lacks, left unloaded by diffusers
            architecture = repr(str(config)) if config else "the one diffusers guessed"
            raise ModelLoadError(
                f"The single-file checkpoint {path} lacks weights that its architecture makes (a part was left "
                f"unloaded); it is incomplete, or of another architecture than {architecture} (name it with "
                "--model-config)."
            ) from None
        if config is not None:  # the architecture named, and it could not be read
            advice = (  # a hub id's configs may be out of reach; a folder's were checked before
                ""
                if Path(config).expanduser().exists()
                else "; give a diffusers folder of its architecture, or a hub id in the Hugging Face cache (on a "
                f"connected machine, `{hub_download_command(hub or HubFile(str(config), None))}`)"
            )
            raise ModelLoadError(
                f"Could not load the single-file checkpoint {path} with --model-config {str(config)!r} "
                f"({first_line(e)}){advice}."
            ) from e
        raise ModelLoadError(
            f"Could not load the single-file checkpoint {path} ({first_line(e)}). diffusers reads an original "
            "checkpoint's architecture from the hub or its cache; where neither is at hand, name it with "
            "--model-config: a diffusers folder (or cached hub id) of the same architecture, e.g. Stable Diffusion 1.5's."
        ) from e
    # diffusers builds the parts before anything can be asked of them (a folder is checked from its configs;
    # a flat file of ours holds parts that were loaded, so checked, before it was written)
    check_architecture(dict(pipe.unet.config), dict(pipe.vae.config), pipe.text_encoder.config.hidden_size, path.name)
    return pipe.tokenizer, pipe.text_encoder, pipe.vae, pipe.unet, _ddim(pipe.scheduler.config, path.name), None


def is_out_of_memory(e: BaseException) -> bool:
    """torch's out-of-memory errors: CUDA's own type, and the CPU allocator's RuntimeError."""
    return isinstance(e, torch.OutOfMemoryError) or (isinstance(e, RuntimeError) and "can't allocate memory" in str(e))


def _missing_parts(folder: Path, what: str, kind: str = "diffusers Stable Diffusion folder", note: str = "") -> None:
    """Refuse a folder (`what` names it) without every part of a diffusers Stable Diffusion folder."""
    missing = [part for part in FOLDER_PARTS if not (folder / part).is_dir()]
    if missing:
        lacks = (
            "none of its subfolders"
            if len(missing) == len(FOLDER_PARTS)
            else f"no {', '.join(map(repr, missing))} subfolder{'s' if len(missing) > 1 else ''}"
        )
        raise ModelNotFoundError(
            f"{what} is not a {kind}: it has {lacks} (expected {', '.join(FOLDER_PARTS)}{note}){_nearby_model(folder)}."
        )


def _is_model_folder(folder: Path) -> bool:
    return all((folder / part).is_dir() for part in FOLDER_PARTS)


def _nearby_model(folder: Path) -> str:
    """Where a folder given for a model is beside one, what to give instead: the model folder it is a part
    of (`.../unet` given), or the one it holds (its parent given); else nothing."""
    if folder.name in FOLDER_PARTS and _is_model_folder(folder.parent):
        return f"; it is the {folder.name!r} part of the model folder {str(folder.parent)!r}: give that"
    try:
        inside = sorted(f for f in folder.iterdir() if f.is_dir() and _is_model_folder(f))
    except OSError:
        return ""
    if len(inside) == 1:
        return f"; it holds the model folder {str(inside[0])!r}: give that"
    if inside:
        more = f" and {len(inside) - 2} more" if len(inside) > 2 else ""
        return f"; it holds the model folders {', '.join(repr(str(f)) for f in inside[:2])}{more}: give one"
    return ""


def _hub_model_file(model: str | os.PathLike | None) -> bool:
    """Whether `model` names a single-file checkpoint of a hub repository (`owner/name/FILE.safetensors`, as
    diffusers' `from_single_file` takes one) and no local path has its name."""
    found = hub_file_of(model, MODEL_FILE_SUFFIXES)
    return found is not None and found.file is not None


def _link_off_the_hub(value: str | os.PathLike) -> str | None:
    """What to say of a model or architecture given as a link that names no hub repository (`link_reason`);
    None for any other value (a hub repository's link is read from the hub)."""
    if hub_repository(str(value)) is not None:
        return None
    return link_reason(
        str(value), f"{LOCAL_COPY}, or a hub id (owner/name) or link (https://huggingface.co/owner/name)"
    )


def check_model_path(model: str | os.PathLike) -> None:
    """Refuse, before anything is read, a local model path that is missing or a folder without the parts
    of a diffusers Stable Diffusion folder (a hub id, or a hub repository's checkpoint file, passes: it is
    resolved when loaded)."""
    if is_bundled(model):
        return
    if not str(model).strip():  # Path("") is the current folder
        raise ModelNotFoundError(
            "The model is empty; give a diffusers folder, a .safetensors or .ckpt file or a hub id, or leave "
            "--model out (or give videop2p-toy) for the bundled toy model."
        )
    if too_long := too_long_reason(model):  # named where it was given (a config file's key), as `_no_model`'s
        raise ModelNotFoundError(f"model {too_long}", "model", too_long)
    path = Path(model).expanduser()
    _refuse_tuned_delta(path)
    if path.is_dir():
        _missing_parts(path, str(path))
        for part in WEIGHTED_PARTS:  # the weights files the loaders read (`weights_load_kwargs`), by name
            held = sorted(f.name for f in (path / part).iterdir() if f.suffix in (".safetensors", ".bin"))
            if not weights_load_kwargs(held):
                other = f"; it holds {', '.join(held[:2])}, of no name they read" if held else ""
                raise ModelNotFoundError(
                    f"{path / part} holds no weights (a .safetensors or .bin file named as diffusers and transformers "
                    f"write them: diffusion_pytorch_model, model or pytorch_model, of a variant or sharded too){other}."
                )
        _check_json_files(path)
    elif path.is_file():
        _check_model_file(path)
    elif _hub_model_file(model):
        return
    elif link := _link_off_the_hub(model):
        raise ModelNotFoundError(f"Model {link}", "model", link)
    elif path.suffix in {".safetensors", *_TORCH_SAVE_SUFFIXES}:
        raise _no_model("Model file", f"{str(model)!r} does not exist", "a .safetensors or .ckpt checkpoint")
    elif str(model).startswith((".", "/", "~")):
        raise _no_model("Model folder", f"{str(model)!r} does not exist")
    elif hub_repository(str(model)) is None:
        problem = f"{str(model)!r} is not a local path, nor a hub id (owner/name in letters, digits, '-', '_' and '.')"
        raise _no_model("Model", problem)


def _no_model(
    noun: str, problem: str, kinds: str = "a diffusers folder, a .safetensors or .ckpt file"
) -> ModelNotFoundError:
    """A model path or id that names no model: said with what may be given (`kinds`, a hub id, the bundled
    model), as the command line says it ("Model folder '...' does not exist; ... (--model)."), and as its
    setting's reason for an app that names where it was given."""
    reason = f"{problem}; give {kinds}, a hub id such as runwayml/stable-diffusion-v1-5, or videop2p-toy for the "
    reason += "bundled model"
    return ModelNotFoundError(f"{noun} {reason} (--model).", "model", f"{reason}.")


def _check_json_files(folder: Path) -> None:
    """Refuse a model folder whose configs, tokenizer files or model_index.json are not JSON (cut short,
    damaged), naming the file: the loaders' own errors name the line but not the file."""
    for file in [folder / "model_index.json", *(f for part in FOLDER_PARTS for f in (folder / part).glob("*.json"))]:
        if not file.is_file():
            continue
        try:
            json.loads(file.read_bytes())
        except ValueError as e:  # JSONDecodeError, and UnicodeDecodeError for bytes that are not text
            raise ModelLoadError(f"{file} is not valid JSON ({e}); the model's files are damaged.") from None


def _refuse_tuned_delta(path: Path) -> None:
    """A tuned clip's delta (a workspace clip folder, a diffusers-delta export or its tune.safetensors) holds
    the tuned tensors only, not a model: say so, and what --model takes, rather than "no unet subfolder"
    or a checkpoint reader's error."""
    file = path / DELTA_FILE if path.is_dir() and not (path / "unet").is_dir() else path
    if file.suffix != ".safetensors" or not file.is_file():
        return
    try:
        meta = read_meta(file, required=False)
    except CorruptFileError:
        return  # a damaged file is named by the model checks
    if is_delta_identity(meta):
        raise ModelNotFoundError(
            f"{path} is a tuned clip's delta (a workspace entry or a diffusers-delta export of model "
            f"{meta['model']}), not a model: give --model the model it was tuned from, or write a folder "
            "--model takes with `videop2p export CLIP OUT --format tune-a-video`."
        )


def _check_model_file(path: Path) -> None:
    """Refuse a single model file that cannot be a checkpoint, from its first bytes: empty, a safetensors file
    whose header does not read, or a file of another name that is not a torch save (a zip archive or, from
    torch before 1.6, a pickle, whose first byte is the protocol marker 0x80)."""
    if path.stat().st_size == 0:
        raise ModelLoadError(f"Model file {str(path)!r} is empty (0 bytes); give a .safetensors or .ckpt checkpoint.")
    if path.suffix == ".safetensors":
        _is_flat_file(path)  # reads the header: a truncated or damaged one is named
        return
    with path.open("rb") as f:
        first = f.read(1)
    if first != b"\x80" and not zipfile.is_zipfile(path):
        raise ModelLoadError(
            f"Model file {str(path)!r} is not a checkpoint, or is truncated: a {path.suffix or 'file without a suffix'} "
            "is read as a torch save (a zip archive or a pickle) and this one is neither; give a .safetensors or "
            ".ckpt checkpoint of a Stable Diffusion 1.x or 2.x model, a diffusers folder or a hub id."
        )


def check_model_config(model: str | os.PathLike | None, config: str | os.PathLike | None) -> None:
    """An architecture given for a model (`--model-config`) belongs to an original single-file checkpoint,
    and names a diffusers folder with the parts' configs, or a hub id (resolved when loaded)."""
    if config is None:
        return
    path = None if is_bundled(model) else Path(model).expanduser()
    checkpoint = path is not None and (_hub_model_file(model) or (path.is_file() and not _is_flat_file(path)))
    if not checkpoint:
        head = f"{str(config)!r} describes an original single-file checkpoint ("
        tail = f" FILE.safetensors or .ckpt); the model {str(model or 'videop2p-toy')!r} carries its own configs."
        raise ModelLoadError(f"--model-config {head}--model{tail}", "model_config", f"{head}a model{tail}")
    if link := _link_off_the_hub(config):
        raise ModelLoadError(f"--model-config {link}", "model_config", link)
    folder = Path(config).expanduser()
    if folder.exists() or str(config).startswith((".", "/", "~")):  # a local folder (its configs are enough)
        _missing_parts(folder, f"--model-config {str(config)!r}", "diffusers folder", "; their configs are enough")


def check_adapter_files(lora: dict[str, LoraScale] | None, embeddings: dict[str, str | None] | None) -> None:
    """Refuse a LoRA or embedding file that is missing, empty or of another kind, a scale out of range and
    a token that is no word (`lora.check_lora`, `embeddings.check_embedding`), before anything is read."""
    for path, scale in (lora or {}).items():
        check_lora(path, scale)
    for path, token in (embeddings or {}).items():
        check_embedding(path, token)


def check_weights_finite(source: str, parts: dict[str, dict[str, torch.Tensor]]) -> None:
    """Refuse a model whose weights (each part's named tensors) hold NaN or infinite values, a damaged
    file, or were left unloaded (on the meta device), before any work. A tensor's float32 sum is finite
    when its values are: one reduction each."""
    for part, tensors in parts.items():
        for name, t in tensors.items():
            if t.is_meta:  # a tensor its config makes that its files lack, left unloaded by diffusers
                raise ModelLoadError(
                    f"{source}: the weight {part}.{name} is not in the model's files; they are incomplete or "
                    "of another model (download or convert it again)."
                )
            finite_sum = not t.is_floating_point() or bool(torch.isfinite(t.sum(dtype=torch.float32)))
            if not finite_sum and not bool(torch.isfinite(t).all()):
                raise ModelLoadError(
                    f"{source}: the weight {part}.{name} holds NaN or infinite values; the model's files are "
                    "damaged (download or convert it again)."
                )


def _cast(module: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> None:
    """Move and cast a loaded part. diffusers' `ModelMixin.to` warns on every cast that the modules to
    keep in float32 are "[]" when there are none (0.42); a part with such modules still goes through it."""
    if getattr(module, "_keep_in_fp32_modules", None):
        module.to(device=device, dtype=dtype)
    else:
        torch.nn.Module.to(module, device=device, dtype=dtype)


def load_components(
    model: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    config: str | None = None,
    lora: dict[str, LoraScale] | None = None,
    embeddings: dict[str, str | None] | None = None,
    vae: str | None = None,
) -> SDComponents:
    """Load tokenizer, text encoder, VAE, UNet and a DDIM scheduler.

    `model` is a diffusers folder, a `.safetensors`/`.ckpt` file, a hub id resolved through the
    Hugging Face cache, or None for the bundled toy model; `config` names an original single-file
    checkpoint's architecture (a diffusers folder or hub id; default: diffusers' guess, read from the
    hub); `lora` maps LoRA files to their scales, fused into the weights (`lora.fuse_loras`; the
    model's name then lists them); `embeddings` maps textual-inversion files to their tokens (None: the
    file's own), added to the tokenizer and text encoder (`embeddings.add_embeddings`; named too); `vae`
    names a VAE used in place of the model's (`vae.load_vae`: a folder, file or hub id; named too). A
    device this machine lacks, and a LoRA, embedding or VAE file missing, a scale out of range or a
    token that is no word, are refused before anything is read.
    """
    device = check_device(device)
    check_model_path(model)  # a model that is missing is named as such first, with or without `config`
    check_model_config(model, config)
    check_adapter_files(lora, embeddings)
    if vae is not None:
        check_vae_spec(vae)
    if device.type == "cpu" and dtype == torch.float16:
        logger.warning(
            "float16 on the CPU runs several times slower than float32 (few CPU kernels take it); for less memory "
            "on the CPU, %s",
            lighter_dtype(device),
        )
    if is_bundled(model):
        path = bundled_model_path()
        if not (path / "model_index.json").exists():
            raise ModelNotFoundError(
                f"The bundled toy model is missing from {path}; train it with `videop2p toy train`."
            )
        source = "videop2p-toy"
        parts = _load_local_folder(path)
    else:
        path = Path(model).expanduser()
        source = str(model)
        if path.is_dir():
            parts = _load_local_folder(path)
            source = path.name
        elif path.is_file() or _hub_model_file(model):
            local = path.is_file()
            if not local:  # a hub repository's single-file checkpoint, from the cache or downloaded
                path = hub_file(str(model), "model", MODEL_FILE_SUFFIXES, (), ModelNotFoundError)
            with named_as_given(model, path, ModelLoadError, ModelNotFoundError):
                if not local:
                    _check_model_file(path)
                parts = (
                    _load_flat_file(path)
                    if _is_flat_file(path)
                    else _load_original_checkpoint(path, config, hub_offline())
                )
            source = path.name
        else:
            hub = hub_repository(str(model))
            source = hub_name(hub)
            parts = _load_hub(hub)
    if vae is not None:  # before LoRAs, which may adapt it too
        parts = (*parts[:2], load_vae(vae, parts[2], hub_offline()), *parts[3:])
        source = f"{source}+{vae_name(vae)}"
    tokenizer, text_encoder, vae, unet, scheduler, video = parts
    fused = fuse_loras(image_pipeline(*parts[:5]), lora, source) if lora else ()
    source = "+".join([source, *(lora_stem(p) for p in lora or ())])
    if embeddings:
        add_embeddings(tokenizer, text_encoder, embeddings, source)
        source = "+".join([source, *(Path(p).stem for p in embeddings)])
    positions = text_encoder.config.max_position_embeddings
    if not 2 < tokenizer.model_max_length <= positions:
        raise ModelNotFoundError(
            f"{source}: its tokenizer allows {tokenizer.model_max_length} tokens but its text encoder has {positions} "
            "positions; the tokenizer's files are missing or are not this model's."
        )
    temporal = {"temporal": video.temporal} if video is not None else {}
    check_weights_finite(
        source,
        {"text_encoder": text_encoder.state_dict(), "vae": vae.state_dict(), "unet": unet.state_dict(), **temporal},
    )
    info = replace(model_info(tokenizer, text_encoder, vae, unet, scheduler, source, video), loras=fused)
    for module in (text_encoder, vae, unet):
        p = next(module.parameters())
        if p.dtype != dtype or p.device != torch.device(device):
            _cast(module, device, dtype)
        module.eval()
        module.requires_grad_(False)
    logger.info("loaded %s (%s, latent /%d)", info.identity, info.prediction_type, info.vae_scale_factor)
    return SDComponents(tokenizer, text_encoder, vae, unet, scheduler, info, video)
