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
    midline is straight over the rigid anterior body (``RIGID`` lengths), and the trace is
    resampled to ``n_points`` equally spaced points from head to tail tip.
Angles
    ``heading`` = direction from the midline point at 25 % of the traced length to the head;
    ``tail_angle`` = wrap(atan2(tip - head) - (heading + pi)); ``tail_curvature`` = mean
    absolute turning angle per unit length of the resampled midline: the sum of the absolute
    direction changes at its interior points divided by the length they span (from the middle
    of the first segment to the middle of the last), rad/px; 0 for a straight fish, exactly
    1/R for a circular arc of radius R.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

__all__ = [
    "Midlines",
    "gather_patches",
    "smooth_patches",
    "smooth_patches_each",
    "max_filter_patches",
    "locate_heads",
    "initial_directions",
    "body_directions",
    "refine_heads",
    "trace_midlines",
    "body_angles",
    "wrap",
]


#: largest change of direction between two steps of a tail trace (rad)
MAX_TURN = np.pi / 3
#: the trace ends where the ridge is weaker than this fraction of the body's ridge
REL_STOP = 0.05
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
#: beyond 0.3 lengths each direction of a sweep is also sampled this many steps further
#: ahead (the mean of the two): a longer ray resolves a faint tail's direction better than a
#: short arc and averages its noise
AHEAD = 2.0
#: arc length (fraction of the length) beyond which a step counts as tail for the end test
TAIL_FROM = 0.4
#: shortest midline (fraction of the length) that counts as a tail: a shorter trace ends
#: within the anterior body (the tail is invisible), and its angle would mean nothing
MIN_TAIL = 0.35
#: fraction of the ridge's level over the last 0.1 lengths below which the tail has ended
DROP = 0.25
#: a gap in the ridge this long (fraction of the length, at least two steps) ends the tail
GAP = 0.06
#: a step must end at least this far (fraction of the length) from earlier points of the
#: trace, as well as ``AVOID`` steps: a wide tail's own flank must not be traced back
AVOID_L = 0.04
#: the rigid anterior body (head, swim bladder; fraction of the length): the traced midline
#: is straight from the head to its point this far along. Within a small larva's dark head the
#: fishness is flat and the sweeps wander across it, which turned the heading (and so the
#: tail angle) with every beat of the tail
RIGID = 0.3
#: nearest distance (px) at which the fishness beside the ridge is compared with the ridge
#: (``lateral`` lengths for larger fish). The optical blur and the smoothing are in pixels,
#: not lengths: a blurred tail of a 20-35 px larva is ~3 px wide, and at 2.5 px beside it the
#: tail's own flank cut the trace short
BESIDE_PX = 3.5
#: widest deviation (rad) of the rigid anterior body's sweeps (those ending within ``RIGID``
#: lengths) from the starting direction (the trunk direction, section 4 of docs/tracking.md):
#: the head and swim bladder do not bend, and a dark speck beside a still larva's neck (dust
#: filled in with it) drew the trace round it (tuning seed 534). 15 degrees also took the
#: speck's 6-degree pull off the heading there, but turned the anterior midline of large
#: free-swimming larvae away from their bend (tuning seed 19: tail r 0.997 -> 0.985)
RIGID_TURN = FIRST_TURN
#: how far (fraction of the length) the sweeps keep within ``RIGID_TURN`` of the starting
#: direction for head-embedded larvae (the agarose holds the head, the swim bladder and the
#: yolk behind them: longer than the straightened ``RIGID`` part; free-swimming larvae keep
#: ``RIGID``: a C-bend starts behind the head, and the curled patches of
#: tests/test_tracking_kernels.py lost their tails with 0.4). A dust speck as dark as the eyes, touching a still head-embedded larva's side
#: behind the yolk at 0.31 lengths and filled in with it (it joins the body over the body's
#: width: no saddle), drew the first free sweep 66 degrees into it and the trace ended there at
#: 0.4 lengths (spent seed 22527, larva A2: tail r 0.632 -> 0.997 with 0.4). Where the held
#: sweeps leave no tail although the trace went on past ``RIGID``, the fish is traced again
#: without them (:func:`trace_midlines`): off on main from the merge of 2026-12-07 because
#: tuning seed 745 (tests/test_behaviour_gate_short_trace.py: two 29-px head-embedded larvae,
#: tail 21 grey levels in noise sd 11.5, H.264 CRF 27) failed with 0.4 alone (kappa* 1.00 ->
#: 0.00). There the still tail fades into the codec noise 0.34 lengths from the head (ridge
#: 42 -> 17 -> 6 grey levels, the same beside it); the free sweeps hooked into a side branch
#: 45-70 degrees off (a short kinked trace, 11.6-16 px, which the behaviour stage's
#: ``short_traces`` leaves out of the mid-tail test), the held ones were pushed along the
#: cone's edge (-30 degrees) into background and the trace ended inside the anterior body:
#: 38 of A1's 4584 frames lost their tail, and the gaps in the trace made a false 0.07-s bout
#: at 4.44 s that cut A1's final passive stretch (2.1 s) into active pieces
RIGID_SWEEPS = 0.4
#: a head-embedded larva's trace whose ridge climbs beyond ``RIGID`` lengths to more than this
#: factor of its lowest value so far has run onto something darker than the tail (a tail gets
#: paler towards its tip: a dust speck touching it); it is traced again with the blob blanked
#: out (:func:`_dark_blobs`; 0: off)
DARK_END = 1.6
#: largest radius (fraction of the length) of a blob blanked out
DARK_R = 0.12
#: the retrace without the blob is kept if it is longer by this fraction of the length ...
DARK_GAIN = 0.1
#: ... or, where the kept trace ran through the blob, if it reaches this fraction of its length
DARK_KEEP = 0.8


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
    return smooth_patches_each(f, (sigma,))[0]


