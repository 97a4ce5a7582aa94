"""``xemogpt zoo --describe`` on the paper recipe (meta device, no weights) and the missing-weights check."""

from __future__ import annotations

import json

import pytest

from tests.test_zoo_fixtures import one_thread  # noqa: F401  (autouse)
from xemogpt.cli import main
from xemogpt.components_io import MissingWeightsError
from xemogpt.describe import describe_model, missing_weights, require_weights
from xemogpt.recipe import load_recipe

PAPER = "recipes/xemogpt-paper.yaml"
PUBLISHED = {"video_encoder": 303e6, "audio_encoder": 316e6, "llm_head": 4.0e9}
LORA_QKV_QWEN3_4B = 36 * 512 * ((2560 + 4096) + 2 * (2560 + 1024))


@pytest.fixture(scope="module")
def paper():
    return describe_model(load_recipe(PAPER))


def test_paper_parameter_counts_match_the_published_models(paper):
    rows = {r["key"]: r for r in paper["components"]}
    for key, size in PUBLISHED.items():
        assert abs(rows[key]["params"] / size - 1) < 0.02, (key, rows[key]["params"])
    assert rows["llm_head"]["adapter_params"] == LORA_QKV_QWEN3_4B
    subs = {s["modality"]: s for s in rows["text_encoder"]["subcomponents"]}
    assert subs["video"]["name"] == "clip-text" and abs(subs["video"]["params"] / 123e6 - 1) < 0.02
    assert subs["audio"]["name"] == "sentence-transformers" and abs(subs["audio"]["params"] / 471e6 - 1) < 0.02


def test_paper_stages_train_what_the_paper_trains(paper):
    rows = {r["key"]: r for r in paper["components"]}
    assert paper["stages"] == ["bridge_pretrain", "align", "instruct"]
    for key in ("video_encoder", "audio_encoder", "text_encoder"):  # frozen throughout
        assert set(rows[key]["trainable"].values()) == {0}
    bridges = rows["video_bridge"]["params"] + rows["audio_bridge"]["params"]
    projectors = rows["video_projector"]["params"] + rows["audio_projector"]["params"]
    assert paper["totals"]["trainable"]["bridge_pretrain"] == bridges
    assert paper["totals"]["trainable"]["align"] == projectors == 2 * (1024 * 2560 + 2560)
    assert paper["totals"]["trainable"]["instruct"] == projectors + LORA_QKV_QWEN3_4B


def test_paper_shapes_between_components(paper):
    s = paper["shapes"]
    assert s["frames"] == [1, 16, 3, 224, 224]
    assert s["video_encoder"] == s["video_bridge"] == [1, 16, 1024] and s["video_projector"] == [1, 16, 2560]
    assert s["audio"] == [1, 192000]  # 12 s at 16 kHz
    assert s["audio_encoder"] == s["audio_bridge"] == [1, 599, 1024] and s["audio_projector"] == [1, 599, 2560]
    assert s["llm_head"] == [1, 16 + 599 + 64, 151936]


def test_missing_weights_lists_each_folder_and_what_belongs_there(tmp_path):
    recipe = load_recipe(PAPER)
    problems = missing_weights(recipe)
    expected = {"model.video_encoder.path": "clip-vit-large-patch14", "model.audio_encoder.path": "chinese-hubert",
                "model.text_encoder.video.path": "clip-vit-large-patch14", "model.text_encoder.audio.path": "LaBSE",
                "model.llm_head.path": "Qwen3-4B"}
    assert len(problems) == len(expected)
    for key, folder in expected.items():
        line = next(p for p in problems if p.startswith(key + ":"))
        assert folder in line and "put " in line
    with pytest.raises(MissingWeightsError) as e:
        require_weights(recipe)
    assert all(folder in str(e.value) for folder in expected.values())
    # folders that exist and hold a config pass; one without its config.json is named
    model = recipe["model"]
    for key in ("video_encoder", "audio_encoder", "llm_head"):
        d = tmp_path / key
        d.mkdir()
        (d / "config.json").write_text("{}")
        model[key]["path"] = str(d)
    st = tmp_path / "labse"
    st.mkdir()
    model["text_encoder"]["audio"]["path"] = str(st)
    model["text_encoder"]["video"]["path"] = str(tmp_path / "video_encoder")
    assert missing_weights(recipe) == [f"model.text_encoder.audio.path: folder {str(st)!r} lacks modules.json; it "
                                       "should hold a sentence-transformers folder (modules.json, config.json, "
                                       "weights, tokenizer)"]


def test_zoo_describe_cli_prints_table_and_json(capsys):
    assert main(["zoo", "--describe", PAPER]) == 0
    text = capsys.readouterr().out
    for needle in ("hf-clip-vision", "303.2M", "315.4M", "4.02B", "LoRA", "(B, 16, 1024)", "(B, 599, 2560)",
                   "checkpoints/Qwen3-4B"):
        assert needle in text, needle
    assert main(["zoo", "--describe", "recipes/xemogpt-tiny.yaml", "--json"]) == 0
    desc = json.loads(capsys.readouterr().out)
    assert desc["recipe"] == "xemogpt-tiny" and desc["missing_weights"] == []
    assert desc["shapes"]["video_encoder"] == [1, 16, 128] and desc["shapes"]["audio_projector"][-1] == 128
