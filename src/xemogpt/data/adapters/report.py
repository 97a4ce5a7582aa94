"""What an import did: samples kept, problems skipped or handled, and notes.

Every bad input an adapter meets goes through :meth:`ImportReport.problem`, which records the sample id, the
reason, and where it came from (file and line), and - in strict mode - raises instead, so the first problem is
fatal and its message names the file, line and sample.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from xemogpt.errors import XemoGPTError

log = logging.getLogger("xemogpt.data.import")

# Reasons, as counted in the report and dataset.json. "skip" reasons drop the sample; "handled" ones keep it.
SKIP_REASONS: dict[str, str] = {
    "duplicate_id": "the id was already imported from an earlier row or file",
    "missing_field": "a required field is absent or empty",
    "bad_value": "a field could not be parsed (label list, number, split name)",
    "bad_file_name": "the media file name does not follow the dataset's naming convention",
    "undecodable_line": "a line of a text file is neither UTF-8 nor GB18030",
    "missing_media": "no media file with the sample's name in the --media folders",
    "escaping_path": "a media path points outside the data root",
    "empty_media": "the media file has zero bytes",
    "corrupt_media": "FFmpeg could not open the media file or it has no usable stream",
    "cue_extraction_failed": "the LLM cue extractor gave no usable reply for the description (--on-failure skip)",
}
HANDLED_REASONS: dict[str, str] = {
    "missing_subtitle": "no subtitle for the sample (kept with an empty subtitle)",
    "no_audio": "the video has no audio stream and no separate audio file was found (kept, audio missing)",
    "separate_audio": "the video has no audio stream; a separate audio file with the same name is used",
}


class ImportProblemError(XemoGPTError, ValueError):
    """Raised in strict mode at the first problem; the message names the file, line and sample id."""


@dataclass
class Problem:
    """One skipped or handled sample."""

    sample_id: str
    reason: str
    detail: str = ""
    where: str = ""
    skipped: bool = True

    def line(self) -> str:
        action = "skipped" if self.skipped else "kept"
        loc = f" ({self.where})" if self.where else ""
        detail = f": {self.detail}" if self.detail else ""
        return f"{action} {self.sample_id!r}{loc} [{self.reason}]{detail}"


@dataclass
class ImportReport:
    """Counts per reason, the list of (sample id, reason) and a printable summary of one import.

    Attributes:
        format: the adapter name.
        strict: when True the first problem raises :class:`ImportProblemError`.
        kept: number of samples imported.
        problems: every skipped or handled sample, in the order met.
        notes: informational lines (e.g. a file decoded as GB18030).
    """

    format: str = ""
    strict: bool = False
    kept: int = 0
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)

    def problem(self, sample_id: str, reason: str, detail: str = "", *, where: str = "", skipped: bool = True) -> None:
        """Record a problem (or raise in strict mode). ``reason`` must be one of the known reason keys."""
        if reason not in SKIP_REASONS and reason not in HANDLED_REASONS:
            raise KeyError(f"unknown import problem reason {reason!r}")
        p = Problem(str(sample_id), reason, detail, where, skipped)
        if self.strict:
            loc = where or "input"
            what = detail or SKIP_REASONS.get(reason) or HANDLED_REASONS[reason]
            raise ImportProblemError(
                f"{loc}: sample {p.sample_id!r}: {reason} ({what})."
                " Fix the input or drop --strict to skip such samples and count them."
            )
        self.problems.append(p)
        log.warning("%s", p.line())

    def count(self, event: str, n: int = 1) -> None:
        """Count an unproblematic event worth reporting (e.g. ``separate_audio``)."""
        self.counts[event] += n

    def note(self, text: str) -> None:
        self.notes.append(text)
        log.info("%s", text)

    @property
    def skipped(self) -> Counter:
        """Number of dropped samples per reason."""
        return Counter(p.reason for p in self.problems if p.skipped)

    @property
    def handled(self) -> Counter:
        """Number of kept-but-imperfect samples per reason."""
        return Counter(p.reason for p in self.problems if not p.skipped)

    @property
    def items(self) -> list[tuple[str, str]]:
        """(sample id, reason) for every problem, in order."""
        return [(p.sample_id, p.reason) for p in self.problems]

    def ids(self, reason: str) -> list[str]:
        """Sample ids recorded with ``reason``."""
        return [p.sample_id for p in self.problems if p.reason == reason]

    def summary(self) -> str:
        """Multi-line human summary printed at the end of each import."""
        skipped, handled = self.skipped, self.handled
        lines = [f"import ({self.format}): {self.kept} samples kept, {sum(skipped.values())} skipped"]
        for reason, n in sorted(skipped.items()):
            lines.append(f"  skipped {n:6d}  {reason}: {SKIP_REASONS[reason]}")
        for reason, n in sorted(handled.items()):
            lines.append(f"  kept    {n:6d}  {reason}: {HANDLED_REASONS[reason]}")
        lines.extend(f"  info    {n:6d}  {event}" for event, n in sorted(self.counts.items()))
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)

    def log_text(self) -> str:
        """One line per problem (sample id, reason, file:line, detail), then the summary."""
        return "\n".join([p.line() for p in self.problems] + [self.summary()]) + "\n"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form stored in ``dataset.json`` under ``import``."""
        return {
            "format": self.format,
            "kept": self.kept,
            "skipped": dict(sorted(self.skipped.items())),
            "handled": dict(sorted(self.handled.items())),
            "counts": dict(sorted(self.counts.items())),
            "notes": list(self.notes),
        }
