"""Emotion label normalisation and the label codes of file-name-labelled datasets (RAVDESS, CREMA-D).

Labels are lower-cased and common synonyms mapped onto one adjective per emotion, matching the synthetic set's
names (happy, sad, angry, surprised, fearful, disgusted, neutral) so that datasets can be mixed; labels outside
the table (e.g. ``worried``, ``calm``, ``contempt``) are kept, lower-cased.
"""

from __future__ import annotations

import ast
import re

SYNONYMS: dict[str, str] = {
    # English nouns, adjectives and common abbreviations (IEMOCAP/CREMA-D style)
    "happiness": "happy", "joy": "happy", "joyful": "happy", "glad": "happy", "hap": "happy", "happy": "happy",
    "sadness": "sad", "sorrow": "sad", "unhappy": "sad", "sad": "sad",
    "anger": "angry", "angry": "angry", "mad": "angry", "ang": "angry",
    "fear": "fearful", "fearful": "fearful", "scared": "fearful", "afraid": "fearful", "fea": "fearful",
    "disgust": "disgusted", "disgusted": "disgusted", "dis": "disgusted",
    "surprise": "surprised", "surprised": "surprised", "sur": "surprised",
    "neutral": "neutral", "neu": "neutral", "neutrality": "neutral",
    "calmness": "calm", "calm": "calm",
    "worry": "worried", "worried": "worried",
    "contempt": "contempt", "contemptuous": "contempt",
    "exc": "excited", "excitement": "excited", "fru": "frustrated", "frustration": "frustrated",
    # Chinese labels found in MER/EMER files
    "高兴": "happy", "开心": "happy", "快乐": "happy", "愉快": "happy",
    "悲伤": "sad", "难过": "sad", "伤心": "sad",
    "生气": "angry", "愤怒": "angry",
    "惊讶": "surprised", "吃惊": "surprised",
    "担心": "worried", "担忧": "worried",
    "害怕": "fearful", "恐惧": "fearful",
    "厌恶": "disgusted", "中性": "neutral", "平静": "calm",
}

# RAVDESS file names: 3rd field is the emotion code.
RAVDESS_EMOTIONS: dict[str, str] = {
    "01": "neutral", "02": "calm", "03": "happy", "04": "sad",
    "05": "angry", "06": "fearful", "07": "disgusted", "08": "surprised",
}
# CREMA-D file names: 3rd field is the emotion code.
CREMAD_EMOTIONS: dict[str, str] = {
    "ANG": "angry", "DIS": "disgusted", "FEA": "fearful", "HAP": "happy", "NEU": "neutral", "SAD": "sad",
}


def normalize_emotion(label: str) -> str:
    """``" Happiness "`` -> ``"happy"``; unknown labels come back stripped and lower-cased."""
    key = label.strip().strip("'\"").strip().lower()
    return SYNONYMS.get(key, key)


_SEP = re.compile(r"[,;|，；、/]+")


def parse_label_list(value: object) -> list[str]:
    """Labels from a Python-list string (``"['happy', 'excited']"``, as MER2024 publishes), a JSON list, or a
    comma/semicolon/Chinese-comma separated string; normalised, order kept, duplicates dropped.

    Raises:
        ValueError: the text starts like a list but is not a valid list literal, or holds non-strings.
    """
    if value is None:
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                items = ast.literal_eval(text)  # literals only: never evaluates code
            except (ValueError, SyntaxError) as e:
                raise ValueError(f"not a valid list of labels: {text[:60]!r}") from e
        else:
            items = _SEP.split(text)
    else:
        items = value
    if not isinstance(items, (list, tuple)) or not all(isinstance(i, str) for i in items):
        raise ValueError(f"expected a list of label strings, got {value!r}"[:120])
    out: list[str] = []
    for item in items:
        lab = normalize_emotion(item)
        if lab and lab not in out:
            out.append(lab)
    return out
