"""Decoding clips with PyAV: uniformly sampled frames at the encoder's size and 16 kHz mono audio.

Design (what makes it fast and safe at scale):

- **One pass over the container.** When the audio comes from the video's own track, the video and audio packets are
  demuxed together and decoding stops as soon as the last wanted frame and ``max_seconds`` of audio are in.
- **Only the chosen frames are converted**, straight from YUV to RGB at the target size by one reused swscale
  context (colour conversion and scaling of every frame is what makes naive loaders slow).
- **Constant memory.** No decoded frame is kept except the ``num_frames`` chosen ones, so very long or very
  high-resolution clips cost time, not memory; clips longer than ``SEEK_MIN_SECONDS`` are sampled by seeking to
  the keyframe before each wanted frame instead of decoding everything in between.
- **Bad input never raises anything but** :class:`DecodeError` (with a short ``reason`` tag the DataModule counts);
  recoverable oddities (a truncated file, a single frame, a missing track) are decoded as well as possible and
  reported as ``notes`` on the result.

A media source is a file path or the file's bytes (as stored in ``bytes`` shards by ``xemogpt data pack``).
"""

from __future__ import annotations

import io
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np

from xemogpt.errors import XemoGPTError

Source = Union[str, Path, bytes, bytearray, memoryview]

# Notes (handled, the clip is kept) a decode can attach to its result; skip reasons are DecodeError.reason values.
NOTE_REASONS: dict[str, str] = {
    "no_audio": "the clip has no usable audio (kept without audio)",
    "no_video": "the clip has no video stream (kept as audio-only)",
    "no_frames": "the video stream holds no decodable frame (kept as audio-only)",
    "single_frame": "the video holds a single frame (repeated to num_frames)",
    "truncated": "the stream ends early or has corrupt packets (decoded what was readable)",
    "long_clip": "the clip is very long (frames sampled over all of it by seeking)",
    "high_resolution": "the frames are very large (decoded and scaled down frame by frame)",
    "odd_audio": "the audio has an unusual sample rate or more than two channels (resampled to mono at the "
                 "target rate)",
}
SKIP_REASONS: dict[str, str] = {
    "missing_media": "the media file does not exist",
    "empty_media": "the media file has zero bytes",
    "corrupt_media": "FFmpeg cannot open or decode the file",
    "no_media": "neither video frames nor audio could be decoded",
}

DECODER_VERSION = "3"  # part of every cache key: bump when decoded output changes
SEEK_MIN_SECONDS = 60.0  # longer clips are sampled by seeking (decoding every frame of a film is wasteful)
LONG_CLIP_SECONDS = 600.0  # noted as long_clip
HIGH_RES_PIXELS = 3840 * 2160  # noted as high_resolution (above 4K UHD)
# Sample rates and channel counts audio is normally recorded with; anything else is noted as odd_audio.
COMMON_SAMPLE_RATES = frozenset({8000, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000})
COMMON_CHANNELS = frozenset({1, 2})


class DecodeError(XemoGPTError, RuntimeError):
    """A media file could not be decoded; ``reason`` is a short machine-friendly tag (see ``SKIP_REASONS``)."""

    def __init__(self, path: str | Path, reason: str, detail: str = "") -> None:
        self.path, self.reason, self.detail = str(path), reason, detail
        super().__init__(f"{path}: {reason}{': ' + detail if detail else ''}")


@dataclass
class Decoded:
    """frames: (T, H, W, 3) uint8 ((T, 3, H, W) with ``channels_first``) or None; audio: (S,) float32 at
    ``sample_rate`` or None; fps/duration of the source video when known; notes: [(reason, detail)] for recoverable
    problems (see ``NOTE_REASONS``)."""

    frames: np.ndarray | None
    audio: np.ndarray | None
    sample_rate: int
    fps: float | None = None
    duration: float | None = None
    notes: list[tuple[str, str]] = field(default_factory=list)
    frame_indices: np.ndarray | None = None  # (T,) int64: which frames of the stream were taken


SAMPLINGS = ("centre", "linspace")
RESAMPLES = ("area", "bicubic")
AUDIO_RESAMPLERS = ("ffmpeg", "soxr")


