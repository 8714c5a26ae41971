"""What swapping in a VAE costs on the Stable Diffusion 1.5 architecture (`--vae`).

Builds SD 1.5's VAE with random weights (no download) as the model's own, writes another of the same
architecture in the layouts people have it in (an original LDM file as the A1111 web UI keeps
`vae-ft-mse-840000-ema-pruned.safetensors`, a diffusers file, a diffusers folder), and times
`models.vae.load_vae` on each (reading, converting an LDM file's keys, checking that it takes the
model's latents), checking that the loaded weights are the file's. Medians of `--repeats`.

    python bench/vae_swap.py
    python bench/vae_swap.py --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from diffusers import AutoencoderKL
from safetensors.torch import save_file
from sd15 import SD15_VAE  # bench/ is on the path when run as a script

from videop2p.models.vae import load_vae

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from ldm_checkpoint import vae_key  # noqa: E402 (the tests' LDM key layout, to write the web UI's file)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    own, other = AutoencoderKL(**SD15_VAE).eval(), AutoencoderKL(**SD15_VAE).eval()
    n = len(other.config.block_out_channels)
    with tempfile.TemporaryDirectory() as tmp:
        ldm = {}
        for k, v in other.state_dict().items():
            key = vae_key(k, n)
            ldm[key] = (
                v[:, :, None, None] if ".mid.attn_1." in key and key.endswith(".weight") and v.ndim == 2 else v
            ).contiguous()
        save_file(ldm, f"{tmp}/vae-ft.safetensors")
        save_file({k: v.contiguous() for k, v in other.state_dict().items()}, f"{tmp}/diffusers.safetensors")
        other.save_pretrained(f"{tmp}/folder")
        params = sum(p.numel() for p in other.parameters())
        print(
            f"SD 1.5 VAE: {params / 1e6:.1f} M parameters, {Path(tmp, 'vae-ft.safetensors').stat().st_size / 2**20:.0f} MiB"
        )
        for name in ("vae-ft.safetensors", "diffusers.safetensors", "folder"):
            seconds = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                vae = load_vae(f"{tmp}/{name}", own, offline=True)
                seconds.append(time.perf_counter() - start)
            ref, got = other.state_dict(), vae.state_dict()
            exact = all(torch.equal(ref[k], got[k]) for k in ref)
            print(
                f"{name}: {statistics.median(seconds):.2f} s (runs {', '.join(f'{s:.2f}' for s in seconds)}); weights exact: {exact}"
            )


if __name__ == "__main__":
    main()
