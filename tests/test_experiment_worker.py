"""The worker side of an experiment imports only what a trial needs (issue 15: per-worker
fixed costs): a spawned worker or a dask worker unpickles ``_execute_trial`` and imports its
module, which must not pull in the statistics (scipy.stats), the report or the importers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

HEAVY = ("scipy", "scipy.stats", "fishtrack.stats", "fishtrack.report", "fishtrack.importers",
         "fishtrack.align", "fishtrack.experiment.aggregate", "fishtrack.experiment.runner",
         "matplotlib", "distributed")


def _heavy_after_unpickling(obj) -> str:
    """The heavy modules a fresh process holds after unpickling ``obj`` (as a worker does)."""
    import pickle

    code = ("import pickle, sys; pickle.loads(sys.stdin.buffer.read()); "
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], input=pickle.dumps(obj),
                         capture_output=True, env=env, check=True, timeout=120)
    return out.stdout.decode().strip()


def test_worker_entry_point_imports_no_statistics():
    from fishtrack.experiment import TrialTask, track_trial
    from fishtrack.experiment.runner import _execute_trial

    # what a process pool or dask pickles: functions and the task, by module and name
    for obj in (_execute_trial, TrialTask, track_trial):
        assert obj.__module__ == "fishtrack.experiment.worker"
    assert _heavy_after_unpickling(_execute_trial) == ""


def test_arena_check_imports_no_statistics():
    """The wells check runs on the workers before any trial (issue 15, 2 workers' scaling):
    with its entry point in the runner, every worker imported the statistics for it."""
    from fishtrack.experiment import detect_video_arenas
    from fishtrack.experiment.runner import _check_arenas

    for obj in (_check_arenas, detect_video_arenas):
        assert obj.__module__ == "fishtrack.experiment.worker"
    assert _heavy_after_unpickling((_check_arenas, detect_video_arenas)) == ""
