"""Does the toy model keep an object's place when one word of the prompt changes and the noise does not?

python docs/eval/scripts/seed_layout.py [--model FOLDER] [--seeds 8] [--steps 25] [--guidance 7.5]

Draws each prompt pair with the plain diffusers pipeline from the same seeds and prints, per pair,
the IoU between the objects the checker finds in the two images of each seed. Prompt-to-prompt
exists because this IoU is low for Stable Diffusion too; what makes it work there is that replacing
the cross-attention maps restores the layout (`docs/eval/scripts/edit_variants.py --variants cross1` measures that).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from videop2p.evaluation import iou
from videop2p.models.loading import bundled_model_path
from videop2p.toy.checker import read_image

PAIRS = [
    ("a orange triangle moving on the grass", "a green triangle moving on the grass"),
    ("a blue triangle moving on the water", "a red triangle moving on the water"),
    ("a yellow square moving on the snow", "a red square moving on the snow"),
]


def object_masks(pipe, prompt: str, seeds: int, steps: int, guidance: float) -> list[np.ndarray]:
    """The checker's object mask in the image drawn from each seed 0..seeds-1."""
    images = pipe(
        [prompt] * seeds,
        num_inference_steps=steps,
        guidance_scale=guidance,
        generator=[torch.Generator().manual_seed(s) for s in range(seeds)],
        output_type="np",
    ).images
    return [read_image((im * 255).round().astype(np.uint8)).mask for im in images]


def main() -> None:
    from diffusers import StableDiffusionPipeline

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="model folder (default: the bundled toy model)")
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--guidance", type=float, default=7.5)
    args = p.parse_args()
    pipe = StableDiffusionPipeline.from_pretrained(args.model or str(bundled_model_path()))
    pipe.set_progress_bar_config(disable=True)
    for a, b in PAIRS:
        ma, mb = (object_masks(pipe, x, args.seeds, args.steps, args.guidance) for x in (a, b))
        ious = [iou(x, y) for x, y in zip(ma, mb, strict=True)]
        print(f"{a!r} vs {b!r}: same-seed object IoU {np.mean(ious):.2f} (per seed {np.round(ious, 2).tolist()})")


if __name__ == "__main__":
    main()
