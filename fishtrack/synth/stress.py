"""Behaviour stress suite: one seed draws a whole recording at random, with known truth.

:func:`draw_recording` turns a seed into a :class:`StressDraw` (a :class:`SimSpec` plus a
description of every draw) over the ranges of :data:`RANGES`: layout, fish count and size,
frame rate, polarity, contrast, camera noise, flicker, codec and quality, and per fish its
bouting (duty cycle, bout duration, inter-bout interval, beat frequency, amplitude, give-up
dynamics), still fish (never move) and fish passive through the whole open loop.
:func:`run_recording` simulates it, scores it from video through the full pipeline
(``fishtrack track``: background, arenas, tracker, behaviour) or from the true tracks with
simulated tracking noise (:func:`noisy_truth_tracks`), and :func:`score_recording` compares
the result with the truth (:data:`METRIC_COLUMNS`).

Seeds 0-999 are for tuning (:data:`TUNE_SEEDS`); seeds 1000-1199 are the first held-out
reporting range (:data:`REPORT_SEEDS`, the bench's default). Later reports used further ranges
never used for tuning (3000-3099, 4000-4199, 6000-6199; ``bench/bench_behaviour_stress.py --report``;
see docs/behaviour.md).

Draws that depend on rendering the simulator does not do yet (head-embedded larvae at any
orientation, random morphology, a tail fading towards its tip) plug in through
``draw_recording(seed, extra_draws=[...])``: each extra draw gets its own random stream, so
adding one never changes the draws listed in :data:`RANGES`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fishtrack.behaviour import classify
from fishtrack.behaviour.calibrate import cohen_kappa
from fishtrack.config import parse_config
from fishtrack.pipeline import track_to_folder
from fishtrack.synth.simulate import sim_config, simulate, simulate_truth
from fishtrack.synth.spec import SimSpec, arena_names

__all__ = [
    "RANGES",
    "TUNE_SEEDS",
    "REPORT_SEEDS",
    "PENDING_DRAWS",
    "METRIC_COLUMNS",
    "StressDraw",
    "draw_recording",
    "noisy_truth_tracks",
    "match_onsets",
    "score_recording",
    "run_recording",
    "rescore_recording",
    "summarise",
]

TUNE_SEEDS = range(0, 1000)
"""Seeds used while developing and tuning the behaviour stage."""
REPORT_SEEDS = range(1000, 1200)
"""Held-out seeds: figures in docs/behaviour.md and the bench come from these only."""

RANGES: dict[str, object] = {
    "layout": ("wells", "embedded"),
    "fps": (60.0, 1000.0),  # log-uniform
    "fish_length_px": (20.0, 150.0),  # log-uniform
    "polarity": ("dark", "bright"),
    "tail_contrast_grey": (15.0, 75.0),  # grey levels of the tail over the background
    "noise_sd": (2.0, 12.0),
    "flicker": (0.0, 0.05),  # 0 in half of the recordings
    "codec": ("h264", "mjpg"),  # h264 in 80 %
    "crf": (18, 28),
    "duty_cycle": (0.0, 0.5),  # fraction of frames in bouts while struggling
    "bout_duration_s": (0.08, 0.6),
    "beat_hz": (15.0, 40.0),
    "still_fish_p": 0.12,  # per fish: never moves
    "open_loop_passive_p": 0.12,  # per fish: no bout in open loop at all
}
"""What one seed draws (see :func:`draw_recording` for how)."""

PENDING_DRAWS = (
    "head-embedded larvae at any orientation (the simulator draws them head up)",
    "random morphology (eye spacing, head width, tail taper)",
    "a tail fading to ~15 grey levels at its tip (the simulator's tail has one opacity)",
)
"""Draws of the issue that wait for the simulator's rendering (pass ``extra_draws``)."""

_TAIL_OPACITY = 0.30  # fishtrack.synth.scene.OPACITY["body"]
_BG = {"dark": 205.0, "bright": 190.0}  # water grey (dark) / fish grey (bright), at contrast 1
MAX_COST_S = 10.0
"""Budget of one recording (estimated seconds of simulation + tracking on one core): the
duration is shortened (never below ``MIN_DURATION_S``) and the fish count reduced to fit."""
MIN_DURATION_S = 6.0
MAX_DURATION_S = 20.0


@dataclass
class StressDraw:
    """One randomly drawn recording: the simulator spec and what was drawn."""

    seed: int
    spec: SimSpec
    recording: dict
    fish: pd.DataFrame  # one row per fish: arena, still, open_loop_passive, duty, ...
    truth_noise: dict  # parameters of the simulated tracking noise (truth mode)
    extra: dict = field(default_factory=dict)

    @property
    def still_fish(self) -> list[str]:
        return list(self.fish.loc[self.fish["still"], "arena"])


def _cost_s(n_frames: int, width: int, height: int) -> float:
    """Rough seconds to simulate, encode and track a video on one core (measured)."""
    return n_frames * (0.0025 + 0.056 * width * height / 1e6)


