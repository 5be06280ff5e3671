"""Export a trial folder to other tools' formats: movement (netCDF), NWB (ndx-pose) and CSV.

``export_trial(trial_dir, to, out)`` reads what ``fishtrack track`` wrote (``tracks.parquet``,
``bouts.csv``, ``epochs.csv``, ``provenance.json``) and writes

* ``movement``: a `movement <https://movement.neuroinformatics.dev>`_ poses dataset saved as
  netCDF (keypoints ``head, tail_1 … tail_{N-1}``, individuals = fish, time = frame timestamps);
  :func:`from_movement` reads it (or any poses dataset with these keypoints) back into a tracks
  table, re-deriving heading, tail angle and curvature with the tracker's conventions;
* ``nwb``: an NWB file with one ndx-pose ``PoseEstimation`` per fish in the ``behavior``
  processing module, and the epochs and bouts as ``TimeIntervals`` tables;
* ``csv``: ``tracks.csv``, ``bouts.csv``, ``epochs.csv`` (and ``provenance.json``) in a folder.

Every file is written to a temporary name and renamed when complete. An existing output is
never overwritten unless ``force=True``. movement, pynwb and ndx-pose are imported only when
used (``pip install 'fishtrack[export]'``). Layout, units and what round-trips: docs/export.md.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import re
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fishtrack import __version__
from fishtrack.align import aligned_signal_files
from fishtrack.errors import ConfigError, FishtrackError, OutputError, short_error
from fishtrack.io.tables import atomic_path, read_table, write_bytes, write_table
from fishtrack.tracking.midline import body_angles
from fishtrack.trial import BOUTS, EPOCHS, PROVENANCE, TRACKS, Provenance, TrialFolder

if TYPE_CHECKING:
    import xarray as xr

__all__ = [
    "FORMATS",
    "default_output",
    "describe",
    "export_trial",
    "from_movement",
    "keypoint_names",
    "load_movement",
    "to_csv",
    "to_movement",
    "to_nwb",
    "tracks_to_movement",
    "validate_poses",
    "write_movement",
    "write_nwb",
]

FORMATS = ("movement", "nwb", "csv")
SOURCE_SOFTWARE = "fishtrack"
REFERENCE_FRAME = (
    "(0, 0) is the top-left corner of the video frame (after video.crop, if set); "
    "x to the right, y down; pixels"
)
CONFIDENCE_DEFINITION = (
    "1: point found by fishtrack in this frame; 0: midline point traced but not trusted (the "
    "fish's tail angle is unknown, e.g. its midline runs over another fish); NaN: not found"
)
_DEFAULT_OUT = {"movement": "export/poses.nc", "nwb": "export/trial.nwb", "csv": "export/csv"}
_TRACK_COLUMNS = ("frame", "time_s", "fish", "x", "y", "detected")
_STRING_COLUMNS = ("fish", "arena", "state", "phase")
_TAIL = re.compile(r"^tail_(\d+)$")

_BOUT_DOCS = {
    "fish": "fish identity, as in the tracks",
    "arena": "arena name (A1, A2, ...)",
    "start_frame": "first frame of the bout (inclusive)",
    "end_frame": "last frame of the bout (inclusive)",
    "duration_s": "stop_time - start_time (s)",
    "n_beats": "full tail beats (count)",
    "beat_hz": "tail-beat frequency (Hz); NaN with fewer than 2 extrema",
    "max_tail_angle": "largest abs(tail_angle) over the bout (rad)",
    "vigour": "integral of abs(tail angular velocity) over the bout (rad)",
    "vigour_rad_s": "mean abs(tail angular velocity) over the bout (rad/s)",
    "effort_rad": "vigour_rad_s x duration_s: integral of abs(tail angular velocity) (rad)",
    "displacement_px": "straight-line head displacement over the bout (px)",
    "phase": "protocol phase at start_time (empty outside every phase)",
}
_EPOCH_DOCS = {
    "fish": "fish identity, as in the tracks",
    "arena": "arena name (A1, A2, ...)",
    "state": "active, passive (give-up) or unknown (fish not observed)",
    "start_frame": "first frame of the epoch (inclusive)",
    "end_frame": "last frame of the epoch (inclusive)",
    "duration_s": "stop_time - start_time (s)",
    "phase": "protocol phase at start_time (empty outside every phase)",
    "censored": "true extent unknown (touches the record's start or end, a long gap or a "
    "time jump)",
}


# --------------------------------------------------------------------------------------------
# reading the trial folder


def _trial_dir(trial_dir: str | Path) -> TrialFolder:
    d = Path(trial_dir)
    if not d.exists():
        raise FishtrackError(f"{d}: trial folder not found")
    if not d.is_dir():
        raise FishtrackError(f"{d}: not a folder; give a trial folder written by `fishtrack track`")
    folder = TrialFolder(d)
    if not folder.tracks_path.exists():
        raise FishtrackError(
            f"{d}: no tracks.parquet in this folder; give a trial folder written by "
            "`fishtrack track`"
        )
    return folder


def _read_provenance(folder: TrialFolder, *, required: bool) -> Provenance:
    p = folder.provenance_path
    if not p.exists():
        if required:
            raise FishtrackError(
                f"{p}: provenance.json not found; the trial folder is incomplete (it is written "
                "last) — run `fishtrack track` again"
            )
        return Provenance()
    return folder.provenance()


def _require(module: str, fmt: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise FishtrackError(
            f"export --to {fmt} needs the Python package {module.split('.')[0]!r} ({err}); "
            "install it with: pip install 'fishtrack[export]'"
        ) from None


def _import_movement_load_poses() -> Any:
    # importing movement redirects warnings.showwarning to its own logger; keep the caller's
    show = warnings.showwarning
    try:
        return _require("movement.io.load_poses", "movement")
    finally:
        warnings.showwarning = show


# --------------------------------------------------------------------------------------------
# keypoints


def _n_tail_points(tracks: pd.DataFrame) -> int:
    n = 0
    while f"tail_x_{n}" in tracks.columns and f"tail_y_{n}" in tracks.columns:
        n += 1
    return n


def keypoint_names(n_tail_points: int) -> list[str]:
    """Keypoints of an exported fish: ``head`` (= midline point 0), then ``tail_1`` …
    ``tail_{N-1}`` (``tail_{N-1}`` = tail tip)."""
    return ["head"] + [f"tail_{i}" for i in range(1, n_tail_points)]


def _estimate_fps(times: np.ndarray) -> float | None:
    """1 / the median frame interval (None with fewer than two distinct times)."""
    dt = np.diff(times[np.isfinite(times)])
    dt = dt[dt > 0]
    return float(1.0 / np.median(dt)) if len(dt) else None


# --------------------------------------------------------------------------------------------
# movement


def tracks_to_movement(
    tracks: pd.DataFrame, *, fps: float | None = None, source: str | Path | None = None
) -> xr.Dataset:
    """A movement poses dataset from a tracks table (one row per frame per fish).

    ``position`` is (time, space=[x, y], keypoints, individuals) float32 px; ``confidence``
    (time, keypoints, individuals) is 1 where the point was found, 0 for midline points traced
    but not trusted (``tail_angle`` NaN while the fish was detected), NaN where the fish was not
    found. ``time`` holds the frames' timestamps (s); coordinates ``frame`` (along time) and
    ``arena`` (along individuals) keep fishtrack's identifiers.
    """
    load_poses = _import_movement_load_poses()
    src = f"{source}: " if source is not None else ""
    fish = [str(f) for f in pd.unique(tracks["fish"].astype(str))]
    if not fish:
        raise FishtrackError(f"{src}no fish in the tracks (nothing to export)")
    if tracks.duplicated(["frame", "fish"]).any():
        raise FishtrackError(f"{src}the tracks have duplicate (frame, fish) rows")
    n_tail = _n_tail_points(tracks)
    kps = keypoint_names(max(n_tail, 1))
    frame = tracks["frame"].to_numpy(np.int64)
    frames = np.unique(frame)
    ti = np.searchsorted(frames, frame)
    fi = pd.Categorical(tracks["fish"].astype(str), categories=fish).codes
    n_t, n_k, n_f = len(frames), len(kps), len(fish)

    pos = np.full((n_t, 2, n_k, n_f), np.nan, np.float32)
    pos[ti, 0, 0, fi] = tracks["x"].to_numpy(np.float32)
    pos[ti, 1, 0, fi] = tracks["y"].to_numpy(np.float32)
    for k in range(1, n_tail):
        pos[ti, 0, k, fi] = tracks[f"tail_x_{k}"].to_numpy(np.float32)
        pos[ti, 1, k, fi] = tracks[f"tail_y_{k}"].to_numpy(np.float32)

    det = tracks["detected"].to_numpy(bool)
    if "tail_angle" in tracks.columns:
        tail_ok = det & np.isfinite(tracks["tail_angle"].to_numpy(np.float64))
    else:
        tail_ok = det
    conf = np.full((n_t, n_k, n_f), np.nan, np.float32)
    conf[ti[det], 0, fi[det]] = 1.0
    tail_conf = np.where(tail_ok, 1.0, np.where(det, 0.0, np.nan)).astype(np.float32)
    conf[ti, 1:, fi] = tail_conf[:, None]

    times = np.full(n_t, np.nan)
    times[ti] = tracks["time_s"].to_numpy(np.float64)
    if fps is None or not np.isfinite(fps) or fps <= 0:
        fps = _estimate_fps(times)
    ds = load_poses.from_numpy(
        position_array=pos,
        confidence_array=conf,
        individual_names=fish,
        keypoint_names=kps,
        fps=fps,
        source_software=SOURCE_SOFTWARE,
    )
    if "arena" in tracks.columns:
        first = tracks.drop_duplicates("fish")
        arena_of = dict(zip(first["fish"].astype(str), first["arena"].astype(str), strict=True))
        arenas = [arena_of[f] for f in fish]
    else:
        arenas = [f.split("-")[0] for f in fish]
    ds = ds.assign_coords(time=times, frame=("time", frames), arena=("individuals", arenas))
    ds.attrs.update(
        {
            "fishtrack_version": __version__,
            "coordinates": REFERENCE_FRAME,
            "confidence_definition": CONFIDENCE_DEFINITION,
            "keypoints_definition": (
                "head = point midway between the eyes (= tracks x, y and midline point 0); "
                f"tail_k = midline point k of {max(n_tail, 1) - 1}, equally spaced, last = tail tip"
            ),
        }
    )
    if source is not None:
        ds.attrs["source_file"] = str(source)
    # no CF "units" on time: xarray would decode it to timedelta64 on reading
    ds["time"].attrs["long_name"] = "frame timestamp, s from the first frame"
    ds["position"].attrs["units"] = "px"
    return ds


def to_movement(trial_dir: str | Path) -> xr.Dataset:
    """The trial's tracks as a movement poses dataset (see :func:`tracks_to_movement`)."""
    folder = _trial_dir(trial_dir)
    tracks = folder.tracks(require=_TRACK_COLUMNS)
    prov = _read_provenance(folder, required=False)
    return tracks_to_movement(tracks, fps=prov.fps, source=folder.tracks_path)


