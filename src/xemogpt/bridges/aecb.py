"""AECB, the Audio Emotional Cue Bridge, with its published acoustic-description alignment task."""

from __future__ import annotations

import torch
from torch import nn

from xemogpt.bridges.layers import TransformerStack, pick_heads
from xemogpt.bridges.losses import contrastive_loss, masked_mean
from xemogpt.component import Component
from xemogpt.registry import register


@register("audio_bridge", "aecb")
class AECB(Component):
    """HuBERT-shaped transformer layers over all audio tokens.

    forward: x (B, A, input_dim), mask (B, A) bool -> (B, A, dim). Pre-training task ``contrastive``: the
    masked-mean-pooled output, projected to ``proj_dim``, aligned (InfoNCE) with the text encoder's embedding of the
    clip's acoustic description, also projected to ``proj_dim``.

    Args:
        input_dim: encoder width (wired in). text_dim: text-encoder width (wired in; None disables the task).
        layers: transformer layers (2 in the paper). dim: width (None: follow the encoder). heads: attention heads.
        max_positions: length of an optional learned position embedding (0: none, as HuBERT's relative conv
            positions already live in the encoder output).
    """

    def __init__(self, input_dim: int, text_dim: int | None = None, layers: int = 2, dim: int | None = None,
                 heads: int | None = None, mlp_ratio: float = 4.0, dropout: float = 0.0,
                 tasks: list[str] | tuple[str, ...] = ("contrastive",), proj_dim: int = 768,
                 max_positions: int = 0, lr: float = 1e-4) -> None:
        super().__init__()
        self.save_hyperparameters()
        unknown = set(tasks) - {"contrastive"}
        if unknown:
            raise ValueError(f"unknown AECB task(s) {sorted(unknown)}; AECB has 'contrastive'")
        dim = dim or input_dim
        heads = pick_heads(dim, heads)
        self.input_dim, self.output_dim = input_dim, dim
        self.in_proj = nn.Linear(input_dim, dim) if dim != input_dim else nn.Identity()
        self.pos_emb = nn.Parameter(torch.randn(1, max_positions, dim) * 0.02) if max_positions else None
        self.stack = TransformerStack(dim, layers, heads, mlp_ratio, dropout, activation="gelu")
        self.tasks = tuple(tasks)
        if "contrastive" in self.tasks and text_dim:
            self.audio_proj = nn.Linear(dim, proj_dim)
            self.text_proj = nn.Linear(text_dim, proj_dim)
            self.logit_scale = nn.Parameter(torch.tensor(2.659))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, A, input_dim), mask (B, A) -> (B, A, dim)."""
        self.check_input_dim(x, self.input_dim, "audio tokens")
        h = self.in_proj(x)
        if self.pos_emb is not None:
            if h.shape[1] > self.pos_emb.shape[1]:
                raise ValueError(f"AECB position embedding covers {self.pos_emb.shape[1]} tokens, got {h.shape[1]}")
            h = h + self.pos_emb[:, : h.shape[1]]
        return self.stack(h, mask)

    def task_losses(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                    text_emb: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        if "contrastive" not in self.tasks or not hasattr(self, "audio_proj") or text_emb is None:
            return {}
        pooled = masked_mean(self(x, mask), mask)
        return {"contrastive": contrastive_loss(self.audio_proj(pooled), self.text_proj(text_emb),
                                                self.logit_scale, text_emb)}

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        losses = self.task_losses(batch["features"], batch.get("mask"), batch.get("text_emb"))
        for k, v in losses.items():
            self.log(f"aecb/{k}", v, prog_bar=True)
        return sum(losses.values())

    def configure_optimizers(self):
        return torch.optim.AdamW([p for p in self.parameters() if p.requires_grad], lr=self.hparams.lr)
