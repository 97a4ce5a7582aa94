"""timm image backbones (any model name, weights from a local file), per frame."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from xemogpt.checkpointing.errors import MissingWeightsError
from xemogpt.checkpointing.files import load_into, load_state_file
from xemogpt.checkpointing.pretrained import WeightArg, is_architecture_only
from xemogpt.encoders.frames import FrameEncoder
from xemogpt.encoders.image_preprocess import from_timm
from xemogpt.registry import register

TIMM_FILE = WeightArg("file", "a timm state dict for `model` (.safetensors, or .pth/.bin readable with "
                              "weights_only=True)")


def timm_checkpoint_filter(net: torch.nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Pass a state dict through the model family's own ``checkpoint_filter_fn``, as timm does when it loads
    pretrained weights: it converts other layouts (OpenAI CLIP, DINOv2, open_clip trunks ...) and resamples position
    and patch embeddings to a model built at another size. Families without a filter get the state dict unchanged."""
    import sys

    filter_fn = getattr(sys.modules.get(type(net).__module__), "checkpoint_filter_fn", None)
    if filter_fn is None:
        return state
    try:
        return filter_fn(state, net)
    except TypeError:  # older filters take the state dict only
        return filter_fn(state)


@register("video_encoder", "timm")
class TimmVideoEncoder(FrameEncoder):
    """Frozen timm backbone, per frame.

    frames (B, T, 3, H, W) uint8 or float in [0, 1] -> ``tokens: cls``: (B, T, D), the model's pooled pre-logits
    feature (the [CLS] token for ViTs, global average for CNNs); ``tokens: patch``: (B, T * N, D), the spatial
    tokens of the final feature map (prefix tokens dropped; a CNN's H x W map flattened). Preprocessing (input size,
    crop_pct, crop_mode, interpolation, mean, std) comes from the model's pretrained config via
    ``resolve_data_config``.

    Args:
        model: a timm model name (``vit_large_patch14_clip_224``, ``convnext_tiny``, ``resnet50`` ...).
        checkpoint: a local state-dict file (nothing is downloaded), passed through the model's own checkpoint
            filter as timm's pretrained loading does; its classifier weights are ignored, every other weight must fit.
        model_args: keyword arguments for ``timm.create_model`` (``img_size``, ``embed_dim``, ``depth`` ...).
        tokens, freeze, preprocess, chunk_size: as for ``hf-clip-vision``.
    """

    weight_args = {"checkpoint": TIMM_FILE}

    def __init__(self, model: str = "vit_base_patch16_224", checkpoint: str | None = None,
                 model_args: dict[str, Any] | None = None, tokens: str = "cls",
                 preprocess: dict[str, Any] | None = None, freeze: bool = True, chunk_size: int = 64) -> None:
        super().__init__(tokens, chunk_size)
        self.save_hyperparameters()
        import timm
        from timm.data import resolve_data_config

        key = "model.video_encoder"
        if not timm.is_model(model):
            import difflib

            near = difflib.get_close_matches(model, timm.list_models(), n=3)
            raise ValueError(f"{key}.model: timm has no model {model!r}" + (f"; did you mean {near}?" if near else ""))
        net = timm.create_model(model, pretrained=False, num_classes=0, **(model_args or {}))
        if checkpoint is not None and not is_architecture_only():
            if not Path(checkpoint).is_file():
                raise MissingWeightsError(f"{key}.checkpoint: file {checkpoint!r} does not exist; put {TIMM_FILE.what} "
                                          "there (see checkpoints/README.md)")
            state = load_state_file(checkpoint, f"{key}.checkpoint")
            state = timm_checkpoint_filter(net, state)
            head = net.pretrained_cfg.get("classifier") or "head"
            heads = tuple(h + "." for h in ([head] if isinstance(head, str) else head))
            load_into(net, state, f"{key}.checkpoint {checkpoint}", ignore_prefixes=heads)
        self.net = net
        self.num_prefix = int(getattr(net, "num_prefix_tokens", 0) or 0)
        data_cfg = resolve_data_config({}, model=net)
        fixed = getattr(getattr(net, "patch_embed", None), "img_size", None)
        if fixed:  # a ViT built at another size (model_args.img_size) only accepts that size
            data_cfg["input_size"] = (3, int(fixed[0]), int(fixed[1]))
        self.image_preprocess = from_timm(data_cfg).updated(preprocess)
        self.output_dim = int(getattr(net, "head_hidden_size", None) or net.num_features) if tokens == "cls" \
            else int(net.num_features)
        self.tokens_per_frame = 1
        if tokens == "patch":
            crop = self.image_preprocess.crop or (self.image_preprocess.image_size,) * 2
            was = net.training
            net.eval()
            with torch.no_grad():
                self.tokens_per_frame = int(self.encode_images(torch.zeros(1, 3, *crop)).shape[1])
            net.train(was)
        if freeze:
            self.set_frozen(True)

    def encode_images(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, 3, h, w) normalised -> (N, D) pooled or (N, P, D) spatial tokens."""
        feats = self.net.forward_features(x)
        if self.tokens == "cls":
            return self.net.forward_head(feats, pre_logits=True)
        if feats.dim() == 4:  # CNN map (N, C, H, W)
            return feats.flatten(2).transpose(1, 2)
        return feats[:, self.num_prefix:]

    def portable_spec(self, folder: Path) -> dict[str, Any]:
        """timm ships the architecture; the weights travel in the component's safetensors file."""
        return {"checkpoint": None, "preprocess": self.image_preprocess.to_dict()}
