"""Train a recipe through all its stages, then evaluate the test split."""

from __future__ import annotations

import argparse

COMMAND = "train"
DEFAULT_RECIPE = "recipes/xemogpt-tiny.yaml"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recipe", default=DEFAULT_RECIPE, help="recipe YAML (default: the tiny recipe)")
    p.add_argument("--run-dir", default=None, help="output folder (default: runs/<recipe name>)")
    p.add_argument("--no-eval", action="store_true", help="skip the evaluation after training")
    p.add_argument("--check", action="store_true", help="validate the recipe (names, arguments, weights) and stop")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --run-dir where it stopped (finished stages are skipped, the running "
                        "one continues from checkpoints/last.ckpt); starts a new run when there is nothing to resume")
    p.add_argument("--strict", action="store_true",
                   help="stop at the first bad clip (corrupt, truncated, missing media ...) instead of skipping and "
                        "counting it (= data.strict=true)")
    p.add_argument("overrides", nargs="*", help="recipe overrides key.sub=value (e.g. stages.2.epochs=3)")


def run(args: argparse.Namespace) -> int:
    from xemogpt.describe import require_weights
    from xemogpt.recipe import load_recipe, validate_recipe

    overrides = list(args.overrides) + (["data.strict=true"] if args.strict else [])
    recipe = load_recipe(args.recipe, overrides)
    validate_recipe(recipe)
    require_weights(recipe)  # every missing weights folder listed at once, before anything heavy
    if args.check:
        print(f"recipe {args.recipe} is valid")
        return 0
    from xemogpt.evaluation.report import print_metrics
    from xemogpt.training.callbacks import NonFiniteLossError, RunInterrupted, global_rank_from_env
    from xemogpt.training.runner import train_recipe

    run_dir = args.run_dir or f"runs/{recipe.get('name', 'run')}"
    rank = global_rank_from_env()
    try:
        summary = train_recipe(recipe, run_dir, evaluate=not args.no_eval, resume=True if args.resume else None)
    except RunInterrupted as e:
        if rank == 0:
            print(f"\n{e}\ncontinue with: xemogpt train --recipe {args.recipe} --run-dir {run_dir} --resume "
                  f"{' '.join(args.overrides)}".rstrip(), flush=True)
        # Rank 0 reports "stopped by a signal" (128 + signum) to make/SLURM; other ranks exit 0 so that Lightning's
        # process observer on rank 0 does not kill it while it finishes writing.
        return 128 + int(e.signum) if rank == 0 else 0
    except NonFiniteLossError as e:
        if rank == 0:
            print(f"\nerror: {e}", flush=True)
        return 3
    if rank != 0:
        return 0
    if "metrics" in summary:
        print_metrics(summary["metrics"])
    print(f"\nrun folder: {run_dir}  (checkpoint: {summary['checkpoint']}; timings s: {summary['timings_s']})")
    return 0