def _frame_size(layout: str, rows: int, cols: int, length: float, well: float) -> tuple[int, int]:
    """Frame size of the recording: wells of ``well`` px with a margin of ~0.2 pitch, or the
    simulator's own embedded layout."""
    if layout == "wells":
        pitch = well + max(4.0, 0.12 * well)
        return 2 * int(math.ceil((cols + 0.4) * pitch / 2)), 2 * int(math.ceil((rows + 0.4) * pitch / 2))
    cw = 2.0 * length
    pad = max(4.0, 0.06 * cw)
    return 2 * int(round((cols * cw + 2 * pad) / 2)), 2 * int(round((rows * 0.65 * cw + 2 * pad) / 2))


def _fit_budget(layout, rows, cols, length, well, fps, want_s, max_cost_s):
    """Duration and fish count fitted to the budget: a shorter recording first (not below
    10 s), then fewer fish (not below 2), then shorter again (not below MIN_DURATION_S)."""
    while True:
        w, h = _frame_size(layout, rows, cols, length, well)
        dur = want_s
        floor = 10.0 if rows * cols > 2 else MIN_DURATION_S
        while _cost_s(int(round(dur * fps)), w, h) > max_cost_s and dur > floor:
            dur = max(floor, dur * 0.9)
        if _cost_s(int(round(dur * fps)), w, h) <= max_cost_s or rows * cols <= 2:
            return rows, cols, dur, w, h
        if rows > 1:
            rows -= 1
        else:
            cols -= 1


def draw_recording(
    seed: int,
    *,
    extra_draws: Sequence[Callable[[np.random.Generator, dict], dict]] = (),
    max_cost_s: float = MAX_COST_S,
) -> StressDraw:
    """Draw a whole recording from one seed.

    Parameters
    ----------
    seed
        Any non-negative integer; the same seed gives the same recording.
    extra_draws
        Functions ``f(rng, recording) -> dict`` of further :class:`SimSpec` fields (e.g. a
        morphology drawer); each gets its own random stream, so the other draws do not
        change when one is added.
    max_cost_s
        Budget (estimated s of simulation + tracking) the duration and fish count are fitted to.
    """
    ss = np.random.SeedSequence([seed, 1011])
    s_rec, s_fish, s_noise, s_spec, s_extra = ss.spawn(5)
    rng = np.random.default_rng(s_rec)
    rec: dict = {}
    layout = str(rng.choice(RANGES["layout"], p=[0.6, 0.4]))
    fps = float(round(math.exp(rng.uniform(math.log(60.0), math.log(1000.0)))))
    length = float(round(math.exp(rng.uniform(math.log(20.0), math.log(150.0))), 1))
    polarity = str(rng.choice(RANGES["polarity"]))
    tail_grey = float(rng.uniform(15.0, 75.0))
    contrast = tail_grey / (_TAIL_OPACITY * _BG[polarity])
    noise = float(rng.uniform(2.0, 12.0))
    flicker = float(rng.uniform(0.005, 0.05)) if rng.random() < 0.5 else 0.0
    codec = "h264" if rng.random() < 0.8 else "mjpg"
    crf = int(rng.integers(18, 29))
    rows, cols = (int(rng.integers(1, 3)), int(rng.integers(2, 4)))
    well_f = float(rng.uniform(2.4, 3.2))  # well diameter / fish length
    want_s = float(rng.uniform(12.0, MAX_DURATION_S))
    redraws = 0
    while True:
        rows, cols, dur, w, h = _fit_budget(layout, rows, cols, length, round(well_f * length, 1),
                                            fps, want_s, max_cost_s)
        if _cost_s(int(round(dur * fps)), w, h) <= 2.0 * max_cost_s or redraws >= 20:
            break
        # a camera cannot stream that many pixels: draw the fish size again (the excluded
        # corner - large fish in wells at high frame rates - is an easy one for bouts)
        length = float(round(math.exp(rng.uniform(math.log(20.0), math.log(150.0))), 1))
        redraws += 1
    well = round(well_f * length, 1)
    duration = round(dur, 2)
    rec.update(layout=layout, fps=fps, fish_length_px=length, polarity=polarity,
               tail_contrast_grey=round(tail_grey, 1), contrast=round(contrast, 3),
               size_redraws=redraws,
               noise_sd=round(noise, 2), flicker=round(flicker, 4), codec=codec, crf=crf,
               rows=rows, cols=cols, duration_s=duration,
               well_diameter_px=well if layout == "wells" else None, width=w, height=h)

    names = arena_names(rows, cols)
    frng = np.random.default_rng(s_fish)
    fish = _draw_fish(frng, names, open_loop_s=duration - round(duration / 3.0, 2))
    if fish["still"].all():  # at least one fish that moves
        fish.loc[0, "still"] = False
    params, per_fish = _fish_params(fish)
    cut = round(duration / 3.0, 2)
    spec_fields = dict(
        name="stress", layout=layout, rows=rows, cols=cols, fps=fps, duration_s=duration,
        arena_size_px=rec["well_diameter_px"], width=w, height=h,
        fish_length_px=length, polarity=polarity, contrast=min(2.0, contrast),
        noise_sd=noise, flicker=flicker, codec=codec, crf=crf,
        seed=int(np.random.default_rng(s_spec).integers(0, 2**31 - 1)),
        groups="all_control", effect=0.0,
        still_arenas=list(fish.loc[fish["still"], "arena"]),
        passive_arenas=list(fish.loc[fish["open_loop_passive"] & ~fish["still"], "arena"]),
        bout_params=params, fish_bout_params=per_fish,
        protocol=[
            {"name": "closed_loop_1", "kind": "closed_loop", "start_s": 0.0, "end_s": cut},
            {"name": "open_loop_1", "kind": "open_loop", "start_s": cut, "end_s": duration},
        ],
    )
    extra: dict = {}
    for k, fn in enumerate(extra_draws):
        erng = np.random.default_rng(np.random.SeedSequence([seed, 1011, 7, k]))
        got = dict(fn(erng, dict(rec)))
        extra.update(got)
    spec_fields.update(extra)
    spec = SimSpec(**spec_fields)
    nrng = np.random.default_rng(s_noise)
    truth_noise = _draw_truth_noise(nrng, rec)
    return StressDraw(seed=seed, spec=spec, recording=rec, fish=fish, truth_noise=truth_noise,
                      extra=extra)


