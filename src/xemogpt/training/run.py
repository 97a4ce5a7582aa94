"""Run a recipe: make sure its data exists, build the model, train each stage, save checkpoints, evaluate."""

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

log = logging.getLogger("xemogpt.train")

DATA_DEFAULTS = {"batch_size": 16, "num_workers": 2, "num_frames": 16, "sample_rate": 16000, "max_seconds": 12.0,
                 "cache": "disk", "strict": False}


def ensure_data(data: dict[str, Any]) -> Path:
    """The dataset folder of a recipe, generated first when the recipe says how (``data.synth``)."""
    if "root" not in data:
        raise RecipeError("recipe key 'data.root' is missing: the folder holding manifest.jsonl")
    root = Path(data["root"])
    if (root / "manifest.jsonl").exists():
        return root
    synth = data.get("synth")
    if not synth:
        raise FileNotFoundError(f"data.root {root} has no manifest.jsonl; import a dataset with `xemogpt data import` "
                                "or add data.synth to generate one")
    from xemogpt.data.synth import generate

    print(f"generating {synth.get('n', 1000)} synthetic EmoCue clips into {root} ...", flush=True)
    generate(root, n=int(synth.get("n", 1000)), seed=int(synth.get("seed", 0)),
             workers=int(synth.get("workers", min(2, os.cpu_count() or 1))), size=int(synth.get("size", 112)))
    return root


def build_tokenizer(root: Path, model_spec: dict[str, Any], vocab_size: int, instruction: str) -> str | None:
    """Train a tokenizer on the training split when the recipe asks for ``llm_head.tokenizer: build``."""
    spec = model_spec["llm_head"]
    if not isinstance(spec, dict) or spec.get("tokenizer") != "build":
        return None
    from xemogpt.data.schema import read_manifest
    from xemogpt.llm.prompt import build_prompt
    from xemogpt.llm.tokenizer import tokenizer_to_json, train_tokenizer

    samples = read_manifest(root)
    train = [s for s in samples if s.split == "train"] or samples
    texts = [s.description for s in train] + [build_prompt(s.subtitle, instruction) for s in samples]
    return tokenizer_to_json(train_tokenizer(texts, vocab_size=vocab_size))


def data_module(recipe: dict[str, Any], model, root: Path, batch_size: int | None = None):
    from xemogpt.data.datamodule import EmoCueDataModule

    data = {**DATA_DEFAULTS, **{k: v for k, v in recipe["data"].items() if k not in ("root", "synth")}}
    pre = getattr(model.video_encoder, "preprocess_config", lambda: {})()
    apre = getattr(model.audio_encoder, "preprocess_config", lambda: {})()
    data.setdefault("frame_size", pre.get("image_size", 64))
    if "sample_rate" in apre:
        data["sample_rate"] = apre["sample_rate"]
    if batch_size:
        data["batch_size"] = batch_size
    data.setdefault("seed", recipe.get("seed", 0))
    return EmoCueDataModule(str(root), **data)


def make_trainer(recipe: dict[str, Any], run_dir: Path, stage: dict[str, Any], callbacks: list | None = None):
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    opts = dict(recipe.get("trainer") or {})
    opts.setdefault("accelerator", "cpu" if not torch.cuda.is_available() else "auto")
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
    logger = CSVLogger(save_dir=str(run_dir), name="logs", version=stage["name"])
    return L.Trainer(default_root_dir=str(run_dir), logger=logger, callbacks=callbacks or [],
                     enable_checkpointing=False, **opts)


def train_recipe(recipe: dict[str, Any], run_dir: str | Path, evaluate: bool = True) -> dict[str, Any]:
    """Train every stage of ``recipe`` into ``run_dir``; returns a summary (checkpoint path, timings, metrics)."""
    import lightning as L

    from xemogpt.models.xemogpt import XEmoGPT

    t0 = time.time()
    validate_recipe(recipe)  # fail on a typo before generating data or building anything
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_recipe(recipe, run_dir / "recipe.yaml")
    seed = int(recipe.get("seed", 0))
    L.seed_everything(seed, workers=True, verbose=False)
    torch.set_num_threads(max(1, int((recipe.get("run") or {}).get("threads", os.cpu_count() or 1))))

    root = ensure_data(recipe["data"])
    gen_time = time.time() - t0
    run = recipe.get("run") or {}
    instruction = run.get("instruction")
    from xemogpt.llm.prompt import DEFAULT_INSTRUCTION

    instruction = instruction or DEFAULT_INSTRUCTION
    tok_json = build_tokenizer(root, recipe["model"], int(run.get("tokenizer_vocab_size", 1000)), instruction)
    model = XEmoGPT(recipe["model"], tokenizer_json=tok_json, generation=recipe.get("generation"),
                    instruction=instruction, feature_memo=bool(run.get("feature_memo", True)))
    if recipe.get("checkpoint"):
        from xemogpt.training.checkpoints import load_weights_into

        load_weights_into(model, recipe["checkpoint"])
    dm = data_module(recipe, model, root)
    dm.setup()
    print(f"data: {root} train={len(dm.dataset('train'))} val={len(dm.dataset('val'))} "
          f"test={len(dm.dataset('test'))}; {dm.skips.summary()}", flush=True)

    ckpt_dir = run_dir / "checkpoints"
    ckpt_dir.mkdir(exist_ok=True)
    timings: dict[str, float] = {"data": round(time.time() - t0, 1), "generate_data": round(gen_time, 1)}
    stages = [s for s in recipe.get("stages") or [] if not s.get("skip")]
    last_ckpt = None
    for i, stage in enumerate(stages):
        ts = time.time()
        model.set_stage(stage)
        dm.batch_size = int(stage.get("batch_size", dm.batch_size))
        n_train = sum(p.numel() for p in model.trainable_parameters())
        print(f"\n== stage {i + 1}/{len(stages)}: {stage['name']} (train: {', '.join(stage.get('train', []))}; "
              f"losses: {', '.join(stage['losses'])}; {n_train:,} trainable parameters)", flush=True)
        trainer = make_trainer(recipe, run_dir, stage)
        trainer.fit(model, datamodule=dm)
        last_ckpt = ckpt_dir / f"{i + 1}-{stage['name']}.ckpt"
        trainer.save_checkpoint(str(last_ckpt))
        timings[stage["name"]] = round(time.time() - ts, 1)
        if dm.skips.items:
            print(f"stage {stage['name']}: {dm.skips.summary()}", flush=True)
    final = run_dir / "model.ckpt"
    if last_ckpt is not None:
        shutil.copyfile(last_ckpt, final)
    summary: dict[str, Any] = {"run_dir": str(run_dir), "checkpoint": str(final), "timings_s": timings}
    if evaluate and (recipe.get("eval") or {}).get("enabled", True):
        from xemogpt.evaluation.evaluate import evaluate_model

        te = time.time()
        ev = recipe.get("eval") or {}
        metrics = evaluate_model(model, dm, run_dir / "eval", split=ev.get("split", "test"),
                                 extractor=ev.get("extractor", "offline"), batch_size=int(ev.get("batch_size", 32)),
                                 baselines=bool(ev.get("baselines", True)))
        timings["eval"] = round(time.time() - te, 1)
        summary["metrics"] = metrics
    timings["total"] = round(time.time() - t0, 1)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return summary
