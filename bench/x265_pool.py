"""How often x265 on a thread pool crashes a process that writes many short 10-bit mp4s, against no pool.

x265's lookahead on its thread pool races in flushing the encoder (x265 issue #684): now and then a
segfault in `Lookahead::getDecidedPicture`, or a process spinning for ever. `write_mp4` gives x265
no pool. This runs `--processes` processes, each importing torch and writing `--pairs` pairs of a
12-frame and a 4-frame 10-bit mp4 with `write_mp4` (x265's `pools` set as asked), and prints how many
ended well, crashed (a signal) or ran past `--timeout` seconds.

    python bench/x265_pool.py                         # no pool (as written) against a pool of 2
    python bench/x265_pool.py --pools none --processes 30
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time

WRITER = """
import re, sys
import numpy as np, torch
import videop2p.io.writing as writing
from videop2p.io.video import DEEP_SDR

pools, pairs, folder = sys.argv[1], int(sys.argv[2]), sys.argv[3]
asked = lambda *given, own=writing.x265_params: re.sub(r"pools=[^:]+", f"pools={pools}", own(*given))
writing.x265_params = asked
y, x = np.mgrid[0:64, 0:96]
frames = [np.stack([x * 500, y * 700, (x + y) * 300], -1).astype(np.uint16) for _ in range(12)]
for _ in range(pairs):
    writing.write_mp4(frames, f"{folder}/twelve.mp4", 24.0, deep=DEEP_SDR)
    writing.write_mp4(frames[:4], f"{folder}/four.mp4", 24.0, deep=DEEP_SDR)
print("written")
"""


def run_processes(pools: str, processes: int, pairs: int, timeout: float) -> dict[str, int]:
    """How many of `processes` writer processes ended well, crashed or ran past `timeout` seconds."""
    counts = {"ended well": 0, "crashed": 0, "ran past the time limit": 0}
    for _ in range(processes):
        with tempfile.TemporaryDirectory() as folder:
            try:
                done = subprocess.run(
                    [sys.executable, "-c", WRITER, pools, str(pairs), folder], capture_output=True, timeout=timeout
                )
            except subprocess.TimeoutExpired:
                counts["ran past the time limit"] += 1
                continue
        counts["ended well" if done.returncode == 0 else "crashed"] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pools", nargs="+", default=["none", "2"], help="x265's pools settings to compare")
    parser.add_argument("--processes", type=int, default=15)
    parser.add_argument("--pairs", type=int, default=100, help="pairs of mp4s each process writes")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    for pools in args.pools:
        started = time.perf_counter()
        counts = run_processes(pools, args.processes, args.pairs, args.timeout)
        said = ", ".join(f"{n} {what}" for what, n in counts.items())
        print(
            f"pools={pools}: {args.processes} processes of {args.pairs} pairs: {said} ({time.perf_counter() - started:.0f} s)"
        )


if __name__ == "__main__":
    main()
