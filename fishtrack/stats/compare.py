"""Group comparison of per-fish metrics: each group against the reference group.

The fish is the unit of analysis. For every phase (and pooled phase kind) and every group
other than ``stats.reference_group``, each metric gets one row (see ``docs/statistics.md``):

* one value per fish (the usual case): difference of means, a two-sided permutation p-value
  (exact enumeration when there are at most ``stats.n_permutations`` distinct relabellings)
  and the confidence interval that inverts the same test (``stats.ci_method: permutation``;
  bootstrap intervals on request), Hedges' g. ``test`` = ``permutation`` or
  ``permutation-exact``.
* the latency to the first give-up (censored): Kaplan-Meier restricted mean survival time
  (RMST, common horizon per phase) per group, their difference with a fish-level bootstrap
  interval, the log-rank p-value (log-rank statistic, p from relabelling fish) and the RMST
  ratio as effect size. ``test`` = ``log-rank``.
* several rows per fish in a phase (repeated trials): fish-level permutation of the
  difference of weighted fish means (weights from the variance components of a one-way
  random-effects model fitted without the group labels); interval by inverting that test.
* within-fish designs (a ``condition`` column): each condition against
  ``stats.reference_condition`` fish by fish (sign-flip permutation of the per-fish
  differences; paired log-rank by swapping conditions within fish), separately in each group.

Every row has a ``role``: the pre-specified primary endpoint (``stats.primary``), the other
metrics in the primary phase (secondary), everything else (exploratory). p-values are
Holm-adjusted within the row's ``family``: the primary rows (across groups), the secondary
rows (across metrics and groups), and each exploratory phase. Confidence intervals are not
adjusted for multiplicity. Degenerate cases give NaN statistics and say why in ``test``.
Every row draws its random numbers from a generator seeded with ``(stats.seed, phase, group,
metric)``, so results do not depend on the table order.
"""

from __future__ import annotations

import math
import warnings
import zlib
from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.stats

from fishtrack.config import StatsConfig
from fishtrack.errors import ConfigError, FishtrackError
from fishtrack.stats._resampling import (
    block_contrast,
    block_labels,
    linear_inversion,
    shift_inversion,
    sign_flips,
    split_indices,
    weighted_split_stats,
)
from fishtrack.stats.metrics import METRIC_SPECS, METRICS
from fishtrack.stats.survival import (
    _check_survival,
    excluded_rows,
    logrank_permutation_p,
    logrank_signflip_p,
    survival_table,
    weighted_rmst,
)

__all__ = [
    "RESULT_COLUMNS",
    "cluster_weights",
    "LATENCY",
    "compare_groups",
    "compare_two",
    "compare_paired",
    "compare_repeated",
    "compare_latency",
    "compare_mixed",
    "hedges_g",
    "holm",
    "primary_phase",
    "block_columns",
    "block_labels_of",
]

RESULT_COLUMNS = (
    "metric",
    "phase",
    "group",
    "reference",
    "n",
    "n_reference",
    "mean",
    "mean_reference",
    "diff",
    "ci_low",
    "ci_high",
    "p_value",
    "p_adjusted",
    "effect_size",
    "effect_size_type",
    "test",
    "ci_method",
    "role",
    "family",
    "design",
    "stratum",
)

LATENCY = "latency_to_first_passive_s"
_SURV_BASE = ("fish_id", "group", "phase", "exclude", "condition", "_block")


# --------------------------------------------------------------------------------------------
# small pure helpers


def holm(p: Sequence[float]) -> np.ndarray:
    """Holm step-down adjusted p-values; NaN entries stay NaN and are not counted."""
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    adj = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out[order] = np.minimum(adj, 1.0)
    return out


def hedges_g(x: np.ndarray, y: np.ndarray) -> float:
    """Hedges' g of ``mean(x) - mean(y)``: Cohen's d on the pooled SD times
    ``J = 1 - 3 / (4 (n_x + n_y) - 9)``; NaN when undefined (n < 2 or zero pooled SD)."""
    nx, ny = len(x), len(y)
    if nx < 2 or ny < 2:
        return float("nan")
    pooled = ((nx - 1) * np.var(x, ddof=1) + (ny - 1) * np.var(y, ddof=1)) / (nx + ny - 2)
    if not pooled > 0:
        return float("nan")
    d = (np.mean(x) - np.mean(y)) / math.sqrt(pooled)
    return float(d * (1 - 3 / (4 * (nx + ny) - 9)))


def _constant(v: np.ndarray) -> bool:
    """All values equal up to floating-point rounding."""
    return bool(np.ptp(v) <= 1e-9 * max(1.0, float(np.max(np.abs(v)))))


def _rng(seed: int, *parts: object) -> np.random.Generator:
    tag = zlib.crc32("|".join(str(p) for p in parts).encode())
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, tag])


def _diff_means(x, y, axis=-1):
    return np.mean(x, axis=axis) - np.mean(y, axis=axis)


def _stats_defaults() -> dict:
    return {k: np.nan for k in ("mean", "mean_reference", "diff", "ci_low", "ci_high",
                                "p_value", "effect_size")} | {"ci_method": ""}


def _row(**kw) -> dict:
    base = {c: np.nan for c in RESULT_COLUMNS}
    base.update(kw)
    return base


def _alpha(cfg: StatsConfig) -> float:
    return 1.0 - float(cfg.confidence_level)


def _tol(values: np.ndarray) -> float:
    """Ties of a difference of means: rounding of sums of these values."""
    scale = float(np.max(np.abs(values))) if len(values) else 0.0
    return 1e-12 * max(scale, 1e-300)


