"""Explain one clip: decode any media file, generate the description, split it into cues, find what was attended.

Works on any file FFmpeg reads: a video with or without an audio track (any size, any frame rate, even a single
frame), an audio-only file, or a video plus a separate audio file. Frames are sampled and sized exactly as the
model was trained (the run's recipe says how many frames, the encoder says at which size).

Python::

    from xemogpt.workflows.explain import explain_clip
    ex = explain_clip("clip.mp4", checkpoint="runs/xemogpt-tiny", subtitle="I can't believe it.")
    print(ex.emotion, ex.cues["visual"], ex.attention.video)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xemogpt.workflows.attention import ModalityAttention, modality_attention

DEFAULT_CHECKPOINT = "runs/xemogpt-tiny"
DISPLAY_HEIGHT = 144  # frames shown in the HTML page (aspect ratio kept)


@dataclass
class Explanation:
    """Everything ``xemogpt explain`` prints, writes as JSON or draws into the HTML page.

    frames: (T, h, w, 3) uint8 display frames (None for audio-only input); frame_times: the time in seconds of each
    sampled frame (None when the file gives no duration); waveform: (S,) float32 mono at ``sample_rate`` as the
    model heard it (None without audio); audio_spans: [start, end] seconds of each audio token.
    """

    clip: str
    audio_file: str | None
    subtitle: str
    checkpoint: str
    description: str
    emotion: str | None
    cues: dict[str, list[str]]
    reasoning: list[str]
    attention: ModalityAttention
    frames: np.ndarray | None = None
    frame_times: list[float] | None = None
    waveform: np.ndarray | None = None
    sample_rate: int = 16000
    audio_spans: list[tuple[float, float]] | None = None
    media: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def top_frames(self, k: int = 3) -> list[int]:
        """Indices of the ``k`` most attended frames (most attended first)."""
        if not self.attention.video:
            return []
        return [int(i) for i in np.argsort(self.attention.video)[::-1][:k]]

    def top_audio_spans(self, k: int = 3) -> list[int]:
        """Indices of the ``k`` most attended audio tokens (most attended first)."""
        if not self.attention.audio:
            return []
        return [int(i) for i in np.argsort(self.attention.audio)[::-1][:k]]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (no pixels or samples)."""
        att = self.attention
        frames = None
        if att.video is not None:
            times = self.frame_times or [None] * len(att.video)
            frames = [{"index": i, "time_s": None if t is None else round(t, 3), "weight": w}
                      for i, (t, w) in enumerate(zip(times, att.video))]
        audio = None
        if att.audio is not None and self.audio_spans is not None:
            audio = [{"index": i, "start_s": round(a, 3), "end_s": round(b, 3), "weight": w}
                     for i, ((a, b), w) in enumerate(zip(self.audio_spans, att.audio))]
        return {
            "clip": self.clip, "audio_file": self.audio_file, "subtitle": self.subtitle,
            "checkpoint": self.checkpoint, "emotion": self.emotion, "description": self.description,
            "cues": self.cues, "reasoning": self.reasoning, "media": self.media, "notes": self.notes,
            "attention": {"share": att.share, "generated_tokens": att.tokens, "frames": frames, "audio": audio,
                          "top_frames": self.top_frames(), "top_audio_tokens": self.top_audio_spans()},
        }


def default_checkpoint() -> str:
    if Path(DEFAULT_CHECKPOINT).exists():
        return DEFAULT_CHECKPOINT
    raise FileNotFoundError(f"no --checkpoint given and {DEFAULT_CHECKPOINT} does not exist; train one with "
                            "`make train` or pass --checkpoint RUN_OR_EXPORT_FOLDER")


def _settings(model, recipe: dict[str, Any]) -> dict[str, Any]:
    """Decoding settings of the run, exactly as its DataModule used them (frames, their size, crop, resampling and
    sampling, the audio rate and cut)."""
    from xemogpt.training.run import data_settings

    data = data_settings(recipe, model)
    return {"num_frames": int(data["num_frames"]), "frame_size": int(data["frame_size"]),
            "crop": bool(data.get("frame_crop", False)), "resample": data.get("frame_resample", "area"),
            "sampling": data.get("frame_sampling", "centre"), "audio_resampler": data.get("audio_resampler", "ffmpeg"),
            "sample_rate": int(data["sample_rate"]),
            "max_seconds": float(data["max_seconds"]) if data.get("max_seconds") is not None else None}


