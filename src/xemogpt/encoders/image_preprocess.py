"""Batched image preprocessing read from a model's own config (Hugging Face, open_clip or timm), in torch.

The data pipeline decodes frames at ``preprocess_config()["image_size"]``; the encoder then applies exactly what its
model was trained with, as the model's own processor would:

* ``resize_mode: shortest`` -- scale the shortest edge to ``resize`` keeping the aspect ratio (CLIP, timm ``center``,
  open_clip ``shortest``), then centre-crop;
* ``resize_mode: longest`` -- scale the longest edge to fit ``resize`` keeping the aspect ratio, then centre-pad to
  the crop with ``fill`` (open_clip ``longest``, timm ``border``);
* ``resize_mode: squash`` -- resize to exactly ``resize`` (h, w) ignoring the aspect ratio (open_clip ``squash``,
  timm ``squash``, Hugging Face ``size: {height, width}``), then centre-crop when a crop is set;

then normalise with the model's mean and std.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F

# PIL resample codes used in preprocessor_config.json (LANCZOS/BOX/HAMMING have no torch kernel: nearest kin).
_PIL_RESAMPLE = {0: "nearest", 1: "bicubic", 2: "bilinear", 3: "bicubic", 4: "bilinear", 5: "bicubic"}
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
RESIZE_MODES = ("shortest", "longest", "squash")


def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, (int, float)) else (int(v[0]), int(v[1]))


@dataclass
class ImagePreprocess:
    """resize: the resize target -- an int (``shortest``: the shortest edge, torchvision's ``Resize(int)``) or
    (h, w) (``shortest``/``longest``: the box whose shorter/longer ratio is matched; ``squash``: the exact size);
    None: no resize. crop: (h, w) centre crop, padded with ``fill`` where the image is smaller (None: none).
    mean/std: per channel. interpolation: ``bicubic``, ``bilinear`` or ``nearest``. resize_mode: see the module.
    fill: padding colour in [0, 1] per channel (None: black)."""

    resize: int | tuple[int, int] | None
    crop: tuple[int, int] | None
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"
    resize_mode: str = "shortest"
    fill: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        if self.resize_mode not in RESIZE_MODES:
            raise ValueError(f"video_encoder.preprocess.resize_mode must be one of {RESIZE_MODES}, got "
                             f"{self.resize_mode!r}")
        if self.resize_mode == "squash" and isinstance(self.resize, int):
            self.resize = (self.resize, self.resize)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["resize"] = list(self.resize) if isinstance(self.resize, tuple) else self.resize
        d["crop"] = list(self.crop) if self.crop else None
        d["mean"], d["std"] = list(self.mean), list(self.std)
        d["fill"] = list(self.fill) if self.fill is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ImagePreprocess:
        crop = d.get("crop")
        if isinstance(crop, int):
            crop = (crop, crop)
        resize = d.get("resize")
        if isinstance(resize, (list, tuple)):
            resize = _pair(resize)
        fill = d.get("fill")
        return cls(resize=resize, crop=tuple(crop) if crop else None, mean=tuple(d["mean"]), std=tuple(d["std"]),
                   interpolation=str(d.get("interpolation", "bicubic")),
                   resize_mode=str(d.get("resize_mode", "shortest")),
                   fill=tuple(float(v) for v in fill) if fill is not None else None)

    def updated(self, overrides: dict[str, Any] | None) -> ImagePreprocess:
        return ImagePreprocess.from_dict({**self.to_dict(), **(overrides or {})}) if overrides else self

    @property
    def image_size(self) -> int:
        """The side the data pipeline should decode frames at."""
        if self.resize:
            return int(self.resize) if isinstance(self.resize, int) else int(max(self.resize))
        return int(max(self.crop)) if self.crop else 224

    def resized_size(self, h: int, w: int) -> tuple[int, int]:
        """The (h, w) an image of size (h, w) is resized to (before the crop)."""
        if not self.resize:
            return h, w
        if self.resize_mode == "squash":
            return _pair(self.resize)
        if isinstance(self.resize, int) and self.resize_mode == "shortest":
            # torchvision's Resize(int): the short edge becomes `resize`, the long one is truncated
            short, long = (h, w) if h <= w else (w, h)
            new_long = int(self.resize * long / short)
            return (self.resize, new_long) if h <= w else (new_long, self.resize)
        th, tw = _pair(self.resize)
        rh, rw = h / th, w / tw
        ratio = max(rh, rw) if self.resize_mode == "longest" else min(rh, rw)
        return round(h / ratio), round(w / ratio)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, 3, H, W) uint8 or float in [0, 1] -> (N, 3, crop_h, crop_w) normalised float."""
        if x.dtype == torch.uint8:
            x = x.float() / 255.0
        x = x.float()
        h, w = x.shape[-2:]
        size = self.resized_size(h, w)
        if size != (h, w):
            mode = self.interpolation if self.interpolation in ("bilinear", "bicubic", "nearest") else "bicubic"
            kw = {"align_corners": False, "antialias": True} if mode != "nearest" else {}
            x = F.interpolate(x, size=size, mode=mode, **kw)
            if mode == "bicubic":
                x = x.clamp(0.0, 1.0)  # bicubic overshoots; PIL clamps to the pixel range too
        if self.crop:
            ch, cw = self.crop
            h, w = x.shape[-2:]
            if h < ch or w < cw:  # pad like torchvision's CenterCrop / open_clip's CenterCropOrPad
                ph, pw = max(0, ch - h), max(0, cw - w)
                pad = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
                if self.fill is None:
                    x = F.pad(x, pad)
                else:
                    fill = torch.tensor(self.fill, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
                    x = F.pad(x - fill, pad) + fill
                h, w = x.shape[-2:]
            top, left = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))
            x = x[..., top: top + ch, left: left + cw]
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x - mean) / std


