"""A copy of a model folder with its text encoder's outputs scaled to another RMS (the same model).

`videop2p.toy.model.rescale_text` scales the text encoder's outputs and every cross-attention key and
value weight back, so the UNet predicts what it predicted; only null-text optimisation, whose Adam steps
do not depend on the gradient's scale, takes other steps on it. `videop2p toy export --text-rms` does
this for a training run; this script does it for any model folder (the bundled one by default), so
that the identity edits can be measured at other scales:

    python docs/eval/scripts/text_scale_copy.py --rms 1.0 --dest runs/rms100
    python bench/layout_probe.py --model runs/rms100 --samples 0 --identity-cases 6 27 28 --json OUT
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from diffusers import UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTokenizer

from videop2p.models.loading import bundled_model_path
from videop2p.toy.model import rescale_text, text_rms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=bundled_model_path(), help="Model folder (default: bundled).")
    parser.add_argument("--rms", type=float, required=True, help="RMS of the empty prompt's embedding in the copy.")
    parser.add_argument("--dest", type=Path, required=True, help="New folder for the copy.")
    args = parser.parse_args()
    if not 0 < args.rms < float("inf"):
        parser.error(f"--rms {args.rms}: give a positive finite number")
    if args.dest.exists():
        parser.error(f"--dest {args.dest} exists; give a new folder")
    text_encoder = CLIPTextModel.from_pretrained(args.model / "text_encoder")
    unet = UNet2DConditionModel.from_pretrained(args.model / "unet")
    before = text_rms(text_encoder, CLIPTokenizer.from_pretrained(args.model / "tokenizer"))
    rescale_text(text_encoder, unet, args.rms / before)
    partial = args.dest.with_name(args.dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(args.model, partial, ignore=shutil.ignore_patterns("text_encoder", "unet"))
    text_encoder.save_pretrained(partial / "text_encoder")
    unet.save_pretrained(partial / "unet")
    partial.rename(args.dest)
    print(f"{args.dest}: text RMS {before:.4f} -> {args.rms:g}")


if __name__ == "__main__":
    main()
