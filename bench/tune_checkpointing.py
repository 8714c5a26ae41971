"""Does gradient checkpointing change tuning? Time and weights of the same tuning with it on and off.

Tunes the same suite clip twice from the same inflated model and seed, once with activations
recomputed in the backward pass (the authors' setting, `TuneConfig.gradient_checkpointing`) and once
without, and prints each run's time and the largest difference between the two tuned models' weights.
The evaluation tunes without it (its clips are 64 pixels, so memory is small).

    python bench/tune_checkpointing.py                      # the bundled model, suite case 0, 60 steps
    python bench/tune_checkpointing.py --steps 200 --case 3 --model OUT/model
"""

from __future__ import annotations

import argparse
import time

from videop2p.evaluation import make_suite
from videop2p.latents import encode_posterior, encode_prompts
from videop2p.models.loading import load_components
from videop2p.models.t2s import T2SModel
from videop2p.toy.world import render_clip
from videop2p.tuning import TuneConfig, tune


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="Model folder (default: the bundled toy model).")
    parser.add_argument("--case", type=int, default=0, help="Suite case whose clip is tuned on.")
    parser.add_argument("--steps", type=int, default=60, help="Tuning steps.")
    args = parser.parse_args()

    comps = load_components(args.model)
    case = make_suite(args.case + 1)[args.case]
    posterior = encode_posterior(comps, render_clip(case.spec).frames)
    text = encode_prompts(comps, [case.source])
    weights, seconds = {}, {}
    for checkpointing in (True, False):
        model = T2SModel.from_image_unet(comps.unet)
        t0 = time.perf_counter()
        cfg = TuneConfig(steps=args.steps, gradient_checkpointing=checkpointing, progress=False)
        tune(model, comps, posterior, text, cfg)
        seconds[checkpointing] = time.perf_counter() - t0
        weights[checkpointing] = {k: v.detach().clone() for k, v in model.named_parameters()}
        print(f"gradient checkpointing {'on ' if checkpointing else 'off'}: {seconds[checkpointing]:.1f} s")
    on, off = weights[True], weights[False]
    diff = max(float((on[k] - off[k]).abs().max()) for k in on)
    print(f"largest weight difference: {diff:.3g}; time saved without it: {1 - seconds[False] / seconds[True]:.0%}")


if __name__ == "__main__":
    main()
