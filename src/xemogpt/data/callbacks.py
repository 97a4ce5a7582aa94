"""Lightning callbacks of the data layer: the per-epoch bad-input summary."""

from __future__ import annotations

import logging

import lightning as L

log = logging.getLogger("xemogpt.data")


class DataSummaryCallback(L.Callback):
    """Prints the DataModule's skipped/handled-sample summary at the end of every training epoch (when anything
    was skipped or repaired), and writes one line per sample to ``<log_dir>/data_problems.txt``."""

    def __init__(self, write_log: bool = True) -> None:
        self.write_log = write_log

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        dm = trainer.datamodule
        skips = getattr(dm, "skips", None)
        if skips is None or not (skips.items or getattr(skips, "handled", [])):
            return
        if trainer.is_global_zero:
            print(f"epoch {trainer.current_epoch}: {skips.summary()}", flush=True)
            if self.write_log and trainer.log_dir:
                try:
                    skips.write(f"{trainer.log_dir}/data_problems.txt")
                except OSError as e:  # a log we cannot write is no reason to stop training
                    log.warning("cannot write the data problem log: %s", e)

