"""Whether the same frames give the same mp4, and what the writer's x264 settings cost.

x264's macroblock-tree rate control, when it plans B-frames, reads memory it has not set at most
frame sizes, so one clip's mp4 depended on what its process had allocated before (two runs of the
same edit wrote different files). This writes the same frames in fresh processes whose allocations
glibc fills with different bytes (MALLOC_PERTURB_), with x264's default B-frames and without them
(`write_mp4`'s setting), and prints whether the files are the same; then each sample clip's size and
PSNR against its frames with both settings (`write_mp4`'s CRF 16 and one thread).

    python bench/mp4_reproducible.py --clips ../shared/data/videop2p-clips
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import av
import numpy as np

from videop2p.io.video import MP4_OPTIONS, read_video, resize_frames

_X264_DEFAULT = {k: v for k, v in MP4_OPTIONS.items() if k != "bf"}  # write_mp4's, with x264's B-frames
SETTINGS = {
    "x264's default B-frames": _X264_DEFAULT,
    "no B-frames (write_mp4)": MP4_OPTIONS,
    "B-frames, no macroblock tree": {**_X264_DEFAULT, "x264-params": "mbtree=0"},
}


def encode(frames: np.ndarray, options: dict[str, str]) -> bytes:
    """`frames` (F, H, W, 3) encoded as `write_mp4` encodes them, with these x264 options."""
    out = io.BytesIO()
    with av.open(out, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=8)
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


def pan(side: int, frames: int = 8) -> np.ndarray:
    """A pan over a random texture: (frames, side, side, 3)."""
    texture = np.random.default_rng(0).integers(0, 256, (side + 2 * frames, side + frames, 3), dtype=np.uint8)
    return np.stack([texture[2 * t : 2 * t + side, t : t + side] for t in range(frames)])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", type=Path, help="folder of sample clips (one folder of frames each)")
    p.add_argument("--sides", type=int, nargs="+", default=[64, 296, 512])
    p.add_argument("--one", nargs=3, help=argparse.SUPPRESS)  # side, setting, output path
    args = p.parse_args()
    if args.one:
        side, setting, path = args.one
        Path(path).write_bytes(encode(pan(int(side)), SETTINGS[setting]))
        return
    print("| frames | setting | same file in processes with allocations filled with 0 / 165 / 33 |")
    print("|---|---|---|")
    with tempfile.TemporaryDirectory() as d:
        for side in args.sides:
            for setting in SETTINGS:
                files = []
                for byte in ("0", "165", "33"):
                    env = {**os.environ, "MALLOC_PERTURB_": byte, "MALLOC_MMAP_THRESHOLD_": str(1 << 30)}
                    files.append(Path(d) / f"{side}-{byte}.mp4")
                    cmd = [sys.executable, __file__, "--one", str(side), setting, str(files[-1])]
                    subprocess.run(cmd, env=env, check=True)
                same = len({f.read_bytes() for f in files}) == 1
                print(f"| 8 of {side}x{side} (a pan) | {setting} | {'same' if same else 'differ'} |", flush=True)
    if args.clips is None:
        return
    print("\n| clip (8 frames at 512x512) | " + " | ".join(SETTINGS) + " |")
    print("|---|" + "---|" * len(SETTINGS))
    for clip in sorted(c for c in args.clips.iterdir() if c.is_dir()):
        frames = resize_frames(read_video(clip, num_frames=8).frames, 512, 512)
        cells = []
        for options in SETTINGS.values():
            data = encode(frames, options)
            cells.append(f"{len(data) / 1024:.0f} KiB, {psnr(data, frames):.2f} dB")
        print(f"| {clip.name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
