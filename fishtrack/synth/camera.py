"""A slow camera: recordings rendered at a high rate and integrated like a 25-30 fps camera.

Commercial plate readers record at 25-30 fps with an exposure that lasts (almost) the whole
frame interval, so each of their frames is the *average* of the scene over that interval
(motion blur), not a snapshot. These helpers make such recordings from the simulator:

* :func:`integrate_frames` averages every ``factor`` consecutive rendered frames (pixels),
  for a video made the way such a camera makes it;
* :func:`camera_tracks` does the same to the simulator's true tracks: positions, heading,
  tail angle and midline are the means over each exposure (the centre of a blurred blob),
  the true state is the one held for most of the exposure;
* :func:`draw_camera_recording` draws one recording per seed (fish, behaviour and tracking
  noise from :func:`fishtrack.synth.stress.draw_recording`; free-swimming larvae in wells,
  a camera of 25-30 fps, rendered ``RENDER_FACTOR`` times faster) and
  :func:`run_camera_recording` scores it against the truth
  (:func:`fishtrack.synth.stress.score_recording`) from the true tracks plus tracking noise;
* :func:`write_camera_video` renders the recording, integrates it and encodes it at the
  camera's rate, and :func:`run_camera_video` tracks that video with the whole pipeline (as
  ``fishtrack track``: the tracker's positions and ``motion_energy`` on the blurred,
  compressed 25-30 fps video) and scores it against the truth.

Seeds 0-999 tune the movement bouts; seeds 2000-2199 (issue 17, speed only), 5000-5199
(speed and pixel motion), 8000-8199 (after the codec-refresh fix), 9300-9499 (after the
drift and last-frame rules of speed_motion), 10300-10499 (after the blur rule) and
11300-11499 (after the averaged blur, the joint rule and the speed's frames joined to the
pixels' movement) and 12500-12699 (after the rig's change of the frame) are held-out
reporting ranges (:data:`CAMERA_REPORT_SEEDS`;
docs/behaviour.md, ``bench/bench_speed_bouts.py``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from fishtrack.behaviour import classify
from fishtrack.config import parse_config
from fishtrack.io.writer import DEFAULT_SUFFIX, VideoWriter
from fishtrack.synth.simulate import render_frames, sim_config, simulate_truth
from fishtrack.synth.spec import SimSpec
from fishtrack.synth.stress import (
    StressDraw,
    _frame_size,
    draw_recording,
    noisy_truth_tracks,
    score_recording,
)

__all__ = [
    "CAMERA_FPS",
    "CAMERA_REPORT_SEEDS",
    "CAMERA_TUNE_SEEDS",
    "RENDER_FACTOR",
    "camera_bouts",
    "camera_tracks",
    "draw_camera_recording",
    "integrate_frames",
    "missed_bouts",
    "run_camera_recording",
    "run_camera_video",
    "write_camera_video",
]

CAMERA_FPS = (25, 30)
"""Frame rates of the slow camera (integer Hz, drawn uniformly)."""
RENDER_FACTOR = 10
"""The scene is rendered this many times faster than the camera records (250-300 fps: every
tail beat of 15-40 Hz is resolved before the exposure averages it away)."""
CAMERA_TUNE_SEEDS = range(0, 1000)
CAMERA_REPORT_SEEDS = range(12500, 12700)
"""Held-out seeds of the slow-camera suite (1000-1199 report issue 11's stress suite,
2000-2199 the first speed-only figures, 5000-5199 the pixel-motion round; 8000-8199 the
round after the codec-refresh fix; 9300-9499 the round after the drift and last-frame rules;
10300-10499 the round after the blur rule, video 10350-10399; 11300-11499 the sixth round,
video 11350-11399; 12500-12699 the seventh round, video 12550-12599)."""


def integrate_frames(frames: Iterable[np.ndarray], factor: int) -> Iterator[np.ndarray]:
    """Average every ``factor`` consecutive frames into one (uint8, rounded): the frames of a
    camera whose exposure lasts the whole frame interval. A last incomplete group is dropped
    (the camera never finished that exposure)."""
    if int(factor) < 1:
        raise ValueError(f"factor must be at least 1, not {factor}")
    factor = int(factor)
    acc = None
    k = 0
    for f in frames:
        acc = f.astype(np.float64) if acc is None else acc + f
        k += 1
        if k == factor:
            yield np.clip(np.rint(acc / factor), 0, 255).astype(np.uint8)
            acc, k = None, 0


def _circ_mean(a: np.ndarray, axis: int = 1) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.arctan2(np.nanmean(np.sin(a), axis=axis), np.nanmean(np.cos(a), axis=axis))


def _final_stretch_on_record(g: pd.DataFrame, min_passive_s: float) -> pd.DataFrame:
    """One fish's rendered rows ``g`` (the frames the camera kept): its final quiet stretch
    (after its last ``in_bout`` row, or the whole record) is ``active`` when it lasts less
    than ``min_passive_s`` on these rows (``fishtrack.synth.behaviour.passive_intervals``'s
    rule, the record ending at the last row)."""
    in_bout = g["in_bout"].to_numpy(bool)
    t = g["time_s"].to_numpy(float)
    if len(t) < 2:
        return g
    fps = 1.0 / float(np.median(np.diff(t)))
    last = int(np.flatnonzero(in_bout)[-1]) if in_bout.any() else -1
    if (len(g) - 1 - last) / fps >= min_passive_s - 1e-9:
        return g
    g = g.copy()
    g.iloc[last + 1:, g.columns.get_loc("state")] = "active"
    return g


def camera_tracks(truth: pd.DataFrame, factor: int, *, min_passive_s: float | None = None
                  ) -> pd.DataFrame:
    """The true tracks as a camera integrating ``factor`` rendered frames per frame sees them.

    Camera frame ``j`` is the exposure of rendered frames ``j*factor .. (j+1)*factor - 1``;
    its ``time_s`` is the time of the first of them. ``x, y``, the midline points and the
    tail angle are their means (the blurred blob's centre), ``heading`` their circular mean;
    ``in_bout`` is true when the fish is in a bout during any part of the exposure, ``state``
    is the state held for most of it (ties: passive), ``phase`` the phase at its start.
    Other columns keep their first value. A last incomplete exposure is dropped.

    ``min_passive_s`` (the simulation's, ``spec.min_passive_s``): the record ends with the
    camera's last complete exposure, so its final quiet stretch is judged by the rule on the
    rendered frames the camera kept (:func:`_final_stretch_on_record`); without it the
    states are those of the whole rendered record, whose dropped last frames could make a
    final quiet stretch of the camera's record passive though it lasts less than
    ``min_passive_s`` there (tuning camera video 2 A2: 59 frames at 30 fps).
    """
    k = int(factor)
    if k < 1:
        raise ValueError(f"factor must be at least 1, not {factor}")
    tr = truth.sort_values(["arena", "fish", "frame"], kind="stable").reset_index(drop=True)
    out = []
    for _, g in tr.groupby(["arena", "fish"], sort=False):
        full = len(g)
        m = (full // k) * k
        g = g.iloc[:m]
        n = m // k
        if n == 0:
            continue
        if min_passive_s is not None and m < full and {"state", "in_bout"} <= set(g.columns):
            g = _final_stretch_on_record(g, min_passive_s)
        first = g.iloc[::k].reset_index(drop=True)
        row = {"frame": np.arange(n, dtype=np.int64) + int(first["frame"].iloc[0]) // k,
               "time_s": first["time_s"].to_numpy(float)}
        mean_cols = [c for c in g.columns if c in ("x", "y", "tail_angle")
                     or c.startswith(("tail_x_", "tail_y_"))]
        for c in mean_cols:
            row[c] = g[c].to_numpy(float).reshape(n, k).mean(axis=1)
        if "heading" in g.columns:
            row["heading"] = _circ_mean(g["heading"].to_numpy(float).reshape(n, k))
        if "in_bout" in g.columns:
            row["in_bout"] = g["in_bout"].to_numpy(bool).reshape(n, k).any(axis=1)
        if "state" in g.columns:
            p = (g["state"].astype(str).to_numpy() == "passive").reshape(n, k).mean(axis=1)
            row["state"] = np.where(p >= 0.5, "passive", "active").astype(object)
        res = first.drop(columns=[c for c in row if c in first.columns])
        res = pd.concat([res, pd.DataFrame(row)], axis=1)
        out.append(res[[c for c in truth.columns if c in res.columns]])
    if not out:
        return truth.iloc[:0].copy()
    return pd.concat(out, ignore_index=True)


def camera_bouts(truth_bouts: pd.DataFrame, factor: int) -> pd.DataFrame:
    """True bouts with frames in camera frames (``start_frame // factor``)."""
    b = truth_bouts.copy()
    for c in ("start_frame", "end_frame"):
        if c in b.columns:
            b[c] = b[c].to_numpy(np.int64) // int(factor)
    return b


def missed_bouts(tracks: pd.DataFrame, true_bouts: pd.DataFrame) -> dict:
    """True bouts (camera frames, :func:`camera_bouts`) with no frame ``in_bout`` in
    ``tracks``: ``n_true_bouts``, ``n_missed_bouts`` and ``n_missed_in_place`` (missed
    struggles that hold station: ``hold``, the head does not move) — what speed from positions
    cannot see (docs/behaviour.md)."""
    out = {"n_true_bouts": int(len(true_bouts)), "n_missed_bouts": 0, "n_missed_in_place": 0}
    if true_bouts.empty or "in_bout" not in tracks.columns:
        return out
    hit = tracks.loc[tracks["in_bout"].astype(bool), ["arena", "fish", "frame"]]
    keys = {(str(a), str(f)): np.sort(g["frame"].to_numpy(np.int64))
            for (a, f), g in hit.groupby(["arena", "fish"], sort=False)}
    hold = true_bouts["hold"].astype(bool).to_numpy() if "hold" in true_bouts else \
        np.zeros(len(true_bouts), bool)
    for i, r in enumerate(true_bouts.itertuples(index=False)):
        fr = keys.get((str(r.arena), str(r.fish)), np.zeros(0, np.int64))
        j = np.searchsorted(fr, int(r.start_frame))
        if j < len(fr) and fr[j] <= int(r.end_frame):
            continue
        out["n_missed_bouts"] += 1
        out["n_missed_in_place"] += int(hold[i])
    return out


def draw_camera_recording(seed: int) -> tuple[StressDraw, int]:
    """One slow-camera recording per seed: ``(draw, camera_fps)``.

    The fish (bouting, give-up dynamics, still fish, fish passive through the open loop),
    the fish size, plate and tracking noise are those :func:`draw_recording` draws for the
    seed (without its video budget); the layout is always wells (free-swimming larvae: a
    head-embedded larva has no body movement to measure), the camera records at 25-30 fps
    and the scene is rendered :data:`RENDER_FACTOR` times faster.
    """
    d = draw_recording(seed, max_cost_s=1e12)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1011, 17]))
    cam = int(rng.integers(CAMERA_FPS[0], CAMERA_FPS[1] + 1))
    rec = dict(d.recording)
    length = float(rec["fish_length_px"])
    rows, cols = int(rec["rows"]), int(rec["cols"])
    well = round(float(rng.uniform(2.4, 3.2)) * length, 1)
    w, h = _frame_size("wells", rows, cols, length, well)
    spec = d.spec.model_copy(update={
        "layout": "wells", "fps": float(cam * RENDER_FACTOR), "arena_size_px": well,
        "width": w, "height": h,
    })
    spec = SimSpec(**spec.model_dump())
    rec.update(layout="wells", fps=float(cam * RENDER_FACTOR), camera_fps=cam,
               well_diameter_px=well, width=w, height=h)
    return StressDraw(seed=seed, spec=spec, recording=rec, fish=d.fish,
                      truth_noise=d.truth_noise, extra=d.extra), cam


