"""`make bench`: what the training framework and the composed model's batching cost, side by side.

1. One training step of the composed model through Lightning (the trainer, callbacks and logging `xemogpt train`
   uses) against a plain PyTorch loop over the same modules and batch (goal: the framework costs at most 10%).
2. Prompt splicing for a batch of 32 at once against the per-sample reference loop (goal: at least 5x).
3. Batched generation with the KV cache at batch 16 against one sample at a time (goal: at least 4x).
4. Achieved training FLOP/s of a mid-size recipe (Qwen3-0.6B-shaped LM from its shipped config, with LoRA, above the
   tiny encoders and the bridges) as a fraction of this machine's measured fp32 matmul peak.
5. Peak memory of the mid-size recipe's ``bridge_pretrain`` (frozen encoders, bridges trained on cached features):
   each bridge trained alone, as ``xemogpt train`` runs it, against the composed model holding every part (the LLM
   included) as it did before bridges trained alone. Each runs in its own process on the same generated clips; the
   peak is the process's resident set on CPU, ``torch.cuda.max_memory_allocated`` on a GPU.

Everything but part 5's few clips is generated in memory (no data, no downloads). `--quick` shrinks every part to
seconds (used by the tests); `--json PATH` also writes the numbers.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "recipes" / "xemogpt-tiny.yaml"
INSTRUCT = {"name": "instruct", "train": ["video_bridge", "audio_bridge", "video_projector", "audio_projector",
                                          "llm_head"], "losses": ["lm"], "lr": 1e-3}


def tiny_spec(quick: bool) -> dict:
    from xemogpt.recipe import load_recipe

    spec = load_recipe(TINY)["model"]
    spec["text_encoder"] = None  # the instruct stage needs no text encoder
    spec["llm_head"] = {k: v for k, v in spec["llm_head"].items() if k != "tokenizer"}
    if quick:
        spec["llm_head"]["config"] = {**spec["llm_head"]["config"], "hidden_size": 64, "num_hidden_layers": 2,
                                      "head_dim": 16, "intermediate_size": 128}
    return spec


def midsize_spec(quick: bool, lora_r: int) -> dict:
    spec = tiny_spec(quick=False)
    spec["video_encoder"] = {"name": "tiny-cnn", "dim": 256, "image_size": 64, "freeze": True}
    spec["audio_encoder"] = {"name": "logmel-conv", "dim": 256, "freeze": True}
    if quick:  # same family and wiring, small enough for a test
        llm_config: dict | str = {"hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
                                  "num_key_value_heads": 2, "head_dim": 32, "intermediate_size": 384}
    else:
        llm_config = "qwen3-0.6b"  # the shipped Qwen3-0.6B config: 28 layers, hidden 1024, 151,936-token vocabulary
    spec["llm_head"] = {"name": "causal-lm", "arch": "qwen3", "config": llm_config, "train_mode": "lora",
                        "lora": {"r": lora_r, "alpha": lora_r, "dropout": 0.0,
                                 "target_modules": ["q_proj", "k_proj", "v_proj"]},
                        "max_length": 1024}
    return spec


def build(spec: dict, tok_json: str, seed: int = 0):
    import lightning as L

    from xemogpt.models.xemogpt import XEmoGPT

    L.seed_everything(seed, verbose=False)
    model = XEmoGPT(spec, tokenizer_json=tok_json)
    model.set_stage(INSTRUCT)
    return model


# --- 1: framework overhead ----------------------------------------------------------------------------------------
def lightning_steps(model, batch, steps: int, warmup: int, workdir: Path) -> list[float]:
    """Step times of ``xemogpt train``'s trainer (CSV logging, atomic checkpoint IO, the stage callbacks)."""
    from xemogpt.training import callbacks as cb
    from xemogpt.training.run import make_trainer
    from xemogpt.training.throughput import StepTimer, repeated_loader

    timer = StepTimer()
    recipe = {"trainer": {"gradient_clip_val": 1.0, "enable_progress_bar": False, "log_every_n_steps": 10,
                          "precision": "32-true"}}
    callbacks = [cb.StageTag(0, "instruct"), cb.ExactResume(0), cb.RNGState(),
                 cb.NonFiniteGuard(lambda e: workdir / "nonfinite.ckpt"),
                 cb.GracefulStop(lambda trainer, reason: ""), timer]
    trainer = make_trainer(recipe, workdir, {"name": "instruct", "max_steps": steps + warmup}, callbacks, model)
    with cb.handle_stop_signals():
        trainer.fit(model, train_dataloaders=repeated_loader(batch, steps + warmup))
    return timer.step_times(warmup)


