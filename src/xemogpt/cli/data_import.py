"""Import an emotion dataset (EMER, MER, RAVDESS, CREMA-D or any table) into an EmoCue dataset folder.

Writes DIR/manifest.jsonl, DIR/dataset.json (with the import summary), DIR/import_log.txt (one line per skipped
or imperfect sample) and DIR/media (symlinks to the clips, or copies with --copy). Bad rows are skipped and
counted; --strict stops at the first one.

Examples:
  xemogpt data import --format mer_discrete --labels label.csv --subtitles subtitle.csv --media video --out data/mer
  xemogpt data import --format emer_v2 --descriptions emer.csv --media video --media audio --out data/emer
  xemogpt data import --format emer_v2 --descriptions emer.csv --media video --out data/emer --cues openai \
      --prompt-from extract_clue.py --api-key-env DEEPSEEK_API_KEY      # reference cues as the paper made them
  xemogpt data import --format ravdess --media RAVDESS --out data/ravdess --split-ratios 0.8,0.1,0.1 --seed 1
  xemogpt data import --format generic --labels clips.csv --map id=clip --map emotion=label --out data/mine
"""

from __future__ import annotations

import argparse
import sys

from xemogpt.cli.llm_options import add_llm_arguments

COMMAND = ("data", "import")
FORMATS = ("emer_v2", "emer_v1", "mer2024_ov", "mer_discrete", "ravdess", "cremad", "generic")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("--format", required=True, choices=FORMATS, help="the source dataset's layout")
    p.add_argument("--out", required=True, help="output dataset folder (created)")
    p.add_argument("--media", action="append", default=[], metavar="DIR",
                   help="folder searched (recursively) for <name>.<ext> media; repeat for several folders")
    p.add_argument("--labels", metavar="CSV", help="label file (name,discrete[,valence] or name,openset), or the "
                   "table of --format generic")
    p.add_argument("--subtitles", metavar="CSV", help="subtitles: name,sentence or name,chinese,english")
    p.add_argument("--descriptions", metavar="CSV", help="EMER descriptions (v2: name,chinese,english; "
                   "v1: names,emotions,subtitles,reasons)")
    p.add_argument("--map", action="append", default=[], metavar="KEY=COLUMN",
                   help="generic format: schema key to column, e.g. --map id=clip --map emotion=label")
    split = p.add_mutually_exclusive_group()
    split.add_argument("--split-from", metavar="COLUMN", help="column of the main file holding train/val/test")
    split.add_argument("--split-ratios", default="0.8,0.1,0.1", metavar="T,V,T",
                       help="ratios for seeded hash splits when the source has none (default 0.8,0.1,0.1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the hash splits (default 0)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--link", dest="copy", action="store_false", help="symlink media into DIR/media (default)")
    mode.add_argument("--copy", dest="copy", action="store_true", help="copy media into DIR/media")
    p.set_defaults(copy=False)
    p.add_argument("--cues", default="auto", choices=("auto", "offline", "sentences", "openai"),
                   help="cues from descriptions: the offline cue extractor, description sentences, an "
                   "OpenAI-compatible LLM (options below; a sample whose extraction fails is handled per "
                   "--on-failure, skip dropping it from the dataset), or auto (openai when an LLM option is given, "
                   "else the offline extractor when installed)")
    p.add_argument("--language", default="en", choices=("en", "zh"), help="column of chinese/english files")
    p.add_argument("--strict", action="store_true", help="stop at the first bad sample instead of skipping it")
    add_llm_arguments(p, "--cues openai")


def run(args: argparse.Namespace) -> int:
    import logging

    from xemogpt.cli.llm_options import check_llm_unused, given_llm_options, llm_extractor, print_llm_summary
    from xemogpt.data.adapters import ImportProblemError, get_adapter, import_dataset, parse_map

    logging.basicConfig(level=logging.ERROR, format="%(message)s")  # the summary below says what was skipped
    cues = args.cues
    if cues == "openai" or (cues == "auto" and given_llm_options(args)):
        cues = llm_extractor(args)
    else:
        check_llm_unused(args, "--cues openai")
    try:
        adapter_cls = get_adapter(args.format)
        adapter = adapter_cls(
            args.media,
            descriptions=args.descriptions,
            labels=args.labels,
            subtitles=args.subtitles,
            column_map=parse_map(args.map),
            language=args.language,
            cues=cues,
            split_from=args.split_from,
            split_ratios=args.split_ratios,
            seed=args.seed,
            strict=args.strict,
        )
        result = import_dataset(adapter, args.out, copy=args.copy)
    except ImportProblemError as e:
        print(f"xemogpt data import: {e}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError) as e:
        print(f"xemogpt data import: {e}", file=sys.stderr)
        return 2
    finally:
        if not isinstance(cues, str):
            print_llm_summary(cues)
    print(result.report.summary())
    print(f"wrote {args.out}/manifest.jsonl ({len(result.samples)} samples); problems listed in "
          f"{args.out}/import_log.txt")
    return 0 if result.samples else 1
