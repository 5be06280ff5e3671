"""Report figures (matplotlib only, object API: no pyplot, no global state).

Every function takes tidy tables and returns a :class:`matplotlib.figure.Figure`;
:func:`figure_bytes` renders one as PNG or SVG. Colours: the reference group is grey, the
others follow matplotlib's ``tab10``; states use :data:`STATE_COLOURS`.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from fishtrack.behaviour.states import STATE_COLOURS

__all__ = [
    "STATE_COLOURS",
    "PHASE_COLOURS",
    "group_colours",
    "mean_ci",
    "ethogram_figure",
    "estimation_figure",
    "rmst_figure",
    "survival_figure",
    "binned_figure",
    "detection_figure",
    "behaviour_qc_figure",
    "figure_bytes",
    "figure_png_svg",
    "FigureJob",
    "draw_figure",
    "event_locked_figure",
    "sensitivity_figure",
    "dose_response_figure",
    "time_course_figure",
    "struggle_figure",
    "power_figure",
]

PHASE_COLOURS = {"closed_loop": "#c7e9c0", "open_loop": "#fcbba1", "other": "#e0e0e0"}
"""Shading of protocol phases by kind."""
_TAB10 = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
          "#bcbd22", "#17becf")
_REFERENCE_COLOUR = "#555555"


def group_colours(groups: Sequence[str], reference: str | None = None) -> dict[str, str]:
    """Colour per group: the reference grey, the others tab10 in order."""
    out: dict[str, str] = {}
    k = 0
    for g in groups:
        if g == reference:
            out[g] = _REFERENCE_COLOUR
        else:
            out[g] = _TAB10[k % len(_TAB10)]
            k += 1
    return out


def order_groups(groups: Sequence[str], reference: str | None = None) -> list[str]:
    """Reference group first, then the others sorted."""
    uniq = sorted({str(g) for g in groups})
    if reference in uniq:
        uniq.remove(reference)
        uniq.insert(0, reference)
    return uniq


def mean_ci(
    values: np.ndarray, *, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """Mean and percentile-bootstrap confidence interval of the mean (NaNs dropped).

    One value gives ``(v, nan, nan)``; none gives NaNs.
    """
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return np.nan, np.nan, np.nan
    m = float(v.mean())
    if v.size == 1:
        return m, np.nan, np.nan
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, v.size, size=(n_boot, v.size))
    boots = v[idx].mean(axis=1)
    a = (1 - level) / 2
    lo, hi = np.quantile(boots, [a, 1 - a])
    return m, float(lo), float(hi)


def _shade_phases(ax, protocol, *, label: bool = True, alpha: float = 0.35) -> None:
    for p in protocol or []:
        ax.axvspan(p.start_s, p.end_s, color=PHASE_COLOURS.get(p.kind, "#eeeeee"), alpha=alpha,
                   lw=0, zorder=0)
        if label:
            ax.text((p.start_s + p.end_s) / 2, 1.0, p.name, transform=ax.get_xaxis_transform(),
                    ha="center", va="bottom", fontsize=7, clip_on=False)


def _swarm_offsets(values: np.ndarray, width: float = 0.32) -> np.ndarray:
    """Deterministic horizontal offsets that spread points of similar value (a simple swarm)."""
    v = np.asarray(values, float)
    n = v.size
    if n == 0:
        return np.zeros(0)
    finite = np.isfinite(v)
    span = np.nanmax(v) - np.nanmin(v) if finite.any() else 0.0
    nb = max(1, int(np.sqrt(n) * 2))
    edges = np.linspace(np.nanmin(v), np.nanmin(v) + span, nb + 1) if span > 0 else None
    b = np.digitize(np.where(finite, v, 0), edges[1:-1]) if edges is not None else np.zeros(n, int)
    order = np.lexsort((v, b))
    rank = np.empty(n, int)
    bs = b[order]
    start = np.r_[0, np.flatnonzero(bs[1:] != bs[:-1]) + 1]
    pos = np.arange(n) - np.repeat(start, np.diff(np.r_[start, n]))
    rank[order] = pos
    counts = np.bincount(b, minlength=nb)
    maxc = max(int(counts.max()), 1)
    step = width / max(maxc / 2, 1)
    sign = np.where(rank % 2 == 0, 1, -1)
    return sign * ((rank + 1) // 2) * min(step, 0.06)


def ethogram_figure(
    ethogram: pd.DataFrame,
    fish: pd.DataFrame,
    *,
    bin_s: float,
    protocol=None,
    reference: str | None = None,
) -> Figure:
    """Raster of states: one row per fish, grouped by treatment, protocol phases on top.

    Parameters
    ----------
    ethogram
        Columns ``fish_id, bin_start_s, state`` (majority state per time bin).
    fish
        Columns ``fish_id, group`` and optionally ``exclude`` (excluded fish are drawn last
        in their group, labelled).
    bin_s
        Width of the ethogram bins (s).
    """
    fish = fish.drop_duplicates("fish_id").copy()
    fish["exclude"] = fish["exclude"].astype(bool) if "exclude" in fish else False
    groups = order_groups(fish["group"], reference)
    fish["_g"] = fish["group"].map({g: i for i, g in enumerate(groups)})
    fish = fish.sort_values(["_g", "exclude", "fish_id"], kind="stable").reset_index(drop=True)
    n = len(fish)
    states = list(STATE_COLOURS)
    n_bins = int(np.ceil((ethogram["bin_start_s"].max() + bin_s) / bin_s)) if len(ethogram) else 1
    mat = np.full((max(n, 1), max(n_bins, 1)), -1, dtype=float)
    if len(ethogram) and n:
        row = ethogram["fish_id"].map(dict(zip(fish["fish_id"], range(n), strict=True)))
        col = np.round(ethogram["bin_start_s"].to_numpy(float) / bin_s).astype(int)
        code = ethogram["state"].map({s: i for i, s in enumerate(states)}).fillna(
            states.index("unknown"))
        ok = row.notna().to_numpy() & (col >= 0) & (col < n_bins)
        mat[row[ok].astype(int).to_numpy(), col[ok]] = code[ok].to_numpy()
    cmap = ListedColormap(["#ffffff", *STATE_COLOURS.values()])
    height = float(np.clip(1.6 + 0.14 * n, 2.5, 16))
    fig = Figure(figsize=(10, height), layout="constrained")
    ax = fig.add_subplot()
    t_end = n_bins * bin_s
    ax.imshow(mat + 1, aspect="auto", interpolation="nearest", cmap=cmap, vmin=0,
              vmax=len(states), extent=(0, t_end, max(n, 1) - 0.5, -0.5))
    for p in protocol or []:
        ax.axvline(p.start_s, color="k", lw=0.6, alpha=0.6)
        ax.axvspan(p.start_s, p.end_s, ymin=1.0, ymax=1.04, color=PHASE_COLOURS.get(p.kind),
                   clip_on=False)
        ax.text((p.start_s + p.end_s) / 2, 1.05, p.name, transform=ax.get_xaxis_transform(),
                ha="center", va="bottom", fontsize=7, clip_on=False)
    # group separators and labels
    bounds = np.flatnonzero(np.r_[True, fish["_g"].to_numpy()[1:] != fish["_g"].to_numpy()[:-1]])
    ends = np.r_[bounds[1:], n]
    for s, e in zip(bounds, ends, strict=True):
        if s > 0:
            ax.axhline(s - 0.5, color="k", lw=1.2)
        ax.text(-0.01, (s + e - 1) / 2, str(fish["group"].iloc[s]), transform=ax.get_yaxis_transform(),
                ha="right", va="center", fontsize=9, fontweight="bold", rotation=90)
    if n <= 48:
        ax.set_yticks(range(n))
        labels = [f"{f}{' (excl.)' if x else ''}" for f, x in zip(fish["fish_id"], fish["exclude"], strict=True)]
        ax.set_yticklabels(labels, fontsize=6)
        ax.tick_params(axis="y", pad=14)
    else:
        ax.set_yticks([])
    ax.set_xlabel("time (s)")
    ax.set_xlim(0, t_end)
    handles = [Patch(color=c, label=s) for s, c in STATE_COLOURS.items()]
    handles += [Patch(color=c, label=k.replace("_", "-"), alpha=0.9) for k, c in PHASE_COLOURS.items()
                if any(p.kind == k for p in protocol or [])]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=8,
               frameon=False)
    return fig


def estimation_figure(
    data: pd.DataFrame,
    *,
    metric: str,
    reference: str | None = None,
    differences: pd.DataFrame | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    ylabel: str | None = None,
) -> Figure:
    """Estimation plot: every fish, group mean with its 95 % CI, and (when given) the mean
    difference from the reference group with its CI on a second axis.

    Parameters
    ----------
    data
        Columns ``group, value`` (one row per fish).
    differences
        Optional columns ``group, difference, ci_low, ci_high`` (group vs reference).
    """
    groups = order_groups(data["group"], reference)
    colours = group_colours(groups, reference)
    with_diff = differences is not None and len(differences) > 0
    fig = Figure(figsize=(1.6 + 1.3 * len(groups) * (2 if with_diff else 1), 3.4),
                 layout="constrained")
    axes = fig.subplots(1, 2, width_ratios=[1, 1]) if with_diff else [fig.add_subplot()]
    ax = axes[0]
    where: dict[tuple[str, str], tuple[float, float]] = {}
    for i, g in enumerate(groups):
        sub = data[(data["group"] == g) & np.isfinite(data["value"].to_numpy(float))]
        v = sub["value"].to_numpy(float)
        x = i + _swarm_offsets(v)
        ax.scatter(x, v, s=16, color=colours[g], alpha=0.8, lw=0, zorder=3)
        if "fish_id" in sub.columns:
            where.update({(str(f), g): (xx, vv) for f, xx, vv in zip(sub["fish_id"], x, v,
                                                                   strict=True)})
        m, lo, hi = mean_ci(v, n_boot=n_boot, seed=seed)
        if np.isfinite(m):
            ax.plot([i + 0.36], [m], "o", color="k", ms=5, zorder=4)
            if np.isfinite(lo):
                ax.plot([i + 0.36] * 2, [lo, hi], "-", color="k", lw=1.6, zorder=4)
    # within-fish designs: the same fish in several groups (conditions) is joined by a line
    for f in {k[0] for k in where}:
        pts = [where[(f, g)] for g in groups if (f, g) in where]
        if len(pts) > 1:
            ax.plot(*zip(*pts, strict=True), "-", color="#999999", lw=0.6, alpha=0.7, zorder=2)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([f"{g}\nn={int((data['group'] == g).sum())}" for g in groups], fontsize=8)
    ax.set_xlim(-0.6, len(groups) - 0.4)
    ax.set_ylabel(ylabel or metric)
    ax.set_title(metric, fontsize=10)
    ax.spines[["top", "right"]].set_visible(False)
    if with_diff:
        # a difference of means cannot exceed the range of the data: wider interval ends
        # (few fish, or an unbounded permutation interval) are cut there and marked with an
        # arrow; the numbers stay in the table
        v = data["value"].to_numpy(float)
        v = v[np.isfinite(v)]
        _difference_axis(axes[1], differences, groups, colours, reference,
                         span=float(v.max() - v.min()) if v.size else 0.0,
                         ylabel="mean difference (95% CI)")
    return fig


def survival_figure(
    curves: pd.DataFrame, *, reference: str | None = None, title: str = "",
    xlabel: str = "time since the first swim in the phase (s)",
) -> Figure:
    """Kaplan–Meier give-up curves: fraction of fish not yet passive over time.

    Parameters
    ----------
    curves
        Columns ``group, time_s, survival`` and optionally ``ci_low, ci_high`` (step
        functions; one row per time point per group).
    """
    groups = order_groups(curves["group"], reference) if len(curves) else []
    colours = group_colours(groups, reference)
    fig = Figure(figsize=(6, 3.6), layout="constrained")
    ax = fig.add_subplot()
    for g in groups:
        c = curves[curves["group"] == g].sort_values("time_s", kind="stable")
        t = c["time_s"].to_numpy(float)
        s = c["survival"].to_numpy(float)
        ax.step(t, s, where="post", color=colours[g], lw=1.8, label=str(g))
        if {"ci_low", "ci_high"} <= set(c.columns):
            ax.fill_between(t, c["ci_low"].to_numpy(float), c["ci_high"].to_numpy(float),
                            step="post", color=colours[g], alpha=0.15, lw=0)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("fraction not yet passive")
    if title:
        ax.set_title(title, fontsize=10)
    ax.spines[["top", "right"]].set_visible(False)
    if groups:
        ax.legend(frameon=False, fontsize=8)
    return fig


def rmst_figure(
    data: pd.DataFrame,
    *,
    tau: float,
    summary: pd.DataFrame,
    reference: str | None = None,
    differences: pd.DataFrame | None = None,
    ylabel: str = "latency to the first give-up (s)",
    unit: str = "s",
) -> Figure:
    """Estimation plot of a censored latency, showing what is tested.

    Left: every fish's latency (filled: gave up; open circle: censored, i.e. at least this
    long) and each group's Kaplan-Meier restricted mean (RMST up to ``tau``, dashed line)
    with its bootstrap interval, never the naive mean of censored times. Right: the RMST
    difference from the reference group with its interval (the statistics table's row).

    Parameters
    ----------
    data
        ``group, value, event`` (one row per fish).
    summary
        ``group, rmst, ci_low, ci_high``.
    differences
        ``group, difference, ci_low, ci_high``.
    """
    groups = order_groups(data["group"], reference)
    colours = group_colours(groups, reference)
    with_diff = differences is not None and len(differences) > 0
    fig = Figure(figsize=(1.6 + 1.3 * len(groups) * (2 if with_diff else 1), 3.4),
                 layout="constrained")
    axes = fig.subplots(1, 2) if with_diff else [fig.add_subplot()]
    ax = axes[0]
    summ = summary.set_index("group") if len(summary) else summary
    for i, g in enumerate(groups):
        sub = data[data["group"] == g]
        v = sub["value"].to_numpy(float)
        ev = sub["event"].to_numpy(bool)
        x = i + _swarm_offsets(v)
        ax.scatter(x[ev], v[ev], s=16, color=colours[g], alpha=0.8, lw=0, zorder=3)
        ax.scatter(x[~ev], v[~ev], s=16, facecolors="white", edgecolors=colours[g], lw=1,
                   zorder=3)
        if g in getattr(summ, "index", []):
            r = summ.loc[g]
            ax.plot([i + 0.36], [r["rmst"]], "s", color="k", ms=5, zorder=4)
            if np.isfinite(r["ci_low"]):
                ax.plot([i + 0.36] * 2, [r["ci_low"], r["ci_high"]], "-", color="k", lw=1.6,
                        zorder=4)
    ax.axhline(tau, color="#888888", lw=0.8, ls="--")
    ax.text(len(groups) - 0.45, tau, f"τ = {tau:.3g}{' ' + unit if unit else ''}", fontsize=7,
            va="bottom", ha="right", color="#555555")
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([f"{g}\nn={int((data['group'] == g).sum())}" for g in groups], fontsize=8)
    ax.set_xlim(-0.6, len(groups) - 0.4)
    ax.set_ylabel(ylabel)
    ax.set_title("restricted mean (■), every fish (○: censored)", fontsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    if with_diff:
        _difference_axis(axes[1], differences, groups, colours, reference, span=tau,
                         ylabel=f"RMST difference ({unit + ', ' if unit else ''}95% CI)")
    return fig


def _difference_axis(ax2, differences, groups, colours, reference, *, span, ylabel) -> None:
    """Right panel of an estimation plot: each group's difference from the reference with its
    interval (infinite ends are drawn to the edge and marked with an arrow)."""
    others = [g for g in groups if g != reference]
    d = differences.set_index("group")
    lim = 1.08 * span if span > 0 else None
    for i, g in enumerate(others):
        if g not in d.index:
            continue
        row = d.loc[g]
        row = row.iloc[0] if isinstance(row, pd.DataFrame) else row
        lo, hi = float(row["ci_low"]), float(row["ci_high"])
        ax2.plot([i], [row["difference"]], "o", color=colours[g], ms=6)
        if lim is not None:
            lo_c, hi_c = max(lo, -lim), min(hi, lim)
        else:
            lo_c, hi_c = lo, hi
        if np.isfinite(lo_c) and np.isfinite(hi_c):
            ax2.plot([i, i], [lo_c, hi_c], "-", color=colours[g], lw=2)
        for end, clipped, mark in ((lo, lo_c, "v"), (hi, hi_c, "^")):
            if np.isfinite(clipped) and end != clipped:
                ax2.plot([i], [clipped], mark, color=colours[g], ms=6)
    ax2.axhline(0, color=_REFERENCE_COLOUR, lw=0.8, ls="--")
    if lim is not None:
        ax2.set_ylim(-lim, lim)
    ax2.set_xticks(range(len(others)))
    ax2.set_xticklabels([f"{g}\nminus {reference}" for g in others], fontsize=8)
    ax2.set_xlim(-0.6, max(len(others), 1) - 0.4)
    ax2.set_ylabel(ylabel)
    ax2.spines[["top", "right"]].set_visible(False)


def _mean_t_ci(values: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Mean and 95 % t interval of ``v`` per ``by``, with the number of fish ``n``."""
    from scipy import stats as sst

    agg = values.dropna(subset=["v"]).groupby(by)["v"].agg(["mean", "std", "count"]).reset_index()
    tcrit = sst.t.ppf(0.975, np.maximum(agg["count"] - 1, 1))
    agg["half"] = np.where(agg["count"] > 1, tcrit * agg["std"] / np.sqrt(agg["count"]), np.nan)
    return agg


def binned_figure(
    bins: pd.DataFrame, *, protocol=None, reference: str | None = None, value: str = "passive_fraction"
) -> Figure:
    """Passive fraction per time bin, aligned to the onset of each phase.

    One panel per phase (in protocol order; phases of different videos are matched by name),
    x = time since the phase started, so bins of videos with different protocols are only
    pooled with bins at the same time since the same phase began. Each panel: group mean with
    a 95 % t interval over fish, and below it the number of fish in every bin (it falls where
    a phase is shorter in some videos).

    Parameters
    ----------
    bins
        ``per_fish_bins.csv`` rows: ``fish_id, group, phase, phase_kind, time_in_phase_s,
        bin_start_s, bin_end_s`` and ``value``; one row per fish per bin. Without
        ``time_in_phase_s`` the bins are drawn on the recording's time axis (one panel).
    """
    groups = order_groups(bins["group"], reference) if len(bins) else []
    colours = group_colours(groups, reference)
    if "time_in_phase_s" not in bins.columns or "phase" not in bins.columns or bins.empty:
        return _binned_absolute(bins, protocol=protocol, groups=groups, colours=colours,
                                value=value)
    b = bins.assign(v=pd.to_numeric(bins[value], errors="coerce"),
                    width=bins["bin_end_s"].astype(float) - bins["bin_start_s"].astype(float))
    b["mid"] = b["time_in_phase_s"].astype(float) + b.groupby(["phase", "time_in_phase_s"])[
        "width"].transform("max") / 2
    order = [p.name for p in sorted(protocol or [], key=lambda p: p.start_s)]
    start = b.groupby("phase")["bin_start_s"].min()
    phases = [p for p in order if p in start.index]
    phases += [p for p in start.sort_values().index if p not in phases]
    length = b.assign(end=b["time_in_phase_s"] + b["width"]).groupby("phase")["end"].max()
    kinds = b.groupby("phase")["phase_kind"].first() if "phase_kind" in b.columns else {}
    fig = Figure(figsize=(max(9.0, 2.2 * len(phases)), 4.4), layout="constrained")
    gs = fig.add_gridspec(2, len(phases), height_ratios=[3.2, 1],
                          width_ratios=[max(float(length[p]), 1e-9) for p in phases])
    agg = _mean_t_ci(b, ["phase", "group", "mid"])
    n_max = int(agg["count"].max()) if len(agg) else 1
    top0 = None
    for k, ph in enumerate(phases):
        ax = fig.add_subplot(gs[0, k], sharey=top0)
        top0 = top0 or ax
        axn = fig.add_subplot(gs[1, k], sharex=ax)
        ax.axvspan(0, float(length[ph]), color=PHASE_COLOURS.get(kinds.get(ph, "other"), "#eee"),
                   alpha=0.35, lw=0, zorder=0)
        for g in groups:
            a = agg[(agg["phase"] == ph) & (agg["group"] == g)].sort_values("mid")
            if a.empty:
                continue
            ax.plot(a["mid"], a["mean"], "-o", ms=3, color=colours[g], label=str(g))
            ax.fill_between(a["mid"], a["mean"] - a["half"], a["mean"] + a["half"],
                            color=colours[g], alpha=0.2, lw=0)
            axn.plot(a["mid"], a["count"], "o-", ms=2.5, color=colours[g], lw=1.0,
                     drawstyle="steps-mid")
        ax.set_title(f"{ph}", fontsize=9)
        ax.set_xlim(0, float(length[ph]))
        ax.set_ylim(-0.02, 1.02)
        axn.set_ylim(0, n_max * 1.15 + 0.5)
        axn.set_label(f"n_per_bin:{ph}")
        for a_ in (ax, axn):
            a_.spines[["top", "right"]].set_visible(False)
            a_.tick_params(labelsize=7)
        if k == 0:
            ax.set_ylabel("passive fraction")
            axn.set_ylabel("fish / bin", fontsize=8)
        else:
            ax.tick_params(labelleft=False)
        ax.tick_params(labelbottom=False)
    fig.supxlabel("time since the phase started (s)", fontsize=9)
    if groups:
        handles = [Patch(color=colours[g], label=str(g)) for g in groups]
        fig.legend(handles=handles, loc="outside upper right", ncol=len(groups), fontsize=8,
                   frameon=False)
    return fig


def _binned_absolute(bins, *, protocol, groups, colours, value) -> Figure:
    """One panel on the recording's time axis (bins without phase alignment)."""
    fig = Figure(figsize=(9, 3.6), layout="constrained")
    ax = fig.add_subplot()
    _shade_phases(ax, protocol)
    for g in groups:
        b = bins[bins["group"] == g]
        if "bin_end_s" in b.columns:
            mid = (b["bin_start_s"].to_numpy(float) + b["bin_end_s"].to_numpy(float)) / 2
        else:
            mid = b["bin_start_s"].to_numpy(float)
        agg = _mean_t_ci(pd.DataFrame({"t": mid, "v": pd.to_numeric(b[value], errors="coerce")
                                       .to_numpy(float)}), ["t"])
        ax.plot(agg["t"], agg["mean"], "-o", ms=3, color=colours[g], label=str(g))
        ax.fill_between(agg["t"], agg["mean"] - agg["half"], agg["mean"] + agg["half"],
                        color=colours[g], alpha=0.2, lw=0)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("passive fraction")
    ax.spines[["top", "right"]].set_visible(False)
    if groups:
        ax.legend(frameon=False, fontsize=8, loc="upper left")
    return fig


def detection_figure(qc: pd.DataFrame, *, reference: str | None = None) -> Figure:
    """Detection rate (fraction of frames the fish was found) of every fish, by group.

    Parameters
    ----------
    qc
        Columns ``group, detection_rate``.
    """
    groups = order_groups(qc["group"], reference) if len(qc) else []
    colours = group_colours(groups, reference)
    fig = Figure(figsize=(1.8 + 1.1 * max(len(groups), 1), 3.0), layout="constrained")
    ax = fig.add_subplot()
    for i, g in enumerate(groups):
        v = qc.loc[qc["group"] == g, "detection_rate"].to_numpy(float)
        v = v[np.isfinite(v)]
        ax.scatter(i + _swarm_offsets(v), v, s=14, color=colours[g], lw=0)
    ax.axhline(0.9, color="#b22222", lw=0.8, ls="--")
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, fontsize=8)
    ax.set_xlim(-0.6, max(len(groups), 1) - 0.4)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("detection rate")
    ax.spines[["top", "right"]].set_visible(False)
    return fig


