"""The behaviour stage in one call: kinematics -> bouts -> states -> epochs -> phases."""

from __future__ import annotations

import itertools
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from fishtrack.behaviour import speed as speed_mod
from fishtrack.behaviour._frames import (
    Blocks,
    _reduce_interval,
    gap_blocks,
    sorted_frames,
    to_input_order,
)
from fishtrack.behaviour._pool import (
    Pool,
    PoolNeeded,
    any_of,
    ask_ahead,
    memoizing,
    pooled,
    pooling,
    reduce_parts,
    remembered,
)
from fishtrack.behaviour._steps import StepStore
from fishtrack.behaviour.bouts import (
    BoutRuns,
    _detect,
    bout_table,
    gate_lag,
    hysteresis_activity,
    key_frame_numbers,
    key_frames,
    keys_known,
    midtail_frames,
    motion_gate,
    spans_renewal,
    tail_motion_frames,
)
from fishtrack.behaviour.kinematics import KINEMATIC_COLUMNS, Kinematics, compute_kinematics
from fishtrack.behaviour.pixel_bouts import ask_noisy_ahead, pixel_bouts
from fishtrack.behaviour.protocol import assign_phase, validate_protocol
from fishtrack.behaviour.speed import (
    MOVEMENT_SIGNALS,
    area_frames,
    blur_frames,
    body_length_px,
    choose_signal,
    detect_speed_bouts,
    fixed_speed_threshold,
    has_motion_energy,
    key_frame_reference,
    motion_above_rig_change,
    motion_frames,
    position_frames,
)
from fishtrack.behaviour.states import STATES, epoch_table, state_codes
from fishtrack.config import BehaviourConfig, Phase
from fishtrack.errors import FishtrackError

__all__ = ["BehaviourResult", "FISH_COLUMNS", "OUTPUT_COLUMNS", "classify", "classify_parts",
           "noise_summary",
           "score"]

LOW_FPS = 100.0
"""Below this frame rate tail beats are undersampled (a note is added to the result)."""
FASTEST_BEAT_HZ = 40.0
"""Fastest tail-beat frequency of ordinary swimming and struggles (Hz); below twice it the
beats alias (a note says so)."""

MOVEMENT_COLUMNS = ("bout_speed_px_s", "bout_motion_grey")
"""Per-frame signals of movement bouts (NaN for tail bouts; see docs/behaviour.md)."""
OUTPUT_COLUMNS = (*KINEMATIC_COLUMNS, "in_bout", "state", "phase", *MOVEMENT_COLUMNS)
"""Columns :func:`classify` adds to the tracks table (replaced when re-scoring)."""

FISH_COLUMNS = (
    "fish", "arena", "bout_threshold_rad_s", "threshold_source", "vigour_noise_rad_s",
    "vigour_noise_sd_rad_s", "tail_noise_rad", "tail_noise_deg", "quiet_s", "noise_pooled",
    "n_bouts", "in_bout_fraction", "passive_fraction", "observed_fraction", "qc_flags",
    "bout_signal", "bout_threshold_px_s", "speed_noise_px_s", "position_noise_px",
    "body_length_px", "bout_threshold_bl_s", "excursion_threshold_rad", "excursion_noise_rad",
    "n_excursion_bouts", "motion_threshold_grey", "motion_noise_grey", "motion_gate_grey",
    "n_motion_gated_bouts", "motion_gate_tail_grey", "sustained_threshold_rad2",
    "motion_gate_midtail_rad", "tail_motion_bout_grey",
)
"""Columns of :attr:`BehaviourResult.fish` (one row per fish; see docs/behaviour.md)."""
NOISE_OUTLIER = 3.0
"""A fish whose tail noise is more than this many times the recording's median is flagged
``noisy_tail`` (its tail tracking is worse than the others': check it)."""


@dataclass
class BehaviourResult:
    """Output of :func:`classify`.

    Attributes
    ----------
    tracks
        The input table (same rows and order) plus :data:`OUTPUT_COLUMNS`.
    bouts
        One row per swim bout (see docs/behaviour.md).
    epochs
        One row per active / passive / unknown epoch, covering every fish's whole record.
    fish
        One row per fish (:data:`FISH_COLUMNS`): its threshold, the noise it was measured
        from, its bouts and QC flags (see docs/behaviour.md).
    noise
        The recording's noise summary (:func:`noise_summary`), written to provenance.json.
    motion_source
        Where ``motion_index`` comes from: ``pixels`` (tracker's ``motion_energy``),
        ``midline`` (substitute from the midline points) or ``none``.
    notes
        Remarks worth showing the user (e.g. fish where the HMM fell back to the threshold).
    """

    tracks: pd.DataFrame
    bouts: pd.DataFrame
    epochs: pd.DataFrame
    fish: pd.DataFrame
    motion_source: str = "none"
    notes: list[str] = field(default_factory=list)
    noise: dict = field(default_factory=dict)
    fps: float = float("nan")  # the recording's frame rate (1 / median frame interval)
    passes: int = 1  # passes over the recording (more than one: :func:`classify_parts`)


