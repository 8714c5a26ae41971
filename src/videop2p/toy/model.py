"""Configurations of the bundled toy-world model: standard Stable Diffusion components at toy size."""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.models.attention_processor import Attention
from transformers import CLIPTextConfig, CLIPTextModel

from videop2p.latents import encode_text
from videop2p.toy.settings import ToyModelConfig


def latent_size(cfg: ToyModelConfig) -> int:
    """Side of the latent grid: the image size over the VAE's downsampling."""
    return cfg.image_size // cfg.vae_factor


def make_vae(cfg: ToyModelConfig) -> AutoencoderKL:
    n = len(cfg.vae_channels)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=cfg.vae_channels,
        layers_per_block=1,
        latent_channels=cfg.latent_channels,
        norm_num_groups=16,
        sample_size=cfg.image_size,
        mid_block_add_attention=False,
    )


def head_counts(cfg: ToyModelConfig) -> tuple[int, ...]:
    """Heads per UNet block for the configured head width.

    diffusers' `attention_head_dim` argument of UNet2DConditionModel is read as the number of
    heads (a naming quirk kept for Stable Diffusion's configs, where `attention_head_dim=8` means 8
    heads), so the width is turned into counts here. The first bundled model was built passing the
    width itself: 16 heads of width 4 and 8, about 2 times slower on a CPU than 4 and 8 heads of
    width 16 (`bench/attention_heads.py`).
    """
    bad = [c for c in cfg.unet_channels if c % cfg.unet_head_dim]
    if cfg.unet_head_dim < 1 or bad:
        raise ValueError(
            f"unet_head_dim={cfg.unet_head_dim} does not divide the UNet block widths {bad or cfg.unet_channels}; "
            f"pick a divisor of every one of {cfg.unet_channels}."
        )
    return tuple(c // cfg.unet_head_dim for c in cfg.unet_channels)


def make_unet(cfg: ToyModelConfig, sample_size: int) -> UNet2DConditionModel:
    n = len(cfg.unet_channels)
    return UNet2DConditionModel(
        sample_size=sample_size,
        in_channels=cfg.latent_channels,
        out_channels=cfg.latent_channels,
        block_out_channels=cfg.unet_channels,
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D",) * n,
        up_block_types=("CrossAttnUpBlock2D",) * n,
        cross_attention_dim=cfg.text_hidden,
        attention_head_dim=head_counts(cfg),  # heads per block, see head_counts
        norm_num_groups=32,
    )


def make_text_encoder(cfg: ToyModelConfig, vocab_size: int, max_length: int) -> CLIPTextModel:
    config = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=cfg.text_hidden,
        intermediate_size=cfg.text_hidden * 2,
        num_hidden_layers=cfg.text_layers,
        num_attention_heads=4,
        max_position_embeddings=max_length,
        projection_dim=cfg.text_hidden,
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=49407,
    )
    return CLIPTextModel(config)


def text_rms(text_encoder: CLIPTextModel, tokenizer) -> float:
    """Root mean square of the empty prompt's embedding (1, L, D): the scale of the text encoder's outputs."""
    return float(encode_text(tokenizer, text_encoder, [""]).float().pow(2).mean().sqrt())


@torch.no_grad()
def rescale_text(text_encoder: CLIPTextModel, unet: UNet2DConditionModel, factor: float) -> None:
    """Scale the text encoder's outputs by `factor` and every cross-attention key and value weight by 1 / factor,
    in place: the same model in another parametrisation.

    The output is the final layer norm's (any depth), so scaling its gain and bias scales it; keys and
    values are linear in the text (their biases, if any, do not read it), so attention is unchanged. What
    changes is how far a fixed optimiser step moves an embedding relative to its size: Adam's steps do not
    depend on the gradient's scale, so null-text optimisation (Mokady et al. 2023) with learning rate lr on
    the rescaled model takes the steps that lr / factor takes on the original.
    """
    if not (factor > 0 and factor < float("inf")):
        raise ValueError(f"text scale factor {factor}: must be a positive finite number.")
    norm = getattr(text_encoder, "text_model", text_encoder).final_layer_norm  # transformers 4 nests it
    norm.weight.mul_(factor)
    norm.bias.mul_(factor)
    layers = [m for m in unet.modules() if isinstance(m, Attention) and m.is_cross_attention]
    if not layers:
        raise ValueError("the UNet has no cross-attention layer: nothing reads the text encoder's outputs.")
    for attn in layers:
        attn.to_k.weight.div_(factor)
        attn.to_v.weight.div_(factor)