def run_camera_recording(seed: int, *, behaviour: dict | None = None,
                         draw: tuple[StressDraw, int] | None = None) -> dict:
    """Simulate the slow-camera recording of ``seed``, integrate it to the camera's rate, add
    tracking noise (:func:`noisy_truth_tracks`), score it with ``classify`` and compare with
    the truth integrated the same way. ``behaviour``: overrides of the behaviour config
    section (e.g. ``{"bout_signal": "tail"}``). Returns one row of
    :data:`fishtrack.synth.stress.METRIC_COLUMNS` plus ``bout_signal`` and the draw."""
    t0 = time.perf_counter()
    d, cam = draw or draw_camera_recording(seed)
    spec = d.spec
    cfg_map = sim_config(spec)
    if behaviour:
        cfg_map["behaviour"] = {**cfg_map["behaviour"], **behaviour}
    cfg = parse_config(cfg_map, "camera config")
    st = simulate_truth(spec)
    truth = camera_tracks(st.frames, RENDER_FACTOR, min_passive_s=spec.min_passive_s)
    tb = camera_bouts(st.bouts, RENDER_FACTOR)
    tracks = noisy_truth_tracks(truth, d.truth_noise)
    b = classify(tracks, cfg.behaviour, cfg.protocol, px_per_mm=cfg.px_per_mm)
    open_loop = [p.name for p in spec.phases() if p.kind == "open_loop"]
    row = score_recording(b.tracks, b.bouts, truth, tb, still_fish=d.still_fish,
                          open_loop=open_loop)
    row.update(missed_bouts(b.tracks, tb))
    row.update(seed=seed, mode="camera", seconds=round(time.perf_counter() - t0, 2),
               bout_signal=b.noise.get("bout_signal"), camera_fps=cam)
    row.update({f"draw_{k}": v for k, v in d.recording.items()})
    return row


