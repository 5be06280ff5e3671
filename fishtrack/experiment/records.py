"""What a run reports: progress events, trial outcomes and failures, the experiment's result."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # (pandas is not imported to start a run's workers: backends)
    import pandas as pd

Status = Literal["done", "skipped", "reclassified", "failed"]


@dataclass(frozen=True)
class ProgressEvent:
    """One progress report of :func:`run_experiment` / :func:`compute_stats`.

    ``kind``:

    * ``"check"`` — arena check before tracking; ``done``/``total`` videos checked.
    * ``"trial"`` — one trial (``trial`` = its folder name): first ``status == "queued"``
      (``total`` 0), then ``done``/``total`` frames while ``status == "running"`` (not
      forwarded from dask workers), and a last event with ``status`` ``done`` | ``skipped``
      | ``reclassified`` | ``failed`` (``message``: the error).
    * ``"overall"`` — ``done``/``total`` trials finished; ``trial``/``status`` name the one
      that just finished.
    * ``"stats"`` — ``done``/``total`` steps of the statistics and report; ``message`` says
      which.
    """

    kind: Literal["check", "trial", "overall", "stats"]
    done: int
    total: int
    trial: str | None = None
    status: str | None = None
    message: str = ""


ProgressCallback = Callable[[ProgressEvent], None]


def emit(progress: ProgressCallback | None, *args: Any, **kw: Any) -> None:
    if progress is not None:
        progress(ProgressEvent(*args, **kw))


@dataclass
class TrialOutcome:
    """What happened to one trial."""

    trial: str
    video: str
    status: Status
    seconds: float = 0.0
    error: str = ""
    log: str = ""


@dataclass
class TrialFailure:
    """A trial that failed: its folder name, video, the one-line error, and a log file with
    the full traceback when the error was unexpected."""

    trial: str
    video: str
    error: str
    log: str = ""


@dataclass
class ExperimentResult:
    """What :func:`run_experiment` / :func:`compute_stats` produced.

    Attributes
    ----------
    out
        The experiment folder.
    per_fish
        One row per fish in the manifest (and tracked): metrics per phase and covariates
        (also ``OUT/per_fish.csv``).
    bins
        Passive fraction per fish per time bin (``OUT/per_fish_bins.csv``).
    group_stats
        Group comparisons (``OUT/group_stats.csv``).
    trials
        One row per trial: ``trial, video, status, seconds, error``.
    failures
        Failed trials; non-empty means the run should end with a non-zero exit code.
    paths
        ``per_fish``, ``bins``, ``group_stats``, ``report``, ``figures``, ``manifest``,
        ``config``.
    warnings
        Things the user should know (unknown wells, missing trials, corrections applied).
    assay
        The assay analyses (:class:`fishtrack.stats.assay.AssayResults`: give-up
        sensitivity, dose–response, time course, onset-locked averages, wide table).
    """

    out: Path
    per_fish: pd.DataFrame
    bins: pd.DataFrame
    group_stats: pd.DataFrame
    trials: pd.DataFrame
    failures: list[TrialFailure] = field(default_factory=list)
    paths: dict[str, Path] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    assay: Any = None

    @property
    def ok(self) -> bool:
        return not self.failures
