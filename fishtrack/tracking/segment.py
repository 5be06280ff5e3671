"""Segmentation of one arena over a chunk of frames.

For every frame of the chunk (all OpenCV calls on the arena crop, which release the GIL):

1. brightness gain ``g`` = median over ~400 fixed arena pixels of frame / background
   (illumination flicker and slow drifts, per arena);
2. *fishness* ``D = g * bg - frame`` (dark fish) or ``frame - g * bg`` (bright fish), saturated to
   uint8 and zero outside the arena mask;
3. in noisy videos (``ArenaModel.smooth`` > 0) ``D`` is smoothed with a small Gaussian;
4. a pixel is fish if ``D > threshold``.

The masks of the whole chunk are stacked into one tall image (the crop's outer rows are always
zero, so blobs of consecutive frames never touch) and outlined with a single
``cv2.findContours`` call, which is much cheaper than per-frame connected components with
statistics. Each outline with at least ``min_area`` pixels becomes a blob.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from fishtrack.tracking.background import ArenaModel, Polarity

__all__ = ["ChunkBlobs", "all_arena_gains", "arena_gains", "blobs_of_arenas", "fishness_chunk", "find_blobs",
           "outlines"]


@dataclass
class ChunkBlobs:
    """Blobs of one arena in one chunk (all arrays have one entry per blob).

    Coordinates are in arena-crop pixels; ``y0`` and ``cy`` are within the frame (the stacked
    offset ``frame * h`` removed). ``contours`` hold the outlines in *stacked* coordinates, as
    returned by ``cv2.findContours``.
    """

    frame: np.ndarray
    x0: np.ndarray
    y0: np.ndarray
    w: np.ndarray
    h: np.ndarray
    area: np.ndarray
    cx: np.ndarray
    cy: np.ndarray
    contours: list

    def __len__(self) -> int:
        return len(self.frame)

    @classmethod
    def empty(cls) -> ChunkBlobs:
        z = np.zeros(0, np.int32)
        f = np.zeros(0, np.float32)
        return cls(z, z, z, z, z, f, f, f, [])


def _median_last(r: np.ndarray) -> np.ndarray:
    """``np.median(r, axis=-1)`` of float32 values without NaN, the same values, with ``r``
    partitioned in place: the middle value, or the two middle ones' sum halved in float32
    (NumPy's mean of the two); no copy of ``r`` and no check for NaN (~40 % less CPU than
    ``np.median`` on a 96-well plate's gains)."""
    k = r.shape[-1]
    if k == 0:
        return np.median(r, axis=-1)
    lo, hi = (k - 1) // 2, k // 2
    r.partition((lo, hi) if lo != hi else hi, axis=-1)
    if lo == hi:
        return r[..., hi].copy()
    return (r[..., lo] + r[..., hi]) / np.float32(2)


def _gain_ratios(frames: np.ndarray, ys: np.ndarray, xs: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """float32 (N, K): the pixels ``(ys, xs)`` of every frame divided by their background
    reference ``ref`` (>= 1); gathered by flat index from C-contiguous frames."""
    if frames.flags.c_contiguous:
        flat = np.asarray(ys, np.intp) * frames.shape[2] + np.asarray(xs, np.intp)
        vals = np.take(frames.reshape(len(frames), -1), flat, axis=1)
    else:
        vals = frames[:, ys, xs]
    return np.divide(vals, ref[None, :], dtype=np.float32)


def arena_gains(crop: np.ndarray, model: ArenaModel) -> np.ndarray:
    """Per-frame brightness gain of an arena crop (N, h, w) relative to its background."""
    r = _gain_ratios(crop, model.gain_yx[0], model.gain_yx[1], np.maximum(model.gain_ref, 1.0))
    return _median_last(r).astype(np.float32, copy=False)


def all_arena_gains(frames: np.ndarray, models: list[ArenaModel]) -> list[np.ndarray]:
    """:func:`arena_gains` of every arena of a chunk of whole frames (N, H, W), computed for
    all arenas with the same number of reference pixels at once (one gather and one median
    instead of one per arena); the same values as :func:`arena_gains` on each arena's crop."""
    out: list[np.ndarray] = [np.zeros(0, np.float32)] * len(models)
    groups: dict[int, list[int]] = {}
    for i, m in enumerate(models):
        groups.setdefault(m.gain_yx.shape[1], []).append(i)
    for k, idx in groups.items():
        ys = np.concatenate([models[i].gain_yx[0] + models[i].bbox[1] for i in idx])
        xs = np.concatenate([models[i].gain_yx[1] + models[i].bbox[0] for i in idx])
        ref = np.concatenate([np.maximum(models[i].gain_ref, 1.0) for i in idx])
        r = _gain_ratios(frames, ys, xs, ref).reshape(len(frames), len(idx), k)
        g = _median_last(r).astype(np.float32, copy=False)
        for j, i in enumerate(idx):
            out[i] = np.ascontiguousarray(g[:, j])
    return out


def fishness_chunk(
    crop: np.ndarray,
    model: ArenaModel,
    polarity: Polarity,
    out: np.ndarray,
    *,
    flicker: bool = True,
    gains: np.ndarray | None = None,
) -> np.ndarray:
    """Fill ``out`` (N, h, w) uint8 with the fishness of every frame; returns the gains.

    Parameters
    ----------
    crop
        uint8 (N, h, w) arena crop of the chunk (a view into the frames is fine).
    model
        The arena's background model.
    polarity
        Fish polarity.
    out
        uint8 (N, h, w) output buffer (C-contiguous).
    flicker
        Estimate a brightness gain per frame (else 1).
    gains
        The gains, if already measured (:func:`all_arena_gains`).
    """
    if gains is None:
        gains = arena_gains(crop, model) if flicker else np.ones(crop.shape[0], np.float32)
    bg = model.bg
    valid = model.valid
    scratch = np.empty(bg.shape, np.uint8)
    smooth = float(model.smooth)
    signed = np.empty(bg.shape, np.int16) if smooth > 0 else None
    for i in range(crop.shape[0]):
        cv2.convertScaleAbs(bg, dst=scratch, alpha=float(gains[i]))
        a, b = (scratch, crop[i]) if polarity == "dark" else (crop[i], scratch)
        if signed is None:
            cv2.subtract(a, b, dst=out[i])
        else:
            # smooth the signed difference, then saturate (smoothing the saturated one would
            # lift the background by the positive half of its noise)
            cv2.subtract(a, b, dst=signed, dtype=cv2.CV_16S)
            cv2.GaussianBlur(signed, (0, 0), smooth, dst=signed)
            np.clip(signed, 0, 255, out=signed)
            out[i] = signed
        cv2.bitwise_and(out[i], valid, dst=out[i])
    return gains


def find_blobs(d: np.ndarray, threshold: float, min_area: float) -> ChunkBlobs:
    """Blobs of ``d > threshold`` in every frame of a fishness stack.

    Parameters
    ----------
    d
        uint8 (N, h, w) fishness, C-contiguous, zero on the crop's outer rows/columns.
    threshold
        Fishness threshold (grey levels).
    min_area
        Smallest blob kept (pixels, estimated from the outline).
    """
    h = d.shape[1]
    contours = outlines(d, threshold)
    keep = []
    rects = []
    areas = []
    cents = []
    for c in contours:
        x, y, bw, bh = cv2.boundingRect(c)
        if bw * bh < min_area:
            continue
        mo = cv2.moments(c)
        # pixel count ~ polygon area through the boundary pixel centres + half the perimeter + 1
        a = mo["m00"] + 0.5 * cv2.arcLength(c, True) + 1.0
        if a < min_area:
            continue
        if mo["m00"] > 1e-6:
            cx, cy = mo["m10"] / mo["m00"], mo["m01"] / mo["m00"]
        else:
            cx, cy = x + (bw - 1) / 2.0, y + (bh - 1) / 2.0
        keep.append(c)
        rects.append((x, y, bw, bh))
        areas.append(a)
        cents.append((cx, cy))
    if not keep:
        return ChunkBlobs.empty()
    return _chunk_blobs(keep, np.asarray(rects, np.int32), np.asarray(areas, np.float32),
                        np.asarray(cents, np.float32), h)


def outlines(d: np.ndarray, threshold: float) -> Sequence[np.ndarray]:
    """The outer outlines of ``d > threshold`` in a fishness stack (N, h, w), C-contiguous:
    one ``cv2.findContours`` call on the frames stacked into one tall image (stacked
    coordinates)."""
    n, h, w = d.shape
    _, mask = cv2.threshold(d.reshape(n * h, w), float(threshold), 255, cv2.THRESH_BINARY)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return contours


def blobs_of_arenas(contours: Sequence[Sequence[np.ndarray]], heights: Sequence[int],
                    min_area: float, stats) -> list[ChunkBlobs]:
    """:func:`find_blobs` of many arenas at once, from their :func:`outlines` ``contours``
    (one list per arena) and crop ``heights``: the statistics of every outline of every arena
    in one compiled call (``stats`` = ``_kernels.contour_stats``: the values of
    ``cv2.boundingRect``, ``cv2.moments`` and ``cv2.arcLength``) and whole-array filters, instead of
    three OpenCV calls and a few Python steps per outline. The same blobs as :func:`find_blobs`
    on each arena (a plate's ~100 arenas hold ~10 outlines each per 10-frame chunk, too few for
    per-arena vectorizing to pay)."""
    na = len(contours)
    counts = np.fromiter((len(c) for c in contours), np.int64, na)
    out = [ChunkBlobs.empty() for _ in range(na)]
    allc = [c for cs in contours for c in cs]
    if not allc:
        return out
    nc = len(allc)
    ends = np.cumsum([len(c) for c in allc], dtype=np.int64)
    pts = np.concatenate(allc).reshape(-1, 2)
    rect = np.empty((nc, 4), np.int32)
    mom = np.empty((nc, 4), np.float64)
    stats(pts, ends, rect, mom)
    x, y, bw, bh = rect.T.astype(np.int64)
    m00 = mom[:, 0]
    # pixel count ~ polygon area through the boundary pixel centres + half the perimeter + 1
    area = m00 + 0.5 * mom[:, 3] + 1.0
    keep = np.flatnonzero((bw * bh >= min_area) & (area >= min_area))
    if not keep.size:
        return out
    arena = np.repeat(np.arange(na), counts)[keep]
    m00 = m00[keep]
    pos = m00 > 1e-6
    den = np.where(pos, m00, 1.0)
    cx = np.where(pos, mom[keep, 1] / den, x[keep] + (bw[keep] - 1) / 2.0).astype(np.float32)
    cy = np.where(pos, mom[keep, 2] / den, y[keep] + (bh[keep] - 1) / 2.0).astype(np.float32)
    r = rect[keep]
    h = np.asarray(heights, np.int64)[arena]
    frame = r[:, 1] // h
    # in frame order within each arena (stable: the outlines' order within a frame kept)
    order = np.argsort(arena * (int(frame.max()) + 1) + frame, kind="stable")
    arena, frame, r, h = arena[order], frame[order], r[order], h[order]
    area = area[keep][order].astype(np.float32)
    cx = cx[order]
    cy = (cy[order] - frame * h).astype(np.float32)
    y0 = (r[:, 1] - frame * h).astype(np.int32)
    frame = frame.astype(np.int32)
    x0, bw, bh = (np.ascontiguousarray(r[:, k]) for k in (0, 2, 3))
    kept = [allc[i] for i in keep[order].tolist()]
    bounds = np.searchsorted(arena, np.arange(na + 1)).tolist()
    for a in np.unique(arena).tolist():
        lo, hi = bounds[a], bounds[a + 1]
        out[a] = ChunkBlobs(frame=frame[lo:hi], x0=x0[lo:hi], y0=y0[lo:hi], w=bw[lo:hi],
                            h=bh[lo:hi], area=area[lo:hi], cx=cx[lo:hi], cy=cy[lo:hi],
                            contours=kept[lo:hi])
    return out


def fill_inside(img: np.ndarray, contours: Sequence[np.ndarray], idx: np.ndarray, dx: np.ndarray,
                dy: np.ndarray, value: int = 1) -> None:
    """Fill the outlines ``contours[i]`` for ``i`` in ``idx``, each moved by (``dx``, ``dy``)
    px, into ``img`` with one ``cv2.drawContours`` call (instead of one call per outline).
    Each moved outline must lie inside ``img`` and in rows of its own: then the fill equals
    drawing each alone (OpenCV clips an outline crossing the image's side differently,
    tests/test_tracking_cut_fill.py)."""
    cs = [contours[i] for i in idx.tolist()]
    lens = np.fromiter((len(c) for c in cs), np.int64, len(cs))
    shift = np.stack([dx, dy], axis=1).astype(np.int32)
    pts = np.concatenate(cs) + np.repeat(shift, lens, axis=0)[:, None, :]
    ends = np.cumsum(lens).tolist()
    cv2.drawContours(img, [pts[a:b] for a, b in zip([0, *ends[:-1]], ends, strict=True)], -1, value, -1)


def _chunk_blobs(keep: list, r: np.ndarray, areas: np.ndarray, ce: np.ndarray, h: int) -> ChunkBlobs:
    """The blobs of kept outlines ``keep`` with rectangles ``r`` (n, 4) int32 (stacked
    coordinates), areas (n,) float32 and centroids ``ce`` (n, 2) float32, in frame order."""
    frame = r[:, 1] // h
    order = np.argsort(frame, kind="stable")
    return ChunkBlobs(
        frame=frame[order].astype(np.int32),
        x0=r[order, 0],
        y0=(r[order, 1] - frame[order] * h).astype(np.int32),
        w=r[order, 2],
        h=r[order, 3],
        area=areas[order],
        cx=ce[order, 0],
        cy=(ce[order, 1] - frame[order] * h).astype(np.float32),
        contours=[keep[i] for i in order],
    )
