"""Import the released XEmoGPT weights as a run folder (explain, eval, finetune and export take it).

Example:
  xemogpt import official --checkpoint xemogpt.ckpt --clip checkpoints/clip-vit-large-patch14 \
      --hubert checkpoints/chinese-hubert-large --labse checkpoints/LaBSE --llm checkpoints/Qwen3-4B \
      --out runs/xemogpt-official
  xemogpt explain clip.mp4 --audio clip.wav --subtitle "..." --checkpoint runs/xemogpt-official

Each folder may also be a Hugging Face hub id (openai/clip-vit-large-patch14), resolved through the local hub cache
(downloaded only when HF_HUB_OFFLINE is unset).
"""

from __future__ import annotations

import argparse

COMMAND = ("import", "official")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("--checkpoint", required=True, help="the released state dict (xemogpt.ckpt; full or trainable-only)")
    p.add_argument("--clip", required=True, help="clip-vit-large-patch14 folder or hub id")
    p.add_argument("--hubert", required=True, help="chinese-hubert-large folder or hub id")
    p.add_argument("--labse", required=True, help="LaBSE sentence-transformers folder or hub id")
    p.add_argument("--llm", required=True, help="Qwen3-4B folder or hub id")
    p.add_argument("--out", required=True, help="run folder to write")
    p.add_argument("--lora-alpha", type=float, default=512.0, help="LoRA alpha (not stored in the file; default 512)")


def run(args: argparse.Namespace) -> int:
    from xemogpt.checkpointing.official import import_official

    report = import_official(args.checkpoint, args.clip, args.hubert, args.labse, args.llm, args.out,
                             lora_alpha=args.lora_alpha)
    print(report.summary())
    return 0
