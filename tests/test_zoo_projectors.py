"""Projectors: linear, MLP, Q-Former and attention fusion (shapes, masks, use of the other modality)."""

from __future__ import annotations

import pytest
import torch

from tests.test_zoo_fixtures import one_thread  # noqa: F401  (autouse)
from xemogpt import registry
from xemogpt.component import ShapeError

DIN, DCTX, H = 24, 16, 40


def build(name: str, **extra):
    spec = {"name": name, **extra}
    wired = {"input_dim": DIN, "output_dim": H}
    if name == "attention-fusion":
        wired["context_dim"] = DCTX
    return registry.build("projector", spec, "model.video_projector", **wired)


def inputs(b=3, n=6, m=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    x, ctx = torch.randn(b, n, DIN, generator=g), torch.randn(b, m, DCTX, generator=g)
    mask = torch.ones(b, n, dtype=torch.bool)
    mask[1, 4:] = False
    cmask = torch.ones(b, m, dtype=torch.bool)
    cmask[0, 3:] = False
    cmask[2] = False  # sample 2 has no other modality
    return x, mask, ctx, cmask


@pytest.mark.parametrize("name", ["linear", "mlp"])
def test_tokenwise_projectors_keep_length_and_mask(name):
    proj = build(name)
    x, mask, _, _ = inputs()
    out, m = proj(x, mask)
    assert out.shape == (3, 6, H) and m is mask and proj.output_dim == H
    # token-wise: each output token depends on its own input token only
    x2 = x.clone()
    x2[:, 0] += 1.0
    assert torch.allclose(proj(x2, mask)[0][:, 1:], out[:, 1:])
    with pytest.raises(ShapeError, match="input_dim"):
        proj(torch.randn(1, 2, DIN + 1), None)


def test_mlp_projector_is_llava_shaped():
    proj = build("mlp")
    linears = [m for m in proj.mlp if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(DIN, H), (H, H)]
    assert len([m for m in build("mlp", depth=3, hidden_dim=8).mlp if isinstance(m, torch.nn.Linear)]) == 3


def test_qformer_projector_gives_a_fixed_number_of_tokens():
    torch.manual_seed(0)
    proj = build("qformer", num_queries=4, layers=1).eval()
    x, mask, _, _ = inputs()
    mask = mask.clone()
    mask[2] = False
    out, m = proj(x, mask)
    assert out.shape == (3, 4, H) and m.tolist() == [[True] * 4, [True] * 4, [False] * 4]
    assert torch.isfinite(out).all()
    # padded inputs are not read
    x2 = x.clone()
    x2[1, 4:] = 100.0
    assert torch.allclose(proj(x2, mask)[0][1], out[1], atol=1e-5)


def test_attention_fusion_reads_the_other_modality():
    torch.manual_seed(0)
    proj = build("attention-fusion").eval()
    assert proj.uses_context
    x, mask, ctx, cmask = inputs()
    out, m = proj(x, mask, context=ctx, context_mask=cmask)
    assert out.shape == (3, 6, H) and m is mask and torch.isfinite(out).all()
    ctx2 = ctx.clone()
    ctx2[0, :3] += 1.0  # valid context changes the fused tokens
    assert not torch.allclose(proj(x, mask, context=ctx2, context_mask=cmask)[0][0], out[0])
    ctx3 = ctx.clone()
    ctx3[0, 3:] = 50.0  # padded context does not
    assert torch.allclose(proj(x, mask, context=ctx3, context_mask=cmask)[0][0], out[0], atol=1e-5)
    # without any valid context a sample is projected unfused
    alone, _ = proj(x, mask)
    assert torch.allclose(out[2], alone[2], atol=1e-6)
    with pytest.raises(ShapeError, match="context"):
        proj(x, mask, context=torch.randn(3, 5, DCTX + 2), context_mask=cmask)


def test_model_wires_context_dim_and_encoder_layer_only_where_taken():
    from xemogpt.models.xemogpt import accepted

    assert accepted("projector", {"name": "attention-fusion"}, context_dim=7) == {"context_dim": 7}
    assert accepted("projector", {"name": "qformer"}, context_dim=7) == {}
    layer = {"hidden_size": 8}
    assert accepted("video_bridge", {"name": "vecb"}, encoder_layer=layer) == {"encoder_layer": layer}
    assert accepted("video_bridge", {"name": "mlp"}, encoder_layer=layer) == {}
    assert accepted("audio_bridge", {"name": "aecb"}, encoder_layer=None) == {}
