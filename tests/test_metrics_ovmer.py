"""OV-MER on files written in the published layouts, the emotion-wheel variant, and the discrete metrics."""

from __future__ import annotations

import csv
import json
import math
import zipfile

import numpy as np
import pytest
import torch

from xemogpt.metrics.discrete import UnweightedAverageRecall, accuracy, discrete_scores, war, weighted_f1
from xemogpt.metrics.labels_io import (
    LabelFormatError,
    load_synonyms,
    parse_groups,
    parse_label_list,
    read_openset_csv,
)
from xemogpt.metrics.ovmer import OVMER, ovmer, synonym_map
from xemogpt.metrics.ovmer_wheel import OVMERWheel, load_wheel, ovmer_wheel

REF_ROWS = [
    ("s1", "['happy', 'Excited']"),
    ("s2", "['sad']"),
    ("s3", "['angry', 'annoyed']"),
    ("s4", "['surprised']"),
    ("s5", "[]"),  # no reference label: skipped
]
PRED_ROWS = [
    ("s1", "['joyful', 'nervous']"),
    ("s2", "[]"),  # empty prediction: 0, 0
    ("s3", "['Annoyed', 'irritated', 'angry']"),
    ("s4", "['surprised', 'happy']"),
    ("s5", "['calm']"),
]
SYNONYMS = {  # s4 has no synonym file
    "s1": "[['happy', 'joyful'], ['excited'], ['nervous', 'anxious']]",
    "s2": "[['sad', 'sorrowful']]",
    "s3": "[['angry', 'annoyed', 'irritated']]",
    "s5": "[['calm']]",
}
# s1: G={happy, excited} Q={happy, nervous} -> P 1/2 R 1/2;  s2: Q empty -> 0, 0;  s3: G={angry} Q={angry} -> 1, 1
# s4: G={surprised} Q={surprised, happy} -> P 1/2 R 1;  s5 skipped.
EXP_P, EXP_R = (0.5 + 0 + 1 + 0.5) / 4, (0.5 + 0 + 1 + 1) / 4


def _write_csv(path, rows, column="openset"):
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["name", column])
        w.writerows(rows)


@pytest.fixture()
def published(tmp_path):
    _write_csv(tmp_path / "ref.csv", REF_ROWS)
    _write_csv(tmp_path / "pred.csv", PRED_ROWS)
    folder = tmp_path / "openset-synonym"
    folder.mkdir()
    for name, groups in SYNONYMS.items():
        np.save(folder / f"{name}.npy", np.array(groups))  # one unicode string per file, as MER2024 stores them
    with zipfile.ZipFile(tmp_path / "openset-synonym.zip", "w") as zf:
        for name in SYNONYMS:
            zf.write(folder / f"{name}.npy", f"openset-synonym/{name}.npy")
    return tmp_path


def test_ovmer_hand_computed_folder_and_zip(published):
    ref = read_openset_csv(published / "ref.csv")
    pred = read_openset_csv(published / "pred.csv")
    for syn_path in (published / "openset-synonym", published / "openset-synonym.zip"):
        res = ovmer(pred, ref, load_synonyms(syn_path), per_sample=True)
        assert res["precision"] == pytest.approx(EXP_P)
        assert res["recall"] == pytest.approx(EXP_R)
        assert res["avg"] == pytest.approx((EXP_P + EXP_R) / 2)
        assert res["fscore"] == pytest.approx(2 * EXP_P * EXP_R / (EXP_P + EXP_R))
        assert res["n"] == 4 and res["skipped_empty_ref"] == 1 and res["no_synonyms"] == 1
        assert res["per_sample"]["s1"] == {"precision": 0.5, "recall": 0.5}


def test_ovmer_without_synonyms_and_missing_prediction():
    res = ovmer({"a": ["Happy"]}, {"a": "['happy', 'glad']", "b": "['sad']"})
    # a: G={happy, glad} Q={happy} -> 1, .5;  b: no prediction -> 0, 0
    assert res["precision"] == pytest.approx(0.5) and res["recall"] == pytest.approx(0.25)
    assert res["missing_pred"] == 1


