"""Background model: per-pixel median of frames sampled over the whole video, still fish removed.

Two steps, because arenas are detected on the background image:

1. :func:`estimate_background` samples ``cfg.background_frames`` frames evenly over the whole
   video, takes the per-pixel median (:attr:`Background.image`, uint8, used for arena
   detection), and decides the polarity (dark fish on bright background or bright on dark).
2. :meth:`Background.refine` (called by :func:`~fishtrack.tracking.track_video` when the
   arenas are known) builds one :class:`ArenaModel` per arena: the *empty* arena background (a
   fish that sat still in most sampled frames is removed from the median, see below), the noise
   level, the segmentation threshold, and the size of the fish.

Still fish. A median over the whole video absorbs a fish that rests in one place for more than
half of the sampled frames (passivity *is* long stillness). Inside every arena we therefore look
for fish-shaped blobs in the median itself: the morphological closing (dark fish) or opening
(bright fish) with a kernel wider than the fish's body fills them, and ``closing - median`` shows
them. Each fish-sized, fish-shaped blob with fish-like contrast is then replaced:

- if some sampled frames show the spot *without* the fish (the fish left at some point), by the
  per-pixel median of those frames (the true empty background);
- otherwise (the fish never left) by a smooth fill from the surrounding background (normalised
  convolution) — unless, in a
  single-fish arena, a moving fish was seen elsewhere in the arena while the blob stayed put, in
  which case the blob is static clutter (dust, a scratch) and stays in the background.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import cv2
import numpy as np

from fishtrack._threads import compute_threads, trim_heap
from fishtrack.background_sample import (  # noqa: F401 - sample_indices, RUN_GOP, MIN_RUNS: re-exported
    MIN_RUNS,
    RUN_GOP,
    Sample,
    sample_indices,
    take_sample,
)
from fishtrack.background_sample import median as _median  # noqa: F401 - re-exported
from fishtrack.config import Layout, TrackingConfig
from fishtrack.errors import TrackingError
from fishtrack.robust import MAD_TO_SD, robust_sigma

__all__ = [
    "fishness_floor",
    "Background",
    "ArenaModel",
    "estimate_background",
    "sample_indices",
    "detect_polarity",
]

Polarity = Literal["dark", "bright"]

#: frames of the background sample kept for calibration (noise, threshold, fish size)
_N_CALIB = 16
#: pixels per arena used to estimate the per-frame brightness gain (flicker)
_N_GAIN_PX = 400
#: a static blob with most of its pixels within this distance (px) of the arena mask's edge
#: is the wall (or a speck on the rim), never inpainted as a still fish
WALL_BAND = 3.0
#: a still blob that never left is a fish only if 0.4 to this many fish lengths long: the
#: length comes from the moving fish, whose faint tail the noise cuts short (a small, faint
#: larva measures 0.4-0.7 of its length), while the median shows a still fish whole
STILL_MAX_LENGTH = 3.0
#: a first calibration's length under this fraction of the length measured once the still
#: fish's ghosts are replaced was cut short by the ghosts (moving larvae overlapping their own
#: ghost in the median): the still-fish step is taken again with the longer length. Spent
#: stress seed 22358 (21-px larvae at 649 fps): 6.2 px first, 16.2 px with the ghosts replaced
FIRST_SHORT = 0.8
#: smoothing (px) of the fishness whose outlines give the fish length (and of the fishness of
#: noisy videos)
_LENGTH_SIGMA = 1.0
#: fishness peaking below this fraction of the typical fish contrast is not a fish (a
#: reflection, a shadow, a well's rim in codec noise): a detection of a multi-fish arena
#: (tracker), a well's calibration blobs (:func:`_calibrate`)
FAINT = 0.35
#: a video is noisy when 5 noise sd exceed this fraction of the fish's contrast
_NOISY = 0.2
#: the fishness averaged along short lines (a Gaussian of this sigma, px, along the line and
#: ``_LENGTH_SIGMA`` across it; the strongest of ``_LINE_ANGLES`` directions) gives a third
#: fish length: the thin body of a small larva in noisy video stands out along its own
#: direction, where an isotropic smoothing of the same noise reduction would blur it away
_LINE_SIGMA = 3.0
_LINE_ANGLES = 12


# --------------------------------------------------------------------------------------------
# data


@dataclass
class ArenaModel:
    """Everything segmentation needs to know about one arena.

    Attributes
    ----------
    name
        Arena name (``"A1"`` ...).
    bbox
        ``(x0, y0, x1, y1)`` of the arena crop in full-frame pixels (x1, y1 exclusive).
    valid
        uint8 (h, w), 255 inside the arena (margins already trimmed), 0 outside; the crop's
        outer rows and columns are always 0 so that blobs of stacked frames never touch.
    bg
        float32 (h, w), the empty-arena background.
    gain_yx
        int (2, K) crop coordinates of the pixels used to estimate each frame's brightness gain.
    gain_ref
        float32 (K,) background values at those pixels.
    noise
        Robust standard deviation of the difference frame - background (grey levels).
    threshold
        Fishness (difference from background, grey levels, positive towards the fish polarity)
        above which a pixel is part of a fish.
    contrast
        Typical peak fishness of a fish in this arena (grey levels; nan if no fish was seen).
    smooth
        Sigma (px) of the Gaussian applied to the fishness before thresholding; 0 (none) unless
        the video is noisy (5 noise sd above 0.2 x the contrast), in which case ``noise`` and
        ``threshold`` refer to the smoothed fishness.
    floor
        Noise floor of the fishness smoothed as the midline tracer sees it (grey levels,
        :func:`fishness_floor`); set by the tracker, nan before.
    still
        Still fish removed from the median: dicts with ``x, y, area_px, method``.
    clutter
        Static fish-sized blobs kept in the background (never a fish): dicts with ``x, y,
        area_px``.
    """

    name: str
    bbox: tuple[int, int, int, int]
    valid: np.ndarray
    bg: np.ndarray
    gain_yx: np.ndarray
    gain_ref: np.ndarray
    noise: float = float("nan")
    threshold: float = float("nan")
    contrast: float = float("nan")
    smooth: float = 0.0
    floor: float = float("nan")
    still: list[dict] = field(default_factory=list)
    clutter: list[dict] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, int]:
        return self.valid.shape  # type: ignore[return-value]


@dataclass
class Background:
    """Background of one video.

    Attributes
    ----------
    image
        uint8 (H, W): per-pixel median of the sampled frames. Arena detection runs on this.
    polarity
        ``"dark"`` (dark fish on a bright background) or ``"bright"``.
    median
        float32 (H, W): the same median, unrounded.
    sample_indices
        Frame numbers of the sampled frames.
    calib
        uint8 (K, H, W): up to 32 of the sampled frames, kept for calibration.
    calib_indices
        Frame numbers of ``calib``.
    noise
        Robust standard deviation of frame - median over the whole frame (grey levels).
    polarity_evidence
        How the polarity was decided (``"config"``, ``"motion"``, ``"shape"`` or
        ``"brightness"``) with the numbers behind it.
    length_evidence
        How :attr:`fish_length_px` was measured (set by :meth:`refine`): the medians of each
        measure (px) before (``"first"``) and after (``"final"``) the still fish were removed,
        the still fish's lengths (``"still"``) and the ``"method"`` that gave the result.
    arenas
        The arenas of :meth:`refine` (empty before).
    models
        One :class:`ArenaModel` per arena, in arena order (empty before :meth:`refine`).
    fish_length_px, fish_area_px
        Typical fish length (head to visible tail end) and area, estimated from the calibration
        frames (or from the config), nan before :meth:`refine`.
    """

    image: np.ndarray
    polarity: Polarity
    median: np.ndarray
    sample_indices: np.ndarray
    calib: np.ndarray
    calib_indices: np.ndarray
    noise: float
    polarity_evidence: dict = field(default_factory=dict)
    length_evidence: dict = field(default_factory=dict)
    arenas: tuple = ()
    models: list[ArenaModel] = field(default_factory=list)
    fish_length_px: float = float("nan")
    fish_area_px: float = float("nan")

    @property
    def refined(self) -> bool:
        """True once :meth:`refine` has built the per-arena models."""
        return bool(self.models)

    @property
    def model_image(self) -> np.ndarray:
        """float32 (H, W): the median with still fish removed inside the arenas."""
        out = self.median.copy()
        for m in self.models:
            x0, y0, x1, y1 = m.bbox
            inside = m.valid > 0
            out[y0:y1, x0:x1][inside] = m.bg[inside]
        return out

    def refine(
        self,
        arenas: Sequence[Any],
        cfg: TrackingConfig | None = None,
        *,
        fish_per_arena: int = 1,
        layout: Layout = "wells",
    ) -> Background:
        """Per-arena background models (still fish removed), thresholds and fish size.

        Parameters
        ----------
        arenas
            Arenas (objects with ``name``, ``bbox`` and ``mask()`` as in
            :class:`fishtrack.arenas.Arena`).
        cfg
            Tracking settings (defaults if None).
        fish_per_arena
            Fish expected per arena; with 1, a static blob that stays put while a fish moves
            elsewhere in the same arena is clutter, not a fish.
        layout
            ``"embedded"`` always removes the (head-fixed) fish from the background.

        Returns
        -------
        Background
            A new object with :attr:`models`, :attr:`fish_length_px` and :attr:`fish_area_px`.
        """
        cfg = cfg or TrackingConfig()
        if not arenas:
            raise TrackingError("no arenas to track in")
        return _refine(self, list(arenas), cfg, fish_per_arena=fish_per_arena, layout=layout)


# --------------------------------------------------------------------------------------------
# sampling and median


def _gains(frames: np.ndarray, ref: np.ndarray, yx: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Per-frame brightness gain: median over reference pixels of frame / background."""
    vals = frames[:, yx[0], yx[1]].astype(np.float32)
    r = vals / np.maximum(ref[yx[0], yx[1]], 1.0)[None, :]
    return np.median(r, axis=1).astype(np.float32)


