"""The pixel-motion gate asks whether the middle of the traced tail moves (issue 11, from video;
docs/behaviour.md, "Pixel-motion gate", "The middle of the tail").

On tracks built to show it (two larvae, a still one whose traced tip jitters while its pixels
are refreshed) and on a tuning recording:

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


def _two_larvae(fps: float = 200.0, duration_s: float = 12.0) -> pd.DataFrame:
    """Tracks as fishtrack writes them (motion energy, midline points, segment angles) of two
    25-px larvae at ``fps``: A1 swims (0.2 s bouts of 25 Hz, 0.4 rad at the tip, bending the
    whole tail: segment k of 9 by k/9 of it) every 2 s; A2 never moves, but at 6.0-6.09 s its
    traced tip (segments 7-9 and the tail angle) jitters by +/- 0.15 rad in steps of 3 frames
    while a refresh of the compressed video changes its pixels (motion energy 3 against ~1)."""
    rng = np.random.default_rng(5)
    n = int(round(duration_s * fps))
    t = np.arange(n) / fps
    rows = []
    for fish in ("A1", "A2"):
        tip = np.zeros(n)
        bend = np.zeros(n)  # the part of the angle that bends the whole tail
        motion = rng.normal(1.0, 0.1, n)
        if fish == "A1":
            on = (t % 2.0 >= 1.0) & (t % 2.0 < 1.2)
            bend[on] = 0.4 * np.sin(2 * np.pi * 25 * (t[on] % 2.0 - 1.0))
            motion[on] += 4.0
        else:
            burst = (t >= 6.0) & (t < 6.09)
            k = np.arange(burst.sum())
            tip[burst] = 0.15 * np.where((k // 3) % 2 == 0, 1.0, -1.0)
            motion[burst] += 2.0
        seg = {k: bend * k / 9 + (tip if k >= 7 else 0.0) + rng.normal(0, 0.01, n)
               for k in range(1, 10)}
        d = pd.DataFrame({"frame": np.arange(n), "time_s": t, "arena": fish, "fish": fish,
                          "x": 50.0, "y": 50.0, "heading": 0.0, "detected": True,
                          "tail_angle": bend + 0.5 * tip + rng.normal(0, 0.01, n),
                          "motion_energy": motion})
        for i in range(10):
            d[f"tail_x_{i}"] = 50.0 - 25.0 * i / 9
            d[f"tail_y_{i}"] = 50.0
        for k in range(1, 10):
            d[f"seg_angle_{k}"] = seg[k]
        rows.append(d)
    return pd.concat(rows, ignore_index=True).sort_values(["frame", "arena"], kind="stable")


def test_tip_jitter_with_changed_pixels_is_dropped_beats_of_the_whole_tail_kept(monkeypatch):
    tracks = _two_larvae()
    res = classify(tracks)
    b = res.bouts
    assert (b["fish"] == "A2").sum() == 0 and (res.tracks.loc[res.tracks["fish"] == "A2",
                                                               "state"] == "passive").all()
    a1 = b[b["fish"] == "A1"]
    assert len(a1) == 6 and np.allclose(np.sort(a1["start_s"]) % 2.0, 1.0, atol=0.03)
    level = res.noise["motion_gate_midtail_rad"]
    assert 0.01 < level < 0.05  # ~2.6 sigmas of the 0.01 rad segment noise (99th percentile)
    # the rule before: the whole larva's pixels changed, so the jitter was a bout
    monkeypatch.setattr(bouts_mod, "MIDTAIL_GATE", False)
    old = classify(tracks)
    assert (old.bouts["fish"] == "A2").sum() == 1
    assert (old.bouts["fish"] == "A1").sum() == 6


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
    # the mid-tail level: one per recording, in provenance.json and every row of the fish table
    level = tr.provenance["behaviour_noise"]["motion_gate_midtail_rad"]
    fish = pd.DataFrame(tr.provenance["behaviour_noise"]["fish"])
    assert level is not None and 0.02 < level < 0.5
    assert np.allclose(fish["motion_gate_midtail_rad"], level, rtol=1e-6)
    from fishtrack.behaviour.qc import vigour_summary
    from fishtrack.report.figures import behaviour_qc_figure

    summary = vigour_summary(tr.tracks, tr.provenance["behaviour_noise"]["fish"])
    title = behaviour_qc_figure(summary).axes[0].get_title(loc="left")
    assert f"mid-tail {level:.3g} rad" in title
    # the rule before: the whole larva's pixels kept B2's jitter at 6.26 s (when this test was
    # written; the tracker's output of this video varies slightly between runs under load, so
    # only what holds either way is checked: every bout the rule before gives a still larva has
    # its mid-tail within the level, and the active larvae keep the true bouts they had)
    tracks = tr.tracks.drop(columns=[c for c in OUTPUT_COLUMNS if c in tr.tracks.columns])
    monkeypatch.setattr(bouts_mod, "MIDTAIL_GATE", False)
    old_res = classify(tracks, cfg.behaviour, cfg.protocol)
    old = score_stress(draw, sim, old_res)
    t = tr.tracks.assign(dev=np.abs(tr.tracks["seg_angle_6"] - tr.tracks.groupby("fish")[
        "seg_angle_6"].transform(lambda v: v.rolling(65, center=True, min_periods=1).mean())))
    for bout in old_res.bouts[old_res.bouts["fish"].astype(str).isin(["A1", "B2"])].itertuples():
        sel = (t["fish"].astype(str) == str(bout.fish)) & t["frame"].between(
            bout.start_frame, bout.end_frame)
        assert t.loc[sel, "dev"].max() <= 1.1 * level
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
