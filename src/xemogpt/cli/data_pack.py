"""Pack an EmoCue dataset folder into litdata shards (local folder or object-storage URI) for streaming.

Writes OUT/pack.json, OUT/manifest.jsonl, OUT/pack_log.txt and OUT/{train,val,test}/ (litdata chunks). --mode bytes
stores the media files (decoded in the loader, any preprocessing); --mode decoded stores frames and audio for one
preprocessing (match the recipe: --frame-size is the video encoder's image size). Bad samples are skipped and counted;
--strict stops at the first one. Train from a pack with `data.root: OUT`.

Examples:
  xemogpt data pack --root data/emocue-synth-1000 --out data/emocue-packed
  xemogpt data pack --root data/emocue-synth-1000 --out s3://bucket/emocue --mode decoded --frame-size 64 --workers 8
"""

from __future__ import annotations

import argparse

COMMAND = ("data", "pack")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("--root", required=True, help="dataset folder holding manifest.jsonl")
    p.add_argument("--out", required=True, help="output folder or URI (s3://..., gs://...)")
    p.add_argument("--mode", choices=("bytes", "decoded"), default="bytes",
                   help="store media bytes (default) or decoded tensors")
    p.add_argument("--num-frames", type=int, default=16, help="decoded mode: frames per clip (default 16)")
    p.add_argument("--frame-size", type=int, default=64, help="decoded mode: frame side in pixels (default 64)")
    p.add_argument("--crop", action="store_true", help="decoded mode: short side to --frame-size + centre crop")
    p.add_argument("--sample-rate", type=int, default=16000, help="decoded mode: audio rate (default 16000)")
    p.add_argument("--max-seconds", type=float, default=12.0, help="decoded mode: audio cut (default 12)")
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--chunk-bytes", default="64MB", help="target shard size (default 64MB)")
    p.add_argument("--strict", action="store_true", help="stop at the first bad sample instead of skipping it")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    import logging
    import sys

    from xemogpt.data.problems import BadSampleError
    from xemogpt.data.streaming import pack_dataset

    logging.basicConfig(level=logging.ERROR, format="%(message)s")  # the summary says what was skipped
    try:
        report = pack_dataset(args.root, args.out, mode=args.mode, num_frames=args.num_frames,
                              frame_size=args.frame_size, crop=args.crop, sample_rate=args.sample_rate,
                              max_seconds=args.max_seconds, workers=args.workers, chunk_bytes=args.chunk_bytes,
                              strict=args.strict, progress=not args.no_progress)
    except BadSampleError as e:
        print(f"xemogpt data pack: {e}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        print(f"xemogpt data pack: {e}", file=sys.stderr)
        return 2
    print(report.summary())
    if report.skips.items or report.skips.handled:
        print(f"per-sample log: {args.out.rstrip('/')}/pack_log.txt")
    return 0
