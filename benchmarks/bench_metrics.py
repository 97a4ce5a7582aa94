"""EmoCue-360 speed: our implementation, cold and warm, beside the straightforward per-sample one.

Run with ``make bench-metrics`` (``.venv/bin/python benchmarks/bench_metrics.py``). Every implementation scores the
same samples with the bundled all-MiniLM-L6-v2 on the CPU; the per-sample one encodes each sample's reference and
prediction lists in separate calls, as the published ``compute_prf.py`` does. Ours runs twice: **cold** (an empty
embedding cache: every distinct cue encoded once, in batches of equal token count, and stored) and **warm** (a
fresh cache object on the filled folder, as a second process or the next epoch sees it: vectors read from disk).
Printed per cue set: seconds and samples per second of each, the two speed ratios, and the largest absolute
difference from the per-sample P/R/F1 numbers (cold and warm must agree with each other exactly).

Two cue sets:

* ``repeated``: short cues that are phrasings of canonical cues (as the synthetic EmoCue generator writes them);
  predictions reproduce many of those phrasings, so encoding each distinct cue once gains much;
* ``emer-like``: long multi-clause cues of 10-25 words with few repeats, like the LLM-extracted cues of EMER
  descriptions, where the gain of the cold run comes from batching alone.

Both run single-threaded by default (``--threads``), which keeps the comparison fair on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
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


SUBJECTS = ["The woman", "The man", "The young woman", "The middle-aged man", "The character", "The girl",
            "The older man", "The speaker", "The interviewee", "The boy"]
LOOKS = ["frowns slightly", "raises the eyebrows", "looks down at the table", "glances sideways at the other person",
         "tightens the corners of the mouth", "smiles faintly", "keeps a blank stare", "shakes the head slowly",
         "leans back in the chair", "crosses the arms", "bites the lower lip", "narrows the eyes",
         "nods several times", "turns the face away", "opens the eyes wide", "rubs the forehead with one hand",
         "purses the lips", "lowers the gaze", "clenches the jaw", "covers the mouth with a hand"]
SOUNDS = ["speaks in a low and slightly hoarse voice", "raises the volume sharply", "speaks faster and faster",
          "lets the pitch drop at the end of each sentence", "pauses for a long time before answering",
          "sighs audibly", "laughs briefly and nervously", "speaks in a flat, even tone", "stutters on the first words",
          "whispers the last words", "sounds out of breath", "stresses every word with force"]
WHEN = ["at the beginning of the clip", "while listening to the other person", "near the end of the video",
        "as the conversation goes on", "after a short pause", "when the other person starts speaking",
        "throughout the scene", "right after hearing the question", "for a moment"]
INFER = ["inner tension", "mild surprise", "growing impatience", "a reluctance to answer", "embarrassment",
         "quiet satisfaction", "barely controlled anger", "deep disappointment", "nervous anticipation", "relief",
         "disbelief", "a wish to end the conversation"]
FEELS = ["seems anxious", "is probably irritated", "appears sad and tired", "looks pleasantly surprised",
         "is likely embarrassed", "seems calm but distant", "appears frustrated", "is most likely happy",
         "seems worried about the outcome", "is probably hiding disappointment"]


def _long_cue(modality: str, rng: random.Random) -> str:
    """One EMER-like cue of 10-25 words: a clause about what is seen / heard / felt and a second clause."""
    while True:
        subj = rng.choice(SUBJECTS)
        if modality == "emotional":
            cause = rng.choice(LOOKS + SOUNDS)
            text = f"{subj} {rng.choice(FEELS)}, because the person {cause} {rng.choice(WHEN)}"
        else:
            action = rng.choice(LOOKS if modality == "visual" else SOUNDS)
            tail = rng.choice([f", which suggests {rng.choice(INFER)}", f", indicating {rng.choice(INFER)}",
                               f" and then {rng.choice(LOOKS if modality == 'visual' else SOUNDS)}", ""])
            text = f"{subj} {action} {rng.choice(WHEN)}{tail}"
        if 10 <= len(text.split()) <= 25:
            return text + "."


def make_long_cue_sets(n: int, seed: int = 0) -> tuple[dict, dict]:
    """``n`` EMER-like samples: 2-6 long reference cues and 1-6 predicted ones per modality, about one
    predicted cue in ten copied from the reference, the rest written anew (so few sentences repeat)."""
    rng = random.Random(seed)
    ref, pred = {}, {}
    for i in range(n):
        r = {m: [_long_cue(m, rng) for _ in range(rng.randint(2, 6))] for m in ("visual", "auditory", "emotional")}
        p = {m: [rng.choice(r[m]) if rng.random() < 0.1 else _long_cue(m, rng) for _ in range(rng.randint(1, 6))]
             for m in r}
        if rng.random() < 0.03:
            del p["emotional"]
        ref[f"sample_{i:05d}"], pred[f"sample_{i:05d}"] = r, p
    return pred, ref


def max_abs_diff(a: dict, b: dict) -> float:
    diffs = [abs(a[m][k] - b[m][k]) for m in ("visual", "auditory", "emotional") for k in ("precision", "recall", "f1")]
    return max(diffs)


def _time(fn) -> tuple[float, dict]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def bench_set(name: str, pred: dict, ref: dict, encoder, batch_size: int, cold_goal: float,
              warm_goal: float) -> dict:
    """Time the per-sample loop, ours cold and ours warm on one cue set; print the rows, return the numbers."""
    from xemogpt.metrics.emocue360 import emocue360, emocue360_per_sample_reference
    from xemogpt.utils.embedding_cache import EmbeddingCache, model_fingerprint

    cues = [c for d in (pred, ref) for s in d.values() for v in s.values() for c in v]
    words = [len(c.split()) for c in cues]
    n = len(pred)
    share = 100 * len(set(cues)) / len(cues)
    print(f"\n[{name}] {n} samples, {len(cues)} cues ({len(set(cues))} distinct, {share:.0f}%), "
          f"{min(words)}-{max(words)} words (mean {sum(words) / len(words):.1f})")
    fingerprint = model_fingerprint(encoder)
    with tempfile.TemporaryDirectory() as folder:
        t_base, base = _time(lambda: emocue360_per_sample_reference(pred, ref, encoder))
        t_cold, cold = _time(lambda: emocue360(pred, ref, encoder, batch_size=batch_size,
                                               cache=EmbeddingCache(folder, fingerprint)))
        warm_cache = EmbeddingCache(folder, fingerprint)  # nothing in memory: a new process or the next epoch
        t_warm, warm = _time(lambda: emocue360(pred, ref, encoder, batch_size=batch_size, cache=warm_cache))
        assert warm_cache.misses == 0
    print(f"{'implementation':<44} {'seconds':>8} {'samples/s':>10}")
    for label, t in (("per-sample (published loop)", t_base), ("xemogpt cold (empty embedding cache)", t_cold),
                     ("xemogpt warm (cache filled by an earlier run)", t_warm)):
        print(f"{label:<44} {t:>8.2f} {n / t:>10.1f}")
    r = {"cold_ratio": t_base / t_cold, "warm_ratio": t_base / t_warm, "diff_cold": max_abs_diff(cold, base),
         "diff_warm": max_abs_diff(warm, base), "identical": all(cold[m] == warm[m] for m in
                                                                 ("visual", "auditory", "emotional")),
         "t_base": t_base, "t_cold": t_cold, "t_warm": t_warm}
    print(f"cold {r['cold_ratio']:.1f}x, warm {r['warm_ratio']:.1f}x the per-sample loop; largest |difference| in "
          f"P/R/F1: {max(r['diff_cold'], r['diff_warm']):.2e}; cold and warm identical: {r['identical']}")
    for m in ("visual", "auditory", "emotional"):
        c = cold[m]
        print(f"  {m:<9} P {c['precision']:.4f}  R {c['recall']:.4f}  F1 {c['f1']:.4f}  n {c['n']}")
    r["ok"] = (r["cold_ratio"] >= cold_goal and r["warm_ratio"] >= warm_goal and r["identical"]
               and max(r["diff_cold"], r["diff_warm"]) < 1e-6)
    if not r["ok"]:
        print(f"FAILED [{name}]: expected cold >= {cold_goal}x, warm >= {warm_goal}x, cold == warm and a difference "
              "under 1e-6", file=sys.stderr)
    return r


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=320, help="samples of the repeated-phrasings set (320)")
    parser.add_argument("--long-samples", type=int, default=200, help="samples of the EMER-like set (200)")
    parser.add_argument("--pred", help="also time a predicted-cues JSON file (the published layout), e.g. real EMER")
    parser.add_argument("--ref", help="the reference cues JSON for --pred")
    parser.add_argument("--only", choices=("repeated", "emer-like", "files"), help="run one set only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=128, help="sentences per encoder call (ours)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads for both (default 1: on a busy machine, multi-threaded small calls "
                             "stall on thread synchronisation and would flatter the batched version)")
    args = parser.parse_args(argv)

    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)

    from xemogpt.metrics.emocue360 import emocue360
    from xemogpt.utils.sentence import load_minilm

    print(f"EmoCue-360 benchmark: torch {torch.__version__} on {torch.get_num_threads()} CPU thread(s)")
    encoder = load_minilm()
    warm_pred, warm_ref = make_long_cue_sets(8, seed=args.seed + 99)
    emocue360(warm_pred, warm_ref, encoder, cache=None)  # warm-up (first forward passes allocate)

    sets = {"repeated": ("repeated phrasings", lambda: make_cue_sets(args.samples, args.seed), 5),
            "emer-like": ("EMER-like long cues", lambda: make_long_cue_sets(args.long_samples, args.seed), 2)}
    if args.pred or args.ref:
        if not (args.pred and args.ref):
            parser.error("--pred and --ref go together")
        sets["files"] = (f"{args.pred} against {args.ref}", lambda: _load_pair(args.pred, args.ref), 2)
    results = {key: bench_set(title, *make(), encoder, args.batch_size, cold_goal=goal, warm_goal=10)
               for key, (title, make, goal) in sets.items() if args.only in (None, key)}
    return 0 if all(r["ok"] for r in results.values()) else 1


def _load_pair(pred: str, ref: str) -> tuple[dict, dict]:
    import json

    return (json.loads(open(pred, encoding="utf-8").read()), json.loads(open(ref, encoding="utf-8").read()))


if __name__ == "__main__":
    raise SystemExit(main())
