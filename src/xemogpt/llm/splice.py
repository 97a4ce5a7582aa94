"""Splice modality tokens into tokenised prompts for a whole batch at once (no per-sample Python loop).

A prompt holds each modality's slot id (:data:`AUDIO_SLOT`, :data:`VIDEO_SLOT`: ids outside every vocabulary,
never looked up) at most once; a slot expands to that sample's valid modality tokens, so the result is a dense,
right-aligned (training) or left-aligned (generation) sequence with consistent position ids. A sample without the
slot must have no valid tokens of that modality (the official ``prompt_wrap`` leaves a missing modality out).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

AUDIO_SLOT = -2  # where a prompt takes its audio tokens
VIDEO_SLOT = -3  # where a prompt takes its video tokens


@dataclass
class Spliced:
    """inputs_embeds (B, L, H); attention_mask (B, L) long; position_ids (B, L); labels (B, L) (-100 = no loss);
    modality_positions: slot id -> (B, N) positions of that modality's tokens in the output (-1 = dropped);
    truncated: (B,) bool, whose prompt part was cut to ``prompt_cap`` (None when no cap was given)."""

    inputs_embeds: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    labels: torch.Tensor
    modality_positions: dict[int, torch.Tensor]
    truncated: torch.Tensor | None = None


def pad_ids(seqs: list[list[int]], pad_id: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token id lists -> ids (B, L) long, mask (B, L) bool."""
    n = max((len(s) for s in seqs), default=0)
    ids = torch.full((len(seqs), max(n, 1)), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids, dtype=torch.bool)
    for i, s in enumerate(seqs):  # building the id tensor from Python lists is unavoidable and cheap
        ids[i, : len(s)] = torch.as_tensor(s, dtype=torch.long)
        mask[i, : len(s)] = True
    return ids.to(device), mask.to(device)


def splice(
    ids: torch.Tensor,
    text_mask: torch.Tensor,
    embed: torch.nn.Module | callable,
    modalities: dict[int, tuple[torch.Tensor, torch.Tensor]],
    target_mask: torch.Tensor | None = None,
    align: str = "right",
    prompt_cap: int | None = None,
) -> Spliced:
    """Splice modality embeddings into a batch of prompts.

    Args:
        ids: (B, Lt) token ids (prompt, then target tokens when training), right-padded.
        text_mask: (B, Lt) bool, True on real tokens.
        embed: the LM's input embedding (ids (B, L) -> (B, L, H)).
        modalities: slot id -> (features (B, N, H), mask (B, N) bool). A sample holds each slot at most once (none
            when it has no valid feature of that modality); masked-out features take no place in the output.
        target_mask: (B, Lt) bool, True on target tokens (they get labels); None for generation.
        align: ``right`` pads at the end (training), ``left`` pads at the start (generation).
        prompt_cap: the most places the prompt part (text and modality tokens, everything before the target) may
            take; a longer prompt keeps its first ``prompt_cap`` places (possibly part of a modality block) and the
            target follows in full -- the official ``max_context_len`` rule.

    Every output position is computed directly -- a marker stands for as many places as its sample has valid
    modality tokens -- so the text tokens' embeddings and the features are each copied into their places once (no
    expanded intermediate with holes to squeeze out, no lookup of padding).
    """
    b, lt = ids.shape
    device = ids.device
    rep = text_mask.long()  # places each input position takes in the output
    is_marker = torch.zeros_like(text_mask)
    hits: dict[int, torch.Tensor] = {}
    for marker, (_, fmask) in modalities.items():
        hit = (ids == marker) & text_mask
        counts = hit.sum(1)
        lost = (counts == 0) & fmask.any(1)
        if bool((counts > 1).any()) or bool(lost.any()):
            bad = int(((counts > 1) | lost).nonzero()[0, 0])
            raise ValueError(f"sample {bad} of the batch has {int(counts[bad])} copies of slot {marker} and "
                             f"{int(fmask[bad].sum())} valid tokens for it; a prompt holds each modality slot once, "
                             "and only when the sample has that modality")
        rep = torch.where(hit, fmask.sum(1, keepdim=True).to(rep.dtype).expand_as(rep), rep)
        is_marker |= hit
        hits[marker] = hit
    truncated = None
    if prompt_cap is not None:
        # Places beyond the cap are dropped from the prompt part: a text token there takes none, a modality block
        # keeps its first `room` tokens; the target's places follow the shortened prompt.
        prompt = text_mask if target_mask is None else text_mask & ~target_mask
        room = (prompt_cap - (rep.cumsum(1) - rep)).clamp(min=0)
        capped = torch.where(prompt, torch.minimum(rep, room), rep)
        truncated = (capped != rep).any(1)
        if bool(truncated.any()):
            kept = {}
            for marker, (feats, fmask) in modalities.items():
                allowed = capped.masked_fill(~hits[marker], 0).sum(1, keepdim=True)
                kept[marker] = (feats, fmask & (fmask.long().cumsum(1) <= allowed))
            modalities = kept
            rep = capped
    counts = rep.sum(1)  # output length of each sample
    out_len = max(int(counts.max()), 1) if b else 1
    start = rep.cumsum(1) - rep  # where each input position lands (right-aligned)
    if align == "left":
        start = start + (out_len - counts)[:, None]

    # Only the real text tokens are looked up, and written straight to their places in one flat buffer whose padding
    # stays zero. The buffer has a spare last row: the places of masked-out modality features point at it, so each
    # modality is copied in whole, (B*N, H) in one index_copy (no gather of its valid rows first); the spare row is
    # dropped at the end. (Nothing is written into the lookup's output: with a frozen embedding under activation
    # checkpointing it is a leaf that requires grad -- enable_input_require_grads -- and must not be changed in place.)
    sel = text_mask & ~is_marker & (rep > 0)
    r_idx, c_idx = sel.nonzero(as_tuple=True)
    pos = start[r_idx, c_idx]
    tok_ids = ids[r_idx, c_idx]
    text = embed(tok_ids[None])[0]  # (N_text, H)
    h = text.shape[-1]
    labels = torch.full((b, out_len), -100, dtype=torch.long, device=device)
    if target_mask is not None:
        t = target_mask[r_idx, c_idx]
        labels[r_idx[t], pos[t]] = tok_ids[t]
    ar = torch.arange(out_len, device=device)[None]
    attn = ar >= (out_len - counts)[:, None] if align == "left" else ar < counts[:, None]
    spare = b * out_len
    # Every place inside a sample is written below, so only the padding is zeroed (not the whole buffer).
    flat = torch.empty(spare + 1, h, dtype=text.dtype, device=device)
    flat.index_fill_(0, (~attn).reshape(-1).nonzero().squeeze(1), 0.0)
    flat.index_copy_(0, r_idx * out_len + pos, text)

    modality_positions: dict[int, torch.Tensor] = {}
    rows = torch.arange(b, device=device)[:, None] * out_len
    for marker, (feats, fmask) in modalities.items():
        if feats.shape[-1] != h:
            raise ValueError(f"modality features of width {feats.shape[-1]} cannot be spliced into an LM with hidden "
                             f"size {h}; the projector's output_dim must equal the LLM hidden size")
        first = start.masked_fill(~hits[marker], 0).sum(1)  # (B,) where the block starts
        p = first[:, None] + fmask.long().cumsum(1) - 1  # (B, N) place of each valid feature
        dest = torch.where(fmask, rows + p, torch.full_like(p, spare))
        flat.index_copy_(0, dest.reshape(-1), feats.reshape(-1, h).to(flat.dtype))
        modality_positions[marker] = torch.where(fmask, p, torch.full_like(p, -1))
    embeds = flat[:spare].view(b, out_len, h)

    if align == "left":
        position_ids = (ar - (out_len - counts)[:, None]).clamp(min=0)
    else:
        position_ids = ar.expand(b, out_len).clone()
    return Spliced(embeds, attn.long(), position_ids, labels, modality_positions, truncated)


