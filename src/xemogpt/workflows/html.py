"""A self-contained HTML page for one explanation: frames, waveform and spectrogram, cues, attention.

Everything is inline (base64 PNGs, CSS); the page has no script and loads nothing from the network (a
Content-Security-Policy forbids it), so it opens the same from a mail attachment as from disk.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np

from xemogpt.workflows.explain import Explanation

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1100px;color:#222;
background:#fafafa;padding:0 16px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:26px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#666;font-size:13px} .note{background:#fff4d6;border-left:4px solid #e0a800;padding:6px 10px;margin:6px 0;
font-size:13px}
.emotion{display:inline-block;font-size:26px;font-weight:600;background:#1f77b4;color:#fff;border-radius:8px;
padding:6px 18px;margin:10px 0}
.desc{background:#fff;border:1px solid #e3e3e3;border-radius:6px;padding:10px 14px;line-height:1.5}
.cues{display:grid;grid-template-columns:repeat(3,1fr);gap:14px}
.cues div{background:#fff;border:1px solid #e3e3e3;border-radius:6px;padding:8px 12px}
.cues h3{margin:2px 0 6px;font-size:14px} .cues ul{margin:0;padding-left:18px;font-size:14px;line-height:1.45}
.share{display:flex;height:22px;border-radius:4px;overflow:hidden;font-size:12px;color:#fff;max-width:640px}
.share span{display:flex;align-items:center;justify-content:center;white-space:nowrap;overflow:hidden}
.frames{display:flex;flex-wrap:wrap;gap:8px}
.frame{background:#fff;border:2px solid #e3e3e3;border-radius:6px;padding:4px;text-align:center;font-size:11px}
.frame.top{border-color:#d62728} .frame img{display:block;height:144px;image-rendering:auto}
.bar{height:6px;background:#eee;border-radius:3px;margin-top:4px} .bar i{display:block;height:6px;background:#d62728;
border-radius:3px}
.audio img{max-width:100%;border:1px solid #e3e3e3;border-radius:6px;background:#fff}
.muted{color:#888;font-style:italic}
"""


