"""Movement bouts from head speed, for tracks without a tail or video too slow for its beats.

Plate readers record at 25-30 fps, and idtracker.ai / TRex / SLEAP exports without tail
keypoints hold positions only. There the tail cannot tell a bout from a still fish, but the
body's displacement can. A *movement bout* is a stretch where the head's **speed** (its
straight displacement across a centred window of ``speed_window_s`` divided by the window's
duration, px/s; :func:`window_speed`) is above a threshold set from the
measurement noise of the positions, never from how often the fish moves:

* position noise sigma (px, per axis) from the frame-to-frame changes of ``x`` and ``y``,
  exactly as the tail-angle noise (:func:`fishtrack.behaviour.kinematics.tail_noise`): a
  first pass from the 25th percentile of ``|dx|, |dy|`` over all frames, then the median over
  the frames away from every bout;
* first-pass threshold ``mean + speed_threshold_factor x sd`` of the speed that white
  position noise of that sigma produces (:func:`white_noise_speed`); later passes measure
  the median and robust sd of the speed on each fish's quiet frames, pooled over the
  fish of the recording where a fish has less than 2 s of them
  (:func:`fishtrack.behaviour.bouts.quiet_levels`);
* floor: :data:`MIN_TRAVEL_PX` over the window, and ``min_bout_speed_bl_s`` body lengths/s
  where the body length is known (midline points ``tail_x_i, tail_y_i``).

Frames are *observed* when the fish was detected and its position is known. Bouts are the
runs above the threshold extended down to a lower one (hysteresis, as for the tail), merged
when closer than ``merge_gap_s`` and kept from ``min_bout_s`` (not shrunk back by the window:
a bout's speed rises and falls gradually, and shrinking lost more of its true frames than it
removed false ones on the tuning seeds). States follow from the bouts exactly as with the tail
(:func:`fishtrack.behaviour.states.state_codes`). See docs/behaviour.md ("Movement bouts from
speed").
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fishtrack.behaviour._frames import (
    Blocks,
    Frames,
    fish_bounds,
    gap_blocks,
    group_quantile,
    moving_mean,
    run_lengths_fill,
    sorted_frames,
)
from fishtrack.behaviour.bouts import (
    _MAD,
    BoutRuns,
    NoiseLevels,
    bout_runs,
    hysteresis_activity,
    quiet_frames,
    quiet_levels,
)
from fishtrack.behaviour.kinematics import Kinematics, _midline, tail_noise
from fishtrack.config import BehaviourConfig

__all__ = [
    "MIN_TAIL_FPS",
    "choose_signal",
    "detect_speed_bouts",
    "position_frames",
    "white_noise_speed",
]

MIN_TAIL_FPS = 50.0
"""Below this frame rate ``bout_signal: auto`` uses the speed: twice 25 Hz, the middle of the
15-40 Hz tail-beat band. At 25-30 fps every beat aliases and a camera's exposure averages a
beating tail towards straight (on simulated 25-30 fps recordings the tail gives kappa ~0, see
docs/behaviour.md); the tail detector is validated from 60 fps up."""
MIN_TRAVEL_PX = 0.5
"""Floor of the automatic threshold: this distance over the window (px), whatever the noise
(perfectly still, e.g. interpolated or integer positions have no measurable noise)."""
MIN_HIGH = 0.5
"""A bout's speed stays above the threshold for at least this fraction of the window: a real
movement keeps the window's displacement high while the window holds it, noise at one of
the window's ends makes single-frame spikes."""
SMOOTH_S = 0.08
"""Positions are averaged over this (s, a centred moving mean, 3 frames at 25 fps) before the
displacement is taken: the noise of the window's ends falls by ~sqrt(frames)."""
N_PASSES = 3
"""Threshold passes: the first from the position-noise sigma, the others from the quiet
frames."""


