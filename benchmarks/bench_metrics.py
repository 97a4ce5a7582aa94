"""EmoCue-360 speed: our batched implementation beside the straightforward per-sample one.

Run with ``make bench-metrics`` (``.venv/bin/python benchmarks/bench_metrics.py``). Both implementations score the
same 300+ samples with the bundled all-MiniLM-L6-v2 on the CPU; the per-sample one encodes each sample's
reference and prediction lists in separate calls, as the published ``compute_prf.py`` does. Printed: samples per
second of each, the speed ratio, and the largest absolute difference between their P/R/F1 numbers.

The cue sets mimic what the project scores: reference cues are phrasings of canonical cues (as the synthetic
EmoCue generator writes them), predictions reproduce many of those phrasings and add free-form cues of their own;
the share of distinct sentences is printed, since encoding each distinct cue once is where much of the gain is.
Both run single-threaded by default (``--threads``), which keeps the comparison fair on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

VISUAL = {
    "smile": ["the corners of the mouth turn up", "a smile spreads across the face", "the lips curve into a smile"],
    "frown": ["the corners of the mouth turn down", "the mouth droops at the corners", "the lips pull downward"],
    "mouth_open": ["the mouth opens wide", "the jaw drops open", "the lips part widely"],
    "brows_raised": ["the eyebrows are raised", "the brows lift high", "the forehead wrinkles as the brows go up"],
    "brows_furrowed": ["the brows are drawn together", "the eyebrows knit into a frown", "the brows lower"],
    "inner_brows": ["the inner ends of the brows rise", "the inner brows are pulled up", "the brows tilt upward"],
    "eyes_wide": ["the eyes open wide", "the eyes widen", "the eyes are wide open"],
    "eyes_narrow": ["the eyes narrow", "the eyes squint slightly", "the eyelids tighten"],
    "blinks": ["the person blinks often", "the eyes blink rapidly", "there is frequent blinking"],
    "nose": ["the nose wrinkles", "the upper lip rises with a wrinkled nose", "the nose scrunches up"],
    "nod": ["the head nods", "the person nods slowly", "there is a small nod"],
    "shake": ["the head shakes", "the person shakes the head", "the head turns side to side"],
    "head_down": ["the head is lowered", "the head hangs down", "the chin drops toward the chest"],
    "turn_away": ["the head turns away", "the face turns aside", "the person looks away"],
    "gaze_down": ["the gaze drops to the floor", "the eyes look down", "the person avoids eye contact"],
    "gaze_direct": ["the gaze is direct", "the person looks straight ahead", "the eyes meet the camera"],
}
AUDITORY = {
    "pitch_high": ["the pitch is high", "the voice is high-pitched", "the voice sits high"],
    "pitch_low": ["the pitch is low", "the voice is deep and low", "the voice stays low"],
    "rising": ["the pitch rises", "the intonation goes up", "the voice climbs in pitch"],
    "falling": ["the pitch falls", "the intonation drops", "the voice trails downward"],
    "lively": ["the intonation is lively", "the voice is animated", "the melody of the voice varies a lot"],
    "flat": ["the intonation is flat", "the voice is monotone", "the voice barely changes pitch"],
    "loud": ["the voice is loud", "the person speaks loudly", "the volume is high"],
    "soft": ["the voice is soft", "the person speaks quietly", "the volume is low"],
    "fast": ["the speech is fast", "the person speaks quickly", "the speaking rate is high"],
    "slow": ["the speech is slow", "the person speaks slowly", "the speaking rate is low"],
    "tremor": ["the voice trembles", "there is a tremor in the voice", "the voice shakes"],
    "pauses": ["there are long pauses", "the speech has long silences", "the person pauses often"],
}
TEXT = ["the subtitle text is positive", "the text of the subtitle sounds negative", "the subtitle text is neutral"]
EMOTIONS = ["happy", "sad", "angry", "surprised", "fearful", "disgusted", "neutral"]
REASONS = ["the face and the voice agree", "the words and the face disagree", "the voice matters more than the words",
           "the facial expression is the clearest cue", "the tone of voice supports this", "the cues are consistent"]
INTENSITY = ["", "slightly ", "clearly "]
ONSET = ["", " from the start", " part-way through", " and then fades"]
FREE = ["the person {v} while {w}", "at one point {v}", "{v}, and {w}"]


def _phrase(bank: dict[str, list[str]], rng: random.Random) -> str:
    cue = rng.choice(list(bank))
    text = rng.choice(bank[cue])
    words = text.split(" ", 2)
    if len(words) == 3 and rng.random() < 0.4:  # "the eyes slightly widen"
        text = f"{words[0]} {words[1]} {rng.choice(INTENSITY)}{words[2]}"
    return (text + rng.choice(ONSET)).capitalize() + "."


def _free(bank: dict[str, list[str]], rng: random.Random) -> str:
    v, w = rng.choice(rng.choice(list(bank.values()))), rng.choice(rng.choice(list(bank.values())))
    return rng.choice(FREE).format(v=v, w=w).capitalize() + "."


def _emotional(rng: random.Random) -> str:
    e = rng.choice(EMOTIONS)
    return rng.choice([f"The person most likely feels {e}.", f"The overall emotion is {e}.",
                       f"{rng.choice(REASONS).capitalize()}, which points to {e}."])


def make_cue_sets(n: int, seed: int = 0) -> tuple[dict, dict]:
    """``n`` reference and prediction cue dicts in the published layout."""
    rng = random.Random(seed)
    ref, pred = {}, {}
    for i in range(n):
        r = {
            "visual": [_phrase(VISUAL, rng) for _ in range(rng.randint(3, 7))],
            "auditory": [_phrase(AUDITORY, rng) for _ in range(rng.randint(2, 5))]
            + ([rng.choice(TEXT).capitalize() + "."] if rng.random() < 0.5 else []),
            "emotional": [_emotional(rng) for _ in range(rng.randint(2, 4))],
        }
        p: dict[str, list[str]] = {}
        for m, bank in (("visual", VISUAL), ("auditory", AUDITORY), ("emotional", None)):
            cues = [c for c in r[m] if rng.random() < 0.5]  # reproduced reference cues
            for _ in range(rng.randint(1, 4)):  # the model's own cues
                if bank is None:
                    cues.append(_emotional(rng))
                else:
                    cues.append(_free(bank, rng) if rng.random() < 0.35 else _phrase(bank, rng))
            rng.shuffle(cues)
            p[m] = cues
        if rng.random() < 0.03:
            del p["emotional"]  # exercise the missing-key rule
        if rng.random() < 0.03:
            p["visual"] = []
        ref[f"sample_{i:05d}"], pred[f"sample_{i:05d}"] = r, p
    return pred, ref


def max_abs_diff(a: dict, b: dict) -> float:
    diffs = [abs(a[m][k] - b[m][k]) for m in ("visual", "auditory", "emotional") for k in ("precision", "recall", "f1")]
    return max(diffs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=320, help="number of samples (default 320)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=128, help="sentences per encoder call (ours)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads for both (default 1: on a busy machine, multi-threaded small calls "
                             "stall on thread synchronisation and would flatter the batched version)")
    args = parser.parse_args(argv)

    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)

    from xemogpt.metrics.emocue360 import emocue360, emocue360_per_sample_reference
    from xemogpt.utils.sentence import load_minilm

    pred, ref = make_cue_sets(args.samples, args.seed)
    cues = [c for d in (pred, ref) for s in d.values() for v in s.values() for c in v]
    print(f"EmoCue-360 benchmark: {args.samples} samples, {len(cues)} cues ({len(set(cues))} distinct), "
          f"torch {torch.__version__} on {torch.get_num_threads()} CPU thread(s)")
    encoder = load_minilm()
    emocue360(pred, ref, encoder)  # warm-up (first forward passes allocate)

    t0 = time.perf_counter()
    ours = emocue360(pred, ref, encoder, batch_size=args.batch_size)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    base = emocue360_per_sample_reference(pred, ref, encoder)
    t_base = time.perf_counter() - t0

    diff = max_abs_diff(ours, base)
    print(f"{'implementation':<34} {'seconds':>8} {'samples/s':>10}")
    print(f"{'per-sample (published loop)':<34} {t_base:>8.2f} {args.samples / t_base:>10.1f}")
    print(f"{'xemogpt (distinct cues, batched)':<34} {t_ours:>8.2f} {args.samples / t_ours:>10.1f}")
    print(f"speed-up: {t_base / t_ours:.1f}x   largest |difference| in P/R/F1: {diff:.2e}")
    for m in ("visual", "auditory", "emotional"):
        r = ours[m]
        print(f"  {m:<9} P {r['precision']:.4f}  R {r['recall']:.4f}  F1 {r['f1']:.4f}  n {r['n']}")
    ok = diff < 1e-6 and t_base / t_ours >= 5
    if not ok:
        print("FAILED: expected >= 5x and a difference under 1e-6", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