@dataclass
class Scored:
    """Sorted-order result of :func:`score` (used by :func:`classify` and calibration)."""

    bouts: BoutRuns
    codes: np.ndarray
    blocks: Blocks
    notes: list[str]
    kin: Kinematics | None = None  # the kinematics refined with the measured noise
    motion_gate: float = float("nan")  # pixel-motion noise level of the tail bouts' gate
    n_gated: np.ndarray | None = None  # per fish: tail bouts dropped by the pixel-motion gate
    tail_gate: float = float("nan")  # the gate's tail test level (tail_motion, grey levels)
    midtail_gate: float = float("nan")  # the gate's mid-tail test level (rad)
    pixel_bouts_level: float = float("nan")  # level of the bouts from the tail's pixels


def score(kin: Kinematics, cfg: BehaviourConfig, blocks: Blocks | None = None, *,
          motion: np.ndarray | None = None, body_px: np.ndarray | None = None,
          tail: np.ndarray | None = None, midtail: np.ndarray | None = None,
          keyed: bool = False) -> Scored:
    """Bouts and per-frame state codes from precomputed kinematics.

    ``kin`` is not changed: the noise-dependent steps are redone on a copy (returned as
    ``Scored.kin``), so one set of kinematics can be scored with many settings.
    ``motion`` (per sorted row, :func:`fishtrack.behaviour.speed.motion_frames`) and
    ``body_px`` (per fish) switch on the pixel-motion gate of tail bouts
    (:func:`fishtrack.behaviour.bouts.motion_gate`); without them (imported tracks, and
    calibration) no bout is gated; ``tail`` (:func:`fishtrack.behaviour.bouts.tail_motion_frames`)
    adds the gate's test where the tail is, ``midtail``
    (:func:`fishtrack.behaviour.bouts.midtail_frames`) its test of the middle of the tail;
    ``keyed``: ``motion`` and ``tail`` leave the video's key frames out
    (:data:`fishtrack.behaviour.bouts.KEY_FRAME_GATE`).
    """
    fr = kin.frames
    kin = replace(kin, columns=dict(kin.columns))
    blocks = blocks if blocks is not None else gap_blocks(fr, cfg.max_gap_s)
    notes: list[str] = []
    br = _detect(kin, cfg, blocks)
    if cfg.method == "hmm":
        from fishtrack.behaviour.hmm import hmm_activity

        base = hysteresis_activity(kin, br.thresholds, br.noise, max_extend_s=cfg.vigour_window_s)
        active, notes = hmm_activity(kin, cfg, blocks, base)
        br = _detect(kin, cfg, blocks, active=active)
    # the tail noise is final: the QC median together with the next recording-level value
    ask_ahead("qc_tail_noise", _qc_levels, lambda: {"tail_noise": kin.tail_noise})
    gate = tail_gate = midtail_gate = pixel_level = float("nan")
    gated = np.zeros(len(fr.fish_keys), np.int64)
    if motion is not None and body_px is not None:
        if tail is not None:
            ask_noisy_ahead(kin)  # resolved with the gate's first recording-level value
        br, gate, gated, tail_gate, midtail_gate = motion_gate(kin, br, motion, body_px, tail,
                                                               midtail, keyed=keyed)
        br, pixel_level = pixel_bouts(kin, br, tail, blocks, cfg)
    codes = state_codes(fr, blocks, br.in_bout, cfg.min_passive_s, cfg.min_bout_s)
    return Scored(bouts=br, codes=codes, blocks=blocks, notes=notes, kin=kin, motion_gate=gate,
                  n_gated=gated, tail_gate=tail_gate, midtail_gate=midtail_gate,
                  pixel_bouts_level=pixel_level)


