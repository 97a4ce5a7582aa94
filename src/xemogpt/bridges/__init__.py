"""Emotional cue bridges: sequence-to-sequence modules between a frozen encoder and the projector.

VECB and AECB carry the paper's cue-perception pre-training tasks; the other variants exist for ablations and are
registered for both modalities: ``none`` (identity), ``mlp``, ``transformer`` (N layers), ``qformer`` (learned
queries; changes the sequence length and exposes ``out_mask``) and ``temporal-conv``. Every variant can be
pre-trained on the same contrastive cue alignment. Importing this package registers them all.
"""

from xemogpt.bridges import aecb, identity, mlp, qformer, temporal_conv, transformer, vecb  # noqa: F401
