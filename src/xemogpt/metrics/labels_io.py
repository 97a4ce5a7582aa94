"""Reading the published OV-MER file layouts safely: label-list strings, ``name,openset`` CSVs, ``.npy`` groups.

MER2024 / AffectGPT store an open-vocabulary label set as a Python-list string (``"['happy', 'relieved']"``) in a
CSV column, and the per-sample synonym groups as one ``.npy`` file per sample holding a single string such as
``"[['happy', 'joyful'], ['relieved']]"`` (in a folder or a zip). We parse strings with ``ast.literal_eval`` (never
``eval``) and load ``.npy`` files with ``allow_pickle=False``: a unicode array loads fine, an object array that
would need pickle is refused with a message naming the file.
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


_SPLIT = re.compile(r"['\",]")


def parse_label_list(value: Any, where: str = "value") -> list[str]:
    """``"['happy', 'sad']"`` / ``"happy, sad"`` / a list / NaN / ``""`` -> list of label strings.

    Well-formed list strings go through ``ast.literal_eval``; anything else (``"[happy, sad]"``, plain comma lists)
    is split on quotes and commas, as the later AffectGPT tools do.
    """
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
        text = text[1:-1] if text.endswith("]") else text[1:]
    return [t.strip() for t in _SPLIT.split(text) if t.strip()]


def _flatten(items: Any) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if isinstance(item, (list, tuple)):
            out.extend(_flatten(item))
        else:
            out.append(item)
    return out


def parse_groups(value: Any, where: str = "value") -> list[list[str]]:
    """``"[['happy', 'joyful'], ['relieved']]"`` (or the same as lists) -> ``[['happy', 'joyful'], ['relieved']]``.

    A flat list is one group. Malformed strings fall back to splitting on brackets, then on quotes and commas.
    """
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, str):
        text = value.strip()
        if text in ("", "[]"):
            return []
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            chunks = [c for c in re.split(r"[\[\]]", text) if c.strip() not in ("", ",")]
            return [g for g in (parse_label_list(c, where) for c in chunks) if g]
    if isinstance(value, (list, tuple)):
        if all(isinstance(v, str) for v in value):
            # a 1-D array of group strings, or one flat group
            if value and all(v.strip().startswith("[") for v in value):
                return [g for v in value for g in parse_groups(v, where)]
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


def read_openset_csv(path: str | Path, column: str = "openset", name_column: str = "name") -> dict[str, list[str]]:
    """A published ``name,openset`` CSV -> ``{name: [labels]}`` (later rows win on a repeated name)."""
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
            row[name_column]: parse_label_list(row[column], f"{path} row {i + 2} ({row[name_column]!r})")
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


def load_synonyms(path: str | Path) -> dict[str, list[list[str]]]:
    """Per-sample synonym groups from a folder or a zip of ``<name>.npy`` files -> ``{name: groups}``."""
    path = Path(path)
    out: dict[str, list[list[str]]] = {}
    if path.is_dir():
        files = sorted(path.rglob("*.npy"))
        if not files:
            raise LabelFormatError(f"synonym folder {path} has no .npy files (expected one <name>.npy per sample)")
        for f in files:
            out[f.stem] = parse_groups(load_npy_string(f, str(f)), str(f))
        return out
    if path.is_file() and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            members = [m for m in zf.namelist()
                       if m.endswith(".npy") and not m.startswith("__MACOSX/") and not m.endswith("/")]
            if not members:
                raise LabelFormatError(f"synonym zip {path} has no .npy files (expected one <name>.npy per sample)")
            for m in sorted(members):
                where = f"{path}:{m}"
                out[Path(m).stem] = parse_groups(load_npy_string(zf.read(m), where), where)
        return out
    raise FileNotFoundError(f"synonyms {path} is neither a folder nor a zip of per-sample .npy files")