def _draw_fish(rng: np.random.Generator, names: list[str], *, open_loop_s: float) -> pd.DataFrame:
    n = len(names)
    still = rng.random(n) < float(RANGES["still_fish_p"])
    quit_open = rng.random(n) < float(RANGES["open_loop_passive_p"])
    # bouting: struggle (open loop) duty 0.1-0.5 with bouts 0.1-0.6 s; normal (closed loop)
    # duty 0.05-0.35 with bouts 0.08-0.4 s; beat frequency bands inside 15-40 Hz
    s_dur = rng.uniform(0.12, 0.5, n)
    s_duty = rng.uniform(0.1, 0.5, n)
    n_dur = rng.uniform(0.08, 0.35, n)
    n_duty = rng.uniform(0.05, 0.35, n)
    f_lo = rng.uniform(15.0, 32.0, n)
    f_hi = np.minimum(40.0, f_lo + rng.uniform(3.0, 10.0, n))
    amp = np.exp(rng.uniform(math.log(0.45), math.log(1.6), n))  # tip amplitude, rad
    # give-up dynamics scaled to the open loop's length: first give-up after 5-40 % of it
    giveup = open_loop_s * rng.uniform(0.05, 0.4, n)  # median latency, s
    burst = np.minimum(4.0, open_loop_s * rng.uniform(0.08, 0.3, n))  # median struggle, s
    return pd.DataFrame({
        "arena": names, "still": still, "open_loop_passive": quit_open & ~still,
        "struggle_bout_s": s_dur, "struggle_duty": s_duty, "normal_bout_s": n_dur,
        "normal_duty": n_duty, "beat_lo_hz": f_lo, "beat_hi_hz": f_hi, "amp_rad": amp,
        "giveup_s": giveup, "burst_s": burst,
    })


def _fish_params(fish: pd.DataFrame) -> tuple[dict, dict]:
    """Behaviour-model parameters: global ones, and per-fish ones keyed by arena."""
    glob = {"dur_lo": 0.08, "dur_hi": 0.6, "trait_rate_sd": 0.1, "trait_vigour_sd": 0.1,
            "passive_extra_scale": 2.5, "first_giveup_sd": 0.4, "burst_sd": 0.4}
    per: dict[str, dict[str, float]] = {}
    for r in fish.itertuples():
        p: dict[str, float] = {}
        for kind, dur, duty in (("struggle", r.struggle_bout_s, r.struggle_duty),
                                ("normal", r.normal_bout_s, r.normal_duty)):
            # duration = min + gamma(4, scale): mean dur, sd ~ dur / 4
            p[f"{kind}_dur_min"] = round(0.6 * dur, 4)
            p[f"{kind}_dur_scale"] = round(0.1 * dur, 4)
            gap = float(np.clip(dur * (1.0 - duty) / duty, 0.2, 1.2))
            p[f"{kind}_ibi_min"] = round(0.5 * gap, 4)
            p[f"{kind}_ibi_scale"] = round(0.25 * gap, 4)
            p[f"{kind}_freq_lo"] = round(float(r.beat_lo_hz), 2)
            p[f"{kind}_freq_hi"] = round(float(r.beat_hi_hz), 2)
            p[f"{kind}_amp_lo"] = round(0.8 * float(r.amp_rad), 3)
            p[f"{kind}_amp_hi"] = round(1.2 * float(r.amp_rad), 3)
        p["first_giveup_median"] = round(float(r.giveup_s), 3)
        p["burst_median"] = round(float(r.burst_s), 3)
        per[str(r.arena)] = p
    return glob, per


