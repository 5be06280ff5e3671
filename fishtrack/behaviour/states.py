"""Per-frame states (active / passive / unknown) and epochs.

Rule (``method: threshold``; the HMM only changes how bouts are found):

* ``unknown``: frames of a detection gap longer than ``max_gap_s`` (a lost fish is never
  called passive). Such gaps, time jumps and the ends of the record split the record into
  *blocks*.
* Inside a block, every stretch without a bout (from the end of one bout to the start of the
  next, or to the block's edge) lasting at least ``min_passive_s`` is ``passive``; shorter
  stretches and the bouts themselves are ``active``. Shorter detection gaps are bridged: their
  frames take the state of the stretch they fall in.
* A quiet stretch at the start or end of the record whose length is within
  :data:`CENSORED_EDGE_FRAMES` frames of ``min_passive_s`` is ``unknown``: one frame of its
  bout's edge would decide its whole state (:func:`censored_undecided`).
* A bridged gap long enough to hold a whole bout the stage would have found
  (``hidden_gap_s``: ``min_bout_s`` for tail bouts) is no evidence of rest: inside a quiet
  span lasting ``min_passive_s`` its frames are ``unknown`` and the quiet pieces on either
  side are judged on their own, as at a long gap (:func:`hidden_bout_gaps`).
* An epoch is a maximal run of one state inside a block. It is ``censored`` when its true
  extent is unknown because it touches the start or end of the record, a long gap or a time
  jump.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fishtrack.behaviour._frames import (
    Blocks,
    Frames,
    gap_blocks,
    run_lengths_fill,
    runs,
    sorted_frames,
    to_input_order,
)
from fishtrack.behaviour.protocol import assign_phase
from fishtrack.config import BehaviourConfig, Phase
from fishtrack.errors import FishtrackError

__all__ = [
    "STATES",
    "STATE_COLOURS",
    "EPOCH_COLUMNS",
    "label_states",
    "epochs_from_states",
    "state_codes",
    "epoch_table",
]

STATES = ("active", "passive", "unknown")
"""State names; :func:`state_codes` returns indices into this tuple."""
ACTIVE, PASSIVE, UNKNOWN = 0, 1, 2

STATE_COLOURS = {
    "active": "#f28e2b",  # orange
    "passive": "#4e79a7",  # blue
    "unknown": "#9d9d9d",  # grey
    "excluded": "#b07aa1",  # mauve: a human excluded these frames (napari corrections)
}
"""One colour per state, used by the report's figures and by napari alike (Tableau 10,
readable with the common colour-vision deficiencies)."""

EPOCH_COLUMNS = (
    "fish",
    "arena",
    "state",
    "start_frame",
    "end_frame",
    "start_s",
    "end_s",
    "duration_s",
    "phase",
    "censored",
)


def state_codes(
    fr: Frames, blocks: Blocks, in_bout: np.ndarray, min_passive_s: float,
    hidden_gap_s: float | None = None,
) -> np.ndarray:
    """Per sorted row: 0 active, 1 passive, 2 unknown (see the module docstring).

    ``hidden_gap_s``: the shortest bout the caller's bout signal can find (s); a bridged gap
    at least this long could hide a whole bout (:func:`hidden_bout_gaps`). None: every
    bridged gap takes the state of the stretch it falls in (the rule before)."""
    hidden = hidden_bout_gaps(fr, blocks, in_bout, hidden_gap_s)
    # quiet stretches inside blocks (split by long gaps, time jumps and gaps that could hide
    # a bout), and the spans they belong to when gaps do not split (from one bout to the
    # next of the same fish)
    quiet = ~in_bout & ~blocks.unknown & ~hidden
    s, e = runs(quiet, blocks.block)
    dur = fr.t[e] + fr.dur[e] - fr.t[s]
    passive = dur >= min_passive_s - 1e-9
    js, je = runs(~in_bout, fr.gid)
    span = fr.t[je] + fr.dur[je] - fr.t[js]
    k = np.searchsorted(js, s, side="right") - 1
    # a short stretch cut by a gap inside a long enough span: the fish may or may not have
    # bouted while unseen, so it is neither active nor passive
    open_ = ~passive & (span[k] >= min_passive_s - 1e-9)
    if CENSORED_ENDS:
        cut = censored_undecided(fr, js[k], je[k], dur, min_passive_s)
        passive &= ~cut
        open_ |= cut
    codes = run_lengths_fill(
        np.r_[s[passive], s[open_]], np.r_[e[passive], e[open_]],
        np.r_[np.full(int(passive.sum()), PASSIVE), np.full(int(open_.sum()), UNKNOWN)],
        fr.n, ACTIVE,
    ).astype(np.int8)
    if hidden.any():  # a hidden bout would decide the state only inside a long quiet span
        rows = np.flatnonzero(hidden)
        at = np.searchsorted(js, rows, side="right") - 1
        codes[rows[span[at] >= min_passive_s - 1e-9]] = UNKNOWN
    codes[blocks.unknown] = UNKNOWN
    return codes


HIDDEN_GAPS = True
"""A bridged gap that could hold a whole bout is not evidence of rest
(:func:`hidden_bout_gaps`); False: the rule before (every gap up to ``max_gap_s`` bridged)."""


def hidden_bout_gaps(fr: Frames, blocks: Blocks, in_bout: np.ndarray,
                     hidden_gap_s: float | None) -> np.ndarray:
    """Per sorted row: True on the frames of a bridged detection gap (not longer than
    ``max_gap_s``, outside a bout) lasting at least ``hidden_gap_s``.

    The fish (or its tail) was not seen for as long as the shortest bout the stage finds at
    this frame rate (both lengths in frame durations: first frame to the next observed
    one), so a whole bout may have happened unseen: such a gap is not evidence of rest.
    :func:`state_codes` splits quiet stretches there like at a long gap; the gap's frames are
    ``unknown`` inside a quiet span lasting ``min_passive_s`` (where one bout would decide
    the state) and ``active`` inside a shorter one (active whatever happened). Spent
    held-out 21852 A1 (680 fps): its tail lost for 0.466 s exactly over a true bout of
    0.25 s, bridged, and 3.25-6.0 s scored passive against active. Gaps shorter than
    ``hidden_gap_s`` (single lost frames) are bridged as before."""
    if hidden_gap_s is None or not HIDDEN_GAPS:
        return np.zeros(fr.n, bool)
    gs, ge = runs(blocks.bridged & ~in_bout, blocks.block)
    length = fr.t[ge] + fr.dur[ge] - fr.t[gs]
    long_ = length >= hidden_gap_s - 1e-9
    return run_lengths_fill(gs[long_], ge[long_], np.ones(int(long_.sum()), bool), fr.n, False)


CENSORED_ENDS = True
"""A quiet stretch at the start or end of a fish's record whose length is within the bout
edge's uncertainty of ``min_passive_s`` is ``unknown`` (:func:`censored_undecided`); False:
the rule before (active when shorter than ``min_passive_s``, passive from it)."""
CENSORED_EDGE_FRAMES = 2
"""The uncertainty of a bout's edge (frames at the recording's frame rate) within which a
censored quiet stretch's length cannot decide its state (:func:`censored_undecided`)."""


