"""Sentence and clause splitting of EMER-style descriptions into single-fact cue candidates.

EMER / AffectGPT paragraphs are built from section openers ("In the video, ...", "In the audio, ...", "In the
text, the subtitle says, "..."", "Overall, ..."), sentences that pack two or three facts ("the brows are raised
and the eyes widen, with the mouth open"), and reasoning tails (", indicating that ..."). This module turns a
paragraph into :class:`Clause` objects that carry the section the sentence belongs to and whether the clause is
a reasoning step; :mod:`xemogpt.cues.offline` then decides their modality.

Quoted speech is masked before any splitting, so subtitles such as "Then let's meet, okay? Well, goodbye." stay
in one piece.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SECTIONS = ("visual", "auditory", "emotional")

_ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "prof", "st", "vs", "etc", "e.g", "i.e", "approx", "no", "fig"}
_OPEN_QUOTES = {'"': '"', "\u201c": "\u201d"}


@dataclass
class Clause:
    """One cue candidate.

    Attributes:
        text: the cleaned cue sentence (capitalised, ending with a full stop, quotes restored).
        raw: the clause as split, before cleaning (keeps connectives such as "indicating that").
        section: the modality announced by the paragraph so far ("In the audio, ..."), or None.
        section_here: True when the announcement is in this very sentence (a stronger hint).
        reasoning: 0 for a plain clause, 1 for an inference ("indicating ...", "we can infer that ..."), 2 for a
            clause of a sentence opened as a conclusion ("Overall, ...", "Based on ..., ...").
        sentence: index of the sentence in the description; position: index of the clause in its sentence.
    """

    text: str
    raw: str
    section: str | None
    section_here: bool
    reasoning: int
    sentence: int
    position: int


# ---------------------------------------------------------------------------------------------------- sentences
_CJK_ENDS = "\u3002\uff01\uff1f\uff1b"  # 。！？； end a sentence with or without a space after them
_CJK_CLOSERS = "\u201d\u2019\u300d\u300f\uff09)"  # ”’」』）) right after one of them stay in its sentence


def split_sentences(text: str) -> list[str]:
    """Split a paragraph into sentences, the project's one splitter (cue extraction, evaluation, imports).

    English sentences end at . ! ? followed by a space and a capital, digit or quote (not after abbreviations
    such as "Dr.", not inside numbers such as "3.5"), or by a Chinese character; Chinese ones end at 。！？；
    whatever follows. Nothing ends inside quotes, except at a closing quote right after an end mark
    (``says, "Goodbye." Then ...``, ``他说：“好。”然后``). Whitespace runs, line breaks included, become one space.
    """
    text = re.sub(r"\s+", " ", text or "").strip()
    out: list[str] = []
    start = 0
    close: str | None = None  # the closing quote we are waiting for
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if close is None and ch in _OPEN_QUOTES:
            close = _OPEN_QUOTES[ch]
        elif close is not None and ch == close:
            close = None
            # `says, "Goodbye." Then ...`: a sentence may end on the closing quote
            prev = text[i - 1] if i > 0 else ""
            if prev in _CJK_ENDS or (prev in ".!?" and _starts_new_sentence(text, i + 1)):
                out.append(text[start:i + 1].strip())
                start = i + 1
        elif close is None and ch in _CJK_ENDS:
            j = i
            while j + 1 < n and text[j + 1] in _CJK_ENDS + ".!?" + _CJK_CLOSERS:  # "？！", "。）"
                j += 1
            out.append(text[start:j + 1].strip())
            start = i = j + 1
            continue
        elif close is None and ch in ".!?":
            j = i
            while j + 1 < n and text[j + 1] in ".!?":  # "?!" or "..."
                j += 1
            if ch == "." and _is_abbreviation_or_number(text, start, i):
                i = j + 1
                continue
            if j + 1 >= n or _starts_new_sentence(text, j + 1):
                out.append(text[start:j + 1].strip())
                start = j + 1
            i = j
        i += 1
    tail = text[start:].strip()
    if tail:
        out.append(tail)
    return [s for s in out if s]


def _is_cjk(ch: str) -> bool:
    return "\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff"


def _starts_new_sentence(text: str, k: int) -> bool:
    if k >= len(text):
        return True
    if _is_cjk(text[k]):  # "She smiles.她很开心。"
        return True
    if text[k] != " ":
        return False
    nxt = text[k + 1:k + 2]
    return bool(nxt) and (nxt.isupper() or nxt.isdigit() or nxt in _OPEN_QUOTES or nxt in "'(" or _is_cjk(nxt))


def _is_abbreviation_or_number(text: str, start: int, i: int) -> bool:
    word = re.search(r"([A-Za-z.]+)$", text[start:i])
    if word and word.group(1).lower().rstrip(".") in _ABBREVIATIONS:
        return True
    return i + 1 < len(text) and text[i + 1].isdigit() and i > 0 and text[i - 1].isdigit()


# ---------------------------------------------------------------------------------------------------- sections
def _rx(*parts: str) -> re.Pattern:
    return re.compile("|".join(f"(?:{p})" for p in parts), re.IGNORECASE)


# Openers that announce a section; the matched text is removed from the clause (it is not a cue).
_SECTION_OPENERS: list[tuple[str, re.Pattern]] = [
    ("visual", _rx(r"^(?:in|from|throughout|within) the (?:video|clip|footage|scene|image|frames?|picture)\s*,?\s*",
                   r"^(?:on screen|visually|in terms of (?:visual|facial) (?:cues|features|expressions?))\s*,\s*",
                   r"^(?:visual|facial|face|video|body|appearance)(?: cues| features| expressions?| information)?"
                   r"\s*:\s*",
                   r"^(?:i|we) (?:can )?(?:see|observe|notice)\s+(?:that\s+)?")),
    ("auditory", _rx(r"^(?:in|from|throughout) the (?:audio|sound(?:track)?|voice|recording|speech)\s*,?\s*",
                     r"^(?:acoustically|vocally|audibly|in terms of (?:audio|voice|sound|acoustics?))\s*,\s*",
                     r"^(?:audio|auditory|acoustic|voice|vocal|speech|sound|prosody)(?: cues| features| information)?"
                     r"\s*:\s*",
                     r"^(?:i|we) (?:can )?hear\s+(?:that\s+)?",
                     r"^(?:in|from) the (?:text|subtitles?|dialogue|transcript|lines?)\s*,?\s*",
                     r"^(?:text|subtitles?|transcript|dialogue|lexical)(?: cues| features| content)?\s*:\s*")),
    ("emotional", _rx(r"^(?:overall|in summary|in conclusion|to sum up|to summari[sz]e|all in all|in short|"
                      r"taken together|putting (?:it|this|these) together|therefore|thus|hence|consequently|"
                      r"as a result|in general)\s*,?\s*",
                      r"^(?:emotion|emotions|emotional state|mood|conclusion|inferred emotion|affect|"
                      r"emotional (?:cues|reasoning))\s*:\s*",
                      r"^(?:i|we) (?:think|believe|infer|conclude|guess)\s+(?:that\s+)?")),
]
# Reasoning sentences that keep their opener (it is part of the statement).
_REASONING_START = _rx(r"^(?:based on|considering|combining|given|taking|judging (?:from|by)|from (?:these|the above|"
                       r"this)|according to|this (?:combination|mismatch|contradiction|suggests|indicates|shows|"
                       r"implies)|these (?:cues|signals|signs)|together,? these|all (?:these|of these|the) cues)\b")


def detect_section(sentence: str) -> tuple[str | None, str]:
    """``"In the audio, the voice is loud."`` -> ``("auditory", "the voice is loud.")``; no opener: ``(None, s)``.

    Openers can stack ("Overall, in the video, ...": the last one wins).
    """
    section, rest = None, sentence.strip()
    changed = True
    while changed:
        changed = False
        for name, rx in _SECTION_OPENERS:
            m = rx.match(rest)
            if m and m.end() > 0:
                section, rest = name, rest[m.end():].lstrip(" ,")
                changed = True
    return section, rest


# ---------------------------------------------------------------------------------------------------- clauses
_QUOTE_RX = re.compile(r"\"[^\"]*\"|\u201c[^\u201d]*\u201d")
_STARTERS = (r"(?:the|her|his|their|its|a|an|she|he|they|it|this|that|these|there|we|i|one|both|some|at|"
             r"in|after|before|when|then|meanwhile)")
_CONNECTIVES = (r"(?:with|and|but|while|whereas|yet|although|though|as well as|accompanied by|followed by|"
                r"along with|plus|then|also)")
_REASON_CONNECTIVES = (r"(?:indicating|suggesting|implying|showing|revealing|signall?ing|reflecting|conveying|"
                       r"which (?:suggests|indicates|shows|implies|reveals|means|reflects|conveys)|so|"
                       r"(?:and )?(?:this|that) (?:suggests|indicates|shows|implies|reveals|means)|"
                       r"as if|as though)")
_INFERENCE = re.compile(
    r",?\s*\b(?:(?:we|one|you) can (?:infer|conclude|tell|see|deduce|guess)|it can be (?:inferred|concluded|seen|"
    r"deduced)|it is (?:likely|clear|evident|obvious|possible)|it (?:seems|appears))(?: that)?\s+",
    re.IGNORECASE,
)
_SUBORDINATORS = re.compile(r"^(?:as|when|while|after|before|once|until|although|though|because|since|if|"
                            r"at first|at the (?:beginning|start|end)|initially|later|then|over time)\b",
                            re.IGNORECASE)
_LEAD_STRIP = re.compile(rf"^(?:{_CONNECTIVES}|{_REASON_CONNECTIVES})\b(?:\s+that\b)?[\s,]*", re.IGNORECASE)


def _mask_quotes(s: str) -> tuple[str, list[str]]:
    quotes: list[str] = []

    def keep(m: re.Match) -> str:
        quotes.append(m.group(0))
        return f"\u0000{len(quotes) - 1}\u0000"

    return _QUOTE_RX.sub(keep, s), quotes


def _unmask(s: str, quotes: list[str]) -> str:
    return re.sub("\u0000(\\d+)\u0000", lambda m: quotes[int(m.group(1))], s)


def _words(s: str) -> int:
    return len(re.findall(r"[A-Za-z\u0000][\w'\-\u0000]*", s))


def split_clauses(sentence: str, *, reasoning_sentence: bool = False) -> list[tuple[str, bool]]:
    """Split one sentence (already stripped of its section opener) into ``(clause, is_reasoning)`` pairs.

    Splits at ";", at inference phrases ("we can infer that"), at reasoning tails (", indicating that"), at commas
    before a new clause or a connective (", with ...", ", and her ..."), and at "and"/"while"/"but" that join two
    full clauses. Reasoning sentences ("Based on ..., ...") are only split at inference phrases.
    """
    masked, quotes = _mask_quotes(sentence.strip().rstrip(".!?").strip())
    pieces: list[tuple[str, bool]] = []
    for part in re.split(r"\s*;\s*|\s+-{1,2}\s+|\s*\u2014\s*", masked):
        inf = _INFERENCE.split(part)
        for k, seg in enumerate(inf):
            pieces.extend(_split_segment(seg, reasoning_sentence or k > 0, reasoning_sentence))
    merged = _merge_fragments(pieces)
    return [(_unmask(t, quotes), r) for t, r in merged if t.strip(" ,")]


def _split_segment(seg: str, reasoning: bool, keep_whole: bool) -> list[tuple[str, bool]]:
    seg = seg.strip(" ,")
    if not seg:
        return []
    if keep_whole:
        return [(seg, True)]
    out: list[tuple[str, bool]] = []
    # reasoning tails first: ", indicating that ..." starts an inference
    parts = re.split(rf",\s*(?=(?:{_REASON_CONNECTIVES})\b)", seg, flags=re.IGNORECASE)
    for k, part in enumerate(parts):
        is_reason = reasoning or k > 0
        for c in re.split(rf",\s*(?=(?:{_STARTERS}|{_CONNECTIVES})\b)", part, flags=re.IGNORECASE):
            out.extend((x, is_reason) for x in _split_conjunctions(c))
    return out


_CONJ = re.compile(r"\s+(?:and|while|but|whereas|yet)\s+(?=(?:(she|he|they|it)|the|her|his|their|its|one|there)\b)",
                   re.IGNORECASE)


def _split_conjunctions(s: str) -> list[str]:
    """Split at and/while/but/whereas (no comma) before a new subject: both sides 3+ words ("he shouts": 2)."""
    out: list[str] = []
    rest = s
    while True:
        m = next((m for m in _CONJ.finditer(rest)
                  if _words(rest[:m.start()]) >= 3 and _words(rest[m.end():]) >= (2 if m.group(1) else 3)), None)
        if m is None:
            out.append(rest)
            return out
        out.append(rest[:m.start()])
        rest = rest[m.end():]


def _merge_fragments(pieces: list[tuple[str, bool]]) -> list[tuple[str, bool]]:
    """Attach openers without content ("At first", "as the talk goes on") and 1-2 word scraps to the next piece."""
    out: list[tuple[str, bool]] = []
    carry = ""
    for i, (text, reason) in enumerate(pieces):
        text = text.strip(" ,")
        if not text:
            continue
        if carry:
            text, carry = f"{carry}, {text}", ""
        last = i == len(pieces) - 1
        bare = _LEAD_STRIP.sub("", text).strip()
        if not last and (_words(bare) <= 2 or (_SUBORDINATORS.match(bare) and _words(bare) <= 6)):
            carry = text
            continue
        out.append((text, reason))
    if carry:
        if out:
            prev, r = out.pop()
            out.append((f"{prev}, {carry}", r))
        else:
            out.append((carry, False))
    return out


def clean_cue(raw: str) -> str:
    """Drop leading connectives ("with", "indicating that"), capitalise and end with a full stop."""
    s = raw.strip(" ,")
    for _ in range(3):
        new = _LEAD_STRIP.sub("", s).strip(" ,")
        if new == s or not new:
            break
        s = new
    if not s:
        return ""
    s = s[0].upper() + s[1:]
    if s[-1] not in ".!?\"\u201d'":
        s += "."
    return s


def split_description(text: str) -> list[Clause]:
    """A whole description -> clauses with their section context and reasoning flag."""
    clauses: list[Clause] = []
    section: str | None = None
    for si, sentence in enumerate(split_sentences(text)):
        here, rest = detect_section(sentence)
        if here is not None:
            section = here
        reasoning_sentence = here == "emotional" or bool(_REASONING_START.match(rest))
        for pi, (raw, reason) in enumerate(split_clauses(rest, reasoning_sentence=reasoning_sentence)):
            cue = clean_cue(raw)
            if cue:
                strength = 2 if reasoning_sentence else int(reason)
                clauses.append(Clause(cue, raw, section, here is not None, strength, si, pi))
    return clauses
