"""Peak memory and time of writing a run's outputs against clip length, at Stable Diffusion's 512x512.

`videop2p run` ends by writing the source, the reconstruction and each edit (mp4 and GIF), the
side-by-side grid and each mask overlay (mp4 and GIF), the report and `outputs.json`. This writes
them for synthetic clips (moving colour ramps, one target, a mask over a quarter of each frame) with
no model, so that the write stage's own memory shows; the decoded clips exist before it and are not
counted. Each length runs in its own process; peak MB is the growth of the peak RSS over the RSS
before the stage, with glibc giving freed memory back at once, as in bench_long_clips.py.

    python bench/bench_write_outputs.py                  # 24 and 96 frames at 512x512
    python bench/bench_write_outputs.py --lengths 8 --size 256
    python bench/bench_write_outputs.py --threads 1      # torch's threads, which make the GIF palettes
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from types import SimpleNamespace

from bench_long_clips import _current_mb, _peak_mb, _reset_peak, length_parser, rows_by_length


def one(args) -> dict:
    """Write one run's outputs for a synthetic clip of `args.length` frames; seconds and peak MB."""
    import numpy as np
    import torch

    from videop2p.config import RunConfig
    from videop2p.editing import EditResult
    from videop2p.outputs import write_run_outputs
    from videop2p.pipeline import Clip, EditOutput

    if args.threads:
        torch.set_num_threads(args.threads)
    side, frames = args.size, args.length
    y, x = np.mgrid[0:side, 0:side]
    t = np.arange(frames)[:, None, None]
    source = np.stack([(x + 3 * t) % 256, (y + 2 * t) % 256, (x + y + 0 * t) % 256], -1).astype(np.uint8)
    edit = 255 - source
    cells = side // 8  # the mask at Stable Diffusion's latent size
    masks = torch.zeros(1, frames, cells, cells, dtype=torch.bool)
    masks[:, :, cells // 4 : 3 * cells // 4, cells // 4 : 3 * cells // 4] = True
    result = EditResult(torch.zeros(2, frames, 4, cells, cells), masks, None, [["a"], ["b"]], {}, ["swap"])
    out = EditOutput(source.copy(), [edit], result)
    clip = Clip(source, 24.0, "synthetic")
    with tempfile.TemporaryDirectory() as d:
        cfg = RunConfig(source="a red circle", targets=["a blue circle"], out=d)
        _reset_peak()
        base = _current_mb()
        started = time.perf_counter()
        write_run_outputs(cfg, clip, out, [], SimpleNamespace(identity="synthetic"))
        seconds, peak = time.perf_counter() - started, _peak_mb() - base
    threads, clip_mb = torch.get_num_threads(), source.nbytes / 2**20
    return {"length": frames, "size": side, "threads": threads, "clip_mb": clip_mb, "seconds": seconds, "peak_mb": peak}


def main() -> None:
    p = length_parser(__doc__, [24, 96])
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--threads", type=int, default=0, help="torch's thread count (default: torch's own)")
    args = p.parse_args()
    if args.one:
        sys.stdout.write(json.dumps(one(args)) + "\n")
        return
    header = "| frames | size | threads | one clip, MB | seconds | peak MB |"
    rows_by_length(__file__, args, ["--size", str(args.size), "--threads", str(args.threads)], header, _cells)


def _cells(r: dict) -> str:
    return f"| {r['length']} | {r['size']} | {r['threads']} | {r['clip_mb']:.0f} | {r['seconds']:.1f} | {r['peak_mb']:.0f} |"


if __name__ == "__main__":
    main()
