"""Fault tolerance: atomic checkpoint saves, SIGTERM/SIGINT stop with a resumable checkpoint, a run interrupted
mid-epoch and resumed ends with the same weights as an uninterrupted one, and a NaN loss stops the run cleanly."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch

from tests.conftest import tiny_overrides
from xemogpt.checkpointing.files import AtomicCheckpointIO, clean_stale_temps
from xemogpt.models.xemogpt import XEmoGPT
from xemogpt.recipe import load_recipe
from xemogpt.training.callbacks import NonFiniteLossError, RunInterrupted, state_digest, weights_digest
from xemogpt.training.runner import train_recipe

# Two stages (align: 1 epoch, instruct: 2 epochs of 3 batches) with attention dropout, so the random state matters.
FAST = ["stages.0.skip=true", "model.text_encoder=null", "run.threads=1", "stages.1.epochs=1", "stages.2.epochs=2",
        "model.llm_head.config.attention_dropout=0.2", "run.record_samples=true"]


def recipe_for(root: Path, *extra: str) -> dict:
    return load_recipe("recipes/xemogpt-tiny.yaml", tiny_overrides(root) + FAST + list(extra))


def load_ckpt(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


class SignalAt(L.Callback):
    """Sends ``signum`` to this process at the end of global step ``step`` of ``stage``."""

    def __init__(self, stage: str, step: int, signum: int) -> None:
        self.stage, self.step, self.signum = stage, step, signum

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if pl_module.stage["name"] == self.stage and trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)


# --- atomic saves -------------------------------------------------------------------------------------------------
def _save_forever(path: str, big: torch.Tensor, first: int) -> None:
    io = AtomicCheckpointIO()
    v = first
    while True:
        io.save_checkpoint({"version": v, "w": big, "tail": torch.tensor([v])}, path)
        v += 1


def _partial_write(folder: Path, full: int) -> bool:
    """True while some file in ``folder`` (the checkpoint itself or a temporary one) is part-way through a write."""
    for p in folder.iterdir():
        try:
            size = p.stat().st_size
        except OSError:  # renamed or removed meanwhile
            continue
        if 0 < size < full - 1024:
            return True
    return False


def test_sigkill_during_save_never_corrupts_the_last_good_checkpoint(tmp_path):
    path = tmp_path / "last.ckpt"
    big = torch.arange(6_000_000, dtype=torch.float32)  # 24 MB: a write takes long enough to be hit by the kill
    AtomicCheckpointIO().save_checkpoint({"version": 0, "w": big, "tail": torch.tensor([0])}, path)
    full = path.stat().st_size
    ctx = multiprocessing.get_context("fork")  # the child inherits the imports; it only serialises tensors
    seen, mid_write = [], 0
    for i in range(6):
        child = ctx.Process(target=_save_forever, args=(str(path), big, 1000 * (i + 1)), daemon=True)
        child.start()
        time.sleep(0.3 + 0.1 * i)  # let some saves complete first
        deadline = time.time() + 10
        while time.time() < deadline and not _partial_write(tmp_path, full):
            pass  # kill while bytes of a save are being written (a non-atomic writer truncates the target here)
        mid_write += _partial_write(tmp_path, full)
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        ckpt = load_ckpt(path)  # never truncated, never a mix of two saves
        assert int(ckpt["tail"]) == ckpt["version"]
        assert torch.equal(ckpt["w"], big)
        seen.append(ckpt["version"])
    assert mid_write >= 3, f"only {mid_write} of 6 kills landed during a write; the test did not exercise the hazard"
    assert max(seen) >= 1000, "the killed savers never replaced the file; the test did not exercise a save"
    # every kill that hit a save in progress left its half-written temporary file beside the checkpoint
    stale = [p for p in tmp_path.iterdir() if p.name != "last.ckpt"]
    assert stale and all(p.name.startswith(".last.ckpt.tmp-") for p in stale), "no kill landed during a save"
    assert sorted(clean_stale_temps(tmp_path)) == sorted(stale)
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


# --- interrupt and resume -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def runs(synth_root, tmp_path_factory):
    """An uninterrupted run, and the same run stopped by SIGINT at global step 4 (epoch 1, batch 1) of the second
    stage, then resumed."""
    base_dir = tmp_path_factory.mktemp("base")
    run_dir = tmp_path_factory.mktemp("interrupted")
    recipe = recipe_for(synth_root)
    train_recipe(recipe, base_dir, evaluate=False)
    with pytest.raises(RunInterrupted) as stopped:
        train_recipe(recipe, run_dir, evaluate=False, callbacks=[SignalAt("instruct", 4, signal.SIGINT)])
    snapshot = {"progress": json.loads((run_dir / "progress.json").read_text()),
                "last": load_ckpt(run_dir / "checkpoints" / "last.ckpt")}
    summary = train_recipe(recipe, run_dir, evaluate=False, resume=True)
    return base_dir, run_dir, stopped.value, snapshot, summary


def test_sigint_saves_a_resumable_checkpoint_mid_epoch(runs):
    _, run_dir, stopped, snap, _ = runs
    assert stopped.signum == signal.SIGINT and stopped.stage == "instruct" and stopped.global_step == 4
    prog = snap["progress"]
    assert prog["status"] == "interrupted"
    assert [c["name"] for c in prog["completed"]] == ["align"]
    assert prog["current"] == {"index": 1, "name": "instruct", "checkpoint": "checkpoints/last.ckpt",
                               "global_step": 4, "reason": "signal SIGINT", "part": None, "done_parts": [],
                               "partial": None}
    last = snap["last"]
    assert last["global_step"] == 4 and last["xemogpt_stage"] == {"index": 1, "name": "instruct"}
    # the data position: epoch 1, one batch of 8 samples into it
    (loader,) = last["loops"]["fit_loop"]["state_dict"]["combined_loader"]
    assert (loader["epoch"], loader["samples"]) == (1, 8)
    assert last["optimizer_states"][0]["state"] and last["lr_schedulers"][0]["last_epoch"] == 4
    assert len(last["callbacks"]["RNGState"]["ranks"]) == 1


def test_resumed_run_ends_with_the_weights_of_an_uninterrupted_run(runs):
    base_dir, run_dir, _, _, summary = runs
    a = load_ckpt(base_dir / "model.ckpt")["state_dict"]
    b = load_ckpt(run_dir / "model.ckpt")["state_dict"]
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"
    # it really trained after the resume: the interrupted state is not the final one
    assert state_digest(b) != state_digest(load_ckpt(run_dir / "checkpoints" / "1-align.ckpt")["state_dict"])
    # same samples in the same order, the ones before the stop included (they travel in the checkpoint)
    rec_a = json.loads((base_dir / "records" / "instruct-rank0.json").read_text())
    rec_b = json.loads((run_dir / "records" / "instruct-rank0.json").read_text())
    assert rec_a["epochs"] == rec_b["epochs"] and len(rec_b["epochs"]["1"]) == 20
    prog = json.loads((run_dir / "progress.json").read_text())
    assert prog["status"] == "finished" and [c["name"] for c in prog["completed"]] == ["align", "instruct"]
    assert not (run_dir / "checkpoints" / "last.ckpt").exists()
    assert Path(summary["checkpoint"]).exists()


def test_resume_refuses_another_model(runs, synth_root):
    _, run_dir, _, _, _ = runs
    from xemogpt.recipe import RecipeError

    with pytest.raises(RecipeError, match="model"):
        train_recipe(recipe_for(synth_root, "model.llm_head.config.num_hidden_layers=3"), run_dir, evaluate=False,
                     resume=True)


def test_sigterm_stops_the_cli_cleanly_with_a_resumable_checkpoint(synth_root, tmp_path):
    run_dir = tmp_path / "run"
    args = [sys.executable, "-m", "xemogpt", "train", "--run-dir", str(run_dir), "--no-eval",
            *tiny_overrides(synth_root), *FAST, "stages.2.max_steps=400"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines = []
    try:
        for line in proc.stdout:  # wait until the second stage trains
            lines.append(line)
            if "== stage 2/2: instruct" in line:
                break
        deadline = time.time() + 120
        while time.time() < deadline and "global_step" not in _current(run_dir):
            time.sleep(0.2)
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=180)
    finally:
        proc.kill()
    text = "".join(lines) + out
    assert proc.returncode == 128 + signal.SIGTERM, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    assert "--resume" in text
    prog = json.loads((run_dir / "progress.json").read_text())
    assert prog["status"] == "interrupted" and prog["current"]["reason"] == "signal SIGTERM"
    step = prog["current"]["global_step"]
    assert 0 < step < 400
    last = load_ckpt(run_dir / "checkpoints" / "last.ckpt")
    assert last["global_step"] == step and last["xemogpt_stage"]["name"] == "instruct"
    assert not [p for p in (run_dir / "checkpoints").iterdir() if ".tmp-" in p.name]


def _current(run_dir: Path) -> dict:
    """The running stage's progress record once the second stage has started (empty before)."""
    try:
        cur = json.loads((run_dir / "progress.json").read_text()).get("current") or {}
    except (OSError, ValueError):
        return {}
    return cur if cur.get("name") == "instruct" else {}


