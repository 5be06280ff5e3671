"""Behaviour QC: why each fish was scored as it was.

:func:`vigour_summary` condenses a scored trial (``tracks.parquet`` with ``vigour_rad_s``, and
the per-fish noise table that ``provenance.json`` holds under ``behaviour_noise.fish``) into
one row per fish: the percentiles of its vigour, its threshold and noise level, its bouts and
its QC flags. :func:`fishtrack.report.figures.behaviour_qc_figure` draws it.

For a trial scored from movement (``bout_signal`` ``speed`` or ``speed_motion``: no tail, or
a 25-30 fps camera) the signal is the head's speed (``bout_speed_px_s``, px/s) against
``bout_threshold_px_s`` and ``speed_noise_px_s``, and with ``speed_motion`` also the pixel
motion (``bout_motion_grey``, grey levels) against ``motion_threshold_grey`` and
``motion_noise_grey`` (columns ``motion_q05 ..``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["IN_PLACE_BLIND_SIGNALS", "VIGOUR_QUANTILES", "bout_signal_columns", "vigour_summary"]

_MOVEMENT = ("speed", "speed_motion")

IN_PLACE_BLIND_SIGNALS = ("speed",)
"""Bout signals that cannot see a movement in place: ``speed`` (the head's positions only,
imported tracks without a tail or pixels, or a camera below 50 fps without the tracker's
pixel motion). A struggle that neither moves nor turns the head leaves no trace in them (on
simulated 25-30 fps tracks: issue 17, docs/behaviour.md); the tail (``tail``) and the
tracker's pixel motion (``speed_motion``) see it."""

VIGOUR_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95, 0.999)
"""Vigour percentiles kept per fish (columns ``q05 .. q999``)."""


def _qname(q: float) -> str:
    return "q" + f"{q:.3f}".split(".")[1].rstrip("0").ljust(2, "0")


def _percentiles(tracks: pd.DataFrame, keys: list[str], col: str, prefix: str) -> pd.DataFrame:
    """Per fish: frame count and the :data:`VIGOUR_QUANTILES` of ``col`` (NaN if absent)."""
    v = pd.to_numeric(tracks[col], errors="coerce") if col in tracks \
        else pd.Series(np.nan, index=tracks.index)
    df = tracks[keys].astype(str).assign(v=v.to_numpy(float))
    g = df.groupby(keys, sort=True)["v"]
    out = g.count().rename(prefix + "n_frames").to_frame()
    for q in VIGOUR_QUANTILES:
        out[prefix + _qname(q)] = g.quantile(q)
    return out.reset_index()


