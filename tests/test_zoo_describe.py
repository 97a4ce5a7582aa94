"""``xemogpt zoo --describe`` on the paper recipe (meta device, no weights) and the missing-weights check."""

from __future__ import annotations

import json

import pytest

from tests.test_zoo_fixtures import one_thread  # noqa: F401  (autouse)
from xemogpt.checkpointing.errors import MissingWeightsError
from xemogpt.cli import main
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


def test_train_cli_stops_at_once_listing_every_missing_folder(capsys):
    """`xemogpt train --recipe recipes/xemogpt-paper.yaml` without the weights: one error naming each folder."""
    import time
    from pathlib import Path

    folders = ["checkpoints/clip-vit-large-patch14", "checkpoints/chinese-hubert-large", "checkpoints/LaBSE",
               "checkpoints/Qwen3-4B"]
    if any(Path(f).exists() for f in folders):
        pytest.skip("some of the paper's weights are present on this machine")
    start = time.perf_counter()
    assert main(["train", "--recipe", PAPER, "--check"]) == 2  # a message, not a traceback
    assert time.perf_counter() - start < 30  # nothing is built: recipe checks and file-system lookups only
    msg = capsys.readouterr().err
    assert msg.startswith("error: ") and "Traceback" not in msg
    for key, folder in (("model.video_encoder.path", folders[0]), ("model.audio_encoder.path", folders[1]),
                        ("model.text_encoder.video.path", folders[0]), ("model.text_encoder.audio.path", folders[2]),
                        ("model.llm_head.path", folders[3])):
        line = next(ln for ln in msg.splitlines() if key + ":" in ln)
        assert folder in line and "put " in line, line
    assert "CLIPModel" in msg and "HuBERT" in msg and "sentence-transformers" in msg and "causal-LM" in msg
    assert "checkpoints/README.md" in msg


def test_describe_reads_architectures_from_the_folders_without_opening_weights(tmp_path):
    """With weights folders present, describe takes each architecture from its folder's configs; the weight files
    are never opened (here they are overwritten with garbage) and the counts equal those of the loaded model."""
    from tests import test_zoo_fixtures as fx
    from xemogpt import registry
    from xemogpt.checkpointing.errors import ComponentFileError
    from xemogpt.models.xemogpt import XEmoGPT

    clip, hubert = fx.make_clip_folder(tmp_path), fx.make_speech_folder(tmp_path, "hubert")
    st, lm = fx.make_sentence_transformers_folder(tmp_path), fx.make_lm_folder(tmp_path, "qwen3")
    model = {
        "video_encoder": {"name": "hf-clip-vision", "path": str(clip)},
        "audio_encoder": {"name": "hf-speech", "path": str(hubert)},
        "text_encoder": {"name": "per-modality", "video": {"name": "clip-text", "path": str(clip)},
                         "audio": {"name": "sentence-transformers", "path": str(st)}},
        "video_bridge": {"name": "vecb", "num_frames": 4, "proj_dim": 16},
        "audio_bridge": {"name": "aecb", "proj_dim": 16},
        "video_projector": {"name": "linear"}, "audio_projector": {"name": "linear"},
        "llm_head": {"name": "causal-lm", "path": str(lm), "train_mode": "lora",
                     "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "k_proj", "v_proj"]}},
    }
    recipe = {"name": "tiny-folders", "model": model, "data": {"num_frames": 4, "max_seconds": 1.0},
              "stages": [{"name": "instruct", "train": ["video_projector", "audio_projector", "llm_head"],
                          "losses": ["lm"]}]}
    loaded = XEmoGPT(model)
    counts = {k: getattr(loaded, k).num_parameters() for k in loaded.component_names()}
    lora = sum(p.numel() for n, p in loaded.llm_head.named_parameters() if "lora_" in n)
    weights = [p for p in tmp_path.rglob("*") if p.suffix in (".safetensors", ".bin")]
    assert len(weights) >= 4
    for p in weights:
        p.write_bytes(b"not a weights file")
    with pytest.raises(ComponentFileError, match="model.video_encoder.path.*unreadable"):  # loading really fails now
        registry.build("video_encoder", model["video_encoder"], "model.video_encoder")
    desc = describe_model(recipe)
    rows = {r["key"]: r for r in desc["components"]}
    for key, n in counts.items():
        assert rows[key]["params"] + rows[key]["adapter_params"] == n, key
    assert rows["llm_head"]["adapter_params"] == lora
    assert desc["totals"]["trainable"]["instruct"] == lora + counts["video_projector"] + counts["audio_projector"]
    s = desc["shapes"]
    assert s["frames"] == [1, 4, 3, 36, 36]  # the folder's preprocessor_config.json: shortest edge 36
    assert s["video_encoder"] == s["video_bridge"] == [1, 4, 32] and s["video_projector"] == [1, 4, 32]
    assert s["audio"] == [1, 16000] and s["audio_encoder"] == [1, 199, 32]  # 80 samples per token
    assert s["llm_head"] == [1, 4 + 199 + 64, loaded.llm_head.output_dim]
    assert desc["missing_weights"] == []
