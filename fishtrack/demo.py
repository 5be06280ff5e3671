"""``make demo``: run fishtrack's main job on the bundled sample videos.

Runs the sample experiment (``sample_videos/manifest.csv``: the plate and the head-embedded
sample) with its config, writing per-trial folders, per-fish metrics, group statistics and
``report.html`` (without the manifest, each sample video is tracked as a single trial). Prints
where the outputs are and ends with the result in one line: the primary endpoint's estimate, its
confidence interval and p-value (:func:`result_line`), and the report's path.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import pandas as pd
from rich.console import Console

from fishtrack.config import load_config
from fishtrack.errors import FishtrackError
from fishtrack.experiment import run_experiment
from fishtrack.pipeline import track_to_folder
from fishtrack.preview import write_preview

PRIMARY = {"metric": "passive_fraction", "phase": "open_loop"}
"""The default primary endpoint (``stats.primary`` of the config): the open-loop passive
fraction (all open-loop phases together), the difference of group means from the reference
group. Tables that carry a ``role`` column (written by :func:`fishtrack.stats.compare_groups`)
name their own primary rows, so a config's other ``stats.primary`` is followed."""
_LABELS = {"passive_fraction": "passive fraction", "open_loop": "open-loop",
           "closed_loop": "closed-loop"}

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_videos"
console = Console()


def _videos_with_configs() -> list[tuple[Path, Path]]:
    pairs = []
    for cfg in sorted(SAMPLES.glob("*/config.yaml")):
        vids = [p for p in cfg.parent.iterdir() if p.suffix.lower() in (".mp4", ".avi", ".mkv", ".tif", ".tiff")]
        pairs.extend((v, cfg) for v in sorted(vids))
    return pairs


def primary_endpoint(group_stats, metric: str | None = None, phase: str | None = None):
    """The rows of ``group_stats`` (a DataFrame or the path of ``group_stats.csv``) for the
    primary endpoint (:data:`PRIMARY` unless ``metric``/``phase`` are given): one row per
    group compared with the reference group."""
    gs = pd.read_csv(group_stats) if isinstance(group_stats, str | Path) else group_stats
    if gs.empty or not {"metric", "phase"} <= set(gs.columns):
        return gs.iloc[0:0]
    if metric is None and phase is None and "role" in gs.columns:
        return gs[gs["role"] == "primary"]
    metric = metric or PRIMARY["metric"]
    phase = phase or PRIMARY["phase"]
    return gs[(gs["metric"] == metric) & (gs["phase"].astype(str) == phase)]


def _num(v: float, digits: int = 3) -> str:
    # an interval that inverts a permutation test is unbounded when too few relabellings
    # exist (e.g. 3 vs 4 fish): print -inf / inf rather than hide it
    return "n/a" if v is None or math.isnan(float(v)) else f"{float(v):.{digits}f}"


def result_line(group_stats, report: Path | str | None = None, *,
                confidence_level: float = 0.95) -> str:
    """The experiment's result in one line: for each compared group, the primary endpoint's
    difference from the reference group (estimate, confidence interval, p-value, n), then
    the report's path."""
    rows = primary_endpoint(group_stats)
    metric, phase = ((str(rows["metric"].iloc[0]), str(rows["phase"].iloc[0])) if len(rows)
                     else (PRIMARY["metric"], PRIMARY["phase"]))
    name = f"{_LABELS.get(phase, phase)} {_LABELS.get(metric, metric)}"
    parts = []
    for _, r in rows.iterrows():
        p = float(r["p_value"])
        p_txt = "p < 0.001" if p < 0.001 else f"p = {_num(p)}"
        parts.append(
            f"{r['group']} - {r['reference']} = {_num(r['diff'])} "
            f"({round(100 * confidence_level)}% CI {_num(r['ci_low'])} to {_num(r['ci_high'])}, "
            f"{p_txt}, n = {int(r['n'])} vs {int(r['n_reference'])})"
        )
    text = f"{name}: " + ("; ".join(parts) if parts else "no group comparison")
    return text + (f"; report: {report}" if report is not None else "")


def run(out: Path) -> int:
    if not SAMPLES.exists():
        console.print(f"[red]error:[/] {SAMPLES} not found (run `make samples`)")
        return 1
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    done: list[str] = []
    result: str | None = None
    manifest = SAMPLES / "manifest.csv"
    if manifest.exists():
        exp_cfg = SAMPLES / "experiment.yaml"
        console.print(f"[bold]experiment[/] {manifest} -> {out / 'experiment'}")
        res = run_experiment(manifest, exp_cfg if exp_cfg.exists() else None, out / "experiment", workers=2)
        done.append(f"experiment: {out / 'experiment'} (report: {out / 'experiment' / 'report.html'})")
        if getattr(res, "failures", None):
            console.print(f"[red]{len(res.failures)} trial(s) failed[/]")
            return 1
        level = load_config(exp_cfg if exp_cfg.exists() else None).stats.confidence_level
        result = result_line(res.group_stats, res.paths.get("report", out / "experiment" / "report.html"),
                             confidence_level=level)
    else:
        for video, cfg in _videos_with_configs():
            dest = out / video.stem
            console.print(f"[bold]track[/] {video.relative_to(ROOT)} -> {dest}")
            res = track_to_folder(video, cfg, dest)
            write_preview(video, res, dest / "preview.png", n_frames=4)
            n_fish = res.tracks["fish"].nunique() if len(res.tracks) else 0
            extra = f", {len(res.bouts)} bouts, {len(res.epochs)} epochs" if res.bouts is not None else ""
            done.append(f"{video.name}: {n_fish} fish{extra} -> {dest}")
    console.print(f"\n[green]demo finished in {time.perf_counter() - t0:.0f} s.[/] Outputs:")
    for line in done:
        console.print(f"  {line}")
    if result is not None:
        console.print(f"[bold]Result:[/] {result}", highlight=False, soft_wrap=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=Path("demo_out"))
    args = ap.parse_args(argv)
    try:
        return run(args.out)
    except FishtrackError as err:
        console.print(f"[bold red]error:[/] {err}")
        return err.exit_code


if __name__ == "__main__":
    sys.exit(main())
