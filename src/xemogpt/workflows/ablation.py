"""What an ablation is: a base recipe, axes of variation and seeds -> one training run per (cell, seed), then a
report (:func:`xemogpt.workflows.ablate.run_ablation` runs it).

An ablation file (``recipes/ablations/*.yaml``)::

    name: bridges-tiny
    base: ../xemogpt-tiny.yaml            # relative to this file, or a name in ./recipes/
    overrides: {stages.2.epochs: 8}       # applied to the base before every cell (dotted keys)
    seeds: [0, 1, 2]
    axes:                                 # axis -> value -> the overrides that value means ({} = the base as is)
      video_bridge:
        vecb: {}
        none: {model.video_bridge: {name: none}}
      vecb_tasks:
        "on": {}
        "off": {model.video_bridge.tasks: []}
    baseline: {video_bridge: vecb, vecb_tasks: "on"}   # the cell every other is compared with (default: first values)
    exclude: [{video_bridge: none, vecb_tasks: "off"}] # combinations that make no sense
    out: runs/ablations/bridges-tiny      # default: runs/ablations/<name>
    metrics: [emotion_accuracy, emocue360.visual.f1]   # columns of the main table (all metrics are reported)

Every cell is the cartesian product of one value per axis minus ``exclude``; each (cell, seed) trains and evaluates
as its own run in ``<out>/runs/<cell>/seed-<seed>/`` (see :func:`xemogpt.training.runner.train_recipe`). A run whose
``summary.json`` holds metrics and whose saved recipe equals the one the ablation now asks for is finished and is
never rerun, so an interrupted ablation resumes where it stopped; a run made from a different recipe (the file was
edited) or cut off half-way is trained again from scratch.
"""

from __future__ import annotations

import copy
import difflib
import itertools
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from xemogpt.errors import XemoGPTError
from xemogpt.recipe import RecipeError, apply_overrides, find_recipe, load_recipe, load_yaml, set_key

ABLATION_KEYS = ("name", "description", "base", "overrides", "seeds", "axes", "baseline", "exclude", "out", "metrics")
_VALUE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+-]*$")


class AblationError(XemoGPTError, ValueError):
    """An ablation file is malformed; the message names the file and key."""


@dataclass(frozen=True)
class Cell:
    """One combination of axis values: ``name`` is the folder name (values joined by ``_``), ``values`` maps
    axis -> value, ``overrides`` maps dotted recipe keys -> values (in axis order)."""

    name: str
    values: dict[str, str]
    overrides: tuple[tuple[str, Any], ...]

    @property
    def label(self) -> str:
        return "/".join(self.values.values())


