"""The EmoCue LightningDataModule: a manifest folder or litdata shards -> batches of frames, audio and targets.

Sources (``root``):

- a **manifest folder** (``manifest.jsonl`` + media). ``cache: disk`` decodes every clip once (in parallel, with a
  progress bar) into ``<root>/.cache/decoded/`` under a key of the preprocessing, the manifest and the media files,
  so later epochs and stages read tensors; ``memory`` does the same without the file; ``none`` decodes in the
  loader workers every epoch.
- a **pack** written by ``xemogpt data pack`` (a local folder with ``pack.json``, or an object-storage URI such as
  ``s3://bucket/emocue``), streamed with litdata; ``bytes`` packs are decoded in the loader workers, ``decoded``
  packs hold tensors for one preprocessing (checked against this DataModule's settings).

Order and resume: training order is a function of ``seed`` and the epoch only (never of how the previous epoch
went), and the train loader is *stateful*: Lightning stores its position in every checkpoint and a resumed run
continues mid-epoch with exactly the samples an uninterrupted run would have seen.

Frozen encoders: :meth:`EmoCueDataModule.use_features` (called by the recipe runner before each stage whose
encoders are frozen) fills the feature cache of :mod:`xemogpt.data.feature_cache` with ``Trainer.predict`` over each
encoder and switches the loaders to batches of cached encoder outputs, so nothing is decoded or encoded again.

Bad input never ends a run: each bad record or clip is skipped (or kept with a missing modality or a repair), logged
with its id and reason, and counted in :attr:`EmoCueDataModule.skips` (see :mod:`xemogpt.data.problems`);
``strict`` makes the first one fatal.
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from xemogpt.data.batch import to_device
from xemogpt.data.decode import DecodeError, decode_clip
from xemogpt.data.feature_cache import (
    CacheReport,
    FeatureStore,
    FeatureWriter,
    device_options,
    encoder_identity,
    file_fingerprint,
)
from xemogpt.data.problems import (  # noqa: F401  (re-exported: the public names of this module)
    BadSampleError,
    MediaProblem,
    SkipLog,
    check_media,
    note_filter,
    usable_samples,
)
from xemogpt.data.schema import SPLITS, EmoCueSample, read_manifest
from xemogpt.data.streaming import is_pack, is_remote, read_pack_info, read_pack_samples
from xemogpt.data.synth.annotate import description_for

log = logging.getLogger("xemogpt.data")

DECODED_CACHE_VERSION = "v4"  # v3: frames stored (T, 3, H, W); v4: odd_audio notes


def cue_text(sample: EmoCueSample, modality: str) -> str:
    """The text a bridge aligns with: the clip's cue sentences of one modality (or a neutral placeholder)."""
    cues = sample.cues.get(modality) or []
    return " ".join(cues) if cues else f"no {modality} cues"


# --- datasets ---------------------------------------------------------------------------------------------------------
class EmoCueDataset(Dataset):
    """Decodes clips on the fly. Items: dict(id, index, frames (T, 3, H, W) uint8 | None, audio (S,) float32 | None,
    notes [(reason, detail)]) or dict(id, index, error, detail).

    ``video``/``audio`` False skips decoding that modality (its entry is None).
    """

    def __init__(self, root: str | Path, samples: list[EmoCueSample], num_frames: int = 16, frame_size: int = 64,
                 sample_rate: int = 16000, max_seconds: float = 12.0, crop: bool = False, video: bool = True,
                 audio: bool = True, resample: str = "area", sampling: str = "centre",
                 audio_resampler: str = "ffmpeg") -> None:
        self.root = Path(root)
        self.samples = samples
        self.num_frames, self.frame_size, self.crop = num_frames, frame_size, crop
        self.resample, self.sampling, self.audio_resampler = resample, sampling, audio_resampler
        self.sample_rate, self.max_seconds = sample_rate, max_seconds
        self.want_video, self.want_audio = video, audio

    def __len__(self) -> int:
        return len(self.samples)

    def decode(self, s: EmoCueSample) -> dict[str, Any]:
        try:
            video, audio = check_media(self.root, s)
            if not self.want_video:  # audio only: from the separate file, else from the video's track
                video, audio = None, audio if audio is not None else video
            d = decode_clip(video, audio, num_frames=self.num_frames, size=self.frame_size, crop=self.crop,
                            sample_rate=self.sample_rate, max_seconds=self.max_seconds, name=s.video or s.audio,
                            with_audio=self.want_audio, channels_first=True, resample=self.resample,
                            sampling=self.sampling, audio_resampler=self.audio_resampler)
        except MediaProblem as e:
            return {"id": s.id, "error": e.reason, "detail": e.detail}
        except DecodeError as e:
            return {"id": s.id, "error": e.reason, "detail": str(e)}
        return {"id": s.id, "frames": d.frames, "audio": d.audio, "notes": note_filter(s, d.notes)}

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = self.decode(self.samples[i])
        item["index"] = i
        return item


