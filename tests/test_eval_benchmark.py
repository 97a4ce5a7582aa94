"""End to end: ``xemogpt eval`` of a trained run on benchmarks it was not trained on, imported as a user would.

- EMER-v2 style: ``name,chinese,english`` descriptions only (no emotion labels), every sample in test
  (``--split-ratios 0,0,1``), one row without a clip; the recipe's baselines on.
- MER style: the same descriptions with ``name,discrete`` labels but no train split, evaluated with
  ``--split all``.
- A moved run whose training data folder is gone: ``majority`` is skipped with a note, the rest is reported.

Both benchmarks hold a clip without an audio track, a sound file without video, and no subtitles.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
import yaml

from tests.conftest import tiny_overrides
from xemogpt.cli import main
from xemogpt.data.schema import read_manifest

pytestmark = pytest.mark.slow
N_CLIPS = 10  # synth clips used as the benchmark's media
NO_LABELS = "emotion accuracy, weighted F1, UAR, WAR"


@pytest.fixture(scope="module")
def run_dir(synth_root, tmp_path_factory) -> Path:
    """A tiny run trained on ``synth_root``: instruction tuning only (the other stages and the end-of-run evaluation
    are left out)."""
    from xemogpt.recipe import load_recipe
    from xemogpt.training.run import train_recipe

    out = tmp_path_factory.mktemp("evalrun") / "run"
    quick = ["stages.0.skip=true", "stages.1.skip=true", "eval.enabled=false",
             "stages.2.train=[video_bridge,audio_bridge,video_projector,audio_projector,llm_head]"]
    recipe = load_recipe("recipes/xemogpt-tiny.yaml", tiny_overrides(synth_root) + quick)
    assert recipe["eval"]["baselines"] is True  # the recipe asks for baselines
    train_recipe(recipe, out)
    return out


def _emer_paragraph(s) -> str:
    """An EMER-v2 style English paragraph from a generated clip's cues (quoted subtitle as in the published file)."""
    return (f"In the video, {' '.join(s.cues['visual'])} In the audio, {' '.join(s.cues['auditory'])} "
            f"In the text, the subtitle reads: \"{s.subtitle}\" {' '.join(s.cues['emotional'])}")


@pytest.fixture(scope="module")
def benchmark(synth_root, tmp_path_factory) -> dict[str, Path]:
    """final-EMER-reason.csv (as published: name,chinese,english), MER-style labels and a clip folder."""
    folder = tmp_path_factory.mktemp("bench")
    clips = folder / "clips"
    clips.mkdir()
    picked = read_manifest(synth_root)[:N_CLIPS]
    for i, s in enumerate(picked):
        name = f"sample_{i:08d}"
        if i == 0:
            _strip_audio(synth_root / s.video, clips / f"{name}.mp4")  # a clip without an audio track
        elif i == 1:
            _audio_only(synth_root / s.video, clips / f"{name}.wav")  # a sound file without video
        else:
            (clips / f"{name}.mp4").symlink_to(synth_root / s.video)
    desc, labels = folder / "final-EMER-reason.csv", folder / "label.csv"
    with open(desc, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["name", "chinese", "english"])
        for i, s in enumerate(picked):
            w.writerow([f"sample_{i:08d}", "在视频中，人物的表情有所变化。", _emer_paragraph(s)])
        w.writerow(["sample_99999999", "没有视频。", "In the video, nothing; the clip is missing."])
    with open(labels, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["name", "discrete"])
        w.writerows([f"sample_{i:08d}", s.emotion] for i, s in enumerate(picked))
    return {"descriptions": desc, "labels": labels, "clips": clips, "folder": folder}