def plain_steps(model, batch, steps: int, warmup: int) -> list[float]:
    """The same work as a hand-written loop: forward, backward, clip, AdamW step, LR schedule, zero grads."""
    import math

    params = model.trainable_parameters()
    # What XEmoGPT.configure_optimizers builds (it needs an attached trainer): AdamW + warmup/cosine LambdaLR.
    opt = torch.optim.AdamW(params, lr=INSTRUCT["lr"], weight_decay=0.01, betas=(0.9, 0.98))
    total, warm = steps + warmup, max(1, int(0.05 * (steps + warmup)))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: (s + 1) / warm if s < warm else 0.05 + 0.95 * 0.5 * (
        1 + math.cos(math.pi * min(1.0, (s - warm) / max(1, total - warm)))))
    model.train()
    marks = []
    for _ in range(steps + warmup):
        marks.append(time.perf_counter())
        losses = model.compute_losses(batch)
        loss = sum(losses.values())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    marks.append(time.perf_counter())
    return [b - a for a, b in zip(marks, marks[1:])][warmup:]


def bench_framework(args, tok_json: str) -> dict:
    from xemogpt.training.throughput import synthetic_batch

    base = build(tiny_spec(args.quick), tok_json)
    batch = synthetic_batch(base, args.batch, num_frames=16, audio_seconds=4.0 if args.quick else 6.0)
    lit, plain = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):  # interleaved, so load changes on a shared machine hit both alike
            work = Path(tmp) / str(r)
            lit.append(statistics.median(lightning_steps(copy.deepcopy(base), batch, args.steps, 2, work)))
            plain.append(statistics.median(plain_steps(copy.deepcopy(base), batch, args.steps, 2)))
    lt, pt = min(lit), min(plain)
    return {"lightning_step_s": lt, "plain_step_s": pt, "ratio": lt / pt, "goal": 1.10, "ok": lt / pt <= 1.10,
            "batch": args.batch, "repeats_lightning_s": lit, "repeats_plain_s": plain}


# --- 2: splicing --------------------------------------------------------------------------------------------------
def bench_splice(args) -> dict:
    from xemogpt.llm.splice import splice, splice_loop

    g = torch.Generator().manual_seed(0)
    b, hidden, vocab = 32, 1024 if not args.quick else 256, 1000
    audio_marker, video_marker = vocab - 1, vocab - 2
    embed = torch.nn.Embedding(vocab, hidden)
    lengths = torch.randint(150, 260, (b,), generator=g)
    ids = torch.randint(0, vocab - 2, (b, int(lengths.max())), generator=g)
    mask = torch.arange(ids.shape[1])[None] < lengths[:, None]
    ids[:, 10], ids[:, 30] = audio_marker, video_marker  # every prompt names each marker once
    prompt_len = torch.randint(60, 90, (b,), generator=g)
    target = (torch.arange(ids.shape[1])[None] >= prompt_len[:, None]) & mask
    a_len = torch.randint(50, 151, (b,), generator=g)  # 4-12 s of audio tokens
    mods = {audio_marker: (torch.randn(b, 150, hidden, generator=g), torch.arange(150)[None] < a_len[:, None]),
            video_marker: (torch.randn(b, 16, hidden, generator=g), torch.ones(b, 16, dtype=torch.bool))}

    def timed(fn, reps: int) -> float:
        fn()
        best = float("inf")
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        return best

    with torch.no_grad():
        fast = splice(ids, mask, embed, mods, target)
        slow = splice_loop(ids, mask, embed, mods, target)
        same = torch.equal(fast.labels, slow.labels) and torch.allclose(fast.inputs_embeds, slow.inputs_embeds) \
            and torch.equal(fast.attention_mask, slow.attention_mask)
        tv = timed(lambda: splice(ids, mask, embed, mods, target), 10 if not args.quick else 3)
        tl = timed(lambda: splice_loop(ids, mask, embed, mods, target), 3 if not args.quick else 1)
    return {"batch_s": tv, "loop_s": tl, "ratio": tl / tv, "goal": 5.0, "ok": tl / tv >= 5.0 and same,
            "same_output": same, "batch": b, "hidden": hidden}


# --- 3: generation ------------------------------------------------------------------------------------------------
def take(batch: dict, i: int) -> dict:
    return {k: (v[i: i + 1] if (torch.is_tensor(v) or isinstance(v, list)) and len(v) > i else v)
            for k, v in batch.items()}


