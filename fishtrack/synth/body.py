"""Larval body geometry and tail kinematics (pure numpy; shared by truth and rendering).

Body coordinates are arc lengths ``s`` along the midline from the snout, in units of the body
length ``L`` (snout ``s = 0``, tail tip ``s = 1``):

* eyes: centres at ``s = S_HEAD`` (0.06), ``+/- EYE_LATERAL`` (0.06 L) either side of the
  midline; the **head point** (truth x, y) is the midpoint of the eye centres;
* rigid anterior body (head, swim bladder, yolk) from the snout to ``s = S_RIGID`` (0.30),
  pointing along ``heading`` (tail -> head direction);
* tail from ``S_RIGID`` to the tip: ``N_SEG`` (14) straight segments whose angles, relative to
  the backward body axis, are

  ``theta_j(t) = rest * x_j + A * env(u) * x_j**P * sin(2 pi f tau - K x_j) + bias(u) * x_j``

  with ``x_j = j / N_SEG``, ``P = 1`` by default (``SimSpec.tail_wave_exponent``), ``K = pi / 2`` (the wave travels tailwards), ``tau``
  the time since bout onset, ``u = tau / duration``,
  ``env(u) = sin(pi u) ** 0.5`` and ``bias(u) = -clip(0.6 turn, +/-0.8) sin(pi u)`` (the
  tail bends to the side the head turns to, as in a C-bend). Outside bouts the tail is
  frozen at its resting bend ``rest * x_j``.

Angles follow the image convention (y down): a positive angle rotates clockwise on screen, so
``tail_angle`` (head -> tip direction minus ``heading + pi``) is positive when the tip is
rotated clockwise. Pixel centres are at integer coordinates (OpenCV's drawing convention).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

__all__ = [
    "S_HEAD",
    "S_RIGID",
    "S_CENTRE",
    "N_SEG",
    "N_TAIL_POINTS",
    "REACH",
    "tail_angles",
    "chord_angle",
    "chord_angle_fast",
    "body_nodes",
    "midline_points",
    "fish_polygons",
    "bladder_polygons",
    "Morphology",
    "width_profile",
    "tail_arc_position",
    "bout_progress",
    "turn_progress",
    "wrap",
]

S_HEAD = 0.06
S_RIGID = 0.30
S_CENTRE = 0.50
"""Pivot point used by the motion model (on the straight body axis, half a length from the
snout); the whole body stays within ``REACH`` body lengths of it."""
N_SEG = 14
SEG = (1.0 - S_RIGID) / N_SEG
N_TAIL_POINTS = 10
P_EXP = 1.0
K_LAG = 0.5 * np.pi
EYE_LATERAL = 0.06
EYE_AXES = (0.05, 0.036)
EYE_TILT = 0.25
YOLK_S = 0.17
YOLK_AXES = (0.12, 0.042)
REACH = 0.62
"""Upper bound of the distance (in L) from the pivot to any outline point for tail angles the
model produces."""

_RIGID_S = np.array([0.0, 0.03, S_HEAD, 0.12, 0.2, S_RIGID])
NODE_S = np.r_[_RIGID_S, S_RIGID + SEG * np.arange(1, N_SEG + 1)]
_W_KNOTS_S = np.array([0.0, 0.03, 0.08, 0.15, 0.25, 0.32, 0.5, 0.75, 1.0])
_W_KNOTS_W = np.array([0.022, 0.038, 0.044, 0.048, 0.045, 0.034, 0.024, 0.014, 0.006])
NODE_W = np.interp(NODE_S, _W_KNOTS_S, _W_KNOTS_W)
_XJ = np.arange(1, N_SEG + 1) / N_SEG
_XJP_C = _XJ**P_EXP * np.cos(K_LAG * _XJ)
_XJP_S = _XJ**P_EXP * np.sin(K_LAG * _XJ)
_MID_S = S_HEAD + (1.0 - S_HEAD) * np.arange(N_TAIL_POINTS) / (N_TAIL_POINTS - 1)
_MID_IDX = np.clip(np.searchsorted(NODE_S, _MID_S, side="right") - 1, 0, len(NODE_S) - 2)
_MID_FRAC = (_MID_S - NODE_S[_MID_IDX]) / (NODE_S[_MID_IDX + 1] - NODE_S[_MID_IDX])
_HEAD_NODE = 2  # index of S_HEAD in NODE_S
_TIP_W = 0.006
_RIGID_NODES = len(_RIGID_S)
DISC_RADIUS = 0.075
"""Radius (L) of the dark head disc drawn instead of two eyes (``head_style='disc'``), at
``eye_size = 1``."""
BLADDER_S = 0.25
BLADDER_AXES = (0.045, 0.03)


@dataclass(frozen=True)
class Morphology:
    """How a larva is drawn; the defaults are the simulator's original drawing.

    Lengths are in body lengths ``L``, opacities are the fraction of the background light a
    part blocks (dark polarity) or the fraction of the fish brightness it adds (bright).
    Geometry never changes the truth: the head point is always the midline point at
    ``S_HEAD`` (the midpoint of the eye centres, or the centre of the head disc).

    Attributes
    ----------
    eye_size
        Multiplier of the eye ellipse axes ``EYE_AXES`` (and of the head disc radius).
    eye_lateral
        Distance of each eye centre from the midline (L).
    eye_tilt
        Rotation of each eye ellipse away from the body axis (rad).
    head_style
        ``"eyes"`` (two eyes) or ``"disc"`` (one dark head disc, no distinct eyes).
    head_width
        Multiplier of the body outline's width over the rigid anterior body.
    tail_width
        Multiplier of the tail's width (from mid-body to the tip).
    tail_taper
        Exponent of the tail's taper (> 1: thin sooner, < 1: stays wide longer).
    tail_tip_width
        Half-width of the tail at its tip (L).
    body_opacity, yolk_opacity, eye_opacity
        Opacity of the body outline, the head/yolk ellipse and the eyes (or disc).
    yolk_size
        Multiplier of the yolk ellipse's axes.
    bladder_opacity
        Opacity of a swim bladder ellipse at ``s = BLADDER_S`` (0: not drawn).
    tail_tip_opacity
        Opacity of the tail at its tip; None: the tail has the body's opacity throughout.
    tail_fade_start
        Arc position (L) from which the tail's opacity fades linearly to ``tail_tip_opacity``.
    """

    eye_size: float = 1.0
    eye_lateral: float = EYE_LATERAL
    eye_tilt: float = EYE_TILT
    head_style: str = "eyes"
    head_width: float = 1.0
    tail_width: float = 1.0
    tail_taper: float = 1.0
    tail_tip_width: float = _TIP_W
    body_opacity: float = 0.30
    yolk_opacity: float = 0.50
    eye_opacity: float = 0.88
    yolk_size: float = 1.0
    bladder_opacity: float = 0.0
    tail_tip_opacity: float | None = None
    tail_fade_start: float = 0.45

    @property
    def is_default_shape(self) -> bool:
        """The outline, eyes and yolk are the original drawing's."""
        d = Morphology()
        keys = ("eye_size", "eye_lateral", "eye_tilt", "head_style", "head_width",
                "tail_width", "tail_taper", "tail_tip_width", "yolk_size")
        return all(getattr(self, k) == getattr(d, k) for k in keys)

    @property
    def fades(self) -> bool:
        """The tail's opacity changes along its length."""
        return self.tail_tip_opacity is not None

    def replace(self, **kw) -> Morphology:
        vals = {f.name: getattr(self, f.name) for f in fields(self)}
        vals.update(kw)
        return Morphology(**vals)


