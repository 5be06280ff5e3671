"""Trial folder tables -> napari layer data, without Qt and without napari.

Everything here is pure numpy/pandas so it can be tested without a viewer; ``_reader.py``
wraps the results in napari layer-data tuples and ``_widget.py`` draws the per-fish series.

Coordinates: napari axes are ``(frame, row, col)`` = ``(frame, y, x)`` in px of the (cropped)
video that was tracked; the time axis is the 0-based frame number, never renumbered.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from natsort import natsorted

from fishtrack.behaviour.states import STATE_COLOURS
from fishtrack.corrections import apply_corrections_to_epochs, empty_corrections
from fishtrack.errors import FishtrackError, VideoError
from fishtrack.io.video import open_video
from fishtrack.preview import tail_columns
from fishtrack.trial import TRACKS, Provenance, TrialFolder

__all__ = [
    "STATE_NAMES",
    "STATE_COLOURS",
    "PHASE_COLOURS",
    "VIDEO_SUFFIXES",
    "Trial",
    "LazyVideo",
    "is_trial_folder",
    "trial_folder_of",
    "read_trial",
    "find_video",
    "open_video_array",
    "fish_ids",
    "state_codes",
    "state_colour_values",
    "tracks_layer_data",
    "head_points_data",
    "tail_points_data",
    "arena_shapes_data",
    "protocol_spans",
    "fish_epochs",
    "fish_bouts",
    "fish_series",
    "trace_envelope",
    "epoch_at",
]

STATE_NAMES = ("active", "passive", "unknown", "excluded")
"""State codes used for colouring: index into this tuple (``excluded`` = a human said so)."""
PHASE_COLOURS = {"closed_loop": "#59a14f", "open_loop": "#e15759", "other": "#bab0ac"}
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".m4v", ".tif", ".tiff")


# --------------------------------------------------------------------------------------------
# the trial folder


@dataclass
class Trial:
    """The tables of one trial folder (``fishtrack track`` output)."""

    folder: Path
    tracks: pd.DataFrame
    bouts: pd.DataFrame
    epochs: pd.DataFrame
    provenance: Provenance = field(default_factory=Provenance)
    corrections: pd.DataFrame | None = None

    @property
    def fish(self) -> list[str]:
        """Fish ids in natural order (``A1`` < ``A2`` < ``A10``)."""
        return fish_ids(self.tracks)

    @property
    def arenas(self) -> list[dict]:
        return self.provenance.arenas

    @property
    def protocol(self) -> list[dict]:
        """The protocol the states were scored with (a re-scoring's, else the config's)."""
        return self.provenance.scoring()[1]

    @property
    def fps(self) -> float | None:
        """The video's frame rate as recorded (None when unknown)."""
        return float(self.provenance.fps or 0) or None

    @property
    def crop(self):
        return (self.provenance.config.get("video") or {}).get("crop")

    @property
    def fps_override(self):
        return (self.provenance.config.get("video") or {}).get("fps")

    @property
    def video_path(self) -> Path | None:
        return find_video(self.folder, self.provenance)

    def frame_times(self) -> tuple[np.ndarray, np.ndarray]:
        """Sorted unique frame numbers and their times (s)."""
        if self.tracks.empty:
            return np.zeros(0, np.int64), np.zeros(0)
        ft = self.tracks[["frame", "time_s"]].drop_duplicates("frame").sort_values("frame")
        return ft["frame"].to_numpy(np.int64), ft["time_s"].to_numpy(float)

    @property
    def n_frames(self) -> int:
        n = int(self.provenance.video.get("n_frames") or 0)
        if not self.tracks.empty:
            n = max(n, int(self.tracks["frame"].max()) + 1)
        return n


def is_trial_folder(path: str | Path) -> bool:
    """True when ``path`` is a folder containing ``tracks.parquet``."""
    path = Path(path)
    return path.is_dir() and TrialFolder(path).has_tracks()


def trial_folder_of(path: str | Path) -> Path | None:
    """The trial folder for a trial folder or its ``tracks.parquet``, else None."""
    path = Path(path)
    if path.is_file() and path.name == TRACKS:
        return path.parent
    if is_trial_folder(path):
        return path
    return None