_SIGNAL_LABELS = {"bout_rate_hz": "bout rate (Hz)", "bout_vigour_rad_s": "bout vigour (rad/s)"}


def _clean(ax) -> None:
    """Plain axes: no top/right spines, small ticks, no offset notation, and a constant
    shown as a plain value (not +-1e-10 around it)."""
    ax.spines[["top", "right"]].set_visible(False)
    ax.tick_params(labelsize=7)
    ax.ticklabel_format(axis="y", useOffset=False, style="plain")
    lo, hi = ax.get_ylim()
    mid = (lo + hi) / 2
    if hi - lo < 1e-6 * max(abs(mid), 1e-12):
        ax.set_ylim(mid - 0.1 * abs(mid) - 1e-9, mid + 0.1 * abs(mid) + 1e-9)


def _group_legend(fig, groups, colours) -> None:
    if groups:
        handles = [Patch(color=colours[g], label=str(g)) for g in groups]
        fig.legend(handles=handles, loc="outside upper right", ncol=min(len(groups), 6),
                   fontsize=8, frameon=False)


def event_locked_figure(
    traces: pd.DataFrame, *, reference: str | None = None, title: str = "",
    signals: Sequence[str] | None = None, events: Sequence[str] | None = None,
) -> Figure:
    """Onset-locked averages: one row of panels per signal, one column per event kind; group
    means over fish with their 95 % t interval, the onset at 0.

    Parameters
    ----------
    traces
        :func:`fishtrack.stats.eventlocked.group_traces` rows: ``event, signal, group,
        t_rel_s, mean, ci_low, ci_high, n_fish``.
    """
    first = ("give-up onset", "open-loop onset", "closed-loop onset", "bout_rate_hz",
             "bout_vigour_rad_s")

    def ordered(values):
        v = list(dict.fromkeys(values))
        return [x for x in first if x in v] + [x for x in v if x not in first]

    signals = list(signals or ordered(traces["signal"])) if len(traces) else []
    events = list(events or ordered(traces["event"])) if len(traces) else []
    groups = order_groups(traces["group"], reference) if len(traces) else []
    colours = group_colours(groups, reference)
    nr, nc = max(len(signals), 1), max(len(events), 1)
    fig = Figure(figsize=(2.9 * nc + 0.8, 2.1 * nr + 0.7), layout="constrained")
    axes = np.atleast_2d(fig.subplots(nr, nc, squeeze=False))
    seen = np.unique(traces["t_rel_s"].to_numpy(float)) if len(traces) else np.zeros(1)
    width = float(np.diff(seen).min()) if len(seen) > 1 else 1.0
    grid = seen[0] + width * np.arange(int(round((seen[-1] - seen[0]) / width)) + 1)
    for i, sig in enumerate(signals):
        for j, ev in enumerate(events):
            ax = axes[i, j]
            sub = traces[(traces["signal"] == sig) & (traces["event"] == ev)]
            for g in groups:
                a = sub[sub["group"] == g]
                if a.empty:
                    continue
                # every bin of the window; a bin without data (no bout in it) is a gap
                a = (a.drop_duplicates("t_rel_s").set_index("t_rel_s")
                     .reindex(grid[(grid >= a["t_rel_s"].min() - 1e-9)
                                   & (grid <= a["t_rel_s"].max() + 1e-9)], method="nearest",
                              tolerance=width / 4)
                     .rename_axis("t_rel_s").reset_index())
                # bins as steps: each value holds over its bin
                x = np.r_[a["t_rel_s"].to_numpy(float), a["t_rel_s"].iloc[-1] + width]

                def ext(col, _a=a):
                    v = _a[col].to_numpy(float)
                    return np.r_[v, v[-1]]

                ax.step(x, ext("mean"), where="post", color=colours[g], lw=1.5)
                ax.fill_between(x, ext("ci_low"), ext("ci_high"), step="post",
                                color=colours[g], alpha=0.2, lw=0)
            ax.axvline(0, color="k", lw=0.8, ls="--")
            ax.axvspan(0, float(sub["t_rel_s"].max()) + width if len(sub) else 1, color="#eeeeee",
                       lw=0, zorder=0)
            if i == 0:
                n = int(sub["n_fish"].max()) if len(sub) else 0
                ax.set_title(f"{ev} (≤ {n} fish/group)", fontsize=9)
            if j == 0:
                ax.set_ylabel(_SIGNAL_LABELS.get(sig, sig.removeprefix("signal:")), fontsize=8)
            if i == nr - 1:
                ax.set_xlabel("time from onset (s)", fontsize=8)
            _clean(ax)
    if title:
        fig.suptitle(title, fontsize=9)
    _group_legend(fig, groups, colours)
    return fig


