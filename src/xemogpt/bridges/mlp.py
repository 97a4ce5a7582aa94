"""Per-token MLP bridge (ablation: no temporal mixing at all)."""

from __future__ import annotations

import torch
from torch import nn

from xemogpt.bridges.base import BRIDGE_TASKS, AlignmentBridge
from xemogpt.nn.layers import pick_heads
from xemogpt.registry import register


class ResidualMLP(nn.Module):
    """x + MLP(LayerNorm(x)) on every token: (B, N, dim) -> (B, N, dim)."""

    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mlp(self.norm(x))


@register(("video_bridge", "audio_bridge"), "mlp")
class MLPBridge(AlignmentBridge):
    """Residual MLP blocks applied to each token independently.

    forward: x (B, N, input_dim), mask (B, N) -> (B, N, dim); padded tokens are zeroed.

    Args:
        input_dim, text_dim: wired in by the model. layers: residual MLP blocks. dim: width (None: the encoder's).
        mlp_ratio: hidden width / dim. tasks: ``[contrastive]`` or ``[]``. proj_dim, pooling: the alignment task.
    """

    def __init__(self, input_dim: int, text_dim: int | None = None, layers: int = 2, dim: int | None = None,
                 mlp_ratio: float = 4.0, dropout: float = 0.0, tasks: list[str] | tuple[str, ...] = BRIDGE_TASKS,
                 proj_dim: int = 768, pooling: str = "mean") -> None:
        super().__init__()
        self.save_hyperparameters()
        dim = dim or input_dim
        self.input_dim, self.output_dim = input_dim, dim
        self.in_proj = nn.Linear(input_dim, dim) if dim != input_dim else nn.Identity()
        self.blocks = nn.Sequential(*(ResidualMLP(dim, int(dim * mlp_ratio), dropout) for _ in range(layers)))
        self.norm = nn.LayerNorm(dim)
        self.setup_tasks(tasks, text_dim, dim, proj_dim, pooling, pick_heads(dim))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, N, input_dim), mask (B, N) -> (B, N, dim)."""
        self.check_input_dim(x, self.input_dim, "encoder tokens")
        h = self.norm(self.blocks(self.in_proj(x)))
        return h if mask is None else h * mask[..., None].to(h.dtype)
