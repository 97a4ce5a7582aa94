"""PNG plots of an ablation (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from xemogpt.workflows.ablation import Cell

BASE_COLOR = "#d62728"
COLOR = "#1f77b4"


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_metrics(cells: list[dict[str, Any]], keys: list[str], agg: dict[str, Any], base_cell: Cell, path: Path,
                 label: Callable[[str], str]) -> Path:
    """One panel per metric: each cell's mean with its 95% interval (error bar) and every seed's value (dots)."""
    plt = _plt()
    ncol = min(4, len(keys))
    nrow = math.ceil(len(keys) / ncol)
    names = [c["cell"].label for c in cells]
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol, 2.9 * nrow + 0.6), squeeze=False)
    x = np.arange(len(cells))
    for i, key in enumerate(keys):
        ax = axes[i // ncol][i % ncol]
        for j, c in enumerate(cells):
            iv = agg[c["cell"].name]["mean"].get(key)
            if iv is None:
                continue
            color = BASE_COLOR if c["cell"].name == base_cell.name else COLOR
            ax.errorbar([j], [iv.mean], yerr=[[iv.half or 0.0], [iv.half or 0.0]], fmt="o", color=color, capsize=4,
                        markersize=6, zorder=3)
            seeds = [r["metrics"][key] for r in c["runs"].values() if key in r["metrics"]]
            jitter = np.linspace(-0.12, 0.12, len(seeds)) if len(seeds) > 1 else np.zeros(len(seeds))
            ax.scatter(j + jitter, seeds, s=10, color="0.45", zorder=2)
        ax.set_title(label(key), fontsize=9)
        ax.set_xticks(x)
        ax.set_xlim(-0.5, len(cells) - 0.5)
        ax.set_xticklabels(names, rotation=40, ha="right", fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(axis="y", alpha=0.3)
    for i in range(len(keys), nrow * ncol):
        axes[i // ncol][i % ncol].axis("off")
    fig.suptitle(f"mean and 95% interval over seeds (red: base cell {base_cell.label})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_deltas(cells: list[dict[str, Any]], keys: list[str], agg: dict[str, Any], base_cell: Cell, path: Path,
                label: Callable[[str], str]) -> Path:
    """One panel per main metric: each cell's difference from the base with its 95% interval (0 dashed)."""
    plt = _plt()
    others = [c for c in cells if c["cell"].name != base_cell.name]
    ncol = min(3, max(1, len(keys)))
    nrow = math.ceil(max(1, len(keys)) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 0.5 * max(2, len(others)) * nrow + 1.6 * nrow),
                             squeeze=False)
    y = np.arange(len(others))
    for i, key in enumerate(keys):
        ax = axes[i // ncol][i % ncol]
        for j, c in enumerate(others):
            iv = agg[c["cell"].name]["diff"].get(key)
            if iv is None:
                continue
            color = COLOR if not iv.excludes_zero else ("#2ca02c" if iv.mean > 0 else BASE_COLOR)
            ax.errorbar([iv.mean], [j], xerr=[[iv.half or 0.0], [iv.half or 0.0]], fmt="o", color=color, capsize=3)
        ax.axvline(0.0, color="0.3", linestyle="--", linewidth=0.8)
        ax.set_yticks(y)
        ax.set_yticklabels([c["cell"].label for c in others], fontsize=7)
        ax.set_title(f"{label(key)} (cell − base)", fontsize=9)
        ax.tick_params(axis="x", labelsize=7)
        ax.grid(axis="x", alpha=0.3)
        if not others:
            ax.text(0.5, 0.5, "only the base cell ran", ha="center", va="center", transform=ax.transAxes)
    for i in range(len(keys), nrow * ncol):
        axes[i // ncol][i % ncol].axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def read_curve(csv_path: Path) -> tuple[np.ndarray, np.ndarray, str] | None:
    """(steps, losses, column) of one stage's Lightning CSV log: per-step training loss when logged, else the
    per-epoch one; None when the log holds no training loss."""
    if not csv_path.exists():
        return None
    with open(csv_path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for col in ("train/loss_step", "train/loss_epoch", "train/loss"):
        pts = [(int(float(r["step"])), float(r[col])) for r in rows if r.get(col) not in (None, "")]
        if len(pts) >= 2 or (pts and col != "train/loss_step"):
            pts.sort()
            return np.array([p[0] for p in pts]), np.array([p[1] for p in pts]), col
    return None


def stage_names(run_dir: Path) -> list[str]:
    """Stage log folders of a run, in training order (from its checkpoints ``<i>-<stage>.ckpt``)."""
    ckpts = sorted((run_dir / "checkpoints").glob("*.ckpt"), key=lambda p: int(p.name.split("-", 1)[0])
                   if p.name.split("-", 1)[0].isdigit() else 0)
    names = [p.stem.split("-", 1)[1] for p in ckpts if "-" in p.stem]
    return names or sorted(p.name for p in (run_dir / "logs").glob("*") if p.is_dir())


def plot_curves(cells: list[dict[str, Any]], path: Path) -> Path:
    """One panel per stage: each cell's training loss against the step, averaged over its seeds."""
    plt = _plt()
    stages: list[str] = []
    for c in cells:
        for r in c["runs"].values():
            stages += [s for s in stage_names(Path(r["run_dir"])) if s not in stages]
    stages = stages or ["(no logs)"]
    fig, axes = plt.subplots(1, len(stages), figsize=(4.6 * len(stages), 3.6), squeeze=False)
    cmap = plt.get_cmap("tab10" if len(cells) <= 10 else "tab20")
    for i, stage in enumerate(stages):
        ax = axes[0][i]
        col_used = None
        for j, c in enumerate(cells):
            by_step: dict[int, list[float]] = defaultdict(list)
            for r in c["runs"].values():
                curve = read_curve(Path(r["run_dir"]) / "logs" / stage / "metrics.csv")
                if curve is None:
                    continue
                steps, losses, col_used = curve
                for s, v in zip(steps, losses):
                    by_step[int(s)].append(float(v))
            if by_step:
                xs = sorted(by_step)
                ax.plot(xs, [np.mean(by_step[s]) for s in xs], marker="o" if len(xs) < 8 else None, markersize=3,
                        color=cmap(j % cmap.N), label=c["cell"].label, linewidth=1.2)
        ax.set_title(f"{stage}" + (f" ({col_used})" if col_used else ""), fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.set_ylabel("training loss", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if not ax.lines:
            ax.text(0.5, 0.5, "no training loss logged", ha="center", va="center", transform=ax.transAxes)
    handles, labels = axes[0][0].get_legend_handles_labels()
    for ax in axes[0][1:]:
        h, lab = ax.get_legend_handles_labels()
        for hh, ll in zip(h, lab):
            if ll not in labels:
                handles.append(hh)
                labels.append(ll)
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(6, len(labels)), fontsize=7, frameon=False)
        fig.tight_layout(rect=(0, 0.08 + 0.03 * (len(labels) // 6), 1, 1))
    else:
        fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
