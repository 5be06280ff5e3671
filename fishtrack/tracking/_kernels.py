"""Compiled (numba) kernels for the tracker's hottest per-fish loops.

Each kernel computes exactly what a NumPy reference elsewhere in :mod:`fishtrack.tracking`
computes, with the same floating-point operations in the same order and precision (no
``fastmath``), so its results are bit-identical; ``tests/test_tracking_kernels.py`` checks
that against the reference. A kernel pays off where the NumPy version makes many temporary
arrays per sample (bilinear sampling: ~15 whole-array operations for four reads and a few
multiplications per sample).

The kernels are compiled when this module is first imported (the tracker imports it when it
first needs it) and cached on disk (numba's ``cache=True``: next to
this file, or in the user's cache folder where that is not writable), so a process pays only
numba's import (~0.3-0.5 s) and the cache load when it first tracks. They release the GIL
(``nogil``), so the tracker's measuring threads run them side by side. The sampling kernels
take float32 patches or the uint8 smoothings themselves (each value read is converted to
float32: the same values, no float32 copy of the patches).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["bilinear2d", "bilinear_rows", "body_rays", "contour_stats", "cut_measure", "cut_measure_arenas", "eye_heads",
           "fishness_arenas", "gains_fishness_arenas", "head_point", "head_profile", "head_windows", "sweep_step", "trace_advance"]


#: one compiled signature per kernel (any memory layout), so that a first run compiles each
#: kernel once, whatever views it is given
_A3U8 = "uint8[:, :, :]"
_C3U8 = "uint8[:, :, ::1]"
#: the smoothed patches the sampling kernels read: float32, or the uint8 smoothings themselves
#: (each value read converted to float32: the same values, a quarter of the memory)
_PATCH_TYPES = ("float32", "uint8")


@njit(cache=True, nogil=True, inline="always")
def _sample(f, i, xv, yv):  # pragma: no cover - compiled
    """One value of :func:`bilinear2d` (patch ``i`` at ``xv``, ``yv``)."""
    p = f.shape[1]
    top = p - 1
    if not (xv >= 0 and xv <= top and yv >= 0 and yv <= top):
        return np.float32(0.0)
    hi = p - 1.0001
    xc = min(max(xv, 0.0), hi)
    yc = min(max(yv, 0.0), hi)
    x0 = int(xc)
    y0 = int(yc)
    ax = np.float32(xc - x0)
    ay = np.float32(yc - y0)
    v00 = np.float32(f[i, y0, x0])
    v01 = np.float32(f[i, y0, x0 + 1])
    v10 = np.float32(f[i, y0 + 1, x0])
    v11 = np.float32(f[i, y0 + 1, x0 + 1])
    one = np.float32(1.0)
    return (v00 + (v01 - v00) * ax) * (one - ay) + (v10 + (v11 - v10) * ax) * ay


@njit([f"float32[:, :]({t}[:, :, :], float64[:, :], float64[:, :])" for t in _PATCH_TYPES],
      cache=True, nogil=True)
def bilinear2d(f, x, y):  # pragma: no cover - compiled; tested against the NumPy reference
    """Sample patches ``f`` (M, P, P) at positions ``x``, ``y`` (M, K) float64; zero outside
    ``[0, P-1]``; float32 (M, K). The same values as ``midline._bilinear_np``."""
    m = f.shape[0]
    k = x.shape[1]
    out = np.empty((m, k), np.float32)
    for i in range(m):
        for j in range(k):
            out[i, j] = _sample(f, i, x[i, j], y[i, j])
    return out


@njit([f"float32[:, :]({t}[:, :, :], int64[:], float64[:, :], float64[:, :])" for t in _PATCH_TYPES],
      cache=True, nogil=True)
def bilinear_rows(f, rows, x, y):  # pragma: no cover - compiled; tested against the NumPy reference
    """:func:`bilinear2d` of the patches ``f[rows]`` without copying them: row ``i`` of ``x``,
    ``y`` (M, K) samples patch ``rows[i]``."""
    m = rows.shape[0]
    k = x.shape[1]
    out = np.empty((m, k), np.float32)
    for i in range(m):
        r = rows[i]
        for j in range(k):
            out[i, j] = _sample(f, r, x[i, j], y[i, j])
    return out


@njit(cache=True, nogil=True, inline="always")
def _cut_measure_one(d, crop, prev, has_prev, t, x0, y0, mem, label, own_threshold, fp, area,  # pragma: no cover
                     motion, own, tmp, cols):
    """:func:`cut_measure` of one arena, with its scratch rows ``own``, ``tmp`` (P + 4, P + 4)
    and ``cols`` (P,) uint8 (zeroed here per fish as needed)."""
    m, p = fp.shape[0], fp.shape[1]
    h, w = d.shape[1], d.shape[2]
    # the fish's pixels (own) and their dilation along rows (tmp) with a margin of 2 px:
    # patch row / column i is row / column i + 2 of these, so that the 5-wide maxima need no
    # bounds (branch-free loops the compiler vectorizes)
    for k in range(m):
        tk, xk, yk = t[k], x0[k], y0[k]
        ya, yb = min(max(yk, 0), h), min(max(yk + p, 0), h)
        xa, xb = min(max(xk, 0), w), min(max(xk + p, 0), w)
        if yb <= ya or xb <= xa:
            area[k] = 0.0
            continue
        ia, ib, ja, jb = ya - yk, yb - yk, xa - xk, xb - xk
        nj = jb - ja
        own[:, :] = 0
        cols[:] = 0
        n_own = 0
        imin, imax, jmin, jmax = p, -1, p, -1
        for i in range(ia, ib):
            drow = d[tk, yk + i, xa:xb]
            frow = fp[k, i, ja:jb]
            orow = own[i + 2, ja + 2:jb + 2]
            rc = 0
            if label:
                mrow = mem[k, i, ja:jb]
                for j in range(nj):
                    frow[j] = drow[j]
                    o = np.uint8(mrow[j] == 1)
                    orow[j] = o
                    rc += o
            else:
                for j in range(nj):
                    v = drow[j]
                    frow[j] = v
                    o = np.uint8(v > own_threshold)
                    orow[j] = o
                    rc += o
            if rc > 0:
                n_own += rc
                imin, imax = min(imin, i), max(imax, i)
                crow = cols[ja:jb]
                for j in range(nj):
                    crow[j] |= orow[j]
        for j in range(ja, jb):
            if cols[j]:
                jmin = min(jmin, j)
                jmax = max(jmax, j)
        area[k] = n_own
        if n_own == 0 or not (tk > 0 or has_prev):
            continue
        # dilation by a 5x5 square (zero outside the patch), on the fish's bounding box grown
        # by 2 px: along rows into tmp, then along columns while summing; the rows of tmp the
        # column pass reads beyond the fish's rows (2 px either side of the grown box) are zero
        c0, c1 = max(jmin - 2, 0), min(jmax + 2, p - 1)
        nc = c1 - c0 + 1
        for r in range(max(imin - 2, 0), min(imax + 6, p + 3) + 1):
            if r < imin + 2 or r > imax + 2:
                trow = tmp[r, c0:c1 + 1]
                for j in range(nc):
                    trow[j] = 0
        for i in range(imin, imax + 1):
            orow = own[i + 2]
            trow = tmp[i + 2, c0:c1 + 1]
            for j in range(nc):
                jj = c0 + j
                trow[j] = orow[jj] | orow[jj + 1] | orow[jj + 2] | orow[jj + 3] | orow[jj + 4]
        nz = 0
        tot = 0
        r0, r1 = max(imin - 2, ia), min(imax + 2, ib - 1)
        q0, q1 = max(c0, ja), min(c1, jb - 1)
        nq = q1 - q0 + 1
        for i in range(r0, r1 + 1):
            t0 = tmp[i, q0:q1 + 1]
            t1 = tmp[i + 1, q0:q1 + 1]
            t2 = tmp[i + 2, q0:q1 + 1]
            t3 = tmp[i + 3, q0:q1 + 1]
            t4 = tmp[i + 4, q0:q1 + 1]
            arow = crop[tk, yk + i, xk + q0:xk + q1 + 1]
            brow = crop[tk - 1, yk + i, xk + q0:xk + q1 + 1] if tk > 0 else prev[yk + i, xk + q0:xk + q1 + 1]
            rn = 0
            rt = 0
            for j in range(nq):
                hit = np.int32(t0[j] | t1[j] | t2[j] | t3[j] | t4[j])
                a = np.int32(arow[j])
                b = np.int32(brow[j])
                rn += hit
                rt += hit * (a - b if a >= b else b - a)
            nz += rn
            tot += rt
        if nz > 0:
            motion[k] = tot * (1.0 / nz)


@njit(f"void({_C3U8}, {_A3U8}, uint8[:, :], boolean, int64[:], int64[:], int64[:], {_C3U8}, "
      f"boolean, float64, {_C3U8}, float32[:], float32[:])", cache=True, nogil=True)
def cut_measure(d, crop, prev, has_prev, t, x0, y0, mem, label, own_threshold, fp, area, motion):  # pragma: no cover
    """The fishness patches ``fp`` (M, P, P) of a chunk's fish and each fish's area and motion
    energy (``tracker._cut``'s NumPy steps, the same values).

    ``d``, ``crop`` (N, h, w) the arena's fishness and frames, ``prev`` (h, w) the frame
    before the chunk (used where ``has_prev``), ``t``, ``x0``, ``y0`` (M,) each patch's frame
    and top-left corner (crop px), ``mem`` (M, P, P) labels (1 = the fish; used where
    ``label``, else the fish is where ``fp > own_threshold``). Fills ``fp`` (zeros), ``area``
    and ``motion`` (NaN where not measured): the fish's pixel count inside the crop and the
    mean absolute frame difference to the frame before over the fish dilated by 2 px (5x5
    square, within the patch and the crop).
    """
    p = fp.shape[1]
    own = np.zeros((p + 4, p + 4), np.uint8)
    tmp = np.zeros((p + 4, p + 4), np.uint8)
    cols = np.zeros(p, np.uint8)
    _cut_measure_one(d, crop, prev, has_prev, t, x0, y0, mem, label, own_threshold, fp, area,
                     motion, own, tmp, cols)


@njit(f"void(uint8[::1], int64[::1], int64[:, ::1], {_C3U8}, uint8[:, ::1], boolean[::1], "
      f"int64[::1], int64[:], int64[:], int64[:], {_C3U8}, {_C3U8}, float32[:], float32[:])",
      cache=True, nogil=True)
def cut_measure_arenas(work, woff, boxes, frames, prev, has_prev, bounds, t, x0, y0, mem, fp,
                       area, motion):  # pragma: no cover
    """:func:`cut_measure` (with labels) of every arena of a plate's chunk in one call,
    instead of one call per arena (issue 15: ~96 calls per chunk, mostly numba's argument
    dispatch): the same values.

    ``work`` the flat buffer holding each arena's fishness (N, h, w) from ``woff[a]``;
    ``boxes`` (A, 4) each arena's crop (x0, y0, h, w) in ``frames`` (N, H, W); ``prev`` (H, W)
    the frame before the chunk (an arena's crop of it used where ``has_prev[a]``); the fish of
    arena ``a`` are rows ``bounds[a]:bounds[a + 1]`` of ``t``, ``x0``, ``y0``, ``mem``, ``fp``,
    ``area`` and ``motion`` (as :func:`cut_measure`'s).
    """
    n = frames.shape[0]
    p = fp.shape[1]
    own = np.zeros((p + 4, p + 4), np.uint8)
    tmp = np.zeros((p + 4, p + 4), np.uint8)
    cols = np.zeros(p, np.uint8)
    for a in range(boxes.shape[0]):
        lo, hi = bounds[a], bounds[a + 1]
        if hi <= lo:
            continue
        bx, by, bh, bw = boxes[a, 0], boxes[a, 1], boxes[a, 2], boxes[a, 3]
        d = work[woff[a]:woff[a] + n * bh * bw].reshape((n, bh, bw))
        crop = frames[:, by:by + bh, bx:bx + bw]
        pv = prev[by:by + bh, bx:bx + bw]
        _cut_measure_one(d, crop, pv, has_prev[a], t[lo:hi], x0[lo:hi], y0[lo:hi], mem[lo:hi],
                         True, 0.0, fp[lo:hi], area[lo:hi], motion[lo:hi], own, tmp, cols)


@njit(cache=True, nogil=True, inline="always")
def _sample_arc(f, p, xs, ys, out, bi, ax, ay, inside):  # pragma: no cover - compiled
    """:func:`_sample` of one patch ``f`` (its P x P pixels as one row, C order) at ``xs``,
    ``ys`` (J,) into ``out`` (J,), the same values: first every position's pixel index and
    weights (a branch-free loop the compiler vectorizes; positions outside, NaN included,
    read pixel 0 and give zero), then the reads (``bi``, ``ax``, ``ay``, ``inside``: scratch
    of J values)."""
    top = p - 1
    hi = p - 1.0001
    one = np.float32(1.0)
    zero = np.float32(0.0)
    nj = xs.shape[0]
    for j in range(nj):
        xv = xs[j]
        yv = ys[j]
        ins = (xv >= 0) & (xv <= top) & (yv >= 0) & (yv <= top)
        xc = min(max(xv if ins else 0.0, 0.0), hi)
        yc = min(max(yv if ins else 0.0, 0.0), hi)
        x0 = np.int64(xc)
        y0 = np.int64(yc)
        ax[j] = np.float32(xc - x0)
        ay[j] = np.float32(yc - y0)
        bi[j] = y0 * p + x0
        inside[j] = ins
    for j in range(nj):
        b = bi[j]
        v00 = np.float32(f[b])
        v01 = np.float32(f[b + 1])
        v10 = np.float32(f[b + p])
        v11 = np.float32(f[b + p + 1])
        r = (v00 + (v01 - v00) * ax[j]) * (one - ay[j]) + (v10 + (v11 - v10) * ax[j]) * ay[j]
        out[j] = r if inside[j] else zero


@njit([f"void({t}[:, :, ::1], float64[:, :], float64[:], float64[:, :], float64[:, :, :], "
       "float64[:], float64[:], float64[:], float64[:], float64[:], float64[:], int64, float64, "
       "float64, boolean, float64, float64, float64, boolean, boolean, float32[:], float64[:], "
       "float64[:], float64[:], float64, int64[:])" for t in _PATCH_TYPES],
      cache=True, nogil=True)
def sweep_step(fs, pos, theta, heads, trace, cth, sth, co, so, offs, weight, k, rad, r2, ahead,
               far_at, near_r2, avoid2, smooth, penalty, stop, a_out, v_out, theta0,
               cone, live):  # pragma: no cover
    """One step of ``midline.trace_midlines``' angular sweep for the fish ``live`` (row
    numbers; those whose trace goes on) (the NumPy steps from sampling the arc to the refined
    direction, the same values): fills their new direction ``a_out`` and ridge value ``v_out``
    (M,).

    The arc's directions ``theta + offs`` by rotation: cosine ``cth * co - sth * so``, sine
    ``sth * co + cth * so`` from ``cth``, ``sth`` (M,) of ``theta`` and ``co``, ``so`` (J,) of
    ``offs`` (as ``midline.trace_midlines`` computes them in NumPy); the arc is sampled
    ``rad`` from ``pos`` (and, where ``ahead``, averaged with the samples ``r2`` away); points
    closer to the head than ``far_at`` (> 0: the anterior body) and points within
    ``sqrt(avoid2)`` of an earlier trace point but the last two (those ``near_r2`` of
    ``pos``; ``k`` >= 2; the caller passes its step less the further recent points it
    exempts) are zero; ``smooth``: the [1, 2, 1] / 4 arc smoothing; ``penalty``:
    the arc weighted by ``weight`` (J,) (and the values become float64, as in NumPy);
    directions more than ``cone`` (> 0: the rigid anterior body) from the starting direction
    ``theta0`` (M,) are zero.
    """
    nj = offs.shape[0]
    xs = np.empty(nj, np.float64)
    ys = np.empty(nj, np.float64)
    v = np.empty(nj, np.float32)
    vs = np.empty(nj, np.float32)
    w = np.empty(nj, np.float64)
    half = np.float32(0.5)
    quarter = np.float32(0.25)
    dstep = offs[1] - offs[0]
    nb = k - 1 if k >= 2 else 0
    nx = np.empty(max(nb, 1), np.float64)
    ny = np.empty(max(nb, 1), np.float64)
    x2 = np.empty(nj, np.float64)
    y2 = np.empty(nj, np.float64)
    bi = np.empty(nj, np.int64)
    ax = np.empty(nj, np.float32)
    ay = np.empty(nj, np.float32)
    inside = np.empty(nj, np.bool_)
    p = fs.shape[1]
    for ii in range(live.shape[0]):
        i = live[ii]
        px = pos[i, 0]
        py = pos[i, 1]
        cti = cth[i]
        sti = sth[i]
        for j in range(nj):
            cj = cti * co[j] - sti * so[j]
            sj = sti * co[j] + cti * so[j]
            xs[j] = px + rad * cj
            ys[j] = py + rad * sj
            x2[j] = px + r2 * cj
            y2[j] = py + r2 * sj
        # the arc's samples (and, where ``ahead``, those ``r2`` away, averaged with them)
        fi = fs[i].ravel()
        _sample_arc(fi, p, xs, ys, v, bi, ax, ay, inside)
        if ahead:
            _sample_arc(fi, p, x2, y2, vs, bi, ax, ay, inside)
            for j in range(nj):
                v[j] = half * (v[j] + vs[j])
        if far_at > 0:
            hx = heads[i, 0]
            hy = heads[i, 1]
            for j in range(nj):
                if not (math.hypot(xs[j] - hx, ys[j] - hy) >= far_at):
                    v[j] = np.float32(0.0)
        if cone > 0:
            turned = theta[i] - theta0[i]
            for j in range(nj):
                if not (abs(turned + offs[j]) <= cone):
                    v[j] = np.float32(0.0)
        if nb > 0:
            # the earlier points near enough to matter, then the arc's points too close to any
            nn = 0
            for q in range(nb):
                dx = trace[i, q, 0] - px
                dy = trace[i, q, 1] - py
                if dx * dx + dy * dy <= near_r2:
                    nx[nn] = trace[i, q, 0]
                    ny[nn] = trace[i, q, 1]
                    nn += 1
            if nn > 0:
                for j in range(nj):
                    for q in range(nn):
                        ex = xs[j] - nx[q]
                        ey = ys[j] - ny[q]
                        if not (ex * ex + ey * ey >= avoid2):
                            v[j] = np.float32(0.0)
                            break
        if smooth:
            for j in range(nj):
                vs[j] = v[j]
            for j in range(1, nj - 1):
                v[j] = quarter * vs[j - 1] + half * vs[j] + quarter * vs[j + 1]
        if penalty:
            for j in range(nj):
                w[j] = np.float64(v[j]) * weight[j]
        else:
            for j in range(nj):
                w[j] = np.float64(v[j])
        # the strongest interior peak at or above stop, else the strongest value
        jb = 0
        for j in range(1, nj):
            if w[j] > w[jb]:
                jb = j
        ji = -1
        best = -1.0
        st = np.float64(stop[i])
        for j in range(1, nj - 1):
            if w[j] >= w[j - 1] and w[j] >= w[j + 1] and w[j] >= st:
                if ji < 0 or w[j] > best:
                    ji = j
                    best = w[j]
        if ji >= 0:
            jb = ji
        vmax = w[jb]
        vl = w[max(jb - 1, 0)]
        vr = w[min(jb + 1, nj - 1)]
        if penalty:
            den = vl - 2 * vmax + vr
            frac = 0.0
            if jb > 0 and jb < nj - 1 and den < -1e-6:
                frac = 0.5 * (vl - vr) / den
            frac = min(max(frac, -0.5), 0.5)
        else:  # float32 values: the NumPy steps are in float32
            fl, fm, fr = np.float32(vl), np.float32(vmax), np.float32(vr)
            den32 = fl - np.float32(2) * fm + fr
            frac32 = np.float32(0.0)
            if jb > 0 and jb < nj - 1 and den32 < np.float32(-1e-6):
                frac32 = half * (fl - fr) / den32
            frac = np.float64(min(max(frac32, np.float32(-0.5)), np.float32(0.5)))
        a_out[i] = theta[i] + offs[jb] + frac * dstep
        v_out[i] = vmax



@njit("void(int32[:, :], int64[:], int32[:, :], float64[:, :])", cache=True, nogil=True)
def contour_stats(pts, ends, rect, mom):  # pragma: no cover - compiled; tested against OpenCV
    """Per outline of ``segment.find_blobs`` what its OpenCV calls give, the same values:
    the bounding box ``rect`` (n, 4) x, y, w, h (``cv2.boundingRect``) and ``mom`` (n, 3)
    m00, m10, m01 (``cv2.moments``) and the closed perimeter (``cv2.arcLength(c, True)``).

    ``pts`` (total, 2) the outlines' points one after the other (``np.concatenate`` of
    ``cv2.findContours``' outlines), ``ends`` (n,) where each ends. With integer points the
    moments' sums are exact integers in float64 (OpenCV's Green's-formula sums), scaled as
    OpenCV scales them; the perimeter sums float32 segment lengths in float64, as OpenCV.
    """
    start = 0
    for c in range(ends.shape[0]):
        end = ends[c]
        npt = end - start
        xmin = pts[start, 0]
        xmax = xmin
        ymin = pts[start, 1]
        ymax = ymin
        for i in range(start + 1, end):
            x = pts[i, 0]
            y = pts[i, 1]
            xmin = min(xmin, x)
            xmax = max(xmax, x)
            ymin = min(ymin, y)
            ymax = max(ymax, y)
        rect[c, 0] = xmin
        rect[c, 1] = ymin
        rect[c, 2] = xmax - xmin + 1
        rect[c, 3] = ymax - ymin + 1
        a00 = 0.0
        a10 = 0.0
        a01 = 0.0
        xp = np.float64(pts[end - 1, 0])
        yp = np.float64(pts[end - 1, 1])
        per = 0.0
        for i in range(start, end):
            xi = np.float64(pts[i, 0])
            yi = np.float64(pts[i, 1])
            dxy = xp * yi - xi * yp
            a00 += dxy
            a10 += dxy * (xp + xi)
            a01 += dxy * (yp + yi)
            dx = np.float32(xi - xp)
            dy = np.float32(yi - yp)
            per += np.float64(np.sqrt(dx * dx + dy * dy))
            xp = xi
            yp = yi
        if abs(a00) > 1.1920928955078125e-07:  # FLT_EPSILON
            if a00 > 0:
                mom[c, 0] = a00 * 0.5
                mom[c, 1] = a10 * 0.16666666666666666666666666666667
                mom[c, 2] = a01 * 0.16666666666666666666666666666667
            else:
                mom[c, 0] = a00 * -0.5
                mom[c, 1] = a10 * -0.16666666666666666666666666666667
                mom[c, 2] = a01 * -0.16666666666666666666666666666667
        else:
            mom[c, 0] = 0.0
            mom[c, 1] = 0.0
            mom[c, 2] = 0.0
        mom[c, 3] = per if npt > 1 else 0.0
        start = end


@njit(cache=True, nogil=True, inline="always")
def _fishness_frame(frames, t, box, g, bgs, valids, o, n, dark, out):  # pragma: no cover
    """:func:`fishness_arenas` of one arena (``box`` x0, y0, x1, y1; its background and mask
    from ``o``) and frame ``t`` with the gain ``g``."""
    zero = np.float32(0.0)
    top = np.float32(255.0)
    x0 = box[0]
    y0 = box[1]
    w = box[2] - x0
    h = box[3] - y0
    base = n * o
    for i in range(h):
        row = frames[t, y0 + i, x0 : x0 + w]
        brow = bgs[o + i * w : o + (i + 1) * w]
        vrow = valids[o + i * w : o + (i + 1) * w]
        orow = out[base + (t * h + i) * w : base + (t * h + i + 1) * w]
        if dark:
            for j in range(w):
                sc = min(np.rint(abs(brow[j] * g)), top)
                v = max(sc - np.float32(row[j]), zero)
                orow[j] = np.uint8(v) & vrow[j]
        else:
            for j in range(w):
                sc = min(np.rint(abs(brow[j] * g)), top)
                v = min(max(np.float32(row[j]) - sc, zero), top)
                orow[j] = np.uint8(v) & vrow[j]


@njit("void(uint8[:, :, ::1], int64[:, :], float32[:, :], float32[::1], uint8[::1], int64[:], "
      "boolean, uint8[::1])", cache=True, nogil=True)
def fishness_arenas(frames, boxes, gains, bgs, valids, offs, dark, out):  # pragma: no cover
    """``segment.fishness_chunk`` (without smoothing) of many arenas of a chunk of whole frames
    (N, H, W) in one call, the same values: for arena ``a`` (``boxes`` (A, 4) x0, y0, x1, y1)
    and frame ``t``, the background scaled by ``gains[a, t]`` as ``cv2.convertScaleAbs`` does
    (float32 product, absolute value, rounded half to even, saturated), the saturated
    difference towards the fish (``dark``: background - frame) and the arena's valid mask
    (bitwise and). The backgrounds ``bgs`` (float32) and masks ``valids`` (h, w) of the arenas
    one after the other from ``offs[a]``; the fishness (N, h, w) of arena ``a`` from
    ``N * offs[a]`` in ``out``. Row loops over contiguous rows (vectorized by the compiler)."""
    n = frames.shape[0]
    for a in range(boxes.shape[0]):
        for t in range(n):
            _fishness_frame(frames, t, boxes[a], gains[a, t], bgs, valids, offs[a], n, dark, out)


@njit("void(uint8[:, :, ::1], int64[:, :], int64[::1], float32[::1], int64[::1], boolean[::1], "
      "float32[::1], uint8[::1], int64[:], boolean, float32[:, ::1], uint8[::1])", cache=True, nogil=True)
def gains_fishness_arenas(frames, boxes, gpix, gref, gends, fish, bgs, valids, offs, dark, gains,
                          out):  # pragma: no cover - compiled; tested against NumPy and OpenCV
    """``segment.all_arena_gains`` and :func:`fishness_arenas` of a plate's chunk in one pass
    over each arena and frame, the same values: the arena's brightness gain first (its
    reference pixels, read from the crop that the fishness reads next, so that the frame is
    read from memory once), then, where ``fish[a]``, its fishness with that gain.

    ``gpix`` the reference pixels' flat indices into a frame (H * W), ``gref`` their
    references (>= 1, finite), arena ``a``'s from ``gends[a - 1]`` (0 for the first) to
    ``gends[a]`` (at least one each); ``gains`` (A, N) float32 receives every arena's gains:
    the median of the float32 quotients pixel / reference as ``np.median`` takes it (the
    middle value, or the float32 sum of the two middle ones halved). The other arguments as
    :func:`fishness_arenas`, for all ``A`` arenas (``fish`` false: the gain only)."""
    n = frames.shape[0]
    two = np.float32(2.0)
    kmax = 0
    start = 0
    for a in range(boxes.shape[0]):
        kmax = max(kmax, gends[a] - start)
        start = gends[a]
    buf = np.empty(max(kmax, 1), np.float32)
    flat = frames.reshape(n, frames.shape[1] * frames.shape[2])
    start = 0
    for a in range(boxes.shape[0]):
        k = gends[a] - start
        hi = k // 2
        for t in range(n):
            for j in range(k):
                buf[j] = np.float32(flat[t, gpix[start + j]]) / gref[start + j]
            part = np.partition(buf[:k], hi)
            g = part[hi]
            if k % 2 == 0:
                lo = part[0]  # the value below the middle: the largest of the lower part
                for j in range(1, hi):
                    lo = max(lo, part[j])
                g = (lo + g) / two
            gains[a, t] = g
            if fish[a]:
                _fishness_frame(frames, t, boxes[a], g, bgs, valids, offs[a], n, dark, out)
        start = gends[a]


@njit(["float32(float32[::1], int64, int64)", "float64(float64[::1], int64, int64)"], cache=True,
      nogil=True)
def _pairwise(a, lo, n):  # pragma: no cover - compiled
    """``a[lo:lo + n].sum()`` (``n`` >= 1) as NumPy sums a contiguous float32 or float64 run
    (its pairwise summation: eight running sums over blocks of up to 128 values, halved
    recursively above; the sum of fewer than 8 in order), the same value."""
    if n < 8:
        res = a[lo]  # (NumPy starts from -0.0: -0.0 + x is x)
        for i in range(1, n):
            res += a[lo + i]
        return res
    if n <= 128:
        r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
        r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
        i = 8
        top = n - n % 8
        while i < top:
            j = lo + i
            r0 += a[j]
            r1 += a[j + 1]
            r2 += a[j + 2]
            r3 += a[j + 3]
            r4 += a[j + 4]
            r5 += a[j + 5]
            r6 += a[j + 6]
            r7 += a[j + 7]
            i += 8
        res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
        while i < n:
            res += a[lo + i]
            i += 1
        return res
    n2 = n // 2
    n2 -= n2 % 8
    return _pairwise(a, lo, n2) + _pairwise(a, lo + n2, n - n2)


@njit(cache=True, nogil=True, inline="always")
def _centroid(w, wy, wx, ar, side):  # pragma: no cover - compiled
    """``midline._centroids`` of one weight image ``w`` (side * side, flat float32; ``wy``,
    ``wx`` scratch): the centroid (x, y) as float32 values, as NumPy computes them."""
    for i in range(side):
        for j in range(side):
            v = w[i * side + j]
            wy[i * side + j] = v * ar[i]
            wx[i * side + j] = v * ar[j]
    n = side * side
    s = np.float32(0.0) + _pairwise(w, 0, n)
    if not s > 0:
        s = np.float32(1.0)
    my = (np.float32(0.0) + _pairwise(wy, 0, n)) / s
    mx = (np.float32(0.0) + _pairwise(wx, 0, n)) / s
    return mx, my


@njit("void(uint8[:, :, :], int64, int64[:], int64[:], uint8[:, :, ::1])", cache=True, nogil=True)
def head_windows(f, big, px, py, out):  # pragma: no cover - compiled; tested against NumPy
    """The first step of ``midline.locate_heads``: each patch's strongest pixel (the first
    of equals in row order, as ``argmax``) into ``px``, ``py`` (M,) and the window of side
    ``2 big + 1`` around it into ``out`` (M, S, S), zero outside the patch
    (``gather_patches``)."""
    m, p = f.shape[0], f.shape[1]
    side = out.shape[1]
    for k in range(m):
        best = -1
        bi = 0
        bj = 0
        for i in range(p):
            for j in range(p):
                v = np.int64(f[k, i, j])
                if v > best:
                    best, bi, bj = v, i, j
        px[k] = bj
        py[k] = bi
        for i in range(side):
            yi = bi - big + i
            for j in range(side):
                xj = bj - big + j
                out[k, i, j] = f[k, yi, xj] if 0 <= yi < p and 0 <= xj < p else np.uint8(0)


@njit("void(uint8[:, :, ::1], uint8[:, :, ::1], int64[:], int64[:], int64, int64, float64, float64, "
      "float64, float64, float64[:, :], float64[:], boolean[:])", cache=True, nogil=True)
def eye_heads(win, wmax, px, py, big, r, eye_level, lo2, hi2, ratio, heads, peak, pair):  # pragma: no cover
    """The rest of ``midline.locate_heads`` (but the search for an eye pair elsewhere) for
    every fish, the same values: from the smoothed windows ``win`` (M, S, S) uint8 around each
    patch's strongest pixel (``px``, ``py``; the window's corner at ``px - big``,
    ``py - big``) and their grey dilation ``wmax`` (the local maxima: ``win >= wmax``), the
    head ``heads`` (M, 2) x, y in patch px, the peak ``peak`` (M,) and whether a second eye
    was found ``pair`` (M,). The peak's eye within ``r`` px weighted above ``eye_level`` x the
    peak; a second eye: the strongest local maximum ``lo2``-``hi2`` squared px away, at least
    ``ratio`` x the peak, paler at the midpoint (< 0.85 x its value); then the head is the
    midpoint of the two eyes' centroids. The float32 steps and NumPy's pairwise sums as in
    the NumPy code."""
    m, side = win.shape[0], win.shape[1]
    n = side * side
    ar = np.arange(side).astype(np.float32)
    w = np.empty(n, np.float32)
    w2 = np.empty(n, np.float32)
    wy = np.empty(n, np.float32)
    wx = np.empty(n, np.float32)
    lev = np.float32(eye_level)
    rat = np.float32(ratio)
    f85 = np.float32(0.85)
    zero = np.float32(0.0)
    rr = np.float64(r * r)
    for k in range(m):
        best = -1
        am = 0
        for q in range(n):
            v = np.int64(win[k, q // side, q % side])
            if v > best:
                best, am = v, q
        pk = np.float32(best)
        cy, cx = am // side, am % side
        thr = lev * pk
        for i in range(side):
            for j in range(side):
                dy = np.float64(i) - cy
                dx = np.float64(j) - cx
                d = np.float32(win[k, i, j]) - thr
                w[i * side + j] = (d if d > zero else zero) if dx * dx + dy * dy <= rr else zero
        mx, my = _centroid(w, wy, wx, ar, side)
        hx = np.float64(px[k] - big) + np.float64(mx)
        hy = np.float64(py[k] - big) + np.float64(my)
        # the second eye: the strongest candidate (first of equals) or none
        lim = rat * pk
        best2 = zero
        j2 = -1
        for i in range(side):
            for j in range(side):
                v = np.float32(win[k, i, j])
                if v > best2 and win[k, i, j] >= wmax[k, i, j] and v >= lim:
                    dy = np.float64(i) - cy
                    dx = np.float64(j) - cx
                    d2 = dx * dx + dy * dy
                    if d2 >= lo2 and d2 <= hi2:
                        yi = int(min(max(np.rint(0.5 * (np.float64(i) + cy)), 0.0), side - 1.0))
                        xj = int(min(max(np.rint(0.5 * (np.float64(j) + cx)), 0.0), side - 1.0))
                        if np.float32(win[k, yi, xj]) < f85 * v:
                            best2 = v
                            j2 = i * side + j
        pair[k] = j2 >= 0
        if j2 >= 0:
            ey, ex = j2 // side, j2 % side
            sep = math.hypot(np.float64(ex - cx), np.float64(ey - cy))
            re = max(1.0, 0.5 * sep)
            re2 = re * re
            thr2 = lev * best2
            for i in range(side):
                for j in range(side):
                    v = np.float32(win[k, i, j])
                    dy = np.float64(i) - cy
                    dx = np.float64(j) - cx
                    d = v - thr
                    w[i * side + j] = (d if d > zero else zero) if dx * dx + dy * dy <= re2 else zero
                    dy = np.float64(i) - ey
                    dx = np.float64(j) - ex
                    d = v - thr2
                    w2[i * side + j] = (d if d > zero else zero) if dx * dx + dy * dy <= re2 else zero
            ax, ay = _centroid(w, wy, wx, ar, side)
            bx, by = _centroid(w2, wy, wx, ar, side)
            hx = np.float64(px[k] - big) + 0.5 * (np.float64(ax) + np.float64(bx))
            hy = np.float64(py[k] - big) + 0.5 * (np.float64(ay) + np.float64(by))
        heads[k, 0] = hx
        heads[k, 1] = hy
        peak[k] = np.float64(pk)


@njit([f"void({t}[:, :, ::1], float64[:, :], float64[:], float64[:], float64[:], float64[:], "
       "float64[:], float64[:], float32[:], boolean[:], float64[:], float64[:], float64, "
       "float32[:, :, ::1], float64[:], float64[:], float64[:, ::1], float64[:])" for t in _PATCH_TYPES],
      cache=True, nogil=True)
def head_profile(fs, rough, ux, uy, nx, ny, t, lat, fl, t_near, wl_pos, wl_neg, g, b_out, ox, oy,
                 prof, t_front):  # pragma: no cover - compiled; tested against NumPy
    """The first steps of ``midline.refine_heads`` for every fish, the same values: the
    smoothed fishness ``fs`` (less ``fl``) on the body-aligned grid (axial ``t``, lateral
    ``lat``, (nt, nl)) around ``rough`` along ``ux``, ``uy`` / ``nx``, ``ny``, re-centred on the
    body's axis (the lateral centroid of the squared fishness over the rows ``t_near``; the
    grid's origin into ``ox``, ``oy``) into ``b_out`` (M, nt, nl); the head profile ``prof``
    (M, nt) before the weighting behind the snout (lateral weights ``wl_pos``, ``wl_neg`` per
    side) and the snout's axial position ``t_front`` (M,)."""
    m = fs.shape[0]
    nt, nl = t.shape[0], lat.shape[0]
    n = nt * nl
    scratch = np.empty((2, n), np.float32)  # the grid, its squares over the rows near the head
    b, w2 = scratch[0], scratch[1]
    w2l, rw, lmax = np.empty(n), np.empty(nl), np.empty(nt, np.float32)
    zero, one = np.float32(0.0), np.float32(1.0)
    p = fs.shape[1]
    xs, ys, vals = np.empty(nl), np.empty(nl), np.empty(nl, np.float32)
    bi, inside = np.empty(nl, np.int64), np.empty(nl, np.bool_)
    ax, ay = np.empty(nl, np.float32), np.empty(nl, np.float32)
    for k in range(m):
        x0, y0 = rough[k, 0], rough[k, 1]
        cu, su, cn, sn = ux[k], uy[k], nx[k], ny[k]
        fk = fs[k].ravel()
        for i in range(nt):
            for j in range(nl):
                xs[j] = x0 + t[i] * cu + lat[j] * cn
                ys[j] = y0 + t[i] * su + lat[j] * sn
            _sample_arc(fk, p, xs, ys, vals, bi, ax, ay, inside)  # (the grid's row i)
            for j in range(nl):
                v = vals[j] - fl[k]
                v = v if v > zero else zero
                b[i * nl + j] = v
                q = v * v if t_near[i] else zero
                w2[i * nl + j] = q
                w2l[i * nl + j] = np.float64(q) * lat[j]
        s2 = np.float32(0.0) + _pairwise(w2, 0, n)
        lc = 0.0
        if s2 > zero:
            lc = (0.0 + _pairwise(w2l, 0, n)) / np.float64(s2)
        ox[k] = x0 + lc * cn
        oy[k] = y0 + lc * sn
        # shift the columns by lc (linear interpolation, zero outside)
        for j in range(nl):
            pos = (lat[j] + lc - lat[0]) / g
            fpos = math.floor(pos)
            c0 = np.int64(fpos)
            fc = np.float32(pos - np.float64(c0))
            w0 = (one - fc) if 0 <= c0 < nl else zero
            w1 = fc if 0 <= c0 + 1 < nl else zero
            i0 = min(max(c0, 0), nl - 1)
            i1 = min(max(c0 + 1, 0), nl - 1)
            for i in range(nt):
                b_out[k, i, j] = b[i * nl + i0] * w0 + b[i * nl + i1] * w1
        for i in range(nt):
            lm = b_out[k, i, 0]
            for j in range(nl):
                rw[j] = np.float64(b_out[k, i, j]) * wl_pos[j]
                lm = max(lm, b_out[k, i, j])
            sp = 0.0 + _pairwise(rw, 0, nl)
            for j in range(nl):
                rw[j] = np.float64(b_out[k, i, j]) * wl_neg[j]
            sn_ = 0.0 + _pairwise(rw, 0, nl)
            prof[k, i] = 2.0 * min(sp, sn_)
            lmax[i] = lm
        top = 0
        for i in range(1, nt):
            if lmax[i] > lmax[top]:
                top = i
        lim = np.float32(0.3) * lmax[top]
        last = -1
        for i in range(top):
            if lmax[i] < lim:
                last = i
        t_front[k] = t[min(last + 1, nt - 1)]


