"""The per-trial statistics inputs of an experiment, computed once per trial and kept in the
trial folder (issue 15: moves them out of the serial statistics after a run).

For every trial the statistics need the per-fish metrics (:func:`fishtrack.stats.
per_fish_metrics`), the binned passive fraction and the assay analyses' per-trial inputs
(:func:`fishtrack.stats.trialparts.trial_parts`: the metrics at every give-up threshold and the
onset-locked traces); together ~0.6 s of CPU per 2x3-well trial of 30 s at 50 fps. A run's
worker computes them right after the trial (:func:`prepare_trial_tables`, in the parallel
phase) and keeps them in ``OUT/trials/<trial>/.stats/`` (Parquet, written atomically), keyed
by everything they depend on (:func:`tables_key`): the trial folder's files (name, size,
modification time), the trial's manifest rows, the experiment config's hash and the source of
the modules that compute them. The statistics (:func:`trial_tables`) load them when the key
matches and compute (and keep) them otherwise, so the tables are the same either way.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from fishtrack.config import Config, config_hash
from fishtrack.errors import FishtrackError
from fishtrack.experiment.manifest import arena_span
from fishtrack.trial import PROVENANCE, TRACKS, Provenance, TrialFolder

__all__ = ["TABLES_DIR", "TrialData", "load_trial", "prepare_trial_tables", "tables_key",
           "trial_tables"]

TABLES_DIR = ".stats"
"""Folder of a trial's kept statistics inputs (hidden: not one of the trial's outputs)."""

_TABLES = ("per_fish", "bins", "sensitivity", "traces")
_CODE = ("fishtrack.experiment.trialstats", "fishtrack.stats.metrics",
         "fishtrack.stats.sensitivity", "fishtrack.stats.eventlocked", "fishtrack.stats.trialparts",
         "fishtrack.behaviour.states", "fishtrack.behaviour.qc", "fishtrack.corrections",
         "fishtrack.align")
"""Modules whose code the kept tables depend on (their source is part of the key)."""

TRACK_COLUMNS = ("frame", "time_s", "arena", "fish", "detected", "state", "in_bout", "x", "y",
                 "heading", "tail_angle", "area_px", "id_uncertain",
                 # the behaviour QC figure's signals (absent columns are skipped)
                 "vigour_rad_s", "bout_speed_px_s", "bout_motion_grey")


@dataclass
class TrialData:
    name: str
    video: str
    tracks: pd.DataFrame
    bouts: pd.DataFrame
    epochs: pd.DataFrame
    protocol: list
    prov: Provenance
    fish_rows: pd.DataFrame
    corrections: int = 0
    px_per_mm: float | None = None


def _fish_rows(man_rows: pd.DataFrame, trial: str) -> pd.DataFrame:
    """Manifest rows of one video as the stats stage's fish table (matched on ``arena``)."""
    rows = man_rows.rename(columns={"row": "manifest_row"}).copy()
    rows.insert(rows.columns.get_loc("fish_id") + 1, "trial_dir", trial)
    return rows.reset_index(drop=True)


def load_trial(folder: TrialFolder, name: str, video: str, man_rows: pd.DataFrame,
               cfg: Config) -> tuple[TrialData | None, list[str]]:
    """A trial's tables as the statistics use them (manifest wells only, manual corrections
    applied), and notes about them; ``None`` when the trial is incomplete."""
    from fishtrack.corrections import apply_corrections, apply_corrections_to_epochs

    notes: list[str] = []
    if folder.missing((PROVENANCE, TRACKS)):
        return None, [f"trial '{name}' ({video}) has no complete outputs; its fish are not analysed"]
    prov = folder.provenance()
    tracks = folder.tracks(columns=TRACK_COLUMNS)  # arena and fish as text
    bouts = folder.bouts()
    epochs = folder.epochs()
    try:
        protocol = prov.phases()  # a re-scoring's protocol, else the recorded config's
    except (FishtrackError, TypeError, ValueError):
        protocol = cfg.protocol
    tracked = set(tracks["arena"].unique()) if "arena" in tracks.columns else set()
    extra = sorted(tracked - set(man_rows["arena"]))
    if extra:
        notes.append(
            f"trial '{name}': {len(extra)} tracked well(s) not in the manifest (not analysed): "
            f"{arena_span(extra)}"
        )
    missing = sorted(set(man_rows["arena"]) - tracked)
    if missing:
        notes.append(f"trial '{name}': no fish tracked in manifest well(s) {', '.join(missing)}")
    if "arena" in tracks.columns:  # wells not in the manifest are tracked but not analysed
        tracks = tracks[tracks["arena"].isin(set(man_rows["arena"]))].reset_index(drop=True)
    n_corr = 0
    corr_path = folder.corrections_path
    if corr_path.exists() and "state" in tracks.columns:
        corr = folder.corrections()
        tracks = apply_corrections(tracks, corr)
        n_corr = int(tracks["corrected"].sum())
        if not epochs.empty:
            epochs = apply_corrections_to_epochs(epochs, corr)
        notes.append(
            f"trial '{name}': manual corrections applied from {corr_path.name} "
            f"({len(corr)} interval(s), {n_corr} frame(s) relabelled)"
        )
    px_per_mm = cfg.px_per_mm
    if "config" in man_rows.columns and man_rows["config"].iloc[0]:  # the video's own config
        px_per_mm = prov.config.get("px_per_mm", px_per_mm)
    td = TrialData(name, video, tracks, bouts, epochs, protocol, prov,
                   _fish_rows(man_rows, name), n_corr, px_per_mm)
    return td, notes


