"""The Stable Diffusion 1.5 architecture with random weights, for the benchmarks (no download)."""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from videop2p.models.loading import SDComponents, model_info
from videop2p.models.schedulers import make_scheduler
from videop2p.models.tokenizer import bundled_tokenizer

SD15_UNET = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 2,
    "block_out_channels": (320, 640, 1280, 1280),
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
    "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
}
SD15_VAE = {
    "in_channels": 3,
    "out_channels": 3,
    "block_out_channels": (128, 256, 512, 512),
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "layers_per_block": 2,
    "latent_channels": 4,
    "sample_size": 512,
    "scaling_factor": 0.18215,
}
SD15_TEXT = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "max_position_embeddings": 77,
    "vocab_size": 49408,
    "hidden_act": "quick_gelu",
    "bos_token_id": 49406,
    "eos_token_id": 49407,
    "pad_token_id": 1,
}


def sd15_components(device: str = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0) -> SDComponents:
    """The Stable Diffusion 1.5 architecture (UNet, VAE, CLIP ViT-L text encoder) with random weights.

    For timing and memory at real size without a download; the outputs mean nothing.
    """
    torch.manual_seed(seed)
    with torch.device(device):
        unet = UNet2DConditionModel(**SD15_UNET)
        vae = AutoencoderKL(**SD15_VAE)
        text_encoder = CLIPTextModel(CLIPTextConfig(**SD15_TEXT))
    if dtype != torch.float32:
        for m in (unet, vae, text_encoder):
            m.to(dtype)
    scheduler = make_scheduler()
    tokenizer = bundled_tokenizer()
    for m in (unet, vae, text_encoder):
        m.eval()
        m.requires_grad_(False)
    info = model_info(tokenizer, text_encoder, vae, unet, scheduler, source="sd15-architecture-random")
    return SDComponents(tokenizer, text_encoder, vae, unet, scheduler, info)
