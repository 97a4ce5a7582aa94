"""A differently styled synthetic dataset for fine-tuning demos: five *moods* the base data never names.

The base EmoCue data (:mod:`xemogpt.data.synth`) labels clips with seven emotions. This module draws clips with the
same face and voice renderer but a new label set and new cue combinations, and writes them the way a third-party
dataset arrives: ``clips/*.mp4`` plus one table ``labels.csv`` (id, video, subtitle, emotion, split, description,
cues per modality as JSON lists). It is then brought in like any other dataset, through the ``generic`` adapter
(``xemogpt data import --format generic --labels DIR/labels.csv --media DIR``), so a fine-tune exercises the import
path as well.

| mood | visual | auditory | words |
|---|---|---|---|
| excited | mouth wide open, corners up, brows raised | pitch high, lively, loud, fast | positive |
| bored | gaze aside, eyes narrowed, head lowered (0.5) | pitch low, soft, slow, long pauses | neutral |
| nervous | inner brows raised, frequent blinks, lips stretched | pitch high, tremor, long pauses | negative |
| content | mouth corners up, nod | soft, falling, slow | positive |
| frustrated | brows furrowed, head shake | loud, falling, fast | negative |

None of the five names is a word the base model's emotion reader maps to one of the seven emotions, so the base
model scores zero emotion accuracy on this data until it is fine-tuned. Nuisance parameters (fps, duration, face
geometry and colours, speaker baseline, noise) come from the base generator's draw for the same (seed, index).
"""

from __future__ import annotations

import csv
import json
import multiprocessing as mp
from pathlib import Path
from typing import Any

import numpy as np

from xemogpt.data.schema import EmoCueSample

MOODS: tuple[str, ...] = ("excited", "bored", "nervous", "content", "frustrated")
# mood -> modality -> [(cue id, probability)]
MOOD_CUES: dict[str, dict[str, list[tuple[str, float]]]] = {
    "excited": {"visual": [("mouth=wide_open", 1.0), ("mouth_corners=up", 1.0), ("brows=raised", 1.0)],
                "auditory": [("pitch=high", 1.0), ("contour=lively", 1.0), ("loudness=loud", 1.0), ("rate=fast", 1.0)]},
    "bored": {"visual": [("gaze=aside", 1.0), ("eyes=narrowed", 1.0), ("head=lowered", 0.5)],
              "auditory": [("pitch=low", 1.0), ("loudness=soft", 1.0), ("rate=slow", 1.0), ("pauses=long", 1.0)]},
    "nervous": {"visual": [("brows=inner_raised", 1.0), ("blinks=frequent", 1.0), ("mouth=stretched", 1.0)],
                "auditory": [("pitch=high", 1.0), ("tremor=present", 1.0), ("pauses=long", 1.0)]},
    "content": {"visual": [("mouth_corners=up", 1.0), ("head=nod", 1.0)],
                "auditory": [("loudness=soft", 1.0), ("contour=falling", 1.0), ("rate=slow", 1.0)]},
    "frustrated": {"visual": [("brows=furrowed", 1.0), ("head=shake", 1.0)],
                   "auditory": [("loudness=loud", 1.0), ("contour=falling", 1.0), ("rate=fast", 1.0)]},
}
MOOD_POLARITY = {"excited": "positive", "bored": "neutral", "nervous": "negative", "content": "positive",
                 "frustrated": "negative"}
STATE_PHRASES: dict[str, list[str]] = {
    "excited": ["The open smile and loud, lively voice suggest excitement.",
                "The person seems excited, beaming and talking fast.",
                "Eagerness shows in the open smile and animated voice."],
    "bored": ["The wandering gaze and slow, quiet voice suggest boredom.",
              "The person seems bored, looking away and speaking slowly.",
              "Disinterest shows in the averted eyes and slow speech."],
    "nervous": ["The worried brows, frequent blinks and shaky voice suggest nervousness.",
                "The person seems nervous, tense and hesitant.",
                "Unease shows in the blinking eyes and trembling voice."],
    "content": ["The gentle smile, slow nod and soft voice suggest contentment.",
                "The person seems content, quietly smiling.",
                "Contentment shows in the soft smile and unhurried voice."],
    "frustrated": ["The frown, shaking head and loud, falling voice suggest frustration.",
                   "The person seems frustrated, frowning and shaking the head.",
                   "Frustration shows in the knit brows and forceful voice."],
}
TABLE = "labels.csv"
COLUMNS = ("id", "video", "subtitle", "emotion", "split", "description", "cues.visual", "cues.auditory",
           "cues.emotional")