def test_ovmer_empty_prediction_rule_comes_before_the_empty_reference():
    """As in MER2024's loop: an empty prediction scores 0, 0 and is counted even when the reference is empty;
    only an empty reference with a non-empty prediction (recall 0/0) is skipped."""
    ref = {"a": "[]", "b": "[]", "c": "['sad']", "d": "['Happy', 'glad']"}
    pred = {"a": "[]", "b": "['calm']", "d": "['joyful', 'sad']"}
    syn = {"d": "[['happy', 'joyful', 'glad']]"}
    res = ovmer(pred, ref, syn, per_sample=True)
    # a: G={} Q={} -> 0, 0 counted;  b: G={} Q={calm} -> skipped;  c: no prediction -> 0, 0;
    # d: G={happy} Q={happy, sad} -> P 1/2, R 1
    assert res["n"] == 3 and res["skipped_empty_ref"] == 1 and res["missing_pred"] == 1
    assert res["per_sample"]["a"] == {"precision": 0.0, "recall": 0.0} and "b" not in res["per_sample"]
    assert res["precision"] == pytest.approx(0.5 / 3) and res["recall"] == pytest.approx(1 / 3)
    assert res["avg"] == pytest.approx((0.5 / 3 + 1 / 3) / 2)
    metric = OVMER()
    names = ["a", "b", "c", "d"]
    metric.update([pred.get(n, "[]") for n in names], [ref[n] for n in names], [syn.get(n, "[]") for n in names])
    out = metric.compute()
    assert out["n"].item() == 3 and metric.skipped.item() == 1
    assert out["precision"].item() == pytest.approx(0.5 / 3) and out["recall"].item() == pytest.approx(1 / 3)


