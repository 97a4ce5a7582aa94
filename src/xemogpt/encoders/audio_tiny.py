"""A log-mel convolutional audio encoder that needs no pretrained weights."""

from __future__ import annotations

import torch
from torch import nn

from xemogpt.encoders.base import AudioEncoder
from xemogpt.registry import register


@register("audio_encoder", "logmel-conv")
class LogMelConvEncoder(AudioEncoder):
    """Log-mel spectrogram + strided 1-D convolutions.

    wav (B, S) float at ``sample_rate`` with mask (B, S) bool -> tokens (B, A, dim) with mask (B, A) bool, where
    A = ceil(S / hop_length / 2**len(channels)) (``hop_length`` 160 and 3 stages give 12.5 tokens per second).

    Args:
        dim: output width per token.
        n_mels, n_fft, hop_length, f_min, f_max: the spectrogram (80 bins up to 4 kHz resolve voice pitch).
        channels: conv widths; each stage halves the time resolution.
        log_mean, log_std: fixed standardisation of the log-mel values (about those of speech at -24 dBFS).
        sample_rate: expected input rate (the data pipeline resamples to it).
        freeze: keep the encoder frozen.
    """

    def __init__(self, dim: int = 128, n_mels: int = 80, n_fft: int = 1024, hop_length: int = 160,
                 f_min: float = 50.0, f_max: float = 4000.0, channels: tuple[int, ...] = (128, 128, 128),
                 log_mean: float = -5.5, log_std: float = 3.5, sample_rate: int = 16000,
                 freeze: bool = False) -> None:
        super().__init__()
        self.save_hyperparameters()
        import torchaudio

        # The filterbank is checked for empty bins while it is built, which the meta device (`zoo --describe`)
        # cannot do: build it on the CPU, then move it where the rest of the module lives.
        with torch.device("cpu"):
            melspec = torchaudio.transforms.MelSpectrogram(
                sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels, f_min=f_min, f_max=f_max,
                center=True, power=2.0,
            )
        self.melspec = melspec.to(torch.empty(0).device)
        layers: list[nn.Module] = []
        c_in = n_mels
        for c in channels:
            # BatchNorm, not a per-clip norm: GroupNorm/LayerNorm statistics taken over one clip erase its overall
            # level (a loud and a soft voice become the same input) and mix in however much padding the clip has.
            layers += [nn.Conv1d(c_in, c, 5, stride=2, padding=2, bias=False), nn.BatchNorm1d(c), nn.GELU()]
            c_in = c
        self.conv = nn.Sequential(*layers)
        self.proj = nn.Linear(c_in, dim)
        self.stride = hop_length * 2 ** len(channels)
        self.output_dim = dim
        if freeze:
            self.set_frozen(True)

    def preprocess_config(self) -> dict:
        return {"sample_rate": self.hparams.sample_rate}

    def token_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """Sample mask (B, S) -> token mask (B, A): a token is valid if its window starts inside the audio."""
        lengths = mask.sum(1)
        n_tok = -(-mask.shape[1] // self.stride)
        starts = torch.arange(n_tok, device=mask.device) * self.stride
        return starts[None, :] < lengths[:, None]

    def forward(self, wav: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """wav (B, S), mask (B, S) -> (tokens (B, A, dim), token mask (B, A))."""
        if mask is None:
            mask = torch.ones_like(wav, dtype=torch.bool)
        wav = wav * mask
        with torch.autocast(wav.device.type, enabled=False):
            spec = self.melspec(wav.float())  # (B, n_mels, frames)
        # A fixed standardisation keeps absolute loudness, which is a cue (loud / soft).
        x = (torch.log(spec + 1e-6) - self.hparams.log_mean) / self.hparams.log_std
        x = self.conv(x).transpose(1, 2)  # (B, A', C)
        tmask = self.token_mask(mask)
        n = min(x.shape[1], tmask.shape[1])
        x, tmask = x[:, :n], tmask[:, :n]
        return self.proj(x) * tmask[..., None], tmask
