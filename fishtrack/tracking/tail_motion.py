"""The pixel change where the tail is: the tracker's ``tail_motion`` column (issue 11).

``motion_energy`` is the mean absolute frame difference over the whole (dilated) fish: when
only the faint tail of a small larva moves, the change of its few pixels is diluted among the
body's and the camera noise of every other pixel, and the behaviour stage's pixel-motion gate
could not tell a true tail bout from tracker jitter. ``tail_motion`` looks where the traced
tail is instead: at the caudal half of the midline of frame ``t`` and of frame ``t - lag``
(``lag`` frames = :data:`TAIL_MOTION_WINDOW_S`, half a period of the fastest, 40 Hz, tail
beat), the fishness of the two frames is compared, and the mean absolute difference over
those points is the value (grey levels of fishness). A tail that really moved leaves fish
where there was background and background where there was fish; a traced tail that jumps
while the image does not (tracker jitter) finds the same pixels in both frames, and only the
camera noise.
"""

from __future__ import annotations

import numpy as np

TAIL_MOTION_WINDOW_S = 1.0 / (2 * 40.0)
"""The span (s) of the comparison: half a period of the fastest tail beat (the time between
two turns), at least one frame (one frame up to ~120 fps)."""
CAUDAL_FROM = 0.5
"""The caudal part of the midline: points from this fraction of its length to the tip."""


def tail_motion_lag(dt: float) -> int:
    """Frames in :data:`TAIL_MOTION_WINDOW_S` at a frame interval ``dt`` (s; at least 1)."""
    if not (np.isfinite(dt) and dt > 0):
        return 1
    return max(1, int(round(TAIL_MOTION_WINDOW_S / dt)))


