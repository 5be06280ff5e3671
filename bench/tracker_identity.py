"""Check that a change to the tracker's implementation leaves its output unchanged.

Usage::

    PYTHONPATH=<tree A> python bench/tracker_identity.py track /tmp/a [CASE ...]
    PYTHONPATH=<tree B> python bench/tracker_identity.py track /tmp/b [CASE ...]
    python bench/tracker_identity.py compare /tmp/a /tmp/b

``track`` simulates a fixed set of recordings (cached in ``OUT/../sims``; wells in both
polarities with dust, still and empty wells, a 96-well plate, two 5-fish chambers,
head-embedded plates, issue 12's cases and seeds of the accuracy suite), tracks each with the
default settings and saves the tracks (Parquet) and summary (JSON). ``compare`` reports, per
recording, whether the tracks are identical (``DataFrame.equals``) and the summaries equal;
it exits 1 on any difference. Not part of ``make bench`` (a development tool).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # last: the tree given by PYTHONPATH is the one tracked

IMAGE = {"noise_sd": 3.0, "flicker": 0.03, "crf": 23}


def _cases() -> dict:
    from fishtrack.synth import SimSpec
    from fishtrack.synth.scenarios import issue_spec, suite_spec

    return {
        "w96": lambda: SimSpec(name="plate96", layout="wells", rows=8, cols=12, width=1280, height=864,
                               fps=100, duration_s=1.5, fish_length_px=28, noise_sd=2.0, seed=2),
        "w4": lambda: SimSpec(name="plate4", layout="wells", rows=2, cols=2, width=1024, height=1024,
                              fps=100, duration_s=2, fish_length_px=40, noise_sd=2.0, seed=1),
        "wdark": lambda: SimSpec(name="wells", layout="wells", rows=2, cols=3, duration_s=4, fps=50,
                                 gradient=0.2, n_dust=20, still_arenas=["A2"], empty_arenas=["B3"],
                                 seed=3, **IMAGE),
        "wbright": lambda: SimSpec(name="wells", layout="wells", rows=1, cols=3, duration_s=4, fps=50,
                                   polarity="bright", gradient=0.2, n_dust=10, still_arenas=["A3"],
                                   empty_arenas=["A2"], seed=4, **IMAGE),
        "chamber": lambda: SimSpec(name="chamber", layout="chamber", duration_s=8, fps=50, seed=1, **IMAGE),
        "chamber2": lambda: SimSpec(name="chamber", layout="chamber", duration_s=8, fps=50, seed=2, **IMAGE),
        "embedded": lambda: SimSpec(name="embedded", layout="embedded", rows=2, cols=2, duration_s=3,
                                    fps=100, polarity="bright", seed=6, **IMAGE),
        "noisy6": lambda: issue_spec("wells6_noisy_flicker", 0),
        "disc": lambda: issue_spec("disc_head", 0),
        "emb120": lambda: issue_spec("embedded_up_120px", 0),
        **{f"s{k}": (lambda k=k: suite_spec(k)) for k in (1, 2, 5, 7, 11, 13)},
    }


def track(out: Path, names: list[str]) -> None:
    import fishtrack
    from fishtrack.synth.scenarios import run_case

    cases = _cases()
    out.mkdir(parents=True, exist_ok=True)
    print(f"tracking with {Path(fishtrack.__file__).parent}", flush=True)
    for name in names or list(cases):
        spec = cases[name]()
        t0 = time.perf_counter()
        r = run_case(spec, out.parent / "sims" / name, keep=True, reuse=True)
        r["tracks"].to_parquet(out / f"{name}.parquet")
        (out / f"{name}.json").write_text(json.dumps(r["summary"], default=str, sort_keys=True))
        print(f"{name}: {len(r['tracks'])} rows, {r['track_s']:.1f} s tracking "
              f"({time.perf_counter() - t0:.1f} s in all)", flush=True)


def compare(a: Path, b: Path) -> int:
    import pandas as pd

    bad = 0
    for f in sorted(a.glob("*.parquet")):
        g = b / f.name
        if not g.exists():
            print(f"{f.stem}: missing in {b}")
            bad += 1
            continue
        x, y = pd.read_parquet(f), pd.read_parquet(g)
        same_t = x.equals(y)
        same_s = (a / f"{f.stem}.json").read_text() == (b / f"{f.stem}.json").read_text()
        bad += (not same_t) + (not same_s)
        print(f"{f.stem}: tracks {'identical' if same_t else 'DIFFER'}, summary "
              f"{'equal' if same_s else 'DIFFERS'}")
    print("all identical" if bad == 0 else f"{bad} differences")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) >= 2 and argv[0] == "track":
        track(Path(argv[1]), argv[2:])
        return 0
    if len(argv) == 3 and argv[0] == "compare":
        return compare(Path(argv[1]), Path(argv[2]))
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
