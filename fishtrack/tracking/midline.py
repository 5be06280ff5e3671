"""Head (point between the eyes), heading and body midline, vectorised over many fish.

Every function works on a stack of square patches ``F`` (M, P, P) float32 of *fishness*
(difference from the background towards the fish polarity), one patch per detected fish, so
that the per-fish Python work is a handful of NumPy calls per chunk rather than per fish.

Head
    The eyes are the strongest-contrast blobs of a larva and sit at its wide end. ``F`` is
    smoothed lightly (sigma ~ 0.017 length, well below an eye radius, so that the darker
    head/yolk region behind the eyes does not merge with them). The strongest point is (on)
    one eye; its partner is the strongest other local maximum 0.04-0.2 lengths away with a
    paler gap between them, and the head is the midpoint of the two eye centres (each eye
    weighted equally). Without a partner, an eye pair up to 0.45 lengths away is looked for
    (the strongest point may be the swim bladder), else the head is the weighted centroid of
    the pixels above ``eye_level`` (0.7) x the peak within 0.2 lengths of it.
Midline
    Stytra-style angular sweeps: from the head, step ``s`` pixels at a time; at each step sample
    the smoothed fishness on an arc of +-60 degrees around the previous direction (+-35 degrees
    on the first step, which must leave the eyes behind) and move to the ridge (the strongest
    interior peak of the arc, turns mildly penalised, refined by a parabola through its
    neighbours). Over the anterior body the trace must lead away from the head, and it never
    comes back on itself. Stop when the ridge fades below ``stop`` or leaves the patch. The
    trace is resampled to ``n_points`` equally spaced points from head to tail tip.
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
    "max_filter_patches",
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
#: widest deviation (rad) of the first step from the initial direction: the first step must
#: leave the eyes behind, and the flank of an eye is often darker than the neck
FIRST_TURN = np.deg2rad(35.0)
#: relative weight lost by the ridge value at the widest turn of a step (quadratic in the turn)
TURN_PENALTY = 0.5
#: a step of the trace must end at least this many steps away from every earlier point but the
#: last two
AVOID = 1.5
#: fraction of the length behind the head along which the trace must lead away from the head:
#: the rigid anterior body (head, swim bladder, yolk; 0.3) and the start of the tail, which even
#: in a C-bend stays nearly straight
ANTERIOR = 0.45


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


def max_filter_patches(f: np.ndarray, k: int) -> np.ndarray:
    """Grey dilation (maximum over a (2k+1) square) of every patch of a non-negative stack
    (M, P, Q), the patches laid side by side with zero gaps (see :func:`smooth_patches`)."""
    m, p, q = f.shape
    if m == 0 or k < 1:
        return f.copy()
    gap = k + 1
    wide = np.zeros((p, m, q + gap), f.dtype)
    wide[:, :, :q] = f.transpose(1, 0, 2)
    ker = np.ones((2 * k + 1, 2 * k + 1), np.uint8)
    out = cv2.dilate(wide.reshape(p, m * (q + gap)), ker, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return np.ascontiguousarray(out.reshape(p, m, q + gap)[:, :, :q].transpose(1, 0, 2))


def locate_heads(
    f: np.ndarray,
    length: float,
    sigma: float,
    *,
    eye_level: float = 0.7,
    pair_range: tuple[float, float] = (0.04, 0.2),
    pair_ratio: float = 0.6,
) -> tuple[np.ndarray, np.ndarray]:
    """Head position (between the eyes) in every fishness patch.

    Only a window around the strongest pixel is smoothed (sigma), so the cost per fish does not
    grow with the patch size. The strongest point is (on) one eye. Its partner is the strongest
    other local maximum ``pair_range`` lengths away with at least ``pair_ratio`` of its
    strength and a dip between the two (two eyes, not one eye's plateau); the head is then the
    midpoint of the two eye centres, each the weighted centroid of its own pixels above
    ``eye_level`` x its peak (a paler eye, e.g. of a rolled larva, counts as much as the darker
    one, and a dark head or swim bladder behind the eyes does not pull the head back). Without
    a partner (eyes merged at low resolution, one eye hidden, fish without visible eyes), the
    head is the weighted centroid of the pixels above ``eye_level`` x the peak within 0.2
    lengths of it.

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
    pair_range
        Distance between the eye centres, in lengths (larvae: about 0.11).
    pair_ratio
        Weakest second eye, as a fraction of the first.

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
    k_eye = int(max(1, round(0.03 * length)))
    is_max = win >= max_filter_patches(win, k_eye)
    win = win.astype(np.float32)
    wf = win.reshape(m, -1)
    am2 = wf.argmax(axis=1)
    rows = np.arange(m)
    peak = wf[rows, am2]
    cy, cx = np.divmod(am2, side)
    ar = np.arange(side, dtype=np.float32)
    dy = ar[None, :, None] - cy[:, None, None]
    dx = ar[None, None, :] - cx[:, None, None]
    d2 = dx * dx + dy * dy
    disk = d2 <= r * r
    wgt = np.clip(win - eye_level * peak[:, None, None], 0, None) * disk
    heads = np.stack([px - big, py - big], axis=1).astype(np.float64)
    heads += _centroids(wgt, ar)
    # the second eye
    lo, hi = pair_range[0] * length, pair_range[1] * length
    cand = is_max & (d2 >= lo * lo) & (d2 <= hi * hi) & (win >= pair_ratio * peak[:, None, None])
    my = np.clip(np.round(0.5 * (ar[None, :, None] + cy[:, None, None])), 0, side - 1).astype(np.int64)
    mx = np.clip(np.round(0.5 * (ar[None, None, :] + cx[:, None, None])), 0, side - 1).astype(np.int64)
    mid = win[rows[:, None, None], my, mx]
    cand &= mid < 0.85 * win
    v2 = np.where(cand, win, 0.0).reshape(m, -1)
    j2 = v2.argmax(axis=1)
    pair = v2[rows, j2] > 0
    if pair.any():
        i = np.flatnonzero(pair)
        ey, ex = np.divmod(j2[i], side)
        sep = np.hypot(ex - cx[i], ey - cy[i])
        re2 = (np.maximum(1.0, 0.5 * sep) ** 2)[:, None, None]
        e1 = np.clip(win[i] - eye_level * peak[i, None, None], 0, None) * (d2[i] <= re2)
        ddx = ar[None, None, :] - ex[:, None, None]
        ddy = ar[None, :, None] - ey[:, None, None]
        w2 = win[i].reshape(len(i), -1)[np.arange(len(i)), j2[i]]
        e2 = np.clip(win[i] - eye_level * w2[:, None, None], 0, None) * (ddx * ddx + ddy * ddy <= re2)
        c = 0.5 * (_centroids(e1, ar) + _centroids(e2, ar))
        heads[i] = np.stack([px[i] - big, py[i] - big], axis=1) + c
    # no second eye near the strongest point: that may be the swim bladder (darker than the
    # eyes in some frames), with the eye pair further ahead
    for i in np.flatnonzero(~pair):
        h = _pair_elsewhere(f[i], (int(px[i]), int(py[i])), float(peak[i]), length, sigma,
                            k_eye, eye_level, lo, hi, pair_ratio)
        if h is not None:
            heads[i] = h
    return heads, peak.astype(np.float64)


def _pair_elsewhere(
    f: np.ndarray,
    top: tuple[int, int],
    peak: float,
    length: float,
    sigma: float,
    k_eye: int,
    eye_level: float,
    lo: float,
    hi: float,
    ratio: float,
) -> np.ndarray | None:
    """Midpoint (x, y, patch px) of an eye pair 0.2-0.45 lengths from ``top`` in one fishness
    patch, or None: the strongest pair of local maxima ``lo``-``hi`` px apart, both at least
    ``ratio`` x ``peak``, with a dip between them."""
    p = f.shape[0]
    rad = int(np.ceil(0.45 * length + 2 * sigma + 1))
    x0, y0 = max(0, top[0] - rad), max(0, top[1] - rad)
    sub = f[y0 : top[1] + rad + 1, x0 : top[0] + rad + 1]
    if sub.size == 0 or p == 0:
        return None
    w = smooth_patches(sub[None], sigma)[0]
    mx = max_filter_patches(w[None], k_eye)[0]
    w = w.astype(np.float32)
    ys, xs = np.nonzero((w >= mx) & (w >= ratio * peak))
    d_top = np.hypot(xs + x0 - top[0], ys + y0 - top[1])
    keep = (d_top > 0.2 * length) & (d_top <= 0.45 * length)
    ys, xs = ys[keep], xs[keep]
    if len(ys) < 2:
        return None
    order = np.argsort(-w[ys, xs])[:6]
    ys, xs = ys[order], xs[order]
    best, best_v = None, 0.0
    for a in range(len(ys)):
        for b in range(a + 1, len(ys)):
            sep = float(np.hypot(xs[a] - xs[b], ys[a] - ys[b]))
            va, vb = float(w[ys[a], xs[a]]), float(w[ys[b], xs[b]])
            dip = float(w[(ys[a] + ys[b]) // 2, (xs[a] + xs[b]) // 2])
            if lo <= sep <= hi and dip < 0.85 * min(va, vb) and min(va, vb) > best_v:
                best, best_v = (a, b, sep), min(va, vb)
    if best is None:
        return None
    a, b, sep = best
    ar_y = np.arange(w.shape[0], dtype=np.float32)[:, None]
    ar_x = np.arange(w.shape[1], dtype=np.float32)[None, :]
    cs = []
    for e in (a, b):
        near = (ar_x - xs[e]) ** 2 + (ar_y - ys[e]) ** 2 <= max(1.0, 0.5 * sep) ** 2
        wt = np.clip(w - eye_level * w[ys[e], xs[e]], 0, None) * near
        s = float(wt.sum())
        cs.append((float((wt * ar_x).sum() / s), float((wt * ar_y).sum() / s)) if s > 0 else (xs[e], ys[e]))
    return np.array([x0 + 0.5 * (cs[0][0] + cs[1][0]), y0 + 0.5 * (cs[0][1] + cs[1][1])])


def _centroids(w: np.ndarray, ar: np.ndarray) -> np.ndarray:
    """Weighted centroids (x, y) of a stack of weight images (M, S, S)."""
    s = w.sum(axis=(1, 2))
    s = np.where(s > 0, s, 1.0)
    my = (w * ar[None, :, None]).sum(axis=(1, 2)) / s
    mx = (w * ar[None, None, :]).sum(axis=(1, 2)) / s
    return np.stack([mx, my], axis=1).astype(np.float64)


def initial_directions(
    f: np.ndarray,
    heads: np.ndarray,
    length: float,
    *,
    r_max: float | None = None,
    floor: np.ndarray | float = 0.0,
) -> np.ndarray:
    """Direction (rad) from the head towards the body: the centroid, weighted by fishness above
    ``floor`` (scalar or (M,); about the noise level, so that the background of a large patch
    does not outweigh the fish), of the pixels more than 0.25 length (and less than ``r_max``)
    from the head."""
    m, p, _ = f.shape
    fl = np.broadcast_to(np.asarray(floor, np.float32), (m,))
    if np.any(fl > 0):
        f = np.clip(f.astype(np.float32) - fl[:, None, None], 0, None)
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
    around the previous direction, 33 directions; +-``FIRST_TURN`` = 35 degrees on the first
    step), the chosen direction refined by a parabola.

    On every arc the strongest *interior* peak is taken if there is one (the body is a ridge
    crossing the arc; a maximum at the arc's end is usually the flank of a darker blob), after
    weighting the arc by ``1 - TURN_PENALTY (turn / 60 degrees)^2`` (a tail bends smoothly).
    Over the anterior body (the first ``ANTERIOR`` = 0.45 lengths) every step must end at least
    0.8 x the arc length travelled from the head, so that the trace cannot circle round the
    eyes or the swim bladder (dark blobs the ridge would otherwise orbit); and no step may end
    within ``AVOID`` (1.5) steps of an earlier point of the trace but the last two (a midline
    does not come back on itself; a C-bend's tail tip may still come close to the head). The
    trace ends where the ridge drops below ``stop`` (absolute, about the noise floor) or,
    beyond a third of the body, below ``rel_stop`` x the body's own ridge level (the highest
    ridge value 0.15-0.5 lengths from the head), whichever comes first; where the ridge ends
    abruptly beyond 0.6 lengths (drops below 0.35 of its level within three steps) the tip is
    put where it crosses half its level.

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
    first_turn = min(max_turn, FIRST_TURN)
    j_first = np.linspace(-first_turn, first_turn, 2 * int(round(first_turn / 0.065)) + 1)
    rows = np.arange(m)
    for k in range(n_steps):
        offs = j_first if k == 0 else j_wide
        ang = theta[:, None] + offs[None, :]
        rad = first if k == 0 else step
        xs = pos[:, 0, None] + rad * np.cos(ang)
        ys = pos[:, 1, None] + rad * np.sin(ang)
        v = _bilinear(fs, xs, ys)
        reach = first + k * step
        if k > 0 and reach <= ANTERIOR * length:
            # the anterior body leads away from the head: the trace must not circle round the
            # eyes or the swim bladder, which are darker than the body around them
            far = np.hypot(xs - heads[:, 0, None], ys - heads[:, 1, None]) >= 0.8 * reach
            v = np.where(far, v, 0.0)
        if k >= 2:
            # a midline does not come back on itself: nor does the trace (it would orbit a
            # dark blob such as the swim bladder, darker than the tail behind it)
            back = trace[:, None, : k - 1, :]
            dd = (xs[:, :, None] - back[..., 0]) ** 2 + (ys[:, :, None] - back[..., 1]) ** 2
            v = np.where(dd.min(axis=2) >= (AVOID * step) ** 2, v, 0.0)
        if arc_smooth:
            v[:, 1:-1] = 0.25 * v[:, :-2] + 0.5 * v[:, 1:-1] + 0.25 * v[:, 2:]
        if k > 0 and TURN_PENALTY > 0:
            # a tail bends smoothly (a few tens of degrees per step even in a C-bend)
            v = v * (1.0 - TURN_PENALTY * (offs / max_turn) ** 2)[None, :]
        j = v.argmax(axis=1)
        # the body is a ridge that crosses the arc: prefer the strongest interior peak of the
        # arc to a maximum at its end (the flank of a darker blob such as the swim bladder)
        inner = v[:, 1:-1]
        peak = (inner >= v[:, :-2]) & (inner >= v[:, 2:]) & (inner >= stop[:, None])
        ji = np.where(peak, inner, -1.0).argmax(axis=1) + 1
        j = np.where(peak.any(axis=1), ji, j)
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
    # an abrupt end in the posterior half (the ridge drops below a third of its level within
    # three steps, where a tail only fades gradually): the tip is where the ridge crosses half
    # its level before the drop, not where it finally sinks below the stop levels (a blurred
    # end would otherwise add a couple of pixels)
    if n_steps > 3:
        before = np.maximum.reduce([np.roll(vals, s, axis=1) for s in (1, 2, 3)])
        before[:, :3] = np.inf
        k_idx = np.arange(n_steps)[None, :]
        drop = (vals < 0.35 * before) & (k_idx < n_alive[:, None]) & (arc > 0.6 * length)[None, :]
        has = drop.any(axis=1)
        if has.any():
            i = np.flatnonzero(has)
            kc = drop[i].argmax(axis=1)
            half = 0.5 * before[i, kc]
            v0, v1 = vals[i, kc - 1], vals[i, kc]
            frac = np.clip((v0 - half) / np.maximum(v0 - v1, 1e-6), 0.0, 1.0)
            total[i] = cum[kc] + frac * seg[kc]
            n_alive[i] = kc + 1
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
