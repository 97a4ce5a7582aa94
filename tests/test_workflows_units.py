"""Fast checks of the workflow pieces that need no training: statistics, ablation files, the report from run
folders, the mood dataset's annotations, fine-tune recipe resolution, and the explanation page."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from xemogpt.workflows.stats import diff_ci, mean_ci, t975

TINY = Path("recipes/xemogpt-tiny.yaml").resolve()


# --- statistics ---------------------------------------------------------------------------------------------------
def test_t_quantiles_match_tables():
    assert t975(1) == pytest.approx(12.706)
    assert t975(2) == pytest.approx(4.303)
    assert t975(30) == pytest.approx(2.042)
    assert t975(2.5) == pytest.approx((4.303 + 3.182) / 2)
    assert t975(60) == pytest.approx(2.000, abs=2e-3)
    assert t975(120) == pytest.approx(1.980, abs=2e-3)
    with pytest.raises(ValueError):
        t975(0)


def test_mean_ci_and_differences_by_hand():
    iv = mean_ci([1.0, 2.0, 3.0])
    assert iv.mean == pytest.approx(2.0)
    assert iv.half == pytest.approx(4.303 * 1.0 / np.sqrt(3))
    assert iv.format() == "2.000 ± 2.484"
    one = mean_ci([0.25])
    assert one.half is None and one.format() == "0.250 (n=1)" and not one.excludes_zero
    # paired over shared seeds: differences 1, 1, 3
    d = diff_ci({0: 1.0, 1: 2.0, 2: 4.0}, {0: 0.0, 1: 1.0, 2: 1.0})
    assert d.mean == pytest.approx(5 / 3)
    assert d.half == pytest.approx(4.303 * np.std([1, 1, 3], ddof=1) / np.sqrt(3))
    assert d.format(signed=True).startswith("+1.667 ± ")
    # constant paired gain: zero-width interval that excludes zero
    assert diff_ci({0: 0.5, 1: 0.6}, {0: 0.4, 1: 0.5}).excludes_zero
    # no shared seeds: Welch
    w = diff_ci({0: 1.0, 1: 3.0}, {5: 0.0, 6: 0.0, 7: 3.0})
    va, vb = np.var([1, 3], ddof=1) / 2, np.var([0, 0, 3], ddof=1) / 3
    df = (va + vb) ** 2 / (va**2 / 1 + vb**2 / 2)
    assert w.mean == pytest.approx(2.0 - 1.0)
    assert w.half == pytest.approx(t975(df) * np.sqrt(va + vb))


# --- ablation files ---------------------------------------------------------------------------------------------------
def _write_ablation(tmp_path: Path, body: dict) -> Path:
    p = tmp_path / "ab.yaml"
    body = {"name": "t", "base": str(TINY), "out": str(tmp_path / "out"), **body}
    p.write_text(yaml.safe_dump(body, sort_keys=False))
    return p


def test_cells_are_the_product_minus_exclusions(tmp_path):
    from xemogpt.workflows.ablate import load_ablation

    # on/off unquoted: YAML reads them as booleans, the loader keeps the names
    text = f"""
name: grid
base: {TINY}
seeds: [0, 1]
axes:
  video_bridge:
    vecb: {{}}
    none: {{model.video_bridge: {{name: none}}}}
  audio_bridge:
    aecb: {{}}
    none: {{model.audio_bridge: {{name: none}}}}
  tasks:
    on: {{}}
    off: {{model.video_bridge.tasks: []}}
