"""The EmoCue sample schema: one record per clip, whatever dataset it came from.

A dataset is a folder holding ``manifest.jsonl`` (one :class:`EmoCueSample` per line, media paths relative to the
folder) and optionally ``dataset.json`` (free-form info: emotions, generator, seed). Adapters write this layout;
the DataModule, the feature cache and the evaluators read it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from xemogpt.errors import XemoGPTError

MODALITIES: tuple[str, ...] = ("visual", "auditory", "emotional")
SPLITS: tuple[str, ...] = ("train", "val", "test")
MANIFEST = "manifest.jsonl"
DATASET_INFO = "dataset.json"

_log = logging.getLogger("xemogpt.data")


class SchemaError(XemoGPTError, ValueError):
    """A manifest record is malformed; the message names the file, line and field."""


@dataclass
class EmoCueSample:
    """One clip.

    Attributes:
        id: unique sample name (the key every metric and prediction file uses).
        video: path of the video file relative to the dataset root, or None for audio-only samples.
        audio: path of a separate audio file, or None to take the audio track of ``video``.
        subtitle: what is said (may be empty).
        emotion: the primary discrete emotion label, or None when the dataset has none.
        labels: open-vocabulary emotion labels (OV-MER); defaults to ``[emotion]``.
        cues: cue sentences per modality under ``visual``/``auditory``/``emotional``.
        cue_ids: canonical cue ids aligned one-to-one with ``cues`` (synthetic data; empty when unknown).
        description: the EMER-style target paragraph.
        split: ``train``, ``val`` or ``test``.
        meta: anything else (generator parameters, source dataset fields).
    """

    id: str
    video: str | None = None
    audio: str | None = None
    subtitle: str = ""
    emotion: str | None = None
    labels: list[str] = field(default_factory=list)
    cues: dict[str, list[str]] = field(default_factory=dict)
    cue_ids: dict[str, list[str]] = field(default_factory=dict)
    description: str = ""
    split: str = "train"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.labels and self.emotion:
            self.labels = [self.emotion]
        for m in MODALITIES:
            self.cues.setdefault(m, [])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, where: str = "record") -> EmoCueSample:
        if not isinstance(d, dict):
            raise SchemaError(f"{where}: expected a JSON object, got {type(d).__name__}")
        if "id" not in d or d["id"] in (None, ""):
            raise SchemaError(f"{where}: missing required field 'id'")
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        kwargs = {k: v for k, v in d.items() if k in known}
        if unknown:  # keep unknown fields rather than losing them
            kwargs.setdefault("meta", {})
            kwargs["meta"] = {**kwargs["meta"], **{k: d[k] for k in unknown}}
        kwargs["id"] = str(kwargs["id"])
        if kwargs.get("split", "train") not in SPLITS:
            raise SchemaError(f"{where} (id {kwargs['id']!r}): split must be one of {SPLITS}, got {kwargs['split']!r}")
        cues = kwargs.get("cues") or {}
        if not isinstance(cues, dict) or any(not isinstance(v, list) for v in cues.values()):
            raise SchemaError(f"{where} (id {kwargs['id']!r}): 'cues' must map modality -> list of sentences")
        if kwargs.get("subtitle") is None:
            kwargs["subtitle"] = ""
        return cls(**kwargs)


def resolve_media(root: str | Path, rel: str | None, *, sample_id: str = "?") -> Path | None:
    """Absolute path of a media file; refuses paths that escape the dataset root."""
    if rel is None:
        return None
    # Normalise without following links: imports symlink media into the root, and that is not an escape.
    root = Path(os.path.abspath(root))
    p = Path(os.path.normpath(root / rel))
    if root != p and root not in p.parents:
        raise SchemaError(f"sample {sample_id!r}: media path {rel!r} escapes the dataset root {root}")
    return p


def write_manifest(root: str | Path, samples: Iterable[EmoCueSample], info: dict[str, Any] | None = None) -> Path:
    """Write ``manifest.jsonl`` (and ``dataset.json`` when ``info`` is given) atomically."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    path = root / MANIFEST
    tmp = path.with_suffix(".jsonl.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for s in samples:
            f.write(json.dumps(s.to_dict(), ensure_ascii=False) + "\n")
    tmp.replace(path)
    if info is not None:
        (root / DATASET_INFO).write_text(json.dumps(info, indent=2, ensure_ascii=False), encoding="utf-8")
    return path


# (sample id or "file:line", reason, detail, skipped) for every record problem met while reading a manifest.
ProblemHook = Callable[[str, str, str, bool], None]

# Reasons a manifest record is skipped (or, for the second group, kept after a repair).
MANIFEST_SKIP_REASONS: dict[str, str] = {
    "bad_json": "the line is not a JSON object",
    "missing_field": "a required field (id) is absent or empty",
    "bad_value": "a field has the wrong type or value (split, cues)",
    "duplicate_id": "the id was already read from an earlier line (the first one is kept)",
    "no_media": "the record names neither a video nor an audio file",
}
MANIFEST_HANDLED_REASONS: dict[str, str] = {
    "bad_encoding": "the line or subtitle is not valid UTF-8 (undecodable bytes replaced)",
    "missing_subtitle": "the record has no subtitle (kept with an empty one)",
    "bad_subtitle": "the subtitle is not a string (converted to one)",
}


def _clean_text(text: str) -> tuple[str, bool]:
    """Replace lone surrogates (from ``\\udXXX`` escapes) that no tokenizer can encode; -> (text, changed)."""
    try:
        text.encode("utf-8")
        return text, False
    except UnicodeEncodeError:
        return text.encode("utf-8", errors="replace").decode("utf-8"), True


def iter_manifest(root: str | Path, *, strict: bool = False, on_problem: ProblemHook | None = None
                  ) -> Iterator[EmoCueSample]:
    """Yield samples from ``root/manifest.jsonl`` (``root`` may also be the manifest file itself).

    Bad records never stop the reading: each is skipped (or repaired and kept) and reported through ``on_problem``
    (default: a logged warning) with its id (or ``manifest.jsonl:LINE`` when it has none) and reason (see
    ``MANIFEST_SKIP_REASONS``/``MANIFEST_HANDLED_REASONS``). ``strict`` raises :class:`SchemaError` at the first one.
    Duplicate ids are checked by :func:`read_manifest`.
    """
    path = Path(root)
    if path.is_dir():
        path = path / MANIFEST
    if not path.exists():
        raise FileNotFoundError(
            f"no EmoCue manifest at {path}; create one with `xemogpt data synth --out DIR` or `xemogpt data import`"
        )

    def problem(sid: str, reason: str, detail: str, skipped: bool = True) -> None:
        if strict:
            raise SchemaError(f"{path}: sample {sid!r}: {reason} ({detail}); fix the manifest or drop --strict to "
                              "skip such records")
        if on_problem is not None:
            on_problem(sid, reason, detail, skipped)
        else:
            _log.warning("%s %s: %s (%s)", "skipped" if skipped else "kept", sid, reason, detail)

    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            where = f"{path.name}:{lineno}"
            try:
                line = raw.decode("utf-8")
                bad_bytes = False
            except UnicodeDecodeError:
                line, bad_bytes = raw.decode("utf-8", errors="replace"), True
            line = line.strip()
            if not line:
                continue
            try:
                d = json.loads(line)
            except json.JSONDecodeError as e:
                problem(where, "bad_json", f"{where}: not valid JSON ({e.msg})")
                continue
            if not isinstance(d, dict):
                problem(where, "bad_json", f"{where}: expected a JSON object, got {type(d).__name__}")
                continue
            sid = d.get("id")
            if sid in (None, "") or isinstance(sid, (dict, list)):
                problem(where, "missing_field", f"{where}: missing required field 'id'")
                continue
            sid = str(sid)
            if not d.get("video") and not d.get("audio"):
                problem(sid, "no_media", f"{where}: neither 'video' nor 'audio' is set")
                continue
            sub = d.get("subtitle")
            if "subtitle" not in d or sub is None:
                problem(sid, "missing_subtitle", f"{where}: no subtitle; using an empty one", False)
                d["subtitle"] = ""
            elif not isinstance(sub, str):
                d["subtitle"] = " ".join(map(str, sub)) if isinstance(sub, list) else str(sub)
                problem(sid, "bad_subtitle", f"{where}: subtitle is a {type(sub).__name__}; converted", False)
            d["subtitle"], changed = _clean_text(d["subtitle"])
            if bad_bytes or changed:
                problem(sid, "bad_encoding", f"{where}: invalid UTF-8 replaced by U+FFFD/?", False)
            try:
                sample = EmoCueSample.from_dict(d, where=where)
            except (SchemaError, TypeError) as e:
                problem(sid, "bad_value", str(e))
                continue
            yield sample


def read_manifest(root: str | Path, split: str | None = None, *, strict: bool = False,
                  on_problem: ProblemHook | None = None) -> list[EmoCueSample]:
    """All samples of a dataset (optionally one split).

    A duplicate id keeps its first record and skips the later ones as ``duplicate_id``; this and every other bad
    record is reported like in :func:`iter_manifest` (``strict`` raises :class:`SchemaError` instead).
    """
    out, seen = [], set()
    for s in iter_manifest(root, strict=strict, on_problem=on_problem):
        if s.id in seen:
            detail = f"duplicate sample id {s.id!r} in {root}"
            if strict:
                raise SchemaError(f"{root}: duplicate sample id {s.id!r}; fix the manifest or drop --strict")
            if on_problem is not None:
                on_problem(s.id, "duplicate_id", detail, True)
            else:
                _log.warning("skipped %s: duplicate_id (%s)", s.id, detail)
            continue
        seen.add(s.id)
        if split is None or s.split == split:
            out.append(s)
    return out


def read_info(root: str | Path) -> dict[str, Any]:
    p = Path(root) / DATASET_INFO
    return json.loads(p.read_text(encoding="utf-8")) if p.exists() else {}