def classify(
    tracks: pd.DataFrame,
    cfg: BehaviourConfig | None = None,
    protocol: list[Phase] | None = None,
    *,
    px_per_mm: float | None = None,
) -> BehaviourResult:
    """Score swim bouts and active / passive states of every fish.

    Parameters
    ----------
    tracks
        Tracks table: one row per frame per fish with at least ``frame, time_s, fish,
        tail_angle`` (``arena, x, y, heading, detected, motion_energy, tail_x_i, tail_y_i``
        used when present; NaN where the fish was not found).
    cfg
        Behaviour settings (defaults when None).
    protocol
        Protocol phases; every bout, epoch and frame gets the phase at its start.
    px_per_mm
        Spatial calibration; needed only for ``speed_threshold`` in mm/s.

    Returns
    -------
    BehaviourResult
        ``.tracks`` (input + kinematics, ``in_bout``, ``state``, ``phase``), ``.bouts``,
        ``.epochs``, ``.fish``.

    Raises
    ------
    FishtrackError
        Missing required columns, duplicate frames, times not increasing; ConfigError for
        overlapping protocol phases.
    """
    cfg = cfg or BehaviourConfig()
    protocol = list(protocol or [])
    if protocol:
        validate_protocol(protocol)
    if "tail_angle" not in tracks.columns and {"x", "y"} <= set(tracks.columns):
        tracks = tracks.assign(tail_angle=np.nan)  # positions only: movement bouts from speed
    if "tail_angle" in tracks.columns:
        # the recording's flags the bout signal depends on and its frame interval, before the
        # heavy work, in one pass of classify_parts (they are asked for again further on)
        ask_ahead("any_motion_energy", any_of, lambda: {"flag": has_motion_energy(tracks)})
        ask_ahead("dt_median", _reduce_interval, lambda: _interval_summary(tracks))
        pooled("any_tail_angle", any_of, flag=np.isfinite(
            pd.to_numeric(tracks["tail_angle"], errors="coerce").to_numpy(float)).any())
        pooled("any_motion_energy", any_of, flag=has_motion_energy(tracks))
    kin = remembered("kinematics", compute_kinematics, tracks, vigour_window_s=cfg.vigour_window_s,
                     max_gap_s=cfg.max_gap_s, excursion_window_s=cfg.excursion_window_s)
    fr = kin.frames
    fps = 1.0 / fr.dt_median if fr.n > 1 else float("nan")
    signal, reason = choose_signal(fr, cfg, tracks)
    speed_extra: dict = {}
    if signal in MOVEMENT_SIGNALS:
        # the QC median's tail noise is final here (not refined)
        ask_ahead("qc_tail_noise", _qc_levels, lambda: {"tail_noise": kin.tail_noise})
        sc, speed_extra = _score_speed(tracks, kin, cfg, reason, signal, px_per_mm)
        fr = sc.kin.frames
        kin = sc.kin
    else:
        motion, body_px, tail = remembered("tail_motion", _motion_and_body, tracks, fr)
        # the part's own rows only: kept between the passes of classify_parts (~0.1 s of
        # a 30 000-row part, run in each of its ~14 passes before)
        midtail = remembered("midtail", midtail_frames, tracks, fr) if motion is not None else None
        sc = score(kin, cfg, motion=motion, body_px=body_px, tail=tail, midtail=midtail,
                   keyed=keys_known(tracks))
        kin = sc.kin
    if signal in MOVEMENT_SIGNALS:
        pass  # the tail's frame-rate notes do not apply
    elif fps < 2 * FASTEST_BEAT_HZ - 0.5:
        sc.notes.insert(
            0,
            f"frame rate {fps:.0f} Hz is below twice the fastest tail beats "
            f"({FASTEST_BEAT_HZ:.0f} Hz): faster beats are aliased; bouts are still found from "
            "the tail's excursions, but beat_hz and n_beats of those bouts are not their true "
            f"values, and onsets are known to about one frame; record at {LOW_FPS:.0f} fps or "
            "more to measure beats",
        )
    elif fps < LOW_FPS - 0.5:
        sc.notes.insert(
            0,
            f"frame rate {fps:.0f} Hz is low for tail beats of 20-40 Hz: weak or short bouts "
            f"may be missed or split; record at {LOW_FPS:.0f} fps or more",
        )

    cols = dict(kin.columns)
    # beats count inside bouts only: extrema of a still, noisy tail are not tail beats
    cols["tail_beat_hz"] = np.where(sc.bouts.in_bout | ~fr.observed, cols["tail_beat_hz"], 0.0)
    added = {c: to_input_order(fr, v) for c, v in cols.items()}
    added["in_bout"] = to_input_order(fr, sc.bouts.in_bout)
    added["state"] = np.asarray(STATES, dtype=object)[to_input_order(fr, sc.codes)]
    added["phase"] = assign_phase(tracks["time_s"].to_numpy(float), protocol)
    for c, k in zip(MOVEMENT_COLUMNS, ("speed", "motion"), strict=True):
        v = speed_extra.get(k)
        added[c] = to_input_order(fr, v) if v is not None else np.full(len(tracks), np.nan)
    kept = tracks.drop(columns=[c for c in OUTPUT_COLUMNS if c in tracks.columns])
    out = pd.concat([kept, pd.DataFrame(added, index=tracks.index)], axis=1, copy=False)
    out.attrs["motion_source"] = kin.motion_source

    bouts = bout_table(kin, sc.bouts)
    if signal in MOVEMENT_SIGNALS:  # no tail beats measured: the tail's columns are unknown
        for c in ("beat_hz", "max_tail_angle", "vigour", "vigour_rad_s", "effort_rad"):
            bouts[c] = np.nan
        bouts["n_beats"] = 0
    bouts["bout_signal"] = pd.Series([signal] * len(bouts), index=bouts.index, dtype=object)
    if signal == "speed":
        bouts["bout_evidence"] = pd.Series(["speed"] * len(bouts), index=bouts.index, dtype=object)
    epochs = epoch_table(fr, sc.blocks, sc.codes)
    if protocol:
        bouts["phase"] = assign_phase(bouts["start_s"].to_numpy(float), protocol)
        epochs["phase"] = assign_phase(epochs["start_s"].to_numpy(float), protocol)
    fish = fish_table(kin, sc, cfg, out, signal=signal, speed=speed_extra)
    return BehaviourResult(
        tracks=out,
        bouts=bouts,
        epochs=epochs,
        fish=fish,
        motion_source=kin.motion_source,
        notes=sc.notes,
        noise=_recording_noise(fish, fps, cfg, signal, reason),
        fps=fps,
    )


