"""Packs (litdata shards): the local round trip, bad input at pack time, and mid-epoch resume through checkpoints."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.test_data_kit import Recorder, bad_media_dataset, link_synth, trainer, write_manifest_lines
from xemogpt.data.datamodule import EmoCueDataModule
from xemogpt.data.streaming import PACK_INFO, is_pack, pack_dataset


@pytest.fixture(scope="module")
def small_root(tmp_path_factory, synth_root):
    root = tmp_path_factory.mktemp("small") / "ds"
    write_manifest_lines(root, link_synth(synth_root, root, 20))
    return root


def items_by_id(dm: EmoCueDataModule, split: str) -> dict:
    ds = dm.dataset(split)
    return {it["id"]: it for it in (ds[i] for i in range(len(ds)))}


@pytest.mark.parametrize("mode", ["bytes", "decoded"])
def test_pack_round_trip_gives_the_same_samples_and_tensors(small_root, tmp_path, mode):
    out = tmp_path / f"pack-{mode}"
    report = pack_dataset(small_root, out, mode=mode, num_frames=8, frame_size=32, workers=1, progress=False,
                          chunk_bytes="256KB")
    assert is_pack(out) and not is_pack(small_root)
    info = json.loads((out / PACK_INFO).read_text())
    assert info["mode"] == mode and sum(info["splits"].values()) == 20 and report.counts == info["splits"]
    assert (info["preprocess"] is not None) == (mode == "decoded")
    direct = EmoCueDataModule(str(small_root), num_frames=8, frame_size=32, num_workers=0, cache="none")
    packed = EmoCueDataModule(str(out), num_frames=8, frame_size=32, num_workers=0)
    packed.setup()
    assert [s.to_dict() for s in packed.samples] == [s.to_dict() for s in direct.samples]
    for split in ("train", "val", "test"):
        a, b = items_by_id(direct, split), items_by_id(packed, split)
        assert sorted(a) == sorted(b) and len(a) == info["splits"][split]
        for sid in a:
            assert np.array_equal(np.asarray(a[sid]["frames"]), np.asarray(b[sid]["frames"])), sid
            audio = torch.as_tensor(np.asarray(b[sid]["audio"]))
            audio = audio.float() / 32767.0 if audio.dtype == torch.int16 else audio
            np.testing.assert_allclose(audio.numpy(), a[sid]["audio"], atol=1.0 / 32767 * 1.01)
    batch = next(iter(packed.train_dataloader()))
    assert batch["frames"].shape[1:] == (8, 3, 32, 32) and batch["audio"].dtype == torch.float32
    if mode == "decoded":  # a decoded pack serves one preprocessing only, and says so
        with pytest.raises(ValueError, match="frame_size: pack 32 vs run 48"):
            EmoCueDataModule(str(out), num_frames=8, frame_size=48, num_workers=0).setup()
    else:  # a bytes pack decodes with any preprocessing
        other = EmoCueDataModule(str(out), num_frames=4, frame_size=16, num_workers=0)
        assert next(iter(other.train_dataloader()))["frames"].shape[1:] == (4, 3, 16, 16)


def test_packing_skips_and_counts_bad_input(bad_root_for_pack, tmp_path):
    root, expected = bad_root_for_pack
    out = tmp_path / "pack"
    report = pack_dataset(root, out, mode="decoded", num_frames=4, frame_size=16, workers=1, progress=False)
    assert report.skips.counts() == expected["skipped"]
    assert report.skips.handled_counts() == expected["handled"]
    assert "skipped garbage [corrupt_media]" in (out / "pack_log.txt").read_text()
    dm = EmoCueDataModule(str(out), num_frames=4, frame_size=16, num_workers=0, batch_size=64)
    ids = [sid for split in ("train", "val", "test") for b in dm._loader(split, False) for sid in b["ids"]]
    assert sorted(ids) == sorted(expected["kept"])
    # bytes packs find unreadable containers at pack time too; the rest is met while loading
    report = pack_dataset(root, tmp_path / "bytes", mode="bytes", workers=1, progress=False)
    assert report.skips.counts() == expected["skipped"]


@pytest.fixture(scope="module")
def bad_root_for_pack(tmp_path_factory, synth_root):
    root = tmp_path_factory.mktemp("badpack") / "ds"
    root.mkdir()
    return root, bad_media_dataset(root, synth_root)


@pytest.mark.parametrize("source", ["manifest", "pack"])
def test_resume_mid_epoch_continues_with_the_same_samples(small_root, tmp_path, source):
    from lightning.pytorch.callbacks import ModelCheckpoint

    root = small_root
    if source == "pack":
        root = tmp_path / "pack"
        pack_dataset(small_root, root, mode="decoded", num_frames=4, frame_size=16, workers=1, progress=False)

    def dm():
        return EmoCueDataModule(str(root), batch_size=3, num_workers=0, num_frames=4, frame_size=16,
                                cache="memory", seed=7)

    n_train = len(dm().split_samples("train"))
    steps_per_epoch = -(-n_train // 3)
    stop = steps_per_epoch + 2  # a checkpoint in the middle of the second epoch
    ckpts = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=stop, save_top_k=-1,
                            filename="{step}")
    uninterrupted = Recorder()
    trainer(max_epochs=3, enable_checkpointing=True, callbacks=[ckpts]).fit(uninterrupted, datamodule=dm())
    full = uninterrupted.seen
    assert len(full) == 3 * n_train and full[:n_train] != full[n_train:2 * n_train]  # reshuffled per epoch
    resumed = Recorder()
    trainer(max_epochs=3).fit(resumed, datamodule=dm(), ckpt_path=tmp_path / "ckpt" / f"step={stop}.ckpt")
    consumed = n_train + 2 * 3
    assert len(resumed.seen) == 3 * n_train - consumed
    assert resumed.seen == full[consumed:]  # the rest of epoch 2, then epoch 3, in the uninterrupted order


def test_data_pack_command_and_strict(bad_root_for_pack, small_root, tmp_path, capsys):
    from xemogpt.cli import main

    assert main(["data", "pack", "--root", str(small_root), "--out", str(tmp_path / "p"), "--workers", "1",
                 "--no-progress"]) == 0
    assert "packed 20 samples (train=" in capsys.readouterr().out and is_pack(tmp_path / "p")
    root, _ = bad_root_for_pack
    assert main(["data", "pack", "--root", str(root), "--out", str(tmp_path / "q"), "--workers", "1",
                 "--no-progress", "--strict"]) == 1
    assert "rerun without --strict" in capsys.readouterr().err
    # packing over something that is not a pack is refused
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    assert main(["data", "pack", "--root", str(small_root), "--out", str(tmp_path / "other"), "--no-progress"]) == 2


class _FolderBucket:
    """Object storage stand-in (no network here): ``s3://bucket/key`` is the file ``<folder>/bucket/key``; the
    calls are the ones litdata's providers make."""

    def __init__(self, folder):
        self.folder = folder

    def _path(self, uri: str):
        return self.folder / uri.split("://", 1)[1]

    def upload_file(self, local_path: str, remote_path: str) -> None:
        dst = self._path(remote_path)
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(open(local_path, "rb").read())

    def download_file(self, remote_path: str, local_path: str) -> None:
        with open(local_path, "wb") as f:
            f.write(self._path(remote_path).read_bytes())


