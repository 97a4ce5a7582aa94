"""The cue vocabulary of the synthetic EmoCue data: canonical ids, their phrasings, and a parser back to ids.

A cue id is ``attribute=value`` (``mouth_corners=up``, ``pitch=high``, ``state=happy``). Intensity and onset are
*not* part of the id: they live in ``sample.meta`` and in optional modifiers inside the sentence ("slightly",
"part-way through", "at first, then it fades"). Every id has at least three phrasings; the generator picks one per
clip, and :func:`parse_description` maps any sentence of the bank (with or without its modifiers, and with small
wording slips) back to its id, so reproduced cues can be counted exactly.
"""

from __future__ import annotations

import difflib
import re
from functools import lru_cache

EMOTIONS: tuple[str, ...] = ("happy", "sad", "angry", "surprised", "fearful", "disgusted", "neutral")

# Canonical order: descriptions list cues of a modality in this order.
VISUAL_CUE_IDS: tuple[str, ...] = (
    "face=relaxed",
    "brows=raised",
    "brows=inner_raised",
    "brows=furrowed",
    "eyes=wide",
    "eyes=narrowed",
    "blinks=frequent",
    "gaze=down",
    "gaze=aside",
    "nose=wrinkled",
    "mouth_corners=up",
    "mouth_corners=down",
    "mouth=wide_open",
    "mouth=slightly_open",
    "mouth=stretched",
    "head=lowered",
    "head=turned_away",
    "head=nod",
    "head=shake",
)
AUDITORY_CUE_IDS: tuple[str, ...] = (
    "voice=even",
    "pitch=high",
    "pitch=low",
    "contour=rising",
    "contour=falling",
    "contour=lively",
    "loudness=loud",
    "loudness=soft",
    "rate=fast",
    "rate=slow",
    "tremor=present",
    "pauses=long",
)
TEXT_RELATIONS: tuple[str, ...] = ("agrees", "neutral", "contradicts")
EMOTIONAL_CUE_IDS: tuple[str, ...] = tuple(f"text={r}" for r in TEXT_RELATIONS) + tuple(f"state={e}" for e in EMOTIONS)
POLARITIES: tuple[str, ...] = ("positive", "negative", "neutral")

# Visual cues whose sentence takes an intensity adverb ({adv}) and an onset suffix. The others (mouth opening,
# blinks, gaze, nod, shake, the neutral face) are always rendered at one fixed strength from the start.
GRADED_VISUAL: frozenset[str] = frozenset(
    {
        "brows=raised",
        "brows=inner_raised",
        "brows=furrowed",
        "eyes=wide",
        "eyes=narrowed",
        "nose=wrinkled",
        "mouth_corners=up",
        "mouth_corners=down",
        "mouth=stretched",
        "head=lowered",
        "head=turned_away",
    }
)
TIMED_VISUAL: frozenset[str] = GRADED_VISUAL | {"gaze=down", "gaze=aside", "mouth=wide_open", "mouth=slightly_open"}

INTENSITY_WORDS: dict[str, str] = {"slight": "slightly ", "clear": ""}
ONSET_SUFFIXES: dict[str, str] = {"start": "", "part-way": " part-way through", "fading": " at first, then it fades"}
CONCLUSION = "Overall, the person most likely feels {emotion}."

