"""Losses shared by the bridges' pre-training tasks."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def contrastive_loss(a: torch.Tensor, b: torch.Tensor, logit_scale: torch.Tensor,
                     text_emb: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE between a (B, E) and b (B, E).

    Samples whose raw text embeddings are identical (``text_emb`` cosine > 0.999) are treated as positives of each
    other instead of as negatives, which matters when many clips share the same cue text.
    """
    a = F.normalize(a, dim=-1)
    b = F.normalize(b, dim=-1)
    logits = logit_scale.exp().clamp(max=100) * a @ b.t()
    if text_emb is None:
        target = torch.eye(a.shape[0], device=a.device)
    else:
        t = F.normalize(text_emb.float(), dim=-1)
        target = (t @ t.t() > 0.999).float()
    target = target / target.sum(1, keepdim=True)
    loss_ab = -(target * logits.log_softmax(1)).sum(1).mean()
    loss_ba = -(target.t() * logits.t().log_softmax(1)).sum(1).mean()
    return 0.5 * (loss_ab + loss_ba)


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """x (B, N, D), mask (B, N) bool -> (B, D) mean over valid positions."""
    if mask is None:
        return x.mean(1)
    m = mask.to(x.dtype)[..., None]
    return (x * m).sum(1) / m.sum(1).clamp(min=1.0)
