"""Describe a recipe's model without its weights, and list the weights a recipe needs but that are missing.

``xemogpt zoo --describe RECIPE`` builds the composed model on the meta device in
:func:`~xemogpt.checkpointing.pretrained.architecture_only` mode (architectures from the weights folders when present,
else from the ``arch`` / ``config`` names shipped in :mod:`xemogpt.configs`), then prints each component, its parameter
count, what each training stage trains, and the tensor shapes between the components. Nothing is allocated, so the
paper's 4.7-billion-parameter model is described in seconds on a laptop.

:func:`missing_weights` is the check the train command runs before anything heavy.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch

from xemogpt import registry
from xemogpt.checkpointing.errors import MissingWeightsError
from xemogpt.checkpointing.pretrained import architecture_only, check_weight_path, declared_weights

TEXT_TOKENS_PLACEHOLDER = 64  # prompt + target text tokens assumed for the LLM input shape (the real count varies)


# --- missing weights ----------------------------------------------------------------------------------------------
def missing_weights(recipe: dict[str, Any]) -> list[str]:
    """One line per weight folder/file a recipe's model names that is not on disk, saying what belongs there.

    Reads only the recipe and the file system (nothing is built), so it is cheap enough to run first.
    """
    from xemogpt.models.spec import COMPONENT_KINDS

    problems: list[str] = []
    model = recipe.get("model") or {}
    for key, kind in COMPONENT_KINDS.items():
        spec = model.get(key)
        if spec is None:
            continue
        name, kwargs = registry.split_spec(spec, f"model.{key}")
        entry = registry.get(kind, name, key=f"model.{key}")
        for where, path, arg in declared_weights(entry.obj, kwargs, f"model.{key}"):
            line = check_weight_path(path, arg, where)
            if line:
                problems.append(line)
    return problems


def require_weights(recipe: dict[str, Any]) -> None:
    """Raise :class:`MissingWeightsError` listing every missing weight folder/file of ``recipe`` (no-op if none)."""
    problems = missing_weights(recipe)
    if problems:
        name = recipe.get("name", "this recipe")
        raise MissingWeightsError(
            f"{name} needs pretrained weights that are not on disk (nothing is downloaded; see "
            "checkpoints/README.md):\n"
            + "\n".join(f"  - {p}" for p in problems))


# --- building on the meta device ----------------------------------------------------------------------------------
def _describable_spec(recipe: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The model spec, adjusted where describing needs what only training provides; returns notes on changes."""
    spec = copy.deepcopy(recipe["model"])
    notes: list[str] = []
    name, llm = registry.split_spec(spec["llm_head"], "model.llm_head")
    cfg = llm.get("config")
    if llm.get("tokenizer") == "build" and isinstance(cfg, dict) and "vocab_size" not in cfg:
        vocab = int((recipe.get("run") or {}).get("tokenizer_vocab_size", 1000))
        llm["config"] = {**cfg, "vocab_size": vocab}
        notes.append(f"llm_head vocabulary: {vocab} (run.tokenizer_vocab_size; the tokenizer is built from the data)")
    spec["llm_head"] = {"name": name, **llm}
    return spec, notes


def build_meta_model(recipe: dict[str, Any]):
    """The recipe's XEmoGPT on the meta device, no weight file opened."""
    from xemogpt.models.spec import validate_model_spec
    from xemogpt.models.xemogpt import XEmoGPT

    validate_model_spec(recipe["model"])
    spec, notes = _describable_spec(recipe)
    with torch.device("meta"), architecture_only():
        model = XEmoGPT(spec, generation=recipe.get("generation"))
    return model, notes


# --- shapes -------------------------------------------------------------------------------------------------------
def _shape(x: Any) -> list[int] | None:
    return list(x.shape) if isinstance(x, torch.Tensor) else None


def _fmt(shape: list[int] | None) -> str:
    if shape is None:
        return "?"
    return "(" + ", ".join(["B", *map(str, shape[1:])]) + ")"


CPU_FALLBACK_MAX_PARAMS = 100_000_000


def _to(x: Any, device: str) -> Any:
    """Move (nested) tensors; meta tensors become zeros of the same shape on a real device."""
    if isinstance(x, torch.Tensor):
        if x.device.type == "meta" and device != "meta":
            return torch.zeros(x.shape, dtype=x.dtype, device=device)
        return x.to(device)
    if isinstance(x, (tuple, list)):
        return type(x)(_to(v, device) for v in x)
    if isinstance(x, dict):
        return {k: _to(v, device) for k, v in x.items()}
    return x