# {adv}: intensity adverb ("slightly " or ""); {pol}: the polarity of the words. No base phrasing may contain a
# modifier word, or stripping modifiers would change its meaning.
PHRASES: dict[str, list[str]] = {
    "face=relaxed": [
        "The face stays relaxed.",
        "The face looks calm and still.",
        "No marked expression shows on the face.",
    ],
    "brows=raised": ["The brows {adv}rise.", "The eyebrows {adv}lift high.", "The brows are {adv}raised."],
    "brows=inner_raised": [
        "The inner ends of the brows {adv}rise.",
        "The inner brows {adv}lift upward.",
        "The brows {adv}slant up in the middle.",
    ],
    "brows=furrowed": [
        "The brows are {adv}lowered and drawn together.",
        "The brows {adv}knit into a frown.",
        "A frown {adv}pulls the brows down.",
    ],
    "eyes=wide": ["The eyes {adv}widen.", "The eyes open {adv}wide.", "The eyes are {adv}wide open."],
    "eyes=narrowed": ["The eyes {adv}narrow.", "The eyes are {adv}narrowed.", "The eyelids {adv}tighten."],
    "blinks=frequent": ["The person blinks often.", "There is frequent blinking.", "The eyes blink again and again."],
    "gaze=down": ["The gaze drops downward.", "The eyes look down.", "The person looks at the floor."],
    "gaze=aside": ["The gaze moves aside.", "The eyes look off to the side.", "The person glances sideways."],
    "nose=wrinkled": [
        "The nose {adv}wrinkles and the upper lip rises.",
        "The nose {adv}crinkles with the upper lip raised.",
        "A wrinkled nose {adv}lifts the upper lip.",
    ],
    "mouth_corners=up": [
        "The mouth corners {adv}turn up.",
        "A smile {adv}spreads across the face.",
        "The corners of the mouth {adv}lift into a smile.",
    ],
    "mouth_corners=down": [
        "The mouth corners {adv}turn down.",
        "The corners of the mouth {adv}droop.",
        "The lips {adv}curve downward.",
    ],
    "mouth=wide_open": ["The mouth opens wide.", "The jaw drops open.", "The mouth hangs wide open."],
    "mouth=slightly_open": [
        "The lips part a little.",
        "The mouth is a little open.",
        "A small gap opens between the lips.",
    ],
    "mouth=stretched": [
        "The lips {adv}stretch sideways.",
        "The mouth is {adv}pulled wide to the sides.",
        "The lips {adv}pull back tensely.",
    ],
    "head=lowered": ["The head {adv}hangs low.", "The head is {adv}bowed.", "The head {adv}tilts downward."],
    "head=turned_away": ["The head {adv}turns away.", "The face is {adv}turned aside.", "The person {adv}turns away."],
    "head=nod": ["The head nods.", "The person nods repeatedly.", "The head bobs up and down."],
    "head=shake": ["The head shakes.", "The person shakes the head.", "The head swings from side to side."],
    "voice=even": [
        "The voice stays even.",
        "The voice sounds steady and calm.",
        "The tone of voice is level and plain.",
    ],
    "pitch=high": ["The pitch is high.", "The voice sounds high-pitched.", "The person speaks in a high voice."],
    "pitch=low": ["The pitch is low.", "The voice sounds low and deep.", "The person speaks in a low voice."],
    "contour=rising": [
        "The pitch rises toward the end.",
        "The intonation climbs upward.",
        "The voice rises like a question.",
    ],
    "contour=falling": [
        "The pitch falls toward the end.",
        "The intonation drops downward.",
        "The voice trails downward.",
    ],
    "contour=lively": [
        "The intonation is lively.",
        "The pitch moves up and down a lot.",
        "The voice sounds animated and varied.",
    ],
    "loudness=loud": ["The voice is loud.", "The person speaks loudly.", "The speech is forceful and loud."],
    "loudness=soft": ["The voice is soft.", "The person speaks quietly.", "The speech is hushed and faint."],
    "rate=fast": ["The speech is fast.", "The person talks quickly.", "The words come out rapidly."],
    "rate=slow": ["The speech is slow.", "The person talks slowly.", "The words come out at a slow pace."],
    "tremor=present": ["The voice trembles.", "There is a tremor in the voice.", "The voice sounds shaky."],
    "pauses=long": [
        "There are long pauses.",
        "The speech breaks off in long pauses.",
        "Long silences interrupt the speech.",
    ],
    "text=agrees": [
        "The words sound {pol}, and the face and voice agree.",
        "The wording is {pol}, in line with the face and voice.",
        "What is said sounds {pol}, matching the face and voice.",
    ],
    "text=neutral": [
        "The words sound neutral, so the face and voice decide.",
        "The wording is neutral and reveals little.",
        "What is said is neutral in tone, adding little.",
    ],
    "text=contradicts": [
        "The words sound {pol}, yet the face and voice tell otherwise.",
        "The wording is {pol}, unlike the face and voice.",
        "What is said sounds {pol}, at odds with the face and voice.",
    ],
    "state=happy": [
        "The smile and bright, lively voice suggest happiness.",
        "The person seems happy, smiling and speaking brightly.",
        "Joy shows in the smile and the upbeat voice.",
    ],
    "state=sad": [
        "The drooping face and low, slow voice suggest sadness.",
        "The person seems sad, downcast and quiet.",
        "Sorrow shows in the downcast face and heavy voice.",
    ],
    "state=angry": [
        "The frown and loud, fast voice suggest anger.",
        "The person seems angry, glaring and speaking forcefully.",
        "Anger shows in the tense brows and harsh voice.",
    ],
    "state=surprised": [
        "The raised brows, open mouth and rising voice suggest surprise.",
        "The person seems surprised, wide-eyed and exclaiming.",
        "Astonishment shows in the wide eyes and open mouth.",
    ],
    "state=fearful": [
        "The wide eyes, stretched lips and shaky voice suggest fear.",
        "The person seems afraid, tense and trembling.",
        "Fright shows in the strained face and trembling voice.",
    ],
    "state=disgusted": [
        "The wrinkled nose and low, falling voice suggest disgust.",
        "The person seems disgusted, recoiling from something.",
        "Revulsion shows in the wrinkled nose and turned head.",
    ],
    "state=neutral": [
        "The calm face and even voice suggest a neutral state.",
        "The person seems calm, showing no strong feeling.",
        "Composure shows in the still face and level voice.",
    ],
}

