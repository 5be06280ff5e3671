"""Experiment batch throughput: trials per minute with 1 and 2 local workers and through a
dask ``LocalCluster`` (2 single-threaded worker processes), the cost of a resumed run (every
trial current) and of ``compute_stats`` on an existing run.

Runs a simulated experiment of 8 trials of equal size (2x3-well plates, 30 s at 50 fps, 40 px
larvae; ``--trials`` and ``--seconds`` change it), so two workers have equal work to share,
as a lab's batch of plates does. ``run(out_path)`` writes a Markdown section to ``out_path``
and returns the figures. Run alone: ``python bench/bench_experiment.py [--out section.md]``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _simulated_experiment(folder: Path, n_videos: int = 8,
                          seconds: float = 30.0) -> tuple[Path, Path]:
    """``n_videos`` 2x3-well plates of equal size and length (seeds 0..n-1), one manifest."""
    import pandas as pd

    from fishtrack.synth import SimSpec, simulate

    rows = []
    cfg_path = None
    for i in range(n_videos):
        spec = SimSpec(name=f"plate{i + 1}", layout="wells", rows=2, cols=3, fps=50,
                       duration_s=seconds, seed=i, fish_length_px=40)
        sim = simulate(spec, folder / "videos")
        cfg_path = sim.config_path
        truth = pd.read_parquet(sim.truth_path, columns=["arena", "group"]).drop_duplicates()
        rows += [{"video": f"videos/{sim.video_path.name}", "arena": a, "group": g}
                 for a, g in zip(truth["arena"], truth["group"], strict=True)]
    manifest = folder / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return manifest, cfg_path


def _cpu_s() -> float:
    """CPU seconds (user + sys) of this process and of every child it has reaped (worker
    processes count once their pool or cluster is shut down)."""
    import resource

    me = resource.getrusage(resource.RUSAGE_SELF)
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + ch.ru_utime + ch.ru_stime


def _timed_run(manifest: Path, config, out: Path, **kw) -> tuple[float, float, object]:
    """(wall time, time of the tracking phase, result)."""
    from fishtrack.experiment import run_experiment

    marks: dict[str, float] = {}

    def progress(ev) -> None:
        now = time.perf_counter()
        marks.setdefault("first", now)
        if ev.kind == "overall":
            marks["tracked"] = now

    t0 = time.perf_counter()
    res = run_experiment(manifest, config, out, progress=progress, **kw)
    wall = time.perf_counter() - t0
    if res.failures:
        raise RuntimeError(f"bench run failed: {res.failures}")
    return wall, marks.get("tracked", t0 + wall) - t0, res


def _same_per_fish(a: Path, b: Path) -> bool:
    import pandas as pd

    return pd.read_csv(a / "per_fish.csv").equals(pd.read_csv(b / "per_fish.csv"))


def run(out_path: str | Path, n_trials: int = 8, seconds: float = 30.0) -> dict:
    import os

    from dask.distributed import LocalCluster

    from fishtrack.experiment import compute_stats, read_manifest

    out_path = Path(out_path)
    work = Path(tempfile.mkdtemp(prefix="fishtrack-bench-exp-"))
    load = os.getloadavg()[0]
    try:
        manifest, config = _simulated_experiment(work / "sim", n_trials, seconds)
        man = read_manifest(manifest)
        n_fish = len(man.table)
        results: dict[str, float] = {"n_trials": len(man.videos), "n_fish": n_fish}
        for name, kw in (("1w", {"workers": 1}), ("2w", {"workers": 2})):
            c0 = _cpu_s()
            wall, tracked, _ = _timed_run(manifest, config, work / f"out{name}",
                                          force=True, **kw)
            results[f"cpu_s_{name}"] = _cpu_s() - c0
            results[f"wall_s_{name}"] = wall
            results[f"tracking_s_{name}"] = tracked
            results[f"trials_per_min_{name}"] = 60.0 * n_trials / tracked
        c0 = _cpu_s()
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster:
            wall, tracked, _ = _timed_run(manifest, config, work / "outdask", force=True,
                                          scheduler=cluster)
        results["cpu_s_dask"] = _cpu_s() - c0  # the cluster's start and stop included
        results["wall_s_dask"] = wall
        results["tracking_s_dask"] = tracked
        results["trials_per_min_dask"] = 60.0 * n_trials / tracked
        results["identical"] = (_same_per_fish(work / "out1w", work / "out2w")
                                and _same_per_fish(work / "out1w", work / "outdask"))
        wall, _, res = _timed_run(manifest, config, work / "out1w", workers=1)
        assert set(res.trials["status"]) == {"skipped"}
        results["resumed_run_s"] = wall
        t0 = time.perf_counter()
        compute_stats(work / "out1w")
        results["compute_stats_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        compute_stats(work / "out1w", report=False)
        results["compute_stats_no_report_s"] = time.perf_counter() - t0
    finally:
        shutil.rmtree(work, ignore_errors=True)
    r = results
    r["load_before"] = load
    r["load_after"] = os.getloadavg()[0]
    r["speedup_2w"] = r["trials_per_min_2w"] / r["trials_per_min_1w"]
    r["speedup_dask"] = r["trials_per_min_dask"] / r["trials_per_min_1w"]
    r["speedup_wall_2w"] = r["wall_s_1w"] / r["wall_s_2w"]
    r["speedup_wall_dask"] = r["wall_s_1w"] / r["wall_s_dask"]
    text = f"""## Experiment batch (`bench/bench_experiment.py`)

