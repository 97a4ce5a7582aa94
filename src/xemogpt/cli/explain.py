"""Explain one clip: the emotion, the cues by modality, the reasoning, and what the model attended to.

Works on any video (with or without sound, any size or frame rate, even one frame) or audio file.

Examples:
  xemogpt explain clip.mp4
  xemogpt explain clip.mp4 --subtitle "I can't believe you did that." --checkpoint runs/xemogpt-tiny
  xemogpt explain silent.mp4 --audio voice.wav --html explain.html
  xemogpt explain voice.wav --json
"""

from __future__ import annotations

import argparse

COMMAND = "explain"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("clip", help="video or audio file")
    p.add_argument("--audio", default=None, help="a separate audio file (replaces the clip's own track)")
    p.add_argument("--subtitle", default="", help="what is said in the clip (default: nothing)")
    p.add_argument("--checkpoint", default=None,
                   help="run folder, export folder or .ckpt (default: runs/xemogpt-tiny)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--html", default=None, metavar="OUT.html", help="also write a self-contained HTML page")
    p.add_argument("--extractor", default="offline", help="cue extractor (default: offline)")
    p.add_argument("--max-new-tokens", type=int, default=None)
    p.add_argument("--num-beams", type=int, default=None)
    p.add_argument("--greedy", action="store_true", help="one beam, no sampling (reproducible)")
    p.add_argument("--save-tensors", default=None, metavar="OUT.safetensors",
                   help="write the pipeline's tensors (frame indices, pixel values, waveform, bridge outputs, LLM "
                        "input, first logits, generated ids) for comparison with other implementations")


def run(args: argparse.Namespace) -> int:
    import json
    import logging
    import sys
    from pathlib import Path

    from xemogpt.data.decode import DecodeError
    from xemogpt.training.checkpoints import CheckpointError
    from xemogpt.workflows.explain import explain_clip, format_text

    logging.getLogger("lightning").setLevel(logging.ERROR)
    for f in [args.clip] + ([args.audio] if args.audio else []):
        if not Path(f).exists():
            print(f"xemogpt explain: {f} does not exist", file=sys.stderr)
            return 2
    try:
        ex = explain_clip(args.clip, args.audio, args.subtitle, args.checkpoint, extractor=args.extractor,
                          save_tensors=args.save_tensors, max_new_tokens=args.max_new_tokens,
                          num_beams=args.num_beams, greedy=args.greedy or None)
    except (DecodeError, CheckpointError, FileNotFoundError) as e:
        print(f"xemogpt explain: {e}", file=sys.stderr)
        return 2
    if args.html:
        from xemogpt.workflows.html import write_html

        write_html(ex, args.html)
    if args.json:
        out = ex.to_json()
        if args.html:
            out["html"] = str(args.html)
        print(json.dumps(out, indent=1, ensure_ascii=False))
    else:
        print(format_text(ex))
        if args.html:
            print(f"\nwrote {args.html}")
    return 0
