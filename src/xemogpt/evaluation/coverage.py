"""What an evaluated set allows: which splits to read, which metrics its annotations support, what inputs it has.

A benchmark the model was not trained on often lacks something (EMER has descriptions but no emotion labels; a
user's test set may have no subtitles or no audio). Evaluation never fails for that: each metric that needs a
missing annotation is left out, and :func:`not_reported` says which and why for the report.
"""

from __future__ import annotations

from typing import Any

from xemogpt.data.schema import MODALITIES, SPLITS, EmoCueSample
from xemogpt.errors import XemoGPTError

ALL = "all"


class EvaluationError(XemoGPTError, ValueError):
    """Nothing can be evaluated as asked (e.g. an empty split); the message says what the data holds instead."""


def eval_splits(split: str) -> tuple[str, ...]:
    """The manifest splits one evaluation reads: ``"all"`` -> every split, else the split itself."""
    if split == ALL:
        return SPLITS
    if split not in SPLITS:
        raise EvaluationError(f"unknown split {split!r}; use one of {', '.join(SPLITS)} or {ALL}")
    return (split,)


def split_counts(samples: list[EmoCueSample]) -> dict[str, int]:
    return {sp: sum(s.split == sp for s in samples) for sp in SPLITS}


def check_split(samples: list[EmoCueSample], split: str, where: str) -> None:
    """Raise :class:`EvaluationError` when ``split`` of ``where`` holds no sample, naming the splits that do."""
    counts = split_counts(samples)
    if sum(counts[sp] for sp in eval_splits(split)) == 0:
        held = ", ".join(f"{sp} {n}" for sp, n in counts.items())
        raise EvaluationError(f"{where} has no sample in the {split} split ({held}); pass --split all, or the split "
                              "that holds the samples")


def not_reported(samples: list[EmoCueSample], model: dict[str, Any]) -> dict[str, str]:
    """{metric: why it is left out} for every metric the evaluated ``samples`` cannot support.

    ``model`` is the model's :func:`~xemogpt.evaluation.evaluate.score_texts` result (EmoCue-360 counts per
    modality the samples that have reference cues).
    """
    out: dict[str, str] = {}
    if not samples:
        return {"every metric": "no sample was evaluated (see the skipped samples)"}
    if not any(s.emotion for s in samples):
        out["emotion accuracy, weighted F1, UAR, WAR"] = "the evaluated samples carry no emotion labels"
    if not any(s.cue_ids for s in samples):
        out["cues reproduced, cue precision"] = "the samples carry no canonical cue ids (only generated clips do)"
    if not any(s.labels for s in samples):
        out["OV-MER"] = "the samples carry no open-vocabulary labels"
    for m in MODALITIES:
        if not (model.get("emocue360") or {}).get(m, {}).get("n"):
            why = "no sample has a reference auditory cue that is not about the text" if m == "auditory" else \
                f"no sample has a reference {m} cue"
            out[f"EmoCue-360 {m}"] = why
    return out


def input_counts(samples: list[EmoCueSample]) -> dict[str, int]:
    """How many evaluated samples lack each input the model reads (the model runs without it)."""
    return {
        "no_video": sum(s.video is None for s in samples),
        "no_audio": sum(s.audio is None and (s.video is None or s.meta.get("has_audio") is False) for s in samples),
        "no_subtitle": sum(not (s.subtitle or "").strip() for s in samples),
    }


def input_note(counts: dict[str, int], n: int) -> str | None:
    """``"without subtitle: 332 of 332"`` style line, or None when every sample has every input."""
    parts = [f"without {k[3:]}: {v} of {n}" for k, v in counts.items() if v]
    return "; ".join(parts) if parts else None
