"""Behaviour stage on the simulator's ground truth (fishtrack.synth), with tracking noise.

The simulator's TRUE tracks get realistic tracking noise: tail_angle + N(0, 0.03 rad),
x/y + N(0, 0.5 px), 1 % of frames undetected (NaN). Targets (issue 4): frame state accuracy
>= 97 %, Cohen's kappa >= 0.9, bout F1 >= 0.95 with onsets within 50 ms, per-fish passive
fraction in open-loop phases within 0.03 of the truth.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fixtures_behaviour import f1, match_bouts

from fishtrack.behaviour import calibrate, classify
from fishtrack.behaviour.calibrate import cohen_kappa
from fishtrack.config import BehaviourConfig

synth = pytest.importorskip("fishtrack.synth")

TRUTH_ONLY = ["in_bout", "state", "group", "present", "phase"]


def _noisy_tracks(truth: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    tracks = truth.drop(columns=[c for c in TRUTH_ONLY if c in truth.columns]).copy()
    n = len(tracks)
    tracks["tail_angle"] = tracks["tail_angle"] + rng.normal(0, 0.03, n)
    tracks["x"] = tracks["x"] + rng.normal(0, 0.5, n)
    tracks["y"] = tracks["y"] + rng.normal(0, 0.5, n)
    tracks["detected"] = rng.random(n) >= 0.01
    lost = ~tracks["detected"].to_numpy()
    cols = ["x", "y", "heading", "tail_angle"] + [
        c for c in tracks.columns if c.startswith(("tail_x_", "tail_y_"))
    ]
    tracks.loc[lost, cols] = np.nan
    return tracks


def _simulate(**kw):
    spec = synth.SimSpec(fps=200.0, seed=kw.pop("seed", 1), **kw)
    truth = synth.simulate_truth(spec)
    return spec, truth.frames, truth.bouts


@pytest.fixture(scope="module")
def wells():
    spec, frames, bouts = _simulate(layout="wells", rows=1, cols=4, duration_s=75.0)
    return spec, frames, bouts, _noisy_tracks(frames)


def _check_targets(spec, truth, truth_bouts, res):
    state = res.tracks["state"].to_numpy()
    true_state = truth["state"].astype(str).to_numpy()
    known = state != "unknown"
    acc = np.mean(state[known] == true_state[known])
    kappa = cohen_kappa(state[known] == "passive", true_state[known] == "passive")
    assert acc >= 0.97, acc
    assert kappa >= 0.9, kappa
    assert known.mean() > 0.99  # 1 % single-frame losses are bridged, not unknown
    tp, fp, fn, err = match_bouts(truth_bouts, res.bouts, tol_s=0.05)
    assert f1(tp, fp, fn) >= 0.95, (tp, fp, fn)
    open_loop = [p.name for p in spec.phases() if p.kind == "open_loop"]
    d = res.tracks.assign(truth=true_state)
    d = d[d["phase"].isin(open_loop) & (d["state"] != "unknown")]
    g = d.groupby("fish")
    auto = g["state"].apply(lambda s: np.mean(s == "passive"))
    true = g["truth"].apply(lambda s: np.mean(s == "passive"))
    assert true.max() > 0.2  # the open loop does contain passivity
    assert np.all(np.abs(auto - true) <= 0.03), (auto - true).to_dict()
    return acc, kappa


@pytest.mark.parametrize("method", ["threshold", "hmm"])
def test_targets_on_simulated_wells(wells, method):
    spec, truth, truth_bouts, tracks = wells
    res = classify(tracks, BehaviourConfig(method=method), spec.phases())
    _check_targets(spec, truth, truth_bouts, res)


def test_bout_table_against_simulated_truth(wells):
    spec, truth, truth_bouts, tracks = wells
    res = classify(tracks, BehaviourConfig(), spec.phases())
    found = res.bouts
    m = truth_bouts.merge(found, on="fish", suffixes=("_t", ""))
    m = m[(m["start_s"] - m["start_s_t"]).abs() <= 0.05]
    assert len(m) >= 0.95 * len(truth_bouts)
    assert (m["phase"] == m["phase_t"]).mean() > 0.99
    assert np.median(np.abs(m["duration_s"] - m["duration_s_t"])) < 0.03
    assert np.median(np.abs(m["beat_hz"] / m["beat_hz_t"] - 1)) < 0.1
    assert np.mean(np.abs(m["n_beats"] - m["n_beats_t"]) <= 1) > 0.8
    assert np.median(np.abs(m["max_tail_angle"] - m["max_tail_angle_t"])) < 0.08
    # displacement: the head's straight-line displacement from the bout's first to last frame
    pos = truth.set_index(["fish", "frame"])[["x", "y"]]
    a = pos.loc[list(zip(m["fish"], m["start_frame_t"], strict=True))].to_numpy()
    b = pos.loc[list(zip(m["fish"], m["end_frame_t"], strict=True))].to_numpy()
    true_disp = np.hypot(*(b - a).T)
    assert np.median(np.abs(m["displacement_px"].to_numpy() - true_disp)) < 2.0
    assert true_disp.max() > 20  # free-swimming bouts do move the head
    # every frame's phase matches the simulator's
    assert (
        res.tracks["phase"].fillna("").to_numpy() == truth["phase"].fillna("").astype(str)
    ).all()


def test_targets_on_simulated_head_embedded_larvae():
    spec, truth, truth_bouts = _simulate(layout="embedded", rows=1, cols=2, duration_s=60.0, seed=4)
    res = classify(_noisy_tracks(truth, seed=2), BehaviourConfig(), spec.phases())
    _check_targets(spec, truth, truth_bouts, res)
    assert res.bouts["displacement_px"].max() < 5.0  # embedded: only the tail moves


def test_calibration_recovers_min_passive_from_simulated_labels(wells):
    spec, truth, _, tracks = wells
    # the "human" scores epochs exactly like the simulator's truth (min_passive_s = 2 s)
    rows = []
    for fish, d in truth.groupby("fish", sort=False):
        s = d["state"].astype(str).to_numpy()
        t = d["time_s"].to_numpy()
        cut = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
        ends = np.r_[t[cut[1:]], t[-1] + 1 / spec.fps]
        rows += [
            {"fish": fish, "state": s[c], "start_s": t[c], "end_s": e}
            for c, e in zip(cut, ends, strict=True)
        ]
    labels = pd.DataFrame(rows)
    res = calibrate(tracks, labels, BehaviourConfig(min_passive_s=5.0), spec.phases())
    assert res.kappa < res.best_kappa
    # simulated active gaps are < 0.75 x 2 s and passive epochs > 1.5 x 2 s: every value in
    # between describes the labels equally well
    lo, hi = res.min_passive_range
    assert lo <= spec.min_passive_s <= hi and 1.5 <= lo and hi <= 3.0
    assert lo <= res.suggested_min_passive_s <= hi
    assert res.best_kappa >= 0.9
