"""Batched image preprocessing read from a model's own config (Hugging Face, open_clip or timm), in torch.

The data pipeline decodes frames at ``preprocess_config()["image_size"]``; the encoder then applies exactly what its
model was trained with: resize the shortest edge, centre-crop, normalise.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F

# PIL resample codes used in preprocessor_config.json.
_PIL_RESAMPLE = {0: "nearest", 1: "bicubic", 2: "bilinear", 3: "bicubic", 4: "bilinear", 5: "bicubic"}
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass
class ImagePreprocess:
    """resize: shortest-edge target (None: no resize); crop: (h, w) centre crop (None: none); mean/std per channel;
    interpolation: ``bicubic``, ``bilinear`` or ``nearest``."""

    resize: int | None
    crop: tuple[int, int] | None
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["crop"] = list(self.crop) if self.crop else None
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ImagePreprocess:
        crop = d.get("crop")
        if isinstance(crop, int):
            crop = (crop, crop)
        return cls(resize=d.get("resize"), crop=tuple(crop) if crop else None, mean=tuple(d["mean"]),
                   std=tuple(d["std"]), interpolation=str(d.get("interpolation", "bicubic")))

    def updated(self, overrides: dict[str, Any] | None) -> ImagePreprocess:
        return ImagePreprocess.from_dict({**self.to_dict(), **(overrides or {})}) if overrides else self

    @property
    def image_size(self) -> int:
        """The side the data pipeline should decode frames at."""
        if self.resize:
            return int(self.resize)
        return int(max(self.crop)) if self.crop else 224

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, 3, H, W) uint8 or float in [0, 1] -> (N, 3, crop_h, crop_w) normalised float."""
        if x.dtype == torch.uint8:
            x = x.float() / 255.0
        x = x.float()
        h, w = x.shape[-2:]
        if self.resize and min(h, w) != self.resize:
            scale = self.resize / min(h, w)
            size = (max(self.resize, round(h * scale)), max(self.resize, round(w * scale)))
            mode = self.interpolation if self.interpolation in ("bilinear", "bicubic", "nearest") else "bicubic"
            kw = {"align_corners": False, "antialias": True} if mode != "nearest" else {}
            x = F.interpolate(x, size=size, mode=mode, **kw)
            if mode == "bicubic":
                x = x.clamp(0.0, 1.0)  # bicubic overshoots; PIL clamps to the pixel range too
        if self.crop:
            ch, cw = self.crop
            h, w = x.shape[-2:]
            if h < ch or w < cw:  # pad like torchvision's CenterCrop when the image is smaller than the crop
                ph, pw = max(0, ch - h), max(0, cw - w)
                x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
                h, w = x.shape[-2:]
            top, left = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))
            x = x[..., top: top + ch, left: left + cw]
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x - mean) / std


def _size(value: Any, default: int | None) -> tuple[int | None, tuple[int, int] | None]:
    """A preprocessor ``size``/``crop_size`` entry -> (shortest_edge, (h, w))."""
    if value is None:
        return default, None
    if isinstance(value, int):
        return value, (value, value)
    if isinstance(value, dict):
        if "shortest_edge" in value:
            return int(value["shortest_edge"]), None
        if "height" in value and "width" in value:
            return min(int(value["height"]), int(value["width"])), (int(value["height"]), int(value["width"]))
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return min(value), (int(value[0]), int(value[1]))
    return default, None


def from_hf_processor(d: dict[str, Any], image_size: int) -> ImagePreprocess:
    """Read a Hugging Face image processor config (``preprocessor_config.json``); ``image_size`` is the model's."""
    shortest, size_hw = _size(d.get("size"), image_size) if d.get("do_resize", True) else (None, None)
    crop = None
    if d.get("do_center_crop", bool(d.get("crop_size"))):
        _, crop = _size(d.get("crop_size"), image_size)
        crop = crop or (image_size, image_size)
    elif size_hw is not None:
        crop = size_hw  # a fixed (h, w) resize without crop: resize then the crop is a no-op
    mean = tuple(d.get("image_mean", CLIP_MEAN)) if d.get("do_normalize", True) else (0.0, 0.0, 0.0)
    std = tuple(d.get("image_std", CLIP_STD)) if d.get("do_normalize", True) else (1.0, 1.0, 1.0)
    interp = _PIL_RESAMPLE.get(int(d.get("resample", 3)), "bicubic") if not isinstance(d.get("resample"), str) \
        else d["resample"]
    return ImagePreprocess(resize=shortest, crop=crop, mean=mean, std=std, interpolation=interp)


def from_open_clip(cfg: Any) -> ImagePreprocess:
    """open_clip's ``model.visual.preprocess_cfg`` (size, mean, std, interpolation, resize_mode)."""
    size = cfg.get("size", 224)
    hw = (size, size) if isinstance(size, int) else tuple(size)
    mode = cfg.get("resize_mode", "shortest")
    resize = min(hw) if mode in ("shortest", "squash") else max(hw)
    return ImagePreprocess(resize=int(resize), crop=(int(hw[0]), int(hw[1])), mean=tuple(cfg.get("mean", CLIP_MEAN)),
                           std=tuple(cfg.get("std", CLIP_STD)), interpolation=str(cfg.get("interpolation", "bicubic")))


def from_timm(data_cfg: dict[str, Any]) -> ImagePreprocess:
    """timm's ``resolve_data_config`` output: input_size, crop_pct, interpolation, mean, std."""
    _, h, w = data_cfg["input_size"]
    crop_pct = float(data_cfg.get("crop_pct") or 1.0)
    resize = int(math.floor(min(h, w) / crop_pct))
    interp = str(data_cfg.get("interpolation", "bicubic"))
    return ImagePreprocess(resize=resize, crop=(int(h), int(w)), mean=tuple(data_cfg["mean"]),
                           std=tuple(data_cfg["std"]), interpolation=interp if interp != "random" else "bicubic")