def test_cli_score_ovmer(published, capsys):
    from xemogpt.cli import main

    args = ["score", "ovmer", "--pred", str(published / "pred.csv"), "--ref", str(published / "ref.csv"),
            "--synonyms", str(published / "openset-synonym.zip")]
    assert main([*args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["precision"] == pytest.approx(EXP_P) and out["recall"] == pytest.approx(EXP_R)
    assert main(args) == 0
    assert "0.5000" in capsys.readouterr().out  # precision printed as set-level accuracy


def test_pickled_npy_is_refused_with_the_file_name(tmp_path):
    folder = tmp_path / "syn"
    folder.mkdir()
    np.save(folder / "bad.npy", np.array([["a", "b"], ["c"]], dtype=object), allow_pickle=True)
    with pytest.raises(LabelFormatError, match=r"bad\.npy.*pickle"):
        load_synonyms(folder)
    with pytest.raises(FileNotFoundError):
        load_synonyms(tmp_path / "missing")


def test_parsers_and_synonym_map():
    for mode in ("published", "literal"):
        assert parse_label_list("['happy', 'sad']", mode=mode) == ["happy", "sad"]
        assert parse_label_list("[happy, sad]", mode=mode) == ["happy", "sad"]  # unquoted, as some tools write it
        assert parse_label_list("happy, sad", mode=mode) == ["happy", "sad"]
        assert parse_label_list(float("nan"), mode=mode) == [] and parse_label_list("", mode=mode) == []
        assert parse_label_list(None, mode=mode) == [] and parse_label_list("[]", mode=mode) == []
        assert parse_groups("[['a', 'b'], ['c']]", mode=mode) == [["a", "b"], ["c"]]
        assert parse_groups(np.array("[['a', 'b'], ['c']]").tolist(), mode=mode) == [["a", "b"], ["c"]]
        assert parse_groups([["a", "b"], ["c"]], mode=mode) == [["a", "b"], ["c"]]
        assert parse_groups(["a", "b"], mode=mode) == [["a", "b"]]
    with pytest.raises(ValueError, match="parse mode"):
        parse_label_list("['a']", mode="ast")
    # a word in several groups takes the last group (the published loop overwrites)
    assert synonym_map([["a", "b"], ["c", "b"]]) == {"a": "a", "b": "c", "c": "c"}


def test_published_split_and_the_literal_option_on_apostrophes_and_commas():
    apostrophe, comma = "[\"don't believe\", 'doubt']", "['happy, worried']"
    assert parse_label_list(apostrophe) == ["don", "t believe", "doubt"]
    assert parse_label_list(apostrophe, mode="literal") == ["don't believe", "doubt"]
    assert parse_label_list(comma) == ["happy", "worried"] and parse_label_list(comma, mode="literal") == [comma[2:-2]]
    assert parse_label_list('["at one\'s wits\' end"]') == ["at one", "s wits", "end"]
    assert parse_label_list('["at one\'s wits\' end"]', mode="literal") == ["at one's wits' end"]
    assert parse_label_list("[") == []  # the published split raises IndexError here
    # groups: the published split cuts on quotes only and keeps words as written
    groups = "[[\"don't\", 'glad'], ['a, b']]"
    assert parse_groups(groups) == [["don", "t", "glad"], ["a, b"]]
    assert parse_groups(groups, mode="literal") == [["don't", "glad"], ["a, b"]]


def test_ovmer_published_and_literal_scores(tmp_path, capsys):
    from xemogpt.cli import main

    # x is MER2024's sample_00001774 in small: its synonym file was built from the published split ("don", "t
    # believe"), so only the published split maps "don't believe" into the reference groups
    ref = {"x": "['anger', 'doubt']", "y": "['happy', 'worried']"}
    pred = {"x": "[\"don't believe\", 'doubt']", "y": "['happy, worried']"}
    syn = {"x": "[['t believe', 'doubt'], ['displeasure', 'don', 'anger']]", "y": "[['happy'], ['worried']]"}
    pub = ovmer(pred, ref, syn, per_sample=True)
    # x: G {displeasure, t believe}, Q {displeasure, t believe} -> 1, 1;  y: Q {happy, worried} -> 1, 1
    assert pub["per_sample"] == {"x": {"precision": 1.0, "recall": 1.0}, "y": {"precision": 1.0, "recall": 1.0}}
    lit = ovmer(pred, ref, syn, per_sample=True, parse="literal")
    # x: Q {don't believe, t believe} -> 1/2, 1/2;  y: Q {"happy, worried"} -> 0, 0
    assert lit["per_sample"] == {"x": {"precision": 0.5, "recall": 0.5}, "y": {"precision": 0.0, "recall": 0.0}}
    metric = OVMER(parse="literal")
    metric.update([pred["x"], pred["y"]], [ref["x"], ref["y"]], [syn["x"], syn["y"]])
    assert metric.compute()["precision"].item() == pytest.approx(0.25)

    _write_csv(tmp_path / "ref.csv", list(ref.items()))
    _write_csv(tmp_path / "pred.csv", list(pred.items()))
    folder = tmp_path / "syn"
    folder.mkdir()
    for name, groups in syn.items():
        np.save(folder / f"{name}.npy", np.array(groups))
    args = ["score", "ovmer", "--pred", str(tmp_path / "pred.csv"), "--ref", str(tmp_path / "ref.csv"),
            "--synonyms", str(folder), "--json"]
    assert main(args) == 0 and json.loads(capsys.readouterr().out)["precision"] == 1.0
    assert main([*args, "--label-parse", "literal"]) == 0
    assert json.loads(capsys.readouterr().out)["precision"] == pytest.approx(0.25)


def test_cells_pandas_reads_as_missing_are_empty(tmp_path):
    _write_csv(tmp_path / "x.csv", [("a", "None"), ("b", "nan"), ("c", ""), ("d", "none"), ("e", "['NA']")])
    # as pandas.read_csv gives them to the published code: "None", "nan", "" are NaN; "none" is a label
    assert read_openset_csv(tmp_path / "x.csv") == {"a": [], "b": [], "c": [], "d": ["none"], "e": ["NA"]}


def test_csv_without_the_column_names_it(tmp_path):
    _write_csv(tmp_path / "x.csv", [("s1", "['a']")], column="labels")
    with pytest.raises(LabelFormatError, match="no 'openset' column.*labels"):
        read_openset_csv(tmp_path / "x.csv")
    assert read_openset_csv(tmp_path / "x.csv", column="labels") == {"s1": ["a"]}


def test_ovmer_metric_matches_function():
    metric = OVMER()
    names = [n for n, _ in REF_ROWS]
    pred, ref = dict(PRED_ROWS), dict(REF_ROWS)
    groups = [SYNONYMS.get(n, "[]") for n in names]
    metric.update([pred[n] for n in names[:2]], [ref[n] for n in names[:2]], groups[:2])
    metric.update([pred[n] for n in names[2:]], [ref[n] for n in names[2:]], groups[2:])
    out = metric.compute()
    assert out["precision"].item() == pytest.approx(EXP_P) and out["recall"].item() == pytest.approx(EXP_R)
    assert out["n"].item() == 4
    with pytest.warns(UserWarning, match="before the ``update``"):
        assert math.isnan(OVMER().compute()["precision"].item())


# ---------------------------------------------------------------------------------------------------- wheel
WHEELS = {
    "wheels": {
        "w1": {"joy": {"happy": ["cheerful", "glad"], "content": ["calm"]},
               "sadness": {"grief": ["sorrowful"], "lonely": []}},
        "w2": {"positive": {"happy": ["cheerful", "content"]}, "negative": {"sad": ["lonely", "sorrowful"]}},
    },
    "synonyms": {"joyful": ["happy"], "blue": ["sad", "sorrowful"]},
}


def test_ovmer_wheel_hand_computed(tmp_path):
    path = tmp_path / "wheels.json"
    path.write_text(json.dumps(WHEELS))
    ref = {"a": "['happy', 'sad']", "b": "['calm']", "c": "['unknownword']"}
    pred = {"a": "['joyful', 'blue']", "b": "['cheerful', 'lonely']", "c": "['happy']"}
    res = ovmer_wheel(pred, ref, path, level="level1")
    # w1 level1: happy->joy, sad: not on w1 -> dropped; joyful->happy->joy; blue->{blue, sad, sorrowful}: sorrowful
    #   -> sadness.  a: G={joy} Q={joy, sadness} -> P .5 R 1.  b: G={joy (calm)} Q={joy, sadness} -> .5, 1.
    #   c: G empty -> skipped.  P=.5 R=1 F=2/3
    w1 = res["wheels"]["w1"]
    assert (w1["precision"], w1["recall"], w1["n"]) == (pytest.approx(0.5), pytest.approx(1.0), 2)
    # w2 level1: a: G={positive, negative} Q={positive, negative (blue->sad)} -> 1, 1.
    #   b: calm is not on w2 -> skipped.  P=1 R=1 F=1
    w2 = res["wheels"]["w2"]
    assert (w2["precision"], w2["recall"], w2["n"]) == (pytest.approx(1.0), pytest.approx(1.0), 1)
    assert res["fscore"] == pytest.approx((2 / 3 + 1) / 2)
    assert res["precision"] == pytest.approx(0.75) and res["recall"] == pytest.approx(1.0)

    # level2 on w1: joy -> its first child "content"; happy->happy, calm->content, cheerful->happy, lonely->lonely
    res2 = ovmer_wheel({"x": ["joy", "cheerful"]}, {"x": ["calm", "glad"]}, load_wheel(path), level="level2")
    # w1: G={content, happy} Q={content, happy} -> 1, 1;  w2: G={happy(glad?)}: glad not on w2 -> G={}; calm no
    assert res2["wheels"]["w1"]["fscore"] == pytest.approx(1.0)
    assert res2["wheels"]["w2"]["n"] == 0

    metric = OVMERWheel(str(path))
    metric.update([pred[k] for k in ref], [ref[k] for k in ref])
    out = metric.compute()
    assert out["fscore"].item() == pytest.approx(res["fscore"])


def test_wheel_csv_and_flat_mappings(tmp_path):
    (tmp_path / "wheel.csv").write_text("level1,level2,level3\njoy,happy,cheerful\n,,glad\nsadness,grief,\n")
    ew = load_wheel(tmp_path / "wheel.csv")
    assert ew.cluster_map("wheel", "level1") == {"joy": "joy", "happy": "joy", "cheerful": "joy", "glad": "joy",
                                                 "sadness": "sadness", "grief": "sadness"}
    (tmp_path / "flat.json").write_text(json.dumps({"Glad": "positive", "sad": "negative"}))
    res = ovmer_wheel({"x": ["glad", "sad"]}, {"x": ["positive"]}, tmp_path / "flat.json")
    assert res["precision"] == pytest.approx(0.5) and res["recall"] == pytest.approx(1.0)
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(LabelFormatError, match="level1,level2"):
        load_wheel(tmp_path / "bad.csv")


# ---------------------------------------------------------------------------------------------------- discrete
def test_discrete_hand_computed():
    refs = ["a", "a", "a", "b", "b", "c"]
    preds = ["a", "a", "b", "b", "c", "c"]
    res = discrete_scores(preds, refs)
    assert res["accuracy"] == pytest.approx(4 / 6) and res["war"] == pytest.approx(4 / 6)
    assert res["uar"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    # per-class F1: a (P 1, R 2/3) .8; b (P .5, R .5) .5; c (P .5, R 1) 2/3; weights 3:2:1
    assert res["weighted_f1"] == pytest.approx((0.8 * 3 + 0.5 * 2 + (2 / 3) * 1) / 6)


def test_discrete_unknown_prediction_and_uar_support():
    res = discrete_scores(["a", "x", "b"], ["A", "a", "b"])  # x is only predicted: not in UAR's average
    assert res["uar"] == pytest.approx((0.5 + 1) / 2) and res["accuracy"] == pytest.approx(2 / 3)
    res = discrete_scores(["a", "zzz"], ["a", "b"], labels=["a", "b"])  # outside the class list -> wrong
    assert res["accuracy"] == pytest.approx(0.5) and res["uar"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="not in the class list"):
        discrete_scores(["a"], ["q"], labels=["a"])


def test_registered_discrete_metrics_on_tensors():
    target = torch.tensor([0, 0, 0, 1, 1, 2])
    preds = torch.tensor([0, 0, 1, 1, 2, 2])
    assert accuracy(3)(preds, target).item() == pytest.approx(4 / 6)
    assert war(3)(preds, target).item() == pytest.approx(4 / 6)
    assert weighted_f1(3)(preds, target).item() == pytest.approx((0.8 * 3 + 0.5 * 2 + 2 / 3) / 6, abs=1e-6)
    uar = UnweightedAverageRecall(num_classes=4)  # class 3 never occurs: not averaged
    uar.update(preds[:3], target[:3])
    uar.update(preds[3:], target[3:])
    assert uar.compute().item() == pytest.approx((2 / 3 + 1 / 2 + 1) / 3, abs=1e-6)


def test_cli_score_discrete(tmp_path, capsys):
    from xemogpt.cli import main

    _write_csv(tmp_path / "r.csv", [("1", "a"), ("2", "a"), ("3", "b")], column="emotion")
    _write_csv(tmp_path / "p.csv", [("1", "a"), ("3", "b")], column="emotion")
    assert main(["score", "discrete", "--pred", str(tmp_path / "p.csv"), "--ref", str(tmp_path / "r.csv"),
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["accuracy"] == pytest.approx(2 / 3) and out["missing_pred"] == 1
