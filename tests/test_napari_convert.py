"""napari plugin without a viewer: conversions, lazy video, reader, corrections, manifest."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fixtures_napari import N_TAIL, tiny_trial

from fishtrack import corrections as C
from fishtrack.errors import FishtrackError
from fishtrack.napari import convert as cv


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_trial(tmp_path_factory.mktemp("napari_tiny"))


# ---------------------------------------------------------------- trial folder


def test_read_trial_and_video_path(tiny):
    tr = cv.read_trial(tiny)
    assert tr.fish == ["A1", "A2"]
    assert len(tr.tracks) == 80 and len(tr.epochs) == 6 and len(tr.bouts) == 3
    assert tr.video_path is not None and tr.video_path.name == "tiny.avi"
    assert [p["name"] for p in tr.protocol] == ["baseline", "open_loop_1"]
    frames, times = tr.frame_times()
    np.testing.assert_array_equal(frames, np.arange(40))
    np.testing.assert_allclose(times, np.arange(40) / 10)
    assert tr.corrections is not None and tr.corrections.empty
    # the same trial through its tracks.parquet
    assert cv.read_trial(tiny / "tracks.parquet").folder == tiny


def test_read_trial_errors(tmp_path):
    with pytest.raises(FishtrackError, match="not a fishtrack trial folder"):
        cv.read_trial(tmp_path)


def test_find_video_after_moving(tiny, tmp_path):
    # provenance points at a path that no longer exists; the video sits next to the folder
    prov = {"input": {"name": "tiny.avi", "path": "/nonexistent/tiny.avi"}}
    assert cv.find_video(tiny, prov) == tiny.parent / "tiny.avi"
    assert cv.find_video(tmp_path, prov) is None


def test_fish_ids_natural_order():
    t = pd.DataFrame({"fish": ["A10", "A2", "B1", "A2"]})
    assert cv.fish_ids(t) == ["A2", "A10", "B1"]


# ---------------------------------------------------------------- layers


def test_tracks_layer_data(tiny):
    tr = cv.read_trial(tiny)
    data, feats = cv.tracks_layer_data(tr.tracks, fish=tr.fish)
    det = tr.tracks[tr.tracks["detected"]]
    assert data.shape == (len(det), 4) == (78, 4)  # A2 undetected in frames 5 and 6
    assert list(np.unique(data[:, 0])) == [0, 1]
    # sorted by track then frame; values are (track, frame, y, x)
    assert np.all(np.diff(data[:, 0] * 1000 + data[:, 1]) > 0)
    a2 = data[data[:, 0] == 1]
    assert not np.isin([5, 6], a2[:, 1]).any()
    row = tr.tracks[(tr.tracks.fish == "A1") & (tr.tracks.frame == 7)].iloc[0]
    got = data[(data[:, 0] == 0) & (data[:, 1] == 7)][0]
    np.testing.assert_allclose(got[2:], [row["y"], row["x"]])
    # state colours: A1 frame 15 is passive, A2 frame 22 unknown
    code = dict(zip(map(tuple, data[:, :2].astype(int)), feats["state_code"], strict=True))
    assert cv.STATE_NAMES[code[(0, 15)]] == "passive"
    assert cv.STATE_NAMES[code[(0, 3)]] == "active"
    assert cv.STATE_NAMES[code[(1, 22)]] == "unknown"
    np.testing.assert_allclose(feats["state"], (feats["state_code"] + 0.5) / 4)
    # long recordings: every k-th frame only, under the vertex budget
    thin, tf = cv.tracks_layer_data(tr.tracks, fish=tr.fish, max_vertices=30)
    assert len(thin) <= 30 and set(np.unique(thin[:, 1] % 3)) == {0} and len(tf) == len(thin)


def test_state_colour_values_hit_their_bins():
    vals = cv.state_colour_values(np.arange(4))
    bins = np.searchsorted(np.linspace(0, 1, 5), vals, side="right") - 1
    np.testing.assert_array_equal(bins, np.arange(4))
    np.testing.assert_array_equal(cv.state_codes(["passive", None, "excluded", "weird"]), [1, 2, 3, 2])


def test_head_and_tail_points(tiny):
    tr = cv.read_trial(tiny)
    hd, hf = cv.head_points_data(tr.tracks)
    assert hd.shape == (78, 3)
    assert set(hf["state"].cat.categories) == set(cv.STATE_NAMES)
    pd_, pf = cv.tail_points_data(tr.tracks)
    assert pd_.shape == (78 * (N_TAIL - 1), 3)  # point 0 (the head) is the head layer
    # tail tip of A1 at frame 0 is BODY_PX behind the head (straight fish, heading 0 -> tail to -x)
    tip = pd_[(pf["fish"] == "A1").to_numpy() & (pf["point"] == N_TAIL - 1).to_numpy() & (pd_[:, 0] == 0)]
    np.testing.assert_allclose(tip[0, 1:], [24.0, 24.0 - 10.0], atol=1e-9)
    # thinning for long videos keeps the tip and stays under the budget
    pd2, pf2 = cv.tail_points_data(tr.tracks, max_points=2 * 78)
    assert len(pd2) <= 2 * 78 and (pf2["point"] == N_TAIL - 1).sum() == 78


def test_arena_shapes():
    data, types, names = cv.arena_shapes_data([
        {"name": "A1", "shape": "circle", "cx": 10.0, "cy": 20.0, "radius": 5.0, "bbox": [5, 15, 16, 26]},
        {"name": "B1", "shape": "rect", "cx": 0, "cy": 0, "radius": float("nan"), "bbox": [0, 30, 40, 50]},
    ])
    assert types == ["ellipse", "rectangle"] and names == ["A1", "B1"]
    np.testing.assert_allclose(data[0].min(0), [15, 5])  # (y, x) of the circle's bounding box
    np.testing.assert_allclose(data[0].max(0), [25, 15])
    np.testing.assert_allclose(data[1].min(0), [30, 0])
    np.testing.assert_allclose(data[1].max(0), [49, 39])


# ---------------------------------------------------------------- lazy video


class _CountingSource:
    def __init__(self, src):
        self.src, self.reads = src, []

    def __len__(self):
        return len(self.src)

    def read(self, i):
        self.reads.append((i, i + 1))
        return self.src.read(i)

    def read_range(self, a, b):
        self.reads.append((a, b))
        return self.src.read_range(a, b)


def test_lazy_video_decodes_on_demand(tiny):
    from fishtrack.io.video import open_video

    src = _CountingSource(open_video(tiny.parent / "tiny.avi"))
    v = cv.LazyVideo(src, read_ahead=4)
    assert v.shape == (40, 48, 96) and v.dtype == np.uint8 and v.ndim == 3
    assert src.reads == [(0, 1)]  # only the first frame to learn the shape
    assert v[17][0, 0] == 17
    assert src.reads[-1] == (17, 21)
    n = len(src.reads)
    assert v[18, 0, 0] == 18 and v[20][0, 0] == 20 and len(src.reads) == n  # read ahead, cached
    assert v[-1][0, 0] == 39
    np.testing.assert_array_equal(v[30:33, 0, 0], [30, 31, 32])
    np.testing.assert_array_equal(v[..., 0, 0][:3], [0, 1, 2])
    assert np.asarray(v[5]).shape == (48, 96)
    with pytest.raises(IndexError):
        v[40]
    small = cv.LazyVideo(src)
    small._max_bytes = 48 * 96 * 3
    with pytest.raises(MemoryError):
        small[0:4]


def test_open_video_array_errors(tmp_path):
    bad = tmp_path / "x.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(FishtrackError, match="x.mp4"):
        cv.open_video_array(bad)


# ---------------------------------------------------------------- per-fish series


def test_fish_epochs_bouts_series(tiny):
    tr = cv.read_trial(tiny)
    ep = cv.fish_epochs(tr, "A1")
    assert list(ep["state"]) == ["active", "passive", "active"]
    assert not ep["corrected"].any()
    assert cv.epoch_at(ep, 1.5) == 1 and cv.epoch_at(ep, 0.999) == 0 and cv.epoch_at(ep, 9.0) is None
    assert len(cv.fish_bouts(tr, "A1")) == 3 and cv.fish_bouts(tr, "A2").empty
    t, v = cv.fish_series(tr, "A2")
    assert np.isnan(v[[5, 6]]).all() and np.isfinite(np.delete(v, [5, 6])).all()
    ph = cv.protocol_spans(tr.protocol)
    assert list(ph["colour"]) == [cv.PHASE_COLOURS["closed_loop"], cv.PHASE_COLOURS["open_loop"]]


def test_fish_epochs_without_epochs_csv(tiny):
    tr = cv.read_trial(tiny)
    tr.epochs = pd.DataFrame()
    ep = cv.fish_epochs(tr, "A2")
    assert list(ep["state"]) == ["passive", "unknown", "active"]
    np.testing.assert_allclose(ep["start_s"], [0.0, 2.0, 2.5])
    np.testing.assert_allclose(ep["end_s"], [2.0, 2.5, 4.0])


def test_trace_envelope_matches_brute_force():
    rng = np.random.default_rng(1)
    t = np.sort(rng.uniform(0, 10, 5000))
    v = rng.normal(size=t.size)
    v[100:120] = np.nan
    c, lo, hi = cv.trace_envelope(t, v, 2.0, 7.0, 50)
    assert c.size == 50
    for k in (0, 17, 49):
        a, b = 2.0 + k * 0.1, 2.0 + (k + 1) * 0.1
        m = (t >= a) & (t < b) & np.isfinite(v)
        assert lo[k] == pytest.approx(v[m].min()) and hi[k] == pytest.approx(v[m].max())
    c2, lo2, hi2 = cv.trace_envelope(t[:10], v[:10], 0, 10, 50)  # sparse: samples as they are
    np.testing.assert_array_equal(lo2, hi2)


def test_frame_time_mapping():
    frames = np.array([0, 1, 2, 4])
    times = np.array([0.0, 0.1, 0.2, 0.4])
    assert cv.frame_at_time(frames, times, 0.26) == 2 and cv.frame_at_time(frames, times, 0.34) == 4
    assert cv.time_at_frame(frames, times, 3) == pytest.approx(0.3)
    assert cv.time_at_frame(frames, times, 6) == pytest.approx(0.6)
    assert cv.time_at_frame(np.array([], int), np.array([]), 5, fps=10) == pytest.approx(0.5)


# ---------------------------------------------------------------- corrections (Qt-free)


def test_corrections_roundtrip_and_undo(tmp_path):
    c = C.load_corrections(tmp_path)
    assert list(c.columns) == list(C.CORRECTION_COLUMNS) and c.empty
    c = C.add_correction(c, fish="A1", start_s=1.0, end_s=3.0, state="active", original_state="passive")
    c = C.add_correction(c, fish="A2", start_s=2.0, end_s=2.5, state="exclude", original_state="unknown")
    # relabelling the same epoch again replaces its row
    c = C.add_correction(c, fish="A1", start_s=1.0, end_s=3.0, state="exclude", original_state="passive")
    assert len(c) == 2 and c.loc[c.fish == "A1", "state"].item() == "exclude"
    path = C.save_corrections(c, tmp_path)
    assert path == tmp_path / "corrections.csv"
    back = C.load_corrections(tmp_path)
    pd.testing.assert_frame_equal(back, c)
    assert not list(tmp_path.glob(".*part"))  # atomic write left no temporary file
    # setting it back to what the classifier said removes the correction
    c2 = C.add_correction(back, fish="A1", start_s=1.0, end_s=3.0, state="passive", original_state="passive")
    assert list(c2["fish"]) == ["A2"]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("fish,start_s,end_s,state,original_state,created_utc\nA1,1,2,asleep,active,x\n", "asleep"),
        ("fish,start_s,end_s,state,original_state,created_utc\nA1,3,2,active,passive,x\n", "end_s"),
        ("fish,start_s,state\nA1,1,active\n", "missing column"),
        ("fish,start_s,end_s,state,original_state,created_utc\nA1,abc,2,active,passive,x\n", "not a number"),
    ],
)
def test_bad_corrections_file(tmp_path, text, match):
    (tmp_path / "corrections.csv").write_text(text)
    with pytest.raises(FishtrackError, match=match) as err:
        C.load_corrections(tmp_path)
    assert "corrections.csv" in str(err.value)


def test_apply_corrections_to_tracks(tiny):
    tr = cv.read_trial(tiny)
    c = C.add_correction(C.empty_corrections(), fish="A1", start_s=1.0, end_s=3.0, state="active",
                         original_state="passive")
    c = C.add_correction(c, fish="A2", start_s=2.0, end_s=2.5, state="exclude", original_state="unknown")
    out = C.apply_corrections(tr.tracks, c)
    assert len(out) == len(tr.tracks) and list(out["frame"]) == list(tr.tracks["frame"])
    a1 = out[out.fish == "A1"].set_index("frame")
    assert (a1.loc[10:29, "state"] == "active").all() and a1.loc[10:29, "corrected"].all()
    assert not a1.loc[[9, 30], "corrected"].any()
    a2 = out[out.fish == "A2"].set_index("frame")
    assert (a2.loc[20:24, "state"] == C.EXCLUDED).all()
    assert (a2.loc[25:, "state"] == "active").all() and (a2.loc[:19, "state"] == "passive").all()
    assert out["corrected"].sum() == 25
    assert (tr.tracks.loc[tr.tracks.fish == "A1", "state"] == "passive").sum() == 20  # input unchanged


def test_apply_corrections_to_epochs_merges(tiny):
    tr = cv.read_trial(tiny)
    c = C.add_correction(C.empty_corrections(), fish="A1", start_s=1.0, end_s=3.0, state="active",
                         original_state="passive")
    merged = C.apply_corrections_to_epochs(tr.epochs, c)
    a1 = merged[merged.fish == "A1"]
    assert len(a1) == 1  # active + (passive -> active) + active = one active epoch
    r = a1.iloc[0]
    assert r["state"] == "active" and r["start_s"] == 0 and r["end_s"] == pytest.approx(4.0)
    assert r["duration_s"] == pytest.approx(4.0) and r["end_frame"] == 39 and r["corrected"]
    assert r["censored"]  # its parts touched the ends of the record
    assert len(merged[merged.fish == "A2"]) == 3
    unmerged = C.apply_corrections_to_epochs(tr.epochs, c, merge=False)
    assert len(unmerged) == 6 and list(unmerged["original_state"]) == list(tr.epochs["state"])
    # a correction covering less than half of an epoch leaves it alone
    small = C.add_correction(C.empty_corrections(), fish="A1", start_s=1.0, end_s=1.5, state="exclude",
                             original_state="passive")
    assert list(C.apply_corrections_to_epochs(tr.epochs, small)["state"]) == list(tr.epochs["state"])


# ---------------------------------------------------------------- reader and manifest


def test_get_reader_dispatch(tiny, tmp_path):
    from fishtrack.napari._reader import napari_get_reader, read_trial_layers, read_video_layers

    assert napari_get_reader(str(tiny)) is read_trial_layers
    assert napari_get_reader([str(tiny / "tracks.parquet")]) is read_trial_layers
    assert napari_get_reader(str(tiny.parent / "tiny.avi")) is read_video_layers
    assert napari_get_reader(str(tmp_path)) is None
    (tmp_path / "other.parquet").write_bytes(b"")
    assert napari_get_reader(str(tmp_path / "other.parquet")) is None
    assert napari_get_reader([str(tiny), str(tiny)]) is None


def test_trial_layers(tiny):
    pytest.importorskip("napari")
    from fishtrack.napari._reader import read_trial_layers, read_video_layers, state_colormap

    layers = read_trial_layers(str(tiny))
    kinds = [(k, kw["name"]) for _, kw, k in layers]
    assert kinds == [("image", "video (tiny.avi)"), ("shapes", "arenas"), ("tracks", "tracks"),
                     ("points", "heads"), ("points", "tails")]
    video = layers[0][0]
    assert isinstance(video, cv.LazyVideo) and video.shape == (40, 48, 96)
    assert all(kw["metadata"]["fishtrack_folder"] == str(tiny) for _, kw, _ in layers)
    assert layers[1][1]["features"]["name"] == ["A1", "A2"]
    # the state colormap maps each state's colour value to its colour
    cmap = state_colormap()
    from napari.utils.colormaps.standardize_color import transform_color

    got = cmap.map(cv.state_colour_values(np.arange(4)))
    want = transform_color([cv.STATE_COLOURS[s] for s in cv.STATE_NAMES])
    np.testing.assert_allclose(got, want, atol=1e-6)
    (img, kw, kind), = read_video_layers(str(tiny.parent / "tiny.avi"))
    assert kind == "image" and img.shape == (40, 48, 96)


def test_trial_layers_without_video(tiny, tmp_path):
    import json
    import shutil

    pytest.importorskip("napari")
    from fishtrack.napari._reader import read_trial_layers

    moved = tmp_path / "elsewhere" / "trial"
    shutil.copytree(tiny, moved)
    prov = json.loads((moved / "provenance.json").read_text())
    prov["input"]["path"] = "/nonexistent/tiny.avi"  # the video stayed behind
    (moved / "provenance.json").write_text(json.dumps(prov))
    with pytest.warns(UserWarning, match="not found"):
        layers = read_trial_layers(str(moved))
    assert [k for _, _, k in layers] == ["shapes", "tracks", "points", "points"]


def test_manifest_registered():
    npe2 = pytest.importorskip("npe2")
    pytest.importorskip("napari")
    pm = npe2.PluginManager.instance()
    pm.discover()
    mf = pm.get_manifest("fishtrack")
    assert mf.contributions.readers[0].accepts_directories
    assert {w.display_name for w in mf.contributions.widgets} == {"Trial (ethogram and corrections)"}
    assert {s.key for s in mf.contributions.sample_data} == {"plate24", "embedded"}
    for cmd in mf.contributions.commands:
        assert callable(_resolve(cmd.python_name)), cmd.python_name


def _resolve(python_name: str):
    import importlib

    mod, _, attr = python_name.partition(":")
    return getattr(importlib.import_module(mod), attr)
