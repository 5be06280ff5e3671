"""Power analysis machinery (cheap checks; the power curves themselves are in
bench/bench_assay.py): a pilot of normal fish reproduces the t-test's power, no effect gives
the test's level, and bad pilots get one-line errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sst
from typer.testing import CliRunner

from fishtrack.cli import app
from fishtrack.config import StatsConfig
from fishtrack.errors import FishtrackError
from fishtrack.stats.power import power_curve, write_power


def _pilot(path, n=400, seed=0):
    rng = np.random.default_rng(seed)
    rows = [{"fish_id": f"c{i}", "group": "control", "phase": "open_loop",
             "phase_kind": "open_loop", "passive_fraction": rng.normal(0.3, 0.1),
             "latency_to_first_passive_s": rng.exponential(30), "latency_censored": False}
            for i in range(n)]
    rows += [{"fish_id": "k0", "group": "ketamine", "phase": "open_loop",
              "phase_kind": "open_loop", "passive_fraction": 0.5,
              "latency_to_first_passive_s": 10.0, "latency_censored": False}]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _t_power(d, n, alpha=0.05):
    df = 2 * n - 2
    nc = d * np.sqrt(n / 2)
    crit = sst.t.ppf(1 - alpha / 2, df)
    return float(sst.nct.sf(crit, df, nc) + sst.nct.cdf(-crit, df, nc))


def test_pilot_power_matches_the_t_test(tmp_path):
    pilot = _pilot(tmp_path / "per_fish.csv")
    res = power_curve(effect=0.1, sizes=[6, 17], n_experiments=200, pilot=pilot,
                      stats=StatsConfig(n_permutations=999), seed=1)
    t = res.table.set_index("n_per_group")
    for n in (6, 17):
        assert t.loc[n, "power"] == pytest.approx(_t_power(1.0, n), abs=0.1)
        assert t.loc[n, "ci_low"] <= t.loc[n, "power"] <= t.loc[n, "ci_high"]
    assert "pilot per_fish.csv" in res.source
    paths = write_power(res, tmp_path / "out")
    assert pd.read_csv(paths["table"])["power"].tolist() == list(res.table["power"])
    assert paths["figure"].stat().st_size > 5000 and paths["figure_svg"].exists()


def test_no_effect_gives_the_level(tmp_path):
    pilot = _pilot(tmp_path / "per_fish.csv")
    res = power_curve(effect=0.0, sizes=[8], n_experiments=300, pilot=pilot, seed=2)
    assert res.table["power"].iloc[0] <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 300)
    lat = power_curve(effect=1.0, sizes=[8], n_experiments=100, pilot=pilot, seed=3,
                      stats=StatsConfig(primary="latency_to_first_passive_s"))
    assert lat.table["power"].iloc[0] <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 100)


def test_bad_pilots(tmp_path):
    pilot = _pilot(tmp_path / "per_fish.csv", n=10)
    with pytest.raises(FishtrackError, match="per_fish.csv: no column 'bout_rate_hz' "
                                             r"\(the primary endpoint"):
        power_curve(effect=0.1, sizes=[4], n_experiments=20, pilot=pilot,
                    stats=StatsConfig(primary="bout_rate_hz"))
    with pytest.raises(FishtrackError, match="the simulator gives the passive fraction"):
        power_curve(effect=0.1, sizes=[4], n_experiments=20,
                    stats=StatsConfig(primary="bout_rate_hz"))
    r = CliRunner().invoke(app, ["power", "--effect", "0.1", "--pilot",
                                 str(tmp_path / "missing.csv"), "--n", "4"])
    assert r.exit_code == 1 and "missing.csv: file not found" in r.output


def test_simulated_power_from_the_cli(tmp_path):
    r = CliRunner().invoke(app, ["power", "--effect", "0.3", "--n", "4,8", "--experiments",
                                 "40", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    table = pd.read_csv(tmp_path / "power.csv")
    assert list(table["n_per_group"]) == [4, 8] and (table["metric"] == "passive_fraction").all()
    assert table["power"].iloc[1] >= table["power"].iloc[0] - 0.15
    assert table["power"].iloc[1] > 0.6  # +0.3 with SD 0.15: 2 SDs
    assert (tmp_path / "power.svg").exists()
