"""Peak memory and time of writing a run's outputs against clip length, at Stable Diffusion's 512x512.

`videop2p run` ends by writing the source, the reconstruction and each edit (mp4 and GIF), the
side-by-side grid and each mask overlay (mp4 and GIF), the report and `outputs.json`. This writes
them for synthetic clips (moving colour ramps, one target, a mask over a quarter of each frame) with
no model, so that the write stage's own memory shows; the decoded clips exist before it and are not
counted. With `--full WxH` the clip is cut from an input of that size, written as an mp4 first, and
each edit is pasted back into it (the edits' mp4s at the input's size, read again from the file), as
a run on a larger input does. Each length runs in its own process; peak MB is the growth of the peak
RSS over the RSS before the stage, with glibc giving freed memory back at once, as in bench_long_clips.py.

    python bench/bench_write_outputs.py                  # 24 and 96 frames at 512x512
    python bench/bench_write_outputs.py --lengths 8 --size 256
    python bench/bench_write_outputs.py --threads 1      # torch's threads: the files written at once, GIF palettes
    python bench/bench_write_outputs.py --full 1920x1080 --targets 2   # edits pasted into a 1080p input
    python bench/bench_write_outputs.py --full 3840x2160 --hdr pq --lengths 8  # into a 4K HDR10 input
    python bench/bench_write_outputs.py --full 3840x2160 --hdr sdr10 --lengths 8  # into a 4K 10-bit SDR input
    python bench/bench_write_outputs.py --full 3840x2160 --hdr exr --png-frames --lengths 8  # a 4K OpenEXR plate

With `--hdr pq|hlg` the input is HDR video (the ramps as `sdr_to_hdr` makes them, 10-bit HEVC; PQ with
HDR10 metadata) and the edits' mp4s are pasted into its own frames and written as HDR, as a run does;
with `--hdr sdr10` it is 10-bit SDR video (the ramps at 16 bits, 10-bit HEVC), its edits written so;
with `--hdr exr` a folder of OpenEXR frames (the ramps as light for a gamma 2.4 screen, half floats, ZIP16),
read as HDR and pasted into as PQ video. `--png-frames` adds each edit's frames (OpenEXR for a plate).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from types import SimpleNamespace

import numpy as np
from bench_long_clips import _current_mb, _peak_mb, _reset_peak, length_parser, rows_by_length


def _ramps(width: int, height: int, t: int) -> np.ndarray:
    """Frame `t` (height, width, 3) of colour ramps moving right and down."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([(x + 3 * t) % 256, (y + 2 * t) % 256, (x + y) % 256], -1).astype(np.uint8)


