"""What every bridge shares: its standalone training on cached features (:class:`TaskBridge`), and the skeleton of the
ablation bridges, an optional contrastive cue-alignment task (:class:`AlignmentBridge`)."""

from __future__ import annotations

import torch
from torch import nn

from xemogpt.component import Component
from xemogpt.nn.layers import AttentionPool
from xemogpt.nn.losses import contrastive_loss, masked_mean

BRIDGE_TASKS = ("contrastive",)


class TaskBridge(Component):
    """A bridge with pre-training tasks: ``forward(x (B, N, D), mask (B, N)) -> (B, N', output_dim)`` and
    ``task_losses(x, mask, text_emb) -> {task: loss}``. It trains alone with ``Trainer.fit(bridge, data)`` on batches
    ``{"features": (B, N, D) frozen-encoder tokens, "mask": (B, N) bool, "text_emb": (B, E) cue-text embeddings}``
    (:class:`xemogpt.data.views.BridgeData`), logging ``train/<tag>/<task>``
    and ``val/<tag>/<task>``; the recipe stage sets its optimiser (:meth:`use_stage`)."""

    loss_tag = "bridge"

    def _task_step(self, batch: dict, split: str) -> torch.Tensor | None:
        losses = self.task_losses(batch["features"], batch.get("mask"), batch.get("text_emb"))
        if not losses:
            if split == "train":
                raise ValueError(f"{type(self).__name__} has no task to train (tasks={self.tasks}; a text encoder "
                                 "for the contrastive task?)")
            return None
        n = int(batch["features"].shape[0])
        for k, v in losses.items():
            self.log(f"{split}/{self.loss_tag}/{k}", v, prog_bar=split == "train", batch_size=n,
                     sync_dist=split != "train")
        total = sum(losses.values())
        self.log(f"{split}/loss", total, prog_bar=True, batch_size=n, sync_dist=split != "train")
        return total

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self._task_step(batch, "train")

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._task_step(batch, "val")


class AlignmentBridge(TaskBridge):
    """Base for bridge variants: ``forward(x, mask) -> (B, N', output_dim)``; ``task_losses`` aligns the pooled
    output with the text encoder's embedding of the clip's cue text (InfoNCE), so every variant can be pre-trained
    on the same cue-perception signal as VECB/AECB in an ablation.

    Subclasses call :meth:`setup_tasks` after building their layers. Bridges that change the sequence length set
    ``changes_length = True`` and implement ``out_mask(mask) -> (B, N')``.
    """

    changes_length = False

    def setup_tasks(self, tasks, text_dim: int | None, dim: int, proj_dim: int, pooling: str, heads: int) -> None:
        unknown = set(tasks) - set(BRIDGE_TASKS)
        if unknown:
            raise ValueError(f"unknown {type(self).__name__} task(s) {sorted(unknown)}; this bridge has {BRIDGE_TASKS}")
        if pooling not in ("mean", "attention"):
            raise ValueError(f"bridge pooling must be 'mean' or 'attention', got {pooling!r}")
        self.tasks = tuple(tasks)
        if "contrastive" in self.tasks and text_dim:
            self.pool = AttentionPool(dim, heads) if pooling == "attention" else None
            self.bridge_proj = nn.Linear(dim, proj_dim)
            self.text_proj = nn.Linear(text_dim, proj_dim)
            self.logit_scale = nn.Parameter(torch.tensor(2.659))

    def out_mask(self, mask: torch.Tensor | None) -> torch.Tensor | None:
        """Input mask (B, N) -> output mask (B, N'); the same for length-preserving bridges."""
        return mask

    def task_losses(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                    text_emb: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Encoder tokens x (B, N, input_dim), mask (B, N), text embeddings (B, text_dim) -> {"contrastive": loss}."""
        if "contrastive" not in self.tasks or not hasattr(self, "bridge_proj") or text_emb is None:
            return {}
        h = self(x, mask)
        m = self.out_mask(mask)
        pooled = self.pool(h, m) if self.pool is not None else masked_mean(h, m)
        return {"contrastive": contrastive_loss(self.bridge_proj(pooled), self.text_proj(text_emb),
                                                self.logit_scale, text_emb)}


