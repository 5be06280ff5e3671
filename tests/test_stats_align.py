"""Co-recorded signals (``fishtrack align``): a signal on its own clock (offset and drift)
with a known step at passivity onset is aligned by its camera-trigger pulses or by an offset,
its onset-locked average shows the step, bad files get one-line errors, and the NWB export
carries the aligned signal."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from fixtures_experiment import PROTOCOL, fake_trial, write_fake_video
from typer.testing import CliRunner

from fishtrack.align import align_signal, align_trial, read_signal, sync_pulses
from fishtrack.cli import app
from fishtrack.config import Config
from fishtrack.errors import FishtrackError

PASSIVE = {"A1": [(10.0, 14.0)], "A2": [(12.0, 17.0)], "B1": [(9.0, 12.5)], "B2": []}
OFFSET, SCALE = 3.0, 1.0002  # video = SCALE * signal + OFFSET


@pytest.fixture(scope="module")
def trial(tmp_path_factory):
    root = tmp_path_factory.mktemp("align")
    video = write_fake_video(root / "plate.mp4", PASSIVE)
    cfg = Config(protocol=PROTOCOL)
    out = root / "trial"
    out.mkdir()
    fake_trial(video, cfg, out)
    return out


def _signal_file(path, *, sync=True, drop_time=False):
    """Wide file: one dF/F column per well (1 + 2 while passive) and a TTL column with a
    5 ms pulse at every video frame (10 fps), sampled at 500 Hz on the signal's clock."""
    ts = np.arange(-5.0, 25.0, 0.002)  # signal clock
    tv = SCALE * ts + OFFSET  # the same instants on the video clock
    data = {"time": ts}
    for arena, ivs in PASSIVE.items():
        val = np.ones_like(ts)
        for a, b in ivs:
            val[(tv >= a) & (tv < b)] += 2.0
        data[arena] = val
    if sync:
        frames = np.arange(200) / 10.0
        ttl = np.zeros_like(ts)
        for f in frames:  # the pulse begins at the frame time (video clock)
            ttl[(tv >= f) & (tv < f + 0.005)] = 5.0
        data["ttl"] = ttl
    df = pd.DataFrame(data)
    if drop_time:
        df = df.rename(columns={"time": "when"})
    df.to_csv(path, index=False)
    return path


def test_sync_pulses_recover_offset_and_drift(trial, tmp_path):
    res = align_trial(trial, _signal_file(tmp_path / "dff.csv"), sync_column="ttl")
    al = res.alignment
    assert al.method == "one sync pulse per video frame" and al.n_pulses == 200
    assert al.scale == pytest.approx(SCALE, abs=2e-5)
    assert al.offset_s == pytest.approx(OFFSET, abs=0.003)
    assert al.max_residual_s < 0.003  # one sample (2 ms) of the signal
    aligned = pd.read_csv(res.paths["aligned"])
    assert set(aligned.columns) >= {"time_s", "signal_time_s", "arena", "dff"}
    assert "ttl" not in aligned.columns and sorted(aligned["arena"].unique()) == sorted(PASSIVE)
    # the onset-locked average shows the step of 2 at every give-up onset
    locked = pd.read_csv(res.paths["locked"])
    dff = locked[(locked["event"] == "give-up onset") & (locked["signal"] == "signal:dff")]
    w = dff[dff["window"] != "bin"].set_index(["fish_id", "window"])["value"]
    for fish in ("A1", "A2", "B1"):
        assert w[(fish, "after")] - w[(fish, "before")] == pytest.approx(
            2.0 * min(PASSIVE[fish][0][1] - PASSIVE[fish][0][0], 10.0) / 10.0, abs=0.01)
    groups = pd.read_csv(res.paths["locked_groups"])
    assert set(groups["signal"]) >= {"bout_rate_hz", "signal:dff"}
    assert res.paths["figure"].stat().st_size > 10_000 and res.paths["figure_svg"].exists()
    meta = json.loads(res.paths["alignment"].read_text())
    assert meta["method"] == al.method and meta["sync_column"] == "ttl"


