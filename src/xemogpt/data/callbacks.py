"""Lightning callbacks of the data layer: the per-epoch bad-input summary and automatic feature caching."""

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


class FeatureCacheCallback(L.Callback):
    """Before each fit, caches the outputs of the model's frozen encoders and makes the DataModule read them.

    Runs at ``on_fit_start`` (after the model is on its device, before the loaders are built). A stage that trains
    an encoder reads media for that modality; ``data.features: off`` disables the cache. The model must expose
    ``video_encoder``/``audio_encoder`` components with a ``frozen`` flag (XEmoGPT does).
    """

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        dm = trainer.datamodule
        if dm is None or not hasattr(dm, "use_features"):
            return
        frozen = {}
        for modality in ("video", "audio"):
            enc = getattr(pl_module, f"{modality}_encoder", None)
            frozen[modality] = enc if enc is not None and getattr(enc, "frozen", False) else None
        reports = dm.use_features(frozen["video"], frozen["audio"], device=pl_module.device,
                                  progress=trainer.is_global_zero)
        if trainer.is_global_zero:
            for r in reports:
                print(r.summary(), flush=True)
