"""VECB, the Video Emotional Cue Bridge, as released with XEmoGPT, with its three pre-training tasks and the
variants the ablations compare."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from xemogpt.bridges.layers import AttentionPool, AttentionPooling, CLIPLayer, LayerShape, key_padding_bias
from xemogpt.bridges.losses import contrastive_loss, masked_mean
from xemogpt.component import Component
from xemogpt.registry import register

VECB_TASKS = ("contrastive", "temporal_order", "masked_frame")
POOLINGS = ("attention", "mean", "query")
ORDER_PERMUTES = ("after_position", "before_position")
ORDER_SCOPES = ("batch", "sample")
ORDER_HEADS = ("projected", "pairwise")
MASK_MODES = ("zero", "token")
MASK_COUNTS = ("bernoulli", "exact")


@register("video_bridge", "vecb")
class VECB(Component):
    """Learned temporal position embedding + CLIP encoder layers over per-frame tokens, no final norm.

    forward: x (B, T, input_dim), mask (B, T) bool -> (B, T, dim) (the projector's input). With the defaults this is
    the released ``VisualTextEncoder``: ``position_embedding`` (1, T, dim) added, then ``layers`` layers equal to
    ``CLIPEncoderLayer`` of the encoder's own config (heads, MLP width, quick_gelu, eps follow the vision tower).

    Pre-training tasks (``task_losses``), on the released heads (their weights load from the official file):

    - ``contrastive``: the pooled output through ``visual_project`` (dim -> proj_dim) against the text encoder's
      embedding of the clip's visual cues through ``text_project`` (text_dim -> proj_dim), symmetric InfoNCE;
    - ``temporal_order``: ``temporal_disc_head`` (proj_dim -> proj_dim -> 1) tells the projected pooled embedding
      of the clip from that of the clip with its frames permuted (binary cross-entropy);
    - ``masked_frame``: frames are hidden and ``frame_reconstructor`` (dim -> input_dim) predicts them from the
      bridge output at those frames (MSE to the layer-normalised frame features).

    The official code's losses are not released; these are ours, on the released heads. Its task inputs are the
    defaults below. Note that with ``order_permute: after_position`` (released) every frame keeps its own position
    embedding when the frames are permuted, and the layers and the pooling do not depend on order, so the permuted
    clip's embedding equals the clip's: the released temporal task carries no signal. ``before_position`` (the
    frames move, the positions stay) makes order visible.

    Args:
        input_dim: encoder width (wired in). text_dim: text-encoder width for ``contrastive`` (wired in; None
            disables that task). encoder_layer: the encoder's layer config (wired in; see
            :class:`~xemogpt.bridges.layers.LayerShape`), used when the bridge keeps the encoder's width.
        num_frames: length of the position embedding (16). layers: CLIP layers (2). dim: width (None: the
            encoder's; another width adds ``input_project``). heads, mlp_dim, activation, layer_norm_eps,
            attention_dropout: layer shape overrides (None: the encoder's config, else 64-wide heads, 4x MLP).
        final_norm: a LayerNorm after the layers (released: none).
        tasks: enabled pre-training tasks. proj_dim: contrastive/temporal width (768).
        pooling: ``attention`` (released: one learned vector, ``softmax_t(x_t . v)``), ``mean``, or ``query``
            (multi-head attention from a learned query).
        order_permute: ``after_position`` (released) or ``before_position``, see above. order_scope: one
            permutation for the ``batch`` (released) or one per ``sample``. order_head: ``projected`` (released:
            ``temporal_disc_head`` on the pooled, projected embedding; each batch gives the clip as "in order" and its
            permuted copy as "shuffled") or ``pairwise`` (scores every pair of neighbouring output frames, half of
            the clips shuffled).
        mask_ratio: masked-frame probability (0.5). mask_mode: ``zero`` (released: hidden frames zeroed before the
            position embedding) or ``token`` (a learned mask token). mask_count: ``bernoulli`` (released: each frame
            hidden with probability ``mask_ratio``) or ``exact`` (round(mask_ratio x valid frames), at least one).
        task_weights: loss weight per task. lr: learning rate of standalone training (``Trainer.fit(bridge)``).
    """

    def __init__(self, input_dim: int, text_dim: int | None = None, encoder_layer: dict[str, Any] | None = None,
                 num_frames: int = 16, layers: int = 2, dim: int | None = None, heads: int | None = None,
                 mlp_dim: int | None = None, activation: str | None = None, layer_norm_eps: float | None = None,
                 attention_dropout: float | None = None, final_norm: bool = False,
                 tasks: list[str] | tuple[str, ...] = VECB_TASKS, proj_dim: int = 768, pooling: str = "attention",
                 order_permute: str = "after_position", order_scope: str = "batch", order_head: str = "projected",
                 mask_ratio: float = 0.5, mask_mode: str = "zero", mask_count: str = "bernoulli",
                 task_weights: dict[str, float] | None = None, lr: float = 1e-4) -> None:
        super().__init__()
        self.save_hyperparameters()
        for arg, value, allowed in (("tasks", None, VECB_TASKS), ("pooling", pooling, POOLINGS),
                                    ("order_permute", order_permute, ORDER_PERMUTES),
                                    ("order_scope", order_scope, ORDER_SCOPES), ("order_head", order_head, ORDER_HEADS),
                                    ("mask_mode", mask_mode, MASK_MODES), ("mask_count", mask_count, MASK_COUNTS)):
            bad = sorted(set(tasks) - set(allowed)) if arg == "tasks" else ([] if value in allowed else [value])
            if bad:
                raise ValueError(f"video_bridge.{arg}: unknown value(s) {bad}; choose from {list(allowed)}")
        dim = dim or input_dim
        self.shape = LayerShape.resolve(encoder_layer, dim, heads, mlp_dim, activation, "quick_gelu", layer_norm_eps,
                                        {"attention_dropout": attention_dropout})
        self.input_dim, self.dim, self.output_dim = input_dim, dim, dim
        self.input_project = nn.Linear(input_dim, dim) if dim != input_dim else None
        self.position_embedding = nn.Parameter(torch.randn(1, num_frames, dim) * 0.02)
        self.layers = nn.ModuleList(CLIPLayer(self.shape) for _ in range(layers))
        self.final_norm = nn.LayerNorm(dim, eps=self.shape.layer_norm_eps) if final_norm else None
        self.tasks = tuple(tasks)
        self.attention_pooling = AttentionPooling(dim) if pooling == "attention" else None
        self.query_pooling = AttentionPool(dim, self.shape.num_attention_heads) if pooling == "query" else None
        self.visual_project = nn.Linear(dim, proj_dim)
        self.text_project = nn.Linear(text_dim, proj_dim) if text_dim and "contrastive" in self.tasks else None
        self.logit_scale = nn.Parameter(torch.tensor(2.659)) if self.text_project is not None else None
        if "temporal_order" in self.tasks:
            if order_head == "projected":
                self.temporal_disc_head = nn.Sequential(nn.Linear(proj_dim, proj_dim), nn.ReLU(),
                                                        nn.Linear(proj_dim, 1))
            else:
                self.order_head = nn.Sequential(nn.Linear(2 * dim, dim), nn.GELU(), nn.Linear(dim, 1))
        if "masked_frame" in self.tasks:
            self.frame_reconstructor = nn.Linear(dim, input_dim)
            self.mask_token = nn.Parameter(torch.zeros(1, 1, input_dim)) if mask_mode == "token" else None

    # --- the bridge ---------------------------------------------------------------------------------------------
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, input_dim) -> frame tokens with their position embedding (B, T, dim)."""
        self.check_input_dim(x, self.input_dim, "video tokens")
        t = x.shape[1]
        if t > self.position_embedding.shape[1]:
            raise ValueError(f"VECB has a position embedding for {self.position_embedding.shape[1]} frames, got {t}; "
                             "sample fewer frames or set video_bridge.num_frames")
        h = self.input_project(x) if self.input_project is not None else x
        return h + self.position_embedding[:, :t].to(h.dtype)

    def encode(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Position-embedded tokens (B, T, dim), mask (B, T) -> (B, T, dim) through the layers."""
        bias = key_padding_bias(mask, h.dtype)
        for layer in self.layers:
            h = layer(h, bias)
        return self.final_norm(h) if self.final_norm is not None else h

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, T, input_dim), mask (B, T) -> (B, T, dim)."""
        return self.encode(self.embed(x), mask)

    def pooled(self, h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Bridge output (B, T, dim) -> (B, dim) by the chosen pooling."""
        if self.attention_pooling is not None:
            return self.attention_pooling(h, mask)
        if self.query_pooling is not None:
            return self.query_pooling(h, mask)
        return masked_mean(h, mask)

    def clip_embedding(self, h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Bridge output (B, T, dim) -> the projected clip embedding (B, proj_dim) (``visual_project(pool(h))``)."""
        return self.visual_project(self.pooled(h, mask))

    # --- pre-training tasks -------------------------------------------------------------------------------------
    def task_losses(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                    text_emb: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Loss of every enabled task on encoder tokens x (B, T, input_dim), mask (B, T) and text embeddings
        (B, text_dim)."""
        losses: dict[str, torch.Tensor] = {}
        w = self.hparams.task_weights or {}
        b, t = x.shape[:2]
        valid = torch.ones(b, t, dtype=torch.bool, device=x.device) if mask is None else mask
        h0 = self.embed(x)
        out = None
        if "contrastive" in self.tasks and self.text_project is not None and text_emb is not None:
            out = self.encode(h0, mask)
            losses["contrastive"] = w.get("contrastive", 1.0) * contrastive_loss(
                self.clip_embedding(out, mask), self.text_project(text_emb.to(out.dtype)), self.logit_scale, text_emb)
        if "temporal_order" in self.tasks:
            loss = self._order_loss(x, h0, out, valid, mask)
            if loss is not None:
                losses["temporal_order"] = w.get("temporal_order", 1.0) * loss
        if "masked_frame" in self.tasks:
            loss = self._masked_frame_loss(x, valid, mask)
            if loss is not None:
                losses["masked_frame"] = w.get("masked_frame", 1.0) * loss
        return losses

    def _permutation(self, b: int, t: int, valid: torch.Tensor) -> torch.Tensor:
        """(B, T) frame order: one random permutation of the valid frames for the batch or per sample; padded frames
        stay behind the valid ones."""
        ar = torch.arange(t, device=valid.device).expand(b, t)
        if self.hparams.order_scope == "batch":
            noise = torch.rand(t, device=valid.device).expand(b, t)
        else:
            noise = torch.rand(b, t, device=valid.device)
        return torch.where(valid, noise, 2.0 + ar.float()).argsort(1)

    def _order_loss(self, x, h0, out, valid, mask) -> torch.Tensor | None:
        b, t = x.shape[:2]
        order = self._permutation(b, t, valid)
        ident = torch.where(valid, torch.zeros_like(valid, dtype=torch.float), 2.0).argsort(dim=1, stable=True)
        moved = (order != ident).any(1)  # a permutation can come out as the identity (and 1-frame clips cannot move)
        if self.hparams.order_permute == "after_position":  # released: frames move with their position embedding
            hs = h0.gather(1, order[..., None].expand_as(h0))
        else:
            hs = self.embed(x.gather(1, order[..., None].expand_as(x)))
        ms = None if mask is None else mask.gather(1, order)
        if self.hparams.order_head == "projected":
            out = self.encode(h0, mask) if out is None else out
            shuffled = self.encode(hs, ms)
            keep = moved & valid.any(1)
            if not bool(keep.any()):
                return None
            logits = torch.cat([self.temporal_disc_head(self.clip_embedding(out, mask)[keep]),
                                self.temporal_disc_head(self.clip_embedding(shuffled, ms)[keep])]).squeeze(-1)
            labels = torch.cat([torch.zeros(int(keep.sum()), device=x.device),
                                torch.ones(int(keep.sum()), device=x.device)])
            return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
        # pairwise: half of the clips shuffled; the head scores neighbouring output frames
        shuffle = (torch.rand(b, device=x.device) < 0.5) & moved
        h_in = torch.where(shuffle[:, None, None], hs, h0)
        m_in = None if mask is None else torch.where(shuffle[:, None], ms, mask)
        h = self.encode(h_in, m_in)
        pairs = torch.cat([h[:, :-1], h[:, 1:]], dim=-1)  # (B, T-1, 2 dim): frame t next to frame t+1
        pair_mask = None if m_in is None else m_in[:, :-1] & m_in[:, 1:]
        logit = masked_mean(self.order_head(pairs), pair_mask).squeeze(-1)
        return F.binary_cross_entropy_with_logits(logit, shuffle.to(logit.dtype))

    def _masked_frame_loss(self, x, valid, mask) -> torch.Tensor | None:
        b, t = x.shape[:2]
        if self.hparams.mask_count == "bernoulli":  # released: each frame hidden with probability mask_ratio
            m = (torch.rand(b, t, device=x.device) < self.hparams.mask_ratio) & valid
        else:  # round(mask_ratio x valid frames) of each clip, at least one, chosen uniformly among the valid ones
            n_valid = valid.sum(1)
            n_mask = torch.round(self.hparams.mask_ratio * n_valid.float()).long().clamp(min=1).minimum(n_valid)
            score = torch.rand(b, t, device=x.device).masked_fill(~valid, 2.0)
            m = score.argsort(1).argsort(1) < n_mask[:, None]
        if not bool(m.any()):  # nothing hidden (or no valid frame): nothing to reconstruct
            return None
        # The encoder gets no gradient from this task: with a trainable encoder, reconstructing its own output has a
        # trivial solution (constant features) that would erase the cues the other tasks need.
        xd = x.detach()
        fill = self.mask_token.to(xd.dtype).expand_as(xd) if self.mask_token is not None else torch.zeros_like(xd)
        pred = self.frame_reconstructor(self(torch.where(m[..., None], fill, xd), mask))
        target = F.layer_norm(xd, xd.shape[-1:])
        return F.mse_loss(pred[m], target[m])

    # --- standalone training: batch {"features": (B,T,D), "mask": (B,T), "text_emb": (B,E)} ------------------------
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        losses = self.task_losses(batch["features"], batch.get("mask"), batch.get("text_emb"))
        for k, v in losses.items():
            self.log(f"vecb/{k}", v, prog_bar=True)
        return sum(losses.values())

    def configure_optimizers(self):
        return torch.optim.AdamW([p for p in self.parameters() if p.requires_grad], lr=self.hparams.lr)
