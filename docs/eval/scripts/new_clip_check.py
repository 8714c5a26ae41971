"""A new user's check of issue 23: toy clips that are not in the suite, edited with `videop2p run` defaults.

python docs/eval/scripts/new_clip_check.py --out OUT [--seeds 101 102] [--model FOLDER] [--json OUT.json]

Renders one clip per seed ("a red circle moving on the grass", the seed draws its path), writes it as
frames, and runs what the issue ran: `--source "a red circle moving on the grass" --target "a blue circle
moving on the grass" --blend circle circle` and nothing else (official defaults: 500 tuning steps,
null-text, 50 steps). Then, per frame, the edited object's IoU with the source object as the toy
world's checker reads it, whether it is blue, and the background PSNR outside the source object
(dilated by 4 px, as `videop2p eval` measures it).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from typer.testing import CliRunner

from videop2p.cli import app
from videop2p.demo import DEMO_CLIP, DEMO_EDITS, DEMO_SOURCE
from videop2p.evaluation import dilate, iou
from videop2p.io.video import read_video
from videop2p.io.writing import write_frames
from videop2p.metrics import psnr
from videop2p.toy.checker import read_image
from videop2p.toy.world import Color, render_clip

SOURCE, TARGET = DEMO_SOURCE, DEMO_EDITS["swap"][0]  # the prompts: the demo's colour swap


def check(out: Path, seed: int, model: str | None) -> dict:
    clip = render_clip(dataclasses.replace(DEMO_CLIP, seed=seed))  # the demo's clip on another path
    frames_dir = write_frames(clip.frames, out / f"clip{seed}")
    args = ["run", str(frames_dir), "--source", SOURCE, "--target", TARGET, "--blend", "circle", "circle"]
    args += ["--out", str(out / f"edit{seed}"), "--quiet"] + (["--model", model] if model else [])
    t0 = time.perf_counter()
    result = CliRunner().invoke(app, args)
    if result.exit_code != 0:
        raise SystemExit(result.output)
    edited = read_video(out / f"edit{seed}" / "edit_1.gif").frames  # (F, H, W, 3)
    masks = clip.masks[:, 0]  # (F, H, W)
    found = [read_image(f) for f in edited]
    ious = [iou(r.mask, m) for r, m in zip(found, masks, strict=True)]
    background = ~dilate(masks, 4)
    return {
        "seed": seed,
        "frame_iou": ious,
        "frames_blue": sum(r.color == Color.BLUE for r in found),
        "frames_in_place": sum(x >= 0.5 for x in ious),
        "background_psnr": psnr(edited, clip.frames, background),
        "seconds": time.perf_counter() - t0,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[101, 102])
    p.add_argument("--model", default=None, help="Model folder (default: the bundled toy model).")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    rows = []
    for seed in args.seeds:
        rows.append(check(args.out, seed, args.model))
        r = rows[-1]
        print(
            f"seed {seed}: IoU per frame {' '.join(f'{x:.2f}' for x in r['frame_iou'])} (lowest "
            f"{min(r['frame_iou']):.2f}); blue in {r['frames_blue']} of {len(r['frame_iou'])} frames, in place "
            f"(IoU >= 0.5) in {r['frames_in_place']}; background {r['background_psnr']:.1f} dB; {r['seconds']:.0f} s",
            flush=True,
        )
        if args.json:
            args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
