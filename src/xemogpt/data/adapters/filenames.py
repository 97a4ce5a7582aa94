"""Datasets labelled by their file names: RAVDESS and CREMA-D. The media folders are the whole input.

RAVDESS: ``MM-VV-EE-II-SS-RR-AA.ext`` = modality (01 audio-video, 02 video only, 03 audio only), vocal channel
(01 speech, 02 song), emotion (01..08), intensity (01 normal, 02 strong), statement (01, 02), repetition,
actor (odd male, even female). The three modality files of one recording become one sample: the audio-video
file, else the video-only file with the audio-only wav as its separate audio, else the wav alone.

CREMA-D: ``AAAA_SSS_EEE_LL.ext`` = actor, sentence code, emotion code, level (LO, MD, HI, XX unspecified).

Hash splits use the actor, so no speaker is in two splits.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from xemogpt.data.adapters.base import DatasetAdapter, SourceRecord
from xemogpt.data.adapters.labels import CREMAD_EMOTIONS, RAVDESS_EMOTIONS
from xemogpt.data.adapters.media import MediaIndex
from xemogpt.data.adapters.report import ImportReport
from xemogpt.registry import register

RAVDESS_STATEMENTS = {"01": "Kids are talking by the door.", "02": "Dogs are sitting by the door."}
CREMAD_SENTENCES = {
    "IEO": "It's eleven o'clock.",
    "TIE": "That is exactly what happened.",
    "IOM": "I'm on my way to the meeting.",
    "IWW": "I wonder what this is about.",
    "TAI": "The airplane is almost full.",
    "MTI": "Maybe tomorrow it will be cold.",
    "IWL": "I would like a new alarm clock.",
    "ITH": "I think I have a doctor's appointment.",
    "DFA": "Don't forget a jacket.",
    "ITS": "I think I've seen this before.",
    "TSI": "The surface is slick.",
    "WSI": "We'll stop in a couple of minutes.",
}
CREMAD_LEVELS = {"LO": "low", "MD": "medium", "HI": "high", "XX": "unspecified", "X": "unspecified"}

_RAVDESS = re.compile(r"^(0[123])-(0[12])-(\d\d)-(0[12])-(0[12])-(\d\d)-(\d\d)$")
_CREMAD = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{1,2})$")


@register("data_adapter", "ravdess")
class RavdessAdapter(DatasetAdapter):
    """RAVDESS: labels, statement and actor from the file names under --media."""

    name = "ravdess"
    inputs = ()

    def records(self, report: ImportReport, media: MediaIndex) -> Iterator[SourceRecord]:
        recordings: dict[str, dict[str, str]] = {}  # recording key -> modality code -> stem
        where: dict[str, str] = {}
        bad: set[str] = set()
        for path in media.files():
            m = _RAVDESS.match(path.stem)
            if m is None or m.group(3) not in RAVDESS_EMOTIONS:
                if path.stem in bad:  # one problem per name, not per file extension
                    continue
                bad.add(path.stem)
                report.problem(path.stem, "bad_file_name", "expected MM-VV-EE-II-SS-RR-AA with emotion 01..08",
                               where=str(path))
                continue
            key = path.stem[3:]
            recordings.setdefault(key, {}).setdefault(m.group(1), path.stem)
            where.setdefault(path.stem, str(path))
        for key in sorted(recordings):
            stems = recordings[key]
            primary = stems.get("01") or stems.get("02") or stems["03"]
            _, vocal, emo, intensity, statement, repetition, actor = _RAVDESS.match(primary).groups()  # type: ignore
            yield SourceRecord(
                id=primary,
                where=where[primary],
                audio_names=(f"03-{key}",) if "03" in stems and primary != stems["03"] else (),
                subtitle=RAVDESS_STATEMENTS[statement],
                emotion=RAVDESS_EMOTIONS[emo],
                split_group=f"actor{actor}",
                meta={
                    "actor": actor,
                    "gender": "male" if int(actor) % 2 else "female",
                    "vocal_channel": "speech" if vocal == "01" else "song",
                    "intensity": "normal" if intensity == "01" else "strong",
                    "statement": statement,
                    "repetition": repetition,
                },
            )


@register("data_adapter", "cremad")
class CremadAdapter(DatasetAdapter):
    """CREMA-D: labels, sentence and actor from the file names under --media."""

    name = "cremad"
    inputs = ()

    def records(self, report: ImportReport, media: MediaIndex) -> Iterator[SourceRecord]:
        seen: dict[str, str] = {}
        bad: set[str] = set()
        for path in media.files():
            if path.stem in seen or path.stem in bad:  # the wav and the video of one clip share a name
                continue
            m = _CREMAD.match(path.stem)
            if m is None or m.group(3) not in CREMAD_EMOTIONS or m.group(2) not in CREMAD_SENTENCES:
                bad.add(path.stem)
                report.problem(path.stem, "bad_file_name", "expected AAAA_SSS_EEE_LL with a CREMA-D sentence and "
                               "emotion code", where=str(path))
                continue
            seen[path.stem] = str(path)
        for stem in sorted(seen):
            actor, sentence, emo, level = _CREMAD.match(stem).groups()  # type: ignore[union-attr]
            yield SourceRecord(
                id=stem,
                where=seen[stem],
                subtitle=CREMAD_SENTENCES[sentence],
                emotion=CREMAD_EMOTIONS[emo],
                split_group=f"actor{actor}",
                meta={"actor": actor, "sentence": sentence, "level": CREMAD_LEVELS.get(level, level.lower())},
            )
