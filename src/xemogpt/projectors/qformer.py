"""Q-Former projector (Video-LLaMA / Emotion-LLaMA): learned queries read the bridge tokens, then a Linear."""

from __future__ import annotations

import torch
from torch import nn

from xemogpt.component import Component
from xemogpt.nn.attention import QueryTransformer, query_mask
from xemogpt.nn.layers import pick_heads
from xemogpt.registry import register


@register("projector", "qformer")
class QFormerProjector(Component):
    """A fixed number of LLM tokens per modality, whatever the input length.

    x (B, N, input_dim), mask (B, N) -> (B, num_queries, output_dim), mask (B, num_queries) (all queries valid iff
    the sample has any valid input token).

    Args:
        input_dim: bridge width (wired in). output_dim: LLM hidden size (wired in).
        num_queries: tokens handed to the LLM. layers: Q-Former layers. dim: Q-Former width (None: input_dim).
        heads: attention heads (None: 64-wide).
    """

    def __init__(self, input_dim: int, output_dim: int, num_queries: int = 32, layers: int = 2,
                 dim: int | None = None, heads: int | None = None, mlp_ratio: float = 4.0,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.save_hyperparameters()
        dim = dim or input_dim
        self.qformer = QueryTransformer(input_dim, dim, num_queries, layers, pick_heads(dim, heads), mlp_ratio,
                                        dropout)
        self.proj = nn.Linear(dim, output_dim)
        self.input_dim, self.output_dim, self.num_queries = input_dim, output_dim, num_queries

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, N, input_dim), mask (B, N) -> ((B, Q, output_dim), (B, Q) mask)."""
        self.check_input_dim(x, self.input_dim, "bridge tokens")
        return self.proj(self.qformer(x, mask)), query_mask(mask, self.num_queries, x.shape[0], x.device)
