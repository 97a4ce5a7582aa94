"""Sampling one clip's annotation (cues, subtitle, description, every render parameter) without rendering it.

Everything random about clip ``index`` of a dataset with seed ``seed`` comes from
``numpy.random.default_rng([seed, index, 1])`` so that a clip is the same whichever worker makes it, and the
full parameter set lands in ``sample.meta`` so that :mod:`~xemogpt.data.synth.render` can redraw it from the
manifest alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xemogpt.data.schema import EmoCueSample
from xemogpt.data.synth.cues import (
    AUDITORY_CUE_IDS,
    CONCLUSION,
    EMOTIONS,
    GRADED_VISUAL,
    PHRASES,
    TIMED_VISUAL,
    VISUAL_CUE_IDS,
    partial_phrase,
    phrase,
)
from xemogpt.data.synth.subtitles import EMOTION_POLARITY, SUBTITLES

GENERATOR_VERSION = "1.1"
FPS_CHOICES: tuple[int, ...] = (12, 15, 20, 24, 25, 30)
DURATION_RANGE: tuple[float, float] = (2.0, 6.0)

# Core cue pattern per emotion: a list of slots; each slot is a list of (cue id, probability) alternatives, and
# the slot stays empty with the leftover probability.
Slot = list[tuple[str, float]]
CORE: dict[str, dict[str, list[Slot]]] = {
    "happy": {
        "visual": [[("mouth_corners=up", 1.0)], [("eyes=narrowed", 0.6)], [("mouth=slightly_open", 0.3)]],
        "auditory": [[("pitch=high", 1.0)], [("contour=lively", 1.0)], [("rate=fast", 1.0)], [("loudness=loud", 0.5)]],
    },
    "sad": {
        "visual": [
            [("mouth_corners=down", 1.0)],
            [("brows=inner_raised", 1.0)],
            [("gaze=down", 1.0)],
            [("head=lowered", 0.7)],
        ],
        "auditory": [
            [("pitch=low", 1.0)],
            [("contour=falling", 1.0)],
            [("loudness=soft", 1.0)],
            [("rate=slow", 1.0)],
            [("pauses=long", 0.7)],
        ],
    },
    "angry": {
        "visual": [[("brows=furrowed", 1.0)], [("eyes=narrowed", 1.0)]],
        "auditory": [[("loudness=loud", 1.0)], [("rate=fast", 1.0)], [("contour=falling", 1.0)]],
    },
    "surprised": {
        "visual": [
            [("brows=raised", 1.0)],
            [("eyes=wide", 1.0)],
            [("mouth=wide_open", 0.75), ("mouth=slightly_open", 0.25)],
        ],
        "auditory": [[("pitch=high", 1.0)], [("contour=rising", 1.0)]],
    },
    "fearful": {
        "visual": [
            [("brows=raised", 1.0)],
            [("brows=inner_raised", 1.0)],
            [("eyes=wide", 1.0)],
            [("mouth=stretched", 1.0)],
        ],
        "auditory": [[("pitch=high", 1.0)], [("tremor=present", 1.0)], [("rate=fast", 1.0)], [("loudness=soft", 0.5)]],
    },
    "disgusted": {
        "visual": [[("nose=wrinkled", 1.0)], [("head=turned_away", 0.6)]],
        "auditory": [[("pitch=low", 1.0)], [("contour=falling", 1.0)], [("rate=slow", 1.0)]],
    },
    "neutral": {"visual": [[("face=relaxed", 1.0)]], "auditory": [[("voice=even", 1.0)]]},
}
# Emotion-free cues that may be added once to any clip whose own cues leave that attribute free.
EXTRA_CUES: tuple[str, ...] = ("blinks=frequent", "head=nod", "head=shake", "gaze=aside", "pauses=long")
P_EXTRA = 0.35
P_SLIGHT = 0.3
ONSETS: tuple[tuple[str, float], ...] = (("start", 0.55), ("part-way", 0.30), ("fading", 0.15))
RELATIONS: tuple[tuple[str, float], ...] = (("agrees", 0.60), ("neutral", 0.25), ("contradicts", 0.15))
OPPOSITE = {"positive": "negative", "negative": "positive"}

# Voice settings (relative to the clip's speaker baseline): see voice.py for how they are rendered.
BASELINE_F0 = (145.0, 175.0)
PITCH_FACTOR = {"high": 1.42, "mid": 1.0, "low": 0.70}
LOUDNESS_DB = {"loud": 9.0, "normal": 0.0, "soft": -9.0}
RATE_RANGE = {"fast": (5.2, 5.8), "normal": (3.4, 3.9), "slow": (2.0, 2.4)}


def assign_emotions(n: int, seed: int) -> list[str]:
    """Balanced emotion labels for ``n`` clips (counts differ by at most one), shuffled by ``seed``."""
    rng = np.random.default_rng([seed, 0x5EED])
    order = rng.permutation(np.arange(n) % len(EMOTIONS))
    return [EMOTIONS[int(i)] for i in order]


def assign_splits(
    emotions: list[str], seed: int, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
) -> list[str]:
    """Train/val/test per clip, stratified by emotion.

    Clips are grouped by emotion (shuffled inside each group) and walked in one sequence; a running
    largest-remainder rule assigns splits along it, so every emotion gets its share to within one clip and
    even a 20-clip set has all three splits.
    """
    rng = np.random.default_rng([seed, 0x5917])
    names = ("train", "val", "test")
    out = [""] * len(emotions)
    counts = np.zeros(3)
    seq = []
    for emo in EMOTIONS:
        idx = [i for i, e in enumerate(emotions) if e == emo]
        seq.extend(rng.permutation(idx).tolist())
    frac = np.asarray(fractions, dtype=float)
    for k, i in enumerate(seq):
        deficit = frac * (k + 1) - counts
        j = int(np.argmax(deficit))
        counts[j] += 1
        out[i] = names[j]
    return out


def clip_id(index: int) -> str:
    return f"synth{index:05d}"


def _pick(rng: np.random.Generator, options: tuple[tuple[str, float], ...]) -> str:
    names, probs = zip(*options)
    return names[int(rng.choice(len(names), p=np.asarray(probs) / sum(probs)))]


def _attribute(cue_id: str) -> str:
    return cue_id.split("=")[0]


def _draw_colors(rng: np.random.Generator) -> dict[str, list[float]]:
    """Skin, hair, background, iris and lip colours (RGB in 0-1) with enough contrast between face and rest."""

    def lum(c: np.ndarray) -> float:
        return float(0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2])

    tone = rng.uniform(0.0, 1.0)  # light to dark skin
    skin = np.array([0.96, 0.80, 0.68]) * (1 - tone) + np.array([0.52, 0.34, 0.22]) * tone
    skin = np.clip(skin + rng.uniform(-0.03, 0.03, 3), 0, 1)
    hair_palette = np.array(
        [
            [0.08, 0.06, 0.05],
            [0.30, 0.18, 0.10],
            [0.55, 0.35, 0.18],
            [0.80, 0.66, 0.38],
            [0.55, 0.55, 0.55],
            [0.55, 0.20, 0.08],
        ]
    )
    hair = np.clip(hair_palette[rng.integers(len(hair_palette))] + rng.uniform(-0.04, 0.04, 3), 0, 1)
    for _ in range(50):  # background must stand apart from the face
        bg = rng.uniform(0.05, 0.95, 3)
        if abs(lum(bg) - lum(skin)) > 0.18:
            break
    bg2 = np.clip(bg * rng.uniform(0.75, 1.1) + rng.uniform(-0.05, 0.05, 3), 0, 1)
    # Brows must contrast with skin whatever the hair colour, so they are a darkened hair colour.
    brow = hair * 0.45
    if lum(skin) - lum(brow) < 0.25:  # blond or grey hair on dark skin: darken the brows until they stand out
        brow = brow * max(lum(skin) - 0.25, 0.03) / max(lum(brow), 1e-3)
    iris = np.array([[0.25, 0.15, 0.08], [0.15, 0.25, 0.40], [0.20, 0.30, 0.18]])[rng.integers(3)]
    lip = np.clip(skin * np.array([0.72, 0.42, 0.42]), 0, 1)
    r = lambda c: [round(float(x), 4) for x in c]  # noqa: E731
    return {
        "skin": r(skin),
        "hair": r(hair),
        "background": r(bg),
        "background2": r(bg2),
        "brow": r(brow),
        "iris": r(iris),
        "lip": r(lip),
    }


def _blinks(rng: np.random.Generator, frequent: bool, duration: float, fps: int) -> list[list[float]]:
    """Blink intervals ``[start, end]`` in seconds (eyes fully closed inside).

    Frequent blinks last longer than the gap between 16 uniformly sampled frames, so each one shows in at least
    one of them and the clip has >= 3 closed-eye samples; a normal clip has at most one single-frame blink, which
    at most one of 16 samples can catch.
    """
    if frequent:
        length = max(0.15, 1.15 * duration / 15 + 1.0 / fps)
        k = 3
        slot = duration / k
        out = []
        for j in range(k):
            start = j * slot + rng.uniform(0.1, 0.9) * max(slot - length, 0.0)
            out.append([round(start, 4), round(min(start + length, duration), 4)])
        return out
    if rng.random() < 0.5:
        f = int(rng.integers(1, max(2, int(duration * fps) - 1)))
        return [[round(f / fps - 0.2 / fps, 4), round(f / fps + 0.2 / fps, 4)]]
    return []


def draw_annotation(seed: int, index: int, emotion: str | None = None) -> EmoCueSample:
    """The annotation of clip ``index`` (no media rendered): cues, ids, subtitle, description and full ``meta``.

    ``emotion`` defaults to a uniformly drawn one (the generator passes balanced labels from
    :func:`assign_emotions`). The sample's ``video`` is ``clips/<id>.mp4`` and its split ``train`` until
    :func:`assign_splits` says otherwise.
    """
    rng = np.random.default_rng([seed, index, 1])
    if emotion is None:
        emotion = EMOTIONS[int(rng.integers(len(EMOTIONS)))]
    if emotion not in CORE:
        raise ValueError(f"unknown emotion {emotion!r}; the synthetic generator knows {', '.join(EMOTIONS)}")

    fps = int(FPS_CHOICES[int(rng.integers(len(FPS_CHOICES)))])
    n_frames = int(round(rng.uniform(*DURATION_RANGE) * fps))
    duration = n_frames / fps

    # Cues: core slots, then maybe one extra that does not touch an attribute already in use.
    chosen: dict[str, list[str]] = {"visual": [], "auditory": []}
    for mod in ("visual", "auditory"):
        for slot in CORE[emotion][mod]:
            u, acc = rng.random(), 0.0
            for cue_id, p in slot:
                acc += p
                if u < acc:
                    chosen[mod].append(cue_id)
                    break
    extra = None
    if rng.random() < P_EXTRA:
        used = {_attribute(c) for m in chosen.values() for c in m}
        free = [c for c in EXTRA_CUES if _attribute(c) not in used]
        if free:
            extra = free[int(rng.integers(len(free)))]
            chosen["auditory" if extra in AUDITORY_CUE_IDS else "visual"].append(extra)

    onset = _pick(rng, ONSETS)
    t_on = round(float(rng.uniform(0.30, 0.55)), 4)
    t_off = round(float(rng.uniform(0.35, 0.55)), 4)
    visual_meta: dict[str, dict[str, Any]] = {}
    for cue_id in chosen["visual"]:
        m: dict[str, Any] = {"extra": cue_id == extra}
        if cue_id in GRADED_VISUAL:
            m["intensity"] = "slight" if rng.random() < P_SLIGHT else "clear"
        if cue_id in TIMED_VISUAL and cue_id != extra:
            m["onset"] = onset
            if onset == "part-way":
                m["t_on"] = t_on
            elif onset == "fading":
                m["t_off"] = t_off
        if cue_id in ("head=turned_away", "gaze=aside"):
            m["direction"] = int(rng.choice([-1, 1]))
        if cue_id in ("head=nod", "head=shake"):
            m["cycles"] = round(float(rng.uniform(2.0, 3.0)), 4)
            m["phase"] = round(float(rng.uniform(0, 2 * np.pi)), 4)
        visual_meta[cue_id] = m
    aud = set(chosen["auditory"])
    voice = {
        "baseline_f0": round(float(rng.uniform(*BASELINE_F0)), 3),
        "pitch": "high" if "pitch=high" in aud else "low" if "pitch=low" in aud else "mid",
        "contour": next(
            (c.split("=")[1] for c in ("contour=rising", "contour=falling", "contour=lively") if c in aud), "flat"
        ),
        "loudness": "loud" if "loudness=loud" in aud else "soft" if "loudness=soft" in aud else "normal",
        "rate": "fast" if "rate=fast" in aud else "slow" if "rate=slow" in aud else "normal",
        "tremor": "tremor=present" in aud,
        "pauses": "pauses=long" in aud,
    }
    voice["f0"] = round(voice["baseline_f0"] * PITCH_FACTOR[voice["pitch"]], 3)
    voice["level_db"] = round(-24.0 + LOUDNESS_DB[voice["loudness"]] + float(rng.uniform(-1.5, 1.5)), 3)
    voice["syllables_per_s"] = round(float(rng.uniform(*RATE_RANGE[voice["rate"]])), 4)
    voice["tremor_hz"] = round(float(rng.uniform(5.0, 7.0)), 4) if voice["tremor"] else None
    voice["noise_db"] = round(float(rng.uniform(-62.0, -50.0)), 3)
    voice["noise_color"] = "white" if rng.random() < 0.5 else "brown"
    voice["seed"] = int(rng.integers(2**31))

    scale = float(rng.uniform(0.34, 0.40))  # face half-height in frame units
    face = {
        "cx": round(0.5 + float(rng.uniform(-0.04, 0.04)), 4),
        "cy": round(0.5 + float(rng.uniform(-0.03, 0.03)), 4),
        "scale": round(scale, 4),
        "aspect": round(float(rng.uniform(0.76, 0.86)), 4),
        "hair": round(float(rng.uniform(0.15, 0.35)), 4),
        "colors": _draw_colors(rng),
        "blinks": _blinks(rng, "blinks=frequent" in visual_meta, duration, fps),
    }

    # Subtitle and how it relates to the emotion; a neutral emotion cannot have a separate "neutral words" case.
    relation = _pick(rng, RELATIONS)
    target = EMOTION_POLARITY[emotion]
    if target == "neutral":
        relation = "contradicts" if relation == "contradicts" else "agrees"
        polarity = "neutral" if relation == "agrees" else ("positive" if rng.random() < 0.5 else "negative")
    else:
        polarity = {"agrees": target, "neutral": "neutral", "contradicts": OPPOSITE[target]}[relation]
    pool = SUBTITLES[polarity]
    subtitle = pool[int(rng.integers(len(pool)))]

    # Sentences, in canonical order per modality.
    choice = {c: int(rng.integers(len(PHRASES[c]))) for c in PHRASES}
    cues: dict[str, list[str]] = {"visual": [], "auditory": [], "emotional": []}
    ids: dict[str, list[str]] = {"visual": [], "auditory": [], "emotional": []}
    for cue_id in VISUAL_CUE_IDS:
        if cue_id in visual_meta:
            m = visual_meta[cue_id]
            cues["visual"].append(phrase(cue_id, choice[cue_id], intensity=m.get("intensity"), onset=m.get("onset")))
            ids["visual"].append(cue_id)
    for cue_id in AUDITORY_CUE_IDS:
        if cue_id in aud:
            cues["auditory"].append(phrase(cue_id, choice[cue_id]))
            ids["auditory"].append(cue_id)
    for cue_id, pol in ((f"text={relation}", polarity), (f"state={emotion}", None)):
        cues["emotional"].append(phrase(cue_id, choice[cue_id], polarity=pol))
        ids["emotional"].append(cue_id)
    description = " ".join(cues["visual"] + cues["auditory"] + cues["emotional"] + [CONCLUSION.format(emotion=emotion)])

    sid = clip_id(index)
    meta = {
        "generator": "xemogpt.data.synth",
        "version": GENERATOR_VERSION,
        "seed": seed,
        "index": index,
        "fps": fps,
        "n_frames": n_frames,
        "duration": duration,
        "sample_rate": 16000,
        "onset": onset,
        "extra_cue": extra,
        "visual_cues": visual_meta,
        "voice": voice,
        "face": face,
        "subtitle_polarity": polarity,
        "text_relation": relation,
        "phrase_choice": {c: choice[c] for m in ids.values() for c in m},
    }
    return EmoCueSample(
        id=sid,
        video=f"clips/{sid}.mp4",
        subtitle=subtitle,
        emotion=emotion,
        labels=[emotion],
        cues=cues,
        cue_ids=ids,
        description=description,
        split="train",
        meta=meta,
    )


def description_for(sample: EmoCueSample, keep: set[str] | frozenset[str]) -> str | None:
    """The description of a generated clip as it reads when only the modalities in ``keep`` (``video``, ``audio``)
    are perceived: the cues of the other one left out, the emotional sentences citing only what is kept.

    -> the description, or None when ``sample`` was not made by this generator (nothing to rebuild it from) or
    ``keep`` holds neither modality.
    """
    meta = sample.meta or {}
    if meta.get("generator") != "xemogpt.data.synth" or not sample.cue_ids or not keep & {"video", "audio"}:
        return None
    if {"video", "audio"} <= set(keep):
        return sample.description
    only = "video" if "video" in keep else "audio"
    parts = list(sample.cues.get("visual" if only == "video" else "auditory", []))
    choices = meta.get("phrase_choice") or {}
    for cue_id in sample.cue_ids.get("emotional", []):
        polarity = meta.get("subtitle_polarity") if cue_id.startswith("text=") else None
        parts.append(partial_phrase(cue_id, only, int(choices.get(cue_id, 0)), polarity=polarity))
    parts.append(CONCLUSION.format(emotion=sample.emotion))
    return " ".join(parts)
