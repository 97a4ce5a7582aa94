"""Voice-like audio: a glottal pulse train at the clip's pitch, shaped by vowel formants and a syllable envelope.

Everything is numpy (no system packages) and fully determined by ``meta["voice"]`` (which holds its own seed):

* pitch level: ``f0 = baseline * {high: 1.42, mid: 1.0, low: 0.70}`` with a narrow speaker baseline (145-175 Hz),
  so the three levels occupy disjoint bands (about 206-249, 145-175 and 102-123 Hz) however the clip's baseline
  falls;
* contour over the utterance: flat (+-2 %), rising (0.84 -> 1.16 of the level), falling (1.16 -> 0.84) or lively
  (+-16 % swings, 2-3 per utterance, plus per-syllable accents);
* loudness: active-speech RMS of -24 dBFS (+9 dB loud, -9 dB soft, +-1.5 dB jitter);
* rate: syllables per second (fast 5.2-5.8, normal 3.4-3.9, slow 2.0-2.4), short word gaps < 0.3 s;
* tremor: 5-7 Hz pitch (+-7 %) and amplitude (+-40 %) modulation;
* long pauses: one or two silences of 0.6-0.85 s inside the utterance;
* background noise (nuisance): white or brown noise at -62 to -50 dBFS.
"""

from __future__ import annotations

from typing import Any

import numpy as np

SAMPLE_RATE = 16000
# Formant frequencies (Hz) of five vowels; bandwidths and relative amplitudes are shared.
VOWELS: dict[str, tuple[float, float, float]] = {
    "a": (730.0, 1090.0, 2440.0),
    "i": (270.0, 2290.0, 3010.0),
    "u": (300.0, 870.0, 2240.0),
    "e": (530.0, 1840.0, 2480.0),
    "o": (570.0, 840.0, 2410.0),
}
BANDWIDTHS = (90.0, 110.0, 170.0)
FORMANT_GAINS = (1.0, 0.55, 0.3)
CONTOUR_SWING = 0.16
TREMOR_PITCH = 0.07
TREMOR_AMP = 0.40


def _formant_ir(formants: tuple[float, float, float], sr: int) -> np.ndarray:
    """Impulse response (25 ms) of three parallel damped resonators, unit energy."""
    t = np.arange(int(0.025 * sr)) / sr
    h = sum(
        g * np.exp(-np.pi * b * t) * np.sin(2 * np.pi * f * t) for f, b, g in zip(formants, BANDWIDTHS, FORMANT_GAINS)
    )
    return h / np.sqrt(np.sum(h**2))


def _syllables(
    v: dict[str, Any], duration: float, rng: np.random.Generator
) -> tuple[list[tuple[float, float]], float, float]:
    """Voiced syllable intervals (seconds) and the utterance's start and end."""
    start = float(rng.uniform(0.08, 0.2))
    end = duration - float(rng.uniform(0.1, 0.2))
    pauses: list[tuple[float, float]] = []
    if v["pauses"]:
        k = 1 if duration < 3.5 else 2
        for j in range(k):
            length = float(rng.uniform(0.6, 0.85))
            centre = start + (end - start) * (j + 1) / (k + 1) + float(rng.uniform(-0.1, 0.1))
            pauses.append((centre - length / 2, centre + length / 2))
    rate = v["syllables_per_s"]
    out, t, p = [], start, 0
    while True:
        slot = float(rng.uniform(0.85, 1.15)) / rate
        voiced = slot * float(rng.uniform(0.6, 0.75))
        if p < len(pauses) and t + voiced > pauses[p][0]:
            t = max(t, pauses[p][1])
            p += 1
            continue
        if t + voiced > end:
            break
        out.append((t, t + voiced))
        t += slot
        if rng.random() < 0.25:  # a short word gap, never long enough to read as a pause
            t += float(rng.uniform(0.05, 0.15))
    if not out:  # very short clip: one syllable over the middle
        out.append((start, min(end, start + 0.6 / rate)))
    return out, start, end


def pitch_track(
    v: dict[str, Any], t: np.ndarray, start: float, end: float, syl: list[tuple[float, float]], rng: np.random.Generator
) -> np.ndarray:
    """F0 in Hz at times ``t`` (seconds): level x contour x per-syllable accent x tremor."""
    u = np.clip((t - start) / max(end - start, 1e-3), 0.0, 1.0)
    c = v["contour"]
    if c == "rising":
        contour = 0.84 + 0.32 * u
    elif c == "falling":
        contour = 1.16 - 0.32 * u
    elif c == "lively":
        cycles, phase = rng.uniform(2.0, 3.0), rng.uniform(0, 2 * np.pi)
        contour = 1.0 + CONTOUR_SWING * np.sin(2 * np.pi * cycles * u + phase)
    else:
        contour = 1.0 + 0.02 * np.sin(2 * np.pi * 0.3 * t + rng.uniform(0, 2 * np.pi))
    accent = np.ones_like(t)
    spread = 0.08 if c == "lively" else 0.02
    sr = 1.0 / (t[1] - t[0]) if len(t) > 1 else 1.0
    for a, b in syl:  # each syllable has its own small offset and a slight fall inside it
        i0, i1 = max(0, int((a - 0.02) * sr)), min(len(t), int((b + 0.02) * sr) + 1)
        accent[i0:i1] = 1.0 + rng.uniform(-spread, spread) - 0.03 * (t[i0:i1] - a) / max(b - a, 1e-3)
    f0 = v["f0"] * contour * accent
    if v.get("tremor_hz"):
        f0 = f0 * (1.0 + TREMOR_PITCH * np.sin(2 * np.pi * v["tremor_hz"] * t))
    return f0


