"""``fishtrack import``: analyse tracks made by other trackers.

:func:`import_tracks` reads another tool's results and writes a trial folder in fishtrack's
own contract (docs/data_model.md): ``tracks.parquet`` (one row per frame per fish:
``frame, time_s, arena, fish, x, y, heading, tail_angle, tail_curvature, detected, area_px``
and the midline points ``tail_x_i, tail_y_i`` where the source has a tail) and
``provenance.json`` (``source: "import"``, the tool, the file's identity, the keypoint
mapping and thresholds). ``fishtrack classify DIR`` then scores bouts and states from these
kinematics alone, and ``fishtrack run`` accepts such a folder in a manifest's ``video``
column (:func:`classify_imported`: the trial is classified, not tracked).

Sources (``--from``): ``dlc`` (DeepLabCut .h5/.csv), ``sleap`` (analysis .h5, .slp, analysis
CSV), ``movement`` (netCDF), ``zebrazoom`` (.h5, results_<video>.txt), ``idtrackerai``
(trajectories .h5 / _csv / tidy csv; pickled .npy refused), ``trex`` (per-individual .npz,
with posture .npz). Nothing is ever unpickled. Details and worked examples: docs/import.md.
"""

from __future__ import annotations

import importlib.metadata
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fishtrack.config import config_hash, parse_config, resolve_config
from fishtrack.errors import ConfigError, FishtrackError, OutputError
from fishtrack.export import from_movement
from fishtrack.importers.keypoints import (
    DEFAULT_MIN_CONFIDENCE,
    KeypointMap,
    Poses,
    check_poses,
    guess_keypoint_map,
    poses_to_tracks,
    resolve_keypoint_map,
)
from fishtrack.importers.poses import dataset_to_poses, read_dlc, read_movement, read_sleap
from fishtrack.importers.trajectories import read_idtrackerai, read_trex
from fishtrack.importers.zebrazoom import read_zebrazoom
from fishtrack.io.provenance import build_provenance, file_identity
from fishtrack.pipeline import classify_folder
from fishtrack.trial import (
    BOUTS,
    EPOCHS,
    IDENTITY_KEYS,
    IMPORTED_FILES,
    PROVENANCE,
    TRACKS,
    TrialFolder,
    TrialResult,
    input_identity,
)

__all__ = [
    "DEFAULT_MIN_CONFIDENCE",
    "IDENTITY_KEYS",
    "SOURCES",
    "ImportOptions",
    "ImportResult",
    "KeypointMap",
    "Poses",
    "classify_imported",
    "guess_keypoint_map",
    "import_tracks",
    "imported_arenas",
    "imported_identity",
    "input_identity",
    "is_imported_trial",
    "load_tracks",
]

SOURCES: dict[str, str] = {
    "dlc": "DeepLabCut",
    "sleap": "SLEAP",
    "zebrazoom": "ZebraZoom",
    "idtrackerai": "idtracker.ai",
    "trex": "TRex",
    "movement": "movement",
}
_ALIASES = {"deeplabcut": "dlc", "idtracker": "idtrackerai", "idtracker.ai": "idtrackerai",
            "zz": "zebrazoom"}
LAYOUTS = ("wells", "chamber", "embedded")
IMPORT_FILES = IMPORTED_FILES


@dataclass
class ImportOptions:
    """How to read the source (every field has a CLI option of the same name).

    ``fps``: frame rate (Hz); needed where the file has none (DeepLabCut, SLEAP) and, when
    given, used for every source (times = frame / fps). ``layout``: ``wells`` | ``chamber`` |
    ``embedded`` (default: the config's ``arenas.layout``). ``head``/``body``/``tail``:
    keypoint mapping (default: guessed from the names). ``min_confidence``: keypoints with a
    lower confidence / likelihood are not trusted. ``n_points``: midline points written
    (default: head + mapped chain keypoints; 10 for ZebraZoom and TRex midlines).
    ``resample``: space the midline points equally along the chain (as the tracker does).
    ``cm_per_pixel``: TRex's setting, to turn its cm positions back into pixels.
    ``between_bouts``: ZebraZoom JSON frames outside bouts: ``still`` or ``unobserved``.
    """

    fps: float | None = None
    layout: str | None = None
    head: list[str] | None = None
    body: list[str] | None = None
    tail: list[str] | None = None
    min_confidence: float = DEFAULT_MIN_CONFIDENCE
    n_points: int | None = None
    resample: bool = True
    cm_per_pixel: float | None = None
    between_bouts: str = "still"


@dataclass
class ImportResult:
    """What an import produced: the tracks table, the provenance and notes for the user."""

    tracks: pd.DataFrame
    provenance: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    out: Path | None = None


