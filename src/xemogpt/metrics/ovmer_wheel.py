"""OV-MER with emotion-wheel grouping (AffectGPT's EW metrics): from AffectGPT's published ``emotion_wheel`` folder
as it is, or from a hand-made wheel mapping file.

Every open-vocabulary label is normalised onto a wheel before the set overlap; labels the normalisation does not
know are dropped. Per variant, over the reference samples in file order: a sample whose normalised reference is
empty is skipped (not kept); an empty normalised prediction scores P = R = 0; otherwise P = |G ∩ Q| / |Q| and
R = |G ∩ Q| / |G|. P and R are means over the kept samples, F = 2PR / (P + R), and F = 0 where P + R = 0.

**Published folder** (:mod:`xemogpt.metrics.wheel_folder` reads it and defines the normalisation):
:func:`ovmer_wheel_published` reports every published variant (``case1``, ``case2``,
``case3_wheel{1..5}_level{1,2}``) and the published aggregates: ``level1`` / ``level2`` = the mean over the wheels of
(F, P, R) of ``case3_<wheel>_<level>``, as AffectGPT's ``wheel_metric_calculation`` computes them, and ``mer2025``
= the mean of the level-1 and level-2 F (MER2025 track 2/3's score). On MER2024's published OV store every number
equals AffectGPT's own ``my_affectgpt/evaluation/wheel.py`` to the last digit (README, "Emotion-wheel OV-MER").
Where the published code stops or gives NaN we go on, and say so in the counts: a reference sample with no
prediction at all raises ``KeyError`` there and scores 0 here (``missing_pred``; an empty prediction list scores 0
in both); a variant whose P + R is 0 gets F = NaN there and F = 0 here; a label cell that is just ``[`` raises
``IndexError`` there and is an empty list here.

**Hand-made mapping file** (JSON or YAML), for other wheels: a label is mapped to its wheel words (the label itself
and its ``synonyms``), the first of those in sorted order that the wheel knows is replaced by its cluster centre
(inner-ring word for ``level1``; middle-ring word for ``level2``, an inner-ring word going to its alphabetically
first child). Layouts:

* ``{"wheels": {NAME: {level1: {level2: [level3, ...]}}}, "synonyms": {word: [wheel word, ...]}}`` (``synonyms``
  optional; several wheels are averaged);
* a single wheel ``{level1: {level2: [level3, ...]}}``;
* a flat ``{label: group}`` mapping (one wheel whose groups are final; ``level`` is ignored);

or a CSV with columns ``level1,level2,level3`` (optional ``wheel``; an empty cell repeats the row above) or
``label,group`` (flat), or one wheel sheet ``.xlsx`` in the published layout (no synonyms: for AffectGPT's own
wheels use the whole folder, whose synonym table and word forms the published numbers depend on). Every word is
lower-cased and stripped.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchmetrics import Metric

from xemogpt.metrics.labels_io import LabelFormatError, parse_label_list
from xemogpt.metrics.ovmer import fscore, set_precision_recall
from xemogpt.metrics.wheel_folder import (
    LEVELS,
    Hierarchy,
    WheelFolder,
    cluster_map,
    load_wheel_folder,
    read_wheel_xlsx,
)
from xemogpt.registry import register

Normaliser = Callable[[str], "str | None"]


def _norm(word: Any) -> str:
    return str(word).lower().strip()


@dataclass
class EmotionWheel:
    """Hand-made emotion wheels (inner ring -> middle ring -> outer words) or flat label groups, plus synonyms."""

    wheels: dict[str, Hierarchy] = field(default_factory=dict)
    flat: dict[str, dict[str, str]] = field(default_factory=dict)
    synonyms: dict[str, list[str]] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return list(self.wheels) + list(self.flat)

    def cluster_map(self, name: str, level: str = "level1") -> dict[str, str]:
        """Word -> cluster centre for one wheel at ``level``."""
        if level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
        if name in self.flat:
            groups = self.flat[name]
            return {**{g: g for g in groups.values()}, **groups}
        return cluster_map(self.wheels[name], level)

    def map_label(self, label: str, clusters: Mapping[str, str]) -> str | None:
        """A label's cluster centre, or None when neither it nor its synonyms are on the wheel."""
        word = _norm(label)
        for cand in sorted({word, *self.synonyms.get(word, [])}):
            if cand in clusters:
                return clusters[cand]
        return None


