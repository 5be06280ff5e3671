"""napari plugin with a real viewer: layers, dock widget, time cursor, clicks, corrections.

Runs on a simulated assay tracked end to end (``fishtrack.pipeline.track_to_folder``) and
checks against the simulator's truth. Needs a display with OpenGL: run under a virtual X
server, e.g. ``xvfb-run -a pytest tests/test_napari_widget.py``. Skips cleanly without one.
The screenshot test writes into a temporary folder; the figure in docs/napari.md comes from
``docs/make_napari_figure.py``.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pandas as pd
import pytest

if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
    pytest.skip("no display; run under xvfb-run for the napari widget tests", allow_module_level=True)
napari = pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from fixtures_napari import tracked_simulation  # noqa: E402

from fishtrack import corrections as C  # noqa: E402
from fishtrack.napari import convert as cv  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:System theme detection:UserWarning")


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """A simulated 2x2-well assay tracked end to end: ``(trial_folder, truth)``."""
    return tracked_simulation(tmp_path_factory.mktemp("napari_widget"))


def _open(make_napari_viewer, folder):
    from fishtrack.napari.viewer import open_trial

    viewer = make_napari_viewer(show=True)
    widget = open_trial(viewer, folder)
    return viewer, widget


def _nearest_frame(frames, times, t):
    return int(frames[np.argmin(np.abs(times - t))])


def test_layers_follow_slider_and_match_truth(make_napari_viewer, sim, qtbot):
    folder, truth = sim
    viewer, w = _open(make_napari_viewer, folder)
    names = [layer.name for layer in viewer.layers]
    assert names == ["video (plate.mp4)", "arenas", "tracks", "heads", "tails"]
    assert viewer.dims.ndim == 3
    tr = w.trial
    assert tr.fish == ["A1", "A2", "B1", "B2"] and w.fish == "A1" and w.fish_combo.count() == 4
    frames, times = tr.frame_times()
    video = viewer.layers[0].data
    assert isinstance(video, cv.LazyVideo) and video.shape[0] == len(frames) == truth["frame"].nunique()
    heads = viewer.layers["heads"]
    for k in (0, 7, len(frames) // 3, len(frames) - 1):
        # the cursor follows the time slider
        viewer.dims.set_current_step(0, int(frames[k]))
        assert w.strip.cursor_time == pytest.approx(times[k])
        x = w.strip.cursor_x()
        assert x == pytest.approx(w.strip.x_at_time(times[k]))
        assert w.strip.time_at_x(x) == pytest.approx(times[k], abs=1e-6)
        assert w.trace.centre == pytest.approx(times[k])
        # heads are (frame, y, x) at the true head positions, on the dark fish of this frame
        sel = heads.data[:, 0] == frames[k]
        d, fish = heads.data[sel], heads.features["fish"].to_numpy()[sel]
        t = truth[truth["frame"] == frames[k]].set_index("fish").loc[fish]
        err = np.hypot(d[:, 1] - t["y"].to_numpy(), d[:, 2] - t["x"].to_numpy())
        assert len(d) == 4 and np.all(err < 3.0), err
        img = np.asarray(video[int(frames[k])]).astype(float)
        yx = np.round(d[:, 1:]).astype(int)
        assert np.all(img[yx[:, 0], yx[:, 1]] < np.median(img) - 20)  # the eyes are dark
    assert list(viewer.layers["arenas"].features["name"]) == ["A1", "A2", "B1", "B2"]
    # the tracks layer colours follow the per-frame state of tracks.parquet
    tracks = viewer.layers["tracks"]
    tt = tr.tracks.set_index(["fish", "frame"])
    ids = np.asarray(tr.fish)[tracks.data[:, 0].astype(int)]
    keys = list(zip(ids, tracks.data[:, 1].astype(int), strict=True))
    np.testing.assert_array_equal(tracks.features["state_code"].to_numpy(), cv.state_codes(tt.loc[keys, "state"]))
    # the widget's epochs are the fish's rows of epochs.csv; strip states agree with the truth
    ep = w.epochs
    assert len(ep) == (tr.epochs["fish"] == "A1").sum()
    tA = truth[truth["fish"] == "A1"]
    mid = (ep["start_s"] + ep["end_s"]) / 2
    long = (ep["end_s"] - ep["start_s"]) > 2.0
    for m, st in zip(mid[long], ep["state"][long], strict=True):
        assert tA.iloc[np.argmin(np.abs(tA["time_s"] - m))]["state"] == st


def test_click_relabel_and_screenshot(make_napari_viewer, sim, qtbot, tmp_path):
    from qtpy.QtCore import QPoint, Qt
    from qtpy.QtTest import QTest

    folder = tmp_path / "trial"
    shutil.copytree(sim[0], folder)
    viewer, w = _open(make_napari_viewer, folder)
    viewer.window.resize(1400, 820)
    qtbot.wait(10)
    frames, times = w.trial.frame_times()
    # the fish with the most passive epochs
    fish = w.trial.epochs.query("state == 'passive'")["fish"].value_counts().index[0]
    w.set_fish(fish)
    assert w.fish_combo.currentText() == fish and w.fish == fish
    ep = w.epochs
    passive = np.flatnonzero(ep["state"].to_numpy() == "passive")
    assert passive.size >= 2

    # click on the strip (by x coordinate) in the middle of the first passive epoch
    i = int(passive[0])
    x = float(w.strip.x_at_time((ep.iloc[i]["start_s"] + ep.iloc[i]["end_s"]) / 2))
    frame = w.on_strip_click(x)
    want = _nearest_frame(frames, times, w.strip.time_at_x(x))
    assert frame == want and viewer.dims.current_step[0] == want
    assert w.strip.selected == i and w.selected_epoch["start_s"] == ep.iloc[i]["start_s"]
    # a real mouse click on the strip selects the last epoch and moves the slider there
    j = len(ep) - 1
    xi = int(round(float(w.strip.x_at_time((ep.iloc[j]["start_s"] + ep.iloc[j]["end_s"]) / 2))))
    QTest.mouseClick(w.strip, Qt.LeftButton, Qt.NoModifier, QPoint(xi, 30))
    want = _nearest_frame(frames, times, w.strip.time_at_x(xi))
    assert viewer.dims.current_step[0] == want and w.strip.selected == j
    assert w.strip.cursor_time == pytest.approx(times[frames == want][0])
    assert w.strip.cursor_x() == pytest.approx(w.strip.x_at_time(times[frames == want][0]))

    # relabel the first passive epoch as active: corrections.csv holds exactly that row
    w.select_epoch(i)
    assert viewer.dims.current_step[0] == int(ep.iloc[i]["start_frame"])
    w.relabel_buttons["active"].click()
    saved = pd.read_csv(folder / "corrections.csv")
    assert list(saved.columns) == list(C.CORRECTION_COLUMNS) and len(saved) == 1
    r = saved.iloc[0]
    assert str(r["fish"]) == fish and r["state"] == "active" and r["original_state"] == "passive"
    assert r["start_s"] == pytest.approx(ep.iloc[i]["start_s"]) and r["end_s"] == pytest.approx(ep.iloc[i]["end_s"])
    assert pd.Timestamp(r["created_utc"]).year >= 2024
    assert w.epochs.iloc[i]["state"] == "active" and w.epochs.iloc[i]["corrected"]
    # the tracks layer shows the corrected state for those frames, and only there
    tracks = viewer.layers["tracks"]
    d = tracks.data
    fi = w.trial.fish.index(fish)
    inside = (d[:, 0] == fi) & (d[:, 1] >= ep.iloc[i]["start_frame"]) & (d[:, 1] <= ep.iloc[i]["end_frame"])
    codes = tracks.features["state_code"].to_numpy()
    assert inside.any() and (codes[inside] == cv.STATE_NAMES.index("active")).all()
    assert (codes[(d[:, 0] != fi)] != cv.STATE_NAMES.index("excluded")).all()
    # exclude a second epoch and revert the first: the file follows, and a reload agrees
    k = int(passive[1])
    w.select_epoch(k)
    w.relabel("exclude")
    assert w.epochs.iloc[k]["state"] == C.EXCLUDED
    w.select_epoch(i)
    w.relabel("revert")
    saved = C.load_corrections(folder)
    assert len(saved) == 1 and saved.iloc[0]["state"] == "exclude"
    assert saved.iloc[0]["start_s"] == pytest.approx(ep.iloc[k]["start_s"])
    assert len(cv.read_trial(folder).corrections) == 1
    # the corrected epoch reaches the downstream tables through fishtrack.corrections
    fixed = C.apply_corrections_to_epochs(cv.read_trial(folder).epochs, saved)
    assert (fixed["state"] == C.EXCLUDED).sum() == 1

    # a screenshot of the whole window, with the excluded epoch selected (into tmp_path: the
    # docs figure is drawn by docs/make_napari_figure.py)
    w.select_epoch(k)
    viewer.dims.set_current_step(0, int(ep.iloc[k]["start_frame"]) + 10)
    qtbot.wait(50)
    shot = tmp_path / "napari_widget.png"
    img = viewer.screenshot(str(shot), canvas_only=False, flash=False)
    assert img.ndim == 3 and img.shape[0] > 400 and img.shape[1] > 800
    rgb = img[..., :3].reshape(-1, 3)
    assert rgb.std() > 20 and len(np.unique(rgb // 16, axis=0)) > 20
    assert shot.stat().st_size > 10_000
    # the widget shows the state colours
    arr = _qimage_to_array(w.grab().toImage())
    for state in ("active", "passive", "excluded"):
        c = np.array([int(cv.STATE_COLOURS[state][n:n + 2], 16) for n in (1, 3, 5)])
        assert (np.abs(arr[..., :3].astype(int) - c).sum(axis=-1) < 12).sum() > 20, state


def test_plugin_reader_and_dock_widget(make_napari_viewer, sim, qtbot, monkeypatch):
    """The installed plugin: the dock widget from the Plugins menu, then File > Open through the
    reader; the widget finds the trial from the new layers (read once, in a worker thread)."""
    folder = sim[0]
    calls = []
    real = cv.read_trial
    monkeypatch.setattr(cv, "read_trial", lambda p: calls.append(str(p)) or real(p))
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("fishtrack", "Trial (ethogram and corrections)")
    assert widget.trial is None
    layers = viewer.open(str(folder), plugin="fishtrack")
    assert [layer.name for layer in layers] == ["video (plate.mp4)", "arenas", "tracks", "heads", "tails"]
    qtbot.waitUntil(lambda: widget.trial is not None, timeout=20000)
    assert widget.trial.folder == folder and widget.fish == "A1"
    assert len(calls) == 2  # once by the reader, once by the widget (not once per layer)
    frames, times = widget.trial.frame_times()
    viewer.dims.set_current_step(0, int(frames[-1]))
    assert widget.strip.cursor_time == pytest.approx(times[-1])
    # a plain video opens as a lazy image
    (video,) = viewer.open(str(folder.parent / "sim" / "plate.mp4"), plugin="fishtrack")
    assert isinstance(video.data, cv.LazyVideo)


def _qimage_to_array(qimg) -> np.ndarray:
    from qtpy.QtGui import QImage

    qimg = qimg.convertToFormat(QImage.Format_RGBA8888)
    ptr = qimg.bits()
    ptr.setsize(qimg.height() * qimg.bytesPerLine())
    arr = np.frombuffer(ptr, np.uint8).reshape(qimg.height(), qimg.bytesPerLine() // 4, 4)
    return arr[:, : qimg.width()].copy()


def test_view_opens_everything(sim, qtbot):
    """``fishtrack view DIR`` -> :func:`fishtrack.napari.viewer.view` (non-blocking here)."""
    from fishtrack.errors import FishtrackError
    from fishtrack.napari._widget import FishtrackWidget
    from fishtrack.napari.viewer import view

    with pytest.raises(FishtrackError, match="no such file"):
        view(sim[0] / "missing", block=False)
    viewer = view(sim[0], block=False)
    try:
        assert [layer.name for layer in viewer.layers][1:] == ["arenas", "tracks", "heads", "tails"]
        docked = viewer.window._qt_window.findChildren(FishtrackWidget)
        assert len(docked) == 1 and docked[0].trial.folder == sim[0]
    finally:
        viewer.close()


def test_sample_data_uses_cached_trial(make_napari_viewer, sim, qtbot, tmp_path, monkeypatch):
    """File > Open Sample: the sample's tracked folder is cached and reused (no re-tracking)."""
    import fishtrack.pipeline
    from fishtrack.config import config_hash, load_config
    from fishtrack.errors import FishtrackError
    from fishtrack.napari import _sample

    folder = sim[0]
    samples = tmp_path / "samples"
    (samples / "plate24").mkdir(parents=True)
    shutil.copy(folder.parent / "sim" / "plate.mp4", samples / "plate24" / "plate24.mp4")
    shutil.copy(folder.parent / "sim" / "config.yaml", samples / "plate24" / "config.yaml")
    cache = tmp_path / "cache"
    h = config_hash(load_config(samples / "plate24" / "config.yaml"))[:12]
    shutil.copytree(folder, cache / f"plate24-{h}")
    monkeypatch.setattr(_sample, "SAMPLES", samples)
    monkeypatch.setenv("FISHTRACK_CACHE", str(cache))

    def no_tracking(*a, **k):
        raise AssertionError("the cached sample should have been used")

    monkeypatch.setattr(fishtrack.pipeline, "track_to_folder", no_tracking)
    with pytest.raises(FishtrackError, match="make samples"):
        _sample.embedded()
    viewer = make_napari_viewer()
    viewer.open_sample("fishtrack", "plate24")
    assert [layer.name for layer in viewer.layers][1:] == ["arenas", "tracks", "heads", "tails"]
    assert viewer.layers["tracks"].metadata["fishtrack_folder"] == str(cache / f"plate24-{h}")
