"""The DataModule on bad input: every kind is skipped or handled and counted, never fatal unless strict."""

from __future__ import annotations

import pytest

from tests.test_data_kit import Recorder, bad_media_dataset, link_synth, record, trainer, write_manifest_lines
from xemogpt.data.callbacks import DataSummaryCallback
from xemogpt.data.datamodule import BadSampleError, EmoCueDataModule
from xemogpt.data.schema import SchemaError, read_manifest


@pytest.fixture(scope="module")
def bad_root(tmp_path_factory, synth_root):
    root = tmp_path_factory.mktemp("bad") / "ds"
    root.mkdir()
    return root, bad_media_dataset(root, synth_root)


def all_ids(dm: EmoCueDataModule) -> list[str]:
    ids = []
    for split in ("train", "val", "test"):
        for batch in dm._loader(split, shuffle=False):
            ids += batch["ids"]
    return ids


@pytest.mark.parametrize("cache", ["none", "memory"])
def test_every_bad_input_kind_is_skipped_or_handled_and_counted(bad_root, cache):
    root, expected = bad_root
    dm = EmoCueDataModule(str(root), batch_size=4, num_workers=0, cache=cache)
    dm.setup()
    ids = all_ids(dm)
    assert sorted(ids) == sorted(expected["kept"])
    assert dm.skips.counts() == expected["skipped"]
    assert dm.skips.handled_counts() == expected["handled"]
    # each problem is logged once with its sample and reason, even when met in several epochs
    all_ids(dm)
    assert dm.skips.counts() == expected["skipped"] and dm.skips.handled_counts() == expected["handled"]
    lines = dm.skips.lines()
    assert "skipped escape [escaping_path]" in "\n".join(lines) and any(x.startswith("kept cut_fast [truncated]")
                                                                        for x in lines)
    summary = dm.skips.summary()
    assert summary.startswith("10 sample(s) skipped: bad_json=1, bad_value=1, corrupt_media=2")
    assert "kept with problems:" in summary and "truncated=1" in summary


def test_kept_samples_carry_what_could_be_decoded(bad_root):
    root, _ = bad_root
    dm = EmoCueDataModule(str(root), batch_size=32, num_workers=0, cache="none")
    dm.setup()
    batch = next(iter(dm._loader("train", shuffle=False)))
    by = {sid: i for i, sid in enumerate(batch["ids"])}
    has_v, has_a = batch["frame_mask"].any(1), batch["audio_mask"].any(1)
    assert has_v[by["silent"]] and not has_a[by["silent"]]
    assert not has_v[by["voice"]] and batch["audio_mask"][by["voice"]].sum() == 8000  # 0.5 s at 11025 Hz, 6 ch
    assert not has_v[by["noframes"]] and has_a[by["noframes"]]
    single = batch["frames"][by["single"]]
    assert has_v[by["single"]] and bool((single == single[0]).all())
    s = {x.id: x for x in batch["samples"]}
    assert s["nosub"].subtitle == "" and s["latin1"].subtitle == "caf\ufffd"
    assert "\udc80" not in s["surrogate"].subtitle and s["surrogate"].subtitle.encode("utf-8")
    assert {sid for sid, _, _ in batch["handled"]} >= {"silent", "single", "cut_fast"}


def test_strict_makes_the_first_problem_fatal(bad_root):
    root, _ = bad_root
    with pytest.raises(BadSampleError, match="rerun without --strict"):
        EmoCueDataModule(str(root), num_workers=0, cache="none", strict=True).setup()
    with pytest.raises(SchemaError, match="duplicate sample id"):
        read_manifest(_dupes_only(root), strict=True)


def _dupes_only(root):
    sub = root.parent / "dupes"
    write_manifest_lines(sub, [record("a", "clips/x.mp4"), record("a", "clips/y.mp4")])
    return sub


