"""One registry for every swappable piece of xemogpt.

Components are registered by *kind* and a short *name*::

    @register("video_bridge", "vecb")
    class VECB(Component): ...

and built from recipe specs (``{"name": "vecb", "layers": 2}``) with :func:`build`, which checks the name and
every argument against the constructor's signature *before* anything heavy is constructed, so a typo in a recipe
fails in milliseconds with the recipe key and the closest valid spellings.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from xemogpt.errors import ComponentBuildError, XemoGPTError

KINDS: tuple[str, ...] = (
    "video_encoder",
    "audio_encoder",
    "text_encoder",
    "video_bridge",
    "audio_bridge",
    "projector",
    "llm_head",
    "data_adapter",
    "cue_extractor",
    "metric",
)

# Modules whose import registers the built-in components of each kind; imported lazily on first lookup of that kind
# so that `import xemogpt` (and a cue-extractor lookup) does not pay for every encoder's imports.
_BUILTIN_MODULES: dict[str, tuple[str, ...]] = {
    "video_encoder": ("xemogpt.encoders",),
    "audio_encoder": ("xemogpt.encoders",),
    "text_encoder": ("xemogpt.encoders",),
    "video_bridge": ("xemogpt.bridges",),
    "audio_bridge": ("xemogpt.bridges",),
    "projector": ("xemogpt.projectors",),
    "llm_head": ("xemogpt.llm",),
    "data_adapter": ("xemogpt.data.adapters",),
    "cue_extractor": ("xemogpt.cues",),
    "metric": ("xemogpt.metrics",),
}


class RegistryError(XemoGPTError, KeyError):
    """Raised for unknown kinds or names and for arguments that a component does not accept."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it readable
        return str(self.args[0]) if self.args else ""


@dataclass
class Entry:
    kind: str
    name: str
    obj: Callable[..., Any]
    description: str = ""
    aliases: tuple[str, ...] = field(default_factory=tuple)

    @property
    def qualname(self) -> str:
        return f"{self.obj.__module__}.{self.obj.__qualname__}"


_REGISTRY: dict[str, dict[str, Entry]] = {k: {} for k in KINDS}
_loaded: set[str] = set()


def register(kind: str | tuple[str, ...], name: str, *, description: str | None = None):
    """Class/function decorator that registers ``obj`` under ``kind`` (or several kinds) as ``name``."""
    kinds = (kind,) if isinstance(kind, str) else tuple(kind)

    def deco(obj):
        for k in kinds:
            if k not in _REGISTRY:
                raise RegistryError(f"unknown component kind {k!r}; kinds are: {', '.join(KINDS)}")
            prev = _REGISTRY[k].get(name)
            if prev is not None and prev.obj is not obj:
                raise RegistryError(f"{k} {name!r} is already registered by {prev.qualname}")
            doc = description if description is not None else (inspect.getdoc(obj) or "").split("\n")[0]
            _REGISTRY[k][name] = Entry(k, name, obj, doc)
        obj._registry_names = getattr(obj, "_registry_names", ()) + tuple((k, name) for k in kinds)
        return obj

    return deco


def load_builtins(kind: str | None = None) -> None:
    """Import the modules that register built-in components of ``kind`` (all kinds when None); idempotent."""
    kinds = [kind] if kind in _BUILTIN_MODULES else list(_BUILTIN_MODULES)
    for k in kinds:
        if k in _loaded:
            continue
        for mod in _BUILTIN_MODULES[k]:
            importlib.import_module(mod)
        _loaded.add(k)


def _close(word: str, options: list[str]) -> str:
    near = difflib.get_close_matches(word, options, n=3, cutoff=0.5)
    return f" Did you mean {', '.join(repr(n) for n in near)}?" if near else ""


def get(kind: str, name: str, *, key: str | None = None) -> Entry:
    """Return the registry entry for ``kind``/``name``; errors name the recipe ``key`` and suggest close names."""
    load_builtins(kind)
    where = f" (recipe key '{key}')" if key else ""
    if kind not in _REGISTRY:
        raise RegistryError(f"unknown component kind {kind!r}{where}.{_close(kind, list(KINDS))}")
    table = _REGISTRY[kind]
    if name not in table:
        names = sorted(table)
        raise RegistryError(
            f"unknown {kind} {name!r}{where}.{_close(name, names)} "
            f"Registered {kind}s: {', '.join(names) or '(none)'}. Run `xemogpt zoo` to list every component."
        )
    return table[name]


def entries(kind: str | None = None) -> list[Entry]:
    """Every registered entry, optionally of one kind, sorted by kind then name."""
    load_builtins(kind)
    kinds = [kind] if kind else list(KINDS)
    return [e for k in kinds for _, e in sorted(_REGISTRY[k].items())]


def split_spec(spec: Any, key: str) -> tuple[str, dict[str, Any]]:
    """``"vecb"`` or ``{"name": "vecb", **kwargs}`` -> ``("vecb", kwargs)``."""
    if isinstance(spec, str):
        return spec, {}
    if not isinstance(spec, dict):
        raise RegistryError(f"recipe key '{key}' must be a component name or a mapping with 'name', got {spec!r}")
    if "name" not in spec:
        raise RegistryError(f"recipe key '{key}' has no 'name'; give the registered component name, e.g. name: ...")
    kwargs = {k: v for k, v in spec.items() if k != "name"}
    return str(spec["name"]), kwargs


def check_arguments(entry: Entry, kwargs: dict[str, Any], key: str, *, provided: tuple[str, ...] = ()) -> None:
    """Check ``kwargs`` against the signature of ``entry.obj``; ``provided`` are filled in by the caller."""
    sig = inspect.signature(entry.obj)
    params = {n: p for n, p in sig.parameters.items() if n != "self"}
    takes_var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    named = [n for n, p in params.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if not takes_var_kw:
        for arg in kwargs:
            if arg not in named:
                raise RegistryError(
                    f"{entry.kind} {entry.name!r} has no argument {arg!r} (recipe key '{key}.{arg}')."
                    f"{_close(arg, named)} Arguments: {', '.join(named)}."
                )
    missing = [
        n
        for n, p in params.items()
        if p.default is inspect.Parameter.empty
        and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        and n not in kwargs
        and n not in provided
    ]
    if missing:
        raise RegistryError(
            f"{entry.kind} {entry.name!r} (recipe key '{key}') needs argument(s) {', '.join(missing)}."
        )


def resolve(kind: str, spec: Any, key: str, *, provided: tuple[str, ...] = ()) -> tuple[Entry, dict[str, Any]]:
    """Validate a spec without building anything: returns the entry and the keyword arguments."""
    name, kwargs = split_spec(spec, key)
    entry = get(kind, name, key=key)
    check_arguments(entry, kwargs, key, provided=provided)
    return entry, kwargs


def build(kind: str, spec: Any, key: str | None = None, **provided: Any) -> Any:
    """Build a component from a recipe spec; ``provided`` are arguments wired in by the caller (e.g. ``input_dim``)."""
    key = key or kind
    entry, kwargs = resolve(kind, spec, key, provided=tuple(provided))
    clash = set(kwargs) & set(provided)
    if clash:
        raise RegistryError(
            f"recipe key '{key}' sets {', '.join(sorted(clash))}, which the model wires in from the previous "
            "component; remove it from the recipe."
        )
    try:
        return entry.obj(**provided, **kwargs)
    except XemoGPTError:
        raise
    except (ValueError, TypeError, KeyError, OSError, RuntimeError) as e:
        # Whatever stops a component from building is reported with the recipe key that named it.
        raise ComponentBuildError(f"{key} ({kind} {entry.name!r}): {e}") from e
