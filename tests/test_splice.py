import pytest
import torch

from xemogpt.llm.splice import pad_ids, splice, splice_loop

A, V = 1000, 1001


def _batch(seed=0, b=5, h=8):
    g = torch.Generator().manual_seed(seed)
    emb = torch.nn.Embedding(1002, h)
    seqs, targets = [], []
    for i in range(b):
        pre = torch.randint(0, 900, (1 + i,), generator=g).tolist()
        mid = torch.randint(0, 900, (2,), generator=g).tolist()
        tgt = torch.randint(0, 900, (3 + (i % 3),), generator=g).tolist()
        seqs.append(pre + [A] + mid + [V] + [7] + tgt)
        targets.append(len(tgt))
    ids, mask = pad_ids(seqs, 0)
    tmask = torch.zeros_like(mask)
    for i, s in enumerate(seqs):
        tmask[i, len(s) - targets[i]: len(s)] = True
    af = torch.randn(b, 6, h, generator=g)
    am = torch.arange(6)[None] < torch.tensor([6, 3, 0, 5, 1])[:b, None]  # ragged audio, one sample without audio
    vf = torch.randn(b, 4, h, generator=g)
    vm = torch.ones(b, 4, dtype=torch.bool)
    return ids, mask, tmask, emb, {A: (af, am), V: (vf, vm)}


def test_vectorised_splice_equals_loop_right_and_left():
    ids, mask, tmask, emb, mods = _batch()
    for align in ("right", "left"):
        fast = splice(ids, mask, emb, mods, tmask if align == "right" else None, align=align)
        slow = splice_loop(ids, mask, emb, mods, tmask if align == "right" else None, align=align)
        assert fast.inputs_embeds.shape == slow.inputs_embeds.shape
        assert torch.equal(fast.attention_mask, slow.attention_mask)
        assert torch.allclose(fast.inputs_embeds, slow.inputs_embeds)
        assert torch.equal(fast.labels, slow.labels)
        valid = fast.attention_mask.bool()
        assert torch.equal(fast.position_ids[valid], slow.position_ids[valid])


def test_labels_only_on_targets_and_lengths():
    ids, mask, tmask, emb, mods = _batch()
    sp = splice(ids, mask, emb, mods, tmask)
    assert int((sp.labels != -100).sum()) == int(tmask.sum())
    # every sample's length = text tokens - 2 markers + valid audio + valid video tokens
    expect = mask.sum(1) - 2 + mods[A][1].sum(1) + mods[V][1].sum(1)
    assert torch.equal(sp.attention_mask.sum(1), expect)
    # modality positions point at the spliced features
    pos = sp.modality_positions[V]
    for i in range(ids.shape[0]):
        assert torch.allclose(sp.inputs_embeds[i, pos[i]], mods[V][0][i])


def test_slot_checks_name_the_sample():
    """A slot may be absent only for a sample without that modality, and never twice."""
    ids, mask, tmask, emb, mods = _batch()
    lost = ids.clone()
    lost[0, lost[0] == A] = 5  # sample 0 has 6 valid audio tokens but no audio slot
    with pytest.raises(ValueError, match="sample 0 .* 0 copies of slot 1000 and 6 valid"):
        splice(lost, mask, emb, mods, tmask)
    twice = ids.clone()
    twice[1, 0] = V
    with pytest.raises(ValueError, match="sample 1 .* 2 copies of slot 1001"):
        splice(twice, mask, emb, mods, tmask)
    # sample 2 has no audio: without its slot it splices as with it (the slot takes no place either way)
    no_slot = ids.clone()
    no_slot[2, no_slot[2] == A] = 5
    a = splice(ids, mask, emb, mods, tmask)
    b = splice(no_slot, mask, emb, mods, tmask)
    assert int(b.attention_mask[2].sum()) == int(a.attention_mask[2].sum()) + 1  # the token 5 now takes a place


@pytest.mark.parametrize("cap", [1, 3, 6, 9, 40])
def test_prompt_cap_keeps_the_first_places_and_the_whole_target(cap):
    """The official max_context_len rule: the prompt part (text and modality tokens) keeps its first `cap` places --
    cutting through a modality block where it falls -- and the target follows in full."""
    ids, mask, tmask, emb, mods = _batch(seed=2)
    fast = splice(ids, mask, emb, mods, tmask, prompt_cap=cap)
    slow = splice_loop(ids, mask, emb, mods, tmask, prompt_cap=cap)
    full = splice(ids, mask, emb, mods, tmask)
    assert torch.equal(fast.attention_mask, slow.attention_mask) and torch.equal(fast.labels, slow.labels)
    assert torch.allclose(fast.inputs_embeds, slow.inputs_embeds)
    for i in range(ids.shape[0]):
        n_target = int(tmask[i].sum())
        n_prompt = int(full.attention_mask[i].sum()) - n_target
        kept = min(cap, n_prompt)
        assert int(fast.attention_mask[i].sum()) == kept + n_target
        assert bool(fast.truncated[i]) == (n_prompt > cap)
        assert torch.equal(fast.inputs_embeds[i, :kept], full.inputs_embeds[i, :kept])
        target, ref = slice(kept, kept + n_target), slice(n_prompt, n_prompt + n_target)
        assert torch.equal(fast.inputs_embeds[i, target], full.inputs_embeds[i, ref])
        assert torch.equal(fast.labels[i, target], full.labels[i, ref])


def test_width_mismatch_message():
    ids, mask, tmask, emb, mods = _batch()
    mods[V] = (torch.randn(ids.shape[0], 4, 5), mods[V][1])
    try:
        splice(ids, mask, emb, mods, tmask)
    except ValueError as e:
        assert "hidden size" in str(e)
    else:
        raise AssertionError


def test_ragged_and_missing_video_and_gradients_match_the_loop():
    """Training backpropagates through the splice: features and text embeddings get the loop's gradients, also when
    video is ragged and one sample has none (its marker then takes no place)."""
    ids, mask, tmask, emb, mods = _batch(seed=1)
    vf, _ = mods[V]
    mods[V] = (vf, torch.arange(4)[None] < torch.tensor([4, 0, 2, 3, 1])[:, None])
    w = torch.randn(64)
    grads = []
    for fn in (splice, splice_loop):
        emb.zero_grad(set_to_none=True)
        feats = {m: (f.clone().requires_grad_(True), fm) for m, (f, fm) in mods.items()}
        sp = fn(ids, mask, emb, feats, tmask)
        valid = sp.attention_mask.bool()
        (sp.inputs_embeds[valid] * w[: sp.inputs_embeds.shape[-1]]).sum().backward()
        grads.append((sp, emb.weight.grad.clone(), [feats[m][0].grad.clone() for m in (A, V)]))
    (fast, g_emb, g_feat), (slow, s_emb, s_feat) = grads
    assert torch.equal(fast.attention_mask, slow.attention_mask) and torch.equal(fast.labels, slow.labels)
    assert torch.allclose(fast.inputs_embeds, slow.inputs_embeds)
    assert torch.equal(fast.attention_mask.sum(1), mask.sum(1) - 2 + mods[A][1].sum(1) + mods[V][1].sum(1))
    assert torch.allclose(g_emb, s_emb)
    for a, b in zip(g_feat, s_feat):
        assert torch.allclose(a, b)
    assert not g_feat[1][1].any()  # the sample without video: its (masked) features take no part
    assert bool((fast.modality_positions[V][1] == -1).all())
