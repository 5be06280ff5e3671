"""Streaming outputs (issue 15): `fishtrack track` writes the trial folder without holding the
tracks table, and its files equal the in-memory path's.

* the tracker hands finished rows to a sink in blocks; the rows it holds do not grow with the
  video's length;
* ``track_to_folder(stream=True)`` gives the same ``tracks.parquet`` (also ``tracks.csv``),
  ``bouts.csv``, ``epochs.csv`` and provenance summary as the in-memory path, on a plate and a
  multi-fish chamber, with blocks small enough that the table spans many of them;
* a failure while writing leaves no table under its final name and no temporary file.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import fishtrack.tracking.tracker as tracker
from fishtrack.config import load_config
from fishtrack.errors import FishtrackError
from fishtrack.io.video import open_video
from fishtrack.pipeline import find_arenas, track_to_folder
from fishtrack.synth import SimSpec, simulate
from fishtrack.trial import TrialFolder

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def plate(tmp_path_factory):
    root = tmp_path_factory.mktemp("plate")
    return simulate(SimSpec(name="plate", layout="wells", rows=1, cols=3, duration_s=6, fps=100,
                            seed=21, noise_sd=2.0), root / "sim")


@pytest.fixture(scope="module")
def chamber(tmp_path_factory):
    root = tmp_path_factory.mktemp("chamber")
    return simulate(SimSpec(name="chamber", layout="chamber", fish_per_arena=3, duration_s=5,
                            fps=100, seed=22, noise_sd=2.0), root / "sim")


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 64 frames (the smallest), so a few seconds of video span many of them."""
    monkeypatch.setattr(tracker, "_SPILL_BYTES", 1)


def _no_leftovers(folder) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".") or p.suffix == ".part"]


@pytest.mark.parametrize("which", ["plate", "chamber"])
def test_streamed_folder_equals_the_in_memory_one(which, request, tmp_path, small_blocks):
    sim = request.getfixturevalue(which)
    cfg = sim.out_dir / "config.yaml"
    mem = track_to_folder(sim.video_path, cfg, tmp_path / "mem", csv=True)
    streamed = track_to_folder(sim.video_path, cfg, tmp_path / "stream", csv=True, stream=True)
    a, b = TrialFolder(tmp_path / "mem"), TrialFolder(tmp_path / "stream")
    ta, tb = a.tracks(), b.tracks()
    assert len(tb) == sim.n_frames * tb["fish"].nunique() > 0
    assert ta.equals(tb)
    assert mem.tracks.reset_index(drop=True).equals(tb)  # the library's table, too
    assert len(streamed.tracks) == 0  # streamed: the table is in the folder only
    assert a.bouts().equals(b.bouts()) and len(b.bouts()) > 0
    assert a.epochs().equals(b.epochs())
    assert (tmp_path / "mem" / "tracks.csv").read_bytes() == (tmp_path / "stream" / "tracks.csv").read_bytes()
    pa, pb = a.provenance(), b.provenance()
    assert pa["summary"] == pb["summary"] and pa["behaviour_noise"] == pb["behaviour_noise"]
    assert streamed.summary == mem.summary and streamed.bouts.equals(mem.bouts)
    # written in row groups, one per block of the tracker
    import pyarrow.parquet as pq

    assert pq.ParquetFile(b.tracks_path).num_row_groups >= sim.n_frames // 64
    assert _no_leftovers(tmp_path / "stream") == []


def _run_with_sink(frames, arenas, bg, cfg, fpa, layout):
    """track_video with a sink; returns the blocks and the run's store capacity (rows)."""
    runs = []

    class Spy(tracker._Run):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            runs.append(self)

    blocks = []
    old = tracker._Run
    tracker._Run = Spy
    try:
        res = tracker.track_video(tracker.ArraySource(frames, fps=100), arenas, cfg,
                                  fish_per_arena=fpa, layout=layout, background=bg,
                                  sink=blocks.append)
    finally:
        tracker._Run = old
    return res, blocks, runs[0]


