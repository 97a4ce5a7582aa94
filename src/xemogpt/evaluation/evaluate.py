"""Evaluate a model on a split: batched generation, cue extraction, every applicable metric, two baselines.

Metrics (all written to ``metrics.json`` and ``report.md``):

- ``emotion_accuracy``: the emotion the generated description concludes (first/last emotion word, see
  :func:`emotion_from_text`) against the label;
- ``cues_reproduced``: per modality, the fraction of reference cue ids (synthetic data carries canonical ids) that
  the generated description states, and ``cue_precision``, the fraction of stated cues that are in the reference;
- ``emocue360``: EmoCue-360 P/R/F1 per modality (predicted cues from the chosen cue extractor, reference cues from
  the manifest);
- ``discrete``: discrete ``accuracy``, ``weighted_f1``, ``uar`` and ``war`` (torchmetrics, through
  :func:`xemogpt.metrics.discrete.discrete_scores`) of the concluded emotion against the label, over the labelled
  samples (a description that names no emotion counts as wrong);
- ``ovmer``: OV-MER ``precision`` / ``recall`` / ``avg`` of the open-vocabulary label set the description names
  (every label of the evaluation vocabulary it mentions, in any word form the emotion table knows, leaving out
  sentences about what is said unless nothing else names one) against the samples' ``labels``, no synonym groups;
  with ``eval.wheels`` (AffectGPT's published ``emotion_wheel`` folder, or a wheel mapping file) also
  ``ovmer.ew_level1``, the level-1 emotion-wheel F / P / R of the same label sets
  (:func:`xemogpt.metrics.ovmer_wheel.ew_level1`).

Baselines beside the model: ``majority`` (every sample gets a typical training description of the most frequent
emotion of the model's own training data) and ``shuffled`` (the model's own predictions shuffled across samples);
see :mod:`xemogpt.evaluation.baselines`. Whatever the evaluated data lacks (labels, cue ids, reference cues of a
modality, the model's training data for ``majority``) leaves those metrics out, each listed under
``not_reported`` with the reason (:mod:`xemogpt.evaluation.coverage`).

Reproducibility: generation runs with the global random generators seeded from ``seed`` and restored afterwards, so
sampled descriptions (``do_sample``) are a function of the model, the data and the seed, never of what the process
ran before, and an evaluation leaves the caller's random streams (e.g. a fine-tune's training) untouched.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from xemogpt.data.batch import to_device
from xemogpt.data.schema import EmoCueSample
from xemogpt.evaluation.baselines import TrainingData

MODALITIES = ("visual", "auditory", "emotional")


def emotion_vocabulary(samples: list[EmoCueSample]) -> tuple[str, ...]:
    from xemogpt.cues.vocabulary import EMOTIONS

    found = {s.emotion for s in samples if s.emotion}
    return tuple(sorted(found | set(EMOTIONS)))


def generate_predictions(model, dm, split: str = "test", batch_size: int = 32, seed: int = 0,
                         **gen: Any) -> list[dict[str, Any]]:
    """Generate a description for every sample of ``split`` -> records {id, prediction, reference, emotion}.

    The random generators are seeded with ``seed`` for the duration (sampling draws the same tokens for the same
    model, data, batch size and seed) and restored afterwards.
    """
    with seeded_rng(seed):
        return _generate(model, dm, split, batch_size, **gen)


@contextlib.contextmanager
def seeded_rng(seed: int):
    """Context manager: torch (every device), numpy and Python's ``random`` seeded with ``seed`` inside, the caller's
    random states back on exit (unlike ``seed_everything`` it sets no environment variable)."""
    import torch

    from xemogpt.training.callbacks import preserve_rng

    with preserve_rng():
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        random.seed(seed)
        yield


def _generate(model, dm, split: str, batch_size: int, **gen: Any) -> list[dict[str, Any]]:
    from tqdm.auto import tqdm

    loader = dm._loader(split, shuffle=False, batch_size=batch_size)
    records: list[dict[str, Any]] = []
    model.eval()
    for batch in tqdm(loader, desc=f"generating ({split})", unit="batch", leave=False):
        if batch.get("skipped"):
            dm.note_skipped(batch["skipped"])
        if not batch["ids"]:
            continue
        batch = to_device(batch, model.device)
        preds = model.generate(batch, **gen)
        for s, p in zip(batch["samples"], preds):
            records.append({"id": s.id, "prediction": p, "reference": s.description, "emotion": s.emotion,
                            "subtitle": s.subtitle})
    return records


def cue_reproduction(samples: list[EmoCueSample], texts: list[str]) -> dict[str, dict[str, float]] | None:
    """Micro-averaged fraction of reference cue ids stated by each text (None when samples carry no ids)."""
    if not any(s.cue_ids for s in samples):
        return None
    from xemogpt.cues.vocabulary import parse_description

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


def labels_from_text(text: str, vocabulary: tuple[str, ...]) -> list[str]:
    """The open-vocabulary label set a description names: every ``vocabulary`` label it mentions (sorted).

    Word forms of the built-in emotions ("sadness", "furious") map to their label; any other label matches as
    written (case-insensitive, whole words). Sentences about what is said are used only when no other sentence
    names a label, as in :func:`xemogpt.cues.vocabulary.emotion_from_text`.
    """
    from xemogpt.cues.splitting import split_sentences
    from xemogpt.cues.vocabulary import ABOUT_WORDS, EMOTION_WORDS

    vocab = {v.lower().strip() for v in vocabulary if v and v.strip()}
    table = {w.lower(): e for e, words in EMOTION_WORDS.items() if e in vocab for w in words}
    for v in vocab:
        table.setdefault(v, v)
    if not table:
        return []
    pattern = re.compile(r"\b(" + "|".join(sorted(map(re.escape, table), key=len, reverse=True)) + r")\b")
    sentences = [s.lower() for s in split_sentences(text or "")]  # split first: the splitter reads capitals
    for about_words_ok in (False, True):
        found = {table[m.group(1)] for s in sentences if about_words_ok or not ABOUT_WORDS.search(s)
                 for m in pattern.finditer(s)}
        if found:
            return sorted(found)
    return []


def discrete_emotion_scores(samples: list[EmoCueSample], texts: list[str],
                            vocab: tuple[str, ...] | None = None) -> dict[str, Any] | None:
    """Accuracy, weighted F1, UAR and WAR of the concluded emotion over the labelled samples (None: no label)."""
    from xemogpt.cues.vocabulary import emotion_from_text
    from xemogpt.metrics.discrete import discrete_scores

    vocab = vocab if vocab is not None else emotion_vocabulary(samples)
    labelled = [(s, t) for s, t in zip(samples, texts) if s.emotion]
    if not labelled:
        return None
    preds = [emotion_from_text(t, vocab) or "" for _, t in labelled]  # "" is outside the classes: wrong
    res = discrete_scores(preds, [s.emotion for s, _ in labelled], labels=list(vocab))
    return {k: res[k] for k in ("accuracy", "weighted_f1", "uar", "war", "n")}


def ovmer_scores(samples: list[EmoCueSample], texts: list[str], wheels: Any = None) -> dict[str, Any] | None:
    """OV-MER of the labels each text names against the samples' open-vocabulary ``labels`` (None: no labels), plus
    the level-1 emotion-wheel figure when ``wheels`` (a folder, mapping file or loaded wheels) is given."""
    from xemogpt.metrics.ovmer import ovmer

    if not any(s.labels for s in samples):
        return None
    vocab = tuple(sorted({lab.lower().strip() for s in samples for lab in s.labels} | set(emotion_vocabulary(samples))))
    ref = {s.id: list(s.labels) for s in samples}
    pred = {s.id: labels_from_text(t, vocab) for s, t in zip(samples, texts)}
    res = ovmer(pred, ref)
    out = {k: res[k] for k in ("precision", "recall", "avg", "n")}
    if wheels is not None:
        from xemogpt.metrics.ovmer_wheel import ew_level1

        out["ew_level1"] = ew_level1(pred, ref, wheels)
    return out


def score_texts(samples: list[EmoCueSample], texts: list[str], extractor, encoder=None,
                pred_cues: list[dict[str, list[str]]] | None = None, wheels: Any = None) -> dict[str, Any]:
    """Every metric of ``texts`` (one generated description per sample) against the samples' annotations."""
    from xemogpt.cues.vocabulary import emotion_from_text
    from xemogpt.metrics.emocue360 import emocue360

    vocab = emotion_vocabulary(samples)
    labelled = [(s, t) for s, t in zip(samples, texts) if s.emotion]
    acc = float(np.mean([emotion_from_text(t, vocab) == s.emotion for s, t in labelled])) if labelled else None
    pred_cues = pred_cues if pred_cues is not None else extractor.extract(texts)
    pred = {s.id: c for s, c in zip(samples, pred_cues)}
    ref = {s.id: {m: list(s.cues.get(m, [])) for m in MODALITIES} for s in samples}
    ec = emocue360(pred, ref, encoder=encoder)
    out: dict[str, Any] = {
        "emotion_accuracy": acc,
        "cues": cue_reproduction(samples, texts),
        # a modality no sample has reference cues for is not scored (None, not NaN)
        "emocue360": {m: {k: (ec[m][k] if ec[m]["n"] or k == "n" else None) for k in ("precision", "recall", "f1", "n")}
                      for m in MODALITIES},
        "n": len(samples),
    }
    emotion = discrete_emotion_scores(samples, texts, vocab)
    if emotion is not None:
        out["discrete"] = emotion
    ov = ovmer_scores(samples, texts, wheels)
    if ov is not None:
        out["ovmer"] = ov
    return out


