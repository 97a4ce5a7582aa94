"""A small per-frame CNN video encoder that needs no pretrained weights (the tiny recipe's encoder)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from xemogpt.encoders.base import VideoEncoder
from xemogpt.registry import register


@register("video_encoder", "tiny-cnn")
class TinyCNNVideoEncoder(VideoEncoder):
    """Per-frame CNN: frames (B, T, 3, H, W) in [0, 1] -> tokens (B, T, dim), one token per frame.

    Args:
        dim: output width per frame.
        channels: conv widths; each stage halves the resolution.
        image_size: the side the data pipeline resizes frames to (read by the DataModule).
        pool: side of the spatial grid kept before the projection (4 keeps the whole 4x4 map of a 64-pixel frame,
            so small, position-dependent cues such as gaze, a nose wrinkle or a blink survive).
        freeze: keep the encoder frozen (no gradients, eval mode).
    """

    def __init__(self, dim: int = 128, channels: tuple[int, ...] = (16, 32, 64, 64), image_size: int = 64,
                 pool: int = 4, freeze: bool = False) -> None:
        super().__init__()
        self.save_hyperparameters()
        layers: list[nn.Module] = []
        c_in = 3
        for c in channels:
            # BatchNorm is several times faster than GroupNorm on CPU; frozen encoders run in eval mode.
            layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c), nn.GELU()]
            c_in = c
        self.features = nn.Sequential(*layers)
        self.proj = nn.Linear(c_in * pool * pool, dim)
        self.output_dim = dim
        self.register_buffer("mean", torch.tensor([0.5, 0.5, 0.5]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.25, 0.25, 0.25]).view(1, 3, 1, 1), persistent=False)
        if freeze:
            self.set_frozen(True)

    def preprocess_config(self) -> dict:
        """How the data pipeline should prepare frames for this encoder."""
        return {"image_size": self.hparams.image_size, "resize": "squash", "crop": False}

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """frames (B, T, 3, H, W) float in [0, 1] or uint8 -> (B, T, dim)."""
        if frames.dtype == torch.uint8:
            frames = frames.float() / 255.0
        b, t = frames.shape[:2]
        x = frames.flatten(0, 1)
        size = self.hparams.image_size
        if x.shape[-1] != size or x.shape[-2] != size:
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        x = (x - self.mean) / self.std
        x = self.features(x.contiguous(memory_format=torch.channels_last))
        x = F.adaptive_avg_pool2d(x, self.hparams.pool).flatten(1)
        return self.proj(x).view(b, t, -1)
