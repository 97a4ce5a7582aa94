"""Recipes: YAML files naming components, data, stages and trainer settings.

``extends: other.yaml`` inherits another recipe (deep merge, this file wins); command-line overrides
``key.sub=value`` (values parsed as YAML, list items by index: ``stages.2.epochs=3``) change any key. The resolved
recipe is saved next to every run.

:func:`validate_recipe` checks every section before any work, so ``data.batch_sise`` fails at once with the key and
the closest valid one. The keys of each section come from what reads it: ``data`` from
:class:`~xemogpt.data.datamodule.EmoCueDataModule`'s arguments (values checked against their annotations), ``trainer``
from ``lightning.Trainer``'s plus :mod:`xemogpt.training.strategies`' own, ``generation`` from transformers'
``GenerationConfig``, ``eval`` from :func:`~xemogpt.evaluation.evaluate.evaluate_model`'s; ``run`` and ``stages`` keys
are listed here (``tests/test_recipe.py`` checks that every key the code reads is in them).
"""

from __future__ import annotations

import copy
import difflib
import inspect
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from xemogpt.errors import XemoGPTError

TOP_LEVEL_KEYS = ("name", "description", "extends", "seed", "model", "data", "stages", "trainer", "generation",
                  "eval", "run", "checkpoint", "finetune")
STAGE_KEYS = ("name", "train", "losses", "epochs", "max_steps", "lr", "weight_decay", "warmup", "min_lr_ratio",
              "batch_size", "val_check_interval", "skip", "modality_dropout")
# What the runner and the workflows read from ``run`` (xemogpt.training.run, xemogpt.workflows, xemogpt.describe).
RUN_KEYS = ("resume", "threads", "instruction", "tokenizer_vocab_size", "checkpoint_every_n_steps", "record_samples",
            "feature_memo", "log_every_seconds")
SYNTH_KEYS = ("n", "seed", "workers", "size")  # data.synth: what xemogpt.training.run.ensure_data passes on
# eval keys besides evaluate_model's arguments: whether the run evaluates, the label set that travels with a run.
EVAL_OWN_KEYS = ("enabled", "emotions")
FINETUNE_KEYS = ("from", "dataset", "llm_head", "lora", "target")
FINETUNE_DATASET_KEYS = ("generate", "import")
FINETUNE_GENERATE_KEYS = ("style", "out", "n", "seed", "size", "workers")  # xemogpt.workflows.finetune.prepare_dataset
FINETUNE_HEAD_MODES = ("keep", "lora")  # finetune.llm_head: keep the head as trained, or add LoRA adapters
FINETUNE_GENERATE_STYLES = ("moods", "emocue")  # finetune.dataset.generate.style
# Trainer arguments the runner sets itself (a recipe value would clash or be overwritten), with what to use instead.
TRAINER_SET_BY_RUNNER = {
    "default_root_dir": "the run folder is --run-dir",
    "logger": "each stage logs to logs/<stage>/metrics.csv",
    "callbacks": "pass callbacks to xemogpt.training.run.train_recipe",
    "enable_checkpointing": "checkpoints are written by the runner (run.checkpoint_every_n_steps)",
    "max_epochs": "epochs are set per stage: stages.<i>.epochs",
}
# Generation settings the model sets from its tokenizer.
GENERATION_SET_BY_MODEL = ("pad_token_id", "eos_token_id", "use_cache")


class RecipeError(XemoGPTError, ValueError):
    """A recipe is malformed; the message names the key."""


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and not v.get("_replace", False):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy({kk: vv for kk, vv in v.items() if kk != "_replace"} if isinstance(v, dict) else v)
    return out


def find_recipe(path: str | Path) -> Path:
    """A recipe path, or a bare name looked up in ./recipes/."""
    p = Path(path)
    if p.exists():
        return p
    for cand in (Path("recipes") / p, Path("recipes") / f"{p}.yaml"):
        if cand.exists():
            return cand
    raise FileNotFoundError(f"recipe {str(path)!r} not found (looked in ./ and ./recipes/)")


def load_yaml(path: Path, what: str = "a recipe", error: type[Exception] = RecipeError) -> dict[str, Any]:
    """The mapping in the YAML file ``path``; ``error`` names the file when it is not valid YAML or not a mapping
    (``what`` it should have been: "a recipe", "an ablation file")."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise error(f"{path}: not valid YAML ({e})") from e
    if not isinstance(data, dict):
        raise error(f"{path}: {what} must be a YAML mapping")
    return data


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Load a recipe file (following ``extends``) and apply ``key=value`` overrides."""
    p = find_recipe(path)
    data = load_yaml(p)
    seen = {p.resolve()}
    while "extends" in data and data["extends"]:
        parent = (p.parent / data["extends"]) if not Path(data["extends"]).is_absolute() else Path(data["extends"])
        if not parent.exists():
            parent = find_recipe(data["extends"])
        if parent.resolve() in seen:
            raise RecipeError(f"{p}: 'extends' forms a cycle through {parent}")
        seen.add(parent.resolve())
        child = {k: v for k, v in data.items() if k != "extends"}
        data = _merge(load_yaml(parent), child)
        p = parent
    data = apply_overrides(data, overrides or [])
    validate_top_level(data)
    return data