exclude: [{{video_bridge: none, tasks: off}}]
baseline: {{video_bridge: vecb, audio_bridge: aecb, tasks: on}}
out: {tmp_path / 'o'}
"""
    p = tmp_path / "grid.yaml"
    p.write_text(text)
    ab = load_ablation(p, ["stages.2.epochs=1"])
    cells = ab.cells()
    assert [c.label for c in cells] == ["vecb/aecb/on", "vecb/aecb/off", "vecb/none/on", "vecb/none/off",
                                        "none/aecb/on", "none/none/on"]
    assert ab.baseline_cell().name == "vecb_aecb_on"
    r = ab.recipe(cells[3], 1)
    assert r["model"]["video_bridge"]["tasks"] == [] and r["model"]["audio_bridge"] == {"name": "none"}
    assert r["seed"] == 1 and r["stages"][2]["epochs"] == 1 and r["name"] == "grid/vecb_none_off/seed-1"
    assert ab.run_dir(cells[0], 1) == tmp_path / "o" / "runs" / "vecb_aecb_on" / "seed-1"
    ab.validate()


def test_ablation_errors_name_the_problem(tmp_path):
    from xemogpt.workflows.ablate import AblationError, load_ablation

    with pytest.raises(AblationError, match="Did you mean 'seeds'"):
        load_ablation(_write_ablation(tmp_path, {"seed": [0], "axes": {"a": {"x": {}}}}))
    with pytest.raises(AblationError, match="baseline a=z"):
        load_ablation(_write_ablation(tmp_path, {"axes": {"a": {"x": {}}}, "baseline": {"a": "z"}}))
    # a none bridge takes no 'tasks': validation names the cell and suggests exclude
    ab = load_ablation(_write_ablation(tmp_path, {"axes": {
        "vb": {"vecb": {}, "none": {"model.video_bridge": {"name": "none"}}},
        "tasks": {"on": {}, "off": {"model.video_bridge.tasks": []}}}}))
    with pytest.raises(AblationError, match=r"cell none/off .*exclude"):
        ab.validate()
    # two values that mean the same recipe
    ab = load_ablation(_write_ablation(tmp_path, {"axes": {"a": {"x": {}, "y": {"seed": 0}}}}))
    with pytest.raises(AblationError, match="same recipe"):
        ab.validate()


def test_run_state(tmp_path):
    from xemogpt.recipe import save_recipe
    from xemogpt.workflows.ablate import run_state

    recipe = {"name": "r", "seed": 0, "stages": [{"name": "s", "epochs": 1}]}
    d = tmp_path / "run"
    assert run_state(d, recipe) == "new"
    d.mkdir()
    save_recipe(recipe, d / "recipe.yaml")
    assert run_state(d, recipe) == "partial"
    (d / "summary.json").write_text(json.dumps({"metrics": {}}))
    assert run_state(d, recipe) == "done"
    assert run_state(d, {**recipe, "seed": 1}) == "stale"


# --- the report from run folders ------------------------------------------------------------------------------------
def _metrics(acc: float, vis: float) -> dict:
    mods = ("visual", "auditory", "emotional")
    return {"emotion_accuracy": acc, "n": 10,
            "cues": {m: {"reproduced": vis, "precision": 0.5, "n_ref": 20} for m in mods},
            "emocue360": {m: {"precision": 0.4, "recall": 0.6, "f1": vis / 2, "n": 10} for m in mods}}


def _fake_run(ab, cell, seed, acc, vis):
    from xemogpt.recipe import save_recipe

    d = ab.run_dir(cell, seed)
    (d / "logs" / "instruct").mkdir(parents=True)
    (d / "checkpoints").mkdir()
    (d / "checkpoints" / "1-instruct.ckpt").write_bytes(b"")
    save_recipe(ab.recipe(cell, seed), d / "recipe.yaml")
    rows = ["epoch,step,train/loss_step,train/loss_epoch"] + [f"0,{s},{3.0 - 0.1 * s + seed * 0.01},"
                                                               for s in range(1, 9)] + ["0,8,,2.5"]
    (d / "logs" / "instruct" / "metrics.csv").write_text("\n".join(rows) + "\n")
    m = {"split": "test", "model": _metrics(acc, vis), "majority": _metrics(1 / 7, 0.2)}
    (d / "summary.json").write_text(json.dumps({"metrics": m, "timings_s": {"total": 10.0 + seed}}))


def test_report_tables_plots_and_recipes_from_runs(tmp_path):
    from xemogpt.workflows.ablate import load_ablation
    from xemogpt.workflows.ablate_report import write_ablation_report

    ab = load_ablation(_write_ablation(tmp_path, {"seeds": [0, 1, 2], "axes": {
        "video_bridge": {"vecb": {}, "none": {"model.video_bridge": {"name": "none"}}}}}))
    base, other = ab.cells()
    accs = {0: 0.5, 1: 0.6, 2: 0.7}
    for s in (0, 1, 2):
        _fake_run(ab, base, s, accs[s], 0.8)
        _fake_run(ab, other, s, accs[s] - 0.10 - 0.02 * s, 0.4)
    report = write_ablation_report(ab).read_text()
    exp = mean_ci([0.5, 0.6, 0.7]).format()
    assert exp == "0.600 ± 0.248"
    row = next(line for line in report.splitlines() if line.startswith("| **vecb** (base)"))
    assert exp in row and "0.800 ± 0.000" in row
    other_accs = {0: 0.4, 1: 0.48, 2: 0.56}
    assert any(line.startswith("| none |") and "0.480 ± 0.199" in line for line in report.splitlines())
    diff = diff_ci(other_accs, accs).format(signed=True)  # paired: -0.10, -0.12, -0.14
    assert diff == "-0.120 ± 0.050"
    assert f"{diff} *" in report  # the interval excludes zero
    assert "-0.400 ± 0.000 *" in report  # visual cues reproduced: 0.4 - 0.8 on every seed
    assert "*majority baseline*" in report and "0.143 ± 0.000" in report
    for name in ("metrics.png", "delta.png", "curves.png"):
        data = (ab.out / "plots" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, name
        assert f"plots/{name}" in report
    for cell in (base, other):
        saved = yaml.safe_load((ab.out / "recipes" / f"{cell.name}.yaml").read_text())
        assert saved["model"]["video_bridge"]["name"] == cell.name
    res = json.loads((ab.out / "results.json").read_text())
    assert res["cells"][1]["diff_from_base"]["emotion_accuracy"]["mean"] == pytest.approx(-0.12)
    assert (ab.out / "results.csv").read_text().count("\n") == 7
    # a run made from another recipe no longer counts
    (ab.run_dir(other, 2) / "recipe.yaml").write_text(yaml.safe_dump({**ab.recipe(other, 2), "seed": 9}))
    report = write_ablation_report(ab).read_text()
    assert "0, 1" in report and mean_ci([0.4, 0.48]).format() in report


def test_curve_reader_prefers_step_losses(tmp_path):
    from xemogpt.workflows.ablate_plots import read_curve

    p = tmp_path / "metrics.csv"
    p.write_text("epoch,step,train/loss_epoch\n0,3,2.0\n1,7,1.5\n")
    steps, losses, col = read_curve(p)
    assert col == "train/loss_epoch" and steps.tolist() == [3, 7] and losses.tolist() == [2.0, 1.5]
    assert read_curve(tmp_path / "missing.csv") is None


# --- the mood dataset -------------------------------------------------------------------------------------------------
def test_mood_annotations_are_new_labels_with_matching_cues():
    from xemogpt.cues.vocabulary import EMOTIONS, emotion_from_text, parse_description
    from xemogpt.workflows.moods import MOODS, annotate_moods

    samples = annotate_moods(40, seed=5)
    again = annotate_moods(40, seed=5)
    assert [s.to_dict() for s in samples] == [s.to_dict() for s in again]
    assert not set(MOODS) & set(EMOTIONS)
    assert {s.emotion for s in samples} == set(MOODS)
    assert {s.split for s in samples} == {"train", "val", "test"}
    vocab = tuple(MOODS) + tuple(EMOTIONS)
    for s in samples:
        # every mood is read back from its own description, and never as a base emotion
        assert emotion_from_text(s.description, vocab) == s.emotion
        assert emotion_from_text(s.description) in (None, *EMOTIONS) and emotion_from_text(s.description) != s.emotion
        parsed = parse_description(s.description)
        assert parsed["visual"] == s.cue_ids["visual"] and parsed["auditory"] == s.cue_ids["auditory"]
        assert set(s.meta["visual_cues"]) == set(s.cue_ids["visual"])
        frequent = "blinks=frequent" in s.cue_ids["visual"]
        assert (len(s.meta["face"]["blinks"]) == 3) == frequent
        assert s.meta["voice"]["tremor"] == ("tremor=present" in s.cue_ids["auditory"])


# --- fine-tune recipes ------------------------------------------------------------------------------------------------
def test_finetune_recipe_resolution(tmp_path):
    from xemogpt.recipe import RecipeError, load_recipe
    from xemogpt.workflows.finetune import finetune, resolve_finetune_recipe

    with pytest.raises(RecipeError, match="training recipe"):
        finetune(load_recipe(TINY), tmp_path / "run")
    with pytest.raises(FileNotFoundError, match="train it first"):
        finetune({"finetune": {"from": str(tmp_path / "nope")}}, tmp_path / "run")

    base = {"name": "b", "seed": 3, "data": {"root": "old", "synth": {"n": 5}, "num_frames": 8, "batch_size": 16},
            "trainer": {"precision": "32-true"}, "generation": {"max_new_tokens": 99}}
    ft = {"name": "f", "finetune": {"from": "runs/b"}, "data": {"root": "new", "batch_size": 4},
          "stages": [{"name": "ft", "train": ["llm_head"], "losses": ["lm"], "epochs": 1}]}
    r = resolve_finetune_recipe(ft, base, {"llm_head": {"name": "causal-lm"}}, "runs/b")
    assert r["data"] == {"root": "new", "num_frames": 8, "batch_size": 4}
    assert r["generation"]["max_new_tokens"] == 99 and r["seed"] == 3 and r["checkpoint"] == "runs/b"
    assert r["model"] == {"llm_head": {"name": "causal-lm"}}
    with pytest.raises(RecipeError, match="data.root"):
        resolve_finetune_recipe({**ft, "data": {}}, base, {}, "x")
    with pytest.raises(RecipeError, match="remove the 'model'"):
        resolve_finetune_recipe({**ft, "model": {}}, base, {}, "x")
    with pytest.raises(RecipeError, match="stages"):
        resolve_finetune_recipe({**ft, "stages": []}, base, {}, "x")


def test_shipped_recipes_parse():
    from xemogpt.recipe import load_recipe
    from xemogpt.workflows.ablate import load_ablation

    for p in sorted(Path("recipes/ablations").glob("*.yaml")):
        ab = load_ablation(p)
        ab.validate()
        assert len(ab.seeds) >= 3 and len(ab.cells()) >= 2
    for p in sorted(Path("recipes/finetune").glob("*.yaml")):
        r = load_recipe(p)
        assert r["finetune"]["from"] and r["data"]["root"] and r["stages"]


# --- the explanation page ---------------------------------------------------------------------------------------------
def test_html_page_is_self_contained(tmp_path):
    from xemogpt.workflows.attention import ModalityAttention
    from xemogpt.workflows.explain import Explanation
    from xemogpt.workflows.html import write_html

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (4, 36, 48, 3), dtype=np.uint8)
    att = ModalityAttention(video=[0.1, 0.4, 0.2, 0.3], audio=[0.05, 0.2, 0.1], share={"video": 0.3, "audio": 0.2,
                                                                                     "text": 0.5}, tokens=12)
    ex = Explanation(clip="a <b>.mp4", audio_file=None, subtitle="I <3 this", checkpoint="runs/x",
                     description="The mouth corners turn up. Overall, the person most likely feels happy.",
                     emotion="happy", cues={"visual": ["The mouth corners turn up."], "auditory": [], "emotional": []},
                     reasoning=["Overall, the person most likely feels happy."], attention=att, frames=frames,
                     frame_times=[0.1, 0.3, 0.5, 0.7], waveform=rng.normal(size=4800).astype(np.float32) * 0.1,
                     sample_rate=16000, audio_spans=[(0.0, 0.08), (0.08, 0.16), (0.16, 0.24)],
                     media={"has_video": True, "width": 48, "height": 36, "fps": 10.0, "duration_s": 0.8})
    assert ex.top_frames() == [1, 3, 2] and ex.top_audio_spans(1) == [1]
    page = write_html(ex, tmp_path / "x.html").read_text()
    assert "<script" not in page.lower() and "http://" not in page and "https://" not in page
    assert "a &lt;b&gt;.mp4" in page and "I &lt;3 this" in page
    uris = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(uris) == 5  # four frames and the audio figure
    assert all(base64.b64decode(u)[:4] == b"\x89PNG" for u in uris)
    assert page.count('class="frame top"') == 3
    js = ex.to_json()
    assert js["attention"]["frames"][1] == {"index": 1, "time_s": 0.3, "weight": 0.4}
    assert js["attention"]["audio"][2]["start_s"] == 0.16
    json.dumps(js)