def censored_undecided(fr: Frames, span_start: np.ndarray, span_end: np.ndarray,
                       dur: np.ndarray, min_passive_s: float) -> np.ndarray:
    """Per quiet stretch: True when it is *censored* and its length cannot decide its state.

    A stretch without bouts whose span (from the end of one bout to the start of the next,
    detection gaps included: ``span_start``, ``span_end``, sorted rows) touches the first or
    last row of the fish's record is censored: the record's edge closes it, and its state
    is judged on its observed part (``dur``, s) alone, whose one end is a bout's edge, known
    to a frame or two. Within :data:`CENSORED_EDGE_FRAMES` frames of ``min_passive_s`` that
    uncertainty alone decides between active and passive for the whole stretch, up to
    ``min_passive_s`` of frames: ``unknown`` (issue 17, held-out video 20942 A1 at 30 fps: a
    final stretch of 59 frames in truth, active, and 60 as found, passive). Between bouts a
    stretch has a bout on both sides and is judged as before."""
    touches = (span_start == fr.gstart[span_start]) | (span_end == fr.gend[span_end])
    edge = CENSORED_EDGE_FRAMES * fr.dt_median
    return touches & (dur >= min_passive_s - edge - 1e-9) & (dur < min_passive_s + edge - 1e-9)


