"""EmoCue-360 as a torchmetrics ``Metric``: accumulate over validation batches, compute after the epoch."""

from __future__ import annotations

from typing import Any

import torch
from torchmetrics import Metric

from xemogpt.metrics.emocue360 import MODALITIES, plan_samples, resolve_cache, score_plan
from xemogpt.registry import register
from xemogpt.utils.sentence import SentenceEncoder

_SUMS = ("precision", "recall", "f1")
_COUNTS = ("n", "skipped_empty_ref", "empty_pred", "missing_key")


@register("metric", "emocue360")
class EmoCue360(Metric):
    """Cue-level precision / recall / F1 per modality (see :mod:`xemogpt.metrics.emocue360` for the rules).

    ``update(preds, refs)`` takes ``{name: {"visual": [...], "auditory": [...], "emotional": [...]}}`` mappings
    (only names in ``preds`` are scored) or two aligned lists of such cue dicts. Each update encodes the distinct
    cues of its batch once, through the embedding cache, so the references scored again at every epoch are encoded
    only the first time; the states are float64/int64 sums, so DDP reduces them with a plain sum.

    ``compute()`` returns a flat dict of 0-d tensors: ``{modality}_precision``, ``_recall``, ``_f1`` (NaN when no
    sample was scored), ``{modality}_n`` and the skip counts, plus ``missing_ref`` and ``extraction_failed`` (None
    predictions: failed cue extractions left out).

    Args:
        encoder: any object with ``encode(list[str]) -> (N, D)``; None loads the bundled all-MiniLM-L6-v2 on first
            use. It is kept outside the module tree so that it is never part of a checkpoint.
        batch_size: sentences per encoder call.
        cache: embedding cache (``"auto"``: the default folder; a folder; None: none), see
            :func:`xemogpt.metrics.emocue360.resolve_cache`.
    """

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(self, encoder: SentenceEncoder | None = None, batch_size: int = 128, cache: Any = "auto",
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.__dict__["_encoder"] = encoder
        self.__dict__["_cache_setting"] = cache
        self.batch_size = batch_size
        for m in MODALITIES:
            for s in _SUMS:
                self.add_state(f"{m}_{s}", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
            for c in _COUNTS:
                self.add_state(f"{m}_{c}", default=torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("missing_ref", default=torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("extraction_failed", default=torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")

    @property
    def encoder(self) -> SentenceEncoder:
        if self.__dict__["_encoder"] is None:
            from xemogpt.utils.sentence import default_device, load_minilm

            self.__dict__["_encoder"] = load_minilm(default_device())
        return self.__dict__["_encoder"]

    @property
    def embedding_cache(self):
        """The embedding cache of the encoder as it is now (None when off)."""
        return resolve_cache(self.__dict__["_cache_setting"], self.encoder)

    def update(self, preds: Any, refs: Any) -> None:
        plan = plan_samples(preds, refs)
        per = score_plan(plan, self.encoder if plan.tasks else None, batch_size=self.batch_size,
                         cache=self.embedding_cache if plan.tasks else None)
        for m in MODALITIES:
            scores = list(per[m].values())
            for j, s in enumerate(_SUMS):
                total = getattr(self, f"{m}_{s}") + sum(v[j] for v in scores)
                setattr(self, f"{m}_{s}", total)
            setattr(self, f"{m}_n", getattr(self, f"{m}_n") + len(scores))
            for c in _COUNTS[1:]:
                setattr(self, f"{m}_{c}", getattr(self, f"{m}_{c}") + plan.counts[m][c])
        self.missing_ref = self.missing_ref + len(plan.missing_ref)
        self.extraction_failed = self.extraction_failed + len(plan.extraction_failed)

    def compute(self) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for m in MODALITIES:
            n = getattr(self, f"{m}_n")
            for s in _SUMS:
                total = getattr(self, f"{m}_{s}")
                out[f"{m}_{s}"] = total / n if n > 0 else torch.tensor(float("nan"), dtype=torch.float64)
            for c in _COUNTS:
                out[f"{m}_{c}"] = getattr(self, f"{m}_{c}").clone()
        out["missing_ref"] = self.missing_ref.clone()
        out["extraction_failed"] = self.extraction_failed.clone()
        return out
