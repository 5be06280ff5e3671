"""Time course after treatment: each metric over time per group, the groups compared at every
time point, and the group × time interaction with the fish as the unit.

The time axis is the manifest column ``time_since_treatment_h`` (hours; numeric), or else
``session`` (numbers, or labels taken in sorted order as 0, 1, 2, ...). At least two time
points are needed. Two designs, recognised from the data:

* **within fish** (the same ``fish_id`` recorded at several times): the interaction is the
  difference between groups of the per-fish least-squares slopes over time (a "summary
  statistic" analysis of serial measurements: Matthews et al. 1990, BMJ 300:230), tested by
  permuting whole fish between groups (:func:`~fishtrack.stats.compare.compare_two`, within
  blocks when present) with the interval that inverts the test. Fish seen at one time only
  add to the per-time comparisons, not to the slopes.
* **between fish** (every fish at one time; e.g. separate cohorts at 1 h, 24 h, 1 week): the
  model ``value ~ time (levels) + group + group:(time - mean time)`` by least squares on one
  value per fish; the interaction coefficient (the change of the group difference per unit
  of time; with two time points, the difference-in-differences divided by their distance)
  is tested by the Freedman–Lane permutation of the residuals of the model without the
  interaction, within time points, and the interval inverts the same test (every permuted
  coefficient is linear in the hypothesised value).

At every time point every group is compared with the reference by
:func:`~fishtrack.stats.compare.compare_groups` on that time point's rows (same tests as
``group_stats.csv``: permutation, log-rank for censored metrics, blocks), Holm-adjusted over
the time points and groups of each metric (family ``time course: <metric>``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fishtrack.config import StatsConfig
from fishtrack.errors import ConfigError
from fishtrack.stats._resampling import linear_inversion
from fishtrack.stats.compare import (
    _rng,
    block_columns,
    block_labels_of,
    compare_groups,
    compare_two,
    holm,
)
from fishtrack.stats.metrics import METRIC_SPECS
from fishtrack.stats.survival import excluded_rows

__all__ = ["TimeCourse", "TIME_COLUMNS", "time_axis", "time_course", "interaction_between"]

TIME_COLUMNS = ("time_since_treatment_h", "session")
"""Manifest columns giving the time axis, in order of preference."""
TIME_METRICS = ("passive_fraction", "latency_to_first_passive_s", "n_bouts_before_giveup",
                "bout_rate_hz", "mean_bout_vigour_rad_s")
"""Metrics followed over time (after the primary metric)."""


@dataclass
class TimeCourse:
    """Tables of a time-course analysis (empty without a time column)."""

    time_column: str = ""
    design: str = ""
    summary: pd.DataFrame = field(default_factory=pd.DataFrame)
    per_time: pd.DataFrame = field(default_factory=pd.DataFrame)
    interaction: pd.DataFrame = field(default_factory=pd.DataFrame)
    fish: pd.DataFrame = field(default_factory=pd.DataFrame)
    notes: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return self.summary.empty and self.per_time.empty


def time_axis(per_fish: pd.DataFrame) -> tuple[str, pd.Series] | None:
    """``(column, numeric time per row)`` of the first time column with >= 2 levels."""
    for col in TIME_COLUMNS:
        if col not in per_fish.columns:
            continue
        raw = per_fish[col]
        num = pd.to_numeric(raw, errors="coerce")
        text = raw.astype(object).where(raw.notna(), "").astype(str).str.strip()
        if (num.isna() & (text != "")).any():  # labels: sorted order
            levels = sorted(set(text[text != ""]))
            num = text.map({v: float(i) for i, v in enumerate(levels)})
        if num.dropna().nunique() >= 2:
            return col, num.astype(float)
    return None


def _t_interval(v: np.ndarray, level: float) -> tuple[float, float, float]:
    from scipy import stats as sst

    v = v[np.isfinite(v)]
    if len(v) == 0:
        return np.nan, np.nan, np.nan
    m = float(v.mean())
    if len(v) < 2:
        return m, np.nan, np.nan
    half = float(sst.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
    return m, m - half, m + half


def interaction_between(y: np.ndarray, time: np.ndarray, in_group: np.ndarray,
                        cfg: StatsConfig, rng: np.random.Generator) -> dict:
    """Group x time interaction with one value per fish (between-fish time points).

    Least squares ``y ~ time levels + group + group * (time - mean)``; Freedman–Lane
    permutation of the reduced model's residuals within time points; the interval inverts
    the test. Returns ``diff`` (the interaction coefficient), ``ci_low, ci_high, p_value,
    test``.
    """
    y, time, g = np.asarray(y, float), np.asarray(time, float), np.asarray(in_group, bool)
    levels, tcode = np.unique(time, return_inverse=True)
    n = len(y)
    base = np.zeros((n, len(levels)))
    base[np.arange(n), tcode] = 1.0
    reduced = np.column_stack([base, g.astype(float)])
    x_int = g * (time - time.mean())
    full = np.column_stack([reduced, x_int])
    out = {"diff": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p_value": np.nan}
    if np.linalg.matrix_rank(full) < full.shape[1]:
        return out | {"test": "not tested: the groups are not seen at two time points each"}
    a = np.linalg.pinv(full)[-1]  # row giving the interaction coefficient
    hat = reduced @ np.linalg.pinv(reduced)
    resid_op = np.eye(n) - hat
    k = cfg.n_permutations
    perm = np.tile(np.arange(n), (k + 1, 1))
    for lev in range(len(levels)):
        m = np.flatnonzero(tcode == lev)
        perm[1:, m] = m[np.argsort(rng.random((k, len(m))), axis=1)]
    # y* = H y + P (I - H) y  ->  coefficient a @ y* = (a H + a P (I - H)) @ y
    a_perm = np.zeros((k + 1, n))
    np.put_along_axis(a_perm, perm, np.broadcast_to(a, (k + 1, n)), axis=1)
    coef = a @ hat + a_perm @ resid_op
    coef[0] = a
    tol = 1e-12 * max(float(np.max(np.abs(y))), 1e-300)
    est, p, lo, hi = linear_inversion(coef, y, x_int, exact=False, alpha=1 - cfg.confidence_level,
                                      tol=tol)
    return {"diff": est, "ci_low": lo, "ci_high": hi, "p_value": p,
            "test": "Freedman-Lane permutation (group x time, between fish)"}


def _fish_slopes(df: pd.DataFrame) -> pd.DataFrame:
    """Per-fish least-squares slope of value on time (fish with >= 2 distinct times)."""
    rows = []
    for fid, sub in df.groupby("fish_id", sort=False):
        t, v = sub["time"].to_numpy(float), sub["value"].to_numpy(float)
        ok = np.isfinite(v)
        t, v = t[ok], v[ok]
        if len(np.unique(t)) < 2:
            continue
        tc = t - t.mean()
        rows.append({"fish_id": fid, "group": sub["group"].iloc[0],
                     "_block": sub["_block"].iloc[0] if "_block" in sub else "",
                     "slope": float((tc * (v - v.mean())).sum() / (tc ** 2).sum())})
    return pd.DataFrame(rows, columns=["fish_id", "group", "_block", "slope"])


def time_course(
    per_fish: pd.DataFrame,
    cfg: StatsConfig,
    *,
    phase: str | None,
    metrics: Sequence[str] | None = None,
) -> TimeCourse:
    """Metrics over time per group, per-time comparisons and the group x time interaction
    (module docstring). Empty without a time column holding two or more time points."""
    res = TimeCourse()
    axis = time_axis(per_fish) if phase is not None and not per_fish.empty else None
    if axis is None:
        return res
    col, tnum = axis
    res.time_column = col
    keep = ~excluded_rows(per_fish) & per_fish["group"].notna().to_numpy()
    rows = per_fish.loc[keep & (per_fish["phase"].astype(str) == str(phase)).to_numpy()]
    rows = rows.assign(_time=tnum[rows.index])
    rows = rows[rows["_time"].notna()]
    if rows.empty:
        return res
    blocks = block_columns(rows, cfg)
    within = bool((rows.groupby("fish_id")["_time"].nunique() > 1).any())
    res.design = "within fish" if within else "between fish"
    ref = cfg.reference_group
    if metrics is None:
        metrics = [m for m in dict.fromkeys([cfg.primary.metric, *TIME_METRICS])
                   if m in rows.columns]
    times = sorted(rows["_time"].unique())
    label = {t: rows.loc[rows["_time"] == t, col].astype(str).iloc[0] for t in times}
    summary, per_time, inter, fish = [], [], [], []
    for metric in metrics:
        spec = METRIC_SPECS.get(metric)
        mean_kind = spec is None or spec.kind == "mean"
        v = pd.to_numeric(rows[metric], errors="coerce").to_numpy(float)
        df = pd.DataFrame({"fish_id": rows["fish_id"].astype(str).to_numpy(),
                           "group": rows["group"].astype(str).to_numpy(),
                           "time": rows["_time"].to_numpy(float), "value": v})
        if blocks:
            df["_block"] = block_labels_of(rows, blocks)
        # one value per fish per time point (mean of its trials)
        agg = {"value": "mean"} | ({"_block": "first"} if blocks else {})
        df = df.groupby(["fish_id", "group", "time"], sort=False).agg(agg).reset_index()
        if mean_kind:
            fish.append(df.assign(metric=metric, phase=phase))
            for (t, g), sub in df.groupby(["time", "group"]):
                m, lo, hi = _t_interval(sub["value"].to_numpy(float), cfg.confidence_level)
                summary.append({"metric": metric, "phase": phase, "time": t,
                                "time_label": label[t], "group": g,
                                "n": int(sub["value"].notna().sum()),
                                "mean": m, "ci_low": lo, "ci_high": hi})
        # groups at every time point, with the table's own tests
        for t in times:
            sub = rows[rows["_time"] == t]
            try:
                gs = compare_groups(sub, cfg, metrics=[metric], phases=[phase])
            except ConfigError as err:
                res.notes.append(f"time course, {col} = {label[t]}: {err}")
                continue
            if gs.empty:
                continue
            gs = gs.assign(time=t, time_label=label[t])
            per_time.append(gs)
        if not mean_kind:
            continue
        for group in sorted(set(df["group"]) - {ref}):
            pair = df[df["group"].isin([group, ref])]
            rng = _rng(cfg.seed, "time", phase, group, metric)
            if within:
                sl = _fish_slopes(pair)
                x, y = sl[sl["group"] == group], sl[sl["group"] == ref]
                kw = ({"blocks_x": x["_block"].to_numpy(), "blocks_y": y["_block"].to_numpy()}
                      if blocks else {})
                r = compare_two(x["slope"].to_numpy(), y["slope"].to_numpy(), cfg, rng=rng, **kw)
                r["test"] = f"{r.get('test', '')} of per-fish slopes (group x time, within fish)"
            else:
                ok = np.isfinite(pair["value"].to_numpy(float))
                pr = pair[ok]
                r = interaction_between(pr["value"].to_numpy(float), pr["time"].to_numpy(float),
                                        (pr["group"] == group).to_numpy(), cfg, rng)
                r |= {"n": int((pr["group"] == group).sum()),
                      "n_reference": int((pr["group"] == ref).sum())}
            inter.append({"metric": metric, "phase": phase, "group": group, "reference": ref,
                          "design": res.design, "time_column": col,
                          **{k: r.get(k, np.nan) for k in ("n", "n_reference", "diff",
                                                           "ci_low", "ci_high", "p_value",
                                                           "test")}})
    res.summary = pd.DataFrame(summary)
    if per_time:
        pt = pd.concat(per_time, ignore_index=True)
        pt["family"] = "time course: " + pt["metric"].astype(str)
        pt["p_adjusted"] = np.nan
        for _, idx in pt.groupby("family").indices.items():
            pt.loc[pt.index[idx], "p_adjusted"] = holm(pt["p_value"].to_numpy(float)[idx])
        pt = pt.drop(columns=["role"])
        res.per_time = pt
    res.interaction = pd.DataFrame(inter)
    if not res.interaction.empty:
        res.interaction["p_adjusted"] = holm(res.interaction["p_value"].to_numpy(float))
        res.interaction["family"] = "group x time"
    res.fish = pd.concat(fish, ignore_index=True) if fish else pd.DataFrame()
    return res