# --- non-finite loss ----------------------------------------------------------------------------------------------
def test_nan_loss_stops_with_step_ids_and_the_checkpoint_from_before(synth_root, tmp_path, monkeypatch):
    seen: dict = {}

    class Watch(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if pl_module.stage["name"] == "instruct" and trainer.global_step == 2:
                seen.update(ids=list(batch["ids"]), digest=weights_digest(pl_module))

    clean = XEmoGPT.compute_losses

    def poisoned(self, batch):  # the injected fault; detection and handling are the real code
        losses = clean(self, batch)
        if self.stage["name"] == "instruct" and self.trainer.global_step == 2:
            losses["lm"] = losses["lm"] * float("nan")
        return losses

    monkeypatch.setattr(XEmoGPT, "compute_losses", poisoned)
    with pytest.raises(NonFiniteLossError) as err:
        train_recipe(recipe_for(synth_root), tmp_path, evaluate=False, callbacks=[Watch()])
    e = err.value
    assert (e.stage, e.global_step, e.epoch, e.batch_idx) == ("instruct", 2, 0, 2)
    assert e.ids == seen["ids"] and len(e.ids) == 4
    assert e.losses["lm"] != e.losses["lm"]  # NaN
    msg = str(e)
    assert "global step 2" in msg and all(i in msg for i in e.ids) and "nonfinite-2-instruct-step2.ckpt" in msg
    ckpt = load_ckpt(Path(e.checkpoint))
    assert state_digest(ckpt["state_dict"]) == seen["digest"]  # the weights from before the bad step
    assert all(torch.isfinite(t).all() for t in ckpt["state_dict"].values() if t.is_floating_point())
    prog = json.loads((tmp_path / "progress.json").read_text())
    assert prog["status"] == "failed" and "non-finite" in prog["message"]


def test_sharded_checkpoint_folders_are_removed_and_files_pass_through(tmp_path):
    """A DeepSpeed resumable checkpoint is a folder: the stage end removes it like a file; a plain checkpoint file
    is left as it is by the consolidation step."""
    from xemogpt.checkpointing.files import consolidate_sharded, remove_checkpoint

    shard_dir = tmp_path / "last.ckpt"
    (shard_dir / "checkpoint").mkdir(parents=True)
    (shard_dir / "checkpoint" / "mp_rank_00_model_states.pt").write_bytes(b"x")
    remove_checkpoint(shard_dir)
    assert not shard_dir.exists()
    remove_checkpoint(tmp_path / "absent.ckpt")  # nothing to remove is fine
    f = tmp_path / "1-stage.ckpt"
    f.write_bytes(b"data")
    assert consolidate_sharded(f) == f and f.read_bytes() == b"data"
