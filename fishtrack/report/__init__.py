"""Experiment report: figures (``figures.py``, matplotlib only) and a self-contained HTML page
(``html.py``). :func:`write_report` writes ``report.html`` and ``figures/*.png`` / ``*.svg``.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fishtrack.config import Config
from fishtrack.io.provenance import library_versions
from fishtrack.io.tables import write_text
from fishtrack.report.assay import assay_sections
from fishtrack.report.figures import (
    FigureJob,
    behaviour_qc_figure,
    binned_figure,
    detection_figure,
    draw_figure,
    estimation_figure,
    ethogram_figure,
    later,
    rmst_figure,
    survival_figure,
)
from fishtrack.report.html import FigureItem, Section, esc, render_html, table_html
from fishtrack.stats.metrics import METRIC_SPECS

# the statistics the sections use are imported where used: a worker process that draws a
# report figure (:func:`fishtrack.report.figures.draw_figure`) imports this package but no
# scipy.stats (~0.7 s of CPU per worker)

Draw = Callable[..., Any]
"""``draw(fn, *args)`` starts ``fn(*args)`` elsewhere and returns a future (its
``.result()``): how :func:`write_report` draws its figures, each as soon as its section has
queued it (e.g. on the run's worker processes, :meth:`fishtrack.experiment.backends.Backend.submit`)."""

__all__ = [
    "write_report",
    "begin_report",
    "finish_report",
    "ReportDraft",
    "metric_values",
    "metric_differences",
    "main_phase",
    "primary_summary",
    "MAIN_METRICS",
]

MAIN_METRICS = (
    "passive_fraction",
    "latency_to_first_passive_s",
    "n_passive_epochs",
    "bout_rate_hz",
    "mean_bout_vigour_rad_s",
)
"""Metrics with an estimation plot in the report (the primary endpoint is always first)."""


def _label(metric: str, *, unit: bool = True) -> str:
    spec = METRIC_SPECS.get(metric)
    if spec is None:
        return metric
    return f"{spec.label} ({spec.unit})" if unit and spec.unit and spec.unit != "count" else spec.label
LOW_DETECTION = 0.9
"""Fish found in fewer than this fraction of frames are listed in the QC section."""


def metric_values(per_fish: pd.DataFrame, metric: str, phase: str = "open_loop", *,
                  by: str = "group") -> pd.DataFrame:
    """One value per fish (``fish_id, group, value``) of ``metric`` in ``phase``.

    ``phase`` is a phase name or a pooled kind (``open_loop`` pools every open-loop phase;
    see :func:`fishtrack.stats.per_fish_metrics`). Fish with several rows (repeated trials)
    are averaged. ``by="condition"`` (within-fish designs) gives one value per fish per
    condition, in the ``group`` column.
    """
    cols = ["fish_id", "group", "value"]
    if (per_fish.empty or metric not in per_fish.columns or "phase" not in per_fish.columns
            or by not in per_fish.columns):
        return pd.DataFrame(columns=cols)
    sub = per_fish[(per_fish["phase"].astype(str) == phase) & per_fish["group"].notna()]
    if sub.empty:
        return pd.DataFrame(columns=cols)
    v = pd.to_numeric(sub[metric], errors="coerce").astype(float)
    out = sub.assign(value=v, group=sub[by].astype(str))
    return out.groupby(["fish_id", "group"], sort=False)["value"].mean().reset_index()


def metric_differences(group_stats: pd.DataFrame, metric: str, phase: str = "open_loop") -> pd.DataFrame:
    """Rows of ``group_stats`` for ``metric`` in ``phase`` as ``group, difference, ci_low,
    ci_high`` (empty when there are none)."""
    cols = ["group", "difference", "ci_low", "ci_high"]
    need = {"metric", "phase", "group", "diff", "ci_low", "ci_high"}
    if group_stats is None or group_stats.empty or not need <= set(group_stats.columns):
        return pd.DataFrame(columns=cols)
    gs = group_stats[(group_stats["metric"] == metric) & (group_stats["phase"].astype(str) == phase)]
    if "design" in gs.columns and gs["design"].nunique() > 1:  # the main design's rows
        gs = gs[gs["design"] == ("paired" if (gs["design"] == "paired").any() else "between")]
    return pd.DataFrame(
        {
            "group": gs["group"].astype(str).to_numpy(),
            "difference": pd.to_numeric(gs["diff"], errors="coerce").to_numpy(float),
            "ci_low": pd.to_numeric(gs["ci_low"], errors="coerce").to_numpy(float),
            "ci_high": pd.to_numeric(gs["ci_high"], errors="coerce").to_numpy(float),
        }
    )


def main_phase(per_fish: pd.DataFrame) -> str | None:
    """The phase the estimation plots show: the pooled ``open_loop`` rows when there are any,
    else the whole record (``all``, no protocol), else the first phase."""
    if per_fish.empty or "phase" not in per_fish.columns:
        return None
    phases = list(dict.fromkeys(per_fish["phase"].astype(str)))
    for want in ("open_loop", "all"):
        if want in phases:
            return want
    return phases[0] if phases else None


def _survival_curves(per_fish: pd.DataFrame, phase: str) -> pd.DataFrame:
    from fishtrack.stats import kaplan_meier

    return kaplan_meier(per_fish, phase)


def _num(v) -> str:
    return "" if pd.isna(v) else f"{float(v):.3g}"


def _p(v) -> str:
    if pd.isna(v):
        return ""
    return "< 0.001" if float(v) < 0.001 else f"{float(v):.2g}" if float(v) < 0.01 else f"{float(v):.3f}"


def _ci(lo, hi) -> str:
    if pd.isna(lo) or pd.isna(hi):
        return ""
    fmt = [("−∞" if v == -np.inf else "∞" if v == np.inf else _num(v)) for v in (lo, hi)]
    return f"[{fmt[0]}, {fmt[1]}]"


def _stats_table(group_stats: pd.DataFrame, first_phase: str | None, level: float = 0.95) -> pd.DataFrame:
    """The statistics table as shown: primary first, then secondary, then exploratory; CI in
    one column (never adjusted for multiplicity), the p-value's test and the CI's method."""
    if group_stats is None or group_stats.empty:
        return pd.DataFrame()
    gs = group_stats.copy()
    if "role" in gs.columns:
        order = gs["role"].map({"primary": 0, "secondary": 1}).fillna(2)
    else:
        order = (gs["phase"].astype(str) != str(first_phase)).astype(int)
    gs = gs.assign(_o=order).sort_values("_o", kind="stable")
    compared = gs["group"].astype(str) + " vs " + gs["reference"].astype(str)
    if "stratum" in gs.columns:
        st = gs["stratum"].fillna("").astype(str)
        within = np.where(gs.get("design", "") == "paired", " (within fish of " + st + ")",
                          np.where(st != "", " (in " + st + ")", ""))
        compared = compared + within
    out = pd.DataFrame({"role": gs["role"] if "role" in gs.columns else ""})
    out["metric"] = gs["metric"].to_numpy()
    out["phase"] = gs["phase"].to_numpy()
    out["comparison"] = compared.to_numpy()
    out["n fish"] = (gs["n"].astype(str) + " / " + gs["n_reference"].astype(str)).to_numpy()
    out["mean"] = [f"{_num(a)} / {_num(b)}" for a, b in zip(gs["mean"], gs["mean_reference"], strict=True)]
    out["difference"] = gs["diff"].map(_num).to_numpy()
    out[f"{level:.0%} CI (unadjusted)"] = [_ci(lo, hi) for lo, hi in zip(gs["ci_low"], gs["ci_high"], strict=True)]
    out["p"] = gs["p_value"].map(_p).to_numpy()
    out["p (Holm, in family)"] = gs["p_adjusted"].map(_p).to_numpy()
    out["effect size"] = [f"{_num(e)} ({t})" if pd.notna(e) else "" for e, t in
                          zip(gs["effect_size"], gs["effect_size_type"], strict=True)]
    out["test"] = gs["test"].to_numpy()
    if "ci_method" in gs.columns:
        out["CI method"] = gs["ci_method"].fillna("").map(_short_ci_method).to_numpy()
    return out


def _short_ci_method(text: str) -> str:
    """The CI method as shown in the report table (group_stats.csv has the full text)."""
    m = re.match(r"bootstrap percentile over fish \(RMST difference to ([^ ]+) s", text)
    if m:
        return f"bootstrap over fish (RMST, τ = {m.group(1)} s)"
    return {"permutation inversion": "test inversion"}.get(text, text)


def primary_summary(group_stats: pd.DataFrame, config: Config) -> tuple[str, list[str]]:
    """The headline: one pasteable sentence per primary comparison, and a note on the other
    rows. Returns ``(html, sentences)`` (the plain sentences, for tests and scripts)."""
    st = config.stats
    level = f"{st.confidence_level:.0%}"
    metric = st.primary.metric
    label = _label(metric, unit=False)
    prim = (group_stats[group_stats["role"] == "primary"]
            if group_stats is not None and "role" in group_stats.columns else pd.DataFrame())
    where = st.primary.phase or "the pooled open-loop phases"
    if prim.empty:
        text = (f"Primary endpoint ({label} in {where}): not computed"
                f"{' (no such phase in the data)' if st.primary.phase else ''}.")
        return f'<div class="bad"><b>{esc(text)}</b></div>', [text]
    phase = str(prim["phase"].iloc[0])
    phase_txt = {"open_loop": "the open-loop phases (pooled)", "closed_loop":
                 "the closed-loop phases (pooled)", "all": "the whole record"}.get(phase, f"phase {phase}")
    unit = METRIC_UNIT.get(metric, "")
    sentences = []
    n_fam = int(prim["p_value"].notna().sum())
    for _, r in prim.iterrows():
        paired = r.get("design") == "paired"
        who = (f"{r['group']} vs {r['reference']} within fish"
               + (f" of group {r['stratum']}" if r.get("stratum") else "")) if paired else \
              f"{r['group']} vs {r['reference']}"
        n_txt = (f"{r['n']} fish" if paired else f"{r['n']} and {r['n_reference']} fish")
        what = "restricted mean" if metric == "latency_to_first_passive_s" else "mean"
        if pd.isna(r["p_value"]):
            sentences.append(f"Primary endpoint, {label} in {phase_txt}, {who}: not tested "
                             f"({r['test']}); {what} {_num(r['mean'])} vs "
                             f"{_num(r['mean_reference'])}{unit} ({n_txt}).")
            continue
        test = _test_name(str(r["test"]))
        adj = (f"Holm-adjusted over the {n_fam} primary comparisons p = {_p(r['p_adjusted'])}"
               if n_fam > 1 else "a single primary comparison, so no adjustment")
        ci = _ci(r["ci_low"], r["ci_high"]).strip("[]").replace(", ", " to ")
        if np.isfinite([r["ci_low"], r["ci_high"]]).all():
            ci = f"{level} CI {ci}, not adjusted for multiplicity"
        else:
            ci = (f"{level} CI {ci}: unbounded, because with so few fish no difference can be "
                  f"rejected at the {1 - st.confidence_level:.0%} level")
        sentences.append(
            f"Primary endpoint, {label} in {phase_txt}: {who}, {what} {_num(r['mean'])} vs "
            f"{_num(r['mean_reference'])}{unit} ({n_txt}); difference {_num(r['diff'])}{unit} "
            f"({ci}); {test} p = {_p(r['p_value'])} "
            f"({adj})."
        )
    note = ("Every other row of the statistics table is labelled secondary (the other metrics "
            "in the same phase; Holm-adjusted together) or exploratory (other phases and "
            "comparisons; adjusted within their phase only, for orientation). No confidence "
            "interval in this report is adjusted for multiplicity.")
    html = ('<div class="primary">' + "".join(f"<p><b>{esc(t)}</b></p>" for t in sentences)
            + f'<p class="meta">{esc(note)}</p></div>')
    return html, sentences


def _test_name(test: str) -> str:
    """``permutation-exact`` -> ``exact permutation test`` (for the headline sentence)."""
    base = test.split(" (")[0]
    exact = base.endswith("-exact")
    base = base.removesuffix("-exact")
    name = {"permutation": "permutation test", "sign-flip": "sign-flip permutation test",
            "log-rank": "log-rank test", "paired log-rank": "paired log-rank test"}.get(base, base)
    if "repeated trials" in test:
        name = "fish-level permutation test (repeated trials)"
    return ("exact " if exact else "") + name


METRIC_UNIT = {"latency_to_first_passive_s": " s", "mean_passive_epoch_s": " s",
               "mean_bout_duration_s": " s", "bout_rate_hz": " Hz", "mean_beat_hz": " Hz",
               "mean_bout_vigour_rad_s": " rad/s", "mean_bout_effort_rad": " rad",
               "distance_mm": " mm", "distance_px": " px"}


def _latency_estimation(values: pd.DataFrame, reference: str, differences: pd.DataFrame,
                        n_boot: int, seed: int, ylabel: str | None = None, unit: str = "s"):
    """The latency panel: per-fish latencies with censoring, KM RMST per group (common
    horizon, as in the statistics table) with a fish-bootstrap interval, and the table's
    RMST differences. ``(figure, tau)``."""
    job, tau = _latency_job(values, reference, differences, n_boot, seed, ylabel, unit)
    return job.make(), tau


def _latency_job(values: pd.DataFrame, reference: str, differences: pd.DataFrame,
                 n_boot: int, seed: int, ylabel: str | None = None, unit: str = "s"):
    """:func:`_latency_estimation` with the figure to be drawn: ``(FigureJob, tau)``."""
    from fishtrack.stats.compare import cluster_weights
    from fishtrack.stats.survival import weighted_rmst

    v = values.dropna(subset=["value"])
    tau = float(v.groupby("group")["value"].max().min())
    rng = np.random.default_rng(seed)
    rows = []
    for g, sub in v.groupby("group"):
        t, e = sub["value"].to_numpy(float), sub["event"].to_numpy(bool)
        est = float(weighted_rmst(t, e, np.ones(len(t)), tau))
        lo = hi = np.nan
        if len(t) > 1:
            boots = weighted_rmst(t, e, cluster_weights(sub["fish_id"].to_numpy(), n_boot, rng), tau)
            lo, hi = np.quantile(boots, [0.025, 0.975])
        rows.append({"group": g, "rmst": est, "ci_low": lo, "ci_high": hi})
    kw = {"ylabel": ylabel, "unit": unit} if ylabel else {}
    return later(rmst_figure, v, tau=tau, summary=pd.DataFrame(rows), reference=reference,
                 differences=differences, **kw), tau


def _ethogram_rows(ethogram: pd.DataFrame, fish_groups: pd.DataFrame):
    """Ethogram rows and their fish table; a fish recorded in several trials (within-fish
    conditions, repeated trials) gets one row per trial, labelled ``fish_id (trial)``."""
    etho = ethogram
    fish = fish_groups[fish_groups["fish_id"].isin(ethogram["fish_id"])]
    if "trial_dir" in etho.columns:
        n_trials = etho.groupby("fish_id")["trial_dir"].nunique()
        multi = etho["fish_id"].map(n_trials).fillna(1) > 1
        if multi.any():
            label = etho["fish_id"].where(~multi, etho["fish_id"] + " (" + etho["trial_dir"] + ")")
            pairs = etho.assign(label=label)[["fish_id", "label"]].drop_duplicates()
            fish = pairs.merge(fish, on="fish_id").drop(columns="fish_id").rename(
                columns={"label": "fish_id"})
            etho = etho.assign(fish_id=label)
    return etho, fish


def _fish_counts(per_fish: pd.DataFrame, manifest: pd.DataFrame) -> pd.DataFrame:
    man = manifest.drop_duplicates("fish_id")
    tracked = set(per_fish["fish_id"]) if "fish_id" in per_fish.columns else set()
    rows = []
    for g, sub in man.groupby("group", sort=True):
        ex = sub["exclude"].astype(bool)
        rows.append(
            {
                "group": g,
                "fish in manifest": len(sub),
                "excluded": int(ex.sum()),
                "analysed": int((~ex & sub["fish_id"].isin(tracked)).sum()),
                "not tracked": int((~sub["fish_id"].isin(tracked)).sum()),
            }
        )
    return pd.DataFrame(rows)


def _in_place_blind_block(s: Section, per_fish: pd.DataFrame) -> None:
    """The fish whose bouts came from the head's positions only (``in_place_blind`` in
    per_fish.csv): a struggle in place is invisible to them (docs/behaviour.md)."""
    if "in_place_blind" not in per_fish.columns or per_fish.empty:
        return
    key = "fish_id" if "fish_id" in per_fish.columns else None
    fish = per_fish.drop_duplicates(key) if key else per_fish
    blind = fish[fish["in_place_blind"].astype(bool)]
    s.blocks.append("<h3>Behaviour: what the bout signal can see</h3>")
    if blind.empty:
        s.blocks.append(f"<p>All {len(fish)} fish were scored from a signal that sees struggles "
                        "in place (the tail, or the tracker's pixel motion inside the fish; "
                        "<code>bout_signal</code> in per_fish.csv).</p>")
        return
    s.blocks.append(
        f"<p><strong>{len(blind)} of {len(fish)} fish were scored from the head's positions "
        "only</strong> (<code>bout_signal</code> speed, <code>in_place_blind</code> true in "
        "per_fish.csv: imported tracks without a tail or pixels, or a camera below 50 fps). "
        "A struggle that neither moves nor turns the head leaves no trace in positions, so "
        "these fish can be scored <em>more passive</em> than they were. On simulated "
        "25-30 fps tracks never used for tuning (docs/behaviour.md, movement bouts from "
        "speed: 583 larvae) 43 (7 %) were over 0.05 in passive fraction, every one too "
        "passive, 40 of them missing a struggle in place. Where struggles in place matter, "
        "track the video with fishtrack (pixel motion) or record the tail.</p>")
    if len(blind) < len(fish):  # which ones, when not all
        cols = [c for c in ("fish_id", "group", "trial_dir", "video", "arena", "bout_signal")
                if c in blind.columns]
        s.blocks.append(table_html(blind[cols], scroll=True))


def _behaviour_qc_blocks(s: Section, per_fish: pd.DataFrame, behaviour_qc: list[dict],
                         config: Config, save: Callable) -> None:
    """QC of the behaviour stage: measurement noise per trial, fish that do not swim and the
    per-trial vigour figure."""
    rows = []
    for item in behaviour_qc:
        nz = item.get("noise") or {}
        summary = item.get("summary")
        flagged = summary[summary["qc_flags"] != ""] if summary is not None and "qc_flags" in summary \
            else pd.DataFrame()
        rows.append({
            "trial": item.get("trial"),
            "fps": nz.get("fps"),
            # tail (tail vigour) or speed (movement bouts: no tail, or too slow a camera)
            "bouts from": nz.get("bout_signal", "tail"),
            "speed threshold (px/s)": nz.get("bout_threshold_px_s"),
            "pixel motion threshold (grey levels)": nz.get("motion_threshold_grey"),
            "tail noise (rad)": nz.get("tail_noise_rad"),
            "tail noise (deg)": nz.get("tail_noise_deg"),
            "vigour noise (rad/s)": nz.get("vigour_noise_rad_s"),
            "bout threshold (rad/s)": nz.get("bout_threshold_rad_s"),
            "threshold": nz.get("threshold", "not recorded"),
            "fish flagged": len(flagged),
        })
    s.blocks.append("<h3>Behaviour: measurement noise</h3>")
    if rows:
        s.blocks.append(
            "<p>Tail-angle noise per frame and vigour of the still tail, measured per fish on "
            "its frames away from every bout (median over the fish of each trial), and the "
            "bout threshold derived from them (see docs/behaviour.md). A trial whose noise is "
            "far above the others' has poorer tail tracking. 'bouts from' speed: no tail in the "
            "tracks or a frame rate below 50 fps, so bouts are movements of the head, with a "
            "threshold from the noise of the positions (docs/behaviour.md, movement bouts from "
            "speed); speed_motion: the head's speed or the pixel motion inside the fish "
            "(the tracker's motion_energy, which sees struggles in place), the pixel-motion "
            "threshold from the quiet frames of all fish of the trial.</p>")
        s.blocks.append(table_html(pd.DataFrame(rows), scroll=True))
    else:
        s.blocks.append("<p><em>No behaviour noise recorded (trials scored by an older "
                        "fishtrack).</em></p>")
    _in_place_blind_block(s, per_fish)
    s.blocks.append("<h3>Fish that do not swim</h3>")
    if "qc_no_swimming" in per_fish.columns and not per_fish.empty:
        ns = per_fish[per_fish["qc_no_swimming"].astype(bool)].drop_duplicates("fish_id")
        how = ("excluded from the group statistics (<code>stats.exclude_no_swimming: "
               "true</code>)" if config.stats.exclude_no_swimming else
               "kept in the group statistics (<code>stats.exclude_no_swimming: false</code>)")
        s.blocks.append(f"<p>{len(ns)} fish made no bout outside open loop "
                        f"(<code>qc_no_swimming</code> in per_fish.csv); {how}.</p>")
        if len(ns):
            cols = [c for c in ("fish_id", "group", "trial_dir", "video", "arena", "exclude",
                                "exclude_reason") if c in ns.columns]
            s.blocks.append(table_html(ns[cols]))
    for item in behaviour_qc:
        summary = item.get("summary")
        if summary is None or summary.empty:
            continue
        name = f"behaviour_qc_{item['trial']}"
        png = save(later(behaviour_qc_figure, summary, title=str(item["trial"])), name)
        sig = str(summary["bout_signal"].iloc[0]) if "bout_signal" in summary else "tail"
        what = ("Each fish's head speed (px/s, the movement-bout signal)"
                + (" and, below, its pixel motion (grey levels)" if sig == "speed_motion" else "")
                if sig in ("speed", "speed_motion")
                else "Each fish's vigour (tail-angle travel per second)")
        s.figures.append(FigureItem(
            name, f"Behaviour QC, {item['trial']}", png,
            f"{what}: grey bar 5th-95th percentile, "
            "box 25th-75th, dot 99.9th; black: its noise level, red: its bout threshold; bout "
            "count on top. Orange fish carry QC flags (listed above the plot): no_bouts, "
            "noise_pooled (too little quiet time to measure its own noise), noisy_tail (tail "
            "noise > 3x the trial's median), mostly_unseen."))


def write_report(
    out: str | Path,
    *,
    group_stats: pd.DataFrame,
    notes: list[str] | None = None,
    versions: dict[str, str] | None = None,
    assay=None,
    **tables: Any,
) -> dict[str, Path]:
    """Write ``out/report.html`` and ``out/figures/*.png|svg``: :func:`begin_report` with
    ``tables`` (every keyword below but ``group_stats``, ``notes``, ``versions`` and
    ``assay``; its signature is their one definition), then :func:`finish_report` with those.

    Parameters
    ----------
    per_fish, bins, group_stats
        The statistics tables (``per_fish.csv``, ``per_fish_bins.csv``, ``group_stats.csv``).
    ethogram
        ``fish_id, bin_start_s, state`` (majority state per bin of ``ethogram_bin_s``).
    qc
        ``fish_id, arena, fish, trial_dir, detection_rate`` per analysed fish.
    trials
        One row per trial: ``trial, video, complete`` and, when complete, ``n_frames,
        damaged_frames, n_wells_tracked, n_fish_analysed, corrections``.
    manifest
        The manifest table (:attr:`fishtrack.experiment.Manifest.table`).
    notes
        Warnings shown in the summary.
    design_notes
        Design checks (confounds; :func:`fishtrack.stats.design.design_warnings`), shown in
        the quality-control section.
    behaviour_qc
        Per trial ``{"trial", "noise", "summary"}``: the recording's behaviour noise
        (provenance ``behaviour_noise``) and the per-fish vigour summary
        (:func:`fishtrack.behaviour.qc.vigour_summary`); shown in the QC section.
    assay
        :class:`fishtrack.stats.assay.AssayResults` (sensitivity, dose–response, time
        course, onset-locked averages); the effort, struggle and recovery sections come from
        ``per_fish`` and ``group_stats`` alone.
    draw
        How the figures are drawn (:data:`Draw`; e.g. on the worker processes of a run, as
        ``fishtrack run --workers 2`` does): each figure is handed to ``draw`` as soon as its
        section queues it, while this process builds the next sections; a figure whose call
        fails is drawn here. ``None``: all in this process, after the sections. The figures
        are the same either way.

    Returns
    -------
    dict
        ``{"report": path, "figures": folder}``.
    """
    draft = begin_report(out, **tables)
    return finish_report(draft, group_stats=group_stats, notes=notes, versions=versions,
                         assay=assay)


@dataclass
class ReportDraft:
    """A report begun before the group statistics exist (:func:`begin_report`): its context
    and the sections that need no comparison (quality control, ethogram, binned passive
    fraction), whose figures are already queued on ``draw``."""

    out: Path
    c: _Context
    per_fish: pd.DataFrame
    trials: pd.DataFrame
    manifest: pd.DataFrame
    qc: Section
    ethogram: Section
    bins: Section


def begin_report(
    out: str | Path,
    *,
    per_fish: pd.DataFrame,
    bins: pd.DataFrame,
    ethogram: pd.DataFrame,
    ethogram_bin_s: float,
    qc: pd.DataFrame,
    trials: pd.DataFrame,
    manifest: pd.DataFrame,
    config: Config,
    protocol=None,
    design_notes: list[str] | None = None,
    behaviour_qc: list[dict] | None = None,
    draw: Draw | None = None,
) -> ReportDraft:
    """The first part of :func:`write_report` (same arguments): the sections that need no
    group statistics, their figures queued on ``draw`` at once, so that a run's workers draw
    them while this process compares the groups (issue 15: the workers idled through the
    comparisons of a 2-worker run). :func:`finish_report` adds the rest and writes the
    report; the report is the same as :func:`write_report`'s."""
    out = Path(out)
    fig_dir = out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    analysed = per_fish
    if "exclude" in per_fish.columns and not per_fish.empty:
        analysed = per_fish[~per_fish["exclude"].astype(bool)]
    c = _Context(
        config=config, ref=config.stats.reference_group,
        n_boot=min(config.stats.n_bootstrap, 5000), seed=config.stats.seed,
        protocol=list(protocol or []),
        fish_groups=manifest[["fish_id", "group", "exclude"]].drop_duplicates("fish_id"),
        analysed=analysed, fig_dir=fig_dir, written=[], draw=draw,
    )
    return ReportDraft(
        out=out, c=c, per_fish=per_fish, trials=trials, manifest=manifest,
        qc=_qc_section(c, per_fish, qc, trials, design_notes, behaviour_qc),
        ethogram=_ethogram_section(c, ethogram, ethogram_bin_s),
        bins=_bins_section(c, bins),
    )


def finish_report(
    draft: ReportDraft,
    *,
    group_stats: pd.DataFrame,
    notes: list[str] | None = None,
    versions: dict[str, str] | None = None,
    assay=None,
) -> dict[str, Path]:
    """The rest of a report begun by :func:`begin_report` (the summary, metrics, give-up
    curves, assay and statistics sections), its figures drawn, and ``report.html`` written;
    ``{"report": path, "figures": folder}``."""
    c, out, config = draft.c, draft.out, draft.c.config
    phase, paired = _headline_phase(group_stats, c.analysed)
    sections = [
        _summary_section(c, draft.per_fish, group_stats, draft.trials, draft.manifest,
                         list(notes or [])),
        draft.qc,
        draft.ethogram,
        _metrics_section(c, group_stats, phase, paired),
        _survival_section(c, phase),
        draft.bins,
        *assay_sections(assay, c.analysed, group_stats, config,
                        c.save, n_boot=c.n_boot, seed=c.seed),
        _statistics_section(c, group_stats, phase),
    ]
    _draw_figures(c, sections)
    # stale figures from earlier runs go
    keep = {p.name for p in c.written}
    for p in c.fig_dir.glob("*"):
        if p.suffix in (".png", ".svg") and p.name not in keep:
            p.unlink(missing_ok=True)
    vers = dict(library_versions())
    if versions:
        vers.update(versions)
    text = render_html(sections, title="fishtrack experiment report", config=config,
                       versions=vers, subtitle=f"Experiment folder: {out.resolve()}.")
    report = write_text(out / "report.html", text)
    return {"report": report, "figures": c.fig_dir}


@dataclass
class _Context:
    """What the report's sections share: the config, the reference group, the bootstrap
    settings, the protocol, the manifest's fish and groups, the analysed per-fish rows, and
    where the figures go (``fig_dir``; ``written`` lists those made this run)."""

    config: Config
    ref: str
    n_boot: int
    seed: int
    protocol: list
    fish_groups: pd.DataFrame
    analysed: pd.DataFrame
    fig_dir: Path
    written: list[Path]
    draw: Draw | None = None
    jobs: list[tuple[tuple, Any]] = field(default_factory=list)
    """Queued figures: ``(draw_figure's arguments, future or None)``."""

    def save(self, job: FigureJob, name: str) -> _Pending:
        """Queue a figure for ``fig_dir`` (PNG and SVG, remembered in ``written``; started on
        ``draw`` now); its PNG bytes, filled in by :func:`_draw_figures`, go into the
        section's :class:`FigureItem`."""
        args = (job, str(self.fig_dir), name)
        self.jobs.append((args, self.draw(draw_figure, *args) if self.draw else None))
        self.written += [self.fig_dir / f"{name}.png", self.fig_dir / f"{name}.svg"]
        return _Pending(len(self.jobs) - 1)


@dataclass(frozen=True)
class _Pending:
    """The PNG of the ``index``-th queued figure of a report, not drawn yet."""

    index: int


def _draw_figures(c: _Context, sections: list[Section]) -> None:
    """The queued figures drawn (waited for when started on ``c.draw``, else drawn here, as
    is one whose worker failed) and their PNG bytes put into the sections' figures."""
    pngs = []
    for args, fut in c.jobs:
        png = None
        if fut is not None:
            with contextlib.suppress(Exception):  # e.g. a worker lost: drawn here
                png = fut.result()
        pngs.append(png if isinstance(png, bytes) else draw_figure(*args))
    for s in sections:
        for f in s.figures:
            if isinstance(f.png, _Pending):
                f.png = pngs[f.png.index]


def _headline_phase(group_stats: pd.DataFrame, analysed: pd.DataFrame) -> tuple[str, bool]:
    """The phase of the primary rows (else the data's main phase) and whether the primary
    comparison is paired (conditions within fish)."""
    prim = (group_stats[group_stats["role"] == "primary"]
            if not group_stats.empty and "role" in group_stats.columns else pd.DataFrame())
    phase = str(prim["phase"].iloc[0]) if len(prim) else main_phase(analysed)
    paired = bool(len(prim)) and bool((prim["design"] == "paired").any())
    return phase, paired


def _summary_section(c: _Context, per_fish: pd.DataFrame, group_stats: pd.DataFrame,
                     trials: pd.DataFrame, manifest: pd.DataFrame, notes: list[str]) -> Section:
    """The headline result, fish per group, exclusions, notes and the trials table."""
    config, ref, fish_groups, analysed = c.config, c.ref, c.fish_groups, c.analysed
    s = Section("summary", "Summary")
    head_html, _ = primary_summary(group_stats, config)
    s.blocks.append(head_html)
    n_complete = int(trials["complete"].sum()) if "complete" in trials else 0
    s.blocks.append(
        f"<p>{len(trials)} trial(s), {n_complete} with complete outputs; "
        f"{fish_groups['fish_id'].nunique()} fish in the manifest, "
        f"{analysed['fish_id'].nunique() if 'fish_id' in analysed else 0} analysed. "
        f"Reference group: <b>{esc(ref)}</b>"
        + (f"; reference condition: <b>{esc(config.stats.reference_condition)}</b>"
           if config.stats.reference_condition and "condition" in manifest.columns else "")
        + ".</p>"
    )
    incomplete = trials[~trials["complete"].astype(bool)] if "complete" in trials else trials.iloc[0:0]
    for _, r in incomplete.iterrows():
        s.blocks.append(f'<div class="bad">Trial <b>{esc(r["trial"])}</b> ({esc(r["video"])}) has no '
                        "complete outputs (failed or not run); its fish are missing from the "
                        "statistics.</div>")
    s.blocks.append("<h3>Fish per group</h3>" + table_html(_fish_counts(per_fish, manifest)))
    ex = manifest[manifest["exclude"].astype(bool)]
    if len(ex):
        cols = ["fish_id", "group", "video", "arena", "exclude_reason"]
        s.blocks.append("<h3>Excluded fish</h3>" + table_html(ex[[c for c in cols if c in ex]]))
    n_corr = int(trials.get("corrections", pd.Series(dtype=float)).fillna(0).sum()) if len(trials) else 0
    if n_corr:
        s.blocks.append(
            f'<div class="note">Manual corrections (<code>corrections.csv</code>) were applied: '
            f"{n_corr} frame(s) relabelled before the metrics were computed (see the trials "
            "table).</div>"
        )
    for note in notes:
        s.blocks.append(f'<div class="note">{esc(note)}</div>')
    cols = [c for c in ("trial", "video", "complete", "n_frames", "damaged_frames", "n_wells_tracked",
                        "n_fish_analysed", "corrections") if c in trials.columns]
    s.blocks.append("<h3>Trials</h3>" + table_html(trials[cols], scroll=True))
    return s


def _qc_section(c: _Context, per_fish: pd.DataFrame, qc: pd.DataFrame, trials: pd.DataFrame,
                design_notes: list[str] | None, behaviour_qc: list[dict] | None) -> Section:
    """Detection rates, design checks and the behaviour QC."""
    config, ref, fish_groups = c.config, c.ref, c.fish_groups
    s = Section("qc", "Quality control")
    if not qc.empty and "detection_rate" in qc.columns:
        q = qc.merge(fish_groups[["fish_id", "group"]], on="fish_id", how="left")
        png = c.save(later(detection_figure, q, reference=ref), "detection_rate")
        s.figures.append(FigureItem("detection_rate", "Detection rate per fish", png,
                                    "Fraction of frames in which each fish was found; dashed "
                                    f"line: {LOW_DETECTION:.0%}."))
        low = q[q["detection_rate"] < LOW_DETECTION].sort_values("detection_rate")
        s.blocks.append(f"<p>{len(low)} fish found in fewer than {LOW_DETECTION:.0%} of frames.</p>")
        if len(low):
            s.blocks.append(table_html(low[["fish_id", "group", "trial_dir", "arena", "detection_rate"]]))
        if "damaged_frames" in trials.columns:
            dmg = int(trials["damaged_frames"].fillna(0).sum())
            s.blocks.append(f"<p>Damaged frames found while decoding: {dmg} (per trial in the "
                            "Trials table).</p>")
    else:
        s.blocks.append("<p><em>No tracked fish.</em></p>")
    s.blocks.append("<h3>Design checks</h3>")
    if design_notes:
        s.blocks.extend(f'<div class="bad">{esc(n)}</div>' for n in design_notes)
    else:
        s.blocks.append("<p>No treatment aligned with plate rows or columns, no video holding a "
                        "single group, one protocol.</p>")
    _behaviour_qc_blocks(s, per_fish, behaviour_qc or [], config, c.save)
    return s


def _ethogram_section(c: _Context, ethogram: pd.DataFrame, ethogram_bin_s: float) -> Section:
    """Every fish's state over time, grouped by treatment."""
    ref, protocol, fish_groups = c.ref, c.protocol, c.fish_groups
    s = Section("ethogram", "Ethogram")
    if not ethogram.empty:
        etho, etho_fish = _ethogram_rows(ethogram, fish_groups)
        fig = later(ethogram_figure, etho, etho_fish, bin_s=ethogram_bin_s, protocol=protocol,
                    reference=ref)
        png = c.save(fig, "ethogram")
        s.figures.append(FigureItem("ethogram", "Ethogram", png,
                                    f"State of every fish over time (majority state per "
                                    f"{ethogram_bin_s:.3g} s bin), grouped by treatment; white: "
                                    "no data. Protocol phases on top (of the experiment config, "
                                    "or of the first trial when the config has none)."))
    else:
        s.blocks.append("<p><em>No per-frame states.</em></p>")
    return s


def _metrics_section(c: _Context, group_stats: pd.DataFrame, phase: str, paired: bool) -> Section:
    """Estimation plots of the primary and secondary metrics in the headline phase."""
    config, ref, n_boot, seed, analysed = c.config, c.ref, c.n_boot, c.seed, c.analysed
    by, ref_shown = ("condition", config.stats.reference_condition) if paired else ("group", ref)
    what = {"open_loop": "open-loop phases (pooled)", "all": "the whole record (no protocol)"}
    s = Section("metrics", f"Metrics in {what.get(phase, phase or 'phases')}")
    s.blocks.append(
        "<p>Every fish (dots) with its group's mean and 95% percentile-bootstrap interval "
        "(black; descriptive), and on the right the difference from the "
        f"{'reference condition, fish by fish' if paired else 'reference group'} with the "
        "confidence interval of the statistics table (the interval that goes with the row's "
        "test). The primary endpoint comes first; the others are secondary.</p>")
    shown = [config.stats.primary.metric] + [m for m in MAIN_METRICS
                                             if m != config.stats.primary.metric]
    surv_rows = None
    from fishtrack.stats import survival_table

    for m in shown:
        role = "primary" if m == config.stats.primary.metric else "secondary"
        diffs = metric_differences(group_stats, m, phase) if phase else pd.DataFrame()
        if m == "latency_to_first_passive_s" and phase:
            if surv_rows is None and {"latency_to_first_passive_s", "latency_censored"} <= set(analysed.columns):
                surv_rows = survival_table(analysed)
            lat = pd.DataFrame() if surv_rows is None else surv_rows[surv_rows["phase"] == phase]
            if paired and "condition" in lat.columns:
                lat = lat.assign(group=lat["condition"])
            if lat.empty:
                s.blocks.append(f"<p><em>{esc(m)}: no latencies.</em></p>")
                continue
            vals = lat.rename(columns={"time_s": "value"})[["fish_id", "group", "value", "event"]]
            fig, tau = _latency_job(vals, ref_shown, diffs, n_boot, seed)
            in_phase = analysed[analysed["phase"].astype(str) == phase]
            never = int(in_phase.loc[pd.to_numeric(in_phase[m], errors="coerce").isna(),
                                     "fish_id"].nunique())
            png = c.save(fig, f"estimation_{m}")
            s.figures.append(FigureItem(
                f"estimation_{m}", f"{m} ({role})", png,
                f"{_label(m)} ({role}): every fish (open circles: never gave up, censored at the "
                "end of its observation), each group's Kaplan–Meier restricted mean latency up "
                f"to τ = {tau:.3g} s with a fish-bootstrap 95% interval (squares), and the "
                "difference of restricted means with its interval from the statistics table. "
                "The p-value of that row is the log-rank test's, which compares the whole "
                "give-up curves (next section)."
                + (f" {never} fish never swam in this phase (never at risk of giving up) and "
                   "have no latency." if never else "")))
            continue
        vals = metric_values(analysed, m, phase, by=by) if phase else pd.DataFrame()
        if vals.empty or not np.isfinite(vals["value"].to_numpy(float)).any():
            s.blocks.append(f"<p><em>{esc(m)}: no values.</em></p>")
            continue
        fig = later(estimation_figure, vals, metric=m, reference=ref_shown, differences=diffs,
                    n_boot=n_boot, seed=seed, ylabel=_label(m))
        png = c.save(fig, f"estimation_{m}")
        s.figures.append(FigureItem(f"estimation_{m}", f"{m} ({role})", png,
                                    f"{_label(m)} ({role})"))
    return s


def _survival_section(c: _Context, phase: str) -> Section:
    """Kaplan-Meier give-up curves of each open-loop phase."""
    ref, protocol, analysed = c.ref, c.protocol, c.analysed
    s = Section("survival", "Give-up curves (Kaplan–Meier)")
    open_phases = [p.name for p in protocol if p.kind == "open_loop"]
    surv_phases = (["open_loop"] if len(open_phases) > 1 else []) + open_phases[:4]
    if not surv_phases and phase == "all":
        surv_phases = ["all"]
    if not surv_phases:
        s.blocks.append("<p><em>No open-loop phase in the protocol.</em></p>")
    for ph in surv_phases:
        curves = _survival_curves(analysed, ph) if not analysed.empty else pd.DataFrame()
        if curves.empty:
            s.blocks.append(f"<p><em>{esc(ph)}: no latencies.</em></p>")
            continue
        label = "all open-loop phases (concatenated time at risk)" if ph == "open_loop" else ph
        png = c.save(later(survival_figure, curves, reference=ref, title=label), f"survival_{ph}")
        s.figures.append(FigureItem(f"survival_{ph}", f"Give-up curve {label}", png,
                                    f"Fraction of fish that have not yet given up in {label}, "
                                    "over the time since their first swim in the phase (0 for a "
                                    "fish swimming at the onset; shaded: 95% CI); fish that "
                                    "never gave up are censored at their last observed frame, "
                                    "fish that never swam in the phase are not at risk."))
    return s


def _bins_section(c: _Context, bins: pd.DataFrame) -> Section:
    """Passive fraction over time, one panel per phase."""
    config, ref, protocol, fish_groups, analysed = (
        c.config, c.ref, c.protocol, c.fish_groups, c.analysed)
    s = Section("bins", "Passive fraction over time")
    if not bins.empty:
        b = bins
        if "group" not in b.columns:
            b = b.merge(fish_groups[["fish_id", "group"]], on="fish_id", how="left")
        if "exclude" in b.columns:
            b = b[~b["exclude"].astype(bool)]
        else:
            b = b[b["fish_id"].isin(analysed["fish_id"])] if "fish_id" in analysed else b
        png = c.save(later(binned_figure, b, protocol=protocol, reference=ref),
                     "passive_fraction_bins")
        s.figures.append(FigureItem(
            "passive_fraction_bins", "Passive fraction over time", png,
            f"Group mean (95% t interval over fish) in {config.stats.bin_s:g} s bins, one panel "
            "per phase, aligned to the phase's onset (videos with different protocols are "
            "pooled only at the same time since the same phase began); shading: green "
            "closed-loop, red open-loop. Lower strip: number of fish in every bin."))
    else:
        s.blocks.append("<p><em>No binned data.</em></p>")
    return s


def _statistics_section(c: _Context, group_stats: pd.DataFrame, phase: str) -> Section:
    """The statistics table and how to read it."""
    config, ref = c.config, c.ref
    s = Section("statistics", "Statistics")
    st = config.stats
    s.blocks.append(
        f"<p>Groups compared with <b>{esc(ref)}</b>; fish are the unit of analysis. "
        f"Primary endpoint: <b>{esc(st.primary.metric)}</b> in <b>{esc(phase or '-')}</b> "
        "(<code>stats.primary</code>); secondary: the other metrics in that phase; exploratory: "
        "everything else. p (Holm) is adjusted within the row's family (the primary "
        "comparisons; the secondary rows; each exploratory phase). Confidence intervals are not "
        "adjusted for multiplicity; the CI method column says how each was made "
        "(<i>permutation inversion</i>: the shifts the row's own test does not reject, so it "
        "excludes 0 exactly when p ≤ "
        f"{1 - st.confidence_level:.2g}). {st.n_permutations} permutations, "
        f"{st.n_bootstrap} bootstrap resamples, seed {st.seed}. Full table: "
        "<code>group_stats.csv</code>.</p>"
    )
    s.blocks.append(table_html(_stats_table(group_stats, phase, st.confidence_level), scroll=True))
    return s
