"""Recipes mixing any registered video bridge with any projector and LLM head build and train for a few steps."""

from __future__ import annotations

import pytest
import torch

from tests import test_zoo_fixtures as fx
from tests.test_zoo_fixtures import one_thread  # noqa: F401  (autouse)
from xemogpt import registry
from xemogpt.llm.tokenizer import tokenizer_to_json
from xemogpt.models.xemogpt import XEmoGPT

VIDEO_BRIDGES = sorted(e.name for e in registry.entries("video_bridge"))
AUDIO_BRIDGES = sorted(e.name for e in registry.entries("audio_bridge"))
PROJECTORS = sorted(e.name for e in registry.entries("projector"))
LLMS = sorted(fx.LM_TINY)
INSTRUCT = {"name": "instruct", "train": ["video_bridge", "audio_bridge", "video_projector", "audio_projector",
                                          "llm_head"], "losses": ["lm"], "lr": 3e-3}


def bridge_spec(name: str) -> dict:
    spec = {"name": name}
    if name != "none":
        spec["proj_dim"] = 16
    if name == "vecb":
        spec["num_frames"] = 4
    if name == "qformer":
        spec["num_queries"] = 3
    return spec


def components(video_bridge: str, audio_bridge: str, projector: str, llm: str, text_encoder=None) -> dict:
    proj = {"name": projector, **({"num_queries": 3} if projector == "qformer" else {})}
    spec = {
        "video_encoder": {"name": "tiny-cnn", "dim": 32, "channels": [8, 16], "image_size": 32},
        "audio_encoder": {"name": "logmel-conv", "dim": 32, "channels": [16, 16], "n_mels": 32, "n_fft": 256},
        "video_bridge": bridge_spec(video_bridge),
        "audio_bridge": bridge_spec(audio_bridge),
        "video_projector": proj,
        "audio_projector": proj,
        "llm_head": {"name": "causal-lm", "arch": llm, "config": fx.LM_TINY[llm], "tokenizer": "build",
                     "max_length": 480},
    }
    if text_encoder:
        spec["text_encoder"] = text_encoder
    return spec


@pytest.fixture(scope="module")
def tokenizer_json():
    return tokenizer_to_json(fx.make_tokenizer())


def combos():
    """Every video bridge, every projector and every LLM shape at least once (rotating partners)."""
    n = max(len(VIDEO_BRIDGES), len(PROJECTORS), len(LLMS))
    return [(VIDEO_BRIDGES[i % len(VIDEO_BRIDGES)], AUDIO_BRIDGES[(i + 1) % len(AUDIO_BRIDGES)],
             PROJECTORS[i % len(PROJECTORS)], LLMS[i % len(LLMS)]) for i in range(n)]


@pytest.mark.parametrize("combo", combos(), ids=lambda c: "-".join(c))
def test_mixed_recipe_trains_a_few_steps(combo, tokenizer_json):
    torch.manual_seed(0)
    model = XEmoGPT(components(*combo), tokenizer_json=tokenizer_json, stage=INSTRUCT)
    batch = fx.fake_batch()
    tokens = model.modality_tokens(batch)
    v, vmask = tokens["video"]
    n_video = 3 if "qformer" in (combo[0], combo[2]) else 4
    assert v.shape == (4, n_video, model.llm_head.hidden_size) and vmask.shape == (4, n_video)
    opt = torch.optim.AdamW(model.trainable_parameters(), lr=3e-3)
    losses = []
    for _ in range(6):
        loss = model.compute_losses(batch)["lm"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0], losses
    # the encoders are frozen in this stage: untouched and in eval mode
    assert all(p.grad is None for p in model.video_encoder.parameters())
    assert not model.video_encoder.training and not model.audio_encoder.training
    texts = model.generate(batch, max_new_tokens=3)
    assert len(texts) == 4


def test_qformer_bridges_pretrain_and_fit_with_lightning(tokenizer_json, tmp_path):
    import lightning as L

    torch.manual_seed(0)
    spec = components("qformer", "aecb", "attention-fusion", "gpt2",
                      text_encoder={"name": "sentence-transformers", "path": None})
    model = XEmoGPT(spec, tokenizer_json=tokenizer_json,
                    stage={"name": "bridge_pretrain", "train": ["video_bridge", "audio_bridge"],
                           "losses": ["vecb", "aecb"], "lr": 1e-3})
    batch = fx.fake_batch()
    losses = model.compute_losses(batch)
    assert set(losses) == {"vecb/contrastive", "aecb/contrastive"}
    model.set_stage(INSTRUCT)
    loader = torch.utils.data.DataLoader([batch, fx.fake_batch(seed=1)], batch_size=None)
    trainer = L.Trainer(max_steps=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(tmp_path))
    trainer.fit(model, train_dataloaders=loader)
    assert trainer.global_step == 2
