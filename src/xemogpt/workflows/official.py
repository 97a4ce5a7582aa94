"""``xemogpt import official``: the released XEmoGPT weights as a run folder of this project.

The weight format itself (key map, shapes, checks) is :mod:`xemogpt.checkpointing.official`; here the paper recipe
is built on the user's pretrained folders, the mapped weights loaded into it and the run written.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

from xemogpt.checkpointing.files import save_run_checkpoint
from xemogpt.checkpointing.official import (
    PAPER_RECIPE,
    ImportReport,
    OfficialCheckpointError,
    infer_design,
    map_state,
    read_official_state,
)


def paper_recipe(clip: str, hubert: str, labse: str, llm: str, design: dict[str, Any],
                 lora_alpha: float) -> dict[str, Any]:
    """``recipes/xemogpt-paper.yaml`` on the given folders (or hub ids), sized as the file says."""
    from xemogpt.recipe import load_recipe

    recipe = copy.deepcopy(load_recipe(recipe_path()))
    m = recipe["model"]
    m["video_encoder"]["path"] = clip
    m["audio_encoder"]["path"] = hubert
    m["text_encoder"]["video"]["path"] = clip
    m["text_encoder"]["audio"]["path"] = labse
    m["llm_head"]["path"] = llm
    for spec in (m["video_encoder"], m["audio_encoder"], m["text_encoder"]["video"], m["text_encoder"]["audio"]):
        spec.pop("arch", None)
    m["llm_head"].pop("config", None)
    vb, ab = m["video_bridge"], m["audio_bridge"]
    for key, target, name in (("num_frames", vb, "num_frames"), ("video_layers", vb, "layers"),
                              ("audio_layers", ab, "layers"), ("pooling", vb, "pooling"),
                              ("video_tasks", vb, "tasks")):
        if key in design:
            target[name] = design[key]
    if "proj_dim" in design:
        vb["proj_dim"] = ab["proj_dim"] = design["proj_dim"]
    lora = m["llm_head"].setdefault("lora", {})
    if "lora_r" in design:
        lora["r"] = design["lora_r"]
        lora["target_modules"] = design["lora_targets"]
    lora["alpha"] = lora_alpha
    # The official inference runs in float32 (and never calls eval(), so its dropout stays on; here it is off).
    for spec in (m["video_encoder"], m["audio_encoder"], m["llm_head"]):
        spec["dtype"] = None
    recipe["name"] = "xemogpt-official"
    recipe["description"] = "The released XEmoGPT weights, imported with `xemogpt import official`"
    recipe["stages"] = []  # nothing was trained here; `xemogpt finetune` continues from these weights
    return recipe


def recipe_path() -> Path:
    """The shipped paper recipe (``recipes/`` beside the package in a checkout)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        cand = parent / "recipes" / PAPER_RECIPE
        if cand.exists():
            return cand
    raise OfficialCheckpointError(f"cannot find recipes/{PAPER_RECIPE} (run from a checkout of the project)")


def compare_unused(state: dict[str, torch.Tensor], model, report: ImportReport) -> None:
    """CLIP's text tower in the file against the folder's (the frozen clip-text encoder here)."""
    enc = getattr(model.text_encoder, "video", model.text_encoder)
    tower = getattr(enc, "_model", None)
    if tower is None:
        return
    own = tower.state_dict()
    diffs = []
    for key, value in state.items():
        if key.startswith(("visual_encoder.clip.text_model.", "visual_encoder.clip.text_projection.")):
            rest = key[len("visual_encoder.clip."):]
            if rest in own and own[rest].shape == value.shape:
                diffs.append(float((own[rest].float() - value.float()).abs().max()))
    if diffs and max(diffs) > 0:
        report.tower_differences["text_encoder.video"] = max(diffs)


def import_official(checkpoint: str | Path, clip: str, hubert: str, labse: str, llm: str, out: str | Path,
                    lora_alpha: float = 512.0) -> ImportReport:
    """Import the released weights: see the module docstring. -> :class:`ImportReport` (also written as
    ``import.txt`` in the run folder)."""
    from xemogpt.models.xemogpt import XEmoGPT
    from xemogpt.recipe import save_recipe

    state = read_official_state(checkpoint)
    report = ImportReport(inferred=infer_design(state))
    recipe = paper_recipe(clip, hubert, labse, llm, report.inferred, lora_alpha)
    model = XEmoGPT(recipe["model"], generation=recipe.get("generation"))
    model.set_stage({"name": "imported", "train": [], "losses": ["lm"]})
    own = model.state_dict()
    mapped = map_state(state, own, report)
    compare_unused(state, model, report)
    report.missing = [k for k in own if k not in mapped and not k.startswith(("video_encoder.", "audio_encoder."))
                      and not (k.startswith("llm_head.") and "lora_" not in k)]
    model.load_state_dict(mapped, strict=False)
    run = Path(out)
    run.mkdir(parents=True, exist_ok=True)
    save_recipe(recipe, run / "recipe.yaml")
    save_run_checkpoint(model, run / "model.ckpt")
    report.run_dir = run
    (run / "import.txt").write_text(f"imported from {checkpoint}\n{report.summary()}\n", encoding="utf-8")
    return report
