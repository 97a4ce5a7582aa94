"""Named architecture configs shipped as data (one JSON file per published model).

A path-based component (``hf-clip-vision``, ``hf-speech``, ``clip-text``, ``sentence-transformers``, ``causal-lm``)
reads its architecture from its weights folder when the folder exists; when it does not (CI, ``xemogpt zoo
--describe``, a checkpoint rebuilt on another machine) the recipe names one of these configs (``arch:
clip-vit-large-patch14``), so the model can still be built on the meta device or from random weights.

Each file holds::

    {"description": str, "source": where the numbers come from, "folder": the usual checkpoints/ folder,
     "published_params": {part: count}, "config": the transformers config.json fields,
     "preprocess": the model's preprocessor_config.json fields (optional),
     "sentence_transformers": pooling/dense/normalize of a sentence-transformers folder (optional)}
"""

from __future__ import annotations

import copy
import difflib
import json
from functools import cache
from importlib import resources
from typing import Any

from xemogpt.errors import XemoGPTError


class ConfigNotFoundError(XemoGPTError, KeyError):
    """An ``arch`` names no shipped config; the message lists the close names."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def names() -> list[str]:
    """Every shipped config name (file stem), sorted."""
    return sorted(p.name[:-5] for p in resources.files(__name__).iterdir() if p.name.endswith(".json"))


@cache
def _read(name: str) -> dict[str, Any]:
    return json.loads(resources.files(__name__).joinpath(f"{name}.json").read_text(encoding="utf-8"))


def load(name: str, key: str = "arch") -> dict[str, Any]:
    """The named config as a fresh dict (callers may change it); errors name the recipe ``key``."""
    known = names()
    if name not in known:
        near = difflib.get_close_matches(name, known, n=3, cutoff=0.4)
        hint = f" Did you mean {', '.join(map(repr, near))}?" if near else ""
        raise ConfigNotFoundError(f"{key}: no shipped architecture config {name!r}.{hint} Shipped: {', '.join(known)} "
                                  f"(files in src/xemogpt/configs/).")
    return copy.deepcopy(_read(name))


def merge(base: dict[str, Any], over: dict[str, Any] | None) -> dict[str, Any]:
    """Deep-merge ``over`` into a copy of ``base`` (nested dicts such as ``vision_config`` merge key by key)."""
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out
