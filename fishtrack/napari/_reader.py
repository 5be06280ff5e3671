"""napari reader: fishtrack trial folders, ``tracks.parquet`` files and plain videos.

A trial folder opens as: the video (decoded lazily, frame by frame), arena outlines with their
names, the tracks coloured by state, head points coloured by state and tail (midline) points,
all on the axes ``(frame, y, x)``. A plain video opens as the lazy image only.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from fishtrack.errors import FishtrackError
from fishtrack.napari import convert as cv

__all__ = ["napari_get_reader", "read_trial_layers", "read_video_layers", "trial_layers", "state_colormap"]

LayerData = tuple[Any, dict, str]


def napari_get_reader(path: str | list[str]):
    """Return a reader function for ``path``, or None when fishtrack cannot read it."""
    if isinstance(path, list | tuple):
        if len(path) != 1:
            return None
        path = path[0]
    p = Path(str(path))
    if cv.trial_folder_of(p) is not None:
        return read_trial_layers
    if p.is_file() and p.suffix.lower() in cv.VIDEO_SUFFIXES:
        return read_video_layers
    return None


def _one(path) -> Path:
    if isinstance(path, list | tuple):
        path = path[0]
    return Path(str(path))


def state_colormap():
    """A napari Colormap mapping :func:`convert.state_colour_values` to the state colours."""
    from napari.utils.colormaps import Colormap
    from napari.utils.colormaps.standardize_color import transform_color

    colours = transform_color([cv.STATE_COLOURS[s] for s in cv.STATE_NAMES])
    n = len(cv.STATE_NAMES)
    return Colormap(colors=colours, controls=np.linspace(0, 1, n + 1), interpolation="zero",
                    name="fishtrack_state")


def video_layer(video: cv.LazyVideo, *, name: str = "video", metadata: dict | None = None) -> LayerData:
    """Layer-data tuple for a lazily decoded video."""
    lo, hi = (0, 255) if video.dtype == np.uint8 else (0, float(np.iinfo(video.dtype).max)
                                                      if np.issubdtype(video.dtype, np.integer) else 1.0)
    return (video, {"name": name, "contrast_limits": [lo, hi], "multiscale": False,
                    "metadata": dict(metadata or {})}, "image")


def trial_layers(trial: cv.Trial, *, video: bool = True, tail_max_points: int = 2_000_000) -> list[LayerData]:
    """All layers of a trial: video (when found), arenas, tracks, heads, tails."""
    meta = cv.layer_metadata(trial)
    layers: list[LayerData] = []
    if video:
        vpath = trial.video_path
        if vpath is None:
            inp = trial.provenance.input.get("path", "?")
            warnings.warn(f"{trial.folder}: video {inp} not found; showing the tracks only", stacklevel=2)
        else:
            try:
                arr = cv.open_video_array(vpath, crop=trial.crop, fps=trial.fps_override)
                layers.append(video_layer(arr, name=f"video ({vpath.name})", metadata=meta))
            except FishtrackError as err:
                warnings.warn(str(err), stacklevel=2)
    arenas = trial.arenas
    if arenas:
        data, types, names = cv.arena_shapes_data(arenas)
        layers.append((data, {
            "name": "arenas", "shape_type": types, "features": {"name": names},
            "edge_color": "#ffd700", "face_color": "transparent", "edge_width": 1.5,
            "text": {"string": "{name}", "color": "#ffd700", "anchor": "upper_left", "size": 10},
            "metadata": meta,
        }, "shapes"))
    fish = trial.fish
    fps = trial.fps
    tdata, tfeat = cv.tracks_layer_data(trial.tracks, fish=fish)
    if len(tdata):
        tail_len = int(min(300, max(10, round(2 * fps)))) if fps else 60
        layers.append((tdata, {
            "name": "tracks", "features": tfeat, "color_by": "state",
            "colormaps_dict": {"state": state_colormap()}, "tail_length": tail_len,
            "head_length": 0, "tail_width": 3, "blending": "translucent", "metadata": {**meta, "fish": fish},
        }, "tracks"))
    # Fortran order: napari recomputes a Points layer's extent (min/max over axis 0) on every
    # slice, which is ~10x faster on column-contiguous data for long recordings
    hdata, hfeat = cv.head_points_data(trial.tracks)
    if len(hdata):
        layers.append((np.asfortranarray(hdata), {
            "name": "heads", "features": hfeat, "face_color": "state",
            "face_color_cycle": dict(cv.STATE_COLOURS), "border_color": "white", "border_width": 0.1,
            "size": 6, "metadata": meta,
        }, "points"))
    pdata, pfeat = cv.tail_points_data(trial.tracks, max_points=tail_max_points)
    if len(pdata):
        layers.append((np.asfortranarray(pdata), {
            "name": "tails", "features": pfeat, "face_color": "#00e5ff", "border_width": 0,
            "size": 2.5, "metadata": meta,
        }, "points"))
    return layers


def read_trial_layers(path) -> list[LayerData]:
    """Reader function for a trial folder or its ``tracks.parquet``."""
    return trial_layers(cv.read_trial(_one(path)))


def read_video_layers(path) -> list[LayerData]:
    """Reader function for a plain video (mp4, avi, mkv, mov, tif)."""
    p = _one(path)
    return [video_layer(cv.open_video_array(p), name=p.stem, metadata={"fishtrack_video": str(p)})]
