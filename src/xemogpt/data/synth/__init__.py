"""Synthetic EmoCue clips: drawn faces and voice-like audio whose emotional cues are known exactly.

The data proves, on a CPU and offline, that cue-level perception is learned: every cue in a clip's reference list
is clearly perceivable in the media *as the model sees it* (16 uniformly sampled frames at 64x64, a log-mel
spectrogram), and every cue that is not listed stays at its neutral setting. See ``README.md`` next to this file for
the design (cue table, magnitudes, text relations). The cue vocabulary the descriptions are written in (ids,
phrasings, the parser back to ids) is not the generator's own: it lives in :mod:`xemogpt.cues.vocabulary`, so that
evaluation reads descriptions without importing the generator.

Python API::

    from xemogpt.data.synth import generate
    from xemogpt.cues.vocabulary import parse_description
    root = generate("data/synth", n=1000, seed=0)           # clips/*.mp4, manifest.jsonl, dataset.json
    parse_description(sample.description)                   # -> {"visual": [...ids], ..., "emotion": "happy"}

Command line: ``xemogpt data synth --out DIR --n N --seed S``.
"""

from xemogpt.data.synth.annotate import (  # noqa: F401
    CORE,
    GENERATOR_VERSION,
    assign_emotions,
    assign_splits,
    draw_annotation,
)
from xemogpt.data.synth.generate import annotate_dataset, generate, render_clip  # noqa: F401

__all__ = [
    "CORE",
    "GENERATOR_VERSION",
    "annotate_dataset",
    "assign_emotions",
    "assign_splits",
    "draw_annotation",
    "generate",
    "render_clip",
]
