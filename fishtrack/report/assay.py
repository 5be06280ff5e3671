"""Report sections of the assay analyses (docs/assay_analyses.md): effort before giving up,
struggle, recovery, give-up sensitivity, dose–response, time course and onset-locked
averages. Each section appears only when its analysis has data."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from fishtrack.config import Config
from fishtrack.report.figures import (
    dose_response_figure,
    event_locked_figure,
    later,
    sensitivity_figure,
    struggle_figure,
    survival_figure,
    time_course_figure,
)
from fishtrack.report.html import FigureItem, Section, esc, table_html

__all__ = ["assay_sections"]

Save = Callable[..., object]


def _label(metric: str) -> str:
    from fishtrack.report import _label as label

    return label(metric)


def _num(v) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)) or pd.isna(v):
        return "" if v is None or pd.isna(v) else ("−∞" if v < 0 else "∞")
    return f"{float(v):.3g}"


def _stat_rows(gs: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Rows of a statistics table as shown (estimate, interval, p, Holm p, test)."""
    if gs is None or gs.empty:
        return pd.DataFrame()
    out = pd.DataFrame({
        c: gs[c].to_numpy() for c in ("metric", "phase", "group", "reference", "time_label",
                                      "event", "signal", "comparison", "dose")
        if c in gs.columns})
    if "n" in gs.columns:
        ref_n = gs["n_reference"] if "n_reference" in gs.columns else pd.Series("", gs.index)
        out["n fish"] = [f"{a} / {b}" if pd.notna(b) and b != "" else f"{a}"
                         for a, b in zip(gs["n"], ref_n, strict=True)]
    for a, b in (("mean", "mean_reference"), ("mean_before", "mean_after")):
        if a in gs.columns and b in gs.columns:
            out[f"{a} / {b}".replace("_", " ")] = [f"{_num(x)} / {_num(y)}" for x, y in
                                                   zip(gs[a], gs[b], strict=True)]
    est = "diff" if "diff" in gs.columns else "slope"
    out["estimate"] = gs[est].map(_num).to_numpy()
    out[f"{level:.0%} CI"] = [f"[{_num(lo)}, {_num(hi)}]" if pd.notna(lo) else "" for lo, hi
                              in zip(gs["ci_low"], gs["ci_high"], strict=True)]
    out["p"] = gs["p_value"].map(_p).to_numpy()
    if "p_adjusted" in gs.columns:
        out["p (Holm)"] = gs["p_adjusted"].map(_p).to_numpy()
    out["test"] = gs["test"].to_numpy()
    return out


def _p(v) -> str:
    if pd.isna(v):
        return ""
    v = float(v)
    return "< 0.001" if v < 0.001 else f"{v:.2g}" if v < 0.01 else f"{v:.3f}"


def _rows(group_stats: pd.DataFrame, metrics, phase=None) -> pd.DataFrame:
    if group_stats is None or group_stats.empty:
        return pd.DataFrame()
    gs = group_stats[group_stats["metric"].isin(list(metrics))]
    if phase is not None:
        gs = gs[gs["phase"].astype(str) == str(phase)]
    if "design" in gs.columns and gs["design"].nunique() > 1:
        gs = gs[gs["design"] == ("paired" if (gs["design"] == "paired").any() else "between")]
    return gs


def _censored_figure(analysed, metric, censor, phase, ref, diffs, n_boot, seed, ylabel,
                     unit="s"):
    from fishtrack.report import _latency_job
    from fishtrack.stats import survival_table

    if metric not in analysed.columns or censor not in analysed.columns:
        return None, None
    rows = survival_table(analysed, metric, censor)
    rows = rows[rows["phase"] == str(phase)]
    if rows.empty or rows["group"].nunique() < 1:
        return None, None
    vals = rows.rename(columns={"time_s": "value"})[["fish_id", "group", "value", "event"]]
    return _latency_job(vals, ref, diffs, n_boot, seed, ylabel=ylabel, unit=unit)


