"""Tiny same-format checkpoints for the zoo tests, written with each library's own saving code.

Every builder writes what a user would put under ``checkpoints/`` (a transformers folder, an open_clip / timm /
torchaudio state dict, a sentence-transformers folder), only with tiny configs (width 32, 2 layers, 32 px), so the
components load them through exactly the path real weights take. This module holds no tests.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

# Preprocessing deliberately unlike CLIP's defaults, to prove encoders read it from the folder.
CLIP_PREPROCESS = {"do_resize": True, "size": {"shortest_edge": 36}, "resample": 2, "do_center_crop": True,
                   "crop_size": {"height": 32, "width": 32}, "do_normalize": True,
                   "image_mean": [0.1, 0.2, 0.3], "image_std": [0.5, 0.6, 0.7]}
SPEECH_TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                   conv_dim=[16, 16, 16], conv_stride=[5, 4, 4], conv_kernel=[10, 4, 4], num_conv_pos_embeddings=16,
                   num_conv_pos_embedding_groups=2, mask_time_prob=0.0, layerdrop=0.0)
OPEN_CLIP_TINY = {"embed_dim": 16, "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "patch_size": 8,
                                                  "head_width": 16},
                  "text_cfg": {"context_length": 16, "vocab_size": 100, "width": 32, "heads": 2, "layers": 1}}
TIMM_TINY = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2)
LM_TINY = {
    "qwen3": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=8, max_position_embeddings=512),
    "qwen2": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=512),
    "llama": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=512),
    "gpt2": dict(n_embd=32, n_layer=2, n_head=4, n_positions=512),
}
CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>{% endif %}")
TEXTS = ["the corners of the mouth turn up into a smile", "the brows are drawn together", "the voice is loud and fast",
         "the pitch falls and the speech is slow", "the eyes are wide open", "a neutral face and a flat voice"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run fastest on one thread (and do not fight other processes for the cores); restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def torchaudio_args(hubert_shaped: bool) -> dict:
    """Tiny ``torchaudio.models.wav2vec2_model`` arguments: HuBERT-large-shaped (layer-norm extractor, pre-LN
    layers) or wav2vec2-base-shaped (group-norm extractor, post-LN layers)."""
    return dict(extractor_mode="layer_norm" if hubert_shaped else "group_norm",
                extractor_conv_layer_config=[(16, 10, 5), (16, 4, 4), (16, 4, 4)], extractor_conv_bias=hubert_shaped,
                encoder_embed_dim=32, encoder_projection_dropout=0.0, encoder_pos_conv_kernel=16,
                encoder_pos_conv_groups=2, encoder_num_layers=2, encoder_num_heads=2, encoder_attention_dropout=0.0,
                encoder_ff_interm_features=64, encoder_ff_interm_dropout=0.0, encoder_dropout=0.0,
                encoder_layer_norm_first=hubert_shaped, encoder_layer_drop=0.0, aux_num_out=None)


def clip_tokenizer(folder: Path):
    """A real CLIPTokenizer over a byte-level vocabulary (every byte, its end-of-word form, a few merges)."""
    from tokenizers import pre_tokenizers
    from transformers import CLIPTokenizer

    chars = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab: dict[str, int] = {}
    for c in chars + [c + "</w>" for c in chars] + ["th", "the</w>", "sm", "il"]:
        vocab[c] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\nt h\nth e</w>\ns m\ni l\n", encoding="utf-8")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))


def make_clip_folder(root: Path) -> Path:
    """A CLIPModel folder (both towers, projection 16) with its tokenizer and preprocessor_config.json."""
    from transformers import CLIPConfig, CLIPModel

    folder = root / "clip-tiny"
    tok = clip_tokenizer(root / "clip-vocab")
    cfg = CLIPConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=32, projection_dim=16,
                         eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id, pad_token_id=tok.pad_token_id),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8, projection_dim=16), projection_dim=16)
    torch.manual_seed(0)
    CLIPModel(cfg).save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    (folder / "preprocessor_config.json").write_text(json.dumps(CLIP_PREPROCESS), encoding="utf-8")
    return folder


def make_open_clip_file(root: Path) -> Path:
    """A whole-CLIP open_clip state dict (torch.save) for :data:`OPEN_CLIP_TINY`."""
    import open_clip

    from xemogpt.encoders.video_open_clip import register_open_clip_config

    torch.manual_seed(0)
    model = open_clip.create_model(register_open_clip_config(OPEN_CLIP_TINY), pretrained_text=False)
    path = root / "open-clip-tiny.pt"
    torch.save(model.state_dict(), path)
    return path


def make_timm_file(root: Path) -> Path:
    """A timm ViT state dict (safetensors) with a 10-class head, as timm's pretrained files carry one."""
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(0)
    net = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=10, **TIMM_TINY)
    path = root / "timm-vit-tiny.safetensors"
    save_file(net.state_dict(), str(path))
    return path