def emotion_labels(recipe: dict[str, Any]) -> tuple[str, ...]:
    """Emotion names the model was trained to conclude with: the seven synthetic ones plus those the run recorded
    (``eval.emotions``, written by fine-tunes) or, failing that, those of the run's data folder when it exists."""
    from xemogpt.cues.vocabulary import EMOTIONS
    from xemogpt.data.schema import read_info

    root = (recipe.get("data") or {}).get("root")
    extra: list[str] = [str(e) for e in (recipe.get("eval") or {}).get("emotions") or []]
    if not extra and root and Path(root).exists():
        extra = [str(e) for e in read_info(root).get("emotions", [])]
        if not extra and (Path(root) / "manifest.jsonl").exists():
            from xemogpt.data.schema import iter_manifest

            extra = sorted({s.emotion for s in iter_manifest(root) if s.emotion})
    return tuple(dict.fromkeys([*extra, *EMOTIONS]))


def _media_facts(path: str) -> dict[str, Any]:
    """Width, height, fps, duration and streams of a media file (header only)."""
    from xemogpt.data.decode import _open

    c = _open(path)
    try:
        facts: dict[str, Any] = {"has_video": bool(c.streams.video), "has_audio": bool(c.streams.audio)}
        if c.streams.video:
            vs = c.streams.video[0]
            facts.update(width=vs.codec_context.width, height=vs.codec_context.height,
                         fps=float(vs.average_rate) if vs.average_rate else None)
        if c.duration is not None:
            facts["duration_s"] = round(c.duration / 1_000_000, 3)
        return facts
    finally:
        c.close()


def _display_frames(path: str, num: int, width: int, height: int, sampling: str = "centre") -> np.ndarray | None:
    """The same sampled frames as the model's, at display size with the aspect ratio kept."""
    from xemogpt.data.decode import DecodeError, decode_video

    h = DISPLAY_HEIGHT
    w = max(2, int(round(h * width / max(1, height) / 2)) * 2)
    try:
        frames, _, _ = decode_video(path, num_frames=num, size=(w, h), sampling=sampling)
    except DecodeError:
        return None
    return frames


