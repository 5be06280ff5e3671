"""The pixel-motion gate judges a traced tail's movement over a fixed time, not per frame
(issue 11; docs/behaviour.md, "Pixel-motion gate").

Rendered, H.264-encoded and tracked like ``fishtrack track``: the stress suite's tuning seed
242, two dark 22-px larvae at 822 fps (tail ~28 grey levels, camera noise sd 6); the larva in
A2 never moves. At this frame rate the traced tail - beating or jittering - moves well under
the gate's 0.7 px between two frames, so a per-frame visibility floor judged no bout and the
still larva's tracker jitter was scored as bouts. Measured over half a beat period (12.5 ms,
10 frames here) the jitter is visible, and the pixels, which do not move, veto it.
"""

from __future__ import annotations

import numpy as np
import pytest
from fixtures_behaviour import score_stress, tracked_stress_seed

from fishtrack.behaviour import bouts as bouts_mod
from fishtrack.behaviour import classify
from fishtrack.behaviour.bouts import MOTION_GATE_MIN_STEP_PX, gate_lag
from fishtrack.behaviour.kinematics import compute_kinematics
from fishtrack.behaviour.speed import body_length_px
from fishtrack.pipeline import OUTPUT_COLUMNS

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def fast_small(tmp_path_factory):
    return tracked_stress_seed(242, tmp_path_factory.mktemp("gate_fps"))


_score = score_stress


def test_high_frame_rate_still_larva_is_100_percent_passive(fast_small):
    draw, cfg, sim, tr = fast_small
    assert draw.still_fish == ["A2"] and draw.spec.fps > 800
    row = _score(draw, sim, tr)
    assert row["still_ok"]
    assert row["kappa"] >= 0.9 and row["passive_err_max"] <= 0.03
    assert row["tp"] >= 2  # the active larva's bouts survive the gate
    fish = {f["fish"]: f for f in tr.provenance["behaviour_noise"]["fish"]}
    assert fish["A2"]["n_motion_gated_bouts"] >= 1


def test_per_frame_floor_cannot_judge_the_jitter(fast_small, monkeypatch):
    draw, cfg, sim, tr = fast_small
    tracks = tr.tracks.drop(columns=[c for c in OUTPUT_COLUMNS if c in tr.tracks.columns])
    kin = compute_kinematics(tracks, vigour_window_s=cfg.behaviour.vigour_window_s)
    lag = gate_lag(kin.frames)
    assert lag >= 8
    still = (kin.frames.fish_keys["fish"].to_numpy()[kin.frames.gid] == "A2")
    body = body_length_px(tracks, kin.frames)[1]  # A2's traced length (px)
    assert 15 < body < 25
    per_frame = np.abs(np.diff(kin.tail[still])) * body
    assert np.nanquantile(per_frame, 0.9) < MOTION_GATE_MIN_STEP_PX  # never judged per frame
    # the former rule (movement per frame): the still larva's jitter is scored as bouts
    monkeypatch.setattr(bouts_mod, "MOTION_GATE_WINDOW_S", 0.0)
    old = classify(tracks, cfg.behaviour, cfg.protocol)
    row_old = _score(draw, sim, old)
    assert (old.bouts["fish"] == "A2").any() and not row_old["still_ok"]
    assert row_old["kappa"] < 0.9
