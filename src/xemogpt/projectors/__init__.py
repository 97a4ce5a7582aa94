"""Projectors from bridge width to the LLM's hidden size: ``linear`` (paper), ``mlp`` (LLaVA), ``qformer``
(Video-LLaMA / Emotion-LLaMA) and ``attention-fusion`` (AffectGPT; reads the other modality). Every projector
returns ``(tokens, mask)``. Importing this package registers them."""

from xemogpt.projectors import fusion, linear, mlp, qformer  # noqa: F401
