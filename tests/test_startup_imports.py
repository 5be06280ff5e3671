"""Start-up cost (issue 15, fixed costs): ``import fishtrack`` and ``fishtrack --help`` load
none of the heavy libraries (each ~0.1-0.9 s of CPU and tens of MB), checked in a fresh
process through ``sys.modules``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

HEAVY = ("scipy", "scipy.stats", "scipy.signal", "pandas", "pyarrow", "matplotlib", "napari",
         "numba", "cv2", "av", "dask", "distributed", "sklearn", "skimage", "qtpy")


def _heavy_loaded(code: str) -> list[str]:
    probe = (f"{code}\nimport sys\n"
             f"print('HEAVY:' + ','.join(m for m in {HEAVY!r} if m in sys.modules))")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, env=env,
                         check=True, timeout=120, cwd=ROOT)
    line = [ln for ln in out.stdout.decode().splitlines() if ln.startswith("HEAVY:")][-1]
    return [m for m in line[len("HEAVY:"):].split(",") if m]


def test_import_fishtrack_loads_no_heavy_library():
    assert _heavy_loaded("import fishtrack") == []


def test_cli_help_loads_no_heavy_library():
    code = ("import sys\nfrom fishtrack.cli import app\nsys.argv = ['fishtrack', '--help']\n"
            "try:\n    app()\nexcept SystemExit as e:\n    assert e.code in (0, None), e.code")
    assert _heavy_loaded(code) == []



def test_early_background_sample_loads_no_pipeline_library(tmp_path):
    """The thread ``fishtrack track`` starts before importing the pipeline (the background's
    frames and their median, issue 15) imports only the video reader's libraries: were it to
    import pandas, pyarrow, scipy or the tracker's numba, it would do the main thread's imports
    itself instead of decoding beside them."""
    from fishtrack.io.writer import write_video

    frames = [np.full((48, 64), 40 + i, np.uint8) for i in range(30)]
    video = write_video(tmp_path / "v.mp4", frames, 25, "h264")
    code = (f"from fishtrack.background_sample import EarlySample\n"
            f"from fishtrack.config import Config\n"
            f"with EarlySample({str(video)!r}, Config()) as early:\n"
            f"    s = early.sample()\n"
            f"    assert s.frames.shape[1:] == (48, 64) and s.median.shape == (48, 64)\n"
            f"    early.source().close()")
    loaded = _heavy_loaded(code)
    assert not set(loaded) & {"pandas", "pyarrow", "scipy", "numba", "dask", "matplotlib"}, loaded