def write_movement(ds: xr.Dataset, out: str | Path) -> Path:
    """Save a movement dataset as netCDF (movement's own file format), atomically."""
    out = Path(out)
    ds = ds.copy()
    ds.attrs = {k: v for k, v in ds.attrs.items() if v is not None}  # netCDF has no None
    with atomic_path(out) as tmp:
        ds.to_netcdf(tmp)
    return out


def from_movement(
    source: str | Path | xr.Dataset, *, n_tail_points: int | None = None
) -> pd.DataFrame:
    """A tracks table from a movement poses dataset (a netCDF file or an ``xarray.Dataset``).

    Needs keypoints ``head`` and optionally ``tail_1 … tail_{N-1}`` (the layout
    :func:`tracks_to_movement` writes). Returns the tracker's columns ``frame, time_s, arena,
    fish, x, y, heading, tail_angle, tail_curvature, detected, tail_x_i, tail_y_i``; heading,
    tail angle and curvature are re-derived from the midline points exactly as the tracker does
    (``fishtrack.tracking.midline.body_angles``). ``detected`` = the head position is known.
    Where a tail point's confidence is 0 the tail angle and curvature are NaN.
    """
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if not path.exists():
            raise FishtrackError(f"{path}: file not found")
        name, ds = str(source), load_movement(path)
    else:
        name, ds = "movement dataset", source
        validate_poses(ds, name)
    kps = [str(k) for k in ds["keypoints"].values]
    if "head" not in kps:
        raise FishtrackError(f"{name}: no 'head' keypoint (keypoints: {', '.join(kps)})")
    tail_idx = sorted(int(m.group(1)) for k in kps if (m := _TAIL.match(k)))
    n_tail = (max(tail_idx) + 1) if tail_idx else 1
    if tail_idx != list(range(1, n_tail)):
        raise FishtrackError(
            f"{name}: tail keypoints must be tail_1 … tail_{n_tail - 1} without gaps "
            f"(found {', '.join(f'tail_{i}' for i in tail_idx)})"
        )
    if n_tail_points is not None and n_tail_points != n_tail:
        raise FishtrackError(f"{name}: {n_tail} midline points, expected {n_tail_points}")
    spaces = [str(s) for s in ds["space"].values]
    if not {"x", "y"} <= set(spaces):
        raise FishtrackError(f"{name}: needs x and y positions (space: {', '.join(spaces)})")
    order = ["head"] + [f"tail_{i}" for i in range(1, n_tail)]
    pos = (
        ds["position"].sel(space=["x", "y"], keypoints=order)
        .transpose("time", "individuals", "keypoints", "space").values.astype(np.float32)
    )  # (T, F, K, 2)
    conf = (
        ds["confidence"].sel(keypoints=order)
        .transpose("time", "individuals", "keypoints").values
    )
    fish = [str(f) for f in np.atleast_1d(ds["individuals"].values)]
    n_t, n_f = pos.shape[0], pos.shape[1]
    frames, times = _frames_and_times(ds, name)
    if "arena" in ds.coords:
        arenas = [str(a) for a in np.atleast_1d(ds["arena"].values)]
    else:
        arenas = [f.split("-")[0] for f in fish]

    pts = pos.reshape(n_t * n_f, n_tail, 2)
    x, y = pts[:, 0, 0], pts[:, 0, 1]
    detected = np.isfinite(x) & np.isfinite(y)
    heading, tail_angle, curvature = body_angles(pts.astype(np.float64))
    if n_tail < 2:  # a head alone has no direction
        heading = tail_angle = curvature = np.full(n_t * n_f, np.nan)
    else:
        untrusted = (conf[..., 1:].reshape(n_t * n_f, n_tail - 1) == 0).any(axis=1)
        tail_angle = np.where(untrusted, np.nan, tail_angle)
        curvature = np.where(untrusted, np.nan, curvature)
    cols: dict[str, Any] = {
        "frame": np.repeat(frames, n_f),
        "time_s": np.repeat(times, n_f),
        "arena": np.tile(np.array(arenas, dtype=object), n_t),
        "fish": np.tile(np.array(fish, dtype=object), n_t),
        "x": x,
        "y": y,
        "heading": heading.astype(np.float32),
        "tail_angle": tail_angle.astype(np.float32),
        "tail_curvature": curvature.astype(np.float32),
        "detected": detected,
    }
    if n_tail >= 2:
        for i in range(n_tail):
            cols[f"tail_x_{i}"] = pts[:, i, 0]
        for i in range(n_tail):
            cols[f"tail_y_{i}"] = pts[:, i, 1]
    return pd.DataFrame(cols)


