"""Running an experiment: check -> plan -> execute -> aggregate.

* **check** the manifest against the config (reference group and condition, primary metric),
  the videos, the per-video configs and protocol logs, and the wells of every video to be
  tracked (a fast arena detection, on the back-end); every problem is reported at once,
  before any tracking starts;
* **plan** which trials to track, re-score or skip (:meth:`fishtrack.trial.TrialFolder.status`);
* **execute** the trials on a back-end (in this process, local processes or dask), each into
  a temporary folder renamed into place when complete;
* **aggregate**: per-fish metrics, group statistics and the report
  (:mod:`fishtrack.experiment.aggregate`).
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from fishtrack.behaviour import load_protocol_log
from fishtrack.config import Config, load_config, resolve_config
from fishtrack.errors import ConfigError, FishtrackError
from fishtrack.experiment.backends import Backend, InlineQueue
from fishtrack.experiment.inputs import check_reference_group, read_run_manifest
from fishtrack.experiment.lock import output_lock
from fishtrack.experiment.manifest import (
    Manifest,
    arena_span,
    path_exists,
    raise_problems,
    rows_text,
    trial_names,
)
from fishtrack.experiment.records import (
    ExperimentResult,
    ProgressCallback,
    TrialFailure,
    TrialOutcome,
    emit,
)
from fishtrack.experiment.state import update_state, write_inputs
from fishtrack.experiment.worker import (  # noqa: F401 - detect_video_arenas: public here too
    ArenasFn,
    TrialFn,
    TrialTask,
    _check_arenas,
    _execute_trial,
    detect_video_arenas,
    found_path,
    prepare_report,
)
from fishtrack.io.video import open_video
from fishtrack.trial import FILES, PROVENANCE, FolderStatus, TrialFolder

TRIAL_FILES = FILES
"""Files a complete trial folder holds (``provenance.json`` is written last)."""

def trial_status(
    folder: str | Path, video: str | Path, config: Config
) -> Literal["current", "reclassify", "stale", "missing"]:
    """Whether a trial folder already holds the outputs for ``video`` with ``config``
    (:meth:`fishtrack.trial.TrialFolder.status`)."""
    return TrialFolder(folder).status(video, config)


# ============================================================================================
# run


def run_experiment(
    manifest: str | Path | Manifest,
    config: Config | str | Path | dict | None = None,
    out: str | Path = "fishtrack_experiment",
    *,
    workers: int = 1,
    scheduler: Any = None,
    force: bool = False,
    progress: ProgressCallback | None = None,
    trial_fn: TrialFn | None = None,
    arenas_fn: ArenasFn | None = None,
    report: bool = True,
    sheet: str | None = None,
) -> ExperimentResult:
    """Track every video of a manifest, then compute statistics and the report.

    Parameters
    ----------
    manifest
        Manifest CSV or Excel workbook (see :mod:`fishtrack.experiment.manifest`), or a
        :class:`Manifest` already read (``fishtrack run`` reads it before it starts its
        workers: :func:`fishtrack.experiment.inputs.check_run_inputs`; ``sheet`` is then
        not used).
    config
        Config, YAML path, mapping or ``None`` (defaults).
    out
        Experiment folder: ``trials/<video-stem>/``, ``per_fish.csv``, ``per_fish_bins.csv``,
        ``group_stats.csv``, ``report.html``, ``figures/``, and copies of the manifest and
        config.
    workers
        Local worker processes (1 runs in this process); never more than one per trial.
    scheduler
        dask.distributed scheduler address (``"tcp://host:8786"``), a dask Cluster (e.g.
        ``dask_jobqueue.SLURMCluster``) or a Client; ``workers`` is then ignored.
    force
        Re-track every trial even when its outputs match the video and config.
    progress
        Called with :class:`ProgressEvent` objects.
    trial_fn, arenas_fn
        Replace the per-trial pipeline (:func:`track_trial`) and the arena check
        (:func:`detect_video_arenas`); top-level (picklable) functions.
    report
        Also write ``report.html`` and ``figures/`` (the CSV tables are always written).
    sheet
        Workbook manifests: the sheet to read (name or 1-based position; default the first).
        The sheet is stored as ``OUT/manifest.csv``.

    Returns
    -------
    ExperimentResult
        ``failures`` lists trials that failed; the others are complete.

    Raises
    ------
    ManifestError
        Every manifest problem at once (before any tracking): table problems, missing
        videos or protocol logs, wells that do not exist in their video.
    OutputError
        The output folder is locked by another run or not writable.
    """
    cfg = resolve_config(config)
    out = Path(out)
    with output_lock(out):
        man = (manifest if isinstance(manifest, Manifest)
               else read_run_manifest(Path(manifest), out, sheet))
        check_reference_group(man, cfg)
        plan = _plan(man, cfg, out, force)
        with Backend(workers, scheduler, progress is not None,
                     trials=len(man.videos)) as backend:
            fresh = not (out / "trials").exists()
            _check_wells(plan, backend, arenas_fn, progress)
            if plan.problems:
                _discard_found(plan, fresh)
            raise_problems(man.where, plan.problems)
            write_inputs(out, man, cfg, plan.names)  # record the experiment before work starts
            outcomes = _execute(plan, backend, trial_fn, progress, cfg, report)
            trials = _trials_table(plan, outcomes)
            update_state(out, trials)
            # the report's figures are drawn on the workers (one core each, issue 15)
            from fishtrack.experiment.aggregate import _compute_stats  # (scipy.stats)

            res = _compute_stats(out, man, cfg, plan.names, progress=progress, report=report,
                                 draw=backend.submit if backend.slots else None)
    res.trials = trials
    res.failures = [TrialFailure(o.trial, o.video, o.error, o.log)
                    for o in outcomes.values() if o.status == "failed"]
    return res


# --------------------------------------------------------------------------------------------
# check and plan


@dataclass
class _Plan:
    """What a run will do: one trial folder per video, its config and its status."""

    manifest: Manifest
    out: Path
    names: dict[str, str]
    """Trial folder name per video (relative path as in the manifest)."""
    configs: dict[str, Config] = field(default_factory=dict)
    """Config per video that can be tracked (its own config and protocol log applied)."""
    status: dict[str, FolderStatus] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    """Problems found so far (raised together after the wells are checked)."""
    folders: dict[str, TrialFolder] = field(default_factory=dict)

    def folder(self, video: str) -> TrialFolder:
        """The video's trial folder (one object per video: its provenance is read once)."""
        if video not in self.folders:
            self.folders[video] = TrialFolder(self.out / "trials" / self.names[video])
        return self.folders[video]

    def rows(self, video: str) -> pd.Series:
        table = self.manifest.table
        return table.loc[table["video"] == video, "row"]