def draw_mood_annotation(seed: int, index: int, mood: str) -> EmoCueSample:
    """The annotation (cues, subtitle, description, render ``meta``) of mood clip ``index``; no media rendered."""
    from xemogpt.cues.vocabulary import (
        AUDITORY_CUE_IDS,
        CONCLUSION,
        GRADED_VISUAL,
        TIMED_VISUAL,
        VISUAL_CUE_IDS,
        phrase,
    )
    from xemogpt.data.synth.annotate import (
        LOUDNESS_DB,
        ONSETS,
        OPPOSITE,
        P_SLIGHT,
        PITCH_FACTOR,
        RATE_RANGE,
        RELATIONS,
        _blinks,
        _pick,
        draw_annotation,
    )
    from xemogpt.data.synth.subtitles import SUBTITLES

    if mood not in MOOD_CUES:
        raise ValueError(f"unknown mood {mood!r}; moods are {', '.join(MOODS)}")
    base = draw_annotation(seed, index, "neutral")  # nuisance parameters only; every cue is redrawn below
    meta = base.meta
    rng = np.random.default_rng([seed, index, 0x600D])
    chosen = {m: [c for c, p in MOOD_CUES[mood][m] if rng.random() < p] for m in ("visual", "auditory")}

    onset = _pick(rng, ONSETS)
    t_on, t_off = round(float(rng.uniform(0.30, 0.55)), 4), round(float(rng.uniform(0.35, 0.55)), 4)
    visual_meta: dict[str, dict[str, Any]] = {}
    for cue_id in chosen["visual"]:
        m: dict[str, Any] = {"extra": False}
        if cue_id in GRADED_VISUAL:
            m["intensity"] = "slight" if rng.random() < P_SLIGHT else "clear"
        if cue_id in TIMED_VISUAL:
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
    voice = dict(meta["voice"])  # keeps the speaker baseline, noise and the voice's own seed
    voice.update({
        "pitch": "high" if "pitch=high" in aud else "low" if "pitch=low" in aud else "mid",
        "contour": next((c.split("=")[1] for c in ("contour=rising", "contour=falling", "contour=lively") if c in aud),
                        "flat"),
        "loudness": "loud" if "loudness=loud" in aud else "soft" if "loudness=soft" in aud else "normal",
        "rate": "fast" if "rate=fast" in aud else "slow" if "rate=slow" in aud else "normal",
        "tremor": "tremor=present" in aud,
        "pauses": "pauses=long" in aud,
    })
    voice["f0"] = round(voice["baseline_f0"] * PITCH_FACTOR[voice["pitch"]], 3)
    voice["level_db"] = round(-24.0 + LOUDNESS_DB[voice["loudness"]] + float(rng.uniform(-1.5, 1.5)), 3)
    voice["syllables_per_s"] = round(float(rng.uniform(*RATE_RANGE[voice["rate"]])), 4)
    voice["tremor_hz"] = round(float(rng.uniform(5.0, 7.0)), 4) if voice["tremor"] else None
    face = dict(meta["face"])
    face["blinks"] = _blinks(rng, "blinks=frequent" in visual_meta, meta["duration"], meta["fps"])

    relation = _pick(rng, RELATIONS)
    target = MOOD_POLARITY[mood]
    if target == "neutral":
        relation = "contradicts" if relation == "contradicts" else "agrees"
        polarity = "neutral" if relation == "agrees" else ("positive" if rng.random() < 0.5 else "negative")
    else:
        polarity = {"agrees": target, "neutral": "neutral", "contradicts": OPPOSITE[target]}[relation]
    subtitle = SUBTITLES[polarity][int(rng.integers(len(SUBTITLES[polarity])))]

    cues: dict[str, list[str]] = {"visual": [], "auditory": [], "emotional": []}
    ids: dict[str, list[str]] = {"visual": [], "auditory": [], "emotional": []}
    for cue_id in VISUAL_CUE_IDS:
        if cue_id in visual_meta:
            vm = visual_meta[cue_id]
            cues["visual"].append(phrase(cue_id, int(rng.integers(3)), intensity=vm.get("intensity"),
                                         onset=vm.get("onset")))
            ids["visual"].append(cue_id)
    for cue_id in AUDITORY_CUE_IDS:
        if cue_id in aud:
            cues["auditory"].append(phrase(cue_id, int(rng.integers(3))))
            ids["auditory"].append(cue_id)
    cues["emotional"] = [phrase(f"text={relation}", int(rng.integers(3)), polarity=polarity),
                         STATE_PHRASES[mood][int(rng.integers(3))]]
    ids["emotional"] = [f"text={relation}", f"state={mood}"]
    description = " ".join(cues["visual"] + cues["auditory"] + cues["emotional"] + [CONCLUSION.format(emotion=mood)])
    sid = f"mood{index:05d}"
    meta = {**meta, "generator": "xemogpt.workflows.moods", "mood": mood, "onset": onset, "extra_cue": None,
            "visual_cues": visual_meta, "voice": voice, "face": face, "subtitle_polarity": polarity,
            "text_relation": relation}
    return EmoCueSample(id=sid, video=f"clips/{sid}.mp4", subtitle=subtitle, emotion=mood, labels=[mood], cues=cues,
                        cue_ids=ids, description=description, split="train", meta=meta)