def sensitivity_figure(
    table: pd.DataFrame, *, metrics: Sequence[str], configured: float | None = None,
    reference: str | None = None, labels: dict[str, str] | None = None,
) -> Figure:
    """Give-up sensitivity: for each metric, every group's difference from the reference
    (with its interval) against ``min_passive_s``; filled markers p ≤ 0.05, open ones p >
    0.05; the configured threshold dashed.

    Parameters
    ----------
    table
        :func:`fishtrack.stats.sensitivity.compare_sensitivity` rows (``min_passive_s,
        metric, group, diff, ci_low, ci_high, p_value``).
    """
    metrics = [m for m in metrics if m in set(table["metric"])]
    groups = order_groups(table["group"], reference) if len(table) else []
    colours = group_colours(groups, reference)
    others = [g for g in groups if g != reference]
    nc = min(3, max(len(metrics), 1))
    nr = int(np.ceil(max(len(metrics), 1) / nc))
    fig = Figure(figsize=(3.3 * nc, 2.6 * nr + 0.5), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nr, nc, squeeze=False).ravel())
    xs = np.sort(table["min_passive_s"].unique()) if len(table) else np.array([1.0])
    step = 0.015 * (xs.max() - xs.min() if len(xs) > 1 else 1.0)
    for k, m in enumerate(metrics):
        ax = axes[k]
        rows_m = table[table["metric"] == m]
        vals = np.r_[rows_m["diff"], rows_m["ci_low"], rows_m["ci_high"]].astype(float)
        vals = vals[np.isfinite(vals)]
        lim = 1.3 * float(np.max(np.abs(vals))) if vals.size and np.max(np.abs(vals)) > 0 else 1.0
        for j, g in enumerate(others):
            a = rows_m[rows_m["group"] == g].sort_values("min_passive_s")
            x = a["min_passive_s"].to_numpy(float) + (j - (len(others) - 1) / 2) * step
            d = a["diff"].to_numpy(float)
            # unbounded interval ends (too few fish) drawn to the edge with an arrow
            lo_raw, hi_raw = a["ci_low"].to_numpy(float), a["ci_high"].to_numpy(float)
            lo, hi = np.clip(lo_raw, -lim, lim), np.clip(hi_raw, -lim, lim)
            fin = np.isfinite(lo) & np.isfinite(hi)
            ax.vlines(x[fin], lo[fin], hi[fin], color=colours[g], lw=1.4)
            for raw, clip, mark in ((lo_raw, lo, "v"), (hi_raw, hi, "^")):
                cut = np.isinf(raw) | (np.abs(raw) > lim)
                ax.scatter(x[cut], clip[cut], marker=mark, s=14, color=colours[g])
            ax.plot(x, d, "-", color=colours[g], lw=0.8, alpha=0.6)
            sig = a["p_value"].to_numpy(float) <= 0.05
            ax.scatter(x[sig], d[sig], s=24, color=colours[g], zorder=3)
            ax.scatter(x[~sig], d[~sig], s=24, facecolors="white", edgecolors=colours[g],
                       zorder=3)
        ax.axhline(0, color="#888888", lw=0.8)
        ax.set_ylim(-1.08 * lim, 1.08 * lim)
        if configured is not None:
            ax.axvline(configured, color="k", lw=0.8, ls="--")
        ax.set_title((labels or {}).get(m, m), fontsize=8)
        ax.set_xlabel("min_passive_s (s)", fontsize=8)
        ax.set_ylabel(f"difference from {reference}", fontsize=8)
        _clean(ax)
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    _group_legend(fig, others, colours)
    return fig