def test_offset_alignment_and_cli(trial, tmp_path):
    path = _signal_file(tmp_path / "sig.csv", sync=False)
    r = CliRunner().invoke(app, ["align", str(trial), "--signal", str(path), "--offset",
                                 str(OFFSET)])
    assert r.exit_code == 0, r.output
    assert "aligned" in r.output and "offset 3 s" in r.output
    aligned = pd.read_csv(trial / "align" / "aligned_sig.csv")
    assert aligned["time_s"].iloc[0] == pytest.approx(-5.0 + OFFSET)


def test_bad_signal_files_get_one_line_errors(trial, tmp_path):
    no_time = _signal_file(tmp_path / "no_time.csv", drop_time=True)
    with pytest.raises(FishtrackError, match="no_time.csv: no time column"):
        read_signal(no_time)
    r = CliRunner().invoke(app, ["align", str(trial), "--signal", str(no_time), "--offset", "0"])
    assert r.exit_code == 1 and "no time column" in r.output and "Traceback" not in r.output
    sig = read_signal(_signal_file(tmp_path / "ok.csv"))
    frames = np.arange(200) / 10.0
    with pytest.raises(FishtrackError, match="no overlap with the video's time range"):
        align_signal(sig, source="ok.csv", offset_s=1000.0, frame_times=frames)
    flat = sig.assign(ttl=0.0)
    with pytest.raises(FishtrackError, match="sync column 'ttl' has no pulses"):
        align_signal(flat, source="ok.csv", sync_column="ttl", frame_times=frames)
    with pytest.raises(FishtrackError, match="has 200 pulses but the video has 150 frames"):
        align_signal(sig, source="ok.csv", sync_column="ttl", frame_times=frames[:150])
    with pytest.raises(FishtrackError, match="give an offset"):
        align_signal(sig, source="ok.csv")


def test_sync_pulse_times_are_interpolated():
    t = np.arange(0, 1, 0.01)
    v = np.where((t >= 0.205) & (t < 0.3), 1.0, 0.0)
    v[20] = 0.5  # the edge falls between samples 20 and 21
    p = sync_pulses(t, v)
    assert p == pytest.approx([0.2], abs=0.006)


def test_nwb_export_includes_the_aligned_signal(trial, tmp_path):
    pytest.importorskip("pynwb")
    pytest.importorskip("ndx_pose")
    import pynwb

    from fishtrack.export import export_trial

    align_trial(trial, _signal_file(tmp_path / "calcium.csv", sync=False), offset_s=OFFSET)
    out = export_trial(trial, "nwb", tmp_path / "t.nwb")
    with pynwb.NWBHDF5IO(str(out), "r") as io:
        nwb = io.read()
        mod = nwb.processing["aligned_signals"]
        ts = mod["calcium_A1"]
        assert ts.timestamps[0] == pytest.approx(-5.0 + OFFSET)
        assert np.asarray(ts.data[:]).max() == pytest.approx(3.0)


def test_per_fish_and_shared_signals_of_one_trial(trial, tmp_path):
    from fishtrack.align import read_aligned_signals
    from fishtrack.io.tables import read_table
    from fishtrack.stats.eventlocked import event_locked, events_table

    align_trial(trial, _signal_file(tmp_path / "dff.csv", sync=False), offset_s=OFFSET)
    t = np.arange(0, 20, 0.1)
    pd.DataFrame({"t": t, "stim": (t >= 8).astype(float)}).to_csv(tmp_path / "stim.csv",
                                                                   index=False)
    align_trial(trial, tmp_path / "stim.csv", offset_s=0.0)
    sigs = read_aligned_signals(trial)
    assert len(sigs) >= 2
    tracks = read_table(trial / "tracks.parquet")
    epochs = read_table(trial / "epochs.csv")
    ev = events_table(tracks, epochs, [p for p in Config(protocol=PROTOCOL).protocol])
    tr = event_locked(tracks, None, ev, pre_s=4, post_s=4, bin_s=1, signals=sigs)
    assert {"signal:dff", "signal:stim"} <= set(tr["signal"])
    stim = tr[(tr["signal"] == "signal:stim") & (tr["event"] == "open-loop onset")]
    w = stim[stim["window"] != "bin"].groupby("window")["value"].mean()
    assert w["before"] == pytest.approx(0.0) and w["after"] == pytest.approx(1.0)
