"""Any CSV/TSV/JSONL table with one row per clip, mapped onto the schema with ``--map key=column``.

Keys: ``id`` (default column ``id``, else ``name``), ``video``, ``audio`` (paths relative to a ``--media`` folder,
or absolute inside one; without them media are found by id), ``subtitle``, ``emotion``, ``labels`` (list string
or comma-separated), ``description``, ``split``, ``valence`` and ``cues.visual``/``cues.auditory``/
``cues.emotional`` (list string, JSON list, or sentences). A key left unmapped uses the column of the same name
when the table has one; other columns go to ``meta``. Without ``--media`` paths are relative to the table's folder.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from xemogpt.cues.splitting import split_sentences
from xemogpt.data.adapters.base import DatasetAdapter, SourceRecord
from xemogpt.data.adapters.labels import normalize_emotion, parse_label_list
from xemogpt.data.adapters.media import MediaIndex
from xemogpt.data.adapters.report import ImportReport
from xemogpt.data.adapters.tables import Row, read_table
from xemogpt.data.schema import MODALITIES
from xemogpt.registry import register

MAP_KEYS: tuple[str, ...] = (
    "id", "video", "audio", "subtitle", "emotion", "labels", "description", "split", "valence",
    *(f"cues.{m}" for m in MODALITIES),
)


def parse_map(items: list[str] | None) -> dict[str, str]:
    """``["id=clip", "emotion=label"]`` -> ``{"id": "clip", "emotion": "label"}``; unknown keys raise."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, column = item.partition("=")
        key, column = key.strip().lower(), column.strip()
        if not sep or not key or not column:
            raise ValueError(f"--map {item!r}: expected key=column, e.g. --map id=clip_name")
        if key not in MAP_KEYS:
            raise ValueError(f"--map {item!r}: unknown key {key!r}; keys are {', '.join(MAP_KEYS)}")
        out[key] = column
    return out


def _cue_list(value: Any) -> list[str]:
    if isinstance(value, list):
        items = value
    elif isinstance(value, str) and value.strip().startswith("["):
        items = ast.literal_eval(value.strip())
    else:
        return split_sentences(str(value))
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise ValueError(f"expected a list of cue sentences, got {value!r}"[:120])
    return [i.strip() for i in items if i.strip()]


@register("data_adapter", "generic")
class GenericAdapter(DatasetAdapter):
    """Any CSV/TSV/JSONL table (--labels or --descriptions) mapped with --map key=column."""

    name = "generic"
    joins_labels = False
    inputs = ("descriptions", "labels", "subtitles")

    def __init__(self, media=(), *, descriptions=None, labels=None, **kwargs) -> None:  # type: ignore[no-untyped-def]
        if (descriptions is None) == (labels is None):
            raise ValueError("--format generic reads one table: give it with --labels FILE or --descriptions FILE")
        super().__init__(media, descriptions=descriptions, labels=labels, **kwargs)
        self.table_path = Path(descriptions or labels)  # type: ignore[arg-type]

    def media_roots_or_default(self) -> list[Path]:
        return self.media_roots or [self.table_path.resolve().parent]

    def _columns(self, columns: list[str]) -> dict[str, str]:
        mapping = {k: v.lower() for k, v in self.column_map.items()}
        for key, column in mapping.items():
            if column not in columns:
                raise ValueError(
                    f"{self.table_path}: --map {key}={column}: no column {column!r}; columns are {', '.join(columns)}"
                )
        if "id" not in mapping:
            mapping["id"] = next((c for c in ("id", "name", "names") if c in columns), "")
            if not mapping["id"]:
                raise ValueError(
                    f"{self.table_path}: no 'id' or 'name' column; say which column holds the sample id with "
                    f"--map id=COLUMN (columns: {', '.join(columns)})"
                )
        for key in MAP_KEYS:
            if key not in mapping and key in columns:
                mapping[key] = key
        return mapping

    def records(self, report: ImportReport, media: MediaIndex) -> Iterator[SourceRecord]:
        table = read_table(self.table_path, report)
        if not table.rows:
            return
        cols = self._columns(table.columns)
        used = set(cols.values())
        for row in table.rows:
            rec = self._record(row, cols, used, report)
            if rec is not None:
                yield rec

    def _record(self, row: Row, cols: dict[str, str], used: set[str], report: ImportReport) -> SourceRecord | None:
        def get(key: str) -> Any:
            return row.get(cols[key]) if key in cols else None

        sample_id = get("id")
        if sample_id is None:
            report.problem("?", "missing_field", f"empty id column '{cols['id']}'", where=row.where)
            return None
        sample_id = str(sample_id)
        try:
            labels = parse_label_list(get("labels")) if get("labels") is not None else None
            emotion = normalize_emotion(str(get("emotion"))) if get("emotion") is not None else None
            meta: dict[str, Any] = {k: v for k, v in row.values.items() if k not in used and v not in (None, "")}
            if get("valence") is not None:
                meta["valence"] = float(get("valence"))
            cues = None
            if any(get(f"cues.{m}") is not None for m in MODALITIES):  # else derived from the description
                cues = {m: _cue_list(get(f"cues.{m}")) if get(f"cues.{m}") is not None else [] for m in MODALITIES}
        except (ValueError, SyntaxError) as e:
            report.problem(sample_id, "bad_value", str(e), where=row.where)
            return None
        if labels and emotion is None and len(labels) == 1:
            emotion = labels[0]
        subtitle = get("subtitle")
        return SourceRecord(
            id=sample_id,
            where=row.where,
            video_path=str(get("video")) if get("video") is not None else None,
            audio_path=str(get("audio")) if get("audio") is not None else None,
            subtitle=str(subtitle) if subtitle is not None else None,
            subtitle_expected="subtitle" in cols,
            emotion=emotion,
            labels=labels,
            description=str(get("description") or ""),
            cues=cues,
            split=str(get("split")) if get("split") is not None else None,
            meta=meta,
            row=row,
        )
