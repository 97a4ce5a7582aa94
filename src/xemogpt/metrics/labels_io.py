"""Reading the published OV-MER file layouts safely: label-list strings, ``name,openset`` CSVs, ``.npy`` groups.

MER2024 / AffectGPT store an open-vocabulary label set as a Python-list string (``"['happy', 'relieved']"``) in a
CSV column, and the per-sample synonym groups as one ``.npy`` file per sample holding a single string such as
``"[['happy', 'joyful'], ['relieved']]"`` (in a folder or a zip). ``.npy`` files load with ``allow_pickle=False``: a
unicode array loads fine, an object array that would need pickle is refused with a message naming the file.

Two ways to read a label list (``mode``):

* ``"published"`` (default) splits as the published evaluation code does (AffectGPT's ``string_to_list``, used by
  ``my_affectgpt/evaluation/wheel.py`` and MER2025): drop one leading ``[`` and one trailing ``]``, split on both
  quote characters and commas, strip, drop empty pieces. So ``"[\"don't believe\", 'doubt']"`` gives ``don``,
  ``t believe``, ``doubt`` and ``"['happy, worried']"`` gives ``happy``, ``worried``. The published synonym files
  were built from labels split this way (MER2024's zip holds ``don`` and ``t believe``), so this is the mode that
  reproduces published numbers to the last digit. (MER2024's older ``main-ov.py`` toolkit splits on quotes only, so
  a quoted label with a comma in it is one label there; no label of MER2024's published OV store has one.)
* ``"literal"``: apostrophe-aware, a well-formed list string goes through ``ast.literal_eval`` (never ``eval``), so
  ``don't believe`` and ``happy, worried`` stay single labels; anything else falls back to the split above.

Synonym groups are split as the published ``listlist_to_list`` does (on brackets, then on quotes only, words kept
as written) in ``"published"`` mode, through ``ast.literal_eval`` in ``"literal"`` mode. CSV cells that pandas
reads as missing (``""``, ``NA``, ``None``, ``nan``, ... exactly, see :data:`PANDAS_NA`) are empty, as in the
published code, which reads every file with pandas.
"""

from __future__ import annotations

import ast
import csv
import io
import math
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from xemogpt.errors import XemoGPTError


class LabelFormatError(XemoGPTError, ValueError):
    """A label file or value is not in the published layout; the message names the file/sample and the fix."""


PARSE_MODES = ("published", "literal")
# pandas' default missing-value strings (read_csv / read_excel): a cell equal to one of these is read as NaN
PANDAS_NA = frozenset({"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
                       "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"})

_SPLIT = re.compile(r"['\",]")
_QUOTES = re.compile(r"['\"]")
_BRACKETS = re.compile(r"[\[\]]")


def _check_mode(mode: str) -> None:
    if mode not in PARSE_MODES:
        raise ValueError(f"label parse mode must be one of {PARSE_MODES}, got {mode!r}")


def split_published(text: str) -> list[str]:
    """AffectGPT's ``string_to_list`` on a string: one leading ``[`` and one trailing ``]`` dropped (the text is
    not stripped first), split on ``'``, ``"`` and ``,``, pieces stripped, empty ones dropped."""
    if text.startswith("["):
        text = text[1:]
    if text.endswith("]"):
        text = text[:-1]
    return [t.strip() for t in _SPLIT.split(text) if t.strip()]


def parse_label_list(value: Any, where: str = "value", mode: str = "published") -> list[str]:
    """``"['happy', 'sad']"`` / ``"happy, sad"`` / a list / NaN / ``""`` -> list of label strings (``mode``: see the
    module docstring). A list (or array) is taken as it is, nested lists flattened."""
    _check_mode(mode)
    if value is None:
        return []
    if isinstance(value, float) and math.isnan(value):
        return []
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [str(v) for v in _flatten(value)]
    if not isinstance(value, str):
        raise LabelFormatError(f"{where}: expected a label list or a list string, got {type(value).__name__}")
    if mode == "published":
        return split_published(value)
    text = value.strip()
    if text == "" or text.lower() == "nan":
        return []
    if text.startswith("["):
        try:
            parsed = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            parsed = None
        if isinstance(parsed, (list, tuple)):
            return [str(v) for v in _flatten(parsed)]
    return split_published(text)


def _flatten(items: Any) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if isinstance(item, (list, tuple)):
            out.extend(_flatten(item))
        else:
            out.append(item)
    return out


def split_groups_published(text: str) -> list[list[str]]:
    """The published ``listlist_to_list``: split on ``[`` / ``]``, keep the pieces that are not blank or a lone
    comma, split each on quote characters only and keep the words that are not blank or a comma, as written."""
    chunks = [c for c in _BRACKETS.split(text) if c.strip() not in ("", ",")]
    return [[w for w in _QUOTES.split(c) if w.strip() not in ("", ",")] for c in chunks]


