"""Identity: which blob is which fish, frame after frame.

One fish per arena (wells, embedded)
    :func:`select_single` picks, in every frame, the blob that is the fish: among blobs of
    plausible size the one nearest to where the fish was last seen (the largest when there is
    no recent position). Identity cannot be confused, so ``id_uncertain`` is always False.

Several fish in one arena (chamber)
    :class:`MultiTracker` predicts every fish's head with a constant-velocity model (velocity
    smoothed exponentially, damped while the fish is not seen), and assigns detections to
    predictions by minimum total distance (``scipy.optimize.linear_sum_assignment``) within a
    gate of ``max_jump`` (growing while a fish is lost). Blobs that hold several touching fish
    are split beforehand by the tracker (one head per fish, found as separate eye peaks).
    Heads of merged fish also get a heading (perpendicular to their eye pair, away from the
    body). Frame-to-frame assignment alone swaps fish whose heads overlap, so contacts are
    handled as episodes: when two heads come within ``contact_px`` (or a fish is lost), the
    fish involved form a contact group with a *signature* each (last clear position, heading
    and speed; a heading turned by ~pi for a frame or two, head and tail confused next to
    another fish, is not taken); when all of them are clear again, the permutation of
    identities that best matches the signatures (heading first: a larva keeps its orientation
    between bouts) is applied from that frame on. ``id_uncertain`` is set for fish in an
    unresolved contact, for fish re-acquired after being lost, and where an episode's
    resolution changed identities.

:func:`idf1` scores identity against ground truth (used by the tests and the benchmark).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["select_single", "select_single_arenas", "MultiTracker", "Assignment", "idf1"]

_BIG = 1e9


def linear_sum_assignment(cost: np.ndarray):
    """``scipy.optimize.linear_sum_assignment``, imported on first use (scipy is large and
    single-fish arenas never need it)."""
    from scipy.optimize import linear_sum_assignment as lsa

    return lsa(cost)


def select_single(
    frame: np.ndarray,
    area: np.ndarray,
    cx: np.ndarray,
    cy: np.ndarray,
    n_frames: int,
    *,
    last: tuple[float, float, int] | None,
    min_area: float,
    max_area: float,
    recent: int = 50,
) -> tuple[np.ndarray, tuple[float, float, int] | None]:
    """Pick the fish blob of every frame in one single-fish arena.

    Parameters
    ----------
    frame, area, cx, cy
        Blob arrays (frame index within the chunk, area in px, centroid), sorted by frame.
    n_frames
        Frames in the chunk.
    last
        ``(x, y, frames_ago)`` of the last detection before this chunk, or None.
    min_area, max_area
        Plausible fish area (px).
    recent
        A last position older than this many frames is ignored (the largest blob wins).

    Returns
    -------
    chosen
        (n_frames,) index into the blob arrays, -1 where no fish.
    last
        Updated ``(x, y, frames_ago)`` at the end of the chunk.
    """
    chosen = np.full(n_frames, -1, np.int64)
    ok = (area >= min_area) & (area <= max_area)
    idx = np.flatnonzero(ok)
    if idx.size:
        fr = frame[idx]
        counts = np.bincount(fr, minlength=n_frames)
        single = counts[fr] == 1
        chosen[fr[single]] = idx[single]
        multi_frames = np.flatnonzero(counts > 1)
    else:
        counts = np.zeros(n_frames, np.int64)
        multi_frames = np.zeros(0, np.int64)
    if multi_frames.size == 0:
        return chosen, _last_seen(chosen, cx, cy, last)
    # frames with several candidates: sequential, by continuity
    lx, ly, ago = last if last is not None else (np.nan, np.nan, 10**9)
    prev_t = -1
    for t in range(n_frames):
        if counts[t] > 1:
            ago_t = ago + (t - prev_t)
            c = idx[frame[idx] == t]
            a = area[c]
            big = c[a >= 0.5 * a.max()]
            if ago_t <= recent and np.isfinite(lx):
                d = np.hypot(cx[big] - lx, cy[big] - ly)
                chosen[t] = big[np.argmin(d)]
            else:
                chosen[t] = c[np.argmax(a)]
        j = chosen[t]
        if j >= 0:
            lx, ly, ago, prev_t = float(cx[j]), float(cy[j]), 0, t
    return chosen, _last_seen(chosen, cx, cy, last)


def select_single_arenas(
    arena: np.ndarray,
    frame: np.ndarray,
    area: np.ndarray,
    cx: np.ndarray,
    cy: np.ndarray,
    n_frames: int,
    lasts: list,
    *,
    min_area: float,
    max_area: float,
) -> tuple[np.ndarray, list]:
    """:func:`select_single` of many single-fish arenas of one chunk at once (a plate), the
    same values: the blob arrays of all arenas one after the other (``arena`` (B,) each blob's
    arena, in order; ``frame`` within the chunk, sorted within each arena) and ``lasts`` one
    ``last`` per arena. Arenas with no frame of several plausible blobs (the usual case) are
    decided by whole-array steps, the others by :func:`select_single`.

    Returns ``chosen`` (A, n_frames): index into the arena's own blob arrays (-1 where no
    fish), and the updated ``last`` of each arena.
    """
    na = len(lasts)
    chosen = np.full((na, n_frames), -1, np.int64)
    first = np.searchsorted(arena, np.arange(na + 1))
    ok = np.flatnonzero((area >= min_area) & (area <= max_area))
    key = arena[ok].astype(np.int64) * n_frames + frame[ok]
    counts = np.bincount(key, minlength=na * n_frames)
    several = np.unique(key[counts[key] > 1] // n_frames)
    easy = np.ones(na, bool)
    easy[several] = False
    one = easy[key // n_frames]
    chosen.reshape(-1)[key[one]] = ok[one] - first[arena[ok[one]]]
    det = chosen >= 0
    seen = det.any(axis=1)
    back = np.argmax(det[:, ::-1], axis=1)  # frames since each arena's last detection
    j = chosen[np.arange(na), n_frames - 1 - back] + first[:-1]
    j = np.where(seen, j, 0)
    xs, ys = (cx[j], cy[j]) if len(cx) else (np.zeros(na), np.zeros(na))
    out = list(lasts)
    for a, s, b, x, y in zip(range(na), seen.tolist(), back.tolist(), xs.tolist(), ys.tolist(), strict=True):
        if not easy[a]:
            continue
        if s:
            out[a] = (x, y, b)
        elif lasts[a] is not None:
            out[a] = (lasts[a][0], lasts[a][1], lasts[a][2] + n_frames)
    for a in several.tolist():
        lo, hi = first[a], first[a + 1]
        chosen[a], out[a] = select_single(frame[lo:hi], area[lo:hi], cx[lo:hi], cy[lo:hi],
                                          n_frames, last=lasts[a], min_area=min_area,
                                          max_area=max_area)
    return chosen, out


def _last_seen(chosen: np.ndarray, cx: np.ndarray, cy: np.ndarray, last):
    """``(x, y, frames_ago)`` at the end of a chunk: the chunk's last detection, else the
    previous value aged by the chunk's length."""
    n_frames = len(chosen)
    det = np.flatnonzero(chosen >= 0)
    if det.size:
        j = chosen[det[-1]]
        return (float(cx[j]), float(cy[j]), int(n_frames - 1 - det[-1]))
    if last is not None:
        return (last[0], last[1], last[2] + n_frames)
    return None


