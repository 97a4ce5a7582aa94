"""Callbacks that make a run resumable, stoppable and auditable.

* :class:`RNGState` puts the torch / numpy / Python (and CUDA) random states of every rank in each checkpoint and
  puts them back right before training resumes, so a resumed run draws the same dropout masks, shuffled frame orders
  and masked frames as an uninterrupted one.
* :class:`GracefulStop` turns SIGTERM and SIGINT into "save a resumable checkpoint at the next optimiser step
  boundary, then stop" (all ranks agree on the batch); a second Ctrl+C aborts at once.
* :class:`PeriodicCheckpoint` writes the resumable checkpoint every N optimiser steps (insurance against SIGKILL).
* :class:`NonFiniteGuard` saves the weights from before a step whose loss is NaN or infinite when the model raises
  :class:`NonFiniteLossError` (the detection itself is in ``XEmoGPT._step``).
* :class:`EarlyFeatureCache` fills the feature cache before FSDP/DeepSpeed shard the frozen encoders.
* :class:`ExactResume` works around two things that would make a resumed epoch differ (Lightning issue #20550, the
  DataLoader's base-seed draw); :class:`StageTag` stamps checkpoints with their recipe stage;
  :class:`preserve_rng` keeps data preparation off the training random streams.
* :class:`SampleRecorder` records which sample ids each rank trained on and a hash of its final weights
  (``run.record_samples: true``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

from xemogpt.errors import XemoGPTError

log = logging.getLogger("xemogpt.train")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


# --- errors ---------------------------------------------------------------------------------------------------------
class NonFiniteLossError(XemoGPTError, RuntimeError):
    """A training loss was NaN or infinite. Carries where it happened and, once saved, the checkpoint from before.

    Attributes: stage, global_step, epoch, batch_idx, ids (sample ids of the batch, every rank's), losses (name ->
    value, as floats), checkpoint (path of the weights from before the step, set by :class:`NonFiniteGuard`).
    """

    def __init__(self, stage: str, global_step: int, epoch: int, batch_idx: int, ids: list[str],
                 losses: dict[str, float]) -> None:
        self.stage, self.global_step, self.epoch, self.batch_idx = stage, global_step, epoch, batch_idx
        self.ids, self.losses = list(ids), dict(losses)
        self.checkpoint: str | None = None
        super().__init__(self._message())

    def _message(self) -> str:
        vals = ", ".join(f"{k}={v}" for k, v in self.losses.items())
        ids = ", ".join(self.ids[:32]) + (f" ... ({len(self.ids)} in all)" if len(self.ids) > 32 else "")
        where = (f"the weights from before this step are in {self.checkpoint}" if self.checkpoint
                 else "no checkpoint could be written")
        return (f"non-finite training loss in stage {self.stage!r} at global step {self.global_step} (epoch "
                f"{self.epoch}, batch {self.batch_idx}): {vals}; batch sample ids: {ids}. {where}. Lower the stage's "
                "lr, check these samples, or set trainer.gradient_clip_val, then resume with --resume.")

    def __str__(self) -> str:
        return self._message()

    def __reduce__(self):  # picklable across processes with its fields
        return (_rebuild_nonfinite, (self.stage, self.global_step, self.epoch, self.batch_idx, self.ids, self.losses,
                                     self.checkpoint))


def _rebuild_nonfinite(stage, step, epoch, batch_idx, ids, losses, checkpoint) -> NonFiniteLossError:
    e = NonFiniteLossError(stage, step, epoch, batch_idx, ids, losses)
    e.checkpoint = checkpoint
    return e


class RunInterrupted(Exception):
    """Training stopped on a signal after saving ``checkpoint`` (None when it stopped between stages)."""

    def __init__(self, signum: int, checkpoint: str | None, stage: str | None = None, global_step: int | None = None):
        self.signum, self.checkpoint, self.stage, self.global_step = signum, checkpoint, stage, global_step
        name = signal.Signals(signum).name
        where = f" in stage {stage!r} at global step {global_step}" if stage is not None else " between stages"
        saved = f"; resumable checkpoint: {checkpoint}" if checkpoint else ""
        super().__init__(f"{name} received: training stopped{where}{saved}")


# --- random states --------------------------------------------------------------------------------------------------
def capture_rng() -> dict[str, Any]:
    """The torch, CUDA, numpy and Python random states as tensors and plain values (``weights_only``-loadable)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": _to_lists(random.getstate()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng`."""
    torch.set_rng_state(state["torch"].cpu())
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    random.setstate(_to_tuples(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


def _to_lists(x):
    return [_to_lists(v) for v in x] if isinstance(x, (tuple, list)) else x


def _to_tuples(x):
    return tuple(_to_tuples(v) for v in x) if isinstance(x, list) else x


def gather_objects(trainer: L.Trainer | None, obj: Any) -> list[Any]:
    """``obj`` of every rank (a list of one outside distributed runs)."""
    if trainer is None or trainer.world_size <= 1 or not torch.distributed.is_initialized():
        return [obj]
    out: list[Any] = [None] * trainer.world_size
    torch.distributed.all_gather_object(out, obj)
    return out


class preserve_rng:
    """Context manager: whatever the body draws from the global random generators is undone on exit.

    Data preparation (decoding into the cache, encoding the feature cache) draws only when a cache is cold; keeping
    it off the training streams makes a run give the same weights whether its caches existed or not.
    """

    def __enter__(self) -> None:
        self._state = capture_rng()

    def __exit__(self, *exc) -> None:
        restore_rng(self._state)


class RNGState(Callback):
    """Saves every rank's random states with each checkpoint and restores them when training (re)starts.

    The restore happens in ``on_train_start`` -- after Lightning restored the model, optimiser and loops, after any
    sanity check and after fit-start data preparation (the feature cache) -- so nothing between loading and the
    first resumed batch disturbs the streams. A fit that does not resume gets back the state it had at ``setup``,
    for the same reason: the stage's random stream then never depends on which caches were warm.
    """

    def __init__(self) -> None:
        self._trainer: L.Trainer | None = None
        self._pending: dict[str, Any] | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._trainer = trainer
        self._pending = {"own": capture_rng()}  # replaced by load_state_dict when the fit resumes

    def state_dict(self) -> dict[str, Any]:
        return {"ranks": gather_objects(self._trainer, capture_rng())}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pending, self._pending = self._pending, None
        if pending is None:
            return
        if "own" in pending:
            restore_rng(pending["own"])
            return
        ranks = pending["ranks"]
        if len(ranks) != trainer.world_size:
            log.warning("checkpoint holds random states of %d rank(s) but this run has %d; every rank takes rank "
                        "0's (the run continues but is not bit-identical to an uninterrupted one)", len(ranks),
                        trainer.world_size)
        restore_rng(ranks[trainer.global_rank] if len(ranks) == trainer.world_size else ranks[0])


def rng_from_checkpoint(ckpt: dict[str, Any], rank: int = 0) -> dict[str, Any] | None:
    """The random state of ``rank`` stored by :class:`RNGState` in a loaded checkpoint, or None."""
    for key, st in (ckpt.get("callbacks") or {}).items():
        if key == "RNGState" and isinstance(st, dict) and st.get("ranks"):
            ranks = st["ranks"]
            return ranks[rank] if rank < len(ranks) else ranks[0]
    return None


# --- signals --------------------------------------------------------------------------------------------------------
class StopRequest:
    """Process-wide record of a stop signal; :func:`handle_stop_signals` installs the handler that fills it."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def handler(self, signum: int, frame) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl+C: abort now, without a checkpoint
        self.signum = signum
        print(f"\n{signal.Signals(signum).name} received: saving a resumable checkpoint at the next step boundary "
              "(Ctrl+C again aborts without saving)", flush=True)

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread (e.g. not inside some notebooks' workers)
        for s in STOP_SIGNALS:
            if s not in self._previous:
                self._previous[s] = signal.getsignal(s)
            signal.signal(s, self.handler)

    def uninstall(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for s, h in self._previous.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)
        self._previous = {}


STOP = StopRequest()


class handle_stop_signals:
    """Context manager: SIGTERM/SIGINT set :data:`STOP` instead of killing the process (restored on exit)."""

    def __enter__(self) -> StopRequest:
        STOP.signum = None
        STOP.install()
        return STOP

    def __exit__(self, *exc) -> None:
        STOP.uninstall()


def _at_step_boundary(trainer: L.Trainer, batch_idx: int) -> bool:
    """True after a batch that ran an optimiser step (not in the middle of gradient accumulation)."""
    acc = max(1, int(trainer.accumulate_grad_batches))
    last = trainer.num_training_batches != float("inf") and batch_idx + 1 >= trainer.num_training_batches
    return (batch_idx + 1) % acc == 0 or last


class GracefulStop(Callback):
    """On SIGTERM/SIGINT: at the next optimiser-step boundary every rank stops together after
    ``save(trainer)`` wrote a resumable checkpoint, then :class:`RunInterrupted` ends the fit.

    Lightning installs its own SIGTERM handler when a fit starts; this callback puts :data:`STOP`'s back in
    ``on_train_start`` so one mechanism handles both signals (Lightning's calls collectives inside the handler).
    """

    def __init__(self, save: Callable[[L.Trainer, str], str]) -> None:
        self.save = save

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        STOP.install()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int):
        if not _at_step_boundary(trainer, batch_idx):
            return
        stop = STOP.requested
        if trainer.world_size > 1:  # any rank's signal stops all ranks at this same batch
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        if not stop:
            return
        signum = STOP.signum or signal.SIGTERM
        path = self.save(trainer, f"signal {signal.Signals(signum).name}")
        raise RunInterrupted(signum, path, getattr(pl_module, "stage", {}).get("name"), trainer.global_step)


class PeriodicCheckpoint(Callback):
    """Writes the resumable checkpoint every ``every_n_steps`` optimiser steps via ``save(trainer, reason)``."""

    def __init__(self, every_n_steps: int, save: Callable[[L.Trainer, str], str]) -> None:
        if every_n_steps < 1:
            raise ValueError(f"run.checkpoint_every_n_steps must be >= 1, got {every_n_steps}")
        self.every_n_steps, self.save = every_n_steps, save
        self._last_saved = -1

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int):
        step = trainer.global_step
        if step > 0 and step % self.every_n_steps == 0 and step != self._last_saved \
                and _at_step_boundary(trainer, batch_idx):
            self._last_saved = step
            self.save(trainer, f"every {self.every_n_steps} steps")


class NonFiniteGuard(Callback):
    """When the model raised :class:`NonFiniteLossError`, saves the state from before that step (the optimiser has
    not stepped on the bad batch) to ``path_for(error)`` and names it in the error."""

    def __init__(self, path_for: Callable[[NonFiniteLossError], Path]) -> None:
        self.path_for = path_for

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, NonFiniteLossError):
            return
        path = self.path_for(exception)
        try:
            trainer.save_checkpoint(str(path), weights_only=False)
            exception.checkpoint = str(path)
        except Exception as e:  # the error report matters more than this checkpoint
            log.error("could not save the checkpoint from before the non-finite loss: %s", e)


class ExactResume(Callback):
    """Two fixes that make a resumed epoch continue exactly where the interrupted one stopped.

    1. ``configure_optimizers`` reads ``trainer.estimated_stepping_batches`` (the LR schedule needs the step count),
       which makes Lightning build the train loader before the checkpoint is restored and before ``on_fit_start``;
       Lightning then never hands the saved loader position to it (Lightning issue #20550) and callbacks that
       prepare the data at fit start (the feature cache) come too late for it. ``on_fit_start`` therefore drops that
       early loader; the fit loop builds it again after the restore, with the saved position applied.
    2. ``on_train_start`` gives train loaders without a ``generator`` a private one (seeded from the run seed): a
       ``DataLoader`` draws its base seed from the global torch RNG whenever an iterator is created, which would
       shift the dropout and bridge-task random streams of a resumed run by one draw against an uninterrupted one.
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        loop = trainer.fit_loop
        if getattr(loop, "_combined_loader", None) is None:
            return
        if getattr(loop, "_data_fetcher", None) is not None:
            loop._data_fetcher.teardown()  # stops the early loader's worker processes
            loop._data_fetcher = None
        loop._combined_loader = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        combined = getattr(trainer.fit_loop, "_combined_loader", None)
        for dl in (combined.flattened if combined is not None else []):
            if isinstance(dl, torch.utils.data.DataLoader) and dl.generator is None:
                dl.generator = torch.Generator().manual_seed(self.seed)


class EarlyFeatureCache(Callback):
    """The DataModule's feature cache for strategies that shard the model (FSDP, DeepSpeed), filled in ``setup``.

    :class:`xemogpt.data.callbacks.FeatureCacheCallback` encodes the clips not yet cached at ``on_fit_start``, each
    rank its share -- but by then FSDP has made every frozen encoder a sharded unit whose forward all-gathers its
    weights, a collective: ranks encoding different numbers of batches (or one rank nothing, the other a few) would
    wait on each other forever. ``setup`` runs after the process group exists and before the strategy wraps the model,
    so here the ranks split the work with plain encoders (moved to the training device first), meet at the cache's
    barrier, and every training step then reads cached features on all ranks alike. Whatever encoding draws from the
    random generators is undone, as at ``on_fit_start``.
    """

    def __init__(self) -> None:
        self.reports: list = []

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        dm = trainer.datamodule
        if stage != "fit" or dm is None or not hasattr(dm, "use_features"):
            return
        device = trainer.strategy.root_device
        frozen = {}
        for modality in ("video", "audio"):
            enc = getattr(pl_module, f"{modality}_encoder", None)
            frozen[modality] = enc.to(device) if enc is not None and getattr(enc, "frozen", False) else None
        with preserve_rng():
            self.reports = dm.use_features(frozen["video"], frozen["audio"], device=device,
                                           progress=trainer.is_global_zero)
        if trainer.is_global_zero:
            for r in self.reports:
                print(r.summary(), flush=True)


class StageTag(Callback):
    """Stamps each checkpoint with the recipe stage it was written in (``checkpoint["xemogpt_stage"]``)."""

    def __init__(self, index: int, name: str) -> None:
        self.index, self.name = index, name

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        checkpoint["xemogpt_stage"] = {"index": self.index, "name": self.name}


# --- audit ----------------------------------------------------------------------------------------------------------
def weights_digest(module: torch.nn.Module) -> str:
    """SHA-256 over the module's state dict (names, dtypes, shapes and bytes), identical iff the weights are."""
    return state_digest(module.state_dict())


def state_digest(state: dict[str, torch.Tensor]) -> str:
    """:func:`weights_digest` of a state dict (e.g. a checkpoint's ``state_dict``)."""
    h = hashlib.sha256()
    for name, t in sorted(state.items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


class SampleRecorder(Callback):
    """Writes ``<folder>/<stage>-rank<r>.json``: the sample ids this rank trained on, per epoch, in order, and the
    SHA-256 of its weights at the end of the stage. Every rank's ids travel in the checkpoint, so they survive a
    resume."""

    def __init__(self, folder: str | Path, stage: str) -> None:
        self.folder, self.stage = Path(folder), stage
        self.epochs: dict[int, list[str]] = {}
        self._trainer: L.Trainer | None = None
        self._loaded: list[dict[str, list[str]]] | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._trainer = trainer

    def state_dict(self) -> dict[str, Any]:
        mine = {str(k): v for k, v in self.epochs.items()}
        return {"stage": self.stage, "ranks": gather_objects(self._trainer, mine)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict.get("stage") == self.stage:
            self._loaded = state_dict.get("ranks")

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._loaded:
            mine = self._loaded[trainer.global_rank] if trainer.global_rank < len(self._loaded) else {}
            self.epochs = {int(k): list(v) for k, v in mine.items()}
            self._loaded = None

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int):
        self.epochs.setdefault(trainer.current_epoch, []).extend(batch["ids"])

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        record = {"stage": self.stage, "rank": trainer.global_rank, "world_size": trainer.world_size,
                  "global_step": trainer.global_step, "epochs": {str(k): v for k, v in sorted(self.epochs.items())},
                  "weights_sha256": weights_digest(pl_module)}
        path = self.folder / f"{self.stage}-rank{trainer.global_rank}.json"
        path.write_text(json.dumps(record, indent=1), encoding="utf-8")


def global_rank_from_env() -> int:
    """This process's global rank before any process group exists (torchrun, SLURM or Lightning's launcher)."""
    for var in ("RANK", "SLURM_PROCID"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    local = int(os.environ.get("LOCAL_RANK", "0") or 0)
    node = int(os.environ.get("NODE_RANK", os.environ.get("GROUP_RANK", "0")) or 0)
    per_node = int(os.environ.get("LOCAL_WORLD_SIZE", "0") or 0)
    return node * per_node + local if per_node else local
