"""A plain stack of N transformer layers (ablation: VECB/AECB's layers without their pre-training tasks)."""

from __future__ import annotations

import torch
from torch import nn

from xemogpt.bridges.base import BRIDGE_TASKS, AlignmentBridge
from xemogpt.nn.layers import TransformerStack, pick_heads
from xemogpt.registry import register


@register(("video_bridge", "audio_bridge"), "transformer")
class TransformerBridge(AlignmentBridge):
    """Pre-LN transformer layers over the encoder tokens, with an optional learned position embedding.

    forward: x (B, N, input_dim), mask (B, N) -> (B, N, dim).

    Args:
        input_dim, text_dim: wired in. layers: transformer layers. dim: width (None: the encoder's). heads: attention
            heads (None: 64-wide). activation: ``gelu`` (HuBERT-like) or ``quick_gelu`` (CLIP-like).
        max_positions: length of a learned position embedding (0: none). tasks, proj_dim, pooling: alignment task.
    """

    def __init__(self, input_dim: int, text_dim: int | None = None, layers: int = 2, dim: int | None = None,
                 heads: int | None = None, mlp_ratio: float = 4.0, dropout: float = 0.0, activation: str = "gelu",
                 max_positions: int = 0, tasks: list[str] | tuple[str, ...] = BRIDGE_TASKS, proj_dim: int = 768,
                 pooling: str = "mean") -> None:
        super().__init__()
        self.save_hyperparameters()
        if activation not in ("gelu", "quick_gelu"):
            raise ValueError(f"transformer bridge activation must be gelu or quick_gelu, got {activation!r}")
        dim = dim or input_dim
        heads = pick_heads(dim, heads)
        self.input_dim, self.output_dim = input_dim, dim
        self.in_proj = nn.Linear(input_dim, dim) if dim != input_dim else nn.Identity()
        self.pos_emb = nn.Parameter(torch.randn(1, max_positions, dim) * 0.02) if max_positions else None
        self.stack = TransformerStack(dim, layers, heads, mlp_ratio, dropout, activation=activation)
        self.setup_tasks(tasks, text_dim, dim, proj_dim, pooling, heads)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, N, input_dim), mask (B, N) -> (B, N, dim)."""
        self.check_input_dim(x, self.input_dim, "encoder tokens")
        h = self.in_proj(x)
        if self.pos_emb is not None:
            if h.shape[1] > self.pos_emb.shape[1]:
                raise ValueError(f"transformer bridge position embedding covers {self.pos_emb.shape[1]} tokens, got "
                                 f"{h.shape[1]}; raise max_positions")
            h = h + self.pos_emb[:, : h.shape[1]]
        return self.stack(h, mask)
