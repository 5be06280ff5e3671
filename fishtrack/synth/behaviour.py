"""Behavioural generative model: swim bouts, struggle and give-up (no video).

See the package docstring (:mod:`fishtrack.synth`) for the model in words. Everything here is
vectorised over fish: the only Python loop runs over successive bouts (a few hundred steps for
minutes of behaviour), so one call simulates hundreds of fish as fast as one. For many
simulated experiments, simulate them in one call (e.g. ``{"control": 12 * 200, ...}``) and
split the fish afterwards.

Times are handled on the frame grid: a bout occupies frames ``start_frame .. end_frame``
(``start_s = start_frame / fps``, ``end_s = (end_frame + 1) / fps``) and the quiet gap between
two bouts is a whole number of frames, so the passive rule is exact on frames.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fishtrack.config import Phase
from fishtrack.synth.body import chord_angle_fast

__all__ = [
    "PARAMS",
    "BoutPlan",
    "generate_bouts",
    "resolve_params",
    "passive_intervals",
    "state_matrix",
    "simulate_states",
    "phase_table",
]

PARAMS: dict[str, float] = {
    # per-fish traits (lognormal sd of multiplicative factors)
    "trait_rate_sd": 0.2,
    "trait_vigour_sd": 0.1,
    "trait_giveup_sd": 0.35,
    "rest_bend_sd": 0.08,  # rad at the tip
    # normal swimming (closed loop / other): bouts ~1 Hz
    "normal_dur_min": 0.10, "normal_dur_shape": 4.0, "normal_dur_scale": 0.025,
    "normal_ibi_min": 0.30, "normal_ibi_shape": 2.0, "normal_ibi_scale": 0.25,
    "normal_freq_lo": 20.0, "normal_freq_hi": 30.0,
    "normal_amp_lo": 0.8, "normal_amp_hi": 1.4,
    "normal_turn_sd": 0.3, "normal_big_turn_p": 0.1, "normal_big_turn_sd": 1.2,
    "normal_dist_median": 0.35, "normal_dist_sd": 0.5,  # body lengths, lognormal
    # struggle (open loop): more frequent, longer, more vigorous bouts
    "struggle_dur_min": 0.15, "struggle_dur_shape": 4.0, "struggle_dur_scale": 0.04,
    "struggle_ibi_min": 0.12, "struggle_ibi_shape": 2.0, "struggle_ibi_scale": 0.12,
    "struggle_freq_lo": 28.0, "struggle_freq_hi": 40.0,
    "struggle_amp_lo": 1.3, "struggle_amp_hi": 2.0,
    "struggle_turn_sd": 0.5,
    "struggle_dist_median": 0.5, "struggle_dist_sd": 0.5,
    "struggle_hold_p": 0.35,  # bouts that struggle in place (no translation)
    # give-up dynamics in open loop (seconds); e = effect for treated groups, 0 otherwise
    "first_giveup_median": 8.0,  # x (1 + 2 e) / giveup trait
    "first_giveup_sd": 0.5,
    "passive_min_factor": 1.5,  # passive epochs >= this x min_passive_s
    "passive_extra_shape": 1.5,
    "passive_extra_scale": 5.0,  # x (1 - 0.6 e) x giveup trait
    "burst_median": 5.0,  # struggle bursts between passive epochs, x (1 + 2 e) / trait
    "burst_sd": 0.6,
    "resume_lo": 0.2, "resume_hi": 0.8,  # first bout after an open loop ends (s)
    "max_active_gap_factor": 0.75,  # active quiet gaps <= this x min_passive_s
    "dur_lo": 0.10, "dur_hi": 0.40,  # every bout duration is clipped to [dur_lo, dur_hi] (s)
}
DUR_MAX = PARAMS["dur_hi"]
SCALAR_PARAMS = ("max_active_gap_factor", "passive_min_factor")
"""Parameters that must be one number per simulation: they keep truth states unambiguous
(active quiet gaps strictly shorter, passive epochs clearly longer than ``min_passive_s``).
Every other entry of :data:`PARAMS` may also be given per fish (an array over fish)."""
KIND_CODES = {"closed_loop": 0, "other": 0, "open_loop": 1}


@dataclass
class BoutPlan:
    """Bouts of every fish (arrays over bouts, sorted by fish then start) and fish traits."""

    fish: np.ndarray  # int fish index
    start: np.ndarray  # first frame
    n: np.ndarray  # frames (clipped at the video end)
    duration_s: np.ndarray  # n / fps
    freq: np.ndarray  # Hz
    amp: np.ndarray  # tail wave amplitude at the tip (rad)
    turn: np.ndarray  # intended heading change (rad)
    dist: np.ndarray  # intended displacement (body lengths); 0 when holding station
    hold: np.ndarray  # bool: struggle in place
    kind: np.ndarray  # 0 normal, 1 open-loop struggle
    rest_bend: np.ndarray  # per fish (rad)
    n_fish: int
    n_frames: int
    fps: float

    @property
    def end(self) -> np.ndarray:
        """Last frame of each bout (inclusive)."""
        return self.start + self.n - 1


def phase_table(phases: Sequence[Phase], fps: float, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: phase index (-1 outside every phase) and kind code (0 normal, 1 open)."""
    idx = np.full(n_frames, -1, np.int32)
    for i, p in enumerate(phases):
        a = int(np.clip(np.ceil(p.start_s * fps - 1e-9), 0, n_frames))
        b = int(np.clip(np.ceil(p.end_s * fps - 1e-9), 0, n_frames))
        idx[a:b] = i
    kinds = np.array([KIND_CODES[p.kind] for p in phases] + [0], np.int8)
    return idx, kinds[idx]


