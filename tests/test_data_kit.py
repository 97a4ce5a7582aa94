"""Media builders shared by the data-layer tests (no tests here): small real clips of every awkward kind.

Frames of :func:`write_clip` encode their index in the colour (red = 16 * (i % 16), green = 16 * (i // 16 % 16)), so
a test can tell exactly which source frame a decoder picked (modulo 256).
"""

from __future__ import annotations

import json
import os
import wave
from pathlib import Path

import lightning as L
import numpy as np
import torch


def index_frame(i: int, w: int, h: int) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = 16 * (i % 16)
    img[..., 1] = 16 * ((i // 16) % 16)  # indices repeat after 256 frames
    img[..., 2] = 128
    return img


def frame_index(frame: np.ndarray) -> int:
    """The source index encoded by :func:`index_frame` (robust to compression: colours are 16 levels apart)."""
    r = float(np.median(frame[..., 0]))
    g = float(np.median(frame[..., 1]))
    return int(round(r / 16)) + 16 * int(round(g / 16))


def tone(seconds: float, rate: int, freq: float = 440.0, channels: int = 1) -> np.ndarray:
    """(channels, S) float32 sine."""
    t = np.arange(int(seconds * rate)) / rate
    return np.repeat((0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)[None], channels, 0)


def write_clip(path: Path, *, frames: int = 24, size: tuple[int, int] = (32, 32), fps: int = 12,
               audio_seconds: float | None = 1.0, rate: int = 16000, gop: int | None = None,
               faststart: bool = False, container: str | None = None, codec: str = "libx264") -> Path:
    """An H.264 (+ AAC) clip whose frame ``i`` shows :func:`index_frame`; ``frames=0`` writes an empty video track."""
    import av

    w, h = size
    # veryfast keeps B-frames (exercises frame skipping); crf 4 keeps the index colours apart
    opts = {"preset": "veryfast", "threads": "1", "crf": "4"}
    if gop:
        opts["x264-params"] = f"keyint={gop}:min-keyint={gop}:scenecut=0"
    copts = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", format=container, options=copts) as c:
        v = c.add_stream(codec, rate=fps)
        v.width, v.height = w, h
        v.pix_fmt = "yuv420p"
        if codec == "libx264":
            v.options = opts
        a = None
        if audio_seconds:
            a = c.add_stream("aac", rate=rate, layout="mono")
        for i in range(frames):
            f = av.VideoFrame.from_ndarray(index_frame(i, w, h), format="rgb24")
            f.pts = i
            for pkt in v.encode(f):
                c.mux(pkt)
        for pkt in v.encode():
            c.mux(pkt)
        if a is not None:
            af = av.AudioFrame.from_ndarray(tone(audio_seconds, rate), format="fltp", layout="mono")
            af.sample_rate = rate
            af.pts = 0
            for pkt in a.encode(af):
                c.mux(pkt)
            for pkt in a.encode():
                c.mux(pkt)
    return path


def write_wav(path: Path, *, seconds: float = 0.5, rate: int = 16000, channels: int = 1,
              freq: float = 440.0) -> Path:
    pcm = (tone(seconds, rate, freq, channels).T * 32767).astype("<i2")  # interleaved (S, C)
    with wave.open(str(path), "wb") as wf:
        wf.setnchannels(channels)
        wf.setsampwidth(2)
        wf.setframerate(rate)
        wf.writeframes(pcm.tobytes())
    return path


def dominant_frequency(x: np.ndarray, rate: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[int(np.argmax(spec))])


def record(sid: str, video: str | None, audio: str | None = None, split: str = "train", **extra) -> dict:
    """A manifest record with cues and a description (what the collator needs)."""
    d = {"id": sid, "video": video, "audio": audio, "subtitle": f"words of {sid}", "emotion": "happy",
         "cues": {"visual": [f"a smile in {sid}"], "auditory": ["a high voice"], "emotional": ["happy"]},
         "description": f"description of {sid}", "split": split}
    d.update(extra)
    return d


def write_manifest_lines(root: Path, lines: list) -> Path:
    """Write records (dicts), raw strings or raw bytes as manifest lines (bad lines on purpose)."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "manifest.jsonl", "wb") as f:
        for x in lines:
            if isinstance(x, dict):
                x = json.dumps(x)  # ASCII escapes: a lone surrogate stays a (valid JSON) escape
            f.write((x.encode("utf-8") if isinstance(x, str) else x) + b"\n")
    return root / "manifest.jsonl"


def link_synth(synth_root: Path, root: Path, n: int) -> list[dict]:
    """Symlink the first ``n`` generated clips into ``root/clips`` and return their manifest records."""
    from xemogpt.data.schema import read_manifest

    (root / "clips").mkdir(parents=True, exist_ok=True)
    out = []
    for s in read_manifest(synth_root)[:n]:
        dst = root / s.video
        if not dst.exists():
            os.symlink((synth_root / s.video).resolve(), dst)
        out.append(s.to_dict())
    return out


def bad_media_dataset(root: Path, synth_root: Path) -> dict:
    """A dataset with 6 good clips and one sample of every bad-input kind.

    Returns {"kept": ids a loader must yield, "skipped": {reason: count}, "handled": {reason: count}}.
    """
    clips = root / "clips"
    good = link_synth(synth_root, root, 6)
    for r, split in zip(good, ["train", "train", "train", "train", "val", "test"]):
        r["split"] = split
    write_clip(clips / "silent.mp4", audio_seconds=None)  # video only
    write_wav(clips / "voice.wav", seconds=0.5, rate=11025, channels=6)  # audio only, odd rate and 6 channels
    write_clip(clips / "noframes.mkv", frames=0, container="matroska")  # a video track without frames + audio
    write_clip(clips / "single.mp4", frames=1)  # one frame
    write_clip(clips / "cut_fast.mp4", frames=48, faststart=True)
    data = (clips / "cut_fast.mp4").read_bytes()
    (clips / "cut_fast.mp4").write_bytes(data[: int(len(data) * 0.6)])  # truncated, header intact
    write_clip(clips / "cut_tail.mp4", frames=48)
    data = (clips / "cut_tail.mp4").read_bytes()
    (clips / "cut_tail.mp4").write_bytes(data[: len(data) // 2])  # truncated before the header (moov at the end)
    (clips / "zero.mp4").write_bytes(b"")
    (clips / "garbage.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2048))
    (root.parent / "outside.mp4").write_bytes((clips / "silent.mp4").read_bytes())
    lines: list = [*good,
                   record("silent", "clips/silent.mp4"),
                   record("voice", None, "clips/voice.wav"),
                   record("voice_as_video", "clips/voice.wav"),
                   record("noframes", "clips/noframes.mkv"),
                   record("single", "clips/single.mp4"),
                   record("cut_fast", "clips/cut_fast.mp4"),
                   record("cut_tail", "clips/cut_tail.mp4"),
                   record("zero", "clips/zero.mp4"),
                   record("garbage", "clips/garbage.mp4"),
                   record("escape", "../outside.mp4"),
                   record("absent", "clips/absent.mp4"),
                   record("nomedia", None),
                   {k: v for k, v in record("nosub", "clips/silent.mp4").items() if k != "subtitle"},
                   json.dumps(record("latin1", "clips/silent.mp4", subtitle="caf\u00e9"),
                              ensure_ascii=False).encode("latin-1"),  # not UTF-8
                   record("surrogate", "clips/silent.mp4", subtitle="bad \udc80 text"),
                   {k: v for k, v in record("x", "clips/silent.mp4").items() if k != "id"},
                   record(good[0]["id"], good[0]["video"], subtitle="a duplicate of the first sample"),
                   "{not json",
                   record("badsplit", "clips/silent.mp4", split="holdout")]
    write_manifest_lines(root, lines)
    kept = [r["id"] for r in good] + ["silent", "voice", "voice_as_video", "noframes", "single", "cut_fast",
                                      "nosub", "latin1", "surrogate"]
    skipped = {"corrupt_media": 2, "empty_media": 1, "escaping_path": 1, "missing_media": 1, "no_media": 1,
               "missing_field": 1, "duplicate_id": 1, "bad_json": 1, "bad_value": 1}
    handled = {"no_audio": 4, "no_video": 1, "no_frames": 1, "single_frame": 1, "truncated": 1,
               "missing_subtitle": 1, "bad_encoding": 2, "odd_audio": 2}
    return {"kept": kept, "skipped": skipped, "handled": handled}


class Recorder(L.LightningModule):
    """Records the ids of every training batch (a model that needs no media)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.seen: list[str] = []

    def training_step(self, batch, batch_idx):
        self.seen += batch["ids"]
        return (self.w - 1).pow(2).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def trainer(**kw) -> L.Trainer:
    opts = dict(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                enable_model_summary=False, num_sanity_val_steps=0)
    opts.update(kw)
    return L.Trainer(**opts)
