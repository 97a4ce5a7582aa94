"""Cues: their vocabulary, the one sentence splitter, the modality lexicon, and extractors (text -> cues per modality).

Importing this package registers the extractors under kind ``cue_extractor``: ``offline`` (clause splitting,
lexical rules and MiniLM prototypes, no network) and ``openai`` (any OpenAI-compatible chat endpoint, JSON output,
retries and a disk cache). Both implement ``extract(texts: list[str]) -> list[dict[str, list[str]]]``.
"""

from xemogpt.cues.base import MODALITIES, CueExtractor, normalize_cues
from xemogpt.cues.offline import OfflineCueExtractor
from xemogpt.cues.openai_compat import LLMExtractorError, OpenAICueExtractor
from xemogpt.cues.splitting import split_clauses, split_description, split_sentences

__all__ = ["MODALITIES", "CueExtractor", "LLMExtractorError", "OfflineCueExtractor", "OpenAICueExtractor",
           "normalize_cues", "split_clauses", "split_description", "split_sentences"]
