"""A run folder's progress and what a resumed run continues from.

* ``progress.json`` says which stages finished (with their ``checkpoints/<i>-<stage>.ckpt``), which stage is running
  (and, for a stage that trains its bridges one after the other, which of them finished, each with a checkpoint of
  the whole model) and why the last process stopped. Only global rank 0 writes it, atomically.
* ``checkpoints/last.ckpt`` is the resumable checkpoint of the running fit: weights, optimiser, LR scheduler, loop
  counters, the data loader's place in the epoch and every rank's random state.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xemogpt.recipe import RecipeError

log = logging.getLogger("xemogpt.train")

PROGRESS_FILE = "progress.json"
RESUME_CHECKPOINT = "last.ckpt"
# Recipe parts a resumed run must share with the run it continues (anything else may change, e.g. devices).
RESUME_MUST_MATCH = ("model", "seed")


class RunProgress:
    """``progress.json`` of a run folder (see the module docstring); paths inside are relative to the run folder.

    Fields: ``stages`` (names), ``completed`` ([{index, name, checkpoint}]), ``current`` ({index, name, checkpoint,
    global_step, reason} or null), ``status`` (running, interrupted, failed, finished), ``message``.
    """

    def __init__(self, run_dir: Path, data: dict[str, Any] | None = None, writer: bool = True) -> None:
        self.run_dir, self.writer = Path(run_dir), writer
        self.data: dict[str, Any] = data or {"format": 1, "stages": [], "completed": [], "current": None,
                                             "status": "running", "message": ""}

    @classmethod
    def load(cls, run_dir: Path, writer: bool = True) -> RunProgress | None:
        p = Path(run_dir) / PROGRESS_FILE
        if not p.exists():
            return None
        try:
            return cls(run_dir, json.loads(p.read_text(encoding="utf-8")), writer)
        except (OSError, ValueError) as e:
            raise RecipeError(f"{p} is unreadable ({e}); delete it to restart the run from scratch") from e

    def save(self) -> None:
        if not self.writer:
            return
        from xemogpt.checkpointing.files import atomic_write

        self.data["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        text = json.dumps(self.data, indent=2).encode()
        atomic_write(self.run_dir / PROGRESS_FILE, lambda f: f.write(text))

    def rel(self, path: Path | str) -> str:
        p = Path(path)
        try:
            return str(p.resolve().relative_to(self.run_dir.resolve()))
        except ValueError:
            return str(p)

    def path(self, rel: str | None) -> Path | None:
        return None if rel is None else (self.run_dir / rel if not Path(rel).is_absolute() else Path(rel))

    def start(self, index: int, name: str, part: str | None = None) -> None:
        """Stage ``index`` (or, with ``part``, one bridge of it) starts; the bridges it already finished stay."""
        cur = self.data.get("current") or {}
        done = cur.get("done_parts", []) if cur.get("index") == index else []
        partial = cur.get("partial") if cur.get("index") == index else None
        self.data["current"] = {"index": index, "name": name, "checkpoint": None, "global_step": 0, "reason": None,
                                "part": part, "done_parts": done, "partial": partial}
        self.data["status"], self.data["message"] = "running", ""
        self.save()

    def saved(self, index: int, name: str, checkpoint: Path, global_step: int, reason: str,
              part: str | None = None) -> None:
        cur = self.data.get("current") or {}
        self.data["current"] = {**cur, "index": index, "name": name, "checkpoint": self.rel(checkpoint),
                                "global_step": int(global_step), "reason": reason, "part": part}
        self.save()

    def part_done(self, index: int, name: str, part: str, checkpoint: Path) -> None:
        """One bridge of a stage finished; ``checkpoint`` holds the whole model after it."""
        cur = self.data.get("current") or {}
        done = [p for p in cur.get("done_parts", []) if p != part] + [part]
        self.data["current"] = {"index": index, "name": name, "checkpoint": None, "global_step": 0, "reason": None,
                                "part": None, "done_parts": done, "partial": self.rel(checkpoint)}
        self.save()

    def complete(self, index: int, name: str, checkpoint: Path) -> None:
        done = [c for c in self.data["completed"] if c["index"] != index]
        self.data["completed"] = done + [{"index": index, "name": name, "checkpoint": self.rel(checkpoint)}]
        self.data["current"] = None
        self.save()

    def stop(self, status: str, message: str) -> None:
        self.data["status"], self.data["message"] = status, message
        self.save()


def resume_conflicts(saved: dict[str, Any], recipe: dict[str, Any]) -> list[str]:
    """Recipe keys that differ between a run's saved recipe and the one it is resumed with."""
    out = [k for k in RESUME_MUST_MATCH if saved.get(k) != recipe.get(k)]
    old = [s.get("name") for s in saved.get("stages") or [] if not s.get("skip")]
    new = [s.get("name") for s in recipe.get("stages") or [] if not s.get("skip")]
    if old != new:
        out.append(f"stages (names {old} vs {new})")
    return out








@dataclass
class ResumePlan:
    """Where a run continues: the first stage to run; the resumable checkpoint of its running fit (and, for a stage
    that trains its bridges one after the other, which bridge that fit belongs to, the bridges already finished and
    the whole model's checkpoint after them); the checkpoint of the last finished stage."""

    start: int = 0
    resumable: Path | None = None
    part: str | None = None
    done_parts: list[str] = field(default_factory=list)
    partial: Path | None = None
    boundary: Path | None = None

    @property
    def source(self) -> Path | None:
        """The checkpoint whose weights the model starts from (before the running fit's own checkpoint)."""
        return self.partial or self.boundary


def resume_plan(progress: RunProgress, stages: list[dict[str, Any]]) -> ResumePlan:
    """What :class:`RunProgress` says a resumed run of ``stages`` continues from (see :class:`ResumePlan`)."""
    names = [s["name"] for s in stages]
    done = sorted(progress.data.get("completed", []), key=lambda c: c["index"])
    for c in done:
        if c["index"] >= len(names) or names[c["index"]] != c["name"]:
            raise RecipeError(f"{progress.run_dir / PROGRESS_FILE}: finished stage {c['index'] + 1} {c['name']!r} is "
                              f"not stage {c['index'] + 1} of this recipe ({names}); resume with the run's recipe")
    start = 0
    while start < len(done) and done[start]["index"] == start:
        start += 1
    boundary = progress.path(done[start - 1]["checkpoint"]) if start else None
    if boundary is not None and not boundary.exists():
        raise RecipeError(f"{progress.run_dir / PROGRESS_FILE} names {boundary} as the checkpoint of finished stage "
                          f"{done[start - 1]['name']!r} but it is missing; restore it or start a new run folder")
    plan = ResumePlan(start=start, boundary=boundary)
    cur = progress.data.get("current") or {}
    if cur.get("index") != start:
        return plan
    stage = names[start] if start < len(names) else "?"
    plan.resumable = progress.path(cur.get("checkpoint"))
    if plan.resumable is not None and not plan.resumable.exists():
        log.warning("progress.json names %s but it is missing; stage %s restarts from its beginning", plan.resumable,
                    stage)
        plan.resumable = None
    plan.part = cur.get("part") if plan.resumable is not None else None
    partial = progress.path(cur.get("partial"))
    if partial is not None and partial.exists():
        plan.partial, plan.done_parts = partial, list(cur.get("done_parts") or [])
    elif partial is not None:
        log.warning("progress.json names %s but it is missing; stage %s restarts from its first bridge", partial,
                    stage)
    return plan
