"""Experiment report: figures (``figures.py``, matplotlib only) and a self-contained HTML page
(``html.py``). :func:`write_report` writes ``report.html`` and ``figures/*.png`` / ``*.svg``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fishtrack.config import Config
from fishtrack.report.figures import (
    behaviour_qc_figure,
    binned_figure,
    detection_figure,
    estimation_figure,
    ethogram_figure,
    figure_bytes,
    survival_figure,
)
from fishtrack.report.html import FigureItem, Section, esc, render_html, table_html

__all__ = ["write_report", "metric_values", "metric_differences", "main_phase", "MAIN_METRICS"]

MAIN_METRICS = (
    "passive_fraction",
    "latency_to_first_passive_s",
    "n_passive_epochs",
    "bout_rate_hz",
    "mean_vigour",
)
_LABELS = {
    "passive_fraction": "passive fraction",
    "latency_to_first_passive_s": "latency to first passive epoch (s)",
    "n_passive_epochs": "passive epochs (count)",
    "bout_rate_hz": "bout rate (Hz)",
    "mean_vigour": "mean bout vigour (rad/s)",
}
LOW_DETECTION = 0.9
"""Fish found in fewer than this fraction of frames are listed in the QC section."""


def metric_values(per_fish: pd.DataFrame, metric: str, phase: str = "open_loop") -> pd.DataFrame:
    """One value per fish (``fish_id, group, value``) of ``metric`` in ``phase``.

    ``phase`` is a phase name or a pooled kind (``open_loop`` pools every open-loop phase;
    see :func:`fishtrack.stats.per_fish_metrics`). Fish with several rows (repeated trials)
    are averaged.
    """
    cols = ["fish_id", "group", "value"]
    if per_fish.empty or metric not in per_fish.columns or "phase" not in per_fish.columns:
        return pd.DataFrame(columns=cols)
    sub = per_fish[(per_fish["phase"].astype(str) == phase) & per_fish["group"].notna()]
    if sub.empty:
        return pd.DataFrame(columns=cols)
    v = pd.to_numeric(sub[metric], errors="coerce").astype(float)
    out = sub.assign(value=v, group=sub["group"].astype(str))
    return out.groupby(["fish_id", "group"], sort=False)["value"].mean().reset_index()


def metric_differences(group_stats: pd.DataFrame, metric: str, phase: str = "open_loop") -> pd.DataFrame:
    """Rows of ``group_stats`` for ``metric`` in ``phase`` as ``group, difference, ci_low,
    ci_high`` (empty when there are none)."""
    cols = ["group", "difference", "ci_low", "ci_high"]
    need = {"metric", "phase", "group", "diff", "ci_low", "ci_high"}
    if group_stats is None or group_stats.empty or not need <= set(group_stats.columns):
        return pd.DataFrame(columns=cols)
    gs = group_stats[(group_stats["metric"] == metric) & (group_stats["phase"].astype(str) == phase)]
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


def _stats_table(group_stats: pd.DataFrame, first_phase: str | None) -> pd.DataFrame:
    """The statistics table as shown: the main phase first, CI in one column."""
    if group_stats is None or group_stats.empty:
        return pd.DataFrame()
    gs = group_stats.copy()
    order = (gs["phase"].astype(str) != str(first_phase)).astype(int)
    gs = gs.assign(_o=order).sort_values("_o", kind="stable")

    def num(v) -> str:
        return "" if pd.isna(v) else f"{float(v):.3g}"

    return pd.DataFrame(
        {
            "metric": gs["metric"],
            "phase": gs["phase"],
            "group vs reference": gs["group"].astype(str) + " vs " + gs["reference"].astype(str),
            "n": gs["n"].astype(str) + " / " + gs["n_reference"].astype(str),
            "mean": [f"{num(a)} / {num(b)}" for a, b in zip(gs["mean"], gs["mean_reference"], strict=True)],
            "difference [95% CI]": [
                f"{num(d)} [{num(lo)}, {num(hi)}]" if pd.notna(lo) else num(d)
                for d, lo, hi in zip(gs["diff"], gs["ci_low"], gs["ci_high"], strict=True)
            ],
            "p": gs["p_value"].map(num),
            "p (Holm)": gs["p_adjusted"].map(num),
            "effect size": [f"{num(e)} ({t})" if pd.notna(e) else "" for e, t in
                            zip(gs["effect_size"], gs["effect_size_type"], strict=True)],
            "test": gs["test"],
        }
    )


def _save(fig, name: str, folder: Path, written: list[Path]) -> bytes:
    from fishtrack.io.tables import write_bytes

    png = figure_bytes(fig, "png")
    write_bytes(folder / f"{name}.png", png)
    write_bytes(folder / f"{name}.svg", figure_bytes(fig, "svg"))
    written += [folder / f"{name}.png", folder / f"{name}.svg"]
    return png


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


def _behaviour_qc_blocks(s: Section, per_fish: pd.DataFrame, behaviour_qc: list[dict],
                         config: Config, fig_dir: Path, written: list[Path]) -> None:
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
            "far above the others' has poorer tail tracking.</p>")
        s.blocks.append(table_html(pd.DataFrame(rows), scroll=True))
    else:
        s.blocks.append("<p><em>No behaviour noise recorded (trials scored by an older "
                        "fishtrack).</em></p>")
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
        png = _save(behaviour_qc_figure(summary, title=str(item["trial"])), name, fig_dir, written)
        s.figures.append(FigureItem(
            name, f"Behaviour QC, {item['trial']}", png,
            "Each fish's vigour (tail-angle travel per second): grey bar 5th-95th percentile, "
            "box 25th-75th, dot 99.9th; black: its noise level, red: its bout threshold; bout "
            "count on top. Orange fish carry QC flags (listed above the plot): no_bouts, "
            "noise_pooled (too little quiet time to measure its own noise), noisy_tail (tail "
            "noise > 3x the trial's median), mostly_unseen."))


def write_report(
    out: str | Path,
    *,
    per_fish: pd.DataFrame,
    bins: pd.DataFrame,
    group_stats: pd.DataFrame,
    ethogram: pd.DataFrame,
    ethogram_bin_s: float,
    qc: pd.DataFrame,
    trials: pd.DataFrame,
    manifest: pd.DataFrame,
    config: Config,
    protocol=None,
    notes: list[str] | None = None,
    versions: dict[str, str] | None = None,
    behaviour_qc: list[dict] | None = None,
) -> dict[str, Path]:
    """Write ``out/report.html`` and ``out/figures/*.png|svg``.

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
    behaviour_qc
        Per trial ``{"trial", "noise", "summary"}``: the recording's behaviour noise
        (provenance ``behaviour_noise``) and the per-fish vigour summary
        (:func:`fishtrack.behaviour.qc.vigour_summary`); shown in the QC section.

    Returns
    -------
    dict
        ``{"report": path, "figures": folder}``.
    """
    from fishtrack.io.provenance import library_versions
    from fishtrack.io.tables import write_text

    out = Path(out)
    fig_dir = out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    ref = config.stats.reference_group
    n_boot = min(config.stats.n_bootstrap, 5000)
    seed = config.stats.seed
    protocol = list(protocol or [])
    notes = list(notes or [])
    sections: list[Section] = []
    fish_groups = manifest[["fish_id", "group", "exclude"]].drop_duplicates("fish_id")
    analysed = per_fish
    if "exclude" in per_fish.columns and not per_fish.empty:
        analysed = per_fish[~per_fish["exclude"].astype(bool)]

    # --- summary
    s = Section("summary", "Summary")
    n_complete = int(trials["complete"].sum()) if "complete" in trials else 0
    s.blocks.append(
        f"<p>{len(trials)} trial(s), {n_complete} with complete outputs; "
        f"{fish_groups['fish_id'].nunique()} fish in the manifest, "
        f"{analysed['fish_id'].nunique() if 'fish_id' in analysed else 0} analysed. "
        f"Reference group: <b>{esc(ref)}</b>.</p>"
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
    sections.append(s)

    # --- QC
    s = Section("qc", "Quality control")
    if not qc.empty and "detection_rate" in qc.columns:
        q = qc.merge(fish_groups[["fish_id", "group"]], on="fish_id", how="left")
        png = _save(detection_figure(q, reference=ref), "detection_rate", fig_dir, written)
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
    _behaviour_qc_blocks(s, per_fish, behaviour_qc or [], config, fig_dir, written)
    sections.append(s)

    # --- ethogram
    s = Section("ethogram", "Ethogram")
    if not ethogram.empty:
        fig = ethogram_figure(ethogram, fish_groups[fish_groups["fish_id"].isin(ethogram["fish_id"])],
                              bin_s=ethogram_bin_s, protocol=protocol, reference=ref)
        png = _save(fig, "ethogram", fig_dir, written)
        s.figures.append(FigureItem("ethogram", "Ethogram", png,
                                    f"State of every fish over time (majority state per "
                                    f"{ethogram_bin_s:.3g} s bin), grouped by treatment; white: "
                                    "no data. Protocol phases on top (of the experiment config, "
                                    "or of the first trial when the config has none)."))
    else:
        s.blocks.append("<p><em>No per-frame states.</em></p>")
    sections.append(s)

    # --- estimation plots
    phase = main_phase(analysed)
    what = {"open_loop": "open-loop phases (pooled)", "all": "the whole record (no protocol)"}
    s = Section("metrics", f"Metrics in {what.get(phase, phase or 'phases')}")
    s.blocks.append("<p>Every fish (dots), group mean with its 95% bootstrap confidence interval "
                    "(black), and the difference from the reference group with its confidence "
                    "interval from the statistics table (right panel).</p>")
    for m in MAIN_METRICS:
        vals = metric_values(analysed, m, phase) if phase else pd.DataFrame()
        if vals.empty or not np.isfinite(vals["value"].to_numpy(float)).any():
            s.blocks.append(f"<p><em>{esc(m)}: no values.</em></p>")
            continue
        diffs = metric_differences(group_stats, m, phase)
        fig = estimation_figure(vals, metric=m, reference=ref, differences=diffs,
                                n_boot=n_boot, seed=seed, ylabel=_LABELS.get(m))
        png = _save(fig, f"estimation_{m}", fig_dir, written)
        cap = _LABELS.get(m, m)
        if m == "latency_to_first_passive_s":
            cap += ("; fish that never gave up are plotted at their censoring time, and the "
                    "difference is of Kaplan–Meier restricted means (see the statistics table)")
        s.figures.append(FigureItem(f"estimation_{m}", m, png, cap))
    sections.append(s)

    # --- Kaplan-Meier
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
        label = "all open-loop phases (concatenated time)" if ph == "open_loop" else ph
        png = _save(survival_figure(curves, reference=ref, title=label), f"survival_{ph}",
                    fig_dir, written)
        s.figures.append(FigureItem(f"survival_{ph}", f"Give-up curve {label}", png,
                                    f"Fraction of fish not yet passive since the start of {label} "
                                    "(shaded: 95% CI); fish that never gave up are censored at "
                                    "the end of their observation."))
    sections.append(s)

    # --- binned
    s = Section("bins", "Passive fraction over time")
    if not bins.empty:
        b = bins
        if "group" not in b.columns:
            b = b.merge(fish_groups[["fish_id", "group"]], on="fish_id", how="left")
        if "exclude" in b.columns:
            b = b[~b["exclude"].astype(bool)]
        else:
            b = b[b["fish_id"].isin(analysed["fish_id"])] if "fish_id" in analysed else b
        png = _save(binned_figure(b, protocol=protocol, reference=ref), "passive_fraction_bins",
                    fig_dir, written)
        s.figures.append(FigureItem("passive_fraction_bins", "Passive fraction over time", png,
                                    f"Group mean (95% CI over fish) in {config.stats.bin_s:g} s "
                                    "bins; phases shaded (green closed-loop, red open-loop)."))
    else:
        s.blocks.append("<p><em>No binned data.</em></p>")
    sections.append(s)

    # --- statistics table
    s = Section("statistics", "Statistics")
    s.blocks.append(
        f"<p>Groups compared with <b>{esc(ref)}</b>; fish are the unit of analysis. "
        f"{config.stats.n_bootstrap} bootstrap resamples, {config.stats.n_permutations} "
        f"permutations, seed {config.stats.seed}. Full table: <code>group_stats.csv</code>.</p>"
    )
    s.blocks.append(table_html(_stats_table(group_stats, phase), scroll=True))
    sections.append(s)

    # stale figures from earlier runs go
    keep = {p.name for p in written}
    for p in fig_dir.glob("*"):
        if p.suffix in (".png", ".svg") and p.name not in keep:
            p.unlink(missing_ok=True)
    vers = dict(library_versions())
    if versions:
        vers.update(versions)
    text = render_html(sections, title="fishtrack experiment report", config=config,
                       versions=vers, subtitle=f"Experiment folder: {out.resolve()}.")
    report = write_text(out / "report.html", text)
    return {"report": report, "figures": fig_dir}
