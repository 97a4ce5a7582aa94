"""Transformer layers of the bridges.

* :class:`CLIPLayer` and :class:`HubertLayer` compute exactly what transformers' ``CLIPEncoderLayer`` (pre-LN) and
  ``HubertEncoderLayer`` (post-LN) compute, with the same parameter names, so the released XEmoGPT weights load into
  them key for key. They are written here rather than taken from transformers because the official code calls them
  the transformers 4.x way (``layer(x, None, None)[0]``), which under 5.x raises (CLIP) or silently returns batch
  item 0 (HuBERT); :class:`LayerShape` carries the encoder config fields both are built from.
* :class:`TransformerStack` is the generic pre-LN stack of the ablation bridges.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class TransformerStack(nn.Module):
    """``layers`` pre-LN transformer encoder layers: x (B, N, dim), pad mask (B, N) bool (True = valid) -> (B, N, dim).

    ``activation='quick_gelu'`` mirrors CLIP's vision layers, ``'gelu'`` HuBERT's encoder layers.
    """

    def __init__(self, dim: int, layers: int, heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0,
                 activation: str = "gelu") -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"bridge width {dim} is not divisible by heads={heads}")
        act = QuickGELU() if activation == "quick_gelu" else "gelu"
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(dim, heads, int(dim * mlp_ratio), dropout, activation=act, batch_first=True,
                                       norm_first=True)
            for _ in range(layers)
        )
        self.norm = nn.LayerNorm(dim) if layers else nn.Identity()

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        pad, empty = padding_mask(mask)
        for layer in self.layers:
            x = layer(x, src_key_padding_mask=pad)
        x = self.norm(x)
        return x if empty is None else x.masked_fill(empty[:, None, None], 0.0)


def padding_mask(mask: torch.Tensor | None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Valid mask (B, N) -> (key padding mask (B, N), rows with no valid entry (B,) or None).

    A row with nothing valid (a clip without this modality) would make attention softmax over nothing and yield
    NaN, which poisons gradients even when the row is masked later; such rows attend everywhere instead and the
    caller zeroes their output. On the meta device (``--describe``) the mask is left as it is.
    """
    if mask is None:
        return None, None
    pad = ~mask
    if mask.device.type == "meta":
        return pad, None
    empty = ~mask.any(1)
    return pad & ~empty[:, None], empty


class QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class AttentionPool(nn.Module):
    """One learned query attending over the sequence: (B, N, dim), mask (B, N) -> (B, dim)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.query = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        q = self.query.expand(x.shape[0], -1, -1)
        pad, _ = padding_mask(mask)
        out, _ = self.attn(q, x, x, key_padding_mask=pad)
        return out[:, 0]


def pick_heads(dim: int, preferred: int | None = None) -> int:
    """A head count that divides ``dim`` (64-wide heads where possible)."""
    if preferred:
        return preferred
    for h in (dim // 64, 16, 12, 8, 4, 2, 1):
        if h >= 1 and dim % h == 0:
            return h
    return 1


# --- layers equal to the encoders' own -----------------------------------------------------------------------------
ACTIVATIONS = {
    "quick_gelu": lambda x: x * torch.sigmoid(1.702 * x),
    "gelu": F.gelu,
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
    "silu": F.silu,
    "swish": F.silu,
}


def activation_fn(name: str):
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose from {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


@dataclass
class LayerShape:
    """The fields of an encoder's transformers config a bridge layer is built from (``CLIPEncoderLayer(config)`` /
    ``HubertEncoderLayer(config)`` read exactly these)."""

    hidden_size: int
    num_attention_heads: int
    intermediate_size: int
    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-5
    attention_dropout: float = 0.0
    hidden_dropout: float = 0.0
    activation_dropout: float = 0.0

    @classmethod
    def from_config(cls, config: Any) -> LayerShape:
        """From a transformers config object or dict (missing dropouts are 0)."""
        get = config.get if isinstance(config, dict) else (lambda k, d=None: getattr(config, k, d))
        kw = {f.name: get(f.name) for f in fields(cls)}
        return cls(**{k: v for k, v in kw.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def resolve(cls, encoder_layer: dict[str, Any] | None, dim: int, heads: int | None, mlp_dim: int | None,
                activation: str | None, default_activation: str, layer_norm_eps: float | None,
                dropouts: dict[str, float | None]) -> LayerShape:
        """The layer shape of a bridge: explicit arguments, else the encoder's own config when the bridge keeps its
        width (``encoder_layer``, wired in by the model), else defaults (64-wide heads, 4x MLP)."""
        enc = encoder_layer if encoder_layer and int(encoder_layer["hidden_size"]) == dim else None
        base = cls.from_config(enc) if enc else cls(dim, pick_heads(dim), 4 * dim, default_activation)
        shape = cls(hidden_size=dim, num_attention_heads=heads or base.num_attention_heads,
                    intermediate_size=mlp_dim or base.intermediate_size, hidden_act=activation or base.hidden_act,
                    layer_norm_eps=base.layer_norm_eps if layer_norm_eps is None else float(layer_norm_eps),
                    attention_dropout=base.attention_dropout, hidden_dropout=base.hidden_dropout,
                    activation_dropout=base.activation_dropout)
        for k, v in dropouts.items():
            if v is not None:
                setattr(shape, k, float(v))
        if dim % shape.num_attention_heads:
            raise ValueError(f"bridge width {dim} is not divisible by heads={shape.num_attention_heads}")
        activation_fn(shape.hidden_act)
        return shape


def key_padding_bias(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """Valid mask (B, N) -> additive attention bias (B, 1, 1, N): 0 on valid keys, ``finfo.min`` on padded ones (as
    transformers builds it; a row with no valid key then attends uniformly instead of producing NaN). None when
    everything is valid (no bias at all, as the official VECB calls its layers)."""
    if mask is None or mask.device.type == "meta" or bool(mask.all()):
        return None
    return ((~mask).to(dtype) * torch.finfo(dtype).min)[:, None, None, :]


class SelfAttention(nn.Module):
    """Multi-head self-attention with ``q_proj``/``k_proj``/``v_proj``/``out_proj`` (the names CLIPAttention and
    HubertAttention use): x (B, N, dim), additive bias (B, 1, 1|N, N) -> (B, N, dim)."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads, self.head_dim, self.dropout = heads, dim // heads, dropout
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = (proj(x).view(b, n, self.heads, self.head_dim).transpose(1, 2)
                   for proj in (self.q_proj, self.k_proj, self.v_proj))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=self.head_dim ** -0.5,
                                             dropout_p=self.dropout if self.training else 0.0)
        return self.out_proj(out.transpose(1, 2).reshape(b, n, d))