def uniform_indices(n_frames: int, num: int) -> np.ndarray:
    """Indices of ``num`` frames spread uniformly over ``n_frames`` (segment centres; repeats when too few)."""
    if n_frames <= 0:
        raise ValueError("no frames")
    return np.minimum(((np.arange(num) + 0.5) * n_frames / num).astype(np.int64), n_frames - 1)


def frame_indices(n_frames: int, num: int, sampling: str = "centre") -> np.ndarray:
    """Indices of the ``num`` frames a clip of ``n_frames`` frames gives (int64, repeats when too few).

    ``centre``: the centre of each of ``num`` equal segments (:func:`uniform_indices`). ``linspace``: the released
    XEmoGPT's ``numpy.linspace(0, n_frames - 1, num).astype(int)``, first and last frame included.
    """
    if sampling == "linspace":
        if n_frames <= 0:
            raise ValueError("no frames")
        return np.linspace(0, n_frames - 1, num=num).astype(np.int64)
    if sampling != "centre":
        raise ValueError(f"frame sampling must be one of {SAMPLINGS}, got {sampling!r}")
    return uniform_indices(n_frames, num)


# --- opening ------------------------------------------------------------------------------------------------------
def source_name(src: Source, name: str | None = None) -> str:
    """A printable name for a media source (its path, or ``name``/``<bytes>`` for in-memory media)."""
    if name:
        return name
    return str(src) if isinstance(src, (str, Path)) else f"<{len(src)} bytes>"


def _open(src: Source, name: str | None = None):
    """Open a container from a path or bytes; a missing, empty or unreadable file raises :class:`DecodeError`."""
    import av

    label = source_name(src, name)
    if isinstance(src, (str, Path)):
        path = Path(src)
        if not path.exists():
            raise DecodeError(label, "missing_media", "file does not exist")
        if path.stat().st_size == 0:
            raise DecodeError(label, "empty_media", "zero-byte file")
        target: Any = str(path)
    else:
        if len(src) == 0:
            raise DecodeError(label, "empty_media", "zero-byte media")
        target = io.BytesIO(src)
    try:
        return av.open(target, metadata_errors="ignore")
    except Exception as e:  # PyAV raises several error types for corrupt containers
        raise DecodeError(label, "corrupt_media", f"cannot open container ({type(e).__name__}: {e})") from e


_local = threading.local()


def _reformatter():
    """One swscale context per thread and process, reused across frames and clips (creating one costs more than a
    conversion). A forked loader worker builds its own: the parent's may hold state of threads that do not exist in
    the child."""
    r = getattr(_local, "reformatter", None)
    if r is None or getattr(_local, "pid", None) != os.getpid():
        from av.video.reformatter import VideoReformatter

        r = _local.reformatter = VideoReformatter()
        _local.pid = os.getpid()
    return r


def _target_size(width: int, height: int, size: int | tuple[int, int], crop: bool) -> tuple[int, int, int, int]:
    """-> (scaled w, scaled h, out w, out h). ``crop``: scale the short side to ``size`` then centre-crop a square."""
    if crop:
        side = size if isinstance(size, int) else min(size)
        scale = side / max(1, min(width, height))
        sw, sh = max(side, round(width * scale)), max(side, round(height * scale))
        return sw, sh, side, side
    w, h = (size, size) if isinstance(size, int) else size
    return w, h, w, h


def processor_resize(rgb: np.ndarray, size: int | tuple[int, int], crop: bool) -> np.ndarray:
    """RGB (H, W, 3) uint8 -> (3, h, w) uint8 exactly as Hugging Face's CLIP image processors (torchvision on uint8
    images) resize: bicubic with antialiasing, computed by torch's native uint8 kernel on the CPU (as torchvision does
    there; elsewhere in float, clamped to [0, 255] and rounded); ``crop``: the short side to
    ``size`` (the long side ``int(size * long / short)``) then a centre crop of ``size`` x ``size`` (the top-left
    corner at ``round((H - h) / 2)``), else squashed to ``size`` ((w, h) for a pair)."""
    import torch
    import torch.nn.functional as F

    h, w = rgb.shape[:2]
    if crop:
        side = size if isinstance(size, int) else min(size)
        short, long = (h, w) if h <= w else (w, h)
        new_long = int(side * long / short)
        nh, nw = (side, new_long) if h <= w else (new_long, side)
        oh = ow = side
    else:
        nw, nh = (size, size) if isinstance(size, int) else size
        oh, ow = nh, nw
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None]
    if (nh, nw) != (h, w):
        x = F.interpolate(x, size=(nh, nw), mode="bicubic", align_corners=False, antialias=True)
    top, left = int(round((nh - oh) / 2.0)), int(round((nw - ow) / 2.0))
    return x[0, :, top:top + oh, left:left + ow].numpy()


