"""Experiment batch throughput: trials per minute with 1 and 2 local workers, the cost of a
resumed run (every trial current) and of ``compute_stats`` on an existing run.

Runs (a copy of) the sample experiment (``sample_videos/manifest.csv``, with
``sample_videos/experiment.yaml`` when it exists) or, without it, simulates a small one (4
two-by-two plates) in a temporary folder.
``run(out_path)`` writes a Markdown section to ``out_path`` and returns the figures.
Run alone: ``python bench/bench_experiment.py [--out section.md]``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_videos"


def _simulated_experiment(folder: Path, n_videos: int = 4) -> tuple[Path, Path]:
    import pandas as pd

    from fishtrack.synth import SimSpec, simulate

    rows = []
    cfg_path = None
    for i in range(n_videos):
        spec = SimSpec(name=f"plate{i + 1}", layout="wells", rows=2, cols=2, fps=50,
                       duration_s=20, seed=i, fish_length_px=24)
        sim = simulate(spec, folder / "videos")
        cfg_path = sim.config_path
        truth = pd.read_parquet(sim.truth_path, columns=["arena", "group"]).drop_duplicates()
        rows += [{"video": f"videos/{sim.video_path.name}", "arena": a, "group": g}
                 for a, g in zip(truth["arena"], truth["group"], strict=True)]
    manifest = folder / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return manifest, cfg_path


def _sample_experiment(folder: Path) -> Path:
    """Copy the sample experiment; give each video its own config (``<folder>/config.yaml``
    next to it) when the manifest has no ``config`` column, since one config cannot describe
    both a plate and head-embedded larvae."""
    import pandas as pd

    shutil.copytree(SAMPLES, folder, ignore=shutil.ignore_patterns("*.parquet", "*.py"))
    manifest = folder / "manifest.csv"
    man = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    if "config" not in man.columns:
        own = man["video"].map(lambda v: str(Path(v).parent / "config.yaml"))
        if own.map(lambda c: (folder / c).exists()).all():
            man["config"] = own
            man.to_csv(manifest, index=False)
    return manifest


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
    return wall, marks.get("tracked", t0 + wall) - t0, res


def run(out_path: str | Path) -> dict:
    from fishtrack.experiment import compute_stats, read_manifest

    out_path = Path(out_path)
    work = Path(tempfile.mkdtemp(prefix="fishtrack-bench-exp-"))
    try:
        config = SAMPLES / "experiment.yaml"
        source = "the sample experiment (sample_videos/manifest.csv)"
        if (SAMPLES / "manifest.csv").exists():
            manifest = _sample_experiment(work / "sample")
        else:
            manifest, config = _simulated_experiment(work / "sim")
            source = "a simulated experiment (4 videos, 2x2 plates, 20 s at 50 fps)"
        config = config if config and Path(config).exists() else None
        man = read_manifest(manifest)
        n_trials = len(man.videos)
        n_fish = len(man.table)
        results: dict[str, float] = {"n_trials": n_trials, "n_fish": n_fish}
        for workers in (1, 2):
            wall, tracked, res = _timed_run(manifest, config, work / f"out{workers}",
                                            workers=workers, force=True)
            if res.failures:
                raise RuntimeError(f"bench run failed: {res.failures}")
            results[f"wall_s_{workers}w"] = wall
            results[f"tracking_s_{workers}w"] = tracked
            results[f"trials_per_min_{workers}w"] = 60.0 * n_trials / tracked
        wall, _, res = _timed_run(manifest, config, work / "out1", workers=1)
        assert set(res.trials["status"]) == {"skipped"}
        results["resumed_run_s"] = wall
        t0 = time.perf_counter()
        compute_stats(work / "out1")
        results["compute_stats_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        compute_stats(work / "out1", report=False)
        results["compute_stats_no_report_s"] = time.perf_counter() - t0
    finally:
        shutil.rmtree(work, ignore_errors=True)
    r = results
    speedup = r["trials_per_min_2w"] / r["trials_per_min_1w"]
    text = f"""## Experiment batch (`bench/bench_experiment.py`)

On {source}: {n_trials} trials, {n_fish} fish. Tracking phase = arena check plus every trial
(spawned worker processes included); wall = the whole `run_experiment` including statistics
and report.

| | 1 worker | 2 workers |
|---|---|---|
| trials per minute (tracking phase) | {r['trials_per_min_1w']:.1f} | {r['trials_per_min_2w']:.1f} |
| tracking phase (s) | {r['tracking_s_1w']:.1f} | {r['tracking_s_2w']:.1f} |
| whole run (s) | {r['wall_s_1w']:.1f} | {r['wall_s_2w']:.1f} |

Speed-up with 2 workers: {speedup:.2f}x. A resumed run with every trial current takes
{r['resumed_run_s']:.1f} s (file identity checks, statistics and report). `compute_stats` on
the finished run: {r['compute_stats_s']:.1f} s with the report, {r['compute_stats_no_report_s']:.1f}
s for the CSV tables alone.
"""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(text, encoding="utf-8")
    return results


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=Path("bench_experiment.md"))
    args = ap.parse_args()
    res = run(args.out)
    print(args.out.read_text(encoding="utf-8"))
    sys.exit(0)
