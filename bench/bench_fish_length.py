"""The tracker's fish-length estimate against the truth (issue 12): ``Background.fish_length_px``.

Usage::

    python bench/bench_fish_length.py --seeds 0-299 --csv lengths.csv          # tuning seeds
    python bench/bench_fish_length.py --seeds 14600-14699 --csv held.csv        # a report
    python bench/bench_fish_length.py --real                                    # real videos
    python bench/bench_fish_length.py --summarize lengths.csv
    python bench/bench_fish_length.py --seeds 0-99 --cache DIR --csv after.csv  # keep videos

Almost every length in the tracker is a fraction of the measured fish length (kernels, search
radii, the midline's step, the still-fish size limits), so this checks only the background
and calibration step (no tracking; a few seconds per seed, most of it simulation). Every seed
of the accuracy suite (:func:`fishtrack.synth.scenarios.suite_spec`: wells or head-embedded
larvae, 20-200 px, random drawing and imaging) gives one row per kind: ``wells`` or
``embedded`` as drawn, and ``chamber``: the same drawing and imaging as one round arena with
2-5 larvae (:func:`fishtrack.synth.scenarios.chamber_spec`). The ratio is the measured length over the drawn one
(snout to tail tip; a faint tip fades into the noise, so a ratio somewhat below 1 is what a
careful observer would measure too). ``--real`` measures the five real videos of
``tests/test_tracking_real.py`` against their hand-measured lengths.

Tuning seeds are 0-999; reporting ranges (never used for tuning) are those of
:data:`fishtrack.synth.scenarios.REPORT_RANGES`, e.g. 14600-14699 (opened for the
fish-length fixes of 2026-12-06).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fishtrack.config import TrackingConfig  # noqa: E402
from fishtrack.io.video import open_video  # noqa: E402
from fishtrack.synth import scenarios as sc  # noqa: E402
from fishtrack.tracking import estimate_background  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from bench_tracker_accuracy import _parse_seeds  # noqa: E402

#: the real videos (tests/test_tracking_real.py): layout, fish per arena
REAL = {
    "onefish_trial1_1000fps.mp4": ("chamber", 1),
    "threefish_trial2_1000fps.mp4": ("chamber", 3),
    "head_embedded_stytra.avi": ("embedded", 1),
    "free_swim_strip_stytra.avi": ("chamber", 1),
    "eight_fish_tank_idtrackerai.avi": ("chamber", 8),
}
VIDEOS = ROOT.parent / "shared" / "videos"


def measure(spec, folder: Path | None = None) -> dict:
    """Simulate ``spec`` (or re-use its simulation in ``folder``) and measure the fish length
    (background and calibration only)."""
    with tempfile.TemporaryDirectory(prefix="fishtrack-len-") as tmp:
        out = Path(folder or tmp)
        t0 = time.perf_counter()
        sim = sc._simulated(spec, out, reuse=folder is not None)
        t1 = time.perf_counter()
        arenas = sc.suite_arenas(sim.arenas, spec.layout)
        with open_video(sim.video_path) as src:
            bg = estimate_background(src, TrackingConfig(), arenas,
                                     fish_per_arena=spec.fish_per_arena, layout=spec.layout)
        t2 = time.perf_counter()
    ev = getattr(bg, "length_evidence", {})
    row = {
        "seed": spec.seed, "layout": spec.layout, "n_fish": spec.fish_per_arena,
        "length_px": spec.fish_length_px, "est_length_px": bg.fish_length_px,
        "ratio": bg.fish_length_px / spec.fish_length_px, "method": ev.get("method"),
        "polarity": spec.polarity, "codec": spec.codec, "noise_sd": round(spec.noise_sd, 2),
        "tip_contrast": round(spec.tail_tip_contrast, 1), "head_style": spec.head_style,
        "noisy": any(m.smooth > 0 for m in bg.models),
        "n_still": sum(len(m.still) for m in bg.models),
        "still_px": "/".join(str(v) for v in ev.get("still", [])),
        "sim_s": round(t1 - t0, 2), "bg_s": round(t2 - t1, 2),
        # the arenas' empty backgrounds: with the same length and area, the same tracking
        "bg_digest": hashlib.sha1(b"".join(m.bg.tobytes() for m in bg.models)).hexdigest()[:12],
        "est_area_px": bg.fish_area_px,
    }
    for stage in ("first", "final"):
        for k, v in ev.get(stage, {}).items():
            row[f"{stage}_{k}"] = round(v, 1)
    return row


def real_rows() -> pd.DataFrame:
    """The measured length of each real video against its hand-measured length."""
    from fishtrack.arenas import detect_arenas
    from fishtrack.config import ArenasConfig

    sys.path.insert(0, str(ROOT / "tests"))
    from test_tracking_real import LENGTH

    rows = []
    for name, (layout, fish) in REAL.items():
        path = VIDEOS / name
        if not path.is_file():
            continue
        cfg = TrackingConfig()
        with open_video(path) as src:
            bg = estimate_background(src, cfg)
            arenas = detect_arenas(bg.image, ArenasConfig(layout=layout, fish_per_arena=fish))
            bg = bg.refine(arenas, cfg, fish_per_arena=fish, layout=layout)
        ev = getattr(bg, "length_evidence", {})
        rows.append({"video": name, "hand_px": LENGTH[name], "est_length_px": round(bg.fish_length_px, 1),
                     "ratio": round(bg.fish_length_px / LENGTH[name], 3), "method": ev.get("method"),
                     "first": ev.get("first"), "final": ev.get("final"), "still": ev.get("still")})
    return pd.DataFrame(rows)


def summarize(df: pd.DataFrame) -> str:
    """Ratio distribution per kind (layout, noisy or clean), the worst seeds either way."""
    lines = ["| kind | seeds | ratio 5th / median / 95th pct | worst low (seed) | worst high (seed) "
             "| outside 0.7-1.3 |", "|---|---|---|---|---|---|"]
    df = df.assign(kind=df.layout + np.where(df.noisy, " noisy", " clean"))
    for kind, g in [*df.groupby("kind"), ("all", df)]:
        r = g.ratio.to_numpy(float)
        lo, hi = g.ratio.idxmin(), g.ratio.idxmax()
        lines.append(
            f"| {kind} | {len(g)} | {np.percentile(r, 5):.2f} / {np.median(r):.2f} / "
            f"{np.percentile(r, 95):.2f} | {g.ratio[lo]:.2f} ({g.seed[lo]}) | {g.ratio[hi]:.2f} "
            f"({g.seed[hi]}) | {int(((r < 0.7) | (r > 1.3)).sum())} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default=None, help="e.g. 0-299 or 3,7,12")
    ap.add_argument("--kinds", default="suite,chamber",
                    help="suite (wells/embedded as drawn) and/or chamber (default both)")
    ap.add_argument("--csv", type=Path, default=None, help="rows, rewritten after every seed")
    ap.add_argument("--cache", type=Path, default=None,
                    help="keep the simulations here and re-use them (before/after runs)")
    ap.add_argument("--real", action="store_true", help="the real videos' hand-measured lengths")
    ap.add_argument("--summarize", type=Path, default=None, help="the table of a CSV of a run")
    args = ap.parse_args(argv)
    if args.summarize is not None:
        print(summarize(pd.read_csv(args.summarize)))
        return 0
    if args.real:
        with pd.option_context("display.width", 250, "display.max_colwidth", 120):
            print(real_rows().to_string(index=False))
        return 0
    if not args.seeds:
        ap.error("give --seeds, --real or --summarize")
    seeds = _parse_seeds(args.seeds)
    report = set().union(*(set(r) for r in sc.REPORT_RANGES))
    if not set(seeds) <= set(sc.TUNING_SEEDS) | report:
        ap.error("seeds must lie in the tuning range (0-999) or a reporting range")
    kinds = args.kinds.split(",")
    rows = []
    for s in seeds:
        for kind in kinds:
            spec = sc.suite_spec(s) if kind == "suite" else sc.chamber_spec(s)
            r = measure(spec, None if args.cache is None else args.cache / f"{kind}{s}")
            rows.append(r)
            print(f"{s:6d} {r['layout']:8} n={r['n_fish']} L={r['length_px']:6.1f} "
                  f"est={r['est_length_px']:6.1f} ratio={r['ratio']:.2f} {r['method']} "
                  f"noisy={r['noisy']} t={r['sim_s'] + r['bg_s']:.1f}", flush=True)
            if args.csv is not None:
                tmp = args.csv.with_suffix(args.csv.suffix + ".part")
                pd.DataFrame(rows).to_csv(tmp, index=False)
                os.replace(tmp, args.csv)
    print(summarize(pd.DataFrame(rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
