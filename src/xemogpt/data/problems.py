"""Bad input while loading: the reasons, the log that counts them, and the media checks done before decoding.

Every bad record or clip is either **skipped** (dropped from the run) or **handled** (kept after a repair, or with a
modality missing), logged once with its sample id and reason, and counted. ``strict`` makes the first one fatal
(:class:`BadSampleError`). The DataModule prints :meth:`SkipLog.summary` after setup and at the end of every epoch
(:class:`xemogpt.data.callbacks.DataSummaryCallback`); ``xemogpt data pack`` and ``xemogpt data cache`` print it at
the end and write one line per sample to a log file.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

from xemogpt.data.decode import NOTE_REASONS
from xemogpt.data.decode import SKIP_REASONS as DECODE_SKIP_REASONS
from xemogpt.data.schema import (
    MANIFEST_HANDLED_REASONS,
    MANIFEST_SKIP_REASONS,
    EmoCueSample,
    SchemaError,
    resolve_media,
)
from xemogpt.errors import XemoGPTError

log = logging.getLogger("xemogpt.data")

SKIP_REASONS: dict[str, str] = {
    **MANIFEST_SKIP_REASONS,
    "escaping_path": "a media path points outside the dataset root",
    **DECODE_SKIP_REASONS,
    "no_features": "the clip has no cached features (it could not be decoded when the cache was built)",
}
HANDLED_REASONS: dict[str, str] = {**MANIFEST_HANDLED_REASONS, **NOTE_REASONS}


class BadSampleError(XemoGPTError, RuntimeError):
    """Raised in strict mode for the first bad sample; names the sample and reason."""


class SkipLog:
    """Skipped and handled samples with reasons, each (sample, reason) recorded once however often it is met.

    Attributes:
        items: skipped samples as (sample id, reason, detail), in the order met.
        handled: kept-but-imperfect samples as (sample id, reason, detail).
        strict: raise :class:`BadSampleError` at the first problem instead of recording it.
    """

    def __init__(self, strict: bool = False) -> None:
        self.items: list[tuple[str, str, str]] = []
        self.handled: list[tuple[str, str, str]] = []
        self.strict = strict
        self._seen: set[tuple[str, str]] = set()

    def add(self, sample_id: str, reason: str, detail: str = "", skipped: bool = True) -> bool:
        """Record a problem; returns False when this (sample, reason) was already recorded."""
        key = (str(sample_id), reason)
        if key in self._seen:
            return False
        if self.strict:
            what = "bad sample" if skipped else "imperfect sample"
            raise BadSampleError(f"{what} {sample_id!r}: {reason} ({detail}); rerun without --strict (data.strict: "
                                 "false) to skip or repair such samples and count them")
        self._seen.add(key)
        (self.items if skipped else self.handled).append((str(sample_id), reason, detail))
        log.warning("%s sample %s: %s %s", "skipped" if skipped else "kept", sample_id, reason, detail)
        return True

    def hook(self, sample_id: str, reason: str, detail: str, skipped: bool) -> None:
        """The signature :func:`xemogpt.data.schema.read_manifest` calls."""
        self.add(sample_id, reason, detail, skipped)

    def counts(self) -> dict[str, int]:
        """Skipped samples per reason."""
        return dict(Counter(r for _, r, _ in self.items))

    def handled_counts(self) -> dict[str, int]:
        """Handled (kept) samples per reason."""
        return dict(Counter(r for _, r, _ in self.handled))

    def skipped_ids(self) -> set[str]:
        return {sid for sid, _, _ in self.items}

    def summary(self) -> str:
        if not self.items and not self.handled:
            return "no samples skipped"
        parts = []
        if self.items:
            parts.append(f"{len(self.items)} sample(s) skipped: "
                         + ", ".join(f"{k}={v}" for k, v in sorted(self.counts().items())))
        else:
            parts.append("no samples skipped")
        if self.handled:
            parts.append(f"{len({s for s, _, _ in self.handled})} kept with problems: "
                         + ", ".join(f"{k}={v}" for k, v in sorted(self.handled_counts().items())))
        return "; ".join(parts)

    def lines(self) -> list[str]:
        """One line per problem: ``skipped|kept <id> [reason] detail``."""
        return ([f"skipped {sid} [{r}] {d}".rstrip() for sid, r, d in self.items]
                + [f"kept {sid} [{r}] {d}".rstrip() for sid, r, d in self.handled])

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(self.lines()) + ("\n" if self.items or self.handled else ""), encoding="utf-8")
        return path

    def state_dict(self) -> dict[str, Any]:
        return {"items": [list(x) for x in self.items], "handled": [list(x) for x in self.handled]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.items = [tuple(x) for x in state.get("items", [])]
        self.handled = [tuple(x) for x in state.get("handled", [])]
        self._seen = {(s, r) for s, r, _ in self.items + self.handled}


def check_media(root: str | Path, sample: EmoCueSample) -> tuple[Path | None, Path | None]:
    """Resolve a sample's media paths and check the files exist and are not empty (before any decoding).

    Returns (video path, audio path). Raises ``ValueError`` with ``.reason`` in ``escaping_path``,
    ``missing_media``, ``empty_media``.
    """
    out: list[Path | None] = []
    for rel in (sample.video, sample.audio):
        try:
            p = resolve_media(root, rel, sample_id=sample.id)
        except SchemaError as e:
            raise MediaProblem("escaping_path", str(e)) from e
        if p is not None:
            try:
                size = p.stat().st_size
            except OSError:
                raise MediaProblem("missing_media", f"{p} does not exist") from None
            if size == 0:
                raise MediaProblem("empty_media", f"{p} is a zero-byte file")
        out.append(p)
    return out[0], out[1]


class MediaProblem(ValueError):
    """A sample's media cannot be used; ``reason`` is a ``SKIP_REASONS`` key."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason, self.detail = reason, detail
        super().__init__(f"{reason}: {detail}")


def usable_samples(root: str | Path, samples: list[EmoCueSample], skips: SkipLog) -> list[EmoCueSample]:
    """``samples`` whose media paths stay inside ``root`` and exist; the others are recorded in ``skips``."""
    out = []
    for s in samples:
        try:
            check_media(root, s)
        except MediaProblem as e:
            skips.add(s.id, e.reason, e.detail)
            continue
        out.append(s)
    return out


def note_filter(sample: EmoCueSample, notes: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Drop notes the dataset already states (an import recorded ``meta.has_audio: false``)."""
    if sample.meta.get("has_audio") is False:
        notes = [(r, d) for r, d in notes if r != "no_audio"]
    return notes
