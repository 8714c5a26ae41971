"""Time of reading an HDR frame as an SDR screen shows it (`io.hdr.hdr_to_sdr`), and of the way back
(`io.hdr.sdr_to_hdr`, an edit's pixels pasted into an HDR clip), per frame.

Frames of random 16-bit R'G'B' codes (8-bit for the way back) at the sizes given, PQ and HLG (HLG's
OOTF mixes the channels and costs more). Prints the median seconds per frame of `--repeats` runs for
each size, transfer and direction, on one thread and on as many as torch uses (the default).

    python bench/hdr.py                                  # 1920x1080 and 3840x2160
    python bench/hdr.py --sizes 1280x720 --repeats 9

Then the way back on an edit's box (`--box`, 200x200 pixels), as a pasted writer converts each frame's:
with the tables built for every call (`sdr_to_hdr`) and built once (`sdr_to_hdr_converter`).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from videop2p.io.hdr import HLG, PQ, hdr_to_sdr, sdr_to_hdr, sdr_to_hdr_converter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["1920x1080", "3840x2160"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--box", type=int, default=200, help="Side of the edit's box for the tables' cost.")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    for size in args.sizes:
        width, height = (int(v) for v in size.split("x"))
        codes = rng.integers(0, 65536, (height, width, 3), dtype=np.uint16)  # (H, W, 3)
        levels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        for direction, convert, frame in (("to SDR", hdr_to_sdr, codes), ("to HDR", sdr_to_hdr, levels)):
            for name, transfer in (("PQ", PQ), ("HLG", HLG)):
                for workers in (1, torch.get_num_threads()):
                    seconds = []
                    for _ in range(args.repeats):
                        start = time.perf_counter()
                        convert(frame, transfer, workers=workers)
                        seconds.append(time.perf_counter() - start)
                    median = statistics.median(seconds)
                    print(f"{size} {name} {direction}, {workers} thread(s): {median:.3f} s per frame")
    box = rng.integers(0, 256, (args.box, args.box, 3), dtype=np.uint8)
    converter = sdr_to_hdr_converter(PQ)
    for label, convert in (("tables every call", lambda: sdr_to_hdr(box, PQ)), ("tables once", lambda: converter(box))):
        seconds = []
        for _ in range(max(args.repeats, 15)):
            start = time.perf_counter()
            convert()
            seconds.append(time.perf_counter() - start)
        print(f"{args.box}x{args.box} box PQ to HDR, {label}: {1000 * statistics.median(seconds):.1f} ms")


if __name__ == "__main__":
    main()
