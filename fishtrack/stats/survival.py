"""Time to first give-up as censored data: Kaplan–Meier curves, RMST, log-rank.

A fish that never becomes passive in a phase has a *censored* latency: we only know it is at
least the observed phase duration. Averaging such truncated numbers (or t-testing them) is
biased, so latencies are summarised with the Kaplan–Meier estimator of the probability of not
yet having given up ("survival"), compared with a log-rank test, and their size expressed as
the restricted mean survival time (RMST: the area under the Kaplan–Meier curve up to a
horizon ``tau``, i.e. the mean latency when latencies are capped at ``tau``).

lifelines is imported lazily (it takes ~2 s to import).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import scipy.stats

from fishtrack.errors import FishtrackError
from fishtrack.stats._resampling import block_labels, permutation_p, sign_flips
from fishtrack.stats.metrics import _truthy

__all__ = [
    "SURVIVAL_COLUMNS",
    "excluded_rows",
    "survival_table",
    "kaplan_meier",
    "rmst",
    "weighted_rmst",
    "logrank_p",
    "logrank_permutation_p",
    "logrank_signflip_p",
]

SURVIVAL_COLUMNS = ("fish_id", "group", "phase", "time_s", "event")
"""Columns of a survival table: one row per fish (per trial), ``event`` True = gave up.
Within-fish designs add ``condition``."""


def excluded_rows(df: pd.DataFrame) -> np.ndarray:
    """Rows whose ``exclude`` flag is true (True/1/yes/y/x)."""
    if "exclude" not in df.columns:
        return np.zeros(len(df), bool)
    return _truthy(df["exclude"]).to_numpy()


def survival_table(per_fish: pd.DataFrame, metric: str = "latency_to_first_passive_s",
                   censor: str = "latency_censored") -> pd.DataFrame:
    """Latency rows of a per-fish table as ``fish_id, group, phase, time_s, event`` (and
    ``condition`` when the table has one).

    Excluded fish (``exclude`` true), fish without a group and fish without a latency (no
    frames in the phase, or never swam in it: never at risk of giving up) are dropped.
    ``metric`` / ``censor``: another censored measure and its censoring flag (e.g.
    ``n_bouts_before_giveup`` with ``latency_censored``, ``recovery_s`` with
    ``recovery_censored``); ``time_s`` then holds its values.
    """
    need = ("fish_id", "group", "phase", metric, censor)
    missing = [c for c in need if c not in per_fish.columns]
    if missing:
        raise FishtrackError(f"per-fish table: missing column(s) {', '.join(missing)}")
    keep = ~excluded_rows(per_fish) & per_fish["group"].notna().to_numpy()
    df = per_fish.loc[keep]
    t = pd.to_numeric(df[metric], errors="coerce")
    cens = df[censor]
    ok = t.notna() & cens.notna()
    out = pd.DataFrame(
        {
            "fish_id": df["fish_id"].astype(str),
            "group": df["group"].astype(str),
            "phase": df["phase"].astype(str),
            "time_s": t.astype(float),
            "event": ~cens.astype("boolean").fillna(True).astype(bool),
        }
    )
    for extra in ("condition", "_block"):
        if extra in df.columns:
            out[extra] = df[extra].astype(str).to_numpy()
    return out.loc[ok.to_numpy()].reset_index(drop=True)


def _check_survival(data: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in SURVIVAL_COLUMNS if c not in data.columns]
    if missing:
        raise FishtrackError(f"survival data: missing column(s) {', '.join(missing)}")
    t = pd.to_numeric(data["time_s"], errors="coerce")
    if (t < 0).any():
        raise FishtrackError("survival data: negative time_s")
    out = data.assign(time_s=t.astype(float), event=data["event"].astype(bool),
                      group=data["group"].astype(str), phase=data["phase"].astype(str))
    return out[t.notna().to_numpy()]


def kaplan_meier(
    per_fish: pd.DataFrame,
    phase: str,
    *,
    survival_data: pd.DataFrame | None = None,
    confidence_level: float = 0.95,
    metric: str = "latency_to_first_passive_s",
    censor: str = "latency_censored",
) -> pd.DataFrame:
    """Kaplan–Meier curves of the latency to the first passive epoch, one per group.

    Parameters
    ----------
    per_fish
        Output of :func:`fishtrack.stats.per_fish_metrics` (or a concatenation over trials;
        several trials of a fish are pooled).
    phase
        A phase name or a pooled kind (``open_loop``).
    metric, censor
        Another censored measure (e.g. ``n_bouts_before_giveup``: curves over the number of
        bouts) and its censoring flag.
    survival_data
        Instead of the latency columns of ``per_fish``: a table with
        :data:`SURVIVAL_COLUMNS`.
    confidence_level
        Level of the pointwise band (lifelines' exponential Greenwood formula).

    Returns
    -------
    pandas.DataFrame
        ``group, time_s, survival, ci_low, ci_high, n_at_risk, n_events, n_censored``;
        a step function per group starting at ``time_s`` 0 with survival 1. Empty when the
        phase has no latencies.
    """
    from lifelines import KaplanMeierFitter

    data = _check_survival(survival_table(per_fish, metric, censor) if survival_data is None
                           else survival_data)
    data = data[data["phase"] == str(phase)]
    cols = ["group", "time_s", "survival", "ci_low", "ci_high", "n_at_risk", "n_events",
            "n_censored"]
    parts = []
    for group, sub in data.groupby("group", sort=True):
        kmf = KaplanMeierFitter(alpha=1 - confidence_level)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kmf.fit(sub["time_s"].to_numpy(), sub["event"].to_numpy(), label="s")
        sf = kmf.survival_function_["s"]
        ci = kmf.confidence_interval_survival_function_
        et = kmf.event_table.reindex(sf.index)
        parts.append(
            pd.DataFrame(
                {
                    "group": group,
                    "time_s": sf.index.to_numpy(dtype=float),
                    "survival": sf.to_numpy(),
                    "ci_low": ci.iloc[:, 0].to_numpy(),
                    "ci_high": ci.iloc[:, 1].to_numpy(),
                    "n_at_risk": et["at_risk"].to_numpy(dtype=int),
                    "n_events": et["observed"].to_numpy(dtype=int),
                    "n_censored": et["censored"].to_numpy(dtype=int),
                }
            )
        )
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in cols})
    return pd.concat(parts, ignore_index=True)[cols]


def weighted_rmst(
    time: np.ndarray, event: np.ndarray, weights: np.ndarray, tau: float
) -> np.ndarray:
    """Restricted mean survival time of Kaplan–Meier curves with case weights, vectorised.

    Parameters
    ----------
    time, event
        One sample, shape ``(n,)``.
    weights
        ``(B, n)`` non-negative case weights (e.g. bootstrap multiplicities), or ``(n,)``.
    tau
        Horizon (s).

    Returns
    -------
    numpy.ndarray
        ``(B,)`` RMST per weight row (a scalar array for 1-D weights).

    Notes
    -----
    Rows are sorted by time with events before censorings at tied times. The product of
    ``1 - w_i / R_i`` over the tied events (``R_i`` the weight still at risk) telescopes to the
    usual ``1 - d / R`` factor, so no grouping of ties is needed.
    """
    time = np.asarray(time, dtype=float)
    event = np.asarray(event, dtype=bool)
    w = np.atleast_2d(np.asarray(weights, dtype=float))
    order = np.lexsort((~event, time))
    t, e, w = time[order], event[order], w[:, order]
    at_risk = w.sum(axis=1, keepdims=True) - np.cumsum(w, axis=1) + w
    with np.errstate(invalid="ignore", divide="ignore"):
        factor = np.where(e & (at_risk > 0), 1.0 - w / np.where(at_risk > 0, at_risk, 1.0), 1.0)
    surv = np.cumprod(factor, axis=1)
    surv = np.concatenate([np.ones((w.shape[0], 1)), surv], axis=1)
    edges = np.minimum(np.r_[0.0, t, tau], tau)
    width = np.diff(edges)
    out = (surv * width).sum(axis=1)
    return out if np.ndim(weights) > 1 else out[0]


def rmst(time: np.ndarray, event: np.ndarray, tau: float) -> float:
    """Restricted mean survival time (area under the Kaplan–Meier curve up to ``tau``)."""
    return float(weighted_rmst(time, event, np.ones(len(time)), tau))


def logrank_p(t1, e1, t0, e0) -> tuple[float, float]:
    """Two-sample log-rank test: ``(chi-square statistic, p_value)``; NaN when nobody gave up.

    The usual Mantel–Haenszel form with the hypergeometric variance for tied times (the same
    statistic as ``lifelines.statistics.logrank_test``, computed vectorised here because it is
    called thousands of times in calibration).
    """
    t1, t0 = np.asarray(t1, float), np.asarray(t0, float)
    e1, e0 = np.asarray(e1, bool), np.asarray(e0, bool)
    if not (e1.any() or e0.any()):
        return float("nan"), float("nan")
    t_all = np.sort(np.r_[t1, t0])
    t_one = np.sort(t1)
    ev_all = np.sort(np.r_[t1[e1], t0[e0]])
    ev_one = np.sort(t1[e1])
    ut = np.unique(ev_all)
    n = len(t_all) - np.searchsorted(t_all, ut, side="left")
    n1 = len(t_one) - np.searchsorted(t_one, ut, side="left")
    d = np.searchsorted(ev_all, ut, side="right") - np.searchsorted(ev_all, ut, side="left")
    d1 = np.searchsorted(ev_one, ut, side="right") - np.searchsorted(ev_one, ut, side="left")
    frac = n1 / n
    expected = float(np.sum(d * frac))
    with np.errstate(invalid="ignore", divide="ignore"):
        var_terms = np.where(n > 1, d * frac * (1 - frac) * (n - d) / (n - 1), 0.0)
    var = float(np.sum(var_terms))
    if not var > 0:
        return float("nan"), float("nan")
    stat = (float(np.sum(d1)) - expected) ** 2 / var
    return stat, float(scipy.stats.chi2.sf(stat, 1))


class _LogrankPermutation:
    """Log-rank statistic of many relabellings at once (fish-level labels).

    Rows (trials) are sorted by time once; a relabelling only changes which rows belong to the
    group, so the at-risk and event counts of the group at every event time are suffix and
    range sums of a label matrix: ``O(B x rows)`` per batch, no Python loop.
    """

    def __init__(self, time: np.ndarray, event: np.ndarray, cluster: np.ndarray):
        order = np.argsort(time, kind="stable")
        self.t = time[order]
        self.e = event[order].astype(float)
        self.cluster = cluster[order]
        ut = np.unique(self.t[self.e > 0])
        self.start = np.searchsorted(self.t, ut, side="left")
        self.end = np.searchsorted(self.t, ut, side="right")
        n_rows = len(self.t)
        self.n = (n_rows - self.start).astype(float)
        ev_cum = np.r_[0.0, np.cumsum(self.e)]
        self.d = ev_cum[self.end] - ev_cum[self.start]

    def statistic(self, in_group: np.ndarray) -> np.ndarray:
        """Chi-square statistic for each row of ``in_group`` (bool, ``(B, n_clusters)``)."""
        u, v = self.score(in_group)
        with np.errstate(invalid="ignore", divide="ignore"):
            return u ** 2 / v

    def score(self, in_group: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Observed minus expected events of the group (``U``) and its hypergeometric
        variance (``V``) for each row of ``in_group``; the statistic is ``U**2 / V``."""
        lab = np.atleast_2d(in_group).astype(float)[:, self.cluster]
        suffix = np.cumsum(lab[:, ::-1], axis=1)[:, ::-1]
        n1 = suffix[:, self.start]
        le = np.concatenate([np.zeros((lab.shape[0], 1)), np.cumsum(lab * self.e, axis=1)],
                            axis=1)
        d1 = le[:, self.end] - le[:, self.start]
        frac = n1 / self.n
        with np.errstate(invalid="ignore", divide="ignore"):
            v = np.where(self.n > 1, self.d * frac * (1 - frac) * (self.n - self.d)
                         / (self.n - 1), 0.0)
        return d1.sum(axis=1) - (self.d * frac).sum(axis=1), v.sum(axis=1)


def _stratified_logrank_p(t, e, cluster, names, fish1, fish0, strata, n_permutations, rng):
    """Stratified log-rank statistic (``(sum U_s)^2 / sum V_s`` over strata), p-value from
    relabelling fish within strata."""

    units = np.r_[fish1, fish0]
    unit_stratum = np.asarray([strata[names[u]] for u in units], dtype=object)
    in_first = np.r_[np.ones(len(fish1), bool), np.zeros(len(fish0), bool)]
    labels, exact = block_labels(unit_stratum, in_first, n_permutations, rng)
    lab_all = np.zeros((len(labels), len(names)), bool)
    lab_all[:, units] = labels
    row_stratum = np.asarray([strata[names[c]] for c in cluster], dtype=object)
    u_tot = np.zeros(len(labels))
    v_tot = np.zeros(len(labels))
    for st in dict.fromkeys(row_stratum):
        rows = row_stratum == st
        if not e[rows].any():
            continue
        lr = _LogrankPermutation(t[rows], e[rows], cluster[rows])
        u, v = lr.score(lab_all)
        u_tot += u
        v_tot += np.nan_to_num(v)
    with np.errstate(invalid="ignore", divide="ignore"):
        stat = u_tot ** 2 / v_tot
    observed = stat[0]
    if not np.isfinite(observed):
        return float("nan"), exact
    null = stat if exact else stat[1:]
    adj = 0 if exact else 1
    hits = np.count_nonzero(null >= observed - abs(1e-12 * observed))
    return float((hits + adj) / (len(null) + adj)), exact


def logrank_permutation_p(
    t1, e1, c1, t0, e0, c0, *, n_permutations: int, rng: np.random.Generator,
    strata: dict | None = None,
) -> tuple[float, bool]:
    """p-value of the log-rank statistic from relabelling *fish* between the two groups.

    ``c1`` / ``c0`` name the fish of each row, so several trials of one fish move together
    (valid with repeated trials). Exact enumeration when there are at most
    ``n_permutations`` distinct relabellings (see :mod:`fishtrack.stats._resampling`). Returns
    ``(p_value, exact)``; NaN when nobody gave up. ``strata`` (fish name -> block label):
    the stratified log-rank statistic, with fish relabelled within their block.
    """
    t = np.r_[np.asarray(t1, float), np.asarray(t0, float)]
    e = np.r_[np.asarray(e1, bool), np.asarray(e0, bool)]
    if not e.any():
        return float("nan"), False
    names, cluster = np.unique(np.r_[np.asarray(c1).astype(str), np.asarray(c0).astype(str)],
                               return_inverse=True)
    lr = _LogrankPermutation(t, e, cluster)
    fish1 = np.unique(cluster[: len(t1)])
    fish0 = np.unique(cluster[len(t1):])
    if np.intersect1d(fish1, fish0).size:
        raise FishtrackError("survival data: a fish appears in two groups")

    if strata is not None:
        return _stratified_logrank_p(t, e, cluster, names, fish1, fish0, strata,
                                     n_permutations, rng)
    units = np.r_[fish1, fish0]

    def stat(idx: np.ndarray) -> np.ndarray:
        lab = np.zeros((idx.shape[0], len(names)), bool)
        np.put_along_axis(lab, units[idx], True, axis=1)
        return lr.statistic(lab)

    _, p, exact = permutation_p(stat, len(fish1), len(fish0), n_permutations=n_permutations,
                                rng=rng, alternative="greater")
    return p, exact


def logrank_signflip_p(
    time: np.ndarray,
    event: np.ndarray,
    in_condition: np.ndarray,
    fish: np.ndarray,
    *,
    n_permutations: int,
    rng: np.random.Generator,
) -> tuple[float, bool]:
    """Paired log-rank test: p-value of the log-rank statistic (condition vs reference
    condition, rows = trials) from swapping the two conditions *within* fish.

    Every fish must have rows in both conditions. Under the null hypothesis a fish's latencies
    in the two conditions are exchangeable, so each fish's labels are swapped or not (all
    ``2 ** n_fish`` patterns when at most ``n_permutations``, else random ones); the
    statistic is recomputed on every pattern. Returns ``(p_value, exact)``; NaN when nobody
    gave up.
    """
    t = np.asarray(time, float)
    e = np.asarray(event, bool)
    cond = np.asarray(in_condition, bool)
    if not e.any():
        return float("nan"), False
    _, unit = np.unique(np.asarray(fish).astype(str), return_inverse=True)
    lr = _LogrankPermutation(t, e, np.arange(len(t)))
    observed = float(lr.statistic(cond[None, :])[0])
    if not np.isfinite(observed):
        return float("nan"), False
    signs, exact = sign_flips(int(unit.max()) + 1, n_permutations, rng)
    null = []
    for start in range(0, len(signs), 2048):
        flip = signs[start:start + 2048][:, unit] < 0
        null.append(lr.statistic(cond[None, :] ^ flip))
    null_arr = np.concatenate(null)
    adj = 0 if exact else 1
    hits = np.count_nonzero(null_arr >= observed - abs(1e-12 * observed))
    return float((hits + adj) / (len(null_arr) + adj)), exact
