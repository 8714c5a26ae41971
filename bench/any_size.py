"""A first edit at sizes whose latent the UNet's levels leave odd, on the Stable Diffusion 1.5 architecture
with random weights (no download): every stage's seconds, the peak memory, and each level's map size.

SD 1.5's UNet halves its latent three times (ceil(n / 2) each); a side that is a multiple of 8 pixels but not
of 64 leaves some level odd, which diffusers' UNet upsamples back to its own size. Each size runs in its own
process, so that its peak RSS is its own:

    python bench/any_size.py --size 512x288 --size 520x296 --size 512x320 --frames 2
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SOURCE = "a rabbit is jumping on the grass"
TARGET = "a origami rabbit is jumping on the grass"


def run_one(size: str, frames: int, steps: int) -> dict:
    """One first edit at `size` (tuning one step, fast inversion and edit of `steps` DDIM steps), timed."""
    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    from sd15 import sd15_components

    from videop2p.pipeline import VideoP2P

    torch.manual_seed(0)
    width, height = (int(v) for v in size.split("x"))
    comps = sd15_components()
    vp = VideoP2P(comps, None)
    clip = vp.clip_from_frames(np.random.default_rng(0).integers(0, 256, (frames, 360, 640, 3), dtype=np.uint8))
    default = clip.frames.shape[2], clip.frames.shape[1]  # the size a 16:9 clip takes without --size
    clip = vp.clip_from_frames(clip.frames, width=width, height=height, resize="stretch")
    factor = comps.info.vae_scale_factor
    latent = (height // factor, width // factor)
    seconds = {}
    t = time.perf_counter()
    model, _ = vp.tune(clip, SOURCE, {"steps": 1, "progress": False})
    seconds["tune (1 step)"] = time.perf_counter() - t
    t = time.perf_counter()
    inversion, _ = vp.invert(model, clip, SOURCE, {"method": "fast", "steps": steps, "progress": False})
    seconds[f"invert (fast, {steps} steps)"] = time.perf_counter() - t
    t = time.perf_counter()
    out, _ = vp.edit(
        model,
        inversion,
        SOURCE,
        [TARGET],
        {"blend": ("rabbit", "rabbit"), "reweight": {"origami": 2.0}, "progress": False},
    )
    seconds[f"edit + decode ({steps} steps)"] = time.perf_counter() - t
    return {
        "size": f"{width}x{height}",
        "latent": f"{latent[1]}x{latent[0]}",
        "levels (h, w)": _levels(latent),
        "default size of a 640x360 clip": f"{default[0]}x{default[1]}",
        "edit": list(out.edits[0].shape),
        "mask": list(out.result.masks.shape),
        "attention maps": list(out.result.attention.shape),
        "finite": bool(np.isfinite(out.edits[0]).all()),
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
        "peak RSS MiB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def _levels(latent: tuple[int, int]) -> list[tuple[int, int]]:
    """The latent's size at each of SD 1.5's four levels (ceil(n / 2) per downsampler)."""
    h, w = latent
    sizes = []
    for _ in range(4):
        sizes.append((h, w))
        h, w = -(-h // 2), -(-w // 2)
    return sizes


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", action="append", help="WIDTHxHEIGHT, repeatable (default: 512x288 and 512x320)")
    p.add_argument("--frames", type=int, default=2)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--one", help=argparse.SUPPRESS)  # a child process: one size
    args = p.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.frames, args.steps)))
        return
    for size in args.size or ["512x288", "512x320"]:
        cmd = [sys.executable, __file__, "--one", size, "--frames", str(args.frames), "--steps", str(args.steps)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode:
            print(f"{size}: failed\n{done.stderr.strip().splitlines()[-1]}")
            continue
        print(done.stdout.strip().splitlines()[-1])  # one JSON line per size


if __name__ == "__main__":
    main()
