"""`fishtrack import`: tracks made by other trackers, analysed by fishtrack.

Every source file is written by the test in its tool's documented layout - DeepLabCut and
SLEAP files with movement's own writers (and DeepLabCut's own pandas "table" HDF5 layout),
ZebraZoom HDF5/JSON, idtracker.ai HDF5/CSV, TRex .npz - from known geometry or from the
simulator's true midlines (``fishtrack.synth.simulate_truth``, no video rendered), so every
check is against known truth. The realistic case: head-embedded larvae at 250 Hz written as a
DeepLabCut file with likelihoods, imported, classified, and scored against the simulator's
bouts and states.
"""

from __future__ import annotations

import json
import pickle

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml
from fixtures_behaviour import f1, match_bouts
from typer.testing import CliRunner

from fishtrack.cli import app
from fishtrack.importers import (
    ImportOptions,
    import_tracks,
    is_imported_trial,
    load_tracks,
)
from fishtrack.importers._pickle0 import UnsafePickle, literal_from_pickle0
from fishtrack.io.tables import read_table, write_table
from fishtrack.synth import SimSpec, simulate_truth
from fishtrack.synth.simulate import sim_config
from fishtrack.tracking.midline import body_angles

pytestmark = pytest.mark.timeout(120)

N = 10  # simulator midline points
CONTRACT = ["frame", "time_s", "arena", "fish", "x", "y", "heading", "tail_angle",
            "tail_curvature", "detected", "area_px"]


def _cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _wrap(a):
    return np.angle(np.exp(1j * np.asarray(a, np.float64)))


@pytest.fixture(scope="module")
def embedded():
    """Two head-embedded larvae, 60 s at 250 Hz: true midlines, bouts and states."""
    spec = SimSpec(layout="embedded", rows=1, cols=2, fps=250.0, duration_s=60.0, seed=4)
    truth = simulate_truth(spec)
    frames = truth.frames.sort_values(["fish", "frame"]).reset_index(drop=True)
    return spec, frames, truth.bouts


def _truth_points(frames: pd.DataFrame) -> tuple[np.ndarray, list[str], int]:
    """(T, F, N, 2) true midline points, fish names, T."""
    fish = sorted(frames["fish"].unique())
    t_n = frames["frame"].nunique()
    pts = np.zeros((t_n, len(fish), N, 2))
    for j, f in enumerate(fish):
        d = frames[frames["fish"] == f].sort_values("frame")
        for k in range(N):
            pts[:, j, k, 0] = d[f"tail_x_{k}"].to_numpy()
            pts[:, j, k, 1] = d[f"tail_y_{k}"].to_numpy()
    return pts, fish, t_n


def _config_file(spec, path):
    path.write_text(yaml.safe_dump(sim_config(spec), sort_keys=False), encoding="utf-8")
    return path


def _import_embedded(path, source, spec, tmp_path):
    """``fishtrack import`` of head-embedded larvae at 250 Hz with the simulation's config:
    (trial folder, CLI result, provenance)."""
    cfg = _config_file(spec, tmp_path / "config.yaml")
    trial = tmp_path / "trial"
    r = _cli("import", path, "--from", source, "--fps", 250, "--layout", "embedded",
             "--config", cfg, "--out", trial)
    assert r.exit_code == 0, r.output
    return trial, r, json.loads((trial / "provenance.json").read_text())


# --------------------------------------------------------------------------------------------
# the realistic case: DeepLabCut at 250 Hz on head-embedded larvae


def test_deeplabcut_h5_of_embedded_larvae_scores_the_simulator_truth(embedded, tmp_path):
    spec, frames, truth_bouts = embedded
    pts, fish, t_n = _truth_points(frames)
    rng = np.random.default_rng(0)
    kps = ["head"] + [f"tail{i}" for i in range(1, N)]  # tail1 (base) ... tail9 (tip)
    data = np.zeros((t_n, len(fish), N, 3))
    data[..., :2] = pts + rng.normal(0, 0.3, pts.shape)  # pose-estimation noise, px
    data[..., 2] = rng.uniform(0.8, 1.0, (t_n, len(fish), N))
    low = rng.random((t_n, len(fish), N)) < 0.004  # occasional unsure points
    data[..., 2][low] = rng.uniform(0.0, 0.5, low.sum())
    cols = pd.MultiIndex.from_tuples(
        [("DLC_resnet50_fishJan1shuffle1_100000", f"larva{j + 1}", k, c)
         for j in range(len(fish)) for k in kps for c in ("x", "y", "likelihood")],
        names=["scorer", "individuals", "bodyparts", "coords"])
    h5 = tmp_path / "embeddedDLC_resnet50.h5"
    # DeepLabCut's own writer: df.to_hdf(path, "df_with_missing", format="table", mode="w")
    pd.DataFrame(data.reshape(t_n, -1), columns=cols).to_hdf(
        h5, key="df_with_missing", format="table", mode="w")
    trial, r, prov = _import_embedded(h5, "dlc", spec, tmp_path)
    assert "head = head" in r.output and "guessed" in r.output
    assert is_imported_trial(trial)
    assert prov["source"] == "import"
    imp = prov["import"]
    assert imp["tool"] == "dlc" and imp["tool_name"] == "DeepLabCut"
    assert imp["file"] == str(h5) and prov["input"]["name"] == h5.name
    assert imp["mapping"] == {"head": ["head"], "body": [], "tail": kps[1:]}
    assert imp["min_confidence"] == 0.6 and imp["fps"] == 250
    assert imp["individuals"] == {"A1": "larva1", "A2": "larva2"}  # left to right
    assert prov["config"]["arenas"]["layout"] == "embedded"

    tracks = read_table(trial / "tracks.parquet")
    assert list(tracks.columns[: len(CONTRACT)]) == CONTRACT
    assert [c for c in tracks.columns if c.startswith(("tail_x_", "tail_y_"))] == \
        [f"tail_x_{i}" for i in range(N)] + [f"tail_y_{i}" for i in range(N)]
    assert "motion_energy" not in tracks.columns and tracks["area_px"].isna().all()
    assert len(tracks) == t_n * 2 and sorted(tracks["fish"].unique()) == ["A1", "A2"]
    tr = tracks.sort_values(["fish", "frame"]).reset_index(drop=True)
    np.testing.assert_allclose(tr["time_s"], frames["frame"] / 250.0)
    # a point under the threshold: head -> not detected; any midline point -> tail unknown
    flat = low.transpose(1, 0, 2).reshape(-1, N)  # fish-major like tr
    np.testing.assert_array_equal(tr["detected"].to_numpy(), ~flat[:, 0])
    assert tr.loc[flat[:, 0], ["x", "y"]].isna().all().all()
    np.testing.assert_array_equal(np.isfinite(tr["tail_angle"]), ~flat.any(axis=1))
    ok = ~flat.any(axis=1)
    err = np.abs(_wrap(tr["tail_angle"].to_numpy()[ok] - frames["tail_angle"].to_numpy()[ok]))
    assert np.median(err) < 0.03  # 0.3 px noise on a 40 px fish

    r = _cli("classify", trial)
    assert r.exit_code == 0, r.output
    scored = read_table(trial / "tracks.parquet").sort_values(["fish", "frame"])
    state = scored["state"].to_numpy()
    true_state = frames["state"].astype(str).to_numpy()
    known = state != "unknown"
    assert known.mean() > 0.99  # single unsure frames are bridged
    acc = np.mean(state[known] == true_state[known])
    bouts = pd.read_csv(trial / "bouts.csv")
    tp, fp, fn, onset = match_bouts(truth_bouts, bouts, tol_s=0.05)
    print(f"DLC 250 Hz import: state accuracy {acc:.4f}, bout F1 {f1(tp, fp, fn):.3f} "
          f"({tp} tp, {fp} fp, {fn} fn), onset error mean {1e3 * onset.mean():+.0f} ms, "
          f"max {1e3 * np.abs(onset).max():.0f} ms")
    assert acc >= 0.97, acc
    assert f1(tp, fp, fn) >= 0.95, (tp, fp, fn)
    assert (scored["state"] == "passive").mean() > 0.1  # the open loop does hold passivity
    # kinematics alone: motion_index comes from the midline, not from pixels
    assert np.isfinite(scored["motion_index"]).mean() > 0.9
    epochs = pd.read_csv(trial / "epochs.csv")
    assert set(epochs["phase"].dropna()) <= {p.name for p in spec.phases()}


