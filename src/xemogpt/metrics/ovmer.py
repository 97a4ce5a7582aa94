"""OV-MER (MER2024 open-vocabulary emotion recognition): set-level precision and recall of label sets.

Definition (DESIGN.md and MER2024's ``main-ov.py``): per sample, reference labels G and predicted labels Q are
lower-cased and mapped through that sample's synonym groups (every word of a group maps to the group's first
word; a word in several groups takes its last group), then

    precision = |G ∩ Q| / |Q|,   recall = |G ∩ Q| / |G|   (an empty Q scores 0, 0),

averaged over samples; the published summary is ``avg = (precision + recall) / 2`` (AffectGPT reports the
F-score ``2PR / (P + R)``; both are returned). Group words are used as written (the published files are already
lower-case), labels are lower-cased and stripped.

Label lists and synonym groups given as strings are split as the published code splits them (``parse=
"published"``, the default: ``"don't believe"`` becomes ``don`` and ``t believe``, exactly as the published synonym
files were built, so MER2024's published OV store gives its published P 0.581777108433735 / R 0.4977911646586345);
``parse="literal"`` reads them apostrophe-aware (see :mod:`xemogpt.metrics.labels_io`).

The empty-prediction rule comes first, as in the published loop: a sample whose (mapped) prediction is empty
scores 0, 0 and is counted even when its reference is empty too.

Decisions where the published script would crash, reported in the counts: reference samples are the ones scored;
a reference without a prediction scores 0, 0 (``missing_pred``); a sample with no reference label but a non-empty
prediction is skipped (its recall would divide by zero; ``skipped_empty_ref``); a sample without a synonym file
uses its labels as they are (``no_synonyms``; the published script would leave it out, but its synonym zip has a
file for every reference sample, so the published numbers are the same).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torchmetrics import Metric

from xemogpt.metrics.labels_io import parse_groups, parse_label_list
from xemogpt.registry import register

Groups = Sequence[Sequence[str]]


def synonym_map(groups: Groups) -> dict[str, str]:
    """Every word of a group -> the group's first word (later groups win, as in the published script)."""
    out: dict[str, str] = {}
    for group in groups:
        if group:
            for word in group:
                out[word] = group[0]
    return out


def map_labels(labels: Any, mapping: Mapping[str, str], where: str = "labels", parse: str = "published") -> set[str]:
    """Lower-case, strip and map labels to their synonym group; returns the label set."""
    return {mapping.get(w, w) for w in (lab.lower().strip() for lab in parse_label_list(labels, where, parse)) if w}


def set_precision_recall(gt: set[str], pred: set[str]) -> tuple[float, float]:
    """One sample's (precision, recall); an empty prediction scores (0, 0) whatever ``gt`` is; otherwise ``gt``
    must not be empty."""
    if not pred:
        return 0.0, 0.0
    hit = len(gt & pred)
    return hit / len(pred), hit / len(gt)


def fscore(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def ovmer(
    pred: Mapping[str, Any],
    ref: Mapping[str, Any],
    synonyms: Mapping[str, Any] | None = None,
    *,
    per_sample: bool = False,
    parse: str = "published",
) -> dict[str, Any]:
    """OV-MER of ``{name: labels}`` predictions against ``{name: labels}`` references.

    Args:
        pred: labels per sample (a list, or a list string as in the published CSV).
        ref: reference labels per sample; these samples are scored.
        synonyms: per-sample synonym groups ``{name: [[word, ...], ...]}`` (or their list strings); None maps
            nothing.
        per_sample: also return each sample's precision and recall.
        parse: how label and group strings are split, ``"published"`` or ``"literal"`` (module docstring).

    Returns:
        ``{"precision", "recall", "avg", "fscore", "n", "skipped_empty_ref", "missing_pred", "no_synonyms"}``
        (precision is what MER2024 prints as "set level accuracy").
    """
    precisions, recalls, rows = [], [], {}
    skipped = missing = no_syn = 0
    for name, ref_labels in ref.items():
        groups: Any = []
        if synonyms is not None:
            if name in synonyms:
                groups = synonyms[name]
            else:
                no_syn += 1
        mapping = synonym_map(parse_groups(groups, f"synonyms of {name!r}", parse) if groups else [])
        gt = map_labels(ref_labels, mapping, f"reference {name!r}", parse)
        q = map_labels(pred.get(name), mapping, f"prediction {name!r}", parse)
        if not gt and q:  # recall undefined (the published script raises ZeroDivisionError here)
            skipped += 1
            continue
        if name not in pred:
            missing += 1
        p, r = set_precision_recall(gt, q)
        precisions.append(p)
        recalls.append(r)
        rows[name] = {"precision": p, "recall": r}
    n = len(precisions)
    mp = float(np.mean(precisions)) if n else float("nan")
    mr = float(np.mean(recalls)) if n else float("nan")
    out: dict[str, Any] = {
        "precision": mp,
        "recall": mr,
        "avg": float(np.mean([mp, mr])),
        "fscore": fscore(mp, mr) if n else float("nan"),
        "n": n,
        "skipped_empty_ref": skipped,
        "missing_pred": missing,
        "no_synonyms": no_syn,
    }
    if per_sample:
        out["per_sample"] = rows
    return out


@register("metric", "ovmer")
class OVMER(Metric):
    """OV-MER as a torchmetrics Metric.

    ``update(preds, refs, synonyms=None)`` takes aligned lists: label lists (or list strings) per sample and
    optionally each sample's synonym groups. ``compute()`` returns ``{"precision", "recall", "avg", "fscore",
    "n"}`` as 0-d tensors (NaN before any scored sample). ``parse``: how strings are split (module docstring).
    """

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(self, parse: str = "published", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.parse = parse
        self.add_state("precision_sum", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("recall_sum", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("n", default=torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("skipped", default=torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, preds: Sequence[Any], refs: Sequence[Any], synonyms: Sequence[Any] | None = None) -> None:
        if len(preds) != len(refs) or (synonyms is not None and len(synonyms) != len(refs)):
            raise ValueError(f"OVMER.update: got {len(preds)} predictions, {len(refs)} references"
                             + (f" and {len(synonyms)} synonym entries" if synonyms is not None else "")
                             + "; they must be aligned one per sample")
        for i, (q, g) in enumerate(zip(preds, refs)):
            groups = parse_groups(synonyms[i], f"synonyms[{i}]", self.parse) if synonyms is not None else []
            mapping = synonym_map(groups)
            gt = map_labels(g, mapping, f"refs[{i}]", self.parse)
            q_set = map_labels(q, mapping, f"preds[{i}]", self.parse)
            if not gt and q_set:  # recall undefined; an empty prediction scores 0, 0 and is counted
                self.skipped += 1
                continue
            p, r = set_precision_recall(gt, q_set)
            self.precision_sum += p
            self.recall_sum += r
            self.n += 1

    def compute(self) -> dict[str, torch.Tensor]:
        if self.n == 0:
            nan = torch.tensor(float("nan"), dtype=torch.float64)
            return {"precision": nan, "recall": nan, "avg": nan, "fscore": nan, "n": self.n.clone()}
        p, r = self.precision_sum / self.n, self.recall_sum / self.n
        f = 2 * p * r / (p + r) if (p + r) > 0 else torch.zeros((), dtype=torch.float64)
        return {"precision": p, "recall": r, "avg": (p + r) / 2, "fscore": f, "n": self.n.clone()}
