"""``fishtrack init VIDEO_DIR``: from a folder of videos to a config and a manifest.

:func:`init_experiment` scans a folder (and its sub-folders) for everything fishtrack reads -
video files, multi-page TIFF stacks and folders of images - and for each recording:

1. reads its size, frame rate and duration and estimates its background image (the per-pixel
   median of frames spread over the video: :func:`fishtrack.tracking.estimate_background`);
2. proposes its layout on that image (:func:`propose_layout`):

   * **embedded** (tried first): head-embedded larvae, whose heads never move while their
     tails beat: fish-sized blobs of the background image that are in place in every sampled
     frame, with most of the movement of the video next to them; their rows and columns give
     the grid of ROIs;
   * **wells**: a plate whose wells :func:`fishtrack.arenas.detect_arenas` finds completely
     for one grid, tried from the most wells down: the standard formats 96 (8 x 12), 48
     (6 x 8), 24 (4 x 6), 12 (3 x 4) and 6 (2 x 3), then small custom grids (4 x 4 ... 1 x 2).
     A grid smaller than the plate is refused by the detector (it sees more wells), a larger
     one does not fit, so the first grid found is the plate's;
   * **chamber**: otherwise one arena; the number of fish is the median number of fish-sized
     moving blobs per frame;

3. groups recordings into **set-ups** (same frame size, frame rate and layout) and writes, into
   the output folder:

   * ``config.yaml`` - validated by :mod:`fishtrack.config`, from the closest preset in
     ``configs/`` (``plate24``/``plate96`` for plates, ``embedded``, ``chamber``) with the
     detected layout; with several set-ups, also ``config_<set-up>.yaml`` per set-up (named in
     the manifest's ``config`` column) and ``config.yaml`` is the first set-up's (its ``stats``
     section serves the whole experiment);
   * ``manifest.csv`` - one row per recording x arena (``video, arena, group, exclude``
     [, ``config``, ``protocol``]) with the ``group`` column empty, to fill in;
   * ``arenas_<set-up>.png`` - the arenas drawn on the first frame of the set-up's first
     recording, to check the layout at a glance.

The protocol (closed / open loop phases) is not in the videos: ``phases`` gives it
(``closed_loop=120,open_loop=300``: durations in seconds, in order), a stimulus log next to a
video (``<video stem>_protocol.csv``, ``<stem>.protocol.csv`` or ``<stem>_stimulus.csv``, any
format of :func:`fishtrack.behaviour.load_protocol_log`) goes into the manifest's
``protocol`` column, and otherwise the preset's protocol is kept - with a warning when it does
not fit the recordings. Nothing is overwritten without ``force``.
"""

from __future__ import annotations

import math
import os
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
import tifffile
import yaml
from natsort import natsorted

from fishtrack.arenas import detect_arenas, draw_arenas
from fishtrack.behaviour import load_protocol_log
from fishtrack.config import ArenasConfig, parse_config
from fishtrack.errors import ArenaError, ConfigError, FishtrackError, OutputError
from fishtrack.experiment.lock import LOCK_NAME
from fishtrack.experiment.state import STATE_FILE
from fishtrack.importers.keypoints import cluster_1d
from fishtrack.io.tables import write_bytes, write_text
from fishtrack.io.video import IMAGE_SUFFIXES, open_video
from fishtrack.tracking import estimate_background
from fishtrack.trial import PROVENANCE

__all__ = [
    "Layout",
    "Recording",
    "SetUp",
    "InitResult",
    "VIDEO_SUFFIXES",
    "find_recordings",
    "propose_layout",
    "parse_phases",
    "init_experiment",
]

VIDEO_SUFFIXES = (
    ".avi", ".mp4", ".mov", ".m4v", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp",
    ".mj2", ".ts", ".mts", ".m2ts", ".ogv", ".tif", ".tiff",
)
"""Files read as recordings (``.tif``/``.tiff`` only when they hold more than one page)."""

MIN_IMAGES = 10
"""A folder holding at least this many images (and no video) is one image-sequence recording."""

