"""Fixtures shared by several test modules (h17j: the suite's time; see docs/benchmarks.md,
"Test suite"). Each one does once per session what several modules did each for itself;
the tests that use them only read what they hold (a test that changes files copies them)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest


@pytest.fixture(scope="session")
def plate_run(tmp_path_factory) -> SimpleNamespace:
    """The fake two-plate experiment (:func:`fixtures_experiment.plate_experiment`, fake
    trials and arenas) run once in this process with its report: ``e`` (its inputs),
    ``res``, the progress ``events`` and the experiment folder ``out``. Read-only."""
    from fixtures_experiment import fake_arenas, fake_trial, plate_experiment

    from fishtrack.experiment import run_experiment

    root = tmp_path_factory.mktemp("plate_run")
    e = plate_experiment(root / "in")
    events: list = []
    res = run_experiment(e["manifest"], e["config"], root / "out", trial_fn=fake_trial,
                         arenas_fn=fake_arenas, progress=events.append)
    return SimpleNamespace(root=root, e=e, res=res, events=events, out=root / "out")
