"""AffectGPT's published ``emotion_wheel`` folder, read as its evaluation code (``my_affectgpt/evaluation/wheel.py``)
reads it, and the label normalisation behind its emotion-wheel (EW) metrics.

The folder (3FEmotionResearch/AffectGPT ``AffectGPT/emotion_wheel``; MERTools
``MER2025/MER2025_Track23/emotion_wheel``) holds:

* ``wheel1.xlsx`` ... ``wheel5.xlsx`` (every ``wheel*.xlsx``): the first sheet, header ``level1, level2, level3``
  (inner, middle, outer ring), one outer-ring word per row. An empty cell repeats the word above it in that column,
  the ``level3`` column included: a row with a new ``level2`` word and no ``level3`` word files the previous
  ``level3`` word under the new ``level2`` word too, as the published reader does. Words are lower-cased and
  stripped.
* ``synonym.xlsx``: the first sheet, column pairs ``word_<run>, synonym_<run>`` (eight runs ``run1`` ... ``run8``
  published). Each row maps the wheel word ``word_<run>`` to itself and every synonym in ``synonym_<run>`` (split
  on commas and quotes) to that wheel word; the runs are merged. Every ``word_<run>`` must be on some wheel.
* ``format.csv``: ``name,format``: a base word (a key of the synonym table) and its word forms, comma separated;
  each form and the base word itself map to the base word.

A cell that pandas reads as missing (``None``, ``NA``, ``nan``, ... see
:data:`~xemogpt.metrics.labels_io.PANDAS_NA`) is empty, as in the published code.

Normalisation of a label (lower-cased and stripped), per published variant:

* a label that is not a word form in ``format.csv`` is dropped (every variant);
* ``case1``: its alphabetically first base word;
* ``case2``: the alphabetically first wheel word of that base word;
* ``case3_<wheel>_<level>``: of the wheel words of all its base words, in sorted order, the first one on that wheel,
  replaced by its cluster centre: the inner-ring word for ``level1``; the middle-ring word for ``level2``, an
  inner-ring word going to its alphabetically first middle-ring word. A word on several rings or rows takes the
  last assignment in the published order (inner word, then each middle word and its outer words, row order). A
  label none of whose wheel words is on that wheel is dropped.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xemogpt.metrics.labels_io import PANDAS_NA, LabelFormatError, csv_cell, split_published

LEVELS = ("level1", "level2")
Hierarchy = dict[str, dict[str, list[str]]]  # inner-ring word -> middle-ring word -> outer-ring words


def cluster_map(wheel: Hierarchy, level: str = "level1") -> dict[str, str]:
    """Word -> cluster centre on one wheel (the published ``func_get_wheel_cluster``)."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    out: dict[str, str] = {}
    for l1, middle in wheel.items():
        if level == "level1":
            out[l1] = l1
            for l2, outer in middle.items():
                out[l2] = l1
                out.update({w: l1 for w in outer})
        else:
            out[l1] = min(middle) if middle else l1
            for l2, outer in middle.items():
                out[l2] = l2
                out.update({w: l2 for w in outer})
    return out


def _cell(value: Any) -> str | None:
    """An xlsx cell as pandas gives it to the published code: empty or a missing-value string -> None."""
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    return None if text in PANDAS_NA else text


def read_sheet(path: Path) -> tuple[list[str], list[tuple[Any, ...]]]:
    """The first sheet of an .xlsx: (header names stripped, data rows without the trailing empty ones)."""
    from openpyxl import load_workbook

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except Exception as err:  # openpyxl raises zipfile/KeyError/InvalidFileException on a file that is not xlsx
        raise LabelFormatError(f"{path}: not a readable .xlsx workbook ({type(err).__name__}: {err})") from err
    try:
        rows = [tuple(r) for r in wb.worksheets[0].iter_rows(values_only=True)]
    finally:
        wb.close()
    while rows and all(_cell(v) is None for v in rows[-1]):
        rows.pop()
    if not rows:
        raise LabelFormatError(f"{path}: the first sheet is empty")
    return [str(h).strip() if h is not None else "" for h in rows[0]], rows[1:]


def _columns(path: Path, header: list[str], names: list[str]) -> list[int]:
    missing = [n for n in names if n not in header]
    if missing:
        raise LabelFormatError(f"{path}: no column {', '.join(missing)} in the header row (found: "
                               f"{', '.join(h for h in header if h) or 'none'})")
    return [header.index(n) for n in names]


def _at(row: tuple[Any, ...], j: int) -> str | None:
    return _cell(row[j]) if j < len(row) else None


def read_wheel_xlsx(path: str | Path) -> Hierarchy:
    """One published wheel sheet -> ``{level1: {level2: [level3, ...]}}`` (empty cells repeat the word above)."""
    path = Path(path)
    header, rows = read_sheet(path)
    cols = _columns(path, header, ["level1", "level2", "level3"])
    current = ["", "", ""]
    wheel: Hierarchy = {}
    for i, row in enumerate(rows):
        for k, j in enumerate(cols):
            value = _at(row, j)
            if value is not None:
                current[k] = value
        l1, l2, l3 = (w.lower().strip() for w in current)
        if not l1 or not l2:
            raise LabelFormatError(f"{path} row {i + 2}: no level1/level2 word in this row or above it")
        outer = wheel.setdefault(l1, {}).setdefault(l2, [])
        if l3:
            outer.append(l3)
    if not wheel:
        raise LabelFormatError(f"{path}: no wheel rows under the header level1, level2, level3")
    return wheel


