"""`videop2p eval --quick`: the CI smoke run of the quality evaluation on the bundled model."""

import json
import math

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from videop2p.cli import app
from videop2p.config import QUICK_CASES, quick_settings
from videop2p.evaluation import BARS, make_suite
from videop2p.toy.world import render_clip


def test_quick_eval_writes_the_report_and_meets_every_bar(tmp_path):
    out = tmp_path / "eval"
    result = CliRunner().invoke(app, ["eval", "--quick", "--out", str(out), "--json", str(tmp_path / "eval.json")])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "eval.json").read_text())
    assert data["cases"] == QUICK_CASES and set(data["bars"]) == set(BARS)
    for name in ("summary.md", "cases.csv", "summary.json", "metrics.png"):
        assert (out / name).stat().st_size > 0, name
    assert data["by_kind"]["fast"] == {"colour swap": [1, 1], "shape swap": [1, 1]}  # both cases succeed
    assert "Edit success by kind" in result.output and "| fast | 1 of 1 | 1 of 1 |" in result.output
    assert data["plots"] and f"tables and plots in {out};" in result.output
    assert data["bars_method"] == "fast"  # the official fast mode: null-text's optimisation is too slow for CI
    assert len(list(out.glob("strip_case*_fast.png"))) == QUICK_CASES
    source = render_clip(make_suite(QUICK_CASES, frames=quick_settings().frames)[0].spec).frames  # (F, H, W, 3)
    strip = np.asarray(Image.open(out / "strip_case0_fast.png").convert("RGB"))
    f, h, w, _ = source.shape
    assert strip.shape == (2 * h, f * w, 3)  # the source above the edit
    assert np.array_equal(strip[:h], np.concatenate(list(source), axis=1))
    rows = [r for r in data["rows"] if r["method"] == "fast"]
    assert len(rows) == QUICK_CASES
    for r in rows:  # the reconstruction bar holds case by case
        assert r["reconstruction_psnr"] >= BARS["reconstruction_psnr"], r
        assert all(math.isfinite(r[k]) for k in ("object_iou", "colour_jitter", "position_jitter"))
    for name, bar in data["bars"].items():  # the verdicts are the measured numbers against the bars
        assert bar["met"] == (bar["measured"] >= BARS[name])
        assert f"bar {name} >= {BARS[name]}" in result.output
    # the bundled model's word maps hold the layout: the colour swap succeeds in place, the rest is kept
    assert all(bar["met"] for bar in data["bars"].values()), data["bars"]
    assert "(MISSED" not in result.output


def test_a_run_without_the_full_method_or_its_fast_mode_says_its_bars_were_not_checked(tmp_path):
    args = ["eval", "--quick", "--cases", "1", "--method", "tune-a-video", "--out", str(tmp_path / "eval")]  # any case
    bad = CliRunner().invoke(app, [*args, "--method", "Tune-A-Vide"])
    assert bad.exit_code == 2 and bad.output.startswith("error: --method 'Tune-A-Vide' is not one of Video-P2P, fast,")
    assert bad.output.endswith(" (did you mean 'Tune-A-Video'?).\n") and len(bad.output.splitlines()) == 1
    result = CliRunner().invoke(app, [*args, "--json", str(tmp_path / "eval.json")])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "eval.json").read_text())
    assert data["bars"] == {} and data["bars_method"] is None
    assert "bars not checked: they are Video-P2P's (or its fast mode's), which did not run" in result.output
    assert not [line for line in result.output.splitlines() if line.startswith("bar ")]  # none read a method not run


def test_quick_eval_without_matplotlib_says_no_plots_were_drawn_and_how_to_draw_them(tmp_path, monkeypatch):
    """matplotlib is the evaluation's extra (`videop2p[eval]`): without it the run ended "tables and plots in OUT"
    with no plot written, and said why only in a log line."""
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # as if not installed: importing it raises
    out = tmp_path / "eval"
    result = CliRunner().invoke(app, ["eval", "--quick", "--cases", "1", "--method", "fast", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "summary.md").exists() and not (out / "metrics.png").exists()
    assert f"tables in {out} (no plots: matplotlib is not installed; pip install 'videop2p[eval]' draws them);" in (
        result.output
    )
