"""Track every fish of a video: the chunk loop that ties background, segmentation, midline and
identity together.

Frames are decoded in a background thread (``prefetch`` chunks ahead) while the main thread
tracks the previous chunk; OpenCV and PyAV release the GIL, so both cores work. Each arena is
processed on its crop of the chunk: fishness and masks for all frames (:mod:`.segment`), blobs of
the whole chunk from one contour call, the fish blob(s) of every frame (:mod:`.identity`), and
head / midline for all selected blobs at once (:mod:`.midline`), in ``MEASURE_THREADS`` worker
threads while the main thread segments the next chunks (:class:`_Queue`). With the compiled
kernels (a plate: at least ``KERNEL_MIN_FISH`` fish) the fishness of all arenas of a chunk is one
compiled call and the blobs of all arenas' outlines another (the same values as the per-arena
OpenCV path). Results go straight into preallocated NumPy arrays (one column per fish), so
memory grows only with the size of the output table.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

if TYPE_CHECKING:  # pandas is imported when the tracks are assembled (issue 15: the first
    import pandas as pd  # frame is tracked before pandas is loaded)

from fishtrack._threads import compute_threads, release_code_pages
from fishtrack.config import Layout, TrackingConfig
from fishtrack.errors import TrackingError
from fishtrack.tracking import midline as _midline
from fishtrack.tracking.background import (
    FAINT,
    ArenaModel,
    Background,
    estimate_background,
    fishness_floor,
    per_arena_map,
)
from fishtrack.tracking.identity import MultiTracker, select_single, select_single_arenas
from fishtrack.tracking.midline import (
    ANTERIOR,
    RIGID_SWEEPS,
    _bilinear,
    body_angles,
    body_directions,
    initial_directions,
    locate_heads,
    max_filter_patches,
    refine_heads,
    smooth_patches_each,
    trace_midlines,
    wrap,
)
from fishtrack.tracking.segment import (
    ChunkBlobs,
    all_arena_gains,
    blobs_of_arenas,
    fill_inside,
    find_blobs,
    fishness_chunk,
    outlines,
)
from fishtrack.tracking.tail_motion import batch_tail_motion, frame_lag, tail_motion

__all__ = ["TrackResult", "ArraySource", "track_video", "track_columns", "kept_rows"]

Progress = Callable[[int, int], None]

#: worker threads measuring queued batches (heads, midlines) while the main thread segments
DEFAULT_MEASURE_THREADS = 2
#: the count used (read when tracking starts); ``fishtrack._threads.limit_threads`` lowers it
#: in worker processes that share the cores with other trials
MEASURE_THREADS = DEFAULT_MEASURE_THREADS
#: a run tracking at least this many fish (slots) uses the compiled kernels (:mod:`._kernels`,
#: the same values as the NumPy code): numba's import and code generator cost ~1 s of CPU
#: and ~110 MB of memory once per process, which pays off with many fish per frame (a plate)
KERNEL_MIN_FISH = 24
#: the compiled kernels module while they are in use (see :func:`use_kernels`), else None
_KERNELS: Any = None
#: chunk bytes above which chunks are made shorter than ``chunk_size`` (bounded memory)
_MAX_CHUNK_BYTES = 12_000_000
#: switch (on since h15ad, 2026-12-07): a plate (at least ``KERNEL_MIN_FISH`` fish) measured on
#: ``compute_threads() - 1`` threads (at least 1, at most ``MEASURE_THREADS``), the main
#: thread segmenting on the other core. On 2 cores, whole batches on one thread took ~2-7 %
#: less CPU in ``track_video`` than two halves on two threads (the same tracks); whole
#: ``fishtrack track`` runs cost the same CPU within their spread (no cost shown, no gain
#: shown), and on 2 cores the tracking is bound by its total CPU, not by the measuring
#: chain (~3.5 of ~10 ms per 96-well frame); on 4 or more cores nothing changes (two
#: measuring threads). Its wall time on a quiet machine is for the lead to confirm (issue
#: 15, docs/benchmarks.md); off: two measuring threads, as before
PLATE_MEASURE_LEAVES_A_CORE = True
#: store bytes per block of rows handed to a streaming sink (``track_video(sink=...)``)
_SPILL_BYTES = 8_000_000
#: smallest detection in a multi-fish arena, as a fraction of the typical fish area
_MIN_DET_AREA = 0.15
#: the head point of a fish without a head feature (distinct eyes, a dark head) is this far
#: behind its snout (lengths), where a larva's eyes are
HEAD_BEHIND_SNOUT = 0.06
#: the fish of a recording have a head feature when the widest part of their head region
#: lies at most this far (lengths) behind the snout (median over the first batch): eyes and
#: dark heads ~0.07-0.12, juveniles without resolved eyes ~0.23 (mid-body)
FEATURE_REACH = 0.17
#: in a single-fish arena, blobs within this many lengths of the fish's blob are pieces of
#: the same fish (a head and a tail split by a paler body, even when curled)
GROUP = 1.2
#: the far end of a midline is the head when the fishness around it exceeds this multiple
#: of that around the head point
REVERSED = 1.3
#: where the fishness around the far end is at least this fraction of that around the head
#: point (a head put on a dark mid-body patch, the midline traced towards the eyes), the
#: other way round is traced too, and kept if its far end is the thinner of the two
MAYBE_REVERSED = 0.5
#: a rough head with body on both sides (the opposite ray at least this fraction of the
#: strongest) is mid-body
MID_BODY = 0.5
#: a head-embedded larva's head is the still end of its body: where the fishness around the
#: fixed head varies over the first chunk more than this multiple of that around the
#: midline's far end, and the far end is wide and dark (a head, not a thin tail tip), the head
#: was put on the beating tail (a dust speck filled in with a still larva's tail looks like an
#: eye; tuning seed 23 drawn as held-out 15991's kind) and is found again from the far end
MOVING_HEAD = 1.5


def use_kernels(on: bool) -> None:
    """Use the compiled kernels (``on``; NumPy if numba cannot be imported) or the NumPy code
    (the same values either way) for sampling patches, cutting them and the blobs' outline
    statistics, process-wide."""
    global _KERNELS
    mod = None
    if on:
        try:
            from fishtrack.tracking import _kernels as mod
        except ImportError:  # pragma: no cover - numba is a dependency
            mod = None
        else:  # LLVM's code is not run by the loaded kernels (issue 15: ~50 MB resident)
            release_code_pages("libllvmlite")
    _KERNELS = mod
    _midline._KERNEL = None if mod is None else mod.bilinear2d
    _midline._SWEEP = None if mod is None else mod.sweep_step
    _midline._HEADS = mod


def _measure_threads(n_fish: int) -> int:
    """Threads measuring heads and midlines in a run of ``n_fish`` fish: ``MEASURE_THREADS``;
    with :data:`PLATE_MEASURE_LEAVES_A_CORE` a plate (at least ``KERNEL_MIN_FISH`` fish)
    leaves one of the process's compute threads to the main thread's segmentation."""
    if PLATE_MEASURE_LEAVES_A_CORE and n_fish >= KERNEL_MIN_FISH:
        return max(1, min(MEASURE_THREADS, compute_threads() - 1))
    return MEASURE_THREADS


def _load_kernels() -> threading.Thread | None:
    """Import (and compile or load from numba's cache) the kernels in a background thread;
    until they are ready the NumPy code runs (the same values)."""
    if _KERNELS is not None:
        return None
    th = threading.Thread(target=use_kernels, args=(True,), name="fishtrack-kernels", daemon=True)
    th.start()
    return th


def track_columns(n_tail_points: int) -> list[str]:
    """Column names of the tracks table, in order."""
    base = [
        "frame",
        "time_s",
        "arena",
        "fish",
        "x",
        "y",
        "heading",
        "tail_angle",
        "tail_curvature",
        "detected",
        "area_px",
        "id_uncertain",
        "motion_energy",
        "tail_motion",
    ]
    return (
        base
        + [f"tail_x_{i}" for i in range(n_tail_points)]
        + [f"tail_y_{i}" for i in range(n_tail_points)]
        + [f"seg_angle_{i}" for i in range(1, n_tail_points)]
    )


@dataclass
class TrackResult:
    """Output of :func:`track_video`.

    Attributes
    ----------
    tracks
        One row per frame per fish found (see ``docs/tracking.md`` for the columns).
    summary
        ``fish_per_arena`` (fish found per arena), ``detection_rate`` (per fish),
        ``empty_arenas``, ``embedded_empty_arenas`` (head-embedded layout: the empty arenas,
        also warned about, whether or not others hold a larva; [] otherwise), ``warnings``,
        ``polarity``, ``fish_length_px``, ``thresholds``, ``still_fish``, ``clutter``,
        ``n_frames``.
    damage
        The video source's damage records.
    background
        The refined background model used.
    """

    tracks: pd.DataFrame
    summary: dict = field(default_factory=dict)
    damage: list = field(default_factory=list)
    background: Background | None = None


class ArraySource:
    """A minimal in-memory video source over a uint8 array (N, H, W), for tests and tools.

    Offers the parts of :class:`fishtrack.io.video.VideoSource` the tracker uses: ``len``,
    ``chunks``, ``sample``, ``read``, ``timestamps``, ``meta`` and ``damage``.
    """

    def __init__(self, frames: np.ndarray, fps: float = 100.0):
        frames = np.asarray(frames)
        if frames.ndim != 3 or frames.dtype != np.uint8:
            raise TrackingError(f"frames must be uint8 (N, H, W), got {frames.dtype} {frames.shape}")
        self.frames = frames
        self.timestamps = np.arange(len(frames)) / float(fps)
        n, h, w = frames.shape
        self.meta = SimpleNamespace(n_frames=n, fps=float(fps), width=w, height=h, codec="array")
        self.damage: list = []

    def __len__(self) -> int:
        return len(self.frames)

    def chunks(
        self, n: int = 64, *, start: int = 0, stop: int | None = None, prefetch: int = 0
    ) -> Iterator[SimpleNamespace]:
        stop = len(self) if stop is None else min(stop, len(self))
        for s in range(start, stop, n):
            e = min(s + n, stop)
            idx = np.arange(s, e, dtype=np.int64)
            yield SimpleNamespace(indices=idx, times=self.timestamps[s:e], frames=self.frames[s:e])

    def sample(self, indices: Sequence[int]) -> np.ndarray:
        return self.frames[np.asarray(indices, dtype=np.int64)]

    def read(self, i: int) -> np.ndarray:
        return self.frames[i]


# --------------------------------------------------------------------------------------------
# storage


class _Store:
    """Preallocated per-fish columns, (frames, fish) each, row = frame number - ``base``; grows
    by doubling if the source has more frames than announced.

    In memory (``track_video`` without a sink) ``base`` stays 0 and the store holds the whole
    run. When streaming, finished rows are handed to the sink and dropped (:meth:`drop`), so
    the store holds only the frames still being tracked (a window of a few chunks)."""

    _FLOAT = ("x", "y", "heading", "tail_angle", "tail_curvature", "area_px", "motion_energy",
              "tail_motion")

    def __init__(self, cap: int, n_fish: int, n_points: int, timestamps: np.ndarray | None = None):
        self.n_fish = n_fish
        self.n_points = n_points
        self.rows = 0  # frame numbers 0 .. rows-1 exist (held, or already dropped)
        self.base = 0  # frame number of row 0: the frames before it were handed on
        self.timestamps = timestamps  # the source's times (frames not decoded keep them)
        self.tail_lag: int | None = None  # frames of the tail_motion comparison (first batch)
        cap = max(cap, 1)
        self.time = np.full(cap, np.nan, np.float64)
        self.f = {k: np.full((cap, n_fish), np.nan, np.float32) for k in self._FLOAT}
        self.detected = np.zeros((cap, n_fish), bool)
        self.uncertain = np.zeros((cap, n_fish), bool)
        self.tail = np.full((cap, n_fish, n_points, 2), np.nan, np.float32)
        self._fill_time(0)

    def _fill_time(self, start: int) -> None:
        """Rows from ``start`` get the source's time of their frame (NaN past its end)."""
        ts = self.timestamps
        self.time[start:] = np.nan
        if ts is None:
            return
        lo = self.base + start
        hi = min(len(ts), self.base + len(self.time))
        if hi > lo:
            self.time[start : start + hi - lo] = ts[lo:hi]

    def reserve(self, last_frame: int) -> None:
        """Make room for frame numbers up to ``last_frame``."""
        need = last_frame + 1 - self.base
        cap = len(self.time)
        if need > cap:
            new = max(need, 2 * cap)

            def grow(a: np.ndarray, fill: Any) -> np.ndarray:
                out = np.full((new, *a.shape[1:]), fill, a.dtype)
                out[:cap] = a
                return out

            self.time = grow(self.time, np.nan)
            self.f = {k: grow(v, np.nan) for k, v in self.f.items()}
            self.detected = grow(self.detected, False)
            self.uncertain = grow(self.uncertain, False)
            self.tail = grow(self.tail, np.nan)
            self._fill_time(cap)
        self.rows = max(self.rows, last_frame + 1)

    def drop(self, upto: int) -> None:
        """Forget frames before ``upto`` (handed on): the later rows move to the front."""
        k = upto - self.base
        if k <= 0:
            return
        cap = len(self.time)
        keep = max(0, min(cap, self.rows - self.base) - k)
        arrays = [self.time, self.detected, self.uncertain, self.tail, *self.f.values()]
        for a in arrays:
            if keep:
                a[:keep] = a[k : k + keep]
        self.base = upto
        for a in (self.detected, self.uncertain):
            a[keep:] = False
        for a in (self.tail, *self.f.values()):
            a[keep:] = np.nan
        self._fill_time(keep)


class _KeepCounts:
    """What the end-of-run decision on which slots are fish needs, counted per slot while
    rows are handed on: frames detected, and the blob areas relative to ``area_min`` (enough
    to know on which side of it their median lies, see :meth:`median_at_least`)."""

    def __init__(self, n_slots: int, area_min: float):
        self.area_min = float(area_min)
        self.detected = np.zeros(n_slots, np.int64)
        self.n_area = np.zeros(n_slots, np.int64)  # finite areas
        self.n_big = np.zeros(n_slots, np.int64)  # areas >= area_min
        self.max_small = np.full(n_slots, -np.inf, np.float32)
        self.min_big = np.full(n_slots, np.inf, np.float32)

    def add(self, detected: np.ndarray, area: np.ndarray) -> None:
        """Count a block of rows: ``detected`` and ``area`` (frames, slots)."""
        self.detected += detected.sum(axis=0)
        ok = np.isfinite(area)
        big = ok & (area.astype(np.float64) >= self.area_min)
        small = ok & ~big
        self.n_area += ok.sum(axis=0)
        self.n_big += big.sum(axis=0)
        if big.any():
            self.min_big = np.minimum(self.min_big, np.where(big, area, np.inf).min(axis=0))
        if small.any():
            self.max_small = np.maximum(self.max_small, np.where(small, area, -np.inf).max(axis=0))

    def median_at_least(self) -> np.ndarray:
        """Per slot: the median of its finite areas is >= ``area_min`` (False without any):
        decided from the counts; with an even count split exactly in half, the median is the
        mean of the largest area below and the smallest at or above."""
        out = np.zeros(len(self.n_area), bool)
        for i, (n, b) in enumerate(zip(self.n_area, self.n_big, strict=True)):
            if n == 0:
                continue
            if n % 2:
                out[i] = b >= (n + 1) // 2
            elif b != n // 2:
                out[i] = b > n // 2
            else:
                mid = np.median(np.array([self.max_small[i], self.min_big[i]], np.float32))
                out[i] = float(mid) >= self.area_min
        return out


# --------------------------------------------------------------------------------------------
# per-arena state


@dataclass
class _ArenaState:
    model: ArenaModel
    slots: list[int]
    kind: Layout
    n_fish: int
    buf: np.ndarray | None = None
    prev: np.ndarray | None = None
    last: tuple | None = None
    tracker: MultiTracker | None = None
    head: np.ndarray | None = None  # embedded: fixed head (crop px)
    heading: float = float("nan")  # embedded: fixed heading
    last_heading: float = float("nan")
    tail_carry: dict | None = None  # several fish: each fish's last patches (tail_motion)


@dataclass
class _Params:
    length: float
    area: float
    min_area: float
    max_area: float
    n_points: int
    sigma_head: float
    sigma_trace: float
    patch: int
    max_jump: float
    polarity: str
    head_feature: bool | None = None  # the fish have eyes / a dark head (decided on the data)
    #: the traces' sweeps keep straight this far (lengths; ``midline.RIGID_SWEEPS`` embedded)
    rigid_sweeps: float | None = None


def _odd(x: float) -> int:
    k = int(math.ceil(x))
    return k if k % 2 else k + 1


# --------------------------------------------------------------------------------------------
# measuring fish in patches


@dataclass
class _Patches:
    """Fish patches cut from one or several arenas (one row per fish-frame).

    ``fp`` fishness (uint8), ``mem`` labels (1 = this fish, 2 = another blob, 0 = neither),
    ``off`` the full-frame position of each patch's top-left pixel, ``cen`` the
    (area-weighted) centroid of the fish's blob(s) in patch pixels (NaN if unknown), ``area``
    the fish's pixel count and ``motion`` its motion energy (both measured while cutting).
    """

    fp: np.ndarray
    mem: np.ndarray
    off: np.ndarray
    cen: np.ndarray
    area: np.ndarray
    motion: np.ndarray

    def __len__(self) -> int:
        return len(self.off)

    def rows(self, sl: slice) -> _Patches:
        return _Patches(*(getattr(self, f)[sl] for f in _PATCH_FIELDS))

    @staticmethod
    def concat(parts: list[_Patches]) -> _Patches:
        """The rows of ``parts`` in order (one part: that part itself, no copy)."""
        if len(parts) == 1:
            return parts[0]
        return _Patches(*(np.concatenate([getattr(p, f) for p in parts]) for f in _PATCH_FIELDS))


_PATCH_FIELDS = ("fp", "mem", "off", "cen", "area", "motion")


@dataclass
class _Meas:
    """Measurements of patches, full-frame coordinates."""

    head: np.ndarray  # (M, 2)
    points: np.ndarray  # (M, n, 2)
    heading: np.ndarray
    tail_angle: np.ndarray
    curvature: np.ndarray
    ok: np.ndarray
    area: np.ndarray
    motion: np.ndarray

    @staticmethod
    def concat(parts: list[_Meas]) -> _Meas:
        return _Meas(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in dataclasses.fields(_Meas)))


