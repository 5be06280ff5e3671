"""DeepLabCut, SLEAP and movement files, read with movement's own loaders.

* DeepLabCut ``.csv``: :func:`movement.io.load_poses.from_dlc_file`.
* DeepLabCut ``.h5``: DeepLabCut writes it with pandas (``df.to_hdf(path,
  "df_with_missing", format="table")``); pandas/PyTables store the column labels of that
  format as pickled attributes, and movement reads it with ``pandas.read_hdf`` - which
  unpickles them. fishtrack never unpickles: :func:`read_dlc_h5` reads the numbers with h5py
  and the labels with a reader that accepts only plain literals
  (:mod:`fishtrack.importers._pickle0`), then hands the DeepLabCut-style table to
  :func:`movement.io.load_poses.from_dlc_style_df`. pandas' "fixed" format (what movement's
  own ``to_dlc_file`` writes) stores the labels as plain strings and is read the same way.
* SLEAP analysis ``.h5`` and labels ``.slp``: :func:`movement.io.load_poses.from_sleap_file`
  (h5py / sleap-io; no pickle); SLEAP's analysis CSV export: :func:`read_sleap_csv`.
* movement netCDF ``.nc``: :func:`fishtrack.export.from_movement` when it holds fishtrack's
  own keypoints (``head``, ``tail_1`` ...), else ``xarray.load_dataset`` and the keypoint
  mapping like any other poses dataset.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fishtrack.errors import FishtrackError, short_error
from fishtrack.export import load_movement
from fishtrack.importers._deps import require
from fishtrack.importers._pickle0 import UnsafePickle, literal_from_pickle0
from fishtrack.importers.keypoints import Poses

__all__ = ["dataset_to_poses", "read_dlc", "read_dlc_h5", "read_movement", "read_sleap",
           "read_sleap_csv"]


def _load_poses_module(source: str) -> Any:
    return require("movement.io.load_poses", source)


def dataset_to_poses(ds: Any, path: Path, fps: float | None) -> Poses:
    """A :class:`Poses` from a movement poses dataset (2-D)."""
    spaces = [str(s) for s in ds["space"].values]
    if spaces[:2] != ["x", "y"]:
        raise FishtrackError(f"{path}: needs 2-D x, y positions (space: {', '.join(spaces)})")
    pos = (
        ds["position"].sel(space=["x", "y"])
        .transpose("time", "individuals", "keypoints", "space").values.astype(np.float64)
    )
    conf = None
    if "confidence" in ds:
        conf = ds["confidence"].transpose("time", "individuals", "keypoints").values.astype(
            np.float64
        )
    t = np.asarray(ds["time"].values, np.float64)
    ds_fps = ds.attrs.get("fps")
    ds_fps = float(ds_fps) if ds_fps is not None and np.isfinite(ds_fps) and ds_fps > 0 else None
    unit = ds.attrs.get("time_unit")
    # the time axis is in seconds when the file says so, or (movement's convention) when it
    # has a frame rate and no unit; otherwise it counts frames
    seconds = unit == "seconds" or (unit is None and ds_fps is not None)
    rate = fps or ds_fps
    if "frame" in ds.coords:
        frames = np.asarray(ds["frame"].values, np.int64)
    elif not seconds:
        frames = np.rint(t).astype(np.int64)
    elif ds_fps or fps:  # seconds -> frames at the rate the axis was made with, else --fps
        frames = np.rint(t * (ds_fps or fps)).astype(np.int64)
    else:
        raise FishtrackError(
            f"{path}: the time axis is in seconds but the file records no frame rate (no 'fps' "
            "attribute), so frame numbers are unknown; give --fps"
        )
    if fps:
        times = frames / fps
    elif seconds:
        times = t
    elif rate:
        times = frames / rate
    else:
        raise FishtrackError(f"{path}: the file gives no frame rate; give --fps")
    return Poses(
        position=pos,
        confidence=conf,
        keypoints=[str(k) for k in ds["keypoints"].values],
        individuals=[str(i) for i in np.atleast_1d(ds["individuals"].values)],
        frames=frames,
        times=np.asarray(times, np.float64),
        fps=rate,
    )


# --------------------------------------------------------------------------------------------
# DeepLabCut


def read_dlc(path: Path, fps: float) -> Poses:
    """DeepLabCut ``.csv`` (movement's loader) or ``.h5`` (:func:`read_dlc_h5`)."""
    load_poses = _load_poses_module("dlc")
    if path.suffix.lower() in (".h5", ".hdf5"):
        df = read_dlc_h5(path)
        try:
            ds = load_poses.from_dlc_style_df(df, fps=fps, source_software="DeepLabCut")
        except (ValueError, TypeError, KeyError) as err:
            raise FishtrackError(f"{path}: not a DeepLabCut pose table ({short_error(err)})") from None
    elif path.suffix.lower() == ".csv":
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = load_poses.from_dlc_file(path, fps=fps)
        except (ValueError, TypeError, KeyError, OSError) as err:
            raise FishtrackError(f"{path}: not a DeepLabCut CSV file ({short_error(err)})") from None
    else:
        raise FishtrackError(
            f"{path}: DeepLabCut results are .h5 or .csv files (got {path.suffix or 'no suffix'})"
        )
    return dataset_to_poses(ds, path, fps)


def _decode(a: np.ndarray) -> list[str]:
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in a.tolist()]


