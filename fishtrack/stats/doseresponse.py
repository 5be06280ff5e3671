"""Dose–response: a trend test, a fitted curve with a confidence band, and every dose against
vehicle.

The fish is the unit (several trials of a fish are averaged; a fish has one dose). For each
analysed metric in the primary phase (mean-kind metrics; censored ones are compared per dose
in ``group_stats.csv`` through their groups):

* **Trend test.** The least-squares slope of the per-fish values on the dose *scores*
  (``stats.dose_scale``: ``rank`` = 0, 1, 2, ... for the sorted dose levels, the default;
  ``linear`` = the doses; ``log`` = log10 dose with vehicle one median log-step below the
  lowest dose). p-value from permuting the doses among fish (within blocks when
  ``stats.blocks`` columns are present: the slope is then the within-block slope), and the
  interval that inverts the same test (under "slope = b", ``y - b x`` is exchangeable
  across doses, and every permuted slope is linear in ``b``).
* **Curve.** ``sigmoid``: the 4-parameter log-logistic (Hill) model ``bottom + (top -
  bottom) / (1 + (EC50 / dose)^h)`` fitted by least squares to the per-fish values (vehicle at
  ``bottom``); ``monotone``: isotonic regression of the dose-level means (weighted by fish),
  non-decreasing or non-increasing by the sign of the trend. ``auto`` uses the sigmoid with at
  least 4 dose levels above vehicle when it converges in at least 80 % of the bootstrap
  resamples, else the monotone fit. The band and the EC50 interval are percentile intervals
  over a bootstrap that resamples fish within each dose level.
* **Many-to-one.** Every dose against vehicle (dose 0; without a dose 0, the lowest dose),
  with :func:`~fishtrack.stats.compare.compare_two` (permutation test and inverted
  interval, within blocks when present); Holm-adjusted over the doses of each metric.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fishtrack.config import StatsConfig
from fishtrack.stats._resampling import linear_inversion, pd_factorize
from fishtrack.stats.compare import (
    _rng,
    block_columns,
    block_labels_of,
    compare_two,
    holm,
)
from fishtrack.stats.metrics import METRIC_SPECS
from fishtrack.stats.survival import excluded_rows

__all__ = ["DoseResponse", "dose_response", "dose_scores", "fit_sigmoid", "fish_values",
           "DOSE_METRICS"]

DOSE_METRICS = ("passive_fraction", "n_passive_epochs", "bout_rate_hz", "mean_bout_vigour_rad_s")
"""Metrics analysed against dose (after the primary metric when it is a mean-kind metric)."""


@dataclass
class DoseResponse:
    """Tables of a dose–response analysis (empty when there is no dose design)."""

    trend: pd.DataFrame = field(default_factory=pd.DataFrame)
    vs_vehicle: pd.DataFrame = field(default_factory=pd.DataFrame)
    curve: pd.DataFrame = field(default_factory=pd.DataFrame)
    fish: pd.DataFrame = field(default_factory=pd.DataFrame)
    notes: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return self.trend.empty


def dose_scores(dose: np.ndarray, scale: str) -> np.ndarray:
    """Scores of the trend test: ``rank`` (0, 1, 2... per sorted level), ``linear`` (the
    doses) or ``log`` (log10 dose; 0 placed one median log-step below the lowest dose)."""
    d = np.asarray(dose, float)
    levels = np.unique(d[np.isfinite(d)])
    if scale == "rank":
        return np.searchsorted(levels, d).astype(float)
    if scale == "linear":
        return d
    pos = levels[levels > 0]
    if len(pos) == 0:
        return np.zeros_like(d)
    logs = np.log10(pos)
    step = float(np.median(np.diff(logs))) if len(logs) > 1 else 1.0
    with np.errstate(divide="ignore"):
        return np.where(d > 0, np.log10(np.where(d > 0, d, 1.0)), logs[0] - step)


def fish_values(per_fish: pd.DataFrame, metric: str, phase: str,
                block_cols: Sequence[str] = ()) -> pd.DataFrame:
    """One row per analysed fish: ``fish_id, group, dose, value`` (+ ``_block``), the mean of
    the fish's trials in ``phase``; fish without a numeric dose or a value are dropped."""
    rows = per_fish[(per_fish["phase"].astype(str) == str(phase)) & ~excluded_rows(per_fish)
                    & per_fish["group"].notna().to_numpy()]
    df = pd.DataFrame({"fish_id": rows["fish_id"].astype(str).to_numpy(),
                       "group": rows["group"].astype(str).to_numpy(),
                       "dose": pd.to_numeric(rows["dose"], errors="coerce").to_numpy(float),
                       "value": pd.to_numeric(rows[metric], errors="coerce").to_numpy(float)})
    if block_cols:
        df["_block"] = block_labels_of(rows, block_cols)
    df = df.dropna(subset=["dose", "value"])
    agg = {"group": "first", "dose": "first", "value": "mean"}
    if "_block" in df.columns:
        agg["_block"] = "first"
    return df.groupby("fish_id", sort=False).agg(agg).reset_index()


