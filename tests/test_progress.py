"""Progress lines for runs without a terminal: a tiny Trainer run whose stdout is captured (not a TTY)."""

import io
import itertools
import re

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from xemogpt.training.progress import LogProgress, format_duration, progress_callbacks

LINE = re.compile(r"\[(?P<stage>\w+)\] epoch (?P<epoch>\d+)/(?P<epochs>\d+) step (?P<step>\d+)/(?P<total>\d+) "
                  r"\((?P<pct>\d+)%\) loss (?P<loss>\S+) (?P<rate>\S+) it/s ETA (?P<eta>\S+)$")


class Regression(L.LightningModule):
    """y = 2x + 1 with one Linear layer; remembers every training-step loss."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(1, 1)
        self.losses: list[float] = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.lin(x), y)
        self.losses.append(float(loss.detach()))
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


def fit(callback: LogProgress, batches: int = 8, epochs: int = 2, **trainer_kw) -> Regression:
    torch.manual_seed(0)
    x = torch.linspace(-1, 1, batches * 4).unsqueeze(1)
    loader = DataLoader(TensorDataset(x, 2 * x + 1), batch_size=4)
    model = Regression()
    opts = dict(accelerator="cpu", devices=1, max_epochs=epochs, logger=False, enable_checkpointing=False,
                enable_model_summary=False, num_sanity_val_steps=0)
    L.Trainer(callbacks=[callback], **{**opts, **trainer_kw}).fit(model, loader)
    return model


def ticking():
    """A clock that advances one second each time it is read (the callback reads it once per optimiser step)."""
    counter = itertools.count()
    return lambda: float(next(counter))


def test_lines_every_n_steps_on_captured_stdout(capsys):
    model = fit(LogProgress(every_seconds=None, every_steps=4, stage="unit", clock=ticking()))
    out = capsys.readouterr().out.splitlines()
    lines = [m for m in map(LINE.match, out) if m]
    assert [int(m["step"]) for m in lines] == [4, 8, 12, 16]
    assert [int(m["epoch"]) for m in lines] == [1, 1, 2, 2] and {m["epochs"] for m in lines} == {"2"}
    assert {m["total"] for m in lines} == {"16"} and [int(m["pct"]) for m in lines] == [25, 50, 75, 100]
    for k, m in enumerate(lines):  # loss: the mean of the four training-step losses since the line before
        assert float(m["loss"]) == pytest.approx(sum(model.losses[4 * k:4 * k + 4]) / 4, rel=1e-3)
        assert m["rate"] == "1.00"  # one optimiser step per clock second
    assert [m["eta"] for m in lines] == ["12s", "8s", "4s", "0s"]
    # the clock is read once more at the end
    assert [s for s in out if s.startswith("[unit] done")] == ["[unit] done: 16 steps in 17s (0.94 it/s)"]


def test_loss_is_undivided_under_gradient_accumulation(capsys):
    model = fit(LogProgress(every_seconds=None, every_steps=2, stage="acc", clock=ticking()), epochs=1,
                accumulate_grad_batches=2)
    lines = [m for m in map(LINE.match, capsys.readouterr().out.splitlines()) if m]
    assert [int(m["step"]) for m in lines] == [2, 4] and {m["total"] for m in lines} == {"4"}
    for k, m in enumerate(lines):  # two optimiser steps = four batches per line
        assert float(m["loss"]) == pytest.approx(sum(model.losses[4 * k:4 * k + 4]) / 4, rel=1e-3)


def test_lines_every_n_seconds():
    out = io.StringIO()
    fit(LogProgress(every_seconds=3, stage="t", stream=out, clock=ticking()), epochs=1)
    lines = out.getvalue().splitlines()
    assert [int(m["step"]) for m in map(LINE.match, lines) if m] == [3, 6]
    assert len(lines) == 3 and lines[-1] == "[t] done: 8 steps in 9s (0.89 it/s)"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_quiet_on_a_terminal_with_a_progress_bar_but_not_without_one():
    shown = Terminal()
    fit(LogProgress(every_seconds=None, every_steps=4, stream=shown), epochs=1)
    assert shown.getvalue() == ""
    bare = Terminal()
    fit(LogProgress(every_seconds=None, every_steps=4, stream=bare), epochs=1, enable_progress_bar=False)
    assert [int(m["step"]) for m in map(LINE.match, bare.getvalue().splitlines()) if m] == [4, 8]


def test_recipe_setting_and_the_runner_use_it(tmp_path):
    from xemogpt.training.run import make_trainer

    stage = {"name": "align", "epochs": 1}
    (cb,) = progress_callbacks({}, stage)
    assert cb.every_seconds == 30.0 and cb.stage == "align"
    assert progress_callbacks({"run": {"log_every_seconds": 0}}, stage) == []
    recipe = {"run": {"log_every_seconds": 5}, "trainer": {"enable_progress_bar": False}}
    trainer = make_trainer(recipe, tmp_path, stage)
    (mine,) = [c for c in trainer.callbacks if isinstance(c, LogProgress)]
    assert mine.every_seconds == 5.0 and mine.stage == "align"
    with pytest.raises(ValueError, match="every_seconds"):
        LogProgress(every_seconds=-1)


def test_format_duration():
    assert [format_duration(s) for s in (0, 45.4, 378, 3720, 86399)] == ["0s", "45s", "6m18s", "1h02m", "23h59m"]