def _lognormal(rng, median, sd, size):
    return median * np.exp(sd * rng.standard_normal(size))


def resolve_params(params: Mapping[str, object] | None, n_fish: int) -> dict[str, float | np.ndarray]:
    """:data:`PARAMS` with ``params`` applied: each value a number or an array over fish.

    Raises ``ValueError`` naming an unknown key, a per-fish array of the wrong length, a
    per-fish value for one of :data:`SCALAR_PARAMS` or a negative value.
    """
    p: dict[str, float | np.ndarray] = dict(PARAMS)
    for key, val in (params or {}).items():
        if key not in PARAMS:
            raise ValueError(f"unknown behaviour parameter {key!r}; known: {', '.join(PARAMS)}")
        a = np.asarray(val, dtype=float)
        if a.ndim == 0:
            p[key] = float(a)
        elif a.shape == (n_fish,) and key not in SCALAR_PARAMS:
            p[key] = a
        else:
            what = "one number" if key in SCALAR_PARAMS else f"a number or {n_fish} values (one per fish)"
            raise ValueError(f"behaviour parameter {key!r} must be {what}")
        if not np.all(np.isfinite(a)) or np.any(a < 0):
            raise ValueError(f"behaviour parameter {key!r} must be finite and >= 0")
    lo, hi = np.asarray(p["dur_lo"]), np.asarray(p["dur_hi"])
    if np.any(lo <= 0) or np.any(hi < lo):
        raise ValueError("behaviour parameters need 0 < dur_lo <= dur_hi")
    return p


