"""AffectGPT's emotion-wheel OV-MER from a folder in the published layout (wheel*.xlsx, synonym.xlsx, format.csv)
that the test writes with openpyxl, every variant hand-computed; the hand-made mapping files; the eval hook."""

from __future__ import annotations

import csv
import json

import pytest
from openpyxl import Workbook

from xemogpt.metrics.labels_io import LabelFormatError, read_openset_csv
from xemogpt.metrics.ovmer_wheel import OVMERWheel, ew_level1, load_wheel, ovmer_wheel, ovmer_wheel_published
from xemogpt.metrics.wheel_folder import cluster_map, load_wheel_folder, read_wheel_xlsx

# wheel1: the published column order. "annoyed" has no level3 word, so the published reader files the level3 word
# above it ("furious") under "annoyed" too; "content" is on the middle ring (joy) and the outer ring (sadness).
WHEEL1 = [("level1", "level2", "level3"),
          ("Joy", "Happy", "Cheerful"), (None, None, "Glad"), (None, "Content", "Calm"),
          ("Anger", "Mad", "Furious"), (None, "Annoyed", None),
          ("Sadness", "Lonely", "Content")]
# wheel2: other column order, an extra column, padded capitals (as wheel5.xlsx), level1 as merged cells, a "calm"
# row without level3 (repeats "cheerful" under calm), and a trailing empty row.
WHEEL2 = [("level2", "note", "level1", "level3"),
          (" Happy ", "x", " Positive ", " Glad "), (None, None, None, "Cheerful"), ("Calm", None, None, None),
          ("Sad", None, "Negative", "Lonely"), (None, None, None, None)]
SYNONYMS = [("word_run1", "synonym_run1", "word_run2", "synonym_run2"),
            ("happy", "joyful, delighted", "Happy", "joyful"),  # the same word in both runs
            ("furious", "enraged", "sad", "blue, down"),  # blue: a synonym of lonely (run1) and sad (run2)
            ("lonely", "alone, blue", "glad", "None"),  # "None" is a missing value to pandas: no synonyms
            ("cheerful", None, None, None)]  # run2 is shorter
FORMAT = [("happy", "happy,happily"), ("joyful", "joyful,joy"), ("delighted", "delighted"),
          ("furious", "furious,fury"), ("enraged", "enraged,rage"), ("lonely", "lonely,loneliness"),
          ("alone", "alone,down"), ("blue", "blue"), ("sad", "sad,sadness"), ("down", ""), ("glad", "glad"),
          ("cheerful", "cheerful,cheerfully")]
REF = [("s1", "['Happy', 'furious']"), ("s2", "['sadness']"), ("s3", "['xyz']"), ("s4", "['down']"),
       ("s5", "['glad', 'Loneliness']"), ("s6", "['happily']"), ("s7", "['Cheerfully']")]
PRED = [("s1", "['joy', 'rage', 'blue']"), ("s2", "['lonely']"), ("s3", "['happy']"), ("s4", "[]"),
        ("s5", "[\"don't know\", 'glad']"), ("s7", "['happy']")]  # s6 has no prediction


def _xlsx(path, rows, merge=None, extra_sheet=False):
    wb = Workbook()
    ws = wb.active
    for row in rows:
        ws.append(list(row))
    if merge:
        ws.merge_cells(merge)
    if extra_sheet:
        wb.create_sheet("notes").append(["not", "a", "wheel"])
    wb.save(path)


def _csv(path, header, rows):
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


@pytest.fixture()
def folder(tmp_path):
    d = tmp_path / "emotion_wheel"
    d.mkdir()
    _xlsx(d / "wheel1.xlsx", WHEEL1, extra_sheet=True)
    _xlsx(d / "wheel2.xlsx", WHEEL2, merge="C2:C4")
    _xlsx(d / "synonym.xlsx", SYNONYMS)
    _csv(d / "format.csv", ["name", "format"], FORMAT)
    _csv(tmp_path / "ref.csv", ["name", "openset"], REF)
    _csv(tmp_path / "pred.csv", ["name", "openset"], PRED)
    return d


