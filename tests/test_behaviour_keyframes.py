"""Key frames of compressed video in the tracks and in the pixel-motion gate (issue 11;
docs/data_model.md ``keyframe``, docs/behaviour.md "Key frames are not pixel evidence").

The pipeline writes ``keyframe`` to ``tracks.parquet``: True on the key frames of an inter-coded
video (where PyAV's decoder says ``key_frame``), all False for intra-only codecs. The behaviour
stage's gate leaves an aligned pixel change that spans a key frame and the encoder's refresh
after it on both sides out of its evidence, so the stop-gap factor on the tail test
(``MOTION_GATE_TAIL_OVER_MIDTAIL`` 1.5) is not needed with key frames known
(``MOTION_GATE_TAIL_OVER_MIDTAIL_KEYED`` 1.0). The rule is behind ``bouts.KEY_FRAME_GATE``, off by
default (tuning seed 745 is worse with it: docs/behaviour.md); these tests switch it on.

Seed 22163 (spent): two head-embedded 21-px larvae at 824 fps, camera noise sd 11.7, H.264 crf
28, 6 s, rendered and tracked here (~5 s CPU). Larva A2 rests from 1.77 s to the end; with the
tail test at 1.0 and no key frames known, a key frame at 4.14 s plus the encoder's update after
it made a false bout there (A2 passive error 0.32).
"""

from __future__ import annotations

import av
import numpy as np
import pandas as pd
import pytest
from fixtures_behaviour import assert_parts_equal_whole

from fishtrack.behaviour import OUTPUT_COLUMNS, classify
from fishtrack.behaviour import bouts as bouts_mod
from fishtrack.pipeline import track_to_folder
from fishtrack.synth.simulate import simulate
from fishtrack.synth.stress import _stress_config, draw_recording


def _decoder_key_frames(path) -> np.ndarray:
    """Frame numbers (presentation order) PyAV's decoder marks as key frames."""
    with av.open(str(path)) as c:
        return np.array([i for i, f in enumerate(c.decode(c.streams.video[0])) if f.key_frame])


@pytest.fixture(scope="module")
def h264_22163(tmp_path_factory):
    spec = draw_recording(22163).spec.model_copy(update={"name": "k"})
    work = tmp_path_factory.mktemp("kf22163")
    res = simulate(spec, work)
    cfg = _stress_config(spec, None)
    track_to_folder(res.video_path, cfg, work / "tracked")
    tracks = pd.read_parquet(work / "tracked" / "tracks.parquet")
    return res, cfg, tracks


def test_tracks_mark_the_key_frames_where_the_decoder_does(h264_22163):
    res, _, tracks = h264_22163
    assert "keyframe" in tracks.columns and tracks["keyframe"].dtype == bool
    want = _decoder_key_frames(res.video_path)
    assert 50 < len(want) < len(np.unique(tracks["frame"])) / 10  # inter-coded: few of them
    for fish, g in tracks.groupby("fish"):
        got = np.sort(g.loc[g["keyframe"], "frame"].to_numpy())
        assert np.array_equal(got, want), fish
    # next to the other pixel columns
    cols = list(tracks.columns)
    assert cols.index("keyframe") == cols.index("tail_motion") + 1


def test_intra_only_video_has_no_key_frame_in_the_column(tmp_path):
    spec = draw_recording(22163).spec
    spec = type(spec)(**{**spec.model_dump(), "name": "m", "codec": "mjpg", "duration_s": 1.0,
                         "protocol": [{"name": "open_loop_1", "kind": "open_loop",
                                       "start_s": 0.0, "end_s": 1.0}]})
    res = simulate(spec, tmp_path)
    # the decoder calls every frame of an intra-only codec a key frame
    assert len(_decoder_key_frames(res.video_path)) == round(spec.duration_s * spec.fps)
    out = track_to_folder(res.video_path, _stress_config(spec, None), tmp_path / "tracked")
    tracks = pd.read_parquet(tmp_path / "tracked" / "tracks.parquet")
    assert len(tracks) and "keyframe" in tracks.columns and not tracks["keyframe"].any()
    assert out.bouts is not None


