"""Per-stage figures: tuning step time, inversion per method, editing, peak memory, delta size.

Each case runs in its own process so that its peak RSS (or peak CUDA memory) is its own.

    python bench/bench_stages.py                      # tiny configuration, 8 frames, CPU
    python bench/bench_stages.py --model toy          # the bundled toy model
    python bench/bench_stages.py --device cuda        # on a GPU
    python bench/bench_stages.py --delta-size         # SD 1.5 delta vs full UNet size (meta tensors)
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch


def peak_memory_mb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def components_for(name: str, device: str, dtype: str = "float32"):
    from videop2p.models.loading import load_components
    from videop2p.testing import dummy_components

    if name == "tiny":
        c = dummy_components()
        for m in (c.unet, c.vae, c.text_encoder):
            m.to(device)
        return c
    if name == "sd15":  # the real SD 1.5 architecture with random weights: timing and memory only
        from sd15 import sd15_components

        return sd15_components(device, torch.float16 if dtype == "float16" else torch.float32)
    return load_components(None if name == "toy" else name, device=device)


def setup(args):
    from videop2p.latents import encode_prompts
    from videop2p.models.t2s import T2SModel

    torch.manual_seed(0)
    c = components_for(args.model, args.device, args.dtype)
    model = T2SModel.from_image_unet(c.unet)
    side = args.size // c.info.vae_scale_factor if args.size else c.info.sample_size
    if args.model == "toy":  # a real toy clip: its latents, not noise
        from videop2p.latents import encode_posterior
        from videop2p.toy.world import Color, Shape, ToyClipSpec, ToyObject, render_clip

        clip = render_clip(
            ToyClipSpec([ToyObject(Shape.CIRCLE, Color.RED)], frames=args.frames, size=side * c.info.vae_scale_factor)
        )
        z0 = encode_posterior(c, clip.frames)[0].to(args.device)
    else:
        z0 = (
            torch.randn(1, args.frames, c.info.latent_channels, side, side, device=args.device, dtype=c.unet.dtype)
            * 0.8
        )
    cond = encode_prompts(c, ["a red circle moving on the grass"])
    empty = encode_prompts(c, [""])
    return c, model, z0, cond, empty


def case_tune(args) -> dict:
    from videop2p.tuning import TuneConfig, tune

    c, model, z0, cond, _ = setup(args)
    times = []
    for _ in range(args.tune_steps):
        t0 = time.perf_counter()
        tune(model, c, (z0, torch.full_like(z0, 0.01)), cond, TuneConfig(steps=1, lr=1e-4, progress=False))
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return {
        "case": "tune step",
        "seconds_per_step": statistics.median(times[1:] or times),
        "peak_mb": peak_memory_mb(args.device),
    }


def case_invert(args, method: str) -> dict:
    from videop2p.editing import EditConfig, reconstruct
    from videop2p.inversion import InversionConfig, InversionMethod, invert

    c, model, z0, cond, empty = setup(args)
    plain = method == "plain-7.5"  # DDIM inversion sampled back with guidance 7.5 and the empty prompt
    t0 = time.perf_counter()
    inv = invert(
        model,
        c.scheduler,
        z0,
        cond,
        empty,
        InversionConfig(method="fast" if plain else method, steps=args.steps, progress=False),
    )
    seconds = time.perf_counter() - t0
    if plain:
        inv.method = InversionMethod.NULL_TEXT
        inv.uncond_embeddings = empty[None].expand(args.steps, *empty.shape)
    rec = reconstruct(model, c, inv, "a red circle moving on the grass", EditConfig(progress=False))
    return {
        "case": f"invert {method}",
        "seconds": seconds,
        "unet_evaluations": sum(inv.meta["unet_evaluations"].values()),
        "peak_mb": peak_memory_mb(args.device),
        "reconstruction_mse": float((rec - z0).pow(2).mean()),
    }


def case_edit(args, materialize_all: bool) -> dict:
    from videop2p.editing import EditConfig, edit
    from videop2p.inversion import InversionConfig, invert
    from videop2p.sampling import EvalCounter

    c, model, z0, cond, empty = setup(args)
    inv = invert(model, c.scheduler, z0, cond, empty, InversionConfig(method="fast", steps=args.steps, progress=False))
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    counter = EvalCounter()
    cfg = EditConfig(blend=("circle", "circle"), materialize_all=materialize_all, progress=False)
    t0 = time.perf_counter()
    edit(model, c, inv, "a red circle moving on the grass", ["a blue circle moving on the grass"], cfg, counter)
    return {
        "case": "edit, probabilities " + ("everywhere" if materialize_all else "only where read"),
        "seconds": time.perf_counter() - t0,
        "unet_evaluations": counter.counts["edit"],
        "peak_mb": peak_memory_mb(args.device),
    }


def delta_size() -> dict:
    """Delta vs full UNet for the SD 1.5 configuration, computed on meta tensors (no download, no RAM)."""
    from diffusers import UNet2DConditionModel
    from sd15 import SD15_UNET

    from videop2p.models.t2s import T2SModel

    with torch.device("meta"):
        unet = UNet2DConditionModel(**SD15_UNET)
        model = T2SModel.from_image_unet(unet)
    full = sum(p.numel() for p in model.unet.parameters())
    image = sum(p.numel() for p in unet.parameters())
    delta = sum(p.numel() for p in model.trainable_parameters().values())
    return {
        "case": "SD 1.5 sizes",
        "image_unet_params": image,
        "inflated_unet_params": full,
        "delta_params": delta,
        "delta_mb_fp32": delta * 4 / 2**20,
        "full_unet_mb_fp32": full * 4 / 2**20,
    }


def run_case(argv: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *argv], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="tiny", help="tiny, toy, sd15 (random SD 1.5 weights), or a model id/path")
    p.add_argument("--dtype", default="float32", help="float32 or float16 (sd15 on a GPU)")
    p.add_argument("--size", type=int, default=0, help="frame side in pixels (default: the model's native size)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--tune-steps", type=int, default=10)
    p.add_argument("--delta-size", action="store_true")
    p.add_argument("--cases", nargs="+", help="only these cases, e.g. tune invert:null-text invert:fast edit:needed")
    p.add_argument("--case", help=argparse.SUPPRESS)
    args = p.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    if args.case:
        kind, _, arg = args.case.partition(":")
        result = {
            "tune": lambda: case_tune(args),
            "invert": lambda: case_invert(args, arg),
            "edit": lambda: case_edit(args, arg == "all"),
        }[kind]()
        print(json.dumps(result))
        return
    if args.delta_size:
        print(json.dumps(delta_size(), indent=2))
        return
    common = [
        "--model",
        args.model,
        "--device",
        args.device,
        "--frames",
        str(args.frames),
        "--steps",
        str(args.steps),
        "--tune-steps",
        str(args.tune_steps),
        "--dtype",
        args.dtype,
        "--size",
        str(args.size),
    ]
    cases = [
        "tune",
        "invert:plain-7.5",
        "invert:null-text",
        "invert:fast",
        "invert:direct",
        "invert:negative-prompt",
        "edit:needed",
        "edit:all",
    ]
    cases = args.cases or cases
    size = args.size or "native"
    print(
        f"model={args.model} device={args.device} dtype={args.dtype} size={size} frames={args.frames} ddim_steps={args.steps}"
    )
    print(
        f"| case | seconds | UNet evaluations | peak memory (MB, {'CUDA allocated' if args.device.startswith('cuda') else 'RSS'}) | reconstruction MSE |"
    )
    print("|---|---|---|---|---|")
    for case in cases:
        r = run_case([*common, "--case", case])
        secs = r.get("seconds_per_step", r.get("seconds"))
        label = r["case"] + (" (per step)" if "seconds_per_step" in r else "")
        mse = f"{r['reconstruction_mse']:.2e}" if "reconstruction_mse" in r else ""
        print(f"| {label} | {secs:.3f} | {r.get('unet_evaluations', '')} | {r['peak_mb']:.0f} | {mse} |", flush=True)


if __name__ == "__main__":
    main()
