"""MER-challenge label files.

* ``mer2024-ov``: open-vocabulary labels, CSV ``name,openset`` with a Python-list string per row.
* ``mer-discrete``: discrete labels, CSV ``name,discrete[,valence]``.

Both take subtitles from ``--subtitles`` (``name,sentence`` or ``name,chinese,english``).
"""

from __future__ import annotations

from collections.abc import Iterator

from xemogpt.data.adapters.base import DatasetAdapter, SourceRecord, label_fields
from xemogpt.data.adapters.labels import parse_label_list
from xemogpt.data.adapters.media import MediaIndex
from xemogpt.data.adapters.report import ImportReport
from xemogpt.data.adapters.tables import read_csv
from xemogpt.registry import register


@register("data_adapter", "mer2024-ov", aliases=("mer2024_ov",))
class Mer2024OVAdapter(DatasetAdapter):
    """MER2024 open-vocabulary labels: CSV name,openset (--labels); optional --subtitles."""

    name = "mer2024-ov"
    joins_labels = False
    inputs = ("labels", "subtitles")
    required_input = "labels"

    def records(self, report: ImportReport, media: MediaIndex) -> Iterator[SourceRecord]:
        table = read_csv(self.labels, report)  # type: ignore[arg-type]
        table.require_columns("name", "openset", flag="--labels")
        for row in table.rows:
            name = row.get("name")
            if name is None:
                report.problem("?", "missing_field", "empty 'name'", where=row.where)
                continue
            try:
                labels = parse_label_list(row.get("openset"))
            except ValueError as e:
                report.problem(name, "bad_value", f"openset: {e}", where=row.where)
                continue
            if not labels:
                report.problem(name, "missing_field", "empty 'openset' label list", where=row.where)
                continue
            yield SourceRecord(id=name, where=row.where, labels=labels, row=row)


@register("data_adapter", "mer-discrete", aliases=("mer_discrete",))
class MerDiscreteAdapter(DatasetAdapter):
    """MER-style discrete labels: CSV name,discrete[,valence] (--labels); optional --subtitles."""

    name = "mer-discrete"
    joins_labels = False
    inputs = ("labels", "subtitles")
    required_input = "labels"

    def records(self, report: ImportReport, media: MediaIndex) -> Iterator[SourceRecord]:
        table = read_csv(self.labels, report)  # type: ignore[arg-type]
        table.require_columns("name", "discrete", flag="--labels")
        for row in table.rows:
            name = row.get("name")
            if name is None:
                report.problem("?", "missing_field", "empty 'name'", where=row.where)
                continue
            if row.get("discrete") is None:
                report.problem(name, "missing_field", "empty 'discrete' label", where=row.where)
                continue
            try:
                emotion, labels, meta = label_fields(row)
            except ValueError as e:
                report.problem(name, "bad_value", str(e), where=row.where)
                continue
            yield SourceRecord(id=name, where=row.where, emotion=emotion, labels=labels, meta=meta, row=row)
