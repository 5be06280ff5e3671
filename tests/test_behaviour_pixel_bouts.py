"""Bouts from the tail's pixels where the traced tail is too noisy (issue 11;
``fishtrack.behaviour.pixel_bouts``; docs/behaviour.md, "Bouts from the tail's pixels").

``tests/data/stress364_tracks.parquet``: the tracker's output (``fishtrack track``, kept by the
stress suite) of tuning seed 364: two 48-px larvae in wells at 220 fps, tail 16 grey levels
over the background in camera noise sd 11.4, H.264 CRF 21, 6 s, 14 true bouts; with the
simulator's truth per frame (``true_in_bout``, ``true_passive``). The traced tail angle jitters
by 0.10-0.13 rad per frame: the kinematic detection found 4 candidate bouts, the gate kept none,
and both larvae were scored 100 % passive against 81 % and 84 % true (kappa* 0). Stored
compactly: positions in 1/32 px (the midline points as steps from the point before, the first
from the head), angles in 1e-4 rad, pixel motions in 0.01 grey levels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixtures_behaviour import assert_parts_equal_whole, compact_tracks

from fishtrack.behaviour import classify
from fishtrack.behaviour import pixel_bouts as pixel_mod
from fishtrack.synth.stress import _stress_config, draw_recording

DATA = Path(__file__).parent / "data" / "stress364_tracks.parquet"
FPS = 220.0


def _seed364() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The tracks (as the tracker wrote them) and the truth per row."""
    return compact_tracks(DATA, FPS)


def _cfg():
    draw = draw_recording(364)
    return _stress_config(draw.spec, None)


def _passive_errors(res, truth: pd.DataFrame) -> dict[str, float]:
    state = res.tracks["state"].to_numpy()
    out = {}
    for fish in ("A1", "A2"):
        m = (truth["arena"] == fish).to_numpy() & (state != "unknown")
        out[fish] = abs(float((state[m] == "passive").mean())
                        - float(truth["true_passive"].to_numpy(bool)[m].mean()))
    return out


def _true_onsets(tracks: pd.DataFrame, truth: pd.DataFrame) -> dict[str, np.ndarray]:
    out = {}
    for fish in ("A1", "A2"):
        m = (truth["arena"] == fish).to_numpy()
        ib = truth["true_in_bout"].to_numpy(bool)[m]
        t = tracks["time_s"].to_numpy(float)[m]
        out[fish] = t[np.flatnonzero(np.diff(np.r_[0, ib.astype(int)]) == 1)]
    return out


def test_bouts_the_noisy_trace_misses_are_found_in_the_tail_pixels(monkeypatch):
    tracks, truth = _seed364()
    cfg = _cfg()
    res = classify(tracks, cfg.behaviour, cfg.protocol)
    err = _passive_errors(res, truth)
    assert max(err.values()) <= 0.03, err
    b = res.bouts
    px = b[b["bout_evidence"] == "tail_motion"]
    assert len(px) >= 6 and set(px["arena"]) == {"A1", "A2"}
    # every bout of the pixels starts within 50 ms of a true onset (the simulator's truth)
    onsets = _true_onsets(tracks, truth)
    for r in px.itertuples():
        assert np.min(np.abs(onsets[r.arena] - r.start_s)) <= 0.05, r
    # the level: one per recording, in the fish table and provenance's noise summary
    level = res.noise["tail_motion_bout_grey"]
    assert level is not None and 3.0 < level < 8.0
    assert np.allclose(res.fish["tail_motion_bout_grey"], level)
    # the rule before: no bout at all, both larvae scored 100 % passive (81 % and 84 % true)
    monkeypatch.setattr(pixel_mod, "PIXEL_BOUTS", False)
    before = classify(tracks, cfg.behaviour, cfg.protocol)
    assert min(_passive_errors(before, truth).values()) > 0.1
    assert (before.bouts["bout_evidence"] != "tail_motion").all()
    assert before.noise["tail_motion_bout_grey"] is None


def test_a_clean_trace_is_scored_as_before(monkeypatch):
    # the same recording with the trace's noise under the decision's level: nothing added
    tracks, _ = _seed364()
    cfg = _cfg()
    monkeypatch.setattr(pixel_mod, "NOISY_TRACE_RAD", 1.0)
    res = classify(tracks, cfg.behaviour, cfg.protocol)
    monkeypatch.setattr(pixel_mod, "PIXEL_BOUTS", False)
    before = classify(tracks, cfg.behaviour, cfg.protocol)
    pd.testing.assert_frame_equal(res.bouts, before.bouts)
    assert (res.tracks["state"] == before.tracks["state"]).all()


