"""Null-text optimisation with its loss on fewer frames: time, UNet evaluations and reconstruction PSNR.

One case of the evaluation suite (bundled toy model unless --model), tuned as the quick preset tunes
(200 steps on 4 frames), then inverted with null-text once per --frames value (0: every frame, the
official setting) and reconstructed from the kept path.

    python bench/null_text_frames.py --case 0 --frames 0 4 2
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from videop2p.config import InversionConfig, TuneConfig
from videop2p.editing import reconstruct
from videop2p.evaluation import make_suite
from videop2p.inversion import invert
from videop2p.latents import decode_latents, encode_posterior, encode_prompts
from videop2p.metrics import psnr
from videop2p.models.loading import load_components
from videop2p.models.t2s import T2SModel
from videop2p.toy.world import render_clip
from videop2p.tuning import tune


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="model id or folder (default: the bundled toy model)")
    p.add_argument("--case", type=int, default=0, help="case index in the 30-case suite")
    p.add_argument("--frames", type=int, nargs="+", default=[0, 4, 2], help="frames of the loss; 0: every frame")
    p.add_argument("--tune-steps", type=int, default=200)
    p.add_argument("--tune-frames", type=int, default=4)
    p.add_argument("--steps", type=int, default=50, help="DDIM steps")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    comps = load_components(a.model)
    case = make_suite(30)[a.case]
    clip = render_clip(case.spec)
    posterior = encode_posterior(comps, clip.frames)
    model = T2SModel.from_image_unet(comps.unet)
    cond, empty = encode_prompts(comps, [case.source]), encode_prompts(comps, [""])
    tune(model, comps, posterior, cond, TuneConfig(steps=a.tune_steps, frames=a.tune_frames, progress=False))
    for frames in a.frames:
        c = InversionConfig(steps=a.steps, frames=frames or None, progress=False)
        t0 = time.perf_counter()
        inv = invert(model, comps.scheduler, posterior[0], cond, empty, c)
        seconds = time.perf_counter() - t0
        recon = decode_latents(comps, reconstruct(model, comps, inv, case.source))[0]
        row = {
            "frames": frames or "all",
            "seconds": round(seconds, 1),
            "unet_evaluations": inv.meta["unet_evaluations"],
        }
        print(json.dumps({**row, "reconstruction_psnr": round(psnr(recon, clip.frames), 2)}), flush=True)


if __name__ == "__main__":
    main()
