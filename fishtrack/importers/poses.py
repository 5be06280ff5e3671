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
  (h5py / sleap-io; no pickle).
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

from fishtrack.errors import FishtrackError
from fishtrack.importers._deps import require
from fishtrack.importers._pickle0 import UnsafePickle, literal_from_pickle0
from fishtrack.importers.keypoints import Poses

__all__ = ["dataset_to_poses", "read_dlc", "read_dlc_h5", "read_movement", "read_sleap"]


def _one_line(err: BaseException, limit: int = 200) -> str:
    text = " ".join(f"{type(err).__name__}: {err}".split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
    if "frame" in ds.coords:
        frames = np.asarray(ds["frame"].values, np.int64)
    elif ds.attrs.get("time_unit") == "frames" or ds_fps is None:
        frames = np.rint(t).astype(np.int64)
    else:
        frames = np.rint(t * ds_fps).astype(np.int64)
    rate = fps or ds_fps
    if fps:
        times = frames / fps
    elif ds.attrs.get("time_unit") == "seconds":
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
            raise FishtrackError(f"{path}: not a DeepLabCut pose table ({_one_line(err)})") from None
    elif path.suffix.lower() == ".csv":
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = load_poses.from_dlc_file(path, fps=fps)
        except (ValueError, TypeError, KeyError, OSError) as err:
            raise FishtrackError(f"{path}: not a DeepLabCut CSV file ({_one_line(err)})") from None
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
        raise FishtrackError(f"{path}: not an HDF5 file ({_one_line(err)})") from None
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
    """SLEAP analysis ``.h5`` or labels ``.slp`` with movement's loader."""
    load_poses = _load_poses_module("sleap")
    if path.suffix.lower() not in (".h5", ".slp", ".hdf5"):
        raise FishtrackError(
            f"{path}: SLEAP results are an analysis .h5 (File > Export Analysis HDF5, or "
            f"sleap-convert --format analysis) or a .slp file (got {path.suffix or 'no suffix'})"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = load_poses.from_sleap_file(path, fps=fps)
    except (ValueError, TypeError, KeyError, OSError) as err:
        raise FishtrackError(f"{path}: not a SLEAP file ({_one_line(err)})") from None
    return dataset_to_poses(ds, path, fps)


# --------------------------------------------------------------------------------------------
# movement


def read_movement(path: Path) -> Any:
    """A movement poses dataset from a netCDF file (validated with movement's validator)."""
    xr = require("xarray", "movement")
    require("movement.validators.datasets", "movement")
    from fishtrack.export import _validate_poses

    try:
        ds = xr.load_dataset(path)
    except Exception as err:  # noqa: BLE001 - any reader failure becomes one clear line
        raise FishtrackError(
            f"{path}: cannot read as a movement netCDF file ({_one_line(err)})"
        ) from None
    _validate_poses(ds, str(path))
    return ds
