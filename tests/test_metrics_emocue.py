"""EmoCue-360: every rule of DESIGN.md on hand-computed cases, the torchmetrics Metric, and real-MiniLM checks."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
import torch

from xemogpt.metrics.emocue360 import CueFormatError, emocue360, emocue360_per_sample_reference
from xemogpt.metrics.emocue360_metric import EmoCue360

# 2-D stand-in embeddings with easy cosines: cos(a,c)=.6 cos(a,d)=.8 cos(b,c)=.8 cos(b,d)=.6 cos(a,b)=0 cos(a,n)=-1
VECTORS = {
    "a": (1.0, 0.0), "b": (0.0, 1.0), "c": (0.6, 0.8), "d": (0.8, 0.6), "n": (-1.0, 0.0),
    "the text a": (1.0, 0.0), "the text b": (0.0, 1.0), "Text d": (0.8, 0.6),
}


class VectorEncoder:
    """A deterministic encoder with known vectors; records what it was asked to encode."""

    def __init__(self, vectors: dict[str, tuple[float, ...]], as_tensor: bool = False) -> None:
        self.vectors = vectors
        self.as_tensor = as_tensor
        self.calls: list[list[str]] = []

    def encode(self, sentences: list[str]):
        self.calls.append(list(sentences))
        out = np.array([self.vectors[s] for s in sentences], dtype=np.float32)
        return torch.from_numpy(out) if self.as_tensor else out


# s1..s6 exercise: basic matrix, "text" filter (case-sensitive), empty prediction, empty reference, missing
# emotional key, prediction without reference, reference without prediction, negative similarity (P+R<0).
PRED = {
    "s1": {"visual": ["c"], "auditory": ["c", "Text d"], "emotional": ["d"]},
    "s2": {"visual": [], "auditory": ["b"]},  # no emotional key
    "s3": {"visual": ["a"], "auditory": ["n"], "emotional": ["c"]},
    "s4": {"visual": ["a"], "auditory": ["a"], "emotional": ["a"]},  # not in the references
    "s6": {"visual": ["n"], "auditory": ["a", "b"], "emotional": ["a"]},
}
REF = {
    "s1": {"visual": ["a", "b"], "auditory": ["a", "the text b"], "emotional": ["a"]},
    "s2": {"visual": ["a"], "auditory": ["the text a"], "emotional": []},
    "s3": {"visual": [], "auditory": ["b"], "emotional": ["b", "a"]},
    "s5": {"visual": ["a"], "auditory": ["a"], "emotional": ["a"]},  # never predicted
    "s6": {"visual": ["a"], "auditory": ["a"], "emotional": ["a"]},
}
F_7_8 = 2 * 0.8 * 0.7 / 1.5  # P=.8, R=.7 (or the reverse)
# Hand-computed per-modality means (see the comments in test_hand_computed_edge_cases).
EXPECTED = {
    "visual": {"precision": (0.8 + 0 - 1) / 3, "recall": (0.7 + 0 - 1) / 3, "f1": (F_7_8 + 0 + 0) / 3, "n": 3},
    "auditory": {"precision": (0.7 + 0 + 0.5) / 3, "recall": (0.8 + 0 + 1) / 3, "f1": (F_7_8 + 0 + 2 / 3) / 3,
                 "n": 3},
    "emotional": {"precision": (0.8 + 0 + 0.8 + 1) / 4, "recall": (0.8 + 0 + 0.7 + 1) / 4,
                  "f1": (0.8 + 0 + F_7_8 + 1) / 4, "n": 4},
}


def _check(result: dict, expected: dict = EXPECTED, tol: float = 1e-6) -> None:
    for m, exp in expected.items():
        for k in ("precision", "recall", "f1"):
            assert result[m][k] == pytest.approx(exp[k], abs=tol), (m, k)
        assert result[m]["n"] == exp["n"], m


def test_hand_computed_edge_cases():
    enc = VectorEncoder(VECTORS)
    res = emocue360(PRED, REF, enc, per_sample=True)
    _check(res)
    per = res["per_sample"]
    # s1 visual: sims [[.6], [.8]] -> recall .7, precision .8
    assert per["visual"]["s1"]["recall"] == pytest.approx(0.7)
    assert per["visual"]["s1"]["precision"] == pytest.approx(0.8)
    # s2 visual: empty prediction scores 0 and is counted; s3 visual: empty reference is skipped
    assert per["visual"]["s2"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert "s3" not in per["visual"]
    # s6 visual: opposite vectors, P = R = -1, P + R < 0 -> F1 = 0 (as the published script)
    assert per["visual"]["s6"]["precision"] == pytest.approx(-1.0)
    assert per["visual"]["s6"]["f1"] == 0.0
    # s1 auditory: "the text b" dropped from the reference; "Text d" kept (case-sensitive) -> R .8, P .7
    assert per["auditory"]["s1"]["recall"] == pytest.approx(0.8)
    assert per["auditory"]["s1"]["precision"] == pytest.approx(0.7)
    # s2 auditory: the only reference cue contains "text" -> skipped
    assert "s2" not in per["auditory"]
    # s2 emotional: no key -> 0 and counted although its reference is empty
    assert per["emotional"]["s2"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    # counts: s4 has no reference, s5 was never predicted
    assert res["samples"] == 4 and res["missing_ref"] == 1 and res["missing_ref_names"] == ["s4"]
    assert all("s5" not in per[m] for m in per)
    assert res["visual"]["empty_pred"] == 1 and res["visual"]["skipped_empty_ref"] == 1
    assert res["auditory"]["skipped_empty_ref"] == 1
    assert res["auditory"]["dropped_text_cues_ref"] == 2 and res["auditory"]["dropped_text_cues_pred"] == 0
    assert res["emotional"]["missing_key"] == 1 and res["emotional"]["skipped_empty_ref"] == 0


# Prediction-side "text" filtering, a prediction emptied by it, an empty emotional list, and P + R = 0 exactly.
PRED2 = {
    "t1": {"visual": ["a"], "auditory": ["the text a", "c"], "emotional": []},
    "t2": {"visual": ["b"], "auditory": ["the text b"], "emotional": ["a"]},
}
REF2 = {
    "t1": {"visual": ["a"], "auditory": ["a", "b"], "emotional": ["a"]},
    "t2": {"visual": ["a"], "auditory": ["b"], "emotional": ["a", "b"]},
}
EXPECTED2 = {
    # t1: a vs a -> 1, 1;  t2: b vs a, cosine 0 -> P = R = 0, P + R = 0 -> F1 0
    "visual": {"precision": 0.5, "recall": 0.5, "f1": 0.5, "n": 2},
    # t1: "the text a" dropped, c vs [a, b] -> R (.6 + .8) / 2 = .7, P .8 (with it kept R would be .9);
    # t2: the only predicted cue is dropped -> an empty prediction, 0 and counted
    "auditory": {"precision": 0.4, "recall": 0.35, "f1": F_7_8 / 2, "n": 2},
    # t1: an empty list (the key is there) against a non-empty reference -> 0;  t2: a vs [a, b] -> R .5, P 1
    "emotional": {"precision": 0.5, "recall": 0.25, "f1": (2 / 3) / 2, "n": 2},
}


def test_prediction_side_text_filter_and_zero_similarity():
    enc = VectorEncoder(VECTORS)
    res = emocue360(PRED2, REF2, enc, per_sample=True)
    _check(res, EXPECTED2)
    assert res["per_sample"]["visual"]["t2"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert res["per_sample"]["auditory"]["t2"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert res["auditory"]["dropped_text_cues_pred"] == 2 and res["auditory"]["dropped_text_cues_ref"] == 0
    assert res["auditory"]["empty_pred"] == 1 and res["emotional"]["empty_pred"] == 1
    assert res["emotional"]["missing_key"] == 0
    assert not {"the text a", "the text b"} & {c for call in enc.calls for c in call}  # dropped before encoding
    _check(emocue360_per_sample_reference(PRED2, REF2, VectorEncoder(VECTORS)), EXPECTED2)
    metric = EmoCue360(encoder=VectorEncoder(VECTORS))
    for name in PRED2:
        metric.update({name: PRED2[name]}, REF2)
    out = metric.compute()
    for m, exp in EXPECTED2.items():
        for k in ("precision", "recall", "f1"):
            assert out[f"{m}_{k}"].item() == pytest.approx(exp[k], abs=1e-6), (m, k)
        assert out[f"{m}_n"].item() == exp["n"]
    assert out["auditory_empty_pred"].item() == 1


def test_each_distinct_cue_is_encoded_once_in_batches():
    enc = VectorEncoder(VECTORS)
    emocue360(PRED, REF, enc, batch_size=4)
    seen = [s for call in enc.calls for s in call]
    assert sorted(seen) == sorted(set(seen))  # no cue twice
    assert set(seen) == {"a", "b", "c", "d", "n", "Text d"}  # dropped "text" cues are never encoded
    assert [len(c) for c in enc.calls] == [4, 2]


def test_per_sample_reference_matches_hand_computed_values():
    _check(emocue360_per_sample_reference(PRED, REF, VectorEncoder(VECTORS)))


def test_tensor_encoder_and_list_inputs():
    enc = VectorEncoder(VECTORS, as_tensor=True)
    names = ["s1", "s2", "s3", "s6"]
    res = emocue360([PRED[n] for n in names], [REF[n] for n in names], enc)
    _check(res)


def test_missing_visual_key_is_an_empty_prediction():
    enc = VectorEncoder(VECTORS)
    res = emocue360({"x": {"emotional": ["a"]}}, {"x": {"visual": ["a"], "auditory": [], "emotional": ["a"]}}, enc)
    assert res["visual"]["n"] == 1 and res["visual"]["f1"] == 0.0 and res["visual"]["missing_key"] == 1
    assert res["emotional"]["f1"] == pytest.approx(1.0)
    assert math.isnan(res["auditory"]["f1"]) and res["auditory"]["n"] == 0  # nothing scored -> NaN, not a crash


def test_malformed_cues_name_the_sample():
    enc = VectorEncoder(VECTORS)
    with pytest.raises(CueFormatError, match="'s1'.*'visual'"):
        emocue360({"s1": {"visual": "a smile"}}, {"s1": {"visual": ["a"]}}, enc)
    with pytest.raises(CueFormatError, match="'s1'"):
        emocue360({"s1": {"visual": [3]}}, {"s1": {"visual": ["a"]}}, enc)
    with pytest.raises(ValueError, match="shape"):
        emocue360({"s1": {"visual": ["a"]}}, {"s1": {"visual": ["b"]}}, _BadEncoder())


class _BadEncoder:
    def encode(self, sentences):
        return np.zeros((len(sentences) + 1, 2), dtype=np.float32)


def test_torchmetrics_metric_accumulates_batches():
    metric = EmoCue360(encoder=VectorEncoder(VECTORS))
    metric.update({k: PRED[k] for k in ("s1", "s2")}, REF)
    metric.update({k: PRED[k] for k in ("s3", "s4", "s6")}, REF)
    out = metric.compute()
    for m, exp in EXPECTED.items():
        for k in ("precision", "recall", "f1"):
            assert out[f"{m}_{k}"].item() == pytest.approx(exp[k], abs=1e-6), (m, k)
        assert out[f"{m}_n"].item() == exp["n"]
    assert out["missing_ref"].item() == 1 and out["emotional_missing_key"].item() == 1
    assert not any(k.startswith("_encoder") for k in metric.state_dict())  # the encoder is not checkpointed
    metric.reset()
    assert metric.visual_n.item() == 0


# ---------------------------------------------------------------------------------------------------- real MiniLM
PHRASES = {
    "visual": ["The corners of the mouth turn up.", "A smile spreads across the face.", "The brows are raised.",
               "The eyes are wide open.", "The head is lowered.", "The gaze drops to the floor.",
               "The nose wrinkles.", "The brows are drawn together.", "The person nods slowly."],
    "auditory": ["The voice is loud.", "The pitch rises at the end.", "The person speaks quietly.",
                 "There are long pauses.", "The voice trembles.", "The subtitle text is positive.",
                 "The speech is fast.", "The intonation is flat."],
    "emotional": ["The person feels happy.", "The person is probably sad.", "Anger is the most likely state.",
                  "The face and voice agree.", "The person seems afraid.", "The overall mood is calm."],
}


def _random_sets(n: int, seed: int) -> tuple[dict, dict]:
    rng = random.Random(seed)
    pred, ref = {}, {}
    for i in range(n):
        ref[f"r{i}"] = {m: rng.sample(v, rng.randint(0, 4)) for m, v in PHRASES.items()}
        pred[f"r{i}"] = {m: rng.sample(v, rng.randint(0, 4)) for m, v in PHRASES.items()}
        if rng.random() < 0.15:
            del pred[f"r{i}"]["emotional"]
    return pred, ref


@pytest.fixture(scope="module")
def minilm():
    from xemogpt.utils.sentence import load_minilm

    return load_minilm()


def test_minilm_identical_cues_score_one(minilm):
    cues = {"x": {m: v[:3] for m, v in PHRASES.items()}}
    res = emocue360(cues, cues)
    for m in ("visual", "auditory", "emotional"):
        assert res[m]["f1"] == pytest.approx(1.0, abs=1e-5)


def test_minilm_value_matches_sentence_transformers_cosine(minilm):
    from sentence_transformers import util

    ref = ["The corners of the mouth turn up.", "The eyes are wide open."]
    pred = ["A smile spreads across the face.", "The voice is loud.", "The brows are raised."]
    sim = util.cos_sim(minilm.encode(ref, convert_to_tensor=True), minilm.encode(pred, convert_to_tensor=True))
    recall = sim.max(dim=1).values.mean().item()
    precision = sim.max(dim=0).values.mean().item()
    res = emocue360({"x": {"visual": pred}}, {"x": {"visual": ref}})
    assert res["visual"]["recall"] == pytest.approx(recall, abs=1e-6)
    assert res["visual"]["precision"] == pytest.approx(precision, abs=1e-6)
    assert res["visual"]["f1"] == pytest.approx(2 * precision * recall / (precision + recall), abs=1e-6)
    # a paraphrase scores above an unrelated cue
    close = emocue360({"x": {"visual": ["A smile spreads across the face."]}}, {"x": {"visual": ref[:1]}})
    far = emocue360({"x": {"visual": ["The voice is loud."]}}, {"x": {"visual": ref[:1]}})
    assert close["visual"]["f1"] > far["visual"]["f1"] + 0.1


def test_minilm_batched_agrees_with_per_sample_on_random_sets(minilm):
    pred, ref = _random_sets(15, seed=3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # ~100 tiny encoder calls: multi-threading only adds synchronisation on a busy CPU
    try:
        ours = emocue360(pred, ref, minilm)
        base = emocue360_per_sample_reference(pred, ref, minilm)
        metric = EmoCue360(encoder=minilm, batch_size=16)  # the torchmetrics Metric, fed in three batches
        names = list(pred)
        for start in range(0, len(names), 6):
            metric.update({n: pred[n] for n in names[start:start + 6]}, ref)
        out = metric.compute()
    finally:
        torch.set_num_threads(threads)
    for m in ("visual", "auditory", "emotional"):
        assert ours[m]["n"] == base[m]["n"] == out[f"{m}_n"].item() > 0
        for k in ("precision", "recall", "f1"):
            assert abs(ours[m][k] - base[m][k]) < 1e-6, (m, k)
            assert abs(out[f"{m}_{k}"].item() - base[m][k]) < 1e-6, (m, k)


def test_cli_score_emocue360_json(tmp_path, capsys):
    from xemogpt.cli import main

    pred, ref = _random_sets(6, seed=1)
    (tmp_path / "p.json").write_text(json.dumps(pred))
    (tmp_path / "r.json").write_text(json.dumps(ref))
    assert main(["score", "emocue360", "--pred", str(tmp_path / "p.json"), "--ref", str(tmp_path / "r.json"),
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    direct = emocue360(pred, ref)
    for m in ("visual", "auditory", "emotional"):
        assert out[m]["f1"] == pytest.approx(direct[m]["f1"], abs=1e-9)
    assert main(["score", "emocue360", "--pred", str(tmp_path / "p.json"), "--ref", str(tmp_path / "r.json")]) == 0
    table = capsys.readouterr().out
    assert "visual" in table and "auditory" in table and "precision" in table
    with pytest.raises(SystemExit, match="does not exist"):
        main(["score", "emocue360", "--pred", str(tmp_path / "nope.json"), "--ref", str(tmp_path / "r.json")])
