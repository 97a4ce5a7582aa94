"""A disk cache of frozen encoders' outputs, so bridge, projector and LLM stages skip decoding and encoding.

Layout: ``<dir>/<modality>/<store key>/<aa>/<clip key>.safetensors`` plus ``meta.json`` in each store folder.

- The **store key** hashes everything that determines an encoder's output apart from the clip: the encoder's class
  and recipe spec, a fingerprint of its weights (every parameter and buffer), and the preprocessing (frames per
  clip, frame size and crop, audio rate and cut, decoder version). A retrained, reconfigured or swapped encoder,
  or a changed preprocessing, therefore lands in a new folder: stale features are never read.
- The **clip key** hashes the sample id and a fingerprint of its media file (size and modification time, or the
  pack id for shards), so a replaced clip is encoded again.
- Each clip file holds one tensor ``features``: video (T, Dv) with one row per sampled frame, audio (A, Da) with the
  valid tokens only; (0, D) records that the clip has no such modality (so it is not encoded again). Its metadata
  keeps the decode notes of the clip (``no_audio``, ``truncated``...), so runs that reuse the features still count
  and report those clips.

Safetensors only (no pickle); files are written to a temporary name and renamed, so concurrent writers (DDP ranks)
and interrupted runs never leave a half file.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from torch import nn

FEATURES_VERSION = "2"  # 2: clip files carry their decode notes
MODALITIES = ("video", "audio")


def weights_fingerprint(module: nn.Module) -> str:
    """A hash of every parameter and buffer (name, dtype, shape and bytes) of ``module``.

    Hashes about 1 GB/s on one core, once per stage: cheap next to encoding a dataset.
    """
    h = hashlib.blake2b(digest_size=16)
    for name, t in sorted(module.state_dict().items()):
        t = t.detach()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        if t.numel():
            flat = t.to("cpu").contiguous().reshape(-1)
            h.update(flat.view(torch.uint8).numpy())  # raw bytes of any dtype (bf16 included), no copy
    return h.hexdigest()


def encoder_identity(encoder: nn.Module) -> dict[str, Any]:
    """What identifies an encoder's outputs: class, recipe spec (when a registered component) and weights."""
    spec: Any = None
    if hasattr(encoder, "spec"):
        try:
            spec = encoder.spec()
        except Exception:  # a component without saved hyper-parameters
            spec = None
    spec = {k: v for k, v in (spec or {}).items() if k != "freeze"}  # freezing does not change outputs
    cls = type(encoder)
    return {"class": f"{cls.__module__}.{cls.__qualname__}", "spec": _jsonable(spec),
            "weights": weights_fingerprint(encoder)}


def _jsonable(x: Any) -> Any:
    return json.loads(json.dumps(x, sort_keys=True, default=str))


def file_fingerprint(path: str | Path) -> str:
    """Size and modification time of a media file (following links): a replaced clip gets a new fingerprint."""
    st = os.stat(path)
    return f"{st.st_size}-{st.st_mtime_ns}"


@dataclass
class CacheReport:
    """What a fill did: clips encoded now, found in the cache, and skipped (bad clips)."""

    modality: str
    store: str
    computed: int = 0
    reused: int = 0
    skipped: int = 0
    seconds: float = 0.0
    problems: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.modality} features ({self.store}): {self.computed} encoded, {self.reused} reused, "
                f"{self.skipped} skipped in {self.seconds:.1f} s")


