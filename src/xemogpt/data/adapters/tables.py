"""Reading the text tables datasets ship (CSV, TSV, JSONL) robustly.

Emotion datasets come with CSVs written by many tools: UTF-8 with or without a BOM, and the Chinese MER/EMER
files often in GB18030. Each physical line is decoded on its own - UTF-8 first, then GB18030 - so one bad line
costs one row (skipped and counted), not the file, and a UTF-8 file is never mis-decoded as GB18030 as a whole.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xemogpt.data.adapters.report import ImportReport


@dataclass
class Row:
    """One record of a table: lower-cased column name -> value, and where it came from (``file:line``)."""

    values: dict[str, Any]
    where: str

    def get(self, column: str) -> Any:
        """The value of ``column`` with surrounding whitespace removed; None when absent or empty."""
        v = self.values.get(column.lower())
        if isinstance(v, str):
            v = v.strip()
            return v or None
        return v


@dataclass
class Table:
    """A whole table: its path, its columns (lower-cased, in file order) and its rows."""

    path: Path
    columns: list[str]
    rows: list[Row]

    def require_columns(self, *names: str, flag: str = "") -> None:
        """Raise a ValueError naming the file and the missing columns when the header lacks any of ``names``."""
        missing = [n for n in names if n.lower() not in self.columns]
        if missing:
            hint = f" (given with {flag})" if flag else ""
            raise ValueError(
                f"{self.path}{hint}: missing column(s) {', '.join(missing)}; the header has {', '.join(self.columns)}."
                " Check that the file has the published layout for this --format."
            )


def decode_lines(path: Path, report: ImportReport) -> Iterator[tuple[int, str]]:
    """Yield (line number, text) for every line of ``path`` that decodes as UTF-8 or GB18030.

    Lines that decode as neither are skipped and counted as ``undecodable_line``; the sample id in the log is the
    line's first comma-separated field, read leniently.
    """
    data = Path(path).read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    n_gb = 0
    for lineno, raw in enumerate(data.splitlines(keepends=True), 1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            try:
                text = raw.decode("gb18030")
                n_gb += 1
            except UnicodeDecodeError:
                guess = raw.decode("utf-8", errors="replace").split(",")[0].strip() or f"line {lineno}"
                report.problem(guess, "undecodable_line", "neither UTF-8 nor GB18030", where=f"{path}:{lineno}")
                continue
        yield lineno, text
    if n_gb:
        report.note(f"{path}: {n_gb} line(s) are not UTF-8 and were decoded as GB18030")


def read_csv(path: str | Path, report: ImportReport) -> Table:
    """Read a CSV (or ``.tsv``) whose first row is the header. Quoted fields may span lines.

    A row with more fields than the header has its extra fields joined back into the last column with commas
    (unquoted commas in a free-text last column, e.g. an English description), and a note is logged.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"table {path} does not exist; check the path given on the command line")
    consumed: list[int] = []

    def lines() -> Iterator[str]:
        for lineno, text in decode_lines(path, report):
            consumed.append(lineno)
            yield text

    reader = csv.reader(lines(), delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
    header: list[str] | None = None
    rows: list[Row] = []
    n_joined = 0
    while True:
        start = len(consumed)
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            raise ValueError(f"{path}:{consumed[-1] if consumed else 1}: not a valid CSV ({e})") from e
        if not fields or all(not f.strip() for f in fields):
            continue
        lineno = consumed[start] if start < len(consumed) else (consumed[-1] if consumed else 1)
        if header is None:
            header = [h.strip().lower() for h in fields]
            continue
        if len(fields) > len(header):
            fields = fields[: len(header) - 1] + [",".join(fields[len(header) - 1 :])]
            n_joined += 1
        rows.append(Row(dict(zip(header, fields)), f"{path}:{lineno}"))
    if header is None:
        raise ValueError(f"{path}: the file is empty; expected a header row")
    if n_joined:
        report.note(f"{path}: {n_joined} row(s) had more fields than the header; extras were joined into "
                    f"'{header[-1]}'")
    return Table(path, header, rows)


def read_jsonl(path: str | Path, report: ImportReport) -> Table:
    """Read a JSON-lines file of objects; a line that is not a JSON object is skipped as ``bad_value``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"table {path} does not exist; check the path given on the command line")
    rows: list[Row] = []
    columns: dict[str, None] = {}
    for lineno, text in decode_lines(path, report):
        if not text.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            report.problem(f"line {lineno}", "bad_value", f"not valid JSON ({e.msg})", where=where)
            continue
        if not isinstance(obj, dict):
            report.problem(f"line {lineno}", "bad_value", "expected a JSON object", where=where)
            continue
        values = {str(k).strip().lower(): v for k, v in obj.items()}
        columns.update(dict.fromkeys(values))
        rows.append(Row(values, where))
    return Table(path, list(columns), rows)


def read_table(path: str | Path, report: ImportReport) -> Table:
    """CSV/TSV or JSONL by file extension (``.jsonl``/``.json`` -> JSON lines)."""
    suffix = Path(path).suffix.lower()
    return read_jsonl(path, report) if suffix in (".jsonl", ".json", ".ndjson") else read_csv(path, report)