def _interval_summary(tracks: pd.DataFrame) -> dict:
    """The summary the median frame interval is pooled from (:func:`sorted_frames`'s own, for
    :func:`fishtrack.behaviour._pool.ask_ahead`)."""
    try:
        with pooling(Pool()):
            sorted_frames(tracks)
    except PoolNeeded as want:
        if want.key == ("dt_median", 0):
            return want.summary
    raise RuntimeError("behaviour: the frame interval was not asked for")  # pragma: no cover


def _recording_noise(fish: pd.DataFrame, fps: float, cfg: BehaviourConfig, signal: str,
                     reason: str) -> dict:
    """:attr:`BehaviourResult.noise` from the fish table of the whole recording."""
    noise = noise_summary(fish, fps=fps, cfg=cfg)
    noise["bout_signal"] = signal
    noise["bout_signal_reason"] = reason
    for col in ("motion_gate_grey", "motion_gate_tail_grey", "motion_gate_midtail_rad",
                "tail_motion_bout_grey"):
        gate = pd.to_numeric(fish[col], errors="coerce").to_numpy(float)
        gate = gate[np.isfinite(gate)]  # one level per recording, repeated on every fish
        noise[col] = round(float(gate[0]), 6) if len(gate) else None
    noise["n_motion_gated_bouts"] = int(fish["n_motion_gated_bouts"].sum())
    if signal in MOVEMENT_SIGNALS:
        noise["threshold"] = (
            "fixed (behaviour.speed_threshold)" if cfg.speed_threshold is not None else
            "noise of the positions on the quiet frames (head path speed)")
        if signal == "speed_motion":
            noise["threshold"] += (
                "; pixel motion: fixed (behaviour.motion_threshold)"
                if cfg.motion_threshold is not None else
                "; pixel motion: noise of the quiet frames of all fish")
        for c in ("position_noise_px", "speed_noise_px_s", "bout_threshold_px_s",
                  "bout_threshold_bl_s", "body_length_px", "motion_threshold_grey",
                  "motion_noise_grey"):
            v = pd.to_numeric(fish[c], errors="coerce").to_numpy(float)
            v = v[np.isfinite(v)]
            noise[c] = round(float(np.median(v)), 6) if len(v) else None
    return noise


