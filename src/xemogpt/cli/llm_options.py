"""The LLM cue-extractor options shared by ``xemogpt extract``, ``xemogpt eval`` and ``xemogpt data import``.

Each command calls :func:`add_llm_arguments` once, then :func:`llm_extractor` when its selector (``--extractor
openai`` or ``--cues openai``) asks for the LLM; :func:`check_llm_unused` rejects LLM options given to another
extractor. The API key is read from an environment variable, never from the command line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Any

# dest -> (flag, extractor argument)
_OPTIONS = {
    "llm_endpoint": ("--endpoint", "endpoint"),
    "llm_model": ("--model", "model"),
    "llm_api_key_env": ("--api-key-env", "api_key_env"),
    "llm_prompt_file": ("--prompt-file", "prompt_file"),
    "llm_prompt_from": ("--prompt-from", "prompt_from"),
    "llm_concurrency": ("--concurrency", "concurrency"),
    "llm_retries": ("--retries", "retries"),
    "llm_timeout": ("--timeout", "timeout"),
    "llm_on_failure": ("--on-failure", "on_failure"),
    "llm_cache_dir": ("--cue-cache", "cache_dir"),
}


def add_llm_arguments(parser: argparse.ArgumentParser, selector: str) -> None:
    """Add the options (all defaulting to None, so that a recipe's settings show through) to ``parser``;
    ``selector`` is how the command picks the LLM, e.g. ``--extractor openai``."""
    g = parser.add_argument_group(f"LLM cue extraction (with {selector}; any OpenAI-compatible chat endpoint)")
    g.add_argument("--endpoint", dest="llm_endpoint", metavar="URL",
                   help="base URL, e.g. https://api.deepseek.com or http://localhost:8000/v1 (default: the "
                   "--prompt-from script's base_url, else $XEMOGPT_LLM_URL or $OPENAI_BASE_URL)")
    g.add_argument("--model", dest="llm_model", metavar="NAME",
                   help="model name (default: the --prompt-from script's model, else $XEMOGPT_LLM_MODEL)")
    g.add_argument("--api-key-env", dest="llm_api_key_env", metavar="VAR",
                   help="environment variable holding the API key (default OPENAI_API_KEY; no key sent when unset)")
    g.add_argument("--prompt-file", dest="llm_prompt_file", metavar="FILE",
                   help="YAML/JSON prompt: system, optional example and sampling (see xemogpt.cues.prompts)")
    g.add_argument("--prompt-from", dest="llm_prompt_from", metavar="FILE.py",
                   help="your copy of XEmoGPT's EmoCue-360/extract_clue.py: its prompts, model and settings, read "
                   "without running it (the paper's protocol)")
    g.add_argument("--concurrency", dest="llm_concurrency", type=int, metavar="N",
                   help="requests in flight at once (default 16)")
    g.add_argument("--retries", dest="llm_retries", type=int, metavar="N",
                   help="retries per description on 429, 5xx, timeouts and malformed replies (default 5)")
    g.add_argument("--timeout", dest="llm_timeout", type=float, metavar="S", help="seconds per request (default 60)")
    g.add_argument("--on-failure", dest="llm_on_failure", choices=("skip", "zero", "stop"),
                   help="a description still failing after the retries: leave it out, give it empty cue lists, or "
                   "stop once the others are done (default stop); failures are always listed by name")
    g.add_argument("--cue-cache", dest="llm_cache_dir", metavar="DIR",
                   help="cache of replies (default $XEMOGPT_CUE_CACHE or ~/.cache/xemogpt/cues)")
    g.add_argument("--no-cue-cache", dest="llm_no_cache", action="store_true",
                   help="neither read nor write the reply cache")


def given_llm_options(args: argparse.Namespace) -> list[str]:
    """The flags of the LLM options that were set."""
    flags = [flag for dest, (flag, _) in _OPTIONS.items() if getattr(args, dest, None) is not None]
    return flags + (["--no-cue-cache"] if getattr(args, "llm_no_cache", False) else [])


def check_llm_unused(args: argparse.Namespace, selector: str) -> None:
    """Exit with an error when LLM options were given but the command does not use the LLM extractor."""
    given = given_llm_options(args)
    if given:
        raise SystemExit(f"error: {', '.join(given)} appl{'ies' if len(given) == 1 else 'y'} only with {selector}")


def llm_kwargs(args: argparse.Namespace, base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Extractor arguments: ``base`` (e.g. a recipe's ``eval.extractor`` mapping) overridden by the options set."""
    kwargs = {k: v for k, v in (base or {}).items() if k != "name"}
    for dest, (_, arg) in _OPTIONS.items():
        value = getattr(args, dest, None)
        if value is not None:
            kwargs[arg] = value
    if getattr(args, "llm_no_cache", False):
        kwargs["use_cache"] = False
    return kwargs


def llm_extractor(args: argparse.Namespace, base: Mapping[str, Any] | None = None):
    """The ``openai`` cue extractor from the options; its settings go to stderr."""
    from xemogpt.cues.openai_compat import OpenAICueExtractor

    extractor = OpenAICueExtractor(**llm_kwargs(args, base))
    print(f"cue extraction with {extractor.describe()}", file=sys.stderr)
    for note in extractor.spec.notes:
        print(f"  note: {note}", file=sys.stderr)
    return extractor


def print_llm_summary(extractor: Any) -> None:
    """The closing summary (requests, cache hits, retries, failures by name, tokens) on stderr."""
    stats = getattr(extractor, "stats", None)
    if stats is not None and stats.descriptions:
        print(stats.summary(), file=sys.stderr)


def llm_or_named_extractor(args: argparse.Namespace, configured: Any, selector: str = "--extractor openai") -> Any:
    """``--extractor`` (else ``configured``, e.g. the recipe's ``eval.extractor``) as an extractor object when it
    is the LLM one - built from the recipe's settings overridden by the options - else the name or mapping as is."""
    chosen = args.extractor or ("openai" if given_llm_options(args) else configured)
    name = chosen.get("name") if isinstance(chosen, Mapping) else chosen
    if name != "openai":
        check_llm_unused(args, selector)
        return chosen
    base = configured if isinstance(configured, Mapping) and configured.get("name") == "openai" else None
    return llm_extractor(args, base)
