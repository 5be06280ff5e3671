"""The pixel-motion gate looks where the tail is (issue 11; docs/behaviour.md, "Pixel-motion
gate", and the tracker's ``tail_motion`` column in docs/data_model.md).

Rendered, H.264-encoded and tracked like ``fishtrack track``: the stress suite's tuning seed
311, two head-embedded 31-px larvae at 392 fps, tail 28 grey levels over the background in
camera noise sd 8.3 with 2.8 % flicker; the larva in A2 never moves. The beating faint tail of
A1 barely changes the mean pixel change of the whole larva (``motion_energy``: in-bout median
5.4 against a quiet 99th percentile of 8.4), so the gate dropped all its true bouts (kappa*
0.00); the fishness change at its traced caudal midline (``tail_motion``) separates them.
With two larvae there is no rig reference (``MOTION_GATE_MIN_FISH``).
"""

from __future__ import annotations

import importlib

import numpy as np
import pandas as pd
import pytest
from fixtures_behaviour import score_stress, tracked_stress_seed

from fishtrack.behaviour import bouts as bouts_mod
from fishtrack.behaviour import classify
from fishtrack.behaviour import pixel_bouts as pixel_mod
from fishtrack.pipeline import OUTPUT_COLUMNS
from fishtrack.tracking.tail_motion import tail_motion, tail_motion_lag

# the module (the package's ``kinematics`` name is the function of the same name)
kinematics_mod = importlib.import_module("fishtrack.behaviour.kinematics")

pytestmark = pytest.mark.timeout(300)


def _bar_patches(xs, p=40, contrast=30):
    """Patches with a vertical 2-px bar (a tail) at column ``xs[t]`` in frame ``t``."""
    fp = np.zeros((len(xs), p, p), np.uint8)
    for t, x in enumerate(xs):
        fp[t, 10:30, x:x + 2] = contrast
    return fp


def _midlines(xs, n=10):
    """Midlines running down column ``xs[t] + 0.5`` (full-frame px, patch at the origin)."""
    pts = np.zeros((len(xs), n, 2))
    pts[:, :, 1] = np.linspace(10, 29, n)[None, :]
    pts[:, :, 0] = np.asarray(xs, float)[:, None] + 0.5
    return pts


def test_tail_motion_sees_a_moving_tail_not_a_jumping_trace():
    xs = [10, 16, 10, 16, 10, 16]  # the tail beats 6 px from frame to frame
    m = len(xs)
    off, ok, rows = np.zeros((m, 2)), np.ones(m, bool), np.arange(m)
    beat = tail_motion(_bar_patches(xs), off, _midlines(xs), ok, rows, lag=1)
    assert np.isnan(beat[0]) and np.all(beat[1:] > 25)  # fish <-> background at both traces
    # the image stays still while the traced tail jumps (tracker jitter): no change
    still = tail_motion(_bar_patches([10] * m), off, _midlines(xs), ok, rows, lag=1)
    assert np.all(still[1:] == 0)
    # a frame whose partner (lag frames earlier) is missing is not measured
    gap = tail_motion(_bar_patches(xs), off, _midlines(xs), ok, np.array([0, 1, 2, 5, 6, 7]), lag=1)
    assert np.isnan(gap[3]) and np.isfinite(gap[4])
    assert tail_motion_lag(1 / 100) == 1 and tail_motion_lag(1 / 822) == 10


@pytest.fixture(scope="module")
def faint_tails(tmp_path_factory):
    return tracked_stress_seed(311, tmp_path_factory.mktemp("gate_tail"))


def test_faint_tail_bouts_pass_the_gate(faint_tails, monkeypatch):
    draw, cfg, sim, tr = faint_tails
    assert draw.still_fish == ["A2"] and draw.spec.noise_sd > 8 and len(draw.fish) == 2
    assert np.isfinite(tr.tracks["tail_motion"]).mean() > 0.95
    row = score_stress(draw, sim, tr)
    assert row["kappa"] >= 0.9 and row["passive_err_max"] <= 0.03
    assert row["still_ok"]  # the still larva's jitter is still dropped
    assert row["bout_f1"] >= 0.8
    # the motion energy alone (the rule before; the mid-tail test, which came after, keeps
    # these bouts too: test_behaviour_gate_midtail.py) drops the true bouts
    tracks = tr.tracks.drop(columns=[c for c in OUTPUT_COLUMNS if c in tr.tracks.columns])
    monkeypatch.setattr(bouts_mod, "MIDTAIL_GATE", False)
    monkeypatch.setattr(bouts_mod, "MOTION_GATE_TAIL", False)
    old = score_stress(draw, sim, classify(tracks, cfg.behaviour, cfg.protocol))
    assert old["kappa"] < 0.5 and old["tp"] < row["tp"]