def _attr_literal(node: Any, name: str, path: Path) -> Any:
    raw = node.attrs.get(name)
    if raw is None:
        return None
    if isinstance(raw, np.bytes_ | bytes):
        raw = bytes(raw)
        try:
            return literal_from_pickle0(raw)
        except UnsafePickle as err:
            raise FishtrackError(
                f"{path}: attribute {name!r} of {node.name} is not plain data ({err}); refusing "
                "to unpickle it - export the poses from DeepLabCut as CSV (save_as_csv=True, or "
                "deeplabcut.analyze_videos_converth5_to_csv) and import the .csv"
            ) from None
    return raw


def read_dlc_h5(path: Path) -> pd.DataFrame:
    """The DeepLabCut table (MultiIndex columns scorer/(individuals)/bodyparts/coords, one row
    per frame) of a DeepLabCut ``.h5`` file, read without unpickling (module docstring)."""
    h5py = require("h5py", "dlc")
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise FishtrackError(f"{path}: not an HDF5 file ({short_error(err)})") from None
    with f:
        if "df_with_missing" not in f:
            keys = ", ".join(list(f.keys())[:8]) or "none"
            raise FishtrackError(
                f"{path}: no 'df_with_missing' table (keys: {keys}); not a DeepLabCut .h5 file"
            )
        g = f["df_with_missing"]
        if "table" in g:  # pandas "table" format: DeepLabCut's own
            table = g["table"]
            names = table.dtype.names or ()
            blocks = sorted(n for n in names if n.startswith("values_block_"))
            if not blocks:
                raise FishtrackError(f"{path}: DeepLabCut table without values")
            labels: list[tuple] = []
            for b in blocks:
                kind = _attr_literal(table, f"{b}_kind", path)
                if not isinstance(kind, list):
                    raise FishtrackError(f"{path}: cannot read the column labels of {b}")
                labels += [tuple(k) if isinstance(k, list | tuple) else (k,) for k in kind]
            values = np.concatenate(
                [np.asarray(table[b], np.float64).reshape(len(table), -1) for b in blocks], axis=1
            )
            index = np.asarray(table["index"]) if "index" in names else np.arange(len(table))
            info = _attr_literal(g, "info", path)
            level_names = None
            if isinstance(info, dict):
                for v in info.values():
                    if isinstance(v, dict) and isinstance(v.get("names"), list):
                        level_names = v["names"]
        elif "block0_values" in g:  # pandas "fixed" format (movement's to_dlc_file)
            n_levels = 0
            while f"axis0_level{n_levels}" in g:
                n_levels += 1
            if n_levels == 0:
                raise FishtrackError(f"{path}: DeepLabCut table without column labels")
            level_names = []
            cols = []
            for lv in range(n_levels):
                lev = g[f"axis0_level{lv}"]
                level_names.append(_decode(np.atleast_1d(np.asarray(lev.attrs.get("name", b""))))[0])
                cols.append(np.asarray(_decode(lev[()]), dtype=object)[np.asarray(g[f"axis0_label{lv}"][()])])
            labels = list(zip(*cols, strict=True))
            blocks_n = 0
            while f"block{blocks_n}_values" in g:
                blocks_n += 1
            parts, items = [], []
            for b in range(blocks_n):
                parts.append(np.asarray(g[f"block{b}_values"][()], np.float64))
                ic = []
                for lv in range(n_levels):
                    lev = np.asarray(_decode(g[f"block{b}_items_level{lv}"][()]), dtype=object)
                    ic.append(lev[np.asarray(g[f"block{b}_items_label{lv}"][()])])
                items += list(zip(*ic, strict=True))
            values = np.concatenate(parts, axis=1)
            pos = {lab: k for k, lab in enumerate(items)}
            try:
                values = values[:, [pos[lab] for lab in labels]]
            except KeyError:
                raise FishtrackError(f"{path}: DeepLabCut table with inconsistent labels") from None
            index = np.asarray(g["axis1"][()]) if "axis1" in g else np.arange(len(values))
        else:
            raise FishtrackError(f"{path}: unknown pandas HDF5 layout (not a DeepLabCut file)")
    width = {len(lab) for lab in labels}
    if len(width) != 1 or values.shape[1] != len(labels):
        raise FishtrackError(f"{path}: DeepLabCut column labels do not match the values")
    n = width.pop()
    if not level_names or len(level_names) != n:
        level_names = ["scorer", "individuals", "bodyparts", "coords"] if n == 4 else \
            ["scorer", "bodyparts", "coords"]
    cols = pd.MultiIndex.from_tuples([tuple(str(v) for v in lab) for lab in labels],
                                     names=level_names)
    if "bodyparts" not in cols.names or "coords" not in cols.names:
        raise FishtrackError(f"{path}: DeepLabCut columns lack bodyparts/coords levels")
    idx = pd.Index(index) if np.issubdtype(np.asarray(index).dtype, np.integer) else None
    return pd.DataFrame(values, columns=cols, index=idx)


