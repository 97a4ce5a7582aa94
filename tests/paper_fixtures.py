"""Tiny folders shaped like the released XEmoGPT's inputs, built with the libraries' own saving code, and the
official state-dict layout written from a model of ours (the inverse of ``xemogpt.checkpointing.official``'s key
map). This module holds no tests.

The CLIP folder is the awkward kind issue #14 found: a ``CLIPModel`` whose top-level ``projection_dim`` (64) is
not its ``text_config.projection_dim`` (the class default 512 that ``save_pretrained`` writes).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from tests import test_zoo_fixtures as fx

QWEN_TEXTS = ["In the video, the corners of the mouth turn up into a smile and the eyes narrow slightly.",
              "In the audio, the voice is high and lively. Overall, the person most likely feels happy.",
              "Please describe the speaker's emotional state in the video. Output Requirements: a paragraph.",
              "The subtitle of this video is: Be there or be square."]


def make_clip_folder(root: Path) -> Path:
    """CLIPModel, 64-wide towers, projection_dim 64 at the top only, 224 px images in 32 px patches, CLIP's own
    preprocessing (shortest edge 224, centre crop 224, bicubic)."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    folder = root / "clip"
    tok = fx.clip_tokenizer(root / "clip-vocab")
    cfg = CLIPConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=77, eos_token_id=tok.eos_token_id,
                         bos_token_id=tok.bos_token_id, pad_token_id=tok.pad_token_id),
        vision_config=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                           image_size=224, patch_size=32), projection_dim=64)
    torch.manual_seed(0)
    CLIPModel(cfg).save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}).save_pretrained(
        str(folder))
    return folder


def make_hubert_folder(root: Path) -> Path:
    """HubertModel like chinese-hubert-large in shape (layer-norm extractor, stable layer norm, dropouts 0.1) with
    an extractor that normalises and returns the attention mask."""
    from transformers import HubertConfig, HubertModel

    torch.manual_seed(0)
    folder = root / "hubert"
    HubertModel(HubertConfig(**fx.SPEECH_TINY, feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True,
                             hidden_dropout=0.1, attention_dropout=0.1, activation_dropout=0.1)).save_pretrained(
        str(folder))
    (folder / "preprocessor_config.json").write_text(json.dumps(
        {"feature_extractor_type": "Wav2Vec2FeatureExtractor", "sampling_rate": 16000, "do_normalize": True,
         "feature_size": 1, "padding_value": 0.0, "return_attention_mask": True}), encoding="utf-8")
    return folder


def qwen_tokenizer():
    """A byte-level BPE tokenizer with Qwen's special tokens: pad ``<|endoftext|>``, eos ``<|im_end|>``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(QWEN_TEXTS * 10, trainers.BpeTrainer(
        vocab_size=360, special_tokens=["<|endoftext|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")


def make_qwen_folder(root: Path) -> Path:
    """Qwen3ForCausalLM (64 wide, 2 layers) with :func:`qwen_tokenizer` and Qwen3-4B's generation settings."""
    from transformers import GenerationConfig, Qwen3Config, Qwen3ForCausalLM

    tok = qwen_tokenizer()
    cfg = Qwen3Config(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=2048,
                      tie_word_embeddings=False, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                      bos_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    model = Qwen3ForCausalLM(cfg)
    with torch.no_grad():  # a decisive random LM: greedy decoding then has no near-ties
        model.model.embed_tokens.weight.normal_(0, 1.0)
        model.lm_head.weight.normal_(0, 0.3)
    folder = root / "qwen3"
    model.save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    GenerationConfig(bos_token_id=tok.pad_token_id, eos_token_id=[tok.eos_token_id, tok.pad_token_id],
                     pad_token_id=tok.pad_token_id, do_sample=True, temperature=0.6, top_k=20,
                     top_p=0.95).save_pretrained(str(folder))
    return folder


def make_folders(root: Path) -> dict[str, str]:
    """Every folder the paper recipe names; LaBSE's place is taken by the bundled all-MiniLM-L6-v2 (384 wide)."""
    from xemogpt.encoders.text_sentence import bundled_minilm_path

    return {"clip": str(make_clip_folder(root)), "hubert": str(make_hubert_folder(root)),
            "labse": bundled_minilm_path(), "llm": str(make_qwen_folder(root))}


def paper_overrides(folders: dict[str, str]) -> list[str]:
    """The paper recipe on these folders (paths only)."""
    return [f"model.video_encoder.path={folders['clip']}", f"model.audio_encoder.path={folders['hubert']}",
            f"model.text_encoder.video.path={folders['clip']}", f"model.text_encoder.audio.path={folders['labse']}",
            f"model.llm_head.path={folders['llm']}"]


# --- our model -> the official layout --------------------------------------------------------------------------------
OURS_TO_OFFICIAL = (
    ("video_bridge.position_embedding", "visual_encoder.position_embedding"),
    ("video_bridge.layers.", "visual_encoder.visual_alignment_layer."),
    ("video_bridge.attention_pooling.", "visual_encoder.attention_pooling."),
    ("video_bridge.visual_project.", "visual_encoder.visual_project."),
    ("video_bridge.text_project.", "visual_encoder.text_project."),
    ("video_bridge.temporal_disc_head.", "visual_encoder.temporal_disc_head."),
    ("video_bridge.frame_reconstructor.", "visual_encoder.frame_reconstructor."),
    ("video_projector.proj.", "visual_llm_project."),
    ("audio_bridge.layers.", "audio_encoder.audio_alignment_layer."),
    ("audio_bridge.audio_project.", "audio_encoder.audio_project."),
    ("audio_projector.proj.", "audio_llm_project."),
    ("llm_head.model.", "llm_model."),
)


def official_state(model, folders: dict[str, str], trainable_only: bool = False) -> dict[str, torch.Tensor]:
    """The state dict the released ``XEmoGPT`` module would have with ``model``'s weights: its own keys, and (unless
    ``trainable_only``) the frozen towers as ``CLIPModel`` / ``HubertModel`` store them."""
    from transformers import CLIPModel, HubertModel

    out: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        for ours, theirs in OURS_TO_OFFICIAL:
            if key == ours or key.startswith(ours):
                name = theirs + key[len(ours):]
                if trainable_only and name.startswith("llm_model.") and "lora_" not in name:
                    break
                out[name] = value.clone()
                break
    if not trainable_only:
        clip = CLIPModel.from_pretrained(folders["clip"]).state_dict()
        out.update({f"visual_encoder.clip.{k}": v for k, v in clip.items()})
        hubert = HubertModel.from_pretrained(folders["hubert"]).state_dict()
        out.update({f"audio_encoder.audio_encoder.{k}": v for k, v in hubert.items()})
    return out


def randomise_trainables(model, seed: int = 1) -> None:
    """Give the bridges, projectors and LoRA weights values a fresh model would not have (LoRA B starts at zero)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith(("video_bridge.", "audio_bridge.", "video_projector.", "audio_projector.")) or \
                    "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=g) * (0.05 if "lora_" in name else 0.2) + (
                    1.0 if name.endswith(("layer_norm1.weight", "layer_norm2.weight", "layer_norm.weight")) else 0))