def classify_parts(
    parts: Callable[[], Iterable[pd.DataFrame]],
    cfg: BehaviourConfig | None = None,
    protocol: list[Phase] | None = None,
    *,
    px_per_mm: float | None = None,
    emit: Callable[[int, pd.DataFrame], None] | None = None,
    score_part: Callable[..., BehaviourResult] | None = None,
    work_dir: str | Path | None = None,
) -> BehaviourResult:
    """:func:`classify` of a recording seen in parts, a few fish at a time: the same results
    as :func:`classify` on the whole table, in memory bounded by the largest part.

    ``parts()`` yields the recording's tracks in parts (each fish whole, in one part; the
    rows of one part as :func:`classify` takes them); it is called once per *pass*. Each pass
    runs the stage on every part until it needs a recording-level value not known yet (the
    median frame interval, the noise pooled over the fish, the decision to redo the
    noise-dependent steps, the QC median: :mod:`fishtrack.behaviour._pool`), which is then
    computed from every part's summary; the last pass runs every part through. ``emit(i,
    tracks)`` gets the scored tracks of part ``i`` of the last pass (then the result's
    ``tracks`` is empty); without it they are concatenated in the parts' order.
    ``score_part`` replaces :func:`classify` on each part (same arguments).

    A pass does not redo a part's expensive steps (kinematics, sorted frames, window speeds:
    :func:`fishtrack.behaviour._pool.remembered`): the results of the steps a part ran before
    it stopped are kept in a temporary folder of its own (in ``work_dir``, else the system's
    temporary folder; :mod:`fishtrack.behaviour._steps`), read back in the next passes, and
    removed at the end, also on an error.
    """
    cfg = cfg or BehaviourConfig()
    score_part = score_part or classify
    rest = (p for p in parts() if len(p))
    head = list(itertools.islice(rest, 2))
    if len(head) == 1:  # the whole recording in one part: classify it, one pass, no pooling
        b = score_part(head[0], cfg, protocol, px_per_mm=px_per_mm)
        if emit is not None:
            emit(0, b.tracks)
            b.tracks = b.tracks.iloc[:0].copy()
        b.passes = 1
        return b

    def first_pass() -> Iterator[pd.DataFrame]:
        # the two parts already read, then the rest: each part read once per pass, and
        # let go once scored
        while head:
            yield head.pop(0)
        yield from rest

    steps = Path(tempfile.mkdtemp(prefix=".behaviour-steps.", dir=work_dir))
    try:
        # the white-noise references (bouts.white_noise_*: 8192 simulated samples each) once
        # per run, not once per part and pass
        with memoizing():
            return _passes(parts, first_pass, cfg, protocol, px_per_mm, emit, score_part, steps)
    finally:
        shutil.rmtree(steps, ignore_errors=True)


@dataclass
class _Stopped:
    """A part's run that stopped at a recording-level value not known yet (what the driver
    keeps of :class:`PoolNeeded`: the part's summaries as arrays of their own, no traceback,
    which would hold the part's frames)."""

    key: tuple
    reduce: Callable
    summary: dict
    ahead: dict


def _run_part(part: pd.DataFrame, i: int, known: dict, steps: Path, cfg, protocol, px_per_mm,
              score_part) -> BehaviourResult | _Stopped:
    """Part ``i`` of a pass scored under a pool of its own with the values ``known``: its
    result, or where it stopped."""
    try:
        with pooling(Pool(known, StepStore(steps / f"part{i}"))):
            return score_part(part, cfg, protocol, px_per_mm=px_per_mm)
    except PoolNeeded as want:
        out = _Stopped(want.key, want.reduce, _owned(want.summary),
                       {k: (r, _owned(s)) for k, (r, s) in want.ahead.items()})
        del want  # its traceback holds the part's frames
        return out


def _outcomes(source: Iterator[pd.DataFrame], run: Callable,
              ) -> Iterator[BehaviourResult | _Stopped]:
    """``run(part, i)`` of every non-empty part of ``source``, in the parts' order; a part is
    not held while its outcome is used and the next part read."""
    i = -1
    for part in source:
        if not len(part):
            continue
        i += 1
        out = run(part, i)
        del part
        yield out
        del out


def _passes(parts, first_pass, cfg, protocol, px_per_mm, emit, score_part,
            steps: Path) -> BehaviourResult:
    """The passes of :func:`classify_parts` over parts of the recording (see there)."""
    known: dict = {}
    n_passes = 0
    while True:
        n_passes += 1
        need: tuple | None = None  # (key, reduce) of the value the parts stopped at
        summaries: list[dict] = []
        ahead: list[dict] = []
        done: list[BehaviourResult] = []

        def run(part: pd.DataFrame, i: int) -> BehaviourResult | _Stopped:
            return _run_part(part, i, known, steps, cfg, protocol, px_per_mm, score_part)

        # nothing of a part is held once its outcome is taken (and the next ones read and
        # scored): only its summary (arrays of their own, :func:`_owned`) and, in the last
        # pass, its small tables
        for b in _outcomes(first_pass() if n_passes == 1 else parts(), run):
            if isinstance(b, _Stopped):
                if done or (need is not None and b.key != need[0]):
                    raise RuntimeError("behaviour: the parts of the recording did not need "
                                       "the same recording-level values")
                need = need or (b.key, b.reduce)
                fold = getattr(b.reduce, "fold", None)
                if fold is not None and summaries:  # a running summary, not one per part
                    summaries[0] = fold(summaries[0], b.summary)
                else:
                    summaries.append(b.summary)
                ahead.append(b.ahead)
                del b
                continue
            if need is not None:
                raise RuntimeError("behaviour: the parts of the recording did not need the "
                                   "same recording-level values")
            if emit is not None:
                emit(len(done), b.tracks)
                b.tracks = b.tracks.iloc[:0].copy()  # a copy: a slice would keep the part alive
            done.append(b)
            del b
        if need is None:
            break
        known[need[0]] = reduce_parts(need[1], summaries)
        # the values asked for ahead by every part (a part that read a kept step back may
        # not have asked: such a value waits for its own pass)
        for key in set.intersection(*(set(w) for w in ahead)) - set(known):
            known[key] = reduce_parts(ahead[0][key][0], [w[key][1] for w in ahead])
    if not done:
        raise FishtrackError("tracks: no rows to score")
    first = done[0]
    fish = pd.concat([b.fish for b in done], ignore_index=True)
    notes: list[str] = []
    for b in done:
        notes += [n for n in b.notes if n not in notes]
    out = BehaviourResult(
        tracks=pd.concat([b.tracks for b in done]) if emit is None else first.tracks,
        bouts=pd.concat([b.bouts for b in done], ignore_index=True),
        epochs=pd.concat([b.epochs for b in done], ignore_index=True),
        fish=fish,
        motion_source=first.motion_source,
        notes=notes,
        noise=_recording_noise(fish, first.fps, cfg, first.noise["bout_signal"],
                               first.noise["bout_signal_reason"]),
        fps=first.fps,
        passes=n_passes,
    )
    return out


