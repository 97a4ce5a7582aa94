"""Every registered model component saves to a folder (spec JSON + safetensors) and is rebuilt from it alone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from tests import test_zoo_fixtures as fx
from tests.test_zoo_fixtures import one_thread  # noqa: F401  (autouse)
from xemogpt import registry
from xemogpt.checkpointing.components import load_component, save_component
from xemogpt.checkpointing.errors import ComponentFileError
from xemogpt.checkpointing.files import load_state_file

MODEL_KINDS = ("video_encoder", "audio_encoder", "text_encoder", "video_bridge", "audio_bridge", "projector",
               "llm_head")
WIRED = {"video_bridge": {"input_dim": 24, "text_dim": 16}, "audio_bridge": {"input_dim": 24, "text_dim": 16},
         "projector": {"input_dim": 24, "output_dim": 32}}


def case_specs(src) -> dict[tuple[str, str], dict]:
    """(kind, name) -> spec for a tiny instance whose pretrained files live under ``src``."""
    out = {
        ("video_encoder", "tiny-cnn"): {"dim": 16, "channels": [8, 8], "image_size": 32},
        ("video_encoder", "hf-clip-vision"): {"path": str(src / "clip-tiny")},
        ("video_encoder", "open-clip"): {"model": None, "config": fx.OPEN_CLIP_TINY,
                                         "checkpoint": str(src / "open-clip-tiny.pt")},
        ("video_encoder", "timm"): {"model": "vit_tiny_patch16_224", "model_args": fx.TIMM_TINY,
                                    "checkpoint": str(src / "timm-vit-tiny.safetensors")},
        ("audio_encoder", "logmel-conv"): {"dim": 16, "channels": [8, 8], "n_mels": 32, "n_fft": 256},
        ("audio_encoder", "hf-speech"): {"path": str(src / "hubert-tiny")},
        ("audio_encoder", "torchaudio-speech"): {"builder": "wav2vec2_model", "builder_args": fx.torchaudio_args(True),
                                                 "checkpoint": str(src / "torchaudio-hubert.pt")},
        ("text_encoder", "sentence-transformers"): {"path": str(src / "st-tiny")},
        ("text_encoder", "clip-text"): {"path": str(src / "clip-tiny")},
        ("text_encoder", "per-modality"): {"video": {"name": "clip-text", "path": str(src / "clip-tiny")},
                                           "audio": {"name": "sentence-transformers", "path": str(src / "st-tiny")}},
        ("projector", "linear"): {}, ("projector", "mlp"): {}, ("projector", "qformer"): {"num_queries": 3},
        ("projector", "attention-fusion"): {"context_dim": 16},
        ("llm_head", "causal-lm"): {"path": str(src / "lm-qwen3"), "train_mode": "lora",
                                    "lora": {"r": 4, "alpha": 8, "dropout": 0.0}},
    }
    for kind in ("video_bridge", "audio_bridge"):
        for e in registry.entries(kind):
            extra = {"num_frames": 8} if e.name == "vecb" else {}
            out[(kind, e.name)] = {**extra, **({"proj_dim": 8} if e.name not in ("none",) else {})}
    return out


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo-io-src")
    fx.make_clip_folder(root)
    fx.make_open_clip_file(root)
    fx.make_timm_file(root)
    fx.make_speech_folder(root, "hubert")
    fx.make_torchaudio_file(root, hubert_shaped=True)
    fx.make_sentence_transformers_folder(root)
    fx.make_lm_folder(root, "qwen3")
    return root


def run(kind: str, comp, seed: int = 0):
    """A deterministic output of ``comp`` for comparison."""
    g = torch.Generator().manual_seed(seed)
    comp.eval()
    with torch.no_grad():
        if kind == "video_encoder":
            return comp(torch.randint(0, 256, (1, 2, 3, 36, 40), generator=g, dtype=torch.uint8))
        if kind == "audio_encoder":
            mask = torch.ones(1, 8000, dtype=torch.bool)
            return comp(torch.randn(1, 8000, generator=g), mask)[0]
        if kind == "text_encoder":
            if type(comp).__name__ == "PerModalityTextEncoder":
                return torch.cat([comp.encode(fx.TEXTS[:2], "video"), comp.encode(fx.TEXTS[:2], "audio")])
            return comp.encode(fx.TEXTS[:2])
        if kind in ("video_bridge", "audio_bridge"):
            x = torch.randn(2, 5, 24, generator=g)
            return comp(x, torch.tensor([[True] * 5, [True] * 3 + [False] * 2]))
        if kind == "projector":
            x, mask = torch.randn(2, 5, 24, generator=g), torch.ones(2, 5, dtype=torch.bool)
            if getattr(comp, "uses_context", False):
                return comp(x, mask, context=torch.randn(2, 4, 16, generator=g),
                            context_mask=torch.ones(2, 4, dtype=torch.bool))[0]
            return comp(x, mask)[0]
        emb = torch.randn(1, 6, comp.hidden_size, generator=g)
        return comp(emb, torch.ones(1, 6, dtype=torch.long)).logits


def test_every_registered_model_component_is_covered(tmp_path):
    covered = set(case_specs(tmp_path))
    registered = {(k, e.name) for k in MODEL_KINDS for e in registry.entries(k)}
    assert registered <= covered, registered - covered


@pytest.mark.parametrize("case", sorted(case_specs(Path("."))), ids=lambda c: f"{c[0]}:{c[1]}")
def test_save_and_rebuild_from_the_component_folder_alone(case, sources, tmp_path):
    kind, name = case
    src = tmp_path / "src"
    shutil.copytree(sources, src)
    torch.manual_seed(0)
    comp = registry.build(kind, {"name": name, **case_specs(src)[case]}, f"model.{kind}", **WIRED.get(kind, {}))
    # change the weights from their initial values, as training would
    with torch.no_grad():
        for p in comp.parameters():
            p.add_(0.01)
    expected = run(kind, comp)
    folder = save_component(comp, tmp_path / "saved", kind)
    shutil.rmtree(src)  # the pretrained folders are gone: the component folder must be enough
    meta = json.loads((folder / "component.json").read_text())
    assert meta["kind"] == kind and meta["spec"]["name"] == name
    again = load_component(folder)
    assert type(again) is type(comp)
    assert again.num_parameters() == comp.num_parameters()
    assert again.num_parameters(trainable_only=True) == comp.num_parameters(trainable_only=True)
    assert torch.allclose(run(kind, again), expected, atol=1e-5)


def test_a_folder_for_another_architecture_is_refused(tmp_path):
    comp = registry.build("projector", {"name": "mlp"}, "p", input_dim=8, output_dim=16)
    folder = save_component(comp, tmp_path / "mlp")
    meta = json.loads((folder / "component.json").read_text())
    meta["spec"]["input_dim"] = 9
    (folder / "component.json").write_text(json.dumps(meta))
    with pytest.raises(ComponentFileError, match="weights.safetensors"):
        load_component(folder)
    with pytest.raises(ComponentFileError, match="component.json"):
        load_component(tmp_path / "nothing")


def test_state_files_are_read_safely(tmp_path):
    state = {"w": torch.ones(2)}
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "ddp.pt")
    assert torch.equal(load_state_file(tmp_path / "ddp.pt", "k")["w"], state["w"])
    torch.save({"w": torch.ones(2), "optimizer": object()}, tmp_path / "pickled.pt")
    with pytest.raises(ComponentFileError, match="weights_only"):
        load_state_file(tmp_path / "pickled.pt", "model.video_encoder.checkpoint")