# --------------------------------------------------------------------------------------------
# DeepLabCut / SLEAP through movement's writers; keypoint mapping and angle conventions


def _bent_fish(n_frames: int = 6) -> np.ndarray:
    """Keypoints left_eye, right_eye, swim_bladder, tail_base, tail_mid, tail_tip of one fish
    facing +x with the tail tip rotated clockwise on screen (up, y smaller) by frame/10 rad."""
    out = np.zeros((n_frames, 6, 2))
    for t in range(n_frames):
        theta = t / 10
        head = np.array([100.0, 50.0])
        out[t, 0] = head + [0, -2]
        out[t, 1] = head + [0, 2]
        out[t, 2] = head + [-6, 0]  # keypoints not equally spaced: 6, 10, 8, 8 px
        out[t, 3] = head + [-16, 0]
        out[t, 4] = head + [-16 - 8 * np.cos(theta / 2), -8 * np.sin(theta / 2)]
        out[t, 5] = out[t, 4] + [-8 * np.cos(theta), -8 * np.sin(theta)]
    return out


KPS = ["left_eye", "right_eye", "swim_bladder", "tail_base", "tail_mid", "tail_tip"]


def _movement_ds(points, conf, kps=KPS, individuals=("fish_a",), fps=100.0, software="DeepLabCut"):
    from movement.io import load_poses

    pos = np.moveaxis(np.asarray(points, np.float32), -1, 1)  # (T, 2, K) or (T, 2, K, F)
    if pos.ndim == 3:
        pos = pos[..., None]
    c = np.asarray(conf, np.float32)
    if c.ndim == 2:
        c = c[..., None]
    return load_poses.from_numpy(position_array=pos, confidence_array=c,
                                 individual_names=list(individuals), keypoint_names=list(kps),
                                 fps=fps, source_software=software)


@pytest.mark.parametrize("suffix", [".csv", ".h5"])
def test_deeplabcut_files_from_movement_map_eyes_bladder_and_tail(tmp_path, suffix):
    from movement.io import save_poses

    pts = _bent_fish()
    conf = np.full(pts.shape[:2], 0.95)
    conf[2, 5] = 0.3  # tail tip unsure in frame 2
    conf[4, 0] = 0.1  # one eye unsure in frame 4: head unknown
    path = tmp_path / f"fish{suffix}"
    save_poses.to_dlc_file(_movement_ds(pts, conf), path, split_individuals=False)
    tracks, info = load_tracks(path, "dlc", ImportOptions(fps=100, layout="wells"))
    assert info["mapping"] == {"head": ["left_eye", "right_eye"], "body": ["swim_bladder"],
                               "tail": ["tail_base", "tail_mid", "tail_tip"]}
    assert info["mapping_guessed"] and info["n_points"] == 5
    assert tracks["fish"].tolist() == ["A1"] * 6 and tracks["arena"].tolist() == ["A1"] * 6
    np.testing.assert_allclose(tracks["time_s"], np.arange(6) / 100)
    # head = the midpoint of the eyes (fishtrack's head point)
    ok = tracks["detected"].to_numpy()
    assert ok.tolist() == [True, True, True, True, False, True]
    np.testing.assert_allclose(tracks.loc[ok, ["x", "y"]], [[100, 50]] * 5, atol=1e-4)
    assert tracks.loc[~ok, ["x", "y", "tail_angle"]].isna().all().all()
    # angles: the tracker's own body_angles on the equally spaced midline
    good = ok & (np.arange(6) != 2)
    assert np.isnan(tracks.loc[2, "tail_angle"]) and np.isfinite(tracks.loc[good, "tail_angle"]).all()
    mid = np.stack([tracks[[f"tail_x_{i}", f"tail_y_{i}"]].to_numpy(np.float64) for i in range(5)],
                   axis=1)[good]
    seg = np.hypot(*np.diff(mid, axis=1).transpose(2, 0, 1))
    np.testing.assert_allclose(seg, 8.0, rtol=1e-5)  # resampled: equally spaced (32 px / 4)
    h, ta, _ = body_angles(mid)
    np.testing.assert_allclose(tracks.loc[good, "heading"], h, atol=1e-5)
    np.testing.assert_allclose(tracks.loc[good, "tail_angle"], ta, atol=1e-5)
    # conventions: facing +x -> heading 0; straight -> 0; tip rotated clockwise -> positive
    np.testing.assert_allclose(tracks.loc[good, "heading"], 0, atol=1e-5)
    assert abs(tracks.loc[0, "tail_angle"]) < 1e-6
    assert (np.diff(tracks.loc[good, "tail_angle"].to_numpy()) > 0).all()


