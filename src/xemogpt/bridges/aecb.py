"""AECB, the Audio Emotional Cue Bridge, as released with XEmoGPT, with its acoustic-description alignment task."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from xemogpt.bridges.layers import HubertLayer, LayerShape, key_padding_bias
from xemogpt.bridges.losses import contrastive_loss, masked_mean
from xemogpt.component import Component
from xemogpt.registry import register


@register("audio_bridge", "aecb")
class AECB(Component):
    """HuBERT encoder layers (post-LN) over all audio tokens.

    forward: x (B, A, input_dim), mask (B, A) bool -> (B, A, dim), padded tokens zero. With the defaults this is the
    released ``AudioEncoder``: padded tokens zeroed, ``layers`` layers equal to ``HubertEncoderLayer`` of the
    encoder's own config (heads, MLP width, activation, eps and dropouts follow the speech model) with padded keys
    masked by ``finfo.min``, padded tokens zeroed again.

    Pre-training task ``contrastive``: the masked mean over valid tokens through ``audio_project`` (dim -> proj_dim)
    aligned (InfoNCE, ours: the official loss is not released) with the text encoder's embedding of the clip's
    acoustic description through ``text_project`` (text_dim -> proj_dim).

    Args:
        input_dim: encoder width (wired in). text_dim: text-encoder width (wired in; None disables the task).
        encoder_layer: the encoder's layer config (wired in), used when the bridge keeps the encoder's width.
        layers: HuBERT layers (2). dim: width (None: the encoder's; another width adds ``input_project``).
        heads, mlp_dim, activation, layer_norm_eps, dropout, attention_dropout, activation_dropout: layer shape
            overrides (None: the encoder's config; ``dropout`` is HuBERT's ``hidden_dropout``).
        max_positions: length of an optional learned position embedding (0: none, as released: HuBERT's relative
            conv positions already live in the encoder output).
        proj_dim: alignment width (768). lr: learning rate of standalone training.
    """

    def __init__(self, input_dim: int, text_dim: int | None = None, encoder_layer: dict[str, Any] | None = None,
                 layers: int = 2, dim: int | None = None, heads: int | None = None, mlp_dim: int | None = None,
                 activation: str | None = None, layer_norm_eps: float | None = None, dropout: float | None = None,
                 attention_dropout: float | None = None, activation_dropout: float | None = None,
                 tasks: list[str] | tuple[str, ...] = ("contrastive",), proj_dim: int = 768,
                 max_positions: int = 0, lr: float = 1e-4) -> None:
        super().__init__()
        self.save_hyperparameters()
        unknown = set(tasks) - {"contrastive"}
        if unknown:
            raise ValueError(f"audio_bridge.tasks: unknown task(s) {sorted(unknown)}; AECB has 'contrastive'")
        dim = dim or input_dim
        self.shape = LayerShape.resolve(encoder_layer, dim, heads, mlp_dim, activation, "gelu", layer_norm_eps,
                                        {"hidden_dropout": dropout, "attention_dropout": attention_dropout,
                                         "activation_dropout": activation_dropout})
        self.input_dim, self.output_dim = input_dim, dim
        self.input_project = nn.Linear(input_dim, dim) if dim != input_dim else None
        self.position_embedding = nn.Parameter(torch.randn(1, max_positions, dim) * 0.02) if max_positions else None
        self.layers = nn.ModuleList(HubertLayer(self.shape) for _ in range(layers))
        self.tasks = tuple(tasks)
        self.audio_project = nn.Linear(dim, proj_dim)
        self.text_project = nn.Linear(text_dim, proj_dim) if text_dim and "contrastive" in self.tasks else None
        self.logit_scale = nn.Parameter(torch.tensor(2.659)) if self.text_project is not None else None

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, A, input_dim), mask (B, A) -> (B, A, dim) with padded tokens zero."""
        self.check_input_dim(x, self.input_dim, "audio tokens")
        h = self.input_project(x) if self.input_project is not None else x
        if self.position_embedding is not None:
            if h.shape[1] > self.position_embedding.shape[1]:
                raise ValueError(f"AECB position embedding covers {self.position_embedding.shape[1]} tokens, got "
                                 f"{h.shape[1]}; raise audio_bridge.max_positions")
            h = h + self.position_embedding[:, : h.shape[1]].to(h.dtype)
        keep = None if mask is None else mask[..., None].to(h.dtype)
        if keep is not None:
            h = h * keep
        bias = key_padding_bias(mask, h.dtype)
        for layer in self.layers:
            h = layer(h, bias)
        return h * keep if keep is not None else h

    def clip_embedding(self, h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Bridge output (B, A, dim) -> (B, proj_dim): masked mean over valid tokens through ``audio_project``."""
        return self.audio_project(masked_mean(h, mask))

    def task_losses(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                    text_emb: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """x (B, A, input_dim), mask (B, A), text embeddings (B, text_dim) -> {"contrastive": loss}."""
        if "contrastive" not in self.tasks or self.text_project is None or text_emb is None:
            return {}
        h = self(x, mask)
        return {"contrastive": contrastive_loss(self.clip_embedding(h, mask), self.text_project(text_emb.to(h.dtype)),
                                                self.logit_scale, text_emb)}

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        losses = self.task_losses(batch["features"], batch.get("mask"), batch.get("text_emb"))
        for k, v in losses.items():
            self.log(f"aecb/{k}", v, prog_bar=True)
        return sum(losses.values())

    def configure_optimizers(self):
        return torch.optim.AdamW([p for p in self.parameters() if p.requires_grad], lr=self.hparams.lr)
