import subprocess
import sys
from pathlib import Path

TOOL = Path(__file__).parents[1] / "tools" / "paired_cases.py"
HEAD = "case,kind,method,edit_success,object_iou,background_psnr,reconstruction_psnr\n"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True)


def test_paired_differences_over_the_cases_both_runs_hold(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text(HEAD + "0,c,fast,1,0.5,30,34\n1,c,fast,0,0.6,inf,35\n2,c,fast,1,0.7,31,36\n3,c,fast,1,0.9,40,40\n")
    b.write_text(HEAD + "0,c,fast,1,0.4,31,33\n1,c,fast,1,0.6,29,33\n2,c,fast,0,0.5,31,35\n9,c,fast,0,0,0,0\n")
    out = _run(f"{a}:fast", f"{b}:fast").stdout
    cells = [
        [c.strip() for c in line.strip().strip("|").split("|")] for line in out.splitlines() if line.startswith("| ")
    ]
    rows = {c[0]: c[1:] for c in cells}
    assert rows["reconstruction_psnr"][:2] == ["3", "+1.333"]  # cases 0-2: +1, +2, +1; case 3 and 9 in one run only
    assert rows["background_psnr"][:2] == ["2", "-0.500"]  # case 1's inf left out
    assert rows["edit_success"][3:5] == ["1", "1"]  # one case above, one below


def test_a_missing_file_or_method_is_named(tmp_path):
    a = tmp_path / "a.csv"
    a.write_text(HEAD + "0,c,fast,1,0.5,30,34\n")
    result = _run(f"{a}:Video-P2P", f"{a}:fast")
    assert result.returncode != 0 and "no rows of method 'Video-P2P'" in result.stderr
    result = _run(f"{tmp_path / 'none.csv'}:fast", f"{a}:fast")
    assert result.returncode != 0 and "none.csv:fast" in result.stderr and "Traceback" not in result.stderr