def _frames_sigma(x: np.ndarray) -> float:
    """:func:`~fishtrack.robust.robust_sigma` (float32); for a (K, n) array, the median over
    rows of each row's own, leaving out rows with no deviation at all (duplicated frames,
    common in some recordings, are identical to the median and would say there is no noise)."""
    x = np.asarray(x, dtype=np.float32)
    if x.size == 0:
        return float("nan")
    if x.ndim == 2 and x.shape[0] > 1:
        med = np.median(x, axis=1, keepdims=True)
        per = MAD_TO_SD * np.median(np.abs(x - med), axis=1)
        moving = per[np.abs(x - med).max(axis=1) > 0]
        return float(np.median(moving)) if moving.size else 0.0
    return robust_sigma(x)


def _noise_sd(x: np.ndarray) -> float:
    """Noise standard deviation of difference values that are mostly background: the larger of
    the robust MAD estimate and the mean absolute deviation of the 90 % of values closest to
    the median, scaled to a Gaussian's sd (x 1.52). The MAD is 0 for strongly compressed video
    where most pixels repeat the median exactly; leaving out the farthest 10 % keeps a fish
    that covers several per cent of the pixels (a head-embedded larva fills its ROI) out of
    the estimate."""
    x = np.asarray(x, dtype=np.float32).ravel()
    if x.size == 0:
        return float("nan")
    dev = np.abs(x - np.median(x))
    core = dev[dev <= np.percentile(dev, 90)]
    mean_abs = float(1.521 * core.mean()) if core.size else 0.0
    return max(_frames_sigma(x), mean_abs)


def detect_polarity(
    median: np.ndarray, calib: np.ndarray, *, noise: float | None = None
) -> tuple[Polarity, dict]:
    """Decide whether the fish are darker or brighter than the background.

    First from motion: pixels of sampled frames that differ strongly from the median are mostly
    darker (dark fish) or brighter. If nothing moves (every fish still, or one frame), from
    shape: the strongest small blobs of the median's black-hat vs top-hat. Last resort, from
    brightness: a bright background means dark fish.

    Returns
    -------
    (polarity, evidence)
    """
    h, w = median.shape
    step = max(1, int(np.sqrt(h * w / 200_000)))
    med = median[::step, ::step]
    ev: dict = {}
    if len(calib) >= 3:
        fr = calib[:, ::step, ::step]
        yx = _grid_pixels(med.shape, 2000)
        g = _gains(fr, med, yx)
        d = fr.astype(np.float32) - g[:, None, None] * med[None]
        sig = noise if noise is not None else _frames_sigma(d[:, yx[0], yx[1]])
        tau = max(6.0 * sig, 12.0)
        n_dark = int(np.count_nonzero(d < -tau))
        n_bright = int(np.count_nonzero(d > tau))
        ev = {"method": "motion", "dark_px": n_dark, "bright_px": n_bright, "tau": tau}
        if n_dark + n_bright >= 30:
            if n_dark >= 2 * n_bright:
                return "dark", ev
            if n_bright >= 2 * n_dark:
                return "bright", ev
    # shape: compare fish-sized dark and bright blobs in the median
    k = max(5, int(min(h, w) / 40) | 1)
    ker = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    m8 = np.clip(np.round(median), 0, 255).astype(np.uint8)
    black = cv2.morphologyEx(m8, cv2.MORPH_BLACKHAT, ker).astype(np.float32)
    white = cv2.morphologyEx(m8, cv2.MORPH_TOPHAT, ker).astype(np.float32)
    sb, sw = float(np.percentile(black, 99.9)), float(np.percentile(white, 99.9))
    ev.update({"shape_black": sb, "shape_white": sw})
    if max(sb, sw) > 15 and (sb > 1.5 * sw or sw > 1.5 * sb):
        ev["method"] = "shape"
        return ("dark" if sb > sw else "bright"), ev
    ev["method"] = "brightness"
    ev["mean"] = float(median.mean())
    return ("dark" if median.mean() >= 90 else "bright"), ev


