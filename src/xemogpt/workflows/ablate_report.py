"""The ablation report: every metric of every cell as mean ± 95% interval over seeds, differences from the base
cell, plots, and the resolved recipes.

Written to ``<out>/``: ``report.md``, ``results.json`` (per-run values and the aggregates), ``results.csv`` (one row
per run), ``plots/metrics.png`` (every metric per cell with intervals and the seeds as dots), ``plots/delta.png``
(the main metrics' differences from the base), ``plots/curves.png`` (training loss per stage, mean over seeds) and
``recipes/<cell>.yaml`` (the resolved recipe of each cell, first seed).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from xemogpt.recipe import save_recipe
from xemogpt.workflows.ablation import Ablation, Cell, run_state
from xemogpt.workflows.stats import Interval, diff_ci, mean_ci

DEFAULT_MAIN = ("emotion_accuracy", "cues.visual.reproduced", "cues.auditory.reproduced", "emocue360.visual.f1",
                "emocue360.auditory.f1", "emocue360.emotional.f1")
_SKIP = {"n", "n_ref"}


def flat_metrics(system: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Numeric leaves of one system's metrics (``metrics["model"]``) as dotted keys, counts left out:
    ``{"emotion_accuracy": .., "cues.visual.reproduced": .., "emocue360.visual.f1": ..}``."""
    out: dict[str, float] = {}
    for k, v in system.items():
        if k in _SKIP:
            continue
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flat_metrics(v, key + "."))
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and v is not None and not math.isnan(v):
            out[key] = float(v)
    return out


def metric_label(key: str) -> str:
    """``emocue360.visual.f1`` -> ``EmoCue-360 visual F1`` (table headers and plot titles)."""
    parts = key.split(".")
    if key == "emotion_accuracy":
        return "emotion accuracy"
    if parts[0] == "emocue360" and len(parts) == 3:
        return f"EmoCue-360 {parts[1]} {parts[2][0].upper() if parts[2] != 'f1' else 'F1'}"
    if parts[0] == "cues" and len(parts) == 3:
        return f"{parts[1]} cues {'reproduced' if parts[2] == 'reproduced' else parts[2]}"
    return key.replace(".", " ").replace("_", " ")


def collect(ab: Ablation, base: dict[str, Any]) -> list[dict[str, Any]]:
    """Per cell: ``{"cell", "runs": {seed: {"metrics", "majority", "shuffled", "timings", "run_dir"}}}`` for the
    finished runs (runs not finished or made from another recipe are left out)."""
    out = []
    for cell in ab.cells():
        runs: dict[int, dict[str, Any]] = {}
        for seed in ab.seeds:
            run_dir = ab.run_dir(cell, seed)
            if run_state(run_dir, ab.recipe(cell, seed, base)) != "done":
                continue
            summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
            m = summary["metrics"]
            runs[seed] = {"metrics": flat_metrics(m["model"]), "timings": summary.get("timings_s", {}),
                          "run_dir": str(run_dir),
                          **{b: flat_metrics(m[b]) for b in ("majority", "shuffled") if b in m}}
        out.append({"cell": cell, "runs": runs})
    return out


def aggregate(cells: list[dict[str, Any]], base_cell: Cell) -> tuple[list[str], dict[str, Any]]:
    """(metric keys in order, {cell name: {"mean": {metric: Interval}, "diff": {metric: Interval}}})."""
    keys: list[str] = []
    for c in cells:
        for r in c["runs"].values():
            keys += [k for k in r["metrics"] if k not in keys]
    base = next((c for c in cells if c["cell"].name == base_cell.name), None)
    agg: dict[str, Any] = {}
    for c in cells:
        entry: dict[str, dict[str, Interval]] = {"mean": {}, "diff": {}}
        for k in keys:
            vals = {s: r["metrics"][k] for s, r in c["runs"].items() if k in r["metrics"]}
            if vals:
                entry["mean"][k] = mean_ci(list(vals.values()))
            if base is not None and vals and c["cell"].name != base_cell.name:
                bvals = {s: r["metrics"][k] for s, r in base["runs"].items() if k in r["metrics"]}
                if bvals:
                    entry["diff"][k] = diff_ci(vals, bvals)
        agg[c["cell"].name] = entry
    return keys, agg


def _cell_text(iv: Interval | None, signed: bool = False, star: bool = False) -> str:
    if iv is None:
        return "-"
    text = iv.format(signed=signed)
    return text + (" *" if star and iv.excludes_zero else "")


