"""Signal generators with known truth for the behaviour tests.

Tail angle: travelling-wave bouts (20-40 Hz, 0.1-0.4 s, smooth envelope) on a still tail,
plus Gaussian measurement noise. Truth states follow the definition of the stage: a stretch
without bouts of at least ``min_passive_s`` is passive. Active stretches have inter-bout
intervals well below it and passive stretches last well above it, so the truth is
unambiguous.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

N_POINTS = 8
BODY_PX = 40.0


@dataclass
class SimFish:
    tracks: pd.DataFrame
    bouts: pd.DataFrame  # truth: fish, start_s, end_s, freq_hz, n_beats, amp
    state: np.ndarray  # truth per row ("active"/"passive")


def _schedule(
    rng,
    duration_s,
    *,
    ibi=(0.4, 1.2),
    passive=(3.0, 12.0),
    active=(3.0, 10.0),
    p_first_passive=0.5,
    bout_s=(0.1, 0.4),
):
    """Bout start/end times: alternating active blocks (bouts) and passive blocks (none)."""
    t = 0.0
    bouts = []
    passive_now = rng.random() < p_first_passive
    while t < duration_s:
        if passive_now:
            t += rng.uniform(*passive)
        else:
            stop = t + rng.uniform(*active)
            while t < min(stop, duration_s - 0.5):
                d = rng.uniform(*bout_s)
                bouts.append((t, t + d))
                t += d + rng.uniform(*ibi)
        passive_now = not passive_now
    return [(a, b) for a, b in bouts if b < duration_s - 0.05 and a > 0.05]


def make_fish(
    seed: int,
    *,
    fish: str = "f0",
    arena: str = "A1",
    duration_s: float = 60.0,
    fps: float = 200.0,
    noise_rad: float = 0.03,
    pos_noise_px: float = 0.5,
    p_missing: float = 0.0,
    long_gap: tuple[float, float] | None = None,
    embedded: bool = False,
    drift_px_s: float = 0.0,
    min_passive_s: float = 2.0,
    amp: tuple[float, float] = (0.3, 0.8),
    freq: tuple[float, float] = (20.0, 40.0),
    schedule: dict | None = None,
    jitter: float = 0.0,
) -> SimFish:
    rng = np.random.default_rng(seed)
    n = int(round(duration_s * fps))
    t = np.arange(n) / fps
    if jitter:
        t = t + rng.uniform(-jitter, jitter, n) / fps
        t[0] = 0.0
        t = np.maximum.accumulate(t + np.arange(n) * 1e-9)
    bouts = _schedule(rng, duration_s, **(schedule or {}))
    tail = np.full(n, 0.0)
    rows = []
    h = rng.uniform(-np.pi, np.pi)
    pos = np.array([100.0, 100.0])
    speed = np.zeros(n)
    for a, b in bouts:
        f = rng.uniform(*freq)
        amp_b = rng.uniform(*amp)
        m = (t >= a) & (t < b)
        tt = t[m] - a
        env = np.sin(np.pi * tt / (b - a)) ** 0.5
        tail[m] += amp_b * env * np.sin(2 * np.pi * f * tt)
        speed[m] = 0.0 if embedded else rng.uniform(50, 200)
        n_beats = int(round(f * (b - a)))
        rows.append(
            {"fish": fish, "start_s": a, "end_s": b, "freq_hz": f, "n_beats": n_beats, "amp": amp_b}
        )
    # heading changes a little during bouts; position integrates speed (+ slow drift)
    dt = np.diff(t, prepend=t[0])
    turn = np.where(speed > 0, rng.normal(0, 0.3, n) * dt * 5, 0.0)
    heading = np.cumsum(turn) + h
    vx = speed * np.cos(heading) + drift_px_s
    vy = speed * np.sin(heading)
    x = pos[0] + np.cumsum(vx * dt)
    y = pos[1] + np.cumsum(vy * dt)
    heading = np.pi - np.mod(np.pi - heading, 2 * np.pi)
    # midline: bend grows linearly along the body so that tip angle ~= tail_angle
    seg = BODY_PX / (N_POINTS - 1)
    k = np.arange(N_POINTS - 1)
    back = heading[:, None] + np.pi + tail[:, None] * (2 * (k + 1) / N_POINTS)
    px = np.concatenate([x[:, None], x[:, None] + np.cumsum(seg * np.cos(back), axis=1)], axis=1)
    py = np.concatenate([y[:, None], y[:, None] + np.cumsum(seg * np.sin(back), axis=1)], axis=1)

    detected = np.ones(n, bool)
    if p_missing:
        detected &= rng.random(n) >= p_missing
    if long_gap is not None:
        detected &= ~((t >= long_gap[0]) & (t < long_gap[1]))
    tail_obs = tail + rng.normal(0, noise_rad, n)
    df = pd.DataFrame(
        {
            "frame": np.arange(n),
            "time_s": t,
            "arena": arena,
            "fish": fish,
            "x": x + rng.normal(0, pos_noise_px, n),
            "y": y + rng.normal(0, pos_noise_px, n),
            "heading": heading,
            "tail_angle": tail_obs,
            "tail_curvature": np.nan,
            "detected": detected,
            "area_px": 60.0,
        }
    )
    for i in range(N_POINTS):
        df[f"tail_x_{i}"] = px[:, i]
        df[f"tail_y_{i}"] = py[:, i]
    for c in ["x", "y", "heading", "tail_angle", "tail_curvature"] + [
        f"tail_{a}_{i}" for a in "xy" for i in range(N_POINTS)
    ]:
        df.loc[~detected, c] = np.nan
    truth_bouts = pd.DataFrame(
        rows, columns=["fish", "start_s", "end_s", "freq_hz", "n_beats", "amp"]
    )
    state = truth_states(t, truth_bouts, min_passive_s)
    return SimFish(tracks=df, bouts=truth_bouts, state=state)


def truth_states(t: np.ndarray, bouts: pd.DataFrame, min_passive_s: float) -> np.ndarray:
    """Passive where the time from the previous bout end to the next bout start (or record
    edge) is at least ``min_passive_s``."""
    a = bouts["start_s"].to_numpy()
    b = bouts["end_s"].to_numpy()
    edges_start = np.r_[t[0], b]  # quiet interval k: [edges_start[k], edges_end[k])
    edges_end = np.r_[a, t[-1] + (t[-1] - t[-2])]
    passive = (edges_end - edges_start) >= min_passive_s
    k = np.searchsorted(edges_start, t, side="right") - 1
    in_quiet = t < edges_end[k]
    return np.where(in_quiet & passive[k], "passive", "active")


def make_many(seeds, **kw) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    fish = [make_fish(s, fish=f"f{i}", arena=f"A{i + 1}", **kw) for i, s in enumerate(seeds)]
    tracks = pd.concat([f.tracks for f in fish], ignore_index=True)
    bouts = pd.concat([f.bouts for f in fish], ignore_index=True)
    state = np.concatenate([f.state for f in fish])
    return tracks, bouts, state


def match_bouts(truth: pd.DataFrame, found: pd.DataFrame, tol_s: float = 0.05):
    """Greedy one-to-one matching by onset within ``tol_s``; returns (tp, fp, fn, onset errors)."""
    from fishtrack.synth.stress import match_onsets

    return match_onsets(truth, found, tol_s)


def f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def tracked_stress_seed(seed: int, work):
    """The stress suite's recording of ``seed`` rendered, encoded and tracked like
    ``fishtrack track`` in ``work``: ``(draw, cfg, sim, tracked)``."""
    from fishtrack.config import parse_config
    from fishtrack.pipeline import track_to_folder
    from fishtrack.synth import simulate
    from fishtrack.synth.simulate import sim_config
    from fishtrack.synth.stress import draw_recording

    draw = draw_recording(seed)
    cfg = parse_config(sim_config(draw.spec), "stress config")
    sim = simulate(draw.spec, work)
    return draw, cfg, sim, track_to_folder(sim.video_path, cfg, work / "tracked")


def score_stress(draw, sim, res) -> dict:
    """A scored result (``.tracks``, ``.bouts``) against the truth of a stress recording."""
    from fishtrack.synth.stress import score_recording

    return score_recording(res.tracks, res.bouts, sim.truth, sim.bouts, still_fish=draw.still_fish)


def compact_tracks(path, fps: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A stress recording's tracks stored compactly by the tests (``tests/data/stress*_tracks``:
    positions in 1/32 px, the midline points as steps from the point before, the first from the
    head; angles in 1e-4 rad; pixel motions in 0.01 grey levels) as the tracker wrote them, and
    the simulator's truth per row (``arena``, ``true_in_bout``, ``true_passive``)."""
    q = pd.read_parquet(path)
    t = pd.DataFrame({"frame": q["frame"].to_numpy(np.int64),
                      "time_s": q["frame"].to_numpy(float) / fps,
                      "arena": q["arena"].astype(str), "fish": q["arena"].astype(str)})
    for a in ("x", "y"):
        pos = q[a].to_numpy(float)
        t[a] = pos / 32
        steps = np.cumsum(np.column_stack([q[f"tail_{a}_{i}"].to_numpy(float)
                                           for i in range(10)]), axis=1)
        for i in range(10):
            t[f"tail_{a}_{i}"] = (pos + steps[:, i]) / 32
    t["heading"] = q["heading"].to_numpy(float) / 1e4
    for c in ["tail_angle"] + [f"seg_angle_{k}" for k in range(1, 10)]:
        t[c] = q[c].to_numpy(float) / 1e4
    for c in ("motion_energy", "tail_motion"):
        t[c] = q[c].to_numpy(float) / 100
    t["detected"] = q["detected"].to_numpy(bool)
    return t, q[["arena", "true_in_bout", "true_passive"]]


