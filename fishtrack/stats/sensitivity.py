"""Give-up sensitivity: the headline metrics recomputed for several ``min_passive_s`` values.

A give-up is a stretch of at least ``behaviour.min_passive_s`` without a swim bout. A result
that holds at 2 s but not at 1.5 or 3 s is fragile; this module makes that visible. For every
threshold in ``stats.sensitivity`` (default 0.5, 1, 1.5, 2 and 3 x the configured
``min_passive_s``) the per-frame states are re-derived from the detected bouts (the tracks'
``in_bout`` column, or the bouts table) with the behaviour stage's own rule
(:func:`fishtrack.behaviour.label_states`, :func:`~fishtrack.behaviour.epochs_from_states`),
the per-fish metrics are recomputed (:func:`~fishtrack.stats.per_fish_metrics`) and the
groups compared in the primary phase (:func:`~fishtrack.stats.compare_groups`). Bouts are
not re-detected: bout rate and vigour do not depend on the threshold, which the figure shows
as flat lines. Manual corrections (``corrections.csv``) relabel states at the configured
threshold only and are not re-applied here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from fishtrack.behaviour.states import epochs_from_states, label_states
from fishtrack.config import BehaviourConfig, StatsConfig
from fishtrack.errors import ConfigError
from fishtrack.stats.metrics import per_fish_metrics

__all__ = ["SENSITIVITY_FACTORS", "SENSITIVITY_METRICS", "sensitivity_thresholds",
           "per_fish_sensitivity", "compare_sensitivity"]

SENSITIVITY_FACTORS = (0.5, 1.0, 1.5, 2.0, 3.0)
"""Default thresholds, as multiples of ``behaviour.min_passive_s``."""
SENSITIVITY_METRICS = ("passive_fraction", "latency_to_first_passive_s", "n_passive_epochs",
                       "n_bouts_before_giveup", "bout_rate_hz", "mean_bout_vigour_rad_s")
"""The headline metrics recomputed (after the primary metric)."""


def sensitivity_thresholds(stats: StatsConfig, min_passive_s: float) -> list[float]:
    """The ``min_passive_s`` values to recompute at (sorted, unique, the configured one
    included unless the list is empty)."""
    if stats.sensitivity is None:
        values = [round(f * min_passive_s, 6) for f in SENSITIVITY_FACTORS]
    elif len(stats.sensitivity) == 0:
        return []
    else:
        values = [float(v) for v in stats.sensitivity] + [float(min_passive_s)]
    return sorted(set(values))


def _in_bout(tracks: pd.DataFrame, bouts: pd.DataFrame | None) -> np.ndarray:
    """``in_bout`` per track row: the tracks' column, else the frames inside a bout of the
    bouts table (``start_s <= time_s < end_s``)."""
    if "in_bout" in tracks.columns:
        return tracks["in_bout"].fillna(False).to_numpy(bool)
    out = np.zeros(len(tracks), bool)
    if bouts is None or bouts.empty or "end_s" not in bouts.columns:
        return out
    keys = [c for c in ("video", "arena", "fish") if c in tracks.columns and c in bouts.columns]
    t = tracks["time_s"].to_numpy(float)
    tk = tracks[keys].astype(str).agg("|".join, axis=1) if keys else pd.Series("", tracks.index)
    bk = bouts[keys].astype(str).agg("|".join, axis=1) if keys else pd.Series("", bouts.index)
    for key, b in bouts.groupby(bk.to_numpy()):
        rows = np.flatnonzero(tk.to_numpy() == key)
        tt = t[rows]
        for s, e in zip(b["start_s"].to_numpy(float), b["end_s"].to_numpy(float), strict=True):
            out[rows[(tt >= s - 1e-9) & (tt < e - 1e-9)]] = True
    return out


def per_fish_sensitivity(
    tracks: pd.DataFrame,
    bouts: pd.DataFrame | None,
    protocol,
    fish_table: pd.DataFrame | None,
    thresholds: Sequence[float],
    *,
    max_gap_s: float = 0.5,
    px_per_mm: float | None = None,
    struggle_window_s: float = 10.0,
    exclude_no_swimming: bool = False,
) -> pd.DataFrame:
    """``per_fish_metrics`` at every threshold, stacked with a ``min_passive_s`` column
    (``exclude_no_swimming``: as in :func:`~fishtrack.stats.per_fish_metrics`, so the same
    fish are left out as in the main table).

    ``tracks`` needs ``frame, time_s, fish`` (+ ``arena, video, detected, x, y``) and
    ``in_bout`` (or ``bouts`` with ``start_s, end_s``); its ``state`` column is ignored.
    """
    if not len(thresholds) or tracks.empty:
        return pd.DataFrame()
    in_bout = _in_bout(tracks, bouts)
    if "tail_angle" not in tracks.columns:  # observed = detected (imported tables)
        tracks = tracks.assign(tail_angle=0.0)
    parts = []
    for x in thresholds:
        bcfg = BehaviourConfig(min_passive_s=float(x), max_gap_s=max_gap_s)
        state = label_states(tracks, bcfg, in_bout=in_bout)  # long gaps: 'unknown'
        tr = tracks.assign(state=state.to_numpy())
        epochs = epochs_from_states(tr, list(protocol or []), cfg=bcfg)
        pf = per_fish_metrics(tr, bouts, epochs, protocol, fish_table, px_per_mm=px_per_mm,
                              struggle_window_s=struggle_window_s,
                              exclude_no_swimming=exclude_no_swimming)
        pf.insert(0, "min_passive_s", float(x))
        parts.append(pf)
    return pd.concat(parts, ignore_index=True)


def compare_sensitivity(
    sens: pd.DataFrame,
    cfg: StatsConfig,
    *,
    phase: str | None,
    metrics: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Group comparisons in ``phase`` at every threshold: the rows of
    :func:`~fishtrack.stats.compare_groups` with a leading ``min_passive_s`` column (``role``
    and ``p_adjusted`` as at that threshold). Empty without thresholds or a phase."""
    from fishtrack.stats.compare import compare_groups  # (scipy.stats: not for per-fish work)

    if sens.empty or phase is None:
        return pd.DataFrame()
    if metrics is None:
        metrics = [m for m in dict.fromkeys([cfg.primary.metric, *SENSITIVITY_METRICS])
                   if m in sens.columns]
    parts = []
    for x, sub in sens.groupby("min_passive_s", sort=True):
        try:
            gs = compare_groups(sub.drop(columns="min_passive_s"), cfg, metrics=metrics,
                                phases=[phase])
        except ConfigError:
            continue
        gs.insert(0, "min_passive_s", float(x))
        parts.append(gs)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
