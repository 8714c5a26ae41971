"""Merge the tables of several `videop2p eval` output folders (one per group of methods) into one.

python tools/merge_eval.py OUT_A OUT_B ... --out MERGED [--cases 0 3 6]

Reads each folder's `summary.json` (its per-case rows), and writes MERGED/summary.md (the metric
means per method, then edit success per kind), cases.csv and summary.json with the same code as
`videop2p eval`. A method found in two folders is an error: their cases would be counted twice.
`--cases` keeps only those case indices, so methods run on a subset compare with the others on the
same cases.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from videop2p.evaluation import summarise, write_tables


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", type=Path, nargs="+", help="output folders of `videop2p eval`")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--cases", type=int, nargs="+", default=None, help="keep only these case indices")
    args = p.parse_args()
    rows: list[dict] = []
    seen: dict[str, Path] = {}
    for folder in args.folders:
        mine = json.loads((folder / "summary.json").read_text())["cases"]
        for method in dict.fromkeys(r["method"] for r in mine):
            if method in seen:
                raise SystemExit(f"method {method!r} is in both {seen[method]} and {folder}; merge each method once")
            seen[method] = folder
        rows += mine
    if args.cases is not None:
        wanted, held = set(args.cases), {r["case"] for r in rows}
        if wanted - held:
            raise SystemExit(f"--cases {sorted(wanted - held)} are in none of the folders; they hold {sorted(held)}")
        rows = [r for r in rows if r["case"] in wanted]
    rows.sort(key=lambda r: r["case"])
    write_tables(rows, summarise(rows), args.out)
    print((args.out / "summary.md").read_text())


if __name__ == "__main__":
    main()
