"""Recipes: YAML files naming components, data, stages and trainer settings.

``extends: other.yaml`` inherits another recipe (deep merge, this file wins); command-line overrides
``key.sub=value`` (values parsed as YAML, list items by index: ``stages.2.epochs=3``) change any key. The resolved
recipe is saved next to every run.
"""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any

import yaml

from xemogpt.errors import XemoGPTError

TOP_LEVEL_KEYS = ("name", "description", "extends", "seed", "model", "data", "stages", "trainer", "generation",
                  "eval", "run", "checkpoint", "finetune")
STAGE_KEYS = ("name", "train", "losses", "epochs", "max_steps", "lr", "weight_decay", "warmup", "min_lr_ratio",
              "batch_size", "val_check_interval", "skip", "modality_dropout")


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


def load_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise RecipeError(f"{path}: not valid YAML ({e})") from e
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a recipe must be a YAML mapping")
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


def validate_top_level(recipe: dict[str, Any]) -> None:
    for key in recipe:
        if key not in TOP_LEVEL_KEYS:
            near = difflib.get_close_matches(key, TOP_LEVEL_KEYS, n=2)
            raise RecipeError(f"unknown recipe key {key!r}." + (f" Did you mean {', '.join(map(repr, near))}?"
                                                                 if near else f" Keys: {', '.join(TOP_LEVEL_KEYS)}."))
    for i, st in enumerate(recipe.get("stages") or []):
        if not isinstance(st, dict):
            raise RecipeError(f"stages.{i} must be a mapping")
        for key in st:
            if key not in STAGE_KEYS:
                near = difflib.get_close_matches(key, STAGE_KEYS, n=2)
                raise RecipeError(f"unknown key 'stages.{i}.{key}'." + (
                    f" Did you mean {', '.join(map(repr, near))}?" if near else f" Keys: {', '.join(STAGE_KEYS)}."))


def validate_recipe(recipe: dict[str, Any]) -> None:
    """Names, arguments and stages checked before any heavy work (no model is built)."""
    from xemogpt.models.xemogpt import COMPONENT_KINDS, LOSSES, validate_model_spec

    validate_top_level(recipe)
    if "model" not in recipe:
        raise RecipeError("recipe has no 'model' section")
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
