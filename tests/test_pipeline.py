"""The whole chain on simulated videos: `fishtrack track` (CLI and library) from pixels to
bouts and give-up epochs, checked against the simulator's ground truth.

Videos are H.264-compressed with camera noise and illumination flicker, 100 fps. Behaviour
targets (issue 4) from video, not from true tracks:

* frame state accuracy >= 97 % and Cohen's kappa >= 0.9 (frames the fish was seen in);
* bout F1 >= 0.95 with onsets within 50 ms;
* per-fish passive fraction in open-loop phases within 0.03 of the truth.

In a chamber, while a fish's midline runs over another fish the tail angle is unknown (the
tracker leaves it NaN rather than measure the wrong tail); bouts there cannot be seen. The
chamber test therefore scores bouts the fish was observed in, and checks that such blind
stretches are a minority and are never called passive or active by guesswork.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from fixtures_behaviour import f1, match_bouts
from typer.testing import CliRunner

import fishtrack
from fishtrack.behaviour.calibrate import cohen_kappa
from fishtrack.cli import app
from fishtrack.io.tables import read_table
from fishtrack.synth import SimSpec, simulate
from fishtrack.tracking import idf1

pytestmark = pytest.mark.timeout(300)

IMAGE = {"noise_sd": 3.0, "flicker": 0.03, "crf": 23}
TRACK_COLUMNS = ["frame", "time_s", "arena", "fish", "x", "y", "heading", "tail_angle",
                 "detected", "area_px", "state", "in_bout"]
BOUT_COLUMNS = ["fish", "arena", "start_frame", "end_frame", "start_s", "end_s", "duration_s",
                "n_beats", "beat_hz", "max_tail_angle", "vigour", "displacement_px"]
EPOCH_COLUMNS = ["fish", "arena", "state", "start_frame", "end_frame", "start_s", "end_s",
                 "duration_s", "phase", "censored"]


def _track_cli(sim, out, *extra) -> None:
    res = CliRunner().invoke(
        app, ["track", str(sim.video_path), "--config", str(sim.out_dir / "config.yaml"),
              "--out", str(out), *extra],
    )
    assert res.exit_code == 0, res.output


def _scores(sim, out, *, observed_only: bool = False) -> dict:
    tracks = read_table(out / "tracks.parquet")
    bouts = pd.read_csv(out / "bouts.csv")
    truth = sim.truth
    if sim.spec.fish_per_arena > 1:  # name tracked fish after the truth fish they follow
        mapping = idf1(truth, tracks, max_dist=0.25 * sim.spec.fish_length_px)["mapping"]
        tracks = tracks.assign(fish=tracks["fish"].map(mapping))
        bouts = bouts.assign(fish=bouts["fish"].map(mapping))
    m = truth.merge(tracks, on=["frame", "fish"], suffixes=("_t", ""))
    assert len(m) == len(truth)  # a row for every true fish-frame
    true_state = m["state_t"].astype(str)
    known = m["state"] != "unknown"
    acc = float((m.loc[known, "state"] == true_state[known]).mean())
    kappa = cohen_kappa(m.loc[known, "state"] == "passive", true_state[known] == "passive")
    truth_bouts = pd.read_csv(sim.out_dir / "truth_bouts.csv")
    if observed_only:
        # bouts (true and found alike) whose onset and most of whose frames the tracker saw
        # the tail in
        seen = m.set_index(["fish", "frame"])["tail_angle"].notna()

        def observed(table: pd.DataFrame) -> pd.DataFrame:
            ok = [seen.loc[b.fish].loc[b.start_frame - 3:b.start_frame + 3].all()
                  and seen.loc[b.fish].loc[b.start_frame:b.end_frame].mean() >= 0.9
                  for b in table.itertuples()]
            return table[np.array(ok, bool)]

        truth_bouts, bouts = observed(truth_bouts), observed(bouts)
    tp, fp, fn, err = match_bouts(truth_bouts, bouts, tol_s=0.05)
    open_loop = [p.name for p in sim.spec.phases() if p.kind == "open_loop"]
    d = m[m["phase"].isin(open_loop) & known]
    auto = d.groupby("fish")["state"].apply(lambda s: np.mean(s == "passive"))
    true = d.groupby("fish")["state_t"].apply(lambda s: np.mean(s.astype(str) == "passive"))
    return {"known": float(known.mean()), "acc": acc, "kappa": kappa, "f1": f1(tp, fp, fn),
            "pf_err": float(np.abs(auto - true).max()), "true_pf_max": float(true.max()),
            "n_bouts": len(truth_bouts)}


# --------------------------------------------------------------------------------------------
# the CLI's output contract


@pytest.fixture(scope="module")
def wells(tmp_path_factory):
    root = tmp_path_factory.mktemp("wells")
    spec = SimSpec(name="wells", layout="wells", rows=1, cols=2, duration_s=45, fps=100,
                   still_arenas=[], seed=11, **IMAGE)
    sim = simulate(spec, root / "sim")
    _track_cli(sim, root / "out", "--csv", "--preview", "3")
    return sim, root / "out"


def test_track_writes_the_documented_files_and_columns(wells):
    sim, out = wells
    tracks = read_table(out / "tracks.parquet")
    assert set(TRACK_COLUMNS) <= set(tracks.columns)
    assert {f"tail_x_{i}" for i in range(10)} <= set(tracks.columns)
    assert tracks.groupby("fish").size().eq(sim.n_frames).all()
    csv = pd.read_csv(out / "tracks.csv")
    assert len(csv) == len(tracks) and list(csv.columns) == list(tracks.columns)
    assert list(pd.read_csv(out / "bouts.csv").columns[: len(BOUT_COLUMNS)]) == BOUT_COLUMNS
    epochs = pd.read_csv(out / "epochs.csv")
    assert list(epochs.columns[: len(EPOCH_COLUMNS)]) == EPOCH_COLUMNS
    assert set(epochs["state"]) <= {"active", "passive", "unknown"}
    assert (out / "preview.png").stat().st_size > 10_000
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["fishtrack_version"] == fishtrack.__version__
    assert prov["input"]["name"] == sim.video_path.name
    assert prov["input"]["size_bytes"] == sim.video_path.stat().st_size
    assert len(prov["input"]["sha256_first_mib"]) == 64
    assert prov["frames_read"] == sim.n_frames
    assert prov["damaged_frames"] == []
    assert prov["config"]["arenas"]["layout"] == "wells"
    assert prov["timings_s"]["total"] > 0
    # no temporary files left behind
    assert not [p for p in out.iterdir() if p.name.startswith(".") or p.suffix == ".part"]


def test_library_track_returns_the_same_table(wells):
    sim, out = wells
    lib = fishtrack.track(sim.video_path, sim.out_dir / "config.yaml")
    cli = read_table(out / "tracks.parquet")
    pd.testing.assert_frame_equal(lib.reset_index(drop=True), cli.reset_index(drop=True))


# --------------------------------------------------------------------------------------------
# behaviour from pixels


def test_behaviour_targets_from_video_in_wells(wells):
    sim, out = wells
    s = _scores(sim, out)
    assert s["true_pf_max"] > 0.2, s  # the open loop does contain passivity
    assert s["known"] > 0.99, s
    assert s["acc"] >= 0.97 and s["kappa"] >= 0.9, s
    assert s["f1"] >= 0.95, s
    assert s["pf_err"] <= 0.03, s


def test_behaviour_targets_from_video_head_embedded(tmp_path):
    spec = SimSpec(name="embedded", layout="embedded", rows=1, cols=2, duration_s=45, fps=100,
                   polarity="bright", seed=12, **IMAGE)
    sim = simulate(spec, tmp_path / "sim")
    _track_cli(sim, tmp_path / "out")
    s = _scores(sim, tmp_path / "out")
    assert s["true_pf_max"] > 0.2 and s["known"] > 0.99, s
    assert s["acc"] >= 0.97 and s["kappa"] >= 0.9, s
    assert s["f1"] >= 0.95, s
    assert s["pf_err"] <= 0.03, s


def test_behaviour_targets_from_video_in_a_chamber(tmp_path):
    spec = SimSpec(name="chamber", layout="chamber", fish_per_arena=3, duration_s=45, fps=100,
                   seed=13, **IMAGE)
    sim = simulate(spec, tmp_path / "sim")
    _track_cli(sim, tmp_path / "out")
    s = _scores(sim, tmp_path / "out", observed_only=True)
    assert s["true_pf_max"] > 0.2, s
    assert s["known"] > 0.75, s  # blind while midlines overlap: a minority of frames
    assert s["acc"] >= 0.97 and s["kappa"] >= 0.9, s
    assert s["f1"] >= 0.95, s
    assert s["pf_err"] <= 0.05, s
