"""Which frames and audio spans the LLM attended to while writing its description.

The LM is run once over the prompt (with the spliced video and audio tokens) followed by the generated text,
with eager attention and ``output_attentions=True``. For every generated token we take the attention row of the
position that *predicts* it (the position just before it), average over layers and heads, and read the weights
at the video-token and audio-token positions (``Spliced.modality_positions``). Averaged over the generated tokens
this gives one weight per sampled frame and per audio token, plus the share of all attention that went to video,
audio and text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class ModalityAttention:
    """video: (T,) mean attention per video token (None when the clip has no video); audio: (A,) per audio token
    (None without audio); share: fraction of the generated tokens' attention on video / audio / text tokens;
    tokens: how many generated tokens were averaged."""

    video: list[float] | None
    audio: list[float] | None
    share: dict[str, float]
    tokens: int


def _eager(hf_model):
    """The transformers model whose attention implementation is switched (peft wraps it)."""
    return hf_model.get_base_model() if hasattr(hf_model, "get_base_model") else hf_model


@torch.no_grad()
def modality_attention(model, batch: dict[str, Any], text: str) -> ModalityAttention:
    """Attention from the generated ``text`` to the modality tokens of the first sample of ``batch``."""
    llm = model.llm_head
    one = {k: (v[:1] if hasattr(v, "shape") or isinstance(v, list) else v) for k, v in batch.items()}
    one["description"] = [text]
    was_training = model.training
    model.eval()
    sp = model.spliced(one, with_targets=True)
    hf = _eager(llm.model)
    previous = getattr(hf.config, "_attn_implementation", None) or "sdpa"
    hf.set_attn_implementation("eager")  # sdpa/flash kernels do not return attention weights
    try:
        out = llm.model(inputs_embeds=sp.inputs_embeds, attention_mask=sp.attention_mask,
                        position_ids=sp.position_ids, output_attentions=True, use_cache=False)
    finally:
        hf.set_attn_implementation(previous)
        model.train(was_training)
    att = torch.stack([a[0].float() for a in out.attentions]).mean(dim=(0, 1))  # (L, L): layers and heads averaged
    targets = (sp.labels[0] != -100).nonzero().flatten()
    queries = targets[targets > 0] - 1  # the position that predicts each generated token
    if queries.numel() == 0:
        queries = sp.attention_mask[0].nonzero().flatten()[-1:]
    rows = att[queries]  # (G, L)
    valid = sp.attention_mask[0].bool()

    def at(marker: int) -> tuple[list[float] | None, torch.Tensor]:
        pos = sp.modality_positions[marker][0]
        keep = pos >= 0
        if not bool(keep.any()):
            return None, torch.zeros(0, dtype=torch.long)
        p = pos[keep]
        return rows[:, p].mean(0).tolist(), p

    video, vpos = at(llm.video_marker_id)
    audio, apos = at(llm.audio_marker_id)
    total = rows[:, valid].sum(1).mean().clamp_min(1e-12)
    vs = rows[:, vpos].sum(1).mean() / total if vpos.numel() else torch.tensor(0.0)
    au = rows[:, apos].sum(1).mean() / total if apos.numel() else torch.tensor(0.0)
    share = {"video": float(vs), "audio": float(au), "text": float(1 - vs - au)}
    return ModalityAttention(video, audio, share, int(queries.numel()))
