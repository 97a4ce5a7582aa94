"""Cue lists from a free-text description, for datasets that ship descriptions but no cues (EMER v1/v2).

Sources: the project's offline cue extractor (``cue_extractor`` ``offline`` in the registry, when installed), the
project's sentence splitter with each sentence filed under ``visual``/``auditory`` by the offline extractor's
lexicon alone (:mod:`xemogpt.cues.lexicon`) and everything else under ``emotional``, or a ready extractor object
(``--cues openai``: the LLM extractor), whose None result for a sample means its extraction failed and the sample
is to be skipped.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from xemogpt.cues.lexicon import lexical_evidence
from xemogpt.cues.splitting import split_sentences
from xemogpt.data.schema import MODALITIES

CUE_MODES: tuple[str, ...] = ("auto", "offline", "sentences")


def sentence_modality(sentence: str) -> str:
    """The modality whose lexical evidence (:func:`xemogpt.cues.lexicon.lexical_evidence`, English words and Chinese
    substrings) is strictly the strongest, else ``emotional``: a sentence naming as much seen as heard, or nothing
    of either, states a conclusion."""
    scores = lexical_evidence(sentence).scores
    best = max(scores, key=scores.get)
    if best != "emotional" and all(scores[best] > v for m, v in scores.items() if m != best):
        return best
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