def dose_response_figure(
    fish: pd.DataFrame, curve: pd.DataFrame, *, metrics: Sequence[str],
    labels: dict[str, str] | None = None, scale: str = "rank",
) -> Figure:
    """Dose–response: every fish (dots), each dose's mean (black), and the fitted curve with
    its bootstrap band. Doses on a log axis with vehicle drawn one step left of the lowest
    dose.

    Parameters
    ----------
    fish
        ``metric, dose, value`` (one row per fish and metric).
    curve
        ``metric, dose, fit, ci_low, ci_high``.
    """
    metrics = [m for m in metrics if m in set(fish["metric"])]
    nc = min(3, max(len(metrics), 1))
    nr = int(np.ceil(max(len(metrics), 1) / nc))
    fig = Figure(figsize=(3.4 * nc, 2.8 * nr), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nr, nc, squeeze=False).ravel())
    for k, m in enumerate(metrics):
        ax = axes[k]
        f = fish[fish["metric"] == m]
        levels = np.sort(f["dose"].unique())
        pos = levels[levels > 0]
        logs = np.log10(pos) if len(pos) else np.array([0.0])
        step = float(np.median(np.diff(logs))) if len(logs) > 1 else 1.0
        vehicle_x = logs[0] - step

        def xpos(d, _v=vehicle_x):
            d = np.asarray(d, float)
            with np.errstate(divide="ignore"):
                return np.where(d > 0, np.log10(np.where(d > 0, d, 1.0)), _v)

        x = xpos(f["dose"]) + _swarm_offsets(f["value"].to_numpy(float), 0.15) * step
        ax.scatter(x, f["value"], s=10, color="#1f77b4", alpha=0.6, lw=0, zorder=2)
        mean = f.groupby("dose")["value"].mean()
        ax.plot(xpos(mean.index), mean.to_numpy(), "o", color="k", ms=4, zorder=4)
        c = curve[curve["metric"] == m].sort_values("dose")
        if len(c):
            cx = xpos(c["dose"])
            pos_c = c["dose"].to_numpy(float) > 0
            style = "-" if len(c) > len(levels) else "o-"
            ax.plot(cx[pos_c], c["fit"].to_numpy(float)[pos_c], style, color="#d62728", lw=1.5,
                    ms=3, zorder=3)
            ax.fill_between(cx[pos_c], c["ci_low"].to_numpy(float)[pos_c],
                            c["ci_high"].to_numpy(float)[pos_c], color="#d62728", alpha=0.15,
                            lw=0)
            if (~pos_c).any():
                r = c[~pos_c].iloc[0]
                ax.errorbar([vehicle_x], [r["fit"]], yerr=[[r["fit"] - r["ci_low"]],
                            [r["ci_high"] - r["fit"]]], fmt="s", color="#d62728", ms=4)
        ticks = np.r_[vehicle_x, logs]
        ax.set_xticks(ticks)
        ax.set_xticklabels(["vehicle"] + [f"{d:g}" for d in pos], fontsize=7, rotation=30)
        ax.set_xlabel("dose", fontsize=8)
        ax.set_ylabel((labels or {}).get(m, m), fontsize=8)
        _clean(ax)
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    return fig


