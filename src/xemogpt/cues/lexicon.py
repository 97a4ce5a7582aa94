"""Lexical evidence for the modality of a cue clause: word patterns per modality with weights.

Perceptual nouns and verbs (face, mouth, brows, gaze, nods / voice, pitch, tone, pauses, says) are strong
evidence; inference words (suggests, indicates, feels, likely, mood) mark the emotional (reasoning) modality;
emotion names are weaker evidence because descriptions use them for faces and voices too ("a joyful
expression", "a cheerful tone"). What is said (subtitle, words, says) counts as auditory, as in the published
EmoCue-360 cue files, whose auditory lists carry the subtitle (and whose metric then drops cues containing
"text"). Chinese descriptions (EMER's ``chinese`` column) count as visual or auditory evidence by substrings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


def _alt(words: str) -> str:
    return "|".join(w for w in words.split() if w)


VISUAL = _alt(r"""
    face faces facial mouth lips? lip smil\w* grin\w* smirk\w* frown\w* brows? eyebrows? eyes? eyelids? gaz\w*
    glanc\w* star(?:e|es|ed|ing) look(?:s|ed|ing)? head heads nod\w* chin jaws? cheeks? nose nostrils? forehead
    teeth tears? tearful cr(?:y|ies|ying) blink\w* squint\w* wink\w* wrinkl\w* expressions? posture shoulders?
    hands? fists? arms? fingers? gestur\w* lean\w* sit(?:s|ting)? sat stand(?:s|ing)? walk\w* wear\w* dress\w*
    cloth\w* background scene camera video clip visual\w* lighting room appearance body clench\w* pale flush\w*
    blush\w* watch\w* clap\w* jump\w* wip(?:e|es|ed|ing) bit(?:e|es|ing) hug\w* rubs? touch\w* backing away
    turn(?:s|ed|ing)? away corners? droop\w* slump\w* raised? raises? lowered? lowers? widen\w* narrow\w*
    screen frame frames features kitchen office desk car bench hallway door table sofa street suit jacket shirt
    coat hat glasses uniform
""")
AUDITORY = _alt(r"""
    voices? vocal\w* pitch\w* tone tones intonation loud\w* softly quiet\w* volume speak\w* spoke\w* speech says?
    said saying tells? told asks? asked asking repl(?:y|ies|ied) shout\w* yell\w* scream\w* whisper\w* mutter\w*
    mumbl\w* exclaim\w* sigh(?:s|ed|ing)? sob(?:s|bed|bing)? laugh\w* chuckl\w* giggl\w* gasp\w* trembl\w*
    tremor\w* tremulous paus\w*
    pace rate tempo rhythm hoarse husky breath\w* stutter\w* stammer\w* audio sound\w* acoustic\w* hear(?:s|d|ing)?
    subtitles? text words? sentences? dialogue utterances? accent monoton\w* cracks? cracking choked? booms?
    booming high-pitched low-pitched reads mentions? mentioned clipped drawl\w* drags? timbre articulat\w*
    prosod\w* syllables? loudness murmur\w* groan\w* whin\w* sniffl\w* raspy shrill nasal calls? called
""")
REASONING = _alt(r"""
    feels? feeling felt emotion\w* mood suggest\w* indicat\w* impl(?:y|ies|ied) infer\w* conclu\w* likely
    probabl\w* possibl\w* seems? seemingly reflect\w* conve(?:y|ys|yed|ying) signal\w* reveal\w* point(?:s)?\s+to
    point(?:s)?\s+toward attitude overall inner agree\w* contradict\w* mismatch\w* consistent conflict\w* because
    therefore hiding masking rather state mental sentiment towards? reaction response