def load_movement(path: str | Path) -> xr.Dataset:
    """A movement poses dataset from a netCDF file, validated (:func:`validate_poses`)."""
    xr = _require("xarray", "movement")
    try:
        ds = xr.load_dataset(path)
    except Exception as err:  # noqa: BLE001 - any reader failure becomes one clear line
        raise FishtrackError(
            f"{path}: cannot read as a movement netCDF file ({short_error(err)})"
        ) from None
    validate_poses(ds, str(path))
    return ds


def validate_poses(ds: xr.Dataset, name: str) -> None:
    """Check ``ds`` with movement's poses validator; one-line :class:`FishtrackError` naming
    ``name`` when it is not a poses dataset."""
    validators = _require("movement.validators.datasets", "movement")
    try:
        validators.ValidPosesInputs.validate(ds)
    except (ValueError, TypeError) as err:
        raise FishtrackError(f"{name}: not a movement poses dataset ({short_error(err)})") from None


def _frames_and_times(ds: xr.Dataset, name: str) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(ds["time"].values, dtype=np.float64)
    fps = ds.attrs.get("fps")
    fps = float(fps) if fps is not None and np.isfinite(fps) and fps > 0 else None
    in_frames = ds.attrs.get("time_unit") == "frames"
    if "frame" in ds.coords:
        frames = np.asarray(ds["frame"].values, dtype=np.int64)
    elif in_frames:
        frames = np.rint(t).astype(np.int64)
    elif fps is not None:
        frames = np.rint(t * fps).astype(np.int64)
    else:
        frames = np.arange(len(t), dtype=np.int64)
    if in_frames:
        times = frames / fps if fps is not None else np.full(len(t), np.nan)
    else:
        times = t
    if len(np.unique(frames)) != len(frames):
        raise FishtrackError(f"{name}: frame numbers derived from the time axis are not unique")
    return frames, times


