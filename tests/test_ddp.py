"""DDP through Lightning's own strategy: the tiny recipe on 2 CPU processes (gloo), launched the way users launch it
(`xemogpt train ... trainer.strategy=ddp trainer.devices=2`; Lightning re-invokes the command for rank 1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

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
