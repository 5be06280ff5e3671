"""Onset-locked averages: activity and co-recorded signals aligned to events.

Events (:func:`events_table`), per fish:

* ``give-up onset`` — the start of every give-up in an open-loop phase (the rule of
  :func:`~fishtrack.stats.per_fish_metrics`; every give-up when there is no open-loop
  phase);
* ``open-loop onset`` — the start of every open-loop phase (feedback removed), except a phase
  starting with the record;
* ``closed-loop onset`` — the start of every closed-loop phase that follows an open-loop
  phase (feedback restored).

Around each event, in bins of ``stats.event_bin_s`` from ``-stats.event_pre_s`` to
``+stats.event_post_s`` (:func:`event_locked`):

* ``bout_rate_hz`` — bouts starting in the bin / time with a known state in the bin;
* ``bout_vigour_rad_s`` — mean vigour (mean |tail velocity|) of the bouts starting in the
  bin (empty when there is none: after a give-up onset there are no bouts for at least
  ``min_passive_s``);
* every co-recorded signal (``signal:<column>``, aligned to video time by
  :mod:`fishtrack.align`) — the mean of its samples in the bin.

Per fish, the events of one kind are pooled (sums over events, then the ratio: a rate is
all bouts over all known time in that bin), then per group the mean over fish with a 95 %
t interval. The window before (``[-pre, 0)``) and after (``[0, post)``) each event give one
value each per fish; :func:`onset_stats` tests the change (after − before) within each
group by a sign-flip permutation test over fish, and compares the change between each group
and the reference (the group × before/after interaction, a difference-in-differences) by a
permutation test, both with inverted intervals (:mod:`fishtrack.stats.compare`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from fishtrack.config import Phase, StatsConfig
from fishtrack.stats.metrics import (
    _bout_arrays,
    _fish_index,
    _fish_info,
    _key_cols,
    _map_to_fish,
    _numeric,
    _phase_table,
    _require,
    _SortedFrames,
    _states,
    giveup_table,
)

__all__ = ["EVENTS", "events_table", "event_locked", "pool_fish_traces", "group_traces",
           "onset_stats", "TRACE_COLUMNS"]

EVENTS = ("give-up onset", "open-loop onset", "closed-loop onset")
TRACE_COLUMNS = ("fish_id", "video", "arena", "fish", "group", "event", "signal", "window",
                 "t_rel_s", "num", "den", "value", "n_events")
"""Columns of the per-fish traces (``window``: ``bin``, ``before`` or ``after``; ``value`` =
``num / den``; ``n_events`` = events pooled)."""


def events_table(
    tracks: pd.DataFrame,
    epochs: pd.DataFrame | None,
    protocol: Sequence[Phase] | None,
    fish_table: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Events per fish: ``fish_id, video, arena, fish, group, event, phase, time_s``."""
    cols = ["fish_id", "video", "arena", "fish", "group", "event", "phase", "time_s"]
    gu = giveup_table(tracks, epochs, protocol, fish_table)
    has_open = any(p.kind == "open_loop" for p in protocol or [])
    if has_open:
        gu = gu[gu["phase_kind"] == "open_loop"]
    parts = [gu.assign(event="give-up onset", time_s=gu["start_s"])[cols]]
    if protocol:
        gid, uniq = _fish_index(tracks, _key_cols(tracks))
        info = _fish_info(uniq, fish_table)
        t0 = float(np.nanmin(_numeric(tracks, "time_s", "tracks"))) if len(tracks) else 0.0
        phases = sorted(protocol, key=lambda p: p.start_s)
        for k, p in enumerate(phases):
            name = None
            if p.kind == "open_loop" and p.start_s > t0 + 1e-9:
                name = "open-loop onset"
            elif p.kind == "closed_loop" and k > 0 and phases[k - 1].kind == "open_loop":
                name = "closed-loop onset"
            if name:
                parts.append(info[["fish_id", "video", "arena", "fish", "group"]].assign(
                    event=name, phase=p.name, time_s=float(p.start_s))[cols])
    out = pd.concat(parts, ignore_index=True)
    return out.sort_values(["fish_id", "time_s"], kind="stable").reset_index(drop=True)


