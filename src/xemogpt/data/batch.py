"""The batch every loader of the DataModule yields: one typed contract that the collator writes and the model reads.

Each modality arrives either as media or as a frozen encoder's cached outputs (the feature cache), under its own
keys, never as one key whose tensor rank would have to say which:

- video as media: ``frames`` (B, T, 3, H, W) uint8 with ``frame_mask`` (B, T) bool (a clip without video: all False);
- video as features: ``video_features`` (B, T, Dv) float32 with ``video_feature_mask`` (B, T) bool;
- audio as media: ``audio`` (B, S) float32 in [-1, 1] with ``audio_mask`` (B, S) bool;
- audio as features: ``audio_features`` (B, A, Da) float32 with ``audio_feature_mask`` (B, A) bool.
"""

from __future__ import annotations

from typing import Any, TypedDict

import torch

MASK_KEYS = {("video", False): "frame_mask", ("video", True): "video_feature_mask",
             ("audio", False): "audio_mask", ("audio", True): "audio_feature_mask"}


class Batch(TypedDict, total=False):
    """A collated batch of B clips (see the module docstring for the media and feature keys)."""

    ids: list[str]
    frames: torch.Tensor
    frame_mask: torch.Tensor
    video_features: torch.Tensor
    video_feature_mask: torch.Tensor
    audio: torch.Tensor
    audio_mask: torch.Tensor
    audio_features: torch.Tensor
    audio_feature_mask: torch.Tensor
    subtitle: list[str]
    description: list[str]
    # the description as it reads without the video / the audio (None where it cannot be rebuilt)
    description_without: dict[str, list[str | None]]
    visual_text: list[str]  # the cue text each bridge aligns with (bridge pre-training)
    auditory_text: list[str]
    emotion: list[str | None]
    samples: list[Any]  # the EmoCueSample of each clip
    skipped: list[tuple[str, str, str]]  # (id, reason, detail) of clips dropped from this batch
    handled: list[tuple[str, str, str]]  # (id, reason, detail) of kept clips with a problem


#: The batch's per-clip metadata: plain Python values that stay on the host whatever the model's device.
METADATA_KEYS = frozenset({"ids", "subtitle", "description", "description_without", "visual_text", "auditory_text",
                           "emotion", "samples", "skipped", "handled"})


def to_device(batch: Any, device: torch.device | str) -> Any:
    """``batch`` with its tensors on ``device`` and its metadata (:data:`METADATA_KEYS`) passed through as it is:
    the DataModule's ``transfer_batch_to_device``.

    Lightning's default transfer walks every object of a batch, and ``samples`` holds each clip's whole EmoCueSample
    (cues, ids, meta: some 500 objects a clip), which cost milliseconds a batch for nothing. Anything else (a batch
    that is not a dict, or a key outside the contract) takes Lightning's walk.
    """
    from lightning.fabric.utilities.apply_func import move_data_to_device

    if not isinstance(batch, dict):
        return move_data_to_device(batch, device)
    return {k: v if k in METADATA_KEYS else move_data_to_device(v, device) for k, v in batch.items()}


def has_features(batch: Batch | dict[str, Any], modality: str) -> bool:
    """Whether the batch carries ``modality`` as cached encoder features."""
    return f"{modality}_features" in batch


def modality_mask(batch: Batch | dict[str, Any], modality: str) -> torch.Tensor:
    """The (B, N) validity mask of whatever the batch holds for ``modality`` (``video`` or ``audio``)."""
    return batch[MASK_KEYS[(modality, has_features(batch, modality))]]


def present(batch: Batch | dict[str, Any], modality: str) -> torch.Tensor:
    """(B,) bool: which clips have ``modality`` at all."""
    return modality_mask(batch, modality).any(1)


def without(batch: Batch | dict[str, Any], modality: str, rows: torch.Tensor) -> dict[str, Any]:
    """A shallow copy of ``batch`` in which the clips ``rows`` ((B,) bool) have no ``modality``."""
    key = MASK_KEYS[(modality, has_features(batch, modality))]
    mask = batch[key].clone()
    mask[rows] = False
    return {**batch, key: mask}
