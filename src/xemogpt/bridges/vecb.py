"""VECB, the Video Emotional Cue Bridge, with its three published pre-training tasks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from xemogpt.bridges.layers import AttentionPool, TransformerStack, pick_heads
from xemogpt.bridges.losses import contrastive_loss, masked_mean
from xemogpt.component import Component
from xemogpt.registry import register

VECB_TASKS = ("contrastive", "temporal_order", "masked_frame")


@register("video_bridge", "vecb")
class VECB(Component):
    """Learned temporal position embedding + CLIP-shaped transformer layers over per-frame tokens.

    forward: x (B, T, input_dim), mask (B, T) bool -> (B, T, dim). Pre-training tasks (each switchable):

    - ``contrastive``: pooled video and the text encoder's embedding of the clip's visual cues, both projected to
      ``proj_dim``, aligned with symmetric InfoNCE;
    - ``temporal_order``: a small MLP tells real frame order from a shuffled one (half of each batch shuffled): it
      scores every pair of neighbouring output frames and averages the scores over the clip;
    - ``masked_frame``: ``mask_ratio`` of each clip's valid input frames (rounded, at least one) replaced by a
      learned token and reconstructed linearly from the output at those frames.

    Args:
        input_dim: encoder width (wired in by the model).
        text_dim: text-encoder width for ``contrastive`` (wired in; None disables that task).
        num_frames: length of the temporal position embedding (16 in the paper).
        layers: transformer layers (2 in the paper). dim: bridge width (None: follow the encoder).
        heads: attention heads (None: 64-wide heads). tasks: enabled pre-training tasks.
        pooling: ``mean`` or ``attention`` (a learned query) for the contrastive task.
        proj_dim: contrastive projection width (768 in the paper). mask_ratio: masked-frame ratio (0.5).
    """

    def __init__(self, input_dim: int, text_dim: int | None = None, num_frames: int = 16, layers: int = 2,
                 dim: int | None = None, heads: int | None = None, mlp_ratio: float = 4.0, dropout: float = 0.0,
                 tasks: list[str] | tuple[str, ...] = VECB_TASKS, pooling: str = "mean", proj_dim: int = 768,
                 mask_ratio: float = 0.5, task_weights: dict[str, float] | None = None, lr: float = 1e-4) -> None:
        super().__init__()
        self.save_hyperparameters()
        unknown = set(tasks) - set(VECB_TASKS)
        if unknown:
            raise ValueError(f"unknown VECB task(s) {sorted(unknown)}; choose from {VECB_TASKS}")
        if pooling not in ("mean", "attention"):
            raise ValueError(f"VECB pooling must be 'mean' or 'attention', got {pooling!r}")
        dim = dim or input_dim
        heads = pick_heads(dim, heads)
        self.input_dim, self.dim, self.output_dim = input_dim, dim, dim
        self.in_proj = nn.Linear(input_dim, dim) if dim != input_dim else nn.Identity()
        self.pos_emb = nn.Parameter(torch.randn(1, num_frames, dim) * 0.02)
        self.stack = TransformerStack(dim, layers, heads, mlp_ratio, dropout, activation="quick_gelu")
        self.tasks = tuple(tasks)
        if "contrastive" in self.tasks and text_dim:
            self.pool = AttentionPool(dim, heads) if pooling == "attention" else None
            self.video_proj = nn.Linear(dim, proj_dim)
            self.text_proj = nn.Linear(text_dim, proj_dim)
            self.logit_scale = nn.Parameter(torch.tensor(2.659))  # log(1/0.07), CLIP's initial temperature
        if "temporal_order" in self.tasks:
            # Scores each pair of neighbouring output frames; a clip's logit is the mean over its valid pairs.
            self.order_head = nn.Sequential(nn.Linear(2 * dim, dim), nn.GELU(), nn.Linear(dim, 1))
        if "masked_frame" in self.tasks:
            self.mask_token = nn.Parameter(torch.zeros(1, 1, input_dim))
            self.recon = nn.Linear(dim, input_dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, T, input_dim), mask (B, T) -> (B, T, dim)."""
        self.check_input_dim(x, self.input_dim, "video tokens")
        t = x.shape[1]
        if t > self.pos_emb.shape[1]:
            raise ValueError(f"VECB has a position embedding for {self.pos_emb.shape[1]} frames, got {t}; sample "
                             f"fewer frames or set video_bridge.num_frames")
        h = self.in_proj(x) + self.pos_emb[:, :t]
        return self.stack(h, mask)

    def pooled(self, h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return self.pool(h, mask) if getattr(self, "pool", None) is not None else masked_mean(h, mask)

    # --- pre-training tasks -----------------------------------------------------------------------------------
    def task_losses(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                    text_emb: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Loss of every enabled task on encoder tokens x (B, T, input_dim) and text embeddings (B, text_dim)."""
        losses: dict[str, torch.Tensor] = {}
        w = self.hparams.task_weights or {}
        if "contrastive" in self.tasks and hasattr(self, "video_proj") and text_emb is not None:
            h = self(x, mask)
            losses["contrastive"] = w.get("contrastive", 1.0) * contrastive_loss(
                self.video_proj(self.pooled(h, mask)), self.text_proj(text_emb), self.logit_scale, text_emb)
        if "temporal_order" in self.tasks:
            b, t = x.shape[:2]
            ar = torch.arange(t, device=x.device).expand(b, t)
            valid = torch.ones(b, t, dtype=torch.bool, device=x.device) if mask is None else mask
            # Only valid frames are permuted; padded frames move behind them in both orders, so a "shuffled" label
            # always means the visible frames are out of order.
            ident = torch.where(valid, ar.float() / t, 2.0 + ar.float()).argsort(1)
            perm = torch.where(valid, torch.rand(b, t, device=x.device), 2.0 + ar.float()).argsort(1)
            shuffled = torch.rand(b, device=x.device) < 0.5
            order = torch.where(shuffled[:, None], perm, ident)
            label = (order != ident).any(1).float()  # a permutation can come out as the identity
            xs = x.gather(1, order[..., None].expand_as(x))
            ms = None if mask is None else mask.gather(1, order)
            h = self(xs, ms)
            pairs = torch.cat([h[:, :-1], h[:, 1:]], dim=-1)  # (B, T-1, 2 dim): frame t next to frame t+1
            pair_mask = None if ms is None else ms[:, :-1] & ms[:, 1:]
            logit = masked_mean(self.order_head(pairs), pair_mask).squeeze(-1)
            losses["temporal_order"] = w.get("temporal_order", 1.0) * F.binary_cross_entropy_with_logits(logit, label)
        if "masked_frame" in self.tasks:
            b, t = x.shape[:2]
            # mask_ratio of each clip's *valid* frames (at least one), chosen uniformly among them
            valid = torch.ones(b, t, dtype=torch.bool, device=x.device) if mask is None else mask
            n_valid = valid.sum(1)
            n_mask = torch.round(self.hparams.mask_ratio * n_valid.float()).long().clamp(min=1).minimum(n_valid)
            score = torch.rand(b, t, device=x.device).masked_fill(~valid, 2.0)
            m = score.argsort(1).argsort(1) < n_mask[:, None]  # the n_mask lowest-scoring (valid) frames
            # The encoder gets no gradient from this task: with a trainable encoder, reconstructing its own output
            # has a trivial solution (constant features) that would erase the cues the other tasks need.
            xd = x.detach()
            xm = torch.where(m[..., None], self.mask_token.to(x.dtype).expand_as(xd), xd)
            pred = self.recon(self(xm, mask))
            target = F.layer_norm(xd, xd.shape[-1:])
            if bool(m.any()):  # a batch whose clips have no valid frame has nothing to reconstruct
                losses["masked_frame"] = w.get("masked_frame", 1.0) * F.mse_loss(pred[m], target[m])
        return losses

    # --- standalone training: batch {"features": (B,T,D), "mask": (B,T), "text_emb": (B,E)} ------------------------
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        losses = self.task_losses(batch["features"], batch.get("mask"), batch.get("text_emb"))
        for k, v in losses.items():
            self.log(f"vecb/{k}", v, prog_bar=True)
        return sum(losses.values())

    def configure_optimizers(self):
        return torch.optim.AdamW([p for p in self.parameters() if p.requires_grad], lr=self.hparams.lr)
