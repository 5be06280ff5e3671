"""Why the pixel-motion gate keeps or drops each candidate bout of kept stress recordings (issue 11).

Usage::

    python bench/diagnose_gate.py --keep /tmp/h11u/tune --seeds 118,364

For each recording kept by ``bench/bench_behaviour_stress.py --keep DIR``, the behaviour stage
is run again (``rescore_recording``) and the gate's inputs are read as it is called
(``fishtrack.behaviour.bouts.motion_gate``, wrapped for this run only). Printed per fish: how
many of the gate's quiet frames lie in true bouts, and each level (motion energy, tail motion,
mid-tail) measured on those frames and on the frames the truth calls still; per candidate
bout: its fraction of true-bout frames, the gate's verdict, and its peaks against each level
(and its mean tail motion against the tail's mean-test level, ``bouts.MOTION_GATE_TAIL_MEAN``).
A level far above the truly still frames' one is raised by bouts the first detection missed;
a true bout whose peaks stay under the truly still frames' levels is not visible in the pixels.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import fishtrack.behaviour.bouts as B  # noqa: E402
from fishtrack.synth.stress import rescore_recording  # noqa: E402


def _gate_inputs(seed: int, keep: Path) -> dict:
    """Re-score ``seed`` and return the gate's arguments and results (empty: no gate)."""
    cls = importlib.import_module("fishtrack.behaviour.classify")
    seen: dict = {}
    gate = cls.motion_gate

    def wrapped(kin, br, motion, body_px, tail=None, midtail=None, **kw):
        out = gate(kin, br, motion, body_px, tail, midtail, **kw)
        seen.update(kin=kin, br=br, motion=motion, body_px=body_px, tail=tail, midtail=midtail,
                    out=out)
        return out

    cls.motion_gate = wrapped
    try:
        seen["row"] = rescore_recording(seed, keep)
    finally:
        cls.motion_gate = gate
    return seen


def _true_in_bout(fr, truth: pd.DataFrame) -> np.ndarray:
    """Per sorted row: the simulator's ``in_bout`` of that fish and frame."""
    out = np.zeros(fr.n, bool)
    for g, key in fr.fish_keys.iterrows():
        t = truth[truth["arena"].astype(str) == str(key["arena"])].set_index("frame")["in_bout"]
        sel = fr.gid == g
        out[sel] = t.reindex(fr.frame[sel]).fillna(False).to_numpy(bool)
    return out


def _levels(v: np.ndarray | None, rows: np.ndarray) -> str:
    """The median and the 99th percentile of ``v`` on ``rows`` (the gate's levels are made of
    them)."""
    if v is None:
        return "n/a"
    x = v[rows & np.isfinite(v)]
    if len(x) < B.MIN_QUIET_FRAMES:
        return "n/a"
    return f"median {np.median(x):.2f} q99 {np.quantile(x, B.MOTION_GATE_QUANTILE):.2f}"


def diagnose(seed: int, keep: Path) -> list[str]:
    seen = _gate_inputs(seed, keep)
    row = seen["row"]
    if "kin" not in seen:
        return [f"seed {seed}: the gate did not run (no motion energy or midline)"]
    kin, br = seen["kin"], seen["br"]
    fr = kin.frames
    _, level, _, tail_level, mid_level = seen["out"]
    motion = B.motion_above_rig(fr, seen["motion"]) if B.MOTION_GATE_RIG_REFERENCE else seen["motion"]
    tail, mid = seen["tail"], seen["midtail"]
    true = _true_in_bout(fr, pd.read_parquet(keep / f"seed{seed}_video" / "truth.parquet"))
    quiet = B.quiet_frames(kin, br.in_bout)
    lines = [f"seed {seed}: kappa {row.get('kappa', np.nan):.3f}, passive err max "
             f"{row['passive_err_max']:.3f}, gated {row.get('n_motion_gated_bouts')}; levels: "
             f"motion {level:.2f}, tail {tail_level:.2f}, mid-tail {mid_level:.3f} rad"]
    mid_abs = None if mid is None else np.abs(mid)
    for g, key in fr.fish_keys.iterrows():
        sel = fr.gid == g
        q = quiet & sel
        lines.append(f"  {key['arena']}: true in bout {true[sel].mean():.2f}; quiet frames {q.sum()}, "
                     f"{(q & true).sum()} in true bouts")
        for name, v in (("motion", motion), ("tail", tail), ("mid-tail", mid_abs)):
            lines.append(f"    {name}: quiet {_levels(v, q)} | truly still {_levels(v, sel & ~true)}")
    kept = set(seen["out"][0].starts.tolist())

    def peak(v, a, b):
        x = None if v is None else v[a:b + 1]
        return float(np.nanmax(x)) if x is not None and np.isfinite(x).any() else float("nan")

    mean_ratio = np.full(len(br.starts), np.nan)
    if tail is not None and B.MOTION_GATE_TAIL_MEAN:
        levels = B.tail_mean_levels(fr, tail, quiet & np.isfinite(tail))
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_ratio = B._bout_mean(fr, tail, br) / B._mean_level(fr, levels,
                                                                     br.ends - br.starts + 1)
    for k, (a, b) in enumerate(zip(br.starts, br.ends, strict=True)):
        lines.append(
            f"    bout {fr.fish_keys.iloc[fr.gid[a]]['arena']} frames {fr.frame[a]}-{fr.frame[b]}: "
            f"true {true[a:b + 1].mean():.2f}, kept {a in kept}, motion {peak(motion, a, b) / level:.2f} x, "
            f"tail {peak(tail, a, b) / tail_level:.2f} x (mean {mean_ratio[k]:.2f} x), "
            f"mid-tail {peak(mid_abs, a, b) / mid_level:.2f} x")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keep", type=Path, required=True, help="the folder given to the suite's --keep")
    ap.add_argument("--seeds", required=True, help="comma-separated seeds")
    args = ap.parse_args(argv)
    for s in (int(x) for x in args.seeds.split(",")):
        print("\n".join(diagnose(s, args.keep)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