# The emotional sentences of a clip perceived through one modality only ("video": the face, "audio": the voice), in
# the same three phrasings as PHRASES (a description must not cite a modality the model did not get).
PARTIAL_PHRASES: dict[tuple[str, str], list[str]] = {
    ("text=agrees", "video"): ["The words sound {pol}, and the face agrees.", "The wording is {pol}, in line with the "
                               "face.", "What is said sounds {pol}, matching the face."],
    ("text=agrees", "audio"): ["The words sound {pol}, and the voice agrees.", "The wording is {pol}, in line with the "
                               "voice.", "What is said sounds {pol}, matching the voice."],
    ("text=neutral", "video"): ["The words sound neutral, so the face decides.", "The wording is neutral and reveals "
                                "little.", "What is said is neutral in tone, adding little."],
    ("text=neutral", "audio"): ["The words sound neutral, so the voice decides.", "The wording is neutral and reveals "
                                "little.", "What is said is neutral in tone, adding little."],
    ("text=contradicts", "video"): ["The words sound {pol}, yet the face tells otherwise.", "The wording is {pol}, "
                                    "unlike the face.", "What is said sounds {pol}, at odds with the face."],
    ("text=contradicts", "audio"): ["The words sound {pol}, yet the voice tells otherwise.", "The wording is {pol}, "
                                    "unlike the voice.", "What is said sounds {pol}, at odds with the voice."],
    ("state=happy", "video"): ["The smile suggests happiness.", "The person seems happy, smiling.",
                               "Joy shows in the smile."],
    ("state=happy", "audio"): ["The bright, lively voice suggests happiness.", "The person seems happy, speaking "
                               "brightly.", "Joy shows in the upbeat voice."],
    ("state=sad", "video"): ["The drooping face suggests sadness.", "The person seems sad and downcast.",
                             "Sorrow shows in the downcast face."],
    ("state=sad", "audio"): ["The low, slow voice suggests sadness.", "The person seems sad and quiet.",
                             "Sorrow shows in the heavy voice."],
    ("state=angry", "video"): ["The frown suggests anger.", "The person seems angry, glaring.",
                               "Anger shows in the tense brows."],
    ("state=angry", "audio"): ["The loud, fast voice suggests anger.", "The person seems angry, speaking forcefully.",
                               "Anger shows in the harsh voice."],
    ("state=surprised", "video"): ["The raised brows and open mouth suggest surprise.", "The person seems surprised, "
                                   "wide-eyed.", "Astonishment shows in the wide eyes and open mouth."],
    ("state=surprised", "audio"): ["The rising voice suggests surprise.", "The person seems surprised, exclaiming.",
                                   "Astonishment shows in the rising voice."],
    ("state=fearful", "video"): ["The wide eyes and stretched lips suggest fear.", "The person seems afraid and tense.",
                                 "Fright shows in the strained face."],
    ("state=fearful", "audio"): ["The shaky voice suggests fear.", "The person seems afraid, trembling.",
                                 "Fright shows in the trembling voice."],
    ("state=disgusted", "video"): ["The wrinkled nose suggests disgust.", "The person seems disgusted, recoiling from "
                                   "something.", "Revulsion shows in the wrinkled nose and turned head."],
    ("state=disgusted", "audio"): ["The low, falling voice suggests disgust.", "The person seems disgusted.",
                                   "Revulsion shows in the low, falling voice."],
    ("state=neutral", "video"): ["The calm face suggests a neutral state.", "The person seems calm, showing no strong "
                                 "feeling.", "Composure shows in the still face."],
    ("state=neutral", "audio"): ["The even voice suggests a neutral state.", "The person seems calm, showing no "
                                 "strong feeling.", "Composure shows in the level voice."],
}