def splice_loop(
    ids: torch.Tensor,
    text_mask: torch.Tensor,
    embed,
    modalities: dict[int, tuple[torch.Tensor, torch.Tensor]],
    target_mask: torch.Tensor | None = None,
    align: str = "right",
    prompt_cap: int | None = None,
) -> Spliced:
    """Reference implementation with a Python loop over samples (for tests and ``make bench``)."""
    seqs, labs = [], []
    for i in range(ids.shape[0]):
        parts, lab = [], []
        prompt_len = 0
        for j in range(ids.shape[1]):
            if not text_mask[i, j]:
                continue
            t = int(ids[i, j])
            is_target = target_mask is not None and bool(target_mask[i, j])
            room = None if (prompt_cap is None or is_target) else max(0, prompt_cap - prompt_len)
            if t in modalities:
                feats, fmask = modalities[t]
                f = feats[i][fmask[i]][:room]
                parts.append(f)
                lab += [-100] * f.shape[0]
                prompt_len += f.shape[0]
            elif room != 0:
                parts.append(embed(ids[i, j : j + 1]))
                lab.append(t if is_target else -100)
                prompt_len += 0 if is_target else 1
        seqs.append(torch.cat(parts))
        labs.append(lab)
    out_len = max(s.shape[0] for s in seqs)
    h = seqs[0].shape[-1]
    b = len(seqs)
    embeds = torch.zeros(b, out_len, h, dtype=seqs[0].dtype)
    labels = torch.full((b, out_len), -100, dtype=torch.long)
    attn = torch.zeros(b, out_len, dtype=torch.long)
    position_ids = torch.zeros(b, out_len, dtype=torch.long)
    for i, s in enumerate(seqs):
        n = s.shape[0]
        sl = slice(out_len - n, out_len) if align == "left" else slice(0, n)
        embeds[i, sl] = s
        labels[i, sl] = torch.as_tensor(labs[i])
        attn[i, sl] = 1
        position_ids[i, sl] = torch.arange(n)
    if align != "left":
        position_ids = torch.arange(out_len).expand(b, out_len).clone()
    return Spliced(embeds, attn, position_ids, labels, {})
