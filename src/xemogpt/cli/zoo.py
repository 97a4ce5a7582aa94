"""List the registered components by kind (or describe a recipe's model)."""

from __future__ import annotations

import argparse
import json

COMMAND = "zoo"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kind", default=None, help="only this kind (video_encoder, projector, ...)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--describe", metavar="RECIPE", default=None,
                   help="build the recipe's model on the meta device and print components, parameter counts, shapes")


def run(args: argparse.Namespace) -> int:
    from xemogpt import registry

    if args.describe:
        from xemogpt.describe import describe_recipe

        return describe_recipe(args.describe, as_json=args.json)
    if args.kind and args.kind not in registry.KINDS:
        raise SystemExit(f"unknown kind {args.kind!r}; kinds: {', '.join(registry.KINDS)}")
    entries = registry.entries(args.kind)
    if args.json:
        out: dict[str, list] = {}
        for e in entries:
            out.setdefault(e.kind, []).append({"name": e.name, "class": e.qualname, "description": e.description,
                                               "aliases": list(e.aliases)})
        print(json.dumps(out, indent=2))
        return 0
    kind = None
    for e in entries:
        if e.kind != kind:
            kind = e.kind
            print(f"\n{kind}:")
        also = f" (also: {', '.join(e.aliases)})" if e.aliases else ""
        print(f"  {e.name:<24} {e.description}{also}")
    return 0
