import copy
import dataclasses
import logging

import numpy as np
import torch

from videop2p.latents import decode_latents, encode_posterior
from videop2p.models.loading import SDComponents


def _half(c: SDComponents, force_upcast: bool) -> SDComponents:
    vae = torch.nn.Module.to(copy.deepcopy(c.vae), torch.float16)
    vae.register_to_config(force_upcast=force_upcast)
    return SDComponents(c.tokenizer, c.text_encoder, vae, c.unet, c.scheduler, c.info)


def test_half_precision_vae_overflow_is_redone_in_float32(tiny, caplog):
    half = _half(tiny, force_upcast=False)
    z = torch.randn(1, 2, 4, 8, 8, generator=torch.Generator().manual_seed(0)) * 2e4  # / scaling > fp16 max
    with caplog.at_level(logging.WARNING, logger="videop2p.latents"):
        frames = decode_latents(half, z)
    assert "redone in float32" in caplog.text
    assert np.abs(frames.astype(int) - decode_latents(tiny, z).astype(int)).max() <= 2  # fp16-rounded weights
    assert half.vae.dtype == torch.float16  # put back after the fallback


def test_vae_slices_give_the_same_latents_and_frames_as_one_batch(tiny):
    frames = np.random.default_rng(0).integers(0, 255, (5, 16, 16, 3), dtype=np.uint8)
    mean1, std1 = encode_posterior(tiny, frames, batch=1)
    mean5, std5 = encode_posterior(tiny, frames, batch=5)
    assert mean1.shape == (1, 5, 4, 8, 8) and torch.allclose(mean1, mean5, atol=1e-5) and torch.allclose(std1, std5)
    assert np.abs(decode_latents(tiny, mean1, batch=2).astype(int) - decode_latents(tiny, mean1).astype(int)).max() <= 1


def test_force_upcast_vaes_run_in_float32_and_stay_half(tiny):
    half = _half(tiny, force_upcast=True)
    z = torch.randn(1, 2, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    assert np.abs(decode_latents(half, z).astype(int) - decode_latents(tiny, z).astype(int)).max() <= 2
    assert half.vae.dtype == torch.float16


def test_decode_slices_are_sized_by_the_frames_pixels(tiny, monkeypatch):
    from videop2p import latents

    f = tiny.info.vae_scale_factor
    assert latents.decode_batch(tiny, (64 // f, 64 // f), pixels=4 * 64 * 64) == 4
    assert latents.decode_batch(tiny, (512, 512), pixels=64) == 1  # never fewer than one frame
    info = dataclasses.replace(tiny.info, vae_scale_factor=8)
    sd = SDComponents(tiny.tokenizer, tiny.text_encoder, tiny.vae, tiny.unet, tiny.scheduler, info)
    assert latents.decode_batch(sd, (64, 64)) == 2  # SD at 512x512: two frames per call
    calls = []
    decode = tiny.vae.decode
    monkeypatch.setattr(tiny.vae, "decode", lambda z: calls.append(len(z)) or decode(z))
    monkeypatch.setattr(latents, "decode_batch", lambda c, hw: 3 if tuple(hw) == (8, 8) else 0)
    latents.decode_latents(tiny, torch.zeros(1, 7, 4, 8, 8))
    assert calls == [3, 3, 1]  # the slices decode_batch sizes for these latents


def test_encode_slices_are_sized_by_the_frames_pixels_as_decode_slices_are(tiny, monkeypatch):
    """Regression: the encoder took 8 frames per call whatever their size (at 512x512, 5200 MB over the
    SD 1.5 model against about 1400 MB two at a time, bench/bench_memory.py)."""
    from videop2p import latents

    assert latents.frames_per_call(512, 512) == 2 and latents.frames_per_call(4096, 4096) == 1
    assert latents.frames_per_call(64, 64, pixels=4 * 64 * 64) == 4
    calls = []
    encode = tiny.vae.encode
    monkeypatch.setattr(tiny.vae, "encode", lambda x: calls.append(len(x)) or encode(x))
    monkeypatch.setattr(latents, "frames_per_call", lambda h, w: 3 if (h, w) == (16, 24) else 0)
    latents.encode_posterior(tiny, np.zeros((7, 16, 24, 3), np.uint8))
    assert calls == [3, 3, 1]  # the slices frames_per_call sizes for these frames
