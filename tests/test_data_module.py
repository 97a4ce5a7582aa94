"""The DataModule on bad input: every kind is skipped or handled and counted, never fatal unless strict."""

from __future__ import annotations

import json

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


def test_a_training_run_survives_bad_input_and_prints_a_summary_each_epoch(bad_root, capsys, tmp_path):
    root, expected = bad_root
    dm = EmoCueDataModule(str(root), batch_size=3, num_workers=0, cache="none")
    model = Recorder()
    trainer(max_epochs=2, callbacks=[DataSummaryCallback()], default_root_dir=tmp_path).fit(model, datamodule=dm)
    train_kept = [i for i in expected["kept"] if i not in ("synth00004", "synth00005")]
    assert sorted(model.seen) == sorted(train_kept * 2)
    out = capsys.readouterr().out
    assert out.count("sample(s) skipped") == 2 and "epoch 1: 10 sample(s) skipped" in out
    # the per-sample log: one line per skipped or kept-with-a-problem sample, with its id and reason
    log = (tmp_path / "data_problems.txt").read_text(encoding="utf-8").splitlines()
    assert len(log) == sum(expected["skipped"].values()) + sum(expected["handled"].values())
    assert "skipped garbage [corrupt_media]" in "\n".join(log) and any(x.startswith("kept voice [odd_audio]")
                                                                       for x in log)


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


# ---------------------------------------------------------------------------------------------------------------
# one dataset per bad-input kind: lenient runs skip (or keep) and count exactly that sample with its reason; strict
# runs stop at it, naming the sample and the reason