def _source(name: str) -> str:
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in SOURCES:
        raise ConfigError(f"--from {name!r}: unknown source; choose one of {', '.join(SOURCES)}")
    return key


def _check_options(opt: ImportOptions) -> None:
    if opt.fps is not None and not (np.isfinite(opt.fps) and opt.fps > 0):
        raise ConfigError(f"--fps {opt.fps}: must be a positive frame rate (Hz)")
    if opt.layout is not None and opt.layout not in LAYOUTS:
        raise ConfigError(f"--layout {opt.layout!r}: choose one of {', '.join(LAYOUTS)}")
    if not 0.0 <= opt.min_confidence <= 1.0:
        raise ConfigError(f"--min-confidence {opt.min_confidence}: must be in [0, 1]")
    if opt.n_points is not None and opt.n_points < 2:
        raise ConfigError(f"--n-points {opt.n_points}: must be at least 2")
    if opt.cm_per_pixel is not None and not opt.cm_per_pixel > 0:
        raise ConfigError(f"--cm-per-pixel {opt.cm_per_pixel}: must be positive")
    if opt.between_bouts not in ("still", "unobserved"):
        raise ConfigError(f"--between-bouts {opt.between_bouts!r}: choose still or unobserved")


def _need_fps(opt: ImportOptions, path: Path, tool: str) -> float:
    if not opt.fps:
        raise ConfigError(f"{path}: {tool} files do not record the frame rate; give --fps")
    return float(opt.fps)


def _reader_of(source: str, path: Path) -> str:
    if source == "dlc":
        return ("fishtrack.importers.poses.read_dlc_h5 + movement.io.load_poses.from_dlc_style_df"
                if path.suffix.lower() in (".h5", ".hdf5")
                else "movement.io.load_poses.from_dlc_file")
    if source == "sleap" and path.suffix.lower() == ".csv":
        return "fishtrack.importers.poses.read_sleap_csv"
    return {
        "sleap": "movement.io.load_poses.from_sleap_file",
        "movement": "xarray.load_dataset (+ fishtrack.export.from_movement)",
        "zebrazoom": "fishtrack.importers.zebrazoom",
        "idtrackerai": "fishtrack.importers.trajectories.read_idtrackerai",
        "trex": "fishtrack.importers.trajectories.read_trex",
    }[source]


