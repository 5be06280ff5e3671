"""Protocol phases: from the config or from a stimulus log CSV, and phase look-up.

Phases are half-open intervals ``[start_s, end_s)`` in seconds from the first frame. A time
outside every phase has no phase (``None``; empty in CSV files).

Stimulus log formats accepted by :func:`load_protocol_log` (CSV; comma, semicolon or tab
separated; header names are case-insensitive):

1. **Interval table** — one row per phase: ``name, kind, start_s, end_s``.
2. **Event log** — one row per phase start: ``time_s, phase`` (and optionally ``kind``). Each
   phase lasts until the next row. A final row whose ``phase`` is ``end`` (or ``stop``) closes
   the last phase; without it, pass ``end_s`` (e.g. the video duration). A phase name that
   repeats (alternating blocks) is numbered: ``open_loop``, ``open_loop_2``, ...

``kind`` is ``closed_loop``, ``open_loop`` or ``other`` (``closed-loop``, ``Open loop`` etc.
are accepted). When the column is absent, or a cell is empty, the kind is inferred from the
name: names containing "open" are ``open_loop``, names containing "closed" ``closed_loop``,
anything else ``other``.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import ValidationError

from fishtrack.config import Phase
from fishtrack.errors import ConfigError

__all__ = ["load_protocol_log", "assign_phase", "validate_protocol", "phase_kinds"]

_END_WORDS = {"end", "stop"}
_KINDS = {"closed_loop", "open_loop", "other"}


def _norm_kind(value: object, name: str, path: Path, line: int) -> str:
    text = "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)
    text = re.sub(r"[\s\-]+", "_", text.strip().lower())
    if text in ("closedloop",):
        text = "closed_loop"
    if text in ("openloop",):
        text = "open_loop"
    if not text:
        low = name.lower()
        return "open_loop" if "open" in low else "closed_loop" if "closed" in low else "other"
    if text not in _KINDS:
        raise ConfigError(
            f"{path}: line {line}: kind {value!r} is not one of closed_loop, open_loop, other"
        )
    return text


def _read_csv(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise ConfigError(f"{path}: protocol log not found")
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder, expected a protocol log CSV")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text; save the protocol log as a UTF-8 CSV") from None
    if not text.strip():
        raise ConfigError(f"{path}: protocol log is empty")
    first = text.splitlines()[0]
    sep = max([",", ";", "\t"], key=first.count)
    try:
        df = pd.read_csv(
            path,
            sep=sep,
            encoding="utf-8-sig",
            dtype=str,
            skipinitialspace=True,
            keep_default_na=False,
            quoting=csv.QUOTE_MINIMAL,
        )
    except (pd.errors.ParserError, ValueError) as err:
        raise ConfigError(
            f"{path}: not a readable CSV table ({str(err).splitlines()[0]})"
        ) from None
    df.columns = [str(c).strip().lower() for c in df.columns]
    df = df.apply(lambda col: col.str.strip())
    df = df[~(df == "").all(axis=1)]
    if df.empty:
        raise ConfigError(f"{path}: protocol log has a header but no rows")
    return df


def _number(df: pd.DataFrame, col: str, path: Path) -> np.ndarray:
    vals = pd.to_numeric(df[col], errors="coerce")
    bad = ~np.isfinite(vals.to_numpy(dtype=float))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        line = int(df.index[i]) + 2
        raise ConfigError(f"{path}: line {line}: {col} {df[col].iloc[i]!r} is not a number")
    return vals.to_numpy(dtype=float)


def _phase(path: Path, line: int, **kw) -> Phase:
    try:
        return Phase(**kw)
    except ValidationError as err:
        msg = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'phase'}: {e['msg'].replace('Value error, ', '')}"
            for e in err.errors()
        )
        raise ConfigError(f"{path}: line {line}: {msg}") from None


def load_protocol_log(path: str | Path, *, end_s: float | None = None) -> list[Phase]:
    """Read protocol phases from a stimulus log CSV (formats in the module docstring).

    Parameters
    ----------
    path
        CSV file.
    end_s
        End of the last phase for an event log without a final ``end`` row (s).

    Returns
    -------
    list of Phase
        In time order, validated (no overlaps).

    Raises
    ------
    ConfigError
        Missing file, unreadable CSV, missing columns, non-numeric or decreasing times,
        unknown kinds, overlapping phases, or an open-ended last phase.
    """
    path = Path(path)
    df = _read_csv(path)
    cols = set(df.columns)
    phases: list[Phase] = []
    if {"name", "start_s", "end_s"} <= cols:
        starts, ends = _number(df, "start_s", path), _number(df, "end_s", path)
        kinds = df["kind"] if "kind" in cols else pd.Series([""] * len(df), index=df.index)
        for i, (name, k, a, b) in enumerate(zip(df["name"], kinds, starts, ends, strict=True)):
            line = int(df.index[i]) + 2
            if not name:
                raise ConfigError(f"{path}: line {line}: empty phase name")
            kind = _norm_kind(k, name, path, line)
            phases.append(_phase(path, line, name=name, kind=kind, start_s=a, end_s=b))
        names = [p.name for p in phases]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ConfigError(f"{path}: phase names must be unique; repeated: {', '.join(dup)}")
    elif {"time_s", "phase"} <= cols:
        times = _number(df, "time_s", path)
        if np.any(np.diff(times) <= 0):
            i = int(np.flatnonzero(np.diff(times) <= 0)[0]) + 1
            raise ConfigError(
                f"{path}: line {int(df.index[i]) + 2}: time_s must increase from row to row"
            )
        names = df["phase"].tolist()
        kinds = df["kind"].tolist() if "kind" in cols else [""] * len(df)
        is_end = [str(n).strip().lower() in _END_WORDS for n in names]
        if any(is_end[:-1]):
            i = is_end.index(True)
            raise ConfigError(
                f"{path}: line {int(df.index[i]) + 2}: '{names[i]}' must be the last row"
            )
        n_phase = len(names) - (1 if is_end[-1] else 0)
        if n_phase == 0:
            raise ConfigError(f"{path}: protocol log has no phase rows")
        if is_end[-1]:
            last_end = times[-1]
        elif end_s is not None:
            last_end = float(end_s)
        else:
            raise ConfigError(
                f"{path}: the last phase has no end; add a final row with phase 'end' and "
                "the time the protocol stops"
            )
        seen: dict[str, int] = {}
        for i in range(n_phase):
            line = int(df.index[i]) + 2
            base = str(names[i])
            if not base:
                raise ConfigError(f"{path}: line {line}: empty phase name")
            seen[base] = seen.get(base, 0) + 1
            name = base if seen[base] == 1 else f"{base}_{seen[base]}"
            stop = times[i + 1] if i + 1 < len(times) else last_end
            kind = _norm_kind(kinds[i], base, path, line)
            phases.append(_phase(path, line, name=name, kind=kind, start_s=times[i], end_s=stop))
    else:
        raise ConfigError(
            f"{path}: unrecognised protocol log columns ({', '.join(df.columns)}); expected "
            "'name, kind, start_s, end_s' (one row per phase) or 'time_s, phase[, kind]' "
            "(one row per phase start)"
        )
    validate_protocol(phases, source=str(path))
    return sorted(phases, key=lambda p: p.start_s)


def validate_protocol(protocol: Sequence[Phase], *, source: str = "protocol") -> None:
    """Raise :class:`ConfigError` when phases overlap or names repeat."""
    ph = sorted(protocol, key=lambda p: p.start_s)
    for a, b in zip(ph, ph[1:], strict=False):
        if b.start_s < a.end_s - 1e-9:
            raise ConfigError(
                f"{source}: phases overlap: {a.name!r} ({a.start_s:g}-{a.end_s:g} s) and "
                f"{b.name!r} ({b.start_s:g}-{b.end_s:g} s)"
            )
    names = [p.name for p in ph]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"{source}: phase names must be unique; repeated: {', '.join(dup)}")


def assign_phase(times, protocol: Sequence[Phase] | None) -> np.ndarray:
    """Name of the phase containing each time (``None`` outside every phase).

    Parameters
    ----------
    times
        Array-like of times (s from the first frame).
    protocol
        Phases; intervals are half-open ``[start_s, end_s)``.

    Returns
    -------
    numpy.ndarray
        Object array of phase names / ``None``, same shape as ``times``.
    """
    t = np.asarray(times, dtype=float)
    out = np.full(t.shape, None, dtype=object)
    if not protocol:
        return out
    validate_protocol(protocol)
    ph = sorted(protocol, key=lambda p: p.start_s)
    starts = np.array([p.start_s for p in ph])
    ends = np.array([p.end_s for p in ph])
    names = np.array([p.name for p in ph], dtype=object)
    k = np.searchsorted(starts, t, side="right") - 1
    kc = np.clip(k, 0, len(ph) - 1)
    inside = (k >= 0) & (t < ends[kc])
    out[inside] = names[kc[inside]]
    return out


def phase_kinds(protocol: Sequence[Phase] | None) -> dict[str, str]:
    """Map phase name -> kind."""
    return {p.name: p.kind for p in (protocol or [])}