def _hierarchy(obj: Any, where: str) -> Hierarchy:
    if not isinstance(obj, Mapping):
        raise LabelFormatError(f"{where}: a wheel must map level1 words to {{level2: [level3 words]}}")
    out: Hierarchy = {}
    for l1, middle in obj.items():
        if middle is None:
            middle = {}
        if isinstance(middle, (list, tuple)):  # a two-level wheel: level1 -> [level2 words]
            middle = {w: [] for w in middle}
        if not isinstance(middle, Mapping):
            raise LabelFormatError(f"{where}: wheel entry {l1!r} must map level2 words to lists of level3 words")
        out[_norm(l1)] = {_norm(l2): [_norm(w) for w in (outer or [])] for l2, outer in middle.items()}
    return out


def _from_mapping(obj: Any, stem: str, where: str) -> EmotionWheel:
    if not isinstance(obj, Mapping) or not obj:
        raise LabelFormatError(f"{where}: expected a mapping (see xemogpt.metrics.ovmer_wheel for the layouts)")
    if "wheels" in obj:
        wheels_obj = obj["wheels"]
        if not isinstance(wheels_obj, Mapping) or not wheels_obj:
            raise LabelFormatError(f"{where}: 'wheels' must map wheel names to wheels")
        ew = EmotionWheel()
        for name, w in wheels_obj.items():
            if isinstance(w, Mapping) and w and all(isinstance(v, str) for v in w.values()):
                ew.flat[str(name)] = {_norm(k): _norm(v) for k, v in w.items()}
            else:
                ew.wheels[str(name)] = _hierarchy(w, f"{where} wheels.{name}")
        syn = obj.get("synonyms") or {}
        if not isinstance(syn, Mapping):
            raise LabelFormatError(f"{where}: 'synonyms' must map a word to a list of wheel words")
        ew.synonyms = {_norm(k): [_norm(x) for x in parse_label_list(v, f"{where} synonyms.{k}")]
                       for k, v in syn.items()}
        return ew
    if all(isinstance(v, str) for v in obj.values()):
        return EmotionWheel(flat={stem: {_norm(k): _norm(v) for k, v in obj.items()}})
    return EmotionWheel(wheels={stem: _hierarchy(obj, where)})


def _from_csv(path: Path) -> EmotionWheel:
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        cols = [c.strip().lower() for c in reader.fieldnames or []]
        rows = [{k.strip().lower(): (v or "").strip() for k, v in row.items() if k} for row in reader]
    if {"label", "group"} <= set(cols):
        return EmotionWheel(flat={path.stem: {_norm(r["label"]): _norm(r["group"]) for r in rows if r["label"]}})
    if not {"level1", "level2"} <= set(cols):
        raise LabelFormatError(f"{path}: a wheel CSV needs columns level1,level2[,level3][,wheel] or label,group; "
                               f"found {', '.join(cols) or 'none'}")
    ew = EmotionWheel()
    last = {"wheel": path.stem, "level1": "", "level2": "", "level3": ""}
    for i, row in enumerate(rows):
        for key in ("wheel", "level1", "level2", "level3"):
            if row.get(key):
                last[key] = row[key]
        if not last["level1"] or not last["level2"]:
            raise LabelFormatError(f"{path} row {i + 2}: no level1/level2 word (empty cells repeat the row above)")
        wheel = ew.wheels.setdefault(last["wheel"], {})
        outer = wheel.setdefault(_norm(last["level1"]), {}).setdefault(_norm(last["level2"]), [])
        if row.get("level3"):
            outer.append(_norm(row["level3"]))
    return ew


