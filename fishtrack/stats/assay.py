"""The assay analyses of an experiment in one place (docs/assay_analyses.md).

The experiment runner calls two functions, so that it needs no knowledge of the analyses:

* :func:`trial_parts` — per trial (it needs the per-frame tables): the per-fish metrics at
  every give-up threshold of ``stats.sensitivity`` and the per-fish onset-locked traces
  (bout rate, vigour and the trial's aligned co-recorded signals);
* :func:`analyse` — on the experiment's per-fish table and the concatenated trial parts:
  give-up sensitivity comparisons, dose–response, time course, onset-locked group averages
  and their before/after tests, and the wide per-fish table.

:func:`write_tables` writes the CSV files (atomically); :mod:`fishtrack.report` draws the
sections.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from fishtrack.config import Config
from fishtrack.io.tables import write_table
from fishtrack.stats.compare import primary_phase
from fishtrack.stats.doseresponse import DoseResponse, dose_response
from fishtrack.stats.eventlocked import (
    group_traces,
    onset_stats,
    pool_fish_traces,
)
from fishtrack.stats.metrics import _OUTPUT_METRICS, FISH_KEYS
from fishtrack.stats.sensitivity import compare_sensitivity
from fishtrack.stats.survival import excluded_rows
from fishtrack.stats.timecourse import TimeCourse, time_course
from fishtrack.stats.trialparts import trial_parts

__all__ = ["AssayResults", "trial_parts", "analyse", "write_tables", "per_fish_wide",
           "WIDE_REPEAT_COLUMNS"]

WIDE_REPEAT_COLUMNS = ("condition", "session", "time_since_treatment_h", "trial")
"""Columns that tell a fish's repeated rows apart in ``per_fish_wide.csv`` (the first that
varies within a fish)."""
_PHASE_COLS = ("phase", "phase_kind", "pooled", "phase_start_s", "phase_end_s")
_QC_COLS = ("n_frames", "detected_fraction", "known_fraction")


@dataclass
class AssayResults:
    """Everything the assay analyses produced for one experiment."""

    phase: str | None = None
    sensitivity: pd.DataFrame = field(default_factory=pd.DataFrame)
    thresholds: list[float] = field(default_factory=list)
    configured_min_passive_s: float | None = None
    dose: DoseResponse = field(default_factory=DoseResponse)
    time: TimeCourse = field(default_factory=TimeCourse)
    traces: pd.DataFrame = field(default_factory=pd.DataFrame)
    group_traces: pd.DataFrame = field(default_factory=pd.DataFrame)
    onset: pd.DataFrame = field(default_factory=pd.DataFrame)
    wide: pd.DataFrame = field(default_factory=pd.DataFrame)
    notes: list[str] = field(default_factory=list)


def _concat(parts) -> pd.DataFrame:
    if isinstance(parts, pd.DataFrame):
        return parts
    parts = [p for p in parts or [] if p is not None and not p.empty]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def analyse(per_fish: pd.DataFrame, parts: dict, config: Config,
            group_stats: pd.DataFrame | None = None) -> AssayResults:
    """Every assay analysis present in the data (module docstring). ``parts``: the
    :func:`trial_parts` of every trial (lists of tables, or tables, per key)."""
    st = config.stats
    res = AssayResults(configured_min_passive_s=config.behaviour.min_passive_s)
    if per_fish is None or per_fish.empty:
        return res
    if group_stats is not None and not group_stats.empty and "role" in group_stats.columns:
        prim = group_stats[group_stats["role"] == "primary"]
        res.phase = str(prim["phase"].iloc[0]) if len(prim) else None
    if res.phase is None:
        phases = list(dict.fromkeys(per_fish["phase"].astype(str)))
        kinds = (list(per_fish.drop_duplicates("phase")["phase_kind"].astype(str))
                 if "phase_kind" in per_fish.columns else None)
        res.phase = primary_phase(phases, st, kinds)
    res.wide = per_fish_wide(per_fish)
    sens = _concat(parts.get("sensitivity"))
    if not sens.empty:
        res.thresholds = sorted(sens["min_passive_s"].unique())
        res.sensitivity = compare_sensitivity(sens, st, phase=res.phase)
    try:
        res.dose = dose_response(per_fish, st, phase=res.phase)
        res.notes += res.dose.notes
    except Exception as err:  # noqa: BLE001 - an optional analysis never stops the report
        res.notes.append(f"dose-response not analysed: {err}")
    try:
        res.time = time_course(per_fish, st, phase=res.phase)
        res.notes += res.time.notes
    except Exception as err:  # noqa: BLE001
        res.notes.append(f"time course not analysed: {err}")
    traces = _concat(parts.get("traces"))
    if not traces.empty:
        traces = pool_fish_traces(traces)
        excluded = _excluded_fish(per_fish)
        shown = traces[~traces["fish_id"].isin(excluded)]
        res.traces = traces
        res.group_traces = group_traces(shown, st.confidence_level)
        res.onset = onset_stats(shown, st)
    return res


def _excluded_fish(per_fish: pd.DataFrame) -> set[str]:
    ex = excluded_rows(per_fish) | per_fish["group"].isna().to_numpy()
    return set(per_fish.loc[ex, "fish_id"].astype(str))


def per_fish_wide(per_fish: pd.DataFrame) -> pd.DataFrame:
    """One row per fish for Prism / R / a spreadsheet: ``fish_id, group``, the manifest
    columns that are constant per fish, then ``<metric>__<phase>`` for every metric and phase
    (``__<column>=<value>`` appended when the fish has several rows in a phase told apart by
    a ``condition``, ``session``, ``time_since_treatment_h`` or ``trial`` column; otherwise
    its rows are averaged and ``n_trials`` counts them). Booleans become 0/1 (averaged over
    trials: a fraction)."""
    if per_fish is None or per_fish.empty:
        return pd.DataFrame()
    pf = per_fish.copy()
    pf["fish_id"] = pf["fish_id"].astype(str)
    pf["phase"] = pf["phase"].astype(str)
    metrics = [c for c in (*_QC_COLS, *_OUTPUT_METRICS) if c in pf.columns]
    skip = set(metrics) | set(_PHASE_COLS) | set(FISH_KEYS) | {"fish_id"}
    per = pf.groupby("fish_id")
    ident = [c for c in pf.columns if c not in skip
             and (per[c].nunique(dropna=False) <= 1).all()]
    repeat = next((c for c in WIDE_REPEAT_COLUMNS if c in pf.columns
                   and (per[c].nunique() > 1).any()), None)
    keys = ["fish_id", "phase"] + ([repeat] if repeat else [])
    values = pf[keys].copy()
    for c in metrics:
        col = pf[c]
        if pd.api.types.is_bool_dtype(col.dtype) or str(col.dtype) == "boolean":
            col = col.astype("Float64")
        values[c] = pd.to_numeric(col, errors="coerce").astype(float)
    long = values.melt(id_vars=keys, value_vars=metrics, var_name="metric")
    long["col"] = long["metric"] + "__" + long["phase"]
    if repeat:
        long["col"] = long["col"] + f"__{repeat}=" + long[repeat].astype(str)
    rank_m = {m: i for i, m in enumerate(metrics)}
    rank_p = {p_: i for i, p_ in enumerate(dict.fromkeys(pf["phase"]))}
    order = (long.assign(_m=long["metric"].map(rank_m), _p=long["phase"].map(rank_p))
             .sort_values(["_m", "_p"] + ([repeat] if repeat else []), kind="stable")["col"])
    wide = long.pivot_table(index="fish_id", columns="col", values="value", aggfunc="mean")
    wide = wide[[c for c in dict.fromkeys(order) if c in wide.columns]]
    head = pf.drop_duplicates("fish_id").set_index("fish_id")[ident]
    out = head.join(wide, how="left")
    out.columns.name = None
    out = out.reset_index()
    if not repeat:
        n = pf.groupby(["fish_id", "phase"]).size().groupby(level=0).max()
        if (n > 1).any():
            out.insert(len(ident) + 1, "n_trials", out["fish_id"].map(n).to_numpy())
    lead = [c for c in ("fish_id", "group") if c in out.columns]
    return out[lead + [c for c in out.columns if c not in lead]]


def write_tables(out: str | Path, res: AssayResults) -> dict[str, Path]:
    """The assay tables of an experiment folder (only those with content)."""
    out = Path(out)
    paths: dict[str, Path] = {}

    def put(name: str, df: pd.DataFrame) -> None:
        path = out / f"{name}.csv"
        if df is not None and not df.empty:
            paths[name] = write_table(df, path)
        elif path.exists():  # stale output of an earlier run
            path.unlink()

    put("per_fish_wide", res.wide)
    put("sensitivity", res.sensitivity)
    put("dose_response", res.dose.trend)
    put("dose_vs_vehicle", res.dose.vs_vehicle)
    put("dose_curve", res.dose.curve)
    put("time_course", res.time.summary)
    tc = []
    if not res.time.per_time.empty:
        tc.append(res.time.per_time.assign(test_kind="groups at one time point"))
    if not res.time.interaction.empty:
        tc.append(res.time.interaction.assign(test_kind="group x time interaction"))
    put("time_course_stats", pd.concat(tc, ignore_index=True) if tc else pd.DataFrame())
    put("onset_locked", res.group_traces)
    put("onset_locked_fish", res.traces)
    put("onset_stats", res.onset)
    return paths