def _draw_truth_noise(rng: np.random.Generator, rec: dict) -> dict:
    """Tracking noise for the truth mode: white + slow (flicker-like) + outliers + losses."""
    sd = float(math.exp(rng.uniform(math.log(0.01), math.log(0.08))))
    return {
        "tail_sd_rad": round(sd, 4),
        "tail_slow_sd_rad": round(float(rng.uniform(0.0, 0.5)) * sd, 4),
        "outlier_p": round(float(rng.uniform(0.0, 0.005)), 5),
        "outlier_rad": round(float(rng.uniform(0.1, 0.6)), 3),
        "pos_sd_px": round(float(rng.uniform(0.2, 1.0)), 3),
        "lost_p": round(float(rng.uniform(0.0, 0.03)), 4),
        "long_loss_p": 0.3,
        "seed": int(rng.integers(0, 2**31 - 1)),
    }


TRUTH_ONLY = ("in_bout", "state", "group", "present", "phase")


def noisy_truth_tracks(truth: pd.DataFrame, noise: dict) -> pd.DataFrame:
    """The simulator's true tracks with tracking noise added (the behaviour stage's input
    without the tracker's own failures).

    Tail angle: white noise ``tail_sd_rad`` per frame, plus a slow AR(1) component (time
    constant 0.2 s, ``tail_slow_sd_rad``), plus outliers (probability ``outlier_p`` per frame,
    +/- ``outlier_rad`` x U(0.5, 1.5)); head x/y: ``pos_sd_px``; single lost frames with
    probability ``lost_p``; with probability ``long_loss_p`` per fish one loss of 0.2-1.5 s.
    """
    rng = np.random.default_rng(noise["seed"])
    tr = truth.drop(columns=[c for c in TRUTH_ONLY if c in truth.columns]).copy()
    tr = tr.sort_values(["fish", "frame"], kind="stable").reset_index(drop=True)
    n = len(tr)
    t = tr["time_s"].to_numpy(float)
    dt = float(np.median(np.diff(np.unique(t)))) if n > 1 else 1.0
    fish = tr["fish"].to_numpy()
    new = np.r_[True, fish[1:] != fish[:-1]]
    a = math.exp(-dt / 0.2)
    z = rng.standard_normal(n)
    slow = np.empty(n)
    acc = 0.0
    k = math.sqrt(1 - a * a)
    for i in range(n):  # AR(1), restarted per fish
        acc = z[i] if new[i] else a * acc + k * z[i]
        slow[i] = acc
    err = noise["tail_sd_rad"] * rng.standard_normal(n) + noise["tail_slow_sd_rad"] * slow
    out = rng.random(n) < noise["outlier_p"]
    err[out] += rng.choice([-1.0, 1.0], out.sum()) * noise["outlier_rad"] * rng.uniform(
        0.5, 1.5, out.sum())
    tr["tail_angle"] = tr["tail_angle"].to_numpy(float) + err
    tr["x"] = tr["x"] + rng.normal(0, noise["pos_sd_px"], n)
    tr["y"] = tr["y"] + rng.normal(0, noise["pos_sd_px"], n)
    lost = rng.random(n) < noise["lost_p"]
    for f in pd.unique(fish):
        if rng.random() < noise["long_loss_p"]:
            rows = np.flatnonzero(fish == f)
            ln = int(round(rng.uniform(0.2, 1.5) / dt))
            s = int(rng.integers(0, max(1, len(rows) - ln)))
            lost[rows[s : s + ln]] = True
    tr["detected"] = ~lost
    cols = ["x", "y", "heading", "tail_angle"] + [
        c for c in tr.columns if c.startswith(("tail_x_", "tail_y_"))]
    tr.loc[lost, cols] = np.nan
    return tr


def match_onsets(truth: pd.DataFrame, found: pd.DataFrame, tol_s: float = 0.05):
    """Greedy one-to-one matching of bouts by onset within ``tol_s``, per fish.

    Returns ``(tp, fp, fn, onset_errors_s)`` (errors: found minus true, of the matches).
    """
    tp, errs = 0, []
    for fish, tr in truth.groupby("fish", sort=False):
        fd = found[found["fish"].astype(str) == str(fish)].sort_values("start_s")
        fs = fd["start_s"].to_numpy(float)
        used = np.zeros(len(fs), bool)
        for a in np.sort(tr["start_s"].to_numpy(float)):
            d = np.abs(fs - a)
            d[used] = np.inf
            if len(d) and d.min() <= tol_s:
                j = int(np.argmin(d))
                used[j] = True
                tp += 1
                errs.append(fs[j] - a)
    fp = len(found) - tp
    fn = len(truth) - tp
    return tp, fp, fn, np.asarray(errs)


METRIC_COLUMNS = (
    "seed", "mode", "n_fish", "fish_missing", "coverage", "accuracy", "kappa", "kappa_defined",
    "passive_err_max", "n_fish_passive_ok", "passive_err_open_max", "still_ok", "n_still",
    "n_still_ok", "n_still_missing", "tp", "fp", "fn", "bout_f1", "onset_err_ms", "seconds",
)
KAPPA_GOAL = 0.9
PASSIVE_ERR_GOAL = 0.03
F1_GOAL = 0.9


