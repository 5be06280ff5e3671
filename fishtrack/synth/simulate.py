"""Put it together: plan a simulation, stream frames and truth, write the outputs."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from fishtrack.config import Phase, parse_config
from fishtrack.io.tables import atomic_path, write_table, write_text
from fishtrack.io.writer import DEFAULT_SUFFIX, VideoWriter
from fishtrack.synth.behaviour import (
    BoutPlan,
    bout_frame,
    generate_bouts,
    passive_intervals,
    phase_table,
    state_matrix,
)
from fishtrack.synth.body import (
    N_TAIL_POINTS,
    body_nodes,
    fish_polygons,
    midline_points,
    tail_angles,
    wrap,
)
from fishtrack.synth.motion import (
    BLOCK,
    EMBEDDED,
    FREE,
    STILL,
    FishSetup,
    MotionBlock,
    integrate,
    pivot_from_head,
)
from fishtrack.synth.scene import OPACITY, Scene, layout_scene, render_background
from fishtrack.synth.spec import SimSpec, fish_names

__all__ = [
    "SimPlan",
    "SimTruth",
    "SimResult",
    "TRUTH_COLUMNS",
    "BOUT_TRUTH_COLUMNS",
    "plan_simulation",
    "render_frames",
    "simulate_truth",
    "simulate",
    "sim_config",
]

TAIL_COLUMNS = [f"tail_x_{i}" for i in range(N_TAIL_POINTS)] + [
    f"tail_y_{i}" for i in range(N_TAIL_POINTS)
]
TRUTH_COLUMNS = [
    "frame", "time_s", "arena", "fish", "group", "x", "y", "heading", "tail_angle", "in_bout",
    "state", "present", "phase", *TAIL_COLUMNS,
]
BOUT_TRUTH_COLUMNS = [
    "fish", "arena", "start_frame", "end_frame", "start_s", "end_s", "n_beats", "beat_hz",
    "max_tail_angle", "group", "phase", "duration_s", "amplitude_rad", "turn_rad",
    "distance_px", "hold",
]
_SCHEMA = pa.schema(
    [
        ("frame", pa.int64()), ("time_s", pa.float64()), ("arena", pa.string()),
        ("fish", pa.string()), ("group", pa.string()), ("x", pa.float64()), ("y", pa.float64()),
        ("heading", pa.float64()), ("tail_angle", pa.float64()), ("in_bout", pa.bool_()),
        ("state", pa.string()), ("present", pa.bool_()), ("phase", pa.string()),
        *[(c, pa.float64()) for c in TAIL_COLUMNS],
    ]
)


POS_STEP = 1.0 / 1024.0
"""Stored truth coordinates are rounded to this (px): exact binary fractions that compress
well; far below any tracking error."""
ANGLE_STEP = 1.0 / 65536.0
"""Stored truth angles are rounded to this (rad)."""


def _q(v: np.ndarray, step: float) -> np.ndarray:
    return np.round(v / step) * step


def _qa(a: np.ndarray) -> np.ndarray:
    """Angles rounded to ANGLE_STEP, kept inside (-pi, pi]."""
    q = _q(a, ANGLE_STEP)
    q = np.where(q > np.pi, q - ANGLE_STEP, q)
    return np.where(q <= -np.pi, q + ANGLE_STEP, q)


@dataclass
class SimPlan:
    """Everything decided before the first frame: scene, fish, bouts, random streams."""

    spec: SimSpec
    scene: Scene
    fish: pd.DataFrame  # fish, arena, group, mode (free/embedded/still), arena_idx
    setup: FishSetup
    bouts: BoutPlan
    phases: list[Phase]
    n_frames: int
    seeds: dict[str, np.random.SeedSequence]
    passive: tuple[np.ndarray, np.ndarray, np.ndarray]
    phase_idx: np.ndarray  # per frame, -1 outside phases
    actual_turn: np.ndarray = field(default=None)  # type: ignore[assignment]
    actual_dist: np.ndarray = field(default=None)  # type: ignore[assignment]


@dataclass
class SimTruth:
    """Ground truth of a simulation (see :func:`simulate` for the columns)."""

    frames: pd.DataFrame
    bouts: pd.DataFrame
    arenas: pd.DataFrame


@dataclass
class SimResult:
    """Paths written by :func:`simulate` and the truth tables.

    ``truth`` (the per-frame table) is read from ``truth.parquet`` on first access.
    """

    out_dir: Path
    video_path: Path
    truth_path: Path
    bouts_path: Path
    arenas_path: Path
    config_path: Path
    spec_path: Path
    spec: SimSpec
    n_frames: int
    width: int
    height: int
    bouts: pd.DataFrame
    arenas: pd.DataFrame

    @functools.cached_property
    def truth(self) -> pd.DataFrame:
        return pd.read_parquet(self.truth_path)


# --------------------------------------------------------------------------------------------
# planning


def plan_simulation(spec: SimSpec) -> SimPlan:
    """Lay out the scene, place the fish and draw every bout (no frames yet)."""
    ss = np.random.SeedSequence(spec.seed)
    s_beh, s_place, s_motion, s_scene, s_noise = ss.spawn(5)
    scene = layout_scene(spec)
    groups = spec.group_of()
    rows = []
    for ai, a in enumerate(scene.arenas["name"]):
        if a in spec.empty_arenas:
            continue
        for f in fish_names(a, spec.fish_per_arena):
            mode = STILL if a in spec.still_arenas else EMBEDDED if spec.layout == "embedded" else FREE
            rows.append({"fish": f, "arena": a, "group": groups[f], "mode": mode, "arena_idx": ai})
    fish = pd.DataFrame(rows, columns=["fish", "arena", "group", "mode", "arena_idx"])
    n = len(fish)
    phases = spec.phases()
    n_frames = spec.n_frames
    treated = fish["group"].isin(spec.treated_groups).to_numpy()
    bouts = generate_bouts(
        np.where(treated, spec.effect, 0.0), phases=phases, fps=spec.fps, n_frames=n_frames,
        min_passive_s=spec.min_passive_s, rng=np.random.default_rng(s_beh),
        moving=fish["mode"].to_numpy() != STILL, params=fish_params(spec, fish),
        open_loop_passive=fish["arena"].isin(spec.passive_arenas).to_numpy(),
    )
    setup = _place(spec, scene, fish, np.random.default_rng(s_place))
    passive = passive_intervals(bouts.fish, bouts.start, bouts.end, n_fish=n, n_frames=n_frames,
                                fps=spec.fps, min_passive_s=spec.min_passive_s)
    ph_idx, _ = phase_table(phases, spec.fps, n_frames)
    return SimPlan(
        spec=spec, scene=scene, fish=fish, setup=setup, bouts=bouts, phases=phases,
        n_frames=n_frames, seeds={"motion": s_motion, "scene": s_scene, "noise": s_noise},
        passive=passive, phase_idx=ph_idx,
    )


def fish_params(spec: SimSpec, fish: pd.DataFrame) -> dict:
    """Behaviour-model parameter overrides (numbers, or arrays over ``fish``'s rows) from
    ``spec.bout_params`` and ``spec.fish_bout_params`` (fish name wins over arena name)."""
    out: dict = dict(spec.bout_params)
    per = spec.fish_bout_params
    if not per or not len(fish):
        return out
    from fishtrack.synth.behaviour import PARAMS

    keys = {k for par in per.values() for k in par}
    for k in keys:
        base = float(out.get(k, PARAMS[k]))
        vals = [per.get(f, {}).get(k, per.get(a, {}).get(k, base))
                for f, a in zip(fish["fish"], fish["arena"], strict=True)]
        out[k] = np.asarray(vals, float)
    return out


def _place(spec: SimSpec, scene: Scene, fish: pd.DataFrame, rng) -> FishSetup:
    n = len(fish)
    L = spec.fish_length_px
    ai = fish["arena_idx"].to_numpy(int)
    mode = fish["mode"].to_numpy(int)
    centre = np.stack([scene.region_cx[ai], scene.region_cy[ai]], axis=-1) if n else np.zeros((0, 2))
    rr = scene.region_r[ai] if n else np.zeros(0)
    u = rng.random((3, n))
    if spec.layout == "embedded":
        h0 = -np.pi / 2 + 0.04 * rng.standard_normal(n)
        c0 = pivot_from_head(scene.head_x[ai], scene.head_y[ai], h0, L)
        return FishSetup(arena=ai, mode=mode, c0=c0, h0=h0, region_c=c0.copy(),
                         region_r=np.zeros(n), region_square=False, length=L,
                         drift_px_s=0.0)
    h0 = rng.uniform(-np.pi, np.pi, n)
    if scene.region_square:
        off = (2 * u[:2].T - 1) * rr[:, None]
    else:
        rad = rr * np.sqrt(u[0])
        ang = 2 * np.pi * u[1]
        off = np.stack([rad * np.cos(ang), rad * np.sin(ang)], axis=-1)
    return FishSetup(arena=ai, mode=mode, c0=centre + off, h0=h0, region_c=centre,
                     region_r=rr.astype(float), region_square=scene.region_square, length=L,
                     drift_px_s=spec.drift_px_s)


# --------------------------------------------------------------------------------------------
# poses


@dataclass
class _Poses:
    lo: int
    hi: int
    head: np.ndarray  # (F, n, 2)
    heading: np.ndarray  # (F, n) unwrapped
    bout: np.ndarray  # (F, n)
    nodes: np.ndarray  # (F*n, n_nodes, 2)
    mid: np.ndarray  # (F, n, N_TAIL_POINTS, 2)
    tail_angle: np.ndarray  # (F, n)


def _poses(plan: SimPlan, blk: MotionBlock) -> _Poses:
    spec = plan.spec
    L = spec.fish_length_px
    F, n = blk.h.shape
    head = blk.head(L)
    b = blk.bout.reshape(-1)
    inb = b >= 0
    bb = np.where(inb, b, 0)
    bp = plan.bouts
    frames = np.repeat(np.arange(blk.lo, blk.hi), n)
    fish_i = np.tile(np.arange(n), F)
    if len(bp.start):
        tau = (frames - bp.start[bb] + 0.5) / spec.fps
        theta = tail_angles(bp.rest_bend[fish_i], tau=tau, duration=bp.n[bb] / spec.fps,
                            freq=bp.freq[bb], amp=bp.amp[bb], turn=plan.actual_turn[bb],
                            in_bout=inb)
    else:
        theta = tail_angles(bp.rest_bend[fish_i])
    hd = blk.h.reshape(-1)
    nodes = body_nodes(head[..., 0].reshape(-1), head[..., 1].reshape(-1), hd, theta, L)
    mid = midline_points(nodes)
    tip = mid[:, -1, :]
    hp = mid[:, 0, :]
    ta = wrap(np.arctan2(tip[:, 1] - hp[:, 1], tip[:, 0] - hp[:, 0]) - (hd + np.pi))
    return _Poses(lo=blk.lo, hi=blk.hi, head=head, heading=blk.h, bout=blk.bout, nodes=nodes,
                  mid=mid.reshape(F, n, N_TAIL_POINTS, 2), tail_angle=ta.reshape(F, n))


def _iter_poses(plan: SimPlan) -> Iterator[_Poses]:
    nb = len(plan.bouts.start)
    plan.actual_turn = np.full(nb, np.nan)
    plan.actual_dist = np.full(nb, np.nan)
    blocks = integrate(plan.setup, plan.bouts, n_frames=plan.n_frames, fps=plan.spec.fps,
                       rng=np.random.default_rng(plan.seeds["motion"]),
                       actual_turn=plan.actual_turn, actual_dist=plan.actual_dist)
    for blk in blocks:
        yield _poses(plan, blk)


# --------------------------------------------------------------------------------------------
# rendering


class _Renderer:
    """Draws frames: background, fish coverage layer, flicker, noise."""

    def __init__(self, plan: SimPlan):
        spec = plan.spec
        self.plan = plan
        self.spec = spec
        self.h, self.w = plan.scene.height, plan.scene.width
        self.bg, k = render_background(spec, plan.scene, np.random.default_rng(plan.seeds["scene"]))
        self.k_img = (np.asarray(k, np.float32) / 255.0) if np.ndim(k) else np.float32(k / 255.0)
        self.layer = np.zeros((self.h, self.w), np.uint8)
        self.buf = np.empty((self.h, self.w), np.float32)
        c = spec.contrast
        self.values = [int(round(255 * min(0.97, OPACITY[p] * c))) for p in ("body", "yolk", "eyes")]
        self.rng = np.random.default_rng(plan.seeds["noise"])
        self.pad = 32
        self.overlap = spec.layout == "chamber" and spec.fish_per_arena > 1
        nb = 0
        if spec.noise_sd > 0:
            nb = int(np.clip(4e7 / (4 * (self.h + self.pad) * (self.w + self.pad)), 2, 8))
            self.bank = (self.rng.standard_normal((nb, self.h + self.pad, self.w + self.pad),
                                                  dtype=np.float32) * np.float32(spec.noise_sd))
        self.n_bank = nb
        ph = self.rng.uniform(0, 2 * np.pi, 2)
        self.flick_phase = ph
        self.flick_f2 = self.rng.uniform(1.5, 4.0)

    def _draw_overlapping(self, q_out, q_yolk, q_eyes) -> None:
        """Draw one fish in its own patch and merge it with ``max``, so a fish crossing
        another never erases it (both stay visible where they overlap)."""
        v_body, v_yolk, v_eyes = self.values
        pts = np.concatenate([q_out, q_yolk, q_eyes.reshape(-1, 2)])
        x0 = max(0, int(pts[:, 0].min()) // 16 - 2)
        y0 = max(0, int(pts[:, 1].min()) // 16 - 2)
        x1 = min(self.w, int(pts[:, 0].max()) // 16 + 3)
        y1 = min(self.h, int(pts[:, 1].max()) // 16 + 3)
        if x1 <= x0 or y1 <= y0:
            return
        patch = np.zeros((y1 - y0, x1 - x0), np.uint8)
        off = np.array([x0 * 16, y0 * 16], np.int32)
        cv2.fillPoly(patch, [q_out - off], v_body, cv2.LINE_AA, 4)
        cv2.fillPoly(patch, [q_yolk - off], v_yolk, cv2.LINE_AA, 4)
        cv2.fillPoly(patch, list(q_eyes - off), v_eyes, cv2.LINE_AA, 4)
        sub = self.layer[y0:y1, x0:x1]
        np.maximum(sub, patch, out=sub)

    def _block_random(self, lo: int, hi: int):
        z = self.rng.random((BLOCK, 3))
        g = self.rng.standard_normal(BLOCK)
        return z[: hi - lo], g[: hi - lo]

    def frames(self, poses: _Poses) -> Iterator[np.ndarray]:
        spec = self.spec
        F, n = poses.heading.shape
        z, gz = self._block_random(poses.lo, poses.hi)
        if n:
            outline, yolk, eyes = fish_polygons(poses.nodes, poses.heading.reshape(-1),
                                                spec.fish_length_px)
            q_out = np.round(outline * 16).astype(np.int32).reshape(F, n, -1, 2)
            q_yolk = np.round(yolk * 16).astype(np.int32).reshape(F, n, -1, 2)
            q_eyes = np.round(eyes * 16).astype(np.int32).reshape(F, n * 2, -1, 2)
        t = np.arange(poses.lo, poses.hi) / spec.fps
        gain = np.ones(F)
        if spec.flicker > 0:
            a, b = self.flick_phase
            gain = 1.0 + spec.flicker * (
                0.6 * np.sin(2 * np.pi * 0.37 * t + a)
                + 0.25 * np.sin(2 * np.pi * self.flick_f2 * t + b)
                + 0.15 * np.clip(gz, -2, 2) / 2
            )
        v_body, v_yolk, v_eyes = self.values
        lay = self.layer
        for k in range(F):
            lay.fill(0)
            if n:
                if self.overlap:
                    for i in range(n):
                        self._draw_overlapping(q_out[k, i], q_yolk[k, i], q_eyes[k, 2 * i : 2 * i + 2])
                else:
                    cv2.fillPoly(lay, list(q_out[k]), v_body, cv2.LINE_AA, 4)
                    cv2.fillPoly(lay, list(q_yolk[k]), v_yolk, cv2.LINE_AA, 4)
                    cv2.fillPoly(lay, list(q_eyes[k]), v_eyes, cv2.LINE_AA, 4)
            out = self.buf
            np.multiply(lay, self.k_img, out=out, dtype=np.float32, casting="unsafe")
            out += self.bg
            if gain[k] != 1.0:
                out *= np.float32(gain[k])
            if self.n_bank:
                bi = int(z[k, 0] * self.n_bank)
                oy = int(z[k, 1] * self.pad)
                ox = int(z[k, 2] * self.pad)
                out += self.bank[bi, oy : oy + self.h, ox : ox + self.w]
            np.clip(out, 0, 255, out=out)
            frame = np.empty((self.h, self.w), np.uint8)
            np.add(out, 0.5, out=out)
            frame[...] = out  # truncation after +0.5 = rounding (values >= 0)
            yield frame


def render_frames(spec: SimSpec, *, plan: SimPlan | None = None) -> Iterator[np.ndarray]:
    """Rendered frames (H x W uint8), streamed in order; memory does not grow with length."""
    plan = plan or plan_simulation(spec)
    r = _Renderer(plan)
    for poses in _iter_poses(plan):
        yield from r.frames(poses)


# --------------------------------------------------------------------------------------------
# truth


class _TruthBuilder:
    def __init__(self, plan: SimPlan):
        self.plan = plan
        n = len(plan.fish)
        self.arena = np.asarray(plan.fish["arena"], dtype=object)
        self.fish = np.asarray(plan.fish["fish"], dtype=object)
        self.group = np.asarray(plan.fish["group"], dtype=object)
        self.phase_names = np.asarray([p.name for p in plan.phases] + [None], dtype=object)
        self.max_tail = np.zeros(len(plan.bouts.start))
        self.n = n

    def table(self, poses: _Poses) -> pa.Table:
        plan = self.plan
        F, n = poses.heading.shape
        frames = np.arange(poses.lo, poses.hi)
        in_bout = poses.bout >= 0
        _, passive = state_matrix(plan.bouts, plan.spec.min_passive_s, lo=poses.lo, hi=poses.hi,
                                  intervals=plan.passive)
        ta = _qa(poses.tail_angle)
        if in_bout.any():
            np.maximum.at(self.max_tail, poses.bout[in_bout], np.abs(ta[in_bout]))
        mid = _q(poses.mid.reshape(F * n, N_TAIL_POINTS, 2), POS_STEP)
        cols = {
            "frame": np.repeat(frames, n),
            "time_s": np.repeat(frames / plan.spec.fps, n),
            "arena": np.tile(self.arena, F),
            "fish": np.tile(self.fish, F),
            "group": np.tile(self.group, F),
            "x": mid[:, 0, 0],
            "y": mid[:, 0, 1],
            "heading": _qa(wrap(poses.heading.reshape(-1))),
            "tail_angle": ta.reshape(-1),
            "in_bout": in_bout.reshape(-1),
            "state": np.where(passive.reshape(-1), "passive", "active").astype(object),
            "present": np.ones(F * n, bool),
            "phase": np.repeat(self.phase_names[plan.phase_idx[poses.lo : poses.hi]], n),
        }
        for i in range(N_TAIL_POINTS):
            cols[f"tail_x_{i}"] = mid[:, i, 0]
        for i in range(N_TAIL_POINTS):
            cols[f"tail_y_{i}"] = mid[:, i, 1]
        return pa.Table.from_pydict(cols, schema=_SCHEMA)

    def bouts(self) -> pd.DataFrame:
        plan = self.plan
        bp = plan.bouts
        df = bout_frame(bp, self.fish, self.group, [p.name for p in plan.phases], plan.phase_idx,
                        max_tail=self.max_tail)
        df["arena"] = self.arena[bp.fish] if len(bp.fish) else np.zeros(0, dtype=object)
        df["turn_rad"] = plan.actual_turn
        df["distance_px"] = plan.actual_dist
        return df[BOUT_TRUTH_COLUMNS]


def _empty_truth() -> pa.Table:
    return _SCHEMA.empty_table()


def simulate_truth(spec: SimSpec, *, plan: SimPlan | None = None) -> SimTruth:
    """Ground truth only (no rendering): per-frame table, bouts and arenas."""
    plan = plan or plan_simulation(spec)
    tb = _TruthBuilder(plan)
    parts = [tb.table(p) for p in _iter_poses(plan)]
    table = pa.concat_tables(parts) if parts else _empty_truth()
    return SimTruth(frames=table.to_pandas(), bouts=tb.bouts(), arenas=plan.scene.arenas.copy())


# --------------------------------------------------------------------------------------------
# writing


def sim_config(spec: SimSpec) -> dict:
    """A fishtrack config (as a mapping) matching a simulated video."""
    arenas: dict = {
        "layout": spec.layout,
        "rows": spec.rows,
        "cols": spec.cols,
        "fish_per_arena": spec.fish_per_arena,
    }
    if spec.layout != "embedded":
        arenas["shape"] = spec.shape
    cfg = {
        "arenas": arenas,
        "tracking": {"polarity": spec.polarity, "n_tail_points": N_TAIL_POINTS},
        "behaviour": {"min_passive_s": spec.min_passive_s},
        "protocol": [p.model_dump(mode="json") for p in spec.phases()],
        "stats": {"reference_group": "control"},
        "px_per_mm": round(spec.fish_length_px / 4.0, 4),
    }
    if spec.codec in ("tiff", "png"):  # image stacks and folders store no frame rate
        cfg = {"video": {"fps": float(spec.fps)}, **cfg}
    parse_config(cfg, "simulated config")  # must always be valid
    return cfg


def _yaml(header: str, data: dict) -> str:
    body = yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
    return "".join(f"# {line}\n" for line in header.splitlines()) + body


def simulate(spec: SimSpec, out_dir: str | Path) -> SimResult:
    """Render the video and write it with its ground truth into ``out_dir``.

    Writes ``<name>.<ext>`` (video; a folder for ``png``), ``truth.parquet`` (one row per
    frame per fish), ``truth_bouts.csv``, ``truth_arenas.csv``, ``config.yaml`` (a fishtrack
    config for tracking the video) and ``sim_spec.yaml`` (the spec, to regenerate it).

    Empty arenas have no rows in ``truth.parquet`` (``present`` is therefore always True).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plan = plan_simulation(spec)
    video_path = out / f"{spec.name}{DEFAULT_SUFFIX[spec.codec]}"
    truth_path = out / "truth.parquet"
    renderer = _Renderer(plan)
    tb = _TruthBuilder(plan)
    with atomic_path(truth_path) as tmp, VideoWriter(video_path, spec.fps, spec.codec,
                                                     crf=spec.crf) as vw:
        with pq.ParquetWriter(tmp, _SCHEMA, compression="zstd") as pw:
            wrote = False
            for poses in _iter_poses(plan):
                pw.write_table(tb.table(poses))
                wrote = True
                for fr in renderer.frames(poses):
                    vw.write(fr)
            if not wrote:
                pw.write_table(_empty_truth())
    bouts = tb.bouts()
    bouts_path = write_table(bouts, out / "truth_bouts.csv")
    arenas = plan.scene.arenas.copy()
    arenas_path = write_table(arenas, out / "truth_arenas.csv")
    header = (f"fishtrack config for the simulated video {video_path.name} (written by "
              "fishtrack.synth.simulate).\nTrack it with: fishtrack track "
              f"{video_path.name} --config config.yaml --out tracked")
    config_path = write_text(out / "config.yaml", _yaml(header, sim_config(spec)))
    spec_path = write_text(
        out / "sim_spec.yaml",
        _yaml("Simulator settings (fishtrack.synth.SimSpec) that produced this folder.",
              spec.model_dump(mode="json")),
    )
    return SimResult(
        out_dir=out, video_path=video_path, truth_path=truth_path, bouts_path=bouts_path,
        arenas_path=arenas_path, config_path=config_path, spec_path=spec_path, spec=spec,
        n_frames=plan.n_frames, width=plan.scene.width, height=plan.scene.height,
        bouts=bouts, arenas=arenas,
    )
