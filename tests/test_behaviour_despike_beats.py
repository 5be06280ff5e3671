"""Despike's slow case gives back beats (issue 11, ``kinematics.despike``, ``SPIKE_CLUSTER``):
below ~200 fps, where a half-beat can look like a one- or two-frame glitch, samples replaced
three or more within ``SPIKE_SPAN`` frames are a beat, not glitches, unless the tail between
them stays at rest (independent tracker glitches).

From the simulator's true tracks with simulated tracking noise (tuning seeds only), checked
against the simulator's true tail angle.
"""

from __future__ import annotations

import importlib

import numpy as np
import pandas as pd

from fishtrack.behaviour.kinematics import compute_kinematics, despike
from fishtrack.synth.simulate import simulate_truth
from fishtrack.synth.stress import (
    KAPPA_GOAL,
    draw_recording,
    noisy_truth_tracks,
    run_recording,
    state_score,
)

K = importlib.import_module("fishtrack.behaviour.kinematics")  # the module, not the function

# tuning seeds whose beats despike removed piece by piece (kappa* before): 5 (77 fps, A1's
# bouts at 2.86 and 3.49 s: +0.32, -0.25, +0.57 rad replaced, 0.88), 720 (162 fps, 0.71),
# 927 (134 fps, 0.47)
BEAT_SEEDS = (5, 720, 927)


def test_beats_despike_removed_are_bouts_again(tmp_path):
    for seed in BEAT_SEEDS:
        row = pd.DataFrame([run_recording(seed, tmp_path / str(seed), mode="truth")])
        kappa = float(state_score(row).iloc[0])
        assert 60 <= row["draw_fps"].iloc[0] < 200, seed
        assert kappa >= KAPPA_GOAL and row["passive_err_max"].iloc[0] <= 0.03, (
            seed, round(kappa, 3), round(float(row["passive_err_max"].iloc[0]), 3))
        assert row["still_ok"].iloc[0], seed


def _spikes(seed: int):
    dr = draw_recording(seed)
    st = simulate_truth(dr.spec)
    tracks = noisy_truth_tracks(st.frames, dr.truth_noise)
    fr = compute_kinematics(tracks).frames
    truth = st.frames.set_index(["fish", "frame"])
    keys = fr.fish_keys["fish"].astype(str).to_numpy()
    idx = pd.MultiIndex.from_arrays([keys[fr.gid], fr.frame])
    true = truth["tail_angle"].reindex(idx).to_numpy(float)
    in_bout = truth["in_bout"].reindex(idx).fillna(False).to_numpy(bool)
    sigma = np.full(len(keys), dr.truth_noise["tail_sd_rad"])
    _clean, spike = despike(fr, fr.tail.copy(), sigma)
    return fr, true, in_bout, spike


def test_despike_keeps_the_true_samples_of_a_beat():
    # seed 5, larva A1's bout at 3.49 s: the true tail angle +0.30, -0.23, +0.56 rad at
    # 3.51-3.53 s, traced within 0.03 rad of it; the slow case had replaced all three
    fr, true, in_bout, spike = _spikes(5)
    a1 = fr.fish_keys["fish"].astype(str).tolist().index("A1")
    beat = (fr.gid == a1) & (fr.t > 3.50) & (fr.t < 3.54) & fr.observed
    assert beat.sum() >= 3 and in_bout[beat].all()
    assert np.all(np.abs(fr.tail[beat] - true[beat]) < 0.05)
    assert not spike[beat].any()


def test_glitches_with_the_tail_at_rest_between_them_stay_replaced(monkeypatch):
    # seed 180 (103 fps, noise 0.010 rad), larva B2 at 10.07-10.14 s: three tracker glitches
    # (+0.54, +0.42, +0.41 rad) within eight frames, the tail at rest between them
    fr, true, in_bout, spike = _spikes(180)
    b2 = fr.fish_keys["fish"].astype(str).tolist().index("B2")
    near = (fr.gid == b2) & (fr.t > 10.05) & (fr.t < 10.15)
    glitch = near & (np.abs(fr.tail - true) > 0.3)
    assert glitch.sum() == 3 and not in_bout[near].any()
    assert spike[glitch].all()
    # without the test of the tail between them they would be given back as a beat
    monkeypatch.setattr(K, "SPIKE_CLUSTER_SIGMA", -np.inf)
    *_, spike2 = _spikes(180)
    assert not spike2[glitch].any()