@dataclass
class Assignment:
    """Result of :meth:`MultiTracker.update`: ``det_of[k]`` = detection index of fish k (-1:
    not seen), ``uncertain[k]`` = identity uncertain in this frame."""

    det_of: np.ndarray
    uncertain: np.ndarray


@dataclass
class MultiTracker:
    """Constant-velocity, minimum-distance identity tracker for ``n`` fish in one arena.

    Parameters
    ----------
    n
        Number of fish.
    max_jump
        Gate: largest plausible head displacement between consecutive frames (px).
    alpha
        Weight of the newest velocity in the exponential smoothing.
    heading_weight
        Cost (in units of ``max_jump``) of an opposite heading in the frame-to-frame
        assignment.
    resolve_contacts
        Re-decide identities at the end of every contact episode (see :meth:`_contacts`).
    contact_px
        Heads closer than this are in contact (default 0.24 ``max_jump``, i.e. about a
        quarter of a fish length).
    moving_px
        A fish faster than this (px/frame) when a contact began counts as swimming (default
        0.07 ``max_jump``).
    pos_cap, keep_bias
        Cap on the position term, and bonus for the frame-to-frame identities, in the
        end-of-contact cost (:meth:`_resolve`).
    stay_cost, stay_px, stay_turn, flip_turn
        A fish resting when a contact began and found where it rested, facing the same way
        or flipped by pi, keeps its identity: the *stayed* cost of :meth:`_resolve` (None:
        off).
    rest_turn, rest_shift
        Units of the heading change (rad) and distance (``max_jump``) expected of a fish that
        was resting when a contact began (:meth:`_resolve`).
    turn_frames, turn_gate
        A clear heading more than ``turn_gate`` rad from a fish's signature heading becomes
        its signature only after ``turn_frames`` such clear frames (:meth:`_clear_heading`).
    """

    n: int
    max_jump: float
    alpha: float = 0.6
    heading_weight: float = 0.05
    resolve_contacts: bool = True
    contact_px: float | None = None
    moving_px: float | None = None
    pos_cap: float = 1.0
    keep_bias: float = 0.5
    stay_cost: float | None = 4.0
    stay_px: float = 0.1
    stay_turn: float = 0.15
    flip_turn: float = 0.5
    rest_turn: float = 0.4
    rest_shift: float = 0.3
    turn_frames: int = 3
    turn_gate: float = 2.0
    pos: np.ndarray = field(init=False)
    vel: np.ndarray = field(init=False)
    heading: np.ndarray = field(init=False)
    lost: np.ndarray = field(init=False)
    started: np.ndarray = field(init=False)
    group: np.ndarray = field(init=False)
    sig_pos: np.ndarray = field(init=False)
    sig_heading: np.ndarray = field(init=False)
    sig_speed: np.ndarray = field(init=False)
    sig_turned: np.ndarray = field(init=False)
    n_episodes: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.pos = np.full((self.n, 2), np.nan)
        self.vel = np.zeros((self.n, 2))
        self.heading = np.full(self.n, np.nan)
        self.lost = np.zeros(self.n, np.int64)
        self.started = np.zeros(self.n, bool)
        if self.contact_px is None:
            self.contact_px = 0.24 * self.max_jump
        if self.moving_px is None:
            self.moving_px = 0.07 * self.max_jump
        self.group = np.full(self.n, -1, np.int64)  # contact episode label, -1: clear
        self.sig_pos = np.full((self.n, 2), np.nan)  # last clear position / heading
        self.sig_heading = np.full(self.n, np.nan)
        self.sig_speed = np.zeros(self.n)
        self.sig_turned = np.zeros(self.n, np.int64)  # clear frames facing away from sig_heading

    _STATE = ("pos", "vel", "heading", "lost", "started", "sig_pos", "sig_heading", "sig_speed",
              "sig_turned")

    def _contacts(
        self, det: np.ndarray, det_of: np.ndarray, det_heading: np.ndarray | None
    ) -> list[np.ndarray]:
        """Track contact episodes; return the groups of fish whose episode ended this frame.

        A fish is *clear* in a frame when it was detected and no other detection lies within
        ``contact_px`` of it. A fish that is not clear joins a contact group with every fish
        near it (and a lost fish with the fish nearest to where it was last seen); groups merge
        transitively. When every member of a group is clear again and has a heading, the
        episode ends and its identities are re-decided (:meth:`_resolve`).
        """
        n = self.n
        seen = det_of >= 0
        p = np.full((n, 2), np.nan)
        p[seen] = det[det_of[seen]]
        hd = np.full(n, np.nan)
        if det_heading is not None:
            hd[seen] = det_heading[det_of[seen]]
        clear = seen & self.started
        if seen.any():
            dd = np.linalg.norm(p[:, None, :] - det[None, :, :], axis=2)
            dd[np.flatnonzero(seen), det_of[seen]] = np.inf
            near = np.where(np.isfinite(dd), dd, np.inf).min(axis=1) <= self.contact_px
            clear &= ~near
        ref = np.where(seen[:, None], p, self.pos)
        fd = np.linalg.norm(ref[:, None, :] - ref[None, :, :], axis=2)
        np.fill_diagonal(fd, np.inf)
        fd = np.where(np.isfinite(fd), fd, np.inf)
        for f in np.flatnonzero(~clear & self.started):
            if self.group[f] < 0:
                self.group[f] = self._new_label()
            partners = np.flatnonzero(fd[f] <= self.contact_px)
            if not seen[f] and partners.size == 0 and np.isfinite(fd[f]).any():
                partners = np.array([int(np.argmin(fd[f]))])
            for g in partners:
                if self.group[g] < 0:
                    self.group[g] = self.group[f]
                elif self.group[g] != self.group[f]:
                    self.group[self.group == self.group[g]] = self.group[f]
        # clear fish outside any episode update their signature
        ok = clear & (self.group < 0)
        self.sig_pos[ok] = p[ok]
        self.sig_speed[ok] = np.linalg.norm(self.vel[ok], axis=1)
        ok &= np.isfinite(hd)
        self._clear_heading(ok, hd)
        done = []
        for lab in np.unique(self.group[self.group >= 0]):
            members = np.flatnonzero(self.group == lab)
            if (clear & np.isfinite(hd))[members].all():
                done.append(members)
                self.group[members] = -1
        return done

    def _clear_heading(self, ok: np.ndarray, hd: np.ndarray) -> None:
        """Signature heading of the fish ``ok`` (clear, outside any episode, with a heading
        ``hd``). A heading turned by more than ``turn_gate`` rad from the signature is taken
        only once it has lasted ``turn_frames`` clear frames: a single frame with head and tail
        confused (next to another fish) must not become the heading the fish is recognised by."""
        dh = np.abs(np.angle(np.exp(1j * (hd - self.sig_heading))))
        away = ok & (dh > self.turn_gate)
        self.sig_turned[away] += 1
        take = ok & (~away | (self.sig_turned >= self.turn_frames) | ~np.isfinite(self.sig_heading))
        self.sig_heading[take] = hd[take]
        self.sig_turned[take] = 0

    def _new_label(self) -> int:
        self.n_episodes += 1
        return self.n_episodes

    def _resolve(self, members: np.ndarray, det: np.ndarray, det_of: np.ndarray, hd) -> bool:
        """Re-decide who is who among ``members`` at the end of a contact episode.

        Cost of giving fish i (its signature: last clear position, heading and speed before
        the contact) the detection now held by fish k: the heading difference in units of its
        expected change (``rest_turn`` rad for a fish that was resting, 0.8 rad for one that
        was swimming; fish keep their orientation between bouts much better than their head
        position while heads overlap), capped at 6, plus the distance in units of
        ``rest_shift`` (resting) or 0.5 (swimming) ``max_jump``, capped at ``pos_cap``; for a
        fish that was resting, the smaller of that plus ``stay_cost`` and its *stayed* cost
        (half the squared distance in units of ``stay_px`` ``max_jump`` plus half the squared
        heading difference in units of ``stay_turn`` rad, a heading flipped by pi counting as
        ``flip_turn`` rad); minus ``keep_bias`` for the identity the frame-to-frame assignment
        chose. Returns True if identities were permuted.
        """
        if len(members) < 2:
            return False
        cur = det[det_of[members]]
        ch = hd[det_of[members]]
        sp = self.sig_pos[members]
        sh = self.sig_heading[members]
        dh = np.abs(np.angle(np.exp(1j * (sh[:, None] - ch[None, :]))))
        dp = np.linalg.norm(sp[:, None, :] - cur[None, :, :], axis=2)
        # a fish resting when the contact began is expected where it was, facing the same way;
        # one that was swimming may have moved and turned
        moving = self.sig_speed[members] > self.moving_px
        s_h = np.where(moving, 0.8, self.rest_turn)[:, None]
        s_p = np.where(moving, 0.5, self.rest_shift)[:, None] * self.max_jump
        dh = np.where(np.isfinite(dh), dh, 0.0)
        dp = np.where(np.isfinite(dp), dp, 0.0)
        cost = np.minimum(dh / s_h, 6.0) + np.minimum(dp / s_p, self.pos_cap)
        if self.stay_cost is not None:
            # a fish resting when the contact began that is found where it was, facing the same
            # way (or exactly the other way: the head and tail of a detection can be confused
            # right after a contact), is most likely still that fish
            flip = np.minimum(dh, np.pi - dh + self.flip_turn)
            stay = 0.5 * (dp / (self.stay_px * self.max_jump)) ** 2 + 0.5 * (flip / self.stay_turn) ** 2
            cost = np.where(moving[:, None], cost, np.minimum(stay, cost + self.stay_cost))
        cost[np.diag_indices(len(members))] -= self.keep_bias
        r, c = linear_sum_assignment(cost)
        perm = np.empty(len(members), np.int64)
        perm[r] = c
        if np.all(perm == np.arange(len(members))):
            return False
        src = members[perm]
        for name in self._STATE:
            arr = getattr(self, name)
            arr[members] = arr[src]
        det_of[members] = det_of[src]
        return True

    def predict(self) -> np.ndarray:
        """Predicted head positions for the coming frame (NaN for fish never seen)."""
        steps = np.minimum(self.lost + 1, 5)[:, None]
        damp = 1.0 / (1.0 + 0.5 * self.lost)[:, None]
        return self.pos + self.vel * steps * damp

    def _heading_cost(self, fish: np.ndarray, det_heading: np.ndarray | None) -> np.ndarray | float:
        """Extra cost (px) of giving detections to ``fish`` for a heading mismatch:
        ``heading_weight * max_jump`` for opposite headings, 0 where a heading is unknown."""
        if det_heading is None:
            return 0.0
        dh = np.abs(np.angle(np.exp(1j * (self.heading[fish, None] - det_heading[None, :]))))
        dh = np.where(np.isfinite(dh), dh, 0.0)
        return self.heading_weight * self.max_jump * dh / np.pi

    def update(
        self,
        det: np.ndarray,
        *,
        det_heading: np.ndarray | None = None,
        merged: np.ndarray | None = None,
    ) -> Assignment:
        """Assign this frame's detections (K, 2) to the fish and update the motion model.

        Parameters
        ----------
        det
            (K, 2) detected head positions.
        det_heading
            (K,) headings (rad), used as a weak tie-breaker.
        merged
            (K,) bool, the detection came from a split blob (identity uncertain).
        """
        k = len(det)
        det_of = np.full(self.n, -1, np.int64)
        uncertain = np.zeros(self.n, bool)
        merged = np.zeros(k, bool) if merged is None else np.asarray(merged, bool)
        if k == 0:
            self.lost += 1
            self.vel *= 0.5
            return Assignment(det_of, uncertain)
        pred = self.predict()
        used = np.zeros(k, bool)
        live = np.flatnonzero(self.started)
        if live.size:
            d = np.linalg.norm(pred[live, None, :] - det[None, :, :], axis=2)
            d = d + self._heading_cost(live, det_heading)
            gate = self.max_jump * (1.0 + 0.5 * np.minimum(self.lost[live], 20))[:, None]
            cost = np.where(d <= gate, d, _BIG)
            r, c = linear_sum_assignment(cost)
            for i, j in zip(r, c, strict=True):
                if cost[i, j] < _BIG:
                    f = live[i]
                    det_of[f] = j
                    used[j] = True
                    uncertain[f] = self.lost[f] > 0
        # fish never seen, or lost beyond the gate: take remaining detections
        free = np.flatnonzero(~used)
        waiting = np.flatnonzero(det_of < 0)
        if free.size and waiting.size:
            newbies = waiting[~self.started[waiting]]
            lostf = waiting[self.started[waiting]]
            if lostf.size:
                d = np.linalg.norm(self.pos[lostf, None, :] - det[None, free, :], axis=2)
                hc = self._heading_cost(lostf, None if det_heading is None else det_heading[free])
                r, c = linear_sum_assignment(d + hc)
                for i, j in zip(r, c, strict=True):
                    # re-acquire only when no fish waits to be started, or the jump is plausible
                    if newbies.size == 0 or d[i, j] <= self.max_jump * (1.0 + self.lost[lostf[i]]):
                        det_of[lostf[i]] = free[j]
                        used[free[j]] = True
                        uncertain[lostf[i]] = True
                free = np.flatnonzero(~used)
            for f, j in zip(newbies, free, strict=False):
                det_of[f] = j
                used[j] = True
        # update state
        self._update_state(det, det_of, det_heading, merged)
        if self.resolve_contacts:
            for members in self._contacts(det, det_of, det_heading):
                hd = det_heading if det_heading is not None else np.full(k, np.nan)
                if self._resolve(members, det, det_of, hd):
                    uncertain[members] = True
                self.sig_pos[members] = det[det_of[members]]
                self.sig_speed[members] = np.linalg.norm(self.vel[members], axis=1)
                h_now = hd[det_of[members]]
                self.sig_heading[members] = np.where(
                    np.isfinite(h_now), h_now, self.sig_heading[members]
                )
                self.sig_turned[members] = 0  # the signature heading was just set anew
            # fish in an unresolved contact: who is who is not known yet
            uncertain |= (self.group >= 0) & (det_of >= 0)
        return Assignment(det_of, uncertain)

    def _update_state(self, det, det_of, det_heading, merged) -> None:
        for f in range(self.n):
            j = det_of[f]
            if j < 0:
                self.lost[f] += 1
                self.vel[f] *= 0.8
                continue
            p = det[j]
            if self.started[f] and not merged[j]:
                # a head found inside a blob of touching fish is too uncertain to steer the
                # motion model: the velocity from before the contact is kept
                steps = self.lost[f] + 1
                v = (p - self.pos[f]) / steps
                self.vel[f] = self.alpha * v + (1 - self.alpha) * self.vel[f]
            self.pos[f] = p
            if det_heading is not None:
                self.heading[f] = det_heading[j]
            self.lost[f] = 0
            self.started[f] = True