def trace_shapes(model, recipe: dict[str, Any]) -> dict[str, Any]:
    """Run one meta-device batch through the model's own route (:meth:`XEmoGPT.modality_tokens`) and its LLM; each
    entry is a shape list or an error string.

    A small component whose forward cannot run on the meta device (an STFT, a data-dependent branch) is
    materialised on the CPU with uninitialised weights and run on zeros instead: only shapes are read.
    """
    data = recipe.get("data") or {}
    t = int(data.get("num_frames", 16))
    out: dict[str, Any] = {}
    failed: set[str] = set()

    def run(name: str, module, fn, *args):
        """The model's component calls, recorded; a call that fails gives an error entry and meta-device stand-ins
        of the right width so the route goes on."""
        result = None
        try:
            with torch.no_grad():
                result = fn(*args)
        except Exception as first:
            err: Exception = first
            if module is not None and module.num_parameters() <= CPU_FALLBACK_MAX_PARAMS:
                try:
                    module.to_empty(device="cpu")
                    with torch.no_grad():
                        result = _to(fn(*_to(args, "cpu")), "meta")
                except Exception as second:
                    err = second
            if result is None:
                out[name] = f"n/a on the meta device ({type(err).__name__}: {str(err).splitlines()[0][:100]})"
                failed.add(name)
                raise _Skip(name) from err
        out[name] = _shape(result[0] if isinstance(result, tuple) else result)
        return result

    pre = getattr(model.video_encoder, "preprocess_config", lambda: {})()
    size = int(pre.get("image_size", 64))
    apre = getattr(model.audio_encoder, "preprocess_config", lambda: {})()
    samples = int(float(data.get("max_seconds", 12.0)) * int(apre.get("sample_rate", 16000)))
    batch = {"ids": None, "frames": torch.empty(1, t, 3, size, size, device="meta"),
             "frame_mask": torch.ones(1, t, dtype=torch.bool, device="meta"),
             "audio": torch.empty(1, samples, device="meta"),
             "audio_mask": torch.ones(1, samples, dtype=torch.bool, device="meta")}
    out["frames"], out["audio"] = _shape(batch["frames"]), _shape(batch["audio"])
    tokens: dict[str, int] = {}
    try:
        mods = model.modality_tokens(batch, run=run)
        tokens = {f"{m}_projector": int(mods[m][0].shape[1]) for m in ("video", "audio")}
    except _Skip:
        pass  # what could be traced is in `out`; the entry of the failing component says why
    llm = model.llm_head
    n_mod = sum(tokens.values())
    length = n_mod + TEXT_TOKENS_PLACEHOLDER
    emb = torch.empty(1, length, llm.hidden_size, device="meta")
    out["llm_input"] = [1, length, llm.hidden_size]
    try:
        # (with the default cache: the cache-free path checks for packed sequences, which the meta device cannot do)
        res = run("llm_head", llm, lambda e: llm.model(inputs_embeds=e), emb)
        out["llm_head"] = _shape(res.logits)
    except _Skip:
        pass
    out["llm_tokens"] = {"video": tokens.get("video_projector"), "audio": tokens.get("audio_projector"),
                         "text_placeholder": TEXT_TOKENS_PLACEHOLDER, "max_length": llm.hparams.max_length}
    return out


class _Skip(Exception):
    """A component of the route could not run on the meta device (its entry says why)."""


# --- parameter counts ---------------------------------------------------------------------------------------------
def _published(comp, key: str) -> int | None:
    """The published size of the pretrained model a component names through ``arch`` / ``config``, if known."""
    from xemogpt import configs

    hp = dict(comp.hparams)
    name = hp.get("arch") if key != "llm_head" else hp.get("config")
    if not isinstance(name, str) or name not in configs.names():
        return None
    sizes = configs.load(name).get("published_params") or {}
    if key == "video_encoder":
        return sizes.get("vision") or sizes.get("model")
    if "text" in sizes and type(comp).__name__ == "ClipTextEncoder":
        return sizes["text"]
    return sizes.get("model")