def time_course_figure(
    summary: pd.DataFrame, fish: pd.DataFrame, *, metrics: Sequence[str],
    reference: str | None = None, labels: dict[str, str] | None = None,
    xlabel: str = "time since treatment (h)", within: bool = False,
) -> Figure:
    """Each metric over time per group: the mean over fish with a 95 % t interval, and every
    fish (thin lines joining a fish's time points in within-fish designs, dots otherwise).

    Parameters
    ----------
    summary
        ``metric, time, group, mean, ci_low, ci_high``.
    fish
        ``metric, fish_id, group, time, value``.
    """
    metrics = [m for m in metrics if m in set(summary["metric"])]
    groups = order_groups(summary["group"], reference) if len(summary) else []
    colours = group_colours(groups, reference)
    nc = min(3, max(len(metrics), 1))
    nr = int(np.ceil(max(len(metrics), 1) / nc))
    fig = Figure(figsize=(3.4 * nc, 2.7 * nr + 0.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nr, nc, squeeze=False).ravel())
    times = np.sort(summary["time"].unique()) if len(summary) else np.array([0.0])
    span = float(times.max() - times.min()) or 1.0
    for k, m in enumerate(metrics):
        ax = axes[k]
        for j, g in enumerate(groups):
            off = (j - (len(groups) - 1) / 2) * 0.015 * span
            f = fish[(fish["metric"] == m) & (fish["group"] == g)]
            if within:
                for _, ff in f.groupby("fish_id"):
                    ff = ff.sort_values("time")
                    ax.plot(ff["time"] + off, ff["value"], "-", color=colours[g], lw=0.5,
                            alpha=0.35)
            else:
                ax.scatter(f["time"] + off, f["value"], s=8, color=colours[g], alpha=0.4, lw=0)
            a = summary[(summary["metric"] == m) & (summary["group"] == g)].sort_values("time")
            ax.errorbar(a["time"] + off, a["mean"], yerr=[a["mean"] - a["ci_low"],
                        a["ci_high"] - a["mean"]], fmt="o-", color=colours[g], ms=4, lw=1.6,
                        capsize=2)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel((labels or {}).get(m, m), fontsize=8)
        _clean(ax)
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    _group_legend(fig, groups, colours)
    return fig


