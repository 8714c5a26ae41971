"""videop2p against the authors' Video-P2P code, on the same job, at the same time.

    python bench/side_by_side.py --authors PATH/TO/Video-P2P --clip FRAMES_FOLDER [--preset quick]

`--authors` is a checkout of github.com/dvlab-research/Video-P2P (never copied into this project).
The first run makes a virtual environment for it (`--venv`, default ~/.cache/videop2p/authors-venv)
with the versions its code needs (Python 3.11, diffusers 0.11.1, transformers 4.25.1, ...) and the
torch build this environment has. Two stand-ins let their code run on a CPU: xformers' attention
becomes torch SDPA exactly where their code enables xformers, and torchvision's make_grid a small
function (bench/side_by_side_runner.py). Nothing of theirs is changed but the number of null-text
inner steps, when --inner-steps is not their 10.

Both sides get the same tiny SD-1.5-shaped model with random weights (fixed seed; their code
hard-codes 512x512 and the SD block layout), the same first --frames frames of the clip, the same
prompts, blend word and reweighting, 50 DDIM steps (hard-coded in their code) and --threads
threads each. The authors' side runs their tuning (--tune-steps, official 500), then their
run_videop2p.py with --fast and without. Our side runs the preset's tuning, scaled by
--tune-steps / 500 (the quick preset's 100 steps become 10 at --tune-steps 50), then fast mode and
null-text mode. The two sides run at the same time, one process each.

Prints the table (time and peak RSS per stage, the ratios, and the first edit = tuning + inversion
+ edit per mode) and writes it with the raw figures into --out.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNNER = HERE / "side_by_side_runner.py"
AUTHORS_PINS = [  # what their code runs with (requirements.txt's versions, and the hub client they need)
    "diffusers==0.11.1",
    "transformers==4.25.1",
    "tokenizers==0.13.3",
    "huggingface_hub==0.20.3",
    "accelerate==0.25.0",
    "numpy==1.26.4",
    "omegaconf",
    "einops",
    "decord",
    "imageio",
    "opencv-python-headless",
    "ipython",
]
SOURCE, TARGET = (
    "a rabbit is jumping on the grass",
    "a origami rabbit is jumping on the grass",
)  # their rabbit-jump config


def ensure_venv(venv: Path, python: str) -> Path:
    """The authors' environment, made on first use; returns its python."""
    py = venv / "bin" / "python"
    probe = [
        str(py),
        "-c",
        "import diffusers, transformers, omegaconf, IPython; assert diffusers.__version__ == '0.11.1'",
    ]
    if py.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return py
    import torch

    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    pip = [str(py), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, f"torch=={torch.__version__.split('+')[0]}"], check=True)
    subprocess.run([*pip, *AUTHORS_PINS], check=True)
    return py


def prepare_clip(src: Path, frames: int, dst: Path) -> Path:
    """The clip's first `frames` frames in natural order, named 1.jpg.. (their two scripts sort names differently)."""
    files = sorted(
        (p for p in src.iterdir() if p.is_file()),
        key=lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)],
    )
    if len(files) < frames:
        sys.exit(f"--clip {src} has {len(files)} frames; --frames {frames} needs at least that many.")
    dst.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(files[:frames], start=1):
        shutil.copyfile(f, dst / f"{i}.jpg")
    return dst


def runner(py: Path, command: str, json_path: Path, log: Path, threads: int, **kw) -> subprocess.Popen:
    args = [str(py), str(RUNNER), command, "--json", str(json_path), "--threads", str(threads)]
    for k, v in kw.items():
        if v is True:
            args.append(f"--{k.replace('_', '-')}")
        elif isinstance(v, list):
            args += [f"--{k.replace('_', '-')}", *map(str, v)]
        elif v is not None and v is not False:
            args += [f"--{k.replace('_', '-')}", str(v)]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "TOKENIZERS_PARALLELISM": "false",
    }
    env.pop("PYTHONPATH", None)
    return subprocess.Popen(args, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, cwd=json_path.parent)


def chain(steps: list) -> threading.Thread:
    """Run the steps (callables returning a Popen) one after the other in a thread; returns the thread."""

    def go():
        for step in steps:
            proc = step()
            if proc.wait() != 0:
                print(f"failed: {' '.join(proc.args[:3])} (see its log)", file=sys.stderr)
                return

    t = threading.Thread(target=go)
    t.start()
    return t


