"""The paper's projector: one Linear per modality."""

from __future__ import annotations

import torch
from torch import nn

from xemogpt.component import Component
from xemogpt.registry import register


@register("projector", "linear")
class LinearProjector(Component):
    """One linear layer that maps every token to the LLM width (the paper's projector).

    x (B, N, input_dim), mask (B, N) -> (B, N, output_dim), mask unchanged.

    Args:
        input_dim: bridge width (wired in). output_dim: LLM hidden size (wired in).
    """

    def __init__(self, input_dim: int, output_dim: int) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.input_dim, self.output_dim = input_dim, output_dim
        self.proj = nn.Linear(input_dim, output_dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        self.check_input_dim(x, self.input_dim, "bridge tokens")
        return self.proj(x), mask