def convert_frame(frame, size: int | tuple[int, int], crop: bool = False, channels_first: bool = False,
                  out: np.ndarray | None = None, resample: str = "area") -> np.ndarray:
    """A decoded ``av.VideoFrame`` -> RGB uint8 at ``size`` (squashed, or short side + centre crop), (H, W, 3) or
    with ``channels_first`` (3, H, W) (the layout models take: no transpose later); written into ``out`` if given.

    ``resample``: ``area`` (swscale's area filter, fast) or ``bicubic`` (converted to RGB at full size, then
    :func:`processor_resize`: what the released XEmoGPT's CLIP image processor computes from the frames it decodes).
    """
    from av.video.reformatter import Interpolation

    if resample == "bicubic":
        chw = processor_resize(frame.to_ndarray(format="rgb24"), size, crop)
        res = chw if channels_first else chw.transpose(1, 2, 0)
        if out is None:
            return np.ascontiguousarray(res)
        out[...] = res
        return out
    if resample != "area":
        raise ValueError(f"frame resample must be one of {RESAMPLES}, got {resample!r}")
    sw, sh, ow, oh = _target_size(frame.width, frame.height, size, crop)
    # AREA: correct (anti-aliased) downscaling and the fastest good-quality swscale filter. swscale's YUV -> BGR path
    # is SIMD-optimised where YUV -> RGB is not (1.5-2x faster): convert to BGR, then swap the channels (and crop,
    # and lay out planes) in the one copy into the output. threads=1: loaders parallelise over clips; swscale's own
    # thread pool would only add overhead (and is not fork-safe).
    bgr = _reformatter().reformat(frame, width=sw, height=sh, format="bgr24", interpolation=Interpolation.AREA,
                                  threads=1).to_ndarray()
    x0, y0 = (sw - ow) // 2, (sh - oh) // 2
    if (sw, sh) != (ow, oh):
        bgr = bgr[y0:y0 + oh, x0:x0 + ow]
    if channels_first:
        rgb = np.empty((3, oh, ow), np.uint8) if out is None else out
        rgb[0], rgb[1], rgb[2] = bgr[..., 2], bgr[..., 1], bgr[..., 0]
    else:
        rgb = np.empty((oh, ow, 3), np.uint8) if out is None else out
        rgb[..., 0], rgb[..., 1], rgb[..., 2] = bgr[..., 2], bgr[..., 1], bgr[..., 0]
    return rgb


