"""The worker side of an experiment: one trial into its folder (:func:`_execute_trial`), and
the arena check of a video before any tracking (:func:`_check_arenas`).

This is the module a worker process (a spawned local process or a dask worker) imports to run
a trial or check a video's wells, so it imports only what tracking and scoring a video need
(the trial folder; the pipeline in the functions that use it, so that the run's own process,
which imports this module to send the tasks, does not import the tracker), not the
statistics, the report or the importers' readers (``scipy.stats`` and the rest: ~2 s and
~60 MB per worker process; tests/test_experiment_worker.py checks it).
:mod:`fishtrack.experiment.runner` plans the trials and sends :class:`TrialTask` s here.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from fishtrack._threads import limit_threads, restore_malloc_thresholds
from fishtrack.config import Config
from fishtrack.errors import FishtrackError
from fishtrack.experiment.backends import QueueProgress, trial_threads, worker_queue
from fishtrack.experiment.records import Status, TrialOutcome
from fishtrack.trial import TrialFolder

__all__ = ["ArenasFn", "TrialFn", "TrialTask", "detect_video_arenas", "found_path", "track_trial"]

TrialFn = Callable[..., Any]
"""``trial_fn(video, config, out_folder, progress=None)`` writes a complete trial folder."""

ArenasFn = Callable[[Path, Config], list[str]]
"""``arenas_fn(video, config) -> [arena names]`` (fast check before tracking)."""


def detect_video_arenas(video: Path, config: Config, found: str | Path | None = None) -> list[str]:
    """Default arena check: background of sampled frames + arena detection; the arena names.
    With ``found`` (:func:`found_path`) both are saved there for the trial (or loaded from
    there when saved for this video and config)."""
    from fishtrack.pipeline import find_arenas_once, open_source

    with open_source(video, config) as src:
        arenas, _, _ = find_arenas_once(src, video, config, found)
    return [a.name for a in arenas]


def found_path(out_root: str | Path, trial: str) -> Path:
    """Where a run keeps a trial's background and arenas between the wells check and the
    trial (:mod:`fishtrack.found`): ``OUT/trials/.<trial>.found.npz``, removed once the trial
    is done."""
    return Path(out_root) / "trials" / f".{trial}.found.npz"


def _limit_worker(concurrent: int) -> None:
    """Before a worker's task: its threads capped at its share of the cores when several
    tasks share them, and a dask worker's malloc thresholds restored."""
    threads = trial_threads(concurrent)
    if threads:  # several trials share the cores: no pool larger than this trial's share
        limit_threads(threads)
    restore_malloc_thresholds()  # a dask worker's MALLOC_TRIM_THRESHOLD_ (no-op elsewhere)


def _check_arenas(video: str, config: Config, arenas_fn: ArenasFn | None,
                  concurrent: int = 0, found: str | None = None) -> tuple[str, list[str] | None, str]:
    """Worker entry point of the arena check: (video, names or None, error). Here, not in
    the runner, so a worker process that checks wells imports no statistics (issue 15:
    ~2 s of CPU and ~60 MB per worker); its threads capped as a trial's are. The default
    check saves the background and arenas in ``found`` for the trial."""
    _limit_worker(concurrent)
    try:
        if TrialFolder(video).is_imported():  # imported tracks: the arenas they name
            from fishtrack.importers import imported_arenas  # (its readers: not for tracking)

            return video, imported_arenas(video), ""
        if arenas_fn is None:
            return video, detect_video_arenas(Path(video), config, found), ""
        return video, list(arenas_fn(Path(video), config)), ""
    except FishtrackError as err:
        return video, None, str(err)
    except Exception as err:  # noqa: BLE001 - reported with the other manifest problems
        return video, None, f"{video}: {type(err).__name__}: {err}"


def prepare_report() -> None:
    """Queued on each worker behind the trials of a run with a report: the figures' imports
    (matplotlib; ~0.4 s of CPU), done before the report's figures come to the worker."""
    import fishtrack.report.figures  # noqa: F401