def explain_clip(clip: str | Path, audio: str | Path | None = None, subtitle: str = "",
                 checkpoint: str | Path | None = None, extractor: str = "offline", model=None,
                 save_tensors: str | Path | None = None, **generation: Any) -> Explanation:
    """Decode ``clip`` (and ``audio``), generate a description with the model of ``checkpoint`` and explain it.

    ``generation`` overrides the run's settings (``greedy=True``: one beam, no sampling). ``save_tensors`` writes
    the pipeline's tensors to a safetensors file (see :func:`save_trace`)."""
    from xemogpt import registry
    from xemogpt.checkpointing.errors import CheckpointError
    from xemogpt.checkpointing.files import run_recipe_of
    from xemogpt.cues.splitting import split_sentences
    from xemogpt.cues.vocabulary import CONCLUSION, emotion_from_text
    from xemogpt.data.datamodule import Collator
    from xemogpt.data.decode import decode_clip
    from xemogpt.data.schema import EmoCueSample
    from xemogpt.evaluation.evaluate import seeded_rng
    from xemogpt.models.loading import load_model

    clip = str(clip)
    audio = str(audio) if audio is not None else None
    ckpt = str(checkpoint) if checkpoint is not None else default_checkpoint()
    model = model if model is not None else load_model(ckpt)
    model.eval()
    try:
        recipe = run_recipe_of(ckpt)
    except CheckpointError:
        recipe = {}
    st = _settings(model, recipe)
    decoded = decode_clip(clip, audio, num_frames=st["num_frames"], size=st["frame_size"], crop=st["crop"],
                          resample=st["resample"], sampling=st["sampling"], audio_resampler=st["audio_resampler"],
                          sample_rate=st["sample_rate"],
                          max_seconds=st["max_seconds"], name=Path(clip).name)
    notes = [detail for _, detail in decoded.notes]
    facts = _media_facts(clip)
    if audio is not None:
        facts["audio_file"] = _media_facts(audio)

    sample = EmoCueSample(id="clip", video=clip, audio=audio, subtitle=subtitle)
    item = {"id": "clip", "frames": decoded.frames, "audio": decoded.audio}
    batch = Collator({"clip": sample}, st["num_frames"], st["frame_size"])([item])
    if decoded.audio is None:
        # One second of masked-out silence instead of the collator's single sample: spectrogram encoders pad by
        # half an FFT window and fail on shorter input. Masked tokens never reach the LLM.
        import torch

        batch["audio"] = torch.zeros(1, st["sample_rate"])
        batch["audio_mask"] = torch.zeros(1, st["sample_rate"], dtype=torch.bool)
    from xemogpt.data.batch import to_device

    batch = to_device(batch, model.device)
    batch["ids"] = None  # no per-id feature memo: every explained clip is new to the model
    trace: dict[str, Any] = {}
    enc = model.video_encoder
    recording = save_tensors is not None and hasattr(enc, "record_pixels")
    if recording:
        enc.record_pixels = True
    try:
        with seeded_rng(int(recipe.get("seed", 0))):  # sampled descriptions depend on the seed alone
            text = model.generate(batch, trace=trace, **generation)[0]
    finally:
        if recording:
            enc.record_pixels = False
    had = {"video": bool(trace["video_mask"].any()), "audio": bool(trace["audio_mask"].any())}
    if save_tensors is not None:
        save_trace(save_tensors, trace, decoded, getattr(enc, "recorded_pixels", None) if recording else None)
    attention = modality_attention(model, batch, text)

    ext = registry.build("cue_extractor", extractor, "--extractor")
    cues = {m: list(v) for m, v in ext.extract([text])[0].items()}
    # A modality the model did not have cannot have given cues: whatever the text claims there is dropped.
    for mod, key in (("visual", "video"), ("auditory", "audio")):
        if not had[key]:
            cues[mod] = []
    emotion = emotion_from_text(text, emotion_labels(recipe))
    conclusion_start = CONCLUSION.split("{")[0].strip().lower()
    reasoning = list(cues.get("emotional", []))
    reasoning += [s for s in split_sentences(text) if s.lower().startswith(conclusion_start) and s not in reasoning]

    frame_times = None
    frames = None
    if decoded.frames is not None:
        dur = decoded.duration or facts.get("duration_s")
        n = st["num_frames"]
        fps = decoded.fps or facts.get("fps")
        if decoded.frame_indices is not None and fps:  # the frames the decoder took, at their own times
            frame_times = [float(i / fps) for i in decoded.frame_indices]
        elif dur:
            frame_times = [float((k + 0.5) * dur / n) for k in range(n)]
        frames = _display_frames(clip, n, facts.get("width", st["frame_size"]), facts.get("height", st["frame_size"]),
                                 st["sampling"])
        if frames is None:
            frames = decoded.frames
    spans = None
    if decoded.audio is not None and attention.audio:
        stride = getattr(model.audio_encoder, "stride", None)
        sec = len(decoded.audio) / decoded.sample_rate
        step = stride / decoded.sample_rate if stride else sec / len(attention.audio)
        spans = [(i * step, min(sec, (i + 1) * step)) for i in range(len(attention.audio))]
    if not had["audio"]:
        notes.append("no audio: the description rests on the frames and the subtitle")
    if not had["video"]:
        notes.append("no video frames: the description rests on the audio and the subtitle")
    if trained_on_generated_clips(recipe):
        notes.append("this model was trained only on generated clips (drawn faces, synthesised voices): on real "
                     "footage its cues are outside what it has seen and may be wrong")
    return Explanation(clip=clip, audio_file=audio, subtitle=subtitle, checkpoint=ckpt, description=text,
                       emotion=emotion, cues=cues, reasoning=reasoning, attention=attention, frames=frames,
                       frame_times=frame_times, waveform=decoded.audio, sample_rate=decoded.sample_rate,
                       audio_spans=spans, media={**facts, "modalities": [m for m in ("video", "audio") if had[m]]},
                       notes=list(dict.fromkeys(notes)))


