"""Recipes mixing any registered video bridge with any projector and LLM head build and train for a few steps."""

from __future__ import annotations

import itertools

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
    """Every video bridge x every projector x every LLM shape; the audio bridge rotates so each is used too."""
    out = []
    for i, (vb, proj, llm) in enumerate(itertools.product(VIDEO_BRIDGES, PROJECTORS, LLMS)):
        out.append((vb, AUDIO_BRIDGES[i % len(AUDIO_BRIDGES)], proj, llm))
    return out


def test_the_mix_covers_the_whole_zoo():
    cs = combos()
    assert {(c[0], c[2], c[3]) for c in cs} == set(itertools.product(VIDEO_BRIDGES, PROJECTORS, LLMS))
    assert {c[1] for c in cs} == set(AUDIO_BRIDGES)
    assert {"vecb", "qformer", "none"} <= set(VIDEO_BRIDGES) and {"linear", "attention-fusion"} <= set(PROJECTORS)


@pytest.mark.parametrize("combo", combos(), ids=lambda c: "-".join(c))
def test_mixed_recipe_trains_a_few_steps(combo, tokenizer_json):
    torch.manual_seed(0)
    model = XEmoGPT(components(*combo), tokenizer_json=tokenizer_json, stage=INSTRUCT)
    batch = fx.fake_batch()
    tokens = model.modality_tokens(batch)
    v, vmask = tokens["video"]
    n_video = 3 if "qformer" in (combo[0], combo[2]) else 4
    assert v.shape == (4, n_video, model.llm_head.hidden_size) and vmask.shape == (4, n_video)
    frozen = {k: t.clone() for name in ("video_encoder", "audio_encoder")
              for k, t in getattr(model, name).state_dict(prefix=f"{name}.").items()}
    opt = torch.optim.AdamW(model.trainable_parameters(), lr=3e-3)
    losses = []
    model.train()
    for _ in range(6):
        loss = model.compute_losses(batch)["lm"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0], losses
    # the encoders are frozen in this stage: no gradient, eval mode, weights and norm statistics untouched
    assert all(p.grad is None and not p.requires_grad for p in model.video_encoder.parameters())
    assert not model.video_encoder.training and not model.audio_encoder.training
    now = {k: t for name in ("video_encoder", "audio_encoder")
           for k, t in getattr(model, name).state_dict(prefix=f"{name}.").items()}
    assert all(torch.equal(now[k], t) for k, t in frozen.items())
    # everything the stage trains got a gradient (a bridge or projector cut off from the loss would not)
    trained = [n for n, p in model.named_parameters() if p.requires_grad]
    for key in ("video_bridge", "video_projector", "llm_head"):
        if key == "video_bridge" and combo[0] == "none":  # the identity bridge has nothing to train
            assert model.video_bridge.num_parameters() == 0
            continue
        assert any(n.startswith(key + ".") for n in trained), key
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.video_projector.parameters())
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


def test_over_long_prompts_keep_their_first_places_and_the_whole_target(tokenizer_json):
    """Past llm_head.max_length, the prompt part (text and modality tokens) keeps its first max_length places and the
    target follows in full, in training and generation alike (the official max_context_len rule); said once."""
    model = XEmoGPT(components("vecb", "aecb", "linear", "qwen3"), tokenizer_json=tokenizer_json, stage=INSTRUCT)
    batch = fx.fake_batch()
    batch["description"] = [" ".join(["happy"] * 20)] * len(batch["ids"])
    tokens = model.modality_tokens(batch)
    model.llm_head.hparams.max_length = 4096
    whole = model.spliced(batch, with_targets=True, tokens=tokens)
    gen_whole = model.spliced(batch, with_targets=False, tokens=tokens)
    prompt_len = (whole.labels != -100).float().argmax(1)  # first target place of each sample
    limit = int(prompt_len.min()) - 6
    model._warned_truncation = False
    model.llm_head.hparams.max_length = limit
    with pytest.warns(UserWarning, match=f"max_length={limit}"):
        cut = model.spliced(batch, with_targets=True, tokens=tokens)
    for i in range(len(batch["ids"])):
        n_target = int((whole.labels[i] != -100).sum())
        p = int(prompt_len[i])
        assert int(cut.attention_mask[i].sum()) == limit + n_target
        assert torch.equal(cut.inputs_embeds[i, :limit], whole.inputs_embeds[i, :limit])
        assert torch.equal(cut.labels[i, limit:limit + n_target], whole.labels[i, p:p + n_target])
    gen_cut = model.spliced(batch, with_targets=False, tokens=tokens)
    for i in range(len(batch["ids"])):
        kept = gen_cut.inputs_embeds[i][gen_cut.attention_mask[i].bool()]
        assert kept.shape[0] == limit < int(gen_whole.attention_mask[i].sum())
        assert torch.equal(kept, gen_whole.inputs_embeds[i][gen_whole.attention_mask[i].bool()][:limit])