def one(args) -> dict:
    """Write one run's outputs for a synthetic clip of `args.length` frames; seconds and peak MB."""
    import torch

    from videop2p.config import RunConfig, VideoConfig
    from videop2p.editing import EditResult
    from videop2p.io.exr import encode_exr
    from videop2p.io.hdr import HLG, PQ, sdr_to_hdr
    from videop2p.io.video import DEEP_SDR, DeepSignal, eight_to_sixteen, probe_video, read_video, resize_frames
    from videop2p.io.writing import write_mp4
    from videop2p.outputs import write_run_outputs
    from videop2p.pipeline import Clip, EditOutput

    if args.threads:
        torch.set_num_threads(args.threads)
    side, frames, targets = args.size, args.length, args.targets
    width, height = (int(v) for v in args.full.split("x")) if args.full else (side, side)
    with tempfile.TemporaryDirectory() as d:
        if args.full:  # the input at its own size, and the working frames cut from it as a run cuts them
            ramps = (_ramps(width, height, t) for t in range(frames))
            hdr = None
            if args.hdr == "sdr10":  # a 10-bit SDR input, in its own 16-bit form
                hdr = DEEP_SDR
                ramps = (eight_to_sixteen(f) for f in ramps)
            elif args.hdr:  # an HDR10 (PQ) or HLG input, in its own 16-bit form
                transfer = PQ if args.hdr == "pq" else HLG
                said = (0.708, 0.292, 0.17, 0.797, 0.131, 0.046, 0.3127, 0.329, 1000.0, 0.005)
                hdr = DeepSignal(PQ, said, (1000, 400)) if transfer == PQ else DeepSignal(HLG)
                ramps = (sdr_to_hdr(f, transfer, hdr.peak) for f in ramps)
            if args.hdr == "exr":  # an OpenEXR plate: the ramps' light on a gamma 2.4 screen, half floats
                video = f"{d}/plate"
                os.mkdir(video)
                for t, f in enumerate(ramps, start=1):
                    light = np.power(f / np.float32(255), np.float32(2.4)).astype(np.float16)
                    with open(f"{video}/{t}.exr", "wb") as file:
                        file.write(encode_exr(light))
            else:
                video = write_mp4(ramps, f"{d}/input.mp4", 24.0, deep=hdr)
            source = np.stack([resize_frames(f[None], side, side)[0] for f in read_video(video).frames])
            clip = Clip(
                source,
                24.0,
                "synthetic",
                video=VideoConfig(path=str(video), frames=frames),
                full_size=(width, height),
                deep=probe_video(video).deep,
            )
        else:
            source = np.stack([_ramps(side, side, t) for t in range(frames)])
            clip = Clip(source, 24.0, "synthetic")
        edits = [np.roll(255 - source, 17 * k, axis=2) for k in range(targets)]
        cells = side // 8  # the mask at Stable Diffusion's latent size
        masks = torch.zeros(targets, frames, cells, cells, dtype=torch.bool)
        masks[:, :, cells // 4 : 3 * cells // 4, cells // 4 : 3 * cells // 4] = True
        tokens = [["a"]] * (1 + targets)
        result = EditResult(
            torch.zeros(1 + targets, frames, 4, cells, cells), masks, None, tokens, {}, ["swap"] * targets
        )
        out = EditOutput(source.copy(), edits, result)
        cfg = RunConfig(source="a red circle", targets=[f"a circle {k}" for k in range(targets)], out=f"{d}/out")
        cfg.png_frames = args.png_frames
        _reset_peak()
        base = _current_mb()
        started = time.perf_counter()
        write_run_outputs(cfg, clip, out, [], SimpleNamespace(identity="synthetic", vae_scale_factor=8))
        seconds, peak = time.perf_counter() - started, _peak_mb() - base
    threads, clip_mb = torch.get_num_threads(), source.nbytes / 2**20
    row = {"length": frames, "size": side, "threads": threads, "clip_mb": clip_mb, "seconds": seconds, "peak_mb": peak}
    return row | {"full": args.full or "", "targets": targets, "hdr": args.hdr or "", "png_frames": args.png_frames}


def main() -> None:
    p = length_parser(__doc__, [24, 96])
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--threads", type=int, default=0, help="torch's thread count (default: torch's own)")
    p.add_argument("--full", help="WxH of an input the edits are pasted into (default: none, the working size)")
    p.add_argument("--targets", type=int, default=1)
    p.add_argument(
        "--hdr",
        choices=["pq", "hlg", "sdr10", "exr"],
        help="with --full: the input is HDR video of this transfer, 10-bit SDR, or an OpenEXR plate",
    )
    p.add_argument("--png-frames", action="store_true", help="also each edit's frames (OpenEXR for a plate)")
    args = p.parse_args()
    if args.one:
        sys.stdout.write(json.dumps(one(args)) + "\n")
        return
    header = "| frames | size | input | targets | threads | one clip, MB | seconds | peak MB |"
    flags = ["--size", str(args.size), "--threads", str(args.threads), "--targets", str(args.targets)]
    flags += ["--full", args.full] if args.full else []
    flags += ["--hdr", args.hdr] if args.hdr else []
    rows_by_length(__file__, args, flags + (["--png-frames"] if args.png_frames else []), header, _cells)


def _cells(r: dict) -> str:
    size = (r.get("full") or "the working size") + (f" {r['hdr'].upper()}" if r.get("hdr") else "")
    size += ", frames too" if r.get("png_frames") else ""
    cells = [r["length"], r["size"], size, r.get("targets", 1), r["threads"], f"{r['clip_mb']:.0f}"]
    return "| " + " | ".join(map(str, cells)) + f" | {r['seconds']:.1f} | {r['peak_mb']:.0f} |"


if __name__ == "__main__":
    main()
