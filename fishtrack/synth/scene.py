"""Scene layout (frame size, arenas, where larvae may be) and the static background image."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import pandas as pd

from fishtrack.synth.body import (
    REACH,
    S_HEAD,
    Morphology,
    bladder_polygons,
    fish_polygons,
    tail_arc_position,
)
from fishtrack.synth.spec import SimSpec, arena_name

__all__ = ["Scene", "layout_scene", "render_background", "draw_fish_patch", "ARENA_COLUMNS", "LOOK"]

ARENA_COLUMNS = ["name", "row", "col", "shape", "cx", "cy", "radius", "x0", "y0", "x1", "y1"]

LOOK = {
    # grey levels (0-255) of the static scene, per polarity
    "dark": {"plate": 150.0, "rim": 95.0, "water": 205.0, "meniscus": -30.0, "dish": 182.0,
             "border": 140.0, "agarose": -9.0, "fish": None},
    "bright": {"plate": 45.0, "rim": 85.0, "water": 18.0, "meniscus": 12.0, "dish": 28.0,
               "border": 60.0, "agarose": 7.0, "fish": 190.0},
}
OPACITY = {"body": Morphology.body_opacity, "yolk": Morphology.yolk_opacity,
           "eyes": Morphology.eye_opacity}
"""Fraction of the background light a body part blocks (dark polarity; with bright polarity
the part adds that fraction of ``LOOK['bright']['fish']``), at ``contrast = 1``."""
WALL_MARGIN_PX = 1.5
#: square ROI side (fish lengths) of head-embedded larvae with a given heading (any direction)
EMBEDDED_SQUARE = 2.3


@dataclass
class Scene:
    """Frame geometry: arenas and the region each arena's pivot points may visit.

    ``region_*`` describe, per arena, where the motion model's pivot point (half a body length
    behind the snout, on the body axis) may go so that the whole larva stays inside: a circle
    (``region_r`` = radius) or a square (``region_r`` = half side) around ``(region_cx,
    region_cy)``. Embedded arenas have ``head_x, head_y, head_heading`` instead.
    """

    width: int
    height: int
    arenas: pd.DataFrame
    region_cx: np.ndarray
    region_cy: np.ndarray
    region_r: np.ndarray
    region_square: bool
    head_x: np.ndarray | None = None
    head_y: np.ndarray | None = None


def _even(v: float) -> int:
    n = int(math.ceil(v))
    return n + (n % 2)


def layout_scene(spec: SimSpec) -> Scene:
    """Frame size and arenas of ``spec`` (see :class:`~fishtrack.synth.spec.SimSpec`)."""
    if spec.layout == "embedded":
        return _layout_embedded(spec)
    L = spec.fish_length_px
    rows, cols = spec.rows, spec.cols
    if spec.layout == "chamber":
        n = spec.fish_per_arena
        d = spec.arena_size_px or L * (3.5 + 1.6 * math.sqrt(n))
        if spec.width is None:
            w = h = _even(d * 1.06 + 12)
        else:
            w, h = spec.width, spec.height
            if spec.arena_size_px is None:
                d = min(w, h) - 2 * max(6.0, 0.03 * min(w, h))
        pitch = d
    else:
        if spec.width is None:
            d = spec.arena_size_px or 3.2 * L
            pitch = d + max(4.0, 0.12 * d)
            margin = max(6.0, 0.4 * pitch)
            px_ = spec.pitch_x_px or pitch
            py_ = spec.pitch_y_px or spec.pitch_x_px or pitch
            w = _even((cols - 1) * px_ + d + 2 * margin)
            h = _even((rows - 1) * py_ + d + 2 * margin)
        else:
            w, h = spec.width, spec.height
            fit = min(w / (cols + 0.6), h / (rows + 0.6))
            if spec.arena_size_px is None:
                pitch = fit
                d = pitch / 1.12
            else:
                d = spec.arena_size_px
                pitch = d + max(4.0, 0.12 * d)
    pitch_x = pitch_y = pitch
    if spec.layout == "wells" and (spec.pitch_x_px is not None or spec.pitch_y_px is not None):
        pitch_x = spec.pitch_x_px or pitch
        pitch_y = spec.pitch_y_px or spec.pitch_x_px or pitch
        if (cols > 1 and pitch_x < d) or (rows > 1 and pitch_y < d):
            raise ValueError(f"wells of {d:g} px overlap at pitches {pitch_x:g} x {pitch_y:g} px")
    shift_x, shift_y = spec.plate_shift_px if spec.layout == "wells" else (0.0, 0.0)
    cx = w / 2.0 + shift_x + (np.arange(cols) - (cols - 1) / 2.0) * pitch_x
    cy = h / 2.0 + shift_y + (np.arange(rows) - (rows - 1) / 2.0) * pitch_y
    r = d / 2.0
    cut = (shift_x, shift_y) != (0.0, 0.0)  # a shifted plate may be cut by the frame edges
    if not cut and (cx[0] - r < 0 or cy[0] - r < 0 or cx[-1] + r > w or cy[-1] + r > h):
        raise ValueError(
            f"arena_size_px {d:g} does not fit {rows} x {cols} arenas into {w} x {h} px"
        )
    reach = REACH * L + WALL_MARGIN_PX
    if r < reach:
        raise ValueError(
            f"fish_length_px {L:g} is too long for arenas of {d:.1f} px: they must be at least "
            f"{2 * reach:.1f} px across (give a larger frame or arena_size_px, or a shorter fish)"
        )
    shape = "circle" if spec.shape == "circle" else "square"
    recs = []
    for i in range(rows):
        for j in range(cols):
            recs.append(_arena_row(i, j, shape, cx[j], cy[i], r, w, h))
    arenas = pd.DataFrame(recs, columns=ARENA_COLUMNS)
    return Scene(
        width=int(w), height=int(h), arenas=arenas,
        region_cx=arenas["cx"].to_numpy(float), region_cy=arenas["cy"].to_numpy(float),
        region_r=np.full(len(arenas), r - reach), region_square=shape == "square",
    )


def _arena_row(i, j, shape, cx, cy, r, w, h):
    x0 = max(0, int(math.floor(cx - r)))
    y0 = max(0, int(math.floor(cy - r)))
    x1 = min(w, int(math.ceil(cx + r)) + 1)
    y1 = min(h, int(math.ceil(cy + r)) + 1)
    return [arena_name(i, j), i, j, shape, float(cx), float(cy), float(r), x0, y0, x1, y1]


def _layout_embedded(spec: SimSpec) -> Scene:
    L = spec.fish_length_px
    rows, cols = spec.rows, spec.cols
    aspect = 0.65 if spec.embedded_heading_deg is None else 1.0
    if spec.width is None:
        cw = spec.arena_size_px or (2.0 if aspect < 1 else EMBEDDED_SQUARE) * L
        ch = aspect * cw
        pad = max(4.0, 0.06 * cw)
        w = _even(cols * cw + 2 * pad)
        h = _even(rows * ch + 2 * pad)
    else:
        w, h = spec.width, spec.height
        pad = max(4.0, 0.03 * min(w, h))
        cw = spec.arena_size_px or min((w - 2 * pad) / cols, (h - 2 * pad) / rows / aspect)
        ch = aspect * cw
    need = (1.8 * L, 1.15 * L) if aspect < 1 else (2.05 * L, 2.05 * L)
    if cw < need[0] or ch < need[1]:
        raise ValueError(
            f"embedded ROIs of {cw:.0f} x {ch:.0f} px are too small for fish_length_px {L:g}: "
            f"need at least {need[0]:.0f} x {need[1]:.0f} px"
        )
    ox = (w - cols * cw) / 2.0
    oy = (h - rows * ch) / 2.0
    if ox < 0 or oy < 0:
        raise ValueError(f"{rows} x {cols} embedded ROIs of {cw:.0f} px do not fit {w} x {h} px")
    recs, hx, hy = [], [], []
    for i in range(rows):
        for j in range(cols):
            fx0, fy0 = ox + j * cw, oy + i * ch
            x0, y0 = int(round(fx0)), int(round(fy0))
            x1, y1 = int(round(fx0 + cw)), int(round(fy0 + ch))
            recs.append([arena_name(i, j), i, j, "rect", (x0 + x1 - 1) / 2.0,
                         (y0 + y1 - 1) / 2.0, float("nan"), x0, y0, x1, y1])
            if aspect < 1:
                hx.append(fx0 + cw / 2.0)
                hy.append(fy0 + 0.08 * ch + S_HEAD * L)
            else:  # any direction: the head at the centre, the tail reaches ~0.95 L from it
                hx.append(fx0 + cw / 2.0)
                hy.append(fy0 + ch / 2.0)
    arenas = pd.DataFrame(recs, columns=ARENA_COLUMNS)
    n = len(arenas)
    return Scene(
        width=int(w), height=int(h), arenas=arenas,
        region_cx=np.array(hx), region_cy=np.array(hy), region_r=np.zeros(n),
        region_square=False, head_x=np.array(hx), head_y=np.array(hy),
    )


# --------------------------------------------------------------------------------------------
# background


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    gh, gw = max(2, int(h / cell) + 2), max(2, int(w / cell) + 2)
    g = rng.standard_normal((gh, gw)).astype(np.float32)
    return cv2.resize(g, (w, h), interpolation=cv2.INTER_CUBIC)


def _arena_distance(scene: Scene, xs: np.ndarray, ys: np.ndarray, square: bool):
    """Per pixel: distance to the nearest arena centre (Chebyshev for squares) and its radius."""
    a = scene.arenas
    ucx = np.unique(a["cx"].to_numpy())
    ucy = np.unique(a["cy"].to_numpy())
    jx = np.abs(xs[:, None] - ucx[None, :]).argmin(axis=1)
    iy = np.abs(ys[:, None] - ucy[None, :]).argmin(axis=1)
    dx = xs - ucx[jx]
    dy = ys - ucy[iy]
    if square:
        dist = np.maximum(np.abs(dx)[None, :], np.abs(dy)[:, None])
    else:
        dist = np.sqrt(dx[None, :] ** 2 + dy[:, None] ** 2)
    return dist.astype(np.float32), float(a["radius"].iloc[0])


def render_background(
    spec: SimSpec, scene: Scene, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray | float]:
    """Static background (float32 H x W, grey levels) and the fish coefficient ``K``.

    A fish whose drawing coverage is ``c`` (0..1) changes a pixel to ``bg + c * K``:
    ``K = -bg`` for dark fish (they absorb light), a constant for bright fish.
    """
    look = LOOK[spec.polarity]
    h, w = scene.height, scene.width
    xs = np.arange(w, dtype=np.float64)
    ys = np.arange(h, dtype=np.float64)
    L = spec.fish_length_px
    if spec.layout == "embedded":
        bg = np.full((h, w), look["dish"], np.float32)
        for _, a in scene.arenas.iterrows():
            cv2.rectangle(bg, (int(a.x0) + 1, int(a.y0) + 1), (int(a.x1) - 2, int(a.y1) - 2),
                          float(look["border"]), 1, cv2.LINE_AA)
        blob = np.zeros((h, w), np.uint8)
        for hx, hy in zip(scene.head_x, scene.head_y, strict=True):
            # the agarose drop around the head (behind it for larvae pointing up)
            dy = 0.08 * L if spec.embedded_heading_deg is None else 0.0
            c = (int(round(hx * 16)), int(round((hy + dy) * 16)))
            ax = (int(round(0.30 * L * 16)), int(round(0.24 * L * 16)))
            cv2.ellipse(blob, c, ax, 0.0, 0.0, 360.0, 255, -1, cv2.LINE_AA, 4)
        k = max(3, int(0.12 * L) * 2 + 1)
        soft = cv2.GaussianBlur(blob.astype(np.float32) / 255.0, (k, k), 0.06 * L)
        bg += look["agarose"] * soft
    else:
        square = scene.region_square
        dist, r = _arena_distance(scene, xs, ys, square)
        rim_w = float(np.clip(0.04 * r, 1.5, 4.0))
        inside = np.clip(r - dist + 0.5, 0.0, 1.0)
        rim = np.clip(r + rim_w - dist + 0.5, 0.0, 1.0) - inside
        men = np.clip((dist / r - 0.86) / 0.14, 0.0, 1.0) ** 2
        water = look["water"] + look["meniscus"] * men
        c = float(spec.rim_contrast)
        plate = look["water"] + c * (look["plate"] - look["water"])
        rim_g = look["water"] + c * (look["rim"] - look["water"])
        bg = (plate * (1 - inside - rim) + rim_g * rim + water * inside).astype(np.float32)
    # slow unevenness of the illumination / plate (+-1.5 %)
    bg *= 1.0 + 0.015 * _smooth_noise(rng, h, w, max(16.0, 2.0 * L))
    if spec.gradient > 0:
        phi = rng.uniform(-np.pi, np.pi)
        ramp = (xs[None, :] - w / 2.0) * np.cos(phi) + (ys[:, None] - h / 2.0) * np.sin(phi)
        ramp /= max(np.abs(ramp).max(), 1e-9)
        bg *= (1.0 + spec.gradient * ramp).astype(np.float32)
    if spec.vignette > 0:
        rad2 = ((xs[None, :] - w / 2.0) ** 2 + (ys[:, None] - h / 2.0) ** 2) / ((w / 2.0) ** 2 + (h / 2.0) ** 2)
        bg *= (1.0 - spec.vignette * rad2).astype(np.float32)
    if spec.n_dust:
        bg = _add_dust(bg, spec, rng)
    k_img: np.ndarray | float = -bg if spec.polarity == "dark" else float(look["fish"])
    return bg, k_img


def _add_dust(bg: np.ndarray, spec: SimSpec, rng: np.random.Generator) -> np.ndarray:
    h, w = bg.shape
    L = spec.fish_length_px
    n = spec.n_dust
    rmax = max(0.9, 0.05 * L)
    xs = rng.uniform(0, w - 1, n)
    ys = rng.uniform(0, h - 1, n)
    rs = rng.uniform(0.5, rmax, n)
    dark = rng.random(n) < (0.7 if spec.polarity == "dark" else 0.3)
    strength = rng.uniform(0.3, 0.7, n)
    absorb = np.zeros((h, w), np.uint8)
    glow = np.zeros((h, w), np.uint8)
    for x, y, r, dk, s in zip(xs, ys, rs, dark, strength, strict=True):
        tgt = absorb if dk else glow
        cv2.circle(tgt, (int(round(x * 16)), int(round(y * 16))), int(round(r * 16)),
                   int(round(255 * s)), -1, cv2.LINE_AA, 4)
    a = absorb.astype(np.float32) / 255.0
    g = glow.astype(np.float32) / 255.0
    return bg * (1.0 - a) + 60.0 * g


def draw_fish_patch(
    layer: np.ndarray,
    nodes: np.ndarray,
    heading: float,
    length: float,
    morph: Morphology,
    contrast: float = 1.0,
) -> None:
    """Draw one larva's coverage (opacity x 255, anti-aliased) into ``layer`` (uint8, in
    place), merged with ``max`` so that overlapping larvae never erase each other.

    The outline is drawn with the body's opacity, fading along the tail to
    ``morph.tail_tip_opacity`` when that is set (each pixel takes the opacity of the nearest
    midline point); then the yolk, the swim bladder and the eyes (or head disc) on top.
    """
    h, w = layer.shape
    outline, yolk, eyes = fish_polygons(nodes[None], np.array([heading]), length, morph)
    parts = [outline[0], yolk[0], eyes[0].reshape(-1, 2)]
    bladder = None
    if morph.bladder_opacity > 0:
        bladder = bladder_polygons(nodes[None], np.array([heading]), length)[0]
        parts.append(bladder)
    pts = np.concatenate(parts)
    x0 = max(0, int(np.floor(pts[:, 0].min())) - 2)
    y0 = max(0, int(np.floor(pts[:, 1].min())) - 2)
    x1 = min(w, int(np.ceil(pts[:, 0].max())) + 3)
    y1 = min(h, int(np.ceil(pts[:, 1].max())) + 3)
    if x1 <= x0 or y1 <= y0:
        return
    off = np.array([x0, y0], np.float64)

    def q(p: np.ndarray) -> np.ndarray:
        return np.round((p - off) * 16).astype(np.int32)

    def val(o: float) -> int:
        return int(round(255 * min(0.97, o * contrast)))

    patch = np.zeros((y1 - y0, x1 - x0), np.uint8)
    if morph.fades:
        cv2.fillPoly(patch, [q(outline[0])], 255, cv2.LINE_AA, 4)
        ys, xs = np.nonzero(patch)
        s = tail_arc_position(nodes, xs + off[0], ys + off[1])
        o_body = min(0.97, morph.body_opacity * contrast)
        o = np.interp(s, [morph.tail_fade_start, 1.0], [o_body, float(morph.tail_tip_opacity)])
        patch[ys, xs] = np.round(patch[ys, xs] * o).astype(np.uint8)
    else:
        cv2.fillPoly(patch, [q(outline[0])], val(morph.body_opacity), cv2.LINE_AA, 4)
    if morph.yolk_opacity > 0:
        cv2.fillPoly(patch, [q(yolk[0])], val(morph.yolk_opacity), cv2.LINE_AA, 4)
    if bladder is not None:
        cv2.fillPoly(patch, [q(bladder)], val(morph.bladder_opacity), cv2.LINE_AA, 4)
    cv2.fillPoly(patch, [q(e) for e in eyes[0]], val(morph.eye_opacity), cv2.LINE_AA, 4)
    sub = layer[y0:y1, x0:x1]
    np.maximum(sub, patch, out=sub)