def apply_overrides(recipe: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    out = copy.deepcopy(recipe)
    for item in overrides:
        if "=" not in item:
            raise RecipeError(f"override {item!r} must look like key.sub=value")
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw) if raw != "" else ""
        set_key(out, key.strip(), value)
    return out


def set_key(recipe: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node: Any = recipe
    for i, part in enumerate(parts[:-1]):
        nxt = parts[i + 1]
        if isinstance(node, list):
            node = node[_index(node, part, dotted)]
            continue
        if part not in node or node[part] is None:
            node[part] = [] if nxt.isdigit() else {}
        node = node[part]
    last = parts[-1]
    if isinstance(node, list):
        node[_index(node, last, dotted)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise RecipeError(f"override {dotted!r}: {'.'.join(parts[:-1])} is not a mapping")


def _index(node: list, part: str, dotted: str) -> int:
    if not part.lstrip("-").isdigit() or not -len(node) <= int(part) < len(node):
        raise RecipeError(f"override {dotted!r}: {part!r} is not an index of a list of {len(node)} items")
    return int(part)


def get_key(recipe: dict[str, Any], dotted: str, default: Any = None) -> Any:
    node: Any = recipe
    for part in dotted.split("."):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return default
    return node


def unknown_key(key: str, valid: Iterable[str]) -> RecipeError:
    """``unknown recipe key 'data.batch_sise'. Did you mean 'data.batch_size'?`` (``key`` is the full dotted key)."""
    valid = sorted(valid)
    section, _, last = key.rpartition(".")
    prefix = f"{section}." if section else ""
    near = difflib.get_close_matches(last, valid, n=2)
    return RecipeError(f"unknown recipe key {key!r}." + (
        f" Did you mean {', '.join(repr(prefix + n) for n in near)}?" if near
        else f" Keys{' of ' + section if section else ''}: {', '.join(valid)}."))


def check_keys(section: Any, where: str, valid: Iterable[str], reserved: dict[str, str] | None = None) -> dict:
    """``section`` (the recipe's ``where``) must be a mapping whose keys are all in ``valid``; ``reserved`` keys
    are refused with the reason. Returns the section ({} for None)."""
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise RecipeError(f"recipe key {where!r} must be a mapping, got {section!r}")
    valid = set(valid)
    for key in section:
        if reserved and key in reserved:
            raise RecipeError(f"recipe key '{where}.{key}' is set by xemogpt itself ({reserved[key]}); remove it")
        if key not in valid:
            raise unknown_key(f"{where}.{key}", valid)
    return section


def check_choice(value: Any, where: str, choices: Iterable[str]) -> None:
    choices = tuple(choices)
    if value not in choices:
        near = difflib.get_close_matches(str(value), choices, n=1)
        raise RecipeError(f"recipe key {where!r} must be one of {', '.join(choices)}, got {value!r}."
                          + (f" Did you mean {near[0]!r}?" if near else ""))


def check_types(fn: Any, section: dict[str, Any], where: str) -> None:
    """Each value of ``section`` against ``fn``'s annotation of the parameter of that name."""
    from xemogpt import registry

    problem = registry.type_problem(fn, section, where)
    if problem:
        raise RecipeError(f"{problem}.")


def parameters(fn: Any, skip: Iterable[str] = ()) -> list[str]:
    """The keyword parameters of ``fn`` (a class: its constructor's), less ``skip``."""
    params = inspect.signature(fn).parameters.values()
    return [p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
            and p.name not in ("self", *skip)]


def validate_top_level(recipe: dict[str, Any]) -> None:
    for key in recipe:
        if key not in TOP_LEVEL_KEYS:
            raise unknown_key(str(key), TOP_LEVEL_KEYS)
    if not isinstance(recipe.get("stages") or [], list):
        raise RecipeError("recipe key 'stages' must be a list of stages")
    for i, st in enumerate(recipe.get("stages") or []):
        if not isinstance(st, dict):
            raise RecipeError(f"stages.{i} must be a mapping")
        check_keys(st, f"stages.{i}", STAGE_KEYS)


def section_keys() -> dict[str, tuple[str, ...]]:
    """Every section's valid keys, read from the code that consumes it (dotted sections for nested ones)."""
    import lightning
    from transformers import GenerationConfig

    from xemogpt.data.adapters.base import DatasetAdapter
    from xemogpt.data.datamodule import EmoCueDataModule
    from xemogpt.evaluation.evaluate import evaluate_model
    from xemogpt.training.strategies import OWN_KEYS

    generation = [k for k in GenerationConfig().to_dict() if not k.startswith("_") and k != "transformers_version"]
    return {
        "data": (*parameters(EmoCueDataModule), "synth"),
        "data.synth": SYNTH_KEYS,
        "trainer": tuple(dict.fromkeys([*parameters(lightning.Trainer), *OWN_KEYS])),
        "generation": (*generation, "greedy"),
        "eval": (*parameters(evaluate_model, skip=("model", "dm", "out_dir", "training")), *EVAL_OWN_KEYS),
        "run": RUN_KEYS,
        "finetune": FINETUNE_KEYS,
        "finetune.dataset": FINETUNE_DATASET_KEYS,
        "finetune.dataset.generate": FINETUNE_GENERATE_KEYS,
        # the adapter's arguments (column_map is spelled map, as --map), the format and --copy
        "finetune.dataset.import": (*parameters(DatasetAdapter, skip=("column_map",)), "map", "format", "copy"),
    }


def value_choices() -> dict[str, tuple[str, ...]]:
    """Keys whose values form a small closed set, with that set."""
    from xemogpt.data.decode import AUDIO_RESAMPLERS, RESAMPLES, SAMPLINGS
    from xemogpt.data.schema import SPLITS
    from xemogpt.evaluation.coverage import ALL

    return {"data.cache": ("disk", "memory", "none"), "data.features": ("auto", "off"),
            "data.frame_resample": RESAMPLES, "data.frame_sampling": SAMPLINGS,
            "data.audio_resampler": AUDIO_RESAMPLERS, "eval.split": (*SPLITS, ALL),
            "finetune.llm_head": FINETUNE_HEAD_MODES,
            "finetune.dataset.generate.style": FINETUNE_GENERATE_STYLES}


def validate_sections(recipe: dict[str, Any]) -> None:
    """Every section but ``model``: its keys (a typo names the full key and the closest valid ones), the values of a
    closed set, the ``data`` values' types and ``eval.extractor`` (a cue extractor name or spec)."""
    import lightning

    from xemogpt import registry
    from xemogpt.data.datamodule import EmoCueDataModule
    from xemogpt.evaluation.evaluate import evaluate_model
    from xemogpt.training.strategies import OWN_KEYS

    validate_top_level(recipe)
    keys = section_keys()
    data = check_keys(recipe.get("data"), "data", keys["data"])
    check_keys(data.get("synth") or None, "data.synth", keys["data.synth"])
    check_types(EmoCueDataModule, {k: v for k, v in data.items() if k != "synth"}, "data")
    trainer = check_keys(recipe.get("trainer"), "trainer", keys["trainer"], TRAINER_SET_BY_RUNNER)
    check_types(lightning.Trainer, {k: v for k, v in trainer.items() if k not in OWN_KEYS}, "trainer")
    check_keys(recipe.get("generation"), "generation", keys["generation"],
               dict.fromkeys(GENERATION_SET_BY_MODEL, "from the LLM's tokenizer"))
    ev = check_keys(recipe.get("eval"), "eval", keys["eval"])
    check_types(evaluate_model, ev, "eval")
    if ev.get("extractor") is not None:
        registry.resolve("cue_extractor", ev["extractor"], "eval.extractor")
    run = check_keys(recipe.get("run"), "run", keys["run"])
    every = run.get("log_every_seconds")
    if every is not None and (isinstance(every, bool) or not isinstance(every, (int, float)) or every < 0):
        raise RecipeError(f"recipe key 'run.log_every_seconds' must be a number of seconds >= 0 (0: no progress "
                          f"lines), got {every!r}")
    ft = check_keys(recipe.get("finetune"), "finetune", keys["finetune"])
    dataset = check_keys(ft.get("dataset"), "finetune.dataset", keys["finetune.dataset"])
    for part in FINETUNE_DATASET_KEYS:
        check_keys(dataset.get(part), f"finetune.dataset.{part}", keys[f"finetune.dataset.{part}"])
    missing = object()
    for dotted, choices in value_choices().items():
        value = get_key(recipe, dotted, missing)
        if value is not missing:
            check_choice(value, dotted, choices)


def validate_recipe(recipe: dict[str, Any]) -> None:
    """Every section checked before any heavy work (no data is generated, no model is built): component names and
    arguments, stages, and the keys (and closed-set values) of data, trainer, generation, eval and run."""
    from xemogpt.models.spec import COMPONENT_KINDS, LOSSES, validate_model_spec

    validate_top_level(recipe)
    if "model" not in recipe:
        raise RecipeError("recipe has no 'model' section")
    validate_sections(recipe)
    validate_model_spec(recipe["model"])
    for i, st in enumerate(recipe.get("stages") or []):
        for comp in st.get("train", []):
            if comp not in COMPONENT_KINDS:
                near = difflib.get_close_matches(comp, list(COMPONENT_KINDS), n=2)
                raise RecipeError(f"stages.{i}.train names unknown component {comp!r}." + (
                    f" Did you mean {', '.join(map(repr, near))}?" if near else ""))
        for loss in st.get("losses", []):
            if loss not in LOSSES:
                raise RecipeError(f"stages.{i}.losses has unknown loss {loss!r}; losses: {', '.join(LOSSES)}")


def save_recipe(recipe: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
    return path
