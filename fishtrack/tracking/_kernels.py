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
(``nogil``), so the tracker's measuring threads run them side by side.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["bilinear2d"]


#: one compiled signature per kernel (any memory layout), so that a first run compiles each
#: kernel once, whatever views it is given
_A3U8 = "uint8[:, :, :]"


@njit("float32[:, :](float32[:, :, :], float64[:, :], float64[:, :])", cache=True, nogil=True)
def bilinear2d(f, x, y):  # pragma: no cover - compiled; tested against the NumPy reference
    """Sample patches ``f`` (M, P, P) at positions ``x``, ``y`` (M, K) float64; zero outside
    ``[0, P-1]``; float32 (M, K). The same values as ``midline._bilinear_np``."""
    m, p = f.shape[0], f.shape[1]
    k = x.shape[1]
    out = np.empty((m, k), np.float32)
    hi = p - 1.0001
    top = p - 1
    one = np.float32(1.0)
    for i in range(m):
        for j in range(k):
            xv = x[i, j]
            yv = y[i, j]
            if not (xv >= 0 and xv <= top and yv >= 0 and yv <= top):
                out[i, j] = 0.0
                continue
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
            out[i, j] = (v00 + (v01 - v00) * ax) * (one - ay) + (v10 + (v11 - v10) * ax) * ay
    return out


@njit(f"void({_A3U8}, {_A3U8}, uint8[:, :], boolean, int64[:], int64[:], int64[:], {_A3U8}, "
      f"boolean, float64, {_A3U8}, float32[:], float32[:])", cache=True, nogil=True)
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
    m, p = fp.shape[0], fp.shape[1]
    h, w = d.shape[1], d.shape[2]
    own = np.zeros((p, p), np.uint8)
    tmp = np.zeros((p, p), np.uint8)
    for k in range(m):
        tk, xk, yk = t[k], x0[k], y0[k]
        ya, yb = min(max(yk, 0), h), min(max(yk + p, 0), h)
        xa, xb = min(max(xk, 0), w), min(max(xk + p, 0), w)
        if yb <= ya or xb <= xa:
            area[k] = 0.0
            continue
        ia, ib, ja, jb = ya - yk, yb - yk, xa - xk, xb - xk
        own[:, :] = 0
        n_own = 0
        imin, imax, jmin, jmax = p, -1, p, -1
        for i in range(ia, ib):
            for j in range(ja, jb):
                v = d[tk, yk + i, xk + j]
                fp[k, i, j] = v
                if label:
                    o = mem[k, i, j] == 1
                else:
                    o = v > own_threshold
                if o:
                    own[i, j] = 1
                    n_own += 1
                    imin, imax = min(imin, i), max(imax, i)
                    jmin, jmax = min(jmin, j), max(jmax, j)
        area[k] = n_own
        if n_own == 0 or not (tk > 0 or has_prev):
            continue
        # dilation by a 5x5 square (zero outside the patch), on the fish's bounding box
        # grown by 2 px: rows (tmp), then columns
        c0, c1 = max(jmin - 2, 0), min(jmax + 2, p - 1)
        for i in range(imin, imax + 1):
            for j in range(c0, c1 + 1):
                mx = 0
                for q in range(max(j - 2, jmin), min(j + 2, jmax) + 1):
                    if own[i, q]:
                        mx = 1
                        break
                tmp[i, j] = mx
        nz = 0
        tot = 0
        for i in range(max(imin - 2, ia), min(imax + 2, ib - 1) + 1):
            for j in range(max(c0, ja), min(c1, jb - 1) + 1):
                hit = False
                for q in range(max(i - 2, imin), min(i + 2, imax) + 1):
                    if tmp[q, j]:
                        hit = True
                        break
                if not hit:
                    continue
                nz += 1
                a = np.int64(crop[tk, yk + i, xk + j])
                b = np.int64(crop[tk - 1, yk + i, xk + j]) if tk > 0 else np.int64(prev[yk + i, xk + j])
                tot += a - b if a >= b else b - a
        if nz > 0:
            motion[k] = tot * (1.0 / nz)