PLATE_FORMATS = ((8, 12), (6, 8), (4, 6), (3, 4), (2, 3))
"""Standard plates (rows, columns), most wells first."""
CUSTOM_GRIDS = ((4, 4), (3, 3), (2, 4), (1, 4), (2, 2), (1, 3), (1, 2))
"""Small custom arena grids tried when no standard plate is found."""
WELL_PITCH_MM = {96: 9.0, 48: 13.0, 24: 19.3, 12: 26.0, 6: 39.1}
"""Centre-to-centre well spacing of standard (ANSI/SLAS) plates, mm: only used to suggest
``px_per_mm`` in a comment."""
_PROTOCOL_LOGS = ("{stem}_protocol.csv", "{stem}.protocol.csv", "{stem}_stimulus.csv")
_OUTPUT_MARKERS = (PROVENANCE, STATE_FILE, LOCK_NAME)
"""A folder holding one of these is fishtrack output: not scanned."""
_PREVIEW_PREFIX = "arenas_"


# --------------------------------------------------------------------------------------------
# data


@dataclass(frozen=True)
class Layout:
    """A proposed arena layout (the ``arenas`` config keys) and what it rests on."""

    layout: str
    rows: int = 1
    cols: int = 1
    fish_per_arena: int = 1
    shape: str = "auto"
    found: int = 0
    """Wells / larvae / fish actually seen."""
    pitch_px: float | None = None
    """Wells: centre-to-centre spacing (px)."""
    note: str = ""

    @property
    def n_arenas(self) -> int:
        return self.rows * self.cols

    def describe(self) -> str:
        if self.layout == "wells":
            shape = {"circle": "round", "square": "square"}.get(self.shape, "")
            return (f"{self.n_arenas}-well plate ({self.rows} x {self.cols}"
                    f"{', ' + shape + ' wells' if shape else ''}), one fish per well")
        if self.layout == "embedded":
            return f"{self.n_arenas} head-embedded larvae ({self.rows} x {self.cols} ROIs)"
        return (f"one chamber with {self.fish_per_arena} fish" if self.fish_per_arena > 1
                else "one arena with one fish")

    def key(self) -> tuple:
        return (self.layout, self.rows, self.cols, self.fish_per_arena,
                self.shape if self.layout == "wells" else "")


@dataclass
class Recording:
    """One recording found in the folder."""

    path: Path
    width: int = 0
    height: int = 0
    fps: float | None = None
    n_frames: int = 0
    duration_s: float = 0.0
    layout: Layout | None = None
    protocol_log: Path | None = None
    error: str = ""
    rate_stored: bool = True
    """False for image folders and TIFF stacks without a frame rate (``fps`` is then the one
    given to the wizard, or None)."""


@dataclass
class SetUp:
    """Recordings with the same frame size, frame rate and layout, and the config made for
    them."""

    name: str
    layout: Layout
    recordings: list[Recording]
    preset: str
    config: dict
    arenas: list[str] = field(default_factory=list)
    config_path: Path | None = None
    preview_path: Path | None = None


@dataclass
class InitResult:
    """What :func:`init_experiment` found and wrote."""

    out: Path
    config_path: Path
    manifest_path: Path
    setups: list[SetUp]
    skipped: list[Recording]
    n_rows: int
    warnings: list[str]
    commands: list[str]


# --------------------------------------------------------------------------------------------
# finding recordings


def _is_stack(path: Path) -> bool:
    """A TIFF with more than one page (a stack is a recording; one page is an image)."""
    try:
        with tifffile.TiffFile(str(path)) as tif:
            return len(tif.pages) > 1
    except Exception:  # noqa: BLE001 - not a readable TIFF: left to the video reader
        return True


