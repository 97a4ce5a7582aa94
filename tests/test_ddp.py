"""DDP through Lightning's own strategy: the tiny recipe on 2 CPU processes (gloo), launched the way users launch it
(`xemogpt train ... trainer.strategy=ddp trainer.devices=2`; Lightning re-invokes the command for rank 1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from tests.conftest import tiny_overrides
from xemogpt.training.callbacks import state_digest

DDP = ["trainer.strategy=ddp", "trainer.devices=2", "trainer.accelerator=cpu", "run.record_samples=true",
       "run.threads=1", "stages.0.skip=true", "model.text_encoder=null", "data.batch_size=4",
       "stages.1.epochs=1", "stages.2.epochs=2"]


def test_ddp_two_cpu_ranks_see_disjoint_data_and_end_with_identical_weights(synth_root, tmp_path):
    run_dir = tmp_path / "ddp"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("LOCAL_RANK", None)
    proc = subprocess.run([sys.executable, "-m", "xemogpt", "train", "--run-dir", str(run_dir), "--no-eval",
                           *tiny_overrides(synth_root), *DDP], capture_output=True, text=True, env=env, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "Starting with 2 processes" in out or "MEMBER: 2/2" in out

    train_ids = {json.loads(line)["id"] for line in (synth_root / "manifest.jsonl").read_text().splitlines()
                 if json.loads(line)["split"] == "train"}
    final = state_digest(torch.load(run_dir / "model.ckpt", map_location="cpu", weights_only=True)["state_dict"])
    for stage, epochs in (("align", 1), ("instruct", 2)):
        recs = [json.loads((run_dir / "records" / f"{stage}-rank{r}.json").read_text()) for r in (0, 1)]
        assert [r["rank"] for r in recs] == [0, 1] and all(r["world_size"] == 2 for r in recs)
        assert all(len(r["epochs"]) == epochs for r in recs)
        for e in map(str, range(epochs)):
            a, b = recs[0]["epochs"][e], recs[1]["epochs"][e]
            assert len(a) == len(b) == len(train_ids) // 2  # 20 training clips split evenly, none padded
            assert not set(a) & set(b), f"{stage} epoch {e}: both ranks trained on {sorted(set(a) & set(b))}"
            assert set(a) | set(b) == train_ids  # together the ranks cover the split once per epoch
        if epochs == 2:
            assert recs[0]["epochs"]["0"] != recs[0]["epochs"]["1"]  # reshuffled every epoch
        assert recs[0]["weights_sha256"] == recs[1]["weights_sha256"], f"{stage}: ranks ended with other weights"
    assert recs[0]["weights_sha256"] == final  # model.ckpt holds those weights


# --- strategy settings (no processes started) ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_model():
    import lightning as L

    from xemogpt.models.xemogpt import XEmoGPT
    from xemogpt.recipe import load_recipe
    from xemogpt.training.throughput import synthetic_tokenizer_json

    spec = load_recipe("recipes/xemogpt-tiny.yaml")["model"]
    spec["text_encoder"] = None
    spec["llm_head"] = {k: v for k, v in spec["llm_head"].items() if k != "tokenizer"}
    spec["llm_head"]["config"] = {**spec["llm_head"]["config"], "hidden_size": 64, "num_hidden_layers": 2,
                                  "head_dim": 16, "intermediate_size": 128}
    L.seed_everything(0, verbose=False)
    model = XEmoGPT(spec, tokenizer_json=synthetic_tokenizer_json(300, n=40))
    model.set_stage({"name": "instruct", "train": ["video_bridge", "audio_bridge", "video_projector",
                                                   "audio_projector", "llm_head"], "losses": ["lm"]})
    return model


def test_fsdp_policy_wraps_frozen_encoders_apart_from_trainable_parts(tiny_model):
    from lightning.pytorch.strategies import FSDPStrategy
    from torch import nn

    from xemogpt.training.strategies import block_classes, fsdp_wrap_policy, trainer_options

    m = tiny_model
    names = {c.__name__ for c in block_classes(m)}
    assert {"Qwen3DecoderLayer", "TransformerEncoderLayer"} <= names
    policy = fsdp_wrap_policy(m)

    def wrapped(module: nn.Module) -> bool:
        return policy(module=module, recurse=False, nonwrapped_numel=0)

    assert wrapped(m.video_encoder) and wrapped(m.audio_encoder)  # frozen: their own units
    assert wrapped(m.video_projector) and wrapped(m.audio_projector)
    assert not wrapped(m.llm_head) and not wrapped(m.video_bridge)  # called through embed()/task_losses(): root unit
    assert wrapped(m.llm_head.model.model.layers[0]) and wrapped(m.video_bridge.stack.layers[0])
    # frozen and trainable weights never share a unit whose parameters all come from one component
    assert not any(p.requires_grad for p in m.video_encoder.parameters())
    assert all(p.requires_grad for p in m.video_projector.parameters())

    opts = trainer_options({"strategy": {"name": "fsdp", "sharding_strategy": "SHARD_GRAD_OP"},
                            "activation_checkpointing": True, "precision": "auto"}, m)
    s = opts["strategy"]
    assert isinstance(s, FSDPStrategy) and s.kwargs["use_orig_params"] and s._state_dict_type == "full"
    assert "auto_wrap_policy" in s._activation_checkpointing_kwargs  # FSDP recomputes the blocks itself
    assert opts["precision"] == ("bf16-mixed" if torch.cuda.is_available() and torch.cuda.is_bf16_supported()
                                 else "32-true")


def test_ddp_deepspeed_and_plain_options(tiny_model):
    from lightning.pytorch.strategies import DDPStrategy

    from xemogpt.training.checkpoint_io import AtomicCheckpointIO
    from xemogpt.training.strategies import StrategyError, trainer_options, wraps_in_place

    assert wraps_in_place({"strategy": {"name": "fsdp"}}) and wraps_in_place({"strategy": "deepspeed_stage_3"})
    assert not wraps_in_place({"strategy": "ddp"}) and not wraps_in_place(None)
    opts = trainer_options({"strategy": "ddp", "num_nodes": 2, "accumulate_grad_batches": 4}, tiny_model)
    assert isinstance(opts["strategy"], DDPStrategy) and opts["strategy"]._ddp_kwargs["find_unused_parameters"]
    assert opts["num_nodes"] == 2 and opts["accumulate_grad_batches"] == 4
    assert any(isinstance(p, AtomicCheckpointIO) for p in opts["plugins"])
    assert trainer_options({"precision": "bf16-mixed"})["precision"] == "bf16-mixed"  # explicit values stay
    try:
        import deepspeed  # noqa: F401
    except ImportError:
        with pytest.raises(StrategyError, match="pip install deepspeed"):
            trainer_options({"strategy": {"name": "deepspeed", "stage": 2}})
    with pytest.raises(StrategyError, match="takes no arguments"):
        trainer_options({"strategy": {"name": "single_device", "foo": 1}})


def test_activation_checkpointing_keeps_results_and_checkpoint_keys(tiny_model):
    import copy

    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import CheckpointWrapper

    from xemogpt.training.strategies import enable_activation_checkpointing
    from xemogpt.training.throughput import synthetic_batch

    plain = tiny_model
    ckpt = copy.deepcopy(plain)
    assert enable_activation_checkpointing(ckpt) == 2 + 2 + 2  # LM decoder layers and both bridges' layers
    assert any(isinstance(m, CheckpointWrapper) for m in ckpt.modules())
    assert ckpt.state_dict().keys() == plain.state_dict().keys()
    batch = synthetic_batch(plain, 2, audio_seconds=2.0)
    losses = []
    for m in (plain, ckpt):
        m.train()
        torch.manual_seed(0)
        loss = m.compute_losses(batch)["lm"]
        loss.backward()
        losses.append((loss.detach(), next(m.video_projector.parameters()).grad.clone()))
        m.zero_grad(set_to_none=True)
    assert torch.allclose(losses[0][0], losses[1][0]) and torch.allclose(losses[0][1], losses[1][1], atol=1e-6)