def track_trial(video: Path, config: Config, out: Path, progress=None) -> None:
    """Default trial function: :func:`fishtrack.pipeline.track_to_folder`."""
    from fishtrack.pipeline import track_to_folder

    track_to_folder(video, config, out, progress=progress, stream=True)


@dataclass
class TrialTask:
    """Everything a worker needs to produce one trial folder (picklable)."""

    name: str
    video: str
    out_root: str
    config: Config
    mode: Literal["track", "reclassify"] = "track"
    trial_fn: TrialFn | None = None
    concurrent: int = 0
    """Trials running at once on the worker's machine (:attr:`Backend.concurrent`): the
    worker caps its threads at its share of the cores (0: no cap, the trial runs alone)."""
    rows: Any = None
    """The video's manifest rows (a DataFrame) with ``stats_config`` and ``rel_video`` (the
    video as the manifest names it): the worker also computes and keeps the trial's
    statistics inputs (:mod:`fishtrack.experiment.trialstats`); ``None``: not."""
    stats_config: Config | None = None
    rel_video: str = ""


def _replace_dir(tmp: Path, final: Path) -> None:
    """Move the finished ``tmp`` folder to ``final``; an old ``final`` is removed after."""
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
        os.rename(final, old)
    os.rename(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _execute_trial(task: TrialTask, queue=None) -> TrialOutcome:
    """Run one trial into a temporary folder and rename it into place (worker entry point).

    Never raises: a failure becomes a ``failed`` outcome (with a log of the traceback when
    the error is not a :class:`FishtrackError`).
    """
    t0 = time.perf_counter()
    root = Path(task.out_root)
    final = root / "trials" / task.name
    tmp = final.with_name(f".{task.name}.part-{uuid.uuid4().hex[:8]}")
    queue = worker_queue() if queue is None else queue  # a spawned worker's: inherited
    progress = QueueProgress(queue, task.name) if queue is not None else None
    _limit_worker(task.concurrent)
    try:
        from fishtrack.pipeline import classify_folder, track_to_folder  # (imported at the
        # worker's start when the pool was started early: backends.TRIAL_MODULES)

        if task.mode == "reclassify":
            shutil.copytree(final, tmp)
            classify_folder(tmp, task.config)
        elif TrialFolder(task.video).is_imported():  # a `fishtrack import` folder: classified, not tracked
            from fishtrack.importers import classify_imported  # (its readers: not for tracking)

            tmp.mkdir(parents=True)
            classify_imported(task.video, task.config, tmp)
        elif task.trial_fn is None:  # the default trial: the wells check's background re-used
            tmp.mkdir(parents=True)
            track_to_folder(task.video, task.config, tmp, progress=progress, stream=True,
                            found_cache=found_path(root, task.name))
        else:
            tmp.mkdir(parents=True)
            task.trial_fn(Path(task.video), task.config, tmp, progress=progress)
        absent = TrialFolder(tmp).missing()
        if absent:
            raise FishtrackError(f"{task.video}: the trial produced no {', '.join(absent)}")
        if task.rows is not None:  # in the parallel phase, not in the statistics after
            from fishtrack.experiment.trialstats import prepare_trial_tables

            prepare_trial_tables(tmp, task.name, task.rel_video, task.rows,
                                 task.stats_config or task.config)
        _replace_dir(tmp, final)
        found_path(root, task.name).unlink(missing_ok=True)
        status: Status = "reclassified" if task.mode == "reclassify" else "done"
        return TrialOutcome(task.name, task.video, status, time.perf_counter() - t0)
    except FishtrackError as err:
        return TrialOutcome(task.name, task.video, "failed", time.perf_counter() - t0, str(err))
    except BaseException as err:  # noqa: BLE001 - a failing trial must not stop the others
        if isinstance(err, KeyboardInterrupt):
            raise
        log = root / "logs" / f"{task.name}.log"
        with contextlib.suppress(OSError):
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text(traceback.format_exc(), encoding="utf-8")
        msg = f"{task.video}: unexpected {type(err).__name__}: {err} (traceback in {log})"
        return TrialOutcome(task.name, task.video, "failed", time.perf_counter() - t0, msg, str(log))
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