def _cell(x: dict | None) -> str:
    return f"{x['seconds']:.1f} s, {x['peak_mib']:.0f} MiB" if x else "-"


def table(authors: dict, ours: dict, preset: str, full_steps: tuple[int, int], ddim_steps: int) -> str:
    """Per-stage rows, then the first edit per mode as run, and at the full budget: tuning at the full
    step counts (`full_steps`: theirs, ours) from each side's measured median tuning step, inversion
    and edit scaled linearly from `ddim_steps` to 50 DDIM steps (an extrapolation, so labelled)."""
    a_tune, o_tune = authors["tune"], ours
    rows = [
        ("tuning (whole command: load, encode, steps, save)", a_tune["stages"].get("tune"), ours["stages"].get("tune")),
        ("fast: inversion", authors["fast"]["stages"].get("invert"), ours["stages"].get("invert:fast")),
        ("fast: edit + decode + write", authors["fast"]["stages"].get("edit"), ours["stages"].get("edit:fast")),
        ("null-text: inversion", authors["null"]["stages"].get("invert"), ours["stages"].get("invert:null-text")),
        ("null-text: edit + decode + write", authors["null"]["stages"].get("edit"), ours["stages"].get("edit:null-text")),
    ]  # fmt: skip
    lines = [
        f"| stage | authors' code | videop2p ({preset} preset) | time ratio | memory ratio (ours / theirs) |",
        "|---|---|---|---|---|",
    ]
    for name, a, o in rows:
        ratio = f"{a['seconds'] / o['seconds']:.2f}x" if a and o else "-"
        mem = f"{o['peak_mib'] / a['peak_mib']:.2f}" if a and o else "-"
        lines.append(f"| {name} | {_cell(a)} | {_cell(o)} | {ratio} | {mem} |")
    a_step, o_step = a_tune.get("tune_step_seconds"), o_tune.get("tune_step_seconds")
    lines.append(f"| one tuning step (median) | {a_step or 0:.2f} s | {o_step or 0:.2f} s | | |")
    for mode, a_key, o_key in (("fast", "fast", "fast"), ("null-text", "null", "null-text")):
        a_parts = [
            a_tune["stages"].get("tune"),
            authors[a_key]["stages"].get("invert"),
            authors[a_key]["stages"].get("edit"),
        ]
        o_parts = [
            ours["stages"].get("tune"),
            ours["stages"].get(f"invert:{o_key}"),
            ours["stages"].get(f"edit:{o_key}"),
        ]
        if not (all(a_parts) and all(o_parts)):
            continue
        a_s, o_s = sum(x["seconds"] for x in a_parts), sum(x["seconds"] for x in o_parts)
        lines.append(
            f"| **first edit, {mode}, as run** (tuning + inversion + edit) | {a_s:.1f} s | {o_s:.1f} s | **{a_s / o_s:.2f}x** | |"
        )
        if a_step and o_step:
            scale = 50 / ddim_steps
            a_full = a_parts[0]["seconds"] + (full_steps[0] - a_tune["tune_steps"]) * a_step
            o_full = o_parts[0]["seconds"] + (full_steps[1] - o_tune["tune_steps"]) * o_step
            a_full += scale * (a_parts[1]["seconds"] + a_parts[2]["seconds"])
            o_full += scale * (o_parts[1]["seconds"] + o_parts[2]["seconds"])
            lines.append(
                f"| first edit, {mode}, extrapolated to tuning {full_steps[0]} / {full_steps[1]} steps and 50 DDIM steps "
                f"| {a_full:.0f} s | {o_full:.0f} s | {a_full / o_full:.2f}x | |"
            )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--authors", type=Path, required=True, help="Checkout of dvlab-research/Video-P2P.")
    p.add_argument("--clip", type=Path, required=True, help="Folder of frames (their rabbit clip: data/rabbit).")
    p.add_argument("--venv", type=Path, default=Path.home() / ".cache" / "videop2p" / "authors-venv")
    p.add_argument("--python", default="python3.11", help="Python for their environment.")
    p.add_argument("--out", type=Path, default=Path("side-by-side"))
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--tune-steps", type=int, default=500, help="Their tuning steps; ours are the preset's, scaled.")
    p.add_argument("--inner-steps", type=int, default=10, help="Null-text inner steps, both sides.")
    p.add_argument("--steps", type=int, default=50, help="DDIM steps, both sides (theirs: a constant, patched).")
    p.add_argument("--preset", default="quick", help="Our preset (official or quick).")
    p.add_argument("--threads", type=int, default=1, help="Threads per side.")
    p.add_argument("--modes", nargs="+", choices=["fast", "null-text"], default=["fast", "null-text"])
    p.add_argument(
        "--null-text-frames",
        type=int,
        default=None,
        help="Ours: frames the null-text loss reads per iteration (default: the preset's; 0: every frame).",
    )
    p.add_argument(
        "--reuse-tuning",
        action="store_true",
        help="Keep their tuned model and its figures from an earlier run in --out.",
    )
    a = p.parse_args()
    sys.path.insert(0, str(HERE.parent / "src"))
    from videop2p.config import OFFICIAL_TUNE_STEPS, preset_config

    if not (a.authors / "run_videop2p.py").is_file():
        sys.exit(f"--authors {a.authors} is not a Video-P2P checkout (no run_videop2p.py).")
    ours_steps = preset_config(a.preset).tune.steps or OFFICIAL_TUNE_STEPS
    ours_steps = max(1, round(ours_steps * a.tune_steps / OFFICIAL_TUNE_STEPS))
    out = a.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    py = ensure_venv(a.venv, a.python)
    clip = prepare_clip(a.clip, a.frames, out / "clip")
    model = out / "model"
    if not (model / "unet").is_dir():
        subprocess.run(
            [str(py), str(RUNNER), "build", "--model", str(model), "--json", str(out / "build.json")], check=True
        )
        shutil.copytree(HERE.parent / "src" / "videop2p" / "data" / "clip_tokenizer", model / "tokenizer")
    common = dict(clip=clip, frames=a.frames, source=SOURCE, target=TARGET, blend="rabbit", reweight_word="origami")
    common.update(inner_steps=a.inner_steps, steps=a.steps)
    tuned = out / "authors_tuned"
    tuned_before = (out / "authors_tune.json").is_file() and (tuned / "unet").is_dir() and a.reuse_tuning
    authors_steps = [] if tuned_before else [
        lambda: runner(py, "authors-tune", out / "authors_tune.json", out / "authors_tune.log", a.threads,
                       authors=a.authors, model=model, output=tuned, tune_steps=a.tune_steps, **common),
    ]  # fmt: skip
    for mode in a.modes:  # each mode's files: authors_fast.*, authors_null.*
        name = "authors_fast" if mode == "fast" else "authors_null"
        authors_steps.append(
            lambda name=name, fast=mode == "fast": runner(py, "authors-p2p", out / f"{name}.json", out / f"{name}.log",
                                                          a.threads, authors=a.authors, output=tuned, fast=fast,
                                                          **common)
        )  # fmt: skip
    ours_steps_ = [
        lambda: runner(Path(sys.executable), "ours", out / "ours.json", out / "ours.log", a.threads,
                       model=model, output=out / "ours", preset=a.preset, tune_steps=ours_steps,
                       modes=a.modes, null_text_frames=a.null_text_frames, **common),
    ]  # fmt: skip
    started = time.perf_counter()
    threads = [chain(authors_steps), chain(ours_steps_)]
    for t in threads:
        t.join()
    seconds = time.perf_counter() - started

    def read(name: str) -> dict:
        path = out / f"{name}.json"
        return json.loads(path.read_text()) if path.exists() else {"stages": {}}

    authors = {"tune": read("authors_tune"), "fast": read("authors_fast"), "null": read("authors_null")}
    ours = read("ours")
    full = (OFFICIAL_TUNE_STEPS, preset_config(a.preset).tune.steps or OFFICIAL_TUNE_STEPS)
    text = table(authors, ours, a.preset, full, a.steps)
    settings = (
        f"{a.frames} frames of {a.clip.name} at 512x512, {a.steps} DDIM steps, null-text inner steps {a.inner_steps}, "
        f"tuning: authors {a.tune_steps} steps, ours {ours_steps} ({a.preset} preset), {a.threads} thread(s) per side, "
        f"both sides at once; {seconds:.0f} s in all"
    )
    (out / "results.json").write_text(
        json.dumps(
            {"settings": settings, "authors": authors, "ours": ours, "args": {k: str(v) for k, v in vars(a).items()}},
            indent=1,
        )
    )
    (out / "table.md").write_text(f"{settings}\n\n{text}\n")
    print(settings)
    print(text)


if __name__ == "__main__":
    main()
