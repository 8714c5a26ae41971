"""Peak memory of the SD 1.5 architecture (random weights) against frame count, and what it implies.

Each measurement runs in its own process. On CPU the figure is the RSS growth over the loaded
model (fp32); on a GPU it is the peak allocated CUDA memory over the loaded model.

    python bench/bench_memory.py                          # CPU, 512x512, 1/2/4 frames, fp32
    python bench/bench_memory.py --device cuda --dtype float16 --frames 8 16 24 32
    python bench/bench_memory.py --size 256 --frames 16 64 --window 16 --cases infer tune-checkpointing

Cases: one edit-step UNet call (3 rows: target unconditional, source and target conditional),
one tuning step with and without gradient checkpointing, and VAE decoding of the frames at once
versus in slices. A straight-line fit of memory against frames extrapolates to 32 frames; on CPU
the fp16 figure is the fp32 one halved (activations and weights both halve), stated as an estimate.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import resource
import subprocess
import sys

import numpy as np
import torch


def _peak_mb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024


def _reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    else:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # Linux: the peak RSS (VmHWM) starts again from the current RSS


def _current_mb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.memory_allocated() / 2**20
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def frame_attention_layer(args) -> dict:
    """One SD 1.5 first-block frame-attention layer (320 channels, 8 heads) at `size`, F frames:
    ours (frame 0's keys and values computed once, all queries in one call) against the authors'
    way (keys and values of every frame projected, then frame 0's gathered for each frame)."""
    import time

    from diffusers.models.attention_processor import Attention

    from videop2p.models.attention import FrameAttentionMode, FrameAttnProcessor

    torch.manual_seed(0)
    dtype = torch.float16 if args.dtype == "float16" else torch.float32
    attn = Attention(query_dim=320, heads=8, dim_head=40).to(args.device, dtype)
    n = (args.size // 8) ** 2
    x = torch.randn(args.frames, n, 320, device=args.device, dtype=dtype)
    _reset_peak(args.device)
    base = _current_mb(args.device)
    t0 = time.perf_counter()
    with torch.no_grad():
        if args.what == "frameattn-ours":
            FrameAttnProcessor(FrameAttentionMode.FIRST)(attn, x, num_frames=args.frames)
        else:  # official: k = to_k(all frames)[[0] * F], attention per frame
            q, k, v = attn.to_q(x), attn.to_k(x), attn.to_v(x)
            k, v = k[[0] * args.frames], v[[0] * args.frames]
            heads = lambda t: t.view(args.frames, n, 8, 40).transpose(1, 2)  # noqa: E731
            out = torch.nn.functional.scaled_dot_product_attention(heads(q), heads(k), heads(v))
            attn.to_out[0](out.transpose(1, 2).reshape(args.frames, n, 320))
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    return {"what": args.what, "frames": args.frames, "model_mb": base, "extra_mb": _peak_mb(args.device) - base,
            "peak_mb": _peak_mb(args.device), "seconds": seconds}  # fmt: skip


def measure(args) -> dict:
    from sd15 import sd15_components

    from videop2p.config import WindowConfig
    from videop2p.latents import decode_latents, encode_posterior
    from videop2p.models.t2s import T2SModel
    from videop2p.sampling import predict
    from videop2p.windows import plan_windows

    dtype = torch.float16 if args.dtype == "float16" else torch.float32
    torch.manual_seed(0)
    c = sd15_components(args.device, dtype)
    model = T2SModel.from_image_unet(c.unet)
    c.unet = None  # only the inflated copy is used from here on
    gc.collect()
    side = args.size // c.info.vae_scale_factor
    f = args.frames
    text = torch.randn(3, c.tokenizer.model_max_length, 768, device=args.device, dtype=dtype)
    z = torch.randn(3, f, 4, side, side, device=args.device, dtype=dtype)
    plan = plan_windows(f, WindowConfig(size=args.window)) if args.window else None
    frames = np.random.default_rng(0).integers(0, 256, (f, args.size, args.size, 3), dtype=np.uint8)
    _reset_peak(args.device)
    base = _current_mb(args.device)
    if args.what.startswith("infer"):
        from torch.nn.attention import SDPBackend, sdpa_kernel

        if args.what.endswith("sliced"):
            model.set_attention_slicing(1024)
        kernels = sdpa_kernel([SDPBackend.MATH]) if "math" in args.what else contextlib.nullcontext()
        with torch.no_grad(), kernels:
            predict(model, z, 500, text, plan=plan)  # with a plan: every window in turn, blended
    elif args.what.startswith("tune"):
        unet = model.unet
        params = list(model.trainable_parameters().values())
        for p in params:
            p.requires_grad_(True)
        unet.train()
        if args.what == "tune-checkpointing":
            unet.enable_gradient_checkpointing()
        window = plan.sample(torch.Generator().manual_seed(0)) if plan is not None else None
        clip = z[:1, list(window.frames)] if window is not None else z[:1]  # a tuning step sees one window
        anchors = window.anchors if window is not None else (0,)
        loss = model(clip, 500, text[:1], anchors).float().pow(2).mean()
        loss.backward()
    elif args.what.startswith("vae-encode"):
        encode_posterior(c, frames, batch=int(args.what.split(":")[1]) or f)
    elif args.what.startswith("vae"):
        batch = int(args.what.split(":")[1]) or f
        decode_latents(c, z[:1], batch=batch)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    peak = _peak_mb(args.device)
    return {
        "what": args.what,
        "frames": f,
        "model_mb": base,
        "extra_mb": peak - base,
        "peak_mb": peak,
    }


def run(argv: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *argv], capture_output=True, text=True)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--frames", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--window", type=int, help="process clips longer than this in windows (infer and tune cases)")
    p.add_argument("--cases", nargs="+", help="only these cases (infer, infer-math, infer-math-sliced, tune, "
                   "tune-checkpointing, vae:0 (all frames at once), vae:N (N at a time), vae-encode:0, vae-encode:N, "
                   "frameattn-ours, frameattn-official)")  # fmt: skip
    p.add_argument("--what", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.what:
        args.frames = args.frames[0]
        print(json.dumps(frame_attention_layer(args) if args.what.startswith("frameattn") else measure(args)))
        return
    common = ["--device", args.device, "--dtype", args.dtype, "--size", str(args.size)]
    common += ["--window", str(args.window)] if args.window else []
    unit = "CUDA allocated" if args.device.startswith("cuda") else "RSS"
    windows = f", windows of {args.window} frames" if args.window else ""
    print(
        f"SD 1.5 architecture, random weights, {args.size}x{args.size}, {args.dtype}, {args.device} ({unit}){windows}"
    )
    print("| case | frames | model (MB) | peak (MB) | over the model (MB) |")
    print("|---|---|---|---|---|")
    fits: dict[str, list[tuple[int, float]]] = {}
    model_mb = 0.0
    cases = args.cases or ["infer", "tune", "tune-checkpointing", "vae:0", "vae:1"]
    for what in cases:
        for f in args.frames:
            r = run([*common, "--frames", str(f), "--what", what])
            if "error" in r:
                print(f"| {what} | {f} | | failed: {r['error']} | |", flush=True)
                continue
            model_mb = max(model_mb, r["model_mb"])
            fits.setdefault(what, []).append((f, r["extra_mb"]))
            secs = f" ({r['seconds']:.3f} s)" if "seconds" in r else ""
            print(
                f"| {what} | {f} | {r['model_mb']:.0f} | {r['peak_mb']:.0f} | {r['extra_mb']:.0f}{secs} |", flush=True
            )
    print("\nLinear fit of the memory over the model against frames, extrapolated:")
    halve = 0.5 if args.dtype == "float32" else 1.0
    for what, points in fits.items():
        if len(points) < 2:
            continue
        fs, ms = np.array([p[0] for p in points], float), np.array([p[1] for p in points], float)
        slope, icpt = np.polyfit(fs, ms, 1)
        est = {n: icpt + slope * n for n in (8, 16, 24, 32)}
        line = ", ".join(f"{n} frames {v:.0f} MB" for n, v in est.items())
        print(f"- {what}: {slope:.0f} MB per frame + {icpt:.0f} MB; {line}")
        if halve != 1.0:
            total = model_mb * halve + est[32] * halve
            print(
                f"  fp16 estimate at 32 frames (halved): {est[32] * halve:.0f} MB over a {model_mb * halve:.0f} MB model = {total / 1024:.1f} GiB"
            )


if __name__ == "__main__":
    main()