def position_frames(tracks: pd.DataFrame, cfg: BehaviourConfig) -> Frames:
    """The tracks sorted fish by fish, *observed* = detected and position known."""
    return sorted_frames(tracks, max_gap_s=cfg.max_gap_s, observe="position")


def choose_signal(fr: Frames, cfg: BehaviourConfig) -> tuple[str, str]:
    """``(signal, reason)``: ``tail`` or ``speed`` for ``cfg.bout_signal``.

    ``auto`` takes the speed when no frame has a tail angle, or when the frame rate is below
    :data:`MIN_TAIL_FPS`; otherwise the tail.
    """
    fps = 1.0 / fr.dt_median if fr.n > 1 else float("nan")
    if cfg.bout_signal != "auto":
        return cfg.bout_signal, "set in the configuration (behaviour.bout_signal)"
    if not np.isfinite(fr.tail).any():
        return "speed", "no tail angle in the tracks (positions only)"
    if np.isfinite(fps) and fps < MIN_TAIL_FPS - 0.5:
        return "speed", (f"frame rate {fps:.0f} Hz is below {MIN_TAIL_FPS:.0f} Hz "
                         "(twice 25 Hz, the middle of the tail-beat band): tail beats alias")
    return "tail", "tail angle available and frame rate high enough for tail beats"


