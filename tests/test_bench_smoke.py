"""Smoke runs of `make bench` (quick mode) and `make gpu-check` (its CPU `--smoke` mode), in this process."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load_script(rel: str):
    spec = importlib.util.spec_from_file_location(Path(rel).stem, ROOT / rel)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(autouse=True)
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_gpu_check_smoke_runs_the_paper_model_path_on_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    assert load_script("scripts/gpu_check.py").main(["--smoke", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["mode"] == "smoke (cpu)" and r["batch"] == 2 and len(r["step_times_s"]) == 2
    assert 0 < r["trainable"] < r["params"]  # encoders and the LM base stay frozen, LoRA and projectors train
    assert r["samples_per_s"] > 0 and r["peak_memory_bytes"] > 0
    # FLOPs: the recomputation of activation checkpointing (the recipe turns it on) is counted only as hardware FLOPs
    assert 0 < r["model_flops_per_step"] < r["hardware_flops_per_step"]
    assert 0 < r["mfu"] < 1 and r["peak_source"] == "measured matmul"
    assert r["sequence_length"] > r["text_tokens"]  # video and audio tokens are spliced in


def test_bench_quick_prints_every_ratio_and_the_flops_fraction(tmp_path, capsys):
    out = tmp_path / "bench.json"
    load_script("benchmarks/bench_train.py").main(["--quick", "--json", str(out)])
    r = json.loads(out.read_text())
    text = capsys.readouterr().out
    for row in ("Lightning / plain loop", "prompt splicing, batch 32", "generation, batch 16", "of peak",
                "bridge_pretrain peak"):
        assert row in text
    assert r["splice"]["same_output"]  # the batched splice gives exactly what the per-sample loop gives
    assert r["framework"]["lightning_step_s"] > 0 and r["framework"]["plain_step_s"] > 0
    assert r["generation"]["ratio"] > 1 and r["splice"]["ratio"] > 1
    assert 0 < r["flops"]["fraction"] < 1 and r["flops"]["flops_per_step"] > 0
    # bridge pre-training as `xemogpt train` runs it builds no projector or LLM; the composed side holds them all
    m = r["memory"]
    assert "llm_head" not in m["standalone_parts"] and "video_projector" not in m["standalone_parts"]
    assert {"llm_head", "video_projector", "audio_projector"} <= set(m["composed_parts"])
    assert m["standalone_mb"] > 100 and m["composed_mb"] > 100
