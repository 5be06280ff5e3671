"""The behaviour stage in one call: kinematics -> bouts -> states -> epochs -> phases."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fishtrack.behaviour._frames import Blocks, gap_blocks, to_input_order
from fishtrack.behaviour.bouts import BoutRuns, _detect, bout_table, hysteresis_activity
from fishtrack.behaviour.kinematics import KINEMATIC_COLUMNS, Kinematics, compute_kinematics
from fishtrack.behaviour.protocol import assign_phase, validate_protocol
from fishtrack.behaviour.states import STATES, epoch_table, state_codes
from fishtrack.config import BehaviourConfig, Phase

__all__ = ["BehaviourResult", "OUTPUT_COLUMNS", "classify", "score"]

LOW_FPS = 100.0
"""Below this frame rate tail beats are undersampled (a note is added to the result)."""

OUTPUT_COLUMNS = (*KINEMATIC_COLUMNS, "in_bout", "state", "phase")
"""Columns :func:`classify` adds to the tracks table (replaced when re-scoring)."""


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
        One row per fish: ``fish, arena, bout_threshold_rad_s, vigour_noise_rad_s,
        tail_noise_rad``.
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


@dataclass
class Scored:
    """Sorted-order result of :func:`score` (used by :func:`classify` and calibration)."""

    bouts: BoutRuns
    codes: np.ndarray
    blocks: Blocks
    notes: list[str]


def score(kin: Kinematics, cfg: BehaviourConfig, blocks: Blocks | None = None) -> Scored:
    """Bouts and per-frame state codes from precomputed kinematics."""
    fr = kin.frames
    blocks = blocks if blocks is not None else gap_blocks(fr, cfg.max_gap_s)
    notes: list[str] = []
    br = _detect(kin, cfg, blocks)
    if cfg.method == "hmm":
        from fishtrack.behaviour.hmm import hmm_activity

        base = hysteresis_activity(kin, br.thresholds, br.noise, max_extend_s=cfg.vigour_window_s)
        active, notes = hmm_activity(kin, cfg, blocks, base)
        br = _detect(kin, cfg, blocks, active=active)
    codes = state_codes(fr, blocks, br.in_bout, cfg.min_passive_s)
    return Scored(bouts=br, codes=codes, blocks=blocks, notes=notes)


def classify(
    tracks: pd.DataFrame,
    cfg: BehaviourConfig | None = None,
    protocol: list[Phase] | None = None,
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
    kin = compute_kinematics(tracks, vigour_window_s=cfg.vigour_window_s, max_gap_s=cfg.max_gap_s)
    fr = kin.frames
    sc = score(kin, cfg)
    fps = 1.0 / fr.dt_median if fr.n > 1 else float("nan")
    if fps < LOW_FPS:
        sc.notes.insert(
            0,
            f"frame rate {fps:.0f} Hz is low for tail beats of 20-40 Hz: some "
            f"bouts will be missed or split; record at {LOW_FPS:.0f} fps or more",
        )

    cols = dict(kin.columns)
    # beats count inside bouts only: extrema of a still, noisy tail are not tail beats
    cols["tail_beat_hz"] = np.where(sc.bouts.in_bout | ~fr.observed, cols["tail_beat_hz"], 0.0)
    added = {c: to_input_order(fr, v) for c, v in cols.items()}
    added["in_bout"] = to_input_order(fr, sc.bouts.in_bout)
    added["state"] = np.asarray(STATES, dtype=object)[to_input_order(fr, sc.codes)]
    added["phase"] = assign_phase(tracks["time_s"].to_numpy(float), protocol)
    kept = tracks.drop(columns=[c for c in OUTPUT_COLUMNS if c in tracks.columns])
    out = pd.concat([kept, pd.DataFrame(added, index=tracks.index)], axis=1, copy=False)
    out.attrs["motion_source"] = kin.motion_source

    bouts = bout_table(kin, sc.bouts)
    epochs = epoch_table(fr, sc.blocks, sc.codes)
    if protocol:
        bouts["phase"] = assign_phase(bouts["start_s"].to_numpy(float), protocol)
        epochs["phase"] = assign_phase(epochs["start_s"].to_numpy(float), protocol)
    fish = fr.fish_keys.copy()
    fish["bout_threshold_rad_s"] = sc.bouts.thresholds
    fish["vigour_noise_rad_s"] = sc.bouts.noise
    fish["tail_noise_rad"] = kin.tail_noise
    return BehaviourResult(
        tracks=out,
        bouts=bouts,
        epochs=epochs,
        fish=fish,
        motion_source=kin.motion_source,
        notes=sc.notes,
    )
