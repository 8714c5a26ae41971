"""Whether an edit's picture and sound stay in step, on clips that test it.

Each test clip has a flash (every frame from one on is white) and a bang (a tone from silence) at
the same moment. `vfr`: frames not evenly spaced (the middle ones twice as far apart, as a phone
records in low light); `offset`: a video stream that starts 0.5 s after its sound; `both`. Each is
edited by `videop2p run` with the bundled model at the smallest budget, and this prints, for the
input and for the edit, when the flash is shown and when the bang is heard (from the first frame),
and how far apart they are.

    python bench/av_sync.py --out OUT
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

RATE, SOUND_RATE, FLASH = 8, 16000, 7  # frames per second (nominal), audio samples per second, flash frame
EVEN = list(range(16))
UNEVEN = [0, 1, 2, 3, 5, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23]  # frames 4-11 twice as far apart


def write_clip(path: Path, pts: list[int], video_start: int) -> float:
    """A 64x64 clip, frame i shown at (video_start + pts[i]) / RATE s, with a tone from the flash's
    time on; returns that time."""
    bang = (video_start + pts[FLASH]) / RATE
    with av.open(str(path), "w") as c:
        video = c.add_stream("libx264", rate=RATE)
        video.width, video.height, video.pix_fmt, video.options = 64, 64, "yuv420p", {"bf": "0"}
        sound = c.add_stream("aac", rate=SOUND_RATE, layout="mono")
        for i, p in enumerate(pts):
            rgb = np.full((64, 64, 3), 255 if i >= FLASH else (40, 120, 40), np.uint8)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = video_start + p, Fraction(1, RATE)
            c.mux(video.encode(frame))
        c.mux(video.encode())
        t = np.arange(int(SOUND_RATE * (video_start + pts[-1] + 2) / RATE)) / SOUND_RATE
        tone = np.where(t >= bang, 0.5 * np.sin(2 * np.pi * 440 * t), 0).astype(np.float32)
        for k in range(0, len(tone), 1024):
            chunk = av.AudioFrame.from_ndarray(tone[None, k : k + 1024], format="flt", layout="mono")
            chunk.sample_rate, chunk.pts, chunk.time_base = SOUND_RATE, k, Fraction(1, SOUND_RATE)
            c.mux(sound.encode(chunk))
        c.mux(sound.encode())
    return bang


def flash_and_bang(path: Path) -> tuple[float, float]:
    """When the flash is shown and the bang is heard in a file, in seconds from its first frame."""
    with av.open(str(path)) as c:
        frames = [(f.time, f.to_ndarray(format="rgb24").mean()) for f in c.decode(c.streams.video[0])]
    with av.open(str(path)) as c:
        samples = [(f.time, f.to_ndarray()[0]) for f in c.decode(c.streams.audio[0])]
    first = frames[0][0]
    flash = next(t for t, mean in frames if mean > 200) - first
    bang = next(t + np.argmax(np.abs(s) > 0.1) / SOUND_RATE for t, s in samples if (np.abs(s) > 0.1).any()) - first
    return flash, bang


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for the clips and their edits")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"{'clip':8s} {'':6s} {'flash s':>8s} {'bang s':>8s} {'apart ms':>9s}")
    for name, pts, start in (("vfr", UNEVEN, 0), ("offset", EVEN, 4), ("both", UNEVEN, 4)):
        clip = args.out / f"{name}.mp4"
        write_clip(clip, pts, start)
        edit = args.out / f"{name}-edit"
        subprocess.run(
            [sys.executable, "-m", "videop2p.cli", "run", str(clip), "--frames", "12", "--quiet",
             "--source", "a red circle moving on the grass", "--target", "a blue circle moving on the grass",
             "--tune-steps", "1", "--steps", "2", "--inversion", "fast", "--out", str(edit)],
            check=True, capture_output=True,
        )  # fmt: skip
        for label, path in (("input", clip), ("edit", edit / "edit_1.mp4")):
            flash, bang = flash_and_bang(path)
            print(f"{name:8s} {label:6s} {flash:8.3f} {bang:8.3f} {1000 * (bang - flash):9.0f}")


if __name__ == "__main__":
    main()
