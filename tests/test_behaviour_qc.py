"""Fish that do not swim: flagged in per_fish.csv and left out of the group statistics."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fishtrack.behaviour import classify
from fishtrack.config import Phase, StatsConfig
from fishtrack.stats import compare_groups, per_fish_metrics
from fishtrack.stats.metrics import NO_SWIMMING_REASON

PROTOCOL = [Phase(name="baseline", kind="closed_loop", start_s=0, end_s=20),
            Phase(name="futility", kind="open_loop", start_s=20, end_s=60)]


def _tracks(n_fish=6, still=("A3",), fps=50.0, seed=0):
    """Tail-beating larvae (bouts every ~0.8 s, a 6 s give-up in open loop) and still ones."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(60 * fps)) / fps
    parts = []
    for i in range(n_fish):
        name = f"A{i + 1}"
        tail = np.zeros_like(t)
        if name not in still:
            k = rng.uniform(0.2, 0.6)
            while k < 59.5:
                if 30 + i <= k < 36 + i:  # a give-up in open loop
                    k = 36.0 + i
                m = (t >= k) & (t < k + 0.25)
                tail[m] = 0.4 * np.sin(2 * np.pi * 22.0 * (t[m] - k))
                k += rng.uniform(0.6, 1.0)
        parts.append(pd.DataFrame({"frame": np.arange(len(t)), "time_s": t, "arena": name,
                                   "fish": name, "tail_angle": tail + rng.normal(0, 0.02, len(t))}))
    return pd.concat(parts, ignore_index=True)


def _fish_table(n_fish=6, exclude=None):
    return pd.DataFrame({"arena": [f"A{i + 1}" for i in range(n_fish)],
                         "group": ["control"] * (n_fish // 2) + ["ketamine"] * (n_fish - n_fish // 2),
                         "exclude": exclude if exclude is not None else [False] * n_fish,
                         "exclude_reason": [""] * n_fish})


def test_a_larva_that_never_swims_is_flagged_passive_and_excluded():
    res = classify(_tracks(), protocol=PROTOCOL)
    st = res.tracks[res.tracks["fish"] == "A3"]["state"]
    assert (st == "passive").all()  # 100 % passive in the tracks
    pf = per_fish_metrics(res.tracks, res.bouts, res.epochs, PROTOCOL, _fish_table(),
                          exclude_no_swimming=True)
    flag = pf.groupby("fish")["qc_no_swimming"].first()
    assert flag["A3"] and not flag.drop("A3").any()
    a3 = pf[pf["fish"] == "A3"]
    assert a3["exclude"].all() and (a3["exclude_reason"] == NO_SWIMMING_REASON).all()
    assert not pf.loc[pf["fish"] != "A3", "exclude"].any()
    gs = compare_groups(pf, StatsConfig(n_bootstrap=200, n_permutations=200),
                        metrics=["passive_fraction"], phases=["futility"])
    assert int(gs["n_reference"].iloc[0]) == 2  # A1, A2 of control; A3 left out
    # the switch off: flagged but kept
    kept = per_fish_metrics(res.tracks, res.bouts, res.epochs, PROTOCOL, _fish_table())
    assert kept.groupby("fish")["qc_no_swimming"].first()["A3"]
    assert not kept["exclude"].astype(bool).any()
    gs = compare_groups(kept, StatsConfig(n_bootstrap=200, n_permutations=200),
                        metrics=["passive_fraction"], phases=["futility"])
    assert int(gs["n_reference"].iloc[0]) == 3


def test_the_manifest_reason_is_kept_and_the_flag_added():
    res = classify(_tracks(), protocol=PROTOCOL)
    ft = _fish_table(exclude=["", "", "dead", "", "", ""])
    ft.loc[2, "exclude_reason"] = "dead"
    pf = per_fish_metrics(res.tracks, res.bouts, res.epochs, PROTOCOL, ft,
                          exclude_no_swimming=True)
    r = pf[pf["fish"] == "A3"]["exclude_reason"].iloc[0]
    assert r == f"dead; {NO_SWIMMING_REASON}"


def test_a_fish_that_gives_up_only_in_open_loop_is_not_flagged():
    tr = _tracks(still=())
    res = classify(tr, protocol=PROTOCOL)
    pf = per_fish_metrics(res.tracks, res.bouts, res.epochs, PROTOCOL, _fish_table(),
                          exclude_no_swimming=True)
    assert not pf["qc_no_swimming"].any()
    # without a protocol the whole record counts
    pf = per_fish_metrics(res.tracks, res.bouts, res.epochs, None)
    assert not pf["qc_no_swimming"].any()
    res = classify(_tracks(), protocol=None)
    pf = per_fish_metrics(res.tracks, res.bouts, res.epochs, None)
    assert pf.groupby("fish")["qc_no_swimming"].first()["A3"]
