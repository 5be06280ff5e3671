"""Group comparison of per-fish metrics: each group against the reference group.

The fish is the unit of analysis. For every phase (and pooled phase kind) and every group
other than ``stats.reference_group``, each metric gets one row (see ``docs/statistics.md``):

* one value per fish (the usual case): difference of means with a bootstrap confidence
  interval (``stats.ci_method``; studentized by default), a two-sided permutation p-value
  (exact enumeration when there are at most ``stats.n_permutations`` distinct relabellings)
  and Hedges' g. ``test`` = ``permutation`` or ``permutation-exact``.
* the latency to the first passive epoch (censored): Kaplan–Meier restricted mean survival
  time (RMST) per group, their difference with a fish-level bootstrap interval, the log-rank
  p-value (log-rank statistic, p from relabelling fish between groups) and the RMST ratio as
  effect size. ``test`` = ``log-rank``.
* several rows per fish in a phase (repeated trials): a linear mixed model with a random
  intercept per fish (statsmodels MixedLM, REML, Wald interval and p-value);
  ``test`` = ``mixed-model``. The latency keeps its log-rank row: fish (with all their
  trials) are relabelled and resampled as units.

p-values are Holm-adjusted within each (phase, group) comparison across its metrics.
Degenerate cases (fewer than 2 fish in a group, no variance, nobody gave up) give NaN
statistics and say why in ``test``. Every row draws its random numbers from a generator seeded
with ``(stats.seed, phase, group, metric)``, so results do not depend on the table order.
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
from fishtrack.stats._resampling import permutation_p
from fishtrack.stats.metrics import METRICS
from fishtrack.stats.survival import (
    _check_survival,
    _excluded,
    logrank_permutation_p,
    survival_table,
    weighted_rmst,
)

__all__ = [
    "RESULT_COLUMNS",
    "LATENCY",
    "compare_groups",
    "compare_two",
    "compare_latency",
    "compare_mixed",
    "hedges_g",
    "holm",
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
)

LATENCY = "latency_to_first_passive_s"
_SURV_COLS = ("fish_id", "group", "phase", LATENCY, "latency_censored", "exclude")


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
                                "p_value", "effect_size")}


def _row(**kw) -> dict:
    base = {c: np.nan for c in RESULT_COLUMNS}
    base.update(kw)
    return base


# --------------------------------------------------------------------------------------------
# one comparison


def _bootstrap_ci(x, y, cfg: StatsConfig, rng) -> tuple[float, float]:
    """Bootstrap interval of ``mean(x) - mean(y)`` (both samples resampled independently)."""
    d = float(np.mean(x) - np.mean(y))
    common = dict(n_resamples=cfg.n_bootstrap, vectorized=True,
                  confidence_level=cfg.confidence_level, rng=rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        method = "BCa" if cfg.ci_method == "bca" else "percentile"
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
                    return d - hi * se, d - lo * se
            # some resamples have no spread at all (e.g. 2-3 fish per group, or a group whose
            # fish all scored the same): t is undefined there, so use the percentile interval
            method = "percentile"
        res = scipy.stats.bootstrap((x, y), _diff_means, method=method, **common)
        return float(res.confidence_interval.low), float(res.confidence_interval.high)


def compare_two(x, y, cfg: StatsConfig, *, rng: np.random.Generator | None = None) -> dict:
    """Compare one metric between a group (``x``, one value per fish) and the reference
    (``y``): means, difference, bootstrap CI, permutation p-value, Hedges' g, test label.

    NaN values are dropped first. Fewer than 2 fish on either side gives NaN statistics
    (``test`` says so); zero variance in both groups gives a p-value but NaN CI and g.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    rng = rng if rng is not None else np.random.default_rng(cfg.seed)
    nx, ny = len(x), len(y)
    out = {
        "n": nx,
        "n_reference": ny,
        "mean": float(np.mean(x)) if nx else np.nan,
        "mean_reference": float(np.mean(y)) if ny else np.nan,
        "effect_size_type": "hedges_g",
    }
    out["diff"] = out["mean"] - out["mean_reference"]
    if nx < 2 or ny < 2:
        return out | {"test": "not tested: n < 2 in a group", "ci_low": np.nan,
                      "ci_high": np.nan, "p_value": np.nan, "effect_size": np.nan}
    pooled = np.r_[x, y]
    total = pooled.sum()

    def diff_of_split(idx: np.ndarray) -> np.ndarray:
        s1 = pooled[idx].sum(axis=1)
        return s1 / nx - (total - s1) / ny

    _, p, exact = permutation_p(diff_of_split, nx, ny, n_permutations=cfg.n_permutations,
                                rng=rng)
    test = "permutation-exact" if exact else "permutation"
    out["p_value"] = p
    if _constant(x) and _constant(y):
        if _constant(np.r_[x, y]):  # identical values (up to rounding): no difference at all
            out |= {"diff": 0.0, "p_value": 1.0}
        return out | {"test": f"{test} (no variance: CI and effect size undefined)",
                      "ci_low": np.nan, "ci_high": np.nan, "effect_size": np.nan}
    lo, hi = _bootstrap_ci(x, y, cfg, rng)
    out |= {"ci_low": float(lo), "ci_high": float(hi), "effect_size": hedges_g(x, y),
            "test": test}
    return out


