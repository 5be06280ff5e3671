"""Calibration against a human observer.

A human scores epochs by eye (a CSV with ``fish, state, start_s, end_s`` and optionally
``arena``; ``state`` is ``active`` or ``passive``, ``unknown`` rows are ignored). Every frame
whose time falls in a labelled epoch (``start_s <= time_s < end_s``) is compared with the
automatic state; frames the classifier calls ``unknown`` are left out. :func:`calibrate`
reports frame agreement and Cohen's kappa for the given settings, then re-scores on a grid of
``min_passive_s`` and bout thresholds (kinematics computed once; vectorised scoring) and
suggests the pair that agrees best with the human (highest kappa; ties go to higher
agreement, then to the values closest to the current ones).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fishtrack.behaviour._frames import Frames, fish_bounds, gap_blocks
from fishtrack.behaviour.classify import score
from fishtrack.behaviour.kinematics import compute_kinematics
from fishtrack.behaviour.protocol import assign_phase
from fishtrack.behaviour.states import UNKNOWN, state_codes
from fishtrack.config import BehaviourConfig, Phase
from fishtrack.errors import FishtrackError

__all__ = [
    "CalibrationResult",
    "calibrate",
    "load_labels",
    "cohen_kappa",
    "DEFAULT_MIN_PASSIVE_GRID",
    "DEFAULT_THRESHOLD_GRID",
]

DEFAULT_MIN_PASSIVE_GRID = (0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0)
"""Seconds tried for ``min_passive_s``."""
DEFAULT_THRESHOLD_GRID = (None, 2.0, 3.0, 4.0, 6.0, 8.0, 11.0, 15.0, 20.0, 30.0)
"""Vigour thresholds tried (rad/s); ``None`` is the automatic per-fish threshold."""

LABEL_STATES = ("active", "passive", "unknown")
KAPPA_TOLERANCE = 0.005
"""Kappa difference below which two settings count as equally good."""


@dataclass
class CalibrationResult:
    """Agreement of the automatic states with human labels, and suggested settings.

    Attributes
    ----------
    agreement, kappa
        Frame agreement (fraction) and Cohen's kappa of the given settings.
    n_frames
        Frames compared (labelled by the human, not ``unknown`` for the classifier).
    confusion
        Frame counts, rows = human (active, passive), columns = classifier.
    suggested_min_passive_s, suggested_bout_threshold
        Best settings on the grid (``None`` threshold = automatic per fish).
    best_agreement, best_kappa
        Their agreement and kappa.
    min_passive_range
        Lowest and highest ``min_passive_s`` on the grid whose kappa (with the suggested
        threshold) is within :data:`KAPPA_TOLERANCE` of the best: the human's rule is not
        pinned down more precisely than this by the labels.
    grid
        Every setting tried: ``min_passive_s, bout_threshold`` (NaN = automatic),
        ``agreement, kappa, n_frames``.
    """

    agreement: float
    kappa: float
    n_frames: int
    confusion: pd.DataFrame
    suggested_min_passive_s: float
    suggested_bout_threshold: float | None
    best_agreement: float
    best_kappa: float
    min_passive_range: tuple[float, float]
    grid: pd.DataFrame

    def summary(self) -> str:
        """A few human-readable lines."""
        thr = (
            "automatic"
            if self.suggested_bout_threshold is None
            else f"{self.suggested_bout_threshold:g} rad/s"
        )
        return (
            f"{self.n_frames} frames compared: agreement {self.agreement:.1%}, "
            f"kappa {self.kappa:.3f}\n"
            f"suggested: min_passive_s {self.suggested_min_passive_s:g} s, bout_threshold "
            f"{thr} (agreement {self.best_agreement:.1%}, kappa {self.best_kappa:.3f}); "
            f"min_passive_s from {self.min_passive_range[0]:g} to {self.min_passive_range[1]:g} s "
            "agrees about as well"
        )


def _validate_labels(df: pd.DataFrame, source: str) -> pd.DataFrame:
    cols = {str(c).strip().lower(): c for c in df.columns}
    need = ["fish", "state", "start_s", "end_s"]
    missing = [c for c in need if c not in cols]
    if missing:
        raise FishtrackError(
            f"{source}: labels need columns fish, state, start_s, end_s; missing "
            f"{', '.join(missing)}"
        )
    out = pd.DataFrame({c: df[cols[c]] for c in need})
    if "arena" in cols:
        out["arena"] = df[cols["arena"]]
    if out.empty:
        raise FishtrackError(f"{source}: labels table has no rows")
    for c in ("start_s", "end_s"):
        vals = pd.to_numeric(out[c], errors="coerce")
        bad = ~np.isfinite(vals.to_numpy(dtype=float))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise FishtrackError(f"{source}: row {i + 1}: {c} {out[c].iloc[i]!r} is not a number")
        out[c] = vals.astype(float)
    st = out["state"].astype(str).str.strip().str.lower()
    bad = ~st.isin(LABEL_STATES)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise FishtrackError(
            f"{source}: row {i + 1}: state {out['state'].iloc[i]!r} is not one of "
            f"{', '.join(LABEL_STATES)}"
        )
    out["state"] = st
    if (out["end_s"] <= out["start_s"]).any():
        i = int(np.flatnonzero((out["end_s"] <= out["start_s"]).to_numpy())[0])
        raise FishtrackError(f"{source}: row {i + 1}: end_s must be greater than start_s")
    out["fish"] = out["fish"].astype(str).str.strip()
    if "arena" in out:
        out["arena"] = out["arena"].astype(str).str.strip()
    keys = ["arena", "fish"] if "arena" in out else ["fish"]
    srt = out.sort_values([*keys, "start_s"]).reset_index(drop=True)
    same = (srt[keys].shift() == srt[keys]).all(axis=1)
    overlap = same & (srt["start_s"] < srt["end_s"].shift() - 1e-9)
    if overlap.any():
        r = srt[overlap].iloc[0]
        raise FishtrackError(
            f"{source}: labelled epochs of fish {r['fish']} overlap near {r['start_s']:g} s"
        )
    return srt


def load_labels(path: str | Path) -> pd.DataFrame:
    """Read a hand-scored epoch table (CSV, or Parquet by extension).

    Columns ``fish, state, start_s, end_s`` (optional ``arena``); ``state`` in
    ``active | passive | unknown``; times in s from the first frame; epochs of one fish must
    not overlap.

    Raises
    ------
    FishtrackError
        Missing file, unreadable table, missing columns, bad states or times, overlaps.
    """
    p = Path(path)
    if not p.exists():
        raise FishtrackError(f"{p}: labels file not found")
    if p.is_dir():
        raise FishtrackError(f"{p}: is a folder, expected a labels CSV")
    try:
        if p.suffix.lower() == ".parquet":
            df = pd.read_parquet(p)
        else:
            df = pd.read_csv(p, sep=None, engine="python", encoding="utf-8-sig", dtype=str)
    except UnicodeDecodeError:
        raise FishtrackError(f"{p}: not UTF-8 text; save the labels as a UTF-8 CSV") from None
    except pd.errors.EmptyDataError:
        raise FishtrackError(f"{p}: labels file is empty") from None
    except Exception as err:  # pandas/pyarrow raise many types for unreadable files
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise FishtrackError(f"{p}: not a readable table ({first})") from None
    return _validate_labels(df, str(p))


def cohen_kappa(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's kappa of two binary label arrays (NaN when undefined)."""
    a = np.asarray(a, bool)
    b = np.asarray(b, bool)
    n = a.size
    if n == 0:
        return float("nan")
    po = np.mean(a == b)
    pa, pb = a.mean(), b.mean()
    pe = pa * pb + (1 - pa) * (1 - pb)
    if pe >= 1.0:
        return 1.0 if po == 1.0 else float("nan")
    return float((po - pe) / (1 - pe))


