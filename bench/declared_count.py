"""Time of checking a long Matroska clip's frame count before it is read (`io.video.declared_frames`).

Matroska and WebM say no frame count, so their video packets are counted; a selection from the start
of the file counts only as many as it needs (`enough`). Writes an x264 Matroska clip of `--frames`
frames at `--size` (moving noise, so that the file is large), then times the count of every packet
and the count up to `--needed`, each after the page cache is dropped where this process may drop it
(as root on Linux; otherwise both read from the cache, and say so). Prints the file's size and both
times (median of `--repeats`).

    python bench/declared_count.py --frames 3000 --size 1280x720 --needed 8
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from videop2p.io.video import declared_frames


def write_clip(path: Path, frames: int, width: int, height: int) -> None:
    """Noise shifted a few pixels a frame, nearly lossless x264: a file as large as a camera's."""
    base = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.options = {"preset": "ultrafast", "crf": "10"}
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.roll(base, 3 * i, axis=1), format="rgb24")
            frame.pts = i
            c.mux(s.encode(frame))
        c.mux(s.encode())


def drop_page_cache() -> bool:
    """Whether the kernel's page cache could be dropped (root on Linux), so that the next read is from disk."""
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--needed", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "long.mkv"
        write_clip(path, args.frames, width, height)
        size = path.stat().st_size / 2**30
        timed, cold = {}, True
        for name, enough in (("every packet", None), (f"up to {args.needed}", args.needed)):
            seconds = []
            for _ in range(args.repeats):
                cold = drop_page_cache() and cold
                start = time.perf_counter()
                count = declared_frames(path, enough)
                seconds.append(time.perf_counter() - start)
            timed[name] = (statistics.median(seconds), count)
    where = "from disk (page cache dropped)" if cold else "from the page cache (it could not be dropped)"
    print(f"{args.frames} frames at {args.size} in Matroska, {size:.2f} GiB, counted {where}:")
    for name, (seconds, count) in timed.items():
        print(f"  {name}: {seconds:.3f} s (count {count})")


if __name__ == "__main__":
    main()
