"""EMER description datasets: the target paragraph is the description; cues are derived from it.

* ``emer_v2``: ``name,chinese,english`` (EMER v2 / AffectGPT-style descriptions), as published in
  zeroQiaoba/AffectGPT ``EMER/dataset-v2/final-EMER-reason.csv`` (332 rows, UTF-8, quoted multi-sentence English
  with doubled quotes). The dataset's README calls the id column ``names``; either header is read, and a file with
  only the language column in use (``name,english``) is enough.
* ``emer_v1``: ``names,emotions,subtitles,reasons`` (the first EMER release: labels, subtitle and reasoning).
"""

from __future__ import annotations

from collections.abc import Iterator

from xemogpt.data.adapters.base import DatasetAdapter, SourceRecord
from xemogpt.data.adapters.labels import parse_label_list
from xemogpt.data.adapters.media import MediaIndex
from xemogpt.data.adapters.report import ImportReport
from xemogpt.data.adapters.tables import read_csv
from xemogpt.registry import register


@register("data_adapter", "emer_v2")
class EmerV2Adapter(DatasetAdapter):
    """EMER v2 descriptions: CSV name,chinese,english (--descriptions); optional --labels and --subtitles."""

    name = "emer_v2"
    inputs = ("descriptions", "labels", "subtitles")
    required_input = "descriptions"

    def records(self, report: ImportReport, media: MediaIndex) -> Iterator[SourceRecord]:
        table = read_csv(self.descriptions, report)  # type: ignore[arg-type]
        key = "names" if "name" not in table.columns and "names" in table.columns else "name"
        column = "english" if self.language == "en" else "chinese"
        table.require_columns(key, column, flag="--descriptions")
        for row in table.rows:
            name = row.get(key)
            if name is None:
                report.problem("?", "missing_field", f"empty '{key}'", where=row.where)
                continue
            text = row.get(column)
            if text is None:
                report.problem(name, "missing_field", f"empty '{column}' description (--language)", where=row.where)
                continue
            yield SourceRecord(id=name, where=row.where, description=text, row=row)


@register("data_adapter", "emer_v1")
class EmerV1Adapter(DatasetAdapter):
    """EMER v1: CSV names,emotions,subtitles,reasons (--descriptions); reasons become the target description."""

    name = "emer_v1"
    inputs = ("descriptions", "labels", "subtitles")
    required_input = "descriptions"

    def records(self, report: ImportReport, media: MediaIndex) -> Iterator[SourceRecord]:
        table = read_csv(self.descriptions, report)  # type: ignore[arg-type]
        table.require_columns("names", "emotions", "subtitles", "reasons", flag="--descriptions")
        for row in table.rows:
            name = row.get("names")
            if name is None:
                report.problem("?", "missing_field", "empty 'names'", where=row.where)
                continue
            missing = [c for c in ("emotions", "reasons") if row.get(c) is None]
            if missing:
                report.problem(name, "missing_field", f"empty {', '.join(missing)}", where=row.where)
                continue
            try:
                labels = parse_label_list(row.get("emotions"))
            except ValueError as e:
                report.problem(name, "bad_value", f"emotions: {e}", where=row.where)
                continue
            yield SourceRecord(
                id=name,
                where=row.where,
                subtitle=row.get("subtitles"),
                subtitle_expected=True,
                emotion=labels[0] if labels else None,
                labels=labels,
                description=row.get("reasons"),
                row=row,
            )
