"""Load time and memory of an SD 1.5-sized tuned checkpoint in the authors' Tune-A-Video / Video-P2P layout.

Builds the SD 1.5 architecture with random weights (no download), inflates it, writes it as the
authors' folder (`unet/diffusion_pytorch_model.bin` in their UNet3DConditionModel layout beside the
tokenizer, text encoder, VAE and scheduler), then, in a fresh process, times `load_components` on
that folder and the inflation of its T2S model, and reports the peak RSS of that process.

    python bench/bench_tav_load.py --dir /tmp/tav-sd15        # writes the folder once, then measures
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


def _peak_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024


def write_folder(dest: Path) -> dict:
    from sd15 import sd15_components

    from videop2p.config import FrameAttentionMode, GroupNormMode
    from videop2p.models.loading import save_video_folder
    from videop2p.models.t2s import T2SModel

    started = time.perf_counter()
    comps = sd15_components()
    model = T2SModel.from_image_unet(comps.unet)
    built = time.perf_counter()
    save_video_folder(comps, model.unet.state_dict(), FrameAttentionMode.FIRST, GroupNormMode.CLIP, dest)
    size = sum(p.stat().st_size for p in (dest / "unet").iterdir())
    folder = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    return {
        "build_s": built - started,
        "write_s": time.perf_counter() - built,  # what `--save-tuned` and `export --format tune-a-video` take
        "unet_folder_mb": size / 2**20,
        "folder_mb": folder / 2**20,
    }


def measure(dest: Path) -> dict:
    """In this (fresh) process: load the folder, then inflate its T2S model with the temporal layers."""
    import torch

    from videop2p.models.loading import load_components
    from videop2p.models.t2s import T2SModel
    from videop2p.models.tav import apply_temporal

    started = time.perf_counter()
    comps = load_components(str(dest))
    loaded = time.perf_counter()
    load_peak = _peak_mb()
    model = T2SModel.from_image_unet(comps.unet)
    apply_temporal(model.unet, comps.video.temporal)
    done = time.perf_counter()
    params = sum(p.numel() for p in model.unet.parameters())
    return {
        "load_s": loaded - started,
        "inflate_and_apply_s": done - loaded,
        "peak_rss_after_load_mb": load_peak,
        "peak_rss_mb": _peak_mb(),
        "t2s_unet_params_m": params / 1e6,
        "temporal_tensors": len(comps.video.temporal),
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/tav-sd15"), help="Where the folder is written.")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.dir)))
        return
    written = write_folder(args.dir) if not (args.dir / "unet" / "config.json").exists() else {}
    out = subprocess.run(
        [sys.executable, __file__, "--dir", str(args.dir), "--measure"], capture_output=True, text=True
    )
    if out.returncode != 0:
        sys.exit(out.stderr)
    figures = {**written, **json.loads(out.stdout.strip().splitlines()[-1])}
    for key, value in figures.items():
        print(f"{key:22s} {value:10.1f}" if isinstance(value, float) else f"{key:22s} {value:>10}")


if __name__ == "__main__":
    main()