@dataclass
class Ablation:
    """A parsed ablation file (see the module docstring)."""

    name: str
    path: Path | None
    base: Path
    axes: dict[str, dict[str, dict[str, Any]]]
    seeds: list[int]
    base_overrides: dict[str, Any] = field(default_factory=dict)
    cli_overrides: list[str] = field(default_factory=list)
    baseline: dict[str, str] = field(default_factory=dict)
    exclude: list[dict[str, str]] = field(default_factory=list)
    out: Path = Path("runs/ablations")
    metrics: list[str] | None = None
    description: str = ""

    # --- cells and recipes --------------------------------------------------------------------------------------
    def cells(self) -> list[Cell]:
        """Every combination of axis values in file order, minus the excluded ones."""
        names = list(self.axes)
        out = []
        for combo in itertools.product(*(list(self.axes[a]) for a in names)):
            values = dict(zip(names, combo))
            if any(all(values.get(k) == v for k, v in ex.items()) for ex in self.exclude):
                continue
            overrides: list[tuple[str, Any]] = []
            for axis, value in values.items():
                overrides += list(self.axes[axis][value].items())
            out.append(Cell("_".join(combo) if names else "base", values, tuple(overrides)))
        return out

    def baseline_cell(self) -> Cell:
        """The cell every other is compared with."""
        cells = self.cells()
        want = {a: self.baseline.get(a, next(iter(vals))) for a, vals in self.axes.items()}
        for c in cells:
            if c.values == want:
                return c
        raise AblationError(f"{self.path}: the baseline {want} is excluded or not a combination of the axes")

    def base_recipe(self) -> dict[str, Any]:
        recipe = load_recipe(self.base)
        for key, value in self.base_overrides.items():
            set_key(recipe, key, copy.deepcopy(value))
        return apply_overrides(recipe, self.cli_overrides)

    def recipe(self, cell: Cell, seed: int, base: dict[str, Any] | None = None) -> dict[str, Any]:
        """The resolved recipe of one run: base, the cell's overrides, the seed, a name saying which run it is."""
        recipe = copy.deepcopy(base if base is not None else self.base_recipe())
        for key, value in cell.overrides:
            try:
                set_key(recipe, key, copy.deepcopy(value))
            except RecipeError as e:
                raise AblationError(f"{self.path}: cell {cell.label}: {e}") from e
        recipe["seed"] = int(seed)
        recipe["name"] = f"{self.name}/{cell.name}/seed-{seed}"
        return recipe

    def run_dir(self, cell: Cell, seed: int) -> Path:
        return self.out / "runs" / cell.name / f"seed-{seed}"

    def validate(self) -> None:
        """Every cell's recipe is checked (names, arguments, stages) before anything trains; two cells that
        resolve to the same recipe are an error (one of them should be excluded)."""
        from xemogpt.recipe import validate_recipe

        base = self.base_recipe()
        seen: dict[str, str] = {}
        for cell in self.cells():
            recipe = self.recipe(cell, self.seeds[0], base)
            try:
                validate_recipe(recipe)
            except Exception as e:
                where = ", ".join(f"{a}={v}" for a, v in cell.values.items())
                raise AblationError(f"{self.path}: cell {cell.label} ({where}) gives an invalid recipe: {e}. "
                                    "Fix the axis overrides or add the combination to 'exclude'.") from e
            key = json.dumps({k: v for k, v in recipe.items() if k != "name"}, sort_keys=True, default=str)
            if key in seen:
                raise AblationError(f"{self.path}: cells {seen[key]} and {cell.label} resolve to the same recipe; "
                                    "exclude one of them")
            seen[key] = cell.label
        self.baseline_cell()


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, list):  # ["key=value", ...] like the command line
        out: dict[str, Any] = {}
        for item in value:
            if not isinstance(item, str) or "=" not in item:
                raise AblationError(f"{where}: list items must look like key.sub=value, got {item!r}")
            k, raw = item.split("=", 1)
            out[k.strip()] = yaml.safe_load(raw) if raw else ""
        return out
    if not isinstance(value, dict):
        raise AblationError(f"{where}: expected a mapping of dotted recipe keys to values, got {type(value).__name__}")
    return dict(value)


