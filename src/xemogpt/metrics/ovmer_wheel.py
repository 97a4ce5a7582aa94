"""OV-MER with emotion-wheel grouping (AffectGPT's EW metrics), from a user-supplied wheel mapping file.

AffectGPT clusters every open-vocabulary label onto an emotion wheel before the set overlap: a label is mapped
to its wheel words (through a synonym table), the first of those (in sorted order) that the wheel knows is
replaced by its cluster centre — the inner-ring word for ``level1``, the middle-ring word for ``level2`` (an
inner-ring word goes to its alphabetically first child) — and labels the wheel does not know are dropped. Per
wheel, precision / recall are the OV-MER set scores averaged over samples whose mapped reference is not empty,
F = 2PR / (P + R); the reported numbers are the mean of (F, P, R) over wheels.

The wheel mapping file (JSON or YAML) is one of:

* ``{"wheels": {NAME: {level1: {level2: [level3, ...]}}}, "synonyms": {word: [wheel word, ...]}}`` (``synonyms``
  optional; several wheels are averaged);
* a single wheel ``{level1: {level2: [level3, ...]}}``;
* a flat ``{label: group}`` mapping (one wheel whose groups are final; ``level`` is ignored);

or a CSV with columns ``level1,level2,level3`` (optional ``wheel``; an empty cell repeats the row above, as in
the AffectGPT spreadsheets) or ``label,group`` (flat). Every word is lower-cased and stripped.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchmetrics import Metric

from xemogpt.metrics.labels_io import LabelFormatError, parse_label_list
from xemogpt.metrics.ovmer import fscore, set_precision_recall
from xemogpt.registry import register

LEVELS = ("level1", "level2")
Hierarchy = dict[str, dict[str, list[str]]]


def _norm(word: Any) -> str:
    return str(word).lower().strip()


@dataclass
class EmotionWheel:
    """Emotion wheels (inner ring -> middle ring -> outer words) or flat label groups, plus synonyms."""

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
        wheel = self.wheels[name]
        out: dict[str, str] = {}
        for l1, middle in wheel.items():
            if level == "level1":
                out[l1] = l1
                for l2, outer in middle.items():
                    out[l2] = l1
                    out.update({w: l1 for w in outer})
            else:
                out[l1] = sorted(middle)[0] if middle else l1
                for l2, outer in middle.items():
                    out[l2] = l2
                    out.update({w: l2 for w in outer})
        return out

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
    """Read a wheel mapping file (``.json``, ``.yaml``/``.yml`` or ``.csv``; layouts in the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"wheel mapping file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _from_csv(path)
    text = path.read_text(encoding="utf-8")
    if suffix in (".yaml", ".yml"):
        import yaml

        obj = yaml.safe_load(text)
    elif suffix == ".json":
        obj = json.loads(text)
    else:
        raise LabelFormatError(f"{path}: unknown wheel file type {suffix!r}; use .json, .yaml or .csv")
    return _from_mapping(obj, path.stem, str(path))


def _map_set(ew: EmotionWheel, labels: Any, clusters: Mapping[str, str], where: str) -> set[str]:
    return {c for c in (ew.map_label(x, clusters) for x in parse_label_list(labels, where)) if c is not None}


def ovmer_wheel(
    pred: Mapping[str, Any], ref: Mapping[str, Any], wheel: EmotionWheel | str | Path, level: str = "level1"
) -> dict[str, Any]:
    """Emotion-wheel OV-MER of ``{name: labels}`` predictions against references.

    Returns ``{"fscore", "precision", "recall"}`` (means over wheels) and ``"wheels": {name: {"fscore",
    "precision", "recall", "n"}}``; a reference sample with no label on a wheel is skipped for that wheel, a
    missing prediction scores 0.
    """
    ew = wheel if isinstance(wheel, EmotionWheel) else load_wheel(wheel)
    per_wheel: dict[str, dict[str, Any]] = {}
    for name in ew.names:
        clusters = ew.cluster_map(name, level)
        ps, rs = [], []
        for sample, ref_labels in ref.items():
            gt = _map_set(ew, ref_labels, clusters, f"reference {sample!r}")
            if not gt:
                continue
            p, r = set_precision_recall(gt, _map_set(ew, pred.get(sample), clusters, f"prediction {sample!r}"))
            ps.append(p)
            rs.append(r)
        mp = float(np.mean(ps)) if ps else float("nan")
        mr = float(np.mean(rs)) if rs else float("nan")
        per_wheel[name] = {"fscore": fscore(mp, mr) if ps else float("nan"), "precision": mp, "recall": mr,
                           "n": len(ps)}
    scores = np.array([[w["fscore"], w["precision"], w["recall"]] for w in per_wheel.values()], dtype=np.float64)
    f, p, r = scores.mean(axis=0).tolist()
    return {"fscore": f, "precision": p, "recall": r, "level": level, "wheels": per_wheel}


@register("metric", "ovmer_wheel")
class OVMERWheel(Metric):
    """Emotion-wheel OV-MER as a torchmetrics Metric.

    Args:
        wheel: path of a wheel mapping file (see :mod:`xemogpt.metrics.ovmer_wheel`) or an :class:`EmotionWheel`.
        level: ``level1`` (inner ring) or ``level2`` (middle ring).

    ``update(preds, refs)`` takes aligned label lists; ``compute()`` returns ``{"fscore", "precision",
    "recall"}`` averaged over wheels.
    """

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(self, wheel: str | EmotionWheel, level: str = "level1", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.wheel = wheel if isinstance(wheel, EmotionWheel) else load_wheel(wheel)
        self.level = level
        self._clusters = [self.wheel.cluster_map(n, level) for n in self.wheel.names]
        k = len(self._clusters)
        self.add_state("precision_sum", default=torch.zeros(k, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("recall_sum", default=torch.zeros(k, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("n", default=torch.zeros(k, dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, preds: Sequence[Any], refs: Sequence[Any]) -> None:
        if len(preds) != len(refs):
            raise ValueError(f"OVMERWheel.update: {len(preds)} predictions for {len(refs)} references")
        for j, clusters in enumerate(self._clusters):
            for i, (q, g) in enumerate(zip(preds, refs)):
                gt = _map_set(self.wheel, g, clusters, f"refs[{i}]")
                if not gt:
                    continue
                p, r = set_precision_recall(gt, _map_set(self.wheel, q, clusters, f"preds[{i}]"))
                self.precision_sum[j] += p
                self.recall_sum[j] += r
                self.n[j] += 1

    def compute(self) -> dict[str, torch.Tensor]:
        n = self.n.to(torch.float64)
        p, r = self.precision_sum / n, self.recall_sum / n  # NaN for a wheel with no scored sample
        f = torch.where(p + r > 0, 2 * p * r / (p + r), torch.zeros_like(p))
        f = torch.where(n > 0, f, torch.full_like(f, float("nan")))
        return {"fscore": f.mean(), "precision": p.mean(), "recall": r.mean()}