def test_a_pack_rewritten_at_the_same_uri_is_never_read_through_a_stale_copy(small_root, tmp_path, monkeypatch):
    import litdata.streaming.fs_provider as fs_provider

    from xemogpt.data.streaming import read_pack_info, read_pack_samples

    bucket = _FolderBucket(tmp_path / "store")
    monkeypatch.setattr(fs_provider, "_get_fs_provider", lambda uri, options=None: bucket)
    uri = f"s3://bucket/{tmp_path.name}/emocue"
    pack_dataset(small_root, uri, mode="bytes", workers=1, progress=False)
    assert (tmp_path / "store" / "bucket" / tmp_path.name / "emocue" / "train" / "index.json").exists()
    first = read_pack_info(uri)
    assert first["mode"] == "bytes" and len(read_pack_samples(uri)) == 20
    # the same URI, written again from a smaller dataset: its info and manifest are what is read now
    other = tmp_path / "other"
    write_manifest_lines(other, link_synth_records(small_root, other, 5))
    pack_dataset(other, uri, mode="bytes", workers=1, progress=False)
    again = read_pack_info(uri)
    assert again["pack_id"] != first["pack_id"] and sum(again["splits"].values()) == 5
    assert len(read_pack_samples(uri)) == 5


def link_synth_records(src_root, root, n: int) -> list[dict]:
    """The first ``n`` records of the dataset at ``src_root`` with their clips linked into ``root``."""
    import os

    from xemogpt.data.schema import read_manifest

    out = []
    for s in read_manifest(src_root)[:n]:
        dst = root / s.video
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.symlink((src_root / s.video).resolve(), dst)
        out.append(s.to_dict())
    return out
