"""Loading runs and checkpoints safely (``weights_only=True`` / safetensors) with errors that name the file.

Every load in the package goes through ``torch.load(..., weights_only=True)``, safetensors or, for resuming a stage,
``Trainer.fit(..., weights_only=True)`` (a resumable checkpoint holds tensors and plain values only). Two loads
inside Lightning ignore that flag, and both read only files the same run wrote: resuming under FSDP from a
full-state checkpoint file (Lightning's lazy unpickler) and merging DeepSpeed ZeRO shards into one file
(:func:`xemogpt.training.run.consolidate_sharded`, Lightning's converter loads with ``weights_only=False``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from xemogpt.errors import XemoGPTError


class CheckpointError(XemoGPTError, RuntimeError):
    """A checkpoint is missing, unreadable or does not fit the model; the message names the file and key."""


def resolve_checkpoint(path: str | Path) -> Path:
    """A run folder (``model.ckpt`` inside), an export folder (``model.safetensors``) or a ``.ckpt`` file."""
    p = Path(path)
    if p.is_dir():
        for name in ("model.safetensors", "model.ckpt"):
            if (p / name).exists():
                return p / name
        raise CheckpointError(f"{p} holds neither model.ckpt (a training run) nor model.safetensors (an export)")
    if not p.exists():
        raise CheckpointError(f"checkpoint {p} does not exist")
    return p


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a Lightning checkpoint file with ``weights_only=True``."""
    p = Path(path)
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"checkpoint {p} is corrupt or not a torch checkpoint ({type(e).__name__}: {e}); "
                              "use the previous checkpoint of the run or retrain") from e
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"checkpoint {p} has no 'state_dict' (is it a Lightning checkpoint?)")
    return ckpt


def load_model(path: str | Path, map_location: str = "cpu"):
    """Rebuild an XEmoGPT from a checkpoint alone (its hyper-parameters carry the recipe and the tokenizer)."""

    p = resolve_checkpoint(path)
    if p.suffix == ".safetensors":
        from xemogpt.training.export import load_export

        return load_export(p.parent)
    ckpt = read_checkpoint(p)
    hp = ckpt.get("hyper_parameters")
    if not hp or "components" not in hp:
        raise CheckpointError(f"checkpoint {p} carries no model spec (hyper_parameters.components)")
    model = build_from_checkpoint(hp, ckpt, p)
    load_state(model, ckpt["state_dict"], str(p))
    model.eval()
    return model.to(map_location)


def build_from_checkpoint(hp: dict[str, Any], ckpt: dict[str, Any], where: Path):
    """The model a checkpoint's spec describes: from its pretrained folders when they exist, else from the
    architecture the checkpoint carries (its weights then come from the state dict alone)."""
    import tempfile

    from xemogpt.components_io import MissingWeightsError, architecture_only
    from xemogpt.models.xemogpt import XEmoGPT
    from xemogpt.training.portable import PORTABLE_KEY, portable_components

    try:
        return XEmoGPT(**hp)
    except MissingWeightsError as e:
        record = ckpt.get(PORTABLE_KEY)
        if not record:
            raise CheckpointError(f"{where}: {e} (this checkpoint predates self-contained checkpoints, so it needs "
                                  "the pretrained folders its recipe names)") from e
        missing = str(e)
    with tempfile.TemporaryDirectory(prefix="xemogpt-rebuild-") as tmp:
        spec = {**hp, "components": portable_components(hp["components"], record, Path(tmp))}
        try:
            model = XEmoGPT(**spec)
        except MissingWeightsError:
            # Only the text encoders (alignment targets, not in the state dict) can still be missing.
            print(f"note: {where}: rebuilt from the checkpoint alone ({missing.splitlines()[0]}); the text "
                  "encoders are architecture-only stand-ins, so VECB/AECB pre-training needs their folders")
            with architecture_only():
                model = XEmoGPT(**spec)
    # Later checkpoints and exports keep the recipe's own specs (not the temporary folder) and the same record.
    model.hparams["components"] = hp["components"]
    model.portable_source = record
    return model


def load_state(model: torch.nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shape = [(k, tuple(state[k].shape), tuple(own[k].shape)) for k in state
             if k in own and state[k].shape != own[k].shape]
    if shape:
        k, got, want = shape[0]
        raise CheckpointError(f"{where}: tensor {k!r} has shape {got} but the model expects {want}; the checkpoint was "
                              "made with a different recipe")
    if missing or unexpected:
        raise CheckpointError(f"{where}: {len(missing)} missing key(s) (e.g. {missing[:3]}) and {len(unexpected)} "
                              f"unexpected key(s) (e.g. {unexpected[:3]}); the checkpoint was made with another recipe")
    model.load_state_dict(state)


def load_weights_into(model: torch.nn.Module, path: str | Path, strict: bool = False) -> list[str]:
    """Copy matching weights from a run/checkpoint into ``model`` (fine-tuning); returns keys not found."""
    p = resolve_checkpoint(path)
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(p))
    else:
        state = read_checkpoint(p)["state_dict"]
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    skipped = [k for k in own if k not in usable]
    if strict and skipped:
        raise CheckpointError(f"{p}: {len(skipped)} model weight(s) not in the checkpoint, e.g. {skipped[:3]}")
    model.load_state_dict(usable, strict=False)
    return skipped


def run_recipe_of(path: str | Path) -> dict[str, Any]:
    """The resolved recipe of a run or export folder (``recipe.yaml``), or the one a checkpoint's folder holds."""
    import yaml

    p = Path(path)
    for folder in ([p] if p.is_dir() else [p.parent, p.parent.parent]):
        f = folder / "recipe.yaml"
        if f.exists():
            return yaml.safe_load(f.read_text(encoding="utf-8"))
    raise CheckpointError(f"no recipe.yaml beside {p}; runs and exports keep one, pass a run or export folder")