def test_wheel_sheets_read_as_published(folder):
    w1, w2 = read_wheel_xlsx(folder / "wheel1.xlsx"), read_wheel_xlsx(folder / "wheel2.xlsx")
    assert w1 == {"joy": {"happy": ["cheerful", "glad"], "content": ["calm"]},
                  "anger": {"mad": ["furious"], "annoyed": ["furious"]}, "sadness": {"lonely": ["content"]}}
    assert w2 == {"positive": {"happy": ["glad", "cheerful"], "calm": ["cheerful"]}, "negative": {"sad": ["lonely"]}}
    l1, l2 = cluster_map(w1, "level1"), cluster_map(w1, "level2")
    assert l1["content"] == "sadness" and l1["furious"] == "anger"  # the later ring wins
    assert l2["content"] == "lonely" and l2["furious"] == "annoyed" and l2["joy"] == "content"  # first child
    assert l2["anger"] == "annoyed" and cluster_map(w2, "level2")["cheerful"] == "calm"
    ew = load_wheel_folder(folder)
    assert list(ew.wheels) == ["wheel1", "wheel2"]
    assert ew.synonyms["blue"] == {"lonely", "sad"} and ew.synonyms["happy"] == {"happy"}
    assert ew.synonyms["glad"] == {"glad"} and "none" not in ew.synonyms
    assert ew.forms["down"] == {"alone", "down"} and ew.forms["joy"] == {"joyful"}
    assert ew.variants == ["case1", "case2", "case3_wheel1_level1", "case3_wheel1_level2", "case3_wheel2_level1",
                           "case3_wheel2_level2"]
    # "sadness" is a wheel1 word, but the published normalisation goes through the synonym table only: sad is
    # not on wheel1, so it is dropped there
    assert ew.normalise("sadness", "case3_wheel1_level1") is None
    assert ew.normalise("sadness", "case3_wheel2_level1") == "negative"
    assert ew.normalise("down", "case1") == "alone" and ew.normalise("down", "case2") == "lonely"
    with pytest.raises(ValueError, match="unknown variant"):
        ew.normalise("happy", "case3_wheel9_level1")


