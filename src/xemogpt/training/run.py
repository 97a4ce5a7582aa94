"""Run a recipe: make sure its data exists, build the model, train each stage, save checkpoints, evaluate.

Fault tolerance (all of it in the run folder):

* ``progress.json`` says which stages finished (with their ``checkpoints/<i>-<stage>.ckpt``), which stage is running
  and why the last process stopped. Only global rank 0 writes it, atomically.
* ``checkpoints/last.ckpt`` is the resumable checkpoint of the running stage: weights, optimiser, LR scheduler,
  loop counters, the data loader's place in the epoch and every rank's random state. It is written on SIGTERM /
  SIGINT (then the process exits cleanly) and every ``run.checkpoint_every_n_steps`` optimiser steps.
* ``train_recipe(..., resume=True)`` (``xemogpt train --resume``, ``make train RESUME=1`` or ``run.resume: true``)
  skips finished stages, and continues the running one from ``last.ckpt`` -- ending with the same weights as a run
  that was never interrupted -- or starts it from the previous stage's checkpoint.
* A NaN or infinite loss stops the run with the stage, step and batch sample ids, after saving
  ``checkpoints/nonfinite-<i>-<stage>-step<k>.ckpt`` (the state from before that step).

Every checkpoint write is atomic (:mod:`xemogpt.training.checkpoint_io`). Scaling settings (DDP, FSDP, DeepSpeed,
nodes, precision, accumulation, activation checkpointing) are read by :mod:`xemogpt.training.strategies`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from xemogpt.recipe import RecipeError, save_recipe, validate_recipe
from xemogpt.training.callbacks import global_rank_from_env

log = logging.getLogger("xemogpt.train")

DATA_DEFAULTS = {"batch_size": 16, "num_workers": 2, "num_frames": 16, "sample_rate": 16000, "max_seconds": 12.0,
                 "cache": "disk", "strict": False}
PROGRESS_FILE = "progress.json"
RESUME_CHECKPOINT = "last.ckpt"
# Recipe parts a resumed run must share with the run it continues (anything else may change, e.g. devices).
RESUME_MUST_MATCH = ("model", "seed")


def feature_memo(recipe: dict[str, Any]) -> bool:
    """Whether the model memoises frozen encoders' outputs per sample id (``run.feature_memo``, default true).

    Off under strategies that shard the model (FSDP, DeepSpeed): a memo hit skips the encoder on one rank while
    another rank, whose batch holds clips it has not seen yet, runs it -- and a sharded encoder's forward is a
    collective that would then wait forever. (The feature cache, filled before the model is wrapped, is the way to
    skip frozen encoders there.)
    """
    from xemogpt.training.strategies import wraps_in_place

    return bool((recipe.get("run") or {}).get("feature_memo", True)) and not wraps_in_place(recipe.get("trainer"))


def ensure_data(data: dict[str, Any], rank: int | None = None) -> Path | str:
    """The dataset of a recipe: a manifest folder (generated first when the recipe says how, ``data.synth``) or a
    litdata pack, local or on object storage (``s3://bucket/emocue``, returned as the URI string).

    Only global rank 0 generates; other ranks started by torchrun/SLURM wait for its manifest.
    """
    from xemogpt.data.streaming import is_pack, is_remote

    if "root" not in data:
        raise RecipeError("recipe key 'data.root' is missing: the folder holding manifest.jsonl (or a pack)")
    if is_remote(str(data["root"])):
        return str(data["root"])
    root = Path(data["root"])
    if (root / "manifest.jsonl").exists() or is_pack(root):
        return root
    synth = data.get("synth")
    if not synth:
        raise RecipeError(f"data.root {root} has no manifest.jsonl; import a dataset with `xemogpt data import` "
                          "or add data.synth to generate one")
    rank = global_rank_from_env() if rank is None else rank
    if rank > 0:
        _wait_for(root / "manifest.jsonl", "rank 0 to generate the synthetic data")
        return root
    from xemogpt.data.synth import generate

    print(f"generating {synth.get('n', 1000)} synthetic EmoCue clips into {root} ...", flush=True)
    generate(root, n=int(synth.get("n", 1000)), seed=int(synth.get("seed", 0)),
             workers=int(synth.get("workers", min(2, os.cpu_count() or 1))), size=int(synth.get("size", 112)))
    return root


def _wait_for(path: Path, what: str, timeout_s: float = 3600.0) -> None:
    t0 = time.time()
    while not path.exists():
        if time.time() - t0 > timeout_s:
            raise TimeoutError(f"waited {timeout_s:.0f} s for {what} ({path} never appeared)")
        time.sleep(1.0)


def build_tokenizer(root: Path | str, model_spec: dict[str, Any], vocab_size: int, instruction: str | None,
                    storage_options: dict[str, Any] | None = None) -> str | None:
    """Train a tokenizer on the training split when the recipe asks for ``llm_head.tokenizer: build``."""
    spec = model_spec["llm_head"]
    if not isinstance(spec, dict) or spec.get("tokenizer") != "build":
        return None
    from xemogpt.data.schema import read_manifest
    from xemogpt.data.streaming import is_pack, read_pack_samples
    from xemogpt.llm.prompt import build_prompt
    from xemogpt.llm.tokenizer import tokenizer_to_json, train_tokenizer

    samples = read_pack_samples(root, storage_options) if is_pack(root) else read_manifest(root)
    train = [s for s in samples if s.split == "train"] or samples
    template = spec.get("template", "paper")
    texts = [s.description for s in train] + [build_prompt(s.subtitle, instruction, template) for s in samples]
    return tokenizer_to_json(train_tokenizer(texts, vocab_size=vocab_size))


def data_settings(recipe: dict[str, Any], model) -> dict[str, Any]:
    """The DataModule arguments of a run: the recipe's ``data`` section over :data:`DATA_DEFAULTS`, with the frame
    size, crop and audio rate the model's encoders ask for (the same for training, ``eval`` and ``explain``)."""
    data = {**DATA_DEFAULTS, **{k: v for k, v in (recipe.get("data") or {}).items() if k not in ("root", "synth")}}
    pre = getattr(model.video_encoder, "preprocess_config", lambda: {})()
    apre = getattr(model.audio_encoder, "preprocess_config", lambda: {})()
    data.setdefault("frame_size", pre.get("image_size", 64))
    # CLIP-style short-side resize + centre crop only where the encoder's own resize keeps a centre crop
    # (squash / longest-side models get the whole frame).
    data.setdefault("frame_crop", bool(pre.get("decode_crop", pre.get("crop"))))
    if "sample_rate" in apre:
        data["sample_rate"] = apre["sample_rate"]
    return data


def data_module(recipe: dict[str, Any], model, root: Path | str, batch_size: int | None = None):
    from xemogpt.data.datamodule import EmoCueDataModule

    data = data_settings(recipe, model)
    if batch_size:
        data["batch_size"] = batch_size
    data.setdefault("seed", recipe.get("seed", 0))
    return EmoCueDataModule(str(root), **data)


def make_trainer(recipe: dict[str, Any], run_dir: Path, stage: dict[str, Any], callbacks: list | None = None,
                 model: torch.nn.Module | None = None, log_version: str | None = None):
    """One Lightning Trainer for ``stage``: the recipe's trainer settings with strategy/precision resolved
    (:func:`xemogpt.training.strategies.trainer_options`), atomic checkpoint IO and a CSV log per stage
    (``logs/<log_version or stage name>``)."""
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    from xemogpt.training.strategies import trainer_options

    opts = trainer_options(recipe.get("trainer"), model)
    opts.setdefault("devices", 1)
    opts.setdefault("log_every_n_steps", 10)
    opts.setdefault("enable_model_summary", False)
    opts.setdefault("num_sanity_val_steps", 0)
    if "max_steps" in stage:
        opts["max_steps"] = int(stage["max_steps"])
        opts.setdefault("max_epochs", -1)
    else:
        opts["max_epochs"] = int(stage.get("epochs", 1))
    if "val_check_interval" in stage:
        opts["val_check_interval"] = stage["val_check_interval"]
    logger = CSVLogger(save_dir=str(run_dir), name="logs", version=log_version or stage["name"])
    return L.Trainer(default_root_dir=str(run_dir), logger=logger, callbacks=callbacks or [],
                     enable_checkpointing=False, **opts)


# --- progress ---------------------------------------------------------------------------------------------------
class RunProgress:
    """``progress.json`` of a run folder (see the module docstring); paths inside are relative to the run folder.

    Fields: ``stages`` (names), ``completed`` ([{index, name, checkpoint}]), ``current`` ({index, name, checkpoint,
    global_step, reason} or null), ``status`` (running, interrupted, failed, finished), ``message``.
    """

    def __init__(self, run_dir: Path, data: dict[str, Any] | None = None, writer: bool = True) -> None:
        self.run_dir, self.writer = Path(run_dir), writer
        self.data: dict[str, Any] = data or {"format": 1, "stages": [], "completed": [], "current": None,
                                             "status": "running", "message": ""}

    @classmethod
    def load(cls, run_dir: Path, writer: bool = True) -> RunProgress | None:
        p = Path(run_dir) / PROGRESS_FILE
        if not p.exists():
            return None
        try:
            return cls(run_dir, json.loads(p.read_text(encoding="utf-8")), writer)
        except (OSError, ValueError) as e:
            raise RecipeError(f"{p} is unreadable ({e}); delete it to restart the run from scratch") from e

    def save(self) -> None:
        if not self.writer:
            return
        from xemogpt.training.checkpoint_io import atomic_write

        self.data["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        text = json.dumps(self.data, indent=2).encode()
        atomic_write(self.run_dir / PROGRESS_FILE, lambda f: f.write(text))

    def rel(self, path: Path | str) -> str:
        p = Path(path)
        try:
            return str(p.resolve().relative_to(self.run_dir.resolve()))
        except ValueError:
            return str(p)

    def path(self, rel: str | None) -> Path | None:
        return None if rel is None else (self.run_dir / rel if not Path(rel).is_absolute() else Path(rel))

    def start(self, index: int, name: str) -> None:
        self.data["current"] = {"index": index, "name": name, "checkpoint": None, "global_step": 0, "reason": None}
        self.data["status"], self.data["message"] = "running", ""
        self.save()

    def saved(self, index: int, name: str, checkpoint: Path, global_step: int, reason: str) -> None:
        self.data["current"] = {"index": index, "name": name, "checkpoint": self.rel(checkpoint),
                                "global_step": int(global_step), "reason": reason}
        self.save()

    def complete(self, index: int, name: str, checkpoint: Path) -> None:
        done = [c for c in self.data["completed"] if c["index"] != index]
        self.data["completed"] = done + [{"index": index, "name": name, "checkpoint": self.rel(checkpoint)}]
        self.data["current"] = None
        self.save()

    def stop(self, status: str, message: str) -> None:
        self.data["status"], self.data["message"] = status, message
        self.save()


def resume_conflicts(saved: dict[str, Any], recipe: dict[str, Any]) -> list[str]:
    """Recipe keys that differ between a run's saved recipe and the one it is resumed with."""
    out = [k for k in RESUME_MUST_MATCH if saved.get(k) != recipe.get(k)]
    old = [s.get("name") for s in saved.get("stages") or [] if not s.get("skip")]
    new = [s.get("name") for s in recipe.get("stages") or [] if not s.get("skip")]
    if old != new:
        out.append(f"stages (names {old} vs {new})")
    return out


def consolidate_sharded(path: Path) -> Path:
    """DeepSpeed saves a checkpoint as a folder of ZeRO shards; stage checkpoints and ``model.ckpt`` are single files
    (evaluation, export and fine-tuning read them), so the folder becomes one fp32 file through Lightning's own
    converter (which needs the deepspeed package that wrote it). Other checkpoints are returned unchanged."""
    if not path.is_dir():
        return path
    from lightning.pytorch.utilities.deepspeed import convert_zero_checkpoint_to_fp32_state_dict

    tmp = path.with_name(path.name + ".fp32.part")
    convert_zero_checkpoint_to_fp32_state_dict(str(path), str(tmp))
    shutil.rmtree(path)
    tmp.replace(path)
    return path


def remove_checkpoint(path: Path) -> None:
    """Delete a checkpoint file, or a sharded checkpoint's folder."""
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _load_ckpt(path: Path) -> dict[str, Any]:
    from xemogpt.training.checkpoints import CheckpointError

    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:
        raise CheckpointError(f"checkpoint {path} is unreadable ({type(e).__name__}: {e}); delete it and resume "
                              f"again to restart that stage from the previous stage's checkpoint") from e


def _resume_plan(progress: RunProgress, stages: list[dict[str, Any]]) -> tuple[int, Path | None, Path | None]:
    """-> (first stage to run, resumable checkpoint of that stage or None, checkpoint of the stage before or None)."""
    names = [s["name"] for s in stages]
    done = sorted(progress.data.get("completed", []), key=lambda c: c["index"])
    for c in done:
        if c["index"] >= len(names) or names[c["index"]] != c["name"]:
            raise RecipeError(f"{progress.run_dir / PROGRESS_FILE}: finished stage {c['index'] + 1} {c['name']!r} is "
                              f"not stage {c['index'] + 1} of this recipe ({names}); resume with the run's recipe")
    start = 0
    while start < len(done) and done[start]["index"] == start:
        start += 1
    boundary = progress.path(done[start - 1]["checkpoint"]) if start else None
    if boundary is not None and not boundary.exists():
        raise RecipeError(f"{progress.run_dir / PROGRESS_FILE} names {boundary} as the checkpoint of finished stage "
                          f"{done[start - 1]['name']!r} but it is missing; restore it or start a new run folder")
    cur = progress.data.get("current") or {}
    resumable = progress.path(cur.get("checkpoint")) if cur.get("index") == start else None
    if resumable is not None and not resumable.exists():
        log.warning("progress.json names %s but it is missing; stage %s restarts from its beginning", resumable,
                    names[start] if start < len(names) else "?")
        resumable = None
    return start, resumable, boundary


def train_recipe(recipe: dict[str, Any], run_dir: str | Path, evaluate: bool = True,
                 resume: bool | None = None, callbacks: list | None = None) -> dict[str, Any]:
    """Train every stage of ``recipe`` into ``run_dir``; returns a summary (checkpoint path, timings, metrics).

    ``resume`` (default: the recipe's ``run.resume``) continues the run in ``run_dir`` where it stopped; with nothing
    to resume it starts a new run. Raises :class:`~xemogpt.training.callbacks.RunInterrupted` after a stop signal
    (the resumable checkpoint is saved) and :class:`~xemogpt.training.callbacks.NonFiniteLossError` on a NaN/inf loss.
    ``callbacks``: extra Lightning callbacks added to every stage's trainer.
    """
    import lightning as L

    from xemogpt.data.callbacks import DataSummaryCallback, FeatureCacheCallback
    from xemogpt.models.xemogpt import XEmoGPT
    from xemogpt.training import callbacks as cb
    from xemogpt.training.checkpoint_io import atomic_copy, clean_stale_temps
    from xemogpt.training.checkpoints import load_state
    from xemogpt.training.strategies import wraps_in_place

    t0 = time.time()
    validate_recipe(recipe)  # fail on a typo before generating data or building anything
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    rank = global_rank_from_env()
    run = recipe.get("run") or {}
    resume = bool(run.get("resume", False)) if resume is None else resume
    progress = RunProgress.load(run_dir, writer=rank == 0) if resume else None
    if resume and progress is None and rank == 0:
        print(f"--resume: {run_dir} holds no {PROGRESS_FILE} yet; starting a new run there", flush=True)
    if progress is not None and (run_dir / "recipe.yaml").exists():
        import yaml

        saved = yaml.safe_load((run_dir / "recipe.yaml").read_text(encoding="utf-8")) or {}
        bad = resume_conflicts(saved, recipe)
        if bad:
            raise RecipeError(f"cannot resume {run_dir}: the recipe differs from its recipe.yaml in {', '.join(bad)}; "
                              "resume with the same recipe and overrides, or train into a new --run-dir")
    if progress is None:
        progress = RunProgress(run_dir, writer=rank == 0)
        if rank == 0:
            save_recipe(recipe, run_dir / "recipe.yaml")
    seed = int(recipe.get("seed", 0))
    L.seed_everything(seed, workers=True, verbose=False)
    torch.set_num_threads(max(1, int(run.get("threads", os.cpu_count() or 1))))

    root = ensure_data(recipe["data"], rank)
    gen_time = time.time() - t0
    instruction = run.get("instruction")  # None: the prompt template's own
    stages = [s for s in recipe.get("stages") or [] if not s.get("skip")]
    progress.data["stages"] = [s["name"] for s in stages]
    start, resumable, boundary = _resume_plan(progress, stages) if progress.data.get("completed") or \
        progress.data.get("current") else (0, None, None)
    source = _load_ckpt(resumable or boundary) if (resumable or boundary) else None
    tok_json = (source.get("hyper_parameters") or {}).get("tokenizer_json") if source is not None else None
    if tok_json is None:  # a run's tokenizer travels in its checkpoints; a new run trains it (deterministically)
        tok_json = build_tokenizer(root, recipe["model"], int(run.get("tokenizer_vocab_size", 1000)), instruction,
                                   recipe["data"].get("storage_options"))
    L.seed_everything(seed, workers=True, verbose=False)  # the model's init never depends on what ran before
    model = XEmoGPT(recipe["model"], tokenizer_json=tok_json, generation=recipe.get("generation"),
                    instruction=instruction, feature_memo=feature_memo(recipe))
    if source is None and recipe.get("checkpoint"):
        from xemogpt.training.checkpoints import load_weights_into

        load_weights_into(model, recipe["checkpoint"])
    if resumable is None and boundary is not None:  # continue after a finished stage: its weights and random state
        load_state(model, source["state_dict"], str(boundary))
        state = cb.rng_from_checkpoint(source, rank)
        if state is not None:
            cb.restore_rng(state)
    del source
    dm = data_module(recipe, model, root)
    with cb.preserve_rng():  # decoding a cold cache must not shift the training random streams
        dm.setup()
    if rank == 0:
        print(f"data: {root} train={len(dm.dataset('train'))} val={len(dm.dataset('val'))} "
              f"test={len(dm.dataset('test'))}; {dm.skips.summary()}", flush=True)

    ckpt_dir = run_dir / "checkpoints"
    ckpt_dir.mkdir(exist_ok=True)
    if rank == 0:
        clean_stale_temps(ckpt_dir)
    last = ckpt_dir / RESUME_CHECKPOINT
    timings: dict[str, float] = {"data": round(time.time() - t0, 1), "generate_data": round(gen_time, 1)}
    every = run.get("checkpoint_every_n_steps")
    if start and rank == 0:
        print(f"resuming {run_dir}: finished stage(s) {', '.join(s['name'] for s in stages[:start])} are skipped",
              flush=True)

    trained_on = None  # the device of the last stage trained in this process
    with cb.handle_stop_signals() as stop:
        for i, stage in enumerate(stages):
            if i < start:
                continue
            name = stage["name"]
            if stop.requested:  # a signal between two stages: nothing to save beyond the finished stages
                progress.stop("interrupted", f"stopped by signal {stop.signum} before stage {name!r}")
                raise cb.RunInterrupted(stop.signum, None)
            ts = time.time()
            if i > start and wraps_in_place(recipe.get("trainer")):  # FSDP/DeepSpeed rewrote the last stage's model
                with cb.preserve_rng():
                    model = XEmoGPT(recipe["model"], tokenizer_json=tok_json, generation=recipe.get("generation"),
                                    instruction=instruction, feature_memo=feature_memo(recipe))
                prev = progress.path(progress.data["completed"][-1]["checkpoint"])
                load_state(model, _load_ckpt(prev)["state_dict"], str(prev))
            model.set_stage({"seed": seed, **stage})  # the seed of the stage's modality dropout
            dm.batch_size = int(stage.get("batch_size", dm.batch_size))
            n_train = sum(p.numel() for p in model.trainable_parameters())
            if rank == 0:
                print(f"\n== stage {i + 1}/{len(stages)}: {name} (train: {', '.join(stage.get('train', []))}; "
                      f"losses: {', '.join(stage['losses'])}; {n_train:,} trainable parameters)", flush=True)

            def save_resumable(trainer, reason: str, _i: int = i, _name: str = name) -> str:
                trainer.save_checkpoint(str(last), weights_only=False)
                if trainer.is_global_zero:
                    progress.saved(_i, _name, last, trainer.global_step, reason)
                return str(last)

            def nonfinite_path(err, _i: int = i, _name: str = name) -> Path:
                return ckpt_dir / f"nonfinite-{_i + 1}-{_name}-step{err.global_step}.ckpt"

            # Under FSDP/DeepSpeed a frozen encoder becomes a sharded unit whose every forward is a collective, so
            # the feature cache is filled before the strategy wraps the model (cb.EarlyFeatureCache).
            cache_cb = cb.EarlyFeatureCache() if wraps_in_place(recipe.get("trainer")) else FeatureCacheCallback()
            stage_callbacks = [cb.StageTag(i, name), cb.ExactResume(seed), cache_cb, cb.RNGState(),
                               cb.NonFiniteGuard(nonfinite_path), DataSummaryCallback()]
            if run.get("record_samples"):
                stage_callbacks.append(cb.SampleRecorder(run_dir / "records", name))
            stage_callbacks += list(callbacks or [])
            # The savers come last, so every other callback's state of this batch is in their checkpoints.
            if every:
                stage_callbacks.append(cb.PeriodicCheckpoint(int(every), save_resumable))
            stage_callbacks.append(cb.GracefulStop(save_resumable))
            ckpt_path = str(resumable) if (i == start and resumable is not None) else None
            version = name
            if ckpt_path:  # a resumed stage logs beside the interrupted part instead of overwriting it
                k = 1
                while (run_dir / "logs" / version).exists():
                    version, k = f"{name}-resumed{k if k > 1 else ''}", k + 1
            trainer = make_trainer(recipe, run_dir, stage, stage_callbacks, model, log_version=version)
            if ckpt_path and rank == 0:
                cur = progress.data.get("current") or {}
                print(f"resuming stage {name} from {resumable} (global step {cur.get('global_step')})", flush=True)
            else:
                progress.start(i, name)
            try:
                # weights_only: a resumable checkpoint holds tensors and plain values only (see RNGState)
                trainer.fit(model, datamodule=dm, ckpt_path=ckpt_path, weights_only=True)
            except cb.RunInterrupted as e:
                progress.stop("interrupted", str(e))
                raise
            except cb.NonFiniteLossError as e:
                progress.stop("failed", str(e))
                raise
            trained_on = trainer.strategy.root_device
            stage_ckpt = ckpt_dir / f"{i + 1}-{name}.ckpt"
            trainer.save_checkpoint(str(stage_ckpt), weights_only=False)
            trainer.strategy.barrier("stage-checkpoint")  # every shard is written before rank 0 converts them
            if rank == 0:
                consolidate_sharded(stage_ckpt)
                progress.complete(i, name, stage_ckpt)
                remove_checkpoint(last)  # the finished stage's checkpoint supersedes it
            timings[name] = round(time.time() - ts, 1)
            if rank == 0 and dm.skips.items:
                print(f"stage {name}: {dm.skips.summary()}", flush=True)

    final = run_dir / "model.ckpt"
    last_stage = progress.path(progress.data["completed"][-1]["checkpoint"]) if progress.data["completed"] else None
    summary: dict[str, Any] = {"run_dir": str(run_dir), "checkpoint": str(final), "timings_s": timings}
    if rank != 0:  # other ranks only train; rank 0 writes the model, evaluates and summarises
        summary["rank"] = rank
        return summary
    if last_stage is not None:
        atomic_copy(last_stage, final)
    progress.stop("finished", "")
    if evaluate and (recipe.get("eval") or {}).get("enabled", True):
        from xemogpt.evaluation.evaluate import evaluate_model

        if trained_on is not None and wraps_in_place(recipe.get("trainer")) and final.exists():
            # FSDP/DeepSpeed left this rank only its shards (and the other ranks have returned): rank 0 evaluates a
            # model rebuilt from the full checkpoint it just wrote, on the device it trained on.
            from xemogpt.training.checkpoints import load_model

            del model
            model = load_model(final, map_location=str(trained_on))

        te = time.time()
        ev = recipe.get("eval") or {}
        metrics = evaluate_model(model, dm, run_dir / "eval", split=ev.get("split", "test"),
                                 extractor=ev.get("extractor", "offline"), batch_size=int(ev.get("batch_size", 32)),
                                 baselines=bool(ev.get("baselines", True)), wheels=ev.get("wheels"), seed=seed)
        timings["eval"] = round(time.time() - te, 1)
        summary["metrics"] = metrics
    timings["total"] = round(time.time() - t0, 1)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return summary