def load_tracks(
    path: str | Path, source: str, options: ImportOptions | None = None, *,
    layout: str = "wells",
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read another tool's results as a fishtrack tracks table.

    Returns ``(tracks, info)``; ``info`` (for provenance) holds the keypoints, the mapping,
    the threshold, the frame rate, the names of the individuals and notes.
    """
    opt = options or ImportOptions()
    _check_options(opt)
    src = _source(source)
    path = Path(path)
    if not path.exists():
        raise FishtrackError(f"{path}: file not found")
    layout = opt.layout or layout
    default_n = None
    if src == "movement":
        ds = read_movement(path)
        kps = [str(k) for k in ds["keypoints"].values]
        own = "head" in kps and all(k == "head" or k.startswith("tail_") for k in kps) and \
            opt.head is None and opt.tail is None and opt.body is None and opt.n_points is None
        if own and ds.attrs.get("source_software") == "fishtrack":
            return _from_own_movement(ds, path, opt, layout)
        poses = dataset_to_poses(ds, path, opt.fps)
        mapping, guessed = resolve_keypoint_map(
            poses.keypoints, head=opt.head, body=opt.body, tail=opt.tail, source=str(path))
    elif src in ("dlc", "sleap"):
        fps = _need_fps(opt, path, SOURCES[src])
        poses = read_dlc(path, fps) if src == "dlc" else read_sleap(path, fps)
        mapping, guessed = resolve_keypoint_map(
            poses.keypoints, head=opt.head, body=opt.body, tail=opt.tail, source=str(path))
    elif src == "zebrazoom":
        poses, mapping = read_zebrazoom(path, opt.fps, between_bouts=opt.between_bouts)
        guessed, default_n = False, 10
    elif src == "idtrackerai":
        poses, mapping = read_idtrackerai(path, opt.fps)
        guessed = False
    else:
        poses, mapping = read_trex(path, opt.fps, cm_per_pixel=opt.cm_per_pixel)
        guessed, default_n = False, 10
    check_poses(poses, str(path))
    if not mapping.chain and src in ("dlc", "sleap", "movement") and len(poses.keypoints) > 1:
        poses.notes.append(
            f"no tail keypoints recognised among {', '.join(poses.keypoints)}; give --tail"
        )
    n_points = opt.n_points or (default_n if mapping.chain else None)
    tracks, summary = poses_to_tracks(
        poses, mapping, layout=layout, min_confidence=opt.min_confidence,
        n_points=n_points, resample=opt.resample)
    info = {
        "tool": src,
        "tool_name": SOURCES[src],
        "reader": _reader_of(src, path),
        "fps": poses.fps,
        "layout": layout,
        "mapping_guessed": bool(guessed),
        **summary,
    }
    if src == "zebrazoom" and path.suffix.lower() in (".txt", ".json"):
        info["between_bouts"] = opt.between_bouts
    if src == "trex" and opt.cm_per_pixel:
        info["cm_per_pixel"] = float(opt.cm_per_pixel)
    return tracks, info


def _from_own_movement(ds: Any, path: Path, opt: ImportOptions, layout: str
                       ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A dataset fishtrack exported: :func:`fishtrack.export.from_movement` (the round trip)."""
    tracks = from_movement(ds)
    if opt.fps:
        tracks["time_s"] = tracks["frame"].to_numpy(np.float64) / opt.fps
    tracks["area_px"] = np.full(len(tracks), np.nan, np.float32)
    fps = opt.fps or ds.attrs.get("fps")
    kps = [str(k) for k in ds["keypoints"].values]
    info = {
        "tool": "movement",
        "tool_name": SOURCES["movement"],
        "reader": "fishtrack.export.from_movement",
        "fps": float(fps) if fps else None,
        "layout": layout,
        "mapping_guessed": False,
        "keypoints": kps,
        "mapping": {"head": ["head"], "body": [], "tail": kps[1:]},
        "min_confidence": None,
        "n_points": len(kps) if len(kps) > 1 else 0,
        "resampled": False,
        "individuals": {f: f for f in pd.unique(tracks["fish"].astype(str))},
        "detection_rate": float(tracks["detected"].mean()) if len(tracks) else 0.0,
        "tail_rate": float(np.isfinite(tracks["tail_angle"]).mean()) if len(tracks) else 0.0,
        "notes": ["a fishtrack export: read back with fishtrack.export.from_movement "
                  "(confidence 0 = midline not trusted)"],
    }
    return tracks, info


# --------------------------------------------------------------------------------------------
# the trial folder


def _arena_records(tracks: pd.DataFrame) -> list[dict]:
    """One record per arena (``name, row, col``) with the extent of its fish's positions as
    ``bbox`` (no video: the arena outline is unknown)."""
    out = []
    for name, sub in tracks.groupby("arena", sort=False):
        m = re.match(r"^([A-Z]+)(\d+)$", str(name))
        row = 0
        if m:
            for ch in m.group(1):
                row = row * 26 + (ord(ch) - 64)
            row -= 1
        x, y = sub["x"].to_numpy(np.float64), sub["y"].to_numpy(np.float64)
        ok = np.isfinite(x) & np.isfinite(y)
        bbox = [int(np.floor(x[ok].min())), int(np.floor(y[ok].min())),
                int(np.ceil(x[ok].max())) + 1, int(np.ceil(y[ok].max())) + 1] if ok.any() \
            else [0, 0, 1, 1]
        out.append({
            "name": str(name), "row": row, "col": int(m.group(2)) - 1 if m else 0,
            "shape": "rect", "cx": (bbox[0] + bbox[2]) / 2, "cy": (bbox[1] + bbox[3]) / 2,
            "radius": float("nan"), "bbox": bbox, "margin": 0.0, "angle": 0.0,
            "found": True, "from": "imported positions (extent of the fish's head)",
        })
    return out


def _config_for(config: Any, layout: str | None, tracks: pd.DataFrame) -> Any:
    cfg = resolve_config(config)
    data = cfg.model_dump(mode="json")
    if layout is not None:
        data["arenas"]["layout"] = layout
    if data["arenas"]["layout"] == "chamber" and len(tracks):
        data["arenas"]["fish_per_arena"] = int(tracks.groupby("arena")["fish"].nunique().max())
    elif data["arenas"]["layout"] != "chamber":
        data["arenas"]["fish_per_arena"] = 1
    try:
        return parse_config(data, "import settings")
    except FishtrackError:
        return cfg


def import_tracks(
    path: str | Path,
    source: str,
    out: str | Path,
    *,
    config: Any = None,
    options: ImportOptions | None = None,
    force: bool = False,
) -> ImportResult:
    """Import ``path`` (written by ``source``) into the trial folder ``out``.

    Writes ``tracks.parquet`` then ``provenance.json`` (last: its presence marks a complete
    folder), each atomically. An existing imported or tracked folder is an
    :class:`OutputError` unless ``force`` (then its stale ``bouts.csv``/``epochs.csv`` are
    removed too). ``config`` (a Config, YAML path, mapping or None) is recorded in the
    provenance, so ``fishtrack classify OUT`` scores with its behaviour settings and protocol;
    its ``arenas.layout`` is the default layout.
    """
    t0 = time.perf_counter()
    opt = options or ImportOptions()
    path, out = Path(path), Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: --out must be a folder, but a file of that name exists")
    folder = TrialFolder(out)
    existing = folder.present((TRACKS, PROVENANCE, BOUTS, EPOCHS))
    if existing and not force:
        raise OutputError(
            f"{out}: already holds {', '.join(existing)}; use --force to replace it or choose "
            "another --out"
        )
    base = resolve_config(config)
    tracks, info = load_tracks(path, source, opt, layout=opt.layout or base.arenas.layout)
    cfg = _config_for(base, info["layout"], tracks)
    frames = np.unique(tracks["frame"].to_numpy(np.int64))
    times = tracks.drop_duplicates("frame").sort_values("frame")["time_s"].to_numpy(np.float64)
    fps = info.get("fps")
    dt = np.diff(times)
    step = float(np.median(dt[dt > 0])) if (dt > 0).any() else (1.0 / fps if fps else 0.0)
    duration = float(times[-1] - times[0] + step) if len(times) else 0.0
    per_fish = tracks.groupby("fish", sort=False)["detected"].mean()
    notes = list(info.get("notes", []))
    try:
        info["movement_version"] = importlib.metadata.version("movement")
    except Exception:  # noqa: BLE001 - informational only
        pass
    timings = {"import": time.perf_counter() - t0}
    timings["total"] = timings["import"]
    prov = build_provenance(
        config=cfg.model_dump(mode="json"),
        config_hash=config_hash(cfg),
        inputs=file_identity(path),
        frames_read=int(len(frames)),
        damage=[],
        timings=timings,
        extra={
            "source": "import",
            "import": {**info, "file": str(path), "notes": notes},
            "video": {
                "n_frames": int(frames[-1] - frames[0] + 1) if len(frames) else 0,
                "fps": float(fps) if fps else None,
                "width": None,
                "height": None,
                "codec": None,
                "duration_s": duration,
                "frame_count_method": "import",
            },
            "arenas": _arena_records(tracks),
            "summary": {
                "fish": {str(k): round(float(v), 4) for k, v in per_fish.items()},
                "detection_rate": round(float(tracks["detected"].mean()), 4) if len(tracks)
                else 0.0,
                "empty_arenas": [],
                "warnings": notes,
            },
            "protocol_log": None,
        },
    )
    # with --force: the old provenance goes first (until the new one is written last the
    # folder is marked incomplete), and the old scores, now stale, are removed
    folder.write(TrialResult(tracks=tracks, provenance=prov), digests=False)
    return ImportResult(tracks=tracks, provenance=prov, notes=notes, out=out)


# --------------------------------------------------------------------------------------------
# experiments: a manifest row naming an imported trial folder


def is_imported_trial(path: str | Path) -> bool:
    """True for a folder written by ``fishtrack import`` (tracks.parquet + provenance.json
    with ``source: "import"``)."""
    return TrialFolder(path).is_imported()


def imported_identity(path: str | Path) -> dict[str, Any]:
    """Identity of an imported trial folder by content
    (:meth:`fishtrack.trial.TrialFolder.content_identity`)."""
    return TrialFolder(path).content_identity()


def imported_arenas(path: str | Path) -> list[str]:
    """Arena names of an imported trial folder (from its provenance, else its tracks)."""
    folder = TrialFolder(path)
    try:
        names = folder.provenance().arena_names
    except FishtrackError:
        names = []
    if names:
        return names
    return [str(a) for a in pd.unique(folder.tracks(columns=("arena",), require=("arena",))["arena"])]


def classify_imported(folder: str | Path, config: Any, out: str | Path) -> None:
    """Classify an imported trial folder into ``out`` (a run's trial folder): copies
    ``tracks.parquet``, records the run's config and the imported folder's identity in the
    provenance (by content, :func:`imported_identity`: a re-run skips it while both are
    unchanged), then scores bouts and states
    with :func:`fishtrack.pipeline.classify_folder`."""
    src, dest = TrialFolder(folder), TrialFolder(out)
    if not src.is_imported():
        raise FishtrackError(f"{src}: not a folder written by `fishtrack import`")
    cfg = resolve_config(config)
    prov = src.provenance().for_run(src, cfg)
    dest.write_tracks_copy(src)
    dest.write_provenance(prov)
    classify_folder(dest.path, cfg)
