"""The behaviour stage fish by fish (``classify_parts``) gives exactly ``classify``'s results.

A simulated recording whose fish differ in activity (always swimming: too little quiet time,
its noise pooled over the others; never moving; a noisy tail; ordinary fish), its rows in the
tracker's order (frame by frame, all fish). Scoring it in parts of one or two fish, with the
recording-level values computed from the parts' summaries, must give the same tracks, bouts,
epochs, fish table, noise summary and notes as scoring the whole table at once, to the bit.
"""

from __future__ import annotations

import importlib

import numpy as np
import pandas as pd
import pytest
from fixtures_behaviour import make_fish

from fishtrack.behaviour import classify
from fishtrack.behaviour._pool import PoolNeeded
from fishtrack.behaviour.classify import classify_parts
from fishtrack.config import BehaviourConfig
from fishtrack.errors import FishtrackError

BUSY = {"passive": (0.1, 0.2), "ibi": (0.05, 0.1), "bout_s": (0.3, 0.5), "active": (100.0, 100.0),
        "p_first_passive": 0.0}
STILL = {"passive": (100.0, 100.0), "p_first_passive": 1.0}


def _recording(fps: float, duration_s: float = 30.0, motion: bool = False) -> pd.DataFrame:
    kw = {"fps": fps, "duration_s": duration_s}
    fish = [
        make_fish(11, fish="f0", arena="A1", schedule=BUSY, **kw),
        make_fish(12, fish="f1", arena="A2", schedule=STILL, **kw),
        make_fish(13, fish="f2", arena="A3", noise_rad=0.12, **kw),
        make_fish(14, fish="f3", arena="A4", p_missing=0.02, **kw),
        make_fish(15, fish="f4", arena="A5", long_gap=(5.0, 7.0), **kw),
    ]
    tracks = pd.concat([f.tracks for f in fish], ignore_index=True)
    if motion:
        rng = np.random.default_rng(16)
        sp = np.hypot(tracks["x"].diff().fillna(0), tracks["y"].diff().fillna(0))
        tracks["motion_energy"] = np.where(sp > 1, 5.0, 0.0) + rng.normal(0.5, 0.1, len(tracks))
    # the tracker's order: frame by frame, every fish
    return tracks.sort_values(["frame", "arena"], kind="stable").reset_index(drop=True)


def _check_same(tracks: pd.DataFrame, cfg: BehaviourConfig, fish_per_part: int) -> int:
    whole = classify(tracks, cfg)
    keys = sorted(tracks["arena"].unique())
    groups = [keys[i:i + fish_per_part] for i in range(0, len(keys), fish_per_part)]

    def parts():
        for g in groups:
            yield tracks[tracks["arena"].isin(g)]

    got = classify_parts(parts, cfg)
    pd.testing.assert_frame_equal(got.tracks.loc[whole.tracks.index], whole.tracks,
                                  check_exact=True)
    for name in ("bouts", "epochs", "fish"):
        pd.testing.assert_frame_equal(getattr(got, name), getattr(whole, name), check_exact=True)
    assert got.noise == whole.noise
    assert got.notes == whole.notes and got.motion_source == whole.motion_source
    return got.passes


@pytest.mark.parametrize("fish_per_part", [1, 2])
def test_tail_bouts_in_parts_equal_the_whole_table(fish_per_part):
    tracks = _recording(fps=200.0)
    whole = classify(tracks)
    fish = whole.fish.set_index("arena")
    # the fish really differ: one pooled, one without bouts, one flagged noisy
    assert fish.loc["A1", "noise_pooled"] and "no_bouts" in fish.loc["A2", "qc_flags"]
    assert "noisy_tail" in fish.loc["A3", "qc_flags"]
    passes = _check_same(tracks, BehaviourConfig(), fish_per_part)
    assert passes > 2  # the recording-level values came from the parts' summaries


def test_sustained_tail_bouts_in_parts_equal_the_whole_table():
    # 90 fps: the sustained bouts (tail energy, its noise levels pooled like the vigour's)
    tracks = _recording(fps=90.0, duration_s=20.0)
    whole = classify(tracks)
    assert (whole.bouts["bout_evidence"] == "sustained").any()
    _check_same(tracks, BehaviourConfig(), 1)


