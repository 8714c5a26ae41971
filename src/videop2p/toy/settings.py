"""Settings of the toy-world model and of its training, torch-free so that the command line reads its
defaults from here."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from videop2p.config import COUNT_MAX, check_number

TOY_EVAL_SEEDS = 3  # images per caption that `videop2p toy eval` generates, each from its own seed


@dataclass
class ToyModelConfig:
    """Sizes of the toy model's components."""

    image_size: int = 64  # training resolution in pixels
    vae_channels: tuple[int, ...] = (32, 64, 64)  # VAE blocks; downsampling = 2 ** (len - 1)
    latent_channels: int = 4  # as in Stable Diffusion
    unet_channels: tuple[int, ...] = (64, 128)  # UNet blocks, each with cross-attention
    unet_head_dim: int = 16  # attention head width; each block has channels // width heads
    text_hidden: int = 64  # CLIP text encoder width (= cross-attention width)
    text_layers: int = 0  # CLIP text encoder depth (0: each word keeps its own embedding)

    @property
    def vae_factor(self) -> int:
        """Pixels per latent cell: each VAE block after the first halves the side."""
        return 2 ** (len(self.vae_channels) - 1)

    @property
    def size_step(self) -> int:
        """A frame side must be a multiple of this: the VAE's factor times the UNet's own downsampling."""
        return self.vae_factor * 2 ** (len(self.unet_channels) - 1)


@dataclass
class ToyTrainConfig:
    """Settings of a toy-model training run; the defaults are the bundled model's recipe."""

    model: ToyModelConfig = field(default_factory=ToyModelConfig)
    dataset_size: int = 20000  # pre-rendered training images
    seed: int = 0  # seeds the data, the initialisation and the batches
    batch_size: int = 64  # images per step
    vae_steps: int = 2500  # VAE optimisation steps
    vae_lr: float = 1e-3  # VAE peak learning rate (cosine decay)
    vae_crop: int = 32  # VAE trains on random crops of this side (fully convolutional)
    vae_kl_weight: float = 1e-6  # weight of the KL term
    decoder_steps: int = 0  # steps that sharpen the VAE's decoder on whole frames, encoder frozen (0: none)
    decoder_lr: float = 3e-4  # decoder peak learning rate (cosine decay)
    decoder_batch: int = 32  # whole frames per decoder step
    decoder_splice: float = 0.0  # share of a decoder batch spliced from two frames' latents (see train_decoder)
    unet_steps: int = 3000  # UNet + text encoder steps
    unet_lr: float = 1e-3  # UNet peak learning rate (cosine decay)
    caption_dropout: float = 0.1  # fraction of empty captions (for classifier-free guidance)
    color_dropout: float = 0.0  # fraction of captions without the colour word ("a circle on the sand")
    offset_noise: float = 0.05  # per-channel offset noise, helps flat backgrounds
    prediction_type: str = "epsilon"  # what the UNet predicts: "epsilon" or "v_prediction"
    snr_shift: float = 1.0  # log-SNR of SD's schedule raised by 2 ln(this) (1: SD's; 64 / latent side: SD's timing)
    zero_terminal_snr: bool = False  # rescale the schedule so its last timestep is pure noise
    timestep_spacing: str = "leading"  # how DDIM picks its timesteps ("trailing" starts at the last one)
    ema_decay: float = 0.999  # EMA of UNet and text-encoder weights
    text_rms: float = 0.0  # saved model's text outputs rescaled to this RMS, keys and values inverse (0: as trained)
    checkpoint_every: int = 250  # steps between checkpoints
    token_weight: float = 0.1  # weight of TokenCompose's token loss in phase 2 (0: plain denoising loss)
    vae_from: str | None = None  # reuse this model folder's VAE and scaling factor (skips phase 1)
    init_from: str | None = None  # start phase 2 from this model folder's UNet and text encoder (same sizes)
    device: str = "cpu"  # where to train; data, noise and batches are drawn on the CPU, so runs match
    workers: int = 0  # processes that render the dataset (0 or 1: this one)
    time_budget_s: float = 0.0  # wall-clock seconds for the whole run; phase 2 shortens its schedule to fit (0: none)


@dataclass
class GroundingConfig:
    """Settings of the grounding fine-tune."""

    steps: int = 300  # optimisation steps
    lr: float = 1e-4  # AdamW learning rate (linear warm-up, then constant)
    warmup: int = 20  # warm-up steps
    batch_size: int = 16  # images per step
    weight: float = 0.1  # weight of the token loss beside the denoising loss
    dataset_size: int = 4000  # rendered images with their masks
    caption_dropout: float = 0.1  # empty captions, as in phase 2 (no token loss on them)
    seed: int = 0  # seeds data, batches and noise
    checkpoint_every: int = 25  # steps between checkpoints


# Range of every number of the settings above: (lowest, highest, whole number, lowest excluded).
_COUNT = (0, math.inf, True, False)  # a whole number, 0 or more
_SIZE = (1, math.inf, True, False)  # a whole number, 1 or more
_RATE = (0, math.inf, False, True)  # a positive number
_SHARE = (0, 1, False, False)  # a fraction
_AMOUNT = (0, math.inf, False, False)  # 0 or a positive number
NUMBER_RULES: dict[str, tuple[float, float, bool, bool]] = {
    "image_size": _SIZE,
    "latent_channels": _SIZE,
    "unet_head_dim": _SIZE,
    "text_hidden": _SIZE,
    "text_layers": _COUNT,
    "dataset_size": _SIZE,
    "seed": _COUNT,
    "batch_size": _SIZE,
    "vae_steps": _COUNT,
    "vae_lr": _RATE,
    "vae_crop": _SIZE,
    "vae_kl_weight": _AMOUNT,
    "decoder_steps": _COUNT,
    "decoder_lr": _RATE,
    "decoder_batch": _SIZE,
    "decoder_splice": _SHARE,
    "unet_steps": _COUNT,
    "unet_lr": _RATE,
    "caption_dropout": _SHARE,
    "color_dropout": _SHARE,
    "offset_noise": _SHARE,
    "snr_shift": _RATE,
    "ema_decay": _SHARE,
    "text_rms": _AMOUNT,
    "checkpoint_every": _SIZE,
    "token_weight": _AMOUNT,
    "workers": _COUNT,
    "time_budget_s": _AMOUNT,
    "steps": _COUNT,
    "lr": _RATE,
    "warmup": _COUNT,
    "weight": _AMOUNT,
}
FLAG_NAMES = {"time_budget_s": "time_budget"}  # fields whose command-line flag is named otherwise


def check_numbers(settings: Any) -> None:
    """Raise OptionError (named by the field's flag) for the first number of `settings` (a dataclass above,
    its model config included) that is not finite, not whole where it must be, or out of its range."""
    for f in fields(settings):
        value = getattr(settings, f.name)
        if f.name == "model" and isinstance(value, ToyModelConfig):
            check_numbers(value)
        elif f.name in NUMBER_RULES:
            low, high, whole, above = NUMBER_RULES[f.name]
            cap = COUNT_MAX if whole else None  # a machine's limit: steps or sizes past it would never end
            check_number(None, FLAG_NAMES.get(f.name, f.name), value, low, high, whole, above, cap)
