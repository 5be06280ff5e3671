"""Fixtures for the experiment runner and report tests (imported explicitly).

A *fake video* is a small JSON file (named ``*.mp4``) describing the wells of a plate and, per
well, the passive intervals of its fish. :func:`fake_arenas` and :func:`fake_trial` stand in
for the arena check and the tracking pipeline: the trial writes a complete trial folder
(``tracks.parquet``, ``bouts.csv``, ``epochs.csv``, ``provenance.json``) whose per-frame states
are exactly the spec, so per-fish metrics have an analytic truth. They are top-level functions,
so spawn worker processes and dask workers can import them.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

FPS = 10.0
DURATION_S = 20.0
PROTOCOL = [
    {"name": "baseline", "kind": "closed_loop", "start_s": 0.0, "end_s": 8.0},
    {"name": "futility", "kind": "open_loop", "start_s": 8.0, "end_s": 20.0},
]


def write_fake_video(
    path: Path,
    passive: dict[str, list[tuple[float, float]]],
    *,
    duration_s: float = DURATION_S,
    fps: float = FPS,
    fail: str | None = None,
    sleep_s: float = 0.0,
) -> Path:
    """Write a fake video: wells (keys of ``passive``) with their passive intervals (s).

    ``fail``: ``"fishtrack"`` raises a FishtrackError in the trial, ``"crash"`` a
    RuntimeError after writing part of the outputs.
    """
    spec = {"passive": {k: [list(map(float, iv)) for iv in v] for k, v in passive.items()},
            "duration_s": duration_s, "fps": fps, "fail": fail, "sleep_s": sleep_s}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(spec), encoding="utf-8")
    return path


def read_spec(video: Path) -> dict:
    return json.loads(Path(video).read_text(encoding="utf-8"))


def fake_arenas(video: Path, config) -> list[str]:
    """Arena names of a fake video (its wells)."""
    return list(read_spec(video)["passive"])


def true_passive_fraction(intervals, start_s: float, end_s: float, fps: float = FPS) -> float:
    """Fraction of frames in ``[start_s, end_s)`` inside the passive intervals."""
    t = np.arange(0, DURATION_S, 1 / fps)
    t = t[(t >= start_s - 1e-9) & (t < end_s - 1e-9)]
    m = np.zeros(len(t), bool)
    for a, b in intervals:
        m |= (t >= a - 1e-9) & (t < b - 1e-9)
    return float(m.mean())


def fake_tracks(spec: dict) -> pd.DataFrame:
    fps, dur = spec["fps"], spec["duration_s"]
    n = int(round(dur * fps))
    t = np.arange(n) / fps
    parts = []
    for arena, ivs in spec["passive"].items():
        passive = np.zeros(n, bool)
        for a, b in ivs:
            passive |= (t >= a - 1e-9) & (t < b - 1e-9)
        # a 0.2 s bout every second while active
        in_bout = ~passive & ((t % 1.0) < 0.2 - 1e-9)
        tail = np.where(in_bout, 0.5 * np.sin(2 * np.pi * 25 * t), 0.0)
        parts.append(
            pd.DataFrame(
                {
                    "frame": np.arange(n, dtype=np.int64),
                    "time_s": t,
                    "arena": arena,
                    "fish": arena,
                    "x": 10.0 + np.cumsum(in_bout) * 0.1,
                    "y": 10.0,
                    "heading": 0.0,
                    "tail_angle": tail,
                    "detected": True,
                    "area_px": 20.0,
                    "id_uncertain": False,
                    "state": np.where(passive, "passive", "active"),
                    "in_bout": in_bout,
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def fake_bouts(tracks: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (arena, fish), g in tracks.groupby(["arena", "fish"], sort=False):
        b = g["in_bout"].to_numpy()
        t = g["time_s"].to_numpy()
        f = g["frame"].to_numpy()
        starts = np.flatnonzero(b & ~np.r_[False, b[:-1]])
        ends = np.flatnonzero(b & ~np.r_[b[1:], False])
        for s, e in zip(starts, ends, strict=True):
            rows.append({"fish": fish, "arena": arena, "start_frame": f[s], "end_frame": f[e],
                         "start_s": t[s], "end_s": t[e] + 0.1, "duration_s": t[e] + 0.1 - t[s],
                         "n_beats": 5, "beat_hz": 25.0, "max_tail_angle": 0.5, "vigour": 10.0,
                         "displacement_px": 0.2, "phase": None})
    return pd.DataFrame(rows)


def fake_trial(video: Path, config, out: Path, progress=None) -> None:
    """Stand-in for ``track_to_folder``: writes a complete trial folder from the spec."""
    from fishtrack.behaviour.states import epochs_from_states
    from fishtrack.config import config_hash
    from fishtrack.errors import FishtrackError
    from fishtrack.io.provenance import build_provenance, file_identity, write_provenance
    from fishtrack.io.tables import write_table

    spec = read_spec(video)
    if spec.get("sleep_s"):
        time.sleep(spec["sleep_s"])
    if spec.get("fail") == "fishtrack":
        raise FishtrackError(f"{video}: simulated tracking failure")
    tracks = fake_tracks(spec)
    n = int(round(spec["duration_s"] * spec["fps"]))
    if progress is not None:
        for i in (0, n // 2, n):
            progress(i, n)
    write_table(tracks, Path(out) / "tracks.parquet")
    if spec.get("fail") == "crash":
        raise RuntimeError("simulated crash after writing tracks")
    write_table(fake_bouts(tracks), Path(out) / "bouts.csv")
    epochs = epochs_from_states(tracks, config.protocol, cfg=config.behaviour)
    write_table(epochs, Path(out) / "epochs.csv")
    prov = build_provenance(
        config=config.model_dump(mode="json"),
        config_hash=config_hash(config),
        inputs=file_identity(video),
        frames_read=n,
        damage=[],
        timings={"total": 0.0},
        extra={
            "video": {"n_frames": n, "fps": spec["fps"], "duration_s": spec["duration_s"]},
            "arenas": [{"name": a} for a in spec["passive"]],
        },
    )
    write_provenance(Path(out) / "provenance.json", prov)


def thread_probe_trial(video: Path, config, out: Path, progress=None) -> None:
    """``fake_trial`` that also records the thread caps its process runs under
    (``threads.json``: OpenCV's threads, the tracker's measuring threads, FFmpeg's decoding
    threads, the process's usable cores)."""
    import resource

    import cv2

    from fishtrack._threads import usable_cores
    from fishtrack.io.video import pyav
    from fishtrack.tracking import tracker

    fake_trial(video, config, out, progress)
    # page faults of 50 arrays of 4 MB made and freed, as a tracker's chunks are: with
    # glibc's adaptive thresholds the memory is reused, with them fixed every array is a
    # fresh mmap (1,024 faults each)
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(50):
        np.ones(1 << 19).sum()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
    (Path(out) / "threads.json").write_text(json.dumps({
        "cv2": cv2.getNumThreads(), "measure": tracker.MEASURE_THREADS,
        "decode": pyav.DECODE_THREADS, "cores": usable_cores(), "pid": os.getpid(),
        "faults": faults, "malloc_env": os.environ.get("MALLOC_TRIM_THRESHOLD_", "")}))


def write_manifest(path: Path, rows: list[dict], *, columns: list[str] | None = None,
                   sep: str = ",", encoding: str = "utf-8") -> Path:
    """Write a manifest CSV from row dicts."""
    df = pd.DataFrame(rows, columns=columns)
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, sep=sep, index=False, encoding=encoding)
    return path


