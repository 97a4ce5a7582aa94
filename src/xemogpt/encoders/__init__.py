"""Encoders: video (per-frame tokens), audio (frame tokens + padding mask) and text (sentence embeddings).

Importing this package registers every built-in encoder:

- video: ``tiny-cnn`` (no weights), ``hf-clip-vision`` (the paper's CLIP ViT-L/14), ``open-clip``, ``timm``;
- audio: ``logmel-conv`` (no weights), ``hf-speech`` (HuBERT / wav2vec2 / WavLM folders, the paper's
  chinese-hubert-large), ``torchaudio-speech`` (torchaudio builders + a local state dict);
- text: ``sentence-transformers`` (LaBSE in the paper), ``clip-text`` (CLIP's text tower), ``per-modality``.
"""

from xemogpt.encoders import (  # noqa: F401
    audio_speech,
    audio_tiny,
    text_clip,
    text_per_modality,
    text_sentence,
    video_hf_clip,
    video_open_clip,
    video_timm,
    video_tiny,
)
