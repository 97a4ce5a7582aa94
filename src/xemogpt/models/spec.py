"""What a composed model is made of, in one place that the recipe checks, the model, the stage runner and ``describe``
all read: the recipe's component keys and the registry kind each names, what the model wires into each, the losses,
and which parts and which Lightning module each kind of training stage needs.
"""

from __future__ import annotations

import difflib
import inspect
from typing import Any

from xemogpt import registry

# Recipe keys of the model section and the registry kind each names (build order: each after what it needs).
COMPONENT_KINDS: dict[str, str] = {
    "video_encoder": "video_encoder",
    "audio_encoder": "audio_encoder",
    "text_encoder": "text_encoder",
    "video_bridge": "video_bridge",
    "audio_bridge": "audio_bridge",
    "llm_head": "llm_head",
    "video_projector": "projector",
    "audio_projector": "projector",
}
# What the model wires into a component from the ones before it (a recipe must not set these).
WIRED: dict[str, tuple[str, ...]] = {
    "video_bridge": ("input_dim", "text_dim", "encoder_layer"),
    "audio_bridge": ("input_dim", "text_dim", "encoder_layer"),
    "video_projector": ("input_dim", "output_dim", "context_dim"),
    "audio_projector": ("input_dim", "output_dim", "context_dim"),
}
# What each component needs built first.
DEPENDS: dict[str, tuple[str, ...]] = {
    "video_bridge": ("video_encoder", "text_encoder"),
    "audio_bridge": ("audio_encoder", "text_encoder"),
    "video_projector": ("video_bridge", "audio_bridge", "llm_head"),
    "audio_projector": ("video_bridge", "audio_bridge", "llm_head"),
}
REQUIRED = ("video_encoder", "audio_encoder", "video_bridge", "audio_bridge", "video_projector", "audio_projector",
            "llm_head")
PERCEPTION = ("video_encoder", "audio_encoder", "text_encoder", "video_bridge", "audio_bridge")
# Losses: the bridges' cue-perception tasks, the LM loss of the composed model, the LM loss on descriptions alone.
BRIDGE_LOSSES = {"vecb": "video_bridge", "aecb": "audio_bridge"}
LOSSES = ("vecb", "aecb", "lm", "lm_text")
STAGE_MODES = ("bridges", "text", "composed")

DEFAULT_GENERATION = {"max_new_tokens": 160, "num_beams": 1, "do_sample": False, "temperature": None, "top_p": None}


def accepted(kind: str, spec: Any, **candidates: Any) -> dict[str, Any]:
    """The wired arguments a component's constructor takes (``context_dim`` for attention-fusion projectors,
    ``encoder_layer`` for bridges built from the encoder's layer config); None values are left out."""
    name, _ = registry.split_spec(spec, kind)
    params = inspect.signature(registry.get(kind, name).obj).parameters
    return {k: v for k, v in candidates.items() if k in params and v is not None}


def validate_model_spec(spec: dict[str, Any], prefix: str = "model") -> None:
    """Check every component name and argument of a recipe's model section without building anything."""
    if not isinstance(spec, dict):
        raise registry.RegistryError(f"recipe key '{prefix}' must be a mapping of components")
    for key in spec:
        if key not in COMPONENT_KINDS:
            near = difflib.get_close_matches(key, list(COMPONENT_KINDS), n=2)
            hint = f" Did you mean {', '.join(map(repr, near))}?" if near else ""
            raise registry.RegistryError(f"unknown model component key '{prefix}.{key}'.{hint} "
                                         f"Keys: {', '.join(COMPONENT_KINDS)}.")
    for key in REQUIRED:
        if key not in spec:
            raise registry.RegistryError(f"recipe is missing '{prefix}.{key}' ({COMPONENT_KINDS[key]})")
    for key, kind in COMPONENT_KINDS.items():
        if key in spec and spec[key] is not None:
            registry.resolve(kind, spec[key], f"{prefix}.{key}", provided=WIRED.get(key, ()))


def with_dependencies(keys: list[str] | tuple[str, ...], spec: dict[str, Any] | None = None) -> list[str]:
    """``keys`` and everything they need built first, in build order (the text encoder only if ``spec`` has one)."""
    want: set[str] = set()

    def add(k: str) -> None:
        if k in want or (k == "text_encoder" and spec is not None and not spec.get("text_encoder")):
            return
        want.add(k)
        for dep in DEPENDS.get(k, ()):
            add(dep)

    for k in keys:
        if k not in COMPONENT_KINDS:
            raise registry.RegistryError(f"unknown model part {k!r}; parts: {', '.join(COMPONENT_KINDS)}")
        add(k)
    return [k for k in COMPONENT_KINDS if k in want]


def stage_mode(stage: dict[str, Any]) -> str:
    """How a training stage runs:

    - ``bridges``: its losses are bridge tasks (vecb/aecb) and it trains bridges only, so each bridge trains alone
      (``Trainer.fit(bridge)``) on its frozen encoder's cached features; no projector or LLM is built;
    - ``text``: its loss is ``lm_text`` and it trains the LLM head only (``Trainer.fit(llm_head)`` on descriptions);
    - ``composed``: the composed model (built without the projectors and LLM when its losses are bridge tasks).
    """
    losses = set(stage.get("losses") or [])
    train = set(stage.get("train") or [])
    if losses and losses <= set(BRIDGE_LOSSES) and train and train <= set(BRIDGE_LOSSES.values()):
        return "bridges"
    if losses == {"lm_text"}:
        return "text"
    return "composed"


def stage_parts(stage: dict[str, Any], spec: dict[str, Any] | None = None) -> list[str]:
    """The components a stage needs built: the perception parts for bridge tasks, the LLM head alone for
    ``lm_text``, everything for the LM loss (and whatever the stage trains)."""
    losses = set(stage.get("losses") or [])
    if losses == {"lm_text"}:
        keys: list[str] = ["llm_head"]
    elif losses and losses <= set(BRIDGE_LOSSES):
        keys = list(PERCEPTION)
    else:
        keys = list(COMPONENT_KINDS)
    return with_dependencies(keys + list(stage.get("train") or []), spec)
