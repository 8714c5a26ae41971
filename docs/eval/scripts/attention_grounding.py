"""How well a model's cross-attention maps find the words' regions on held-out toy images.

python docs/eval/scripts/attention_grounding.py [MODEL ...] (default: bundled) [--images 64] [--timesteps 100 300 500 700 900]

For each model (default: the bundled one) and each timestep, noises held-out toy images, runs the
UNet with the caption and reads the cross-attention maps. It prints the share of the colour, shape
and background words' attention inside their regions, and what prompt-to-prompt's local blending
would make of the shape word's map at the mask resolution (16x16 for the toy model): the share of
the frame the official mask (3x3 max-pool, divide by the maximum, > 0.3) covers, against the
object's own share, and the mask's IoU with the object.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from videop2p.models.loading import load_components
from videop2p.toy.grounding import MapStore, ground_processors, render_grounding_data, token_shares, word_regions
from videop2p.toy.world import Background, Color, Shape


def word_positions(tokens: list[str], vocabulary: set[str]) -> int:
    return next(i for i, t in enumerate(tokens) if t.removesuffix("</w>") in vocabulary)


@torch.no_grad()
def measure(model: str | None, images: int, timesteps: list[int], seed: int = 1234) -> list[dict]:
    comps = load_components(model)
    store = MapStore()
    ground_processors(comps.unet, store)
    size = comps.info.native_size
    frames, masks, specs = render_grounding_data(images, size, seed)
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1  # (B, 3, H, W)
    z0 = comps.vae.encode(x).latent_dist.mean * comps.vae.config.scaling_factor
    captions = [s.caption() for s in specs]
    ids = comps.tokenizer(captions, padding="max_length", max_length=comps.tokenizer.model_max_length,
                          return_tensors="pt").input_ids  # fmt: skip
    text = comps.text_encoder(ids)[0]
    regions, _ = word_regions(comps.tokenizer, captions, torch.from_numpy(masks))
    tokens = [comps.tokenizer.convert_ids_to_tokens(row) for row in ids.tolist()]
    shape_at = torch.tensor([word_positions(t, {s.value for s in Shape}) for t in tokens])
    colour_at = torch.tensor([word_positions(t, {c.value for c in Color}) for t in tokens])
    bg_at = torch.tensor([word_positions(t, {b.value for b in Background}) for t in tokens])
    rows = []
    gen = torch.Generator().manual_seed(seed)
    latent = z0.shape[-1]
    for t in timesteps:
        noise = torch.randn(z0.shape, generator=gen)
        tt = torch.full((len(z0),), t)
        store.clear()
        comps.unet(comps.scheduler.add_noise(z0, noise, tt), tt, text)
        shares = token_shares(store.maps, regions).mean(0)  # (B, L), mean over layers
        b = torch.arange(len(z0))
        mask_maps = [m for m in store.maps if m.shape[1] == latent * latent]  # the 16x16 layers
        word = torch.stack([m[b, :, shape_at] for m in mask_maps]).mean(0)  # (B, N)
        word = word.reshape(-1, 1, latent, latent)
        pooled = F.max_pool2d(word, 3, 1, 1)
        official = (pooled / pooled.amax(dim=(2, 3), keepdim=True)) > 0.3  # (B, 1, h, w)
        obj = F.adaptive_avg_pool2d(torch.from_numpy(masks).float()[:, None], latent) >= 0.5
        inter = (official & obj).flatten(1).sum(1).float()
        union = (official | obj).flatten(1).sum(1).float()
        floor = (word.flatten(1).amin(1) / word.flatten(1).amax(1)).mean()
        rows.append({
            "timestep": t,
            "colour_share": float(shares[b, colour_at].mean()),
            "shape_share": float(shares[b, shape_at].mean()),
            "background_share": float(shares[b, bg_at].mean()),
            "mask_coverage": float(official.float().mean()),
            "object_coverage": float(obj.float().mean()),
            "mask_iou": float((inter / union.clamp_min(1)).mean()),
            "map_floor": float(floor),
        })  # fmt: skip
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="*", default=["bundled"], help="model folders; 'bundled' for the bundled model")
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--timesteps", type=int, nargs="+", default=[100, 300, 500, 700, 900])
    args = p.parse_args()
    cols = ["colour_share", "shape_share", "background_share", "mask_coverage", "object_coverage", "mask_iou",
            "map_floor"]  # fmt: skip
    print("| model | t | " + " | ".join(cols) + " |")
    print("|---" * (len(cols) + 2) + "|")
    for model in args.models:
        for r in measure(None if model == "bundled" else model, args.images, args.timesteps):
            print(f"| {model} | {r['timestep']} | " + " | ".join(f"{r[c]:.3f}" for c in cols) + " |")
    print(f"{args.images} held-out toy images; shares: attention inside the word's region; mask: official local blend "
          "of the shape word at the 16x16 layers; floor: map minimum / maximum")  # fmt: skip


if __name__ == "__main__":
    main()