def _interp(resample: Any) -> str:
    if isinstance(resample, str):
        return resample
    return _PIL_RESAMPLE.get(int(resample), "bicubic")


def from_hf_processor(d: dict[str, Any], image_size: int) -> ImagePreprocess:
    """Read a Hugging Face image processor config (``preprocessor_config.json``); ``image_size`` is the model's.

    ``size: {shortest_edge}`` (or a bare int, as CLIP's processor reads it) scales the shortest edge;
    ``size: {height, width}`` resizes to exactly that size; ``size: {longest_edge}`` fits the longest edge.
    """
    resize: int | tuple[int, int] | None = None
    mode = "shortest"
    if d.get("do_resize", True):
        size = d.get("size", image_size)
        if isinstance(size, dict) and "shortest_edge" in size:
            resize = int(size["shortest_edge"])
        elif isinstance(size, dict) and "height" in size and "width" in size:
            resize, mode = (int(size["height"]), int(size["width"])), "squash"
        elif isinstance(size, dict) and "longest_edge" in size:
            resize, mode = (int(size["longest_edge"]),) * 2, "longest"
        elif isinstance(size, (list, tuple)) and len(size) == 2:
            resize, mode = _pair(size), "squash"
        elif isinstance(size, (int, float)):
            resize = int(size)
        else:
            resize = image_size
    crop = None
    if d.get("do_center_crop", bool(d.get("crop_size"))):
        c = d.get("crop_size", image_size)
        if isinstance(c, dict):
            crop = (int(c["height"]), int(c["width"])) if "height" in c else _pair(c.get("shortest_edge", image_size))
        else:
            crop = _pair(c)
    elif mode == "longest":
        crop = _pair(resize)  # pad to the square box
    normalize = d.get("do_normalize", True)
    mean = tuple(d.get("image_mean", CLIP_MEAN)) if normalize else (0.0, 0.0, 0.0)
    std = tuple(d.get("image_std", CLIP_STD)) if normalize else (1.0, 1.0, 1.0)
    return ImagePreprocess(resize=resize, crop=crop, mean=mean, std=std, interpolation=_interp(d.get("resample", 3)),
                           resize_mode=mode)


def from_open_clip(cfg: Any) -> ImagePreprocess:
    """open_clip's ``model.visual.preprocess_cfg`` (size, mean, std, interpolation, resize_mode), as open_clip's own
    ``image_transform`` applies it at evaluation (``longest`` pads with black, ``squash`` ignores the aspect)."""
    hw = _pair(cfg.get("size", 224))
    mode = str(cfg.get("resize_mode") or "shortest")
    resize: int | tuple[int, int] = hw[0] if (mode == "shortest" and hw[0] == hw[1]) else hw
    fill = cfg.get("fill_color", 0)
    fill_t = None if not fill else (float(fill) / 255.0,) * 3
    return ImagePreprocess(resize=resize, crop=hw, mean=tuple(cfg.get("mean", CLIP_MEAN)),
                           std=tuple(cfg.get("std", CLIP_STD)),
                           interpolation=str(cfg.get("interpolation") or "bicubic"), resize_mode=mode, fill=fill_t)


def from_timm(data_cfg: dict[str, Any]) -> ImagePreprocess:
    """timm's ``resolve_data_config`` output (input_size, crop_pct, crop_mode, interpolation, mean, std), as timm's
    evaluation transform applies it: ``center`` scales the shortest edge to size / crop_pct and crops, ``squash``
    resizes both edges to size / crop_pct and crops, ``border`` fits the longest edge and pads with the mean."""
    _, h, w = data_cfg["input_size"]
    crop_pct = float(data_cfg.get("crop_pct") or 0.875)
    scale = (int(math.floor(h / crop_pct)), int(math.floor(w / crop_pct)))
    mode = str(data_cfg.get("crop_mode") or "center")
    mean, std = tuple(data_cfg["mean"]), tuple(data_cfg["std"])
    interp = str(data_cfg.get("interpolation", "bicubic"))
    interp = interp if interp in ("bilinear", "bicubic", "nearest") else "bicubic"
    fill = None
    if mode == "squash":
        resize_mode, resize = "squash", scale
    elif mode == "border":
        resize_mode, resize = "longest", scale
        fill = tuple(round(255 * v) / 255.0 for v in mean)
    else:
        resize_mode, resize = "shortest", (scale[0] if scale[0] == scale[1] else scale)
    return ImagePreprocess(resize=resize, crop=(int(h), int(w)), mean=mean, std=std, interpolation=interp,
                           resize_mode=resize_mode, fill=fill)
