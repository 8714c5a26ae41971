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

from videop2p.demo import DEMO_EDITS, DemoSettings, demo_config, edit_overlap, run_demo
from videop2p.pipeline import VideoP2P


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="Demo output folder (run there first when it has no clip).")
    parser.add_argument("--factors", type=float, nargs="+", default=[2.0, 4.0, 8.0], help="Reweighting of 'big'.")
    parser.add_argument("--json", default=None, help="Also write the figures here.")
    args = parser.parse_args()
    out = Path(args.out)
    if not (out / "clip").exists():
        print(run_demo(out, DemoSettings(quiet=True)))
    target, base = DEMO_EDITS["reweight"]
    vp = VideoP2P.from_pretrained(None, workspace=out / "workspace")
    result = {}
    for frame_control in (False, True):
        for factor in args.factors:
            name = f"big_x{factor:g}" + ("_frame_control" if frame_control else "")
            edit_cfg = dataclasses.replace(base, reweight={"big": factor}, control_frame_attention=frame_control)
            vp.run(demo_config(out / "clip", out / name, target, edit_cfg, DemoSettings(quiet=True)))
            row = result[name] = edit_overlap(out / name)
            print(
                f"{name}: source covered {min(row['covered']):.1%} in the lowest frame, "
                f"{sum(row['covered']) / len(row['covered']):.1%} on average; area {min(row['area_ratio']):.2f}-"
                f"{max(row['area_ratio']):.2f} of the source's; lowest IoU {min(row['iou']):.2f}"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
