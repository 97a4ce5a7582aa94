"""The drawn face: per-frame expression state from a clip's ``meta`` and vectorised numpy rasterisation.

Geometry is in *face units* (1 = the face's half-height, ``meta["face"]["scale"]`` of the frame) around the face
centre, so a face looks the same at every ``--size``. Shapes are anti-aliased by turning an approximate signed
distance into pixel coverage, and each shape only touches the pixels of its bounding box. Cue displacements are
sized for the model's view (16 frames at 64x64): even a *slight* cue moves its feature by >= 2 pixels there.

Frame state vector (see :data:`STATE_FIELDS`): mouth corner lift (+up/-down), mouth gap, mouth width factor,
teeth showing, upper-lip lift, nose wrinkle, brow raise, inner-brow raise (negative: pulled down), brows drawn
together, frown crease, eye opening factor, blink, gaze x/y, head offset x/y (frame units), feature offset x/y
(face units, turning/lowering/nodding the head), head turn.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

STATE_FIELDS: tuple[str, ...] = (
    "corner",
    "gap",
    "mwidth",
    "teeth",
    "lift",
    "wrinkle",
    "brow_raise",
    "brow_inner",
    "brow_in",
    "crease",
    "eye_open",
    "blink",
    "gaze_x",
    "gaze_y",
    "head_dx",
    "head_dy",
    "feat_dx",
    "feat_dy",
    "turn",
)
_F = {name: i for i, name in enumerate(STATE_FIELDS)}
NEUTRAL_STATE = np.zeros(len(STATE_FIELDS), dtype=np.float64)
NEUTRAL_STATE[_F["mwidth"]] = 1.0
NEUTRAL_STATE[_F["eye_open"]] = 1.0

# (field, clear value, slight value): how each visual cue moves the state. Additive except eye_open and mwidth,
# which multiply (a cue's value v contributes a factor 1 + (v - 1) * envelope).
CUE_EFFECTS: dict[str, list[tuple[str, float, float]]] = {
    "mouth_corners=up": [("corner", 0.26, 0.17)],
    "mouth_corners=down": [("corner", -0.24, -0.16)],
    "mouth=wide_open": [("gap", 0.36, 0.36), ("mwidth", 0.78, 0.78)],
    "mouth=slightly_open": [("gap", 0.16, 0.16)],
    "mouth=stretched": [("mwidth", 1.45, 1.30), ("gap", 0.09, 0.07), ("teeth", 1.0, 1.0)],
    "nose=wrinkled": [("wrinkle", 1.0, 0.65), ("lift", 0.13, 0.09)],
    "brows=raised": [("brow_raise", 0.18, 0.12)],
    "brows=inner_raised": [("brow_inner", 0.16, 0.11)],
    "brows=furrowed": [
        ("brow_raise", -0.07, -0.05),
        ("brow_inner", -0.10, -0.07),
        ("brow_in", 0.06, 0.04),
        ("crease", 1.0, 0.65),
    ],
    "eyes=wide": [("eye_open", 1.75, 1.45)],
    "eyes=narrowed": [("eye_open", 0.38, 0.58)],
    "gaze=down": [("gaze_y", 1.0, 1.0)],
    "head=lowered": [("head_dy", 0.05, 0.03), ("feat_dy", 0.17, 0.11)],
    "head=turned_away": [("turn", 1.0, 0.7)],
}
_MULTIPLICATIVE = {"eye_open", "mwidth"}
RAMP = 0.12  # onset/fade ramp, as a fraction of the clip


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def envelope(cue: dict[str, Any], u: np.ndarray) -> np.ndarray:
    """Strength 0..1 of a cue at clip fractions ``u`` (shape (T,)) from its onset: start, part-way or fading."""
    onset = cue.get("onset", "start")
    if onset == "part-way":
        return _smoothstep((u - cue["t_on"]) / RAMP)
    if onset == "fading":
        return 1.0 - _smoothstep((u - cue["t_off"]) / RAMP)
    return np.ones_like(u)


def face_states(meta: dict[str, Any]) -> np.ndarray:
    """Per-frame state vectors, shape (n_frames, len(STATE_FIELDS))."""
    n, fps, dur = meta["n_frames"], meta["fps"], meta["duration"]
    t = np.arange(n) / fps
    u = t / dur
    st = np.tile(NEUTRAL_STATE, (n, 1))
    for cue_id, cue in meta["visual_cues"].items():
        env = envelope(cue, u)
        slight = cue.get("intensity") == "slight"
        for fld, clear_v, slight_v in CUE_EFFECTS.get(cue_id, []):
            v = slight_v if slight else clear_v
            if fld in _MULTIPLICATIVE:
                st[:, _F[fld]] *= 1.0 + (v - 1.0) * env
            else:
                st[:, _F[fld]] += v * env
        if cue_id == "head=turned_away":
            st[:, _F["turn"]] *= cue["direction"]
        elif cue_id == "gaze=aside":
            st[:, _F["gaze_x"]] += cue["direction"] * env
        elif cue_id in ("head=nod", "head=shake"):
            wave = np.sin(2 * np.pi * cue["cycles"] * u + cue["phase"])
            if cue_id == "head=nod":
                st[:, _F["head_dy"]] += 0.045 * wave
                st[:, _F["feat_dy"]] += 0.10 * wave
            else:
                st[:, _F["head_dx"]] += 0.045 * wave
                st[:, _F["feat_dx"]] += 0.16 * wave
    for start, end in meta["face"]["blinks"]:
        # closed inside [start, end], half-closed in the frame on each side
        closed = (t >= start) & (t <= end)
        near = (t >= start - 1.0 / fps) & (t <= end + 1.0 / fps) & ~closed
        st[:, _F["blink"]] = np.maximum(st[:, _F["blink"]], np.where(closed, 1.0, np.where(near, 0.5, 0.0)))
    return st


class Painter:
    """Draws anti-aliased shapes, given in face units, into an (N, N, 3) float image."""

    def __init__(self, img: np.ndarray, fx: float, fy: float, scale: float):
        self.img = img
        self.n = img.shape[0]
        self.fx, self.fy, self.s = fx, fy, scale
        self.px = scale * self.n  # pixels per face unit

    def box(self, u0: float, u1: float, v0: float, v1: float):
        """Pixel window covering face-unit box [u0,u1]x[v0,v1] and its face-unit coordinates (or None)."""
        n = self.n
        ix0 = max(0, int(math.floor((self.fx + u0 * self.s) * n - 1)))
        ix1 = min(n, int(math.ceil((self.fx + u1 * self.s) * n + 1)))
        iy0 = max(0, int(math.floor((self.fy + v0 * self.s) * n - 1)))
        iy1 = min(n, int(math.ceil((self.fy + v1 * self.s) * n + 1)))
        if ix1 <= ix0 or iy1 <= iy0:
            return None
        uu = ((np.arange(ix0, ix1) + 0.5) / n - self.fx) / self.s
        vv = ((np.arange(iy0, iy1) + 0.5) / n - self.fy) / self.s
        return (iy0, iy1, ix0, ix1), uu[None, :], vv[:, None]

    def blend(self, win, alpha: np.ndarray, color) -> None:
        iy0, iy1, ix0, ix1 = win
        sub = self.img[iy0:iy1, ix0:ix1]
        sub += alpha[..., None] * (np.asarray(color, dtype=np.float32) - sub)

    def cover(self, sdf: np.ndarray) -> np.ndarray:
        """Signed distance (face units, negative inside) -> coverage 0..1 with a one-pixel soft edge."""
        return np.clip(0.5 - sdf * self.px, 0.0, 1.0).astype(np.float32)

    @staticmethod
    def ellipse_sdf(uu, vv, cu, cv, ru, rv):
        du, dv = uu - cu, vv - cv
        f = (du / ru) ** 2 + (dv / rv) ** 2 - 1.0
        g = 2.0 * np.sqrt((du / ru**2) ** 2 + (dv / rv**2) ** 2)
        return f / np.maximum(g, 1e-6)

    def ellipse(self, cu, cv, ru, rv, color, alpha: float = 1.0) -> None:
        b = self.box(cu - ru, cu + ru, cv - rv, cv + rv)
        if b is not None:
            win, uu, vv = b
            self.blend(win, alpha * self.cover(self.ellipse_sdf(uu, vv, cu, cv, ru, rv)), color)

    def capsule(self, u0, v0, u1, v1, r, color, alpha: float = 1.0) -> None:
        """A line segment of radius ``r`` with round ends."""
        b = self.box(min(u0, u1) - r, max(u0, u1) + r, min(v0, v1) - r, max(v0, v1) + r)
        if b is None or alpha <= 0:
            return
        win, uu, vv = b
        du, dv = u1 - u0, v1 - v0
        h = np.clip(((uu - u0) * du + (vv - v0) * dv) / max(du * du + dv * dv, 1e-9), 0.0, 1.0)
        d = np.sqrt((uu - u0 - h * du) ** 2 + (vv - v0 - h * dv) ** 2) - r
        self.blend(win, alpha * self.cover(d), color)


def background(meta: dict[str, Any], size: int) -> np.ndarray:
    """The static backdrop: a vertical gradient between two colours, (size, size, 3) float32."""
    c = meta["face"]["colors"]
    w = np.linspace(0.0, 1.0, size, dtype=np.float32)[:, None, None]
    img = np.asarray(c["background"], np.float32) * (1 - w) + np.asarray(c["background2"], np.float32) * w
    return np.broadcast_to(img, (size, size, 3)).copy()


def _eye(p: Painter, cu: float, cv: float, ru: float, st: np.ndarray, col: dict[str, Any]) -> None:
    """Sclera with dark rim, iris and pupil clipped to the sclera; a lid line when (nearly) closed."""
    skin = np.asarray(col["skin"])
    lid = skin * 0.45
    open_f = st[_F["eye_open"]] * (1.0 - st[_F["blink"]]) * (1.0 - 0.2 * st[_F["gaze_y"]])
    rv = 0.12 * open_f
    cv = cv + 0.02 * st[_F["gaze_y"]]
    if rv < 0.025:
        p.capsule(cu - ru, cv, cu + ru, cv, 0.045, lid)  # a thick lid line: closed eyes must read at 64x64
        return
    b = p.box(cu - ru - 0.05, cu + ru + 0.05, cv - rv - 0.05, cv + rv + 0.05)
    if b is None:
        return
    win, uu, vv = b
    rim = p.cover(p.ellipse_sdf(uu, vv, cu, cv, ru + 0.03, rv + 0.03))
    p.blend(win, rim, lid)
    sclera = p.cover(p.ellipse_sdf(uu, vv, cu, cv, ru, rv))
    p.blend(win, sclera, (0.96, 0.96, 0.94))
    gu = cu + 0.14 * st[_F["gaze_x"]]
    gv = cv + 0.06 * st[_F["gaze_y"]]
    dist = np.sqrt((uu - gu) ** 2 + (vv - gv) ** 2)
    p.blend(win, sclera * p.cover(dist - 0.095), col["iris"])
    p.blend(win, sclera * p.cover(dist - 0.045), (0.03, 0.03, 0.03))


def _mouth(p: Painter, cu: float, cv: float, st: np.ndarray, col: dict[str, Any]) -> None:
    """Lips around an opening: centre line bends by the corner lift, the opening follows a half-ellipse."""
    w = 0.30 * st[_F["mwidth"]]
    corner, gap, lift = st[_F["corner"]], st[_F["gap"]], st[_F["lift"]]
    th = 0.065  # lip thickness
    top = cv - max(corner, 0) - 0.3 * gap - lift - th
    bot = cv - min(corner, 0) + 0.7 * gap + th
    b = p.box(cu - w - 0.02, cu + w + 0.02, top - 0.02, bot + 0.02)
    if b is None:
        return
    win, uu, vv = b
    t = (uu - cu) / w
    prof = np.sqrt(np.clip(1.0 - t * t, 0.0, 1.0))
    yc = cv - corner * t * t
    yu = yc - (0.3 * gap + lift) * prof
    yl = yc + 0.7 * gap * prof
    ends = np.clip((1.0 - np.abs(t)) * w * p.px + 0.5, 0.0, 1.0).astype(np.float32)  # soft left/right ends
    px = p.px
    inside = np.clip((vv - yu) * px + 0.5, 0, 1) * np.clip((yl - vv) * px + 0.5, 0, 1) * ends
    if gap > 0 or lift > 0:
        p.blend(win, inside.astype(np.float32), (0.25, 0.04, 0.06))
        teeth = st[_F["teeth"]]
        if lift > 0:  # a raised upper lip bares the upper teeth
            band = np.clip((vv - yu) * px + 0.5, 0, 1) * np.clip((yc - vv) * px + 0.5, 0, 1) * ends
            p.blend(win, band.astype(np.float32), (0.93, 0.92, 0.86))
        if teeth > 0:
            band = np.clip((vv - yu - 0.02) * px + 0.5, 0, 1) * np.clip((yl - 0.02 - vv) * px + 0.5, 0, 1) * ends
            p.blend(win, (teeth * band).astype(np.float32), (0.93, 0.92, 0.86))
    thick = th * (0.55 + 0.45 * prof)
    upper = np.clip((vv - (yu - thick)) * px + 0.5, 0, 1) * np.clip((yu - vv) * px + 0.5, 0, 1) * ends
    lower = np.clip((vv - yl) * px + 0.5, 0, 1) * np.clip((yl + thick - vv) * px + 0.5, 0, 1) * ends
    p.blend(win, np.maximum(upper, lower).astype(np.float32), col["lip"])
    # Creases beside the corners make the corner movement readable at 64x64: smile lines curve up around a
    # raised corner, short lines run down from a lowered one.
    crease = np.asarray(col["skin"]) * 0.55
    for side in (-1, 1):
        if corner > 0:
            p.capsule(
                cu + side * (w + 0.01),
                cv - corner - 0.13,
                cu + side * (w + 0.07),
                cv - corner + 0.05,
                0.024,
                crease,
                min(1.0, corner / 0.17),
            )
        elif corner < 0:
            p.capsule(
                cu + side * (w - 0.01),
                cv - corner + 0.05,
                cu + side * (w + 0.03),
                cv - corner + 0.19,
                0.024,
                crease,
                min(1.0, -corner / 0.16),
            )


def render_frame(meta: dict[str, Any], st: np.ndarray, size: int, bg: np.ndarray | None = None) -> np.ndarray:
    """One RGB frame (size, size, 3) uint8 for state vector ``st``."""
    f, col = meta["face"], meta["face"]["colors"]
    img = (background(meta, size) if bg is None else bg).copy()
    s = f["scale"]
    p = Painter(img, f["cx"] + st[_F["head_dx"]], f["cy"] + st[_F["head_dy"]], s)
    turn = st[_F["turn"]]
    aspect = f["aspect"] * (1.0 - 0.12 * abs(turn))
    skin = np.asarray(col["skin"])
    fdx = st[_F["feat_dx"]] + 0.24 * turn
    fdy = st[_F["feat_dy"]]

    # hair behind the head (shifted away from the turn), ears, face
    p.ellipse(-0.10 * turn, -0.12 - 0.5 * f["hair"] + 0.3 * fdy, aspect * 1.1, 0.95 + 0.5 * f["hair"], col["hair"])
    for side in (-1, 1):
        show = 1.0 - max(0.0, side * turn)  # the ear on the side the head turns towards disappears
        if show > 0.05:
            p.ellipse(side * (aspect - 0.02) - 0.1 * turn, 0.05 + fdy * 0.5, 0.11 * show, 0.19, skin * 0.88)
    p.ellipse(0.0, 0.0, aspect, 1.0, skin)

    # eyes (the one on the turned side is foreshortened), brows, frown crease
    for side in (-1, 1):
        fore = 1.0 - 0.35 * max(0.0, side * turn)  # the side turned away is foreshortened
        _eye(p, side * 0.34 * fore + fdx, -0.10 + fdy, 0.19 * fore, st, col)
    raise_, inner, drawn = st[_F["brow_raise"]], st[_F["brow_inner"]], st[_F["brow_in"]]
    for side in (-1, 1):
        fore = 1.0 - 0.35 * max(0.0, side * turn)
        ui, uo = side * (0.13 - drawn) * fore + fdx, side * 0.55 * fore + fdx
        vi, vo = -0.33 - raise_ - inner + fdy, -0.36 - raise_ + fdy + 0.02 * max(inner, 0)
        p.capsule(ui, vi, uo, vo, 0.045, col["brow"])
    crease = st[_F["crease"]]
    if crease > 0:
        for side in (-1, 1):
            p.capsule(side * 0.045 + fdx, -0.30 + fdy, side * 0.03 + fdx, -0.17 + fdy, 0.022, skin * 0.5, crease)

    # nose with wrinkle lines and folds to the mouth
    nd = fdx + 0.10 * turn
    wr = st[_F["wrinkle"]]
    p.capsule(nd, -0.06 + fdy, nd + 0.02, 0.16 + fdy, 0.028, skin * 0.72)
    p.capsule(
        nd - 0.09 - 0.04 * wr, 0.21 + fdy - 0.03 * wr, nd + 0.09 + 0.04 * wr, 0.21 + fdy - 0.03 * wr, 0.035, skin * 0.62
    )
    if wr > 0:
        for k, v in enumerate((-0.02, 0.05, 0.12)):
            a = min(1.0, wr * 1.5 - 0.5 * k / 2)
            p.capsule(nd - 0.09, v + fdy, nd + 0.09, v + fdy, 0.026, skin * 0.5, max(a, 0.0))
        for side in (-1, 1):
            p.capsule(nd + side * 0.12, 0.22 + fdy, fdx + side * 0.27, 0.42 + fdy, 0.026, skin * 0.55, wr)

    _mouth(p, fdx + 0.05 * turn, 0.50 + fdy, st, col)
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def render_frames(meta: dict[str, Any], size: int):
    """Yield the clip's frames as (size, size, 3) uint8 arrays; frames with an unchanged state are reused."""
    bg = background(meta, size)
    last_key, last = None, None
    for st in face_states(meta):
        key = tuple(np.round(st, 5))
        if key != last_key:
            last, last_key = render_frame(meta, st, size, bg), key
        yield last
