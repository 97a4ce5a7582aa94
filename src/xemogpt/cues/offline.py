"""An offline cue extractor: clause splitting, then modality assignment by lexical rules + MiniLM prototypes.

For each clause of a description (see :mod:`xemogpt.cues.splitting`) four kinds of evidence are added per
modality (visual / auditory / emotional):

* lexical: weighted modality words (:mod:`xemogpt.cues.lexicon`);
* similarity: the mean of the top-3 cosine similarities between the clause and a set of prototype cue
  sentences per modality, with the bundled all-MiniLM-L6-v2, centred over the three modalities;
* context: the section the paragraph announced ("In the audio, ..."), stronger in the announcing sentence;
  inference clauses (", indicating that ...") lean emotional, clauses of conclusion sentences ("Overall, ...",
  "Based on ..., ...") twice as much; a clause with no evidence of its
  own leans to the previous clause of its sentence (pronouns: "... and it trembles");
* the clause goes to the modality with the highest total.

Every clause of a call is encoded in one batched pass (prototypes once per extractor).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from xemogpt.cues.base import MODALITIES, CueExtractor, Cues, empty_cues
from xemogpt.cues.lexicon import lexical_evidence
from xemogpt.cues.splitting import Clause, split_description
from xemogpt.registry import register
from xemogpt.utils.sentence import SentenceEncoder, encode_texts

# Written for this extractor (generic phrasings, not taken from any evaluation description).
PROTOTYPES: dict[str, tuple[str, ...]] = {
    "visual": (
        "The person's facial expression changes.",
        "The corners of the lips curve upward.",
        "Her eyebrows move closer together.",
        "His eyes open wider than usual.",
        "She keeps her gaze on the floor.",
        "He tilts his head to one side.",
        "The man is wearing a dark jacket in a bright room.",
        "He makes a gesture with his hands.",
        "The character's posture is stiff and upright.",
        "A woman is seated next to a window.",
        "His lips tighten into a thin line.",
        "She blinks rapidly and looks away.",
        "There are tears in his eyes.",
        "The camera shows a close-up of the face.",
    ),
    "auditory": (
        "The speaker's voice becomes louder.",
        "Her intonation rises at the end of the sentence.",
        "He talks at a rapid speaking rate.",
        "The tone of voice is gentle and low.",
        "There are long silences between phrases.",
        "The sound of laughter can be heard.",
        "She speaks in a shaky, unsteady voice.",
        "His pronunciation is slow and deliberate.",
        "The volume drops to a murmur.",
        "The character says a line of dialogue.",
        "The subtitle content is a question.",
        "He raises his voice while talking.",
        "A sigh is audible before she answers.",
        "The pitch of the voice is high.",
    ),
    "emotional": (
        "The person is experiencing a strong emotion.",
        "This indicates that she is in a good mood.",
        "He is probably feeling upset.",
        "These signs reveal her inner state.",
        "The character's emotional state is negative.",
        "She seems to be pleased with the situation.",
        "It can be inferred that he is nervous.",
        "The overall emotion is one of sorrow.",
        "His reaction reflects dissatisfaction.",
        "All the cues point to the same feeling.",
        "The different modalities tell a consistent story.",
        "She is most likely frightened.",
        "He might be hiding his real feelings.",
        "This shows his attitude toward the other person.",
    ),
}


@dataclass
class ClauseDecision:
    """How one clause was assigned (for ``explain`` and debugging)."""

    clause: Clause
    modality: str
    scores: dict[str, float]
    lexical: dict[str, float]
    similarity: dict[str, float]
    hits: dict[str, list[str]]


@register("cue_extractor", "offline")
class OfflineCueExtractor(CueExtractor):
    """Rule + MiniLM-prototype cue extractor that needs no network.

    Args:
        encoder: anything with ``encode(list[str]) -> (N, D)``; None loads the bundled all-MiniLM-L6-v2 lazily.
        use_similarity: add the prototype-similarity evidence (False: lexical rules and context only).
        similarity_weight: scale of the centred top-3 prototype similarity.
        section_weight: bonus for the section announced in the same sentence (inherited sections get 60%).
        reasoning_weight: bonus towards emotional for an inference clause (doubled in a conclusion sentence).
        top_k: prototypes averaged per modality.
        batch_size: sentences per encoder call.
    """

    def __init__(
        self,
        encoder: SentenceEncoder | None = None,
        use_similarity: bool = True,
        similarity_weight: float = 6.0,
        section_weight: float = 1.0,
        reasoning_weight: float = 1.2,
        top_k: int = 3,
        batch_size: int = 128,
    ) -> None:
        self._encoder = encoder
        self.use_similarity = use_similarity
        self.similarity_weight = similarity_weight
        self.section_weight = section_weight
        self.reasoning_weight = reasoning_weight
        self.top_k = top_k
        self.batch_size = batch_size
        self._proto: dict[str, np.ndarray] | None = None

    @property
    def encoder(self) -> SentenceEncoder:
        if self._encoder is None:
            from xemogpt.utils.sentence import load_minilm

            self._encoder = load_minilm()
        return self._encoder

    def _prototypes(self) -> dict[str, np.ndarray]:
        if self._proto is None:
            texts = [t for m in MODALITIES for t in PROTOTYPES[m]]
            emb = _unit(encode_texts(self.encoder, texts, self.batch_size))
            out, k = {}, 0
            for m in MODALITIES:
                out[m] = emb[k:k + len(PROTOTYPES[m])]
                k += len(PROTOTYPES[m])
            self._proto = out
        return self._proto

    def _similarities(self, clauses: list[Clause]) -> np.ndarray:
        """(N, 3) centred top-k prototype similarity per clause and modality."""
        if not self.use_similarity or not clauses:
            return np.zeros((len(clauses), len(MODALITIES)), dtype=np.float64)
        protos = self._prototypes()
        uniq = list(dict.fromkeys(c.raw for c in clauses))
        emb = _unit(encode_texts(self.encoder, uniq, self.batch_size))
        row = {t: i for i, t in enumerate(uniq)}
        cols = []
        for m in MODALITIES:
            sim = emb @ protos[m].T  # (U, P)
            k = min(self.top_k, sim.shape[1])
            cols.append(np.sort(sim, axis=1)[:, -k:].mean(axis=1))
        table = np.stack(cols, axis=1).astype(np.float64)  # (U, 3)
        table -= table.mean(axis=1, keepdims=True)
        return table[[row[c.raw] for c in clauses]]

    def analyse(self, texts: Sequence[str]) -> list[list[ClauseDecision]]:
        """Split every text and decide each clause's modality; returns the decisions with their evidence."""
        per_text = [split_description(t or "") for t in texts]
        flat = [c for cl in per_text for c in cl]
        sims = self._similarities(flat)
        out: list[list[ClauseDecision]] = []
        k = 0
        for clauses in per_text:
            decisions: list[ClauseDecision] = []
            for c in clauses:
                decisions.append(self._decide(c, sims[k], decisions[-1] if decisions else None))
                k += 1
            out.append(decisions)
        return out

    def _decide(self, c: Clause, sim: np.ndarray, prev: ClauseDecision | None) -> ClauseDecision:
        lex = lexical_evidence(c.raw)
        scores = {m: lex.scores[m] + self.similarity_weight * float(sim[i]) for i, m in enumerate(MODALITIES)}
        if c.section is not None:
            scores[c.section] += self.section_weight * (1.0 if c.section_here else 0.6)
        scores["emotional"] += self.reasoning_weight * c.reasoning
        if prev is not None and prev.clause.sentence == c.sentence and max(lex.scores.values()) == 0:
            scores[prev.modality] += 0.4
        modality = max(MODALITIES, key=lambda m: scores[m])
        return ClauseDecision(c, modality, scores, lex.scores,
                              {m: float(sim[i]) for i, m in enumerate(MODALITIES)}, lex.hits)

    def extract(self, texts: Sequence[str]) -> list[Cues]:
        results: list[Cues] = []
        for decisions in self.analyse(list(texts)):
            cues = empty_cues()
            for d in decisions:
                if d.clause.text not in cues[d.modality]:
                    cues[d.modality].append(d.clause.text)
            results.append(cues)
        return results

    def explain(self, text: str) -> list[dict[str, Any]]:
        """One row per clause: cue, modality, total and per-evidence scores (handy when tuning a recipe)."""
        return [
            {"cue": d.clause.text, "modality": d.modality, "section": d.clause.section,
             "reasoning": d.clause.reasoning, "scores": {m: round(v, 3) for m, v in d.scores.items()},
             "lexical": d.lexical, "similarity": {m: round(v, 3) for m, v in d.similarity.items()}, "hits": d.hits}
            for d in self.analyse([text])[0]
        ]


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
