"""Run eval cases again with only the background changed: is a failure the object or its contrast?

python docs/eval/scripts/contrast_check.py 10:snow 10:sand 15:grass [--model FOLDER] [--tune-steps 200]
       [--steps 50] [--out DIR]
python docs/eval/scripts/contrast_check.py --tables docs/eval/bundled/cases_*.csv [--min-contrast 140]

Each argument is CASE:BACKGROUND. The case keeps its clip (shape, colours, motion, seed) and edit,
and is rendered on the named background, with the background word of both prompts changed to it.
Video-P2P (null-text, default budget) edits it; the script prints the judge's verdict and the RGB
distance of the source and target colours from the background, and with `--out` writes a strip
per case (source above, edit below).

With `--tables`, it reads eval case tables instead and counts, per method, the colour-changing edits
(colour swaps, refinements, reweightings) that succeeded where both colours lie at least
`--min-contrast` from the background, and where one lies closer.
"""

from __future__ import annotations

import argparse
import csv
from dataclasses import replace
from pathlib import Path

import numpy as np

from videop2p.evaluation import Case, EvalSettings, Method, make_suite, run_case, save_strip
from videop2p.models.loading import bundled_model_path, load_components
from videop2p.toy.world import BACKGROUND_RGB, COLOR_RGB, Background, Color, render_clip


def contrast(color: Color, background: Background) -> float:
    """RGB distance between an object colour and a background's base colour."""
    return float(np.linalg.norm(np.subtract(COLOR_RGB[color], BACKGROUND_RGB[background])))


def on_background(case: Case, background: Background) -> Case:
    """The object edit with its clip and both prompts moved onto `background`."""
    if "background" in case.want:
        raise SystemExit(f"case {case.source!r} -> {case.target!r} swaps the background; pick an object edit")
    spec = replace(case.spec, background=background)
    old, new = f"the {case.spec.background.value}", f"the {background.value}"
    return replace(case, spec=spec, source=case.source.replace(old, new), target=case.target.replace(old, new))


def by_contrast(tables: list[Path], threshold: float) -> None:
    """Successes of the colour-changing edits per method, split by the lower of the two contrasts."""
    rows = [r for t in tables for r in csv.DictReader(t.open())]
    suite = make_suite(1 + max(int(r["case"]) for r in rows))  # the suite's first cases do not depend on its size
    low, high = [], []
    for i, case in enumerate(suite):
        if set(case.want) != {"color"}:  # colour swaps, refinements and reweightings only
            continue
        bg = case.spec.background
        lowest = min(contrast(case.spec.objects[0].color, bg), contrast(Color(case.want["color"]), bg))
        (low if lowest < threshold else high).append(i)
    print(f"colour-changing edits with a colour under {threshold:.0f} from the background: cases {low}")
    print(f"| method | under {threshold:.0f} | at least {threshold:.0f} |")
    print("|---|---|---|")
    for method in dict.fromkeys(r["method"] for r in rows):
        ok = {int(r["case"]): float(r["edit_success"]) >= 1.0 for r in rows if r["method"] == method}
        n_low, n_high = [sum(ok[i] for i in part if i in ok) for part in (low, high)]
        print(f"| {method} | {n_low} of {sum(i in ok for i in low)} | {n_high} of {sum(i in ok for i in high)} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="*", help="CASE:BACKGROUND, e.g. 10:snow")
    p.add_argument("--tables", type=Path, nargs="+", default=None, help="eval cases.csv files to count by contrast")
    p.add_argument("--min-contrast", type=float, default=140.0)
    p.add_argument("--model", default=None, help="model folder (default: the bundled toy model)")
    p.add_argument("--tune-steps", type=int, default=200)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--out", type=Path, default=None, help="folder for the strips")
    args = p.parse_args()
    if args.tables:
        by_contrast(args.tables, args.min_contrast)
        return
    if not args.runs:
        p.error("give CASE:BACKGROUND runs (e.g. 10:snow) or --tables CSV ...")
    comps = load_components(args.model or str(bundled_model_path()))
    suite = make_suite(1 + max(int(run.split(":")[0]) for run in args.runs))
    settings = EvalSettings(tune_steps=args.tune_steps, steps=args.steps, methods=[Method.VIDEO_P2P])
    print("| case | source -> target | contrast (source, target) | frames right | IoU | background |")
    print("|---|---|---|---|---|---|")
    for run in args.runs:
        index, name = run.split(":")
        case = on_background(suite[int(index)], Background(name))
        clip = render_clip(case.spec)
        m = run_case(comps, case, settings, clip=clip)[Method.VIDEO_P2P.value]
        if args.out:
            save_strip(m["frames"], args.out / f"case{index}_{name}.png", clip.frames)
        src = case.spec.objects[0].color
        tgt = Color(case.want.get("color", src.value))
        bg = case.spec.background
        verdict = "right" if m["edit_success"] else "wrong"
        print(
            f"| {index} on {name} | {src.value} -> {tgt.value} {case.spec.objects[0].shape.value} "
            f"| {contrast(src, bg):.0f}, {contrast(tgt, bg):.0f} | {m['frames_right']:.0%} ({verdict}) "
            f"| {m['object_iou']:.2f} | {m['background_psnr']:.1f} dB |",
            flush=True,
        )


if __name__ == "__main__":
    main()
