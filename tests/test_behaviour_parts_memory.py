"""The streamed behaviour stage holds nothing of a part once it moves on to the next (issue 15).

``classify_parts`` runs the stage part after part, several passes; between parts it should keep
only each part's *summary* of the recording-level value it stopped at (a few numbers per
fish, or a bounded per-frame fold). Three things could keep more: a summary that is a view
into a larger array of the part (a kept step read back is one buffer, ``_steps.StepStore.load``,
so one fish's tail noise could keep the whole step file alive), the stopping exception kept
for its key (its traceback holds the part's frames and every local of the stage), and the
scored rows of every part. Here: the traced peak of scoring a recording in one-fish parts is
that of scoring one part alone (plus a little), at two recording lengths.

Note (h15u, 2026-12-07): on this recording the test passes on main too; the retention it
guards against was seen on the 16-well benchmark tracks (tracemalloc: +4.8 MB per one-fish
part of 30 000 rows within one pass, allocated by ``StepStore.load`` of the ``refine`` step)
in three runs, and not in later runs of the same code (docs/benchmarks.md).
"""

from __future__ import annotations

import gc
import tracemalloc

import numpy as np
import pandas as pd
import pytest
from fixtures_behaviour import make_fish

from fishtrack.behaviour import classify
from fishtrack.behaviour.classify import classify_parts
from fishtrack.config import BehaviourConfig

pytestmark = pytest.mark.timeout(240)

N_FISH = 6
BUSY = {"passive": (0.1, 0.2), "ibi": (0.05, 0.1), "bout_s": (0.3, 0.5), "active": (100.0, 100.0),
        "p_first_passive": 0.0}


def _recording(duration_s: float) -> pd.DataFrame:
    # fish that swim most of the time beside ordinary ones: the first noise estimate of the
    # busy ones changes once their bouts are known, so the kinematics are refined and read
    # back in the later passes (the step buffers a summary could hold)
    fish = [make_fish(40 + i, fish=f"f{i}", arena=f"A{i}", fps=200.0, duration_s=duration_s,
                      noise_rad=0.02 + 0.02 * i, schedule=BUSY if i % 2 else None)
            for i in range(N_FISH)]
    tracks = pd.concat([f.tracks for f in fish], ignore_index=True)
    # the tracker's pixel motion (body and tail): the tail bouts' pixel-motion gate runs
    rng = np.random.default_rng(46)
    moving = np.hypot(tracks["x"].diff().fillna(0), tracks["y"].diff().fillna(0)) > 1
    tracks["motion_energy"] = np.where(moving, 5.0, 0.0) + rng.normal(0.5, 0.1, len(tracks))
    tracks["tail_motion"] = np.abs(tracks["tail_angle"].diff().fillna(0)) * 40 + rng.normal(
        0.5, 0.1, len(tracks))
    return tracks.sort_values(["frame", "arena"], kind="stable").reset_index(drop=True)


def _peak_mb(fn) -> float:
    """Traced peak of ``fn()``; the cyclic garbage collector off meanwhile, so what is freed
    is what nothing refers to any more (not what a collection happened to catch)."""
    gc.collect()
    gc.disable()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
        gc.enable()


@pytest.mark.parametrize("duration_s", [10.0, 40.0])
def test_parts_in_turn_hold_no_more_than_one_part(duration_s, tmp_path):
    tracks = _recording(duration_s)
    keys = sorted(tracks["arena"].unique())
    parts = [tracks[tracks["arena"] == a].reset_index(drop=True) for a in keys]
    del tracks
    cfg = BehaviourConfig()
    one = max(_peak_mb(lambda p=p: classify(p, cfg)) for p in parts[:2])  # fish alike
    got = {}
    # each part's scored rows handed on (as the pipeline writes them to a file), not kept
    every = _peak_mb(lambda: got.update(b=classify_parts(
        lambda: iter(parts), cfg, emit=lambda i, scored: None, work_dir=tmp_path)))
    assert got["b"].passes > 2 and len(got["b"].fish) == N_FISH
    # the passes hold one part's working memory, not a piece of every part scored before
    assert every < 1.15 * one + 1.0, (
        f"{duration_s:.0f} s, {N_FISH} one-fish parts: peak {every:.1f} MB, one part alone "
        f"{one:.1f} MB")
