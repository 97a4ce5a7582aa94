"""Dataset adapters: each published layout written in tmp_path with tiny real media, imported, and checked."""

from __future__ import annotations

import json
import os
import shutil
import wave
from pathlib import Path

import av
import numpy as np
import pytest

from xemogpt import registry
from xemogpt.cli import main
from xemogpt.data.adapters import (
    ImportProblemError,
    get_adapter,
    hash_split,
    import_dataset,
    normalize_emotion,
    parse_label_list,
    parse_map,
    probe,
)
from xemogpt.data.adapters.cues import cue_function, offline_extractor, sentence_cues, split_sentences
from xemogpt.data.schema import read_info, read_manifest, resolve_media

# ---------------------------------------------------------------------------------------------------------------
# tiny real media, written once per session and copied where each test needs it


def _write_video(path: Path, *, audio: bool, frames: int = 4) -> None:
    with av.open(str(path), "w") as c:
        v = c.add_stream("mpeg4", rate=8)
        v.width = v.height = 32
        v.pix_fmt = "yuv420p"
        a = None
        if audio:
            a = c.add_stream("aac", rate=16000)
            a.layout = "mono"
        for i in range(frames):
            img = np.full((32, 32, 3), 40 * i, np.uint8)
            for pkt in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(pkt)
        for pkt in v.encode():
            c.mux(pkt)
        if a is not None:
            t = np.arange(8000) / 16000
            frame = av.AudioFrame.from_ndarray(
                (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None], format="fltp", layout="mono"
            )
            frame.sample_rate = 16000
            for pkt in a.encode(frame):
                c.mux(pkt)
            for pkt in a.encode():
                c.mux(pkt)