def _finite_mean(v: np.ndarray) -> float:
    """Mean of the finite values; NaN (no warning) when there is none (e.g. a group whose
    fish all lack a baseline)."""
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else np.nan


def struggle_figure(per_fish: pd.DataFrame, *, reference: str | None = None,
                    window_s: float = 10.0) -> Figure:
    """Struggle: each fish's bout rate and vigour in the last ``window_s`` of closed loop
    (CL) and the first ``window_s`` of open loop (OL), joined by a line; group means black.

    Parameters
    ----------
    per_fish
        One row per fish: ``group, baseline_bout_rate_hz, struggle_bout_rate_hz,
        baseline_vigour_rad_s, struggle_vigour_rad_s``.
    """
    groups = order_groups(per_fish["group"], reference) if len(per_fish) else []
    colours = group_colours(groups, reference)
    fig = Figure(figsize=(2.0 + 1.6 * len(groups) * 2, 3.2), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, (base, strug, label) in zip(axes, (
            ("baseline_bout_rate_hz", "struggle_bout_rate_hz", "bout rate (Hz)"),
            ("baseline_vigour_rad_s", "struggle_vigour_rad_s", "mean bout vigour (rad/s)")),
            strict=True):
        for i, g in enumerate(groups):
            sub = per_fish[per_fish["group"] == g]
            b, s_ = sub[base].to_numpy(float), sub[strug].to_numpy(float)
            x0, x1 = 2 * i, 2 * i + 0.8
            for bb, ss in zip(b, s_, strict=True):
                ax.plot([x0, x1], [bb, ss], "-o", color=colours[g], lw=0.6, ms=2.5, alpha=0.6)
            ax.plot([x0 - 0.15, x1 + 0.15], [_finite_mean(b), _finite_mean(s_)], "s-",
                    color="k", ms=5, lw=1.6, zorder=4)
        ax.set_xticks([x for i in range(len(groups)) for x in (2 * i, 2 * i + 0.8)])
        ax.set_xticklabels([f"{t}\n{g}" if t == "CL" else t for g in groups
                            for t in ("CL", "OL")], fontsize=7)
        ax.set_ylabel(label, fontsize=8)
        ax.set_title(f"last {window_s:g} s of closed loop vs first {window_s:g} s of open loop",
                     fontsize=7)
        _clean(ax)
    return fig


def power_figure(table: pd.DataFrame, *, target: float = 0.8, title: str = "") -> Figure:
    """Power against fish per group, with Monte Carlo 95 % intervals; the target power
    dashed.

    Parameters
    ----------
    table
        ``n_per_group, power, ci_low, ci_high`` (and optionally ``label`` for several
        curves).
    """
    fig = Figure(figsize=(5.2, 3.4), layout="constrained")
    ax = fig.add_subplot()
    labels = list(dict.fromkeys(table["label"])) if "label" in table.columns else [""]
    for k, lab in enumerate(labels):
        a = table if lab == "" else table[table["label"] == lab]
        a = a.sort_values("n_per_group")
        c = _TAB10[k % len(_TAB10)]
        ax.plot(a["n_per_group"], a["power"], "o-", color=c, label=lab or None)
        ax.fill_between(a["n_per_group"], a["ci_low"], a["ci_high"], color=c, alpha=0.2, lw=0)
    ax.axhline(target, color="k", lw=0.8, ls="--")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("fish per group")
    ax.set_ylabel("power")
    if title:
        import textwrap

        ax.set_title("\n".join(textwrap.wrap(title, 75)), fontsize=8)
    if labels != [""]:
        ax.legend(frameon=False, fontsize=8)
    _clean(ax)
    return fig


def _tail_levels_text(summary: pd.DataFrame) -> str:
    """The tail bouts' levels that are not on the vigour axis, for the QC figure's title: the
    median sustained-bout threshold over the fish and the pixel-motion gate's levels (one per
    recording: motion energy, tail motion, mid-tail angle); empty when none is known."""
    parts = []
    for col, fmt in (("sustained_threshold_rad2", "sustained threshold {:.3g} rad^2 (median)"),
                     ("motion_gate_grey", "gate: motion {:.3g} grey"),
                     ("motion_gate_tail_grey", "tail motion {:.3g} grey"),
                     ("motion_gate_midtail_rad", "mid-tail {:.3g} rad")):
        v = pd.to_numeric(summary[col], errors="coerce").to_numpy(float) if col in summary \
            else np.zeros(0)
        v = v[np.isfinite(v)]
        if len(v):
            parts.append(fmt.format(float(np.median(v))))
    return ("\n" + "; ".join(parts)) if parts else ""


def behaviour_qc_figure(summary: pd.DataFrame, *, title: str = "") -> Figure:
    """Why each fish was scored as it was: its bout signal's distribution against its threshold.

    Parameters
    ----------
    summary
        One row per fish (:func:`fishtrack.behaviour.qc.vigour_summary`): ``fish``, the
        signal's percentiles ``q05 .. q999`` and, when known, the threshold and noise level,
        ``n_bouts, qc_flags``.

    Per fish: a grey bar from the 5th to the 95th percentile of its signal (box 25th-75th,
    white tick the median, dot the 99.9th percentile), the noise level (black) and the bout
    threshold (red); its bout count on top. Fish with QC flags are orange and their flags
    listed below. The signal is the tail vigour (rad/s); for movement bouts
    (``bout_signal`` ``speed`` / ``speed_motion``) the head's speed (px/s), with
    ``speed_motion`` a second panel with the pixel motion (grey levels). For tail bouts the
    title also gives the levels that are not in rad/s: the median sustained-bout threshold
    and the pixel-motion gate's levels of the motion energy and of the tail motion.
    """
    n = len(summary)
    sig = str(summary["bout_signal"].iloc[0]) if n and "bout_signal" in summary else "tail"
    panels = [("", "vigour_noise_rad_s", "bout_threshold_rad_s", "tail vigour (rad/s)")]
    if sig in ("speed", "speed_motion"):
        panels = [("", "speed_noise_px_s", "bout_threshold_px_s", "head speed (px/s)")]
        if "motion_q50" in summary:
            panels.append(("motion_", "motion_noise_grey", "motion_threshold_grey",
                           "pixel motion (grey levels)"))
    fig = Figure(figsize=(max(4.0, 1.2 + 0.32 * n), 3.6 * len(panels)), layout="constrained")
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    x = np.arange(n)
    flagged = (summary["qc_flags"].astype(str) != "").to_numpy() if "qc_flags" in summary \
        else np.zeros(n, bool)
    col = np.where(flagged, "#e6550d", "#7f7f7f")
    floor = 0.05
    for ax, (prefix, noise_col, thr_col, label) in zip(axes, panels, strict=True):

        def q(name):
            return np.maximum(pd.to_numeric(summary.get(name), errors="coerce").to_numpy(float),
                              floor) if name in summary else np.full(n, np.nan)

        ax.vlines(x, q(prefix + "q05"), q(prefix + "q95"), color=col, lw=1.2)
        ax.vlines(x, q(prefix + "q25"), q(prefix + "q75"), color=col, lw=5)
        ax.scatter(x, q(prefix + "q50"), marker="_", s=40, color="white", zorder=3)
        ax.scatter(x, q(prefix + "q999"), s=8, color=col, zorder=3)
        for name, c, lab in ((noise_col, "black", "noise level"),
                             (thr_col, "#d62728", "bout threshold")):
            if name in summary:
                ax.scatter(x, q(name), marker="_", s=160, lw=2, color=c, label=lab, zorder=4)
        ax.set_yscale("log")
        ax.set_ylabel(label)
        ax.set_xticks(x)
        ax.set_xticklabels(summary["fish"].astype(str), rotation=90, fontsize=7)
        ax.set_xlim(-0.7, max(n, 1) - 0.3)
        hi = q(prefix + "q999")
        top = np.nanmax(hi) if n and np.isfinite(hi).any() else 10.0
        ax.set_ylim(floor * 0.9, top * 3.0)
        if "n_bouts" in summary:
            for i, nb in enumerate(summary["n_bouts"]):
                if pd.notna(nb):
                    ax.text(i, top * 1.6, str(int(nb)), ha="center", va="center", fontsize=6,
                            color=col[i])
        ax.spines[["top", "right"]].set_visible(False)
        if thr_col in summary or noise_col in summary:
            ax.legend(fontsize=7, loc="lower right", frameon=False)
    lines = [f"{f}: {flags}" for f, flags, fl in
             zip(summary["fish"], summary.get("qc_flags", [""] * n), flagged, strict=True) if fl]
    head = f"{title}  (numbers on top: bouts)" if title else "numbers on top: bouts"
    if sig != "tail":
        head += f"; bouts from {sig.replace('_', ' + ')}"
    else:
        head += _tail_levels_text(summary)
    if lines:
        shown = "; ".join(lines[:6]) + (f"; +{len(lines) - 6} more" if len(lines) > 6 else "")
        head += "\nflagged: " + shown
    axes[0].set_title(head, fontsize=7, loc="left")
    return fig


def figure_bytes(fig: Figure, fmt: str = "png", *, dpi: int = 110) -> bytes:
    """Render a figure to PNG or SVG bytes (Agg / SVG backends, no display needed)."""
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi, metadata={"Date": None} if fmt == "svg" else None)
    return buf.getvalue()


