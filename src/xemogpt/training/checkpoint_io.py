"""Atomic checkpoint files: a kill (SIGKILL, power loss, OOM killer) during a save never corrupts the last good one.

Lightning's default ``TorchCheckpointIO`` serialises the whole checkpoint into memory and then moves a temporary file
from the system temp folder onto the target. When that folder is on another filesystem the "move" is a copy that
writes the target in place, so a kill half-way leaves a truncated checkpoint, and nothing is fsynced. Here every
local save goes

    torch.save -> <dir>/.<name>.tmp-<pid>-<random> (same folder, so the rename cannot cross filesystems)
    -> flush + fsync(file) -> os.replace(tmp, target) -> fsync(dir)

``os.replace`` is atomic on POSIX: a reader sees the previous complete file or the new complete file, never a mix.
Remote paths (``s3://``, ``gs://``, ...) go to Lightning's fsspec path, whose object stores publish a PUT atomically.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins import TorchCheckpointIO

TMP_PREFIX = "."
TMP_MARK = ".tmp-"


def is_remote(path: str | os.PathLike) -> bool:
    """True for fsspec URLs such as ``s3://bucket/run/last.ckpt`` (``file://`` counts as local)."""
    s = str(path)
    return "://" in s and not s.startswith("file://")


def _fsync_dir(folder: Path) -> None:
    # The rename is only durable once the directory entry is on disk; some filesystems refuse O_RDONLY dirs.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: str | os.PathLike, write) -> Path:
    """Run ``write(fileobj)`` into a temporary file beside ``path``, fsync it, then rename it onto ``path``.

    A crash at any moment leaves either the old ``path`` untouched or the new one complete; at worst a stray
    ``.<name>.tmp-*`` file, which :func:`clean_stale_temps` removes.
    """
    target = Path(str(path).removeprefix("file://"))
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{target.name}{TMP_MARK}{os.getpid()}-", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(target.parent)
    return target


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj, path)`` made atomic (see :func:`atomic_write`)."""
    return atomic_write(path, lambda f: torch.save(obj, f))


def atomic_copy(src: str | os.PathLike, dst: str | os.PathLike, chunk: int = 1 << 24) -> Path:
    """Copy a file so that ``dst`` is always either its old content or a complete copy of ``src``."""
    def write(f) -> None:
        with open(src, "rb") as s:
            while block := s.read(chunk):
                f.write(block)

    return atomic_write(dst, write)


def clean_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Delete temporary files that killed saves left in ``folder``; returns what was removed."""
    folder = Path(folder)
    removed = []
    if folder.is_dir():
        for p in folder.iterdir():
            if p.name.startswith(TMP_PREFIX) and TMP_MARK in p.name and p.is_file():
                with contextlib.suppress(OSError):
                    p.unlink()
                    removed.append(p)
    return removed


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning ``CheckpointIO`` plugin whose local saves are atomic and durable (see the module docstring).

    Used by every trainer that :func:`xemogpt.training.run.make_trainer` builds (DDP and single-device; FSDP with
    ``state_dict_type: full``), so ``trainer.save_checkpoint`` and ``ModelCheckpoint`` both go through it.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO.save_checkpoint takes no storage_options")
        if is_remote(path):
            super().save_checkpoint(checkpoint, path)
            return
        atomic_save(checkpoint, path)
