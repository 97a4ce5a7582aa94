"""Q-Former bridge: a fixed number of learned queries read the encoder tokens (changes the sequence length)."""

from __future__ import annotations

import torch

from xemogpt.bridges.base import BRIDGE_TASKS, AlignmentBridge
from xemogpt.nn.attention import QueryTransformer, query_mask
from xemogpt.nn.layers import pick_heads
from xemogpt.registry import register


@register(("video_bridge", "audio_bridge"), "qformer")
class QFormerBridge(AlignmentBridge):
    """Learned queries with self-attention, cross-attention to the encoder tokens and an MLP (Video-LLaMA style).

    forward: x (B, N, input_dim), mask (B, N) -> (B, num_queries, dim). The length changes, so
    ``changes_length = True`` and :meth:`out_mask` gives the (B, num_queries) mask: all queries of a sample are
    valid when it has any valid input token (a clip without the modality has none).

    Args:
        input_dim, text_dim: wired in. num_queries: output tokens. layers: Q-Former layers. dim: width (None: the
            encoder's). heads: attention heads (None: 64-wide). tasks, proj_dim, pooling: alignment task.
    """

    changes_length = True

    def __init__(self, input_dim: int, text_dim: int | None = None, num_queries: int = 32, layers: int = 2,
                 dim: int | None = None, heads: int | None = None, mlp_ratio: float = 4.0, dropout: float = 0.0,
                 tasks: list[str] | tuple[str, ...] = BRIDGE_TASKS, proj_dim: int = 768, pooling: str = "mean") -> None:
        super().__init__()
        self.save_hyperparameters()
        dim = dim or input_dim
        heads = pick_heads(dim, heads)
        self.input_dim, self.output_dim, self.num_queries = input_dim, dim, num_queries
        self.qformer = QueryTransformer(input_dim, dim, num_queries, layers, heads, mlp_ratio, dropout)
        self.setup_tasks(tasks, text_dim, dim, proj_dim, pooling, heads)

    def out_mask(self, mask: torch.Tensor | None) -> torch.Tensor | None:
        """Input mask (B, N) -> (B, num_queries)."""
        return None if mask is None else query_mask(mask, self.num_queries, mask.shape[0], mask.device)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, N, input_dim), mask (B, N) -> (B, num_queries, dim)."""
        self.check_input_dim(x, self.input_dim, "encoder tokens")
        return self.qformer(x, mask)