def _sigmoid(d, bottom, top, log_ec50, hill):
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        ratio = np.where(d > 0, 10.0 ** (hill * (log_ec50 - np.log10(np.where(d > 0, d, 1.0)))),
                         np.inf)
        return bottom + (top - bottom) / (1.0 + ratio)


def fit_sigmoid(dose: np.ndarray, y: np.ndarray, p0=None) -> np.ndarray | None:
    """Least-squares 4-parameter log-logistic fit: ``(bottom, top, log10 EC50, hill)``;
    None when it does not converge. ``hill`` > 0; a decreasing response has top < bottom.
    ``p0``: starting values (default from the data)."""
    from scipy.optimize import curve_fit

    dose, y = np.asarray(dose, float), np.asarray(y, float)
    pos = np.unique(dose[dose > 0])
    if len(pos) < 2:
        return None
    lo_d, hi_d = np.log10(pos[0]), np.log10(pos[-1])
    low = y[dose <= pos[0]].mean()
    high = y[dose >= pos[-1]].mean()
    spread = max(float(np.ptp(y)), 1e-9)
    bounds = ([y.min() - spread, y.min() - spread, lo_d - 1.0, 0.2],
              [y.max() + spread, y.max() + spread, hi_d + 1.0, 8.0])
    p0 = ([low, high, (lo_d + hi_d) / 2, 1.0] if p0 is None
          else np.clip(p0, np.add(bounds[0], 1e-9), np.subtract(bounds[1], 1e-9)))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            par, _ = curve_fit(_sigmoid, dose, y, p0=p0, bounds=bounds, maxfev=2000)
    except (RuntimeError, ValueError):
        return None
    return par if np.all(np.isfinite(par)) else None


def _isotonic_levels(means: np.ndarray, n: np.ndarray, increasing: bool) -> np.ndarray:
    from scipy.optimize import isotonic_regression

    return isotonic_regression(means, weights=n, increasing=increasing).x


def _trend(df: pd.DataFrame, cfg: StatsConfig, rng) -> dict:
    """Permutation test of the (within-block) slope of value on dose scores, inverted."""
    x = dose_scores(df["dose"].to_numpy(float), cfg.dose_scale)
    y = df["value"].to_numpy(float)
    blocks = df["_block"].to_numpy() if "_block" in df.columns else np.zeros(len(df))
    codes, uniq = pd_factorize(blocks)
    xc = x.copy()
    for b in range(len(uniq)):
        m = codes == b
        xc[m] = x[m] - x[m].mean()
    sxx = float((xc ** 2).sum())
    if not sxx > 0:
        return {"slope": np.nan, "p_value": np.nan, "ci_low": np.nan, "ci_high": np.nan,
                "test": "not tested: no dose variation within blocks"}
    k = cfg.n_permutations
    perm = np.empty((k + 1, len(x)))
    perm[0] = xc
    for b in range(len(uniq)):
        m = np.flatnonzero(codes == b)
        idx = np.argsort(rng.random((k, len(m))), axis=1)
        perm[1:, m] = xc[m][idx]
    coef = perm / sxx
    tol = 1e-12 * max(float(np.max(np.abs(y))), 1e-300)
    slope, p, lo, hi = linear_inversion(coef, y, x, exact=False, alpha=1 - cfg.confidence_level,
                                        tol=tol)
    n_blocks = len(uniq)
    test = "permutation trend" + (f" (within {n_blocks} blocks)" if n_blocks > 1 else "")
    return {"slope": slope, "p_value": p, "ci_low": lo, "ci_high": hi, "test": test}


