"""Head (point between the eyes), heading and body midline, vectorised over many fish.

Every function works on a stack of square patches ``F`` (M, P, P) float32 of *fishness*
(difference from the background towards the fish polarity), one patch per detected fish, so
that the per-fish Python work is a handful of NumPy calls per chunk rather than per fish.

Head
    The eyes are the strongest-contrast blobs of a larva and sit at its wide end. ``F`` is
    smoothed lightly (sigma ~ 0.017 length, well below an eye radius, so that the darker
    head/yolk region behind the eyes does not merge with them); within 0.2 length of the
    strongest point, the pixels above ``eye_level`` (0.7) x that peak are the eyes, and their
    weighted centroid is the head (the point midway between the eyes, as both eyes weigh about
    the same).
Midline
    Stytra-style angular sweeps: from the head, step ``s`` pixels at a time; at each step sample
    the smoothed fishness on an arc of +-60 degrees around the previous direction (+-35 degrees
    on the first step, which must leave the eyes behind) and move to the ridge (arg max refined
    by a parabola through its neighbours). Stop when the ridge fades below ``stop`` or leaves
    the patch. The trace is resampled to ``n_points`` equally spaced points from head to tail
    tip.
Angles
    ``heading`` = direction from the midline point at 25 % of the traced length to the head;
    ``tail_angle`` = wrap(atan2(tip - head) - (heading + pi)); ``tail_curvature`` = mean
    absolute turning angle per unit length of the resampled midline: the sum of the absolute
    direction changes at its interior points divided by the length they span (from the middle
    of the first segment to the middle of the last), rad/px; 0 for a straight fish, exactly
    1/R for a circular arc of radius R.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = [
    "Midlines",
    "gather_patches",
    "smooth_patches",
    "locate_heads",
    "initial_directions",
    "trace_midlines",
    "body_angles",
    "wrap",
]


#: largest change of direction between two steps of a tail trace (rad)
MAX_TURN = np.pi / 3
#: the trace ends where the ridge is weaker than this fraction of the body's ridge
REL_STOP = 0.12


def wrap(a: np.ndarray | float) -> np.ndarray:
    """Wrap angles to (-pi, pi]."""
    a = np.asarray(a, dtype=np.float64)
    out = np.mod(a + np.pi, 2 * np.pi) - np.pi
    return np.where(out <= -np.pi, out + 2 * np.pi, out)


def gather_patches(
    stack: np.ndarray, t: np.ndarray, y0: np.ndarray, x0: np.ndarray, p: int
) -> np.ndarray:
    """Square patches ``stack[t, y0:y0+p, x0:x0+p]`` (zero where they leave the image).

    Parameters
    ----------
    stack
        (N, h, w) array.
    t, y0, x0
        (M,) integer frame index and top-left corner of each patch.
    p
        Patch side.
    """
    _, h, w = stack.shape
    m = len(t)
    out = np.zeros((m, p, p), stack.dtype)
    ya = np.clip(y0, 0, h)
    yb = np.clip(y0 + p, 0, h)
    xa = np.clip(x0, 0, w)
    xb = np.clip(x0 + p, 0, w)
    for k in range(m):
        if yb[k] > ya[k] and xb[k] > xa[k]:
            oy, ox = ya[k] - y0[k], xa[k] - x0[k]
            out[k, oy : oy + yb[k] - ya[k], ox : ox + xb[k] - xa[k]] = stack[t[k], ya[k] : yb[k], xa[k] : xb[k]]
    return out


def smooth_patches(f: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing of every patch of a stack (M, P, Q), same dtype (uint8 is much
    faster than float in OpenCV).

    The patches are laid side by side in one wide image with zero gaps (OpenCV filters pay a
    cost per image row, so a wide mosaic is much cheaper than a tall stack of small patches).
    """
    m, p, q = f.shape
    if m == 0:
        return f.copy()
    k = 2 * int(round(2 * sigma)) + 1
    gap = k // 2 + 1
    wide = np.zeros((p, m, q + gap), f.dtype)
    wide[:, :, :q] = f.transpose(1, 0, 2)
    out = cv2.GaussianBlur(wide.reshape(p, m * (q + gap)), (k, k), sigma, borderType=cv2.BORDER_CONSTANT)
    return np.ascontiguousarray(out.reshape(p, m, q + gap)[:, :, :q].transpose(1, 0, 2))


