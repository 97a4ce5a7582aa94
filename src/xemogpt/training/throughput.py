"""Measuring training speed: synthetic batches, a step timer, FLOP counts and the machine's matmul peak.

Used by ``benchmarks/bench_train.py`` (CPU ratios, FLOP/s fraction) and ``scripts/gpu_check.py`` (full-size model
on one GPU). The batches have the shape the DataModule's collator produces, with the texts of generated EmoCue
annotations, so every component runs exactly as in training.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import lightning as L
import torch


# --- data ---------------------------------------------------------------------------------------------------------
def synthetic_texts(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` (subtitle, description) pairs from generated EmoCue annotations (no media is rendered)."""
    from xemogpt.data.synth.annotate import draw_annotation

    out = []
    for i in range(n):
        s = draw_annotation(seed, i)
        out.append((s.subtitle, s.description))
    return out


def synthetic_tokenizer_json(vocab_size: int = 1000, n: int = 200, seed: int = 0) -> str:
    """A byte-level BPE tokenizer trained on generated annotations, serialised (what ``tokenizer: build`` makes)."""
    from xemogpt.llm.prompt import DEFAULT_INSTRUCTION, build_prompt
    from xemogpt.llm.tokenizer import tokenizer_to_json, train_tokenizer

    pairs = synthetic_texts(n, seed)
    texts = [d for _, d in pairs] + [build_prompt(s, DEFAULT_INSTRUCTION, "human-assistant") for s, _ in pairs]
    return tokenizer_to_json(train_tokenizer(texts, vocab_size=vocab_size))


def _description_of_length(model, subtitle: str, tokens: int, pool: list[str]) -> str:
    """A description whose prompt + description + EOS is about ``tokens`` tokens long."""
    tok = model.llm_head.tokenizer
    prompt = len(model._tokens(model.prompts([subtitle])[0]))
    want = max(1, tokens - prompt - 1)
    ids: list[int] = []
    for text in pool:
        ids += tok(" " + text, add_special_tokens=False)["input_ids"]
        if len(ids) >= want:
            break
    while len(ids) < want:  # short pools repeat
        ids += ids[: want - len(ids)]
    return tok.decode(ids[:want]).strip()


def synthetic_batch(model, batch_size: int, num_frames: int = 16, frame_size: int | None = None,
                    audio_seconds: float = 12.0, text_tokens: int | None = None, sample_rate: int = 16000,
                    seed: int = 0) -> dict[str, Any]:
    """A collated batch for ``model``: frames (B, T, 3, S, S) uint8, audio (B, samples) float, texts.

    ``frame_size`` defaults to the video encoder's preprocessing size; ``text_tokens`` (prompt + target) pads or
    cuts the descriptions to that length (None keeps the generated descriptions).
    """
    g = torch.Generator().manual_seed(seed)
    if frame_size is None:
        frame_size = int(getattr(model.video_encoder, "preprocess_config", lambda: {})().get("image_size", 64))
    n_audio = int(audio_seconds * sample_rate)
    pairs = synthetic_texts(batch_size + 8, seed)
    subtitles = [s for s, _ in pairs[:batch_size]]
    if text_tokens is None:
        descriptions = [d for _, d in pairs[:batch_size]]
    else:
        pool = [d for _, d in pairs]
        descriptions = [_description_of_length(model, s, text_tokens, pool[i:] + pool[:i])
                        for i, s in enumerate(subtitles)]
    t = torch.arange(n_audio, dtype=torch.float32) / sample_rate
    pitch = 120 + 80 * torch.rand(batch_size, 1, generator=g)
    audio = 0.3 * torch.sin(2 * torch.pi * pitch * t) + 0.01 * torch.randn(batch_size, n_audio, generator=g)
    return {
        "ids": [f"bench{i:05d}" for i in range(batch_size)],
        "frames": torch.randint(0, 256, (batch_size, num_frames, 3, frame_size, frame_size), dtype=torch.uint8,
                                generator=g),
        "frame_mask": torch.ones(batch_size, num_frames, dtype=torch.bool),
        "audio": audio,
        "audio_mask": torch.ones(batch_size, n_audio, dtype=torch.bool),
        "subtitle": subtitles,
        "description": descriptions,
        "visual_text": ["the corners of the mouth turn up"] * batch_size,
        "auditory_text": ["the voice is high and lively"] * batch_size,
        "emotion": ["happy"] * batch_size,
        "samples": [],
        "skipped": [],
    }


