"""DDP through Lightning's own strategy: the tiny recipe on 2 CPU processes (gloo), launched the way users launch it
(`xemogpt train ... trainer.strategy=ddp trainer.devices=2`; Lightning re-invokes the command for rank 1)."""

from __future__ import annotations

import json
import os
import signal
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
def small_model_spec() -> dict:
    """The tiny recipe's model with a smaller LM and no text encoder (also used by the worker scripts)."""
    from xemogpt.recipe import load_recipe

    spec = load_recipe("recipes/xemogpt-tiny.yaml")["model"]
    spec["text_encoder"] = None
    spec["llm_head"] = {k: v for k, v in spec["llm_head"].items() if k != "tokenizer"}
    spec["llm_head"]["config"] = {**spec["llm_head"]["config"], "hidden_size": 64, "num_hidden_layers": 2,
                                  "head_dim": 16, "intermediate_size": 128}
    return spec


@pytest.fixture(scope="module")
def tiny_model():
    import lightning as L

    from xemogpt.models.xemogpt import XEmoGPT
    from xemogpt.training.throughput import synthetic_tokenizer_json

    L.seed_everything(0, verbose=False)
    model = XEmoGPT(small_model_spec(), tokenizer_json=synthetic_tokenizer_json(300, n=40))
    model.set_stage({"name": "instruct", "train": ["video_bridge", "audio_bridge", "video_projector",
                                                   "audio_projector", "llm_head"], "losses": ["lm"]})
    return model


def test_fsdp_policy_wraps_frozen_encoders_apart_from_trainable_parts(tiny_model):
    from lightning.pytorch.strategies import FSDPStrategy
    from torch import nn

    from xemogpt.training.strategies import block_classes, fsdp_wrap_policy, trainer_options

    m = tiny_model
    names = {c.__name__ for c in block_classes(m)}
    assert names == {"Qwen3DecoderLayer", "CLIPLayer", "HubertLayer"}  # the LM's and both bridges' layers
    policy = fsdp_wrap_policy(m)

    def wrapped(module: nn.Module) -> bool:
        return policy(module=module, recurse=False, nonwrapped_numel=0)

    assert wrapped(m.video_encoder) and wrapped(m.audio_encoder)  # frozen: their own units
    assert wrapped(m.video_projector) and wrapped(m.audio_projector)
    assert not wrapped(m.llm_head) and not wrapped(m.video_bridge)  # called through embed()/task_losses(): root unit
    assert wrapped(m.llm_head.model.model.layers[0]) and wrapped(m.video_bridge.layers[0])
    assert wrapped(m.audio_bridge.layers[0])
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

    from xemogpt.checkpointing.files import AtomicCheckpointIO
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


