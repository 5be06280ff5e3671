"""The pixel-motion gate asks whether the middle of the traced tail moves (issue 11, from video;
docs/behaviour.md, "Pixel-motion gate", "The middle of the tail").

Rendered, H.264-encoded and tracked like ``fishtrack track``: the stress suite's tuning seed
818, four 24-px larvae in wells at 128 fps, tail 19.5 grey levels over the background in camera
noise sd 8.6, H.264 CRF 25; the larvae in A1 and B2 never move. At 6.26 s an H.264 refresh
changes B2's pixels for a few frames (its motion energy above the rig's peaks at 1.2 x the
gate's level) while its traced tip jitters by 0.09 rad: with the rule before, a bout. Its
mid-tail stays within its noise, so the bout is dropped now.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fixtures_behaviour import score_stress, tracked_stress_seed

from fishtrack.behaviour import bouts as bouts_mod
from fishtrack.behaviour import classify
from fishtrack.behaviour.bouts import midtail_frames, midtail_level
from fishtrack.behaviour.kinematics import compute_kinematics
from fishtrack.pipeline import OUTPUT_COLUMNS

pytestmark = pytest.mark.timeout(300)


def _tracks(seg: dict[int, np.ndarray], n: int, fps: float = 200.0) -> pd.DataFrame:
    t = np.arange(n) / fps
    out = pd.DataFrame({"frame": np.arange(n), "time_s": t, "fish": "A1", "arena": "A1",
                        "tail_angle": np.zeros(n)})
    for k in range(1, 10):
        out[f"seg_angle_{k}"] = seg.get(k, np.zeros(n))
    return out


def test_the_mid_tail_angle_is_the_segment_at_60_percent_of_the_midline():
    n = 400
    beat = 0.3 * np.sin(2 * np.pi * 25 * np.arange(n) / 200.0)
    tip_only = _tracks({9: beat, 8: beat}, n)  # the traced tip jitters, the mid-tail does not
    fr = compute_kinematics(tip_only).frames
    assert np.nanmax(np.abs(midtail_frames(tip_only, fr))) < 1e-9
    mid = _tracks({6: beat + 0.2}, n)  # segment 6 of 9 beats around a bent rest posture
    dev = midtail_frames(mid, compute_kinematics(mid).frames)
    inner = slice(100, 300)  # away from the ends of the 0.5 s rest posture's window
    assert np.allclose(dev[inner], beat[inner], atol=0.03)
    assert midtail_frames(mid.drop(columns=[f"seg_angle_{k}" for k in range(1, 10)]), fr) is None
    # the recording's level: the 99th percentile of |deviation| on the quiet frames
    quiet = np.ones(n, bool)
    assert midtail_level(fr, dev, quiet) == pytest.approx(np.quantile(np.abs(dev), 0.99))
    assert np.isnan(midtail_level(fr, dev, np.zeros(n, bool)))  # no quiet frames: not measured


@pytest.fixture(scope="module")
def still_in_h264(tmp_path_factory):
    return tracked_stress_seed(818, tmp_path_factory.mktemp("gate_midtail"))


def test_a_still_larva_s_tip_jitter_is_not_a_bout(still_in_h264, monkeypatch):
    draw, cfg, sim, tr = still_in_h264
    assert sorted(draw.still_fish) == ["A1", "B2"] and draw.recording["codec"] == "h264"
    assert draw.spec.noise_sd > 8 and len(draw.fish) == 4
    row = score_stress(draw, sim, tr)
    assert row["still_ok"] and row["kappa"] >= 0.9
    assert not tr.bouts["fish"].astype(str).isin(["A1", "B2"]).any()
    # the rule before: the whole larva's pixels keep B2's jitter
    tracks = tr.tracks.drop(columns=[c for c in OUTPUT_COLUMNS if c in tr.tracks.columns])
    monkeypatch.setattr(bouts_mod, "MIDTAIL_GATE", False)
    old_res = classify(tracks, cfg.behaviour, cfg.protocol)
    old = score_stress(draw, sim, old_res)
    assert not old["still_ok"]
    assert (old_res.bouts["fish"].astype(str) == "B2").sum() >= 1
    # the active larvae keep the true bouts they had
    assert row["tp"] >= old["tp"]


def test_the_mid_tail_level_is_the_same_in_parts_of_the_recording(still_in_h264):
    from fishtrack.behaviour.classify import classify_parts

    draw, cfg, sim, tr = still_in_h264
    tracks = tr.tracks.drop(columns=[c for c in OUTPUT_COLUMNS if c in tr.tracks.columns])
    whole = classify(tracks, cfg.behaviour, cfg.protocol)
    groups = [["A1", "A2"], ["B1", "B2"]]
    got = classify_parts(lambda: (tracks[tracks["fish"].astype(str).isin(g)] for g in groups),
                         cfg.behaviour, cfg.protocol)
    for name in ("bouts", "fish"):
        pd.testing.assert_frame_equal(getattr(got, name), getattr(whole, name), check_exact=True)
