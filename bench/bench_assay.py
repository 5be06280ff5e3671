"""The assay analyses (docs/assay_analyses.md): calibration of their tests, power curves
against theory, and speed.

1. **Blocking**: a clutch effect (SD 5) with a group effect of 0 or 1 (residual SD 0.3), 4 fish
   per group and clutch, 3 clutches: false-positive rate, coverage and interval width of the
   blocked test against the unblocked one.
2. **Dose trend** (4 doses x 5 fish, residual SD 0.1): false-positive rate under no trend and
   coverage of a slope of 0.02 per dose unit.
3. **Time course**: between fish (3 time points x 2 groups x 6 fish) the Freedman-Lane
   interaction test with a constant group effect (null) and with -0.004 per h; within fish
   (8 fish per group at 3 times) the per-fish-slope test.
4. **Power**, pilot mode: a normal pilot (SD 1) shifted by d SD against the t-test's power
   (the exact answer for normal data); simulation mode: the passive fraction, control 0.3,
   SD between fish 0.15.
5. **Speed** of the per-trial parts on 24 fish x 7 min at 200 fps (2 M rows).

Seeds 1000 and up (nothing is tuned on them). ``run(out_path)`` writes a Markdown section. Run
alone: ``python bench/bench_assay.py [--out section.md] [--experiments N]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

N_EXPERIMENTS = 1000
SIZES = (6, 10, 17, 26)


def _t_power(d: float, n: int, alpha: float = 0.05) -> float:
    from scipy import stats as sst

    df = 2 * n - 2
    nc = d * np.sqrt(n / 2)
    crit = sst.t.ppf(1 - alpha / 2, df)
    return float(sst.nct.sf(crit, df, nc) + sst.nct.cdf(-crit, df, nc))


def _rate(hits, n) -> str:
    r = hits / n
    return f"{r:.3f} ± {np.sqrt(r * (1 - r) / n):.3f}"


def _blocks(n_exp: int) -> str:
    from fishtrack.config import StatsConfig
    from fishtrack.stats import compare_groups

    cfg = StatsConfig(n_permutations=999)
    plain_cfg = cfg.model_copy(update={"blocks": []})
    out = ["| test | effect | rejections (p ≤ 0.05) | coverage of the effect | mean CI width |",
           "|---|---|---|---|---|"]
    for effect in (0.0, 1.0):
        res = {"blocked": [0, 0, []], "unblocked": [0, 0, []]}
        for k in range(n_exp):
            rng = np.random.default_rng(1000 + k)
            rows = []
            for c, shift in enumerate(rng.normal(0, 5.0, 3)):
                for g, d in (("control", 0.0), ("ketamine", effect)):
                    for i in range(4):
                        rows.append({"fish_id": f"{g}{c}{i}", "group": g, "phase": "ol",
                                     "clutch": f"c{c}",
                                     "passive_fraction": shift + d + rng.normal(0, 0.3)})
            pf = pd.DataFrame(rows)
            for name, c_ in (("blocked", cfg), ("unblocked", plain_cfg)):
                r = compare_groups(pf, c_, metrics=["passive_fraction"]).iloc[0]
                res[name][0] += r["p_value"] <= 0.05
                res[name][1] += r["ci_low"] <= effect <= r["ci_high"]
                res[name][2].append(r["ci_high"] - r["ci_low"])
        for name, (rej, cov, w) in res.items():
            out.append(f"| {name} | {effect:g} | {_rate(rej, n_exp)} | {_rate(cov, n_exp)} | "
                       f"{np.mean(w):.2f} |")
    return "\n".join(out)


def _dose(n_exp: int) -> str:
    from fishtrack.config import StatsConfig
    from fishtrack.stats.doseresponse import dose_response

    cfg = StatsConfig(n_permutations=999, n_bootstrap=100, dose_scale="linear", blocks=[],
                      dose_model="monotone")
    out = ["| true slope | rejections | coverage |", "|---|---|---|"]
    for slope in (0.0, 0.02):
        rej = cov = 0
        for k in range(n_exp):
            rng = np.random.default_rng(2000 + k)
            rows = [{"fish_id": f"d{d}-{i}", "group": "g", "dose": d, "phase": "ol",
                     "passive_fraction": 0.3 + slope * d + rng.normal(0, 0.1)}
                    for d in (0, 1, 3, 10) for i in range(5)]
            t = dose_response(pd.DataFrame(rows), cfg, phase="ol",
                              metrics=["passive_fraction"]).trend.iloc[0]
            rej += t["p_value"] <= 0.05
            cov += t["ci_low"] <= slope <= t["ci_high"]
        out.append(f"| {slope:g} | {_rate(rej, n_exp)} | {_rate(cov, n_exp)} |")
    return "\n".join(out)


def _time(n_exp: int) -> str:
    from fishtrack.config import StatsConfig
    from fishtrack.stats.timecourse import time_course

    cfg = StatsConfig(n_permutations=999, blocks=[])
    out = ["| design | true interaction (per h) | rejections | coverage |", "|---|---|---|---|"]
    times = (1.0, 24.0, 48.0)
    for design in ("between fish", "within fish"):
        for inter in (0.0, -0.004):
            rej = cov = 0
            for k in range(n_exp):
                rng = np.random.default_rng(3000 + k)
                rows = []
                for g in ("control", "ketamine"):
                    n_fish = 6 if design == "between fish" else 8
                    for i in range(n_fish):
                        base = 0.3 + (0.1 if g == "ketamine" else 0.0) + (
                            rng.normal(0, 0.1) if design == "within fish" else 0.0)
                        for t in times:
                            fid = f"{g}{i}" if design == "within fish" else f"{g}{i}-{t:g}"
                            slope = inter if g == "ketamine" else 0.0
                            rows.append({"fish_id": fid, "group": g, "phase": "ol",
                                         "time_since_treatment_h": t,
                                         "passive_fraction": base + slope * t
                                         + rng.normal(0, 0.05)})
                r = time_course(pd.DataFrame(rows), cfg, phase="ol",
                                metrics=["passive_fraction"]).interaction.iloc[0]
                rej += r["p_value"] <= 0.05
                cov += r["ci_low"] <= inter <= r["ci_high"]
            out.append(f"| {design} | {inter:g} | {_rate(rej, n_exp)} | {_rate(cov, n_exp)} |")
    return "\n".join(out)


def _power(n_exp: int, tmp: Path) -> tuple[str, str, float]:
    from fishtrack.config import StatsConfig
    from fishtrack.stats.power import power_curve

    rng = np.random.default_rng(1000)
    pilot = tmp / "per_fish.csv"
    pd.DataFrame({"fish_id": [f"c{i}" for i in range(2000)], "group": "control",
                  "phase": "open_loop", "phase_kind": "open_loop",
                  "passive_fraction": rng.normal(0.0, 1.0, 2000)}).to_csv(pilot, index=False)
    lines = ["| effect (SD) | fish/group | power (permutation, pilot) [95% MC] | t-test power | "
             "difference / MC SE |", "|---|---|---|---|---|"]
    worst = 0.0
    for d in (0.5, 0.8, 1.0):
        res = power_curve(effect=d, sizes=SIZES, n_experiments=n_exp, pilot=pilot,
                          stats=StatsConfig(n_permutations=999), seed=1000)
        for _, r in res.table.iterrows():
            n = int(r["n_per_group"])
            want = _t_power(d, n)
            z = (r["power"] - want) / np.sqrt(max(want * (1 - want), 1e-9) / n_exp)
            worst = max(worst, abs(z))
            lines.append(f"| {d:g} | {n} | {r['power']:.3f} [{r['ci_low']:.3f}-"
                         f"{r['ci_high']:.3f}] | {want:.3f} | {z:+.1f} |")
    sim = ["| effect | fish/group | power [95% MC interval] |", "|---|---|---|"]
    for eff in (0.10, 0.15):
        res = power_curve(effect=eff, sizes=(6, 10, 20, 30), n_experiments=n_exp // 2, seed=1001)
        for _, r in res.table.iterrows():
            sim.append(f"| +{eff:.2f} | {int(r['n_per_group'])} | {r['power']:.3f} "
                       f"[{r['ci_low']:.3f}-{r['ci_high']:.3f}] |")
    return "\n".join(lines), "\n".join(sim), worst


def _speed() -> str:
    from fishtrack.config import Config, Phase
    from fishtrack.stats import per_fish_metrics
    from fishtrack.stats.assay import trial_parts
    from fishtrack.stats.simulate import simulate_experiment

    protocol = [Phase(name="cl1", kind="closed_loop", start_s=0, end_s=120),
                Phase(name="ol1", kind="open_loop", start_s=120, end_s=420)]
    sim = simulate_experiment(12, passive_mean={"control": 0.3, "ketamine": 0.45},
                              protocol=protocol, fps=200.0, seed=1002)
    tr = sim.tracks
    tr["tail_angle"] = 0.0
    n = len(tr)
    cfg = Config(protocol=protocol)
    t0 = time.perf_counter()
    per_fish_metrics(tr, sim.bouts, sim.epochs, protocol, sim.fish_table)
    t1 = time.perf_counter()
    parts = trial_parts(tr, sim.bouts, sim.epochs, protocol, sim.fish_table, cfg)
    t2 = time.perf_counter()
    return (f"24 fish x 7 min at 200 fps ({n / 1e6:.1f} M rows): `per_fish_metrics` (with the "
            f"assay metrics) {t1 - t0:.1f} s; `trial_parts` (5 give-up thresholds + "
            f"onset-locked traces of {len(parts['traces'])} rows) {t2 - t1:.1f} s.")


def run(out_path: Path, *, n_experiments: int = N_EXPERIMENTS) -> dict:
    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="bench-assay-"))
    blocks = _blocks(n_experiments)
    t_b = time.perf_counter()
    dose = _dose(n_experiments // 2)
    tcourse = _time(n_experiments // 2)
    t_c = time.perf_counter()
    pilot, sim, worst = _power(n_experiments, tmp)
    t_p = time.perf_counter()
    speed = _speed()
    text = (
        "## Assay analyses (`bench/bench_assay.py`)\n\n"
        "Calibration of the tests added for issue 16 (docs/assay_analyses.md); 999 "
        "permutations per test; cells: rate ± binomial Monte Carlo SE; seeds 1000 and up, "
        "nothing tuned on them.\n\n"
        f"**Blocking** ({n_experiments} experiments per row; 3 clutches with a clutch SD of 5, "
        "4 fish per group and clutch, residual SD 0.3):\n\n" + blocks
        + f"\n\n**Dose trend** ({n_experiments // 2} experiments per row; doses 0, 1, 3, 10 x "
        "5 fish, residual SD 0.1, linear scale):\n\n" + dose
        + f"\n\n**Group x time interaction** ({n_experiments // 2} experiments per row; "
        "times 1, 24, 48 h; a constant group effect of 0.1; residual SD 0.05; between fish: 6 "
        "fish per group and time; within fish: 8 fish per group, fish SD 0.1):\n\n" + tcourse
        + f"\n\n({t_c - t0:.0f} s.)\n\n**Power, pilot mode** (a pilot of 2000 normal fish, "
        f"SD 1, shifted by d SD; {n_experiments} experiments per cell) against the t-test's "
        "power (noncentral t, exact for normal data); last column: difference in Monte Carlo "
        "SEs:\n\n" + pilot + f"\n\nLargest |difference| / SE: {worst:.1f}.\n\n"
        f"**Power, simulation mode** (passive fraction, control 0.3, SD between fish 0.15; "
        f"{n_experiments // 2} experiments per cell):\n\n" + sim
        + f"\n\n({t_p - t_c:.0f} s.)\n\n**Speed**: {speed}\n\nRun time "
        f"{(time.perf_counter() - t0) / 60:.1f} min (blocking {t_b - t0:.0f} s).\n")
    Path(out_path).write_text(text, encoding="utf-8")
    return {"worst_z": worst, "minutes": (time.perf_counter() - t0) / 60}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=Path("bench_assay.md"))
    ap.add_argument("--experiments", type=int, default=N_EXPERIMENTS)
    args = ap.parse_args(argv)
    res = run(args.out, n_experiments=args.experiments)
    print(args.out.read_text(encoding="utf-8"))
    print(res, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