def parse_groups(value: Any, where: str = "value", mode: str = "published") -> list[list[str]]:
    """``"[['happy', 'joyful'], ['relieved']]"`` (or the same as lists) -> ``[['happy', 'joyful'], ['relieved']]``.

    Strings are split as published (``mode="published"``) or read with ``ast.literal_eval`` (``"literal"``; a
    malformed string falls back to the published split). A flat list is one group; empty groups are dropped.
    """
    _check_mode(mode)
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, str):
        if mode == "published":
            return [g for g in split_groups_published(value) if g]
        text = value.strip()
        if text in ("", "[]"):
            return []
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return [g for g in split_groups_published(text) if g]
    if isinstance(value, (list, tuple)):
        if all(isinstance(v, str) for v in value):
            # a 1-D array of group strings, or one flat group
            if value and all(v.strip().startswith("[") for v in value):
                return [g for v in value for g in parse_groups(v, where, mode)]
            return [list(value)] if value else []
        groups = []
        for g in value:
            if isinstance(g, (list, tuple)):
                groups.append([str(w) for w in _flatten(g)])
            elif isinstance(g, str):
                groups.append([g])
            else:
                raise LabelFormatError(f"{where}: synonym group {g!r} is not a list of words")
        return [g for g in groups if g]
    raise LabelFormatError(f"{where}: expected synonym groups like \"[['a', 'b'], ['c']]\", got {type(value).__name__}")


def csv_cell(value: str | None) -> str:
    """A CSV cell as the published code sees it after pandas: a missing-value string (:data:`PANDAS_NA`) is ``""``."""
    return "" if value is None or value in PANDAS_NA else value


def read_openset_csv(path: str | Path, column: str = "openset", name_column: str = "name",
                     mode: str = "published") -> dict[str, list[str]]:
    """A published ``name,openset`` CSV -> ``{name: [labels]}`` in file order (later rows win on a repeated name;
    ``mode`` as in :func:`parse_label_list`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"label CSV {path} does not exist")
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        cols = reader.fieldnames or []
        for need in (name_column, column):
            if need not in cols:
                raise LabelFormatError(
                    f"{path}: no {need!r} column (columns: {', '.join(cols) or 'none'}); the published layout is "
                    f"'{name_column},{column}' with a list string per row, or pass the column name to use"
                )
        return {
            row[name_column]: parse_label_list(csv_cell(row[column]), f"{path} row {i + 2} ({row[name_column]!r})",
                                               mode)
            for i, row in enumerate(reader)
        }


def read_column_csv(path: str | Path, column: str, name_column: str = "name") -> dict[str, str]:
    """``{name: value}`` of one plain column (discrete emotion labels)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"label CSV {path} does not exist")
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        cols = reader.fieldnames or []
        for need in (name_column, column):
            if need not in cols:
                raise LabelFormatError(f"{path}: no {need!r} column (columns: {', '.join(cols) or 'none'})")
        return {row[name_column]: row[column].strip() for row in reader}


def load_npy_string(data: bytes | str | Path, where: str) -> Any:
    """Load one ``.npy`` without pickle and return its content as Python data (``.tolist()``)."""
    src = io.BytesIO(data) if isinstance(data, bytes) else data
    try:
        arr = np.load(src, allow_pickle=False)
    except ValueError as err:
        if "pickle" in str(err):
            raise LabelFormatError(
                f"{where} holds a Python object array, which would need pickle to load; we never unpickle label "
                "files. Re-save it as a string array, e.g. np.save(path, np.array(str(groups)))"
            ) from err
        raise LabelFormatError(f"{where} is not a valid .npy file: {err}") from err
    return arr.tolist()


def load_synonyms(path: str | Path, mode: str = "published") -> dict[str, list[list[str]]]:
    """Per-sample synonym groups from a folder or a zip of ``<name>.npy`` files -> ``{name: groups}`` (``mode`` as
    in :func:`parse_groups`)."""
    path = Path(path)
    out: dict[str, list[list[str]]] = {}
    if path.is_dir():
        files = sorted(path.rglob("*.npy"))
        if not files:
            raise LabelFormatError(f"synonym folder {path} has no .npy files (expected one <name>.npy per sample)")
        for f in files:
            out[f.stem] = parse_groups(load_npy_string(f, str(f)), str(f), mode)
        return out
    if path.is_file() and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            members = [m for m in zf.namelist()
                       if m.endswith(".npy") and not m.startswith("__MACOSX/") and not m.endswith("/")]
            if not members:
                raise LabelFormatError(f"synonym zip {path} has no .npy files (expected one <name>.npy per sample)")
            for m in sorted(members):
                where = f"{path}:{m}"
                out[Path(m).stem] = parse_groups(load_npy_string(zf.read(m), where), where, mode)
        return out
    raise FileNotFoundError(f"synonyms {path} is neither a folder nor a zip of per-sample .npy files")