def partial_phrase(cue_id: str, modality: str, choice: int, *, polarity: str | None = None) -> str:
    """The sentence of emotional cue ``cue_id`` for a clip perceived through ``modality`` (video or audio) only."""
    templates = PARTIAL_PHRASES[(cue_id, modality)]
    return templates[choice % len(templates)].replace("{pol}", polarity or "neutral")


# Which word forms name which emotion in free text (longest forms first so "fearful" wins over "fear").
EMOTION_WORDS: dict[str, tuple[str, ...]] = {
    "happy": ("happiness", "happily", "happy", "joyful", "joy", "glad", "cheerful", "delighted", "pleased"),
    "sad": ("sadness", "sadly", "sad", "sorrowful", "sorrow", "unhappy", "downcast", "melancholy", "grief"),
    "angry": ("angrily", "angry", "anger", "furious", "fury", "rage", "irritated", "annoyed", "mad"),
    "surprised": ("surprised", "surprise", "astonished", "astonishment", "amazed", "amazement", "shocked"),
    "fearful": ("fearful", "fear", "afraid", "scared", "frightened", "fright", "terrified", "anxious", "anxiety"),
    "disgusted": ("disgusted", "disgust", "revulsion", "repulsed", "revolted", "disgusting", "grossed"),
    "neutral": ("neutral", "calm", "calmness", "composed", "composure", "indifferent", "impassive"),
}


def modality_of(cue_id: str) -> str:
    """``visual``, ``auditory`` or ``emotional`` for a canonical cue id."""
    if cue_id in VISUAL_CUE_IDS:
        return "visual"
    if cue_id in AUDITORY_CUE_IDS:
        return "auditory"
    if cue_id in EMOTIONAL_CUE_IDS:
        return "emotional"
    raise KeyError(f"unknown synthetic cue id {cue_id!r}; known ids are listed in xemogpt.data.synth.cues")


def phrase(
    cue_id: str, choice: int, *, intensity: str | None = None, onset: str | None = None, polarity: str | None = None
) -> str:
    """The sentence for ``cue_id`` using phrasing number ``choice`` and the given modifiers."""
    if cue_id not in PHRASES:
        raise KeyError(f"no phrasings for cue id {cue_id!r}")
    template = PHRASES[cue_id][choice % len(PHRASES[cue_id])]
    text = template.replace("{adv}", INTENSITY_WORDS[intensity or "clear"]).replace("{pol}", polarity or "neutral")
    suffix = ONSET_SUFFIXES[onset or "start"]
    return text[:-1] + suffix + "." if suffix else text


_MODIFIER_PATTERNS = [
    r"\bat first,? then (?:it )?fades?\b",
    r"\bpart[- ]way(?: through)?\b",
    r"\b(?:slightly|clearly|a bit|somewhat|strongly)\b",
]


def normalize(sentence: str) -> str:
    """Lower-case, drop intensity/onset modifiers and punctuation, collapse spaces."""
    s = sentence.lower().replace("’", "'")
    for pat in _MODIFIER_PATTERNS:
        s = re.sub(pat, " ", s)
    s = re.sub(r"[^a-z' ]+", " ", s)
    return " ".join(s.split())


