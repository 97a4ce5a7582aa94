"""Running a recipe: a run folder trained stage by stage, in named phases.

:class:`RecipeRunner` (``train_recipe(recipe, run_dir)``, ``xemogpt train``, ``make train``) goes through

* ``plan``: the run folder -- a new run, or what a resume continues (``progress.json``, :mod:`.resume`);
* ``prepare_data``: the dataset (generated when the recipe says how), the tokenizer (trained when
  ``llm_head.tokenizer: build``);
* ``build``: the model with only the parts the first stage needs (a bridge pre-training stage holds no LLM), a
  resumed run's weights and random state, the DataModule;
* ``run_stage`` for each stage: ``prepare_stage`` (the stage's parts built, what trains, the frozen encoders' feature
  cache filled through ``Trainer.predict``), then one kind of fit (:func:`xemogpt.models.spec.stage_mode`) --
  the composed model (``fit_composed``), each bridge alone on cached features (``fit_bridges``), or the LLM head on
  descriptions (``fit_text``) -- and the stage checkpoint;
* ``finish``: ``model.ckpt`` and the evaluation of the test split.

Fault tolerance: ``checkpoints/last.ckpt`` is written on SIGTERM / SIGINT (then the process exits cleanly) and every
``run.checkpoint_every_n_steps`` optimiser steps; ``resume=True`` (``xemogpt train --resume``, ``make train RESUME=1``
or ``run.resume: true``) skips finished stages and continues the running fit from it -- ending with the same weights
as a run that was never interrupted -- or starts it from the last finished stage. A NaN or infinite loss stops the
run with the stage, step and batch sample ids, after saving ``checkpoints/nonfinite-<i>-<stage>-step<k>.ckpt``.
Every checkpoint write is atomic (:mod:`xemogpt.checkpointing.files`); scaling settings (DDP, FSDP, DeepSpeed,
nodes, precision, accumulation, activation checkpointing) are read by :mod:`xemogpt.training.strategies`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from xemogpt.checkpointing.files import (
    atomic_copy,
    atomic_save,
    clean_stale_temps,
    consolidate_sharded,
    load_checkpoint_file,
    remove_checkpoint,
)
from xemogpt.models.spec import BRIDGE_LOSSES, stage_mode, stage_parts
from xemogpt.recipe import RecipeError, save_recipe, validate_recipe
from xemogpt.training import callbacks as cb
from xemogpt.training.resume import PROGRESS_FILE, RESUME_CHECKPOINT, RunProgress, resume_conflicts, resume_plan
from xemogpt.training.run import (
    build_tokenizer,
    data_module,
    ensure_data,
    feature_memo,
    make_trainer,
    predict_options,
)
from xemogpt.training.strategies import wraps_in_place
from xemogpt.utils.threads import default_threads


def train_recipe(recipe: dict[str, Any], run_dir: str | Path, evaluate: bool = True,
                 resume: bool | None = None, callbacks: list | None = None) -> dict[str, Any]:
    """Train every stage of ``recipe`` into ``run_dir``; returns a summary (checkpoint path, timings, metrics).

    ``resume`` (default: the recipe's ``run.resume``) continues the run in ``run_dir`` where it stopped; with nothing
    to resume it starts a new run. Raises :class:`~xemogpt.training.callbacks.RunInterrupted` after a stop signal
    (the resumable checkpoint is saved) and :class:`~xemogpt.training.callbacks.NonFiniteLossError` on a NaN/inf loss.
    ``callbacks``: extra Lightning callbacks added to every stage's trainer.
    """
    return RecipeRunner(recipe, run_dir, resume=resume, callbacks=callbacks).run(evaluate)


class RecipeRunner:
    """One run of a recipe (see the module docstring for the phases)."""

    def __init__(self, recipe: dict[str, Any], run_dir: str | Path, resume: bool | None = None,
                 callbacks: list | None = None) -> None:
        self.recipe = recipe
        self.run_dir = Path(run_dir)
        self.settings = recipe.get("run") or {}
        self.resume = bool(self.settings.get("resume", False)) if resume is None else resume
        self.extra_callbacks = list(callbacks or [])
        self.rank = cb.global_rank_from_env()
        self.seed = int(recipe.get("seed", 0))
        self.stages = [s for s in recipe.get("stages") or [] if not s.get("skip")]
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.last = self.ckpt_dir / RESUME_CHECKPOINT
        self.t0 = time.time()
        self.timings: dict[str, float] = {}
        self.model = self.dm = self.progress = self.plan_ = None
        self.trained_on = None  # the device of the last stage trained in this process

    def say(self, text: str) -> None:
        if self.rank == 0:
            print(text, flush=True)

    def run(self, evaluate: bool = True) -> dict[str, Any]:
        self.plan()
        self.prepare_data()
        self.build()
        with cb.handle_stop_signals() as stop:
            for i, stage in enumerate(self.stages):
                if i < self.plan_.start:
                    continue
                if stop.requested:  # a signal between two stages: nothing to save beyond the finished stages
                    self.progress.stop("interrupted", f"stopped by signal {stop.signum} before stage {stage['name']!r}")
                    raise cb.RunInterrupted(stop.signum, None)
                self.run_stage(i, stage)
        return self.finish(evaluate)

    # --- plan -----------------------------------------------------------------------------------------------------
    def plan(self) -> None:
        """The run folder: its recipe.yaml, and for a resume the progress it continues (the recipe must match)."""
        import lightning as L

        validate_recipe(self.recipe)  # fail on a typo before generating data or building anything
        self.run_dir.mkdir(parents=True, exist_ok=True)
        progress = RunProgress.load(self.run_dir, writer=self.rank == 0) if self.resume else None
        if self.resume and progress is None:
            self.say(f"--resume: {self.run_dir} holds no {PROGRESS_FILE} yet; starting a new run there")
        if progress is not None and (self.run_dir / "recipe.yaml").exists():
            import yaml

            saved = yaml.safe_load((self.run_dir / "recipe.yaml").read_text(encoding="utf-8")) or {}
            bad = resume_conflicts(saved, self.recipe)
            if bad:
                raise RecipeError(f"cannot resume {self.run_dir}: the recipe differs from its recipe.yaml in "
                                  f"{', '.join(bad)}; resume with the same recipe and overrides, or train into a new "
                                  "--run-dir")
        if progress is None:
            progress = RunProgress(self.run_dir, writer=self.rank == 0)
            if self.rank == 0:
                save_recipe(self.recipe, self.run_dir / "recipe.yaml")
        self.progress = progress
        L.seed_everything(self.seed, workers=True, verbose=False)
        torch.set_num_threads(max(1, int(self.settings.get("threads") or default_threads())))

    # --- data -----------------------------------------------------------------------------------------------------
    def prepare_data(self) -> None:
        """The dataset (generated if the recipe says how), where a resume continues, the tokenizer."""
        self.root = ensure_data(self.recipe["data"], self.rank)
        self.timings["generate_data"] = round(time.time() - self.t0, 1)
        self.progress.data["stages"] = [s["name"] for s in self.stages]
        resuming = self.progress.data.get("completed") or self.progress.data.get("current")
        self.plan_ = resume_plan(self.progress, self.stages) if resuming else resume_plan(RunProgress(self.run_dir),
                                                                                          self.stages)
        self.source = load_checkpoint_file(self.plan_.source) if self.plan_.source is not None else None
        if self.source is None and self.plan_.resumable is not None and self.plan_.part is None:
            self.source = load_checkpoint_file(self.plan_.resumable)  # a composed fit's checkpoint is the model
        tok = (self.source.get("hyper_parameters") or {}).get("tokenizer_json") if self.source is not None else None
        if tok is None:  # a run's tokenizer travels in its checkpoints; a new run trains it (deterministically)
            tok = build_tokenizer(self.root, self.recipe["model"], int(self.settings.get("tokenizer_vocab_size", 1000)),
                                  self.settings.get("instruction"), self.recipe["data"].get("storage_options"))
        self.tokenizer_json = tok

    # --- build ----------------------------------------------------------------------------------------------------
    def new_model(self, parts: list[str] | None):
        from xemogpt.models.xemogpt import XEmoGPT

        return XEmoGPT(self.recipe["model"], tokenizer_json=self.tokenizer_json,
                       generation=self.recipe.get("generation"), instruction=self.settings.get("instruction"),
                       feature_memo=feature_memo(self.recipe), parts=parts, seed=self.seed)

    def build(self) -> None:
        """The model (the parts the first stage needs, or those of the checkpoint it resumes from), the weights and
        random state it continues with, the DataModule."""
        import lightning as L

        from xemogpt.models.loading import load_state, load_weights_into

        L.seed_everything(self.seed, workers=True, verbose=False)
        first = self.stages[self.plan_.start] if self.plan_.start < len(self.stages) else None
        src = self.source
        if src is not None:
            # exactly the parts the checkpoint holds, with its weights (a resumed fit then restores its own state)
            self.model = self.new_model(list((src.get("hyper_parameters") or {}).get("parts") or []) or None)
            load_state(self.model, src["state_dict"], str(self.plan_.source or self.plan_.resumable))
            state = cb.rng_from_checkpoint(src, self.rank)
            if state is not None and self.plan_.resumable is None:
                cb.restore_rng(state)
        else:
            self.model = self.new_model(stage_parts(first, self.recipe["model"]) if first is not None else None)
            if self.recipe.get("checkpoint"):
                load_weights_into(self.model, self.recipe["checkpoint"])
        self.source = None
        self.dm = data_module(self.recipe, self.model, self.root)
        with cb.preserve_rng():  # decoding a cold cache must not shift the training random streams
            self.dm.setup()
        dm = self.dm
        self.say(f"data: {self.root} train={len(dm.dataset('train'))} val={len(dm.dataset('val'))} "
                 f"test={len(dm.dataset('test'))}; {dm.skips.summary()}")
        self.ckpt_dir.mkdir(exist_ok=True)
        if self.rank == 0:
            clean_stale_temps(self.ckpt_dir)
        self.timings["data"] = round(time.time() - self.t0, 1)
        if self.plan_.start:
            self.say(f"resuming {self.run_dir}: finished stage(s) "
                     f"{', '.join(s['name'] for s in self.stages[:self.plan_.start])} are skipped")

    # --- stages ---------------------------------------------------------------------------------------------------
    def run_stage(self, i: int, stage: dict[str, Any]) -> None:
        ts = time.time()
        mode = self.prepare_stage(i, stage)
        stage_ckpt = self.ckpt_dir / f"{i + 1}-{stage['name']}.ckpt"
        {"composed": self.fit_composed, "bridges": self.fit_bridges, "text": self.fit_text}[mode](i, stage, stage_ckpt)
        if self.rank == 0:
            consolidate_sharded(stage_ckpt)
            self.progress.complete(i, stage["name"], stage_ckpt)
            remove_checkpoint(self.last)  # the finished stage's checkpoint supersedes it
        self.timings[stage["name"]] = round(time.time() - ts, 1)
        if self.dm.skips.items:
            self.say(f"stage {stage['name']}: {self.dm.skips.summary()}")

    def mode(self, stage: dict[str, Any]) -> str:
        """The stage's kind of fit; bridges train alone only on cached features (so not with ``data.features: off``)."""
        mode = stage_mode(stage)
        return "composed" if mode == "bridges" and self.dm.features == "off" else mode

    def prepare_stage(self, i: int, stage: dict[str, Any]) -> str:
        """Build what the stage needs, set what trains, fill and switch on the frozen encoders' feature cache."""
        model = self.model
        if i > self.plan_.start and wraps_in_place(self.recipe.get("trainer")):
            # FSDP/DeepSpeed rewrote the last stage's model in place: rebuild it from the checkpoint it wrote
            from xemogpt.models.loading import load_state

            prev = self.progress.path(self.progress.data["completed"][-1]["checkpoint"])
            src = load_checkpoint_file(prev)
            with cb.preserve_rng():
                model = self.model = self.new_model(list((src.get("hyper_parameters") or {}).get("parts") or []))
            load_state(model, src["state_dict"], str(prev))
        model.build_parts(stage_parts(stage, self.recipe["model"]))
        model.set_stage({"seed": self.seed, **stage})  # the seed of the stage's modality dropout
        self.dm.batch_size = int(stage.get("batch_size", self.dm.batch_size))
        mode = self.mode(stage)
        n_train = sum(p.numel() for p in model.trainable_parameters())
        self.say(f"\n== stage {i + 1}/{len(self.stages)}: {stage['name']} (train: {', '.join(stage.get('train', []))}; "
                 f"losses: {', '.join(stage['losses'])}; {n_train:,} trainable parameters"
                 + {"bridges": "; each bridge alone on cached features", "text": "; the LLM head on descriptions",
                    "composed": ""}[mode] + ")")
        frozen = {}
        if mode != "text":
            for m in ("video", "audio"):
                enc = getattr(model, f"{m}_encoder", None)
                frozen[m] = enc if enc is not None and enc.frozen else None
        with cb.preserve_rng():  # encoding a cold cache must not shift the training random streams
            reports = self.dm.use_features(frozen.get("video"), frozen.get("audio"),
                                           trainer_options=predict_options(self.recipe), progress=self.rank == 0)
        for r in reports:
            self.say(r.summary())
        return mode

    def callbacks(self, i: int, stage: dict[str, Any], part: str | None = None, composed: bool = True) -> list:
        """The stage's Lightning callbacks; the savers come last, so every other callback's state of this batch is
        in their checkpoints."""
        from xemogpt.data.callbacks import DataSummaryCallback

        name = stage["name"]

        def save_resumable(trainer, reason: str) -> str:
            trainer.save_checkpoint(str(self.last), weights_only=False)
            if trainer.is_global_zero:
                self.progress.saved(i, name, self.last, trainer.global_step, reason, part=part)
            return str(self.last)

        def nonfinite_path(err) -> Path:
            return self.ckpt_dir / f"nonfinite-{i + 1}-{name}-step{err.global_step}.ckpt"

        out = [cb.StageTag(i, name), cb.ExactResume(self.seed), cb.RNGState()]
        if composed:
            out += [cb.NonFiniteGuard(nonfinite_path), DataSummaryCallback()]
            if self.settings.get("record_samples"):
                out.append(cb.SampleRecorder(self.run_dir / "records", name))
        out += self.extra_callbacks
        every = self.settings.get("checkpoint_every_n_steps")
        if every:
            out.append(cb.PeriodicCheckpoint(int(every), save_resumable))
        out.append(cb.GracefulStop(save_resumable))
        return out

    def fit(self, i: int, stage: dict[str, Any], module, datamodule, part: str | None = None,
            composed: bool = True):
        """One ``Trainer.fit`` of ``module`` (resumed from ``last.ckpt`` when the run stopped inside it)."""
        name = stage["name"]
        plan = self.plan_
        resumed = i == plan.start and plan.resumable is not None and plan.part == part
        ckpt_path = str(plan.resumable) if resumed else None
        version = name if part is None else f"{name}-{part}"
        if ckpt_path:  # a resumed fit logs beside the interrupted part instead of overwriting it
            base, k = version, 1
            while (self.run_dir / "logs" / version).exists():
                version, k = f"{base}-resumed{k if k > 1 else ''}", k + 1
            cur = self.progress.data.get("current") or {}
            self.say(f"resuming {version} from {plan.resumable} (global step {cur.get('global_step')})")
        else:
            self.progress.start(i, name, part)
        trainer = make_trainer(self.recipe, self.run_dir, stage, self.callbacks(i, stage, part, composed), module,
                               log_version=version)
        try:
            # weights_only: a resumable checkpoint holds tensors and plain values only (see RNGState)
            trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        except cb.RunInterrupted as e:
            self.progress.stop("interrupted", str(e))
            raise
        except cb.NonFiniteLossError as e:
            self.progress.stop("failed", str(e))
            raise
        self.trained_on = trainer.strategy.root_device
        return trainer

    def fit_composed(self, i: int, stage: dict[str, Any], stage_ckpt: Path) -> None:
        """The composed model on the DataModule (with only the perception parts for bridge-task stages)."""
        trainer = self.fit(i, stage, self.model, self.dm)
        trainer.save_checkpoint(str(stage_ckpt), weights_only=False)
        trainer.strategy.barrier("stage-checkpoint")  # every shard is written before rank 0 converts them

    def fit_bridges(self, i: int, stage: dict[str, Any], stage_ckpt: Path) -> None:
        """Each bridge the stage trains, alone (``Trainer.fit(bridge, BridgeData)``) on its frozen encoder's cached
        features with its own tasks; after each, a checkpoint of the whole model (a resume skips finished ones)."""
        from xemogpt.data.views import BridgeData

        plan = self.plan_
        done = set(plan.done_parts) if i == plan.start else set()  # their weights came with build()'s checkpoint
        for loss in [x for x in BRIDGE_LOSSES if x in stage["losses"]]:
            part = BRIDGE_LOSSES[loss]
            if part not in stage.get("train", []) or part in done:
                continue
            modality = part.split("_")[0]
            bridge = getattr(self.model, part).use_stage(stage)
            data = BridgeData(self.dm, modality, lambda texts, m=modality: self.model.encode_text(texts, m))
            self.fit(i, stage, bridge, data, part=part, composed=False)
            partial = self.ckpt_dir / f"{i + 1}-{stage['name']}-{part}.ckpt"
            self.save_model_checkpoint(partial, i, stage["name"])
            if self.rank == 0:
                self.progress.part_done(i, stage["name"], part, partial)
                remove_checkpoint(self.last)
        self.save_model_checkpoint(stage_ckpt, i, stage["name"])

    def fit_text(self, i: int, stage: dict[str, Any], stage_ckpt: Path) -> None:
        """The LLM head alone on the descriptions (``Trainer.fit(llm_head, DescriptionData)``)."""
        from xemogpt.data.views import DescriptionData

        if set(stage.get("train", [])) != {"llm_head"}:
            raise RecipeError(f"stage {stage['name']!r}: the lm_text loss trains the LLM head alone (train: "
                              "[llm_head])")
        self.fit(i, stage, self.model.llm_head.use_stage(stage), DescriptionData(self.dm), part="llm_head",
                 composed=False)
        self.save_model_checkpoint(stage_ckpt, i, stage["name"])

    def save_model_checkpoint(self, path: Path, i: int, name: str) -> None:
        """The whole model with every rank's random state (what a stage boundary resumes from), written by rank 0."""
        import lightning

        ranks = cb.gather_objects(None, cb.capture_rng())
        if self.rank == 0:
            ckpt: dict[str, Any] = {"state_dict": self.model.state_dict(), "hyper_parameters": dict(self.model.hparams),
                                    "callbacks": {"RNGState": {"ranks": ranks}}, "xemogpt_stage": {"index": i,
                                                                                                   "name": name},
                                    "pytorch-lightning_version": lightning.__version__}
            self.model.on_save_checkpoint(ckpt)
            atomic_save(ckpt, path)

    # --- finish ---------------------------------------------------------------------------------------------------
    def finish(self, evaluate: bool) -> dict[str, Any]:
        """``model.ckpt`` (the last stage's checkpoint), the evaluation of the test split, ``summary.json``."""
        final = self.run_dir / "model.ckpt"
        done = self.progress.data["completed"]
        last_stage = self.progress.path(done[-1]["checkpoint"]) if done else None
        summary: dict[str, Any] = {"run_dir": str(self.run_dir), "checkpoint": str(final), "timings_s": self.timings}
        if self.rank != 0:  # other ranks only train; rank 0 writes the model, evaluates and summarises
            summary["rank"] = self.rank
            return summary
        if last_stage is not None:
            atomic_copy(last_stage, final)
        self.progress.stop("finished", "")
        ev = self.recipe.get("eval") or {}
        if evaluate and ev.get("enabled", True):
            model = self.model
            if model.llm_head is None:
                self.say("evaluation skipped: the recipe's stages never built the LLM head (no language stage)")
            else:
                from xemogpt.evaluation.evaluate import evaluate_model

                if self.trained_on is not None and wraps_in_place(self.recipe.get("trainer")) and final.exists():
                    # FSDP/DeepSpeed left this rank only its shards (and the other ranks have returned): rank 0
                    # evaluates a model rebuilt from the full checkpoint it just wrote, on the device it trained on.
                    from xemogpt.models.loading import load_model

                    del model
                    model = self.model = load_model(final, map_location=str(self.trained_on))
                te = time.time()
                summary["metrics"] = evaluate_model(
                    model, self.dm, self.run_dir / "eval", split=ev.get("split", "test"),
                    extractor=ev.get("extractor", "offline"), batch_size=int(ev.get("batch_size", 32)),
                    baselines=bool(ev.get("baselines", True)), wheels=ev.get("wheels"), seed=self.seed)
                self.timings["eval"] = round(time.time() - te, 1)
        self.timings["total"] = round(time.time() - self.t0, 1)
        (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
        return summary
