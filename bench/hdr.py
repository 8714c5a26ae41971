"""Time of reading an HDR frame as an SDR screen shows it (`io.hdr.hdr_to_sdr`), per frame.

Frames of random 16-bit R'G'B' codes at the sizes given, PQ and HLG (HLG's OOTF mixes the channels
and costs more). Prints the median seconds per frame of `--repeats` runs for each size and transfer.
With `--clip`, also a clip's read for a working size (`read_video` with the resize `load_clip` does):
a lossless 10-bit HLG clip of `--frames` frames at `--clip` size (a gradient with noise, written
here), read whole and resized, and read with `small` (each frame at twice the size that covers the
working size, then tone-mapped and resized); prints the seconds per frame of each, the median of
`--repeats` reads, and how far apart the two reads' frames are.

    python bench/hdr.py                                  # 1920x1080 and 3840x2160
    python bench/hdr.py --sizes 1280x720 --repeats 9
    python bench/hdr.py --sizes --clip 3840x2160 --work 512x512 --frames 8
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from videop2p.io.hdr import HLG, PQ, hdr_to_sdr
from videop2p.io.video import read_video, resize_frames


def _hlg_clip(path: Path, width: int, height: int, frames: int) -> None:
    """A lossless FFV1 clip of 10-bit BT.2020 HLG Y'CbCr: a diagonal gradient with noise, tagged as a phone tags it."""
    rng = np.random.default_rng(0)
    y = np.add.outer(np.linspace(64, 700, height), np.linspace(0, 240, width))  # (H, W) 10-bit luma
    with av.open(str(path), "w") as c:
        s = c.add_stream("ffv1", rate=30)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p10le"
        s.codec_context.color_primaries, s.codec_context.color_trc, s.codec_context.colorspace = 9, HLG, 9
        for i in range(frames):
            frame = av.VideoFrame(width, height, "yuv420p10le")
            frame.pts = i
            luma = np.clip(y + rng.normal(0, 8, y.shape), 64, 940).astype(np.uint16)
            chroma = np.full((height // 2, width // 2), 512, np.uint16)
            for plane, values in zip(frame.planes, (luma, chroma, chroma + 40), strict=True):
                rows = np.zeros((values.shape[0], plane.line_size // 2), np.uint16)  # (H, padded W)
                rows[:, : values.shape[1]] = values
                plane.update(rows.astype("<u2").tobytes())
            c.mux(s.encode(frame))
        c.mux(s.encode())


def clip_read(size: str, work: str, frames: int, repeats: int) -> None:
    width, height = (int(v) for v in size.split("x"))
    work_size = tuple(int(v) for v in work.split("x"))

    def resize(frame):
        return resize_frames(frame[None], *work_size)[0]

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "hlg.mkv"
        _hlg_clip(path, width, height, frames)
        got = {}
        for name, small in (("whole, then resized", None), ("small", work_size)):
            seconds = []
            for _ in range(repeats):
                start = time.perf_counter()
                got[name] = read_video(path, transform=resize, small=small).frames
                seconds.append(time.perf_counter() - start)
            print(f"{size} HLG clip read for {work}, {name}: {statistics.median(seconds) / frames:.3f} s per frame")
    apart = np.abs(got["small"].astype(int) - got["whole, then resized"].astype(int))
    print(f"  the two reads' frames: mean {apart.mean():.2f} levels apart, at most {apart.max()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="*", default=["1920x1080", "3840x2160"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--clip", help="WxH of a clip to read for --work, e.g. 3840x2160")
    parser.add_argument("--work", default="512x512")
    parser.add_argument("--frames", type=int, default=8)
    args = parser.parse_args()
    if args.clip:
        clip_read(args.clip, args.work, args.frames, args.repeats)
    rng = np.random.default_rng(0)
    for size in args.sizes:
        width, height = (int(v) for v in size.split("x"))
        codes = rng.integers(0, 65536, (height, width, 3), dtype=np.uint16)  # (H, W, 3)
        for name, transfer in (("PQ", PQ), ("HLG", HLG)):
            seconds = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                hdr_to_sdr(codes, transfer)
                seconds.append(time.perf_counter() - start)
            print(f"{size} {name}: {statistics.median(seconds):.3f} s per frame")


if __name__ == "__main__":
    main()