def idf1(
    truth: pd.DataFrame,
    pred: pd.DataFrame,
    *,
    max_dist: float,
    truth_id: str = "fish",
    pred_id: str = "fish",
) -> dict:
    """Identity F1 score (Ristani et al. 2016) of predicted tracks against ground truth.

    A (truth fish, predicted fish) pair scores a true positive in every frame where both exist
    and are within ``max_dist``; the one-to-one matching of whole trajectories that maximises
    these (``linear_sum_assignment``) gives IDTP, and IDF1 = 2 IDTP / (truth detections +
    predicted detections).

    Parameters
    ----------
    truth, pred
        Tables with ``frame, x, y`` and an identity column; rows with NaN x are absent.
    max_dist
        Matching radius (px).

    Returns
    -------
    dict
        ``idf1, idtp, n_truth, n_pred, mapping`` (predicted id -> truth id).
    """
    t = truth.dropna(subset=["x", "y"])
    p = pred.dropna(subset=["x", "y"])
    tid = sorted(t[truth_id].unique())
    pid = sorted(p[pred_id].unique())
    score = np.zeros((len(tid), len(pid)))
    m = t[["frame", truth_id, "x", "y"]].merge(
        p[["frame", pred_id, "x", "y"]], on="frame", suffixes=("_t", "_p")
    )
    tcol = truth_id + "_t" if truth_id == pred_id else truth_id
    pcol = pred_id + "_p" if truth_id == pred_id else pred_id
    close = np.hypot(m["x_t"] - m["x_p"], m["y_t"] - m["y_p"]) <= max_dist
    hits = m[close].groupby([tcol, pcol]).size()
    ti = {v: i for i, v in enumerate(tid)}
    pi = {v: i for i, v in enumerate(pid)}
    for (a, b), n in hits.items():
        score[ti[a], pi[b]] = n
    r, c = linear_sum_assignment(-score) if score.size else (np.zeros(0, int), np.zeros(0, int))
    idtp = float(score[r, c].sum())
    n_t, n_p = len(t), len(p)
    f1 = 2 * idtp / (n_t + n_p) if (n_t + n_p) else 1.0
    return {
        "idf1": f1,
        "idtp": idtp,
        "n_truth": n_t,
        "n_pred": n_p,
        "mapping": {pid[j]: tid[i] for i, j in zip(r, c, strict=True)},
    }
