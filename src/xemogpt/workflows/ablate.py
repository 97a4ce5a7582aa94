"""Running an ablation (:func:`run_ablation`): every (cell, seed) of an ablation file trains and evaluates as its own
run, finished runs are reused, then the report is written. What an ablation file says is :mod:`.ablation`."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from typing import Any

from xemogpt.workflows.ablation import (  # noqa: F401  (load_ablation and run_state: the API with run_ablation)
    Ablation,
    AblationError,
    load_ablation,
    run_state,
)


def run_ablation(ab: Ablation, *, only: list[str] | None = None, rerun: bool = False, report: bool = True,
                 echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Train and evaluate every missing (cell, seed) run, then write the report.

    Returns ``{"trained": [...], "reused": [...], "report": path or None, "seconds": float}``. ``only`` restricts
    training to cells whose name or label is listed (the report still covers every finished run).
    """
    from xemogpt.training.runner import train_recipe

    t0 = time.time()
    ab.validate()
    base = ab.base_recipe()
    cells = ab.cells()
    if only:
        known = {c.name for c in cells} | {c.label for c in cells}
        bad = [o for o in only if o not in known]
        if bad:
            raise AblationError(f"--only {', '.join(bad)}: no such cell; cells: {', '.join(c.name for c in cells)}")
    ab.out.mkdir(parents=True, exist_ok=True)
    trained, reused = [], []
    took: list[float] = []
    todo = [(c, s) for c in cells for s in ab.seeds if not only or c.name in only or c.label in only]
    for k, (cell, seed) in enumerate(todo, 1):
        recipe = ab.recipe(cell, seed, base)
        run_dir = ab.run_dir(cell, seed)
        state = run_state(run_dir, recipe)
        tag = f"[{k}/{len(todo)}] {cell.label} seed {seed}"
        if state == "done" and not rerun:
            echo(f"{tag}: finished earlier, reusing {run_dir}")
            reused.append(str(run_dir))
            continue
        if state in ("partial", "stale") or (state == "done" and rerun):
            why = {"partial": "was cut off", "stale": "was made from a different recipe", "done": "--rerun"}[state]
            echo(f"{tag}: {run_dir} {why}; training it again from scratch")
            shutil.rmtree(run_dir)
        echo(f"{tag}: training into {run_dir}")
        ts = time.time()
        train_recipe(recipe, run_dir)
        took.append(time.time() - ts)
        trained.append(str(run_dir))
        left = sum(1 for c, s in todo[k:] if run_state(ab.run_dir(c, s), ab.recipe(c, s, base)) != "done")
        eta = f"; about {left * sum(took) / len(took) / 60:.0f} min left for {left} run(s)" if left else ""
        echo(f"{tag}: done in {took[-1]:.0f} s{eta}")
    out: dict[str, Any] = {"trained": trained, "reused": reused, "report": None}
    if report:
        from xemogpt.workflows.ablate_report import write_ablation_report

        out["report"] = str(write_ablation_report(ab, base))
    out["seconds"] = round(time.time() - t0, 1)
    return out
