"""Time course after treatment: a known group x time interaction, between and within fish,
the per-time comparisons, and the level of the interaction test under the null."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fishtrack.config import StatsConfig
from fishtrack.stats.timecourse import time_axis, time_course

CFG = StatsConfig(n_permutations=999, n_bootstrap=200)
TIMES = (1.0, 24.0, 48.0)


def _between(seed, slope_ket, n=8, sd=0.05, main=0.0):
    rng = np.random.default_rng(seed)
    rows = []
    for t in TIMES:
        for g in ("control", "ketamine"):
            mu = 0.3 + (main + slope_ket * t if g == "ketamine" else 0.0)
            for i in range(n):
                rows.append({"fish_id": f"{g}-{t:g}h-{i}", "group": g, "phase": "open_loop",
                             "phase_kind": "open_loop", "time_since_treatment_h": t,
                             "passive_fraction": mu + rng.normal(0, sd)})
    return pd.DataFrame(rows)


def test_known_interaction_between_fish():
    pf = _between(1, slope_ket=-0.004)
    res = time_course(pf, CFG, phase="open_loop", metrics=["passive_fraction"])
    assert res.design == "between fish" and res.time_column == "time_since_treatment_h"
    r = res.interaction.iloc[0]
    assert r["ci_low"] < -0.004 < r["ci_high"]
    assert r["diff"] == pytest.approx(-0.004, abs=0.0015)
    assert r["p_value"] < 0.01 and "Freedman-Lane" in r["test"]
    # the estimate is the least-squares interaction coefficient
    t = pf["time_since_treatment_h"].to_numpy(float)
    g = (pf["group"] == "ketamine").to_numpy(float)
    x = np.column_stack([t == 1, t == 24, t == 48, g, g * (t - t.mean())]).astype(float)
    coef = np.linalg.lstsq(x, pf["passive_fraction"].to_numpy(float), rcond=None)[0]
    assert r["diff"] == pytest.approx(coef[-1])
    # the summary: one row per time and group, with the true means inside the intervals
    s = res.summary.set_index(["time", "group"])
    assert len(s) == 6
    for t in TIMES:
        assert s.loc[(t, "ketamine"), "mean"] == pytest.approx(0.3 - 0.004 * t, abs=0.05)
    # the groups compared at every time point, Holm over the three
    pt = res.per_time
    assert sorted(pt["time"]) == list(TIMES)
    assert (pt["family"] == "time course: passive_fraction").all()
    assert (pt["p_adjusted"] >= pt["p_value"] - 1e-12).all()
    late = pt[pt["time"] == 48.0].iloc[0]
    assert late["diff"] == pytest.approx(-0.192, abs=0.06) and late["p_value"] < 0.01


def test_a_constant_group_effect_is_no_interaction():
    hits = 0
    cfg = StatsConfig(n_permutations=199, n_bootstrap=100)
    for seed in range(40):
        pf = _between(100 + seed, slope_ket=0.0, n=5, main=0.1)
        r = time_course(pf, cfg, phase="open_loop", metrics=["passive_fraction"]).interaction
        r = r.iloc[0]
        hits += r["p_value"] <= 0.05
        assert (r["ci_low"] <= 0 <= r["ci_high"]) == (r["p_value"] > 0.05)
    assert hits / 40 <= 0.15


def test_known_interaction_within_fish():
    rng = np.random.default_rng(5)
    rows = []
    for g, slope in (("control", 0.0), ("ketamine", -0.003)):
        for i in range(10):
            base = 0.4 + rng.normal(0, 0.1)  # fish differ a lot; slopes within fish do not
            for t in TIMES:
                rows.append({"fish_id": f"{g}{i}", "group": g, "phase": "open_loop",
                             "phase_kind": "open_loop", "session": f"s{TIMES.index(t)}",
                             "time_since_treatment_h": t,
                             "passive_fraction": base + slope * t + rng.normal(0, 0.02)})
    pf = pd.DataFrame(rows)
    res = time_course(pf, CFG, phase="open_loop", metrics=["passive_fraction"])
    assert res.design == "within fish"
    r = res.interaction.iloc[0]
    assert r["n"] == 10 and r["n_reference"] == 10
    assert r["ci_low"] < -0.003 < r["ci_high"] and r["p_value"] < 0.01
    assert "per-fish slopes" in r["test"]
    # per-time comparisons see repeated fish only once per time point
    assert len(res.per_time) == 3 and (res.per_time["n"] == 10).all()


def test_session_labels_are_ordered():
    pf = pd.DataFrame({"session": ["b", "a", "c", ""], "x": 1})
    col, t = time_axis(pf)
    assert col == "session" and list(t[:3]) == [1.0, 0.0, 2.0] and np.isnan(t[3])
    assert time_axis(pd.DataFrame({"session": [1, 1]})) is None
