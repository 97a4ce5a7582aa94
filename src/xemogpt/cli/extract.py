"""Extract visual / auditory / emotional cues from free-text descriptions into the EmoCue-360 JSON layout.

Examples::

    xemogpt extract --in descriptions.csv --out cues.json                      # offline extractor
    XEMOGPT_LLM_URL=http://localhost:8000/v1 XEMOGPT_LLM_MODEL=qwen \\
        xemogpt extract --in descriptions.csv --out cues.json --extractor openai

Input: a CSV with a name column (name / id) and a text column (description / english / reason / text), a JSON
object ``{name: text}``, or a JSONL file such as an EmoCue ``manifest.jsonl`` (fields ``id`` and
``description``). Output: ``{name: {"visual": [...], "auditory": [...], "emotional": [...]}}``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

COMMAND = "extract"

ID_COLUMNS = ("name", "id", "sample", "sample_id", "video")
TEXT_COLUMNS = ("description", "english", "reason", "text", "caption", "output")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--in", dest="input", required=True, help="descriptions: .csv, .json or .jsonl")
    parser.add_argument("--out", required=True, help="output cues JSON")
    parser.add_argument("--extractor", default="offline", help="registered cue extractor: offline (default), openai")
    parser.add_argument("--id-column", help=f"name column (default: first of {', '.join(ID_COLUMNS)})")
    parser.add_argument("--text-column", help=f"text column (default: first of {', '.join(TEXT_COLUMNS)})")
    parser.add_argument("--model", help="openai: model name (default $XEMOGPT_LLM_MODEL)")
    parser.add_argument("--url", help="openai: base URL (default $XEMOGPT_LLM_URL or $OPENAI_BASE_URL)")
    parser.add_argument("--cache-dir", help="openai: reply cache folder (default $XEMOGPT_CUE_CACHE or ~/.cache)")
    parser.add_argument("--no-cache", action="store_true", help="openai: neither read nor write the cache")
    parser.add_argument("--workers", type=int, help="openai: concurrent requests")
    parser.add_argument("--chunk", type=int, default=256, help="descriptions per extractor call (progress step)")


def _pick(columns: list[str], wanted: str | None, defaults: tuple[str, ...], path: Path, what: str) -> str:
    if wanted:
        if wanted not in columns:
            raise SystemExit(f"error: {path} has no column {wanted!r} (columns: {', '.join(columns)})")
        return wanted
    lower = {c.lower(): c for c in columns}
    for d in defaults:
        if d in lower:
            return lower[d]
    raise SystemExit(f"error: {path}: no {what} column among {', '.join(columns)}; pass --{what}-column")


def read_descriptions(path: Path, id_column: str | None = None, text_column: str | None = None) -> dict[str, str]:
    """``{name: description}`` from a CSV, a JSON object or a JSONL file."""
    if not path.is_file():
        raise SystemExit(f"error: input {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            cols = list(reader.fieldnames or [])
            idc = _pick(cols, id_column, ID_COLUMNS, path, "id")
            txc = _pick(cols, text_column, TEXT_COLUMNS, path, "text")
            return {row[idc]: row[txc] or "" for row in reader}
    if suffix == ".jsonl":
        out: dict[str, str] = {}
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as err:
                raise SystemExit(f"error: {path} line {i} is not valid JSON ({err})") from err
            idc = _pick(list(rec), id_column, ID_COLUMNS, path, "id")
            txc = _pick(list(rec), text_column, TEXT_COLUMNS, path, "text")
            out[str(rec[idc])] = str(rec[txc] or "")
        return out
    if suffix == ".json":
        data: Any = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise SystemExit(f"error: {path} must be a JSON object {{name: description}}")
        out = {}
        for k, v in data.items():
            if isinstance(v, dict):
                v = v[_pick(list(v), text_column, TEXT_COLUMNS, path, "text")]
            out[str(k)] = str(v or "")
        return out
    raise SystemExit(f"error: {path}: unknown input type {suffix!r}; use .csv, .json or .jsonl")


def run(args: argparse.Namespace) -> int:
    from xemogpt import registry
    from xemogpt.cues import OfflineCueExtractor, OpenAICueExtractor
    from xemogpt.cues.openai_compat import LLMExtractorError

    builtin = {"offline": OfflineCueExtractor, "openai": OpenAICueExtractor}

    texts = read_descriptions(Path(args.input), args.id_column, args.text_column)
    kwargs: dict[str, Any] = {}
    if args.extractor == "openai":
        for key, val in (("model", args.model), ("url", args.url), ("cache_dir", args.cache_dir),
                         ("max_workers", args.workers)):
            if val is not None:
                kwargs[key] = val
        if args.no_cache:
            kwargs["use_cache"] = False
    names = list(texts)
    result: dict[str, Any] = {}
    try:
        if args.extractor in builtin:  # skip importing every registered component (seconds) for the built-ins
            extractor = builtin[args.extractor](**kwargs)
        else:
            extractor = registry.build("cue_extractor", {"name": args.extractor, **kwargs}, key="--extractor")
        for start in range(0, len(names), args.chunk):
            chunk = names[start:start + args.chunk]
            for name, cues in zip(chunk, extractor.extract([texts[n] for n in chunk])):
                result[name] = cues
            print(f"extracted {len(result)}/{len(names)}", file=sys.stderr)
    except (registry.RegistryError, LLMExtractorError) as err:
        raise SystemExit(f"error: {err}") from err
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    counts = {m: sum(len(c.get(m, [])) for c in result.values()) for m in ("visual", "auditory", "emotional")}
    print(f"wrote {out}: {len(result)} samples, cues " + ", ".join(f"{m} {n}" for m, n in counts.items()))
    return 0
