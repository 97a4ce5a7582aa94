"""The cue-extractor interface shared by the offline and the LLM extractor."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any

MODALITIES: tuple[str, ...] = ("visual", "auditory", "emotional")
Cues = dict[str, list[str]]

# Keys that LLMs use for the three lists, mapped to ours.
_KEY_ALIASES = {
    "visual": "visual", "vision": "visual", "video": "visual", "visual_cues": "visual", "visual cues": "visual",
    "auditory": "auditory", "audio": "auditory", "acoustic": "auditory", "auditory_cues": "auditory",
    "auditory cues": "auditory", "sound": "auditory",
    "emotional": "emotional", "emotion": "emotional", "emotions": "emotional", "affective": "emotional",
    "emotional_cues": "emotional", "emotional cues": "emotional",
}


def empty_cues() -> Cues:
    return {m: [] for m in MODALITIES}


def normalize_cues(obj: Any, where: str = "cues", keep_missing: bool = False, strict: bool = False) -> Cues:
    """Coerce ``{"Visual": [...], "audio": "one cue", ...}`` into ``{"visual": [...], "auditory": [...],
    "emotional": [...]}`` with lists of non-empty strings; unknown keys are ignored, missing ones become ``[]``.

    With ``keep_missing`` a modality the object does not name stays absent (in modality order), so that
    EmoCue-360's rule for a prediction without an ``emotional`` key (0, counted) applies as it does to the
    published LLM-extracted files. With ``strict`` a list of anything but sentences (e.g. ``[{"cue": ...}]``)
    under a known key raises ValueError instead of being dropped."""
    if not isinstance(obj, Mapping):
        raise ValueError(f"{where}: expected a JSON object with visual/auditory/emotional lists, got "
                         f"{type(obj).__name__}")
    out = empty_cues()
    seen: set[str] = set()
    for key, value in obj.items():
        m = _KEY_ALIASES.get(str(key).strip().lower())
        if m is None:
            continue
        seen.add(m)
        if strict and not (value is None or isinstance(value, str) or (
                isinstance(value, (list, tuple)) and all(isinstance(v, (str, int, float)) for v in value))):
            raise ValueError(f"{where}: {key!r} is not a list of sentences ({str(value)[:80]!r})")
        items = [value] if isinstance(value, str) else list(value or []) if isinstance(value, (list, tuple)) else []
        out[m].extend(str(v).strip() for v in items if isinstance(v, (str, int, float)) and str(v).strip())
    if keep_missing:
        return {m: v for m, v in out.items() if m in seen}
    return out


class CueExtractor(abc.ABC):
    """Turns free-text descriptions into cue lists per modality.

    ``extract(texts)`` is batched: it returns one ``{"visual": [...], "auditory": [...], "emotional": [...]}``
    per text, in order.
    """

    @abc.abstractmethod
    def extract(self, texts: Sequence[str]) -> list[Cues]:
        ...

    def extract_one(self, text: str) -> Cues:
        return self.extract([text])[0]

    def __call__(self, texts: Sequence[str]) -> list[Cues]:
        return self.extract(texts)
