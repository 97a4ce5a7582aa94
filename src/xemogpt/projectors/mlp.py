"""LLaVA-style MLP projector."""

from __future__ import annotations

import torch
from torch import nn

from xemogpt.component import Component
from xemogpt.registry import register


@register("projector", "mlp")
class MLPProjector(Component):
    """Linear layers with GELU between them on every token (LLaVA's mlp2x_gelu at depth 2).

    ``depth`` Linear layers: Linear -> GELU -> Linear at depth 2.

    x (B, N, input_dim), mask (B, N) -> (B, N, output_dim), mask unchanged.

    Args:
        input_dim: bridge width (wired in). output_dim: LLM hidden size (wired in).
        depth: number of Linear layers (>= 1). hidden_dim: width between them (None: output_dim, as LLaVA).
    """

    def __init__(self, input_dim: int, output_dim: int, depth: int = 2, hidden_dim: int | None = None,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.save_hyperparameters()
        if depth < 1:
            raise ValueError(f"mlp projector depth must be >= 1, got {depth}")
        hidden = hidden_dim or output_dim
        dims = [input_dim] + [hidden] * (depth - 1) + [output_dim]
        layers: list[nn.Module] = []
        for i in range(depth):
            layers.append(nn.Linear(dims[i], dims[i + 1]))
            if i < depth - 1:
                layers += [nn.GELU(), nn.Dropout(dropout)]
        self.mlp = nn.Sequential(*layers)
        self.input_dim, self.output_dim = input_dim, output_dim

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (B, N, input_dim) -> ((B, N, output_dim), mask)."""
        self.check_input_dim(x, self.input_dim, "bridge tokens")
        return self.mlp(x), mask
