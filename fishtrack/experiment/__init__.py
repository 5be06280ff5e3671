"""Experiments: a manifest of videos and wells, a resumable batch runner, statistics and report.

A *manifest* is a table a lab technician fills in a spreadsheet, one row per fish (well): a
CSV file, or an Excel ``.xlsx`` workbook (its columns: :mod:`fishtrack.experiment.manifest`).

:func:`run_experiment` checks the whole manifest (table problems, missing videos and protocol
logs, then the wells of every video after a fast arena detection) and reports every problem
at once *before* any tracking starts; then it tracks each video into ``OUT/trials/<stem>/``
(in parallel: local processes or a dask.distributed cluster), skipping trials whose outputs
already match the video and config, and finally computes per-fish metrics, group statistics
and ``report.html`` (:func:`compute_stats`, which can be re-run alone after editing
``OUT/manifest.csv``).

Import everything from ``fishtrack.experiment``; the submodules are internal:

============== ===========================================================================
module         holds
============== ===========================================================================
``manifest``   reading and validating a manifest (:func:`read_manifest`), trial names
``records``    :class:`ProgressEvent`, :class:`TrialOutcome`, :class:`TrialFailure`,
               :class:`ExperimentResult`
``lock``       :func:`output_lock`, the stale-aware lock of an experiment folder
``state``      ``OUT/experiment.json``
``backends``   in-process, process-pool and dask.distributed execution
``runner``     :func:`run_experiment`: check -> plan -> execute -> aggregate
``aggregate``  :func:`compute_stats`: per-fish metrics, group statistics and the report
============== ===========================================================================
"""

from importlib import import_module

_EXPORTS = {
    "compute_stats": "aggregate",
    "LOCK_NAME": "lock",
    "output_lock": "lock",
    "KNOWN_COLUMNS": "manifest",
    "REQUIRED_COLUMNS": "manifest",
    "Manifest": "manifest",
    "read_manifest": "manifest",
    "trial_names": "manifest",
    "ExperimentResult": "records",
    "ProgressCallback": "records",
    "ProgressEvent": "records",
    "Status": "records",
    "TrialFailure": "records",
    "TrialOutcome": "records",
    "TRIAL_FILES": "runner",
    "ArenasFn": "worker",
    "TrialFn": "worker",
    "TrialTask": "worker",
    "detect_video_arenas": "worker",
    "run_experiment": "runner",
    "track_trial": "worker",
    "trial_status": "runner",
    "STATE_FILE": "state",
}
"""Public name -> submodule; imported when first used, so reading a manifest
(``fishtrack.experiment.manifest``) does not import the tracking and statistics stages."""

__all__ = [
    "Manifest",
    "ProgressEvent",
    "TrialFailure",
    "TrialOutcome",
    "ExperimentResult",
    "read_manifest",
    "run_experiment",
    "compute_stats",
    "detect_video_arenas",
    "track_trial",
    "output_lock",
    "trial_status",
    "trial_names",
    "MAIN_METRICS",
    # constants and types, public as before the package split
    "REQUIRED_COLUMNS",
    "KNOWN_COLUMNS",
    "TRIAL_FILES",
    "LOCK_NAME",
    "STATE_FILE",
    "Status",
    "ProgressCallback",
    "TrialFn",
    "ArenasFn",
    "TrialTask",
]


def __getattr__(name: str):
    if name == "MAIN_METRICS":
        from fishtrack.report import MAIN_METRICS

        return MAIN_METRICS
    if name in _EXPORTS:
        return getattr(import_module(f"fishtrack.experiment.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'fishtrack.experiment' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
