"""The EmoCue-360 embedding cache: exact round trip, several processes writing at once, scores bit-identical with
and without it (real MiniLM), references embedded once across epochs and calls, and the model fingerprint."""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.test_metrics_emocue import PHRASES, VECTORS, VectorEncoder
from xemogpt.metrics.emocue360 import emocue360
from xemogpt.metrics.emocue360_metric import EmoCue360
from xemogpt.utils.embedding_cache import DB_NAME, EmbeddingCache, cache_for, model_fingerprint

SRC = str(Path(__file__).parents[1] / "src")


def _vec(text: str) -> np.ndarray:
    return np.random.default_rng(int(text.split()[-1])).standard_normal(384).astype(np.float32)


def test_round_trip_is_exact_and_per_model(tmp_path):
    cache = EmbeddingCache(tmp_path, "model-a")
    vecs = {f"cue {i}": _vec(f"cue {i}") for i in range(5)}
    vecs["émotion, 'quoted' ; DROP TABLE embeddings; -- 7"] = _vec("x 7")
    cache.put_many(vecs)
    fresh = EmbeddingCache(tmp_path, "model-a")  # a new process would see the same: only the file is shared
    got = fresh.get_many([*vecs, "never stored 9"])
    assert set(got) == set(vecs) and all(got[t].tobytes() == v.tobytes() for t, v in vecs.items())
    assert (fresh.hits, fresh.misses, len(fresh)) == (6, 1, 6)
    assert EmbeddingCache(tmp_path, "model-b").get_many(vecs) == {}  # another model's vectors are not shared
    cache.put_many({"cue 0": np.zeros(384, np.float32)})  # a text already stored keeps its first vector
    assert EmbeddingCache(tmp_path, "model-a").get_many(["cue 0"])["cue 0"].tobytes() == vecs["cue 0"].tobytes()


WRITER = """
import sys
import numpy as np
from xemogpt.utils.embedding_cache import EmbeddingCache

def vec(t):
    return np.random.default_rng(int(t.split()[-1])).standard_normal(384).astype(np.float32)

folder, start, stop = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
cache = EmbeddingCache(folder, "fp-test")
for s in range(start, stop, 10):
    texts = [f"cue {i}" for i in range(s, min(s + 10, stop))]
    cache.put_many({t: vec(t) for t in texts})
    cache.memory.clear()  # read back from the file while the others write
    got = cache.get_many(texts)
    assert all(got[t].tobytes() == vec(t).tobytes() for t in texts), "read back a different vector"
"""


def test_concurrent_writers_cannot_corrupt_it(tmp_path):
    ranges = [(0, 400), (200, 600), (100, 500), (300, 700)]  # overlapping: the same texts written concurrently
    env = {"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin"}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(a), str(b)], env=env,
                              stderr=subprocess.PIPE) for a, b in ranges]
    errors = [(p.wait(timeout=120), p.stderr.read().decode()) for p in procs]
    assert all(rc == 0 for rc, _ in errors), errors
    con = sqlite3.connect(tmp_path / DB_NAME)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    cache = EmbeddingCache(tmp_path, "fp-test")
    assert len(cache) == 700
    got = cache.get_many([f"cue {i}" for i in range(700)])
    assert all(got[f"cue {i}"].tobytes() == _vec(f"cue {i}").tobytes() for i in range(700))


def _long_cue_sets(n: int, seed: int) -> tuple[dict, dict]:
    """Multi-clause cues of varied token counts, mostly distinct."""
    rng = random.Random(seed)
    links = ("while", "and then", "although", "as soon as")

    def cue(m: str) -> str:
        a, b = rng.sample(PHRASES[m], 2)
        return f"{a[:-1]} {rng.choice(links)} {b[0].lower()}{b[1:]}"

    pred, ref = {}, {}
    for i in range(n):
        ref[f"s{i}"] = {m: [cue(m) for _ in range(rng.randint(1, 4))] for m in PHRASES}
        pred[f"s{i}"] = {m: [cue(m) for _ in range(rng.randint(0, 4))] for m in PHRASES}
    return pred, ref


@pytest.fixture(scope="module")
def minilm():
    from xemogpt.utils.sentence import load_minilm

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield load_minilm()
    torch.set_num_threads(threads)


def test_scores_are_bit_identical_with_and_without_the_cache(minilm, tmp_path):
    pred, ref = _long_cue_sets(12, seed=5)
    plain = emocue360(pred, ref, minilm, per_sample=True, cache=None)
    cold = emocue360(pred, ref, minilm, per_sample=True, cache=EmbeddingCache(tmp_path / "a", "minilm"))
    warm_cache = EmbeddingCache(tmp_path / "a", "minilm")  # nothing in memory: every vector from the file
    warm = emocue360(pred, ref, minilm, per_sample=True, cache=warm_cache)
    assert warm_cache.misses == 0 and warm_cache.hits > 50
    # partly warm: the references were embedded in earlier, different batches (scored against themselves)
    part = EmbeddingCache(tmp_path / "b", "minilm")
    emocue360(ref, ref, minilm, cache=part)
    partial = emocue360(pred, ref, minilm, per_sample=True, cache=part)
    assert plain == cold == warm == partial  # every P/R/F1 of every sample, to the last bit


