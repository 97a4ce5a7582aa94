"""Export a run as safetensors weights + model spec + resolved recipe + model card."""

from __future__ import annotations

import argparse

COMMAND = "export"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run folder or checkpoint")
    p.add_argument("--out", required=True, help="output folder")


def run(args: argparse.Namespace) -> int:
    from xemogpt.workflows.export import export_run

    out = export_run(args.run, args.out)
    print(f"exported {args.run} -> {out} (model.safetensors, model_spec.json, recipe.yaml, README.md)")
    return 0
