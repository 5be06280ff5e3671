"""`fishtrack export`: movement (netCDF), NWB (ndx-pose) and CSV exports of a real trial folder.

The trial folder comes from the real pipeline on a small simulated video (2 wells, 5 s, 50 fps).
Each export is read back with the other tool's own reader (xarray + movement's validator,
pynwb + ndx-pose) and compared with the tables the pipeline wrote. A second trial folder, edited
by the test, holds the cases the tracker produces rarely in 5 s: undetected frames, midlines
kept but not trusted (tail angle unknown) and heads found without a midline.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from fishtrack.cli import app
from fishtrack.export import export_trial, from_movement, keypoint_names
from fishtrack.io.tables import read_table, write_table
from fishtrack.pipeline import resolve_config, track_to_folder
from fishtrack.synth import SimSpec, simulate

pytestmark = pytest.mark.timeout(120)

N_TAIL = 10  # tracking.n_tail_points default


def _wrap(a):
    return np.angle(np.exp(1j * np.asarray(a, dtype=np.float64)))


@pytest.fixture(scope="module")
def trial(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    spec = SimSpec(name="wells", layout="wells", rows=1, cols=2, duration_s=5, fps=50, seed=3)
    sim = simulate(spec, root / "sim")
    out = root / "trial"
    track_to_folder(sim.video_path, sim.out_dir / "config.yaml", out)
    tracks = read_table(out / "tracks.parquet")
    assert tracks["detected"].mean() > 0.95 and len(pd.read_csv(out / "bouts.csv")) > 0
    return {"dir": out, "config": sim.out_dir / "config.yaml", "tracks": tracks,
            "bouts": pd.read_csv(out / "bouts.csv"), "epochs": pd.read_csv(out / "epochs.csv"),
            "prov": json.loads((out / "provenance.json").read_text())}


@pytest.fixture(scope="module")
def edited(trial, tmp_path_factory):
    """The trial with rows the way the tracker writes them when a fish is lost (all NaN,
    detected False), when its midline runs over another fish (midline kept, tail angle and
    curvature NaN) and when no midline could be traced (head only, heading from the blob)."""
    d = tmp_path_factory.mktemp("edited") / "trial"
    shutil.copytree(trial["dir"], d)
    t = trial["tracks"].copy()
    rng = np.random.default_rng(0)
    rows = rng.permutation(len(t))
    lost, crossed, no_mid = rows[:30], rows[30:60], rows[60:80]
    pos_cols = ["x", "y", "heading", "tail_angle", "tail_curvature"] + \
        [f"tail_{a}_{i}" for a in "xy" for i in range(N_TAIL)]
    t.loc[t.index[lost], pos_cols] = np.nan
    t.loc[t.index[lost], "detected"] = False
    t.loc[t.index[crossed], ["tail_angle", "tail_curvature"]] = np.nan
    t.loc[t.index[no_mid], [f"tail_{a}_{i}" for a in "xy" for i in range(1, N_TAIL)]] = np.nan
    t.loc[t.index[no_mid], ["tail_angle", "tail_curvature"]] = np.nan
    write_table(t, d / "tracks.parquet")
    return {"dir": d, "tracks": t, "lost": t.index[lost], "crossed": t.index[crossed],
            "no_mid": t.index[no_mid]}


def _assert_same_tracks(back: pd.DataFrame, tracks: pd.DataFrame, *, angle_tol: float = 1e-5):
    """``back`` (re-imported) against the original tracks: identity, time and points exactly,
    angles within ``angle_tol`` rad (re-derived from float32 points), NaN where NaN."""
    back = back.sort_values(["frame", "fish"]).reset_index(drop=True)
    tracks = tracks.sort_values(["frame", "fish"]).reset_index(drop=True)
    assert len(back) == len(tracks)
    for c in ("frame", "fish", "arena", "detected"):
        assert (back[c].to_numpy() == tracks[c].to_numpy()).all(), c
    np.testing.assert_array_equal(back["time_s"], tracks["time_s"])
    for c in ["x", "y"] + [f"tail_{a}_{i}" for a in "xy" for i in range(N_TAIL)]:
        np.testing.assert_array_equal(back[c].to_numpy(np.float32), tracks[c].to_numpy(np.float32),
                                      err_msg=c)
    for c in ("heading", "tail_angle", "tail_curvature"):
        a, b = back[c].to_numpy(np.float64), tracks[c].to_numpy(np.float64)
        both = np.isfinite(a) & np.isfinite(b)
        err = np.abs(_wrap(a[both] - b[both])) if c != "tail_curvature" else np.abs(a - b)[both]
        assert err.max() < angle_tol, (c, err.max())
    return back, tracks


# --------------------------------------------------------------------------------------------
# movement


def test_movement_export_is_a_movement_dataset_with_the_tracks_values(trial, tmp_path):
    import xarray as xr
    from movement.io import save_poses
    from movement.validators.datasets import ValidPosesInputs

    path = export_trial(trial["dir"], "movement", tmp_path / "poses.nc")
    assert path == tmp_path / "poses.nc"
    with xr.open_dataset(path) as ds:  # movement's own way to open its netCDF files
        ds = ds.load()
    ValidPosesInputs.validate(ds)
    assert ds.attrs["ds_type"] == "poses" and ds.attrs["source_software"] == "fishtrack"
    assert ds.attrs["time_unit"] == "seconds"
    assert ds.attrs["fps"] == pytest.approx(trial["prov"]["video"]["fps"])
    kps = keypoint_names(N_TAIL)
    assert list(ds["keypoints"].values) == kps == ["head"] + [f"tail_{i}" for i in range(1, 10)]
    assert list(ds["space"].values) == ["x", "y"]
    t = trial["tracks"]
    assert list(ds["individuals"].values) == list(pd.unique(t["fish"]))
    assert ds["position"].dtype == np.float32

    for fish, sub in t.groupby("fish"):
        sub = sub.sort_values("frame")
        one = ds.sel(individuals=fish)
        np.testing.assert_array_equal(one["frame"].values, sub["frame"].to_numpy())
        np.testing.assert_array_equal(one["time"].values, sub["time_s"].to_numpy())
        assert str(one["arena"].values) == sub["arena"].iloc[0]
        pos = one["position"]
        np.testing.assert_array_equal(pos.sel(keypoints="head", space="x").values, sub["x"])
        np.testing.assert_array_equal(pos.sel(keypoints="head", space="y").values, sub["y"])
        for i in range(1, N_TAIL):
            np.testing.assert_array_equal(pos.sel(keypoints=f"tail_{i}", space="x").values,
                                          sub[f"tail_x_{i}"])
            np.testing.assert_array_equal(pos.sel(keypoints=f"tail_{i}", space="y").values,
                                          sub[f"tail_y_{i}"])
        conf = one["confidence"].sel(keypoints="head").values
        np.testing.assert_array_equal(conf, np.where(sub["detected"], 1.0, np.nan))

    # movement's own tools accept it: its DeepLabCut-style table has the same head x
    dlc = save_poses.to_dlc_style_df(ds, split_individuals=False)
    fish0 = str(ds["individuals"].values[0])
    head_x = dlc.xs(("head", "x"), level=("bodyparts", "coords"), axis=1)
    head_x = head_x.xs(fish0, axis=1, level="individuals")
    sub = t[t["fish"] == fish0].sort_values("frame")
    np.testing.assert_allclose(head_x.to_numpy().ravel(), sub["x"].to_numpy(), rtol=0, atol=0)


def test_movement_round_trip_gives_back_the_tracks(trial, tmp_path):
    path = export_trial(trial["dir"], "movement", tmp_path / "poses.nc")
    back = from_movement(path)
    cols = ["frame", "time_s", "arena", "fish", "x", "y", "heading", "tail_angle",
            "tail_curvature", "detected"]
    assert list(back.columns[: len(cols)]) == cols
    # heading and tail angle re-derived from the float32 midline exactly as the tracker does
    _assert_same_tracks(back, trial["tracks"], angle_tol=1e-5)
    assert back[["heading", "tail_angle"]].notna().all().all()


def test_movement_round_trip_keeps_lost_fish_and_untrusted_tails(edited, tmp_path):
    path = export_trial(edited["dir"], "movement", tmp_path / "poses.nc")
    import xarray as xr

    with xr.open_dataset(path) as ds:
        conf = ds["confidence"].load()
    t = edited["tracks"]
    ti = np.searchsorted(np.unique(t["frame"]), t["frame"])
    fi = pd.Categorical(t["fish"], categories=list(pd.unique(t["fish"]))).codes
    tail_conf = conf.values[ti, 1, fi]
    assert np.isnan(tail_conf[edited["lost"]]).all()
    assert (tail_conf[edited["crossed"]] == 0).all() and (tail_conf[edited["no_mid"]] == 0).all()

    back = from_movement(path).sort_values(["frame", "fish"]).reset_index(drop=True)
    t = t.sort_values(["frame", "fish"])
    key = t[["frame", "fish"]].reset_index(drop=True)
    pos = {i: k for k, i in enumerate(t.index)}  # original row -> sorted position
    lost = [pos[i] for i in edited["lost"]]
    crossed = [pos[i] for i in edited["crossed"]]
    no_mid = [pos[i] for i in edited["no_mid"]]
    assert (back[["frame", "fish"]] == key).all().all()
    assert not back.loc[lost, "detected"].any()
    assert back.loc[lost, ["x", "heading"]].isna().all().all()
    # a midline kept for display but not trusted: heading known, tail angle unknown, as tracked
    assert back.loc[crossed, "tail_angle"].isna().all()
    np.testing.assert_allclose(_wrap(back.loc[crossed, "heading"] - t["heading"].iloc[crossed]), 0,
                               atol=1e-5)
    # no midline at all: the tracker's blob-direction heading cannot be re-derived (documented)
    assert back.loc[no_mid, "detected"].all() and back.loc[no_mid, "heading"].isna().all()
    rest = np.setdiff1d(np.arange(len(t)), no_mid)
    _assert_same_tracks(back.iloc[rest], t.iloc[rest])


def test_round_trip_tracks_score_the_same_bouts_and_states(trial, tmp_path):
    from fishtrack.behaviour import classify

    path = export_trial(trial["dir"], "movement", tmp_path / "poses.nc")
    cfg = resolve_config(trial["config"])
    res = classify(from_movement(path), cfg.behaviour, cfg.protocol)
    cols = ["fish", "start_frame", "end_frame"]
    assert res.bouts[cols].values.tolist() == trial["bouts"][cols].values.tolist()
    merged = res.tracks.merge(trial["tracks"], on=["frame", "fish"], suffixes=("", "_orig"))
    assert (merged["state"] == merged["state_orig"]).all()


def test_from_movement_rejects_other_files_with_one_line(tmp_path, trial):
    import xarray as xr

    missing = tmp_path / "nope.nc"
    with pytest.raises(Exception, match="nope.nc: file not found"):
        from_movement(missing)
    junk = tmp_path / "junk.nc"
    junk.write_text("not netcdf")
    with pytest.raises(Exception, match="junk.nc: cannot read as a movement netCDF file") as err:
        from_movement(junk)
    assert "\n" not in str(err.value)
    ds = xr.Dataset({"a": ("t", np.arange(3.0))})
    with pytest.raises(Exception, match="not a movement poses dataset"):
        from_movement(ds)


# --------------------------------------------------------------------------------------------
# NWB


def test_nwb_export_reads_back_with_pynwb_and_ndx_pose(trial, tmp_path):
    import ndx_pose  # noqa: F401 - registers the extension's types for reading
    from pynwb import NWBHDF5IO, validate

    path = export_trial(trial["dir"], "nwb", tmp_path / "trial.nwb")
    assert validate(path=str(path)) == []
    t, prov = trial["tracks"], trial["prov"]
    fish = list(pd.unique(t["fish"]))
    kps = keypoint_names(N_TAIL)
    with NWBHDF5IO(str(path), "r") as io:
        nwb = io.read()
        created = datetime.strptime(prov["created_utc"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        assert nwb.session_start_time == created
        assert len(nwb.identifier) == 64 and int(nwb.identifier, 16) >= 0
        assert prov["input"]["name"] in nwb.session_description
        behavior = nwb.processing["behavior"]
        skeletons = behavior["Skeletons"]
        for f in fish:
            sub = t[t["fish"] == f].sort_values("frame")
            pe = behavior[f"PoseEstimation_{f}"]
            assert pe.source_software == "fishtrack"
            assert list(pe.skeleton.nodes[:]) == kps
            assert pe.skeleton is skeletons[f"skeleton_{f}"]
            assert pe.skeleton.edges[:].tolist() == [[i, i + 1] for i in range(len(kps) - 1)]
            assert sorted(pe.pose_estimation_series) == sorted(kps)
            for k in kps:
                s = pe.pose_estimation_series[k]
                cx, cy = ("x", "y") if k == "head" else (f"tail_x_{k[5:]}", f"tail_y_{k[5:]}")
                np.testing.assert_array_equal(s.data[:, 0], sub[cx].to_numpy(np.float32))
                np.testing.assert_array_equal(s.data[:, 1], sub[cy].to_numpy(np.float32))
                np.testing.assert_array_equal(s.timestamps[:], sub["time_s"].to_numpy())
                np.testing.assert_array_equal(s.confidence[:],
                                              np.where(sub["detected"], 1.0, np.nan))
                assert s.unit == "pixels"
        for name, table in (("bouts", trial["bouts"]), ("state_epochs", trial["epochs"])):
            got = nwb.intervals[name].to_dataframe().reset_index(drop=True)
            assert len(got) == len(table) > 0
            np.testing.assert_array_equal(got["start_time"], table["start_s"])
            np.testing.assert_array_equal(got["stop_time"], table["end_s"])
            for c in table.columns:
                if c in ("start_s", "end_s"):
                    continue
                want = table[c].fillna("") if table[c].dtype == object else table[c]
                np.testing.assert_array_equal(got[c].to_numpy(), want.to_numpy(), err_msg=c)


# --------------------------------------------------------------------------------------------
# CSV


def test_csv_export_holds_the_three_tables(trial, tmp_path):
    out = export_trial(trial["dir"], "csv", tmp_path / "csv")
    assert sorted(p.name for p in out.iterdir()) == ["bouts.csv", "epochs.csv", "provenance.json",
                                                     "tracks.csv"]
    got = pd.read_csv(out / "tracks.csv", float_precision="round_trip")  # exact float64
    t = trial["tracks"]
    assert list(got.columns) == list(t.columns) and len(got) == len(t)
    for c in t.columns:
        if t[c].dtype == np.float32:
            np.testing.assert_array_equal(got[c].to_numpy(np.float32), t[c].to_numpy(), err_msg=c)
        elif t[c].dtype == object:
            assert (got[c].fillna("").astype(str) == t[c].fillna("").astype(str)).all(), c
        else:
            np.testing.assert_array_equal(got[c].to_numpy(), t[c].to_numpy(), err_msg=c)
    for name in ("bouts.csv", "epochs.csv", "provenance.json"):
        assert (out / name).read_bytes() == (trial["dir"] / name).read_bytes()


# --------------------------------------------------------------------------------------------
# CLI and errors


def _cli(*args):
    return CliRunner().invoke(app, ["export", *map(str, args)])


def test_cli_exports_to_the_default_place_and_refuses_to_overwrite(trial, tmp_path):
    d = tmp_path / "trial"
    shutil.copytree(trial["dir"], d)
    for fmt, rel in (("movement", "export/poses.nc"), ("nwb", "export/trial.nwb"),
                     ("csv", "export/csv")):
        res = _cli(d, "--to", fmt)
        assert res.exit_code == 0, res.output
        assert (d / rel).exists() and "exported" in res.output
        again = _cli(d, "--to", fmt)
        assert again.exit_code == 7, again.output
        assert "already" in again.output and "--force" in again.output
        assert len(again.output.strip().splitlines()) == 1
    (d / "export/poses.nc").write_bytes(b"stale")
    res = _cli(d, "--to", "movement", "--force")  # replaced, not refused
    assert res.exit_code == 0, res.output
    back = from_movement(d / "export/poses.nc")
    assert back["detected"].sum() == trial["tracks"]["detected"].sum()
    # nothing half-written left behind
    leftovers = [p for p in (d / "export").rglob("*")
                 if p.name.startswith(".") or ".part" in p.name]
    assert not leftovers


def test_cli_errors_are_one_line_naming_the_problem(trial, tmp_path):
    cases = [
        ((tmp_path / "missing", "--to", "csv"), 1, "missing: trial folder not found"),
        ((tmp_path, "--to", "csv"), 1, "no tracks.parquet"),
        ((trial["dir"], "--to", "parquet"), 2, "unknown export format"),
    ]
    for args, code, text in cases:
        res = _cli(*args)
        assert res.exit_code == code, res.output
        assert text in res.output and len(res.output.strip().splitlines()) == 1, res.output
    (tmp_path / "afile").write_text("x")
    res = _cli(trial["dir"], "--to", "csv", "--out", tmp_path / "afile")
    assert res.exit_code == 7 and "--out must be a folder" in res.output, res.output
    res = _cli(trial["dir"], "--to", "nwb", "--out", tmp_path)
    assert res.exit_code == 7 and "is a folder" in res.output, res.output


def test_export_libraries_are_imported_only_when_used():
    code = ("import sys, fishtrack, fishtrack.cli, fishtrack.export; "
            "heavy = ('movement', 'pynwb', 'ndx_pose', 'xarray'); "
            "print(sorted(m for m in heavy if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
