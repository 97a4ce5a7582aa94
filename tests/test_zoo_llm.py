"""The LLM head on each supported shape (Qwen3, Qwen2.5, Llama, GPT-2) loaded from transformers folders."""

from __future__ import annotations

import pytest
import torch

from tests import test_zoo_fixtures as fx
from tests.test_zoo_fixtures import one_thread  # noqa: F401  (autouse)
from xemogpt import registry
from xemogpt.components_io import MissingWeightsError, architecture_only

LORA = {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "k_proj", "v_proj"]}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo-llm")
    return {mt: fx.make_lm_folder(root, mt) for mt in fx.LM_TINY}


def head(folder, **spec):
    return registry.build("llm_head", {"name": "causal-lm", "path": str(folder), **spec}, "model.llm_head")


@pytest.mark.parametrize("model_type", list(fx.LM_TINY))
def test_lora_on_each_shape(folders, model_type):
    torch.manual_seed(0)
    h = head(folders[model_type], train_mode="lora", lora=LORA, template="chat")
    assert h.hidden_size == 32 and h.output_dim == len(h.tokenizer)
    trainable = [n for n, p in h.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    targets = set(h.model.peft_config["default"].target_modules)
    # GPT-2 fuses q/k/v into c_attn: the paper's q/k/v targets map to it
    assert targets == ({"c_attn"} if model_type == "gpt2" else {"q_proj", "k_proj", "v_proj"})
    n_layers = 2
    per_layer = sum(4 * (m.in_features + m.out_features) for n, m in h.model.named_modules()
                    if n.endswith(tuple(targets)) and hasattr(m, "in_features") and ".0." in n)
    if model_type != "gpt2":
        assert sum(p.numel() for n, p in h.named_parameters() if p.requires_grad) == n_layers * per_layer
    emb = torch.randn(2, 7, 32)
    attn = torch.ones(2, 7, dtype=torch.long)
    labels = torch.randint(0, 50, (2, 7))
    out = h(emb, attn, torch.arange(7).expand(2, 7), labels)
    out.loss.backward()
    assert torch.isfinite(out.loss) and out.logits.shape == (2, 7, h.output_dim)
    assert all(p.grad is not None for n, p in h.named_parameters() if p.requires_grad)
    texts = h.generate(emb, attn, max_new_tokens=3, num_beams=2, do_sample=False)
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
    from xemogpt.llm.prompt import build_prompt

    assert build_prompt("hi", template="chat", tokenizer=h.tokenizer).startswith("<|user|>")
    # the media slots are ids outside the vocabulary (never looked up); the tokenizer itself is left as it was
    assert h.audio_marker_id != h.video_marker_id and min(h.audio_marker_id, h.video_marker_id) < 0


def test_full_and_frozen_modes(folders):
    full = head(folders["qwen3"], train_mode="full")
    assert full.num_parameters(trainable_only=True) == full.num_parameters() > 0
    frozen = head(folders["qwen3"], train_mode="frozen")
    frozen.train()
    assert frozen.num_parameters(trainable_only=True) == 0 and not frozen.model.training


def test_dtype_and_gradient_checkpointing(folders):
    h = head(folders["llama"], dtype="bf16", gradient_checkpointing=True, train_mode="lora", lora=LORA)
    base = h.model.get_base_model()
    assert base.model.embed_tokens.weight.dtype == torch.bfloat16
    assert getattr(base, "is_activation_checkpointing", None) or base.is_gradient_checkpointing
    out = h(torch.randn(1, 5, 32, dtype=torch.bfloat16), torch.ones(1, 5, dtype=torch.long),
            labels=torch.randint(0, 50, (1, 5)))
    out.loss.backward()
    assert torch.isfinite(out.loss.float())
    assert head(folders["llama"], dtype="auto").model.dtype == (torch.float32 if not torch.cuda.is_available()
                                                                 else h.model.dtype)


def test_bad_lora_target_lists_the_layers(folders):
    with pytest.raises(ValueError, match="c_attn"):
        head(folders["gpt2"], train_mode="lora", lora={**LORA, "target_modules": ["gate_proj"]})
    with pytest.raises(ValueError, match="unknown key"):
        head(folders["qwen3"], train_mode="lora", lora={**LORA, "rank": 8})


def test_named_config_describes_an_absent_folder(tmp_path):
    spec = {"name": "causal-lm", "path": str(tmp_path / "Qwen3-4B"), "config": "qwen3-4b", "train_mode": "lora",
            "lora": {"r": 512, "alpha": 512, "dropout": 0.05, "target_modules": ["q_proj", "k_proj", "v_proj"]}}
    with pytest.raises(MissingWeightsError, match="Qwen3-4B"):
        registry.build("llm_head", spec, "model.llm_head")
    with torch.device("meta"), architecture_only():
        h = registry.build("llm_head", spec, "model.llm_head")
    lora = sum(p.numel() for n, p in h.named_parameters() if "lora_" in n)
    assert h.hidden_size == 2560 and h.output_dim == 151936 and h.tokenizer is None
    assert lora == 36 * 512 * ((2560 + 4096) + 2 * (2560 + 1024))  # r * (in + out) for q, k, v in 36 layers
    assert abs((h.num_parameters() - lora) / 4.0e9 - 1) < 0.02


def test_dtype_none_is_float32_whatever_the_folder_holds(tmp_path):
    """A bf16 folder (as Qwen3-4B ships) loads as float32 with dtype null (and auto on a CPU), as bf16 with bf16."""
    from transformers import AutoModelForCausalLM

    folder = fx.make_lm_folder(tmp_path, "qwen3")
    m = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.bfloat16)
    m.save_pretrained(str(folder))
    assert AutoModelForCausalLM.from_pretrained(str(folder)).dtype == torch.bfloat16  # transformers' own default
    assert head(folder).model.dtype == torch.float32
    assert head(folder, dtype="bf16").model.dtype == torch.bfloat16
    if not torch.cuda.is_available():
        assert head(folder, dtype="auto").model.dtype == torch.float32
