"""Where component weights come from and where they go.

* :func:`resolve_source` decides, for a path-based component, whether to read a pretrained folder, build from a
  named architecture (``arch``, shipped in :mod:`xemogpt.configs`) or from an explicit ``config``; errors name the
  recipe key and say what belongs in the folder.
* :func:`architecture_only` is the mode ``xemogpt zoo --describe`` builds in: configs are read (from the folder
  when present, else from ``arch``) but no weight file is opened, so the model can be built on the meta device.
* :func:`load_state_file` reads a state dict safely (safetensors, or ``torch.load(weights_only=True)``).
* :func:`save_component` / :func:`load_component` write and read one component as ``component.json`` (the spec that
  rebuilds it, with the full architecture instead of a folder path) plus ``weights.safetensors``, so a component
  is rebuilt from its own folder alone.

Components take part through a few optional attributes:

* ``weight_args``: constructor argument -> :class:`WeightArg` (what file or folder belongs there), read by
  :func:`declared_weights` to list missing weights before anything heavy runs;
* ``portable_spec(folder) -> dict``: spec updates that make the component rebuildable without its original
  folder (it may write extra files under ``folder`` and name them, relative, in the ``"_relative"`` list).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from xemogpt import configs
from xemogpt.errors import XemoGPTError

COMPONENT_FILE = "component.json"
WEIGHTS_FILE = "weights.safetensors"
FORMAT = "xemogpt-component/1"

_ARCH_ONLY: contextvars.ContextVar[bool] = contextvars.ContextVar("xemogpt_architecture_only", default=False)


class MissingWeightsError(XemoGPTError, FileNotFoundError):
    """Pretrained weights named by a recipe are not on disk; the message lists each path and what belongs there."""


class ComponentFileError(XemoGPTError, RuntimeError):
    """A saved component folder is missing, unreadable or does not fit the rebuilt component."""


# --- build modes --------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def architecture_only() -> Iterator[None]:
    """Build components without opening weight files (configs only); combine with ``torch.device("meta")``."""
    token = _ARCH_ONLY.set(True)
    try:
        yield
    finally:
        _ARCH_ONLY.reset(token)


def is_architecture_only() -> bool:
    return _ARCH_ONLY.get()


# --- declared weights ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WeightArg:
    """What a path argument of a component points at.

    kind: ``folder`` or ``file``. what: what belongs there (shown to the user). contains: files a folder must hold.
    """

    kind: str
    what: str
    contains: tuple[str, ...] = field(default_factory=tuple)


# --- Hugging Face hub ids -------------------------------------------------------------------------------------------
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


def downloads_allowed() -> bool:
    """Whether a hub id may be downloaded: only while ``HF_HUB_OFFLINE`` is unset or false (tests and make set it)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() not in {"1", "ON", "YES", "TRUE"}


