"""Human corrections of behavioural epochs (``corrections.csv`` in a trial folder).

A correction says: for fish ``fish``, the time interval ``[start_s, end_s)`` is really
``state``, where ``state`` is ``active``, ``passive`` or ``exclude`` (leave this time out of
the analysis, e.g. the fish was hidden by a bubble). ``original_state`` is what the classifier
had said and ``created_utc`` when the correction was made. The napari widget writes these
rows; the statistics honour them through :func:`apply_corrections` (per-frame tracks) and
:func:`apply_corrections_to_epochs` (epoch table). Nothing here imports Qt or napari.

Rules
-----
* A tracks row is corrected when its fish matches and ``start_s <= time_s < end_s``.
* An epoch is corrected when corrections of its fish cover more than half of its duration
  (corrections are made per epoch, so normally the interval is exactly the epoch's). Excluded
  time becomes state ``excluded``. With ``merge=True`` neighbouring epochs of one fish that
  touch in time and now have the same state are merged into one.
* When several corrections overlap, the later row (the later ``created_utc``) wins.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from fishtrack.errors import FishtrackError
from fishtrack.io.tables import read_table, require_columns, write_table

__all__ = [
    "CORRECTION_COLUMNS",
    "CORRECTION_STATES",
    "EXCLUDED",
    "FILENAME",
    "empty_corrections",
    "load_corrections",
    "save_corrections",
    "add_correction",
    "remove_correction",
    "apply_corrections",
    "apply_corrections_to_epochs",
]

FILENAME = "corrections.csv"
CORRECTION_COLUMNS = ("fish", "start_s", "end_s", "state", "original_state", "created_utc")
CORRECTION_STATES = ("active", "passive", "exclude")
EXCLUDED = "excluded"
"""State given to excluded frames and epochs by :func:`apply_corrections`."""

_EPS = 1e-6  # s; tolerance for times that went through a CSV file


def empty_corrections() -> pd.DataFrame:
    """A corrections table with no rows and the right columns."""
    return pd.DataFrame(
        {
            "fish": pd.Series(dtype=object),
            "start_s": pd.Series(dtype=float),
            "end_s": pd.Series(dtype=float),
            "state": pd.Series(dtype=object),
            "original_state": pd.Series(dtype=object),
            "created_utc": pd.Series(dtype=object),
        }
    )


def _corrections_path(path: str | Path) -> Path:
    path = Path(path)
    return path / FILENAME if path.is_dir() or path.suffix == "" else path


def validate_corrections(df: pd.DataFrame, *, source: str = "corrections") -> pd.DataFrame:
    """Check columns, states and intervals; return a clean copy (fish as str, times float)."""
    require_columns(df, CORRECTION_COLUMNS, source, hint=f"; expected {', '.join(CORRECTION_COLUMNS)}")
    out = df[list(CORRECTION_COLUMNS)].copy()
    if out.empty:
        return empty_corrections()
    out["fish"] = out["fish"].astype(str)
    out["state"] = out["state"].astype(str).str.strip().str.lower()
    out["original_state"] = out["original_state"].fillna("").astype(str)
    out["created_utc"] = out["created_utc"].fillna("").astype(str)
    for col in ("start_s", "end_s"):
        vals = pd.to_numeric(out[col], errors="coerce")
        if vals.isna().any():
            row = int(np.flatnonzero(vals.isna().to_numpy())[0])
            raise FishtrackError(f"{source}: row {row + 1}: {col} is not a number ({df[col].iloc[row]!r})")
        out[col] = vals.astype(float)
    bad = ~out["state"].isin(CORRECTION_STATES)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise FishtrackError(
            f"{source}: row {row + 1}: state {out['state'].iloc[row]!r} is not one of "
            f"{', '.join(CORRECTION_STATES)}"
        )
    bad = out["end_s"] <= out["start_s"]
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise FishtrackError(f"{source}: row {row + 1}: end_s must be greater than start_s")
    return out.reset_index(drop=True)


def load_corrections(path: str | Path) -> pd.DataFrame:
    """Read ``corrections.csv`` from a trial folder (or a path to the file).

    Returns an empty table (with the columns of :data:`CORRECTION_COLUMNS`) when the file does
    not exist. Raises :class:`~fishtrack.errors.FishtrackError` naming the file when it is
    malformed.
    """
    path = _corrections_path(path)
    if not path.exists():
        return empty_corrections()
    try:
        df = read_table(path) if path.stat().st_size else empty_corrections()
    except FishtrackError:
        raise
    except Exception as err:  # noqa: BLE001
        raise FishtrackError(f"{path}: cannot read corrections ({err})") from None
    if df.empty and len(df.columns) == 0:
        return empty_corrections()
    return validate_corrections(df, source=str(path))


def save_corrections(corrections: pd.DataFrame, path: str | Path) -> Path:
    """Write the corrections table atomically to ``path`` (a trial folder or a ``.csv`` path)."""
    path = _corrections_path(path)
    clean = validate_corrections(corrections, source=str(path))
    return write_table(clean, path)


def _now_utc() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def add_correction(
    corrections: pd.DataFrame,
    *,
    fish: str,
    start_s: float,
    end_s: float,
    state: str,
    original_state: str,
    created_utc: str | None = None,
) -> pd.DataFrame:
    """Return ``corrections`` with one more row.

    A previous correction of exactly the same interval of the same fish is replaced. Setting
    an interval back to its ``original_state`` removes its correction (it is then an undo).
    """
    state = str(state).strip().lower()
    if state not in CORRECTION_STATES:
        raise FishtrackError(f"correction state {state!r} is not one of {', '.join(CORRECTION_STATES)}")
    if not end_s > start_s:
        raise FishtrackError(f"correction of fish {fish}: end_s ({end_s}) must exceed start_s ({start_s})")
    out = remove_correction(corrections, fish=fish, start_s=start_s, end_s=end_s)
    if state == str(original_state):
        return out
    row = pd.DataFrame(
        [{
            "fish": str(fish),
            "start_s": float(start_s),
            "end_s": float(end_s),
            "state": state,
            "original_state": str(original_state),
            "created_utc": created_utc or _now_utc(),
        }]
    )
    return validate_corrections(pd.concat([out, row], ignore_index=True) if len(out) else row)


def remove_correction(corrections: pd.DataFrame, *, fish: str, start_s: float, end_s: float) -> pd.DataFrame:
    """Return ``corrections`` without the row(s) for exactly this fish and interval."""
    c = validate_corrections(corrections)
    same = (
        (c["fish"] == str(fish))
        & (np.abs(c["start_s"] - float(start_s)) < _EPS)
        & (np.abs(c["end_s"] - float(end_s)) < _EPS)
    )
    return c[~same].reset_index(drop=True)


def _corrected_state(state: str) -> str:
    return EXCLUDED if state == "exclude" else state


def apply_corrections(tracks: pd.DataFrame, corrections: pd.DataFrame) -> pd.DataFrame:
    """Per-frame tracks with the corrections applied (a new table; the input is not changed).

    Rows of a corrected fish with ``start_s <= time_s < end_s`` get the corrected ``state``
    (``exclude`` becomes ``excluded``); the table gains a bool column ``corrected``. Rows are
    never dropped or renumbered.

    Parameters
    ----------
    tracks
        Table with ``fish``, ``time_s`` and ``state`` columns.
    corrections
        As returned by :func:`load_corrections`.
    """
    for col in ("fish", "time_s", "state"):
        if col not in tracks.columns:
            raise FishtrackError(f"tracks: no {col!r} column; cannot apply corrections")
    corr = validate_corrections(corrections)
    out = tracks.copy()
    state = out["state"].astype(object).to_numpy(copy=True)
    corrected = np.zeros(len(out), bool)
    if len(corr) and len(out):
        fish = out["fish"].astype(str).to_numpy()
        t = out["time_s"].to_numpy(float)
        for fish_id, rows in corr.groupby("fish", sort=False):
            idx = np.flatnonzero(fish == fish_id)
            if not idx.size:
                continue
            tf = t[idx]
            for r in rows.itertuples(index=False):  # few rows: one per corrected epoch
                hit = idx[(tf >= r.start_s - _EPS) & (tf < r.end_s - _EPS)]
                state[hit] = _corrected_state(r.state)
                corrected[hit] = True
    out["state"] = state
    out["corrected"] = corrected
    return out


def apply_corrections_to_epochs(
    epochs: pd.DataFrame, corrections: pd.DataFrame, *, merge: bool = True
) -> pd.DataFrame:
    """Epoch table with the corrections applied (a new table).

    An epoch whose time is covered for more than half by corrections of its fish takes the
    state of the correction covering most of it (``exclude`` -> ``excluded``). Adds columns
    ``original_state`` and ``corrected``. With ``merge``, touching epochs of one fish that now
    share a state are merged (start of the first, end of the last, ``phase`` of the first,
    ``censored`` if any part was).
    """
    for col in ("fish", "state", "start_s", "end_s"):
        if col not in epochs.columns:
            raise FishtrackError(f"epochs: no {col!r} column; cannot apply corrections")
    corr = validate_corrections(corrections)
    out = epochs.copy().reset_index(drop=True)
    out["original_state"] = out["state"].astype(object)
    out["corrected"] = False
    if out.empty:
        return out
    if len(corr):
        fish = out["fish"].astype(str).to_numpy()
        s = out["start_s"].to_numpy(float)
        e = out["end_s"].to_numpy(float)
        dur = np.maximum(e - s, _EPS)
        state = out["state"].astype(object).to_numpy(copy=True)
        best = np.zeros(len(out))
        total = np.zeros(len(out))
        for r in corr.itertuples(index=False):
            m = fish == r.fish
            ov = np.clip(np.minimum(e, r.end_s) - np.maximum(s, r.start_s), 0, None) * m
            total += ov
            win = ov >= best - _EPS  # later rows win ties
            win &= ov > 0
            state[win] = _corrected_state(r.state)
            best = np.where(win, ov, best)
        hit = total > 0.5 * dur
        out["state"] = np.where(hit, state, out["state"].astype(object).to_numpy())
        out["corrected"] = hit
    if merge:
        out = _merge_touching(out)
    if "duration_s" in out.columns:
        out["duration_s"] = out["end_s"] - out["start_s"]
    return out


def _merge_touching(ep: pd.DataFrame) -> pd.DataFrame:
    """Merge neighbouring epochs of one fish that touch in time and share a state."""
    keys = ["fish", "arena"] if "arena" in ep.columns else ["fish"]
    ep = ep.assign(_fish=ep["fish"].astype(str)).sort_values(["_fish", "start_s"], kind="stable")
    ep = ep.reset_index(drop=True)
    same_fish = np.r_[False, ep["_fish"].to_numpy()[1:] == ep["_fish"].to_numpy()[:-1]]
    st = ep["state"].astype(str).to_numpy()
    touch = np.r_[False, np.abs(ep["start_s"].to_numpy(float)[1:] - ep["end_s"].to_numpy(float)[:-1]) < 1e-4]
    cont = same_fish & touch & np.r_[False, st[1:] == st[:-1]]
    if not cont.any():
        return ep.drop(columns="_fish")
    gid = np.cumsum(~cont)
    agg: dict[str, str] = {c: "first" for c in ep.columns if c not in ("_fish",)}
    agg.update({"end_s": "last"})
    for c in ("end_frame",):
        if c in ep.columns:
            agg[c] = "last"
    for c in ("censored", "corrected"):
        if c in ep.columns:
            agg[c] = "max"
    merged = ep.groupby(gid, sort=False).agg(agg).reset_index(drop=True)
    orig = ep.groupby(gid, sort=False)["original_state"].agg(
        lambda v: v.iloc[0] if v.nunique() == 1 else "+".join(pd.unique(v.astype(str)))
    ) if "original_state" in ep.columns else None
    if orig is not None:
        merged["original_state"] = orig.to_numpy()
    for c in ("censored", "corrected"):
        if c in merged.columns:
            merged[c] = merged[c].astype(bool)
    for k in keys:  # keep the original dtypes of key columns
        merged[k] = merged[k].astype(ep[k].dtype)
    return merged