def png_data_uri(rgb: np.ndarray) -> str:
    """(H, W, 3) uint8 -> ``data:image/png;base64,...``."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb.astype(np.uint8))).save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def audio_figure(ex: Explanation) -> str | None:
    """Waveform and spectrogram with the attention over audio tokens drawn on them, as a PNG data URI."""
    if ex.waveform is None or len(ex.waveform) == 0:
        return None
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    wav = np.asarray(ex.waveform, dtype=np.float32)
    sr = ex.sample_rate
    t = np.arange(len(wav)) / sr
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10.5, 4.6), sharex=True, gridspec_kw={"height_ratios": [1, 1.3]})
    step = max(1, len(wav) // 20000)  # plotting every sample of a long clip is slow and looks the same
    ax1.plot(t[::step], wav[::step], color="#1f77b4", linewidth=0.6)
    ax1.set_ylabel("waveform", fontsize=8)
    ax1.set_xlim(0, max(t[-1], 1.0 / sr))
    nfft = 512 if len(wav) >= 512 else max(16, 1 << int(np.log2(max(16, len(wav)))))
    with np.errstate(divide="ignore"):  # digital silence has zero power: -inf dB, drawn as the darkest colour
        ax2.specgram(wav, NFFT=nfft, Fs=sr, noverlap=nfft * 3 // 4, cmap="magma")
    ax2.set_ylabel("Hz", fontsize=8)
    ax2.set_xlabel("seconds", fontsize=8)
    if ex.attention.audio and ex.audio_spans:
        w = np.asarray(ex.attention.audio, dtype=float)
        w = w / w.max() if w.max() > 0 else w
        centres = [(a + b) / 2 for a, b in ex.audio_spans]
        twin = ax2.twinx()
        twin.plot(centres, w, color="#2ca02c", linewidth=1.6, label="attention")
        twin.set_ylim(0, 1.05)
        twin.set_ylabel("attention (relative)", fontsize=8, color="#2ca02c")
        twin.tick_params(labelsize=7)
        for i in ex.top_audio_spans():
            a, b = ex.audio_spans[i]
            ax1.axvspan(a, b, color="#d62728", alpha=0.25)
            ax2.axvspan(a, b, edgecolor="#2ca02c", facecolor="none", linewidth=1.5)
    for ax in (ax1, ax2):
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _cue_list(items: list[str]) -> str:
    if not items:
        return '<p class="muted">none stated</p>'
    return "<ul>" + "".join(f"<li>{html.escape(c)}</li>" for c in items) + "</ul>"


def render_html(ex: Explanation) -> str:
    """The explanation page as one HTML string."""
    e = html.escape
    m = ex.media
    facts = []
    if m.get("has_video"):
        facts.append(f"video {m.get('width')}×{m.get('height')}" + (f", {m['fps']:.3g} fps" if m.get("fps") else ""))
    if m.get("duration_s"):
        facts.append(f"{m['duration_s']:.2f} s")
    if ex.waveform is not None:
        facts.append(f"audio {len(ex.waveform) / ex.sample_rate:.2f} s at {ex.sample_rate} Hz")
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
        "style-src 'unsafe-inline'\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>XEmoGPT explanation: {e(Path(ex.clip).name)}</title><style>{CSS}</style></head><body>",
        f"<h1>{e(Path(ex.clip).name)}</h1>",
        f'<div class="meta">{e(" · ".join(facts))}<br>model: {e(ex.checkpoint)}'
        + (f"<br>separate audio: {e(ex.audio_file)}" if ex.audio_file else "") + "</div>",
    ]
    if ex.subtitle:
        parts.append(f'<div class="meta">subtitle: “{e(ex.subtitle)}”</div>')
    parts += [f'<div class="note">{e(n)}</div>' for n in ex.notes]
    parts.append(f'<div class="emotion">{e(ex.emotion or "no emotion stated")}</div>')
    parts += ["<h2>Description</h2>", f'<div class="desc">{e(ex.description) or "<span class=muted>(empty)</span>"}'
              "</div>", "<h2>Cues</h2>", '<div class="cues">']
    for mod, title in (("visual", "Visual"), ("auditory", "Auditory"), ("emotional", "Reasoning")):
        items = ex.reasoning if mod == "emotional" else ex.cues.get(mod, [])
        parts.append(f"<div><h3>{title}</h3>{_cue_list(items)}</div>")
    parts.append("</div>")

    sh = ex.attention.share
    parts += ["<h2>Where the model looked</h2>",
              f'<div class="meta">Attention of the {ex.attention.tokens} generated tokens (averaged over layers and '
              "heads), split between the video tokens, the audio tokens and the text of the prompt:</div>",
              '<div class="share">']
    for key, color in (("video", "#d62728"), ("audio", "#2ca02c"), ("text", "#7f7f7f")):
        pct = max(0.0, sh.get(key, 0.0)) * 100
        if pct > 0:
            parts.append(f'<span style="width:{pct:.2f}%;background:{color}" title="{key} {pct:.1f}%">'
                         f"{key} {pct:.0f}%</span>")
    parts.append("</div>")

    parts.append("<h2>Sampled frames</h2>")
    if ex.frames is not None and len(ex.frames):
        weights = np.asarray(ex.attention.video or [0.0] * len(ex.frames), dtype=float)
        rel = weights / weights.max() if weights.max() > 0 else weights
        top = set(ex.top_frames())
        parts.append('<div class="meta">Frames the model saw, in order; the bar is the attention each got (relative '
                     "to the most attended), red borders mark the three most attended.</div>")
        parts.append('<div class="frames">')
        for i, frame in enumerate(ex.frames):
            when = f"{ex.frame_times[i]:.2f} s" if ex.frame_times else f"frame {i + 1}"
            w = rel[i] if i < len(rel) else 0.0
            parts.append(f'<div class="frame{" top" if i in top else ""}"><img alt="frame {i + 1}" '
                         f'src="{png_data_uri(frame)}"><div>#{i + 1} · {e(when)}</div>'
                         f'<div class="bar"><i style="width:{w * 100:.1f}%"></i></div></div>')
        parts.append("</div>")
    else:
        parts.append('<p class="muted">This input has no video frames.</p>')

    parts.append("<h2>Audio</h2>")
    fig = audio_figure(ex)
    if fig:
        parts.append('<div class="meta">Waveform and spectrogram of the audio the model heard; the green line is the '
                     "attention over audio tokens, red bands the three most attended spans.</div>")
        parts.append(f'<div class="audio"><img alt="waveform and spectrogram" src="{fig}"></div>')
    else:
        parts.append('<p class="muted">This input has no audio.</p>')
    parts.append("</body></html>")
    return "\n".join(parts)


def write_html(ex: Explanation, path: str | Path) -> Path:
    """Write the explanation page to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(ex), encoding="utf-8")
    return path
