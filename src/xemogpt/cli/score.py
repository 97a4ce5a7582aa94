"""Score predictions against references: EmoCue-360, OV-MER, emotion-wheel OV-MER, discrete metrics.

Examples::

    xemogpt score emocue360 --pred pred_cues.json --ref ref_cues.json [--json]
    xemogpt score ovmer --pred pred.csv --ref ref.csv --synonyms openset-synonym.zip
    xemogpt score ovmer-wheel --pred pred.csv --ref ref.csv --wheels AffectGPT/emotion_wheel
    xemogpt score ovmer-wheel --pred pred.csv --ref ref.csv --wheel my_wheels.yaml --level level1
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
                       description="Emotion-wheel OV-MER. --wheels DIR takes AffectGPT's published emotion_wheel "
                                   "folder as it is (wheel1.xlsx ... wheel5.xlsx, synonym.xlsx, format.csv) and "
                                   "reports every published variant (case1, case2, case3_wheel<k>_level<1|2>), the "
                                   "level-1 and level-2 means over wheels and the MER2025 score. --wheel FILE takes a "
                                   "hand-made mapping (see xemogpt.metrics.ovmer_wheel for the JSON/YAML/CSV/xlsx "
                                   "layouts) at one --level.")
    _label_files(p)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--wheels", metavar="DIR", help="AffectGPT's published emotion_wheel folder")
    src.add_argument("--wheel", metavar="FILE", help="hand-made wheel mapping file (.json, .yaml, .csv, .xlsx)")
    p.add_argument("--level", default="level1", choices=["level1", "level2"],
                   help="wheel ring to cluster to, with --wheel (--wheels reports both)")
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
    p.add_argument("--label-parse", default="published", choices=["published", "literal"],
                   help="how label-list strings are split: 'published' (default) as the published code, on quotes "
                        "and commas (\"don't believe\" -> don, t believe), which reproduces published numbers; "
                        "'literal' reads them as Python lists (apostrophes and commas inside a label kept)")


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


def _fail(err: Exception) -> int:
    print(f"error: {err}", file=sys.stderr)
    return 2


def _columns(args: argparse.Namespace) -> tuple[str, str]:
    return args.pred_column or args.column, args.ref_column or args.column


def _ovmer(args: argparse.Namespace) -> int:
    from xemogpt.metrics.labels_io import LabelFormatError, load_synonyms, read_openset_csv
    from xemogpt.metrics.ovmer import ovmer

    pc, rc = _columns(args)
    try:
        mode = args.label_parse
        pred, ref = read_openset_csv(args.pred, pc, mode=mode), read_openset_csv(args.ref, rc, mode=mode)
        syn = load_synonyms(args.synonyms, mode) if args.synonyms else None
        res = ovmer(pred, ref, syn, per_sample=args.per_sample, parse=mode)
    except (LabelFormatError, FileNotFoundError) as err:
        return _fail(err)
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
    from xemogpt.metrics.ovmer_wheel import load_wheel, ovmer_wheel, ovmer_wheel_published
    from xemogpt.metrics.wheel_folder import is_wheel_folder

    pc, rc = _columns(args)
    try:
        if args.wheel and Path(args.wheel).suffix.lower() == ".xlsx" and is_wheel_folder(Path(args.wheel).parent):
            raise LabelFormatError(f"{args.wheel} is one sheet of AffectGPT's emotion_wheel folder; its published "
                                   "metrics also need the folder's synonym.xlsx and format.csv: pass --wheels "
                                   f"{Path(args.wheel).parent}")
        if args.wheels and not Path(args.wheels).is_dir():
            raise LabelFormatError(f"--wheels {args.wheels}: expected AffectGPT's emotion_wheel folder (wheel1.xlsx "
                                   "... wheel5.xlsx, synonym.xlsx, format.csv); a single mapping file goes to --wheel")
        mode = args.label_parse
        pred, ref = read_openset_csv(args.pred, pc, mode=mode), read_openset_csv(args.ref, rc, mode=mode)
        if args.wheels:
            res = ovmer_wheel_published(pred, ref, args.wheels, parse=mode)
        else:
            res = ovmer_wheel(pred, ref, load_wheel(args.wheel), level=args.level, parse=mode)
    except (LabelFormatError, FileNotFoundError, ValueError) as err:
        return _fail(err)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    if args.wheels:
        _print_published_wheels(res, args.wheels)
        return 0
    print(f"OV-MER emotion wheel ({args.level}, {len(res['wheels'])} wheel(s)): F-score {_fmt(res['fscore'])}, "
          f"precision {_fmt(res['precision'])}, recall {_fmt(res['recall'])}")
    for name, w in res["wheels"].items():
        print(f"  {name}: F {_fmt(w['fscore'])}  P {_fmt(w['precision'])}  R {_fmt(w['recall'])}  n {w['n']}")
    return 0


def _print_published_wheels(res: dict[str, Any], folder: str) -> None:
    print(f"Emotion-wheel OV-MER (AffectGPT's published variants, {folder}) on {res['samples']} reference samples"
          + (f", {res['missing_pred']} without a prediction (scored 0)" if res["missing_pred"] else ""))
    print(f"{'variant':<22} {'precision':>9} {'recall':>9} {'F':>9} {'kept':>6}  labels dropped ref/pred")
    for name, v in res["variants"].items():
        print(f"{name:<22} {_fmt(v['precision']):>9} {_fmt(v['recall']):>9} {_fmt(v['fscore']):>9} {v['n']:>6}  "
              f"{v['dropped_ref']}/{v['dropped_pred']}")
    k = len(res["wheels"])
    for level in ("level1", "level2"):
        a = res[level]
        print(f"{level} (mean of {k} wheels): F {_fmt(a['fscore'])}  P {_fmt(a['precision'])}  "
              f"R {_fmt(a['recall'])}")
    print(f"MER2025 score (mean of level-1 and level-2 F): {_fmt(res['mer2025'])}")
    nf = res["not_in_format"]
    print(f"labels dropped: {nf['ref']} ref / {nf['pred']} pred not a word form in format.csv (every variant); "
          "case3 variants also drop the labels off their wheel")


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