def compare_latency(
    t1, e1, c1, t0, e0, c0, cfg: StatsConfig, *, rng: np.random.Generator | None = None
) -> dict:
    """Censored latency of a group (``t1, e1``, fish ids ``c1``) vs the reference.

    ``mean`` / ``mean_reference`` are Kaplan–Meier RMSTs up to ``tau`` = the smaller of the
    two groups' largest times; ``diff`` their difference with a percentile bootstrap interval
    that resamples fish (all trials of a resampled fish come along); ``effect_size`` the RMST
    ratio (group / reference). The p-value is that of the log-rank statistic under
    relabelling of fish between the groups (exact when few relabellings exist), valid for
    small groups and for several trials per fish.
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
    tau = float(min(t1.max(), t0.max()))
    m1, m0 = _rmst(t1, e1, tau), _rmst(t0, e0, tau)
    out |= {"mean": m1, "mean_reference": m0, "diff": m1 - m0,
            "effect_size": m1 / m0 if m0 > 0 else np.nan}
    if len(f1) < 2 or len(f0) < 2:
        return out | {"test": "not tested: n < 2 in a group"}
    if not (e1.any() or e0.any()):
        return out | {"test": "log-rank (nobody gave up: not testable)"}
    p, _ = logrank_permutation_p(t1, e1, c1, t0, e0, c0,
                                 n_permutations=cfg.n_permutations, rng=rng)
    lo, hi = _rmst_diff_ci(t1, e1, c1, t0, e0, c0, tau, cfg, rng)
    return out | {"p_value": p, "ci_low": lo, "ci_high": hi, "test": "log-rank"}


def _rmst(t, e, tau) -> float:
    return float(weighted_rmst(t, e, np.ones(len(t)), tau))


def _cluster_weights(c: np.ndarray, n_boot: int, rng) -> np.ndarray:
    """(B, n_rows) bootstrap multiplicities resampling clusters (fish) with replacement."""
    fish, inv = np.unique(c, return_inverse=True)
    counts = rng.multinomial(len(fish), np.full(len(fish), 1 / len(fish)), size=n_boot)
    return counts[:, inv].astype(float)


def _rmst_diff_ci(t1, e1, c1, t0, e0, c0, tau, cfg: StatsConfig, rng) -> tuple[float, float]:
    w1 = _cluster_weights(c1, cfg.n_bootstrap, rng)
    w0 = _cluster_weights(c0, cfg.n_bootstrap, rng)
    d = weighted_rmst(t1, e1, w1, tau) - weighted_rmst(t0, e0, w0, tau)
    a = (1 - cfg.confidence_level) / 2
    lo, hi = np.quantile(d, [a, 1 - a])
    return float(lo), float(hi)


def compare_mixed(y, in_group, fish, cfg: StatsConfig) -> dict:
    """Several rows per fish: ``y ~ group + (1 | fish)`` with statsmodels MixedLM (REML).

    ``diff`` is the fixed group effect with its Wald interval and p-value; ``effect_size`` the
    effect divided by the total SD (random-intercept variance + residual variance);
    ``mean`` / ``mean_reference`` are means of per-fish means; ``n`` counts fish.
    """
    from statsmodels.regression.mixed_linear_model import MixedLM

    y = np.asarray(y, float)
    g = np.asarray(in_group, bool)
    fish = np.asarray(fish).astype(str)
    ok = np.isfinite(y)
    y, g, fish = y[ok], g[ok], fish[ok]
    per_fish = pd.DataFrame({"y": y, "g": g, "f": fish}).groupby(["g", "f"])["y"].mean()
    m1 = per_fish.get(True, pd.Series(dtype=float))
    m0 = per_fish.get(False, pd.Series(dtype=float))
    out = _stats_defaults() | {"n": len(m1), "n_reference": len(m0),
           "mean": float(m1.mean()) if len(m1) else np.nan,
           "mean_reference": float(m0.mean()) if len(m0) else np.nan,
           "effect_size_type": "standardised_diff"}
    out["diff"] = out["mean"] - out["mean_reference"]
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
                  "test": "mixed-model" + note}


# --------------------------------------------------------------------------------------------
# the whole table


def _default_metrics(per_fish: pd.DataFrame) -> list[str]:
    metrics = [m for m in METRICS if m in per_fish.columns]
    if "distance_mm" in metrics and "distance_px" in metrics:
        metrics.remove("distance_px")  # same test, one family member
    return metrics


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
        concatenated). Needs ``fish_id, group, phase`` and the metric columns. Rows with a
        true ``exclude`` flag or without a group are left out.
    cfg
        Uses ``reference_group, n_bootstrap, n_permutations, seed, confidence_level,
        ci_method``.
    survival_data
        Latencies to compare instead of the per-fish latency columns: ``fish_id, group,
        phase, time_s, event`` (``event`` True = gave up).
    metrics
        Metrics to compare (default: every :data:`~fishtrack.stats.metrics.METRICS` column
        present; ``distance_px`` is skipped when ``distance_mm`` is there). This is the Holm
        family.
    phases
        Phases to compare (default: all, in order of appearance).

    Returns
    -------
    pandas.DataFrame
        :data:`RESULT_COLUMNS`, one row per (phase, group, metric).

    Raises
    ------
    ConfigError
        The reference group is not among the groups.
    FishtrackError
        Required columns are missing or a requested metric is not in the table.
    """
    need = ("fish_id", "group", "phase")
    missing = [c for c in need if c not in per_fish.columns]
    if missing:
        raise FishtrackError(f"per-fish table: missing column(s) {', '.join(missing)}")
    metrics = list(metrics) if metrics is not None else _default_metrics(per_fish)
    absent = [m for m in metrics if m != LATENCY and m not in per_fish.columns]
    if absent:
        raise FishtrackError(f"per-fish table: no metric column(s) {', '.join(absent)}")
    keep = ~_excluded(per_fish) & per_fish["group"].notna().to_numpy()
    cols = list(dict.fromkeys([*need, *(m for m in metrics if m in per_fish.columns)]))
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
    others = sorted(g for g in groups if g != ref)
    if LATENCY in metrics:
        if survival_data is not None:
            surv = _check_survival(survival_data)
            surv = surv.assign(fish_id=surv["fish_id"].astype(str))
        else:
            surv = survival_table(per_fish[[c for c in per_fish.columns if c in _SURV_COLS]])
    phase_list = list(phases) if phases is not None else list(dict.fromkeys(df["phase"]))

    rows: list[dict] = []
    for phase in phase_list:
        sub = df[df["phase"] == str(phase)]
        for group in others:
            pair = sub[sub["group"].isin([group, ref])]
            in_group = (pair["group"] == group).to_numpy()
            repeated = pair["fish_id"].duplicated().any()
            block = []
            for metric in metrics:
                rng = _rng(cfg.seed, phase, group, metric)
                if metric == LATENCY:
                    s = surv[(surv["phase"] == str(phase))]
                    a, b = s[s["group"] == group], s[s["group"] == ref]
                    res = compare_latency(
                        a["time_s"], a["event"], a["fish_id"],
                        b["time_s"], b["event"], b["fish_id"], cfg, rng=rng,
                    )
                elif repeated:
                    res = compare_mixed(pair[metric].to_numpy(dtype=float), in_group,
                                        pair["fish_id"].to_numpy(), cfg)
                else:
                    v = pd.to_numeric(pair[metric], errors="coerce").to_numpy(dtype=float)
                    res = compare_two(v[in_group], v[~in_group], cfg, rng=rng)
                block.append(_row(metric=metric, phase=phase, group=group, reference=ref,
                                  **res))
            adj = holm([r["p_value"] for r in block])
            for r, a in zip(block, adj, strict=True):
                r["p_adjusted"] = a
            rows.extend(block)
    out = pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
    out["n"] = out["n"].astype("Int64")
    out["n_reference"] = out["n_reference"].astype("Int64")
    return out