# --- the decoder ----------------------------------------------------------------------------------------------------
class _Picker:
    """Keeps the frames a uniform plan over ``n`` frames wants, converted, while decoded frames stream past.

    A frame's index comes from its timestamp (``pts``), so packets of unwanted frames can be decoded with
    ``skip_frame=NONREF``: frames no other frame references are then not decoded at all (about half the frames of
    an H.264 stream with B-frames), while every wanted frame and every reference frame is decoded exactly as in a
    full decode. Without usable timestamps frames are counted instead and nothing is skipped. Frames are converted
    straight into one (T, ...) output array.
    """

    def __init__(self, n: int, num: int, size: int | tuple[int, int], crop: bool, stream=None,
                 channels_first: bool = False, resample: str = "area", sampling: str = "centre") -> None:
        self.channels_first, self.resample = channels_first, resample
        self.wanted = frame_indices(n, num, sampling).tolist()
        self.wanted_set = set(self.wanted)
        self.num = num
        self.out: np.ndarray | None = None  # (T, 3, H, W) or (T, H, W, 3), allocated at the first conversion
        self.size, self.crop = size, crop
        self.next = 0  # first unfilled slot
        self.seen = 0  # frames decoded
        self.index = -1  # index of the last decoded frame
        self.last = None  # the last decoded frame (converted only if a slot stays empty)
        self.scale = None  # seconds-per-tick x fps: pts -> frame index
        self.start = 0
        if stream is not None and stream.average_rate and stream.time_base:
            self.scale = float(stream.time_base) * float(stream.average_rate)
            self.start = stream.start_time or 0

    @property
    def done(self) -> bool:
        return self.next >= self.num

    @property
    def needed(self) -> int:
        """Frames a straight decode must reach for the plan to complete."""
        return self.wanted[-1] + 1

    def wants(self, packet) -> bool:
        """Whether ``packet`` must be decoded in full (it shows a wanted frame, or its time is unknown)."""
        pts = packet.pts
        if pts is None or self.scale is None or not packet.size:
            return True
        return round((pts - self.start) * self.scale) in self.wanted_set

    def _convert(self, frame, k: int) -> None:
        if self.out is None:
            _, _, ow, oh = _target_size(frame.width, frame.height, self.size, self.crop)
            shape = (self.num, 3, oh, ow) if self.channels_first else (self.num, oh, ow, 3)
            self.out = np.empty(shape, np.uint8)
        convert_frame(frame, self.size, self.crop, self.channels_first, out=self.out[k], resample=self.resample)

    def offer(self, frame) -> None:
        pts = frame.pts
        idx = None if pts is None or self.scale is None else round((pts - self.start) * self.scale)
        if idx is None or idx <= self.index:
            idx = self.index + 1
        self.index, self.last = idx, frame
        self.seen += 1
        first = -1
        while self.next < self.num and self.wanted[self.next] <= idx:
            if first < 0:
                self._convert(frame, self.next)
                first = self.next
            else:
                self.out[self.next] = self.out[first]  # a frame wanted twice (clip shorter than the plan)
            self.next += 1

    def missing(self) -> int:
        return self.num - self.next

    def frames(self) -> np.ndarray:
        """(T, H, W, 3) or (T, 3, H, W) uint8; slots the stream never reached repeat the last decoded frame."""
        if self.next < self.num:
            first = self.next
            self._convert(self.last, first)
            for k in range(first + 1, self.num):
                self.out[k] = self.out[first]
            self.next = self.num
        return self.out


# Sample formats the audio path reads directly when the stream is already mono at the target rate (the resampler
# costs more per frame than the copy); anything else goes through FFmpeg's resampler.
_DIRECT_FORMATS = {"flt": ("<f4", 1.0), "fltp": ("<f4", 1.0), "s16": ("<i2", 1 / 32768.0),
                   "s16p": ("<i2", 1 / 32768.0), "dbl": ("<f8", 1.0), "dblp": ("<f8", 1.0),
                   "s32": ("<i4", 1 / 2147483648.0), "s32p": ("<i4", 1 / 2147483648.0)}