def wheel_words(wheel: Hierarchy) -> set[str]:
    return {w for l1, middle in wheel.items() for l2, outer in middle.items() for w in (l1, l2, *outer)}


def read_synonym_xlsx(path: str | Path, on_wheels: set[str]) -> dict[str, set[str]]:
    """``synonym.xlsx`` -> ``{word: {wheel words}}`` (every run merged; a wheel word maps to itself)."""
    path = Path(path)
    header, rows = read_sheet(path)
    runs = [h[len("word_"):] for h in header if h.startswith("word_")]
    if not runs:
        raise LabelFormatError(f"{path}: no word_<run> / synonym_<run> column pairs (found: "
                               f"{', '.join(h for h in header if h) or 'none'})")
    out: dict[str, set[str]] = {}
    for run in runs:
        jw, js = _columns(path, header, [f"word_{run}", f"synonym_{run}"])
        for i, row in enumerate(rows):
            word, synonyms = _at(row, jw), _at(row, js)
            if word is None:
                if synonyms is None:
                    continue
                raise LabelFormatError(f"{path} row {i + 2}: synonym_{run} is filled but word_{run} is empty")
            base = word.strip().lower()
            if base not in on_wheels:
                raise LabelFormatError(f"{path} row {i + 2}, word_{run}: {base!r} is on no wheel*.xlsx of the folder "
                                       "(the published reader asserts every synonym-table word is a wheel word)")
            out.setdefault(base, set()).add(base)
            for s in split_published(synonyms or ""):
                out.setdefault(s.strip().lower(), set()).add(base)
    return out


def read_format_csv(path: str | Path) -> dict[str, set[str]]:
    """``format.csv`` -> ``{word form: {base words}}`` (each base word is also a form of itself)."""
    path = Path(path)
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        _columns(path, [c.strip() for c in reader.fieldnames or []], ["name", "format"])
        out: dict[str, set[str]] = {}
        for row in reader:
            base = csv_cell(row["name"])
            for form in split_published(csv_cell(row["format"])):
                out.setdefault(form, set()).add(base)
            out.setdefault(base, set()).add(base)
    return out


def _natural(name: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


@dataclass
class WheelFolder:
    """A published ``emotion_wheel`` folder: word forms, synonym table and wheels (module docstring)."""

    path: Path
    forms: dict[str, set[str]]
    synonyms: dict[str, set[str]]
    wheels: dict[str, Hierarchy]
    _clusters: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict, repr=False)

    @property
    def variants(self) -> list[str]:
        """The published variant names: ``case1``, ``case2``, ``case3_<wheel>_<level>`` per wheel and level."""
        return ["case1", "case2"] + [f"case3_{w}_{lv}" for w in self.wheels for lv in LEVELS]

    def clusters(self, wheel: str, level: str) -> dict[str, str]:
        key = (wheel, level)
        if key not in self._clusters:
            self._clusters[key] = cluster_map(self.wheels[wheel], level)
        return self._clusters[key]

    def wheel_candidates(self, label: str) -> list[str]:
        """The wheel words of all of a label's base words, sorted (empty: not a known word form)."""
        return sorted(set().union(*(self.synonyms[b] for b in self.forms.get(label, ()))))

    def normalise(self, label: str, variant: str) -> str | None:
        """A lower-cased, stripped label under one variant, or None where the published code drops it."""
        bases = self.forms.get(label)
        if not bases:
            return None
        if variant == "case1":
            return min(bases)
        if variant == "case2":
            return min(self.synonyms[min(bases)])
        wheel, _, level = variant.removeprefix("case3_").rpartition("_")
        if not variant.startswith("case3_") or wheel not in self.wheels or level not in LEVELS:
            raise ValueError(f"unknown variant {variant!r}; one of {', '.join(self.variants)}")
        clusters = self.clusters(wheel, level)
        return next((clusters[w] for w in self.wheel_candidates(label) if w in clusters), None)


def is_wheel_folder(path: str | Path) -> bool:
    path = Path(path)
    return path.is_dir() and (path / "format.csv").is_file() and (path / "synonym.xlsx").is_file()


def load_wheel_folder(path: str | Path) -> WheelFolder:
    """Read a published ``emotion_wheel`` folder; errors name the file, row and word that break the layout."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"emotion-wheel folder {path} does not exist (expected AffectGPT's emotion_wheel "
                                "folder: wheel1.xlsx ... wheel5.xlsx, synonym.xlsx, format.csv)")
    files = sorted((p for p in path.glob("wheel*.xlsx") if p.is_file()), key=lambda p: _natural(p.stem))
    missing = [n for n in ("synonym.xlsx", "format.csv") if not (path / n).is_file()]
    if not files or missing:
        raise LabelFormatError(f"{path}: not an AffectGPT emotion_wheel folder; it lacks "
                               f"{', '.join((['wheel*.xlsx'] if not files else []) + missing)}")
    wheels = {p.stem: read_wheel_xlsx(p) for p in files}
    synonyms = read_synonym_xlsx(path / "synonym.xlsx", set().union(*(wheel_words(w) for w in wheels.values())))
    forms = read_format_csv(path / "format.csv")
    unknown = sorted({b for bases in forms.values() for b in bases} - set(synonyms))
    if unknown:
        raise LabelFormatError(f"{path / 'format.csv'}: base word(s) {', '.join(map(repr, unknown[:5]))}"
                               f"{' ...' if len(unknown) > 5 else ''} not in synonym.xlsx (the published code fails "
                               "with a KeyError on them)")
    return WheelFolder(path=path, forms=forms, synonyms=synonyms, wheels=wheels)
