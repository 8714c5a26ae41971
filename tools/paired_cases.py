"""Case-by-case difference of two `videop2p eval` runs of the same cases: is a change in a mean real?

python tools/paired_cases.py A/cases.csv:METHOD B/cases.csv:METHOD [--metrics ...]

For each metric, over the cases both runs hold with a finite value: the mean of A - B, its standard
error (sample standard deviation / sqrt(n)), and on how many cases A is above or below B. A mean
difference within two standard errors of zero is not told apart from case-to-case noise.
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
from pathlib import Path

METRICS = ("edit_success", "object_iou", "background_psnr", "reconstruction_psnr")


def read_cases(spec: str) -> dict[int, dict]:
    """CSV:METHOD -> {case: row} of that method's rows."""
    path, _, method = spec.rpartition(":")
    if not path or not Path(path).is_file():
        raise SystemExit(f"{spec!r}: expected CSV:METHOD with an existing cases.csv")
    rows = {int(r["case"]): r for r in csv.DictReader(Path(path).read_text().splitlines()) if r["method"] == method}
    if not rows:
        raise SystemExit(f"{spec!r}: no rows of method {method!r} in {path}")
    return rows


def paired(a: dict[int, dict], b: dict[int, dict], metric: str) -> tuple[int, float, float, int, int]:
    """(n, mean of a - b, standard error, cases a > b, cases a < b) over the cases both hold finitely."""
    d = []
    for case in sorted(a.keys() & b.keys()):
        x, y = (float(v) if (v := row.get(metric, "")) else math.nan for row in (a[case], b[case]))
        if math.isfinite(x) and math.isfinite(y):
            d.append(x - y)
    if len(d) < 2:
        return len(d), math.nan, math.nan, 0, 0
    se = statistics.stdev(d) / math.sqrt(len(d))
    return len(d), statistics.mean(d), se, sum(x > 0 for x in d), sum(x < 0 for x in d)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", help="CSV:METHOD, e.g. docs/speed/tuning_200x4_suite/cases.csv:fast")
    p.add_argument("b", help="CSV:METHOD to compare against")
    p.add_argument("--metrics", nargs="+", default=list(METRICS))
    args = p.parse_args()
    a, b = read_cases(args.a), read_cases(args.b)
    print(f"A = {args.a}\nB = {args.b}\n")
    print("| metric | cases | mean A - B | standard error | A above | A below |")
    print("|---|---|---|---|---|---|")
    for m in args.metrics:
        n, mean, se, up, down = paired(a, b, m)
        print(f"| {m} | {n} | {mean:+.3f} | {se:.3f} | {up} | {down} |")


if __name__ == "__main__":
    main()