def _sample(fp, k: np.ndarray, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Values of patches ``k`` (K,) at pixels ``xy`` (K, S, 2; patch px, NaN allowed) and
    where they fall inside the patch. ``fp``: one (M, P, P) array or a tuple of them, indexed
    as if concatenated (no copy of the patches)."""
    parts = fp if isinstance(fp, tuple) else (fp,)
    p = parts[0].shape[1]
    x, y = np.rint(xy[..., 0]), np.rint(xy[..., 1])
    inside = (x >= 0) & (x < p) & (y >= 0) & (y < p)  # False at NaN too
    xi = np.where(inside, x, 0).astype(np.intp)
    yi = np.where(inside, y, 0).astype(np.intp)
    vals = np.zeros(xi.shape, np.float32)
    start = 0
    for a in parts:
        if start == 0 and len(a) > k.max():
            vals = a[k[:, None], yi, xi].astype(np.float32)
        else:
            sel = (k >= start) & (k < start + len(a))
            vals[sel] = a[(k[sel] - start)[:, None], yi[sel], xi[sel]]
        start += len(a)
    return vals, inside


def tail_motion(fp, off: np.ndarray, points: np.ndarray, ok: np.ndarray,
                rows: np.ndarray, lag: int, at: np.ndarray | None = None) -> np.ndarray:
    """Per patch of one fish: the mean absolute fishness difference to the patch ``lag``
    frames earlier at the caudal midline points of both frames (NaN where that frame is not
    among ``rows``, or no point falls inside both patches).

    ``fp`` (M, P, P) the fishness patches (or a tuple of such arrays, taken as concatenated),
    ``off`` (M, 2) their full-frame position (x, y), ``points`` (M, n, 2) the midlines
    (full-frame px), ``ok`` (M,) where the midline was traced, ``rows`` (M,) frame numbers
    (increasing; several fish: keys that keep them apart); ``at`` (M,) where each row's
    patch is in ``fp`` (default: row ``k`` is patch ``k``). Costs a few dozen pixel reads
    per patch."""
    m = len(rows)
    out = np.full(m, np.nan, np.float32)
    if m == 0:
        return out
    rows = np.asarray(rows, np.int64)
    j = np.searchsorted(rows, rows - lag)
    j = np.minimum(j, m - 1)
    has = (rows[j] == rows - lag) & ok & ok[j]
    i = np.flatnonzero(has)
    if not i.size:
        return out
    j = j[i]
    n = points.shape[1]
    c0 = min(n - 1, int(np.ceil(CAUDAL_FROM * (n - 1))))
    # both frames' caudal points (2 x caudal points per pair), full-frame px
    pts = np.concatenate([points[i, c0:], points[j, c0:]], axis=1)
    ai, aj = (i, j) if at is None else (at[i], at[j])
    a, ia = _sample(fp, ai, pts - off[i][:, None, :])
    b, ib = _sample(fp, aj, pts - off[j][:, None, :])
    both = ia & ib
    cnt = both.sum(axis=1)
    tot = np.where(both, np.abs(a - b), 0.0).sum(axis=1)
    good = cnt > 0
    out[i[good]] = tot[good] / cnt[good]
    return out


def frame_lag(time: np.ndarray, base: int, rows_list: list[np.ndarray]) -> int:
    """Frames of the comparison (:func:`tail_motion_lag`) from the median frame interval of
    the frame numbers ``rows_list`` (their times ``time[rows - base]``; 1 where unknown)."""
    dts = []
    for rows in rows_list:
        t = time[np.clip(rows - base, 0, len(time) - 1)]
        dts.append(np.diff(t) / np.maximum(np.diff(rows), 1))
    dt = np.concatenate(dts) if dts else np.zeros(0)
    dt = dt[np.isfinite(dt) & (dt > 0)]
    return tail_motion_lag(float(np.median(dt)) if len(dt) else float("nan"))


def batch_tail_motion(lag: int, pend: list, fp: np.ndarray, off: np.ndarray, points: np.ndarray,
                      ok: np.ndarray) -> np.ndarray:
    """The tail motion of every patch of a batch the tracker measured
    (``tracker._Queue._measure_write``): ``pend`` its blocks in order (each one fish's frame
    numbers ``rows``, its patches next to each other in ``fp``, ``off``, ``points``, ``ok``),
    each compared with its own patches of this batch and of the fish's block before
    (``pend[i].prev``, set in the main thread, measured in this or an earlier batch: its
    ``done`` event is waited for, so the two threads that measure a batch's halves give the
    values of one). Keeps each block's last ``lag`` patches (``tail_last``) for the next one
    and reads the batch's patches where they are (no copy)."""
    span = np.int64(1) << 40  # rows of different fish never within ``lag`` of each other
    parts: list[tuple] = []  # (off, points, ok, rows, where the patches are)
    carried: list[np.ndarray] = []  # the patches carried over, stacked before the batch's
    own: list[np.ndarray] = []  # where each block's own (this batch's) patches sit
    r = n = n_carry = 0
    try:
        for b, p in enumerate(pend):
            k = len(p.rows)
            sl = slice(r, r + k)
            prev, p.prev = p.prev, None
            if prev is not None:
                prev.done.wait()  # measured in this batch's other half, or an earlier batch
                c = prev.tail_last
                if c is not None and len(c[4]) and k and c[4][-1] < p.rows[0]:
                    carried.append(c[0])
                    parts.append(c[1:4] + (c[4] + b * span, -1 - np.arange(n_carry, n_carry + len(c[4]))))
                    n_carry += len(c[4])
                    n += len(c[4])
            parts.append((off[sl], points[sl], ok[sl], p.rows + b * span, np.arange(r, r + k)))
            own.append(np.arange(n, n + k))
            n += k
            p.tail_last = (fp[r + max(0, k - lag): r + k].copy(), off[sl][-lag:],
                           points[sl][-lag:], ok[sl][-lag:], p.rows[-lag:])
            p.done.set()
            r += k
    finally:
        for p in pend:
            p.done.set()  # never leave a later block waiting
    if not parts:
        return np.zeros(0, np.float32)
    o, pts, good, rows, at = (np.concatenate([q[i] for q in parts]) for i in range(5))
    at = np.where(at < 0, -1 - at, at + n_carry)
    src = (np.concatenate(carried), fp) if carried else fp
    return tail_motion(src, o, pts, good, rows, lag=lag, at=at)[np.concatenate(own)]
