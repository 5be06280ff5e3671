"""Regenerate the demo experiment in ``sample_videos/`` with the fishtrack simulator.

Writes, next to this script (or into ``--out``):

* ``plate24/``  - a 24-well plate (4 x 6), one larva per well, left half control, right half
  ketamine (strong effect), wells B2 and C5 hold a larva that never moves, A6 is empty;
  70 s at 50 fps: closed loop 0-20 s, open loop 20-70 s; H.264.
* ``embedded/`` - four head-embedded larvae (2 x 2; left column control, right column
  ketamine), 50 s at 100 fps: closed loop 0-10 s, open loop 10-40 s, closed loop 40-50 s;
  H.264.
* ``manifest.csv`` - one row per larva: ``video`` (relative to the manifest), ``arena``,
  ``group``, ``config`` (the per-video config, since the plate and the embedded rig need
  different layouts). The empty well is not listed.

Each folder holds the video, ``config.yaml`` (fishtrack config for tracking it), the ground
truth (``truth.parquet``, ``truth_bouts.csv``, ``truth_arenas.csv``) and ``sim_spec.yaml``.
The output is identical on every run (fixed seeds). Usage::

    python sample_videos/make_samples.py            # or: make samples
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from fishtrack.synth import SimSpec, simulate

HERE = Path(__file__).resolve().parent
MAX_TOTAL_MB = 25.0

PLATE24 = SimSpec(
    name="plate24",
    layout="wells",
    rows=4,
    cols=6,
    fish_length_px=24,
    arena_size_px=94,  # 15.6 mm wells, 4 mm larvae
    fps=50,
    duration_s=70,
    polarity="dark",
    noise_sd=2.5,
    flicker=0.01,
    gradient=0.1,
    n_dust=40,
    codec="h264",
    crf=23,
    seed=2024,
    groups="halves",
    effect=0.8,
    still_arenas=["B2", "C5"],
    empty_arenas=["A6"],
    protocol=[
        {"name": "closed_loop_1", "kind": "closed_loop", "start_s": 0, "end_s": 20},
        {"name": "open_loop_1", "kind": "open_loop", "start_s": 20, "end_s": 70},
    ],
)

EMBEDDED = SimSpec(
    name="embedded",
    layout="embedded",
    rows=2,
    cols=2,
    fish_length_px=80,
    fps=100,
    duration_s=50,
    polarity="dark",
    noise_sd=2.0,
    flicker=0.01,
    gradient=0.05,
    n_dust=10,
    codec="h264",
    crf=23,
    seed=7,
    groups="halves",
    effect=0.8,
    protocol=[
        {"name": "closed_loop_1", "kind": "closed_loop", "start_s": 0, "end_s": 10},
        {"name": "open_loop_1", "kind": "open_loop", "start_s": 10, "end_s": 40},
        {"name": "closed_loop_2", "kind": "closed_loop", "start_s": 40, "end_s": 50},
    ],
)


def _size_mb(path: Path) -> float:
    files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
    return sum(p.stat().st_size for p in files) / 1e6


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=HERE, help="output folder (default: next to this script)")
    args = ap.parse_args(argv)
    out: Path = args.out
    rows = []
    for spec in (PLATE24, EMBEDDED):
        res = simulate(spec, out / spec.name)
        groups = spec.group_of()
        present = sorted(set(res.truth["fish"]), key=lambda f: (len(f), f))
        rel = res.video_path.relative_to(out).as_posix()
        cfg_rel = (res.video_path.parent / "config.yaml").relative_to(out).as_posix()
        rows.extend({"video": rel, "arena": f, "group": groups[f], "config": cfg_rel} for f in present)
        print(f"{rel}: {res.n_frames} frames {res.width}x{res.height}, {len(present)} larvae, "
              f"{len(res.bouts)} bouts, {_size_mb(out / spec.name):.1f} MB")
    manifest = out / "manifest.csv"
    with manifest.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=["video", "arena", "group", "config"])
        w.writeheader()
        w.writerows(rows)
    total = sum(_size_mb(out / s.name) for s in (PLATE24, EMBEDDED)) + _size_mb(manifest)
    print(f"total {total:.1f} MB (limit {MAX_TOTAL_MB:.0f} MB); manifest: {manifest}")
    if total > MAX_TOTAL_MB:
        print("error: samples exceed the size limit", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