class RepeatedBatch(torch.utils.data.Dataset):
    """The same batch ``n`` times (use with ``DataLoader(batch_size=None)``): the loader costs nothing."""

    def __init__(self, batch: dict[str, Any], n: int) -> None:
        self.batch, self.n = batch, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.batch


def repeated_loader(batch: dict[str, Any], n: int) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(RepeatedBatch(batch, n), batch_size=None, collate_fn=lambda b: b)


# --- environment --------------------------------------------------------------------------------------------------
def keep_freed_memory(limit_bytes: int = 1 << 30) -> bool:
    """Make glibc keep freed blocks up to ``limit_bytes`` in the heap instead of returning them to the OS.

    By default glibc maps every block above 32 MB fresh and unmaps it on free, so a short benchmark pays page faults
    on each large tensor (a 56 MB splice output costs about 40 ms of faults on a small VM) that a long-running
    training process, whose heap has grown, does not. Returns False where it does not apply (not glibc).
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_mmap_threshold, limit_bytes)) and bool(libc.mallopt(m_trim_threshold, limit_bytes))
    except (OSError, AttributeError):
        return False


# --- timing -------------------------------------------------------------------------------------------------------
def _sync(device: torch.device | str | None) -> None:
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize()


class StepTimer(L.Callback):
    """Wall time from one training batch start to the next (everything the framework does included)."""

    def __init__(self) -> None:
        self.marks: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        _sync(pl_module.device)
        self.marks.append(time.perf_counter())

    def on_train_end(self, trainer, pl_module) -> None:
        _sync(pl_module.device)
        self.marks.append(time.perf_counter())

    def step_times(self, warmup: int = 1) -> list[float]:
        d = [b - a for a, b in zip(self.marks, self.marks[1:])]
        return d[warmup:]


def summarise(times: list[float]) -> dict[str, float]:
    return {"median_s": statistics.median(times), "min_s": min(times), "n": len(times)}


# --- FLOPs --------------------------------------------------------------------------------------------------------
def count_train_flops(model, batch: dict[str, Any]) -> int:
    """FLOPs of one training step (forward + backward) of ``model`` on ``batch``, counted op by op by
    ``torch.utils.flop_counter`` (matmuls, convolutions, attention). Frozen parts cost their forward only; layers
    below trainable ones add their input gradients; recomputation by activation checkpointing is counted."""
    from torch.utils.flop_counter import FlopCounterMode

    model.train()
    counter = FlopCounterMode(display=False)
    with counter:
        losses = model.compute_losses(batch)
        total = sum(losses.values())
        total.backward()
    for p in model.parameters():
        p.grad = None
    return int(counter.get_total_flops())


def matmul_peak(device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, sizes=(1024, 2048),
                seconds: float = 1.0) -> float:
    """Measured dense matmul FLOP/s on ``device`` (best over ``sizes``, each run for about ``seconds``)."""
    best = 0.0
    for n in sizes:
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        torch.mm(a, b)
        _sync(device)
        reps, t0 = 0, time.perf_counter()
        while True:
            torch.mm(a, b)
            reps += 1
            if reps % 4 == 0:
                _sync(device)
                if time.perf_counter() - t0 > seconds:
                    break
        dt = time.perf_counter() - t0
        best = max(best, 2.0 * n ** 3 * reps / dt)
    return best


def fmt_flops(x: float) -> str:
    for unit, scale in (("PFLOP", 1e15), ("TFLOP", 1e12), ("GFLOP", 1e9), ("MFLOP", 1e6)):
        if x >= scale:
            return f"{x / scale:.2f} {unit}"
    return f"{x:.0f} FLOP"
