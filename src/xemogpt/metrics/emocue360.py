"""EmoCue-360: cue-level precision / recall / F1 of predicted emotional cues against reference cues.

Exact definition (DESIGN.md, and the published ``EmoCue-360/compute_prf.py`` of XEmoGPT):

* every cue is a short sentence, embedded with all-MiniLM-L6-v2; similarity is the cosine;
* per sample and modality, recall = mean over reference cues of their best similarity to any predicted cue,
  precision = mean over predicted cues of their best similarity to any reference cue, F1 = 2PR / (P + R)
  (0 when P + R = 0);
* an empty prediction list scores P = R = F1 = 0; a sample whose reference list is empty is skipped for that
  modality;
* auditory: cues containing the substring ``"text"`` (case-sensitive: the subtitle was an input, so repeating it
  is no perception) are dropped on both sides first;
* emotional: a predicted sample with no ``emotional`` key scores 0 and is counted, whatever its reference;
* only samples present in the predictions are scored; the result is the mean over scored samples.

Decisions where the published script crashes (documented, and reported in the counts): a predicted sample absent
from the references is skipped (``missing_ref``); a prediction that is ``None`` (its cue extraction failed and was
skipped, ``--on-failure skip``) is not scored and is counted in ``extraction_failed``; a missing
``visual``/``auditory`` key in a prediction is an empty list (counted in ``missing_key``); a missing key in a
reference is an empty list (so the sample is skipped); a modality with no scored sample reports NaN.

Speed: the published script encodes each sample's two lists separately (two model calls per sample and modality).
Here every *distinct* cue of the call is encoded once, in batches of equal token count, and each sample's
similarity matrix is a product of rows of that one embedding table. Vectors go to a disk cache keyed by the
embedding model's fingerprint and the exact text (:mod:`xemogpt.utils.embedding_cache`), so references scored
again (every epoch, every ablation cell, every re-run) are never encoded twice; scores are bit-identical with and
without it. Per-sample means are taken in float32 like the published
torch code, then F1 and the means over samples in float64, so the numbers agree with it to ~1e-7.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xemogpt.errors import XemoGPTError
from xemogpt.utils.embedding_cache import EmbeddingCache, cache_for, embed
from xemogpt.utils.sentence import SentenceEncoder

MODALITIES: tuple[str, ...] = ("visual", "auditory", "emotional")
TEXT_MARKER = "text"  # auditory cues containing it are about the subtitle, which the model was given

CueDict = Mapping[str, Sequence[str]]


class CueFormatError(XemoGPTError, ValueError):
    """A prediction or reference file is not ``{name: {"visual": [...], "auditory": [...], "emotional": [...]}}``."""


@dataclass
class _Task:
    """One (sample, modality) pair to score: the cue lists after the modality's filtering."""

    name: str
    modality: str
    ref: list[str]
    pred: list[str]


@dataclass
class _Plan:
    tasks: list[_Task] = field(default_factory=list)
    forced_zero: dict[str, list[str]] = field(default_factory=lambda: {m: [] for m in MODALITIES})
    counts: dict[str, dict[str, int]] = field(
        default_factory=lambda: {m: {"skipped_empty_ref": 0, "empty_pred": 0, "missing_key": 0} for m in MODALITIES}
    )
    dropped_text_cues: dict[str, int] = field(default_factory=lambda: {"pred": 0, "ref": 0})
    missing_ref: list[str] = field(default_factory=list)
    extraction_failed: list[str] = field(default_factory=list)
    samples: int = 0
    order: dict[str, list[str]] = field(default_factory=lambda: {m: [] for m in MODALITIES})