def window_speed(fr: Frames, width: int) -> np.ndarray:
    """Per sorted row: the head's displacement across a centred window of ``width`` frames
    divided by the time it spans (px/s; NaN on unobserved rows).

    The straight distance between the positions at the window's ends, not the path: position
    noise adds to every step of a path but only twice to a displacement, while a movement
    of several frames counts whole. Unobserved rows inside a fish's record are bridged by
    linear interpolation (never across fish); the window is cut at each fish's first and last
    row.
    """
    n = fr.n
    out = np.full(n, np.nan)
    if n == 0:
        return out
    xf = np.full(n, np.nan)
    yf = np.full(n, np.nan)
    for a, b in zip(*fish_bounds(fr), strict=True):
        ok = fr.observed[a:b] & np.isfinite(fr.x[a:b]) & np.isfinite(fr.y[a:b])
        if ok.sum() < 2:
            continue
        t = fr.t[a:b]
        xf[a:b] = np.interp(t, t[ok], fr.x[a:b][ok])
        yf[a:b] = np.interp(t, t[ok], fr.y[a:b][ok])
    k = int(round(SMOOTH_S / fr.dt_median)) + 1 if fr.dt_median > 0 else 1
    if k > 1:
        xf = moving_mean(xf, fr, k)
        yf = moving_mean(yf, fr, k)
    idx = np.arange(n)
    width = max(2, int(width))
    lo = np.maximum(idx - (width - 1) // 2, fr.gstart)
    hi = np.minimum(idx + width // 2, fr.gend)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.hypot(xf[hi] - xf[lo], yf[hi] - yf[lo]) / (fr.t[hi] - fr.t[lo])
    out[(hi <= lo) | ~fr.observed] = np.nan
    return out


def white_noise_speed(dt: float, width: int, n: int = 8192) -> tuple[float, float]:
    """Mean and robust sd of the window speed (:func:`window_speed`, px/s) that white position
    noise of sigma 1 px per axis produces at frame interval ``dt`` over a window of ``width``
    frames; fixed seed."""
    rng = np.random.default_rng(0)
    zeros = np.zeros(n, np.int64)
    fr = Frames(order=np.arange(n), gid=zeros, gstart=zeros, gend=np.full(n, n - 1),
                frame=np.arange(n), t=np.arange(n) * dt, dur=np.full(n, dt), dt_median=dt,
                observed=np.ones(n, bool), tail=np.full(n, np.nan), x=rng.standard_normal(n),
                y=rng.standard_normal(n), heading=np.full(n, np.nan),
                fish_keys=pd.DataFrame({"arena": [""], "fish": [""]}), jump=np.zeros(n - 1, bool))
    v = window_speed(fr, width)[width:-width]
    med = float(np.median(v))
    return med, float(_MAD * np.median(np.abs(v - med)))


def body_length_px(tracks: pd.DataFrame, fr: Frames) -> np.ndarray:
    """Per fish: median midline length (px) from ``tail_x_i, tail_y_i``; NaN without them."""
    n_fish = len(fr.fish_keys)
    mid = _midline(tracks, fr.order)
    if mid is None:
        return np.full(n_fish, np.nan)
    px, py = mid
    length = np.hypot(np.diff(px, axis=1), np.diff(py, axis=1)).sum(axis=1)
    return group_quantile(length, fr.gid, n_fish, 0.5)


def speed_window(fr: Frames, cfg: BehaviourConfig) -> int:
    """Frames in the speed window: ``speed_window_s`` + 1 frame, at least 2."""
    return max(2, int(round(cfg.speed_window_s / fr.dt_median)) + 1)


def detect_speed_bouts(
    fr: Frames, cfg: BehaviourConfig, blocks: Blocks | None = None,
    body_px: np.ndarray | None = None,
) -> tuple[BoutRuns, np.ndarray, dict[str, np.ndarray]]:
    """Movement bouts of every fish (``fr`` from :func:`position_frames`).

    Returns the bouts (``thresholds`` and ``noise`` in px/s), the per-frame speed
    (px/s, sorted order) and per-fish extras: ``position_noise_px`` (sigma per axis) and
    ``floor_px_s``.
    """
    blocks = blocks if blocks is not None else gap_blocks(fr, cfg.max_gap_s)
    n_fish = len(fr.fish_keys)
    width = speed_window(fr, cfg)
    x = np.where(fr.observed, fr.x, np.nan)
    y = np.where(fr.observed, fr.y, np.nan)
    speed = window_speed(fr, width)
    kin = Kinematics(frames=fr, columns={"vigour_rad_s": speed}, tail=np.zeros(0),
                     extrema=np.zeros(0, np.int64), extrema_t=np.zeros(0),
                     tail_noise=np.zeros(0), motion_source="none", width=width)
    sig = np.sqrt(0.5 * (tail_noise(fr, x) ** 2 + tail_noise(fr, y) ** 2))
    mu1, sd1 = white_noise_speed(fr.dt_median, width)
    span = (width - 1) * fr.dt_median
    floor = np.full(n_fish, MIN_TRAVEL_PX / span)
    if body_px is not None:
        floor = np.fmax(floor, cfg.min_bout_speed_bl_s * body_px)
    mean, sd = sig * mu1, sig * sd1
    levels = None
    for k in range(N_PASSES):
        thr = np.fmax(floor, mean + cfg.speed_threshold_factor * sd)
        active = hysteresis_activity(kin, thr, mean, max_extend_s=span + fr.dt_median,
                                     min_high_s=MIN_HIGH * span)
        s, e = bout_runs(active, fr, blocks, cfg)
        in_bout = run_lengths_fill(s, e, np.ones(len(s), bool), fr.n, False)
        if k == N_PASSES - 1:
            break
        quiet = quiet_frames(kin, in_bout)
        sig_q = np.sqrt(0.5 * (tail_noise(fr, x, quiet) ** 2 + tail_noise(fr, y, quiet) ** 2))
        levels = quiet_levels(fr, speed, sig_q, quiet)
        mean, sd = levels.vigour_mean, levels.vigour_sd
        sig = levels.tail_noise_rad
    br = BoutRuns(starts=s, ends=e, in_bout=in_bout, thresholds=thr, noise=mean, levels=levels)
    if levels is None:
        levels = NoiseLevels(tail_noise_rad=sig, vigour_mean=mean, vigour_sd=sd,
                             quiet_s=np.full(n_fish, np.nan), pooled=np.zeros(n_fish, bool))
        br.levels = levels
    return br, speed, {"position_noise_px": levels.tail_noise_rad, "floor_px_s": floor}