def bench_generation(args, tok_json: str) -> dict:
    from xemogpt.training.throughput import synthetic_batch

    model = build(tiny_spec(args.quick), tok_json)
    model.feature_memo = False  # both sides run the encoders
    model.eval()
    b, new = 16, 64 if not args.quick else 8
    batch = synthetic_batch(model, b, num_frames=16, audio_seconds=4.0)
    gen = {"max_new_tokens": new, "min_new_tokens": new, "num_beams": 1, "do_sample": False}
    model.generate(take(batch, 0), **gen)  # warm-up
    t0 = time.perf_counter()
    together = model.generate(batch, **gen)
    t_batch = time.perf_counter() - t0
    t0 = time.perf_counter()
    alone = [model.generate(take(batch, i), **gen)[0] for i in range(b)]
    t_seq = time.perf_counter() - t0
    agree = sum(a == c for a, c in zip(together, alone))
    return {"batch_s": t_batch, "one_by_one_s": t_seq, "ratio": t_seq / t_batch, "goal": 4.0,
            "ok": t_seq / t_batch >= 4.0, "batch": b, "new_tokens": new, "same_text": f"{agree}/{b}"}


# --- 4: FLOP/s fraction -------------------------------------------------------------------------------------------
def bench_flops(args, tok_json: str) -> dict:
    from xemogpt.training.throughput import count_train_flops, matmul_peak, synthetic_batch

    model = build(midsize_spec(args.quick, args.lora_r), tok_json)
    # The FLOPs are counted with the frozen encoders running, so every timed step must run them too (the per-sample
    # memo would skip them from the second step on and overstate the achieved FLOP/s).
    model.feature_memo = False
    n_params = sum(p.numel() for p in model.parameters())
    n_train = sum(p.numel() for p in model.trainable_parameters())
    batch = synthetic_batch(model, args.mid_batch, num_frames=16, audio_seconds=4.0,
                            text_tokens=64 if args.quick else args.mid_tokens)
    flops = count_train_flops(model, batch)

    def peak_now() -> float:
        return matmul_peak("cpu", torch.float32, sizes=(512, 1024) if args.quick else (1024, 2048),
                           seconds=0.3 if args.quick else 1.5)

    # the peak is measured before and after the timed steps and the higher one kept: on a shared VM the clock a
    # neighbour leaves us drifts, and a peak caught in a slow moment would put the fraction above 100 %
    before = peak_now()
    with tempfile.TemporaryDirectory() as tmp:
        times = lightning_steps(model, batch, args.mid_steps, 1, Path(tmp))
    step = statistics.median(times)
    peak = max(before, peak_now())
    achieved = flops / step
    return {"params": n_params, "trainable": n_train, "flops_per_step": flops, "step_s": step,
            "achieved_flops": achieved, "peak_flops": peak, "fraction": achieved / peak, "batch": args.mid_batch,
            "threads": torch.get_num_threads()}


# --- 5: bridge pre-training memory ----------------------------------------------------------------------------------
def memory_recipe(args, data: str, features: str) -> dict:
    """The mid-size recipe with one stage: the paper's bridge pre-training above frozen encoders."""
    from xemogpt.recipe import load_recipe

    recipe = load_recipe(TINY)
    spec = midsize_spec(args.quick, args.lora_r)
    spec["text_encoder"] = recipe["model"]["text_encoder"]
    spec["llm_head"]["tokenizer"] = "build"
    recipe["model"] = spec
    recipe["data"].update(root=data, features_dir=features, num_workers=0, batch_size=8, cache="none")
    recipe["data"].pop("synth", None)
    recipe["stages"] = [{"name": "bridge_pretrain", "train": ["video_bridge", "audio_bridge"],
                         "losses": ["vecb", "aecb"], "max_steps": args.memory_steps, "lr": 1e-3}]
    recipe["trainer"].update(enable_progress_bar=False, accelerator="auto", devices=1)
    recipe["trainer"].pop("check_val_every_n_epoch", None)
    recipe["trainer"]["limit_val_batches"] = 0
    return recipe


