"""Tail bouts from the pixels where the traced tail is too noisy to show them (issue 11).

In a noisy, compressed video of a small, faint larva the traced tail angle can jitter so much
from frame to frame that the kinematic detection (:mod:`fishtrack.behaviour.bouts`) sets its
threshold above the beats and finds almost none of the bouts. The pixels at the tail
(the tracker's ``tail_motion``) still change more during a bout than while the tail is still,
but per frame only by about the camera's noise; a bout lasts at least ~0.08 s, so the mean of
the tail motion over a bout-long window rises above the noise by ~sqrt(frames).

This module adds such bouts (``bout_evidence`` ``tail_motion``) only where the recording's
traced tail is too noisy (:func:`noisy_trace`, the rig's and the tracker's noise pooled over
the fish) and only where no other bout was kept: recordings with a clean trace are scored as
before. See docs/behaviour.md, "Bouts from the tail's pixels where the trace is noisy".
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from fishtrack.behaviour._frames import Blocks, fish_bounds, moving_mean, run_lengths_fill, runs
from fishtrack.behaviour._pool import ask_ahead
from fishtrack.behaviour._pool import pooled as pool_value
from fishtrack.behaviour.bouts import (
    MIN_QUIET_FRAMES,
    BoutRuns,
    _median_of_levels,
    bout_runs,
    quiet_frames,
)
from fishtrack.behaviour.kinematics import Kinematics
from fishtrack.config import BehaviourConfig

PIXEL_BOUTS = True
"""Switch: False scores every recording as before this module."""

NOISY_TRACE_RAD = 0.025
"""A recording's traced tail is too noisy for the kinematic detection when the median over
its fish of the tail-noise sigma (rad, the per-frame jitter of the traced tail angle on quiet
frames) is above this."""

WINDOW_S = 0.08
"""The tail motion is averaged over this (s): the shortest bout."""

LOW_QUANTILE = 0.05
"""The noise's spread is read from its lower side: ``median - this quantile`` of the window
means on quiet frames (a bout only adds motion, so the lower side holds noise alone)."""

SPREAD = 3.5
"""A window is a bout's when its mean is above ``median + SPREAD x (median - LOW_QUANTILE)``."""

CONTINUOUS = 0.5
"""The noise must be continuous: the quiet frames' window means at their
:data:`LOW_QUANTILE` at least this fraction of their median (a camera and codec that renew the
noise in every frame). A codec that holds the fish's pixels and refreshes them in bursts has
window means of exactly 0 most of the time: its lower side says nothing of its bursts, and the
fish counts as not measured (+inf: no bouts from its pixels)."""

HALF = 0.5
"""A bout spans the frames around the window where its window mean stays above the median
plus this fraction of its peak above the median."""


def noisy_trace(kin: Kinematics) -> bool:
    """Whether the recording's traced tail is too noisy (:data:`NOISY_TRACE_RAD`; pooled
    median over the fish, the same on parts of the recording as on the whole)."""
    return bool(pool_value("pixel_bouts_noisy", _noisy, tail_noise=kin.tail_noise))


def ask_noisy_ahead(kin: Kinematics) -> None:
    """Ask for :func:`noisy_trace`'s value ahead (no pass of its own)."""
    ask_ahead("pixel_bouts_noisy", _noisy, lambda: {"tail_noise": kin.tail_noise})


def _noisy(tail_noise: np.ndarray) -> bool:
    """Reduce: the median tail noise of the fish above :data:`NOISY_TRACE_RAD`."""
    level = _median_of_levels(np.asarray(tail_noise, float))
    return bool(np.isfinite(level) and level > NOISY_TRACE_RAD)


def window_motion(kin: Kinematics, tail: np.ndarray) -> np.ndarray:
    """Per sorted row: the aligned tail motion averaged over :data:`WINDOW_S` (centred)."""
    fr = kin.frames
    n = max(1, int(round(WINDOW_S / fr.dt_median))) if fr.dt_median > 0 else 1
    return moving_mean(np.asarray(tail, float), fr, n) if n > 1 else np.asarray(tail, float)


