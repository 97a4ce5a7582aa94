"""The feature cache: exact features, reuse, and invalidation when the encoder, the preprocessing or a clip changes."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import pytest
import torch

from tests.test_data_kit import link_synth, write_manifest_lines
from xemogpt.data.datamodule import BadSampleError, EmoCueDataModule
from xemogpt.data.schema import read_manifest
from xemogpt.encoders.audio_tiny import LogMelConvEncoder
from xemogpt.encoders.video_tiny import TinyCNNVideoEncoder
from xemogpt.models.xemogpt import XEmoGPT


def encoders(seed: int = 0):
    torch.manual_seed(seed)
    v = TinyCNNVideoEncoder(dim=12, channels=(8, 8), image_size=32, freeze=True)
    a = LogMelConvEncoder(dim=10, n_mels=32, channels=(16, 16), freeze=True)
    return v, a


@pytest.fixture()
def root(tmp_path, synth_root):
    r = tmp_path / "ds"
    recs = link_synth(synth_root, r, 6)
    # real copies for the clips a test replaces (the others stay links into the shared dataset)
    for rec in recs[:2]:
        p = r / rec["video"]
        p.unlink()
        shutil.copy(synth_root / rec["video"], p)
    write_manifest_lines(r, recs)
    return r


def make_dm(root, tmp_path, **kw):
    opts = dict(batch_size=4, num_workers=0, num_frames=4, frame_size=32, cache="none",
                features_dir=str(tmp_path / "features"))
    opts.update(kw)
    return EmoCueDataModule(str(root), **opts)


def raw_batch(dm, split="train"):
    return next(iter(dm._loader(split, shuffle=False, batch_size=64)))


def test_cached_features_equal_the_encoders_outputs_and_are_reused(root, tmp_path):
    venc, aenc = encoders()
    dm = make_dm(root, tmp_path)
    n = len(dm.samples)
    reports = dm.use_features(venc, aenc, progress=False)
    assert [(r.modality, r.computed, r.reused) for r in reports] == [("video", n, 0), ("audio", n, 0)]
    feats = raw_batch(dm)
    assert "frames" not in feats and "audio" not in feats  # the batch contract: features under their own keys
    media = raw_batch(make_dm(root, tmp_path))  # the same clips, decoded
    assert feats["ids"] == media["ids"] and feats["video_features"].shape == (len(media["ids"]), 4, 12)
    assert torch.equal(feats["video_feature_mask"], media["frame_mask"])
    with torch.no_grad():
        torch.testing.assert_close(feats["video_features"], venc(media["frames"]), rtol=1e-5, atol=1e-5)
        for i in range(len(media["ids"])):  # audio: each clip alone (padding changes an STFT's last frames)
            tok, mask = aenc(media["audio"][i:i + 1, : media["audio_mask"][i].sum()])
            k = int(mask.sum())
            torch.testing.assert_close(feats["audio_features"][i, :k], tok[0, :k], rtol=1e-5, atol=1e-5)
            assert int(feats["audio_feature_mask"][i].sum()) == k
    again = make_dm(root, tmp_path).use_features(venc, aenc, progress=False)
    assert [(r.computed, r.reused) for r in again] == [(0, n), (0, n)]


def test_a_changed_encoder_preprocessing_or_clip_never_reuses_stale_features(root, tmp_path, synth_root):
    venc, aenc = encoders()
    dm = make_dm(root, tmp_path)
    first = dm.use_features(venc, aenc, progress=False)
    before = raw_batch(dm)["video_features"]
    n = len(dm.samples)

    with torch.no_grad():  # retrained weights: a new video store, the audio one is reused
        venc.proj.weight.add_(0.5)
    dm2 = make_dm(root, tmp_path)
    r = dm2.use_features(venc, aenc, progress=False)
    assert [(x.computed, x.reused) for x in r] == [(n, 0), (0, n)] and r[0].store != first[0].store
    after = raw_batch(dm2)["video_features"]
    assert not torch.allclose(before, after)
    with torch.no_grad():
        torch.testing.assert_close(after, venc(raw_batch(make_dm(root, tmp_path))["frames"]), rtol=1e-5, atol=1e-5)

    # the same spec and weights in another instance reuse the cache; another spec with the same weights does not
    same = TinyCNNVideoEncoder(dim=12, channels=(8, 8), image_size=32, freeze=True)
    same.load_state_dict(venc.state_dict())
    assert make_dm(root, tmp_path).use_features(same, None, progress=False)[0].computed == 0
    resized = TinyCNNVideoEncoder(dim=12, channels=(8, 8), image_size=48, freeze=True)
    resized.load_state_dict(venc.state_dict())
    assert make_dm(root, tmp_path).use_features(resized, None, progress=False)[0].computed == n
    # preprocessing: a new frame size or frame count means new video features, audio unchanged
    r = make_dm(root, tmp_path, frame_size=48).use_features(venc, aenc, progress=False)
    assert [(x.computed, x.reused) for x in r] == [(n, 0), (0, n)]
    r = make_dm(root, tmp_path, sample_rate=8000).use_features(venc, aenc, progress=False)
    assert [(x.computed, x.reused) for x in r] == [(0, n), (n, 0)]
    # a replaced clip is encoded again (only that clip)
    clip = root / dm.samples[0].video
    clip.write_bytes((synth_root / dm.samples[5].video).read_bytes())
    r = make_dm(root, tmp_path).use_features(venc, aenc, progress=False)
    assert [(x.computed, x.reused) for x in r] == [(1, n - 1), (1, n - 1)]


def test_encoders_fill_the_cache_through_trainer_predict_and_a_fill_resumes(root, tmp_path):
    """The cache is filled by ``Trainer.predict(encoder)`` (its predict_step; Lightning's loop and progress bar), each
    batch written as it ends: a fill killed half-way keeps what was written and the next one encodes the rest."""
    import lightning as L

    venc, aenc = encoders()
    dm = make_dm(root, tmp_path)
    n = len(dm.samples)
    calls = []

    class Killed(Exception):
        pass

    class Stop(L.Callback):  # interrupts the first fill after its first batch
        def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
            calls.append(len(outputs["ids"]))
            raise Killed

    store = dm.feature_store("video", venc)
    from xemogpt.data.feature_cache import CacheReport, FeatureWriter

    report = CacheReport("video", store.key)
    keys = dm._clip_keys(store, dm._feature_samples())
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        callbacks=[FeatureWriter(store, keys, report, dm.skips), Stop()])
    with pytest.raises(Killed):
        trainer.predict(venc, dataloaders=dm._media_loader(dm._feature_samples(), 2), return_predictions=False)
    assert report.computed == calls[0] == 2
    r = dm.use_features(venc, None, trainer_options={"accelerator": "cpu", "devices": 1}, progress=False)
    assert (r[0].computed, r[0].reused) == (n - 2, 2)


def test_stages_read_features_for_frozen_encoders_only(root, tmp_path):
    """The runner switches the cache on for a stage's frozen encoders; the batch then carries their features and
    the media of the others."""
    venc, aenc = encoders()
    dm = make_dm(root, tmp_path)
    dm.use_features(venc, aenc, progress=False)
    b = raw_batch(dm)
    assert {"video_features", "audio_features"} <= set(b) and not {"frames", "audio"} & set(b)
    dm.use_features(venc, None, progress=False)  # a stage that trains the audio encoder
    b = raw_batch(dm)
    assert "video_features" in b and "audio" in b and "audio_features" not in b and "frames" not in b
    off = make_dm(root, tmp_path, features="off")
    assert off.use_features(venc, aenc, progress=False) == []
    b = raw_batch(off)
    assert "frames" in b and "audio" in b and not {"video_features", "audio_features"} & set(b)


def test_the_model_uses_cached_features_only_for_frozen_encoders():
    venc, aenc = encoders()
    host = SimpleNamespace(video_encoder=venc, audio_encoder=aenc, device=torch.device("cpu"), feature_memo=True,
                           _memo={}, training=True)
    feats, mask = torch.randn(2, 4, 12), torch.ones(2, 4, dtype=torch.bool)
    tok, tmask = torch.randn(2, 7, 10), torch.rand(2, 7) > 0.3
    batch = {"ids": ["a", "b"], "video_features": feats, "video_feature_mask": mask, "audio_features": tok,
             "audio_feature_mask": tmask}
    out, omask = XEmoGPT.encoder_tokens(host, batch, "video")
    assert torch.equal(out, feats) and torch.equal(omask, mask)
    out, omask = XEmoGPT.encoder_tokens(host, batch, "audio", torch.tensor([False, True]))
    assert torch.equal(out, tok[1:]) and torch.equal(omask, tmask[1:])
    venc.set_frozen(False)
    with pytest.raises(RuntimeError, match="cached video features but model.video_encoder trains"):
        XEmoGPT.encoder_tokens(host, batch, "video")


def test_data_cache_command_encodes_once_then_reuses(root, capsys):
    from xemogpt.cli import main

    args = ["data", "cache", "--recipe", "recipes/xemogpt-tiny.yaml", "--root", str(root), "--device", "cpu",
            "--no-progress", "data.num_workers=0", "data.cache=none"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "video features (" in out and ": 6 encoded, 0 reused" in out and "no samples skipped" in out
    assert main(args + ["--modality", "audio"]) == 0
    out = capsys.readouterr().out
    assert "audio features (" in out and ": 0 encoded, 6 reused" in out and "video features" not in out
    base = root / ".cache" / "features"
    assert (base / "video").is_dir() and (base / "cache_log.txt").exists()


def test_runs_that_reuse_features_still_count_the_clips_problems(synth_root, tmp_path):
    from tests.test_data_kit import record, write_clip

    root = tmp_path / "ds"
    recs = link_synth(synth_root, root, 3)
    write_clip(root / "clips" / "silent.mp4", audio_seconds=None)  # video only: kept, counted as no_audio
    (root / "clips" / "garbage.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    write_manifest_lines(root, [*recs, record("silent", "clips/silent.mp4"), record("garbage", "clips/garbage.mp4")])
    venc, aenc = encoders()

    def run():
        dm = make_dm(root, tmp_path)
        reports = dm.use_features(venc, aenc, progress=False)
        batch = raw_batch(dm)
        return dm, reports, batch

    first, reports, _ = run()
    assert [(r.computed, r.skipped) for r in reports] == [(4, 1), (4, 0)]  # the bad clip is met once per run
    again, reports, batch = run()
    assert [r.computed for r in reports] == [0, 0]  # nothing decoded or encoded for the good clips...
    # ...and yet the silent clip is reported by this run too, and the corrupt one skipped and counted
    problems = [(s, r) for s, r, _ in again.skips.handled + again.skips.items]
    assert sorted(problems) == [("garbage", "corrupt_media"), ("silent", "no_audio")]
    assert sorted(problems) == sorted((s, r) for s, r, _ in first.skips.handled + first.skips.items)
    i = batch["ids"].index("silent")
    assert batch["video_feature_mask"][i].all() and not batch["audio_feature_mask"][i].any()
    # strict stops at it, though nothing is decoded any more (its notes come from the cached features)
    write_manifest_lines(root, [*recs, record("silent", "clips/silent.mp4")])
    strict = make_dm(root, tmp_path, strict=True)
    assert [r.computed for r in strict.use_features(venc, aenc, progress=False)] == [0, 0]
    with pytest.raises(BadSampleError, match="'silent': no_audio"):
        raw_batch(strict)


def test_a_repacked_clip_is_encoded_again(synth_root, tmp_path):
    from xemogpt.data.streaming import pack_dataset, read_pack_info

    root = tmp_path / "ds"
    recs = link_synth(synth_root, root, 4)
    for rec in recs:  # real copies: this test replaces one
        p = root / rec["video"]
        p.unlink()
        shutil.copy(synth_root / rec["video"], p)
    write_manifest_lines(root, recs)
    venc, aenc = encoders()
    pack = tmp_path / "pack"

    def encode():
        dm = EmoCueDataModule(str(pack), batch_size=4, num_workers=0, num_frames=4, frame_size=32,
                              features_dir=str(tmp_path / "features"))
        return [(r.computed, r.reused) for r in dm.use_features(venc, aenc, progress=False)]

    pack_dataset(root, pack, mode="bytes", workers=1, progress=False)
    first_id = read_pack_info(pack)["pack_id"]
    assert encode() == [(4, 0), (4, 0)]
    pack_dataset(root, pack, mode="bytes", workers=1, progress=False)  # the same inputs: the same pack
    assert read_pack_info(pack)["pack_id"] == first_id and encode() == [(0, 4), (0, 4)]
    (root / recs[0]["video"]).write_bytes((synth_root / read_manifest(synth_root)[5].video).read_bytes())
    pack_dataset(root, pack, mode="bytes", workers=1, progress=False)  # same manifest, another clip inside
    assert read_pack_info(pack)["pack_id"] != first_id
    assert encode() == [(4, 0), (4, 0)]  # no stale features for the replaced clip
