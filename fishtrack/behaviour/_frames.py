"""Shared, vectorised plumbing of the behaviour stage.

All per-frame work runs on flat numpy arrays holding every fish one after another (rows sorted
by ``(arena, fish, frame)``). A *group* is one fish; a *block* is a stretch of one fish's
record without a long detection gap or time jump. Run-length helpers find runs of ``True``
that never cross a group/block boundary, so no Python loop over frames is needed anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from fishtrack.behaviour._pool import pooled, weighted_median
from fishtrack.errors import FishtrackError

REQUIRED_COLUMNS = ("frame", "time_s", "fish", "tail_angle")
"""Columns :func:`sorted_frames` cannot do without (``arena``, ``x``, ``y``, ``heading``,
``detected`` are used when present)."""


@dataclass
class Frames:
    """One fish after another, rows sorted by ``(arena, fish, frame)``.

    ``order[i]`` is the position in the caller's table of sorted row ``i``; ``gid`` numbers
    the fish (0..n_fish-1); ``gstart``/``gend`` are the first/last sorted row of each row's
    fish; ``dur`` is the frame duration (time to the next frame of the same fish; the median
    frame interval for the last frame and across time jumps).
    """

    order: np.ndarray
    gid: np.ndarray
    gstart: np.ndarray
    gend: np.ndarray
    frame: np.ndarray
    t: np.ndarray
    dur: np.ndarray
    dt_median: float
    observed: np.ndarray
    tail: np.ndarray
    x: np.ndarray
    y: np.ndarray
    heading: np.ndarray
    fish_keys: pd.DataFrame  # one row per gid: arena, fish
    jump: np.ndarray  # jump[i]: frames are missing between sorted rows i and i+1 (same fish)

    @property
    def n(self) -> int:
        return len(self.t)


def _column(df: pd.DataFrame, name: str, order: np.ndarray) -> np.ndarray:
    if name not in df.columns:
        return np.full(len(order), np.nan)
    return pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=float)[order]


def sorted_frames(
    tracks: pd.DataFrame, *, max_gap_s: float = 0.5, source: str = "tracks",
    observe: str = "tail",
) -> Frames:
    """Validate ``tracks`` and return its rows sorted fish by fish as flat arrays.

    A row is *observed* when the fish was detected and, with ``observe="tail"``, its tail
    angle is known; with ``observe="position"``, its ``x, y`` are known (movement bouts
    from speed, :mod:`fishtrack.behaviour.speed`).

    A time step longer than both ``max_gap_s`` and 1.5 median frame intervals is a *time
    jump* (frames missing from the record): the frame before it lasts one median interval,
    so the missing time belongs to no frame, bout or epoch.

    Raises
    ------
    FishtrackError
        A required column is missing, times are not numbers, a fish has duplicate frames or
        time does not increase with frame number.
    """
    if not isinstance(tracks, pd.DataFrame):
        raise FishtrackError(f"{source}: expected a pandas DataFrame, got {type(tracks).__name__}")
    missing = [c for c in REQUIRED_COLUMNS if c not in tracks.columns]
    if missing:
        raise FishtrackError(
            f"{source}: missing column(s) {', '.join(missing)}; the behaviour stage needs "
            f"{', '.join(REQUIRED_COLUMNS)}"
        )
    n = len(tracks)
    arena = (
        tracks["arena"] if "arena" in tracks.columns else pd.Series([""] * n, index=tracks.index)
    )
    keys = pd.DataFrame({"arena": arena.to_numpy(), "fish": tracks["fish"].to_numpy()})
    gid_unsorted = keys.groupby(["arena", "fish"], sort=True, dropna=False).ngroup().to_numpy()
    frame_unsorted = pd.to_numeric(tracks["frame"], errors="coerce").to_numpy(dtype=float)
    if n and not np.isfinite(frame_unsorted).all():
        raise FishtrackError(f"{source}: column 'frame' has missing or non-numeric values")
    order = np.lexsort((frame_unsorted, gid_unsorted))
    gid = gid_unsorted[order]
    frame = frame_unsorted[order].astype(np.int64)
    t = _column(tracks, "time_s", order)
    if n and not np.isfinite(t).all():
        raise FishtrackError(f"{source}: column 'time_s' has missing or non-numeric values")

    idx = np.arange(n)
    new_group = np.ones(n, bool)
    new_group[1:] = gid[1:] != gid[:-1]
    gstart = np.maximum.accumulate(np.where(new_group, idx, 0)) if n else idx
    last = np.ones(n, bool)
    last[:-1] = new_group[1:]
    gend = np.minimum.accumulate(np.where(last, idx, n)[::-1])[::-1] if n else idx

    same = ~new_group[1:]
    if n and np.any(same & (frame[1:] == frame[:-1])):
        bad = gid[1:][same & (frame[1:] == frame[:-1])][0]
        k = keys.iloc[order[np.flatnonzero(gid == bad)[0]]]
        raise FishtrackError(
            f"{source}: fish {k['fish']} (arena {k['arena']}) has duplicate frames"
        )
    step = np.diff(t)
    if n and np.any(same & (step <= 0)):
        bad = gid[1:][same & (step <= 0)][0]
        k = keys.iloc[order[np.flatnonzero(gid == bad)[0]]]
        raise FishtrackError(
            f"{source}: time_s does not increase with frame for fish {k['fish']} (arena {k['arena']})"
        )
    dt_ok = step[same] if n else step
    dt_median = _median_interval(dt_ok)
    jump = same & (step > max(max_gap_s, 1.5 * dt_median)) if n else np.zeros(0, bool)
    dur = np.full(n, dt_median)
    if n > 1:
        dur[:-1] = np.where(same & ~jump, step, dt_median)

    tail = _column(tracks, "tail_angle", order)
    x = _column(tracks, "x", order)
    y = _column(tracks, "y", order)
    heading = _column(tracks, "heading", order)
    if "detected" in tracks.columns:
        det = tracks["detected"].fillna(False).to_numpy(dtype=bool)[order]
    else:
        det = np.ones(n, bool)
    if observe == "position":
        observed = det & np.isfinite(x) & np.isfinite(y)
    else:
        observed = det & np.isfinite(tail)
    first_rows = order[np.flatnonzero(new_group)]
    fish_keys = keys.iloc[first_rows].reset_index(drop=True)
    return Frames(
        order=order,
        gid=gid,
        gstart=gstart,
        gend=gend,
        frame=frame,
        t=t,
        dur=dur,
        dt_median=dt_median,
        observed=observed,
        tail=tail,
        x=x,
        y=y,
        heading=heading,
        fish_keys=fish_keys,
        jump=jump,
    )


def _median_interval(steps: np.ndarray) -> float:
    """Median frame interval of the recording (1.0 without any step), pooled over its fish
    (:mod:`fishtrack.behaviour._pool`) from a histogram of the steps: exactly ``np.median``
    of every fish's steps."""
    vals, counts = np.unique(steps, return_counts=True)
    return pooled("dt_median", _reduce_interval, values=vals, counts=counts)