def _fish_level(v: np.ndarray) -> tuple[float, float]:
    """One fish's level of its quiet frames' window means and their median (NaN, NaN: too
    few; level +inf: the noise is not continuous)."""
    if len(v) < MIN_QUIET_FRAMES:
        return float("nan"), float("nan")
    med, lo = np.quantile(v, [0.5, LOW_QUANTILE])
    if not lo >= CONTINUOUS * med or not med > 0:
        return float("inf"), float(med)
    return float(med + SPREAD * (med - lo)), float(med)


def _levels(fr, w: np.ndarray, quiet: np.ndarray) -> tuple[float, float]:
    """The recording's level and median of the window means: each fish's own
    (:func:`_fish_level`, +inf where its noise is not continuous) on its quiet frames, then the
    median over the fish (pooled; NaN: no fish measured)."""
    lev = np.full(len(fr.fish_keys), np.nan)
    med = np.full(len(fr.fish_keys), np.nan)
    for a0, a1 in zip(*fish_bounds(fr), strict=True):
        v = w[a0:a1][quiet[a0:a1]]
        lev[fr.gid[a0]], med[fr.gid[a0]] = _fish_level(v)
    return pool_value("pixel_bouts_level", _median_levels, level=lev, median=med)


def _median_levels(level: np.ndarray, median: np.ndarray) -> tuple[float, float]:
    """Reduce: the medians over the measured fish (+inf counts: not continuous)."""
    ok = ~np.isnan(level)
    if not ok.any():
        return float("nan"), float("nan")
    return float(np.median(level[ok])), float(np.median(median[ok]))


def pixel_bouts(kin: Kinematics, br: BoutRuns, tail: np.ndarray | None, blocks: Blocks,
                cfg: BehaviourConfig) -> tuple[BoutRuns, float]:
    """``br`` plus the bouts of the tail's pixels where the trace is too noisy (see the
    module docstring) and no bout of ``br`` lies within ``merge_gap_s``; and the level (grey
    levels; NaN: not used, or not measured)."""
    if not PIXEL_BOUTS or tail is None:
        return br, float("nan")
    if not noisy_trace(kin):
        return br, float("nan")
    fr = kin.frames
    w = window_motion(kin, tail)
    level, base = _levels(fr, w, quiet_frames(kin, br.in_bout) & np.isfinite(w))
    if not np.isfinite(level) or not np.isfinite(base):
        return br, float("nan")  # not measured, or the noise is not renewed in every frame
    xs, xe = bout_runs(_active(fr, blocks, w, level, base), fr, blocks, cfg)
    busy = np.r_[0, np.cumsum(br.in_bout)]
    pad = max(1, int(round(cfg.merge_gap_s / fr.dt_median)))
    lo, hi = np.maximum(xs - pad, 0), np.minimum(xe + pad, fr.n - 1)
    free = busy[hi + 1] - busy[lo] == 0
    xs, xe = xs[free], xe[free]
    if len(xs) == 0:
        return br, level
    ev = br.evidence if br.evidence is not None else np.full(len(br.starts), "beats", dtype=object)
    s2 = np.r_[br.starts, xs].astype(np.int64)
    e2 = np.r_[br.ends, xe].astype(np.int64)
    ev2 = np.r_[ev, np.full(len(xs), "tail_motion", dtype=object)]
    o = np.argsort(s2, kind="stable")
    s2, e2, ev2 = s2[o], e2[o], ev2[o]
    in_bout = run_lengths_fill(s2, e2, np.ones(len(s2), bool), fr.n, False)
    return replace(br, starts=s2, ends=e2, in_bout=in_bout, evidence=ev2), level


def _active(fr, blocks: Blocks, w: np.ndarray, level: float, base: float) -> np.ndarray:
    """Per sorted row: inside a stretch whose window mean rises above ``level``, spread to the
    frames around it whose window mean stays above ``base`` + :data:`HALF` x (its peak -
    ``base``), within the fish's record and its block."""
    high = np.isfinite(w) & (w > level)
    s, e = runs(high, blocks.block)
    active = np.zeros(fr.n, bool)
    blk = blocks.block
    for a, b in zip(s, e, strict=True):
        half = base + HALF * (float(np.max(w[a:b + 1])) - base)
        i, j = a, b
        while i > fr.gstart[a] and blk[i - 1] == blk[a] and w[i - 1] > half:
            i -= 1
        while j < fr.gend[a] and blk[j + 1] == blk[a] and w[j + 1] > half:
            j += 1
        active[i:j + 1] = True
    return active
