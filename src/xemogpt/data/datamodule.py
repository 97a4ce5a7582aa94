"""The EmoCue LightningDataModule: manifest folders -> batches of frames, audio, subtitles and targets.

Bad clips never end a run: each is skipped, logged with its id and reason, and counted (``--strict`` / ``strict:
true`` makes the first one fatal). With ``cache: disk`` every clip is decoded once (in parallel, with a progress
bar) into ``<root>/.cache/decoded/`` under a key of the preprocessing settings, so later epochs and stages read
tensors instead of decoding video again.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from xemogpt.data.decode import DecodeError, decode_clip
from xemogpt.data.schema import EmoCueSample, SchemaError, read_manifest, resolve_media

log = logging.getLogger("xemogpt.data")


class BadSampleError(RuntimeError):
    """Raised in strict mode for the first bad sample; names the sample and reason."""


class SkipLog:
    """Skipped samples with reasons; ``summary()`` is printed at the end of each epoch and import."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str, str]] = []

    def add(self, sample_id: str, reason: str, detail: str = "") -> None:
        self.items.append((sample_id, reason, detail))
        log.warning("skipped sample %s: %s %s", sample_id, reason, detail)

    def counts(self) -> dict[str, int]:
        return dict(Counter(r for _, r, _ in self.items))

    def summary(self) -> str:
        if not self.items:
            return "no samples skipped"
        return f"{len(self.items)} sample(s) skipped: " + ", ".join(f"{k}={v}" for k, v in sorted(self.counts().items()))


def cue_text(sample: EmoCueSample, modality: str) -> str:
    """The text a bridge aligns with: the clip's cue sentences of one modality (or a neutral placeholder)."""
    cues = sample.cues.get(modality) or []
    return " ".join(cues) if cues else f"no {modality} cues"


class EmoCueDataset(Dataset):
    """Items: dict(id, frames (T, H, W, 3) uint8 | None, audio (S,) float32 | None, sample) or dict(id, error)."""

    def __init__(self, root: str | Path, samples: list[EmoCueSample], num_frames: int = 16, frame_size: int = 64,
                 sample_rate: int = 16000, max_seconds: float = 12.0) -> None:
        self.root = Path(root)
        self.samples = samples
        self.num_frames, self.frame_size = num_frames, frame_size
        self.sample_rate, self.max_seconds = sample_rate, max_seconds

    def __len__(self) -> int:
        return len(self.samples)

    def decode(self, s: EmoCueSample) -> dict[str, Any]:
        try:
            video = resolve_media(self.root, s.video, sample_id=s.id)
            audio = resolve_media(self.root, s.audio, sample_id=s.id)
            if video is None and audio is None:
                return {"id": s.id, "error": "no_media", "detail": "sample names no video or audio file"}
            d = decode_clip(video, audio, num_frames=self.num_frames, size=self.frame_size,
                            sample_rate=self.sample_rate, max_seconds=self.max_seconds)
        except DecodeError as e:
            return {"id": s.id, "error": e.reason, "detail": str(e)}
        except SchemaError as e:
            return {"id": s.id, "error": "bad_path", "detail": str(e)}
        return {"id": s.id, "frames": d.frames, "audio": d.audio}

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = self.decode(self.samples[i])
        item["index"] = i
        return item


class CachedDataset(Dataset):
    """Decoded items held in memory (loaded from the disk cache)."""

    def __init__(self, items: dict[str, dict[str, Any]], samples: list[EmoCueSample]) -> None:
        self.items = items
        self.samples = [s for s in samples if s.id in items]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict[str, Any]:
        s = self.samples[i]
        it = self.items[s.id]
        return {"id": s.id, "frames": it["frames"], "audio": it["audio"], "index": i}


def _identity(batch):
    return batch


