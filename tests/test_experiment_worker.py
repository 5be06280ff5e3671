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


def test_worker_entry_point_imports_no_statistics():
    from fishtrack.experiment import TrialTask, track_trial
    from fishtrack.experiment.runner import _execute_trial

    # what a process pool or dask pickles: functions and the task, by module and name
    for obj in (_execute_trial, TrialTask, track_trial):
        assert obj.__module__ == "fishtrack.experiment.worker"
    code = ("import pickle, sys; pickle.loads(sys.stdin.buffer.read()); "
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    import pickle

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], input=pickle.dumps(_execute_trial),
                         capture_output=True, env=env, check=True, timeout=120)
    assert out.stdout.decode().strip() == "", out.stdout.decode()
