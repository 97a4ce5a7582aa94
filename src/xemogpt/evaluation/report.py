"""Tables and Markdown reports of evaluation results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

SYSTEMS = ("model", "majority", "shuffled")


def metric_rows(results: dict[str, Any]) -> list[tuple[str, dict[str, str]]]:
    """Rows (metric name, {system: formatted value}) for every metric present."""
    systems = [s for s in SYSTEMS if s in results]
    rows: list[tuple[str, dict[str, str]]] = []

    def fmt(v):
        return "-" if v is None else f"{v:.3f}"

    if any(results[s].get("emotion_accuracy") is not None for s in systems):
        rows.append(("emotion accuracy", {s: fmt(results[s].get("emotion_accuracy")) for s in systems}))
    if results[systems[0]].get("cues"):
        for m in ("visual", "auditory", "emotional"):
            rows.append((f"{m} cues reproduced", {s: fmt(results[s]["cues"][m]["reproduced"]) for s in systems}))
        for m in ("visual", "auditory"):
            rows.append((f"{m} cue precision", {s: fmt(results[s]["cues"][m]["precision"]) for s in systems}))
    for m in ("visual", "auditory", "emotional"):
        if not any(results[s]["emocue360"][m]["n"] for s in systems):  # no reference cue of m: not scored
            continue
        for k in ("precision", "recall", "f1"):
            rows.append((f"EmoCue-360 {m} {k[0].upper()}", {s: fmt(results[s]["emocue360"][m][k]) for s in systems}))
    if any(results[s].get("discrete") for s in systems):
        for k, name in (("weighted_f1", "weighted F1"), ("uar", "UAR"), ("war", "WAR")):
            rows.append((f"emotion {name}", {s: fmt((results[s].get("discrete") or {}).get(k)) for s in systems}))
    if any(results[s].get("ovmer") for s in systems):
        for k, name in (("precision", "P"), ("recall", "R"), ("avg", "avg")):
            rows.append((f"OV-MER {name}", {s: fmt((results[s].get("ovmer") or {}).get(k)) for s in systems}))
        if any((results[s].get("ovmer") or {}).get("ew_level1") for s in systems):
            rows.append(("OV-MER EW level-1 F", {s: fmt(((results[s].get("ovmer") or {}).get("ew_level1") or {})
                                                       .get("fscore")) for s in systems}))
    return rows


def table(results: dict[str, Any], markdown: bool = False) -> str:
    systems = [s for s in SYSTEMS if s in results]
    rows = metric_rows(results)
    if markdown:
        lines = ["| metric | " + " | ".join(systems) + " |", "|---|" + "---:|" * len(systems)]
        lines += [f"| {name} | " + " | ".join(vals[s] for s in systems) + " |" for name, vals in rows]
        return "\n".join(lines)
    width = max((len(n) for n, _ in rows), default=6) + 2
    lines = ["metric".ljust(width) + "".join(s.rjust(10) for s in systems)]
    lines += [name.ljust(width) + "".join(vals[s].rjust(10) for s in systems) for name, vals in rows]
    return "\n".join(lines)


def print_metrics(results: dict[str, Any]) -> None:
    n = results.get("model", {}).get("n")
    print(f"\nEvaluation on the {results.get('split', 'test')} split ({n} samples, cue extractor: "
          f"{results.get('extractor')}):")
    print(table(results))
    for line in coverage_lines(results):
        print(line)
    if results.get("skipped"):
        print(f"skipped samples: {results['skipped']}")


def coverage_lines(results: dict[str, Any]) -> list[str]:
    """One line per metric or baseline left out (and why), where ``majority`` came from, and the inputs the
    evaluated samples lack."""
    from xemogpt.evaluation.coverage import input_note

    lines = [f"not reported: {name}: {why}" for name, why in (results.get("not_reported") or {}).items()]
    if results.get("majority_from"):
        lines.append(f"majority baseline from the train split of {results['majority_from']}")
    note = input_note(results.get("inputs") or {}, (results.get("model") or {}).get("n", 0))
    if note:
        lines.append(f"inputs: {note} (the model ran without them)")
    return lines


def write_report(results: dict[str, Any], records: list[dict[str, Any]], path: str | Path, examples: int = 3) -> Path:
    path = Path(path)
    lines = [f"# Evaluation report ({results.get('split', 'test')} split, {len(records)} samples)", "",
             f"Cue extractor: `{results.get('extractor')}`. Baselines: `majority` gives every sample a typical "
             "description of the most frequent emotion of the model's training data; `shuffled` gives each sample "
             "another sample's prediction.", "", table(results, markdown=True), ""]
    notes = coverage_lines(results)
    lines += [f"- {line}" for line in notes] + ([""] if notes else []) + ["## Worked examples", ""]
    for r in records[:examples]:
        concluded = f", concluded: {r['predicted_emotion'] or 'none'}" if "predicted_emotion" in r else ""
        lines += [f"### {r['id']} (label: {r.get('emotion') or 'none'}{concluded})", "",
                  f"*Subtitle:* {r.get('subtitle', '')}", "", f"*Reference:* {r['reference']}", "",
                  f"*Generated:* {r['prediction']}", ""]
        if r.get("cues"):
            lines += ["| modality | extracted cues | reference cues | EmoCue-360 P / R / F1 |", "|---|---|---|---|"]
            for m in ("visual", "auditory", "emotional"):
                sc = (r.get("emocue360") or {}).get(m)
                score = "skipped (no reference cue)" if sc is None else \
                    f"{sc['precision']:.3f} / {sc['recall']:.3f} / {sc['f1']:.3f}"
                got = "<br>".join(_cell(c) for c in r["cues"].get(m, [])) or "-"
                want = "<br>".join(_cell(c) for c in (r.get("reference_cues") or {}).get(m, [])) or "-"
                lines.append(f"| {m} | {got} | {want} | {score} |")
            lines.append("")
    if results.get("skipped"):
        lines += ["## Skipped samples", "", ", ".join(f"{k}: {v}" for k, v in results["skipped"].items()), ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _cell(text: str) -> str:
    """A cue as a Markdown table cell (pipes escaped, newlines flattened)."""
    return str(text).replace("|", "\\|").replace("\n", " ")
