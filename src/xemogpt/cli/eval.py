"""Evaluate a trained run: batched generation, cue extraction, every applicable metric, a Markdown report."""

from __future__ import annotations

import argparse

COMMAND = "eval"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="run folder, export folder or .ckpt file")
    p.add_argument("--data", default=None, help="dataset folder (default: the run's data.root)")
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument("--out", default=None, help="output folder (default: <run>/eval-<split>)")
    p.add_argument("--extractor", default=None, help="cue extractor (default: the recipe's, else offline)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--no-baselines", action="store_true")
    p.add_argument("--max-new-tokens", type=int, default=None)
    p.add_argument("--num-beams", type=int, default=None)
    p.add_argument("--do-sample", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--temperature", type=float, default=None)
    p.add_argument("--top-p", type=float, default=None)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from xemogpt.evaluation.evaluate import evaluate_model
    from xemogpt.evaluation.report import print_metrics
    from xemogpt.training.checkpoints import load_model, run_recipe_of
    from xemogpt.training.run import data_module

    model = load_model(args.checkpoint)
    recipe = run_recipe_of(args.checkpoint)
    root = Path(args.data or recipe["data"]["root"])
    if not (root / "manifest.jsonl").exists():
        raise SystemExit(f"{root} has no manifest.jsonl; pass --data DIR (a folder made by `xemogpt data synth` or "
                         "`xemogpt data import`)")
    dm = data_module(recipe, model, root, batch_size=args.batch_size)
    ckpt = Path(args.checkpoint)
    out = Path(args.out) if args.out else (ckpt if ckpt.is_dir() else ckpt.parent) / f"eval-{args.split}"
    extractor = args.extractor or (recipe.get("eval") or {}).get("extractor", "offline")
    results = evaluate_model(model, dm, out, split=args.split, extractor=extractor, batch_size=args.batch_size,
                             baselines=not args.no_baselines, max_new_tokens=args.max_new_tokens,
                             num_beams=args.num_beams, do_sample=args.do_sample, temperature=args.temperature,
                             top_p=args.top_p, seed=int(recipe.get("seed", 0)))
    print_metrics(results)
    print(f"\nwrote {out}/predictions.jsonl, metrics.json, report.md")
    return 0
