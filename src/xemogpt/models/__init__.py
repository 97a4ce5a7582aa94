"""Composed models."""

from xemogpt.models.xemogpt import XEmoGPT  # noqa: F401
