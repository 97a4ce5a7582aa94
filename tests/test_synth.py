"""The synthetic EmoCue generator: determinism, decodable media, perceivable cues, parseable descriptions, splits."""

from __future__ import annotations

import collections
import copy
import json
from pathlib import Path

import av
import numpy as np
import pytest

from xemogpt.cli import main as cli_main
from xemogpt.cues.splitting import split_sentences
from xemogpt.cues.vocabulary import (
    AUDITORY_CUE_IDS,
    EMOTIONS,
    GRADED_VISUAL,
    PHRASES,
    VISUAL_CUE_IDS,
    emotion_from_text,
    match_sentence,
    parse_description,
)
from xemogpt.data.schema import read_info, read_manifest
from xemogpt.data.synth import annotate_dataset, draw_annotation, generate, render_clip
from xemogpt.data.synth.annotate import _blinks
from xemogpt.data.synth.face import _F, face_states, render_frame

SR = 16000


# ---------------------------------------------------------------- helpers
def decode_video(path: Path) -> tuple[np.ndarray, float]:
    with av.open(str(path)) as c:
        fps = float(c.streams.video[0].average_rate)
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    return frames, fps


def decode_audio(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])


def to64(frame: np.ndarray) -> np.ndarray:
    """Box-downsample a (128, 128, 3) uint8 frame to (64, 64, 3) float in 0..1 (what the model sees)."""
    return frame.astype(np.float32).reshape(64, 2, 64, 2, 3).mean(axis=(1, 3)) / 255.0


def sampled16(n: int) -> np.ndarray:
    return np.linspace(0, n - 1, 16).round().astype(int)


def frame_rms_db(y: np.ndarray, win: int = 320) -> np.ndarray:
    k = len(y) // win
    return 10 * np.log10(np.mean(y[: k * win].reshape(k, win) ** 2, axis=1) + 1e-12)


def active_rms_db(y: np.ndarray) -> float:
    """RMS over frames within 20 dB of the loudest ones (speech, not silence)."""
    db = frame_rms_db(y)
    act = db > np.percentile(db, 95) - 20
    lin = 10 ** (db[act] / 10)
    return float(10 * np.log10(lin.mean()))


