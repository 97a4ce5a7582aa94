"""Decoding clips with PyAV: uniformly sampled frames and 16 kHz mono audio, streaming (constant memory).

Errors raise :class:`DecodeError` naming the file and what was wrong; the dataset turns them into skipped-and-counted
samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


class DecodeError(RuntimeError):
    """A media file could not be decoded; ``reason`` is a short machine-friendly tag."""

    def __init__(self, path: str | Path, reason: str, detail: str = "") -> None:
        self.path, self.reason, self.detail = str(path), reason, detail
        super().__init__(f"{path}: {reason}{': ' + detail if detail else ''}")


@dataclass
class Decoded:
    """frames: (T, H, W, 3) uint8 or None; audio: (S,) float32 at ``sample_rate`` or None; fps/duration of the
    source video when known."""

    frames: np.ndarray | None
    audio: np.ndarray | None
    sample_rate: int
    fps: float | None = None
    duration: float | None = None


def uniform_indices(n_frames: int, num: int) -> np.ndarray:
    """Indices of ``num`` frames spread uniformly over ``n_frames`` (segment centres; repeats when too few)."""
    if n_frames <= 0:
        raise ValueError("no frames")
    return np.minimum(((np.arange(num) + 0.5) * n_frames / num).astype(np.int64), n_frames - 1)


def _open(path: Path):
    import av

    if not path.exists():
        raise DecodeError(path, "missing", "file does not exist")
    if path.stat().st_size == 0:
        raise DecodeError(path, "empty", "zero-byte file")
    try:
        return av.open(str(path))
    except Exception as e:  # PyAV raises several error types for corrupt containers
        raise DecodeError(path, "corrupt", f"cannot open container ({type(e).__name__}: {e})") from e


def decode_video(path: str | Path, num_frames: int = 16, size: int | tuple[int, int] = 64,
                 max_seconds: float | None = None) -> tuple[np.ndarray, float | None, float | None]:
    """Decode ``num_frames`` uniformly sampled RGB frames resized to ``size`` -> ((T, H, W, 3) uint8, fps, duration).

    Only the chosen frames are converted (colour conversion and scaling are the expensive part), and frames are not
    kept in memory, so long or high-resolution clips cost time, not memory.
    """
    path = Path(path)
    w, h = (size, size) if isinstance(size, int) else size
    container = _open(path)
    try:
        if not container.streams.video:
            raise DecodeError(path, "no_video", "no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps = float(stream.average_rate) if stream.average_rate else None
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
        if max_seconds is not None and duration is not None:
            duration = min(duration, max_seconds)
        n_est = int(stream.frames) if stream.frames else (round(duration * fps) if duration and fps else 0)
        if max_seconds is not None and fps:
            n_est = min(n_est, int(max_seconds * fps)) if n_est else int(max_seconds * fps)
        out: list[np.ndarray] = []
        try:
            if n_est > 0:
                wanted = uniform_indices(n_est, num_frames)
                targets = {}
                for k, idx in enumerate(wanted):
                    targets.setdefault(int(idx), []).append(k)
                slots: list[np.ndarray | None] = [None] * num_frames
                last = None
                for i, frame in enumerate(container.decode(stream)):
                    if i in targets:
                        arr = frame.to_ndarray(format="rgb24", width=w, height=h)
                        for k in targets[i]:
                            slots[k] = arr
                    last = frame
                    if i >= wanted[-1]:
                        break
                if last is None:
                    raise DecodeError(path, "no_frames", "the video stream holds no decodable frame")
                # Fewer frames than the header promised (truncated file): fill from the last decoded frame.
                fill = last.to_ndarray(format="rgb24", width=w, height=h)
                out = [s if s is not None else fill for s in slots]
            else:
                frames = [f.to_ndarray(format="rgb24", width=w, height=h) for f in container.decode(stream)]
                if not frames:
                    raise DecodeError(path, "no_frames", "the video stream holds no decodable frame")
                out = [frames[i] for i in uniform_indices(len(frames), num_frames)]
        except DecodeError:
            raise
        except Exception as e:
            raise DecodeError(path, "corrupt", f"video decoding failed ({type(e).__name__}: {e})") from e
        return np.stack(out), fps, duration
    finally:
        container.close()


def has_audio(path: str | Path) -> bool:
    """Whether the file has an audio stream (cheap: reads the header only)."""
    container = _open(Path(path))
    try:
        return bool(container.streams.audio)
    finally:
        container.close()


def has_video(path: str | Path) -> bool:
    container = _open(Path(path))
    try:
        return bool(container.streams.video)
    finally:
        container.close()


def decode_audio(path: str | Path, sample_rate: int = 16000, max_seconds: float | None = 12.0) -> np.ndarray:
    """Decode the first audio stream as mono float32 at ``sample_rate``, cut to ``max_seconds`` -> (S,)."""
    import av

    path = Path(path)
    container = _open(path)
    try:
        if not container.streams.audio:
            raise DecodeError(path, "no_audio", "no audio stream")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        limit = None if max_seconds is None else int(max_seconds * sample_rate)
        chunks: list[np.ndarray] = []
        total = 0
        try:
            for frame in container.decode(stream):
                for rf in resampler.resample(frame):
                    a = rf.to_ndarray().reshape(-1)
                    chunks.append(a)
                    total += a.shape[0]
                if limit is not None and total >= limit:
                    break
            else:
                for rf in resampler.resample(None):  # flush
                    chunks.append(rf.to_ndarray().reshape(-1))
        except Exception as e:
            if not chunks:
                raise DecodeError(path, "corrupt", f"audio decoding failed ({type(e).__name__}: {e})") from e
            # a truncated stream: keep what decoded
        if not chunks:
            raise DecodeError(path, "no_audio", "the audio stream holds no decodable samples")
        audio = np.concatenate(chunks).astype(np.float32)
        if limit is not None:
            audio = audio[:limit]
        if not np.isfinite(audio).all():
            audio = np.nan_to_num(audio)
        return audio
    finally:
        container.close()


def decode_clip(video: str | Path | None, audio: str | Path | None = None, *, num_frames: int = 16,
                size: int | tuple[int, int] = 64, sample_rate: int = 16000, max_seconds: float = 12.0,
                need_video: bool = False, need_audio: bool = False) -> Decoded:
    """Decode one clip. Audio comes from ``audio`` when given, else from the video's own track.

    A missing modality is allowed (returned as None) unless ``need_video``/``need_audio`` says otherwise.
    """
    frames = fps = duration = None
    if video is not None:
        try:
            frames, fps, duration = decode_video(video, num_frames, size)
        except DecodeError as e:
            if e.reason != "no_video" or need_video:
                raise
    elif need_video:
        raise DecodeError(str(audio), "no_video", "the sample has no video file")
    wav = None
    src = audio if audio is not None else video
    if src is not None:
        try:
            wav = decode_audio(src, sample_rate, max_seconds)
        except DecodeError as e:
            if e.reason != "no_audio" or need_audio:
                raise
    if frames is None and wav is None:
        raise DecodeError(str(video or audio), "no_media", "neither video frames nor audio could be decoded")
    return Decoded(frames, wav, sample_rate, fps, duration)
