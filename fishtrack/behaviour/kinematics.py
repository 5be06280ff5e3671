"""Per-frame kinematics of every fish.

All derivatives use the actual frame times (``time_s``), so variable frame rates and dropped
frames give correct rates. Work is vectorised over all fish at once except the tail-beat
extremum search (scipy's ``find_peaks``, one call per fish; through
:mod:`fishtrack.behaviour._signal`, which does not import ``scipy.signal``).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fishtrack.behaviour._frames import (
    Frames,
    derivative,
    fish_bounds,
    group_quantile,
    sorted_frames,
    to_input_order,
    window_sum,
    wrap,
)
from fishtrack.behaviour._pool import any_of, pooled
from fishtrack.behaviour._signal import butter_lowpass, find_peaks, sosfiltfilt

__all__ = [
    "KINEMATIC_COLUMNS",
    "MAX_BEAT_HZ",
    "MIN_BEAT_HZ",
    "Kinematics",
    "kinematics",
    "compute_kinematics",
    "tail_extrema",
]

KINEMATIC_COLUMNS = (
    "speed_px_s",
    "angular_velocity_rad_s",
    "tail_velocity_rad_s",
    "tail_beat_hz",
    "curvature_rad",
    "vigour_rad_s",
    "motion_index",
    "tail_excursion_rad",
)
"""Per-frame columns added by :func:`kinematics` (units in the names; see docs/behaviour.md)."""

MIN_BEAT_HZ = 5.0
"""Slowest tail-beat frequency counted (Hz): extrema further apart than half its period do
not form a beat."""
MAX_BEAT_HZ = 100.0
"""Fastest tail-beat frequency counted (Hz): larval escapes reach ~80 Hz."""
SAME_TURN_MAX_S = 0.5 / MIN_BEAT_HZ
"""Two extrema of the same sign with no opposite turn between them are one noisy turn (the
more extreme is kept) only when they lie at most this far apart (s): half a period of the
slowest beat, the span within which a turn's prominence is judged. Further apart they are two
turns, each kept. Without this bound (before 2026-12-08) a bout's first turn competed with a
same-sign turn any time earlier (the end of the previous bout, or a noise turn seconds before)
and was dropped when that one was larger: the bout then lost its first half-beat, at 60-100
fps 2-3 frames plus the onset pad, and its first extrema pair could vanish from a short bout
(issue 11, spent 23854 A2 at 71 fps: a bout of 95-113 found at 106-110, its turn at frame 97,
0.31 rad prominent against a threshold of 0.24, merged with the larger last trough of the bout
before, 0.85 s earlier)."""

SINGLE_BEND_MIN_FRAMES = 1.5
"""An extremum narrower than this (frames, at half its prominence) is one sample sticking
out: it counts as a half-beat inside a bout but cannot make a bout on its own."""
SINGLE_BEND_MIN_S = 0.015
"""Nor can an extremum narrower than this (s, at half its prominence): a one-sided bend of
a real bout lasts longer than half a 40 Hz beat, a burst of tracker glitches does not."""
MIN_BEAT_PROMINENCE = 0.05
"""Smallest tail excursion (rad) between a tail extremum and its neighbours that counts as a
half-beat, whatever the noise."""
BEAT_PROMINENCE_NOISE_FACTOR = 5.0
"""A half-beat must also exceed this many times the tail-angle measurement noise (sigma)."""

TAIL_LOWPASS_HZ = 50.0
"""Cut-off (Hz) of the low-pass filter applied to the tail angle before differentiating
(zero-phase Butterworth, 4th order, run forwards and backwards): it passes the tail-beat band
(97 % of a 40 Hz beat's amplitude) and removes the measurement noise above it, so the vigour
of a still tail stops growing with the frame rate. Below 125 fps (2.5 x the cut-off) the beat
band reaches the Nyquist frequency and nothing is filtered."""
MIN_VIGOUR_FRAMES = 5
"""The vigour window spans at least this many frames (at low frame rates it is then longer
than ``vigour_window_s``)."""
SPIKE_SPAN = 8
"""The neighbours of a tail-angle outlier must lie within this many median frame intervals
(plus the outlier's length) of each other (see :func:`despike`)."""
SPIKE_FACTOR = 4.0
SPIKE_EDGE_FRAMES = SPIKE_SPAN // 2
"""Next to a lost stretch of the tracking, or at a track's start or end, an outlier is judged
on the neighbours within this many median frame intervals of it, when all those of one side
are (:func:`despike`; before 2026-12-07 such a sample was never replaced: on tuning seed 264,
67 fps, a 0.48 rad glitch two frames after 0.69 s of lost tracking pulled the rest posture
of the frames around it 3 noise sigmas away and made a sustained bout of noise)."""
MEDIAN_SPAN_S = 0.005
"""Span (s) of the running median applied to the tail angle at >= 1000 fps / 5 ms (see
:func:`median_clean`)."""
SPIKE_AGREE = 5.0
"""Below the frame rate at which a one-frame excursion is physically impossible, an outlier's
four neighbours must agree within this many noise sigmas."""
SPIKE_SLOW_SPREAD = 1.5
"""Below that frame rate an outlier must also lie this many times the neighbours' spread
from their median."""
SPIKE_MAX_S = 0.01
"""A tail excursion out and back within less than this is a tracker glitch, not a movement
(half a period of a 50 Hz beat) (s)."""
"""A one-frame tail-angle outlier lies more than this many noise sigmas from its four
neighbours (see :func:`despike`)."""
SPIKE_CLUSTER = 3
"""Where a half-beat can look like a glitch (the slow case of :func:`despike`), this many
samples replaced within one neighbourhood (:data:`SPIKE_SPAN` frames) are a beat, not
glitches, and are kept: tracker glitches come one at a time (the rig's glitch rate, well
under 1 % of frames, makes three within eight frames improbable), the samples of an
undersampled beat come together."""
SPIKE_CLUSTER_SIGMA = 2.5
"""Such a cluster is given back only when a sample between its replaced ones lies this many
noise sigmas from the rest posture (or none is left between them): between independent
glitches the tail is at rest."""

EXCURSION_MIN_FRAMES = 6
"""The excursion window spans at least this many frames."""
REST_S = 0.5
"""Span (s) of the centred moving mean that gives the tail's rest posture, from which the
excursion is measured: longer than any beat period and most bouts, shorter than slow drifts
of the traced angle (see :func:`tail_excursion`)."""

_TAIL_X = re.compile(r"^tail_x_(\d+)$")


@dataclass
class Kinematics:
    """Kinematics in sorted (fish by fish) order, plus the tail extrema used for beats."""

    frames: Frames
    columns: dict[str, np.ndarray]
    tail: np.ndarray  # despiked, smoothed tail angle of observed frames, sorted order (rad)
    extrema: np.ndarray  # sorted-row index of every tail-angle extremum (half-beat turn)
    extrema_t: np.ndarray  # their times, refined between frames by a parabola (s)
    tail_noise: np.ndarray  # per fish, sigma of the tail-angle measurement noise (rad)
    motion_source: str  # "pixels" | "midline" | "none"
    spikes: np.ndarray = None  # type: ignore[assignment]  # per row: one-frame outlier replaced
    extrema_strength: np.ndarray = None  # type: ignore[assignment]  # prominence / threshold
    width: int = 2  # vigour window (frames)
    exc_width: int = EXCURSION_MIN_FRAMES  # excursion window (frames)

    def refine(self, noise: np.ndarray) -> None:
        """Redo the noise-dependent steps (despiking, smoothing, extrema, beat frequency,
        vigour) with a new per-fish tail-noise sigma (rad)."""
        fr = self.frames
        raw = np.where(fr.observed, fr.tail, np.nan)
        clean, self.spikes = despike(fr, raw, noise)
        clean = median_clean(fr, clean)
        tail = smooth_tail(fr, tail=clean)
        self.tail = tail
        self.tail_noise = noise
        self.columns["tail_velocity_rad_s"] = derivative(tail, fr, angular=True)
        self.extrema, self.extrema_strength = tail_extrema(fr, noise, tail, strength=True)
        self.extrema_t = extremum_times(fr, tail, self.extrema)
        self.columns["tail_beat_hz"] = _beat_frequency(fr, self.extrema, self.extrema_t)
        vig = travel_rate(tail, fr, self.width)
        vig[~fr.observed] = np.nan
        self.columns["vigour_rad_s"] = vig
        self.columns["tail_excursion_rad"] = tail_excursion(tail, fr, self.exc_width)


def tail_diffs(fr: Frames, tail: np.ndarray | None = None, lag: int = 1) -> np.ndarray:
    """Per sorted row: tail-angle change since ``lag`` frames before of the same fish (rad);
    NaN on each fish's first ``lag`` rows, across a time jump and where either frame is
    unobserved."""
    tail = np.where(fr.observed, fr.tail, np.nan) if tail is None else tail
    d = np.full(fr.n, np.nan)
    if fr.n > lag:
        jumps = np.r_[0, np.cumsum(fr.jump)] if len(fr.jump) else np.zeros(fr.n, np.int64)
        same = (fr.gid[lag:] == fr.gid[:-lag]) & (jumps[lag:] == jumps[:-lag])
        d[lag:] = np.where(same, tail[lag:] - tail[:-lag], np.nan)
    return d


def tail_noise(
    fr: Frames, tail: np.ndarray | None = None, quiet: np.ndarray | None = None
) -> np.ndarray:
    """Per-fish sigma of the tail-angle measurement noise (rad, per frame).

    From the frame-to-frame tail-angle change ``d``; for white noise of sigma ``s``,
    ``|d|`` is half-normal with scale ``sqrt(2) s``. With ``quiet`` (bool per sorted row:
    frames away from every bout) it is ``median |d| / (0.6745 sqrt 2)`` over the changes
    between two quiet frames, whatever their number. Without it (first pass, bouts not known
    yet) it is ``25th percentile of |d| / (0.3186 sqrt 2)`` over all frames, which is right
    while the tail is still in at least ~70 % of them and too high otherwise (the first
    pass's threshold is refined on the quiet frames it finds, see
    :func:`fishtrack.behaviour.bouts.bout_thresholds`).
    """
    d = np.abs(tail_diffs(fr, tail))
    n_fish = len(fr.fish_keys)
    if quiet is None:
        return group_quantile(d, fr.gid, n_fish, 0.25) / (0.3186 * np.sqrt(2.0))
    both = np.zeros(fr.n, bool)
    both[1:] = quiet[1:] & quiet[:-1]
    return group_quantile(np.where(both, d, np.nan), fr.gid, n_fish, 0.5) / (0.6745 * np.sqrt(2.0))


def despike(fr: Frames, tail: np.ndarray, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Replace short tail-angle outliers (tracker glitches of one or two frames).

    Working on each fish's observed frames (a lost frame is skipped, not a barrier), a run of
    ``w`` = 1 or 2 samples is an outlier when every sample of it lies far from its neighbours'
    median: more than ``SPIKE_FACTOR x sigma`` and more than a multiple of the neighbours'
    spread. Two cases:

    * the excursion out and back, ``(w + 1)`` frame intervals, is shorter than
      :data:`SPIKE_MAX_S`: no tail moves that fast, so two neighbours on either side suffice
      and only need to be closer to each other than to the run;
    * otherwise an undersampled half-beat could look the same, so three neighbours on either
      side must agree within ``SPIKE_AGREE x sigma``: around a real half-beat another one
      lies within three samples.

    In the fast case the farthest of the four neighbours is left out too when it is an outer
    one (a sample away from the run), so that a second glitch two frames away (at ~400 fps)
    does not hide the first; next to the run it is part of the same, wider excursion (the
    last turn of a bout) and counts.

    In the slow case a beat can be removed piece by piece (its last turn as a one-sample
    glitch, then the turns before it as two-sample ones); samples replaced
    :data:`SPIKE_CLUSTER` or more within :data:`SPIKE_SPAN` frames, with the tail between
    them away from rest, are given back (:func:`_keep_clusters`).

    Outliers get the neighbours' median. A lone narrow bend that survives cannot make a bout
    on its own (:data:`SINGLE_BEND_MIN_FRAMES`, :data:`SINGLE_BEND_MIN_S`). Returns the
    cleaned tail and the bool mask of replaced rows.
    """
    out = tail.copy()
    spike = np.zeros(fr.n, bool)
    obs = np.flatnonzero(np.isfinite(tail))
    m = len(obs)
    if m < 5:
        return out, spike
    v = tail[obs]
    g = fr.gid[obs]
    t = fr.t[obs]
    # a time jump between two observed samples separates them like a change of fish
    seg = np.cumsum(np.r_[0, (g[1:] != g[:-1]) | _jump_between(fr, obs)])
    sg = sigma[g]
    for width in (1, 2):
        # could a real half-beat look like this at this frame rate? (see SPIKE_MAX_S)
        slow_w = (width + 1) * fr.dt_median >= SPIKE_MAX_S - 1e-9
        k = 3 if slow_w else 2  # neighbours on each side
        i = np.arange(k, m - width - k + 1)  # run i .. i+width-1
        if len(i) == 0:
            continue
        nb_idx = np.concatenate([i[None, :] - np.arange(k, 0, -1)[:, None],
                                 i[None, :] + width + np.arange(k)[:, None]])
        ok = (seg[nb_idx[0]] == seg[nb_idx[-1]]) & (
            t[nb_idx[-1]] - t[nb_idx[0]] <= (SPIKE_SPAN + width) * fr.dt_median)
        judged = np.zeros(m - width + 1, bool)
        judged[i] = ok
        nb = v[nb_idx]
        med = np.median(nb, axis=0)
        dist = np.abs(nb - med)
        dev = np.sort(dist, axis=0)
        if slow_w:
            # the neighbours' spread; of six, the one farthest from their median is left out
            # (another glitch close by must not hide this one)
            spread = 2.0 * dev[-2]
            # slow enough for a real half-beat to look like this: only when the three
            # neighbours on either side agree within the noise (around an undersampled beat
            # another half-beat lies within three samples)
            ok &= spread <= SPIKE_AGREE * sg[i]
            tol = np.maximum(SPIKE_FACTOR * sg[i], SPIKE_SLOW_SPREAD * spread)
        else:
            # of four, the farthest is left out when it is an outer one, a sample away from
            # the run (another glitch two frames away must not hide this one); next to the
            # run it is part of the same, wider, excursion (a real turn) and counts
            far = np.argmax(dist, axis=0)
            outer = (far != k - 1) & (far != k)
            spread = 2.0 * np.where(outer, dev[-2], dev[-1])
            tol = np.maximum(SPIKE_FACTOR * sg[i], 2.0 * spread)
        hit = ok.copy()
        for j in range(width):
            hit &= np.abs(v[i + j] - med) > tol
        # next to a lost stretch or a track's end: judged on the neighbours there are
        ea, emed = _edge_outliers(v, t, seg, sg, width, k, ~judged, fr.dt_median, slow_w)
        i, med = np.r_[i[hit], ea].astype(np.int64), np.r_[med[hit], emed]
        for j in range(width):
            jj = i + j
            spike[obs[jj]] = True
            v[jj] = med
    _keep_clusters(fr, tail, obs, seg, spike, v, sg)
    out[obs] = v
    return out, spike


def _edge_outliers(v: np.ndarray, t: np.ndarray, seg: np.ndarray, sg: np.ndarray, width: int,
                   k: int, todo: np.ndarray, dt: float, slow: bool
                   ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`despike`'s test of the runs ``i .. i + width - 1`` of the observed samples ``v``
    (``todo[i]``) whose neighbours on both sides do not lie close together: a run next to a
    lost stretch of the tracking (or at a track's start or end). Such a run is judged on its
    :data:`SPIKE_EDGE_FRAMES` neighbourhood when the ``k`` neighbours on one side lie in it
    (with those of the other side that do): they must agree like the slow case's (the farthest
    left out where four or more remain, but within the tolerance too) and the run lie farther
    from their median than that tolerance. Returns
    the runs' first indices and the values that replace them."""
    m = len(v)
    i = np.flatnonzero(todo)
    if len(i) == 0:
        return i, np.zeros(0)
    off = np.r_[np.arange(-k, 0), width + np.arange(k)]
    nb = i[:, None] + off[None, :]
    inside = (nb >= 0) & (nb < m)
    nb = np.clip(nb, 0, m - 1)
    away = np.where(off[None, :] < 0, t[i][:, None] - t[nb], t[nb] - t[i + width - 1][:, None])
    valid = inside & (seg[nb] == seg[i][:, None]) & (away <= SPIKE_EDGE_FRAMES * dt + 1e-9)
    use = (valid[:, :k].all(axis=1) | valid[:, k:].all(axis=1)) & (seg[i + width - 1] == seg[i])
    i, nb, valid = i[use], nb[use], valid[use]
    if len(i) == 0:
        return i, np.zeros(0)
    vals = np.where(valid, v[nb], np.nan)
    med = np.nanmedian(vals, axis=1)
    # the farthest neighbour is left out, as in the slow case, where four or more are left
    dist = np.sort(np.where(valid, np.abs(vals - med[:, None]), -np.inf), axis=1)
    spread = 2.0 * np.where(valid.sum(axis=1) >= 4, dist[:, -2], dist[:, -1])
    s = sg[i]
    hit = (spread <= SPIKE_AGREE * s) if slow else np.ones(len(i), bool)
    tol = np.maximum(SPIKE_FACTOR * s, (SPIKE_SLOW_SPREAD if slow else 2.0) * spread)
    # the one left out must not be far either: a neighbour beyond the tolerance means the tail
    # moves next to the run (the last turns of a beat before the tracking was lost)
    hit &= dist[:, -1] <= tol
    for j in range(width):
        hit &= np.abs(v[i + j] - med) > tol
    return i[hit], med[hit]


def _keep_clusters(fr: Frames, tail: np.ndarray, obs: np.ndarray, seg: np.ndarray,
                   spike: np.ndarray, v: np.ndarray, sg: np.ndarray) -> None:
    """Give back the samples of the slow case that :func:`despike` replaced in clusters of
    :data:`SPIKE_CLUSTER` or more within :data:`SPIKE_SPAN` frames of one fish, when the
    tail between them is not at rest (in place on ``v``, the observed samples, and
    ``spike``): independent glitches leave the samples between them within the noise of the
    rest posture (:data:`SPIKE_CLUSTER_SIGMA`); between the turns of a beat the tail moves."""
    if 2 * fr.dt_median < SPIKE_MAX_S - 1e-9 or SPIKE_CLUSTER <= 1:
        return
    hit = np.flatnonzero(spike[obs])
    if len(hit) < SPIKE_CLUSTER:
        return
    n = SPIKE_CLUSTER - 1
    close = (seg[hit[n:]] == seg[hit[:-n]]) & (
        fr.t[obs[hit[n:]]] - fr.t[obs[hit[:-n]]] <= SPIKE_SPAN * fr.dt_median)
    if not close.any():
        return
    dev = np.abs(rest_deviation(np.where(spike, np.nan, tail), fr))[obs]
    back = np.zeros(len(hit), bool)
    for j in np.flatnonzero(close):
        a, b = hit[j], hit[j + n]
        between = ~spike[obs[a:b + 1]]
        if not between.any() or np.any(dev[a:b + 1][between] > SPIKE_CLUSTER_SIGMA * sg[a]):
            back[j : j + SPIKE_CLUSTER] = True
    idx = hit[back]
    v[idx] = tail[obs[idx]]
    spike[obs[idx]] = False


def median_clean(fr: Frames, tail: np.ndarray, span_s: float = MEDIAN_SPAN_S) -> np.ndarray:
    """Running median of the tail angle over ``span_s`` (odd number of frames, at least 5;
    below that frame rate the tail is returned as it is).

    At high frame rates a tracker glitch can last several frames yet still be far quicker
    than any tail movement (a half-beat lasts >= 10 ms); a running median over 5 ms removes
    every excursion of up to half that, including clusters of one-frame glitches, while
    lowering a 40 Hz beat's peaks by at most ~12 %.
    """
    width = int(span_s / fr.dt_median) if fr.n > 1 else 0
    width -= 1 - width % 2
    if width < 5:
        return tail
    out = tail.copy()
    for a, b in zip(*fish_bounds(fr), strict=True):
        seg = pd.Series(tail[a:b])
        ok = seg.notna().to_numpy()
        if ok.sum() < width:
            continue
        med = seg[ok].rolling(width, center=True, min_periods=1).median().to_numpy()
        out[a:b][ok] = med
    return out


def _jump_between(fr: Frames, obs: np.ndarray) -> np.ndarray:
    """For consecutive observed rows ``obs[k], obs[k+1]``: a time jump lies between them."""
    cj = np.concatenate([[0], np.cumsum(fr.jump)])
    return (cj[obs[1:]] - cj[obs[:-1]]) > 0


def tail_extrema(
    fr: Frames, noise: np.ndarray, tail: np.ndarray | None = None, *, strength: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Sorted-row indices of tail-angle extrema that alternate left/right (half-beat turns).

    A peak (or trough) counts when its prominence exceeds ``max(MIN_BEAT_PROMINENCE,
    BEAT_PROMINENCE_NOISE_FACTOR * sigma_f)``, ``sigma_f`` being the tail-noise sigma left
    after :func:`smooth_tail` (:func:`filtered_noise_gain`); runs of same-sign extrema no
    further apart than :data:`SAME_TURN_MAX_S` keep the largest. With ``strength`` also returns each extremum's prominence divided by that
    threshold, negative for a narrow extremum (see :data:`SINGLE_BEND_MIN_FRAMES`).
    """
    tail = fr.tail if tail is None else tail
    out = []
    ratio = []
    min_dist = max(1, int(np.floor(1.0 / MAX_BEAT_HZ / fr.dt_median)))
    # prominence is judged within one period of the slowest beat around each extremum
    wlen = 2 * int(np.ceil(0.5 / MIN_BEAT_HZ / fr.dt_median)) + 1
    bounds, ends = fish_bounds(fr)
    for g, (a, b) in enumerate(zip(bounds, ends, strict=True)):
        sig = tail[a:b].copy()
        ok = np.isfinite(sig)
        if ok.sum() < 3:
            continue
        if not ok.all():
            pos = np.arange(b - a)
            sig[~ok] = np.interp(pos[~ok], pos[ok], sig[ok])
        nz = noise[g] * filtered_noise_gain(fr) if np.isfinite(noise[g]) else 0.0
        prom = max(MIN_BEAT_PROMINENCE, BEAT_PROMINENCE_NOISE_FACTOR * nz)
        with warnings.catch_warnings():  # flat plateaus (a perfectly still tail) warn
            warnings.filterwarnings("ignore", "some peaks have", RuntimeWarning)
            pk, pk_p = find_peaks(sig, prominence=prom, distance=min_dist, wlen=wlen)
            tr, tr_p = find_peaks(-sig, prominence=prom, distance=min_dist, wlen=wlen)
        idx = np.concatenate([pk, tr])
        sign = np.concatenate([np.ones(len(pk)), -np.ones(len(tr))])
        pr = np.concatenate([pk_p["prominences"], tr_p["prominences"]]) / prom
        # a bend narrower than SINGLE_BEND_MIN_FRAMES / SINGLE_BEND_MIN_S at half its
        # prominence is a lone sample or a glitch: it keeps its place in the beat sequence
        # but has no strength of its own
        wd = np.concatenate([pk_p["widths"], tr_p["widths"]])
        min_wd = max(SINGLE_BEND_MIN_FRAMES, SINGLE_BEND_MIN_S / fr.dt_median)
        # narrow: marked negative (the size still counts for trimming, see bouts.py)
        pr = np.where(wd >= min_wd, pr, -pr)
        srt = np.argsort(idx, kind="stable")
        idx, sign, pr = idx[srt], sign[srt], pr[srt]
        idx_ok = ok[idx]
        idx, sign, pr = idx[idx_ok], sign[idx_ok], pr[idx_ok]
        if len(idx) == 0:
            continue
        # keep alternation: within a run of equal signs keep the most extreme value; a run
        # ends where same-sign extrema lie further apart than SAME_TURN_MAX_S (not one turn)
        apart = np.diff(fr.t[a + idx]) > SAME_TURN_MAX_S + 1e-9
        run = np.cumsum(np.r_[True, (sign[1:] != sign[:-1]) | apart])
        score = sig[idx] * sign
        best = pd.Series(score).groupby(run).idxmax().to_numpy()
        out.append(a + idx[best])
        ratio.append(pr[best])
    ext = np.concatenate(out) if out else np.zeros(0, np.int64)
    if strength:
        return ext, (np.concatenate(ratio) if ratio else np.zeros(0))
    return ext


def filtered_noise_gain(fr: Frames, cutoff_hz: float = TAIL_LOWPASS_HZ) -> float:
    """Factor by which :func:`smooth_tail` reduces white measurement noise (sd): the square
    root of the fraction of the spectrum up to the Nyquist frequency that it passes."""
    fps = 1.0 / fr.dt_median if fr.n > 1 else 0.0
    if fps < 2.5 * cutoff_hz:
        return 1.0
    return float(np.sqrt(2.0 * cutoff_hz / fps))


def smooth_tail(
    fr: Frames, cutoff_hz: float = TAIL_LOWPASS_HZ, tail: np.ndarray | None = None
) -> np.ndarray:
    """Tail angle of the observed frames, low-passed per fish (NaN elsewhere).

    A zero-phase 4th-order Butterworth filter (applied forwards and backwards) at
    ``cutoff_hz``, when the frame rate is at least ``2.5 x cutoff_hz``; below that nothing is
    filtered (the beat band reaches the Nyquist frequency). Unobserved frames are bridged by
    linear interpolation while filtering and are NaN again afterwards.
    """
    tail = np.where(fr.observed, fr.tail if tail is None else tail, np.nan)
    fps = 1.0 / fr.dt_median if fr.n > 1 else 0.0
    if fr.n == 0 or fps < 2.5 * cutoff_hz:
        return tail
    sos = butter_lowpass(4, cutoff_hz, fps)
    out = np.full(fr.n, np.nan)
    for a, b in zip(*fish_bounds(fr), strict=True):
        seg = tail[a:b]
        ok = np.isfinite(seg)
        if ok.sum() < 16:
            out[a:b] = seg
            continue
        pos = np.arange(b - a)
        filled = np.interp(pos, pos[ok], seg[ok])
        out[a:b] = sosfiltfilt(sos, filled, min(3 * 8, b - a - 1))
    out[~np.isfinite(tail)] = np.nan
    return out


def travel_rate(tail: np.ndarray, fr: Frames, width: int) -> np.ndarray:
    """Tail-angle travel per second over a centred window of ``width`` frames (rad/s).

    The sum of ``|tail_j - tail_(j-1)|`` over the consecutive frame pairs inside the window,
    divided by the time they span; pairs with an unobserved frame or across a time jump are
    left out. For a well-sampled beat this equals the mean ``|d tail / dt|`` (``4 A f`` for
    a sine of amplitude ``A`` and frequency ``f``); unlike a central difference, it keeps at
    least 64 % of a beat's speed up to the Nyquist frequency (a central difference keeps only
    7 % of a 30 Hz beat at 64 fps).
    """
    n = fr.n
    if n == 0:
        return np.zeros(0)
    d = np.abs(tail_diffs(fr, tail))
    dt = np.zeros(n)
    dt[1:] = fr.t[1:] - fr.t[:-1]
    ok = np.isfinite(d)
    idx = np.arange(n)
    width = max(2, int(width))
    lo = np.maximum(idx - (width - 1) // 2, fr.gstart)
    hi = np.minimum(idx + width // 2, fr.gend)
    # pairs (j-1, j) with lo < j <= hi
    s_d = window_sum(np.where(ok, d, 0.0), fr, lo + 1, hi + 1)
    s_t = window_sum(np.where(ok, dt, 0.0), fr, lo + 1, hi + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = s_d / s_t
    out[s_t <= 0] = np.nan
    return out


def _centred_mean(v: np.ndarray, fr: Frames, width: int) -> np.ndarray:
    """Centred moving mean of ``v`` over ``width`` frames of the same fish, ignoring NaN
    (NaN where the window holds no number)."""
    ok = np.isfinite(v)
    idx = np.arange(fr.n)
    lo = np.maximum(idx - (width - 1) // 2, fr.gstart)
    hi = np.minimum(idx + width // 2, fr.gend)
    cnt = window_sum(ok.astype(np.int64), fr, lo, hi + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = window_sum(np.where(ok, v, 0.0), fr, lo, hi + 1) / cnt
    out[cnt == 0] = np.nan
    return out


def rest_deviation(tail: np.ndarray, fr: Frames) -> np.ndarray:
    """Tail angle minus its rest posture (the centred moving mean over :data:`REST_S`), rad."""
    rest_w = max(3, int(round(REST_S / fr.dt_median)) + 1) if fr.n > 1 else 3
    return tail - _centred_mean(tail, fr, rest_w)


def tail_excursion(tail: np.ndarray, fr: Frames, width: int) -> np.ndarray:
    """Robust excursion of the tail angle from its rest posture (rad) over a centred window
    of ``width`` frames: 1.4826 x the median of ``|tail - rest posture|`` in the window.

    The rest posture is the centred moving mean of the (cleaned) tail angle over
    :data:`REST_S` (:func:`rest_deviation`). Unlike the vigour (travel per second), the
    excursion does not need the beats to be resolved: an aliased or barely sampled beat of
    amplitude ``A`` still spreads its samples over +/- ``A`` (excursion ~1.05 ``A``; up to 1.48 ``A`` exactly at the Nyquist frequency), while
    white measurement noise of sigma ``s`` gives ``s``. The median makes it blind to tracker
    glitches that survive the cleaning (a mean of squares is not: one 0.4 rad glitch in a
    window of 80 frames reads as a 0.045 rad RMS excursion). NaN on unobserved frames.
    """
    n = fr.n
    if n == 0:
        return np.zeros(0)
    dev = np.abs(rest_deviation(tail, fr))
    out = np.full(n, np.nan)
    w = max(2, int(width))
    for a, b in zip(*fish_bounds(fr), strict=True):
        seg = pd.Series(dev[a:b])
        out[a:b] = seg.rolling(w, center=True, min_periods=1).median().to_numpy()
    out *= 1.4826
    out[~fr.observed] = np.nan
    return out


def extremum_times(fr: Frames, tail: np.ndarray, ext: np.ndarray) -> np.ndarray:
    """Time of each extremum refined by the parabola through it and its two neighbours."""
    t = fr.t[ext].astype(float)
    inner = (ext > fr.gstart[ext]) & (ext < fr.gend[ext])
    i = ext[inner]
    if len(i) == 0:
        return t
    y0, y1, y2 = tail[i - 1], tail[i], tail[i + 1]
    den = y0 - 2 * y1 + y2
    with np.errstate(invalid="ignore", divide="ignore"):
        d = np.clip(0.5 * (y0 - y2) / den, -0.5, 0.5)
    d = np.where(np.isfinite(d), d, 0.0)
    step = np.where(d >= 0, fr.t[i + 1] - fr.t[i], fr.t[i] - fr.t[i - 1])
    t[inner] = fr.t[i] + d * step
    return t


def _beat_frequency(fr: Frames, ext: np.ndarray, ext_t: np.ndarray) -> np.ndarray:
    """Instantaneous tail-beat frequency: 1 / (2 x time between consecutive extrema)."""
    hz = np.zeros(fr.n)
    if len(ext) < 2:
        hz[~fr.observed] = np.nan
        return hz
    a, b = ext[:-1], ext[1:]
    half = ext_t[1:] - ext_t[:-1]
    valid = (fr.gid[a] == fr.gid[b]) & (half <= 0.5 / MIN_BEAT_HZ) & (half > 0)
    k = np.searchsorted(ext, np.arange(fr.n), side="right") - 1  # last extremum at/before row
    inside = (k >= 0) & (k < len(ext) - 1)
    kk = np.clip(k, 0, len(ext) - 2)
    use = inside & valid[kk]
    hz[use] = 0.5 / half[kk[use]]
    hz[~fr.observed] = np.nan
    return hz


def _midline(tracks: pd.DataFrame, order: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    idx = sorted(int(m.group(1)) for c in tracks.columns if (m := _TAIL_X.match(c)))
    idx = [i for i in idx if f"tail_y_{i}" in tracks.columns]
    if len(idx) < 2:
        return None
    px = tracks[[f"tail_x_{i}" for i in idx]].to_numpy(dtype=float)[order]
    py = tracks[[f"tail_y_{i}" for i in idx]].to_numpy(dtype=float)[order]
    return px, py


def midline_lengths(tracks: pd.DataFrame, fr: Frames) -> np.ndarray | None:
    """Per sorted row: the traced midline's length (px, head to tip along ``tail_x_i,
    tail_y_i``; NaN where a point is missing); None without midline points."""
    mid = _midline(tracks, fr.order)
    if mid is None:
        return None
    px, py = mid
    return np.hypot(np.diff(px, axis=1), np.diff(py, axis=1)).sum(axis=1)


def _curvature(px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Total signed bend of the midline, head to tip (rad, positive = clockwise on screen).

    NaN when any midline point is missing.
    """
    ang = np.arctan2(np.diff(py, axis=1), np.diff(px, axis=1))
    return wrap(np.diff(ang, axis=1)).sum(axis=1)


def _midline_motion(px: np.ndarray, py: np.ndarray, fr: Frames) -> np.ndarray:
    """Mean midline-point displacement since the previous frame, in body lengths."""
    n = fr.n
    out = np.full(n, np.nan)
    if n < 2:
        return out
    length = np.hypot(np.diff(px, axis=1), np.diff(py, axis=1)).sum(axis=1)
    step = np.hypot(px[1:] - px[:-1], py[1:] - py[:-1]).mean(axis=1)
    same = fr.gid[1:] == fr.gid[:-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        out[1:] = np.where(same, step / length[1:], np.nan)
    out[~np.isfinite(out)] = np.nan
    return out


def compute_kinematics(
    tracks: pd.DataFrame, *, vigour_window_s: float = 0.03, max_gap_s: float = 0.5,
    excursion_window_s: float = 0.12,
) -> Kinematics:
    """Kinematics of every fish in sorted order (the engine behind :func:`kinematics`)."""
    fr = sorted_frames(tracks, max_gap_s=max_gap_s)
    cols: dict[str, np.ndarray] = {}
    vx = derivative(fr.x, fr)
    vy = derivative(fr.y, fr)
    cols["speed_px_s"] = np.hypot(vx, vy)
    cols["angular_velocity_rad_s"] = derivative(fr.heading, fr, angular=True)
    mid = _midline(tracks, fr.order)
    if mid is not None:
        cols["curvature_rad"] = _curvature(*mid)
    else:
        cols["curvature_rad"] = np.full(fr.n, np.nan)
    width = max(MIN_VIGOUR_FRAMES, int(round(vigour_window_s / fr.dt_median)) + 1)
    exc_width = max(EXCURSION_MIN_FRAMES, int(round(excursion_window_s / fr.dt_median)) + 1)
    source = "none"
    motion = np.full(fr.n, np.nan)
    if "motion_energy" in tracks.columns:
        me = pd.to_numeric(tracks["motion_energy"], errors="coerce").to_numpy(float)[fr.order]
        if pooled("any_motion_energy", any_of, flag=np.isfinite(me).any()):
            motion, source = me, "pixels"
    if source == "none" and mid is not None:
        motion, source = _midline_motion(*mid, fr), "midline"
    cols["motion_index"] = motion
    kin = Kinematics(
        frames=fr,
        columns=cols,
        tail=np.zeros(0),
        extrema=np.zeros(0, np.int64),
        extrema_t=np.zeros(0),
        tail_noise=np.zeros(0),
        motion_source=source,
        width=width,
        exc_width=exc_width,
    )
    kin.refine(tail_noise(fr))
    kin.columns = {c: kin.columns[c] for c in KINEMATIC_COLUMNS}
    return kin


def kinematics(tracks: pd.DataFrame, *, vigour_window_s: float = 0.03,
               excursion_window_s: float = 0.12) -> pd.DataFrame:
    """Per-frame kinematics of every fish.

    Parameters
    ----------
    tracks
        Tracks table (one row per frame per fish; see docs/data_model.md). Needs ``frame,
        time_s, fish, tail_angle``; uses ``arena, x, y, heading, detected, motion_energy`` and
        the midline points ``tail_x_i, tail_y_i`` when present.
    vigour_window_s
        Width of the moving mean that turns ``|tail velocity|`` into vigour (s).

    Returns
    -------
    pandas.DataFrame
        Same index and row order as ``tracks``, columns :data:`KINEMATIC_COLUMNS`:
        ``speed_px_s`` (px/s), ``angular_velocity_rad_s`` (rad/s, heading change),
        ``tail_velocity_rad_s`` (rad/s), ``tail_beat_hz`` (Hz, 0 between beats),
        ``curvature_rad`` (rad, total midline bend), ``vigour_rad_s`` (rad/s) and
        ``motion_index`` (``motion_energy`` when the tracker measured it, otherwise mean
        midline displacement per frame in body lengths), ``tail_excursion_rad`` (rad, RMS
        excursion of the tail angle from its rest posture, :func:`tail_excursion`).
    """
    kin = compute_kinematics(tracks, vigour_window_s=vigour_window_s,
                             excursion_window_s=excursion_window_s)
    data = {c: to_input_order(kin.frames, v) for c, v in kin.columns.items()}
    out = pd.DataFrame(data, index=tracks.index)
    out.attrs["motion_source"] = kin.motion_source
    return out