def test_keypoint_options_threshold_and_no_resampling(tmp_path):
    from movement.io import save_poses

    pts = _bent_fish()
    conf = np.full(pts.shape[:2], 0.5)
    path = tmp_path / "fish.csv"
    save_poses.to_dlc_file(_movement_ds(pts, conf), path, split_individuals=False)
    # default threshold 0.6: every point unsure -> nothing detected
    tracks, _ = load_tracks(path, "dlc", ImportOptions(fps=100))
    assert not tracks["detected"].any()
    # given mapping, lower threshold, keypoints used as they are (no resampling)
    opt = ImportOptions(fps=100, head=["swim_bladder"], body=[], tail=["tail_base", "tail_tip"],
                        min_confidence=0.4, resample=False)
    tracks, info = load_tracks(path, "dlc", opt)
    assert tracks["detected"].all() and not info["mapping_guessed"] and not info["resampled"]
    np.testing.assert_allclose(tracks["x"], 94.0)
    np.testing.assert_allclose(tracks["tail_x_2"], pts[:, 5, 0], atol=1e-4)
    with pytest.raises(Exception, match="--tail names keypoint"):
        load_tracks(path, "dlc", ImportOptions(fps=100, tail=["fin"]))


def test_sleap_analysis_file_with_unguessable_names_needs_head_and_tail(tmp_path):
    from movement.io import save_poses

    pts = np.stack([_bent_fish(), _bent_fish() + [0, 200]], axis=2)  # (T, K, F, 2): one above
    kps = [f"n{i}" for i in range(6)]
    ds = _movement_ds(pts, np.full((6, 6, 2), 0.9),
                      kps=kps, individuals=("track_0", "track_1"), software="SLEAP")
    path = tmp_path / "labels.v001.analysis.h5"
    save_poses.to_sleap_analysis_file(ds, path)
    with pytest.raises(Exception, match="cannot tell which keypoint is the head"):
        load_tracks(path, "sleap", ImportOptions(fps=50))
    opt = ImportOptions(fps=50, head=["n0", "n1"], tail=["n2", "n3", "n4", "n5"])
    tracks, info = load_tracks(path, "sleap", opt)
    assert info["individuals"] == {"A1": "track_0", "B1": "track_1"}  # grid: one above the other
    a1 = tracks[tracks["fish"] == "A1"]
    np.testing.assert_allclose(a1[["x", "y"]], [[100, 50]] * 6, atol=1e-4)
    np.testing.assert_allclose(a1["time_s"], np.arange(6) / 50)
    r = _cli("import", path, "--from", "sleap", "--out", tmp_path / "t")
    assert r.exit_code == 2 and "give --fps" in r.output


def _sleap_gui_csv(path, frames_by_track: dict[str, dict[int, np.ndarray]], nodes,
                   *, untracked: dict[int, np.ndarray] | None = None) -> None:
    """Write SLEAP's analysis CSV as SLEAP's GUI exports it (File > Export Analysis CSV):
    one row per instance, track by track; ``track, frame_idx, instance.score`` then
    ``NODE.x, NODE.y, NODE.score`` in skeleton order; a missing point is an empty cell
    (values: ``(K, 3)`` x, y, score per instance, NaN = missing). ``untracked``: instances
    without a track (empty track cell)."""
    import csv

    header = ["track", "frame_idx", "instance.score"] + [
        f"{n}.{c}" for n in nodes for c in ("x", "y", "score")]

    def cell(v):
        return "" if not np.isfinite(v) else repr(float(v))

    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for name, inst in frames_by_track.items():
            for f, v in sorted(inst.items()):
                pts = v.copy()
                pts[~np.isfinite(pts[:, 0]), 2] = np.nan  # SLEAP: no score for a missing point
                w.writerow([name, f, "0.97"] + [cell(x) for x in pts.ravel()])
        for f, v in sorted((untracked or {}).items()):
            w.writerow(["", f, "0.41"] + [cell(x) for x in v.ravel()])


def test_sleap_analysis_csv_of_embedded_larvae_scores_the_simulator_truth(embedded, tmp_path):
    """SLEAP's CSV export (two tracks, points missing in some frames, frames without an
    instance, untracked instances, low point scores) of the simulator's true midlines:
    imported and classified, scored against the true states."""
    spec, frames, truth_bouts = embedded
    pts, fish, t_n = _truth_points(frames)
    keep = 250 * 30  # 30 s
    rng = np.random.default_rng(7)
    nodes = ["head"] + [f"tail_{i}" for i in range(1, N)]
    data = np.zeros((keep, len(fish), N, 3))
    data[..., :2] = pts[:keep] + rng.normal(0, 0.3, (keep, len(fish), N, 2))
    data[..., 2] = rng.uniform(0.7, 1.0, (keep, len(fish), N))
    missing = rng.random((keep, len(fish), N)) < 0.003  # points SLEAP did not place
    data[..., :2][missing] = np.nan
    low = rng.random((keep, len(fish), N)) < 0.003  # placed, but unsure
    data[..., 2][low] = rng.uniform(0.0, 0.5, low.sum())
    absent = rng.random((keep, len(fish))) < 0.002  # no instance of that track
    names = ["larva_right", "larva_left"]  # track order is not the left-right order
    by_track = {names[1 - j]: {f: data[f, j] for f in range(keep) if not absent[f, j]}
                for j in range(len(fish))}
    stray = {f: np.column_stack([rng.uniform(0, 300, (N, 2)), np.full(N, 0.4)])
             for f in range(0, keep, 500)}  # e.g. a reflection SLEAP did not track
    path = tmp_path / "predictions.analysis.csv"
    _sleap_gui_csv(path, by_track, nodes, untracked=stray)
    head = path.read_text().splitlines()[0]
    assert head.startswith("track,frame_idx,instance.score,head.x,head.y,head.score,tail_1.x")
    trial, r, prov = _import_embedded(path, "sleap", spec, tmp_path)
    assert "untracked" in r.output and "left out" in r.output
    imp = prov["import"]
    assert imp["reader"] == "fishtrack.importers.poses.read_sleap_csv"
    assert imp["individuals"] == {"A1": "larva_left", "A2": "larva_right"}  # by position
    assert imp["mapping"] == {"head": ["head"], "body": [], "tail": nodes[1:]}
    tr = read_table(trial / "tracks.parquet").sort_values(["fish", "frame"]).reset_index(drop=True)
    assert len(tr) == keep * 2
    np.testing.assert_allclose(tr["time_s"], np.tile(np.arange(keep) / 250.0, 2))
    bad_head = (missing[..., 0] | low[..., 0] | absent).T.ravel()  # fish-major like tr
    np.testing.assert_array_equal(tr["detected"].to_numpy(), ~bad_head)
    bad_mid = (missing.any(axis=2) | low.any(axis=2) | absent).T.ravel()
    np.testing.assert_array_equal(np.isfinite(tr["tail_angle"]), ~bad_mid)
    ok = ~bad_mid
    true = frames[frames["frame"] < keep]
    err = np.abs(_wrap(tr["tail_angle"].to_numpy()[ok] - true["tail_angle"].to_numpy()[ok]))
    assert np.median(err) < 0.03
    assert _cli("classify", trial).exit_code == 0
    scored = read_table(trial / "tracks.parquet").sort_values(["fish", "frame"])
    state, true_state = scored["state"].to_numpy(), true["state"].astype(str).to_numpy()
    known = state != "unknown"
    acc = np.mean(state[known] == true_state[known])
    print(f"SLEAP CSV 250 Hz import: {known.mean():.4f} of frames scored, state accuracy {acc:.4f}")
    assert known.mean() > 0.99 and acc >= 0.97, (known.mean(), acc)