""")
EMOTIONS = _alt(r"""
    happ(?:y|ier|iness) joy\w* delight\w* pleased glad cheer\w* content(?:ed|ment)? excit\w* thrill\w* amus\w*
    playful sad\w* sorrow\w* unhappy depress\w* lonel\w* heartbroken hurt disappoint\w* grie\w* ang(?:ry|er|rily)
    furious annoy\w* irritat\w* frustrat\w* rage resent\w* sarcas\w* surpris\w* shock\w* astonish\w* amaz\w*
    fear\w* afraid scared terrif\w* frighten\w* anxi\w* worr\w* nervous panic\w* disgust\w* repuls\w* contempt\w*
    neutral calm relaxed ease embarrass\w* shy guilt\w* asham\w* proud hope\w* confus\w* bored tense tension
    positive negative upset distress\w* relie\w* love affection\w* gratitude grateful jealous\w* envy helpless
    despair\w* anticipat\w* eager\w* emotional
""")
# Chinese has no spaces to find whole words in: these count as substrings.
VISUAL_ZH: tuple[str, ...] = (
    "面部", "表情", "眼睛", "眼神", "眉", "微笑", "嘴", "头", "视频", "画面", "目光", "皱眉", "脸",
)
AUDITORY_ZH: tuple[str, ...] = ("声音", "语气", "音调", "语调", "语速", "音量", "音频", "嗓音", "说话")

WEIGHTS = {"visual": 1.0, "auditory": 1.0, "reasoning": 1.5, "emotion_word": 0.6, "cross_modal": 1.0}
CAPS = {"visual": 3.0, "auditory": 3.0, "emotional": 4.0}

_PATTERNS = {name: re.compile(rf"\b(?:{words})\b", re.IGNORECASE)
             for name, words in (("visual", VISUAL), ("auditory", AUDITORY), ("reasoning", REASONING),
                                 ("emotion_word", EMOTIONS))}
# "sounds / looks / appears / seems + emotion" states an inference, not a percept.
_LINKING = re.compile(rf"\b(?:sounds?|looks?|appears?|seems?|becomes?|is|are|was|were|feels?)\s+(?:\w+\s+)?"
                      rf"(?:{EMOTIONS})\b", re.IGNORECASE)


@dataclass
class LexicalEvidence:
    """Weighted hits per modality for one clause, and the words behind them (for explanations)."""

    scores: dict[str, float]
    hits: dict[str, list[str]]


def lexical_evidence(text: str) -> LexicalEvidence:
    """Weighted, capped counts of distinct modality words in ``text`` (quoted speech is ignored)."""
    body = re.sub(r"\"[^\"]*\"|\u201c[^\u201d]*\u201d", " QUOTE ", text)
    hits = {name: sorted({m.group(0).lower() for m in rx.finditer(body)}) for name, rx in _PATTERNS.items()}
    hits["visual"] += [w for w in VISUAL_ZH if w in body]
    hits["auditory"] += [w for w in AUDITORY_ZH if w in body]
    linking = [m.group(0).lower() for m in _LINKING.finditer(body)]
    percepts = [h for h in hits["visual"] + hits["auditory"] if not re.fullmatch(r"sounds?|looks?", h)]
    if linking and not percepts:
        # "she sounds heartbroken" states an inference; "her voice sounds cheerful" stays a percept
        hits["auditory"] = [h for h in hits["auditory"] if not re.fullmatch(r"sounds?", h)]
        hits["visual"] = [h for h in hits["visual"] if not re.fullmatch(r"looks?", h)]
    else:
        linking = []
    if "QUOTE" in body:
        hits["auditory"] = sorted(set(hits["auditory"]) | {"<quoted speech>"})
    # "the face and voice agree": a statement about several modalities at once is an integration step
    cross_modal = bool(hits["visual"]) and bool(hits["auditory"]) and bool(hits["reasoning"])
    scores = {
        "visual": min(CAPS["visual"], WEIGHTS["visual"] * len(hits["visual"])),
        "auditory": min(CAPS["auditory"], WEIGHTS["auditory"] * len(hits["auditory"])),
        "emotional": min(CAPS["emotional"], WEIGHTS["reasoning"] * (len(hits["reasoning"]) + len(linking))
                         + WEIGHTS["emotion_word"] * min(2, len(hits["emotion_word"]))
                         + (WEIGHTS["cross_modal"] if cross_modal else 0.0)),
    }
    return LexicalEvidence(scores, {"visual": hits["visual"], "auditory": hits["auditory"],
                                    "emotional": hits["reasoning"] + linking + hits["emotion_word"]})