def test_bouts_of_the_pixels_in_parts_equal_the_whole_table():
    tracks, _ = _seed364()
    cfg = _cfg()
    whole = classify(tracks, cfg.behaviour, cfg.protocol)
    assert (whole.bouts["bout_evidence"] == "tail_motion").any()
    assert_parts_equal_whole(tracks, whole, cfg.behaviour, cfg.protocol)


def _still_and_swimming(fps: float = 200.0, duration_s: float = 10.0,
                        bursts: bool = True) -> pd.DataFrame:
    """Two 40-px larvae whose traced tail angle is white noise of 0.1 rad per frame (a trace
    too noisy to show beats) and whose ``tail_motion`` is camera noise renewed in every frame
    (3 +/- 1 grey levels): A1 bouts for 0.15 s every 2 s (its tail motion 2.5 grey levels
    higher), A2 never moves but, with ``bursts``, a compressed video refreshes its pixels for
    3 frames every 1.5 s (tail motion 8 grey levels higher)."""
    rng = np.random.default_rng(7)
    n = int(round(duration_s * fps))
    t = np.arange(n) / fps
    rows = []
    for fish in ("A1", "A2"):
        tm = rng.normal(3.0, 1.0, n)
        if fish == "A1":
            tm[(t % 2.0 >= 1.0) & (t % 2.0 < 1.15)] += 2.5
        elif bursts:
            tm[np.round(t * fps).astype(int) % int(1.5 * fps) < 3] += 8.0
        d = pd.DataFrame({"frame": np.arange(n), "time_s": t, "arena": fish, "fish": fish,
                          "x": 50.0, "y": 50.0, "heading": 0.0, "detected": True,
                          "tail_angle": rng.normal(0.0, 0.1, n),
                          "motion_energy": rng.normal(5.0, 1.0, n), "tail_motion": tm})
        for i in range(10):
            d[f"tail_x_{i}"] = 50.0 - 40.0 * i / 9
            d[f"tail_y_{i}"] = 50.0
        rows.append(d)
    return pd.concat(rows, ignore_index=True).sort_values(["frame", "arena"], kind="stable")


def test_sustained_pixel_motion_is_a_bout_a_codec_burst_is_not(monkeypatch):
    res = classify(_still_and_swimming())
    b = res.bouts
    assert (b["arena"] == "A2").sum() == 0  # the still larva: 3-frame refreshes, no bout
    assert (res.tracks.loc[res.tracks["arena"] == "A2", "state"] == "passive").all()
    a1 = b[b["arena"] == "A1"]
    assert len(a1) == 5 and (a1["bout_evidence"] == "tail_motion").all()
    assert np.allclose(np.sort(a1["start_s"]) % 2.0, 1.0, atol=0.04)
    assert np.allclose(a1["duration_s"], 0.15, atol=0.05)
    monkeypatch.setattr(pixel_mod, "PIXEL_BOUTS", False)
    assert (classify(_still_and_swimming()).bouts["arena"] == "A1").sum() == 0


@pytest.mark.parametrize("held", [0.5, 0.9])
def test_noise_that_is_held_and_refreshed_gives_no_level(held):
    # a codec that holds the fish's pixels: the window means are exactly 0 most of the time,
    # their lower side says nothing of the bursts, and no bout is taken from the pixels
    rng = np.random.default_rng(3)
    v = np.where(rng.random(4000) < held, 0.0, rng.exponential(1.0, 4000))
    assert pixel_mod._fish_level(np.convolve(v, np.ones(16) / 16, "same"))[0] == np.inf
    # camera noise renewed in every frame: median + SPREAD x (median - 5th percentile)
    w = np.convolve(rng.normal(3.0, 1.0, 4000), np.ones(16) / 16, "same")[20:-20]
    med, lo = np.quantile(w, [0.5, pixel_mod.LOW_QUANTILE])
    level, median = pixel_mod._fish_level(w)
    assert level == pytest.approx(med + pixel_mod.SPREAD * (med - lo))
    assert median == pytest.approx(med)
