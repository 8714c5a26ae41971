"""Edit eval cases with variants of the blend mask and the attention control, and judge each.

python docs/eval/scripts/edit_variants.py --cases 5 10 15 [--model FOLDER] [--tune-steps 50] [--steps 20]
       [--frames 8] [--variants official range fc fc+range identity ...] [--out DIR]

Tunes on each case's clip, inverts it in fast mode (which reconstructs as well as null-text here),
then edits it with each variant and prints success, frames right, IoU with the source object,
background and reconstruction PSNR, and how much of the frames the blend mask covers. With
`--out`, writes a strip per variant (source above, edit below).

The variants that locate the drift of the target branch: `identity` and `identity-g3` edit the clip
into its own prompt (at guidance 7.5 and 3) and are judged against the source object; `g3` is the
official edit at guidance 3; `cross0.8` replaces the cross-attention maps for 80% of the steps;
`cross1` replaces every cross-attention and temporal map at every step.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

from blend_diagnosis import tune_and_invert  # tools/ is the script's folder, first on sys.path

from videop2p.editing import EditConfig, edit
from videop2p.evaluation import Case, EditKind, judge, make_suite, save_strip
from videop2p.latents import decode_latents
from videop2p.models.loading import load_components

VARIANTS = {
    "official": {},
    "range": {"mask_norm": "range"},
    "fc": {"control_frame_attention": True},
    "fc+range": {"control_frame_attention": True, "mask_norm": "range"},
    "identity": {},  # target prompt = source prompt
    "identity-g3": {"guidance": 3.0},
    "g3": {"guidance": 3.0},
    "cross0.8": {"cross_replace": 0.8},
    "cross1": {"cross_replace": 1.0, "self_replace": 1.0},
}
IDENTITY = {"identity", "identity-g3"}


def identity_case(case: Case) -> Case:
    """The case edited into its own prompt, judged against the source object's colour (blending on the source word)."""
    blend = (case.blend[0], case.blend[0]) if case.blend else None
    own = {"color": case.spec.objects[0].color.value}
    return replace(case, kind=EditKind.COLOR, target=case.source, blend=blend, want=own, reweight={})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=int, nargs="+", default=[5, 10, 15])
    p.add_argument("--model", default=None, help="model folder (default: the bundled toy model)")
    p.add_argument("--tune-steps", type=int, default=50)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--frames", type=int, default=8, help="frames per clip")
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=["official", "range", "fc", "fc+range"])
    p.add_argument("--out", type=Path, default=None, help="folder for the strips")
    args = p.parse_args()
    comps = load_components(args.model)
    suite = make_suite(max(30, *args.cases) + 1, frames=args.frames)
    for index in args.cases:
        case = suite[index]
        start = time.perf_counter()
        clip, model, inv = tune_and_invert(comps, case, args.tune_steps, args.steps)
        print(f"case {index} ({case.kind.value}) {case.source!r} -> {case.target!r}: tuned and inverted in "
              f"{time.perf_counter() - start:.0f} s")  # fmt: skip
        for name in args.variants:
            start = time.perf_counter()
            judged = identity_case(case) if name in IDENTITY else case
            cfg = EditConfig(blend=judged.blend, reweight=judged.reweight, progress=False, **VARIANTS[name])
            res = edit(model, comps, inv, case.source, [judged.target], cfg)
            frames = decode_latents(comps, res.latents)
            m = judge(judged, clip, frames[1], frames[0])
            if args.out is not None:
                save_strip(frames[1], args.out / f"case{index}_{name}.png", clip.frames)
            print(f"  {name:9s} success {m['edit_success']:.0f}, frames right {m['frames_right']:.2f}, "
                  f"IoU {m['object_iou']:.2f}, background {m['background_psnr']:.1f} dB, "
                  f"reconstruction {m['reconstruction_psnr']:.1f} dB, mask covers {float(res.masks.float().mean()):.0%} "
                  f"({time.perf_counter() - start:.0f} s)")  # fmt: skip


if __name__ == "__main__":
    main()