class CachedDataset(Dataset):
    """Decoded items held in memory (loaded from the disk cache); frames uint8 tensors, audio int16 tensors."""

    def __init__(self, items: dict[str, dict[str, Any]], samples: list[EmoCueSample]) -> None:
        self.items = items
        self.samples = [s for s in samples if s.id in items and "error" not in items[s.id]]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict[str, Any]:
        s = self.samples[i]
        it = self.items[s.id]
        return {"id": s.id, "frames": it["frames"], "audio": it["audio"], "notes": it.get("notes", []), "index": i}


class FeatureDataset(Dataset):
    """Cached encoder outputs per clip, plus decoded media for modalities without a cache (from ``base``).

    Items: dict(id, index, video_features (T, Dv) | None, audio_features (A, Da) | None, frames, audio, notes) or an
    error item when a clip has no cached features.
    """

    def __init__(self, samples: list[EmoCueSample], stores: dict[str, FeatureStore],
                 keys: dict[str, dict[str, str]], base: Dataset | None = None) -> None:
        self.samples, self.stores, self.keys, self.base = samples, stores, keys, base

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict[str, Any]:
        s = self.samples[i]
        item: dict[str, Any] = {"id": s.id, "index": i, "frames": None, "audio": None, "notes": []}
        notes: dict[tuple[str, str], None] = {}  # the clip's decode notes, from every store (and the media)
        for modality, store in self.stores.items():
            try:
                feats, stored = store.read(self.keys[modality][s.id])
            except KeyError as e:
                return {"id": s.id, "index": i, "error": "no_features", "detail": str(e)}
            item[f"{modality}_features"] = feats if feats.shape[0] else None
            notes.update(dict.fromkeys(stored))
        if self.base is not None:
            b = self.base[i]
            if "error" in b:
                return {**b, "index": i}
            item["frames"], item["audio"] = b.get("frames"), b.get("audio")
            notes.update(dict.fromkeys(tuple(n) for n in b.get("notes", [])))
        item["notes"] = list(notes)
        return item


class _PackSubset(torch.utils.data.IterableDataset):
    """The items of a pack's splits whose ids are ``wanted``, in pack order (a pack is read front to back)."""

    def __init__(self, splits: dict[str, Dataset], wanted: set[str]) -> None:
        self.splits, self.wanted = splits, wanted

    def __iter__(self):
        for split in SPLITS:
            ds = self.splits[split]
            for i in range(len(ds)):
                it = ds[i]
                if it["id"] in self.wanted:
                    yield it


class _Empty(Dataset):
    def __len__(self) -> int:
        return 0

    def __getitem__(self, i: int):
        raise IndexError(i)