def _tracker_columns(tracks: pd.DataFrame) -> pd.DataFrame:
    return tracks.drop(columns=[c for c in OUTPUT_COLUMNS if c in tracks.columns])


def _passive_error(res, truth: pd.DataFrame, fish: str) -> float:
    m = res.tracks.merge(truth[["frame", "fish", "state"]].rename(columns={"state": "true"}),
                         on=["frame", "fish"])
    m = m[(m["fish"] == fish) & (m["state"] != "unknown")]
    return abs(float((m["state"] == "passive").mean()) - float((m["true"] == "passive").mean()))


def test_a_key_frame_refresh_is_not_a_bout_of_a_resting_larva(h264_22163, monkeypatch):
    monkeypatch.setattr(bouts_mod, "KEY_FRAME_GATE", True)  # the switch is off by default
    res, cfg, tracks = h264_22163
    tracks = _tracker_columns(tracks)
    assert bouts_mod.MOTION_GATE_TAIL_OVER_MIDTAIL_KEYED == 1.0  # the tail test as before
    got = classify(tracks, cfg.behaviour, cfg.protocol)
    b = got.bouts
    # A2 rests after its last true bout (ends 1.77 s): no bout after 2 s, both within 0.03
    assert not ((b["fish"] == "A2") & (b["start_s"] > 2.0)).any()
    for fish in ("A1", "A2"):
        assert _passive_error(got, res.truth, fish) <= 0.03, fish
    # every true bout still lies in a bout found
    tb = res.bouts
    for r in tb.itertuples():
        f = b[b["fish"] == r.fish]
        assert ((f["start_s"] <= r.end_s) & (f["end_s"] >= r.start_s)).any(), (r.fish, r.start_s)
    # the case is real: without the key frames, the tail test at 1.0 keeps the refresh (with
    # A2's own noise level pooled: bouts.OWN_NOISE_FACTOR, a later rule, also drops this one)
    monkeypatch.setattr(bouts_mod, "KEY_FRAME_GATE", False)
    monkeypatch.setattr(bouts_mod, "OWN_NOISE_FACTOR", float("inf"))
    monkeypatch.setattr(bouts_mod, "MOTION_GATE_TAIL_OVER_MIDTAIL", 1.0)
    before = classify(tracks, cfg.behaviour, cfg.protocol)
    late = before.bouts[(before.bouts["fish"] == "A2") & (before.bouts["start_s"] > 2.0)]
    assert len(late) == 1 and abs(float(late["start_s"].iloc[0]) - 4.14) < 0.03
    assert _passive_error(before, res.truth, "A2") > 0.3


def test_tracks_without_the_column_are_gated_as_before(h264_22163, monkeypatch):
    monkeypatch.setattr(bouts_mod, "KEY_FRAME_GATE", True)  # the switch is off by default
    _, cfg, tracks = h264_22163
    tracks = _tracker_columns(tracks)
    old = classify(tracks.drop(columns=["keyframe"]), cfg.behaviour, cfg.protocol)
    assert "keyframe" not in old.tracks.columns
    monkeypatch.setattr(bouts_mod, "KEY_FRAME_GATE", False)
    off = classify(tracks, cfg.behaviour, cfg.protocol)
    assert old.bouts.equals(off.bouts)
    assert (old.tracks["state"].to_numpy() == off.tracks["state"].to_numpy()).all()


def test_the_rule_on_parts_equals_the_whole_table(h264_22163, monkeypatch):
    monkeypatch.setattr(bouts_mod, "KEY_FRAME_GATE", True)  # the switch is off by default
    _, cfg, tracks = h264_22163
    tracks = _tracker_columns(tracks)
    assert bouts_mod.keys_known(tracks)  # the parts carry the key frames of the whole
    whole = classify(tracks, cfg.behaviour, cfg.protocol)
    assert_parts_equal_whole(tracks, whole, cfg.behaviour, cfg.protocol)
