"""Temporal convolution bridge (ablation: local temporal mixing instead of attention)."""

from __future__ import annotations

import torch
from torch import nn

from xemogpt.bridges.base import BRIDGE_TASKS, AlignmentBridge
from xemogpt.nn.layers import pick_heads
from xemogpt.registry import register


class ConvBlock(nn.Module):
    """x + Linear(GELU(Conv1d(LayerNorm(x)))) over time; padded steps are zeroed before the convolution so they
    never leak into valid ones."""

    def __init__(self, dim: int, kernel_size: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.conv = nn.Conv1d(dim, dim, kernel_size, padding=dilation * (kernel_size // 2), dilation=dilation)
        self.act = nn.GELU()
        self.out = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
        h = self.norm(x)
        if keep is not None:
            h = h * keep
        h = self.conv(h.transpose(1, 2)).transpose(1, 2)
        return x + self.drop(self.out(self.act(h)))


@register(("video_bridge", "audio_bridge"), "temporal-conv")
class TemporalConvBridge(AlignmentBridge):
    """Residual 1-D convolutions along time, with the dilation optionally doubling per layer.

    forward: x (B, N, input_dim), mask (B, N) -> (B, N, dim); padded steps zeroed.

    Args:
        input_dim, text_dim: wired in. layers: conv blocks. dim: width (None: the encoder's). kernel_size: odd
            temporal kernel. dilated: dilation 1, 2, 4 ... per layer. tasks, proj_dim, pooling: alignment task.
    """

    def __init__(self, input_dim: int, text_dim: int | None = None, layers: int = 2, dim: int | None = None,
                 kernel_size: int = 3, dilated: bool = False, dropout: float = 0.0,
                 tasks: list[str] | tuple[str, ...] = BRIDGE_TASKS, proj_dim: int = 768, pooling: str = "mean") -> None:
        super().__init__()
        self.save_hyperparameters()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"temporal-conv kernel_size must be odd (length-preserving), got {kernel_size}")
        dim = dim or input_dim
        self.input_dim, self.output_dim = input_dim, dim
        self.in_proj = nn.Linear(input_dim, dim) if dim != input_dim else nn.Identity()
        self.blocks = nn.ModuleList(ConvBlock(dim, kernel_size, 2 ** i if dilated else 1, dropout)
                                    for i in range(layers))
        self.norm = nn.LayerNorm(dim)
        self.setup_tasks(tasks, text_dim, dim, proj_dim, pooling, pick_heads(dim))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, N, input_dim), mask (B, N) -> (B, N, dim)."""
        self.check_input_dim(x, self.input_dim, "encoder tokens")
        keep = None if mask is None else mask[..., None].to(x.dtype)
        h = self.in_proj(x)
        for block in self.blocks:
            h = block(h, keep)
        h = self.norm(h)
        return h if keep is None else h * keep