def make_speech_folder(root: Path, model_type: str) -> Path:
    """A transformers HuBERT (layer-norm extractor, stable layer norm, like HuBERT-large) or wav2vec2 (group-norm
    extractor, like wav2vec2-base) folder with its preprocessor_config.json."""
    from transformers import HubertConfig, HubertModel, Wav2Vec2Config, Wav2Vec2Model

    torch.manual_seed(0)
    folder = root / f"{model_type}-tiny"
    if model_type == "hubert":
        model = HubertModel(HubertConfig(**SPEECH_TINY, feat_extract_norm="layer", do_stable_layer_norm=True,
                                         conv_bias=True))
        normalize = True
    else:
        model = Wav2Vec2Model(Wav2Vec2Config(**SPEECH_TINY, feat_extract_norm="group", conv_bias=False))
        normalize = False
    model.save_pretrained(str(folder))
    (folder / "preprocessor_config.json").write_text(json.dumps(
        {"feature_extractor_type": "Wav2Vec2FeatureExtractor", "sampling_rate": 16000, "do_normalize": normalize,
         "feature_size": 1, "padding_value": 0.0, "return_attention_mask": normalize}), encoding="utf-8")
    return folder


def make_torchaudio_file(root: Path, hubert_shaped: bool, pretrain_prefix: bool = False) -> Path:
    """A torchaudio Wav2Vec2Model state dict; ``pretrain_prefix`` stores it as a HuBERTPretrainModel would
    (``wav2vec2.`` prefix)."""
    import torchaudio

    torch.manual_seed(0)
    model = torchaudio.models.wav2vec2_model(**torchaudio_args(hubert_shaped))
    state = model.state_dict()
    if pretrain_prefix:
        state = {f"wav2vec2.{k}": v for k, v in state.items()}
    path = root / f"torchaudio-{'hubert' if hubert_shaped else 'wav2vec2'}{'-pretrain' if pretrain_prefix else ''}.pt"
    torch.save(state, path)
    return path


def make_sentence_transformers_folder(root: Path) -> Path:
    """A sentence-transformers folder: tiny BERT + [CLS] pooling + Dense(32 -> 16, tanh) + Normalize (LaBSE's
    layout), saved by sentence-transformers itself."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense, Normalize, Pooling, Transformer
    from transformers import BertConfig, BertModel, BertTokenizer

    words = sorted({w for t in TEXTS for w in t.split()})
    bert = root / "bert-tiny"
    bert.mkdir(parents=True, exist_ok=True)
    (bert / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words) + "\n",
                                    encoding="utf-8")
    tok = BertTokenizer(str(bert / "vocab.txt"))
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=64)).save_pretrained(str(bert))
    tok.save_pretrained(str(bert))
    st = SentenceTransformer(modules=[Transformer(str(bert)), Pooling(32, "cls"), Dense(32, 16), Normalize()],
                             device="cpu")
    folder = root / "st-tiny"
    st.save(str(folder), create_model_card=False)
    return folder


def make_tokenizer():
    """A byte-level BPE tokenizer with the modality markers and a chat template."""
    from xemogpt.llm.tokenizer import train_tokenizer

    tok = train_tokenizer(TEXTS * 4 + ["###Human: <Audio></Audio> <Video></Video> <Subtitle></Subtitle>"],
                          vocab_size=320)
    tok.chat_template = CHAT_TEMPLATE
    return tok


def make_lm_folder(root: Path, model_type: str) -> Path:
    """A transformers causal-LM folder of ``model_type`` (qwen3, qwen2, llama, gpt2) with its tokenizer."""
    from transformers import AutoConfig, AutoModelForCausalLM

    tok = make_tokenizer()
    cfg = AutoConfig.for_model(model_type, vocab_size=len(tok), eos_token_id=tok.eos_token_id,
                               pad_token_id=tok.pad_token_id, bos_token_id=tok.eos_token_id, **LM_TINY[model_type])
    torch.manual_seed(0)
    folder = root / f"lm-{model_type}"
    AutoModelForCausalLM.from_config(cfg).save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    return folder


def fake_batch(b: int = 4, t: int = 4, size: int = 32, seconds: float = 0.5, seed: int = 0) -> dict:
    """A model batch as the DataModule makes it: frames uint8, padded audio, texts; sample 1 has no audio tail."""
    g = torch.Generator().manual_seed(seed)
    s = int(16000 * seconds)
    audio_mask = torch.ones(b, s, dtype=torch.bool)
    if b > 1:
        audio_mask[1, s // 2:] = False
    return {
        "ids": [f"clip{i}" for i in range(b)],
        "frames": torch.randint(0, 255, (b, t, 3, size, size), generator=g, dtype=torch.uint8),
        "frame_mask": torch.ones(b, t, dtype=torch.bool),
        "audio": torch.randn(b, s, generator=g) * audio_mask,
        "audio_mask": audio_mask,
        "subtitle": [TEXTS[i % len(TEXTS)] for i in range(b)],
        "description": [TEXTS[(i + 2) % len(TEXTS)] for i in range(b)],
        "visual_text": [TEXTS[i % 2] for i in range(b)],
        "auditory_text": [TEXTS[2 + i % 2] for i in range(b)],
    }
