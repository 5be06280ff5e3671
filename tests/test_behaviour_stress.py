"""The simulator's behaviour knobs and the stress-suite drawer (fishtrack.synth.stress).

The held-out suite itself (seeds 1000-1199) runs in ``bench/bench_behaviour_stress.py``; the
small fixed subset that asserts the goals is in ``tests/test_behaviour_goals.py``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fishtrack.config import Phase
from fishtrack.synth import SimSpec, simulate_states, simulate_truth
from fishtrack.synth.behaviour import PARAMS, generate_bouts, resolve_params
from fishtrack.synth.stress import (
    PENDING_DRAWS,
    RANGES,
    REPORT_SEEDS,
    TUNE_SEEDS,
    draw_recording,
    match_onsets,
    noisy_truth_tracks,
    score_recording,
)


def _bout_stats(spec: SimSpec) -> tuple[pd.DataFrame, pd.DataFrame]:
    t = simulate_truth(spec)
    return t.frames, t.bouts


def test_bout_params_set_duration_interval_and_frequency():
    spec = SimSpec(layout="embedded", rows=1, cols=2, fps=200.0, duration_s=30.0, seed=3,
                   bout_params={"normal_dur_min": 0.45, "normal_dur_scale": 0.01,
                                "dur_hi": 0.6, "normal_freq_lo": 15.0, "normal_freq_hi": 16.0},
                   protocol=[Phase(name="cl", kind="closed_loop", start_s=0, end_s=30)])
    _, bouts = _bout_stats(spec)
    assert len(bouts) > 10
    assert bouts["duration_s"].between(0.45, 0.6 + 1e-9).all()
    assert bouts["beat_hz"].between(15.0, 16.0).all()
    default = SimSpec(layout="embedded", rows=1, cols=2, fps=200.0, duration_s=30.0, seed=3,
                      protocol=spec.protocol)
    _, b0 = _bout_stats(default)
    assert b0["duration_s"].max() <= PARAMS["dur_hi"] + 1e-9
    assert b0["duration_s"].median() < 0.3


def test_fish_bout_params_apply_to_one_fish_only():
    spec = SimSpec(layout="wells", rows=1, cols=2, fps=100.0, duration_s=30.0, seed=1,
                   fish_bout_params={"A2": {"normal_ibi_min": 1.2, "normal_ibi_scale": 0.05}},
                   protocol=[Phase(name="cl", kind="closed_loop", start_s=0, end_s=30)])
    frames, bouts = _bout_stats(spec)
    rate = bouts.groupby("fish").size() / 30.0
    assert rate["A1"] > 1.5 * rate["A2"]  # the slower fish bouts less often
    gaps = bouts[bouts["fish"] == "A2"]["start_s"].diff().dropna()
    assert gaps.min() >= 1.2


def test_passive_arenas_never_bout_in_open_loop_but_swim_in_closed_loop():
    spec = SimSpec(layout="wells", rows=1, cols=3, fps=100.0, duration_s=30.0, seed=2,
                   passive_arenas=["A2"])
    frames, bouts = _bout_stats(spec)
    ol = frames[frames["phase"] == "open_loop_1"]
    p = ol.groupby("fish")["state"].apply(lambda s: np.mean(s == "passive"))
    assert p["A2"] == 1.0
    assert p.drop("A2").max() < 1.0
    b = bouts[bouts["fish"] == "A2"]
    assert len(b) > 3 and (b["phase"] == "closed_loop_1").all()


def test_bout_params_are_validated():
    with pytest.raises(ValueError, match="unknown parameter"):
        SimSpec(bout_params={"no_such_knob": 1.0})
    with pytest.raises(ValueError, match="unknown arena or fish"):
        SimSpec(rows=1, cols=2, fish_bout_params={"Z9": {"normal_dur_min": 0.1}})
    with pytest.raises(ValueError, match="only be set for every fish"):
        SimSpec(rows=1, cols=2, fish_bout_params={"A1": {"passive_min_factor": 2.0}})
    with pytest.raises(ValueError, match=">= 0"):
        SimSpec(bout_params={"normal_dur_min": -1.0})
    with pytest.raises(ValueError, match="unknown arena"):
        SimSpec(rows=1, cols=2, passive_arenas=["C7"])
    with pytest.raises(ValueError, match="one per fish"):
        resolve_params({"normal_dur_min": [0.1, 0.2, 0.3]}, 2)


def test_default_behaviour_unchanged_by_the_new_knobs():
    # the same seed without overrides draws the same bouts as with empty overrides
    kw = dict(effect=0.5, fps=50.0, seed=4, duration_s=60.0,
              protocol=[Phase(name="cl", kind="closed_loop", start_s=0, end_s=20),
                        Phase(name="ol", kind="open_loop", start_s=20, end_s=60)])
    a = simulate_states({"control": 3, "ketamine": 3}, **kw)[1]
    rng = np.random.default_rng(np.random.SeedSequence(4))
    plan = generate_bouts(np.r_[np.zeros(3), np.full(3, 0.5)], phases=kw["protocol"], fps=50.0,
                          n_frames=3000, min_passive_s=2.0, rng=rng, params={})
    assert len(plan.start) == len(a)
    np.testing.assert_array_equal(plan.start, a["start_frame"].to_numpy())


# ------------------------------------------------------------------------------------------
# the drawer


def test_one_seed_draws_one_whole_recording_reproducibly():
    a, b = draw_recording(1003), draw_recording(1003)
    assert a.spec == b.spec and a.recording == b.recording and a.truth_noise == b.truth_noise
    pd.testing.assert_frame_equal(a.fish, b.fish)
    assert draw_recording(1004).spec != a.spec
    assert set(TUNE_SEEDS).isdisjoint(REPORT_SEEDS)


def test_draws_cover_the_ranges_of_the_issue():
    draws = [draw_recording(s) for s in range(150)]
    rec = pd.DataFrame([d.recording for d in draws])
    assert rec["fps"].between(*RANGES["fps"]).all()
    assert rec["fps"].min() < 80 and rec["fps"].max() > 700
    assert rec["fish_length_px"].between(*RANGES["fish_length_px"]).all()
    assert rec["fish_length_px"].min() < 25 and rec["fish_length_px"].max() > 110
    assert rec["tail_contrast_grey"].between(15, 75).all()
    assert rec["noise_sd"].between(2, 12).all()
    assert set(rec["polarity"]) == {"dark", "bright"}
    assert set(rec["layout"]) == {"wells", "embedded"}
    assert rec.loc[rec["codec"] == "h264", "crf"].between(18, 28).all()
    assert (rec["flicker"] > 0).mean() > 0.3 and (rec["flicker"] == 0).mean() > 0.3
    fish = pd.concat([d.fish for d in draws])
    assert fish["still"].sum() > 10 and fish["open_loop_passive"].sum() > 10
    assert not (fish["still"] & fish["open_loop_passive"]).any()
    assert all((~d.fish["still"]).any() for d in draws)  # someone moves in every recording
    assert fish["struggle_duty"].between(0.1, 0.5).all()
    assert fish["beat_lo_hz"].min() >= 15 and fish["beat_hi_hz"].max() <= 40
    assert PENDING_DRAWS  # what waits for the renderer is listed


def test_extra_draws_get_their_own_stream():
    seen = {}

    def morph(rng, rec):
        seen.update(rec)
        return {"gradient": float(rng.uniform(0, 0.3))}

    plain = draw_recording(1010)
    extra = draw_recording(1010, extra_draws=[morph])
    assert seen["fps"] == plain.recording["fps"]
    assert extra.spec.model_copy(update={"gradient": 0.0}) == plain.spec
    assert extra.extra["gradient"] == extra.spec.gradient > 0


def test_drawn_truth_has_bouts_of_the_drawn_durations_and_the_drawn_still_fish():
    d = draw_recording(7)
    t = simulate_truth(d.spec)
    moving = d.fish.loc[~d.fish["still"], "arena"]
    assert set(t.bouts["fish"]) <= set(moving)
    assert t.bouts["duration_s"].between(0.08 - 1e-9, 0.6 + 1e-9).all()
    for f in d.still_fish:
        assert (t.frames.loc[t.frames["fish"] == f, "state"] == "passive").all()


def test_score_recording_against_its_own_truth_is_perfect():
    d = draw_recording(11)
    t = simulate_truth(d.spec)
    scored = t.frames[["fish", "frame", "state"]].astype({"state": str})
    row = score_recording(scored, t.bouts, t.frames, t.bouts, still_fish=d.still_fish,
                          open_loop=["open_loop_1"])
    assert row["accuracy"] == 1.0 and row["passive_err_max"] == 0.0
    assert row["bout_f1"] == 1.0 and row["coverage"] == 1.0 and row["fish_missing"] == 0
    # a fish the tracker never found is missing, and its frames are not covered
    lost = scored[scored["fish"] != scored["fish"].iloc[0]]
    row = score_recording(lost, t.bouts, t.frames, t.bouts, open_loop=["open_loop_1"])
    assert row["fish_missing"] == 1 and row["coverage"] < 1.0


def test_match_onsets_is_one_to_one_within_the_tolerance():
    truth = pd.DataFrame({"fish": ["a", "a", "b"], "start_s": [1.0, 2.0, 1.0]})
    found = pd.DataFrame({"fish": ["a", "a", "a", "b"], "start_s": [1.02, 1.04, 2.2, 1.0]})
    tp, fp, fn, err = match_onsets(truth, found, tol_s=0.05)
    assert (tp, fp, fn) == (2, 2, 1)
    np.testing.assert_allclose(sorted(err), [0.0, 0.02], atol=1e-12)


def test_noisy_truth_tracks_add_the_drawn_noise():
    d = draw_recording(12)
    t = simulate_truth(d.spec)
    tr = noisy_truth_tracks(t.frames, d.truth_noise)
    assert not {"state", "in_bout"} & set(tr.columns)
    m = tr.merge(t.frames[["fish", "frame", "tail_angle"]], on=["fish", "frame"],
                 suffixes=("", "_t"))
    err = (m["tail_angle"] - m["tail_angle_t"]).dropna()
    sd = d.truth_noise["tail_sd_rad"]
    mad = 1.4826 * np.median(np.abs(err - np.median(err)))
    assert 0.8 * sd < mad < 1.6 * sd
    assert 0 < (~tr["detected"]).mean() < 0.2
