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
