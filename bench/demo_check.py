"""Does `videop2p demo` keep the object in place? Per-frame overlap of each demo edit with the source object.

Runs the demo (or reads the outputs of one already run into OUT), finds the object in every frame of
each edit's GIF with the toy world's checker, and compares it with the source clip's ground-truth mask:
IoU for the colour swap and the background refinement, and for the "big" reweighting how much of the
source object the edited one covers (an object made bigger contains the old one). Issue 23's bar is
IoU >= 0.8 in every frame, and containment for the bigger circle.

    python bench/demo_check.py --out runs/demo            # run the demo, then check it
    python bench/demo_check.py --out runs/demo --no-run   # check a demo already run there
    python bench/demo_check.py --out runs/demo --no-run --picture docs/demo_side_by_side.png   # the README's picture
    python bench/demo_check.py --out runs/small --object-size small   # the demo on a small circle (a study)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

from videop2p.demo import DEMO_CLIP, DEMO_EDITS, DemoSettings, edit_overlap, edit_overlaps, run_demo
from videop2p.io.video import read_video
from videop2p.outputs import write_png
from videop2p.toy.world import Size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="Demo output folder.")
    parser.add_argument("--no-run", action="store_true", help="Check the outputs already in --out.")
    parser.add_argument("--model", default=None, help="Model folder (default: the bundled toy model).")
    parser.add_argument("--json", default=None, help="Also write the figures here.")
    parser.add_argument("--picture", default=None, help="Write the README's picture here (4 frames of each edit).")
    parser.add_argument(
        "--object-size", choices=["small", "big"], default=None, help="The circle's size (default: the demo's)."
    )
    args = parser.parse_args()
    out = Path(args.out)
    clip = DEMO_CLIP
    if args.object_size:
        clip = dataclasses.replace(
            clip, objects=[dataclasses.replace(o, size=Size(args.object_size)) for o in clip.objects]
        )
    if not args.no_run:
        print(run_demo(out, DemoSettings(model=args.model, quiet=True, clip=clip)))
    result = edit_overlaps(out, clip)
    # the reconstruction (every edit's is the same): the most an edit of the source's size can keep
    result["reconstruction"] = edit_overlap(out / next(iter(result)), clip, video="reconstruction.gif")
    for name, r in result.items():
        ious, cover = r["iou"], r["covered"]
        print(
            f"{name:14s} IoU per frame {' '.join(f'{x:.2f}' for x in ious)}  (lowest {min(ious):.2f}); "
            f"source covered {min(cover):.1%} at least"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    if args.picture:
        write_png(picture(out), Path(args.picture))


def picture(out: Path, columns: int = 4, gap: int = 6) -> np.ndarray:
    """One row per demo edit: `columns` frames of its side-by-side (source, reconstruction, edit), evenly
    spread, with a white `gap` between frames and between rows."""
    rows = []
    for name in DEMO_EDITS:
        grid = read_video(out / name / "side_by_side.gif").frames  # (F, H, W, 3)
        picks = np.linspace(0, len(grid) - 1, columns).round().astype(int)
        space = np.full((grid.shape[1], gap, 3), 255, dtype=np.uint8)
        rows.append(np.concatenate([part for i in picks for part in (space, grid[i])][1:], axis=1))
    space = np.full((gap, rows[0].shape[1], 3), 255, dtype=np.uint8)
    return np.concatenate([part for row in rows for part in (space, row)][1:], axis=0)


if __name__ == "__main__":
    main()