def mood_splits(moods: list[str], seed: int, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)) -> list[str]:
    """Train/val/test per clip, stratified by mood (largest remainder along a mood-grouped, shuffled order)."""
    rng = np.random.default_rng([seed, 0x5917, 2])
    out = [""] * len(moods)
    counts = np.zeros(3)
    frac = np.asarray(fractions, dtype=float)
    seq = [i for m in MOODS for i in rng.permutation([i for i, x in enumerate(moods) if x == m]).tolist()]
    for k, i in enumerate(seq):
        j = int(np.argmax(frac * (k + 1) - counts))
        counts[j] += 1
        out[i] = ("train", "val", "test")[j]
    return out


def annotate_moods(n: int, seed: int) -> list[EmoCueSample]:
    """``n`` mood annotations: balanced moods (shuffled by ``seed``), stratified splits."""
    if n < len(MOODS):
        raise ValueError(f"n must be at least {len(MOODS)} (one clip per mood), got {n}")
    rng = np.random.default_rng([seed, 0x5EED, 2])
    moods = [MOODS[int(i)] for i in rng.permutation(np.arange(n) % len(MOODS))]
    samples = [draw_mood_annotation(seed, i, m) for i, m in enumerate(moods)]
    for s, split in zip(samples, mood_splits(moods, seed)):
        s.split = split
    return samples


def generate_moods(out: str | Path, n: int = 300, seed: int = 0, workers: int = 2, size: int = 112) -> Path:
    """Render ``n`` mood clips into ``out/clips/`` and write ``out/labels.csv`` (the table the generic adapter reads).

    Returns the table's path. Clip ``i`` depends only on ``(seed, i, size)``.
    """
    from xemogpt.data.synth.generate import _render_job

    out = Path(out)
    (out / "clips").mkdir(parents=True, exist_ok=True)
    samples = annotate_moods(n, seed)
    jobs = [(s.meta, str(out / s.video), size) for s in samples]
    if workers <= 1:
        for job in jobs:
            _render_job(job)
    else:
        with mp.get_context("spawn").Pool(workers) as pool:  # spawn: safe beside torch threads
            for _ in pool.imap_unordered(_render_job, jobs, chunksize=4):
                pass
    table = out / TABLE
    with open(table, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for s in samples:
            w.writerow([s.id, s.video, s.subtitle, s.emotion, s.split, s.description,
                        *(json.dumps(s.cues[m]) for m in ("visual", "auditory", "emotional"))])
    (out / "moods.json").write_text(json.dumps({"generator": "xemogpt.workflows.moods", "n": n, "seed": seed,
                                                "size": size, "moods": list(MOODS),
                                                "cue_ids": {s.id: s.cue_ids for s in samples}}, indent=1),
                                    encoding="utf-8")
    return table
