"""Transformer layers shaped like the encoders' own (pre-LayerNorm, 4x MLP)."""

from __future__ import annotations

import torch
from torch import nn


class TransformerStack(nn.Module):
    """``layers`` pre-LN transformer encoder layers: x (B, N, dim), pad mask (B, N) bool (True = valid) -> (B, N, dim).

    ``activation='quick_gelu'`` mirrors CLIP's vision layers, ``'gelu'`` HuBERT's encoder layers.
    """

    def __init__(self, dim: int, layers: int, heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0,
                 activation: str = "gelu") -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"bridge width {dim} is not divisible by heads={heads}")
        act = QuickGELU() if activation == "quick_gelu" else "gelu"
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(dim, heads, int(dim * mlp_ratio), dropout, activation=act, batch_first=True,
                                       norm_first=True)
            for _ in range(layers)
        )
        self.norm = nn.LayerNorm(dim) if layers else nn.Identity()

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        pad, empty = padding_mask(mask)
        for layer in self.layers:
            x = layer(x, src_key_padding_mask=pad)
        x = self.norm(x)
        return x if empty is None else x.masked_fill(empty[:, None, None], 0.0)


def padding_mask(mask: torch.Tensor | None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Valid mask (B, N) -> (key padding mask (B, N), rows with no valid entry (B,) or None).

    A row with nothing valid (a clip without this modality) would make attention softmax over nothing and yield
    NaN, which poisons gradients even when the row is masked later; such rows attend everywhere instead and the
    caller zeroes their output. On the meta device (``--describe``) the mask is left as it is.
    """
    if mask is None:
        return None, None
    pad = ~mask
    if mask.device.type == "meta":
        return pad, None
    empty = ~mask.any(1)
    return pad & ~empty[:, None], empty


class QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class AttentionPool(nn.Module):
    """One learned query attending over the sequence: (B, N, dim), mask (B, N) -> (B, dim)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.query = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        q = self.query.expand(x.shape[0], -1, -1)
        pad, _ = padding_mask(mask)
        out, _ = self.attn(q, x, x, key_padding_mask=pad)
        return out[:, 0]


def pick_heads(dim: int, preferred: int | None = None) -> int:
    """A head count that divides ``dim`` (64-wide heads where possible)."""
    if preferred:
        return preferred
    for h in (dim // 64, 16, 12, 8, 4, 2, 1):
        if h >= 1 and dim % h == 0:
            return h
    return 1
