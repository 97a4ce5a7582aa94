"""The pieces a run is made of: its dataset (:func:`ensure_data`, generated when the recipe says how), its tokenizer
(:func:`build_tokenizer`), its DataModule (:func:`data_module`, with the frame and audio settings the encoders ask
for) and the Lightning Trainer of each stage (:func:`make_trainer`). :mod:`xemogpt.training.runner` puts them
together.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

from xemogpt.recipe import RecipeError
from xemogpt.training.callbacks import global_rank_from_env

log = logging.getLogger("xemogpt.train")

DATA_DEFAULTS = {"batch_size": 16, "num_workers": 2, "num_frames": 16, "sample_rate": 16000, "max_seconds": 12.0,
                 "cache": "disk", "strict": False}


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


def predict_options(recipe: dict[str, Any]) -> dict[str, Any]:
    """``Trainer`` settings for encoding the feature cache with the recipe's accelerator, devices and nodes: data
    parallel whatever the training strategy (a frozen encoder is replicated, not sharded, to encode)."""
    t = dict(recipe.get("trainer") or {})
    opts: dict[str, Any] = {k: t[k] for k in ("accelerator", "devices", "num_nodes") if k in t}
    opts.setdefault("accelerator", "auto")
    opts.setdefault("devices", 1)
    opts["strategy"] = "auto"  # DDP when there are several devices
    return opts


def make_trainer(recipe: dict[str, Any], run_dir: Path, stage: dict[str, Any], callbacks: list | None = None,
                 model: torch.nn.Module | None = None, log_version: str | None = None):
    """One Lightning Trainer for ``stage``: the recipe's trainer settings with strategy/precision resolved
    (:func:`xemogpt.training.strategies.trainer_options`), atomic checkpoint IO and a CSV log per stage
    (``logs/<log_version or stage name>``)."""
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    from xemogpt.training.progress import progress_callbacks
    from xemogpt.training.strategies import trainer_options

    opts = trainer_options(recipe.get("trainer"), model)
    opts.setdefault("devices", 1)
    opts.setdefault("log_every_n_steps", 10)
    opts.setdefault("enable_model_summary", False)
    opts.setdefault("num_sanity_val_steps", 0)
    # a bar redrawn into a log file is noise: without a terminal the LogProgress lines report instead
    opts.setdefault("enable_progress_bar", sys.stdout.isatty())
    if "max_steps" in stage:
        opts["max_steps"] = int(stage["max_steps"])
        opts.setdefault("max_epochs", -1)
    else:
        opts["max_epochs"] = int(stage.get("epochs", 1))
    if "val_check_interval" in stage:
        opts["val_check_interval"] = stage["val_check_interval"]
    logger = CSVLogger(save_dir=str(run_dir), name="logs", version=log_version or stage["name"])
    return L.Trainer(default_root_dir=str(run_dir), logger=logger, callbacks=[*(callbacks or []), *progress_callbacks(
                     recipe, stage)], enable_checkpointing=False, **opts)


