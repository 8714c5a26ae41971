"""Every option of a `videop2p` command given bad values, one run each.

Each run must end well (exit 0: the value was valid, the run made its outputs) or with a one-line error
(exit 2), never with a traceback, another exit code, more than one error line, or a run past `--limit`
seconds (a count that should have been refused: 1e20 tuning steps). Each command's smallest run is made
first, without a bad value, and must end well. The smallest budgets are given
(1 tuning step, 2 fast DDIM steps, 2 frames; 1 training step of each phase), so a valid value costs a
few seconds. Runs are made in OUT, one output folder each (a value read as a relative path is a folder
there). Prints a line per value (its error, or "ok"), then a count; exits 1 on any failure.

    python bench/cli_fuzz.py --clip ../shared/data/videop2p-clips/rabbit --out /tmp/fuzz
    python bench/cli_fuzz.py --clip CLIP --out OUT --command "toy train" --options --vae-steps --seed
    python bench/cli_fuzz.py --clip CLIP --out OUT --command all
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import signal
import sys
from pathlib import Path

from typer.main import get_command

from videop2p.cli import app
from videop2p.cli import main as main_command

# the last two: a name longer than a file's name may be (255 bytes on most file systems), and a link given for a path
VALUES = (
    "",
    " ",
    "nan",
    "-1",
    "0",
    "0.5",
    "1e309",
    "9" * 20,
    "abc",
    "ü",
    "1,2",
    "-",
    "1=2",
    "a=b=c",
    "n" * 300,
    "https://example.com/a.mp4",
)
SKIPPED = {"--help", "--config", "--out"}  # --out is every run's own folder; --config reads a file
SOURCE, TARGET = "a rabbit is jumping on the grass", "a cat is jumping on the grass"
STAGE = ["--source", SOURCE, "--target", TARGET, "--tune-steps", "1", "--steps", "2", "--inversion", "fast"]
COMMANDS = {  # each command's smallest valid run: {clip}, {out} (a positional output folder), {ws}
    "run": ["{clip}", *STAGE, "--frames", "2", "-q", "--workspace", "{ws}"],
    "tune": ["{clip}", *STAGE, "--frames", "2", "-q", "--workspace", "{ws}"],
    "invert": ["{clip}", *STAGE, "--frames", "2", "-q", "--workspace", "{ws}"],
    "edit": ["{clip}", *STAGE, "--frames", "2", "-q", "--workspace", "{ws}"],
    "demo": ["--tune-steps", "1", "--steps", "2", "-q"],
    "eval": ["--quick", "--cases", "1", "--tune-steps", "1", "--steps", "2", "--method", "fast"],
    "toy render": ["{out}", "--frames", "2", "--size", "32"],
    "toy train": ["{out}", "--vae-steps", "1", "--decoder-steps", "0", "--unet-steps", "1", "--dataset-size", "8"]
    + ["--batch-size", "2", "--image-size", "32"],
    "toy ground": ["{out}", "--steps", "1", "--batch-size", "2", "--dataset-size", "4"],
    "toy eval": ["--seeds", "1", "--steps", "2"],
}


def _command(path: str):
    """The click command of a command path ("toy train")."""
    command = get_command(app)
    for name in path.split():
        command = command.commands[name]
    return command


def bad_values_runs(
    command: str, clip: str, out: Path, options: list[str] | None, limit: float
) -> list[tuple[str, str, str]]:
    """(option, value, outcome) for each run, as `videop2p` runs it (`cli.main`, in this process); outcome
    "ok", the one error line, or "FAIL: ...". Only options with values are tried (flags take none)."""
    params = [p for p in _command(command).params if p.opts[0].startswith("--")]
    has_out = any("--out" in p.opts for p in params)

    def args_of(n: int, extra: list[str]) -> list[str]:
        run = out / command.replace(" ", "-") / f"run-{n}"
        fill = {"{clip}": clip, "{out}": str(run), "{ws}": str(out / "workspace")}
        base = [fill.get(a, a) for a in COMMANDS[command]]
        return [*command.split(), *base, *extra, *(["--out", str(run)] if has_out else [])]

    base = _outcome(args_of(0, []), limit)  # the smallest run itself, which every bad value is added to
    results = [("(none)", "", "ok" if base == "ok" else f"FAIL: the run without a bad value: {base}"[:200])]
    n = 0
    for param in params:
        name = param.opts[0]
        if name in SKIPPED or param.is_flag or (options and name not in options):
            continue
        for value in VALUES:
            n += 1
            results.append((name, value, _outcome(args_of(n, [name, *[value] * max(param.nargs, 1)]), limit)[:200]))
    return results


def _past_limit(signum, frame):
    raise TimeoutError


def _outcome(args: list[str], limit: float) -> str:
    """How one command ends: "ok" (exit 0), its one error line (exit 2), else "FAIL: ..." (a traceback,
    another exit code, not exactly one error line, or more than `limit` seconds)."""
    err = io.StringIO()
    code = 0
    previous = signal.signal(signal.SIGALRM, _past_limit)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            main_command(args)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except TimeoutError:
        return f"FAIL: still running after {limit:g} s (a value that should be refused?)"
    except Exception as e:  # noqa: BLE001 (what this bench looks for)
        return f"FAIL: {type(e).__name__}: {e}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    errors = [line for line in err.getvalue().splitlines() if line.startswith("error: ")]
    if code == 0:
        return "ok"
    if code == 2 and len(errors) == 1:
        return errors[0]
    return f"FAIL: exit {code}, {len(errors)} error lines: {err.getvalue().strip()[-300:]}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", required=True, help="A clip to run on (a folder of frames or a video).")
    parser.add_argument("--out", required=True, type=Path, help="A folder for the runs' outputs and workspace.")
    parser.add_argument("--command", default="run", choices=[*COMMANDS, "all"], help="all: every one in turn.")
    parser.add_argument("--options", nargs="*", help="Only these options (default: every one).")
    parser.add_argument("--limit", type=float, default=120.0, help="Seconds a run may take (default 120).")
    a = parser.parse_args()
    clip, out = str(Path(a.clip).resolve()), a.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.chdir(out)  # values taken as relative paths (--save-tuned nan, --model nan) land, and are looked for, here
    results = []
    for command in COMMANDS if a.command == "all" else [a.command]:
        for name, value, outcome in bad_values_runs(command, clip, out, a.options, a.limit):
            shown = repr(value) if len(value) <= 20 else f"{value[:8]!r}... ({len(value)} characters)"
            print(f"{command} {name} {shown}: {outcome}", flush=True)
            results.append(outcome)
    failures = [r for r in results if r.startswith("FAIL")]
    valid = sum(r == "ok" for r in results)
    print(
        f"{len(results)} runs: {valid} valid values ran, {len(results) - valid - len(failures)} refused in one line, "
        f"{len(failures)} failures"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
