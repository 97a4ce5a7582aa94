"""Extract visual / auditory / emotional cues from free-text descriptions into the EmoCue-360 JSON layout.

Examples::

    xemogpt extract --in descriptions.csv --out cues.json                      # offline extractor
    xemogpt extract --in descriptions.csv --out cues.json --extractor openai \\
        --endpoint http://localhost:8000/v1 --model qwen --prompt-file my_prompt.yaml
    DEEPSEEK_API_KEY=... xemogpt extract --in final-EMER-reason.csv --out EMER.json --extractor openai \\
        --prompt-from extract_clue.py --api-key-env DEEPSEEK_API_KEY --concurrency 50   # the paper's protocol

Input: a CSV with a name column (name / id) and a text column (description / english / reason / text), a JSON
object ``{name: text}``, or a JSONL file such as an EmoCue ``manifest.jsonl`` (fields ``id`` and
``description``). Output: ``{name: {"visual": [...], "auditory": [...], "emotional": [...]}}``. With the
``openai`` extractor a description whose request keeps failing is listed by name and handled per ``--on-failure``
(``skip``: no entry in the output; ``zero``: empty lists; ``stop``: no output, error after the others are cached).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

from xemogpt.cli.llm_options import add_llm_arguments

COMMAND = "extract"

ID_COLUMNS = ("name", "id", "sample", "sample_id", "video")
TEXT_COLUMNS = ("description", "english", "reason", "text", "caption", "output", "prediction")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--in", dest="input", required=True, help="descriptions: .csv, .json or .jsonl")
    parser.add_argument("--out", required=True, help="output cues JSON")
    parser.add_argument("--extractor", help="registered cue extractor: offline (default) or openai (the default when "
                        "an LLM option below is given)")
    parser.add_argument("--id-column", help=f"name column (default: first of {', '.join(ID_COLUMNS)})")
    parser.add_argument("--text-column", help=f"text column (default: first of {', '.join(TEXT_COLUMNS)})")
    parser.add_argument("--chunk", type=int, default=256, help="offline: descriptions per call (progress step)")
    add_llm_arguments(parser, "--extractor openai")


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
    from xemogpt.cli.llm_options import check_llm_unused, given_llm_options, llm_extractor, print_llm_summary

    texts = read_descriptions(Path(args.input), args.id_column, args.text_column)
    names = list(texts)
    result: dict[str, Any] = {}
    chosen = args.extractor or ("openai" if given_llm_options(args) else "offline")
    if chosen == "openai":
        extractor = llm_extractor(args)
        try:
            cue_lists = extractor.extract([texts[n] for n in names], names=names)
        finally:
            print_llm_summary(extractor)
        result = {n: c for n, c in zip(names, cue_lists) if c is not None}  # --on-failure skip: listed above
    else:
        check_llm_unused(args, "--extractor openai")
        if chosen == "offline":  # skip importing every registered component (seconds) for the built-in
            from xemogpt.cues import OfflineCueExtractor

            extractor = OfflineCueExtractor()
        else:
            extractor = registry.build("cue_extractor", chosen, key="--extractor")
        for start in range(0, len(names), args.chunk):
            chunk = names[start:start + args.chunk]
            for name, cues in zip(chunk, extractor.extract([texts[n] for n in chunk])):
                result[name] = cues
            print(f"extracted {len(result)}/{len(names)}", file=sys.stderr)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    counts = {m: sum(len(c.get(m, [])) for c in result.values()) for m in ("visual", "auditory", "emotional")}
    left = f" ({len(names) - len(result)} failed, left out)" if len(result) < len(names) else ""
    print(f"wrote {out}: {len(result)} samples{left}, cues " + ", ".join(f"{m} {n}" for m, n in counts.items()))
    return 0