def generate_bouts(
    treated_effect: np.ndarray,
    *,
    phases: Sequence[Phase],
    fps: float,
    n_frames: int,
    min_passive_s: float,
    rng: np.random.Generator,
    moving: np.ndarray | None = None,
    params: Mapping[str, object] | None = None,
    open_loop_passive: np.ndarray | None = None,
) -> BoutPlan:
    """Draw the bouts of ``len(treated_effect)`` fish.

    Parameters
    ----------
    treated_effect
        (n_fish,) effect strength per fish (0 for untreated fish, ``effect`` for treated).
    phases
        Protocol phases (sorted by start).
    moving
        (n_fish,) bool; False for fish that never move (they get no bouts but still consume
        the same random numbers, so other fish do not change).
    params
        Overrides of :data:`PARAMS`: a number, or an array with one value per fish (see
        :func:`resolve_params`).
    open_loop_passive
        (n_fish,) bool; True for fish that make no bout at all during open-loop phases (they
        give up at once and stay passive through every open loop). Their bouts are drawn like
        the others' and those starting in an open-loop phase are dropped, so other fish do
        not change.
    """
    e = np.asarray(treated_effect, float)
    nf = len(e)
    p = resolve_params(params, nf)
    moving = np.ones(nf, bool) if moving is None else np.asarray(moving, bool)
    quit_open = np.zeros(nf, bool) if open_loop_passive is None else np.asarray(open_loop_passive, bool)
    ph_idx, ph_kind = phase_table(phases, fps, n_frames)
    # next frame at which an open-loop stretch ends (for resuming after a passive epoch)
    is_open = ph_kind == 1
    nxt_normal = np.full(n_frames + 1, n_frames, np.int64)
    pos = np.flatnonzero(~is_open)
    if len(pos):
        j = np.searchsorted(pos, np.arange(n_frames + 1))
        nxt_normal = np.where(j < len(pos), pos[np.minimum(j, len(pos) - 1)], n_frames)
    ph_start = np.array([int(np.clip(np.ceil(ph.start_s * fps - 1e-9), 0, n_frames)) for ph in phases]
                        + [0], np.int64)

    rate = _lognormal(rng, 1.0, p["trait_rate_sd"], nf)
    vig = _lognormal(rng, 1.0, p["trait_vigour_sd"], nf)
    giveup = _lognormal(rng, 1.0, p["trait_giveup_sd"], nf)
    rest = p["rest_bend_sd"] * rng.standard_normal(nf)

    max_active = max(1, int(np.ceil(min_passive_s * fps - 1e-9)) - 1)
    cap_active = min(max_active, int(np.floor(p["max_active_gap_factor"] * min_passive_s * fps)))
    cap_active = max(1, cap_active)
    min_passive = int(np.ceil(p["passive_min_factor"] * min_passive_s * fps))

    t = np.round(rng.uniform(0.0, 0.6, nf) * fps).astype(np.int64)
    burst_end = np.full(nf, np.inf)
    last_open = np.full(nf, -2, np.int64)
    rec: list[tuple[np.ndarray, ...]] = []
    while True:
        idx = np.flatnonzero(t < n_frames)
        if len(idx) == 0:
            break
        k = len(idx)
        q = {key: (v[idx] if isinstance(v, np.ndarray) else v) for key, v in p.items()}
        tt = t[idx]
        phi = ph_idx[tt]
        kind = ph_kind[tt].astype(np.int8)
        op = kind == 1
        ei = e[idx]
        gi = giveup[idx]
        # entering an open-loop phase: draw the latency to the first give-up
        new_open = op & (phi != last_open[idx])
        lat = _lognormal(rng, q["first_giveup_median"] * (1 + 2 * ei) / gi, q["first_giveup_sd"], k)
        sel = idx[new_open]
        burst_end[sel] = ph_start[phi[new_open]] + lat[new_open] * fps
        last_open[sel] = phi[new_open]
        # bout parameters
        u = rng.random((6, k))
        g = rng.standard_normal((3, k))
        dur = np.where(
            op,
            q["struggle_dur_min"] + rng.gamma(q["struggle_dur_shape"], q["struggle_dur_scale"], k),
            q["normal_dur_min"] + rng.gamma(q["normal_dur_shape"], q["normal_dur_scale"], k),
        )
        dur = np.clip(dur, q["dur_lo"], q["dur_hi"])
        freq = np.where(op, q["struggle_freq_lo"] + u[0] * (q["struggle_freq_hi"] - q["struggle_freq_lo"]),
                        q["normal_freq_lo"] + u[0] * (q["normal_freq_hi"] - q["normal_freq_lo"]))
        amp = vig[idx] * np.where(
            op, q["struggle_amp_lo"] + u[1] * (q["struggle_amp_hi"] - q["struggle_amp_lo"]),
            q["normal_amp_lo"] + u[1] * (q["normal_amp_hi"] - q["normal_amp_lo"]))
        big = u[2] < q["normal_big_turn_p"]
        turn = np.where(op, q["struggle_turn_sd"] * g[0],
                        np.where(big, q["normal_big_turn_sd"], q["normal_turn_sd"]) * g[0])
        dist = np.where(op, q["struggle_dist_median"] * np.exp(q["struggle_dist_sd"] * g[1]),
                        q["normal_dist_median"] * np.exp(q["normal_dist_sd"] * g[1]))
        hold = op & (u[3] < q["struggle_hold_p"])
        dist = np.where(hold, 0.0, dist)
        n = np.maximum(1, np.round(dur * fps).astype(np.int64))
        end = tt + n  # first frame after the bout
        rec.append((idx, tt, np.minimum(n, n_frames - tt), freq, amp, turn, dist, hold, kind))
        # gap to the next bout
        ibi = np.where(
            op,
            q["struggle_ibi_min"] + rng.gamma(q["struggle_ibi_shape"], q["struggle_ibi_scale"], k),
            q["normal_ibi_min"] + rng.gamma(q["normal_ibi_shape"], q["normal_ibi_scale"], k),
        ) * rate[idx]
        gap_a = np.clip(np.round(ibi * fps).astype(np.int64), 1, cap_active)
        passive_now = op & (end >= burst_end[idx])
        extra = rng.gamma(q["passive_extra_shape"], q["passive_extra_scale"] * (1 - 0.6 * ei) * gi, k)
        gap_p = np.maximum(min_passive, np.round((q["passive_min_factor"] * min_passive_s + extra)
                                                 * fps).astype(np.int64))
        gap = np.where(passive_now, gap_p, gap_a)
        nxt = end + gap
        burst = _lognormal(rng, q["burst_median"] * (1 + 2 * ei) / gi, q["burst_sd"], k)
        sel = idx[passive_now]
        burst_end[sel] = nxt[passive_now] + burst[passive_now] * fps
        # a passive epoch that runs past the end of the open loop: resume soon after it
        resume = nxt_normal[np.minimum(end, n_frames)] + np.round(
            (q["resume_lo"] + u[4] * (q["resume_hi"] - q["resume_lo"])) * fps).astype(np.int64)
        cut = passive_now & (resume < nxt)
        nxt = np.where(cut, np.maximum(resume, end + 1), nxt)
        t[idx] = nxt

    if rec:
        cols = [np.concatenate(c) for c in zip(*rec, strict=True)]
    else:
        cols = [np.zeros(0, np.int64)] * 3 + [np.zeros(0)] * 4 + [np.zeros(0, bool), np.zeros(0, np.int8)]
    fish, start, n, freq, amp, turn, dist, hold, kind = cols
    keep = moving[fish] & ~(quit_open[fish] & (ph_kind[np.minimum(start, n_frames - 1)] == 1))
    order = np.lexsort((start[keep], fish[keep]))

    def sel_(a):
        return a[keep][order]

    n_ = sel_(n)
    return BoutPlan(
        fish=sel_(fish).astype(np.int64), start=sel_(start).astype(np.int64), n=n_.astype(np.int64),
        duration_s=n_ / fps, freq=sel_(freq), amp=sel_(amp), turn=sel_(turn), dist=sel_(dist),
        hold=sel_(hold).astype(bool), kind=sel_(kind).astype(np.int8), rest_bend=rest,
        n_fish=nf, n_frames=n_frames, fps=fps,
    )