def test_read_manifest_keeps_the_first_of_duplicate_ids_and_reports_the_rest(tmp_path):
    write_manifest_lines(tmp_path, [record("a", "v1.mp4"), record("b", "v2.mp4"), record("a", "v3.mp4")])
    seen = []
    samples = read_manifest(tmp_path, on_problem=lambda *p: seen.append(p))
    assert [(s.id, s.video) for s in samples] == [("a", "v1.mp4"), ("b", "v2.mp4")]
    assert seen == [("a", "duplicate_id", f"duplicate sample id 'a' in {tmp_path}", True)]


def test_a_training_run_survives_bad_input_and_prints_a_summary_each_epoch(bad_root, capsys):
    root, expected = bad_root
    dm = EmoCueDataModule(str(root), batch_size=3, num_workers=0, cache="none")
    model = Recorder()
    trainer(max_epochs=2, callbacks=[DataSummaryCallback(write_log=False)]).fit(model, datamodule=dm)
    train_kept = [i for i in expected["kept"] if i not in ("synth00004", "synth00005")]
    assert sorted(model.seen) == sorted(train_kept * 2)
    out = capsys.readouterr().out
    assert out.count("sample(s) skipped") == 2 and "epoch 1: 10 sample(s) skipped" in out


def test_order_depends_only_on_seed_and_epoch(synth_root, tmp_path):
    root = tmp_path / "ds"
    write_manifest_lines(root, link_synth(synth_root, root, 20))
    orders = {}
    for seed in (0, 0, 1):
        dm = EmoCueDataModule(str(root), batch_size=4, num_workers=0, cache="none", seed=seed)
        dm.setup()
        loader = dm.train_dataloader()
        per_epoch = []
        for epoch in (0, 1):
            loader.sampler.set_epoch(epoch)
            per_epoch.append([sid for b in _ids_only(loader) for sid in b])
        orders.setdefault(seed, []).append(per_epoch)
    assert orders[0][0] == orders[0][1]  # same seed, same order, epoch by epoch
    assert orders[0][0][0] != orders[0][0][1]  # reshuffled every epoch
    assert orders[1][0][0] != orders[0][0][0]
    assert sorted(orders[0][0][0]) == sorted(orders[0][0][1])


def _ids_only(loader):
    # the order comes from the sampler; decoding is not needed to check it
    return [[loader.dataset.samples[i].id for i in idx] for idx in loader.batch_sampler]


def test_under_ddp_each_rank_takes_its_share_of_the_same_order(monkeypatch):
    from torch.utils.data import DistributedSampler

    from xemogpt.data.datamodule import ResumableSampler

    s = ResumableSampler(11, shuffle=True, seed=3)
    assert isinstance(s, DistributedSampler)  # so Lightning does not wrap it in another distributed sampler
    single = s.order()
    monkeypatch.setattr(ResumableSampler, "num_replicas", property(lambda self: 2))
    parts = []
    for rank in (0, 1):
        monkeypatch.setattr(ResumableSampler, "rank", property(lambda self, r=rank: r))
        parts.append(list(iter(s)))
    assert len(s) == 6 and [len(p) for p in parts] == [6, 6]
    assert sorted(set(parts[0]) | set(parts[1])) == list(range(11))
    assert parts[0] == (single + single[:1])[0::2] and parts[1] == (single + single[:1])[1::2]


def test_forked_workers_decode_after_the_parent_did(synth_root, tmp_path):
    # The parent decodes first (as a cache fill or a check does), then forks loader workers: they must not inherit
    # its swscale context (a deadlock before the fix); timeout turns a hang into a failure.
    from torch.utils.data import DataLoader

    from xemogpt.data.datamodule import Collator, EmoCueDataset

    root = tmp_path / "ds"
    records = link_synth(synth_root, root, 4)
    write_manifest_lines(root, records)
    samples = read_manifest(root)
    ds = EmoCueDataset(root, samples, num_frames=4, frame_size=32)
    assert ds[0]["frames"].shape == (4, 3, 32, 32)
    loader = DataLoader(ds, batch_size=2, num_workers=2, timeout=120,
                        collate_fn=Collator({s.id: s for s in samples}, 4, 32))
    assert sorted(i for b in loader for i in b["ids"]) == sorted(s.id for s in samples)
