"""The LLM head: any transformers causal LM (a local folder or a small config), full, LoRA or frozen."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from xemogpt.checkpointing.pretrained import (
    WeightArg,
    build_hf_model,
    hf_config,
    hf_config_dict,
    is_architecture_only,
    local_folder,
    resolve_source,
)
from xemogpt.component import Component
from xemogpt.llm.prompt import TEMPLATES
from xemogpt.llm.splice import AUDIO_SLOT, VIDEO_SLOT
from xemogpt.llm.tokenizer import EOS, ensure_pad, load_tokenizer, tokenizer_from_json
from xemogpt.registry import register

TRAIN_MODES = ("full", "lora", "frozen")
BOS_MODES = (None, "pad", "bos")
DTYPES = {None: None, "fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16,
          "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16, "auto": None}
LM_FOLDER = WeightArg("folder", "a Hugging Face causal-LM folder with its tokenizer (config.json, *.safetensors, "
                                "tokenizer.json / tokenizer_config.json)", ("config.json",))
TOKENIZER_FOLDER = WeightArg("folder", "a Hugging Face tokenizer folder (tokenizer.json, tokenizer_config.json)")
# Where an architecture fuses or renames the attention projections, LoRA targets given as q/k/v/o map here.
LORA_ALIASES: dict[str, str] = {"q_proj": "c_attn", "k_proj": "c_attn", "v_proj": "c_attn", "o_proj": "attn.c_proj"}
LORA_FUSED = {"query_key_value", "qkv_proj", "Wqkv", "c_attn"}


def resolve_dtype(dtype: str | None) -> torch.dtype | None:
    """``auto``: bf16 on GPUs that support it, else fp16 on GPU, fp32 on CPU."""
    if dtype == "auto":
        if torch.cuda.is_available():
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return None
    return DTYPES[dtype]


@register("llm_head", "causal-lm")
class CausalLMHead(Component):
    """A causal LM that reads spliced embeddings and writes the description.

    forward(inputs_embeds (B, L, H), attention_mask (B, L), position_ids (B, L), labels (B, L)) -> HF output with
    ``loss`` (mean over label tokens) and ``logits`` (B, L, V). ``hidden_size`` (H) is what projectors link to.

    Args:
        path: a local transformers folder (Qwen3, Qwen2.5, Llama, GPT-2 ...). None builds from ``config``.
        arch: model type for ``config`` (``qwen3``, ``llama``, ``gpt2`` ...).
        config: config fields for a model built from scratch (vocab size comes from the tokenizer), or the name of
            a shipped architecture (``qwen3-4b``, see ``src/xemogpt/configs``) that describes ``path`` when the folder
            is absent (``xemogpt zoo --describe``). With an existing ``path``, a dict overrides the folder's fields.
        tokenizer: a tokenizer folder (default: ``path``). tokenizer_json: a serialised tokenizer (checkpoints
            carry it so a run rebuilds from its checkpoint alone).
        train_mode: ``full``, ``lora`` (peft) or ``frozen``.
        lora: LoRA settings: r, alpha, dropout, target_modules (paper: 512, 512, 0.05, [q_proj, k_proj, v_proj]);
            q/k/v/o targets map to the fused ``c_attn`` / ``attn.c_proj`` of GPT-2-shaped models.
        template: ``paper`` (the released prompt), ``human-assistant`` or ``chat`` (see :mod:`xemogpt.llm.prompt`).
        max_length: the most places the prompt part (text and modality tokens, after ``bos``) takes; a longer one
            keeps its first ``max_length`` places and the target follows in full (the official ``max_context_len``).
        bos: what starts every sequence: ``pad`` (the pad token's embedding, as the released XEmoGPT does with
            Qwen), ``bos`` (the tokenizer's bos token) or None (nothing).
        dtype: weights dtype: bf16, fp16, fp32, ``auto`` (bf16 where the GPU supports it, fp16 on other GPUs,
            fp32 on CPU) or None (fp32).
        gradient_checkpointing: recompute activations in the backward pass.
        generation_config: generation defaults as a folder's ``generation_config.json`` holds them (``top_k``,
            ``top_p``, ``temperature`` ...), over the folder's own; a portable checkpoint carries the folder's here, so
            a rebuild without the folder samples as the original did.
    """

    weight_args = {"path": LM_FOLDER, "tokenizer": TOKENIZER_FOLDER}

    def __init__(self, path: str | None = None, arch: str = "qwen3", config: dict[str, Any] | str | None = None,
                 tokenizer: str | None = None, tokenizer_json: str | None = None, train_mode: str = "full",
                 lora: dict[str, Any] | None = None, template: str = "paper", max_length: int = 2048,
                 dtype: str | None = None, gradient_checkpointing: bool = False, bos: str | None = None,
                 generation_config: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        key = "model.llm_head"
        if train_mode not in TRAIN_MODES:
            raise ValueError(f"llm_head.train_mode must be one of {TRAIN_MODES}, got {train_mode!r}")
        if dtype not in DTYPES:
            raise ValueError(f"llm_head.dtype must be one of {sorted(k for k in DTYPES if k)} or null, got {dtype!r}")
        if template not in TEMPLATES:
            raise ValueError(f"llm_head.template must be one of {TEMPLATES}, got {template!r}")
        if bos not in BOS_MODES:
            raise ValueError(f"llm_head.bos must be one of pad, bos or null, got {bos!r}")
        from transformers import AutoModelForCausalLM
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

        torch_dtype = resolve_dtype(dtype)
        named = config if isinstance(config, str) else None
        overrides = config if isinstance(config, dict) else None
        src = resolve_source(path, named, overrides, key, LM_FOLDER.what, preprocess_file=None)
        arch_only = is_architecture_only()
        self.tokenizer = None
        tok_folder = (local_folder(tokenizer, f"{key}.tokenizer") if tokenizer not in (None, "build") else tokenizer) \
            or (str(src.folder) if src.folder is not None else None)
        if tokenizer_json is not None:
            self.tokenizer = tokenizer_from_json(tokenizer_json)
        elif tok_folder and tok_folder != "build" and (Path(tok_folder).is_dir() or not arch_only):
            self.tokenizer = load_tokenizer(check_folder(tok_folder, "llm_head.tokenizer"))
        elif not arch_only:
            raise ValueError("llm_head needs a tokenizer: give `path`, `tokenizer` (a folder) or build one from the "
                             "training data with `tokenizer: build` in the recipe")
        if self.tokenizer is not None:
            ensure_pad(self.tokenizer)
        cfg_dict = dict(src.config)
        if src.folder is None and self.tokenizer is not None:
            # Built from a config: ids come from the tokenizer (a named config keeps its own vocabulary size).
            cfg_dict.setdefault("vocab_size", len(self.tokenizer))
            cfg_dict.setdefault("eos_token_id", self.tokenizer.eos_token_id)
            cfg_dict.setdefault("pad_token_id", self.tokenizer.pad_token_id)
            cfg_dict.setdefault("bos_token_id", self.tokenizer.eos_token_id)
        if "vocab_size" not in cfg_dict and src.folder is None:
            raise ValueError(f"{key}: no vocabulary size: give config.vocab_size or a tokenizer")
        cfg = hf_config(cfg_dict, arch)
        if src.load_weights:
            self.model = build_hf_model(AutoModelForCausalLM, src, cfg, torch_dtype, key)
        else:
            self.model = build_hf_model(MODEL_FOR_CAUSAL_LM_MAPPING[type(cfg)], src, cfg, torch_dtype, key)
        if generation_config:
            self.model.generation_config.update(**generation_config)
        if self.tokenizer is not None and self.model.get_input_embeddings().num_embeddings < len(self.tokenizer):
            self.model.resize_token_embeddings(len(self.tokenizer))
        if gradient_checkpointing:
            # transformers 5 renamed it activation checkpointing; 4.x only has the old name.
            if hasattr(self.model, "activation_checkpointing_enable"):
                self.model.activation_checkpointing_enable({"use_reentrant": False})
            else:
                self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.hidden_size = int(self.model.get_input_embeddings().embedding_dim)
        self.output_dim = int(self.model.get_input_embeddings().num_embeddings)
        tok = self.tokenizer
        self.audio_marker_id, self.video_marker_id = AUDIO_SLOT, VIDEO_SLOT  # where the prompt takes its media
        self.eos_id = None if tok is None else (tok.eos_token_id if tok.eos_token_id is not None else
                                                tok.convert_tokens_to_ids(EOS))
        self.bos_id = None
        if tok is not None and bos is not None:
            self.bos_id = tok.pad_token_id if bos == "pad" else tok.bos_token_id
            if self.bos_id is None:
                raise ValueError(f"llm_head.bos: {bos!r}, but the tokenizer has no {bos} token")
        if train_mode == "lora":
            self.model = apply_lora(self.model, lora or {})
        elif train_mode == "frozen":
            self.set_frozen(True)

    def portable_spec(self, folder: Path) -> dict[str, Any]:
        """Rebuild without the original folder: the architecture goes in ``config``, the tokenizer is saved."""
        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        spec: dict[str, Any] = {"path": None, "config": hf_config_dict(base.config), "arch": base.config.model_type,
                                "tokenizer": None, "tokenizer_json": None}
        # the folder's sampling defaults (Qwen3: top_k 20, top_p 0.95, temperature 0.6), which a config alone lacks
        gen = {k: v for k, v in base.generation_config.to_diff_dict().items() if k != "transformers_version"}
        spec["generation_config"] = {**(self.hparams.generation_config or {}), **gen} or None
        if self.tokenizer is not None:
            self.tokenizer.save_pretrained(str(folder / "tokenizer"))
            spec["tokenizer"] = "tokenizer"
            spec["_relative"] = ["tokenizer"]
        return spec

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B, L) -> (B, L, H)."""
        return self.model.get_input_embeddings()(ids)

    def forward(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor,
                position_ids: torch.Tensor | None = None, labels: torch.Tensor | None = None):
        return self.model(inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=position_ids,
                          labels=labels, use_cache=False)

    # --- standalone training on text: the optional lm_warmup stage ----------------------------------------------
    def text_batch(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Descriptions -> right-padded (input_ids, attention_mask, labels) (B, L): ``bos`` (when set), the
        description, eos; every token but ``bos`` is a label."""
        head = [self.bos_id] if self.bos_id is not None else []
        seqs = [head + self.tokenizer(t, add_special_tokens=False)["input_ids"] + [self.eos_id] for t in texts]
        n = max(len(q) for q in seqs)
        ids = torch.full((len(seqs), n), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros(len(seqs), n, dtype=torch.long)
        for i, q in enumerate(seqs):
            ids[i, :len(q)] = torch.tensor(q)
            mask[i, :len(q)] = 1
        labels = ids.masked_fill(mask == 0, -100)
        if head:
            labels[:, 0] = -100
        return ids.to(self.device), mask.to(self.device), labels.to(self.device)

    def _text_step(self, batch: dict[str, Any], split: str) -> torch.Tensor:
        ids, mask, labels = self.text_batch(list(batch["description"]))
        loss = self.model(input_ids=ids, attention_mask=mask, labels=labels, use_cache=False).loss
        self.log(f"{split}/lm_text", loss, prog_bar=True, batch_size=ids.shape[0], sync_dist=split != "train")
        return loss

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """Language modelling on descriptions alone (``Trainer.fit(llm_head, datamodule.text_data())``): a batch
        ``{"description": [B strings]}``; the loss is the mean over description tokens."""
        return self._text_step(batch, "train")

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._text_step(batch, "val")

    def stop_ids(self) -> list[int]:
        """Generation stops at the tokenizer's eos or its pad token (Qwen: ``<|im_end|>`` or ``<|endoftext|>``)."""
        tok = self.tokenizer
        return list(dict.fromkeys(i for i in (self.eos_id, tok.pad_token_id) if i is not None))

    @torch.no_grad()
    def generate_ids(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, **gen: Any) -> torch.Tensor:
        """Left-padded prompts (B, L, H) -> generated token ids (B, N) (batched, with the KV cache).

        Settings not given (None) come from the model folder's generation config, as the official code leaves them
        (Qwen3's ``top_k: 20`` applies when sampling); ``do_sample: false`` drops the sampling ones."""
        gen = {k: v for k, v in gen.items() if v is not None}
        if not gen.get("do_sample"):
            for k in ("temperature", "top_p", "top_k"):
                gen.pop(k, None)
            gen.setdefault("do_sample", False)
        return self.model.generate(inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                                   pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self.stop_ids(),
                                   use_cache=True, **gen)

    def decode(self, ids: torch.Tensor) -> list[str]:
        """Generated ids (B, N) -> texts, special tokens skipped, stripped."""
        return [t.strip() for t in self.tokenizer.batch_decode(ids, skip_special_tokens=True)]

    @torch.no_grad()
    def generate(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, **gen: Any) -> list[str]:
        """Left-padded prompts (B, L, H) -> B decoded continuations."""
        return self.decode(self.generate_ids(inputs_embeds, attention_mask, **gen))


def check_folder(path: str | Path, key: str) -> str:
    p = Path(path)
    if not p.is_dir():
        raise FileNotFoundError(f"{key}: model folder {str(p)!r} does not exist. Put the transformers folder "
                                f"(config.json, weights, tokenizer) there; see checkpoints/README.md.")
    return str(p)


def lora_targets(model: nn.Module, wanted: list[str]) -> list[str]:
    """Check LoRA target names against the model's linear layers; q/k/v/o map to fused projections (GPT-2)."""
    from transformers.pytorch_utils import Conv1D

    linear = [n for n, m in model.named_modules() if isinstance(m, (nn.Linear, Conv1D))]
    suffixes = {n.split(".")[-1] for n in linear}
    out: list[str] = []
    for t in wanted:
        if t in suffixes or any(n.endswith("." + t) for n in linear):
            target = t
        elif t in LORA_ALIASES and any(n.endswith("." + LORA_ALIASES[t]) for n in linear):
            target = LORA_ALIASES[t]
        elif t in ("q_proj", "k_proj", "v_proj") and suffixes & LORA_FUSED:
            target = sorted(suffixes & LORA_FUSED)[0]
        else:
            raise ValueError(f"llm_head.lora.target_modules: the model has no layer {t!r}; its linear layers are "
                             f"named {sorted(suffixes)}")
        if target not in out:
            out.append(target)
    return out


def apply_lora(model, lora: dict[str, Any]):
    """Wrap ``model`` with peft LoRA adapters (only adapter weights train)."""
    from peft import LoraConfig, get_peft_model
    from transformers.pytorch_utils import Conv1D

    unknown = set(lora) - {"r", "alpha", "dropout", "target_modules"}
    if unknown:
        raise ValueError(f"llm_head.lora has unknown key(s) {sorted(unknown)}; keys: r, alpha, dropout, "
                         "target_modules")
    targets = lora_targets(model, list(lora.get("target_modules", ["q_proj", "k_proj", "v_proj"])))
    fan_in_fan_out = any(isinstance(m, Conv1D) and n.endswith(tuple("." + t for t in targets))
                         for n, m in model.named_modules())
    cfg = LoraConfig(r=int(lora.get("r", 8)), lora_alpha=int(lora.get("alpha", 16)),
                     lora_dropout=float(lora.get("dropout", 0.05)), target_modules=targets,
                     fan_in_fan_out=fan_in_fan_out, bias="none", task_type="CAUSAL_LM")
    return get_peft_model(model, cfg)
