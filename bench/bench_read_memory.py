"""Peak memory of reading a clip against its length, at Stable Diffusion's 512x512.

`read_video` decodes the selected frames (resized as they come) and returns them as one (F, H, W, 3)
array. This writes synthetic mp4 clips (a texture whose brightness steps each frame), then reads each
in a fresh process and prints that process's peak memory growth (its own high-water mark, VmHWM,
which a forked child does not inherit) over the clip's bytes: 1.0 is the clip held once.

    python bench/bench_read_memory.py                       # 48, 96 and 192 frames at 512x512
    python bench/bench_read_memory.py --lengths 96 --size 256
    PYTHONPATH=/tmp/base/src python bench/bench_read_memory.py   # another tree's reader (before/after)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from videop2p.io.writing import write_mp4

READ = """
import re, sys, time
from videop2p.io.video import read_video

def peak():
    with open("/proc/self/status") as f:
        return int(re.search(r"VmHWM:\\s+(\\d+) kB", f.read()).group(1)) * 1024

before, t0 = peak(), time.perf_counter()
frames = read_video(sys.argv[1]).frames
print(frames.nbytes, peak() - before, time.perf_counter() - t0)
"""


def synthetic_clip(frames: int, size: int) -> np.ndarray:
    """(F, size, size, 3) uint8: a coarse random texture, one grey level brighter each frame (wrapping)."""
    base = np.random.default_rng(0).integers(0, 256, (size // 4, size // 4, 3), dtype=np.uint8)
    base = base.repeat(4, axis=0).repeat(4, axis=1)
    return base[None] + np.arange(frames, dtype=np.uint8)[:, None, None, None]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[48, 96, 192])
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()
    print("| frames | size | clip, MB | peak growth, MB | peak / clip | seconds |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.lengths:
            path = Path(tmp) / f"clip{n}.mp4"
            write_mp4(synthetic_clip(n, args.size), path, fps=24.0)
            out = subprocess.run([sys.executable, "-c", READ, str(path)], check=True, capture_output=True, text=True)
            clip, grew, seconds = (float(x) for x in out.stdout.split())
            row = [n, args.size, f"{clip / 2**20:.0f}", f"{grew / 2**20:.0f}", f"{grew / clip:.2f}", f"{seconds:.1f}"]
            print("| " + " | ".join(map(str, row)) + " |")


if __name__ == "__main__":
    main()
