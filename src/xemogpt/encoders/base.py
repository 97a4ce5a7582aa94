"""The two encoder roles: a video encoder turns frames into tokens, an audio encoder turns a waveform into tokens.

Both are LightningModules whose ``predict_step`` turns a media batch (:class:`~xemogpt.data.batch.Batch`) into one
feature tensor per clip, which is how the feature cache is filled: ``Trainer.predict(encoder, loader)`` with the
recipe's devices and strategy (:meth:`~xemogpt.data.datamodule.EmoCueDataModule.use_features`).
"""

from __future__ import annotations

from typing import Any

import torch

from xemogpt.component import Component


class VideoEncoder(Component):
    """forward(frames (B, T, 3, H, W) uint8 or float in [0, 1]) -> tokens (B, T', D) (T' = T * tokens per frame)."""

    modality = "video"

    @torch.no_grad()
    def predict_step(self, batch: dict[str, Any], batch_idx: int = 0) -> dict[str, Any]:
        """A media batch -> {"ids", "features": per clip (T', D) float32 on the CPU or None (no video),
        "skipped", "handled"} (the batch's problem lists, for the cache's bookkeeping)."""
        has = batch["frame_mask"].any(1)
        feats: list[torch.Tensor | None] = [None] * len(has)
        if bool(has.any()):
            idx = has.nonzero().flatten()
            out = self(batch["frames"][idx])
            for j, i in enumerate(idx.tolist()):
                feats[i] = out[j].float().cpu()
        return {"ids": batch["ids"], "features": feats, "skipped": batch.get("skipped", []),
                "handled": batch.get("handled", [])}


class AudioEncoder(Component):
    """forward(wav (B, S) float at the model's rate, mask (B, S) bool) -> (tokens (B, A, D), mask (B, A))."""

    modality = "audio"

    @torch.no_grad()
    def predict_step(self, batch: dict[str, Any], batch_idx: int = 0) -> dict[str, Any]:
        """A media batch -> {"ids", "features": per clip (A, D) float32 valid tokens on the CPU or None (no audio),
        "skipped", "handled"}. Each clip is encoded alone, cut to its own length: padding would change the last
        tokens of shorter clips for encoders with padding-sensitive front ends (STFT, convolutions), so a clip's
        features do not depend on the batch it came in."""
        lengths = batch["audio_mask"].sum(1).tolist()
        feats: list[torch.Tensor | None] = [None] * len(lengths)
        for i, n in enumerate(lengths):
            if n:
                tok, mask = self(batch["audio"][i:i + 1, :n], batch["audio_mask"][i:i + 1, :n])
                feats[i] = tok[0][mask[0]].float().cpu()
        return {"ids": batch["ids"], "features": feats, "skipped": batch.get("skipped", []),
                "handled": batch.get("handled", [])}
