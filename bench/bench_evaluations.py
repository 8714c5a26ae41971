"""UNet evaluations per stage, counted, against the authors' code (counted from its structure).

    python bench/bench_evaluations.py [--steps 50] [--frames 8]

Counts are of single-prompt UNet calls (one row of a batch = one evaluation), so batching does
not hide work. Ours are measured with `EvalCounter` on the tiny random model (counts do not depend
on the model's size); the official ones follow ALGORITHM.md: null-text inversion computes the
conditional prediction once per step, then up to 10 unconditional ones, then one guided step with
both predictions recomputed; editing runs every prompt with and without the prompt (2 rows per
prompt per step), with no reuse of inversion between runs.
"""

from __future__ import annotations

import argparse

import torch

from videop2p.editing import EditConfig, edit
from videop2p.inversion import InversionConfig, invert
from videop2p.latents import encode_prompts
from videop2p.models.t2s import T2SModel
from videop2p.sampling import EvalCounter
from videop2p.testing import dummy_components

SOURCE = "a red circle moving on the grass"
TARGETS = [
    "a blue circle moving on the grass",
    "a green circle moving on the grass",
    "a red square moving on the grass",
]


def measure(steps: int, frames: int, inner: int) -> dict[str, int]:
    c = dummy_components()
    model = T2SModel.from_image_unet(c.unet)
    z0 = torch.randn(1, frames, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    cond, empty = encode_prompts(c, [SOURCE]), encode_prompts(c, [""])
    out = {}
    for method in ("null-text", "fast"):
        cfg = InversionConfig(method=method, steps=steps, inner_steps=inner, early_stop=-1.0, progress=False)
        counter = EvalCounter()
        inv = invert(model, c.scheduler, z0, cond, empty, cfg, counter=counter)
        out[f"invert {method}"] = sum(counter.counts.values())
        for k in (1, 3):
            counter = EvalCounter()
            edit(model, c, inv, SOURCE, TARGETS[:k], EditConfig(progress=False), counter)
            out[f"edit {method}, {k} target(s)"] = counter.counts["edit"]
    return out


def official(steps: int, inner: int) -> dict[str, int]:
    null_text = steps + steps * (1 + inner + 2)  # inversion + per step: cond, inner uncond, guided step (2)
    return {
        "invert null-text": null_text,
        "invert fast": steps,
        "edit null-text, 1 target(s)": steps * 2 * 2,
        "edit null-text, 3 target(s)": steps * 2 * 4,
        "edit fast, 1 target(s)": steps * 2 * 2,
        "edit fast, 3 target(s)": steps * 2 * 4,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--inner", type=int, default=10, help="null-text inner iterations (no early stop here)")
    args = p.parse_args()
    ours, theirs = measure(args.steps, args.frames, args.inner), official(args.steps, args.inner)
    print(f"UNet evaluations, {args.steps} DDIM steps, {args.inner} null-text iterations per step, no early stop")
    print("| stage | official code | videop2p | saved |")
    print("|---|---|---|---|")
    for key, mine in ours.items():
        print(f"| {key} | {theirs[key]} | {mine} | {1 - mine / theirs[key]:.0%} |")
    once = theirs["invert null-text"] + theirs["edit null-text, 1 target(s)"]
    print(
        f"| 3 edits of one clip, null-text (official: invert every run) | {3 * once} | "
        f"{ours['invert null-text'] + 3 * ours['edit null-text, 1 target(s)']} | "
        f"{1 - (ours['invert null-text'] + 3 * ours['edit null-text, 1 target(s)']) / (3 * once):.0%} |"
    )


if __name__ == "__main__":
    main()