@njit("void(float32[:, :, ::1], float64[:, ::1], float64[:, ::1], float64[:], float64[:], float64, "
      "float64[:], float64[:], float64[:], float64[:], float64[:], float64[:], float64[:], "
      "float64[:, :], float64, float64, float64, boolean, boolean[:], float64[:, :], float64[:])",
      cache=True, nogil=True)
def head_point(b, prof_u, decay, t, lat, g, t_front, ox, oy, ux, uy, nx, ny, rough, length,
               behind_snout, feature_reach, decide, featureless, out,
               reach):  # pragma: no cover - compiled; tested against NumPy
    """The rest of ``midline.refine_heads`` for every fish, the same values: from the
    re-centred grid ``b`` (M, nt, nl), the profile ``prof_u`` (M, nt), its weights ``decay``
    behind the snout and the grid's origin ``ox``, ``oy`` (:func:`head_profile`), the head
    points ``out`` (M, 2) and ``reach`` (M,), how far (lengths) behind the snout the widest
    part lies. The head of a ``featureless`` fish (where ``decide``: reach > ``feature_reach``,
    written into ``featureless``) is ``behind_snout`` px behind the snout."""
    m = b.shape[0]
    nt, nl = t.shape[0], lat.shape[0]
    row = np.empty(nl, np.float64)
    rl = np.empty(nl, np.float64)
    for k in range(m):
        j = 0
        ju = 0
        pbest = -np.inf
        found = False
        for i in range(nt):
            pv = prof_u[k, i] * decay[k, i]
            if i == 0 or pv > pbest:
                pbest = pv
                j = i
            if prof_u[k, i] > prof_u[k, ju]:
                ju = i
        found = pbest > 0
        pm = prof_u[k, j] * decay[k, j]
        jl = max(j - 1, 0)
        jr = min(j + 1, nt - 1)
        pl = prof_u[k, jl] * decay[k, jl]
        pr = prof_u[k, jr] * decay[k, jr]
        den = pl - 2 * pm + pr
        frac = 0.0
        if j > 0 and j < nt - 1 and den < -1e-9:
            frac = 0.5 * (pl - pr) / den
        frac = min(max(frac, -0.5), 0.5)
        ts = t[j] + frac * g
        rw = (t[ju] - t_front[k]) / length
        reach[k] = rw
        if decide:
            featureless[k] = rw > feature_reach
        if featureless[k]:
            ts = t_front[k] + behind_snout
        j2 = np.int64(math.floor((ts - t[0]) / g))
        j2 = min(max(j2, 0), nt - 2)
        a = min(max((ts - t[j2]) / g, 0.0), 1.0)
        rmax = -np.inf
        for q in range(nl):
            v = np.float64(b[k, j2, q]) * (1 - a) + np.float64(b[k, j2 + 1, q]) * a
            row[q] = v
            rmax = max(rmax, v)
        lim = 0.3 * rmax
        for q in range(nl):
            if not row[q] >= lim:
                row[q] = 0.0
            rl[q] = row[q] * lat[q]
        sr = 0.0 + _pairwise(row, 0, nl)
        ls = 0.0
        if sr > 0:
            ls = (0.0 + _pairwise(rl, 0, nl)) / sr
        if found:
            out[k, 0] = ox[k] + ts * ux[k] + ls * nx[k]
            out[k, 1] = oy[k] + ts * uy[k] + ls * ny[k]
        else:
            out[k, 0] = rough[k, 0]
            out[k, 1] = rough[k, 1]


