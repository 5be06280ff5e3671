"""Running an experiment: check the manifest and wells, plan which trials to (re)do, execute
them on a back-end, then aggregate (:mod:`fishtrack.experiment.aggregate`)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from fishtrack.config import Config, parse_config
from fishtrack.errors import FishtrackError
from fishtrack.experiment.aggregate import _compute_stats
from fishtrack.experiment.backends import _Backend, _InlineQueue, _QueueProgress
from fishtrack.experiment.lock import output_lock
from fishtrack.experiment.manifest import (
    Manifest,
    _arena_span,
    _cell,
    _exists,
    _raise_problems,
    _rows_text,
    read_manifest,
    trial_names,
)
from fishtrack.experiment.records import (
    ExperimentResult,
    ProgressCallback,
    Status,
    TrialFailure,
    TrialOutcome,
    _emit,
)
from fishtrack.experiment.state import STATE_FILE, _read_state, _update_state, _write_inputs

TRIAL_FILES = ("tracks.parquet", "bouts.csv", "epochs.csv", "provenance.json")
"""Files a complete trial folder holds (``provenance.json`` is written last)."""

# ============================================================================================
# trials: names, status, execution


_SPEED_ONLY = {"video": ("chunk_size",)}
"""Settings that change speed or memory but not results: ignored when deciding to redo."""


def _section_hash(cfg_dict: dict, keys: tuple[str, ...]) -> str:
    part = {k: cfg_dict.get(k) for k in keys}
    for sec, fields in _SPEED_ONLY.items():
        if isinstance(part.get(sec), dict):
            part[sec] = {k: v for k, v in part[sec].items() if k not in fields}
    blob = json.dumps(part, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


_TRACK_KEYS = ("video", "arenas", "tracking")
_BEHAV_KEYS = ("behaviour", "protocol")


def trial_status(
    folder: str | Path, video: str | Path, config: Config
) -> Literal["current", "reclassify", "stale", "missing"]:
    """Whether a trial folder already holds the outputs for ``video`` with ``config``.

    ``current``: every file present, the input file identity (size, hash of the first MiB;
    an imported trial folder: hash of its content) and the tracking and behaviour config (hash of the ``video``, ``arenas``, ``tracking``,
    ``behaviour``, ``protocol`` sections, without the speed-only ``video.chunk_size``) match. ``reclassify``: only ``behaviour`` or
    ``protocol`` changed (the tracks are re-scored, not re-tracked). ``stale``: the video or
    the tracking config changed. ``missing``: no complete trial folder.
    """
    from fishtrack.importers import IDENTITY_KEYS, input_identity
    from fishtrack.io.provenance import read_provenance

    folder = Path(folder)
    if not all((folder / f).exists() for f in TRIAL_FILES):
        return "missing"
    try:
        prov = read_provenance(folder / "provenance.json")
        ident = input_identity(video)
    except (FishtrackError, OSError):
        return "missing"
    inp = prov.get("input") or {}
    for k in IDENTITY_KEYS:
        if inp.get(k) != ident.get(k):
            return "stale"
    try:
        old = parse_config(prov.get("config") or {}, "provenance").model_dump(mode="json")
    except FishtrackError:
        return "stale"
    new = config.model_dump(mode="json")
    if _section_hash(old, _TRACK_KEYS) != _section_hash(new, _TRACK_KEYS):
        return "stale"
    old_b = {
        "behaviour": prov.get("behaviour_config", old.get("behaviour")),
        "protocol": prov.get("protocol", old.get("protocol")),
    }
    try:  # fill defaults of fields added since
        old_b["behaviour"] = parse_config({"behaviour": old_b["behaviour"]}).behaviour.model_dump(mode="json")
    except FishtrackError:
        return "reclassify"
    if _section_hash(old_b, _BEHAV_KEYS) != _section_hash(new, _BEHAV_KEYS):
        return "reclassify"
    return "current"


TrialFn = Callable[..., Any]
"""``trial_fn(video, config, out_folder, progress=None)`` writes a complete trial folder."""
ArenasFn = Callable[[Path, Config], list[str]]
"""``arenas_fn(video, config) -> [arena names]`` (fast check before tracking)."""


def track_trial(video: Path, config: Config, out: Path, progress=None) -> None:
    """Default trial function: :func:`fishtrack.pipeline.track_to_folder`."""
    from fishtrack.pipeline import track_to_folder

    track_to_folder(video, config, out, progress=progress)


def detect_video_arenas(video: Path, config: Config) -> list[str]:
    """Default arena check: background of sampled frames + arena detection; the arena names."""
    from fishtrack.arenas import detect_arenas
    from fishtrack.io.video import open_video
    from fishtrack.tracking import estimate_background

    with open_video(video, crop=config.video.crop, fps=config.video.fps) as src:
        bg = estimate_background(src, config.tracking)
    return [a.name for a in detect_arenas(bg.image, config.arenas)]


@dataclass
class TrialTask:
    """Everything a worker needs to produce one trial folder (picklable)."""

    name: str
    video: str
    out_root: str
    config: Config
    mode: Literal["track", "reclassify"] = "track"
    trial_fn: TrialFn | None = None



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
    progress = _QueueProgress(queue, task.name) if queue is not None else None
    try:
        if task.mode == "reclassify":
            from fishtrack.pipeline import classify_folder

            shutil.copytree(final, tmp)
            classify_folder(tmp, task.config)
        elif _is_imported(task.video):  # a `fishtrack import` folder: classified, not tracked
            from fishtrack.importers import classify_imported

            tmp.mkdir(parents=True)
            classify_imported(task.video, task.config, tmp)
        else:
            tmp.mkdir(parents=True)
            fn = task.trial_fn or track_trial
            fn(Path(task.video), task.config, tmp, progress=progress)
        absent = [f for f in TRIAL_FILES if not (tmp / f).exists()]
        if absent:
            raise FishtrackError(f"{task.video}: the trial produced no {', '.join(absent)}")
        _replace_dir(tmp, final)
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


def _check_arenas(video: str, config: Config, arenas_fn: ArenasFn | None) -> tuple[str, list[str] | None, str]:
    """Worker entry point of the arena check: (video, names or None, error)."""
    try:
        if _is_imported(video):  # imported tracks: the arenas they name
            from fishtrack.importers import imported_arenas

            return video, imported_arenas(video), ""
        fn = arenas_fn or detect_video_arenas
        return video, list(fn(Path(video), config)), ""
    except FishtrackError as err:
        return video, None, str(err)
    except Exception as err:  # noqa: BLE001 - reported with the other manifest problems
        return video, None, f"{video}: {type(err).__name__}: {err}"



def _clean_leftovers(trials_dir: Path) -> None:
    """Remove temporary folders of a killed run; restore a trial caught between renames."""
    if not trials_dir.exists():
        return
    for p in trials_dir.iterdir():
        m = re.match(r"^\.(.+)\.(part|old)-[0-9a-f]{8}$", p.name)
        if not m or not p.is_dir():
            continue
        final = trials_dir / m.group(1)
        if m.group(2) == "old" and not final.exists() and (p / "provenance.json").exists():
            os.rename(p, final)
        else:
            shutil.rmtree(p, ignore_errors=True)



# ============================================================================================
# run


def _trial_configs(
    table: pd.DataFrame, root: Path, cfg: Config
) -> tuple[dict[str, Config], list[str]]:
    """Config per video: the manifest's per-video config (else the experiment's), with the
    protocol of the video's stimulus log when the manifest names one."""
    from fishtrack.config import load_config
    from fishtrack.errors import ConfigError

    out: dict[str, Config] = {}
    problems: list[str] = []
    for vid, grp in table.groupby("video", sort=False):
        rows = _rows_text(grp["row"])
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
        if not _exists(log_path):
            problems.append(f"{rows}: protocol log '{log}' not found")
            continue
        try:
            phases = _load_protocol(log_path, root / vid)
            out[vid] = base.model_copy(update={"protocol": phases})
        except (ConfigError, FishtrackError) as err:
            problems.append(f"{rows}: {err}")
    return out, problems


