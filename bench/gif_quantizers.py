"""Time and fidelity of Pillow's palette quantisers on real frames, for the GIF previews.

Pillow's GIF writer gives each RGB frame an adaptive palette by median cut; this times that against
the other quantisers on frames of the sample clips resized to 512x512, and gives the PSNR of the
8-bit frame against the original.

    python bench/gif_quantizers.py --clips ../shared/data/videop2p-clips --frames 16
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255**2 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", required=True, help="a folder of clip folders of frames")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=512)
    args = p.parse_args()
    paths = sorted(Path(args.clips).glob("*/*.jpg"))[: args.frames]
    frames = [np.asarray(Image.open(f).convert("RGB").resize((args.size, args.size))) for f in paths]
    quantizers = {
        "median cut (the GIF writer's own)": Image.Quantize.MEDIANCUT,
        "fast octree": Image.Quantize.FASTOCTREE,
        "maximum coverage": Image.Quantize.MAXCOVERAGE,
    }
    print(f"| quantiser ({len(frames)} frames, {args.size}x{args.size}) | ms a frame | PSNR, mean (lowest) |")
    print("|---|---|---|")
    for name, method in quantizers.items():
        started, scores = time.perf_counter(), []
        for a in frames:
            eight_bit = Image.fromarray(a).quantize(method=method)
            scores.append(psnr(a, np.asarray(eight_bit.convert("RGB"))))
        ms = (time.perf_counter() - started) / len(frames) * 1000
        print(f"| {name} | {ms:.0f} | {np.mean(scores):.2f} ({np.min(scores):.2f}) dB |")


if __name__ == "__main__":
    main()
