"""End to end: a simulated video (the simulator's struggle, give-ups and recovery, with the
ketamine-like effect) through ``run_experiment``; the assay metrics of the tracked fish
against the same metrics on the simulator's ground truth, and the truth against a direct
count."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fishtrack.config import Phase
from fishtrack.experiment import run_experiment

PROTOCOL = [Phase(name="cl1", kind="closed_loop", start_s=0.0, end_s=6.0),
            Phase(name="ol1", kind="open_loop", start_s=6.0, end_s=22.0),
            Phase(name="cl2", kind="closed_loop", start_s=22.0, end_s=26.0)]


def _available() -> bool:
    try:
        from fishtrack.synth import SimSpec, simulate  # noqa: F401
        from fishtrack.tracking import track_video  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def sim_run(tmp_path_factory):
    from fixtures_experiment import write_manifest

    from fishtrack.behaviour import epochs_from_states
    from fishtrack.synth import SimSpec, simulate

    root = tmp_path_factory.mktemp("assay_e2e")
    spec = SimSpec(name="plate", layout="wells", rows=2, cols=3, fps=50, duration_s=26,
                   seed=11, fish_length_px=24, effect=1.0, protocol=PROTOCOL)
    sim = simulate(spec, root / "in/videos")
    truth = pd.read_parquet(sim.truth_path)
    groups = truth.groupby("arena")["group"].first()
    rows = [{"video": "videos/plate.mp4", "arena": a, "group": groups[a]} for a in groups.index]
    manifest = write_manifest(root / "in/manifest.csv", rows)
    res = run_experiment(manifest, sim.config_path, root / "out", report=False)
    assert res.ok, res.failures
    tb = pd.read_csv(sim.truth_path.parent / "truth_bouts.csv")
    tr = truth[["frame", "time_s", "arena", "fish", "state", "in_bout", "tail_angle"]].copy()
    tr["detected"] = True
    epochs = epochs_from_states(tr, PROTOCOL)
    return res, tr, tb, epochs, groups


pytestmark = pytest.mark.skipif(not _available(), reason="simulator or tracker not available")


def _row(pf, arena, phase):
    sel = pf[(pf["arena"].astype(str) == arena) & (pf["phase"] == phase)]
    assert len(sel) == 1
    return sel.iloc[0]


def test_truth_effort_is_the_direct_count(sim_run):
    from fishtrack.stats import per_fish_metrics

    _, tr, tb, epochs, _ = sim_run
    pf = per_fish_metrics(tr, tb, epochs, PROTOCOL)
    for arena, fr in tr.groupby("arena"):
        t = fr["time_s"].to_numpy()
        st = fr["state"].to_numpy()
        ol = (t >= 6.0) & (t < 22.0)
        first_active = t[ol & (st == "active")].min()
        passive = ol & (st == "passive") & (t >= first_active)
        end = t[passive].min() if passive.any() else 22.0
        starts = tb.loc[tb["arena"] == arena, "start_s"].to_numpy()
        want = int(((starts >= 6.0) & (starts < end - 1e-9)).sum())
        r = _row(pf, arena, "ol1")
        assert r["n_bouts_before_giveup"] == want, arena
        assert bool(r["latency_censored"]) == (not passive.any())
        # struggle: bouts in the first 10 s of open loop / 10 s, against the last (here: all
        # 6) s of the closed loop before it
        n_ol = ((starts >= 6.0) & (starts < 16.0)).sum()
        n_cl = ((starts >= 0.0) & (starts < 6.0)).sum()
        assert r["struggle_bout_rate_hz"] == pytest.approx(n_ol / 10.0)
        assert r["baseline_bout_rate_hz"] == pytest.approx(n_cl / 6.0)


def test_tracked_assay_metrics_match_the_truth(sim_run):
    from fishtrack.stats import per_fish_metrics

    res, tr, tb, epochs, groups = sim_run
    truth = per_fish_metrics(tr, tb, epochs, PROTOCOL)
    pf = res.per_fish
    for arena in groups.index:
        got, want = _row(pf, arena, "ol1"), _row(truth, arena, "ol1")
        tol = max(3.0, 0.25 * want["n_bouts_before_giveup"])
        assert got["n_bouts_before_giveup"] == pytest.approx(want["n_bouts_before_giveup"],
                                                             abs=tol), arena
        assert got["struggle_bout_rate_hz"] == pytest.approx(want["struggle_bout_rate_hz"],
                                                             rel=0.25), arena
        g2, w2 = _row(pf, arena, "cl2"), _row(truth, arena, "cl2")
        assert bool(g2["passive_at_start"]) == bool(w2["passive_at_start"]), arena
        if w2["passive_at_start"] and np.isfinite(w2["recovery_s"]):
            assert g2["recovery_s"] == pytest.approx(w2["recovery_s"], abs=0.3), arena
    # the new metrics are compared, and the sensitivity at the configured threshold
    # reproduces the behaviour stage's states
    gs = res.group_stats
    ol = gs[gs["phase"] == "open_loop"]
    assert {"n_bouts_before_giveup", "effort_before_giveup_rad",
            "struggle_rate_change_hz"} <= set(ol["metric"])
    assert ol.loc[ol["metric"] == "n_bouts_before_giveup", "test"].str.startswith(
        "log-rank").all()
    sens = res.assay.sensitivity
    at = sens[(sens["min_passive_s"] == 2.0) & (sens["metric"] == "passive_fraction")]
    main = gs[(gs["metric"] == "passive_fraction") & (gs["phase"] == at["phase"].iloc[0])]
    assert at["diff"].iloc[0] == pytest.approx(main["diff"].iloc[0])
    assert (res.out / "per_fish_wide.csv").exists() and len(res.assay.wide) == len(groups)
