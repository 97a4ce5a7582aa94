"""Evaluate a trained run: batched generation, cue extraction, every applicable metric, a Markdown report."""

from __future__ import annotations

import argparse

from xemogpt.cli.llm_options import add_llm_arguments

COMMAND = "eval"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="run folder, export folder or .ckpt file")
    p.add_argument("--data", default=None, help="dataset folder (default: the run's data.root)")
    p.add_argument("--split", default="test", choices=("train", "val", "test", "all"),
                   help="split to evaluate; all: every sample whatever its split (default test)")
    p.add_argument("--out", default=None, help="output folder (default: <run>/eval-<split>)")
    p.add_argument("--extractor", default=None, help="cue extractor (default: the recipe's, else offline; openai when "
                   "an LLM extraction option is given)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--baselines", action=argparse.BooleanOptionalAction, default=None,
                   help="score the majority and shuffled baselines beside the model (default: the recipe's "
                   "eval.baselines, else on)")
    p.add_argument("--wheels", default=None, metavar="DIR",
                   help="AffectGPT's emotion_wheel folder (or a wheel mapping file): report the level-1 emotion-wheel "
                        "OV-MER beside OV-MER (default: the recipe's eval.wheels)")
    p.add_argument("--max-new-tokens", type=int, default=None)
    p.add_argument("--num-beams", type=int, default=None)
    p.add_argument("--do-sample", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--temperature", type=float, default=None)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--greedy", action="store_true", help="one beam, no sampling (reproducible)")
    add_llm_arguments(p, "--extractor openai")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from xemogpt.checkpointing.files import run_recipe_of
    from xemogpt.cli.llm_options import llm_or_named_extractor, print_llm_summary
    from xemogpt.data.schema import read_manifest
    from xemogpt.evaluation.baselines import run_training_data
    from xemogpt.evaluation.coverage import EvaluationError, check_split
    from xemogpt.evaluation.evaluate import evaluate_model
    from xemogpt.evaluation.report import print_metrics
    from xemogpt.models.loading import load_model
    from xemogpt.training.run import data_module

    recipe = run_recipe_of(args.checkpoint)
    root = Path(args.data or recipe["data"]["root"])
    if not (root / "manifest.jsonl").exists():
        raise EvaluationError(f"{root} has no manifest.jsonl; pass --data DIR (a folder made by `xemogpt data synth` "
                              "or `xemogpt data import`)")
    check_split(read_manifest(root, on_problem=_later), args.split, str(root))  # before the model loads
    model = load_model(args.checkpoint)
    dm = data_module(recipe, model, root, batch_size=args.batch_size)
    # the majority baseline comes from what the model saw: the run's own training data, not the evaluated set
    training = run_training_data(recipe) if args.data else None
    ckpt = Path(args.checkpoint)
    out = Path(args.out) if args.out else (ckpt if ckpt.is_dir() else ckpt.parent) / f"eval-{args.split}"
    ev = recipe.get("eval") or {}
    baselines = args.baselines if args.baselines is not None else bool(ev.get("baselines", True))
    extractor = llm_or_named_extractor(args, ev.get("extractor", "offline"))
    wheels = args.wheels or ev.get("wheels")
    results = evaluate_model(model, dm, out, split=args.split, extractor=extractor, batch_size=args.batch_size,
                             baselines=baselines, training=training, wheels=wheels, max_new_tokens=args.max_new_tokens,
                             num_beams=args.num_beams, do_sample=args.do_sample, temperature=args.temperature,
                             top_p=args.top_p, greedy=args.greedy or None,
                             seed=int(recipe.get("seed", 0)))
    print_llm_summary(extractor)
    print_metrics(results)
    print(f"\nwrote {out}/predictions.jsonl, metrics.json, report.md")
    return 0


def _later(sample_id: str, reason: str, detail: str, skipped: bool) -> None:
    """Bad manifest records are counted and reported by the evaluation itself."""
