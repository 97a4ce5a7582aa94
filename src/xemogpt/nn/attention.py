"""Learned-query cross-attention (Q-Former style) shared by the Q-Former bridge and projector."""

from __future__ import annotations

import torch
from torch import nn

from xemogpt.nn.layers import padding_mask


class CrossAttentionLayer(nn.Module):
    """Pre-LN layer: queries self-attend, cross-attend to a context, then an MLP.

    q (B, Q, dim), context (B, N, dim), context mask (B, N) bool (True = valid) -> (B, Q, dim).
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0,
                 self_attention: bool = True) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by heads={heads}")
        self.self_norm = nn.LayerNorm(dim) if self_attention else None
        self.self_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True) if self_attention \
            else None
        self.cross_norm = nn.LayerNorm(dim)
        self.context_norm = nn.LayerNorm(dim)
        self.cross_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.mlp_norm = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim))

    def forward(self, q: torch.Tensor, context: torch.Tensor, pad: torch.Tensor | None) -> torch.Tensor:
        if self.self_attn is not None:
            h = self.self_norm(q)
            q = q + self.self_attn(h, h, h, need_weights=False)[0]
        h = self.cross_norm(q)
        c = self.context_norm(context)
        q = q + self.cross_attn(h, c, c, key_padding_mask=pad, need_weights=False)[0]
        return q + self.mlp(self.mlp_norm(q))


class QueryTransformer(nn.Module):
    """``num_queries`` learned queries read a token sequence through ``layers`` cross-attention layers.

    x (B, N, input_dim), mask (B, N) -> (B, num_queries, dim). Rows without any valid token give zeros.
    """

    def __init__(self, input_dim: int, dim: int, num_queries: int, layers: int, heads: int, mlp_ratio: float = 4.0,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if num_queries < 1 or layers < 1:
            raise ValueError(f"a Q-Former needs num_queries >= 1 and layers >= 1, got {num_queries} and {layers}")
        self.in_proj = nn.Linear(input_dim, dim) if input_dim != dim else nn.Identity()
        self.queries = nn.Parameter(torch.randn(1, num_queries, dim) * 0.02)
        self.layers = nn.ModuleList(CrossAttentionLayer(dim, heads, mlp_ratio, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        ctx = self.in_proj(x)
        pad, empty = padding_mask(mask)
        q = self.queries.expand(x.shape[0], -1, -1).to(ctx.dtype)
        for layer in self.layers:
            q = layer(q, ctx, pad)
        q = self.norm(q)
        return q if empty is None else q.masked_fill(empty[:, None, None], 0.0)


def query_mask(mask: torch.Tensor | None, num_queries: int, batch: int, device) -> torch.Tensor:
    """Input mask (B, N) -> query mask (B, Q): all queries of a sample are valid iff it has any valid input."""
    if mask is None:
        return torch.ones(batch, num_queries, dtype=torch.bool, device=device)
    return mask.any(1, keepdim=True).expand(-1, num_queries)