def score_recording(
    scored: pd.DataFrame, bouts: pd.DataFrame, truth: pd.DataFrame, truth_bouts: pd.DataFrame,
    *, still_fish: Sequence[str] = (), open_loop: Sequence[str] = (),
) -> dict:
    """Compare a scored tracks table (with ``state``) and its bouts with the truth.

    Frames are joined on ``(fish, frame)``. ``coverage``: fraction of true frames with a
    known state (a fish the tracker lost, or never found, lowers it). ``accuracy`` and
    ``kappa`` (passive vs active): over the frames with a known state. ``passive_err_max``:
    largest per-fish |passive fraction - true| over each fish's known frames (whole record);
    ``passive_err_open_max``: the same over the open-loop phases. ``still_ok``: every still
    fish is 100 % passive in its known frames and has no bout. ``bout_f1``: onsets matched
    within 50 ms. ``onset_err_ms``: median |onset error| of the matches.
    """
    t = truth[["fish", "frame", "state", "phase"]].copy()
    t["fish"] = t["fish"].astype(str)
    if "state" not in scored.columns:  # nothing tracked, so nothing scored
        scored = pd.DataFrame({"fish": pd.Series(dtype=str), "frame": pd.Series(dtype=np.int64),
                               "state": pd.Series(dtype=str)})
    s = scored[["fish", "frame", "state"]].copy()
    s["fish"] = s["fish"].astype(str)
    m = t.merge(s, on=["fish", "frame"], how="left", suffixes=("_t", ""))
    m["state"] = m["state"].fillna("unknown").astype(str)
    known = (m["state"] != "unknown").to_numpy()
    st = m["state"].to_numpy()
    tt = m["state_t"].astype(str).to_numpy()
    out = {"n_fish": int(t["fish"].nunique()), "coverage": float(known.mean()) if len(m) else 0.0}
    seen = m.loc[known, "fish"].unique()
    out["fish_missing"] = int(out["n_fish"] - len(seen))
    if known.any():
        out["accuracy"] = float(np.mean(st[known] == tt[known]))
        out["kappa"] = cohen_kappa(st[known] == "passive", tt[known] == "passive")
        pt = float(np.mean(tt[known] == "passive"))
        out["kappa_defined"] = bool(0.01 <= pt <= 0.99)
    else:
        out["accuracy"] = out["kappa"] = float("nan")
        out["kappa_defined"] = False
    mk = m[known].assign(p=lambda d: d["state"] == "passive", pt=lambda d: d["state_t"] == "passive")
    per = mk.groupby("fish")[["p", "pt"]].mean()
    err = (per["p"] - per["pt"]).abs()
    out["passive_err_max"] = float(err.max()) if len(per) else float("nan")
    out["n_fish_passive_ok"] = int((err <= PASSIVE_ERR_GOAL).sum())
    mo = mk[mk["phase"].astype(str).isin([str(x) for x in open_loop])]
    po = mo.groupby("fish")[["p", "pt"]].mean()
    out["passive_err_open_max"] = float((po["p"] - po["pt"]).abs().max()) if len(po) else float("nan")
    n_ok = 0
    for f in still_fish:
        d = mk[mk["fish"] == str(f)]
        nb = int((bouts["fish"].astype(str) == str(f)).sum()) if len(bouts) else 0
        n_ok += int(len(d) > 0 and bool(d["p"].all()) and nb == 0)
    out["still_ok"] = n_ok == len(still_fish)
    out["n_still"] = len(still_fish)
    out["n_still_ok"] = n_ok
    out["n_still_missing"] = int(sum(str(f) not in set(seen) for f in still_fish))
    # bouts count where the result knows the state at their onset (a fish unseen at a
    # bout's start cannot have it detected; coverage reports how much was unseen)
    known_at = set(zip(m.loc[known, "fish"], m.loc[known, "frame"], strict=True))
    tb = truth_bouts.assign(fish=truth_bouts["fish"].astype(str))
    tb = tb[[k in known_at for k in zip(tb["fish"], tb["start_frame"], strict=True)]]
    fb = bouts.assign(fish=bouts["fish"].astype(str)) if len(bouts) else bouts
    tp, fp, fn, err = match_onsets(tb, fb if len(fb) else pd.DataFrame({"fish": [], "start_s": []}))
    out.update(tp=tp, fp=fp, fn=fn)
    if tp + fp + fn:
        out["bout_f1"] = 2 * tp / (2 * tp + fp + fn)
    else:  # no bout to find and none found; nothing at all when no frame was seen
        out["bout_f1"] = 1.0 if known.any() else float("nan")
    out["onset_err_ms"] = float(np.median(np.abs(err)) * 1000) if len(err) else float("nan")
    return out


def _stress_config(spec: SimSpec, behaviour: dict | None):
    """The recording's pipeline config (as ``fishtrack simulate`` writes it), with
    ``behaviour`` overrides of its behaviour section."""
    cfg_map = sim_config(spec)
    if behaviour:
        cfg_map["behaviour"] = {**cfg_map["behaviour"], **behaviour}
    return parse_config(cfg_map, "stress config")


