"""Peak memory and time of each stage against clip length, in windows and whole, on the bundled model.

Each (length, mode) runs in its own process. Peak memory is the growth of the peak RSS over the RSS
before the stage (Linux `clear_refs` resets the peak between stages). With `--release-memory`, glibc
maps every allocation of 64 KiB or more on its own and gives freed memory back at once
(`MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_`), so that a stage's peak is its own and not
hidden in memory an earlier stage freed but the process kept; this is the run for memory figures,
and it is about twice as slow (every allocation is a system call), so times come from a run without it. Toy clips render any length;
the object moves slowly across the clip, so it crosses every window border.

    python bench/bench_long_clips.py                         # 8, 32, 64, 128 frames, windows and whole
    python bench/bench_long_clips.py --lengths 8 32 --modes windows
    python bench/bench_long_clips.py --release-memory          # the memory figures
    python bench/bench_long_clips.py --release-memory --workspace --steps 50 --inner-steps 1 \
        --lengths 32 128 --modes windows --method direct null-text   # the inversion's kept latents

`--workspace` runs every stage with a workspace in a temporary folder, as the command line does (the
inversion keeps its finished steps there), instead of in memory as the API without one.

The stages run at a reduced budget (tuning steps, DDIM steps and null-text iterations are flags;
defaults 20, 10 and 2), which scales every row alike: memory does not depend on the step counts,
and time is linear in them.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time


def _peak_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024


def _current_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


RELEASE_MEMORY = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}  # freed memory back at once


def run_one(cmd: list[str], release_memory: bool = True) -> dict:
    """Run `cmd` (a benchmark's `--one` mode) in its own process; the JSON row it prints last."""
    env = {**os.environ, **(RELEASE_MEMORY if release_memory else {})}
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def length_parser(doc: str, lengths: list[int]) -> argparse.ArgumentParser:
    """A benchmark's parser with the flags `rows_by_length` reads: --lengths, --json, and the hidden
    --one --length a row's own process is run with."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lengths", type=int, nargs="+", default=lengths)
    p.add_argument("--json", help="also write the rows here")
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--length", type=int, help=argparse.SUPPRESS)
    return p


def rows_by_length(script: str, args, flags: list[str], header: str, cells) -> list[dict]:
    """Run `script --one --length L *flags` for every L of `args.lengths`, each in its own process with
    freed memory given back at once; print a Markdown table (`header`, then `cells(row)` per row) as
    rows come, and write the rows to `args.json` when given."""
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    rows = []
    for length in args.lengths:
        row = run_one([sys.executable, script, "--one", "--length", str(length), *flags])
        rows.append(row)
        print(cells(row), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return rows


def one(args) -> dict:
    """Tune, invert and edit one toy clip of `args.length` frames; per stage seconds and peak MB."""
    import torch

    from videop2p.config import EditConfig, InversionConfig, TuneConfig, WindowConfig
    from videop2p.latents import frames_hash
    from videop2p.models.loading import load_components
    from videop2p.pipeline import Clip, VideoP2P
    from videop2p.store.workspace import Workspace
    from videop2p.toy.world import Color, Shape, ToyClipSpec, ToyObject, render_clip

    torch.set_num_threads(args.threads)
    components = load_components(None)
    side = components.info.native_size
    spec = ToyClipSpec(objects=[ToyObject(Shape.CIRCLE, Color.RED)], frames=args.length, size=side, seed=3)
    toy = render_clip(spec)
    clip = Clip(toy.frames, 8.0, frames_hash(toy.frames))
    window = WindowConfig() if args.mode == "windows" else WindowConfig(size=None)
    vp = VideoP2P(components, Workspace(args.workspace_dir) if args.workspace_dir else None)
    vp.posterior(clip)
    stages = {}

    def measure(name, fn):
        _reset_peak()
        base = _current_mb()
        started = time.perf_counter()
        value = fn()
        stages[name] = {"seconds": time.perf_counter() - started, "peak_mb": _peak_mb() - base}
        return value

    tune = TuneConfig(steps=args.tune_steps, progress=False)
    inv = InversionConfig(method=args.method, steps=args.steps, inner_steps=args.inner_steps, progress=False)
    model, _ = measure("tune", lambda: vp.tune(clip, spec.caption(), tune, window=window))
    inversion, _ = measure("invert", lambda: vp.invert(model, clip, spec.caption(), inv, window=window))
    target = spec.caption().replace("red", "blue")
    edit = EditConfig(blend=("circle", "circle"), progress=False)
    measure("edit", lambda: vp.edit(model, inversion, spec.caption(), [target], edit, window=window))
    return {"length": args.length, "mode": args.mode, "method": args.method, "stages": stages}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lengths", type=int, nargs="+", default=[8, 32, 64, 128])
    p.add_argument("--modes", nargs="+", default=["windows", "whole"], choices=["windows", "whole"])
    p.add_argument("--tune-steps", type=int, default=20)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--inner-steps", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--method", nargs="+", default=["null-text"], help="inversion methods (a row each)")
    p.add_argument("--workspace", action="store_true", help="a workspace in a temporary folder, as the CLI has")
    p.add_argument("--workspace-dir", help=argparse.SUPPRESS)
    p.add_argument("--json", help="also write the rows here")
    p.add_argument(
        "--release-memory", action="store_true", help="memory figures (slower): freed memory returned at once"
    )
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--length", type=int, help=argparse.SUPPRESS)
    p.add_argument("--mode", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        args.method = args.method[0]
        sys.stdout.write(json.dumps(one(args)) + "\n")
        return
    rows = []
    flags = ["--tune-steps", str(args.tune_steps), "--steps", str(args.steps), "--inner-steps", str(args.inner_steps)]
    flags += ["--threads", str(args.threads)]
    print("| frames | mode | inversion | tune s | tune MB | invert s | invert MB | edit s | edit MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for mode, method, length in itertools.product(args.modes, args.method, args.lengths):
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, __file__, "--one", "--length", str(length), "--mode", mode, "--method", method]
            cmd += [*flags, *(["--workspace-dir", tmp] if args.workspace else [])]
            row = run_one(cmd, args.release_memory)
            rows.append(row)
            s = row["stages"]
            cells = " | ".join(f"{s[k]['seconds']:.1f} | {s[k]['peak_mb']:.0f}" for k in ("tune", "invert", "edit"))
            print(f"| {length} | {mode} | {method} | {cells} |", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
