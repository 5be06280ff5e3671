"""Synthetic plate / chamber backgrounds with known geometry for the arena tests.

Everything is drawn with OpenCV (anti-aliased, 1/16 px precision), then blurred, shaded and made
noisy. The truth radius of a well is the *inner edge of its wall* (half the side for squares),
which is what :class:`fishtrack.arenas.Arena` reports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

SHIFT = 4
ONE = 1 << SHIFT

#: grey levels (plastic between wells, wall, well interior, fish) per polarity
LEVELS = {
    "dark": (185.0, 55.0, 205.0, 40.0),  # dark rim on a bright (back-lit) plate
    "bright": (35.0, 175.0, 25.0, 215.0),  # bright rim on a dark (IR) background
}


@dataclass
class WellTruth:
    name: str
    row: int
    col: int
    cx: float
    cy: float
    r: float


@dataclass
class Plate:
    image: np.ndarray
    wells: list[WellTruth]
    pitch: float
    angle_deg: float
    shape: str
    outer_bbox: tuple[float, float, float, float] = field(default=(0, 0, 0, 0))


def _pt(x: float, y: float) -> tuple[int, int]:
    return int(round(x * ONE)), int(round(y * ONE))


def _square(cx: float, cy: float, h: float, ang: float) -> np.ndarray:
    c, s = math.cos(ang), math.sin(ang)
    uv = np.array([[-h, -h], [h, -h], [h, h], [-h, h]])
    xy = np.stack([cx + uv[:, 0] * c - uv[:, 1] * s, cy + uv[:, 0] * s + uv[:, 1] * c], 1)
    return np.round(xy * ONE).astype(np.int32)


def _fish(img: np.ndarray, x: float, y: float, heading: float, length: float, level: float) -> None:
    """A larva-like blob: elliptical head/body and a tapering tail."""
    hx, hy = math.cos(heading), math.sin(heading)
    cv2.ellipse(
        img,
        _pt(x, y),
        (int(0.22 * length * ONE), int(0.09 * length * ONE)),
        math.degrees(heading),
        0,
        360,
        level,
        -1,
        cv2.LINE_AA,
        SHIFT,
    )
    tail = [(x - hx * length * t, y - hy * length * t) for t in (0.1, 0.5, 0.8)]
    for (x0, y0), (x1, y1), wd in zip(tail[:-1], tail[1:], (3, 2), strict=True):
        cv2.line(img, _pt(x0, y0), _pt(x1, y1), level, wd, cv2.LINE_AA, SHIFT)


def draw_plate(
    rows: int,
    cols: int,
    *,
    size: tuple[int, int] = (480, 640),
    shape: str = "circle",
    polarity: str = "dark",
    angle_deg: float = 0.0,
    fill: float = 0.9,
    offset: tuple[float, float] = (0.0, 0.0),
    ratio: float = 0.8,
    wall_px: float = 3.0,
    gradient: float = 0.25,
    noise: float = 3.0,
    fish_wells: tuple[int, ...] = (0,),
    dust: bool = True,
    blur: float = 0.8,
    seed: int = 0,
    skip_wells: tuple[int, ...] = (),
    pitch_xy: tuple[float, float] | None = None,
    radius: float | None = None,
    levels: tuple[float, float, float, float] | None = None,
) -> Plate:
    """Draw a ``rows x cols`` plate background.

    ``fill`` is the pitch as a fraction of the largest pitch that fits the frame; ``ratio`` the
    well diameter (inner edge) over the pitch; ``fish_wells`` are row-major indices of wells
    that get a fish (the first one touches the wall); ``skip_wells`` are drawn without a rim
    (not visible at all). ``pitch_xy`` gives different column and row pitches (px), ``radius``
    the well radius (px) directly, ``levels`` the grey levels (plastic, rim, interior, fish)
    instead of the polarity's (e.g. a faint rim).
    """
    h, w = size
    plastic, rim, inside, fish = levels if levels is not None else LEVELS[polarity]
    rng = np.random.default_rng(seed)
    pitch = fill * min(w / cols, h / rows)
    px, py = pitch_xy if pitch_xy is not None else (pitch, pitch)
    pitch = min(px, py)
    r = radius if radius is not None else ratio * pitch / 2
    ang = math.radians(angle_deg)
    c, s = math.cos(ang), math.sin(ang)
    ccx, ccy = w / 2 + offset[0], h / 2 + offset[1]
    img = np.full((h, w), plastic, np.float64)
    canvas = np.full((h, w), plastic, np.uint8)
    wells = []
    k = 0
    for i in range(rows):
        for j in range(cols):
            u, v = (j - (cols - 1) / 2) * px, (i - (rows - 1) / 2) * py
            x, y = ccx + u * c - v * s, ccy + u * s + v * c
            name = f"{chr(65 + i)}{j + 1}"
            wells.append(WellTruth(name, i, j, x, y, r))
            if k not in skip_wells:
                if shape == "circle":
                    cv2.circle(
                        canvas,
                        _pt(x, y),
                        int(round((r + wall_px) * ONE)),
                        rim,
                        -1,
                        cv2.LINE_AA,
                        SHIFT,
                    )
                    cv2.circle(
                        canvas, _pt(x, y), int(round(r * ONE)), inside, -1, cv2.LINE_AA, SHIFT
                    )
                else:
                    cv2.fillPoly(canvas, [_square(x, y, r + wall_px, ang)], rim, cv2.LINE_AA, SHIFT)
                    cv2.fillPoly(canvas, [_square(x, y, r, ang)], inside, cv2.LINE_AA, SHIFT)
            k += 1
    for n, idx in enumerate(fish_wells):
        wt = wells[idx]
        length = 0.7 * r
        if n == 0:  # head touching the wall, tail towards the centre
            hd = rng.uniform(0, 2 * math.pi)
            x = wt.cx + (r - 0.12 * length) * math.cos(hd)
            y = wt.cy + (r - 0.12 * length) * math.sin(hd)
        else:
            hd = rng.uniform(0, 2 * math.pi)
            x = wt.cx + 0.3 * r * math.cos(hd + 1)
            y = wt.cy + 0.3 * r * math.sin(hd + 1)
        _fish(canvas, x, y, hd, length, fish)
    if dust:
        # a speck between wells and one on a rim
        x0 = wells[0].cx + pitch / 2 * c
        y0 = wells[0].cy + pitch / 2 * s
        cv2.circle(canvas, _pt(x0, y0 + pitch / 2), int(2.5 * ONE), fish, -1, cv2.LINE_AA, SHIFT)
        wl = wells[-1]
        cv2.circle(
            canvas,
            _pt(wl.cx + (r + wall_px / 2) * 0.7071, wl.cy - (r + wall_px / 2) * 0.7071),
            int(2 * ONE),
            plastic if polarity == "dark" else inside,
            -1,
            cv2.LINE_AA,
            SHIFT,
        )
    img = canvas.astype(np.float64)
    if blur > 0:
        img = cv2.GaussianBlur(img, (0, 0), blur)
    yy, xx = np.mgrid[0:h, 0:w]
    shade = 1.0 + gradient * ((xx / w - 0.5) + 0.5 * (yy / h - 0.5))
    vign = 1.0 - 0.5 * gradient * (((xx - w / 2) / w) ** 2 + ((yy - h / 2) / h) ** 2)
    img = img * shade * vign + rng.normal(0, noise, size=(h, w))
    img = np.clip(img, 0, 255).astype(np.uint8)
    ext = r + wall_px
    xs = [wt.cx for wt in wells]
    ys = [wt.cy for wt in wells]
    bbox = (min(xs) - r, min(ys) - r, max(xs) + r, max(ys) + r)
    del ext
    return Plate(
        image=img, wells=wells, pitch=pitch, angle_deg=angle_deg, shape=shape, outer_bbox=bbox
    )


def draw_chamber(
    *,
    size: tuple[int, int] = (400, 500),
    shape: str = "circle",
    polarity: str = "dark",
    centre: tuple[float, float] = (260.0, 195.0),
    radius: float = 150.0,
    half: tuple[float, float] = (180.0, 120.0),
    wall_px: float = 6.0,
    gradient: float = 0.25,
    noise: float = 3.0,
    n_fish: int = 3,
    seed: int = 1,
) -> np.ndarray:
    """A chamber (circle of ``radius`` or rectangle of half sizes ``half``) with a few fish."""
    h, w = size
    plastic, rim, inside, fish = LEVELS[polarity]
    rng = np.random.default_rng(seed)
    canvas = np.full((h, w), (plastic + rim) / 2, np.uint8)
    cx, cy = centre
    if shape == "circle":
        cv2.circle(canvas, _pt(cx, cy), int((radius + wall_px) * ONE), rim, -1, cv2.LINE_AA, SHIFT)
        cv2.circle(canvas, _pt(cx, cy), int(radius * ONE), inside, -1, cv2.LINE_AA, SHIFT)
        reach = 0.6 * radius
    else:
        hx, hy = half
        cv2.rectangle(
            canvas,
            _pt(cx - hx - wall_px, cy - hy - wall_px),
            _pt(cx + hx + wall_px, cy + hy + wall_px),
            rim,
            -1,
            cv2.LINE_AA,
            SHIFT,
        )
        cv2.rectangle(
            canvas, _pt(cx - hx, cy - hy), _pt(cx + hx, cy + hy), inside, -1, cv2.LINE_AA, SHIFT
        )
        reach = 0.6 * min(hx, hy)
    for _ in range(n_fish):
        a = rng.uniform(0, 2 * math.pi)
        d = rng.uniform(0, reach)
        _fish(canvas, cx + d * math.cos(a), cy + d * math.sin(a), rng.uniform(0, 6.28), 30, fish)
    img = cv2.GaussianBlur(canvas.astype(np.float64), (0, 0), 0.8)
    yy, xx = np.mgrid[0:h, 0:w]
    img = img * (1 + gradient * (xx / w - 0.5)) + rng.normal(0, noise, (h, w))
    return np.clip(img, 0, 255).astype(np.uint8)


def same_values(a, b) -> bool:
    """Equal values, dtypes and NaNs, through arrays, dicts, lists and tuples."""
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_values(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same_values(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and np.isnan(a):
        return np.isnan(b)
    return a == b


def refinement_plate(tmp_path, still: bool):
    """A simulated 2 x 3-well plate (one well empty; with ``still``, a fish sitting still in
    the median in A2): its config, the background estimated from it and its arenas, ready for
    ``bg.refine``."""
    from fishtrack.arenas import detect_arenas
    from fishtrack.config import load_config
    from fishtrack.io.video import open_video
    from fishtrack.synth import SimSpec, simulate
    from fishtrack.tracking import estimate_background

    spec = SimSpec(name="r", layout="wells", rows=2, cols=3, fps=50, duration_s=2, seed=4,
                   fish_length_px=30, empty_arenas=["B3"], still_arenas=["A2"] if still else [])
    sim = simulate(spec, tmp_path / "sim")
    cfg = load_config(sim.config_path)
    with open_video(sim.video_path) as src:
        bg = estimate_background(src, cfg.tracking)
    return cfg, bg, detect_arenas(bg.image, cfg.arenas)


def assert_same_refinement(a, b) -> None:
    """Two refinements agree: fish length, area, their evidence and every arena's model."""
    assert same_values((a.fish_length_px, a.fish_area_px, a.length_evidence),
                       (b.fish_length_px, b.fish_area_px, b.length_evidence))
    assert len(a.models) == len(b.models)
    for x, y in zip(a.models, b.models, strict=True):
        assert same_values(x.__dict__, y.__dict__), x.name