def read_trial(path: str | Path) -> Trial:
    """Read a trial folder (or its ``tracks.parquet``) into a :class:`Trial`.

    ``bouts.csv``, ``epochs.csv``, ``provenance.json`` and ``corrections.csv`` are optional;
    missing ones give empty tables / an empty provenance.
    """
    folder = trial_folder_of(path)
    if folder is None:
        raise FishtrackError(f"{path}: not a fishtrack trial folder (no tracks.parquet)")
    trial = TrialFolder(folder)
    tracks = trial.tracks(require=("frame", "time_s", "fish", "x", "y"))
    prov = trial.provenance() if trial.provenance_path.exists() else Provenance()
    return Trial(folder=folder, tracks=tracks, bouts=trial.bouts(), epochs=trial.epochs(),
                 provenance=prov, corrections=trial.corrections())


def find_video(folder: str | Path, provenance: Provenance | Mapping[str, Any]) -> Path | None:
    """Locate the tracked video: ``input.path`` from provenance, else a file of the same name
    in the trial folder or next to it (folders get moved between machines)."""
    folder = Path(folder)
    if not isinstance(provenance, Provenance):
        provenance = Provenance(provenance)
    inp = provenance.input
    cands: list[Path] = []
    if inp.get("path"):
        p = Path(inp["path"])
        cands.append(p if p.is_absolute() else folder / p)
    name = inp.get("name") or (Path(inp["path"]).name if inp.get("path") else None)
    if name:
        cands += [folder / name, folder.parent / name, folder.parent.parent / name]
    for c in cands:
        if c.exists():
            return c
    return None


# --------------------------------------------------------------------------------------------
# the video, lazily


