"""The identity edits of `bench/layout_probe.py --json` files, summed up over their clips, one row a method.

Each figure reads the object against the source frames as the judge reads them (the identity bar's
IoU): the mean and lowest frame IoU, the share of frames at IoU 0.95 or more and within one pixel of
the source's outline, the clips at 0.95 in every frame, the frames whose IoU is the reconstruction's
own, and the reconstruction's share of frames at 0.95. A clip measured in several files counts once
per method (the last file's).

    python docs/eval/scripts/identity_summary.py docs/bundled_layout/decoupled_window/identity_coupled_*.json
    python docs/eval/scripts/identity_summary.py docs/bundled_layout/identity_paste_decoder_cases*.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

BAR = 0.95  # issue 23's identity IoU


def summary(rows: list[dict]) -> dict:
    """The figures of one method's identity rows (one a clip)."""
    frames = [f for r in rows for f in r["frame_iou_vs_source_reading"]]
    recon = [f for r in rows for f in r["reconstruction_frame_iou_vs_source_reading"]]
    pairs = [
        p
        for r in rows
        for p in zip(r["frame_iou_vs_source_reading"], r["reconstruction_frame_iou_vs_source_reading"], strict=True)
    ]
    lowest = min(rows, key=lambda r: min(r["frame_iou_vs_source_reading"]))
    return {
        "clips": len(rows),
        "frames": len(frames),
        "mean": sum(frames) / len(frames),
        "lowest": min(frames),
        "lowest_case": lowest["case"],
        "at_bar": sum(f >= BAR for f in frames) / len(frames),
        "within_one_pixel": sum(p for r in rows for p in r["frames_within_one_pixel"]) / len(frames),
        "clips_at_bar": sum(min(r["frame_iou_vs_source_reading"]) >= BAR for r in rows),
        "as_reconstruction": sum(abs(a - b) < 1e-9 for a, b in pairs) / len(pairs),
        "reconstruction_at_bar": sum(f >= BAR for f in recon) / len(recon),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", nargs="+", type=Path, help="bench/layout_probe.py --json files.")
    args = parser.parse_args()
    by_method: dict[str, dict[int, dict]] = {}
    for path in args.json:
        for row in json.loads(path.read_text())["identity"]:
            by_method.setdefault(row["method"], {})[row["case"]] = row
    for method, rows in by_method.items():
        s = summary(list(rows.values()))
        print(
            f"{method}: {s['clips']} clips, {s['frames']} frames; mean IoU {s['mean']:.3f}, lowest frame "
            f"{s['lowest']:.2f} (case {s['lowest_case']}); frames at {BAR}: {s['at_bar']:.0%}, within one pixel: "
            f"{s['within_one_pixel']:.0%}; clips at {BAR} in every frame: {s['clips_at_bar']}; frames at the "
            f"reconstruction's own IoU: {s['as_reconstruction']:.0%}; the reconstruction's frames at {BAR}: "
            f"{s['reconstruction_at_bar']:.0%}"
        )


if __name__ == "__main__":
    main()
