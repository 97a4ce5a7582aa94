"""Cue lists from a free-text description, for datasets that ship descriptions but no cues (EMER v1/v2).

Sources: the project's offline cue extractor (``cue_extractor`` ``offline`` in the registry, when installed), a
sentence splitter that files each sentence under ``visual``/``auditory`` by a small keyword rule and everything
else under ``emotional``, or a ready extractor object (``--cues openai``: the LLM extractor), whose None result for a
sample means its extraction failed and the sample is to be skipped.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable

from xemogpt.data.schema import MODALITIES

CUE_MODES: tuple[str, ...] = ("auto", "offline", "sentences")

_SENTENCE_END = re.compile(r"(?<=[.!?。！？；;])\s+|(?<=[。！？；])")
# Words that make a sentence about what is seen or heard. Whole words for English, substrings for Chinese.
_VISUAL_EN = (
    "face", "facial", "expression", "expressions", "eye", "eyes", "eyebrow", "eyebrows", "brow", "brows", "frown",
    "frowning", "frowns", "smile", "smiles", "smiling", "mouth", "lips", "lip", "gaze", "gazes", "looks", "glance",
    "head", "nods", "nod", "nodding", "shakes", "tears", "posture", "gesture", "gestures", "video", "scene",
    "appearance", "blink", "blinks", "blinking", "cheeks", "chin", "forehead", "stares", "staring",
)
_AUDIO_EN = (
    "voice", "voices", "tone", "tones", "pitch", "intonation", "speech", "speaking", "speaks", "speed", "pace",
    "volume", "loud", "loudly", "soft", "softly", "audio", "sound", "sounds", "acoustic", "trembling", "tremble",
    "trembles", "sigh", "sighs", "laughs", "laughter", "shouting", "shouts", "whisper", "whispers", "stutters",
    "pauses",
)
_VISUAL_ZH = ("面部", "表情", "眼睛", "眼神", "眉", "微笑", "嘴", "头", "视频", "画面", "目光", "皱眉", "脸")
_AUDIO_ZH = ("声音", "语气", "音调", "语调", "语速", "音量", "音频", "嗓音", "说话")
_WORD = re.compile(r"[a-z]+")


def split_sentences(text: str) -> list[str]:
    """Sentences of an English or Chinese paragraph, stripped, empty ones dropped."""
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s and s.strip()]


def sentence_modality(sentence: str) -> str:
    """``visual`` or ``auditory`` when the sentence names more seen than heard things (or vice versa), else
    ``emotional`` (conclusions, and sentences about what is said)."""
    words = set(_WORD.findall(sentence.lower()))
    v = len(words & set(_VISUAL_EN)) + sum(k in sentence for k in _VISUAL_ZH)
    a = len(words & set(_AUDIO_EN)) + sum(k in sentence for k in _AUDIO_ZH)
    if v > a:
        return "visual"
    if a > v:
        return "auditory"
    return "emotional"


def sentence_cues(text: str) -> dict[str, list[str]]:
    """Cues by modality from the sentences of ``text``."""
    cues: dict[str, list[str]] = {m: [] for m in MODALITIES}
    for s in split_sentences(text):
        cues[sentence_modality(s)].append(s)
    return cues


def offline_extractor() -> object | None:
    """The registered ``offline`` cue extractor, built with its defaults, or None when it is not installed."""
    from xemogpt import registry

    try:
        importlib.import_module("xemogpt.cues")
    except ImportError:
        return None
    try:
        entry = registry.get("cue_extractor", "offline")
    except (registry.RegistryError, ImportError):
        return None
    return entry.obj()


CueFunction = Callable[..., list[dict[str, list[str]] | None]]


def cue_function(mode: str | object) -> tuple[str, CueFunction]:
    """(resolved mode, function mapping descriptions - and optionally their sample ids - to cue dicts) for
    ``--cues auto|offline|sentences``, or for an extractor object (anything with ``extract``).

    Raises:
        ValueError: ``offline`` was asked for but no offline cue extractor is registered.
    """
    if hasattr(mode, "extract"):
        extractor = mode

        def run_named(texts: list[str], names: list[str] | None = None) -> list[dict[str, list[str]] | None]:
            out = extractor.extract(texts, names=names)  # type: ignore[attr-defined]
            return [None if d is None else {m: list(d.get(m, [])) for m in MODALITIES} for d in out]

        return str(getattr(extractor, "model", type(extractor).__name__)), run_named
    if mode not in CUE_MODES:
        raise ValueError(f"--cues must be one of {', '.join(CUE_MODES)}, got {mode!r}")
    if mode in ("auto", "offline"):
        extractor = offline_extractor()
        if extractor is not None:

            def run(texts: list[str], names: list[str] | None = None) -> list[dict[str, list[str]]]:
                out = extractor.extract(texts)  # type: ignore[attr-defined]
                return [{m: list(d.get(m, [])) for m in MODALITIES} for d in out]

            return "offline", run
        if mode == "offline":
            raise ValueError(
                "--cues offline: no 'offline' cue_extractor is registered (xemogpt.cues is missing or failed to "
                "import); use --cues sentences"
            )
    return "sentences", lambda texts, names=None: [sentence_cues(t) for t in texts]
