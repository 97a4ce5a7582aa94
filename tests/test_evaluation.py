"""Evaluation scoring without a model: discrete emotion metrics, OV-MER of the labels a text names, EmoCue-360,
the Markdown report's worked examples, and extractor specs from a recipe."""

from __future__ import annotations

import pytest

from xemogpt.data.schema import EmoCueSample
from xemogpt.evaluation.evaluate import (
    _worked_examples,
    build_extractor,
    discrete_emotion_scores,
    labels_from_text,
    ovmer_scores,
    score_texts,
)
from xemogpt.evaluation.report import write_report

SMILE = "The corners of her mouth turn up."
SAMPLES = [
    EmoCueSample(id="s1", video="s1.mp4", emotion="happy", labels=["happy", "excited"],
                 cues={"visual": [SMILE]}, split="test"),
    EmoCueSample(id="s2", video="s2.mp4", emotion="sad", labels=["sad"], split="test"),
    EmoCueSample(id="s3", video="s3.mp4", emotion="angry", labels=["angry"], split="test"),
    EmoCueSample(id="s4", video="s4.mp4", emotion="sad", labels=["sad", "lonely"], split="test"),
]
TEXTS = [
    # concluded happy (the subtitle sentence is about the wording and is not used); names {happy, excited}
    f"{SMILE} The subtitle sounds sad. Overall, she is joyful and excited.",
    "His voice is flat. He is calm.",  # concluded neutral (wrong); names {neutral}
    "He shouts.",  # names no emotion: wrong, and an empty OV-MER prediction
    "She looks down. She feels lonely, angry and sad.",  # concluded sad (the last named); names {lonely, angry, sad}
]


def test_labels_from_text_uses_the_vocabulary_and_skips_sentences_about_the_words():
    vocab = ("angry", "excited", "happy", "lonely", "neutral", "sad")
    assert labels_from_text(TEXTS[0], vocab) == ["excited", "happy"]
    assert labels_from_text(TEXTS[3], vocab) == ["angry", "lonely", "sad"]
    assert labels_from_text("The words sound sad.", vocab) == ["sad"]  # nothing else names one
    assert labels_from_text("He shouts.", vocab) == [] and labels_from_text("", vocab) == []


def test_discrete_and_ovmer_hand_computed():
    d = discrete_emotion_scores(SAMPLES, TEXTS)
    # refs [happy, sad, angry, sad], preds [happy, neutral, none, sad]
    assert d["accuracy"] == pytest.approx(0.5) and d["war"] == pytest.approx(0.5) and d["n"] == 4
    assert d["uar"] == pytest.approx((1 + 0.5 + 0) / 3)  # happy 1/1, sad 1/2, angry 0/1
    # F1: happy 1 (support 1), sad P 1 R 1/2 -> 2/3 (support 2), angry 0 (support 1)
    assert d["weighted_f1"] == pytest.approx((1 + 2 * (2 / 3)) / 4, abs=1e-6)
    ov = ovmer_scores(SAMPLES, TEXTS)
    # s1 {happy, excited} vs the same -> 1, 1;  s2 {sad} vs {neutral} -> 0, 0;  s3 empty prediction -> 0, 0;
    # s4 {sad, lonely} vs {lonely, angry, sad} -> P 2/3, R 1
    assert ov["n"] == 4
    assert ov["precision"] == pytest.approx((1 + 2 / 3) / 4) and ov["recall"] == pytest.approx(0.5)
    assert ov["avg"] == pytest.approx(((1 + 2 / 3) / 4 + 0.5) / 2)
    assert discrete_emotion_scores([EmoCueSample(id="x", video="x.mp4")], ["He is happy."]) is None


@pytest.fixture(scope="module")
def offline():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    ext, name = build_extractor("offline")
    yield ext
    torch.set_num_threads(threads)


