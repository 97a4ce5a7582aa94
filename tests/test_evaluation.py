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
