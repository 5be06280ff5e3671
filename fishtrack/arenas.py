"""Arena layouts and their detection on the background image.

Three layouts (``arenas.layout``):

``wells``
    A ``rows x cols`` plate, one fish per well. Wells are found automatically from the
    background image (circular or square rims, dark on bright or bright on dark), or laid out
    from ``arenas.bbox``.
``chamber``
    One arena (``A1``), possibly several fish: the largest bright or dark region bounded by a
    wall, or the whole frame when no wall is clearly visible.
``embedded``
    Head-embedded larvae in a ``rows x cols`` grid: the frame (or ``arenas.bbox``) is divided
    into one rectangular ROI per fish.

Arenas are named like plate wells, row letter + column number, row-major from the top-left
(``A1, A2, ..., B1, ...``). Coordinates are full-frame pixels, origin top-left, x right,
y down; a pixel's integer index is the coordinate of its centre.

Well detection, in short (details in ``docs/arenas.md``):

1. *Candidates*, on a copy downscaled so a well is ~20-40 px across: interiors enclosed by a
   rim (connected components of the complement of the rim mask, both polarities, after
   flattening the illumination) and circles of a Hough transform.
2. *Grid*: a lattice hypothesis from every neighbouring candidate pair (pitch and rotation),
   scored by the candidates it explains; the best one is refined by re-assigning indices, and
   the grid model (origin, pitch x / y, rotation) is fitted by robust least squares.
3. *Rims*: at every grid position (plus one row / column around, to notice more wells than
   configured) rays from the predicted centre find the first strong edge from the inside; a
   robust circle fit and a square fit to those edge points give centre, radius and *support*
   (fraction of rays on the fitted rim). Wells with enough support are *found*; the
   ``rows x cols`` window with most found wells is the plate; missing wells are filled from
   the grid fitted to the found ones.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import cv2
import numpy as np

from fishtrack.errors import ArenaError
from fishtrack.robust import robust_sigma

if TYPE_CHECKING:  # pragma: no cover
    from fishtrack.config import ArenasConfig

__all__ = [
    "Arena",
    "arena_name",
    "parse_arena_name",
    "detect_arenas",
    "draw_arenas",
    "grid_arenas",
]

Shape = Literal["circle", "square", "rect"]

_HELP = "see docs/arenas.md"
#: pixels an image-noise estimate is thinned to (above twice this many)
_NOISE_MAX_N = 200_000
_BBOX_HINT = (
    "check arenas.rows / arenas.cols, or set arenas.bbox to [x0, y0, x1, y1], the outer "
    f"edges of the corner wells (top-left of A1 to bottom-right of the last well), {_HELP}"
)


# --------------------------------------------------------------------------------------------
# names


def arena_name(row: int, col: int) -> str:
    """Plate-style name of the arena at 0-based ``row``, ``col``: ``A1``, ``B12``, ``AA3``.

    Rows beyond ``Z`` continue ``AA, AB, ...`` (spreadsheet style).
    """
    row, col = int(row), int(col)
    if row < 0 or col < 0:
        raise ValueError(f"row and col must be >= 0; got row={row}, col={col}")
    letters = ""
    n = row + 1
    while n > 0:
        n, rem = divmod(n - 1, 26)
        letters = chr(ord("A") + rem) + letters
    return f"{letters}{col + 1}"


def parse_arena_name(name: str) -> tuple[int, int]:
    """Inverse of :func:`arena_name`: ``"B12"`` -> ``(1, 11)`` (case and leading zeros ignored)."""
    s = str(name).strip().upper()
    i = 0
    while i < len(s) and "A" <= s[i] <= "Z":
        i += 1
    letters, digits = s[:i], s[i:]
    if not letters or not digits.isdigit() or int(digits) < 1:
        raise ValueError(f"{name!r} is not an arena name like A1 or H12")
    row = 0
    for ch in letters:
        row = row * 26 + (ord(ch) - ord("A") + 1)
    return row - 1, int(digits) - 1


# --------------------------------------------------------------------------------------------
# the arena


@dataclass(frozen=True)
class Arena:
    """One arena: a well, the chamber, or an embedded-larva ROI.

    Attributes
    ----------
    name
        ``"A1"``, ``"A2"``, ... row letter + column number, row-major from the top-left.
    row, col
        0-based grid position.
    shape
        ``"circle"``, ``"square"`` (possibly rotated by ``angle``) or ``"rect"`` (axis-aligned,
        exactly ``bbox``).
    cx, cy
        Centre (px, full-frame coordinates).
    radius
        Distance from the centre to the inner edge of the wall: circle radius, or half the side
        of a square (px); ``nan`` for rect.
    bbox
        ``(x0, y0, x1, y1)`` of the arena's pixels (x1, y1 exclusive), clipped to the frame.
    margin
        Pixels trimmed inside the wall: :meth:`mask` and :meth:`contains` use
        ``radius - margin`` (rect: the bbox shrunk by ``margin``).
    angle
        Rotation of a square about its centre (radians, clockwise on screen since y points
        down); 0 for circles and rects.
    found
        True when the arena was seen in the image; False when it was filled in from the grid
        (a well whose rim was not found) or is the whole-frame fallback of a chamber.
    """

    name: str
    row: int
    col: int
    shape: str
    cx: float
    cy: float
    radius: float
    bbox: tuple[int, int, int, int]
    margin: float = 0.0
    angle: float = 0.0
    found: bool = field(default=True, compare=False)

    @property
    def inner_radius(self) -> float:
        """``radius - margin`` (px): the part of the arena the fish is tracked in."""
        return float(self.radius) - float(self.margin)

    def _inside(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if self.shape == "rect":
            x0, y0, x1, y1 = self.bbox
            m = float(self.margin)
            return (
                (x >= x0 - 0.5 + m) & (x < x1 - 0.5 - m) & (y >= y0 - 0.5 + m) & (y < y1 - 0.5 - m)
            )
        dx, dy = x - self.cx, y - self.cy
        r = self.inner_radius
        if self.shape == "circle":
            return dx * dx + dy * dy <= r * r
        c, s = math.cos(self.angle), math.sin(self.angle)
        u = dx * c + dy * s
        v = -dx * s + dy * c
        return (np.abs(u) <= r) & (np.abs(v) <= r)

    def mask(self) -> np.ndarray:
        """bool ``(y1 - y0, x1 - x0)``: True for pixels of the bbox crop inside the arena."""
        x0, y0, x1, y1 = self.bbox
        ys, xs = np.mgrid[y0:y1, x0:x1]
        return self._inside(xs, ys)

    def contains(self, x: Any, y: Any) -> Any:
        """True if the point (x, y) (px, full frame) is inside the arena (margin trimmed).

        Scalars give a ``bool``; arrays give a bool array (broadcast).
        """
        out = self._inside(x, y)
        return bool(out) if np.ndim(out) == 0 else out


def _bbox_of(
    shape: str, cx: float, cy: float, radius: float, angle: float, frame: tuple[int, int]
) -> tuple[int, int, int, int]:
    h, w = frame
    ext = radius * (abs(math.cos(angle)) + abs(math.sin(angle))) if shape == "square" else radius
    x0 = max(0, math.floor(cx - ext))
    y0 = max(0, math.floor(cy - ext))
    x1 = min(w, math.ceil(cx + ext) + 1)
    y1 = min(h, math.ceil(cy + ext) + 1)
    return int(x0), int(y0), int(max(x1, x0)), int(max(y1, y0))


def _make_arena(
    row: int,
    col: int,
    shape: str,
    cx: float,
    cy: float,
    radius: float,
    frame: tuple[int, int],
    *,
    margin: float = 0.0,
    angle: float = 0.0,
    found: bool = True,
) -> Arena:
    return Arena(
        name=arena_name(row, col),
        row=int(row),
        col=int(col),
        shape=shape,
        cx=float(cx),
        cy=float(cy),
        radius=float(radius),
        bbox=_bbox_of(shape, cx, cy, radius, angle if shape == "square" else 0.0, frame),
        margin=float(margin),
        angle=float(angle) if shape == "square" else 0.0,
        found=bool(found),
    )


def _rect_arena(
    row: int, col: int, box: tuple[int, int, int, int], *, margin: float = 0.0, found: bool = True
) -> Arena:
    x0, y0, x1, y1 = (int(v) for v in box)
    return Arena(
        name=arena_name(row, col),
        row=int(row),
        col=int(col),
        shape="rect",
        cx=(x0 + x1 - 1) / 2.0,
        cy=(y0 + y1 - 1) / 2.0,
        radius=float("nan"),
        bbox=(x0, y0, x1, y1),
        margin=float(margin),
        found=bool(found),
    )


# --------------------------------------------------------------------------------------------
# public entry point


def detect_arenas(
    background: np.ndarray, cfg: ArenasConfig, *, diagnostics: dict | None = None
) -> list[Arena]:
    """Find the arenas of ``cfg.layout`` in a background image.

    Parameters
    ----------
    background
        ``(H, W)`` grey image (any numeric dtype; a BGR ``(H, W, 3)`` image is converted),
        typically the per-pixel median of frames sampled over the video.
    cfg
        The ``arenas`` config section.
    diagnostics
        If a dict is given, it is filled with what detection saw (``found``, ``expected``,
        ``shape``, ``pitch_px``, ``angle_deg``, ``fit_rms_px``, ...), e.g. for the CLI.

    Returns
    -------
    list of Arena
        Row-major order (``A1, A2, ..., B1, ...``).

    Raises
    ------
    ArenaError
        The layout cannot be found as configured; the message says what was found and what
        to set (usually ``arenas.bbox``, or ``arenas.rows`` / ``arenas.cols``).
    """
    img = _as_grey(background)
    info: dict = diagnostics if diagnostics is not None else {}
    info.clear()
    info["layout"] = cfg.layout
    if cfg.layout == "embedded":
        return _embedded(img.shape, cfg)
    if cfg.layout == "chamber":
        return _chamber(img, cfg, info)
    if cfg.bbox is not None:
        info["method"] = "bbox"
        return grid_arenas(
            img.shape,
            cfg.rows,
            cfg.cols,
            cfg.bbox,
            shape="square" if cfg.shape == "square" else "circle",
            well_radius=cfg.well_radius_px,
            margin=cfg.margin_px,
        )
    info["method"] = "detected"
    return _detect_wells(img, cfg, info)


def _as_grey(background: Any) -> np.ndarray:
    a = np.asarray(background)
    if a.ndim == 3 and a.shape[2] in (3, 4):
        a = cv2.cvtColor(a[..., :3].astype(np.float32), cv2.COLOR_BGR2GRAY)
    elif a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim != 2 or min(a.shape) < 16:
        raise ArenaError(
            f"arena detection needs a 2-D grey background image of at least 16 x 16 px; "
            f"got an array of shape {tuple(a.shape)}"
        )
    if not np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_:
        raise ArenaError(f"arena detection needs a numeric image; got dtype {a.dtype}")
    a = a.astype(np.float32)
    if not np.isfinite(a).all():
        a = np.nan_to_num(a, nan=float(np.nanmedian(a)) if np.isfinite(a).any() else 0.0)
    return a


# --------------------------------------------------------------------------------------------
# embedded and bbox layouts


def _cell_edges(lo: int, hi: int, n: int) -> np.ndarray:
    return np.round(np.linspace(lo, hi, n + 1)).astype(int)


def _embedded(frame: tuple[int, int], cfg: ArenasConfig) -> list[Arena]:
    h, w = frame
    x0, y0, x1, y1 = cfg.bbox if cfg.bbox is not None else (0, 0, w, h)
    x0, y0 = max(0, int(round(x0))), max(0, int(round(y0)))
    x1, y1 = min(w, int(round(x1))), min(h, int(round(y1)))
    if x1 - x0 < cfg.cols or y1 - y0 < cfg.rows:
        raise ArenaError(
            f"arenas.bbox {list(cfg.bbox or [])} leaves no room for {cfg.rows} x {cfg.cols} "
            f"embedded ROIs inside the {w} x {h} px frame; {_HELP}"
        )
    xs, ys = _cell_edges(x0, x1, cfg.cols), _cell_edges(y0, y1, cfg.rows)
    return [
        _rect_arena(r, c, (int(xs[c]), int(ys[r]), int(xs[c + 1]), int(ys[r + 1])))
        for r in range(cfg.rows)
        for c in range(cfg.cols)
    ]


def grid_arenas(
    frame: tuple[int, int],
    rows: int,
    cols: int,
    bbox: Sequence[float],
    *,
    shape: Literal["circle", "square"] = "circle",
    well_radius: float | None = None,
    margin: float = 0.0,
) -> list[Arena]:
    """Lay out a ``rows x cols`` plate from the outer edges of its corner wells.

    Parameters
    ----------
    frame
        ``(H, W)`` of the image (bboxes are clipped to it).
    rows, cols
        Grid size.
    bbox
        ``[x0, y0, x1, y1]``: left edge of column 1, top edge of row A, right edge of the last
        column, bottom edge of the last row (px, axis-aligned: no rotation).
    shape
        Well shape.
    well_radius
        Radius (half side for squares) of each well (px). ``None``: wells touch, i.e. the
        radius is half the cell size ``min((x1 - x0) / cols, (y1 - y0) / rows) / 2``.
    margin
        Pixels trimmed inside each well.
    """
    x0, y0, x1, y1 = (float(v) for v in bbox)
    h, w = frame
    bw, bh = x1 - x0, y1 - y0
    if bw <= 0 or bh <= 0:
        raise ArenaError(f"arenas.bbox {list(bbox)} is empty; it must be [x0, y0, x1, y1]")
    if x1 <= 0 or y1 <= 0 or x0 >= w or y0 >= h:
        raise ArenaError(f"arenas.bbox {list(bbox)} lies outside the {w} x {h} px frame; {_HELP}")
    r = min(bw / cols, bh / rows) / 2.0 if well_radius is None else float(well_radius)
    if 2 * r > min(bw, bh) + 1e-9:
        raise ArenaError(
            f"arenas.well_radius_px={r:g} does not fit in arenas.bbox {list(bbox)} "
            f"(a well is wider than the box); {_HELP}"
        )
    px = (bw - 2 * r) / (cols - 1) if cols > 1 else 0.0
    py = (bh - 2 * r) / (rows - 1) if rows > 1 else 0.0
    out = []
    for i in range(rows):
        for j in range(cols):
            cx, cy = x0 + r + j * px, y0 + r + i * py
            out.append(_make_arena(i, j, shape, cx, cy, r, frame, margin=margin))
    return out


# --------------------------------------------------------------------------------------------
# image helpers


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur; large sigmas are applied on a downscaled copy (same result to within a
    few per cent, much faster)."""
    sigma = float(sigma)
    if sigma <= 6.0:
        return cv2.GaussianBlur(img, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT)
    k = sigma / 3.0
    h, w = img.shape[:2]
    small = cv2.resize(
        img, (max(1, round(w / k)), max(1, round(h / k))), interpolation=cv2.INTER_AREA
    )
    small = cv2.GaussianBlur(small, (0, 0), sigmaX=3.0, borderType=cv2.BORDER_REFLECT)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _to_u8(a: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(a, [0.5, 99.5])
    if hi - lo < 1e-6:
        return np.zeros(a.shape, np.uint8)
    return np.clip((a - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# rays: first strong edge from the inside


@dataclass
class _Rays:
    """Edge points along rays from K centres (arrays (K, A))."""

    ox: np.ndarray  # (K,) ray origins
    oy: np.ndarray
    phi: np.ndarray  # (K, A) ray angles (rad)
    rho: np.ndarray  # (K, A) edge distance from the origin (px), nan if none
    strength: np.ndarray  # (K, A) |gradient| at the edge (grey levels / px)
    #: (K, A) the ray lies in the image up to a little beyond its expected edge (a ray of a
    #: well cut by the frame edge that leaves the image first can show no rim)
    seen: np.ndarray | None = None


def _cast_rays(
    smooth: np.ndarray,
    ox: np.ndarray,
    oy: np.ndarray,
    rho0: np.ndarray,
    phi: np.ndarray,
    *,
    lo: float,
    hi: float,
    step: float = 0.5,
    rel: float = 0.5,
    n_sub: int = 3,
    expect: np.ndarray | None = None,
) -> _Rays:
    """Sample ``smooth`` along rays and return the first strong edge on each.

    ``rho0`` (K, A) is the expected edge distance per ray; samples cover
    ``[lo, hi] * rho0``. A *strong* edge is a local maximum of ``|d I / d rho|`` that reaches
    ``rel`` times the ray's maximum and clearly exceeds the noise. The edge of a ray is the
    first strong one from the inside or, given ``expect`` (K, A) px, the strong one nearest to
    it; it is located to sub-pixel precision with a parabola.
    """
    h, w = smooth.shape
    k, a = rho0.shape
    n_r = max(8, int(math.ceil((hi - lo) * float(np.max(rho0)) / step)) + 1)
    t = np.linspace(lo, hi, n_r, dtype=np.float64)
    rr = rho0[..., None] * t  # (K, A, n_r)
    # each ray is the mean of sub-rays spread over its sector: noise down, radial edges kept
    offsets = (np.arange(n_sub) - (n_sub - 1) / 2) * (2 * math.pi / a / max(n_sub, 1))
    prof = np.zeros((k, a, n_r), np.float32)
    valid = np.ones((k, a, n_r), bool)
    for d_phi in offsets:
        cos, sin = np.cos(phi + d_phi)[..., None], np.sin(phi + d_phi)[..., None]
        mx = (ox[:, None, None] + rr * cos).astype(np.float32)
        my = (oy[:, None, None] + rr * sin).astype(np.float32)
        valid &= (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
        prof += cv2.remap(
            smooth,
            mx.reshape(k * a, n_r),
            my.reshape(k * a, n_r),
            interpolation=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        ).reshape(k, a, n_r)
    prof /= len(offsets)
    dr = (rho0 * (t[1] - t[0]))[..., None]  # px per sample, per ray
    g = np.gradient(prof, axis=2) / dr.astype(np.float32)
    ag = np.abs(g)
    # samples outside the image (and their neighbours) carry no edge; a ray must start inside
    inside = valid.copy()
    inside[..., 1:] &= valid[..., :-1]
    inside[..., :-1] &= valid[..., 1:]
    ag[~inside] = 0.0
    ray_ok = inside.sum(axis=2) >= 3
    # noise of the derivative from its lower quartile (edges may be a large share of samples;
    # the 25th percentile of |N(0, s)| is 0.3186 s)
    noise = float(np.percentile(ag[inside], 25)) / 0.3186 if inside.any() else 0.0
    gmax = ag.max(axis=2, keepdims=True)
    thr = np.maximum(rel * gmax, 4.0 * noise + 1e-6)
    peak = np.zeros_like(ag, dtype=bool)
    peak[..., 1:-1] = (ag[..., 1:-1] >= ag[..., :-2]) & (ag[..., 1:-1] >= ag[..., 2:])
    strong = peak & (ag >= thr)
    has = strong.any(axis=2) & ray_ok
    if expect is None:  # the first strong edge from the inside
        i = np.argmax(strong, axis=2)
    else:  # the strong edge nearest to the expected distance
        miss = np.abs(rr - expect[..., None])
        i = np.argmin(np.where(strong, miss, np.inf), axis=2)
    i = np.clip(i, 1, n_r - 2)
    y0 = np.take_along_axis(ag, (i - 1)[..., None], 2)[..., 0]
    y1 = np.take_along_axis(ag, i[..., None], 2)[..., 0]
    y2 = np.take_along_axis(ag, (i + 1)[..., None], 2)[..., 0]
    den = y0 - 2 * y1 + y2
    off = np.where(np.abs(den) > 1e-12, 0.5 * (y0 - y2) / np.where(den == 0, 1, den), 0.0)
    off = np.clip(off, -0.5, 0.5)
    rho = rho0 * (t[0] + (i + off) * (t[1] - t[0]))
    rho = np.where(has, rho, np.nan)
    reach = min(n_r - 1, int(np.searchsorted(t, min(hi, 1.05))))
    seen = valid[..., : reach + 1].all(axis=2)
    return _Rays(ox=ox, oy=oy, phi=phi, rho=rho, strength=np.where(has, y1, np.nan), seen=seen)


#: rims cut by the frame edge: support is counted over the rays that stay in the image
#: (:func:`_support`) instead of over all rays, when at least this fraction of them do
CUT_RIM_MIN_SEEN = 0.3


def _support(on: np.ndarray, used: np.ndarray, rays: _Rays) -> np.ndarray:
    """Fraction of the ``used`` rays (K, A) that lie on the fitted rim (``on``); with
    :data:`CUT_RIM_MIN_SEEN`, of the used rays that stay in the image (a well cut by the frame
    edge is judged on its visible rim; 0 when too little of it is visible)."""
    if rays.seen is None or CUT_RIM_MIN_SEEN is None:
        return on.sum(axis=1) / np.maximum(used.sum(axis=1), 1)
    vis = used & rays.seen
    n_vis = vis.sum(axis=1)
    frac = n_vis / np.maximum(used.sum(axis=1), 1)
    sup = (on & vis).sum(axis=1) / np.maximum(n_vis, 1)
    return np.where(frac >= CUT_RIM_MIN_SEEN, sup, 0.0)


@dataclass
class _Fit:
    cx: np.ndarray  # (K,)
    cy: np.ndarray
    radius: np.ndarray
    support: np.ndarray  # fraction of the used rays that lie on the fitted rim
    strength: np.ndarray  # median edge strength of those rays
    rms: np.ndarray


def _fit_circles(rays: _Rays) -> _Fit:
    """Robust (iteratively trimmed) algebraic circle fit per row of ``rays``."""
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        fit = _fit_circles_impl(rays)
        if not ROBUST_CIRCLE_START:
            return fit
        # rims not clearly found by the plain fit: fitted again from a consensus start, and
        # the better supported of the two kept
        redo = np.flatnonzero(fit.support < 0.9)
        if redo.size == 0:
            return fit
        sub = _Rays(ox=rays.ox[redo], oy=rays.oy[redo], phi=rays.phi[redo], rho=rays.rho[redo],
                    strength=rays.strength[redo],
                    seen=None if rays.seen is None else rays.seen[redo])
        fit2 = _fit_circles_impl(sub, robust=True)
        better = fit2.support > fit.support[redo]
        for name in ("cx", "cy", "radius", "support", "strength", "rms"):
            v = getattr(fit, name).astype(np.float64, copy=True)
            v[redo[better]] = getattr(fit2, name)[better]
            setattr(fit, name, v)
        return fit


#: start the trimmed circle fit from the rays on the best circle through three of them
#: (:func:`_circle_start`) instead of from all rays: a still larva or a speck inside a well,
#: whose edge is the first strong one on a sector of the rays, no longer drags the fit off
#: the rim (spent video seed 24438: 17 of 90 rays on a still larva, support 0.40 -> 0.82)
ROBUST_CIRCLE_START = True
#: spacings (fractions of a turn) of the ray triplets :func:`_circle_start` tries: wide ones
#: for whole rims, narrow ones for rims cut by the frame edge
_TRIPLET_SPACINGS = (1 / 3, 1 / 6, 1 / 12)


def _circle_start(x: np.ndarray, y: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Per row of edge points (K, A): the points within max(1.5 px, 4 % of their median
    distance from the ray origin) of the circle through three of them that has most such points (triplets at the spacings of
    :data:`_TRIPLET_SPACINGS`, every start ray); all usable points where no triplet gives a
    circle. A consensus start: outliers on up to about half of the rays cannot move it."""
    k, a = x.shape
    if a < 12:
        return ok.copy()
    i0 = np.arange(a)
    trip = [np.stack([i0, (i0 + max(1, round(a * f))) % a, (i0 + 2 * max(1, round(a * f))) % a])
            for f in _TRIPLET_SPACINGS]
    idx = np.concatenate(trip, axis=1)  # (3, T)
    with np.errstate(invalid="ignore", divide="ignore"):
        px, py = x[:, idx], y[:, idx]  # (K, 3, T)
        ax, ay, bx, by, cx_, cy_ = px[:, 0], py[:, 0], px[:, 1], py[:, 1], px[:, 2], py[:, 2]
        d = 2.0 * (ax * (by - cy_) + bx * (cy_ - ay) + cx_ * (ay - by))
        a2, b2, c2 = ax * ax + ay * ay, bx * bx + by * by, cx_ * cx_ + cy_ * cy_
        ux = (a2 * (by - cy_) + b2 * (cy_ - ay) + c2 * (ay - by)) / d
        uy = (a2 * (cx_ - bx) + b2 * (ax - cx_) + c2 * (bx - ax)) / d
        rr = np.hypot(ax - ux, ay - uy)  # (K, T)
        good = np.isfinite(rr) & (np.abs(d) > 1e-9)
        res = np.abs(np.hypot(x[:, None, :] - ux[..., None], y[:, None, :] - uy[..., None])
                     - rr[..., None])  # (K, T, A)
        rho = np.hypot(x, y)
        scale = np.nanmedian(np.where(ok, rho, np.nan), axis=1) if ok.any() else np.zeros(k)
        scale = np.nan_to_num(scale)[:, None]  # (K, 1): a tolerance no triplet can widen
        good &= rr < 2.0 * scale
        tol = np.maximum(1.5, 0.04 * scale)[..., None]
        inl = ok[:, None, :] & (res < tol)
    count = np.where(good, inl.sum(axis=2), -1)
    best = np.argmax(count, axis=1)
    w = inl[np.arange(k), best]
    fallback = (count[np.arange(k), best] < 6)
    w[fallback] = ok[fallback]
    return w


def _fit_circles_impl(rays: _Rays, robust: bool = False) -> _Fit:
    x = rays.rho * np.cos(rays.phi)
    y = rays.rho * np.sin(rays.phi)
    ok = np.isfinite(rays.rho)
    w = _circle_start(x, y, ok) if robust else ok.copy()
    k = x.shape[0]
    cx = np.full(k, np.nan)
    cy = np.full(k, np.nan)
    r = np.full(k, np.nan)
    x0 = np.where(ok, x, 0.0)
    y0 = np.where(ok, y, 0.0)
    z = x0 * x0 + y0 * y0
    res = np.full_like(x, np.nan)
    for _ in range(5):
        wf = w.astype(np.float64)

        def s(v: np.ndarray, wf: np.ndarray = wf) -> np.ndarray:
            return (wf * v).sum(axis=1)

        m = np.empty((k, 3, 3))
        m[:, 0, 0], m[:, 0, 1], m[:, 0, 2] = s(x0 * x0), s(x0 * y0), s(x0)
        m[:, 1, 1], m[:, 1, 2], m[:, 2, 2] = s(y0 * y0), s(y0), s(np.ones_like(x0))
        m[:, 1, 0], m[:, 2, 0], m[:, 2, 1] = m[:, 0, 1], m[:, 0, 2], m[:, 1, 2]
        b = -np.stack([s(x0 * z), s(y0 * z), s(z)], axis=1)
        good = w.sum(axis=1) >= 6
        m[~good] = np.eye(3)
        b[~good] = 0.0
        try:
            sol = np.linalg.solve(m, b[..., None])[..., 0]
        except np.linalg.LinAlgError:
            sol = np.stack(
                [np.linalg.lstsq(mi, bi, rcond=None)[0] for mi, bi in zip(m, b, strict=True)]
            )
        cx = -sol[:, 0] / 2
        cy = -sol[:, 1] / 2
        rr = cx * cx + cy * cy - sol[:, 2]
        r = np.sqrt(np.where(good & (rr > 0), rr, np.nan))
        res = np.hypot(x - cx[:, None], y - cy[:, None]) - r[:, None]
        mad = np.nanmedian(np.abs(np.where(w, res, np.nan)), axis=1) if w.any() else np.zeros(k)
        tol = np.maximum(1.0, 3.0 * 1.4826 * np.nan_to_num(mad))
        w = ok & (np.abs(np.nan_to_num(res, nan=1e9)) < tol[:, None])
    on = ok & (
        np.abs(np.nan_to_num(res, nan=1e9)) < np.maximum(1.5, 0.04 * np.nan_to_num(r))[:, None]
    )
    support = _support(on, np.ones_like(on), rays)
    strength = (
        np.nanmedian(np.where(on, rays.strength, np.nan), axis=1) if on.any() else np.zeros(k)
    )
    rms = np.sqrt(np.nanmean(np.where(on, res * res, np.nan), axis=1)) if on.any() else np.zeros(k)
    return _Fit(
        cx=rays.ox + cx,
        cy=rays.oy + cy,
        radius=r,
        support=support,
        strength=np.nan_to_num(strength),
        rms=np.nan_to_num(rms, nan=np.inf),
    )


def _ray_sides(phi: np.ndarray, hx: np.ndarray, hy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Side (0 right, 1 bottom, 2 left, 3 top) hit by each ray in a box's own frame, and
    whether the hit is away from the corners (used for fitting)."""
    c, s = np.cos(phi), np.sin(phi)
    with np.errstate(divide="ignore", invalid="ignore"):
        tx = np.where(np.abs(c) > 1e-9, hx[:, None] / np.abs(c), np.inf)
        ty = np.where(np.abs(s) > 1e-9, hy[:, None] / np.abs(s), np.inf)
    vertical = tx <= ty  # hits the left / right side
    side = np.where(vertical, np.where(c > 0, 0, 2), np.where(s > 0, 1, 3))
    along = np.where(vertical, np.abs(s) * tx / hy[:, None], np.abs(c) * ty / hx[:, None])
    return side, along < 0.75


def _fit_boxes(rays: _Rays, angle: float, hx0: np.ndarray, hy0: np.ndarray) -> _Fit:
    """Robust fit of axis-aligned (in the frame rotated by ``angle``) boxes: each side's
    position is the trimmed median of the edge points that hit it."""
    rel = rays.phi - angle
    side, use = _ray_sides(rel, hx0, hy0)
    u = rays.rho * np.cos(rel)
    v = rays.rho * np.sin(rel)
    ok = np.isfinite(rays.rho) & use
    coord = np.where((side == 0) | (side == 2), u, v)
    k = u.shape[0]
    pos = np.full((k, 4), np.nan)
    on = np.zeros_like(ok)
    tol = np.maximum(1.5, 0.04 * np.minimum(hx0, hy0))[:, None]
    for sd in range(4):
        sel = ok & (side == sd)
        vals = np.where(sel, coord, np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            p = np.nanmedian(vals, axis=1)
            near = sel & (np.abs(vals - p[:, None]) < 2 * tol)
            p = np.nanmean(np.where(near, coord, np.nan), axis=1)
        pos[:, sd] = p
        on |= sel & (np.abs(np.nan_to_num(coord - p[:, None], nan=1e9)) < tol)
    support = _support(on, use, rays)
    if rays.seen is not None and CUT_RIM_MIN_SEEN is not None:
        # a side cut off by the frame edge: placed from the opposite side and the half size
        # measured across (a square's sides are equal), else the expected one
        with np.errstate(invalid="ignore"):
            across_v = (pos[:, 1] - pos[:, 3]) / 2  # measured half height
            across_u = (pos[:, 0] - pos[:, 2]) / 2
        half_u = np.where(np.isfinite(across_v) & (across_v > 0), across_v, hx0)
        half_v = np.where(np.isfinite(across_u) & (across_u > 0), across_u, hy0)
        half = (half_u, half_v, half_u, half_v)
        for sd in range(4):
            sel = use & (side == sd)
            unseen = (sel & ~rays.seen).sum(axis=1) > 0.5 * sel.sum(axis=1)
            opp = (sd + 2) % 4
            fill = unseen & ~np.isfinite(pos[:, sd]) & np.isfinite(pos[:, opp])
            sign = 1.0 if sd < 2 else -1.0
            pos[:, sd] = np.where(fill, pos[:, opp] + sign * 2.0 * half[sd], pos[:, sd])
    ucen = (pos[:, 0] + pos[:, 2]) / 2
    vcen = (pos[:, 1] + pos[:, 3]) / 2
    hx = (pos[:, 0] - pos[:, 2]) / 2
    hy = (pos[:, 1] - pos[:, 3]) / 2
    ca, sa = math.cos(angle), math.sin(angle)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        strength = np.nanmedian(np.where(on, rays.strength, np.nan), axis=1)
        resid = np.where(on, coord - pos[np.arange(k)[:, None], side], np.nan)
        rms = np.sqrt(np.nanmean(resid * resid, axis=1))
    fit = _Fit(
        cx=rays.ox + ucen * ca - vcen * sa,
        cy=rays.oy + ucen * sa + vcen * ca,
        radius=(hx + hy) / 2,
        support=np.where(np.isfinite(hx + hy), support, 0.0),
        strength=np.nan_to_num(strength),
        rms=np.nan_to_num(rms, nan=np.inf),
    )
    fit.hx, fit.hy = hx, hy  # type: ignore[attr-defined]
    return fit


# --------------------------------------------------------------------------------------------
# wells: candidates


def _rim_candidates(small: np.ndarray, rlo: float, rhi: float) -> tuple[np.ndarray, np.ndarray]:
    """Centres (n, 2) and radii (n,) of regions enclosed by a rim (either polarity) in a
    downscaled image."""
    h, w = small.shape
    s = _blur(small, 1.0)
    d = s - _blur(s, max(2.0, 0.5 * rhi))
    lo, hi = np.percentile(d, [0.5, 99.5])
    floor = max(0.04 * float(hi - lo), 1e-6)
    # two thresholds: above the pixel noise (thin / faint rims), and relative to the spread of
    # the flattened image (many structures, strong noise)
    noise = 0.5 * robust_sigma(small - s, max_n=_NOISE_MAX_N, empty=0.0)
    levels = sorted({max(4.0 * noise, floor), max(2.5 * robust_sigma(d, max_n=_NOISE_MAX_N, empty=0.0), floor)})
    pts: list[np.ndarray] = []
    rad: list[np.ndarray] = []
    amin, amax = 0.5 * math.pi * (0.8 * rlo) ** 2, math.pi * (1.15 * rhi) ** 2
    kernel = np.ones((3, 3), np.uint8)
    for sign, thr in ((sg, lv) for sg in (1.0, -1.0) for lv in levels):
        rim = ((sign * d) > thr).astype(np.uint8)
        rim = cv2.morphologyEx(rim, cv2.MORPH_CLOSE, kernel)
        inside = (1 - rim).astype(np.uint8)
        n, _, st, cen = cv2.connectedComponentsWithStats(inside, connectivity=4)
        if n <= 1:
            continue
        x, y, bw, bh, area = (st[1:, i].astype(np.float64) for i in range(5))
        keep = (
            (area >= amin)
            & (area <= amax)
            & (bw / bh > 0.75)
            & (bw / bh < 1.33)
            & (area / (bw * bh) > 0.55)
            & (x > 0)
            & (y > 0)
            & (x + bw < w)
            & (y + bh < h)
        )
        if keep.any():
            pts.append(cen[1:][keep])
            rad.append(((bw + bh) / 4)[keep])
        if CUT_CANDIDATES:
            c_pts, c_rad = _cut_candidates(x, y, bw, bh, area, w, h, 0.8 * rlo, 1.15 * rhi)
            pts.append(c_pts)
            rad.append(c_rad)
    if not pts:
        return np.zeros((0, 2)), np.zeros(0)
    return np.concatenate(pts), np.concatenate(rad)


#: interiors cut by the frame edge are candidates too (:func:`_cut_candidates`)
CUT_CANDIDATES = True


def _cut_candidates(x, y, bw, bh, area, w: int, h: int, rmin: float, rmax: float
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Candidates from enclosed regions that touch the frame edge (wells cut by it): the
    radius from a dimension whose both ends are seen, the centre a radius in from the seen
    end of a cut dimension (the middle when both ends are cut)."""
    lx, rx = x <= 0, x + bw >= w
    ty, by = y <= 0, y + bh >= h
    cut = lx | rx | ty | by
    known_x, known_y = ~(lx | rx), ~(ty | by)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(known_x & known_y, (bw + bh) / 4,
                     np.where(known_x, bw / 2, np.where(known_y, bh / 2, np.nan)))
        cx = np.where(lx & ~rx, x + bw - r, np.where(rx & ~lx, x + r, x + bw / 2))
        cy = np.where(ty & ~by, y + bh - r, np.where(by & ~ty, y + r, y + bh / 2))
        ok = (cut & np.isfinite(r) & (r >= rmin) & (r <= rmax)
              & (bw <= 2.1 * r) & (bh <= 2.1 * r) & (bw >= 0.6 * r) & (bh >= 0.6 * r)
              & (area / (bw * bh) > 0.55)
              & (cx >= 0) & (cx <= w - 1) & (cy >= 0) & (cy <= h - 1))
    return np.stack([cx[ok], cy[ok]], axis=1), r[ok]


def _hough_candidates(small: np.ndarray, rlo: float, rhi: float) -> tuple[np.ndarray, np.ndarray]:
    """Circles of a Hough transform (gradient method) on the illumination-flattened image."""
    s = _blur(small, 1.0)
    d = s - _blur(s, max(2.0, 0.5 * rhi))
    pts: list[np.ndarray] = []
    rad: list[np.ndarray] = []
    u8 = _to_u8(d)
    circles = cv2.HoughCircles(
        u8,
        cv2.HOUGH_GRADIENT_ALT,
        dp=1.5,
        minDist=max(4.0, 0.8 * rlo),
        param1=300,
        param2=0.7,
        minRadius=max(2, int(0.8 * rlo)),
        maxRadius=int(math.ceil(1.15 * rhi)),
    )
    if circles is not None and len(circles):
        c = circles.reshape(-1, 3).astype(np.float64)
        pts.append(c[:, :2])
        rad.append(c[:, 2])
    if not pts:
        return np.zeros((0, 2)), np.zeros(0)
    return np.concatenate(pts), np.concatenate(rad)


# --------------------------------------------------------------------------------------------
# wells: grid


@dataclass
class _Grid:
    """``centre(r, c) = origin + c * a + r * b`` with ``a = px (cos t, sin t)``,
    ``b = py (-sin t, cos t)``."""

    ox: float
    oy: float
    px: float
    py: float
    theta: float

    @property
    def a(self) -> np.ndarray:
        return self.px * np.array([math.cos(self.theta), math.sin(self.theta)])

    @property
    def b(self) -> np.ndarray:
        return self.py * np.array([-math.sin(self.theta), math.cos(self.theta)])

    def predict(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        return (
            np.array([self.ox, self.oy])
            + np.asarray(cols, float)[..., None] * self.a
            + np.asarray(rows, float)[..., None] * self.b
        )

    def indices(self, pts: np.ndarray) -> np.ndarray:
        """Fractional (row, col) of points."""
        m = np.stack([self.a, self.b])  # [c, r] @ m = p - o
        cr = (np.asarray(pts, float) - np.array([self.ox, self.oy])) @ np.linalg.inv(m)
        return cr[:, ::-1]

    def scaled(self, k: float) -> _Grid:
        return _Grid(self.ox * k, self.oy * k, self.px * k, self.py * k, self.theta)


def _fit_grid(
    pts: np.ndarray, rc: np.ndarray, init: _Grid, *, n_iter: int = 12
) -> tuple[_Grid, np.ndarray]:
    """Robust least-squares fit of the grid model (origin, pitch x / y, rotation) to points
    with known (row, col): Gauss-Newton with Huber weights (scale 2 % of the pitch).

    With a single row (column) of points the two pitches are tied together.
    """
    pts = np.asarray(pts, float)
    r = rc[:, 0].astype(float)
    c = rc[:, 1].astype(float)
    one_row, one_col = np.unique(r).size < 2, np.unique(c).size < 2
    p = np.array([init.ox, init.oy, init.px, init.py, init.theta], float)
    if one_row:
        p[3] = p[2]
    elif one_col:
        p[2] = p[3]
    huber = max(0.5, 0.02 * max(init.px, init.py))
    n = len(pts)
    for _ in range(n_iter):
        ox, oy, px, py, th = p
        ct, st = math.cos(th), math.sin(th)
        pred_x = ox + c * px * ct - r * py * st
        pred_y = oy + c * px * st + r * py * ct
        res = np.concatenate([pred_x - pts[:, 0], pred_y - pts[:, 1]])
        jac = np.zeros((2 * n, 5))
        jac[:n, 0] = 1.0
        jac[n:, 1] = 1.0
        jac[:n, 2], jac[n:, 2] = c * ct, c * st
        jac[:n, 3], jac[n:, 3] = -r * st, r * ct
        jac[:n, 4] = -c * px * st - r * py * ct
        jac[n:, 4] = c * px * ct - r * py * st
        if one_row:
            jac[:, 2] += jac[:, 3]
            jac[:, 3] = 0.0
        elif one_col:
            jac[:, 3] += jac[:, 2]
            jac[:, 2] = 0.0
        dist = np.hypot(res[:n], res[n:])
        wt = np.where(dist <= huber, 1.0, huber / np.maximum(dist, 1e-12))
        sw = np.sqrt(np.concatenate([wt, wt]))
        step = np.linalg.lstsq(jac * sw[:, None], -res * sw, rcond=None)[0]
        if one_row:
            step[3] = step[2]
        elif one_col:
            step[2] = step[3]
        p = p + step
        if np.abs(step[:4]).max() < 1e-4 and abs(step[4]) < 1e-7:
            break
    g = _Grid(*(float(v) for v in p))
    resid = np.linalg.norm(g.predict(r, c) - pts, axis=1)
    return g, resid


def wrap_pi(a: np.ndarray) -> np.ndarray:
    """Angles wrapped to [-pi, pi)."""
    return (np.asarray(a) + math.pi) % (2 * math.pi) - math.pi


def _common_pitches(d: np.ndarray, k: int = 3) -> list[float]:
    """Up to ``k`` most common distances among ``d`` (modes of a histogram with 3 % bins)."""
    d = np.asarray(d, float)
    d = d[d > 0]
    if d.size == 0:
        return []
    b = np.round(np.log(d) / 0.03).astype(np.int64)
    vals, counts = np.unique(b, return_counts=True)
    out = []
    for v in vals[np.argsort(-counts, kind="stable")][:k]:
        out.append(float(np.median(d[b == v])))
    return out


def _lattice(pts: np.ndarray, rad: np.ndarray, max_angle: float = math.radians(12)) -> _Grid | None:
    """Best lattice through the candidates (RANSAC over neighbouring pairs)."""
    n = len(pts)
    if n < 2:
        return None
    d = pts[None, :, :] - pts[:, None, :]
    dist = np.hypot(d[..., 0], d[..., 1])
    ang = np.arctan2(d[..., 1], d[..., 0])
    fold = (ang + math.pi / 4) % (math.pi / 2) - math.pi / 4
    smean = (rad[:, None] + rad[None, :]) / 2
    ok = (dist > 1.8 * smean) & (dist < 3.8 * smean) & (np.abs(fold) < max_angle)
    ok &= np.triu(np.ones((n, n), bool), 1)
    ii, jj = np.nonzero(ok)
    if ii.size == 0:
        return None
    if ii.size > 3000:
        pick = np.random.default_rng(0).choice(ii.size, 3000, replace=False)
        ii, jj = ii[pick], jj[pick]
    th = fold[ii, jj]
    p = dist[ii, jj]
    # rows and columns may have different pitches: a pair along the rows proposes the column
    # pitch, and the row pitch is its own or one of the common pitches of pairs across
    vertical = np.abs(np.abs(wrap_pi(ang[ii, jj])) - math.pi / 2) < math.pi / 4
    px_c = [p]
    py_c = [p]
    for dist_v in _common_pitches(p[vertical]):
        px_c.append(np.where(vertical, p, dist_v))
        py_c.append(np.where(vertical, dist_v, p))
    for dist_h in _common_pitches(p[~vertical]):
        px_c.append(np.where(vertical, dist_h, p))
        py_c.append(np.where(vertical, p, dist_h))
    hx = np.concatenate([np.asarray(a, float) for a in px_c])
    hy = np.concatenate([np.asarray(a, float) for a in py_c])
    k_rep = len(px_c)
    ii = np.tile(ii, k_rep)
    th = np.tile(th, k_rep)
    c, s = np.cos(th), np.sin(th)
    rel = pts[None, :, :] - pts[ii][:, None, :]  # (Hh, n, 2)
    qx = (rel[..., 0] * c[:, None] + rel[..., 1] * s[:, None]) / hx[:, None]
    qy = (-rel[..., 0] * s[:, None] + rel[..., 1] * c[:, None]) / hy[:, None]
    err = np.maximum(np.abs(qx - np.round(qx)), np.abs(qy - np.round(qy)))
    ratio = rad[None, :] / rad[ii][:, None]
    inl = (err < 0.22) & (ratio > 0.65) & (ratio < 1.55)
    # most inliers; among equals, the larger pitches (a lattice of half the pitch explains
    # the same points)
    score = inl.sum(axis=1) + 1e-3 * (hx + hy) / (hx + hy).max()
    best = int(np.argmax(score))
    o = pts[ii[best]]
    grid = _Grid(float(o[0]), float(o[1]), float(hx[best]), float(hy[best]), float(th[best]))
    # refine: re-assign indices and re-fit a few times
    for tol in (0.25, 0.2, 0.15):
        rcf = grid.indices(pts)
        rc = np.round(rcf)
        inlier = (np.abs(rcf - rc).max(axis=1) < tol) & (
            np.abs(np.log(rad / np.median(rad[np.abs(rcf - rc).max(axis=1) < tol]))) < 0.45
        )
        if inlier.sum() < 2:
            break
        grid, _ = _fit_grid(pts[inlier], rc[inlier], grid)
    return grid


# --------------------------------------------------------------------------------------------
# wells: detection


def _radius_range(cfg: ArenasConfig, frame: tuple[int, int]) -> tuple[float, float]:
    h, w = frame
    if cfg.well_radius_px is not None:
        return 0.8 * cfg.well_radius_px, 1.25 * cfg.well_radius_px
    pmax = min(w / cfg.cols, h / cfg.rows)
    return 0.08 * pmax, 0.52 * pmax


#: faint rims (dark-field): when no plate is found on the image blurred by 1 px, the rims are
#: measured again on the image blurred by this fraction of the candidates' radius (at least
#: 1.5 px); None: off
FAINT_RIM_SIGMA: float | None = 0.03


def _detect_wells(img: np.ndarray, cfg: ArenasConfig, info: dict) -> list[Arena]:
    h, w = img.shape
    n_wells = cfg.rows * cfg.cols
    rlo, rhi = _radius_range(cfg, img.shape)
    f = min(1.0, 30.0 / rhi)
    small = cv2.resize(
        img, (max(16, round(w * f)), max(16, round(h * f))), interpolation=cv2.INTER_AREA
    )
    f = (small.shape[1] / w + small.shape[0] / h) / 2
    smooth = _blur(img, 1.0)
    info["expected"] = n_wells
    cand, crad = _rim_candidates(small, rlo * f, rhi * f)
    # Hough circles only when the rim regions do not suffice (slower, more false positives)
    best_err: _WellsNotFound | None = None
    rim_cand = (cand, crad)
    attempts: list[tuple[str, float]] = [("rims", 1.0), ("rims+hough", 1.0)]
    if FAINT_RIM_SIGMA is not None:
        attempts += [("rims", FAINT_RIM_SIGMA), ("rims+hough", FAINT_RIM_SIGMA)]
    hough: tuple[np.ndarray, np.ndarray] | None = None
    for attempt, sigma in attempts:
        if sigma != 1.0:
            # faint rims: measured again on a smoother image (rim radius x FAINT_RIM_SIGMA),
            # only when the sharp image gave no plate
            r_est = float(np.median(rim_cand[1] / f)) if len(rim_cand[1]) else 0.5 * (rlo + rhi)
            smooth = _blur(img, max(1.5, sigma * r_est))
        if attempt == "rims":
            cand, crad = rim_cand
            if n_wells == 1 or len(cand) < 2:
                continue
        else:
            if hough is None:
                hough = _hough_candidates(small, rlo * f, rhi * f)
            if len(hough[0]) == 0:
                continue
            cand = np.concatenate([rim_cand[0], hough[0]])
            crad = np.concatenate([rim_cand[1], hough[1]])
        info["candidates"] = int(len(cand))
        try:
            arenas, fit = _wells_from_candidates(img, smooth, cand / f, crad / f, cfg, (rlo, rhi))
        except _WellsNotFound as err:
            if err.final:
                info["found"] = err.found
                raise ArenaError(str(err)) from None
            if best_err is None or err.found >= best_err.found:
                best_err = err
            continue
        info.update(fit.diagnostics())
        return arenas
    if best_err is None:
        best_err = _WellsNotFound(
            f"found 0 of {n_wells} wells ({cfg.rows} x {cfg.cols} plate): no well rim was "
            f"found; {_BBOX_HINT}", 0
        )
    info["found"] = best_err.found
    raise ArenaError(str(best_err)) from None


# ratios of the well-grid fit (docs/arenas.md, "How wells are found")
#: a candidate lies on the lattice when it is within this fraction of a pitch of a node
GRID_INLIER_PITCH = 0.2
#: the wells' median radius must lie within these factors of the radius range searched
RADIUS_SLACK = (0.7, 1.3)
#: wells of a plausible plate are at least this many radii apart, centre to centre (rims of
#: neighbouring wells may touch or overlap a little; wells cannot lie inside each other)
MIN_PITCH_RADII = 1.44
#: a grid node is in the frame when the well's centre lies at least this many radii inside
IN_FRAME_RADII = 0.5
#: second pass, with the grid and well size known: a well is confirmed with at least this
#: much rim support ...
REFIT_SUPPORT = 0.5
#: ... a radius within max(px, fraction x the median) of the median radius ...
REFIT_RADIUS_TOL = (1.5, 0.05)
#: ... a centre within this fraction of a pitch of its grid node ...
REFIT_SHIFT_PITCH = 0.1
#: ... and a rim at least this fraction of the median rim strength
REFIT_STRENGTH = 0.25


class _WellsNotFound(ArenaError):
    """The wells could not be fitted from one set of candidates. ``found``: wells seen (the
    attempt that saw most is reported); ``final``: no other candidate set can help. Internal:
    :func:`detect_arenas` raises a plain :class:`ArenaError` with its message."""

    def __init__(self, message: str, found: int = 0, *, final: bool = False):
        super().__init__(message)
        self.found = int(found)
        self.final = final


@dataclass
class _WellFit:
    """What the grid fit found; :func:`detect_arenas` copies it into its diagnostics."""

    found: int
    shape: str
    pitch_px: tuple[float, float] | None = None
    angle_deg: float | None = None
    fit_rms_px: float | None = None
    radius_px: float | None = None
    shape_support: dict[str, float] | None = None

    def diagnostics(self) -> dict:
        """The fields that are set, as a dict."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclass
class _Lattice:
    """A lattice fitted to the candidates: ``rc`` each candidate's nearest node (row, col),
    ``on`` whether it lies on it, ``r0`` their median radius, ``pitch`` the smaller pitch."""

    grid: _Grid
    rc: np.ndarray
    on: np.ndarray
    r0: float
    pitch: float


@dataclass
class _Nodes:
    """The lattice nodes every placement of the plate could use, plus one row and column
    around them: node numbers ``rows`` x ``cols`` (meshes ``grr``, ``gcc``), predicted centres
    ``pred`` (row-major, flat), which of them are in the frame, and the placements' first row
    and column (``r_starts``, ``c_starts``)."""

    rows: np.ndarray
    cols: np.ndarray
    grr: np.ndarray
    gcc: np.ndarray
    pred: np.ndarray
    in_frame: np.ndarray
    r_starts: range
    c_starts: range

    @property
    def idx_in(self) -> np.ndarray:
        return np.flatnonzero(self.in_frame)

    def grid_of(self, values_in: np.ndarray, fill: Any) -> np.ndarray:
        """Values measured at the in-frame nodes as a (rows, cols, ...) grid, ``fill`` elsewhere."""
        values_in = np.asarray(values_in)
        full = np.full((len(self.pred), *values_in.shape[1:]), fill,
                       dtype=np.result_type(values_in, np.asarray(fill)))
        full[self.idx_in] = values_in
        return full.reshape(*self.grr.shape, *values_in.shape[1:])


def _wells_from_candidates(
    img: np.ndarray,
    smooth: np.ndarray,
    cand: np.ndarray,
    crad: np.ndarray,
    cfg: ArenasConfig,
    radius_range: tuple[float, float],
) -> tuple[list[Arena], _WellFit]:
    """The plate from candidate centres / radii (full-resolution px): a lattice fitted to the
    candidates, rims measured at every node the plate could cover, the shape and the placement
    with most wells found, that placement checked, the grid refitted on the found wells and
    every well measured again with the grid and size known (:func:`_second_pass`)."""
    n_rows, n_cols = cfg.rows, cfg.cols
    shapes: tuple[str, ...] = ("circle", "square") if cfg.shape == "auto" else (cfg.shape,)
    fail = _failure(n_rows, n_cols)
    if n_rows * n_cols == 1:
        return _single_well(smooth, cand, crad, shapes, cfg, fail)
    lat = _fit_lattice(cand, crad, radius_range, fail)
    nodes = _plate_nodes(lat, n_rows, n_cols, img.shape, fail)
    idx_in = nodes.idx_in
    fits = _measure_wells(smooth, nodes.pred[idx_in], lat.r0, lat.grid.theta, shapes)
    seen_in = _seen(lat, nodes)[idx_in]
    shape, shape_support = _choose_shape(fits, seen_in, shapes)
    fit = fits[shape]
    found = nodes.grid_of(_confirm(fit, nodes.pred[idx_in], lat.r0, lat.pitch, seen_in), False)
    i0, j0 = _best_placement(nodes, found, nodes.grid_of(fit.support, 0.0), n_rows, n_cols)
    sel = (slice(i0, i0 + n_rows), slice(j0, j0 + n_cols))
    win = found[sel]
    n_found = int(win.sum())
    _check_placement(found, nodes.in_frame.reshape(nodes.grr.shape)[sel], i0, j0, cfg, fail)
    pos = nodes.grid_of(np.stack([fit.cx, fit.cy, fit.radius], axis=1), np.nan)[sel]
    # the grid refitted on the found wells (full resolution)
    sub_r, sub_c = nodes.grr[sel], nodes.gcc[sel]
    rc_found = np.stack([sub_r[win] - sub_r[0, 0], sub_c[win] - sub_c[0, 0]], axis=1)
    g0 = lat.grid.predict(np.array([sub_r[0, 0]]), np.array([sub_c[0, 0]]))[0]
    init = _Grid(float(g0[0]), float(g0[1]), lat.grid.px, lat.grid.py, lat.grid.theta)
    fgr, res = _fit_grid(pos[win][:, :2], rc_found, init)
    r_med = float(np.median(pos[win][:, 2]))
    allp = fgr.predict(*np.mgrid[0:n_rows, 0:n_cols])
    h, w = img.shape
    if ((allp[..., 0] < 0) | (allp[..., 0] > w - 1) | (allp[..., 1] < 0) | (allp[..., 1] > h - 1)).any():
        raise fail(n_found, "the fitted grid puts some wells outside the frame")
    fgr, res, r_med, pos, win = _second_pass(smooth, fgr, res, r_med, shape, lat.pitch, pos, win,
                                             n_rows, n_cols)
    allp = fgr.predict(*np.mgrid[0:n_rows, 0:n_cols])
    out = []
    for i in range(n_rows):
        for j in range(n_cols):
            if win[i, j]:
                cx, cy, rad = pos[i, j]
            else:
                (cx, cy), rad = allp[i, j], r_med
            out.append(_make_arena(i, j, shape, cx, cy, rad, img.shape, margin=cfg.margin_px,
                                   angle=fgr.theta, found=bool(win[i, j])))
    record = _WellFit(
        found=int(win.sum()), shape=shape, pitch_px=(float(fgr.px), float(fgr.py)),
        angle_deg=float(math.degrees(fgr.theta)), fit_rms_px=float(np.sqrt(np.mean(res**2))),
        radius_px=r_med, shape_support=shape_support,
    )
    return out, record


def _failure(n_rows: int, n_cols: int):
    """``fail(found, why, hint)``: the :class:`_WellsNotFound` of a plate of this size."""
    n_wells = n_rows * n_cols

    def fail(found: int, why: str, hint: str = _BBOX_HINT) -> _WellsNotFound:
        return _WellsNotFound(
            f"found {found} of {n_wells} wells ({n_rows} x {n_cols} plate): {why}; {hint}", found)

    return fail


def _fit_lattice(cand: np.ndarray, crad: np.ndarray, radius_range: tuple[float, float],
                 fail) -> _Lattice:
    """A lattice through the candidates, refused unless at least two lie on it with a
    plausible radius and pitch (:data:`RADIUS_SLACK`, :data:`MIN_PITCH_RADII`)."""
    grid = _lattice(cand, crad)
    if grid is None:
        raise fail(_count_unique(cand, crad), "no regular grid of well rims was found")
    rcf = grid.indices(cand)
    rc = np.round(rcf).astype(int)
    on = np.abs(rcf - rc).max(axis=1) < GRID_INLIER_PITCH
    if on.sum() < 2:
        raise fail(int(on.sum()), "no regular grid of well rims was found")
    r0 = float(np.median(crad[on]))
    pitch = min(grid.px, grid.py)
    rlo, rhi = radius_range
    if not rlo * RADIUS_SLACK[0] <= r0 <= rhi * RADIUS_SLACK[1] or pitch < MIN_PITCH_RADII * r0:
        raise fail(0, "the well-like shapes seen do not form a plausible plate")
    return _Lattice(grid, rc, on, r0, pitch)


def _plate_nodes(lat: _Lattice, n_rows: int, n_cols: int, frame: tuple[int, int],
                 fail) -> _Nodes:
    """Every node a placement of the plate over the candidates on the lattice could use."""
    rc = lat.rc[lat.on]

    def starts(lo: int, hi: int, n: int) -> range:
        span = hi - lo + 1
        return range(hi - n + 1, lo + 1) if span <= n else range(lo, hi - n + 2)

    r_starts = starts(rc[:, 0].min(), rc[:, 0].max(), n_rows)
    c_starts = starts(rc[:, 1].min(), rc[:, 1].max(), n_cols)
    rows = np.arange(min(r_starts) - 1, max(r_starts) + n_rows + 1)
    cols = np.arange(min(c_starts) - 1, max(c_starts) + n_cols + 1)
    grr, gcc = np.meshgrid(rows, cols, indexing="ij")
    pred = lat.grid.predict(grr.ravel(), gcc.ravel())
    h, w = frame
    m = IN_FRAME_RADII * lat.r0
    in_frame = ((pred[:, 0] - m >= 0) & (pred[:, 0] + m <= w - 1)
                & (pred[:, 1] - m >= 0) & (pred[:, 1] + m <= h - 1))
    if not in_frame.any():
        raise fail(int(lat.on.sum()), "the fitted grid lies outside the frame")
    return _Nodes(rows, cols, grr, gcc, pred, in_frame, r_starts, c_starts)


def _seen(lat: _Lattice, nodes: _Nodes) -> np.ndarray:
    """Per node (flat): a candidate on the lattice was seen there."""
    key = {(int(a), int(b)): i
           for i, (a, b) in enumerate(zip(nodes.grr.ravel(), nodes.gcc.ravel(), strict=True))}
    seen = np.zeros(len(nodes.pred), bool)
    for a, b in lat.rc[lat.on]:
        i = key.get((int(a), int(b)))
        if i is not None:
            seen[i] = True
    return seen


def _choose_shape(fits: dict[str, _Fit], seen: np.ndarray, shapes: tuple[str, ...]
                  ) -> tuple[str, dict[str, float] | None]:
    """The configured shape, or (``auto``) the one whose rims are better supported where
    candidates were seen (everywhere if none was); with the support of each."""
    if len(shapes) == 1:
        return shapes[0], None
    where = seen if seen.any() else np.ones_like(seen)
    score = {s: float(np.mean(fits[s].support[where])) for s in shapes}
    return max(score, key=score.get), score


def _best_placement(nodes: _Nodes, found: np.ndarray, support: np.ndarray, n_rows: int,
                    n_cols: int) -> tuple[int, int]:
    """First row and column (in node-grid coordinates) of the placement with most wells found,
    ties broken by the number of its wells in the frame (a plate whose outer wells are cut by
    the frame edge is not shifted off the image), then by total rim support."""
    in_frame = nodes.in_frame.reshape(nodes.grr.shape)
    best, best_key = (0, 0), (-1, -1, -1.0)
    for r_s in nodes.r_starts:
        for c_s in nodes.c_starts:
            i0, j0 = r_s - nodes.rows[0], c_s - nodes.cols[0]
            sel = (slice(i0, i0 + n_rows), slice(j0, j0 + n_cols))
            k = (int(found[sel].sum()), int(in_frame[sel].sum()), float(support[sel].sum()))
            if k > best_key:
                best, best_key = (int(i0), int(j0)), k
    return best


def _check_placement(found: np.ndarray, in_frame: np.ndarray, i0: int, j0: int,
                     cfg: ArenasConfig, fail) -> None:
    """Refuse a placement: more wells next to it than configured, too few found
    (``arenas.min_found_fraction``), wells outside the image, or a first or last row or column
    without a found well (the plate's position is then ambiguous)."""
    n_rows, n_cols = cfg.rows, cfg.cols
    n_wells = n_rows * n_cols
    win = found[i0 : i0 + n_rows, j0 : j0 + n_cols]
    n_found = int(win.sum())
    _check_extra(found, i0, j0, n_rows, n_cols, f"{n_rows} x {n_cols}", n_found, n_wells)
    need = max(2, math.ceil(cfg.min_found_fraction * n_wells))
    if n_found < need:
        raise fail(n_found, f"at least {need} are needed to fit the grid "
                            f"(arenas.min_found_fraction={cfg.min_found_fraction:g})")
    if not in_frame.all():
        raise fail(
            n_found,
            f"{int((~in_frame).sum())} wells of the grid fitted to them would lie outside the image",
            "make the whole plate visible (camera position, video.crop), or " + _BBOX_HINT,
        )
    for axis, n, label in ((1, n_rows, "row"), (0, n_cols, "column")):
        per = win.sum(axis=axis)
        for end in (0, n - 1):
            if n > 1 and per[end] == 0:
                name = arena_name(end, 0)[:-1] if label == "row" else str(end + 1)
                raise fail(n_found, f"no well rim found in {label} {name}, so the plate's "
                                    "position is ambiguous")


def _second_pass(smooth: np.ndarray, fgr: _Grid, res: np.ndarray, r_med: float, shape: str,
                 pitch: float, pos: np.ndarray, win: np.ndarray, n_rows: int, n_cols: int):
    """Every well measured again at its grid position with the well size known; when at
    least half as many wells (and two) are confirmed as before (:data:`REFIT_SUPPORT`,
    :data:`REFIT_RADIUS_TOL`, :data:`REFIT_SHIFT_PITCH`, :data:`REFIT_STRENGTH`), the grid is
    refitted on them. Returns the grid, its residuals, the median radius, the wells' (x, y,
    radius) and which were found."""
    allp = fgr.predict(*np.mgrid[0:n_rows, 0:n_cols])
    fit2 = _remeasure(smooth, allp.reshape(-1, 2), r_med, fgr.theta, shape)
    shift = np.hypot(fit2.cx - allp[..., 0].ravel(), fit2.cy - allp[..., 1].ravel())
    tol_px, tol_frac = REFIT_RADIUS_TOL
    ok = (
        (fit2.support >= REFIT_SUPPORT)
        & np.isfinite(fit2.radius)
        & (np.abs(np.nan_to_num(fit2.radius) - r_med) <= max(tol_px, tol_frac * r_med))
        & (shift < REFIT_SHIFT_PITCH * pitch)
    )
    if ok.sum() >= 2:
        ok &= fit2.strength >= REFIT_STRENGTH * float(np.median(fit2.strength[ok]))
    found2 = ok.reshape(n_rows, n_cols)
    if found2.sum() < max(2, int(win.sum()) // 2):
        return fgr, res, r_med, pos, win
    pos2 = np.stack([fit2.cx, fit2.cy, fit2.radius], axis=1).reshape(n_rows, n_cols, 3)
    fgr, res = _fit_grid(pos2[found2][:, :2], np.argwhere(found2), fgr)
    return fgr, res, float(np.median(pos2[found2][:, 2])), pos2, found2


def _count_unique(pts: np.ndarray, rad: np.ndarray) -> int:
    """Number of distinct candidate positions (duplicates from the two detectors merged)."""
    if len(pts) == 0:
        return 0
    d = np.hypot(*(pts[None] - pts[:, None]).transpose(2, 0, 1))
    close = d < 0.5 * np.minimum(rad[None], rad[:, None])
    return int(sum(1 for i in range(len(pts)) if not close[i, :i].any()))


def _measure_wells(
    smooth: np.ndarray, centres: np.ndarray, r0: float, theta: float, shapes: Iterable[str]
) -> dict[str, _Fit]:
    k = len(centres)
    n_ang = 90
    phi = theta + np.linspace(0, 2 * math.pi, n_ang, endpoint=False)
    phi = np.broadcast_to(phi, (k, n_ang)).copy()
    rho0 = np.full((k, n_ang), r0)
    rays = _cast_rays(
        smooth,
        centres[:, 0].astype(float),
        centres[:, 1].astype(float),
        rho0,
        phi,
        lo=0.55,
        hi=1.45,
    )
    out: dict[str, _Fit] = {}
    for s in shapes:
        if s == "circle":
            out[s] = _fit_circles(rays)
        else:
            h0 = np.full(k, r0)
            out[s] = _fit_boxes(rays, theta, h0, h0)
    return out


def _remeasure(
    smooth: np.ndarray, centres: np.ndarray, radius: float, theta: float, shape: str
) -> _Fit:
    """Second pass at known grid positions and well size: on every ray the strong edge
    nearest to the expected wall (a fish or a speck lying along the wall no longer hides it)."""
    k = len(centres)
    n_ang = 90
    phi = theta + np.linspace(0, 2 * math.pi, n_ang, endpoint=False)
    phi = np.broadcast_to(phi, (k, n_ang)).copy()
    if shape == "circle":
        rho0 = np.full((k, n_ang), radius)
    else:
        rel = phi - theta
        rho0 = radius / np.maximum(np.abs(np.cos(rel)), np.abs(np.sin(rel)))
    rays = _cast_rays(
        smooth,
        centres[:, 0].astype(float),
        centres[:, 1].astype(float),
        rho0,
        phi,
        lo=0.75,
        hi=1.25,
        rel=0.25,
        expect=rho0,
    )
    if shape == "circle":
        return _fit_circles(rays)
    h0 = np.full(k, radius)
    return _fit_boxes(rays, theta, h0, h0)


def _confirm(fit: _Fit, pred: np.ndarray, r0: float, pitch: float, seen: np.ndarray) -> np.ndarray:
    """Wells whose rim was found: good support, consistent size and position."""
    shift = np.hypot(fit.cx - pred[:, 0], fit.cy - pred[:, 1])
    ok = (
        (fit.support >= 0.5)
        & np.isfinite(fit.radius)
        & (fit.radius > 0.5 * r0)
        & (fit.radius < 1.6 * r0)
        & (shift < 0.2 * pitch)
    )
    if ok.sum() >= 2:
        ref = ok & seen if (ok & seen).sum() >= 2 else ok
        s_ref = float(np.median(fit.strength[ref]))
        r_ref = float(np.median(fit.radius[ref]))
        ok &= fit.strength >= 0.25 * s_ref
        ok &= np.abs(fit.radius - r_ref) <= 0.12 * r_ref + 1.0
    return ok


def _check_extra(
    fgrid: np.ndarray,
    i0: int,
    j0: int,
    n_rows: int,
    n_cols: int,
    expected: str,
    n_found: int,
    n_wells: int,
) -> None:
    """Refuse a plate with more wells than configured (a found row / column next to it)."""
    extra_rows = [i0 - 1, i0 + n_rows]
    extra_cols = [j0 - 1, j0 + n_cols]
    band_c = slice(j0, j0 + n_cols)
    band_r = slice(i0, i0 + n_rows)
    more_r = any(
        0 <= i < fgrid.shape[0] and fgrid[i, band_c].sum() >= max(2, math.ceil(0.5 * n_cols))
        for i in extra_rows
    )
    more_c = any(
        0 <= j < fgrid.shape[1] and fgrid[band_r, j].sum() >= max(2, math.ceil(0.5 * n_rows))
        for j in extra_cols
    )
    if more_r or more_c:
        what = " and ".join(
            x for x, m in (("another row", more_r), ("another column", more_c)) if m
        )
        raise _WellsNotFound(
            f"found {n_found} of {n_wells} wells ({expected} plate) and {what} of wells next to "
            f"them: the plate has more wells than arenas.rows x arenas.cols = {expected}; set "
            f"arenas.rows and arenas.cols to the plate's size (e.g. 8 x 12 for 96 wells), "
            f"{_HELP}",
            n_found,
            final=True,
        )


def _single_well(
    smooth: np.ndarray,
    cand: np.ndarray,
    crad: np.ndarray,
    shapes: tuple[str, ...],
    cfg: ArenasConfig,
    fail: Any,
) -> tuple[list[Arena], _WellFit]:
    """rows = cols = 1: the largest candidate with a well-supported rim."""
    if len(cand) == 0:
        raise fail(0, "no well rim was found")
    order = np.argsort(-crad)[:20]
    best: tuple[float, Arena] | None = None
    for s in shapes:
        for i in order:
            fit = _measure_wells(smooth, cand[i : i + 1], float(crad[i]), 0.0, (s,))[s]
            if fit.support[0] < 0.5 or not np.isfinite(fit.radius[0]):
                continue
            score = float(fit.support[0]) * float(fit.radius[0])
            if best is None or score > best[0]:
                a = _make_arena(
                    0,
                    0,
                    s,
                    fit.cx[0],
                    fit.cy[0],
                    fit.radius[0],
                    smooth.shape,
                    margin=cfg.margin_px,
                )
                best = (score, a)
    if best is None:
        raise fail(0, "no well rim was found")
    return [best[1]], _WellFit(found=1, shape=best[1].shape)


# --------------------------------------------------------------------------------------------
# chamber


def _chamber(img: np.ndarray, cfg: ArenasConfig, info: dict) -> list[Arena]:
    h, w = img.shape
    whole = _rect_arena(0, 0, (0, 0, w, h), found=False)
    if cfg.bbox is not None:
        info["method"] = "bbox"
        x0, y0, x1, y1 = cfg.bbox
        if cfg.shape == "auto":
            box = (max(0, round(x0)), max(0, round(y0)), min(w, round(x1)), min(h, round(y1)))
            return [_rect_arena(0, 0, box, margin=cfg.margin_px)]
        return grid_arenas(
            img.shape,
            1,
            1,
            cfg.bbox,
            shape=cfg.shape,
            margin=cfg.margin_px,
            well_radius=min(x1 - x0, y1 - y0) / 2,
        )
    info["method"] = "detected"
    found = _find_chamber(img, cfg)
    if found is None:
        info["found"] = 0
        warnings.warn(
            "no chamber wall was found in the background; the whole frame is the arena "
            "(set arenas.bbox to restrict it)",
            stacklevel=3,
        )
        return [whole]
    info["found"] = 1
    info["shape"] = found.shape
    return [found]


def _find_chamber(img: np.ndarray, cfg: ArenasConfig) -> Arena | None:
    h, w = img.shape
    f = min(1.0, 256.0 / max(h, w))
    small = cv2.resize(
        img, (max(16, round(w * f)), max(16, round(h * f))), interpolation=cv2.INTER_AREA
    )
    sh, sw = small.shape
    fx, fy = sw / w, sh / h
    s = _blur(small, max(1.0, 0.01 * max(sh, sw)))
    u8 = _to_u8(s)
    t, _ = cv2.threshold(u8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    rng = float(np.percentile(img, 99) - np.percentile(img, 1))
    noise = robust_sigma(img - _blur(img, 2.0), max_n=_NOISE_MAX_N, empty=0.0)
    k = max(3, int(round(0.02 * max(sh, sw))) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    border = np.zeros((sh, sw), bool)
    border[0, :] = border[-1, :] = border[:, 0] = border[:, -1] = True
    best: tuple[float, np.ndarray] | None = None
    for m in (u8 > t, u8 <= t):
        m8 = cv2.morphologyEx(m.astype(np.uint8), cv2.MORPH_OPEN, kernel)
        n, lab, st, _ = cv2.connectedComponentsWithStats(m8, connectivity=8)
        if n <= 1:
            continue
        i = 1 + int(np.argmax(st[1:, cv2.CC_STAT_AREA]))
        comp = (lab == i).astype(np.uint8)
        contours, _ = cv2.findContours(comp, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cnt = max(contours, key=cv2.contourArea)
        filled = np.zeros_like(comp)
        cv2.drawContours(filled, [cnt], -1, 1, thickness=-1)
        area = float(filled.sum())
        frac = area / (sh * sw)
        contact = float((filled.astype(bool) & border).sum()) / border.sum()
        hull = cv2.convexHull(cnt)
        solidity = area / max(1.0, float(cv2.contourArea(hull)))
        fb = filled.astype(bool)
        ring = cv2.dilate(filled, kernel, iterations=3).astype(bool) & ~fb
        if not ring.any():
            continue
        contrast = abs(float(s[fb].mean()) - float(s[ring].mean()))
        clear = contrast >= max(0.1 * rng, 4 * noise)
        if 0.1 <= frac <= 0.97 and contact < 0.3 and solidity > 0.9 and clear:
            if best is None or area > best[0]:
                best = (area, cnt)
    if best is None:
        return None
    area, cnt = best
    pts = cnt.reshape(-1, 2).astype(np.float64)
    pts[:, 0] /= fx
    pts[:, 1] /= fy
    area /= fx * fy
    smooth = _blur(img, 1.0)
    (ccx, ccy), crad = cv2.minEnclosingCircle(pts.astype(np.float32))
    fill_circle = area / (math.pi * crad * crad)
    rect = cv2.minAreaRect(pts.astype(np.float32))
    fill_rect = area / max(1.0, rect[1][0] * rect[1][1])
    n_ang = 360
    phi = np.linspace(0, 2 * math.pi, n_ang, endpoint=False)[None, :]
    if cfg.shape != "square" and (fill_circle >= 0.8 or cfg.shape == "circle"):
        r0 = math.sqrt(area / math.pi)
        mx, my = pts.mean(axis=0)
        rays = _cast_rays(
            smooth, np.array([mx]), np.array([my]), np.full((1, n_ang), r0), phi, lo=0.8, hi=1.2
        )
        fit = _fit_circles(rays)
        if fit.support[0] >= 0.5 and np.isfinite(fit.radius[0]):
            cx, cy, r = float(fit.cx[0]), float(fit.cy[0]), float(fit.radius[0])
        else:
            cx, cy, r = float(mx), float(my), r0
        return _make_arena(0, 0, "circle", cx, cy, r, img.shape, margin=cfg.margin_px)
    if fill_rect < 0.85:
        return None
    x, y, bw, bh = cv2.boundingRect(pts.astype(np.float32))
    hx0, hy0 = bw / 2.0, bh / 2.0
    mx, my = x + hx0, y + hy0
    side, _ = _ray_sides(phi, np.array([hx0]), np.array([hy0]))
    with np.errstate(divide="ignore"):
        rho0 = np.where(
            (side == 0) | (side == 2), hx0 / np.abs(np.cos(phi)), hy0 / np.abs(np.sin(phi))
        )
    rays = _cast_rays(smooth, np.array([mx]), np.array([my]), rho0, phi, lo=0.85, hi=1.15)
    fit = _fit_boxes(rays, 0.0, np.array([hx0]), np.array([hy0]))
    if fit.support[0] >= 0.5 and np.isfinite(fit.radius[0]):
        cx, cy = float(fit.cx[0]), float(fit.cy[0])
        hx, hy = float(fit.hx[0]), float(fit.hy[0])  # type: ignore[attr-defined]
    else:
        cx, cy, hx, hy = mx, my, hx0, hy0
    near_square = abs(hx - hy) <= max(2.0, 0.03 * max(hx, hy))
    if cfg.shape == "square" or near_square:
        return _make_arena(0, 0, "square", cx, cy, (hx + hy) / 2, img.shape, margin=cfg.margin_px)
    box = (
        max(0, int(math.ceil(cx - hx))),
        max(0, int(math.ceil(cy - hy))),
        min(w, int(math.floor(cx + hx)) + 1),
        min(h, int(math.floor(cy + hy)) + 1),
    )
    return _rect_arena(0, 0, box, margin=cfg.margin_px)


# --------------------------------------------------------------------------------------------
# drawing


def _to_bgr8(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image)
    if a.dtype != np.uint8:
        a = a.astype(np.float64)
        finite = a[np.isfinite(a)]
        hi = float(finite.max()) if finite.size else 1.0
        if hi <= 1.0:
            a = a * 255.0
        a = np.clip(np.nan_to_num(a), 0, 255).astype(np.uint8)
    if a.ndim == 2:
        return cv2.cvtColor(a, cv2.COLOR_GRAY2BGR)
    if a.ndim == 3 and a.shape[2] == 1:
        return cv2.cvtColor(a[..., 0], cv2.COLOR_GRAY2BGR)
    if a.ndim == 3 and a.shape[2] == 4:
        return cv2.cvtColor(a, cv2.COLOR_BGRA2BGR)
    if a.ndim == 3 and a.shape[2] == 3:
        return a.copy()
    raise ValueError(f"image must be (H, W) grey or (H, W, 3) BGR; got shape {a.shape}")


def _outline(a: Arena) -> np.ndarray:
    """Closed polygon (N, 2) of an arena's outline (wall edge), full-frame px."""
    if a.shape == "circle":
        t = np.linspace(0, 2 * math.pi, 96, endpoint=False)
        return np.stack([a.cx + a.radius * np.cos(t), a.cy + a.radius * np.sin(t)], axis=1)
    if a.shape == "square":
        c, s = math.cos(a.angle), math.sin(a.angle)
        uv = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], float) * a.radius
        return np.stack(
            [a.cx + uv[:, 0] * c - uv[:, 1] * s, a.cy + uv[:, 0] * s + uv[:, 1] * c], axis=1
        )
    x0, y0, x1, y1 = a.bbox
    return np.array(
        [[x0 - 0.5, y0 - 0.5], [x1 - 0.5, y0 - 0.5], [x1 - 0.5, y1 - 0.5], [x0 - 0.5, y1 - 0.5]],
        float,
    )


def draw_arenas(
    image: np.ndarray,
    arenas: Iterable[Arena],
    *,
    colour: tuple[int, int, int] = (0, 220, 0),
    inferred_colour: tuple[int, int, int] = (0, 140, 255),
    label: Literal["centre", "corner"] = "centre",
) -> np.ndarray:
    """Draw arena outlines and names on a copy of ``image`` (grey or BGR).

    ``label="corner"`` writes smaller names at the top-left corner of each arena's box, so
    they do not hide the fish (used by tracking previews).

    Outlines are drawn along the wall (``radius``); the tracked area (``radius - margin``) is
    drawn thin inside when the margin is at least 2 px. Names are centred in each arena, sized
    to the arenas (same size for all, at most 5 % of the image height) and drawn black with a
    white halo on bright arenas, white with a black halo on dark ones. Arenas filled in from
    the grid (``found=False``) are outlined in ``inferred_colour`` (orange) so they can be
    checked first.

    Returns
    -------
    numpy.ndarray
        ``(H, W, 3)`` uint8 BGR.
    """
    out = _to_bgr8(image)
    arenas = list(arenas)
    if not arenas:
        return out
    h, w = out.shape[:2]
    sizes = []
    for a in arenas:
        x0, y0, x1, y1 = a.bbox
        sizes.append(2 * a.radius if np.isfinite(a.radius) else min(x1 - x0, y1 - y0))
    size = max(4.0, float(np.median(sizes)))
    lw = max(1, int(round(size / 120)))
    shift = 4
    font = cv2.FONT_HERSHEY_SIMPLEX
    longest = max((a.name for a in arenas), key=len)
    tw1, _ = cv2.getTextSize(longest, font, 1.0, 1)[0]
    frac = 0.45 if label == "centre" else 0.2
    scale = float(np.clip(frac * size / max(tw1, 1), 0.3, 4.0))
    scale = min(scale, max(0.3, 0.05 * min(h, w) / 22.0))  # text <= 5 % of the image
    tk = max(1, int(round(scale * 1.6)))
    halo_px = 1 if scale < 0.5 else 2 * max(1, tk // 2 + 1)
    grey = cv2.cvtColor(out, cv2.COLOR_BGR2GRAY)
    for a in arenas:
        col = colour if a.found else inferred_colour
        poly = np.round(_outline(a) * (1 << shift)).astype(np.int32)
        cv2.polylines(out, [poly], True, (0, 0, 0), lw + 2, cv2.LINE_AA, shift=shift)
        cv2.polylines(out, [poly], True, col, lw, cv2.LINE_AA, shift=shift)
        if a.margin >= 2 and a.shape != "rect" and a.inner_radius > 2:
            inner = Arena(
                a.name, a.row, a.col, a.shape, a.cx, a.cy, a.inner_radius, a.bbox, angle=a.angle
            )
            ip = np.round(_outline(inner) * (1 << shift)).astype(np.int32)
            cv2.polylines(out, [ip], True, col, 1, cv2.LINE_AA, shift=shift)
        (tw, th), _ = cv2.getTextSize(a.name, font, scale, tk)
        if label == "centre":
            org = (int(round(a.cx - tw / 2)), int(round(a.cy + th / 2)))
        else:
            org = (int(a.bbox[0]) + 1, int(a.bbox[1]) + th + 1)
        # dark text on bright arenas, white on dark ones, each with a thin halo of the other
        x0, y0 = max(0, org[0]), max(0, org[1] - th)
        patch = grey[y0 : max(y0 + 1, org[1]), x0 : max(x0 + 1, org[0] + tw)]
        bright = patch.size > 0 and float(patch.mean()) > 127
        ink, halo = ((0, 0, 0), (255, 255, 255)) if bright else ((255, 255, 255), (0, 0, 0))
        cv2.putText(out, a.name, org, font, scale, halo, tk + halo_px, cv2.LINE_AA)
        cv2.putText(out, a.name, org, font, scale, ink, tk, cv2.LINE_AA)
    return out
