"""Identity in chambers: IDF1 of 5-larva chamber videos over a range of seeds.

Usage::

    python bench/bench_identity.py --seeds 100-139 [--csv rows.csv]

Each seed simulates the chamber video of ``tests/test_tracking.py``'s identity test (5 larvae
of 40 px, 16 s at 50 fps, noise sd 3, flicker 0.03, H.264 CRF 23), tracks it with
``track_video`` and scores identities with :func:`fishtrack.tracking.idf1` (heads matched
within a quarter of a fish length). Prints per seed IDF1 and the share of fish-frames flagged
``id_uncertain``, then the mean, median, worst and the share of videos >= 0.95 / >= 0.9.
Seeds 100-139 were used for tuning the end-of-contact resolution (2026-12-07); 16260-16279
reported it (docs/tracking.md, "Identity over 40 tuning and 20 held-out chamber videos");
19150-19169 reported the signature heading that ignores short flips (2026-12-07).
Not part of ``make bench`` (~15 s per seed).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

IMAGE = {"noise_sd": 3.0, "flicker": 0.03, "crf": 23}


def _seeds(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        out += list(range(int(a), int(b or a) + 1))
    return out


def run_seed(seed: int, folder: Path) -> dict:
    from fishtrack.config import TrackingConfig
    from fishtrack.io.video import open_video
    from fishtrack.synth import SimSpec, simulate
    from fishtrack.synth.scenarios import suite_arenas
    from fishtrack.tracking import idf1, track_video

    spec = SimSpec(name="chamber", layout="chamber", duration_s=16, fps=50, seed=seed, **IMAGE)
    sim = simulate(spec, folder)
    arenas = suite_arenas(sim.arenas, spec.layout)
    with open_video(sim.video_path) as src:
        res = track_video(src, arenas, TrackingConfig(), fish_per_arena=spec.fish_per_arena,
                          layout=spec.layout)
    t = res.tracks
    score = idf1(sim.truth, t, max_dist=0.25 * spec.fish_length_px)["idf1"]
    return {"seed": seed, "idf1": float(score), "id_uncertain": float(t["id_uncertain"].mean()),
            "fish": int(t["fish"].nunique())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="100-139")
    ap.add_argument("--csv", default=None)
    a = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="fishtrack-identity-") as tmp:
        for seed in _seeds(a.seeds):
            r = run_seed(seed, Path(tmp) / f"s{seed}")
            rows.append(r)
            print(f"seed {seed}: IDF1 {r['idf1']:.4f}, id_uncertain {r['id_uncertain']:.3f}", flush=True)
    df = pd.DataFrame(rows)
    if a.csv:
        df.to_csv(a.csv, index=False)
    v = df["idf1"].to_numpy()
    worst = int(df["seed"].iloc[int(np.argmin(v))])
    print(f"{len(v)} videos: IDF1 mean {v.mean():.3f}, median {np.median(v):.3f}, worst {v.min():.3f} "
          f"(seed {worst}); >= 0.95 in {np.mean(v >= 0.95):.0%}, >= 0.9 in {np.mean(v >= 0.9):.0%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
