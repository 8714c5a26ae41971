"""Memory of the edit's kept cross-attention maps against clip length, at Stable Diffusion 1.5's shapes.

An edit keeps the cross-attention maps of the layers that build the local-blend masks (on Stable
Diffusion 1.5 at 512x512, the five layers of 16x16 maps) for every frame of the clip, for the source
and each target, and builds the masks from them at every step. This drives the edit's controller
alone, window by window as a long clip's edit does, with random attention probabilities of those
shapes (8 heads, 77 token positions), so that the maps' memory shows without a UNet, weights or a
GPU; the latents it blends are the clip's, (P, F, 4, 64, 64). Each length runs in its own process;
peak MB is the growth of the peak RSS over the RSS before the loop, with glibc giving freed memory
back at once (`MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_`), as in bench_long_clips.py.

    python bench/bench_edit_maps.py                   # 64, 256 and 1024 frames, 2 steps
    python bench/bench_edit_maps.py --lengths 256 --steps 3

The layers' names come from the architecture (a Stable Diffusion 1.5 UNet built on the meta device,
which allocates nothing), the plan from the edit's own `build_plan` with the bundled tokenizer.
Memory does not depend on the step count beyond one step with blending; time is linear in it.
"""

from __future__ import annotations

import json
import sys
import time
from types import SimpleNamespace

from bench_long_clips import _current_mb, _peak_mb, _reset_peak, length_parser, rows_by_length

SOURCE = "a rabbit is jumping on the grass"
TARGET = "an origami rabbit is jumping on the grass"


def one(args) -> dict:
    """Drive the controller over `args.length` frames for `args.steps` steps; seconds and peak MB."""
    import torch
    from diffusers import UNet2DConditionModel
    from sd15 import SD15_UNET

    from videop2p.config import EditConfig, WindowConfig
    from videop2p.control.controller import EditController, Layout
    from videop2p.editing import _averaged_attention, build_plan
    from videop2p.models.loading import attention_layers
    from videop2p.models.tokenizer import bundled_tokenizer
    from videop2p.windows import plan_windows

    torch.set_num_threads(args.threads)
    with torch.device("meta"):
        unet = UNet2DConditionModel(**SD15_UNET)
    layers = attention_layers(unet)
    components = SimpleNamespace(tokenizer=bundled_tokenizer(), info=SimpleNamespace(attention_layers=layers))
    side = SD15_UNET["sample_size"]
    cfg = EditConfig(blend=("rabbit", "rabbit"), progress=False)
    plan, _ = build_plan(components, SOURCE, [TARGET], cfg, args.steps, (side, side))
    stored = sorted(plan.store_layers)
    windows = plan_windows(args.length, WindowConfig()).windows
    length, prompts, rows = components.tokenizer.model_max_length, 2, 4  # null-text: two unconditional rows
    latents = torch.randn(prompts, args.length, 4, side, side)  # (P, F, C, h, w)
    probs = {}  # window size -> ((rows*F_w)*heads, N, L) probabilities, made once
    _reset_peak()
    base = _current_mb()
    started = time.perf_counter()
    controller = EditController(plan, num_frames=args.length)
    for step in range(args.steps):
        controller.begin_step(step, Layout(cond_start=rows - prompts, prompts=prompts, rows=rows))
        for window in windows:
            controller.set_window(window)
            n = len(window.frames)
            if n not in probs:
                probs[n] = torch.rand(rows * n * args.heads, (side // 4) ** 2, length).softmax(-1)
            for name in stored:
                controller.on_cross(name, probs[n], rows, args.heads)
        latents, _ = controller.local_blend(latents)
    attention = _averaged_attention(controller, (side, side))
    return {
        "length": args.length,
        "layers": len(stored),
        "attention_shape": list(attention.shape),
        "seconds": time.perf_counter() - started,
        "peak_mb": _peak_mb() - base,
    }


def main() -> None:
    p = length_parser(__doc__, [64, 256, 1024])
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    if args.one:
        sys.stdout.write(json.dumps(one(args)) + "\n")
        return
    flags = ["--steps", str(args.steps), "--heads", str(args.heads), "--threads", str(args.threads)]
    header = "| frames | stored layers | kept maps (P, F, y, x, L) | seconds | peak MB |"
    rows_by_length(__file__, args, flags, header, _cells)


def _cells(row: dict) -> str:
    shape = " x ".join(map(str, row["attention_shape"]))
    return f"| {row['length']} | {row['layers']} | {shape} | {row['seconds']:.1f} | {row['peak_mb']:.0f} |"


if __name__ == "__main__":
    main()
