"""idtracker.ai and TRex trajectories (no pickle: ``.npy``/``.pickle`` files are refused).

idtracker.ai (``idtrackerai/utils/trajectories_io.py`` and its "Output structure" docs):

* ``trajectories.npy`` / ``.pickle`` are a pickled dict: refused - convert with
  ``idtrackerai_format SESSION --formats h5 csv`` (v6; v5: ``idtrackerai_csv SESSION``).
* ``trajectories.h5``: dataset ``trajectories`` (frames, animals, 2) px, NaN where an
  animal was not located; attributes ``frames_per_second``, ``identities_labels``, ...
* ``trajectories_csv/trajectories.csv``: header ``time,x1,y1,x2,y2,...`` (older:
  ``seconds,...`` or no time column), one row per frame; ``attributes.json`` next to it.
* ``trajectories_tidy.csv`` / ``trajectories.parquet``: ``frame, time, individual, x, y,
  probability``.

A session folder (``session_<name>``) or its ``trajectories`` folder is searched for these
(``trajectories``, ``validated``, ``without_gaps``, ``with_gaps`` ...; h5 first). The positions
are the animals' blob centroids: fishtrack stores them as ``x, y`` (not the eye midpoint) and
there is no heading or tail.

TRex (trex.run docs, "File formats"): one ``<video>_fish<N>.npz`` per individual, read with
``np.load(allow_pickle=False)``: ``frame``, ``time`` (s from the start of the video),
``missing`` (1 = not tracked), ``X``/``Y`` (head, or ``X#wcentroid``/``Y#wcentroid``: body
centre) **in cm** (``cm_per_pixel``), ``ANGLE`` (rad, to the image x axis); ``inf`` where a
value is unavailable. With ``output_posture_data`` TRex also writes
``<video>_posture_fish<N>.npz``: ``frames``, ``offset`` (top-left px of the object),
``midline_points`` (px, relative to ``offset``; (frames, L, 2), or (sum of L, 2) with
``midline_lengths``), first point = head. fishtrack uses the midline (in px) when present:
head = its first point, tail = the rest; otherwise the head/centroid position converted
with ``cm_per_pixel`` and ``ANGLE`` as heading.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fishtrack.errors import ConfigError, FishtrackError
from fishtrack.importers._deps import require
from fishtrack.importers.keypoints import KeypointMap, Poses, resample_chain

__all__ = ["read_idtrackerai", "read_trex"]

_PICKLED = (".npy", ".pickle", ".pkl")
_IDT_NAMES = ("trajectories", "validated", "trajectories_validated", "without_gaps",
              "trajectories_wo_gaps", "with_gaps", "trajectories_wo_identification")


def _refuse_pickle(path: Path, what: str) -> FishtrackError:
    return FishtrackError(
        f"{path}: {what} needs unpickling (not done: a pickle can run code); {_IDT_EXPORT}"
    )


_IDT_EXPORT = ("export the session's trajectories as HDF5 or CSV with "
               "`idtrackerai_format SESSION --formats h5 csv` (idtracker.ai 5: "
               "`idtrackerai_csv SESSION`) and import trajectories.h5 or trajectories_csv/")


# --------------------------------------------------------------------------------------------
# idtracker.ai


def _idt_find(path: Path) -> Path:
    if path.is_file() or (path / "trajectories.csv").is_file():
        return path
    d = path
    if (d / "trajectories").is_dir():
        d = d / "trajectories"
    pickled = None
    for name in _IDT_NAMES:
        for cand in (d / f"{name}.h5", d / f"{name}.hdf5", d / f"{name}_csv",
                     d / f"{name}_tidy.csv", d / f"{name}.parquet"):
            if cand.exists():
                return cand
        for ext in _PICKLED:
            if (d / f"{name}{ext}").exists() and pickled is None:
                pickled = d / f"{name}{ext}"
    if (d / "trajectories_tidy.csv").exists():
        return d / "trajectories_tidy.csv"
    if pickled is not None:
        raise _refuse_pickle(pickled, "the only trajectories found are a pickled .npy/.pickle file")
    raise FishtrackError(f"{path}: no idtracker.ai trajectories (.h5, _csv/, tidy .csv) found")


def read_idtrackerai(path: Path, fps: float | None) -> tuple[Poses, KeypointMap]:
    """idtracker.ai trajectories: a session / trajectories folder or one of the files above."""
    f = _idt_find(path)
    if f.suffix.lower() in _PICKLED:
        raise _refuse_pickle(f, "an idtracker.ai .npy/.pickle trajectories file")
    attrs: dict[str, Any] = {}
    if f.suffix.lower() in (".h5", ".hdf5"):
        xy, attrs = _idt_h5(f)
        frames = np.arange(len(xy), dtype=np.int64)
        times = None
        labels = attrs.get("identities_labels")
    elif f.is_dir() or f.name == "trajectories.csv":
        xy, attrs, times = _idt_wide_csv(f if f.is_dir() else f.parent)
        frames = np.arange(len(xy), dtype=np.int64)
        labels = attrs.get("identities_labels")
    elif f.suffix.lower() in (".csv", ".parquet"):
        xy, frames, times, labels, attrs = _idt_tidy(f)
    else:
        raise FishtrackError(f"{f}: not an idtracker.ai trajectories file")
    rate = fps
    if not rate:
        v = attrs.get("frames_per_second")
        try:
            rate = float(v) if v is not None and float(v) > 0 else None
        except (TypeError, ValueError):
            rate = None
    if not rate and times is not None:  # a time column: its median frame interval
        dt = np.diff(times)
        dt = dt[np.isfinite(dt) & (dt > 0)]
        rate = float(1.0 / np.median(dt)) if len(dt) else None
    if not rate:
        raise FishtrackError(f"{f}: the file records no frame rate (frames_per_second); give --fps")
    n = xy.shape[1]
    names = [str(s) for s in labels] if labels is not None and len(labels) == n else \
        [str(k) for k in range(1, n + 1)]
    poses = Poses(position=xy[:, :, None, :], keypoints=["centroid"], individuals=names,
                  frames=frames, times=frames / rate if fps or times is None else times, fps=rate)
    poses.notes.append("idtracker.ai gives blob centroids: x, y are the centroid, not the "
                       "eye midpoint")
    return poses, KeypointMap(head=["centroid"])


def _idt_h5(f: Path) -> tuple[np.ndarray, dict]:
    h5py = require("h5py", "idtrackerai")
    try:
        h = h5py.File(f, "r")
    except OSError as err:
        raise FishtrackError(f"{f}: not an HDF5 file ({err})") from None
    with h:
        if "trajectories" not in h:
            raise FishtrackError(f"{f}: no 'trajectories' dataset; not an idtracker.ai file")
        xy = np.asarray(h["trajectories"][()], np.float64)
        attrs = {k: _plain(v) for k, v in h.attrs.items()}
    if xy.ndim != 3 or xy.shape[-1] != 2:
        raise FishtrackError(f"{f}: trajectories have shape {xy.shape}, expected (frames, animals, 2)")
    return xy, attrs


def _plain(v: Any) -> Any:
    if isinstance(v, bytes | np.bytes_):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.ndarray):
        return [_plain(x) for x in v.tolist()]
    if isinstance(v, np.generic):
        return v.item()
    return v


def _idt_wide_csv(d: Path) -> tuple[np.ndarray, dict, np.ndarray | None]:
    csv_path = d / "trajectories.csv"
    if not csv_path.exists():
        raise FishtrackError(f"{d}: no trajectories.csv in this folder")
    attrs: dict = {}
    if (d / "attributes.json").exists():
        try:
            attrs = json.loads((d / "attributes.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise FishtrackError(f"{d / 'attributes.json'}: not valid JSON ({err})") from None
    try:
        df = pd.read_csv(csv_path, skipinitialspace=True)
    except Exception as err:  # noqa: BLE001
        raise FishtrackError(f"{csv_path}: cannot read ({type(err).__name__}: {err})") from None
    cols = [str(c).strip() for c in df.columns]
    times = None
    if cols and cols[0].lower() in ("time", "seconds"):
        times = df.iloc[:, 0].to_numpy(np.float64)
        df = df.iloc[:, 1:]
        cols = cols[1:]
    if len(cols) % 2 or not all(re.fullmatch(r"[xy]\d+", c) for c in cols):
        raise FishtrackError(f"{csv_path}: expected columns x1,y1,x2,y2,... (got {', '.join(cols[:6])})")
    xy = df.to_numpy(np.float64).reshape(len(df), -1, 2)
    return xy, attrs, times


def _idt_tidy(f: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, list | None, dict]:
    try:
        df = pd.read_parquet(f) if f.suffix.lower() == ".parquet" else pd.read_csv(f)
    except Exception as err:  # noqa: BLE001
        raise FishtrackError(f"{f}: cannot read ({type(err).__name__}: {err})") from None
    need = {"frame", "individual", "x", "y"}
    if not need <= set(df.columns):
        raise FishtrackError(f"{f}: needs columns frame, individual, x, y (tidy idtracker.ai table)")
    attrs: dict = {}
    side = f.with_name("attributes_tidy.json")
    if side.exists():
        try:
            attrs = json.loads(side.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            attrs = {}
    frames = np.unique(df["frame"].to_numpy(np.int64))
    inds = list(pd.unique(df["individual"]))
    xy = np.full((len(frames), len(inds), 2), np.nan)
    ti = np.searchsorted(frames, df["frame"].to_numpy(np.int64))
    fi = pd.Categorical(df["individual"], categories=inds).codes
    xy[ti, fi, 0] = df["x"].to_numpy(np.float64)
    xy[ti, fi, 1] = df["y"].to_numpy(np.float64)
    times = None
    if "time" in df.columns:
        times = np.full(len(frames), np.nan)
        times[ti] = df["time"].to_numpy(np.float64)
    labels = attrs.get("identities_labels") or [str(i) for i in inds]
    return xy, frames, times, labels, attrs


# --------------------------------------------------------------------------------------------
# TRex

_TREX = re.compile(r"^(?P<video>.+?)_(?P<kind>fish|id)(?P<n>\d+)\.npz$")


def _npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except ValueError as err:
        if "allow_pickle" in str(err) or "pickle" in str(err).lower():
            raise FishtrackError(
                f"{path}: holds Python objects that need unpickling (not done: a pickle can run "
                "code); re-export the data from TRex as .npz of plain arrays (or CSV)"
            ) from None
        raise FishtrackError(f"{path}: not a readable .npz file ({err})") from None
    except (OSError, EOFError) as err:
        raise FishtrackError(f"{path}: not a readable .npz file ({err})") from None


def _finite(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, np.float64).copy()
    a[~np.isfinite(a)] = np.nan
    return a


def read_trex(path: Path, fps: float | None, *, cm_per_pixel: float | None = None
              ) -> tuple[Poses, KeypointMap]:
    """TRex ``<video>_fish<N>.npz`` files: the one given and its siblings (every individual),
    with their ``<video>_posture_fish<N>.npz`` midlines when present."""
    if path.is_dir():
        files = sorted(p for p in path.glob("*.npz") if _TREX.match(p.name) and "_posture" not in p.name)
        if not files:
            raise FishtrackError(f"{path}: no TRex <video>_fish<N>.npz files in this folder")
        video = _TREX.match(files[0].name).group("video")  # type: ignore[union-attr]
    else:
        m = _TREX.match(path.name)
        if m is None or "_posture" in path.name:
            raise FishtrackError(
                f"{path}: expected a TRex per-individual file named <video>_fish<N>.npz"
            )
        video = m.group("video")
        files = sorted(p for p in path.parent.glob(f"{video}_*.npz")
                       if (mm := _TREX.match(p.name)) and mm.group("video") == video)
    files = sorted(files, key=lambda p: int(_TREX.match(p.name).group("n")))  # type: ignore[union-attr]
    per: list[dict[str, Any]] = []
    for f in files:
        z = _npz(f)
        if "frame" not in z:
            raise FishtrackError(f"{f}: no 'frame' array; not a TRex export")
        n = int(_TREX.match(f.name).group("n"))  # type: ignore[union-attr]
        kind = _TREX.match(f.name).group("kind")  # type: ignore[union-attr]
        post = None
        for cand in (f.with_name(f"{video}_posture_{kind}{n}.npz"),
                     f.with_name(f"{video}_posture{kind}{n}.npz")):
            if cand.exists():
                post = _npz(cand)
                break
        per.append({"file": f, "name": f"{kind}{n}", "data": z, "posture": post})
    frames = np.unique(np.concatenate([np.asarray(p["data"]["frame"], np.int64) for p in per]))
    n_t, n_f = len(frames), len(per)
    has_post = any(p["posture"] is not None for p in per)
    n_mid = 0
    if has_post:
        n_mid = max(_midline_len(p["posture"]) for p in per if p["posture"] is not None)
    kps = ["head"] + [f"mid_{i}" for i in range(1, n_mid)]
    pos = np.full((n_t, n_f, len(kps), 2), np.nan)
    heading = np.full((n_t, n_f), np.nan)
    times = np.full(n_t, np.nan)
    notes: list[str] = []
    used_xy = None
    for j, p in enumerate(per):
        z = p["data"]
        ti = np.searchsorted(frames, np.asarray(z["frame"], np.int64))
        missing = np.asarray(z.get("missing", np.zeros(len(ti))), np.float64) > 0
        if "time" in z:
            times[ti] = _finite(z["time"])
        if "ANGLE" in z:
            a = _finite(z["ANGLE"])
            a[missing] = np.nan
            heading[ti, j] = a
        xk = "X" if "X" in z else ("X#wcentroid" if "X#wcentroid" in z else None)
        yk = xk.replace("X", "Y", 1) if xk else None
        if xk and yk in z and cm_per_pixel:
            x = _finite(z[xk]) / cm_per_pixel
            y = _finite(z[yk]) / cm_per_pixel
            x[missing] = np.nan
            y[missing] = np.nan
            pos[ti, j, 0, 0] = x
            pos[ti, j, 0, 1] = y
            used_xy = xk
        if p["posture"] is not None:
            mf, mids = _midlines(p["posture"], p["file"])
            for fr, mpts in zip(mf, mids, strict=True):
                r = int(np.searchsorted(frames, fr))
                if r < n_t and frames[r] == fr and len(mpts) >= 2 and np.isfinite(mpts).all():
                    if len(mpts) != n_mid:
                        mpts = resample_chain(mpts[None], n_mid)[0]
                    pos[r, j, :, :] = mpts
    if not has_post and not cm_per_pixel:
        raise ConfigError(
            f"{files[0]}: TRex stores X/Y in cm; give --cm-per-pixel (TRex's cm_per_pixel "
            "setting) or export posture data (output_posture_data: true) whose midlines are in px"
        )
    if used_xy and used_xy != "X" and not has_post:
        notes.append(f"TRex positions from {used_xy}/{used_xy.replace('X', 'Y', 1)} (body "
                     "centre, not the head)")
    if not np.isfinite(times).all():
        if not fps:
            raise FishtrackError(f"{files[0]}: no 'time' array; give --fps")
        times = frames / fps
    elif fps:
        times = frames / fps
    rate = fps
    if not rate:
        dt = np.diff(times)
        dt = dt[np.isfinite(dt) & (dt > 0)]
        rate = float(1.0 / np.median(dt)) if len(dt) else None
    mapping = KeypointMap(head=["head"], tail=kps[1:])
    poses = Poses(position=pos, keypoints=kps, individuals=[p["name"] for p in per],
                  frames=frames, times=times, heading=heading, fps=rate, notes=notes)
    return poses, mapping


def _midline_len(post: dict[str, np.ndarray]) -> int:
    mp = np.asarray(post.get("midline_points", np.zeros((0, 0, 2))))
    if mp.ndim == 3:
        return int(mp.shape[1])
    lengths = np.asarray(post.get("midline_lengths", [0])).reshape(-1)
    return int(lengths.max()) if len(lengths) else 0


def _midlines(post: dict[str, np.ndarray], f: Path) -> tuple[np.ndarray, list[np.ndarray]]:
    if "frames" not in post or "midline_points" not in post:
        raise FishtrackError(f"{f}: TRex posture file lacks frames / midline_points")
    frames = np.asarray(post["frames"], np.int64).reshape(-1)
    mp = _finite(post["midline_points"])
    off = _finite(post["offset"]).reshape(-1, 2) if "offset" in post else np.zeros((len(frames), 2))
    if mp.ndim == 3:
        mids = [mp[i] + off[i] for i in range(len(frames))]
    else:
        lengths = np.asarray(post["midline_lengths"], np.int64).reshape(-1)
        split = np.split(mp.reshape(-1, 2), np.cumsum(lengths)[:-1])
        mids = [s + off[i] for i, s in enumerate(split)]
    return frames, mids
