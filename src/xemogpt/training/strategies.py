"""Trainer settings of a recipe -> Lightning strategy, precision and activation checkpointing.

Scaling goes through Lightning's own strategies (nothing home-made). The recipe's ``trainer`` section is passed to
``lightning.Trainer``; three keys are interpreted here first:

``strategy``
    A Lightning name (``auto``, ``ddp``, ``fsdp``, ``deepspeed_stage_2`` ...) or a mapping ``{name: ddp | fsdp |
    deepspeed, <constructor arguments>}``. ``ddp`` defaults to ``find_unused_parameters: true`` (each stage trains a
    different subset and some task heads sit idle). ``fsdp`` gets an auto-wrap policy that wraps the frozen encoders
    apart from the trainable parts (plus every transformer block as its own unit) and ``use_orig_params`` so units
    with mixed ``requires_grad`` (LoRA) work; ``state_dict_type: full`` (default) keeps ``.ckpt`` files that the
    resume logic, ``model.ckpt`` and export read.
``precision``
    Any Lightning value, or ``auto``: ``bf16-mixed`` where the accelerator supports bf16 (Ampere+ GPUs), else
    ``32-true``.
``activation_checkpointing``
    ``true`` recomputes every transformer block's activations in the backward pass (LLM decoder layers, encoder
    layers, bridge layers): through FSDP's ``activation_checkpointing_policy`` under FSDP, through
    ``torch.distributed.algorithms._checkpoint`` wrappers otherwise (non-reentrant, state-dict keys unchanged).
    Layers of a model that checkpoints itself (``llm_head.gradient_checkpointing: true``) are not wrapped again.

Multi-node runs set ``num_nodes`` and launch one process per GPU with torchrun or SLURM (see README.md).
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import nn

from xemogpt.errors import XemoGPTError

OWN_KEYS = ("strategy", "precision", "activation_checkpointing")
# Components called only through their forward (safe to shard as separate FSDP units). The LLM head and bridges are
# also called through other methods (embed, task_losses), so their parameters stay in the root unit; their
# transformer blocks are still wrapped one by one.
FSDP_UNIT_COMPONENTS = ("video_encoder", "audio_encoder", "video_projector", "audio_projector")


class StrategyError(XemoGPTError, ValueError):
    """A recipe's trainer.strategy / precision setting is invalid or needs a missing package."""


# --- blocks -------------------------------------------------------------------------------------------------------
def block_classes(model: nn.Module) -> set[type[nn.Module]]:
    """Transformer block classes inside ``model``: every Hugging Face model's ``_no_split_modules`` (Qwen3DecoderLayer,
    CLIPEncoderLayer, HubertEncoderLayer ...), ``nn.TransformerEncoderLayer`` (the ablation bridges' layers) and
    every class that declares ``is_transformer_block = True`` (the paper bridges' CLIPLayer and HubertLayer)."""
    names: set[str] = set()
    for m in model.modules():
        names.update(getattr(m, "_no_split_modules", None) or [])
    out: set[type[nn.Module]] = set()
    for m in model.modules():
        if (type(m).__name__ in names or isinstance(m, nn.TransformerEncoderLayer)
                or getattr(type(m), "is_transformer_block", False)):
            out.add(type(m))
    return out


def hf_checkpointing(module: nn.Module) -> bool:
    """Whether ``module`` is a Hugging Face model that checkpoints its own layers (transformers 5 names it
    activation checkpointing, 4.x gradient checkpointing)."""
    if hasattr(module, "is_activation_checkpointing"):
        return bool(module.is_activation_checkpointing)
    return bool(getattr(module, "is_gradient_checkpointing", False))


def checkpoint_classes(model: nn.Module) -> set[type[nn.Module]]:
    """:func:`block_classes` to recompute in backward: those of Hugging Face models that already checkpoint their
    own layers (``llm_head.gradient_checkpointing: true``) are left out, so no layer is recomputed twice."""
    done: set[str] = set()
    for m in model.modules():
        if hf_checkpointing(m):
            done.update(getattr(m, "_no_split_modules", None) or [])
    return {c for c in block_classes(model) if c.__name__ not in done}


def fsdp_wrap_policy(model: nn.Module):
    """An FSDP ``lambda_auto_wrap_policy``: the forward-only components of ``model`` and every transformer block.

    Frozen encoders thus form their own FSDP units, apart from the trainable bridges, projectors and LoRA weights.
    """
    from torch.distributed.fsdp.wrap import lambda_auto_wrap_policy

    units = {id(getattr(model, k)) for k in FSDP_UNIT_COMPONENTS if getattr(model, k, None) is not None}
    blocks = tuple(block_classes(model))

    def wrap(module: nn.Module) -> bool:
        if id(module) in units:
            return any(True for _ in module.parameters())
        return bool(blocks) and isinstance(module, blocks)

    return functools.partial(lambda_auto_wrap_policy, lambda_fn=wrap)


def enable_activation_checkpointing(model: nn.Module) -> int:
    """Wrap every transformer block of ``model`` so its activations are recomputed in backward; returns how many.

    Non-reentrant checkpointing keeps frozen/trainable mixes and keyword arguments working, and the wrapper's
    state-dict hooks keep checkpoint keys unchanged.
    """
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import (
        CheckpointImpl,
        CheckpointWrapper,
        apply_activation_checkpointing,
        checkpoint_wrapper,
    )

    blocks = tuple(checkpoint_classes(model))
    if not blocks or any(isinstance(m, CheckpointWrapper) for m in model.modules()):
        return 0
    before = sum(isinstance(m, blocks) for m in model.modules())
    apply_activation_checkpointing(
        model, checkpoint_wrapper_fn=functools.partial(checkpoint_wrapper, checkpoint_impl=CheckpointImpl.NO_REENTRANT),
        check_fn=lambda m: isinstance(m, blocks))
    return before


