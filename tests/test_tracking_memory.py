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
from _tracker_blocks import _tracker_block  # the tests folder is on sys.path

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


_SINK_RISE = (
    "import sys, tempfile\n"
    "from pathlib import Path\n"
    "sys.path.insert(0, sys.argv[1])\n"
    "from _tracker_blocks import _hwm_mb, _tracker_block\n"
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


_SPILL_BEFORE_PANDAS = (
    "import sys\n"
    "from fishtrack import pipeline\n"
    "from fishtrack.io import tables\n"
    "from fishtrack.tracking import tracker\n"
    "tracker._SPILL_BYTES = 1  # a block of the tracker every 64 frames\n"
    "pipeline.LATE_IMPORT_LEAD_S = 0.0  # the late imports at the last chunk\n"
    "seen = []\n"
    "real = tables.SpillFile.write\n"
    "def write(self, columns, **kw):\n"
    "    seen.append('pandas' in sys.modules)\n"
    "    return real(self, columns, **kw)\n"
    "tables.SpillFile.write = write\n"
    "cfg = pipeline.resolve_config(sys.argv[2])\n"
    "cfg = cfg.model_copy(update={'video': cfg.video.model_copy(update={'chunk_size': 16})})\n"
    "pipeline.track_to_folder(sys.argv[1], cfg, sys.argv[3], stream=True)\n"
    "print('SEEN', ''.join('P' if s else '-' for s in seen), 'pandas' in sys.modules)\n"
)


def test_tracking_spills_its_rows_without_pandas(tmp_path):
    """pandas (~40 MB resident) is not imported while a streamed run tracks: the tracker's
    blocks go to the spill file through pyarrow alone, and pandas with the behaviour stage is
    imported beside the tracking's last seconds (issue 15). The run's tables are written,
    and the spill file's rows are those the tracker gave (tests/test_streaming.py: the same
    tables as the in-memory path)."""
    import subprocess
    import sys

    plate = simulate(PLATE.model_copy(update={"duration_s": 3}), tmp_path / "sim")  # 4 blocks
    out = tmp_path / "out"
    res = subprocess.run([sys.executable, "-c", _SPILL_BEFORE_PANDAS, str(plate.video_path),
                          str(plate.out_dir / "config.yaml"), str(out)],
                         capture_output=True, text=True, check=True, timeout=120)
    line = [ln for ln in res.stdout.splitlines() if ln.startswith("SEEN")][-1]
    _, seen, imported = line.split()
    assert seen.startswith("-") and imported == "True", line  # a block spilled before pandas
    assert len(TrialFolder(out).tracks(columns=["frame"])) > 0
    assert (out / "bouts.csv").is_file()


_NUMPY_SPILL = (
    "import sys, tempfile\n"
    "from pathlib import Path\n"
    "import numpy as np\n"
    "sys.path.insert(0, sys.argv[1])\n"
    "from _tracker_blocks import _tracker_block\n"
    "from fishtrack.io.tables import SpillFile\n"
    "block = _tracker_block(70, 5)\n"
    "block['x'][::7] = block['tail_x_3'][::5] = np.nan\n"
    "block['detected'] = np.arange(len(block['frame'])) % 3 > 0\n"
    "tables, imported = [], []\n"
    "with tempfile.TemporaryDirectory() as d:\n"
    "    for k in range(2):\n"
    "        cols = block if k == 0 else __import__('pandas').DataFrame(block)\n"
    "        with SpillFile(Path(d), prefix=f'.{k}') as spill:\n"
    "            spill.write(cols, group_rows=100)\n"
    "            spill.write(cols, group_rows=100)\n"
    "            tables.append(list(spill.arrow_blocks()))\n"
    "        imported.append('pandas' in sys.modules)\n"
    "a, b = tables\n"
    "print(imported[0], len(a), len(b), all(x.equals(y) for x, y in zip(a, b)),\n"
    "      a[0].column('x').null_count, b[0].column('x').null_count)\n"
)


def test_spill_of_numpy_columns_equals_the_pandas_path():
    """The tracker's NumPy columns are written to the spill file without importing pandas
    and read back as the same Arrow tables (types, NaN as missing values, text) as the same
    columns written as a DataFrame (the pandas path)."""
    import subprocess
    import sys
    from pathlib import Path

    out = subprocess.run([sys.executable, "-c", _NUMPY_SPILL, str(Path(__file__).parent)],
                         capture_output=True, text=True, check=True).stdout.split()
    imported, n_a, n_b, equal, nulls_a, nulls_b = out
    assert imported == "False"
    assert n_a == n_b == "8" and equal == "True"
    assert nulls_a == nulls_b and int(nulls_a) > 0


_KERNELS_LOADED = (
    "import numpy as np\n"
    "from fishtrack.tracking import tracker\n"
    "tracker.use_kernels(True)\n"
    "rss, cur = {}, None\n"
    "for line in open('/proc/self/smaps'):\n"
    "    p = line.split()\n"
    "    if '-' in p[0] and len(p) >= 5:\n"
    "        cur = p[1] if len(p) > 5 and 'libllvmlite' in p[5] else None\n"
    "    elif p[0] == 'Rss:' and cur:\n"
    "        rss[cur] = rss.get(cur, 0) + int(p[1])\n"
    "square = np.array([[0, 0], [0, 5], [5, 5], [5, 0]], np.int32)\n"
    "mom = np.zeros((1, 6))\n"
    "tracker._KERNELS.contour_stats(square, np.array([4]), np.zeros((1, 4), np.int32), mom)\n"
    "print(rss.get('r-xp', 0) // 1024, rss.get('r--p', 0) // 1024, mom[0, 0])\n"
)


def test_loaded_kernels_leave_llvms_code_out_of_memory():
    """Once numba has loaded the tracker's compiled kernels, LLVM's code (``libllvmlite``,
    ~50 MB resident) is not run again: it is dropped from the process's resident memory
    (issue 15), and the kernels still run (a 5 x 5 square's outline has area 25)."""
    import subprocess
    import sys

    code_mb, data_mb, area = subprocess.run([sys.executable, "-c", _KERNELS_LOADED],
                                            capture_output=True, text=True, check=True,
                                            timeout=300).stdout.split()
    assert int(data_mb) > 0 and int(code_mb) < 5, (code_mb, data_mb)  # mapped, code not resident
    assert float(area) == 25.0
