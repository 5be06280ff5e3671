"""Behaviour QC: why each fish was scored as it was.

:func:`vigour_summary` condenses a scored trial (``tracks.parquet`` with ``vigour_rad_s``, and
the per-fish noise table that ``provenance.json`` holds under ``behaviour_noise.fish``) into
one row per fish: the percentiles of its vigour, its threshold and noise level, its bouts and
its QC flags. :func:`fishtrack.report.figures.behaviour_qc_figure` draws it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["VIGOUR_QUANTILES", "vigour_summary"]

VIGOUR_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95, 0.999)
"""Vigour percentiles kept per fish (columns ``q05 .. q999``)."""


def _qname(q: float) -> str:
    return "q" + f"{q:.3f}".split(".")[1].rstrip("0").ljust(2, "0")


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
        ``arena, fish, n_frames, q05, q25, q50, q75, q95, q999`` (rad/s) plus, when
        ``fish_noise`` is given, ``bout_threshold_rad_s, vigour_noise_rad_s,
        vigour_noise_sd_rad_s, tail_noise_rad, n_bouts, in_bout_fraction, qc_flags``.
    """
    keys = ["arena", "fish"] if "arena" in tracks.columns else ["fish"]
    v = pd.to_numeric(tracks.get("vigour_rad_s"), errors="coerce") if "vigour_rad_s" in tracks \
        else pd.Series(np.nan, index=tracks.index)
    df = tracks[keys].astype(str).assign(v=v.to_numpy(float))
    g = df.groupby(keys, sort=True)["v"]
    out = g.count().rename("n_frames").to_frame()
    for q in VIGOUR_QUANTILES:
        out[_qname(q)] = g.quantile(q)
    out = out.reset_index()
    if "arena" not in out.columns:
        out.insert(0, "arena", "")
    if fish_noise is not None:
        fn = pd.DataFrame(fish_noise)
        if len(fn):
            fn = fn.astype({"fish": str, "arena": str} if "arena" in fn else {"fish": str})
            cols = [c for c in ("bout_threshold_rad_s", "vigour_noise_rad_s",
                                "vigour_noise_sd_rad_s", "tail_noise_rad", "n_bouts",
                                "in_bout_fraction", "qc_flags") if c in fn.columns]
            on = [k for k in ("arena", "fish") if k in fn.columns]
            out = out.merge(fn[on + cols], on=on, how="left")
    if "qc_flags" in out.columns:
        out["qc_flags"] = out["qc_flags"].fillna("").astype(str)
    return out