def _owned(summary: dict) -> dict:
    """A part's summary as arrays of their own: a summary's array may be a view into a larger
    one of the part (a kept step read back is one buffer, ``behaviour._steps``: one fish's
    tail noise kept that whole file alive), and the driver keeps the summaries of every part
    of a pass (issue 15: the 16-well row's 16 one-fish parts held ~77 MB at once)."""
    return {k: np.array(v, copy=True) for k, v in summary.items()}


def _score_speed(tracks: pd.DataFrame, kin: Kinematics, cfg: BehaviourConfig, reason: str,
                 signal: str = "speed", px_per_mm: float | None = None) -> tuple[Scored, dict]:
    """Movement bouts from the head's path speed (and with ``speed_motion`` the pixel motion)
    and the states they give (:mod:`fishtrack.behaviour.speed`); ``Scored.kin`` carries the
    position-observed frames."""
    frp, blocks, body, motion, blur, raw, tail, drop, key, area = remembered(
        "speed_inputs", _speed_inputs, tracks, cfg, signal)
    br, speed, extra = detect_speed_bouts(
        frp, cfg, blocks, body, motion=motion,
        fixed_px_s=fixed_speed_threshold(cfg, body, px_per_mm), blur=blur, motion_raw=raw,
        tail=tail, blur_drop=drop, key_ref=key, area=area,
        key_frames=key_frame_numbers(tracks) if area is not None else None)
    extra["speed"] = speed
    codes = state_codes(frp, blocks, br.in_bout, cfg.min_passive_s)
    what = "the head's speed and the pixel motion" if motion is not None else "the head's speed"
    notes = [f"bouts found from {what}, not the tail: {reason}"]
    if cfg.method == "hmm":
        notes.append("method hmm applies to tail bouts only; speed bouts use the threshold")
    kin_p = replace(kin, frames=frp, columns=dict(kin.columns))
    extra["body_length_px"] = body
    return Scored(bouts=br, codes=codes, blocks=blocks, notes=notes, kin=kin_p), extra


def _motion_and_body(tracks: pd.DataFrame, fr) -> tuple[np.ndarray | None, ...]:
    """The tail bouts' pixel-motion gate inputs: per sorted row the aligned motion, per fish
    the body length, per sorted row the aligned tail motion (all None without motion energy;
    the tail motion also None without the tracker's ``tail_motion`` column)."""
    keyframes = key_frames(tracks)  # None: gated as before (no key frames known)
    motion = motion_frames(tracks, fr, renewed=spans_renewal(fr, keyframes, 1))
    if motion is None:
        return None, None, None
    return motion, body_length_px(tracks, fr), tail_motion_frames(
        tracks, fr, renewed=spans_renewal(fr, keyframes, gate_lag(fr)))


