"""Frame preprocessing read from each model's own config matches that library's own evaluation transform.

Each case feeds the same non-square image to the library's transform (a Hugging Face image processor, open_clip's
``image_transform``, timm's ``create_transform``, all on PIL images) and to :class:`ImagePreprocess` built from the
same config (on a uint8 tensor). Images are smooth so that the only differences left are those of the resampling
kernels (PIL vs torch); a wrong geometry (cropping instead of squashing or padding) differs by an order more, which
each case checks too so that the comparison can fail.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.test_zoo_fixtures import one_thread  # noqa: F401  (autouse)
from xemogpt.encoders.image_preprocess import ImagePreprocess, from_hf_processor, from_open_clip, from_timm

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.3, 0.4)
CLOSE_MEAN, CLOSE_MAX = 0.01, 0.05  # kernel differences only (normalised units)
WRONG = 0.05  # a wrong geometry differs at least this much on average


def smooth_image(h: int = 60, w: int = 100, seed: int = 0) -> torch.Tensor:
    """(3, h, w) uint8: a random 5 x 7 colour field upsampled smoothly."""
    g = torch.Generator().manual_seed(seed)
    x = F.interpolate(torch.rand(1, 3, 5, 7, generator=g), size=(h, w), mode="bicubic", align_corners=True)
    return (x.clamp(0, 1)[0] * 255).round().to(torch.uint8)


def pil(img: torch.Tensor):
    from PIL import Image

    return Image.fromarray(img.permute(1, 2, 0).numpy())


def assert_matches(ours: ImagePreprocess, ref: torch.Tensor, img: torch.Tensor, *wrong: ImagePreprocess) -> None:
    out = ours(img[None])[0]
    assert out.shape == ref.shape, (out.shape, ref.shape)
    diff = (out - ref).abs()
    assert float(diff.mean()) < CLOSE_MEAN and float(diff.max()) < CLOSE_MAX, (float(diff.mean()), float(diff.max()))
    for other in wrong:
        o = other(img[None])[0]
        assert o.shape != ref.shape or float((o - ref).abs().mean()) > WRONG, other


def modes(pre: ImagePreprocess) -> list[ImagePreprocess]:
    """The same preprocessing under every other resize mode (what a mode-blind reader would do)."""
    out = []
    for m in ("shortest", "longest", "squash"):
        if m != pre.resize_mode:
            d = pre.to_dict()
            d["resize_mode"] = m
            out.append(ImagePreprocess.from_dict(d))
    return out


@pytest.mark.parametrize("img_hw", [(60, 100), (100, 60)])
@pytest.mark.parametrize("config", [
    # CLIP: shortest edge, centre crop (deliberately unlike CLIP's numbers)
    {"do_resize": True, "size": {"shortest_edge": 36}, "do_center_crop": True, "crop_size": {"height": 32, "width": 32},
     "resample": 2, "image_mean": list(MEAN), "image_std": list(STD)},
    # SigLIP-like: an exact (height, width) resize and no crop
    {"do_resize": True, "size": {"height": 40, "width": 32}, "do_center_crop": False, "resample": 3,
     "image_mean": [0.5] * 3, "image_std": [0.5] * 3},
], ids=["shortest-edge-crop", "height-width"])
def test_hugging_face_image_processor(config, img_hw):
    from transformers import CLIPImageProcessor

    img = smooth_image(*img_hw)
    ref = torch.as_tensor(np.array(CLIPImageProcessor(**config)(images=pil(img), return_tensors="pt")["pixel_values"]))
    ours = from_hf_processor(config, 32)
    assert_matches(ours, ref[0], img, *modes(ours))


@pytest.mark.parametrize("img_hw", [(60, 100), (100, 60)])
@pytest.mark.parametrize("resize_mode", ["shortest", "longest", "squash"])
def test_open_clip_image_transform(resize_mode, img_hw):
    import open_clip

    cfg = {"size": 32, "mean": MEAN, "std": STD, "interpolation": "bilinear", "resize_mode": resize_mode,
           "fill_color": 0}
    img = smooth_image(*img_hw)
    ref = open_clip.image_transform(32, is_train=False, mean=MEAN, std=STD, interpolation="bilinear",
                                    resize_mode=resize_mode, fill_color=0)(pil(img))
    ours = from_open_clip(cfg)
    assert ours.resize_mode == resize_mode
    assert_matches(ours, ref, img, *modes(ours))


@pytest.mark.parametrize("img_hw", [(60, 100), (100, 60)])
@pytest.mark.parametrize("crop_mode", ["center", "squash", "border"])
def test_timm_eval_transform(crop_mode, img_hw):
    from timm.data import create_transform

    data_cfg = {"input_size": (3, 32, 32), "crop_pct": 0.8, "crop_mode": crop_mode, "interpolation": "bicubic",
                "mean": MEAN, "std": STD}
    img = smooth_image(*img_hw)
    ref = create_transform(**data_cfg)(pil(img))
    ours = from_timm(data_cfg)
    assert ours.resize == (40 if crop_mode == "center" else (40, 40))  # floor(32 / 0.8)
    assert_matches(ours, ref, img, *modes(ours))


def test_shortest_edge_rounds_like_torchvision():
    # torchvision's Resize(int) truncates the long edge: 36 * 100 / 60 = 60.0, 36 * 101 / 60 = 60.6 -> 60
    pre = ImagePreprocess(resize=36, crop=None, mean=MEAN, std=STD)
    assert pre.resized_size(60, 100) == (36, 60) and pre.resized_size(60, 101) == (36, 60)
    assert pre.resized_size(101, 60) == (60, 36)


def test_preprocessing_round_trips_through_its_dict():
    pre = from_timm({"input_size": (3, 32, 32), "crop_pct": 0.8, "crop_mode": "border", "interpolation": "bilinear",
                     "mean": MEAN, "std": STD})
    again = ImagePreprocess.from_dict(pre.to_dict())
    assert again == pre and again.fill == tuple(round(255 * v) / 255 for v in MEAN)
    img = smooth_image()
    assert torch.equal(again(img[None]), pre(img[None]))
    with pytest.raises(ValueError, match="resize_mode"):
        pre.updated({"resize_mode": "letterbox"})
    # dicts written before resize modes existed read as shortest-edge
    old = {"resize": 36, "crop": [32, 32], "mean": list(MEAN), "std": list(STD), "interpolation": "bicubic"}
    assert ImagePreprocess.from_dict(old).resize_mode == "shortest"