def _effort(analysed, group_stats, config, phase, save, n_boot, seed) -> Section | None:
    from fishtrack.report import metric_differences
    from fishtrack.stats import kaplan_meier

    m = "n_bouts_before_giveup"
    if phase is None or m not in analysed.columns or not analysed[m].notna().any():
        return None
    ref = config.stats.reference_group
    s = Section("effort", "Effort before giving up")
    s.blocks.append(
        "<p>How hard each fish tried before it first gave up in "
        f"<b>{esc(phase)}</b>: the number of swim bouts, and their summed effort (the integral "
        "of |tail velocity|, rad), from the phase onset to its first give-up. A fish that "
        "never gave up contributes the bouts it made while observed as a lower bound "
        "(censored, open circles), exactly like the latency, so groups are compared by the "
        "restricted mean (RMST) and the log-rank test. Radial astroglia integrate failed "
        "swim attempts (Mu et al. 2019); ketamine-treated fish need a bigger struggle before "
        "giving up (Duque et al. 2025).</p>")
    for metric, ylabel, unit in (
            (m, "bouts before the first give-up", "bouts"),
            ("effort_before_giveup_rad", "effort before the first give-up (rad)", "rad")):
        diffs = metric_differences(group_stats, metric, phase)
        fig, tau = _censored_figure(analysed, metric, "latency_censored", phase, ref, diffs,
                                    n_boot, seed, ylabel, unit)
        if fig is None:
            continue
        name = f"effort_{metric}"
        s.figures.append(FigureItem(name, ylabel, save(fig, name),
                                    f"{ylabel}: every fish and each group's restricted mean "
                                    f"up to τ = {tau:.3g} with a fish-bootstrap 95% interval; "
                                    "right: the difference from the reference group with the "
                                    "interval of the statistics table."))
    curves = kaplan_meier(analysed, phase, metric=m, censor="latency_censored")
    if not curves.empty:
        fig = later(survival_figure, curves, reference=ref,
                    title=f"{phase}: give-up curve over bouts",
                    xlabel="swim bouts since the phase began")
        s.figures.append(FigureItem("effort_curve", "Give-up curve over bouts",
                                    save(fig, "effort_curve"),
                                    "Fraction of fish that have not yet given up after a given "
                                    "number of swim bouts (Kaplan–Meier, 95% band)."))
    s.blocks.append(table_html(_stat_rows(_rows(group_stats, [m, "effort_before_giveup_rad"],
                                                 phase))))
    return s


def _struggle(analysed, group_stats, config, phase, save) -> Section | None:
    cols = ["baseline_bout_rate_hz", "struggle_bout_rate_hz", "baseline_vigour_rad_s",
            "struggle_vigour_rad_s", "struggle_rate_ratio", "struggle_vigour_ratio"]
    if phase is None or not set(cols) <= set(analysed.columns):
        return None
    rows = analysed[analysed["phase"].astype(str) == str(phase)]
    if not rows["struggle_bout_rate_hz"].notna().any():
        return None
    w = config.stats.struggle_window_s
    per = rows.groupby(["fish_id", "group"], as_index=False)[cols].mean()
    s = Section("struggle", "Struggle")
    s.blocks.append(
        f"<p>Bout rate and vigour in the first {w:g} s of open loop (<code>"
        f"stats.struggle_window_s</code>) against the last {w:g} s of the closed loop before "
        f"it, per fish, in <b>{esc(phase)}</b>. The group × loop interaction is the "
        "difference between groups of the per-fish change (open − closed loop): a "
        "difference-in-differences, tested by permuting fish (rows "
        "<code>struggle_rate_change_hz</code> and <code>struggle_vigour_change_rad_s</code> "
        "of the statistics table).</p>")
    fig = later(struggle_figure, per, reference=config.stats.reference_group, window_s=w)
    s.figures.append(FigureItem("struggle", "Struggle", save(fig, "struggle"),
                                "Each fish: closed loop (CL) and open loop (OL), joined; "
                                "black: group means."))
    summ = per.groupby("group")[cols].mean().reset_index()
    summ.insert(1, "n fish", per.groupby("group").size().to_numpy())
    s.blocks.append("<h3>Group means</h3>" + table_html(summ))
    s.blocks.append("<h3>Group × loop interaction</h3>" + table_html(_stat_rows(_rows(
        group_stats, ["struggle_rate_change_hz", "struggle_vigour_change_rad_s"], phase))))
    return s


