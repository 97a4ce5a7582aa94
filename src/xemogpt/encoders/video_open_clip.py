"""open_clip image towers (any built-in or custom config, weights from a local checkpoint file), per frame."""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import torch

from xemogpt import configs
from xemogpt.checkpointing.errors import MissingWeightsError
from xemogpt.checkpointing.pretrained import WeightArg, is_architecture_only
from xemogpt.encoders.frames import FrameEncoder
from xemogpt.encoders.image_preprocess import from_open_clip
from xemogpt.registry import register

OPEN_CLIP_FILE = WeightArg("file", "an open_clip checkpoint of the whole CLIP model (.safetensors, or a .pt/.bin "
                                   "state dict readable with weights_only=True) matching `model`")


def register_open_clip_config(cfg: dict[str, Any]) -> str:
    """Register a model config dict with open_clip under a name derived from its content; returns the name."""
    import open_clip

    text = json.dumps(cfg, sort_keys=True)
    name = "xemogpt-" + hashlib.sha1(text.encode()).hexdigest()[:12]
    if open_clip.get_model_config(name) is None:
        folder = Path(tempfile.gettempdir()) / "xemogpt-open-clip-configs"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.json"
        path.write_text(text, encoding="utf-8")
        open_clip.add_model_config(path)
    return name


@register("video_encoder", "open-clip")
class OpenClipVideoEncoder(FrameEncoder):
    """Frozen open_clip image tower, per frame.

    frames (B, T, 3, H, W) uint8 or float in [0, 1] -> ``tokens: cls``: (B, T, D) -- the pooled image embedding
    (D = embed_dim, or the tower width with ``project: false``); ``tokens: patch`` (ViT towers): (B, T * N, width),
    the N post-LayerNorm patch tokens of each frame. Preprocessing comes from the model's ``preprocess_cfg``.

    open_clip keeps what a set of weights was trained with (mean/std, resize mode, QuickGELU) in its pretrained
    registry, keyed by model name and tag, and applies none of it when the weights come from a local file: name the
    tag the file was downloaded as (``pretrained_tag: laion2b_s32b_b82k``) and the encoder takes its preprocessing and
    activation from there (read from open_clip's registry; nothing is downloaded).

    Args:
        model: an open_clip model config name (``ViT-L-14``, ``ViT-B-16``, ``RN50`` ...; ``open_clip.list_models()``).
        checkpoint: a local weights file of the whole CLIP model (nothing is downloaded).
        config: model-config fields (``embed_dim``, ``vision_cfg``, ``text_cfg``) merged over ``model``'s, or a whole
            config when ``model`` is null (tiny test models).
        pretrained_tag: the open_clip pretrained tag of ``checkpoint`` (``openai``, ``laion2b_s32b_b82k`` ...;
            ``open_clip.list_pretrained_tags_by_model(model)``), for its preprocessing and QuickGELU setting.
        project: apply the image projection to the pooled token (ViT towers; default true).
        tokens, freeze, preprocess, chunk_size: as for ``hf-clip-vision``.
    """

    weight_args = {"checkpoint": OPEN_CLIP_FILE}

    def __init__(self, model: str | None = "ViT-L-14", checkpoint: str | None = None,
                 config: dict[str, Any] | None = None, pretrained_tag: str | None = None, project: bool = True,
                 tokens: str = "cls", preprocess: dict[str, Any] | None = None, freeze: bool = True,
                 chunk_size: int = 64) -> None:
        super().__init__(tokens, chunk_size)
        self.save_hyperparameters()
        import open_clip

        key = "model.video_encoder"
        base = None
        if model is not None:
            base = open_clip.get_model_config(model)
            if base is None:
                near = [n for n in open_clip.list_models() if n.lower().startswith(model.lower()[:4])][:6]
                raise ValueError(f"{key}.model: open_clip has no model config {model!r}; close: {near}. Give a whole "
                                 f"config in {key}.config to use another architecture")
        if base is None and not config:
            raise ValueError(f"{key}: give an open_clip model name or a model config")
        tag_cfg: dict[str, Any] = {}
        if pretrained_tag is not None:
            tag_cfg = open_clip.get_pretrained_cfg(model, pretrained_tag) if model is not None else {}
            if not tag_cfg:
                tags = open_clip.list_pretrained_tags_by_model(model) if model is not None else []
                raise ValueError(f"{key}.pretrained_tag: open_clip has no pretrained tag {pretrained_tag!r} for "
                                 f"model {model!r}; its tags: {tags or '(none)'}")
        cfg = configs.merge(base or {}, config)
        if tag_cfg.get("quick_gelu") and not cfg.get("quick_gelu"):
            cfg["quick_gelu"] = True  # these weights were trained with QuickGELU (OpenAI's, for one)
        tag_preprocess = {k: tag_cfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in tag_cfg}
        self._model_config = cfg
        name = model if (model is not None and not config and cfg == base) else register_open_clip_config(cfg)
        load = checkpoint is not None and not is_architecture_only()
        if load and not Path(checkpoint).is_file():
            raise MissingWeightsError(f"{key}.checkpoint: file {checkpoint!r} does not exist; put "
                                      f"{OPEN_CLIP_FILE.what} there (see checkpoints/README.md)")
        previous = logging.root.manager.disable
        if not load:  # open_clip warns that a model without `pretrained` is random, which is what we asked for
            logging.disable(logging.WARNING)
        try:
            clip = open_clip.create_model(name, pretrained=checkpoint if load else None, load_weights=load,
                                          pretrained_text=False, pretrained_image=False, weights_only=True,
                                          force_preprocess_cfg=tag_preprocess or None,
                                          device=torch.get_default_device())
        finally:
            logging.disable(previous)
        visual = clip.visual
        del clip  # only the image tower is kept
        self.is_vit = hasattr(visual, "output_tokens") and hasattr(visual, "transformer")
        if tokens == "patch" and not self.is_vit:
            raise ValueError(f"{key}: tokens: patch needs a ViT image tower; {model or 'this config'} is a "
                             f"{type(visual).__name__}")
        if not project and self.is_vit:
            visual.proj = None
        if tokens == "patch":
            visual.output_tokens = True
        self.visual = visual
        self.image_preprocess = from_open_clip(dict(visual.preprocess_cfg)).updated(preprocess)
        width = int(visual.transformer.width) if self.is_vit else None
        self.output_dim = int(cfg["embed_dim"]) if (tokens == "cls" and (project or not self.is_vit)) else width
        grid = getattr(visual, "grid_size", None)
        self.tokens_per_frame = 1 if tokens == "cls" else int(grid[0] * grid[1])
        if freeze:
            self.set_frozen(True)

    def encode_images(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, 3, S, S) normalised -> (N, D) pooled or (N, P, width) patch tokens."""
        out = self.visual(x)
        if self.tokens == "patch":
            return out[1]
        return out

    def portable_spec(self, folder: Path) -> dict[str, Any]:
        return {"model": None, "checkpoint": None, "pretrained_tag": None, "config": self._model_config,
                "preprocess": self.image_preprocess.to_dict()}