def build_extractor(extractor: Any) -> tuple[Any, str]:
    """(extractor, name for the report) from a registry name (``"offline"``), a recipe mapping
    (``{"name": "openai", "model": ...}``) or a ready extractor object."""
    from xemogpt import registry

    if isinstance(extractor, str):
        return registry.build("cue_extractor", extractor, "eval.extractor"), extractor
    if isinstance(extractor, Mapping):
        return registry.build("cue_extractor", dict(extractor), "eval.extractor"), str(extractor.get("name", "?"))
    return extractor, type(extractor).__name__


def generate_for(model, dm, split: str = "test", batch_size: int = 32, **gen: Any) -> list[dict[str, Any]]:
    """:func:`generate_predictions` for ``split``, or for every split in turn when ``split`` is ``"all"``."""
    from xemogpt.evaluation.coverage import eval_splits

    return [r for sp in eval_splits(split) for r in generate_predictions(model, dm, sp, batch_size, **gen)]


def evaluate_model(model, dm, out_dir: str | Path, split: str = "test", extractor: Any = "offline",
                   batch_size: int = 32, baselines: bool = True, training: TrainingData | None = None,
                   wheels: Any = None, seed: int = 0, **gen: Any) -> dict[str, Any]:
    """Generate for ``split`` (``"all"``: every sample), score every metric the data allows, write
    predictions.jsonl, metrics.json and report.md.

    ``training`` is the data the model was trained on, for the ``majority`` baseline (see
    :mod:`xemogpt.evaluation.baselines`); None means ``dm`` is that data (evaluation at the end of training).
    Metrics and baselines the data cannot support are listed with the reason under ``not_reported``. ``wheels``:
    the recipe's ``eval.wheels``, read before generating so that a bad path fails at once. ``seed``: the random state
    generation starts from (matters only when sampling; see the module docstring).
    """
    from xemogpt.evaluation.report import write_report
    from xemogpt.metrics.ovmer_wheel import load_wheels

    wheels = load_wheels(wheels) if wheels else None

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    records = generate_for(model, dm, split, batch_size, seed=seed, **gen)
    by_id = {s.id: s for s in dm.samples}
    samples = [by_id[r["id"]] for r in records]
    texts = [r["prediction"] for r in records]
    ext, ext_name = build_extractor(extractor)
    pred_cues = ext.extract(texts)
    records = [{**r, "cues": c} for r, c in zip(records, pred_cues)]
    with open(out_dir / "predictions.jsonl", "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    results: dict[str, Any] = {"split": split, "extractor": ext_name,
                               "model": score_texts(samples, texts, ext, pred_cues=pred_cues, wheels=wheels)}
    results.update(_coverage(samples, results["model"]))
    if baselines:
        training = training or TrainingData(dm.split_samples("train"), str(dm.root))
        known = dict(zip(texts, pred_cues))
        results.update(_baselines(samples, texts, training, ext, results["not_reported"], known, wheels))
    results["skipped"] = dm.skips.counts()
    (out_dir / "metrics.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    write_report(results, _worked_examples(records, samples), out_dir / "report.md")
    return results


def _coverage(samples: list[EmoCueSample], model_scores: dict[str, Any]) -> dict[str, Any]:
    """``not_reported`` (metric -> why) and ``inputs`` (samples lacking each input) of an evaluated set."""
    from xemogpt.evaluation.coverage import input_counts, not_reported

    return {"not_reported": not_reported(samples, model_scores), "inputs": input_counts(samples)}


def _cues_for(texts: list[str], ext, known: dict[str, dict[str, list[str]]]) -> list[dict[str, list[str]]]:
    """Cues of ``texts``, extracting each distinct text not in ``known`` once (a baseline repeats one description,
    or reuses the model's own texts) and adding it to ``known``."""
    todo = list(dict.fromkeys(t for t in texts if t not in known))
    known.update(zip(todo, ext.extract(todo) if todo else []))
    return [known[t] for t in texts]


def _baselines(samples: list[EmoCueSample], texts: list[str], training: TrainingData, ext,
               not_reported: dict[str, str], known: dict[str, dict[str, list[str]]] | None = None,
               wheels: Any = None) -> dict[str, Any]:
    """Scores of each baseline that can be built (plus where ``majority`` came from and what it says); the others
    go into ``not_reported`` with the reason. ``known`` maps texts to cues already extracted (the model's)."""
    from xemogpt.evaluation.baselines import majority_baseline, shuffled_baseline

    known = {} if known is None else known
    out: dict[str, Any] = {}
    if not samples:
        return out
    for name, (base, why) in (("majority", majority_baseline(training, len(samples))),
                              ("shuffled", shuffled_baseline(texts))):
        if base is None:
            not_reported[f"{name} baseline"] = str(why)
            continue
        out[name] = score_texts(samples, base, ext, pred_cues=_cues_for(base, ext, known), wheels=wheels)
        if name == "majority":
            out["majority_from"], out["majority_description"] = training.where, base[0]
    return out


def _worked_examples(records: list[dict[str, Any]], samples: list[EmoCueSample], k: int = 3) -> list[dict[str, Any]]:
    """``records`` with the first ``k`` given their concluded emotion, reference cues and per-sample EmoCue-360
    scores (the report's worked examples)."""
    from xemogpt.cues.vocabulary import emotion_from_text
    from xemogpt.metrics.emocue360 import emocue360

    head = records[:k]
    if not head:
        return []
    vocab = emotion_vocabulary(samples)
    by_id = {s.id: s for s in samples}
    pred = {r["id"]: r["cues"] for r in head}
    ref = {r["id"]: {m: list(by_id[r["id"]].cues.get(m, [])) for m in MODALITIES} for r in head}
    per = emocue360(pred, ref, per_sample=True)["per_sample"]
    worked = [{**r, "predicted_emotion": emotion_from_text(r["prediction"], vocab), "reference_cues": ref[r["id"]],
               "emocue360": {m: per[m].get(r["id"]) for m in MODALITIES}} for r in head]
    return worked + records[k:]
