"""How well does a model's VAE alone keep the evaluation suite's clips? The ceiling of every edit figure.

Each clip of the suite is encoded (posterior mean) and decoded with the model's VAE, nothing else.
The object is found in every decoded frame with the toy world's judge and compared with the
ground-truth mask, and with the judge's own reading of the source frame (the judge reads an
unedited frame at IoU 0.91-1.0 with the ground truth on the 30 default cases: anti-aliased edges, objects at the border).
No edit keeps the object better than its VAE draws it, nor reconstructs a clip above its PSNR.

    python bench/vae_round_trip.py                          # the bundled model, the 30 default cases
    python bench/vae_round_trip.py --model OUT/model --cases 12 --json out.json
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from videop2p.evaluation import iou, make_suite
from videop2p.latents import decode_latents, encode_posterior
from videop2p.metrics import psnr
from videop2p.models.loading import load_components
from videop2p.toy.checker import read_image
from videop2p.toy.world import render_clip

BAR_IOU = 0.95  # issue 23's identity bar


def round_trip(comps, clip) -> dict:
    """One clip through the VAE alone (posterior mean), read by the judge.

    Per frame: the decoded object's IoU with the ground truth ("truth") and with the judge's reading of
    the source frame ("seen"), and the judge's reading of the source against the ground truth
    ("judge"); the round trip's PSNR; the judge's source masks, (H, W) bool each ("source_masks").
    """
    with torch.no_grad():
        decoded = decode_latents(comps, encode_posterior(comps, clip.frames)[0])[0]  # (F, H, W, 3)
    found = [read_image(f).mask for f in decoded]
    source = [read_image(f).mask for f in clip.frames]
    truth = clip.masks[:, 0]  # (F, H, W)
    return {
        "truth": [iou(a, m) for a, m in zip(found, truth, strict=True)],
        "seen": [iou(a, b) for a, b in zip(found, source, strict=True)],
        "judge": [iou(b, m) for b, m in zip(source, truth, strict=True)],
        "psnr": psnr(decoded, clip.frames),
        "source_masks": source,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="Model folder (default: the bundled toy model).")
    parser.add_argument("--cases", type=int, default=30, help="Clips of the evaluation suite (its numbering).")
    parser.add_argument("--json", default=None, help="Also write the figures here.")
    args = parser.parse_args()

    comps = load_components(args.model)
    trips = [round_trip(comps, render_clip(case.spec)) for case in make_suite(args.cases)]
    truth, seen, judge = (np.array([t[k] for t in trips]) for k in ("truth", "seen", "judge"))  # (cases, F) each
    psnrs = [t["psnr"] for t in trips]
    rows = (
        ("decoded vs ground truth", truth),
        ("decoded vs the judge's reading of the source", seen),
        ("the judge's reading of the source vs ground truth (the judge's own error)", judge),
    )
    for name, a in rows:
        print(
            f"object IoU, {name}: mean {a.mean():.3f}, lowest frame {a.min():.3f}, "
            f"frames >= {BAR_IOU}: {np.mean(a >= BAR_IOU):.0%}"
        )
    print(f"round-trip PSNR: mean {np.mean(psnrs):.2f} dB, lowest clip {np.min(psnrs):.2f} dB")
    if args.json:
        result = {
            "model": comps.info.identity,
            "cases": args.cases,
            "frame_iou_truth": truth.tolist(),
            "frame_iou_source_reading": seen.tolist(),
            "judge_frame_iou": judge.tolist(),
            "psnr": psnrs,
        }
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