def _human_codes(fr: Frames, labels: pd.DataFrame, source: str) -> np.ndarray:
    """Per sorted row: 0 active, 1 passive, -1 unlabelled."""
    human = np.full(fr.n, -1, np.int8)
    fk = fr.fish_keys
    fish_s = fk["fish"].astype(str).str.strip().to_numpy()
    arena_s = fk["arena"].astype(str).str.strip().to_numpy()
    by_arena = "arena" in labels
    if not by_arena and len(set(fish_s)) < len(fish_s):
        raise FishtrackError(
            f"{source}: fish names repeat across arenas in the tracks; add an 'arena' column "
            "to the labels"
        )
    matched = 0
    for g, (a, b) in enumerate(zip(*fish_bounds(fr), strict=True)):
        sel = labels["fish"] == fish_s[g]
        if by_arena:
            sel &= labels["arena"] == arena_s[g]
        lab = labels[sel]
        if lab.empty:
            continue
        matched += 1
        t = fr.t[a:b]
        st = lab["start_s"].to_numpy(float)
        en = lab["end_s"].to_numpy(float)
        k = np.searchsorted(st, t, side="right") - 1
        kc = np.clip(k, 0, len(st) - 1)
        inside = (k >= 0) & (t < en[kc])
        code = np.select([lab["state"] == "active", lab["state"] == "passive"], [0, 1], -1)
        human[a:b] = np.where(inside, code[kc], -1)
    if matched == 0:
        have = ", ".join(sorted(set(fish_s)))[:200]
        raise FishtrackError(
            f"{source}: none of the labelled fish are in the tracks (tracks have: {have})"
        )
    return human


