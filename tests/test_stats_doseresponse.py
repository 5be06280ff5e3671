"""Dose–response on simulated per-fish values whose truth fixes the answer: a known linear
slope, a known sigmoid EC50, no trend under the null, and many-to-one against vehicle."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fishtrack.config import StatsConfig
from fishtrack.stats.doseresponse import dose_response, dose_scores, fit_sigmoid

CFG = StatsConfig(n_permutations=999, n_bootstrap=200)


def _table(doses, fn, n=8, sd=0.05, seed=0, clutch_sd=0.0):
    rng = np.random.default_rng(seed)
    rows = []
    clutch = rng.normal(0, clutch_sd, 2)
    for d in doses:
        for i in range(n):
            c = i % 2
            rows.append({"fish_id": f"d{d}-{i}", "group": "vehicle" if d == 0 else f"k{d}",
                         "dose": d, "phase": "open_loop", "phase_kind": "open_loop",
                         "clutch": f"c{c}",
                         "passive_fraction": fn(d) + clutch[c] + rng.normal(0, sd)})
    return pd.DataFrame(rows)


def test_known_linear_slope_is_recovered_with_its_interval():
    pf = _table([0, 1, 2, 4, 8], lambda d: 0.2 + 0.05 * d)
    cfg = StatsConfig(n_permutations=999, n_bootstrap=100, dose_scale="linear", blocks=[],
                      dose_model="monotone")
    res = dose_response(pf, cfg, phase="open_loop", metrics=["passive_fraction"])
    t = res.trend.iloc[0]
    assert t["n_doses"] == 5 and t["n_fish"] == 40
    assert t["ci_low"] < 0.05 < t["ci_high"]
    assert t["slope"] == pytest.approx(0.05, abs=0.005)
    assert t["p_value"] <= 0.002
    # many-to-one: every dose against vehicle, Holm within the metric
    vs = res.vs_vehicle
    assert list(vs["dose"]) == [1, 2, 4, 8] and (vs["vehicle_dose"] == 0).all()
    means = pf.groupby("dose")["passive_fraction"].mean()
    assert vs["diff"].to_numpy() == pytest.approx((means - means[0]).to_numpy()[1:])
    se = 0.05 * np.sqrt(2 / 8)
    assert vs["diff"].to_numpy() == pytest.approx(0.05 * np.array([1, 2, 4, 8]), abs=3 * se)
    assert (vs["p_adjusted"] >= vs["p_value"]).all()


def test_blocks_enter_the_trend_permutation():
    pf = _table([0, 1, 2, 4], lambda d: 0.2 + 0.02 * d, clutch_sd=1.0, seed=3)
    cfg = StatsConfig(n_permutations=999, n_bootstrap=100, dose_scale="linear")
    blocked = dose_response(pf, cfg, phase="open_loop", metrics=["passive_fraction"]).trend
    plain = dose_response(pf, cfg.model_copy(update={"blocks": []}), phase="open_loop",
                          metrics=["passive_fraction"]).trend
    assert "within 2 blocks" in blocked.iloc[0]["test"]
    b, p = blocked.iloc[0], plain.iloc[0]
    assert b["ci_low"] < 0.02 < b["ci_high"]
    assert (b["ci_high"] - b["ci_low"]) < 0.5 * (p["ci_high"] - p["ci_low"])


def test_sigmoid_recovers_a_known_ec50():
    truth = {"bottom": 0.2, "top": 0.7, "ec50": 3.0, "hill": 1.5}

    def fn(d):
        return truth["bottom"] + (truth["top"] - truth["bottom"]) / (
            1 + (truth["ec50"] / d) ** truth["hill"]) if d > 0 else truth["bottom"]

    pf = _table([0, 0.3, 1, 3, 10, 30], fn, n=8, sd=0.04, seed=1)
    res = dose_response(pf, CFG, phase="open_loop", metrics=["passive_fraction"])
    t = res.trend.iloc[0]
    assert t["model"].startswith("sigmoid")
    assert t["ec50_low"] < truth["ec50"] < t["ec50_high"]
    assert t["ec50"] == pytest.approx(truth["ec50"], rel=0.3)
    assert t["hill"] == pytest.approx(truth["hill"], rel=0.5)
    c = res.curve
    assert (c["ci_low"] <= c["fit"] + 1e-9).all() and (c["fit"] <= c["ci_high"] + 1e-9).all()
    # the band covers the true curve at the tested doses
    for d in (1, 3, 10):
        row = c.iloc[(c["dose"] - d).abs().argmin()]
        assert row["ci_low"] - 0.03 < fn(row["dose"]) < row["ci_high"] + 0.03


def test_few_doses_get_a_monotone_fit():
    pf = _table([0, 1, 10], lambda d: 0.5 - 0.02 * d, seed=2)
    res = dose_response(pf, CFG, phase="open_loop", metrics=["passive_fraction"])
    t = res.trend.iloc[0]
    assert t["model"].startswith("monotone (non-increasing")
    assert t["slope"] < 0 and t["p_value"] < 0.01
    fit = res.curve["fit"].to_numpy()
    assert (np.diff(fit) <= 1e-12).all()


def test_no_trend_under_the_null():
    ps = []
    for seed in range(30):
        pf = _table([0, 1, 3, 10], lambda d: 0.3, n=5, sd=0.1, seed=100 + seed)
        res = dose_response(pf, StatsConfig(n_permutations=199, n_bootstrap=100, blocks=[],
                                            dose_model="monotone"),
                            phase="open_loop", metrics=["passive_fraction"])
        t = res.trend.iloc[0]
        ps.append(t["p_value"])
        assert (t["ci_low"] <= 0 <= t["ci_high"]) == (t["p_value"] > 0.05)
    assert np.mean(np.asarray(ps) <= 0.05) <= 0.15  # 30 experiments: a loose bound


def test_dose_scores():
    d = np.array([0, 0.1, 1, 10, 1])
    assert list(dose_scores(d, "rank")) == [0, 1, 2, 3, 2]
    assert dose_scores(d, "log") == pytest.approx([-2, -1, 0, 1, 0])
    assert fit_sigmoid(np.array([0, 1.0]), np.array([0.1, 0.2])) is None


def test_no_dose_design_gives_nothing():
    pf = _table([0, 10], lambda d: 0.3)
    assert dose_response(pf, CFG, phase="open_loop").empty
    assert dose_response(pf.drop(columns="dose"), CFG, phase="open_loop").empty
