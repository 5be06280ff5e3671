"""Trial folders with known content for the napari plugin tests.

* :func:`tiny_trial` — hand-built: a small lossless video whose frame ``i`` has grey value
  ``i`` in its top-left pixel, two fish with straight midlines at known positions, and
  hand-written epochs and bouts (every number is known).
* :func:`tracked_simulation` — a simulated assay video tracked end to end by
  ``fishtrack.pipeline.track_to_folder`` (real tracker and behaviour output), plus its truth.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

N_TAIL = 6
BODY_PX = 10.0


def write_folder(out: Path, tracks: pd.DataFrame, bouts: pd.DataFrame, epochs: pd.DataFrame,
                 provenance: dict) -> Path:
    from fishtrack.io.tables import write_table

    out.mkdir(parents=True, exist_ok=True)
    write_table(tracks, out / "tracks.parquet")
    write_table(bouts, out / "bouts.csv")
    write_table(epochs, out / "epochs.csv")
    (out / "provenance.json").write_text(json.dumps(provenance, indent=1))
    return out


def add_midlines(tracks: pd.DataFrame, *, n: int = N_TAIL, body_px: float = BODY_PX) -> pd.DataFrame:
    """Tail points from head (x, y), heading and tail_angle: the anterior half points straight
    back from the head, the posterior half is bent by twice the tail angle (for display only)."""
    x, y = tracks["x"].to_numpy(float), tracks["y"].to_numpy(float)
    back = tracks["heading"].to_numpy(float) + np.pi
    ta = np.nan_to_num(tracks["tail_angle"].to_numpy(float))
    seg = body_px / (n - 1)
    cols = {}
    px, py = x.copy(), y.copy()
    half = (n - 1) // 2
    for k in range(n):
        if k > 0:
            ang = back if k <= half else back + 2 * ta
            px = px + seg * np.cos(ang)
            py = py + seg * np.sin(ang)
        cols[f"tail_x_{k}"] = px
        cols[f"tail_y_{k}"] = py
    out = tracks.copy()
    for k in range(n):
        out[f"tail_x_{k}"] = cols[f"tail_x_{k}"]
    for k in range(n):
        out[f"tail_y_{k}"] = cols[f"tail_y_{k}"]
    return out


def tiny_trial(tmp: Path, *, n_frames: int = 40, fps: float = 10.0) -> Path:
    """Two fish (``A1`` in a circular arena, ``A2`` in a square one) for ``n_frames`` frames."""
    from fishtrack.io.writer import write_video

    h, w = 48, 96
    frames = []
    for i in range(n_frames):
        f = np.full((h, w), 200, np.uint8)
        f[0, 0] = i
        frames.append(f)
    video = write_video(tmp / "tiny.avi", frames, fps, codec="ffv1")
    t = np.arange(n_frames) / fps
    rows = []
    for fish, cx in (("A1", 24.0), ("A2", 72.0)):
        for i in range(n_frames):
            rows.append({
                "frame": i, "time_s": t[i], "arena": fish, "fish": fish,
                "x": cx + 0.1 * i, "y": 24.0, "heading": 0.0, "tail_angle": 0.1 * np.sin(i),
                "tail_curvature": 0.0, "detected": not (fish == "A2" and i in (5, 6)),
                "area_px": 30.0, "id_uncertain": False, "motion_energy": 0.0,
            })
    tracks = add_midlines(pd.DataFrame(rows))
    # A1: active frames 0-9, passive 10-29, active 30-39; A2: passive 0-19, unknown 20-24, active 25-39
    state = np.empty(len(tracks), object)
    fr = tracks["frame"].to_numpy()
    a1 = tracks["fish"].to_numpy() == "A1"
    state[a1] = np.where(fr[a1] < 10, "active", np.where(fr[a1] < 30, "passive", "active"))
    state[~a1] = np.where(fr[~a1] < 20, "passive", np.where(fr[~a1] < 25, "unknown", "active"))
    tracks["state"] = state
    tracks["in_bout"] = False
    dt = 1 / fps
    ep = [
        ("A1", "active", 0, 9), ("A1", "passive", 10, 29), ("A1", "active", 30, 39),
        ("A2", "passive", 0, 19), ("A2", "unknown", 20, 24), ("A2", "active", 25, 39),
    ]
    epochs = pd.DataFrame([{
        "fish": f, "arena": f, "state": s, "start_frame": a, "end_frame": b, "start_s": a * dt,
        "end_s": (b + 1) * dt, "duration_s": (b + 1 - a) * dt,
        "phase": "baseline" if a * dt < 2 else "open_loop_1", "censored": a == 0 or b == n_frames - 1,
    } for f, s, a, b in ep])
    bouts = pd.DataFrame([{
        "fish": "A1", "arena": "A1", "start_frame": a, "end_frame": a + 2, "start_s": a * dt,
        "end_s": (a + 3) * dt, "duration_s": 3 * dt, "n_beats": 2, "beat_hz": 20.0,
        "max_tail_angle": 0.3, "vigour": 5.0, "displacement_px": 1.0, "phase": "baseline",
    } for a in (2, 6, 31)])
    prov = {
        "input": {"name": video.name, "path": str(video)},
        "config": {"protocol": [
            {"name": "baseline", "kind": "closed_loop", "start_s": 0.0, "end_s": 2.0},
            {"name": "open_loop_1", "kind": "open_loop", "start_s": 2.0, "end_s": 4.0},
        ], "video": {"crop": None, "fps": None}},
        "video": {"n_frames": n_frames, "fps": fps, "width": w, "height": h},
        "arenas": [
            {"name": "A1", "row": 0, "col": 0, "shape": "circle", "cx": 24.0, "cy": 24.0,
             "radius": 20.0, "bbox": [4, 4, 45, 45]},
            {"name": "A2", "row": 0, "col": 1, "shape": "square", "cx": 72.0, "cy": 24.0,
             "radius": 20.0, "bbox": [52, 4, 93, 45]},
        ],
    }
    return write_folder(tmp / "trial", tracks, bouts, epochs, prov)


def tracked_simulation(tmp: Path, *, seed: int = 3) -> tuple[Path, pd.DataFrame]:
    """Simulate a short 2x2-well futility assay (24 s at 20 fps, open loop from 4 s) and
    track it with :func:`fishtrack.pipeline.track_to_folder` into ``tmp/trial``.

    Returns ``(trial_folder, truth)``; the truth is the simulator's per-frame table.
    """
    from fishtrack.config import Phase
    from fishtrack.pipeline import track_to_folder
    from fishtrack.synth import SimSpec, simulate

    protocol = [Phase(name="baseline", kind="closed_loop", start_s=0, end_s=4),
                Phase(name="open_loop_1", kind="open_loop", start_s=4, end_s=24)]
    spec = SimSpec(layout="wells", rows=2, cols=2, fps=20, duration_s=24, fish_length_px=30,
                   seed=seed, name="plate", protocol=protocol)
    sim = simulate(spec, tmp / "sim")
    folder = tmp / "trial"
    track_to_folder(sim.video_path, sim.config_path, folder)
    return folder, sim.truth
