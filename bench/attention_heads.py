"""Text-to-set UNet forward time of the toy architecture at several head widths (random weights).

The head count changes no weight shape, only how the attention splits its channels; this prints
how much the split costs on this machine, e.g. the first bundled model's 16 heads of width 4 and 8
against the configured width of 16 (4 and 8 heads) and 32 (2 and 4 heads).

    python bench/attention_heads.py                       # 8 frames, batch 4 (an editing step)
    python bench/attention_heads.py --frames 2 --batch 1  # one null-text evaluation of a 2-frame clip
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def forward_seconds(heads: int | tuple[int, ...], frames: int, batch: int, repeats: int) -> float:
    from diffusers import UNet2DConditionModel

    from videop2p.models.t2s import T2SModel
    from videop2p.models.tokenizer import bundled_tokenizer
    from videop2p.sampling import predict
    from videop2p.toy.model import ToyModelConfig, latent_size, make_unet

    cfg = ToyModelConfig()
    config = make_unet(cfg, sample_size=latent_size(cfg)).config
    unet = UNet2DConditionModel.from_config(config, attention_head_dim=heads)  # same weights' shapes, these heads
    model = T2SModel.from_image_unet(unet)
    model.unet.requires_grad_(False)
    size = unet.config.sample_size
    z = torch.randn(batch, frames, cfg.latent_channels, size, size)  # (B, F, C, h, w)
    text = torch.randn(batch, bundled_tokenizer().model_max_length, cfg.text_hidden)  # (B, L, D)
    times = []
    with torch.no_grad():
        predict(model, z, 500, text, None, "bench")  # warm-up
        for _ in range(repeats):
            t0 = time.perf_counter()
            predict(model, z, 500, text, None, "bench")
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.frames} frames, batch {args.batch}")
    from videop2p.toy.model import ToyModelConfig, head_counts

    legacy = ToyModelConfig().unet_head_dim  # the first bundled model: the width passed as the head count
    splits = [(f"{legacy} heads per block", legacy)]
    for width in (16, 32):
        counts = head_counts(ToyModelConfig(unet_head_dim=width))
        splits.append((f"width {width}: {counts} heads", counts))
    base = None
    for label, heads in splits:
        s = forward_seconds(heads, args.frames, args.batch, args.repeats)
        base = base or s
        print(f"{label:24s} {s * 1e3:8.0f} ms  x{base / s:.2f}")


if __name__ == "__main__":
    main()