class FeatureStore:
    """Per-clip encoder outputs of one modality under one (encoder, weights, preprocessing) key.

    Args:
        base_dir: the cache folder (``<dataset>/.cache/features`` by default).
        modality: ``video`` or ``audio``.
        identity: :func:`encoder_identity` of the encoder.
        preprocess: the DataModule's preprocessing settings for this modality.
    """

    def __init__(self, base_dir: str | Path, modality: str, identity: dict[str, Any],
                 preprocess: dict[str, Any]) -> None:
        if modality not in MODALITIES:
            raise ValueError(f"feature modality must be one of {MODALITIES}, got {modality!r}")
        self.modality = modality
        self.identity = identity
        self.preprocess = _jsonable(preprocess)
        blob = json.dumps({"modality": modality, "encoder": identity, "preprocess": self.preprocess,
                           "version": FEATURES_VERSION}, sort_keys=True)
        self.key = hashlib.sha256(blob.encode()).hexdigest()[:20]
        self.dir = Path(base_dir) / modality / self.key

    @staticmethod
    def clip_key(sample_id: str, fingerprint: str) -> str:
        return hashlib.sha256(f"{sample_id}\0{fingerprint}".encode()).hexdigest()[:32]

    def path(self, clip_key: str) -> Path:
        return self.dir / clip_key[:2] / f"{clip_key}.safetensors"

    def has(self, clip_key: str) -> bool:
        return self.path(clip_key).exists()

    def save(self, clip_key: str, features: torch.Tensor, notes: list[tuple[str, str]] | None = None) -> None:
        """Store (N, D) features of one clip ((0, D): the clip has no such modality) and its decode ``notes``
        ([(reason, detail)], see :data:`xemogpt.data.decode.NOTE_REASONS`)."""
        from safetensors.torch import save_file

        path = self.path(clip_key)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = self.dir / "meta.json"
        if not meta.exists():
            self._write_meta(meta, int(features.shape[-1]))
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp")
        meta_notes = json.dumps([list(n) for n in notes or []], ensure_ascii=False)
        save_file({"features": features.detach().to("cpu").contiguous()}, str(tmp), metadata={"notes": meta_notes})
        tmp.replace(path)

    def _write_meta(self, meta: Path, dim: int) -> None:
        info = {"modality": self.modality, "encoder": self.identity, "preprocess": self.preprocess,
                "version": FEATURES_VERSION, "dim": dim}
        tmp = meta.with_name(f"meta.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(info, indent=2), encoding="utf-8")
        tmp.replace(meta)

    def load(self, clip_key: str) -> torch.Tensor:
        """(N, D) features of one clip; a missing or unreadable file raises ``KeyError`` naming it."""
        return self.read(clip_key)[0]

    def read(self, clip_key: str) -> tuple[torch.Tensor, list[tuple[str, str]]]:
        """((N, D) features, decode notes) of one clip; a missing or unreadable file raises ``KeyError``."""
        from safetensors import safe_open

        path = self.path(clip_key)
        try:
            with safe_open(str(path), framework="pt") as f:
                feats = f.get_tensor("features")
                meta = f.metadata() or {}
            notes = [(str(r), str(d)) for r, d in json.loads(meta.get("notes", "[]"))]
        except Exception as e:
            raise KeyError(f"{self.modality} features {path} are missing or unreadable ({e}); run `xemogpt data "
                           "cache` again or delete the folder") from e
        return feats, notes

    @property
    def dim(self) -> int | None:
        """Feature width, once anything was stored."""
        meta = self.dir / "meta.json"
        if not meta.exists():
            return None
        return int(json.loads(meta.read_text(encoding="utf-8"))["dim"])


class FeatureWriter(BasePredictionWriter):
    """Writes each predicted batch (an encoder's ``predict_step`` output) into a :class:`FeatureStore` as the batch
    ends, and books the batch's dropped and repaired clips into ``skips`` and ``report``.

    Args:
        store: the store to fill. keys: sample id -> clip key. report: counts to update. skips: the DataModule's
            :class:`~xemogpt.data.problems.SkipLog`. dim: the encoder's output width (for clips without the
            modality, stored as (0, dim)).
    """

    def __init__(self, store: FeatureStore, keys: dict[str, str], report: CacheReport, skips: Any,
                 dim: int | None = None) -> None:
        super().__init__(write_interval="batch")
        self.store, self.keys, self.report, self.skips, self.dim = store, keys, report, skips, dim

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx,
                           dataloader_idx) -> None:
        for sid, reason, detail in prediction["skipped"]:
            self.skips.add(sid, reason, detail)
            self.report.skipped += 1
            self.report.problems.append((sid, reason))
        notes: dict[str, list[tuple[str, str]]] = {}
        for sid, reason, detail in prediction["handled"]:
            self.skips.add(sid, reason, detail, skipped=False)
            notes.setdefault(sid, []).append((reason, detail))
        for sid, f in zip(prediction["ids"], prediction["features"]):
            dim = self.dim or (f.shape[-1] if f is not None else 1)
            self.store.save(self.keys[sid], f if f is not None else torch.zeros(0, dim), notes.get(sid))
            self.report.computed += 1


def device_options(device: torch.device | str) -> dict[str, Any]:
    """``Trainer`` accelerator/devices for one device (``cpu``, ``cuda``, ``cuda:1``)."""
    d = torch.device(device)
    if d.type == "cpu":
        return {"accelerator": "cpu", "devices": 1}
    return {"accelerator": "gpu", "devices": [d.index or 0]}