def epoch_table(fr: Frames, blocks: Blocks, codes: np.ndarray) -> pd.DataFrame:
    """Epochs (maximal runs of one state inside a block), columns :data:`EPOCH_COLUMNS`."""
    n = fr.n
    if n == 0:
        return _empty_epochs()
    brk = np.ones(n, bool)
    brk[1:] = (blocks.block[1:] != blocks.block[:-1]) | (codes[1:] != codes[:-1])
    s = np.flatnonzero(brk)
    e = np.r_[s[1:] - 1, n - 1]
    block_start = np.r_[True, blocks.block[1:] != blocks.block[:-1]]
    block_end = np.r_[blocks.block[1:] != blocks.block[:-1], True]
    fish_start = s == fr.gstart[s]
    fish_end = e == fr.gend[e]
    st = codes[s]
    # next to unknown frames of the same fish (a short quiet stretch cut by a long gap, or a
    # censored one, :func:`censored_undecided`), an epoch's extent is unknown too
    unk = codes == UNKNOWN
    after_unknown = ~fish_start & unk[np.maximum(s - 1, 0)]
    before_unknown = ~fish_end & unk[np.minimum(e + 1, n - 1)]
    censored = np.where(st == UNKNOWN, fish_start | fish_end,
                        block_start[s] | block_end[e] | after_unknown | before_unknown)
    keys = fr.fish_keys.iloc[fr.gid[s]]
    end_s = fr.t[e] + fr.dur[e]
    out = pd.DataFrame(
        {
            "fish": keys["fish"].to_numpy(),
            "arena": keys["arena"].to_numpy(),
            "state": np.asarray(STATES, dtype=object)[st],
            "start_frame": fr.frame[s],
            "end_frame": fr.frame[e],
            "start_s": fr.t[s],
            "end_s": end_s,
            "duration_s": end_s - fr.t[s],
            "phase": pd.Series([None] * len(s), dtype=object),
            "censored": censored.astype(bool),
        }
    )
    return out[list(EPOCH_COLUMNS)]


def _empty_epochs() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in EPOCH_COLUMNS})


def _in_bout_column(tracks: pd.DataFrame, fr: Frames, in_bout) -> np.ndarray:
    if in_bout is None:
        if "in_bout" not in tracks.columns:
            raise FishtrackError("tracks: no 'in_bout' column; run detect_bouts first")
        in_bout = tracks["in_bout"]
    arr = pd.Series(in_bout).fillna(False).to_numpy(dtype=bool)
    if arr.shape[0] != fr.n:
        raise FishtrackError("in_bout: length differs from the tracks table")
    return arr[fr.order]


def label_states(
    tracks: pd.DataFrame, cfg: BehaviourConfig | None = None, *, in_bout=None
) -> pd.Series:
    """Per-frame state ``active`` | ``passive`` | ``unknown``.

    Parameters
    ----------
    tracks
        Tracks table with an ``in_bout`` column (from :func:`detect_bouts`), or pass
        ``in_bout`` (bool per row, same order).
    cfg
        Uses ``min_passive_s``, ``max_gap_s`` and ``min_bout_s`` (tail bouts).

    Returns
    -------
    pandas.Series
        Strings, same index as ``tracks``.
    """
    cfg = cfg or BehaviourConfig()
    fr = sorted_frames(tracks, max_gap_s=cfg.max_gap_s)
    blocks = gap_blocks(fr, cfg.max_gap_s)
    codes = state_codes(fr, blocks, _in_bout_column(tracks, fr, in_bout), cfg.min_passive_s,
                        cfg.min_bout_s)
    names = np.asarray(STATES, dtype=object)[to_input_order(fr, codes)]
    return pd.Series(names, index=tracks.index, name="state")


def epochs_from_states(
    tracks: pd.DataFrame,
    protocol: list[Phase] | None = None,
    *,
    cfg: BehaviourConfig | None = None,
) -> pd.DataFrame:
    """Epoch table from a tracks table that has a ``state`` column.

    Long gaps are the ``unknown`` runs of ``state``; time jumps longer than ``cfg.max_gap_s``
    also split epochs. ``phase`` is the protocol phase at each epoch's start.
    """
    cfg = cfg or BehaviourConfig()
    if "state" not in tracks.columns:
        raise FishtrackError("tracks: no 'state' column; run label_states first")
    fr = sorted_frames(tracks, max_gap_s=cfg.max_gap_s)
    state = tracks["state"].astype(object).to_numpy()[fr.order]
    bad = ~np.isin(state, STATES)
    if bad.any():
        raise FishtrackError(
            f"tracks: column 'state' has value {state[bad][0]!r}; allowed: {', '.join(STATES)}"
        )
    codes = np.select([state == "active", state == "passive"], [ACTIVE, PASSIVE], UNKNOWN)
    unknown = codes == UNKNOWN
    brk = np.zeros(fr.n, bool)
    if fr.n:
        brk[0] = True
        brk[1:] = (fr.gid[1:] != fr.gid[:-1]) | (unknown[1:] != unknown[:-1])
        brk[1:] |= fr.jump
    blocks = Blocks(block=np.cumsum(brk) - 1, unknown=unknown, bridged=~fr.observed & ~unknown)
    ep = epoch_table(fr, blocks, codes.astype(np.int8))
    if protocol:
        ep["phase"] = assign_phase(ep["start_s"].to_numpy(float), protocol)
    return ep