def _as_named(data: Any, what: str) -> dict[str, Any]:
    """A ``{name: cues}`` mapping, or a list of cue dicts (names become their positions)."""
    if isinstance(data, Mapping):
        return {str(k): v for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return {str(i): v for i, v in enumerate(data)}
    raise CueFormatError(f"{what} must be a mapping {{name: {{modality: [cues]}}}} or a list of cue dicts, "
                         f"got {type(data).__name__}")


def _cue_list(entry: Mapping[str, Any], modality: str, name: str, what: str) -> list[str] | None:
    """The cue list of one modality (None when the key is missing); checks that it is a list of strings."""
    if modality not in entry:
        return None
    cues = entry[modality]
    if cues is None:
        return []
    if isinstance(cues, str) or not isinstance(cues, (list, tuple)):
        raise CueFormatError(f"{what} sample {name!r}: {modality!r} must be a list of cue sentences, got "
                             f"{type(cues).__name__} {str(cues)[:60]!r}; re-run the cue extractor or fix the file")
    for cue in cues:
        if not isinstance(cue, str):
            raise CueFormatError(f"{what} sample {name!r}: {modality!r} holds a {type(cue).__name__} "
                                 f"({cue!r}); every cue must be a sentence (string)")
    return list(cues)


def plan_samples(pred: Any, ref: Any) -> _Plan:
    """Apply every rule of the definition and list what needs a similarity matrix."""
    preds, refs = _as_named(pred, "predictions"), _as_named(ref, "references")
    plan = _Plan()
    for name, p_entry in preds.items():
        if p_entry is None:  # its cue extraction failed and was skipped: not scored, counted
            plan.extraction_failed.append(name)
            continue
        if not isinstance(p_entry, Mapping):
            raise CueFormatError(f"predictions sample {name!r} must be a mapping of modality -> cue list, got "
                                 f"{type(p_entry).__name__}")
        if name not in refs:
            plan.missing_ref.append(name)
            continue
        r_entry = refs[name]
        if not isinstance(r_entry, Mapping):
            raise CueFormatError(f"references sample {name!r} must be a mapping of modality -> cue list, got "
                                 f"{type(r_entry).__name__}")
        plan.samples += 1
        for m in MODALITIES:
            p_cues = _cue_list(p_entry, m, name, "predictions")
            r_cues = _cue_list(r_entry, m, name, "references") or []
            counts = plan.counts[m]
            if p_cues is None:
                counts["missing_key"] += 1
                if m == "emotional":  # scored 0 and counted even when the reference is empty
                    plan.forced_zero[m].append(name)
                    plan.order[m].append(name)
                    continue
                p_cues = []
            if m == "auditory":
                kept_r = [c for c in r_cues if TEXT_MARKER not in c]
                kept_p = [c for c in p_cues if TEXT_MARKER not in c]
                plan.dropped_text_cues["ref"] += len(r_cues) - len(kept_r)
                plan.dropped_text_cues["pred"] += len(p_cues) - len(kept_p)
                r_cues, p_cues = kept_r, kept_p
            if not r_cues:
                counts["skipped_empty_ref"] += 1
                continue
            if not p_cues:
                counts["empty_pred"] += 1
            plan.tasks.append(_Task(name, m, r_cues, p_cues))
            plan.order[m].append(name)
    return plan


def _f1(p: float, r: float) -> float:
    return 2 * r * p / (p + r) if p + r > 0 else 0.0


def score_plan(plan: _Plan, encoder: SentenceEncoder | None, batch_size: int = 128,
               cache: EmbeddingCache | None = None) -> dict[str, dict[str, tuple]]:
    """Per-sample scores: ``{modality: {name: (precision, recall, f1)}}`` in prediction order.

    Each distinct cue of the plan is encoded once (or read from ``cache``); a sample's (R, P) similarity block is
    rows of that table.
    """
    vocab: dict[str, int] = {}
    for t in plan.tasks:
        if t.pred:  # an empty prediction scores 0 without a similarity matrix: its references need no vector
            for c in (*t.ref, *t.pred):
                vocab.setdefault(c, len(vocab))
    table = np.zeros((0, 0), dtype=np.float32)
    if vocab:
        emb = embed(encoder, list(vocab), cache, batch_size=batch_size)
        table = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    per: dict[str, dict[str, tuple]] = {m: {} for m in MODALITIES}
    for m in MODALITIES:
        for name in plan.forced_zero[m]:
            per[m][name] = (0.0, 0.0, 0.0)
    for t in plan.tasks:
        if not t.pred:
            per[t.modality][t.name] = (0.0, 0.0, 0.0)
            continue
        r = table[[vocab[c] for c in t.ref]]  # (R, D)
        q = table[[vocab[c] for c in t.pred]]  # (P, D)
        sim = r @ q.T  # (R, P) cosine
        recall = float(sim.max(axis=1).mean(dtype=np.float32))
        precision = float(sim.max(axis=0).mean(dtype=np.float32))
        per[t.modality][t.name] = (precision, recall, _f1(precision, recall))
    return {m: {name: per[m][name] for name in plan.order[m]} for m in MODALITIES}  # prediction order


def _summary(plan: _Plan, per: dict[str, dict[str, tuple]], per_sample: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for m in MODALITIES:
        scores = list(per[m].values())
        n = len(scores)
        arr = np.asarray(scores, dtype=np.float64).reshape(n, 3)
        # Sequential float64 sums, as the published script's sum(list) / len(list).
        means = [sum(arr[:, j].tolist()) / n if n else float("nan") for j in range(3)]
        out[m] = {"precision": means[0], "recall": means[1], "f1": means[2], "n": n, **plan.counts[m]}
    out["auditory"]["dropped_text_cues_ref"] = plan.dropped_text_cues["ref"]
    out["auditory"]["dropped_text_cues_pred"] = plan.dropped_text_cues["pred"]
    out["samples"] = plan.samples
    out["missing_ref"] = len(plan.missing_ref)
    out["extraction_failed"] = len(plan.extraction_failed)
    if plan.extraction_failed:
        out["extraction_failed_names"] = plan.extraction_failed[:20]
    if plan.missing_ref:
        out["missing_ref_names"] = plan.missing_ref[:20]
    if per_sample:
        out["per_sample"] = {
            m: {k: {"precision": v[0], "recall": v[1], "f1": v[2]} for k, v in per[m].items()} for m in MODALITIES
        }
    return out


def emocue360(
    pred: Any,
    ref: Any,
    encoder: SentenceEncoder | None = None,
    *,
    batch_size: int = 128,
    per_sample: bool = False,
    cache: Any = "auto",
) -> dict[str, Any]:
    """EmoCue-360 of predicted against reference cues.

    Args:
        pred: ``{name: {"visual": [...], "auditory": [...], "emotional": [...]}}`` (the published JSON layout), or a
            list of such cue dicts aligned with ``ref``.
        ref: the reference cues in the same layout.
        encoder: anything with ``encode(list[str]) -> (N, D)`` tensor/array; None uses the bundled all-MiniLM-L6-v2.
        batch_size: sentences per encoder call.
        per_sample: also return every scored sample's P/R/F1 under ``"per_sample"``.
        cache: the embedding cache: ``"auto"`` (the default folder, see :func:`resolve_cache`), a folder, an
            :class:`EmbeddingCache`, or None/False (encode everything).

    Returns:
        ``{modality: {"precision", "recall", "f1", "n", "skipped_empty_ref", "empty_pred", "missing_key"}}`` for
        visual / auditory / emotional (auditory also has ``dropped_text_cues_ref`` / ``_pred``), plus ``samples``
        (predictions with a reference), ``missing_ref`` (predictions without one, skipped) and
        ``extraction_failed`` (None predictions, skipped).
    """
    plan = plan_samples(pred, ref)
    if encoder is None and plan.tasks:
        from xemogpt.utils.sentence import default_device, load_minilm

        encoder = load_minilm(default_device())
    per = score_plan(plan, encoder, batch_size=batch_size, cache=resolve_cache(cache, encoder) if plan.tasks else None)
    return _summary(plan, per, per_sample)


def resolve_cache(cache: Any, encoder: SentenceEncoder | None) -> EmbeddingCache | None:
    """``"auto"`` -> the default cache of ``encoder`` (None when off or the encoder has no fingerprint); a folder
    -> the encoder's cache there; an :class:`EmbeddingCache` as is; None/False -> no cache."""
    if cache is None or cache is False or encoder is None:
        return None
    if isinstance(cache, EmbeddingCache):
        return cache
    return cache_for(encoder, None if cache == "auto" else cache)


def emocue360_per_sample_reference(pred: Any, ref: Any, encoder: SentenceEncoder | None = None) -> dict[str, Any]:
    """The straightforward implementation, kept as the yardstick for tests and ``benchmarks/bench_metrics.py``.

    Written independently of :func:`emocue360` (it shares no rule code with it) and shaped like the published
    script: one loop per modality over the predicted samples, two encoder calls per sample (reference list, then
    prediction list) and a torch cosine matrix. Returns ``{modality: {"precision", "recall", "f1", "n"}}``.
    """
    import torch

    if encoder is None:
        from xemogpt.utils.sentence import default_device, load_minilm

        encoder = load_minilm(default_device())

    def embed(cues: list[str]) -> torch.Tensor:
        out = encoder.encode(cues)
        t = out.detach().float().cpu() if hasattr(out, "detach") else torch.as_tensor(np.asarray(out, np.float32))
        return torch.nn.functional.normalize(t, dim=1)

    preds, refs = _as_named(pred, "predictions"), _as_named(ref, "references")
    out: dict[str, Any] = {}
    for m in MODALITIES:
        ps, rs, fs = [], [], []
        for name, entry in preds.items():
            if name not in refs or entry is None:
                continue
            if m == "emotional" and m not in entry:
                ps.append(0.0), rs.append(0.0), fs.append(0.0)
                continue
            p_cues, r_cues = list(entry.get(m) or []), list(refs[name].get(m) or [])
            if m == "auditory":
                p_cues = [c for c in p_cues if "text" not in c]
                r_cues = [c for c in r_cues if "text" not in c]
            if len(r_cues) == 0:
                continue
            if len(p_cues) == 0:
                recall, precision = 0.0, 0.0
            else:
                sim = embed(r_cues) @ embed(p_cues).T  # (R, P)
                recall = sim.max(dim=1).values.mean().item()
                precision = sim.max(dim=0).values.mean().item()
            f1 = 2 * recall * precision / (precision + recall) if recall + precision > 0 else 0.0
            ps.append(precision), rs.append(recall), fs.append(f1)
        n = len(ps)
        nan = float("nan")
        out[m] = {"precision": sum(ps) / n if n else nan, "recall": sum(rs) / n if n else nan,
                  "f1": sum(fs) / n if n else nan, "n": n}
    return out