def _grid_pixels(shape: tuple[int, int], n: int, mask: np.ndarray | None = None):
    """About ``n`` pixel coordinates spread over the image (inside ``mask`` if given)."""
    if mask is None:
        h, w = shape
        s = max(1, int(np.sqrt(h * w / max(n, 1))))
        yy, xx = np.mgrid[s // 2 : h : s, s // 2 : w : s]
        return yy.ravel(), xx.ravel()
    ys, xs = np.nonzero(mask)
    if len(ys) > n:
        pick = np.linspace(0, len(ys) - 1, n).astype(np.int64)
        ys, xs = ys[pick], xs[pick]
    return ys, xs


def estimate_background(
    source: Any,
    cfg: TrackingConfig | None = None,
    arenas: Sequence[Any] | None = None,
    *,
    fish_per_arena: int = 1,
    layout: Layout = "wells",
    sample: Sample | None = None,
) -> Background:
    """Estimate the background of a video.

    Parameters
    ----------
    source
        A :class:`fishtrack.io.video.VideoSource` (uses ``len`` and ``sample``) or a uint8
        array (N, H, W).
    cfg
        Tracking settings: ``background_frames`` and ``polarity`` are used.
    arenas
        If given, the result is already refined (:meth:`Background.refine`); otherwise call
        ``refine`` once the arenas are known (``track_video`` does it for you).
    fish_per_arena, layout
        Passed to :meth:`Background.refine` when ``arenas`` is given.
    sample
        The source's sample already taken (:func:`fishtrack.background_sample.take_sample`
        with ``cfg.background_frames``, e.g. in a thread by
        :class:`~fishtrack.background_sample.EarlySample`); taken here when None. Its frames
        are taken out of it (``sample.frames`` is None afterwards).

    Returns
    -------
    Background
    """
    cfg = cfg or TrackingConfig()
    if sample is None:
        sample = take_sample(source, cfg.background_frames)
    idx, frames, median = sample.indices, sample.frames, sample.median
    sample.frames = None  # taken: the 1 MP sample's ~60 MB go with the last line using them
    ci = np.unique(np.linspace(0, len(frames) - 1, min(_N_CALIB, len(frames))).astype(np.int64))
    calib = np.ascontiguousarray(frames[ci])
    del frames
    h, w = median.shape
    yx = _grid_pixels((h, w), 20000)
    if len(calib) >= 2:
        g = _gains(calib, median, yx)
        d = calib[:, yx[0], yx[1]].astype(np.float32) - g[:, None] * median[yx][None]
        noise = _noise_sd(d)
    else:
        noise = 2.0
    noise = float(max(noise, 0.5))
    if cfg.polarity == "auto":
        polarity, ev = detect_polarity(median, calib, noise=noise)
    else:
        polarity, ev = cfg.polarity, {"method": "config"}
    bg = Background(
        image=np.clip(np.round(median), 0, 255).astype(np.uint8),
        polarity=polarity,
        median=median,
        sample_indices=idx,
        calib=calib,
        calib_indices=idx[ci],
        noise=noise,
        polarity_evidence=ev,
    )
    trim_heap()
    if arenas is not None:
        bg = bg.refine(arenas, cfg, fish_per_arena=fish_per_arena, layout=layout)
    return bg


# --------------------------------------------------------------------------------------------
# per-arena refinement


def _fishness(
    frames: np.ndarray, bg: np.ndarray, gains: np.ndarray, polarity: Polarity, smooth: float = 0.0
):
    """float32 difference towards the fish polarity (positive = fish-like), smoothed with a
    Gaussian of sigma ``smooth`` px if > 0 (as segmentation does, see ``ArenaModel.smooth``)."""
    d = frames.astype(np.float32) - gains[:, None, None] * bg[None]
    d = -d if polarity == "dark" else d
    return _smooth_stack(d, smooth) if smooth > 0 else d


def _smooth_stack(f: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing (sigma px) of every image of a stack (K, h, w)."""
    return np.stack([cv2.GaussianBlur(x, (0, 0), sigma) for x in f]) if len(f) else f.copy()


@functools.cache
def _line_kernels(sigma: float, across: float, n: int) -> tuple[np.ndarray, ...]:
    """Normalised anisotropic Gaussians (``sigma`` along, ``across`` across) at ``n``
    directions over 180 degrees."""
    r = int(np.ceil(3.0 * sigma))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1].astype(np.float64)
    out = []
    for a in np.arange(n) * np.pi / n:
        u = xx * np.cos(a) + yy * np.sin(a)
        v = -xx * np.sin(a) + yy * np.cos(a)
        k = np.exp(-0.5 * (u / sigma) ** 2 - 0.5 * (v / across) ** 2)
        out.append((k / k.sum()).astype(np.float32))
    return tuple(out)


def _line_stack(f: np.ndarray) -> np.ndarray:
    """Every image of a stack (K, h, w) averaged along short lines: the strongest of the
    :func:`_line_kernels` responses per pixel (``_LINE_SIGMA``, ``_LINE_ANGLES``)."""
    ks = _line_kernels(_LINE_SIGMA, _LENGTH_SIGMA, _LINE_ANGLES)
    out = np.empty(f.shape, np.float32)
    for i, x in enumerate(f.astype(np.float32, copy=False)):
        best = cv2.filter2D(x, -1, ks[0], borderType=cv2.BORDER_REFLECT)
        for k in ks[1:]:
            np.maximum(best, cv2.filter2D(x, -1, k, borderType=cv2.BORDER_REFLECT), out=best)
        out[i] = best
    return out


def _arena_crop(arena: Any, shape: tuple[int, int]) -> tuple[tuple[int, int, int, int], np.ndarray]:
    h, w = shape
    x0, y0, x1, y1 = (int(v) for v in arena.bbox)
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if x1 - x0 < 3 or y1 - y0 < 3:
        raise TrackingError(f"arena {arena.name}: bounding box {arena.bbox} is outside the frame")
    m = np.asarray(arena.mask(), dtype=bool)
    ox, oy = x0 - int(arena.bbox[0]), y0 - int(arena.bbox[1])
    m = m[oy : oy + (y1 - y0), ox : ox + (x1 - x0)]
    valid = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
    valid[: m.shape[0], : m.shape[1]][m] = 255
    valid[0, :] = valid[-1, :] = 0
    valid[:, 0] = valid[:, -1] = 0
    return (x0, y0, x1, y1), valid


@dataclass
class _Blob:
    frame: int
    area: float
    cx: float
    cy: float
    length: float
    peak: float
    static: bool = False


def components(mask: np.ndarray) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """``cv2.connectedComponentsWithStats(mask, connectivity=8)`` of a uint8 mask, labelled
    on the box of its set pixels instead of the whole mask when that box leaves a clear
    row or column on every side: the same labels, statistics and centroids, bit for bit
    (tests/test_background_components.py). A calibration frame's mask is a few fish and
    specks in an arena crop, so OpenCV's scan of every pixel of the crop was most of each
    call (issue 15, fixed costs: the 4-well 1 MP run's refinement spent ~0.15 s of CPU in
    ~200 such calls before its first frame).

    The box's corner is taken at even coordinates (OpenCV's labelling scans 2 x 2 blocks:
    the same blocks, so the labels come in the same order); the statistics and centroids
    are moved back to the mask's coordinates from the integer sums OpenCV divides (a
    centroid is ``sum / area`` in float64, the sums exact), and the background's row (label
    0: the whole mask's box, its area and centroid) is computed from the whole mask."""
    h, w = mask.shape
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0 or rows[0] == 0 or rows[-1] == h - 1:
        return cv2.connectedComponentsWithStats(mask, connectivity=8)
    cols = np.flatnonzero(mask.any(axis=0))
    if cols[0] == 0 or cols[-1] == w - 1:
        return cv2.connectedComponentsWithStats(mask, connectivity=8)
    y0, x0 = int(rows[0]) & ~1, int(cols[0]) & ~1
    y1, x1 = int(rows[-1]) + 1, int(cols[-1]) + 1
    n, sub, stats, cent = cv2.connectedComponentsWithStats(mask[y0:y1, x0:x1], connectivity=8)
    lab = np.zeros((h, w), sub.dtype)
    lab[y0:y1, x0:x1] = sub
    area = stats[1:, cv2.CC_STAT_AREA].astype(np.float64)
    # OpenCV's integer sums of x and y per label, recovered exactly from sum / area (< 2**53)
    sx = np.rint(cent[1:, 0] * area) + area * x0
    sy = np.rint(cent[1:, 1] * area) + area * y0
    stats[1:, cv2.CC_STAT_LEFT] += x0
    stats[1:, cv2.CC_STAT_TOP] += y0
    cent[1:, 0] = sx / area
    cent[1:, 1] = sy / area
    # the background: every pixel not set; the box is the whole mask (a clear row and column
    # on every side), its sums those of all pixels less the labels'
    a0 = h * w - int(stats[1:, cv2.CC_STAT_AREA].sum())
    stats[0] = (0, 0, w, h, a0)
    cent[0, 0] = (float(h * (w * (w - 1) // 2)) - float(sx.sum())) / a0
    cent[0, 1] = (float(w * (h * (h - 1) // 2)) - float(sy.sum())) / a0
    return n, lab, stats, cent


def _blobs(
    mask: np.ndarray, fishness: np.ndarray, min_area: float, static: np.ndarray | None = None
) -> list[_Blob]:
    """Connected components of one frame's mask with area, centroid, length and peak; with
    ``static`` (:func:`_static_pixels`), whether most of a blob's pixels are static."""
    n, lab, stats, cent = components(mask)
    out = []
    for i in range(1, n):
        a = stats[i, cv2.CC_STAT_AREA]
        if a < min_area:
            continue
        x, y, bw, bh = stats[i, :4]
        sub = lab[y : y + bh, x : x + bw] == i
        ys, xs = np.nonzero(sub)
        pts = np.stack([xs, ys], 1).astype(np.float32)
        pts -= pts.mean(0)
        if len(pts) >= 3:
            ev, evec = np.linalg.eigh(_cov_xy(pts))
            proj = pts @ evec[:, -1]
            length = float(proj.max() - proj.min() + 1.0)
        else:
            length = float(max(bw, bh))
        peak = float(_percentile95(fishness[y : y + bh, x : x + bw][sub]))
        still = static is not None and _mostly(static[y : y + bh, x : x + bw], sub)
        out.append(_Blob(0, float(a), float(cent[i, 0]), float(cent[i, 1]), length, peak, still))
    return out


def _cov_xy(pts: np.ndarray) -> np.ndarray:
    """``np.cov(pts.T)`` of points ``pts`` (N, 2), N >= 2: NumPy's own operations in its
    order (the same values, ``tests/test_tracking_fastpaths.py``) without its argument
    handling, which costs ~2x the arithmetic on a blob (refinement calls this ~10^4 times on
    a 96-well plate)."""
    x = np.array(pts.T, ndmin=2, dtype=np.result_type(pts, np.float64))
    x -= x.mean(axis=1)[:, None]
    c = np.dot(x, x.T.conj())
    c *= np.true_divide(1, x.shape[1] - 1)
    return c.squeeze()


def _percentile95(v: np.ndarray) -> Any:
    """``np.percentile(v, 95)`` of a 1-D float32 array (NumPy's "linear" method: its virtual
    index, the two order statistics around it and its interpolation, in its precision; the
    same values, ``tests/test_tracking_fastpaths.py``), ~7x cheaper on a blob's pixels. Other
    arrays go to ``np.percentile``."""
    n = v.size
    if n == 0 or v.dtype != np.float32 or v.ndim != 1:
        return np.percentile(v, 95)
    q = np.true_divide(95, 100)
    vi = n * q + (1 + q * (1 - 1 - 1)) - 1  # NumPy's virtual index (alpha = beta = 1)
    if vi >= n - 1:
        return v.max()
    lo = int(math.floor(vi))
    g = float(vi - lo)
    part = np.partition(v, (lo, lo + 1))
    a, b = part[lo], part[lo + 1]
    d = b - a
    if g >= 0.5:  # NumPy's lerp: from the upper value where the weight is >= 0.5
        return b - d * np.float32(1.0 - g)
    return a + d * np.float32(g)


def _odd(x: float) -> int:
    k = int(round(x))
    return k + 1 if k % 2 == 0 else k


def _close_in_arena(img: np.ndarray, valid: np.ndarray, k: int, polarity: Polarity) -> np.ndarray:
    """Closing (dark fish) / opening (bright fish) of ``img`` that ignores pixels outside the arena."""
    ker = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    inside = valid > 0
    if polarity == "dark":
        a = np.where(inside, img, 0.0).astype(np.float32)  # neutral for max
        a = cv2.dilate(a, ker)
        a = np.where(inside, a, 1e6).astype(np.float32)  # neutral for min
        return cv2.erode(a, ker)
    a = np.where(inside, img, 1e6).astype(np.float32)
    a = cv2.erode(a, ker)
    a = np.where(inside, a, -1e6).astype(np.float32)
    return cv2.dilate(a, ker)


def _still_residual(m: ArenaModel, k: int, pol: Polarity) -> np.ndarray:
    """How much darker (dark fish) or brighter (bright fish) the arena's background ``m.bg`` is
    than its closing / opening with a ``k``-px disc (:func:`_close_in_arena`): what sits in the
    median narrower than the disc, e.g. a still fish; 0 outside the arena."""
    closed = _close_in_arena(m.bg, m.valid, k, pol)
    resid = (closed - m.bg) if pol == "dark" else (m.bg - closed)
    resid[m.valid <= 0] = 0
    return resid


def _refine(
    bg: Background,
    arenas: list,
    cfg: TrackingConfig,
    *,
    fish_per_arena: int,
    layout: Layout,
) -> Background:
    shape = bg.median.shape
    crops = [_arena_crop(a, shape) for a in arenas]

    # 1) provisional models from the plain median: noise, threshold, moving-fish size
    models: list[ArenaModel] = []
    for a, (bbox, valid) in zip(arenas, crops, strict=True):
        x0, y0, x1, y1 = bbox
        med = bg.median[y0:y1, x0:x1].copy()
        yx = _grid_pixels(valid.shape, _N_GAIN_PX, valid > 0)
        if len(yx[0]) < 10:
            raise TrackingError(f"arena {a.name}: fewer than 10 pixels inside the arena mask")
        models.append(
            ArenaModel(
                name=str(a.name),
                bbox=bbox,
                valid=valid,
                bg=med,
                gain_yx=np.stack(yx).astype(np.int64),
                gain_ref=med[yx].astype(np.float32),
            )
        )
    memo: dict = {}  # what the second calibration can take over (arenas left unchanged)
    sizes = _calibrate(bg, models, cfg, fish_per_arena=fish_per_arena, memo=memo, layout=layout)
    length = cfg.fish_length_px or sizes["length"]
    area = sizes["area"]
    evidence: dict = {"first": sizes["parts"]}

    # 2) still fish: fish-shaped blobs in the median itself
    plain = [m.bg.copy() for m in models] if cfg.remove_still_fish else []
    still_len, too_long, contrast = _still_step(bg, models, cfg, length=length, area=area,
                                                fish_per_arena=fish_per_arena, layout=layout)

    # 3) final calibration on the empty backgrounds (the arenas without a still fish as before)
    sizes = _calibrate(bg, models, cfg, fish_per_arena=fish_per_arena, memo=memo, layout=layout)
    if (cfg.remove_still_fish and not cfg.fish_length_px and np.isfinite(length)
            and np.isfinite(sizes["length"]) and length < FIRST_SHORT * sizes["length"]):
        # the first length was measured on moving fish overlapping their own ghosts: with the
        # ghosts replaced they measure far longer. Every decision of the still-fish step (the
        # closing's kernel, the sizes a still fish may have) is taken again from the plain
        # median with that length, as if the ghosts had been replaced before the first
        # calibration, and the lengths are measured again
        evidence["first_short"] = {"first": round(float(length), 1),
                                   "ghosts_replaced": round(float(sizes["length"]), 1)}
        length, area = float(sizes["length"]), sizes["area"]
        for m, med in zip(models, plain, strict=True):
            m.bg, m.still, m.clutter = med, [], []
        _calibrate(bg, models, cfg, fish_per_arena=fish_per_arena, memo=memo, layout=layout)
        still_len, too_long, contrast = _still_step(bg, models, cfg, length=length, area=area,
                                                    fish_per_arena=fish_per_arena, layout=layout)
        sizes = _calibrate(bg, models, cfg, fish_per_arena=fish_per_arena, memo=memo,
                           layout=layout)
    if cfg.remove_still_fish and not cfg.fish_length_px:
        again = _still_fish_again(bg, models, cfg, too_long, first=length, sizes=sizes,
                                  contrast=contrast, fish_per_arena=fish_per_arena, layout=layout)
        if again:
            still_len += again
            evidence["still_again"] = [round(v, 1) for v in again]
            sizes = _calibrate(bg, models, cfg, fish_per_arena=fish_per_arena, memo=memo,
                               layout=layout)
    length = cfg.fish_length_px or sizes["length"]
    evidence.update(final=sizes["parts"], still=[round(v, 1) for v in still_len],
                    method="config" if cfg.fish_length_px else "moving")
    if layout == "embedded" and still_len and not cfg.fish_length_px:
        # head-embedded larvae are whole in the median (tail at rest): measure them there
        length = float(np.median(still_len))
        evidence["method"] = "still"
    elif still_len and fish_per_arena == 1 and not cfg.fish_length_px:
        # a still larva alone in its well is whole in the median too, while the moving ones'
        # faint tails are cut short by the noise of single frames (a lower bound): the longer
        # measure wins (with several fish per arena, still fish can touch: not a length)
        if np.isfinite(length) and float(np.median(still_len)) > length:
            length = float(np.median(still_len))
            evidence["method"] = "still"
    area = sizes["area"]
    if not np.isfinite(length):
        # nothing fish-like anywhere: fall back to a tenth of the typical arena size
        span = np.median([min(m.shape) for m in models])
        length = float(max(10.0, span / 10.0))
        evidence["method"] = "arena"
    if not np.isfinite(area):
        area = float(max(cfg.min_area_px, length * length / 10.0))
    trim_heap()
    return dataclasses.replace(
        bg, arenas=tuple(arenas), models=models, fish_length_px=float(length),
        fish_area_px=float(area), length_evidence=evidence,
    )


def _still_step(
    bg: Background, models: list[ArenaModel], cfg: TrackingConfig, *, length: float,
    area: float, fish_per_arena: int, layout: Layout,
) -> tuple[list[float], list[list[float]], float]:
    """The still-fish step of :func:`_refine` (:func:`_remove_still_fish` in every arena, in
    place) with the fish's ``length`` and ``area``: (lengths of the fish inpainted, per arena
    the extents of still blobs left out as too long, the typical contrast used)."""
    still_len: list[float] = []
    too_long: list[list[float]] = [[] for _ in models]
    seen = [m.contrast for m in models if np.isfinite(m.contrast)]
    contrast = float(np.median(seen)) if seen else float("nan")
    if not cfg.remove_still_fish:
        return still_len, too_long, contrast

    def still(m: ArenaModel, long_ones: list[float]) -> list[float]:
        return _remove_still_fish(bg, m, cfg, length=length, area=area, contrast=contrast,
                                  fish_per_arena=fish_per_arena, layout=layout,
                                  too_long=long_ones)

    for found in per_arena_map(still, list(zip(models, too_long, strict=True))):
        still_len += found
    return still_len, too_long, contrast


def _still_fish_again(
    bg: Background, models: list[ArenaModel], cfg: TrackingConfig, too_long: list[list[float]],
    *, first: float, sizes: dict, contrast: float, fish_per_arena: int, layout: Layout,
) -> list[float]:
    """Judge again, with the length of the final calibration, the arenas whose only still blob
    was left in the background as longer than ``STILL_MAX_LENGTH`` x the first calibration's
    length ``first`` (``too_long``: per arena, those blobs' extents). Returns the lengths of the
    fish now inpainted (the arenas' backgrounds are changed in place).

    The first calibration measures the moving fish while their own ghosts still sit in the
    median: a larva that moves little (a high frame rate, a few seconds) overlaps its ghost in
    most calibration frames and only its head stands out. Spent stress seed 22358 (21-px dark
    larvae in two wells, MJPG, noise sd 9.1, tail 17 grey levels): the moving larva measured
    6.1 px before its ghost was replaced and 17.0 px after, so the still larva of the other
    well, 23 px long in the median, was more than 3 x 6.1 px and never found. Only arenas
    without a still fish, and only blobs that the new length admits, are looked at again."""
    length, area = sizes["length"], sizes["area"]
    if not (np.isfinite(first) and np.isfinite(length)) or length <= first:
        return []
    found: list[float] = []
    for m, blens in zip(models, too_long, strict=True):
        if m.still or not any(b <= STILL_MAX_LENGTH * length for b in blens):
            continue
        m.clutter = []  # judged again too (not listed twice)
        found += _remove_still_fish(bg, m, cfg, length=length, area=area, contrast=contrast,
                                    fish_per_arena=fish_per_arena, layout=layout)
    return found


def per_arena_map(fn: Any, args: list[tuple]) -> list:
    """``[fn(*a) for a in args]``, the calls shared by up to
    :func:`~fishtrack._threads.compute_threads` threads (each arena's refinement is its own
    NumPy and OpenCV work, mostly outside the GIL): the results in the order of ``args``, the
    values those of the loop (issue 15: the 4-well 1 MP run's ~0.35 s of refinement ran on one
    core while the other idled, before its first frame). An error is raised as the loop would
    raise the first one."""
    n = min(compute_threads(), len(args))
    if n <= 1:
        return [fn(*a) for a in args]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(n, thread_name_prefix="fishtrack-refine") as pool:
        return list(pool.map(lambda a: fn(*a), args))


def _calibrate(
    bg: Background, models: list[ArenaModel], cfg: TrackingConfig, *, fish_per_arena: int = 1,
    memo: dict | None = None, layout: Layout = "wells",
) -> dict:
    """Noise, threshold and contrast per arena; fish length and area over all arenas.

    Length is the larger of two medians of extents along the blobs' principal axes: of the
    raw blobs above 6 noise sd, and of fish outlines at a low threshold, which include the
    faint tail of noisy video: the fishness smoothed lightly (1 px; the tail of a real larva is
    a thin, pale line often fainter than the pixel noise of the raw difference, but several
    pixels wide), every region above 4 sd of the *smoothed* noise that holds a raw blob pixel
    (a fish, not a noise speck), its extent less the smoothing's 2 sigma. With one fish per
    arena only the largest region of each frame counts (the others are pieces of the same
    fish); with several, regions over 1.4 x the median area (touching fish) are left out.
    Area comes from blobs at each arena's final threshold (what segmentation will see).

    ``memo`` (a dict kept between the calls of one refinement): an arena whose background
    is the same as at an earlier call gets that call's blobs (its fish and, at the same
    threshold, their areas) instead of finding them again: the same values, as the blobs
    depend only on the background, the calibration frames and the settings.

    Wells: a well whose own blobs peak below ``FAINT`` x the typical contrast of the others
    saw no fish (an empty well's rim and codec noise, ~0.1 of the larvae's contrast): it takes
    the typical contrast (and so the others' threshold), and its blobs give no length or area.
    """
    lengths, sharp, lined, areas = [], [], [], []
    own_sizes = []
    per_arena = []
    memo = {} if memo is None else memo
    def arena_fish(i: int, m: ArenaModel) -> tuple:
        x0, y0, x1, y1 = m.bbox
        fr = bg.calib[:, y0:y1, x0:x1]
        yx = (m.gain_yx[0], m.gain_yx[1])
        g = _gains(fr, m.bg, yx)
        f = _fishness(fr, m.bg, g, bg.polarity)
        inside = m.valid > 0
        m.noise = max(_noise_sd(f[:, yx[0], yx[1]]), 0.5)
        t0 = max(6.0 * m.noise, 8.0)
        fs = _smooth_stack(f, _LENGTH_SIGMA)
        noise_s = max(_noise_sd(fs[:, yx[0], yx[1]]), 0.5)
        lo = max(4.0 * noise_s, 3.0)
        kept = memo.get(i)
        if kept is None or not np.array_equal(kept["bg"], m.bg):
            own_l, own_s = [], []
            peaks = _fish_blobs(f, fs, t0, lo, inside, cfg.min_area_px, fish_per_arena, own_l,
                                own_s)
            kept = memo[i] = {"bg": m.bg.copy(), "fish": (peaks, own_l, own_s), "areas": {}}
        peaks, own_l, own_s = kept["fish"]
        m.contrast = float(np.median(peaks)) if peaks else float("nan")
        return (own_l, own_s), (m, f, fs, noise_s, inside, (f, t0))

    for own, part in per_arena_map(arena_fish, list(enumerate(models))):
        own_sizes.append(own)
        per_arena.append(part)
    if not any(np.isfinite(m.contrast) for m in models):
        # no fish above 6 sd of one frame's noise anywhere (noisy video of faint larvae, e.g.
        # head-embedded larvae of 20 grey levels in noise sd 12, whose only motion is the
        # tail): look for them in the lightly smoothed fishness, 2-4 times less noisy. Its
        # peaks under-read the eyes a little (blurred), which only makes the choice of
        # smoothing below more likely
        for i, (m, f, fs, noise_s, inside, _seed) in enumerate(per_arena):
            peaks = _fish_blobs(fs, fs, max(6.0 * noise_s, 8.0), max(4.0 * noise_s, 3.0), inside,
                                cfg.min_area_px, fish_per_arena, lengths, None)
            m.contrast = float(np.median(peaks)) if peaks else float("nan")
            per_arena[i] = (m, f, fs, noise_s, inside, (fs, max(6.0 * noise_s, 8.0)))
    # fish look alike in every arena: arenas where no fish was seen (empty, or the fish sat
    # still in the median) borrow the typical contrast of the others
    seen = [m.contrast for m in models if np.isfinite(m.contrast)]
    typical = float(np.median(seen)) if seen else float("nan")
    for m, (own_l, own_s) in zip(models, own_sizes, strict=True):
        if layout == "wells" and m.contrast < FAINT * typical:
            m.contrast = float("nan")  # not a fish: the well is empty (or its fish sat still)
            continue
        lengths += own_l
        sharp += own_s
    for m, f, _fs, _noise_s, inside, (seed, t_seed) in per_arena:
        contrast = m.contrast if np.isfinite(m.contrast) else typical
        if np.isfinite(contrast) and 5.0 * m.noise > _NOISY * contrast:
            # noisy arenas only (the line averaging costs ~10 ms per megapixel-frame and
            # direction; in clean video the other two measures are not noise-limited)
            _line_lengths(f, seed, t_seed, m, inside, cfg.min_area_px, fish_per_arena, lined)
    def arena_areas(i: int, m: ArenaModel, f: np.ndarray, fs: np.ndarray, noise_s: float,
                    inside: np.ndarray) -> list[float]:
        contrast = m.contrast if np.isfinite(m.contrast) else typical
        # noisy video (high-speed cameras, small pixels): a threshold above the pixel noise
        # would cut the body, at a third of the eyes' contrast, into fragments; segment the
        # lightly smoothed fishness instead, whose noise is 2-4 times lower
        m.smooth = 0.0
        if np.isfinite(contrast) and 5.0 * m.noise > _NOISY * contrast:
            m.smooth = _LENGTH_SIGMA
            m.noise = noise_s
            f = fs
        if cfg.threshold is not None:
            m.threshold = float(cfg.threshold)
        else:
            t = max(5.0 * m.noise, 6.0)
            if np.isfinite(contrast):
                # eyes dominate the contrast; the body is ~1/3 of it, the tail less
                t = max(t, 0.12 * contrast)
                t = min(t, 0.5 * contrast)
            m.threshold = float(t)
        if not np.isfinite(m.contrast):
            return []
        known = memo[i]["areas"]  # (this call's background: set above)
        key = (m.threshold, m.smooth)
        if key not in known:
            own_a = known[key] = []
            for k in range(len(f)):
                mk = ((f[k] > m.threshold) & inside).astype(np.uint8)
                bl = _blobs(mk, f[k], cfg.min_area_px)
                if bl:
                    # every sizeable blob (not only the largest: in a chamber that is often two
                    # touching fish); fragments of one fish are much smaller and left out
                    big = max(b.area for b in bl)
                    own_a += [b.area for b in bl if b.area >= 0.4 * big]
        return known[key]

    for own_a in per_arena_map(arena_areas, [(i, *p[:5]) for i, p in enumerate(per_arena)]):
        areas += own_a
    length = float("nan")
    parts = {}
    # all are lower bounds of the visible length (a threshold can only cut a faint tail off):
    # the largest one wins (the smoothed outlines or the line-averaged ones in noisy video, the
    # raw blobs in clean video)
    for name, ll in (("outlines", lengths), ("blobs", sharp), ("lines", lined)):
        est = _median_length(ll, fish_per_arena)
        if np.isfinite(est):
            parts[name] = est
            length = est if not np.isfinite(length) else max(length, est)
    return {
        "length": length,
        "area": float(np.median(areas)) if areas else float("nan"),
        "parts": parts,
    }


def _median_length(frames: list[list[tuple[float, float, bool]]], fish_per_arena: int) -> float:
    """Median extent of the fish regions of every calibration frame (per frame: (length, area,
    static) of each region; nan if none).

    What moves: static regions (an inpainted still fish, a shadow taken for one) count only
    if nothing moves; still fish are measured in the median instead. Touching fish are left
    out: regions over 1.4 x one fish's area, the median area of the regions of the frames
    that show the most regions, up to ``fish_per_arena`` (the fish apart). Two larvae of a
    chamber that swam together in 11 of 16 calibration frames gave the median area (and
    length) of the pair: 51.5 px for 31-px larvae (tuning seed 5 drawn as a chamber of two,
    noise sd 11.4)."""
    every = [fr for fr in frames if fr]
    moving = [[c for c in fr if not c[2]] for fr in frames]
    if any(moving):
        frames = moving
    frames = [fr for fr in frames if fr]
    if not frames:
        return float("nan")
    la = np.array([c for fr in frames for c in fr], dtype=float)
    if fish_per_arena == 1:
        return float(np.median(la[:, 0]))
    # one fish's area from the frames that show the most regions, still fish's included: a
    # larva holding its place beside a moving one is one of the fish apart (counted without
    # it, every frame showed one region and the pair touching in 11 of 16 was taken for one
    # fish: chamber of tuning seed 7, 1.38 of the length)
    counts = np.array([len(fr) for fr in every])
    most = min(fish_per_arena, int(counts.max()))
    apart = [c[1] for fr, n in zip(every, counts, strict=True) if n >= most for c in fr]
    single = la[:, 1] <= 1.4 * float(np.median(apart))
    return float(np.median(la[single, 0]))


def _fish_blobs(
    f: np.ndarray, fs: np.ndarray, t0: float, lo: float, inside: np.ndarray, min_area: float,
    fish_per_arena: int, lengths: list, sharp: list | None,
) -> list[float]:
    """The fish of every calibration frame for :func:`_calibrate`: blobs of ``f`` above ``t0``
    (the largest one's peak is returned per frame), the outlines of ``fs > lo`` holding one of
    their pixels (appended to ``lengths``) and, unless ``sharp`` is None, the blobs' own
    (length, area) appended to ``sharp``."""
    peaks = []
    raw = (f > t0) & inside[None]
    low = fs > lo
    still_raw, still_low = _static_pixels(raw), _static_pixels(low & inside[None])
    for k in range(len(f)):
        mk = raw[k].astype(np.uint8)
        bl = _blobs(mk, f[k], min_area, still_raw)
        if not bl:
            continue
        b = max(bl, key=lambda b: b.area)
        peaks.append(b.peak)
        outl = _outline_lengths(low[k], inside, mk, min_area, static=still_low)
        own = [(c.length, c.area, c.static) for c in bl]
        if fish_per_arena == 1:
            lengths.append([max(_moving(outl), key=lambda c: c[1])] if outl else [])
            if sharp is not None:
                sharp.append([max(_moving(own), key=lambda c: c[1])])
        else:
            lengths.append(outl)
            if sharp is not None:
                sharp.append(_largest(own))
    return peaks


def _line_lengths(
    f: np.ndarray, seed: np.ndarray, t_seed: float, m: ArenaModel, inside: np.ndarray,
    min_area: float, fish_per_arena: int, lined: list,
) -> None:
    """The fish outlines of the line-averaged fishness (:func:`_line_stack` of ``f``) above its
    median + 4 robust sd at the arena's reference pixels, holding a pixel of ``seed > t_seed``
    (the blobs of :func:`_fish_blobs`): (length, area) appended to ``lined`` (the largest per
    frame with one fish per arena)."""
    fl = _line_stack(f)
    rl = fl[:, m.gain_yx[0], m.gain_yx[1]]
    low = fl > float(np.median(rl)) + 4.0 * max(_noise_sd(rl), 0.5)
    still = _static_pixels(low & inside[None])
    for k in range(len(f)):
        mk = ((seed[k] > t_seed) & inside).astype(np.uint8)
        ol = _outline_lengths(low[k], inside, mk, min_area, _LINE_SIGMA, static=still)
        lined.append([max(_moving(ol), key=lambda c: c[1])] if ol and fish_per_arena == 1 else ol)


def _outline_lengths(
    low: np.ndarray, inside: np.ndarray, seed: np.ndarray, min_area: float,
    sigma: float = _LENGTH_SIGMA, static: np.ndarray | None = None,
) -> list[tuple[float, float, bool]]:
    """(extent along the principal axis, area, static) of the regions of ``low & inside`` that
    contain a ``seed`` pixel and are at least ``min_area`` px; only regions of at least 0.4 x
    the largest one's area (fish, not fragments; static regions, mostly on ``static`` pixels
    of :func:`_static_pixels`, and the others compared apart). ``sigma``: the smoothing along
    the fish that made ``low`` (its outline is that much longer at either end)."""
    n, lab, stats, _ = components((low & inside).astype(np.uint8))
    hit = np.unique(lab[(seed > 0) & (lab > 0)])
    hit = hit[stats[hit, cv2.CC_STAT_AREA] >= min_area]
    out = []
    for i in hit:
        x, y, bw, bh = stats[i, :4]
        sub = lab[y : y + bh, x : x + bw] == i
        still = static is not None and _mostly(static[y : y + bh, x : x + bw], sub)
        # the smoothing lengthens the outline by about its sigma at either end
        out.append((_extent(sub) - 2.0 * sigma, float(stats[i, cv2.CC_STAT_AREA]), still))
    return _largest(out)


def _static_pixels(masks: np.ndarray) -> np.ndarray | None:
    """Pixels of a stack of calibration-frame masks (K, h, w) set in every frame but at most
    one (None with fewer than 4 frames). Nothing that moves covers a pixel that often against
    the median (it would be in the median); a still fish inpainted from the median, or a
    static shadow taken for one, shows in every frame against the background that lacks it.
    Its extent is measured in the median (the still fish's lengths), not as a moving fish:
    a dish rim's shadow, 230 px long, inpainted as a still larva in a chamber of three
    100-px larvae, was the largest region of every calibration frame and made the fish
    length 230 px (threefish_trial2_1000fps.mp4)."""
    k = len(masks)
    if k < 4:
        return None
    return np.count_nonzero(masks, axis=0) >= k - 1


def _mostly(static: np.ndarray, sub: np.ndarray) -> bool:
    """True if at least half of the pixels ``sub`` (a region's mask) are ``static``."""
    return bool(2 * np.count_nonzero(static & sub) >= np.count_nonzero(sub))


def _moving(items: list) -> list:
    """The items (tuples whose last element is True for a static region) of moving regions;
    all of them if none moves."""
    return [c for c in items if not c[-1]] or items


def _largest(items: list) -> list:
    """The items (length, area, static) of at least 0.4 x the largest area of their kind
    (moving or static): fish, not fragments."""
    out = []
    for kind in (False, True):
        same = [c for c in items if c[-1] == kind]
        if same:
            big = max(c[1] for c in same)
            out += [c for c in same if c[1] >= 0.4 * big]
    return out


def _remove_still_fish(
    bg: Background,
    m: ArenaModel,
    cfg: TrackingConfig,
    *,
    length: float,
    area: float,
    contrast: float,
    fish_per_arena: int,
    layout: Layout,
    too_long: list[float] | None = None,
) -> list[float]:
    """Remove fish that sat still in the median from the arena background (in place).

    ``length``, ``area`` and ``contrast`` describe the moving fish seen in the calibration
    frames (nan if none moved anywhere). ``too_long`` (a list, optional) collects the extents
    (px) of still blobs left in the background only because they were longer than
    ``STILL_MAX_LENGTH`` x ``length`` (:func:`_still_fish_again`).

    Returns the lengths (px) of the fish removed by inpainting (used for head-embedded larvae,
    which never leave the median).
    """
    pol = bg.polarity
    inside = m.valid > 0
    h, w = m.shape
    if np.isfinite(length):
        k = _odd(np.clip(0.6 * length, 7, max(7, min(h, w) // 2)))
    else:
        k = _odd(np.clip(min(h, w) / 5.0, 7, 61))
    resid = _still_residual(m, k, pol)
    # the median of the sample is far less noisy than one frame (sd ~1.25 sigma / sqrt(n) for
    # n independent moments of the recording): in noisy video (sd 10-12) a still larva of 60
    # grey levels is plain in the median but below 6 sd of a frame's noise. The segmentation
    # threshold counts only once a moving fish has given the contrast (before, it is 5 frame
    # noise sd); the residual's own spread (below) covers the background's texture
    if cfg.threshold is not None:
        thr = cfg.threshold
    else:
        thr = max(6.0 * _median_noise(m.noise, bg.sample_indices), 8.0)
        if np.isfinite(m.contrast):
            thr = max(thr, m.threshold)
    # the closing also lifts the background's own texture: thresholds above its spread, with
    # hysteresis so that a faint tail attached to a dark head is removed with it
    rv = resid[inside]
    med_r = float(np.median(rv))
    mad_r = float(1.4826 * np.median(np.abs(rv - med_r)))
    hi = max(thr, med_r + 8.0 * mad_r)
    lo = max(0.5 * hi, med_r + 3.0 * mad_r)
    cand = (resid > lo).astype(np.uint8)
    edge = np.ones((h, w), bool)  # the band within 3 px of the crop's edge
    lines = np.zeros((h, w), bool)
    edge[3:-3, 3:-3] = False
    if layout == "embedded":
        # a tight ROI's edge is often a drawn frame line (static, dark): it must not join the
        # larva's blob, or the line would be filled in with it and, smeared into the
        # background, show as fishness along the whole edge in every frame (the larva's own
        # pixels there are still filled in: the blob is dilated by 2 px before filling)
        cand[edge] = 0
        # nor the lines of a drawn frame lying inside the ROI (when the ROI found is larger
        # than the drawn frame): against the median's low noise they are candidates too, and a
        # snout touching one joined the larva to the whole frame
        lines = _frame_lines(cand, resid)
        cand[lines] = 0
    n, lab, stats, cent = cv2.connectedComponentsWithStats(cand, connectivity=8)
    if n <= 1:
        return []
    top = np.zeros(n)
    np.maximum.at(top, lab[cand > 0], resid[cand > 0])
    if layout == "embedded":
        max_area = 0.5 * float(inside.sum())
    else:
        max_area = 2.0 * cfg.max_area_px if cfg.max_area_px else 0.15 * float(inside.sum())
        if np.isfinite(area):
            # the area measured before the still fish are removed can be far too small: a
            # still bright larva's flicker residue (compression flattens the lamp's flicker on
            # a dark background but not on the larva, so the gain misses it) gives its well
            # blobs of a few pixels, and their median was 103 px for 85-px larvae of ~590 px
            # (tuning seed 286 at 963 fps, flicker 4.2 %: the still larva was never found, as
            # in held-out 10032). A larva's area is about a tenth of its length squared
            floor = 0.1 * length * length if np.isfinite(length) else 0.0
            max_area = min(max_area, 6.0 * max(area, floor))
    x0, y0, x1, y1 = m.bbox
    fr = bg.calib[:, y0:y1, x0:x1]
    yx = (m.gain_yx[0], m.gain_yx[1])
    g = _gains(fr, m.bg, yx)
    f = _fishness(fr, m.bg, g, pol, m.smooth)  # positive where a frame shows a fish not in the median
    wall_dist = cv2.distanceTransform(inside.astype(np.uint8), cv2.DIST_L2, 3)
    # a ghost that some sampled frames show empty is replaced by those frames whatever its
    # size (a large or slow fish, or a fish whose size was underestimated because its ghost
    # cut it in two in the calibration frames): only inpainting needs a plausible size
    max_sampled = 0.5 * float(inside.sum())
    comps = []
    for i in range(1, n):
        a = float(stats[i, cv2.CC_STAT_AREA])
        if a < cfg.min_area_px or a > max(max_area, max_sampled) or top[i] <= hi:
            continue
        comps.append((i, a, lab == i))
    if layout == "embedded" and comps:
        # the larva: the candidate with the most fishness in all (dark eyes and a body), not
        # a speck of dust as dark as the eyes nor a line along the ROI's edge (a blob lying
        # mostly within 3 px of it; a larva whose snout or tail touches a tight ROI's edge
        # stays a candidate)
        inner = [c for c in comps
                 if np.count_nonzero(c[2] & edge) <= 0.3 * c[1] and not _frame_line(c[2])] or comps
        comps = [max(inner, key=lambda c: float(resid[c[2]].sum()))]
    lengths: list[float] = []
    for i, a, blob in comps:
        # keep the fish, not the faint shading it sits in (an agarose drop, a vignette): pixels
        # under a tenth of the core's contrast are below any segmentation threshold anyway
        core = (blob & (resid > 0.1 * top[i])).astype(np.uint8)
        nc, cl = cv2.connectedComponents(core, connectivity=8)
        blob = cl == cl.flat[int(np.argmax(np.where(blob, resid, -np.inf)))]
        region = lab == i  # the first look's candidate blob (above the low level)
        if layout == "embedded" and nc > 2:
            # the ROI's larva: its pieces above the candidate threshold stay with it. A bright
            # larva's head glows (the closing keeps part of the glow and the head in it), so
            # the neck's residual can dip under a tenth of the bright eyes' and the core split
            # eyes from body: only the eyes were filled in and the body, left in the
            # background, hid the larva in every frame (tuning seed 807 drawn at 139 px)
            peak = np.zeros(nc)
            np.maximum.at(peak, cl[core > 0], resid[core > 0])
            big = np.bincount(cl[core > 0], minlength=nc) >= cfg.min_area_px
            keep = (peak > hi) & big
            keep[0] = False
            blob = blob | keep[cl]
        apart = np.zeros_like(blob)
        if layout == "embedded":
            blob, apart = _whole_larva(blob, m, resid, pol, k, hi, lo, ~(edge | lines), region,
                                       cfg.min_area_px)
        a = float(blob.sum())
        cx, cy = float(cent[i, 0]) + x0, float(cent[i, 1]) + y0
        if layout == "embedded":  # the larva made whole, not the first look's piece of it
            ys, xs = np.nonzero(blob)
            cx, cy = float(xs.mean()) + x0, float(ys.mean()) + y0
        rec = {"x": cx, "y": cy, "area_px": a}
        # a drawn frame's lines stay as they are (not filled in, nor filling in the larva),
        # and so do specks cut from an embedded larva (:func:`_whole_larva`)
        grow = _grown(blob, inside & ~lines & ~apart)
        if layout != "embedded" and len(fr) >= 2:
            # pixels that some sampled frames show empty (the fish left): their true background
            # is the median of those frames
            ghost = -f[:, grow]  # (K, n_px): how much brighter than the median
            depth = np.maximum(resid[grow], lo)
            absent = ghost > 0.5 * depth[None, :]
            enough = absent.sum(axis=0) >= 2
            if enough[blob[grow]].mean() >= 0.5:
                vals = np.where(absent, fr[:, grow].astype(np.float32) / g[:, None], np.nan)
                px = np.flatnonzero(enough)
                newv = m.bg[grow]
                newv[px] = np.nanmedian(vals[:, px], axis=0)
                m.bg[grow] = newv
                never = np.zeros_like(blob)
                never[grow] = ~enough
                ghost_px = 0
                blen = _extent(blob)
                if a <= max_area and not (np.isfinite(length) and blen > STILL_MAX_LENGTH * length):
                    # a fish's ghost: only in a fish-sized spot (as for inpainting), and not in
                    # the band along the wall (its shading is never shown empty either). A
                    # well's broad shading, 4,224 px (~9 fish areas), was filled in otherwise
                    never &= blob & (wall_dist > WALL_BAND)
                    ghost_px = _fill_ghost(m, never, inside & ~lines, pol, lo, blen)
                m.still.append({**rec, "method": "sampled", "ghost_px": ghost_px})
                continue
        # never left: a fish only if fish-sized and fish-shaped, with the dark core of the eyes
        # (meniscus arcs, shading and dust are paler), and not clutter beside a moving fish
        if layout == "wells" and np.isfinite(contrast):
            # a still larva whose head lies at the well's shaded rim can join the rim's whole
            # crescent (held-out 21310, 2026-12-07: a 46.7-px larva's head at the rim, one blob of
            # 1,932 px, too large and mostly in the wall band, so the larva was never found): the
            # part away from the band is judged on its own when it holds the fish's contrast
            cut = _off_wall(blob, resid, wall_dist)
            if cut.sum() < blob.sum() and float(resid[cut].max()) >= 0.5 * contrast:
                blob, a = cut, float(cut.sum())
                grow = _grown(blob, inside & ~lines)
                rec["area_px"] = a
        if a > max_area:
            continue
        blen = _extent(blob)
        if layout != "embedded" and float((wall_dist[blob] <= WALL_BAND).mean()) > 0.5:
            # mostly in the band along the arena's edge: the wall, its meniscus or a speck on
            # the rim (a fish resting at the wall touches it, it does not lie within it)
            m.clutter.append(rec)
            continue
        method = "inpainted"
        if layout != "embedded":
            if np.isfinite(contrast) and top[i] < 0.5 * contrast:
                continue
            # the still larva, not the stretch of the well's shaded rim it may have joined
            # (wells only: a chamber's wall is left as it was)
            cut = _off_wall(blob, resid, wall_dist) if layout == "wells" else blob
            if cut.sum() < blob.sum():
                blob, grow, blen = cut, _grown(cut, inside & ~lines), _extent(cut)
                rec["area_px"] = float(cut.sum())
            # the still head of a fish whose tail moves (a larva holding its place while it
            # struggles): moving fishness right next to the blob in many sampled frames
            attached = fish_per_arena == 1 and _moving_part_attached(f, m, blob, cfg, length,
                                                                     area)
            if attached:
                method = "inpainted (still head, moving tail)"
            else:
                if np.isfinite(length) and not (0.4 * length <= blen <= STILL_MAX_LENGTH * length):
                    if too_long is not None and blen > STILL_MAX_LENGTH * length:
                        too_long.append(blen)
                    continue
                if _moving_fish_elsewhere(f, m, blob, cfg, fish_per_arena):
                    m.clutter.append(rec)
                    continue
        m.bg[grow] = _fill_hole(m.bg, grow, inside & ~lines, blen)[grow]
        m.still.append({**rec, "method": method})
        if method == "inpainted":
            lengths.append(blen)
    return lengths


def _whole_larva(
    blob: np.ndarray, m: ArenaModel, resid: np.ndarray, pol: Polarity, k: int, hi: float,
    lo: float, ok: np.ndarray, region: np.ndarray, min_area: int,
) -> tuple[np.ndarray, np.ndarray]:
    """A head-embedded ROI's still larva (``blob``, found on the closing's residual ``resid``
    with a kernel of ``k`` px and the hysteresis levels ``hi`` and ``lo``) made whole, and the
    pieces cut from it: (larva, cut).

    The kernel is 0.6 of the *moving* fish's length, and only an embedded larva's tail moves:
    it can be a third of the larva (17.6 px for 52-px larvae, spent held-out 20611), narrower
    than the dark mass of the eyes and the head, whose middle the closing then leaves in the
    median. The residual dips under the low level at the neck, and the larva found was its head
    alone (148 of ~330 px: the tail, left in the background, hid the larva in every frame). So
    the ROI is closed again with a kernel a quarter of its short side (wider than any larva's
    head that fits in it), and the candidates (``resid`` above ``lo``, within ``ok``) joined to
    the larva through the pixels that this wider closing lifts by more than ``hi`` over the
    first are added to it (trimmed to a tenth of its peak, as the first look's larva is). Not
    its whole residual: it also lifts the faint shading the larva sits in (an agarose drop)
    by 6-10 grey levels, which joined specks beside the head to the larva (tuning seed 52,
    head 0.13 -> 1.04 px at 40 px). Then pieces joined to the larva only through a deep saddle
    (:func:`_saddle_cut`) are cut off: a dust speck touching an eye through one pixel of its
    blurred halo was filled in with the larva and showed beside its eyes in every frame,
    pulling the fixed head 5 px and the heading 36 degrees onto it (20611's larva B3, never
    tracked). The pieces of the core kept with the larva for their own peak (a bright
    larva's body split from its glowing eyes at the neck) touch the larva only through
    ``region`` (the first look's candidate blob, above ``lo``), outside the blob, where no
    saddle was looked for: they are judged first, on their saddles through it. A dust speck
    30 px ahead of a 199.5-px larva's snout was one (peak 90, joined through the head's shading
    at 0.152-0.154 of it), and the still larva, which gives an embedded recording's length, measured
    238 px (spent held-out 22088; 208.6 px now)."""
    h, w = blob.shape
    k2 = _odd(max(7.0, min(h, w) / 4.0))
    both = resid
    if k2 > k:
        r2 = _still_residual(m, k2, pol)
        both = np.maximum(resid, r2)
    # the pieces kept apart from the larva's for their own peak are judged first, on their
    # saddles through the first look's candidate blob (all that joins them to the larva)
    # (finer levels: 32 went down in steps of ~5 grey levels, a tenth of such a piece's peak)
    blob, apart = _saddle_cut(blob, both, levels=128, within=region, ratio=SADDLE_APART)
    first = blob
    if k2 > k:
        cand = (((resid > lo) | (r2 - resid > hi)) & ok & ~apart).astype(np.uint8)
        _, lab = cv2.connectedComponents(cand, connectivity=8)
        hit = np.unique(lab[blob & (cand > 0)])
        more = np.isin(lab, hit[hit > 0]) & (both > 0.1 * float(resid[blob].max()))
        blob = blob | more
    blob, cut = _saddle_cut(blob, both)
    if SPECK_ANCHOR and cut.any() and float(both[cut].sum()) > float(both[blob].sum()):
        # the strongest pixel was a speck darker than the larva's eyes, and the larva was cut
        # from it (spent seed 24678, A1: 91 px kept, the larva's 516 cut, so its head stayed
        # in the background and the fixed head went onto the speck 16 px away): measured again
        # from the strongest pixel of the heaviest piece cut
        n_c, lab_c = cv2.connectedComponents(cut.astype(np.uint8), connectivity=8)
        mass = np.bincount(lab_c[cut], weights=both[cut].astype(np.float64), minlength=n_c)
        heavy = lab_c == int(np.argmax(mass[1:]) + 1)
        ay, ax = np.unravel_index(int(np.argmax(np.where(heavy, both, -np.inf))), both.shape)
        whole = blob | cut
        blob2, cut2 = _saddle_cut(whole, both, anchor=(int(ay), int(ax)))
        if float(both[blob2].sum()) > float(both[blob].sum()):
            blob, cut = blob2, cut2
    if not apart.any():
        return blob, cut
    # and, with a piece cut apart, what is left apart from the larva's piece only stays as a
    # piece of the first look's larva would (at least ``min_area``, holding some of it): not
    # what the wider closing lifted round the speck cut off (pieces of 1-20 px 30 px ahead of
    # 22088's snout, +20 to +30 px of length)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(blob.astype(np.uint8), connectivity=8)
    held = np.zeros(n, bool)
    held[lab[first]] = True
    crumb = (stats[:, cv2.CC_STAT_AREA] < min_area) | ~held
    crumb[0] = False
    crumb[lab.flat[int(np.argmax(np.where(blob, both, -np.inf)))]] = False
    return blob & ~crumb[lab], cut | apart


#: a piece of a still larva's blob joined to it where the closing's residual dips under this
#: fraction of the piece's own peak is something else touching it: a dust speck's blurred halo
#: meeting an eye's joined a speck of ~120 grey levels at 0.10-0.12 of it (20611's B3, on the
#: larger of the two closings' residuals; one pixel of 9 on the first). A larva's own parts
#: join higher: its eyes through the head's tissue, at least the body's darkness, which is at
#: least 0.21 of the eyes' in the simulator's drawings (body opacity 0.2-0.45, eyes 0.6-0.95)
SADDLE = 0.15
#: an embedded larva's saddle cut that keeps less of the residual than it cuts (its strongest
#: pixel on a speck darker than the eyes) is made again from the heaviest piece cut
SPECK_ANCHOR = True
#: the same for a piece apart from the larva's within its blob, joined to it only through the
#: first look's candidate blob (:func:`_whole_larva`): a speck ahead of a long larva's snout
#: joined its head's shading at 0.152-0.154 of its peak (spent held-out 22088, two encodings);
#: the body of a bright larva split from its glowing eyes at the neck joins at 0.195-0.258 of
#: its own (the glow drawings of tests/test_tracking_still_fish.py)
SADDLE_APART = 0.175


def _saddle_cut(blob: np.ndarray, resid: np.ndarray, levels: int = 32,
                within: np.ndarray | None = None, ratio: float = SADDLE,
                anchor: tuple[int, int] | None = None,
                ) -> tuple[np.ndarray, np.ndarray]:
    """``blob`` without the pieces joined to its strongest pixel only through a saddle of
    ``resid`` under ``ratio`` of the piece's own peak, and those pieces: (kept, cut). With
    ``within``, only the pieces of ``blob`` apart from its strongest pixel's (not joined to it
    within ``blob``) are judged, on their saddles through the pixels of ``within``.

    Each pixel joins the strongest pixel's component at some level of ``resid`` (the saddle,
    going down ``levels`` levels between the blob's weakest and strongest pixel); until then it
    belongs to a piece of its own, whose peak is recorded. A larva's tail fades into the noise
    without a dip (its pixels join at their own level), its eyes join the head high up; a speck
    touching it joins through its faint halo.

    ``anchor`` (y, x): measure from this pixel of ``blob`` instead of its strongest one."""
    if within is not None:
        n_pieces, pieces = cv2.connectedComponents(blob.astype(np.uint8), connectivity=8)
        if n_pieces <= 2:  # nothing apart from the larva's piece
            return blob, np.zeros_like(blob)
    ys, xs = np.nonzero(blob if within is None else blob | within)
    if len(ys) < 3:
        return blob, np.zeros_like(blob)
    v = resid[ys, xs].astype(np.float64)
    if anchor is not None:
        peak_i = int(np.flatnonzero((ys == anchor[0]) & (xs == anchor[1]))[0])
    else:
        peak_i = int(np.argmax(np.where(blob[ys, xs], v, -np.inf)))
    lo, top = float(v.min()), float(v.max())
    if top <= lo:
        return blob, np.zeros_like(blob)
    y0, x0 = ys.min(), xs.min()
    sub = np.zeros((ys.max() - y0 + 1, xs.max() - x0 + 1), np.uint8)
    py, px = ys - y0, xs - x0
    saddle = np.full(len(v), np.nan)
    own = v.copy()  # each pixel's piece's peak before it joins the strongest pixel's
    for t in np.linspace(top, lo, levels):
        on = v >= t
        sub[:] = 0
        sub[py[on], px[on]] = 1
        _, lab = cv2.connectedComponents(sub, connectivity=8)
        lv = lab[py, px]
        main = lv[peak_i]
        joined = on & (lv == main) & np.isnan(saddle)
        saddle[joined] = t
        free = on & (lv != main)
        if free.any():
            pk = np.zeros(int(lv.max()) + 1)
            np.maximum.at(pk, lv[free], v[free])
            own[free] = np.maximum(own[free], pk[lv[free]])
    cut_px = saddle < ratio * own
    if within is not None:
        piece = pieces[ys, xs]  # 0 outside blob
        cut_px &= (piece > 0) & (piece != piece[peak_i])
    if not cut_px.any():
        return blob, np.zeros_like(blob)
    cut = np.zeros_like(blob)
    cut[ys[cut_px], xs[cut_px]] = True
    return blob & ~cut, cut


def _grown(blob: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """The pixels of ``ok`` within 2 px (a 5 x 5 square) of ``blob``: what is filled in."""
    return (cv2.dilate(blob.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0) & ok


def _off_wall(blob: np.ndarray, resid: np.ndarray, wall_dist: np.ndarray) -> np.ndarray:
    """``blob`` (a still-fish candidate of a well) without the wall band it is joined to: the
    part away from the band (beyond ``WALL_BAND`` px from the arena's edge) that holds the
    blob's strongest pixel, and the band's pixels within ``WALL_BAND`` + 1 px of that part (a
    fish touching the wall). The closing's residual along a well's shaded rim lies above the
    candidates' low threshold in places, so the blurred halo of a still larva's head near the
    wall joined a crescent of the rim: measured 39-41 px for 21-px larvae (one still larva per
    plate, so its length was the recording's), and filled in from the well's inside. Applied
    only to a blob about to be inpainted as a still larva (after the wall-band test)."""
    away = blob & (wall_dist > WALL_BAND)
    if not away.any():
        return blob
    n, lab = cv2.connectedComponents(away.astype(np.uint8), connectivity=8)
    fish = lab == lab.flat[int(np.argmax(np.where(away, resid, -np.inf)))]
    r = int(WALL_BAND) + 1
    near = cv2.dilate(fish.astype(np.uint8),
                      cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))) > 0
    return fish | (blob & ~(wall_dist > WALL_BAND) & near)


def _frame_line(blob: np.ndarray) -> bool:
    """True if most of ``blob`` lies on rows or columns it crosses for at least three quarters
    of the crop's width or height: a frame drawn around a head-embedded larva's ROI, when the
    ROI found is larger than the drawn frame (its lines then lie inside the ROI, not in the
    band along its edge). A larva is shorter than three quarters of its ROI and wide at the
    head."""
    h, w = blob.shape
    rows = blob.sum(axis=1) >= 0.75 * w
    cols = blob.sum(axis=0) >= 0.75 * h
    if not (rows.any() or cols.any()):
        return False
    on = blob & (rows[:, None] | cols[None, :])
    return bool(np.count_nonzero(on) >= 0.5 * np.count_nonzero(blob))


def _frame_lines(cand: np.ndarray, resid: np.ndarray) -> np.ndarray:
    """Pixels of ``cand`` (uint8 mask of a head-embedded ROI's crop) on straight lines of even
    contrast (``resid``) that run for at least three quarters of the crop's width or height:
    the lines of a frame drawn around the larva, dilated by 1 px (their anti-aliased edges).
    A larva is shorter than three quarters of its ROI's width; one lying straight along a
    column as long as three quarters of the height is not of even contrast (dark eyes, a tail
    fading to its tip), so it is not a line."""
    h, w = cand.shape
    lines = np.zeros((h, w), np.uint8)
    for kern in (np.ones((1, max(3, int(0.75 * w))), np.uint8),
                 np.ones((max(3, int(0.75 * h)), 1), np.uint8)):
        run = cv2.morphologyEx(cand, cv2.MORPH_OPEN, kern)
        if not run.any():
            continue
        n, lab = cv2.connectedComponents(run, connectivity=8)
        for i in range(1, n):
            v = resid[lab == i]
            lo, mid, hi = np.percentile(v, [10, 50, 90])
            # even: no dip (a fading tail) and no bump (a larva's head between its eyes: a
            # bright larva whose tail is as bright as its body, lying straight along a column
            # 0.8 of the ROI high, has a run from head to tail of 10th percentile 0.55 of the
            # 90th; drawn lines are within 10 %)
            if lo >= 0.5 * hi and hi <= 1.5 * mid:
                lines[lab == i] = 1
    if not lines.any():
        return lines.astype(bool)
    return cv2.dilate(lines, np.ones((3, 3), np.uint8)) > 0


def _median_noise(noise: float, idx: np.ndarray) -> float:
    """Noise sd of the median of the sampled frames ``idx`` given one frame's ``noise``: the
    median of n independent samples has sd ~1.2533 sigma / sqrt(n); consecutive sampled frames
    (runs from keyframes) count as one moment of the recording."""
    idx = np.asarray(idx)
    moments = 1 + int(np.count_nonzero(np.diff(idx) > 1)) if len(idx) else 1
    return float(1.2533 * noise / np.sqrt(max(1, moments)))


def _fill_hole(img: np.ndarray, hole: np.ndarray, inside: np.ndarray, size: float) -> np.ndarray:
    """``img`` with ``hole`` filled from the surrounding background by normalised convolution.

    A wide Gaussian average of the pixels around the hole (inside the arena) keeps the
    background's smooth gradients, while a speck of dust on the hole's edge is diluted instead
    of being smeared across it (as edge-propagating inpainting does).
    """
    known = (inside & ~hole).astype(np.float32)
    sigma = float(max(3.0, 0.25 * size))
    num = cv2.GaussianBlur(img.astype(np.float32) * known, (0, 0), sigma)
    den = cv2.GaussianBlur(known, (0, 0), sigma)
    out = img.astype(np.float32).copy()
    ok = hole & (den > 1e-3)
    out[ok] = num[ok] / den[ok]
    return out


def _fill_ghost(
    m: ArenaModel, never: np.ndarray, inside: np.ndarray, pol: Polarity, lo: float, size: float
) -> int:
    """After a ``sampled`` restore: fill in (:func:`_fill_hole`, in place) the pixels of the
    still fish's spot that no sampled frame showed empty (``never``) where the restored
    background still differs from its surroundings in the fish's polarity by more than ``lo``
    (the still-fish candidates' low threshold): the part of a larva that held its place while
    its tail beat, which the frames never uncovered. Left in the background, this ghost cut
    the larva in two in every frame (0.51-0.57 of the fish length). Returns the pixels
    filled."""
    if not never.any():
        return 0
    hole = (cv2.dilate(never.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0) & inside
    filled = _fill_hole(m.bg, hole, inside, size)
    d = filled - m.bg if pol == "dark" else m.bg - filled
    ghost = hole & (d > lo)
    if not ghost.any():
        return 0
    hole = (cv2.dilate(ghost.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0) & hole
    m.bg[hole] = filled[hole]
    return int(np.count_nonzero(hole))


def _extent(blob: np.ndarray) -> float:
    """Extent (px) of a blob along its principal axis."""
    ys, xs = np.nonzero(blob)
    pts = np.stack([xs, ys], 1).astype(np.float32)
    if len(pts) < 3:
        return float(len(pts))
    pts -= pts.mean(0)
    _, evec = np.linalg.eigh(_cov_xy(pts))
    proj = pts @ evec[:, -1]
    return float(proj.max() - proj.min() + 1.0)


def _moving_part_attached(
    f: np.ndarray, m: ArenaModel, blob: np.ndarray, cfg: TrackingConfig, length: float,
    area: float = float("nan"),
) -> bool:
    """True if, in at least a quarter of the calibration frames, moving fishness (above the
    raw-blob level) covers a ring around ``blob`` (0.15 lengths wide, from 2 px out) with at
    least 5 px and a twentieth of the blob's area: a fish's moving tail attached to its still
    head.

    False if at least two calibration frames show a fish-sized moving blob (half the fish
    ``area``) that does not reach the ring: the arena's one fish swimming elsewhere, so the
    still blob is not its head but something static (a dust speck) that its tail passes by.
    Inpainted, such a speck would be a fish-like blob in every frame (issue 12, seed 7066).
    """
    if len(f) < 4 or not np.isfinite(length):
        return False
    inside = m.valid > 0
    w = int(max(3, round(0.15 * length)))
    b8 = blob.astype(np.uint8)
    outer = cv2.dilate(b8, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * w + 1, 2 * w + 1)))
    inner = cv2.dilate(b8, np.ones((5, 5), np.uint8))
    ring = (outer > 0) & (inner == 0) & inside
    if not ring.any():
        return False
    t0 = cfg.threshold if cfg.threshold is not None else max(6.0 * m.noise, 8.0)
    need = max(5.0, 0.05 * float(blob.sum()))
    min_fish = max(float(cfg.min_area_px), 0.5 * area if np.isfinite(area) else 0.0,
                   0.25 * float(blob.sum()))
    hits = detached = 0
    for fk in f:
        moving = (fk > t0) & inside
        hits += int(np.count_nonzero(moving & ring) >= need)
        n, lab, stats, _ = components(moving.astype(np.uint8))
        if n <= 1:
            continue
        near = np.unique(lab[(outer > 0) & moving])
        big = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] >= min_fish)
        detached += int(any(i != 0 and i not in near for i in big))
    return hits >= 0.25 * len(f) and detached < 2


def _moving_fish_elsewhere(
    f: np.ndarray, m: ArenaModel, blob: np.ndarray, cfg: TrackingConfig, n_fish: int = 1
) -> bool:
    """True if some calibration frame shows ``n_fish`` fish-sized blobs away from ``blob``:
    every fish of the arena is then elsewhere, and ``blob`` (never left the median) is not a
    fish. With several fish per arena, fish that touch make one blob, so a frame counts only
    where all of them are apart (e.g. a piece of a dish's rim shadow, 2.5 fish lengths long,
    was inpainted as a fourth larva of a three-larva dish and then showed as a fish in every
    frame: real video threefish_trial2_1000fps.mp4)."""
    inside = m.valid > 0
    t0 = cfg.threshold if cfg.threshold is not None else max(6.0 * m.noise, 8.0)
    far = cv2.dilate(blob.astype(np.uint8), np.ones((9, 9), np.uint8)) == 0
    min_a = max(cfg.min_area_px, 0.25 * blob.sum())
    for k in range(len(f)):
        mk = ((f[k] > t0) & inside & far).astype(np.uint8)
        n, _, stats, _ = components(mk)
        if n > 1 and np.count_nonzero(stats[1:, cv2.CC_STAT_AREA] >= min_a) >= n_fish:
            return True
    return False


def fishness_floor(bg: Background, model: ArenaModel, sigma: float, k: float = 3.0) -> float:
    """Noise floor of an arena's fishness as the midline tracer sees it: saturated to
    0-255 like segmentation's fishness (smoothed first if ``model.smooth``), then smoothed with
    ``sigma`` px; the median plus ``k`` robust standard deviations (MAD) of its values at the
    arena's reference pixels in the calibration frames (the MAD ignores a fish covering some
    of them)."""
    x0, y0, x1, y1 = model.bbox
    fr = bg.calib[:, y0:y1, x0:x1]
    if len(fr) == 0:
        return float(3.0 * model.noise)
    yx = (model.gain_yx[0], model.gain_yx[1])
    g = _gains(fr, model.bg, yx)
    f = np.clip(_fishness(fr, model.bg, g, bg.polarity, model.smooth), 0.0, 255.0)
    if sigma > 0:
        f = _smooth_stack(f.astype(np.float32), sigma)
    v = f[:, yx[0], yx[1]].ravel()
    med = float(np.median(v))
    mad = float(1.4826 * np.median(np.abs(v - med)))
    return med + k * mad
