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

__all__ = [
    "split_indices", "permutation_p", "sign_flips", "weighted_split_stats", "shift_inversion",
    "block_labels", "block_contrast", "linear_inversion",
]

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


# --------------------------------------------------------------------------------------------
# blocks (stratified permutation) and statistics linear in the values


def block_labels(
    blocks: np.ndarray, in_first: np.ndarray, n_permutations: int, rng: np.random.Generator
) -> tuple[np.ndarray, bool]:
    """First-group labels of every relabelling *within blocks*.

    Each block keeps its number of first-group units; units never move between blocks.
    Returns ``(labels, exact)``: ``labels`` is ``(k, n_units)`` bool, row 0 the observed
    labels; all ``prod_b C(n_b, n1_b)`` relabellings when that is at most
    ``n_permutations`` (``exact`` True), else ``n_permutations`` random ones after the
    observed row (the usual ``+ 1`` convention of :func:`permutation_p`).
    """
    blocks = np.asarray(blocks)
    g = np.asarray(in_first, bool)
    n = len(g)
    codes, uniq = pd_factorize(blocks)
    members = [np.flatnonzero(codes == b) for b in range(len(uniq))]
    sizes = [(len(m), int(g[m].sum())) for m in members]
    total = 1
    for nb, n1 in sizes:
        total *= math.comb(nb, n1)
        if total > n_permutations:
            break
    if total <= n_permutations:
        per_block = [list(itertools.combinations(range(nb), n1)) for nb, n1 in sizes]
        labels = np.zeros((total, n), bool)
        for r, choice in enumerate(itertools.product(*per_block)):
            for m, pick in zip(members, choice, strict=True):
                labels[r, m[list(pick)]] = True
        # the observed labelling first
        obs = np.flatnonzero((labels == g).all(axis=1))
        order = np.r_[obs, np.setdiff1d(np.arange(total), obs)]
        return labels[order], True
    labels = np.zeros((n_permutations + 1, n), bool)
    labels[0] = g
    for m, (nb, n1) in zip(members, sizes, strict=True):
        if n1 == 0:
            continue
        pick = np.argsort(rng.random((n_permutations, nb)), axis=1)[:, :n1]
        rows = np.repeat(np.arange(1, n_permutations + 1), n1)
        labels[rows, m[pick.ravel()]] = True
    return labels, False


def pd_factorize(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes of any labels (strings, numbers, mixed) and the unique labels."""
    text = np.asarray([str(v) for v in np.asarray(values, dtype=object)])
    uniq, codes = np.unique(text, return_inverse=True)
    return codes, uniq


def block_contrast(labels: np.ndarray, weights: np.ndarray, blocks: np.ndarray) -> np.ndarray:
    """Coefficients of the block-adjusted difference for every relabelling.

    For labels ``L`` (``(k, n)``), unit weights ``w`` and blocks ``b``: in each block, the
    weighted mean of its first-group units minus that of its second-group units, combined
    over blocks with weights ``W1_b W0_b / (W1_b + W0_b)`` (``W`` = summed unit weights of each
    side; blocks holding one side only get weight 0). Returns ``C`` (``(k, n)``) with the
    statistic of relabelling ``r`` equal to ``C[r] @ values``.
    """
    lab = np.asarray(labels, bool)
    w = np.asarray(weights, float)
    codes, uniq = pd_factorize(blocks)
    onehot = np.zeros((len(w), len(uniq)))
    onehot[np.arange(len(w)), codes] = 1.0
    w1 = (lab * w) @ onehot  # (k, B)
    w0 = w @ onehot - w1
    with np.errstate(invalid="ignore", divide="ignore"):
        wb = np.where((w1 > 0) & (w0 > 0), w1 * w0 / (w1 + w0), 0.0)
        tot = wb.sum(axis=1, keepdims=True)
        a1 = np.where(w1 > 0, wb / np.where(w1 > 0, w1, 1.0), 0.0) / np.where(tot > 0, tot, 1.0)
        a0 = np.where(w0 > 0, wb / np.where(w0 > 0, w0, 1.0), 0.0) / np.where(tot > 0, tot, 1.0)
    c = np.where(lab, a1[:, codes], -a0[:, codes]) * w
    c[(tot[:, 0] <= 0)] = np.nan
    return c


def linear_inversion(
    coef: np.ndarray, values: np.ndarray, shift: np.ndarray, *, exact: bool, alpha: float,
    tol: float,
) -> tuple[float, float, float, float]:
    """p-value and inverted interval of a statistic linear in the values.

    ``coef`` (``(k, n)``, row 0 the observed relabelling) gives each relabelling's statistic
    ``coef @ values``; under the null hypothesis "the effect is ``delta``", the values are
    ``values - delta * shift`` (``shift``: the observed design, e.g. the group indicator or
    the doses), so every statistic is linear in ``delta`` and :func:`shift_inversion` gives
    the p-value and the interval of the same test. Returns ``(estimate, p, lo, hi)``.
    """
    c = np.asarray(coef, float)
    stat = c @ np.asarray(values, float)
    slope = c @ np.asarray(shift, float)
    norm = slope[0]
    if not np.isfinite(norm) or norm <= 0:
        return float("nan"), float("nan"), float("nan"), float("nan")
    stat, slope = stat / norm, slope / norm
    observed = float(stat[0])
    null_stat, null_slope = (stat, slope) if exact else (stat[1:], slope[1:])
    p, lo, hi = shift_inversion(null_stat, null_slope, observed, exact=exact, alpha=alpha,
                                tol=tol)
    return observed, p, lo, hi