def locate_heads(
    f: np.ndarray, length: float, sigma: float, *, eye_level: float = 0.7
) -> tuple[np.ndarray, np.ndarray]:
    """Head position (between the eyes) in every fishness patch.

    Only a window around the strongest pixel is smoothed (sigma), so the cost per fish does not
    grow with the patch size.

    Parameters
    ----------
    f
        (M, P, P) fishness, zero outside the fish.
    length
        Fish length (px), sets the eye search radius (0.2 length).
    sigma
        Smoothing (px) before the eyes are thresholded.
    eye_level
        Fraction of the smoothed peak above which a pixel counts as eye.

    Returns
    -------
    heads
        (M, 2) float64 ``(x, y)`` in patch pixels.
    peak
        (M,) peak smoothed fishness.
    """
    m, p, _ = f.shape
    if m == 0:
        return np.zeros((0, 2)), np.zeros(0)
    am = f.reshape(m, -1).argmax(axis=1)
    py, px = np.divmod(am, p)
    r = int(max(2, np.ceil(0.2 * length)))
    big = r + int(np.ceil(2 * sigma)) + 1
    side = 2 * big + 1
    win = smooth_patches(gather_patches(f, np.arange(m), py - big, px - big, side), sigma)
    win = win.astype(np.float32)
    wf = win.reshape(m, -1)
    am2 = wf.argmax(axis=1)
    peak = wf[np.arange(m), am2]
    cy, cx = np.divmod(am2, side)
    ar = np.arange(side, dtype=np.float32)
    dy = ar[None, :, None] - cy[:, None, None]
    dx = ar[None, None, :] - cx[:, None, None]
    disk = (dx * dx + dy * dy) <= r * r
    wgt = np.clip(win - eye_level * peak[:, None, None], 0, None) * disk
    s = wgt.sum(axis=(1, 2))
    s = np.where(s > 0, s, 1.0)
    my = (wgt * ar[None, :, None]).sum(axis=(1, 2)) / s
    mx = (wgt * ar[None, None, :]).sum(axis=(1, 2)) / s
    heads = np.stack([px - big + mx, py - big + my], axis=1).astype(np.float64)
    return heads, peak.astype(np.float64)


def initial_directions(
    f: np.ndarray, heads: np.ndarray, length: float, *, r_max: float | None = None
) -> np.ndarray:
    """Direction (rad) from the head towards the body: the fishness-weighted centroid of the
    fish pixels more than 0.25 length (and less than ``r_max``) from the head."""
    m, p, _ = f.shape
    ar = np.arange(p, dtype=np.float32)
    dx = ar[None, None, :] - heads[:, 0, None, None].astype(np.float32)
    dy = ar[None, :, None] - heads[:, 1, None, None].astype(np.float32)
    r2 = dx * dx + dy * dy
    far = r2 > (0.25 * length) ** 2
    if r_max is not None:
        far &= r2 < r_max * r_max
    w = f * far
    s = w.sum(axis=(1, 2))
    # no fish pixels far from the head (a short blob): all pixels more than 2 px away
    near = f * (r2 > 4.0)
    w = np.where((s > 0)[:, None, None], w, near)
    s = w.sum(axis=(1, 2))
    s = np.where(s > 0, s, 1.0)
    mx = (w * dx).sum(axis=(1, 2)) / s
    my = (w * dy).sum(axis=(1, 2)) / s
    return np.arctan2(my, mx).astype(np.float64)


