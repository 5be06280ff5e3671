"""Statistical validity of the group comparison, measured on simulated experiments.

300 independent experiments of 3 groups x 10 fish (state sequences, no video) go through the
full path (per_fish_metrics -> compare_groups). Group ``null`` has the same population passive
fraction as ``control`` (false-positive rate), ``treated`` a known difference of +0.15
(interval coverage). Fewer resamples than the defaults (999) but the same code path.

With 300 experiments the standard error of a 5 % rate is 1.3 % and of a 95 % coverage 1.3 %,
so the bands below (5 +/- 2.5 %, 92-98 %) are ~2 SE: a miscalibrated test fails them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fishtrack.config import StatsConfig
from fishtrack.stats import compare_groups, per_fish_metrics
from fishtrack.stats.simulate import simulate_experiment

N_EXPERIMENTS = 300
EFFECT = 0.15
CONTROL = 0.3


@pytest.fixture(scope="module")
def calibration() -> pd.DataFrame:
    sim = simulate_experiment(
        10,
        passive_mean={"control": CONTROL, "null": CONTROL, "treated": CONTROL + EFFECT},
        n_experiments=N_EXPERIMENTS,
        fps=2.0,
        seed=2024,
    )
    pf = per_fish_metrics(sim.tracks, sim.bouts, sim.epochs, sim.protocol, sim.fish_table)
    pf = pf[pf["phase"] == "open_loop_1"]
    cfg = StatsConfig(n_bootstrap=999, n_permutations=999, seed=1)
    metrics = ["passive_fraction", "latency_to_first_passive_s"]
    parts = [
        compare_groups(sub, cfg, metrics=metrics).assign(experiment=e)
        for e, sub in pf.groupby("experiment")
    ]
    return pd.concat(parts, ignore_index=True)


def _rows(res: pd.DataFrame, group: str, metric: str) -> pd.DataFrame:
    sel = res[(res["group"] == group) & (res["metric"] == metric)]
    assert len(sel) == N_EXPERIMENTS
    return sel


def test_false_positive_rate_of_passive_fraction(calibration):
    rows = _rows(calibration, "null", "passive_fraction")
    assert rows["p_value"].notna().all()
    fpr = float((rows["p_value"] < 0.05).mean())
    assert 0.025 <= fpr <= 0.075, f"false-positive rate {fpr:.3f}"


def test_ci_covers_true_difference(calibration):
    for group, truth in (("treated", EFFECT), ("null", 0.0)):
        rows = _rows(calibration, group, "passive_fraction")
        covered = float(((rows["ci_low"] <= truth) & (truth <= rows["ci_high"])).mean())
        assert 0.92 <= covered <= 0.98, f"{group}: coverage {covered:.3f}"


def test_known_effect_is_detected_and_estimated_without_bias(calibration):
    rows = _rows(calibration, "treated", "passive_fraction")
    power = float((rows["p_value"] < 0.05).mean())
    assert power > 0.3, f"power {power:.3f}"  # d ~ 1 with 10 fish per group: ~0.5 expected
    se = rows["diff"].std() / np.sqrt(len(rows))
    assert abs(rows["diff"].mean() - EFFECT) < 3 * se + 1e-3


def test_false_positive_rate_of_latency_log_rank(calibration):
    rows = _rows(calibration, "null", "latency_to_first_passive_s")
    assert (rows["test"] == "log-rank").all()
    fpr = float((rows["p_value"] < 0.05).mean())
    assert 0.025 <= fpr <= 0.075, f"log-rank false-positive rate {fpr:.3f}"
