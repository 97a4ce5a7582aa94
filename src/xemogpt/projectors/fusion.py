"""Attention fusion of the modalities before the LLM (AffectGPT style)."""

from __future__ import annotations

import torch
from torch import nn

from xemogpt.component import Component
from xemogpt.nn.attention import CrossAttentionLayer
from xemogpt.nn.layers import padding_mask, pick_heads
from xemogpt.registry import register


@register("projector", "attention-fusion")
class AttentionFusionProjector(Component):
    """Each token of this modality cross-attends to the other modality's bridge tokens, then goes to the LLM width.

    forward(x (B, N, input_dim), mask (B, N), context (B, M, context_dim), context_mask (B, M)) ->
    ((B, N, output_dim), mask unchanged). ``uses_context = True`` tells the model to pass the other modality; a
    sample without the other modality (no valid context token) keeps its own tokens unfused.

    Args:
        input_dim: this modality's bridge width (wired in). output_dim: LLM hidden size (wired in).
        context_dim: the other modality's bridge width (wired in). dim: fusion width (None: input_dim).
        layers: fusion layers (cross-attention + MLP each). heads: attention heads (None: 64-wide).
    """

    uses_context = True

    def __init__(self, input_dim: int, output_dim: int, context_dim: int | None = None, dim: int | None = None,
                 layers: int = 1, heads: int | None = None, mlp_ratio: float = 4.0, dropout: float = 0.0) -> None:
        super().__init__()
        self.save_hyperparameters()
        dim = dim or input_dim
        context_dim = context_dim or input_dim
        heads = pick_heads(dim, heads)
        self.in_proj = nn.Linear(input_dim, dim) if dim != input_dim else nn.Identity()
        self.context_proj = nn.Linear(context_dim, dim) if dim != context_dim else nn.Identity()
        self.layers = nn.ModuleList(CrossAttentionLayer(dim, heads, mlp_ratio, dropout, self_attention=False)
                                    for _ in range(layers))
        self.norm = nn.LayerNorm(dim)
        self.proj = nn.Linear(dim, output_dim)
        self.input_dim, self.context_dim, self.output_dim = input_dim, context_dim, output_dim

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, context: torch.Tensor | None = None,
                context_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (B, N, input_dim), context (B, M, context_dim) -> ((B, N, output_dim), mask)."""
        self.check_input_dim(x, self.input_dim, "bridge tokens")
        h = self.in_proj(x)
        if context is not None:
            self.check_input_dim(context, self.context_dim, "context tokens (the other modality)")
            ctx = self.context_proj(context)
            pad, empty = padding_mask(context_mask)
            fused = h
            for layer in self.layers:
                fused = layer(fused, ctx, pad)
            # Without any valid context token the attention read garbage: keep those samples unfused.
            h = fused if empty is None else torch.where(empty[:, None, None], h, fused)
        return self.proj(self.norm(h)), mask
