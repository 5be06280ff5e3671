"""Re-score the kept outputs of a behaviour stress run (issue 11) with a changed rule.

Usage::

    python bench/rescore_behaviour_stress.py --keep /tmp/h11e/held --seeds 11000-11059
        [--set threshold_factor=4] [--const MOTION_GATE_SPREAD=2.0] [--csv rows.csv]
        [--out section.md]

``bench/bench_behaviour_stress.py --keep DIR`` keeps, for every recording scored from video,
its truth and the tracker's tables (``DIR/seed<N>_video``; videos deleted). This script runs
today's behaviour stage (``classify``) again on those tracks, without tracking again
(``fishtrack.synth.stress.rescore_recording``), and prints or writes the same figures as the
suite's video-mode table. ``--set key=value`` overrides the ``behaviour:`` config section;
``--const NAME=value`` sets a constant of ``fishtrack.behaviour.bouts`` (e.g. the gate's
``MOTION_GATE_*``) for this run only, ``--const module.NAME=value`` one of another module of
``fishtrack.behaviour`` (e.g. ``pixel_bouts.PIXEL_BOUTS=false``: the rule before it). Figures of a held-out range re-scored with a rule chosen
on it are no longer held-out figures: say so where they are reported.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402
import yaml  # noqa: E402

from fishtrack.synth.stress import rescore_recording  # noqa: E402


def _value(text: str):
    return yaml.safe_load(text)


def _pairs(items) -> dict:
    out = {}
    for it in items or []:
        if "=" not in it:
            raise SystemExit(f"expected NAME=value, got {it!r}")
        k, v = it.split("=", 1)
        out[k.strip()] = _value(v)
    return out


def rescore(keep: Path, seeds, *, behaviour: dict | None = None,
            constants: dict | None = None) -> pd.DataFrame:
    """One row per kept seed (a missing or failing seed is a row with ``error``)."""
    import importlib

    old = {}
    for key, v in (constants or {}).items():
        # NAME (of fishtrack.behaviour.bouts) or module.NAME (of fishtrack.behaviour.module)
        mod_name, _, k = key.rpartition(".")
        mod = importlib.import_module(f"fishtrack.behaviour.{mod_name or 'bouts'}")
        if not hasattr(mod, k):
            raise SystemExit(f"{mod.__name__} has no constant {k}")
        old[(mod, k)] = getattr(mod, k)
        setattr(mod, k, type(old[(mod, k)])(v) if isinstance(old[(mod, k)], (int, float)) else v)
    rows = []
    try:
        for s in seeds:
            try:
                rows.append(rescore_recording(s, keep, behaviour=behaviour))
            except Exception as err:  # reported, not hidden
                rows.append({"seed": s, "mode": "video", "error": f"{type(err).__name__}: {err}"[:300]})
    finally:
        for (mod, k), v in old.items():
            setattr(mod, k, v)
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    from bench_behaviour_stress import _summary_table, _worst

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keep", type=Path, required=True, help="the folder given to the suite's --keep")
    ap.add_argument("--seeds", default=None, help="A-B (default: every kept seed)")
    ap.add_argument("--set", action="append", help="behaviour config key=value")
    ap.add_argument("--const", action="append", help="fishtrack.behaviour.bouts constant NAME=value, or module.NAME=value")
    ap.add_argument("--csv", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=None, help="write the summary as Markdown")
    args = ap.parse_args(argv)
    if args.seeds:
        a, b = (int(x) for x in args.seeds.split("-"))
        seeds = range(a, b + 1)
    else:
        seeds = sorted(int(p.name[4:-6]) for p in args.keep.glob("seed*_video")
                       if (p / "tracked" / "tracks.parquet").exists())
    df = rescore(args.keep, seeds, behaviour=_pairs(args.set), constants=_pairs(args.const))
    if args.csv:
        df.to_csv(args.csv, index=False)
    ok = df[df["error"].isna()] if "error" in df else df
    err = df[df["error"].notna()] if "error" in df else df.iloc[0:0]
    lines = [f"Re-scored {len(ok)} kept recordings of {args.keep}"
             + (f" ({len(err)} failed: " + "; ".join(f"{r.seed}: {r.error}" for r in err.itertuples()) + ")"
                if len(err) else ""), ""]
    if len(ok):
        lines += _summary_table(ok) + ["", "Worst recordings:", ""] + _worst(ok)
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
