"""``make demo``: run fishtrack's main job on the bundled sample videos.

Runs the sample experiment (``sample_videos/manifest.csv``) with its config when the
experiment runner is available, writing per-trial folders, per-fish metrics, group statistics
and ``report.html``; the head-embedded sample is tracked as a single trial too. Prints where
the outputs are.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rich.console import Console

from fishtrack.errors import FishtrackError

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_videos"
console = Console()


def _videos_with_configs() -> list[tuple[Path, Path]]:
    pairs = []
    for cfg in sorted(SAMPLES.glob("*/config.yaml")):
        vids = [p for p in cfg.parent.iterdir() if p.suffix.lower() in (".mp4", ".avi", ".mkv", ".tif", ".tiff")]
        pairs.extend((v, cfg) for v in sorted(vids))
    return pairs


def run(out: Path) -> int:
    if not SAMPLES.exists():
        console.print(f"[red]error:[/] {SAMPLES} not found (run `make samples`)")
        return 1
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    done: list[str] = []
    manifest = SAMPLES / "manifest.csv"
    try:
        from fishtrack.experiment import run_experiment
    except ImportError:
        run_experiment = None
    if run_experiment is not None and manifest.exists():
        exp_cfg = SAMPLES / "experiment.yaml"
        console.print(f"[bold]experiment[/] {manifest} -> {out / 'experiment'}")
        res = run_experiment(manifest, exp_cfg if exp_cfg.exists() else None, out / "experiment", workers=2)
        done.append(f"experiment: {out / 'experiment'} (report: {out / 'experiment' / 'report.html'})")
        if getattr(res, "failures", None):
            console.print(f"[red]{len(res.failures)} trial(s) failed[/]")
            return 1
    else:
        from fishtrack.pipeline import track_to_folder
        from fishtrack.preview import write_preview

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
