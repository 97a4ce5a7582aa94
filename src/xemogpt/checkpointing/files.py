"""Weight and checkpoint files, read and written safely.

Reading: :func:`load_state_file` (a state dict from ``.safetensors`` or ``torch.load(weights_only=True)``),
:func:`read_checkpoint` / :func:`load_checkpoint_file` (Lightning checkpoints, weights only), :func:`resolve_checkpoint`
and :func:`run_recipe_of` (what a run or export folder holds). Errors name the file and say what to do.

Writing: a kill (SIGKILL, power loss, OOM killer) during a save never corrupts the last good file. Lightning's
default ``TorchCheckpointIO`` serialises the whole checkpoint into memory and then moves a temporary file from the
system temp folder onto the target; when that folder is on another filesystem the "move" is a copy that writes the
target in place, so a kill half-way leaves a truncated checkpoint, and nothing is fsynced. Here every local save goes

    torch.save -> <dir>/.<name>.tmp-<pid>-<random> (same folder, so the rename cannot cross filesystems)
    -> flush + fsync(file) -> os.replace(tmp, target) -> fsync(dir)

``os.replace`` is atomic on POSIX: a reader sees the previous complete file or the new complete file, never a mix.
Remote paths (``s3://``, ``gs://``, ...) go to Lightning's fsspec path, whose object stores publish a PUT atomically.
DeepSpeed's sharded checkpoint folders become single files through Lightning's converter
(:func:`consolidate_sharded`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins import TorchCheckpointIO

from xemogpt.checkpointing.errors import CheckpointError, ComponentFileError, MissingWeightsError

TMP_PREFIX = "."
TMP_MARK = ".tmp-"


def is_remote(path: str | os.PathLike) -> bool:
    """True for fsspec URLs such as ``s3://bucket/run/last.ckpt`` (``file://`` counts as local)."""
    s = str(path)
    return "://" in s and not s.startswith("file://")


def _fsync_dir(folder: Path) -> None:
    # The rename is only durable once the directory entry is on disk; some filesystems refuse O_RDONLY dirs.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: str | os.PathLike, write) -> Path:
    """Run ``write(fileobj)`` into a temporary file beside ``path``, fsync it, then rename it onto ``path``.

    A crash at any moment leaves either the old ``path`` untouched or the new one complete; at worst a stray
    ``.<name>.tmp-*`` file, which :func:`clean_stale_temps` removes.
    """
    target = Path(str(path).removeprefix("file://"))
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{target.name}{TMP_MARK}{os.getpid()}-", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(target.parent)
    return target


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj, path)`` made atomic (see :func:`atomic_write`)."""
    return atomic_write(path, lambda f: torch.save(obj, f))


def atomic_copy(src: str | os.PathLike, dst: str | os.PathLike, chunk: int = 1 << 24) -> Path:
    """Copy a file so that ``dst`` is always either its old content or a complete copy of ``src``."""
    def write(f) -> None:
        with open(src, "rb") as s:
            while block := s.read(chunk):
                f.write(block)

    return atomic_write(dst, write)


def clean_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Delete temporary files that killed saves left in ``folder``; returns what was removed."""
    folder = Path(folder)
    removed = []
    if folder.is_dir():
        for p in folder.iterdir():
            if p.name.startswith(TMP_PREFIX) and TMP_MARK in p.name and p.is_file():
                with contextlib.suppress(OSError):
                    p.unlink()
                    removed.append(p)
    return removed


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning ``CheckpointIO`` plugin whose local saves are atomic and durable (see the module docstring).

    Used by every trainer that :func:`xemogpt.training.run.make_trainer` builds (DDP and single-device; FSDP with
    ``state_dict_type: full``), so ``trainer.save_checkpoint`` and ``ModelCheckpoint`` both go through it.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO.save_checkpoint takes no storage_options")
        if is_remote(path):
            super().save_checkpoint(checkpoint, path)
            return
        atomic_save(checkpoint, path)


def load_state_file(path: str | Path, key: str) -> dict[str, torch.Tensor]:
    """A state dict from ``.safetensors`` or a torch file read with ``weights_only=True``.

    Unwraps the usual containers (``state_dict``, ``model``, ``module``) and a DDP ``module.`` prefix.
    """
    p = Path(path)
    if not p.is_file():
        raise MissingWeightsError(f"{key}: weights file {str(p)!r} does not exist (see checkpoints/README.md)")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        state: Any = load_file(str(p))
    else:
        try:
            state = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as e:
            raise ComponentFileError(
                f"{key}: {p} is not a weights-only torch file ({type(e).__name__}: {e}); convert it to safetensors "
                "or re-save its state_dict with torch.save") from e
    for wrapper in ("state_dict", "model", "module"):
        if isinstance(state, dict) and wrapper in state and isinstance(state[wrapper], dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ComponentFileError(f"{key}: {p} holds no tensor state dict")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def load_into(module: torch.nn.Module, state: dict[str, torch.Tensor], where: str, *, strict: bool = True,
              ignore_prefixes: tuple[str, ...] = ()) -> None:
    """``load_state_dict`` with an error that names the file and the first mismatching keys and shapes."""
    own = module.state_dict()
    state = {k: v for k, v in state.items() if not k.startswith(ignore_prefixes)}
    bad = [(k, tuple(v.shape), tuple(own[k].shape)) for k, v in state.items() if k in own and v.shape != own[k].shape]
    if bad:
        k, got, want = bad[0]
        raise ComponentFileError(f"{where}: tensor {k!r} has shape {got} but the model expects {want}; the file was "
                                 "made for another architecture (check the config / model name)")
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if strict and (missing or unexpected):
        raise ComponentFileError(f"{where}: {len(missing)} missing key(s) (e.g. {missing[:3]}) and {len(unexpected)} "
                                 f"unexpected key(s) (e.g. {unexpected[:3]}); the file was made for another "
                                 "architecture")
    module.load_state_dict(state, strict=False)


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


def run_recipe_of(path: str | Path) -> dict[str, Any]:
    """The resolved recipe of a run or export folder (``recipe.yaml``), or the one a checkpoint's folder holds."""
    import yaml

    p = Path(path)
    for folder in ([p] if p.is_dir() else [p.parent, p.parent.parent]):
        f = folder / "recipe.yaml"
        if f.exists():
            return yaml.safe_load(f.read_text(encoding="utf-8"))
    raise CheckpointError(f"no recipe.yaml beside {p}; runs and exports keep one, pass a run or export folder")


def load_checkpoint_file(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:
        raise CheckpointError(f"checkpoint {path} is unreadable ({type(e).__name__}: {e}); delete it and resume "
                              f"again to restart that stage from the previous stage's checkpoint") from e


def consolidate_sharded(path: Path) -> Path:
    """DeepSpeed saves a checkpoint as a folder of ZeRO shards; stage checkpoints and ``model.ckpt`` are single files
    (evaluation, export and fine-tuning read them), so the folder becomes one fp32 file through Lightning's own
    converter (which needs the deepspeed package that wrote it). Other checkpoints are returned unchanged."""
    if not path.is_dir():
        return path
    from lightning.pytorch.utilities.deepspeed import convert_zero_checkpoint_to_fp32_state_dict

    tmp = path.with_name(path.name + ".fp32.part")
    convert_zero_checkpoint_to_fp32_state_dict(str(path), str(tmp))
    shutil.rmtree(path)
    tmp.replace(path)
    return path


def remove_checkpoint(path: Path) -> None:
    """Delete a checkpoint file, or a sharded checkpoint's folder."""
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


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
