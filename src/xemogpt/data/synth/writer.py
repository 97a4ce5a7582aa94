"""Writing a clip as MP4: H.264 video (yuv420p) and AAC audio (16 kHz mono) through PyAV."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

# mbtree off: with it, libx264's assembly gave the same frames different bytes from one encode to the next in
# the same process (seen as clips that depended on which worker drew them); asm=0 also fixes it, 5x slower.
VIDEO_OPTIONS = {"preset": "veryfast", "crf": "18", "threads": "1", "x264-params": "mbtree=0"}
AUDIO_BITRATE = 48000
# FFmpeg's default "twoloop" AAC coder triples the time per clip for no gain on a synthetic voice.
AUDIO_OPTIONS = {"aac_coder": "fast"}


def write_mp4(
    path: str | Path, frames: Iterable[np.ndarray], audio: np.ndarray, fps: int, size: int, sample_rate: int = 16000
) -> Path:
    """Encode RGB frames (each (size, size, 3) uint8) and mono float audio (T,) into ``path``.

    Encoding is single-threaded so a file depends only on its inputs (and each worker process uses one core).
    The file is written under a temporary name and renamed, so an interrupted run never leaves a half clip.
    """
    import av  # heavy; imported where used

    if size % 2:
        raise ValueError(f"frame size must be even for yuv420p, got {size}")
    path = Path(path)
    tmp = path.with_name(path.stem + ".part.mp4")
    container = av.open(str(tmp), mode="w")
    try:
        vs = container.add_stream("libx264", rate=fps)
        vs.width = vs.height = size
        vs.pix_fmt = "yuv420p"
        vs.options = dict(VIDEO_OPTIONS)
        aus = container.add_stream("aac", rate=sample_rate, layout="mono")
        aus.bit_rate = AUDIO_BITRATE
        aus.options = dict(AUDIO_OPTIONS)
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = i
            for packet in vs.encode(frame):
                container.mux(packet)
        for packet in vs.encode():
            container.mux(packet)
        af = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(audio, dtype=np.float32)[None, :], format="fltp", layout="mono"
        )
        af.sample_rate = sample_rate
        af.pts = 0
        for packet in aus.encode(af):
            container.mux(packet)
        for packet in aus.encode():
            container.mux(packet)
    except BaseException:
        container.close()
        tmp.unlink(missing_ok=True)
        raise
    container.close()
    tmp.replace(path)
    return path