# --------------------------------------------------------------------------------------------
# NWB


def _trial_identifier(d: Path) -> str:
    """sha256 of provenance.json and tracks.parquet: the same trial gives the same identifier."""
    h = hashlib.sha256()
    for name in (PROVENANCE, TRACKS):
        p = d / name
        if p.exists():
            h.update(name.encode())
            with open(p, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
    return h.hexdigest()


def _session_start(prov: Provenance, path: Path) -> datetime:
    raw = prov.created_utc
    try:
        return datetime.strptime(str(raw), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        try:
            t = datetime.fromisoformat(str(raw))
        except ValueError:
            raise FishtrackError(f"{path}: created_utc {raw!r} is not a UTC time") from None
        return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def _intervals(path: Path, name: str, description: str, table: pd.DataFrame, docs: dict) -> Any:
    """A TimeIntervals table from a CSV table: start_s / end_s become start_time / stop_time,
    every other column is kept (strings with NaN -> "", booleans as booleans)."""
    from hdmf.common import VectorData
    from pynwb.epoch import TimeIntervals

    missing = [c for c in ("start_s", "end_s") if c not in table.columns]
    if missing:
        raise FishtrackError(f"{path}: missing column(s) {', '.join(missing)}")
    cols = [
        VectorData(name="start_time", description="start (s from the first frame)",
                   data=table["start_s"].to_numpy(np.float64)),
        VectorData(name="stop_time", description="end (s from the first frame)",
                   data=table["end_s"].to_numpy(np.float64)),
    ]
    for c in table.columns:
        if c in ("start_s", "end_s"):
            continue
        s = table[c]
        if c in _STRING_COLUMNS or (s.dtype == object and len(s)):
            data = s.fillna("").astype(str).to_numpy(dtype=str)
        elif s.dtype == bool:
            data = s.to_numpy(bool)
        elif len(s) == 0:  # a header-only CSV has no dtypes
            data = np.zeros(0, np.float64)
        else:
            data = s.to_numpy()
        cols.append(VectorData(name=c, description=docs.get(c, c), data=data))
    return TimeIntervals(name=name, description=description, columns=cols)


def to_nwb(trial_dir: str | Path) -> Any:
    """The trial as an in-memory ``pynwb.NWBFile`` (see docs/export.md for the layout)."""
    pynwb = _require("pynwb", "nwb")
    ndx_pose = _require("ndx_pose", "nwb")
    folder = _trial_dir(trial_dir)
    d = folder.path
    tracks = folder.tracks(require=_TRACK_COLUMNS)
    prov = _read_provenance(folder, required=True)
    bouts = folder.bouts() if folder.bouts_path.exists() else None
    epochs = folder.epochs() if folder.epochs_path.exists() else None
    video = prov.video
    inp = prov.input
    layout = (prov.config.get("arenas") or {}).get("layout", "")
    fish = [str(f) for f in pd.unique(tracks["fish"].astype(str))]
    if not fish:
        raise FishtrackError(f"{folder.tracks_path}: no fish in the tracks (nothing to export)")

    ds = tracks_to_movement(tracks, fps=video.get("fps"), source=folder.tracks_path)
    kps = [str(k) for k in ds["keypoints"].values]
    times = np.asarray(ds["time"].values, np.float64)

    nwb = pynwb.NWBFile(
        session_description=(
            f"fishtrack tracking of {inp.get('name', d.name)}: {len(fish)} larval zebrafish"
            f"{f' ({layout} layout)' if layout else ''}; head and midline points, swim bouts and "
            "active/passive/unknown epochs"
        ),
        identifier=_trial_identifier(d),
        session_start_time=_session_start(prov, folder.provenance_path),
        source_script="fishtrack export",
        source_script_file_name="fishtrack/export.py",
        was_generated_by=[["fishtrack", str(__version__)]],
        notes=(
            "session_start_time is when fishtrack wrote the trial folder (provenance.json "
            "created_utc), not when the video was recorded; all times are seconds from the "
            "video's first frame"
        ),
    )
    camera = nwb.create_device(
        name="camera",
        description=(
            f"camera of {inp.get('name', 'the video')}: {video.get('width', '?')}x"
            f"{video.get('height', '?')} px, {video.get('fps', '?')} fps, codec "
            f"{video.get('codec', '?')}"
        ),
    )
    behavior = nwb.create_processing_module(
        name="behavior", description="fishtrack: pose of every larva, swim bouts and epochs"
    )
    edges = np.array([[i, i + 1] for i in range(len(kps) - 1)], dtype=np.uint8).reshape(-1, 2)
    skeletons, estimations = [], []
    first_series = None
    for j, f in enumerate(fish):
        skel = ndx_pose.Skeleton(name=f"skeleton_{f}", nodes=kps, edges=edges)
        skeletons.append(skel)
        series = []
        for k, kp in enumerate(kps):
            xy = np.ascontiguousarray(ds["position"].values[:, :, k, j], dtype=np.float32)
            c = np.ascontiguousarray(ds["confidence"].values[:, k, j], dtype=np.float32)
            s = ndx_pose.PoseEstimationSeries(
                name=kp,
                description=(
                    "head: point midway between the eyes" if kp == "head"
                    else f"midline point {kp.split('_')[1]} of {len(kps) - 1} (head = 0, "
                    f"{kps[-1]} = tail tip)"
                ),
                data=xy,
                unit="pixels",
                reference_frame=REFERENCE_FRAME,
                timestamps=first_series if first_series is not None else times,
                confidence=c,
                confidence_definition=CONFIDENCE_DEFINITION,
            )
            if first_series is None:
                first_series = s
            series.append(s)
        estimations.append(
            ndx_pose.PoseEstimation(
                name=f"PoseEstimation_{f}",
                pose_estimation_series=series,
                description=f"head and midline of fish {f} (arena {ds['arena'].values[j]})",
                source_software=SOURCE_SOFTWARE,
                source_software_version=str(__version__),
                skeleton=skel,
                device=camera,
            )
        )
    behavior.add(ndx_pose.Skeletons(skeletons=skeletons))
    for pe in estimations:
        behavior.add(pe)
    if epochs is not None:
        about = ("fishtrack epochs.csv: maximal runs of one state (active, passive, unknown) "
                 "per fish; times in s from the first frame")
        nwb.add_time_intervals(
            _intervals(folder.epochs_path, "state_epochs", about, epochs, _EPOCH_DOCS)
        )
    if bouts is not None:
        about = ("fishtrack bouts.csv: swim bouts per fish; stop_time = time of the frame after "
                 "the bout's last frame; times in s from the first frame")
        nwb.add_time_intervals(_intervals(folder.bouts_path, "bouts", about, bouts, _BOUT_DOCS))
    _add_aligned_signals(nwb, d, pynwb)
    return nwb


def _add_aligned_signals(nwb: Any, d: Path, pynwb: Any) -> None:
    """Signals aligned by ``fishtrack align`` (``align/aligned_*.csv``), as ``TimeSeries`` in
    a processing module ``aligned_signals``: one per value column (and per arena for per-fish
    signals), named ``<file stem>_<column>`` or ``<file stem>_<arena>``; timestamps in video
    time (s from the first frame)."""
    files = aligned_signal_files(d)
    if not files:
        return
    mod = nwb.create_processing_module(
        name="aligned_signals",
        description="co-recorded signals aligned to video time by fishtrack align "
                    "(align/aligned_*.json holds each clock mapping)")
    for f in files:
        df = read_table(f)
        stem = f.stem.removeprefix("aligned_")
        values = [c for c in df.columns if c not in ("time_s", "signal_time_s", "arena", "fish")
                  and pd.api.types.is_numeric_dtype(df[c])]
        key = "arena" if "arena" in df.columns else "fish" if "fish" in df.columns else None
        groups = df.groupby(df[key].astype(str)) if key else [("", df)]
        for unit, sub in groups:
            for c in values:
                name = f"{stem}_{c}" if not unit else (
                    f"{stem}_{unit}" if len(values) == 1 else f"{stem}_{c}_{unit}")
                mod.add(pynwb.TimeSeries(
                    name=name, data=sub[c].to_numpy(np.float64), unit="a.u.",
                    timestamps=sub["time_s"].to_numpy(np.float64),
                    description=f"column {c} of {f.name}" + (f", {key} {unit}" if unit else "")))


def write_nwb(nwbfile: Any, out: str | Path) -> Path:
    """Write an ``NWBFile`` to ``out`` atomically."""
    pynwb = _require("pynwb", "nwb")
    out = Path(out)
    with atomic_path(out) as tmp, warnings.catch_warnings():
        # the temporary name does not end in .nwb (the final one does)
        warnings.filterwarnings("ignore", message=".*does not end in '.nwb'")
        with pynwb.NWBHDF5IO(str(tmp), "w") as io:
            io.write(nwbfile)
    return out


# --------------------------------------------------------------------------------------------
# CSV


def _csv_files(folder: TrialFolder) -> list[str]:
    return ["tracks.csv", *folder.present((BOUTS, EPOCHS, PROVENANCE))]


def to_csv(trial_dir: str | Path, out: str | Path) -> Path:
    """Write ``tracks.csv`` (from tracks.parquet) and copies of ``bouts.csv``, ``epochs.csv``
    and ``provenance.json`` into the folder ``out``."""
    folder = _trial_dir(trial_dir)
    out = Path(out)
    tracks = folder.tracks(require=_TRACK_COLUMNS)
    write_table(tracks, out / "tracks.csv")
    for name in _csv_files(folder)[1:]:
        write_bytes(out / name, (folder.path / name).read_bytes())
    return out


# --------------------------------------------------------------------------------------------
# one entry point


def default_output(trial_dir: str | Path, to: str) -> Path:
    """Where ``export_trial`` writes without ``out``: ``TRIAL/export/poses.nc``,
    ``TRIAL/export/trial.nwb`` or ``TRIAL/export/csv/``."""
    return Path(trial_dir) / _DEFAULT_OUT[_check_format(to)]


def _check_format(to: str) -> str:
    fmt = str(to).strip().lower()
    if fmt not in FORMATS:
        raise ConfigError(f"--to {to!r}: unknown export format; choose one of {', '.join(FORMATS)}")
    return fmt


def _check_output(d: TrialFolder, fmt: str, out: Path, force: bool) -> None:
    if fmt == "csv":
        if out.exists() and not out.is_dir():
            raise OutputError(f"{out}: a file of that name exists; --out must be a folder for csv")
        existing = [n for n in _csv_files(d) if (out / n).exists()]
        if existing and not force:
            raise OutputError(
                f"{out}: already holds {', '.join(existing)}; use --force to overwrite or "
                "choose another --out"
            )
        return
    if out.is_dir():
        raise OutputError(f"{out}: is a folder; --out must be a file for --to {fmt}")
    if out.exists() and not force:
        raise OutputError(
            f"{out}: already exists; use --force to overwrite or choose another --out"
        )


def export_trial(
    trial_dir: str | Path, to: str, out: str | Path | None = None, *, force: bool = False
) -> Path:
    """Export a trial folder to ``movement`` (netCDF), ``nwb`` or ``csv``; returns the path
    written. ``out`` defaults to :func:`default_output`. An existing output is an
    :class:`OutputError` unless ``force`` (then it is replaced, atomically)."""
    fmt = _check_format(to)
    d = _trial_dir(trial_dir)
    out = Path(out) if out is not None else default_output(d.path, fmt)
    _check_output(d, fmt, out, force)
    if fmt == "movement":
        return write_movement(to_movement(d), out)
    if fmt == "nwb":
        return write_nwb(to_nwb(d), out)
    return to_csv(d, out)


def describe(path: str | Path) -> str:
    """A one-line summary of an exported file (for the CLI)."""
    p = Path(path)
    if p.is_dir():
        names = sorted(x.name for x in p.iterdir() if not x.name.startswith("."))
        return f"{p} ({', '.join(names)})"
    return f"{p} ({p.stat().st_size / 1e6:.2f} MB)"