def test_sleap_csv_from_sleap_io_untracked_and_user_labelled_instances(tmp_path):
    """The same format as sleap-io writes it (columns sorted by name, user-labelled rows
    without scores): untracked-only files are one animal when at most one instance per
    frame, refused otherwise; a user-labelled instance wins over a prediction."""
    import sleap_io as sio

    pts = _bent_fish()  # (T, K, 2): left_eye, right_eye, swim_bladder, tail_base, mid, tip
    skel = sio.Skeleton(nodes=list(KPS))  # (sleap-io turns the list items into Nodes)
    video = sio.Video(filename="larva.mp4", open_backend=False)

    def save(instances_per_frame, path, tracks=()):
        lfs = [sio.LabeledFrame(video=video, frame_idx=f, instances=insts)
               for f, insts in instances_per_frame.items()]
        sio.save_csv(sio.Labels(labeled_frames=lfs, videos=[video], skeletons=[skel],
                                tracks=list(tracks)), path, format="sleap")
        return path

    def pred(p, track=None, score=0.9):
        return sio.PredictedInstance.from_numpy(points_data=p, point_scores=np.full(len(p), 0.9),
                                                score=score, skeleton=skel, track=track)

    one = save({f: [pred(pts[f])] for f in range(6)}, tmp_path / "single.csv")
    assert open(one).readline().startswith("track,frame_idx,instance.score,left_eye.score,")
    tracks, info = load_tracks(one, "sleap", ImportOptions(fps=100))
    assert info["individuals"] == {"A1": "untracked"} and len(tracks) == 6
    assert any("read as one animal" in n for n in info["notes"])
    np.testing.assert_allclose(tracks[["x", "y"]], [[100, 50]] * 6, atol=1e-4)
    two = save({f: [pred(pts[f]), pred(pts[f] + [0, 100])] for f in range(6)}, tmp_path / "two.csv")
    r = _cli("import", two, "--from", "sleap", "--fps", 100, "--out", tmp_path / "t")
    assert r.exit_code == 1 and "have no track" in r.output and "up to 2" in r.output
    assert len(r.output.strip().splitlines()) == 1
    # a track with a prediction and a user-labelled instance in frame 3: the user's wins
    trk = sio.Track(name="larva")
    moved = pts[3] + [5, 0]
    frames = {f: [pred(pts[f], trk)] for f in range(6)}
    frames[3] = [pred(pts[3], trk, score=0.99), sio.Instance.from_numpy(moved, skeleton=skel, track=trk)]
    frames[5] = [pred(pts[5], trk), pred(pts[5] + [0, 100])]  # plus an untracked one
    path = save(frames, tmp_path / "user.csv", tracks=[trk])
    tracks, info = load_tracks(path, "sleap", ImportOptions(fps=100))
    assert info["individuals"] == {"A1": "larva"} and len(tracks) == 6
    assert tracks.loc[3, "x"] == pytest.approx(105, abs=1e-4)
    assert any("1 instance(s) without a track left out" in n for n in info["notes"])
    assert any("1 extra instance(s)" in n for n in info["notes"])
    # not a SLEAP CSV: one line naming the expected columns
    (tmp_path / "other.csv").write_text("time,x,y\n0,1,2\n")
    r = _cli("import", tmp_path / "other.csv", "--from", "sleap", "--fps", 100, "--out", tmp_path / "o")
    assert r.exit_code == 1 and "not a SLEAP analysis CSV (expected columns track, frame_idx" \
        in r.output and len(r.output.strip().splitlines()) == 1
    (tmp_path / "badframe.csv").write_text("track,frame_idx,instance.score,head.x,head.y\n"
                                           "a,0,1,1,1\na,x1,1,2,2\n")
    with pytest.raises(Exception, match=r"line 3: frame_idx 'x1' is not a frame number"):
        load_tracks(tmp_path / "badframe.csv", "sleap", ImportOptions(fps=10))


def test_movement_file_with_a_seconds_axis_and_no_fps_uses_the_fps_option(tmp_path):
    ds = _movement_ds(_bent_fish(), np.full((6, 6), 0.9), fps=20.0, software="LightningPose")
    assert ds.attrs["time_unit"] == "seconds"
    del ds.attrs["fps"]  # e.g. written by another tool: times in seconds, no rate
    path = tmp_path / "poses.nc"
    ds.to_netcdf(path)
    r = _cli("import", path, "--from", "movement", "--out", tmp_path / "t")
    assert r.exit_code == 1 and "time axis is in seconds but the file records no frame rate" \
        in r.output and "give --fps" in r.output
    tracks, info = load_tracks(path, "movement", ImportOptions(fps=20))
    assert tracks["frame"].tolist() == list(range(6)) and info["fps"] == 20
    np.testing.assert_allclose(tracks["time_s"], np.arange(6) / 20)
    # with the rate in the file, --fps re-times the same frames (a camera's wrong rate)
    ds.attrs["fps"] = 20.0
    ds.to_netcdf(tmp_path / "poses2.nc")
    tracks, _ = load_tracks(tmp_path / "poses2.nc", "movement", ImportOptions(fps=40))
    assert tracks["frame"].tolist() == list(range(6))
    np.testing.assert_allclose(tracks["time_s"], np.arange(6) / 40)


