"""``fishtrack verify``: re-check an output folder against its provenance.

A *trial folder* (``fishtrack track --out DIR``, or ``OUT/trials/<name>/`` of a run) is checked
against its ``provenance.json``:

* ``provenance.json`` is present (it is written last: without it the trial is incomplete) and
  holds the keys fishtrack writes;
* the recorded config is a valid config and hashes to the recorded ``config_hash``;
* the input video still exists and matches its recorded identity (size and SHA-256 of the
  first MiB; for an image folder the file listing; for a trial folder written by ``fishtrack
  import``, the SHA-256 of its content);
* ``tracks.parquet``, ``bouts.csv`` and ``epochs.csv`` are present and readable, and when the
  provenance records their size and SHA-256 (``outputs``), they are unchanged;
* frame alignment: every fish has exactly one row per frame, frames ``0 .. frames_read - 1``
  (so the table has ``frames_read`` x fish rows), and bouts and epochs name only tracked fish.

An *experiment folder* (``fishtrack run --out OUT``) is checked as a whole: ``config.yaml`` and
``manifest.csv`` are valid, every trial of the manifest is a complete trial folder that passes
the checks above (its input is the manifest's video) and was tracked with the experiment's
config (unless the manifest gives that video its own config), no trial failed in the last run,
and the statistics tables are present.

:func:`verify_folder` returns a :class:`VerifyReport`; ``report.raise_for_problems()`` raises
:class:`fishtrack.errors.VerifyError` (exit code 8) listing every problem.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from fishtrack.config import Config, config_hash, load_config, parse_config
from fishtrack.errors import FishtrackError, VerifyError
from fishtrack.experiment.lock import LOCK_NAME, lock_is_stale
from fishtrack.experiment.manifest import Manifest, path_exists, read_manifest, trial_names
from fishtrack.experiment.state import STATE_FILE
from fishtrack.io.provenance import read_provenance
from fishtrack.trial import (
    BOUTS,
    EPOCHS,
    TABLES,
    TRACKS,
    Provenance,
    TrialFolder,
    input_identity,
)

__all__ = ["VerifyReport", "verify_folder", "verify_trial", "verify_experiment"]

TRIAL_TABLES = TABLES
STATS_TABLES = ("per_fish.csv", "per_fish_bins.csv", "group_stats.csv")
_PROVENANCE_KEYS = ("config", "config_hash", "input", "frames_read")


@dataclass
class VerifyReport:
    """What :func:`verify_folder` found.

    Attributes
    ----------
    folder
        The folder checked.
    kind
        ``"trial"`` or ``"experiment"``.
    problems
        One line per mismatch (empty when the folder is consistent).
    notes
        Things worth knowing that are not mismatches (damaged frames found while decoding,
        leftovers of an interrupted run).
    n_checks
        How many checks were made.
    """

    folder: Path
    kind: Literal["trial", "experiment"]
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    n_checks: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_for_problems(self) -> None:
        """Raise :class:`VerifyError` listing every problem (nothing when there is none)."""
        if not self.problems:
            return
        n = len(self.problems)
        err = VerifyError(
            f"{self.folder}: {n} problem{'s' if n > 1 else ''} found by verify: "
            + "; ".join(self.problems)
        )
        err.problems = [f"{self.folder}: {p}" for p in self.problems]  # type: ignore[attr-defined]
        raise err


class _Checks:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.notes: list[str] = []
        self.n = 0

    def check(self, ok: bool, problem: str) -> bool:
        self.n += 1
        if not ok:
            self.problems.append(problem)
        return ok


def verify_folder(folder: str | Path, *, video: str | Path | None = None) -> VerifyReport:
    """Check a trial or experiment folder against its provenance.

    Parameters
    ----------
    folder
        A trial folder (holds ``provenance.json`` or at least ``tracks.parquet``) or an
        experiment folder (holds ``experiment.json`` or ``manifest.csv``).
    video
        Trial folders only: where the input video is now, when it is no longer at the path
        recorded in ``provenance.json``.

    Raises
    ------
    FishtrackError
        ``folder`` does not exist or is neither kind of folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FishtrackError(f"{folder}: no such folder")
    if (folder / STATE_FILE).exists() or (folder / "manifest.csv").exists():
        return verify_experiment(folder)
    if TrialFolder(folder).present():
        return verify_trial(folder, video=video)
    raise FishtrackError(
        f"{folder}: not a fishtrack output folder (no provenance.json, tracks.parquet or "
        "experiment.json); give a trial folder or the --out folder of `fishtrack run`"
    )


