"""When does the target branch lay out one frame differently from the source? Per-step x0 of both branches.

python docs/eval/scripts/frame_divergence.py --model FOLDER --cases 0 10 [--tune-steps 200] [--steps 50]
       [--inversion null-text] [--variants official coupled fc] [--json OUT.json]

Tunes on each case's clip and inverts it (the evaluation's default budget: 200 tuning steps,
null-text, 50 DDIM steps), then edits it with each variant. After every sampling step the clean
estimate x0 of each branch is recovered from two consecutive latents: a deterministic DDIM step
keeps x0 and the noise fixed, so z_t = sqrt(a_t) x0 + sqrt(1 - a_t) e and
z_s = sqrt(a_s) x0 + sqrt(1 - a_s) e give x0 (Song et al. 2021, eq. 12). After blending starts,
this is the x0 of the blended latent. Each x0 is decoded, and the judge's checker finds the object
in every frame; the script prints, per frame, the IoU of the target branch's object with the source
object at a few steps, and the final judged IoU.

Variants: `official` (Video-P2P's defaults), `coupled` (the target branch also uses the optimised
null-text embeddings), `fc` (frame-attention maps replaced in the self window too), `cross0.4`
(cross-attention maps replaced for 40% of the steps), `blend0` (local blending from the first step).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from blend_diagnosis import tune_and_invert  # the script's folder is first on sys.path
from PIL import Image

from videop2p.editing import EditConfig, edit
from videop2p.evaluation import iou, judge, make_suite
from videop2p.latents import decode_latents
from videop2p.models.loading import load_components
from videop2p.sampling import ddim_schedule
from videop2p.toy.checker import read_image

VARIANTS = {
    "official": {},
    "coupled": {"decoupled": False},
    "fc": {"control_frame_attention": True},
    "cross0.4": {"cross_replace": 0.4},
    "blend0": {"blend_start": 0.0},
}
SHOWN_STEPS = (0, 2, 4, 6, 9, 14, 24, 49)


def x0_from_pair(z_t: torch.Tensor, z_s: torch.Tensor, a_t: float, a_s: float) -> torch.Tensor:
    """The clean estimate a deterministic DDIM step from z_t (alpha a_t) to z_s (alpha a_s) kept."""
    b_t, b_s = (1 - a_t) ** 0.5, (1 - a_s) ** 0.5
    return (z_s * b_t - z_t * b_s) / (a_s**0.5 * b_t - a_t**0.5 * b_s)


def object_masks(frames: np.ndarray) -> np.ndarray:
    """(F, H, W, 3) decoded frames -> the checker's object masks (F, H, W)."""
    return np.stack([read_image(f).mask for f in frames])


def trace(comps, model, inv, case, variant: str, steps: int, clip, pictures: list | None = None) -> dict:
    """Edit `case` with one variant; per step and frame, where each branch's x0 puts the object.
    With `pictures`, the decoded x0 of both branches, (2, F, H, W, 3), is appended at SHOWN_STEPS."""
    sched = ddim_schedule(comps.scheduler, steps)
    alpha = [sched.alpha(t) for t in sched.timesteps] + [sched.alpha(sched.timesteps[-1] - sched.step_size)]
    latents = [inv.latent_T.expand(2, *inv.latent_T.shape[1:]).clone()]
    res = edit(
        model,
        comps,
        inv,
        case.source,
        [case.target],
        EditConfig(blend=case.blend, reweight=case.reweight, progress=False, **VARIANTS[variant]),
        callback=lambda info: latents.append(info.latents.detach().clone()),
    )
    source_obj = clip.masks[:, 0]
    per_step = []  # (steps, F): IoU of the target x0's object with the source object
    per_step_src = []  # (steps, F): IoU of the target x0's object with the source x0's
    source_alone = []  # (steps, F): IoU of the source x0's object with the source object
    for i in range(steps):
        x0 = x0_from_pair(latents[i], latents[i + 1], float(alpha[i]), float(alpha[i + 1]))  # (2, F, C, h, w)
        decoded = decode_latents(comps, x0)  # (2, F, H, W, 3): source, target
        src, tgt = object_masks(decoded[0]), object_masks(decoded[1])
        per_step.append([iou(tgt[f], source_obj[f]) for f in range(len(tgt))])
        per_step_src.append([iou(tgt[f], src[f]) for f in range(len(tgt))])
        source_alone.append([iou(src[f], source_obj[f]) for f in range(len(src))])
        if pictures is not None and i in SHOWN_STEPS:
            pictures.append(decoded)
    frames = decode_latents(comps, res.latents)
    m = judge(case, clip, frames[1], frames[0])
    final = [iou(read_image(f).mask, source_obj[k]) for k, f in enumerate(frames[1])]
    return {
        "judge": {k: v for k, v in m.items() if isinstance(v, float)},
        "final_iou": final,
        "target_vs_source_object": per_step,
        "target_vs_source_x0": per_step_src,
        "source_vs_source_object": source_alone,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="model folder (default: the bundled toy model)")
    p.add_argument("--cases", type=int, nargs="+", default=[0, 10])
    p.add_argument("--tune-steps", type=int, default=200)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--inversion", default="null-text")
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=["official", "coupled", "fc"])
    p.add_argument("--json", default=None)
    p.add_argument("--pictures", type=Path, default=None,
                   help="folder for a grid per case and variant: for each shown step, the x0 of the source "
                        "branch above the target's, one column per frame")  # fmt: skip
    args = p.parse_args()
    comps = load_components(args.model)
    suite = make_suite(max(30, max(args.cases) + 1))
    report = {}
    for index in args.cases:
        case, start = suite[index], time.perf_counter()
        clip, model, inv = tune_and_invert(comps, case, args.tune_steps, args.steps, args.inversion)
        print(f"case {index} {case.source!r} -> {case.target!r}: tuned and inverted in "
              f"{time.perf_counter() - start:.0f} s")  # fmt: skip
        report[index] = {}
        for variant in args.variants:
            grids: list | None = [] if args.pictures is not None else None
            r = trace(comps, model, inv, case, variant, args.steps, clip, grids)
            if grids:
                rows = [np.concatenate(list(branch), axis=1) for g in grids for branch in g]  # (H, F*W, 3) each
                args.pictures.mkdir(parents=True, exist_ok=True)
                Image.fromarray(np.concatenate(rows, axis=0)).save(args.pictures / f"case{index}_{variant}.png")
            report[index][variant] = r
            j = r["judge"]
            print(f"  {variant}: success {j['edit_success']:.0f}, frames right {j['frames_right']:.2f}, "
                  f"IoU {j['object_iou']:.2f}, background {j['background_psnr']:.1f} dB")  # fmt: skip
            shown = [s for s in SHOWN_STEPS if s < args.steps]
            print(
                "    frame: final IoU | x0 vs source object at steps " + " ".join(map(str, shown)) + ": target; source"
            )
            for f, final in enumerate(r["final_iou"]):
                target = " ".join(f"{r['target_vs_source_object'][s][f]:.2f}" for s in shown)
                source = " ".join(f"{r['source_vs_source_object'][s][f]:.2f}" for s in shown)
                print(f"    {f}: {final:.2f} | {target}; {source}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=1)


if __name__ == "__main__":
    main()
