"""Generating a synthetic EmoCue dataset: annotations first (cheap, in the parent), media in worker processes."""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from pathlib import Path
from typing import Any

from xemogpt.cues.vocabulary import AUDITORY_CUE_IDS, EMOTIONAL_CUE_IDS, EMOTIONS, PHRASES, VISUAL_CUE_IDS
from xemogpt.data.schema import EmoCueSample, write_manifest
from xemogpt.data.synth.annotate import (
    CORE,
    GENERATOR_VERSION,
    assign_emotions,
    assign_splits,
    draw_annotation,
)


def annotate_dataset(n: int, seed: int) -> list[EmoCueSample]:
    """All ``n`` annotations of a dataset (balanced emotions, stratified splits) without rendering any media."""
    if n < 1:
        raise ValueError(f"--n must be at least 1, got {n}")
    emotions = assign_emotions(n, seed)
    samples = [draw_annotation(seed, i, emotions[i]) for i in range(n)]
    for s, split in zip(samples, assign_splits(emotions, seed)):
        s.split = split
    return samples


def render_clip(meta: dict[str, Any], path: str | Path, size: int = 112) -> Path:
    """Render one clip (face video + voice) from its ``meta`` and write it as MP4 to ``path``."""
    from xemogpt.data.synth.face import render_frames
    from xemogpt.data.synth.voice import render_voice
    from xemogpt.data.synth.writer import write_mp4

    return write_mp4(path, render_frames(meta, size), render_voice(meta), meta["fps"], size, meta["sample_rate"])


def _render_job(job: tuple[dict[str, Any], str, int]) -> str:
    meta, path, size = job
    render_clip(meta, path, size)
    return path


def generate(out: str | Path, n: int, seed: int, workers: int = 2, size: int = 112, progress: bool = True) -> Path:
    """Write ``n`` synthetic clips to ``out/clips/`` plus ``out/manifest.jsonl`` and ``out/dataset.json``.

    Clip ``i`` depends only on ``(seed, i)`` (and ``size``), so the output is identical whatever ``workers``.
    Returns ``out``.
    """
    if size < 16 or size % 2:
        raise ValueError(f"--size must be an even number >= 16 (H.264 yuv420p needs even sides), got {size}")
    if workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    out = Path(out)
    clips = out / "clips"
    clips.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    samples = annotate_dataset(n, seed)
    jobs = [(s.meta, str(out / s.video), size) for s in samples]

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n, desc="synth clips", unit="clip")
    try:
        if workers == 1:
            for job in jobs:
                _render_job(job)
                if bar:
                    bar.update(1)
        else:
            # spawn: safe even when the caller has threads running (torch, tokenizers)
            with mp.get_context("spawn").Pool(workers) as pool:
                for _ in pool.imap_unordered(_render_job, jobs, chunksize=4):
                    if bar:
                        bar.update(1)
    finally:
        if bar:
            bar.close()

    # Clips from an earlier, larger run in the same folder would be orphans: remove them.
    keep = {Path(s.video).name for s in samples}
    for p in clips.glob("synth*.mp4"):
        if p.name not in keep:
            p.unlink()
    for p in clips.glob("*.part.mp4"):
        p.unlink()

    info = {
        "name": "synthetic-emocue",
        "generator": "xemogpt.data.synth",
        "version": GENERATOR_VERSION,
        "seed": seed,
        "n": n,
        "size": size,
        "sample_rate": 16000,
        "emotions": list(EMOTIONS),
        "cue_vocabulary": {
            "visual": list(VISUAL_CUE_IDS),
            "auditory": list(AUDITORY_CUE_IDS),
            "emotional": list(EMOTIONAL_CUE_IDS),
        },
        "phrases": PHRASES,
        "core_cues": {
            e: {m: [[c for c, _ in slot] for slot in slots] for m, slots in d.items()} for e, d in CORE.items()
        },
        "splits": {sp: sum(s.split == sp for s in samples) for sp in ("train", "val", "test")},
        "seconds": round(time.time() - t0, 2),
        "workers": workers,
    }
    write_manifest(out, samples, info)
    return out


def default_workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))
