"""The LLM head: any transformers causal LM (a local folder or a small config), full, LoRA or frozen."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from xemogpt.component import Component
from xemogpt.llm.tokenizer import AUDIO_MARKER, EOS, VIDEO_MARKER, ensure_markers, load_tokenizer, tokenizer_from_json
from xemogpt.registry import register

TRAIN_MODES = ("full", "lora", "frozen")
DTYPES = {None: None, "fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16,
          "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16}


@register("llm_head", "causal-lm")
class CausalLMHead(Component):
    """A causal LM that reads spliced embeddings and writes the description.

    forward(inputs_embeds (B, L, H), attention_mask (B, L), position_ids (B, L), labels (B, L)) -> HF output with
    ``loss`` (mean over label tokens) and ``logits`` (B, L, V). ``hidden_size`` (H) is what projectors link to.

    Args:
        path: a local transformers folder (Qwen3, Qwen2.5, Llama, GPT-2 ...). None builds from ``config``.
        arch: model type for ``config`` (``qwen3``, ``llama``, ``gpt2`` ...).
        config: config fields for a model built from scratch (vocab size comes from the tokenizer).
        tokenizer: a tokenizer folder (default: ``path``). tokenizer_json: a serialised tokenizer (checkpoints
            carry it so a run rebuilds from its checkpoint alone).
        train_mode: ``full``, ``lora`` (peft) or ``frozen``.
        lora: LoRA settings: r, alpha, dropout, target_modules (paper: 512, 512, 0.05, [q_proj, k_proj, v_proj]).
        template: ``paper`` (###Human:/###Assistant:) or ``chat`` (the tokenizer's chat template).
        max_length: longest spliced sequence (longer ones are cut from the left of the prompt... never the target).
        dtype: weights dtype (bf16/fp16 where the device allows; None keeps fp32).
        gradient_checkpointing: recompute activations in the backward pass.
    """

    def __init__(self, path: str | None = None, arch: str = "qwen3", config: dict[str, Any] | None = None,
                 tokenizer: str | None = None, tokenizer_json: str | None = None, train_mode: str = "full",
                 lora: dict[str, Any] | None = None, template: str = "paper", max_length: int = 2048,
                 dtype: str | None = None, gradient_checkpointing: bool = False) -> None:
        super().__init__()
        self.save_hyperparameters()
        if train_mode not in TRAIN_MODES:
            raise ValueError(f"llm_head.train_mode must be one of {TRAIN_MODES}, got {train_mode!r}")
        if dtype not in DTYPES:
            raise ValueError(f"llm_head.dtype must be one of {sorted(k for k in DTYPES if k)} or null, got {dtype!r}")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoConfig, AutoModelForCausalLM

        torch_dtype = DTYPES[dtype]
        if tokenizer_json is not None:
            self.tokenizer = tokenizer_from_json(tokenizer_json)
        elif tokenizer or path:
            self.tokenizer = load_tokenizer(check_folder(tokenizer or path, "llm_head.tokenizer"))
        else:
            raise ValueError("llm_head needs a tokenizer: give `path`, `tokenizer` (a folder) or build one from the "
                             "training data with `tokenizer: build` in the recipe")
        ensure_markers(self.tokenizer)
        if path is not None:
            folder = check_folder(path, "llm_head.path")
            self.model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=torch_dtype)
        else:
            cfg = dict(config or {})
            cfg.setdefault("vocab_size", len(self.tokenizer))
            cfg.setdefault("eos_token_id", self.tokenizer.eos_token_id)
            cfg.setdefault("pad_token_id", self.tokenizer.pad_token_id)
            cfg.setdefault("bos_token_id", self.tokenizer.eos_token_id)
            self.model = AutoModelForCausalLM.from_config(AutoConfig.for_model(arch, **cfg), dtype=torch_dtype)
        if self.model.get_input_embeddings().num_embeddings < len(self.tokenizer):
            self.model.resize_token_embeddings(len(self.tokenizer))
        if gradient_checkpointing:
            self.model.gradient_checkpointing_enable()
        self.hidden_size = int(self.model.get_input_embeddings().embedding_dim)
        self.output_dim = int(self.model.get_input_embeddings().num_embeddings)
        self.audio_marker_id = self.tokenizer.convert_tokens_to_ids(AUDIO_MARKER)
        self.video_marker_id = self.tokenizer.convert_tokens_to_ids(VIDEO_MARKER)
        self.eos_id = self.tokenizer.eos_token_id if self.tokenizer.eos_token_id is not None else \
            self.tokenizer.convert_tokens_to_ids(EOS)
        if train_mode == "lora":
            self.model = apply_lora(self.model, lora or {})
        elif train_mode == "frozen":
            self.set_frozen(True)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B, L) -> (B, L, H)."""
        return self.model.get_input_embeddings()(ids)

    def forward(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor | None = None,
                labels: torch.Tensor | None = None):
        return self.model(inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=position_ids,
                          labels=labels, use_cache=False)

    @torch.no_grad()
    def generate(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, **gen: Any) -> list[str]:
        """Left-padded prompts (B, L, H) -> B decoded continuations (batched, with the KV cache)."""
        gen = {k: v for k, v in gen.items() if v is not None}
        if not gen.get("do_sample"):
            for k in ("temperature", "top_p", "top_k"):
                gen.pop(k, None)
        out = self.model.generate(inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                                  pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self.eos_id,
                                  use_cache=True, **gen)
        return [t.strip() for t in self.tokenizer.batch_decode(out, skip_special_tokens=True)]


def check_folder(path: str | Path, key: str) -> str:
    p = Path(path)
    if not p.is_dir():
        raise FileNotFoundError(f"{key}: model folder {str(p)!r} does not exist. Put the transformers folder "
                                f"(config.json, weights, tokenizer) there; see checkpoints/README.md.")
    return str(p)


def apply_lora(model, lora: dict[str, Any]):
    """Wrap ``model`` with peft LoRA adapters (only adapter weights train)."""
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(r=int(lora.get("r", 8)), lora_alpha=int(lora.get("alpha", 16)),
                     lora_dropout=float(lora.get("dropout", 0.05)),
                     target_modules=list(lora.get("target_modules", ["q_proj", "k_proj", "v_proj"])),
                     bias="none", task_type="CAUSAL_LM")
    return get_peft_model(model, cfg)