def _reduce_interval(values: np.ndarray, counts: np.ndarray) -> float:
    return weighted_median(values, counts) if counts.sum() else 1.0


def fish_bounds(fr: Frames) -> tuple[np.ndarray, np.ndarray]:
    """First sorted row of each fish and one past its last row."""
    if fr.n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    starts = np.flatnonzero(np.r_[True, fr.gid[1:] != fr.gid[:-1]])
    return starts, np.r_[starts[1:], fr.n]


def to_input_order(fr: Frames, values: np.ndarray) -> np.ndarray:
    """Scatter an array in sorted order back to the caller's row order."""
    out = np.empty_like(values)
    out[fr.order] = values
    return out


def runs(mask: np.ndarray, group: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last index (inclusive) of every run of ``True`` inside one group.

    Runs never continue across a change of ``group``.
    """
    mask = np.asarray(mask, bool)
    n = mask.size
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    brk = np.ones(n + 1, bool)  # brk[i]: a boundary lies before row i
    brk[1:n] = group[1:] != group[:-1]
    prev_off = np.ones(n, bool)
    prev_off[1:] = ~mask[:-1] | brk[1:n]
    next_off = np.ones(n, bool)
    next_off[:-1] = ~mask[1:] | brk[1:n]
    starts = np.flatnonzero(mask & prev_off)
    ends = np.flatnonzero(mask & next_off)
    return starts, ends


def run_lengths_fill(
    starts: np.ndarray, ends: np.ndarray, values: np.ndarray, n: int, fill
) -> np.ndarray:
    """Array of length ``n`` with ``values[k]`` on rows ``starts[k]..ends[k]``, else ``fill``."""
    vals = np.asarray(values)
    out = np.full(n, fill, dtype=np.result_type(vals.dtype, np.asarray(fill).dtype))
    if len(starts) == 0:
        return out
    # difference array of run ids: +id at start, -id after end
    ids = np.zeros(n + 1, np.int64)
    np.add.at(ids, starts, np.arange(1, len(starts) + 1))
    np.add.at(ids, ends + 1, -np.arange(1, len(starts) + 1))
    run_id = np.cumsum(ids[:n])  # 0 outside runs, k+1 inside run k
    inside = run_id > 0
    out[inside] = vals[run_id[inside] - 1]
    return out


def window_sum(values: np.ndarray, fr: Frames, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Per sorted row ``i``: ``values[lo[i]:hi[i]].sum()`` for windows inside row ``i``'s
    fish, from running sums that restart at every fish: each fish's result depends on its
    own rows only (running sums over the concatenated fish would differ by rounding from the
    fish scored alone, see :mod:`fishtrack.behaviour._pool`)."""
    out = np.zeros(fr.n, dtype=np.result_type(values.dtype, np.int64))
    for a, b in zip(*fish_bounds(fr), strict=True):
        cs = np.concatenate([[0], np.cumsum(values[a:b])])
        out[a:b] = cs[hi[a:b] - a] - cs[lo[a:b] - a]
    return out


def moving_mean(values: np.ndarray, fr: Frames, width: int) -> np.ndarray:
    """Centred moving mean over ``width`` rows, ignoring NaNs, never crossing fish.

    Rows whose window holds no finite value are NaN.
    """
    n = len(values)
    if n == 0:
        return values.astype(float)
    finite = np.isfinite(values)
    idx = np.arange(n)
    lo = np.maximum(idx - (width - 1) // 2, fr.gstart)
    hi = np.minimum(idx + width // 2, fr.gend) + 1
    cnt = window_sum(finite.astype(np.int64), fr, lo, hi)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = window_sum(np.where(finite, values, 0.0), fr, lo, hi) / cnt
    out[cnt == 0] = np.nan
    return out


def derivative(values: np.ndarray, fr: Frames, *, angular: bool = False) -> np.ndarray:
    """Time derivative per fish from the actual frame times (units of ``values`` per s).

    Central difference where both neighbours are finite, one-sided where only one is, NaN
    where the value itself is missing. ``angular`` wraps differences into (-pi, pi].
    """
    n = len(values)
    if n == 0:
        return values.astype(float)
    idx = np.arange(n)
    nxt = np.minimum(idx + 1, fr.gend)
    prv = np.maximum(idx - 1, fr.gstart)

    def diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        d = values[a] - values[b]
        return wrap(d) if angular else d

    with np.errstate(invalid="ignore", divide="ignore"):
        central = diff(nxt, prv) / (fr.t[nxt] - fr.t[prv])
        fwd = diff(nxt, idx) / (fr.t[nxt] - fr.t[idx])
        bwd = diff(idx, prv) / (fr.t[idx] - fr.t[prv])
    central[nxt == prv] = np.nan
    fwd[nxt == idx] = np.nan
    bwd[prv == idx] = np.nan
    out = np.where(np.isfinite(central), central, np.where(np.isfinite(bwd), bwd, fwd))
    out[~np.isfinite(values)] = np.nan
    return out


def wrap(a: np.ndarray) -> np.ndarray:
    """Wrap angles into (-pi, pi]."""
    return np.pi - np.mod(np.pi - a, 2 * np.pi)


def group_quantile(values: np.ndarray, gid: np.ndarray, n_groups: int, q: float) -> np.ndarray:
    """Per-group quantile of the finite values (NaN for groups without any)."""
    ok = np.isfinite(values)
    s = pd.Series(values[ok]).groupby(gid[ok]).quantile(q)
    out = np.full(n_groups, np.nan)
    out[s.index.to_numpy(dtype=np.int64)] = s.to_numpy()
    return out


@dataclass
class Blocks:
    """Stretches of one fish's record without a long detection gap or time jump.

    ``block[i]`` numbers the block of sorted row ``i`` (long gaps are blocks of their own);
    ``unknown[i]`` is True on the rows of a detection gap longer than ``max_gap_s``;
    ``bridged[i]`` is True on rows of a shorter gap (fish unseen, gap bridged).
    """

    block: np.ndarray
    unknown: np.ndarray
    bridged: np.ndarray


def gap_blocks(fr: Frames, max_gap_s: float) -> Blocks:
    """Split every fish's record at detection gaps longer than ``max_gap_s`` and time jumps.

    A gap is a run of frames where the fish (or its tail) was not observed; its length is the
    time from its first frame to the next observed frame. Time jumps (``fr.jump``, found by
    :func:`sorted_frames` with the same ``max_gap_s``) also split.
    """
    n = fr.n
    gs, ge = runs(~fr.observed, fr.gid)
    gap_len = fr.t[ge] + fr.dur[ge] - fr.t[gs]
    long_gap = gap_len > max_gap_s
    unknown = run_lengths_fill(
        gs[long_gap], ge[long_gap], np.ones(int(long_gap.sum()), bool), n, False
    )
    bridged = ~fr.observed & ~unknown
    brk = np.zeros(n, bool)
    if n:
        brk[0] = True
        brk[1:] = fr.gid[1:] != fr.gid[:-1]
        brk[gs[long_gap]] = True
        after = ge[long_gap] + 1
        brk[after[after < n]] = True
        brk[1:] |= fr.jump
    return Blocks(block=np.cumsum(brk) - 1, unknown=unknown, bridged=bridged)