@njit([f"void({t}[:, :, ::1], float64[:, :], float64[:, :], float64[:, :], float32[:], "
       "float32[:, ::1])" for t in _PATCH_TYPES], cache=True, nogil=True)
def body_rays(fs, heads, cx, cy, fl, v):  # pragma: no cover - compiled; tested against NumPy
    """The rays of ``midline.body_directions`` for every fish, the same values: ``v`` (M, D)
    the mean over each ray's points (offsets ``cx``, ``cy`` (D, R) from ``heads``) of the
    fishness ``fs`` less ``fl`` (at least 0), smoothed over the directions ([1, 2, 1] / 4,
    round the circle), in float32 as NumPy computes it."""
    m = fs.shape[0]
    nd, nr = cx.shape[0], cx.shape[1]
    raw = np.empty(nd, np.float32)
    zero = np.float32(0.0)
    quarter = np.float32(0.25)
    half = np.float32(0.5)
    # every ray point of a fish sampled at once (:func:`_sample_arc`), then summed ray by ray
    n = nd * nr
    p = fs.shape[1]
    xs, ys, vals = np.empty(n), np.empty(n), np.empty(n, np.float32)
    bi, inside = np.empty(n, np.int64), np.empty(n, np.bool_)
    ax, ay = np.empty(n, np.float32), np.empty(n, np.float32)
    for k in range(m):
        hx, hy = heads[k, 0], heads[k, 1]
        for d in range(nd):
            for q in range(nr):
                xs[d * nr + q] = hx + cx[d, q]
                ys[d * nr + q] = hy + cy[d, q]
        _sample_arc(fs[k].ravel(), p, xs, ys, vals, bi, ax, ay, inside)
        for d in range(nd):
            acc = np.float32(-0.0)
            for q in range(nr):
                x = vals[d * nr + q] - fl[k]
                acc += x if x > zero else zero
            raw[d] = np.float32(np.float64(acc) / np.float64(nr))
        for d in range(nd):
            v[k, d] = quarter * raw[d - 1] + half * raw[d] + quarter * raw[(d + 1) % nd]


