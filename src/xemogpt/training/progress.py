"""Progress lines for runs without a terminal (CI logs, SLURM output files), where no progress bar is seen.

:class:`LogProgress` writes one line every ``every_seconds`` (``run.log_every_seconds``, default 30) and/or every
``every_steps`` optimiser steps, and one when the stage ends::

    [instruct] epoch 3/16 step 120/1008 (12%) loss 2.451 2.35 it/s ETA 6m18s
    [instruct] done: 1008 steps in 7m09s (2.35 it/s)

``step`` counts optimiser steps of the stage (out of Lightning's ``estimated_stepping_batches``); ``loss`` is the mean
of the training-step losses since the previous line; ``it/s`` is optimiser steps per second since the previous line;
the ETA divides the steps left by the stage's mean rate so far. It is active only where nobody watches a progress
bar: when its stream is not a terminal, or when the trainer has no progress bar (``trainer.enable_progress_bar:
false``). Only global rank 0 writes.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from lightning.pytorch.callbacks import Callback

DEFAULT_EVERY_SECONDS = 30.0


def format_duration(seconds: float) -> str:
    """``45s``, ``6m18s``, ``1h02m``."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class LogProgress(Callback):
    """One progress line every ``every_seconds`` seconds and/or ``every_steps`` optimiser steps (None or 0: not by
    that measure), when the output is not a terminal or the progress bar is off.

    Args:
        every_seconds, every_steps: when to write a line (at the first optimiser step boundary past either).
        stage: the name the lines start with (the recipe stage).
        stream: where lines go (default: ``sys.stdout`` at the time of writing).
        always: write lines even on a terminal with a progress bar.
        clock: the time source, in seconds.
    """

    def __init__(self, every_seconds: float | None = DEFAULT_EVERY_SECONDS, every_steps: int | None = None,
                 stage: str | None = None, stream: TextIO | None = None, always: bool = False,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if every_seconds is not None and every_seconds < 0:
            raise ValueError(f"every_seconds must be >= 0, got {every_seconds}")
        if every_steps is not None and every_steps < 0:
            raise ValueError(f"every_steps must be >= 0, got {every_steps}")
        self.every_seconds, self.every_steps = every_seconds or None, every_steps or None
        self.stage, self.stream, self.always, self.clock = stage, stream, always, clock
        self.active = False

    # --- state ------------------------------------------------------------------------------------------------------
    def _out(self) -> TextIO:
        return self.stream if self.stream is not None else sys.stdout

    def _is_terminal(self) -> bool:
        isatty = getattr(self._out(), "isatty", None)
        return bool(isatty and isatty())

    def on_train_start(self, trainer, pl_module) -> None:
        watched = self._is_terminal() and trainer.progress_bar_callback is not None
        self.active = trainer.is_global_zero and (self.always or not watched) and \
            bool(self.every_seconds or self.every_steps)
        now = self.clock()
        self.start_time = self.last_time = now
        self.start_step = self.last_step = trainer.global_step
        self.loss_sum, self.loss_n = 0.0, 0

    # --- lines ------------------------------------------------------------------------------------------------------
    def on_train_batch_end(self, trainer, pl_module, outputs: Any, batch: Any, batch_idx: int) -> None:
        if not self.active:
            return
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is not None and hasattr(loss, "item"):
            # Lightning hands on the loss divided by accumulate_grad_batches (automatic optimisation)
            scale = trainer.accumulate_grad_batches if pl_module.automatic_optimization else 1
            self.loss_sum += float(loss.detach().float().item()) * scale
            self.loss_n += 1
        step = trainer.global_step
        if step == self.last_step:  # inside an accumulation window: no optimiser step yet
            return
        now = self.clock()
        due_steps = self.every_steps is not None and step - self.start_step >= 1 and \
            (step - self.start_step) % self.every_steps == 0
        due_time = self.every_seconds is not None and now - self.last_time >= self.every_seconds
        if due_steps or due_time:
            self._write(self.line(trainer, step, now))
            self.last_time, self.last_step = now, step
            self.loss_sum, self.loss_n = 0.0, 0

    def on_train_end(self, trainer, pl_module) -> None:
        if not self.active:
            return
        now = self.clock()
        steps = trainer.global_step - self.start_step
        elapsed = now - self.start_time
        rate = f" ({steps / elapsed:.2f} it/s)" if elapsed > 0 and steps else ""
        self._write(f"[{self.stage or 'train'}] done: {steps} steps in {format_duration(elapsed)}{rate}")

    def line(self, trainer, step: int, now: float) -> str:
        """The progress line at optimiser step ``step`` and time ``now``."""
        parts = [f"[{self.stage or 'train'}]"]
        max_epochs = trainer.max_epochs
        epoch = trainer.current_epoch + 1
        parts.append(f"epoch {epoch}/{max_epochs}" if max_epochs and max_epochs > 0 else f"epoch {epoch}")
        total = trainer.estimated_stepping_batches
        finite = isinstance(total, (int, float)) and math.isfinite(total) and total > 0
        parts.append(f"step {step}/{int(total)} ({100 * step / total:.0f}%)" if finite else f"step {step}")
        if self.loss_n:
            parts.append(f"loss {self.loss_sum / self.loss_n:.4g}")
        window = now - self.last_time
        if window > 0:
            parts.append(f"{(step - self.last_step) / window:.2f} it/s")
        elapsed, done = now - self.start_time, step - self.start_step
        if finite and elapsed > 0 and done > 0:
            parts.append(f"ETA {format_duration(max(0.0, total - step) * elapsed / done)}")
        return " ".join(parts)

    def _write(self, text: str) -> None:
        print(text, file=self._out(), flush=True)


def progress_callbacks(recipe: dict[str, Any], stage: dict[str, Any]) -> list[Callback]:
    """The progress-line callback of a recipe stage (``run.log_every_seconds``; 0 turns it off)."""
    every = (recipe.get("run") or {}).get("log_every_seconds", DEFAULT_EVERY_SECONDS)
    return [LogProgress(every_seconds=float(every), stage=stage.get("name"))] if every else []