def _bootstrap_index(df: pd.DataFrame, n_boot: int, rng) -> np.ndarray:
    """(n_boot, n) row indices resampling fish within each dose level."""
    out = np.empty((n_boot, len(df)), int)
    for _, idx in df.groupby("dose").indices.items():
        out[:, idx] = idx[rng.integers(0, len(idx), size=(n_boot, len(idx)))]
    return out


def _curve(df: pd.DataFrame, cfg: StatsConfig, slope: float, rng) -> tuple[pd.DataFrame, dict]:
    """The fitted curve on a dose grid with its bootstrap band, and the model summary."""
    dose = df["dose"].to_numpy(float)
    y = df["value"].to_numpy(float)
    levels = np.unique(dose)
    n_pos = int((levels > 0).sum())
    a = (1 - cfg.confidence_level) / 2
    n_boot = int(min(cfg.n_bootstrap, 1000))
    idx = _bootstrap_index(df, n_boot, rng)
    want = cfg.dose_model
    if want in ("auto", "sigmoid") and (want == "sigmoid" or n_pos >= 4):
        par = fit_sigmoid(dose, y)
        if par is not None:
            pos = levels[levels > 0]
            grid = np.r_[0.0, np.logspace(np.log10(pos[0]) - 0.3, np.log10(pos[-1]) + 0.3, 60)]
            boots, ec50 = [], []
            for r in idx:
                b = fit_sigmoid(dose[r], y[r], p0=par)
                if b is not None:
                    boots.append(_sigmoid(grid, *b))
                    ec50.append(b[2])
            ok = len(boots) / n_boot
            if want == "sigmoid" or ok >= 0.8:
                boots_a = np.asarray(boots)
                band = (np.quantile(boots_a, [a, 1 - a], axis=0) if len(boots)
                        else np.full((2, len(grid)), np.nan))
                e_lo, e_hi = (np.quantile(ec50, [a, 1 - a]) if ec50 else (np.nan, np.nan))
                curve = pd.DataFrame({"dose": grid, "fit": _sigmoid(grid, *par),
                                      "ci_low": band[0], "ci_high": band[1]})
                return curve, {"model": "sigmoid (4-parameter log-logistic)",
                               "bottom": par[0], "top": par[1], "ec50": 10 ** par[2],
                               "ec50_low": 10 ** e_lo, "ec50_high": 10 ** e_hi,
                               "hill": par[3], "bootstrap_converged": ok}
    increasing = not (np.isfinite(slope) and slope < 0)
    code = np.searchsorted(levels, dose)
    n_lev = np.bincount(code, minlength=len(levels)).astype(float)
    fit = _isotonic_levels(np.bincount(code, y, len(levels)) / n_lev, n_lev, increasing)
    # resampling within dose levels keeps every level's size
    boots = [_isotonic_levels(np.bincount(code, y[r], len(levels)) / n_lev, n_lev, increasing)
             for r in idx]
    band = np.quantile(np.asarray(boots), [a, 1 - a], axis=0)
    curve = pd.DataFrame({"dose": levels, "fit": fit, "ci_low": band[0], "ci_high": band[1]})
    why = "" if want == "monotone" else (
        f" (sigmoid not used: {n_pos} dose levels above vehicle)" if n_pos < 4
        else " (sigmoid did not converge in 80 % of the bootstrap resamples)")
    return curve, {"model": f"monotone ({'non-decreasing' if increasing else 'non-increasing'}"
                            f" isotonic regression){why}"}


