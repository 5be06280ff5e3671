"""What every backend (container, TIFF stack, image folder) shares with the front."""

from __future__ import annotations

import re

import numpy as np

from fishtrack.io.video.records import DamageRecord

_GAP_FACTOR = 1.5  # a timestamp gap longer than this many nominal intervals = missing frames


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    msg = text[0] if text else type(exc).__name__
    return re.sub(r"^\[Errno -?\d+\]\s*", "", msg)


class SourceInfo:
    """What the lazy index pass learns about a source (backend-independent)."""

    def __init__(
        self,
        *,
        n: int,
        times: np.ndarray,
        fps: float,
        width: int,
        height: int,
        codec: str,
        count_method: str,
        time_source: str,
        grey_rule: str,
        damage: list[DamageRecord],
        gap_damage: list[DamageRecord] | None = None,
    ):
        self.n = n
        self.times = times
        self.fps = fps
        self.width = width
        self.height = height
        self.codec = codec
        self.count_method = count_method
        self.time_source = time_source
        self.grey_rule = grey_rule
        self.damage = damage
        self.gap_damage = gap_damage or []  # timestamp gaps; moot when fps= overrides times


def gap_damage(times: np.ndarray, fps: float) -> list[DamageRecord]:
    """``missing_frames`` records for timestamp gaps longer than 1.5 nominal intervals."""
    if not (np.isfinite(fps) and fps > 0) or times.size < 2:
        return []
    dt = np.diff(times)
    interval = 1.0 / fps
    out = []
    for i in np.flatnonzero(dt > _GAP_FACTOR * interval):
        k = max(1, int(round(dt[i] / interval)) - 1)
        out.append(
            DamageRecord(
                int(i + 1),
                "missing_frames",
                f"{dt[i]:.4g} s without a frame before frame {i + 1} (~{k} frame(s) missing at "
                f"{fps:.6g} fps)",
            )
        )
    return out
