"""Two text encoders, one per modality (the paper aligns VECB with CLIP's text tower and AECB with LaBSE)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from xemogpt import registry
from xemogpt.component import Component
from xemogpt.components_io import declared_weights
from xemogpt.registry import register

MODALITIES = ("video", "audio")


@register("text_encoder", "per-modality")
class PerModalityTextEncoder(Component):
    """A text encoder for the visual cue texts and another for the acoustic ones.

    ``encode(texts, modality)`` with ``modality`` ``"video"`` or ``"audio"`` -> (B, width of that encoder). The widths
    may differ: each bridge projects its own text encoder's embeddings to the shared alignment width with its own
    ``text_project`` (as published: CLIP's text projection for VECB, LaBSE for AECB), and the model wires each
    bridge's ``text_dim`` from its own encoder (``.video.output_dim``, ``.audio.output_dim``).

    Args:
        video: text-encoder spec for VECB alignment (e.g. ``{name: clip-text, path: ...}``).
        audio: text-encoder spec for AECB alignment (e.g. ``{name: sentence-transformers, path: ...}``).
    """

    per_modality = True  # callers pass modality="video" / "audio" to encode()

    def __init__(self, video: dict[str, Any] | str, audio: dict[str, Any] | str) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.video = registry.build("text_encoder", video, "model.text_encoder.video")
        self.audio = registry.build("text_encoder", audio, "model.text_encoder.audio")
        self.output_dim = int(self.video.output_dim)  # the video side's; each bridge reads its own encoder's width
        self.set_frozen(True)

    @classmethod
    def weight_paths(cls, kwargs: dict[str, Any], key: str):
        """Declared weights of both sub-encoders (for missing-weight checks)."""
        out = []
        for m in MODALITIES:
            if kwargs.get(m) is None:
                continue
            name, sub = registry.split_spec(kwargs[m], f"{key}.{m}")
            out += declared_weights(registry.get("text_encoder", name).obj, sub, f"{key}.{m}")
        return out

    def num_parameters(self, trainable_only: bool = False) -> int:
        return self.video.num_parameters(trainable_only) + self.audio.num_parameters(trainable_only)

    def encode(self, texts: list[str], modality: str | None = None) -> torch.Tensor:
        """texts (B,) -> (B, output_dim) from the ``modality`` encoder."""
        if modality not in MODALITIES:
            raise ValueError(f"the per-modality text encoder needs modality='video' or 'audio', got {modality!r}: the "
                             "caller must say whose cue texts these are (encoders with per_modality=True)")
        return getattr(self, modality).encode(texts)

    def forward(self, texts: list[str], modality: str | None = None) -> torch.Tensor:
        return self.encode(texts, modality)

    def portable_spec(self, folder: Path) -> dict[str, Any]:
        """Each sub-encoder saves itself into ``folder/<modality>``; the nested paths are made relative."""
        out: dict[str, Any] = {"_relative": []}
        for m in MODALITIES:
            enc = getattr(self, m)
            spec = dict(enc.spec())
            sub = getattr(enc, "portable_spec", None)
            if sub is not None:
                upd = dict(sub(folder / m))
                rel = upd.pop("_relative", [])
                spec.update(upd)
                for k in rel:
                    spec[k] = f"{m}/{spec[k]}"
                    out["_relative"].append(f"{m}.{k}")
            out[m] = spec
        return out
