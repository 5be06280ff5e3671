"""Sustained tail bouts at 60-125 fps (issue 11): weak beats whose per-frame vigour is inside the
tracking noise are found when they last (the tail's energy over 0.15 s).

From the simulator's true tracks with simulated tracking noise (tuning seeds only): the vigour
alone scored these recordings with kappa* 0.03-0.67 (their weak larvae's bouts missed).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fishtrack.behaviour import bouts as B
from fishtrack.behaviour._frames import gap_blocks
from fishtrack.behaviour.kinematics import compute_kinematics
from fishtrack.config import BehaviourConfig
from fishtrack.synth.simulate import simulate_truth
from fishtrack.synth.stress import (
    KAPPA_GOAL,
    draw_recording,
    noisy_truth_tracks,
    run_recording,
    state_score,
)

# tuning seeds at 61-115 fps with tail noise 0.06-0.08 rad per frame, every goal but the
# weak fish's bouts met before: 531 (115 fps, kappa* 0.03 before), 370 (98 fps, 0.13), 943
# (61 fps, 0.67)
SEEDS = (531, 370, 943)
# and a seed whose weak bouts were cut by the tracking's dropouts (the tail lost in 2-9 % of
# the frames of each larva): 459 (87 fps, noise 0.048 rad: passive error 0.16 while a missing
# sample cut the energy's runs in two)
DROPOUT_SEEDS = (459,)


@pytest.mark.parametrize("seeds", [SEEDS, DROPOUT_SEEDS], ids=["energy", "dropouts"])
def test_weak_lasting_beats_at_60_to_125_fps_are_found(tmp_path, seeds):
    rows = pd.DataFrame([run_recording(s, tmp_path, mode="truth") for s in seeds])
    assert rows["draw_fps"].between(60, 125).all()
    assert (state_score(rows) >= KAPPA_GOAL).all(), state_score(rows).round(3).tolist()
    assert rows["still_ok"].all()
    assert (rows["passive_err_max"] <= 0.03).all(), rows["passive_err_max"].round(3).tolist()


def test_the_sustained_bouts_are_the_weak_fish_s_and_its_noise_sets_the_threshold():
    # seed 531: one larva (A1) beats weakly (its vigour inside the noise), the other never
    # bouts; the sustained bouts fall inside A1's true bouts, the still larva has none, and the
    # threshold is the quiet frames' energy, close to the tail noise squared
    dr = draw_recording(531)
    st = simulate_truth(dr.spec)
    tracks = noisy_truth_tracks(st.frames, dr.truth_noise)
    kin = compute_kinematics(tracks)
    fr = kin.frames
    assert B.sustained_on(kin)
    cfg = BehaviourConfig()
    br = B._detect(kin, cfg, gap_blocks(fr, cfg.max_gap_s))
    sus = br.evidence == "sustained"
    assert sus.sum() >= 3
    truth = st.frames.set_index(["fish", "frame"])["in_bout"]
    key = list(zip(tracks["fish"], tracks["frame"], strict=True))
    in_true = truth.reindex(key).to_numpy(bool)[fr.order]
    for a, b in zip(br.starts[sus], br.ends[sus], strict=True):
        assert in_true[a:b + 1].mean() > 0.5
    noise = br.levels.sustained_mean
    assert np.allclose(noise, kin.tail_noise ** 2, rtol=0.35)
    assert (br.sustained_thresholds > 2 * noise).all()


def test_no_sustained_bouts_above_125_fps():
    # above 125 fps the tail is low-passed and a beat has >= 3-8 samples: the vigour's rule
    # alone, as before
    dr = draw_recording(7)  # 169 fps
    assert dr.recording["fps"] > 125
    tracks = noisy_truth_tracks(simulate_truth(dr.spec).frames, dr.truth_noise)
    kin = compute_kinematics(tracks)
    assert not B.sustained_on(kin)


def test_the_sustained_threshold_is_in_the_fish_table_provenance_and_qc_summary():
    # the per-fish sustained threshold (rad^2) the bouts were found with, and its median in
    # the recording's noise summary; above 125 fps (no sustained bouts) it is not measured
    from fishtrack.behaviour import classify
    from fishtrack.behaviour.qc import vigour_summary

    dr = draw_recording(531)
    tracks = noisy_truth_tracks(simulate_truth(dr.spec).frames, dr.truth_noise)
    res = classify(tracks)
    kin = compute_kinematics(tracks)
    cfg = BehaviourConfig()
    br = B._detect(kin, cfg, gap_blocks(kin.frames, cfg.max_gap_s))
    got = res.fish["sustained_threshold_rad2"].to_numpy(float)
    np.testing.assert_allclose(got, br.sustained_thresholds, rtol=1e-9)
    assert (got > 0).all()
    assert res.noise["sustained_threshold_rad2"] == round(float(np.median(got)), 6)
    qc = vigour_summary(res.tracks, res.noise["fish"]).set_index("fish")
    np.testing.assert_allclose(qc.loc[res.fish["fish"].astype(str), "sustained_threshold_rad2"],
                               got, atol=1e-6)  # rounded to 6 decimals
    fast = draw_recording(7)  # 169 fps
    res = classify(noisy_truth_tracks(simulate_truth(fast.spec).frames, fast.truth_noise))
    assert res.fish["sustained_threshold_rad2"].isna().all()
    assert res.noise["sustained_threshold_rad2"] is None


def test_short_weak_bouts_whose_energy_peaks_briefly_are_found(tmp_path):
    # tuning seeds 663 (116 fps, kappa* 0.62, passive error 0.39 when a sustained bout had to
    # stay above its threshold for half the window) and 909 (0.90, 0.17): weak bouts about as
    # long as the window, whose energy is above the threshold for a quarter to half of it
    rows = pd.DataFrame([run_recording(s, tmp_path, mode="truth") for s in (663, 909)])
    assert rows["draw_fps"].between(60, 125).all()
    assert (state_score(rows) >= KAPPA_GOAL).all(), state_score(rows).round(3).tolist()
    assert (rows["passive_err_max"] <= 0.03).all(), rows["passive_err_max"].round(3).tolist()
    assert rows["still_ok"].all()
