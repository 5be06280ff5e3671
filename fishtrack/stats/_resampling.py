"""Two-sample permutation tests with a vectorised null distribution.

Same definition and p-value convention as ``scipy.stats.permutation_test`` with
``permutation_type="independent"`` (checked in ``tests/test_stats_compare.py``):

* exact enumeration of every split of the pooled units into the two group sizes when there
  are at most ``n_permutations`` distinct splits, else ``n_permutations`` random splits;
* one-sided p = (#{null >= observed} + a) / (n + a) with ``a`` = 0 (exact) or 1 (random),
  comparisons with a relative tolerance of 1e-14 for ties; two-sided p = min(1, 2 x the
  smaller one-sided p).

Paired designs use sign flips of per-fish differences (``permutation_type="samples"`` in
scipy's terms). :func:`shift_inversion` turns the null distribution of a difference of
(weighted) means into the p-value *and* the confidence interval that inverts the same test,
so the two cannot disagree.

scipy draws random permutations one at a time in a Python generator (~30 microseconds each:
0.3 s per test at 10 000 permutations); here they are drawn as one ``(n, n_units)`` matrix,
which makes a full experiment's table of tests (hundreds of rows) take seconds.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Literal

import numpy as np

__all__ = ["split_indices", "permutation_p", "sign_flips", "weighted_split_stats", "shift_inversion"]

_BATCH_BYTES = 64 * 2**20


def split_indices(
    n_total: int, n_first: int, n_permutations: int, rng: np.random.Generator
) -> tuple[np.ndarray, bool]:
    """Index sets of the first group for every split of ``n_total`` units.

    Returns ``(idx, exact)``: ``idx`` is ``(n_splits, n_first)``; all ``C(n_total, n_first)``
    splits when that is at most ``n_permutations`` (``exact`` True), else
    ``n_permutations`` uniformly random splits.
    """
    n_max = math.comb(n_total, n_first)
    if n_max <= n_permutations:
        flat = np.fromiter(
            itertools.chain.from_iterable(itertools.combinations(range(n_total), n_first)),
            dtype=np.int64,
            count=n_max * n_first,
        )
        return flat.reshape(n_max, n_first), True
    rows = max(1, _BATCH_BYTES // (8 * max(n_total, 1)))
    parts = []
    for start in range(0, n_permutations, rows):
        b = min(rows, n_permutations - start)
        parts.append(np.argsort(rng.random((b, n_total)), axis=1)[:, :n_first])
    return np.concatenate(parts), False


def permutation_p(
    statistic: Callable[[np.ndarray], np.ndarray],
    n_first: int,
    n_second: int,
    *,
    n_permutations: int,
    rng: np.random.Generator,
    alternative: Literal["two-sided", "greater"] = "two-sided",
) -> tuple[float, float, bool]:
    """Permutation test of a statistic of a split of pooled units into two groups.

    Parameters
    ----------
    statistic
        Maps a ``(k, n_first)`` matrix of first-group unit indices (pooled order: the first
        ``n_first`` units are the observed first group) to ``k`` statistic values.
    n_first, n_second
        Group sizes (units: fish).
    n_permutations, rng
        Random splits drawn when exact enumeration is too large.
    alternative
        ``two-sided`` or ``greater``.

    Returns
    -------
    (observed, p_value, exact)
    """
    observed = float(statistic(np.arange(n_first)[None, :])[0])
    if not np.isfinite(observed):
        return observed, float("nan"), False
    idx, exact = split_indices(n_first + n_second, n_first, n_permutations, rng)
    null = np.asarray(statistic(idx), dtype=float)
    adj = 0 if exact else 1
    n = len(null) + adj
    gamma = abs(1e-14 * observed)
    p_greater = (np.count_nonzero(null >= observed - gamma) + adj) / n
    if alternative == "greater":
        return observed, float(p_greater), exact
    p_less = (np.count_nonzero(null <= observed + gamma) + adj) / n
    return observed, float(min(1.0, 2 * min(p_less, p_greater))), exact


def sign_flips(
    n_units: int, n_permutations: int, rng: np.random.Generator
) -> tuple[np.ndarray, bool]:
    """Sign vectors for a paired (sign-flip) permutation test.

    Returns ``(signs, exact)``: ``signs`` is ``(n, n_units)`` of +1 / -1; all ``2 ** n_units``
    vectors when that is at most ``n_permutations`` (``exact`` True, the observed all-+1
    vector included), else ``n_permutations`` random ones.
    """
    if n_units < 31 and 2**n_units <= n_permutations:
        codes = np.arange(2**n_units, dtype=np.int64)[:, None]
        bits = (codes >> np.arange(n_units, dtype=np.int64)[None, :]) & 1
        return 1.0 - 2.0 * bits, True
    return np.where(rng.random((n_permutations, n_units)) < 0.5, -1.0, 1.0), False


def weighted_split_stats(
    values: np.ndarray, weights: np.ndarray, idx: np.ndarray, n_first: int
) -> tuple[np.ndarray, np.ndarray]:
    """Difference of weighted means for every split, and its slope under a shift.

    ``values`` / ``weights`` are per unit, the first ``n_first`` units being the observed first
    group; ``idx`` (``(k, m)``) lists the units of the first group of each split. Returns
    ``(stat, slope)``: ``stat`` = weighted mean of the split's first group minus that of its
    second; ``slope`` = how much ``stat`` drops when every unit of the *observed* first group
    is shifted by -1 (1 for the observed split, < 1 for every other one).
    """
    v = np.asarray(values, float)
    w = np.asarray(weights, float)
    w_tot, wv_tot = w.sum(), (w * v).sum()
    w1 = w[: n_first].sum()
    sw = w[idx].sum(axis=1)
    swv = (w * v)[idx].sum(axis=1)
    own = np.where(idx < n_first, w[idx], 0.0).sum(axis=1)  # observed-first-group weight
    with np.errstate(invalid="ignore", divide="ignore"):
        stat = swv / sw - (wv_tot - swv) / (w_tot - sw)
        slope = own / sw - (w1 - own) / (w_tot - sw)
    return stat, slope


def shift_inversion(
    null_stat: np.ndarray,
    null_slope: np.ndarray,
    observed: float,
    *,
    exact: bool,
    alpha: float,
    tol: float,
) -> tuple[float, float, float]:
    """Two-sided permutation p-value and the confidence interval that inverts the same test.

    Under a shift ``delta`` of the observed first group (the null hypothesis "the difference
    is ``delta``"), every relabelling's statistic is ``null_stat - delta * null_slope`` and the
    observed one ``observed - delta``. So each relabelling compares as ``>=`` the observed one
    exactly for ``delta >= c`` and as ``<=`` for ``delta <= c``, with
    ``c = (observed - null_stat) / (1 - null_slope)``. The p-value at ``delta`` uses the same
    convention as :func:`permutation_p`; the interval is every ``delta`` with p > ``alpha``
    (closed ends; infinite when no shift can be rejected, e.g. 3 vs 3 fish). It excludes 0
    exactly when the p-value at 0 (returned) is <= ``alpha``. Relabellings whose statistic
    is within ``tol`` of the observed one count as ties.

    Returns
    -------
    (p_value, ci_low, ci_high)
    """
    d = np.asarray(null_stat, float) - observed
    a = np.asarray(null_slope, float)
    ok = np.isfinite(d) & np.isfinite(a)
    d, a = d[ok], a[ok]
    d = np.where(np.abs(d) <= tol, 0.0, d)
    same = a >= 1 - 1e-12  # the observed split (or its duplicates): always a tie
    m = int(np.count_nonzero(same))
    c = np.sort(-d[~same] / (1 - a[~same]))
    adj = 0 if exact else 1
    n = len(d) + adj
    ge0 = m + np.count_nonzero(c <= 0)
    le0 = m + np.count_nonzero(c >= 0)
    p = float(min(1.0, 2 * min(ge0 + adj, le0 + adj) / n))
    # p(delta) > alpha  <=>  #{c <= delta} >= j  and  #{c >= delta} >= j
    j = int(np.floor(alpha * n / 2 - adj - m)) + 1
    if j <= 0:
        return p, -np.inf, np.inf
    if j > len(c):
        return p, float("nan"), float("nan")
    return p, float(c[j - 1]) + 0.0, float(c[len(c) - j]) + 0.0  # + 0.0: no -0.0
