"""Per-fish metrics per protocol phase, and time-binned passive fraction.

The fish is the unit of analysis: every table here has one row per fish per phase (or per
time bin), never one row per frame or epoch. Definitions and units are in
``docs/statistics.md``; in short, for one fish and one phase (half-open ``[start_s, end_s)``):

* ``passive_fraction`` = passive frames / frames with a known state (``active`` or
  ``passive``); ``unknown`` frames (fish lost) are left out of numerator and denominator.
* A **give-up** of the phase is a passive epoch that *begins* inside the phase, after the
  fish's first active frame in it. An epoch keeps its identity across a phase boundary: it
  belongs to the phase it began in, with its whole duration; what continues into the next
  phase is *recovery* (``passive_at_start``, ``latency_origin_s``), not a new give-up. A fish
  already resting at the phase onset is not at risk of giving up until it swims.
* ``n_passive_epochs``: give-ups of the phase; ``mean_passive_epoch_s``: mean whole duration
  of those whose end was observed (``n_complete_passive_epochs`` of them); epochs cut by the
  end of the record or a long detection gap are left out of the mean.
* ``latency_to_first_passive_s``: from the fish's first active frame in the phase
  (``latency_origin_s`` after the phase start; 0 when it is active at the onset) to the start
  of its first give-up; when there is none it is censored at the end of the fish's last frame
  with a known state in the phase (unobserved time is not survival). NaN when the fish never
  swam in the phase (never at risk).
* ``bout_rate_hz``: bouts starting in the phase / time with a known state (s).
* ``mean_bout_duration_s``, ``mean_beat_hz``, ``mean_bout_vigour_rad_s`` (mean |tail
  velocity| in a bout), ``mean_bout_effort_rad`` (its integral over the bout): means over the
  bouts starting in the phase. ``mean_vigour`` (kept for compatibility) equals
  ``mean_bout_effort_rad``.
* ``distance_px``: summed head displacement between consecutive detected frames of the phase.

Pooled rows (``phase`` = ``closed_loop`` / ``open_loop``, ``pooled`` True) pool the frames,
give-ups and bouts of every phase of that kind; their latency is measured on the
concatenated time at risk in those phases (see :func:`per_fish_metrics`).

:data:`METRIC_SPECS` is the registry of compared metrics (unit, label, how they are tested):
a new metric is one entry there plus its column here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from fishtrack.config import Phase
from fishtrack.errors import FishtrackError, ManifestError

__all__ = [
    "METRICS",
    "METRIC_SPECS",
    "MetricSpec",
    "POOLED_KINDS",
    "FISH_KEYS",
    "per_fish_metrics",
    "binned_passive_fraction",
    "giveup_table",
]


@dataclass(frozen=True)
class MetricSpec:
    """A per-fish metric that is compared between groups.

    ``kind`` says how: ``mean`` (difference of group means of one value per fish) or
    ``time_to_event`` (censored; Kaplan-Meier, log-rank, RMST), whose censoring flag is the
    column ``censor``. ``kinds``: the phase kinds in which the metric is defined and compared
    (None: every phase, pooled rows included).
    """

    name: str
    unit: str
    label: str
    kind: Literal["mean", "time_to_event"] = "mean"
    censor: str | None = None
    kinds: tuple[str, ...] | None = None


METRIC_SPECS: dict[str, MetricSpec] = {
    s.name: s
    for s in (
        MetricSpec("passive_fraction", "", "passive fraction"),
        MetricSpec("n_passive_epochs", "count", "number of give-ups (passive epochs)"),
        MetricSpec("mean_passive_epoch_s", "s", "mean passive epoch duration"),
        MetricSpec("latency_to_first_passive_s", "s", "latency to the first give-up",
                   "time_to_event", "latency_censored"),
        MetricSpec("bout_rate_hz", "Hz", "bout rate"),
        MetricSpec("mean_bout_duration_s", "s", "mean bout duration"),
        MetricSpec("mean_beat_hz", "Hz", "mean tail-beat frequency"),
        MetricSpec("mean_bout_vigour_rad_s", "rad/s", "mean bout vigour"),
        MetricSpec("mean_bout_effort_rad", "rad", "mean bout effort"),
        MetricSpec("distance_px", "px", "distance swum"),
        MetricSpec("distance_mm", "mm", "distance swum"),
        # assay analyses (issue 16): effort before giving up, struggle, recovery
        MetricSpec("n_bouts_before_giveup", "count", "bouts before the first give-up",
                   "time_to_event", "latency_censored"),
        MetricSpec("effort_before_giveup_rad", "rad", "effort before the first give-up",
                   "time_to_event", "latency_censored"),
        MetricSpec("struggle_rate_change_hz", "Hz",
                   "struggle: bout rate change from closed to open loop", kinds=("open_loop",)),
        MetricSpec("struggle_vigour_change_rad_s", "rad/s",
                   "struggle: vigour change from closed to open loop", kinds=("open_loop",)),
        MetricSpec("recovery_s", "s", "recovery: time to the first bout", "time_to_event",
                   "recovery_censored", kinds=("closed_loop",)),
    )
}
"""Compared metrics in table order (``distance_mm`` only with a calibration; ``distance_px``
is not compared when ``distance_mm`` is there)."""

METRICS = tuple(METRIC_SPECS)
"""Names of the per-fish behavioural metrics compared between groups. ``detected_fraction``,
``known_fraction``, ``latency_origin_s``, ``passive_at_start``, ``n_complete_passive_epochs``
and ``mean_vigour`` (= ``mean_bout_effort_rad``) are in ``per_fish.csv`` but not compared;
so are the struggle inputs and ratios (``struggle_bout_rate_hz``, ``baseline_bout_rate_hz``,
``struggle_rate_ratio``, ... : their group-by-loop interaction is the compared ``*_change_*``
column)."""

_ASSAY_METRICS = (
    "n_bouts_before_giveup", "effort_before_giveup_rad",
    "struggle_bout_rate_hz", "baseline_bout_rate_hz", "struggle_rate_ratio",
    "struggle_rate_change_hz", "struggle_vigour_rad_s", "baseline_vigour_rad_s",
    "struggle_vigour_ratio", "struggle_vigour_change_rad_s",
    "recovery_s", "recovery_censored",
)
"""Columns added for the assay analyses (issue 16), after the older ones."""

_OUTPUT_METRICS = (
    "passive_fraction", "n_passive_epochs", "mean_passive_epoch_s", "n_complete_passive_epochs",
    "latency_to_first_passive_s", "latency_censored", "latency_origin_s", "passive_at_start",
    "bout_rate_hz", "mean_bout_duration_s", "mean_beat_hz", "mean_vigour",
    "mean_bout_vigour_rad_s", "mean_bout_effort_rad", "distance_px", "distance_mm",
    *_ASSAY_METRICS,
)
"""Metric columns of ``per_fish.csv`` in order."""

POOLED_KINDS = ("closed_loop", "open_loop")
"""Phase kinds that get a pooled row per fish."""

FISH_KEYS = ("video", "arena", "fish")
"""Columns that identify a tracked fish (those present in the tracks table are used)."""

_OUTPUT_RESERVED = (
    *FISH_KEYS, "group", "phase", "phase_kind", "pooled", "phase_start_s", "phase_end_s",
    "n_frames", "detected_fraction", "known_fraction", *_OUTPUT_METRICS,
    "bin_start_s", "bin_end_s", "time_in_phase_s",
)
"""Output column names; a fish-table column with one of these names (other than the keys
and ``group``) is carried as ``<name>_manifest``."""
_TRACK_REQUIRED = ("frame", "time_s", "fish", "state")
_EPOCH_REQUIRED = ("fish", "state", "start_s", "end_s")
_BOUT_REQUIRED = ("fish", "start_s")
_EPS = 1e-9


# --------------------------------------------------------------------------------------------
# input checks


def _require(df: pd.DataFrame, cols: Sequence[str], source: str) -> None:
    if not isinstance(df, pd.DataFrame):
        raise FishtrackError(f"{source}: expected a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise FishtrackError(
            f"{source}: missing column(s) {', '.join(missing)} (needed: {', '.join(cols)})"
        )


def _numeric(df: pd.DataFrame, col: str, source: str) -> np.ndarray:
    values = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
    bad = np.isnan(values) & df[col].notna().to_numpy()
    if bad.any():
        raise FishtrackError(f"{source}: column {col} has non-numeric values")
    return values


def _states(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """``(known, passive)`` per row from a state column (case-insensitive)."""
    code, uniques = pd.factorize(values, use_na_sentinel=False)
    names = pd.Series(uniques, dtype=object).astype(str).str.strip().str.lower().to_numpy()
    passive = (names == "passive")[code]
    known = passive | (names == "active")[code]
    return known, passive


def _phase_table(protocol: Sequence[Phase] | None, t_end: float) -> pd.DataFrame:
    """Phases sorted by start, checked for overlap; one phase ``all`` when there is none."""
    if not protocol:
        return pd.DataFrame(
            {"phase": ["all"], "kind": ["other"], "start_s": [0.0], "end_s": [max(t_end, _EPS)]}
        )
    phases = sorted(protocol, key=lambda p: p.start_s)
    for a, b in zip(phases[:-1], phases[1:], strict=True):
        if b.start_s < a.end_s - _EPS:
            raise FishtrackError(f"protocol: phases {a.name!r} and {b.name!r} overlap")
    names = [p.name for p in phases]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise FishtrackError(f"protocol: phase names must be unique; repeated: {', '.join(dup)}")
    for kind in POOLED_KINDS:
        of_kind = [p.name for p in phases if p.kind == kind]
        if kind in names and of_kind != [kind]:
            raise FishtrackError(
                f"protocol: phase name {kind!r} is reserved for the pooled rows of kind {kind}; "
                "rename the phase"
            )
    return pd.DataFrame(
        {
            "phase": names,
            "kind": [p.kind for p in phases],
            "start_s": [float(p.start_s) for p in phases],
            "end_s": [float(p.end_s) for p in phases],
        }
    )


def _phase_index(t: np.ndarray, phases: pd.DataFrame) -> np.ndarray:
    """Index into ``phases`` of the phase containing each time; -1 outside every phase."""
    starts = phases["start_s"].to_numpy()
    ends = phases["end_s"].to_numpy()
    k = np.searchsorted(starts, t, side="right") - 1
    kc = np.clip(k, 0, len(starts) - 1)
    inside = (k >= 0) & (t < ends[kc])
    return np.where(inside, kc, -1)


# --------------------------------------------------------------------------------------------
# fish identity


def _key_cols(tracks: pd.DataFrame) -> list[str]:
    return [c for c in FISH_KEYS if c in tracks.columns]


def _key_frame(df: pd.DataFrame, cols: Sequence[str]) -> pd.DataFrame:
    """Key columns as strings (missing arena -> ''), so tables written by different stages
    (ints vs strings) join."""
    out = pd.DataFrame(index=df.index)
    for c in cols:
        out[c] = _as_text(df[c]).str.strip() if c in df.columns else ""
    return out


def _as_text(values: pd.Series) -> pd.Series:
    """Values as strings; integer-valued floats (ints read back with NaNs) without '.0';
    missing values stay missing."""
    if pd.api.types.is_float_dtype(values.dtype):
        v = values.to_numpy(dtype=float)
        whole = np.isfinite(v) & (v == np.round(v))
        text = values.astype(str)
        text[whole] = pd.Series(v[whole].astype(np.int64), index=values.index[whole]).astype(str)
        return text.where(values.notna())
    return values.astype(object).where(values.notna()).astype(str).where(values.notna())


def _fish_index(tracks: pd.DataFrame, cols: list[str]) -> tuple[np.ndarray, pd.DataFrame]:
    """Fish number of every track row (sorted by key) and the keys (as strings) per fish.

    Keys are factorised on the raw values and converted to strings only once per fish, so
    tables with millions of rows stay fast.
    """
    codes = np.zeros(len(tracks), np.int64)
    for c in cols:
        code, uniques = pd.factorize(tracks[c], use_na_sentinel=False)
        codes = codes * (len(uniques) + 1) + code
    _, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
    uniq = _key_frame(tracks.iloc[first], cols).reset_index(drop=True)
    order = uniq.sort_values(cols).index.to_numpy()
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    gid = rank[inverse]
    uniq = uniq.iloc[order].reset_index(drop=True)
    if uniq.duplicated().any():
        raise FishtrackError("tracks: fish keys differ only in type (e.g. 1 and '1')")
    return gid, uniq


def _map_to_fish(df: pd.DataFrame, uniq: pd.DataFrame, cols: list[str], source: str) -> np.ndarray:
    """gid of each row of ``df`` (epochs or bouts); -1 for fish not in the tracks."""
    use = [c for c in cols if c in df.columns]
    lookup = uniq[use].copy()
    if lookup.duplicated().any():
        missing = ", ".join(c for c in cols if c not in use)
        raise FishtrackError(
            f"{source}: no {missing} column, so its rows cannot be matched to the tracked fish"
        )
    lookup["_gid"] = np.arange(len(uniq))
    keys = _key_frame(df, use).reset_index(drop=True)
    merged = keys.merge(lookup, on=use, how="left")
    return merged["_gid"].fillna(-1).to_numpy(dtype=int)


def _default_ids(uniq: pd.DataFrame) -> pd.Series:
    fish = uniq["fish"]
    ids = fish.copy()
    if "arena" in uniq.columns and fish.nunique() < len(uniq):
        both = uniq["arena"] + "-" + fish
        ids = fish.where(fish == uniq["arena"], both)
    if "video" in uniq.columns and uniq["video"].nunique() > 1:
        ids = uniq["video"] + ":" + ids
    return ids


def _truthy(values: pd.Series) -> pd.Series:
    """Flags: True/1/yes/y/x/true (any case) are true; False/0/empty/NaN false."""
    if pd.api.types.is_bool_dtype(values.dtype) and not values.hasnans:
        return values.astype(bool)
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values):
        return values.fillna(0).astype(float) != 0
    code, uniques = pd.factorize(values, use_na_sentinel=True)
    text = pd.Series(uniques, dtype=object).astype(str).str.strip().str.lower()
    true = np.r_[text.isin({"true", "1", "1.0", "yes", "y", "x"}).to_numpy(), False]
    return pd.Series(true[code], index=values.index)


def _fish_info(uniq: pd.DataFrame, fish_table: pd.DataFrame | None) -> pd.DataFrame:
    """One row per tracked fish: fish_id, video, arena, fish, group + fish-table columns."""
    info = uniq.copy()
    if "video" not in info.columns:
        info["video"] = ""
    if "arena" not in info.columns:
        info["arena"] = ""
    info["fish_id"] = _default_ids(uniq).to_numpy()
    info["group"] = pd.Series([None] * len(info), dtype=object)
    if fish_table is None:
        return info
    source = "fish table"
    if not isinstance(fish_table, pd.DataFrame):
        raise ManifestError(f"{source}: expected a pandas DataFrame")
    ft = fish_table.copy()
    if "group" not in ft.columns:
        raise ManifestError(f"{source}: missing column 'group'")
    on = [c for c in FISH_KEYS if c in ft.columns and c in uniq.columns]
    if "video" in ft.columns and "video" not in uniq.columns:
        videos = ft["video"].dropna().astype(str).unique()
        if len(videos) > 1:
            raise ManifestError(
                f"{source}: lists {len(videos)} videos but the tracks have no 'video' column; "
                "pass the rows of one video or add a video column to the tracks"
            )
    if not on:
        raise ManifestError(f"{source}: needs an 'arena' (or 'fish') column to match tracked fish")
    keys = _key_frame(ft, on)
    dup = keys.duplicated(keep=False)
    if dup.any():
        first = keys[dup].iloc[0]
        where = ", ".join(f"{c} {first[c]}" for c in on)
        raise ManifestError(f"{source}: {where} is listed more than once")
    ft = ft.rename(columns={c: f"{c}_manifest" for c in ft.columns
                            if c in _OUTPUT_RESERVED and c not in (*FISH_KEYS, "group")})
    extra = [c for c in ft.columns if c not in on and c != "fish_id"]
    right = pd.concat([keys, ft[extra].reset_index(drop=True).set_axis(keys.index)], axis=1)
    if "fish_id" in ft.columns:
        ids = _as_text(ft["fish_id"]).str.strip()
        right["_ft_id"] = ids.where(ids != "").to_numpy()
    right["_matched"] = True
    base = info.drop(columns=[c for c in extra if c in info.columns and c not in on])
    merged = base.merge(right, on=on, how="left", suffixes=("", "_ft"))
    matched = merged["_matched"].eq(True).to_numpy()
    if "_ft_id" in merged.columns:
        ft_id = merged["_ft_id"]
        per_row = merged.groupby(on + ["_ft_id"], dropna=False)["fish"].transform("size")
        ft_id = ft_id.where(per_row <= 1, ft_id + "-" + merged["fish"])
        merged["fish_id"] = np.where(matched & ft_id.notna(), ft_id, merged["fish_id"])
    return merged.drop(columns=[c for c in ("_ft_id", "_matched") if c in merged.columns])


# --------------------------------------------------------------------------------------------
# per-fish, per-phase sufficient statistics


@dataclass
class _SortedFrames:
    """Frames sorted by fish then frame: fish number, time, frame duration, state codes."""

    g: np.ndarray
    t: np.ndarray
    dt: np.ndarray  # frame duration of each row's fish (s)
    known: np.ndarray
    passive: np.ndarray

    def state_at(self, gid: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(found, active)`` of the first frame of fish ``gid`` at or after time ``t``,
        found only when that frame starts within 1.5 frame durations of ``t`` (a frame
        after a time jump says nothing about what happened at ``t``)."""
        n = len(self.t)
        if n == 0 or len(gid) == 0:
            return np.zeros(len(gid), bool), np.zeros(len(gid), bool)
        span = float(np.nanmax(self.t) - np.nanmin(self.t)) + 10.0
        key = self.g * span + (self.t - np.nanmin(self.t))
        want = gid * span + (t - np.nanmin(self.t)) - 1e-6
        pos = np.searchsorted(key, want, side="left")
        pc = np.clip(pos, 0, n - 1)
        found = (pos < n) & (self.g[pc] == gid) & (self.t[pc] < t + 1.5 * self.dt[pc] + 1e-9)
        active = found & self.known[pc] & ~self.passive[pc]
        return found, active

    def known_time(self, gid: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Time (s) with a known state of fish ``gid`` in ``[a, b)``: its known frames
        starting in the window times its frame duration."""
        n = len(self.t)
        if n == 0 or len(gid) == 0:
            return np.zeros(len(gid))
        t0, t1 = float(np.nanmin(self.t)), float(np.nanmax(self.t))
        span = t1 - t0 + 10.0
        key = self.g * span + (self.t - t0)
        cum = np.r_[0, np.cumsum(self.known)]
        dt = np.r_[self.dt, 0.0]

        def pos(x):
            x = np.clip(np.asarray(x, float) - t0, -1.0, t1 - t0 + 5.0)
            return np.searchsorted(key, gid * span + x - 1e-9, side="left")

        lo, hi = pos(a), pos(b)
        first = np.searchsorted(self.g, gid, side="left")
        return (cum[hi] - cum[lo]) * dt[np.minimum(first, n)] * (hi > lo)


def _frame_stats(tracks: pd.DataFrame, phases: pd.DataFrame, gid: np.ndarray, n_fish: int):
    """Per (fish, phase) frame counts, first active frame, end of the last known frame,
    state at the onset and distance (flat arrays); and the sorted frames."""
    n_ph = len(phases)
    t = _numeric(tracks, "time_s", "tracks")
    frame = _numeric(tracks, "frame", "tracks")
    known, passive = _states(tracks["state"])
    detected = (
        _truthy(tracks["detected"]).to_numpy()
        if "detected" in tracks.columns
        else np.ones(len(tracks), bool)
    )
    x = _numeric(tracks, "x", "tracks") if "x" in tracks.columns else np.full(len(t), np.nan)
    y = _numeric(tracks, "y", "tracks") if "y" in tracks.columns else np.full(len(t), np.nan)

    order = np.lexsort((frame, gid))
    g, t, detected = gid[order], t[order], detected[order]
    known, passive = known[order], passive[order]
    x, y = x[order], y[order]
    ph = _phase_index(t, phases)

    # frame duration per fish: median interval between consecutive frames
    same = np.r_[False, g[1:] == g[:-1]]
    dts = np.diff(t, prepend=np.nan)
    dts_ok = same & (dts > 0)
    dt_fish = pd.Series(dts[dts_ok]).groupby(g[dts_ok]).median()
    dt_all = float(np.median(dts[dts_ok])) if dts_ok.any() else 0.0
    dt = dt_fish.reindex(range(n_fish)).fillna(dt_all).to_numpy()

    inside = ph >= 0
    cell = np.where(inside, g * n_ph + ph, 0)
    size = n_fish * n_ph

    def count(mask: np.ndarray) -> np.ndarray:
        return np.bincount(cell[mask & inside], minlength=size).astype(float)

    active = known & ~passive
    out = {
        "n_frames": count(np.ones(len(t), bool)),
        "n_detected": count(detected),
        "n_known": count(known),
        "n_passive": count(passive),
    }
    starts = np.tile(phases["start_s"].to_numpy(), n_fish)
    ends = np.tile(phases["end_s"].to_numpy(), n_fish)
    # first active frame (the latency clock starts there) and end of the last known frame
    first_active = np.full(size, np.inf)
    np.minimum.at(first_active, cell[inside & active], t[inside & active])
    out["first_active_s"] = np.where(np.isfinite(first_active), first_active, np.nan)
    known_end = np.full(size, -np.inf)
    sel = inside & known
    np.maximum.at(known_end, cell[sel], np.minimum(t[sel] + dt[g[sel]], ends[cell[sel]]))
    out["known_end_s"] = np.where(np.isfinite(known_end), known_end, np.nan)
    # state of the first frame of the phase (rows of a cell are contiguous and time-ordered)
    first_row = np.flatnonzero(inside & np.r_[True, cell[1:] != cell[:-1]])
    at_start = np.zeros(size)
    at_start[cell[first_row]] = passive[first_row]
    out["passive_at_start"] = at_start

    # distance: consecutive detected, finite positions of the same fish in the same phase
    valid = np.flatnonzero(detected & np.isfinite(x) & np.isfinite(y) & inside)
    if len(valid) > 1:
        a, b = valid[:-1], valid[1:]
        ok = (g[a] == g[b]) & (ph[a] == ph[b])
        step = np.hypot(x[b] - x[a], y[b] - y[a])[ok]
        dist = np.bincount(cell[b][ok], weights=step, minlength=size)
    else:
        dist = np.zeros(size)
    out["distance_px"] = dist
    out["known_s"] = out["n_known"] * np.repeat(dt, n_ph)
    out["phase_start"] = starts
    frames = _SortedFrames(g=g, t=t, dt=dt[g] if len(g) else np.zeros(0), known=known,
                           passive=passive)
    return out, frames


def _giveups(epochs, phases, uniq, cols, first_active: np.ndarray):
    """Give-ups: passive epochs beginning in a phase after the fish's first active frame in
    it, as arrays ``(fish number, phase index, start_s, end_s)``."""
    n_ph = len(phases)
    if epochs is None or len(epochs) == 0:
        z = np.zeros(0)
        return z.astype(int), z.astype(int), z, z
    _require(epochs, _EPOCH_REQUIRED, "epochs")
    state = epochs["state"].astype(str).str.strip().str.lower().to_numpy()
    ep = epochs[(state == "passive") & ~_rest_resumed(epochs, state, uniq, cols)]
    g = _map_to_fish(ep, uniq, cols, "epochs")
    s = _numeric(ep, "start_s", "epochs")
    e = _numeric(ep, "end_s", "epochs")
    ph = _phase_index(s, phases)
    ok = (g >= 0) & np.isfinite(s) & np.isfinite(e) & (ph >= 0)
    g, s, e, ph = g[ok], s[ok], e[ok], ph[ok]
    with np.errstate(invalid="ignore"):
        give_up = s >= first_active[g * n_ph + ph] - 1e-9  # NaN (never active) -> False
    return g[give_up], ph[give_up], s[give_up], e[give_up]


def _rest_resumed(epochs, state: np.ndarray, uniq, cols) -> np.ndarray:
    """Per epoch: True on a passive epoch right after an ``unknown`` one that follows a
    passive epoch of the same fish. The fish was resting when it was lost and when it was
    found again; whether it swam unseen cannot be told (the behaviour stage makes a gap
    that could hide a bout ``unknown``), so the rest resumed is not a new give-up, as a
    fish found resting at a phase onset is not."""
    g = _map_to_fish(epochs, uniq, cols, "epochs")
    s = _numeric(epochs, "start_s", "epochs")
    order = np.lexsort((s, g))
    gs, st = g[order], state[order]
    out = np.zeros(len(epochs), bool)
    if len(order) >= 3:
        same = (gs[2:] == gs[1:-1]) & (gs[1:-1] == gs[:-2])
        hit = same & (st[2:] == "passive") & (st[1:-1] == "unknown") & (st[:-2] == "passive")
        out[order[2:][hit]] = True
    return out


def _epoch_stats(epochs, phases, uniq, cols, n_fish, frames: _SortedFrames,
                 first_active: np.ndarray) -> dict[str, np.ndarray]:
    """Per (fish, phase): give-ups (passive epochs beginning in the phase after the fish's
    first active frame in it), the first one's start, and the complete ones' durations."""
    n_ph = len(phases)
    size = n_fish * n_ph
    out = {k: np.zeros(size) for k in ("n_epochs", "n_complete", "complete_s")}
    out["first_passive_abs"] = np.full(size, np.nan)
    g, ph, s, e = _giveups(epochs, phases, uniq, cols, first_active)
    if len(g) == 0:
        return out
    cell = g * n_ph + ph
    _, complete = frames.state_at(g, e)  # the fish was seen swimming right after it
    out["n_epochs"] = np.bincount(cell, minlength=size).astype(float)
    out["n_complete"] = np.bincount(cell[complete], minlength=size).astype(float)
    out["complete_s"] = np.bincount(cell[complete], weights=(e - s)[complete], minlength=size)
    first = np.full(size, np.inf)
    np.minimum.at(first, cell, s)
    out["first_passive_abs"] = np.where(np.isfinite(first), first, np.nan)
    return out


def giveup_table(
    tracks: pd.DataFrame,
    epochs: pd.DataFrame | None,
    protocol: Sequence[Phase] | None,
    fish_table: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Every give-up (the rule of :func:`per_fish_metrics`): ``fish_id, video, arena, fish,
    group, phase, phase_kind, start_s, end_s``, in time order per fish."""
    _require(tracks, _TRACK_REQUIRED, "tracks")
    cols = _key_cols(tracks)
    t_all = _numeric(tracks, "time_s", "tracks")
    t_end = float(np.nanmax(t_all)) + _EPS if len(t_all) and np.isfinite(t_all).any() else 0.0
    phases = _phase_table(protocol, t_end * (1 + 1e-9) + 1.0)
    gid, uniq = _fish_index(tracks, cols)
    info = _fish_info(uniq, fish_table)
    sums, _ = _frame_stats(tracks, phases, gid, len(uniq))
    g, ph, s, e = _giveups(epochs, phases, uniq, cols, sums["first_active_s"])
    out = info.iloc[g][["fish_id", "video", "arena", "fish", "group"]].reset_index(drop=True)
    out["phase"] = phases["phase"].to_numpy()[ph]
    out["phase_kind"] = phases["kind"].to_numpy()[ph]
    out["start_s"] = s
    out["end_s"] = e
    return out.sort_values(["fish_id", "start_s"], kind="stable").reset_index(drop=True)


_BOUT_MEANS = ("dur", "beat", "vig", "vrate", "effort")


@dataclass
class _Bouts:
    """Bouts matched to tracked fish and phases: fish number, phase index, start and the
    per-bout values (None when the bouts table has no such column)."""

    g: np.ndarray
    ph: np.ndarray
    s: np.ndarray
    values: dict[str, np.ndarray | None]

    @classmethod
    def empty(cls) -> _Bouts:
        z = np.zeros(0)
        return cls(z.astype(int), z.astype(int), z, {k: None for k in _BOUT_MEANS})


def _bout_arrays(bouts, phases, uniq, cols) -> _Bouts:
    if bouts is None or len(bouts) == 0:
        return _Bouts.empty()
    _require(bouts, _BOUT_REQUIRED, "bouts")
    g = _map_to_fish(bouts, uniq, cols, "bouts")
    s = _numeric(bouts, "start_s", "bouts")
    ph = _phase_index(s, phases)
    ok = (g >= 0) & (ph >= 0)

    def col(name: str) -> np.ndarray | None:
        return _numeric(bouts, name, "bouts")[ok] if name in bouts.columns else None

    vigour, duration = col("vigour"), col("duration_s")
    values = {
        "dur": duration,
        "beat": col("beat_hz"),
        "vig": vigour,
        # bout tables written before vigour_rad_s / effort_rad existed: the old ``vigour``
        # column is the effort (integral of |tail velocity|, rad) and vigour = effort / duration
        "effort": col("effort_rad") if "effort_rad" in bouts.columns else vigour,
        "vrate": col("vigour_rad_s") if "vigour_rad_s" in bouts.columns else (
            None if vigour is None or duration is None else _ratio(vigour, duration)),
    }
    return _Bouts(g[ok], ph[ok], s[ok], values)


def _bout_stats(b: _Bouts, n_ph: int, n_fish: int) -> dict[str, np.ndarray]:
    """Per (fish, phase): bouts starting in the phase; sums and counts for the means."""
    size = n_fish * n_ph
    cell = b.g * n_ph + b.ph
    out = {"n_bouts": np.bincount(cell, minlength=size).astype(float)}
    for key in _BOUT_MEANS:
        v = b.values[key]
        fin = np.isfinite(v) if v is not None else np.zeros(len(cell), bool)
        out[f"{key}_sum"] = np.bincount(cell[fin], weights=v[fin] if v is not None else None,
                                        minlength=size).astype(float)
        out[f"{key}_n"] = np.bincount(cell[fin], minlength=size).astype(float)
    return out


def _previous_closed_loop(phases: pd.DataFrame) -> np.ndarray:
    """Index of the closed-loop phase that ends last at or before each phase starts (the
    struggle baseline of an open-loop phase); -1 when there is none."""
    kinds = phases["kind"].to_numpy()
    starts = phases["start_s"].to_numpy()
    ends = phases["end_s"].to_numpy()
    out = np.full(len(phases), -1)
    for k in range(len(phases)):
        cand = np.flatnonzero((kinds == "closed_loop") & (ends <= starts[k] + _EPS))
        if len(cand):
            out[k] = cand[np.argmax(ends[cand])]
    return out


def _struggle_stats(b: _Bouts, phases: pd.DataFrame, frames: _SortedFrames, n_fish: int,
                    window_s: float) -> dict[str, np.ndarray]:
    """Per (fish, open-loop phase): bouts, known time and vigour in the first ``window_s``
    of the phase (struggle) and in the last ``window_s`` of the closed-loop phase before it
    (baseline). Additive sums, so pooled rows add them up."""
    n_ph = len(phases)
    size = n_fish * n_ph
    keys = ("str_n", "str_known_s", "str_vsum", "str_vn",
            "base_n", "base_known_s", "base_vsum", "base_vn")
    out = {k: np.zeros(size) for k in (*keys, "struggle_defined")}
    starts = phases["start_s"].to_numpy()
    ends = phases["end_s"].to_numpy()
    prev = _previous_closed_loop(phases)
    is_open = (phases["kind"].to_numpy() == "open_loop") & (prev >= 0)
    if not is_open.any() or not window_s > 0:
        return out
    # windows per phase: struggle [start, start + w) and baseline [end_prev - w, end_prev)
    s_lo, s_hi = starts, np.minimum(starts + window_s, ends)
    pj = np.where(prev >= 0, prev, 0)
    b_lo, b_hi = np.maximum(starts[pj], ends[pj] - window_s), ends[pj]
    gid = np.repeat(np.arange(n_fish), n_ph)
    k_all = np.tile(np.arange(n_ph), n_fish)
    use = is_open[k_all]
    out["str_known_s"][use] = frames.known_time(gid[use], s_lo[k_all[use]], s_hi[k_all[use]])
    out["base_known_s"][use] = frames.known_time(gid[use], b_lo[k_all[use]], b_hi[k_all[use]])
    vr = b.values["vrate"]
    vfin = np.isfinite(vr) if vr is not None else np.zeros(len(b.s), bool)
    vval = np.where(vfin, vr, 0.0) if vr is not None else np.zeros(len(b.s))
    # struggle: bouts of an open-loop phase in its first window_s
    in_s = is_open[b.ph] & (b.s < s_hi[b.ph])
    cell = b.g * n_ph + b.ph
    out["str_n"] = np.bincount(cell[in_s], minlength=size).astype(float)
    out["str_vsum"] = np.bincount(cell[in_s], weights=vval[in_s], minlength=size)
    out["str_vn"] = np.bincount(cell[in_s & vfin], minlength=size).astype(float)
    # baseline: bouts of a closed-loop phase in its last window_s, credited to every open-loop
    # phase that uses it as its baseline
    for k in np.flatnonzero(is_open):
        j = prev[k]
        sel = (b.ph == j) & (b.s >= b_lo[k]) & (b.s < b_hi[k])
        tgt = b.g[sel] * n_ph + k
        out["base_n"] += np.bincount(tgt, minlength=size)
        out["base_vsum"] += np.bincount(tgt, weights=vval[sel], minlength=size)
        out["base_vn"] += np.bincount(tgt[vfin[sel]], minlength=size)
    out["struggle_defined"] = use.astype(float)
    return out


def _effort_stats(b: _Bouts, cells: pd.DataFrame, n_ph: int) -> None:
    """Bouts and summed effort from each phase's start to the fish's first give-up in it (or
    to the end of its last known frame when it never gave up), in place: ``eff_n``,
    ``eff_sum`` (NaN when the fish never swam in the phase, like the latency)."""
    size = len(cells)
    give_up = cells["first_passive_abs"].to_numpy()
    event = cells["event"].to_numpy(bool)
    end = np.where(event, give_up, cells["known_end_s"].to_numpy())
    seen = np.isfinite(cells["latency_s"].to_numpy())
    cell = b.g * n_ph + b.ph
    with np.errstate(invalid="ignore"):
        before = b.s < end[cell] - 1e-9 if len(cell) else np.zeros(0, bool)
    n = np.bincount(cell[before], minlength=size).astype(float)
    ev = b.values["effort"]
    if ev is None:
        total = np.full(size, np.nan)
    else:
        fin = np.isfinite(ev)
        total = np.bincount(cell[before & fin], weights=ev[before & fin], minlength=size)
        has_nan = np.bincount(cell[before & ~fin], minlength=size) > 0
        total = np.where(has_nan, np.nan, total)
    cells["eff_n"] = np.where(seen, n, np.nan)
    cells["eff_sum"] = np.where(seen, total, np.nan)


def _recovery(cells: pd.DataFrame) -> None:
    """Recovery of fish passive at the start of a closed-loop phase, in place: time from the
    phase start to the fish's first active frame (the start of its first bout), censored at
    the end of its last known frame when it never swam in the phase."""
    start = cells["phase_start"].to_numpy()
    first = cells["first_active_s"].to_numpy()
    known_end = cells["known_end_s"].to_numpy()
    at_risk = (cells["passive_at_start"].to_numpy() > 0) & (cells["kind"].to_numpy() == "closed_loop")
    swam = np.isfinite(first)
    val = np.where(swam, first - start, known_end - start)
    ok = at_risk & np.isfinite(val)
    cells["recovery_s"] = np.where(ok, val, np.nan)
    cells["recovery_censored"] = pd.Series(np.where(ok, ~swam, pd.NA), dtype="boolean").to_numpy()


def _ratio(num, den) -> np.ndarray:
    num = np.asarray(num, dtype=float)
    den = np.asarray(den, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _metrics_from_sums(s: pd.DataFrame, px_per_mm: float | None) -> pd.DataFrame:
    has_known = s["n_known"] > 0
    out: dict[str, object] = {}  # columns, made into a frame once (no per-column inserts)
    out["n_frames"] = s["n_frames"].astype(int)
    out["detected_fraction"] = _ratio(s["n_detected"], s["n_frames"])
    out["known_fraction"] = _ratio(s["n_known"], s["n_frames"])
    out["passive_fraction"] = _ratio(s["n_passive"], s["n_known"])
    out["n_passive_epochs"] = s["n_epochs"].where(has_known)
    out["mean_passive_epoch_s"] = _ratio(s["complete_s"], s["n_complete"])
    out["n_complete_passive_epochs"] = s["n_complete"].where(has_known)
    out["latency_to_first_passive_s"] = s["latency_s"]
    out["latency_censored"] = s["latency_censored"]
    out["latency_origin_s"] = s["latency_origin_s"]
    out["passive_at_start"] = pd.Series(s["passive_at_start"] > 0, dtype="boolean").where(
        s["n_frames"].to_numpy() > 0)
    out["bout_rate_hz"] = _ratio(s["n_bouts"], s["known_s"])
    out["mean_bout_duration_s"] = _ratio(s["dur_sum"], s["dur_n"])
    out["mean_beat_hz"] = _ratio(s["beat_sum"], s["beat_n"])
    out["mean_vigour"] = _ratio(s["vig_sum"], s["vig_n"])
    out["mean_bout_vigour_rad_s"] = _ratio(s["vrate_sum"], s["vrate_n"])
    out["mean_bout_effort_rad"] = _ratio(s["effort_sum"], s["effort_n"])
    out["distance_px"] = s["distance_px"].where(s["n_detected"] > 0)
    if px_per_mm is not None:
        out["distance_mm"] = out["distance_px"] / float(px_per_mm)
    out["n_bouts_before_giveup"] = s["eff_n"]
    out["effort_before_giveup_rad"] = s["eff_sum"]
    defined = s["struggle_defined"] > 0
    rate_s = pd.Series(_ratio(s["str_n"], s["str_known_s"]), index=s.index).where(defined)
    rate_b = pd.Series(_ratio(s["base_n"], s["base_known_s"]), index=s.index).where(defined)
    vig_s = pd.Series(_ratio(s["str_vsum"], s["str_vn"]), index=s.index).where(defined)
    vig_b = pd.Series(_ratio(s["base_vsum"], s["base_vn"]), index=s.index).where(defined)
    out["struggle_bout_rate_hz"] = rate_s
    out["baseline_bout_rate_hz"] = rate_b
    out["struggle_rate_ratio"] = _ratio(rate_s, rate_b)
    out["struggle_rate_change_hz"] = rate_s - rate_b
    out["struggle_vigour_rad_s"] = vig_s
    out["baseline_vigour_rad_s"] = vig_b
    out["struggle_vigour_ratio"] = _ratio(vig_s, vig_b)
    out["struggle_vigour_change_rad_s"] = vig_s - vig_b
    if "recovery_s" in s.columns:
        out["recovery_s"] = s["recovery_s"]
        out["recovery_censored"] = pd.Series(s["recovery_censored"], dtype="boolean")
    else:  # pooled rows: recovery is defined per closed-loop phase only
        out["recovery_s"] = np.nan
        out["recovery_censored"] = pd.Series(pd.NA, index=s.index, dtype="boolean")
    return pd.DataFrame(out, index=s.index)


def _cell_latency(cells: pd.DataFrame) -> None:
    """Latency of every (fish, phase) cell, in place: ``latency_s``, ``latency_censored``,
    ``latency_origin_s`` and ``at_risk_s`` (time at risk of giving up in the phase)."""
    origin = cells["first_active_s"].to_numpy()
    start = cells["phase_start"].to_numpy()
    give_up = cells["first_passive_abs"].to_numpy()
    event = np.isfinite(give_up) & np.isfinite(origin)
    with np.errstate(invalid="ignore"):
        censor = np.maximum(cells["known_end_s"].to_numpy() - origin, 0.0)
        lat = np.where(event, give_up - origin, censor)
    cells["latency_s"] = lat
    cells["latency_censored"] = pd.Series(np.where(np.isfinite(lat), ~event, pd.NA),
                                          dtype="boolean").to_numpy()
    cells["latency_origin_s"] = origin - start
    cells["at_risk_s"] = np.where(np.isfinite(lat), lat, 0.0)
    cells["event"] = event


def _pooled_latency(cells: pd.DataFrame) -> pd.DataFrame:
    """Latency on the concatenated time at risk of the phases of one kind (cells sorted by
    start): time at risk in earlier phases of the kind without a give-up, plus the latency in
    the first phase with one; censored at the total when there is none; NaN when the fish
    never swam in any phase of the kind. Origin and onset state are the first phase's."""
    risk = cells["at_risk_s"].to_numpy()
    gid = cells["gid"].to_numpy()
    before = pd.Series(risk).groupby(gid).cumsum().to_numpy() - risk
    cand = np.where(cells["event"].to_numpy(), before + risk, np.inf)
    # effort before the first give-up, on the same concatenation: every bout of the earlier
    # phases of the kind without a give-up, plus those before the give-up in the first phase
    # with one
    eff_n = np.nan_to_num(cells["eff_n"].to_numpy())
    eff_sum = cells["eff_sum"].to_numpy()
    seen = np.isfinite(cells["latency_s"].to_numpy())
    eff_sum0 = np.where(seen, eff_sum, 0.0)  # phases never swum in add nothing
    n_before = pd.Series(eff_n).groupby(gid).cumsum().to_numpy()
    s_before = pd.Series(eff_sum0).groupby(gid).cumsum(skipna=False).to_numpy()
    ev = cells["event"].to_numpy()
    tmp = pd.DataFrame({"gid": gid, "cand": cand, "risk": risk, "seen": seen,
                        "origin": cells["latency_origin_s"].to_numpy(),
                        "onset": cells["passive_at_start"].to_numpy(),
                        "n_ev": np.where(ev, n_before, np.inf),
                        "s_ev": np.where(ev, s_before, np.inf),
                        "n_tot": eff_n, "s_tot": eff_sum0})
    agg = tmp.groupby("gid").agg(first=("cand", "min"), total=("risk", "sum"),
                                 seen=("seen", "any"), origin=("origin", "first"),
                                 onset=("onset", "first"), n_ev=("n_ev", "min"),
                                 n_tot=("n_tot", "sum"),
                                 s_tot=("s_tot", lambda v: v.sum(skipna=False)))
    event = np.isfinite(agg["first"].to_numpy())
    # the first phase with a give-up holds the smallest candidate, so take its effort
    first_k = tmp.assign(c=cand).groupby("gid")["c"].idxmin()
    s_first = tmp.loc[first_k.to_numpy(), "s_ev"].to_numpy()
    lat = np.where(event, agg["first"], agg["total"].where(agg["seen"]))
    cens = pd.Series(np.where(np.isfinite(lat), ~event, pd.NA), dtype="boolean")
    valid = np.isfinite(lat)
    n_eff = np.where(event, agg["n_ev"], agg["n_tot"])
    s_eff = np.where(event, s_first, agg["s_tot"])
    return pd.DataFrame({"latency_s": lat, "latency_censored": cens.to_numpy(),
                         "latency_origin_s": agg["origin"].to_numpy(),
                         "passive_at_start": agg["onset"].to_numpy(),
                         "eff_n": np.where(valid, n_eff, np.nan),
                         "eff_sum": np.where(valid, s_eff, np.nan)}, index=agg.index)


def per_fish_metrics(
    tracks: pd.DataFrame,
    bouts: pd.DataFrame | None,
    epochs: pd.DataFrame | None,
    protocol: Sequence[Phase] | None,
    fish_table: pd.DataFrame | None = None,
    *,
    px_per_mm: float | None = None,
    struggle_window_s: float = 10.0,
    exclude_no_swimming: bool = False,
) -> pd.DataFrame:
    """One row per fish per protocol phase, plus pooled rows per phase kind.

    Parameters
    ----------
    tracks
        Per-frame table with ``frame, time_s, fish, state`` (``active | passive | unknown``)
        and optionally ``video, arena, x, y, detected``. Fish are identified by the columns of
        ``video, arena, fish`` that are present.
    bouts
        One row per bout (``fish, start_s`` and optionally ``arena, video, duration_s,
        beat_hz, vigour, vigour_rad_s, effort_rad``); ``None`` or empty when no bouts were
        found.
    epochs
        One row per epoch (``fish, state, start_s, end_s``, optionally ``arena, video``);
        only ``passive`` epochs are used.
    protocol
        Phases (half-open ``[start_s, end_s)``); empty or ``None`` gives one phase ``all``
        of kind ``other`` covering the record.
    fish_table
        Experiment manifest rows: ``group`` and ``arena`` (and/or ``fish``, ``video``),
        optionally ``fish_id`` and any covariates (``dose, sex, batch, trial, condition,
        exclude``...), which are carried into the output. Tracked fish without a manifest row
        get an empty group. Without a table, ``fish_id`` is built from the fish key and
        ``group`` is empty.
    px_per_mm
        Spatial calibration; adds ``distance_mm``.
    struggle_window_s
        Struggle window (``stats.struggle_window_s``): the first this many seconds of an
        open-loop phase, against the last this many seconds of the closed-loop phase before
        it.
    exclude_no_swimming
        Set ``exclude`` (and ``exclude_reason``) on every row of the fish flagged
        ``qc_no_swimming``, so that group statistics leave them out.

    Returns
    -------
    pandas.DataFrame
        Columns ``fish_id, video, arena, fish, group``, the manifest columns, ``phase,
        phase_kind, pooled, phase_start_s, phase_end_s, n_frames, detected_fraction,
        known_fraction, qc_no_swimming``, then the metric columns (docs/statistics.md).
        ``qc_no_swimming`` (same on every row of a fish) is True when the fish made no bout in
        the phases that are not open loop (closed loop, baseline, or the whole record without a
        protocol) although its state was known there for at least
        :data:`NO_SWIMMING_MIN_KNOWN_S` (or half of those phases, if shorter). Per-phase rows
        come in protocol order, then the pooled ``closed_loop`` and ``open_loop`` rows (only
        for kinds present; a kind whose single phase is named like the kind gets no separate
        pooled row).

    Raises
    ------
    FishtrackError
        Missing columns, non-numeric times or overlapping phases.
    ManifestError
        The fish table cannot be matched to the tracks.
    """
    _require(tracks, _TRACK_REQUIRED, "tracks")
    cols = _key_cols(tracks)
    t_all = _numeric(tracks, "time_s", "tracks")
    t_end = float(np.nanmax(t_all)) + _EPS if len(t_all) and np.isfinite(t_all).any() else 0.0
    phases = _phase_table(protocol, t_end * (1 + 1e-9) + 1.0)
    n_ph = len(phases)
    gid, uniq = _fish_index(tracks, cols)
    n_fish = len(uniq)
    info = _fish_info(uniq, fish_table)

    sums, frames = _frame_stats(tracks, phases, gid, n_fish)
    sums |= _epoch_stats(epochs, phases, uniq, cols, n_fish, frames, sums["first_active_s"])
    b = _bout_arrays(bouts, phases, uniq, cols)
    sums |= _bout_stats(b, n_ph, n_fish)
    sums |= _struggle_stats(b, phases, frames, n_fish, struggle_window_s)
    cells = pd.DataFrame(sums)
    cells["gid"] = np.repeat(np.arange(n_fish), n_ph)
    cells["k"] = np.tile(np.arange(n_ph), n_fish)
    cells["kind"] = np.tile(phases["kind"].to_numpy(), n_fish)
    _cell_latency(cells)
    _effort_stats(b, cells, n_ph)
    _recovery(cells)

    per_phase = _metrics_from_sums(cells, px_per_mm)
    per_phase["gid"] = cells["gid"].to_numpy()
    per_phase["phase"] = np.tile(phases["phase"].to_numpy(), n_fish)
    per_phase["phase_kind"] = cells["kind"].to_numpy()
    per_phase["pooled"] = False
    per_phase["phase_start_s"] = np.tile(phases["start_s"].to_numpy(), n_fish)
    per_phase["phase_end_s"] = np.tile(phases["end_s"].to_numpy(), n_fish)
    per_phase["_order"] = cells["k"].to_numpy()

    parts = [per_phase]
    additive = [c for c in sums if c not in (
        "first_active_s", "known_end_s", "passive_at_start", "first_passive_abs", "phase_start")]
    for j, kind in enumerate(POOLED_KINDS):
        of_kind = phases.index[phases["kind"] == kind]
        if len(of_kind) == 0 or (len(of_kind) == 1 and phases.loc[of_kind[0], "phase"] == kind):
            continue
        sub = cells[cells["kind"] == kind]
        agg = sub.groupby("gid")[additive].sum()
        agg = agg.join(_pooled_latency(sub))
        pooled = _metrics_from_sums(agg, px_per_mm)
        pooled["gid"] = agg.index.to_numpy()
        pooled["phase"] = kind
        pooled["phase_kind"] = kind
        pooled["pooled"] = True
        pooled["phase_start_s"] = float(phases.loc[of_kind, "start_s"].min())
        pooled["phase_end_s"] = float(phases.loc[of_kind, "end_s"].max())
        pooled["_order"] = n_ph + j
        parts.append(pooled.reset_index(drop=True))
    rows = pd.concat(parts, ignore_index=True)
    no_swim = _no_swimming(cells, phases, n_fish)
    rows["qc_no_swimming"] = no_swim[rows["gid"].to_numpy()]
    rows = rows.merge(info.reset_index(drop=True).rename_axis("gid").reset_index(), on="gid")
    rows = rows.sort_values(["fish_id", "gid", "_order"], kind="stable").reset_index(drop=True)

    lead = ["fish_id", "video", "arena", "fish", "group"]
    manifest = [c for c in info.columns if c not in lead and c not in FISH_KEYS]
    phase_cols = ["phase", "phase_kind", "pooled", "phase_start_s", "phase_end_s"]
    qc = ["n_frames", "detected_fraction", "known_fraction", "qc_no_swimming"]
    metric_cols = [m for m in _OUTPUT_METRICS if m in rows.columns]
    out = rows[lead + manifest + phase_cols + qc + metric_cols].copy()
    for c in ("n_passive_epochs", "n_complete_passive_epochs", "n_bouts_before_giveup"):
        out[c] = out[c].astype("Int64")
    if exclude_no_swimming:
        out = _exclude_flagged(out)
    return out


NO_SWIMMING_MIN_KNOWN_S = 5.0
"""A fish is flagged ``qc_no_swimming`` only when its state was known for at least this long
(s) in the phases that are not open loop (or for half of them, when they are shorter)."""
NO_SWIMMING_REASON = "no swimming outside open loop (qc_no_swimming)"


def _no_swimming(cells: pd.DataFrame, phases: pd.DataFrame, n_fish: int) -> np.ndarray:
    """Per fish: no bout in the phases that are not open loop, while observed there."""
    base = (cells["kind"] != "open_loop").to_numpy()
    if not base.any():
        return np.zeros(n_fish, bool)
    g = cells.loc[base].groupby("gid")[["n_bouts", "known_s"]].sum()
    dur = float((phases["end_s"] - phases["start_s"])[phases["kind"] != "open_loop"].sum())
    need = min(NO_SWIMMING_MIN_KNOWN_S, 0.5 * dur)
    out = np.zeros(n_fish, bool)
    flag = (g["n_bouts"] == 0) & (g["known_s"] >= need) & (g["known_s"] > 0)
    out[g.index[flag].to_numpy(dtype=np.int64)] = True
    return out


def _exclude_flagged(out: pd.DataFrame) -> pd.DataFrame:
    """``exclude`` True and the reason added to ``exclude_reason`` on flagged fish."""
    flag = out["qc_no_swimming"].to_numpy(bool)
    if "exclude" in out.columns:
        ex = _truthy(out["exclude"]).to_numpy(bool)
    else:
        ex = np.zeros(len(out), bool)
    reason = (out["exclude_reason"].fillna("").astype(str).to_numpy(object)
              if "exclude_reason" in out.columns else np.full(len(out), "", dtype=object))
    for i in np.flatnonzero(flag):
        r = reason[i]
        reason[i] = NO_SWIMMING_REASON if not r else (
            r if NO_SWIMMING_REASON in r else f"{r}; {NO_SWIMMING_REASON}")
    out["exclude"] = ex | flag
    out["exclude_reason"] = reason
    return out


def binned_passive_fraction(
    tracks: pd.DataFrame,
    protocol: Sequence[Phase] | None,
    bin_s: float,
    fish_table: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Passive fraction per fish in time bins of ``bin_s`` seconds.

    Bins start at each phase start and never cross a phase boundary (the last bin of a phase
    may be shorter); frames outside every phase are not binned. Without a protocol, bins start
    at time 0 (phase ``all``).

    Returns
    -------
    pandas.DataFrame
        ``fish_id, video, arena, fish, group, phase, phase_kind, bin_start_s, bin_end_s,
        passive_fraction, n_frames, time_in_phase_s`` where ``n_frames`` counts the frames
        with a known state in the bin (the denominator; ``passive_fraction`` is NaN when it is
        0) and ``time_in_phase_s`` is the bin's start since its phase began (bins of videos
        with different protocols line up on it).
    """
    if not bin_s > 0:
        raise FishtrackError(f"stats.bin_s: must be positive; got {bin_s}")
    _require(tracks, _TRACK_REQUIRED, "tracks")
    cols = _key_cols(tracks)
    t = _numeric(tracks, "time_s", "tracks")
    t_end = float(np.nanmax(t)) + 1.0 if len(t) and np.isfinite(t).any() else 1.0
    phases = _phase_table(protocol, t_end)
    gid, uniq = _fish_index(tracks, cols)
    info = _fish_info(uniq, fish_table)
    ph = _phase_index(t, phases)
    known, passive = _states(tracks["state"])
    inside = ph >= 0
    start = phases["start_s"].to_numpy()[np.clip(ph, 0, None)]
    b = np.floor((t - start) / bin_s + _EPS).astype(np.int64)
    df = pd.DataFrame(
        {
            "gid": gid[inside],
            "k": ph[inside],
            "b": b[inside],
            "known": known[inside],
            "passive": passive[inside],
        }
    )
    agg = df.groupby(["gid", "k", "b"], sort=True).agg(
        n_frames=("known", "sum"), n_passive=("passive", "sum")
    ).reset_index()
    k = agg["k"].to_numpy()
    p0 = phases["start_s"].to_numpy()[k]
    p1 = phases["end_s"].to_numpy()[k]
    agg["bin_start_s"] = p0 + agg["b"].to_numpy() * bin_s
    agg["bin_end_s"] = np.minimum(agg["bin_start_s"] + bin_s, p1)
    agg["time_in_phase_s"] = agg["b"].to_numpy() * bin_s
    agg["phase"] = phases["phase"].to_numpy()[k]
    agg["phase_kind"] = phases["kind"].to_numpy()[k]
    agg["passive_fraction"] = _ratio(agg["n_passive"], agg["n_frames"])
    agg["n_frames"] = agg["n_frames"].astype(int)
    out = agg.merge(info.reset_index(drop=True).rename_axis("gid").reset_index(), on="gid")
    out = out.sort_values(["fish_id", "gid", "k", "b"], kind="stable").reset_index(drop=True)
    lead = ["fish_id", "video", "arena", "fish", "group"]
    return out[lead + ["phase", "phase_kind", "bin_start_s", "bin_end_s", "passive_fraction",
                       "n_frames", "time_in_phase_s"]]