# --------------------------------------------------------------------------------------------
# movement: export -> import round trip, and other movement datasets


def _tracker_style_tracks(frames: pd.DataFrame, n_frames: int) -> pd.DataFrame:
    """Tracks the way the tracker writes them: float32 midline points and body_angles."""
    d = frames[frames["frame"] < n_frames].sort_values(["frame", "fish"]).reset_index(drop=True)
    pts = np.stack([d[[f"tail_x_{i}", f"tail_y_{i}"]].to_numpy(np.float32) for i in range(N)],
                   axis=1)
    h, ta, cu = body_angles(pts.astype(np.float64))
    t = pd.DataFrame({"frame": d["frame"].astype(np.int64), "time_s": d["time_s"],
                      "arena": d["arena"].astype(str), "fish": d["fish"].astype(str),
                      "x": pts[:, 0, 0], "y": pts[:, 0, 1], "heading": h.astype(np.float32),
                      "tail_angle": ta.astype(np.float32), "tail_curvature": cu.astype(np.float32),
                      "detected": True, "area_px": np.float32(55.0)})
    for i in range(N):
        t[f"tail_x_{i}"] = pts[:, i, 0]
    for i in range(N):
        t[f"tail_y_{i}"] = pts[:, i, 1]
    lost = np.arange(len(t)) % 37 == 5
    cols = [c for c in t.columns if c in ("x", "y", "heading", "tail_angle", "tail_curvature")
            or c.startswith("tail_")]
    t.loc[lost, cols] = np.nan
    t.loc[lost, "detected"] = False
    return t


def test_movement_export_import_round_trip_gives_back_the_table(embedded, tmp_path):
    from fishtrack.io.provenance import write_provenance

    _, frames, _ = embedded
    orig = _tracker_style_tracks(frames, 500)
    trial = tmp_path / "tracked"
    write_table(orig, trial / "tracks.parquet")
    write_provenance(trial / "provenance.json", {"video": {"fps": 250.0}, "config": {}})
    r = _cli("export", trial, "--to", "movement", "--out", tmp_path / "poses.nc")
    assert r.exit_code == 0, r.output
    back_dir = tmp_path / "back"
    r = _cli("import", tmp_path / "poses.nc", "--from", "movement", "--out", back_dir)
    assert r.exit_code == 0, r.output
    back = read_table(back_dir / "tracks.parquet")
    prov = json.loads((back_dir / "provenance.json").read_text())
    assert prov["import"]["reader"] == "fishtrack.export.from_movement"
    # the table comes back: same rows, columns, identities, times and points (bit for bit),
    # angles re-derived by body_angles from the same float32 points
    assert set(back.columns) == set(orig.columns)
    back = back[orig.columns].sort_values(["frame", "fish"]).reset_index(drop=True)
    for c in ("frame", "fish", "arena", "detected"):
        assert (back[c].to_numpy() == orig[c].to_numpy()).all(), c
    np.testing.assert_array_equal(back["time_s"], orig["time_s"])
    for c in ["x", "y"] + [f"tail_{a}_{i}" for a in "xy" for i in range(N)]:
        np.testing.assert_array_equal(back[c].to_numpy(np.float32), orig[c].to_numpy(np.float32))
    for c in ("heading", "tail_angle", "tail_curvature"):
        np.testing.assert_allclose(back[c], orig[c], atol=1e-5, equal_nan=True)
        assert back[c].dtype == np.float32
    assert back["area_px"].isna().all()  # not in a poses dataset: unknown after import


def test_movement_dataset_of_another_tool_uses_the_keypoint_mapping(tmp_path):
    ds = _movement_ds(_bent_fish(), np.full((6, 6), 0.9), software="LightningPose")
    ds.to_netcdf(tmp_path / "lp.nc")
    tracks, info = load_tracks(tmp_path / "lp.nc", "movement", ImportOptions(layout="chamber"))
    assert info["mapping"]["head"] == ["left_eye", "right_eye"]
    assert tracks["fish"].tolist() == ["A1"] * 6  # chamber: A1, one fish
    np.testing.assert_allclose(tracks["time_s"], np.arange(6) / 100)  # the dataset's fps


# --------------------------------------------------------------------------------------------
# ZebraZoom


def _zz_wells():
    return [{"topLeftX": 0, "topLeftY": 0, "lengthX": 100, "lengthY": 100},
            {"topLeftX": 110, "topLeftY": 0, "lengthX": 100, "lengthY": 100}]


def _zz_points(n_frames: int = 8) -> np.ndarray:
    """(T, 2 wells, 11 points, 2) well-relative midlines (head first), straight along -x."""
    p = np.zeros((n_frames, 2, 11, 2))
    for t in range(n_frames):
        for w in range(2):
            p[t, w, :, 0] = 60 + t - np.arange(11) * 3.0
            p[t, w, :, 1] = 40 + 10 * w
    return p


