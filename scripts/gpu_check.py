"""`make gpu-check`: the published XEmoGPT at full size on one GPU -- bf16 training steps, samples/s, memory, MFU.

Builds the model of ``recipes/xemogpt-paper.yaml`` from its shipped architecture configs with random weights (no
checkpoint folders needed): the CLIP ViT-L/14 image tower, HuBERT-large (chinese-hubert-large shape), VECB/AECB,
linear projectors and a Qwen3-4B-shaped LM with LoRA r=512 on q/k/v. Then it runs the recipe's ``instruct`` stage
through the same Lightning trainer ``xemogpt train`` builds (bf16-mixed, gradient clipping, activation
checkpointing as the recipe sets it) on synthetic batches of 16 frames + 12 s of audio + 512 text tokens per
sample (the frozen encoders run in every step), and prints samples per second, peak GPU memory and model FLOP
utilisation (FLOPs counted op by op without the recomputation of activation checkpointing, against the GPU's dense
bf16 peak and against a measured bf16 matmul). Takes 1-3 minutes on an H100.

``--smoke`` runs the same code path on the CPU with the same architecture families scaled down (tiny widths, 2
layers, 32 px frames, 2 s of audio, 64 text tokens); the tests run it.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "recipes" / "xemogpt-paper.yaml"
# Dense bf16 tensor-core peaks (no sparsity), from the vendors' data sheets.
BF16_PEAK = {"H100 SXM": 989.4e12, "H100 NVL": 835.5e12, "H100 PCIe": 756.5e12, "H100": 989.4e12, "H200": 989.4e12,
             "GH200": 989.4e12, "A100": 312e12, "L40S": 362.1e12, "A10G": 70e12, "L4": 121e12}
SMOKE = {
    "video_encoder": {"config": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                                 "num_attention_heads": 2, "image_size": 32, "patch_size": 16},
                      "preprocess": {"resize": 32, "crop": [32, 32]}, "dtype": None},
    "audio_encoder": {"config": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                                 "num_attention_heads": 2, "conv_dim": [32] * 7, "num_conv_pos_embeddings": 16,
                                 "num_conv_pos_embedding_groups": 4},
                      "dtype": None},
    "llm_head": {"config": {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                            "num_key_value_heads": 2, "head_dim": 16, "intermediate_size": 128},
                 "arch": "qwen3", "lora": {"r": 8, "alpha": 8, "dropout": 0.05,
                                           "target_modules": ["q_proj", "k_proj", "v_proj"]},
                 "dtype": None},
}


def model_spec(recipe: dict, smoke: bool) -> dict:
    """The paper recipe's model built from configs only: no weight folders, no text encoder (instruct stage)."""
    spec = copy.deepcopy(recipe["model"])
    for key in ("video_encoder", "audio_encoder", "llm_head"):
        spec[key] = {**spec[key], "path": None}
        spec[key].pop("tokenizer", None)
        if smoke:
            spec[key].update(copy.deepcopy(SMOKE[key]))
    spec["text_encoder"] = None
    return spec


def gpu_peak(name: str) -> float | None:
    for key in sorted(BF16_PEAK, key=len, reverse=True):
        if key.lower() in name.lower():
            return BF16_PEAK[key]
    return None


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in batch.items()}


def model_flops(model, batch: dict) -> tuple[int, int]:
    """(model FLOPs, hardware FLOPs) of one training step on ``batch``: without and with the recomputation of
    activation checkpointing (counted with it switched off, then on)."""
    from xemogpt.training.strategies import hf_checkpointing
    from xemogpt.training.throughput import count_train_flops

    hf = [m for m in model.modules() if hf_checkpointing(m)]
    hardware = count_train_flops(model, batch)
    for m in hf:  # transformers 5 calls it activation checkpointing, 4.x gradient checkpointing
        (m.activation_checkpointing_disable if hasattr(m, "activation_checkpointing_disable")
         else m.gradient_checkpointing_disable)()
    try:
        flops = count_train_flops(model, batch)
    finally:
        for m in hf:
            if hasattr(m, "activation_checkpointing_enable"):
                m.activation_checkpointing_enable({"use_reentrant": False})
            else:
                m.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return flops, hardware


