"""The base class every registered model component derives from."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import nn

from xemogpt.errors import XemoGPTError


class ShapeError(XemoGPTError, ValueError):
    """Two components do not fit together; the message names both and the sizes involved."""


class Component(L.LightningModule):
    """A registered, separately trainable piece of XEmoGPT.

    Subclasses call ``self.save_hyperparameters()`` in ``__init__`` so that every checkpoint carries the arguments
    that rebuild it, set ``self.output_dim`` (the feature width the next component links to) and document the
    tensor shapes of ``forward``. ``freeze`` in a spec (or :meth:`set_frozen`) turns gradients off and keeps the
    module in eval mode even while the surrounding model trains (frozen encoders must not update BatchNorm or use
    dropout).
    """

    output_dim: int

    def __init__(self) -> None:
        super().__init__()
        self._frozen = False

    # --- freezing -------------------------------------------------------------------------------------------
    @property
    def frozen(self) -> bool:
        return self._frozen

    def set_frozen(self, frozen: bool = True) -> Component:
        self._frozen = frozen
        for p in self.parameters():
            p.requires_grad_(not frozen)
        if frozen:
            super().train(False)
        return self

    def train(self, mode: bool = True) -> Component:
        # A frozen component stays in eval mode whatever its parent asks.
        return super().train(mode and not self._frozen)

    # --- introspection --------------------------------------------------------------------------------------
    def spec(self) -> dict[str, Any]:
        """The recipe spec that rebuilds this component (registry name plus saved hyper-parameters)."""
        names = getattr(type(self), "_registry_names", ())
        name = names[0][1] if names else type(self).__name__
        return {"name": name, **dict(self.hparams)}

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def check_input_dim(self, x: torch.Tensor, expected: int, what: str) -> None:
        if x.shape[-1] != expected:
            raise ShapeError(
                f"{type(self).__name__} expects {what} of width {expected}, got shape {tuple(x.shape)}; the "
                f"previous component's output_dim must match this component's input_dim."
            )


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """Small normal init for Linear/Embedding (transformer convention)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=std)
