"""Power curves of ``fishtrack power`` (docs/assay_analyses.md), checked against theory.

1. Pilot mode: a pilot of normal per-fish values (SD 1) resampled with a shift of d SDs; the
   permutation test's power should match the two-sample t-test's (noncentral t) within Monte
   Carlo error, since the values are normal.
2. Simulation mode: the passive fraction (control 0.3, SD between fish 0.15) with +0.10 and
   +0.15, through per_fish_metrics and the permutation test: the power curve a lab would use.

Seeds 1000-1001 (nothing is tuned on them). ``run(out_path)`` writes a Markdown section. Run
alone: ``python bench/bench_power.py [--out section.md] [--experiments N]``.
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


def run(out_path: Path, *, n_experiments: int = N_EXPERIMENTS) -> dict:
    from fishtrack.config import StatsConfig
    from fishtrack.stats.power import power_curve

    t0 = time.perf_counter()
    rng = np.random.default_rng(1000)
    tmp = Path(tempfile.mkdtemp(prefix="bench-power-"))
    pilot = tmp / "per_fish.csv"
    pd.DataFrame({"fish_id": [f"c{i}" for i in range(2000)], "group": "control",
                  "phase": "open_loop", "phase_kind": "open_loop",
                  "passive_fraction": rng.normal(0.0, 1.0, 2000)}).to_csv(pilot, index=False)
    lines = ["| effect (SD) | fish/group | power (permutation, pilot) | t-test power | "
             "difference / MC SE |", "|---|---|---|---|---|"]
    worst = 0.0
    for d in (0.5, 0.8, 1.0):
        res = power_curve(effect=d, sizes=SIZES, n_experiments=n_experiments, pilot=pilot,
                          stats=StatsConfig(n_permutations=999), seed=1000)
        for _, r in res.table.iterrows():
            n = int(r["n_per_group"])
            want = _t_power(d, n)
            se = np.sqrt(max(want * (1 - want), 1e-9) / n_experiments)
            z = (r["power"] - want) / se
            worst = max(worst, abs(z))
            lines.append(f"| {d:g} | {n} | {r['power']:.3f} [{r['ci_low']:.3f}-"
                         f"{r['ci_high']:.3f}] | {want:.3f} | {z:+.1f} |")
    t1 = time.perf_counter()
    sim = ["| effect | fish/group | power [95% MC interval] |", "|---|---|---|"]
    for eff in (0.10, 0.15):
        res = power_curve(effect=eff, sizes=(6, 10, 20, 30), n_experiments=n_experiments // 2,
                          seed=1001)
        for _, r in res.table.iterrows():
            sim.append(f"| +{eff:.2f} | {int(r['n_per_group'])} | {r['power']:.3f} "
                       f"[{r['ci_low']:.3f}-{r['ci_high']:.3f}] |")
        sim.append(f"| | | {res.summary} |")
    t2 = time.perf_counter()
    text = (
        "## Power analysis (`fishtrack power`)\n\n"
        "`bench/bench_power.py`. **Pilot mode** (a pilot of 2000 normal fish, SD 1, shifted by "
        f"d SD; {n_experiments} experiments per cell, 999 permutations, seed 1000) against the "
        "two-sample t-test's power (noncentral t), which is the exact answer for normal data: "
        "the last column is the difference in Monte Carlo SEs.\n\n" + "\n".join(lines)
        + f"\n\nLargest |difference| / SE: {worst:.1f} ({t1 - t0:.0f} s)."
        "\n\n**Simulation mode** (passive fraction, control mean 0.3, SD between fish 0.15, "
        f"{n_experiments // 2} experiments per cell, seed 1001):\n\n" + "\n".join(sim)
        + f"\n\nRun time {t2 - t1:.0f} s.\n")
    Path(out_path).write_text(text, encoding="utf-8")
    return {"worst_z": worst, "seconds": t2 - t0}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=Path("bench_power.md"))
    ap.add_argument("--experiments", type=int, default=N_EXPERIMENTS)
    args = ap.parse_args(argv)
    res = run(args.out, n_experiments=args.experiments)
    print(args.out.read_text(encoding="utf-8"))
    print(res, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