def find_recordings(folder: str | Path) -> list[Path]:
    """Every recording under ``folder``: video files and TIFF stacks, and folders of at least
    :data:`MIN_IMAGES` images holding no video (one recording each). Hidden entries, fishtrack
    output folders and this wizard's own previews are skipped. Natural sort order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FishtrackError(f"{folder}: not a folder (give the folder holding the videos)")
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        here = Path(root)
        dirs[:] = [d for d in dirs if not d.startswith((".", "__"))
                   and not any((here / d / m).exists() for m in _OUTPUT_MARKERS)]
        if any(m in files for m in _OUTPUT_MARKERS):
            dirs[:] = []
            continue
        videos, images = [], []
        for name in files:
            if name.startswith("."):
                continue
            p, suffix = here / name, Path(name).suffix.lower()
            if suffix in (".tif", ".tiff"):
                (videos if _is_stack(p) else images).append(p)
            elif suffix in VIDEO_SUFFIXES:
                videos.append(p)
            elif suffix in IMAGE_SUFFIXES and not name.startswith(_PREVIEW_PREFIX):
                images.append(p)
        found += videos
        if not videos and len(images) >= MIN_IMAGES:
            found.append(here)
    return list(natsorted(found, key=lambda p: p.as_posix()))


# --------------------------------------------------------------------------------------------
# layout


def _try_wells(image: np.ndarray, rows: int, cols: int) -> Layout | None:
    info: dict = {}
    try:
        found = detect_arenas(image, ArenasConfig(layout="wells", rows=rows, cols=cols),
                              diagnostics=info)
    except (ArenaError, ValueError):
        return None
    except Exception:  # noqa: BLE001 - a detector failure on a wrong guess: not this grid
        return None
    n = int(info.get("found", len(found)))
    if n < rows * cols:  # every well seen: a plate this size is really there
        return None
    pitch = info.get("pitch_px")
    return Layout("wells", rows, cols, 1, str(info.get("shape", "auto")), n,
                  float(np.mean(pitch)) if pitch else None)


def _fishness(image: np.ndarray, polarity: str) -> np.ndarray:
    """How much darker (``dark``) or brighter than its surroundings each pixel is."""
    img = np.asarray(image, np.float32)
    k = max(15, int(max(img.shape) / 10)) | 1
    local = cv2.medianBlur(np.clip(img, 0, 255).astype(np.uint8), min(k, 255)).astype(np.float32)
    return local - img if polarity == "dark" else img - local


def _blobs(mask: np.ndarray, min_area: int
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Compact components of ``mask``: centroids (n, 2) x/y, areas (n,), bbox sizes (n, 2)
    w/h, the label image and the label of each."""
    n, labels, stats, cen = cv2.connectedComponentsWithStats(mask.astype(np.uint8),
                                                             connectivity=8)
    st, c = stats[1:], cen[1:]
    area = st[:, cv2.CC_STAT_AREA].astype(float)
    wh = st[:, [cv2.CC_STAT_WIDTH, cv2.CC_STAT_HEIGHT]].astype(float)
    fill = area / np.maximum(wh[:, 0] * wh[:, 1], 1)
    keep = (area >= min_area) & (fill >= 0.15)  # thin outlines (ROI frames, rims) are not fish
    return c[keep], area[keep], wh[keep], labels, np.flatnonzero(keep) + 1


def _grid_of(points: np.ndarray) -> tuple[int, int]:
    """Rows and columns of points laid out on a grid."""
    if len(points) <= 1:
        return 1, 1
    d = np.hypot(*(points[:, None, :] - points[None, :, :]).transpose(2, 0, 1))
    np.fill_diagonal(d, np.inf)
    tol = 0.5 * float(np.median(d.min(axis=1)))
    rows = int(cluster_1d(points[:, 1], tol).max()) + 1
    cols = int(cluster_1d(points[:, 0], tol).max()) + 1
    return rows, cols