def test_every_published_variant_hand_computed(folder):
    ref = read_openset_csv(folder.parent / "ref.csv")
    pred = read_openset_csv(folder.parent / "pred.csv")
    res = ovmer_wheel_published(pred, ref, folder)
    v = res["variants"]
    # normalised (s3's "xyz" and s5's "don" / "t know" are no word form; s6 has no prediction; s4's is empty):
    # case1: s1 {happy, furious} vs {joyful, enraged, blue} 0,0; s2 {sad} vs {lonely} 0,0; s4 {alone} vs {} 0,0;
    #   s5 {glad, lonely} vs {glad} 1,1/2; s6 {happy} vs {} 0,0; s7 {cheerful} vs {happy} 0,0
    expect = {"case1": (1 / 6, 1 / 12, 1 / 9, 6)}
    # case2: s1 {happy, furious} vs {happy, furious, lonely} 2/3,1; s5 1,1/2; the others 0,0
    expect["case2"] = (5 / 18, 1 / 4, 5 / 19, 6)
    # wheel1 (both levels): s1 2/3,1; s2 skipped (sad is not on wheel1); s4 0,0; s5 1,1/2; s6 0,0; s7 1,1
    expect["case3_wheel1_level1"] = expect["case3_wheel1_level2"] = (8 / 15, 1 / 2, 16 / 31, 5)
    # wheel2 level1: s1 {positive} vs {positive, negative} 1/2,1; s2 1,1; s4 0,0; s5 1,1/2; s6 0,0; s7 1,1
    expect["case3_wheel2_level1"] = (7 / 12, 7 / 12, 7 / 12, 6)
    # wheel2 level2: as level1 but s7 {calm} (cheerful's later ring) vs {happy} 0,0
    expect["case3_wheel2_level2"] = (5 / 12, 5 / 12, 5 / 12, 6)
    assert list(v) == list(expect)
    for name, (p, r, f, n) in expect.items():
        assert (v[name]["precision"], v[name]["recall"], v[name]["fscore"], v[name]["n"]) == (
            pytest.approx(p, abs=1e-15), pytest.approx(r, abs=1e-15), pytest.approx(f, abs=1e-15), n), name
    assert v["case3_wheel2_level1"]["dropped_ref"] == 2 and v["case3_wheel2_level1"]["dropped_pred"] == 3
    assert v["case1"]["skipped_empty_ref"] == 1 and v["case3_wheel1_level1"]["skipped_empty_ref"] == 2
    for level, (a, b) in (("level1", ("case3_wheel1_level1", "case3_wheel2_level1")),
                          ("level2", ("case3_wheel1_level2", "case3_wheel2_level2"))):
        for k, i in (("fscore", 2), ("precision", 0), ("recall", 1)):
            assert res[level][k] == pytest.approx((expect[a][i] + expect[b][i]) / 2, abs=1e-15)
    assert res["mer2025"] == pytest.approx((res["level1"]["fscore"] + res["level2"]["fscore"]) / 2, abs=1e-15)
    assert res["samples"] == 7 and res["missing_pred"] == 1
    assert res["not_in_format"] == {"ref": 1, "pred": 2}
    # one level at a time, and the torchmetrics Metric agree with the full report
    one = ovmer_wheel(pred, ref, folder, "level2")
    assert one["fscore"] == pytest.approx(res["level2"]["fscore"], abs=1e-15)
    metric = OVMERWheel(str(folder), level="level1")
    names = [n for n, _ in REF]
    metric.update([pred.get(n, []) for n in names[:3]], [ref[n] for n in names[:3]])
    metric.update([pred.get(n, []) for n in names[3:]], [ref[n] for n in names[3:]])
    out = metric.compute()
    assert out["fscore"].item() == pytest.approx(res["level1"]["fscore"], abs=1e-12)
    assert ew_level1(pred, ref, folder)["n"] == {"wheel1": 5, "wheel2": 6}


def test_empty_predictions_score_zero_and_f_is_zero_when_p_plus_r_is_zero(folder):
    res = ovmer_wheel_published({"a": "[]"}, {"a": "['happy']", "b": "['glad']"}, folder)
    for v in res["variants"].values():
        assert (v["precision"], v["recall"], v["fscore"], v["n"]) == (0.0, 0.0, 0.0, 2)
    assert res["missing_pred"] == 1 and res["mer2025"] == 0.0
    nothing = ovmer_wheel_published({}, {"a": "['xyz']"}, folder)["variants"]["case1"]
    assert nothing["n"] == 0 and nothing["fscore"] != nothing["fscore"]  # no sample kept: NaN