def figure_png_svg(fig: Figure, *, dpi: int = 110) -> tuple[bytes, bytes]:
    """The figure as PNG and SVG bytes, laid out once: the PNG's draw runs the layout
    engine (constrained layout: most of a draw's time), the SVG is drawn with the positions
    it found (the layout engine then set to ``"none"``), so both show the same layout."""
    png = figure_bytes(fig, "png", dpi=dpi)
    fig.set_layout_engine("none")  # keeps the positions the PNG's draw set
    return png, figure_bytes(fig, "svg", dpi=dpi)


@dataclass(frozen=True)
class FigureJob:
    """A figure to draw later, maybe in another process (a worker of ``fishtrack run``):
    a top-level function of this module that returns a :class:`Figure`, and its arguments
    (tables, numbers, protocol phases: sent to the worker by the process pool or dask)."""

    fn: Callable[..., Figure]
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)

    def make(self) -> Figure:
        return self.fn(*self.args, **self.kwargs)


def later(fn: Callable[..., Figure], *args, **kwargs) -> FigureJob:
    """``fn(*args, **kwargs)`` as a :class:`FigureJob`, drawn by :func:`draw_figure`."""
    return FigureJob(fn, args, kwargs)


def draw_figure(job: FigureJob, folder: str | Path, name: str) -> bytes:
    """Draw a job and write ``folder/name.png`` and ``.svg`` (one layout for both); the PNG
    bytes. The entry point of a report figure drawn in a worker process: this module imports
    matplotlib and the figures' helpers only (no statistics)."""
    from fishtrack.io.tables import write_bytes

    png, svg = figure_png_svg(job.make())
    write_bytes(Path(folder) / f"{name}.png", png)
    write_bytes(Path(folder) / f"{name}.svg", svg)
    return png