def test_the_tail_test_level_is_in_provenance_the_fish_table_and_the_qc_figure(faint_tails):
    from fishtrack.behaviour.qc import vigour_summary
    from fishtrack.report.figures import behaviour_qc_figure

    draw, cfg, sim, tr = faint_tails
    noise = tr.provenance["behaviour_noise"]
    level = noise["motion_gate_tail_grey"]
    fish = pd.DataFrame(noise["fish"]).set_index("fish")
    assert level is not None and (fish["motion_gate_tail_grey"] == level).all()
    # the rig's level of the tail pixels: above what the still larva's tail gives, under the
    # largest tail motion of the active larva's (kept) bouts
    t = tr.tracks
    assert np.nanmedian(t.loc[t["fish"] == "A2", "tail_motion"]) < level
    assert np.nanmax(t.loc[(t["fish"] == "A1") & t["in_bout"], "tail_motion"]) > level
    summary = vigour_summary(t, noise["fish"])
    assert (summary["motion_gate_tail_grey"] == level).all()
    assert (summary["motion_gate_grey"] == noise["motion_gate_grey"]).all()
    title = behaviour_qc_figure(summary).axes[0].get_title(loc="left")
    assert f"tail motion {level:.3g} grey" in title


@pytest.fixture(scope="module")
def missed_bouts(tmp_path_factory):
    return tracked_stress_seed(514, tmp_path_factory.mktemp("gate_tail_fish"))


def test_the_tail_level_is_the_median_of_the_fish_s_own_levels(missed_bouts, monkeypatch):
    # tuning seed 514: six head-embedded 21-px larvae at 78 fps, tail 22 grey levels, camera
    # noise sd 7.9, H.264; the quiet frames of some larvae hold bouts the first detection
    # missed, and in one histogram of all larvae those frames set the 99th percentile: the
    # level rose above the tail motion of half the true bouts, which the gate then dropped
    draw, cfg, sim, tr = missed_bouts
    assert draw.recording["layout"] == "embedded" and len(draw.fish) == 6
    assert draw.recording["fps"] < 100 and draw.spec.noise_sd > 7
    row = score_stress(draw, sim, tr)
    assert row["kappa"] >= 0.9 and row["still_ok"]
    level = tr.provenance["behaviour_noise"]["motion_gate_tail_grey"]
    # the rule before: one histogram of every larva's quiet frames (and no mid-tail test nor
    # bouts from the tail's pixels, which came after and keep most of these bouts too)
    tracks = tr.tracks.drop(columns=[c for c in OUTPUT_COLUMNS if c in tr.tracks.columns])
    monkeypatch.setattr(bouts_mod, "MIDTAIL_GATE", False)
    monkeypatch.setattr(pixel_mod, "PIXEL_BOUTS", False)
    monkeypatch.setattr(bouts_mod, "MOTION_GATE_TAIL_PER_FISH", False)
    # and the weak beats' energy clipped at 3 sigmas, z 7 (before 2026-12-07's h11x), which
    # also finds some of these bouts now
    monkeypatch.setattr(bouts_mod, "WEAK_BEAT_CLIP_SIGMA", 3.0)
    monkeypatch.setattr(bouts_mod, "WEAK_BEAT_ENERGY_Z", 7.0)
    # and the tail's mean test (2026-12-07, h11l), which keeps these bouts too
    monkeypatch.setattr(bouts_mod, "MOTION_GATE_TAIL_MEAN", False)
    # and a bout's first turn merged with any earlier same-sign turn (before 2026-12-08, h11r),
    # which lost some of these bouts' first half-beats
    monkeypatch.setattr(kinematics_mod, "SAME_TURN_MAX_S", np.inf)
    res = classify(tracks, cfg.behaviour, cfg.protocol)
    old = score_stress(draw, sim, res)
    assert res.noise["motion_gate_tail_grey"] > 1.2 * level
    assert old["kappa"] < 0.6 and old["tp"] < 0.6 * row["tp"]