def test_tracker_holds_a_window_of_rows_not_the_video(chamber, small_blocks):
    conf = load_config(chamber.out_dir / "config.yaml")
    with open_video(chamber.video_path) as src:
        arenas, bg = find_arenas(src, conf)
        frames = src.read_range(0, 200).frames
    fpa, layout = conf.arenas.fish_per_arena, conf.arenas.layout
    held = {}
    for times in (2, 6):  # the same frames played 2 and 6 times over
        video = np.concatenate([frames] * times)
        res, blocks, run = _run_with_sink(video, arenas, bg, conf.tracking, fpa, layout)
        n_slots = res.summary["n_slots"]
        rows = sum(len(b["frame"]) for b in blocks)
        assert rows == len(video) * n_slots  # every frame of every slot handed on, once
        got = np.concatenate([b["frame"][::n_slots] for b in blocks])
        assert np.array_equal(got, np.arange(len(video)))
        assert max(len(b["frame"]) for b in blocks) <= run.spill_rows * n_slots
        assert res.tracks.empty
        held[times] = len(run.store.time)  # the store's capacity: rows ever held at once
    assert held[6] == held[2] < 2 * len(frames)
    # the rows kept are the in-memory run's table
    mem = tracker.track_video(tracker.ArraySource(frames, fps=100), arenas, conf.tracking,
                              fish_per_arena=fpa, layout=layout, background=bg)
    res, blocks, _ = _run_with_sink(frames, arenas, bg, conf.tracking, fpa, layout)
    parts = [pd.DataFrame(b)[tracker.kept_rows(b, res.summary)] for b in blocks]
    assert pd.concat(parts, ignore_index=True).equals(mem.tracks)


def test_failure_while_writing_leaves_no_table(plate, tmp_path, monkeypatch, small_blocks):
    import pyarrow.parquet as pq

    out = tmp_path / "out"
    calls = {"n": 0}
    real = pq.ParquetWriter.write_table

    def fail_on_third_block(self, table, *a, **k):
        # the final table's blocks (the tracker's columns and the behaviour's), not the spills
        if {"state", "x"} <= set(table.column_names):
            calls["n"] += 1
            if calls["n"] > 2:
                raise OSError(28, "No space left on device")
        return real(self, table, *a, **k)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", fail_on_third_block)
    with pytest.raises(FishtrackError, match="disk is full"):
        track_to_folder(plate.video_path, plate.out_dir / "config.yaml", out, stream=True)
    assert not (out / "tracks.parquet").exists()
    assert not (out / "provenance.json").exists()
    assert _no_leftovers(out) == []


def test_interrupted_run_keeps_the_old_folder_and_no_spill(plate, tmp_path, monkeypatch,
                                                          small_blocks):
    out = tmp_path / "out"
    cfg = plate.out_dir / "config.yaml"
    track_to_folder(plate.video_path, cfg, out, stream=True)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def interrupt(*a, **k):
        raise KeyboardInterrupt

    import fishtrack.pipeline as pipeline

    monkeypatch.setattr(pipeline, "classify", interrupt)  # after tracking, before writing
    with pytest.raises(KeyboardInterrupt):
        track_to_folder(plate.video_path, cfg, out, stream=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_streamed_behaviour_in_parts_of_fish_equals_the_in_memory_one(chamber, tmp_path,
                                                                     monkeypatch, small_blocks):
    """The behaviour stage of the streamed path scores the fish in parts (here two fish, then
    one; its files read back in row groups of 64 rows): the folder is still the in-memory
    path's, byte for byte, and no part file is left."""
    import fishtrack.pipeline as pipeline

    monkeypatch.setattr(pipeline, "PART_ROWS", chamber.n_frames * 2)
    monkeypatch.setattr(pipeline, "PART_BLOCK_ROWS", 64)
    cfg = chamber.out_dir / "config.yaml"
    track_to_folder(chamber.video_path, cfg, tmp_path / "mem", csv=True)
    calls = []
    real = pipeline.classify
    monkeypatch.setattr(pipeline, "classify", lambda t, *a, **k: calls.append(
        t["fish"].nunique()) or real(t, *a, **k))
    track_to_folder(chamber.video_path, cfg, tmp_path / "stream", csv=True, stream=True)
    assert sorted(set(calls)) == [1, 2]  # parts of two fish and of one, in several passes
    assert len(calls) > 4
    for name in ("tracks.csv", "bouts.csv", "epochs.csv"):
        assert (tmp_path / "mem" / name).read_bytes() == (tmp_path / "stream" / name).read_bytes()
    a, b = TrialFolder(tmp_path / "mem"), TrialFolder(tmp_path / "stream")
    assert a.tracks().equals(b.tracks()) and len(b.bouts()) > 0
    assert a.provenance()["behaviour_noise"] == b.provenance()["behaviour_noise"]
    assert _no_leftovers(tmp_path / "stream") == []