def test_references_are_embedded_once_across_epochs_and_calls(tmp_path):
    enc = VectorEncoder(VECTORS)
    enc.fingerprint = "vectors-v1"
    ref = {"s1": {"visual": ["a", "b"], "auditory": ["a"], "emotional": ["d"]}}
    metric = EmoCue360(encoder=enc, cache=str(tmp_path))
    for epoch_pred in ("c", "n"):  # two validation epochs, each predicting something new
        metric.update({"s1": {"visual": [epoch_pred], "auditory": ["a"], "emotional": [epoch_pred]}}, ref)
        metric.compute()
        metric.reset()
    asked = [t for call in enc.calls for t in call]
    assert sorted(asked) == ["a", "b", "c", "d", "n"]  # each cue once: epoch 2 encoded only "n"
    # another "ablation cell" in a new process: a fresh cache object on the same folder encodes nothing known
    enc.calls.clear()
    fresh = EmbeddingCache(tmp_path, "vectors-v1")
    emocue360({"s1": {"visual": ["c", "d"]}}, ref, enc, cache=fresh)
    assert enc.calls == []


def test_fingerprint_follows_the_weights_and_unknown_encoders_are_not_cached(tmp_path):
    lin = torch.nn.Linear(4, 3)
    first = model_fingerprint(lin)
    assert first == model_fingerprint(lin) and len(first) == 64
    other = torch.nn.Linear(4, 3)
    other.load_state_dict(lin.state_dict())
    assert model_fingerprint(other) == first  # same weights, another object
    with torch.no_grad():
        other.weight[0, 0] += 1e-6
    assert model_fingerprint(other) != first
    assert cache_for(VectorEncoder(VECTORS), tmp_path) is None  # no fingerprint: no cache, no file
    emocue360({"s": {"visual": ["a"]}}, {"s": {"visual": ["b"]}}, VectorEncoder(VECTORS), cache=str(tmp_path))
    assert not (tmp_path / DB_NAME).exists()


def test_default_folder_and_off_switch(tmp_path, monkeypatch):
    enc = VectorEncoder(VECTORS)
    enc.fingerprint = "vectors-v2"
    monkeypatch.setenv("XEMOGPT_EMBED_CACHE", str(tmp_path / "here"))
    assert cache_for(enc).path == tmp_path / "here" / DB_NAME
    assert cache_for(enc) is cache_for(enc)  # one object per folder and model: its memory serves the process
    monkeypatch.setenv("XEMOGPT_EMBED_CACHE", "off")
    assert cache_for(enc) is None


def test_bench_metrics_quick_run_prints_cold_and_warm(minilm, capsys):
    import importlib.util

    path = Path(__file__).parents[1] / "benchmarks" / "bench_metrics.py"
    spec = importlib.util.spec_from_file_location("bench_metrics", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    pred, ref = bench.make_long_cue_sets(40, seed=1)
    cues = [c for d in (pred, ref) for s in d.values() for v in s.values() for c in v]
    assert all(10 <= len(c.split()) <= 25 for c in cues) and len(set(cues)) > 0.8 * len(cues)  # EMER-like
    bench.main(["--long-samples", "3", "--only", "emer-like", "--threads", "1"])  # ratios mean nothing this small
    out = capsys.readouterr().out
    assert "xemogpt cold (empty embedding cache)" in out and "xemogpt warm (cache filled by an earlier run)" in out
    assert "cold and warm identical: True" in out


def test_a_failed_extraction_is_counted_not_scored():
    """`--on-failure skip` gives None cues: EmoCue-360 leaves the sample out and says how many."""
    ref = {"s1": {"visual": ["a"]}, "s2": {"visual": ["a"]}}
    pred = {"s1": {"visual": ["d"]}, "s2": None}
    res = emocue360(pred, ref, VectorEncoder(VECTORS))
    assert res["visual"]["n"] == 1 and res["visual"]["f1"] == pytest.approx(0.8)
    assert res["samples"] == 1 and res["extraction_failed"] == 1 and res["extraction_failed_names"] == ["s2"]
    metric = EmoCue360(encoder=VectorEncoder(VECTORS), cache=None)
    metric.update(pred, ref)
    out = metric.compute()
    assert out["visual_n"].item() == 1 and out["extraction_failed"].item() == 1