# ------------------------------------------------------------------------------------------
# trial folders


def verify_trial(
    folder: str | Path,
    *,
    video: str | Path | None = None,
    config: Any = None,
) -> VerifyReport:
    """Check one trial folder (see the module docstring).

    ``video`` overrides the input path recorded in the provenance; ``config`` (a
    :class:`fishtrack.config.Config`), when given, must have the same tracking and behaviour
    settings as the ones the trial was produced with.
    """
    folder = Path(folder)
    c = _Checks()
    _check_trial(TrialFolder(folder), c, video=None if video is None else Path(video), config=config)
    return VerifyReport(folder, "trial", c.problems, c.notes, c.n)


def _check_trial(folder: TrialFolder, c: _Checks, *, video: Path | None, config: Any) -> None:
    prov_path = folder.provenance_path
    if not c.check(prov_path.exists(),
                   "no provenance.json: the trial is incomplete (an interrupted or failed run); "
                   "run it again"):
        _check_tables_present(folder, c)
        return
    try:  # the file as written: the checks below say what is wrong with it
        data = read_provenance(prov_path)
    except FishtrackError as err:
        c.check(False, f"provenance.json cannot be read ({_after_path(err, prov_path)})")
        return
    if not c.check(isinstance(data, dict), "provenance.json does not hold a JSON object"):
        return
    prov = Provenance(data, path=prov_path)
    missing = [k for k in _PROVENANCE_KEYS if k not in data]
    c.check(not missing, f"provenance.json lacks {', '.join(missing)}")
    _check_config(prov, c, config)
    _check_input(prov, c, video)
    present = _check_tables_present(folder, c)
    _check_digests(folder, prov, c)
    if TRACKS in present:
        _check_rows(folder, prov, c, present)
    damaged = prov.damaged_frames
    if damaged:
        kinds = sorted({str(d.get("kind")) for d in damaged if isinstance(d, dict)})
        c.notes.append(f"{len(damaged)} damage record(s) from decoding ({', '.join(kinds)})")


def _after_path(err: Exception, path: Path) -> str:
    text = str(err)
    prefix = f"{path}: "
    return text[len(prefix):] if text.startswith(prefix) else text


def _check_config(prov: Provenance, c: _Checks, config: Config | None) -> None:
    rec = prov.data.get("config")
    if rec is None:
        return
    c.check(config_hash(rec) == prov.config_hash,
            "config_hash does not match the config recorded in provenance.json (edited by "
            "hand?)")
    try:
        parse_config(rec, "provenance.json config")
    except FishtrackError as err:
        c.check(False, f"the recorded config is not valid for this fishtrack version ({err})")
        return
    if config is not None:  # the protocol may come from the manifest's stimulus log
        c.check(prov.same_tracking(config),
                "tracked with other video / arenas / tracking settings than the experiment's "
                "config.yaml (run `fishtrack run` again to redo it)")
        c.check(prov.same_scoring(config, protocol=False),
                "scored with other behaviour settings than the experiment's config.yaml (run "
                "`fishtrack run` again to re-score it)")


