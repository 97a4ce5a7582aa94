"""Splice modality tokens into tokenised prompts for a whole batch at once (no per-sample Python loop).

Each prompt holds every marker (``<AudioHere>``, ``<VideoHere>``) exactly once. A marker expands to the padded
number of modality tokens; padded modality tokens become holes that are then squeezed out, so the result is a
dense, right-aligned (training) or left-aligned (generation) sequence with consistent position ids.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Spliced:
    """inputs_embeds (B, L, H); attention_mask (B, L) long; position_ids (B, L); labels (B, L) (-100 = no loss);
    modality_positions: marker id -> (B, N) positions of that modality's tokens in the output (-1 = dropped)."""

    inputs_embeds: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    labels: torch.Tensor
    modality_positions: dict[int, torch.Tensor]


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
) -> Spliced:
    """Splice modality embeddings into a batch of prompts.

    Args:
        ids: (B, Lt) token ids (prompt, then target tokens when training), right-padded.
        text_mask: (B, Lt) bool, True on real tokens.
        embed: the LM's input embedding (ids -> (B, Lt, H)).
        modalities: marker token id -> (features (B, N, H), mask (B, N) bool). Every sample must contain each
            marker exactly once; masked-out features (padding, a missing modality) take no place in the output.
        target_mask: (B, Lt) bool, True on target tokens (they get labels); None for generation.
        align: ``right`` pads at the end (training), ``left`` pads at the start (generation).
    """
    b, lt = ids.shape
    device = ids.device
    tok_emb = embed(ids)
    h = tok_emb.shape[-1]
    rows = torch.arange(b, device=device)[:, None]

    rep = text_mask.long()
    is_marker = torch.zeros_like(text_mask)
    for marker, (feats, _) in modalities.items():
        hit = (ids == marker) & text_mask
        counts = hit.sum(1)
        if not bool((counts == 1).all()):
            bad = int((counts != 1).nonzero()[0, 0])
            raise ValueError(f"sample {bad} of the batch has {int(counts[bad])} copies of marker token {marker}; "
                             "each prompt must contain each modality marker exactly once")
        if feats.shape[-1] != h:
            raise ValueError(f"modality features of width {feats.shape[-1]} cannot be spliced into an LM with hidden "
                             f"size {h}; the projector's output_dim must equal the LLM hidden size")
        rep = torch.where(hit, torch.full_like(rep, feats.shape[1]), rep)
        is_marker |= hit
    start = rep.cumsum(1) - rep  # where each text token lands in the expanded sequence
    length = int(rep.sum(1).max())

    dense = torch.zeros(b, length, h, dtype=tok_emb.dtype, device=device)
    valid = torch.zeros(b, length, dtype=torch.bool, device=device)
    labels = torch.full((b, length), -100, dtype=torch.long, device=device)
    rr = rows.expand(b, lt)
    sel = text_mask & ~is_marker
    dense[rr[sel], start[sel]] = tok_emb[sel]
    valid[rr[sel], start[sel]] = True
    if target_mask is not None:
        tsel = sel & target_mask
        labels[rr[tsel], start[tsel]] = ids[tsel]

    expanded_pos: dict[int, torch.Tensor] = {}
    for marker, (feats, fmask) in modalities.items():
        n = feats.shape[1]
        first = start.masked_fill(~((ids == marker) & text_mask), 0).sum(1)  # (B,)
        pos = first[:, None] + torch.arange(n, device=device)[None]
        rn = rows.expand(b, n)
        dense[rn, pos] = feats.to(dense.dtype)
        valid[rn, pos] = fmask
        expanded_pos[marker] = pos

    # Squeeze out holes: every valid entry moves to its rank among the valid entries of its row.
    counts = valid.sum(1)
    out_len = int(counts.max())
    rank = valid.long().cumsum(1) - 1
    offset = (out_len - counts)[:, None] if align == "left" else torch.zeros_like(counts)[:, None]
    new_pos = rank + offset
    ra = rows.expand(b, length)
    embeds = torch.zeros(b, out_len, h, dtype=dense.dtype, device=device)
    embeds[ra[valid], new_pos[valid]] = dense[valid]
    out_labels = torch.full((b, out_len), -100, dtype=torch.long, device=device)
    out_labels[ra[valid], new_pos[valid]] = labels[valid]
    ar = torch.arange(out_len, device=device)[None]
    if align == "left":
        attn = ar >= (out_len - counts)[:, None]
        position_ids = (ar - (out_len - counts)[:, None]).clamp(min=0)
    else:
        attn = ar < counts[:, None]
        position_ids = ar.expand(b, out_len).clone()
    modality_positions = {
        m: torch.where(valid.gather(1, p), new_pos.gather(1, p), torch.full_like(p, -1)) for m, p in expanded_pos.items()
    }
    return Spliced(embeds, attn.long(), position_ids, out_labels, modality_positions)


def splice_loop(
    ids: torch.Tensor,
    text_mask: torch.Tensor,
    embed,
    modalities: dict[int, tuple[torch.Tensor, torch.Tensor]],
    target_mask: torch.Tensor | None = None,
    align: str = "right",
) -> Spliced:
    """Reference implementation with a Python loop over samples (for tests and ``make bench``)."""
    seqs, labs = [], []
    for i in range(ids.shape[0]):
        parts, lab = [], []
        for j in range(ids.shape[1]):
            if not text_mask[i, j]:
                continue
            t = int(ids[i, j])
            if t in modalities:
                feats, fmask = modalities[t]
                f = feats[i][fmask[i]]
                parts.append(f)
                lab += [-100] * f.shape[0]
            else:
                parts.append(embed(ids[i, j : j + 1]))
                lab.append(t if target_mask is not None and bool(target_mask[i, j]) else -100)
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
