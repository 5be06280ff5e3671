"""``fishtrack init``: how often the proposed layout is the true one, on simulated recordings
never used to develop it.

The wizard's layout proposal (:func:`fishtrack.wizard.propose_layout`) was developed on the
sample videos, the real recordings of ``../shared/videos`` and simulated chambers with seeds
1-6. Here every recording is simulated with a seed from 1000 on: a random layout (plates of
6, 12, 24, 48 or 96 wells, some larvae that never move, some wells empty; head-embedded larvae
on a 1-3 x 1-4 grid; a chamber with 1-6 larvae), random polarity, camera noise, illumination
gradient, dust and frame rate. A proposal is right when layout, rows, columns and fish per
arena all match the truth. ``run(out_path)`` writes a Markdown section; run alone:
``python bench/bench_init.py [--n 40] [--out section.md]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

SEEDS_FROM = 1000
PLATES = ((2, 3, 40), (3, 4, 32), (4, 6, 24), (6, 8, 20), (8, 12, 16))  # rows, cols, fish px


def _spec(seed: int):
    import numpy as np

    from fishtrack.synth import SimSpec
    from fishtrack.synth.spec import arena_names

    rng = np.random.default_rng(seed)
    kind = ("wells", "embedded", "chamber")[seed % 3]
    common = dict(name=f"rec{seed}", seed=seed, duration_s=8.0, fps=float(rng.choice([25, 30, 50])),
                  polarity=str(rng.choice(["dark", "dark", "bright"])),
                  noise_sd=float(rng.uniform(1, 4)), gradient=float(rng.uniform(0, 0.1)),
                  n_dust=int(rng.integers(0, 30)))
    if kind == "wells":
        rows, cols, fish = PLATES[int(rng.integers(len(PLATES)))]
        names = arena_names(rows, cols)
        k = int(rng.integers(0, max(1, len(names) // 6)))
        picked = [str(a) for a in rng.choice(names, size=2 * k, replace=False)] if k else []
        spec = SimSpec(layout="wells", rows=rows, cols=cols, fish_length_px=fish,
                       still_arenas=picked[:k], empty_arenas=picked[k:], **common)
        want = ("wells", rows, cols, 1)
    elif kind == "embedded":
        rows, cols = int(rng.integers(1, 4)), int(rng.integers(1, 5))
        spec = SimSpec(layout="embedded", rows=rows, cols=cols,
                       fish_length_px=float(rng.uniform(50, 90)), **common)
        want = ("embedded", rows, cols, 1)
    else:
        n = int(rng.integers(1, 7))
        spec = SimSpec(layout="chamber", fish_per_arena=n, fish_length_px=float(rng.uniform(20, 30)),
                       **common)
        want = ("chamber", 1, 1, n)
    return spec, want


def run(out_path: Path, n: int = 30) -> dict:
    from fishtrack.io.video import open_video
    from fishtrack.synth import simulate
    from fishtrack.tracking import estimate_background
    from fishtrack.wizard import propose_layout

    rows = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fishtrack-bench-init-") as tmp:
        for seed in range(SEEDS_FROM, SEEDS_FROM + n):
            spec, want = _spec(seed)
            res = simulate(spec, Path(tmp) / f"s{seed}")
            t1 = time.perf_counter()
            with open_video(res.video_path) as src:
                lay = propose_layout(estimate_background(src))
            got = (lay.layout, lay.rows, lay.cols, lay.fish_per_arena)
            rows.append({"seed": seed, "want": want, "got": got, "ok": got == want,
                         "s": time.perf_counter() - t1})
            print(f"   seed {seed}: want {want}, got {got}", flush=True)
    by_kind: dict[str, list[bool]] = {}
    for r in rows:
        by_kind.setdefault(r["want"][0], []).append(r["ok"])
    wrong = [r for r in rows if not r["ok"]]
    lines = [
        "## `fishtrack init`: proposed layouts",
        "",
        f"{n} simulated recordings, seeds {SEEDS_FROM}-{SEEDS_FROM + n - 1} (never used to develop "
        "the proposal): plates of 6-96 wells (some larvae that never move, some wells empty), "
        "head-embedded larvae on 1-3 x 1-4 grids, chambers of 1-6 larvae; random polarity, noise, "
        "gradient, dust, frame rate; 8 s each. Right = layout, rows, columns and fish per arena "
        "all equal to the truth (`bench/bench_init.py`).",
        "",
        "| layout | recordings | right |",
        "|---|---:|---:|",
    ]
    for kind, oks in sorted(by_kind.items()):
        lines.append(f"| {kind} | {len(oks)} | {sum(oks)} ({100 * sum(oks) / len(oks):.0f} %) |")
    total = sum(r["ok"] for r in rows)
    lines.append(f"| all | {len(rows)} | {total} ({100 * total / len(rows):.0f} %) |")
    lines += ["", f"Time per recording (background + proposal): median "
              f"{sorted(r['s'] for r in rows)[len(rows) // 2]:.2f} s, max "
              f"{max(r['s'] for r in rows):.2f} s; whole benchmark {time.perf_counter() - t0:.0f} s."]
    if wrong:
        lines += ["", "Wrong proposals (truth -> proposed: layout, rows, cols, fish per arena):", ""]
        lines += [f"* seed {r['seed']}: {r['want']} -> {r['got']}" for r in wrong]
    out_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"n": len(rows), "right": total, "wrong": [(r["seed"], r["want"], r["got"]) for r in wrong]}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--out", type=Path, default=Path("bench_init.md"))
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    print(run(args.out, args.n))