def _check_input(prov: Provenance, c: _Checks, video: Path | None) -> None:
    rec = prov.data.get("input")
    if not isinstance(rec, dict):
        return
    if video is not None:
        candidates = [video]
    else:  # as given to the run (maybe relative to where it ran), then its absolute path
        candidates = [Path(str(rec[k])) for k in ("path", "abs_path", "name") if rec.get(k)]
    path = next((p for p in candidates if path_exists(p)), candidates[0] if candidates else Path(""))
    if not c.check(path_exists(path), f"input video {path} not found (moved? give its new place "
                                  "with --video)"):
        return
    try:
        now = input_identity(path)
    except OSError as err:
        c.check(False, f"input video {path} cannot be read ({err.strerror or err})")
        return
    for key, what in (("size_bytes", "size"), ("sha256_first_mib", "SHA-256 of the first MiB"),
                      ("n_files", "number of images"), ("sha256_listing", "file listing"),
                      ("sha256_content", "SHA-256 of the imported tracks")):
        if key in rec or key in now:
            c.check(rec.get(key) == now.get(key),
                    f"input video {path} changed since the trial was made: {what} is "
                    f"{_short(now.get(key))}, provenance.json records {_short(rec.get(key))}")


def _short(v: Any) -> str:
    s = str(v)
    return s if len(s) <= 16 else s[:12] + "..."


def _check_tables_present(folder: TrialFolder, c: _Checks) -> list[str]:
    present = []
    for name in TRIAL_TABLES:
        if c.check((folder.path / name).is_file(), f"{name} is missing"):
            present.append(name)
    return present


def _check_digests(folder: TrialFolder, prov: Provenance, c: _Checks) -> None:
    rec = prov.outputs
    if rec is None:
        return
    now = folder.digests()
    for name, d in rec.items():
        if name not in now or not isinstance(d, dict):
            continue  # a missing table is reported once, above
        same = d.get("size_bytes") == now[name]["size_bytes"] and d.get("sha256") == now[name]["sha256"]
        c.check(same, f"{name} changed since it was written (size or SHA-256 differs from "
                      "provenance.json)")


def _check_rows(folder: TrialFolder, prov: Provenance, c: _Checks, present: list[str]) -> None:
    try:
        tracks = folder.tracks(columns=("frame", "fish"))
    except FishtrackError as err:
        c.check(False, f"tracks.parquet: {_after_path(err, folder.tracks_path)}")
        return
    if not c.check(list(tracks.columns) == ["frame", "fish"],
                   "tracks.parquet has no frame or fish column"):
        return
    try:
        frames_read = int(prov.data.get("frames_read"))
    except (TypeError, ValueError):
        c.check(False, "provenance.json has no valid frames_read")
        return
    fish = tracks["fish"].astype(str)
    n_fish = int(fish.nunique())
    c.check(len(tracks) == frames_read * n_fish,
            f"tracks.parquet has {len(tracks)} rows; expected frames_read x fish = "
            f"{frames_read} x {n_fish} = {frames_read * n_fish}")
    frame = pd.to_numeric(tracks["frame"], errors="coerce")
    per_fish = pd.DataFrame({"fish": fish, "frame": frame}).groupby("fish")["frame"]
    stats = per_fish.agg(["count", "nunique", "min", "max"])
    bad = stats[(stats["count"] != frames_read) | (stats["nunique"] != frames_read)
                | (stats["min"] != 0) | (stats["max"] != frames_read - 1)]
    shown = ", ".join(
        f"{f} ({int(r['count'])} rows, frames {r['min']:g}-{r['max']:g})" for f, r in bad.head(5).iterrows()
    )
    more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
    c.check(bad.empty, f"fish without exactly one row per frame 0-{frames_read - 1}: {shown}{more}")
    rates = prov.summary.get("detection_rate")
    if isinstance(rates, dict):
        c.check(set(rates) == set(fish.unique()),
                f"tracks.parquet holds fish {_names(set(fish.unique()))} but provenance.json "
                f"lists {_names(set(rates))}")
    tracked = set(fish.unique())
    for name, read in ((BOUTS, folder.bouts), (EPOCHS, folder.epochs)):
        if name not in present:
            continue
        try:
            table = read(columns=("fish",))
        except FishtrackError as err:
            c.check(False, f"{name}: {_after_path(err, folder.path / name)}")
            continue
        if "fish" in table.columns:
            extra = set(table["fish"].dropna()) - tracked
            c.check(not extra, f"{name} names fish not in tracks.parquet: {_names(extra)}")