def run_recording(
    seed: int, workdir: str | Path, *, mode: str = "video", behaviour: dict | None = None,
    draw: StressDraw | None = None, keep: bool | str = False,
) -> dict:
    """Simulate the recording of ``seed`` and score it against its truth.

    ``mode="video"``: render and encode the video, then ``track_to_folder`` (the whole
    pipeline, as ``fishtrack track``). ``mode="truth"``: the true tracks plus simulated
    tracking noise (:func:`noisy_truth_tracks`), scored by ``classify``. ``behaviour``:
    overrides of the behaviour config section. ``keep``: leave the work folder
    (``workdir/seed<N>_<mode>``); ``"tables"`` keeps it without the video. Returns one row of
    :data:`METRIC_COLUMNS` plus the draw's description.
    """
    import shutil


    t0 = time.perf_counter()
    draw = draw or draw_recording(seed)
    spec = draw.spec
    cfg = _stress_config(spec, behaviour)
    work = Path(workdir) / f"seed{seed}_{mode}"
    open_loop = [p.name for p in spec.phases() if p.kind == "open_loop"]
    try:
        if mode == "video":

            res = simulate(spec, work)
            truth, truth_bouts = res.truth, res.bouts
            tr = track_to_folder(res.video_path, cfg, work / "tracked")
            scored = tr.tracks
            bouts = tr.bouts if tr.bouts is not None else pd.DataFrame({"fish": [], "start_s": []})
            extra = {"noise_rad": _tracked_noise(tr), "tail_err_rad": _tail_error(scored, truth),
                     "tail_err_bout_rad": _tail_error(scored, truth, in_bout=True)}
        elif mode == "truth":
            st = simulate_truth(spec)
            truth, truth_bouts = st.frames, st.bouts
            tracks = noisy_truth_tracks(truth, draw.truth_noise)
            b = classify(tracks, cfg.behaviour, cfg.protocol)
            scored, bouts = b.tracks, b.bouts
            extra = {"noise_rad": draw.truth_noise["tail_sd_rad"],
                     "tail_err_rad": _tail_error(scored, truth),
                     "tail_err_bout_rad": _tail_error(scored, truth, in_bout=True)}
        else:
            raise ValueError(f"mode must be 'video' or 'truth', not {mode!r}")
        row = score_recording(scored, bouts, truth, truth_bouts, still_fish=draw.still_fish,
                              open_loop=open_loop)
    finally:
        if not keep and work.exists():
            shutil.rmtree(work, ignore_errors=True)
        elif keep == "tables" and work.exists():
            for p in work.glob(f"{spec.name}.*"):
                if p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)
    row.update(seed=seed, mode=mode, seconds=round(time.perf_counter() - t0, 2))
    row.update(extra)
    row.update({f"draw_{k}": v for k, v in draw.recording.items()})
    return row


def rescore_recording(seed: int, workdir: str | Path, *, behaviour: dict | None = None,
                      draw: StressDraw | None = None) -> dict:
    """Score again, with today's behaviour code (and ``behaviour`` overrides), the tracks of a
    video-mode recording kept by :func:`run_recording` (``keep``; the suite's ``--keep``):
    ``workdir/seed<N>_video/tracked/tracks.parquet`` with its ``truth.parquet`` and
    ``truth_bouts.csv``. The tracker is not run again, so a changed behaviour rule is measured
    on the same tracks in seconds. Returns the row :func:`run_recording` would (its
    ``mode`` is ``"video"``, ``seconds`` the re-scoring time)."""
    from fishtrack.behaviour import OUTPUT_COLUMNS

    t0 = time.perf_counter()
    draw = draw or draw_recording(seed)
    spec = draw.spec
    cfg = _stress_config(spec, behaviour)
    work = Path(workdir) / f"seed{seed}_video"
    path = work / "tracked" / "tracks.parquet"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no kept tracks of seed {seed} (run the suite with --keep)")
    tracks = pd.read_parquet(path)
    tracks = tracks.drop(columns=[c for c in OUTPUT_COLUMNS if c in tracks.columns])
    truth = pd.read_parquet(work / "truth.parquet")
    truth_bouts = pd.read_csv(work / "truth_bouts.csv")
    b = classify(tracks, cfg.behaviour, cfg.protocol)
    open_loop = [p.name for p in spec.phases() if p.kind == "open_loop"]
    row = score_recording(b.tracks, b.bouts, truth, truth_bouts, still_fish=draw.still_fish,
                          open_loop=open_loop)
    row.update(seed=seed, mode="video", seconds=round(time.perf_counter() - t0, 2))
    row.update({"tail_err_rad": _tail_error(b.tracks, truth),
                "tail_err_bout_rad": _tail_error(b.tracks, truth, in_bout=True)})
    if len(b.fish) and "n_motion_gated_bouts" in b.fish:
        row["n_motion_gated_bouts"] = int(b.fish["n_motion_gated_bouts"].sum())
    row.update({f"draw_{k}": v for k, v in draw.recording.items()})
    return row


