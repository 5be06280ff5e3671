"""Regenerate docs/figures/real_*.png: the tracker on the real recordings of ../shared/videos.

Usage (from the repository root)::

    .venv/bin/python docs/make_real_figures.py [VIDEO_DIR]

Each figure shows tracked frames annotated with ``fishtrack.preview.annotate_frame`` (arena
outline, head circle, midline, fish label): an overview of the whole frame where the fish are
small, and enlarged crops around the fish over time; under them the tail-angle trace of every
fish over the whole recording. The videos are third-party recordings
(see ``shared/videos/README.md``) and are not part of the repository.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from fishtrack.arenas import detect_arenas
from fishtrack.config import ArenasConfig, TrackingConfig
from fishtrack.io.video import open_video
from fishtrack.preview import _COLOURS, annotate_crop, annotate_frame
from fishtrack.tracking import estimate_background, track_video

OUT = Path(__file__).resolve().parent / "figures"
VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "videos"

#: name -> (file, layout, fish, frames shown, crop half-size px, crop scale, overview scale)
CASES = {
    "onefish": ("onefish_trial1_1000fps.mp4", "chamber", 1, [0, 40, 46, 50, 60, 80], 55, 1.8, 0.45),
    "threefish": ("threefish_trial2_1000fps.mp4", "chamber", 3, [0, 30, 60, 80], 55, 1.6, 0.45),
    "embedded": ("head_embedded_stytra.avi", "embedded", 1, [0, 20, 40, 60, 180, 200], 0, 3.0, 0),
    "strip": ("free_swim_strip_stytra.avi", "chamber", 1, [0, 100, 165, 200, 240, 384], 0, 3.0, 0),
    "eight": ("eight_fish_tank_idtrackerai.avi", "chamber", 8, [0, 250], 45, 1.5, 0.55),
}

FONT = cv2.FONT_HERSHEY_SIMPLEX


def _label(img: np.ndarray, text: str) -> np.ndarray:
    (tw, th), _ = cv2.getTextSize(text, FONT, 0.45, 1)
    cv2.rectangle(img, (0, 0), (tw + 8, th + 8), (255, 255, 255), -1)
    cv2.putText(img, text, (4, th + 4), FONT, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return img


def _png(img: np.ndarray) -> bytes:
    """PNG bytes with a 62-colour palette when Pillow is available: 40 grey levels for the
    frames plus the annotation colours and their blends with grey (the camera noise of the
    frames makes true-colour PNGs several times larger)."""
    try:
        from PIL import Image
    except ImportError:
        return cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 9])[1].tobytes()
    import io

    rgb = np.ascontiguousarray(img[:, :, ::-1])
    # the annotation colours (BGR): fish labels and midlines, head circles, arena outlines
    bgr = [*_COLOURS, (0, 0, 255), (0, 220, 0), (0, 140, 255)]
    cols = np.array([c[::-1] for c in bgr], np.float64)
    # and their anti-aliased blends with mid grey
    cols = np.concatenate([cols, 0.5 * cols + 0.5 * 128.0])
    grey = np.repeat(np.linspace(0, 255, 40).round()[:, None], 3, axis=1)
    pal = np.concatenate([grey, cols]).round().astype(np.uint8)
    pal_img = Image.new("P", (1, 1))
    pal_img.putpalette(pal.ravel().tolist() + [0] * (768 - pal.size))
    out = Image.fromarray(rgb).quantize(palette=pal_img, dither=Image.Dither.NONE)
    buf = io.BytesIO()
    out.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _crop(frame, rows, cx, cy, half, scale) -> np.ndarray:
    return annotate_crop(frame, rows, cx, cy, half, scale=scale)[0]


def _grid(tiles: list[np.ndarray], cols: int, gap: int = 4) -> np.ndarray:
    th = max(t.shape[0] for t in tiles)
    tw = max(t.shape[1] for t in tiles)
    rows = -(-len(tiles) // cols)
    out = np.full((rows * (th + gap) - gap, cols * (tw + gap) - gap, 3), 255, np.uint8)
    for k, t in enumerate(tiles):
        r, c = divmod(k, cols)
        out[
            r * (th + gap) : r * (th + gap) + t.shape[0],
            c * (tw + gap) : c * (tw + gap) + t.shape[1],
        ] = t
    return out


def _side_by_side(a: np.ndarray, b: np.ndarray, gap: int = 6) -> np.ndarray:
    h = max(a.shape[0], b.shape[0])
    out = np.full((h, a.shape[1] + gap + b.shape[1], 3), 255, np.uint8)
    out[: a.shape[0], : a.shape[1]] = a
    out[: b.shape[0], a.shape[1] + gap :] = b
    return out


def _trace(t: pd.DataFrame, width: int, shown: list[int], fps: float, height: int = 150) -> np.ndarray:
    """Tail-angle traces (degrees) of every fish over the whole recording, in the figure's fish
    colours, with the frames shown above marked by grey lines; NaN (no tail) leaves gaps."""
    fishes = sorted(t["fish"].astype(str).unique())
    n = int(t["frame"].max()) + 1 if len(t) else 1
    ang = np.degrees(t["tail_angle"].to_numpy(float))
    top = float(np.nanpercentile(np.abs(ang), 99.5)) if np.isfinite(ang).any() else 10.0
    top = max(10.0, 10.0 * np.ceil(top / 10.0))
    img = np.full((height, width, 3), 255, np.uint8)
    left, right, pad = 46, 8, 14
    h = height - 2 * pad

    def px(f):
        return left + (np.asarray(f, float) / max(1, n - 1)) * (width - left - right)

    def py(a):
        return pad + (1.0 - (np.asarray(a, float) + top) / (2 * top)) * h

    for f in shown:
        x = int(round(float(px(f))))
        cv2.line(img, (x, pad), (x, pad + h), (200, 200, 200), 1)
    for v in (-top, 0.0, top):
        y = int(round(float(py(v))))
        cv2.line(img, (left, y), (width - right, y), (150, 150, 150) if v == 0 else (225, 225, 225), 1)
        cv2.putText(img, f"{v:+.0f}", (2, y + 4), FONT, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
    for k, fish in enumerate(fishes):
        d = t[t["fish"].astype(str) == fish].sort_values("frame")
        a = np.degrees(d["tail_angle"].to_numpy(float))
        pts = np.stack([px(d["frame"].to_numpy()), py(np.clip(a, -top, top))], axis=1)
        ok = np.isfinite(a)
        # one polyline per run of frames with a tail
        edges = np.flatnonzero(np.diff(np.concatenate([[0], ok.astype(np.int8), [0]])))
        for s0, s1 in zip(edges[::2], edges[1::2], strict=True):
            if s1 - s0 > 1:
                cv2.polylines(img, [np.round(pts[s0:s1]).astype(np.int32)], False,
                              _COLOURS[k % len(_COLOURS)], 1, cv2.LINE_AA)
    secs = (n - 1) / fps if fps > 0 else float("nan")
    cv2.putText(img, f"tail_angle (deg) of every fish, frames 0-{n - 1} ({secs:.2f} s); grey: frames shown",
                (left, pad - 3), FONT, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
    return img


def figure(name: str, video_dir: Path = VIDEOS) -> Path:
    file, layout, fish, shown, half, scale, ov_scale = CASES[name]
    cfg = TrackingConfig()
    with open_video(video_dir / file) as src:
        bg = estimate_background(src, cfg)
        arenas = detect_arenas(bg.image, ArenasConfig(layout=layout, fish_per_arena=fish))
        res = track_video(src, arenas, cfg, fish_per_arena=fish, layout=layout, background=bg)
        frames = dict(zip(shown, src.sample(shown), strict=True))
        fps = float(src.meta.fps)
    t = res.tracks
    tiles = []
    for f in shown:
        rows = t[t.frame == f]
        if half == 0:  # small frames: the whole frame, enlarged
            img = annotate_frame(frames[f], rows, arenas, scale=scale)
            tiles.append(_label(img, f"frame {f}"))
            continue
        for r in rows[rows.detected].itertuples():
            img = _crop(frames[f], rows, r.x, r.y, half, scale)
            tiles.append(_label(img, f"{f}: {r.fish}"))
    if half == 0:
        sheet = _grid(tiles, 2)
    else:
        cols = {"onefish": 3, "threefish": 3, "eight": 4}[name]
        zoom = _grid(tiles, cols)
        over = annotate_frame(frames[shown[0]], t[t.frame == shown[0]], arenas, scale=ov_scale)
        over = _label(over, f"frame {shown[0]} (whole frame)")
        if name == "eight":
            over2 = annotate_frame(frames[shown[1]], t[t.frame == shown[1]], arenas, scale=ov_scale)
            over = _grid([over, _label(over2, f"frame {shown[1]}")], 1)
        sheet = _side_by_side(over, zoom)
    strip = _trace(t, sheet.shape[1], shown, fps)
    sheet = np.concatenate([sheet, np.full((4, sheet.shape[1], 3), 255, np.uint8), strip])
    path = OUT / f"real_{name}.png"
    buf = _png(sheet)
    path.write_bytes(buf)
    print(f"{path}: {sheet.shape[1]}x{sheet.shape[0]}, {len(buf) / 1024:.0f} KB")
    return path


if __name__ == "__main__":
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else VIDEOS
    for key in CASES:
        if (folder / CASES[key][0]).is_file():
            figure(key, folder)
        else:
            print(f"{folder / CASES[key][0]} is absent, skipped")