def _pulse_table(size: int = 2048) -> np.ndarray:
    """Derivative (per unit phase) of one Rosenberg glottal pulse: opening over 40 % of the period, closing
    over 16 %, closed for the rest."""
    phase = (np.arange(size) + 0.5) / size
    rise, fall = 0.40, 0.16
    g = np.where(phase < rise, 0.5 * (1 - np.cos(np.pi * phase / rise)), 0.0)
    g = np.where((phase >= rise) & (phase < rise + fall), np.cos(0.5 * np.pi * (phase - rise) / fall), g)
    return np.gradient(g, 1.0 / size)


_PULSE = _pulse_table()


def _glottal(f0: np.ndarray, sr: int) -> np.ndarray:
    """Differentiated glottal pulses following the instantaneous pitch ``f0`` (Hz per sample): a table lookup
    of dg/dphase times dphase/dt."""
    step = f0 / sr
    phase = np.cumsum(step) % 1.0
    return _PULSE[(phase * len(_PULSE)).astype(np.int64)] * step


def nfft_key(n: int, taps: int) -> int:
    """FFT size for filtering ``n`` samples with ``taps`` taps without wrap-around."""
    return 1 << int(np.ceil(np.log2(n + taps)))


def render_voice(meta: dict[str, Any]) -> np.ndarray:
    """Mono float32 audio for the clip, ``round(duration * 16000)`` samples in [-1, 1]."""
    v = meta["voice"]
    sr = int(meta.get("sample_rate", SAMPLE_RATE))
    duration = float(meta["duration"])
    n = int(round(duration * sr))
    rng = np.random.default_rng(v["seed"])
    syl, start, end = _syllables(v, duration, rng)
    t = np.arange(n) / sr
    f0 = pitch_track(v, t, start, end, syl, rng)
    source = _glottal(f0, sr)
    irs = {k: _formant_ir(f, sr) for k, f in VOWELS.items()}
    irs_f: dict[str, dict[int, np.ndarray]] = {k: {} for k in VOWELS}  # spectra of the IRs per FFT size
    names = list(VOWELS)
    speech = np.zeros(n)
    active = np.zeros(n, dtype=bool)
    for a, b in syl:
        i0, i1 = int(a * sr), min(n, int(b * sr))
        if i1 - i0 < 16:
            continue
        seg_len = i1 - i0
        x = np.arange(seg_len) / seg_len
        env = np.ones(seg_len)
        att, dec = 0.25, 0.35
        env[x < att] = 0.5 * (1 - np.cos(np.pi * x[x < att] / att))
        env[x > 1 - dec] = 0.5 * (1 + np.cos(np.pi * (x[x > 1 - dec] - (1 - dec)) / dec))
        name = names[int(rng.integers(len(names)))]
        nfft = nfft_key(seg_len, len(irs[name]))  # FFT filtering: several times faster than np.convolve here
        if nfft not in irs_f[name]:
            irs_f[name][nfft] = np.fft.rfft(irs[name], nfft)
        voiced = np.fft.irfft(np.fft.rfft(source[i0:i1], nfft) * irs_f[name][nfft], nfft)[:seg_len] * env
        if rng.random() < 0.6:  # a consonant-like noise burst at the syllable onset
            k = min(seg_len, int(rng.uniform(0.025, 0.04) * sr))
            burst = np.diff(rng.normal(size=k + 1)) * np.hanning(k) * 0.08
            voiced[:k] += burst
        speech[i0:i1] += voiced
        active[i0:i1] |= env > 0.3
    if v.get("tremor_hz"):
        speech *= 1.0 + TREMOR_AMP * np.sin(2 * np.pi * v["tremor_hz"] * t + 0.5)
    rms = np.sqrt(np.mean(speech[active] ** 2)) if active.any() else 1.0
    speech *= 10 ** (v["level_db"] / 20) / max(rms, 1e-9)
    noise = rng.normal(size=n)
    if v["noise_color"] == "brown":
        noise = np.cumsum(noise)
        # remove the drift (a 50 ms moving average, via cumulative sums) so the noise stays stationary
        c = np.concatenate([[0.0], np.cumsum(noise)])
        k = 801
        lo = np.clip(np.arange(n) - k // 2, 0, n)
        hi = np.clip(np.arange(n) + k // 2 + 1, 0, n)
        noise = noise - (c[hi] - c[lo]) / (hi - lo)
    noise *= 10 ** (v["noise_db"] / 20) / max(np.sqrt(np.mean(noise**2)), 1e-9)
    y = speech + noise
    peak = np.max(np.abs(y))
    if peak > 0.95:  # soft limiter: only the loudest peaks are touched
        y = 0.95 * np.tanh(y / 0.95)
    return y.astype(np.float32)
