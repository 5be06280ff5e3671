"""The per-trial inputs of the assay analyses (:func:`trial_parts`; re-exported by
:mod:`fishtrack.stats.assay`, which compares them across trials). Apart from the
comparisons so that a trial's worker computes them without importing ``scipy.stats``
(issue 15: :mod:`fishtrack.experiment.trialstats`)."""

from __future__ import annotations

import pandas as pd

from fishtrack.config import Config
from fishtrack.stats.eventlocked import event_locked, events_table
from fishtrack.stats.sensitivity import per_fish_sensitivity, sensitivity_thresholds

__all__ = ["trial_parts"]


def trial_parts(
    tracks: pd.DataFrame,
    bouts: pd.DataFrame | None,
    epochs: pd.DataFrame | None,
    protocol,
    fish_table: pd.DataFrame | None,
    config: Config,
    *,
    px_per_mm: float | None = None,
    signals=None,
    behaviour=None,
) -> dict[str, pd.DataFrame]:
    """The per-trial inputs of :func:`analyse`: ``sensitivity`` (per-fish metrics at each
    threshold) and ``traces`` (per-fish onset-locked traces). ``signals``: the trial's
    aligned signals (a table or a list, :func:`fishtrack.align.read_aligned_signals`).
    ``behaviour``: the trial's behaviour config (its ``max_gap_s``; default the
    experiment's)."""
    st = config.stats
    beh = behaviour or config.behaviour
    out: dict[str, pd.DataFrame] = {}
    if tracks is None or tracks.empty or "state" not in tracks.columns:
        return out
    thresholds = sensitivity_thresholds(st, config.behaviour.min_passive_s)
    if thresholds:
        out["sensitivity"] = per_fish_sensitivity(
            tracks, bouts, protocol, fish_table, thresholds, max_gap_s=beh.max_gap_s,
            px_per_mm=px_per_mm, struggle_window_s=st.struggle_window_s,
            exclude_no_swimming=st.exclude_no_swimming)
    ev = events_table(tracks, epochs, protocol, fish_table)
    out["traces"] = event_locked(tracks, bouts, ev, pre_s=st.event_pre_s,
                                 post_s=st.event_post_s, bin_s=st.event_bin_s, signals=signals)
    return out
