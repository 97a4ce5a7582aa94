"""Finding a sample's media by name in one or more folders, checking it with FFmpeg, and placing it in a dataset.

Lookup is by file stem: ``<name>.<ext>`` anywhere below any ``--media`` folder (first folder wins), video
extensions before audio ones. Names or explicit paths that contain folders are joined to each media root and must
stay inside it (checked on the normalised path, before any file is touched).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from xemogpt.errors import XemoGPTError

VIDEO_EXTS: tuple[str, ...] = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".flv", ".m4v", ".mpg", ".mpeg", ".wmv")
AUDIO_EXTS: tuple[str, ...] = (".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".opus")
MEDIA_DIR = "media"


class EscapingPathError(XemoGPTError, ValueError):
    """A media name or path resolves outside every media root."""


class CorruptMediaError(XemoGPTError, ValueError):
    """FFmpeg cannot open the file, or it has no stream of the needed kind."""


@dataclass(frozen=True)
class MediaInfo:
    """What :func:`probe` learnt from a container header."""

    has_video: bool
    has_audio: bool
    duration: float | None  # seconds, None when the container does not say


def probe(path: str | Path) -> MediaInfo:
    """Open ``path`` with PyAV and list its streams (header only, no decoding); corrupt files raise.

    Raises:
        CorruptMediaError: the file cannot be opened, or has neither a video nor an audio stream.
    """
    import av  # heavy; only needed while importing

    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            info = MediaInfo(
                has_video=len(container.streams.video) > 0,
                has_audio=len(container.streams.audio) > 0,
                duration=container.duration / 1_000_000 if container.duration else None,
            )
    except (av.error.FFmpegError, OSError, ValueError) as e:  # InvalidDataError etc.; OSError for unreadable files
        raise CorruptMediaError(f"{path}: FFmpeg cannot open it ({e})") from e
    if not (info.has_video or info.has_audio):
        raise CorruptMediaError(f"{path}: no video or audio stream")
    return info


def _inside(root: Path, path: Path) -> bool:
    return path == root or root in path.parents


def _lexical(path: Path) -> Path:
    """Absolute, normalised path without following symlinks (a symlinked dataset folder is fine)."""
    return Path(os.path.normpath(os.path.abspath(path)))


class MediaIndex:
    """Media files below one or more folders, looked up by stem or by relative path.

    Args:
        roots: the ``--media`` folders, in priority order.
    """

    def __init__(self, roots: Sequence[str | Path]):
        self.roots = [_lexical(Path(r)) for r in roots]
        for r in self.roots:
            if not r.is_dir():
                raise FileNotFoundError(f"media folder {r} does not exist or is not a folder (check --media)")
        self._by_stem: dict[str, list[Path]] | None = None

    def files(self) -> Iterator[Path]:
        """Every media file below the roots (video and audio extensions), roots in order, paths sorted."""
        exts = set(VIDEO_EXTS) | set(AUDIO_EXTS)
        for root in self.roots:
            found = []
            for dirpath, _dirs, names in os.walk(root, followlinks=True):
                found.extend(Path(dirpath) / n for n in names if Path(n).suffix.lower() in exts)
            yield from sorted(found)

    def _index(self) -> dict[str, list[Path]]:
        if self._by_stem is None:
            self._by_stem = {}
            for p in self.files():
                self._by_stem.setdefault(p.stem, []).append(p)
        return self._by_stem

    def find(self, name: str) -> tuple[Path | None, Path | None]:
        """(video, audio) files named ``<name>.<ext>``; either may be None.

        A ``name`` containing a folder (``clips/a01``) is looked up relative to each root.

        Raises:
            EscapingPathError: ``name`` leads outside every media root.
        """
        if "/" in name or "\\" in name or name in (".", ".."):
            candidates = []
            for root in self.roots:
                base = _lexical(root / name.replace("\\", "/"))
                if not _inside(root, base):
                    raise EscapingPathError(f"media name {name!r} points outside the media folder {root}")
                candidates.extend(base.with_name(base.name + ext) for ext in VIDEO_EXTS + AUDIO_EXTS)
            found = [p for p in candidates if p.is_file()]
        else:
            found = self._index().get(name, [])
        video = next((p for p in found if p.suffix.lower() in VIDEO_EXTS), None)
        audio = next((p for p in found if p.suffix.lower() in AUDIO_EXTS), None)
        return video, audio

    def resolve(self, path: str) -> Path | None:
        """An explicit media path from a table: absolute, or relative to a root; None when no such file.

        Raises:
            EscapingPathError: the path lies outside every media root.
        """
        p = Path(path.replace("\\", "/"))
        if p.is_absolute():
            lex = _lexical(p)
            if not any(_inside(r, lex) for r in self.roots):
                raise EscapingPathError(f"media path {path!r} is outside the media folder(s) {self._roots_text()}")
            return lex if lex.is_file() else None
        for root in self.roots:
            lex = _lexical(root / p)
            if not _inside(root, lex):
                raise EscapingPathError(f"media path {path!r} points outside the media folder {root}")
            if lex.is_file():
                return lex
        return None

    def _roots_text(self) -> str:
        return ", ".join(str(r) for r in self.roots)


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def media_file_name(sample_id: str, source: Path) -> str:
    """File name for a sample's media inside ``DIR/media``: the id made filesystem-safe, plus the source extension.

    Ids that needed changing get a short hash so that two ids never map to the same file.
    """
    safe = _UNSAFE.sub("_", sample_id).strip("._") or "sample"
    if safe != sample_id:
        safe += "-" + hashlib.sha1(sample_id.encode("utf-8")).hexdigest()[:8]
    return safe + source.suffix.lower()


def place(source: Path, out_root: Path, file_name: str, *, copy: bool) -> str:
    """Symlink (default) or copy ``source`` to ``out_root/media/file_name``; return the manifest-relative path."""
    target = out_root / MEDIA_DIR / file_name
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink() or target.exists():
        target.unlink()  # re-import into the same folder replaces the old entry
    if copy:
        shutil.copy2(source, target)
    else:
        target.symlink_to(Path(source).resolve())
    return f"{MEDIA_DIR}/{file_name}"
