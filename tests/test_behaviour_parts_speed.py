"""The behaviour stage in parts does less work per pass, with exactly ``classify``'s results (issue 15: a 96-well plate's stage ran 14
passes over 10 parts, ~2.5x the CPU of scoring the whole table at once).

The recording of tests/test_behaviour_parts.py (fish that differ in activity, the pixel-motion
gate on, the midline's segment angles for the mid-tail test), scored in parts of one fish.
"""

from __future__ import annotations

import importlib

import numpy as np
import pandas as pd
from test_behaviour_parts import _recording

from fishtrack.behaviour import classify
from fishtrack.behaviour.classify import classify_parts
from fishtrack.config import BehaviourConfig

CLASSIFY = importlib.import_module("fishtrack.behaviour.classify")
BOUTS = importlib.import_module("fishtrack.behaviour.bouts")


def _with_segments(tracks: pd.DataFrame) -> pd.DataFrame:
    """The tracker's midline segment angles (``seg_angle_1..4``, the mid-tail test's input)
    from the tail angle: a bend growing towards the tip, with its own small noise."""
    rng = np.random.default_rng(21)
    tail = pd.to_numeric(tracks["tail_angle"], errors="coerce").to_numpy(float)
    out = tracks.copy()
    for k in range(1, 5):
        out[f"seg_angle_{k}"] = tail * k / 4 + rng.normal(0, 0.01, len(tail))
    return out


def _check_equal(got, whole) -> None:
    pd.testing.assert_frame_equal(got.tracks.loc[whole.tracks.index], whole.tracks,
                                  check_exact=True)
    for name in ("bouts", "epochs", "fish"):
        pd.testing.assert_frame_equal(getattr(got, name), getattr(whole, name), check_exact=True)
    assert got.noise == whole.noise and got.notes == whole.notes


def test_each_part_measures_its_mid_tail_once_and_the_noise_references_once(monkeypatch):
    # the mid-tail angle (a part's own rows only) is kept between the passes; the white-noise
    # references (8192 simulated samples each) are computed once per run, not per part and pass
    tracks = _with_segments(_recording(fps=200.0, duration_s=20.0, motion=True))
    whole = classify(tracks)
    assert whole.noise["motion_gate_grey"] is not None
    keys = sorted(tracks["arena"].unique())
    calls: dict[str, int] = {}

    def counted(mod, name):
        real = getattr(mod, name)

        def fn(*a, **k):
            calls[name] = calls.get(name, 0) + 1
            return real(*a, **k)

        monkeypatch.setattr(mod, name, fn)

    counted(CLASSIFY, "midtail_frames")
    for name in ("white_noise_vigour", "white_noise_excursion", "white_noise_energy"):
        counted(BOUTS, name)
    got = classify_parts(lambda: (tracks[tracks["arena"] == a] for a in keys), BehaviourConfig())
    _check_equal(got, whole)
    assert got.passes > 2
    assert calls["midtail_frames"] == len(keys)  # once per part, not once per pass
    # one frame rate and window: one computation each (the vigour's reference is used by
    # every part in every pass; the others where their bouts are on)
    assert calls["white_noise_vigour"] == 1
    assert calls.get("white_noise_excursion", 0) <= 1 and calls.get("white_noise_energy", 0) <= 1
    # outside a run (plain classify) nothing is kept: a later run computes them again
    calls.clear()
    classify(tracks)
    assert calls["white_noise_vigour"] >= 1