def smooth_patches_each(f: np.ndarray, sigmas: Sequence[float],
                        dtype: Any = None) -> list[np.ndarray]:
    """:func:`smooth_patches` of ``f`` with each of ``sigmas``, the mosaic laid out once (its
    zero gaps as wide as the widest kernel needs: a wider gap of zeros changes no patch
    pixel), each result (C-contiguous) converted to ``dtype`` (default: ``f``'s): the same
    values as ``smooth_patches(f, sigma).astype(dtype)``. (Converting while copying out of
    the mosaic, NumPy's strided cast, was ~3x slower than the contiguous copy and cast.)"""
    m, p, q = f.shape
    dtype = f.dtype if dtype is None else dtype
    if m == 0:
        return [f.astype(dtype) for _ in sigmas]
    ks = [2 * int(round(2 * sigma)) + 1 for sigma in sigmas]
    gap = max(ks) // 2 + 1
    wide = np.zeros((p, m, q + gap), f.dtype)
    wide[:, :, :q] = f.transpose(1, 0, 2)
    flat = wide.reshape(p, m * (q + gap))
    out = []
    for k, sigma in zip(ks, sigmas, strict=True):
        blur = cv2.GaussianBlur(flat, (k, k), sigma, borderType=cv2.BORDER_CONSTANT)
        patches = blur.reshape(p, m, q + gap)[:, :, :q].transpose(1, 0, 2)
        out.append(np.ascontiguousarray(patches).astype(dtype, copy=False))
    return out


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
    elsewhere: bool = True,
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
    elsewhere
        Without a second eye next to the strongest point, look for an eye pair 0.2-0.45
        lengths away (one patch at a time; the tracker's :func:`refine_heads` makes this
        unnecessary and switches it off).

    Returns
    -------
    heads
        (M, 2) float64 ``(x, y)`` in patch pixels.
    peak
        (M,) peak smoothed fishness.
    """
    m = f.shape[0]
    if m == 0:
        return np.zeros((0, 2)), np.zeros(0)
    r = int(max(2, np.ceil(0.2 * length)))
    big = r + int(np.ceil(2 * sigma)) + 1
    side = 2 * big + 1
    k_eye = int(max(1, round(0.03 * length)))
    lo, hi = pair_range[0] * length, pair_range[1] * length
    kern = _HEADS
    if kern is not None and f.dtype == np.uint8:
        # the compiled steps (``_kernels.head_windows`` and ``eye_heads``, the same values):
        # one pass per fish instead of ~30 whole-stack NumPy operations
        px, py = np.empty(m, np.int64), np.empty(m, np.int64)
        win = np.empty((m, side, side), np.uint8)
        kern.head_windows(f, big, px, py, win)
        win = smooth_patches(win, sigma)
        heads, peak, pair = np.empty((m, 2)), np.empty(m), np.empty(m, bool)
        kern.eye_heads(win, max_filter_patches(win, k_eye), px, py, big, r, float(eye_level),
                       lo * lo, hi * hi, float(pair_ratio), heads, peak, pair)
    else:
        heads, peak, pair, px, py = _eye_heads_np(f, r, big, sigma, k_eye, eye_level, lo, hi,
                                                  pair_ratio)
    # no second eye near the strongest point: that may be the swim bladder (darker than the
    # eyes in some frames), with the eye pair further ahead
    for i in np.flatnonzero(~pair) if elsewhere else ():
        h = _pair_elsewhere(f[i], (int(px[i]), int(py[i])), float(peak[i]), length, sigma,
                            k_eye, eye_level, lo, hi, pair_ratio)
        if h is not None:
            heads[i] = h
    return heads, peak


def _eye_heads_np(
    f: np.ndarray, r: int, big: int, sigma: float, k_eye: int, eye_level: float, lo: float,
    hi: float, pair_ratio: float,
) -> tuple[np.ndarray, ...]:
    """:func:`locate_heads` in NumPy but the search for a pair elsewhere (the reference of
    ``_kernels.head_windows`` and ``_kernels.eye_heads``): the heads (M, 2), peaks (M,)
    float64, whether a second eye was found (M,) and the strongest pixels ``px``, ``py``."""
    m, p, _ = f.shape
    side = 2 * big + 1
    am = f.reshape(m, -1).argmax(axis=1)
    py, px = np.divmod(am, p)
    win = smooth_patches(gather_patches(f, np.arange(m), py - big, px - big, side), sigma)
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
    return heads, peak.astype(np.float64), pair, px, py


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


def body_directions(
    fs: np.ndarray,
    heads: np.ndarray,
    length: float,
    *,
    r_range: tuple[float, float] = (0.2, 0.5),
    n_dir: int = 48,
    floor: np.ndarray | float = 0.0,
    opposite: bool = False,
) -> tuple[np.ndarray, ...]:
    """Direction (rad) from the head along the anterior body, by an angular sweep of rays.

    For ``n_dir`` directions the smoothed fishness (less ``floor``, scalar or (M,)) is averaged
    along a ray from ``r_range[0]`` to ``r_range[1]`` lengths from the head; the strongest ray
    (refined by a parabola through its neighbours, after a [1, 2, 1] / 4 smoothing over
    directions) is the trunk, which stays nearly straight even when the tail is curled.

    Returns
    -------
    theta
        (M,) direction from the head towards the body (rad).
    strength
        (M,) mean fishness along the chosen ray (above ``floor``).
    theta_opp, strength_opp
        With ``opposite``: the strongest other local maximum of the sweep, more than 50
        degrees away from ``theta`` (a head point in the middle of the body has body on both
        sides); strength 0 if there is none.
    """
    m = fs.shape[0]
    if m == 0:
        return np.zeros(0), np.zeros(0)
    phi = np.linspace(-np.pi, np.pi, n_dir, endpoint=False)
    r = np.linspace(r_range[0], r_range[1], 5) * float(length)
    cx = np.cos(phi)[:, None] * r[None, :]
    cy = np.sin(phi)[:, None] * r[None, :]
    fl = np.broadcast_to(np.asarray(floor, np.float32), (m,))
    if _HEADS is not None and fs.dtype in _KERNEL_TYPES and fs.ndim == 3:
        # the compiled rays (``_kernels.body_rays``, the same values)
        v = np.empty((m, n_dir), np.float32)
        _HEADS.body_rays(np.ascontiguousarray(fs), np.asarray(heads, np.float64), cx, cy,
                         np.array(fl, np.float32), v)
    else:
        xs = heads[:, 0, None, None] + cx[None]
        ys = heads[:, 1, None, None] + cy[None]
        v = _bilinear(fs, xs.reshape(m, -1), ys.reshape(m, -1)).reshape(m, n_dir, len(r))
        v = np.clip(v - fl[:, None, None], 0.0, None).mean(axis=2)
        v = 0.25 * np.roll(v, 1, axis=1) + 0.5 * v + 0.25 * np.roll(v, -1, axis=1)
    j = v.argmax(axis=1)
    rows = np.arange(m)
    vm = v[rows, j]
    vl = v[rows, (j - 1) % n_dir]
    vr = v[rows, (j + 1) % n_dir]
    den = vl - 2 * vm + vr
    frac = np.where(den < -1e-9, 0.5 * (vl - vr) / np.where(den < -1e-9, den, -1.0), 0.0)
    theta = phi[j] + np.clip(frac, -0.5, 0.5) * (2 * np.pi / n_dir)
    if not opposite:
        return wrap(theta), vm.astype(np.float64)
    # the second body direction: the strongest other local maximum of the sweep, at least
    # 50 degrees away (the other half of a fish bent at the head point)
    is_max = (v >= np.roll(v, 1, axis=1)) & (v >= np.roll(v, -1, axis=1))
    away = np.abs(wrap(phi[None, :] - theta[:, None])) > np.deg2rad(50)
    vo = np.where(away & is_max, v, -1.0)
    jo = vo.argmax(axis=1)
    return wrap(theta), vm.astype(np.float64), phi[jo], np.maximum(vo[rows, jo], 0.0).astype(np.float64)


def refine_heads(
    fs: np.ndarray,
    rough: np.ndarray,
    theta: np.ndarray,
    length: float,
    *,
    floor: np.ndarray | float = 0.0,
    reach: tuple[float, float] = (-0.3, 0.3),
    half_width: float = 0.16,
    front_free: float = 0.15,
    front_decay: float = 0.1,
    no_feature: float = 0.06,
    feature_reach: float = 0.2,
    head_feature: bool | np.ndarray | None = None,
    return_reach: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Head point of every fish from the shape of its head, in body-aligned coordinates.

    The smoothed fishness (less ``floor``) is sampled on a grid aligned with the body: axial
    positions ``reach`` lengths around the rough head (positive towards the tail, along
    ``theta``) and lateral positions +-``half_width`` lengths. The grid is first re-centred
    on the body's axis (the lateral centroid of the squared fishness: eyes, head and yolk are
    symmetric about it; rows within 0.15 lengths of the rough head). The eyes are the widest
    dark part of a larva: the head's axial position is the maximum of the profile
    ``2 min(sum_{l>0} w(l) F(t, l), sum_{l<0} w(l) F(t, l))`` with ``w(l) = min(l^2,
    (0.1 L)^2)`` (fishness weighted by the squared lateral distance, so that the narrow yolk,
    swim bladder and body on the axis count little; on both sides, so that a speck beside
    the body does not), weighted down by ``exp(-d / front_decay)`` where ``d`` is the
    distance beyond ``front_free`` lengths behind the snout (the front of the fish along the
    axis: a yolk or swim bladder wider than small eyes, or the mid-body of a fish without
    distinct eyes, must not win), refined by a parabola; its lateral position is the centroid
    of that row above 0.3 of the row's maximum. For two eyes this is their midpoint; for a
    head without distinct eyes (a dark disc, eyes merged at low resolution) the centre of the
    widest dark part of the head.

    A fish with no head feature at all (juveniles and adults at low resolution: the widest
    part of the unweighted profile lies more than ``feature_reach`` lengths behind the snout,
    mid-body) gets its head point ``no_feature`` lengths behind the snout instead, on the
    row-centroid line.

    Parameters
    ----------
    fs
        (M, P, P) smoothed fishness.
    rough
        (M, 2) rough head positions (patch px).
    theta
        (M,) direction from the head towards the body (rad).
    length
        Fish length (px).
    head_feature
        True: every fish has a head feature (eyes, a dark head); False: none has (the
        ``no_feature`` point for all); None: decided per fish by ``feature_reach``.
    return_reach
        Also return, per fish, how far behind the snout the widest part of the head region
        lies (lengths): the evidence for ``head_feature``.

    Returns
    -------
    (M, 2) head positions (patch px); with ``return_reach`` also the (M,) reach.
    """
    m = fs.shape[0]
    if m == 0:
        return np.zeros((0, 2))
    g = max(0.6, length / 50.0)
    t = np.arange(reach[0] * length, reach[1] * length + 1e-9, g)
    lat = np.arange(-half_width * length, half_width * length + 1e-9, g)
    ux, uy = np.cos(theta), np.sin(theta)
    nx, ny = -uy, ux
    fl = np.broadcast_to(np.asarray(floor, np.float32), (m,))
    wl = np.minimum(lat * lat, (0.1 * length) ** 2)
    side = lat > 0
    kern = _HEADS if fs.dtype in _KERNEL_TYPES and fs.ndim == 3 else None
    if kern is not None:
        # the compiled steps (``_kernels.head_profile`` and ``head_point``, the same values):
        # one pass per fish instead of ~60 whole-stack NumPy operations
        nt, nl = len(t), len(lat)
        b = np.empty((m, nt, nl), np.float32)
        ox, oy, t_front, prof_u = np.empty(m), np.empty(m), np.empty(m), np.empty((m, nt))
        rough = np.asarray(rough, np.float64)
        kern.head_profile(np.ascontiguousarray(fs), rough, ux, uy, nx, ny, t, lat,
                          np.array(fl, np.float32), np.abs(t) <= 0.15 * length, wl * side,
                          wl * ~side, g, b, ox, oy, prof_u, t_front)
    else:
        b, ox, oy, prof_u, t_front = _head_profile_np(fs, rough, ux, uy, nx, ny, t, lat, fl, wl,
                                                      side, length, g)
    # the head is at the front: beyond ``front_free`` lengths behind the snout (where the
    # fish begins, at 0.3 of its strongest fishness along the axis) the profile is weighted
    # down, so that a yolk or swim bladder wider than small eyes, or the mid-body of a fish
    # without distinct eyes, does not win
    behind = np.clip(t[None, :] - t_front[:, None] - front_free * length, 0.0, None)
    decay = np.exp(-behind / (front_decay * length))
    if kern is not None:
        out, reach_w = np.empty((m, 2)), np.empty(m)
        decide = head_feature is None
        featureless = (np.empty(m, bool) if decide
                       else np.array(np.broadcast_to(~np.asarray(head_feature, bool), (m,))))
        kern.head_point(b, prof_u, decay, t, lat, g, t_front, ox, oy, ux, uy, nx, ny, rough, length,
                        no_feature * length, feature_reach, decide, featureless, out, reach_w)
    else:
        out, reach_w = _head_point_np(b, prof_u * decay, prof_u, t, lat, g, t_front, ox, oy, ux,
                                      uy, nx, ny, rough, length, no_feature, feature_reach,
                                      head_feature)
    if head_feature is None:
        featureless = reach_w > feature_reach
    else:
        featureless = np.broadcast_to(~np.asarray(head_feature, bool), (m,))
    out = _round_front(out, b, prof_u, t, lat, g, ox, oy, ux, uy, nx, ny,
                       ~featureless & (prof_u.max(axis=1) > 0))
    if return_reach:
        return out, _feature_reach(b, prof_u, t, length)
    return out


