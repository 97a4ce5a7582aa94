"""Fine-tune a trained run (or export) on a new dataset: import it, evaluate before, train chosen parts, evaluate after.

Examples:
  xemogpt finetune --recipe recipes/finetune/moods-tiny.yaml
  xemogpt finetune --recipe recipes/finetune/moods-tiny.yaml --from exports/tiny stages.0.epochs=4
"""

from __future__ import annotations

import argparse

COMMAND = "finetune"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("--recipe", required=True, help="fine-tune recipe YAML (see recipes/finetune/)")
    p.add_argument("--from", dest="source", default=None,
                   help="run folder, export folder or .ckpt to start from (default: the recipe's finetune.from)")
    p.add_argument("--run-dir", default=None, help="output folder (default: runs/<recipe name>)")
    p.add_argument("--no-eval", action="store_true", help="skip the before/after evaluations")
    p.add_argument("overrides", nargs="*", help="recipe overrides key.sub=value (e.g. stages.0.epochs=3)")


def run(args: argparse.Namespace) -> int:
    import sys

    from xemogpt.recipe import RecipeError, load_recipe, set_key
    from xemogpt.workflows.finetune import finetune, format_before_after

    try:
        recipe = load_recipe(args.recipe, args.overrides)
        if args.source:
            set_key(recipe, "finetune.from", args.source)
        run_dir = args.run_dir or f"runs/{recipe.get('name', 'finetune')}"
        summary = finetune(recipe, run_dir, evaluate=not args.no_eval)
    except (RecipeError, FileNotFoundError) as e:
        print(f"xemogpt finetune: {e}", file=sys.stderr)
        return 2
    if "after" in summary:
        print(f"\nBefore and after fine-tuning ({summary['after'].get('split', 'test')} split of the new data):")
        print(format_before_after(summary))
        print(f"target {summary['target']}: {'improved' if summary['improved'] else 'NOT improved'}")
    print(f"\nrun folder: {run_dir} (checkpoint: {summary['checkpoint']}; timings s: {summary['timings_s']})")
    return 0
