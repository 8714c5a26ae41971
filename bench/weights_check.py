"""What the load-time check for NaN or infinite weights costs on the Stable Diffusion 1.5 architecture.

Builds SD 1.5's UNet, VAE and text encoder with random weights (no download) and times
`check_weights_finite` over them, as `load_components` runs it on every model it loads.

    python bench/weights_check.py                   # float32 on the CPU
    python bench/weights_check.py --dtype float16 --device cuda
"""

from __future__ import annotations

import argparse
import time

import torch
from sd15 import sd15_components  # bench/ is on the path when run as a script

from videop2p.models.loading import check_weights_finite, parse_dtype


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    comps = sd15_components()
    parts = {}
    for name in ("text_encoder", "vae", "unet"):
        module = getattr(comps, name).to(args.device, parse_dtype(args.dtype))
        parts[name] = module.state_dict()
    count = sum(t.numel() for tensors in parts.values() for t in tensors.values())
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        check_weights_finite("sd15", parts)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    print(
        f"{count / 1e6:.0f} M weights, {args.dtype} on {args.device}, {torch.get_num_threads()} threads: "
        f"check {min(times):.2f} s (best of {args.repeats}; runs {', '.join(f'{t:.2f}' for t in times)})"
    )


if __name__ == "__main__":
    main()
