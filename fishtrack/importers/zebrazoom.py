"""ZebraZoom results: the HDF5 file (ZebraZoom >= 1.34, ``storeH5``) and the legacy JSON
``results_<video>.txt``.

Layouts relied on (ZebraZoom's documentation "hdf5 output" and its data API
``createSuperStructFromH5`` / validation-video code):

HDF5::

    attrs: videoFPS, videoPixelSize, firstFrame, lastFrame, pathToOriginalVideo, ...
    wellPositions/well<i>                attrs topLeftX, topLeftY, lengthX, lengthY
    dataForWell<i>/dataForAnimal<j>/dataPerFrame/
        HeadPos     compound (X, Y), one row per frame firstFrame..lastFrame
        TailPosX    compound (TailPosX0 ... TailPosX<n>), attrs["columns"] = the field names
        TailPosY    compound (TailPosY0 ... )
        Heading, TailAngle                 (not used: recomputed the fishtrack way)

JSON: ``{"wellPositions": [{topLeftX, topLeftY, lengthX, lengthY}, ...], "wellPoissMouv":
[[[bout, ...] per animal] per well], "videoFPS"?, "firstFrame"?, "lastFrame"?}``, each bout
``{AnimalNumber, BoutStart, BoutEnd, HeadX, HeadY, TailX_VideoReferential,
TailY_VideoReferential, ...}`` with one entry per frame from BoutStart.

Positions are relative to the well's top-left corner (ZebraZoom adds ``topLeftX/Y`` when it
draws them on the video; so does fishtrack). ``(0, 0)`` means "not detected" (ZebraZoom's
convention), as does NaN. The head is ``HeadPos``/``HeadX, HeadY``; the midline is the head
followed by the tail points (``TailX_VideoReferential`` already starts at the head).

The JSON holds only the frames inside bouts. Between bouts ZebraZoom saw no movement; with
``between_bouts="still"`` (default) those frames are filled with the fish's pose at the end
of the previous bout (or the start of the next one), i.e. a still fish, so passive periods
can be scored; with ``"unobserved"`` they are left undetected (then every long inter-bout
interval is ``unknown``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from fishtrack.errors import FishtrackError
from fishtrack.importers._deps import require
from fishtrack.importers.keypoints import KeypointMap, Poses, grid_names

__all__ = ["read_zebrazoom"]

_WELL = re.compile(r"^dataForWell(\d+)$")
_ANIMAL = re.compile(r"^dataForAnimal(\d+)$")


def _keypoints(n_tail: int) -> tuple[list[str], KeypointMap]:
    tail = [f"tail_{i}" for i in range(n_tail)]
    return ["head", *tail], KeypointMap(head=["head"], tail=tail)


def _well_names(wells: list[dict], path: Path) -> list[str]:
    centres, sizes = [], []
    for w in wells:
        try:
            x0, y0 = float(w["topLeftX"]), float(w["topLeftY"])
            lx, ly = float(w.get("lengthX", 0)), float(w.get("lengthY", 0))
        except (KeyError, TypeError, ValueError):
            raise FishtrackError(f"{path}: wellPositions entries need topLeftX, topLeftY") from None
        centres.append((x0 + lx / 2, y0 + ly / 2))
        sizes.append(min(lx, ly) if lx > 0 and ly > 0 else np.nan)
    cell = float(np.nanmedian(sizes)) if np.isfinite(sizes).any() else None
    names = grid_names(np.asarray(centres), cell)
    return names if names is not None else [f"A{i + 1}" for i in range(len(wells))]


def _nan_zero(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    bad = (x == 0) & (y == 0)
    return np.where(bad, np.nan, x), np.where(bad, np.nan, y)


def read_zebrazoom(path: Path, fps: float | None, *, between_bouts: str = "still"
                   ) -> tuple[Poses, KeypointMap]:
    """A ZebraZoom ``.h5`` results file or a legacy ``results_<video>.txt`` (JSON)."""
    if path.suffix.lower() in (".h5", ".hdf5"):
        return _read_h5(path, fps)
    if path.suffix.lower() in (".txt", ".json"):
        return _read_json(path, fps, between_bouts)
    raise FishtrackError(
        f"{path}: ZebraZoom results are an .h5 file or a results_<video>.txt file "
        f"(got {path.suffix or 'no suffix'})"
    )


def _rate(path: Path, fps: float | None, stored: Any) -> float:
    if fps:
        return float(fps)
    try:
        v = float(stored)
    except (TypeError, ValueError):
        v = float("nan")
    if np.isfinite(v) and v > 0:
        return v
    raise FishtrackError(f"{path}: the file records no frame rate (videoFPS); give --fps")


def _read_h5(path: Path, fps: float | None) -> tuple[Poses, KeypointMap]:
    h5py = require("h5py", "zebrazoom")
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise FishtrackError(f"{path}: not an HDF5 file ({err})") from None
    with f:
        wells_idx = sorted(int(m.group(1)) for k in f if (m := _WELL.match(k)))
        if not wells_idx:
            raise FishtrackError(f"{path}: no dataForWell<i> groups; not a ZebraZoom results file")
        rate = _rate(path, fps, f.attrs.get("videoFPS"))
        first = int(f.attrs.get("firstFrame", 0))
        wp = f.get("wellPositions")
        wells = [dict(wp[f"well{i}"].attrs) for i in wells_idx] if wp is not None and all(
            f"well{i}" in wp for i in wells_idx) else None
        animals: list[tuple[int, int, Any]] = []
        for w in wells_idx:
            g = f[f"dataForWell{w}"]
            for a in sorted(int(m.group(1)) for k in g if (m := _ANIMAL.match(k))):
                if "dataPerFrame" in g[f"dataForAnimal{a}"]:
                    animals.append((w, a, g[f"dataForAnimal{a}/dataPerFrame"]))
        if not animals:
            raise FishtrackError(f"{path}: no dataPerFrame in any well; nothing to import")
        n_t = max(len(d["HeadPos"]) for _, _, d in animals)
        n_tail = 0
        for _, _, d in animals:
            if "TailPosX" in d:
                n_tail = max(n_tail, len(_columns(d["TailPosX"])))
        kps, mapping = _keypoints(n_tail)
        pos = np.full((n_t, len(animals), len(kps), 2), np.nan)
        for j, (w, _a, d) in enumerate(animals):
            off = _offset(wells, wells_idx.index(w))
            head = d["HeadPos"][()]
            hx, hy = _nan_zero(np.asarray(head["X"], np.float64), np.asarray(head["Y"], np.float64))
            pos[: len(hx), j, 0, 0] = hx + off[0]
            pos[: len(hy), j, 0, 1] = hy + off[1]
            if n_tail and "TailPosX" in d and "TailPosY" in d:
                tx, ty = d["TailPosX"][()], d["TailPosY"][()]
                for k, (cx, cy) in enumerate(zip(_columns(d["TailPosX"]), _columns(d["TailPosY"]),
                                                 strict=True)):
                    xx, yy = _nan_zero(np.asarray(tx[cx], np.float64), np.asarray(ty[cy], np.float64))
                    pos[: len(xx), j, 1 + k, 0] = xx + off[0]
                    pos[: len(yy), j, 1 + k, 1] = yy + off[1]
    frames = first + np.arange(n_t, dtype=np.int64)
    names = _well_names(wells, path) if wells is not None else [f"A{i + 1}" for i in wells_idx]
    arenas = [names[wells_idx.index(w)] for w, _, _ in animals]
    poses = Poses(position=pos, keypoints=kps,
                  individuals=[f"well{w}/animal{a}" for w, a, _ in animals],
                  frames=frames, times=frames / rate, arenas=arenas, fps=rate)
    if wells is None:
        poses.notes.append("no wellPositions in the file: positions are well-relative")
    return poses, mapping


def _columns(ds: Any) -> list[str]:
    cols = ds.attrs.get("columns")
    if cols is not None:
        return [c.decode() if isinstance(c, bytes) else str(c) for c in np.atleast_1d(cols)]
    return list(ds.dtype.names or ())


def _offset(wells: list[dict] | None, i: int) -> tuple[float, float]:
    if wells is None:
        return 0.0, 0.0
    return float(wells[i].get("topLeftX", 0)), float(wells[i].get("topLeftY", 0))


def _read_json(path: Path, fps: float | None, between_bouts: str) -> tuple[Poses, KeypointMap]:
    if between_bouts not in ("still", "unobserved"):
        raise FishtrackError(f"between_bouts must be 'still' or 'unobserved', not {between_bouts!r}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise FishtrackError(f"{path}: not a ZebraZoom JSON results file ({err})") from None
    if not isinstance(data, dict) or not isinstance(data.get("wellPoissMouv"), list):
        raise FishtrackError(f"{path}: no 'wellPoissMouv' list; not a ZebraZoom results file")
    rate = _rate(path, fps, data.get("videoFPS"))
    wells = data.get("wellPositions") if isinstance(data.get("wellPositions"), list) else None
    if wells is not None and len(wells) != len(data["wellPoissMouv"]):
        wells = None
    animals: list[tuple[int, int, list[dict]]] = []
    for w, per_well in enumerate(data["wellPoissMouv"]):
        for a, bouts in enumerate(per_well or []):
            animals.append((w, a, [b for b in (bouts or []) if isinstance(b, dict)]))
    if not animals:
        raise FishtrackError(f"{path}: no animals in wellPoissMouv; nothing to import")
    last_bout = max((int(b["BoutStart"]) + len(b.get("HeadX", [])) - 1
                     for _, _, bs in animals for b in bs if "BoutStart" in b), default=-1)
    first = int(data.get("firstFrame", 0) or 0)
    last = int(data["lastFrame"]) if data.get("lastFrame") is not None else last_bout
    if last < first:
        raise FishtrackError(f"{path}: no bouts and no lastFrame; nothing to import")
    n_t = last - first + 1
    n_tail = max((len(fr) - 1 for _, _, bs in animals for b in bs
                  for fr in b.get("TailX_VideoReferential", [])[:1]), default=0)
    kps, mapping = _keypoints(n_tail)
    pos = np.full((n_t, len(animals), len(kps), 2), np.nan)
    seen = np.zeros((n_t, len(animals)), bool)
    for j, (w, _a, bouts) in enumerate(animals):
        off = _offset(wells, w)
        for b in bouts:
            try:
                start = int(b["BoutStart"]) - first
                hx = np.asarray(b["HeadX"], np.float64)
                hy = np.asarray(b["HeadY"], np.float64)
            except (KeyError, TypeError, ValueError):
                raise FishtrackError(f"{path}: a bout lacks BoutStart/HeadX/HeadY") from None
            rows = start + np.arange(len(hx))
            ok = (rows >= 0) & (rows < n_t)
            hx, hy = _nan_zero(hx, hy)
            pos[rows[ok], j, 0, 0] = hx[ok] + off[0]
            pos[rows[ok], j, 0, 1] = hy[ok] + off[1]
            tx = b.get("TailX_VideoReferential")
            ty = b.get("TailY_VideoReferential")
            if n_tail and tx is not None and ty is not None:
                for r, fx, fy in zip(rows, tx, ty, strict=False):
                    if 0 <= r < n_t and len(fx) == n_tail + 1 and len(fy) == n_tail + 1:
                        xx, yy = _nan_zero(np.asarray(fx[1:], np.float64),
                                           np.asarray(fy[1:], np.float64))
                        pos[r, j, 1:, 0] = xx + off[0]
                        pos[r, j, 1:, 1] = yy + off[1]
            seen[rows[ok], j] = True
    notes = []
    if between_bouts == "still":
        pos = _hold_between(pos, seen)
        notes.append(
            "ZebraZoom JSON holds bout frames only: frames between bouts were filled with the "
            "pose at the end of the previous bout (a still fish, as ZebraZoom detected no "
            "movement there)"
        )
    frames = first + np.arange(n_t, dtype=np.int64)
    names = _well_names(wells, path) if wells is not None else \
        [f"A{i + 1}" for i in range(len(data["wellPoissMouv"]))]
    poses = Poses(position=pos, keypoints=kps,
                  individuals=[f"well{w}/animal{a}" for w, a, _ in animals],
                  frames=frames, times=frames / rate,
                  arenas=[names[w] for w, _, _ in animals], fps=rate, notes=notes)
    return poses, mapping


def _hold_between(pos: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Fill frames outside bouts with the last in-bout pose before them (or the first after
    them, before the first bout)."""
    out = pos.copy()
    n_t = len(pos)
    idx = np.where(seen, np.arange(n_t)[:, None], -1)
    prev = np.maximum.accumulate(idx, axis=0)  # last seen frame at or before t
    nxt = np.where(seen, np.arange(n_t)[:, None], n_t)
    nxt = np.minimum.accumulate(nxt[::-1], axis=0)[::-1]
    src = np.where(prev >= 0, prev, nxt)  # (T, F)
    valid = src < n_t
    fish = np.broadcast_to(np.arange(pos.shape[1])[None, :], src.shape)
    fill = ~seen & valid
    out[fill] = pos[src[fill], fish[fill]]
    return out