def width_profile(morph: Morphology | None = None) -> np.ndarray:
    """Half-width (L) of the outline at every node ``NODE_S``."""
    if morph is None or morph.is_default_shape:
        return NODE_W
    w = NODE_W.copy()
    ant = NODE_S <= S_RIGID
    w[ant] = NODE_W[ant] * morph.head_width
    tail = ~ant
    w_base = float(NODE_W[_RIGID_NODES - 1])
    n = np.clip((NODE_W[tail] - _TIP_W) / (w_base - _TIP_W), 0.0, 1.0)
    k = np.interp(NODE_S[tail], [S_RIGID, 0.5], [morph.head_width, morph.tail_width])
    w[tail] = morph.tail_tip_width + (w_base * k - morph.tail_tip_width) * n**morph.tail_taper
    return np.maximum(w, 1e-4)


def tail_arc_position(nodes: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Arc position ``s`` (L) of the midline point nearest to each pixel, for one fish.

    Parameters
    ----------
    nodes
        (n_nodes, 2) midline nodes of the fish (``body_nodes``), snout first.
    px, py
        (K,) pixel coordinates.
    """
    a = nodes[:-1]
    b = nodes[1:]
    ab = b - a
    l2 = np.maximum((ab**2).sum(axis=1), 1e-12)
    t = ((px[:, None] - a[None, :, 0]) * ab[None, :, 0] + (py[:, None] - a[None, :, 1]) * ab[None, :, 1]) / l2
    t = np.clip(t, 0.0, 1.0)
    qx = a[None, :, 0] + t * ab[None, :, 0]
    qy = a[None, :, 1] + t * ab[None, :, 1]
    d2 = (px[:, None] - qx) ** 2 + (py[:, None] - qy) ** 2
    j = d2.argmin(axis=1)
    s0 = NODE_S[:-1][j]
    return s0 + t[np.arange(len(j)), j] * (NODE_S[1:][j] - s0)


def wrap(a: np.ndarray | float) -> np.ndarray:
    """Angles wrapped to (-pi, pi]."""
    return np.pi - np.mod(np.pi - np.asarray(a, dtype=float), 2.0 * np.pi)


def bout_progress(u: np.ndarray) -> np.ndarray:
    """Fraction of a bout's displacement done at bout phase ``u`` (speed ~ sin^2(pi u))."""
    u = np.clip(u, 0.0, 1.0)
    return u - np.sin(2.0 * np.pi * u) / (2.0 * np.pi)


def turn_progress(u: np.ndarray) -> np.ndarray:
    """Fraction of a bout's heading change done at ``u`` (smoothstep over the first 40 %)."""
    v = np.clip(np.asarray(u, dtype=float) / 0.4, 0.0, 1.0)
    return v * v * (3.0 - 2.0 * v)


def tail_angles(
    rest: np.ndarray,
    *,
    tau: np.ndarray | None = None,
    duration: np.ndarray | None = None,
    freq: np.ndarray | None = None,
    amp: np.ndarray | None = None,
    turn: np.ndarray | None = None,
    in_bout: np.ndarray | None = None,
    dtype=np.float64,
    wave_exp: float = P_EXP,
) -> np.ndarray:
    """Tail segment angles (rad, relative to the backward body axis), shape ``(K, N_SEG)``.

    Parameters
    ----------
    rest
        (K,) resting bend at the tip (rad).
    tau, duration, freq, amp, turn
        (K,) time since bout onset (s), bout duration (s), tail-beat frequency (Hz), wave
        amplitude at the tip (rad) and heading change of the bout (rad); used where
        ``in_bout``.
    in_bout
        (K,) bool; rows outside a bout get the resting shape.
    wave_exp
        Exponent ``P`` of the wave's amplitude along the tail, ``x_j ** P`` (1: the segment
        angles grow linearly towards the tip; larger: the bend is concentrated near the tip).
    """
    rest = np.asarray(rest, dtype=float)
    if in_bout is None or not np.any(in_bout):
        return np.outer(rest, _XJ).astype(dtype, copy=False)
    m = np.asarray(in_bout, bool)
    t = np.asarray(tau, float)
    u = np.clip(t / np.asarray(duration, float), 0.0, 1.0)
    su = np.sin(np.pi * u)
    env = np.asarray(amp, float) * np.sqrt(su)
    a = 2.0 * np.pi * np.asarray(freq, float) * t
    # sin(a - K x) = sin a cos Kx - cos a sin Kx
    wa = np.where(m, env * np.sin(a), 0.0)
    wb = np.where(m, -env * np.cos(a), 0.0)
    lin = rest + np.where(m, -np.clip(0.6 * np.asarray(turn, float), -0.8, 0.8) * su, 0.0)
    theta = np.outer(lin, _XJ).astype(dtype, copy=False)
    if wave_exp == P_EXP:
        xc, xs = _XJP_C, _XJP_S
    else:
        xc = _XJ**wave_exp * np.cos(K_LAG * _XJ)
        xs = _XJ**wave_exp * np.sin(K_LAG * _XJ)
    theta += np.outer(wa, xc).astype(dtype, copy=False)
    theta += np.outer(wb, xs).astype(dtype, copy=False)
    return theta


def chord_angle_fast(rest, tau, duration, freq, amp, turn) -> np.ndarray:
    """``tail_angle`` of bout frames straight from the bout parameters (float32 inside)."""
    k = len(np.atleast_1d(tau))
    th = tail_angles(rest, tau=tau, duration=duration, freq=freq, amp=amp, turn=turn,
                     in_bout=np.ones(k, bool), dtype=np.float32)
    x = (S_RIGID - S_HEAD) + SEG * np.cos(th).sum(axis=1, dtype=np.float64)
    y = SEG * np.sin(th).sum(axis=1, dtype=np.float64)
    return np.arctan2(y, x)


def _tail_offsets(theta: np.ndarray) -> np.ndarray:
    """Node positions (K, n_nodes, 2) in the body frame: x backward from the head point, y
    lateral (positive = clockwise side), unit = L."""
    k = theta.shape[0]
    out = np.empty((k, len(NODE_S), 2))
    out[:, : len(_RIGID_S), 0] = _RIGID_S - S_HEAD
    out[:, : len(_RIGID_S), 1] = 0.0
    steps = SEG * np.stack([np.cos(theta), np.sin(theta)], axis=-1)
    out[:, len(_RIGID_S):, :] = out[:, len(_RIGID_S) - 1 : len(_RIGID_S), :] + np.cumsum(steps, axis=1)
    return out


def chord_angle(theta: np.ndarray) -> np.ndarray:
    """``tail_angle`` (rad) of tail shapes ``theta`` (K, N_SEG): direction head -> tip minus the
    backward body axis. Independent of position, heading and size."""
    off = _tail_offsets(theta)
    return np.arctan2(off[:, -1, 1], off[:, -1, 0])


def body_nodes(
    hx: np.ndarray, hy: np.ndarray, heading: np.ndarray, theta: np.ndarray, length: float
) -> np.ndarray:
    """Midline nodes in image coordinates, (K, n_nodes, 2), snout first (node ``_HEAD_NODE``
    is the head point)."""
    off = _tail_offsets(theta) * length
    back = np.asarray(heading, float) + np.pi
    c, s = np.cos(back)[:, None], np.sin(back)[:, None]
    x = np.asarray(hx, float)[:, None] + off[..., 0] * c - off[..., 1] * s
    y = np.asarray(hy, float)[:, None] + off[..., 0] * s + off[..., 1] * c
    return np.stack([x, y], axis=-1)


def midline_points(nodes: np.ndarray) -> np.ndarray:
    """``N_TAIL_POINTS`` points equally spaced in arc length from the head point to the tail
    tip, (K, N_TAIL_POINTS, 2)."""
    a = nodes[:, _MID_IDX, :]
    b = nodes[:, _MID_IDX + 1, :]
    return a + (b - a) * _MID_FRAC[None, :, None]


def _ellipse(cx, cy, ang, a, b, n):
    t = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    ex, ey = a * np.cos(t), b * np.sin(t)
    ca, sa = np.cos(ang)[:, None], np.sin(ang)[:, None]
    return np.stack([cx[:, None] + ex * ca - ey * sa, cy[:, None] + ex * sa + ey * ca], axis=-1)


def fish_polygons(
    nodes: np.ndarray, heading: np.ndarray, length: float, morph: Morphology | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Outline, yolk and eye polygons (float px) of fish given their midline nodes.

    Returns
    -------
    outline : (K, 2 n_nodes + 1, 2)
    yolk : (K, 16, 2)
    eyes : (K, 2, 12, 2) two eyes, or (K, 1, 24, 2) the head disc (``head_style='disc'``;
        24 vertices per eye when ``morph`` changes the eyes)
    """
    default = morph is None or morph.is_default_shape
    m = morph or Morphology()
    d = np.diff(nodes, axis=1)
    d /= np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-12)
    tang = np.empty_like(nodes)
    tang[:, 0] = d[:, 0]
    tang[:, -1] = d[:, -1]
    tang[:, 1:-1] = d[:, :-1] + d[:, 1:]
    tang /= np.maximum(np.linalg.norm(tang, axis=-1, keepdims=True), 1e-12)
    # tangents point backward (snout -> tip); normal = tangent rotated by +90 deg
    nrm = np.stack([-tang[..., 1], tang[..., 0]], axis=-1)
    w = (width_profile(m) * length)[None, :, None]
    left = nodes + nrm * w
    right = nodes - nrm * w
    tip = nodes[:, -1:] + tang[:, -1:] * ((0.004 if default else max(0.004, m.tail_tip_width)) * length)
    outline = np.concatenate([left, tip, right[:, ::-1]], axis=1)

    h = np.asarray(heading, float)
    fx, fy = np.cos(h), np.sin(h)  # forward unit vector
    hx, hy = nodes[:, _HEAD_NODE, 0], nodes[:, _HEAD_NODE, 1]
    yc_x = hx - fx * (YOLK_S - S_HEAD) * length
    yc_y = hy - fy * (YOLK_S - S_HEAD) * length
    ys = m.yolk_size
    yolk = _ellipse(yc_x, yc_y, h, YOLK_AXES[0] * ys * length, YOLK_AXES[1] * ys * length, 16)
    n_eye = 12 if default else 24
    ea, eb = EYE_AXES[0] * m.eye_size * length, EYE_AXES[1] * m.eye_size * length
    if m.head_style == "disc":
        r = DISC_RADIUS * m.eye_size * length
        eyes = _ellipse(hx, hy, h, r, r, n_eye)[:, None]
        return outline, yolk, eyes
    lat = m.eye_lateral * length
    px, py = -fy, fx  # perpendicular (clockwise side)
    eyes = np.stack(
        [
            _ellipse(hx + px * lat, hy + py * lat, h - m.eye_tilt, ea, eb, n_eye),
            _ellipse(hx - px * lat, hy - py * lat, h + m.eye_tilt, ea, eb, n_eye),
        ],
        axis=1,
    )
    return outline, yolk, eyes


def bladder_polygons(nodes: np.ndarray, heading: np.ndarray, length: float) -> np.ndarray:
    """Swim bladder ellipses (K, 16, 2) on the body axis at ``s = BLADDER_S``."""
    h = np.asarray(heading, float)
    hx, hy = nodes[:, _HEAD_NODE, 0], nodes[:, _HEAD_NODE, 1]
    k = (BLADDER_S - S_HEAD) * length
    return _ellipse(hx - np.cos(h) * k, hy - np.sin(h) * k, h, BLADDER_AXES[0] * length,
                    BLADDER_AXES[1] * length, 16)