@njit([f"void({t}[:, :, :], float64[:, ::1], float64[:], float64[:], float64, float64, int64, "
       "float64[:], float64[:, :, ::1], float32[:, ::1], float32[:, ::1], int64[:])"
       for t in _PATCH_TYPES], cache=True, nogil=True)
def trace_advance(fs, pos, ca, sa, rad, lat_d, k, vmax, trace, vals, beside,
                  live):  # pragma: no cover
    """The end of step ``k`` of ``midline.trace_midlines`` for the fish ``live`` (row
    numbers), the same values: each position ``pos`` (M, 2) moves ``rad`` along the new
    direction (cosine ``ca``, sine ``sa``, (M,)) and is written into ``trace[:, k + 1]``, the
    ridge value ``vmax`` into ``vals[:, k]`` and the stronger fishness ``lat_d`` either side of
    the new point into ``beside[:, k]``."""
    for ii in range(live.shape[0]):
        i = live[ii]
        px = pos[i, 0] + rad * ca[i]
        py = pos[i, 1] + rad * sa[i]
        pos[i, 0] = px
        pos[i, 1] = py
        trace[i, k + 1, 0] = px
        trace[i, k + 1, 1] = py
        vals[i, k] = np.float32(vmax[i])
        nx = -sa[i] * lat_d
        ny = ca[i] * lat_d
        beside[i, k] = max(_sample(fs, i, px + nx, py + ny), _sample(fs, i, px - nx, py - ny))