class CLIPMLP(nn.Module):
    def __init__(self, shape: LayerShape) -> None:
        super().__init__()
        self.act = activation_fn(shape.hidden_act)
        self.fc1 = nn.Linear(shape.hidden_size, shape.intermediate_size)
        self.fc2 = nn.Linear(shape.intermediate_size, shape.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class CLIPLayer(nn.Module):
    """``CLIPEncoderLayer``: x + attn(LN1(x)), then + MLP(LN2(.)) (pre-LN). x (B, N, dim), bias -> (B, N, dim).

    Parameter names: ``layer_norm1``, ``self_attn.{q,k,v,out}_proj``, ``layer_norm2``, ``mlp.fc1``, ``mlp.fc2``.
    """

    is_transformer_block = True  # FSDP wraps it as a unit; activation checkpointing recomputes it

    def __init__(self, shape: LayerShape) -> None:
        super().__init__()
        d = shape.hidden_size
        self.self_attn = SelfAttention(d, shape.num_attention_heads, shape.attention_dropout)
        self.layer_norm1 = nn.LayerNorm(d, eps=shape.layer_norm_eps)
        self.mlp = CLIPMLP(shape)
        self.layer_norm2 = nn.LayerNorm(d, eps=shape.layer_norm_eps)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.self_attn(self.layer_norm1(x), bias)
        return x + self.mlp(self.layer_norm2(x))


class HubertFeedForward(nn.Module):
    def __init__(self, shape: LayerShape) -> None:
        super().__init__()
        self.act = activation_fn(shape.hidden_act)
        self.intermediate_dropout = nn.Dropout(shape.activation_dropout)
        self.intermediate_dense = nn.Linear(shape.hidden_size, shape.intermediate_size)
        self.output_dense = nn.Linear(shape.intermediate_size, shape.hidden_size)
        self.output_dropout = nn.Dropout(shape.hidden_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_dropout(self.output_dense(self.intermediate_dropout(self.act(self.intermediate_dense(x)))))


class HubertLayer(nn.Module):
    """``HubertEncoderLayer`` (post-LN): LN(x + dropout(attn(x))), then final LN(. + FF(.)). x (B, N, dim), bias ->
    (B, N, dim).

    Parameter names: ``attention.{q,k,v,out}_proj``, ``layer_norm``, ``feed_forward.{intermediate,output}_dense``,
    ``final_layer_norm``. Dropouts come from the HuBERT config (hidden, attention, activation).
    """

    is_transformer_block = True

    def __init__(self, shape: LayerShape) -> None:
        super().__init__()
        d = shape.hidden_size
        self.attention = SelfAttention(d, shape.num_attention_heads, shape.attention_dropout)
        self.dropout = nn.Dropout(shape.hidden_dropout)
        self.layer_norm = nn.LayerNorm(d, eps=shape.layer_norm_eps)
        self.feed_forward = HubertFeedForward(shape)
        self.final_layer_norm = nn.LayerNorm(d, eps=shape.layer_norm_eps)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        x = self.layer_norm(x + self.dropout(self.attention(x, bias)))
        return self.final_layer_norm(x + self.feed_forward(x))


class AttentionPooling(nn.Module):
    """The released VECB's pooling: one learned vector ``attn_vector`` (dim); weights ``softmax_t(x_t . v)`` over the
    valid positions. x (B, N, dim), mask (B, N) -> (B, dim)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.attn_vector = nn.Parameter(torch.randn(dim))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        scores = x @ self.attn_vector.to(x.dtype)
        if mask is not None and mask.device.type != "meta":
            scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        return (scores.softmax(dim=1).unsqueeze(-1) * x).sum(dim=1)