def _write_wav(path: Path, seconds: float = 0.25, rate: int = 16000) -> None:
    t = np.arange(int(seconds * rate)) / rate
    pcm = (0.3 * np.sin(2 * np.pi * 220 * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


@pytest.fixture(scope="session")
def media_kit(tmp_path_factory) -> dict[str, Path]:
    """One file of each kind: video with audio, silent video, wav, and a corrupt 'mp4'."""
    d = tmp_path_factory.mktemp("kit")
    kit = {"av": d / "av.mp4", "silent": d / "silent.mp4", "wav": d / "tone.wav", "corrupt": d / "corrupt.mp4"}
    _write_video(kit["av"], audio=True)
    _write_video(kit["silent"], audio=False)
    _write_wav(kit["wav"])
    kit["corrupt"].write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\xde\xad\xbe\xef" * 64)
    return kit


def put(kit: dict[str, Path], kind: str, folder: Path, name: str) -> Path:
    """Copy the kit file ``kind`` to ``folder/name``."""
    folder.mkdir(parents=True, exist_ok=True)
    dst = folder / name
    shutil.copy(kit[kind], dst)
    return dst


def write_csv(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def test_media_kit_is_what_the_tests_assume(media_kit):
    assert probe(media_kit["av"]).has_audio and probe(media_kit["av"]).has_video
    assert not probe(media_kit["silent"]).has_audio
    wav = probe(media_kit["wav"])
    assert wav.has_audio and not wav.has_video and wav.duration == pytest.approx(0.25, abs=0.01)


# ---------------------------------------------------------------------------------------------------------------
# EMER v2: descriptions, media in two folders, a silent video with a separate wav, GB18030 subtitles


def test_emer_v2_descriptions_media_lookup_and_gb18030_subtitles(tmp_path, media_kit):
    videos, audios = tmp_path / "video", tmp_path / "audio"
    put(media_kit, "av", videos, "s1.mp4")
    put(media_kit, "silent", videos / "batch2", "s2.mp4")  # found recursively
    put(media_kit, "wav", audios, "s2.wav")  # the silent video's separate audio, in another --media folder
    put(media_kit, "wav", audios, "s3.wav")  # audio-only sample
    desc = write_csv(
        tmp_path / "emer.csv",
        "name,chinese,english\n"
        's1,她笑了。她很开心。,"The corners of her mouth turn up into a smile. Her voice is loud and fast, '
        'with a rising pitch. She says she won the prize. She is happy."\n'
        "s2,他皱眉。,He frowns and his eyes narrow. He is angry.\n"
        "s3,声音颤抖。,Her voice trembles and is soft. She seems afraid.\n",
    )
    subs = write_csv(
        tmp_path / "subtitle.csv",
        "name,chinese,english\ns1,我赢了！,I won!\ns2,走开。,Go away.\ns3,我害怕。,I'm scared.\n",
        encoding="gb18030",
    )
    adapter = get_adapter("emer_v2")([videos, audios], descriptions=desc, subtitles=subs, cues="sentences")
    res = import_dataset(adapter, tmp_path / "out")
    by_id = {s.id: s for s in res.samples}
    assert sorted(by_id) == ["s1", "s2", "s3"]
    s1, s2, s3 = by_id["s1"], by_id["s2"], by_id["s3"]
    assert s1.description.startswith("The corners of her mouth turn up")
    assert s1.cues == {
        "visual": ["The corners of her mouth turn up into a smile."],
        "auditory": ["Her voice is loud and fast, with a rising pitch."],
        "emotional": ["She says she won the prize.", "She is happy."],
    }
    assert s2.cues["visual"] == ["He frowns and his eyes narrow."] and s2.cues["emotional"] == ["He is angry."]
    assert s3.cues["auditory"] == ["Her voice trembles and is soft."]
    assert [s1.subtitle, s2.subtitle, s3.subtitle] == ["I won!", "Go away.", "I'm scared."]
    # media: own track, separate wav, audio-only; all under DIR/media as symlinks to the sources
    assert (s1.video, s1.audio) == ("media/s1.mp4", None)
    assert (s2.video, s2.audio) == ("media/s2.mp4", "media/s2.wav")
    assert (s3.video, s3.audio) == (None, "media/s3.wav")
    out = tmp_path / "out"
    assert (out / "media/s2.wav").is_symlink()
    assert (out / s2.audio).samefile(audios / "s2.wav") and (out / s2.video).samefile(videos / "batch2/s2.mp4")
    assert res.report.counts["separate_audio"] == 1 and res.report.problems == []
    assert any("GB18030" in n and "subtitle.csv" in n for n in res.report.notes)
    # what was written reads back identically
    assert [s.to_dict() for s in read_manifest(out)] == [s.to_dict() for s in res.samples]
    info = read_info(out)
    assert info["import"]["kept"] == 3 and info["source"]["format"] == "emer_v2"
    assert sum(info["splits"].values()) == 3

    # --labels joined by name (discrete labels here; s3 has none)
    labels = write_csv(tmp_path / "label.csv", "name,discrete,valence\ns1,happiness,2.5\ns2,anger,-3\n")
    joined = get_adapter("emer_v2")([videos, audios], descriptions=desc, labels=labels, cues="sentences").load()
    emo = {s.id: (s.emotion, s.meta.get("valence")) for s in joined.samples}
    assert emo == {"s1": ("happy", 2.5), "s2": ("angry", -3.0), "s3": (None, None)}

    zh = get_adapter("emer_v2")([videos, audios], descriptions=desc, language="zh", cues="sentences").load()
    zh1 = next(s for s in zh.samples if s.id == "s1")
    assert zh1.description == "她笑了。她很开心。"
    assert zh1.cues["visual"] == ["她笑了。"] or zh1.cues["emotional"][0] == "她笑了。"
    assert split_sentences(zh1.description) == ["她笑了。", "她很开心。"]


def test_emer_v2_header_variants(tmp_path, media_kit):
    """The published final-EMER-reason.csv header is name,chinese,english (its README says ``names``); a file with
    only the column of the language in use is enough, and a missing one is named."""
    put(media_kit, "av", tmp_path / "clips", "sample_00000007.mp4")
    text = '"Her mouth turns up. In the text, the subtitle says, ""Then let\'s meet, okay?"" She is happy."'
    for header, row in (("names,chinese,english", f"sample_00000007,她笑了。,{text}"),
                        ("name,english", f"sample_00000007,{text}")):
        desc = write_csv(tmp_path / "emer.csv", f"{header}\n{row}\n")
        res = get_adapter("emer_v2")([tmp_path / "clips"], descriptions=desc, cues="sentences").load()
        assert [s.id for s in res.samples] == ["sample_00000007"], header
        assert res.samples[0].description == text[1:-1].replace('""', '"')
    desc = write_csv(tmp_path / "emer.csv", "name,chinese\nsample_00000007,她笑了。\n")
    with pytest.raises(ValueError, match=r"emer.csv \(given with --descriptions\): missing column\(s\) english"):
        get_adapter("emer_v2")([tmp_path / "clips"], descriptions=desc, cues="sentences").load()
    assert get_adapter("emer_v2")([tmp_path / "clips"], descriptions=desc, language="zh", cues="sentences").load() \
        .samples[0].description == "她笑了。"


def test_symlinked_media_resolve_inside_the_data_root(tmp_path, media_kit):
    """Default imports symlink media into DIR/media; the schema's resolver must accept them (and still refuse
    manifest paths that leave the root)."""
    put(media_kit, "av", tmp_path / "src", "x.mp4")
    labels = write_csv(tmp_path / "l.csv", "name,discrete\nx,happy\n")
    res = import_dataset(get_adapter("mer_discrete")([tmp_path / "src"], labels=labels), tmp_path / "out")
    assert (tmp_path / "out" / res.samples[0].video).is_symlink()
    assert resolve_media(tmp_path / "out", res.samples[0].video, sample_id="x").samefile(tmp_path / "src/x.mp4")
    with pytest.raises(ValueError, match="escapes"):
        resolve_media(tmp_path / "out", "media/../../src/x.mp4", sample_id="x")


# ---------------------------------------------------------------------------------------------------------------
# EMER v1 and MER label files


def test_emer_v1_labels_subtitles_and_reasons(tmp_path, media_kit):
    media = tmp_path / "video"
    for n in ("a", "b", "c"):
        put(media_kit, "av", media, f"{n}.mp4")
    csv_path = write_csv(
        tmp_path / "emer_v1.csv",
        "names,emotions,subtitles,reasons\n"
        'a,"Happiness, surprise",What a gift!,She smiles widely. She is delighted by the gift.\n'
        "b,sadness,,His head is lowered. He is sad.\n"
        "c,anger,Leave me alone,\n",
    )
    res = get_adapter("emer_v1")([media], descriptions=csv_path, cues="sentences").load()
    by_id = {s.id: s for s in res.samples}
    assert sorted(by_id) == ["a", "b"]
    assert by_id["a"].emotion == "happy" and by_id["a"].labels == ["happy", "surprised"]
    assert by_id["a"].subtitle == "What a gift!"
    assert by_id["a"].description == "She smiles widely. She is delighted by the gift."
    assert by_id["a"].cues["visual"] == ["She smiles widely."]
    assert by_id["b"].emotion == "sad" and by_id["b"].subtitle == ""
    assert res.report.items == [("b", "missing_subtitle"), ("c", "missing_field")]
    assert res.report.handled["missing_subtitle"] == 1 and res.report.skipped["missing_field"] == 1
    assert "emer_v1.csv:4" in res.report.problems[1].where


def test_mer2024_open_vocabulary_labels(tmp_path, media_kit):
    media = tmp_path / "video"
    for n in ("m1", "m2", "m3", "m4"):
        put(media_kit, "av", media, f"{n}.mp4")
    labels = write_csv(
        tmp_path / "ov.csv",
        "name,openset\n"
        "m1,\"['Happy', 'joy', 'excited']\"\n"
        "m2,\"['worried', 'sadness']\"\n"
        "m3,\"['happy'\"\n"
        "m4,[]\n",
    )
    subs = write_csv(tmp_path / "subs.csv", "name,sentence\nm1,Great news.\n")
    res = get_adapter("mer2024_ov")([media], labels=labels, subtitles=subs).load()
    by_id = {s.id: s for s in res.samples}
    assert by_id["m1"].labels == ["happy", "excited"] and by_id["m1"].emotion is None
    assert by_id["m2"].labels == ["worried", "sad"]
    assert by_id["m1"].subtitle == "Great news." and by_id["m2"].subtitle == ""
    assert by_id["m1"].cues == {"visual": [], "auditory": [], "emotional": []}
    assert res.report.items == [("m2", "missing_subtitle"), ("m3", "bad_value"), ("m4", "missing_field")]


def test_mer_discrete_valence_and_split_column(tmp_path, media_kit):
    media = tmp_path / "video"
    for n in ("d1", "d2", "d3", "d4", "d5"):
        put(media_kit, "av", media, f"{n}.avi" if n == "d3" else f"{n}.mp4")
    labels = write_csv(
        tmp_path / "label.csv",
        "name,discrete,valence,split\n"
        "d1,happy,3.5,train\nd2,Surprise,0,Validation\nd3,neutral,-1.25,test\nd4,sad,low,train\nd5,angry,-2,holdout\n",
    )
    res = get_adapter("mer_discrete")([media], labels=labels, split_from="split").load()
    by_id = {s.id: s for s in res.samples}
    assert sorted(by_id) == ["d1", "d2", "d3"]
    assert [by_id[i].emotion for i in ("d1", "d2", "d3")] == ["happy", "surprised", "neutral"]
    assert [by_id[i].split for i in ("d1", "d2", "d3")] == ["train", "val", "test"]
    assert by_id["d3"].meta["valence"] == -1.25 and by_id["d3"].video.endswith("d3.avi")
    assert res.report.items == [("d4", "bad_value"), ("d5", "bad_value")]
    with pytest.raises(ValueError, match="no such column"):
        get_adapter("mer_discrete")([media], labels=labels, split_from="fold").load()


# ---------------------------------------------------------------------------------------------------------------
# file-name-labelled datasets


def test_ravdess_file_names_modalities_and_speaker_splits(tmp_path, media_kit):
    root = tmp_path / "RAVDESS"
    put(media_kit, "av", root / "Actor_01", "01-01-03-01-01-01-01.mp4")  # AV, happy
    put(media_kit, "wav", root / "Actor_01", "03-01-03-01-01-01-01.wav")  # same recording, audio-only
    put(media_kit, "silent", root / "Actor_02", "02-01-04-02-02-01-02.mp4")  # video-only, sad strong
    put(media_kit, "wav", root / "Actor_02", "03-01-04-02-02-01-02.wav")  # its audio
    put(media_kit, "wav", root / "Actor_02", "03-02-07-01-01-02-02.wav")  # audio only, disgust, song
    put(media_kit, "wav", root / "Actor_02", "03-01-09-01-01-01-02.wav")  # emotion 09: no such code
    put(media_kit, "wav", root, "readme_audio.wav")
    res = get_adapter("ravdess")([root], split_ratios="0.5,0.25,0.25", seed=3).load()
    by_id = {s.id: s for s in res.samples}
    assert sorted(by_id) == ["01-01-03-01-01-01-01", "02-01-04-02-02-01-02", "03-02-07-01-01-02-02"]
    av_, vid, aud = by_id["01-01-03-01-01-01-01"], by_id["02-01-04-02-02-01-02"], by_id["03-02-07-01-01-02-02"]
    assert (av_.emotion, av_.subtitle, av_.audio) == ("happy", "Kids are talking by the door.", None)
    assert av_.meta["gender"] == "male" and av_.meta["intensity"] == "normal"
    assert vid.emotion == "sad" and vid.meta["intensity"] == "strong" and vid.subtitle.startswith("Dogs")
    assert Path(vid.audio).name == "03-01-04-02-02-01-02.wav" and Path(vid.video).suffix == ".mp4"
    assert aud.video is None and aud.emotion == "disgusted" and aud.meta["vocal_channel"] == "song"
    # hash splits by actor: both actor-02 recordings share a split
    assert vid.split == aud.split == hash_split("actor02", 3, (0.5, 0.25, 0.25))
    assert sorted(res.report.ids("bad_file_name")) == ["03-01-09-01-01-01-02", "readme_audio"]
    assert res.report.counts["separate_audio"] == 1


def test_cremad_file_names(tmp_path, media_kit):
    root = tmp_path / "CREMA-D"
    put(media_kit, "wav", root / "AudioWAV", "1001_DFA_ANG_XX.wav")
    put(media_kit, "av", root / "VideoMP4", "1001_DFA_ANG_XX.mp4")
    put(media_kit, "wav", root / "AudioWAV", "1002_IEO_HAP_HI.wav")
    put(media_kit, "wav", root / "AudioWAV", "1003_XYZ_SAD_LO.wav")  # no such sentence
    put(media_kit, "wav", root / "AudioWAV", "1004_TIE_FOO_LO.wav")  # no such emotion
    res = get_adapter("cremad")([root]).load()
    by_id = {s.id: s for s in res.samples}
    assert sorted(by_id) == ["1001_DFA_ANG_XX", "1002_IEO_HAP_HI"]
    a, b = by_id["1001_DFA_ANG_XX"], by_id["1002_IEO_HAP_HI"]
    assert a.emotion == "angry" and a.subtitle == "Don't forget a jacket." and a.meta["level"] == "unspecified"
    assert Path(a.video).suffix == ".mp4" and a.audio is None  # the video's own track
    assert b.emotion == "happy" and b.video is None and Path(b.audio).suffix == ".wav" and b.meta["level"] == "high"
    assert sorted(res.report.ids("bad_file_name")) == ["1003_XYZ_SAD_LO", "1004_TIE_FOO_LO"]
    with pytest.raises(ValueError, match="reads no table"):
        get_adapter("cremad")([root], split_from="split").load()
    with pytest.raises(ValueError, match="not read by --format cremad"):
        get_adapter("cremad")([root], labels=tmp_path / "x.csv")


# ---------------------------------------------------------------------------------------------------------------
# generic tables


def test_generic_csv_with_column_map_and_explicit_paths(tmp_path, media_kit):
    data = tmp_path / "mine"
    put(media_kit, "av", data / "clips", "one.mp4")
    put(media_kit, "silent", data / "clips", "two.mp4")
    put(media_kit, "wav", data / "sound", "two-voice.wav")
    put(media_kit, "corrupt", data / "clips", "bad.mp4")
    put(media_kit, "av", tmp_path, "outside.mp4")
    table = write_csv(
        data / "clips.csv",
        "clip,label,path,voice,text,part,speaker\n"
        "c1,Joy,clips/one.mp4,,hello there,dev,spk1\n"
        "c2,anger,clips/two.mp4,sound/two-voice.wav,go away,train,spk2\n"
        "c3,sad,../outside.mp4,,bye,train,spk3\n"
        f"c4,sad,{tmp_path / 'outside.mp4'},,bye,train,spk3\n"
        "c5,sad,clips/none.mp4,,bye,train,spk3\n"
        "c6,sad,clips/bad.mp4,,bye,test,spk3\n"
        "c1,sad,clips/one.mp4,,again,test,spk1\n"
        ",sad,clips/one.mp4,,who,test,spk1\n",
    )
    cmap = parse_map(["id=clip", "emotion=label", "video=path", "audio=voice", "subtitle=text", "split=part"])
    res = get_adapter("generic")([], labels=table, column_map=cmap).load()  # media relative to the table folder
    by_id = {s.id: s for s in res.samples}
    assert sorted(by_id) == ["c1", "c2"]
    assert (by_id["c1"].emotion, by_id["c1"].split, by_id["c1"].subtitle) == ("happy", "val", "hello there")
    assert by_id["c1"].meta["speaker"] == "spk1" and "clip" not in by_id["c1"].meta
    assert Path(by_id["c2"].audio).name == "two-voice.wav"
    assert res.report.items == [
        ("c3", "escaping_path"),
        ("c4", "escaping_path"),
        ("c5", "missing_media"),
        ("c6", "corrupt_media"),
        ("c1", "duplicate_id"),
        ("?", "missing_field"),
    ]
    with pytest.raises(ValueError, match="no column 'labelz'"):
        get_adapter("generic")([], labels=table, column_map={"id": "clip", "emotion": "labelz"}).load()
    with pytest.raises(ValueError, match="unknown key"):
        parse_map(["mood=label"])


def test_generic_jsonl_with_cue_lists(tmp_path, media_kit):
    media = tmp_path / "m"
    put(media_kit, "av", media, "j1.mp4")
    put(media_kit, "av", media, "j2.mp4")
    rows = [
        {"id": "j1", "emotion": "fear", "labels": ["fear", "nervous"], "cues.visual": ["Eyes wide."],
         "cues.auditory": "['Voice trembles.']", "description": "Eyes wide. Voice trembles."},
        {"id": "j2", "emotion": "neutral", "description": "A calm face. A flat voice."},
        "not an object",
    ]
    table = tmp_path / "t.jsonl"
    table.write_text("\n".join(json.dumps(r) for r in rows) + "\n{broken\n", encoding="utf-8")
    res = get_adapter("generic")([media], descriptions=table, cues="sentences").load()
    by_id = {s.id: s for s in res.samples}
    assert by_id["j1"].labels == ["fearful", "nervous"] and by_id["j1"].emotion == "fearful"
    assert by_id["j1"].cues == {"visual": ["Eyes wide."], "auditory": ["Voice trembles."], "emotional": []}
    # j2 has no cue values: its cues come from its description
    assert by_id["j2"].cues == {"visual": ["A calm face."], "auditory": ["A flat voice."], "emotional": []}
    assert res.report.skipped["bad_value"] == 2


# ---------------------------------------------------------------------------------------------------------------
# every bad-input kind: counted when lenient, fatal and named when strict


def _bad_dataset(tmp_path: Path, kit: dict[str, Path], kind: str) -> dict:
    """A mer_discrete dataset whose sample 'bad' has exactly the problem ``kind`` (plus a good sample 'ok')."""
    media = tmp_path / "video"
    put(kit, "av", media, "ok.mp4")
    name = "bad"
    if kind == "duplicate_id":
        put(kit, "av", media, "bad.mp4")
        rows = "bad,happy\nbad,sad\n"
    elif kind == "missing_media":
        rows = "bad,happy\n"
    elif kind == "escaping_path":
        put(kit, "av", tmp_path, "bad.mp4")
        name, rows = "../bad", "../bad,happy\n"
    elif kind == "missing_field":
        put(kit, "av", media, "bad.mp4")
        rows = "bad,\n"
    elif kind == "corrupt_media":
        put(kit, "corrupt", media, "bad.mp4")
        rows = "bad,happy\n"
    elif kind == "empty_media":  # a zero-byte file
        media.mkdir(parents=True, exist_ok=True)
        (media / "bad.mp4").write_bytes(b"")
        rows = "bad,happy\n"
    elif kind == "undecodable_line":  # non-UTF-8 subtitles: one GB18030 line (fine) and one undecodable line
        put(kit, "av", media, "bad.mp4")
        rows = "bad,happy\n"
    else:
        raise AssertionError(kind)
    labels = write_csv(tmp_path / "label.csv", "name,discrete\nok,neutral\n" + rows)
    subs = tmp_path / "subtitle.csv"
    subs.write_bytes(
        b"name,chinese,english\n"
        + "ok,你好,hello\n".encode("gb18030")
        + (b"bad,\xff\xfe\xff,oops\n" if kind == "undecodable_line" else b"bad,x,fine\n")
    )
    return {"media": [media], "labels": labels, "subtitles": subs, "bad_id": name}


@pytest.mark.parametrize(
    "kind", ["duplicate_id", "missing_media", "escaping_path", "missing_field", "corrupt_media", "empty_media",
             "undecodable_line"]
)
def test_bad_input_is_counted_or_fatal_under_strict(tmp_path, media_kit, kind):
    ds = _bad_dataset(tmp_path, media_kit, kind)
    cls = get_adapter("mer_discrete")
    res = import_dataset(cls(ds["media"], labels=ds["labels"], subtitles=ds["subtitles"]), tmp_path / "out")
    ids = {s.id for s in res.samples}
    assert "ok" in ids
    assert res.samples[0].subtitle == "hello"  # the GB18030 line decoded
    assert res.report.skipped == {kind: 1}
    assert res.report.ids(kind) == [ds["bad_id"]]
    if kind == "undecodable_line":  # the line is dropped, the sample kept without a subtitle
        assert ids == {"ok", "bad"} and res.report.handled == {"missing_subtitle": 1}
    elif kind == "duplicate_id":
        assert ids == {"ok", "bad"} and next(s for s in res.samples if s.id == "bad").emotion == "happy"
    else:
        assert ids == {"ok"}
    log = (tmp_path / "out/import_log.txt").read_text(encoding="utf-8")
    assert f"[{kind}]" in log and repr(ds["bad_id"]) in log
    assert kind in res.report.summary() and read_info(tmp_path / "out")["import"]["skipped"] == {kind: 1}

    with pytest.raises(ImportProblemError) as err:
        cls(ds["media"], labels=ds["labels"], subtitles=ds["subtitles"], strict=True).load()
    msg = str(err.value)
    assert repr(ds["bad_id"]) in msg and kind in msg
    assert ".csv:" in msg  # file and line


@pytest.mark.parametrize("kind", ["missing_subtitle", "no_audio"])
def test_handled_input_is_kept_counted_and_fatal_under_strict(tmp_path, media_kit, kind):
    """Problems an import repairs (kept with an empty subtitle, or without audio) are counted with the id, and
    --strict stops at them like at any other."""
    media = tmp_path / "video"
    put(media_kit, "av", media, "ok.mp4")
    put(media_kit, "silent" if kind == "no_audio" else "av", media, "bad.mp4")
    labels = write_csv(tmp_path / "label.csv", "name,discrete\nok,neutral\nbad,sad\n")
    subs = write_csv(tmp_path / "sub.csv", "name,sentence\nok,Hi.\n" + ("bad,Go.\n" if kind == "no_audio" else ""))
    cls = get_adapter("mer_discrete")
    res = import_dataset(cls([media], labels=labels, subtitles=subs), tmp_path / "out")
    assert sorted(s.id for s in res.samples) == ["bad", "ok"]
    assert res.report.items == [("bad", kind)] and res.report.handled == {kind: 1} and not res.report.skipped
    assert "kept 'bad'" in (tmp_path / "out/import_log.txt").read_text(encoding="utf-8")
    assert f"kept         1  {kind}" in res.report.summary()
    assert read_info(tmp_path / "out")["import"]["handled"] == {kind: 1}
    with pytest.raises(ImportProblemError) as err:
        cls([media], labels=labels, subtitles=subs, strict=True).load()
    assert "'bad'" in str(err.value) and kind in str(err.value)


def test_silent_video_without_separate_audio_is_kept_and_counted(tmp_path, media_kit):
    media = tmp_path / "v"
    put(media_kit, "silent", media, "q.mp4")
    labels = write_csv(tmp_path / "l.csv", "name,discrete\nq,sad\n")
    res = get_adapter("mer_discrete")([media], labels=labels).load()
    assert res.samples[0].audio is None and res.samples[0].meta["has_audio"] is False
    assert res.report.handled == {"no_audio": 1} and res.report.kept == 1
    with pytest.raises(ImportProblemError, match="'q'"):
        get_adapter("mer_discrete")([media], labels=labels, strict=True).load()


# ---------------------------------------------------------------------------------------------------------------
# building blocks


def test_hash_splits_are_deterministic_and_follow_the_ratios():
    ids = [f"clip{i:05d}" for i in range(4000)]
    a = [hash_split(i, 0, (0.8, 0.1, 0.1)) for i in ids]
    assert a == [hash_split(i, 0, (0.8, 0.1, 0.1)) for i in reversed(ids)][::-1]  # order does not matter
    share = {s: a.count(s) / len(a) for s in ("train", "val", "test")}
    assert share["train"] == pytest.approx(0.8, abs=0.03) and share["val"] == pytest.approx(0.1, abs=0.02)
    b = [hash_split(i, 1, (0.8, 0.1, 0.1)) for i in ids]
    assert sum(x != y for x, y in zip(a, b)) > 400  # another seed reshuffles


def test_label_normalisation():
    assert [normalize_emotion(x) for x in (" Happiness", "ANGER", "disgust", "Fear", "worry", "惊讶", "calm")] == [
        "happy", "angry", "disgusted", "fearful", "worried", "surprised", "calm"
    ]
    assert parse_label_list("['Sadness', 'sad', 'lonely']") == ["sad", "lonely"]
    assert parse_label_list("高兴，惊讶") == ["happy", "surprised"]
    with pytest.raises(ValueError):
        parse_label_list("[__import__('os')]")


def test_sentence_cues_rule():
    cues = sentence_cues("Tears run down his cheeks! His tone is low and slow. The words are about loss. He grieves.")
    assert cues["visual"] == ["Tears run down his cheeks!"]
    assert cues["auditory"] == ["His tone is low and slow."]
    assert cues["emotional"] == ["The words are about loss.", "He grieves."]


def test_cue_source_choice():
    mode, fn = cue_function("sentences")
    assert mode == "sentences" and fn(["A smile. She is glad."])[0]["visual"] == ["A smile."]
    extractor = offline_extractor()
    if extractor is None:
        assert cue_function("auto")[0] == "sentences"
        with pytest.raises(ValueError, match="no 'offline' cue_extractor"):
            cue_function("offline")
    else:  # the evaluation package's extractor is installed: auto and offline use it
        mode, fn = cue_function("auto")
        text = "Her mouth turns up into a smile. Her voice is bright. She is happy."
        assert mode == "offline"
        got = fn([text])[0]
        want = extractor.extract([text])[0]
        assert {m: got[m] for m in got if got[m]} == {m: list(v) for m, v in want.items() if v}


def test_adapters_are_registered():
    names = {e.name for e in registry.entries("data_adapter")}
    assert {"emer_v2", "emer_v1", "mer2024_ov", "mer_discrete", "ravdess", "cremad", "generic"} <= names


# ---------------------------------------------------------------------------------------------------------------
# the command line


def test_cli_import_copy_and_strict(tmp_path, media_kit, capsys):
    media = tmp_path / "video"
    put(media_kit, "av", media, "k1.mp4")
    put(media_kit, "av", media, "k2.mp4")
    labels = write_csv(tmp_path / "label.csv", "name,discrete\nk1,happy\nk2,sad\nk3,angry\n")
    subs = write_csv(tmp_path / "sub.csv", "name,sentence\nk1,Yes!\nk2,No.\n")
    out = tmp_path / "out"
    args = ["data", "import", "--format", "mer_discrete", "--labels", str(labels), "--subtitles", str(subs),
            "--media", str(media), "--out", str(out)]
    assert main([*args, "--copy", "--split-ratios", "1,0,0", "--seed", "5"]) == 0
    printed = capsys.readouterr().out
    assert "2 samples kept, 1 skipped" in printed and "missing_media" in printed
    samples = read_manifest(out)
    assert [(s.id, s.emotion, s.subtitle, s.split) for s in samples] == [
        ("k1", "happy", "Yes!", "train"), ("k2", "sad", "No.", "train")
    ]
    copied = out / samples[0].video
    assert copied.is_file() and not copied.is_symlink() and probe(copied).has_audio
    assert "skipped 'k3'" in (out / "import_log.txt").read_text(encoding="utf-8")
    # re-import into the same folder with symlinks replaces the copies
    assert main(args) == 0
    assert (out / samples[0].video).is_symlink() and os.path.samefile(out / samples[0].video, media / "k1.mp4")
    capsys.readouterr()
    assert main([*args, "--strict"]) == 1
    err = capsys.readouterr().err
    assert "'k3'" in err and "label.csv:4" in err
    # usage errors name what to fix
    assert main(["data", "import", "--format", "mer_discrete", "--media", str(media), "--out", str(out)]) == 2
    assert "needs --labels" in capsys.readouterr().err
    assert main([*args, "--map", "id=name"]) == 2
    assert "--map applies to --format generic only" in capsys.readouterr().err