# --- loading order and resume ---------------------------------------------------------------------------------------
class ResumableSampler(DistributedSampler):
    """Indices of one epoch: a permutation that depends only on ``seed`` and the epoch, from ``start`` on.

    ``start`` is set when a run resumes mid-epoch and applies to the next iteration only. Under DDP each rank takes
    every ``world``-th index of the same permutation (padded to equal length), so it is a ``DistributedSampler``
    and Lightning keeps it instead of wrapping it; the rank is read when iterating (after the process group
    exists). ``DistributedSampler.__init__`` is not called for that reason: it needs the process group.
    """

    def __init__(self, n: int, shuffle: bool, seed: int = 0) -> None:  # no super().__init__(): see above
        self.n, self.shuffle, self.seed = n, shuffle, seed
        self.epoch = 0
        self.start = 0
        self.drop_last = False

    @property
    def num_replicas(self) -> int:  # type: ignore[override]
        dist = torch.distributed
        return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1

    @property
    def rank(self) -> int:  # type: ignore[override]
        dist = torch.distributed
        return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.start = 0
        self.epoch = epoch

    def order(self, epoch: int | None = None) -> list[int]:
        """This rank's indices of ``epoch`` (default: the current one)."""
        epoch = self.epoch if epoch is None else epoch
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        world = self.num_replicas
        if world > 1 and order:
            order += order[: len(self) * world - self.n]  # pad so every rank gets as many
            order = order[self.rank::world]
        return order

    def __iter__(self):
        order = self.order()[self.start:]
        self.start = 0
        yield from order

    def __len__(self) -> int:
        world = self.num_replicas
        return -(-self.n // world)  # the full epoch: Lightning counts resumed batches itself


class EmoCueLoader(DataLoader):
    """A DataLoader whose place in the epoch is saved in checkpoints and restored on resume.

    Lightning calls :meth:`state_dict` when it saves a checkpoint and :meth:`load_state_dict` before it iterates a
    resumed epoch. Every batch is also handed to ``on_batch`` in the main process (the DataModule records the
    skipped and handled samples it carries, even when decoding ran in worker processes).
    """

    def __init__(self, dataset: Dataset, *, sampler: ResumableSampler, batch_size: int,
                 on_batch: Callable[[dict[str, Any]], None] | None = None, **kwargs: Any) -> None:
        super().__init__(dataset, batch_size=batch_size, sampler=sampler, **kwargs)
        self.on_batch = on_batch
        self._yielded = 0  # samples of the current epoch handed out (counting a resumed prefix)

    def __iter__(self):
        self._yielded = self.sampler.start
        for batch in super().__iter__():
            self._yielded = min(len(self.sampler), self._yielded + self.batch_size)
            if self.on_batch is not None:
                self.on_batch(batch)
            yield batch

    def state_dict(self) -> dict[str, Any]:
        s = self.sampler
        return {"epoch": s.epoch, "samples": self._yielded, "n": s.n, "seed": s.seed, "shuffle": s.shuffle}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        s = self.sampler
        if (state.get("n"), state.get("seed"), state.get("shuffle")) != (s.n, s.seed, s.shuffle):
            warnings.warn(f"the checkpoint's data position (n={state.get('n')}, seed={state.get('seed')}) does not "
                          f"match this dataset (n={s.n}, seed={s.seed}); the epoch restarts from its beginning",
                          stacklevel=2)
            s.epoch, s.start = int(state.get("epoch", 0)), 0
            return
        s.epoch, s.start = int(state["epoch"]), min(int(state["samples"]), len(s))
        self._yielded = s.start


def _streaming_loader_class():
    """litdata's StreamingDataLoader with the same ``on_batch`` hook (built lazily: litdata is imported on use)."""
    global _STREAMING_LOADER
    if _STREAMING_LOADER is None:
        from litdata import StreamingDataLoader

        class EmoCueStreamingLoader(StreamingDataLoader):
            """litdata's stateful loader (mid-epoch resume via ``state_dict``) plus the ``on_batch`` hook."""

            def __init__(self, *args: Any, on_batch: Callable | None = None, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                self.on_batch = on_batch

            def __iter__(self):
                n = len(self)
                for batch in super().__iter__():
                    if self._num_samples_yielded_streaming >= n * self.batch_size:
                        # The epoch's last batch. Lightning stops at len() without exhausting the iterator, so
                        # litdata never clears its "resumed" flag and would replay the resumed epoch's order in the
                        # next epoch; clear it here.
                        self.restore = False
                    if self.on_batch is not None:
                        self.on_batch(batch)
                    yield batch

        _STREAMING_LOADER = EmoCueStreamingLoader
    return _STREAMING_LOADER


_STREAMING_LOADER = None


# --- batches -------------------------------------------------------------------------------------------------------
class Collator:
    """List of items -> a :class:`~xemogpt.data.batch.Batch`; error items are dropped here and reported through
    ``skipped`` (kept items with a problem through ``handled``).

    With cached features (``video_dim``/``audio_dim`` set) a modality comes as ``video_features`` (B, T, Dv) with
    ``video_feature_mask`` (B, T) / ``audio_features`` (B, A, Da) with ``audio_feature_mask`` (B, A) instead of its
    media; the model then skips that frozen encoder.
    """

    def __init__(self, samples_by_id: dict[str, EmoCueSample], num_frames: int, frame_size: int,
                 video_dim: int | None = None, audio_dim: int | None = None) -> None:
        self.samples_by_id = samples_by_id
        self.num_frames, self.frame_size = num_frames, frame_size
        self.video_dim, self.audio_dim = video_dim, audio_dim

    def _sample(self, it: dict[str, Any]) -> EmoCueSample:
        s = self.samples_by_id.get(it["id"])
        if s is None and it.get("sample"):
            s = EmoCueSample.from_dict(json.loads(it["sample"]))
        if s is None:
            raise KeyError(f"sample {it['id']!r} is not in the manifest; the pack or cache does not match the dataset")
        return s

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        skipped = [(it["id"], it["error"], it.get("detail", "")) for it in items if "error" in it]
        items = [it for it in items if "error" not in it]
        handled = [(it["id"], r, d) for it in items for r, d in it.get("notes", [])]
        b, t, s = len(items), self.num_frames, self.frame_size
        out: dict[str, Any] = {}
        if self.video_dim is not None:
            out["video_features"], out["video_feature_mask"] = self._pad([it.get("video_features") for it in items],
                                                                         self.video_dim, t)
        else:
            frames = _batch_tensor((b, t, 3, s, s), torch.uint8)
            frame_mask = torch.zeros(b, t, dtype=torch.bool)
            for i, it in enumerate(items):
                if it["frames"] is None:
                    frames[i].zero_()
                    continue
                f = torch.as_tensor(np.asarray(it["frames"]))
                frames[i] = f if f.shape[1] == 3 else f.permute(0, 3, 1, 2)  # (T, 3, H, W); packs may hold THWC
                frame_mask[i] = True
            out["frames"], out["frame_mask"] = frames, frame_mask
        if self.audio_dim is not None:
            out["audio_features"], out["audio_feature_mask"] = self._pad([it.get("audio_features") for it in items],
                                                                         self.audio_dim, 1)
        else:
            lengths = [0 if it["audio"] is None else len(it["audio"]) for it in items]
            n = max(lengths + [1])
            audio = _batch_tensor((b, n), torch.float32)
            audio_mask = torch.zeros(b, n, dtype=torch.bool)
            for i, it in enumerate(items):
                k = lengths[i]
                if k:
                    a = torch.as_tensor(np.asarray(it["audio"]))
                    audio[i, :k] = a.float() / 32767.0 if a.dtype == torch.int16 else a
                    audio_mask[i, :k] = True
                audio[i, k:] = 0.0
            out["audio"], out["audio_mask"] = audio, audio_mask
        samples = [self._sample(it) for it in items]
        return {
            "ids": [x.id for x in samples],
            **out,
            "subtitle": [x.subtitle for x in samples],
            "description": [x.description for x in samples],
            # the description as it reads without the video / the audio (None where it cannot be rebuilt): what
            # modality dropout trains on (XEmoGPT, stage key modality_dropout)
            "description_without": {"video": [description_for(x, {"audio"}) for x in samples],
                                    "audio": [description_for(x, {"video"}) for x in samples]},
            "visual_text": [cue_text(x, "visual") for x in samples],
            "auditory_text": [cue_text(x, "auditory") for x in samples],
            "emotion": [x.emotion for x in samples],
            "samples": samples,
            "skipped": skipped,
            "handled": handled,
        }

    @staticmethod
    def _pad(feats: list[torch.Tensor | None], dim: int, min_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-clip (N_i, D) features -> (B, N, D) float32 and mask (B, N); None rows stay masked."""
        n = max([min_len] + [f.shape[0] for f in feats if f is not None])
        out = torch.zeros(len(feats), n, dim, dtype=torch.float32)
        mask = torch.zeros(len(feats), n, dtype=torch.bool)
        for i, f in enumerate(feats):
            if f is not None:
                out[i, : f.shape[0]] = f
                mask[i, : f.shape[0]] = True
        return out, mask


class _MediaBatches(L.LightningDataModule):
    """One media loader for ``Trainer.predict``, with the DataModule's batch transfer (metadata left unwalked)."""

    def __init__(self, loader: DataLoader) -> None:
        super().__init__()
        self.loader = loader

    def predict_dataloader(self) -> DataLoader:
        return self.loader

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        return to_device(batch, device)


def _identity(batch):
    return batch


def _batch_tensor(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised batch tensor; in a loader worker it is allocated in shared memory, as torch's default_collate
    does, so the batch reaches the main process without another copy of every frame."""
    if torch.utils.data.get_worker_info() is None:
        return torch.empty(shape, dtype=dtype)
    numel = int(np.prod(shape))
    proto = torch.empty(0, dtype=dtype)
    return proto.new(proto._typed_storage()._new_shared(numel, device="cpu")).resize_(shape)


# --- the DataModule ----------------------------------------------------------------------------------------------
class EmoCueDataModule(L.LightningDataModule):
    """Streams EmoCue clips from a manifest folder or a pack to every stage.

    Args:
        root: dataset folder (``manifest.jsonl`` inside), pack folder (``pack.json`` inside) or pack URI.
        batch_size, num_workers: loader settings (``num_workers`` also decodes the cache in parallel).
        num_frames: frames sampled uniformly per clip (16 in the paper). frame_size: decoded frame side (set from the
            video encoder's preprocessing by the model builder).
        sample_rate, max_seconds: audio resampling and cut (16 kHz, first 12 s in the paper).
        cache: ``disk`` (decode once into ``root/.cache``), ``memory`` (decode once per process) or ``none``
            (decode in the loader workers every epoch). The decoded clips are held in memory (about 2.8 MB per clip
            at 16 x 224 px + 12 s): fine for thousands of clips; larger datasets use ``none`` or a decoded pack.
            Packs are always streamed.
        strict: the first bad sample raises instead of being skipped and counted.
        seed: shuffling seed (the order is a function of seed and epoch).
        eval_batch_size: batch size of the val/test loaders (default ``batch_size``).
        frame_crop: scale the short side to ``frame_size`` and centre-crop (CLIP-style) instead of squashing.
        frame_resample: ``area`` (fast) or ``bicubic`` (exactly the Hugging Face CLIP image processor's resize; set
            from the video encoder's preprocessing). frame_sampling: ``centre`` (segment centres) or ``linspace``
            (the released XEmoGPT's first-to-last ``numpy.linspace``).
        audio_resampler: ``ffmpeg`` (fast) or ``soxr`` (what the released XEmoGPT's librosa computes).
        features: ``auto`` (use the feature cache for frozen encoders when :meth:`use_features` is called) or
            ``off``.
        features_dir: feature cache folder (default ``<root>/.cache/features``, or ``~/.cache/xemogpt/features`` for
            remote packs).
        storage_options: credentials/endpoint options for object-storage packs (passed to litdata).
    """

    def __init__(self, root: str, batch_size: int = 16, num_workers: int = 2, num_frames: int = 16,
                 frame_size: int = 64, sample_rate: int = 16000, max_seconds: float = 12.0, cache: str = "disk",
                 strict: bool = False, seed: int = 0, eval_batch_size: int | None = None, *,
                 frame_crop: bool = False, frame_resample: str = "area", frame_sampling: str = "centre",
                 audio_resampler: str = "ffmpeg", features: str = "auto", features_dir: str | None = None,
                 storage_options: dict[str, Any] | None = None) -> None:
        super().__init__()
        if cache not in ("disk", "memory", "none"):
            raise ValueError(f"data.cache must be disk, memory or none, got {cache!r}")
        if features not in ("auto", "off"):
            raise ValueError(f"data.features must be auto or off, got {features!r}")
        self.root = root if is_remote(root) else Path(root)
        self.batch_size, self.num_workers = batch_size, num_workers
        self.eval_batch_size = eval_batch_size or batch_size
        from xemogpt.data.decode import AUDIO_RESAMPLERS, RESAMPLES, SAMPLINGS

        if frame_resample not in RESAMPLES:
            raise ValueError(f"data.frame_resample must be one of {RESAMPLES}, got {frame_resample!r}")
        if frame_sampling not in SAMPLINGS:
            raise ValueError(f"data.frame_sampling must be one of {SAMPLINGS}, got {frame_sampling!r}")
        if audio_resampler not in AUDIO_RESAMPLERS:
            raise ValueError(f"data.audio_resampler must be one of {AUDIO_RESAMPLERS}, got {audio_resampler!r}")
        self.num_frames, self.frame_size, self.frame_crop = num_frames, frame_size, frame_crop
        self.frame_resample, self.frame_sampling, self.audio_resampler = frame_resample, frame_sampling, audio_resampler
        self.sample_rate, self.max_seconds = sample_rate, max_seconds
        self.cache, self.strict, self.seed = cache, strict, seed
        self.features, self.storage_options = features, storage_options
        self.features_dir = Path(features_dir) if features_dir else None
        self.source = "pack" if is_pack(root) else "manifest"
        self.skips = SkipLog(strict=strict)
        self._splits: dict[str, Dataset] = {}
        self._samples: list[EmoCueSample] | None = None
        self._usable: list[EmoCueSample] | None = None
        self._decoded: dict[str, dict[str, Any]] | None = None
        self._pack_info: dict[str, Any] | None = None
        self._stores: dict[str, FeatureStore] = {}
        self._feature_splits: dict[str, Dataset] = {}

    # --- samples --------------------------------------------------------------------------------------------
    @property
    def samples(self) -> list[EmoCueSample]:
        """Every parsed record (bad records and duplicate ids already dropped and counted)."""
        if self._samples is None:
            if self.source == "pack":
                self._samples = read_pack_samples(self.root, self.storage_options)
            else:
                self._samples = read_manifest(self.root, on_problem=self.skips.hook)
        return self._samples

    def split_samples(self, split: str) -> list[EmoCueSample]:
        return [s for s in self.samples if s.split == split]

    def usable_samples(self) -> list[EmoCueSample]:
        """Samples whose media exist inside the root (packs: all packed samples)."""
        if self._usable is None:
            self._usable = (list(self.samples) if self.source == "pack"
                            else usable_samples(self.root, self.samples, self.skips))
        return self._usable

    def preprocess_spec(self) -> dict[str, Any]:
        """Everything that determines a decoded clip (part of every cache key)."""
        from xemogpt.data import decode

        spec = {"num_frames": self.num_frames, "frame_size": self.frame_size, "crop": self.frame_crop,
                "sample_rate": self.sample_rate, "max_seconds": self.max_seconds,
                "decoder": decode.DECODER_VERSION}
        # only when not the defaults, so that caches made before these options keep their keys
        if self.frame_resample != "area":
            spec["resample"] = self.frame_resample
        if self.frame_sampling != "centre":
            spec["sampling"] = self.frame_sampling
        if self.audio_resampler != "ffmpeg":
            spec["audio_resampler"] = self.audio_resampler
        return spec

    # --- decoding and the decoded cache -------------------------------------------------------------------
    def cache_key(self) -> str:
        """Hash of the manifest, the media files' fingerprints and the preprocessing."""
        h = hashlib.sha256((Path(self.root) / "manifest.jsonl").read_bytes())
        for s in self.usable_samples():
            h.update(self._fingerprint(s, "video").encode())
            h.update(self._fingerprint(s, "audio").encode())
        h.update(json.dumps(self.preprocess_spec(), sort_keys=True).encode() + DECODED_CACHE_VERSION.encode())
        return h.hexdigest()[:16]

    def _raw_dataset(self, samples: list[EmoCueSample], video: bool = True, audio: bool = True) -> EmoCueDataset:
        return EmoCueDataset(self.root, samples, self.num_frames, self.frame_size, self.sample_rate,
                             self.max_seconds, self.frame_crop, video=video, audio=audio,
                             resample=self.frame_resample, sampling=self.frame_sampling,
                             audio_resampler=self.audio_resampler)

    def _decode_all(self, samples: list[EmoCueSample]) -> dict[str, dict[str, Any]]:
        from tqdm.auto import tqdm

        ds = self._raw_dataset(samples)
        loader = DataLoader(ds, batch_size=None, num_workers=self.num_workers, collate_fn=_identity)
        items: dict[str, dict[str, Any]] = {}
        for it in tqdm(loader, total=len(ds), desc="decoding clips", unit="clip", leave=False):
            if "error" in it:
                items[it["id"]] = {"error": it["error"], "detail": it.get("detail", "")}
                continue
            audio = None if it["audio"] is None else torch.from_numpy(
                np.clip(it["audio"] * 32767.0, -32768, 32767).astype(np.int16))
            frames = None if it["frames"] is None else torch.from_numpy(it["frames"])
            items[it["id"]] = {"frames": frames, "audio": audio, "notes": [list(n) for n in it.get("notes", [])]}
        return items

    def _record_items(self, items: dict[str, dict[str, Any]]) -> None:
        for sid, it in items.items():
            if "error" in it:
                self.skips.add(sid, it["error"], it.get("detail", ""))
            for reason, detail in it.get("notes", []):
                self.skips.add(sid, reason, detail, skipped=False)

    def _load_cached(self) -> dict[str, dict[str, Any]]:
        samples = self.usable_samples()
        path = Path(self.root) / ".cache" / "decoded" / f"{self.cache_key()}.pt"
        if self.cache == "disk" and path.exists():
            try:
                items = torch.load(path, weights_only=True)
                self._record_items(items)
                return items
            except BadSampleError:
                raise
            except Exception as e:  # a corrupt cache is rebuilt, never trusted
                log.warning("decoded cache %s is unreadable (%s); rebuilding it", path, e)
        items = self._decode_all(samples)
        self._record_items(items)
        if self.cache == "disk":
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            torch.save(items, tmp)
            tmp.replace(path)
        return items

    def _fingerprint(self, s: EmoCueSample, modality: str) -> str:
        """Media fingerprint of a sample's ``video`` or ``audio`` source (pack id for packs)."""
        if self.source == "pack":
            return str(self._info()["pack_id"])
        rel = s.video if modality == "video" else (s.audio or s.video)
        if rel is None:
            return "none"
        try:
            return file_fingerprint(Path(self.root) / rel)
        except OSError:
            return "missing"

    def _info(self) -> dict[str, Any]:
        if self._pack_info is None:
            self._pack_info = read_pack_info(self.root, self.storage_options)
        return self._pack_info

    # --- setup ------------------------------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self._splits:
            return
        if self.source == "pack":
            self._setup_pack()
        elif self.cache in ("disk", "memory"):
            self._decoded = self._load_cached()
            for split in SPLITS:
                self._splits[split] = CachedDataset(self._decoded, [s for s in self.usable_samples()
                                                                    if s.split == split])
        else:
            for split in SPLITS:
                self._splits[split] = self._raw_dataset([s for s in self.usable_samples() if s.split == split])

    def _setup_pack(self) -> None:
        from xemogpt.data.streaming import ShardDecoder, streaming_split

        info = self._info()
        if info["mode"] == "decoded":
            mine = {k: v for k, v in self.preprocess_spec().items() if k != "decoder"}
            theirs = info.get("preprocess") or {}
            diff = {k: (theirs.get(k), v) for k, v in mine.items() if theirs.get(k) != v}
            if diff:
                raise ValueError(f"the decoded pack {self.root} was written with other preprocessing than this run "
                                 f"needs ({', '.join(f'{k}: pack {a!r} vs run {b!r}' for k, (a, b) in diff.items())}"
                                 "); pack again with matching --frame-size/--num-frames/..., or pack in bytes mode")
        transform = ShardDecoder(info["mode"], self.num_frames, self.frame_size, self.frame_crop, self.sample_rate,
                                 self.max_seconds, self.frame_resample, self.frame_sampling, self.audio_resampler)
        for split in SPLITS:
            ds = None
            if info.get("splits", {}).get(split):
                ds = streaming_split(self.root, split, shuffle=False, seed=self.seed, transform=transform,
                                     storage_options=self.storage_options)
            self._splits[split] = ds if ds is not None else _Empty()

    def dataset(self, split: str) -> Dataset:
        """The dataset a loader of ``split`` reads (cached features when :meth:`use_features` is active)."""
        if self._stores:
            if split not in self._feature_splits:
                self._feature_splits[split] = self._feature_dataset(split)
            return self._feature_splits[split]
        self.setup()
        return self._splits[split]

    # --- loaders --------------------------------------------------------------------------------------------
    def collator(self) -> Collator:
        vdim = self._stores["video"].dim if "video" in self._stores else None
        adim = self._stores["audio"].dim if "audio" in self._stores else None
        if "video" in self._stores and vdim is None:
            vdim = 1  # nothing was encoded (every clip lacks video): an empty feature width
        if "audio" in self._stores and adim is None:
            adim = 1
        return Collator({s.id: s for s in self.samples}, self.num_frames, self.frame_size, vdim, adim)

    def _loader(self, split: str, shuffle: bool, batch_size: int | None = None) -> DataLoader:
        ds = self.dataset(split)
        bs = batch_size or self.batch_size
        if self.source == "pack" and not self._stores and not isinstance(ds, _Empty):
            cls = _streaming_loader_class()
            return cls(ds, batch_size=bs, shuffle=shuffle, num_workers=self.num_workers, collate_fn=self.collator(),
                       on_batch=self.record_batch)
        in_memory = isinstance(ds, CachedDataset) or (isinstance(ds, FeatureDataset) and (
            ds.base is None or isinstance(ds.base, CachedDataset)))
        workers = 0 if in_memory or isinstance(ds, _Empty) else self.num_workers
        sampler = ResumableSampler(len(ds), shuffle, self.seed)
        return EmoCueLoader(ds, sampler=sampler, batch_size=bs, num_workers=workers, collate_fn=self.collator(),
                            persistent_workers=workers > 0, on_batch=self.record_batch)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False, batch_size=self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False, batch_size=self.eval_batch_size)

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        return to_device(batch, device)  # the clips' metadata stays on the host, unwalked

    def record_batch(self, batch: dict[str, Any]) -> None:
        """Count the skipped and handled samples a batch reports (each (sample, reason) once)."""
        for sid, reason, detail in batch.get("skipped", []):
            self.skips.add(sid, reason, detail)
        for sid, reason, detail in batch.get("handled", []):
            self.skips.add(sid, reason, detail, skipped=False)

    def note_skipped(self, skipped: list[tuple[str, str, str]]) -> None:
        """Record items the collator dropped (kept for callers that pass ``batch["skipped"]``; idempotent)."""
        for sid, reason, detail in skipped:
            self.skips.add(sid, reason, detail)

    # --- checkpoint state (Lightning saves it with every checkpoint) ------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"skips": self.skips.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "skips" in state_dict:
            self.skips.load_state_dict(state_dict["skips"])

    # --- feature cache --------------------------------------------------------------------------------------
    def features_base(self) -> Path:
        if self.features_dir is not None:
            return self.features_dir
        if self.source == "pack" and is_remote(self.root):
            key = hashlib.sha256(str(self.root).encode()).hexdigest()[:16]
            return Path.home() / ".cache" / "xemogpt" / "features" / key
        return Path(self.root) / ".cache" / "features"

    def feature_store(self, modality: str, encoder: torch.nn.Module) -> FeatureStore:
        """The store of ``encoder``'s outputs for this dataset's preprocessing of ``modality``."""
        pre = self.preprocess_spec()
        if modality == "video":
            pre = {k: pre[k] for k in ("num_frames", "frame_size", "crop", "decoder")}
        else:
            pre = {k: pre[k] for k in ("sample_rate", "max_seconds", "decoder")}
        return FeatureStore(self.features_base(), modality, encoder_identity(encoder), pre)

    def use_features(self, video_encoder: torch.nn.Module | None = None,
                     audio_encoder: torch.nn.Module | None = None, *, trainer_options: dict[str, Any] | None = None,
                     device: torch.device | str | None = None, progress: bool = True) -> list[CacheReport]:
        """Encode every clip not yet cached with these (frozen) encoders and read cached features from now on.

        Each encoder runs through ``Trainer.predict`` (its ``predict_step``) with ``trainer_options`` (the recipe's
        accelerator, devices, nodes: several GPUs fill the cache in parallel, each clip written as its batch ends,
        so an interrupted fill resumes with the clips still missing) or on ``device`` (default: the encoder's).
        Pass the encoders that are frozen for the coming stage; a modality whose encoder is None keeps reading
        media. ``use_features()`` with no encoder (or ``features: off``) switches back to media. Packs use features
        only when both encoders are frozen (a pack cannot be read for one modality alone).
        """
        self._stores, self._feature_splits = {}, {}
        if self.features == "off" or (video_encoder is None and audio_encoder is None):
            return []
        if self.source == "pack":
            if video_encoder is None or audio_encoder is None:
                return []
            self.setup()  # the streaming datasets feed the encoders (manifest clips are decoded only if not cached)
        reports = []
        stores = {}
        for modality, enc in (("video", video_encoder), ("audio", audio_encoder)):
            if enc is None:
                continue
            store = self.feature_store(modality, enc)
            reports.append(self.fill_features(store, enc, trainer_options, device, progress))
            stores[modality] = store
        self._stores = stores
        return reports

    def _clip_keys(self, store: FeatureStore, samples: list[EmoCueSample]) -> dict[str, str]:
        return {s.id: store.clip_key(s.id, self._fingerprint(s, store.modality)) for s in samples}

    def _feature_samples(self) -> list[EmoCueSample]:
        bad = self.skips.skipped_ids()
        return [s for s in self.usable_samples() if s.id not in bad]

    def fill_features(self, store: FeatureStore, encoder: L.LightningModule,
                      trainer_options: dict[str, Any] | None = None, device: torch.device | str | None = None,
                      progress: bool = True) -> CacheReport:
        """Encode the clips ``store`` lacks with ``Trainer.predict(encoder)``; -> what was done."""
        import time

        t0 = time.time()
        samples = self._feature_samples()
        keys = self._clip_keys(store, samples)
        todo = [s for s in samples if not store.has(keys[s.id])]
        report = CacheReport(store.modality, store.key, reused=len(samples) - len(todo))
        if todo:
            # (audio encoders encode each clip of a batch alone, at its own length: see AudioEncoder.predict_step)
            bs = self.eval_batch_size
            writer = FeatureWriter(store, keys, report, self.skips, getattr(encoder, "output_dim", None))
            opts = dict(trainer_options) if trainer_options else device_options(
                device if device is not None else next(encoder.parameters(), torch.empty(0)).device)
            opts.update(logger=False, enable_checkpointing=False, enable_model_summary=False,
                        enable_progress_bar=progress, callbacks=[writer])
            was_training = encoder.training
            encoder.eval()
            try:
                L.Trainer(**opts).predict(encoder, datamodule=_MediaBatches(self._media_loader(todo, bs)),
                                          return_predictions=False)
            finally:
                encoder.train(was_training)
        report.seconds = time.time() - t0
        return report

    def _media_loader(self, samples: list[EmoCueSample], batch_size: int) -> DataLoader:
        """Media batches of ``samples`` (from the decoded cache, decoding workers, or a pack scan) to encode."""
        collate = Collator({s.id: s for s in self.samples}, self.num_frames, self.frame_size)
        if self.source == "pack":
            ds: Dataset = _PackSubset(self._splits, {s.id for s in samples})
            return DataLoader(ds, batch_size=batch_size, collate_fn=collate)
        if self._decoded is not None:
            return DataLoader(CachedDataset(self._decoded, samples), batch_size=batch_size, collate_fn=collate)
        return DataLoader(self._raw_dataset(samples), batch_size=batch_size, num_workers=self.num_workers,
                          collate_fn=collate)

    def _feature_dataset(self, split: str) -> Dataset:
        samples = [s for s in self._feature_samples() if s.split == split]
        keys = {m: self._clip_keys(st, samples) for m, st in self._stores.items()}
        base = None
        need_video, need_audio = "video" not in self._stores, "audio" not in self._stores
        if need_video or need_audio:
            if self._decoded is None and self.cache in ("disk", "memory"):
                self.setup()
            if self._decoded is not None:
                base = CachedDataset(self._decoded, samples)
                samples = base.samples
            else:
                base = self._raw_dataset(samples, video=need_video, audio=need_audio)
        return FeatureDataset(samples, self._stores, keys, base)
