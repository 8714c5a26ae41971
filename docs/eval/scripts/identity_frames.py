"""One identity edit read frame by frame: is the object moved, grown, or only read differently?

A suite clip is edited into its own prompt at `videop2p run`'s defaults (500 tuning steps, null-text,
50 DDIM steps, blend on the object word; the same edit as `bench/layout_probe.py`'s identity edits).
Per frame, with the toy world's judge reading the edit, the reconstruction and the source frame: the
edit's and the reconstruction's IoU with the source object, the object's area in each, the shift of
the edit's object centre from the source's (pixels, rows then columns), the pixels only one of them
holds, and the object's mean colour where both hold it.

    python docs/eval/scripts/identity_frames.py --case 6
    python docs/eval/scripts/identity_frames.py --case 0 --model OUT/model --npz OUT/case0.npz
"""

from __future__ import annotations

import argparse

import numpy as np

from videop2p.evaluation import EvalSettings, Method, identity_case, iou, make_suite, run_case
from videop2p.models.loading import load_components
from videop2p.toy.checker import read_image
from videop2p.toy.world import render_clip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--case", type=int, default=6, help="Suite case (videop2p eval's numbering) whose clip is edited."
    )
    parser.add_argument("--model", default=None, help="Model folder (default: the bundled toy model).")
    parser.add_argument("--tune-steps", type=int, default=500, help="Tuning steps (official 500).")
    parser.add_argument("--npz", default=None, help="Also keep the edit, reconstruction and source frames here.")
    args = parser.parse_args()

    comps = load_components(args.model)
    spec = make_suite(args.case + 1)[args.case].spec
    case = identity_case(spec)
    settings = EvalSettings(tune_steps=args.tune_steps, frames=spec.frames, methods=[Method.VIDEO_P2P])
    clip = render_clip(spec)
    result = run_case(comps, case, settings, clip=clip)[Method.VIDEO_P2P.value]
    edits, recons = result["frames"], result["reconstruction_frames"]
    if args.npz:
        np.savez(args.npz, edit=edits, reconstruction=recons, source=clip.frames)
    print(case.source)
    for f, (e, r, src) in enumerate(zip(edits, recons, clip.frames, strict=True)):
        a, b, c = read_image(e).mask, read_image(r).mask, read_image(src).mask
        shift = np.argwhere(a).mean(0) - np.argwhere(c).mean(0)
        print(
            f"frame {f}: IoU {iou(a, c):.3f} (reconstruction {iou(b, c):.3f}); area {a.sum()} against {c.sum()} "
            f"(reconstruction {b.sum()}); centre shift {np.round(shift, 2)} px; only in the edit {int((a & ~c).sum())}, "
            f"only in the source {int((c & ~a).sum())}; colour {e[a & c].mean(0).round()} against "
            f"{src[a & c].mean(0).round()}"
        )


if __name__ == "__main__":
    main()