def assert_parts_equal_whole(tracks: pd.DataFrame, whole, *args) -> None:
    """Scoring ``tracks`` one arena at a time (``classify_parts``, the streaming path) gives
    exactly ``whole``, the result of ``classify(tracks, *args)``: every table, every value and
    the noise levels."""
    from fishtrack.behaviour.classify import classify_parts

    def parts():
        for a in sorted(tracks["arena"].unique()):
            yield tracks[tracks["arena"] == a]

    got = classify_parts(parts, *args)
    pd.testing.assert_frame_equal(got.tracks.loc[whole.tracks.index], whole.tracks,
                                  check_exact=True)
    for name in ("bouts", "epochs", "fish"):
        pd.testing.assert_frame_equal(getattr(got, name), getattr(whole, name), check_exact=True)
    assert got.noise == whole.noise


def scored_stored_stress(seed: int):
    """A stress recording's stored tracker output (``tests/data/stress<seed>_tracks.parquet``)
    scored by today's behaviour stage: ``(tracks, truth, cfg, result)``."""
    from pathlib import Path

    from fishtrack.behaviour import classify
    from fishtrack.synth.stress import _stress_config, draw_recording

    draw = draw_recording(seed)
    path = Path(__file__).parent / "data" / f"stress{seed}_tracks.parquet"
    tracks, truth = compact_tracks(path, draw.recording["fps"])
    cfg = _stress_config(draw.spec, None)
    return tracks, truth, cfg, classify(tracks, cfg.behaviour, cfg.protocol)