def _speed_inputs(tracks: pd.DataFrame, cfg: BehaviourConfig, signal: str) -> tuple:
    """The movement bouts' inputs: position frames, their blocks, the body lengths and (for
    ``speed_motion``) the aligned pixel motion, the blur of the body (:func:`blur_frames`)
    and the aligned tail motion (:func:`tail_motion_frames`; None without the tracker's
    ``tail_motion``), the blur's single frames (``blur_frames(..., smooth=False)``) and the
    segmented area (:func:`area_frames`)."""
    frp = position_frames(tracks, cfg)
    blocks = gap_blocks(frp, cfg.max_gap_s)
    body = body_length_px(tracks, frp)
    raw = (motion_frames(tracks, frp, end_confirms=not speed_mod.RECORD_END_UNCONFIRMED)
           if signal == "speed_motion" else None)
    motion = motion_above_rig_change(frp, raw) if raw is not None else None
    blur = blur_frames(tracks, frp) if motion is not None else None
    drop = blur_frames(tracks, frp, smooth=False) if blur is not None else None
    tail = tail_motion_frames(tracks, frp) if motion is not None else None
    key = key_frame_reference(tracks, frp) if motion is not None else None
    area = area_frames(tracks, frp) if blur is not None else None
    return frp, blocks, body, motion, blur, raw, tail, drop, key, area


def fish_table(kin: Kinematics, sc: Scored, cfg: BehaviourConfig, scored: pd.DataFrame,
               *, signal: str = "tail", speed: dict | None = None) -> pd.DataFrame:
    """One row per fish: threshold, noise, bouts and QC flags (:data:`FISH_COLUMNS`).

    ``threshold_source``: ``fixed`` (``bout_threshold`` set), ``floor``
    (``min_bout_threshold``, the noise is below it) or ``noise``. ``qc_flags`` (``;``
    separated): ``no_bouts``; ``noise_pooled`` (less than 2 s of quiet frames: the
    recording's noise was used); ``noise_unmeasured`` (hardly any quiet frame and no other
    fish: the threshold is the physical floor ``min_bout_threshold``); ``noisy_tail`` (tail noise above :data:`NOISE_OUTLIER` x the
    recording's median); ``mostly_unseen`` (observed in fewer than half of its frames).
    """
    fr = kin.frames
    n_fish = len(fr.fish_keys)
    lv = sc.bouts.levels
    fish = fr.fish_keys.copy()
    thr = sc.bouts.thresholds
    fish["bout_threshold_rad_s"] = thr
    if cfg.bout_threshold is not None:
        src = np.full(n_fish, "fixed", dtype=object)
    else:
        src = np.where(thr <= cfg.min_bout_threshold + 1e-12, "floor", "noise").astype(object)
    fish["threshold_source"] = src
    nan = np.full(n_fish, np.nan)
    fish["vigour_noise_rad_s"] = sc.bouts.noise
    fish["vigour_noise_sd_rad_s"] = lv.vigour_sd if lv is not None else nan
    fish["tail_noise_rad"] = kin.tail_noise
    fish["tail_noise_deg"] = np.degrees(kin.tail_noise)
    fish["quiet_s"] = lv.quiet_s if lv is not None else nan
    fish["noise_pooled"] = lv.pooled if lv is not None else np.zeros(n_fish, bool)
    s = sc.bouts.starts
    fish["n_bouts"] = np.bincount(fr.gid[s], minlength=n_fish) if len(s) else np.zeros(n_fish, int)
    obs = fr.observed
    n_obs = np.bincount(fr.gid, weights=obs, minlength=n_fish)
    n_all = np.bincount(fr.gid, minlength=n_fish)
    with np.errstate(invalid="ignore", divide="ignore"):
        fish["in_bout_fraction"] = np.bincount(fr.gid, weights=sc.bouts.in_bout & obs,
                                               minlength=n_fish) / n_obs
        known = sc.codes != 2
        fish["passive_fraction"] = (np.bincount(fr.gid, weights=sc.codes == 1, minlength=n_fish)
                                    / np.bincount(fr.gid, weights=known, minlength=n_fish))
        fish["observed_fraction"] = n_obs / n_all
    med, n_rec = pooled("qc_tail_noise", _qc_levels, tail_noise=kin.tail_noise)
    flags = []
    for g in range(n_fish):
        f = []
        if fish["n_bouts"].iloc[g] == 0:
            f.append("no_bouts")
        if bool(fish["noise_pooled"].iloc[g]):
            f.append("noise_pooled")
        elif cfg.bout_threshold is None and not np.isfinite(fish["vigour_noise_rad_s"].iloc[g]):
            f.append("noise_unmeasured")
        if n_rec > 2 and np.isfinite(med) and kin.tail_noise[g] > NOISE_OUTLIER * med:
            f.append("noisy_tail")
        if fish["observed_fraction"].iloc[g] < 0.5:
            f.append("mostly_unseen")
        flags.append(";".join(f))
    fish["qc_flags"] = flags
    fish["bout_signal"] = signal
    xthr = sc.bouts.excursion_thresholds
    fish["excursion_threshold_rad"] = xthr if xthr is not None and signal == "tail" else nan
    xn = sc.bouts.excursion_noise
    fish["excursion_noise_rad"] = xn if xn is not None and signal == "tail" else nan
    ev = sc.bouts.evidence
    if ev is not None and len(s) == len(ev):
        fish["n_excursion_bouts"] = np.bincount(fr.gid[s][ev == "excursion"], minlength=n_fish)
    else:
        fish["n_excursion_bouts"] = np.zeros(n_fish, int)
    for c in ("bout_threshold_px_s", "speed_noise_px_s", "position_noise_px", "body_length_px",
              "bout_threshold_bl_s", "motion_threshold_grey", "motion_noise_grey"):
        fish[c] = nan
    # tail bouts: the pixel-motion gate's level (one per recording) and what it dropped
    fish["motion_gate_grey"] = np.full(n_fish, sc.motion_gate)
    fish["n_motion_gated_bouts"] = (sc.n_gated if sc.n_gated is not None
                                    else np.zeros(n_fish, np.int64))
    fish["motion_gate_tail_grey"] = np.full(n_fish, sc.tail_gate)
    fish["motion_gate_midtail_rad"] = np.full(n_fish, sc.midtail_gate)
    # the level of the bouts from the tail's pixels (NaN: the trace is clean, not used)
    fish["tail_motion_bout_grey"] = np.full(n_fish, sc.pixel_bouts_level)
    sthr = sc.bouts.sustained_thresholds
    fish["sustained_threshold_rad2"] = sthr if sthr is not None and signal == "tail" else nan
    if signal in MOVEMENT_SIGNALS:
        speed = speed or {}
        fish["bout_threshold_px_s"] = thr
        fish["speed_noise_px_s"] = sc.bouts.noise
        fish["position_noise_px"] = speed.get("position_noise_px", nan)
        body = np.asarray(speed.get("body_length_px", nan), float)
        fish["body_length_px"] = body
        with np.errstate(invalid="ignore", divide="ignore"):
            fish["bout_threshold_bl_s"] = thr / body
        for c in ("bout_threshold_rad_s", "vigour_noise_rad_s", "vigour_noise_sd_rad_s"):
            fish[c] = nan
        fish["threshold_source"] = np.where(
            thr <= speed.get("floor_px_s", np.zeros(n_fish)) + 1e-12, "floor", "noise")
        if cfg.speed_threshold is not None:
            fish["threshold_source"] = "fixed"
        for c in ("motion_threshold_grey", "motion_noise_grey"):
            fish[c] = speed.get(c, nan)
    return fish[list(FISH_COLUMNS)]