def test_stages_fill_the_feature_cache_before_any_fit_and_never_run_an_encoder(tiny_model, synth_root, tmp_path):
    """Under FSDP/DeepSpeed a frozen encoder's forward is a collective once the model is wrapped, so the cache must be
    complete before the stage's fit and no training step may run an encoder. The runner fills it in its own phase
    (``Trainer.predict`` of each frozen encoder) before the stage's trainer exists; checked on one CPU process."""
    import lightning as L

    from xemogpt.recipe import load_recipe
    from xemogpt.training.runner import RecipeRunner

    recipe = load_recipe("recipes/xemogpt-tiny.yaml", tiny_overrides(synth_root) + [
        "model.text_encoder=null", f"data.features_dir={tmp_path / 'features'}", "stages.0.skip=true",
        "stages.2.train=[video_projector,audio_projector,llm_head]", "stages.2.max_steps=2"])
    runner = RecipeRunner(recipe, tmp_path / "run")
    runner.plan()
    runner.prepare_data()
    runner.build()
    seen: dict = {"encoder_calls": 0, "batch_keys": []}
    for enc in (runner.model.video_encoder, runner.model.audio_encoder):
        enc.register_forward_hook(lambda *a: seen.__setitem__("encoder_calls", seen["encoder_calls"] + 1))
    runner.prepare_stage(1, runner.stages[1])
    n_clips = len(runner.dm._feature_samples())
    assert sorted(runner.dm._stores) == ["audio", "video"] and seen["encoder_calls"] > 0  # filled here, by predict
    seen["encoder_calls"] = 0

    class Probe(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen["batch_keys"].append(sorted(k for k in batch if k.endswith("features")))

    runner.extra_callbacks = [Probe()]
    runner.fit_composed(1, runner.stages[1], tmp_path / "stage.ckpt")
    assert seen["batch_keys"] == [["audio_features", "video_features"]] * 2  # cached encoder outputs, not media
    assert seen["encoder_calls"] == 0  # no step ran a (would-be sharded) encoder
    assert len(runner.dm._feature_samples()) == n_clips
    from xemogpt.training.run import feature_memo

    # ... and the per-sample memo, whose hits differ between ranks, is off wherever the model is sharded
    assert feature_memo({"trainer": {"strategy": "ddp"}}) and not feature_memo({"run": {"feature_memo": False}})
    assert not feature_memo({"trainer": {"strategy": {"name": "fsdp"}}})
    assert not feature_memo({"trainer": {"strategy": "deepspeed_stage_3"}})


def test_the_papers_commented_multi_node_fsdp_block_builds_lightnings_fsdp(tiny_model):
    """Uncommented, the 4-node block of recipes/xemogpt-paper.yaml is a valid recipe whose trainer section becomes
    Lightning's FSDPStrategy (hybrid sharding needs the auto-wrap policy, which the frozen-encoder policy supplies)."""
    import copy
    from pathlib import Path

    import yaml
    from lightning.pytorch.strategies import FSDPStrategy
    from torch.distributed.fsdp import ShardingStrategy

    from xemogpt.recipe import load_recipe, validate_recipe
    from xemogpt.training.strategies import trainer_options

    text = Path("recipes/xemogpt-paper.yaml").read_text(encoding="utf-8").splitlines()
    start = text.index("# trainer:")
    block = []
    for line in text[start:]:
        if not line.startswith("#"):
            break
        block.append(line[2:])
    block = yaml.safe_load("\n".join(block))
    assert block["trainer"]["num_nodes"] == 4 and block["data"]["root"].startswith("s3://")
    recipe = load_recipe("recipes/xemogpt-paper.yaml")
    for key, section in block.items():
        recipe[key] = {**(recipe.get(key) or {}), **section}
    validate_recipe(recipe)
    opts = trainer_options(copy.deepcopy(recipe["trainer"]), tiny_model)
    s = opts["strategy"]
    assert isinstance(s, FSDPStrategy) and s.sharding_strategy == ShardingStrategy.HYBRID_SHARD
    assert s.kwargs["auto_wrap_policy"] is not None and s.kwargs["use_orig_params"]
    assert s._activation_checkpointing_kwargs  # recomputation of the blocks the LLM does not checkpoint itself
    assert (opts["num_nodes"], opts["devices"], opts["precision"], opts["accumulate_grad_batches"]) == \
        (4, 8, "bf16-mixed", 2)


EMPTY_BATCH_WORKER = '''
import json, os, sys
os.environ.setdefault("HF_HUB_OFFLINE", "1")
import lightning as L, torch
from xemogpt.models.xemogpt import XEmoGPT
from tests.test_ddp import small_model_spec
from xemogpt.training.callbacks import weights_digest
from xemogpt.training.strategies import trainer_options
from xemogpt.training.throughput import synthetic_batch, synthetic_tokenizer_json

torch.set_num_threads(1)
L.seed_everything(0, verbose=False)
model = XEmoGPT(small_model_spec(), tokenizer_json=synthetic_tokenizer_json(300, n=40))
full = synthetic_batch(model, 2, audio_seconds=1.0)
empty = {k: (v[:0] if torch.is_tensor(v) or isinstance(v, list) else v) for k, v in full.items()}
empty["skipped"] = [("bad-clip", "decode_error", "truncated file")]


class Batches(torch.utils.data.Dataset):  # rank 1's second batch held only bad clips
    def __len__(self):
        return 3

    def __getitem__(self, i):
        rank = int(os.environ.get("LOCAL_RANK", "0"))
        return empty if (rank == 1 and i == 1) else full


class Record(L.Callback):
    def on_train_end(self, trainer, pl_module):
        out = {"rank": trainer.global_rank, "step": trainer.global_step, "weights": weights_digest(pl_module)}
        with open(os.path.join(sys.argv[1], f"rank{trainer.global_rank}.json"), "w") as f:
            json.dump(out, f)


opts = trainer_options({"strategy": "ddp", "accelerator": "cpu", "devices": 2})
loader = torch.utils.data.DataLoader(Batches(), batch_size=None, collate_fn=lambda b: b)
trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                    enable_model_summary=False, use_distributed_sampler=False, callbacks=[Record()], **opts)
trainer.fit(model, train_dataloaders=loader)
'''


def test_ddp_rank_with_an_empty_batch_keeps_step_with_the_others(tmp_path):
    """A batch whose clips were all bad (the collator drops them) on one rank only: that rank must still join the
    step's collectives, or the other rank waits in its all-reduce forever. Both ranks end the epoch, in step."""
    script = tmp_path / "worker.py"
    script.write_text(EMPTY_BATCH_WORKER, encoding="utf-8")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": os.getcwd()}
    env.pop("LOCAL_RANK", None)
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=int(os.environ.get("XEMOGPT_TEST_DDP_TIMEOUT", "240")))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # both ranks (Lightning starts rank 1 in this process group)
        out, _ = proc.communicate()
        pytest.fail(f"the DDP ranks deadlocked on the empty batch:\n{out[-2000:]}")
    assert proc.returncode == 0, out[-4000:]
    recs = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["step"] for r in recs] == [3, 3]  # rank 1 took the same three optimiser steps
    assert recs[0]["weights"] == recs[1]["weights"]
