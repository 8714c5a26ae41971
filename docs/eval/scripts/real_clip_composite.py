"""The authors' sample clips as phone-like input: an mp4 above the working size with a sound track,
edited on the bundled model with `videop2p run`; checks the output's size, frame rate and sound, and
how close it is to the input outside the blend mask (where it must be the input's own pixels).

    python docs/eval/scripts/real_clip_composite.py OUT [--clips rabbit car] [--side 480] [--fps 24]
        [any `videop2p run` flags, e.g. --tune-steps 100 --inversion fast]

The input frames are the clip's frames at SIDE x SIDE, written at FPS with a 440 Hz stereo tone. The
PSNR is over every pixel of every frame whose paste weight is 0, the decoded output mp4 against the
decoded input mp4 (both H.264); beside it, the same PSNR of the input merely encoded again as the
output is (the codec's own loss, the most the output can reach there), and, for scale, the PSNR over
the pixels the edit may change.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av

from videop2p.compositing import paste_weights
from videop2p.editing import load_edit_result
from videop2p.io.video import read_video, resize_frames
from videop2p.io.writing import write_mp4
from videop2p.metrics import psnr
from videop2p.models.loading import load_components
from videop2p.testing import write_mp4_with_tone

CLIPS = Path(__file__).resolve().parents[4] / "shared" / "data" / "videop2p-clips"
PROMPTS = {  # the authors' configs' prompts and blend words
    "rabbit": ("a rabbit is jumping on the grass", "a origami rabbit is jumping on the grass", "rabbit"),
    "car": ("a car is moving on the road", "a Porsche car is moving on the road", "car"),
    "penguin_ice": ("a penguin is walking on the ice", "a crochet penguin is walking on the ice", "penguin"),
    "motorbike": (
        "a man is driving a motorbike in the forest",
        "a Spider-Man is driving a motorbike in the forest",
        "man",
    ),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path)
    p.add_argument("--clips", nargs="+", default=["rabbit", "car"])
    p.add_argument("--side", type=int, default=480)
    p.add_argument("--fps", type=float, default=24.0)
    p.add_argument("--frames", type=int, default=8)
    args, extra = p.parse_known_args()  # the rest goes to `videop2p run`
    info = load_components(None).info
    print(
        "| clip | input | output | fps in / out | sound | PSNR outside the mask "
        "| the input re-encoded, same pixels | PSNR where the edit may change |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name in args.clips:
        root = args.out / name
        root.mkdir(parents=True, exist_ok=True)
        frames = read_video(CLIPS / name).frames
        frames = resize_frames(frames, args.side, args.side, "crop")
        source = root / "input.mp4"
        write_mp4_with_tone(source, frames, Fraction(args.fps).limit_denominator(1001))
        src, tgt, word = PROMPTS[name]
        cmd = [sys.executable, "-m", "videop2p.cli", "run", str(source), "--source", src, "--target", tgt]
        cmd += ["--blend", word, word, "--frames", str(args.frames), "--out", str(root / "out"), "--quiet"]
        subprocess.run([*cmd, *extra], check=True)
        manifest = json.loads((root / "out" / "outputs.json").read_text())
        entry = next(e["entry"] for e in manifest["workspace"] if e["stage"] == "edit")
        result = load_edit_result(entry)
        given = read_video(source, num_frames=args.frames)
        got = read_video(root / "out" / "edit_1.mp4")
        with av.open(str(root / "out" / "edit_1.mp4")) as c:
            sound = (
                f"{c.streams.audio[0].codec_context.name}, {c.streams.audio[0].rate} Hz" if c.streams.audio else "none"
            )
        work = tuple(manifest["size"])
        weights = paste_weights(result.masks[0], given.size, work, "crop", info.vae_scale_factor).numpy()
        keep = weights == 0  # (F, H, W)
        outside = psnr(got.frames, given.frames, keep)
        write_mp4(given.frames, root / "reencoded.mp4", given.fps)  # the codec alone: the input encoded again
        ceiling = psnr(read_video(root / "reencoded.mp4").frames, given.frames, keep)
        inside = psnr(got.frames, given.frames, ~keep) if (~keep).any() else float("nan")
        print(
            f"| {name} | {given.size[0]}x{given.size[1]} | {got.size[0]}x{got.size[1]} | {given.fps:g} / {got.fps:g} | "
            f"{sound} | {outside:.1f} dB over {keep.mean():.0%} of the pixels | {ceiling:.1f} dB | {inside:.1f} dB |",
            flush=True,
        )


if __name__ == "__main__":
    main()