def run(args) -> dict:
    import lightning as L

    from xemogpt.llm.prompt import DEFAULT_INSTRUCTION
    from xemogpt.models.xemogpt import XEmoGPT
    from xemogpt.recipe import load_recipe
    from xemogpt.training.run import make_trainer
    from xemogpt.training.throughput import (
        StepTimer,
        fmt_flops,
        matmul_peak,
        repeated_loader,
        synthetic_batch,
        synthetic_tokenizer_json,
    )

    cuda = torch.cuda.is_available() and not args.smoke
    if not cuda and not args.smoke:
        raise SystemExit("gpu_check: no CUDA GPU here; `python scripts/gpu_check.py --smoke` runs the scaled-down "
                         "CPU version of the same check")
    device = torch.device("cuda" if cuda else "cpu")
    recipe = load_recipe(args.recipe)
    stage = next(s for s in recipe["stages"] if s["name"] == "instruct")
    spec = model_spec(recipe, args.smoke)
    t0 = time.time()
    L.seed_everything(0, verbose=False)
    tok_json = synthetic_tokenizer_json(1000)
    instruction = (recipe.get("run") or {}).get("instruction") or DEFAULT_INSTRUCTION
    with torch.device(device):  # weights are created where they train (a 4B model initialises in seconds)
        model = XEmoGPT(spec, tokenizer_json=tok_json, instruction=instruction)
    model.set_stage(stage)
    # Every step runs the frozen CLIP and HuBERT towers on its 16 frames + 12 s of audio (under no_grad, in eval
    # mode): the per-sample memo would skip them after the first step of this repeated batch, and the FLOPs counted
    # below would then leave them out. (`xemogpt train` skips them through the feature cache.)
    model.feature_memo = False
    build_s = time.time() - t0
    n_params = sum(p.numel() for p in model.parameters())
    n_train = sum(p.numel() for p in model.trainable_parameters())
    frames, seconds, tokens = (16, 2.0, 64) if args.smoke else (args.frames, args.audio_seconds, args.text_tokens)
    batch = synthetic_batch(model, args.batch, num_frames=frames, audio_seconds=seconds, text_tokens=tokens)
    one = synthetic_batch(model, 1, num_frames=frames, audio_seconds=seconds, text_tokens=tokens)
    with torch.no_grad():
        seq = model.spliced(to_device(one, device), with_targets=True).inputs_embeds.shape[1]

    precision = args.precision or ("bf16-mixed" if cuda else "32-true")
    trainer_cfg = {k: v for k, v in (recipe.get("trainer") or {}).items() if k != "accumulate_grad_batches"}
    trainer_cfg.update({"precision": precision, "accelerator": "gpu" if cuda else "cpu", "devices": 1,
                        "enable_progress_bar": False, "log_every_n_steps": max(1, args.steps)})
    timer = StepTimer()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory() as tmp:
        trainer = make_trainer({"trainer": trainer_cfg}, Path(tmp), {"name": "instruct",
                                                                      "max_steps": args.warmup + args.steps},
                               [timer], model)
        trainer.fit(model, train_dataloaders=repeated_loader(batch, args.warmup + args.steps))
    times = timer.step_times(args.warmup)
    step = statistics.median(times)
    if cuda:
        peak_mem = torch.cuda.max_memory_allocated()
        reserved = torch.cuda.max_memory_reserved()
    else:
        peak_mem = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
        reserved = peak_mem

    dtype = torch.bfloat16 if precision.startswith("bf16") else torch.float32
    with torch.autocast(device.type, dtype=dtype, enabled=dtype == torch.bfloat16):
        flops_1, hw_1 = model_flops(model, to_device(one, device))
    flops, hw = flops_1 * args.batch, hw_1 * args.batch  # every op of these models is linear in the batch
    measured = matmul_peak(device, dtype, sizes=(4096, 8192) if cuda else (512, 1024),
                           seconds=1.0 if cuda else 0.3)
    name = torch.cuda.get_device_name(0) if cuda else "cpu"
    spec_peak = gpu_peak(name) if cuda else None
    peak = spec_peak or measured
    res = {
        "mode": "smoke (cpu)" if args.smoke else "full", "device": name, "precision": precision,
        "params": n_params, "trainable": n_train, "batch": args.batch, "frames": frames, "audio_seconds": seconds,
        "text_tokens": tokens, "sequence_length": seq, "build_s": build_s, "step_s": step, "step_times_s": times,
        "samples_per_s": args.batch / step, "tokens_per_s": args.batch * seq / step,
        "peak_memory_bytes": peak_mem, "peak_reserved_bytes": reserved,
        "model_flops_per_step": flops, "hardware_flops_per_step": hw, "achieved_flops": flops / step,
        "peak_flops": peak, "peak_source": "data sheet (dense bf16)" if spec_peak else "measured matmul",
        "measured_matmul_flops": measured, "mfu": flops / step / peak, "hfu": hw / step / peak,
        "mfu_vs_measured": flops / step / measured,
    }
    print(f"\ngpu_check ({res['mode']}) on {name}, {precision}")
    print(f"  model: {n_params / 1e9:.3f} B parameters, {n_train / 1e6:.1f} M trainable (instruct stage), built in "
          f"{build_s:.1f} s")
    print(f"  batch: {args.batch} x ({frames} frames + {seconds:g} s audio + {tokens} text tokens) = {seq} "
          f"positions per sample")
    print(f"  step: {step * 1e3:.1f} ms median over {len(times)} steps -> {res['samples_per_s']:.2f} samples/s, "
          f"{res['tokens_per_s']:.0f} positions/s")
    print(f"  peak memory: {peak_mem / 2 ** 30:.2f} GiB allocated ({reserved / 2 ** 30:.2f} GiB reserved)"
          if cuda else f"  peak memory: {peak_mem / 2 ** 30:.2f} GiB resident (process)")
    print(f"  FLOPs per step: {fmt_flops(flops)} model, {fmt_flops(hw)} with recomputation")
    print(f"  MFU: {res['mfu']:.1%} of {fmt_flops(peak)}/s ({res['peak_source']}); HFU {res['hfu']:.1%}; "
          f"{res['mfu_vs_measured']:.1%} of the measured matmul peak {fmt_flops(measured)}/s")
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="scaled-down CPU run of the same path (tests)")
    p.add_argument("--recipe", default=str(PAPER), help="recipe whose model and instruct stage are measured")
    p.add_argument("--batch", type=int, default=None, help="samples per step (default 4; smoke 2)")
    p.add_argument("--steps", type=int, default=None, help="timed steps (default 10; smoke 2)")
    p.add_argument("--warmup", type=int, default=None, help="untimed first steps (default 3; smoke 1)")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--audio-seconds", type=float, default=12.0)
    p.add_argument("--text-tokens", type=int, default=512)
    p.add_argument("--precision", default=None, help="Lightning precision (default bf16-mixed on GPU, 32-true on CPU)")
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args(argv)
    args.batch = args.batch or (2 if args.smoke else 4)
    args.steps = args.steps or (2 if args.smoke else 10)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.smoke else 3)
    import logging
    import warnings

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    res = run(args)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
