"""The released XEmoGPT weights (W11H08Z/XEmoGPT, ``xemogpt.ckpt``) as a run of this project.

The official file is a plain ``state_dict`` of its ``XEmoGPT`` module (the whole model, or only what it trained).
:func:`import_official` reads it with ``weights_only=True``, infers the published design's sizes from the tensor
shapes (bridge layers, widths, frames, LoRA rank), builds ``recipes/xemogpt-paper.yaml`` on the given pretrained
folders, maps every key onto this project's modules and writes a run folder (``recipe.yaml``, ``model.ckpt``) that
``explain``, ``eval``, ``finetune`` and ``export`` take like any trained run.

Key map (official -> here)::

    llm_model.<peft keys>                                   -> llm_head.model.<peft keys>
    visual_encoder.clip.vision_model.*                      -> video_encoder.model (the frozen CLIP image tower)
    visual_encoder.clip.{text_model,text_projection}.*      -> compared with the CLIP folder (clip-text is frozen)
    visual_encoder.position_embedding                       -> video_bridge.position_embedding
    visual_encoder.visual_alignment_layer.N.*               -> video_bridge.layers.N.*
    visual_encoder.attention_pooling.attn_vector            -> video_bridge.attention_pooling.attn_vector
    visual_encoder.{visual_project,text_project}.*          -> video_bridge.{visual_project,text_project}.*
    visual_encoder.{temporal_disc_head,frame_reconstructor}.* -> video_bridge.<same>
    visual_llm_project.*                                    -> video_projector.proj.*
    audio_encoder.audio_encoder.*                           -> audio_encoder.model (the frozen HuBERT)
    audio_encoder.audio_alignment_layer.N.*                 -> audio_bridge.layers.N.*
    audio_encoder.audio_project.*                           -> audio_bridge.audio_project.*
    audio_llm_project.*                                     -> audio_projector.proj.*
    text_encoder.text_project.* (AECB's LaBSE side, if saved) -> audio_bridge.text_project.*
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from xemogpt.errors import XemoGPTError

PREFIXES = ("llm_model.", "visual_encoder.", "audio_encoder.", "visual_llm_project.", "audio_llm_project.")
PAPER_RECIPE = "xemogpt-paper.yaml"
# official prefix -> (our module, our prefix); the rest of the key is kept
DIRECT = (
    ("visual_encoder.position_embedding", "video_bridge.position_embedding"),
    ("visual_encoder.visual_alignment_layer.", "video_bridge.layers."),
    ("visual_encoder.attention_pooling.", "video_bridge.attention_pooling."),
    ("visual_encoder.visual_project.", "video_bridge.visual_project."),
    ("visual_encoder.text_project.", "video_bridge.text_project."),
    ("visual_encoder.temporal_disc_head.", "video_bridge.temporal_disc_head."),
    ("visual_encoder.frame_reconstructor.", "video_bridge.frame_reconstructor."),
    ("visual_llm_project.", "video_projector.proj."),
    ("audio_encoder.audio_alignment_layer.", "audio_bridge.layers."),
    ("audio_encoder.audio_project.", "audio_bridge.audio_project."),
    ("text_encoder.text_project.", "audio_bridge.text_project."),
    ("audio_llm_project.", "audio_projector.proj."),
    ("llm_model.", "llm_head.model."),
)
# frozen towers whose weights the file may carry: official prefix -> our module
TOWERS = (("visual_encoder.clip.vision_model.", "video_encoder"), ("audio_encoder.audio_encoder.", "audio_encoder"))
# in the file but not part of the model here (compared with the folders when possible, else ignored)
UNUSED = ("visual_encoder.clip.text_model.", "visual_encoder.clip.text_projection.",
          "visual_encoder.clip.visual_projection.", "visual_encoder.clip.logit_scale")


class OfficialCheckpointError(XemoGPTError, ValueError):
    """The file is not an official XEmoGPT state dict, or does not fit the given folders."""


@dataclass
class ImportReport:
    """What :func:`import_official` did: counts of mapped / ignored / missing keys, the shapes it inferred and any
    difference between tower weights in the file and the folders."""

    mapped: int = 0
    ignored: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    inferred: dict[str, Any] = field(default_factory=dict)
    tower_differences: dict[str, float] = field(default_factory=dict)
    run_dir: Path | None = None

    def summary(self) -> str:
        lines = [f"mapped {self.mapped} tensors; ignored {len(self.ignored)}; missing {len(self.missing)} "
                 "(kept from the folders or their initialisation)"]
        lines.append("inferred: " + ", ".join(f"{k}={v}" for k, v in self.inferred.items()))
        if self.ignored:
            lines.append(f"ignored (not used by the model): {', '.join(self.ignored[:6])}"
                         + (" ..." if len(self.ignored) > 6 else ""))
        if self.missing:
            lines.append(f"not in the file: {', '.join(self.missing[:6])}" + (" ..." if len(self.missing) > 6 else ""))
        for k, d in self.tower_differences.items():
            lines.append(f"warning: the file's {k} weights differ from the folder's (largest difference {d:.3g}); "
                         "the file's are used")
        if self.run_dir is not None:
            lines.append(f"wrote {self.run_dir}/recipe.yaml and {self.run_dir}/model.ckpt")
        return "\n".join(lines)


def read_official_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The official state dict from ``path`` (weights_only / safetensors), unwrapped from ``state_dict`` / ``model``
    containers and a wrapper prefix (``model.``, ``module.``); errors say what layout was expected."""
    from xemogpt.components_io import load_state_file

    p = Path(path)
    state = load_state_file(p, "--checkpoint")
    keys = original = list(state)
    for _ in range(2):  # a training wrapper may add a prefix or two (Lightning's "model.", DDP's "module.")
        if keys and not any(k.startswith(PREFIXES) for k in keys):
            heads = {k.split(".", 1)[0] for k in keys if "." in k}
            if len(heads) == 1:
                head = heads.pop() + "."
                state = {k[len(head):]: v for k, v in state.items() if k.startswith(head)}
                keys = list(state)
    if not any(k.startswith(PREFIXES) for k in keys):
        raise OfficialCheckpointError(
            f"{p} is not an official XEmoGPT state dict: its keys should start with {', '.join(PREFIXES)} (the "
            f"attributes of the released XEmoGPT module); found e.g. {original[:4]}")
    return state


