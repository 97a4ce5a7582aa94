"""Every kind of component has a real Lightning role (issue #11): encoders through ``Trainer.predict``, a bridge
through ``Trainer.fit`` on the DataModule's cached features, the LLM head through ``Trainer.fit`` on descriptions, and
a bridge pre-training stage that never builds the LLM."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from tests import test_zoo_fixtures as fx
from tests.conftest import tiny_overrides
from tests.test_zoo_fixtures import one_thread  # noqa: F401  (autouse)
from xemogpt import registry

TINY = "recipes/xemogpt-tiny.yaml"


def trainer(**kw) -> L.Trainer:
    opts = dict(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                enable_model_summary=False)
    opts.update(kw)
    return L.Trainer(**opts)


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp("roles")
    return {"clip": fx.make_clip_folder(root), "open_clip": fx.make_open_clip_file(root),
            "timm": fx.make_timm_file(root), "hubert": fx.make_speech_folder(root, "hubert"),
            "ta_hubert": fx.make_torchaudio_file(root, hubert_shaped=True)}


VIDEO = {"tiny-cnn": lambda c: {"dim": 16, "image_size": 32},
         "hf-clip-vision": lambda c: {"path": str(c["clip"])},
         "open-clip": lambda c: {"model": None, "checkpoint": str(c["open_clip"]), "config": fx.OPEN_CLIP_TINY},
         "timm": lambda c: {"model": "vit_tiny_patch16_224", "checkpoint": str(c["timm"]),
                            "model_args": fx.TIMM_TINY}}
AUDIO = {"logmel-conv": lambda c: {"dim": 16},
         "hf-speech": lambda c: {"path": str(c["hubert"])},
         "torchaudio-speech": lambda c: {"builder": "wav2vec2_model", "checkpoint": str(c["ta_hubert"]),
                                         "builder_args": fx.torchaudio_args(True)}}


@pytest.mark.parametrize("kind,name", [("video_encoder", n) for n in VIDEO] + [("audio_encoder", n) for n in AUDIO])
def test_every_encoder_encodes_clips_through_trainer_predict(ckpts, kind, name):
    spec = (VIDEO if kind == "video_encoder" else AUDIO)[name](ckpts)
    enc = registry.build(kind, {"name": name, **spec}, f"model.{kind}").eval()
    batch = fx.fake_batch(b=3, t=2, size=32, seconds=0.6)
    if kind == "video_encoder":
        batch["frame_mask"][2] = False  # a clip without video
    else:
        batch["audio_mask"][2] = False  # a clip without audio
        half = batch["audio"].shape[1] // 2
        batch["audio_mask"][1, half:] = False  # a shorter clip, padded as the collator pads it
        batch["audio"][1, half:] = 0.0
    loader = torch.utils.data.DataLoader([batch], batch_size=None)  # one ready batch
    (out,) = trainer().predict(enc, dataloaders=loader)
    assert out["ids"] == batch["ids"] and out["features"][2] is None
    with torch.no_grad():
        if kind == "video_encoder":
            direct = enc(batch["frames"][:2])
            for i in range(2):
                torch.testing.assert_close(out["features"][i], direct[i].float(), rtol=1e-5, atol=1e-5)
        else:
            # each clip exactly as if encoded alone at its own length: the batch's padding does not reach it
            for i, n in enumerate((batch["audio"].shape[1], half)):
                tok, mask = enc(batch["audio"][i:i + 1, :n], batch["audio_mask"][i:i + 1, :n])
                assert torch.equal(out["features"][i], tok[0][mask[0]].float())
            assert out["features"][1].shape[0] < out["features"][0].shape[0]


@pytest.fixture(scope="module")
def cached(synth_root, tmp_path_factory):
    """The tiny recipe's model with frozen encoders and a DataModule reading their cached features."""
    from xemogpt.models.xemogpt import XEmoGPT
    from xemogpt.recipe import load_recipe
    from xemogpt.training.run import data_module

    recipe = load_recipe(TINY, tiny_overrides(synth_root) + [
        f"data.features_dir={tmp_path_factory.mktemp('features')}", "model.video_encoder.freeze=true",
        "model.audio_encoder.freeze=true", "model.video_bridge.proj_dim=32", "model.audio_bridge.proj_dim=32"])
    model = XEmoGPT(recipe["model"], parts=["video_bridge", "audio_bridge"], seed=0)
    dm = data_module(recipe, model, synth_root)
    dm.setup()
    reports = dm.use_features(model.video_encoder, model.audio_encoder, progress=False)
    assert [r.computed for r in reports] == [len(dm._feature_samples())] * 2
    return recipe, model, dm


def test_the_data_layers_batch_transfer_moves_tensors_and_leaves_each_clips_record_alone(cached):
    """The DataModule's (and the cache fill's) transfer_batch_to_device moves the batch's tensors and passes the clips'
    records through unwalked: Lightning's default would visit, copy and move everything inside them."""
    from dataclasses import dataclass

    from xemogpt.data.datamodule import _MediaBatches

    _, _, dm = cached

    @dataclass
    class Record:
        id: str
        extra: torch.Tensor

    rec = Record("a", torch.zeros(2))
    batch = {"ids": ["a"], "video_features": torch.zeros(1, 2, 3), "samples": [rec], "subtitle": ["hi"],
             "other": {"t": torch.zeros(1)}}
    for hook in (dm.transfer_batch_to_device, _MediaBatches(None).transfer_batch_to_device):
        out = hook(batch, torch.device("meta"), 0)
        assert out["video_features"].is_meta and out["other"]["t"].is_meta  # keys outside the contract: walked
        assert out["samples"][0] is rec and not rec.extra.is_meta and out["subtitle"] is batch["subtitle"]
    real = next(iter(dm.train_dataloader()))
    out = dm.transfer_batch_to_device(real, torch.device("meta"), 0)
    tensors = [k for k, v in real.items() if isinstance(v, torch.Tensor)]
    assert {"video_features", "audio_features"} <= set(tensors) and all(out[k].is_meta for k in tensors)
    assert out["samples"] is real["samples"]


