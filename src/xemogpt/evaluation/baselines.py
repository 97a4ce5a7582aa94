"""Baselines beside the model, each built from what it needs or skipped with a one-line reason.

- ``majority``: every sample gets a typical description of the most frequent emotion of the data the model was
  trained on: the train split of the run's own ``data.root``, never the evaluated set's (a benchmark such as EMER
  has no train split and no labels). It needs that data to be reachable and to carry emotion labels.
- ``shuffled``: the model's own predictions shuffled across samples; it needs only two or more predictions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xemogpt.data.schema import MANIFEST, EmoCueSample


@dataclass
class TrainingData:
    """The train split the model saw, or why it is not available.

    Attributes:
        samples: the train-split samples; None when the data could not be read.
        where: the dataset it came from (for the report).
        note: why ``samples`` is None.
    """

    samples: list[EmoCueSample] | None
    where: str
    note: str | None = None


def run_training_data(recipe: Mapping[str, Any]) -> TrainingData:
    """The train split of a run's own training data (its recipe's ``data.root``; a relative root is read from the
    current folder, as the training command did). A root that is gone (a run moved to another machine, a deleted
    data folder) or unreadable gives ``samples=None`` and the reason."""
    from xemogpt.data.schema import SchemaError, read_manifest
    from xemogpt.data.streaming import is_remote, read_pack_samples

    data = recipe.get("data") or {}
    root = data.get("root")
    if not root:
        return TrainingData(None, "?", "the run's recipe names no data.root")
    where = str(root)
    try:
        if is_remote(root):
            samples = read_pack_samples(root, data.get("storage_options"))
        elif (Path(root) / MANIFEST).is_file():
            samples = read_manifest(root, on_problem=_ignore)
        else:
            return TrainingData(None, where, f"the run's training data {where} is not reachable from here (no "
                                "manifest.jsonl; moved or deleted)")
    except (OSError, SchemaError, ValueError) as e:
        return TrainingData(None, where, f"the run's training data {where} could not be read ({e})")
    return TrainingData([s for s in samples if s.split == "train"], where)


def _ignore(sample_id: str, reason: str, detail: str, skipped: bool) -> None:
    """Bad manifest records only cost the baseline those records; the training run reported them already."""


def majority_baseline(training: TrainingData, n: int) -> tuple[list[str] | None, str | None]:
    """(``n`` copies of the majority description, None) or (None, why the baseline is skipped)."""
    from xemogpt.evaluation.evaluate import majority_texts

    if training.samples is None:
        return None, training.note
    if not training.samples:
        return None, f"the model's training data {training.where} has no train split"
    labelled = [s for s in training.samples if s.emotion and s.description]
    if not labelled:
        return None, f"the train split of {training.where} has no emotion labels with descriptions"
    return majority_texts(labelled, n), None


def shuffled_baseline(texts: list[str], seed: int = 0) -> tuple[list[str] | None, str | None]:
    """(the predictions deranged across samples, None) or (None, why the baseline is skipped)."""
    from xemogpt.evaluation.evaluate import shuffled

    if len(texts) < 2:
        return None, f"needs at least two predictions, got {len(texts)}"
    return shuffled(texts, seed), None
