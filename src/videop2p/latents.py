"""Between pixels, latents and text embeddings, using each model's own factors and limits."""

from __future__ import annotations

import copy
import hashlib
import logging

import numpy as np
import torch
from einops import rearrange

from videop2p.control.prompts import check_prompt_length, tokenize
from videop2p.models.loading import SDComponents

logger = logging.getLogger(__name__)


def frames_hash(frames: np.ndarray) -> str:
    """A short content hash of (F, H, W, 3) uint8 frames."""
    h = hashlib.sha256(str(frames.shape).encode())
    h.update(np.ascontiguousarray(frames).tobytes())
    return h.hexdigest()[:16]


def frames_to_tensor(frames: np.ndarray) -> torch.Tensor:
    """(F, H, W, 3) uint8 -> (F, 3, H, W) float in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def tensor_to_frames(x: torch.Tensor) -> np.ndarray:
    """(F, 3, H, W) in [-1, 1] -> (F, H, W, 3) uint8."""
    x = ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def _float32_vae(components: SDComponents):
    """A float32 copy of a half-precision VAE, made once per components and kept beside it; the shared
    VAE itself is never re-cast (another thread may be using it)."""
    if components.vae_float32 is None:
        components.vae_float32 = copy.deepcopy(components.vae).float()
    return components.vae_float32


def _vae_call(components: SDComponents, fn, x: torch.Tensor) -> torch.Tensor:
    """`fn(vae, x)` in the VAE's dtype; in float32 when its config asks for it or half precision overflowed."""
    vae = components.vae
    half = vae.dtype in (torch.float16, torch.bfloat16)
    if not half:
        return fn(vae, x.to(vae.dtype))
    if not getattr(vae.config, "force_upcast", False):
        out = fn(vae, x.to(vae.dtype))
        if torch.isfinite(out).all():
            return out
        logger.warning("VAE overflowed in %s (NaN/inf); this slice is redone in float32", vae.dtype)
    return fn(_float32_vae(components), x.float())


VAE_PIXELS = 2 * 512 * 512  # frame pixels per VAE call: two SD frames, under a tuning or edit step's peak


def frames_per_call(height: int, width: int, pixels: int = VAE_PIXELS) -> int:
    """Frames per VAE call (encoding or decoding) so that a call sees at most `pixels` frame pixels (at
    least one frame). The VAE's activations grow with the pixels of a call; at 512x512, 8 frames at once
    cost as much as an 8-frame edit step or more (decoding: 6199 MB against 1064 MB one at a time;
    encoding: 5200 MB against 1414 MB two at a time; docs/benchmarks.md), 2 stay well under it."""
    return max(1, pixels // (height * width))


@torch.no_grad()
def encode_posterior(
    components: SDComponents, frames: np.ndarray, batch: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scaled posterior mean and std of every frame, each (1, F, C, h, w); `batch` frames per VAE call
    (None: `frames_per_call`, sized by the frames' pixels)."""
    vae = components.vae
    batch = batch or frames_per_call(*frames.shape[1:3])
    x = frames_to_tensor(frames).to(device=vae.device)
    means, stds = [], []
    for i in range(0, len(x), batch):  # slices of `batch` frames bound the VAE's activation memory
        params = _vae_call(components, lambda m, v: m.encode(v).latent_dist.parameters, x[i : i + batch])
        mean, logvar = params.float().chunk(2, dim=1)
        means.append(mean)
        stds.append(torch.exp(0.5 * logvar.clamp(-30.0, 20.0)))
    s = components.info.scaling_factor
    mean = rearrange(torch.cat(means), "f c h w -> 1 f c h w") * s
    std = rearrange(torch.cat(stds), "f c h w -> 1 f c h w") * s
    return mean.float(), std.float()


def decode_batch(components: SDComponents, latent_hw: tuple[int, int], pixels: int = VAE_PIXELS) -> int:
    """`frames_per_call` for latents of `latent_hw`, by the frames they decode to."""
    factor = components.info.vae_scale_factor
    return frames_per_call(latent_hw[0] * factor, latent_hw[1] * factor, pixels)


@torch.no_grad()
def decode_latents(components: SDComponents, latents: torch.Tensor, batch: int | None = None) -> np.ndarray:
    """(B, F, C, h, w) scaled latents -> (B, F, H, W, 3) uint8 frames; `batch` frames per VAE call
    (None: `decode_batch`, sized by the frames' pixels)."""
    vae = components.vae
    b = latents.shape[0]
    batch = batch or decode_batch(components, latents.shape[-2:])
    z = rearrange(latents, "b f c h w -> (b f) c h w") / components.info.scaling_factor
    z = z.to(vae.device)
    # each call's frames go to uint8 on the CPU at once: a long clip's float frames are never held together
    frames = np.concatenate(
        [
            tensor_to_frames(_vae_call(components, lambda m, v: m.decode(v).sample, z[i : i + batch]))
            for i in range(0, len(z), batch)
        ]
    )
    return frames.reshape(b, -1, *frames.shape[1:])


@torch.no_grad()
def encode_text(tokenizer, text_encoder, prompts: list[str]) -> torch.Tensor:
    """Text embeddings (B, L, D) padded to the tokenizer's own limit, from a tokenizer and encoder alone."""
    for p in prompts:
        check_prompt_length(tokenizer, p)
    ids = tokenize(
        tokenizer,
        prompts,
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids
    return text_encoder(ids.to(text_encoder.device))[0]


def encode_prompts(components: SDComponents, prompts: list[str]) -> torch.Tensor:
    """Text embeddings (B, L, D) padded to the tokenizer's own limit."""
    return encode_text(components.tokenizer, components.text_encoder, prompts)
