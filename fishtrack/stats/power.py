"""Power and sample size for the primary endpoint, by simulating whole experiments.

For each number of fish per group, ``n_experiments`` experiments are drawn and analysed with
the test the real analysis uses for the primary endpoint (``stats.primary``); the power is the
fraction with p ≤ ``alpha``, with a Clopper–Pearson 95 % interval for its Monte Carlo error.
Two sources of fish:

* **simulation** (the default; primary metric ``passive_fraction``): the experiment-level
  simulator of :mod:`fishtrack.stats.simulate` draws every fish's passive propensity from a
  Beta distribution with the control mean (``control_mean``) and the between-fish SD
  (``sd``), the treated group shifted by ``effect``; per-frame states and give-ups go through
  :func:`~fishtrack.stats.per_fish_metrics` and the permutation test of
  :func:`~fishtrack.stats.compare_two`, exactly as a real experiment.
* **a pilot experiment** (``pilot`` = its ``per_fish.csv``; any primary metric): fish are
  drawn with replacement from the pilot's reference group (the primary metric in the primary
  phase; repeated trials averaged per fish), and the treated group is shifted by ``effect``
  (a difference in the metric's unit), or, for a censored metric (latency, bouts before the
  first give-up), its values — censored ones too — are multiplied by ``effect`` (a ratio:
  1.5 = give up 50 % later), compared by the permutation log-rank test.

Permutation tests use ``min(stats.n_permutations, 999)`` relabellings per experiment (enough
for a decision at 0.05). Blocks, repeated trials and dose designs are not simulated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fishtrack.config import Phase, StatsConfig
from fishtrack.errors import FishtrackError
from fishtrack.io.tables import read_table, write_bytes, write_table
from fishtrack.stats.compare import compare_two, primary_phase
from fishtrack.stats.metrics import METRIC_SPECS, per_fish_metrics
from fishtrack.stats.simulate import simulate_experiment
from fishtrack.stats.survival import excluded_rows, logrank_permutation_p

__all__ = ["PowerResult", "power_curve", "pilot_values", "write_power"]


@dataclass
class PowerResult:
    """Power per group size and how it was obtained."""

    table: pd.DataFrame
    metric: str
    effect: float
    source: str
    title: str = ""
    summary: str = ""
    notes: list[str] = field(default_factory=list)


def _binom_ci(hits: int, n: int) -> tuple[float, float]:
    from scipy.stats import binomtest

    ci = binomtest(int(hits), int(n)).proportion_ci(confidence_level=0.95, method="exact")
    return float(ci.low), float(ci.high)


def pilot_values(path: str | Path, stats: StatsConfig) -> tuple[pd.DataFrame, str, str]:
    """The pilot's reference-group fish: ``value`` (and ``event`` for a censored metric)
    per fish, the metric and the phase used. Errors name the file and the problem."""
    path = Path(path)
    pf = read_table(path)
    metric = stats.primary.metric
    for col in ("fish_id", "group", "phase", metric):
        if col not in pf.columns:
            what = " (the primary endpoint, stats.primary.metric)" if col == metric else ""
            raise FishtrackError(f"{path}: no column {col!r}{what}; give a per_fish.csv "
                                 "written by fishtrack run")
    phases = list(dict.fromkeys(pf["phase"].astype(str)))
    kinds = None
    if "phase_kind" in pf.columns:
        kind_of = dict(zip(pf["phase"].astype(str), pf["phase_kind"].astype(str), strict=False))
        kinds = [kind_of[p] for p in phases]
    phase = primary_phase(phases, stats, kinds)
    if phase is None:
        raise FishtrackError(f"{path}: no phase for the primary endpoint (stats.primary.phase "
                             f"{stats.primary.phase!r}; phases: {', '.join(phases)})")
    ref = stats.reference_group
    rows = pf[(pf["phase"].astype(str) == phase) & (pf["group"].astype(str) == ref)
              & ~excluded_rows(pf)]
    v = pd.to_numeric(rows[metric], errors="coerce")
    spec = METRIC_SPECS.get(metric)
    data = pd.DataFrame({"fish_id": rows["fish_id"].astype(str).to_numpy(), "value": v.to_numpy()})
    if spec is not None and spec.kind == "time_to_event":
        if spec.censor not in rows.columns:
            raise FishtrackError(f"{path}: no column {spec.censor!r} (censoring of {metric})")
        cens = rows[spec.censor].astype("boolean").fillna(True).to_numpy(bool)
        data["event"] = ~cens
        data = data.dropna(subset=["value"]).drop_duplicates("fish_id")
    else:
        data = data.dropna(subset=["value"]).groupby("fish_id", as_index=False)["value"].mean()
    if len(data) < 3:
        raise FishtrackError(f"{path}: {len(data)} fish of the reference group {ref!r} with a "
                             f"value of {metric} in phase {phase}; a pilot needs at least 3")
    return data, metric, phase


def _concentration(mean: float, sd: float) -> float:
    c = mean * (1 - mean) / sd ** 2 - 1
    if not 0 < mean < 1 or not c > 0:
        raise FishtrackError(
            f"power: a passive fraction with mean {mean:g} cannot have an SD of {sd:g} between "
            f"fish (at most {np.sqrt(mean * (1 - mean)):.3g})")
    return float(c)


def _simulated_values(n: int, n_exp: int, *, control_mean: float, effect: float, sd: float,
                      seed: int, min_passive_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-fish open-loop passive fractions of ``n_exp`` simulated experiments: arrays
    ``(n_exp, n)`` for control and treated, through per_fish_metrics."""
    treated = control_mean + effect
    if not 0 < treated < 1:
        raise FishtrackError(f"power: control mean {control_mean:g} + effect {effect:g} is not a "
                             "passive fraction between 0 and 1")
    c = _concentration(control_mean, sd)
    protocol = [Phase(name="open_loop_1", kind="open_loop", start_s=0.0, end_s=120.0)]
    sim = simulate_experiment(n, passive_mean={"control": control_mean, "treated": treated},
                              concentration=c, n_experiments=n_exp, protocol=protocol, fps=2.0,
                              min_passive_s=min(min_passive_s, 10.0), seed=seed)
    pf = per_fish_metrics(sim.tracks, sim.bouts, sim.epochs, sim.protocol, sim.fish_table)
    pf = pf[pf["phase"] == "open_loop_1"].sort_values(["experiment", "fish_id"])
    out = []
    for g in ("control", "treated"):
        v = pf.loc[pf["group"] == g, "passive_fraction"].to_numpy(float)
        out.append(v.reshape(n_exp, n))
    return out[0], out[1]


