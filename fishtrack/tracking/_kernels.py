"""Compiled (numba) kernels for the tracker's hottest per-fish loops.

Each kernel computes exactly what a NumPy reference elsewhere in :mod:`fishtrack.tracking`
computes, with the same floating-point operations in the same order and precision (no
``fastmath``), so its results are bit-identical; ``tests/test_tracking_kernels.py`` checks
that against the reference. A kernel pays off where the NumPy version makes many temporary
arrays per sample (bilinear sampling: ~15 whole-array operations for four reads and a few
multiplications per sample).

The kernels are compiled on first use and cached on disk (numba's ``cache=True``: next to
this file, or in the user's cache folder where that is not writable), so a process pays only
numba's import (~0.3-0.5 s) and the cache load when it first tracks. They release the GIL
(``nogil``), so the tracker's measuring threads run them side by side.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["bilinear2d"]


@njit(cache=True, nogil=True)
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
