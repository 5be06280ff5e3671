"""What the tracking phase of ``fishtrack track`` holds while it runs (issue 15: the level of
its resident memory, docs/benchmarks.md "Seventh step").

* the background's calibration frames (16 full frames: ~20 MB on a 1280 x 960 plate) are
  needed only to make the arenas' models; a streamed run empties them before the first chunk,
  and the tracks are the same as with them kept.
"""

from __future__ import annotations

import gc

import numpy as np
import pytest

from fishtrack.config import load_config
from fishtrack.io.video import open_video
from fishtrack.pipeline import find_arenas, track_to_folder
from fishtrack.synth import SimSpec, simulate
from fishtrack.tracking import Background
from fishtrack.tracking.tracker import track_video
from fishtrack.trial import TrialFolder

pytestmark = pytest.mark.timeout(120)


PLATE = SimSpec(name="plate", layout="wells", rows=1, cols=2, duration_s=1, fps=100, seed=31,
                noise_sd=2.0)


@pytest.fixture(scope="module")
def plate(tmp_path_factory):
    return simulate(PLATE, tmp_path_factory.mktemp("plate") / "sim")


def _backgrounds() -> list[Background]:
    return [o for o in gc.get_objects() if isinstance(o, Background)]


def test_streamed_run_drops_the_calibration_frames_while_tracking(plate, tmp_path):
    seen: list[int] = []
    earlier = _backgrounds()  # other tests' (module fixtures) stay alive: not this run's

    def progress(done: int, total: int) -> None:
        seen.append(sum(len(b.calib) for b in _backgrounds()
                        if not any(b is e for e in earlier)))

    cfg = load_config(plate.out_dir / "config.yaml")
    cfg = cfg.model_copy(update={"video": cfg.video.model_copy(update={"chunk_size": 16})})
    track_to_folder(plate.video_path, cfg, tmp_path / "out", stream=True, progress=progress)
    assert len(seen) >= 3  # several chunks
    assert seen == [0] * len(seen)
    assert len(TrialFolder(tmp_path / "out").tracks(columns=["frame"])) > 0


def test_released_calibration_frames_give_the_same_tracks(plate):
    cfg = load_config(plate.out_dir / "config.yaml")
    runs = []
    for release in (False, True):
        with open_video(plate.video_path) as src:
            arenas, bg = find_arenas(src, cfg)
            assert len(bg.calib) >= 3
            res = track_video(src, arenas, cfg.tracking, fish_per_arena=cfg.arenas.fish_per_arena,
                              layout=cfg.arenas.layout, background=bg, release_calib=release)
        runs.append(res)
        assert (len(bg.calib) == 0) == release
        assert (len(res.background.calib) == 0) == release
    a, b = (r.tracks for r in runs)
    assert len(a) > 0 and a.equals(b)
    assert np.array_equal(runs[0].background.median, runs[1].background.median)


def _hwm_mb() -> float:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM")) / 1024


def _tracker_block(frames: int, n_fish: int = 48, first: int = 0) -> dict:
    """A block as the tracker hands it to its sink: whole frames, every slot, its 55 columns."""
    rng = np.random.default_rng(first)
    n = frames * n_fish
    names = np.array([f"A{i:02d}" for i in range(n_fish)], dtype=object)
    cols = {"frame": np.repeat(np.arange(first, first + frames, dtype=np.int64), n_fish),
            "time_s": np.repeat(np.arange(first, first + frames) / 30.0, n_fish),
            "arena": np.tile(names, frames), "fish": np.tile(names, frames)}
    for c in ("x", "y", "heading", "tail_angle", "tail_curvature", "area_px", "motion_energy",
              "tail_motion"):
        cols[c] = rng.random(n, dtype=np.float32)
    cols["detected"] = cols["id_uncertain"] = np.ones(n, bool)
    for i in range(10):
        cols[f"tail_x_{i}"] = rng.random(n, dtype=np.float32)
    for i in range(10):
        cols[f"tail_y_{i}"] = rng.random(n, dtype=np.float32)
    for i in range(1, 10):
        cols[f"seg_angle_{i}"] = rng.random(n, dtype=np.float32)
    return cols


_SINK_RISE = (
    "import sys, tempfile\n"
    "from pathlib import Path\n"
    "sys.path.insert(0, sys.argv[1])\n"
    "from test_tracking_memory import _hwm_mb, _tracker_block\n"
    "from fishtrack.io.tables import SpillFile\n"
    "from fishtrack.pipeline import _spill_sink\n"
    "with tempfile.TemporaryDirectory() as d, SpillFile(Path(d), prefix='.t') as spill:\n"
    "    sink = _spill_sink(spill)\n"
    "    sink(_tracker_block(64, 96))\n"
    "    block = _tracker_block(1459, 96, first=64)\n"
    "    open('/proc/self/clear_refs', 'w').write('5')\n"
    "    base = _hwm_mb()\n"
    "    sink(block)\n"
    "    print(_hwm_mb() - base)\n"
)


def test_spill_sink_holds_a_row_group_not_the_block(tmp_path):
    """The end of a 48-well run's tracking rose ~25 MB over its plateau when a block of the
    tracker (1459 frames x 48 slots, ~70 000 rows) went to the spill file: the whole block was
    copied to pandas and to Arrow at once (the first block of a process: +12-16 MB; 96 slots
    as here: +10-14 MB). The sink writes it a row group at a time (+4.5-5.6 MB);
    the file is the same (row groups of whole frames, the rows as given)."""
    import subprocess
    import sys
    from pathlib import Path

    import pyarrow.parquet as pq

    from fishtrack.io.tables import SpillFile
    from fishtrack.pipeline import SPILL_GROUP_ROWS, _spill_sink

    # the peak's rise in a fresh process (in this one, memory freed by earlier tests is reused)
    rise = float(subprocess.run([sys.executable, "-c", _SINK_RISE, str(Path(__file__).parent)],
                                capture_output=True, text=True, check=True).stdout)
    assert rise < 8, f"writing a 140 000-row block raised the peak by {rise:.0f} MB"
    with SpillFile(tmp_path, prefix=".t") as spill:
        sink = _spill_sink(spill)
        sink(_tracker_block(64))
        block = _tracker_block(1459, first=64)
        sink(block)
        spill.close()
        pf = pq.ParquetFile(spill.path)
        sizes = [pf.metadata.row_group(i).num_rows for i in range(pf.num_row_groups)]
        back = pq.read_table(spill.path).slice(64 * 48).to_pandas()
    group = SPILL_GROUP_ROWS // 48 * 48
    assert sizes[1:] == [group] * (len(block["frame"]) // group) + [len(block["frame"]) % group]
    for name, col in block.items():
        assert np.array_equal(back[name].to_numpy(), col), name
