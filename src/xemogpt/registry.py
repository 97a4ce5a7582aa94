"""One registry for every swappable piece of xemogpt.

Components are registered by *kind* and a short *name*::

    @register("video_bridge", "vecb")
    class VECB(Component): ...

and built from recipe specs (``{"name": "vecb", "layers": 2}``) with :func:`build`, which checks the name, every
argument's name and every argument's value against the constructor's signature and type annotations (through
jsonargparse's type-hint validation) *before* anything heavy is constructed, so a typo in a recipe fails in
milliseconds with the recipe key and the closest valid spellings, and ``layers: two`` with the type expected.

Names are lower case with hyphens (``hf-clip-vision``, ``emer-v2``, ``ovmer-wheel``). ``aliases`` are other
spellings that lookups accept (the underscore names of earlier releases: ``--format emer_v2``); listings show the
canonical name only.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import inspect
import os
import types
import typing
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
_ALIASES: dict[str, dict[str, str]] = {k: {} for k in KINDS}  # kind -> alias -> canonical name
_loaded: set[str] = set()


def register(kind: str | tuple[str, ...], name: str, *, description: str | None = None,
             aliases: tuple[str, ...] = ()):
    """Class/function decorator that registers ``obj`` under ``kind`` (or several kinds) as ``name``; lookups also
    accept each of ``aliases``."""
    kinds = (kind,) if isinstance(kind, str) else tuple(kind)
    aliases = tuple(a for a in aliases if a != name)

    def deco(obj):
        for k in kinds:
            if k not in _REGISTRY:
                raise RegistryError(f"unknown component kind {k!r}; kinds are: {', '.join(KINDS)}")
            for n in (name, *aliases):
                prev = _REGISTRY[k].get(_ALIASES[k].get(n, n))
                if prev is not None and prev.obj is not obj:
                    raise RegistryError(f"{k} {n!r} is already registered by {prev.qualname}")
            doc = description if description is not None else (inspect.getdoc(obj) or "").split("\n")[0]
            _REGISTRY[k][name] = Entry(k, name, obj, doc, aliases)
            _ALIASES[k].update(dict.fromkeys(aliases, name))
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


def canonical(kind: str, name: str) -> str:
    """The registered name that ``name`` (a name or an alias) stands for; ``name`` itself when unknown."""
    load_builtins(kind)
    return _ALIASES.get(kind, {}).get(name, name)


def get(kind: str, name: str, *, key: str | None = None) -> Entry:
    """Return the registry entry for ``kind``/``name`` (or an alias of it); errors name the recipe ``key`` and suggest
    close names."""
    load_builtins(kind)
    where = f" (recipe key '{key}')" if key else ""
    if kind not in _REGISTRY:
        raise RegistryError(f"unknown component kind {kind!r}{where}.{_close(kind, list(KINDS))}")
    table = _REGISTRY[kind]
    name = _ALIASES[kind].get(name, name)
    if name not in table:
        names = sorted(table)
        # an alias close to the typo suggests the name it stands for
        near = difflib.get_close_matches(name, names + sorted(_ALIASES[kind]), n=3, cutoff=0.5)
        near = list(dict.fromkeys(_ALIASES[kind].get(n, n) for n in near))
        hint = f" Did you mean {', '.join(repr(n) for n in near)}?" if near else ""
        raise RegistryError(
            f"unknown {kind} {name!r}{where}.{hint} "
            f"Registered {kind}s: {', '.join(names) or '(none)'}. Run `xemogpt zoo` to list every component."
        )
    return table[name]


def names(kind: str, *, aliases: bool = False) -> list[str]:
    """The registered names of ``kind``, sorted (and every alias after them with ``aliases=True``)."""
    load_builtins(kind)
    return sorted(_REGISTRY[kind]) + (sorted(_ALIASES[kind]) if aliases else [])


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
    problem = type_problem(entry.obj, kwargs, key)
    if problem:
        raise RegistryError(f"{problem} ({entry.kind} {entry.name!r}).")


# --- argument types -----------------------------------------------------------------------------------------------
@functools.cache
def _hints(obj: Callable[..., Any]) -> dict[str, Any]:
    """The parameter annotations of ``obj`` (a class: its ``__init__``) as types; ones that do not resolve (names
    imported only for type checkers) are left out, so they are not checked."""
    fn = obj.__init__ if inspect.isclass(obj) else obj
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 - one unresolvable annotation: resolve the others one by one
        hints = {}
        for n, p in inspect.signature(fn).parameters.items():
            ann = p.annotation
            try:
                hints[n] = eval(ann, getattr(fn, "__globals__", {})) if isinstance(ann, str) else ann  # noqa: S307
            except Exception:  # noqa: BLE001
                continue
    hints.pop("return", None)
    return {n: h for n, h in hints.items() if h is not inspect.Parameter.empty and h is not Any}


@functools.cache
def _parser(hint: Any):
    """A jsonargparse parser of one value of type ``hint`` (its type-hint validation: unions, Literal, containers,
    paths ...)."""
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--value", type=hint)
    return parser


def type_name(hint: Any) -> str:
    """``int | float | None`` rather than ``typing.Union[int, float, NoneType]``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is type(None):
        return "None"
    if hint is Ellipsis:
        return "..."
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if origin is not None and args:
        return f"{getattr(origin, '__name__', str(origin))}[{', '.join(type_name(a) for a in args)}]"
    return getattr(hint, "__name__", str(hint).replace("typing.", ""))


def value_problem(hint: Any, value: Any) -> str | None:
    """Why ``value`` is not a ``hint``, or None when it is. A string that would only pass after conversion (``'2'`` for
    an int, ``'1e-3'`` for a float: YAML reads exponents without a dot as strings) is a problem too, since the
    constructor receives the string."""
    from jsonargparse import ArgumentError

    try:
        parser = _parser(hint)
    except (TypeError, ValueError):  # a type jsonargparse cannot check (hashing or building its parser failed)
        return None
    try:
        parsed = parser.parse_object({"value": value}).value
    except (ArgumentError, TypeError, ValueError):
        return f"expects {type_name(hint)}, got {value!r}"
    if isinstance(value, str) and not isinstance(parsed, (str, os.PathLike)):
        hint_s = " (write a number with a dot: 1.0e-3, not 1e-3)" if isinstance(parsed, float) else ""
        return f"expects {type_name(hint)}, got the string {value!r}{hint_s}"
    return None


def type_problem(obj: Callable[..., Any], kwargs: dict[str, Any], key: str) -> str | None:
    """The first argument in ``kwargs`` whose value does not match ``obj``'s annotation of it, as ``recipe key 'K.arg'
    expects T, got V``; None when all match (unannotated arguments are not checked)."""
    if not kwargs:
        return None
    hints = _hints(obj)
    for arg, value in kwargs.items():
        if arg in hints:
            problem = value_problem(hints[arg], value)
            if problem:
                return f"recipe key '{key}.{arg}' {problem}"
    return None


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