class _AudioSink:
    """Mono float32 at ``rate`` from any input rate and channel layout, up to ``max_seconds``.

    Channels are averaged (FFmpeg's own downmix sums the channels of e.g. a 5.1 track and would change loudness).
    ``resampler``: ``ffmpeg`` (each channel through FFmpeg's resampler, then averaged) or ``soxr`` (what the released
    XEmoGPT's ``librosa.load(sr=16000, mono=True)`` computes: channels averaged at the source rate, then resampled
    by soxr at high quality to ``ceil(n * rate / source rate)`` samples; the clip is read one second past
    ``max_seconds`` so the cut does not see the end of the resampler's input).
    """

    def __init__(self, rate: int, max_seconds: float | None, resampler: str = "ffmpeg") -> None:
        if resampler not in AUDIO_RESAMPLERS:
            raise ValueError(f"audio resampler must be one of {AUDIO_RESAMPLERS}, got {resampler!r}")
        self.rate = rate
        self.mode = resampler
        self.max_seconds = max_seconds
        self.resampler = None
        self.direct: tuple | bool | None = None  # (dtype, scale, format) when frames can be read as they are
        self.limit = None if max_seconds is None else int(max_seconds * rate)
        self.chunks: list[np.ndarray] = []
        self.total = 0
        self.source: tuple[int, int] | None = None  # (sample rate, channels) of the first decoded frame

    @property
    def done(self) -> bool:
        return self.limit is not None and self.total >= self.limit

    def _add(self, a: np.ndarray) -> None:
        self.chunks.append(a)
        self.total += a.shape[0]

    def offer(self, frame) -> None:
        if self.direct is None:  # decided once per stream: reading a frame's layout builds Python objects
            fmt = frame.format.name
            self.source = (int(frame.sample_rate), int(frame.layout.nb_channels))
            ok = fmt in _DIRECT_FORMATS and frame.sample_rate == self.rate and frame.layout.nb_channels == 1
            self.direct = (np.dtype(_DIRECT_FORMATS[fmt][0]), _DIRECT_FORMATS[fmt][1], fmt) if ok else False
        if self.direct and frame.format.name == self.direct[2]:
            dtype, scale, _ = self.direct
            a = np.frombuffer(frame.planes[0], dtype=dtype, count=frame.samples)  # mono: one plane, no copy
            self._add(a.astype(np.float32) * np.float32(scale) if dtype != np.float32 else a.copy())
            return
        if self.resampler is None:
            import av

            # Resample each channel (planar float, same layout: no rematrixing), then average them. soxr: only the
            # sample format is converted here (at the source rate); the rate changes in result().
            rate = self.rate if self.mode == "ffmpeg" else int(frame.sample_rate)
            if self.mode == "soxr" and self.max_seconds is not None:
                self.limit = int((self.max_seconds + 1.0) * rate)
            self.resampler = av.AudioResampler(format="fltp", layout=frame.layout.name, rate=rate)
        for rf in self.resampler.resample(frame):
            self._add(self._mono(rf))

    @staticmethod
    def _mono(rf) -> np.ndarray:
        a = rf.to_ndarray()  # (C, n) planar
        return a[0] if a.shape[0] == 1 else a.mean(0, dtype=np.float32)

    def odd(self) -> str | None:
        """A description of the input's rate/channels when they are unusual (see ``COMMON_SAMPLE_RATES``)."""
        if self.source is None:
            return None
        rate, channels = self.source
        if rate in COMMON_SAMPLE_RATES and channels in COMMON_CHANNELS:
            return None
        return f"{rate} Hz, {channels} channel(s)"

    def result(self) -> np.ndarray | None:
        if self.resampler is not None and not self.done:
            try:
                for rf in self.resampler.resample(None):  # flush the resampler's delay line
                    self._add(self._mono(rf))
            except Exception:  # the resampler saw no frame
                pass
        if not self.chunks:
            return None
        audio = np.concatenate(self.chunks).astype(np.float32, copy=False)
        if self.mode == "soxr" and self.resampler is not None and self.source[0] != self.rate:
            import soxr

            n = int(np.ceil(audio.shape[0] * float(self.rate) / self.source[0]))
            audio = soxr.resample(audio, self.source[0], self.rate, quality="soxr_hq").astype(np.float32, copy=False)
            audio = np.pad(audio[:n], (0, max(0, n - audio.shape[0])))  # librosa's fix_length
        if self.max_seconds is not None:
            audio = audio[: int(self.max_seconds * self.rate)]
        if audio.size == 0:
            return None
        if not np.isfinite(audio).all():
            audio = np.nan_to_num(audio, nan=0.0, posinf=1.0, neginf=-1.0)
        return audio


def _scan(container, vs, aus, picker: _Picker | None, sink: _AudioSink | None) -> int:
    """Demux ``vs``/``aus`` once, feeding decoded frames to ``picker``/``sink`` until both are satisfied.

    Returns the number of corrupt packets skipped (a corrupt tail ends the scan: what was decoded is kept). This loop
    runs for every packet of every clip, so it keeps to local names.
    """
    streams = ([vs] if picker is not None else []) + ([aus] if sink is not None else [])
    vi = vs.index if picker is not None else -1
    vdone = picker is None or picker.done
    adone = sink is None or sink.done
    if picker is not None:
        cc, wants, voffer, num = vs.codec_context, picker.wants, picker.offer, picker.num
    if sink is not None:
        aoffer = sink.offer
    skipping = False
    errors = 0
    try:
        for packet in container.demux(*streams):
            if packet.stream_index == vi:
                if vdone:
                    if adone:
                        break
                    continue
                skip = not wants(packet)
                if skip is not skipping:  # only frames nothing references are skipped; wanted ones decode in full
                    cc.skip_frame = "NONREF" if skip else "DEFAULT"
                    skipping = skip
                try:
                    decoded = packet.decode()
                except Exception:  # a corrupt packet: skip it, keep decoding
                    errors += 1
                    continue
                for f in decoded:
                    voffer(f)
                    if picker.next >= num:
                        vdone = True
                        break
            else:
                if adone:
                    if vdone:
                        break
                    continue
                try:
                    decoded = packet.decode()
                except Exception:
                    errors += 1
                    continue
                for f in decoded:
                    aoffer(f)
                adone = sink.done
    except Exception:  # the demuxer gave up (truncated container): keep what was decoded
        errors += 1
    return errors