def vigour_summary(tracks: pd.DataFrame, fish_noise: pd.DataFrame | list[dict] | None) -> pd.DataFrame:
    """One row per fish: vigour percentiles, threshold, noise, bouts and QC flags.

    Parameters
    ----------
    tracks
        Scored tracks (``fish``, ``vigour_rad_s``; ``arena``, ``in_bout`` used when present).
    fish_noise
        The per-fish rows of :attr:`fishtrack.behaviour.BehaviourResult.fish` (or the list
        stored in ``provenance.json`` under ``behaviour_noise.fish``); None when unknown.

    Returns
    -------
    pandas.DataFrame
        ``arena, fish, n_frames, q05, q25, q50, q75, q95, q999`` (rad/s; px/s of the head's
        speed for movement trials, plus ``motion_q05 .. motion_q999`` in grey levels with
        ``speed_motion``), ``bout_signal`` plus, when
        ``fish_noise`` is given, ``bout_threshold_rad_s, vigour_noise_rad_s,
        vigour_noise_sd_rad_s, tail_noise_rad, n_bouts, in_bout_fraction, qc_flags`` and
        the tail bouts' other levels ``sustained_threshold_rad2`` (rad^2) and the pixel-motion
        gate's ``motion_gate_grey``, ``motion_gate_tail_grey`` (grey levels; one per
        recording) and ``motion_gate_midtail_rad`` (rad; one per recording) when the fish rows
        have them.
    """
    keys = ["arena", "fish"] if "arena" in tracks.columns else ["fish"]
    fn = pd.DataFrame(fish_noise) if fish_noise is not None else pd.DataFrame()
    signal = "tail"
    if "bout_signal" in fn.columns and len(fn):
        signal = str(fn["bout_signal"].iloc[0])
    movement = signal in _MOVEMENT and "bout_speed_px_s" in tracks.columns
    col = "bout_speed_px_s" if movement else "vigour_rad_s"
    out = _percentiles(tracks, keys, col, "")
    if movement and "bout_motion_grey" in tracks.columns \
            and pd.to_numeric(tracks["bout_motion_grey"], errors="coerce").notna().any():
        m = _percentiles(tracks, keys, "bout_motion_grey", "motion_").drop(columns="motion_n_frames")
        out = out.merge(m, on=keys, how="left")
    if "arena" not in out.columns:
        out.insert(0, "arena", "")
    out["bout_signal"] = signal if movement else "tail"
    if fish_noise is not None:
        if len(fn):
            fn = fn.astype({"fish": str, "arena": str} if "arena" in fn else {"fish": str})
            cols = [c for c in ("bout_threshold_rad_s", "vigour_noise_rad_s",
                                "vigour_noise_sd_rad_s", "tail_noise_rad", "bout_threshold_px_s",
                                "speed_noise_px_s", "motion_threshold_grey",
                                "motion_noise_grey", "sustained_threshold_rad2",
                                "motion_gate_grey", "motion_gate_tail_grey",
                                "motion_gate_midtail_rad", "n_bouts",
                                "in_bout_fraction", "qc_flags") if c in fn.columns]
            on = [k for k in ("arena", "fish") if k in fn.columns]
            out = out.merge(fn[on + cols], on=on, how="left")
    if "qc_flags" in out.columns:
        out["qc_flags"] = out["qc_flags"].fillna("").astype(str)
    return out


def bout_signal_columns(per_fish: pd.DataFrame, behaviour_noise: dict | None) -> pd.DataFrame:
    """``per_fish`` (rows keyed by ``arena``, ``fish``) with two columns appended: the signal
    its bouts were found from, ``bout_signal`` (``tail``, ``speed`` or ``speed_motion``: the
    per-fish value of ``behaviour_noise["fish"]``, else the trial's ``bout_signal``, else
    ``tail``, the only signal of trials scored before movement bouts existed), and
    ``in_place_blind`` (True where that signal is in :data:`IN_PLACE_BLIND_SIGNALS`: a
    struggle in place is not seen, so the passive fraction can be too high).
    ``behaviour_noise``: the trial's ``provenance.json`` ``behaviour_noise`` (or None)."""
    out = per_fish.copy()
    noise = behaviour_noise or {}
    default = str(noise.get("bout_signal") or "tail")
    sig = pd.Series(default, index=out.index, dtype=object)
    fn = pd.DataFrame(noise.get("fish") or [])
    if len(out) and len(fn) and "bout_signal" in fn.columns and "fish" in fn.columns \
            and "fish" in out.columns:
        on = [k for k in ("arena", "fish") if k in fn.columns and k in out.columns]
        key_fn = pd.MultiIndex.from_frame(fn[on].astype(str))
        per = pd.Series(fn["bout_signal"].astype(object).to_numpy(), index=key_fn)
        per = per[~per.index.duplicated()]
        got = per.reindex(pd.MultiIndex.from_frame(out[on].astype(str))).to_numpy()
        sig = pd.Series(np.where(pd.notna(got), got, default), index=out.index, dtype=object)
    out["bout_signal"] = sig.astype(str)
    out["in_place_blind"] = out["bout_signal"].isin(IN_PLACE_BLIND_SIGNALS)
    return out