class Collator:
    """List of items -> batch dict; error items are dropped here and reported through ``skipped``.

    Batch: ids (B,), frames (B, T, 3, H, W) uint8, frame_mask (B, T) bool, audio (B, S) float32, audio_mask (B, S)
    bool, subtitle/description/visual_text/auditory_text/emotion lists, samples (B,), skipped [(id, reason)].
    """

    def __init__(self, samples_by_id: dict[str, EmoCueSample], num_frames: int, frame_size: int) -> None:
        self.samples_by_id = samples_by_id
        self.num_frames, self.frame_size = num_frames, frame_size

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        skipped = [(it["id"], it["error"], it.get("detail", "")) for it in items if "error" in it]
        items = [it for it in items if "error" not in it]
        b, t, s = len(items), self.num_frames, self.frame_size
        frames = torch.zeros(b, t, 3, s, s, dtype=torch.uint8)
        frame_mask = torch.zeros(b, t, dtype=torch.bool)
        lengths = [0 if it["audio"] is None else len(it["audio"]) for it in items]
        n = max(lengths + [1])
        audio = torch.zeros(b, n, dtype=torch.float32)
        audio_mask = torch.zeros(b, n, dtype=torch.bool)
        for i, it in enumerate(items):
            if it["frames"] is not None:
                frames[i] = torch.as_tensor(np.asarray(it["frames"])).permute(0, 3, 1, 2)
                frame_mask[i] = True
            if it["audio"] is not None:
                a = torch.as_tensor(np.asarray(it["audio"]))
                audio[i, : len(a)] = a.float() / 32767.0 if a.dtype == torch.int16 else a
                audio_mask[i, : len(a)] = True
        samples = [self.samples_by_id[it["id"]] for it in items]
        return {
            "ids": [x.id for x in samples],
            "frames": frames,
            "frame_mask": frame_mask,
            "audio": audio,
            "audio_mask": audio_mask,
            "subtitle": [x.subtitle for x in samples],
            "description": [x.description for x in samples],
            "visual_text": [cue_text(x, "visual") for x in samples],
            "auditory_text": [cue_text(x, "auditory") for x in samples],
            "emotion": [x.emotion for x in samples],
            "samples": samples,
            "skipped": skipped,
        }


