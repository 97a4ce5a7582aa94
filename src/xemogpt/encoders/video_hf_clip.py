"""The paper's video encoder: the Hugging Face CLIP vision tower, run on every frame."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from xemogpt.bridges.layers import LayerShape
from xemogpt.components_io import WeightArg, build_hf_model, hf_config, hf_config_dict, resolve_source
from xemogpt.encoders.frames import FrameEncoder, parse_dtype
from xemogpt.encoders.image_preprocess import from_hf_processor
from xemogpt.registry import register

CLIP_FOLDER = WeightArg("folder", "a Hugging Face CLIPModel or CLIPVisionModel folder (config.json, "
                                  "model.safetensors, preprocessor_config.json)", ("config.json",))


@register("video_encoder", "hf-clip-vision")
class HFClipVisionEncoder(FrameEncoder):
    """Frozen CLIP image tower from a transformers folder, per frame.

    frames (B, T, 3, H, W) uint8 or float in [0, 1] -> ``tokens: cls``: (B, T, hidden) -- the [CLS] token of each
    frame, (B, 16, 1024) for ViT-L/14 and 16 frames as in the paper: the tower's post-LayerNorm ``pooler_output``
    by default, the raw ``last_hidden_state[:, 0]`` with ``cls_norm: false`` (what the released XEmoGPT reads);
    ``tokens: patch``: (B, T * N,
    hidden), the N = (image_size / patch_size)^2 patch tokens of each frame (256 for ViT-L/14 at 224).
    Resize, centre crop and normalisation come from the folder's ``preprocessor_config.json`` (or the named config).

    Args:
        path: a CLIPModel (or CLIPVisionModel) folder, e.g. ``checkpoints/clip-vit-large-patch14``.
        arch: a shipped architecture (``clip-vit-large-patch14``) used when ``path`` is absent (describe, CI) or null.
        config: vision-config fields overriding the folder's / arch's (tiny test towers, ``image_size``...).
        preprocess: overrides of the resolved preprocessing (``resize``, ``crop``, ``mean``, ``std``...).
        tokens: ``cls`` or ``patch``. layer: hidden-state index to read (None: the final output; -2 is the
            penultimate layer LLaVA uses); a ``cls`` token gets the tower's post-LayerNorm when ``cls_norm`` (so
            ``layer: -1`` equals the default), patch tokens are the raw hidden states.
        cls_norm: apply ``post_layernorm`` to the [CLS] token (default true; the paper recipe: false).
        freeze: frozen (default).
        dtype: weights dtype (bf16/fp16 on GPU).
        chunk_size: frames per forward pass (bounds activation memory).
    """

    weight_args = {"path": CLIP_FOLDER}

    def __init__(self, path: str | None = None, arch: str | None = None, config: dict[str, Any] | None = None,
                 preprocess: dict[str, Any] | None = None, tokens: str = "cls", layer: int | None = None,
                 cls_norm: bool = True, freeze: bool = True, dtype: str | None = None, chunk_size: int = 64) -> None:
        super().__init__(tokens, chunk_size)
        self.save_hyperparameters()
        from transformers import CLIPVisionModel

        key = "model.video_encoder"
        src = resolve_source(path, arch, config, key, CLIP_FOLDER.what, section="vision_config")
        cfg = hf_config(src.config, "clip_vision_model")
        if cfg.model_type != "clip_vision_model":
            raise ValueError(f"{key}: {path or arch} is a {cfg.model_type!r} model, not a CLIP vision tower")
        self.model = build_hf_model(CLIPVisionModel, src, cfg, parse_dtype(dtype, key), key)
        self.image_preprocess = from_hf_processor(src.preprocess, int(cfg.image_size)).updated(preprocess)
        self.output_dim = int(cfg.hidden_size)
        n_patch = (int(cfg.image_size) // int(cfg.patch_size)) ** 2
        self.tokens_per_frame = 1 if tokens == "cls" else n_patch
        self.layer = layer
        if freeze:
            self.set_frozen(True)

    def encode_images(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, 3, S, S) normalised -> (N, hidden) [CLS] or (N, P, hidden) patch tokens."""
        want_hidden = self.layer is not None
        out = self.model(pixel_values=x, output_hidden_states=want_hidden)
        if self.tokens == "cls":
            norm = self.hparams.cls_norm
            if not want_hidden:
                return out.pooler_output if norm else out.last_hidden_state[:, 0]
            cls = out.hidden_states[self.layer][:, 0]
            if not norm:
                return cls
            # the tower's own final LayerNorm on the [CLS] token of the chosen layer, as pooler_output has it
            tower = getattr(self.model, "vision_model", self.model)  # transformers 4 nests the tower, 5 does not
            return tower.post_layernorm(cls)
        h = out.last_hidden_state if not want_hidden else out.hidden_states[self.layer]
        return h[:, 1:]

    def layer_config(self) -> dict[str, Any]:
        """The tower's layer config, which VECB builds its layers from (``CLIPEncoderLayer(vision_config)``)."""
        return LayerShape.from_config(self.model.config).to_dict()

    def portable_spec(self, folder: Path) -> dict[str, Any]:
        """Spec that rebuilds this tower without its original folder (the architecture travels in ``config``)."""
        return {"path": None, "arch": None, "config": hf_config_dict(self.model.config),
                "preprocess": self.image_preprocess.to_dict()}