class _Ranges:
    """Sums of per-row values of sorted (unit, time) rows over time windows, by binary
    search on a composite key."""

    def __init__(self, unit: np.ndarray, t: np.ndarray, t0: float, span: float):
        order = np.lexsort((t, unit))
        self.order = order
        # rows outside [t0, t0 + span) are clamped to its edges, which no window reaches
        self.key = unit[order] * span + np.clip(t[order] - t0, -0.5, span - 5.5)
        self.t0, self.span = t0, span

    def cumsum(self, values: np.ndarray) -> np.ndarray:
        return np.r_[0.0, np.cumsum(np.asarray(values, float)[self.order])]

    def positions(self, unit: np.ndarray, t: np.ndarray) -> np.ndarray:
        x = np.clip(t - self.t0, -1.0, self.span - 5.0)
        return np.searchsorted(self.key, unit * self.span + x - 1e-9, side="left")


def event_locked(
    tracks: pd.DataFrame,
    bouts: pd.DataFrame | None,
    events: pd.DataFrame,
    *,
    pre_s: float = 10.0,
    post_s: float = 10.0,
    bin_s: float = 1.0,
    signals: pd.DataFrame | Sequence[pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """Per-fish onset-locked traces and before/after values (:data:`TRACE_COLUMNS`).

    Parameters
    ----------
    tracks
        ``frame, time_s, fish, state`` (+ ``video, arena``): the time with a known state.
    bouts
        ``fish, start_s`` (+ ``vigour_rad_s`` or ``vigour`` and ``duration_s``).
    events
        :func:`events_table` rows.
    signals
        Aligned co-recorded signals (a table, or a list of tables: one per file): ``time_s``
        (video time, s), optional ``arena`` / ``fish`` (a per-fish signal; without them the
        signal is shared by every fish), and numeric value columns.
    """
    if events.empty or tracks.empty:
        return pd.DataFrame(columns=list(TRACE_COLUMNS))
    _require(tracks, ("frame", "time_s", "fish", "state"), "tracks")
    cols = _key_cols(tracks)
    gid, uniq = _fish_index(tracks, cols)
    n_fish = len(uniq)
    t = _numeric(tracks, "time_s", "tracks")
    known, _ = _states(tracks["state"])
    order = np.lexsort((t, gid))
    g_s, t_s = gid[order], t[order]
    same = np.r_[False, g_s[1:] == g_s[:-1]]
    dts = np.diff(t_s, prepend=np.nan)
    okd = same & (dts > 0)
    dt_f = pd.Series(dts[okd]).groupby(g_s[okd]).median().reindex(range(n_fish))
    dt_f = dt_f.fillna(float(np.median(dts[okd])) if okd.any() else 0.0).to_numpy()
    frames = _SortedFrames(g=g_s, t=t_s, dt=dt_f[g_s], known=known[order],
                           passive=np.zeros(len(order), bool))
    ev_g = _map_to_fish(events, uniq, cols, "events")
    keep = ev_g >= 0
    ev = events[keep].reset_index(drop=True)
    ev_g = ev_g[keep]
    if ev.empty:
        return pd.DataFrame(columns=list(TRACE_COLUMNS))
    t0_ev = ev["time_s"].to_numpy(float)
    n_bins = int(round((pre_s + post_s) / bin_s))
    edges = -pre_s + bin_s * np.arange(n_bins + 1)
    # windows: the bins, then before [-pre, 0) and after [0, post)
    lo_rel = np.r_[edges[:-1], -pre_s, 0.0]
    hi_rel = np.r_[edges[1:], 0.0, post_s]
    window = np.array(["bin"] * n_bins + ["before", "after"], dtype=object)
    t_rel = np.r_[edges[:-1], np.nan, np.nan]
    n_w = len(lo_rel)
    a = (t0_ev[:, None] + lo_rel[None, :]).ravel()
    b = (t0_ev[:, None] + hi_rel[None, :]).ravel()
    gg = np.repeat(ev_g, n_w)
    known_s = frames.known_time(gg, a, b)
    tmin = float(np.nanmin(t)) - pre_s - post_s - 1.0
    span = float(np.nanmax(t)) - tmin + pre_s + post_s + 20.0
    quantities: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    bt = _bout_arrays(bouts, _phase_table(None, span + tmin + 1.0), uniq, cols) \
        if bouts is not None and len(bouts) else None
    if bt is not None and len(bt.s):
        rng = _Ranges(bt.g, bt.s, tmin, span)
        lo, hi = rng.positions(gg, a), rng.positions(gg, b)
        count = (hi - lo).astype(float)
        quantities["bout_rate_hz"] = (count, known_s)
        v = bt.values["vrate"]
        if v is not None:
            fin = np.isfinite(v)
            cs, cn = rng.cumsum(np.where(fin, v, 0.0)), rng.cumsum(fin)
            quantities["bout_vigour_rad_s"] = (cs[hi] - cs[lo], cn[hi] - cn[lo])
    else:
        quantities["bout_rate_hz"] = (np.zeros(len(gg)), known_s)
    tables = [signals] if isinstance(signals, pd.DataFrame) else list(signals or [])
    for sig in tables:  # each aligned file on its own (per-fish or shared)
        if sig is not None and len(sig):
            quantities |= _signal_sums(sig, uniq, cols, gg, a, b, tmin, span)
    parts = []
    info = ev[[c for c in ("fish_id", "video", "arena", "fish", "group", "event")
               if c in ev.columns]]
    rep = info.loc[info.index.repeat(n_w)].reset_index(drop=True)
    for name, (num, den) in quantities.items():
        parts.append(rep.assign(signal=name, window=np.tile(window, len(ev)),
                                t_rel_s=np.tile(t_rel, len(ev)), num=num, den=den))
    per_event = pd.concat(parts, ignore_index=True)
    return pool_fish_traces(per_event.assign(n_events=1))


def _signal_sums(signals, uniq, cols, gg, a, b, tmin, span):
    """Sample sums and counts of every signal column in each window."""
    sig = signals.copy()
    _require(sig, ("time_s",), "aligned signals")
    ts = _numeric(sig, "time_s", "aligned signals")
    keys = [c for c in ("arena", "fish") if c in sig.columns and c in cols]
    values = [c for c in sig.columns if c not in ("time_s", "video", "arena", "fish", "frame")
              and pd.api.types.is_numeric_dtype(sig[c])]
    out = {}
    if keys:
        unit = _map_to_fish(sig, uniq, cols, "aligned signals")
        ok = unit >= 0
        rng = _Ranges(unit[ok], ts[ok], tmin, span)
        lo, hi = rng.positions(gg, a), rng.positions(gg, b)
        rows = ok
    else:  # one signal shared by every fish
        rng = _Ranges(np.zeros(len(ts), int), ts, tmin, span)
        z = np.zeros(len(gg), int)
        lo, hi = rng.positions(z, a), rng.positions(z, b)
        rows = np.ones(len(ts), bool)
    for c in values:
        v = pd.to_numeric(sig[c], errors="coerce").to_numpy(float)[rows]
        fin = np.isfinite(v)
        cs, cn = rng.cumsum(np.where(fin, v, 0.0)), rng.cumsum(fin)
        out[f"signal:{c}"] = (cs[hi] - cs[lo], cn[hi] - cn[lo])
    return out


def pool_fish_traces(traces: pd.DataFrame) -> pd.DataFrame:
    """Pool rows of the same fish, event kind, signal and window (events, or the per-fish
    traces of several trials): sums of ``num``, ``den`` and ``n_events``; ``value`` =
    ``num / den`` (NaN when ``den`` is 0)."""
    if traces.empty:
        return pd.DataFrame(columns=list(TRACE_COLUMNS))
    keys = [c for c in ("fish_id", "video", "arena", "fish", "group", "event", "signal",
                        "window", "t_rel_s") if c in traces.columns]
    tr = traces.assign(t_rel_s=traces["t_rel_s"].fillna(-1e18))
    if tr["fish_id"].duplicated().any():  # one fish in several trials: pool over them
        keys = [k for k in keys if k not in ("video",)]
        tr = tr.assign(group=tr["group"].astype(str))
    agg = tr.groupby(keys, sort=False, dropna=False)[["num", "den", "n_events"]].sum()
    agg = agg.reset_index()
    agg["t_rel_s"] = agg["t_rel_s"].where(agg["t_rel_s"] > -1e17)
    with np.errstate(invalid="ignore", divide="ignore"):
        agg["value"] = np.where(agg["den"] > 0, agg["num"] / np.where(agg["den"] > 0,
                                                                      agg["den"], 1.0), np.nan)
    for c in TRACE_COLUMNS:
        if c not in agg.columns:
            agg[c] = ""
    return agg[list(TRACE_COLUMNS)]


def group_traces(traces: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Per group, event kind, signal and bin: mean over fish of the per-fish traces, with a
    t interval; ``n_fish`` with a value."""
    from scipy import stats as sst

    cols = ["event", "signal", "group", "t_rel_s", "mean", "ci_low", "ci_high", "n_fish"]
    tr = traces[(traces["window"] == "bin") & traces["group"].notna()
                & (traces["group"].astype(str) != "")]
    if tr.empty:
        return pd.DataFrame(columns=cols)
    g = tr.dropna(subset=["value"]).groupby(["event", "signal", "group", "t_rel_s"])["value"]
    agg = g.agg(["mean", "std", "count"]).reset_index()
    tcrit = sst.t.ppf(0.5 + level / 2, np.maximum(agg["count"] - 1, 1))
    half = np.where(agg["count"] > 1, tcrit * agg["std"] / np.sqrt(agg["count"]), np.nan)
    agg["ci_low"], agg["ci_high"] = agg["mean"] - half, agg["mean"] + half
    return agg.rename(columns={"count": "n_fish"})[cols]


def onset_stats(traces: pd.DataFrame, cfg: StatsConfig, *,
                exclude: Sequence[str] = ()) -> pd.DataFrame:
    """Before vs after each event kind, per signal: within every group the mean per-fish
    change (after − before) with a sign-flip test; and every group's change against the
    reference group's (difference-in-differences, permutation test). Fish listed in
    ``exclude`` are left out."""
    from fishtrack.stats.compare import _rng, compare_paired, compare_two  # (scipy.stats)

    cols = ["event", "signal", "group", "reference", "comparison", "n", "n_reference",
            "mean_before", "mean_after", "diff", "ci_low", "ci_high", "p_value", "test"]
    tr = traces[traces["window"].isin(["before", "after"]) & ~traces["fish_id"].isin(exclude)
                & traces["group"].notna() & (traces["group"].astype(str) != "")]
    if tr.empty:
        return pd.DataFrame(columns=cols)
    wide = tr.pivot_table(index=["event", "signal", "group", "fish_id"], columns="window",
                          values="value", aggfunc="first").reset_index()
    if not {"before", "after"} <= set(wide.columns):
        return pd.DataFrame(columns=cols)
    wide["change"] = wide["after"] - wide["before"]
    rows = []
    ref = cfg.reference_group
    for (event, signal), sub in wide.groupby(["event", "signal"], sort=False):
        sub = sub.dropna(subset=["change"])
        for group, gsub in sub.groupby("group"):
            r = compare_paired(gsub["change"].to_numpy(), cfg,
                               rng=_rng(cfg.seed, "onset", event, signal, group))
            rows.append({"event": event, "signal": signal, "group": group, "reference": "",
                         "comparison": "after vs before", "n": r["n"], "n_reference": np.nan,
                         "mean_before": gsub["before"].mean(), "mean_after": gsub["after"].mean(),
                         **{k: r[k] for k in ("diff", "ci_low", "ci_high", "p_value", "test")}})
        if ref not in set(sub["group"]):
            continue
        r0 = sub[sub["group"] == ref]
        for group in sorted(set(sub["group"]) - {ref}):
            g1 = sub[sub["group"] == group]
            r = compare_two(g1["change"].to_numpy(), r0["change"].to_numpy(), cfg,
                            rng=_rng(cfg.seed, "onset-did", event, signal, group))
            rows.append({"event": event, "signal": signal, "group": group, "reference": ref,
                         "comparison": "change vs reference (difference-in-differences)",
                         "n": r["n"], "n_reference": r["n_reference"],
                         "mean_before": np.nan, "mean_after": np.nan,
                         **{k: r.get(k, np.nan) for k in ("diff", "ci_low", "ci_high",
                                                          "p_value", "test")}})
    return pd.DataFrame(rows, columns=cols)