class EmoCueDataModule(L.LightningDataModule):
    """Streams EmoCue clips from a manifest folder to every stage.

    Args:
        root: dataset folder (``manifest.jsonl`` inside).
        batch_size, num_workers: loader settings (``num_workers`` also decodes the cache in parallel).
        num_frames: frames sampled uniformly per clip (16 in the paper). frame_size: decoded frame side (set from the
            video encoder's preprocessing by the model builder).
        sample_rate, max_seconds: audio resampling and cut (16 kHz, first 12 s in the paper).
        cache: ``disk`` (decode once into ``root/.cache``), ``memory`` (decode once per process) or ``none``.
        strict: the first bad sample raises instead of being skipped and counted.
        seed: shuffling seed (the order is a function of seed and epoch).
    """

    def __init__(self, root: str, batch_size: int = 16, num_workers: int = 2, num_frames: int = 16,
                 frame_size: int = 64, sample_rate: int = 16000, max_seconds: float = 12.0, cache: str = "disk",
                 strict: bool = False, seed: int = 0, eval_batch_size: int | None = None) -> None:
        super().__init__()
        if cache not in ("disk", "memory", "none"):
            raise ValueError(f"data.cache must be disk, memory or none, got {cache!r}")
        self.root = Path(root)
        self.batch_size, self.num_workers = batch_size, num_workers
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_frames, self.frame_size = num_frames, frame_size
        self.sample_rate, self.max_seconds = sample_rate, max_seconds
        self.cache, self.strict, self.seed = cache, strict, seed
        self.skips = SkipLog()
        self._splits: dict[str, Dataset] = {}
        self._samples: list[EmoCueSample] | None = None

    # --- samples and decoding -------------------------------------------------------------------------------
    @property
    def samples(self) -> list[EmoCueSample]:
        if self._samples is None:
            self._samples = read_manifest(self.root)
        return self._samples

    def split_samples(self, split: str) -> list[EmoCueSample]:
        return [s for s in self.samples if s.split == split]

    def cache_key(self) -> str:
        manifest = (self.root / "manifest.jsonl").read_bytes()
        spec = json.dumps([self.num_frames, self.frame_size, self.sample_rate, self.max_seconds, "v1"])
        return hashlib.sha256(manifest + spec.encode()).hexdigest()[:16]

    def _decode_all(self, samples: list[EmoCueSample]) -> dict[str, dict[str, Any]]:
        from tqdm.auto import tqdm

        ds = EmoCueDataset(self.root, samples, self.num_frames, self.frame_size, self.sample_rate, self.max_seconds)
        loader = DataLoader(ds, batch_size=None, num_workers=self.num_workers, collate_fn=_identity)
        items: dict[str, dict[str, Any]] = {}
        for it in tqdm(loader, total=len(ds), desc="decoding clips", unit="clip", leave=False):
            if "error" in it:
                self._bad(it["id"], it["error"], it.get("detail", ""))
                items[it["id"]] = {"error": it["error"], "detail": it.get("detail", "")}
                continue
            audio = None if it["audio"] is None else torch.from_numpy(
                np.clip(it["audio"] * 32767.0, -32768, 32767).astype(np.int16))
            frames = None if it["frames"] is None else torch.from_numpy(it["frames"])
            items[it["id"]] = {"frames": frames, "audio": audio}
        return items

    def _bad(self, sample_id: str, reason: str, detail: str = "") -> None:
        if self.strict:
            raise BadSampleError(f"sample {sample_id!r}: {reason} ({detail}); rerun without --strict to skip it")
        self.skips.add(sample_id, reason, detail)

    def _load_cached(self) -> dict[str, dict[str, Any]]:
        path = self.root / ".cache" / "decoded" / f"{self.cache_key()}.pt"
        if path.exists():
            try:
                items = torch.load(path, weights_only=True)
                for sid, it in items.items():
                    if "error" in it:
                        self._bad(sid, it["error"], it.get("detail", ""))
                return items
            except Exception as e:  # a corrupt cache is rebuilt, never trusted
                log.warning("decoded cache %s is unreadable (%s); rebuilding it", path, e)
        items = self._decode_all(self.samples)
        if self.cache == "disk":
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            torch.save(items, tmp)
            tmp.replace(path)
        return items

    def setup(self, stage: str | None = None) -> None:
        if self._splits:
            return
        if self.cache in ("disk", "memory"):
            items = self._load_cached()
            good = {k: v for k, v in items.items() if "error" not in v}
            for split in ("train", "val", "test"):
                self._splits[split] = CachedDataset(good, self.split_samples(split))
        else:
            for split in ("train", "val", "test"):
                self._splits[split] = EmoCueDataset(self.root, self.split_samples(split), self.num_frames,
                                                    self.frame_size, self.sample_rate, self.max_seconds)

    def dataset(self, split: str) -> Dataset:
        self.setup()
        return self._splits[split]

    # --- loaders --------------------------------------------------------------------------------------------
    def collator(self) -> Collator:
        return Collator({s.id: s for s in self.samples}, self.num_frames, self.frame_size)

    def _loader(self, split: str, shuffle: bool, batch_size: int | None = None) -> DataLoader:
        ds = self.dataset(split)
        workers = 0 if isinstance(ds, CachedDataset) else self.num_workers
        gen = torch.Generator().manual_seed(self.seed)
        return DataLoader(ds, batch_size=batch_size or self.batch_size, shuffle=shuffle, generator=gen,
                          num_workers=workers, collate_fn=self.collator(), persistent_workers=workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False, batch_size=self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False, batch_size=self.eval_batch_size)

    def note_skipped(self, skipped: list[tuple[str, str, str]]) -> None:
        """Record items the collator dropped (uncached mode)."""
        for sid, reason, detail in skipped:
            self._bad(sid, reason, detail)