def _seek_sample(container, vs, n: int, fps: float, num: int, size, crop: bool,
                 channels_first: bool = False, resample: str = "area",
                 sampling: str = "centre") -> tuple[list[np.ndarray], int]:
    """Sample ``num`` frames of a long clip by seeking to the keyframe before each wanted frame.

    Returns (frames, corrupt packets). Targets closer than a second ahead are reached by decoding forward.
    """
    wanted = frame_indices(n, num, sampling)
    tb = float(vs.time_base)
    start = float(vs.start_time or 0) * tb
    out: list[np.ndarray] = []
    pos: float | None = None  # presentation time of the last decoded frame (seconds from the stream start)
    last = None
    errors = 0
    for k, idx in enumerate(wanted):
        if k and idx == wanted[k - 1]:
            out.append(out[-1])
            continue
        t = float(idx) / fps
        if pos is None or t < pos or t - pos > 1.0:
            container.seek(int((start + t) / tb), stream=vs, backward=True, any_frame=False)
        got = None
        try:
            for frame in container.decode(vs):
                last = frame
                ft = frame.time
                pos = (ft - start) if ft is not None else t
                if pos >= t - 0.5 / fps:
                    got = frame
                    break
        except Exception:
            errors += 1
        got = got if got is not None else last
        if got is None:
            break
        out.append(convert_frame(got, size, crop, channels_first, resample=resample))
    return out, errors


def _count_frames(src: Source, name: str | None) -> int:
    """Video frames by demuxing without decoding (for containers whose header has no frame count)."""
    container = _open(src, name)
    try:
        stream = container.streams.video[0]
        return sum(1 for p in container.demux(stream) if p.size)
    except Exception:
        return 0
    finally:
        container.close()


def _video_facts(container, stream) -> tuple[float | None, float | None, int]:
    """(fps, duration in seconds, frame count from the header or 0)."""
    fps = float(stream.average_rate) if stream.average_rate else None
    duration = None
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / 1_000_000
    # No estimate from duration x fps when the header has no count: that is often wrong (variable frame rate), so
    # the caller counts packets instead.
    return fps, duration, int(stream.frames or 0)


def _audio_pass(src: Source, name: str | None, rate: int, max_seconds: float | None,
                notes: list[tuple[str, str]], resampler: str = "ffmpeg") -> np.ndarray | None:
    """Audio of ``src`` (None with a ``no_audio`` note when it has no decodable audio)."""
    label = source_name(src, name)
    container = _open(src, name)
    try:
        if not container.streams.audio:
            notes.append(("no_audio", f"{label}: no audio stream"))
            return None
        sink = _AudioSink(rate, max_seconds, resampler)
        errors = _scan(container, None, container.streams.audio[0], None, sink)
    finally:
        container.close()
    wav = sink.result()
    if wav is None:
        if errors:
            raise DecodeError(label, "corrupt_media", "the audio stream cannot be decoded")
        notes.append(("no_audio", f"{label}: the audio stream holds no samples"))
    else:
        _note_odd_audio(sink, label, notes)
        if errors:
            notes.append(("truncated", f"{label}: {errors} corrupt audio packet(s) skipped"))
    return wav


def _note_odd_audio(sink: _AudioSink, label: str, notes: list[tuple[str, str]]) -> None:
    odd = sink.odd()
    if odd is not None:
        notes.append(("odd_audio", f"{label}: {odd}, converted to {sink.rate} Hz mono"))