def test_score_texts_and_report_worked_examples(offline, tmp_path):
    res = score_texts(SAMPLES, TEXTS, offline)
    assert res["emotion_accuracy"] == pytest.approx(0.5) and res["n"] == 4
    assert res["discrete"]["weighted_f1"] == pytest.approx(7 / 12, abs=1e-6)
    assert res["ovmer"]["recall"] == pytest.approx(0.5)
    # only s1 has reference cues (visual); the extractor puts its first sentence under visual, verbatim
    assert res["emocue360"]["visual"]["n"] == 1 and res["emocue360"]["visual"]["recall"] == pytest.approx(1, abs=1e-5)
    assert res["emocue360"]["auditory"]["n"] == 0

    cues = offline.extract(TEXTS)
    records = [{"id": s.id, "prediction": t, "reference": s.description, "emotion": s.emotion, "subtitle": "",
                "cues": c} for s, t, c in zip(SAMPLES, TEXTS, cues)]
    worked = _worked_examples(records, SAMPLES, k=2)
    assert len(worked) == 4
    assert worked[0]["predicted_emotion"] == "happy" and worked[1]["predicted_emotion"] == "neutral"
    assert "predicted_emotion" not in worked[2]
    assert worked[0]["emocue360"]["visual"]["f1"] == pytest.approx(1, abs=1e-5)
    assert worked[0]["emocue360"]["auditory"] is None  # no reference cue: skipped
    report = write_report({"split": "test", "extractor": "offline", "model": res}, worked, tmp_path / "r.md")
    text = report.read_text()
    assert "# Evaluation report (test split, 4 samples)" in text
    assert "### s1 (label: happy, concluded: happy)" in text
    assert f"| visual | {SMILE} | {SMILE} | 1.000 / 1.000 / 1.000 |" in text
    assert "| auditory |" in text and "skipped (no reference cue)" in text
    assert "| emotion weighted F1 | 0.583 |" in text and "| emotion UAR | 0.500 |" in text
    assert f"| OV-MER P | {(1 + 2 / 3) / 4:.3f} |" in text


def test_build_extractor_from_a_recipe_mapping():
    from xemogpt.cues import OfflineCueExtractor
    from xemogpt.registry import RegistryError

    ext, name = build_extractor({"name": "offline", "use_similarity": False})
    assert isinstance(ext, OfflineCueExtractor) and ext.use_similarity is False and name == "offline"
    assert build_extractor(ext) == (ext, "OfflineCueExtractor")
    with pytest.raises(RegistryError):
        build_extractor({"name": "offlin"})


# --- what an evaluated set and a run's training data allow (issue 16) ----------------------------------------------
def _write_manifest(root, samples):
    from xemogpt.data.schema import write_manifest

    write_manifest(root, samples)
    return root


def test_majority_baseline_is_built_from_what_it_needs_or_says_why(tmp_path):
    from xemogpt.evaluation.baselines import TrainingData, majority_baseline, run_training_data, shuffled_baseline

    train = [EmoCueSample(id="a", video="a.mp4", emotion="sad", description="She is sad.", split="train"),
             EmoCueSample(id="b", video="b.mp4", emotion="happy", description="He is happy.", split="train"),
             EmoCueSample(id="c", video="c.mp4", emotion="sad", description="She is sad.", split="train"),
             EmoCueSample(id="d", video="d.mp4", emotion="happy", description="x", split="test")]
    root = _write_manifest(tmp_path / "seen", train)
    seen = run_training_data({"data": {"root": str(root)}})
    assert [s.id for s in seen.samples] == ["a", "b", "c"] and seen.where == str(root)  # its train split only
    assert majority_baseline(seen, 2) == (["She is sad.", "She is sad."], None)

    gone = run_training_data({"data": {"root": str(tmp_path / "moved-away")}})
    assert gone.samples is None and "moved-away is not reachable" in gone.note
    assert majority_baseline(gone, 2) == (None, gone.note)
    assert "names no data.root" in run_training_data({"data": {}}).note
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "manifest.jsonl").write_bytes(b"\xff\xfe not a manifest")
    assert run_training_data({"data": {"root": str(bad)}}).samples == []  # unreadable records are dropped

    texts, why = majority_baseline(TrainingData([], "data/emer"), 3)
    assert texts is None and why == "the model's training data data/emer has no train split"
    unlabelled = TrainingData([EmoCueSample(id="u", video="u.mp4", description="d")], "data/x")
    assert "has no emotion labels" in majority_baseline(unlabelled, 3)[1]

    assert shuffled_baseline(["only one"]) == (None, "needs at least two predictions, got 1")
    derangement, why = shuffled_baseline(["a", "b", "c"])
    assert why is None and sorted(derangement) == ["a", "b", "c"] and all(x != y for x, y in zip(derangement, "abc"))


