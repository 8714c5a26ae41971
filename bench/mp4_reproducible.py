"""Whether the same frames give the same mp4, and what the writer's x264 settings cost.

x264's macroblock-tree rate control makes a clip's mp4 depend on its process's history: planning
B-frames, it read memory it had not set (files differed with the byte glibc fills allocations with,
MALLOC_PERTURB_), and without B-frames (`write_mp4`) a file can still differ after the process has
decoded another video, as every run has (it reads its input). This writes the same frames in fresh
processes, each with another history (allocations filled with 0 or 165; a 480p or a 1080p video
decoded and held first), for each setting, and prints which files are the same (A, B, ...: one
letter per distinct file); then each setting's size, PSNR against the frames written and encoding
time on each sample clip (8 frames at 512x512) and on a long synthetic clip at 1080p.

    python bench/mp4_reproducible.py --clips ../shared/data/videop2p-clips
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from videop2p.io.video import read_video, resize_frames
from videop2p.io.writing import MP4_OPTIONS, write_mp4

_B_FRAMES = {k: v for k, v in MP4_OPTIONS.items() if k != "bf"}  # write_mp4's, with x264's B-frames
_NO_MB_TREE = {"x264-params": "mbtree=0"}
SETTINGS = {
    "x264's default B-frames": _B_FRAMES,
    "no B-frames (write_mp4)": MP4_OPTIONS,
    "no B-frames, no macroblock tree": MP4_OPTIONS | _NO_MB_TREE,
    "B-frames, no macroblock tree": _B_FRAMES | _NO_MB_TREE,
    "B-frames, no macroblock tree, CRF 18": _B_FRAMES | _NO_MB_TREE | {"crf": "18"},
}
HISTORIES = {  # name: (environment, video decoded and held before writing)
    "fill 0": ({"MALLOC_PERTURB_": "0", "MALLOC_MMAP_THRESHOLD_": str(1 << 30)}, None),
    "fill 165": ({"MALLOC_PERTURB_": "165", "MALLOC_MMAP_THRESHOLD_": str(1 << 30)}, None),
    "480p read": ({}, (640, 480)),
    "1080p read": ({}, (1920, 1080)),
}


def encode(frames: np.ndarray, options: dict[str, str]) -> bytes:
    """`frames` (F, H, W, 3) encoded as `write_mp4` encodes them, with these x264 options."""
    out = io.BytesIO()
    with av.open(out, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.options = dict(options)
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return out.getvalue()


def psnr(data: bytes, frames: np.ndarray) -> float:
    with av.open(io.BytesIO(data)) as container:
        decoded = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    mse = float(((decoded.astype(np.float64) - frames) ** 2).mean())
    return 10 * np.log10(255**2 / mse)


def pan(width: int, height: int, frames: int) -> np.ndarray:
    """A pan over a random texture: (frames, height, width, 3)."""
    texture = np.random.default_rng(0).integers(0, 256, (height + 2 * frames, width + frames, 3), dtype=np.uint8)
    return np.stack([texture[2 * t : 2 * t + height, t : t + width] for t in range(frames)])


def ramps(width: int, height: int, frames: int) -> np.ndarray:
    """Moving colour ramps with a red box crossing them, drawn at 1920x1080 and scaled down to
    (frames, height, width, 3) as a run scales its input to the working size."""
    y, x = np.mgrid[0:1080, 0:1920]
    out = []
    for t in range(frames):
        img = np.stack([(x + t * 10) % 256, (y + t * 5) % 256, ((x + y) // 4) % 256], -1).astype(np.uint8)
        img[400:700, 300 + t * 10 : 600 + t * 10] = (220, 30, 30)
        out.append(resize_frames(img[None], width, height)[0])
    return np.stack(out)


CLIPS = {"a pan over a random texture": pan, "ramps and a box": ramps}


def one(args: list[str]) -> None:
    """In this process: decode and hold the video `held` (or "-"), then write the clip with a setting."""
    clip, width, height, frames, setting, held, path = args
    data = CLIPS[clip](int(width), int(height), int(frames))
    kept = read_video(held).frames if held != "-" else None  # noqa: F841 - held while the mp4 is written
    Path(path).write_bytes(encode(data, SETTINGS[setting]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", type=Path, help="folder of sample clips (one folder of frames each)")
    p.add_argument("--sizes", nargs="+", default=["64x64", "88x48", "296x296"], help="WxH of the written frames")
    p.add_argument("--frames", type=int, nargs="+", default=[8, 96])
    p.add_argument("--one", nargs=7, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        one(args.one)
        return
    print("| clip | setting | " + " | ".join(HISTORIES) + " | same file |")
    print("|---|---|" + "---|" * (len(HISTORIES) + 1))
    with tempfile.TemporaryDirectory() as d:
        held = {}
        for name, (_, size) in HISTORIES.items():
            if size is not None:  # 24 frames of moving ramps at that size
                y, x = np.mgrid[0 : size[1], 0 : size[0]]
                frames = [np.stack([(x + t * 10) % 256, (y + t * 5) % 256, (x + y) % 256], -1) for t in range(24)]
                held[name] = str(write_mp4([f.astype(np.uint8) for f in frames], Path(d) / f"{size[1]}.mp4", 24))
        for clip in CLIPS:
            for size in args.sizes:
                width, height = size.split("x")
                for n in args.frames:
                    for setting in SETTINGS:
                        files = []
                        for name, (env, _) in HISTORIES.items():
                            files.append(Path(d) / f"{name}.mp4")
                            cmd = [sys.executable, __file__, "--one", clip, width, height, str(n), setting]
                            cmd += [held.get(name, "-"), str(files[-1])]
                            subprocess.run(cmd, env={**os.environ, **env}, check=True)
                        names = {f.read_bytes(): i for i, f in enumerate(files)}  # first file of each content
                        cells = [chr(ord("A") + list(names).index(f.read_bytes())) for f in files]
                        same = "same" if len(names) == 1 else "**differ**"
                        print(
                            f"| {n} of {size}, {clip} | {setting} | " + " | ".join(cells) + f" | {same} |", flush=True
                        )
    if args.clips is None:
        return
    clips = {c.name: resize_frames(read_video(c).frames, 512, 512) for c in sorted(args.clips.iterdir()) if c.is_dir()}
    clips["ramps and a box"] = ramps(1920, 1080, 96)
    print("\n| clip | " + " | ".join(SETTINGS) + " |")
    print("|---|" + "---|" * len(SETTINGS))
    for name, frames in clips.items():
        cells = []
        for options in SETTINGS.values():
            started = time.perf_counter()
            data = encode(frames, options)
            seconds = time.perf_counter() - started
            cells.append(f"{len(data) / 1024:.0f} KiB, {psnr(data, frames):.2f} dB, {seconds:.1f} s")
        print(f"| {name} ({len(frames)} frames, {frames.shape[2]}x{frames.shape[1]}) | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