def _round_front(
    out: np.ndarray, b: np.ndarray, prof_u: np.ndarray, t: np.ndarray, lat: np.ndarray, g: float,
    ox: np.ndarray, oy: np.ndarray, ux: np.ndarray, uy: np.ndarray, nx: np.ndarray,
    ny: np.ndarray, feature: np.ndarray,
) -> np.ndarray:
    """The head points ``out`` (M, 2) of fish with a head ``feature`` (M,) moved forward to the
    centre of the round front of the dark head where that lies ahead of them (:func:`refine_heads`):
    the snout at half height (:func:`_half_snout`) plus half the head's width at half maximum
    across the body, measured on the row of the head point. For a head disc that is its
    centre, for eyes too small and close to be resolved, merged with the yolk into one dark
    anterior body, the front of it where the eyes are (the widest row lies anywhere on its flat
    top: held-out 20785 and 22032, heads 1-1.8 px behind the eyes at 40 px), and for resolved
    eyes a point behind them (half the eyes' span), so they keep the widest row. A symmetric
    blur moves the snout forward by what it widens the head, and the centre stays. Fish whose
    snout is not found (no row below half before the strongest: something touching the head
    ahead) keep their point."""
    ts = (out[:, 0] - ox) * ux + (out[:, 1] - oy) * uy
    t_half, ended = _half_snout(b, t)
    row = _row_at(b, ts, t, g)
    m, nl = row.shape
    idx = np.arange(nl)[None, :]
    j = row.argmax(axis=1)
    top = row[np.arange(m), j]
    half = 0.5 * top
    below = row < half[:, None]

    def edge(side: np.ndarray, nearest: np.ndarray, step: int) -> np.ndarray:
        # the half-maximum crossing between the last column below half on this side of the
        # maximum and the next one towards it (the grid's edge when there is none)
        has = side.any(axis=1)
        k = nearest(side)
        k1 = np.clip(k - step, 0, nl - 1)
        v0, v1 = row[np.arange(m), k], row[np.arange(m), k1]
        frac = np.where(v1 > v0, (half - v0) / np.where(v1 > v0, v1 - v0, 1.0), 0.0)
        return np.where(has, k - step * np.clip(frac, 0.0, 1.0), 0 if step < 0 else nl - 1)

    left = edge(below & (idx < j[:, None]), lambda s: nl - 1 - np.argmax(s[:, ::-1], axis=1), -1)
    right = edge(below & (idx > j[:, None]), lambda s: np.argmax(s, axis=1), 1)
    centre = t_half + 0.5 * g * (right - left)
    move = np.flatnonzero(feature & ended & (top > 0) & (centre < ts))
    if move.size == 0:
        return out
    out = out.copy()
    ls = _row_centre(_row_at(b[move], centre[move], t, g), lat)
    out[move, 0] = ox[move] + centre[move] * ux[move] + ls * nx[move]
    out[move, 1] = oy[move] + centre[move] * uy[move] + ls * ny[move]
    return out