def _qc_levels(tail_noise: np.ndarray) -> tuple[float, int]:
    """The recording's median tail noise and its number of fish (for ``noisy_tail``)."""
    ok = np.isfinite(tail_noise)
    return (float(np.nanmedian(tail_noise)) if ok.any() else np.nan), len(tail_noise)


def noise_summary(fish: pd.DataFrame, *, fps: float, cfg: BehaviourConfig) -> dict:
    """The recording's measurement noise in physical units, for provenance.json.

    ``tail_noise_rad`` / ``tail_noise_deg``: median over fish of the tail-angle noise sigma
    per frame; ``vigour_noise_rad_s``: median of the quiet-frame vigour;
    ``bout_threshold_rad_s``: median threshold; ``sustained_threshold_rad2``: median
    sustained-bout threshold (None: sustained bouts off); plus per-fish rows (``fish``) with the
    columns of :data:`FISH_COLUMNS`.
    """

    def med(col: str) -> float | None:
        v = pd.to_numeric(fish[col], errors="coerce").to_numpy(float)
        v = v[np.isfinite(v)]
        return round(float(np.median(v)), 6) if len(v) else None

    rows = []
    for r in fish.to_dict("records"):
        row = {}
        for k, v in r.items():
            if isinstance(v, np.generic):
                v = v.item()
            if isinstance(v, float):
                v = None if not np.isfinite(v) else round(v, 6)
            row[k] = v
        rows.append(row)
    return {
        "method": cfg.method,
        "threshold": "fixed" if cfg.bout_threshold is not None else "noise of the quiet frames",
        "fps": round(float(fps), 3) if np.isfinite(fps) else None,
        "tail_noise_rad": med("tail_noise_rad"),
        "tail_noise_deg": med("tail_noise_deg"),
        "vigour_noise_rad_s": med("vigour_noise_rad_s"),
        "bout_threshold_rad_s": med("bout_threshold_rad_s"),
        "sustained_threshold_rad2": med("sustained_threshold_rad2"),
        "n_fish": int(len(fish)),
        "n_fish_flagged": int((fish["qc_flags"] != "").sum()),
        "fish": rows,
    }
