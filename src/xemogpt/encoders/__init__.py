"""Encoders: video (per-frame tokens), audio (frame tokens + padding mask) and text (sentence embeddings).

Importing this package registers every built-in encoder.
"""

from xemogpt.encoders import audio_tiny, text_sentence, video_tiny  # noqa: F401