def test_coverage_names_each_metric_the_data_cannot_support():
    from xemogpt.evaluation.coverage import EvaluationError, check_split, eval_splits, input_counts, not_reported

    assert eval_splits("all") == ("train", "val", "test") and eval_splits("val") == ("val",)
    with pytest.raises(EvaluationError, match="unknown split 'dev'"):
        eval_splits("dev")
    emer = [EmoCueSample(id="e1", video="e1.mp4", cues={"visual": ["A frown."]}, split="test"),
            EmoCueSample(id="e2", audio="e2.wav", subtitle="Hi.", split="test",
                         cues={"visual": ["A smile."], "auditory": ["The text is sad."]})]
    check_split(emer, "test", "data/emer")
    with pytest.raises(EvaluationError, match=r"no sample in the train split \(train 0, val 0, test 2\)"):
        check_split(emer, "train", "data/emer")
    model = {"emocue360": {"visual": {"n": 2}, "auditory": {"n": 0}, "emotional": {"n": 0}}}
    assert not_reported(emer, model) == {
        "emotion accuracy, weighted F1, UAR, WAR": "the evaluated samples carry no emotion labels",
        "cues reproduced, cue precision": "the samples carry no canonical cue ids (only generated clips do)",
        "OV-MER": "the samples carry no open-vocabulary labels",
        "EmoCue-360 auditory": "no sample has a reference auditory cue that is not about the text",
        "EmoCue-360 emotional": "no sample has a reference emotional cue",
    }
    assert not_reported(SAMPLES, {"emocue360": {m: {"n": 1} for m in ("visual", "auditory", "emotional")}}) == {
        "cues reproduced, cue precision": "the samples carry no canonical cue ids (only generated clips do)"}
    assert input_counts(emer) == {"no_video": 1, "no_audio": 0, "no_subtitle": 1}


def test_scores_and_report_of_a_set_without_labels(offline, tmp_path):
    from xemogpt.evaluation.coverage import input_counts, not_reported
    from xemogpt.evaluation.report import coverage_lines, table

    emer = [EmoCueSample(id="e1", video="e1.mp4", cues={"visual": [SMILE]}, split="test"),
            EmoCueSample(id="e2", video="e2.mp4", cues={"visual": ["The brows pull down."]}, split="test")]
    texts = [TEXTS[0], "The brows pull down."]
    res = score_texts(emer, texts, offline)
    assert res["emotion_accuracy"] is None and "discrete" not in res and "ovmer" not in res
    assert res["emocue360"]["auditory"] == {"precision": None, "recall": None, "f1": None, "n": 0}  # not NaN
    assert res["emocue360"]["visual"]["n"] == 2
    results = {"split": "test", "extractor": "offline", "model": res, "not_reported": not_reported(emer, res),
               "inputs": input_counts(emer)}
    text = table(results)
    assert "EmoCue-360 visual F" in text and "auditory" not in text and "emotion accuracy" not in text
    lines = coverage_lines(results)
    assert "not reported: EmoCue-360 auditory: no sample has a reference auditory cue that is not about the text" in \
        lines
    assert lines[-1] == "inputs: without subtitle: 2 of 2 (the model ran without them)"
    report = write_report(results, [], tmp_path / "r.md").read_text()
    assert "- not reported: OV-MER: the samples carry no open-vocabulary labels" in report