def _row_at(b: np.ndarray, ts: np.ndarray, t: np.ndarray, g: float) -> np.ndarray:
    """The rows (M, nl) of the grids ``b`` (M, nt, nl) at axial positions ``ts`` (M,) (linear
    interpolation between grid rows)."""
    nt = len(t)
    j2 = np.clip(np.floor((ts - t[0]) / g).astype(np.int64), 0, nt - 2)
    a = np.clip((ts - t[j2]) / g, 0.0, 1.0)[:, None]
    rows = np.arange(len(b))
    return b[rows, j2] * (1 - a) + b[rows, j2 + 1] * a


def _row_centre(row: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Lateral position (M,) of rows (M, nl): the centroid of each row above 0.3 of its
    maximum (0 for an empty row)."""
    keep = row >= 0.3 * row.max(axis=1, keepdims=True)
    wr = np.where(keep, row, 0.0)
    sr = wr.sum(axis=1)
    return np.where(sr > 0, (wr * lat[None, :]).sum(axis=1) / np.where(sr > 0, sr, 1.0), 0.0)


def _half_snout(b: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The snout of each fish of the grids ``b`` (M, nt, nl) along the axial positions ``t``:
    walking forwards from the strongest row, where the fishness along the axis (the rows'
    maxima) first falls below half of it (interpolated between rows; the grid's first row if
    it never does), and whether it does (M,) bool."""
    m, nt = b.shape[:2]
    lmax = b.max(axis=2).astype(np.float64)
    top = lmax.argmax(axis=1)
    half = 0.5 * lmax[np.arange(m), top]
    idx = np.arange(nt)[None, :]
    low = (lmax < half[:, None]) & (idx < top[:, None])
    ended = low.any(axis=1)
    last = np.where(ended, nt - 1 - np.argmax(low[:, ::-1], axis=1), -1)
    # between the last row below half (``last``) and the next one, where it crosses half
    i0 = np.clip(last, 0, nt - 1)
    i1 = np.clip(last + 1, 0, nt - 1)
    v0, v1 = lmax[np.arange(m), i0], lmax[np.arange(m), i1]
    frac = np.where((last >= 0) & (v1 > v0), (half - v0) / np.where(v1 > v0, v1 - v0, 1.0), 0.0)
    g = t[1] - t[0] if nt > 1 else 0.0
    return t[i0] + np.clip(frac, 0.0, 1.0) * g * (last >= 0), ended


def _feature_reach(b: np.ndarray, prof_u: np.ndarray, t: np.ndarray, length: float) -> np.ndarray:
    """How far (lengths) behind the snout the widest part of each fish's head region lies
    (the evidence for a head feature, :func:`refine_heads`), from the re-centred grid ``b``
    (M, nt, nl) and the unweighted profile ``prof_u`` (M, nt) along the axial positions ``t``.

    The snout here is where the fishness along the axis, walking forwards from its strongest
    row, first falls below half of it (interpolated between rows): the edge of a blurred step
    lies at half its height whatever the blur, while the 0.3 point the head point uses lies
    ~0.5 blur sigma ahead of it. For a small larva that is a large part of its length: dark
    disc-headed 21-px larvae blurred by 1.5 px measured 0.185 lengths from the 0.3 point, over
    ``FEATURE_REACH``, and got the head point of fish without a head feature, 2.2 px ahead of
    the disc's centre (held-out seed 14548's kind, drawn on tuning seeds 517 and 652)."""
    if prof_u.shape[0] == 0:
        return np.zeros(0)
    t_half, _ = _half_snout(b, t)
    return (t[prof_u.argmax(axis=1)] - t_half) / length


def _head_profile_np(
    fs: np.ndarray, rough: np.ndarray, ux: np.ndarray, uy: np.ndarray, nx: np.ndarray,
    ny: np.ndarray, t: np.ndarray, lat: np.ndarray, fl: np.ndarray, wl: np.ndarray,
    side: np.ndarray, length: float, g: float,
) -> tuple[np.ndarray, ...]:
    """The first steps of :func:`refine_heads` in NumPy (the reference of
    ``_kernels.head_profile``): the re-centred grid (M, nt, nl), its origin ``ox``, ``oy``,
    the head profile before the weighting behind the snout (M, nt) and the snout's axial
    position (M,)."""
    m = fs.shape[0]

    def sample(ox: np.ndarray, oy: np.ndarray) -> np.ndarray:
        xs = ox[:, None, None] + t[None, :, None] * ux[:, None, None] + lat[None, None, :] * nx[:, None, None]
        ys = oy[:, None, None] + t[None, :, None] * uy[:, None, None] + lat[None, None, :] * ny[:, None, None]
        b = _bilinear(fs, xs.reshape(m, -1), ys.reshape(m, -1)).reshape(m, len(t), len(lat))
        return np.clip(b - fl[:, None, None], 0.0, None)

    b = sample(rough[:, 0], rough[:, 1])
    w2 = b * b * (np.abs(t) <= 0.15 * length)[None, :, None]
    s2 = w2.sum(axis=(1, 2))
    lc = np.where(s2 > 0, (w2 * lat[None, None, :]).sum(axis=(1, 2)) / np.where(s2 > 0, s2, 1.0), 0.0)
    ox = rough[:, 0] + lc * nx
    oy = rough[:, 1] + lc * ny
    # re-centre by shifting the grid's columns by lc (linear interpolation, zero outside)
    # rather than sampling the patch again
    pos_l = (lat[None, :] + lc[:, None] - lat[0]) / g  # (M, nl) fractional column
    c0 = np.floor(pos_l).astype(np.int64)
    fc = (pos_l - c0).astype(np.float32)
    nl = len(lat)
    ok0 = (c0 >= 0) & (c0 < nl)
    ok1 = (c0 + 1 >= 0) & (c0 + 1 < nl)
    i0 = np.clip(c0, 0, nl - 1)
    i1 = np.clip(c0 + 1, 0, nl - 1)
    rows_m = np.arange(m)[:, None, None]
    t_i = np.arange(len(t))[None, :, None]
    b = (b[rows_m, t_i, i0[:, None, :]] * (ok0 * (1 - fc))[:, None, :]
         + b[rows_m, t_i, i1[:, None, :]] * (ok1 * fc)[:, None, :])
    # both sides must be there (two eyes, a disc, a head): min of the two halves, so that a
    # speck or another object on one side does not count
    pos_ = (b * (wl * side)[None, None, :]).sum(axis=2)
    neg_ = (b * (wl * ~side)[None, None, :]).sum(axis=2)
    prof = 2.0 * np.minimum(pos_, neg_)
    lmax = b.max(axis=2)
    # the front: walking forwards from the strongest row, the last row before the fishness
    # falls below 0.3 of it (the fish itself, not something else ahead of it)
    top = lmax.argmax(axis=1)
    low = (lmax < 0.3 * lmax.max(axis=1, keepdims=True)) & (np.arange(len(t))[None, :] < top[:, None])
    last_low = np.where(low.any(axis=1), len(t) - 1 - np.argmax(low[:, ::-1], axis=1), -1)
    t_front = t[np.minimum(last_low + 1, len(t) - 1)]
    return b, ox, oy, prof, t_front


def _head_point_np(
    b: np.ndarray, prof: np.ndarray, prof_u: np.ndarray, t: np.ndarray, lat: np.ndarray, g: float,
    t_front: np.ndarray, ox: np.ndarray, oy: np.ndarray, ux: np.ndarray, uy: np.ndarray,
    nx: np.ndarray, ny: np.ndarray, rough: np.ndarray, length: float, no_feature: float,
    feature_reach: float, head_feature: bool | np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """The rest of :func:`refine_heads` in NumPy (the reference of ``_kernels.head_point``),
    from the weighted profile ``prof`` and the unweighted ``prof_u``: the head points (M, 2)
    and the reach (M,)."""
    m = b.shape[0]
    j = prof.argmax(axis=1)
    rows = np.arange(m)
    nt = len(t)
    pm = prof[rows, j]
    pl = prof[rows, np.maximum(j - 1, 0)]
    pr = prof[rows, np.minimum(j + 1, nt - 1)]
    den = pl - 2 * pm + pr
    ok = (j > 0) & (j < nt - 1) & (den < -1e-9)
    frac = np.clip(np.where(ok, 0.5 * (pl - pr) / np.where(ok, den, -1.0), 0.0), -0.5, 0.5)
    ts = t[j] + frac * g
    # no head feature: the profile still rises where the weighting starts (a fish without
    # distinct eyes whose widest part is mid-body): the head point is ``no_feature`` lengths
    # behind the snout
    # how far behind the snout the widest part is: near it (<~0.12 lengths) for eyes or a
    # dark head, mid-body (~0.25) for a fish without a head feature
    reach_w = (t[prof_u.argmax(axis=1)] - t_front) / length
    if head_feature is None:
        featureless = reach_w > feature_reach
    else:
        featureless = np.broadcast_to(~np.asarray(head_feature, bool), (m,))
    ts = np.where(featureless, t_front + no_feature * length, ts)
    # the row at the head's axial position (linear interpolation between grid rows)
    ls = _row_centre(_row_at(b, ts, t, g), lat)
    hx = ox + ts * ux + ls * nx
    hy = oy + ts * uy + ls * ny
    found = prof.max(axis=1) > 0
    return np.where(found[:, None], np.stack([hx, hy], axis=1), rough), reach_w


def _bilinear(f: np.ndarray, x: np.ndarray, y: np.ndarray,
              rows: np.ndarray | None = None) -> np.ndarray:
    """Sample patches f (M, P, P) at (M, K) positions; zero outside (float32). ``rows`` (M,)
    int64: row ``i`` of ``x``, ``y`` samples patch ``f[rows[i]]`` (as ``_bilinear(f[rows], x,
    y)``; the compiled kernel does not copy the patches).

    While the tracker uses its compiled kernels (``tracker.use_kernels``), float32 or uint8 patches at
    float64 positions go to :func:`fishtrack.tracking._kernels.bilinear2d` (or
    ``bilinear_rows``; the same values as :func:`_bilinear_np`, ~4x faster)."""
    kernel = _KERNEL
    m = len(f) if rows is None else len(rows)
    if (kernel is not None and f.dtype in _KERNEL_TYPES and x.dtype == np.float64
            and y.dtype == np.float64 and x.ndim == 2 and x.shape == y.shape
            and m == len(x) and f.ndim == 3):
        if rows is None:
            return kernel(f, x, y)
        return _HEADS.bilinear_rows(f, np.asarray(rows, np.int64), x, y)
    return _bilinear_np(f if rows is None else f[rows], x, y)


#: the compiled :func:`_bilinear` while the tracker uses its kernels, else None (NumPy)
_KERNEL = None
#: the patch dtypes the compiled kernels sample: float32, or uint8 smoothings read as they are
#: (each value converted to float32 as it is read: the same values as the float32 copy)
_KERNEL_TYPES = (np.dtype(np.float32), np.dtype(np.uint8))
#: the compiled sweep of :func:`trace_midlines` (``_kernels.sweep_step``) while the tracker
#: uses its kernels, else None (NumPy)
_SWEEP = None
#: a trace stops once its end is decided (its ridge below ``stop`` for a whole gap beyond the
#: body: nothing later changes its midline); False: every trace runs to ``max_length``
STOP_DECIDED = True
#: the compiled kernels module while the tracker uses its kernels, else None (NumPy): the
#: steps of :func:`locate_heads` for uint8 patches (``head_windows``, ``eye_heads``), of
#: :func:`refine_heads` (``head_profile``, ``head_point``), :func:`body_directions`
#: (``body_rays``) and :func:`trace_midlines` (``trace_advance``) for float32 or uint8 patches
_HEADS = None


def _bilinear_np(f: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """:func:`_bilinear` in NumPy (the reference of the compiled kernel)."""
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
    # (the indices are within the patches: no bounds check)
    v00 = flat.take(i00, mode="clip")
    v01 = flat.take(i00 + 1, mode="clip")
    v10 = flat.take(i00 + p, mode="clip")
    v11 = flat.take(i00 + p + 1, mode="clip")
    if flat.dtype != np.float32:
        v00, v01, v10, v11 = (v.astype(np.float32) for v in (v00, v01, v10, v11))
    v = (v00 + (v01 - v00) * ax) * (1 - ay) + (v10 + (v11 - v10) * ax) * ay
    return np.where(inside, v, 0.0)


@dataclass
class Midlines:
    """Result of :func:`trace_midlines` (patch coordinates)."""

    points: np.ndarray  # (M, n_points, 2) x, y; NaN where no tail was found
    length: np.ndarray  # (M,) traced length (px)
    ok: np.ndarray  # (M,) bool, a tail of at least two steps was found
    # the whole trace (diagnostics), the ridge value of every step and the fishness beside the
    # ridge; after a decided end (``STOP_DECIDED``) NaN, 0 and 0
    trace: np.ndarray | None = None  # (M, n_steps + 1, 2)
    ridge: np.ndarray | None = None  # (M, n_steps)
    beside: np.ndarray | None = None  # (M, n_steps)
    end: np.ndarray | None = None  # (M,) last step on the fish


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
    lateral: float = 0.1,
    min_fraction: float = MIN_TAIL,
    rigid: float = RIGID,
    rigid_sweeps: float | None = None,
    dark_ends: bool = True,
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
    does not come back on itself; a C-bend's tail tip may still come close to the head).

    A trace runs to ``max_length`` or until its end is decided (``STOP_DECIDED``: its ridge
    value below ``stop`` for a whole gap beyond the body, see below: nothing later changes its
    midline; its later steps are NaN in ``trace`` and zero in ``ridge`` and ``beside``); where
    the tail ends is decided afterwards from the ridge values ``v_k`` of its steps. A step is
    on the fish when its value exceeds the level ``tau`` = ``stop`` (the noise floor of the
    smoothed fishness) or, beyond a third of the body, ``rel_stop`` x the body's own ridge
    level (the highest value 0.15-0.5 lengths from the head) if that is higher. The tail ends after the step that maximises the cumulative
    sum of ``v_k - tau``: a faint, noisy tail whose values dip below ``tau`` now and then is
    followed to its end, while a few noise values above ``tau`` beyond the tip do not extend
    it. The tip is then put where the ridge crosses half the level of the last few steps
    before the end (a sharp end blurred by the smoothing), or ``tau`` if that is higher.

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
    rigid
        The rigid anterior body (fraction of ``length``): the midline runs straight from the
        head to the trace's point this far along it (:func:`_straighten`; 0: as traced).
    rigid_sweeps
        How far (fraction of ``length``, at least ``rigid``) the sweeps keep within
        ``RIGID_TURN`` of the starting direction (None: ``rigid``; the tracker passes
        ``RIGID_SWEEPS`` for head-embedded larvae). A fish whose held trace went on past
        ``rigid`` but found no tail is traced again without the held sweeps (the body is not
        straight ahead there: the held sweeps never lose a tail the plain ones find).
    dark_ends
        With ``rigid_sweeps`` (head-embedded larvae): a trace that climbs onto something much
        darker than the tail leading into it (``DARK_END``) is traced again with that blob
        blanked out, and the retrace kept where it finds a tail at least as long
        (:func:`_dark_blobs`).
    """
    m = fs.shape[0]
    step = float(np.clip(length / (2.0 * max(n_points - 1, 1)), 0.8, 3.0))
    first = max(step, 0.12 * length)
    max_len = max_length if max_length is not None else 1.3 * length
    n_steps = max(2, int(np.ceil((max_len - first) / step)) + 1)
    stop = np.broadcast_to(np.asarray(stop, dtype=np.float32), (m,))
    pos = heads.astype(np.float64).copy()
    theta = theta0.astype(np.float64).copy()
    theta_start = theta.copy()
    trace = np.empty((m, n_steps + 1, 2), np.float64)
    trace[:, 0] = pos
    vals = np.zeros((m, n_steps), np.float32)
    beside = np.zeros((m, n_steps), np.float32)
    ahead = AHEAD * step
    lat_d = float(max(BESIDE_PX, lateral * length))
    avoid = max(AVOID * step, AVOID_L * length)
    avoid2 = avoid**2
    # the trace's own recent points are exempt: besides the last two, those fewer steps back
    # than ``avoid`` is long (the step stops growing at 3 px while ``avoid`` grows with the
    # length: beyond 225 px the point three steps back ruled out the whole arc and no larva
    # that long was ever traced; held-out 22088, 199.5 px measured 238). None more up to
    # ``avoid`` = 2 steps (150 px): the point two steps back is then never that near an arc
    # point (turns of at most 60 degrees keep it two steps away or more)
    recent = max(0, int(np.ceil(avoid / step - 1e-9)) - 2)
    j_wide = np.linspace(-max_turn, max_turn, 2 * int(round(max_turn / 0.065)) + 1)
    first_turn = min(max_turn, FIRST_TURN)
    # the rigid anterior body leads the way the trace started: its sweeps stay within
    # ``first_turn`` of the starting direction (a speck at the neck is not followed)
    rigid_reach = max(rigid, rigid if rigid_sweeps is None else rigid_sweeps) * length
    rigid_turn = min(max_turn, RIGID_TURN)
    j_first = np.linspace(-first_turn, first_turn, 2 * int(round(first_turn / 0.065)) + 1)
    rows = np.arange(m)
    sweep = _SWEEP if fs.dtype in _KERNEL_TYPES and fs.ndim == 3 and len(j_first) > 1 else None
    advance = _HEADS.trace_advance if sweep is not None and _HEADS is not None else None
    if sweep is not None:
        fs = np.ascontiguousarray(fs)  # (the sweep reads each patch as one row)
        heads64 = np.array(heads, np.float64)
        stop32 = np.array(stop, np.float32)
        weight = 1.0 - TURN_PENALTY * (j_wide / max_turn) ** 2
    # the arc's directions theta + offs by rotation (the sine and cosine of each fish's
    # direction and of the fixed offsets): ~5x cheaper than the sines and cosines of every
    # direction (~70 % of the traces' NumPy time), the same within 2e-15
    # (the compiled sweep rotates in the same way, element by element)
    trig = {id(o): (np.cos(o), np.sin(o)) for o in (j_first, j_wide)}
    ca, sa = np.cos(theta), np.sin(theta)  # of the current direction (each step's new one below)
    seg = np.full(n_steps, step)
    seg[0] = first
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    arc = cum[1:]
    body = (arc >= 0.3 * length) & (arc <= 0.5 * length)
    n_gap = int(max(2, np.ceil(GAP * length / step)))
    # a trace's end is decided once its ridge has been below stop (<= tau: no evidence) for
    # n_gap steps that begin beyond 0.15 lengths, after the body's steps (tau's reference):
    # the first gap is then known, and nothing after it changes the midline
    k_from = max(int(np.flatnonzero(body).max()) if body.any() else 0,
                 int(np.argmax(arc > 0.15 * length)) + n_gap - 1 if (arc > 0.15 * length).any() else n_steps)
    low = np.zeros(m, np.int64)  # steps in a row below stop
    going = np.ones(m, bool)
    last = np.full(m, n_steps - 1)  # the last step traced
    live = rows
    for k in range(n_steps):
        offs = j_first if k == 0 else j_wide
        rad = first if k == 0 else step
        co, so = trig[id(offs)]
        if sweep is not None:
            # the compiled sweep: the NumPy steps below from sampling the arc to the refined
            # direction, the same values (``_kernels.sweep_step``)
            reach = first + k * step
            a, vmax = np.zeros(m), np.zeros(m)
            sweep(fs, pos, theta, heads64, trace, ca, sa, co, so, offs,
                  weight if k > 0 else offs, k - recent, float(rad), float(rad + ahead),
                  bool(k > 0 and ahead > 0 and reach > 0.3 * length),
                  0.8 * reach if k > 0 and reach <= ANTERIOR * length else -1.0,
                  float((rad + avoid + 0.5) ** 2), float(avoid2), bool(arc_smooth),
                  bool(k > 0 and TURN_PENALTY > 0), stop32, a, vmax, theta_start,
                  float(rigid_turn) if k > 0 and reach <= rigid_reach else -1.0, live)
        else:
            ct, st = ca[:, None], sa[:, None]
            cos_a = ct * co[None, :] - st * so[None, :]
            sin_a = st * co[None, :] + ct * so[None, :]
            xs = pos[:, 0, None] + rad * cos_a
            ys = pos[:, 1, None] + rad * sin_a
            v = _bilinear(fs, xs, ys)
            if k > 0 and ahead > 0 and first + k * step > 0.3 * length:
                # look ahead along each direction: a longer ray resolves the direction better
                # than a short arc, and averages the noise of a faint tail
                r2 = rad + ahead
                v = 0.5 * (v + _bilinear(fs, pos[:, 0, None] + r2 * cos_a,
                                          pos[:, 1, None] + r2 * sin_a))
            reach = first + k * step
            if k > 0 and reach <= ANTERIOR * length:
                # the anterior body leads away from the head: the trace must not circle round the
                # eyes or the swim bladder, which are darker than the body around them
                far = np.hypot(xs - heads[:, 0, None], ys - heads[:, 1, None]) >= 0.8 * reach
                v = np.where(far, v, 0.0)
            if k > 0 and reach <= rigid_reach:
                # the rigid anterior body is straight: its sweeps stay within ``first_turn`` of
                # the starting direction (a dark speck at the neck, filled in with a still larva,
                # drew the trace round it)
                cone = np.abs((theta - theta_start)[:, None] + offs[None, :]) <= rigid_turn
                v = np.where(cone, v, 0.0)
            if k - recent >= 2:
                # a midline does not come back on itself: nor does the trace (it would orbit a
                # dark blob such as the swim bladder, darker than the tail behind it)
                # (only earlier points within reach of the arc can be that close: the arc's points
                # are ``rad`` from ``pos``, so the others are left out of the distance test)
                back = trace[:, : k - 1 - recent, :]
                near = ((back[..., 0] - pos[:, 0, None]) ** 2 + (back[..., 1] - pos[:, 1, None]) ** 2
                        <= (rad + avoid + 0.5) ** 2)
                cnt = near.sum(axis=1)
                n_near = int(cnt.max())
                if n_near:
                    pick = np.argsort(~near, axis=1, kind="stable")[:, :n_near]
                    back = np.take_along_axis(back, pick[..., None], axis=1)
                    near = np.take_along_axis(near, pick, axis=1)
                    dd = (xs - back[:, 0, 0, None]) ** 2 + (ys - back[:, 0, 1, None]) ** 2
                    clear = (dd >= avoid2) | ~near[:, 0, None]
                    for q in range(1, n_near):
                        r = np.flatnonzero(cnt > q)  # (the other rows have no q-th near point)
                        dd = (xs[r] - back[r, q, 0, None]) ** 2 + (ys[r] - back[r, q, 1, None]) ** 2
                        clear[r] &= dd >= avoid2
                    v = np.where(clear, v, 0.0)
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
        ca, sa = np.cos(a), np.sin(a)
        theta = a
        if advance is not None:
            # the compiled step below (``_kernels.trace_advance``, the same values)
            advance(fs, pos, ca, sa, float(rad), lat_d, k, vmax, trace, vals, beside, live)
        else:
            pos = pos + rad * np.stack([ca, sa], axis=1)
            trace[:, k + 1] = pos
            vals[:, k] = vmax
            # beside the ridge: the stronger of two points lat_d either side of the new point
            nx, ny = -sa * lat_d, ca * lat_d
            side = _bilinear(fs, np.stack([pos[:, 0] + nx, pos[:, 0] - nx], 1),
                             np.stack([pos[:, 1] + ny, pos[:, 1] - ny], 1))
            beside[:, k] = side.max(axis=1)
        if STOP_DECIDED and k >= k_from - n_gap + 1:
            low = np.where(vals[:, k] < stop, low + 1, 0)
            ended = going & (low >= n_gap) if k >= k_from else None
            if ended is not None and ended.any():
                last[ended] = k
                going &= ~ended
                if not going.any():
                    break
                live = np.flatnonzero(going)  # (the NumPy path above traces every fish)
    # a trace's steps after its decided end: not traced
    gone = np.arange(n_steps)[None, :] > last[:, None]
    if (last < n_steps - 1).any():
        vals[gone] = 0.0
        beside[gone] = 0.0
        trace[:, 1:][gone] = np.nan
    # the level a step must exceed to be on the fish
    tau = np.broadcast_to(stop[:, None], (m, n_steps)).astype(np.float32)
    if body.any() and rel_stop > 0:
        ref = vals[:, body].max(axis=1)
        post = (arc > 0.33 * length)[None, :]
        tau = np.where(post, np.maximum(tau, rel_stop * ref[:, None]), tau)
    # evidence that a step is on the fish: over the anterior body its ridge value above tau;
    # beyond, the ridge must also stand out from both sides of it (noise and compression
    # artefacts beyond the tip are as strong beside the chosen direction as along it)
    post = (arc > TAIL_FROM * length)[None, :]
    # a tail fades gradually; where the ridge falls below DROP x its level over the last
    # 0.1 lengths, the tail has ended (a sharp end, then background texture)
    w = int(max(2, np.ceil(0.1 * length / step)))
    recent = np.zeros_like(vals)
    for q in range(1, w + 1):
        recent[:, q:] = np.maximum(recent[:, q:], vals[:, :-q])
    tau = np.where(post, np.maximum(tau, DROP * recent), tau)
    # beyond the typical length a fish is rare: only a strong ridge goes on
    if rel_stop > 0 and body.any():
        tau = np.where((arc > 1.1 * length)[None, :], np.maximum(tau, 0.3 * ref[:, None]), tau)
    contrast = vals - beside
    ev = np.where(post, np.minimum(vals - tau, contrast - tau), vals - tau)
    # a tail does not vanish and reappear: a gap (``GAP`` lengths, at least two steps, with no
    # evidence) ends it, whatever the trace finds beyond (the flank of its own tail, another
    # blob, compression artefacts)
    neg = ev < 0
    run = np.ones((m, n_steps), bool)
    for g in range(n_gap):
        run[:, : n_steps - g] &= neg[:, g:]
    run[:, n_steps - n_gap + 1 :] = False
    run &= (arc > 0.15 * length)[None, :]
    first_gap = np.where(run.any(axis=1), run.argmax(axis=1), n_steps)
    gain = np.cumsum(ev, axis=1)
    gain = np.where(np.arange(n_steps)[None, :] < first_gap[:, None], gain, -np.inf)
    k_end = gain.argmax(axis=1)
    ok = (gain[rows, k_end] > 0) & (k_end >= 1)
    # the tip: where the ridge crosses half the level of the last steps before the end (or
    # tau), searched back from the step after the end
    lo = np.maximum(k_end - 4, 0)
    idx = np.arange(n_steps)[None, :]
    win = (idx >= lo[:, None]) & (idx <= k_end[:, None])
    level = np.where(win, vals, 0.0).sum(axis=1) / np.maximum(win.sum(axis=1), 1)
    level = np.maximum(0.5 * level, tau[rows, k_end])
    above = (vals >= level[:, None]) & (idx <= k_end[:, None])
    # the last step at or above the level (at most k_end), then the crossing after it
    k_last = np.where(above.any(axis=1), n_steps - 1 - np.argmax(above[:, ::-1], axis=1), k_end)
    k_last = np.minimum(k_last, k_end)
    k_next = np.minimum(k_last + 1, n_steps - 1)
    v0, v1 = vals[rows, k_last], vals[rows, k_next]
    fr = np.where(k_next > k_last, np.clip((v0 - level) / np.maximum(v0 - v1, 1e-6), 0.0, 1.0), 0.0)
    total = np.where(ok, cum[k_last + 1] + fr * seg[k_next], 0.0)
    # a trace that ends within the anterior body has not found the tail
    ok &= total >= min_fraction * length
    total = np.where(ok, total, 0.0)
    trace_s, cum_r, total = _straighten(trace, cum, total, ok, rigid * length)
    # resample to n_points equally spaced points
    targets = total[:, None] * np.linspace(0, 1, n_points)[None, :]
    ix = np.clip((cum_r[:, None, :] < targets[:, :, None]).sum(axis=2), 1, n_steps)
    i0 = ix - 1
    mi = rows[:, None]
    c0 = cum_r[mi, i0]
    c1 = cum_r[mi, ix]
    f = np.clip((targets - c0) / np.maximum(c1 - c0, 1e-9), 0, 1)[..., None]
    pts = trace_s[mi, i0] * (1 - f) + trace_s[mi, ix] * f
    pts[~ok, 1:] = np.nan
    out = Midlines(points=pts, length=total, ok=ok, trace=trace, ridge=vals, beside=beside,
                   end=k_end)
    held = np.flatnonzero(arc > rigid * length)
    if rigid_reach > rigid * length and held.size:
        # the sweeps held straight beyond ``rigid`` (``rigid_sweeps``) left no tail where the
        # trace went on past the rigid part: the body is not straight ahead there (a faint tail
        # lost in codec noise beside the cone, tuning seed 745), so these fish are traced as
        # without the held sweeps; a trace that held a tail keeps it
        lost = np.flatnonzero(~ok & (last >= held[0]))
        if lost.size:
            m2 = trace_midlines(fs[lost], heads[lost], theta0[lost], length, n_points, stop[lost],
                                rel_stop=rel_stop, max_length=max_length, arc_smooth=arc_smooth,
                                max_turn=max_turn, lateral=lateral, min_fraction=min_fraction,
                                rigid=rigid)
            got = lost[m2.ok]
            if got.size:
                for f in ("points", "length", "ok", "trace", "ridge", "beside", "end"):
                    getattr(out, f)[got] = getattr(m2, f)[m2.ok]
    if dark_ends and DARK_END > 0 and rigid_reach > rigid * length:
        # a dark blob the trace climbed onto beyond the rigid body (a dust speck touching the
        # tail): traced again without it, kept where the retrace finds at least as much tail
        cand, blanked, through = _dark_blobs(fs, out, cum, length, stop)
        if cand.size:
            m3 = trace_midlines(blanked, heads[cand], theta0[cand], length, n_points, stop[cand],
                                rel_stop=rel_stop, max_length=max_length, arc_smooth=arc_smooth,
                                max_turn=max_turn, lateral=lateral, min_fraction=min_fraction,
                                rigid=rigid, rigid_sweeps=rigid_sweeps, dark_ends=False)
            old = np.where(out.ok[cand], out.length[cand], 0.0)
            # the retrace is kept where it is longer by DARK_GAIN lengths, or where the
            # kept trace ran through the blob and the retrace goes nearly as far without it
            keep = m3.ok & ((m3.length >= old + DARK_GAIN * length)
                            | (through & (m3.length >= DARK_KEEP * old)))
            got = cand[keep]
            if got.size:
                for f in ("points", "length", "ok", "trace", "ridge", "beside", "end"):
                    getattr(out, f)[got] = getattr(m3, f)[keep]
    return out


def _dark_blobs(
    fs: np.ndarray, mid: Midlines, cum: np.ndarray, length: float, stop: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Traces that climbed onto a blob much darker than the tail leading into it, and their
    patches with the blob blanked out.

    A larva's tail gets paler towards its tip, never darker. Beyond ``RIGID`` lengths the
    ridge of a trace is compared with its lowest value so far (``lvl``, the tail leading in):
    a step above ``DARK_END`` x ``lvl`` and ``lvl + 3 stop`` (well above the noise) is on
    something else (a dust speck touching the tail, which the sweeps take for the tail because
    it is darker: spent seeds 24658 and 24626). The blob's centre is the strongest pixel near
    the strongest step of that climb; its radius the median over 16 rays of the distance at
    which the fishness falls below ``lvl / 2`` (a round speck's; the tail along one ray does
    not move the median), at most ``DARK_R`` lengths; the disc is set to 0 in a copy of the
    patch. Returns the rows (K,), their blanked patches (K, P, P) and whether each blob lies
    within the kept midline (K,)."""
    m, n_steps = mid.ridge.shape
    vals = mid.ridge
    arc = cum[1:]
    post = arc > RIGID * length
    if not post.any():
        return np.zeros(0, np.int64), fs[:0], np.zeros(0, bool)
    k0 = int(np.argmax(post))
    v = vals[:, k0:].astype(np.float64)
    run_min = np.minimum.accumulate(np.where(v > 0, v, np.inf), axis=1)
    run_min = np.where(np.isfinite(run_min), run_min, 0.0)
    thr = np.maximum(DARK_END * run_min, run_min + 3.0 * stop[:, None].astype(np.float64))
    rise = (v > thr) & (run_min > 0)
    rows = np.flatnonzero(rise.any(axis=1))
    if rows.size == 0:
        return rows, fs[:0], np.zeros(0, bool)
    p = fs.shape[1]
    out = np.array(fs[rows], copy=True)
    keep = np.zeros(rows.size, bool)
    through = np.zeros(rows.size, bool)
    ang = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    r_max = max(2.0, DARK_R * length)
    rr = np.arange(0.0, r_max + 0.5, 0.5)
    win = max(1, int(round(0.03 * length)))
    for q, i in enumerate(rows):
        kr = int(np.argmax(rise[i]))
        lvl = float(run_min[i, kr])
        # the climb: from its first step above the threshold while the ridge stays above it
        ke = kr
        while ke + 1 < v.shape[1] and v[i, ke + 1] > thr[i, kr]:
            ke += 1
        kp = k0 + kr + int(np.argmax(v[i, kr:ke + 1]))
        cx, cy = mid.trace[i, kp + 1]
        if not (np.isfinite(cx) and np.isfinite(cy)):
            continue
        x0, x1 = max(0, int(cx) - win), min(p, int(cx) + win + 2)
        y0, y1 = max(0, int(cy) - win), min(p, int(cy) + win + 2)
        sub = np.asarray(fs[i, y0:y1, x0:x1], np.float64)
        if sub.size == 0:
            continue
        jy, jx = np.unravel_index(int(np.argmax(sub)), sub.shape)
        cx, cy = float(x0 + jx), float(y0 + jy)
        px = cx + rr[None, :] * np.cos(ang)[:, None]
        py = cy + rr[None, :] * np.sin(ang)[:, None]
        prof = _bilinear_np(np.asarray(fs[i:i + 1], np.float32), px.reshape(1, -1),
                            py.reshape(1, -1)).reshape(len(ang), len(rr))
        below = prof < 0.5 * lvl
        dist = np.where(below.any(axis=1), rr[np.argmax(below, axis=1)], r_max)
        rad = float(np.median(dist))
        if rad <= 0:
            continue
        bx0, bx1 = max(0, int(np.floor(cx - rad))), min(p, int(np.ceil(cx + rad)) + 1)
        by0, by1 = max(0, int(np.floor(cy - rad))), min(p, int(np.ceil(cy + rad)) + 1)
        yy, xx = np.mgrid[by0:by1, bx0:bx1]
        out[q, by0:by1, bx0:bx1][(xx - cx) ** 2 + (yy - cy) ** 2 <= rad * rad] = 0
        keep[q] = True
        through[q] = mid.ok[i] and kp <= int(mid.end[i])
    return rows[keep], out[keep], through[keep]


def _straighten(
    trace: np.ndarray, cum: np.ndarray, total: np.ndarray, ok: np.ndarray, a: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Make traces straight from the head to their point at arc length ``a`` (px).

    ``trace`` (M, K, 2) with arc lengths ``cum`` (K,) along every trace, tails ending at
    ``total`` (M,). The trace's vertices before ``a`` are moved onto the chord from the head to
    the trace's point at ``a`` (same fractions of it); the rest is unchanged. Only traces of
    ``ok`` fish that reach beyond the first vertex past ``a`` are changed.

    Returns the traces, their arc lengths (M, K) and where the tails now end (M,).
    """
    m, k, _ = trace.shape
    cum_r = np.broadcast_to(cum, (m, k))
    jb = int(np.searchsorted(cum, a, side="left"))
    if a <= 0 or jb < 2 or jb >= k:
        return trace, cum_r, total
    rows = np.flatnonzero(ok & (total >= cum[jb]))
    if rows.size == 0:
        return trace, cum_r, total
    t = trace[rows]
    fa = (a - cum[jb - 1]) / max(cum[jb] - cum[jb - 1], 1e-9)
    pa = t[:, jb - 1] * (1 - fa) + t[:, jb] * fa  # the trace's point at arc length a
    head = t[:, :1]
    frac = (cum[1:jb] / a)[None, :, None]
    t = t.copy()
    t[:, 1:jb] = head + frac * (pa[:, None, :] - head)
    seg = np.hypot(*np.diff(t, axis=1).transpose(2, 0, 1))
    c = np.concatenate([np.zeros((len(rows), 1)), np.cumsum(seg, axis=1)], axis=1)
    out_t = trace.copy()
    out_t[rows] = t
    out_c = np.array(cum_r, dtype=np.float64)
    out_c[rows] = c
    out_total = np.array(total, dtype=np.float64)
    # the vertices from jb on are unchanged: the tip keeps its place along them
    out_total[rows] = total[rows] - cum[jb] + c[:, jb]
    return out_t, out_c, out_total


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
