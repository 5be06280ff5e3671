"""Robust noise estimates shared by the image stages (arenas, background)."""

from __future__ import annotations

import numpy as np

__all__ = ["MAD_TO_SD", "robust_sigma"]

MAD_TO_SD = 1.4826
"""A normal distribution's standard deviation is 1.4826 x its median absolute deviation."""


def robust_sigma(values: np.ndarray, *, max_n: int | None = None, empty: float = float("nan")) -> float:
    """1.4826 x the median absolute deviation of the finite ``values`` (any shape, flattened).

    ``max_n``: arrays larger than this are thinned to every ``size // (max_n // 2)``-th value
    first (a whole image's noise does not need every pixel). ``empty``: the result when no
    finite value is left. The dtype is kept (pass float32 to compute in float32).
    """
    a = np.asarray(values).ravel()
    if max_n is not None and a.size > max_n:
        a = a[:: a.size // (max_n // 2)]
    a = a[np.isfinite(a)]
    if a.size == 0:
        return empty
    med = np.median(a)
    return float(MAD_TO_SD * np.median(np.abs(a - med)))