def _video_pass(src: Source, name: str | None, num_frames: int, size, crop: bool, video_seconds: float | None,
                sink: _AudioSink | None, notes: list[tuple[str, str]], *, long_seconds: float, high_pixels: int,
                seek_seconds: float, channels_first: bool = False, resample: str = "area", sampling: str = "centre"
                ) -> tuple[np.ndarray | None, float | None, float | None, bool, np.ndarray | None]:
    """Frames of ``src`` (and its audio into ``sink`` in the same pass when possible).

    Returns (frames or None, fps, duration, whether ``sink`` was filled, the frame indices taken).
    """
    label = source_name(src, name)
    container = _open(src, name)
    try:
        if not container.streams.video:
            notes.append(("no_video", f"{label}: no video stream"))
            return None, None, None, False, None
        vs = container.streams.video[0]
        fps, duration, n = _video_facts(container, vs)
        w, h = vs.codec_context.width, vs.codec_context.height
        if w * h > high_pixels:
            notes.append(("high_resolution", f"{label}: {w}x{h}"))
        if duration is not None and duration > long_seconds:
            notes.append(("long_clip", f"{label}: {duration:.0f} s"))
        if not n:
            n = _count_frames(src, name)
        if video_seconds is not None and fps:
            n = min(n, max(1, int(video_seconds * fps)))
        if n <= 0:
            notes.append(("no_frames", f"{label}: the video stream holds no frame"))
            return None, fps, duration, False, None
        if n == 1:
            notes.append(("single_frame", f"{label}: one frame, repeated"))
        if fps and duration is not None and duration > seek_seconds:
            frames, errors = _seek_sample(container, vs, n, fps, num_frames, size, crop, channels_first, resample,
                                          sampling)
            if errors:
                notes.append(("truncated", f"{label}: {errors} corrupt packet(s) skipped"))
            if not frames:
                notes.append(("no_frames", f"{label}: no frame could be decoded"))
                return None, fps, duration, False, None
            while len(frames) < num_frames:
                frames.append(frames[-1])
            return np.stack(frames), fps, duration, False, frame_indices(n, num_frames, sampling)
        aus = container.streams.audio[0] if sink is not None and container.streams.audio else None
        picker = _Picker(n, num_frames, size, crop, vs, channels_first, resample, sampling)
        errors = _scan(container, vs, aus, picker, sink if aus is not None else None)
    finally:
        container.close()
    filled = aus is not None
    if picker.seen == 0:
        notes.append(("no_frames", f"{label}: the video stream holds no decodable frame"))
        return None, fps, duration, filled, None
    reached = picker.index + 1  # frames up to the last decoded one
    if not picker.done and picker.needed - reached > max(2, picker.needed // 50):
        # Far fewer frames than the header promised (a truncated file): plan again over the frames that exist.
        notes.append(("truncated", f"{label}: {reached} of {n} frames decodable"))
        if reached == 1 and n > 1:
            notes.append(("single_frame", f"{label}: one decodable frame, repeated"))
        container = _open(src, name)
        try:
            again = _Picker(reached, num_frames, size, crop, container.streams.video[0], channels_first, resample,
                            sampling)
            _scan(container, container.streams.video[0], None, again, None)
        finally:
            container.close()
        return again.frames(), fps, duration, filled, np.asarray(again.wanted, dtype=np.int64)
    if errors:
        notes.append(("truncated", f"{label}: {errors} corrupt packet(s) skipped"))
    return picker.frames(), fps, duration, filled, np.asarray(picker.wanted, dtype=np.int64)


def decode_clip(video: Source | None, audio: Source | None = None, *, num_frames: int = 16,
                size: int | tuple[int, int] = 64, sample_rate: int = 16000, max_seconds: float | None = 12.0,
                need_video: bool = False, need_audio: bool = False, crop: bool = False,
                video_seconds: float | None = None, name: str | None = None, with_audio: bool = True,
                channels_first: bool = False, long_seconds: float = LONG_CLIP_SECONDS,
                high_pixels: int = HIGH_RES_PIXELS, seek_seconds: float = SEEK_MIN_SECONDS,
                resample: str = "area", sampling: str = "centre", audio_resampler: str = "ffmpeg") -> Decoded:
    """Decode one clip: ``num_frames`` frames sampled uniformly over the video (or its first ``video_seconds``) at
    ``size``, and mono audio at ``sample_rate`` cut to ``max_seconds``, from ``audio`` when given, else from the
    video's own track (in the same pass over the file); ``with_audio=False`` decodes frames only.
    ``channels_first`` returns frames as (T, 3, H, W) (what the DataModule and models use) instead of (T, H, W, 3).
    ``resample`` (``area``/``bicubic``) and ``sampling`` (``centre``/``linspace``): see :func:`convert_frame` and
    :func:`frame_indices`; ``audio_resampler`` (``ffmpeg``/``soxr``): see :class:`_AudioSink`.

    A missing or undecodable modality is returned as None with a note (see ``NOTE_REASONS``) unless
    ``need_video``/``need_audio`` makes it a :class:`DecodeError`; a clip with neither raises ``no_media``.
    ``long_seconds``/``high_pixels`` set when a clip is noted as long or high-resolution, ``seek_seconds`` when
    frames are sampled by seeking instead of decoding straight through.
    """
    notes: list[tuple[str, str]] = []
    frames = wav = indices = None
    fps = duration = None
    filled = False
    sink = (_AudioSink(sample_rate, max_seconds, audio_resampler) if video is not None and audio is None and with_audio
            else None)
    if video is not None:
        frames, fps, duration, filled, indices = _video_pass(
            video, name, num_frames, size, crop, video_seconds, sink, notes, long_seconds=long_seconds,
            high_pixels=high_pixels, seek_seconds=seek_seconds, channels_first=channels_first, resample=resample,
            sampling=sampling)
        if filled:
            wav = sink.result()
            if wav is None:
                notes.append(("no_audio", f"{source_name(video, name)}: the audio stream holds no decodable sample"))
            else:
                _note_odd_audio(sink, source_name(video, name), notes)
        elif sink is not None:  # seek mode, no video stream (an audio file given as the video), or no audio stream
            wav = _audio_pass(video, name, sample_rate, max_seconds, notes, audio_resampler)
    if audio is not None and with_audio:
        wav = _audio_pass(audio, None if video is not None else name, sample_rate, max_seconds, notes,
                          audio_resampler)
    label = source_name(video if video is not None else audio, name) if (video is not None or audio is not None) \
        else "?"
    if frames is None and need_video:
        reason = next((r for r, _ in notes if r in ("no_video", "no_frames")), "no_video")
        raise DecodeError(label, reason, NOTE_REASONS[reason])
    if wav is None and need_audio:
        raise DecodeError(label, "no_audio", NOTE_REASONS["no_audio"])
    if frames is None and wav is None:
        raise DecodeError(label, "no_media", "neither video frames nor audio could be decoded")
    return Decoded(frames, wav, sample_rate, fps, duration, notes, indices)


def decode_video(path: Source, num_frames: int = 16, size: int | tuple[int, int] = 64,
                 max_seconds: float | None = None, *, crop: bool = False, name: str | None = None,
                 resample: str = "area", sampling: str = "centre") -> tuple[np.ndarray, float | None, float | None]:
    """``num_frames`` uniformly sampled RGB frames at ``size`` -> ((T, H, W, 3) uint8, fps, duration in seconds).

    ``max_seconds`` limits sampling to the start of the clip (None: the whole clip, as in the paper).
    """
    notes: list[tuple[str, str]] = []
    frames, fps, duration, _, _ = _video_pass(path, name, num_frames, size, crop, max_seconds, None, notes,
                                           long_seconds=LONG_CLIP_SECONDS, high_pixels=HIGH_RES_PIXELS,
                                           seek_seconds=SEEK_MIN_SECONDS, resample=resample, sampling=sampling)
    if frames is None:
        reason = next((r for r, _ in notes if r in ("no_video", "no_frames")), "no_frames")
        raise DecodeError(source_name(path, name), reason, NOTE_REASONS[reason])
    return frames, fps, duration


def decode_audio(path: Source, sample_rate: int = 16000, max_seconds: float | None = 12.0, *,
                 name: str | None = None, resampler: str = "ffmpeg") -> np.ndarray:
    """The first audio stream as mono float32 at ``sample_rate``, cut to ``max_seconds`` -> (S,)."""
    notes: list[tuple[str, str]] = []
    wav = _audio_pass(path, name, sample_rate, max_seconds, notes, resampler)
    if wav is None:
        raise DecodeError(source_name(path, name), "no_audio", NOTE_REASONS["no_audio"])
    return wav


def has_audio(path: Source) -> bool:
    """Whether the media has an audio stream (reads the header only)."""
    container = _open(path)
    try:
        return bool(container.streams.audio)
    finally:
        container.close()


def has_video(path: Source) -> bool:
    """Whether the media has a video stream (reads the header only)."""
    container = _open(path)
    try:
        return bool(container.streams.video)
    finally:
        container.close()
