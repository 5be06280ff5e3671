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

__all__ = ["annotate_frame", "write_preview"]

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


def write_preview(video, result, path: str | Path, *, n_frames: int = 8, max_width: int = 1400) -> Path:
    """Write a PNG strip of ``n_frames`` annotated frames spread over ``video``."""
    tracks = result.tracks
    crop = (Provenance(result.provenance).config.get("video") or {}).get("crop") or None
    with open_video(video, crop=crop) as src:
        n = len(src)
        idx = np.unique(np.linspace(0, n - 1, num=max(1, min(n_frames, n))).round().astype(int))
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