# --- precision ----------------------------------------------------------------------------------------------------
def resolve_precision(value: Any, accelerator: str | None) -> Any:
    """``auto`` -> ``bf16-mixed`` on a GPU that supports bf16, else ``32-true``; anything else unchanged."""
    if value != "auto":
        return value
    gpu = accelerator in (None, "auto", "gpu", "cuda") and torch.cuda.is_available()
    if gpu and torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    return "32-true"


# --- strategies ---------------------------------------------------------------------------------------------------
def _strategy_spec(value: Any) -> tuple[str, dict[str, Any]]:
    if value is None:
        return "auto", {}
    if isinstance(value, str):
        return value, {}
    if isinstance(value, dict):
        if "name" not in value:
            raise StrategyError("trainer.strategy mapping needs a 'name' (ddp, fsdp or deepspeed)")
        return str(value["name"]), {k: v for k, v in value.items() if k != "name"}
    raise StrategyError(f"trainer.strategy must be a name or a mapping with 'name', got {value!r}")


def build_strategy(value: Any, model: nn.Module | None = None, activation_checkpointing: bool = False):
    """A recipe's ``trainer.strategy`` -> a Lightning strategy object (or a name Lightning resolves itself).

    Returns ``(strategy, checkpointing_done)``; ``checkpointing_done`` is True when the strategy itself applies
    activation checkpointing (FSDP), so the caller must not wrap the blocks a second time.
    """
    name, kwargs = _strategy_spec(value)
    if name in ("ddp", "ddp_find_unused_parameters_true", "ddp_find_unused_parameters_false"):
        from lightning.pytorch.strategies import DDPStrategy

        kwargs.setdefault("find_unused_parameters", name != "ddp_find_unused_parameters_false")
        return DDPStrategy(**kwargs), False
    if name == "fsdp":
        from lightning.pytorch.strategies import FSDPStrategy

        wrap = kwargs.pop("auto_wrap", "components")
        if wrap not in ("components", "none"):
            raise StrategyError(f"trainer.strategy.auto_wrap must be 'components' or 'none', got {wrap!r}")
        if wrap == "components" and model is not None:
            kwargs.setdefault("auto_wrap_policy", fsdp_wrap_policy(model))
        kwargs.setdefault("state_dict_type", "full")
        kwargs.setdefault("use_orig_params", True)  # mixed requires_grad inside a unit (LoRA, frozen embeddings)
        done = False
        if activation_checkpointing and model is not None and checkpoint_classes(model):
            kwargs.setdefault("activation_checkpointing_policy", checkpoint_classes(model))
            done = True
        return FSDPStrategy(**kwargs), done
    if name == "deepspeed" or name.startswith("deepspeed_"):
        try:
            import deepspeed  # noqa: F401
        except ImportError as e:
            raise StrategyError("trainer.strategy deepspeed needs the deepspeed package (pip install deepspeed) on "
                                "the training machines") from e
        if name != "deepspeed":
            return name, False  # Lightning's registered presets (deepspeed_stage_2, deepspeed_stage_3_offload ...)
        from lightning.pytorch.strategies import DeepSpeedStrategy

        return DeepSpeedStrategy(**kwargs), False
    if kwargs:
        raise StrategyError(f"trainer.strategy {name!r} takes no arguments here; use a name Lightning knows or one "
                            "of ddp, fsdp, deepspeed with arguments")
    return name, False


def trainer_options(trainer_section: dict[str, Any] | None, model: nn.Module | None = None) -> dict[str, Any]:
    """The recipe's ``trainer`` section -> keyword arguments for ``lightning.Trainer`` (strategy, precision and
    plugins resolved; activation checkpointing applied to ``model`` when asked)."""
    from xemogpt.training.checkpoint_io import AtomicCheckpointIO

    opts = dict(trainer_section or {})
    act = bool(opts.pop("activation_checkpointing", False))
    opts.setdefault("accelerator", "cpu" if not torch.cuda.is_available() else "auto")
    strategy, act_done = build_strategy(opts.pop("strategy", None), model, act)
    if act and not act_done and model is not None:
        enable_activation_checkpointing(model)
    opts["strategy"] = strategy
    if "precision" in opts:
        opts["precision"] = resolve_precision(opts["precision"], opts.get("accelerator"))
    is_deepspeed = (isinstance(strategy, str) and strategy.startswith("deepspeed")) or \
        type(strategy).__name__ == "DeepSpeedStrategy"
    if not is_deepspeed:  # DeepSpeed writes its own checkpoint folders
        opts["plugins"] = [*list(opts.get("plugins") or []), AtomicCheckpointIO()]
    return opts


def strategy_name(strategy: Any) -> str:
    return strategy if isinstance(strategy, str) else type(strategy).__name__


def wraps_in_place(trainer_section: dict[str, Any] | None) -> bool:
    """True for strategies that shard the model by rewriting its modules (FSDP, DeepSpeed): each stage then gets a
    freshly built model (loaded from the previous stage's checkpoint) instead of one wrapped by an earlier stage."""
    name, _ = _strategy_spec((trainer_section or {}).get("strategy"))
    return name.startswith("fsdp") or name.startswith("deepspeed")