def pitch_track(y: np.ndarray, hop: int = 80, win: int = 640) -> np.ndarray:
    """Autocorrelation pitch (Hz) per frame with parabolic lag interpolation; NaN where unvoiced."""
    db = frame_rms_db(y, hop)
    thresh = np.percentile(db, 95) - 12
    lo, hi = SR // 400, SR // 70
    out = np.full(len(y) // hop, np.nan)
    for i in range(0, len(y) - win, hop):
        if db[i // hop] < thresh:
            continue
        x = y[i : i + win] - y[i : i + win].mean()
        r = np.correlate(x, x, mode="full")[win - 1 :]
        r = r / (r[0] + 1e-12)
        seg = r[lo:hi]
        k = int(np.argmax(seg > 0.9 * seg.max()))  # first lag close to the best: avoids octave-down errors
        while k + 1 < len(seg) and seg[k + 1] > seg[k]:
            k += 1
        if seg[k] < 0.5:
            continue
        if 0 < k < len(seg) - 1:
            a, b, c = seg[k - 1], seg[k], seg[k + 1]
            k = k + 0.5 * (a - c) / (a - 2 * b + c)
        out[i // hop] = SR / (lo + k)
    return out


def voice_meta(base: dict, **voice) -> dict:
    m = copy.deepcopy(base)
    m["voice"].update(voice)
    return m


# ---------------------------------------------------------------- datasets (built once per module)
@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("synth")
    a = generate(root / "a", n=14, seed=7, workers=2, size=48, progress=False)
    b = root / "b"  # the same seed again, through the command line, in one process
    rc = cli_main(
        [
            "data",
            "synth",
            "--out",
            str(b),
            "--n",
            "14",
            "--seed",
            "7",
            "--workers",
            "1",
            "--size",
            "48",
            "--no-progress",
        ]
    )
    assert rc == 0
    c = generate(root / "c", n=3, seed=8, workers=1, size=48, progress=False)
    return {"a": a, "b": b, "c": c}


def test_same_seed_is_identical_whatever_the_workers(datasets):
    a, b = datasets["a"], datasets["b"]
    assert (a / "manifest.jsonl").read_text() == (b / "manifest.jsonl").read_text()
    info_a, info_b = read_info(a), read_info(b)
    assert info_a["seed"] == 7 and info_a["n"] == 14 and info_a["emotions"] == list(EMOTIONS)
    assert {k: v for k, v in info_a.items() if k not in ("seconds", "workers")} == {
        k: v for k, v in info_b.items() if k not in ("seconds", "workers")
    }
    for s in read_manifest(a):
        fa, fb = (a / s.video).read_bytes(), (b / s.video).read_bytes()
        va, _ = decode_video(a / s.video)
        vb, _ = decode_video(b / s.video)
        assert np.array_equal(va, vb), s.id
        assert np.array_equal(decode_audio(a / s.video), decode_audio(b / s.video)), s.id
        assert fa == fb, f"{s.id}: files differ although decoded media agree"


def test_another_seed_differs(datasets):
    a = read_manifest(datasets["a"])[:3]
    c = read_manifest(datasets["c"])
    assert [s.description for s in a] != [s.description for s in c]
    assert [s.meta["face"]["colors"] for s in a] != [s.meta["face"]["colors"] for s in c]
    va, _ = decode_video(datasets["a"] / a[0].video)
    vc, _ = decode_video(datasets["c"] / c[0].video)
    assert va.shape != vc.shape or not np.array_equal(va, vc)


def test_clips_decode_with_h264_and_aac_matching_meta(datasets):
    root = datasets["a"]
    samples = read_manifest(root)
    assert len(samples) == 14 and len(list((root / "clips").glob("*.mp4"))) == 14
    for s in samples:
        path = root / s.video
        with av.open(str(path)) as c:
            v, a = c.streams.video[0], c.streams.audio[0]
            assert v.codec_context.name == "h264" and v.codec_context.pix_fmt == "yuv420p"
            assert (v.codec_context.width, v.codec_context.height) == (48, 48)
            assert a.codec_context.name == "aac" and a.codec_context.sample_rate == SR and a.codec_context.channels == 1
        frames, fps = decode_video(path)
        m = s.meta
        assert fps == m["fps"] and len(frames) == m["n_frames"]
        assert 2.0 <= m["duration"] <= 6.0 and 12 <= m["fps"] <= 30
        assert m["duration"] == pytest.approx(m["n_frames"] / m["fps"])
        audio = decode_audio(path)
        assert abs(len(audio) / SR - m["duration"]) < 0.1, s.id
        assert 0.001 < np.sqrt(np.mean(audio**2)) < 0.5


# ---------------------------------------------------------------- perceivability in decoded media
def _render_and_decode(meta: dict, path: Path, size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    render_clip(meta, path, size)
    frames, _ = decode_video(path)
    return frames, decode_audio(path)


def _face_meta(visual: dict, seed: int = 11) -> dict:
    m = copy.deepcopy(draw_annotation(seed, 0, "neutral").meta)
    m["visual_cues"] = visual
    m["face"]["blinks"] = []
    m["fps"], m["n_frames"] = 12, 24
    m["duration"] = 2.0
    return m


def _lip_row(img: np.ndarray, col: int, rows: slice) -> float:
    """Row (at 64x64) of the darkest pixel in one column of the mouth band."""
    lum = img[rows, col] @ np.array([0.299, 0.587, 0.114])
    return rows.start + float(np.argmin(lum))


@pytest.mark.parametrize("intensity", ["slight", "clear"])
def test_mouth_corners_up_and_down_are_visible_at_64px(tmp_path, intensity):
    rows_by_dir = {}
    for d in ("up", "down"):
        m = _face_meta({f"mouth_corners={d}": {"intensity": intensity, "onset": "start", "extra": False}})
        frames, _ = _render_and_decode(m, tmp_path / f"{d}.mp4")
        img = to64(frames[sampled16(len(frames))[8]])
        f = m["face"]
        cx, cy, s = f["cx"] * 64, f["cy"] * 64, f["scale"] * 64
        band = slice(int(cy + 0.15 * s), int(cy + 0.85 * s))
        centre = _lip_row(img, int(round(cx)), band)
        corners = [_lip_row(img, int(round(cx + k * 0.22 * s)), band) for k in (-1, 1)]
        rows_by_dir[d] = (centre, corners)
    (cu, up), (cd, down) = rows_by_dir["up"], rows_by_dir["down"]
    assert all(r <= cu - 2 for r in up), rows_by_dir  # corners at least 2 px above the lip centre
    assert all(r >= cd + 2 for r in down), rows_by_dir
    assert min(down) - max(up) >= 4


def test_frequent_blinks_show_in_at_least_two_of_16_sampled_frames(tmp_path):
    m = _face_meta({"blinks=frequent": {"extra": True}})
    m["fps"], m["n_frames"], m["duration"] = 30, 180, 6.0  # longest clip: the widest gap between samples
    m["face"]["blinks"] = _blinks(np.random.default_rng(0), True, m["duration"], m["fps"])
    frames, _ = _render_and_decode(m, tmp_path / "blink.mp4")
    f = m["face"]
    cx, cy, s = f["cx"] * 64, f["cy"] * 64, f["scale"] * 64
    ys = slice(int(cy - 0.2 * s), int(cy + 0.0 * s) + 1)
    whites = []
    for k in sampled16(len(frames)):
        img = to64(frames[k])
        eyes = np.concatenate(
            [img[ys, int(cx + sx * 0.34 * s - 0.12 * s) : int(cx + sx * 0.34 * s + 0.12 * s) + 1] for sx in (-1, 1)],
            axis=1,
        )
        whites.append(int((eyes.min(axis=-1) > 0.8).sum()))  # sclera pixels
    whites = np.array(whites)
    closed = whites < 0.3 * whites.max()
    assert closed.sum() >= 2, whites
    # over many annotations (every duration/fps in range), under two common ways of picking 16 frames:
    # frequent blinking shows in >= 2 samples, normal blinking in at most one
    n_frequent = 0
    for i in range(400):
        a = draw_annotation(5, i)
        st = face_states(a.meta)
        n = len(st)
        for picks in (sampled16(n), ((np.arange(16) + 0.5) * n / 16).astype(int)):
            closed = int((st[picks, _F["blink"]] >= 1.0).sum())
            if "blinks=frequent" in a.meta["visual_cues"]:
                assert closed >= 2, (a.id, a.meta["fps"], a.meta["duration"], closed)
            else:
                assert closed <= 1, (a.id, closed)
        n_frequent += "blinks=frequent" in a.meta["visual_cues"]
    assert n_frequent >= 10


def test_every_visual_cue_changes_the_64px_face_even_when_slight():
    base = _face_meta({})
    neutral = to64(render_frame(base, face_states(base)[0], 128))
    for cue_id in VISUAL_CUE_IDS[1:]:
        for intensity in ("slight", "clear") if cue_id in GRADED_VISUAL else (None,):
            cue = {"extra": False, "onset": "start", "direction": 1, "cycles": 2.0, "phase": np.pi / 2}
            if intensity:
                cue["intensity"] = intensity
            m = _face_meta({cue_id: cue})
            if cue_id == "blinks=frequent":
                m["face"]["blinks"] = [[0.0, 0.5]]
            diff = np.abs(to64(render_frame(m, face_states(m)[0], 128)) - neutral).max(axis=-1)
            assert (diff > 0.1).sum() >= 30, (cue_id, intensity, int((diff > 0.1).sum()))


def test_onsets_change_the_face_over_the_16_samples():
    for onset, key, early, late in (("part-way", "t_on", 0.0, 1.0), ("fading", "t_off", 1.0, 0.0)):
        m = _face_meta({"brows=raised": {"intensity": "slight", "onset": onset, key: 0.45, "extra": False}})
        raise_ = face_states(m)[sampled16(m["n_frames"]), _F["brow_raise"]] / 0.12
        assert np.allclose(raise_[:4], early) and np.allclose(raise_[-4:], late), (onset, raise_)


def test_pitch_levels_loudness_tremor_and_pauses_are_measurable(tmp_path):
    base = copy.deepcopy(draw_annotation(3, 1, "neutral").meta)
    base["duration"], base["n_frames"], base["fps"] = 3.0, 36, 12
    base["voice"].update(contour="flat", tremor_hz=None, pauses=False, noise_db=-55.0, level_db=-24.0)
    b0 = base["voice"]["baseline_f0"]
    f0 = {}
    for level, factor in (("high", 1.42), ("mid", 1.0), ("low", 0.70)):
        _, y = _render_and_decode(voice_meta(base, pitch=level, f0=b0 * factor), tmp_path / f"p_{level}.mp4", 32)
        f0[level] = float(np.nanmedian(pitch_track(y)))
    assert f0["high"] > 1.25 * f0["mid"] and f0["mid"] > 1.25 * f0["low"], f0
    assert f0["mid"] == pytest.approx(b0, rel=0.06), (f0, b0)

    rms = {}
    for name, db in (("loud", -15.0), ("normal", -24.0), ("soft", -33.0)):
        _, y = _render_and_decode(voice_meta(base, level_db=db), tmp_path / f"l_{name}.mp4", 32)
        rms[name] = active_rms_db(y)
    assert rms["loud"] - rms["normal"] > 6 and rms["normal"] - rms["soft"] > 6, rms

    wobble = {}
    for name, hz in (("tremor", 6.0), ("steady", None)):
        _, y = _render_and_decode(voice_meta(base, tremor_hz=hz), tmp_path / f"t_{name}.mp4", 32)
        lf = np.log(pitch_track(y))
        step = np.abs(np.diff(lf))
        wobble[name] = float(np.nanmedian(step[step < 0.05]))
    assert wobble["tremor"] > 3 * wobble["steady"], wobble

    gaps = {}
    for name, flag in (("pauses", True), ("none", False)):
        _, y = _render_and_decode(voice_meta(base, pauses=flag, seed=42), tmp_path / f"g_{name}.mp4", 32)
        db = frame_rms_db(y)  # 20 ms frames
        silent = db < np.percentile(db, 95) - 30
        idx = np.flatnonzero(~silent)
        run, best = 0, 0
        for v in silent[idx[0] : idx[-1]]:  # inside the utterance only
            run = run + 1 if v else 0
            best = max(best, run)
        gaps[name] = best * 0.02
    assert gaps["pauses"] >= 0.5 and gaps["none"] < 0.35, gaps


def test_speaking_rate_levels_differ_in_syllable_count(tmp_path):
    base = copy.deepcopy(draw_annotation(4, 2, "neutral").meta)
    base["duration"], base["n_frames"], base["fps"] = 4.0, 48, 12
    counts = {}
    for rate, sps in (("fast", 5.5), ("normal", 3.6), ("slow", 2.2)):
        _, y = _render_and_decode(voice_meta(base, rate=rate, syllables_per_s=sps), tmp_path / f"r_{rate}.mp4", 32)
        db = frame_rms_db(y, 160)
        on = db > np.percentile(db, 95) - 15
        counts[rate] = int(np.sum(on[1:] & ~on[:-1]))  # syllable onsets
    assert counts["fast"] > counts["normal"] > counts["slow"] >= 5, counts


# ---------------------------------------------------------------- annotations and descriptions
@pytest.fixture(scope="module")
def annotations():
    return annotate_dataset(700, seed=1)


def test_parse_description_recovers_ids_and_emotion(annotations, datasets):
    for s in annotations + read_manifest(datasets["a"]):
        parsed = parse_description(s.description)
        for m in ("visual", "auditory", "emotional"):
            assert parsed[m] == s.cue_ids[m], (s.id, m, s.description)
            assert len(s.cues[m]) == len(s.cue_ids[m]) > 0
            assert [match_sentence(c) for c in s.cues[m]] == s.cue_ids[m]
        assert parsed["emotion"] == s.emotion
        assert s.subtitle not in s.description
        assert len(s.description.split()) <= 110
        assert all(sent.endswith(".") for sent in split_sentences(s.description))
        assert split_sentences(s.description)[-1] == f"Overall, the person most likely feels {s.emotion}."


def test_parse_is_robust_to_dropped_modifiers_and_slips(annotations):
    with_mods = [
        s
        for s in annotations
        if "slightly" in s.description or "part-way" in s.description or "then it fades" in s.description
    ]
    assert len(with_mods) > 100
    for s in with_mods[:100]:
        for drop in ("slightly ", " part-way through", " at first, then it fades"):
            text = s.description.replace(drop, "", 1)
            assert parse_description(text)["visual"] == s.cue_ids["visual"], (drop, text)
    assert match_sentence("The brows rise a lot part-way through.") == "brows=raised"
    assert match_sentence("The mouth corner turns up.") == "mouth_corners=up"
    assert match_sentence("The voice trembels.") == "tremor=present"
    assert match_sentence("The pitch is hihg.") == "pitch=high"
    assert match_sentence("Bananas are yellow and sweet.") is None
    parsed = parse_description(
        "The eyes widen clearly. The voice is loud. Overall, the person most likely feels angry."
    )
    assert parsed == {"visual": ["eyes=wide"], "auditory": ["loudness=loud"], "emotional": [], "emotion": "angry"}


def test_phrase_bank_has_three_distinct_phrasings_per_id():
    for cue_id in list(VISUAL_CUE_IDS) + list(AUDITORY_CUE_IDS):
        assert len(set(PHRASES[cue_id])) >= 3, cue_id
    for cue_id, phrasings in PHRASES.items():
        for p in phrasings:
            assert match_sentence(p.replace("{adv}", "").replace("{pol}", "positive")) == cue_id
    assert not any("text" in p for c in AUDITORY_CUE_IDS for p in PHRASES[c])  # EmoCue drops those


def test_emotion_from_text_understands_forms_and_prefers_the_last():
    assert emotion_from_text("There is deep sadness in the voice.") == "sad"
    assert emotion_from_text("The person stays calm throughout.") == "neutral"
    assert emotion_from_text("First some happiness, but in the end fear takes over.") == "fearful"
    assert emotion_from_text("A look of disgust; then anger.") == "angry"
    assert emotion_from_text("Pure surprise!") == "surprised"
    assert emotion_from_text("Sadness shows. The words sound neutral.") == "sad"
    assert emotion_from_text("The sky is blue.") is None
    assert emotion_from_text("They look happy.", emotions=("sad", "neutral")) is None


def test_emotions_balanced_and_cue_patterns_hold(annotations):
    counts = collections.Counter(s.emotion for s in annotations)
    assert set(counts) == set(EMOTIONS) and max(counts.values()) - min(counts.values()) <= 1
    for s in annotations:
        vis, aud = set(s.cue_ids["visual"]), set(s.cue_ids["auditory"])
        v = s.meta["voice"]
        if s.emotion == "surprised":
            assert {"brows=raised", "eyes=wide"} <= vis and "mouth=stretched" not in vis and not v["tremor"]
        if s.emotion == "fearful":
            assert {"mouth=stretched", "tremor=present"} <= vis | aud and "mouth=wide_open" not in vis
        if s.emotion == "angry":
            assert "brows=furrowed" in vis and "nose=wrinkled" not in vis and "loudness=loud" in aud
        if s.emotion == "disgusted":
            assert "nose=wrinkled" in vis and "brows=furrowed" not in vis and "loudness=loud" not in aud
        if s.emotion == "happy":
            assert "mouth_corners=up" in vis and "mouth=wide_open" not in vis
        if s.emotion == "neutral":
            assert "face=relaxed" in vis and "voice=even" in aud
        # listed voice cues and rendered voice settings agree both ways
        assert ("pitch=high" in aud) == (v["pitch"] == "high") and ("pitch=low" in aud) == (v["pitch"] == "low")
        assert ("rate=fast" in aud) == (v["rate"] == "fast") and ("pauses=long" in aud) == v["pauses"]
        assert ("loudness=soft" in aud) == (v["loudness"] == "soft") and ("tremor=present" in aud) == v["tremor"]
        assert set(s.meta["visual_cues"]) == vis


def test_splits_stratified_and_text_relations(annotations, datasets):
    for sp, frac in (("train", 0.7), ("val", 0.15), ("test", 0.15)):
        for emo in EMOTIONS:
            group = [s for s in annotations if s.emotion == emo]
            share = sum(s.split == sp for s in group) / len(group)
            assert share == pytest.approx(frac, abs=0.02), (sp, emo, share)
    assert {s.split for s in read_manifest(datasets["a"])} == {"train", "val", "test"}
    rel = collections.Counter(s.meta["text_relation"] for s in annotations)
    n = len(annotations)
    assert rel["agrees"] / n == pytest.approx(0.62, abs=0.06)
    assert rel["neutral"] / n == pytest.approx(0.23, abs=0.05)
    assert rel["contradicts"] / n == pytest.approx(0.15, abs=0.04)
    for s in annotations:
        pol = s.meta["subtitle_polarity"]
        assert f" {pol}" in s.cues["emotional"][0] or pol == "neutral"
    assert len({s.subtitle for s in annotations}) >= 60


def test_dataset_info_and_cli_errors(datasets, tmp_path, capsys):
    info = json.loads((datasets["a"] / "dataset.json").read_text())
    assert info["cue_vocabulary"]["visual"] == list(VISUAL_CUE_IDS)
    assert info["splits"]["train"] + info["splits"]["val"] + info["splits"]["test"] == 14
    assert cli_main(["data", "synth", "--out", str(tmp_path / "x"), "--n", "2", "--size", "47", "--no-progress"]) == 2
    assert "even" in capsys.readouterr().err


def test_one_process_encodes_the_same_clip_to_the_same_bytes_every_time(tmp_path):
    """libx264's macroblock tree once made repeated encodes of identical frames differ within one process, so a
    clip's bytes depended on which clips its worker had drawn before; every encode must be the same."""
    from xemogpt.data.synth.generate import annotate_dataset, render_clip

    meta = annotate_dataset(14, 7)[7].meta
    files = [render_clip(meta, tmp_path / f"c{i}.mp4", 48).read_bytes() for i in range(4)]
    assert all(f == files[0] for f in files[1:])
