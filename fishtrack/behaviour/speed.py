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
removed false ones on the tuning seeds). From the speed alone (no pixel motion) a bout is
kept only when the head's mean position after it differs from that before it by more than the
position noise allows (:func:`net_displacement_bouts`: the noise of the window's ends carried
over the threshold is no bout). States follow from the bouts exactly as with the tail
(:func:`fishtrack.behaviour.states.state_codes`). See docs/behaviour.md ("Movement bouts from
speed").

With the tracker's pixel motion (``bout_signal: speed_motion``, chosen by ``auto`` when the
tracks have ``motion_energy``) a frame is also in a bout when the change of the pixels inside
the fish's mask, aligned to the frame (:func:`motion_frames`), is above a threshold from the
fish's quiet frames (:func:`motion_levels`), at least the recording's median over fish
(:func:`rig_motion_threshold`: the codec's refreshes of the whole picture): struggles that
hold station move the tail, not the head; and when the fish's segmented area drops above its
noise while its pixels move (:func:`blur_frames`: at 25-30 fps a struggle's tail beats faster
than the frame rate and blurs, so consecutive frames look alike but the area falls); and
when the pixels where the traced tail is (the tracker's ``tail_motion``) change over a stretch
of 0.32-0.64 s more than in the recording's quiet stretches of that length
(:func:`tail_above_levels`: a small larva's struggle in place, diluted in the whole fish's).
A stretch of blur is also confirmed by the tail's pixels (:func:`tail_stirred`, each larva's
own quiet frames: valid with one or two larvae), and the speed's hysteresis beside a bout is
judged against the speed right beyond it (:func:`speed_beside_bouts`).
``speed_threshold`` / ``motion_threshold`` replace the noise rules with fixed,
rig-level values (:func:`fixed_speed_threshold`).
"""

from __future__ import annotations

from dataclasses import replace

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
    runs,
    sorted_frames,
)
from fishtrack.behaviour._pool import any_of, ask_ahead, pooled, remembered
from fishtrack.behaviour.bouts import (
    _MAD,
    HYSTERESIS,
    MOTION_GATE_MEAN_WINDOWS_S,
    MOTION_GATE_MIN_FISH,
    MOTION_GATE_TAIL_SPREAD,
    BoutRuns,
    NoiseLevels,
    _hist_quantiles,
    _mean_gate_summary,
    _mean_level,
    _mean_levels_of_histograms,
    _median_of_levels,
    bout_runs,
    hysteresis_activity,
    mean_gate_lags,
    quiet_frames,
    quiet_levels,
    quiet_window_means,
    rig_noise_level,
    rig_noise_summary,
    rig_reference,
)
from fishtrack.behaviour.kinematics import Kinematics, midline_lengths, tail_noise
from fishtrack.config import BehaviourConfig
from fishtrack.errors import ConfigError

__all__ = [
    "MIN_TAIL_FPS",
    "MOVEMENT_SIGNALS",
    "choose_signal",
    "detect_speed_bouts",
    "fixed_speed_threshold",
    "has_motion_energy",
    "motion_frames",
    "position_frames",
    "white_noise_speed",
    "blur_frames",
    "blurred_continuation",
]

MOVEMENT_SIGNALS = ("speed", "speed_motion")
"""Values of ``bout_signal`` whose bouts are movement bouts (no tail beats)."""

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
frames (one more with pixel motion: its first threshold comes from the speed bouts)."""
MOTION_FACTOR = 5.0
"""Pixel motion: threshold = median + this x robust sd of the aligned ``motion_energy`` of
the quiet frames of all fish of the recording (grey levels)."""
MIN_MOTION_GREY = 1.0
"""Floor of the pixel-motion threshold (grey levels): compressed video keeps still pixels
exactly unchanged, so the quiet frames' spread can be ~0."""
MOTION_SMOOTH_S = 0.07
"""The aligned pixel motion is averaged over this (s; a moving mean of 2 frames at 25-30
fps): a struggle lasts several frames, the noise of one frame falls by ~sqrt(2)."""
DRIFT_S = 2.0
"""The slow drift taken out of the speed (:func:`window_speed`): the running median of the
window's velocity over this (s). Longer than any bout (0.1-0.4 s, so a bout's frames are a
minority of it and do not move the median) and not longer than the time a passive larva's
drift keeps its course (the simulator's drift velocity has a 2 s time constant)."""
MIN_MOTION_QUIET = 50
"""Quiet frames (all fish together) needed to measure the pixel-motion noise; fewer: the
threshold is the floor."""
BLUR_FACTOR = 5.0
"""Blur of the body (:func:`blur_frames`): threshold = median + this x robust sd of the
quiet frames' area drop (a fraction of the area), as :data:`MOTION_FACTOR` for the pixel
motion."""
MIN_BLUR = 0.05
"""Floor of the blur threshold (a fraction of the fish's area): a struggle's blurred tail
takes 9-29 % of the area off on the tuning videos (427, 532, 614, 782); slow changes of a
few % (a large larva's outline sliding over the pixel grid: 2 % on tuning video 412) are
not movement, whatever the frame-to-frame spread of the area, and a small larva's whole
pixels flicker by a few %."""
BLUR_SMOOTH_S = 0.2
"""The blur of the body (:func:`blur_frames`) is averaged over this (s; 5-6 frames at 25-30
fps), about a struggle's duration: a struggle's area drop lasts its whole length, the
segmentation's flicker of single frames averages out (tuning video 847 A3: a struggle in
place whose drop of 10-19 % per frame stayed under the threshold of the single frames'
noise, 20 %, is 14 % over 5 frames against a threshold of 12 %)."""
BLUR_EXTEND_S = 0.12
"""A stretch of blur over its threshold is extended down to the low level (hysteresis,
:data:`fishtrack.behaviour.bouts.HYSTERESIS` of the way from its noise) by at most this (s,
3-4 frames): the averaged drop rises and falls gradually at the struggle's ends."""
MOTION_RIG_SPREAD = 2.0
"""The pixel-motion threshold of movement bouts is at least the rig's level of the quiet
frames' upper tail (:func:`motion_threshold_levels`): the median over the recording's larvae
of ``median + this x (99th percentile - median)`` of each larva's quiet frames
(:func:`fishtrack.behaviour.bouts.rig_noise_level`; the tail gate's rule and spread,
:data:`fishtrack.behaviour.bouts.MOTION_GATE_TAIL_SPREAD`). Issue 17, eighth round: H.264
keeps a quiet larva's pixels unchanged on many frames and changes them in bursts, so the
median and robust sd of the quiet frames see the unchanged frames only (tuning video 105:
thresholds at the 1-grey-level floor, bursts of 1.1 in one well at a time cut a passive
stretch; passive error 0.092 -> 0.020)."""
BLUR_MEAN_SPREAD = 1.5
"""A stretch of blur (:func:`blur_frames`) is a bout only when its mean blur is above
``median + this x (99th percentile - median)`` of the means of the recording's quiet
stretches of its length (:func:`blur_above_quiet_stretches`). Issue 17, ninth round, tuning
videos 0-999 (90 kept camera videos): 1.0 changed 3 (all better), 1.5 fixed tuning 2 (passive
error 0.143 -> 0.014) and 137 (0.169 -> 0.006) with no bout lost, 2.0 lost a faint struggle
in place on 155 (0.006 -> 0.162)."""
TAIL_MEAN_SPREAD = 2.0
"""The tail's pixels (:func:`tail_above_levels`): a stretch of frames is in a bout
when its mean tail motion is above ``median + this x (99th percentile - median)`` of the means
of the recording's quiet stretches of its length (the tail gate's mean test on the tracker's
``tail_motion``). Issue 17, tenth round, 90 kept tuning camera videos (seeds 0-999): 2.0 fixed
233 (passive error 0.129 -> 0.009) and changed one other (216, 0.005 -> 0.027); 1.5 made 6
videos worse (105 0.008 -> 0.128, 757 0.006 -> 0.133)."""
TAIL_MEAN_MIN_S = 0.3
"""... for the stretches of :data:`fishtrack.behaviour.bouts.MOTION_GATE_MEAN_WINDOWS_S` of at
least this duration (s: 0.32 and 0.64 s, 8-19 frames at 25-30 fps). A struggle in place
changes the tail's pixels on every frame it lasts; the codec changes a larva's pixels in
bursts of a few frames, which the shorter stretches took for bouts (from 0.16 s: tuning video
757 A1, a burst of 4 frames at 4.7-5.4 grey levels while the other larvae bouted, passive
error 0.006 -> 0.121)."""
JOINT_FRACTION = 0.5
"""Pixel motion and blur together: a frame whose pixel motion (or a neighbour's) and
averaged blur are *both* at least this fraction of the way from their noise to their
thresholds (2.5 robust sds with factors of 5) is in a bout. The camera's noise and the
segmentation's flicker are independent and rarely rise together; a faint struggle in place
raises both a little (tuning video 614 B1: motion 1.0-1.2 grey levels against a threshold
of 1.7, noise 0.37; blur 6-7 % against 11 %)."""


def position_frames(tracks: pd.DataFrame, cfg: BehaviourConfig) -> Frames:
    """The tracks sorted fish by fish, *observed* = detected and position known."""
    return sorted_frames(tracks, max_gap_s=cfg.max_gap_s, observe="position")


def has_motion_energy(tracks: pd.DataFrame | None) -> bool:
    """The tracks hold the tracker's pixel motion (a finite ``motion_energy``)."""
    if tracks is None or "motion_energy" not in tracks.columns:
        return False
    return bool(np.isfinite(pd.to_numeric(tracks["motion_energy"], errors="coerce")).any())


def choose_signal(fr: Frames, cfg: BehaviourConfig, tracks: pd.DataFrame | None = None
                  ) -> tuple[str, str]:
    """``(signal, reason)``: ``tail``, ``speed`` or ``speed_motion`` for ``cfg.bout_signal``.

    ``auto`` takes the tail when a frame has a tail angle and the frame rate is at least
    :data:`MIN_TAIL_FPS`; otherwise ``speed_motion`` when ``tracks`` has the tracker's
    ``motion_energy``, else ``speed``. A forced ``speed_motion`` without ``motion_energy``
    falls back to ``speed`` (the reason says so).
    """
    fps = 1.0 / fr.dt_median if fr.n > 1 else float("nan")
    motion = pooled("any_motion_energy", any_of, flag=has_motion_energy(tracks))
    any_tail = pooled("any_tail_angle", any_of, flag=np.isfinite(fr.tail).any())
    if cfg.bout_signal != "auto":
        if cfg.bout_signal == "speed_motion" and not motion:
            return "speed", ("behaviour.bout_signal is speed_motion but the tracks have no "
                             "motion_energy (imported tracks): speed only")
        return cfg.bout_signal, "set in the configuration (behaviour.bout_signal)"
    if not any_tail:
        why = "no tail angle in the tracks (positions only)"
    elif np.isfinite(fps) and fps < MIN_TAIL_FPS - 0.5:
        why = (f"frame rate {fps:.0f} Hz is below {MIN_TAIL_FPS:.0f} Hz "
               "(twice 25 Hz, the middle of the tail-beat band): tail beats alias")
    else:
        return "tail", "tail angle available and frame rate high enough for tail beats"
    if motion:
        return "speed_motion", why + "; pixel motion (motion_energy) from the tracker"
    return "speed", why + "; no motion_energy (imported tracks): speed only"


def fixed_speed_threshold(cfg: BehaviourConfig, body_px: np.ndarray | None,
                          px_per_mm: float | None) -> np.ndarray | None:
    """Per fish: ``cfg.speed_threshold`` in px/s, or None when it is not set.

    ``mm/s`` x ``px_per_mm``; ``body_lengths/s`` x the fish's body length (the recording's
    median where a fish has none). Raises ConfigError when the conversion is impossible.
    """
    if cfg.speed_threshold is None:
        return None
    n = 0 if body_px is None else len(body_px)
    if cfg.speed_threshold_unit == "mm/s":
        if px_per_mm is None or not px_per_mm > 0:
            raise ConfigError("behaviour.speed_threshold is in mm/s but px_per_mm is not set: "
                              "set px_per_mm, or speed_threshold_unit: body_lengths/s")
        return np.full(n, float(cfg.speed_threshold) * float(px_per_mm))
    body = np.asarray(body_px if body_px is not None else [], float)
    if not pooled("any_body_length", any_of, flag=np.isfinite(body).any()):
        raise ConfigError("behaviour.speed_threshold is in body_lengths/s but the tracks have "
                          "no midline points (tail_x_i, tail_y_i) to measure the body length: "
                          "use speed_threshold_unit: mm/s with px_per_mm")
    body = np.where(np.isfinite(body), body, pooled("median_body_length", _nanmedian, body=body))
    return float(cfg.speed_threshold) * body


def _nanmedian(body: np.ndarray) -> float:
    return float(np.nanmedian(body)) if np.isfinite(body).any() else np.nan


def window_speed(fr: Frames, width: int, drift_s: float | None = None,
                 quiet: np.ndarray | None = None, blocks: Blocks | None = None) -> np.ndarray:
    """Per sorted row: the head's displacement across a centred window of ``width`` frames
    divided by the time it spans (px/s; NaN on unobserved rows).

    The straight distance between the positions at the window's ends, not the path: position
    noise adds to every step of a path but only twice to a displacement, while a movement
    of several frames counts whole. Unobserved rows inside a fish's record are bridged by
    linear interpolation (never across fish); the window is cut at each fish's first and last
    row.

    ``drift_s``: the slow drift is taken out first: the window's velocity minus its
    centred running median over ``drift_s`` (:data:`DRIFT_S`). A bout is a change of
    velocity lasting 0.1-0.4 s; a passive larva drifting with the water keeps a slow,
    steady velocity that a median over seconds follows. ``quiet``: the median is taken over
    these rows only (the frames away from the bouts: a fast bout's frames would pull it and
    leave a residual speed around the bout); none in the window: no drift is taken out.

    ``blocks`` (:func:`fishtrack.behaviour._frames.gap_blocks`; with :data:`CUT_AT_LOSSES`):
    the window and the positions' smoothing are cut at a long tracking loss as at the record's
    ends; only shorter losses are bridged. A movement made while the fish was lost shows in
    the interpolated positions across the loss as a slow glide, and a window reaching into it
    from the first frames after the loss took that glide for a bout (spent tuning seed 150 A1:
    37 frames lost over a true bout, a bout found on the 4 frames after it, which split the
    quiet stretch that followed).
    """
    n = fr.n
    out = np.full(n, np.nan)
    if n == 0:
        return out
    fr = block_frames(fr, blocks)
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
        span = fr.t[hi] - fr.t[lo]
        vx = (xf[hi] - xf[lo]) / span
        vy = (yf[hi] - yf[lo]) / span
    bad = (hi <= lo) | ~fr.observed
    if drift_s is not None and drift_s > 0 and fr.dt_median > 0:
        use = ~bad if quiet is None else ~bad & quiet
        vx = vx - _running_median(np.where(use, vx, np.nan), fr, drift_s)
        vy = vy - _running_median(np.where(use, vy, np.nan), fr, drift_s)
    out = np.hypot(vx, vy)
    out[bad] = np.nan
    return out


CUT_AT_LOSSES = True
"""The speed's window is cut at a tracking loss longer than ``max_gap_s`` (:func:`window_speed`
with ``blocks``), as at the record's ends; False: bridged by interpolation (the rule before)."""
EDGE_NOISE = True
"""Where the speed's window is cut (the record's ends, a long loss), the speed is compared with
its threshold after dividing it by how much more white position noise it carries there
(:func:`window_noise_scale`); False: compared as it is (the rule before)."""


BRIDGE_LOSSES = True
"""The speed's stretches above its threshold run on through a bridged tracking loss (a gap of
``max_gap_s`` or shorter) where the speed on both sides of it is above the threshold
(:func:`bridged_losses`); False: the rule before issue 17's eighteenth round."""


def bridged_losses(fr: Frames, v: np.ndarray, blocks: Blocks) -> np.ndarray:
    """``v`` (per sorted row) with each row of a bridged detection gap (``blocks.bridged``)
    given the smaller of the values on the last row before the gap and the first after it
    (same fish, same block); other rows unchanged.

    A tracking loss of a frame or two inside a swim cut the speed's run above its threshold
    into pieces each shorter than the ``MIN_HIGH`` share of the window that a stretch must
    last (noise spikes are shorter), and the whole bout was lost: tuning seed 195 A2 (tracks
    only, 30 fps, 93-px larva), a 66-px swim at 176-291 px/s against a threshold of 11 px/s
    on frames 113-121, lost on 116, 119 and 122: runs of 3, 2 and 2 frames, each under 3.5
    frames; a 2.1-s passive stretch was scored in its place. The smaller neighbour: the gap
    counts as high only where both sides are, so a loss joins a run, never lengthens one."""
    out = v.copy()
    gap = blocks.bridged & ~np.isfinite(v)
    if fr.n == 0 or not gap.any():
        return out
    idx = np.arange(fr.n)
    seen = np.isfinite(v)
    prev = np.maximum.accumulate(np.where(seen, idx, -1))
    nxt = np.minimum.accumulate(np.where(seen, idx, fr.n)[::-1])[::-1]
    rows = np.flatnonzero(gap & (prev >= 0) & (nxt < fr.n))
    p, n = prev[rows], nxt[rows]
    ok = ((fr.gid[p] == fr.gid[rows]) & (fr.gid[n] == fr.gid[rows])
          & (blocks.block[p] == blocks.block[rows]) & (blocks.block[n] == blocks.block[rows]))
    rows, p, n = rows[ok], p[ok], n[ok]
    out[rows] = np.minimum(v[p], v[n])
    return out


def block_frames(fr: Frames, blocks: Blocks | None) -> Frames:
    """``fr`` with each row's ``gstart``/``gend`` the first/last row of its block (a record
    cut at its long losses, :func:`fishtrack.behaviour._frames.gap_blocks`); ``fr`` itself
    without ``blocks`` or with :data:`CUT_AT_LOSSES` off."""
    if blocks is None or not CUT_AT_LOSSES or fr.n == 0:
        return fr
    b = np.asarray(blocks.block, np.int64)
    starts = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
    ends = np.r_[starts[1:], fr.n] - 1
    rank = np.cumsum(np.r_[True, b[1:] != b[:-1]]) - 1
    return replace(fr, gstart=starts[rank], gend=ends[rank])


def window_noise_scale(fr: Frames, width: int, blocks: Blocks | None = None) -> np.ndarray:
    """Per sorted row: the standard deviation of the window speed (:func:`window_speed`) that
    white position noise gives on this row, relative to a row whose window and smoothing are
    whole (>= 1; 1 inside the record).

    The speed is the displacement between two positions, each a centred mean over
    :data:`SMOOTH_S`, divided by the time between them. At the record's ends (and at a long
    loss, where the window is cut) the window spans fewer frames and the last position is a
    mean of fewer frames: the same noise makes a larger speed there (x 2.2 on the last frame
    at 25 fps: half the window, a mean of 2 frames instead of 3). Spent tuning seeds 129 B1
    and 216 A2, still larvae, got a bout of noise on their last 4-6 frames that way (speed 13-17
    px/s against a threshold of 7.5; 11 against 8), where no frame after it is left for
    :func:`net_displacement_bouts`. The factor is exact for white noise of the positions (a
    linear combination of them); it is the rig's and tracker's noise, not the fish's."""
    n = fr.n
    out = np.ones(n)
    if n == 0:
        return out
    fr = block_frames(fr, blocks)
    k = int(round(SMOOTH_S / fr.dt_median)) + 1 if fr.dt_median > 0 else 1
    width = max(2, int(width))
    idx = np.arange(n)
    lo = np.maximum(idx - (width - 1) // 2, fr.gstart)
    hi = np.minimum(idx + width // 2, fr.gend)

    def smooth_span(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if k <= 1:
            return c, c
        return np.maximum(c - (k - 1) // 2, fr.gstart), np.minimum(c + k // 2, fr.gend)

    def variance(a0, a1, b0, b1) -> np.ndarray:
        na, nb = a1 - a0 + 1, b1 - b0 + 1
        ov = np.maximum(0, np.minimum(a1, b1) - np.maximum(a0, b0) + 1)
        return 1.0 / na + 1.0 / nb - 2.0 * ov / (na * nb)

    with np.errstate(invalid="ignore", divide="ignore"):
        var = variance(*smooth_span(lo), *smooth_span(hi))
        span = fr.t[hi] - fr.t[lo]
        # a whole window and smoothing, on frames at the median interval
        c_lo, c_hi = np.array([0]), np.array([width - 1])
        ref_var = variance(c_lo - (k - 1) // 2, c_lo + k // 2, c_hi - (k - 1) // 2,
                           c_hi + k // 2)[0] if k > 1 else 2.0
        ref = np.sqrt(ref_var) / ((width - 1) * fr.dt_median)
        scale = np.sqrt(var) / span / ref
    cut = (lo > idx - (width - 1) // 2) | (hi < idx + width // 2)
    if k > 1:
        cut |= (lo - (k - 1) // 2 < fr.gstart) | (hi + k // 2 > fr.gend)
    ok = cut & np.isfinite(scale) & (hi > lo)
    out[ok] = np.maximum(1.0, scale[ok])
    return out


def _running_median(v: np.ndarray, fr: Frames, seconds: float) -> np.ndarray:
    """Centred running median over ``seconds`` (rows, NaNs ignored), never crossing fish;
    0 where the window holds no finite value."""
    k = max(3, int(round(seconds / fr.dt_median)) | 1)
    out = (pd.Series(v).groupby(fr.gid).rolling(k, center=True, min_periods=1).median()
           .to_numpy())
    return np.where(np.isfinite(out), out, 0.0)


def white_noise_speed(dt: float, width: int, n: int = 8192, drift_s: float | None = None
                      ) -> tuple[float, float]:
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
    v = window_speed(fr, width, drift_s)[width:-width]
    med = float(np.median(v))
    return med, float(_MAD * np.median(np.abs(v - med)))


def body_length_px(tracks: pd.DataFrame, fr: Frames) -> np.ndarray:
    """Per fish: median midline length (px) from ``tail_x_i, tail_y_i``; NaN without them."""
    n_fish = len(fr.fish_keys)
    length = midline_lengths(tracks, fr)
    if length is None:
        return np.full(n_fish, np.nan)
    return group_quantile(length, fr.gid, n_fish, 0.5)


def speed_window(fr: Frames, cfg: BehaviourConfig) -> int:
    """Frames in the speed window: ``speed_window_s`` + 1 frame, at least 2."""
    return max(2, int(round(cfg.speed_window_s / fr.dt_median)) + 1)


RECORD_END_UNCONFIRMED = True
"""Movement bouts (``speed_motion``): the change into a record's last frame confirms no motion
of the frame before it either (:func:`motion_frames` with ``end_confirms=False``); False:
it does (the rule before)."""


def motion_frames(tracks: pd.DataFrame, fr: Frames,
                  renewed: np.ndarray | None = None, *,
                  end_confirms: bool = True) -> np.ndarray | None:
    """Per sorted row: the tracker's ``motion_energy`` (grey levels) aligned to the frame's
    exposure, NaN on unobserved rows; None when the tracks have no (finite) motion energy.

    ``motion_energy`` of frame ``t`` is the change from frame ``t-1`` to ``t``: a movement
    during exposure ``t`` changes the pixels into *and* out of it. The aligned value is the
    smaller of the two changes (``t`` and ``t+1`` of the same fish, consecutive frames): a
    frame moves when it differs from both neighbours. This puts a bout's motion on its own
    frames (not one frame late) and removes one-frame changes such as a key frame of a
    compressed video. A frame whose next change is unknown (a record's last frame, or the
    next frame unmeasured) is NaN: its change is not confirmed. ``renewed`` (per sorted row,
    the tail bouts' gate: :func:`fishtrack.behaviour.bouts.spans_renewal`): those aligned values
    (a compressed video's key frame and its update) are left out before the moving mean.

    ``end_confirms=False`` (movement bouts, :data:`RECORD_END_UNCONFIRMED`): the record's
    last change, itself no motion, does not confirm the frame before it either, which is
    NaN too. An H.264 encoder codes a stream's last frame without a frame after it to refer
    to, and the change into it is the codec's (spent video 24371 A2, a still larva of 59 px,
    crf 21, camera noise sd 10.6: ``motion_energy`` 0.03-0.1 grey levels on its quiet frames,
    1.20 and 1.60 on the last two, 334-335, while the rendered pixels around it changed as
    on every frame; the aligned motion of 334, min(1.20, 1.60), passed the 1.0 threshold and
    made a bout).
    """
    if "motion_energy" not in tracks.columns:
        return None
    me = pd.to_numeric(tracks["motion_energy"], errors="coerce").to_numpy(float)[fr.order]
    if not pooled("any_motion_energy", any_of, flag=np.isfinite(me).any()):
        return None
    nxt = np.full(fr.n, np.nan)
    if fr.n > 1:
        same = (fr.gid[1:] == fr.gid[:-1]) & ~fr.jump
        nxt[:-1] = np.where(same, me[1:], np.nan)
    # a change that cannot be confirmed by the next frame (the last frame of a record, or
    # the next frame unmeasured) is no motion: the last frame of an H.264 video changes
    # every well at once (tuning seed 477: ~6 grey levels, a still larva's bout)
    if not end_confirms and fr.n > 1:
        # the change into a record's last frame (the next row is another fish, a jump, or
        # nothing) confirms nothing
        last = np.r_[~((fr.gid[1:] == fr.gid[:-1]) & ~fr.jump), True]
        nxt[np.r_[last[1:], False]] = np.nan
    out = np.minimum(me, nxt)
    if renewed is not None:
        out[renewed] = np.nan
    return smooth_motion(out, fr)


def smooth_motion(out: np.ndarray, fr: Frames) -> np.ndarray:
    """An aligned pixel motion per sorted row, NaN on unobserved rows, as a moving mean over
    :data:`MOTION_SMOOTH_S` (modifies ``out``; :func:`motion_frames`, and the gate's tail
    motion, ``fishtrack.behaviour.bouts.tail_motion_frames``)."""
    out[~fr.observed] = np.nan
    k = max(1, int(round(MOTION_SMOOTH_S / fr.dt_median))) if fr.dt_median > 0 else 1
    if k > 1:
        out = moving_mean(out, fr, k)
        out[~fr.observed] = np.nan
    return out


RIG_CHANGE = True
"""The pixel motion of movement bouts is taken above the rig's change of each frame
(:func:`motion_above_rig_change`, recordings with
:data:`fishtrack.behaviour.bouts.MOTION_GATE_MIN_FISH` or more larvae); False: the raw aligned
motion (the rule before issue 17's seventh round)."""
RIG_CHANGE_SIGMAS = 3.0
"""... only where the reference is above its usual level by more than this many of its robust
sds (:func:`motion_above_rig_change`): the frames where the rig changed every well clearly.
Taking out every excess (0 sds) added the reference's own noise to every larva's motion and
lost struggles on tuning videos 155 and 614 (passive error 0.009 -> 0.162, 0.012 -> 0.068)."""


def motion_above_rig_change(fr: Frames, motion: np.ndarray) -> np.ndarray:
    """The aligned pixel motion (:func:`motion_frames`) less what the rig changed in every
    well of the same video frame, above its usual level.

    Per sorted row the *reference* is the lowest aligned motion of the recording's other
    larvae in that video frame (:func:`fishtrack.behaviour.bouts.rig_reference`, pooled over
    the fish; the lowest of several is a larva that did not move, unless all moved at once);
    its *usual level* and spread are the fish's median and robust sd of it over the
    recording. Where the reference is above its level by more than :data:`RIG_CHANGE_SIGMAS`
    sds, the excess is taken off the fish's motion: the encoder's refresh of the whole
    picture (H.264 rate control, a key frame) changes every well at once, a larva's own
    movement changes only its own (issue 17, seventh round: faint larvae whose thresholds
    sit at the floor, held-out 11381; tuning video 105). Not below the level, nor within
    the reference's own noise: that says nothing about this well. Rows
    without a reference, and recordings with fewer than
    :data:`fishtrack.behaviour.bouts.MOTION_GATE_MIN_FISH` larvae in a frame (one or two
    larvae: the other larva's own bouts would be the reference), keep ``motion``; so does
    :data:`RIG_CHANGE` False. When every other larva is in a bout on a frame, the excess is
    their movement, and a bout of this larva on that frame is judged on what is left."""
    if not RIG_CHANGE:
        return motion
    ref = rig_reference(fr, motion, "speed_motion_reference")
    if ref is None:
        return motion
    n_fish = len(fr.fish_keys)
    level = group_quantile(ref, fr.gid, n_fish, 0.5)
    excess = ref - level[fr.gid]
    sd = _MAD * group_quantile(np.abs(excess), fr.gid, n_fish, 0.5)
    with np.errstate(invalid="ignore"):
        clear = excess > RIG_CHANGE_SIGMAS * sd[fr.gid]
    # a row without a reference (NaN) keeps its motion
    return np.where(clear, motion - excess, motion)


KEY_FRAMES = True
"""Pixel-only bouts next to a key frame are the codec's (:func:`outside_key_frames`); False:
the rule before issue 17's twelfth round."""
KEY_SPAN_S = 0.12
"""... within this (s, 3-4 frames at 25-30 fps) of a key frame (:func:`near_key_frames`). An
encoder codes the frames around a key frame against it (the B-frames before it, the P-frames
after), so a still larva's pixels change there for a few frames (tuning video 722 A2: 249-252
around key frame 250; 847 B3: 247-249 around 250; 0.08 s fixed 722 but not 847)."""


def key_frame_reference(tracks: pd.DataFrame, fr: Frames) -> np.ndarray | None:
    """Per sorted row: the lowest *raw* ``motion_energy`` (the change from the previous frame,
    not aligned) of the recording's other larvae in the same video frame
    (:func:`fishtrack.behaviour.bouts.rig_reference`, pooled), NaN without one; None without
    motion energy or with fewer than :data:`fishtrack.behaviour.bouts.MOTION_GATE_MIN_FISH`
    larvae in a frame. Raw, because a key frame changes one frame only and the aligned motion
    (:func:`motion_frames`) removes such changes (:func:`near_key_frames`)."""
    if "motion_energy" not in tracks.columns:
        return None
    me = pd.to_numeric(tracks["motion_energy"], errors="coerce").to_numpy(float)[fr.order]
    return rig_reference(fr, np.where(fr.observed, me, np.nan), "speed_key_reference")


def near_key_frames(fr: Frames, ref: np.ndarray, thr: np.ndarray) -> np.ndarray:
    """Per sorted row: True within :data:`KEY_SPAN_S` of a *key frame* of the recording.

    A key frame is a video frame on which every other larva's pixels changed by more than
    this larva's pixel-motion threshold ``thr`` (per fish, grey levels; ``ref``:
    :func:`key_frame_reference`) while on the frames before and after it they did not: the
    encoder refreshed the whole picture once (an H.264 key frame; tuning videos 722, 757, 847:
    frame 250, every well 3-7 grey levels for one frame). A larva's own movement changes its
    own well over several frames, and larvae that bout together do it over several frames
    too. The rig's change, measured on the recording's larvae, never how often they move."""
    with np.errstate(invalid="ignore"):
        clear = ref > thr[fr.gid]
    span = max(1, int(round(KEY_SPAN_S / fr.dt_median))) if fr.dt_median > 0 else 1
    # consecutive video frames of the same fish
    same = np.r_[False, (fr.gid[1:] == fr.gid[:-1]) & (np.diff(fr.frame) == 1)]
    prev = np.r_[False, clear[:-1]] & same
    nxt = np.r_[clear[1:], False] & np.r_[same[1:], False]
    near = clear & ~prev & ~nxt
    for _ in range(span):
        near = _dilate1(fr, near)
    return near


def outside_key_frames(fr: Frames, stretch: np.ndarray, speed: np.ndarray,
                       key_near: np.ndarray) -> np.ndarray:
    """Per row: ``stretch`` (the pixel motion's bouts) without its runs that lie wholly within
    ``key_near`` (:func:`near_key_frames`) and touch no frame of ``speed`` (the head's
    stretches confirmed by the pixels).

    The codec codes the frames around a key frame against it, and a still larva's pixels
    change there for 2-4 frames, just over its threshold: tuning video 722 A2 (4 larvae of
    39 px, H.264 crf 18, camera noise sd 9.7; key frame 250): aligned motion 2.2 on 248-251
    against a threshold of 2.0, a false bout that split a passive stretch (passive error
    0.103 -> 0.005 without it).
    A bout that moved the head, or whose pixels moved beyond the key frame's span, stays."""
    if fr.n == 0:
        return stretch
    joined = _confirmed(fr, stretch | speed, speed.astype(float),
                        np.full(len(fr.fish_keys), 0.5))
    run = _run_ids(fr, stretch)
    outside = np.bincount(run, weights=(stretch & ~key_near).astype(float)) > 0
    return stretch & (joined | outside[run])


def area_frames(tracks: pd.DataFrame, fr: Frames) -> np.ndarray | None:
    """Per sorted row: the tracker's segmented area (``area_px``; NaN on unobserved rows), or
    None when the tracks have no ``area_px`` column."""
    if "area_px" not in tracks.columns:
        return None
    area = pd.to_numeric(tracks["area_px"], errors="coerce").to_numpy(float)[fr.order]
    return np.where(fr.observed, area, np.nan)


def blur_frames(tracks: pd.DataFrame, fr: Frames, *, smooth: bool = True
                ) -> np.ndarray | None:
    """Per sorted row: the fraction of its running median over :data:`DRIFT_S` by which the
    fish's segmented area (``area_px``, the tracker's) is below it (NaN on unobserved rows),
    or None when the tracks have no (finite) area; averaged over :data:`BLUR_SMOOTH_S`
    unless ``smooth`` is False (the single frames' drop, :func:`blurred_continuation`).

    A struggle in place at 25-30 fps beats its tail faster than the frame rate: each exposure
    averages a beat or more, so the tail becomes a faint blur whose pixels fall below the
    segmentation and the fish's area drops while the struggle lasts (by 5-15 robust sds of
    the quiet frames on tuning videos 427, 532, 614, 782), while consecutive blurred frames
    look alike and the aligned pixel motion (:func:`motion_frames`) rises little. Bouts are
    0.1-0.4 s, a minority of the median's window.
    """
    area = area_frames(tracks, fr)
    if area is None or not pooled("any_area", any_of, flag=np.isfinite(area).any()):
        return None
    if fr.dt_median <= 0:
        return np.full(fr.n, np.nan)
    k = max(3, int(round(DRIFT_S / fr.dt_median)) | 1)
    base = (pd.Series(area).groupby(fr.gid).rolling(k, center=True, min_periods=1).median()
            .to_numpy())
    with np.errstate(invalid="ignore", divide="ignore"):
        drop = np.where(base > 0, 1.0 - area / base, np.nan)
    kb = max(1, int(round(BLUR_SMOOTH_S / fr.dt_median)))
    if smooth and kb > 1:  # over a struggle's duration (BLUR_SMOOTH_S)
        drop = moving_mean(drop, fr, kb)
        drop[~fr.observed] = np.nan
    return drop


def motion_levels(fr: Frames, motion: np.ndarray, quiet: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Per fish: the pixel-motion noise, median and robust sd (grey levels) of the aligned
    motion on its quiet frames. A fish whose spread is not measurable (fewer than
    :data:`MIN_MOTION_QUIET` quiet frames, or a robust sd of 0: a compressed video keeps the
    pixels of a still fish exactly unchanged, which says nothing about the camera) takes the
    median over the fish of the recording whose spread is measurable; NaN when none is."""
    n_fish = len(fr.fish_keys)
    v = np.where(quiet & np.isfinite(motion), motion, np.nan)
    med = group_quantile(v, fr.gid, n_fish, 0.5)
    sd = _MAD * group_quantile(np.abs(v - med[fr.gid]), fr.gid, n_fish, 0.5)
    n_q = np.bincount(fr.gid, weights=np.isfinite(v), minlength=n_fish)
    ok = (n_q >= MIN_MOTION_QUIET) & np.isfinite(med) & (sd > 0)
    any_ok, p_med, p_sd = pooled("motion_levels", _pool_motion, ok=ok, med=med, sd=sd)
    if not any_ok:
        return np.full(n_fish, np.nan), np.full(n_fish, np.nan)
    med = np.where(ok, med, p_med)
    sd = np.where(ok, sd, p_sd)
    return med, sd


def _pool_motion(ok: np.ndarray, med: np.ndarray, sd: np.ndarray) -> tuple[bool, float, float]:
    """Pooled pixel-motion noise: the median over the fish whose spread is measurable."""
    if not ok.any():
        return False, np.nan, np.nan
    return True, float(np.median(med[ok])), float(np.median(sd[ok]))


def rig_motion_threshold(own: np.ndarray) -> np.ndarray:
    """Per fish: its pixel-motion threshold, raised to the recording's median over fish.

    The camera's and the codec's noise belongs to the rig and is shared by every well, but a
    still larva measures it badly in compressed video: H.264 keeps its pixels unchanged
    except on the frames where the encoder re-quantizes the whole picture (on tuning seed
    382, runs of 2-4 frames at ~1.1 grey levels in every well at once, against ~0.1
    otherwise), so its quiet frames' median and robust sd miss those frames and its
    threshold falls to :data:`MIN_MOTION_GREY`, below them: false bouts on a still larva.
    The median over the fish is the rig's level and is not set by the still larvae as long as
    they are fewer than half; a fish whose own noise is higher keeps its own threshold
    (issue 17: a pooled threshold for every fish made active larvae worse)."""
    own = np.asarray(own, float)
    rig = pooled("rig_motion_threshold", _rig_median, own=own)
    if not np.isfinite(rig):
        return own
    return np.fmax(own, rig)


def motion_threshold_levels(fr: Frames, motion: np.ndarray, quiet: np.ndarray,
                            med: np.ndarray, sd: np.ndarray, *, tail: bool = True
                            ) -> np.ndarray:
    """Per fish: the pixel-motion threshold from the noise of the ``quiet`` frames (without a
    fixed ``motion_threshold``): ``max(MIN_MOTION_GREY, median + MOTION_FACTOR x robust sd)``
    (``med``, ``sd``: :func:`motion_levels`), raised to the recording's median over fish
    (:func:`rig_motion_threshold`) and to the rig's level of the quiet frames' upper tail
    (:data:`MOTION_RIG_SPREAD`, :func:`fishtrack.behaviour.bouts.rig_noise_level`: the median
    over the larvae of their own levels, so a minority whose quiet frames hold missed bouts
    cannot raise it). The noise, never how often a larva moves. ``tail`` False (the first
    pass, whose quiet frames are only away from the speed's bouts): no upper-tail level, the
    struggles in place are still among those frames and would set their 99th percentile."""
    thr = rig_motion_threshold(np.fmax(MIN_MOTION_GREY, med + MOTION_FACTOR * sd))
    if not tail:
        return thr
    level = rig_noise_level(fr, motion, quiet, spread=MOTION_RIG_SPREAD,
                            name="speed_motion_tail_level")
    return np.fmax(thr, level) if np.isfinite(level) else thr


def _rig_median(own: np.ndarray) -> float:
    """Reduce: the median over the fish with a finite threshold (NaN without one)."""
    own = own[np.isfinite(own)]
    return float(np.median(own)) if len(own) else float("nan")


def _dilate1(fr: Frames, mask: np.ndarray) -> np.ndarray:
    """``mask`` grown by one row on each side within each fish."""
    out = mask.copy()
    if fr.n > 1:
        same = fr.gid[1:] == fr.gid[:-1]
        out[1:] |= mask[:-1] & same
        out[:-1] |= mask[1:] & same
    return out


def _confirmed(fr: Frames, active: np.ndarray, motion: np.ndarray, thr: np.ndarray
               ) -> np.ndarray:
    """Per row: the row's run of ``active`` (within its fish) holds a frame whose aligned
    pixel motion is above the fish's threshold ``thr``, or one with no motion measured."""
    if fr.n == 0:
        return np.zeros(0, bool)
    with np.errstate(invalid="ignore"):
        hi = (motion > thr[fr.gid]) | ~np.isfinite(motion)
    run = _run_ids(fr, active)
    return (np.bincount(run, weights=(active & hi).astype(float)) > 0)[run]


KEY_FRAME_AREA = True
"""A stretch of blur whose segmented area steps back up (or down) on one of the video's key
frames is the encoder's, not a struggle (:func:`codec_area_steps`); False: the rule before
issue 17's eighteenth round."""
KEY_AREA_SPAN_S = 0.12
"""... when the key frame lies within this (s, 3 frames at 25-30 fps) of the stretch's end (or
start): the blur's 0.2-s mean and its hysteresis move a stretch's edges by a few frames."""
KEY_AREA_SHARE = 0.5
"""... and the area's change on that one frame is at least this share of the stretch's drop
(the area on the key frame, or on the frame before it, minus the stretch's median area)."""


def codec_area_steps(fr: Frames, stretch: np.ndarray, keep: np.ndarray, area: np.ndarray,
                     key_frames: np.ndarray) -> np.ndarray:
    """Per row: True on the runs of ``stretch`` (the blur's bouts) that are the encoder's.

    An inter-coded video codes a still larva's frames as changes from the frames before it;
    at a low bit rate a small larva's faint tail can fade out of those changes (its sub-pixel
    drift left uncoded) and come back whole on the next key frame, where the encoder codes
    the picture afresh. The segmented area then drops for a stretch and steps back in one
    frame on a key frame, while nothing moved: spent camera video 24817 A2 (3 larvae of 26
    px, H.264 crf 23, 26 fps): area 95 px, 75-77 px on frames 239-249, 92 px on key frame
    250, aligned pixel motion 0.1-1.0 against a threshold of 1.7 -- a 0.5-s false bout that
    split a 3.8-s passive stretch into two under ``min_passive_s`` (passive error -0.299).
    A run counts as the encoder's when a key frame within :data:`KEY_AREA_SPAN_S` of its end
    (or start) changes the area by at least :data:`KEY_AREA_SHARE` of the run's drop, and the
    run touches no frame of ``keep`` (the speed's stretches and the pixels' threshold: a bout
    that moved the head or the pixels well stays). A struggle's blur ends when the larva
    stops, on any frame; on a key frame only by chance."""
    out = np.zeros(fr.n, bool)
    if fr.n == 0 or not stretch.any() or len(key_frames) == 0 or not (fr.dt_median > 0):
        return out
    span = max(1, int(round(KEY_AREA_SPAN_S / fr.dt_median)))
    frame = fr.frame.astype(np.int64)
    same_prev = np.r_[False, (fr.gid[1:] == fr.gid[:-1]) & (np.diff(frame) == 1)]
    key = same_prev & np.isin(frame, key_frames)
    step = np.full(fr.n, np.nan)
    step[1:] = area[1:] - area[:-1]
    step[~key] = np.nan
    keys = np.flatnonzero(key & np.isfinite(step))
    if not len(keys):
        return out
    touch = _dilate1(fr, keep)
    for s, e in zip(*runs(stretch, fr.gid), strict=True):
        if touch[s:e + 1].any():
            continue
        inside = area[s:e + 1]
        inside = inside[np.isfinite(inside)]
        if not len(inside):
            continue
        level = float(np.median(inside))
        g = fr.gid[s]
        near = keys[(fr.gid[keys] == g) & (((frame[keys] >= frame[e] + 1 - span)
                                              & (frame[keys] <= frame[e] + 1 + span))
                                             | ((frame[keys] >= frame[s] - span)
                                                & (frame[keys] <= frame[s] + span)))]
        for k in near:
            up = area[k] - level  # back up on the key frame: the end of the codec's drop
            down = area[k - 1] - level  # down on it: its start
            if (up > 0 and step[k] >= KEY_AREA_SHARE * up) or \
                    (down > 0 and -step[k] >= KEY_AREA_SHARE * down):
                out[s:e + 1] = True
                break
    return out


def blurred_continuation(fr: Frames, active: np.ndarray, blurred: np.ndarray,
                         drop: np.ndarray, thr: np.ndarray) -> np.ndarray:
    """Per row: ``active`` grown by the frames of a stretch of blur (``blurred``, the
    hysteresis of :func:`blur_frames`) whose own area drop (``drop``, :func:`blur_frames`
    with ``smooth=False``) is above the fish's blur threshold ``thr``, where they are joined
    through such frames to a frame of ``active``.

    A struggle that turns the larva and then beats its tail in place (the simulator's
    open-loop struggles: a turn, then the head holds) moves the pixels and the head while it
    turns, then only blurs its tail: the whole fish's pixels and the head's speed fall back
    to their noise while the segmented area stays down (tuning video 225 A1, a 47 px larva in
    H.264: the bout found as frames 261-265 of 261-271, the area 15-19 % under its running
    median on 266-271). Such a stretch of blur next to a bout is that bout's end, not a blur
    to be judged alone against the quiet stretches (:func:`blur_above_quiet_stretches`). The
    single frames' drop keeps the 0.2-s average from carrying a bout past the frames whose
    area is down (the blur of a swim's last frames: tuning video 2)."""
    with np.errstate(invalid="ignore"):
        tail = blurred & fr.observed & (drop > thr[fr.gid])
    joined = active | tail
    return joined & _confirmed(fr, joined, active.astype(float), np.full(len(thr), 0.5))


BLUR_TAIL_CONFIRMS = True
"""A stretch of blur (:func:`blur_frames`) also counts when the tail's pixels move
(:func:`tail_stirred`) on one of its frames or next to it, like the whole fish's above the low
motion threshold; False: the rule before issue 17's fifteenth round."""
JOINT_MEAN_TEST = True
"""With :data:`fishtrack.behaviour.bouts.MOTION_GATE_MIN_FISH` larvae or more, the joint
rule's stretches (:data:`JOINT_FRACTION`) count only when their mean blur stands out from the
quiet stretches of their length (:func:`blur_above_quiet_stretches`) or the tail's pixels move
on one of their frames (:func:`tail_stirred`), like the blur's own stretches; False: the rule
before issue 17's fifteenth round."""
SPEED_BESIDE = True
"""The speed's hysteresis beside a stretch above its threshold is judged against the speed
right beyond it (:func:`speed_beside_bouts`, with pixel motion); False: the rule before issue
17's fifteenth round."""


NET_DISPLACEMENT = True
"""Speed only (no pixel motion): a bout is kept only when the head ends it somewhere else than
it began (:func:`net_displacement_bouts`); False: the rule before issue 17's sixteenth round."""
NET_SPAN_S = 0.5
"""... the head's mean position over up to this (s) of observed frames on each side of the bout
(never into a neighbouring bout), 12-15 frames at 25-30 fps: twice the speed window, so the
means are less noisy than the window's ends the speed was found from."""
NET_SIGMAS = 4.0
"""... must differ by more than this many standard errors of the difference (from the
position noise sigma per axis and the frames averaged): white noise passes it with
probability exp(-NET_SIGMAS^2 / 2) = 3e-4."""


def net_displacement_bouts(fr: Frames, s: np.ndarray, e: np.ndarray, sig: np.ndarray,
                           span: int, min_side: int) -> np.ndarray:
    """Per bout (sorted rows ``s[k]..e[k]``, fish by fish): False when the head's mean
    position over the ``span`` observed rows before it and the ``span`` observed rows after
    it (across detection gaps, as the speed's interpolation is; stopped at the neighbouring
    bouts and the fish's record) differ by no more than
    :data:`NET_SIGMAS` standard errors, ``sig[fish] x sqrt(1/n_before + 1/n_after)`` per
    axis, with at least ``min_side`` observed rows on each side; True otherwise (a bout too
    close to another, or to the record's ends, to be tested is kept, and so is a bout of more
    than ``2 x min_side`` rows: ``min_side`` is the speed window's width, and a run above the
    threshold made by the noise of the window's ends lasts about one window, with the
    hysteresis's extension at most two).

    A movement bout displaces the head, and the displacement stays after it; the speed's
    window takes the displacement between two smoothed positions 0.24 s apart, so the white
    noise of the positions now and then carries it over its threshold for a few frames
    (tuning seed 23654 A1, a still larva of 24 px with position noise 0.47 px: speed 6.1-6.5
    px/s against a threshold of 5.3 for 3 frames, the head's mean position the same before
    and after). Averaging more frames on each side lowers the noise of the displacement
    while a real one keeps its size. The position noise is the rig's and the tracker's
    (``sig``, measured like the tail's), never how often the fish moves."""
    keep = np.ones(len(s), bool)
    if len(s) == 0 or fr.n == 0:
        return keep
    ok = fr.observed & np.isfinite(fr.x) & np.isfinite(fr.y)
    cx = np.r_[0.0, np.cumsum(np.where(ok, fr.x, 0.0))]
    cy = np.r_[0.0, np.cumsum(np.where(ok, fr.y, 0.0))]
    cn = np.r_[0, np.cumsum(ok)]
    g = fr.gid[s]
    same_prev = np.r_[False, g[1:] == g[:-1]]
    same_next = np.r_[g[1:] == g[:-1], False]
    lo_prev = np.where(same_prev, np.r_[0, e[:-1] + 1], fr.gstart[s])
    hi_next = np.where(same_next, np.r_[s[1:] - 1, 0], fr.gend[e])
    # before: rows a0..s-1 holding up to span observed rows; after: rows e+1..b1
    a0 = np.maximum(lo_prev, np.searchsorted(cn, cn[s] - span, side="right") - 1)
    b1 = np.minimum(hi_next, np.searchsorted(cn, cn[e + 1] + span, side="left") - 1)
    n0 = cn[s] - cn[a0]
    n1 = cn[b1 + 1] - cn[e + 1]
    # a run made by the noise of one of the window's ends lasts about a window, with the
    # hysteresis's extension at most two: longer bouts are movements, also when the head came
    # back (spent tuning seed 23748 B1: a 35-frame burst of 5 struggles ended 0.8 px from
    # where it began)
    test = (n0 >= min_side) & (n1 >= min_side) & (e - s + 1 <= 2 * min_side)
    if not test.any():
        return keep
    with np.errstate(invalid="ignore", divide="ignore"):
        dx = (cx[b1 + 1] - cx[e + 1]) / n1 - (cx[s] - cx[a0]) / n0
        dy = (cy[b1 + 1] - cy[e + 1]) / n1 - (cy[s] - cy[a0]) / n0
        se = np.asarray(sig, float)[g] * np.sqrt(1.0 / n0 + 1.0 / n1)
        still = np.hypot(dx, dy) <= NET_SIGMAS * se
    keep[test & np.isfinite(se) & still] = False
    return keep


def tail_stirred(fr: Frames, tail: np.ndarray, quiet: np.ndarray) -> np.ndarray:
    """Per row: the tail's pixels (``tail``: :func:`fishtrack.behaviour.bouts.tail_motion_frames`,
    grey levels) on the row or a neighbour above the rig's level of the ``quiet`` frames' tail
    motion: each larva's ``median + MOTION_GATE_TAIL_SPREAD x (99th percentile - median)`` of
    its own quiet frames, the median over the recording's larvae
    (:func:`fishtrack.behaviour.bouts.rig_noise_level`, the tail gate's level). All False when
    no larva's level is measured.

    A per-frame test of each larva's own still frames, valid for one or two larvae: a
    struggle in place that blurs its tail (the area drops) changes the tail's pixels at its
    onset and end, diluted in the whole fish's pixel motion (held-out video 22711 A1, spent:
    34 px in H.264 with camera noise sd 10; the area 30 % down over 137-153, the whole fish's
    motion 0.7-1.0 grey levels under its low level of 1.2, the tail's 2.8-3.8 at 137-138 and
    152-153 against a level of 2.1-3.7). The level of a larva whose quiet frames hold a missed
    struggle rises, so a missed bout makes the test stricter, never looser; a larva's noise
    passes ``median + 2 x (99th percentile - median)`` of its own quiet frames on fewer than 1 %
    of them, and a stretch of blur is a bout only with the blur above its own threshold too."""
    level = rig_noise_level(fr, tail, quiet, spread=MOTION_GATE_TAIL_SPREAD,
                            name="speed_blur_tail_level")
    if not np.isfinite(level):
        return np.zeros(fr.n, bool)
    with np.errstate(invalid="ignore"):
        return _dilate1(fr, tail > level)


def speed_beside_bouts(fr: Frames, active: np.ndarray, speed: np.ndarray, thr: np.ndarray,
                       noise: np.ndarray, width: int) -> np.ndarray:
    """Per row: ``active`` (the speed's hysteresis, :func:`hysteresis_activity`) without the
    frames of its extension beside a stretch above the fish's threshold ``thr`` from the first
    one (going outward) whose speed is not above the *local* low level: ``level +
    HYSTERESIS x (thr - level)``, where ``level`` is the median speed of the ``width`` frames
    right beyond the extension (after it for an extension after a stretch, before it for one
    before; frames outside ``active``), at least the fish's quiet median ``noise``. An
    extension between two stretches above the threshold, or with no frame beyond it, stays.

    The hysteresis extends a bout down to 0.3 of the way from the quiet frames' median speed
    to the threshold, by up to a window. A bout's speed falls through that band within a frame
    or two; a slow drift that follows the bout (the larva carried on at 1.3-2 px/s with its
    pixels moving a little) stays in it, and the bout was carried over the whole window:
    held-out video 22757 A2 (spent; 26 px, H.264, camera noise sd 10.3, 26 fps): the last bout
    (312-321) was found as 309-330, the final quiet stretch (2.2 s in truth) fell under
    ``min_passive_s`` and was scored active (passive error 0.150). The drift goes on beyond
    the extension at the same speed, the end of a bout does not. The speed's own level beside
    the bout, never how often a larva moves."""
    with np.errstate(invalid="ignore"):
        core = active & (speed > thr[fr.gid])
    extra = active & ~core
    if fr.n == 0 or not extra.any() or width < 1:
        return active
    run, starts, ends, after, before = _runs_beside(fr, extra, core)
    # the frames beyond the extension: after it (an extension after a stretch) or before it
    at = np.where(after, np.minimum(ends + 1, fr.n - 1), np.maximum(starts - 1, 0))
    rows, ok = _rows_from(fr, at, after, width)
    ok &= (fr.gid[at] == fr.gid[starts])[:, None] & ~active[rows] & fr.observed[rows]
    vals = np.where(ok, speed[rows], np.nan)
    judged = (after ^ before) & np.isfinite(vals).any(axis=1)
    g = fr.gid[starts]
    level = np.fmax(noise[g], np.nanmedian(np.where(judged[:, None], vals, 0.0), axis=1))
    low_run = np.full(int(run.max()) + 1, -np.inf)
    low_run[run[starts]] = np.where(judged, level + HYSTERESIS * (thr[g] - level), -np.inf)
    with np.errstate(invalid="ignore"):
        bad = extra & ~(speed > low_run[run])
    # keep the frames before the first bad one, counted from the stretch above the threshold
    c = np.r_[0, np.cumsum(bad)]
    first = np.zeros(len(low_run), np.int64)
    last = np.zeros(len(low_run), np.int64)
    first[run[starts]], last[run[starts]] = starts, ends
    side = np.zeros(len(low_run), np.int8)  # 1: after a stretch, -1: before one
    side[run[starts]] = np.where(judged, np.where(after, 1, -1), 0)
    i = np.arange(fr.n)
    r = run
    from_start = c[i + 1] - c[first[r]]  # bad frames from the extension's start to the row
    to_end = c[last[r] + 1] - c[i]  # ... from the row to its end
    cut = extra & (((side[r] == 1) & (from_start > 0)) | ((side[r] == -1) & (to_end > 0)))
    return active & ~cut


BLUR_BESIDE = True
"""The frames the blur adds next to a bout are judged against the area's own level on that
side of the bout (:func:`blur_beside_bouts`); False: the rule before issue 17's fourteenth
round."""


def blur_beside_bouts(fr: Frames, active: np.ndarray, others: np.ndarray, area: np.ndarray,
                      thr: np.ndarray) -> np.ndarray:
    """Per row: ``active`` without the runs of its frames outside ``others`` (the bouts of
    the speed, the pixels, the joint rule and the tail's pixels; the frames outside them are
    those the blur's stretches and :func:`blurred_continuation` added) that lie next to a
    frame of ``others`` and whose mean ``area`` (:func:`area_frames`) is not below the area's
    own level on that side of the bout by more than the fish's blur threshold ``thr``: the
    median of the area over the half of the blur's window (:data:`DRIFT_S`) that starts at
    the run (after a bout) or ends at it (before a bout), the frames of ``others`` left out.

    The blur's running median (:func:`blur_frames`) spans :data:`DRIFT_S` on both sides of a
    frame. Where a swim takes the larva to a place where it segments smaller, the window
    spans the area before the swim and after it, and the frames after the swim read as blur
    next to the bout, so the bout was carried over them (issue 17: held-out video 21327 A1,
    spent, 50 px in H.264 crf 28 with camera noise sd 11.2: 265 px before a swim at 391-394,
    185 px for 16 frames after it with the pixels unchanged, then 211 and 243 in the codec's
    steps; the bout found as 390-420, a passive stretch lost, passive error 0.066). A tail
    that blurs while the larva holds station after a turn takes the area below the level it
    keeps after (tuning video 225 A1: 169-178 px against 191). The level is the tracker's
    segmentation of the larva where it is; like the blur's running median, it holds while a
    bout's blurred end is a minority of the half window."""
    extra = active & ~others
    if fr.n == 0 or not extra.any() or fr.dt_median <= 0:
        return active
    run, starts, ends, after, before = _runs_beside(fr, extra, others)
    k = max(1, int(round(0.5 * DRIFT_S / fr.dt_median)))
    at = np.where(after, starts, ends)
    rows, ok = _rows_from(fr, at, after, k)
    vals = np.where(ok & ~others[rows], area[rows], np.nan)
    level = np.full(len(at), np.nan)
    some = np.isfinite(vals).any(axis=1) & (after | before)
    level[some] = np.nanmedian(vals[some], axis=1)
    mean = _run_mean(fr, extra, area)[starts]
    with np.errstate(invalid="ignore", divide="ignore"):
        kept = ~(level > 0) | (1.0 - mean / level > thr[fr.gid[starts]])
    gone = np.zeros(int(run.max()) + 1, bool)
    gone[run[starts]] = ~kept
    return active & ~(extra & gone[run])


def _runs_beside(fr: Frames, extra: np.ndarray, others: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The runs of ``extra`` (some row set): per row its run id (:func:`_run_ids`), each run's
    first and last row, and whether the row before it / after it is of ``others`` (same
    fish)."""
    run = _run_ids(fr, extra)
    idx = np.flatnonzero(extra)
    new_run = np.r_[True, run[idx][1:] != run[idx][:-1]]
    starts, ends = idx[new_run], idx[np.r_[new_run[1:], True]]
    prev, nxt = np.maximum(starts - 1, 0), np.minimum(ends + 1, fr.n - 1)
    after = (starts > 0) & others[prev] & (fr.gid[prev] == fr.gid[starts])
    before = (ends < fr.n - 1) & others[nxt] & (fr.gid[nxt] == fr.gid[ends])
    return run, starts, ends, after, before


def _rows_from(fr: Frames, at: np.ndarray, forward: np.ndarray, k: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """Per row index of ``at``: the ``k`` rows from it onward (``forward``) or back, clipped
    to the table, and which of them exist and belong to the same fish."""
    rows = at[:, None] + np.where(forward, 1, -1)[:, None] * np.arange(k)[None, :]
    inside = (rows >= 0) & (rows < fr.n)
    rows = np.clip(rows, 0, fr.n - 1)
    return rows, inside & (fr.gid[rows] == fr.gid[at][:, None])


def blur_above_quiet_stretches(fr: Frames, blur: np.ndarray, quiet: np.ndarray,
                               *stretches: np.ndarray) -> list[np.ndarray]:
    """Per stretch mask of ``stretches``, per row: True where the row's run of the stretch
    (within its fish) has a mean ``blur`` (:func:`blur_frames`) above the level of the
    recording's quiet stretches of its length, or where that level is not measured or the run
    is shorter than the shortest duration (the levels measured once for all of them).

    The tail gate's mean test (:func:`fishtrack.behaviour.bouts.mean_gate_levels`) on the
    blur: the means of every stretch of consecutive ``quiet`` frames lasting each duration of
    :data:`fishtrack.behaviour.bouts.MOTION_GATE_MEAN_WINDOWS_S`, all larvae of the recording
    pooled (histograms of the blur in % of the area); level = ``median + BLUR_MEAN_SPREAD x
    (99th percentile of those means - median of the quiet frames)``; a run is compared with
    the longest duration it spans. A struggle's blur lasts its whole length; a slow change of
    the segmented area (a passive larva drifting over the pixel grid, the blur of a swim's
    last frames) lasts as long in the quiet stretches of the same recording (issue 17, ninth
    round: tuning videos 2 and 137). Recordings of :data:`fishtrack.behaviour.bouts.MOTION_GATE_MIN_FISH`
    larvae or more only (the caller). The rig's and the tracker's noise, never how often a
    larva moves."""
    v = 100.0 * blur  # % of the area: bins of 1/256 % (bouts.MOTION_HIST_BINS_PER_GREY)
    ok = quiet & np.isfinite(v)
    means, win = quiet_window_means(fr, v, ok)
    levels = pooled("speed_blur_mean_levels", _blur_mean_levels,
                    **_mean_gate_summary(v[ok], means, win))
    out = []
    for stretch in stretches:
        run = _run_ids(fr, stretch) if fr.n else np.zeros(0, np.int64)
        level = _mean_level(fr, levels, np.bincount(run)[run] if fr.n else np.zeros(0))
        with np.errstate(invalid="ignore"):
            out.append(np.isinf(level) | (_run_mean(fr, stretch, v) > level))
    return out


BLUR_STEP_SPREAD = 1.0
"""A stretch of blur (:func:`blur_frames`) is a bout only when the fish's area changes from
one frame to the next, inside the stretch or into its first frame or out of its last, by
more than the rig's level of the quiet frames' changes (:func:`blur_steps`): each larva's
``median + this x (99th percentile - median)`` of the frame-to-frame change of its area on
its quiet frames, the median over the recording's larvae
(:func:`fishtrack.behaviour.bouts.rig_noise_level`), or by as much as the stretch's own mean
blur. None: no such test (the rule before issue 17's thirteenth round)."""


def blur_steps(fr: Frames, blur: np.ndarray, drop: np.ndarray, quiet: np.ndarray,
               stretch: np.ndarray) -> np.ndarray:
    """Per row: True where the row's run of ``stretch`` (the blur's, within its fish; grown
    by one frame on either side) holds a change of the area from one frame to the next
    (``drop``: :func:`blur_frames` with ``smooth=False``, in % of the area) above the rig's
    level of the ``quiet`` frames' changes (:data:`BLUR_STEP_SPREAD`) or as large as the
    run's mean blur (``blur``, :func:`blur_frames`); every row when that level is not
    measured.

    A struggle in place starts and stops within an exposure or two: its tail blurs at once
    and the area steps down by about its whole drop, then back up. A passive larva's
    segmented area can also drift down and back over 5-15 frames (its outline over the
    pixel grid, the codec), by as much as a struggle's blur on average, but by no more from
    one frame to the next than its noise (issue 17: held-out video 20944 A1, spent, 48 px in
    MJPG with camera noise sd 11: 226 -> 210 -> 225 px over 15 frames, at most 3.1 % a frame
    against a rig level of 3.8 % and a mean blur of 5.5 %; a 13-frame false bout, passive
    error 0.062 -> 0.004 without it). Where the area flickers from frame to frame as much as
    a struggle's drop (a small, faint larva), the drop's one step still reaches its mean
    (tests/test_behaviour_motion.py's faint struggles). The rig's and the tracker's noise,
    never how often a larva moves."""
    v = np.full(fr.n, np.nan)
    if fr.n > 1:
        same = (fr.gid[1:] == fr.gid[:-1]) & ~fr.jump
        v[1:] = np.where(same, 100.0 * np.abs(drop[1:] - drop[:-1]), np.nan)
    level = rig_noise_level(fr, v, quiet, spread=BLUR_STEP_SPREAD, name="speed_blur_step_level")
    if not np.isfinite(level) or fr.n == 0:
        return np.ones(fr.n, bool)
    # the change into the run's first frame and out of its last (into the next row)
    grown = _dilate1(fr, stretch)
    run = _run_ids(fr, grown)
    top = np.zeros(int(run.max()) + 1)
    np.maximum.at(top, run, np.where(grown & np.isfinite(v), v, 0.0))
    with np.errstate(invalid="ignore"):
        return (top[run] > level) | (top[run] >= _run_mean(fr, stretch, 100.0 * blur))


def tail_mean_levels(fr: Frames, tail: np.ndarray, quiet: np.ndarray
                     ) -> tuple[float, np.ndarray]:
    """The recording's median of the ``quiet`` frames' tail motion and, per duration of
    :data:`fishtrack.behaviour.bouts.MOTION_GATE_MEAN_WINDOWS_S`, the level ``median +
    TAIL_MEAN_SPREAD x (99th percentile - median)`` of the means of every stretch of quiet
    frames of that duration, all larvae of the recording pooled (histograms: the tail gate's
    mean test, :func:`fishtrack.behaviour.bouts.mean_gate_levels`). The rig's and the
    tracker's noise, never how often a larva moves (:func:`tail_above_levels`)."""
    ok = quiet & np.isfinite(tail)
    means, win = quiet_window_means(fr, tail, ok)
    return pooled("speed_tail_mean_levels", _tail_mean_levels,
                  **_mean_gate_summary(tail[ok], means, win))


def tail_above_levels(fr: Frames, tail: np.ndarray, med: float, levels: np.ndarray
                      ) -> np.ndarray:
    """Per row: True where the row lies in a stretch of consecutive frames with a tail motion
    whose mean is above the level of the recording's quiet stretches of the same duration
    (``med``, ``levels``: :func:`tail_mean_levels`), and its own tail motion is above the
    quiet frames' median ``med``.

    ``tail``: the tracker's ``tail_motion`` aligned to the frame
    (:func:`fishtrack.behaviour.bouts.tail_motion_frames`: the change of the fishness at the
    caudal half of the traced midline, grey levels; NaN on the rows the stretches must not
    hold). The whole fish's pixel motion (:func:`motion_frames`) dilutes a small larva's
    tail among its still head and body and the camera noise of every other pixel of the
    dilated mask; where the tail is, a struggle in place changes most of the pixels on every
    frame it lasts (tuning video 233 A1, a 28 px larva in H.264: 1.2-4.8 grey levels for 11
    frames, against a quiet median of 0 and a whole-fish motion of 0.6-0.9 under its
    threshold of 2.4). The durations are those of
    :data:`fishtrack.behaviour.bouts.MOTION_GATE_MEAN_WINDOWS_S` from :data:`TAIL_MEAN_MIN_S`.
    Recordings of :data:`fishtrack.behaviour.bouts.MOTION_GATE_MIN_FISH` larvae or more only
    (the caller)."""
    out = np.zeros(fr.n, bool)
    for lag, dur, level in zip(mean_gate_lags(fr), MOTION_GATE_MEAN_WINDOWS_S, levels,
                               strict=True):
        if dur >= TAIL_MEAN_MIN_S and np.isfinite(level):
            out |= _windows_above(fr, tail, lag, level)
    with np.errstate(invalid="ignore"):
        return out & (tail > med)


def _tail_mean_levels(**summary) -> tuple[float, np.ndarray]:
    """Reduce: :func:`tail_mean_levels` from the histograms of its summary."""
    if summary["counts"].sum() == 0:
        return float("nan"), np.full(len(MOTION_GATE_MEAN_WINDOWS_S), np.nan)
    med = float(_hist_quantiles(summary["bins"], summary["counts"], 0.5)[0])
    return med, _mean_levels_of_histograms(**summary, spread=TAIL_MEAN_SPREAD)


def _windows_above(fr: Frames, values: np.ndarray, lag: int, level: float) -> np.ndarray:
    """Per row: True where the row is in a window of ``lag`` consecutive rows of its fish,
    all with a finite value, whose mean value is above ``level``."""
    out = np.zeros(fr.n, bool)
    ok = np.isfinite(values)
    for a0, a1 in zip(*fish_bounds(fr), strict=True):
        if a1 - a0 < lag:
            continue
        c = np.r_[0.0, np.cumsum(np.where(ok[a0:a1], values[a0:a1], 0.0))]
        cq = np.r_[0, np.cumsum(ok[a0:a1])]
        start = np.flatnonzero(((cq[lag:] - cq[:-lag]) == lag)
                               & ((c[lag:] - c[:-lag]) > level * lag))
        cover = np.zeros(a1 - a0 + 1, np.int64)
        np.add.at(cover, start, 1)
        np.add.at(cover, start + lag, -1)
        out[a0:a1] = np.cumsum(cover)[:-1] > 0
    return out


def _total(n: np.ndarray) -> int:
    """Reduce: the sum over the parts (larvae of the recording)."""
    return int(np.sum(n))


def _blur_mean_levels(**summary) -> np.ndarray:
    """Reduce: :func:`blur_above_quiet_stretches`'s levels (:data:`BLUR_MEAN_SPREAD`)."""
    return _mean_levels_of_histograms(**summary, spread=BLUR_MEAN_SPREAD)


def _run_ids(fr: Frames, mask: np.ndarray) -> np.ndarray:
    """Per row (``fr.n`` > 0): the index of its run of equal ``mask`` values within its fish."""
    edge = np.r_[True, (fr.gid[1:] != fr.gid[:-1]) | (mask[1:] != mask[:-1])]
    return np.cumsum(edge) - 1


def _run_mean(fr: Frames, mask: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per row: the mean of the finite ``values`` over the row's run of ``mask`` (within its
    fish; NaN outside runs or without a finite value)."""
    if fr.n == 0:
        return np.zeros(0)
    run = _run_ids(fr, mask)
    ok = np.isfinite(values)
    tot = np.bincount(run, weights=np.where(ok, values, 0.0))
    n = np.bincount(run, weights=ok.astype(float))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (tot / n)[run]
    return np.where(mask, out, np.nan)


def _signal_kin(fr: Frames, v: np.ndarray, width: int) -> Kinematics:
    return Kinematics(frames=fr, columns={"vigour_rad_s": v}, tail=np.zeros(0),
                      extrema=np.zeros(0, np.int64), extrema_t=np.zeros(0),
                      tail_noise=np.zeros(0), motion_source="none", width=width)


def _position_noise(fr: Frames, x: np.ndarray, y: np.ndarray, quiet: np.ndarray | None = None
                    ) -> np.ndarray:
    """Per fish: the position noise sigma per axis (px) of ``x, y`` (on ``quiet`` rows)."""
    return np.sqrt(0.5 * (tail_noise(fr, x, quiet) ** 2 + tail_noise(fr, y, quiet) ** 2))


def detect_speed_bouts(
    fr: Frames, cfg: BehaviourConfig, blocks: Blocks | None = None,
    body_px: np.ndarray | None = None, *, motion: np.ndarray | None = None,
    fixed_px_s: np.ndarray | None = None, blur: np.ndarray | None = None,
    motion_raw: np.ndarray | None = None, tail: np.ndarray | None = None,
    blur_drop: np.ndarray | None = None, key_ref: np.ndarray | None = None,
    area: np.ndarray | None = None, key_frames: np.ndarray | None = None,
) -> tuple[BoutRuns, np.ndarray, dict[str, np.ndarray]]:
    """Movement bouts of every fish (``fr`` from :func:`position_frames`).

    ``motion``: per sorted row, the aligned pixel motion (:func:`motion_frames`, grey
    levels); when given, a frame is in a bout when its speed *or* its motion is above its
    threshold (the motion threshold from the fish's quiet frames, :func:`motion_levels`, or
    ``cfg.motion_threshold``), and the speed's frames count only where the pixels move. ``fixed_px_s``: per fish, a fixed speed threshold (px/s,
    ``cfg.speed_threshold`` converted) instead of the noise rule. ``blur`` (with ``motion``;
    :func:`blur_frames`, a fraction of the area): a frame is also in a bout when the fish's
    area drops more than ``max(MIN_BLUR, median + BLUR_FACTOR x robust sd)`` of its quiet
    frames' drop, in a
    stretch whose pixel motion passes the low motion threshold on one of its frames or next
    to it (a struggle in place whose blurred tail changes the pixels little).
    ``motion_raw`` (with ``motion``): the aligned motion as measured, when ``motion`` is it
    above the rig's change (:func:`motion_above_rig_change`); the pixel-motion noise and
    thresholds come from it (the rig's changes are part of the noise the thresholds were
    set against), and so does the pixels' confirmation of the speed's stretches (a larva
    that swims while all the others do keeps its bout: its own pixels moved), while the
    bouts of the pixels alone, the blur's and the joint rule's use ``motion``. ``tail`` (with
    ``motion``; :func:`fishtrack.behaviour.bouts.tail_motion_frames`, grey levels): from the
    second pass, in recordings of 3 larvae or more, the frames of a stretch whose mean tail
    motion stands out from the quiet stretches of its length are also in a bout
    (:func:`tail_above_levels`, on the stretches away from the other rules' bouts).
    ``blur_drop`` (with ``blur``; :func:`blur_frames` with ``smooth=False``): a bout is
    extended over the frames of a stretch of blur joined to it whose own drop is above the
    blur threshold (:func:`blurred_continuation`: a struggle's in-place end after its turn).
    ``area`` (with ``blur``; :func:`area_frames`): the frames the blur adds next to a bout of
    the other rules are kept only where the area is below its own level on that side of the
    bout (:func:`blur_beside_bouts`). ``key_frames`` (with ``area``; the video's key frames,
    :func:`fishtrack.behaviour.bouts.key_frame_numbers`): a stretch of blur whose area steps back up (or down) on a key
    frame, touching no bout of the speed or the pixels' threshold, is the encoder's
    (:func:`codec_area_steps`).

    Returns the bouts (``thresholds`` and ``noise`` in px/s), the per-frame speed
    (px/s, sorted order) and per-fish extras: ``position_noise_px`` (sigma per axis),
    ``floor_px_s``, and with ``motion`` ``motion_threshold_grey``, ``motion_noise_grey``
    (per fish; see :func:`motion_levels`) and ``motion`` (the per-frame aligned motion); with
    ``blur`` ``blur_threshold``, ``blur_noise`` (per fish, fractions of the area) and ``blur``.
    """
    blocks = blocks if blocks is not None else gap_blocks(fr, cfg.max_gap_s)
    n_fish = len(fr.fish_keys)
    raw = motion if motion_raw is None else motion_raw
    width = speed_window(fr, cfg)
    x = np.where(fr.observed, fr.x, np.nan)
    y = np.where(fr.observed, fr.y, np.nan)
    # the drift is taken out only with the pixel motion: it sees the dense and in-place
    # struggles whose own velocity moves the running median; from positions alone that cost
    # more bouts than the drift made (tuning seeds 500-699: share within 0.05 0.745 -> 0.710)
    drift_s = DRIFT_S if motion is not None else None
    wblocks = blocks if CUT_AT_LOSSES else None
    speed = remembered("window_speed", window_speed, fr, width, drift_s,
                       blocks=wblocks)  # kept between passes
    # where the window is cut (record's ends, long losses) the same noise makes a larger
    # speed: compared with the threshold at the noise level of a whole window
    edge = window_noise_scale(fr, width, wblocks) if EDGE_NOISE else np.ones(fr.n)
    test = speed / edge
    kin = _signal_kin(fr, test, width)
    kin_m = _signal_kin(fr, motion, 1) if motion is not None else None
    sig = remembered("position_noise", _position_noise, fr, x, y)
    mu1, sd1 = remembered("white_noise_speed", white_noise_speed, fr.dt_median, width,
                          drift_s=drift_s)
    span = (width - 1) * fr.dt_median
    floor = np.full(n_fish, MIN_TRAVEL_PX / span)
    if body_px is not None:
        floor = np.fmax(floor, cfg.min_bout_speed_bl_s * body_px)
    mean, sd = sig * mu1, sig * sd1
    levels = None
    m_thr = m_med = b_thr = b_med = np.full(n_fish, np.nan)
    in_bout_prev = None
    tail_lv = None
    n_passes = N_PASSES + (1 if motion is not None else 0)
    for k in range(n_passes):
        if fixed_px_s is not None:
            thr = np.asarray(fixed_px_s, float)
        else:
            thr = np.fmax(floor, mean + cfg.speed_threshold_factor * sd)
        active = hysteresis_activity(
            kin, thr, mean, max_extend_s=span + fr.dt_median, min_high_s=MIN_HIGH * span,
            **({"signal": bridged_losses(fr, test, blocks)} if BRIDGE_LOSSES else {}))
        if kin_m is not None and SPEED_BESIDE:
            active = speed_beside_bouts(fr, active, test, thr, mean,
                                        int(round((span + fr.dt_median) / fr.dt_median)))
        if kin_m is not None:
            # the motion threshold: first from the frames away from the speed bouts, then
            # from the frames away from every bout (pooled over the fish: camera noise)
            quiet_m = quiet_frames(kin_m, in_bout_prev if in_bout_prev is not None else active)
            if blur is not None and tail is not None and BLUR_TAIL_CONFIRMS:
                # the tail's level (tail_stirred, below) with the next pooled value: one
                # pass fewer per pass in classify_parts
                ask_ahead("speed_blur_tail_level", _median_of_levels,
                          lambda q=quiet_m: rig_noise_summary(fr, tail, q,
                                                              spread=MOTION_GATE_TAIL_SPREAD))
            # the noise from the motion as measured (the rig's changes are part of it; taking
            # them out of the quiet frames lowered the thresholds into the larvae's own noise:
            # tuning videos 96, 109, 944), the bouts from the motion above the rig's change
            m_med, m_sd = remembered("motion_levels", motion_levels, fr, raw, quiet_m)
            if cfg.motion_threshold is not None:
                m_thr = np.full(n_fish, float(cfg.motion_threshold))
            else:
                m_thr = motion_threshold_levels(fr, raw, quiet_m, m_med, m_sd,
                                                tail=in_bout_prev is not None)
            m_noise = np.where(np.isfinite(m_med), m_med, 0.0)
            active_m = hysteresis_activity(kin_m, m_thr, m_noise,
                                           max_extend_s=fr.dt_median, min_high_s=0.0)
            not_blur = active_m  # the bouts of every rule but the blur's stretches
            low = m_noise + HYSTERESIS * (m_thr - m_noise)
            # from the second pass, with 3 larvae or more: the recording's quiet stretches
            # (one or two larvae's missed struggles would be most of them)
            many = (in_bout_prev is not None and (blur is not None or tail is not None)
                    and pooled("speed_blur_larvae", _total, n=np.array([n_fish]))
                    >= MOTION_GATE_MIN_FISH)
            if blur is not None:
                # a struggle in place blurs the tail (the area drops) while its pixels change
                # little from frame to frame: the drop above its noise, with the pixels moving
                b_med, b_sd = motion_levels(fr, blur, quiet_m)
                # (no fish's spread measurable: the floor)
                b_thr = np.fmax(MIN_BLUR, b_med + BLUR_FACTOR * b_sd)
                b_noise = np.where(np.isfinite(b_med), b_med, 0.0)
                # over the threshold, extended down to the low level at both ends
                blurred = fr.observed & hysteresis_activity(
                    _signal_kin(fr, blur, 1), b_thr, b_noise, max_extend_s=BLUR_EXTEND_S,
                    min_high_s=0.0)
                with np.errstate(invalid="ignore"):
                    stirred = _dilate1(fr, motion > low[fr.gid])
                t_stir = (tail_stirred(fr, tail, quiet_m)
                          if tail is not None and BLUR_TAIL_CONFIRMS else None)
                if t_stir is not None:
                    stirred |= t_stir
                stirred = stirred.astype(float)
                # a stretch of blur counts when the pixels move (above the low motion
                # threshold) on one of its frames or next to it: the blurred frames of a
                # struggle look alike, its onset and end change the pixels; a still fish's
                # segmentation flicker does not move them
                # ... or when its pixels' mean over the stretch is above their noise median
                # (a long, faint struggle in place of a large larva in a noisy camera changes
                # them a little on every frame, never above the low threshold: tuning video
                # 170 B1)
                with np.errstate(invalid="ignore"):
                    above = _run_mean(fr, blurred, motion) > m_noise[fr.gid]
                bconf = above | _confirmed(fr, blurred, stirred, np.full(n_fish, 0.5))
                # both raised together, each to half its threshold: a faint struggle in place
                with np.errstate(invalid="ignore"):
                    m_half = motion > (m_noise + JOINT_FRACTION * (m_thr - m_noise))[fr.gid]
                    b_half = blur > np.fmax(MIN_BLUR, b_noise + JOINT_FRACTION
                                            * (b_thr - b_noise))[fr.gid]
                joint = fr.observed & _dilate1(fr, m_half) & b_half
                if many:
                    # and when its mean blur stands out from the quiet stretches of its
                    # length (from the second pass: the first's quiet frames hold struggles;
                    # with 3 larvae or more: one or two larvae's missed struggles would be
                    # most of the quiet stretches, tests/test_behaviour_motion.py's in place)
                    b_mean, j_mean = blur_above_quiet_stretches(fr, blur, quiet_m, blurred,
                                                                joint)
                    bconf &= b_mean
                    if blur_drop is not None and BLUR_STEP_SPREAD is not None:
                        bconf &= blur_steps(fr, blur, blur_drop, quiet_m, blurred)
                    if JOINT_MEAN_TEST:
                        # the joint rule's stretches too, unless the tail's pixels move
                        if t_stir is not None:
                            j_mean |= _confirmed(fr, joint, t_stir.astype(float),
                                                 np.full(n_fish, 0.5))
                        joint &= j_mean
                by_blur = (blurred & bconf) | joint
                if key_frames is not None and area is not None and KEY_FRAME_AREA:
                    # the area's step back (or down) on a key frame is the encoder's
                    by_blur &= ~codec_area_steps(fr, by_blur, active | active_m, area,
                                                 key_frames)
                    joint = joint & by_blur
                active_m, not_blur = active_m | by_blur, not_blur | joint
            if tail is not None and many:
                # where the tail is: a small larva's struggle in place changes the pixels at
                # its caudal midline on every frame it lasts, diluted in the whole fish's.
                # The levels once, from the quiet frames of the first pass's bouts (from the
                # bouts it adds, the quiet stretches would shrink to the stillest ones pass
                # after pass and the level with them: every bout grew at its edges)
                if tail_lv is None:
                    tail_lv = tail_mean_levels(fr, tail, quiet_m)
                # on stretches away from the other rules' frames: a bout's own tail motion
                # would carry the stretches next to it over the level
                free = quiet_frames(kin_m, active | active_m)
                by_tail = fr.observed & tail_above_levels(fr, np.where(free, tail, np.nan),
                                                          *tail_lv)
                active_m, not_blur = active_m | by_tail, not_blur | by_tail
            # the speed's window spreads a movement over its neighbours: keep the speed's
            # frames where the pixels move (above the low threshold, or not measured) and
            # that are joined through such frames to one whose pixels pass the motion
            # threshold: a bout moves the fish's pixels well above their noise; the sticky,
            # jumping positions of a small larva in a noisy camera do not (tuning videos
            # 291, 433, 699, 403), and the window's spread next to a bout holds only the
            # pixels' noise, which passes the low threshold now and then (tuning video 873:
            # a 35 px jump's bout grew by 3 frames, the final quiet stretch fell under
            # min_passive_s and a passive larva's last 2 s were scored active)
            with np.errstate(invalid="ignore"):
                moving = active & ((raw > low[fr.gid]) | ~np.isfinite(raw))
            active = moving & _confirmed(fr, moving, raw, m_thr)
            if key_ref is not None and KEY_FRAMES:
                active_m = outside_key_frames(fr, active_m, active,
                                              near_key_frames(fr, key_ref, m_thr))
            others = active | (active_m & not_blur)
            active = active | active_m
            if blur is not None and blur_drop is not None:
                active = blurred_continuation(fr, active, blurred, blur_drop, b_thr)
            if blur is not None and area is not None and BLUR_BESIDE:
                active = blur_beside_bouts(fr, active, others, area, b_thr)
        s, e = bout_runs(active, fr, blocks, cfg)
        in_bout = run_lengths_fill(s, e, np.ones(len(s), bool), fr.n, False)
        in_bout_prev = in_bout
        if k == n_passes - 1:
            break
        quiet = quiet_frames(kin, in_bout)
        if drift_s is not None:  # the drift again, from the frames away from the bouts
            speed = remembered("window_speed", window_speed, fr, width, drift_s, quiet=quiet,
                               blocks=wblocks)
            test = speed / edge
            kin = _signal_kin(fr, test, width)
        sig_q = remembered("position_noise", _position_noise, fr, x, y, quiet)
        levels = remembered("quiet_levels", quiet_levels, fr, test, sig_q, quiet)
        mean, sd = levels.vigour_mean, levels.vigour_sd
        sig = levels.tail_noise_rad
    if motion is None and fixed_px_s is None and NET_DISPLACEMENT and len(s):
        moved = net_displacement_bouts(fr, s, e, sig, int(round(NET_SPAN_S / fr.dt_median)),
                                       width)
        s, e = s[moved], e[moved]
        in_bout = run_lengths_fill(s, e, np.ones(len(s), bool), fr.n, False)
    br = BoutRuns(starts=s, ends=e, in_bout=in_bout, thresholds=thr, noise=mean, levels=levels)
    if levels is None:
        levels = NoiseLevels(tail_noise_rad=sig, vigour_mean=mean, vigour_sd=sd,
                             quiet_s=np.full(n_fish, np.nan), pooled=np.zeros(n_fish, bool))
        br.levels = levels
    extra = {"position_noise_px": levels.tail_noise_rad, "floor_px_s": floor}
    if motion is not None:
        extra.update(motion_threshold_grey=m_thr, motion_noise_grey=m_med, motion=motion)
    if blur is not None:
        extra.update(blur_threshold=b_thr, blur_noise=b_med, blur=blur)
    return br, speed, extra
