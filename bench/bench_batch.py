"""Wall time of a 4-job batch (2 toy clips x 2 edits) with the local and the Ray executor.

    python bench/bench_batch.py [--tune-steps 50] [--steps 20] [--frames 8]

Each executor gets a fresh output folder and workspace, so both do the same work: two tunings, two
inversions, four edits. Prints one line per executor and the per-job table.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import yaml

from videop2p.batch import BatchSettings, Executor, load_jobs, run_batch, summary_table
from videop2p.io.writing import write_frames
from videop2p.toy.world import Background, Color, Motion, Shape, ToyClipSpec, ToyObject, render_clip


def make_jobs(root: Path, frames: int, tune_steps: int, steps: int) -> Path:
    clips = {"circle": (Shape.CIRCLE, Color.RED), "square": (Shape.SQUARE, Color.BLUE)}
    for name, (shape, color) in clips.items():
        spec = ToyClipSpec([ToyObject(shape, color)], Background.GRASS, Motion.LINEAR, frames=frames, size=64, seed=5)
        write_frames(render_clip(spec).frames, root / name)
    jobs = []
    for name, (shape, color) in clips.items():
        src = f"a {color.value} {shape.value} moving on the grass"
        for new in ("green", "yellow"):
            jobs.append(
                {
                    "name": f"{name}-{new}",
                    "video": name,
                    "source": src,
                    "targets": [src.replace(color.value, new)],
                    "edit": {"blend": [shape.value, shape.value]},
                }
            )
    data = {
        "defaults": {"video": {"frames": frames}, "tune": {"steps": tune_steps}, "inversion": {"steps": steps}},
        "jobs": jobs,
    }
    path = root / "jobs.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tune-steps", type=int, default=50)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--cpus-per-task", type=float, default=1.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        jobs_file = make_jobs(root, args.frames, args.tune_steps, args.steps)
        print(
            f"4 jobs, 2 clips, {args.frames} frames, tune {args.tune_steps} steps, {args.steps} DDIM steps, null-text"
        )
        print(f"torch threads in this process: {torch.get_num_threads()}")
        for executor in (Executor.LOCAL, Executor.RAY):
            jobs, ws = load_jobs(
                jobs_file, out=str(root / executor.value / "out"), workspace=str(root / executor.value / "ws")
            )
            t0 = time.perf_counter()
            results = run_batch(jobs, ws, BatchSettings(executor=executor, num_cpus=args.cpus_per_task))
            wall = time.perf_counter() - t0
            print(f"\n{executor.value}: {wall:.1f} s wall ({sum(r.status == 'done' for r in results)}/4 done)")
            print(summary_table(results))


if __name__ == "__main__":
    main()