def _bilinear(f: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Sample patches f (M, P, P) at (M, K) positions; zero outside."""
    m, p, _ = f.shape
    inside = (x >= 0) & (x <= p - 1) & (y >= 0) & (y <= p - 1)
    xc = np.clip(x, 0, p - 1.0001)
    yc = np.clip(y, 0, p - 1.0001)
    x0 = xc.astype(np.int64)
    y0 = yc.astype(np.int64)
    ax = (xc - x0).astype(np.float32)
    ay = (yc - y0).astype(np.float32)
    flat = f.reshape(-1)
    i00 = (np.arange(m) * (p * p))[:, None] + y0 * p + x0
    v00 = flat.take(i00).astype(np.float32)
    v01 = flat.take(i00 + 1).astype(np.float32)
    v10 = flat.take(i00 + p).astype(np.float32)
    v11 = flat.take(i00 + p + 1).astype(np.float32)
    v = (v00 + (v01 - v00) * ax) * (1 - ay) + (v10 + (v11 - v10) * ax) * ay
    return np.where(inside, v, 0.0)


@dataclass
class Midlines:
    """Result of :func:`trace_midlines` (patch coordinates)."""

    points: np.ndarray  # (M, n_points, 2) x, y; NaN where no tail was found
    length: np.ndarray  # (M,) traced length (px)
    ok: np.ndarray  # (M,) bool, a tail of at least two steps was found


def trace_midlines(
    fs: np.ndarray,
    heads: np.ndarray,
    theta0: np.ndarray,
    length: float,
    n_points: int,
    stop: np.ndarray | float,
    *,
    rel_stop: float = REL_STOP,
    max_length: float | None = None,
    arc_smooth: bool = True,
    max_turn: float = MAX_TURN,
) -> Midlines:
    """Follow the body ridge from the head to the tail tip by angular sweeps (+-60 degrees
    around the previous direction, 17 directions, arg max refined by a parabola).

    The trace ends where the ridge drops below ``stop`` (absolute, about the noise floor) or,
    beyond a third of the body, below ``rel_stop`` x the body's own ridge level (the highest
    ridge value 0.15-0.5 lengths from the head), whichever comes first.

    Parameters
    ----------
    fs
        (M, P, P) smoothed fishness.
    heads
        (M, 2) start points (x, y).
    theta0
        (M,) initial direction (rad), from the head towards the tail.
    length
        Typical fish length (px); sets the step (length / (2 (n_points - 1)), 0.8-3 px).
    n_points
        Points of the resampled midline (head first).
    stop
        Fishness below which the ridge has ended (scalar or (M,)).
    rel_stop
        Relative end criterion (fraction of the body ridge level).
    max_length
        Longest trace (default 1.3 length).
    arc_smooth
        Smooth the samples along each arc ([1, 2, 1] / 4), which together with the bilinear
        sampling stands in for smoothing the whole patch.
    """
    m = fs.shape[0]
    step = float(np.clip(length / (2.0 * max(n_points - 1, 1)), 0.8, 3.0))
    first = max(step, 0.12 * length)
    max_len = max_length if max_length is not None else 1.3 * length
    n_steps = max(2, int(np.ceil((max_len - first) / step)) + 1)
    stop = np.broadcast_to(np.asarray(stop, dtype=np.float32), (m,))
    pos = heads.astype(np.float64).copy()
    theta = theta0.astype(np.float64).copy()
    trace = np.empty((m, n_steps + 1, 2), np.float64)
    trace[:, 0] = pos
    vals = np.zeros((m, n_steps), np.float32)
    alive = np.ones(m, bool)
    n_alive = np.zeros(m, np.int64)
    j_wide = np.linspace(-max_turn, max_turn, 2 * int(round(max_turn / 0.065)) + 1)
    j_first = j_wide
    rows = np.arange(m)
    for k in range(n_steps):
        offs = j_first if k == 0 else j_wide
        ang = theta[:, None] + offs[None, :]
        rad = first if k == 0 else step
        xs = pos[:, 0, None] + rad * np.cos(ang)
        ys = pos[:, 1, None] + rad * np.sin(ang)
        v = _bilinear(fs, xs, ys)
        if arc_smooth:
            v[:, 1:-1] = 0.25 * v[:, :-2] + 0.5 * v[:, 1:-1] + 0.25 * v[:, 2:]
        j = v.argmax(axis=1)
        vmax = v[rows, j]
        vl = v[rows, np.maximum(j - 1, 0)]
        vr = v[rows, np.minimum(j + 1, len(offs) - 1)]
        den = vl - 2 * vmax + vr
        good = (j > 0) & (j < len(offs) - 1) & (den < -1e-6)
        frac = np.where(good, 0.5 * (vl - vr) / np.where(good, den, -1.0), 0.0)
        a = theta + offs[j] + np.clip(frac, -0.5, 0.5) * (offs[1] - offs[0])
        alive &= vmax >= stop
        pos = np.where(alive[:, None], pos + rad * np.stack([np.cos(a), np.sin(a)], axis=1), pos)
        theta = np.where(alive, a, theta)
        trace[:, k + 1] = pos
        vals[:, k] = np.where(alive, vmax, 0.0)
        n_alive += alive
        if not alive.any():
            trace[:, k + 2 :] = trace[:, k + 1 : k + 2]
            break
    seg = np.full(n_steps, step)
    seg[0] = first
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    # relative end: the tail has faded compared with the body
    arc = cum[1:]
    body = (arc >= 0.15 * length) & (arc <= 0.5 * length)
    if body.any() and rel_stop > 0:
        ref = vals[:, body].max(axis=1)
        weak = (vals < rel_stop * ref[:, None]) & (arc > 0.33 * length)[None, :]
        has = weak.any(axis=1)
        cut = np.where(has, weak.argmax(axis=1), n_steps)
        n_alive = np.minimum(n_alive, cut)
    total = np.where(n_alive > 0, cum[np.minimum(n_alive, n_steps)], 0.0)
    # resample to n_points equally spaced points
    targets = total[:, None] * np.linspace(0, 1, n_points)[None, :]
    idx = np.clip(np.searchsorted(cum, targets.ravel()).reshape(targets.shape), 1, n_steps)
    i0 = idx - 1
    c0 = cum[i0]
    c1 = cum[idx]
    fr = np.clip((targets - c0) / np.maximum(c1 - c0, 1e-9), 0, 1)[..., None]
    mi = rows[:, None]
    pts = trace[mi, i0] * (1 - fr) + trace[mi, idx] * fr
    ok = n_alive >= 2
    pts[~ok, 1:] = np.nan
    return Midlines(points=pts, length=total, ok=ok)


def body_angles(points: np.ndarray, *, anterior: float = 0.25) -> tuple[np.ndarray, ...]:
    """Heading, tail angle and tail curvature of resampled midlines.

    Parameters
    ----------
    points
        (M, n, 2) midlines, head first, equally spaced.
    anterior
        Fraction of the midline that is the rigid anterior body used for the heading.

    Returns
    -------
    heading, tail_angle, curvature
        (M,) each; heading and tail angle in (-pi, pi], curvature in rad/px.
    """
    n = points.shape[1]
    fa = anterior * (n - 1)
    i = int(np.floor(fa))
    fr = fa - i
    ref = points[:, i] * (1 - fr) + points[:, min(i + 1, n - 1)] * fr
    head = points[:, 0]
    tip = points[:, -1]
    heading = np.arctan2(head[:, 1] - ref[:, 1], head[:, 0] - ref[:, 0])
    tail_dir = np.arctan2(tip[:, 1] - head[:, 1], tip[:, 0] - head[:, 0])
    tail_angle = wrap(tail_dir - (heading + np.pi))
    d = np.diff(points, axis=1)
    seg_ang = np.arctan2(d[..., 1], d[..., 0])
    turn = np.abs(wrap(np.diff(seg_ang, axis=1))).sum(axis=1)
    seg_len = np.hypot(d[..., 0], d[..., 1])
    # the turning at interior point i is spread over half of each neighbouring segment
    span = (0.5 * (seg_len[:, :-1] + seg_len[:, 1:])).sum(axis=1)
    curvature = np.where(span > 0, turn / np.where(span > 0, span, 1.0), np.nan)
    return wrap(heading), tail_angle, curvature
