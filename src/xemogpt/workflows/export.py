"""Export a run as a self-contained folder: safetensors weights, the model spec, the resolved recipe, a model card."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

EXPORT_FILES = ("model.safetensors", "model_spec.json", "recipe.yaml", "README.md")  # + portable.json if needed


def export_run(run: str | Path, out: str | Path) -> Path:
    """Write ``out/`` from a run folder (or checkpoint file) and return it."""
    from safetensors.torch import save_file

    from xemogpt.checkpointing.files import run_recipe_of
    from xemogpt.models.loading import load_model

    run = Path(run)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = load_model(run)
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(state, str(out / "model.safetensors"), metadata={"format": "xemogpt"})
    spec = dict(model.hparams)
    spec.pop("stage", None)
    (out / "model_spec.json").write_text(json.dumps(spec, indent=1), encoding="utf-8")
    record = model.portable()  # architectures and tokenizer of folder-loaded parts: no folders needed
    (out / "portable.json").unlink(missing_ok=True)
    if record:
        (out / "portable.json").write_text(json.dumps(record), encoding="utf-8")
    recipe = run_recipe_of(run)
    run_dir = run if run.is_dir() else run.parent
    shutil.copyfile(run_dir / "recipe.yaml", out / "recipe.yaml")
    metrics = None
    for cand in (run_dir / "eval" / "metrics.json", run_dir / "eval-test" / "metrics.json"):
        if cand.exists():
            metrics = json.loads(cand.read_text(encoding="utf-8"))
            break
    (out / "README.md").write_text(model_card(recipe, model, metrics), encoding="utf-8")
    return out


def model_card(recipe: dict[str, Any], model, metrics: dict[str, Any] | None) -> str:
    lines = [f"# {recipe.get('name', 'xemogpt model')}", "", recipe.get("description", ""), "", "## Components", "",
             "| key | component | parameters | trainable |", "|---|---|---:|---:|"]
    for name in model.component_names():
        comp = getattr(model, name)
        spec = comp.spec()
        lines.append(f"| {name} | `{spec['name']}` | {comp.num_parameters():,} | "
                     f"{sum(p.numel() for p in comp.parameters() if p.requires_grad):,} |")
    data = recipe.get("data", {})
    lines += ["", "## Data", "", f"- root: `{data.get('root')}`" + (f" (generated: {data['synth']})" if data.get(
        "synth") else ""), "", "## Training stages", ""]
    for st in recipe.get("stages") or []:
        lines.append(f"- **{st['name']}**: train {', '.join(st.get('train', []))}; losses {', '.join(st['losses'])}; "
                     f"{st.get('epochs', st.get('max_steps'))} {'epochs' if 'epochs' in st else 'steps'}")
    if metrics:
        from xemogpt.evaluation.report import table

        lines += ["", f"## Metrics ({metrics.get('split', 'test')} split)", "", table(metrics, markdown=True)]
    lines += ["", "## Use", "", "```", "xemogpt explain CLIP.mp4 --checkpoint THIS_FOLDER",
              "xemogpt eval --checkpoint THIS_FOLDER --data DATA", "```", ""]
    return "\n".join(lines)


