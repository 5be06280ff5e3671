"""A bout's first tail turn is not merged with a same-sign turn long before it (issue 11,
``kinematics.SAME_TURN_MAX_S``; docs/behaviour.md, "Tail beats").

The extremum search keeps the turns alternating left/right: of consecutive extrema of one sign
it keeps the most extreme, as one noisy turn. Before 2026-12-08 it did so however far apart
they lay, so a bout's first turn competed with a same-sign turn any time earlier (the end of
the previous bout) and was dropped when that one was larger: the bout lost its first
half-beat, at 60-100 fps 2-3 frames plus the onset pad, and a short bout could lose its only
pair of turns.

``tests/data/stress23854_tracks.parquet``: the tracker's output of spent seed 23854 (six
head-embedded 30-px larvae at 71 fps, H.264, noise sd 11.3) with the simulator's truth per
row; larva A2 swims a true bout at 1.34-1.59 s (frames 95-113, 23 Hz): its first trough
(frame 97, 0.31 rad prominent against a threshold of 0.24) was merged with a larger trough of
the bout before, and the bout was found at 1.49 s (frames 106-110), 150 ms late.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from fixtures_behaviour import compact_tracks

from fishtrack.behaviour import classify
from fishtrack.behaviour._frames import sorted_frames
from fishtrack.behaviour.kinematics import tail_extrema
from fishtrack.synth.stress import _stress_config, draw_recording

DATA = Path(__file__).parent / "data"
FPS = 71.0


def _turns(fps: float = FPS) -> tuple[pd.DataFrame, float, float]:
    """One fish, 2 s: a one-sided bend of -0.6 rad at 0.5 s, then at 0.8 s a 23-Hz bout of
    three beats of 0.3 rad that starts with a trough (its first turn, -0.3 rad, at 0.8 s +
    a quarter beat), no noise. Returns the tracks and the times of the bend and of the first
    turn."""
    t = np.arange(int(2.0 * fps)) / fps
    tail = np.zeros_like(t)
    bend = 0.5
    tail += -0.6 * np.exp(-0.5 * ((t - bend) / 0.02) ** 2)
    hz, onset, n_beats = 23.0, 0.8, 3
    inside = (t >= onset) & (t <= onset + n_beats / hz)
    tail[inside] += -0.3 * np.sin(2 * np.pi * hz * (t[inside] - onset))
    tracks = pd.DataFrame({"fish": "f0", "arena": "A1", "frame": np.arange(len(t)), "time_s": t,
                           "x": 50.0, "y": 50.0, "heading": 0.0, "tail_angle": tail})
    return tracks, bend, onset + 0.25 / hz


def test_first_turn_of_a_bout_is_kept_after_a_larger_same_sign_turn():
    for fps in (60.0, FPS, 97.0, 250.0):
        tracks, bend, first = _turns(fps)
        fr = sorted_frames(tracks)
        ext = tail_extrema(fr, np.array([0.01]), fr.tail)
        times = fr.t[ext]
        # the bend 0.3 s before is a turn of its own, and so is the bout's first trough
        assert np.min(np.abs(times - bend)) <= 1.0 / fps, (fps, times.round(3).tolist())
        assert np.min(np.abs(times - first)) <= 1.0 / fps, (fps, times.round(3).tolist())
        # and the bout's turns alternate: six half-beats
        inside = times[(times > 0.75) & (times < 0.8 + 3 / 23.0 + 0.02)]
        assert len(inside) == 6, (fps, inside.round(3).tolist())


def test_stored_71_fps_bout_found_at_its_onset():
    draw = draw_recording(23854)
    tracks, truth = compact_tracks(DATA / "stress23854_tracks.parquet", draw.recording["fps"])
    cfg = _stress_config(draw.spec, None)
    res = classify(tracks, cfg.behaviour, cfg.protocol)
    a2 = res.bouts[res.bouts["fish"] == "A2"]
    # the true bout 1.338-1.592 s: a bout found starts within the suite's onset tolerance
    onset = 95 / draw.recording["fps"]
    near = a2[(a2["start_s"] - onset).abs() <= 0.05]
    assert len(near) == 1, a2[["start_s", "end_s"]].round(3).to_numpy().tolist()
    # the still larva stays passive
    m = (truth["arena"] == "A3").to_numpy()
    state = res.tracks["state"].to_numpy()[m]
    assert (state[state != "unknown"] == "passive").all()