def _embedded(bg, noise: float) -> Layout | None:
    """Head-embedded larvae: fish-sized blobs of the background image that are in place in
    every sampled frame (the head never leaves) while the movement of the video (the tails)
    is next to them. A free-swimming larva resting in the median image leaves its place when
    it swims; a larva that never moves makes no movement."""
    img = bg.image
    h, w = img.shape
    thr = max(10.0, 5.0 * noise)
    fishness = _fishness(img, bg.polarity)
    cen, area, wh, labels, ids = _blobs(fishness > thr, min_area=30)
    small = area <= 0.08 * h * w  # a larva, not a whole plate or dish
    cen, area, wh, ids = cen[small], area[small], wh[small], ids[small]
    if not len(area):
        return None
    big = area >= 0.3 * area.max()
    cen, area, wh, ids = cen[big], area[big], wh[big], ids[big]
    calib = np.asarray(bg.calib, np.float32)
    if len(calib) < 3:
        return None
    moving = calib.std(axis=0) > max(8.0, 4.0 * noise)
    if moving.sum() < 10:
        return None
    med = np.asarray(bg.median, np.float32)
    sign = -1.0 if bg.polarity == "dark" else 1.0
    held = []
    for i in ids:
        core = (labels == i) & (fishness > 0.5 * fishness[labels == i].max())
        depth = float(fishness[core].mean())
        gone = sign * (calib[:, core] - med[core]).mean(axis=1)  # > 0: lighter than the fish
        held.append(float(np.mean(gone < 0.5 * depth)))
    if np.mean(np.asarray(held) >= 0.9) < 0.8:  # heads that leave their place: swimming
        return None
    yy, xx = np.nonzero(moving)
    reach = 1.5 * float(np.median(wh.max(axis=1)))  # about a body length around each blob
    near = np.zeros(len(xx), bool)
    for (cx, cy) in cen:
        near |= np.hypot(xx - cx, yy - cy) < reach
    if near.mean() < 0.6:  # the movement is elsewhere: free-swimming fish
        return None
    rows, cols = _grid_of(cen)
    note = "" if rows * cols == len(cen) else \
        f"{len(cen)} larvae seen on a {rows} x {cols} grid: check the preview"
    # the even split of the frame must give each larva its own ROI
    cell = {(int(cy * rows // h), int(cx * cols // w)) for cx, cy in cen}
    if len(cell) < len(cen):
        note = "some ROIs of the even split hold two larvae: set arenas.bbox (see the preview)"
    return Layout("embedded", rows, cols, 1, "auto", len(cen), None, note)


def _fish_count(bg, noise: float) -> int:
    """Fish in one arena: the median over the sampled frames of the fish-sized blobs that
    moved (the frame differs from the background image there) plus the fish resting in the
    background image that are still in place in that frame (a larva resting for most of the
    video is part of the median image). A fish's size is learnt from the moving blobs, so dust
    specks and walls are not counted. At least 1."""
    calib = np.asarray(bg.calib, np.float32)
    if not len(calib):
        return 1
    med = np.asarray(bg.median, np.float32)
    sign = -1.0 if bg.polarity == "dark" else 1.0
    thr = max(12.0, 5.0 * noise)
    moving, peaks = [], []
    for frame in calib:
        diff = sign * (frame - med)
        _, a, _, lab, idx = _blobs(diff > thr, min_area=6)
        moving.append(a)
        peaks += [float(diff[lab == i].max()) for i in idx]
    allarea = np.concatenate(moving)
    ref = float(np.percentile(allarea, 90)) if len(allarea) else 0.0
    fishness = _fishness(bg.image, bg.polarity)
    _, area, _, labels, ids = _blobs(fishness > max(10.0, 5.0 * noise), min_area=6)
    if ref > 0:  # as large and as contrasted as the fish that moved
        contrast = float(np.percentile(peaks, 75))
        peak = np.array([float(fishness[labels == i].max()) for i in ids])
        ids = ids[(area >= 0.3 * ref) & (area <= 3.0 * ref) & (peak >= 0.6 * contrast)]
    else:  # nothing moved: the fish-like blobs of the background
        ids = ids[area >= max(30.0, 0.3 * area.max())] if len(area) else ids
    held = np.zeros((len(calib), len(ids)), bool)
    for k, i in enumerate(ids):
        core = (labels == i) & (fishness > 0.5 * fishness[labels == i].max())
        depth = float(fishness[core].mean())
        held[:, k] = sign * (calib[:, core] - med[core]).mean(axis=1) < 0.5 * depth
    counts = [int((a >= 0.25 * ref).sum()) if ref > 0 else 0 for a in moving]
    counts = np.asarray(counts) + held.sum(axis=1)
    # fish touching merge into one blob (fewer), a fish seldom splits into two fish-sized blobs
    return max(1, int(round(float(np.percentile(counts, 75)))))


def propose_layout(bg) -> Layout:
    """The arena layout of a recording from its background
    (:class:`fishtrack.tracking.background.Background`): a plate, head-embedded larvae or a
    chamber (module docstring)."""
    noise = float(bg.noise) if np.isfinite(bg.noise) else 2.0
    emb = _embedded(bg, noise)  # first: ROI outlines of a rig can look like square wells
    if emb is not None:
        return emb
    for rows, cols in (*PLATE_FORMATS, *CUSTOM_GRIDS):
        lay = _try_wells(bg.image, rows, cols)
        if lay is not None:
            return lay
    n = _fish_count(bg, noise)
    return Layout("chamber", 1, 1, n, "auto", n)


def _inspect(path: Path, fps: float | None) -> tuple[Recording, Any, Any]:
    """A recording's size, rate, duration and layout, with its first frame and background
    image (None when it cannot be read: ``rec.error`` says why); never raises."""
    rec = Recording(path)
    try:
        with open_video(path) as src:
            m = src.meta
            rec.width, rec.height, rec.n_frames = int(m.width), int(m.height), int(m.n_frames)
            rate = float(m.fps) if m.fps and math.isfinite(m.fps) and m.fps > 0 else None
            rec.rate_stored = rate is not None
            rate = rate or fps
            rec.fps = rate
            rec.duration_s = float(m.duration_s) if rec.rate_stored and m.duration_s and \
                math.isfinite(m.duration_s) else (rec.n_frames / rate if rate else 0.0)
            bg = estimate_background(src)
            frame = src.read(0)
        rec.layout = propose_layout(bg)
        return rec, frame, bg.image
    except FishtrackError as err:
        rec.error = str(err)
    except Exception as err:  # noqa: BLE001 - one bad file must not stop the scan
        rec.error = f"{path}: {type(err).__name__}: {err}"
    return rec, None, None


# --------------------------------------------------------------------------------------------
# protocol


def parse_phases(text: str) -> list[dict]:
    """``"closed_loop=120,open_loop=300"`` (kinds and durations in seconds, in time order) as
    protocol phases ``{name, kind, start_s, end_s}``; names are the kind numbered in order
    (``closed_loop_1``, ``open_loop_1``, ``closed_loop_2``, ...)."""
    kinds = ("closed_loop", "open_loop", "other")
    usage = (f"--phases {text!r}: expected KIND=SECONDS,... in time order (kinds: "
             f"{', '.join(kinds)}), e.g. closed_loop=120,open_loop=300")
    phases: list[dict] = []
    t = 0.0
    seen: dict[str, int] = {}
    for part in [p.strip() for p in str(text).split(",") if p.strip()]:
        if "=" not in part and ":" not in part:
            raise ConfigError(usage)
        kind, _, dur = part.replace(":", "=").partition("=")
        kind = kind.strip().lower().replace("-", "_").replace(" ", "_")
        kind = {"closed": "closed_loop", "open": "open_loop"}.get(kind, kind)
        try:
            seconds = float(dur)
        except ValueError:
            raise ConfigError(usage) from None
        if kind not in kinds or not (math.isfinite(seconds) and seconds > 0):
            raise ConfigError(usage)
        seen[kind] = seen.get(kind, 0) + 1
        phases.append({"name": f"{kind}_{seen[kind]}", "kind": kind, "start_s": round(t, 6),
                       "end_s": round(t + seconds, 6)})
        t += seconds
    if not phases:
        raise ConfigError(usage)
    return phases


def _protocol_log(video: Path) -> Path | None:
    """A stimulus log next to the video that reads as a protocol, or None."""
    stem = video.stem if video.is_file() else video.name
    for pattern in _PROTOCOL_LOGS:
        p = video.parent / pattern.format(stem=stem)
        if p.is_file():
            try:
                load_protocol_log(p, end_s=1e9)
            except FishtrackError:
                continue
            return p
    return None


# --------------------------------------------------------------------------------------------
# configs


def _presets_dir() -> Path | None:
    d = Path(__file__).resolve().parents[1] / "configs"
    return d if d.is_dir() else None


def _preset(layout: Layout) -> tuple[str, dict]:
    """Name and content of the closest preset in ``configs/`` (defaults when absent)."""
    if layout.layout == "wells":
        name = "plate96" if layout.n_arenas > 48 else "plate24"
    else:
        name = layout.layout
    d = _presets_dir()
    if d is not None and (d / f"{name}.yaml").is_file():
        data = yaml.safe_load((d / f"{name}.yaml").read_text(encoding="utf-8")) or {}
        return name, data
    return "defaults", {}


def _setup_config(layout: Layout, recs: list[Recording], phases: list[dict] | None,
                  fps: float | None, reference_group: str | None) -> tuple[str, dict]:
    preset, data = _preset(layout)
    arenas = dict(data.get("arenas") or {})
    arenas.update({"layout": layout.layout, "rows": layout.rows, "cols": layout.cols,
                   "fish_per_arena": layout.fish_per_arena})
    if layout.layout == "wells" and layout.shape in ("circle", "square"):
        arenas["shape"] = layout.shape
    elif layout.layout != "wells":
        arenas.pop("shape", None)
    data["arenas"] = arenas
    if phases is not None:
        data["protocol"] = phases
    if fps is not None and any(not r.rate_stored for r in recs):
        data.setdefault("video", {})["fps"] = float(fps)
    if reference_group is not None:
        data.setdefault("stats", {})["reference_group"] = reference_group
    parse_config(data, f"set-up config ({preset} preset)")  # validated before writing
    return preset, data


def _config_text(setup: SetUp, n_setups: int) -> str:
    lay, r0 = setup.layout, setup.recordings[0]
    rate = f"{r0.fps:g} fps" if r0.fps else "no frame rate stored"
    lines = [
        f"# fishtrack config written by `fishtrack init` for set-up '{setup.name}': "
        f"{len(setup.recordings)} recording(s), {r0.width} x {r0.height} px, {rate}.",
        f"# Layout found on the background image: {lay.describe()}"
        + (f" ({lay.note})" if lay.note else "") + f"; check {setup.preview_path.name}."
        if setup.preview_path is not None else "",
        f"# Based on the preset configs/{setup.preset}.yaml. Every key: "
        "`fishtrack config show THIS_FILE --explain`.",
    ]
    if n_setups > 1:
        lines.append("# The experiment has several set-ups: each manifest row names its "
                     "set-up's config; config.yaml's stats section serves the whole experiment.")
    pitch_mm = WELL_PITCH_MM.get(lay.n_arenas) if lay.layout == "wells" else None
    if pitch_mm and lay.pitch_px and lay.n_arenas in WELL_PITCH_MM and \
            (lay.rows, lay.cols) in PLATE_FORMATS:
        lines.append(
            f"# Distances in mm need px_per_mm: about {lay.pitch_px / pitch_mm:.2f} if this is a "
            f"standard {lay.n_arenas}-well plate (well spacing {pitch_mm:g} mm = "
            f"{lay.pitch_px:.1f} px); measure your plate and add 'px_per_mm: VALUE'.")
    else:
        lines.append("# Distances in mm need px_per_mm (pixels per mm): measure it and add "
                     "'px_per_mm: VALUE'.")
    head = "\n".join(ln for ln in lines if ln)
    return head + "\n" + yaml.safe_dump(setup.config, sort_keys=False)


# --------------------------------------------------------------------------------------------
# the wizard


def _rel(path: Path, base: Path) -> str:
    """``path`` relative to ``base`` when it lies below it, else absolute (posix)."""
    ap, ab = Path(os.path.abspath(path)), Path(os.path.abspath(base))
    try:
        return ap.relative_to(ab).as_posix()
    except ValueError:
        return ap.as_posix()


def _cmd_path(path: Path) -> str:
    """A path as the user would type it from the current folder."""
    ap = Path(os.path.abspath(path))
    try:
        text = ap.relative_to(Path.cwd()).as_posix()
    except ValueError:
        text = ap.as_posix()
    return shlex.quote(text)


def _name(lay: Layout) -> str:
    if lay.layout == "wells":
        return f"plate{lay.n_arenas}" if (lay.rows, lay.cols) in PLATE_FORMATS \
            else f"wells{lay.rows}x{lay.cols}"
    if lay.layout == "embedded":
        return f"embedded{lay.rows}x{lay.cols}"
    return f"chamber{lay.fish_per_arena}fish"


def _check_protocol(setup: SetUp) -> str | None:
    phases = setup.config.get("protocol") or []
    if not phases:
        return (f"set-up '{setup.name}': no protocol phases; give --phases (e.g. "
                "closed_loop=120,open_loop=300) or a stimulus log per video")
    end = max(float(p["end_s"]) for p in phases)
    short = min((r for r in setup.recordings if r.protocol_log is None),
                key=lambda r: r.duration_s, default=None)
    if short is not None and short.duration_s and end > short.duration_s + 1.0:
        listing = ", ".join(f"{p['name']} {float(p['start_s']):g}-{float(p['end_s']):g} s"
                            for p in phases)
        return (f"set-up '{setup.name}': the protocol ({listing}) ends after "
                f"{short.path.name} ({short.duration_s:.1f} s); give your protocol with "
                "--phases (phase kinds and durations in s, e.g. --phases "
                "closed_loop=120,open_loop=300) or edit protocol: in "
                f"{(setup.config_path or Path('config.yaml')).name}")
    return None


def init_experiment(
    video_dir: str | Path,
    out: str | Path = ".",
    *,
    force: bool = False,
    phases: str | list[dict] | None = None,
    fps: float | None = None,
    reference_group: str | None = None,
    progress: Callable[[Recording], None] | None = None,
) -> InitResult:
    """Scan ``video_dir`` and write ``config.yaml``, ``manifest.csv`` and one arenas preview
    per set-up into ``out`` (module docstring).

    Parameters
    ----------
    video_dir
        Folder holding the recordings (sub-folders are scanned too).
    out
        Folder to write into (created if needed); video paths in the manifest are relative
        to it when the videos lie below it, else absolute.
    force
        Replace an existing ``config.yaml`` / ``manifest.csv`` / set-up config.
    phases
        The protocol, ``"closed_loop=120,open_loop=300"`` (:func:`parse_phases`) or a list of
        phase mappings; default: a stimulus log next to each video, else the preset's.
    fps
        Frame rate for recordings that store none (image folders, TIFF stacks).
    reference_group
        ``stats.reference_group`` (default: the preset's, ``control``).
    progress
        Called with each :class:`Recording` once inspected.

    Raises
    ------
    FishtrackError
        No recording found, or none could be read.
    OutputError
        A file to write exists (without ``force``) or cannot be written.
    ConfigError
        ``phases`` is malformed.
    """
    video_dir, out = Path(video_dir), Path(out)
    if isinstance(phases, str):
        phases = parse_phases(phases)
    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise ConfigError(f"--fps {fps}: must be a positive frame rate (Hz)")
    paths = find_recordings(video_dir)
    if not paths:
        raise FishtrackError(
            f"{video_dir}: no recordings found (video files {' '.join(VIDEO_SUFFIXES[:6])} ..., "
            f"TIFF stacks, or folders of at least {MIN_IMAGES} images)"
        )
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: --out must be a folder, but a file of that name exists")
    _refuse_existing([out / "config.yaml", out / "manifest.csv"], force)

    scan = _scan(paths, fps, phases, progress)
    good = [r for r in scan.recordings if not r.error]
    skipped = [r for r in scan.recordings if r.error]
    if not good:
        raise FishtrackError(f"{video_dir}: none of the {len(scan.recordings)} recording(s) "
                             f"could be read (first: {skipped[0].error})")
    setups = _set_ups(good, out, phases, fps, reference_group)
    _refuse_existing([s.config_path for s in setups], force)
    rows, warnings = _arena_rows(setups, scan, out)
    if not rows:
        raise FishtrackError(f"{video_dir}: no arena found in any recording; see the warnings")
    warnings += [f"skipped (cannot be read): {r.error}" for r in skipped]
    config_path, manifest_path, n_rows = _write_set_ups(setups, rows, out)
    results = out / "results"
    commands = [
        f"fishtrack run {_cmd_path(manifest_path)} --config {_cmd_path(config_path)} "
        f"--out {_cmd_path(results)}",
        f"fishtrack verify {_cmd_path(results)}",
    ]
    return InitResult(out, config_path, manifest_path, setups, skipped, n_rows, warnings,
                      commands)


def _refuse_existing(paths: list[Path], force: bool) -> None:
    """OutputError for the first of ``paths`` that exists, unless ``force``."""
    for p in paths:
        if p.exists() and not force:
            raise OutputError(f"{p} already exists; use --force to replace it, or choose "
                              "another --out")


@dataclass
class _Scan:
    """Every recording inspected, with the first frame and background of the readable ones."""

    recordings: list[Recording]
    first_frames: dict[Path, np.ndarray]
    backgrounds: dict[Path, np.ndarray]


def _scan(paths: list[Path], fps: float | None, phases: list[dict] | None,
          progress: Callable[[Recording], None] | None) -> _Scan:
    """Inspect each recording (frame size, rate, background, proposed layout)."""
    scan = _Scan([], {}, {})
    for p in paths:
        rec, frame, background = _inspect(p, fps)
        if not rec.error:
            rec.protocol_log = _protocol_log(p) if phases is None else None
            scan.first_frames[p], scan.backgrounds[p] = frame, background
        scan.recordings.append(rec)
        if progress is not None:
            progress(rec)
    return scan


def _set_ups(good: list[Recording], out: Path, phases: list[dict] | None, fps: float | None,
             reference_group: str | None) -> list[SetUp]:
    """Group recordings into set-ups (same frame size, rate and layout; most recordings
    first), each with a unique name, its config and the paths of its config and preview."""
    groups: dict[tuple, list[Recording]] = {}
    for r in good:
        key = (r.width, r.height, round(r.fps, 2) if r.fps else None, r.rate_stored,
               r.layout.key())
        groups.setdefault(key, []).append(r)
    setups: list[SetUp] = []
    names: set[str] = set()
    for g in sorted(groups.values(), key=lambda g: -len(g)):
        lay = g[0].layout
        name = _unique_name(_name(lay), g[0], names)
        names.add(name)
        preset, data = _setup_config(lay, g, phases, fps, reference_group)
        setups.append(SetUp(name, lay, g, preset, data))
    several = len(setups) > 1
    for s in setups:
        s.config_path = out / (f"config_{s.name}.yaml" if several else "config.yaml")
        s.preview_path = out / f"{_PREVIEW_PREFIX}{s.name}.png"
    return setups


def _unique_name(name: str, first: Recording, taken: set[str]) -> str:
    """``name``, else with the frame size, else the rate, else a number appended."""
    if name in taken:
        name = f"{name}_{first.width}x{first.height}"
    if name in taken and first.fps:
        name = f"{name}_{first.fps:g}fps"
    base, k = name, 2
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    return name


def _arena_rows(setups: list[SetUp], scan: _Scan, out: Path) -> tuple[list[dict], list[str]]:
    """Manifest rows (one per recording x arena found with the set-up's own arenas config,
    which is what ``fishtrack run`` checks), the arenas preview of each set-up's first
    recording, and the warnings (arenas not found, layout notes, protocol, missing rate)."""
    several = len(setups) > 1
    warnings: list[str] = []
    rows: list[dict] = []
    for s in setups:
        cfg = parse_config(s.config)
        for i, r in enumerate(s.recordings):
            try:
                arenas = detect_arenas(scan.backgrounds[r.path], cfg.arenas)
            except FishtrackError as err:
                warnings.append(f"{r.path}: arenas not found with the set-up's config ({err})")
                continue
            if i == 0:
                s.arenas = [a.name for a in arenas]
                ok, buf = cv2.imencode(".png", draw_arenas(scan.first_frames[r.path], arenas))
                if ok:
                    out.mkdir(parents=True, exist_ok=True)
                    write_bytes(s.preview_path, buf.tobytes())
            for a in arenas:
                row = {"video": _rel(r.path, out), "arena": a.name, "group": "", "exclude": ""}
                if several:
                    row["config"] = _rel(s.config_path, out)
                if r.protocol_log is not None:
                    row["protocol"] = _rel(r.protocol_log, out)
                rows.append(row)
        if s.layout.note:
            warnings.append(f"set-up '{s.name}': {s.layout.note}")
        problem = _check_protocol(s)
        if problem:
            warnings.append(problem)
        if any(r.fps is None for r in s.recordings):
            warnings.append(
                f"set-up '{s.name}': the recordings store no frame rate (image folders, TIFF "
                "stacks): give --fps, or set video.fps in "
                f"{s.config_path.name}; without it they cannot be tracked")
    return rows, warnings


def _write_set_ups(setups: list[SetUp], rows: list[dict], out: Path) -> tuple[Path, Path, int]:
    """Write each set-up's config, the experiment's ``config.yaml`` (the first set-up's when
    there are several) and ``manifest.csv``; returns their paths and the manifest's rows."""
    out.mkdir(parents=True, exist_ok=True)
    for s in setups:
        write_text(s.config_path, _config_text(s, len(setups)))
    config_path = out / "config.yaml"
    if len(setups) > 1:
        main = setups[0]
        write_text(config_path, _config_text(main, len(setups)).replace(
            f"for set-up '{main.name}'", f"for the experiment (set-up '{main.name}', "
            f"{len(setups)} set-ups in all)", 1))
    cols = ["video", "arena", "group", "exclude"] + \
        [c for c in ("config", "protocol") if any(c in r for r in rows)]
    table = pd.DataFrame(rows).reindex(columns=cols).fillna("")
    manifest_path = out / "manifest.csv"
    write_text(manifest_path, table.to_csv(index=False, lineterminator="\n"))
    return config_path, manifest_path, len(table)