A simulated experiment of {n_trials} trials of equal size (2x3-well plates, {seconds:g} s at
50 fps, 40 px larvae): {n_trials} trials, {n_fish} fish, on {os.cpu_count()} cores (load
average {r['load_before']:.1f} before, {r['load_after']:.1f} after). Tracking phase = arena
check plus every trial (spawned worker processes and their imports included; since
2026-12-07 each trial's worker also computes the trial's statistics inputs in it); wall = the
whole `run_experiment` including statistics and report (the `fishtrack run` a user waits for). CPU = user + sys seconds of the benchmark
process and every worker process (the machine's other load is not in it: judge the workers'
overhead by it when the machine is shared). With 2 workers each worker process caps its
threads at its share of the cores (docs/experiments.md, "Threads per worker").

| | 1 worker | 2 workers | dask `LocalCluster` (2 processes x 1 thread) |
|---|---|---|---|
| trials per minute (tracking phase) | {r['trials_per_min_1w']:.1f} | {r['trials_per_min_2w']:.1f} | {r['trials_per_min_dask']:.1f} |
| tracking phase (s) | {r['tracking_s_1w']:.1f} | {r['tracking_s_2w']:.1f} | {r['tracking_s_dask']:.1f} |
| whole run (s) | {r['wall_s_1w']:.1f} | {r['wall_s_2w']:.1f} | {r['wall_s_dask']:.1f} |
| speed-up over 1 worker (tracking phase) | 1.00 | {r['speedup_2w']:.2f} | {r['speedup_dask']:.2f} |
| speed-up over 1 worker (whole run) | 1.00 | {r['speedup_wall_2w']:.2f} | {r['speedup_wall_dask']:.2f} |
| CPU s, all processes (user + sys, whole run) | {r['cpu_s_1w']:.1f} | {r['cpu_s_2w']:.1f} | {r['cpu_s_dask']:.1f} |

`per_fish.csv` identical across the three runs: {'yes' if r['identical'] else 'NO'}.
A resumed run with every trial current takes {r['resumed_run_s']:.1f} s (file identity
checks, statistics and report). `compute_stats` on the finished run:
{r['compute_stats_s']:.1f} s with the report, {r['compute_stats_no_report_s']:.1f} s for the
CSV tables alone.
"""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(text, encoding="utf-8")
    return results


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=Path("bench_experiment.md"))
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=30.0)
    args = ap.parse_args()
    res = run(args.out, args.trials, args.seconds)
    print(args.out.read_text(encoding="utf-8"))
    sys.exit(0)
