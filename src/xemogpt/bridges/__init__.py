"""Emotional cue bridges: sequence-to-sequence modules between a frozen encoder and the projector.

VECB and AECB carry the paper's cue-perception pre-training tasks; the other variants exist for ablations and are
registered for both modalities. Importing this package registers them all.
"""

from xemogpt.bridges import aecb, identity, vecb  # noqa: F401