def dose_response(
    per_fish: pd.DataFrame,
    cfg: StatsConfig,
    *,
    phase: str | None,
    metrics: Sequence[str] | None = None,
) -> DoseResponse:
    """Trend test, fitted curve and many-to-one comparisons against vehicle (see the module
    docstring). Runs when the table has a ``dose`` column with at least 3 numeric levels
    among analysed fish; otherwise the result is empty (``notes`` says why when a dose
    column exists)."""
    res = DoseResponse()
    if "dose" not in per_fish.columns or phase is None or per_fish.empty:
        return res
    keep = ~excluded_rows(per_fish) & per_fish["group"].notna().to_numpy()
    d = pd.to_numeric(per_fish.loc[keep, "dose"], errors="coerce")
    levels = np.unique(d.dropna().to_numpy(float))
    if len(levels) < 3:
        return res
    per_dose = per_fish.loc[keep].assign(_d=d).groupby("fish_id")["_d"].nunique()
    if (per_dose > 1).any():
        res.notes.append(f"dose-response not analysed: fish {per_dose.index[per_dose > 1][0]!r} "
                         "has several doses (a fish has one dose)")
        return res
    if metrics is None:
        prim = cfg.primary.metric
        metrics = [m for m in dict.fromkeys([prim, *DOSE_METRICS])
                   if m in per_fish.columns and METRIC_SPECS.get(m) is not None
                   and METRIC_SPECS[m].kind == "mean"]
        if METRIC_SPECS.get(prim) is not None and METRIC_SPECS[prim].kind != "mean":
            res.notes.append(f"dose-response: the primary metric {prim} is censored; its "
                             "trend is not modelled (compare the doses' give-up curves)")
    blocks = block_columns(per_fish.loc[keep], cfg)
    trend_rows, vs_rows, curves, fish = [], [], [], []
    for metric in metrics:
        df = fish_values(per_fish, metric, phase, blocks)
        if df["dose"].nunique() < 3 or len(df) < 4:
            continue
        fish.append(df.assign(metric=metric, phase=phase))
        rng = _rng(cfg.seed, "dose", phase, metric)
        tr = _trend(df, cfg, rng)
        curve, model = _curve(df, cfg, tr["slope"], rng)
        curves.append(curve.assign(metric=metric, phase=phase))
        trend_rows.append({"metric": metric, "phase": phase, "n_fish": len(df),
                           "n_doses": int(df["dose"].nunique()), "dose_scale": cfg.dose_scale,
                           **tr, **model})
        # every dose against vehicle
        vehicle = 0.0 if (df["dose"] == 0).any() else float(df["dose"].min())
        ref = df[df["dose"] == vehicle]
        rows = []
        for dose_level in sorted(df["dose"].unique()):
            if dose_level == vehicle:
                continue
            sub = df[df["dose"] == dose_level]
            kw = {}
            if "_block" in df.columns:
                kw = {"blocks_x": sub["_block"].to_numpy(), "blocks_y": ref["_block"].to_numpy()}
            r = compare_two(sub["value"].to_numpy(), ref["value"].to_numpy(), cfg,
                            rng=_rng(cfg.seed, "dose", phase, metric, dose_level), **kw)
            rows.append({"metric": metric, "phase": phase, "dose": dose_level,
                         "vehicle_dose": vehicle, **{k: r.get(k, np.nan) for k in (
                             "n", "n_reference", "mean", "mean_reference", "diff", "ci_low",
                             "ci_high", "p_value", "effect_size", "test", "ci_method")}})
        adj = holm([r["p_value"] for r in rows])
        for r, a in zip(rows, adj, strict=True):
            r["p_adjusted"] = a
            r["family"] = f"dose vs vehicle: {metric}"
        vs_rows += rows
    res.trend = pd.DataFrame(trend_rows)
    res.vs_vehicle = pd.DataFrame(vs_rows)
    res.curve = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame()
    res.fish = pd.concat(fish, ignore_index=True) if fish else pd.DataFrame()
    return res