# --------------------------------------------------------------------------------------------
# SLEAP


def read_sleap(path: Path, fps: float) -> Poses:
    """SLEAP analysis ``.h5`` or labels ``.slp`` with movement's loader; SLEAP's CSV export
    with :func:`read_sleap_csv`."""
    if path.suffix.lower() == ".csv":
        return read_sleap_csv(path, fps)
    if path.suffix.lower() not in (".h5", ".slp", ".hdf5"):
        raise FishtrackError(
            f"{path}: SLEAP results are an analysis .h5 (File > Export Analysis HDF5, or "
            f"sleap-convert --format analysis), a .slp file or an analysis CSV (File > Export "
            f"Analysis CSV) (got {path.suffix or 'no suffix'})"
        )
    load_poses = _load_poses_module("sleap")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = load_poses.from_sleap_file(path, fps=fps)
    except (ValueError, TypeError, KeyError, OSError) as err:
        raise FishtrackError(f"{path}: not a SLEAP file ({short_error(err)})") from None
    return dataset_to_poses(ds, path, fps)


_SLEAP_CSV = "track, frame_idx, instance.score, NODE.x, NODE.y, NODE.score, ..."


def _sleap_track_name(value: object) -> str:
    """A track cell as text; '' for an untracked instance (empty cell)."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return ""
    return str(value).strip()


def read_sleap_csv(path: Path, fps: float) -> Poses:
    """SLEAP's analysis CSV (SLEAP: File > Export Analysis CSV; ``sleap-convert --format
    csv``; sleap-io ``save_csv(..., format="sleap")``).

    One row per instance: ``track, frame_idx, instance.score`` then ``NODE.x, NODE.y,
    NODE.score`` for every skeleton node (in skeleton order, or sorted by sleap-io). Empty
    cells are missing points (``x``/``y``) or no score (user-labelled points: trusted). Rows
    without a track (instances SLEAP did not track) cannot be linked over time: they are left
    out when other rows have tracks, and read as one animal when at most one is found per
    frame; otherwise the file is refused (track the instances in SLEAP first). When one track
    has several instances in a frame, a user-labelled one (no ``instance.score``) wins, else the
    highest ``instance.score``. Frames run from 0 to the last ``frame_idx`` (a frame without a
    row is unobserved), ``time_s = frame / fps``.
    """
    try:
        df = pd.read_csv(path, dtype={"track": object}, keep_default_na=True,
                         skipinitialspace=True)
    except (ValueError, OSError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise FishtrackError(f"{path}: not a readable CSV file ({short_error(err)})") from None
    df.columns = [str(c).strip() for c in df.columns]
    cols = list(df.columns)
    nodes = []
    for c in cols:
        if c.endswith(".x") and c[:-2] and f"{c[:-2]}.y" in cols:
            nodes.append(c[:-2])
    if "frame_idx" not in cols or not nodes:
        found = ", ".join(cols[:8]) + (f", ... ({len(cols)} columns)" if len(cols) > 8 else "")
        raise FishtrackError(
            f"{path}: not a SLEAP analysis CSV (expected columns {_SLEAP_CSV}; found: "
            f"{found or 'none'})"
        )
    if df.empty:
        raise FishtrackError(f"{path}: no instances in the file (a header but no rows)")
    line = np.arange(len(df)) + 2  # file line of each row (header = line 1)
    fr = pd.to_numeric(df["frame_idx"], errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(fr) | (fr < 0) | (fr != np.round(fr))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise FishtrackError(
            f"{path}: line {line[i]}: frame_idx {df['frame_idx'].iloc[i]!r} is not a frame "
            "number (0, 1, 2, ...)"
        )
    frame = fr.astype(np.int64)
    track = np.array([_sleap_track_name(v) for v in df["track"]] if "track" in cols
                     else [""] * len(df), dtype=object)
    score = (pd.to_numeric(df["instance.score"], errors="coerce").to_numpy(np.float64)
             if "instance.score" in cols else np.full(len(df), np.nan))
    notes: list[str] = []
    untracked = track == ""
    keep = np.ones(len(df), bool)
    if untracked.all():
        per_frame = int(np.bincount(frame).max())
        if per_frame > 1:
            raise FishtrackError(
                f"{path}: the instances have no track (empty track column) and frames hold up "
                f"to {per_frame} of them, so they cannot be linked into animals over time; "
                "track them in SLEAP (Predict with a tracker, or sleap-track "
                "--tracking.tracker simple) and export again"
            )
        track[:] = "untracked"
        notes.append("no tracks in the file and at most one instance per frame: read as one "
                     "animal ('untracked')")
    elif untracked.any():
        keep &= ~untracked
        notes.append(
            f"{int(untracked.sum())} instance(s) without a track left out (untracked "
            "instances cannot be assigned to an animal)"
        )
    # several instances of one track in a frame: user-labelled first, then the best score
    rank = np.where(np.isfinite(score), score, np.inf)  # no score = user-labelled
    order = np.lexsort((-rank, frame, track.astype(str)))
    order = order[keep[order]]
    key = pd.MultiIndex.from_arrays([track[order], frame[order]])
    dup = key.duplicated(keep="first")
    if dup.any():
        notes.append(
            f"{int(dup.sum())} extra instance(s) of a track in the same frame left out (kept "
            "the user-labelled one, else the highest instance.score)"
        )
    rows = order[~dup]
    individuals = list(dict.fromkeys(track[np.sort(rows)]))
    fidx = {name: j for j, name in enumerate(individuals)}
    n_t, n_f, n_k = int(frame[rows].max()) + 1, len(individuals), len(nodes)
    pos = np.full((n_t, n_f, n_k, 2), np.nan)
    conf = np.full((n_t, n_f, n_k), np.nan)
    ti, fi = frame[rows], np.array([fidx[t] for t in track[rows]], np.int64)
    for k, node in enumerate(nodes):
        for a, axis in enumerate(("x", "y")):
            v = pd.to_numeric(df[f"{node}.{axis}"], errors="coerce").to_numpy(np.float64)
            pos[ti, fi, k, a] = v[rows]
        if f"{node}.score" in cols:
            conf[ti, fi, k] = pd.to_numeric(df[f"{node}.score"], errors="coerce").to_numpy(
                np.float64)[rows]
    frames = np.arange(n_t, dtype=np.int64)
    return Poses(position=pos, confidence=conf, keypoints=nodes, individuals=individuals,
                 frames=frames, times=frames / float(fps), fps=float(fps), notes=notes)


# --------------------------------------------------------------------------------------------
# movement


def read_movement(path: Path) -> Any:
    """A movement poses dataset from a netCDF file (validated with movement's validator)."""
    require("xarray", "movement")  # `fishtrack import`'s message when a package is missing
    require("movement.validators.datasets", "movement")
    return load_movement(path)
