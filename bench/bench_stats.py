"""Calibration of the group statistics on simulated experiments, over several seeds.

Every row of the table in ``docs/statistics.md`` ("Calibration"): false-positive rate,
interval coverage, power and agreement of interval and p-value of the passive-fraction
comparison; the log-rank false-positive rate (permutation and chi-square); and, with repeated
trials (ICC 0.5), the false-positive rate of the old mixed-model Wald test next to the
fish-level permutation test. Each cell pools ``N_EXPERIMENTS`` experiments of each of the
seeds ``SEEDS`` (reporting range; nothing is tuned on them) and gives the binomial Monte Carlo
SE and the range of the single-seed rates.

``run(out_path)`` writes a Markdown section to ``out_path``. Run alone:
``python bench/bench_stats.py [--out section.md] [--experiments N] [--seeds A-B]``
(the same table as ``python -m fishtrack.stats.simulate``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

SEEDS = range(1000, 1005)
N_EXPERIMENTS = 400


def run(out_path: Path, *, seeds=SEEDS, n_experiments: int = N_EXPERIMENTS) -> dict:
    from fishtrack.stats.simulate import calibrate, calibration_markdown

    t0 = time.perf_counter()
    table = calibrate(seeds=seeds, n_experiments=n_experiments,
                      progress=lambda sc, seed: print(f"   {sc} seed {seed}: "
                                                      f"{time.perf_counter() - t0:.0f} s",
                                                      flush=True))
    elapsed = time.perf_counter() - t0
    text = ("## Statistics calibration\n\n"
            "`bench/bench_stats.py` (= `python -m fishtrack.stats.simulate`): simulated "
            "experiments through `per_fish_metrics` and `compare_groups` (999 permutations "
            "and resamples); groups control / null (same passive fraction) / treated (+0.15). "
            "Columns are explained in docs/statistics.md.\n\n"
            + calibration_markdown(table, seeds=seeds, n_experiments=n_experiments)
            + f"\nRun time: {elapsed / 60:.1f} min.\n")
    Path(out_path).write_text(text, encoding="utf-8")
    return {"minutes": elapsed / 60, "rows": len(table)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=Path("bench_stats.md"))
    ap.add_argument("--experiments", type=int, default=N_EXPERIMENTS)
    ap.add_argument("--seeds", default=f"{SEEDS[0]}-{SEEDS[-1]}")
    args = ap.parse_args(argv)
    a, _, b = args.seeds.partition("-")
    run(args.out, seeds=range(int(a), int(b or a) + 1), n_experiments=args.experiments)
    print(args.out.read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
