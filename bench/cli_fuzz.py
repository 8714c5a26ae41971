"""Every option of `videop2p run` (or `tune`, `invert`, `edit`) given bad values, one run each.

Each run must end well (exit 0: the value was valid, the run made its outputs) or with a one-line error
(exit 2), never with a traceback, another exit code or more than one error line. Runs are made on the
bundled toy model with the smallest budget (1 tuning step, 2 fast DDIM steps, 2 frames), so a valid value
costs a few seconds. The runs are made in OUT (a value read as a relative path is a folder there). Prints a line per refused value (its error), the valid ones, and the failures last;
exits 1 if any.

    python bench/cli_fuzz.py --clip ../shared/data/videop2p-clips/rabbit --out /tmp/fuzz
    python bench/cli_fuzz.py --clip CLIP --out OUT --options --lr --size   # some options only
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
from pathlib import Path

from typer.main import get_command

from videop2p.cli import app
from videop2p.cli import main as main_command

VALUES = ("", " ", "nan", "-1", "0", "0.5", "1e309", "9" * 20, "abc", "ü", "1,2", "-", "1=2", "a=b=c")
SKIPPED = {"--help", "--config", "--out"}  # --out is every run's own folder; --config reads a file


def bad_values_runs(command: str, clip: str, out: Path, options: list[str] | None) -> list[tuple[str, str, str]]:
    """(option, value, outcome) for each run, as `videop2p` runs it (`cli.main`, in this process); outcome
    "ok", the one error line, or "FAIL: ..."."""
    params = [p for p in get_command(app).commands[command].params if p.opts[0].startswith("--")]
    base = [command, clip, "--source", "a rabbit is jumping on the grass", "--target", "a cat is jumping on the grass"]
    base += ["--tune-steps", "1", "--steps", "2", "--inversion", "fast", "--frames", "2", "--quiet"]
    base += ["--workspace", str(out / "workspace")]
    results, n = [], 0
    for param in params:
        name = param.opts[0]
        if name in SKIPPED or param.is_flag or (options and name not in options):
            continue
        for value in VALUES:
            n += 1
            args = [*base, name, *[value] * max(param.nargs, 1), "--out", str(out / f"run-{n}")]
            results.append((name, value, _outcome(args)[:200]))
    return results


def _outcome(args: list[str]) -> str:
    """How one command ends: "ok" (exit 0), its one error line (exit 2), else "FAIL: ..." (a traceback,
    another exit code, or not exactly one error line)."""
    err = io.StringIO()
    code = 0
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            main_command(args)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except Exception as e:  # noqa: BLE001 (what this bench looks for)
        return f"FAIL: {type(e).__name__}: {e}"
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
    parser.add_argument("--command", default="run", choices=["run", "tune", "invert", "edit"])
    parser.add_argument("--options", nargs="*", help="Only these options (default: every one).")
    a = parser.parse_args()
    clip, out = str(Path(a.clip).resolve()), a.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.chdir(out)  # values taken as relative paths (--save-tuned nan, --model nan) land, and are looked for, here
    results = bad_values_runs(a.command, clip, out, a.options)
    for name, value, outcome in results:
        print(f"{name} {value!r}: {outcome}")
    failures = [r for r in results if r[2].startswith("FAIL")]
    valid = sum(r[2] == "ok" for r in results)
    print(
        f"{len(results)} runs: {valid} valid values ran, {len(results) - valid - len(failures)} refused in one line, "
        f"{len(failures)} failures"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