def _table(header: list[str], rows: list[list[str]], text_columns: int = 1) -> list[str]:
    aligns = ["---"] * text_columns + ["---:"] * (len(header) - text_columns)
    head = ["| " + " | ".join(header) + " |", "|" + "|".join(aligns) + "|"]
    return head + ["| " + " | ".join(r) + " |" for r in rows]


def _groups(keys: list[str]) -> list[tuple[str, list[str]]]:
    """Metric keys grouped for the full tables (emotion, cue reproduction, cue precision, EmoCue-360 P/R/F1)."""
    groups: dict[str, list[str]] = {}
    for k in keys:
        parts = k.split(".")
        if parts[0] == "emocue360" and len(parts) == 3:
            name = f"EmoCue-360 {'F1' if parts[2] == 'f1' else parts[2]}"
        elif parts[0] == "cues" and len(parts) == 3:
            name = "cue ids " + parts[2]
        else:
            name = "emotion and other"
        groups.setdefault(name, []).append(k)
    return list(groups.items())


def write_ablation_report(ab: Ablation, base: dict[str, Any] | None = None) -> Path:
    """Write ``<out>/report.md`` (and results, plots, recipes) from the finished runs; returns the report path."""
    from xemogpt.workflows.ablate_plots import plot_curves, plot_deltas, plot_metrics

    base = base if base is not None else ab.base_recipe()
    out = ab.out
    (out / "plots").mkdir(parents=True, exist_ok=True)
    (out / "recipes").mkdir(parents=True, exist_ok=True)
    base_cell = ab.baseline_cell()
    cells = collect(ab, base)
    keys, agg = aggregate(cells, base_cell)
    main = [k for k in (ab.metrics or DEFAULT_MAIN) if k in keys] or keys[:6]
    unknown = [k for k in (ab.metrics or []) if k not in keys]
    done = [c for c in cells if c["runs"]]
    n_runs = sum(len(c["runs"]) for c in cells)

    for c in cells:
        save_recipe(ab.recipe(c["cell"], ab.seeds[0], base), out / "recipes" / f"{c['cell'].name}.yaml")
    plots = {}
    if done:
        plots["metrics"] = plot_metrics(done, keys, agg, base_cell, out / "plots" / "metrics.png", metric_label)
        plots["delta"] = plot_deltas(done, main, agg, base_cell, out / "plots" / "delta.png", metric_label)
        plots["curves"] = plot_curves(done, out / "plots" / "curves.png")
    _write_results(ab, cells, keys, agg, base_cell, out)

    axes = list(ab.axes)
    seeds_n = len(ab.seeds)
    t_note = ("one seed per cell: no intervals (give `seeds:` several values)" if seeds_n == 1 else
              f"mean ± half-width of the 95% Student-t interval over the {seeds_n} seeds")
    lines = [f"# Ablation: {ab.name}", ""]
    if ab.description:
        lines += [ab.description.strip(), ""]
    lines += [f"Base recipe: `{ab.base}`" + (f" with overrides `{json.dumps(ab.base_overrides)}`" if ab.base_overrides
                                             else "") + (f" and `{' '.join(ab.cli_overrides)}`" if ab.cli_overrides
                                                         else "") + ".",
              f"Seeds: {', '.join(map(str, ab.seeds))}. Cells: {len(cells)}; finished runs: {n_runs} of "
              f"{len(cells) * seeds_n}. Base cell (what differences are taken from): **{base_cell.label}**.", "",
              f"Values are {t_note}. Differences are cell − base, paired by seed when both ran the same seeds "
              "(Welch's interval otherwise); `*` marks an interval that excludes zero. Metrics are on the test "
              "split of the recipe's data.", ""]
    if unknown:
        lines += [f"Metrics named in the ablation file but not produced by the evaluation: {', '.join(unknown)}.", ""]

    lines += ["## Cells", ""]
    rows = []
    for c in cells:
        cell: Cell = c["cell"]
        secs = [r["timings"].get("total") for r in c["runs"].values() if r["timings"].get("total") is not None]
        rows.append([f"`{cell.name}`"] + [cell.values[a] for a in axes] + [
            ", ".join(str(s) for s in sorted(c["runs"])) or "not run",
            f"{sum(secs) / len(secs):.0f}" if secs else "-"])
    lines += _table(["cell"] + axes + ["seeds done", "s per run"], rows, text_columns=1 + len(axes)) + [""]

    lines += ["## Main metrics", ""]
    rows = []
    for c in done:
        e = agg[c["cell"].name]
        rows.append([_bold(c["cell"], base_cell)] + [_cell_text(e["mean"].get(k)) for k in main])
    for b in ("majority", "shuffled"):
        bc = next((c for c in done if c["cell"].name == base_cell.name), done[0] if done else None)
        if bc is not None and any(b in r for r in bc["runs"].values()):
            rows.append([f"*{b} baseline*"] + [_cell_text(_baseline_iv(bc, b, k)) for k in main])
    lines += _table(["cell"] + [metric_label(k) for k in main], rows) + [""]
    lines += ["Baseline rows: `majority` gives every test clip a typical training description of the most frequent "
              "emotion; `shuffled` gives each clip another clip's generated description (from the base cell's runs).",
              ""]

    lines += ["## Difference from the base cell", ""]
    rows = [[c["cell"].label] + [_cell_text(agg[c["cell"].name]["diff"].get(k), signed=True, star=True) for k in main]
            for c in done if c["cell"].name != base_cell.name]
    lines += (_table(["cell − " + base_cell.label] + [metric_label(k) for k in main], rows) if rows
              else ["(no other finished cell)"]) + [""]

    lines += ["## All metrics", ""]
    for gname, gkeys in _groups(keys):
        lines += [f"### {gname}", ""]
        rows = [[_bold(c["cell"], base_cell)] + [_cell_text(agg[c["cell"].name]["mean"].get(k)) for k in gkeys]
                for c in done]
        lines += _table(["cell"] + [metric_label(k) for k in gkeys], rows) + [""]
        rows = [[c["cell"].label] + [_cell_text(agg[c["cell"].name]["diff"].get(k), signed=True, star=True)
                                     for k in gkeys] for c in done if c["cell"].name != base_cell.name]
        if rows:
            lines += ["Difference from the base:", ""]
            lines += _table(["cell − " + base_cell.label] + [metric_label(k) for k in gkeys], rows) + [""]

    lines += ["## Plots", ""]
    for name, title in (("metrics", "Every metric per cell (mean, 95% interval, seeds as dots)"),
                        ("delta", "Main metrics: difference from the base cell with 95% intervals"),
                        ("curves", "Training loss per stage (mean over seeds)")):
        if plots.get(name):
            lines += [f"**{title}**", "", f"![{name}](plots/{Path(plots[name]).name})", ""]
    lines += ["## Resolved recipes", "",
              "Each cell's resolved recipe (first seed; the others differ only in `seed` and `name`) is in "
              "`recipes/`; every run folder keeps its own `recipe.yaml`, checkpoints, logs and evaluation.", ""]
    lines += [f"- `{c['cell'].name}`: [recipes/{c['cell'].name}.yaml](recipes/{c['cell'].name}.yaml), runs in "
              f"`runs/{c['cell'].name}/`" for c in cells] + [""]
    path = out / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _bold(cell: Cell, base_cell: Cell) -> str:
    return f"**{cell.label}** (base)" if cell.name == base_cell.name else cell.label


