"""The common import pipeline every dataset adapter shares.

An adapter only reads its published files and yields :class:`SourceRecord`s. :meth:`DatasetAdapter.load` does
the rest, the same way for every format: duplicate ids, media lookup and checks, subtitles and labels joined from
side tables, splits, cues from descriptions - with every problem counted in an :class:`ImportReport`.
:func:`import_dataset` then places the media under ``DIR/media`` and writes ``DIR/manifest.jsonl``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

from xemogpt.data.adapters.cues import cue_function
from xemogpt.data.adapters.labels import normalize_emotion, parse_label_list
from xemogpt.data.adapters.media import (
    CorruptMediaError,
    EscapingPathError,
    MediaIndex,
    media_file_name,
    place,
    probe,
)
from xemogpt.data.adapters.report import ImportReport
from xemogpt.data.adapters.splits import hash_split, normalize_split, parse_ratios
from xemogpt.data.adapters.tables import Row, Table, read_csv
from xemogpt.data.schema import MODALITIES, EmoCueSample, write_manifest

IMPORT_LOG = "import_log.txt"


@dataclass
class SourceRecord:
    """One sample as an adapter read it, before media lookup and joins.

    Attributes:
        id: the sample name.
        where: ``file:line`` (or the media file) it came from, for the log.
        media_name: stem to look up in the media folders (defaults to ``id``).
        video_path / audio_path: explicit media paths from a table (generic format); override ``media_name``.
        audio_names: further stems to try for a separate audio file when the video has no audio stream.
        subtitle: None to take it from ``--subtitles``.
        subtitle_expected: the main file has a subtitle column, so a missing subtitle is counted.
        emotion / labels: labels from the main file; None to take them from ``--labels`` when given.
        description: EMER-style paragraph; cues are derived from it when ``cues`` is None.
        split: the source's own split (raw text), if any.
        split_group: hash key for splits when the source has none (e.g. the speaker); defaults to ``id``.
        row: the raw table row, for ``--split-from``.
    """

    id: str
    where: str
    media_name: str | None = None
    video_path: str | None = None
    audio_path: str | None = None
    audio_names: tuple[str, ...] = ()
    subtitle: str | None = None
    emotion: str | None = None
    labels: list[str] | None = None
    description: str = ""
    cues: dict[str, list[str]] | None = None
    split: str | None = None
    split_group: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    row: Row | None = None
    subtitle_expected: bool = False


@dataclass
class ImportResult:
    """The samples of one import and its report. Media paths are absolute source paths after
    :meth:`DatasetAdapter.load` and ``media/...`` paths relative to the output folder after :func:`import_dataset`."""

    samples: list[EmoCueSample]
    report: ImportReport


class DatasetAdapter:
    """Base class of the ``data_adapter`` registry kind.

    Args:
        media: folders holding the clips (searched recursively by file stem, in order).
        descriptions / labels / subtitles: the dataset's CSV files; which ones a format reads is in ``inputs``.
        column_map: ``{schema key: column}`` (generic format only).
        language: ``en`` or ``zh``, for files with ``chinese``/``english`` columns.
        cues: ``auto`` (offline extractor when installed, else sentences), ``offline``, ``sentences``, or an
            extractor object (e.g. the LLM one; a None result skips the sample as ``cue_extraction_failed``).
        split_from: column of the main file holding train/val/test.
        split_ratios: train,val,test ratios for hash splits when the source has no split.
        seed: seed of the hash splits.
        strict: raise on the first problem instead of skipping and counting it.
    """

    name: ClassVar[str] = ""
    # The file arguments this format reads, and which of them is required.
    inputs: ClassVar[tuple[str, ...]] = ()
    required_input: ClassVar[str | None] = None
    # Whether --labels is a side table joined by name (False where it is the format's main table).
    joins_labels: ClassVar[bool] = True

    def __init__(
        self,
        media: Sequence[str | Path] = (),
        *,
        descriptions: str | Path | None = None,
        labels: str | Path | None = None,
        subtitles: str | Path | None = None,
        column_map: dict[str, str] | None = None,
        language: str = "en",
        cues: str | Any = "auto",
        split_from: str | None = None,
        split_ratios: str | Sequence[float] = (0.8, 0.1, 0.1),
        seed: int = 0,
        strict: bool = False,
    ) -> None:
        given = {"descriptions": descriptions, "labels": labels, "subtitles": subtitles}
        for arg, value in given.items():
            if value is not None and arg not in self.inputs:
                raise ValueError(
                    f"--{arg} is not read by --format {self.name}; it reads {', '.join('--' + i for i in self.inputs)}"
                    if self.inputs
                    else f"--{arg} is not read by --format {self.name}; it takes labels from the media file names"
                )
        if self.required_input and given[self.required_input] is None:
            raise ValueError(f"--format {self.name} needs --{self.required_input} FILE")
        if column_map and self.name != "generic":
            raise ValueError(f"--map applies to --format generic only, not {self.name}")
        if language not in ("en", "zh"):
            raise ValueError(f"--language must be en or zh, got {language!r}")
        self.media_roots = [Path(m) for m in media]
        self.descriptions = Path(descriptions) if descriptions else None
        self.labels = Path(labels) if labels else None
        self.subtitles = Path(subtitles) if subtitles else None
        self.column_map = dict(column_map or {})
        self.language = language
        self.cues = cues
        self.split_from = split_from.lower() if split_from else None
        self.split_ratios = parse_ratios(split_ratios)
        self.seed = int(seed)
        self.strict = strict

    # ----- what each format implements -------------------------------------------------------------------------
    def records(self, report: ImportReport, media: MediaIndex) -> Iterator[SourceRecord]:
        """Yield the samples of the main file(s); problems local to one row go to ``report``."""
        raise NotImplementedError

    def text_column(self, table: Table) -> str:
        """``english``/``chinese`` column per ``--language``, or ``sentence`` for one-language files."""
        if "sentence" in table.columns:
            return "sentence"
        table.require_columns("chinese", "english")
        return "english" if self.language == "en" else "chinese"

    def media_roots_or_default(self) -> list[Path]:
        if not self.media_roots:
            raise ValueError(f"--format {self.name} needs at least one --media DIR holding the clips")
        return self.media_roots

    # ----- the shared pipeline ---------------------------------------------------------------------------------
    def load(self) -> ImportResult:
        """Read the dataset into EmoCue samples with absolute media paths, plus the report of what was dropped."""
        report = ImportReport(format=self.name, strict=self.strict)
        media = MediaIndex(self.media_roots_or_default())
        subtitles = self._subtitle_table(report)
        side_labels = self._label_table(report) if self.labels and self.joins_labels else None
        mode, cue_fn = cue_function(self.cues) if self.cues != "auto" else ("auto", None)  # checked early
        samples: list[EmoCueSample] = []
        to_describe: list[int] = []
        seen: dict[str, str] = {}
        split_checked = False
        for rec in self.records(report, media):
            if rec.id in seen:
                report.problem(rec.id, "duplicate_id", f"first seen at {seen[rec.id]}", where=rec.where)
                continue
            seen[rec.id] = rec.where
            if self.split_from and not split_checked:
                split_checked = True
                if rec.row is None:
                    raise ValueError(
                        f"--split-from: --format {self.name} reads no table; use --split-ratios (hash splits)"
                    )
                if self.split_from not in rec.row.values:
                    raise ValueError(
                        f"--split-from {self.split_from}: no such column in {rec.where.rsplit(':', 1)[0]}; "
                        f"columns are {', '.join(rec.row.values)}"
                    )
            split = self._split(rec, report)
            if split is None:
                continue
            found = self._media(rec, media, report)
            if found is None:
                continue
            video, audio, media_meta = found
            subtitle = rec.subtitle
            if subtitle is None and subtitles is not None:
                subtitle = subtitles.get(rec.id)
            if subtitle is None and (subtitles is not None or rec.subtitle_expected):
                why = ("empty subtitle field" if subtitles is None
                       else f"no subtitle for this id in {self.subtitles}")
                report.problem(rec.id, "missing_subtitle", why, where=rec.where, skipped=False)
            emotion, labels = rec.emotion, rec.labels
            if side_labels is not None and rec.id in side_labels:
                s_emotion, s_labels, s_meta = side_labels[rec.id]
                emotion = emotion or s_emotion
                labels = labels or s_labels
                rec.meta.update(s_meta)
            sample = EmoCueSample(
                id=rec.id,
                video=str(video) if video else None,
                audio=str(audio) if audio else None,
                subtitle=subtitle or "",
                emotion=emotion,
                labels=list(labels or []),
                cues={m: list((rec.cues or {}).get(m, [])) for m in MODALITIES},
                description=rec.description,
                split=split,
                meta={**rec.meta, **media_meta, "source_format": self.name},
            )
            if rec.cues is None and rec.description:
                to_describe.append(len(samples))
            samples.append(sample)
        if to_describe:
            if cue_fn is None:  # resolved only when needed: looking for the offline extractor loads the registry
                mode, cue_fn = cue_function(self.cues)
            t0 = time.perf_counter()
            cue_lists = cue_fn([samples[i].description for i in to_describe], [samples[i].id for i in to_describe])
            if len(cue_lists) != len(to_describe):
                raise RuntimeError(f"cue extractor '{mode}' returned {len(cue_lists)} results for {len(to_describe)} "
                                   "descriptions")
            failed = set()
            for i, cues in zip(to_describe, cue_lists):
                if cues is None:  # the LLM extraction failed with --on-failure skip
                    report.problem(samples[i].id, "cue_extraction_failed", f"'{mode}' gave no usable reply")
                    failed.add(i)
                else:
                    samples[i].cues = cues
            samples = [s for i, s in enumerate(samples) if i not in failed]
            report.note(f"cues of {len(to_describe)} description(s) from '{mode}' in {time.perf_counter() - t0:.1f}s")
        report.kept = len(samples)
        return ImportResult(samples, report)

    def _split(self, rec: SourceRecord, report: ImportReport) -> str | None:
        raw = rec.split
        if self.split_from and rec.row is not None:
            raw = rec.row.get(self.split_from)
            if raw is None:
                report.problem(rec.id, "missing_field", f"empty split column '{self.split_from}'", where=rec.where)
                return None
        if raw is None:
            return hash_split(rec.split_group or rec.id, self.seed, self.split_ratios)
        try:
            return normalize_split(str(raw))
        except ValueError as e:
            report.problem(rec.id, "bad_value", str(e), where=rec.where)
            return None

    def _media(
        self, rec: SourceRecord, media: MediaIndex, report: ImportReport
    ) -> tuple[Path | None, Path | None, dict[str, Any]] | None:
        """(video, audio, meta) for a record, or None when it is skipped (the reason is in the report)."""
        try:
            if rec.video_path or rec.audio_path:
                video = media.resolve(rec.video_path) if rec.video_path else None
                audio = media.resolve(rec.audio_path) if rec.audio_path else None
                wanted = " / ".join(p for p in (rec.video_path, rec.audio_path) if p)
                if video is None and audio is None:
                    report.problem(rec.id, "missing_media", f"{wanted} not found under {media._roots_text()}",
                                   where=rec.where)
                    return None
                if video is None and rec.video_path:  # a named video that is not there is not an audio-only sample
                    report.problem(rec.id, "missing_media", f"{rec.video_path} not found", where=rec.where)
                    return None
            else:
                video, audio = media.find(rec.media_name or rec.id)
                if video is None and audio is None:
                    report.problem(
                        rec.id, "missing_media",
                        f"no {rec.media_name or rec.id}.<ext> under {media._roots_text()}", where=rec.where,
                    )
                    return None
        except EscapingPathError as e:
            report.problem(rec.id, "escaping_path", str(e), where=rec.where)
            return None
        meta: dict[str, Any] = {}
        primary = video or audio
        try:
            empty = primary.stat().st_size == 0  # type: ignore[union-attr]
        except OSError as e:
            report.problem(rec.id, "missing_media", f"{primary}: {e.strerror or e}", where=rec.where)
            return None
        if empty:
            report.problem(rec.id, "empty_media", f"{primary} is a zero-byte file", where=rec.where)
            return None
        try:
            info = probe(primary)  # type: ignore[arg-type]
        except CorruptMediaError as e:
            report.problem(rec.id, "corrupt_media", str(e), where=rec.where)
            return None
        if info.duration is not None:
            meta["duration"] = round(info.duration, 3)
        if video is not None and not info.has_video:  # a "video" container holding sound only: audio-only sample
            return None, video, meta
        if video is None:
            if not info.has_audio:
                report.problem(rec.id, "corrupt_media", f"{audio}: no audio stream", where=rec.where)
                return None
            return None, audio, meta
        if info.has_audio and (audio is None or not rec.audio_path):
            return video, None, meta  # the video's own track (a table-named separate file wins when it exists)
        # The video is silent, or the table names a separate audio file: find and check that file.
        candidates = [audio] if audio is not None else []
        if not info.has_audio:
            for alt in (rec.media_name or rec.id, *rec.audio_names):
                try:
                    candidates.append(media.find(alt)[1])
                except EscapingPathError:
                    continue
        for cand in dict.fromkeys(c for c in candidates if c is not None):
            try:
                if probe(cand).has_audio:
                    report.count("separate_audio")
                    return video, cand, meta
                report.note(f"{rec.id}: separate audio {cand} has no audio stream; not used")
            except CorruptMediaError as e:
                report.note(f"{rec.id}: separate audio {cand} is unusable ({e})")
        meta["has_audio"] = False
        report.problem(rec.id, "no_audio", f"{video.name} has no audio stream and no separate audio file",
                       where=rec.where, skipped=False)
        return video, None, meta

    def _subtitle_table(self, report: ImportReport) -> dict[str, str] | None:
        if self.subtitles is None:
            return None
        table = read_csv(self.subtitles, report)
        table.require_columns("name", flag="--subtitles")
        column = self.text_column(table)
        out: dict[str, str] = {}
        for row in table.rows:
            name, text = row.get("name"), row.get(column)
            if name is None:
                report.problem("?", "missing_field", "empty 'name' in the subtitles file", where=row.where)
                continue
            if text is None and column in ("english", "chinese"):  # fall back to the other language
                text = row.get("chinese" if column == "english" else "english")
            if text is not None:
                out.setdefault(name, text)
        return out

    def _label_table(self, report: ImportReport) -> dict[str, tuple[str | None, list[str], dict[str, Any]]]:
        """``--labels`` joined to a description file: discrete (``name,discrete[,valence]``) or open-set labels."""
        table = read_csv(self.labels, report)  # type: ignore[arg-type]
        table.require_columns("name", flag="--labels")
        if "discrete" not in table.columns and "openset" not in table.columns:
            raise ValueError(f"{table.path} (--labels): needs a 'discrete' or an 'openset' column")
        out: dict[str, tuple[str | None, list[str], dict[str, Any]]] = {}
        for row in table.rows:
            name = row.get("name")
            if name is None:
                report.problem("?", "missing_field", "empty 'name' in the labels file", where=row.where)
                continue
            try:
                emotion, labels, meta = label_fields(row)
            except ValueError as e:
                report.problem(name, "bad_value", str(e), where=row.where)
                continue
            out.setdefault(name, (emotion, labels, meta))
        return out


def label_fields(row: Row) -> tuple[str | None, list[str], dict[str, Any]]:
    """(emotion, open-set labels, meta) from a MER-style row with ``discrete``, ``openset`` and/or ``valence``.

    Raises:
        ValueError: an unparsable label list or valence.
    """
    emotion = normalize_emotion(row.get("discrete")) if row.get("discrete") else None
    labels = parse_label_list(row.get("openset")) if row.get("openset") else []
    meta: dict[str, Any] = {}
    if row.get("valence") is not None:
        try:
            meta["valence"] = float(row.get("valence"))
        except ValueError as e:
            raise ValueError(f"valence {row.get('valence')!r} is not a number") from e
    if emotion and emotion not in labels:
        labels = [emotion, *labels]
    return emotion, labels, meta


def import_dataset(adapter: DatasetAdapter, out: str | Path, *, copy: bool = False) -> ImportResult:
    """Run ``adapter``, symlink (or copy) each sample's media into ``out/media`` and write ``out/manifest.jsonl``,
    ``out/dataset.json`` (with the import summary) and ``out/import_log.txt`` (one line per problem)."""
    out = Path(out)
    result = adapter.load()
    placed: list[EmoCueSample] = []
    for s in result.samples:
        video = place(Path(s.video), out, media_file_name(s.id, Path(s.video)), copy=copy) if s.video else None
        audio = place(Path(s.audio), out, media_file_name(s.id, Path(s.audio)), copy=copy) if s.audio else None
        placed.append(replace(s, video=video, audio=audio))
    report = result.report
    info = {
        "source": {
            "format": adapter.name,
            "media": [str(p) for p in adapter.media_roots],
            "files": {k: str(v) for k, v in (("descriptions", adapter.descriptions), ("labels", adapter.labels),
                                             ("subtitles", adapter.subtitles)) if v},
            "media_mode": "copy" if copy else "symlink",
        },
        "emotions": sorted({s.emotion for s in placed if s.emotion}),
        "splits": {sp: sum(s.split == sp for s in placed) for sp in ("train", "val", "test")},
        "import": report.to_dict(),
    }
    write_manifest(out, placed, info)
    (out / IMPORT_LOG).write_text(report.log_text(), encoding="utf-8")
    return ImportResult(placed, report)
