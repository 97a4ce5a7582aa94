"""Rebuilding a model from a run, a checkpoint file or an export folder, with errors that name the file.

Every load in the package goes through ``torch.load(..., weights_only=True)``, safetensors or, for resuming a stage,
``Trainer.fit(..., weights_only=True)`` (a resumable checkpoint holds tensors and plain values only). Two loads
inside Lightning ignore that flag, and both read only files the same run wrote: resuming under FSDP from a
full-state checkpoint file (Lightning's lazy unpickler) and merging DeepSpeed ZeRO shards into one file
(:func:`xemogpt.checkpointing.files.consolidate_sharded`, Lightning's converter loads with ``weights_only=False``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from xemogpt.checkpointing.errors import CheckpointError
from xemogpt.checkpointing.files import read_checkpoint, resolve_checkpoint


def load_model(path: str | Path, map_location: str = "cpu"):
    """Rebuild an XEmoGPT from a checkpoint alone (its hyper-parameters carry the recipe and the tokenizer)."""

    p = resolve_checkpoint(path)
    if p.suffix == ".safetensors":
        from xemogpt.models.loading import load_export

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

    from xemogpt.checkpointing.errors import MissingWeightsError
    from xemogpt.checkpointing.portable import PORTABLE_KEY, portable_components
    from xemogpt.checkpointing.pretrained import architecture_only
    from xemogpt.models.xemogpt import XEmoGPT

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


def load_export(folder: str | Path):
    """Rebuild the model from an export folder (weights through safetensors only)."""
    from safetensors.torch import load_file

    from xemogpt.checkpointing.errors import CheckpointError
    from xemogpt.models.loading import load_state

    folder = Path(folder)
    for name in ("model.safetensors", "model_spec.json"):
        if not (folder / name).exists():
            raise CheckpointError(f"export folder {folder} has no {name}; write one with "
                                  "`xemogpt export RUN --out DIR`")
    try:
        spec = json.loads((folder / "model_spec.json").read_text(encoding="utf-8"))
        state = load_file(str(folder / "model.safetensors"))
    except Exception as e:
        raise CheckpointError(f"export folder {folder}: unreadable weights or spec ({type(e).__name__}: {e})") from e
    from xemogpt.checkpointing.portable import PORTABLE_KEY
    from xemogpt.models.loading import build_from_checkpoint

    extra = {}
    if (folder / "portable.json").exists():
        extra[PORTABLE_KEY] = json.loads((folder / "portable.json").read_text(encoding="utf-8"))
    model = build_from_checkpoint(spec, extra, folder / "model_spec.json")
    load_state(model, state, str(folder / "model.safetensors"))
    return model.eval()