def peak_memory_mb() -> tuple[float, str]:
    """This process's peak: GPU memory allocated, else the high-water resident set of its own address space.

    Linux's ``ru_maxrss`` would carry the parent's peak over the fork (part 5's children would all report the 6 GB
    the FLOP/s part left in the parent); ``VmHWM`` belongs to the address space ``exec`` gave the child."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20, "GPU memory"
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024, "resident memory"  # kB
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / (2**20 if sys.platform == "darwin" else 1024), "resident memory"


def memory_child(args) -> int:
    """One side of part 5, in a fresh process so that its peak is its own."""
    import logging
    import warnings

    import lightning as L

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        recipe = memory_recipe(args, args.memory_data, str(Path(tmp) / "features"))
        if args.memory_child == "standalone":  # what `xemogpt train` does: each bridge alone, no LLM built
            from xemogpt.training.runner import RecipeRunner

            runner = RecipeRunner(recipe, Path(tmp) / "run")
            runner.run(evaluate=False)
            built = list(runner.model.hparams["parts"])
        else:  # every part held by the composed model, bridges trained through it on the same cached features
            from xemogpt.models.xemogpt import XEmoGPT
            from xemogpt.training.run import build_tokenizer, data_module

            root = Path(args.memory_data)
            tok = build_tokenizer(root, recipe["model"], recipe["run"]["tokenizer_vocab_size"], None)
            L.seed_everything(0, verbose=False)
            model = XEmoGPT(recipe["model"], tokenizer_json=tok, seed=0)
            stage = recipe["stages"][0]
            model.set_stage(stage)
            dm = data_module(recipe, model, root)
            dm.setup()
            dm.use_features(model.video_encoder, model.audio_encoder, trainer_options={"accelerator": "auto",
                            "devices": 1}, progress=False)
            trainer = L.Trainer(accelerator="auto", devices=1, max_steps=2 * args.memory_steps, logger=False,
                                enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                                limit_val_batches=0, num_sanity_val_steps=0)
            trainer.fit(model, dm)
            built = list(model.hparams["parts"])
    mb, measure = peak_memory_mb()
    Path(args.json).write_text(json.dumps({"peak_mb": mb, "measure": measure, "parts": built}), encoding="utf-8")
    return 0


def bench_memory(args) -> dict:
    import subprocess

    from xemogpt.data.synth import generate

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "clips"
        print(f"memory: generating {args.memory_clips} clips ...", flush=True)
        generate(data, n=args.memory_clips, seed=0, workers=1, size=64, progress=False)
        for mode in ("standalone", "composed"):
            res = Path(tmp) / f"{mode}.json"
            cmd = [sys.executable, str(Path(__file__).resolve()), "--memory-child", mode, "--memory-data", str(data),
                   "--json", str(res), "--threads", str(args.threads), "--lora-r", str(args.lora_r)]
            if args.quick:
                cmd.append("--quick")
            t = time.time()
            subprocess.run(cmd, check=True)
            out[mode] = json.loads(res.read_text(encoding="utf-8"))
            print(f"memory: {mode} bridge_pretrain built {', '.join(out[mode]['parts'])}; peak "
                  f"{out[mode]['peak_mb']:.0f} MB ({time.time() - t:.0f} s)", flush=True)
    s, c = out["standalone"]["peak_mb"], out["composed"]["peak_mb"]
    return {"standalone_mb": s, "composed_mb": c, "ratio": c / s, "measure": out["standalone"]["measure"],
            "standalone_parts": out["standalone"]["parts"], "composed_parts": out["composed"]["parts"],
            "ok": c > s and "llm_head" not in out["standalone"]["parts"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="seconds-long version of every part (for tests)")
    p.add_argument("--steps", type=int, default=12, help="timed training steps per repeat (part 1)")
    p.add_argument("--repeats", type=int, default=4, help="interleaved Lightning/plain repeats (part 1)")
    p.add_argument("--batch", type=int, default=8, help="batch size of part 1")
    p.add_argument("--mid-batch", type=int, default=1, help="batch size of the mid-size recipe (part 4)")
    p.add_argument("--mid-tokens", type=int, default=96, help="text tokens per sample of the mid-size recipe")
    p.add_argument("--mid-steps", type=int, default=2, help="timed steps of the mid-size recipe")
    p.add_argument("--lora-r", type=int, default=64, help="LoRA rank of the mid-size LM")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: the ratios compare code paths, and on a shared or small VM a "
                        "second thread waiting at every op's barrier swamps everything; a dedicated machine can "
                        "pass its core count)")
    p.add_argument("--flops-threads", type=int, default=None,
                   help="torch threads for the FLOP/s part, its matmul peak included (default: --threads)")
    p.add_argument("--only", nargs="*", choices=["framework", "splice", "generation", "flops", "memory"],
                   default=None)
    p.add_argument("--memory-clips", type=int, default=32, help="generated clips for the memory part (part 5)")
    p.add_argument("--memory-steps", type=int, default=6, help="training steps per bridge in the memory part")
    p.add_argument("--memory-child", choices=["standalone", "composed"], default=None, help=argparse.SUPPRESS)
    p.add_argument("--memory-data", default=None, help=argparse.SUPPRESS)
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument("--fresh-memory", action="store_true",
                   help="leave glibc returning large freed blocks to the OS (page faults on every large tensor)")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.repeats, args.batch, args.mid_steps = 3, 1, 4, 1
        args.memory_clips, args.memory_steps = 8, 1
    if args.memory_child:
        return memory_child(args)
    args.flops_threads = args.flops_threads or args.threads
    torch.set_num_threads(args.threads)
    import logging

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    import warnings

    warnings.filterwarnings("ignore")
    from xemogpt.training.throughput import fmt_flops, keep_freed_memory, synthetic_tokenizer_json

    kept = False if args.fresh_memory else keep_freed_memory()
    parts = args.only or ["framework", "splice", "generation", "flops", "memory"]
    print(f"bench_train: torch {torch.__version__}, {args.threads} thread(s) for the ratios, {args.flops_threads} for "
          f"FLOP/s, {'quick' if args.quick else 'full'} mode; allocator: "
          f"{'freed blocks stay in the heap (as in a long training run)' if kept else 'glibc defaults'}", flush=True)
    tok_json = synthetic_tokenizer_json(400 if args.quick else 1000)
    res: dict = {}
    t0 = time.time()
    if "framework" in parts:
        res["framework"] = bench_framework(args, tok_json)
    if "splice" in parts:
        res["splice"] = bench_splice(args)
    if "generation" in parts:
        res["generation"] = bench_generation(args, tok_json)
    if "flops" in parts:
        torch.set_num_threads(args.flops_threads)
        res["flops"] = bench_flops(args, tok_json)
    if "memory" in parts:
        res["memory"] = bench_memory(args)

    rows = []
    if "framework" in res:
        r = res["framework"]
        rows.append((f"training step, batch {r['batch']} (Lightning / plain loop)",
                     f"{r['lightning_step_s'] * 1e3:.1f} ms", f"{r['plain_step_s'] * 1e3:.1f} ms",
                     f"{r['ratio']:.3f}x", "<= 1.10x", r["ok"]))
    if "splice" in res:
        r = res["splice"]
        rows.append((f"prompt splicing, batch {r['batch']} (loop / batched)", f"{r['batch_s'] * 1e3:.2f} ms",
                     f"{r['loop_s'] * 1e3:.1f} ms", f"{r['ratio']:.1f}x", ">= 5x", r["ok"]))
    if "generation" in res:
        r = res["generation"]
        rows.append((f"generation, batch {r['batch']}, {r['new_tokens']} tokens (one-by-one / batched)",
                     f"{r['batch_s']:.2f} s", f"{r['one_by_one_s']:.2f} s", f"{r['ratio']:.1f}x", ">= 4x", r["ok"]))
    if "memory" in res:
        r = res["memory"]
        rows.append((f"bridge_pretrain peak {r['measure']}, mid-size recipe (composed / standalone)",
                     f"{r['standalone_mb']:.0f} MB", f"{r['composed_mb']:.0f} MB", f"{r['ratio']:.1f}x", "> 1x",
                     r["ok"]))
    w = max([len(r[0]) for r in rows] + [10])
    if rows:
        print(f"\n{'benchmark':<{w}}  {'this':>10}  {'baseline':>10}  {'ratio':>8}  {'goal':>8}  met")
        for name, a, b, ratio, goal, ok in rows:
            print(f"{name:<{w}}  {a:>10}  {b:>10}  {ratio:>8}  {goal:>8}  {'yes' if ok else 'NO'}")
    if "flops" in res:
        r = res["flops"]
        print(f"\nmid-size recipe ({r['params'] / 1e6:.0f}M parameters, {r['trainable'] / 1e6:.1f}M trainable, "
              f"batch {r['batch']}): {fmt_flops(r['flops_per_step'])} per training step in {r['step_s']:.2f} s = "
              f"{fmt_flops(r['achieved_flops'])}/s achieved; measured fp32 matmul peak {fmt_flops(r['peak_flops'])}/s "
              f"({r['threads']} thread(s)) -> {r['fraction']:.1%} of peak")
    print(f"\n(total {time.time() - t0:.0f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2), encoding="utf-8")
    return 0 if all(v.get("ok", True) for v in res.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
