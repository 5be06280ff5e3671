"""Blocking (plate, clutch, date): stratified permutation tests with block-adjusted
estimates, and the censored assay metrics (effort before giving up, recovery) compared like
the latency."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from fishtrack.config import StatsConfig
from fishtrack.stats import compare_groups, compare_two
from fishtrack.stats._resampling import block_labels
from fishtrack.stats.survival import logrank_permutation_p

CFG = StatsConfig(n_permutations=2000, n_bootstrap=500)


def _clutch_table(seed: int, effect: float, n_per_cell: int = 4, clutch_sd: float = 5.0):
    """Two groups x three clutches, a large clutch effect and a known group effect."""
    rng = np.random.default_rng(seed)
    rows = []
    for c, shift in enumerate(rng.normal(0, clutch_sd, 3)):
        for g, d in (("control", 0.0), ("ketamine", effect)):
            for i in range(n_per_cell):
                rows.append({"fish_id": f"{g}-{c}-{i}", "group": g, "phase": "ol",
                             "phase_kind": "open_loop", "clutch": f"c{c}",
                             "passive_fraction": shift + d + rng.normal(0, 0.3)})
    return pd.DataFrame(rows)


def test_blocks_remove_a_clutch_effect():
    pf = _clutch_table(1, effect=1.0)
    blocked = compare_groups(pf, CFG, metrics=["passive_fraction"]).iloc[0]
    plain = compare_groups(pf, CFG.model_copy(update={"blocks": []}),
                           metrics=["passive_fraction"]).iloc[0]
    assert "within 3 blocks" in blocked["test"]
    assert blocked["ci_low"] < 1.0 < blocked["ci_high"]
    assert blocked["ci_high"] - blocked["ci_low"] < 1.0  # noise sd 0.3, 12 fish per group
    assert blocked["p_value"] < 0.01
    # without blocks the clutch variance swamps the effect
    assert plain["ci_high"] - plain["ci_low"] > 3 * (blocked["ci_high"] - blocked["ci_low"])


def test_blocked_estimate_is_the_mean_of_within_block_differences():
    # balanced blocks: the block-adjusted difference is the plain mean of block differences
    pf = _clutch_table(2, effect=0.5)
    r = compare_groups(pf, CFG, metrics=["passive_fraction"]).iloc[0]
    per = pf.groupby(["clutch", "group"])["passive_fraction"].mean().unstack()
    assert r["diff"] == pytest.approx(float((per["ketamine"] - per["control"]).mean()))


def test_block_labels_enumerate_within_blocks_exactly():
    blocks = np.array(["a", "a", "a", "b", "b", "b", "b"])
    first = np.array([1, 0, 0, 1, 1, 0, 0], bool)
    labels, exact = block_labels(blocks, first, 1000, np.random.default_rng(0))
    assert exact and len(labels) == 3 * 6  # C(3,1) x C(4,2)
    assert (labels[0] == first).all()
    assert (labels[:, :3].sum(axis=1) == 1).all() and (labels[:, 3:].sum(axis=1) == 2).all()
    assert len({tuple(r) for r in labels}) == len(labels)
    # random relabellings keep the counts per block too
    labels, exact = block_labels(blocks, first, 10, np.random.default_rng(0))
    assert not exact and len(labels) == 11
    assert (labels[:, :3].sum(axis=1) == 1).all() and (labels[:, 3:].sum(axis=1) == 2).all()


def test_exact_blocked_p_value_matches_brute_force():
    x = np.array([3.1, 2.0, 5.5, 6.0])
    y = np.array([1.0, 0.5, 4.0, 4.2, 3.9])
    bx = np.array(["a", "a", "b", "b"])
    by = np.array(["a", "a", "b", "b", "b"])
    res = compare_two(x, y, CFG, blocks_x=bx, blocks_y=by)
    v = np.r_[x, y]
    b = np.r_[bx, by]

    def stat(first):
        d, w = [], []
        for blk in ("a", "b"):
            m = b == blk
            g1, g0 = v[m & first], v[m & ~first]
            d.append(g1.mean() - g0.mean())
            w.append(len(g1) * len(g0) / (len(g1) + len(g0)))
        return np.average(d, weights=w)

    obs = stat(np.r_[np.ones(4, bool), np.zeros(5, bool)])
    null = []
    ia, ib = np.flatnonzero(b == "a"), np.flatnonzero(b == "b")
    for ca in itertools.combinations(ia, 2):
        for cb in itertools.combinations(ib, 2):
            f = np.zeros(9, bool)
            f[list(ca) + list(cb)] = True
            null.append(stat(f))
    null = np.array(null)
    p = min(1.0, 2 * min(np.mean(null >= obs - 1e-12), np.mean(null <= obs + 1e-12)))
    assert res["diff"] == pytest.approx(obs)
    assert res["p_value"] == pytest.approx(p)
    assert res["test"].startswith("permutation-exact")


def test_blocked_test_holds_its_level():
    """100 null experiments with a big clutch effect: false positives within 5 % + 3 SE."""
    cfg = StatsConfig(n_permutations=499, n_bootstrap=100)
    hits = 0
    for seed in range(100):
        pf = _clutch_table(1000 + seed, effect=0.0, n_per_cell=3)
        r = compare_groups(pf, cfg, metrics=["passive_fraction"]).iloc[0]
        hits += r["p_value"] <= 0.05
        assert (r["ci_low"] <= 0 <= r["ci_high"]) == (r["p_value"] > 0.05)
    assert hits / 100 <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 100)


def test_stratified_log_rank_with_one_stratum_is_the_plain_test():
    rng = np.random.default_rng(3)
    t1, t0 = rng.exponential(10, 6), rng.exponential(20, 6)
    e1, e0 = rng.random(6) < 0.8, rng.random(6) < 0.8
    c1, c0 = [f"a{i}" for i in range(6)], [f"b{i}" for i in range(6)]
    plain, _ = logrank_permutation_p(t1, e1, c1, t0, e0, c0, n_permutations=5000,
                                     rng=np.random.default_rng(0))
    one, _ = logrank_permutation_p(t1, e1, c1, t0, e0, c0, n_permutations=5000,
                                   rng=np.random.default_rng(0),
                                   strata={f: "s" for f in c1 + c0})
    assert one == pytest.approx(plain)  # 924 relabellings: both exact


def test_censored_assay_metrics_use_log_rank_and_rmst():
    rng = np.random.default_rng(4)
    rows = []
    for g, scale in (("control", 10), ("ketamine", 30)):
        for i in range(10):
            n = rng.poisson(scale)
            cens = n > 25
            rows.append({"fish_id": f"{g}{i}", "group": g, "phase": "ol",
                         "phase_kind": "open_loop", "n_bouts_before_giveup": min(n, 25),
                         "latency_censored": cens, "latency_to_first_passive_s": 5.0 + i,
                         "recovery_s": np.nan, "recovery_censored": pd.NA})
    pf = pd.DataFrame(rows)
    cfg = StatsConfig(n_permutations=2000, n_bootstrap=500, primary="n_bouts_before_giveup")
    res = compare_groups(pf, cfg,
                         metrics=["n_bouts_before_giveup", "recovery_s"])
    assert list(res["metric"]) == ["n_bouts_before_giveup"]  # recovery: not an open-loop metric
    r = res.iloc[0]
    assert r["test"] == "log-rank" and r["effect_size_type"] == "rmst_ratio"
    assert r["role"] == "primary" and r["diff"] > 0 and r["p_value"] < 0.01
