"""Discrete emotion metrics for classic label sets (MER, MELD, IEMOCAP...): accuracy, weighted F1, UAR, WAR.

All computed by torchmetrics:

* accuracy = WAR (weighted average recall: per-class recall weighted by class support, which is the share of
  correct predictions);
* weighted F1 = per-class F1 weighted by reference support (scikit-learn's ``average="weighted"``);
* UAR = unweighted average recall over the classes that occur in the references (balanced accuracy); a class
  that is only ever predicted does not enter the average.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score, MulticlassStatScores
from torchmetrics.functional.classification import multiclass_accuracy, multiclass_f1_score, multiclass_stat_scores

from xemogpt.registry import register


@register("metric", "uar")
class UnweightedAverageRecall(MulticlassStatScores):
    """Unweighted average recall (UAR): the mean recall over the classes present in the targets.

    preds/target: (N,) class ids or (N, C).
    """

    higher_is_better = True

    def __init__(self, num_classes: int, **kwargs: Any) -> None:
        kwargs.setdefault("average", None)
        super().__init__(num_classes=num_classes, **kwargs)

    def compute(self) -> torch.Tensor:
        tp, _fp, _tn, fn = self._final_state()
        return _uar(tp, fn)


def _uar(tp: torch.Tensor, fn: torch.Tensor) -> torch.Tensor:
    support = tp + fn
    present = support > 0
    if not present.any():
        return torch.tensor(float("nan"))
    return (tp[present].float() / support[present].float()).mean()


@register("metric", "accuracy")
def accuracy(num_classes: int, **kwargs: Any) -> MulticlassAccuracy:
    """Share of correct predictions (micro accuracy)."""
    return MulticlassAccuracy(num_classes=num_classes, average="micro", **kwargs)


@register("metric", "war")
def war(num_classes: int, **kwargs: Any) -> MulticlassAccuracy:
    """WAR, weighted average recall; equal to accuracy by definition."""
    return MulticlassAccuracy(num_classes=num_classes, average="micro", **kwargs)


@register("metric", "weighted-f1", aliases=("weighted_f1",))
def weighted_f1(num_classes: int, **kwargs: Any) -> MulticlassF1Score:
    """Per-class F1 weighted by reference support."""
    return MulticlassF1Score(num_classes=num_classes, average="weighted", **kwargs)


def discrete_scores(
    preds: Sequence[Any], refs: Sequence[Any], labels: Sequence[str] | None = None
) -> dict[str, Any]:
    """Accuracy, weighted F1, UAR and WAR of predicted against reference labels (strings or ints).

    Args:
        preds, refs: aligned label sequences. Strings are lower-cased and stripped.
        labels: the class list; None uses every label seen in ``refs`` then ``preds`` (sorted). A prediction
            outside ``labels`` counts as wrong.

    Returns:
        ``{"accuracy", "weighted_f1", "uar", "war", "n", "labels"}``.
    """
    if len(preds) != len(refs):
        raise ValueError(f"discrete_scores: {len(preds)} predictions for {len(refs)} references; align them by name")

    def norm(x: Any) -> str:
        return str(x).lower().strip()

    p_str, r_str = [norm(x) for x in preds], [norm(x) for x in refs]
    classes = [norm(c) for c in labels] if labels is not None else sorted(set(r_str) | set(p_str))
    unknown = sorted(set(r_str) - set(classes))
    if unknown:
        raise ValueError(f"reference labels {unknown[:5]} are not in the class list {classes}")
    index = {c: i for i, c in enumerate(classes)}
    k = len(classes) + 1  # an extra "other" class for predictions outside the list
    target = torch.tensor([index[x] for x in r_str], dtype=torch.long)
    pred = torch.tensor([index.get(x, k - 1) for x in p_str], dtype=torch.long)
    if len(target) == 0:
        nan = float("nan")
        return {"accuracy": nan, "weighted_f1": nan, "uar": nan, "war": nan, "n": 0, "labels": classes}
    acc = multiclass_accuracy(pred, target, num_classes=k, average="micro").item()
    wf1 = multiclass_f1_score(pred, target, num_classes=k, average="weighted").item()
    stats = multiclass_stat_scores(pred, target, num_classes=k, average=None)  # (k, 5): tp, fp, tn, fn, support
    uar = _uar(stats[:, 0], stats[:, 3]).item()
    return {"accuracy": acc, "weighted_f1": wf1, "uar": uar, "war": acc, "n": len(target), "labels": classes}