_INVERSION = "permutation inversion"


# --------------------------------------------------------------------------------------------
# one comparison


def _bootstrap_ci(x, y, cfg: StatsConfig, rng) -> tuple[float, float, str]:
    """Bootstrap interval of ``mean(x) - mean(y)`` (both samples resampled independently)
    and the label of the method actually used."""
    d = float(np.mean(x) - np.mean(y))
    common = dict(n_resamples=cfg.n_bootstrap, vectorized=True,
                  confidence_level=cfg.confidence_level, rng=rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        method = "BCa" if cfg.ci_method == "bca" else "percentile"
        label = f"bootstrap {method}"
        if cfg.ci_method == "studentized":
            se = math.sqrt(np.var(x, ddof=1) / len(x) + np.var(y, ddof=1) / len(y))
            floor = 1e-9 * max(se, abs(d), 1e-300)
            degenerate = [False]

            def tstat(a, b, axis=-1):
                s = np.sqrt(np.var(a, ddof=1, axis=axis) / a.shape[axis]
                            + np.var(b, ddof=1, axis=axis) / b.shape[axis])
                degenerate[0] |= bool(np.any(s <= floor))
                return (_diff_means(a, b, axis) - d) / np.maximum(s, floor)

            if se > floor:
                res = scipy.stats.bootstrap((x, y), tstat, method="percentile", **common)
                if not degenerate[0]:
                    lo, hi = res.confidence_interval
                    return d - hi * se, d - lo * se, "bootstrap studentized"
            # some resamples have no spread at all (e.g. 2-3 fish per group, or a group whose
            # fish all scored the same): t is undefined there, so use the percentile interval
            method = "percentile"
            label = "bootstrap percentile (studentized undefined: resamples without spread)"
        res = scipy.stats.bootstrap((x, y), _diff_means, method=method, **common)
        return float(res.confidence_interval.low), float(res.confidence_interval.high), label


def _blocked_test(v: np.ndarray, in_first: np.ndarray, w: np.ndarray, blocks: np.ndarray,
                  cfg: StatsConfig, rng) -> dict:
    """Stratified (within-block) permutation test of the block-adjusted weighted difference,
    with the interval that inverts it; NaN statistics when no block holds both sides."""
    labels, exact = block_labels(blocks, in_first, cfg.n_permutations, rng)
    coef = block_contrast(labels, w, blocks)
    if not np.isfinite(coef[0]).all():
        return {"test": "not tested: no block holds both groups", "p_value": np.nan,
                "ci_low": np.nan, "ci_high": np.nan, "diff": np.nan}
    ok = np.isfinite(coef).all(axis=1)
    coef = coef[ok]
    est, p, lo, hi = linear_inversion(coef, v, in_first.astype(float), exact=exact,
                                      alpha=_alpha(cfg), tol=_tol(v))
    n_blocks = len({str(b) for b, keep in zip(blocks, coef[0] != 0, strict=True) if keep})
    test = "permutation-exact" if exact else "permutation"
    return {"diff": est, "p_value": p, "ci_low": lo, "ci_high": hi,
            "test": f"{test} (within {n_blocks} blocks)", "ci_method": _INVERSION}


def compare_two(x, y, cfg: StatsConfig, *, rng: np.random.Generator | None = None,
                blocks_x=None, blocks_y=None) -> dict:
    """Compare one metric between a group (``x``, one value per fish) and the reference
    (``y``): means, difference, permutation p-value, confidence interval, Hedges' g.

    The interval is, by default (``ci_method: permutation``), the set of shifts of the group
    that its own permutation test does not reject, so it excludes 0 exactly when
    ``p <= 1 - confidence_level``; a bootstrap interval otherwise (``ci_method`` says which).
    NaN values are dropped first. Fewer than 2 fish on either side gives NaN statistics
    (``test`` says so); zero variance in both groups gives a p-value but NaN CI and g.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    blocked = blocks_x is not None and blocks_y is not None
    if blocked:
        blocks_x = np.asarray(blocks_x, dtype=object)[np.isfinite(x)]
        blocks_y = np.asarray(blocks_y, dtype=object)[np.isfinite(y)]
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    rng = rng if rng is not None else np.random.default_rng(cfg.seed)
    nx, ny = len(x), len(y)
    out = {
        "n": nx,
        "n_reference": ny,
        "mean": float(np.mean(x)) if nx else np.nan,
        "mean_reference": float(np.mean(y)) if ny else np.nan,
        "effect_size_type": "hedges_g",
        "ci_method": "",
    }
    out["diff"] = out["mean"] - out["mean_reference"]
    if nx < 2 or ny < 2:
        return out | {"test": "not tested: n < 2 in a group", "ci_low": np.nan,
                      "ci_high": np.nan, "p_value": np.nan, "effect_size": np.nan}
    if blocked:
        res = _blocked_test(np.r_[x, y], np.r_[np.ones(nx, bool), np.zeros(ny, bool)],
                            np.ones(nx + ny), np.r_[blocks_x, blocks_y], cfg, rng)
        if _constant(np.r_[x, y]):
            return out | res | {"diff": 0.0, "p_value": 1.0, "ci_low": np.nan,
                                "ci_high": np.nan, "effect_size": np.nan, "ci_method": "",
                                "test": f"{res['test']} (no variance: CI and effect size "
                                        "undefined)"}
        return out | {"effect_size": hedges_g(x, y), "ci_method": ""} | res
    pooled = np.r_[x, y]
    idx, exact = split_indices(nx + ny, nx, cfg.n_permutations, rng)
    stat, slope = weighted_split_stats(pooled, np.ones(len(pooled)), idx, nx)
    p, lo, hi = shift_inversion(stat, slope, out["diff"], exact=exact, alpha=_alpha(cfg),
                                tol=_tol(pooled))
    test = "permutation-exact" if exact else "permutation"
    out["p_value"] = p
    if _constant(x) and _constant(y):
        if _constant(np.r_[x, y]):  # identical values (up to rounding): no difference at all
            out |= {"diff": 0.0, "p_value": 1.0}
        return out | {"test": f"{test} (no variance: CI and effect size undefined)",
                      "ci_low": np.nan, "ci_high": np.nan, "effect_size": np.nan}
    method = _INVERSION
    if cfg.ci_method != "permutation":
        lo, hi, method = _bootstrap_ci(x, y, cfg, rng)
    return out | {"ci_low": float(lo), "ci_high": float(hi), "effect_size": hedges_g(x, y),
                  "test": test, "ci_method": method}


def compare_paired(d, cfg: StatsConfig, *, rng: np.random.Generator | None = None) -> dict:
    """Within-fish comparison from per-fish differences ``d`` (condition minus reference
    condition): sign-flip permutation test of their mean, the interval that inverts it, and
    Hedges' g of the differences (``d_z`` with the small-sample factor ``1 - 3 / (4 (n - 1)
    - 1)``). ``diff`` is the mean difference; ``n`` = ``n_reference`` = fish with both."""
    d = np.asarray(d, float)
    d = d[np.isfinite(d)]
    rng = rng if rng is not None else np.random.default_rng(cfg.seed)
    n = len(d)
    out = _stats_defaults() | {"n": n, "n_reference": n, "effect_size_type": "hedges_gz",
                               "diff": float(np.mean(d)) if n else np.nan}
    if n < 2:
        return out | {"test": "not tested: fewer than 2 fish with both conditions"}
    signs, exact = sign_flips(n, cfg.n_permutations, rng)
    stat = (signs * d).mean(axis=1)
    slope = signs.mean(axis=1)
    p, lo, hi = shift_inversion(stat, slope, out["diff"], exact=exact, alpha=_alpha(cfg),
                                tol=_tol(d))
    test = "sign-flip-exact" if exact else "sign-flip"
    if _constant(d):
        if _constant(np.r_[d, 0.0]):  # no difference at all (up to rounding)
            p, out["diff"] = 1.0, 0.0
        return out | {"p_value": p, "test": f"{test} (no variance: CI and effect size undefined)"}
    sd = float(np.std(d, ddof=1))
    g = out["diff"] / sd * (1 - 3 / (4 * (n - 1) - 1)) if n > 2 and sd > 0 else np.nan
    return out | {"p_value": p, "ci_low": lo, "ci_high": hi, "effect_size": g, "test": test,
                  "ci_method": _INVERSION}


def _variance_components(y: np.ndarray, unit: np.ndarray) -> tuple[float, float]:
    """One-way random-effects ANOVA (method of moments) estimates ``(between, within)`` of
    ``y`` grouped by ``unit`` (unbalanced design: ``n0 = (N - sum n_i^2 / N) / (k - 1)``)."""
    df = pd.DataFrame({"y": y, "u": unit})
    g = df.groupby("u")["y"]
    n_i, m_i = g.size().to_numpy(float), g.mean().to_numpy(float)
    big_n, k = float(n_i.sum()), len(n_i)
    ss_within = float(((df["y"] - g.transform("mean")) ** 2).sum())
    within = ss_within / (big_n - k) if big_n > k else 0.0
    if k < 2:
        return 0.0, within
    msb = float((n_i * (m_i - y.mean()) ** 2).sum()) / (k - 1)
    n0 = (big_n - float((n_i ** 2).sum()) / big_n) / (k - 1)
    return max(0.0, (msb - within) / n0) if n0 > 0 else 0.0, within


def _trials_by_fish(y, in_group, fish):
    """Finite trials ``(y, g, fish)``, the per-fish summaries of each group (``m`` = mean of
    the fish's trials, ``n`` = their number) and the row's means (means of fish means)."""
    y = np.asarray(y, float)
    g = np.asarray(in_group, bool)
    fish = np.asarray(fish).astype(str)
    ok = np.isfinite(y)
    y, g, fish = y[ok], g[ok], fish[ok]
    per = pd.DataFrame({"y": y, "g": g, "f": fish}).groupby("f").agg(
        m=("y", "mean"), n=("y", "size"), g=("g", "first"), g_any=("g", "max"))
    if (per["g"] != per["g_any"]).any():
        bad = per.index[per["g"] != per["g_any"]][0]
        raise FishtrackError(f"per-fish table: fish {bad!r} is in two groups")
    m1, m0 = per[per["g"]], per[~per["g"]]
    out = _stats_defaults() | {"n": len(m1), "n_reference": len(m0),
                               "mean": float(m1["m"].mean()) if len(m1) else np.nan,
                               "mean_reference": float(m0["m"].mean()) if len(m0) else np.nan,
                               "effect_size_type": "standardised_diff"}
    out["diff"] = out["mean"] - out["mean_reference"]
    return y, g, fish, m1, m0, out


def compare_repeated(y, in_group, fish, cfg: StatsConfig, *,
                     rng: np.random.Generator | None = None, blocks=None) -> dict:
    """Several rows (trials) per fish: fish-level permutation test of the group effect.

    Each fish is summarised by the mean of its trials, weighted by ``1 / (s2_b + s2_w /
    n_i)`` with the between-fish and within-fish variances ``s2_b, s2_w`` of a one-way
    random-effects model fitted *without* the group labels (so the weights do not depend on
    them and relabelling whole fish is an exact test). With the same number of trials per fish
    this is the difference of the groups' means of fish means, which is also the REML mixed
    model's estimate. ``diff`` is the weighted difference (the GLS estimate of
    ``value ~ group + (1 | fish)`` at those variances), with the interval that inverts the
    test; ``mean`` / ``mean_reference`` are means of per-fish means; ``effect_size`` is the
    difference over the total SD of the model with groups; ``n`` counts fish.
    """
    rng = rng if rng is not None else np.random.default_rng(cfg.seed)
    fish_block = None
    if blocks is not None:
        b = pd.Series(np.asarray(blocks, dtype=object).astype(str),
                      index=np.asarray(fish).astype(str))
        b = b[np.isfinite(np.asarray(y, float))]
        per = b.groupby(level=0).agg(["nunique", "first"])
        fish_block = per["first"] if (per["nunique"] == 1).all() else "mixed"
    y, g, fish, m1, m0, out = _trials_by_fish(y, in_group, fish)
    if len(m1) < 2 or len(m0) < 2:
        return out | {"test": "not tested: n < 2 in a group"}
    if _constant(y):
        return out | {"test": "permutation (repeated trials; no variance: not testable)"}
    between, within = _variance_components(y, fish)
    units = pd.concat([m1, m0])
    with np.errstate(divide="ignore"):
        w = 1.0 / (between + within / units["n"].to_numpy(float))
    if not np.all(np.isfinite(w)):
        w = units["n"].to_numpy(float)
    v = units["m"].to_numpy(float)
    k1 = len(m1)
    if isinstance(fish_block, pd.Series):
        res = _blocked_test(v, np.r_[np.ones(k1, bool), np.zeros(len(m0), bool)], w,
                            fish_block.reindex(units.index).to_numpy(), cfg, rng)
        resid = y - np.where(g, m1["m"].mean(), m0["m"].mean())
        total = sum(_variance_components(resid, fish))
        es = res["diff"] / math.sqrt(total) if total > 0 and np.isfinite(res["diff"]) else np.nan
        return out | res | {"effect_size": es,
                            "test": res["test"].replace(")", "; fish, repeated trials)")}
    note = " (blocks ignored: a fish is in several blocks)" if fish_block == "mixed" else ""
    idx, exact = split_indices(len(units), k1, cfg.n_permutations, rng)
    stat, slope = weighted_split_stats(v, w, idx, k1)
    diff = float(weighted_split_stats(v, w, np.arange(k1)[None, :], k1)[0][0])
    p, lo, hi = shift_inversion(stat, slope, diff, exact=exact, alpha=_alpha(cfg), tol=_tol(v))
    resid = y - np.where(g, m1["m"].mean(), m0["m"].mean())
    b_g, w_g = _variance_components(resid, fish)
    total = b_g + w_g
    test = "permutation-exact" if exact else "permutation"
    return out | {"diff": diff, "ci_low": lo, "ci_high": hi, "p_value": p,
                  "effect_size": diff / math.sqrt(total) if total > 0 else np.nan,
                  "test": f"{test} (fish, repeated trials){note}", "ci_method": _INVERSION}


def compare_latency(
    t1, e1, c1, t0, e0, c0, cfg: StatsConfig, *, rng: np.random.Generator | None = None,
    tau: float | None = None, strata: dict | None = None,
) -> dict:
    """Censored latency of a group (``t1, e1``, fish ids ``c1``) vs the reference.

    ``mean`` / ``mean_reference`` are Kaplan-Meier RMSTs up to ``tau`` (default: the smaller
    of the two groups' largest times; :func:`compare_groups` passes one horizon per phase so
    that every group's RMST is on the same scale); ``diff`` their difference with a
    percentile bootstrap interval that resamples fish (all trials of a resampled fish come
    along); ``effect_size`` the RMST ratio (group / reference). The p-value is that of the
    log-rank statistic under relabelling of fish between the groups (exact when few
    relabellings exist), valid for small groups and for several trials per fish. The
    interval and the p-value answer different questions (a difference of restricted means;
    equality of the whole curves) and can disagree; ``ci_method`` says so. ``strata`` (fish
    -> block): the stratified log-rank statistic, fish relabelled within their block.
    """
    rng = rng if rng is not None else np.random.default_rng(cfg.seed)
    t1, t0 = np.asarray(t1, float), np.asarray(t0, float)
    e1, e0 = np.asarray(e1, bool), np.asarray(e0, bool)
    c1, c0 = np.asarray(c1).astype(str), np.asarray(c0).astype(str)
    f1, f0 = np.unique(c1), np.unique(c0)
    out = _stats_defaults() | {"n": len(f1), "n_reference": len(f0),
                               "effect_size_type": "rmst_ratio"}
    if len(f1) < 1 or len(f0) < 1:
        return out | {"test": "not tested: n < 2 in a group"}
    tau = float(min(t1.max(), t0.max())) if tau is None else float(tau)
    m1, m0 = _rmst(t1, e1, tau), _rmst(t0, e0, tau)
    out |= {"mean": m1, "mean_reference": m0, "diff": m1 - m0,
            "effect_size": m1 / m0 if m0 > 0 else np.nan}
    if len(f1) < 2 or len(f0) < 2:
        return out | {"test": "not tested: n < 2 in a group"}
    if not (e1.any() or e0.any()):
        return out | {"test": "log-rank (nobody gave up: not testable)"}
    p, _ = logrank_permutation_p(t1, e1, c1, t0, e0, c0,
                                 n_permutations=cfg.n_permutations, rng=rng, strata=strata)
    lo, hi = _rmst_diff_ci(t1, e1, c1, t0, e0, c0, tau, cfg, rng)
    test = "log-rank"
    if strata is not None:
        test += f" (stratified, {len(set(strata.values()))} blocks)"
    return out | {"p_value": p, "ci_low": lo, "ci_high": hi, "test": test,
                  "ci_method": _rmst_label(tau)}


def _rmst_label(tau: float) -> str:
    return (f"bootstrap percentile over fish (RMST difference to {tau:.4g} s; "
            "p is the log-rank test's)")


def compare_latency_paired(t, e, in_condition, fish, cfg: StatsConfig, *,
                           rng: np.random.Generator | None = None,
                           tau: float | None = None) -> dict:
    """Censored latency in a condition vs the reference condition, within fish.

    Only fish with latencies in both conditions are used. RMSTs (horizon ``tau``) per
    condition; their difference with a bootstrap interval resampling fish (both conditions of
    a fish together); p-value of the log-rank statistic from swapping the conditions within
    fish (:func:`~fishtrack.stats.survival.logrank_signflip_p`).
    """
    rng = rng if rng is not None else np.random.default_rng(cfg.seed)
    t, e = np.asarray(t, float), np.asarray(e, bool)
    cond, fish = np.asarray(in_condition, bool), np.asarray(fish).astype(str)
    both = pd.Series(cond).groupby(fish).agg(["min", "max"])
    paired = both.index[(both["min"] == False) & (both["max"] == True)]  # noqa: E712
    keep = np.isin(fish, paired)
    t, e, cond, fish = t[keep], e[keep], cond[keep], fish[keep]
    n = len(paired)
    out = _stats_defaults() | {"n": n, "n_reference": n, "effect_size_type": "rmst_ratio"}
    if n < 2:
        return out | {"test": "not tested: fewer than 2 fish with both conditions"}
    tau = float(min(t[cond].max(), t[~cond].max())) if tau is None else float(tau)
    m1, m0 = _rmst(t[cond], e[cond], tau), _rmst(t[~cond], e[~cond], tau)
    out |= {"mean": m1, "mean_reference": m0, "diff": m1 - m0,
            "effect_size": m1 / m0 if m0 > 0 else np.nan}
    if not e.any():
        return out | {"test": "paired log-rank (nobody gave up: not testable)"}
    p, exact = logrank_signflip_p(t, e, cond, fish, n_permutations=cfg.n_permutations, rng=rng)
    w = cluster_weights(fish, cfg.n_bootstrap, rng)
    d = (weighted_rmst(t[cond], e[cond], w[:, cond], tau)
         - weighted_rmst(t[~cond], e[~cond], w[:, ~cond], tau))
    a = _alpha(cfg) / 2
    lo, hi = np.quantile(d, [a, 1 - a])
    return out | {"p_value": p, "ci_low": float(lo), "ci_high": float(hi),
                  "test": "paired log-rank" + ("-exact" if exact else ""),
                  "ci_method": _rmst_label(tau)}


def _rmst(t, e, tau) -> float:
    return float(weighted_rmst(t, e, np.ones(len(t)), tau))


def cluster_weights(c: np.ndarray, n_boot: int, rng) -> np.ndarray:
    """(B, n_rows) bootstrap multiplicities resampling clusters (fish) with replacement."""
    fish, inv = np.unique(c, return_inverse=True)
    counts = rng.multinomial(len(fish), np.full(len(fish), 1 / len(fish)), size=n_boot)
    return counts[:, inv].astype(float)


def _rmst_diff_ci(t1, e1, c1, t0, e0, c0, tau, cfg: StatsConfig, rng) -> tuple[float, float]:
    w1 = cluster_weights(c1, cfg.n_bootstrap, rng)
    w0 = cluster_weights(c0, cfg.n_bootstrap, rng)
    d = weighted_rmst(t1, e1, w1, tau) - weighted_rmst(t0, e0, w0, tau)
    a = (1 - cfg.confidence_level) / 2
    lo, hi = np.quantile(d, [a, 1 - a])
    return float(lo), float(hi)


def compare_mixed(y, in_group, fish, cfg: StatsConfig) -> dict:
    """Several rows per fish: ``y ~ group + (1 | fish)`` with statsmodels MixedLM (REML),
    Wald interval and p-value.

    Not used by :func:`compare_groups` any more: with 4-10 fish per group its Wald p-values
    are too liberal (false-positive rates of 8-9 % at a nominal 5 %; docs/statistics.md);
    :func:`compare_repeated` replaced it. Kept for comparison and for users' scripts.
    """
    from statsmodels.regression.mixed_linear_model import MixedLM

    y, g, fish, m1, m0, out = _trials_by_fish(y, in_group, fish)
    if len(m1) < 2 or len(m0) < 2:
        return out | {"test": "not tested: n < 2 in a group"}
    if _constant(y):
        return out | {"test": "mixed-model (no variance: not testable)"}
    exog = np.column_stack([np.ones(len(y)), g.astype(float)])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = MixedLM(y, exog, groups=fish).fit(reml=True)
            ci = fit.conf_int(alpha=1 - cfg.confidence_level)
        diff = float(np.asarray(fit.fe_params)[1])
        var = float(np.asarray(fit.cov_re)[0, 0]) + float(fit.scale)
        p = float(np.asarray(fit.pvalues)[1])
        lo, hi = float(np.asarray(ci)[1, 0]), float(np.asarray(ci)[1, 1])
    except Exception:  # statsmodels raises LinAlgError / ValueError on singular designs
        return out | {"test": "mixed-model (model did not fit)"}
    note = "" if fit.converged else " (did not converge)"
    return out | {"diff": diff, "ci_low": lo, "ci_high": hi, "p_value": p,
                  "effect_size": diff / math.sqrt(var) if var > 0 else np.nan,
                  "test": "mixed-model" + note, "ci_method": "Wald (mixed model)"}


# --------------------------------------------------------------------------------------------
# the whole table


def _default_metrics(per_fish: pd.DataFrame) -> list[str]:
    metrics = [m for m in METRICS if m in per_fish.columns]
    if "distance_mm" in metrics and "distance_px" in metrics:
        metrics.remove("distance_px")  # same test, one family member
    return metrics


def primary_phase(
    phases: Sequence[str], cfg: StatsConfig, kinds: Sequence[str] | None = None
) -> str | None:
    """The phase of the primary endpoint among ``phases`` (with their ``kinds``).

    ``stats.primary.phase`` when set (None when it is not among ``phases``). Otherwise, in
    order: the pooled ``open_loop`` rows; the only phase of kind ``open_loop``; ``all`` (no
    protocol); the only phase; None.
    """
    phases = [str(p) for p in phases]
    if cfg.primary.phase is not None:
        return cfg.primary.phase if cfg.primary.phase in phases else None
    if "open_loop" in phases:
        return "open_loop"
    if kinds is not None:
        open_phases = [p for p, k in zip(phases, kinds, strict=True) if k == "open_loop"]
        if len(open_phases) == 1:
            return open_phases[0]
    if "all" in phases:
        return "all"
    return phases[0] if len(phases) == 1 else None


def _conditions(df: pd.DataFrame) -> list[str]:
    if "condition" not in df.columns:
        return []
    c = df["condition"].dropna().astype(str).str.strip()
    return list(dict.fromkeys(c[c != ""]))


def _check_one_group_per_fish(df: pd.DataFrame) -> None:
    n_groups = df.groupby("fish_id")["group"].nunique()
    if (n_groups > 1).any():
        fish = n_groups.index[n_groups > 1][0]
        groups = sorted(df.loc[df["fish_id"] == fish, "group"].unique())
        raise FishtrackError(
            f"per-fish table: fish {fish!r} is in groups {', '.join(map(repr, groups))}; a fish "
            "belongs to one group. For a within-fish design (the same fish before and after "
            "a treatment) put the treatment in a 'condition' column and set "
            "stats.reference_condition (docs/statistics.md)"
        )


def _values(rows: pd.DataFrame, metric: str) -> np.ndarray:
    return pd.to_numeric(rows[metric], errors="coerce").to_numpy(dtype=float)


def _is_tte(metric: str) -> bool:
    spec = METRIC_SPECS.get(metric)
    return metric == LATENCY or (spec is not None and spec.kind == "time_to_event")


def _fish_strata(rows: pd.DataFrame) -> dict | None:
    """fish -> block of the rows (None without blocks, or when a fish is in several)."""
    if "_block" not in rows.columns or rows.empty:
        return None
    per = rows.groupby("fish_id")["_block"].agg(["nunique", "first"])
    return dict(per["first"]) if (per["nunique"] == 1).all() else None


def _between(pair: pd.DataFrame, in_group: np.ndarray, metric: str, surv: dict, group, ref,
             cfg, rng, tau) -> dict:
    """One group-vs-reference row of ``metric`` for the rows ``pair``."""
    blocked = "_block" in pair.columns
    if _is_tte(metric):
        rows = surv[metric]
        a, b = rows[rows["group"] == group], rows[rows["group"] == ref]
        strata = _fish_strata(pd.concat([a, b])) if blocked else None
        return compare_latency(a["time_s"], a["event"], a["fish_id"], b["time_s"],
                               b["event"], b["fish_id"], cfg, rng=rng, tau=tau, strata=strata)
    blocks = pair["_block"].to_numpy() if blocked else None
    if pair["fish_id"].duplicated().any():
        return compare_repeated(_values(pair, metric), in_group, pair["fish_id"].to_numpy(),
                                cfg, rng=rng, blocks=blocks)
    v = _values(pair, metric)
    if blocked:
        return compare_two(v[in_group], v[~in_group], cfg, rng=rng,
                           blocks_x=blocks[in_group], blocks_y=blocks[~in_group])
    return compare_two(v[in_group], v[~in_group], cfg, rng=rng)


def _paired(rows: pd.DataFrame, in_cond: np.ndarray, metric: str, surv: dict, cond, ref_cond,
            cfg, rng, tau) -> dict:
    """One condition-vs-reference-condition row (within fish) of ``metric``."""
    if _is_tte(metric):
        s = surv[metric]
        s = s[s["condition"].isin([cond, ref_cond])]
        return compare_latency_paired(s["time_s"], s["event"], s["condition"] == cond,
                                      s["fish_id"], cfg, rng=rng, tau=tau)
    v = pd.DataFrame({"v": _values(rows, metric), "c": in_cond, "f": rows["fish_id"].to_numpy()})
    per = v.dropna().groupby(["f", "c"])["v"].mean().unstack("c")
    if True not in per.columns or False not in per.columns:
        return compare_paired([], cfg, rng=rng)
    per = per.dropna()
    res = compare_paired((per[True] - per[False]).to_numpy(), cfg, rng=rng)
    return res | {"mean": float(per[True].mean()) if len(per) else np.nan,
                  "mean_reference": float(per[False].mean()) if len(per) else np.nan}


def _in_phase_kind(metric: str, kind: str | None, rows: pd.DataFrame) -> bool:
    """Metrics defined only in some phase kinds (struggle: open loop; recovery: closed
    loop) get no rows elsewhere, nor where no fish has a value (e.g. recovery in a closed
    loop at the start of the record, or in the pooled rows)."""
    spec = METRIC_SPECS.get(metric)
    if spec is None or spec.kinds is None:
        return True
    if kind is not None and kind not in spec.kinds:
        return False
    return metric not in rows.columns or bool(rows[metric].notna().any())


def _between_block(sub: pd.DataFrame, surv: dict, phase, stratum: str, groups, ref, metrics,
                   cfg: StatsConfig, kind: str | None = None) -> list[dict]:
    """Every group against the reference on every metric, for the rows ``sub`` (one phase,
    and one condition in within-fish designs: ``stratum``)."""
    taus = {m: _tau(t, "group", groups) for m, t in surv.items()}
    rows = []
    for group in sorted(g for g in groups if g != ref):
        pair = sub[sub["group"].isin([group, ref])]
        in_group = (pair["group"] == group).to_numpy()
        for metric in metrics:
            if not _in_phase_kind(metric, kind, sub):
                continue
            tag = (phase, group, stratum, metric) if stratum else (phase, group, metric)
            res = _between(pair, in_group, metric, surv, group, ref, cfg,
                           _rng(cfg.seed, *tag), taus.get(metric))
            rows.append(_row(metric=metric, phase=phase, group=group, reference=ref,
                             design="between", stratum=stratum, **res))
    return rows


def block_columns(per_fish: pd.DataFrame, cfg: StatsConfig) -> list[str]:
    """The ``stats.blocks`` columns of the table that hold at least two distinct values."""
    out = []
    for c in cfg.blocks:
        if c in per_fish.columns:
            v = per_fish[c].dropna().astype(str).str.strip()
            if v[v != ""].nunique() > 1:
                out.append(c)
    return out


def block_labels_of(per_fish: pd.DataFrame, cols: Sequence[str]) -> np.ndarray:
    """One block label per row: the values of the block columns joined (``plate=1|date=x``);
    a missing value is a level of its own."""
    parts = [c + "=" + per_fish[c].astype(object).where(per_fish[c].notna(), "").astype(str)
             .str.strip() for c in cols]
    label = parts[0]
    for p_ in parts[1:]:
        label = label + "|" + p_
    return label.to_numpy(dtype=object)


def _tau(surv_rows: pd.DataFrame, by: str, labels: Sequence[str]) -> float | None:
    """Common RMST horizon of a block: the smallest of the labels' largest latencies."""
    ends = [surv_rows.loc[surv_rows[by] == lab, "time_s"].max() for lab in labels]
    ends = [e for e in ends if pd.notna(e)]
    return float(min(ends)) if len(ends) >= 2 else None


def compare_groups(
    per_fish: pd.DataFrame,
    cfg: StatsConfig,
    *,
    survival_data: pd.DataFrame | None = None,
    metrics: Sequence[str] | None = None,
    phases: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Compare every group with the reference group, per metric and phase.

    Parameters
    ----------
    per_fish
        Output of :func:`fishtrack.stats.per_fish_metrics` (several videos/trials may be
        concatenated). Needs ``fish_id, group, phase`` and the metric columns; a
        ``condition`` column with several values makes it a within-fish design. Rows with a
        true ``exclude`` flag or without a group are left out.
    cfg
        Uses ``reference_group, reference_condition, primary, n_bootstrap, n_permutations,
        seed, confidence_level, ci_method``.
    survival_data
        Latencies to compare instead of the per-fish latency columns: ``fish_id, group,
        phase, time_s, event`` (``event`` True = gave up; ``condition`` for within-fish
        designs).
    metrics
        Metrics to compare (default: every :data:`~fishtrack.stats.metrics.METRICS` column
        present; ``distance_px`` is skipped when ``distance_mm`` is there).
    phases
        Phases to compare (default: all, in order of appearance).

    Returns
    -------
    pandas.DataFrame
        :data:`RESULT_COLUMNS`, one row per (phase, comparison, metric): the primary row(s)
        first, then the secondary rows, then the exploratory ones in phase order.

    Raises
    ------
    ConfigError
        The reference group (or condition) is not in the table, or ``stats.primary.metric``
        is not a compared metric.
    FishtrackError
        Required columns are missing, a requested metric is not in the table, or a fish is in
        two groups.
    """
    need = ("fish_id", "group", "phase")
    missing = [c for c in need if c not in per_fish.columns]
    if missing:
        raise FishtrackError(f"per-fish table: missing column(s) {', '.join(missing)}")
    if cfg.primary.metric not in METRIC_SPECS:
        raise ConfigError(
            f"stats.primary.metric: {cfg.primary.metric!r} is not a compared metric "
            f"(allowed: {', '.join(METRICS)})"
        )
    metrics = list(metrics) if metrics is not None else _default_metrics(per_fish)
    absent = [m for m in metrics if m != LATENCY and m not in per_fish.columns]
    if absent:
        raise FishtrackError(f"per-fish table: no metric column(s) {', '.join(absent)}")
    keep = ~excluded_rows(per_fish) & per_fish["group"].notna().to_numpy()
    block_cols = block_columns(per_fish.loc[keep], cfg)
    if block_cols and not _conditions(per_fish.loc[keep]):
        per_fish = per_fish.assign(_block=block_labels_of(per_fish, block_cols))
    extra = [c for c in ("condition", "_block") if c in per_fish.columns]
    cols = list(dict.fromkeys([*need, *extra, *(m for m in metrics if m in per_fish.columns)]))
    df = per_fish.loc[keep, cols].assign(
        group=lambda d: d["group"].astype(str), fish_id=lambda d: d["fish_id"].astype(str),
        phase=lambda d: d["phase"].astype(str),
    )
    ref = cfg.reference_group
    groups = list(dict.fromkeys(df["group"]))
    if ref not in groups:
        raise ConfigError(
            f"stats.reference_group: {ref!r} is not a group of the experiment "
            f"(groups: {', '.join(sorted(groups)) or 'none'})"
        )
    conditions = _conditions(df)
    paired_design = len(conditions) > 1
    ref_cond = cfg.reference_condition
    if paired_design:
        if ref_cond is None or ref_cond not in conditions:
            what = "is not set" if ref_cond is None else f"{ref_cond!r} is not a condition"
            raise ConfigError(
                f"stats.reference_condition: {what}; the fish are measured in conditions "
                f"{', '.join(conditions)} (within-fish design): say which is the reference"
            )
        df["condition"] = df["condition"].astype(str).str.strip()
    else:
        _check_one_group_per_fish(df)
    others = sorted(g for g in groups if g != ref)
    surv: dict[str, pd.DataFrame] = {}
    for m in metrics:
        if not _is_tte(m):
            continue
        if m == LATENCY and survival_data is not None:
            tab = _check_survival(survival_data)
            tab = tab.assign(fish_id=tab["fish_id"].astype(str))
        else:
            spec = METRIC_SPECS[m]
            cols_s = [c for c in per_fish.columns if c in (*_SURV_BASE, m, spec.censor)]
            tab = survival_table(per_fish[cols_s], m, spec.censor)
        surv[m] = tab
    phase_list = list(phases) if phases is not None else list(dict.fromkeys(df["phase"]))
    kinds = None
    if "phase_kind" in per_fish.columns:
        kind_of = dict(zip(per_fish["phase"].astype(str), per_fish["phase_kind"].astype(str),
                           strict=True))
        kinds = [kind_of.get(str(p), "") for p in phase_list]
    main_phase = primary_phase(phase_list, cfg, kinds)

    kind_map = dict(zip(phase_list, kinds, strict=True)) if kinds is not None else {}
    rows: list[dict] = []
    for phase in phase_list:
        sub = df[df["phase"] == str(phase)]
        kind = kind_map.get(phase)
        s_phase = {m: t[t["phase"] == str(phase)] for m, t in surv.items()}
        if not paired_design:
            rows += _between_block(sub, s_phase, phase, "", groups, ref, metrics, cfg, kind)
            continue
        # within-fish design: conditions within each group, then groups within each condition
        for stratum in [ref, *others]:
            in_stratum = sub[sub["group"] == stratum]
            s_str = {m: t[t["group"] == stratum] for m, t in s_phase.items()}
            taus = {m: _tau(t, "condition", conditions) for m, t in s_str.items()}
            for cond in conditions:
                if cond == ref_cond:
                    continue
                rows_c = in_stratum[in_stratum["condition"].isin([cond, ref_cond])]
                in_cond = (rows_c["condition"] == cond).to_numpy()
                for metric in metrics:
                    if not _in_phase_kind(metric, kind, in_stratum):
                        continue
                    res = _paired(rows_c, in_cond, metric, s_str, cond, ref_cond, cfg,
                                  _rng(cfg.seed, phase, stratum, cond, metric),
                                  taus.get(metric))
                    rows.append(_row(metric=metric, phase=phase, group=cond,
                                     reference=ref_cond, design="paired", stratum=stratum,
                                     **res))
        for cond in conditions if others else []:
            s_c = {m: t[t["condition"] == cond] for m, t in s_phase.items()}
            rows += _between_block(sub[sub["condition"] == cond], s_c, phase, cond, groups, ref,
                                   metrics, cfg, kind)
    out = pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
    return _families(out, main_phase, cfg.primary.metric,
                     "paired" if paired_design else "between")


def _families(out: pd.DataFrame, main_phase: str | None, primary_metric: str,
              main_design: str) -> pd.DataFrame:
    """Role, Holm family and adjusted p-value of every row; primary rows first."""
    if out.empty:
        out["n"] = out["n"].astype("Int64")
        out["n_reference"] = out["n_reference"].astype("Int64")
        return out
    phase = out["phase"].astype(str).to_numpy()
    design = out["design"].astype(str).to_numpy()
    main = (phase == str(main_phase)) & (design == main_design)
    primary = main & (out["metric"].to_numpy() == primary_metric)
    role = np.where(primary, "primary", np.where(main, "secondary", "exploratory"))
    note = np.where(design == main_design, "", " (" + design.astype(object) + ")")
    family = np.where(role == "exploratory", "exploratory: " + phase.astype(object) + note,
                      role)
    p = out["p_value"].to_numpy(float)
    adj = np.full(len(p), np.nan)
    codes, uniques = pd.factorize(family)
    for k in range(len(uniques)):
        sel = np.flatnonzero(codes == k)
        adj[sel] = holm(p[sel])
    out["role"], out["family"], out["p_adjusted"] = role, family, adj
    order = np.argsort(np.select([role == "primary", role == "secondary"], [0, 1], 2),
                       kind="stable")
    out = out.iloc[order].reset_index(drop=True)
    out["n"] = out["n"].astype("Int64")
    out["n_reference"] = out["n_reference"].astype("Int64")
    return out
