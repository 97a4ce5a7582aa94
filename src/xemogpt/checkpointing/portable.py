"""Checkpoints that rebuild without the pretrained folders they were trained from.

A recipe names pretrained weights by folder (``checkpoints/clip-vit-large-patch14`` ...). The run's checkpoint
already holds every trained and frozen weight of the encoders and the LLM, so what it needs besides is each folder
component's *architecture* and small files (the LLM's tokenizer). :func:`portable_record` collects them at save
time (``XEmoGPT.on_save_checkpoint`` stores them under :data:`PORTABLE_KEY`); :func:`portable_components` turns the
recipe's component specs into ones that build from that record when the folders are gone.

The text encoders (alignment targets of the bridge pre-training tasks) keep their weights outside the model's state
dict, so a rebuild without their folders gets architecture-only stand-ins: evaluation, explanation and LM
fine-tuning work; the VECB/AECB losses then ask for the folders again.
"""

from __future__ import annotations

import base64
import copy
import tempfile
from pathlib import Path
from typing import Any

PORTABLE_KEY = "xemogpt_portable"
FORMAT = "xemogpt-portable/1"
# Components whose weights live in the state dict and may come from a folder or a weights file.
FOLDER_COMPONENTS = ("video_encoder", "audio_encoder", "llm_head")
FOLDER_ARGS = ("path", "checkpoint")


def _uses_files(spec: Any) -> bool:
    return isinstance(spec, dict) and any(spec.get(a) for a in FOLDER_ARGS)


def _encode_file(data: bytes) -> dict[str, str]:
    try:
        return {"text": data.decode("utf-8")}
    except UnicodeDecodeError:  # e.g. a sentencepiece model
        return {"base64": base64.b64encode(data).decode("ascii")}


def portable_record(model) -> dict[str, Any]:
    """``{"format", "specs": {key: spec update}, "files": {key/relpath: {"text"|"base64": ...}}}`` for each
    folder-loaded component that has a ``portable_spec``; ``{}`` when the model loads nothing from files."""
    components = model.hparams["components"]
    specs: dict[str, dict[str, Any]] = {}
    files: dict[str, dict[str, str]] = {}
    for key in FOLDER_COMPONENTS:
        comp = getattr(model, key, None)
        make = getattr(comp, "portable_spec", None)
        if not _uses_files(components.get(key)) or make is None:
            continue
        with tempfile.TemporaryDirectory(prefix="xemogpt-portable-") as tmp:
            update = dict(make(Path(tmp)))
            relative = update.pop("_relative", [])
            for f in sorted(Path(tmp).rglob("*")):
                if f.is_file():
                    files[f"{key}/{f.relative_to(tmp).as_posix()}"] = _encode_file(f.read_bytes())
        specs[key] = {"update": update, "relative": list(relative)}
    return {"format": FORMAT, "specs": specs, "files": files} if specs else {}


def portable_components(components: dict[str, Any], record: dict[str, Any], folder: Path) -> dict[str, Any]:
    """The component specs with each recorded component rebuilt from ``record``; its files are written under
    ``folder`` (which must outlive the build: the tokenizer is read from there)."""
    out = copy.deepcopy(components)
    for rel, blob in (record.get("files") or {}).items():
        dest = folder / rel
        if not dest.resolve().is_relative_to(folder.resolve()):
            raise ValueError(f"portable record names a file outside its folder: {rel!r}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(blob["text"].encode("utf-8") if "text" in blob else base64.b64decode(blob["base64"]))
    for key, entry in (record.get("specs") or {}).items():
        spec = {**out[key], **entry["update"]}
        for k in entry.get("relative", []):
            spec[k] = str(folder / key / spec[k])
        out[key] = spec
    return out
