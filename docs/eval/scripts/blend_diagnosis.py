"""Why the full method's edits move in the toy world: the blend mask and the layout, for one eval case.

python docs/eval/scripts/blend_diagnosis.py CASE DEST.png [--tune-steps 100] [--steps 50]

Tunes on the case's clip, inverts it (fast mode, which reconstructs as well as null-text here and
takes seconds), and edits it four ways: the official settings; the official settings with every
cross-attention and temporal map replaced at every step; a blend threshold of 0.9; and frame-
attention control with cross-attention replaced for 80% of the steps. The picture has one row per
clip: the source, the blend word's step-averaged attention map (normalised by its maximum, as the
mask is), the official mask over the source, then each edit. The numbers are printed.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from videop2p.editing import EditConfig, edit
from videop2p.evaluation import judge, make_suite
from videop2p.inversion import InversionConfig, invert
from videop2p.latents import decode_latents, encode_posterior, encode_prompts
from videop2p.models.loading import load_components
from videop2p.models.t2s import T2SModel
from videop2p.outputs import mask_overlay, upsample_masks
from videop2p.toy.world import render_clip
from videop2p.tuning import TuneConfig, tune

VARIANTS = {
    "official (cross 0.2, temporal 0.5, threshold 0.3)": {},
    "every cross and temporal map replaced at every step": {"cross_replace": 1.0, "self_replace": 1.0},
    "blend threshold 0.9": {"threshold": 0.9},
    "frame-attention control, cross 0.8": {"control_frame_attention": True, "cross_replace": 0.8},
}


def tune_and_invert(comps, case, tune_steps: int, steps: int, method: str = "fast"):
    """The case's clip, tuned model and inversion, as `videop2p eval` makes them (fast mode by default:
    it reconstructs as well as null-text here)."""
    clip = render_clip(case.spec)
    posterior = encode_posterior(comps, clip.frames)
    model = T2SModel.from_image_unet(comps.unet)
    text = encode_prompts(comps, [case.source])
    tune(model, comps, posterior, text, TuneConfig(steps=tune_steps, progress=False))
    inv = invert(model, comps.scheduler, posterior[0], text, encode_prompts(comps, [""]),
                 InversionConfig(method=method, steps=steps, progress=False))  # fmt: skip
    return clip, model, inv


def heat(maps: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """(F, y, x) maps -> (F, H, W, 3) uint8, each frame divided by its maximum."""
    m = F.max_pool2d(maps[:, None].float(), 3, 1, 1)  # the blend mask's 3x3 max-pool
    m = F.interpolate(m / m.amax(dim=(2, 3), keepdim=True), size=size, mode="nearest")[:, 0]
    return (m.clamp(0, 1)[..., None].expand(-1, -1, -1, 3) * 255).to(torch.uint8).numpy()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("case", type=int)
    p.add_argument("dest")
    p.add_argument("--tune-steps", type=int, default=100)
    p.add_argument("--steps", type=int, default=50)
    args = p.parse_args()
    comps = load_components(None)
    case = make_suite(max(30, args.case + 1))[args.case]
    clip, model, inv = tune_and_invert(comps, case, args.tune_steps, args.steps)
    size = clip.frames.shape[1:3]
    rows, labels = [clip.frames], [f"source: {case.source}"]
    for k, (name, kw) in enumerate(VARIANTS.items()):
        res = edit(model, comps, inv, case.source, [case.target], EditConfig(blend=case.blend, progress=False, **kw))
        frames = decode_latents(comps, res.latents)
        m = judge(case, clip, frames[1], frames[0])
        coverage = float(res.masks.float().mean())
        print(f"{name}: object IoU {m['object_iou']:.2f}, frames right {m['frames_right']:.2f}, "
              f"background {m['background_psnr']:.1f} dB, mask covers {coverage:.0%}")  # fmt: skip
        if k == 0:
            word = res.tokens[0].index(f"{case.blend[0]}</w>")
            rows.append(heat(res.attention[0, :, :, :, word], size))
            labels.append(f"'{case.blend[0]}' attention / max (lowest {float(rows[-1].min()) / 255:.2f})")
            rows.append(mask_overlay(clip.frames, upsample_masks(res.masks[0], size)))
            labels.append(f"official blend mask: {coverage:.0%} of the frame")
        rows.append(frames[1])
        labels.append(f"{name}: IoU {m['object_iou']:.2f}, bg {m['background_psnr']:.1f} dB")
    scale, band = 3, 14
    h, w = size
    canvas = Image.new("RGB", (w * scale * len(clip.frames), len(rows) * (h * scale + band)), "white")
    draw = ImageDraw.Draw(canvas)
    for r, (frames, label) in enumerate(zip(rows, labels, strict=True)):
        y = r * (h * scale + band)
        draw.text((2, y + 1), label, fill="black")
        strip = Image.fromarray(np.concatenate(list(frames), axis=1)).resize((w * scale * len(frames), h * scale),
                                                                             Image.NEAREST)  # fmt: skip
        canvas.paste(strip, (0, y + band))
    canvas.save(args.dest)
    print(args.dest)


if __name__ == "__main__":
    main()
