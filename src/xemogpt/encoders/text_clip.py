"""The CLIP text tower as a text encoder for bridge alignment (the paper aligns VECB against it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from xemogpt.component import Component
from xemogpt.components_io import WeightArg, build_hf_model, hf_config, local_folder, resolve_source
from xemogpt.encoders.frames import parse_dtype
from xemogpt.registry import register

CLIP_TEXT_FOLDER = WeightArg("folder", "a Hugging Face CLIPModel (or CLIPTextModelWithProjection) folder with its "
                                       "tokenizer (config.json, model.safetensors, tokenizer files)", ("config.json",))


@register("text_encoder", "clip-text")
class ClipTextEncoder(Component):
    """Frozen CLIP text tower: list of B strings -> (B, projection_dim) embeddings (768 for ViT-L/14), exactly
    ``CLIPModel.get_text_features`` of the folder (what the official VECB aligns with), L2-normalised only when
    ``normalize`` is set. From a full CLIPModel folder the projection width is the model's top-level
    ``projection_dim``, whatever its ``text_config`` says.

    The tower is kept outside the module tree (it is loaded from ``path``, never trained, and not part of model
    checkpoints); :meth:`num_parameters` still counts it.

    Args:
        path: a CLIPModel folder (the same ``checkpoints/clip-vit-large-patch14`` as the video encoder).
        arch: a shipped architecture used when ``path`` is absent (describe, CI) or null.
        config: text-config fields overriding the folder's / arch's.
        tokenizer: a tokenizer folder (default: ``path``). batch_size: encoding batch size.
        cache: remember embeddings of texts already seen. dtype: weights dtype.
        normalize: L2-normalise the embeddings (the released model does not).
    """

    weight_args = {"path": CLIP_TEXT_FOLDER}

    def __init__(self, path: str | None = None, arch: str | None = None, config: dict[str, Any] | None = None,
                 tokenizer: str | None = None, batch_size: int = 64, cache: bool = True,
                 dtype: str | None = None, normalize: bool = False) -> None:
        super().__init__()
        self.save_hyperparameters()
        from transformers import AutoTokenizer, CLIPTextModelWithProjection

        key = "model.text_encoder"
        src = resolve_source(path, arch, config, key, CLIP_TEXT_FOLDER.what, section="text_config")
        cfg = hf_config(src.config, "clip_text_model")
        if cfg.model_type != "clip_text_model":
            raise ValueError(f"{key}: {path or arch} is a {cfg.model_type!r} model, not a CLIP text tower")
        model = build_hf_model(CLIPTextModelWithProjection, src, cfg, parse_dtype(dtype, key), key).eval()
        for p in model.parameters():
            p.requires_grad_(False)
        self.__dict__["_model"] = model
        tok_folder = local_folder(tokenizer, f"{key}.tokenizer") or (str(src.folder) if src.folder is not None
                                                                      else None)
        self.__dict__["_tokenizer"] = (AutoTokenizer.from_pretrained(tok_folder, local_files_only=True)
                                       if tok_folder else None)
        self.max_length = int(cfg.max_position_embeddings)
        self.output_dim = int(cfg.projection_dim)
        self._cache: dict[str, torch.Tensor] = {}
        self.set_frozen(True)

    def num_parameters(self, trainable_only: bool = False) -> int:
        own = super().num_parameters(trainable_only)
        return own if trainable_only else own + sum(p.numel() for p in self._model.parameters())

    @torch.no_grad()
    def _embed(self, texts: list[str]) -> torch.Tensor:
        if self._tokenizer is None:
            raise ValueError("clip-text was built without a tokenizer (no folder); give text_encoder.path or "
                             "text_encoder.tokenizer")
        if next(self._model.parameters()).device != self.device:
            self._model.to(self.device)
        out = []
        for i in range(0, len(texts), self.hparams.batch_size):
            tok = self._tokenizer(texts[i: i + self.hparams.batch_size], padding=True, truncation=True,
                                  max_length=self.max_length, return_tensors="pt").to(self.device)
            emb = self._model(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"]).text_embeds
            out.append(F.normalize(emb.float(), dim=-1) if self.hparams.normalize else emb.float())
        return torch.cat(out)

    @torch.no_grad()
    def encode(self, texts: list[str]) -> torch.Tensor:
        """texts (B,) -> (B, output_dim) float32 (L2-normalised with ``normalize``)."""
        if not self.hparams.cache:
            return self._embed(list(texts))
        todo = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if todo:
            self._cache.update(zip(todo, self._embed(todo).cpu()))
        return torch.stack([self._cache[t] for t in texts]).to(self.device)

    def forward(self, texts: list[str]) -> torch.Tensor:
        return self.encode(texts)

    def portable_spec(self, folder: Path) -> dict[str, Any]:
        """Save the tower and its tokenizer into ``folder/clip-text`` and point the spec there."""
        sub = folder / "clip-text"
        self._model.save_pretrained(str(sub))
        if self._tokenizer is not None:
            self._tokenizer.save_pretrained(str(sub))
        return {"path": "clip-text", "arch": None, "config": None, "tokenizer": None, "_relative": ["path"]}
