"""Decoding: exact frame sampling (with non-reference frames skipped), one-pass audio, and every awkward media kind."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from tests.test_data_kit import dominant_frequency, frame_index, write_clip, write_wav
from xemogpt.data.decode import DecodeError, convert_frame, decode_audio, decode_clip, decode_video, uniform_indices


def reference_frames(path: Path, num: int, size: int, crop: bool = False) -> np.ndarray:
    """Decode every frame, then pick the uniform plan's frames (what a naive loader does)."""
    with av.open(str(path)) as c:
        frames = list(c.decode(video=0))
        return np.stack([convert_frame(frames[i], size, crop) for i in uniform_indices(len(frames), num)])


def reference_audio(path: Path, rate: int = 16000, seconds: float = 12.0) -> np.ndarray:
    with av.open(str(path)) as c:
        res = av.AudioResampler(format="flt", layout="mono", rate=rate)
        chunks = [f.to_ndarray().reshape(-1) for fr in c.decode(audio=0) for f in res.resample(fr)]
        chunks += [f.to_ndarray().reshape(-1) for f in res.resample(None)]
    return np.concatenate(chunks)[: int(seconds * rate)]


def test_generated_clips_decode_exactly_like_a_full_decode(synth_root):
    # The decoder skips frames nothing references; the frames it returns must still be bit-identical.
    clips = sorted((synth_root / "clips").glob("*.mp4"))[:4]
    for p in clips:
        d = decode_clip(p, num_frames=16, size=48)
        assert d.frames.shape == (16, 48, 48, 3) and d.frames.dtype == np.uint8
        assert np.array_equal(d.frames, reference_frames(p, 16, 48)), p.name
        ref = reference_audio(p)
        assert d.audio.dtype == np.float32 and d.audio.shape == ref.shape
        np.testing.assert_allclose(d.audio, ref, atol=1e-6)
        assert d.notes == []
        assert d.fps and d.duration and 1.5 < d.duration < 7
    # the fast YUV -> BGR -> RGB path agrees with swscale's direct RGB conversion up to rounding
    from av.video.reformatter import Interpolation

    with av.open(str(clips[0])) as c:
        f = next(iter(c.decode(video=0)))
        direct = f.reformat(width=48, height=48, format="rgb24", interpolation=Interpolation.AREA).to_ndarray()
    diff = np.abs(convert_frame(f, 48).astype(int) - direct.astype(int))
    assert diff.mean() < 1.5 and diff.max() <= 8
    # bytes (as stored in shards) decode like the file
    b = decode_clip(clips[0].read_bytes(), num_frames=16, size=48)
    a = decode_clip(clips[0], num_frames=16, size=48)
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.audio, b.audio)


def test_frames_are_the_uniform_plan_and_crop_keeps_the_centre(tmp_path):
    p = write_clip(tmp_path / "idx.mp4", frames=40, size=(64, 32))
    frames, fps, duration = decode_video(p, num_frames=8, size=16)
    assert [frame_index(f) for f in frames] == uniform_indices(40, 8).tolist()
    assert fps == 12 and duration == pytest.approx(40 / 12, abs=0.1)
    # short side to 16 then a centre crop: 32x16 -> 16x16 taken from the middle of a 2:1 frame
    crop = decode_clip(p, num_frames=8, size=16, crop=True, with_audio=False)
    assert crop.frames.shape == (8, 16, 16, 3) and crop.audio is None
    assert [frame_index(f) for f in crop.frames] == uniform_indices(40, 8).tolist()


def test_crop_drops_the_sides_of_a_wide_high_resolution_frame(tmp_path):
    import av as _av

    path = tmp_path / "wide.mp4"
    img = np.zeros((1080, 1920, 3), np.uint8)
    img[:, :400] = (0, 255, 0)  # a green band outside the centre square
    img[:, 400:] = (255, 0, 0)
    with _av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=4)
        v.width, v.height, v.pix_fmt = 1920, 1080, "yuv420p"
        v.options = {"preset": "ultrafast", "threads": "1"}
        for i in range(2):
            f = _av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts = i
            for pkt in v.encode(f):
                c.mux(pkt)
        for pkt in v.encode():
            c.mux(pkt)
    squash = decode_clip(path, num_frames=4, size=32, high_pixels=1_000_000)
    crop = decode_clip(path, num_frames=4, size=32, crop=True)
    assert ("high_resolution", f"{path}: 1920x1080") in squash.notes and squash.audio is None
    assert ("no_audio", f"{path}: no audio stream") in squash.notes
    assert squash.frames[0, :, :4, 1].mean() > 200  # squashed: the green band is on the left
    assert crop.frames.shape == (4, 32, 32, 3) and crop.frames[0, :, :, 1].max() < 60  # cropped away


def test_long_clips_are_sampled_by_seeking_to_the_same_frames(tmp_path):
    p = write_clip(tmp_path / "long.mp4", frames=120, gop=10, audio_seconds=2.0)
    straight = decode_clip(p, num_frames=16, size=16)
    seek = decode_clip(p, num_frames=16, size=16, seek_seconds=2.0, long_seconds=5.0)
    want = uniform_indices(120, 16).tolist()
    assert [frame_index(f) for f in straight.frames] == want
    assert [frame_index(f) for f in seek.frames] == want
    assert [r for r, _ in seek.notes] == ["long_clip"] and straight.notes == []
    np.testing.assert_allclose(seek.audio, straight.audio)  # audio: the first seconds, read in a separate pass