def _kind_files(kind: str, root):
    """(manifest lines for the bad sample(s), its id, the reason, whether it is skipped) for ``kind``."""
    from tests.test_data_kit import write_clip, write_wav

    clips = root / "clips"
    clips.mkdir(parents=True, exist_ok=True)
    if kind == "truncated":  # the header survives: the readable frames are decoded
        write_clip(clips / "b.mp4", frames=48, faststart=True)
        data = (clips / "b.mp4").read_bytes()
        (clips / "b.mp4").write_bytes(data[: int(len(data) * 0.6)])
        return [record("b", "clips/b.mp4")], "b", "truncated", False
    if kind == "truncated_header":  # cut before the header (moov at the end): nothing can be read
        write_clip(clips / "b.mp4", frames=48)
        data = (clips / "b.mp4").read_bytes()
        (clips / "b.mp4").write_bytes(data[: len(data) // 2])
        return [record("b", "clips/b.mp4")], "b", "corrupt_media", True
    if kind == "zero_byte":
        (clips / "b.mp4").write_bytes(b"")
        return [record("b", "clips/b.mp4")], "b", "empty_media", True
    if kind == "garbage":
        (clips / "b.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
        return [record("b", "clips/b.mp4")], "b", "corrupt_media", True
    if kind == "video_only":
        write_clip(clips / "b.mp4", audio_seconds=None)
        return [record("b", "clips/b.mp4")], "b", "no_audio", False
    if kind == "audio_only_file":  # a sound-only file named as the sample's video
        write_wav(clips / "b.wav")
        return [record("b", "clips/b.wav")], "b", "no_video", False
    if kind == "no_frames":
        write_clip(clips / "b.mkv", frames=0, container="matroska")
        return [record("b", "clips/b.mkv")], "b", "no_frames", False
    if kind == "single_frame":
        write_clip(clips / "b.mp4", frames=1)
        return [record("b", "clips/b.mp4")], "b", "single_frame", False
    if kind == "very_long":  # just over LONG_CLIP_SECONDS (600 s) at 1 frame per second
        write_clip(clips / "b.mp4", frames=601, fps=1, size=(16, 16))
        return [record("b", "clips/b.mp4")], "b", "long_clip", False
    if kind == "very_high_resolution":  # above 4K UHD
        write_clip(clips / "b.mp4", frames=2, fps=2, size=(4096, 2160))
        return [record("b", "clips/b.mp4")], "b", "high_resolution", False
    if kind == "odd_sample_rate":
        write_clip(clips / "b.mp4", audio_seconds=None)
        write_wav(clips / "b.wav", rate=11025)
        return [record("b", "clips/b.mp4", "clips/b.wav")], "b", "odd_audio", False
    if kind == "odd_channel_count":
        write_wav(clips / "b.wav", channels=6)
        return [record("b", None, "clips/b.wav")], "b", "odd_audio", False
    if kind == "missing_subtitle":
        write_clip(clips / "b.mp4")
        return [{k: v for k, v in record("b", "clips/b.mp4").items() if k != "subtitle"}], "b", \
            "missing_subtitle", False
    if kind == "non_utf8_subtitle":
        write_clip(clips / "b.mp4")
        line = json.dumps(record("b", "clips/b.mp4", subtitle="caf\u00e9"), ensure_ascii=False).encode("latin-1")
        return [line], "b", "bad_encoding", False
    if kind == "missing_field":  # no id: the log names the manifest line
        write_clip(clips / "b.mp4")
        return [{k: v for k, v in record("b", "clips/b.mp4").items() if k != "id"}], "manifest.jsonl:3", \
            "missing_field", True
    if kind == "no_media_field":
        return [record("b", None)], "b", "no_media", True
    if kind == "missing_media":
        return [record("b", "clips/absent.mp4")], "b", "missing_media", True
    if kind == "duplicate_id":  # the first record is kept, the second skipped
        write_clip(clips / "b.mp4")
        return [record("b", "clips/b.mp4"), record("b", "clips/b.mp4", subtitle="again")], "b", "duplicate_id", True
    if kind == "escaping_path":
        write_clip(root.parent / "outside.mp4")
        return [record("b", "../outside.mp4")], "b", "escaping_path", True
    if kind == "bad_json":
        return ["{not json"], "manifest.jsonl:3", "bad_json", True
    if kind == "bad_split":
        write_clip(clips / "b.mp4")
        return [record("b", "clips/b.mp4", split="holdout")], "b", "bad_value", True
    raise AssertionError(kind)


BAD_KINDS = ["truncated", "truncated_header", "zero_byte", "garbage", "video_only", "audio_only_file", "no_frames",
             "single_frame", "very_long", "very_high_resolution", "odd_sample_rate", "odd_channel_count",
             "missing_subtitle", "non_utf8_subtitle", "missing_field", "no_media_field", "missing_media",
             "duplicate_id", "escaping_path", "bad_json", "bad_split"]


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_each_bad_input_kind_is_counted_with_id_and_reason_and_fatal_under_strict(kind, synth_root, tmp_path):
    root = tmp_path / "ds"
    good = link_synth(synth_root, root, 2)
    lines, sid, reason, skipped = _kind_files(kind, root)
    write_manifest_lines(root, [*good, *lines])

    def make(strict: bool) -> EmoCueDataModule:
        return EmoCueDataModule(str(root), batch_size=8, num_workers=0, num_frames=4, frame_size=32, cache="none",
                                strict=strict)

    dm = make(False)
    dm.setup()
    ids = all_ids(dm)
    good_ids = [r["id"] for r in good]
    if skipped and kind != "duplicate_id":
        assert sorted(ids) == sorted(good_ids)
    else:  # kept (with what could be decoded), or the first of two records with one id
        assert sorted(ids) == sorted(good_ids + ["b"])
    problems = dm.skips.items if skipped else dm.skips.handled
    # exactly this sample and this reason, nothing about the good clips
    assert [(s, r) for s, r, _ in dm.skips.items + dm.skips.handled] == [(sid, reason)]
    assert problems[0][2]  # a detail saying what was wrong
    assert f"{'skipped' if skipped else 'kept'} {sid} [{reason}]" in "\n".join(dm.skips.lines())
    assert f"{reason}=1" in dm.skips.summary()

    with pytest.raises(BadSampleError) as err:
        strict = make(True)
        strict.setup()
        all_ids(strict)
    assert repr(sid) in str(err.value) and reason in str(err.value)


def test_an_audio_only_sample_is_not_a_problem(synth_root, tmp_path):
    from tests.test_data_kit import write_wav

    root = tmp_path / "ds"
    good = link_synth(synth_root, root, 1)
    write_wav(root / "clips" / "voice.wav", seconds=0.5)
    write_manifest_lines(root, [*good, record("voice", None, "clips/voice.wav")])
    dm = EmoCueDataModule(str(root), batch_size=8, num_workers=0, num_frames=4, frame_size=32, cache="none",
                          strict=True)
    batch = next(iter(dm._loader("train", shuffle=False)))
    i = batch["ids"].index("voice")
    assert not batch["frame_mask"][i].any() and int(batch["audio_mask"][i].sum()) == 8000
    assert dm.skips.items == [] and dm.skips.handled == []


def test_train_cli_strict_stops_at_the_first_bad_clip_with_a_message(bad_root, tmp_path, capsys):
    """`xemogpt train --strict` is data.strict=true: the bad sample is named, no traceback, exit code 2."""
    from xemogpt.cli import main

    root, _ = bad_root
    rc = main(["train", "--recipe", "recipes/xemogpt-tiny.yaml", "--run-dir", str(tmp_path / "run"), "--strict",
               f"data.root={root}", "data.num_workers=0", "data.cache=none"])
    err = capsys.readouterr().err
    assert rc == 2 and "\nerror: " in "\n" + err and "rerun without --strict" in err and "Traceback" not in err