def hub_cache_dir() -> str:
    """The hub cache, read at call time: ``HF_HUB_CACHE``, else ``HF_HOME/hub``, else ``~/.cache/huggingface/hub``."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
    return os.path.join(home, "hub")


def is_hub_id(path: str | Path | None) -> bool:
    """``org/name`` that is no local path: neither it nor its first part (``checkpoints/...``) exists here."""
    if path is None or not HUB_ID.match(str(path)):
        return False
    p = Path(path)
    return not p.exists() and not Path(p.parts[0]).is_dir()


def resolve_hub_id(repo_id: str, key: str, *, download: bool | None = None) -> str:
    """The local folder of hub model ``repo_id``: its snapshot in the local hub cache, downloaded there first only
    when ``download`` (default: :func:`downloads_allowed`). Raises :class:`MissingWeightsError` naming the id and
    how to fetch it."""
    from huggingface_hub import snapshot_download

    download = downloads_allowed() if download is None else download
    try:
        return snapshot_download(repo_id, cache_dir=hub_cache_dir(), local_files_only=not download)
    except Exception as e:  # not cached (offline), unknown repo, no network: one clear message
        how = ("it is not in the local Hugging Face cache and downloads are off (HF_HUB_OFFLINE is set); fetch it "
               f"with `huggingface-cli download {repo_id}` or unset HF_HUB_OFFLINE") if not download else \
            f"it could not be downloaded ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
        raise MissingWeightsError(f"{key}: {repo_id!r} is neither a local folder nor a usable hub model: {how} "
                                  f"(cache: {hub_cache_dir()})") from e


def local_folder(path: str | Path | None, key: str, what: str | None = None) -> str | None:
    """``path`` itself, or for a hub id (``openai/clip-vit-large-patch14``) its folder in the local hub cache (see
    :func:`resolve_hub_id`; in :func:`architecture_only` mode nothing is downloaded). ``what``: what belongs in the
    folder, for the error when ``path`` is neither."""
    if not is_hub_id(path):
        return None if path is None else str(path)
    try:
        return resolve_hub_id(str(path), key, download=False if is_architecture_only() else None)
    except MissingWeightsError as e:
        if is_architecture_only():
            return str(path)
        if what:
            raise MissingWeightsError(f"{key}: there is no folder {str(path)!r} (put {what} there, see "
                                      f"checkpoints/README.md), and as a hub id: {str(e).split(': ', 1)[1]}") from e
        raise


def check_weight_path(path: str | Path, arg: WeightArg, key: str) -> str | None:
    """None when ``path`` holds what ``arg`` describes, else one line saying what is missing and what belongs there.
    A hub id passes when it is in the local hub cache or may be downloaded."""
    if is_hub_id(path) and arg.kind == "folder":
        if downloads_allowed():
            return None
        try:
            path = resolve_hub_id(str(path), key, download=False)
        except MissingWeightsError as e:
            return (f"{key}: folder {str(path)!r} is missing; put {arg.what} there, or (as a hub id) "
                    f"{str(e).split(': ', 1)[1]}")
    p = Path(path)
    if arg.kind == "folder":
        if not p.is_dir():
            return f"{key}: folder {str(p)!r} is missing; put {arg.what} there"
        absent = [f for f in arg.contains if not (p / f).exists()]
        if absent:
            return f"{key}: folder {str(p)!r} lacks {', '.join(absent)}; it should hold {arg.what}"
        return None
    if not p.is_file():
        return f"{key}: file {str(p)!r} is missing; put {arg.what} there"
    return None


def declared_weights(obj: Any, kwargs: dict[str, Any], key: str) -> list[tuple[str, str, WeightArg]]:
    """(recipe key, path, WeightArg) for every weight path a component spec names (skips null and ``build``)."""
    custom = getattr(obj, "weight_paths", None)
    if custom is not None:
        return list(custom(kwargs, key))
    out = []
    for arg, desc in (getattr(obj, "weight_args", None) or {}).items():
        value = kwargs.get(arg)
        if value in (None, "", "build"):
            continue
        out.append((f"{key}.{arg}", str(value), desc))
    return out


# --- sources of pretrained weights --------------------------------------------------------------------------------
@dataclass
class Source:
    """Where a path-based component gets its architecture and weights.

    folder: an existing pretrained folder (its config.json is the architecture), or None.
    load_weights: read the folder's weights (False: random init, or architecture only for ``--describe``).
    config: the architecture (transformers config.json fields, overrides applied).
    preprocess: the folder's ``preprocessor_config.json`` or the named config's ``preprocess`` section.
    named: the named config entry when ``arch`` was used (published sizes, extra sections).
    """

    folder: Path | None
    load_weights: bool
    config: dict[str, Any]
    preprocess: dict[str, Any]
    named: dict[str, Any] | None = None


def read_json(path: Path, key: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise MissingWeightsError(f"{key}: cannot read {path} ({type(e).__name__}: {e})") from e
    if not isinstance(data, dict):
        raise MissingWeightsError(f"{key}: {path} must hold a JSON object")
    return data


def resolve_source(path: str | None, arch: str | None, config: dict[str, Any] | None, key: str, what: str, *,
                   section: str | None = None, config_file: str = "config.json",
                   preprocess_file: str | None = "preprocessor_config.json") -> Source:
    """Resolve a path-based component's architecture.

    Order: ``path`` (an existing folder: its ``config_file``) > ``arch`` (a shipped named config) > nothing; then the
    ``config`` dict is merged on top. A named ``path`` that does not exist is an error, except in
    :func:`architecture_only` mode when ``arch`` or a full ``config`` gives the architecture.

    section: a sub-config to use when the base config is a composite (``vision_config`` of a CLIPModel config);
        the composite's ``projection_dim`` is carried into it.
    """
    named = configs.load(arch, f"{key}.arch") if arch else None
    folder: Path | None = None
    base: dict[str, Any] = {}
    preprocess: dict[str, Any] = {}
    if path:
        p = Path(local_folder(path, f"{key}.path", what))
        if p.is_dir():
            folder = p
            cfg_path = p / config_file
            if not cfg_path.exists():
                raise MissingWeightsError(f"{key}.path: {str(p)!r} has no {config_file}; it should hold {what}")
            base = read_json(cfg_path, f"{key}.path")
            if preprocess_file and (p / preprocess_file).exists():
                preprocess = read_json(p / preprocess_file, f"{key}.path")
        elif not is_architecture_only():
            raise MissingWeightsError(
                f"{key}.path: folder {str(p)!r} does not exist; put {what} there (see checkpoints/README.md), or set "
                f"{key}.path: null to start from random weights with {key}.arch / {key}.config")
        elif named is None and not (config or {}).get("model_type"):
            raise MissingWeightsError(
                f"{key}.path: folder {str(p)!r} does not exist and no {key}.arch names its architecture, so it cannot "
                f"be described; add e.g. arch: <one of {', '.join(configs.names())}>")
    if folder is None and named is not None:
        base = named["config"]
        preprocess = dict(named.get("preprocess") or {})
    if section and section in base:
        sub = dict(base[section])
        if "projection_dim" in base:
            # A composite (CLIPModel) folder's projections were built with its top-level width; the sub-config's own
            # projection_dim is often just the class default that save_pretrained wrote.
            sub["projection_dim"] = base["projection_dim"]
        base = sub
    merged = configs.merge(base, config)
    return Source(folder, folder is not None and not is_architecture_only(), merged, preprocess, named)


def hf_config(config: dict[str, Any], default_type: str):
    """transformers config object from a config.json-style dict (``model_type`` picks the class)."""
    from transformers import AutoConfig

    d = {k: v for k, v in config.items() if not k.startswith("_") and k not in ("transformers_version",)}
    model_type = d.pop("model_type", None) or default_type
    return AutoConfig.for_model(model_type, **d)


def hf_config_dict(cfg) -> dict[str, Any]:
    """A transformers config as a plain JSON-able dict that :func:`hf_config` turns back into the same config."""
    d = cfg.to_dict()
    drop = ("transformers_version", "architectures", "auto_map")
    return {k: v for k, v in d.items() if not k.startswith("_") and k not in drop}


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' load reports and progress bars (we check the loading info ourselves)."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def build_hf_model(model_cls, source: Source, cfg, dtype: torch.dtype | None = None, key: str = ""):
    """``model_cls.from_pretrained(folder)`` when weights are wanted, else a fresh model from ``cfg``.

    ``dtype`` None means float32, whatever dtype the folder was saved in (transformers 5 would otherwise load a
    bf16 folder as bf16, even on a CPU).

    Loading a tower out of a composite folder (the vision tower of a CLIPModel) leaves the other tower's weights
    unused, which is expected; a weight of the tower itself missing from the folder is an error.
    """
    if source.load_weights:
        try:
            with quiet_transformers():
                model, info = model_cls.from_pretrained(str(source.folder), config=cfg, local_files_only=True,
                                                        dtype=dtype or torch.float32, output_loading_info=True)
        except (OSError, ValueError) as e:
            raise MissingWeightsError(f"{key}.path: could not load weights from {str(source.folder)!r} "
                                      f"({type(e).__name__}: {e})") from e
        except Exception as e:  # a truncated or corrupt weight file (safetensors raises its own error type)
            raise ComponentFileError(f"{key}.path: the weights in {str(source.folder)!r} are unreadable "
                                     f"({type(e).__name__}: {e}); download them again") from e
        missing = sorted(info.get("missing_keys") or [])
        mismatched = list(info.get("mismatched_keys") or [])
        if missing or mismatched:
            raise ComponentFileError(
                f"{key}.path: {str(source.folder)!r} does not hold every weight of a {type(model).__name__} "
                f"({len(missing)} missing, e.g. {missing[:3]}; {len(mismatched)} of another shape, e.g. "
                f"{mismatched[:2]}); check that the folder matches its config.json")
        return model
    model = model_cls(cfg)
    return model.to(dtype) if dtype is not None else model


def load_state_file(path: str | Path, key: str) -> dict[str, torch.Tensor]:
    """A state dict from ``.safetensors`` or a torch file read with ``weights_only=True``.

    Unwraps the usual containers (``state_dict``, ``model``, ``module``) and a DDP ``module.`` prefix.
    """
    p = Path(path)
    if not p.is_file():
        raise MissingWeightsError(f"{key}: weights file {str(p)!r} does not exist (see checkpoints/README.md)")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        state: Any = load_file(str(p))
    else:
        try:
            state = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as e:
            raise ComponentFileError(
                f"{key}: {p} is not a weights-only torch file ({type(e).__name__}: {e}); convert it to safetensors "
                "or re-save its state_dict with torch.save") from e
    for wrapper in ("state_dict", "model", "module"):
        if isinstance(state, dict) and wrapper in state and isinstance(state[wrapper], dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ComponentFileError(f"{key}: {p} holds no tensor state dict")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def load_into(module: torch.nn.Module, state: dict[str, torch.Tensor], where: str, *, strict: bool = True,
              ignore_prefixes: tuple[str, ...] = ()) -> None:
    """``load_state_dict`` with an error that names the file and the first mismatching keys and shapes."""
    own = module.state_dict()
    state = {k: v for k, v in state.items() if not k.startswith(ignore_prefixes)}
    bad = [(k, tuple(v.shape), tuple(own[k].shape)) for k, v in state.items() if k in own and v.shape != own[k].shape]
    if bad:
        k, got, want = bad[0]
        raise ComponentFileError(f"{where}: tensor {k!r} has shape {got} but the model expects {want}; the file was "
                                 "made for another architecture (check the config / model name)")
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if strict and (missing or unexpected):
        raise ComponentFileError(f"{where}: {len(missing)} missing key(s) (e.g. {missing[:3]}) and {len(unexpected)} "
                                 f"unexpected key(s) (e.g. {unexpected[:3]}); the file was made for another "
                                 "architecture")
    module.load_state_dict(state, strict=False)


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
