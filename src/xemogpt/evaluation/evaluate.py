"""Evaluate a model on a split: batched generation, cue extraction, every applicable metric, two baselines.

Metrics (all written to ``metrics.json`` and ``report.md``):

- ``emotion_accuracy``: the emotion the generated description concludes (first/last emotion word, see
  :func:`emotion_from_text`) against the label;
- ``cues_reproduced``: per modality, the fraction of reference cue ids (synthetic data carries canonical ids) that
  the generated description states, and ``cue_precision``, the fraction of stated cues that are in the reference;
- ``emocue360``: EmoCue-360 P/R/F1 per modality (predicted cues from the chosen cue extractor, reference cues from
  the manifest).

Baselines beside the model: ``majority`` (every sample gets a typical training description of the most frequent
training emotion) and ``shuffled`` (the model's own predictions shuffled across samples).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from xemogpt.data.schema import EmoCueSample

MODALITIES = ("visual", "auditory", "emotional")


def emotion_vocabulary(samples: list[EmoCueSample]) -> tuple[str, ...]:
    from xemogpt.data.synth.cues import EMOTIONS

    found = {s.emotion for s in samples if s.emotion}
    return tuple(sorted(found | set(EMOTIONS)))


def generate_predictions(model, dm, split: str = "test", batch_size: int = 32, **gen: Any) -> list[dict[str, Any]]:
    """Generate a description for every sample of ``split`` -> records {id, prediction, reference, emotion}."""
    from tqdm.auto import tqdm

    loader = dm._loader(split, shuffle=False, batch_size=batch_size)
    records: list[dict[str, Any]] = []
    model.eval()
    for batch in tqdm(loader, desc=f"generating ({split})", unit="batch", leave=False):
        if batch.get("skipped"):
            dm.note_skipped(batch["skipped"])
        if not batch["ids"]:
            continue
        batch = {k: (v.to(model.device) if hasattr(v, "to") else v) for k, v in batch.items()}
        preds = model.generate(batch, **gen)
        for s, p in zip(batch["samples"], preds):
            records.append({"id": s.id, "prediction": p, "reference": s.description, "emotion": s.emotion,
                            "subtitle": s.subtitle})
    return records


def cue_reproduction(samples: list[EmoCueSample], texts: list[str]) -> dict[str, dict[str, float]] | None:
    """Micro-averaged fraction of reference cue ids stated by each text (None when samples carry no ids)."""
    if not any(s.cue_ids for s in samples):
        return None
    from xemogpt.data.synth.cues import parse_description

    out = {}
    for m in MODALITIES:
        hit = ref_total = pred_total = pred_hit = 0
        for s, t in zip(samples, texts):
            ref = set(s.cue_ids.get(m, []))
            got = set(parse_description(t).get(m, []))
            hit += len(ref & got)
            ref_total += len(ref)
            pred_total += len(got)
            pred_hit += len(got & ref)
        out[m] = {"reproduced": hit / ref_total if ref_total else 0.0,
                  "precision": pred_hit / pred_total if pred_total else 0.0, "n_ref": ref_total}
    return out


def score_texts(samples: list[EmoCueSample], texts: list[str], extractor, encoder=None,
                pred_cues: list[dict[str, list[str]]] | None = None) -> dict[str, Any]:
    """Every metric of ``texts`` (one generated description per sample) against the samples' annotations."""
    from xemogpt.data.synth.cues import emotion_from_text
    from xemogpt.metrics.emocue360 import emocue360

    vocab = emotion_vocabulary(samples)
    labelled = [(s, t) for s, t in zip(samples, texts) if s.emotion]
    acc = float(np.mean([emotion_from_text(t, vocab) == s.emotion for s, t in labelled])) if labelled else None
    pred_cues = pred_cues if pred_cues is not None else extractor.extract(texts)
    pred = {s.id: c for s, c in zip(samples, pred_cues)}
    ref = {s.id: {m: list(s.cues.get(m, [])) for m in MODALITIES} for s in samples}
    ec = emocue360(pred, ref, encoder=encoder)
    return {
        "emotion_accuracy": acc,
        "cues": cue_reproduction(samples, texts),
        "emocue360": {m: {k: ec[m][k] for k in ("precision", "recall", "f1", "n")} for m in MODALITIES},
        "n": len(samples),
    }


def majority_texts(train: list[EmoCueSample], n: int) -> list[str]:
    """The majority-class baseline: the most typical training description of the most frequent emotion."""
    emotion = Counter(s.emotion for s in train if s.emotion).most_common(1)[0][0]
    pool = [s for s in train if s.emotion == emotion]
    key = Counter(json.dumps(s.cue_ids, sort_keys=True) for s in pool).most_common(1)[0][0]
    typical = next(s for s in pool if json.dumps(s.cue_ids, sort_keys=True) == key)
    return [typical.description] * n


def shuffled(texts: list[str], seed: int = 0) -> list[str]:
    """A derangement of ``texts``: no sample keeps its own prediction."""
    n = len(texts)
    if n < 2:
        return list(texts)
    order = list(range(n))
    random.Random(seed).shuffle(order)
    out = [""] * n
    for k in range(n):
        out[order[k]] = texts[order[(k + 1) % n]]
    return out


def evaluate_model(model, dm, out_dir: str | Path, split: str = "test", extractor: str = "offline",
                   batch_size: int = 32, baselines: bool = True, **gen: Any) -> dict[str, Any]:
    """Generate for ``split``, score everything, write predictions.jsonl, metrics.json and report.md."""
    from xemogpt import registry
    from xemogpt.evaluation.report import write_report

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    records = generate_predictions(model, dm, split, batch_size, **gen)
    by_id = {s.id: s for s in dm.samples}
    samples = [by_id[r["id"]] for r in records]
    texts = [r["prediction"] for r in records]
    ext = registry.build("cue_extractor", extractor, "eval.extractor") if isinstance(extractor, str) else extractor
    pred_cues = ext.extract(texts)
    with open(out_dir / "predictions.jsonl", "w", encoding="utf-8") as f:
        for r, c in zip(records, pred_cues):
            f.write(json.dumps({**r, "cues": c}, ensure_ascii=False) + "\n")
    results: dict[str, Any] = {"split": split, "extractor": extractor if isinstance(extractor, str) else type(ext).__name__,
                               "model": score_texts(samples, texts, ext, pred_cues=pred_cues)}
    if baselines and samples:
        train = dm.split_samples("train")
        results["majority"] = score_texts(samples, majority_texts(train, len(samples)), ext)
        results["shuffled"] = score_texts(samples, shuffled(texts), ext)
    results["skipped"] = dm.skips.counts()
    (out_dir / "metrics.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    write_report(results, records, out_dir / "report.md")
    return results
