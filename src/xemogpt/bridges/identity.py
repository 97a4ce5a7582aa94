"""The "no bridge" ablation: encoder tokens go straight to the projector."""

from __future__ import annotations

import torch

from xemogpt.component import Component
from xemogpt.registry import register


@register(("video_bridge", "audio_bridge"), "none")
class IdentityBridge(Component):
    """No bridge: the encoder's tokens pass through unchanged.

    x (B, N, input_dim), mask (B, N) -> x unchanged (output_dim = input_dim).
    """

    def __init__(self, input_dim: int, text_dim: int | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.output_dim = input_dim

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return x

    def task_losses(self, x, mask=None, text_emb=None) -> dict[str, torch.Tensor]:
        return {}
