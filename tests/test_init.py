"""``fishtrack init``: from a folder of videos to config.yaml, manifest.csv and previews, then
``fishtrack run``; and ``make demo``'s last line.

The layouts found are checked against what produced the recordings: the sample videos' own
configs and ``truth_arenas.csv`` (a 24-well plate and four head-embedded larvae), and
simulated recordings (``fishtrack.synth``) of known layouts and fish counts.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from fishtrack.cli import app
from fishtrack.config import load_config

pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_videos"
SHARED = ROOT.parent / "shared" / "videos"


def _cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _fill_groups(manifest: Path, groups: dict[tuple[str, str], str]) -> pd.DataFrame:
    """Fill the group column as a lab tech would (by video file name and well); rows not in
    ``groups`` are excluded."""
    m = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    for i, r in m.iterrows():
        g = groups.get((Path(r["video"]).name, r["arena"]))
        m.loc[i, "group"] = g or "control"
        m.loc[i, "exclude"] = "" if g else "empty well"
    m.to_csv(manifest, index=False)
    return m


# --------------------------------------------------------------------------------------------
# the sample videos: a 24-well plate and four head-embedded larvae


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    out = tmp_path_factory.mktemp("init_samples")
    r = _cli("init", SAMPLES, "--out", out, "--phases", "closed_loop=10,open_loop=40")
    return out, r


def test_init_finds_the_two_sample_set_ups(samples):
    out, r = samples
    assert r.exit_code == 0, r.output
    assert "2 set-ups" in r.output
    assert "24-well plate (4 x 6, round wells), one fish per well" in r.output
    assert "4 head-embedded larvae (2 x 2 ROIs)" in r.output
    assert sorted(p.name for p in out.iterdir()) == [
        "arenas_embedded2x2.png", "arenas_plate24.png", "config.yaml", "config_embedded2x2.yaml",
        "config_plate24.yaml", "manifest.csv"]
    # each set-up's layout is the one the sample was made with
    for setup, sample in (("plate24", "plate24"), ("embedded2x2", "embedded")):
        got = load_config(out / f"config_{setup}.yaml")
        want = load_config(SAMPLES / sample / "config.yaml")
        for key in ("layout", "rows", "cols", "fish_per_arena"):
            assert getattr(got.arenas, key) == getattr(want.arenas, key), (setup, key)
        assert [(p.kind, p.start_s, p.end_s) for p in got.protocol] == [
            ("closed_loop", 0, 10), ("open_loop", 10, 50)]
    assert load_config(out / "config_plate24.yaml").arenas.shape == "circle"
    assert load_config(out / "config.yaml").stats.reference_group == "control"
    # one row per video x arena: every well / ROI of the truth, video paths absolute (the
    # videos are not below the manifest's folder), the group left to fill
    m = pd.read_csv(out / "manifest.csv", dtype=str, keep_default_na=False)
    assert list(m.columns) == ["video", "arena", "group", "exclude", "config"]
    assert (m["group"] == "").all()
    for sample, setup in (("plate24", "plate24"), ("embedded", "embedded2x2")):
        video = (SAMPLES / sample / f"{sample}.mp4").as_posix()
        rows = m[m["video"] == video]
        truth = pd.read_csv(SAMPLES / sample / "truth_arenas.csv")
        assert rows["arena"].tolist() == truth["name"].tolist()
        assert set(rows["config"]) == {f"config_{setup}.yaml"}
        # the preview: the first frame with the arenas drawn on it
        img = cv2.imread(str(out / f"arenas_{setup}.png"))
        from fishtrack.io.video import open_video

        with open_video(video) as src:
            frame = src.read(0)
        assert img.shape[:2] == frame.shape
        drawn = np.abs(img.astype(int) - frame[..., None].astype(int)).max(axis=2) > 40
        assert 0.005 < drawn.mean() < 0.5
    # the next two commands, and the manifest refused until the groups are filled in
    lines = [ln.strip() for ln in r.output.splitlines()]
    cmds = [ln for ln in lines if ln.startswith("fishtrack ")]
    assert cmds == [f"fishtrack run {_shown(out / 'manifest.csv')} --config "
                    f"{_shown(out / 'config.yaml')} --out {_shown(out / 'results')}",
                    f"fishtrack verify {_shown(out / 'results')}"]
    run = _cli("run", out / "manifest.csv", "--config", out / "config.yaml", "--out", out / "x")
    assert run.exit_code == 6 and "28 problems" in run.output and "'group' is empty" in run.output


def _shown(p: Path) -> str:
    try:
        return p.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return p.as_posix()


@pytest.mark.slow
def test_sample_set_ups_run_once_the_groups_are_filled(samples, tmp_path):
    src, r = samples
    assert r.exit_code == 0, r.output
    out = tmp_path / "exp"
    shutil.copytree(src, out)
    truth = pd.read_csv(SAMPLES / "manifest.csv")
    groups = {(Path(v).name, a): g for v, a, g in zip(truth["video"], truth["arena"],
                                                      truth["group"], strict=True)}
    m = _fill_groups(out / "manifest.csv", groups)
    assert (m["exclude"] == "empty well").sum() == 1  # A6 of the plate is empty
    res = out / "results"
    run = _cli("run", out / "manifest.csv", "--config", out / "config.yaml", "--out", res,
               "--workers", 2)
    assert run.exit_code == 0, run.output
    per_fish = pd.read_csv(res / "per_fish.csv")
    analysed = per_fish[~per_fish["exclude"]]
    # 23 plate larvae (A6 is empty) + 4 embedded; B2 and C5 never move and are excluded by
    # the no-swimming QC, no other fish is
    assert analysed["fish_id"].nunique() == 27 - 2 and set(analysed["group"]) == {"control", "ketamine"}
    still = per_fish[per_fish["qc_no_swimming"]]
    assert set(still["fish_id"]) == {"plate24:B2", "plate24:C5"}
    assert still["exclude_reason"].str.contains("qc_no_swimming").all()
    assert (res / "report.html").exists() and len(pd.read_csv(res / "group_stats.csv"))
    assert _cli("verify", res).exit_code == 0


# --------------------------------------------------------------------------------------------
# a folder mixing two set-ups


def _simulate(root: Path, name: str, **kw):
    from fishtrack.synth import SimSpec, simulate

    spec = SimSpec(name=name, fps=25, duration_s=6, fish_length_px=24, n_dust=5, **kw)
    res = simulate(spec, root / "sim" / name)
    video = root / "videos" / name
    video.parent.mkdir(parents=True, exist_ok=True)
    os.replace(res.video_path, video if res.video_path.is_dir() else
               video.with_suffix(res.video_path.suffix))
    return spec, pd.read_parquet(res.truth_path)


def test_init_on_a_folder_mixing_two_set_ups_then_run(tmp_path):
    """Two 6-well plates (one with a stimulus log next to it) and a chamber of three larvae
    recorded as a folder of PNG frames: two set-ups, then a real `fishtrack run`."""
    _simulate(tmp_path, "plate_mon", layout="wells", rows=2, cols=3, seed=1)
    _simulate(tmp_path, "plate_tue", layout="wells", rows=2, cols=3, seed=2)
    tank, tank_truth = _simulate(tmp_path, "tank", layout="chamber", fish_per_arena=3, seed=3,
                                 codec="png")
    videos = tmp_path / "videos"
    (videos / "plate_tue_protocol.csv").write_text("time_s,phase\n0,closed loop\n1.5,open loop\n"
                                                   "6,end\n", encoding="utf-8")
    (videos / "notes.txt").write_text("plate_tue: new batch\n", encoding="utf-8")
    out = tmp_path / "analysis"
    r = _cli("init", videos, "--out", out, "--phases", "closed_loop=2,open_loop=4", "--fps", 25)
    assert r.exit_code == 0, r.output
    # --phases applies to every video: the stimulus log is used only without it
    assert "protocol" not in pd.read_csv(out / "manifest.csv").columns
    r = _cli("init", videos, "--out", out, "--fps", 25)
    assert r.exit_code == 7 and "manifest.csv already exists; use --force" not in r.output
    assert "config.yaml already exists; use --force" in r.output
    assert len(r.output.strip().splitlines()) == 1
    r = _cli("init", videos, "--out", out, "--fps", 25, "--force")
    assert r.exit_code == 0, r.output
    assert "2 set-ups" in r.output and "one chamber with 3 fish" in r.output
    assert "6-well plate (2 x 3, round wells)" in r.output
    tank_cfg = load_config(out / "config_chamber3fish.yaml")
    assert tank_cfg.arenas.layout == "chamber" and tank_cfg.arenas.fish_per_arena == 3
    assert tank_cfg.video.fps == 25  # PNG frames store no rate
    plate_cfg = load_config(out / "config_plate6.yaml")
    assert (plate_cfg.arenas.rows, plate_cfg.arenas.cols) == (2, 3) and plate_cfg.video.fps is None
    assert "warning: set-up 'plate6': the protocol (closed_loop_1 0-120 s" in r.output  # preset
    m = pd.read_csv(out / "manifest.csv", dtype=str, keep_default_na=False)
    assert m["video"].tolist() == [(videos / v).as_posix() for v in
                                   ["plate_mon.mp4"] * 6 + ["plate_tue.mp4"] * 6 + ["tank"]]
    assert m["protocol"].tolist() == [""] * 6 + [(videos / "plate_tue_protocol.csv").as_posix()] * 6 \
        + [""]
    # fill the groups, give the plates' protocol, run
    _fill_groups(out / "manifest.csv", {(v, a): g for v in ("plate_mon.mp4", "plate_tue.mp4")
                                         for a, g in zip(["A1", "A2", "A3", "B1", "B2", "B3"],
                                                         ["control", "control", "ketamine"] * 2,
                                                         strict=True)} | {("tank", "A1"): "control"})
    for name in ("config_plate6.yaml", "config.yaml"):
        text = (out / name).read_text()
        data = yaml.safe_load(text)
        data["protocol"] = [{"name": "closed", "kind": "closed_loop", "start_s": 0, "end_s": 2},
                            {"name": "open", "kind": "open_loop", "start_s": 2, "end_s": 6}]
        (out / name).write_text(yaml.safe_dump(data))
    res = out / "results"
    run = _cli("run", out / "manifest.csv", "--config", out / "config.yaml", "--out", res)
    assert run.exit_code == 0, run.output
    per_fish = pd.read_csv(res / "per_fish.csv")
    fish = per_fish.groupby("trial_dir")["fish"].nunique().to_dict()
    assert fish == {"plate_mon": 6, "plate_tue": 6, "tank": tank.fish_per_arena}
    import json

    prov = json.loads((res / "trials" / "plate_tue" / "provenance.json").read_text())
    assert [p["name"] for p in prov["config"]["protocol"]] == ["closed loop", "open loop"]
    assert _cli("verify", res).exit_code == 0
    assert set(tank_truth["fish"]) == set(per_fish.loc[per_fish["trial_dir"] == "tank", "fish"])


def test_find_recordings_every_format_and_nothing_else(tmp_path):
    """Video files, TIFF stacks and folders of >= 10 images are recordings; single images,
    hidden files, the wizard's previews and fishtrack's output folders are not."""
    import tifffile

    from fishtrack.wizard import find_recordings

    d = tmp_path / "data"
    frames = (np.random.default_rng(0).random((12, 32, 40)) * 255).astype(np.uint8)
    (d / "day1").mkdir(parents=True)
    (d / "day1" / "b.AVI").write_bytes(b"x")
    (d / "day1" / "a.mp4").write_bytes(b"x")
    tifffile.imwrite(d / "stack.tif", frames)
    tifffile.imwrite(d / "snapshot.tif", frames[0])  # one page: an image, not a recording
    (d / "frames").mkdir()
    for i, f in enumerate(frames):
        cv2.imwrite(str(d / "frames" / f"img_{i}.png"), f)
    (d / "few").mkdir()
    for i in range(3):
        cv2.imwrite(str(d / "few" / f"img_{i}.png"), frames[i])
    (d / ".hidden.mp4").write_bytes(b"x")
    (d / "arenas_plate24.png").write_bytes(b"x")
    (d / "results" / "trials" / "a").mkdir(parents=True)
    (d / "results" / "experiment.json").write_text("{}")
    (d / "results" / "trials" / "a" / "preview.mp4").write_bytes(b"x")
    assert [p.relative_to(d).as_posix() for p in find_recordings(d)] == [
        "day1/a.mp4", "day1/b.AVI", "frames", "stack.tif"]


def test_init_errors_are_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    r = _cli("init", tmp_path / "empty", "--out", tmp_path / "o")
    assert r.exit_code == 1 and "no recordings found" in r.output
    r = _cli("init", tmp_path / "nope", "--out", tmp_path / "o")
    assert r.exit_code == 1 and "not a folder" in r.output
    (tmp_path / "empty" / "broken.avi").write_bytes(b"not a video" * 100)
    r = _cli("init", tmp_path / "empty", "--out", tmp_path / "o")
    assert r.exit_code == 1 and "none of the 1 recording(s) could be read" in r.output
    for bad in ("open_loop", "closed_loop=-3", "sleep=10", "closed_loop=ten"):
        r = _cli("init", tmp_path / "empty", "--out", tmp_path / "o", "--phases", bad)
        assert r.exit_code == 2 and "expected KIND=SECONDS" in r.output, (bad, r.output)
    (tmp_path / "file").write_text("x")
    r = _cli("init", tmp_path / "empty", "--out", tmp_path / "file")
    assert r.exit_code == 7 and "must be a folder" in r.output
    for res in (r,):
        assert len(res.output.strip().splitlines()) == 1 and "Traceback" not in res.output
    assert not (tmp_path / "o").exists()


@pytest.mark.realvideo
@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/videos absent")
@pytest.mark.parametrize(("name", "want"), [
    ("head_embedded_stytra.avi", ("embedded", 1, 1, 1)),
    ("eight_fish_tank_idtrackerai.avi", ("chamber", 1, 1, 8)),
])
def test_layout_proposed_for_real_recordings(name, want):
    from fishtrack.io.video import open_video
    from fishtrack.tracking import estimate_background
    from fishtrack.wizard import propose_layout

    with open_video(SHARED / name) as src:
        lay = propose_layout(estimate_background(src))
    assert (lay.layout, lay.rows, lay.cols, lay.fish_per_arena) == want


# --------------------------------------------------------------------------------------------
# make demo: the result in one line


def test_demo_ends_with_the_primary_endpoint_in_one_line(tmp_path):
    from fixtures_experiment import fake_arenas, fake_trial, plate_experiment

    from fishtrack.demo import primary_endpoint, result_line
    from fishtrack.experiment import run_experiment

    e = plate_experiment(tmp_path / "in")
    res = run_experiment(e["manifest"], e["config"], tmp_path / "out", trial_fn=fake_trial,
                         arenas_fn=fake_arenas, report=False)
    row = primary_endpoint(tmp_path / "out" / "group_stats.csv").iloc[0]
    assert (row["metric"], row["phase"], row["group"]) == ("passive_fraction", "open_loop", "ketamine")
    # the estimate is the difference of the groups' mean open-loop passive fractions, within
    # the manifest's clutches (a block column: docs/assay_analyses.md)
    from fixtures_experiment import block_adjusted_diff

    man = pd.read_csv(e["manifest"])
    fid = man["video"].map(lambda v: Path(v).stem) + ":" + man["arena"]
    man = man.set_index(fid)
    diff = block_adjusted_diff(e["truth"], man["group"].to_dict(), man["clutch"].to_dict())
    assert row["diff"] == pytest.approx(diff)
    line = result_line(res.group_stats, tmp_path / "out" / "report.html")
    assert "\n" not in line
    assert line == (f"open-loop passive fraction: ketamine - control = {row['diff']:.3f} "
                    f"(95% CI {row['ci_low']:.3f} to {row['ci_high']:.3f}, "
                    f"p = {row['p_value']:.3f}, n = {int(row['n'])} vs {int(row['n_reference'])}); "
                    f"report: {tmp_path / 'out' / 'report.html'}")
    assert result_line(res.group_stats.iloc[0:0]).endswith("no group comparison")