def load_ablation(path: str | Path, overrides: list[str] | None = None, out: str | Path | None = None,
                  seeds: list[int] | None = None) -> Ablation:
    """Parse an ablation file. ``overrides`` (``key=value``) apply to the base recipe after the file's own;
    ``out`` and ``seeds`` replace the file's."""
    p = Path(path)
    if not p.exists():
        alt = Path("recipes/ablations") / p
        p = alt if alt.exists() else alt.with_suffix(".yaml") if alt.with_suffix(".yaml").exists() else p
    if not p.exists():
        raise FileNotFoundError(f"ablation file {str(path)!r} not found (looked in ./ and ./recipes/ablations/)")
    data = load_yaml(p, "an ablation file", AblationError)
    for key in data:
        if key not in ABLATION_KEYS:
            near = difflib.get_close_matches(str(key), ABLATION_KEYS, n=2)
            raise AblationError(f"{p}: unknown key {key!r}." + (f" Did you mean {', '.join(map(repr, near))}?" if near
                                                                else f" Keys: {', '.join(ABLATION_KEYS)}."))
    if not data.get("base"):
        raise AblationError(f"{p}: 'base' (the recipe every cell starts from) is missing")
    base = Path(os.path.normpath(p.parent / str(data["base"])))
    if not base.exists():
        try:
            base = find_recipe(str(data["base"]))
        except FileNotFoundError as e:
            raise AblationError(f"{p}: base recipe {data['base']!r} not found next to the file or in ./recipes/") from e
    axes_raw = data.get("axes") or {}
    if not isinstance(axes_raw, dict):
        raise AblationError(f"{p}: 'axes' must map an axis name to {{value: overrides}}")
    axes: dict[str, dict[str, dict[str, Any]]] = {}
    for axis, values in axes_raw.items():
        if not isinstance(values, dict) or not values:
            raise AblationError(f"{p}: axes.{axis} must map each value name to its overrides ({{}} for the base)")
        axes[str(axis)] = {}
        for value, ov in values.items():
            value = _value_name(value)
            if not _VALUE_RE.match(value):
                raise AblationError(f"{p}: axes.{axis}: value name {value!r} must be letters, digits, '.', '+', '-' "
                                    "(it becomes part of a folder name)")
            axes[str(axis)][value] = _mapping(ov, f"{p}: axes.{axis}.{value}")
    seed_list = seeds if seeds is not None else data.get("seeds", [0])
    if isinstance(seed_list, int):
        seed_list = [seed_list]
    if not isinstance(seed_list, list) or not seed_list or not all(isinstance(s, int) for s in seed_list):
        raise AblationError(f"{p}: 'seeds' must be a non-empty list of integers, got {seed_list!r}")
    baseline = {str(k): _value_name(v) for k, v in (data.get("baseline") or {}).items()}
    for k, v in baseline.items():
        if k not in axes or v not in axes[k]:
            raise AblationError(f"{p}: baseline {k}={v} is not an axis value; axes: "
                                + "; ".join(f"{a}: {', '.join(vs)}" for a, vs in axes.items()))
    exclude = []
    for i, ex in enumerate(data.get("exclude") or []):
        if not isinstance(ex, dict) or not ex:
            raise AblationError(f"{p}: exclude.{i} must be a mapping axis -> value")
        ex = {str(k): _value_name(v) for k, v in ex.items()}
        for k, v in ex.items():
            if k not in axes or v not in axes[k]:
                raise AblationError(f"{p}: exclude.{i}: {k}={v} is not an axis value")
        exclude.append(ex)
    name = str(data.get("name") or p.stem)
    ab = Ablation(name=name, path=p, base=base, axes=axes, seeds=[int(s) for s in seed_list],
                  base_overrides=_mapping(data.get("overrides"), f"{p}: overrides"),
                  cli_overrides=list(overrides or []),
                  baseline=baseline, exclude=exclude, out=Path(out or data.get("out") or f"runs/ablations/{name}"),
                  metrics=list(data["metrics"]) if data.get("metrics") else None,
                  description=str(data.get("description") or ""))
    if not ab.cells():
        raise AblationError(f"{p}: every combination is excluded; nothing to run")
    return ab


def _value_name(v: Any) -> str:
    # YAML reads on/off/yes/no as booleans; an axis value named "on" should stay "on".
    if isinstance(v, bool):
        return "on" if v else "off"
    return str(v)


# --- running ----------------------------------------------------------------------------------------------------
def _normalised(recipe: dict[str, Any]) -> Any:
    return yaml.safe_load(yaml.safe_dump(recipe, sort_keys=True))


def run_state(run_dir: Path, recipe: dict[str, Any]) -> str:
    """``done`` (metrics written from this very recipe), ``stale`` (finished from another recipe), ``partial``
    (started, not finished) or ``new``."""
    summary, saved = run_dir / "summary.json", run_dir / "recipe.yaml"
    if not run_dir.exists() or not any(run_dir.iterdir()):
        return "new"
    if not summary.exists() or not saved.exists():
        return "partial"
    try:
        done = "metrics" in json.loads(summary.read_text(encoding="utf-8"))
        same = yaml.safe_load(saved.read_text(encoding="utf-8")) == _normalised(recipe)
    except (OSError, ValueError, yaml.YAMLError):
        return "partial"
    if not done:
        return "partial"
    return "done" if same else "stale"


