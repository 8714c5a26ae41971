"""The library's native video paths (PyAV's decoders and encoders, x264, x265, swscale, Pillow,
LittleCMS) on small clips, without torch, for a memory checker to watch:

    valgrind -q python bench/native_check.py OUT          # no "Invalid write" expected
    LD_PRELOAD=/lib/x86_64-linux-gnu/libc_malloc_debug.so.0 MALLOC_CHECK_=3 python bench/native_check.py OUT

Written to find heap corruption like x265's CU-tree on narrow frames (docs/long_clips.md, "Narrow
frames and x265's CU-tree"): mp4, GIF and PNG frames written and read back, JPEG frames with a Display
P3 profile, 10-bit PQ and SDR HEVC (one narrower than 48 pixels), a side-by-side preview.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from videop2p.io.hdr import PQ
from videop2p.io.video import DEEP_SDR, DeepSignal, iter_video, probe_video, read_video
from videop2p.io.writing import side_by_side_frames, write_frames, write_mp4, write_video
from videop2p.testing import DISPLAY_P3, icc_profile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="an empty folder for the clips")
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    clip = rng.integers(0, 255, (6, 40, 56, 3), dtype=np.uint8)  # (F, H, W, 3)
    write_video(clip, out / "clip.mp4", 8.0)
    write_video(clip, out / "clip.gif", 8.0, workers=2)
    write_frames(clip, out / "frames")
    (out / "p3").mkdir(exist_ok=True)
    for k, frame in enumerate(clip, start=1):
        Image.fromarray(frame).save(out / "p3" / f"{k}.jpg", icc_profile=icc_profile(*DISPLAY_P3))
    for name in ("clip.mp4", "clip.gif", "frames", "p3"):
        print(name, read_video(out / name).frames.shape, len(probe_video(out / name).conversions), "conversions")
    assert len(list(iter_video(out / "clip.mp4", 0, len(clip)))) == len(clip)
    deep = rng.integers(0, 65535, (4, 32, 64, 3), dtype=np.uint16)  # (F, H, W, 3) 16-bit R'G'B'
    write_mp4(deep, out / "pq.mp4", 8.0, deep=DeepSignal(PQ))
    write_mp4(deep, out / "sdr10.mp4", 8.0, deep=DEEP_SDR)
    write_mp4(deep[:, :, :40], out / "narrow.mp4", 8.0, deep=DEEP_SDR)
    for name in ("pq.mp4", "narrow.mp4"):
        print(name, read_video(out / name).frames.shape)
    assert len(list(iter_video(out / "sdr10.mp4", 0, len(deep), signal=True))) == len(deep)
    write_video(side_by_side_frames([clip, clip], ["source", "edit"]), out / "side_by_side.mp4", 8.0)
    print("done")


if __name__ == "__main__":
    main()