def _names(items: set) -> str:
    items = sorted(map(str, items))
    return ", ".join(items[:8]) + (f" and {len(items) - 8} more" if len(items) > 8 else "") or "none"


# ------------------------------------------------------------------------------------------
# experiment folders


def verify_experiment(folder: str | Path) -> VerifyReport:
    """Check an experiment folder and every trial in it (see the module docstring)."""
    folder = Path(folder)
    c = _Checks()
    state: dict = {}
    if c.check((folder / STATE_FILE).is_file(), f"{STATE_FILE} is missing (not written by a "
                                                 "complete `fishtrack run`?)"):
        try:
            state = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            c.check(False, f"{STATE_FILE} cannot be read ({err})")
    cfg = None
    if c.check((folder / "config.yaml").is_file(), "config.yaml is missing"):
        try:
            cfg = load_config(folder / "config.yaml")
        except FishtrackError as err:
            c.check(False, f"config.yaml is not valid ({_after_path(err, folder / 'config.yaml')})")
    man = None
    if c.check((folder / "manifest.csv").is_file(), "manifest.csv is missing"):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # encoding warnings were given by the run
                man = read_manifest(folder / "manifest.csv", root=state.get("manifest_root"))
        except FishtrackError as err:
            c.check(False, f"manifest.csv is not valid ({_after_path(err, folder / 'manifest.csv')})")
    lock = folder / LOCK_NAME
    if lock.exists():
        try:
            info = json.loads(lock.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            info = {}
        c.check(lock_is_stale(info),
                f"a run is using this folder ({LOCK_NAME}: pid {info.get('pid', '?')} on "
                f"{info.get('host', '?')}); verify it when the run has finished")
    trials_dir = folder / "trials"
    leftovers = sorted(p.name for p in trials_dir.glob(".*.part-*")) if trials_dir.is_dir() else []
    if leftovers:
        c.notes.append(f"{len(leftovers)} temporary folder(s) of an interrupted run in trials/ "
                       "(the next run removes them)")
    if man is not None:
        _check_trials(folder, man, state, cfg, c)
    last = {r.get("trial"): r for r in state.get("last_run") or [] if isinstance(r, dict)}
    for name, r in last.items():
        c.check(r.get("status") != "failed",
                f"trial '{name}' failed in the last run: {r.get('error') or 'no message'}")
    for name in STATS_TABLES:
        c.check((folder / name).is_file(), f"{name} is missing (run `fishtrack stats {folder}`)")
    return VerifyReport(folder, "experiment", c.problems, c.notes, c.n)


def _check_trials(folder: Path, man: Manifest, state: dict, cfg: Config | None,
                  c: _Checks) -> None:
    stored = {v: k for k, v in (state.get("trials") or {}).items()}
    names = trial_names(man.videos)
    own_config = "config" in man.table.columns
    for vid in man.videos:
        name = stored.get(vid, names[vid])
        tdir = folder / "trials" / name
        if not c.check(tdir.is_dir(), f"trials/{name}: missing (video '{vid}' was not tracked)"):
            continue
        rows = man.table[man.table["video"] == vid]
        has_own = own_config and bool(rows["config"].iloc[0])
        sub = _Checks()
        _check_trial(TrialFolder(tdir), sub, video=man.root / vid, config=None if has_own else cfg)
        c.n += sub.n
        c.problems += [f"trials/{name}: {p}" for p in sub.problems]
        c.notes += [f"trials/{name}: {n}" for n in sub.notes]
