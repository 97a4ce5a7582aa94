"""Run an ablation: train and evaluate every cell x seed of an ablation file (resumable), then write the report.

Options go before the file, recipe overrides after it.

Examples:
  xemogpt ablate recipes/ablations/bridges-tiny.yaml
  xemogpt ablate --seeds 0 --out runs/ablations/quick bridges-tiny stages.2.epochs=2
  xemogpt ablate --dry-run bridges-tiny          # validate every cell, list the runs and their state
  xemogpt ablate --report-only bridges-tiny      # rebuild the report from the finished runs
"""

from __future__ import annotations

import argparse

COMMAND = "ablate"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("ablation", help="ablation YAML (a path, or a name in recipes/ablations/)")
    p.add_argument("--out", default=None, help="output folder (default: the file's 'out', else runs/ablations/<name>)")
    p.add_argument("--seeds", default=None, metavar="S1,S2", help="replace the file's seeds, e.g. 0,1")
    p.add_argument("--only", action="append", default=None, metavar="CELL",
                   help="train only this cell (folder name or label like vecb/aecb/on); repeatable")
    p.add_argument("--rerun", action="store_true", help="train finished runs again")
    p.add_argument("--dry-run", action="store_true", help="validate every cell's recipe and list the runs")
    p.add_argument("--report-only", action="store_true", help="write the report from the finished runs only")
    p.add_argument("overrides", nargs="*", help="overrides of the base recipe, key.sub=value (after the file's own)")


def run(args: argparse.Namespace) -> int:
    import sys

    from xemogpt.workflows.ablate import AblationError, load_ablation, run_ablation, run_state

    try:
        seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else None
    except ValueError:
        print(f"xemogpt ablate: --seeds {args.seeds!r} must be comma-separated integers", file=sys.stderr)
        return 2
    try:
        ab = load_ablation(args.ablation, args.overrides, out=args.out, seeds=seeds)
        if args.dry_run or args.report_only:
            ab.validate()
            base = ab.base_recipe()
            cells = ab.cells()
            print(f"ablation {ab.name}: {len(cells)} cells x {len(ab.seeds)} seeds -> {ab.out}")
            for c in cells:
                states = [run_state(ab.run_dir(c, s), ab.recipe(c, s, base)) for s in ab.seeds]
                mark = " (base)" if c.name == ab.baseline_cell().name else ""
                print(f"  {c.label:32s}{mark:8s} {', '.join(f'seed {s}: {st}' for s, st in zip(ab.seeds, states))}")
            if args.report_only:
                from xemogpt.workflows.ablate_report import write_ablation_report

                print(f"report: {write_ablation_report(ab, base)}")
            return 0
        result = run_ablation(ab, only=args.only, rerun=args.rerun)
    except (AblationError, FileNotFoundError) as e:
        print(f"xemogpt ablate: {e}", file=sys.stderr)
        return 2
    print(f"\nablation {ab.name}: trained {len(result['trained'])} run(s), reused {len(result['reused'])}, "
          f"{result['seconds']:.0f} s. Report: {result['report']}")
    return 0