def _tail_error(scored: pd.DataFrame, truth: pd.DataFrame, *, in_bout: bool | None = None) -> float:
    """Median |tracked - true tail angle| over the observed frames (rad); with ``in_bout``
    only over the frames where the truth is (True) or is not (False) in a bout. A tail that is
    not traced while it beats shows as a large in-bout error."""
    if not {"fish", "frame", "tail_angle"} <= set(scored.columns):
        return float("nan")
    cols = ["fish", "frame", "tail_angle"] + (["in_bout"] if in_bout is not None else [])
    m = scored[["fish", "frame", "tail_angle"]].astype({"fish": str}).merge(
        truth[cols].astype({"fish": str}), on=["fish", "frame"], suffixes=("", "_t"))
    if in_bout is not None:
        m = m[m["in_bout"].astype(bool) == in_bout]
    d = np.abs(np.angle(np.exp(1j * (m["tail_angle"] - m["tail_angle_t"]))))
    return float(np.nanmedian(d)) if np.isfinite(d).any() else float("nan")


def _tracked_noise(res) -> float:
    """The recording's median tail-noise sigma (rad) written by the behaviour stage."""
    noise = (res.provenance or {}).get("behaviour_noise") or {}
    v = noise.get("tail_noise_rad")
    return float(v) if v is not None else float("nan")


def state_score(rows: pd.DataFrame) -> pd.Series:
    """Per recording: kappa, or - where the truth holds (almost) one state only and kappa is
    undefined - 1 if the frame accuracy is >= 0.97 else 0; 0 when a fish was never seen."""
    k = rows["kappa"].astype(float)
    acc = rows["accuracy"].astype(float)
    defined = rows["kappa_defined"].astype(bool) if "kappa_defined" in rows else k.notna()
    score = k.where(defined, (acc >= 0.97).astype(float))
    return score.fillna(0.0).where(rows["fish_missing"] == 0, 0.0)


def summarise(rows: pd.DataFrame) -> dict:
    """Goal figures of a set of recordings (one mode): medians, worst cases and pass rates."""
    r = rows
    kappa = state_score(r)
    tp, fp, fn = (int(r[c].sum()) for c in ("tp", "fp", "fn"))
    ok_rec = ((kappa >= KAPPA_GOAL) & (r["passive_err_max"].fillna(1.0) <= PASSIVE_ERR_GOAL)
              & r["still_ok"].astype(bool) & (r["bout_f1"].fillna(0) >= F1_GOAL))
    return {
        "n": int(len(r)),
        "kappa_median": float(np.median(kappa)),
        "kappa_worst": float(kappa.min()),
        "kappa_ge_0.9": float(np.mean(kappa >= KAPPA_GOAL)),
        "passive_err_median": float(np.nanmedian(r["passive_err_max"])),
        "passive_err_worst": float(np.nanmax(r["passive_err_max"])),
        "passive_err_le_0.03": float(np.mean(r["passive_err_max"].fillna(1.0) <= PASSIVE_ERR_GOAL)),
        "fish_passive_ok": float(r["n_fish_passive_ok"].sum() / max(1, r["n_fish"].sum())),
        "still_fish": int(r["n_still"].sum()),
        "still_fish_ok": int(r["n_still_ok"].sum()),
        "still_fish_missing": int(r["n_still_missing"].sum()),
        "still_recordings_ok": float(r.loc[r["n_still"] > 0, "still_ok"].mean())
        if (r["n_still"] > 0).any() else float("nan"),
        "bout_f1_pooled": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan"),
        "bout_f1_median": float(np.nanmedian(r["bout_f1"])),
        "bout_f1_worst": float(np.nanmin(r["bout_f1"])),
        "bout_f1_ge_0.9": float(np.mean(r["bout_f1"].fillna(0) >= F1_GOAL)),
        "onset_err_ms_median": float(np.nanmedian(r["onset_err_ms"])),
        "recordings_all_goals": float(ok_rec.mean()),
        "fish_missing": int(r["fish_missing"].sum()),
        "coverage_median": float(np.median(r["coverage"])),
        "seconds_total": float(r["seconds"].sum()),
    }


# ------------------------------------------------------------------------------------------
# the recordings of issue 11's table, simulated to match their descriptions

_STRUGGLE_035_08 = {"struggle_dur_min": 0.25, "struggle_dur_scale": 0.025,  # ~0.35 s bouts
                    "struggle_ibi_min": 0.3, "struggle_ibi_scale": 0.075,  # every ~0.8 s
                    "trait_rate_sd": 0.05}
