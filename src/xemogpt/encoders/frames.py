"""Shared frame handling for pretrained image towers used as per-frame video encoders."""

from __future__ import annotations

from typing import Any

import torch

from xemogpt.component import Component
from xemogpt.encoders.image_preprocess import ImagePreprocess

TOKEN_MODES = ("cls", "patch")
DTYPES: dict[str | None, torch.dtype | None] = {None: None, "fp32": torch.float32, "float32": torch.float32,
                                                "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
                                                "fp16": torch.float16, "float16": torch.float16}


def parse_dtype(dtype: str | None, key: str) -> torch.dtype | None:
    """A recipe dtype -> torch dtype (None: float32). ``auto``: bf16 on GPUs that support it, fp16 on other GPUs,
    float32 on the CPU (where the released model's numbers are reproduced)."""
    if dtype == "auto":
        if torch.cuda.is_available():
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return None
    if dtype not in DTYPES:
        raise ValueError(f"{key}.dtype must be one of {sorted(k for k in DTYPES if k)}, auto or null, got {dtype!r}")
    return DTYPES[dtype]


class FrameEncoder(Component):
    """Base for video encoders that run an image tower on every frame.

    forward(frames (B, T, 3, H, W) uint8 or float in [0, 1]) -> ``tokens='cls'``: (B, T, D), one token per frame;
    ``tokens='patch'``: (B, T * N, D), the N patch tokens of each frame, frame after frame. Subclasses set
    ``self.image_preprocess`` (from the model's own config), ``self.output_dim`` and ``self.tokens_per_frame`` and
    implement :meth:`encode_images`.
    """

    image_preprocess: ImagePreprocess
    tokens_per_frame: int = 1
    record_pixels: bool = False  # keep the last preprocessed frames in ``recorded_pixels`` (B, T, 3, h, w)
    recorded_pixels: torch.Tensor | None = None

    def __init__(self, tokens: str, chunk_size: int) -> None:
        super().__init__()
        if tokens not in TOKEN_MODES:
            raise ValueError(f"video_encoder.tokens must be one of {TOKEN_MODES}, got {tokens!r}")
        if chunk_size < 1:
            raise ValueError(f"video_encoder.chunk_size must be >= 1, got {chunk_size}")
        self.tokens, self.chunk_size = tokens, chunk_size

    def encode_images(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, 3, h, w) normalised -> (N, D) for ``cls`` or (N, P, D) for ``patch``."""
        raise NotImplementedError

    def preprocess_config(self) -> dict[str, Any]:
        """How the data pipeline should decode frames and what the encoder applies afterwards.

        ``image_size``: the side to decode at; ``decode_crop``: decode with a short-side scale and centre crop (True,
        for ``resize_mode: shortest``) or squash to the square (False, for ``squash``/``longest`` models, whose
        resize does not keep a centre crop); the rest is :meth:`ImagePreprocess.to_dict`.
        """
        pre = self.image_preprocess
        return {"image_size": pre.image_size, "decode_crop": pre.resize_mode == "shortest" and pre.crop is not None,
                **pre.to_dict()}

    def token_mask(self, frame_mask: torch.Tensor) -> torch.Tensor:
        """Frame mask (B, T) -> token mask (B, T * tokens_per_frame): every token of a valid frame is valid."""
        return frame_mask.repeat_interleave(self.tokens_per_frame, dim=1)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """frames (B, T, 3, H, W) -> (B, T, D) (``cls``) or (B, T * N, D) (``patch``)."""
        if frames.dim() != 5 or frames.shape[2] != 3:
            raise ValueError(f"{type(self).__name__} expects frames (B, T, 3, H, W), got {tuple(frames.shape)}")
        b, t = frames.shape[:2]
        x = frames.flatten(0, 1)
        dtype = next(self.parameters()).dtype
        pixels = [self.image_preprocess(chunk).to(dtype) for chunk in x.split(self.chunk_size)]
        if self.record_pixels:  # xemogpt explain --save-tensors: what the image tower is fed
            self.recorded_pixels = torch.cat(pixels).view(b, t, *pixels[0].shape[1:])
        outs = [self.encode_images(chunk) for chunk in pixels]
        y = torch.cat(outs).float()
        if y.dim() == 2:
            return y.view(b, t, -1)
        return y.reshape(b, t * y.shape[1], y.shape[2])
