"""The demo's "big" edit at other reweighting factors, with and without frame-attention control, and
at other local-blend thresholds.

Runs `videop2p demo` into OUT once (its workspace keeps the tuning and inversion), then edits the same
clip into "a big red circle moving on the grass" with "big" reweighted by each factor (and, with
`--thresholds`, at the demo's factor with each threshold), and reads how much of the source object each
frame's edited object covers (issue 23 asks that it contain it), its area against the source's, and its
IoU; the same for the demo's reconstruction, the most an edit of the same size can keep.

    python docs/eval/scripts/demo_big_factors.py --out runs/demo --json OUT.json
    python docs/eval/scripts/demo_big_factors.py --out runs/demo --factors --thresholds 0.3 0.5 0.7 0.9
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
    parser.add_argument("--factors", type=float, nargs="*", default=[2.0, 4.0, 8.0], help="Reweighting of 'big'.")
    parser.add_argument(
        "--thresholds", type=float, nargs="*", default=[], help="Blend thresholds, at the demo's factor."
    )
    parser.add_argument("--json", default=None, help="Also write the figures here.")
    args = parser.parse_args()
    out = Path(args.out)
    if not (out / "clip").exists():
        print(run_demo(out, DemoSettings(quiet=True)))
    target, base = DEMO_EDITS["reweight"]
    vp = VideoP2P.from_pretrained(None, workspace=out / "workspace")
    runs = {  # name: the demo's edit with these changes
        f"big_x{factor:g}" + ("_frame_control" if control else ""): {
            "reweight": {"big": factor},
            "control_frame_attention": control,
        }
        for control in (False, True)
        for factor in args.factors
    }
    runs.update({f"big_threshold{t:g}": {"threshold": t} for t in args.thresholds})
    result = {"reconstruction": edit_overlap(out / "reweight", video="reconstruction.gif")}
    _report("reconstruction", result["reconstruction"])
    for name, changes in runs.items():
        vp.run(
            demo_config(
                out / "clip", out / name, target, dataclasses.replace(base, **changes), DemoSettings(quiet=True)
            )
        )
        result[name] = edit_overlap(out / name)
        _report(name, result[name])
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


def _report(name: str, row: dict) -> None:
    print(
        f"{name}: source covered {min(row['covered']):.1%} in the lowest frame, "
        f"{sum(row['covered']) / len(row['covered']):.1%} on average; area {min(row['area_ratio']):.2f}-"
        f"{max(row['area_ratio']):.2f} of the source's; lowest IoU {min(row['iou']):.2f}"
    )


if __name__ == "__main__":
    main()