def load_wheel(path: str | Path) -> EmotionWheel:
    """Read a hand-made wheel mapping file (``.json``, ``.yaml``/``.yml``, ``.csv`` or one ``.xlsx`` wheel sheet;
    layouts in the module docstring). The extension decides how the file is read."""
    path = Path(path)
    if path.is_dir():
        raise LabelFormatError(f"{path} is a folder; a published emotion_wheel folder is read by load_wheels / "
                               "load_wheel_folder (CLI: --wheels DIR)")
    if not path.is_file():
        raise FileNotFoundError(f"wheel mapping file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _from_csv(path)
    if suffix == ".xlsx":
        return EmotionWheel(wheels={path.stem: read_wheel_xlsx(path)})
    if suffix not in (".json", ".yaml", ".yml"):
        raise LabelFormatError(f"{path}: unknown wheel file type {suffix!r}; use .json, .yaml, .csv or .xlsx, or "
                               "pass AffectGPT's emotion_wheel folder")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise LabelFormatError(f"{path}: not UTF-8 text ({err}); is it really a {suffix} file?") from err
    if suffix == ".json":
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as err:
            raise LabelFormatError(f"{path}: not valid JSON ({err})") from err
    else:
        import yaml

        try:
            obj = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise LabelFormatError(f"{path}: not valid YAML ({err})") from err
    return _from_mapping(obj, path.stem, str(path))


def load_wheels(path: str | Path | EmotionWheel | WheelFolder) -> EmotionWheel | WheelFolder:
    """A published ``emotion_wheel`` folder (a directory) or a hand-made mapping file (anything else)."""
    if isinstance(path, (EmotionWheel, WheelFolder)):
        return path
    if not Path(path).exists():
        raise LabelFormatError(f"wheels {path} does not exist; expected AffectGPT's emotion_wheel folder (wheel1.xlsx "
                               "... wheel5.xlsx, synonym.xlsx, format.csv) or a wheel mapping file")
    return load_wheel_folder(path) if Path(path).is_dir() else load_wheel(path)


def normalisers(wheels: EmotionWheel | WheelFolder, level: str) -> dict[str, Normaliser]:
    """Wheel name -> (lower-cased label -> cluster centre or None) at ``level``."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    if isinstance(wheels, WheelFolder):
        return {w: partial(wheels.normalise, variant=f"case3_{w}_{level}") for w in wheels.wheels}
    return {n: partial(wheels.map_label, clusters=wheels.cluster_map(n, level)) for n in wheels.names}


def label_lists(labels: Mapping[str, Any], parse: str, what: str) -> dict[str, list[str]]:
    """``{name: labels}`` -> ``{name: distinct lower-cased, stripped labels}`` (published split by default)."""
    return {name: list(dict.fromkeys(w for w in (x.lower().strip() for x in parse_label_list(v, f"{what} {name!r}",
                                                                                           parse)) if w))
            for name, v in labels.items()}


def score_variant(pred: Mapping[str, list[str]], ref: Mapping[str, list[str]], norm: Normaliser) -> dict[str, Any]:
    """One variant over ``ref``'s samples (label lists from :func:`label_lists`; a missing prediction is empty).

    Returns ``{"precision", "recall", "fscore", "n" (samples kept), "skipped_empty_ref", "dropped_ref",
    "dropped_pred" (labels the normalisation dropped)}``; P, R, F are NaN when no sample is kept.
    """
    cache: dict[str, str | None] = {}

    def mapped(labels: list[str]) -> tuple[set[str], int]:
        out = [cache[w] if w in cache else cache.setdefault(w, norm(w)) for w in labels]
        return {m for m in out if m}, sum(not m for m in out)

    ps: list[float] = []
    rs: list[float] = []
    skipped = dropped_ref = dropped_pred = 0
    for name, labels in ref.items():
        gt, d_ref = mapped(labels)
        q, d_pred = mapped(pred.get(name, []))
        dropped_ref += d_ref
        dropped_pred += d_pred
        if not gt:
            skipped += 1
            continue
        p, r = set_precision_recall(gt, q)
        ps.append(p)
        rs.append(r)
    mp = float(np.mean(ps)) if ps else float("nan")
    mr = float(np.mean(rs)) if rs else float("nan")
    return {"precision": mp, "recall": mr, "fscore": fscore(mp, mr) if ps else float("nan"), "n": len(ps),
            "skipped_empty_ref": skipped, "dropped_ref": dropped_ref, "dropped_pred": dropped_pred}


def _mean_fpr(results: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Mean over wheels of (F, P, R), as the published ``np.mean(whole_scores, axis=0)``."""
    f, p, r = np.mean([[w["fscore"], w["precision"], w["recall"]] for w in results], axis=0).tolist()
    return {"fscore": f, "precision": p, "recall": r}


def ovmer_wheel(
    pred: Mapping[str, Any], ref: Mapping[str, Any], wheel: EmotionWheel | WheelFolder | str | Path,
    level: str = "level1", *, parse: str = "published",
) -> dict[str, Any]:
    """Emotion-wheel OV-MER of ``{name: labels}`` predictions against references at one ``level``.

    ``wheel``: a published ``emotion_wheel`` folder, a hand-made mapping file, or either loaded. Returns
    ``{"fscore", "precision", "recall"}`` (means over wheels; for the published folder this is AffectGPT's
    ``wheel_metric_calculation(level=...)``), ``"level"`` and ``"wheels": {name: per-wheel scores}``.
    """
    wheels = load_wheels(wheel)
    p_lists, r_lists = label_lists(pred, parse, "prediction"), label_lists(ref, parse, "reference")
    per_wheel = {name: score_variant(p_lists, r_lists, norm) for name, norm in normalisers(wheels, level).items()}
    return {**_mean_fpr(list(per_wheel.values())), "level": level, "wheels": per_wheel}


def ovmer_wheel_published(
    pred: Mapping[str, Any], ref: Mapping[str, Any], folder: WheelFolder | str | Path, *, parse: str = "published",
) -> dict[str, Any]:
    """Every published EW variant and aggregate of ``{name: labels}`` predictions against references.

    Returns ``{"variants": {name: score_variant(...)}, "level1": {"fscore", "precision", "recall"}, "level2": ...,
    "mer2025", "wheels", "samples", "missing_pred", "not_in_format": {"ref", "pred"}}``. ``not_in_format`` counts
    the (sample, label) pairs every variant drops because the word form is not in ``format.csv``; each variant's
    ``dropped_ref`` / ``dropped_pred`` add, for ``case3``, the labels none of whose wheel words is on that wheel.
    (No label is on no wheel at all: every synonym-table word is a wheel word, which the reader checks.)
    """
    folder = folder if isinstance(folder, WheelFolder) else load_wheel_folder(folder)
    p_lists, r_lists = label_lists(pred, parse, "prediction"), label_lists(ref, parse, "reference")
    variants = {v: score_variant(p_lists, r_lists, partial(folder.normalise, variant=v)) for v in folder.variants}

    def not_in_format(lists: Mapping[str, list[str]]) -> int:
        return sum(w not in folder.forms for n in ref for w in lists.get(n, []))

    out: dict[str, Any] = {"variants": variants}
    for level in LEVELS:
        out[level] = _mean_fpr([variants[f"case3_{w}_{level}"] for w in folder.wheels])
    out["mer2025"] = float(np.mean([out["level1"]["fscore"], out["level2"]["fscore"]]))
    out.update(wheels=list(folder.wheels), samples=len(ref), missing_pred=sum(n not in pred for n in ref),
               not_in_format={"ref": not_in_format(r_lists), "pred": not_in_format(p_lists)})
    return out


def ew_level1(pred: Mapping[str, Any], ref: Mapping[str, Any], wheels: EmotionWheel | WheelFolder | str | Path,
              parse: str = "published") -> dict[str, Any]:
    """The level-1 EW figure (F, P, R averaged over wheels, and the samples each wheel kept) for reports."""
    res = ovmer_wheel(pred, ref, wheels, "level1", parse=parse)
    return {k: res[k] for k in ("fscore", "precision", "recall")} | {
        "n": {name: w["n"] for name, w in res["wheels"].items()}}


@register("metric", "ovmer_wheel")
class OVMERWheel(Metric):
    """Emotion-wheel OV-MER as a torchmetrics Metric.

    Args:
        wheel: AffectGPT's published ``emotion_wheel`` folder, a hand-made mapping file (see
            :mod:`xemogpt.metrics.ovmer_wheel`), or either loaded.
        level: ``level1`` (inner ring) or ``level2`` (middle ring).
        parse: how label strings are split, ``"published"`` or ``"literal"`` (:mod:`xemogpt.metrics.labels_io`).

    ``update(preds, refs)`` takes aligned label lists; ``compute()`` returns ``{"fscore", "precision",
    "recall"}`` averaged over wheels (F = 0 where P + R = 0; NaN for a wheel that kept no sample).
    """

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(self, wheel: str | Path | EmotionWheel | WheelFolder, level: str = "level1",
                 parse: str = "published", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.wheel = load_wheels(wheel)
        self.level = level
        self.parse = parse
        self._norms = list(normalisers(self.wheel, level).values())
        k = len(self._norms)
        self.add_state("precision_sum", default=torch.zeros(k, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("recall_sum", default=torch.zeros(k, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("n", default=torch.zeros(k, dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, preds: Sequence[Any], refs: Sequence[Any]) -> None:
        if len(preds) != len(refs):
            raise ValueError(f"OVMERWheel.update: {len(preds)} predictions for {len(refs)} references")
        keys = [str(i) for i in range(len(refs))]
        p_lists = label_lists(dict(zip(keys, preds)), self.parse, "preds")
        r_lists = label_lists(dict(zip(keys, refs)), self.parse, "refs")
        for j, norm in enumerate(self._norms):
            for key, labels in r_lists.items():
                gt = {m for m in map(norm, labels) if m}
                if not gt:
                    continue
                p, r = set_precision_recall(gt, {m for m in map(norm, p_lists[key]) if m})
                self.precision_sum[j] += p
                self.recall_sum[j] += r
                self.n[j] += 1

    def compute(self) -> dict[str, torch.Tensor]:
        n = self.n.to(torch.float64)
        p, r = self.precision_sum / n, self.recall_sum / n  # NaN for a wheel with no scored sample
        f = torch.where(p + r > 0, 2 * p * r / (p + r), torch.zeros_like(p))
        f = torch.where(n > 0, f, torch.full_like(f, float("nan")))
        return {"fscore": f.mean(), "precision": p.mean(), "recall": r.mean()}
