"""Motion model: where each larva is and which way it points, frame by frame (streaming).

The state of a free-swimming larva is its *pivot* ``c`` (on the body axis, half a body length
behind the snout) and its ``heading``. During a bout the heading turns by the bout's turn
angle (smoothstep over the first 40 % of the bout) and the pivot moves forward by the bout's
distance with a speed profile ``~ sin^2(pi u)`` peaking mid-bout. Between bouts the larva
drifts very slowly (Ornstein-Uhlenbeck velocity of typical speed ``drift_px_s``, sub-pixel
per frame, and an even slower rotation); the tail does not move.

Before a bout starts its turn and distance are adapted to the surroundings:

* near a wall (the bout would end outside the allowed region) the larva turns back towards
  the middle of its arena (heading reflected inwards, +/- 1 rad);
* in a chamber with several larvae, half of the bouts steer towards another larva, so paths
  cross and bodies touch every few seconds (identity matters).

The pivot is finally projected into the region where the whole body fits inside the arena
(disc or square of radius ``R - REACH * L - 1.5 px``), so larvae slide along walls and never
leave their well. Head-embedded larvae never translate or rotate; still larvae never move.

The integrator runs in fixed blocks of :data:`BLOCK` frames with random numbers drawn per
block, so the result does not depend on how callers chunk the output.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from fishtrack.synth.behaviour import BoutPlan
from fishtrack.synth.body import S_CENTRE, S_HEAD, bout_progress, turn_progress, wrap

__all__ = ["BLOCK", "FREE", "EMBEDDED", "STILL", "FishSetup", "MotionBlock", "integrate"]

BLOCK = 256
FREE, EMBEDDED, STILL = 0, 1, 2
SOCIAL_P = 0.2
DRIFT_TAU_S = 2.0
ROT_TAU_S = 3.0
ROT_SD = 0.03  # rad/s


@dataclass
class FishSetup:
    """Per-fish placement: arena index, mode, start pose and allowed pivot region."""

    arena: np.ndarray  # (n,) arena index
    mode: np.ndarray  # (n,) FREE / EMBEDDED / STILL
    c0: np.ndarray  # (n, 2) initial pivot (px)
    h0: np.ndarray  # (n,) initial heading (rad)
    region_c: np.ndarray  # (n, 2) centre of the allowed pivot region
    region_r: np.ndarray  # (n,) its radius / half side (px)
    region_square: bool
    length: float  # body length (px)
    drift_px_s: float

    @property
    def n(self) -> int:
        return len(self.mode)


@dataclass
class MotionBlock:
    """Frames ``lo .. hi-1``: pivots (F, n, 2), headings (F, n), bout index (F, n; -1 none)."""

    lo: int
    hi: int
    c: np.ndarray
    h: np.ndarray
    bout: np.ndarray

    def head(self, length: float) -> np.ndarray:
        """Head points (midpoint of the eyes), (F, n, 2)."""
        k = (S_CENTRE - S_HEAD) * length
        return self.c + k * np.stack([np.cos(self.h), np.sin(self.h)], axis=-1)


def pivot_from_head(hx, hy, heading, length):
    """Pivot point of a larva whose head point is (hx, hy)."""
    k = (S_CENTRE - S_HEAD) * length
    return np.stack([hx - k * np.cos(heading), hy - k * np.sin(heading)], axis=-1)


def _inside(p: np.ndarray, centre: np.ndarray, r: np.ndarray, square: bool) -> np.ndarray:
    d = p - centre
    if square:
        return np.max(np.abs(d), axis=-1) <= r
    return np.hypot(d[..., 0], d[..., 1]) <= r


def _project(c: np.ndarray, centre: np.ndarray, r: np.ndarray, square: bool) -> np.ndarray:
    d = c - centre
    if square:
        return centre + np.clip(d, -r[:, None], r[:, None])
    dist = np.hypot(d[:, 0], d[:, 1])
    scale = np.where(dist > r, r / np.maximum(dist, 1e-12), 1.0)
    return centre + d * scale[:, None]


def integrate(
    setup: FishSetup,
    plan: BoutPlan,
    *,
    n_frames: int,
    fps: float,
    rng: np.random.Generator,
    actual_turn: np.ndarray,
    actual_dist: np.ndarray,
) -> Iterator[MotionBlock]:
    """Yield :class:`MotionBlock` s of :data:`BLOCK` frames covering ``0 .. n_frames-1``.

    ``actual_turn`` / ``actual_dist`` (one entry per bout of ``plan``) are filled in with the
    turn (rad) and distance (px) each bout really got once it has started.
    """
    n = setup.n
    L = setup.length
    dt = 1.0 / fps
    free = setup.mode == FREE
    embedded = setup.mode == EMBEDDED
    c = setup.c0.astype(float).copy()
    h = setup.h0.astype(float).copy()
    v = np.zeros((n, 2))
    om = np.zeros(n)
    drift_sd = setup.drift_px_s / np.sqrt(2.0) * free
    rot_sd = ROT_SD * free * (setup.drift_px_s > 0)
    a_v = np.exp(-dt / DRIFT_TAU_S)
    a_o = np.exp(-dt / ROT_TAU_S)
    cur = np.full(n, -1, np.int64)
    cur_s = np.zeros(n, np.int64)
    cur_n = np.ones(n, np.int64)
    prog_prev = np.zeros(n)
    w_prev = np.zeros(n)
    dist_px = np.zeros(n)
    dpsi = np.zeros(n)

    nb = len(plan.start)
    by_start = np.argsort(plan.start, kind="stable")
    starts_sorted = plan.start[by_start]
    u_b = rng.random((3, nb))  # social choice, target choice, wall-turn offset
    members = [np.flatnonzero(setup.arena == a) for a in range(int(setup.arena.max()) + 1)] \
        if n else []

    for lo in range(0, n_frames, BLOCK):
        hi = min(n_frames, lo + BLOCK)
        F = hi - lo
        noise = rng.standard_normal((BLOCK, n, 3))
        out_c = np.empty((F, n, 2))
        out_h = np.empty((F, n))
        out_b = np.full((F, n), -1, np.int32)
        e0 = np.searchsorted(starts_sorted, lo, side="left")
        for k in range(F):
            f = lo + k
            e1 = e0
            while e1 < nb and starts_sorted[e1] == f:
                e1 += 1
            if e1 > e0:
                ev = by_start[e0:e1]
                e0 = e1
                _start_bouts(ev, plan, setup, c, h, members, u_b, free, embedded, L,
                             cur, cur_s, cur_n, prog_prev, w_prev, dist_px, dpsi,
                             actual_turn, actual_dist)
            act = cur >= 0
            if act.any():
                u = np.where(act, (f - cur_s + 0.5) / cur_n, 0.0)
                done = act & (f >= cur_s + cur_n)
                u = np.where(done, 1.0, u)
                prog = bout_progress(u)
                w = turn_progress(u)
                mv = act & free
                h = np.where(mv, h + dpsi * (w - w_prev), h)
                step = np.where(mv, dist_px * (prog - prog_prev), 0.0)
                c = c + step[:, None] * np.stack([np.cos(h), np.sin(h)], axis=-1)
                prog_prev = np.where(act, prog, prog_prev)
                w_prev = np.where(act, w, w_prev)
                out_b[k] = np.where(act & ~done, cur, -1)
                cur = np.where(done, -1, cur)
            if setup.drift_px_s > 0:
                z = noise[k]
                v = a_v * v + np.sqrt(1 - a_v**2) * drift_sd[:, None] * z[:, :2]
                om = a_o * om + np.sqrt(1 - a_o**2) * rot_sd * z[:, 2]
                c = c + v * dt
                h = h + om * dt
            if free.any():
                c[free] = _project(c[free], setup.region_c[free], setup.region_r[free],
                                   setup.region_square)
            out_c[k] = c
            out_h[k] = h
        yield MotionBlock(lo=lo, hi=hi, c=out_c, h=out_h, bout=out_b)


def _start_bouts(ev, plan, setup, c, h, members, u_b, free, embedded, L,
                 cur, cur_s, cur_n, prog_prev, w_prev, dist_px, dpsi, actual_turn, actual_dist):
    fi = plan.fish[ev]
    turn0 = plan.turn[ev]
    d = plan.dist[ev] * L
    h1 = h[fi] + turn0
    for j, (b, i) in enumerate(zip(ev, fi, strict=True)):
        if not free[i]:
            continue
        mates = members[setup.arena[i]]
        if len(mates) > 1 and u_b[0, b] < SOCIAL_P:
            others = mates[mates != i]
            o = others[min(int(u_b[1, b] * len(others)), len(others) - 1)]
            dv = c[o] - c[i]
            if np.hypot(*dv) > 1.0 * L:
                h1[j] = np.arctan2(dv[1], dv[0]) + 0.5 * turn0[j]
        end = c[i] + d[j] * np.array([np.cos(h1[j]), np.sin(h1[j])])
        shrink = 0.9 * setup.region_r[i]
        if not _inside(end[None], setup.region_c[i][None], np.array([shrink]), setup.region_square)[0]:
            back = setup.region_c[i] - c[i]
            if np.hypot(*back) > 1e-6:
                h1[j] = np.arctan2(back[1], back[0]) + (u_b[2, b] - 0.5) * 2.0
    turn = np.where(free[fi], wrap(h1 - h[fi]), turn0)
    dist = np.where(free[fi], d, 0.0)
    cur[fi] = ev
    cur_s[fi] = plan.start[ev]
    cur_n[fi] = plan.n[ev]
    prog_prev[fi] = 0.0
    w_prev[fi] = 0.0
    dist_px[fi] = dist
    dpsi[fi] = np.where(embedded[fi], 0.0, turn)
    actual_turn[ev] = np.where(embedded[fi], turn0, turn)
    actual_dist[ev] = dist