class LazyVideo:
    """Array-like ``(n_frames, height, width)`` view of a video that decodes frames on demand.

    napari only needs ``shape``, ``dtype``, ``ndim`` and ``__getitem__``; indexing one frame
    decodes one frame (through ``source.read(i)``), so a one-hour video is never loaded into
    memory. A small LRU cache keeps recently shown frames; a lock serialises decoding because
    napari may slice from a worker thread. Frames that fail to decode are shown black.
    """

    def __init__(self, source, *, read_ahead: int = 32, cache_bytes: int = 256 << 20,
                 max_bytes: int = 2 << 30):
        self.source = source
        first = np.asarray(source.read(0))
        n = len(source)
        self.shape = (int(n), *first.shape)
        self.dtype = first.dtype
        self.ndim = len(self.shape)
        self._lock = threading.RLock()
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict({0: first})
        self._cache_frames = int(np.clip(cache_bytes // max(first.nbytes, 1), 2 * read_ahead, 512))
        self._read_ahead = max(1, int(read_ahead)) if hasattr(source, "read_range") else 1
        self._max_bytes = max_bytes

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def _decode(self, i: int) -> None:
        """Decode frame ``i`` and the next ``read_ahead - 1`` into the cache (a random read of
        a long-GOP video costs a seek plus decoding, so stepping forward reuses it)."""
        stop = min(i + self._read_ahead, self.shape[0])
        try:
            if stop - i > 1:
                chunk = self.source.read_range(i, stop)
                got = dict(zip((int(k) for k in chunk.indices), chunk.frames, strict=False))
            else:
                got = {i: np.asarray(self.source.read(i))}
        except FishtrackError:
            got = {}
        for k in range(i, stop):
            img = got.get(k)
            if img is None or img.shape != self.shape[1:]:
                if k != i:
                    continue
                img = np.zeros(self.shape[1:], self.dtype)  # undecodable: shown black
            self._cache[k] = np.asarray(img)
            self._cache.move_to_end(k)
        while len(self._cache) > self._cache_frames:
            self._cache.popitem(last=False)

    def frame(self, i: int) -> np.ndarray:
        """Decode frame ``i`` (cached)."""
        i = int(i)
        if i < 0:
            i += self.shape[0]
        if not 0 <= i < self.shape[0]:
            raise IndexError(f"frame {i} out of range 0..{self.shape[0] - 1}")
        with self._lock:
            hit = self._cache.get(i)
            if hit is None:
                self._decode(i)
                hit = self._cache[i]
            self._cache.move_to_end(i)
            return hit

    def __getitem__(self, key):
        if not isinstance(key, tuple):
            key = (key,)
        if any(k is Ellipsis for k in key):
            i = next(j for j, k in enumerate(key) if k is Ellipsis)
            fill = self.ndim - (len(key) - 1)
            key = key[:i] + (slice(None),) * fill + key[i + 1:]
        first, rest = (key[0], key[1:]) if key else (slice(None), ())
        if isinstance(first, int | np.integer):
            return self.frame(int(first))[rest] if rest else self.frame(int(first))
        idx = np.arange(self.shape[0])[first]
        need = idx.size * int(np.prod(self.shape[1:])) * self.dtype.itemsize
        if need > self._max_bytes:
            raise MemoryError(f"refusing to decode {idx.size} frames ({need / 2**30:.1f} GiB) at once")
        out = np.stack([self.frame(int(i)) for i in idx]) if idx.size else np.zeros((0, *self.shape[1:]), self.dtype)
        return out[(slice(None), *rest)] if rest else out

    def __array__(self, dtype=None, copy=None):
        arr = self[:]
        return arr.astype(dtype) if dtype is not None else arr

    def __repr__(self) -> str:
        return f"LazyVideo(shape={self.shape}, dtype={self.dtype})"


def open_video_array(path: str | Path, *, crop=None, fps=None) -> LazyVideo:
    """Open ``path`` with :func:`fishtrack.io.video.open_video` as a :class:`LazyVideo`."""
    src = open_video(path, crop=crop, fps=fps)
    if len(src) == 0:
        raise VideoError(f"{path}: the video has no frames")
    return LazyVideo(src)


# --------------------------------------------------------------------------------------------
# per-frame layers


def fish_ids(tracks: pd.DataFrame) -> list[str]:
    """Fish ids in natural sort order."""
    if tracks.empty or "fish" not in tracks.columns:
        return []
    return list(natsorted(pd.unique(tracks["fish"].astype(str))))


def state_codes(states) -> np.ndarray:
    """Index into :data:`STATE_NAMES` (unrecognised or missing -> ``unknown``)."""
    inv, uniq = pd.factorize(pd.Series(np.asarray(states, dtype=object), dtype=object), sort=False)
    unknown = STATE_NAMES.index("unknown")
    lut = np.array([STATE_NAMES.index(str(u)) if str(u) in STATE_NAMES else unknown for u in uniq]
                   + [unknown], np.int8)
    return lut[inv]  # missing values have code -1 -> the trailing "unknown"


def state_colour_values(codes: np.ndarray) -> np.ndarray:
    """Values in [0, 1] that a 4-step colormap with equal bins maps to the state colours."""
    return (np.asarray(codes, float) + 0.5) / len(STATE_NAMES)


def _visible_mask(tracks: pd.DataFrame) -> np.ndarray:
    ok = np.isfinite(tracks["x"].to_numpy(float)) & np.isfinite(tracks["y"].to_numpy(float))
    if "detected" in tracks.columns:
        ok &= tracks["detected"].fillna(False).to_numpy(bool)
    return ok


def _col(tracks: pd.DataFrame, name: str, ok: np.ndarray, *, default=None) -> np.ndarray:
    if name not in tracks.columns:
        return np.full(int(ok.sum()), default, object if isinstance(default, str) else float)
    return tracks[name].to_numpy()[ok]


def _fish_codes(fish: np.ndarray, order: Sequence[str]) -> np.ndarray:
    """Index of each fish id in ``order`` (-1 when absent), via one pass over unique ids."""
    inv, uniq = pd.factorize(pd.Series(fish).astype(str), sort=False)
    lut = {f: i for i, f in enumerate(order)}
    return np.array([lut.get(u, -1) for u in uniq] + [-1], np.int64)[inv]


def tracks_layer_data(
    tracks: pd.DataFrame, *, fish: Sequence[str] | None = None, max_vertices: int = 500_000
) -> tuple[np.ndarray, pd.DataFrame]:
    """Data and features for a napari Tracks layer.

    Parameters
    ----------
    tracks
        The per-frame table.
    fish
        Track order (default :func:`fish_ids`); ``track_id`` is the index in it.
    max_vertices
        napari's Tracks layer is slow to build for millions of vertices; above this many
        detected rows every k-th frame is kept (``frame % k == 0``), which still draws the
        trajectories faithfully at display scale.

    Returns
    -------
    data
        float ``(N, 4)``: ``track_id, frame, y, x`` for detected rows, sorted by track then
        frame.
    features
        ``track_id``, ``state`` (colour value in [0, 1], see :func:`state_colour_values`),
        ``state_code`` (index into :data:`STATE_NAMES`) and ``tail_angle`` (rad, 0 if absent).
    """
    fish = list(fish) if fish is not None else fish_ids(tracks)
    ok = _visible_mask(tracks)
    frame = tracks["frame"].to_numpy(np.int64)
    n_ok = int(ok.sum())
    if n_ok > max_vertices:
        step = int(np.ceil(n_ok / max_vertices))
        ok &= frame % step == 0
    tid = _fish_codes(tracks["fish"].to_numpy()[ok], fish)
    keep = tid >= 0
    frame = frame[ok][keep]
    tid = tid[keep]
    y = tracks["y"].to_numpy(float)[ok][keep]
    x = tracks["x"].to_numpy(float)[ok][keep]
    codes = state_codes(_col(tracks, "state", ok, default="unknown")[keep])
    tail = tracks["tail_angle"].to_numpy(float)[ok][keep] if "tail_angle" in tracks.columns else np.zeros(len(x))
    order = np.lexsort((frame, tid))
    data = np.column_stack([tid, frame, y, x])[order].astype(float)
    codes = codes[order]
    feats = pd.DataFrame({
        "track_id": tid[order],
        "state": state_colour_values(codes),
        "state_code": codes.astype(np.int64),
        "tail_angle": np.nan_to_num(tail[order]),
    })
    return data, feats


def head_points_data(tracks: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
    """Head positions as ``(N, 3)`` ``frame, y, x`` with features ``fish`` and ``state``."""
    ok = _visible_mask(tracks)
    data = np.column_stack([tracks["frame"].to_numpy(float)[ok], tracks["y"].to_numpy(float)[ok],
                            tracks["x"].to_numpy(float)[ok]])
    codes = state_codes(_col(tracks, "state", ok, default="unknown"))
    feats = pd.DataFrame({
        "fish": tracks["fish"].astype(str).to_numpy()[ok],
        "state": pd.Categorical.from_codes(codes, categories=list(STATE_NAMES)),
    })
    return data, feats


def tail_points_data(tracks: pd.DataFrame, *, max_points: int = 2_000_000) -> tuple[np.ndarray, pd.DataFrame]:
    """Midline points as ``(M, 3)`` ``frame, y, x`` with features ``fish`` and ``point``.

    Point 0 (the head) is left out (it is the head layer). When the table would give more than
    ``max_points`` points (long videos), points along the body are thinned evenly, always
    keeping the tail tip; napari shows the points of the current frame only.
    """
    xs, ys = tail_columns(tracks)
    if len(xs) < 2 or len(ys) != len(xs):
        return np.zeros((0, 3)), pd.DataFrame({"fish": pd.Series(dtype=object), "point": pd.Series(dtype=np.int64)})
    ok = _visible_mask(tracks)
    n = int(ok.sum())
    pts = list(range(1, len(xs)))
    budget = max(1, max_points // max(1, n))
    if budget < len(pts):
        pts = sorted(np.unique(np.round(np.linspace(len(xs) - 1, 1, budget)).astype(int)).tolist())
    px = np.column_stack([tracks[xs[p]].to_numpy(float)[ok] for p in pts])
    py = np.column_stack([tracks[ys[p]].to_numpy(float)[ok] for p in pts])
    k = len(pts)
    frame = np.repeat(tracks["frame"].to_numpy(float)[ok], k)
    data = np.column_stack([frame, py.ravel(), px.ravel()])
    good = np.isfinite(data).all(axis=1)
    feats = pd.DataFrame({
        "fish": np.repeat(tracks["fish"].astype(str).to_numpy()[ok], k)[good],
        "point": np.tile(np.asarray(pts, np.int64), n)[good],
    })
    return data[good], feats


def arena_shapes_data(arenas: Sequence[dict]) -> tuple[list[np.ndarray], list[str], list[str]]:
    """Arena outlines for a 2D napari Shapes layer: ``(data, shape_types, names)``.

    Circles become ``ellipse`` shapes (4 bounding-box corners, ``(y, x)``), squares and
    rectangles ``rectangle`` shapes.
    """
    data, types, names = [], [], []
    for a in arenas:
        shape = str(a.get("shape", "rect"))
        cx, cy, r = float(a.get("cx", np.nan)), float(a.get("cy", np.nan)), float(a.get("radius", np.nan))
        if np.isfinite(r) and np.isfinite(cx) and np.isfinite(cy) and shape in ("circle", "square"):
            y0, x0, y1, x1 = cy - r, cx - r, cy + r, cx + r
        else:
            x0, y0, x1, y1 = (float(v) for v in a["bbox"])
            x1, y1 = x1 - 1, y1 - 1  # bbox is exclusive
        data.append(np.array([[y0, x0], [y0, x1], [y1, x1], [y1, x0]], float))
        types.append("ellipse" if shape == "circle" else "rectangle")
        names.append(str(a.get("name", "")))
    return data, types, names


# --------------------------------------------------------------------------------------------
# per-fish series for the widget


def protocol_spans(protocol: Sequence[dict]) -> pd.DataFrame:
    """Protocol phases as a table ``name, kind, start_s, end_s, colour``."""
    rows = [
        {
            "name": str(p.get("name", "")),
            "kind": str(p.get("kind", "other")),
            "start_s": float(p["start_s"]),
            "end_s": float(p["end_s"]),
        }
        for p in protocol
    ]
    df = pd.DataFrame(rows, columns=["name", "kind", "start_s", "end_s"])
    df["colour"] = [PHASE_COLOURS.get(k, PHASE_COLOURS["other"]) for k in df["kind"]]
    return df


def _runs_from_tracks(tracks: pd.DataFrame, fish: str) -> pd.DataFrame:
    """Epoch-like runs of the per-frame ``state`` column (used when epochs.csv is absent)."""
    rows = tracks[tracks["fish"].astype(str) == fish].sort_values("frame")
    cols = ["fish", "state", "start_frame", "end_frame", "start_s", "end_s", "duration_s", "phase", "censored"]
    if rows.empty or "state" not in rows.columns:
        return pd.DataFrame(columns=cols)
    st = rows["state"].fillna("unknown").astype(str).to_numpy()
    t = rows["time_s"].to_numpy(float)
    fr = rows["frame"].to_numpy(np.int64)
    dt = float(np.median(np.diff(t))) if len(t) > 1 else 0.0
    brk = np.r_[True, st[1:] != st[:-1]]
    s = np.flatnonzero(brk)
    e = np.r_[s[1:] - 1, len(st) - 1]
    end_s = t[e] + dt
    return pd.DataFrame({
        "fish": fish, "state": st[s], "start_frame": fr[s], "end_frame": fr[e], "start_s": t[s],
        "end_s": end_s, "duration_s": end_s - t[s], "phase": None, "censored": False,
    })


def fish_epochs(trial: Trial, fish: str, *, corrections: pd.DataFrame | None = None) -> pd.DataFrame:
    """Epochs of one fish in time order, with ``original_state`` and ``corrected`` columns.

    Corrections (default: the trial's) are applied without merging, so every row is still an
    epoch of ``epochs.csv`` that can be selected and relabelled.
    """
    ep = trial.epochs
    if ep.empty or "fish" not in ep.columns:
        ep = _runs_from_tracks(trial.tracks, fish)
    else:
        ep = ep[ep["fish"].astype(str) == fish]
    ep = ep.sort_values("start_s", kind="stable").reset_index(drop=True)
    corr = trial.corrections if corrections is None else corrections
    if corr is None:
        corr = empty_corrections()
    corr = corr[corr["fish"].astype(str) == fish] if len(corr) else corr
    return apply_corrections_to_epochs(ep, corr, merge=False)


def fish_bouts(trial: Trial, fish: str) -> pd.DataFrame:
    """Bouts of one fish (``start_s, end_s, ...``) in time order."""
    b = trial.bouts
    if b.empty or "fish" not in b.columns:
        return pd.DataFrame(columns=["fish", "start_s", "end_s"])
    return b[b["fish"].astype(str) == fish].sort_values("start_s").reset_index(drop=True)


def fish_series(trial: Trial, fish: str, column: str = "tail_angle") -> tuple[np.ndarray, np.ndarray]:
    """``(time_s, values)`` of one per-frame column for one fish (NaN where undetected)."""
    rows = trial.tracks[trial.tracks["fish"] == fish].sort_values("frame")
    if column not in rows.columns:
        return rows["time_s"].to_numpy(float), np.full(len(rows), np.nan)
    v = rows[column].to_numpy(float)
    if "detected" in rows.columns:
        v = np.where(rows["detected"].fillna(False).to_numpy(bool), v, np.nan)
    return rows["time_s"].to_numpy(float), v


def trace_envelope(t: np.ndarray, v: np.ndarray, t0: float, t1: float, n_bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Min/max envelope of ``v(t)`` on ``[t0, t1)`` in ``n_bins`` equal bins (for drawing).

    Returns ``(bin_centres_s, vmin, vmax)``; bins without finite samples are NaN. When there
    are fewer samples than bins, every sample is returned as its own bin (``vmin == vmax``).
    """
    t = np.asarray(t, float)
    v = np.asarray(v, float)
    m = (t >= t0) & (t < t1) & np.isfinite(v)
    tt, vv = t[m], v[m]
    if tt.size <= n_bins:
        return tt, vv, vv
    b = np.clip(((tt - t0) / (t1 - t0) * n_bins).astype(np.int64), 0, n_bins - 1)
    vmin = np.full(n_bins, np.inf)
    vmax = np.full(n_bins, -np.inf)
    np.minimum.at(vmin, b, vv)
    np.maximum.at(vmax, b, vv)
    empty = ~np.isfinite(vmin)
    vmin[empty] = np.nan
    vmax[empty] = np.nan
    centres = t0 + (np.arange(n_bins) + 0.5) * (t1 - t0) / n_bins
    return centres, vmin, vmax


def epoch_at(epochs: pd.DataFrame, time_s: float) -> int | None:
    """Row position of the epoch containing ``time_s`` (``start_s <= t < end_s``), else None."""
    if epochs.empty:
        return None
    s = epochs["start_s"].to_numpy(float)
    e = epochs["end_s"].to_numpy(float)
    hit = np.flatnonzero((s <= time_s) & (time_s < e))
    return int(hit[-1]) if hit.size else None


def frame_at_time(frames: np.ndarray, times: np.ndarray, time_s: float) -> int:
    """The frame whose time is nearest ``time_s``."""
    if len(frames) == 0:
        return 0
    i = int(np.clip(np.searchsorted(times, time_s), 1, len(times) - 1)) if len(times) > 1 else 0
    if len(times) > 1 and abs(times[i - 1] - time_s) <= abs(times[i] - time_s):
        i -= 1
    return int(frames[i])


def time_at_frame(frames: np.ndarray, times: np.ndarray, frame: int, fps: float | None = None) -> float:
    """Time (s) of ``frame``, interpolated (or extrapolated linearly) when it has no row."""
    if len(frames) == 0:
        return float(frame) / fps if fps else float(frame)
    if len(frames) == 1:
        return float(times[0]) + ((frame - float(frames[0])) / fps if fps else 0.0)
    if frame < frames[0]:
        i, j = 0, 1
    elif frame > frames[-1]:
        i, j = -2, -1
    else:
        return float(np.interp(frame, frames, times))
    slope = (times[j] - times[i]) / max(float(frames[j] - frames[i]), 1.0)
    return float(times[i] + (frame - frames[i]) * slope)


def layer_metadata(trial: Trial) -> dict[str, Any]:
    """Metadata attached to every layer of a trial, so the widget can find the trial."""
    return {"fishtrack_folder": str(trial.folder)}


__all__ += ["frame_at_time", "time_at_frame", "layer_metadata"]