def test_cli_published_folder_and_the_sheet_alone(folder, capsys):
    from xemogpt.cli import main

    files = ["--pred", str(folder.parent / "pred.csv"), "--ref", str(folder.parent / "ref.csv")]
    assert main(["score", "ovmer-wheel", *files, "--wheels", str(folder), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["level1"]["fscore"] == pytest.approx((16 / 31 + 7 / 12) / 2)
    assert main(["score", "ovmer-wheel", *files, "--wheels", str(folder)]) == 0
    text = capsys.readouterr().out
    assert "case3_wheel2_level2" in text and "MER2025 score" in text and "1 ref / 2 pred not a word form" in text
    # one published sheet alone is refused with the fix; before, it was read as text ('utf-8' codec ...)
    assert main(["score", "ovmer-wheel", *files, "--wheel", str(folder / "wheel1.xlsx")]) == 2
    assert f"--wheels {folder}" in capsys.readouterr().err
    assert main(["score", "ovmer-wheel", *files, "--wheels", str(folder / "wheel1.xlsx")]) == 2
    assert "emotion_wheel folder" in capsys.readouterr().err


def test_a_wheel_sheet_outside_the_folder_is_a_hand_made_wheel(folder, tmp_path):
    sheet = tmp_path / "mine.xlsx"
    sheet.write_bytes((folder / "wheel1.xlsx").read_bytes())
    ew = load_wheel(sheet)
    assert ew.cluster_map("mine", "level1")["glad"] == "joy"
    res = ovmer_wheel({"x": ["glad", "calm", "zzz"]}, {"x": ["cheerful"]}, sheet)
    assert res["precision"] == 1.0 and res["wheels"]["mine"]["n"] == 1
    (tmp_path / "notes.txt").write_text("joy: happy")
    with pytest.raises(LabelFormatError, match="unknown wheel file type '.txt'"):
        load_wheel(tmp_path / "notes.txt")
    (tmp_path / "fake.json").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(LabelFormatError, match="not UTF-8"):
        load_wheel(tmp_path / "fake.json")
    (tmp_path / "broken.xlsx").write_text("not a workbook")
    with pytest.raises(LabelFormatError, match="broken.xlsx: not a readable .xlsx"):
        load_wheel(tmp_path / "broken.xlsx")


def test_broken_folders_name_the_file_row_and_word(folder):
    _xlsx(folder / "synonym.xlsx", [("word_run1", "synonym_run1"), ("happy", "glad"), ("ecstatic", "thrilled")])
    with pytest.raises(LabelFormatError, match=r"synonym.xlsx row 3, word_run1: 'ecstatic' is on no wheel"):
        load_wheel_folder(folder)
    _xlsx(folder / "synonym.xlsx", [("word_run1", "synonym_run1"), ("happy", "joyful")])
    with pytest.raises(LabelFormatError, match=r"format.csv: base word\(s\) .*'alone'.* not in synonym.xlsx"):
        load_wheel_folder(folder)
    _xlsx(folder / "wheel2.xlsx", [("level1", "lvl2", "level3"), ("a", "b", "c")])
    with pytest.raises(LabelFormatError, match=r"wheel2.xlsx: no column level2 .*found: level1, lvl2, level3"):
        load_wheel_folder(folder)
    (folder / "format.csv").unlink()
    with pytest.raises(LabelFormatError, match="lacks format.csv"):
        load_wheel_folder(folder)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_wheel_folder(folder / "nope")


def test_eval_reports_the_level1_figure_beside_ovmer(folder):
    from xemogpt.data.schema import EmoCueSample
    from xemogpt.evaluation.evaluate import ovmer_scores
    from xemogpt.evaluation.report import metric_rows

    samples = [EmoCueSample(id="a", video="a.mp4", labels=["happy", "lonely"]),
               EmoCueSample(id="b", video="b.mp4", labels=["sad"])]
    texts = ["She is cheerful and happy.", "He feels lonely."]
    assert "ew_level1" not in ovmer_scores(samples, texts)
    ov = ovmer_scores(samples, texts, str(folder))
    # named labels from the vocabulary (references + built-in emotions): a {happy} (cheerful is not a label),
    # b {lonely}. wheel1: a {joy, sadness} vs {joy} 1, 1/2; b: sad is not on wheel1, skipped -> P 1, R 1/2, F 2/3.
    # wheel2: a {positive, negative} vs {positive} 1, 1/2; b {negative} vs {negative} 1, 1 -> P 1, R 3/4, F 6/7.
    ew = ov["ew_level1"]
    assert ew["n"] == {"wheel1": 1, "wheel2": 2}
    assert ew["fscore"] == pytest.approx((2 / 3 + 6 / 7) / 2) and ew["recall"] == pytest.approx((1 / 2 + 3 / 4) / 2)
    rows = dict(metric_rows({"model": {"emocue360": {m: {"precision": 0, "recall": 0, "f1": 0, "n": 2}
                                                     for m in ("visual", "auditory", "emotional")}, "ovmer": ov}}))
    assert rows["OV-MER EW level-1 F"]["model"] == f"{(2 / 3 + 6 / 7) / 2:.3f}"