def _recovery(analysed, group_stats, config, save, n_boot, seed) -> Section | None:
    from fishtrack.report import metric_differences

    if "recovery_s" not in analysed.columns:
        return None
    have = analysed[analysed["recovery_s"].notna()]
    phases = list(dict.fromkeys(have["phase"].astype(str)))
    if not phases:
        return None
    ref = config.stats.reference_group
    s = Section("recovery", "Recovery")
    s.blocks.append(
        "<p>Time from the start of a closed-loop phase (feedback restored) to the first bout, "
        "for the fish that were passive when it began (the others are not in this analysis, "
        "so the groups compared are the fish still passive at that moment, a selected "
        "subset). Fish that never swam again are censored at their last observed frame.</p>")
    for ph in phases[:3]:
        diffs = metric_differences(group_stats, "recovery_s", ph)
        fig, tau = _censored_figure(analysed, "recovery_s", "recovery_censored", ph, ref, diffs,
                                    n_boot, seed, "time to the first bout (s)")
        if fig is None:
            continue
        name = f"recovery_{ph}"
        s.figures.append(FigureItem(name, f"Recovery in {ph}", save(fig, name),
                                    f"{ph}: recovery of the fish passive at its onset; "
                                    f"restricted mean up to τ = {tau:.3g} s."))
    s.blocks.append(table_html(_stat_rows(_rows(group_stats, ["recovery_s"]))))
    return s


def _sensitivity(assay, config, save) -> Section | None:
    t = assay.sensitivity
    if t is None or t.empty:
        return None
    from fishtrack.stats.sensitivity import SENSITIVITY_METRICS

    metrics = list(dict.fromkeys([config.stats.primary.metric, *SENSITIVITY_METRICS]))
    s = Section("sensitivity", "Give-up sensitivity")
    s.blocks.append(
        "<p>The headline comparisons recomputed with other definitions of a give-up: the "
        "states re-derived from the same bouts for each <code>min_passive_s</code> "
        f"({', '.join(f'{v:g}' for v in assay.thresholds)} s; dashed: the configured "
        f"{assay.configured_min_passive_s:g} s). A result that holds at one threshold only "
        "is fragile. Filled: p ≤ 0.05 (unadjusted); bars: the rows' intervals. Bout rate "
        "and vigour do not depend on the threshold. Table: <code>sensitivity.csv</code>.</p>")
    fig = later(sensitivity_figure, t, metrics=metrics,
                configured=assay.configured_min_passive_s,
                reference=config.stats.reference_group, labels={m: _label(m) for m in metrics})
    s.figures.append(FigureItem("sensitivity", "Give-up sensitivity", save(fig, "sensitivity"),
                                "Difference from the reference group against min_passive_s."))
    return s


def _dose(assay, config, save) -> Section | None:
    d = assay.dose
    if d is None or d.empty:
        return None
    metrics = list(d.trend["metric"])
    s = Section("dose", "Dose–response")
    s.blocks.append(
        f"<p>Per-fish values in <b>{esc(assay.phase)}</b> against <code>dose</code>. Trend: "
        f"the slope on the dose scores (<code>stats.dose_scale: {esc(config.stats.dose_scale)}"
        "</code>), p from permuting doses among fish (within blocks when present) with the "
        "interval that inverts that test. Curve: the model in the table, with a 95% band "
        "from a bootstrap of fish within dose levels. Every dose is also compared with "
        "vehicle (Holm over the doses of each metric). Tables: <code>dose_response.csv</code>, "
        "<code>dose_vs_vehicle.csv</code>, <code>dose_curve.csv</code>.</p>")
    fig = later(dose_response_figure, d.fish, d.curve, metrics=metrics,
                labels={m: _label(m) for m in metrics}, scale=config.stats.dose_scale)
    s.figures.append(FigureItem("dose_response", "Dose–response", save(fig, "dose_response"),
                                "Dots: fish; black: dose means; red: fitted curve and band."))
    tr = d.trend.copy()
    shown = pd.DataFrame({
        "metric": tr["metric"], "fish": tr["n_fish"], "doses": tr["n_doses"],
        "slope (per dose step)" if config.stats.dose_scale == "rank" else "slope": tr["slope"].map(_num),
        "95% CI": [f"[{_num(a)}, {_num(b)}]" for a, b in zip(tr["ci_low"], tr["ci_high"],
                                                             strict=True)],
        "p": tr["p_value"].map(_p), "test": tr["test"], "model": tr["model"],
        "EC50 [95% CI]": [f"{_num(e)} [{_num(a)}, {_num(b)}]" if pd.notna(e) else ""
                          for e, a, b in zip(tr.get("ec50", pd.Series(np.nan, tr.index)),
                                             tr.get("ec50_low", pd.Series(np.nan, tr.index)),
                                             tr.get("ec50_high", pd.Series(np.nan, tr.index)),
                                             strict=True)],
    })
    s.blocks.append("<h3>Trend</h3>" + table_html(shown))
    s.blocks.append("<h3>Every dose against vehicle</h3>" + table_html(_stat_rows(d.vs_vehicle)))
    return s