def passive_intervals(
    fish: np.ndarray, start: np.ndarray, end: np.ndarray, *, n_fish: int, n_frames: int,
    fps: float, min_passive_s: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Passive epochs by the rule, from bouts sorted by (fish, start).

    A quiet stretch (from the frame after a bout, or the first frame, to the frame before the
    next bout, or the last frame) is passive when it lasts at least ``min_passive_s``
    (``frames / fps``). Returns ``(fish, first_frame, last_frame)`` arrays.
    """
    fish = np.asarray(fish, np.int64)
    start = np.asarray(start, np.int64)
    end = np.asarray(end, np.int64)
    first_of_fish = np.full(n_fish, n_frames, np.int64)
    next_start = np.zeros(0, np.int64)
    if len(fish):
        is_first = np.r_[True, fish[1:] != fish[:-1]]
        first_of_fish[fish[is_first]] = start[is_first]
        same = np.r_[fish[1:] == fish[:-1], False]
        next_start = np.where(same, np.r_[start[1:], n_frames], n_frames)
    gf = np.r_[np.arange(n_fish, dtype=np.int64), fish]
    gs = np.r_[np.zeros(n_fish, np.int64), end + 1]
    ge = np.r_[first_of_fish - 1, next_start - 1]
    order = np.lexsort((gs, gf))
    gf, gs, ge = gf[order], gs[order], np.minimum(ge[order], n_frames - 1)
    length = ge - gs + 1
    ok = (length > 0) & (length / fps >= min_passive_s - 1e-9)
    return gf[ok], gs[ok], ge[ok]


def state_matrix(
    plan: BoutPlan, min_passive_s: float, *, lo: int = 0, hi: int | None = None,
    intervals: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``in_bout`` and ``passive`` as bool arrays (hi - lo, n_fish) for frames ``lo..hi-1``."""
    hi = plan.n_frames if hi is None else hi
    if intervals is None:
        intervals = passive_intervals(plan.fish, plan.start, plan.end, n_fish=plan.n_fish,
                                      n_frames=plan.n_frames, fps=plan.fps,
                                      min_passive_s=min_passive_s)
    in_bout = _fill(plan.fish, plan.start, plan.end, lo, hi, plan.n_fish)
    passive = _fill(*intervals, lo, hi, plan.n_fish)
    return in_bout, passive


def _fill(fish, s, e, lo, hi, n_fish) -> np.ndarray:
    m = (s < hi) & (e >= lo)
    acc = np.zeros((hi - lo + 1, n_fish), np.int8)
    a = np.clip(s[m], lo, hi) - lo
    b = np.clip(e[m] + 1, lo, hi) - lo
    f = fish[m]
    # intervals of one fish never overlap or touch, so no (frame, fish) pair repeats
    acc[a, f] += 1
    acc[b, f] -= 1
    return np.cumsum(acc, axis=0, dtype=np.int8)[:-1] > 0


def max_tail_angles(plan: BoutPlan, turn: np.ndarray | None = None,
                    *, block: int = 65536) -> np.ndarray:
    """Largest |tail_angle| (rad) over the frames of each bout (model shape, no noise).

    Evaluated in float32 blocks (|error| < 1e-5 rad) to stay fast for many fish.
    """
    nb = len(plan.n)
    if nb == 0:
        return np.zeros(0)
    turn = plan.turn if turn is None else turn
    b = np.repeat(np.arange(nb), plan.n)
    off = np.arange(len(b)) - np.repeat(np.cumsum(plan.n) - plan.n, plan.n)
    out = np.zeros(nb)
    for s in range(0, len(b), block):
        bb = b[s : s + block]
        tau = (off[s : s + block] + 0.5) / plan.fps
        ang = chord_angle_fast(plan.rest_bend[plan.fish[bb]], tau, plan.n[bb] / plan.fps,
                               plan.freq[bb], plan.amp[bb], turn[bb])
        np.maximum.at(out, bb, np.abs(ang))
    return out


def _as_phases(protocol) -> list[Phase]:
    out = [p if isinstance(p, Phase) else Phase(**p) for p in protocol]
    return sorted(out, key=lambda p: p.start_s)


def simulate_states(
    n_per_group: Mapping[str, int],
    *,
    effect: float,
    protocol: Sequence[Phase | Mapping],
    fps: float,
    min_passive_s: float = 2.0,
    seed: int = 0,
    treated_groups: Sequence[str] = ("ketamine",),
    duration_s: float | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The behavioural model alone: per-frame states and bouts of many fish, no video.

    Parameters
    ----------
    n_per_group
        Fish per group label, e.g. ``{"control": 12, "ketamine": 12}``.
    effect
        Strength (0..1) of the ketamine-like effect on ``treated_groups``.
    protocol
        Phases (``fishtrack.config.Phase`` or mappings with name, kind, start_s, end_s).
    fps
        Frame rate (Hz) of the frame grid.
    min_passive_s
        Passive rule (s).
    seed
        Random seed.
    treated_groups
        Labels that receive the effect.
    duration_s
        Record length (s); default: the end of the last phase.

    Returns
    -------
    frames : DataFrame
        ``fish, group, frame, time_s, in_bout, state, phase`` (one row per fish and frame;
        fish, group, state and phase are categorical; phase is NaN outside every phase).
    bouts : DataFrame
        ``fish, group, phase, start_frame, end_frame, start_s, end_s, duration_s, n_beats,
        beat_hz, max_tail_angle, amplitude_rad, turn_rad, distance_bl, hold``.
    """
    if not 0.0 <= effect <= 1.0:
        raise ValueError(f"effect must be in 0..1, got {effect}")
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    phases = _as_phases(protocol)
    if duration_s is None:
        if not phases:
            raise ValueError("give a protocol or duration_s")
        duration_s = max(p.end_s for p in phases)
    n_frames = max(1, int(round(duration_s * fps)))
    groups = [g for g, n in n_per_group.items() for _ in range(int(n))]
    labels = np.array(groups, dtype=object)
    names = [f"{g}_{i + 1}" for g, n in n_per_group.items() for i in range(int(n))]
    treated = np.isin(labels, list(treated_groups))
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    plan = generate_bouts(np.where(treated, effect, 0.0), phases=phases, fps=fps,
                          n_frames=n_frames, min_passive_s=min_passive_s, rng=rng)
    in_bout, passive = state_matrix(plan, min_passive_s)
    nfish = len(names)
    ph_idx, _ = phase_table(phases, fps, n_frames)
    phase_names = [p.name for p in phases]
    fish_cat = pd.Categorical.from_codes(np.repeat(np.arange(nfish), n_frames), categories=names)
    grp_levels = list(dict.fromkeys(groups))
    grp_codes = np.array([grp_levels.index(g) for g in groups], np.int64) if nfish else np.zeros(0, np.int64)
    frames = pd.DataFrame(
        {
            "fish": fish_cat,
            "group": pd.Categorical.from_codes(np.repeat(grp_codes, n_frames), categories=grp_levels),
            "frame": np.tile(np.arange(n_frames, dtype=np.int64), nfish),
            "time_s": np.tile(np.arange(n_frames) / fps, nfish),
            "in_bout": in_bout.T.reshape(-1),
            "state": pd.Categorical.from_codes(passive.T.reshape(-1).astype(np.int8),
                                               categories=["active", "passive"]),
            "phase": pd.Categorical.from_codes(np.tile(ph_idx, nfish), categories=phase_names),
        }
    )
    bouts = bout_frame(plan, names, groups, phase_names, ph_idx)
    return frames, bouts


def bout_frame(plan: BoutPlan, names, groups, phase_names, ph_idx,
               max_tail: np.ndarray | None = None) -> pd.DataFrame:
    """The bouts of a plan as a table (see :func:`simulate_states`)."""
    fps = plan.fps
    pi = ph_idx[plan.start] if len(plan.start) else np.zeros(0, np.int64)
    names_a = np.asarray(names, dtype=object)
    groups_a = np.asarray(groups, dtype=object)
    phase_a = np.asarray(list(phase_names) + [None], dtype=object)
    return pd.DataFrame(
        {
            "fish": names_a[plan.fish],
            "group": groups_a[plan.fish],
            "phase": phase_a[pi],
            "start_frame": plan.start,
            "end_frame": plan.end,
            "start_s": plan.start / fps,
            "end_s": (plan.end + 1) / fps,
            "duration_s": plan.n / fps,
            "n_beats": np.maximum(1, np.round(plan.freq * plan.n / fps)).astype(np.int64),
            "beat_hz": plan.freq,
            "max_tail_angle": max_tail_angles(plan) if max_tail is None else max_tail,
            "amplitude_rad": plan.amp,
            "turn_rad": plan.turn,
            "distance_bl": plan.dist,
            "hold": plan.hold,
        }
    )
