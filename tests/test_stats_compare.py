"""Group comparison, survival and degenerate cases against analytically known values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from fishtrack.config import Phase, StatsConfig
from fishtrack.errors import ConfigError, FishtrackError
from fishtrack.stats import (
    RESULT_COLUMNS,
    compare_groups,
    compare_latency,
    compare_two,
    hedges_g,
    holm,
    kaplan_meier,
    per_fish_metrics,
    rmst,
)
from fishtrack.stats.simulate import simulate_experiment
from fishtrack.stats.survival import logrank_p, weighted_rmst

FAST = StatsConfig(n_bootstrap=999, n_permutations=999)


def _per_fish(values: dict[str, list[float]], phase="ol", **extra) -> pd.DataFrame:
    rows = []
    for g, vals in values.items():
        for i, v in enumerate(vals):
            rows.append({"fish_id": f"{g}{i}", "group": g, "phase": phase, "passive_fraction": v,
                         **{k: (f(i, g) if callable(f) else f) for k, f in extra.items()}})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# helpers with closed-form answers


def test_holm_matches_step_down_definition():
    adj = holm([0.01, 0.04, 0.03, np.nan])
    np.testing.assert_allclose(adj[:3], [0.03, 0.06, 0.06])
    assert np.isnan(adj[3])
    assert np.all(holm([0.5, 0.9]) <= 1.0)
    assert np.isnan(holm([np.nan])).all()


def test_hedges_g_closed_form():
    # pooled SD 1, d = -2, J = 1 - 3 / (4 * 6 - 9) = 0.8
    assert hedges_g(np.array([1.0, 2, 3]), np.array([3.0, 4, 5])) == pytest.approx(-1.6)
    assert math.isnan(hedges_g(np.array([1.0]), np.array([1.0, 2])))
    assert math.isnan(hedges_g(np.array([1.0, 1.0]), np.array([2.0, 2.0])))


def test_exact_permutation_p_value():
    # 3 vs 3: 20 relabellings; |diff| >= 3 only for the observed split and its mirror
    res = compare_two([4.0, 5, 6], [1.0, 2, 3], FAST)
    assert res["test"] == "permutation-exact"
    assert res["p_value"] == pytest.approx(2 / 20)
    assert res["diff"] == pytest.approx(3.0)
    assert res["ci_low"] <= 3.0 <= res["ci_high"]


def test_degenerate_cases_give_nan_and_a_note():
    one = compare_two([1.0], [1.0, 2.0, 3.0], FAST)
    assert one["test"].startswith("not tested") and math.isnan(one["p_value"])
    assert one["n"] == 1 and one["n_reference"] == 3
    same = compare_two([0.2] * 5, [0.1 + 0.1] * 5, FAST)  # equal up to rounding
    assert same["p_value"] == 1.0 and same["diff"] == 0.0
    assert math.isnan(same["ci_low"]) and "no variance" in same["test"]
    apart = compare_two([1.0] * 5, [0.0] * 5, FAST)
    assert apart["p_value"] == pytest.approx(2 / math.comb(10, 5))
    assert math.isnan(apart["effect_size"]) and "no variance" in apart["test"]
    nan = compare_two([np.nan, 1.0, 2.0], [1.0, 2.0, np.nan], FAST)
    assert (nan["n"], nan["n_reference"]) == (2, 2)


@pytest.mark.parametrize("method", ["studentized", "bca", "percentile"])
def test_ci_methods_bracket_the_observed_difference(method):
    rng = np.random.default_rng(0)
    x, y = rng.normal(1, 1, 12), rng.normal(0, 1, 12)
    res = compare_two(x, y, StatsConfig(n_bootstrap=999, ci_method=method))
    d = x.mean() - y.mean()
    assert res["ci_low"] < d < res["ci_high"]
    se = math.sqrt(x.var(ddof=1) / 12 + y.var(ddof=1) / 12)
    assert 2.5 * se < res["ci_high"] - res["ci_low"] < 6 * se


@pytest.mark.parametrize(
    "x, y",
    [
        ([0.2, 0.4, 0.9], [0.5, 0.5, 0.5, 0.5]),  # a group whose fish all scored the same
        ([0.1, 0.3], [0.6, 0.8]),  # two fish per group: many resamples without spread
    ],
)
def test_studentized_interval_without_spread_in_resamples_stays_finite(x, y):
    x, y = np.array(x), np.array(y)
    res = compare_two(x, y, StatsConfig(n_bootstrap=999, ci_method="studentized"))
    assert res["ci_method"].startswith("bootstrap percentile (studentized undefined")
    d = x.mean() - y.mean()
    assert np.isfinite([res["ci_low"], res["ci_high"]]).all()
    assert res["ci_low"] <= d <= res["ci_high"]
    # no wider than the range of possible differences of means
    assert res["ci_high"] - res["ci_low"] <= (x.max() - x.min()) + (y.max() - y.min()) + 1e-12


# --------------------------------------------------------------------------------------------
# the group table


def test_compare_groups_table_shape_holm_family_and_determinism():
    rng = np.random.default_rng(1)
    per_fish = _per_fish(
        {"control": list(rng.uniform(0, 0.5, 8)), "ketamine": list(rng.uniform(0.3, 0.9, 8)),
         "low": list(rng.uniform(0, 0.5, 8))},
        bout_rate_hz=lambda i, g: float(rng.normal(1, 0.2)),
    )
    cfg = StatsConfig(n_bootstrap=999, n_permutations=999, seed=5)
    res = compare_groups(per_fish, cfg)
    assert list(res.columns) == list(RESULT_COLUMNS)
    assert set(res["group"]) == {"ketamine", "low"} and set(res["reference"]) == {"control"}
    assert set(res["metric"]) == {"passive_fraction", "bout_rate_hz"}
    # one phase: the primary endpoint is passive_fraction, one Holm family across the two
    # groups; the other metric is secondary, one family across groups
    assert list(res["role"]) == ["primary"] * 2 + ["secondary"] * 2
    for _, fam in res.groupby("family"):
        assert len(fam) == 2
        np.testing.assert_allclose(fam["p_adjusted"], holm(fam["p_value"]))
    pd.testing.assert_frame_equal(res, compare_groups(per_fish, cfg))
    # results do not depend on which other rows are computed
    alone = compare_groups(per_fish, cfg, metrics=["passive_fraction"])
    a = res[res["metric"] == "passive_fraction"].reset_index(drop=True)
    np.testing.assert_allclose(a["ci_low"], alone["ci_low"])
    other = compare_groups(per_fish, StatsConfig(n_bootstrap=999, n_permutations=999, seed=6))
    assert not np.allclose(other["ci_low"], res["ci_low"])


def test_excluded_and_ungrouped_fish_are_left_out():
    per_fish = _per_fish({"control": [0.1, 0.2, 0.3, 0.4], "ketamine": [0.5, 0.6, 0.7, 0.8]})
    per_fish["exclude"] = [False, False, "yes", False, 0, 1, False, False]
    per_fish.loc[7, "group"] = None
    res = compare_groups(per_fish, FAST, metrics=["passive_fraction"])
    assert (res["n"].iloc[0], res["n_reference"].iloc[0]) == (2, 3)
    assert res["mean"].iloc[0] == pytest.approx(0.6)  # 0.5 and 0.7 left


def test_errors_name_the_problem():
    per_fish = _per_fish({"wt": [0.1, 0.2], "ketamine": [0.5, 0.6]})
    with pytest.raises(ConfigError, match="reference_group.*wt"):
        compare_groups(per_fish, FAST)
    with pytest.raises(FishtrackError, match="group"):
        compare_groups(per_fish.drop(columns="group"), FAST)
    with pytest.raises(FishtrackError, match="bogus"):
        compare_groups(per_fish, StatsConfig(reference_group="wt"), metrics=["bogus"])


# --------------------------------------------------------------------------------------------
# survival


def test_kaplan_meier_and_rmst_hand_computed():
    t = np.array([1.0, 2, 2, 3, 4])
    e = np.array([True, True, False, True, False])
    # S = 0.8 after t=1, 0.6 after t=2 (4 at risk), 0.3 after t=3 (2 at risk)
    assert rmst(t, e, 4.0) == pytest.approx(1 + 0.8 + 0.6 + 0.3)
    assert rmst(t, e, 2.5) == pytest.approx(1 + 0.8 + 0.5 * 0.6)
    per_fish = pd.DataFrame({"fish_id": list("abcde"), "group": "control", "phase": "ol",
                             "latency_to_first_passive_s": t, "latency_censored": ~e})
    km = kaplan_meier(per_fish, "ol")
    curve = km.set_index("time_s")["survival"]
    np.testing.assert_allclose(curve.loc[[1.0, 2.0, 3.0, 4.0]], [0.8, 0.6, 0.3, 0.3])
    assert curve.loc[0.0] == 1.0
    assert (np.diff(km["survival"]) <= 0).all()
    assert (km["ci_low"] <= km["survival"]).all() and (km["survival"] <= km["ci_high"]).all()


def test_weighted_rmst_equals_rmst_of_the_replicated_sample():
    rng = np.random.default_rng(2)
    t = rng.exponential(5, 9).round(1)
    e = rng.random(9) < 0.7
    w = rng.integers(0, 3, size=(4, 9))
    got = weighted_rmst(t, e, w, 6.0)
    want = [rmst(np.repeat(t, row), np.repeat(e, row), 6.0) for row in w]
    np.testing.assert_allclose(got, want)


def test_logrank_matches_lifelines():
    from lifelines.statistics import logrank_test

    rng = np.random.default_rng(3)
    for _ in range(5):
        t1, t0 = rng.exponential(5, 10).round(0), rng.exponential(8, 12).round(0)
        e1, e0 = rng.random(10) < 0.7, rng.random(12) < 0.6
        ref = logrank_test(t1, t0, event_observed_A=e1, event_observed_B=e0)
        stat, p = logrank_p(t1, e1, t0, e0)
        assert stat == pytest.approx(ref.test_statistic)
        assert p == pytest.approx(ref.p_value)


def test_latency_row_uses_log_rank_and_handles_no_events():
    t = np.full(6, 10.0)
    none = compare_latency(t, np.zeros(6, bool), np.arange(6), t, np.zeros(6, bool),
                           np.arange(6, 12), FAST)
    assert "not testable" in none["test"] and math.isnan(none["p_value"])
    assert none["diff"] == 0.0
    rng = np.random.default_rng(4)
    t1 = np.minimum(rng.exponential(2, 15), 10)
    t0 = np.minimum(rng.exponential(20, 15), 10)
    res = compare_latency(t1, t1 < 10, np.arange(15), t0, t0 < 10, np.arange(15, 30), FAST)
    assert res["test"] == "log-rank" and res["effect_size_type"] == "rmst_ratio"
    assert res["diff"] < 0 and res["ci_low"] < res["diff"] < res["ci_high"]
    assert res["effect_size"] == pytest.approx(res["mean"] / res["mean_reference"])
    assert res["p_value"] < 0.01


# --------------------------------------------------------------------------------------------
# repeated trials: mixed model


def test_repeated_trials_use_fish_permutation_and_cover_the_true_effect():
    protocol = [Phase(name="ol1", kind="open_loop", start_s=0, end_s=60)]
    effect = 0.2
    sim = simulate_experiment(8, passive_mean={"control": 0.3, "ketamine": 0.3 + effect},
                              n_trials=3, protocol=protocol, n_experiments=30, seed=11)
    pf = per_fish_metrics(sim.tracks, sim.bouts, sim.epochs, sim.protocol, sim.fish_table)
    pf = pf[pf["phase"] == "ol1"]
    covered, rows = 0, []
    for _, sub in pf.groupby("experiment"):
        res = compare_groups(sub, FAST, metrics=["passive_fraction",
                                                 "latency_to_first_passive_s"])
        r = res.set_index("metric")
        rows.append(r)
        pfr = r.loc["passive_fraction"]
        assert pfr["test"] == "permutation (fish, repeated trials)"
        assert pfr["n"] == 8  # fish, not trials
        covered += pfr["ci_low"] <= effect <= pfr["ci_high"]
    assert r.loc["latency_to_first_passive_s", "test"] == "log-rank"
    assert r.loc["latency_to_first_passive_s", "n"] == 8
    assert covered / len(rows) >= 0.8
    diffs = [r.loc["passive_fraction", "diff"] for r in rows]
    assert abs(np.mean(diffs) - effect) < 0.05


def test_logrank_permutation_p_is_exact_enumeration_for_tiny_groups():
    import itertools

    from fishtrack.stats.survival import logrank_permutation_p

    t = np.array([1.0, 2.0, 2.0, 5.0, 3.0, 4.0, 6.0, 6.0])
    e = np.array([True, True, False, True, True, True, False, True])
    fish = np.array(list("abcdefgh"))
    obs, _ = logrank_p(t[:4], e[:4], t[4:], e[4:])
    null = []
    for idx in itertools.combinations(range(8), 4):
        m = np.zeros(8, bool)
        m[list(idx)] = True
        null.append(logrank_p(t[m], e[m], t[~m], e[~m])[0])
    want = np.mean(np.array(null) >= obs - 1e-12)
    p, exact = logrank_permutation_p(t[:4], e[:4], fish[:4], t[4:], e[4:], fish[4:],
                                     n_permutations=999, rng=np.random.default_rng(0))
    assert exact
    assert p == pytest.approx(want)


def test_permutation_p_matches_scipy_permutation_test():
    import scipy.stats

    def diff(a, b, axis=-1):
        return np.mean(a, axis=axis) - np.mean(b, axis=axis)

    rng = np.random.default_rng(5)
    for nx, ny, n_perm in ((4, 5, 999), (3, 7, 999), (12, 10, 4999)):
        x, y = rng.normal(0.5, 1, nx), rng.normal(0, 1, ny)
        ref = scipy.stats.permutation_test((x, y), diff, n_resamples=n_perm, vectorized=True,
                                           permutation_type="independent", rng=1).pvalue
        got = compare_two(x, y, StatsConfig(n_permutations=n_perm))
        exact = math.comb(nx + ny, nx) <= n_perm
        assert got["test"] == ("permutation-exact" if exact else "permutation")
        if exact:
            assert got["p_value"] == pytest.approx(ref, rel=1e-12)
        else:  # two Monte Carlo estimates: within 4 binomial SE of each other
            se = math.sqrt(ref * (1 - ref) / n_perm) + 1e-3
            assert abs(got["p_value"] - ref) < 4 * math.sqrt(2) * se


def test_survival_data_replaces_the_latency_columns():
    per_fish = _per_fish({"control": [0.1, 0.2, 0.3, 0.4], "ketamine": [0.5, 0.6, 0.7, 0.8]})
    surv = pd.DataFrame({"fish_id": per_fish["fish_id"], "group": per_fish["group"],
                         "phase": "ol", "time_s": [50.0, 60, 70, 80, 5, 6, 7, 8],
                         "event": [False, True, True, False, True, True, True, True]})
    res = compare_groups(per_fish, FAST, survival_data=surv,
                         metrics=["passive_fraction", "latency_to_first_passive_s"])
    lat = res.set_index("metric").loc["latency_to_first_passive_s"]
    assert lat["test"] == "log-rank"
    # every ketamine fish gives up before any control fish: the most extreme of 70 splits
    assert lat["p_value"] == pytest.approx(2 / 70)
    assert lat["mean"] == pytest.approx(np.mean([5.0, 6, 7, 8]))
