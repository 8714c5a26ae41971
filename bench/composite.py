"""Time of pasting an edit into full-resolution frames (`compositing.composite`), per frame.

The edit and its local-blend mask are at the working size (the bundled model's 64x64 area, masks of
4-pixel cells); the input frames are at the sizes given. Prints seconds per frame for each size.

    python bench/composite.py                                 # 640x360, 1920x1080, 3840x2160
    python bench/composite.py --sizes 1920x1080 --frames 4
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from videop2p.compositing import composite
from videop2p.io.video import resolve_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["640x360", "1920x1080", "3840x2160"])
    parser.add_argument("--frames", type=int, default=2)
    parser.add_argument("--cell", type=int, default=4, help="Working pixels per mask cell (the VAE's factor).")
    args = parser.parse_args()
    for size in args.sizes:
        w0, h0 = (int(v) for v in size.split("x"))
        w, h = resolve_size((w0, h0), None, None, 64, args.cell * 2)  # the working size `run` picks for a 64x64 model
        originals = np.random.default_rng(0).integers(0, 255, (args.frames, h0, w0, 3), dtype=np.uint8)
        edited = np.full((args.frames, h, w, 3), (0, 0, 255), dtype=np.uint8)
        masks = torch.zeros(args.frames, h // args.cell, w // args.cell, dtype=torch.bool)
        masks[:, h // args.cell // 3 : 2 * h // args.cell // 3, w // args.cell // 3 : 2 * w // args.cell // 3] = True
        start = time.perf_counter()
        for _ in composite(originals, edited, masks, "crop", args.cell):
            pass
        per_frame = (time.perf_counter() - start) / args.frames
        print(f"{w0}x{h0} from {w}x{h}: {per_frame:.2f} s per frame ({torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
