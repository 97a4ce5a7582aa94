"""How many CPU threads a run uses when its recipe does not say (``run.threads``)."""

from __future__ import annotations

import os


def default_threads() -> int:
    """``OMP_NUM_THREADS`` when it is a positive integer (set by SLURM scripts, container limits and the test suite's
    parallel workers), else every core ``os.cpu_count()`` reports."""
    raw = os.environ.get("OMP_NUM_THREADS", "").strip()
    if raw.isdigit() and int(raw) > 0:
        return int(raw)
    return os.cpu_count() or 1