def _time(assay, config, save) -> Section | None:
    t = assay.time
    if t is None or t.empty:
        return None
    metrics = list(dict.fromkeys(t.summary["metric"])) if not t.summary.empty else []
    col = t.time_column
    s = Section("timecourse", "Time course after treatment")
    s.blocks.append(
        f"<p>Metrics in <b>{esc(assay.phase)}</b> against <code>{esc(col)}</code> "
        f"({esc(t.design)}). The group × time interaction is "
        + ("the difference between groups of the per-fish slopes over time (fish relabelled "
           "between groups)" if t.design == "within fish" else
           "the change of the group difference per unit of time, from a least-squares model "
           "with one value per fish, tested by the Freedman–Lane permutation within time "
           "points")
        + "; at every time point the groups are compared with the statistics table's tests "
        "(Holm over the time points of each metric). Tables: <code>time_course.csv</code>, "
        "<code>time_course_stats.csv</code>.</p>")
    if metrics:
        fig = later(time_course_figure, t.summary, t.fish, metrics=metrics,
                    reference=config.stats.reference_group,
                    labels={m: _label(m) for m in metrics},
                    xlabel=("time since treatment (h)"
                            if col == "time_since_treatment_h" else col),
                    within=t.design == "within fish")
        s.figures.append(FigureItem("time_course", "Time course", save(fig, "time_course"),
                                    "Group means with 95% t intervals over fish; thin: fish."))
    s.blocks.append("<h3>Group × time interaction</h3>" + table_html(_stat_rows(t.interaction)))
    s.blocks.append("<h3>Groups at every time point</h3>"
                    + table_html(_stat_rows(t.per_time), scroll=True))
    return s


def _onset(assay, config, save) -> Section | None:
    g = assay.group_traces
    if g is None or g.empty:
        return None
    st = config.stats
    s = Section("onset", "Onset-locked averages")
    signals = [x for x in dict.fromkeys(g["signal"]) if str(x).startswith("signal:")]
    s.blocks.append(
        f"<p>Activity{' and co-recorded signals' if signals else ''} aligned to every give-up "
        "onset in open loop, to every open-loop onset (feedback removed) and to every "
        "closed-loop onset after an open loop (feedback restored): "
        f"{st.event_pre_s:g} s before to {st.event_post_s:g} s after, in {st.event_bin_s:g} s "
        "bins; per fish first (its events pooled), then the group mean over fish with a 95% t "
        "interval. Below: the change from the window before to the window after the onset, "
        "within each group (sign-flip test over fish) and against the reference group "
        "(difference-in-differences). Tables: <code>onset_locked.csv</code>, "
        "<code>onset_locked_fish.csv</code>, <code>onset_stats.csv</code>.</p>")
    if signals:
        s.blocks.append("<p>Co-recorded signals (aligned with <code>fishtrack align</code>): "
                        + esc(", ".join(x.removeprefix("signal:") for x in signals)) + ".</p>")
    fig = later(event_locked_figure, g, reference=st.reference_group)
    s.figures.append(FigureItem("onset_locked", "Onset-locked averages", save(fig, "onset_locked"),
                                "Rows: bout rate, bout vigour and each co-recorded signal; "
                                "columns: event kinds; dashed: the onset."))
    s.blocks.append(table_html(_stat_rows(assay.onset), scroll=True))
    return s


def assay_sections(assay, analysed: pd.DataFrame, group_stats: pd.DataFrame, config: Config,
                   save: Save, *, n_boot: int, seed: int) -> list[Section]:
    """The report sections of the assay analyses present in the data (``save(job, name)``
    queues a figure, a :class:`~fishtrack.report.figures.FigureJob`, for PNG and SVG and
    returns its PNG for the section's :class:`FigureItem`)."""
    phase = getattr(assay, "phase", None)
    if phase is None and group_stats is not None and "role" in group_stats.columns:
        prim = group_stats[group_stats["role"] == "primary"]
        phase = str(prim["phase"].iloc[0]) if len(prim) else None
    out = [_effort(analysed, group_stats, config, phase, save, n_boot, seed),
           _struggle(analysed, group_stats, config, phase, save),
           _recovery(analysed, group_stats, config, save, n_boot, seed)]
    if assay is not None:
        out += [_sensitivity(assay, config, save), _dose(assay, config, save),
                _time(assay, config, save), _onset(assay, config, save)]
        if assay.notes:
            n = Section("assay_notes", "Notes on the assay analyses")
            n.blocks += [f'<div class="note">{esc(x)}</div>' for x in assay.notes]
            out.append(n)
    return [s for s in out if s is not None]
