"""The ``xemogpt`` command line.

Every module in this package that defines ``COMMAND`` (a name, or a ``(group, name)`` pair such as
``("data", "synth")``), ``add_arguments(parser)`` and ``run(args) -> int`` becomes a subcommand, so adding a
command never means editing a central list.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys


def user_errors() -> tuple[type[BaseException], ...]:
    """The project's own errors (:class:`xemogpt.errors.XemoGPTError`): each message already names the file, key or
    sample and says what to do, so the command prints it without a traceback (set XEMOGPT_DEBUG=1 to see one)."""
    from xemogpt.errors import XemoGPTError

    return (XemoGPTError,)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xemogpt", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        mod = importlib.import_module(f"{__name__}.{info.name}")
        command = getattr(mod, "COMMAND", None)
        if command is None:
            continue
        help_text = (mod.__doc__ or "").strip().split("\n")[0]
        if isinstance(command, tuple):
            group, name = command
            if group not in groups:
                gp = sub.add_parser(group, help=f"{group} commands")
                groups[group] = gp.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
            p = groups[group].add_parser(name, help=help_text, description=mod.__doc__)
        else:
            p = sub.add_parser(command, help=help_text, description=mod.__doc__)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "_run"):
        parser.print_help()
        return 2
    errors = () if os.environ.get("XEMOGPT_DEBUG") else user_errors()
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except errors as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