def write_camera_video(spec: SimSpec, camera_fps: int, out_dir: str | Path
                       ) -> tuple[Path, dict]:
    """Render ``spec`` (simulated at ``camera_fps`` x :data:`RENDER_FACTOR` fps), integrate
    every :data:`RENDER_FACTOR` frames like the camera's exposure and encode the result at
    ``camera_fps`` (the spec's codec and quality). Returns the video's path and a fishtrack
    config (mapping) for it."""
    cam = int(camera_fps)
    if abs(spec.fps - cam * RENDER_FACTOR) > 1e-6:
        raise ValueError(f"spec.fps must be {RENDER_FACTOR} x camera_fps ({cam * RENDER_FACTOR}), "
                         f"not {spec.fps}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{spec.name}_{cam}fps{DEFAULT_SUFFIX[spec.codec]}"
    with VideoWriter(path, cam, spec.codec, crf=spec.crf) as vw:
        for frame in integrate_frames(render_frames(spec), RENDER_FACTOR):
            vw.write(frame)
    cfg = sim_config(spec)
    if "video" in cfg:  # image stacks store no frame rate: the camera's
        cfg["video"] = {**cfg["video"], "fps": float(cam)}
    return path, cfg


def run_camera_video(seed: int, workdir: str | Path, *, behaviour: dict | None = None,
                     draw: tuple[StressDraw, int] | None = None, keep: bool = False,
                     rescore: dict[str, dict] | None = None) -> dict:
    """Like :func:`run_camera_recording`, but from pixels: :func:`write_camera_video`, then
    ``track_to_folder`` (tracker and behaviour stage, as ``fishtrack track``), scored against
    the truth integrated the same way. The work folder ``workdir/cam<seed>`` is removed unless
    ``keep``. ``rescore``: ``{name: behaviour overrides}``; the tracked video is scored again
    with each (``classify``, no second tracking) and the rows returned under
    ``row["rescored"][name]``."""
    import shutil

    from fishtrack.pipeline import track_to_folder

    t0 = time.perf_counter()
    d, cam = draw or draw_camera_recording(seed)
    work = Path(workdir) / f"cam{seed}"
    try:
        video, cfg_map = write_camera_video(d.spec, cam, work)
        if behaviour:
            cfg_map["behaviour"] = {**cfg_map["behaviour"], **behaviour}
        cfg = parse_config(cfg_map, "camera config")
        st = simulate_truth(d.spec)
        truth = camera_tracks(st.frames, RENDER_FACTOR, min_passive_s=d.spec.min_passive_s)
        tb = camera_bouts(st.bouts, RENDER_FACTOR)
        tr = track_to_folder(video, cfg, work / "tracked")
        bouts = tr.bouts if tr.bouts is not None else pd.DataFrame({"fish": [], "start_s": []})
        open_loop = [p.name for p in d.spec.phases() if p.kind == "open_loop"]
        row = score_recording(tr.tracks, bouts, truth, tb, still_fish=d.still_fish,
                              open_loop=open_loop)
        row.update(missed_bouts(tr.tracks, tb))
        sig = (tr.provenance.get("behaviour_noise") or {}).get("bout_signal")
        again = {}
        for name, over in (rescore or {}).items():
            c = parse_config({**cfg_map, "behaviour": {**cfg_map["behaviour"], **over}},
                             "camera config")
            b = classify(tr.tracks, c.behaviour, c.protocol, px_per_mm=c.px_per_mm)
            r = score_recording(b.tracks, b.bouts, truth, tb, still_fish=d.still_fish,
                                open_loop=open_loop)
            r.update(missed_bouts(b.tracks, tb))
            r.update(seed=seed, mode=f"camera_video_{name}", bout_signal=b.noise["bout_signal"],
                     camera_fps=cam)
            r.update({f"draw_{k}": v for k, v in d.recording.items()})
            again[name] = r
    finally:
        if not keep and work.exists():
            shutil.rmtree(work, ignore_errors=True)
    row.update(seed=seed, mode="camera_video", seconds=round(time.perf_counter() - t0, 2),
               bout_signal=sig, camera_fps=cam)
    row.update({f"draw_{k}": v for k, v in d.recording.items()})
    if rescore:
        row["rescored"] = again
    return row
