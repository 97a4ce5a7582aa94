"""Bridges: every variant for both modalities (shapes, masks, padding), and every pre-training task learns."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.test_zoo_fixtures import one_thread  # noqa: F401  (autouse)
from xemogpt import registry

B, T, D, E, K = 16, 8, 32, 16, 4
VARIANTS = ["none", "mlp", "transformer", "qformer", "temporal-conv"]


def small(name: str) -> dict:
    spec = {"name": name}
    if name not in ("none",):
        spec["proj_dim"] = 16
    if name == "qformer":
        spec["num_queries"] = 4
    if name == "vecb":
        spec["num_frames"] = T
    return spec


def build(kind: str, name: str, **extra):
    return registry.build(kind, {**small(name), **extra}, f"model.{kind}", input_dim=D, text_dim=E)


def learnable_batch(seed: int = 0):
    """K classes of clips: class prototype + a shared temporal ramp + noise; cue texts are the class embedding.

    The ramp makes frame order visible, the prototypes make the clips alignable with their texts, and smooth
    sequences make masked frames predictable from their neighbours. Every third clip has two padded frames.
    """
    g = torch.Generator().manual_seed(seed)
    cls = torch.arange(B) % K
    proto = torch.randn(K, D, generator=g)
    ramp = torch.randn(1, 1, D, generator=g)
    t = torch.linspace(-1, 1, T).view(1, T, 1)
    x = proto[cls][:, None, :] + ramp * t + 0.1 * torch.randn(B, T, D, generator=g)
    text = F.normalize(torch.randn(K, E, generator=g), dim=-1)[cls]
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[::3, T - 2:] = False
    return x, mask, text


def train_losses(bridge, task: str, steps: int = 40, lr: float = 3e-3) -> list[float]:
    x, mask, text = learnable_batch()
    opt = torch.optim.AdamW(bridge.parameters(), lr=lr)
    hist = []
    for _ in range(steps):
        loss = bridge.task_losses(x, mask, text)[task]
        opt.zero_grad()
        loss.backward()
        opt.step()
        hist.append(float(loss.detach()))
    return hist


def mean(xs):
    return sum(xs) / len(xs)


# --- registration, shapes and masks ---------------------------------------------------------------------------------
def test_variants_are_registered_for_both_modalities():
    for kind in ("video_bridge", "audio_bridge"):
        names = {e.name for e in registry.entries(kind)}
        assert set(VARIANTS) <= names, (kind, names)
    assert "vecb" in {e.name for e in registry.entries("video_bridge")}
    assert "aecb" in {e.name for e in registry.entries("audio_bridge")}


@pytest.mark.parametrize("kind,name", [("video_bridge", n) for n in VARIANTS + ["vecb"]]
                         + [("audio_bridge", n) for n in VARIANTS + ["aecb"]])
def test_shapes_masks_and_padding(kind, name):
    torch.manual_seed(0)
    bridge = build(kind, name).eval()
    x, mask, _ = learnable_batch()
    mask = mask.clone()
    mask[1] = False  # a clip without this modality
    with torch.no_grad():
        out = bridge(x, mask)
    changes = getattr(bridge, "changes_length", False)
    n_out = 4 if changes else T
    assert out.shape == (B, n_out, bridge.output_dim) and torch.isfinite(out).all()
    out_mask = bridge.out_mask(mask) if changes else mask
    assert out_mask.shape == (B, n_out) and not out_mask[1].any() and out_mask[2].all()
    # a padded clip gives the same valid outputs as the same clip without its padding
    with torch.no_grad():
        alone = bridge(x[:1, : T - 2], mask[:1, : T - 2])
        padded = bridge(torch.cat([x[:1, : T - 2], torch.randn(1, 2, D)], 1), mask[3:4])
    assert mask[3].sum() == T - 2
    cut = n_out if changes else T - 2
    assert torch.allclose(alone[:, :cut], padded[:, :cut], atol=1e-5)


def test_vecb_width_and_heads_follow_the_encoder():
    clip_l = {"hidden_size": 1024, "num_attention_heads": 16, "intermediate_size": 4096, "hidden_act": "quick_gelu",
              "layer_norm_eps": 1e-5, "attention_dropout": 0.0}
    vecb = registry.build("video_bridge", {"name": "vecb"}, "k", input_dim=1024, text_dim=768, encoder_layer=clip_l)
    layer = vecb.layers[0]
    assert vecb.output_dim == 1024 and layer.self_attn.heads == 16 and layer.mlp.fc1.out_features == 4096
    assert vecb.position_embedding.shape == (1, 16, 1024) and len(vecb.layers) == 2 and vecb.final_norm is None
    narrow = registry.build("video_bridge", {"name": "vecb", "dim": 256, "layers": 3}, "k", input_dim=1024,
                            encoder_layer=clip_l)
    # another width: 64-wide heads and a 4x MLP (the encoder's layer shape no longer applies)
    assert narrow.output_dim == 256 and len(narrow.layers) == 3 and narrow.layers[0].self_attn.heads == 4
    assert narrow(torch.randn(2, 16, 1024)).shape[-1] == 256
    with pytest.raises(ValueError, match="position embedding"):
        vecb(torch.randn(1, 17, 1024))


def test_tasks_switch_from_the_recipe():
    x, mask, text = learnable_batch()
    full = build("video_bridge", "vecb")
    assert set(full.task_losses(x, mask, text)) == {"contrastive", "temporal_order", "masked_frame"}
    only = build("video_bridge", "vecb", tasks=["masked_frame"])
    assert set(only.task_losses(x, mask, text)) == {"masked_frame"} and not hasattr(only, "temporal_disc_head")
    assert set(build("video_bridge", "vecb").task_losses(x, mask, None)) == {"temporal_order", "masked_frame"}
    with pytest.raises(ValueError, match="video_bridge.tasks: unknown value"):
        build("video_bridge", "vecb", tasks=["jigsaw"])
    assert build("video_bridge", "transformer", tasks=[]).task_losses(x, mask, text) == {}


# --- each published task learns on a small learnable batch -------------------------------------------------------
ORDER_VISIBLE = {"order_permute": "before_position"}


@pytest.mark.parametrize("task,extra", [("contrastive", {}), ("temporal_order", ORDER_VISIBLE),
                                        ("temporal_order", {**ORDER_VISIBLE, "order_scope": "sample",
                                                            "order_head": "pairwise"}),
                                        ("masked_frame", {}), ("masked_frame", {"mask_mode": "token"})])
def test_vecb_task_loss_falls(task, extra):
    torch.manual_seed(0)
    # the projected order head sees order only through the pooled clip embedding: it needs more steps
    steps = 100 if extra.get("order_head", "projected") == "projected" and task == "temporal_order" else 40
    hist = train_losses(build("video_bridge", "vecb", tasks=[task], **extra), task, steps=steps)
    assert mean(hist[-5:]) < 0.75 * hist[0], hist


def test_released_temporal_task_cannot_see_order():
    """As released, frames are permuted after their position embedding is added: the layers and the pooling do not
    depend on order, so the permuted clip's embedding equals the clip's and the head cannot learn (loss ~ ln 2)."""
    torch.manual_seed(0)
    vecb = build("video_bridge", "vecb", tasks=["temporal_order"]).eval()
    x, _, _ = learnable_batch()
    h0 = vecb.embed(x)
    perm = torch.randperm(T)
    a = vecb.clip_embedding(vecb.encode(h0), None)
    b = vecb.clip_embedding(vecb.encode(h0[:, perm]), None)
    assert torch.allclose(a, b, atol=1e-5)
    hist = train_losses(build("video_bridge", "vecb", tasks=["temporal_order"]), "temporal_order")
    assert abs(mean(hist[-5:]) - 0.693) < 0.05, hist


def test_vecb_attention_pooling_contrastive_loss_falls():
    torch.manual_seed(0)
    for pooling in ("attention", "query"):
        bridge = build("video_bridge", "vecb", tasks=["contrastive"], pooling=pooling)
        assert (bridge.attention_pooling is not None) == (pooling == "attention")
        assert (bridge.query_pooling is not None) == (pooling == "query")
    hist = train_losses(bridge, "contrastive")
    # 4 clips share each text: the loss floor is ln 4
    assert mean(hist[-5:]) < 0.75 * hist[0] and mean(hist[-5:]) < 1.45, hist


def test_aecb_contrastive_loss_falls():
    torch.manual_seed(0)
    hist = train_losses(build("audio_bridge", "aecb", layers=1), "contrastive")
    assert mean(hist[-5:]) < 0.75 * hist[0] and mean(hist[-5:]) < 1.45, hist


@pytest.mark.parametrize("name", ["mlp", "transformer", "qformer", "temporal-conv"])
def test_ablation_bridges_learn_the_alignment_task(name):
    torch.manual_seed(0)
    hist = train_losses(build("audio_bridge", name), "contrastive", steps=30)
    assert mean(hist[-5:]) < 0.75 * hist[0], hist


def test_standalone_training_step_on_features():
    bridge = build("video_bridge", "qformer")
    x, mask, text = learnable_batch()
    loss = bridge.training_step({"features": x, "mask": mask, "text_emb": text}, 0)
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert isinstance(bridge.configure_optimizers(), torch.optim.AdamW)


@pytest.mark.parametrize("ratio,expected", [(None, T // 2), (0.25, 2), (0.75, 6)])
def test_masked_frame_exact_count_from_the_recipe(ratio, expected):
    """``mask_count: exact`` hides round(mask_ratio * T) valid frames per clip (mask token variant)."""
    extra = {} if ratio is None else {"mask_ratio": ratio}
    vecb = build("video_bridge", "vecb", tasks=["masked_frame"], mask_mode="token", mask_count="exact", **extra)
    assert vecb.hparams.mask_ratio == (0.5 if ratio is None else ratio)
    with torch.no_grad():
        vecb.mask_token.fill_(123.0)  # a value no real feature takes
    seen = []
    hook = vecb.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach()))
    x, _, text = learnable_batch()
    vecb.task_losses(x, None, text)
    masked = (seen[-1] == 123.0).all(-1)  # (B, T) frames replaced by the mask token
    assert masked.sum(1).tolist() == [expected] * B
    assert masked.float().mean(0).min() > 0  # the masked frames vary across clips, every position gets its turn
    # padded clips: the ratio applies to their valid frames, padded frames are never chosen
    _, mask, _ = learnable_batch()  # every third clip has T - 2 valid frames
    vecb.task_losses(x, mask, text)
    hook.remove()
    masked = (seen[-1] == 123.0).all(-1)
    frac = 0.5 if ratio is None else ratio
    want = [max(1, round(frac * int(n))) for n in mask.sum(1)]
    assert masked.sum(1).tolist() == want and not (masked & ~mask).any()


def test_masked_frame_released_zeroes_each_frame_with_probability_half():
    """Released: each frame zeroed with probability 0.5 before the position embedding; padding never hidden."""
    vecb = build("video_bridge", "vecb", tasks=["masked_frame"])
    assert vecb.mask_token is None and vecb.frame_reconstructor.weight.shape == (D, D)
    seen = []
    hook = vecb.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach()))
    torch.manual_seed(1)
    x, mask, text = learnable_batch()
    fracs = []
    for _ in range(40):
        vecb.task_losses(x, mask, text)
        zero = (seen[-1] == 0).all(-1)
        assert not (zero & ~mask).any() or bool((x[~mask] == 0).all())
        fracs.append(float(zero[mask].float().mean()))
    hook.remove()
    assert abs(mean(fracs) - 0.5) < 0.05 and len(set(fracs)) > 5  # about half, varying from step to step


def test_aecb_layer_count_and_width_follow_the_encoder_unless_set():
    hubert_l = {"hidden_size": 1024, "num_attention_heads": 16, "intermediate_size": 4096, "hidden_act": "gelu",
                "layer_norm_eps": 1e-5, "hidden_dropout": 0.1, "attention_dropout": 0.1, "activation_dropout": 0.0}
    aecb = registry.build("audio_bridge", {"name": "aecb"}, "k", input_dim=1024, text_dim=768, encoder_layer=hubert_l)
    layer = aecb.layers[0]
    assert len(aecb.layers) == 2 and aecb.output_dim == 1024
    assert layer.attention.heads == 16 and layer.feed_forward.intermediate_dense.out_features == 4096  # HuBERT-large
    assert layer.dropout.p == 0.1 and layer.attention.dropout == 0.1  # dropouts from the HuBERT config
    deep = registry.build("audio_bridge", {"name": "aecb", "layers": 4, "dim": 256}, "k", input_dim=1024,
                          text_dim=768)
    assert len(deep.layers) == 4 and deep(torch.randn(2, 7, 1024)).shape == (2, 7, 256)
