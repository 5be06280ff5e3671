"""The streamed behaviour stage copies the tracks into one file per part of the fish (issue 15).

A 48-well plate scored one fish per part has 48 part files open while the tracker's blocks
are copied into them. Each part gets a piece of every block, so the copy must not hold
anything per block and part: Parquet writers keep every row group's column metadata until
they are closed, ~150 MB for the 30-minute 48-well benchmark recording (and the process kept
it); the parts' Arrow IPC files keep one offset per block. Here: 48 fish, 60 blocks of 2
frames, the parts read back exactly as written.
"""

from __future__ import annotations

import importlib
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import fishtrack.pipeline as pipeline
from fishtrack.config import Config
from fishtrack.io.tables import SpillFile
from fishtrack.trial import TrialResult

pytestmark = pytest.mark.timeout(240)
# the module (``fishtrack.behaviour.classify`` the attribute is the function of that name)
behaviour_classify = importlib.import_module("fishtrack.behaviour.classify")

N_FISH, N_BLOCKS, FRAMES = 48, 60, 2


def _hwm_mb() -> float:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM")) / 1024


def _reset_hwm() -> None:
    with open("/proc/self/clear_refs", "w") as fh:  # "5": reset the peak RSS to the current
        fh.write("5")


def _block(k: int, frames: int = FRAMES) -> pd.DataFrame:
    """Frames ``k * frames ..`` of every fish, frame by frame (the tracker's row order)."""
    frame = np.repeat(np.arange(k * frames, (k + 1) * frames), N_FISH)
    n = len(frame)
    names = np.tile([f"A{i:02d}" for i in range(N_FISH)], frames)
    rng = np.random.default_rng(k)
    cols = {"frame": frame, "time_s": frame / 30.0, "arena": names, "fish": names,
            "detected": np.ones(n, bool)}
    for c in ("x", "y", "heading", "tail_angle", "motion_energy", "tail_motion"):
        cols[c] = rng.random(n)
    for i in range(10):
        cols[f"tail_x_{i}"], cols[f"tail_y_{i}"] = rng.random(n), rng.random(n)
        if i:
            cols[f"seg_angle_{i}"] = rng.random(n)
    return pd.DataFrame(cols)


def test_parts_copy_holds_nothing_per_block_and_reads_back_exactly(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "PART_ROWS", 1)  # one fish per part: 48 part files
    seen: list[pd.DataFrame] = []
    held: list[float] = []

    def parts_only(parts, *a, **k):
        held.append(_hwm_mb())  # the copy is done: its peak
        seen.extend(parts())
        return SimpleNamespace(bouts=pd.DataFrame(), epochs=pd.DataFrame(), noise=None)

    monkeypatch.setattr(behaviour_classify, "classify_parts", parts_only)
    with SpillFile(tmp_path) as spill:
        for k in range(N_BLOCKS):
            spill.write(_block(k))
        whole = pd.concat([_block(k) for k in range(N_BLOCKS)], ignore_index=True)
        _reset_hwm()
        before = _hwm_mb()
        pipeline._classify_streamed(TrialResult(tracks=whole.iloc[:0]), spill,
                                    {"kept_slots": list(range(N_FISH)), "n_slots": N_FISH},
                                    Config())
    assert held[0] - before < 40, f"copying into the parts held {held[0] - before:.0f} MB"
    # one part per fish, in the stage's (arena, fish) order, every row as written
    assert len(seen) == N_FISH
    expect = whole.sort_values(["arena", "fish", "frame"], kind="stable")
    for i, (_, fish) in enumerate(expect.groupby(["arena", "fish"], sort=True)):
        pd.testing.assert_frame_equal(seen[i], fish[seen[i].columns].reset_index(drop=True))
    assert [p.name for p in tmp_path.iterdir()] == []  # no part file left


def test_writing_the_tracks_holds_a_row_group_not_a_tracker_block(tmp_path, monkeypatch):
    """The end of a streamed run joins the tracker's blocks (read back from the spill file)
    with the behaviour's columns and writes ``tracks.parquet``. A 48-well plate's block is
    ~60 000 rows (here 48 fish x 1250 frames, one block): joined whole, as pandas pieces per
    part, it took ~90 MB over the scoring on the 30-minute bench; the tracker's sink
    (``pipeline._spill_sink``) writes it in row groups of ``SPILL_GROUP_ROWS`` rows (here 4096,
    a clear margin under load), read back and joined one at a time. The table written equals
    ``classify`` of the whole table."""
    from fishtrack.behaviour import classify
    from fishtrack.io.tables import read_table, write_table_parts

    monkeypatch.setattr(pipeline, "SPILL_GROUP_ROWS", 4096)
    whole = _block(0, 1250)
    out = TrialResult(tracks=whole.iloc[:0])
    with SpillFile(tmp_path / "spill") as spill:
        pipeline._spill_sink(spill)(whole)  # as the tracker's blocks are written
        pipeline._classify_streamed(out, spill, {"kept_slots": list(range(N_FISH)),
                                                 "n_slots": N_FISH}, Config())
        _reset_hwm()
        before = _hwm_mb()
        write_table_parts(out.tracks_parts(), tmp_path / "tracks.parquet")
        rise = _hwm_mb() - before
    assert rise < 40, f"writing tracks.parquet took {rise:.0f} MB over the scoring"
    expect = classify(whole, Config().behaviour).tracks
    got = read_table(tmp_path / "tracks.parquet")
    pd.testing.assert_frame_equal(got, expect.reset_index(drop=True))
