"""A run whose encoders and LLM came from pretrained folders rebuilds from its checkpoint alone."""

from __future__ import annotations

import json
import shutil

import torch

from tests import test_zoo_fixtures as fx
from tests.test_zoo_fixtures import one_thread  # noqa: F401  (autouse)
from xemogpt.checkpointing.portable import PORTABLE_KEY
from xemogpt.models.loading import load_model
from xemogpt.models.xemogpt import XEmoGPT

BRIDGES = {"video_bridge": {"name": "vecb", "num_frames": 4, "proj_dim": 16},
           "audio_bridge": {"name": "aecb", "proj_dim": 16}}


def test_folder_components_rebuild_from_the_checkpoint_when_the_folders_are_gone(tmp_path, capsys):
    src = tmp_path / "checkpoints"
    clip, hubert, lm = fx.make_clip_folder(src), fx.make_speech_folder(src, "hubert"), fx.make_lm_folder(src, "qwen3")
    clip_cfg = json.loads((clip / "config.json").read_text())
    # the folder's sampling defaults, as Qwen3's generation_config.json has them (top_k, top_p, temperature)
    gen_file = lm / "generation_config.json"
    gen_cfg = {**(json.loads(gen_file.read_text()) if gen_file.exists() else {}),
               "do_sample": True, "top_k": 2, "top_p": 0.9, "temperature": 0.7}
    gen_file.write_text(json.dumps(gen_cfg))
    components = {
        "video_encoder": {"name": "hf-clip-vision", "path": str(clip)},
        "audio_encoder": {"name": "hf-speech", "path": str(hubert)},
        # the text tower's architecture is spelled out, as `arch:` does in the paper recipe
        "text_encoder": {"name": "clip-text", "path": str(clip),
                         "config": {**clip_cfg["text_config"], "projection_dim": clip_cfg["projection_dim"]}},
        **BRIDGES,
        "video_projector": {"name": "linear"}, "audio_projector": {"name": "linear"},
        "llm_head": {"name": "causal-lm", "path": str(lm), "train_mode": "lora",
                     "lora": {"r": 4, "alpha": 8, "dropout": 0.0}},
    }
    torch.manual_seed(0)
    model = XEmoGPT(components, generation={"max_new_tokens": 6})
    with torch.no_grad():  # trained weights differ from the folders': the checkpoint's must win
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    ckpt = {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}
    model.on_save_checkpoint(ckpt)  # what Lightning calls while saving
    record = ckpt[PORTABLE_KEY]
    assert set(record["specs"]) == {"video_encoder", "audio_encoder", "llm_head"}
    assert any(k.startswith("llm_head/") and k.endswith("tokenizer.json") for k in record["files"])
    path = tmp_path / "model.ckpt"
    torch.save(ckpt, path)

    batch = fx.fake_batch()
    want = model.generate(batch)
    torch.manual_seed(1)
    want_sampled = model.generate(batch, do_sample=True)  # top_k etc. from the folder's generation config
    want_embeds = model.spliced(batch, with_targets=False).inputs_embeds

    shutil.rmtree(src)  # the pretrained folders are gone
    again = load_model(path)
    assert "rebuilt from the checkpoint alone" in capsys.readouterr().out
    sa, sb = model.state_dict(), again.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert torch.equal(again.spliced(batch, with_targets=False).inputs_embeds, want_embeds)
    assert again.generate(batch) == want
    got = again.llm_head.model.generation_config
    assert (got.top_k, got.top_p, got.temperature) == (2, 0.9, 0.7)
    torch.manual_seed(1)
    assert again.generate(batch, do_sample=True) == want_sampled
    assert again.llm_head.tokenizer.get_vocab() == model.llm_head.tokenizer.get_vocab()

    # An export of that checkpoint is just as self-contained.
    from xemogpt.workflows.export import export_run

    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(path, run / "model.ckpt")
    (run / "recipe.yaml").write_text("name: portable-test\n", encoding="utf-8")
    out = export_run(run, tmp_path / "export")
    assert (out / "portable.json").exists()
    exported = load_model(out)
    se = exported.state_dict()
    assert all(torch.equal(sa[k], se[k]) for k in sa) and exported.generate(batch) == want