def _plan(man: Manifest, cfg: Config, out: Path, force: bool) -> _Plan:
    """Check the videos and their configs; the status of every trial that can run."""
    plan = _Plan(man, out, trial_names(man.videos))
    for vid, grp in man.table.groupby("video", sort=False):
        if not path_exists(man.root / vid):
            where = "" if Path(vid).is_absolute() else f" in {man.root}"
            plan.problems.append(f"{rows_text(grp['row'])}: video '{vid}' not found{where}")
    present = [v for v in man.videos if path_exists(man.root / v)]
    plan.configs, problems = _trial_configs(
        man.table[man.table["video"].isin(present)], man.root, cfg
    )
    plan.problems += problems
    _clean_leftovers(out / "trials")
    for v in present:
        if v in plan.configs:
            st = plan.folder(v).status(man.root / v, plan.configs[v])
            plan.status[v] = "stale" if force and st != "missing" else st
    return plan


def _check_wells(plan: _Plan, backend: Backend, arenas_fn: ArenasFn | None,
                 progress: ProgressCallback | None) -> None:
    """Every manifest well exists in its video: the arenas recorded by a trial that is kept,
    else a fast arena detection (on the back-end) of the video to be tracked."""
    man = plan.manifest
    known: dict[str, list[str]] = {}
    to_check = []
    for v, st in plan.status.items():
        if st in ("current", "reclassify"):
            known[v] = _arenas_from_provenance(plan.folder(v))
        else:
            to_check.append(v)
    emit(progress, "check", 0, len(to_check))
    items = [(str(man.root / v), plan.configs[v], arenas_fn, backend.concurrent,
              str(found_path(plan.out, plan.names[v]))) for v in to_check]
    for n_done, (i, res) in enumerate(backend.map_unordered(_check_arenas, items), start=1):
        v = to_check[i]
        if isinstance(res, BaseException):
            res = (v, None, f"{v}: {type(res).__name__}: {res}")
        _, arena_names, err = res
        emit(progress, "check", n_done, len(to_check), trial=plan.names[v])
        if arena_names is None:
            plan.problems.append(f"{rows_text(plan.rows(v))}: cannot check the wells of '{v}': {err}")
        else:
            known[v] = arena_names
    for v, arena_list in known.items():
        if not arena_list:
            continue
        have = set(arena_list)
        sub = man.table[(man.table["video"] == v) & ~man.table["arena"].isin(have)]
        for _, r in sub.iterrows():
            plan.problems.append(
                f"row {r['row']}: arena '{r['arena']}' does not exist in '{v}' "
                f"({len(have)} arenas found: {arena_span(arena_list)})"
            )