def test_zebrazoom_h5_wells_offsets_and_missing_heads(tmp_path):
    p = _zz_points()
    p[3, 1] = 0.0  # ZebraZoom's "not detected": (0, 0)
    path = tmp_path / "video_2024_01_01-10_00_00.h5"
    with h5py.File(path, "w") as f:
        f.attrs.update({"videoFPS": 300.0, "firstFrame": 5, "lastFrame": 12, "videoPixelSize": 0.01})
        for i, w in enumerate(_zz_wells()):
            f.create_group(f"wellPositions/well{i}").attrs.update(w)
            g = f.create_group(f"dataForWell{i}/dataForAnimal0/dataPerFrame")
            head = np.zeros(len(p), dtype=[("X", float), ("Y", float)])
            head["X"], head["Y"] = p[:, i, 0, 0], p[:, i, 0, 1]
            g.create_dataset("HeadPos", data=head).attrs["columns"] = ["X", "Y"]
            for a, axis in (("X", 0), ("Y", 1)):
                names = [f"TailPos{a}{k}" for k in range(10)]
                arr = np.zeros(len(p), dtype=[(n, float) for n in names])
                for k, n in enumerate(names):
                    arr[n] = p[:, i, k + 1, axis]
                g.create_dataset(f"TailPos{a}", data=arr).attrs["columns"] = names
            g.create_dataset("Heading", data=np.zeros(len(p)))
            g.create_dataset("TailAngle", data=np.zeros(len(p)))
    res = import_tracks(path, "zebrazoom", tmp_path / "trial", options=ImportOptions())
    t = res.tracks
    assert res.provenance["import"]["fps"] == 300.0
    assert t["frame"].unique().tolist() == list(range(5, 13))
    np.testing.assert_allclose(t.drop_duplicates("frame")["time_s"], np.arange(5, 13) / 300)
    assert sorted(t["arena"].unique()) == ["A1", "A2"]  # wells side by side
    a2 = t[t["arena"] == "A2"].reset_index(drop=True)
    np.testing.assert_allclose(a2.loc[a2.index != 3, "x"], 110 + 60 + np.delete(np.arange(8), 3))
    assert not a2.loc[3, "detected"] and np.isnan(a2.loc[3, "x"])
    assert ({f"tail_x_{i}" for i in range(10)} <= set(t.columns)) and "tail_x_10" not in t.columns
    # a straight fish pointing +x (head at larger x): heading 0, tail angle 0
    ok = t["detected"]
    np.testing.assert_allclose(t.loc[ok, "heading"], 0, atol=1e-5)
    np.testing.assert_allclose(t.loc[ok, "tail_angle"], 0, atol=1e-5)
    np.testing.assert_allclose(t.loc[ok, "tail_x_9"] - t.loc[ok, "x"], -30, atol=1e-4)


def test_zebrazoom_json_bouts_only_fills_still_frames_between_bouts(tmp_path):
    p = _zz_points(20)
    bouts = [[[{"AnimalNumber": 0, "BoutStart": s, "BoutEnd": e,
                "HeadX": p[s:e + 1, w, 0, 0].tolist(), "HeadY": p[s:e + 1, w, 0, 1].tolist(),
                "TailX_VideoReferential": p[s:e + 1, w, :, 0].tolist(),
                "TailY_VideoReferential": p[s:e + 1, w, :, 1].tolist()}
               for s, e in ((2, 4), (10, 12))]] for w in range(2)]
    path = tmp_path / "results_video.txt"
    path.write_text(json.dumps({"wellPoissMouv": bouts, "wellPositions": _zz_wells(),
                                "firstFrame": 0, "lastFrame": 19}))
    t, info = load_tracks(path, "zebrazoom", ImportOptions(fps=100))
    a1 = t[t["arena"] == "A1"].reset_index(drop=True)
    assert info["between_bouts"] == "still" and len(a1) == 20
    assert a1["detected"].all()
    # frames 5..9 hold the pose of frame 4 (end of the first bout); 0..1 that of frame 2
    np.testing.assert_allclose(a1.loc[5:9, "x"], p[4, 0, 0, 0])
    np.testing.assert_allclose(a1.loc[0:1, "x"], p[2, 0, 0, 0])
    np.testing.assert_allclose(a1.loc[10:12, "x"], p[10:13, 0, 0, 0])
    t2, _ = load_tracks(path, "zebrazoom", ImportOptions(fps=100, between_bouts="unobserved"))
    assert t2[t2["arena"] == "A1"]["detected"].sum() == 6


# --------------------------------------------------------------------------------------------
# idtracker.ai


def _idt_xy(n=30):
    xy = np.zeros((n, 2, 2))
    xy[:, 0] = np.c_[np.linspace(10, 40, n), np.full(n, 20.0)]
    xy[:, 1] = np.c_[np.full(n, 300.0), np.linspace(50, 80, n)]
    xy[7, 1] = np.nan  # a crossing: animal not located
    return xy


def test_idtrackerai_h5_csv_and_tidy_give_the_same_centroids(tmp_path):
    xy = _idt_xy()
    sess = tmp_path / "session_test" / "trajectories"
    sess.mkdir(parents=True)
    with h5py.File(sess / "trajectories.h5", "w") as f:  # idtracker.ai's _save_trajectories_into_h5
        f.create_dataset("trajectories", data=xy, compression="gzip")
        f.create_dataset("id_probabilities", data=np.ones((30, 2)))
        f.attrs["frames_per_second"] = 30.0
        f.attrs["version"] = "6.0.0"
        f.attrs["identities_labels"] = ["fish_a", "fish_b"]
    csv_dir = tmp_path / "trajectories_csv"
    csv_dir.mkdir()
    header = "time," + ",".join(f"{c}{i}" for i in (1, 2) for c in "xy")
    np.savetxt(csv_dir / "trajectories.csv", np.column_stack([np.arange(30) / 30, xy.reshape(30, -1)]),
               delimiter=",", header=header, fmt="%.3f", comments="")
    (csv_dir / "attributes.json").write_text(json.dumps({"frames_per_second": 30.0}))
    tidy = pd.DataFrame({"frame": np.repeat(np.arange(30), 2), "time": np.repeat(np.arange(30) / 30, 2),
                         "individual": np.tile([1, 2], 30), "x": xy[:, :, 0].ravel(),
                         "y": xy[:, :, 1].ravel(), "probability": 1.0})
    tidy.to_csv(tmp_path / "trajectories_tidy.csv", index=False)

    from_session, info = load_tracks(tmp_path / "session_test", "idtrackerai",
                                     ImportOptions(layout="chamber"))
    assert info["individuals"] == {"A1-1": "fish_a", "A1-2": "fish_b"}
    assert set(from_session.columns) == set(CONTRACT)  # centroids only: no midline
    a = from_session[from_session["fish"] == "A1-2"].reset_index(drop=True)
    np.testing.assert_allclose(a["y"], xy[:, 1, 1], atol=1e-4)
    assert not a.loc[7, "detected"] and a["tail_angle"].isna().all()
    np.testing.assert_allclose(a["time_s"], np.arange(30) / 30)
    assert any("movement bouts found from the head's speed" in n for n in info["notes"])
    for src in (csv_dir, tmp_path / "trajectories_tidy.csv"):
        other, _ = load_tracks(src, "idtrackerai", ImportOptions(layout="chamber"))
        np.testing.assert_allclose(other["x"], from_session["x"], atol=1e-3)
        np.testing.assert_array_equal(other["detected"], from_session["detected"])