def _component_rows(model, recipe: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    stages = [s for s in recipe.get("stages") or [] if not s.get("skip")]
    names = model.component_names()
    rows: dict[str, dict[str, Any]] = {}
    for key in names:
        comp = getattr(model, key)
        adapter = sum(p.numel() for n, p in comp.named_parameters() if "lora_" in n)
        total = comp.num_parameters()
        row = {"key": key, "name": comp.spec()["name"], "class": type(comp).__name__, "params": total - adapter,
               "adapter_params": adapter, "frozen_by_recipe": bool(comp.hparams.get("freeze", False)),
               "trainable": {}, "published": None, "subcomponents": []}
        pub = _published(comp, key)
        if pub:
            row["published"] = pub
        if type(comp).__name__ == "PerModalityTextEncoder":
            for m in ("video", "audio"):
                sub = getattr(comp, m)
                row["subcomponents"].append({"modality": m, "name": sub.spec()["name"], "params": sub.num_parameters(),
                                             "published": _published(sub, "text_encoder")})
        rows[key] = row
    for st in stages:
        model.set_stage(st)
        for key in names:
            comp = getattr(model, key)
            rows[key]["trainable"][st["name"]] = sum(p.numel() for p in comp.parameters() if p.requires_grad)
    return [rows[k] for k in names], [s["name"] for s in stages]


def describe_model(recipe: dict[str, Any]) -> dict[str, Any]:
    """Build on the meta device and return components, counts per stage, and shapes (a JSON-able dict)."""
    model, notes = build_meta_model(recipe)
    shapes = trace_shapes(model, recipe)
    rows, stage_names = _component_rows(model, recipe)
    totals = {"params": sum(r["params"] + r["adapter_params"] for r in rows),
              "trainable": {s: sum(r["trainable"].get(s, 0) for r in rows) for s in stage_names}}
    return {"recipe": recipe.get("name"), "device": "meta", "components": rows, "stages": stage_names,
            "totals": totals, "shapes": shapes, "notes": notes, "missing_weights": missing_weights(recipe)}


def human(n: int | None) -> str:
    if n is None:
        return "-"
    for div, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= div:
            return f"{n / div:.3g}{unit}" if n / div < 100 else f"{n / div:.1f}{unit}"
    return str(n)


def render(desc: dict[str, Any]) -> str:
    """The text ``xemogpt zoo --describe`` prints."""
    stages = desc["stages"]
    lines = [f"{desc['recipe']}: built on the meta device from architecture configs (no weights read)", ""]
    head = f"{'component':<16} {'registry name':<21} {'class':<26} {'params':>9} {'published':>16}"
    widths = [max(14, len(s)) for s in stages]
    head += "".join(f" {s:>{w}}" for s, w in zip(stages, widths))
    lines += [head, "-" * len(head)]
    for r in desc["components"]:
        pub = _vs_published(r["params"], r["published"])
        line = f"{r['key']:<16} {r['name']:<21} {r['class']:<26} {human(r['params']):>9} {pub:>16}"
        line += "".join(f" {human(r['trainable'].get(s, 0)):>{w}}" for s, w in zip(stages, widths))
        lines.append(line)
        if r["adapter_params"]:
            lines.append(f"{'':<16} {'+ LoRA adapters':<48} {human(r['adapter_params']):>9}")
        for sub in r["subcomponents"]:
            spub = _vs_published(sub["params"], sub["published"])
            lines.append(f"{'':<16} {sub['modality'] + ': ' + sub['name']:<48} {human(sub['params']):>9} {spub:>16}")
    tot = desc["totals"]
    line = f"{'total':<16} {'':<21} {'':<26} {human(tot['params']):>9} {'':>16}"
    line += "".join(f" {human(tot['trainable'][s]):>{w}}" for s, w in zip(stages, widths))
    lines += ["-" * len(head), line]
    if stages:
        lines.append(f"(the last {len(stages)} columns: parameters each training stage trains)")
    s = desc["shapes"]
    lines += ["", "tensor shapes (B = batch):"]
    lines.append(f"  video: frames {_fmt(s.get('frames'))} -> video_encoder {_fmt_or(s, 'video_encoder')} -> "
                 f"video_bridge {_fmt_or(s, 'video_bridge')} -> video_projector {_fmt_or(s, 'video_projector')}")
    lines.append(f"  audio: wav {_fmt(s.get('audio'))} -> audio_encoder {_fmt_or(s, 'audio_encoder')} -> "
                 f"audio_bridge {_fmt_or(s, 'audio_bridge')} -> audio_projector {_fmt_or(s, 'audio_projector')}")
    tok = s.get("llm_tokens") or {}
    lines.append(f"  llm_head: inputs_embeds {_fmt(s.get('llm_input'))} with L = {tok.get('video')} video + "
                 f"{tok.get('audio')} audio + text tokens (here {tok.get('text_placeholder')}), cut to max_length "
                 f"{tok.get('max_length')} -> logits {_fmt_or(s, 'llm_head')}")
    for note in desc["notes"]:
        lines.append(f"note: {note}")
    if desc["missing_weights"]:
        lines += ["", "weights not on disk (training this recipe needs them):"]
        lines += [f"  - {p}" for p in desc["missing_weights"]]
    return "\n".join(lines)


def _vs_published(params: int, published: int | None) -> str:
    return f"{human(published)} ({100 * (params - published) / published:+.1f}%)" if published else "-"


def _fmt_or(shapes: dict[str, Any], key: str) -> str:
    value = shapes.get(key)
    return value if isinstance(value, str) else _fmt(value)


def describe_recipe(path: str | Path, as_json: bool = False, overrides: list[str] | None = None) -> int:
    """Entry point of ``xemogpt zoo --describe RECIPE``: print the description; returns the exit code."""
    from xemogpt.recipe import load_recipe

    recipe = load_recipe(path, overrides)
    desc = describe_model(recipe)
    print(json.dumps(desc, indent=2) if as_json else render(desc))
    return 0
