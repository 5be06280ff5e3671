"""Give-up sensitivity: states re-derived from the bouts at several min_passive_s values
reproduce the hand-computed passive fractions, and the configured threshold reproduces the
behaviour stage's own states."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fishtrack.config import Phase, StatsConfig
from fishtrack.stats.sensitivity import (
    compare_sensitivity,
    per_fish_sensitivity,
    sensitivity_thresholds,
)

FPS = 10.0


def _tracks(gaps_s: dict[str, list[float]]):
    """Each fish: 0.2 s bouts separated by quiet gaps of the given lengths (s)."""
    parts = []
    for arena, gaps in gaps_s.items():
        in_bout = []
        for g in gaps:
            in_bout += [True] * 2 + [False] * int(round(g * FPS))
        in_bout += [True] * 2
        n = len(in_bout)
        parts.append(pd.DataFrame({"frame": np.arange(n), "time_s": np.arange(n) / FPS,
                                   "arena": arena, "fish": arena, "detected": True,
                                   "in_bout": in_bout}))
    return pd.concat(parts, ignore_index=True)


def test_passive_fraction_follows_the_threshold():
    gaps = [1.5, 2.5, 4.0, 0.5]
    tr = _tracks({"A1": gaps})
    n = len(tr)
    sens = per_fish_sensitivity(tr, None, None, None, [1.0, 2.0, 3.0, 5.0])
    got = sens.set_index("min_passive_s")["passive_fraction"]
    for x in (1.0, 2.0, 3.0, 5.0):
        want = sum(g for g in gaps if g >= x) * FPS / n
        assert got[x] == pytest.approx(want)
    assert sens.set_index("min_passive_s")["n_passive_epochs"].to_dict() == {
        1.0: 3, 2.0: 2, 3.0: 1, 5.0: 0}


def test_thresholds():
    st = StatsConfig()
    assert sensitivity_thresholds(st, 2.0) == [1.0, 2.0, 3.0, 4.0, 6.0]
    assert sensitivity_thresholds(StatsConfig(sensitivity=[3, 1]), 2.0) == [1.0, 2.0, 3.0]
    assert sensitivity_thresholds(StatsConfig(sensitivity=[]), 2.0) == []
    with pytest.raises(ValueError):
        StatsConfig(sensitivity=[0])


def test_comparison_at_every_threshold():
    rng = np.random.default_rng(0)
    fish, groups = {}, {}
    for g, long_gap in (("control", 1.5), ("ketamine", 4.0)):
        for i in range(5):
            a = f"{g[0].upper()}{i + 1}"
            fish[a] = list(rng.uniform(0.3, 0.9, 8)) + [long_gap] * 3
            groups[a] = g
    tr = _tracks(fish)
    ft = pd.DataFrame({"arena": list(groups), "group": list(groups.values())})
    protocol = [Phase(name="ol", kind="open_loop", start_s=0, end_s=40)]
    sens = per_fish_sensitivity(tr, None, protocol, ft, [1.0, 2.0, 5.0])
    cfg = StatsConfig(n_permutations=500, n_bootstrap=200)
    res = compare_sensitivity(sens, cfg, phase="ol", metrics=["passive_fraction"])
    d = res.set_index("min_passive_s")["diff"]
    # at 1 s both groups' long gaps count; at 2 s only ketamine's; at 5 s none
    assert d[1.0] > 0 and d[2.0] > d[1.0] and d[5.0] == pytest.approx(0.0)
    assert res.set_index("min_passive_s").loc[2.0, "p_value"] < 0.05


def _bouts_of(tr: pd.DataFrame) -> pd.DataFrame:
    """The runs of ``in_bout`` frames as a bouts table."""
    rows = []
    for arena, fr in tr.groupby("arena"):
        b = fr["in_bout"].to_numpy(bool)
        edges = np.flatnonzero(np.diff(np.r_[0, b.astype(int), 0]))
        t = fr["time_s"].to_numpy(float)
        for i, j in zip(edges[::2], edges[1::2], strict=True):
            rows.append({"arena": arena, "fish": arena, "start_s": t[i],
                         "end_s": t[j - 1] + 1 / FPS})
    return pd.DataFrame(rows)


def test_fish_that_never_swam_are_left_out_at_every_threshold():
    # A1 swims in closed and open loop; A2 is still in closed loop (qc_no_swimming): with
    # stats.exclude_no_swimming it is excluded at every threshold, as in per_fish.csv
    tr = _tracks({"A1": [0.5] * 20, "A2": [12.0]})
    tr.loc[(tr["arena"] == "A2") & (tr["time_s"] < 6.0), "in_bout"] = False
    bouts = _bouts_of(tr)
    protocol = [Phase(name="cl", kind="closed_loop", start_s=0, end_s=6),
                Phase(name="ol", kind="open_loop", start_s=6, end_s=13)]
    ft = pd.DataFrame({"arena": ["A1", "A2"], "group": ["control", "control"]})
    sens = per_fish_sensitivity(tr, bouts, protocol, ft, [1.0, 2.0], exclude_no_swimming=True)
    assert set(sens["min_passive_s"]) == {1.0, 2.0}
    ex = sens[sens["phase"] == "ol"].set_index(["min_passive_s", "arena"])["exclude"]
    assert not ex[(1.0, "A1")] and not ex[(2.0, "A1")]
    assert ex[(1.0, "A2")] and ex[(2.0, "A2")]
    kept = per_fish_sensitivity(tr, bouts, protocol, ft, [1.0])
    assert "exclude" not in kept or not kept["exclude"].fillna(False).astype(bool).any()