def test_a_bridge_trains_alone_on_the_datamodules_cached_features(cached):
    from xemogpt.data.views import BridgeData

    _, model, dm = cached
    assert model.llm_head is None and model.video_projector is None  # nothing language-side was built
    bridge = model.video_bridge.use_stage({"lr": 3e-3, "warmup": 0})
    data = BridgeData(dm, "video", lambda texts: model.encode_text(texts, "video"))
    data.setup()
    batch = data.collate(data.datasets["train"][:4])
    assert batch["features"].shape[:2] == batch["mask"].shape and batch["text_emb"].shape == (4, 384)
    before = {k: v.clone() for k, v in bridge.state_dict().items()}
    with torch.no_grad():
        first = sum(bridge.task_losses(batch["features"], batch["mask"], batch["text_emb"]).values())
    t = trainer(max_epochs=6)
    t.fit(bridge, datamodule=data)
    assert {"train/vecb/contrastive", "train/vecb/temporal_order", "train/vecb/masked_frame", "val/loss"} <= set(
        t.callback_metrics)
    assert any(not torch.equal(before[k], v) for k, v in bridge.state_dict().items())
    bridge.eval()
    with torch.no_grad():
        torch.manual_seed(0)
        last = sum(bridge.task_losses(batch["features"], batch["mask"], batch["text_emb"]).values())
    assert last < first


def test_the_llm_head_trains_alone_on_descriptions(synth_root):
    from xemogpt.data.views import DescriptionData
    from xemogpt.models.xemogpt import XEmoGPT
    from xemogpt.recipe import load_recipe
    from xemogpt.training.run import build_tokenizer, data_module

    recipe = load_recipe(TINY, tiny_overrides(synth_root))
    tok = build_tokenizer(synth_root, recipe["model"], 400, None)
    model = XEmoGPT(recipe["model"], tokenizer_json=tok, parts=["llm_head"], seed=0)
    assert model.video_encoder is None and model.video_bridge is None  # the head alone
    head = model.llm_head.use_stage({"lr": 5e-3, "warmup": 0})
    data = DescriptionData(data_module(recipe, model, synth_root))
    data.setup()
    batch = data.collate(data.datasets["train"][:6])
    ids, mask, labels = head.text_batch(batch["description"])
    assert (labels[mask == 0] == -100).all() and (labels[mask == 1] >= 0).all()
    with torch.no_grad():
        first = float(head.model(input_ids=ids, attention_mask=mask, labels=labels).loss)
    t = trainer(max_epochs=3)
    t.fit(head, datamodule=data)
    assert "train/lm_text" in t.callback_metrics and "val/lm_text" in t.callback_metrics
    with torch.no_grad():
        last = float(head.model(input_ids=ids, attention_mask=mask, labels=labels).loss)
    assert last < 0.8 * first


def test_bridge_pretraining_stages_build_no_llm(synth_root, tmp_path):
    """The tiny recipe's bridge_pretrain (encoders and bridges train on the bridge tasks) holds no LLM or projector;
    the next stage builds them."""
    from xemogpt.recipe import load_recipe
    from xemogpt.training.runner import RecipeRunner

    recipe = load_recipe(TINY, tiny_overrides(synth_root) + ["stages.0.max_steps=2"])
    runner = RecipeRunner(recipe, tmp_path / "run")
    runner.plan()
    runner.prepare_data()
    runner.build()
    model = runner.model
    assert model.llm_head is None and model.video_projector is None and model.audio_projector is None
    assert runner.prepare_stage(0, runner.stages[0]) == "composed"  # its encoders train: the composed model
    runner.fit_composed(0, runner.stages[0], tmp_path / "stage0.ckpt")
    assert model.llm_head is None and set(model.hparams.parts) == {"video_encoder", "audio_encoder", "text_encoder",
                                                                   "video_bridge", "audio_bridge"}
    runner.prepare_stage(1, runner.stages[1])
    assert model.llm_head is not None and model.video_projector is not None


def test_stage_modes_from_the_spec():
    from xemogpt.models.spec import stage_mode, stage_parts

    paper = {"train": ["video_bridge", "audio_bridge"], "losses": ["vecb", "aecb"]}
    assert stage_mode(paper) == "bridges" and "llm_head" not in stage_parts(paper)
    tiny = {"train": ["video_encoder", "video_bridge"], "losses": ["vecb"]}
    assert stage_mode(tiny) == "composed" and "llm_head" not in stage_parts(tiny)
    warm = {"train": ["llm_head"], "losses": ["lm_text"]}
    assert stage_mode(warm) == "text" and stage_parts(warm) == ["llm_head"]
    instruct = {"train": ["video_projector"], "losses": ["lm"]}
    assert stage_mode(instruct) == "composed" and {"llm_head", "video_bridge", "video_encoder"} <= set(
        stage_parts(instruct))
