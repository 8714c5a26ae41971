"""The demo's three edits in one pass, each target with its own blend pair, against three runs and one shared pair.

Runs the demo (or reuses one already run into OUT: its tuning and inversion are read from OUT's
workspace), then edits the demo's clip once with all three of its targets, each with the pair its own
run uses (`--blend circle,grass,circle circle,snow,circle`), and once with the colour swap's pair for
all three (`--blend circle circle`, what a run could do before pairs per target). For each target it
prints the largest difference from the demo's own run of that edit (8-bit pixels of the edits' GIFs),
the frames whose background the toy world's checker reads as the target's, the lowest IoU of the
edited object with the source's, and the edit stage's seconds; and which targets were warned about.

    python bench/multi_target_blend.py --out runs/demo            # run the demo first
    python bench/multi_target_blend.py --out runs/demo --no-run   # reuse a demo already in runs/demo
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

from videop2p.demo import DEMO_CLIP, DEMO_EDITS, DemoSettings, demo_config, run_demo
from videop2p.evaluation import iou
from videop2p.io.video import read_video
from videop2p.pipeline import VideoP2P
from videop2p.toy.checker import read_image
from videop2p.toy.world import parse_caption, render_clip


def one_pass(vp: VideoP2P, out: Path, name: str, blend) -> dict:
    """Every demo target edited in one run into out/name with `blend`; its manifest (with the edit's warnings)."""
    edits = list(DEMO_EDITS.values())
    first = edits[0][1]
    cfg = demo_config(out / "clip", out / name, edits[0][0], first, DemoSettings(quiet=True))
    cfg.targets = [target for target, _ in edits]
    reweight = {word: f for _, edit in edits for word, f in edit.reweight.items()}  # each applies where it occurs
    cfg.edit = dataclasses.replace(first, blend=blend, reweight=reweight)
    return vp.run(cfg)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="Demo output folder.")
    parser.add_argument("--no-run", action="store_true", help="Reuse the demo already in --out.")
    parser.add_argument("--json", default=None, help="Also write the figures here.")
    args = parser.parse_args()
    out = Path(args.out)
    if not args.no_run:
        print(run_demo(out, DemoSettings(quiet=True)))
    vp = VideoP2P.from_pretrained(None, workspace=out / "workspace")
    own = [edit.blend for _, edit in DEMO_EDITS.values()]
    runs = {"own pairs": own, "one shared pair": own[0]}
    source = render_clip(DEMO_CLIP).masks[:, 0]  # (F, H, W) the source object's pixels
    result = {}
    for label, blend in runs.items():
        name = label.replace(" ", "_")
        manifest = one_pass(vp, out, name, blend)
        warnings = manifest["warnings"]
        rows = []
        for k, (edit, (target, _)) in enumerate(DEMO_EDITS.items(), start=1):
            frames = read_video(out / name / f"edit_{k}.gif").frames.astype(int)
            alone = read_video(out / edit / "edit_1.gif").frames.astype(int)
            readings = [read_image(f.astype(np.uint8)) for f in frames]
            want = parse_caption(target)[1]
            backgrounds = sum(r.background is want for r in readings)
            lowest = min(iou(r.mask, m) for r, m in zip(readings, source, strict=True))
            rows.append(
                {
                    "target": target,
                    "largest difference from its own run": int(np.abs(frames - alone).max()),
                    "frames with the target's background": f"{backgrounds} of {len(frames)}",
                    "lowest IoU": round(lowest, 3),
                    "warned": any(f"Target {k} changes" in w for w in warnings),
                }
            )
        seconds = manifest["stages"]["edit"]["seconds"]
        separate = sum(
            json.loads((out / e / "outputs.json").read_text())["stages"]["edit"]["seconds"] for e in DEMO_EDITS
        )
        result[label] = {"blend": blend, "edit seconds": round(seconds, 1), "rows": rows}
        flag = " ".join(",".join(w) for w in zip(*blend, strict=True)) if isinstance(blend, list) else " ".join(blend)
        print(
            f"{label} (--blend {flag}): edit {seconds:.1f} s in one pass; the demo's three runs' edits {separate:.1f} s"
        )
        for row in rows:
            print("  " + "; ".join(f"{k}: {v}" for k, v in row.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