def test_odd_sample_rates_and_channel_counts_become_16k_mono(tmp_path):
    for rate, channels in [(11025, 6), (7350, 2), (48000, 1), (44100, 2)]:
        p = write_wav(tmp_path / f"a{rate}_{channels}.wav", seconds=0.5, rate=rate, channels=channels, freq=440)
        a = decode_audio(p, 16000, 12.0)
        assert a.dtype == np.float32 and abs(len(a) - 8000) <= 64, (rate, channels, len(a))
        assert dominant_frequency(a, 16000) == pytest.approx(440, abs=8)
        assert 0.15 < np.abs(a).max() < 0.35  # a downmix, not a sum of six channels
    long = write_wav(tmp_path / "long.wav", seconds=13.0, rate=22050)
    assert len(decode_audio(long, 16000, 12.0)) == 12 * 16000  # cut to max_seconds
    # unusual rates and channel counts are converted, and noted (counted by the loader, fatal under strict)
    for rate, channels, odd in [(11025, 1, True), (7350, 2, True), (16000, 6, True), (44100, 2, False),
                                (16000, 1, False), (48000, 1, False)]:
        p = write_wav(tmp_path / f"n{rate}_{channels}.wav", seconds=0.25, rate=rate, channels=channels)
        d = decode_clip(None, p)
        assert [r for r, _ in d.notes] == (["odd_audio"] if odd else []), (rate, channels)
        if odd:
            assert f"{rate} Hz, {channels} channel(s)" in d.notes[0][1]
    # the same check on a video's own track, read in the same pass as the frames
    clip = write_clip(tmp_path / "odd_track.mp4", rate=11025)
    d = decode_clip(clip, num_frames=4, size=16)
    assert [r for r, _ in d.notes] == ["odd_audio"] and d.frames.shape[0] == 4
    assert abs(len(d.audio) - 16000) < 1600  # 1 s at 16 kHz, give or take an AAC frame of priming and padding


def test_missing_modalities_single_frames_and_empty_video_tracks(tmp_path):
    silent = decode_clip(write_clip(tmp_path / "silent.mp4", audio_seconds=None), size=16)
    assert silent.audio is None and silent.frames.shape == (16, 16, 16, 3)
    assert [r for r, _ in silent.notes] == ["no_audio"]
    with pytest.raises(DecodeError) as e:
        decode_clip(tmp_path / "silent.mp4", size=16, need_audio=True)
    assert e.value.reason == "no_audio"

    wav = write_wav(tmp_path / "voice.wav")
    as_video = decode_clip(wav, size=16)  # an audio file given as the video
    assert as_video.frames is None and len(as_video.audio) == 8000
    assert [r for r, _ in as_video.notes] == ["no_video"]
    audio_only = decode_clip(None, wav, size=16)  # a sample without video: nothing to note
    assert audio_only.frames is None and audio_only.notes == []

    one = decode_clip(write_clip(tmp_path / "one.mp4", frames=1), size=16)
    assert [r for r, _ in one.notes] == ["single_frame"]
    assert all(frame_index(f) == 0 for f in one.frames) and one.audio is not None

    empty = decode_clip(write_clip(tmp_path / "nof.mkv", frames=0, container="matroska"), size=16)
    assert empty.frames is None and empty.audio is not None and [r for r, _ in empty.notes] == ["no_frames"]
    with pytest.raises(DecodeError) as e:  # no frame, and a separate audio file without samples
        decode_clip(tmp_path / "nof.mkv", write_wav(tmp_path / "silence.wav", seconds=0.0))
    assert e.value.reason == "no_media"


def test_truncated_zero_byte_and_garbage_files(tmp_path):
    fast = write_clip(tmp_path / "fast.mp4", frames=48, faststart=True)
    data = fast.read_bytes()
    fast.write_bytes(data[: int(len(data) * 0.6)])
    d = decode_clip(fast, num_frames=8, size=16)
    assert "truncated" in [r for r, _ in d.notes]
    got = [frame_index(f) for f in d.frames]
    n = int(d.notes[0][1].split(": ")[1].split(" of ")[0])  # "<k> of 48 frames decodable"
    assert 0 < n < 48 and got == uniform_indices(n, 8).tolist()  # planned again over the decodable frames

    tail = write_clip(tmp_path / "tail.mp4", frames=48)
    tail.write_bytes(tail.read_bytes()[:2000])  # the header (moov) was at the end: unreadable
    zero = tmp_path / "zero.mp4"
    zero.write_bytes(b"")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    for path, reason in [(tail, "corrupt_media"), (zero, "empty_media"), (junk, "corrupt_media"),
                         (tmp_path / "nope.mp4", "missing_media")]:
        with pytest.raises(DecodeError) as e:
            decode_clip(path)
        assert e.value.reason == reason and str(path) in str(e.value)
    with pytest.raises(DecodeError) as e:
        decode_clip(b"", name="clips/x.mp4")
    assert e.value.reason == "empty_media" and "clips/x.mp4" in str(e.value)
