"""Per-frame kinematics of every fish.

All derivatives use the actual frame times (``time_s``), so variable frame rates and dropped
frames give correct rates. Work is vectorised over all fish at once except the tail-beat
extremum search (:func:`scipy.signal.find_peaks`, one call per fish).
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
    moving_mean,
    sorted_frames,
    to_input_order,
    wrap,
)

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
)
"""Per-frame columns added by :func:`kinematics` (units in the names; see docs/behaviour.md)."""

MIN_BEAT_HZ = 5.0
"""Slowest tail-beat frequency counted (Hz): extrema further apart than half its period do
not form a beat."""
MAX_BEAT_HZ = 100.0
"""Fastest tail-beat frequency counted (Hz): larval escapes reach ~80 Hz."""

MIN_BEAT_PROMINENCE = 0.05
"""Smallest tail excursion (rad) between a tail extremum and its neighbours that counts as a
half-beat, whatever the noise."""
BEAT_PROMINENCE_NOISE_FACTOR = 5.0
"""A half-beat must also exceed this many times the tail-angle measurement noise (sigma)."""

TAIL_SMOOTH_S = 0.001
"""Sigma (s) of the Gaussian that smooths the tail angle before differentiating. It removes
measurement noise at high frame rates (>= 500 fps) while keeping 97 % of a 40 Hz beat's
amplitude; below 500 fps it is under half a frame and nothing is smoothed."""

_TAIL_X = re.compile(r"^tail_x_(\d+)$")


@dataclass
class Kinematics:
    """Kinematics in sorted (fish by fish) order, plus the tail extrema used for beats."""

    frames: Frames
    columns: dict[str, np.ndarray]
    tail: np.ndarray  # smoothed tail angle of observed frames, sorted order (rad)
    extrema: np.ndarray  # sorted-row index of every tail-angle extremum (half-beat turn)
    extrema_t: np.ndarray  # their times, refined between frames by a parabola (s)
    tail_noise: np.ndarray  # per fish, sigma of the tail-angle measurement noise (rad)
    motion_source: str  # "pixels" | "midline" | "none"


def tail_noise(fr: Frames) -> np.ndarray:
    """Per-fish sigma of the tail-angle measurement noise (rad).

    From the 25th percentile of the frame-to-frame tail-angle change, which stays on the
    quiet frames unless the fish beats its tail in more than ~70 % of them; for Gaussian
    noise ``|diff|`` has its 25th percentile at ``0.3186 * sqrt(2) * sigma``.
    """
    d = np.full(fr.n, np.nan)
    if fr.n > 1:
        same = fr.gid[1:] == fr.gid[:-1]
        d[1:] = np.where(same, np.abs(fr.tail[1:] - fr.tail[:-1]), np.nan)
    q25 = group_quantile(d, fr.gid, len(fr.fish_keys), 0.25)
    return q25 / (0.3186 * np.sqrt(2.0))


def tail_extrema(fr: Frames, noise: np.ndarray, tail: np.ndarray | None = None) -> np.ndarray:
    """Sorted-row indices of tail-angle extrema that alternate left/right (half-beat turns).

    A peak (or trough) counts when its prominence exceeds ``max(MIN_BEAT_PROMINENCE,
    BEAT_PROMINENCE_NOISE_FACTOR * sigma)``; runs of same-sign extrema keep the largest.
    """
    from scipy.signal import find_peaks  # heavy import: only when needed

    tail = fr.tail if tail is None else tail
    out = []
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
        nz = noise[g] if np.isfinite(noise[g]) else 0.0
        prom = max(MIN_BEAT_PROMINENCE, BEAT_PROMINENCE_NOISE_FACTOR * nz)
        with warnings.catch_warnings():  # flat plateaus (a perfectly still tail) warn
            warnings.filterwarnings("ignore", "some peaks have", RuntimeWarning)
            pk, _ = find_peaks(sig, prominence=prom, distance=min_dist, wlen=wlen)
            tr, _ = find_peaks(-sig, prominence=prom, distance=min_dist, wlen=wlen)
        idx = np.concatenate([pk, tr])
        sign = np.concatenate([np.ones(len(pk)), -np.ones(len(tr))])
        srt = np.argsort(idx, kind="stable")
        idx, sign = idx[srt], sign[srt]
        idx_ok = ok[idx]
        idx, sign = idx[idx_ok], sign[idx_ok]
        if len(idx) == 0:
            continue
        # keep alternation: within a run of equal signs keep the most extreme value
        run = np.cumsum(np.r_[True, sign[1:] != sign[:-1]])
        score = sig[idx] * sign
        best = pd.Series(score).groupby(run).idxmax().to_numpy()
        out.append(a + idx[best])
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def smooth_tail(fr: Frames, sigma_s: float = TAIL_SMOOTH_S) -> np.ndarray:
    """Tail angle of the observed frames, Gaussian-smoothed per fish (NaN elsewhere)."""
    from scipy.ndimage import gaussian_filter1d

    tail = np.where(fr.observed, fr.tail, np.nan)
    sig = sigma_s / fr.dt_median
    if sig < 0.5 or fr.n == 0:
        return tail
    ok = np.isfinite(tail)
    out = np.full(fr.n, np.nan)
    for a, b in zip(*fish_bounds(fr), strict=True):
        w = gaussian_filter1d(ok[a:b].astype(float), sig, mode="constant")
        v = gaussian_filter1d(np.where(ok[a:b], tail[a:b], 0.0), sig, mode="constant")
        with np.errstate(invalid="ignore", divide="ignore"):
            out[a:b] = v / w
    out[~ok] = np.nan
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
    tracks: pd.DataFrame, *, vigour_window_s: float = 0.03, max_gap_s: float = 0.5
) -> Kinematics:
    """Kinematics of every fish in sorted order (the engine behind :func:`kinematics`)."""
    fr = sorted_frames(tracks, max_gap_s=max_gap_s)
    cols: dict[str, np.ndarray] = {}
    vx = derivative(fr.x, fr)
    vy = derivative(fr.y, fr)
    cols["speed_px_s"] = np.hypot(vx, vy)
    cols["angular_velocity_rad_s"] = derivative(fr.heading, fr, angular=True)
    tail = smooth_tail(fr)
    tv = derivative(tail, fr, angular=True)
    cols["tail_velocity_rad_s"] = tv
    noise = tail_noise(fr)
    ext = tail_extrema(fr, noise, tail)
    ext_t = extremum_times(fr, tail, ext)
    cols["tail_beat_hz"] = _beat_frequency(fr, ext, ext_t)
    mid = _midline(tracks, fr.order)
    if mid is not None:
        cols["curvature_rad"] = _curvature(*mid)
    else:
        cols["curvature_rad"] = np.full(fr.n, np.nan)
    width = max(1, int(round(vigour_window_s / fr.dt_median)))
    vig = moving_mean(np.abs(tv), fr, width)
    vig[~fr.observed] = np.nan
    cols["vigour_rad_s"] = vig
    source = "none"
    motion = np.full(fr.n, np.nan)
    if "motion_energy" in tracks.columns:
        me = pd.to_numeric(tracks["motion_energy"], errors="coerce").to_numpy(float)[fr.order]
        if np.isfinite(me).any():
            motion, source = me, "pixels"
    if source == "none" and mid is not None:
        motion, source = _midline_motion(*mid, fr), "midline"
    cols["motion_index"] = motion
    return Kinematics(
        frames=fr,
        columns=cols,
        tail=tail,
        extrema=ext,
        extrema_t=ext_t,
        tail_noise=noise,
        motion_source=source,
    )


def kinematics(tracks: pd.DataFrame, *, vigour_window_s: float = 0.03) -> pd.DataFrame:
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
        midline displacement per frame in body lengths).
    """
    kin = compute_kinematics(tracks, vigour_window_s=vigour_window_s)
    data = {c: to_input_order(kin.frames, v) for c, v in kin.columns.items()}
    out = pd.DataFrame(data, index=tracks.index)
    out.attrs["motion_source"] = kin.motion_source
    return out