ISSUE_ROWS: dict[str, dict] = {
    "plate16": dict(
        layout="wells", rows=4, cols=4, fish_length_px=40.0, codec="mjpg", fps=100.0,
        duration_s=90.0, seed=21, noise_sd=4.0, effect=1.0, groups="halves",
        bout_params=_STRUGGLE_035_08,
        # three larvae that struggle through the whole open loop (~1/3 of frames in bouts)
        fish_bout_params={a: {"first_giveup_median": 1000.0} for a in ("A2", "C1", "D4")},
    ),
    "plate6_still": dict(
        layout="wells", rows=2, cols=3, codec="h264", crf=23, fps=100.0, duration_s=60.0,
        seed=12, noise_sd=9.0, flicker=0.05, still_arenas=["B2"], groups="all_control",
        effect=0.0,
    ),
    "embedded4_120px": dict(
        layout="embedded", rows=2, cols=2, fish_length_px=120.0, codec="h264", crf=23,
        fps=200.0, duration_s=30.0, seed=13, noise_sd=4.0, groups="all_control", effect=0.0,
    ),
}
"""Simulated recordings matching the rows of issue 11's table (``SimSpec`` fields)."""


def run_issue_row(name: str, workdir: str | Path, *, keep: bool = False,
                  tracks: pd.DataFrame | None = None) -> dict:
    """Simulate the recording ``name`` of :data:`ISSUE_ROWS`, track and score it, and compare
    with the truth: frame accuracy and kappa; per-fish open-loop passive fraction vs truth
    (Pearson r, largest error); closed-loop passive fraction (mean) vs truth; in-bout fraction
    of the three busiest fish vs truth; the still larva's passive fraction and in-bout
    fraction; the ketamine - control difference of mean open-loop passive fraction (truth and
    measured). ``tracks``: score these (e.g. re-scored by another version) instead of tracking.
    """
    import shutil


    spec = SimSpec(name=name, **ISSUE_ROWS[name])
    work = Path(workdir) / f"issue_{name}"
    t0 = time.perf_counter()
    try:
        res = simulate(spec, work)
        truth = res.truth
        if tracks is None:
            tracks = track_to_folder(res.video_path, res.config_path, work / "tracked").tracks
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    t = truth[["fish", "frame", "state", "in_bout", "phase", "group"]].astype({"fish": str})
    s = tracks[["fish", "frame", "state", "in_bout"]].astype({"fish": str})
    m = t.merge(s, on=["fish", "frame"], how="left", suffixes=("_t", ""))
    m["state"] = m["state"].fillna("unknown").astype(str)
    known = m["state"] != "unknown"
    k = m[known]
    out: dict = {"recording": name, "seconds": round(time.perf_counter() - t0, 1),
                 "coverage": float(known.mean())}
    out["accuracy"] = float(np.mean(k["state"] == k["state_t"].astype(str)))
    out["kappa"] = cohen_kappa(k["state"] == "passive", k["state_t"].astype(str) == "passive")
    kinds = {p.name: p.kind for p in spec.phases()}
    k = k.assign(kind=k["phase"].astype(str).map(kinds), p=k["state"] == "passive",
                 pt=k["state_t"].astype(str) == "passive",
                 b=k["in_bout"].fillna(False).astype(bool), bt=k["in_bout_t"].astype(bool))
    ol = k[k["kind"] == "open_loop"].groupby("fish")[["p", "pt"]].mean()
    if len(ol) > 2 and ol["pt"].std() > 0 and ol["p"].std() > 0:
        out["open_passive_r"] = float(np.corrcoef(ol["p"], ol["pt"])[0, 1])
    else:
        out["open_passive_r"] = float("nan")
    out["open_passive_err_max"] = float((ol["p"] - ol["pt"]).abs().max())
    cl = k[k["kind"] == "closed_loop"]
    out["closed_passive"] = float(cl["p"].mean())
    out["closed_passive_truth"] = float(cl["pt"].mean())
    per = k.groupby("fish")[["b", "bt", "p", "pt"]].mean()
    busy = per.sort_values("bt").tail(3)
    out["busiest_in_bout"] = [round(float(x), 3) for x in busy["b"]]
    out["busiest_in_bout_truth"] = [round(float(x), 3) for x in busy["bt"]]
    out["busiest_passive"] = [round(float(x), 3) for x in busy["p"]]
    out["busiest_passive_truth"] = [round(float(x), 3) for x in busy["pt"]]
    for a in spec.still_arenas:
        if a in per.index:
            out[f"still_{a}_passive"] = float(per.loc[a, "p"])
            out[f"still_{a}_in_bout"] = float(per.loc[a, "b"])
        else:
            out[f"still_{a}_passive"] = out[f"still_{a}_in_bout"] = float("nan")
    groups = truth.drop_duplicates("fish").set_index("fish")["group"].astype(str)
    if groups.nunique() > 1 and len(ol):
        g = ol.join(groups.rename("group"))
        mean = g.groupby("group")[["p", "pt"]].mean()
        treated = [x for x in mean.index if x != "control"]
        if "control" in mean.index and treated:
            out["effect_measured"] = float(mean.loc[treated[0], "p"] - mean.loc["control", "p"])
            out["effect_truth"] = float(mean.loc[treated[0], "pt"] - mean.loc["control", "pt"])
    return out
