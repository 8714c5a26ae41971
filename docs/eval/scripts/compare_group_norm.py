"""Video-P2P and fast mode with the authors' GroupNorm statistics (over the clip) against per frame,
on the same suite cases: the kept per-frame cases in docs/eval/bundled/cases_vp2p_fast/ and a run of

    videop2p eval --out OUT --method Video-P2P --method fast --group-norm clip

    python docs/eval/scripts/compare_group_norm.py OUT/cases
"""

import json
import math
import sys
from pathlib import Path

KEPT = Path(__file__).resolve().parents[1] / "bundled" / "cases_vp2p_fast"


def rows(folder: Path) -> dict:
    out = {}
    for p in sorted(Path(folder).glob("case*.json")):
        for r in json.loads(p.read_text())["rows"]:
            out[(r["case"], r["method"])] = r
    return out


def mean(rs: list[dict], key: str) -> float:
    known = [r[key] for r in rs if not math.isnan(r[key])]
    return sum(known) / max(1, len(known))


def main() -> None:
    clip, frame = rows(Path(sys.argv[1])), rows(KEPT)
    cases = sorted({c for c, _ in clip})
    print(f"{len(cases)} cases: {cases[0]}-{cases[-1]}")
    print("| method | GroupNorm | success | colour swaps | object IoU | bg PSNR | recon PSNR |")
    print("|---|---|---|---|---|---|---|")
    for method in ("Video-P2P", "fast"):
        for name, table in (("frame (default)", frame), ("clip (authors')", clip)):
            rs = [table[(c, method)] for c in cases]
            col = [r for r in rs if r["kind"] == "colour swap"]
            swaps = f"{sum(r['edit_success'] for r in col):.0f} of {len(col)}"
            print(
                f"| {method} | {name} | {mean(rs, 'edit_success'):.2f} | {swaps} | {mean(rs, 'object_iou'):.2f} "
                f"| {mean(rs, 'background_psnr'):.1f} | {mean(rs, 'reconstruction_psnr'):.1f} |"
            )


if __name__ == "__main__":
    main()