@lru_cache(maxsize=1)
def _bank() -> tuple[dict[str, str], list[tuple[str, str, frozenset[str]]]]:
    """Normalized phrasing -> id (exact table) and a list for fuzzy search."""
    exact: dict[str, str] = {}
    partial = {}
    for (cue_id, _), templates in PARTIAL_PHRASES.items():
        partial.setdefault(cue_id, []).extend(templates)
    for cue_id, templates in [*PHRASES.items(), *partial.items()]:
        for tpl in templates:
            pols = POLARITIES if "{pol}" in tpl else ("neutral",)
            for pol in pols:
                key = normalize(tpl.replace("{adv}", "").replace("{pol}", pol))
                other = exact.setdefault(key, cue_id)
                if other != cue_id:  # a wording shared by two ids would make parsing ambiguous
                    raise AssertionError(f"phrase bank clash: {key!r} is used by {other} and {cue_id}")
    fuzzy = [(k, v, frozenset(k.split())) for k, v in exact.items()]
    return exact, fuzzy


def match_sentence(sentence: str, threshold: float = 0.8) -> str | None:
    """The cue id a sentence states: exact match after normalization, else the best fuzzy match >= threshold."""
    key = normalize(sentence)
    if not key:
        return None
    exact, fuzzy = _bank()
    if key in exact:
        return exact[key]
    words = frozenset(key.split())
    # Cheap word-overlap shortlist, then character-level similarity on the few best.
    shortlist = sorted(fuzzy, key=lambda e: -len(words & e[2]) / len(words | e[2]))[:6]
    best, best_score = None, threshold
    for text, cue_id, _ in shortlist:
        score = difflib.SequenceMatcher(None, key, text, autojunk=False).ratio()
        if score >= best_score:
            best, best_score = cue_id, score
    return best


def split_sentences(text: str) -> list[str]:
    """Split a paragraph into sentences on . ! ? (keeps "high-pitched" and commas intact)."""
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", text.strip()) if s.strip()]


_CONCLUSION_RE = re.compile(r"\boverall\b.*\b(?:feels?|feeling|is|seems?)\s+(?:[a-z]+\s+){0,2}?([a-z]+)\s*[.!]?\s*$")


def parse_description(text: str, threshold: float = 0.8) -> dict:
    """Cue ids and the concluded emotion of a description.

    Returns ``{"visual": [...], "auditory": [...], "emotional": [...], "emotion": str | None}``; ids appear in
    the order their sentences appear (duplicates dropped), sentences that match nothing are ignored.
    """
    out: dict = {"visual": [], "auditory": [], "emotional": [], "emotion": None}
    for sentence in split_sentences(text):
        m = _CONCLUSION_RE.search(sentence.lower())
        if m:
            emo = _emotion_of_word(m.group(1))
            if emo is not None:
                out["emotion"] = emo
                continue
        cue_id = match_sentence(sentence, threshold)
        if cue_id is not None:
            mod = modality_of(cue_id)
            if cue_id not in out[mod]:
                out[mod].append(cue_id)
    if out["emotion"] is None:
        out["emotion"] = emotion_from_text(text)
    return out


@lru_cache(maxsize=1)
def _word_table() -> dict[str, str]:
    return {w: e for e, words in EMOTION_WORDS.items() for w in words}


def _emotion_of_word(word: str, emotions: tuple[str, ...] = EMOTIONS) -> str | None:
    emo = _word_table().get(word.lower())
    return emo if emo in emotions else None


# Sentences about the wording ("the words sound neutral") name a polarity, not the speaker's state.
_ABOUT_WORDS_RE = re.compile(r"\b(words?|wording|what is said|subtitle|says?|said)\b")


def emotion_from_text(text: str, emotions: tuple[str, ...] = EMOTIONS) -> str | None:
    """The emotion a free-text description concludes: the last emotion named (any word form), or None.

    Sentences about what is *said* are only used when no other sentence names an emotion, so "the words sound
    neutral" does not override a concluded "sadness" that comes earlier.
    """
    table = {w: e for w, e in _word_table().items() if e in emotions}
    for e in emotions:  # callers may pass their own label set; its labels are their own word forms
        table.setdefault(e.lower(), e)
    pattern = re.compile(r"\b(" + "|".join(sorted(map(re.escape, table), key=len, reverse=True)) + r")\b")
    sentences = split_sentences(text.lower())
    for about_words_ok in (False, True):
        found = None
        for s in sentences:
            if not about_words_ok and _ABOUT_WORDS_RE.search(s):
                continue
            for m in pattern.finditer(s):
                found = table[m.group(1)]
        if found is not None:
            return found
    return None
