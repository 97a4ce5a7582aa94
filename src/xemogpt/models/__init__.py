"""Composed models: :class:`XEmoGPT` (:mod:`.xemogpt`), what it is made of (:mod:`.spec`: component kinds, wiring,
stage modes, the checks a recipe's ``model`` section gets) and rebuilding it from a run, checkpoint or export
(:mod:`.loading`)."""

from xemogpt.models.xemogpt import XEmoGPT  # noqa: F401