def _discard_found(plan: _Plan, fresh: bool) -> None:
    """A refused run leaves the output folder as it found it: the backgrounds the wells check
    saved for the trials (:func:`~fishtrack.experiment.worker.found_path`) are deleted, and
    ``OUT/trials`` too if the check created it."""
    for name in plan.names.values():
        found_path(plan.out, name).unlink(missing_ok=True)
    trials = plan.out / "trials"
    if fresh and trials.is_dir() and not any(trials.iterdir()):
        trials.rmdir()


def _trial_configs(
    table: pd.DataFrame, root: Path, cfg: Config
) -> tuple[dict[str, Config], list[str]]:
    """Config per video: the manifest's per-video config (else the experiment's), with the
    protocol of the video's stimulus log when the manifest names one."""
    out: dict[str, Config] = {}
    problems: list[str] = []
    for vid, grp in table.groupby("video", sort=False):
        rows = rows_text(grp["row"])
        base = cfg
        own = grp["config"].iloc[0] if "config" in grp.columns else ""
        if own:
            try:
                base = load_config(root / own)
            except ConfigError as err:
                problems.append(f"{rows}: {err}")
                continue
        log = grp["protocol"].iloc[0] if "protocol" in grp.columns else ""
        if not log:
            out[vid] = base
            continue
        log_path = root / log
        if not path_exists(log_path):
            problems.append(f"{rows}: protocol log '{log}' not found")
            continue
        try:
            phases = _load_protocol(log_path, root / vid)
            out[vid] = base.model_copy(update={"protocol": phases})
        except (ConfigError, FishtrackError) as err:
            problems.append(f"{rows}: {err}")
    return out, problems


def _load_protocol(log: Path, video: Path) -> list:
    try:
        return load_protocol_log(log)
    except ConfigError as err:
        if "no end" not in str(err):
            raise
    folder = TrialFolder(video)
    if folder.is_imported():  # imported tracks: the duration their provenance records
        dur = folder.provenance().duration_s
        return load_protocol_log(log, end_s=float(dur) if dur else None)
    with open_video(video) as src:
        return load_protocol_log(log, end_s=float(src.meta.duration_s))


def _arenas_from_provenance(folder: TrialFolder) -> list[str]:
    try:
        return folder.provenance().arena_names
    except FishtrackError:
        return []


