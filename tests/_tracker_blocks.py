"""Helpers of tests/test_tracking_memory.py that its fresh processes import without the
pipeline (and so without pandas): the peak RSS and a block as the tracker hands it to its sink."""

from __future__ import annotations

import numpy as np


def _hwm_mb() -> float:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM")) / 1024


def _tracker_block(frames: int, n_fish: int = 48, first: int = 0) -> dict:
    """A block as the tracker hands it to its sink: whole frames, every slot, its 55 columns."""
    rng = np.random.default_rng(first)
    n = frames * n_fish
    names = np.array([f"A{i:02d}" for i in range(n_fish)], dtype=object)
    cols = {"frame": np.repeat(np.arange(first, first + frames, dtype=np.int64), n_fish),
            "time_s": np.repeat(np.arange(first, first + frames) / 30.0, n_fish),
            "arena": np.tile(names, frames), "fish": np.tile(names, frames)}
    for c in ("x", "y", "heading", "tail_angle", "tail_curvature", "area_px", "motion_energy",
              "tail_motion"):
        cols[c] = rng.random(n, dtype=np.float32)
    cols["detected"] = cols["id_uncertain"] = np.ones(n, bool)
    for i in range(10):
        cols[f"tail_x_{i}"] = rng.random(n, dtype=np.float32)
    for i in range(10):
        cols[f"tail_y_{i}"] = rng.random(n, dtype=np.float32)
    for i in range(1, 10):
        cols[f"seg_angle_{i}"] = rng.random(n, dtype=np.float32)
    return cols
