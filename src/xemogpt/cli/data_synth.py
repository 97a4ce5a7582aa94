"""Generate a synthetic EmoCue dataset (drawn faces, voice-like audio, subtitles, cue-level descriptions).

Writes DIR/clips/<id>.mp4 (H.264 + AAC 16 kHz mono), DIR/manifest.jsonl and DIR/dataset.json. The same --seed gives
the same dataset whatever --workers.
"""

from __future__ import annotations

import argparse

COMMAND = ("data", "synth")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder (created if missing)")
    parser.add_argument("--n", type=int, default=1000, help="number of clips (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--size", type=int, default=112, help="frame side in pixels, even (default 112)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    import sys
    import time

    from xemogpt.data.synth import generate

    t0 = time.time()
    try:
        root = generate(
            args.out, n=args.n, seed=args.seed, workers=args.workers, size=args.size, progress=not args.no_progress
        )
    except ValueError as e:
        print(f"xemogpt data synth: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.n} clips to {root} in {time.time() - t0:.1f} s (manifest: {root / 'manifest.jsonl'})")
    return 0