def plate_experiment(root: Path) -> dict:
    """Two 2x2 plates; control passive rarely, ketamine often; one well per plate unlisted.

    Returns ``{"manifest": path, "config": dict, "truth": {fish_id: open-loop passive
    fraction}}``.
    """
    plates = {
        "plate1": {"A1": [(9, 11)], "A2": [(10, 16)], "B1": [(12, 13)], "B2": [(8, 20)]},
        "plate2": {"A1": [(14, 15)], "A2": [(9, 18)], "B1": [], "B2": [(2, 4)]},
    }
    groups = {
        ("plate1", "A1"): "control", ("plate1", "A2"): "ketamine", ("plate1", "B1"): "control",
        ("plate2", "A1"): "control", ("plate2", "A2"): "ketamine", ("plate2", "B1"): "control",
        ("plate1", "B2"): "ketamine",
    }  # plate2/B2 is not in the manifest
    rows, truth = [], {}
    for plate, wells in plates.items():
        write_fake_video(root / "videos" / f"{plate}.mp4", wells)
        for arena, ivs in wells.items():
            g = groups.get((plate, arena))
            if g is None:
                continue
            fid = f"{plate}:{arena}"
            rows.append({"video": f"videos/{plate}.mp4", "arena": arena, "group": g,
                         "dose": 0 if g == "control" else 10, "clutch": plate[-1]})
            truth[fid] = true_passive_fraction(ivs, 8.0, 20.0)
    manifest = write_manifest(root / "manifest.csv", rows)
    config = {"protocol": PROTOCOL, "stats": {"n_bootstrap": 100, "n_permutations": 100,
                                              "bin_s": 4.0}}
    return {"manifest": manifest, "config": config, "truth": truth, "plates": plates}


def simulate_tiny_plate(root: Path, *, seed: int = 3) -> dict:
    """A real 2x2-plate video (12 s, 50 fps, small frames) from the simulator, its manifest
    and the true open-loop passive fraction per fish (from ``truth.parquet``)."""
    from fishtrack.config import load_config
    from fishtrack.synth import SimSpec, simulate

    spec = SimSpec(name="plate", layout="wells", rows=2, cols=2, fps=50, duration_s=12,
                   seed=seed, fish_length_px=24, effect=1.0)
    sim = simulate(spec, root / "videos")
    cfg = load_config(sim.config_path)
    truth = pd.read_parquet(sim.truth_path)
    in_open = np.zeros(len(truth), bool)
    for p in cfg.protocol:
        if p.kind == "open_loop":
            in_open |= (truth["time_s"] >= p.start_s) & (truth["time_s"] < p.end_s)
    ol = truth[in_open]
    pf = (ol["state"] == "passive").groupby(ol["arena"]).mean()
    groups = truth.groupby("arena")["group"].first()
    rows = [{"video": "videos/plate.mp4", "arena": a, "group": groups[a]} for a in groups.index]
    manifest = write_manifest(root / "manifest.csv", rows)
    return {"manifest": manifest, "config": sim.config_path,
            "truth": {f"plate:{a}": float(v) for a, v in pf.items()}}


def block_adjusted_diff(values: dict, group: dict, block: dict, treated: str = "ketamine",
                        reference: str = "control") -> float:
    """The difference fishtrack estimates when the manifest has block columns (plate,
    clutch, date; docs/assay_analyses.md): ``sum_b w_b (mean_treated_b - mean_ref_b) /
    sum_b w_b`` with ``w_b = n_treated_b n_ref_b / (n_treated_b + n_ref_b)``."""
    d, w = [], []
    for b in sorted(set(block.values()), key=str):
        t = [v for f, v in values.items() if block[f] == b and group[f] == treated]
        r = [v for f, v in values.items() if block[f] == b and group[f] == reference]
        if t and r:
            d.append(np.mean(t) - np.mean(r))
            w.append(len(t) * len(r) / (len(t) + len(r)))
    return float(np.average(d, weights=w))
