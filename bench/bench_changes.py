"""Before and after, for every performance change, on one model: time, UNet evaluations, peak memory.

Each side of each change runs in its own process. Memory is the peak over what the process held
once the model and inputs were loaded: RSS on CPU (Linux VmHWM, reset before the measured work),
allocated CUDA memory on a GPU.

    python bench/bench_changes.py --model toy                                  # bundled toy model, 8 frames
    python bench/bench_changes.py --model sd15 --size 256 --steps 2 --inner 2  # SD 1.5 architecture on a CPU
    python bench/bench_changes.py --model sd15 --device cuda --dtype float16   # SD 1.5 on a GPU, 512x512

Changes (before -> after):
- tune-checkpointing: a tuning step without -> with gradient checkpointing (the default)
- nulltext-checkpointing: null-text inversion backward without -> with checkpoints
- fast-source: fast-mode edit with an unconditional row for the source (the authors' code computes one for
  every prompt) -> none for the unguided source
- targets: 3 edits run one at a time (each with its own source branch) -> 3 targets in one batch
- maps: attention probabilities in every controlled layer -> only in the layers whose maps are read
- attention-slicing: one 3-row UNet call with the math attention kernel, unsliced -> 1024 queries at a time
- vae-slicing: decoding 2x`--frames` frames at once -> slices of at most two 512x512 frames' pixels (the default)
- tune-frames: a tuning step on every frame (official) -> on 4 of them, frame 0 included (`--tune-frames 4`,
  the quick preset)
- kept-path: null-text edit whose source branch is sampled under its own guidance -> read from the path the
  null-text optimisation kept (no unconditional source row; same latents)
- null-text-frames: null-text inversion with the loss on every frame (official) -> on 4 of them per iteration
  (`--null-text-frames 4`, the quick preset's)
- frame-attention: the model's first frame-attention layer, the authors' gather of every frame's keys
  and values -> frame 0's keys and values computed once
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from bench_memory import _current_mb, _peak_mb, _reset_peak
from bench_stages import setup
from diffusers.models.attention import BasicTransformerBlock

from videop2p.models.attention import FrameAttentionMode, FrameAttnProcessor

SOURCE = "a red circle moving on the grass"
TARGETS = [
    "a blue circle moving on the grass",
    "a green circle moving on the grass",
    "a red square moving on the grass",
]
CHANGES = {  # name -> (before, after) labels
    "tune-checkpointing": ("tuning step, no checkpointing", "tuning step, gradient checkpointing"),
    "nulltext-checkpointing": ("null-text inversion, plain backward", "null-text inversion, checkpointed backward"),
    "fast-source": ("fast edit, source's unconditional row computed", "fast edit, no unconditional source row"),
    "targets": ("3 edits, one at a time", "3 targets, one batch"),
    "maps": ("edit, probabilities everywhere", "edit, probabilities where read"),
    "attention-slicing": ("UNet call, math attention", "UNet call, math attention, sliced"),
    "vae-slicing": ("VAE decode, all frames at once", "VAE decode, sliced by pixels"),
    "tune-frames": ("tuning step, every frame", "tuning step, 4 frames"),
    "frame-attention": ("frame-attention layer, authors' gather", "frame-attention layer, frame 0 once"),
    "kept-path": ("null-text edit, source sampled", "null-text edit, source read from the kept path"),
    "null-text-frames": ("null-text inversion, every frame", "null-text inversion, 4 frames per iteration"),
}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _fast_inversion(args, model, c, z0, cond, empty):
    from videop2p.inversion import InversionConfig, invert

    return invert(model, c.scheduler, z0, cond, empty, InversionConfig(method="fast", steps=args.steps, progress=False))


def work(args, change: str, after: bool) -> dict:
    """Set up outside the measurement, then measure one side of one change."""
    from videop2p.editing import EditConfig, edit
    from videop2p.inversion import InversionConfig, InversionMethod, invert
    from videop2p.latents import decode_latents
    from videop2p.sampling import EvalCounter
    from videop2p.tuning import TuneConfig, tune

    c, model, z0, cond, empty = setup(args)
    if change == "frame-attention":
        attn = next(m.attn1 for m in model.unet.modules() if isinstance(m, BasicTransformerBlock))
        tokens = z0.shape[-2] * z0.shape[-1]  # the first block works at the latent resolution
        x = torch.randn(args.frames, tokens, attn.to_q.in_features, device=z0.device, dtype=z0.dtype)
    counter = EvalCounter()
    prepared = None
    if change in ("fast-source", "targets", "maps"):
        prepared = _fast_inversion(args, model, c, z0, cond, empty)
        if change == "fast-source" and not after:  # the source gets an unconditional row (same work as the authors')
            prepared.method = InversionMethod.NULL_TEXT
            prepared.uncond_embeddings = empty[None].expand(args.steps, *empty.shape)
    if change == "kept-path":
        nt = InversionConfig(steps=args.steps, inner_steps=args.inner, progress=False)
        prepared = invert(model, c.scheduler, z0, cond, empty, nt)
        if not after:
            prepared.trajectory = None  # the source computed as the authors' code does
    if change == "attention-slicing":
        text = torch.randn(3, *cond.shape[1:], device=z0.device, dtype=z0.dtype)
        rows = z0.expand(3, *z0.shape[1:]).contiguous()
    if change == "vae-slicing":
        frames2 = torch.cat([z0, z0], dim=1)  # (1, 2F, C, h, w)
    _sync(args.device)
    _reset_peak(args.device)
    base = _current_mb(args.device)
    t0 = time.perf_counter()
    if change == "tune-checkpointing":
        cfg = TuneConfig(steps=args.tune_steps, gradient_checkpointing=after, progress=False)
        tune(model, c, (z0, torch.full_like(z0, 0.01)), cond, cfg)
    elif change == "tune-frames":
        cfg = TuneConfig(steps=args.tune_steps, frames=4 if after else None, progress=False)
        tune(model, c, (z0, torch.full_like(z0, 0.01)), cond, cfg)
    elif change == "null-text-frames":
        cfg = InversionConfig(steps=args.steps, inner_steps=args.inner, early_stop=-1.0, progress=False)
        cfg.frames = 4 if after else None
        invert(model, c.scheduler, z0, cond, empty, cfg, counter=counter)
    elif change == "kept-path":
        edit(model, c, prepared, SOURCE, TARGETS[:1], EditConfig(blend=("circle", "circle"), progress=False), counter)
    elif change == "nulltext-checkpointing":
        cfg = InversionConfig(steps=args.steps, inner_steps=args.inner, early_stop=-1.0, progress=False)
        cfg.gradient_checkpointing = after
        invert(model, c.scheduler, z0, cond, empty, cfg, counter=counter)
    elif change in ("fast-source", "maps"):
        cfg = EditConfig(blend=("circle", "circle"), materialize_all=change == "maps" and not after, progress=False)
        edit(model, c, prepared, SOURCE, TARGETS[:1], cfg, counter)
    elif change == "targets":
        cfg = EditConfig(progress=False)
        for batch in [TARGETS] if after else [[t] for t in TARGETS]:
            edit(model, c, prepared, SOURCE, batch, cfg, counter)
    elif change == "attention-slicing":
        from torch.nn.attention import SDPBackend, sdpa_kernel

        model.set_attention_slicing(1024 if after else None)
        with torch.no_grad(), sdpa_kernel([SDPBackend.MATH]):
            model(rows, 500, text)
    elif change == "frame-attention":
        with torch.no_grad():
            if after:
                FrameAttnProcessor(FrameAttentionMode.FIRST)(attn, x, num_frames=args.frames)
            else:  # the authors' way: every frame's keys and values projected, frame 0's gathered per frame
                q, k, v = attn.to_q(x), attn.to_k(x), attn.to_v(x)
                k, v = k[[0] * args.frames], v[[0] * args.frames]
                heads = lambda t: t.unflatten(-1, (attn.heads, -1)).transpose(1, 2)  # noqa: E731  (F, heads, N, d)
                out = F.scaled_dot_product_attention(heads(q), heads(k), heads(v))
                attn.to_out[0](out.transpose(1, 2).flatten(2))
    elif change == "vae-slicing":
        decode_latents(c, frames2, batch=None if after else frames2.shape[1])
    _sync(args.device)
    seconds = time.perf_counter() - t0
    if change in ("tune-checkpointing", "tune-frames"):
        seconds /= args.tune_steps
    return {"seconds": seconds, "evaluations": sum(counter.counts.values()), "extra_mb": _peak_mb(args.device) - base}


def run(argv: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *argv], capture_output=True, text=True)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def _cell(r: dict) -> str:
    if "error" in r:
        return f"failed: {r['error']}"
    evals = f", {r['evaluations']} evals" if r.get("evaluations") else ""
    return f"{r['seconds']:.2f} s{evals}, {r['extra_mb']:.0f} MB"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="toy", help="toy, tiny, sd15 (random SD 1.5 weights), or a model id/path")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--size", type=int, default=0, help="frame side in pixels (default: the model's native size)")
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--steps", type=int, default=50, help="DDIM steps of inversions and edits")
    p.add_argument("--inner", type=int, default=10, help="null-text iterations per step (no early stop)")
    p.add_argument("--tune-steps", type=int, default=3, help="tuning steps averaged per tuning case")
    p.add_argument("--changes", nargs="+", choices=list(CHANGES), default=list(CHANGES))
    p.add_argument("--change", help=argparse.SUPPRESS)
    p.add_argument("--after", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.change:
        print(json.dumps(work(args, args.change, args.after)))
        return
    common = ["--model", args.model, "--device", args.device, "--dtype", args.dtype, "--size", str(args.size)]
    common += ["--frames", str(args.frames), "--steps", str(args.steps), "--inner", str(args.inner)]
    common += ["--tune-steps", str(args.tune_steps)]
    unit = "CUDA allocated" if args.device.startswith("cuda") else "RSS"
    print(
        f"model={args.model} device={args.device} dtype={args.dtype} size={args.size or 'native'} "
        f"frames={args.frames} ddim_steps={args.steps} null-text iterations={args.inner}; memory: peak {unit} "
        "over the loaded model and inputs"
    )
    print("| change | before | after | time | memory |")
    print("|---|---|---|---|---|")
    for change in args.changes:
        before, after = run([*common, "--change", change]), run([*common, "--change", change, "--after"])
        ratio = ""
        if "error" not in before and "error" not in after:
            ratio = (
                f"{after['seconds'] / before['seconds']:.2f}x | {after['extra_mb'] / max(before['extra_mb'], 1):.2f}x"
            )
        else:
            ratio = " | "
        b, a = CHANGES[change]
        print(f"| {change} | {b}: {_cell(before)} | {a}: {_cell(after)} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