def test_idtrackerai_npy_is_refused_without_unpickling(tmp_path):
    sess = tmp_path / "session_x" / "trajectories"
    sess.mkdir(parents=True)
    np.save(sess / "trajectories.npy", {"trajectories": _idt_xy()}, allow_pickle=True)
    for target in (sess / "trajectories.npy", tmp_path / "session_x"):
        r = _cli("import", target, "--from", "idtrackerai", "--fps", 30, "--out", tmp_path / "t")
        assert r.exit_code == 1
        msg = " ".join(r.output.split())
        assert "trajectories.npy" in msg and "unpickling" in msg
        assert "idtrackerai_format" in msg and "--formats h5 csv" in msg
    assert not (tmp_path / "t").exists()


# --------------------------------------------------------------------------------------------
# TRex


def test_trex_npz_with_posture_midlines_and_cm_positions(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    n = 12
    frames = np.arange(3, 3 + n)
    for i, y0 in enumerate((40.0, 140.0)):
        x = np.linspace(50, 61, n)
        missing = np.zeros(n)
        missing[4] = 1
        cm = 0.05  # cm per pixel
        xx = x * cm
        xx[4] = np.inf
        np.savez(data / f"video_fish{i}.npz", frame=frames, time=frames / 25.0, missing=missing,
                 X=xx, Y=np.full(n, y0 * cm), ANGLE=np.zeros(n), SPEED=np.zeros(n))
        mid = np.zeros((n, 5, 2))
        mid[:, :, 0] = -np.arange(5) * 4.0  # head first, tail to the left
        offset = np.c_[x, np.full(n, y0)]
        keep = np.arange(n) != 4
        np.savez(data / f"video_posture_fish{i}.npz", frames=frames[keep], offset=offset[keep],
                 midline_points=mid[keep], midline_lengths=np.full(keep.sum(), 5))
    t, info = load_tracks(data / "video_fish0.npz", "trex", ImportOptions(layout="wells"))
    assert info["n_points"] == 10 and info["fps"] == pytest.approx(25.0)
    a1 = t[t["fish"] == "A1"].reset_index(drop=True)
    assert t["fish"].nunique() == 2 and a1["frame"].tolist() == frames.tolist()
    np.testing.assert_allclose(a1["time_s"], frames / 25.0)
    assert not a1.loc[4, "detected"]
    np.testing.assert_allclose(a1.loc[a1.index != 4, "x"], np.delete(np.linspace(50, 61, n), 4))
    np.testing.assert_allclose(a1.loc[a1["detected"], "tail_x_9"] - a1.loc[a1["detected"], "x"], -16,
                               atol=1e-4)
    np.testing.assert_allclose(a1.loc[a1["detected"], "heading"], 0, atol=1e-5)
    # without posture files: positions from cm (cm_per_pixel), heading from ANGLE, no tail
    for f in data.glob("*_posture_*"):
        f.unlink()
    with pytest.raises(Exception, match="--cm-per-pixel"):
        load_tracks(data / "video_fish1.npz", "trex", ImportOptions())
    t, info = load_tracks(data, "trex", ImportOptions(cm_per_pixel=0.05))
    b = t[t["fish"] == "B1"].reset_index(drop=True)  # the fish further down
    np.testing.assert_allclose(b.loc[b["detected"], "y"], 140.0, atol=1e-4)
    np.testing.assert_allclose(b.loc[b["detected"], "heading"], 0.0)
    assert b["tail_angle"].isna().all() and "tail_x_0" not in t.columns


def test_trex_npz_holding_python_objects_is_refused(tmp_path):
    np.savez(tmp_path / "video_fish0.npz", frame=np.arange(3),
             X=np.array([{"evil": 1}] * 3, dtype=object))
    with pytest.raises(Exception, match=r"video_fish0\.npz: holds Python objects"):
        load_tracks(tmp_path / "video_fish0.npz", "trex", ImportOptions(fps=10, cm_per_pixel=1))


# --------------------------------------------------------------------------------------------
# never unpickle: DeepLabCut's pickled HDF5 attributes are parsed as plain literals only


def test_plain_literal_reader_matches_pickle_and_refuses_code():
    for obj in ([("scorer", "fish", "head", "x"), ("s", "é\n\\", 1, 2.5, None, True)],
                {"a": [1, 2], "b": {"names": ["x", None]}}, (), -(10 ** 20), "it's"):
        assert literal_from_pickle0(pickle.dumps(obj, 0)) == obj
    for bad in (b"cos\nsystem\n(S'echo hi'\ntR.", pickle.dumps([1], 2), pickle.dumps({1, 2}, 0)):
        with pytest.raises(UnsafePickle):
            literal_from_pickle0(bad)


def test_deeplabcut_h5_with_code_in_its_attributes_is_refused(tmp_path):
    cols = pd.MultiIndex.from_tuples([("s", "head", c) for c in ("x", "y", "likelihood")],
                                     names=["scorer", "bodyparts", "coords"])
    path = tmp_path / "evil.h5"
    pd.DataFrame(np.ones((4, 3)), columns=cols).to_hdf(path, key="df_with_missing",
                                                       format="table", mode="w")
    marker = tmp_path / "pwned"
    with h5py.File(path, "r+") as f:
        f["df_with_missing/table"].attrs["values_block_0_kind"] = np.bytes_(
            f"cos\nsystem\n(S'touch {marker}'\ntR.".encode())
    r = _cli("import", path, "--from", "dlc", "--fps", 30, "--out", tmp_path / "t")
    assert r.exit_code == 1 and not marker.exists()
    msg = " ".join(r.output.split())
    assert "evil.h5" in msg and "refusing to unpickle" in msg and "CSV" in msg


# --------------------------------------------------------------------------------------------
# experiments: a manifest row naming an imported trial folder


def test_run_classifies_imported_trials_and_skips_them_when_current(embedded, tmp_path):
    from fishtrack.experiment import run_experiment

    spec, frames, _ = embedded
    pts, fish, t_n = _truth_points(frames)
    from movement.io import save_poses

    keep = 250 * 20  # 20 s
    kps = ["head"] + [f"tail_{i}" for i in range(1, N)]
    ds = _movement_ds(pts[:keep].transpose(0, 2, 1, 3),  # (T, K, F, 2)
                      np.full((keep, N, 2), 0.99), kps=kps, individuals=fish, fps=250.0)
    save_poses.to_dlc_file(ds, tmp_path / "plate.csv", split_individuals=False)
    root = tmp_path / "exp"
    for name in ("day1", "day2"):
        r = _cli("import", tmp_path / "plate.csv", "--from", "dlc", "--fps", 250, "--layout",
                 "embedded", "--out", root / name)
        assert r.exit_code == 0, r.output
    (root / "manifest.csv").write_text(
        "video,arena,group\nday1,A1,control\nday1,A2,ketamine\nday2,A1,control\nday2,A2,ketamine\n")
    cfg = sim_config(spec)
    cfg["protocol"] = [{"name": "closed", "kind": "closed_loop", "start_s": 0, "end_s": 8},
                       {"name": "open", "kind": "open_loop", "start_s": 8, "end_s": 20}]
    res = run_experiment(root / "manifest.csv", cfg, tmp_path / "out", report=False)
    assert res.ok, res.failures
    assert res.trials["status"].tolist() == ["done", "done"]
    trial = tmp_path / "out" / "trials" / "day1"
    scored = read_table(trial / "tracks.parquet")
    assert {"state", "in_bout", "phase"} <= set(scored.columns)
    assert len(pd.read_csv(trial / "bouts.csv")) > 5
    prov = json.loads((trial / "provenance.json").read_text())
    assert prov["source"] == "import" and prov["import"]["trial_folder"] == str(root / "day1")
    assert prov["import"]["source_input"]["name"] == "plate.csv"
    assert len(res.per_fish) > 0 and set(res.per_fish["group"]) == {"control", "ketamine"}
    again = run_experiment(root / "manifest.csv", cfg, tmp_path / "out", report=False)
    assert again.trials["status"].tolist() == ["skipped", "skipped"]
    assert prov["input"]["sha256_content"] and "sha256_listing" not in prov["input"]
    # fishtrack verify on the experiment: every imported trial checked against its folder
    r = _cli("verify", tmp_path / "out")
    assert r.exit_code == 0 and "experiment folder matches its provenance" in r.output, r.output
    # the imported folder changes with the same file names and sizes: noticed by content
    p2 = root / "day2" / "provenance.json"
    text = p2.read_text()
    p2.write_text(text.replace('"DeepLabCut"', '"DeepLabCuT"', 1))
    assert len(p2.read_text()) == len(text)
    r = _cli("verify", tmp_path / "out")
    assert r.exit_code == 8 and "trials/day2: input video" in r.output
    assert "SHA-256 of the imported tracks" in r.output and "trials/day1" not in r.output
    third = run_experiment(root / "manifest.csv", cfg, tmp_path / "out", report=False)
    assert third.trials["status"].tolist() == ["skipped", "done"]  # re-classified
    assert _cli("verify", tmp_path / "out").exit_code == 0


# --------------------------------------------------------------------------------------------
# errors: one line, naming the file and the problem


def test_cli_errors_are_one_line(tmp_path):
    from movement.io import save_poses

    path = tmp_path / "fish.csv"
    save_poses.to_dlc_file(_movement_ds(_bent_fish(), np.ones((6, 6))), path,
                           split_individuals=False)
    cases = [
        (("--from", "ethovision", "--fps", 30), 2, "unknown source"),
        (("--from", "dlc"), 2, "give --fps"),
        (("--from", "dlc", "--fps", -3), 2, "--fps"),
        (("--from", "dlc", "--fps", 30, "--layout", "plate"), 2, "--layout"),
        (("--from", "zebrazoom", "--fps", 30), 1, "ZebraZoom results are"),
    ]
    for args, code, text in cases:
        r = _cli("import", path, *args, "--out", tmp_path / "t")
        assert r.exit_code == code, (args, r.output)
        assert text in r.output and len(r.output.strip().splitlines()) == 1, r.output
    r = _cli("import", tmp_path / "missing.h5", "--from", "dlc", "--fps", 30, "--out", tmp_path / "t")
    assert r.exit_code == 1 and "missing.h5: file not found" in r.output
    assert _cli("import", path, "--from", "dlc", "--fps", 30, "--out", tmp_path / "t").exit_code == 0
    r = _cli("import", path, "--from", "dlc", "--fps", 30, "--out", tmp_path / "t")
    assert r.exit_code == 7 and "--force" in r.output
    assert _cli("import", path, "--from", "dlc", "--fps", 60, "--out", tmp_path / "t",
                "--force").exit_code == 0
    assert json.loads((tmp_path / "t" / "provenance.json").read_text())["import"]["fps"] == 60


def test_sleap_labels_slp_file(tmp_path):
    import sleap_io as sio

    skel = sio.Skeleton(nodes=["head", "tail_1", "tail_2"])
    video = sio.Video(filename="larva.mp4", open_backend=False)
    track = sio.Track(name="larva")
    frames = []
    for t in range(5):
        pts = np.array([[100.0 + t, 50], [90 + t, 50], [80 + t, 50 + t]])  # tip moves down
        scores = np.array([0.9, 0.9, 0.2 if t == 2 else 0.9])
        inst = sio.PredictedInstance.from_numpy(points_data=pts, point_scores=scores, score=1.0,
                                                skeleton=skel, track=track)
        frames.append(sio.LabeledFrame(video=video, frame_idx=t, instances=[inst]))
    sio.save_slp(sio.Labels(labeled_frames=frames, videos=[video], skeletons=[skel],
                            tracks=[track]), tmp_path / "larva.slp")
    t, info = load_tracks(tmp_path / "larva.slp", "sleap", ImportOptions(fps=100))
    assert info["individuals"] == {"A1": "larva"}
    np.testing.assert_allclose(t["x"], 100 + np.arange(5))
    assert np.isnan(t.loc[2, "tail_angle"])
    ta = t["tail_angle"].to_numpy()[[0, 1, 3, 4]]
    # tip moved down (y grows) behind a fish facing +x: counter-clockwise on screen, negative
    assert ta[0] == pytest.approx(0, abs=1e-6) and (np.diff(ta) < 0).all()
