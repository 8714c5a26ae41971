"""What each of `write_video`'s containers costs: size, PSNR against the frames written, time, and whether
the same frames give the same file.

Each sample clip is read at its own size and written as .mp4, .mov and .mkv (x264, `MP4_OPTIONS`) and as
.webm (VP9, `VP9_OPTIONS`, at each --webm-crf asked for); each file is written twice and read back. The
PSNR is over the clip's own pixels (an mp4 of odd sides holds one padded row or column more, left out).
The .webm's default crf is the one whose PSNR is nearest the mp4's.

    python bench/video_writers.py --clips ../shared/data/videop2p-clips
    python bench/video_writers.py --clips ../shared/data/videop2p-clips --webm-crf 20 16 12
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from videop2p.io import writing
from videop2p.io.video import read_video
from videop2p.metrics import video_psnr


def measure(frames: np.ndarray, fps: float, path: Path) -> dict:
    """Write `frames` to `path` twice: seconds of the first, its bytes, its PSNR read back, the same file."""
    start = time.perf_counter()
    writing.write_video(frames, path, fps)
    seconds = time.perf_counter() - start
    first = path.read_bytes()
    writing.write_video(frames, path, fps)
    height, width = frames.shape[1:3]
    back = read_video(path).frames[:, :height, :width]  # (F, H, W, 3): an odd side's padding left out
    return {
        "seconds": seconds,
        "bytes": len(first),
        "psnr": video_psnr(back, frames),
        "same": first == path.read_bytes(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=Path, required=True, help="a folder of clips (video files or frame folders)")
    parser.add_argument("--webm-crf", type=int, nargs="*", default=[], help="VP9 crfs to try besides the default")
    args = parser.parse_args()
    default_crf = writing.VP9_OPTIONS["crf"]
    print(f"{'clip':<14} {'file':<14} {'size':>9} {'PSNR dB':>8} {'write s':>8}  same file twice")
    with tempfile.TemporaryDirectory() as tmp:
        for clip in sorted(p for p in args.clips.iterdir() if not p.name.startswith(".")):
            video = read_video(clip)
            rows = [(suffix, None) for suffix in writing.CONTAINERS]
            rows += [(".webm", str(crf)) for crf in args.webm_crf if str(crf) != default_crf]
            for suffix, crf in rows:
                writing.VP9_OPTIONS["crf"] = crf or default_crf  # this script's own trial of the constant
                label = suffix + (f" crf {crf}" if crf else "")
                m = measure(video.frames, video.fps, Path(tmp) / f"out{suffix}")
                print(
                    f"{clip.name:<14} {label:<14} {m['bytes']:>9} {m['psnr']:>8.2f} {m['seconds']:>8.2f}  "
                    f"{'yes' if m['same'] else 'NO'}"
                )
            writing.VP9_OPTIONS["crf"] = default_crf
    print(f"(.webm without a crf: the default, {default_crf})")


if __name__ == "__main__":
    main()