@dataclass
class _ArenaChunk:
    """One arena's part of a chunk: fishness ``d`` and frames ``crop`` (N, h, w), the frame
    before the chunk ``prev`` (h, w; None at the start), the chunk's blobs, the frame numbers
    ``fidx`` (N,) and the full-frame position ``origin`` (x, y) of the crop's top-left pixel."""

    d: np.ndarray
    crop: np.ndarray
    prev: np.ndarray | None
    blobs: ChunkBlobs
    fidx: np.ndarray
    origin: tuple[int, int]

    @property
    def n(self) -> int:
        return len(self.fidx)


def _cut(
    ac: _ArenaChunk,
    sel: np.ndarray,
    p: int,
    *,
    centre: np.ndarray | None = None,
    group: float = 0.0,
    own_threshold: float | None = None,
    ignore: np.ndarray | None = None,
    use_prev: bool = True,
) -> _Patches:
    """Cut the patches of blobs ``sel`` (or of frames ``sel`` at fixed ``centre``) of one
    arena's chunk ``ac`` and measure each fish's area and motion energy on the way.

    Parameters
    ----------
    ac
        The arena's fishness, frames, frame before the chunk, blobs and crop origin.
    sel
        Selected blobs, or (with ``own_threshold``) frame indices.
    p
        Patch side.
    centre
        (M, 2) patch centres (crop px); default the blob centroids.
    group
        Blobs of the same frame within this distance of the selected one are the same fish.
    own_threshold
        No blob outlines (head-embedded larvae): the fish is where the fishness exceeds this.
    ignore
        Bool per blob: blobs never labelled as another fish (fragments of a fish's faint tail,
        which the midline may cross).
    use_prev
        False: no motion energy against the frame before the chunk (the first frames).
    """
    d, crop, blobs, origin = ac.d, ac.crop, ac.blobs, ac.origin
    prev = ac.prev if use_prev else None
    m = len(sel)
    h, w = d.shape[1], d.shape[2]
    label = own_threshold is None
    if label:
        t = blobs.frame[sel].astype(np.int64)
        if centre is None:
            centre = _group_centres(blobs, np.asarray(sel, np.int64), group)
    else:
        t = np.asarray(sel, np.int64)
    x0, y0 = _corners(centre, p)
    if label:
        mem, cen = _labels(blobs, np.asarray(sel, np.int64), t, t, x0, y0, p, h, w, group=group,
                           ignore=ignore)
    else:
        mem, cen = np.ones((m, p, p), np.uint8), np.full((m, 2), np.nan)
    fp = np.zeros((m, p, p), np.uint8)
    motion = np.full(m, np.nan, np.float32)
    area = np.zeros(m, np.float32)
    # the patches of fishness, the fish's pixels (inside the crop) and its motion energy:
    # mean |frame_t - frame_t-1| inside the fish dilated by 2 px (within the crop)
    measure = _KERNELS.cut_measure if _KERNELS is not None else _cut_measure_np
    measure(d, crop, crop[0] if prev is None else prev, prev is not None, t, x0, y0, mem, label,
            0.0 if label else float(own_threshold), fp, area, motion)
    off = np.empty((m, 2))
    off[:, 0] = x0 + origin[0]
    off[:, 1] = y0 + origin[1]
    return _Patches(fp, mem, off, cen, area, motion)


def _corners(centre: np.ndarray, p: int) -> tuple[np.ndarray, np.ndarray]:
    """The top-left corners (x0, y0) (M,) int64 of patches of side ``p`` around ``centre``."""
    c = np.round(np.asarray(centre, np.float64)).astype(np.int64)
    return c[:, 0] - p // 2, c[:, 1] - p // 2