def test_hmm_and_speed_bouts_in_parts_equal_the_whole_table():
    _check_same(_recording(fps=200.0, duration_s=20.0), BehaviourConfig(method="hmm"), 1)
    # 25 fps: movement bouts from the head's speed and the pixel motion
    slow = _recording(fps=25.0, duration_s=60.0, motion=True)
    assert classify(slow).noise["bout_signal"] == "speed_motion"
    _check_same(slow, BehaviourConfig(), 1)
    _check_same(slow, BehaviourConfig(speed_threshold=2.0,
                                      speed_threshold_unit="body_lengths/s"), 2)


def test_tail_bouts_with_the_motion_gate_in_parts_equal_the_whole_table():
    # pixel motion with a tail: the tail bouts' motion gate, one level pooled over the fish
    tracks = _recording(fps=200.0, duration_s=20.0, motion=True)
    whole = classify(tracks)
    assert whole.noise["bout_signal"] != "speed_motion"
    assert whole.noise["motion_gate_grey"] is not None
    _check_same(tracks, BehaviourConfig(), 1)


def test_a_recording_in_one_part_is_scored_in_one_pass():
    tracks = _recording(fps=200.0, duration_s=20.0, motion=True)
    whole = classify(tracks)
    got = classify_parts(lambda: iter([tracks.iloc[:0], tracks]), BehaviourConfig())
    assert got.passes == 1
    pd.testing.assert_frame_equal(got.tracks, whole.tracks, check_exact=True)
    for name in ("bouts", "epochs", "fish"):
        pd.testing.assert_frame_equal(getattr(got, name), getattr(whole, name), check_exact=True)
    assert got.noise == whole.noise


def test_passes_resume_from_the_kept_steps_and_leave_nothing_behind(tmp_path, monkeypatch):
    # every part's kinematics are computed once, however many passes need them; the values
    # the stage can ask for early come in the first pass; the step files are removed
    mod = importlib.import_module("fishtrack.behaviour.classify")
    runs = []
    real = mod.compute_kinematics
    monkeypatch.setattr(mod, "compute_kinematics", lambda *a, **k: runs.append(1) or real(*a, **k))
    tracks = _recording(fps=200.0, duration_s=20.0, motion=True)
    keys = sorted(tracks["arena"].unique())
    asked: list[tuple] = []

    def score_part(*a, **k):
        try:
            return classify(*a, **k)
        except PoolNeeded as want:
            asked.append((want.key, sorted(want.ahead)))
            raise

    got = classify_parts(lambda: (tracks[tracks["arena"] == a] for a in keys), BehaviourConfig(),
                         score_part=score_part, work_dir=tmp_path)
    assert len(runs) == len(keys)  # once per part, not once per pass
    assert list(tmp_path.iterdir()) == []
    # pass 1: the three values that depend only on the table, together
    assert asked[0] == (("any_tail_angle", 0), [("any_motion_energy", 0), ("dt_median", 0)])
    # one pass per value the stage stopped at, plus the last one
    stops = [k for k, _ in asked[:: len(keys)]]
    assert got.passes == len(stops) + 1 and len(set(stops)) == len(stops)
    assert ("qc_tail_noise", 0) not in stops  # asked for ahead, with another value
    # 11 before the values asked for ahead (static ones, QC median): 8; the pixel-motion gate's
    # rig reference and mean-test levels (issue 11, stop 23) add two
    assert got.passes == 10


def test_the_step_files_are_removed_after_an_error(tmp_path):
    tracks = _recording(fps=200.0, duration_s=10.0)
    keys = sorted(tracks["arena"].unique())
    calls = []

    def score_part(*a, **k):
        calls.append(1)
        if len(calls) > 2 * len(keys):  # after two passes, files kept
            raise FishtrackError("stop")
        return classify(*a, **k)

    with pytest.raises(FishtrackError, match="stop"):
        classify_parts(lambda: (tracks[tracks["arena"] == a] for a in keys), BehaviourConfig(),
                       score_part=score_part, work_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []
