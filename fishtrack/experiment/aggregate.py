"""Statistics of an experiment folder: per-fish metrics, group statistics and the report
from the trial folders.

(Moved from ``experiment.py``; the names ``_emit`` and ``_read_state`` are
kept as local aliases so the code reads as it did there.)"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pandas as pd

from fishtrack.behaviour.qc import vigour_summary
from fishtrack.config import Config, load_config, resolve_config
from fishtrack.errors import ConfigError, FishtrackError
from fishtrack.experiment.lock import output_lock
from fishtrack.experiment.manifest import Manifest, read_manifest, trial_names
from fishtrack.experiment.records import ExperimentResult, ProgressCallback
from fishtrack.experiment.records import emit as _emit
from fishtrack.experiment.state import read_state as _read_state
from fishtrack.experiment.trialstats import TrialData, load_trial, trial_tables
from fishtrack.io.tables import write_table
from fishtrack.stats import RESULT_COLUMNS, compare_groups
from fishtrack.stats.assay import analyse, write_tables
from fishtrack.stats.design import design_warnings
from fishtrack.stats.survival import excluded_rows
from fishtrack.trial import TrialFolder

_TrialData = TrialData  # its name here before it moved to trialstats (tests)


def compute_stats(
    out_dir: str | Path,
    config: Config | str | Path | dict | None = None,
    *,
    progress: ProgressCallback | None = None,
    report: bool = True,
) -> ExperimentResult:
    """Re-compute per-fish metrics, group statistics and the report from existing trials.

    Reads ``OUT/manifest.csv`` (edit it, e.g. its ``exclude`` column, then call this) and
    ``OUT/config.yaml`` unless ``config`` is given (its ``stats`` section and ``px_per_mm``
    matter here; tracking is not redone).

    Raises
    ------
    FishtrackError
        ``out_dir`` is not an experiment folder.
    ManifestError
        The stored manifest has problems.
    """
    out = Path(out_dir)
    if not (out / "manifest.csv").exists():
        raise FishtrackError(
            f"{out}: not an experiment folder (no manifest.csv); run `fishtrack run` first"
        )
    state = _read_state(out)
    cfg = resolve_config(config) if config is not None else load_config(
        out / "config.yaml" if (out / "config.yaml").exists() else None
    )
    with output_lock(out):
        man = read_manifest(out / "manifest.csv", root=state.get("manifest_root"))
        stored = {v: k for k, v in (state.get("trials") or {}).items()}
        names = trial_names(man.videos)
        names = {v: stored.get(v, names[v]) for v in man.videos}
        res = _compute_stats(out, man, cfg, names, progress=progress, report=report)
    last = pd.DataFrame(state.get("last_run") or [], columns=["trial", "video", "status", "seconds", "error"])
    res.trials = last
    return res


def _qc_table(td: TrialData, ids: pd.DataFrame) -> pd.DataFrame:
    """Detection rate over the whole record per analysed fish."""
    tr = td.tracks
    det = tr["detected"].astype(bool) if "detected" in tr.columns else pd.Series(True, index=tr.index)
    rate = det.groupby([tr["arena"], tr["fish"]]).mean().rename("detection_rate").reset_index()
    out = ids.merge(rate, on=["arena", "fish"], how="left")
    out["trial_dir"] = td.name
    return out


def _behaviour_qc(td: TrialData, ids: pd.DataFrame) -> dict:
    """The trial's behaviour noise (provenance ``behaviour_noise``) and per-fish vigour
    summary (:func:`fishtrack.behaviour.qc.vigour_summary`) of the analysed fish."""
    noise = td.prov.get("behaviour_noise") or {}
    summary = vigour_summary(td.tracks, noise.get("fish"))
    summary = summary.merge(ids.astype(str), on=["arena", "fish"], how="inner")
    return {"trial": td.name, "noise": {k: v for k, v in noise.items() if k != "fish"},
            "summary": summary}


def _ethogram(td: TrialData, ids: pd.DataFrame, width_s: float) -> pd.DataFrame:
    """Majority state per fish per time bin, long format: ``fish_id, bin_start_s, state``."""
    tr = td.tracks
    if "state" not in tr.columns or tr.empty or ids.empty:
        return pd.DataFrame(columns=["fish_id", "bin_start_s", "state", "trial_dir"])
    key = pd.MultiIndex.from_frame(tr[["arena", "fish"]])
    fid = pd.Series(ids["fish_id"].to_numpy(), index=pd.MultiIndex.from_frame(ids[["arena", "fish"]]))
    fish_id = fid.reindex(key).to_numpy()
    ok = pd.notna(fish_id)
    b = np.floor(tr["time_s"].to_numpy(float)[ok] / width_s + 1e-6).astype(np.int64)
    counts = (
        pd.DataFrame({"fish_id": fish_id[ok], "bin": b, "state": tr["state"].astype(str).to_numpy()[ok]})
        .value_counts()
        .reset_index(name="n")
        .sort_values(["fish_id", "bin", "n"], ascending=[True, True, False], kind="stable")
        .drop_duplicates(["fish_id", "bin"])
    )
    counts["bin_start_s"] = counts["bin"] * width_s
    counts["trial_dir"] = td.name
    return counts[["fish_id", "bin_start_s", "state", "trial_dir"]].reset_index(drop=True)


def _compute_stats(
    out: Path, man: Manifest, cfg: Config, names: dict[str, str], *,
    progress: ProgressCallback | None = None, report: bool = True, draw=None,
) -> ExperimentResult:
    """The statistics and report of ``out``'s trials; the report's figures drawn by ``draw``
    (:data:`fishtrack.report.Draw`: a run's workers; ``None``: this process)."""
    notes: list[str] = []
    videos = man.videos
    n_steps = len(videos) + 3
    per_fish_parts, bin_parts, qc_parts, etho_parts = [], [], [], []
    behaviour_qc: list[dict] = []
    assay_parts: dict[str, list] = {}
    trial_info: list[dict] = []
    protocols: dict[str, list] = {}
    protocol_ref = list(cfg.protocol)
    folders = {v: TrialFolder(out / "trials" / names[v]) for v in videos}
    width = _ethogram_bin_s(out, [folders[v] for v in videos])
    for k, v in enumerate(videos):
        name = names[v]
        _emit(progress, "stats", k, n_steps, message=f"reading {name}")
        rows = man.table[man.table["video"] == v]
        td, tn = load_trial(folders[v], name, v, rows, cfg)
        notes += tn
        if td is None:
            trial_info.append({"trial": name, "video": v, "complete": False})
            continue
        if td.protocol and not protocol_ref:
            protocol_ref = list(td.protocol)
        protocols[v] = list(td.protocol or [])
        got = trial_tables(folders[v].path, td, rows, cfg)  # kept by the trial's worker
        pf, bins = got.pop("per_fish", pd.DataFrame()), got.pop("bins", pd.DataFrame())
        for key, df in got.items():
            assay_parts.setdefault(key, []).append(df)
        per_fish_parts.append(pf)
        bin_parts.append(bins)
        ids = (pf[["arena", "fish", "fish_id"]].drop_duplicates().astype(str)
               if not pf.empty else pd.DataFrame(columns=["arena", "fish", "fish_id"]))
        qc_parts.append(_qc_table(td, ids))
        if report:
            etho_parts.append(_ethogram(td, ids, width))
            behaviour_qc.append(_behaviour_qc(td, ids))
        trial_info.append(
            {
                "trial": name,
                "video": v,
                "complete": True,
                "n_frames": td.prov.frames_read,
                "damaged_frames": len(td.prov.damaged_frames),
                "n_wells_tracked": len(td.prov.arenas),
                "n_fish_analysed": len(ids),
                "corrections": td.corrections,
            }
        )
    per_fish = _concat(per_fish_parts)
    bins = _concat(bin_parts)
    qc = _concat(qc_parts)
    design_notes = _design_notes(per_fish, protocols)
    draft = None
    if report:  # the figures that need no comparison go to ``draw`` (the workers) now
        from fishtrack.report import begin_report

        trials = pd.DataFrame(trial_info)
        draft = begin_report(
            out, per_fish=per_fish, bins=bins, ethogram=_concat(etho_parts),
            ethogram_bin_s=width, qc=qc, trials=trials, manifest=man.table, config=cfg,
            protocol=protocol_ref, design_notes=design_notes, behaviour_qc=behaviour_qc,
            draw=draw,
        )
    _emit(progress, "stats", len(videos), n_steps, message="comparing groups")
    group_stats = pd.DataFrame(columns=list(RESULT_COLUMNS))
    if not per_fish.empty:
        try:  # excluded fish and fish without a group are left out by compare_groups
            group_stats = compare_groups(per_fish, cfg.stats)
        except ConfigError as err:  # e.g. every fish of the reference group excluded
            notes.append(f"no group comparison: {err}")
    assay = analyse(per_fish, assay_parts, cfg, group_stats)
    write_table(per_fish, out / "per_fish.csv")
    write_table(bins, out / "per_fish_bins.csv")
    write_table(group_stats, out / "group_stats.csv")
    paths = {
        "per_fish": out / "per_fish.csv",
        "bins": out / "per_fish_bins.csv",
        "group_stats": out / "group_stats.csv",
        "manifest": out / "manifest.csv",
        "config": out / "config.yaml",
    }
    paths |= write_tables(out, assay)
    if draft is not None:
        from fishtrack.report import finish_report

        _emit(progress, "stats", len(videos) + 1, n_steps, message="writing the report")
        paths |= finish_report(draft, group_stats=group_stats, notes=notes, assay=assay)
    _emit(progress, "stats", n_steps, n_steps, message="done")
    return ExperimentResult(
        out=out,
        per_fish=per_fish,
        bins=bins,
        group_stats=group_stats,
        trials=pd.DataFrame(),
        paths=paths,
        warnings=notes + design_notes,
        assay=assay,
    )


def _design_notes(per_fish: pd.DataFrame, protocols: dict[str, list]) -> list[str]:
    """Confounds of the analysed fish (:func:`fishtrack.stats.design.design_warnings`)."""
    need = {"video", "arena", "group", "fish_id"}
    if per_fish.empty or not need <= set(per_fish.columns):
        return []
    fish = per_fish[~excluded_rows(per_fish) & per_fish["group"].notna().to_numpy()]
    fish = fish[["video", "arena", "group"]].drop_duplicates()
    return design_warnings(fish, protocols)


def _ethogram_bin_s(out: Path, trials: list[str | TrialFolder], n_columns: int = 600) -> float:
    """Ethogram bin width: the longest trial (from provenance) in about ``n_columns`` bins,
    never shorter than the longest frame interval. ``trials``: trial folders, or their names
    in ``out/trials``."""
    longest, frame_s = 0.0, 0.0
    for trial in trials:
        folder = trial if isinstance(trial, TrialFolder) else TrialFolder(out / "trials" / trial)
        with contextlib.suppress(FishtrackError, ValueError, TypeError, ZeroDivisionError):
            prov = folder.provenance()
            longest = max(longest, float(prov.duration_s or 0.0))
            frame_s = max(frame_s, 1.0 / float(prov.fps or np.inf))
    if longest <= 0:
        return 0.1
    if frame_s <= 0:
        return longest / n_columns
    return float(np.ceil(longest / n_columns / frame_s - 1e-9) * frame_s)  # whole frames


def _concat(parts: list[pd.DataFrame]) -> pd.DataFrame:
    parts = [p for p in parts if p is not None and not p.empty]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