def _labels(
    blobs: ChunkBlobs,
    sel: np.ndarray,
    key: np.ndarray,
    t: np.ndarray,
    x0: np.ndarray,
    y0: np.ndarray,
    p: int,
    h: np.ndarray | int,
    w: np.ndarray | int,
    *,
    group: float,
    ignore: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """The label patches (M, P, P) uint8 of blobs ``sel`` (1 = this fish's blob(s), 2 =
    another blob overlapping the patch, 0 = neither) and each fish's (area-weighted) centroid
    (M, 2) in patch px (NaN where the patch misses the crop), for :func:`_cut`.

    ``blobs`` may hold several arenas' blobs one after the other (a plate's chunk): then
    ``blobs.frame`` numbers (arena, frame) in order and ``key`` (M,) is that number of each
    fish; ``t`` (M,) its frame in the chunk (its outline's rows are ``t * h`` down the arena's
    stacked image), ``x0``, ``y0`` (M,) its patch's corner and ``h``, ``w`` its arena's crop
    size (scalars or (M,)). ``group`` and ``ignore`` as in :func:`_cut`.
    """
    m = len(sel)
    mem = np.zeros((m, p, p), np.uint8)
    cen = np.full((m, 2), np.nan)
    h = np.broadcast_to(np.asarray(h, np.int64), (m,))
    w = np.broadcast_to(np.asarray(w, np.int64), (m,))
    starts = np.searchsorted(blobs.frame, key, side="left")
    ends = np.searchsorted(blobs.frame, key, side="right")
    # a fish alone in its frame (the usual case) whose outline lies inside its patch: all of
    # them filled by one call into the patches stacked into one tall image (equal to a fill
    # per patch: tests/test_tracking_cut_fill.py), their centroids as arrays
    bx, by = blobs.x0[sel].astype(np.int64), blobs.y0[sel].astype(np.int64)
    alone = np.flatnonzero((ends - starts == 1) & (bx >= x0) & (by >= y0)
                           & (bx + blobs.w[sel] <= x0 + p) & (by + blobs.h[sel] <= y0 + p))
    if alone.size:
        fill_inside(mem.reshape(m * p, p), blobs.contours, sel[alone], -x0[alone],
                    alone * p - y0[alone] - t[alone] * h[alone])
        a = blobs.area[sel[alone]].astype(np.float64)  # (area x centre / area, as below)
        cen[alone, 0] = a * blobs.cx[sel[alone]] / a - x0[alone]
        cen[alone, 1] = a * blobs.cy[sel[alone]] / a - y0[alone]
    if alone.size == m:
        return mem, cen
    rest = np.ones(m, bool)
    rest[alone] = False
    # the others one by one, with Python scalars (NumPy scalar arithmetic is slow)
    tl, x0l, y0l, hl, wl = t.tolist(), x0.tolist(), y0.tolist(), h.tolist(), w.tolist()
    starts, ends = starts.tolist(), ends.tolist()
    sel_l = sel.tolist()
    b_x0, b_y0, b_w, b_h = blobs.x0.tolist(), blobs.y0.tolist(), blobs.w.tolist(), blobs.h.tolist()
    b_area, b_cx, b_cy = blobs.area.tolist(), blobs.cx.tolist(), blobs.cy.tolist()
    ign = ignore.tolist() if ignore is not None else None
    contours, draw = blobs.contours, cv2.drawContours
    for k in np.flatnonzero(rest).tolist():
        xk, yk = x0l[k], y0l[k]
        if not (yk < hl[k] and yk + p > 0 and xk < wl[k] and xk + p > 0):
            continue  # the patch misses the crop
        j = sel_l[k]
        off = (-xk, -(yk + tl[k] * hl[k]))
        sa = b_area[j]
        sx, sy = sa * b_cx[j], sa * b_cy[j]
        mk = mem[k]
        for o in range(starts[k], ends[k]) if ends[k] - starts[k] > 1 else ():
            if o == j or (ign is not None and ign[o]) or (
                b_x0[o] > xk + p
                or b_x0[o] + b_w[o] < xk
                or b_y0[o] > yk + p
                or b_y0[o] + b_h[o] < yk
            ):
                continue
            # (float32 differences, as the blob table holds them)
            same = group > 0 and math.hypot(blobs.cx[o] - blobs.cx[j], blobs.cy[o] - blobs.cy[j]) <= group
            if same:
                a = b_area[o]
                sa, sx, sy = sa + a, sx + a * b_cx[o], sy + a * b_cy[o]
            draw(mk, contours[o : o + 1], -1, 1 if same else 2, -1, offset=off)
        draw(mk, contours[j : j + 1], -1, 1, -1, offset=off)
        cen[k] = sx / sa - xk, sy / sa - yk
    return mem, cen


def _cut_measure_np(
    d: np.ndarray,
    crop: np.ndarray,
    prev: np.ndarray,
    has_prev: bool,
    t: np.ndarray,
    x0: np.ndarray,
    y0: np.ndarray,
    mem: np.ndarray,
    label: bool,
    own_threshold: float,
    fp: np.ndarray,
    area: np.ndarray,
    motion: np.ndarray,
) -> None:
    """NumPy version of :func:`fishtrack.tracking._kernels.cut_measure` (the same arguments
    and values): fills the patches ``fp``, each fish's ``area`` and ``motion`` energy."""
    m, p = fp.shape[0], fp.shape[1]
    h, w = d.shape[1], d.shape[2]
    ya, yb = np.clip(y0, 0, h), np.clip(y0 + p, 0, h)
    xa, xb = np.clip(x0, 0, w), np.clip(x0 + p, 0, w)
    # Python scalars in the per-fish loops (NumPy scalar arithmetic is slow)
    tl, x0l, y0l = t.tolist(), x0.tolist(), y0.tolist()
    yal, ybl, xal, xbl = ya.tolist(), yb.tolist(), xa.tolist(), xb.tolist()
    for k in range(m):
        tk = tl[k]
        y_a, y_b, x_a, x_b = yal[k], ybl[k], xal[k], xbl[k]
        if y_b <= y_a or x_b <= x_a:
            continue
        oy, ox = y_a - y0l[k], x_a - x0l[k]
        fp[k, oy : oy + y_b - y_a, ox : ox + x_b - x_a] = d[tk, y_a:y_b, x_a:x_b]
    # the fish's pixels (inside the crop: the part of the patch the loop filled)
    ar = np.arange(p)
    win = (((ar[None, :] >= (ya - y0)[:, None]) & (ar[None, :] < (yb - y0)[:, None]))[:, :, None]
           & ((ar[None, :] >= (xa - x0)[:, None]) & (ar[None, :] < (xb - x0)[:, None]))[:, None, :])
    own = (mem == 1) if label else (fp > own_threshold)
    own &= win
    area[:] = own.sum(axis=(1, 2))
    # motion energy: mean |frame_t - frame_t-1| inside the fish dilated by 2 px (the dilation
    # stays inside the crop), for blocks of patches at a time (bounded memory)
    before_ok = ((t > 0) | has_prev) & (yb > ya) & (xb > xa)
    blk = max(1, 2_000_000 // (p * p))
    for b0 in range(0, m, blk):
        ks = [k for k in range(b0, min(m, b0 + blk)) if before_ok[k]]
        if not ks:
            continue
        now = np.zeros((len(ks), p, p), np.uint8)
        bef = np.zeros((len(ks), p, p), np.uint8)
        for i, k in enumerate(ks):
            tk = tl[k]
            y_a, y_b, x_a, x_b = yal[k], ybl[k], xal[k], xbl[k]
            oy, ox = y_a - y0l[k], x_a - x0l[k]
            hh, ww = y_b - y_a, x_b - x_a
            now[i, oy : oy + hh, ox : ox + ww] = crop[tk, y_a:y_b, x_a:x_b]
            bef[i, oy : oy + hh, ox : ox + ww] = crop[tk - 1, y_a:y_b, x_a:x_b] if tk > 0 else prev[y_a:y_b, x_a:x_b]
        dil = max_filter_patches(own[ks].view(np.uint8), 2).view(bool) & win[ks]
        nz = dil.sum(axis=(1, 2))
        diff = cv2.absdiff(now.reshape(-1, p), bef.reshape(-1, p)).reshape(now.shape)
        tot = (diff * dil).sum(axis=(1, 2), dtype=np.int64)
        # as cv2.mean: the sum times the reciprocal of the count
        has = nz > 0
        motion[np.array(ks)[has]] = tot[has] * (1.0 / nz[has])


def _group_centres(blobs: ChunkBlobs, sel: np.ndarray, group: float) -> np.ndarray:
    """(M, 2) centres of the fish of blobs ``sel``: the area-weighted centroid of the blob and
    the blobs of the same frame within ``group`` px of it (pieces of one fish, e.g. a head and
    a tail split by a paler body), so that the patch holds the whole fish whichever piece was
    chosen."""
    out = np.empty((len(sel), 2))
    out[:, 0] = blobs.cx[sel]
    out[:, 1] = blobs.cy[sel]
    if group <= 0 or len(sel) == 0:
        return out
    fr = blobs.frame
    if len(fr) < 2 or not (fr[1:] == fr[:-1]).any():
        return out  # (the blobs are in frame order) one blob per frame: nothing to group
    counts = np.bincount(fr, minlength=int(fr.max()) + 1 if len(fr) else 1)
    starts = np.concatenate([[0], np.cumsum(counts)])
    for k in np.flatnonzero(counts[fr[sel]] > 1):
        j = int(sel[k])
        f = int(fr[j])
        o = np.arange(starts[f], starts[f + 1])
        near = np.hypot(blobs.cx[o] - blobs.cx[j], blobs.cy[o] - blobs.cy[j]) <= group
        a = blobs.area[o][near].astype(np.float64)
        out[k] = (float((a * blobs.cx[o][near]).sum() / a.sum()), float((a * blobs.cy[o][near]).sum() / a.sum()))
    return out


def _find_heads(
    own: np.ndarray,
    fst: np.ndarray,
    fsh: np.ndarray,
    prm: _Params,
    stop: np.ndarray,
    rough: np.ndarray | None = None,
    both_ways: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Head points (patch px) and the direction from each towards its body (rad).

    1. A rough head on the strongest eye-like spot of the fish's own blob
       (:func:`locate_heads`), the trunk's direction from it (:func:`body_directions`).
    2. Where the rough head has body on both sides (the strongest spot is mid-body: a fish
       without distinct eyes, a curled fish), both ways are traced and the end with more
       fishness around it (the wide, dark head rather than the thin tail) is the new rough
       head.
    3. The head from the shape of the head region in body-aligned coordinates
       (:func:`refine_heads`: the eye midpoint, or the centre of the widest dark part near
       the snout, or ``HEAD_BEHIND_SNOUT`` lengths behind the snout when the head has no
       such feature).

    ``rough``: start from these rough heads instead of step 1's. ``both_ways``: step 2 for
    every fish, whatever the second ray's strength (:func:`_retry_both_ways`).
    """
    L = prm.length
    h0 = locate_heads(own, L, prm.sigma_head, elsewhere=False)[0] if rough is None else rough
    th, sv, th_o, so = body_directions(fst, h0, L, floor=stop, opposite=True)
    mid = (so > MID_BODY * sv) | both_ways
    i = np.flatnonzero(mid)
    if i.size:
        traces = []
        for t0 in (th[i], th_o[i]):
            ml = trace_midlines(fst[i], h0[i], t0, L, prm.n_points, stop[i], max_length=0.9 * L,
                                rel_stop=0.0, min_fraction=0.0)
            ok = ml.ok & np.isfinite(ml.points[:, -1, 0])
            traces.append((np.where(ok[:, None], ml.points[:, -1], h0[i]), ml.points, ok))
        mass = [_end_mass(fsh, t[0], L, stop[i], rows=i) for t in traces]
        head_side = mass[1] > mass[0]
        # the point HEAD_BEHIND_SNOUT lengths back from the snout along that trace
        pts = np.where(head_side[:, None, None], traces[1][1], traces[0][1])
        ok = np.where(head_side, traces[1][2], traces[0][2])
        behind = _along_from_end(pts, HEAD_BEHIND_SNOUT * L)
        h0 = h0.copy()
        h0[i] = np.where(ok[:, None], behind, h0[i])
        th = th.copy()
        th[i], _ = body_directions(fst[i], h0[i], L, floor=stop[i])
    if prm.head_feature is None and len(h0) >= 8:
        # whether this recording's fish have a head feature (eyes, a dark head) near the snout
        # is decided once, on the first batch: all its fish look alike, and a per-frame choice
        # would make the head point of a fish without one jump along its body
        _, reach = refine_heads(fsh, h0, th, L, floor=stop, return_reach=True)
        prm.head_feature = bool(np.median(reach) <= FEATURE_REACH)
    hp = refine_heads(fsh, h0, th, L, floor=stop, no_feature=HEAD_BEHIND_SNOUT,
                      head_feature=prm.head_feature, feature_reach=FEATURE_REACH)
    # the trunk's direction again from the final head where it moved (from one eye to the
    # eye midpoint it hardly changes)
    theta0 = th.copy()
    moved = np.flatnonzero(np.hypot(*(hp - h0).T) > 0.05 * L)
    if moved.size:
        theta0[moved], _ = body_directions(fst[moved], hp[moved], L, floor=stop[moved])
    return hp, theta0


def _along_from_end(pts: np.ndarray, d: float) -> np.ndarray:
    """Points (M, 2) ``d`` px back from the last point along polylines (M, n, 2) (the first
    point if shorter)."""
    seg = np.hypot(*np.diff(pts, axis=1).transpose(2, 0, 1))  # (M, n-1)
    seg = np.nan_to_num(seg)
    back = np.cumsum(seg[:, ::-1], axis=1)  # length from the end to each earlier point
    k = (back < d).sum(axis=1)  # segments fully within d of the end
    n = pts.shape[1]
    out = pts[:, 0].copy()
    for r in range(len(pts)):
        j = n - 1 - int(k[r])  # point index at or just beyond d from the end
        if j <= 0:
            continue
        before = back[r, k[r] - 1] if k[r] > 0 else 0.0
        f = (d - before) / max(seg[r, j - 1], 1e-9)
        out[r] = pts[r, j] + (pts[r, j - 1] - pts[r, j]) * np.clip(f, 0.0, 1.0)
    return out


def _end_mass(fs: np.ndarray, pts: np.ndarray, length: float, floor: np.ndarray,
              rows: np.ndarray | None = None) -> np.ndarray:
    """Fishness (less ``floor``) summed over a disc of 0.12 lengths around each point (of
    patch ``fs[rows[i]]`` for point ``i`` when ``rows`` is given, without copying the
    patches)."""
    r = np.linspace(0.0, 0.12 * length, 4)[1:]
    a = np.linspace(-np.pi, np.pi, 12, endpoint=False)
    dx = (r[:, None] * np.cos(a)[None, :]).ravel()
    dy = (r[:, None] * np.sin(a)[None, :]).ravel()
    xs = pts[:, 0, None] + dx[None, :]
    ys = pts[:, 1, None] + dy[None, :]
    v = _bilinear(fs, np.concatenate([pts[:, :1], xs], axis=1), np.concatenate([pts[:, 1:], ys], axis=1),
                  rows)
    return np.clip(v - floor[:, None], 0.0, None).sum(axis=1)


def _measure(
    pt: _Patches,
    prm: _Params,
    stop: np.ndarray,
    *,
    heads: np.ndarray | None = None,
    theta0: np.ndarray | None = None,
    rough: np.ndarray | None = None,
) -> _Meas:
    """Heads, midlines and angles of a batch of patches (area and motion come from the cut).

    ``heads`` (full-frame px) and ``theta0`` (rad) are given for split merged blobs and
    head-embedded larvae. ``rough`` (full-frame px): the head is looked for from these rough
    heads, the head end being chosen by the caller (no reversal, no second start).
    """
    m = len(pt)
    if m == 0:
        z = np.zeros(0)
        return _Meas(np.zeros((0, 2)), np.zeros((0, prm.n_points, 2)), z, z, z, z.astype(bool), z, z)
    own = pt.fp * (pt.mem == 1)  # uint8 throughout: OpenCV filters are ~4x faster on it
    trace_f = pt.fp * (pt.mem != 2)
    # the smoothings as OpenCV gives them (uint8) where the compiled kernels sample them (each
    # value read as float32: the same values, a quarter of the memory and no copy), else
    # converted to float32 as copied back
    dtype = np.uint8 if _midline._HEADS is not None else np.float32
    if heads is None:
        # both smoothings from one mosaic of the patches
        fst, fsh = smooth_patches_each(trace_f, (prm.sigma_trace, prm.sigma_head), dtype)
        hp, theta0 = _find_heads(own, fst, fsh, prm, stop,
                                 rough=None if rough is None else rough - pt.off)
    else:
        fst = smooth_patches_each(trace_f, (prm.sigma_trace,), dtype)[0]
        hp = heads - pt.off
    if theta0 is None:
        # towards the anterior body: the strongest ray 0.2-0.5 lengths from the head (the rigid
        # trunk, which points away from the head even when the tail is curled into a C)
        theta0, _ = body_directions(fst, hp, prm.length, floor=stop)
    mid = trace_midlines(fst, hp, theta0, prm.length, prm.n_points, stop, arc_smooth=False,
                         rigid_sweeps=getattr(prm, "rigid_sweeps", None))
    if heads is None and rough is None:
        # a head put on the tail end of a fish without distinct eyes (its darkest spot can be
        # anywhere along a uniformly dark body; the eyes of a larva can be motion-blurred in
        # a fast turn): the other end of the midline is the head if there is clearly more
        # fish around it (a wide head, not a tapering tail); ends closer than 0.3 lengths (a
        # C-bend bringing the tail tip to the head) are left alone
        tip = mid.points[:, -1]
        far_apart = mid.ok & (np.hypot(*(tip - hp).T) > 0.3 * prm.length)
        if far_apart.any():
            i = np.flatnonzero(far_apart)
            m_head = _end_mass(fsh, hp[i], prm.length, stop[i], rows=i)
            m_tip = _end_mass(fsh, tip[i], prm.length, stop[i], rows=i)
            maybe = m_tip > MAYBE_REVERSED * m_head
            rev = i[maybe]
            if rev.size:
                h2, t2 = _find_heads(own[rev], fst[rev], fsh[rev], prm, stop[rev], rough=tip[rev])
                m2 = trace_midlines(fst[rev], h2, t2, prm.length, prm.n_points, stop[rev],
                                    arc_smooth=False, rigid_sweeps=getattr(prm, "rigid_sweeps", None))
                # the head end is the one with clearly more fish around it: either the far
                # end outweighs the head point by REVERSED, or, traced the other way round,
                # the new far end is thinner relative to its head than the old one was
                tip2 = np.where(m2.ok[:, None], m2.points[:, -1], h2)
                mh2 = _end_mass(fsh, h2, prm.length, stop[rev], rows=rev)
                mt2 = _end_mass(fsh, tip2, prm.length, stop[rev], rows=rev)
                mh, mt = m_head[maybe], m_tip[maybe]
                flip = (mt > REVERSED * mh) | (m2.ok & (mt2 * mh < mt * mh2))
                rev, h2, t2 = rev[flip], h2[flip], t2[flip]
                m2 = SimpleNamespace(points=m2.points[flip], length=m2.length[flip], ok=m2.ok[flip])
            if rev.size:
                hp = hp.copy()
                theta0 = theta0.copy()
                hp[rev], theta0[rev] = h2, t2
                for f in ("points", "length", "ok"):
                    getattr(mid, f)[rev] = getattr(m2, f)
    if heads is None and rough is None:
        hp, theta0 = _retry_both_ways(own, fst, fsh, prm, stop, hp, theta0, mid)
    heading, tail_angle, curv = body_angles(mid.points)
    heading = np.where(mid.ok, heading, wrap(theta0 + np.pi))
    tail_angle = np.where(mid.ok, tail_angle, np.nan)
    curv = np.where(mid.ok, curv, np.nan)
    return _Meas(
        head=hp + pt.off,
        points=mid.points + pt.off[:, None, :],
        heading=heading,
        tail_angle=tail_angle,
        curvature=curv,
        ok=mid.ok,
        area=pt.area.astype(np.float32),
        motion=pt.motion.astype(np.float32),
    )


def _retry_both_ways(
    own: np.ndarray,
    fst: np.ndarray,
    fsh: np.ndarray,
    prm: _Params,
    stop: np.ndarray,
    hp: np.ndarray,
    theta0: np.ndarray,
    mid: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """A second start for fish whose midline could not be traced: :func:`_find_heads` with
    both ways from the strongest spot traced whatever the second ray's strength (the end with
    more fish around it is the head). A larva's swim bladder can be darker than its eyes after
    the head's smoothing; the rough head then sits on the bladder, the strongest ray from
    there points at the eyes (the tail is fainter) and the trace towards them ends at once
    (real video: the resting larva of threefish_trial2_1000fps.mp4 at its measured 86-px
    length, each eye ~4 px across). Heads and midlines are replaced only where the new trace
    succeeds and the head has moved at most ``ANTERIOR`` lengths; ``mid`` is updated in
    place."""
    lost = np.flatnonzero(~mid.ok)
    if lost.size == 0:
        return hp, theta0
    h2, t2 = _find_heads(own[lost], fst[lost], fsh[lost], prm, stop[lost], both_ways=True)
    m2 = trace_midlines(fst[lost], h2, t2, prm.length, prm.n_points, stop[lost], arc_smooth=False,
                        rigid_sweeps=getattr(prm, "rigid_sweeps", None))
    # the new head may move along the anterior body (off the swim bladder, onto the eyes),
    # not to the other end of the fish: a small larva whose faint tail is not traced from a
    # right head would be traced from its tail end instead (suite seed 30, 20-px larvae)
    good = m2.ok & (np.hypot(*(h2 - hp[lost]).T) <= ANTERIOR * prm.length)
    if not good.any():
        return hp, theta0
    sel = lost[good]
    hp, theta0 = hp.copy(), theta0.copy()
    hp[sel], theta0[sel] = h2[good], t2[good]
    for f in ("points", "length", "ok"):
        getattr(mid, f)[sel] = getattr(m2, f)[good]
    return hp, theta0


def _measure_all(
    pt: _Patches, prm: _Params, stop: np.ndarray, max_px: int = 3_000_000, **kw: Any
) -> _Meas:
    """:func:`_measure` in slices of at most ``max_px`` patch pixels (bounded memory)."""
    m = len(pt)
    if m == 0:
        return _measure(pt, prm, stop, **kw)
    per = max(1, max_px // int(np.prod(pt.fp.shape[1:])))
    if m <= per:
        return _measure(pt, prm, stop, **kw)
    parts = []
    for i in range(0, m, per):
        sl = slice(i, i + per)
        sub = {k: (v[sl] if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
        parts.append(_measure(pt.rows(sl), prm, stop[sl], **sub))
    return _Meas.concat(parts)


def _repeats(pt: _Patches, stop: np.ndarray) -> np.ndarray:
    """(M,) bool: the rows whose measuring inputs (fishness and label patches, offset, stop
    level) equal the row before's bit for bit (a still fish in a video whose codec copied its
    pixels from the frame before: H.264 skip blocks)."""
    same = np.zeros(len(pt), bool)
    if len(pt) < 2:
        return same
    cand = np.flatnonzero((pt.off[1:] == pt.off[:-1]).all(axis=1) & (stop[1:] == stop[:-1])) + 1
    if cand.size:
        lo, hi = int(cand[0]), int(cand[-1]) + 1  # (compared in one span: no fancy copies)
        eq = ((pt.fp[lo:hi] == pt.fp[lo - 1:hi - 1]).all(axis=(1, 2))
              & (pt.mem[lo:hi] == pt.mem[lo - 1:hi - 1]).all(axis=(1, 2)))
        same[cand] = eq[cand - lo]
    return same


def _measure_once(pt: _Patches, prm: _Params, stop: np.ndarray, **kw: Any) -> _Meas:
    """:func:`_measure_all`, measuring a row whose inputs repeat the row before's
    (:func:`_repeats`) only once: every fish is measured on its own patch alone, so a repeated
    row's heads and midlines are the first one's, bit for bit (its area and motion, from the
    cut, are its own). Not for a batch that still decides ``head_feature`` (a median over the
    batch's fish) or that has fixed heads or directions (``kw``)."""
    if kw or prm.head_feature is None:
        return _measure_all(pt, prm, stop, **kw)
    same = _repeats(pt, stop)
    if not same.any():
        return _measure_all(pt, prm, stop)
    keep = np.flatnonzero(~same)
    meas = _measure_all(_Patches(*(getattr(pt, f)[keep] for f in _PATCH_FIELDS)), prm, stop[keep])
    rep = np.cumsum(~same) - 1  # each row's measured row
    out = _Meas(*(getattr(meas, f.name)[rep] for f in dataclasses.fields(_Meas)))
    out.area, out.motion = pt.area.astype(np.float32), pt.motion.astype(np.float32)
    return out


# --------------------------------------------------------------------------------------------
# main loop


def _params(bg: Background, cfg: TrackingConfig, layout: Layout, fish_per_arena: int) -> _Params:
    length = float(cfg.fish_length_px or bg.fish_length_px)
    area = float(bg.fish_area_px)
    if cfg.max_area_px is not None:
        max_area = float(cfg.max_area_px)
    else:
        max_area = 4.0 * area
    if fish_per_arena > 1:
        max_area = max(max_area, 1.6 * area * fish_per_arena)
    min_area = float(cfg.min_area_px)
    patch = _odd(1.5 * length + 6)
    if layout == "embedded":
        patch = _odd(2.0 * 1.3 * length + 6)
    return _Params(
        length=length,
        area=area,
        min_area=min_area,
        max_area=max_area,
        n_points=int(cfg.n_tail_points),
        sigma_head=max(0.7, 0.017 * length),
        sigma_trace=max(0.7, 0.025 * length),
        patch=patch,
        max_jump=float(cfg.max_jump_px or length),
        polarity=bg.polarity,
        rigid_sweeps=RIGID_SWEEPS if layout == "embedded" else None,
    )


def _stop_level(model: ArenaModel) -> float:
    """Absolute end of a tail trace: the noise floor of the smoothed fishness
    (``ArenaModel.floor``, median + 3 robust sd), at least 2 grey levels."""
    if np.isfinite(model.floor):
        return float(max(model.floor, 2.0))
    return float(max(3.0 * model.noise, 3.0))


def _write(
    store: _Store,
    rows: np.ndarray,
    slot: np.ndarray | int,
    meas: _Meas,
    idx: np.ndarray | slice,
    uncertain: np.ndarray | None = None,
) -> None:
    """Write measurements ``idx`` of ``meas`` into frame numbers ``rows`` of fish ``slot``."""
    if len(rows) == 0:
        return
    rows = rows - store.base
    f = store.f
    f["x"][rows, slot] = meas.head[idx, 0]
    f["y"][rows, slot] = meas.head[idx, 1]
    f["heading"][rows, slot] = meas.heading[idx]
    f["tail_angle"][rows, slot] = meas.tail_angle[idx]
    f["tail_curvature"][rows, slot] = meas.curvature[idx]
    f["area_px"][rows, slot] = meas.area[idx]
    f["motion_energy"][rows, slot] = meas.motion[idx]
    store.tail[rows, slot] = meas.points[idx]
    store.detected[rows, slot] = True
    if uncertain is not None:
        store.uncertain[rows, slot] = uncertain


@dataclass
class _Pending:
    """Patches of one arena waiting for the batched measurement: frame numbers ``rows``."""

    st: _ArenaState
    rows: np.ndarray
    stop: float
    heads: np.ndarray | None = None  # embedded: fixed head (full-frame px)
    # tail_motion: the arena's pending block before this one (set in the main thread), and
    # this block's last patches once measured (``done`` set then; possibly in another thread)
    prev: _Pending | None = None
    tail_last: tuple | None = None
    done: threading.Event = dataclasses.field(default_factory=threading.Event)


class _Queue:
    """Patches collected over a few chunks, measured together (fewer, larger NumPy calls).

    With a ``pool`` of worker threads a batch is measured and written in the workers while
    the main thread segments the next chunks: the measurement is large NumPy operations that
    release the GIL, the segmentation mostly Python and small OpenCV calls, so they overlap
    on several cores. With ``threads`` >= 2 the batch is measured as two halves (split
    between arenas) side by side, except the first batch of free-swimming fish, which decides
    for the whole recording whether the fish have a head feature. One batch is in flight at
    a time and every fish is measured independently of the others, so the results are the
    same as without workers."""

    def __init__(self, store: _Store, prm: _Params, *, embedded: bool, limit: int = 512,
                 pool: ThreadPoolExecutor | None = None, threads: int = 1):
        self.store, self.prm, self.embedded = store, prm, embedded
        self.threads = threads
        self.limit = limit
        self.parts: list[_Patches] = []
        self.pend: list[_Pending] = []
        self.n = 0
        self.pool = pool
        self.busy: list[Future] = []
        self.last: dict[int, _Pending] = {}

    def add(self, pt: _Patches, *pend: _Pending) -> None:
        """Queue the patches ``pt`` of the blocks ``pend`` (their rows one after the other in
        ``pt``: a plate's chunk adds all its arenas' patches as one part, measured without a
        copy when the batch is that part alone)."""
        for p in pend:
            # each arena's blocks in order, whatever thread measures them (tail_motion)
            p.prev = self.last.get(id(p.st))
            self.last[id(p.st)] = p
        self.parts.append(pt)
        self.pend.extend(pend)
        self.n += len(pt)

    def wait(self) -> None:
        """Wait for the batch in flight (re-raising its error)."""
        busy, self.busy = self.busy, []
        for f in busy:
            f.result()

    def flush(self, *, force: bool = False) -> None:
        """Measure the queued patches once enough have been collected (or ``force``) and write
        the fish into the store (in the worker thread if there is one; ``force`` also waits
        for it)."""
        if not self.parts or (self.n < self.limit and not force):
            if force:
                self.wait()
            return
        embedded = self.embedded
        pt = _Patches.concat(self.parts)
        pend = self.pend
        self.parts, self.pend, self.n = [], [], 0
        stop = np.concatenate([np.full(len(p.rows), p.stop, np.float32) for p in pend])
        kw = {}
        if embedded:
            kw["heads"] = np.concatenate([np.tile(p.heads, (len(p.rows), 1)) for p in pend])
            kw["theta0"] = np.concatenate([np.full(len(p.rows), wrap(p.st.heading + np.pi)) for p in pend])
        self.wait()
        if self.store.tail_lag is None:  # the frame interval, once (tail_motion)
            self.store.tail_lag = frame_lag(self.store.time, self.store.base, [p.rows for p in pend])
        if self.pool is None:
            self._measure_write(pt, pend, stop, kw)
        else:
            # two halves (split between arenas) measured side by side, once the first batch
            # has decided whether the fish have a head feature (that needs one batch)
            sizes = np.cumsum([len(p.rows) for p in pend])
            cut = int(np.argmin(np.abs(sizes - sizes[-1] / 2))) + 1
            halves = [(0, cut), (cut, len(pend))]
            if self.threads < 2 or (self.prm.head_feature is None and not embedded) or cut >= len(pend):
                halves = [(0, len(pend))]
            self.busy = []
            for a, b in halves:
                r0 = int(sizes[a - 1]) if a else 0
                sl = slice(r0, int(sizes[b - 1]))
                sub = {k: v[sl] for k, v in kw.items()}
                self.busy.append(self.pool.submit(self._measure_write, pt.rows(sl), pend[a:b], stop[sl], sub))
            if force:
                self.wait()

    def _measure_write(self, pt: _Patches, pend: list[_Pending], stop: np.ndarray, kw: dict) -> None:
        store, prm, embedded = self.store, self.prm, self.embedded
        meas = _measure_once(pt, prm, stop, **kw)
        if embedded:
            meas.heading = np.concatenate([np.full(len(p.rows), p.st.heading) for p in pend])
        tm = batch_tail_motion(store.tail_lag, pend, pt.fp, pt.off, meas.points, meas.ok)
        if not pend:
            return
        # every block's rows at once (each block one fish's frames, no two alike)
        rows = np.concatenate([p.rows for p in pend])
        slot = np.repeat(np.array([p.st.slots[0] for p in pend], np.int64), [len(p.rows) for p in pend])
        idx = np.arange(len(rows))
        if embedded:  # detected = the tail was found
            ok = meas.ok[idx]
            idx, rows, slot = idx[ok], rows[ok], slot[ok]
        _write(store, rows, slot, meas, idx)
        store.f["tail_motion"][rows - store.base, slot] = tm[idx]


def _select_single(st: _ArenaState, blobs: ChunkBlobs, n: int, prm: _Params) -> np.ndarray:
    chosen, st.last = select_single(
        blobs.frame,
        blobs.area,
        blobs.cx,
        blobs.cy,
        n,
        last=st.last,
        min_area=prm.min_area,
        max_area=prm.max_area,
    )
    return chosen


def _origin(st: _ArenaState) -> tuple[int, int]:
    return int(st.model.bbox[0]), int(st.model.bbox[1])


def _init_embedded(st: _ArenaState, ac: _ArenaChunk, prm: _Params) -> bool:
    """Fix the head and heading of a head-embedded larva from the first frames that show it."""
    chosen = _select_single(st, ac.blobs, ac.n, prm)
    t = np.flatnonzero(chosen >= 0)
    if t.size < max(3, ac.n // 4):
        return False
    pt = _cut(ac, chosen[t], _odd(1.5 * prm.length + 6), group=GROUP * prm.length, use_prev=False)
    stop = np.full(len(pt), _stop_level(st.model), np.float32)
    meas = _measure_all(pt, prm, stop)
    head = np.median(meas.head, axis=0)
    ok = meas.ok & np.isfinite(meas.points[:, -1, 0])
    if ok.any():
        # the head is the still end of the larva: compare how much the fishness varies over
        # these frames around the head and around the midline's far end
        tip = np.median(meas.points[ok, -1], axis=0)
        if math.hypot(*(tip - head)) > 0.3 * prm.length:
            d = ac.d[t].astype(np.float32)
            both = np.stack([d.std(axis=0), d.mean(axis=0)])
            org = np.array(ac.origin, np.float64)
            ends = np.stack([head, tip]) - org
            mv = _end_mass(both[[0, 0]], ends, prm.length, np.zeros(2, np.float32))
            mass = _end_mass(both[[1, 1]], ends, prm.length, np.zeros(2, np.float32))
            # the fish's level over as many samples (the arena's threshold of fishness)
            level = st.model.threshold * _end_mass(np.ones_like(both[:1]), ends[1:], prm.length,
                                                   np.zeros(1, np.float32))[0]
            # a wide far end (the real head, not a thin tail tip: as dark as a fish on average
            # over these frames and at least half the head point's fishness) with still
            # surroundings
            if (mv[0] > MOVING_HEAD * mv[1] and mass[1] > MAYBE_REVERSED * mass[0]
                    and mass[1] > level):
                rough = np.where(ok[:, None], meas.points[:, -1], tip)
                meas2 = _measure_all(pt, prm, stop, rough=rough)
                head2 = np.median(meas2.head, axis=0)
                mv2 = _end_mass(both[:1], (head2 - org)[None], prm.length, np.zeros(1, np.float32))
                if mv2[0] < mv[0]:
                    meas, head = meas2, head2
    st.head = head - np.array(_origin(st), np.float64)
    hd = meas.heading[np.isfinite(meas.heading)]
    st.heading = float(np.angle(np.exp(1j * hd).mean())) if hd.size else 0.0
    return True


def _eye_peaks(fs: np.ndarray, prm: _Params) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel eye candidates (x, y) and their strength in a smoothed fishness image."""
    r_eye = max(1, int(round(0.07 * prm.length)))
    ker = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r_eye + 1, 2 * r_eye + 1))
    dil = cv2.dilate(fs, ker)
    top = float(fs.max())
    pk = np.argwhere((fs >= dil) & (fs > 0.45 * top))
    if len(pk) == 0:
        return np.zeros((0, 2)), np.zeros(0)
    vals = fs[pk[:, 0], pk[:, 1]].astype(np.float64)
    pts = []
    rw = max(1, r_eye // 2)
    for py, px in pk:
        ya, xa = max(0, py - rw), max(0, px - rw)
        win = fs[ya : py + rw + 1, xa : px + rw + 1]
        wgt = np.clip(win - 0.7 * fs[py, px], 0, None)
        s = float(wgt.sum())
        if s <= 0:
            pts.append((float(px), float(py)))
            continue
        yy, xx = np.mgrid[ya : ya + win.shape[0], xa : xa + win.shape[1]]
        pts.append((float((wgt * xx).sum() / s), float((wgt * yy).sum() / s)))
    return np.array(pts, np.float64), vals


def _pair_candidates(eyes: np.ndarray, vals: np.ndarray, prm: _Params) -> list[tuple]:
    """Candidate heads: midpoints of eye pairs 0.05-0.3 lengths apart, and single eyes."""
    cands: list[tuple] = []
    n = len(eyes)
    for a in range(n):
        for b in range(a + 1, n):
            dd = math.hypot(*(eyes[a] - eyes[b]))
            ratio = vals[a] / max(vals[b], 1e-6)
            if 0.05 * prm.length <= dd <= 0.3 * prm.length and 0.4 <= ratio <= 2.5:
                cands.append(((eyes[a] + eyes[b]) / 2.0, frozenset((a, b)), 0.0))
    for a in range(n):
        cands.append((eyes[a], frozenset((a,)), 0.15 * prm.length))
    return cands


def _best_disjoint(cost: np.ndarray, uses: list[frozenset], limit: float) -> list[int]:
    """For every row (fish) one column (candidate) or -1, candidates sharing no eye, minimising
    the total cost (exhaustive for small problems; rows without a candidate under ``limit``
    cost ``limit``)."""
    n_r, n_c = cost.shape
    best: list = [math.inf, [-1] * n_r]
    order = [np.argsort(cost[r])[:6] for r in range(n_r)]

    def rec(r: int, used: frozenset, acc: float, pick: list[int]) -> None:
        if acc >= best[0]:
            return
        if r == n_r:
            best[0], best[1] = acc, list(pick)
            return
        for c in order[r]:
            if cost[r, c] >= limit or uses[c] & used:
                continue
            pick.append(int(c))
            rec(r + 1, used | uses[c], acc + cost[r, c], pick)
            pick.pop()
        pick.append(-1)
        rec(r + 1, used, acc + limit, pick)
        pick.pop()

    rec(0, frozenset(), 0.0, [])
    return best[1]


def _merged_heads(
    d: np.ndarray, blobs: ChunkBlobs, j: int, k: int, pred: np.ndarray, prm: _Params
) -> tuple[np.ndarray, np.ndarray]:
    """Head positions (crop px) and headings (rad, NaN where unknown) of the fish inside merged
    blob ``j``.

    Eye candidates are the peaks of the smoothed fishness; a head is the midpoint of an eye
    pair (0.05-0.3 lengths apart) or, when one eye is hidden, a single eye. Fish predicted inside
    the blob take the combination of heads, sharing no eye, closest to their predictions; up to
    ``k`` heads in all, the remaining eyes are paired by strength.
    """
    n_h = d.shape[1]
    x, y, w, h = int(blobs.x0[j]), int(blobs.y0[j]), int(blobs.w[j]), int(blobs.h[j])
    t = int(blobs.frame[j])
    pad = 4
    ox, oy = max(0, x - pad), max(0, y - pad)
    sub = d[t, oy : y + h + pad, ox : x + w + pad].astype(np.float32)
    mem = np.zeros(sub.shape, np.uint8)
    cv2.drawContours(mem, blobs.contours[j : j + 1], -1, 1, -1, offset=(-ox, -(oy + t * n_h)))
    fs = cv2.GaussianBlur(sub * mem, (0, 0), prm.sigma_trace)
    eyes, vals = _eye_peaks(fs, prm)
    if len(eyes) == 0:
        return np.zeros((0, 2)), np.zeros(0)
    eyes = eyes + np.array([ox, oy], np.float64)
    cands = _pair_candidates(eyes, vals, prm)
    pos = np.array([c[0] for c in cands])
    uses = [c[1] for c in cands]
    pen = np.array([c[2] for c in cands])
    lim = 0.5 * prm.length
    inside = [
        p
        for p in pred
        if np.all(np.isfinite(p)) and x - lim <= p[0] <= x + w + lim and y - lim <= p[1] <= y + h + lim
    ]
    chosen: list[int] = []
    used: frozenset = frozenset()
    if inside:
        pr = np.array(inside[:6])
        cost = np.hypot(pr[:, None, 0] - pos[None, :, 0], pr[:, None, 1] - pos[None, :, 1]) + pen
        pick = _best_disjoint(cost, uses, lim)
        for c in pick:
            if c >= 0:
                chosen.append(c)
                used = used | uses[c]
    # remaining eyes: strongest pairs first
    rest = sorted(
        (i for i, c in enumerate(cands) if not (c[1] & used)),
        key=lambda i: (len(cands[i][1]) == 1, -sum(vals[list(cands[i][1])])),
    )
    for i in rest:
        if len(chosen) >= k:
            break
        if cands[i][1] & used:
            continue
        chosen.append(i)
        used = used | cands[i][1]
    heads = np.array([pos[c] for c in chosen], np.float64).reshape(-1, 2)
    headings = np.array(
        [_pair_heading(fs, eyes, cands[c][1], pos[c], (ox, oy), prm.length) for c in chosen],
        np.float64,
    )
    return heads, headings


def _pair_heading(
    fs: np.ndarray, eyes: np.ndarray, pair: frozenset, head: np.ndarray, off, length: float
) -> float:
    """Heading (rad) of a fish in a merged blob from its eye pair: perpendicular to the line
    through the eyes, pointing away from the side where the body is (more fishness along a ray
    0.3-0.7 lengths from the head). NaN for a single eye."""
    if len(pair) != 2:
        return math.nan
    a, b = (eyes[i] for i in sorted(pair))
    ex, ey = b - a
    axis = math.atan2(ey, ex) + math.pi / 2
    r = np.linspace(0.3, 0.7, 6) * length
    hx, hy = head[0] - off[0], head[1] - off[1]
    h, w = fs.shape
    mass = []
    for th in (axis, axis + math.pi):
        xs = np.clip(np.round(hx + r * math.cos(th)).astype(int), 0, w - 1)
        ys = np.clip(np.round(hy + r * math.sin(th)).astype(int), 0, h - 1)
        inb = (hx + r * math.cos(th) >= 0) & (hx + r * math.cos(th) < w)
        inb &= (hy + r * math.sin(th) >= 0) & (hy + r * math.sin(th) < h)
        mass.append(float((fs[ys, xs] * inb).sum()))
    body = axis if mass[0] >= mass[1] else axis + math.pi
    return float(np.angle(np.exp(1j * (body + math.pi))))


def _fragments(blobs: ChunkBlobs, prm: _Params) -> np.ndarray:
    """Bool per blob: small blobs (under 0.2 x the fish area) within half a length of a larger,
    fish-sized blob of the same frame: pieces of a fish's faint tail or fins cut off by the
    threshold, not fish of their own."""
    out = np.zeros(len(blobs), bool)
    small = np.flatnonzero(blobs.area < 0.2 * prm.area)
    if small.size == 0:
        return out
    big = np.flatnonzero(blobs.area >= 0.3 * prm.area)
    if big.size == 0:
        return out
    reach = 0.5 * prm.length
    for f in np.intersect1d(blobs.frame[small], blobs.frame[big]):
        s = small[blobs.frame[small] == f]
        b = big[blobs.frame[big] == f]
        # distance from the small blob's centroid to the large blobs' bounding boxes
        cx, cy = blobs.cx[s][:, None], blobs.cy[s][:, None]
        x0, y0 = blobs.x0[b][None, :], blobs.y0[b][None, :]
        dx = np.maximum(np.maximum(x0 - cx, cx - (x0 + blobs.w[b][None, :])), 0.0)
        dy = np.maximum(np.maximum(y0 - cy, cy - (y0 + blobs.h[b][None, :])), 0.0)
        out[s] = (np.hypot(dx, dy) <= reach).any(axis=1)
    return out


def _step_multi(run: _Run, st: _ArenaState, ac: _ArenaChunk) -> None:
    """Several fish in one arena: single-fish blobs measured, touching fish split into heads,
    identities assigned frame by frame (:class:`MultiTracker`) and written to the store."""
    prm, store = run.prm, run.store
    d, blobs, n, fidx = ac.d, ac.blobs, ac.n, ac.fidx
    tr = st.tracker
    assert tr is not None
    stop = _stop_level(st.model)
    orgv = np.array(ac.origin, np.float64)
    frag = _fragments(blobs, prm)
    # several fish share the arena: a blob far smaller than a fish (a speck of dirt, a bubble,
    # a piece of tail) must not take a fish's identity when its own blob is hidden
    min_det = max(prm.min_area, _MIN_DET_AREA * prm.area) if np.isfinite(prm.area) else prm.min_area
    ok_area = (blobs.area >= min_det) & (blobs.area <= prm.max_area) & ~frag
    single = ok_area & (blobs.area <= 1.5 * prm.area)
    sel = np.flatnonzero(single)
    pt = _cut(ac, sel, prm.patch, ignore=frag)
    # a detection must look like this recording's fish: as dark (bright) at its core as a
    # fish, not a faint reflection on a wall or a shadow
    if len(pt) and np.isfinite(st.model.contrast):
        core = (pt.fp * (pt.mem == 1)).reshape(len(pt), -1).max(axis=1)
        faint = core < FAINT * st.model.contrast
        if faint.any():
            ok_area[sel[faint]] = False
            keep = ~faint
            sel = sel[keep]
            pt = pt.rows(keep)
    meas = _measure_all(pt, prm, np.full(len(pt), stop, np.float32))
    row_of = {int(j): i for i, j in enumerate(sel)}
    starts = np.searchsorted(blobs.frame, np.arange(n), side="left")
    ends = np.searchsorted(blobs.frame, np.arange(n), side="right")
    m_blob: list[int] = []
    m_head: list[np.ndarray] = []
    out: list[tuple[int, int, str, int, bool]] = []  # (t, fish, source, row, uncertain)
    for t in range(n):
        pos, hd, mg, src = [], [], [], []
        pred = None
        # largest blobs first: fish that are not tracked yet start on the most fish-like ones
        for j in starts[t] + np.argsort(-blobs.area[starts[t] : ends[t]], kind="stable"):
            j = int(j)
            if not ok_area[j]:
                continue
            if j in row_of:
                i = row_of[j]
                pos.append(meas.head[i] - orgv)
                hd.append(meas.heading[i])
                mg.append(False)
                src.append(("s", i))
                continue
            if pred is None:
                pred = tr.predict()[tr.started]
            k = int(np.clip(round(float(blobs.area[j]) / prm.area), 2, tr.n))
            hh, hdg = _merged_heads(d, blobs, j, k, pred, prm)
            for h, hg in zip(hh, hdg, strict=True):
                pos.append(h)
                hd.append(hg)
                mg.append(True)
                src.append(("m", len(m_blob)))
                m_blob.append(j)
                m_head.append(h)
        asg = tr.update(
            np.array(pos, np.float64).reshape(-1, 2),
            det_heading=np.array(hd, np.float64),
            merged=np.array(mg, bool),
        )
        for f in range(tr.n):
            jd = asg.det_of[f]
            if jd >= 0:
                out.append((t, f, src[jd][0], src[jd][1], bool(asg.uncertain[f])))
    mmeas = None
    if m_blob:
        mb = np.array(m_blob, np.int64)
        side = int(max(blobs.w[mb].max(), blobs.h[mb].max()))
        centre = np.stack([blobs.x0[mb] + blobs.w[mb] / 2.0, blobs.y0[mb] + blobs.h[mb] / 2.0], axis=1)
        mpt = _cut(ac, mb, _odd(side + prm.length), centre=centre, ignore=frag)
        cnt = np.bincount(mb, minlength=len(blobs))
        mpt.area = (blobs.area[mb] / cnt[mb]).astype(np.float32)
        heads = np.array(m_head) + orgv
        own = mpt.fp.astype(np.float32) * (mpt.mem == 1)
        theta0 = initial_directions(
            own, heads - mpt.off, prm.length, r_max=0.7 * prm.length, floor=stop
        )
        mmeas = _measure_all(mpt, prm, np.full(len(mpt), stop, np.float32), heads=heads, theta0=theta0)
        # touching fish whose midline runs over another fish of the blob: the traced tail may
        # be the other fish's, so its tail angle is not known (the midline stays, for display)
        crossed = _midlines_cross(mmeas.points, mb, 0.12 * prm.length)
        mmeas.tail_angle[crossed] = np.nan
        mmeas.curvature[crossed] = np.nan
    for t, f, kind, i, unc in out:
        m_ = meas if kind == "s" else mmeas
        _write(store, fidx[[t]], st.slots[f], m_, np.array([i]), np.array([unc]))
    _multi_tail_motion(store, st, out, fidx, pt, meas)


def _multi_tail_motion(store: _Store, st: _ArenaState, out: list, fidx: np.ndarray,
                       pt: _Patches, meas: _Meas) -> None:
    """``tail_motion`` of the fish of a multi-fish arena (:mod:`fishtrack.tracking.tail_motion`):
    per fish, over the frames where it was a blob of its own with a sure identity (not in a
    merged blob: NaN there), read on its own patches with the pixels of every other blob set to
    0, so a larva crossing near its tail does not count as tail motion. Each fish's last
    ``lag`` patches are carried to the next chunk (``st.tail_carry``)."""
    if store.tail_lag is None:
        store.tail_lag = frame_lag(store.time, store.base, [fidx])
    lag = store.tail_lag
    carry = st.tail_carry if st.tail_carry is not None else {}
    by_fish: dict[int, list[tuple[int, int]]] = {}
    for t, f, kind, i, unc in out:
        if kind == "s" and not unc:
            by_fish.setdefault(f, []).append((int(fidx[t]), i))
    for f, got in by_fish.items():
        rows = np.array([r for r, _ in got], np.int64)
        idx = np.array([i for _, i in got], np.int64)
        fp = np.where(pt.mem[idx] == 2, 0, pt.fp[idx]).astype(pt.fp.dtype)
        off, pts, ok = pt.off[idx], meas.points[idx], meas.ok[idx]
        c = carry.get(f)
        n_c = 0
        if c is not None and len(c[4]) and c[4][-1] < rows[0]:
            n_c = len(c[4])
            fp, off, pts, ok = (np.concatenate([a, b]) for a, b in zip(c[:4], (fp, off, pts, ok), strict=True))
            rows = np.concatenate([c[4], rows])
        tm = tail_motion(fp, off, pts, ok, rows, lag=lag)[n_c:]
        store.f["tail_motion"][rows[n_c:] - store.base, st.slots[f]] = tm
        carry[f] = (fp[-lag:].copy(), off[-lag:], pts[-lag:], ok[-lag:], rows[-lag:])
    st.tail_carry = carry


def _segment_angles(tail: np.ndarray, heading: np.ndarray, tail_angle: np.ndarray):
    """Cumulative segment angles of midlines (rows, fish, n, 2), one flat float32 array per
    segment 1 .. n-1 (in the table's row order): the direction of the segment from point
    i-1 to point i relative to the backward body axis (``heading + pi``), accumulated from
    segment to segment (not wrapped, so a tail curled beyond pi keeps counting). NaN where
    ``tail_angle`` is NaN (no tail, or a tail that may be another fish's)."""
    back = heading.astype(np.float64) + np.pi
    unknown = ~np.isfinite(tail_angle)
    prev_dir = None
    acc = None
    for i in range(1, tail.shape[2]):
        dx = (tail[:, :, i, 0] - tail[:, :, i - 1, 0]).ravel().astype(np.float64)
        dy = (tail[:, :, i, 1] - tail[:, :, i - 1, 1]).ravel().astype(np.float64)
        d = np.arctan2(dy, dx)
        acc = wrap(d - back) if acc is None else acc + wrap(d - prev_dir)
        prev_dir = d
        yield np.where(unknown, np.nan, acc).astype(np.float32)


def _midlines_cross(points: np.ndarray, blob: np.ndarray, dist: float) -> np.ndarray:
    """For each midline (M, n, 2), whether its body (all but the first two points) comes within
    ``dist`` px of another midline of the same blob (``blob``: (M,) blob index)."""
    out = np.zeros(len(points), bool)
    order = np.argsort(blob, kind="stable")
    bounds = np.flatnonzero(np.diff(blob[order])) + 1
    for grp in np.split(order, bounds):
        if len(grp) < 2:
            continue
        p = points[grp].astype(np.float64)  # (g, n, 2)
        body = p[:, 2:]
        d = np.linalg.norm(body[:, None, :, None, :] - p[None, :, None, :, :], axis=-1)
        close = np.where(np.isfinite(d), d, np.inf).min(axis=(2, 3))
        np.fill_diagonal(close, np.inf)
        out[grp] = (close <= dist).any(axis=1)
    return out


def _chunks(source: Any, n: int, prefetch: int) -> Iterator:
    """``source.chunks(n)``, decoded ``prefetch`` chunks ahead when the source supports it."""
    try:
        params = inspect.signature(source.chunks).parameters
    except (TypeError, ValueError):
        params = {}
    if "prefetch" in params:
        return iter(source.chunks(n, prefetch=prefetch))
    return iter(source.chunks(n))


def track_video(
    source: Any,
    arenas: Sequence[Any],
    cfg: TrackingConfig | None = None,
    *,
    fish_per_arena: int = 1,
    layout: Layout = "wells",
    background: Background | None = None,
    chunk_size: int = 64,
    progress: Progress | None = None,
    prefetch: int = 1,
    sink: Callable[[dict[str, np.ndarray]], None] | None = None,
    release_calib: bool = False,
) -> TrackResult:
    """Track every fish in every arena of a video.

    Parameters
    ----------
    source
        A :class:`fishtrack.io.video.VideoSource` (or :class:`ArraySource`, or a uint8 array
        (N, H, W)).
    arenas
        Arenas from :func:`fishtrack.arenas.detect_arenas`.
    cfg
        Tracking settings.
    fish_per_arena
        Fish per arena; more than 1 turns on identity tracking (``fish`` = ``ARENA-k``).
    layout
        ``"wells"``, ``"chamber"`` or ``"embedded"`` (head fixed: only the tail is traced).
    background
        A background from :func:`estimate_background` (refined here if needed); estimated if
        None.
    chunk_size
        Frames per chunk (shortened for very large frames to bound memory).
    progress
        Called as ``progress(frames_done, n_frames)`` after every chunk.
    prefetch
        Chunks decoded ahead in a background thread (0: no thread).
    sink
        Streaming: called with blocks of finished rows (a dict of table columns, frames in
        order, every slot: each arena's ``fish_per_arena`` candidates, kept or not) as
        tracking proceeds, so memory does not grow with the video's length. The returned
        ``tracks`` is then empty and ``summary["kept_slots"]`` (of ``summary["n_slots"]``)
        says which rows of each frame are the fish kept (see :func:`kept_rows`).
    release_calib
        Empty the background's calibration frames (``calib``, of ``background`` and of its
        refined copy) once the arenas' models are made, before the first chunk: tracking
        needs them no more, and they are 16 full frames (~20 MB at 1280 x 960). For a caller
        that does not use the background afterwards (``fishtrack track``): tracking with it
        again would compute the fishness floors without them (different tracks).

    Returns
    -------
    TrackResult
    """
    cfg = cfg or TrackingConfig()
    if isinstance(source, np.ndarray):
        source = ArraySource(source)
    arenas = list(arenas)
    if not arenas:
        raise TrackingError("no arenas to track in")
    if layout not in ("wells", "chamber", "embedded"):
        raise TrackingError(f"unknown layout {layout!r}; use wells, chamber or embedded")
    if fish_per_arena < 1:
        raise TrackingError(f"fish_per_arena must be at least 1, got {fish_per_arena}")
    if layout == "embedded":
        fish_per_arena = 1
    if background is None:
        background = estimate_background(source, cfg)
    bg = background
    if not bg.refined or list(bg.arenas) != arenas:
        bg = bg.refine(arenas, cfg, fish_per_arena=fish_per_arena, layout=layout)
    n_total = len(source)
    n_measure = _measure_threads(len(bg.models) * fish_per_arena)
    pool = ThreadPoolExecutor(n_measure, thread_name_prefix="fishtrack-measure")
    n_seg = min(compute_threads(), len(bg.models))
    seg = (ThreadPoolExecutor(n_seg, thread_name_prefix="fishtrack-segment") if n_seg > 1
           else None)
    run = _Run(bg, cfg, layout, fish_per_arena, n_total, getattr(source, "timestamps", None),
               chunk_size, sink, pool=pool, segment_pool=seg, measure_threads=n_measure)
    if release_calib:  # the fishness floors are made (_Run): the frames are no longer needed
        for b in (background, bg):
            b.calib = b.calib[:0]
    if len(run.names) >= KERNEL_MIN_FISH:
        _load_kernels()
    done = 0
    damage = getattr(source, "damage", [])
    # The decode thread needs the GIL between FFmpeg calls; with the default 5 ms switch
    # interval it waits behind the tracking thread's Python work and decoding slows ~3x.
    old_switch = sys.getswitchinterval()
    sys.setswitchinterval(min(old_switch, 0.0005))
    try:
        for chunk in _chunks(source, run.chunk_frames, prefetch):
            done += run.track_chunk(chunk)
            run.hand_on()
            if progress is not None:
                progress(done, n_total)
        run.queue.flush(force=True)
        run.hand_on(final=True)
    finally:
        sys.setswitchinterval(old_switch)
        pool.shutdown(wait=True)
        if seg is not None:
            seg.shutdown(wait=True)
    return _finish(run, damage)


class _Run:
    """One tracking run: the refined background, the settings and the parameters derived from
    them, one state per arena (slots ``names``: (arena, fish) per store column), the output
    store and the queue of patches waiting for their midlines. The per-arena step of the
    layout (:func:`_step_single`, :func:`_step_embedded` or :func:`_step_multi`) is chosen
    once, here."""

    def __init__(self, bg: Background, cfg: TrackingConfig, layout: Layout, fish_per_arena: int,
                 n_total: int, timestamps: np.ndarray | None, chunk_size: int,
                 sink: Callable[[dict[str, np.ndarray]], None] | None = None,
                 pool: ThreadPoolExecutor | None = None,
                 segment_pool: ThreadPoolExecutor | None = None,
                 measure_threads: int | None = None):
        self.bg, self.cfg, self.layout, self.fish_per_arena = bg, cfg, layout, fish_per_arena
        #: threads segmenting the arenas of a chunk (fishness and blobs) while this one runs
        #: the arenas' steps in order (the NumPy path; None: all on the calling thread)
        self.segment_pool = segment_pool
        self.prm = prm = _params(bg, cfg, layout, fish_per_arena)
        # each arena's own NumPy and OpenCV work: on the compute threads, as the refinement
        floors = per_arena_map(fishness_floor, [(bg, m, prm.sigma_trace) for m in bg.models])
        for m, floor in zip(bg.models, floors, strict=True):
            m.floor = floor
        multi = fish_per_arena > 1
        self.names: list[tuple[str, str]] = []
        self.states: list[_ArenaState] = []
        for m in bg.models:
            slots = []
            for k in range(fish_per_arena):
                slots.append(len(self.names))
                self.names.append((m.name, f"{m.name}-{k + 1}" if multi else m.name))
            st = _ArenaState(model=m, slots=slots, kind=layout, n_fish=fish_per_arena)
            if multi:
                st.tracker = MultiTracker(fish_per_arena, prm.max_jump)
            self.states.append(st)
        h_full, w_full = bg.median.shape
        self.chunk_frames = int(max(4, min(chunk_size, _MAX_CHUNK_BYTES // max(1, h_full * w_full))))
        ts = None
        if timestamps is not None and len(timestamps) == n_total:
            ts = np.asarray(timestamps, np.float64)
        self.sink = sink
        self.spill_rows = _spill_rows(len(self.names), prm.n_points)
        self.counts = _KeepCounts(len(self.names), 0.3 * prm.area)
        cap = n_total if sink is None else min(n_total, self.spill_rows + 4 * self.chunk_frames)
        self.store = _Store(cap, len(self.names), prm.n_points, ts)
        self.store.rows = n_total
        #: pixels of the largest arena crop of one frame, and of all of them: the fishness of a
        #: chunk goes into ``work`` (:meth:`_arena_parts`), one part reused arena after arena
        #: (the one-thread loop), or a part per arena (a plate's chunk keeps every arena's
        #: fishness until its blobs are found; the segmenting threads fill theirs at once)
        self.max_cells = max(int(np.prod(m.shape)) for m in bg.models)
        self.cells = sum(int(np.prod(m.shape)) for m in bg.models)
        self.plate: tuple | None = None  # the arenas' boxes, backgrounds, masks (_plate_arrays)
        self.plate_gains: tuple | None = None  # their gains' reference pixels (_plate_gain_pixels)
        #: a plate's crops (x0, y0, h, w) per arena, the frame before the chunk (every arena's
        #: ``prev`` a view of it) and where each arena's fishness lies in ``work``: the cut of
        #: all arenas in one compiled call (_step_plate)
        self.cut_boxes: np.ndarray | None = None
        self.plate_prev: np.ndarray | None = None
        self.part_offsets: np.ndarray | None = None
        # a part per arena from the start when it will be needed: segmenting threads, or the
        # compiled kernels (in use, or loaded by track_video for a plate); a run that finds
        # the kernels loaded mid-run without expecting them grows it then (_arena_parts)
        own = (segment_pool is not None or _KERNELS is not None
               or len(self.names) >= KERNEL_MIN_FISH)
        self.work = np.zeros(self.chunk_frames * (self.cells if own else self.max_cells), np.uint8)
        self.queue = _Queue(self.store, prm, embedded=layout == "embedded", pool=pool,
                            threads=MEASURE_THREADS if measure_threads is None else measure_threads)
        self.step = _step_multi if multi else _step_embedded if layout == "embedded" else _step_single

    def track_chunk(self, chunk: Any) -> int:
        """Segment one chunk in every arena and run the layout's step on it; returns the
        number of frames in the chunk."""
        bg, prm = self.bg, self.prm
        h_full, w_full = bg.median.shape
        frames = chunk.frames
        n = len(chunk.indices)
        if frames.shape[1:] != (h_full, w_full):
            raise TrackingError(
                f"frame size {frames.shape[2]}x{frames.shape[1]} differs from the background "
                f"{w_full}x{h_full}"
            )
        fidx = np.asarray(chunk.indices, np.int64)
        if n == 0:
            return 0
        if int(fidx[-1]) + 1 - self.store.base > len(self.store.time):
            self.queue.wait()  # the store grows: no batch may be writing into it
        self.store.reserve(int(fidx[-1]))
        self.store.time[fidx - self.store.base] = chunk.times
        flicker = self.cfg.flicker_correction
        kernels = _KERNELS
        if kernels is not None and self.plate is None:
            models = [st.model for st in self.states]
            self.plate = _plate_arrays(models)
            self.plate_gains = _plate_gain_pixels(models, w_full)
        # a plate's gains and fishness in one compiled pass (the gains' reference pixels read
        # from the crops the fishness reads next), where every arena has finite float32
        # references and the frames are C-contiguous
        fused = (kernels is not None and flicker and self.plate_gains is not None
                 and frames.flags.c_contiguous)
        # the NumPy path with segmenting threads: every arena's gains, fishness and blobs beside
        # the arenas' steps (_segment_beside); else one arena after the other on this thread
        beside = kernels is None and self.segment_pool is not None
        gains = (all_arena_gains(frames, [st.model for st in self.states])
                 if flicker and not fused and not beside else None)
        in_call = None
        parts = self._arena_parts(frames, n, own=kernels is not None or beside)
        if kernels is not None:
            # a plate (compiled kernels in use): every arena's fishness and outlines first, then
            # the blobs of all arenas from one compiled call (the same blobs as find_blobs)
            # the fishness of every arena that does not smooth it from one compiled call
            boxes, bgs, valids, offs, in_call = self.plate
            in_call = in_call if frames.flags.c_contiguous else np.zeros_like(in_call)
            if fused:
                g = np.empty((len(self.states), n), np.float32)
                kernels.gains_fishness_arenas(frames, boxes, *self.plate_gains, in_call, bgs, valids, offs,
                                              bg.polarity == "dark", g, self.work)
                gains = list(g)
            elif in_call.any():
                g = np.stack(gains) if gains is not None else np.ones((len(self.states), n), np.float32)
                kernels.fishness_arenas(frames, boxes[in_call], g[in_call], bgs, valids,
                                        offs[in_call], bg.polarity == "dark", self.work)
        waiting, conts = [], []
        if beside:
            self._segment_beside(parts, flicker, fidx)
        for i, (st, d, crop) in enumerate(() if beside else parts):
            m = st.model
            if in_call is None or not in_call[i]:
                fishness_chunk(crop, m, bg.polarity, d, flicker=flicker,
                               gains=gains[i] if gains is not None else None)
            if kernels is None:
                self._step(st, d, crop, find_blobs(d, m.threshold, prm.min_area), fidx)
            else:
                waiting.append((st, d, crop))
                conts.append(outlines(d, m.threshold))
        if waiting:
            all_blobs = blobs_of_arenas(conts, [d.shape[1] for _, d, _ in waiting], prm.min_area,
                                        kernels.contour_stats)
            if self.step is _step_single:
                _step_plate(self, [(*wt, b) for wt, b in zip(waiting, all_blobs, strict=True)], fidx,
                            frames=frames)
            else:
                for (st, d, crop), blobs in zip(waiting, all_blobs, strict=True):
                    self._step(st, d, crop, blobs, fidx)
        self.queue.flush()
        self.done_upto = int(fidx[-1]) + 1
        return n

    def _arena_parts(self, frames: np.ndarray, n: int, *, own: bool
                     ) -> list[tuple[_ArenaState, np.ndarray, np.ndarray]]:
        """Every arena's (state, fishness buffer of ``n`` frames in ``work``, crop of
        ``frames``), in arena order: each arena a part of ``work`` of its own (``own``: the
        compiled kernels' plate path and the segmenting threads), else one part reused by
        every arena in turn (the one-thread loop). ``work`` grows only for a chunk it cannot
        hold: longer than ``chunk_frames`` (a source that does not cut its chunks at the size
        asked for), or the first chunk with parts of their own in a run whose ``work`` was
        sized for one part (the kernels loaded mid-run by another run of the process)."""
        per_frame = self.cells if own else self.max_cells
        if len(self.work) < n * per_frame:
            self.work = np.zeros(max(n, self.chunk_frames) * per_frame, np.uint8)
        parts = []
        at = 0
        offsets = []
        for st in self.states:
            x0, y0, x1, y1 = st.model.bbox
            hh, ww = st.model.shape
            offsets.append(at)
            parts.append((st, self.work[at : at + n * hh * ww].reshape(n, hh, ww),
                          frames[:, y0:y1, x0:x1]))
            if own:
                at += n * hh * ww
        #: where each arena's part of ``work`` begins (the plate's one cut call reads them)
        self.part_offsets = np.array(offsets, np.int64)
        return parts

    def _segment_beside(self, parts: list[tuple[_ArenaState, np.ndarray, np.ndarray]],
                        flicker: bool, fidx: np.ndarray) -> None:
        """The NumPy path's segmentation of every arena of a chunk (its brightness gains, as
        :func:`~fishtrack.tracking.segment.arena_gains` measures them on its crop, the same
        values as ``all_arena_gains``; its fishness and blobs: NumPy and OpenCV, mostly outside
        the GIL) on the segmenting threads, each arena into its own part of ``work``
        (:meth:`_arena_parts` with ``own``), while this thread runs the arenas' steps in arena
        order as their blobs come (issue 15: on a 4-well 1 MP plate the main thread's fishness
        and outlines were about half its CPU, the serial chain of the tracking stage, while the
        decoding thread waited). The same blobs and steps, in the same order, as the loop."""
        bg, prm = self.bg, self.prm

        def segment(job):
            st, d, crop = job
            fishness_chunk(crop, st.model, bg.polarity, d, flicker=flicker)
            return find_blobs(d, st.model.threshold, prm.min_area)

        for (st, d, crop), blobs in zip(parts, self.segment_pool.map(segment, parts), strict=True):
            self._step(st, d, crop, blobs, fidx)

    def _step(self, st: _ArenaState, d: np.ndarray, crop: np.ndarray, blobs: ChunkBlobs,
              fidx: np.ndarray) -> None:
        """The layout's step on one arena's part of a chunk; keeps its last frame."""
        self.step(self, st, _ArenaChunk(d, crop, st.prev, blobs, fidx, _origin(st)))
        st.prev = np.array(crop[-1])

    def hand_on(self, *, final: bool = False) -> None:
        """Streaming: give the sink the rows no later step writes to (frames before the
        oldest still queued for its midline) once a spill's worth is ready, or all rows
        (``final``); they are counted for the keep decision and dropped from the store."""
        if self.sink is None:
            return
        store = self.store
        if final:
            upto = store.rows
        else:
            upto = getattr(self, "done_upto", store.base)
            if self.queue.pend:
                upto = min(upto, min(int(p.rows.min()) for p in self.queue.pend if len(p.rows)))
            if upto - store.base < self.spill_rows:
                return
        # the batch in flight in the measuring threads writes rows relative to store.base:
        # it must be written before rows are handed on and the store's window moves
        self.queue.wait()
        slots = np.arange(len(self.names))
        while store.base < upto:
            hi = min(upto, store.base + self.spill_rows)
            store.reserve(hi - 1)
            sl = slice(0, hi - store.base)
            self.counts.add(store.detected[sl], store.f["area_px"][sl])
            self.sink(_columns(store, store.base, hi, slots, self.names, release=False))
            store.drop(hi)


def _plate_arrays(models: list[ArenaModel]) -> tuple[np.ndarray, ...]:
    """The arenas' boxes (A, 4) int64, backgrounds (float32) and valid masks (uint8) one after
    the other, where each begins (the inputs of ``_kernels.fishness_arenas``) and which arenas
    it serves (A,) bool: those whose fishness is not smoothed (``ArenaModel.smooth``)."""
    sizes = [int(np.prod(m.shape)) for m in models]
    offs = np.zeros(len(models), np.int64)
    offs[1:] = np.cumsum(sizes)[:-1]
    return (np.array([m.bbox for m in models], np.int64),
            np.concatenate([np.ravel(m.bg).astype(np.float32) for m in models]),
            np.concatenate([np.ravel(m.valid).astype(np.uint8) for m in models]), offs,
            np.array([not (m.smooth > 0) for m in models], bool))


def _plate_gain_pixels(models: list[ArenaModel], width: int) -> tuple[np.ndarray, ...] | None:
    """The brightness gains' reference pixels of all arenas (the inputs of
    ``_kernels.gains_fishness_arenas``): their flat indices into a frame ``width`` px wide,
    their references as :func:`segment.all_arena_gains` divides by them (float32) and where
    each arena's end; None where an arena has none, or references that are not finite float32
    (``all_arena_gains`` then)."""
    refs = [np.maximum(m.gain_ref, 1.0) for m in models]
    if not all(len(r) and r.dtype == np.float32 and np.isfinite(r).all() for r in refs):
        return None
    pix = np.concatenate([(m.gain_yx[0] + m.bbox[1]) * width + m.gain_yx[1] + m.bbox[0]
                          for m in models]).astype(np.int64)
    return pix, np.concatenate(refs), np.cumsum([len(r) for r in refs], dtype=np.int64)


def _step_single(run: _Run, st: _ArenaState, ac: _ArenaChunk) -> None:
    """One free-swimming fish per arena: the fish-sized blob chosen per frame, queued for its
    midline."""
    chosen = _select_single(st, ac.blobs, ac.n, run.prm)
    t = np.flatnonzero(chosen >= 0)
    if t.size:
        pt = _cut(ac, chosen[t], run.prm.patch, group=GROUP * run.prm.length)
        run.queue.add(pt, _Pending(st, ac.fidx[t], _stop_level(st.model)))


def _step_plate(run: _Run, arenas: list[tuple], fidx: np.ndarray, *,
                frames: np.ndarray | None = None) -> None:
    """:func:`_step_single` of every arena of a plate's chunk at once (the compiled kernels in
    use; ``arenas``: (state, fishness, frames, blobs) of each): the blob chosen per arena and
    frame (:func:`select_single_arenas`, whole-array steps), then the patches of all arenas
    labelled together (:func:`_labels` on the arenas' blobs one after the other: one fill for
    every fish alone in its frame) and measured per arena; the same patches as :func:`_cut` of
    each arena, queued in the same order (all arenas as one part of the queue)."""
    prm, n = run.prm, len(fidx)
    p = prm.patch
    # the arenas' blob tables one after the other, frames numbered (arena, frame)
    bl = [a[3] for a in arenas]
    nb = [len(b) for b in bl]
    idx = np.repeat(np.arange(len(arenas), dtype=np.int64), nb)
    cat = ChunkBlobs(*(np.concatenate([getattr(b, f) for b in bl])
                       for f in ("frame", "x0", "y0", "w", "h", "area", "cx", "cy")),
                     contours=[c for b in bl for c in b.contours])
    chosen, lasts = select_single_arenas(idx, cat.frame, cat.area, cat.cx, cat.cy, n,
                                         [a[0].last for a in arenas], min_area=prm.min_area,
                                         max_area=prm.max_area)
    for (st, *_), last in zip(arenas, lasts, strict=True):
        st.last = last
    which, t = np.nonzero(chosen >= 0)  # (arena by arena, frames in order)
    counts = np.bincount(which, minlength=len(arenas))
    bounds = np.cumsum([0, *counts.tolist()]).tolist()
    ts = [t[bounds[i]:bounds[i + 1]] for i in range(len(arenas))]
    if bounds[-1]:
        cat.frame = idx * n + cat.frame
        sel = chosen[which, t] + np.cumsum([0, *nb[:-1]])[which]
        x0, y0 = _corners(_group_centres(cat, sel, GROUP * prm.length), p)
        shape = np.array([a[1].shape[1:] for a in arenas], np.int64)[which]
        mem, cen = _labels(cat, sel, cat.frame[sel].astype(np.int64), t, x0, y0, p, shape[:, 0],
                           shape[:, 1], group=GROUP * prm.length, ignore=None)
        origin = np.array([_origin(a[0]) for a in arenas], np.float64)[which]
        off = np.stack([x0 + origin[:, 0], y0 + origin[:, 1]], axis=1)
        m = len(sel)
        fp = np.zeros((m, p, p), np.uint8)
        motion = np.full(m, np.nan, np.float32)
        area = np.zeros(m, np.float32)
    pend = []
    if _plate_cut_in_one_call(run, arenas, frames):
        # every arena's patches, areas and motion from one compiled call (the same values as
        # cut_measure per arena); each arena's last frame a view of one copy of the frame
        if bounds[-1]:
            prev = run.plate_prev
            has_prev = np.array([a[0].prev is not None for a in arenas], bool)
            _KERNELS.cut_measure_arenas(run.work, run.part_offsets, run.cut_boxes, frames,
                                        prev if prev is not None else frames[0], has_prev,
                                        np.array(bounds, np.int64), t, x0, y0, mem, fp, area,
                                        motion)
        last = run.plate_prev = np.array(frames[-1])
        for i, (st, *_) in enumerate(arenas):
            if bounds[i + 1] > bounds[i]:
                pend.append(_Pending(st, fidx[ts[i]], _stop_level(st.model)))
            bx, by, bh, bw = run.cut_boxes[i].tolist()
            st.prev = last[by:by + bh, bx:bx + bw]
    else:
        measure = _KERNELS.cut_measure
        for i, (st, d, crop, _) in enumerate(arenas):
            lo, hi = bounds[i], bounds[i + 1]
            if hi > lo:
                sl = slice(lo, hi)
                prev = st.prev
                measure(d, crop, crop[0] if prev is None else prev, prev is not None, ts[i], x0[sl],
                        y0[sl], mem[sl], True, 0.0, fp[sl], area[sl], motion[sl])
                pend.append(_Pending(st, fidx[ts[i]], _stop_level(st.model)))
            st.prev = np.array(crop[-1])
        run.plate_prev = None
    if pend:
        run.queue.add(_Patches(fp, mem, off, cen, area, motion), *pend)


#: a plate's cut of all arenas in one compiled call (:func:`_step_plate`); off: one
#: ``cut_measure`` call per arena (the same values; the tests compare the two)
PLATE_CUT_ONE_CALL = True


def _plate_cut_in_one_call(run: _Run, arenas: list[tuple], frames: np.ndarray | None) -> bool:
    """Whether :func:`_step_plate` may cut all ``arenas`` with one ``cut_measure_arenas`` call:
    the frames C-contiguous, every arena's fishness in its own part of ``run.work`` (at
    ``run.part_offsets``) and its ``prev`` unset or a view of ``run.plate_prev`` (the last
    chunk was cut the same way); sets up ``run.cut_boxes`` once."""
    if not PLATE_CUT_ONE_CALL or frames is None or not frames.flags.c_contiguous:
        return False
    states = run.states
    if len(arenas) != len(states) or run.part_offsets is None:
        return False
    if run.cut_boxes is None:
        run.cut_boxes = np.array([(st.model.bbox[0], st.model.bbox[1], *st.model.shape)
                                  for st in states], np.int64)
    prev = run.plate_prev
    for (st, d, *_), s2 in zip(arenas, states, strict=True):
        if st is not s2 or d.base is not run.work or not (
                st.prev is None or (prev is not None and st.prev.base is prev)):
            return False
    return True


def _step_embedded(run: _Run, st: _ArenaState, ac: _ArenaChunk) -> None:
    """A head-embedded larva: its head and heading fixed from the first frames that show it,
    then every frame centred on that head (the fish is where the fishness exceeds the arena's
    threshold), queued for its tail."""
    if st.head is None and not _init_embedded(st, ac, run.prm):
        return
    t = np.arange(ac.n, dtype=np.int64)
    centre = np.tile(st.head, (ac.n, 1))
    pt = _cut(ac, t, run.prm.patch, centre=centre, own_threshold=st.model.threshold)
    head = st.head + np.array(ac.origin, np.float64)
    run.queue.add(pt, _Pending(st, ac.fidx, _stop_level(st.model), head))


def kept_rows(block: dict[str, np.ndarray] | pd.DataFrame, summary: dict) -> np.ndarray:
    """Which rows of a block a streaming sink got are fish kept (bool per row), from the
    run's ``summary`` (``kept_slots``, ``n_slots``)."""
    n = len(block["frame"])
    keep = np.zeros(int(summary["n_slots"]), bool)
    keep[np.asarray(summary["kept_slots"], np.int64)] = True
    return np.tile(keep, n // max(1, len(keep)))


def _spill_rows(n_slots: int, n_points: int) -> int:
    """Frames per block handed to a streaming sink: about :data:`_SPILL_BYTES` of store."""
    per_frame = n_slots * (4 * len(_Store._FLOAT) + 2 + 8 * n_points) + 8
    return int(max(64, _SPILL_BYTES // per_frame))


def _columns(store: _Store, lo: int, hi: int, slots: np.ndarray, names: list[tuple[str, str]],
             *, release: bool) -> dict[str, np.ndarray]:
    """Table columns of frames ``lo`` .. ``hi - 1`` for store slots ``slots``, frame by frame
    (the table's row order). With ``release`` each per-fish store array is dropped as soon as
    its column is made (the in-memory table: the peak stays near one copy of it)."""
    sl = slice(lo - store.base, hi - store.base)
    rows = hi - lo
    n_k = len(slots)
    f = store.f
    get = f.pop if release else f.__getitem__
    cols: dict[str, Any] = {}
    cols["frame"] = np.repeat(np.arange(lo, hi, dtype=np.int64), n_k)
    cols["time_s"] = np.repeat(store.time[sl], n_k)
    cols["arena"] = np.tile(np.array([names[i][0] for i in slots], dtype=object), rows)
    cols["fish"] = np.tile(np.array([names[i][1] for i in slots], dtype=object), rows)
    for k in ("x", "y", "heading", "tail_angle", "tail_curvature"):
        cols[k] = get(k)[sl, slots].ravel()
    cols["detected"] = store.detected[sl, slots].ravel()
    cols["area_px"] = get("area_px")[sl, slots].ravel()
    cols["id_uncertain"] = store.uncertain[sl, slots].ravel()
    cols["motion_energy"] = get("motion_energy")[sl, slots].ravel()
    cols["tail_motion"] = get("tail_motion")[sl, slots].ravel()
    tail = store.tail
    if release:
        store.tail = None
    n_points = tail.shape[2]
    for i in range(n_points):
        cols[f"tail_x_{i}"] = tail[sl, slots, i, 0].ravel()
    for i in range(n_points):
        cols[f"tail_y_{i}"] = tail[sl, slots, i, 1].ravel()
    for i, a in enumerate(_segment_angles(tail[sl][:, slots], cols["heading"], cols["tail_angle"])):
        cols[f"seg_angle_{i + 1}"] = a
    return cols


def _finish(run: _Run, damage: list) -> TrackResult:
    """The tracks table of a run (fish kept: detected often enough, fish-sized) and its
    summary. Streaming (a sink), the table is not built: the slots kept are in the
    summary (``kept_slots``) and are picked from the rows the sink got."""
    store, names, states, bg, prm = run.store, run.names, run.states, run.bg, run.prm
    cfg, layout, fish_per_arena = run.cfg, run.layout, run.fish_per_arena
    rows = store.rows
    min_presence = float(cfg.min_presence)
    # a fish: detected often enough, with a fish-sized blob (not specks of noise or glare)
    if run.sink is None:
        det = store.detected[:rows]
        rate = det.mean(axis=0) if rows else np.zeros(len(names))
        area_med = np.array(
            [np.nanmedian(store.f["area_px"][:rows, i]) if det[:, i].any() else np.nan
             for i in range(len(names))]
        )
        keep = (rate >= min_presence) & (area_med >= 0.3 * prm.area)
    else:
        rate = run.counts.detected / rows if rows else np.zeros(len(names))
        keep = (rate >= min_presence) & run.counts.median_at_least()
    warns: list[str] = []
    per_arena: dict[str, int] = {}
    empty: list[str] = []
    for st in states:
        k = int(sum(keep[s] for s in st.slots))
        per_arena[st.model.name] = k
        if k == 0:
            empty.append(st.model.name)
        elif k < st.n_fish:
            warns.append(f"arena {st.model.name}: found {k} of {st.n_fish} fish")
        for s in st.slots:
            if keep[s] and rate[s] < 0.9:
                warns.append(f"fish {names[s][1]}: detected in only {100 * rate[s]:.1f}% of frames")
    # every ROI of a head-embedded plate normally holds a larva: ROIs without one are more
    # likely larvae the tracker lost than empty ROIs (held-out 20611: three of six larvae never
    # tracked, and nothing said so; held-out 22088: the one ROI's larva, an empty result)
    lost = list(empty) if layout == "embedded" else []
    if lost:
        where = ("in its only ROI" if len(states) == 1 else f"in any of its {len(states)} ROIs"
                 if len(lost) == len(states) else f"in {len(lost)} of {len(states)} ROIs")
        others = "" if len(lost) == len(states) else " while the others hold one"
        warns.append(
            f"head-embedded layout: no larva found {where} ({', '.join(lost)}){others}; every "
            "ROI of an embedded plate normally holds a larva: check these ROIs in the video "
            "(an empty ROI, or a larva the tracker lost; docs/tracking.md, section 8)"
        )
    kept = np.flatnonzero(keep)
    import pandas as pd

    if run.sink is None:
        tracks = pd.DataFrame(_columns(store, 0, rows, kept, names, release=True), copy=False)
    else:
        tracks = pd.DataFrame(columns=track_columns(prm.n_points))
    summary = {
        "n_frames": int(rows),
        "fish_per_arena": per_arena,
        "detection_rate": {names[i][1]: float(rate[i]) for i in kept},
        "empty_arenas": empty,
        "embedded_empty_arenas": lost,
        "warnings": warns,
        "polarity": bg.polarity,
        "fish_length_px": float(prm.length),
        "fish_area_px": float(prm.area),
        "thresholds": {st.model.name: float(st.model.threshold) for st in states},
        "still_fish": [{"arena": st.model.name, **s} for st in states for s in st.model.still],
        "clutter": [{"arena": st.model.name, **s} for st in states for s in st.model.clutter],
        "layout": layout,
        "fish_expected_per_arena": int(fish_per_arena),
    }
    if run.sink is not None:
        summary["kept_slots"] = [int(i) for i in kept]
        summary["n_slots"] = len(names)
    return TrackResult(tracks=tracks, summary=summary, damage=list(damage), background=bg)