def _max_index(state: dict[str, torch.Tensor], prefix: str) -> int:
    idx = [int(m.group(1)) for k in state if (m := re.match(re.escape(prefix) + r"(\d+)\.", k))]
    return max(idx) + 1 if idx else 0


def infer_design(state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Sizes of the released design from the tensors present (None where the file does not say)."""
    out: dict[str, Any] = {}
    if "visual_encoder.position_embedding" in state:
        out["num_frames"] = int(state["visual_encoder.position_embedding"].shape[1])
    if (n := _max_index(state, "visual_encoder.visual_alignment_layer.")):
        out["video_layers"] = n
    if (n := _max_index(state, "audio_encoder.audio_alignment_layer.")):
        out["audio_layers"] = n
    if "visual_encoder.visual_project.weight" in state:
        out["proj_dim"] = int(state["visual_encoder.visual_project.weight"].shape[0])
    tasks = []
    if "visual_encoder.text_project.weight" in state:
        tasks.append("contrastive")
    if any(k.startswith("visual_encoder.temporal_disc_head.") for k in state):
        tasks.append("temporal_order")
    if any(k.startswith("visual_encoder.frame_reconstructor.") for k in state):
        tasks.append("masked_frame")
    if tasks:
        out["video_tasks"] = tasks
    if "visual_encoder.attention_pooling.attn_vector" in state:
        out["pooling"] = "attention"
    elif any(k.startswith("visual_encoder.") for k in state):
        out["pooling"] = "mean"
    lora_a = [(k, v) for k, v in state.items() if k.startswith("llm_model.") and ".lora_A." in k]
    if lora_a:
        out["lora_r"] = int(lora_a[0][1].shape[0])
        out["lora_targets"] = sorted({re.search(r"\.([^.]+)\.lora_A\.", k).group(1) for k, _ in lora_a})
    return out


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


def map_state(state: dict[str, torch.Tensor], own: dict[str, torch.Tensor],
              report: ImportReport) -> dict[str, torch.Tensor]:
    """Official keys -> this model's keys (``own`` is the model's state dict); fills ``report``."""
    out: dict[str, torch.Tensor] = {}
    tower_keys = {mod: {k[len(mod) + 1:]: k for k in own if k.startswith(mod + ".")} for _, mod in TOWERS}
    for key, value in state.items():
        target = None
        for src, dst in DIRECT:
            if key == src or key.startswith(src):
                target = dst + key[len(src):]
                break
        if target is None:
            for src, mod in TOWERS:
                if key.startswith(src):
                    rest = key[len(src):]
                    # transformers nests some towers one level deeper than others: match on the key's tail
                    hits = [k for tail, k in tower_keys[mod].items() if tail == rest or tail.endswith("." + rest)]
                    target = hits[0] if len(hits) == 1 else None
                    break
        if target is None or target not in own:
            report.ignored.append(key)
            continue
        if tuple(own[target].shape) != tuple(value.shape):
            raise OfficialCheckpointError(
                f"{key} has shape {tuple(value.shape)} but {target} here has {tuple(own[target].shape)}: the folders "
                "(--clip/--hubert/--labse/--llm) are not the ones the file was trained with")
        out[target] = value.to(own[target].dtype)
    report.mapped = len(out)
    for _, mod in TOWERS:
        mapped = [k for k in out if k.startswith(mod + ".")]
        diffs = [float((out[k].float() - own[k].float()).abs().max()) for k in mapped if own[k].numel()]
        if diffs and max(diffs) > 0:
            report.tower_differences[mod] = max(diffs)
    return out


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


def save_run_checkpoint(model, path: Path) -> None:
    """A ``model.ckpt`` like a finished run's (state dict, hyper-parameters, the portable record), written atomically
    and readable with ``weights_only=True``."""
    import lightning

    ckpt: dict[str, Any] = {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams),
                            "pytorch-lightning_version": lightning.__version__, "epoch": 0, "global_step": 0}
    model.on_save_checkpoint(ckpt)
    tmp = path.with_suffix(".tmp")
    torch.save(ckpt, tmp)
    tmp.replace(path)