def _strip_audio(src: Path, dst: Path) -> None:
    """Remux ``src``'s video stream alone into ``dst`` (no re-encoding)."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        vout = out.add_stream_from_template(vin)
        for packet in inp.demux(vin):
            if packet.dts is None:
                continue
            packet.stream = vout
            out.mux(packet)


def _audio_only(src: Path, dst: Path) -> None:
    """The sound of ``src`` as a 16 kHz mono WAV."""
    import wave

    import numpy as np

    from xemogpt.data.decode import decode_audio

    pcm = (np.clip(decode_audio(src, 16000, None), -1, 1) * 32767).astype("<i2")
    with wave.open(str(dst), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(pcm.tobytes())


def _import(benchmark: dict[str, Path], out: Path, ratios: str, labels: bool = False) -> None:
    args = ["data", "import", "--format", "emer_v2", "--descriptions", str(benchmark["descriptions"]),
            "--media", str(benchmark["clips"]), "--out", str(out), "--split-ratios", ratios]
    assert main(args + (["--labels", str(benchmark["labels"])] if labels else [])) == 0


def _majority_emotion(root: Path) -> str:
    return Counter(s.emotion for s in read_manifest(root, "train")).most_common(1)[0][0]


def test_eval_on_emer_descriptions_only(run_dir, benchmark, synth_root, capsys):
    from xemogpt.metrics.emocue360 import emocue360

    data = benchmark["folder"] / "emer"
    _import(benchmark, data, "0,0,1")
    imported = read_manifest(data)
    assert len(imported) == N_CLIPS and {s.split for s in imported} == {"test"}
    assert not any(s.emotion or s.labels for s in imported)  # descriptions only
    assert "sample_99999999" in (data / "import_log.txt").read_text()
    capsys.readouterr()

    assert main(["eval", "--checkpoint", str(run_dir), "--data", str(data)]) == 0
    printed = capsys.readouterr().out
    out = run_dir / "eval-test"
    m = json.loads((out / "metrics.json").read_text())
    assert m["split"] == "test" and m["model"]["n"] == N_CLIPS
    # what descriptions alone allow: EmoCue-360 per modality, for the model and both baselines
    assert set(m["not_reported"]) == {NO_LABELS, "cues reproduced, cue precision", "OV-MER"}
    # a clip counts for a modality when its description gave it a reference cue (auditory: one not about the text)
    with_refs = {mod: sum(any("text" not in c for c in s.cues[mod]) if mod == "auditory" else bool(s.cues[mod])
                          for s in imported) for mod in ("visual", "auditory", "emotional")}
    assert with_refs["visual"] == N_CLIPS and with_refs["auditory"] > 0 and with_refs["emotional"] > 0
    for system in ("model", "majority", "shuffled"):
        assert m[system]["emotion_accuracy"] is None and "discrete" not in m[system] and "ovmer" not in m[system]
        for mod in ("visual", "auditory", "emotional"):
            assert m[system]["emocue360"][mod]["n"] == with_refs[mod] and 0 <= m[system]["emocue360"][mod]["f1"] <= 1
    # majority comes from the run's own training data (most frequent train emotion), not from the benchmark
    assert m["majority_from"] == str(synth_root)
    train = read_manifest(synth_root, "train")
    assert m["majority_description"] in {s.description for s in train if s.emotion == _majority_emotion(synth_root)}
    assert m["inputs"] == {"no_video": 1, "no_audio": 1, "no_subtitle": N_CLIPS}
    # the model's EmoCue-360 is the metric of its extracted cues against the imported reference cues
    preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert sorted(p["id"] for p in preds) == sorted(s.id for s in imported)
    direct = emocue360({p["id"]: p["cues"] for p in preds}, {s.id: s.cues for s in imported})
    assert m["model"]["emocue360"]["visual"]["f1"] == pytest.approx(direct["visual"]["f1"], abs=1e-6)
    for line in ("EmoCue-360 visual F", "EmoCue-360 emotional F",
                 f"not reported: {NO_LABELS}: the evaluated samples carry no emotion labels",
                 f"majority baseline from the train split of {synth_root}",
                 f"inputs: without video: 1 of {N_CLIPS}; without audio: 1 of {N_CLIPS}; "
                 f"without subtitle: {N_CLIPS} of {N_CLIPS}"):
        assert line in printed, line
    assert "emotion accuracy  " not in printed  # no row of dashes for a metric the data cannot give
    report = (out / "report.md").read_text()
    assert "- not reported: OV-MER: the samples carry no open-vocabulary labels" in report
    assert "(label: none, concluded:" in report


def test_eval_with_labels_but_no_train_split(run_dir, benchmark, synth_root, capsys):
    data = benchmark["folder"] / "mer"
    _import(benchmark, data, "0,1,1", labels=True)
    imported = read_manifest(data)
    splits = Counter(s.split for s in imported)
    assert len(imported) == N_CLIPS and splits["train"] == 0 and all(s.emotion for s in imported)
    capsys.readouterr()

    # a split the dataset does not have is one error line naming what it holds
    assert main(["eval", "--checkpoint", str(run_dir), "--data", str(data), "--split", "train"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and f"(train 0, val {splits['val']}, test {splits['test']})" in err
    assert "--split all" in err

    out = benchmark["folder"] / "mer-eval"
    assert main(["eval", "--checkpoint", str(run_dir), "--data", str(data), "--split", "all",
                 "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["split"] == "all" and m["model"]["n"] == N_CLIPS  # every sample, whatever its split
    assert set(m["not_reported"]) == {"cues reproduced, cue precision"}
    for system in ("model", "majority", "shuffled"):
        assert {"discrete", "ovmer"} <= set(m[system]) and m[system]["discrete"]["n"] == N_CLIPS
    # the majority description concludes the run's most frequent training emotion for every clip: its accuracy is
    # that emotion's share of the benchmark's labels
    emotion = _majority_emotion(synth_root)
    share = sum(s.emotion == emotion for s in imported) / N_CLIPS
    assert m["majority"]["emotion_accuracy"] == pytest.approx(share)
    assert m["majority"]["discrete"]["war"] == pytest.approx(share)


def test_moved_run_skips_majority_with_a_note(run_dir, benchmark, tmp_path, capsys):
    data = benchmark["folder"] / "emer"
    if not (data / "manifest.jsonl").exists():
        _import(benchmark, data, "0,0,1")
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.copy(run_dir / "model.ckpt", moved / "model.ckpt")
    recipe = yaml.safe_load((run_dir / "recipe.yaml").read_text())
    recipe["data"]["root"] = str(tmp_path / "gone")  # the training data stayed behind on another machine
    (moved / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    capsys.readouterr()

    assert main(["eval", "--checkpoint", str(moved), "--data", str(data)]) == 0
    printed = capsys.readouterr().out
    m = json.loads((moved / "eval-test" / "metrics.json").read_text())
    assert "majority" not in m and "shuffled" in m and m["model"]["n"] == N_CLIPS
    why = m["not_reported"]["majority baseline"]
    assert f"{tmp_path / 'gone'} is not reachable" in why
    assert f"not reported: majority baseline: {why}" in printed
