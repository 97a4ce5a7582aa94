"""EmoCue datasets as litdata shards: packing (``xemogpt data pack``) and streaming them back.

A pack is a folder (local, or an object-storage URI such as ``s3://bucket/emocue``) holding::

    pack.json         mode, preprocessing (decoded packs), sample counts per split, pack id, what was skipped
    manifest.jsonl    the annotations of every packed sample (EmoCue schema)
    train/ val/ test/ one litdata dataset per split (index.json + chunk-*.bin)

Two modes:

- ``bytes``: each item holds the clip's media files as bytes plus its annotation; decoding happens in the loader
  workers with any preprocessing (the same pack serves every encoder).
- ``decoded``: each item holds the decoded tensors, frames (T, 3, H, W) uint8 and audio (S,) int16, for one
  preprocessing (recorded in ``pack.json`` and checked when loading), so training reads tensors and never decodes.

Items are written in manifest order whatever the number of workers, so the same inputs give the same shards.
Reading uses litdata's ``StreamingDataset`` (deterministic shuffling from the seed and epoch) and
``StreamingDataLoader`` (``state_dict``/``load_state_dict`` resume mid-epoch through Lightning checkpoints).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xemogpt.data.schema import MANIFEST, SPLITS, EmoCueSample, read_manifest

PACK_INFO = "pack.json"
PACK_FORMAT = "xemogpt-emocue-pack"
PACK_VERSION = 2  # 2: decoded frames are (T, 3, H, W)
MODES = ("bytes", "decoded")

# litdata asks PyPI for a newer version when this is unset; runs must never touch the network.
os.environ.setdefault("LITDATA_DISABLE_VERSION_CHECK", "1")


def is_remote(root: str | Path) -> bool:
    """Whether ``root`` is an object-storage URI (``s3://``, ``gs://``, ``r2://``...) rather than a local path."""
    s = str(root)
    return "://" in s and not s.startswith("file://")


def _local(root: str | Path) -> Path:
    s = str(root)
    return Path(s[len("file://"):] if s.startswith("file://") else s)


def _join(root: str | Path, *parts: str) -> str:
    return "/".join([str(root).rstrip("/"), *parts]) if is_remote(root) else str(_local(root).joinpath(*parts))


def is_pack(root: str | Path) -> bool:
    """Whether ``root`` is a pack (a remote root always is: only packs are read from object storage)."""
    return is_remote(root) or (_local(root) / PACK_INFO).exists()


def fetch_file(root: str | Path, name: str, storage_options: dict[str, Any] | None = None) -> Path:
    """Local path of a small file of a pack (for remote packs a fresh download into a temporary folder)."""
    if not is_remote(root):
        return _local(root) / name
    from litdata.streaming.fs_provider import _get_fs_provider

    key = hashlib.sha256(str(root).encode()).hexdigest()[:16]
    local = Path(tempfile.gettempdir()) / "xemogpt-packs" / key / name
    local.parent.mkdir(parents=True, exist_ok=True)
    # Downloaded on every call (these files are small): a pack written again to the same URI must never be read
    # through a stale copy (its pack id keys the feature cache). A temporary name, then a rename: readers in other
    # processes never see half a file.
    remote = _join(root, name)
    tmp = local.with_name(f"{local.name}.{os.getpid()}.tmp")
    _get_fs_provider(remote, storage_options or {}).download_file(remote, str(tmp))
    tmp.replace(local)
    return local


def read_pack_info(root: str | Path, storage_options: dict[str, Any] | None = None) -> dict[str, Any]:
    path = fetch_file(root, PACK_INFO, storage_options)
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise FileNotFoundError(f"{root}: no readable {PACK_INFO} ({e}); write the pack with `xemogpt data pack`"
                                ) from e
    if info.get("format") != PACK_FORMAT:
        raise ValueError(f"{root}/{PACK_INFO} is not an xemogpt pack (format {info.get('format')!r})")
    return info


def read_pack_samples(root: str | Path, storage_options: dict[str, Any] | None = None) -> list[EmoCueSample]:
    return read_manifest(fetch_file(root, MANIFEST, storage_options))


# --- packing --------------------------------------------------------------------------------------------------------
@dataclass
class PackReport:
    """What ``pack_dataset`` wrote and skipped."""

    out: str
    mode: str
    counts: dict[str, int] = field(default_factory=dict)
    bytes_written: int = 0
    seconds: float = 0.0
    skips: Any = None  # SkipLog

    def summary(self) -> str:
        n = sum(self.counts.values())
        splits = ", ".join(f"{k}={v}" for k, v in self.counts.items())
        return (f"packed {n} samples ({splits}) as {self.mode} shards into {self.out}: "
                f"{self.bytes_written / 1e6:.1f} MB in {self.seconds:.1f} s; {self.skips.summary()}")


def media_digest(*paths: Path | None) -> str:
    """A content hash of a sample's media files (part of the pack id: a replaced clip changes it)."""
    h = hashlib.blake2b(digest_size=16)
    for p in paths:
        h.update(b"\0")
        if p is None:
            continue
        with open(p, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()


class _PackJob:
    """Turns one sample into a shard item (runs in worker processes). Returns ("ok", item, notes, media digest) or
    ("skip", reason, detail)."""

    def __init__(self, root: str, mode: str, preprocess: dict[str, Any]) -> None:
        self.root, self.mode, self.pre = root, mode, preprocess

    def __call__(self, sample_json: str) -> tuple:
        from xemogpt.data.decode import DecodeError, decode_clip, has_video
        from xemogpt.data.problems import MediaProblem, check_media, note_filter

        s = EmoCueSample.from_dict(json.loads(sample_json))
        try:
            video, audio = check_media(self.root, s)
        except MediaProblem as e:
            return ("skip", e.reason, e.detail)
        if self.mode == "bytes":
            try:
                for p in (video, audio):
                    if p is not None:
                        has_video(p)  # opens the container: a corrupt file is skipped now, not in every epoch
            except DecodeError as e:
                return ("skip", e.reason, str(e))
            vb = video.read_bytes() if video is not None else b""
            ab = audio.read_bytes() if audio is not None else b""
            h = hashlib.blake2b(digest_size=16)
            for blob in (vb, ab):  # the same hash media_digest gives for the files
                h.update(b"\0")
                h.update(blob)
            digest = h.hexdigest()
            item = {"id": s.id, "sample": sample_json, "video": vb, "video_name": s.video or "", "audio": ab,
                    "audio_name": s.audio or ""}
            return ("ok", item, [], digest)
        import torch

        try:
            d = decode_clip(video, audio, num_frames=self.pre["num_frames"], size=self.pre["frame_size"],
                            crop=self.pre["crop"], sample_rate=self.pre["sample_rate"],
                            max_seconds=self.pre["max_seconds"], name=s.video or s.audio, channels_first=True,
                            resample=self.pre.get("resample", "area"), sampling=self.pre.get("sampling", "centre"),
                            audio_resampler=self.pre.get("audio_resampler", "ffmpeg"))
        except DecodeError as e:
            return ("skip", e.reason, str(e))
        frames = torch.from_numpy(d.frames) if d.frames is not None else torch.zeros(0, dtype=torch.uint8)
        audio_t = (torch.from_numpy(np.clip(d.audio * 32767.0, -32768, 32767).astype(np.int16))
                   if d.audio is not None else torch.zeros(0, dtype=torch.int16))
        notes = note_filter(s, d.notes)
        item = {"id": s.id, "sample": sample_json, "frames": frames, "audio": audio_t, "notes": json.dumps(notes)}
        return ("ok", item, notes, media_digest(video, audio))


def pack_dataset(root: str | Path, out: str | Path, *, mode: str = "bytes", num_frames: int = 16,
                 frame_size: int = 64, crop: bool = False, sample_rate: int = 16000, max_seconds: float = 12.0,
                 resample: str = "area", sampling: str = "centre", audio_resampler: str = "ffmpeg", workers: int = 1,
                 chunk_bytes: str | int = "64MB", strict: bool = False, progress: bool = True,
                 storage_options: dict[str, Any] | None = None, skips=None) -> PackReport:
    """Write the manifest dataset at ``root`` as litdata shards into ``out`` (a folder or object-storage URI).

    Bad records and clips are skipped and counted (``strict``: the first one raises
    :class:`~xemogpt.data.problems.BadSampleError`); ``decoded`` mode decodes with the given preprocessing in
    ``workers`` processes. The items of each split are written in manifest order.
    """
    from xemogpt.data.problems import SkipLog

    if mode not in MODES:
        raise ValueError(f"--mode must be one of {MODES}, got {mode!r}")
    t0 = time.time()
    root = Path(root)
    skips = skips if skips is not None else SkipLog(strict=strict)
    samples = read_manifest(root, on_problem=skips.hook)
    preprocess = {"num_frames": num_frames, "frame_size": frame_size, "crop": crop, "sample_rate": sample_rate,
                  "max_seconds": max_seconds}
    if resample != "area":  # recorded only when not the default, as in EmoCueDataModule.preprocess_spec
        preprocess["resample"] = resample
    if sampling != "centre":
        preprocess["sampling"] = sampling
    if audio_resampler != "ffmpeg":
        preprocess["audio_resampler"] = audio_resampler
    job = _PackJob(str(root), mode, preprocess)
    remote = is_remote(out)
    stage = Path(tempfile.mkdtemp(prefix="xemogpt-pack-")) if remote else _local(out)
    if not remote and stage.exists():
        if (stage / PACK_INFO).exists() or not any(stage.iterdir()):
            for sub in (*SPLITS, PACK_INFO, MANIFEST):
                p = stage / sub
                shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
        else:
            raise FileExistsError(f"{stage} exists and is not a pack; choose an empty or new --out folder")
    stage.mkdir(parents=True, exist_ok=True)
    report = PackReport(out=str(out), mode=mode, skips=skips)
    kept: list[EmoCueSample] = []
    digests: dict[str, str] = {}  # sample id -> media content hash
    pool = None
    try:
        if workers > 1:
            import multiprocessing as mp

            pool = mp.get_context("spawn").Pool(workers)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(samples), desc=f"packing ({mode})", unit="clip")
        for split in SPLITS:
            group = [s for s in samples if s.split == split]
            if not group:
                continue
            kept_split = _write_split(stage / split, group, job, pool, chunk_bytes, skips, bar, digests)
            kept += kept_split
            report.counts[split] = len(kept_split)
        if bar is not None:
            bar.close()
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    kept_ids = {s.id for s in kept}  # the manifest keeps the source order
    manifest_blob = "".join(json.dumps(s.to_dict(), ensure_ascii=False) + "\n" for s in samples if s.id in kept_ids)
    (stage / MANIFEST).write_text(manifest_blob, encoding="utf-8")
    # The pack id keys cached encoder features of packed clips: it covers the annotations, the mode, the
    # preprocessing and the content of every packed media file, so a re-pack with a replaced clip gets a new one.
    media_blob = "".join(f"{sid}\0{digests[sid]}\n" for sid in sorted(digests))
    pack_id = hashlib.sha256((manifest_blob + mode + json.dumps(preprocess, sort_keys=True) + media_blob).encode()
                             ).hexdigest()
    info = {"format": PACK_FORMAT, "version": PACK_VERSION, "mode": mode, "pack_id": pack_id[:20],
            "preprocess": preprocess if mode == "decoded" else None, "splits": report.counts,
            "source": str(root.resolve()), "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "skipped": skips.counts(), "handled": skips.handled_counts()}
    (stage / PACK_INFO).write_text(json.dumps(info, indent=2), encoding="utf-8")
    skips.write(stage / "pack_log.txt")
    report.bytes_written = sum(f.stat().st_size for f in stage.rglob("*") if f.is_file())
    if remote:
        _upload(stage, str(out), storage_options)
        shutil.rmtree(stage, ignore_errors=True)
    report.seconds = time.time() - t0
    return report


def _write_split(folder: Path, group: list[EmoCueSample], job: _PackJob, pool, chunk_bytes, skips,
                 bar, digests: dict[str, str]) -> list[EmoCueSample]:
    import warnings

    from litdata.streaming.writer import BinaryWriter

    folder.mkdir(parents=True, exist_ok=True)
    inputs = [json.dumps(s.to_dict(), ensure_ascii=False) for s in group]
    results = pool.imap(job, inputs, chunksize=4) if pool is not None else map(job, inputs)
    writer = BinaryWriter(str(folder), chunk_bytes=chunk_bytes)
    kept: list[EmoCueSample] = []
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="An item was larger than the target chunk size")
        for s, res in zip(group, results):
            if bar is not None:
                bar.update(1)
            if res[0] == "skip":
                skips.add(s.id, res[1], res[2])
                continue
            for reason, detail in res[2]:
                skips.add(s.id, reason, detail, skipped=False)
            writer[len(kept)] = res[1]
            digests[s.id] = res[3]
            kept.append(s)
        if kept:
            writer.done()
            writer.merge()
    if not kept:
        shutil.rmtree(folder, ignore_errors=True)
    return kept


def _upload(stage: Path, out: str, storage_options: dict[str, Any] | None) -> None:
    from litdata.streaming.fs_provider import _get_fs_provider

    fs = _get_fs_provider(out, storage_options or {})
    for f in sorted(stage.rglob("*")):
        if f.is_file():
            fs.upload_file(str(f), _join(out, *f.relative_to(stage).parts))


# --- reading --------------------------------------------------------------------------------------------------------
class ShardDecoder:
    """litdata ``transform``: a shard item -> a loader item ``{id, frames (T, 3, H, W), audio, notes}`` or
    ``{id, error, detail}``.

    Runs in the loader workers; ``bytes`` items are decoded here with the DataModule's preprocessing.
    """

    def __init__(self, mode: str, num_frames: int, frame_size: int, crop: bool, sample_rate: int,
                 max_seconds: float, resample: str = "area", sampling: str = "centre",
                 audio_resampler: str = "ffmpeg") -> None:
        self.mode = mode
        self.num_frames, self.frame_size, self.crop = num_frames, frame_size, crop
        self.resample, self.sampling, self.audio_resampler = resample, sampling, audio_resampler
        self.sample_rate, self.max_seconds = sample_rate, max_seconds

    def __call__(self, item: dict[str, Any]) -> dict[str, Any]:
        from xemogpt.data.decode import DecodeError, decode_clip
        from xemogpt.data.problems import note_filter

        sid = item["id"]
        if self.mode == "decoded":
            frames = item["frames"]
            audio = item["audio"]
            return {"id": sid, "sample": item["sample"],
                    "frames": frames.numpy() if frames.numel() else None,
                    "audio": audio.numpy() if audio.numel() else None,
                    "notes": [tuple(x) for x in json.loads(item["notes"])]}
        video = bytes(item["video"]) or None
        audio_b = bytes(item["audio"]) or None
        try:
            d = decode_clip(video, audio_b, num_frames=self.num_frames, size=self.frame_size, crop=self.crop,
                            sample_rate=self.sample_rate, max_seconds=self.max_seconds,
                            name=item["video_name"] or item["audio_name"] or sid, channels_first=True,
                            resample=self.resample, sampling=self.sampling, audio_resampler=self.audio_resampler)
        except DecodeError as e:
            return {"id": sid, "error": e.reason, "detail": str(e)}
        sample = EmoCueSample.from_dict(json.loads(item["sample"]))
        return {"id": sid, "sample": item["sample"], "frames": d.frames, "audio": d.audio,
                "notes": note_filter(sample, d.notes)}


def streaming_split(root: str | Path, split: str, *, shuffle: bool, seed: int, transform: Callable,
                    storage_options: dict[str, Any] | None = None, cache_dir: str | None = None):
    """The litdata ``StreamingDataset`` of one split of a pack, or None when the split is empty."""
    from litdata import StreamingDataset

    if not is_remote(root) and not (_local(root) / split / "index.json").exists():
        return None
    kwargs: dict[str, Any] = {}
    if storage_options:
        kwargs["storage_options"] = storage_options
    return StreamingDataset(_join(root, split), cache_dir=cache_dir, shuffle=shuffle, seed=seed,
                            transform=transform, **kwargs)
