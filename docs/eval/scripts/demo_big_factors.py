"""The demo's "big" edit at other reweighting factors, with and without frame-attention control.

Runs `videop2p demo` into OUT once (its workspace keeps the tuning and inversion), then edits the same
clip into "a big red circle moving on the grass" with "big" reweighted by each factor, and reads how
much of the source object each frame's edited object covers (issue 23 asks that it contain it), its
area against the source's, and its IoU.

    python docs/eval/scripts/demo_big_factors.py --out runs/demo --json OUT.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from videop2p.config import RunConfig
from videop2p.demo import DEMO_CLIP, DEMO_EDITS, DEMO_SOURCE, DEMO_TUNE_STEPS, covered, run_demo
from videop2p.evaluation import iou
from videop2p.io.video import read_video
from videop2p.pipeline import VideoP2P
from videop2p.toy.checker import read_image
from videop2p.toy.world import render_clip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="Demo output folder (run there first when it has no clip).")
    parser.add_argument("--factors", type=float, nargs="+", default=[2.0, 4.0, 8.0], help="Reweighting of 'big'.")
    parser.add_argument("--json", default=None, help="Also write the figures here.")
    args = parser.parse_args()
    out = Path(args.out)
    if not (out / "clip").exists():
        print(run_demo(out, quiet=True))
    target, base = DEMO_EDITS["reweight"]
    vp = VideoP2P.from_pretrained(None, workspace=out / "workspace")
    source = render_clip(DEMO_CLIP).masks[:, 0]  # (F, H, W)
    result = {}
    for frame_control in (False, True):
        for factor in args.factors:
            name = f"big_x{factor:g}" + ("_frame_control" if frame_control else "")
            cfg = RunConfig(source=DEMO_SOURCE, targets=[target], out=str(out / name), quiet=True)
            cfg.video.path, cfg.video.frames = str(out / "clip"), DEMO_CLIP.frames
            cfg.tune.steps = DEMO_TUNE_STEPS
            cfg.edit = dataclasses.replace(base, reweight={"big": factor}, control_frame_attention=frame_control)
            vp.run(cfg)
            found = [read_image(f).mask for f in read_video(out / name / "edit_1.gif").frames]
            row = {
                "covered": [covered(a, b) for a, b in zip(found, source, strict=True)],
                "area_ratio": [float(a.sum() / b.sum()) for a, b in zip(found, source, strict=True)],
                "iou": [iou(a, b) for a, b in zip(found, source, strict=True)],
            }
            result[name] = row
            print(
                f"{name}: source covered {min(row['covered']):.1%} in the lowest frame, "
                f"{sum(row['covered']) / len(found):.1%} on average; area {min(row['area_ratio']):.2f}-"
                f"{max(row['area_ratio']):.2f} of the source's; lowest IoU {min(row['iou']):.2f}"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