def _baseline_iv(c: dict[str, Any], system: str, key: str) -> Interval | None:
    vals = [r[system][key] for r in c["runs"].values() if system in r and key in r[system]]
    return mean_ci(vals) if vals else None


def _iv_dict(iv: Interval | None) -> dict[str, Any] | None:
    return None if iv is None else {"mean": iv.mean, "half_width_95": iv.half, "low": iv.low, "high": iv.high,
                                    "n": iv.n}


def _write_results(ab: Ablation, cells: list[dict[str, Any]], keys: list[str], agg: dict[str, Any], base_cell: Cell,
                   out: Path) -> None:
    res = {"ablation": ab.name, "base_recipe": str(ab.base), "seeds": ab.seeds, "axes": list(ab.axes),
           "base_cell": base_cell.name, "metrics": keys, "cells": []}
    for c in cells:
        cell: Cell = c["cell"]
        res["cells"].append({
            "name": cell.name, "label": cell.label, "values": cell.values,
            "overrides": {k: v for k, v in cell.overrides},
            "runs": {str(s): r for s, r in sorted(c["runs"].items())},
            "mean": {k: _iv_dict(v) for k, v in agg[cell.name]["mean"].items()},
            "diff_from_base": {k: _iv_dict(v) for k, v in agg[cell.name]["diff"].items()},
        })
    (out / "results.json").write_text(json.dumps(res, indent=1), encoding="utf-8")
    with open(out / "results.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["cell", *ab.axes, "seed", *keys, "seconds"])
        for c in cells:
            for s, r in sorted(c["runs"].items()):
                w.writerow([c["cell"].name, *c["cell"].values.values(), s,
                            *[f"{r['metrics'][k]:.6f}" if k in r["metrics"] else "" for k in keys],
                            r["timings"].get("total", "")])