def _load_protocol(log: Path, video: Path) -> list:
    from fishtrack.behaviour.protocol import load_protocol_log
    from fishtrack.errors import ConfigError

    try:
        return load_protocol_log(log)
    except ConfigError as err:
        if "no end" not in str(err):
            raise
    if _is_imported(video):  # imported tracks: the duration their provenance records
        from fishtrack.io.provenance import read_provenance

        dur = (read_provenance(video / "provenance.json").get("video") or {}).get("duration_s")
        return load_protocol_log(log, end_s=float(dur) if dur else None)
    from fishtrack.io.video import open_video

    with open_video(video) as src:
        return load_protocol_log(log, end_s=float(src.meta.duration_s))


def _is_imported(video: str | Path) -> bool:
    """A manifest ``video`` that is a trial folder written by ``fishtrack import``."""
    from fishtrack.importers import is_imported_trial

    return is_imported_trial(video)


def run_experiment(
    manifest: str | Path,
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
        Manifest CSV or Excel workbook (see the module docstring).
    config
        Config, YAML path, mapping or ``None`` (defaults).
    out
        Experiment folder: ``trials/<video-stem>/``, ``per_fish.csv``, ``per_fish_bins.csv``,
        ``group_stats.csv``, ``report.html``, ``figures/``, and copies of the manifest and
        config.
    workers
        Local worker processes (1 runs in this process).
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
    from fishtrack.pipeline import resolve_config

    cfg = resolve_config(config)
    out = Path(out)
    manifest = Path(manifest)
    with output_lock(out):
        root = None
        state_file = out / STATE_FILE
        if manifest.resolve() == (out / "manifest.csv").resolve() and state_file.exists():
            root = _read_state(out).get("manifest_root")
        man = read_manifest(manifest, root=root, sheet=sheet)
        _check_reference_group(man, cfg)
        videos = man.videos
        names = trial_names(videos)
        problems = []
        for vid, grp in man.table.groupby("video", sort=False):
            if not _exists(man.root / vid):
                where = "" if Path(vid).is_absolute() else f" in {man.root}"
                problems.append(f"{_rows_text(grp['row'])}: video '{vid}' not found{where}")
        present = [v for v in videos if _exists(man.root / v)]
        tconf, pproblems = _trial_configs(
            man.table[man.table["video"].isin(present)], man.root, cfg
        )
        problems += pproblems
        trials_dir = out / "trials"
        _clean_leftovers(trials_dir)
        status: dict[str, str] = {}
        for v in present:
            if v not in tconf:
                continue
            st = trial_status(trials_dir / names[v], man.root / v, tconf[v])
            status[v] = "stale" if force and st != "missing" else st

        with _Backend(workers, scheduler, progress is not None) as backend:
            # arena check (fast) for every video to be tracked; current trials use provenance
            known: dict[str, list[str]] = {}
            to_check = []
            for v in present:
                if v in tconf and status.get(v) in ("current", "reclassify"):
                    known[v] = _arenas_from_provenance(trials_dir / names[v])
                elif v in tconf:
                    to_check.append(v)
            _emit(progress, "check", 0, len(to_check))
            items = [(str(man.root / v), tconf[v], arenas_fn) for v in to_check]
            n_done = 0
            for i, res in backend.map_unordered(_check_arenas, items):
                v = to_check[i]
                if isinstance(res, BaseException):
                    res = (v, None, f"{v}: {type(res).__name__}: {res}")
                _, arena_names, err = res
                n_done += 1
                _emit(progress, "check", n_done, len(to_check), trial=names[v])
                rows = man.table.loc[man.table["video"] == v, "row"]
                if arena_names is None:
                    problems.append(f"{_rows_text(rows)}: cannot check the wells of '{v}': {err}")
                else:
                    known[v] = arena_names
            for v, arena_list in known.items():
                if not arena_list:
                    continue
                have = set(arena_list)
                sub = man.table[(man.table["video"] == v) & ~man.table["arena"].isin(have)]
                for _, r in sub.iterrows():
                    problems.append(
                        f"row {r['row']}: arena '{r['arena']}' does not exist in '{v}' "
                        f"({len(have)} arenas found: {_arena_span(arena_list)})"
                    )
            _raise_problems(man.where, problems)

            # record the experiment before work starts
            _write_inputs(out, man, cfg, names)

            tasks = []
            outcomes: dict[str, TrialOutcome] = {}
            for v in videos:
                name = names[v]
                if status[v] == "current":
                    outcomes[name] = TrialOutcome(name, v, "skipped")
                    continue
                mode = "reclassify" if status[v] == "reclassify" else "track"
                tasks.append(TrialTask(name, str(man.root / v), str(out), tconf[v], mode, trial_fn))
            total = len(videos)
            n_done = 0
            for name in outcomes:
                n_done += 1
                _emit(progress, "trial", 1, 1, trial=name, status="skipped")
                _emit(progress, "overall", n_done, total, trial=name, status="skipped")
            for t in tasks:
                _emit(progress, "trial", 0, 0, trial=t.name, status="queued")

            def drain() -> None:
                q = backend.queue
                while q is not None:
                    try:
                        tname, d, tot = q.get_nowait()
                    except Exception:  # noqa: BLE001 - queue.Empty from a manager proxy
                        return
                    _emit(progress, "trial", d, tot, trial=tname, status="running")

            items = [(t, backend.queue) for t in tasks]
            if backend.pool is None and backend.client is None and progress is not None:
                items = [(t, _InlineQueue(progress)) for t in tasks]
            rel = {names[v]: v for v in videos}
            for i, oc in backend.map_unordered(_execute_trial, items, on_tick=drain):
                t = tasks[i]
                if isinstance(oc, BaseException):  # e.g. a worker killed by the OS or the cluster
                    why = f"{t.video}: worker lost ({type(oc).__name__}: {oc})"
                    oc = TrialOutcome(t.name, t.video, "failed", 0.0, why)
                oc.video = rel[t.name]
                drain()
                outcomes[t.name] = oc
                n_done += 1
                _emit(progress, "trial", 1, 1, trial=t.name, status=oc.status, message=oc.error)
                _emit(progress, "overall", n_done, total, trial=t.name, status=oc.status)

        trials = pd.DataFrame(
            [
                {"trial": names[v], "video": v, "status": outcomes[names[v]].status,
                 "seconds": round(outcomes[names[v]].seconds, 2), "error": outcomes[names[v]].error}
                for v in videos
            ]
        )
        failures = [
            TrialFailure(o.trial, o.video, o.error, o.log) for o in outcomes.values() if o.status == "failed"
        ]
        _update_state(out, trials)
        res = _compute_stats(out, man, cfg, names, progress=progress, report=report)
    res.trials = trials
    res.failures = failures
    return res


def _check_reference_group(man: Manifest, cfg: Config) -> None:
    from fishtrack.errors import ConfigError
    from fishtrack.stats import METRICS

    groups = sorted(set(man.table["group"]))
    if cfg.stats.reference_group not in groups:
        raise ConfigError(
            f"stats.reference_group: {_cell(cfg.stats.reference_group)} is not a group in "
            f"{man.path} (groups: {', '.join(_cell(g) for g in groups[:20])}); set "
            "stats.reference_group in the config"
        )
    if "condition" in man.table.columns:
        conds = [c for c in dict.fromkeys(man.table["condition"].astype(str).str.strip()) if c]
        ref = cfg.stats.reference_condition
        if len(conds) > 1 and ref not in conds:
            what = "is not set" if ref is None else f"{_cell(ref)} is not a condition"
            raise ConfigError(
                f"stats.reference_condition: {what}; {man.path} has conditions "
                f"{', '.join(_cell(c) for c in conds[:20])} (a within-fish design); set "
                "stats.reference_condition in the config"
            )
    if cfg.stats.primary.metric not in METRICS:
        raise ConfigError(
            f"stats.primary.metric: {_cell(cfg.stats.primary.metric)} is not a compared metric "
            f"(allowed: {', '.join(METRICS)})"
        )



def _arenas_from_provenance(folder: Path) -> list[str]:
    from fishtrack.io.provenance import read_provenance

    try:
        prov = read_provenance(folder / "provenance.json")
    except FishtrackError:
        return []
    return [a.get("name") for a in prov.get("arenas", []) if isinstance(a, dict) and a.get("name")]
