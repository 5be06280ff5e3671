"""Annotated preview frames so a lab tech can check tracking before a long run.

:func:`write_preview` draws, on N frames spread over the video: arena outlines with names,
the head of every fish (circle), its midline (polyline, head to tail tip) and its label, and
tiles them into one PNG strip (written atomically).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from fishtrack.arenas import draw_arenas
from fishtrack.io.tables import atomic_path
from fishtrack.io.video import open_video
from fishtrack.trial import Provenance

__all__ = ["annotate_frame", "annotate_crop", "write_preview"]

_COLOURS = [(0, 200, 255), (0, 255, 0), (255, 128, 0), (255, 0, 255), (0, 128, 255), (255, 255, 0),
            (128, 0, 255), (0, 255, 128)]


def tail_columns(tracks: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Names of the tail point columns in order head -> tip."""
    xs = sorted((c for c in tracks.columns if c.startswith("tail_x_")), key=lambda c: int(c[7:]))
    ys = [c.replace("tail_x_", "tail_y_") for c in xs]
    return xs, [c for c in ys if c in tracks.columns]


def annotate_frame(frame: np.ndarray, rows: pd.DataFrame, arenas=(), *, scale: float = 1.0) -> np.ndarray:
    """Draw arenas and the fish of one frame (``rows``: the tracks rows of that frame)."""
    img = draw_arenas(frame, list(arenas), label="corner") if arenas else cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if scale != 1.0:
        img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    xs, ys = tail_columns(rows)
    fish_names = sorted(rows["fish"].astype(str).unique()) if len(rows) else []
    for _, r in rows.iterrows():
        if not bool(r.get("detected", False)):
            continue
        col = _COLOURS[fish_names.index(str(r["fish"])) % len(_COLOURS)]
        if xs:
            pts = np.stack([r[xs].to_numpy(float), r[ys].to_numpy(float)], axis=1) * scale
            pts = pts[np.isfinite(pts).all(axis=1)]
            if len(pts) > 1:
                cv2.polylines(img, [np.round(pts * 16).astype(np.int32)], False, col, 1, cv2.LINE_AA, shift=4)
        hx, hy = float(r["x"]) * scale, float(r["y"]) * scale
        cv2.circle(img, (round(hx * 16), round(hy * 16)), round(3 * 16 * max(scale, 1)), (0, 0, 255), 1,
                   cv2.LINE_AA, shift=4)
        cv2.putText(img, str(r["fish"]), (int(hx) + 4, int(hy) - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35,
                    col, 1, cv2.LINE_AA)
    return img


def annotate_crop(
    frame: np.ndarray, rows: pd.DataFrame, cx: float, cy: float, half: int, *, scale: float = 1.0
) -> tuple[np.ndarray, tuple[int, int]]:
    """:func:`annotate_frame` on the square of side ``2 half`` around ``(cx, cy)`` (shifted to
    stay inside the frame). Returns the image and the crop's origin ``(x0, y0)`` in frame px."""
    h, w = frame.shape
    x0 = int(np.clip(round(cx) - half, 0, max(0, w - 2 * half)))
    y0 = int(np.clip(round(cy) - half, 0, max(0, h - 2 * half)))
    sub = np.ascontiguousarray(frame[y0 : y0 + 2 * half, x0 : x0 + 2 * half])
    rows = rows.copy()
    for c in rows.columns:
        if c == "x" or c.startswith("tail_x_"):
            rows[c] = rows[c] - x0
        elif c == "y" or c.startswith("tail_y_"):
            rows[c] = rows[c] - y0
    return annotate_frame(sub, rows, scale=scale), (x0, y0)


def write_preview(video, result, path: str | Path, *, n_frames: int = 8, max_width: int = 1400,
                  tracks_file: str | Path | None = None) -> Path:
    """Write a PNG strip of ``n_frames`` annotated frames spread over ``video``.

    The rows are ``result.tracks``'; with ``tracks_file`` (a ``tracks.parquet``, e.g. of a
    streamed result, whose ``tracks`` is empty) only the rows of the frames shown are read
    from it."""
    tracks = result.tracks
    crop = (Provenance(result.provenance).config.get("video") or {}).get("crop") or None
    with open_video(video, crop=crop) as src:
        n = len(src)
        idx = np.unique(np.linspace(0, n - 1, num=max(1, min(n_frames, n))).round().astype(int))
        if tracks_file is not None:
            tracks = pd.read_parquet(tracks_file, filters=[("frame", "in", [int(i) for i in idx])])
        tiles = []
        for i in idx:
            frame = src.read(int(i))
            rows = tracks[tracks["frame"] == i]
            img = annotate_frame(frame, rows, result.arenas)
            cv2.putText(img, f"frame {i}", (5, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 255), 1, cv2.LINE_AA)
            tiles.append(img)
    cols = min(len(tiles), 2)
    h, w = tiles[0].shape[:2]
    rows_n = int(np.ceil(len(tiles) / cols))
    sheet = np.zeros((rows_n * h, cols * w, 3), np.uint8)
    for k, t in enumerate(tiles):
        r, c = divmod(k, cols)
        sheet[r * h:(r + 1) * h, c * w:(c + 1) * w] = t
    if sheet.shape[1] > max_width:
        f = max_width / sheet.shape[1]
        sheet = cv2.resize(sheet, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".png", sheet, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.tobytes())
    return Path(path)
