"""Windows against whole-clip processing on the same long toy clips, and seams at window borders.

Each suite case is rendered at FRAMES frames (the object moves slowly, so it crosses every window
border), tuned once per window length (whole clip, or windows of SIZE), then inverted and edited
whole, in windows with OVERLAP frames averaged (uniform) or cross-faded (ramp), in windows without
overlap, and in windows that read two anchors (frame 0 and the middle frame). Each finished
(case, setting) is kept in OUT, so an interrupted run resumes.

    python docs/eval/scripts/long_clip_quality.py OUT [--cases 4] [--frames 32] [--size 16] [--overlap 4]

Seam metric (the whole clip is measured at the default windows' borders, for reference): at each window border (the first frame of a window after the first, the last frame of
a window before the last), the frame-to-frame change of the edited object's colour (mean RGB where
the checker finds it) and of its position relative to the source object's, against the same changes
between frames inside windows.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch

from videop2p.config import EditConfig, InversionConfig, InversionMethod, TuneConfig, WindowConfig
from videop2p.editing import edit
from videop2p.evaluation import judge, make_suite
from videop2p.inversion import invert
from videop2p.latents import decode_latents, encode_posterior, encode_prompts
from videop2p.models.loading import load_components
from videop2p.models.t2s import T2SModel
from videop2p.toy.checker import read_image
from videop2p.toy.world import render_clip
from videop2p.tuning import tune
from videop2p.windows import plan_windows


def borders(plan) -> list[int]:
    """Frames f where the pair (f - 1, f) crosses a window border."""
    if plan.whole:
        return []
    out = set()
    for i, w in enumerate(plan.windows):
        own = w.own_frames
        if i > 0:
            out.add(own[0])
        if i < len(plan.windows) - 1:
            out.add(own[-1] + 1)
    return sorted(out)


def seams(edited: np.ndarray, source_masks: np.ndarray, cut: list[int]) -> dict:
    """Colour and position change per frame pair of the edited object; at the borders and inside."""
    found = [read_image(f).mask for f in edited]
    rgb = np.stack([f[m].mean(0) if m.any() else np.zeros(3) for f, m in zip(edited, found, strict=True)])
    cen = np.stack([np.argwhere(m).mean(0) if m.any() else np.zeros(2) for m in found])
    src = np.stack([np.argwhere(m).mean(0) if m.any() else np.zeros(2) for m in source_masks])
    d_rgb = np.abs(np.diff(rgb, axis=0)).mean(1)  # (F - 1,) pair (f - 1, f) at index f - 1
    d_pos = np.linalg.norm(np.diff(cen - src, axis=0), axis=1)
    inside = [f for f in range(1, len(edited)) if f not in cut]
    return {
        "border_colour": {int(f): float(d_rgb[f - 1]) for f in cut},
        "border_position": {int(f): float(d_pos[f - 1]) for f in cut},
        "inside_colour": float(d_rgb[[f - 1 for f in inside]].mean()),
        "inside_position": float(d_pos[[f - 1 for f in inside]].mean()),
        "inside_colour_max": float(d_rgb[[f - 1 for f in inside]].max()),
        "inside_position_max": float(d_pos[[f - 1 for f in inside]].max()),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path)
    p.add_argument("--cases", type=int, default=4)
    p.add_argument("--frames", type=int, default=32)
    p.add_argument("--size", type=int, default=WindowConfig().size)
    p.add_argument("--overlap", type=int, default=WindowConfig().overlap)
    p.add_argument("--tune-steps", type=int, default=200)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--method", default="fast", choices=[m.value for m in InversionMethod])
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(2)
    comps = load_components(None)
    settings = {
        "whole": WindowConfig(size=None),
        f"windows {args.size}, overlap {args.overlap}, uniform": WindowConfig(
            size=args.size, overlap=args.overlap, blend="uniform"
        ),
        f"windows {args.size}, overlap {args.overlap}, ramp": WindowConfig(
            size=args.size, overlap=args.overlap, blend="ramp"
        ),
        f"windows {args.size}, overlap 0": WindowConfig(size=args.size, overlap=0),
        f"windows {args.size}, overlap {args.overlap}, first+middle anchors": WindowConfig(
            size=args.size, overlap=args.overlap, anchors="first+middle"
        ),
    }
    for i, case in enumerate(make_suite(args.cases, frames=args.frames)):
        todo = {k: v for k, v in settings.items() if not (args.out / f"case{i:02d}-{k}.json").exists()}
        if not todo:
            continue
        clip = render_clip(case.spec)
        z0 = encode_posterior(comps, clip.frames)
        cond, empty = encode_prompts(comps, [case.source]), encode_prompts(comps, [""])
        models = {}
        reference = plan_windows(args.frames, WindowConfig(size=args.size, overlap=args.overlap))  # whole: same pairs
        for name, window in todo.items():
            plan = plan_windows(args.frames, window)
            if not plan.whole:
                reference = plan
            arch = (len(plan.windows[0].own), plan.windows[0].anchor_frames)
            if arch not in models:  # tuning depends on the window length and the anchors, not on the overlap
                model = T2SModel.from_image_unet(comps.unet)
                tune(model, comps, z0, cond, TuneConfig(steps=args.tune_steps, progress=False), plan=plan)
                models[arch] = model
            model = models[arch]
            inv = invert(
                model,
                comps.scheduler,
                z0[0],
                cond,
                empty,
                InversionConfig(method=args.method, steps=args.steps, progress=False),
                plan=plan,
            )
            cfg = EditConfig(blend=case.blend, reweight=case.reweight, progress=False)
            result = edit(model, comps, inv, case.source, [case.target], cfg, windows=plan)
            frames = decode_latents(comps, result.latents)
            row = {
                "case": i,
                "kind": case.kind.value,
                "setting": name,
                **judge(case, clip, frames[1], frames[0]),
                **seams(frames[1], clip.masks[:, 0], borders(reference)),
            }
            (args.out / f"case{i:02d}-{name}.json").write_text(json.dumps(row, indent=1))
            print(json.dumps({k: v for k, v in row.items() if not isinstance(v, dict)}), flush=True)
    table(args.out, list(settings))


def table(out: Path, names: list[str]) -> None:
    """The mean of every metric over the cases; seams as the mean change at the borders against inside
    windows, and how many borders changed more than the largest change inside the windows of their case."""
    rows = [json.loads(p.read_text()) for p in sorted(out.glob("case*.json"))]
    print(
        "| setting | cases | edit success | object IoU | bg PSNR | recon PSNR "
        "| colour change: borders / inside | position change: borders / inside | borders over the inside maximum |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name in names:
        rs = [r for r in rows if r["setting"] == name]
        if not rs:
            continue

        def mean(key, rs=rs):
            vals = [r[key] for r in rs if not math.isnan(r[key])]
            return sum(vals) / max(1, len(vals))

        bc = [v for r in rs for v in r["border_colour"].values()]
        bp = [v for r in rs for v in r["border_position"].values()]
        over = sum(v > r["inside_colour_max"] for r in rs for v in r["border_colour"].values())
        over += sum(v > r["inside_position_max"] for r in rs for v in r["border_position"].values())
        seams = f"{over} of {len(bc) + len(bp)}" if name != "whole" else "(no windows)"
        print(
            f"| {name} | {len(rs)} | {mean('edit_success'):.2f} | {mean('object_iou'):.2f} | "
            f"{mean('background_psnr'):.1f} | {mean('reconstruction_psnr'):.1f} | "
            f"{np.mean(bc):.2f} / {mean('inside_colour'):.2f} | {np.mean(bp):.2f} / {mean('inside_position'):.2f} | {seams} |"
        )


if __name__ == "__main__":
    main()