def trained_on_generated_clips(recipe: dict[str, Any]) -> bool:
    """Whether the run's training data was made by the synthetic generator (``data.synth``, or a fine-tune's
    generated dataset)."""
    dataset = (recipe.get("finetune") or {}).get("dataset") or {}
    return bool((recipe.get("data") or {}).get("synth")) or bool(dataset.get("generate"))


def save_trace(path: str | Path, trace: dict[str, Any], decoded, pixels) -> None:
    """Write the tensors of one explained clip to ``path`` (safetensors; absent modalities are left out):

    ``frame_indices`` (T,) int64, ``pixel_values`` (T, 3, H, W) float32 as fed to the vision tower, ``waveform``
    (S,) float32 mono before the feature extractor's normalisation, ``video_bridge_out`` (T, Hv),
    ``audio_bridge_out`` (Ta, Ha) (valid tokens), ``inputs_embeds`` (L, D) (bos included), ``first_logits`` (V) at
    the last prompt position, ``generated_ids`` (N,) int64.
    """
    import torch
    from safetensors.torch import save_file

    out: dict[str, torch.Tensor] = {}
    if decoded.frame_indices is not None and bool(trace["video_mask"].any()):
        out["frame_indices"] = torch.as_tensor(decoded.frame_indices, dtype=torch.int64)
        if pixels is not None:
            out["pixel_values"] = pixels[0].float()
        out["video_bridge_out"] = trace["video_bridge_out"][0][trace["video_mask"][0]].float()
    if decoded.audio is not None and bool(trace["audio_mask"].any()):
        out["waveform"] = torch.as_tensor(decoded.audio, dtype=torch.float32)
        out["audio_bridge_out"] = trace["audio_bridge_out"][0][trace["audio_mask"][0]].float()
    valid = trace["attention_mask"][0].bool()
    out["inputs_embeds"] = trace["inputs_embeds"][0][valid].float()
    out["first_logits"] = trace["first_logits"][0].float()
    out["generated_ids"] = trace["generated_ids"][0].to(torch.int64)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in out.items()}, str(path))


def format_text(ex: Explanation) -> str:
    """The plain-text explanation ``xemogpt explain`` prints."""
    m = ex.media
    parts = []
    if m.get("has_video"):
        parts.append(f"video {m.get('width')}x{m.get('height')}" + (f" at {m['fps']:.3g} fps" if m.get("fps") else ""))
    if ex.waveform is not None:
        parts.append(f"audio {len(ex.waveform) / ex.sample_rate:.1f} s used")
    if m.get("duration_s"):
        parts.append(f"{m['duration_s']:.1f} s long")
    lines = [f"clip: {ex.clip}" + (f" + {ex.audio_file}" if ex.audio_file else "") + (f" ({', '.join(parts)})"
                                                                                    if parts else ""),
             f"model: {ex.checkpoint}"]
    if ex.subtitle:
        lines.append(f"subtitle: {ex.subtitle}")
    for n in ex.notes:
        lines.append(f"note: {n}")
    lines += ["", f"emotion: {ex.emotion or '(none stated)'}", ""]
    for mod, title in (("visual", "visual cues"), ("auditory", "auditory cues")):
        lines.append(f"{title}:")
        lines += [f"  - {c}" for c in ex.cues.get(mod, [])] or ["  (none)"]
    lines.append("reasoning:")
    lines += [f"  - {c}" for c in ex.reasoning] or ["  (none)"]
    lines += ["", "description:", f"  {ex.description}", ""]
    sh = ex.attention.share
    lines.append(f"attention of the generated text: video {sh['video']:.0%}, audio {sh['audio']:.0%}, "
                 f"text {sh['text']:.0%}")
    if ex.attention.video:
        tops = [f"#{i + 1}" + (f" ({ex.frame_times[i]:.2f} s)" if ex.frame_times else "") for i in ex.top_frames()]
        lines.append(f"most attended frames: {', '.join(tops)}")
    if ex.attention.audio and ex.audio_spans:
        tops = [f"{ex.audio_spans[i][0]:.2f}-{ex.audio_spans[i][1]:.2f} s" for i in ex.top_audio_spans()]
        lines.append(f"most attended audio: {', '.join(tops)}")
    return "\n".join(lines)