def power_curve(
    *,
    effect: float,
    sizes: Sequence[int],
    n_experiments: int = 500,
    stats: StatsConfig | None = None,
    pilot: str | Path | None = None,
    control_mean: float = 0.3,
    sd: float = 0.15,
    alpha: float = 0.05,
    seed: int = 0,
    min_passive_s: float = 2.0,
) -> PowerResult:
    """Power of the primary endpoint's test at each group size (module docstring)."""
    stats = stats or StatsConfig()
    cfg = stats.model_copy(update={"n_permutations": min(stats.n_permutations, 999)})
    if n_experiments < 10:
        raise FishtrackError(f"power: --experiments must be at least 10; got {n_experiments}")
    rng = np.random.default_rng(seed)
    rows = []
    censored = False
    if pilot is not None:
        data, metric, phase = pilot_values(pilot, stats)
        censored = "event" in data.columns
        source = f"pilot {Path(pilot).name} ({len(data)} reference fish, {metric} in {phase})"
        if censored and not effect > 0:
            raise FishtrackError(f"power: {metric} is censored: --effect is a ratio of "
                                 f"values (> 0, e.g. 1.5); got {effect:g}")
    else:
        metric = stats.primary.metric
        if metric != "passive_fraction":
            raise FishtrackError(
                f"power: the simulator gives the passive fraction; for stats.primary.metric "
                f"{metric!r} give a pilot experiment's per_fish.csv (--pilot)")
        source = (f"simulation: passive fraction, control mean {control_mean:g}, SD between "
                  f"fish {sd:g}")
    for n in sizes:
        hits = 0
        if pilot is None:
            ctrl, trt = _simulated_values(n, n_experiments, control_mean=control_mean,
                                          effect=effect, sd=sd, seed=seed + 7919 * n,
                                          min_passive_s=min_passive_s)
        for k in range(n_experiments):
            if pilot is None:
                x, y = trt[k], ctrl[k]
            else:
                a = data.iloc[rng.integers(0, len(data), n)]
                b = data.iloc[rng.integers(0, len(data), n)]
                if censored:
                    ids1 = [f"t{i}" for i in range(n)]
                    ids0 = [f"c{i}" for i in range(n)]
                    p, _ = logrank_permutation_p(
                        a["value"].to_numpy(float) * effect, a["event"].to_numpy(bool), ids1,
                        b["value"].to_numpy(float), b["event"].to_numpy(bool), ids0,
                        n_permutations=cfg.n_permutations, rng=rng)
                    hits += bool(p <= alpha)
                    continue
                x, y = a["value"].to_numpy(float) + effect, b["value"].to_numpy(float)
            r = compare_two(x, y, cfg, rng=rng)
            hits += bool(r["p_value"] <= alpha)
        lo, hi = _binom_ci(hits, n_experiments)
        rows.append({"n_per_group": int(n), "power": hits / n_experiments, "ci_low": lo,
                     "ci_high": hi, "hits": hits, "n_experiments": int(n_experiments)})
    table = pd.DataFrame(rows)
    unit = "x (ratio)" if censored else ""
    title = f"Power for {metric} (effect {effect:g}{unit}, alpha {alpha:g}); {source}"
    ok = table[table["power"] >= 0.8]
    if len(ok):
        r = ok.iloc[0]
        summary = (f"Smallest group size with power >= 0.8: {int(r['n_per_group'])} fish per "
                   f"group (power {r['power']:.2f}, 95% Monte Carlo interval {r['ci_low']:.2f}-"
                   f"{r['ci_high']:.2f}; {n_experiments} simulated experiments per size).")
    else:
        summary = (f"Power 0.8 not reached up to {int(table['n_per_group'].max())} fish per group "
                   f"(largest: {table['power'].iloc[-1]:.2f}).")
    return PowerResult(table=table, metric=metric, effect=effect, source=source, title=title,
                       summary=summary)


def write_power(res: PowerResult, out: str | Path) -> dict[str, Path]:
    """``OUT/power.csv`` and ``OUT/power.png`` / ``.svg`` (atomically)."""
    from fishtrack.report.figures import figure_png_svg, power_figure

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table = res.table.assign(metric=res.metric, effect=res.effect, source=res.source)
    paths = {"table": write_table(table, out / "power.csv")}
    fig = power_figure(res.table, title=res.title)
    png, svg = figure_png_svg(fig)
    paths["figure"] = write_bytes(out / "power.png", png)
    paths["figure_svg"] = write_bytes(out / "power.svg", svg)
    return paths
