"""The errors of everything that reads or writes weights (each message names the file or recipe key)."""

from __future__ import annotations

from xemogpt.errors import XemoGPTError


class MissingWeightsError(XemoGPTError, FileNotFoundError):
    """Pretrained weights named by a recipe are not on disk; the message lists each path and what belongs there."""


class ComponentFileError(XemoGPTError, RuntimeError):
    """A saved component folder is missing, unreadable or does not fit the rebuilt component."""


class CheckpointError(XemoGPTError, RuntimeError):
    """A checkpoint is missing, unreadable or does not fit the model; the message names the file and key."""