def _clean_leftovers(trials_dir: Path) -> None:
    """Remove temporary folders of a killed run; restore a trial caught between renames."""
    if not trials_dir.exists():
        return
    for p in trials_dir.iterdir():
        m = re.match(r"^\.(.+)\.(part|old)-[0-9a-f]{8}$", p.name)
        if not m or not p.is_dir():
            continue
        final = trials_dir / m.group(1)
        if m.group(2) == "old" and not final.exists() and (p / PROVENANCE).exists():
            os.rename(p, final)
        else:
            shutil.rmtree(p, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# execute


def _execute(plan: _Plan, backend: Backend, trial_fn: TrialFn | None,
             progress: ProgressCallback | None, cfg: Config,
             report: bool = False) -> dict[str, TrialOutcome]:
    """Run the trials that are not current; the outcome of every trial by name. Each
    trial's worker also prepares its statistics inputs for ``cfg`` (the experiment's); with
    ``report``, the report's imports are done while the workers run the trials
    (:func:`_prepare_report`)."""
    man = plan.manifest
    videos = man.videos
    tasks = []
    outcomes: dict[str, TrialOutcome] = {}
    for v in videos:
        name = plan.names[v]
        if plan.status[v] == "current":
            outcomes[name] = TrialOutcome(name, v, "skipped")
            continue
        mode = "reclassify" if plan.status[v] == "reclassify" else "track"
        tasks.append(TrialTask(name, str(man.root / v), str(plan.out), plan.configs[v], mode,
                               trial_fn, backend.concurrent, rows=man.table[man.table["video"] == v],
                               stats_config=cfg, rel_video=v))
    # the largest videos first, so that the last trials of a run, which may leave a worker
    # idle, are its shortest (the file size stands for the frames to decode and track)
    tasks.sort(key=lambda t: -_file_bytes(t.video))
    total = len(videos)
    n_done = 0
    for name in outcomes:
        n_done += 1
        emit(progress, "trial", 1, 1, trial=name, status="skipped")
        emit(progress, "overall", n_done, total, trial=name, status="skipped")
    for t in tasks:
        emit(progress, "trial", 0, 0, trial=t.name, status="queued")

    def drain() -> None:
        q = backend.queue
        while q is not None:
            try:
                tname, d, tot = q.get_nowait()
            except Exception:  # noqa: BLE001 - queue.Empty
                return
            emit(progress, "trial", d, tot, trial=tname, status="running")

    items = [(t,) for t in tasks]  # a spawned worker's progress queue is inherited
    if not backend.parallel and progress is not None:
        items = [(t, InlineQueue(progress)) for t in tasks]
    rel = {plan.names[v]: v for v in videos}

    def queued() -> None:
        _prepare_report(backend, report)

    for i, oc in backend.map_unordered(_execute_trial, items, on_tick=drain, queued=queued):
        t = tasks[i]
        if isinstance(oc, BaseException):  # e.g. a worker killed by the OS or the cluster
            why = f"{t.video}: worker lost ({type(oc).__name__}: {oc})"
            oc = TrialOutcome(t.name, t.video, "failed", 0.0, why)
        oc.video = rel[t.name]
        drain()
        outcomes[t.name] = oc
        n_done += 1
        emit(progress, "trial", 1, 1, trial=t.name, status=oc.status, message=oc.error)
        emit(progress, "overall", n_done, total, trial=t.name, status=oc.status)
    return outcomes


def _file_bytes(path: str) -> int:
    """Size of a video file (0 for a folder of imported tracks, or unreadable)."""
    try:
        return os.stat(path).st_size if os.path.isfile(path) else 0
    except OSError:
        return 0


def _prepare_report(backend: Backend, report: bool = True) -> None:
    """Once the trials are queued on the workers (issue 15): the statistics' imports in this
    process (``scipy.stats``, ~0.7 s of CPU: not before the workers start) and, with
    ``report``, the report's (~0.5 s), which this process only waits for, and in every
    worker, queued behind the trials, so the report's figures (drawn on the workers after the
    trials) start at once."""
    if report:
        for _ in range(backend.slots):
            backend.start(prepare_report)
    import fishtrack.experiment.aggregate  # noqa: F401
    if report:
        import fishtrack.report  # noqa: F401


def _trials_table(plan: _Plan, outcomes: dict[str, TrialOutcome]) -> pd.DataFrame:
    """One row per trial in manifest order: ``trial, video, status, seconds, error``."""
    rows = []
    for v in plan.manifest.videos:
        o = outcomes[plan.names[v]]
        rows.append({"trial": plan.names[v], "video": v, "status": o.status,
                     "seconds": round(o.seconds, 2), "error": o.error})
    return pd.DataFrame(rows)
