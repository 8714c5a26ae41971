"""When does a model fix its layout? The "layout step" of issue 23, and identity-edit IoU.

Layout step: sample toy captions from seeded noise with the model's own DDIM schedule (guidance 7.5)
and decode the x0-prediction at every step; the object's mask there (pixels far from the caption's
background colour) is compared with the final mask. The layout step is the first step from which
every later mask overlaps the final one with IoU >= 0.9; reported per sample, as a mean, and as a
fraction of the steps. Stable Diffusion at 64x64 latents is said to fix its layout in the first
steps, inside Video-P2P's 20% cross-attention window.

Identity edit: a clip of the evaluation suite edited into its own prompt with Video-P2P
(`--tune-steps`, `--inversion`, DDIM `--steps`; the official settings by default) must keep its
object: object IoU with the source object in every frame, and frames judged right (the suite's judge).
Beside it, the same IoU for the clip only encoded and decoded by the model's VAE: no edit can keep
the object better than its VAE draws it, so that is the ceiling of the identity IoU. The judge itself
reads an unedited frame's object at IoU 0.91-1.0 with the ground-truth mask (anti-aliased edges,
border-touching objects), so the edit is also compared with the judge's reading of the source frame,
beside the reconstruction's IoU (the source branch of the same run) and a frame's "within one pixel"
reading: every pixel where the edit's object and the source's differ lies on the source object's
boundary, one pixel either side. On 64-pixel toy frames a boundary one pixel thick is worth 0.1-0.2 of
IoU, so IoU alone cannot tell a moved object from an edge drawn a pixel wider. `--size` draws the
suite's scenes on larger (or smaller) frames, where a pixel of boundary is worth less.

    python bench/layout_probe.py                                   # the bundled model
    python bench/layout_probe.py --model OUT/model --samples 16    # a candidate
    python bench/layout_probe.py --samples 0 --identity-cases 0 1 2 3   # identity edits of suite cases only
    python bench/layout_probe.py --samples 0 --method Video-P2P --method "Video-P2P + frame-attention control"
    python bench/layout_probe.py --samples 0 --identity-cases 6 --size 128   # the same scene on 128-pixel frames
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import numpy as np
import torch
from diffusers import DDIMScheduler

from videop2p.evaluation import Method, dilate
from videop2p.latents import decode_latents, encode_prompts
from videop2p.models.loading import load_components
from videop2p.toy.checker import object_mask
from videop2p.toy.world import BACKGROUND_RGB, caption_for, random_spec, render_clip

LAYOUT_IOU = 0.9


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def layout_step(masks: list[np.ndarray]) -> int:
    """First step index from which every mask overlaps the last one with IoU >= LAYOUT_IOU."""
    final = masks[-1]
    step = len(masks) - 1
    for i in range(len(masks) - 1, -1, -1):
        if iou(masks[i], final) < LAYOUT_IOU:
            break
        step = i
    return step


@torch.no_grad()
def x0_masks(comps, caption: str, background_rgb: np.ndarray, steps: int, seed: int, guidance: float) -> list:
    """Object masks of the decoded x0-prediction at every DDIM step of one sample."""
    sched = DDIMScheduler.from_config(comps.scheduler.config)  # a copy: the shared one keeps its state
    sched.set_timesteps(steps)
    info = comps.info
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(1, info.latent_channels, info.sample_size, info.sample_size, generator=gen)
    z = z * sched.init_noise_sigma
    text = torch.cat([encode_prompts(comps, [""]), encode_prompts(comps, [caption])])  # (2, L, D)
    masks = []
    for t in sched.timesteps:
        out = comps.unet(torch.cat([z, z]), t, encoder_hidden_states=text).sample
        uncond, cond = out.chunk(2)
        step = sched.step(uncond + guidance * (cond - uncond), t, z)
        frame = decode_latents(comps, step.pred_original_sample[:, None])[0, 0]  # (H, W, 3)
        masks.append(object_mask(frame, background_rgb))
        z = step.prev_sample
    return masks


def within(found: np.ndarray, source: np.ndarray, pixels: int = 1) -> bool:
    """The found mask equals the source mask up to its boundary: it holds the source eroded by `pixels`
    and lies inside the source dilated by `pixels` (DAVIS's boundary measure in spirit)."""
    inner = ~dilate(~source[None], pixels)[0]
    return bool((found & inner).sum() == inner.sum() and not (found & ~dilate(source[None], pixels)[0]).any())


def identity_edits(
    comps, cases: list[int], tune_steps: int, steps: int, methods: list, size: int | None = None
) -> list[dict]:
    """Edits of the evaluation suite's clips into their own prompts with each method, judged per frame,
    beside the reconstruction's IoU and the VAE round trip's (the ceiling)."""
    from vae_round_trip import round_trip

    from videop2p.evaluation import EvalSettings, identity_case, make_suite, run_case
    from videop2p.toy.checker import read_image

    suite = make_suite(max(cases) + 1)
    rows = []
    for index in cases:
        spec = suite[index].spec if size is None else dataclasses.replace(suite[index].spec, size=size)
        case = identity_case(spec)
        caption = case.source
        settings = EvalSettings(tune_steps=tune_steps, steps=steps, frames=spec.frames, methods=methods)
        clip = render_clip(spec)
        results = run_case(comps, case, settings, clip=clip)
        trip = round_trip(comps, clip)  # the VAE's ceiling, and the judge's reading of the source frames
        seen = trip["source_masks"]
        # what a boundary one pixel thick is worth: the source reading against itself grown by one pixel
        one_pixel = [iou(m, dilate(m[None], 1)[0]) for m in seen]
        for method in methods:
            metrics = results[method.value]
            found = [read_image(f).mask for f in metrics["frames"]]
            rebuilt = [read_image(f).mask for f in metrics["reconstruction_frames"]]
            per_frame = [iou(a, m) for a, m in zip(found, clip.masks[:, 0], strict=True)]
            per_frame_seen = [iou(a, b) for a, b in zip(found, seen, strict=True)]
            rows.append(
                {
                    "case": index,
                    "method": method.value,
                    "caption": caption,
                    "object_iou": metrics["object_iou"],
                    "min_frame_iou": min(per_frame),
                    "frame_iou": per_frame,
                    "vae_frame_iou": trip["truth"],
                    "vae_min_frame_iou": min(trip["truth"]),
                    "vae_frame_iou_vs_source_reading": trip["seen"],
                    "judge_frame_iou": trip["judge"],
                    "frame_iou_vs_source_reading": per_frame_seen,
                    "reconstruction_frame_iou_vs_source_reading": [
                        iou(a, b) for a, b in zip(rebuilt, seen, strict=True)
                    ],
                    "one_pixel_frame_iou": one_pixel,
                    "frames_within_one_pixel": [within(a, b) for a, b in zip(found, seen, strict=True)],
                    "frames_right": metrics["frames_right"],
                    "reconstruction_psnr": metrics["reconstruction_psnr"],
                    "background_psnr": metrics["background_psnr"],
                }
            )
            r = rows[-1]
            print(
                f"identity edit, case {index}, {method.value}: object IoU {r['object_iou']:.2f} (lowest frame "
                f"{r['min_frame_iou']:.2f}; VAE round trip {np.mean(trip['truth']):.2f}, lowest {min(trip['truth']):.2f}); "
                f"against the source frames as the judge reads them {np.mean(per_frame_seen):.2f}, lowest "
                f"{min(per_frame_seen):.2f} (reconstruction lowest "
                f"{min(r['reconstruction_frame_iou_vs_source_reading']):.2f}, VAE round trip lowest "
                f"{min(trip['seen']):.2f}, one pixel of boundary {np.mean(one_pixel):.2f}); "
                f"frames within one pixel {np.mean(r['frames_within_one_pixel']):.0%}; "
                f"frames right {r['frames_right']:.0%}, reconstruction {r['reconstruction_psnr']:.1f} dB  {caption}",
                flush=True,
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="Model folder (default: the bundled toy model).")
    parser.add_argument("--samples", type=int, default=8, help="Captions sampled for the layout step.")
    parser.add_argument("--steps", type=int, default=50, help="DDIM steps (official 50).")
    parser.add_argument("--guidance", type=float, default=7.5)
    parser.add_argument(
        "--identity-cases",
        type=int,
        nargs="*",
        default=[0, 5],
        help="Suite cases (videop2p eval's numbering) whose clips are edited into their own prompt (none: skip).",
    )
    parser.add_argument(
        "--tune-steps", type=int, default=500, help="Tuning steps of the identity edits (official 500)."
    )
    parser.add_argument(
        "--method",
        dest="methods",
        action="append",
        choices=[m.value for m in Method if m is not Method.PER_FRAME],
        help="Method of the identity edits, repeatable (default: Video-P2P, the official settings).",
    )
    parser.add_argument(
        "--size",
        type=int,
        default=None,
        help="Frame side of the identity clips in pixels: the suite's scene drawn larger or smaller (default: the suite's).",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="Also write the figures here.")
    args = parser.parse_args()

    comps = load_components(args.model)
    started = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    layout = []
    for i in range(args.samples):
        spec = random_spec(rng, frames=1, size=comps.info.native_size)
        caption = caption_for(spec.objects, spec.background)
        masks = x0_masks(comps, caption, np.array(BACKGROUND_RGB[spec.background], float), args.steps, i, args.guidance)
        layout.append({"caption": caption, "layout_step": layout_step(masks)})
        print(f"layout step {layout[-1]['layout_step']:3d} of {args.steps}  {caption}", flush=True)
    mean = float(np.mean([r["layout_step"] for r in layout])) if layout else float("nan")
    if layout:
        print(
            f"mean layout step {mean:.1f} of {args.steps} ({mean / args.steps:.0%} of the steps; "
            f"Video-P2P's cross-attention window ends at 20%)  [{time.perf_counter() - started:.0f} s]"
        )
    identity = []
    if args.identity_cases:
        methods = [Method(m) for m in args.methods or [Method.VIDEO_P2P.value]]
        identity = identity_edits(comps, args.identity_cases, args.tune_steps, args.steps, methods, size=args.size)
        for m in methods:
            rows = [r for r in identity if r["method"] == m.value]
            print(
                f"identity edits, {m.value}: lowest frame IoU {min(r['min_frame_iou'] for r in rows):.2f}, "
                f"against the judge's reading {min(min(r['frame_iou_vs_source_reading']) for r in rows):.2f}, "
                f"frames within one pixel {np.mean([r['frames_within_one_pixel'] for r in rows]):.0%} over "
                f"{len(rows)} clips  [{time.perf_counter() - started:.0f} s]"
            )
    result = {
        "model": comps.info.identity,
        "steps": args.steps,
        "layout": layout,
        "mean_layout_step": mean,
        "identity": identity,
        "settings": vars(args),
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
