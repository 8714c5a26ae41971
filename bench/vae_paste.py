"""Does a model's VAE decode pasted latents as pasted pixels? The step local blending relies on.

Prompt-to-prompt's local blending keeps the source's latents outside the edited words' cells and the
edit's inside them, then decodes the result. Stable Diffusion's VAE decodes such a paste into the
pasted pixels. Here each of N toy-world frames (a seed the training data do not use) has its object's
latent cells (grown by G cells, as the blend mask's 3x3 max-pool grows them by one) pasted over the
next frame's latents; the paste is decoded and compared with the two frames' pixels pasted along the
same cells: PSNR on the object's pixels and on the whole frame, and whether the toy world's judge
reads the pasted object in its own colour. The plain round trip of the same frames is the baseline.

    python bench/vae_paste.py                               # the bundled model
    python bench/vae_paste.py --model OUT/model --frames 200 --json out.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from videop2p.metrics import psnr
from videop2p.toy.data import load_vae, render_dataset, to_tensor, to_uint8
from videop2p.toy.quality import colours_kept, pasted_round_trip

BUNDLED = Path(__file__).resolve().parents[1] / "src" / "videop2p" / "data" / "toy_model"


@torch.no_grad()
def measure(model: str | Path, frames: int, seed: int, grow: list[int]) -> dict:
    vae = load_vae(model).eval()
    images, masks, _ = render_dataset(frames, vae.config.sample_size, seed)
    plain = to_uint8(vae.decode(vae.encode(to_tensor(images)).latent_dist.mean).sample)
    out = {"model": str(model), "frames": frames, "seed": seed, "round_trip_psnr": psnr(plain, images)}
    for g in grow:
        decoded, expected = pasted_round_trip(vae, images, masks, g)
        pasted, wanted = to_uint8(decoded), to_uint8(expected)  # 8-bit, as every round trip is measured
        out[f"grown_{g}"] = {
            "object_psnr": psnr(pasted, wanted, masks),
            "frame_psnr": psnr(pasted, wanted),
            "colour_kept": colours_kept(pasted, images, masks),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(BUNDLED), help="Model folder (default: the bundled toy model).")
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--seed", type=int, default=99, help="Seed of the frames (training data use 0).")
    parser.add_argument("--grow", type=int, nargs="+", default=[0, 1], help="Cells the object's cells are grown by.")
    parser.add_argument("--json", default=None, help="Also write the figures here.")
    args = parser.parse_args()
    torch.manual_seed(0)
    result = measure(args.model, args.frames, args.seed, args.grow)
    print(f"{result['model']}: round trip {result['round_trip_psnr']:.2f} dB")
    for g in args.grow:
        r = result[f"grown_{g}"]
        print(
            f"  object cells grown by {g}: pasted object {r['object_psnr']:.1f} dB, frame {r['frame_psnr']:.1f} dB, "
            f"colour kept in {r['colour_kept']:.0%} of {args.frames} frames"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
