"""Two-state hidden Markov model of per-frame tail activity (``behaviour.method: hmm``).

For each fish, ``log(vigour + 0.1 rad/s)`` of the observed frames is modelled as a two-state
Gaussian HMM (hmmlearn): a *still* state and a *beating* state. The model is initialised from
the threshold classification (state means/variances from frames below/above the threshold,
transition probabilities from the mean bout and inter-bout durations) and refined by EM on the
fish's own data; the Viterbi path gives the per-frame activity. Sequences are split at
detection gaps. Bouts and states then follow exactly as for the threshold method.

The HMM adapts the threshold to each fish's two vigour distributions and its transition
probabilities suppress one-frame flickers, so it helps with noisy tail tracking and with fish
whose bout vigour drifts; it is slower (EM per fish) and needs both states to be present. When
a fish has fewer than :data:`MIN_FRAMES_PER_STATE` frames in either state by the threshold, or
the fitted states are not separated by at least a factor :data:`MIN_SEPARATION` in vigour, or
the fit fails, that fish keeps its threshold result.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np

from fishtrack.behaviour._frames import Blocks, fish_bounds
from fishtrack.behaviour.bouts import bout_runs
from fishtrack.behaviour.kinematics import Kinematics
from fishtrack.config import BehaviourConfig

__all__ = ["hmm_activity", "MIN_FRAMES_PER_STATE", "MIN_SEPARATION"]

MIN_FRAMES_PER_STATE = 10
MIN_SEPARATION = 2.0
VIGOUR_OFFSET = 0.1  # rad/s, keeps log() finite on perfectly still tails
N_ITER = 15
MAX_FIT_FRAMES = 40_000
"""EM runs on at most this many frames per fish (Viterbi decoding always uses all)."""
FIT_CHUNKS = 8


def _fit_sample(n: int) -> tuple[np.ndarray, list[int]]:
    """Rows used for EM: all, or :data:`FIT_CHUNKS` evenly spread chunks totalling
    :data:`MAX_FIT_FRAMES`."""
    if n <= MAX_FIT_FRAMES:
        return np.arange(n), [n]
    size = MAX_FIT_FRAMES // FIT_CHUNKS
    starts = np.linspace(0, n - size, FIT_CHUNKS).astype(np.int64)
    idx = (starts[:, None] + np.arange(size)[None, :]).ravel()
    return idx, [size] * FIT_CHUNKS


def _fit_one(
    z: np.ndarray, active0: np.ndarray, dt: float, mean_bout_s: float, mean_quiet_s: float
) -> np.ndarray | None:
    from hmmlearn.hmm import GaussianHMM

    p_leave_active = float(np.clip(dt / max(mean_bout_s, dt), 1e-4, 0.5))
    p_leave_quiet = float(np.clip(dt / max(mean_quiet_s, dt), 1e-5, 0.5))
    model = GaussianHMM(
        n_components=2,
        covariance_type="diag",
        n_iter=N_ITER,
        tol=1e-3,
        init_params="",
        params="tmc",
        random_state=0,
    )
    model.startprob_ = np.array([0.5, 0.5])
    model.transmat_ = np.array(
        [[1 - p_leave_quiet, p_leave_quiet], [p_leave_active, 1 - p_leave_active]]
    )
    means = np.array([z[~active0].mean(), z[active0].mean()])
    var = np.array([z[~active0].var(), z[active0].var()]) + 1e-3
    model.means_ = means[:, None]
    model.covars_ = var[:, None]
    X = z[:, None]
    fit_idx, lengths = _fit_sample(len(z))
    hmm_log = logging.getLogger("hmmlearn")
    old = hmm_log.level
    hmm_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(X[fit_idx], lengths)
            states = model.predict(X)
    except (ValueError, np.linalg.LinAlgError, FloatingPointError):
        return None
    finally:
        hmm_log.setLevel(old)
    m = model.means_.ravel()
    hi = int(np.argmax(m))
    if not np.all(np.isfinite(m)) or m[hi] - m[1 - hi] < np.log(MIN_SEPARATION):
        return None
    return states == hi


def hmm_activity(
    kin: Kinematics, cfg: BehaviourConfig, blocks: Blocks, base_active: np.ndarray
) -> tuple[np.ndarray, list[str]]:
    """Per sorted row: is the tail beating, by a per-fish two-state HMM.

    ``base_active`` is the threshold method's activity: it initialises the model and is kept
    for fish the HMM cannot model. Returns the activity and notes about those fish.
    """
    fr = kin.frames
    vig = kin.columns["vigour_rad_s"]
    ok = fr.observed & np.isfinite(vig)
    base_active = base_active & ok
    active = base_active.copy()
    notes: list[str] = []
    # mean durations from the threshold result, for initial transition probabilities
    s, e = bout_runs(base_active, fr, blocks, cfg)
    bout_dur = fr.t[e] + fr.dur[e] - fr.t[s]
    z_all = np.log(np.where(ok, vig, 1.0) + VIGOUR_OFFSET)
    for g, (a, b) in enumerate(zip(*fish_bounds(fr), strict=True)):
        rows = a + np.flatnonzero(ok[a:b])
        label = f"fish {fr.fish_keys['fish'].iloc[g]} (arena {fr.fish_keys['arena'].iloc[g]})"
        a0 = base_active[rows]
        if a0.sum() < MIN_FRAMES_PER_STATE or (~a0).sum() < MIN_FRAMES_PER_STATE:
            if len(rows):
                notes.append(f"{label}: too few frames in one state for the HMM; threshold used")
            continue
        mine = (s >= a) & (s < b)
        mean_bout = float(np.mean(bout_dur[mine])) if mine.any() else 0.2
        total = float(np.sum(fr.dur[rows]))
        n_b = max(int(mine.sum()), 1)
        mean_quiet = max((total - mean_bout * n_b) / n_b, mean_bout)
        res = _fit_one(z_all[rows], a0, fr.dt_median, mean_bout, mean_quiet)
        if res is None:
            notes.append(f"{label}: HMM states not separable; threshold used")
            continue
        active[rows] = res
    # never call sub-floor vigour a bout
    with np.errstate(invalid="ignore"):
        active &= ok & (vig > cfg.min_bout_threshold)
    return active, notes
