"""Score predictions against references: EmoCue-360, OV-MER, emotion-wheel OV-MER, discrete metrics.

Examples::

    xemogpt score emocue360 --pred pred_cues.json --ref ref_cues.json [--json]
    xemogpt score ovmer --pred pred.csv --ref ref.csv --synonyms openset-synonym.zip
    xemogpt score ovmer-wheel --pred pred.csv --ref ref.csv --wheel wheels.yaml --level level1
    xemogpt score discrete --pred pred.csv --ref ref.csv --column emotion
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

COMMAND = "score"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    sub = parser.add_subparsers(dest="metric", metavar="METRIC", required=True)

    p = sub.add_parser("emocue360", help="cue-level P/R/F1 per modality (published EmoCue-360)",
                       description="EmoCue-360 of predicted cues against reference cues; both files in the "
                                   "published layout {name: {\"visual\": [...], \"auditory\": [...], "
                                   "\"emotional\": [...]}}.")
    p.add_argument("--pred", required=True, help="predicted cues JSON")
    p.add_argument("--ref", required=True, help="reference cues JSON")
    p.add_argument("--batch-size", type=int, default=128, help="sentences per encoder call (default 128)")
    p.add_argument("--per-sample", action="store_true", help="include every sample's scores in --json output")
    p.add_argument("--json", action="store_true", help="print the full result as JSON")

    p = sub.add_parser("ovmer", help="MER2024 open-vocabulary set precision/recall",
                       description="OV-MER: set-level precision/recall of 'name,openset' CSVs, with optional "
                                   "per-sample synonym groups (a folder or zip of <name>.npy files).")
    _label_files(p)
    p.add_argument("--synonyms", help="folder or zip of per-sample <name>.npy synonym groups")
    p.add_argument("--per-sample", action="store_true", help="include every sample's scores in --json output")
    p.add_argument("--json", action="store_true", help="print the result as JSON")

    p = sub.add_parser("ovmer-wheel", help="OV-MER with emotion-wheel grouping (AffectGPT EW metrics)",
                       description="OV-MER after mapping labels onto emotion wheels from a mapping file "
                                   "(see xemogpt.metrics.ovmer_wheel for the JSON/YAML/CSV layouts).")
    _label_files(p)
    p.add_argument("--wheel", required=True, help="wheel mapping file (.json, .yaml or .csv)")
    p.add_argument("--level", default="level1", choices=["level1", "level2"], help="wheel ring to cluster to")
    p.add_argument("--json", action="store_true", help="print the result as JSON")

    p = sub.add_parser("discrete", help="accuracy, weighted F1, UAR, WAR of single emotion labels",
                       description="Discrete emotion metrics of two 'name,<column>' CSVs, matched by name.")
    p.add_argument("--pred", required=True, help="predictions CSV")
    p.add_argument("--ref", required=True, help="references CSV")
    p.add_argument("--column", default="emotion", help="label column in both files (default: emotion)")
    p.add_argument("--labels", help="comma-separated class list (default: every label seen)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def _label_files(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pred", required=True, help="predictions CSV (name,openset)")
    p.add_argument("--ref", required=True, help="references CSV (name,openset)")
    p.add_argument("--column", default="openset", help="label-list column in both files (default: openset)")
    p.add_argument("--pred-column", help="label column of --pred if it differs")
    p.add_argument("--ref-column", help="label column of --ref if it differs")


def _load_json(path: str, what: str) -> Any:
    p = Path(path)
    if not p.is_file():
        raise SystemExit(f"error: {what} file {p} does not exist")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise SystemExit(f"error: {what} file {p} is not valid JSON ({err})") from err


def _fmt(x: float) -> str:
    return "nan" if isinstance(x, float) and math.isnan(x) else f"{x:.4f}"


def _emocue360(args: argparse.Namespace) -> int:
    from xemogpt.metrics.emocue360 import MODALITIES, CueFormatError, emocue360

    pred, ref = _load_json(args.pred, "--pred"), _load_json(args.ref, "--ref")
    try:
        res = emocue360(pred, ref, batch_size=args.batch_size, per_sample=args.per_sample)
    except CueFormatError as err:
        raise SystemExit(f"error: {err}") from err
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    unpredicted = len(set(ref) - set(pred)) if isinstance(pred, dict) and isinstance(ref, dict) else 0
    print(f"EmoCue-360: {res['samples']} predicted samples with a reference"
          + (f", {res['missing_ref']} without one (skipped)" if res["missing_ref"] else "")
          + (f", {res['extraction_failed']} null (failed extraction, skipped)" if res["extraction_failed"] else "")
          + (f"; {unpredicted} reference(s) with no prediction (not scored)" if unpredicted else ""))
    print(f"{'modality':<10} {'precision':>9} {'recall':>9} {'f1':>9} {'n':>6}  notes")
    for m in MODALITIES:
        r = res[m]
        notes = [f"{k}={r[k]}" for k in ("skipped_empty_ref", "empty_pred", "missing_key") if r.get(k)]
        if m == "auditory" and (r["dropped_text_cues_ref"] or r["dropped_text_cues_pred"]):
            notes.append(f"text cues dropped ref/pred={r['dropped_text_cues_ref']}/{r['dropped_text_cues_pred']}")
        print(f"{m:<10} {_fmt(r['precision']):>9} {_fmt(r['recall']):>9} {_fmt(r['f1']):>9} {r['n']:>6}  "
              + ", ".join(notes))
    return 0


def _columns(args: argparse.Namespace) -> tuple[str, str]:
    return args.pred_column or args.column, args.ref_column or args.column


def _ovmer(args: argparse.Namespace) -> int:
    from xemogpt.metrics.labels_io import LabelFormatError, load_synonyms, read_openset_csv
    from xemogpt.metrics.ovmer import ovmer

    pc, rc = _columns(args)
    try:
        pred, ref = read_openset_csv(args.pred, pc), read_openset_csv(args.ref, rc)
        syn = load_synonyms(args.synonyms) if args.synonyms else None
        res = ovmer(pred, ref, syn, per_sample=args.per_sample)
    except (LabelFormatError, FileNotFoundError) as err:
        raise SystemExit(f"error: {err}") from err
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(f"OV-MER on {res['n']} samples: precision (set-level accuracy) {_fmt(res['precision'])}, recall "
          f"{_fmt(res['recall'])}, avg {_fmt(res['avg'])}, F-score {_fmt(res['fscore'])}")
    notes = [f"{k}={res[k]}" for k in ("skipped_empty_ref", "missing_pred", "no_synonyms") if res[k]]
    if notes:
        print("  " + ", ".join(notes), file=sys.stderr)
    return 0


def _ovmer_wheel(args: argparse.Namespace) -> int:
    from xemogpt.metrics.labels_io import LabelFormatError, read_openset_csv
    from xemogpt.metrics.ovmer_wheel import load_wheel, ovmer_wheel

    pc, rc = _columns(args)
    try:
        pred, ref = read_openset_csv(args.pred, pc), read_openset_csv(args.ref, rc)
        res = ovmer_wheel(pred, ref, load_wheel(args.wheel), level=args.level)
    except (LabelFormatError, FileNotFoundError, ValueError) as err:
        raise SystemExit(f"error: {err}") from err
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(f"OV-MER emotion wheel ({args.level}, {len(res['wheels'])} wheel(s)): F-score {_fmt(res['fscore'])}, "
          f"precision {_fmt(res['precision'])}, recall {_fmt(res['recall'])}")
    for name, w in res["wheels"].items():
        print(f"  {name}: F {_fmt(w['fscore'])}  P {_fmt(w['precision'])}  R {_fmt(w['recall'])}  n {w['n']}")
    return 0


def _discrete(args: argparse.Namespace) -> int:
    from xemogpt.metrics.discrete import discrete_scores
    from xemogpt.metrics.labels_io import LabelFormatError, read_column_csv

    try:
        pred, ref = read_column_csv(args.pred, args.column), read_column_csv(args.ref, args.column)
    except (LabelFormatError, FileNotFoundError) as err:
        raise SystemExit(f"error: {err}") from err
    names = list(ref)
    missing = [n for n in names if n not in pred]
    labels = [x.strip() for x in args.labels.split(",")] if args.labels else None
    try:
        res = discrete_scores([pred.get(n, "") for n in names], [ref[n] for n in names], labels)
    except ValueError as err:
        raise SystemExit(f"error: {err}") from err
    res["missing_pred"] = len(missing)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(f"{res['n']} samples: accuracy {_fmt(res['accuracy'])}, weighted F1 {_fmt(res['weighted_f1'])}, "
          f"UAR {_fmt(res['uar'])}, WAR {_fmt(res['war'])}"
          + (f" ({len(missing)} references without a prediction count as wrong)" if missing else ""))
    return 0


def run(args: argparse.Namespace) -> int:
    return {"emocue360": _emocue360, "ovmer": _ovmer, "ovmer-wheel": _ovmer_wheel, "discrete": _discrete}[
        args.metric](args)
