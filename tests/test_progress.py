"""Progress bars: what a stage's bar writes on a terminal and into a log file (a pipe, CI, `> run.log`)."""

import io
import time

import torch

from videop2p.progress import progress_bar, steps


class Terminal(io.StringIO):
    """A stream that says it is a terminal, as a console's stderr does."""

    def isatty(self) -> bool:
        return True


class NotebookCell(io.StringIO):
    """A stream like a Jupyter cell's output (ipykernel's OutStream): no terminal, yet it shows each drawing in
    place."""

    __module__ = "ipykernel.iostream"


def _draws(text: str, stage: str) -> list[str]:
    """The bar's drawings in what it wrote: tqdm redraws over the line, each drawing after a carriage return."""
    return [part for part in text.split("\r") if stage in part]


def test_a_bar_redraws_on_a_terminal_and_seldom_into_a_log_file(capsys, monkeypatch):
    """A stage of 20 steps of 25 ms: on a terminal (or a notebook's cell) tqdm's bar is redrawn every 0.1 s, as
    before; into a log file (pytest's capture is no terminal, as a file or pipe is not) it is drawn at its start
    and end alone, where it was redrawn ten times a second, thousands of drawings in the log of a tuning."""
    for shown in (Terminal(), NotebookCell()):
        for _ in progress_bar(range(20), desc="tune", file=shown):
            time.sleep(0.025)
        assert len(_draws(shown.getvalue(), "tune")) >= 4, shown.getvalue()

    for _ in steps(range(20), "tune", True):  # stderr: captured, no terminal
        time.sleep(0.025)
    logged = _draws(capsys.readouterr().err, "tune")
    assert len(logged) == 2 and "0/20" in logged[0] and "20/20" in logged[-1], logged

    monkeypatch.setenv("TQDM_MININTERVAL", "0.05")  # tqdm's own setting, a user's choice: it rules
    for _ in steps(range(20), "tune", True):
        time.sleep(0.025)
    assert len(_draws(capsys.readouterr().err, "tune")) >= 4

    for _ in steps(range(20), "tune", False):
        pass
    assert capsys.readouterr().err == ""


def test_a_tuning_into_a_log_file_draws_its_bar_and_loss_at_its_start_and_end(tiny, capsys):
    """Tuning's bar carries the loss; it was redrawn with it at every step, whatever the interval (tqdm's
    `set_postfix` redraws unless told not to), two drawings a step in a log file. The last drawing has the loss."""
    from videop2p.models.t2s import T2SModel
    from videop2p.tuning import TuneConfig, tune

    g = torch.Generator().manual_seed(1)
    mean, text = torch.randn(1, 3, 4, 8, 8, generator=g), torch.randn(1, 77, 32, generator=g)
    tune(T2SModel.from_image_unet(tiny.unet), tiny, (mean, torch.full_like(mean, 0.01)), text, TuneConfig(steps=12))
    drawn = _draws(capsys.readouterr().err, "tune")
    assert len(drawn) == 2 and "12/12" in drawn[-1] and "loss=" in drawn[-1], drawn


def test_a_stage_inside_a_long_clips_windows_writes_no_cursor_escape_into_a_log_file(capsys):
    """A long clip's stages run inside its bar of windows; tqdm put the inner bar on the row below and moved a
    terminal's cursor back up ("\\x1b[A"), which a log file kept as `[A` noise, one a drawing. Into a log every
    bar is drawn on its own line; on a terminal the nesting stays as tqdm draws it."""
    for _ in progress_bar(range(3), desc="window", leave=False):
        for _ in steps(range(3), "edit", True):
            pass
    logged = capsys.readouterr().err
    assert "\x1b[A" not in logged and len(_draws(logged, "edit")) == 6, logged

    shown = Terminal()
    for _ in progress_bar(range(2), desc="window", leave=False, file=shown):
        for _ in progress_bar(range(2), desc="edit", file=shown):
            pass
    assert "\x1b[A" in shown.getvalue()
