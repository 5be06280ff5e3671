"""A bridged detection gap long enough to hold a bout is no evidence of rest (issue 11)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fixtures_behaviour import make_fish

from fishtrack.behaviour import classify
from fishtrack.config import BehaviourConfig
from fishtrack.stats.metrics import per_fish_metrics
from fishtrack.synth import simulate_truth
from fishtrack.synth.stress import (
    _stress_config,
    draw_recording,
    noisy_truth_tracks,
    score_recording,
)


def test_a_lost_tail_over_a_whole_bout_is_not_scored_passive():
    # spent held-out seed 21852 (680 fps, 2 wells, 6 s): the simulated tracking loses A1's
    # tail for 0.466 s, exactly over its fourth true bout. The gap is under max_gap_s, so it
    # was bridged and 3.25-6.0 s counted as one quiet stretch over min_passive_s: 46 % of
    # A1's frames passive against none in truth (kappa 0)
    dr = draw_recording(21852)
    sim = simulate_truth(dr.spec)
    tracks = noisy_truth_tracks(sim.frames, dr.truth_noise)
    cfg = _stress_config(dr.spec, None)
    a1 = tracks[tracks["fish"].astype(str) == "A1"]
    lost = a1["frame"][~a1["detected"].astype(bool)].to_numpy()
    runs = np.split(lost, np.flatnonzero(np.diff(lost) > 1) + 1)
    gap = max(runs, key=len)
    fps = dr.recording["fps"]
    assert cfg.behaviour.min_bout_s < len(gap) / fps < cfg.behaviour.max_gap_s
    tb = sim.bouts[sim.bouts["fish"].astype(str) == "A1"]
    assert ((tb["start_frame"] > gap[0]) & (tb["end_frame"] < gap[-1])).sum() == 1
    res = classify(tracks, cfg.behaviour, cfg.protocol)
    st = res.tracks.set_index(["fish", "frame"])["state"]
    assert (st.loc[[("A1", f) for f in gap]] == "unknown").all()
    assert not (st.xs("A1") == "passive").any()  # A1 never rests for 2 s in truth
    row = score_recording(res.tracks, res.bouts, sim.frames, sim.bouts,
                          still_fish=dr.still_fish)
    assert row["kappa"] >= 0.9 or not row["kappa_defined"]
    assert row["passive_err_max"] <= 0.03


def _rest_with_gap(gap_s: float | None):
    # swims 0-4 s, rests 10 s, swims 4 s, rests...; the gap starts 5 s into the first rest
    fish = make_fish(3, duration_s=30, schedule={"passive": (10, 10), "active": (4, 4),
                                                 "p_first_passive": 0.0})
    df = fish.tracks.copy()
    t = df["time_s"].to_numpy()
    rest = fish.bouts["end_s"][fish.bouts["start_s"].diff().shift(-1) > 9].iloc[0]
    at = rest + 5.0
    if gap_s:
        hide = (t >= at) & (t < at + gap_s)
        df.loc[hide, ["x", "y", "tail_angle"]] = np.nan
        df.loc[hide, "detected"] = False
    res = classify(df, BehaviourConfig())
    return res, per_fish_metrics(res.tracks, res.bouts, res.epochs, None), at


def test_a_rest_seen_on_both_sides_of_a_gap_is_one_give_up():
    # a 0.2-s gap in the middle of a 10-s rest could hide a bout: its frames are unknown,
    # the rest on either side stays passive, and the per-fish metrics count one give-up
    # (the rest resumed after the gap is not a new one), its frames out of the fraction
    whole, m0, at = _rest_with_gap(None)
    cut, m1, _ = _rest_with_gap(0.2)
    t = cut.tracks["time_s"].to_numpy()
    st = cut.tracks["state"].to_numpy()
    assert (st[(t >= at) & (t < at + 0.2)] == "unknown").all()
    assert (st[((t >= at - 4) & (t < at)) | ((t >= at + 0.2) & (t < at + 4))] == "passive").all()
    assert (whole.tracks["state"].to_numpy()[(t >= at - 4) & (t < at + 4)] == "passive").all()
    ep = cut.epochs
    assert ((ep["state"] == "passive") & (abs(ep["start_s"] - at - 0.2) < 0.01)).sum() == 1
    r0, r1 = m0.iloc[0], m1.iloc[0]
    assert r1["n_passive_epochs"] == r0["n_passive_epochs"] >= 2
    assert r1["latency_to_first_passive_s"] == pytest.approx(r0["latency_to_first_passive_s"])
    known = st != "unknown"
    assert r1["passive_fraction"] == pytest.approx(np.mean(st[known] == "passive"))
    # the rest cut by the gap: its end is not known as one epoch's, so it leaves the mean
    assert r1["n_complete_passive_epochs"] == r0["n_complete_passive_epochs"] - 1


def test_a_gap_shorter_than_the_shortest_bout_is_bridged():
    # 0.03 s at 200 fps (6 frames) cannot hold a bout of min_bout_s (0.04 s): bridged
    cut, _, _ = _rest_with_gap(0.03)
    whole, _, _ = _rest_with_gap(None)
    pd.testing.assert_series_equal(cut.tracks["state"], whole.tracks["state"])
