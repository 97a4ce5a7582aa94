"""One component as a folder: ``component.json`` (the spec that rebuilds it, with the full architecture instead of
a folder path) plus ``weights.safetensors`` (:func:`save_component`, :func:`load_component`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from xemogpt.checkpointing.errors import ComponentFileError
from xemogpt.checkpointing.files import load_into

COMPONENT_FILE = "component.json"


WEIGHTS_FILE = "weights.safetensors"


FORMAT = "xemogpt-component/1"


# --- component folders --------------------------------------------------------------------------------------------
def component_kind(component: Any) -> str:
    names = getattr(type(component), "_registry_names", ())
    if not names:
        raise ComponentFileError(f"{type(component).__name__} is not a registered component")
    return names[0][0]


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, torch.dtype):
        return str(value).removeprefix("torch.")
    return value


def save_component(component: Any, folder: str | Path, kind: str | None = None) -> Path:
    """Write ``component.json`` (kind, registry name, portable spec) and ``weights.safetensors`` into ``folder``."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    kind = kind or component_kind(component)
    spec = dict(component.spec())
    relative: list[str] = []
    portable = getattr(component, "portable_spec", None)
    if portable is not None:
        updates = dict(portable(folder))
        relative = list(updates.pop("_relative", []))
        spec.update(updates)
    meta = {"format": FORMAT, "kind": kind, "class": f"{type(component).__module__}.{type(component).__qualname__}",
            "spec": _jsonable(spec), "relative_paths": relative}
    (folder / COMPONENT_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    # Every tensor is written on its own (tied weights twice, views copied): loading copies into the rebuilt
    # module's own tensors, so ties made by the constructor survive.
    state = {k: v.detach().contiguous().clone() for k, v in component.state_dict().items()}
    save_file(state, str(folder / WEIGHTS_FILE), metadata={"format": FORMAT, "kind": kind})
    return folder


def load_component(folder: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """Rebuild a component saved by :func:`save_component` from its folder alone."""
    from safetensors.torch import load_file

    from xemogpt import registry

    folder = Path(folder)
    meta_path = folder / COMPONENT_FILE
    if not meta_path.exists():
        raise ComponentFileError(f"{folder} holds no {COMPONENT_FILE}; save components with save_component()")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT:
        raise ComponentFileError(f"{meta_path}: format {meta.get('format')!r} is not {FORMAT!r}")
    spec = dict(meta["spec"])
    for dotted in meta.get("relative_paths", []):  # "path" or "video.path" (nested sub-component specs)
        *parents, last = dotted.split(".")
        node = spec
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and node.get(last):
            node[last] = str(folder / node[last])
    component = registry.build(meta["kind"], spec, key=str(meta_path))
    weights = folder / WEIGHTS_FILE
    if not weights.exists():
        raise ComponentFileError(f"{folder} holds no {WEIGHTS_FILE}")
    try:
        state = load_file(str(weights))
    except Exception as e:
        raise ComponentFileError(f"{weights}: unreadable ({type(e).__name__}: {e})") from e
    load_into(component, state, f"{weights} (for the component rebuilt from {meta_path})")
    return component.to(map_location)