def _evaluate(human: np.ndarray, auto: np.ndarray, keep: np.ndarray) -> tuple[float, float, int]:
    m = keep & (human >= 0) & (auto != UNKNOWN)
    n = int(m.sum())
    if n == 0:
        return float("nan"), float("nan"), 0
    h = human[m] == 1
    a = auto[m] == 1
    return float(np.mean(h == a)), cohen_kappa(h, a), n


def calibrate(
    tracks: pd.DataFrame,
    labels: pd.DataFrame | str | Path,
    cfg: BehaviourConfig | None = None,
    protocol: list[Phase] | None = None,
    *,
    phases: Sequence[str] | None = None,
    min_passive_grid: Sequence[float] = DEFAULT_MIN_PASSIVE_GRID,
    threshold_grid: Sequence[float | None] = DEFAULT_THRESHOLD_GRID,
) -> CalibrationResult:
    """Compare automatic states with human labels and suggest settings.

    Parameters
    ----------
    tracks
        Tracks table (as for :func:`fishtrack.behaviour.classify`).
    labels
        Hand-scored epochs (DataFrame or path; see :func:`load_labels`).
    cfg
        Current behaviour settings (defaults when None); ``method`` is kept on the grid.
    protocol
        Protocol phases, needed only with ``phases``.
    phases
        Compare only frames inside these protocol phases (e.g. the open-loop ones).
    min_passive_grid, threshold_grid
        Values tried (s; rad/s, ``None`` = automatic).

    Returns
    -------
    CalibrationResult
    """
    cfg = cfg or BehaviourConfig()
    if isinstance(labels, str | Path):
        source = str(labels)
        labels = load_labels(labels)
    else:
        source = "labels"
        labels = _validate_labels(labels, source)
    kin = compute_kinematics(tracks, vigour_window_s=cfg.vigour_window_s, max_gap_s=cfg.max_gap_s,
                             excursion_window_s=cfg.excursion_window_s)
    fr = kin.frames
    blocks = gap_blocks(fr, cfg.max_gap_s)
    human = _human_codes(fr, labels, source)
    keep = np.ones(fr.n, bool)
    if phases is not None:
        ph = assign_phase(fr.t, protocol)
        keep = np.isin(ph.astype(str), [str(p) for p in phases]) & (ph != None)  # noqa: E711
    sc = score(kin, cfg, blocks)
    agreement, kappa, n = _evaluate(human, sc.codes, keep)
    if n == 0:
        raise FishtrackError(
            f"{source}: no labelled frame overlaps the tracked frames (check fish names and times)"
        )
    conf = pd.DataFrame(0, index=["active", "passive"], columns=["active", "passive"])
    m = keep & (human >= 0) & (sc.codes != UNKNOWN)
    for i, hname in enumerate(("active", "passive")):
        for j, aname in enumerate(("active", "passive")):
            conf.loc[hname, aname] = int(np.sum(m & (human == i) & (sc.codes == j)))

    rows = []
    for thr in threshold_grid:
        cfg_t = cfg.model_copy(update={"bout_threshold": thr})
        base = score(kin, cfg_t, blocks)
        for mp in min_passive_grid:
            codes = state_codes(fr, blocks, base.bouts.in_bout, float(mp), cfg.min_bout_s)
            ag, kp, nn = _evaluate(human, codes, keep)
            rows.append(
                {
                    "min_passive_s": float(mp),
                    "bout_threshold": np.nan if thr is None else float(thr),
                    "agreement": ag,
                    "kappa": kp,
                    "n_frames": nn,
                }
            )
    grid = pd.DataFrame(rows)
    cur_thr = cfg.bout_threshold
    dist = np.abs(np.log(grid["min_passive_s"] / cfg.min_passive_s))
    if cur_thr is None:
        dist = dist + grid["bout_threshold"].notna().astype(float)
    else:
        dist = dist + np.abs(np.log(grid["bout_threshold"].fillna(cur_thr) / cur_thr))
    ranked = grid.assign(
        _k=grid["kappa"].fillna(-np.inf), _a=grid["agreement"].fillna(-1), _d=dist
    ).sort_values(["_k", "_a", "_d"], ascending=[False, False, True])
    best = ranked.iloc[0]
    same_thr = grid["bout_threshold"].fillna(-1.0) == (
        -1.0 if np.isnan(best["bout_threshold"]) else best["bout_threshold"]
    )
    near = grid[same_thr & (grid["kappa"] >= best["kappa"] - KAPPA_TOLERANCE)]["min_passive_s"]
    return CalibrationResult(
        agreement=agreement,
        kappa=kappa,
        n_frames=n,
        confusion=conf,
        suggested_min_passive_s=float(best["min_passive_s"]),
        suggested_bout_threshold=None
        if np.isnan(best["bout_threshold"])
        else float(best["bout_threshold"]),
        best_agreement=float(best["agreement"]),
        best_kappa=float(best["kappa"]),
        min_passive_range=(float(near.min()), float(near.max())),
        grid=grid,
    )