def _compute(td: TrialData, cfg: Config, folder: Path) -> dict[str, pd.DataFrame]:
    """``per_fish``, ``bins`` and the assay analyses' per-trial inputs of one trial."""
    from fishtrack.align import read_aligned_signals
    from fishtrack.behaviour.qc import bout_signal_columns
    from fishtrack.stats.metrics import binned_passive_fraction, per_fish_metrics
    from fishtrack.stats.trialparts import trial_parts

    if td.tracks.empty or "state" not in td.tracks.columns:
        return {}
    pf = per_fish_metrics(
        td.tracks, td.bouts, td.epochs, td.protocol, td.fish_rows, px_per_mm=td.px_per_mm,
        exclude_no_swimming=cfg.stats.exclude_no_swimming,
        struggle_window_s=cfg.stats.struggle_window_s)
    out = {
        # the signal the fish's bouts came from, and whether it sees struggles in place
        "per_fish": bout_signal_columns(pf, td.prov.get("behaviour_noise")),
        "bins": binned_passive_fraction(td.tracks, td.protocol, cfg.stats.bin_s, td.fish_rows),
    }
    out |= trial_parts(td.tracks, td.bouts, td.epochs, td.protocol, td.fish_rows, cfg,
                       px_per_mm=td.px_per_mm, signals=read_aligned_signals(folder))
    return out


def tables_key(folder: str | Path, name: str, video: str, man_rows: pd.DataFrame,
               cfg: Config) -> str:
    """What a trial's statistics inputs depend on, hashed: the trial folder's files (relative
    path, size, modification time; hidden ones excepted), the trial's name, video and manifest
    rows, the config and the code that computes them."""
    import importlib

    folder = Path(folder)
    files = []
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder)
        if p.is_file() and not any(part.startswith(".") for part in rel.parts):
            st = p.stat()
            files.append([rel.as_posix(), st.st_size, st.st_mtime_ns])
    code = hashlib.sha256()
    for mod in _CODE:
        code.update(Path(importlib.import_module(mod).__file__).read_bytes())
    blob = json.dumps({"files": files, "trial": name, "video": video,
                       "rows": man_rows.to_csv(index=False), "config": config_hash(cfg),
                       "code": code.hexdigest(), "python": sys.version_info[:2]})
    return hashlib.sha256(blob.encode()).hexdigest()


def _load(folder: Path, key: str) -> dict[str, pd.DataFrame] | None:
    """The kept tables when kept for ``key``; else ``None``."""
    d = folder / TABLES_DIR
    try:
        meta = json.loads((d / "key.json").read_text(encoding="utf-8"))
        if meta.get("key") != key:
            return None
        return {t: pd.read_parquet(d / f"{t}.parquet", engine="pyarrow") for t in meta["tables"]}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _keep(folder: Path, key: str, tables: dict[str, pd.DataFrame]) -> None:
    """Keep ``tables`` for ``key`` (a new folder renamed into place; never raises: a table
    Parquet cannot hold is computed again next time)."""
    from fishtrack.io.tables import write_table, write_text

    final = folder / TABLES_DIR
    for left in [*folder.glob(f"{TABLES_DIR}.part-*"), *folder.glob(f"{TABLES_DIR}.old-*")]:
        shutil.rmtree(left, ignore_errors=True)  # of a process killed while keeping them
    tmp = folder / f"{TABLES_DIR}.part-{uuid.uuid4().hex[:8]}"
    try:
        kept = [t for t in _TABLES if t in tables and not tables[t].empty]
        for t in kept:
            write_table(tables[t], tmp / f"{t}.parquet")
        write_text(tmp / "key.json", json.dumps({"key": key, "tables": kept}))
        old = final.with_name(f"{TABLES_DIR}.old-{uuid.uuid4().hex[:8]}")
        if final.exists():
            final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    except Exception:  # noqa: BLE001 - only a saving of time
        shutil.rmtree(tmp, ignore_errors=True)


def trial_tables(folder: str | Path, td: TrialData, man_rows: pd.DataFrame,
                 cfg: Config) -> dict[str, pd.DataFrame]:
    """The trial's statistics inputs (``per_fish``, ``bins``, ``sensitivity``, ``traces``;
    absent when empty): the kept ones when their key matches, else computed and kept."""
    folder = Path(folder)
    key = tables_key(folder, td.name, td.video, man_rows, cfg)
    got = _load(folder, key)
    if got is None:
        got = _compute(td, cfg, folder)
        _keep(folder, key, got)
    return got


def prepare_trial_tables(folder: str | Path, name: str, video: str, man_rows: pd.DataFrame,
                         cfg: Config) -> None:
    """Compute and keep a finished trial's statistics inputs (a worker, after the trial);
    never raises (the statistics compute what is not kept)."""
    with contextlib.suppress(Exception):
        td, _ = load_trial(TrialFolder(folder), name, video, man_rows, cfg)
        if td is not None:
            trial_tables(folder, td, man_rows, cfg)