def passive_error(res, truth: pd.DataFrame, fish: str) -> float:
    """|scored - true| passive fraction of one fish over the frames it was scored."""
    state = res.tracks["state"].to_numpy()
    m = (truth["arena"] == fish).to_numpy() & (state != "unknown")
    return abs(float((state[m] == "passive").mean())
               - float(truth["true_passive"].to_numpy(bool)[m].mean()))


def true_bouts_found(res, tracks: pd.DataFrame, truth: pd.DataFrame,
                     fish: str | None = None) -> tuple[int, int]:
    """True bouts (runs of the truth's in-bout frames) that overlap a bout found, and all of
    them: of one fish, or summed over every fish when ``fish`` is None."""
    found = total = 0
    for f_id in ([fish] if fish is not None else sorted(truth["arena"].unique())):
        m = (truth["arena"] == f_id).to_numpy()
        ib = truth["true_in_bout"].to_numpy(bool)[m]
        t = tracks["time_s"].to_numpy(float)[m]
        edges = np.diff(np.r_[0, ib.astype(int), 0])
        starts, ends = t[np.flatnonzero(edges == 1)], t[np.flatnonzero(edges == -1) - 1]
        f = res.bouts[res.bouts["fish"] == f_id]
        total += len(starts)
        found += sum(bool(((f["start_s"] <= e) & (f["end_s"] >= a)).any())
                     for a, e in zip(starts, ends, strict=True))
    return found, total
