"""Simulated state sequences with a known population passive fraction (calibration).

No video: per-frame ``state`` sequences, epochs and bouts are drawn directly so that the
*true* population difference in passive fraction between groups is known exactly. Used to
measure the false-positive rate and the confidence-interval coverage of
:func:`fishtrack.stats.compare_groups` (``tests/test_stats_calibration.py``,
``docs/statistics.md``).

Model
-----
Fish ``i`` of group ``g`` has a passive propensity ``p_i ~ Beta(mu_g * c, (1 - mu_g) * c)``
(``c`` = ``concentration``); with several trials, trial ``t`` uses ``p_it = clip(p_i + e_it)``
with ``e_it ~ N(0, trial_sd)``. In every phase the fish is passive in exactly
``round(p * n_known)`` of its ``n_known`` frames with a known state, split into 1-4 passive
epochs of at least ``min_passive_s`` each, interleaved with active stretches at random
positions. One detection gap of ``unknown_s`` (state ``unknown``) is inserted at a random
place. So the measured passive fraction equals ``p`` up to rounding (< 1 / (2 n_known)) and
the population mean of group ``g`` is ``mu_g`` (up to fish whose ``p`` is too small to
hold one passive epoch, which are set to 0; negligible for the defaults).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fishtrack.config import Phase, StatsConfig
from fishtrack.stats.compare import compare_groups, compare_mixed
from fishtrack.stats.metrics import per_fish_metrics
from fishtrack.stats.survival import logrank_p, survival_table

__all__ = [
    "SimulatedExperiment",
    "simulate_experiment",
    "run_calibration",
    "calibration_summary",
    "calibrate",
    "calibration_markdown",
    "MEASURES",
    "SCENARIOS",
]


@dataclass
class SimulatedExperiment:
    """Tables in the behaviour stage's format plus the ground truth."""

    tracks: pd.DataFrame
    bouts: pd.DataFrame
    epochs: pd.DataFrame
    fish_table: pd.DataFrame
    protocol: list[Phase]
    truth: pd.DataFrame  # one row per fish, trial and phase: realised passive fraction
    true_means: dict[str, float] = field(default_factory=dict)  # population mean per group


def _split(total: int, k: int, minimum: int, rng: np.random.Generator) -> np.ndarray:
    """``k`` non-negative integers >= ``minimum`` summing to ``total`` (random)."""
    if k == 0:
        return np.zeros(0, int)
    free = total - k * minimum
    cuts = np.sort(rng.integers(0, free + 1, size=k - 1))
    return np.diff(np.r_[0, cuts, free]) + minimum


def _segment_states(n_known: int, p: float, m: int, rng) -> np.ndarray:
    """States (0 active, 1 passive) of ``n_known`` frames with ``round(p n)`` passive frames."""
    n_passive = int(round(p * n_known))
    k_max = n_passive // m if m > 0 else n_passive
    if k_max == 0:
        return np.zeros(n_known, np.int8)
    k = int(rng.integers(1, min(k_max, 4) + 1))
    passive = _split(n_passive, k, m, rng)
    active = _split(n_known - n_passive, k + 1, 0, rng)
    lengths = np.empty(2 * k + 1, int)
    lengths[0::2] = active
    lengths[1::2] = passive
    values = np.tile(np.array([0, 1], np.int8), k + 1)[: 2 * k + 1]
    return np.repeat(values, lengths)


def simulate_experiment(
    n_per_group: int | Mapping[str, int],
    *,
    passive_mean: Mapping[str, float],
    concentration: float = 8.0,
    n_trials: int = 1,
    trial_sd: float = 0.05,
    icc: float | None = None,
    protocol: Sequence[Phase] | None = None,
    fps: float = 5.0,
    min_passive_s: float = 2.0,
    unknown_s: float = 2.0,
    bout_rate_hz: float = 1.0,
    n_experiments: int = 1,
    seed: int = 0,
) -> SimulatedExperiment:
    """Simulate ``n_experiments`` independent experiments with known passive fractions.

    Parameters
    ----------
    n_per_group
        Fish per group (an int applies to every group of ``passive_mean``).
    passive_mean
        Population mean passive fraction per group, e.g. ``{"control": 0.3, "ketamine":
        0.45}``; their differences are the true effects.
    concentration
        Beta concentration ``c`` of the per-fish propensity (larger = less spread).
    n_trials, trial_sd
        Trials (videos) per fish and the SD of the trial-to-trial deviation.
    icc
        Instead of ``trial_sd``: the intra-class correlation of a fish's trials, i.e. the
        between-fish variance ``mu (1 - mu) / (c + 1)`` over the total; ``trial_sd`` is then
        ``sqrt(between (1 - icc) / icc)`` per group (before clipping to 0-1).
    protocol
        Phases (default one open-loop phase of 120 s). Every phase uses the same propensity.
    fps, min_passive_s, unknown_s, bout_rate_hz
        Frame rate, shortest passive epoch, length of the one detection gap per fish and
        phase, and the swim-bout rate during active stretches.
    n_experiments
        Independent replicate experiments; column ``experiment`` of the fish table, fish ids
        ``e{experiment}-{group}-{i}``, videos ``e{experiment}_t{trial}``.
    seed
        Random seed (the output is a pure function of the arguments).
    """
    rng = np.random.default_rng(seed)
    groups = list(passive_mean)
    sizes = {g: n_per_group for g in groups} if isinstance(n_per_group, int) else dict(n_per_group)
    protocol = list(protocol) if protocol else [
        Phase(name="open_loop_1", kind="open_loop", start_s=0.0, end_s=120.0)
    ]
    t_end = max(p.end_s for p in protocol)
    n_frames = int(round(t_end * fps))
    times = np.arange(n_frames) / fps
    m = int(np.ceil(min_passive_s * fps - 1e-9))
    n_gap = int(round(unknown_s * fps))
    bout_frames = max(1, int(round(0.2 * fps)))

    state_names = np.array(["active", "passive", "unknown"], dtype=object)
    phase_idx = [np.flatnonzero((times >= ph.start_s) & (times < ph.end_s)) for ph in protocol]
    all_codes, keys, fish_rows, truth_rows = [], [], [], []
    for e in range(n_experiments):
        for g in groups:
            mu = float(passive_mean[g])
            p_fish = rng.beta(mu * concentration, (1 - mu) * concentration, size=sizes[g])
            sd_trial = trial_sd
            if icc is not None:
                between = mu * (1 - mu) / (concentration + 1)
                sd_trial = float(np.sqrt(between * (1 - icc) / icc))
            for i, p_i in enumerate(p_fish):
                fish_id = f"e{e}-{g}-{i}"
                for trial in range(n_trials):
                    p = p_i if n_trials == 1 else float(
                        np.clip(p_i + rng.normal(0, sd_trial), 0, 1)
                    )
                    video, arena = f"e{e}_t{trial}", f"{g}{i}"
                    codes = np.zeros(n_frames, np.int8)
                    for ph, idx in zip(protocol, phase_idx, strict=True):
                        n_known = len(idx) - n_gap
                        seg = _segment_states(n_known, p, m, rng)
                        cut = int(rng.integers(0, n_known + 1))
                        codes[idx] = np.r_[seg[:cut], np.full(n_gap, 2, np.int8), seg[cut:]]
                        truth_rows.append((fish_id, g, trial, video, arena, ph.name,
                                           float(np.mean(seg == 1))))
                    all_codes.append(codes)
                    keys.append((video, arena))
                    fish_rows.append({"fish_id": fish_id, "video": video, "arena": arena,
                                      "group": g, "trial": trial, "experiment": e})
    n_fish = len(all_codes)
    codes = np.concatenate(all_codes)
    fid = np.repeat(np.arange(n_fish), n_frames)
    # string columns as categoricals: calibration runs hold millions of rows
    video = pd.Categorical([k[0] for k in keys])
    arena = pd.Categorical([k[1] for k in keys])
    states = pd.Categorical.from_codes(codes, categories=list(state_names))

    # epochs: runs of one state per fish
    brk = np.r_[True, (codes[1:] != codes[:-1]) | (fid[1:] != fid[:-1])]
    s = np.flatnonzero(brk)
    en = np.r_[s[1:] - 1, len(codes) - 1]
    fs, fe = s % n_frames, en % n_frames
    epochs = pd.DataFrame({
        "video": video[fid[s]], "arena": arena[fid[s]], "fish": arena[fid[s]],
        "state": state_names[codes[s]], "start_frame": fs, "end_frame": fe,
        "start_s": times[fs], "end_s": times[fe] + 1 / fps, "duration_s": (fe - fs + 1) / fps,
        "phase": None, "censored": (fs == 0) | (fe == n_frames - 1),
    })

    # bouts: random starts in active frames at bout_rate_hz, each bout_frames long
    active = codes == 0
    starts = np.flatnonzero(active & (rng.random(len(codes)) < bout_rate_hz / fps))
    starts = starts[(starts % n_frames) <= n_frames - bout_frames]
    in_bout = np.zeros(len(codes), bool)
    for k in range(bout_frames):
        in_bout[starts + k] = True
    in_bout &= active
    step = rng.normal(0, 3.0, size=(len(starts), 2))
    dx = np.zeros((len(codes), 2))
    dx[starts] = step
    cum = np.cumsum(dx, axis=0)
    first = np.arange(n_fish) * n_frames
    xy = 50 + cum - np.repeat(cum[first] - dx[first], n_frames, axis=0)
    frame = np.tile(np.arange(n_frames), n_fish)
    tracks = pd.DataFrame({
        "frame": frame, "time_s": times[frame], "video": video[fid], "arena": arena[fid],
        "fish": arena[fid], "x": xy[:, 0], "y": xy[:, 1], "detected": codes != 2,
        "state": states, "in_bout": in_bout,
    })
    sf = starts % n_frames
    bouts = pd.DataFrame({
        "video": video[fid[starts]], "arena": arena[fid[starts]], "fish": arena[fid[starts]],
        "start_frame": sf, "end_frame": sf + bout_frames - 1, "start_s": times[sf],
        "end_s": times[sf] + bout_frames / fps, "duration_s": bout_frames / fps, "n_beats": 5,
        "beat_hz": rng.normal(25, 3, len(starts)), "max_tail_angle": 0.8,
        "vigour": rng.normal(10, 2, len(starts)),
        "displacement_px": np.hypot(step[:, 0], step[:, 1]), "phase": None,
    })
    truth = pd.DataFrame(truth_rows, columns=["fish_id", "group", "trial", "video", "arena",
                                              "phase", "passive_fraction"])
    return SimulatedExperiment(
        tracks=tracks,
        bouts=bouts,
        epochs=epochs,
        fish_table=pd.DataFrame(fish_rows),
        protocol=protocol,
        truth=truth,
        true_means={g: float(passive_mean[g]) for g in groups},
    )


MEASURES = {
    "fpr": "passive fraction, null vs control: p <= 0.05 (should be 0.05)",
    "coverage_null": "interval of null - control contains 0 (should be the confidence level)",
    "coverage_effect": "interval of treated - control contains the true effect",
    "power": "treated vs control: p <= 0.05",
    "agree": "interval excludes 0 exactly when p <= 0.05 (null and treated rows)",
    "latency_fpr": "latency, null vs control: log-rank permutation p <= 0.05",
    "latency_fpr_asymptotic": "latency, null vs control: log-rank chi-square p <= 0.05",
    "wald_fpr": "repeated trials only: MixedLM Wald p <= 0.05, null vs control (the old test)",
}
"""What :func:`run_calibration` counts (each as hits out of experiments)."""


def run_calibration(
    *,
    n_per_group: int = 10,
    effect: float = 0.15,
    control: float = 0.3,
    n_experiments: int = 300,
    n_trials: int = 1,
    icc: float | None = None,
    ci_method: str = "permutation",
    n_resamples: int = 999,
    fps: float = 2.0,
    seed: int = 0,
) -> dict[str, tuple[int, int]]:
    """Count false positives, interval coverage and power on simulated experiments.

    Each experiment has groups ``control``, ``null`` (same population passive fraction) and
    ``treated`` (``+ effect``), ``n_per_group`` fish each (``n_trials`` trials per fish, with
    intra-class correlation ``icc`` when given); they go through
    :func:`~fishtrack.stats.per_fish_metrics` and :func:`~fishtrack.stats.compare_groups`.

    Returns
    -------
    dict
        ``measure -> (hits, experiments)`` for the :data:`MEASURES` that apply; pool seeds
        with :func:`calibration_summary`.
    """
    sim = simulate_experiment(
        n_per_group,
        passive_mean={"control": control, "null": control, "treated": control + effect},
        n_experiments=n_experiments, n_trials=n_trials, icc=icc, fps=fps, seed=seed,
    )
    pf = per_fish_metrics(sim.tracks, sim.bouts, sim.epochs, sim.protocol, sim.fish_table)
    pf = pf[pf["phase"] == sim.protocol[0].name]
    cfg = StatsConfig(n_bootstrap=n_resamples, n_permutations=n_resamples, seed=seed,
                      ci_method=ci_method)  # type: ignore[arg-type]
    metrics = ["passive_fraction", "latency_to_first_passive_s"]
    res = pd.concat([compare_groups(sub, cfg, metrics=metrics) for _, sub in
                     pf.groupby("experiment")], ignore_index=True)
    pfr = res[res["metric"] == "passive_fraction"].set_index("group")
    lat = res[(res["metric"] == "latency_to_first_passive_s") & (res["group"] == "null")]
    n = n_experiments

    def covers(group: str, truth: float) -> int:
        r = pfr.loc[group]
        return int(((r["ci_low"] <= truth) & (truth <= r["ci_high"])).sum())

    excl = ~((pfr["ci_low"] <= 0) & (0 <= pfr["ci_high"]))
    out = {
        "fpr": (int((pfr.loc["null", "p_value"] <= 0.05).sum()), n),
        "coverage_null": (covers("null", 0.0), n),
        "coverage_effect": (covers("treated", effect), n),
        "power": (int((pfr.loc["treated", "p_value"] <= 0.05).sum()), n),
        "agree": (int((excl == (pfr["p_value"] <= 0.05)).sum()), 2 * n),
        "latency_fpr": (int((lat["p_value"] <= 0.05).sum()), n),
    }
    asym = []
    surv = survival_table(pf)
    exp_of = pf.groupby("fish_id")["experiment"].first()
    for _, s in surv.groupby(exp_of.reindex(surv["fish_id"]).to_numpy()):
        a, b = s[s["group"] == "null"], s[s["group"] == "control"]
        asym.append(logrank_p(a["time_s"], a["event"], b["time_s"], b["event"])[1])
    out["latency_fpr_asymptotic"] = (int(np.sum(np.asarray(asym) <= 0.05)), len(asym))
    if n_trials > 1:
        wald = []
        for _, sub in pf[pf["group"].isin(["null", "control"])].groupby("experiment"):
            r = compare_mixed(sub["passive_fraction"].to_numpy(float),
                              (sub["group"] == "null").to_numpy(), sub["fish_id"].to_numpy(), cfg)
            wald.append(r["p_value"])
        out["wald_fpr"] = (int(np.sum(np.asarray(wald) <= 0.05)), len(wald))
    return out


def calibration_summary(per_seed: pd.DataFrame) -> dict[str, float]:
    """Pool one measure over seeds: ``per_seed`` has ``seed, n, hits`` (one row per seed).

    Returns ``rate`` (pooled hits / pooled n), ``mc_se`` (its binomial Monte Carlo standard
    error ``sqrt(rate (1 - rate) / n)``), ``seed_min`` / ``seed_max`` (the range of the
    per-seed rates) and ``n``.
    """
    n = float(per_seed["n"].sum())
    rate = float(per_seed["hits"].sum()) / n
    by_seed = per_seed["hits"] / per_seed["n"]
    return {"rate": rate, "mc_se": float(np.sqrt(rate * (1 - rate) / n)),
            "seed_min": float(by_seed.min()), "seed_max": float(by_seed.max()), "n": n}


SCENARIOS = (
    {"n_per_group": 6, "n_trials": 1, "ci_method": "permutation"},
    {"n_per_group": 10, "n_trials": 1, "ci_method": "permutation"},
    {"n_per_group": 20, "n_trials": 1, "ci_method": "permutation"},
    {"n_per_group": 6, "n_trials": 1, "ci_method": "studentized"},
    {"n_per_group": 10, "n_trials": 1, "ci_method": "studentized"},
    {"n_per_group": 10, "n_trials": 1, "ci_method": "percentile"},
    {"n_per_group": 4, "n_trials": 3, "icc": 0.5, "ci_method": "permutation"},
    {"n_per_group": 5, "n_trials": 3, "icc": 0.5, "ci_method": "permutation"},
    {"n_per_group": 6, "n_trials": 3, "icc": 0.5, "ci_method": "permutation"},
    {"n_per_group": 10, "n_trials": 3, "icc": 0.5, "ci_method": "permutation"},
)
"""The calibration table of docs/statistics.md."""


def calibrate(
    scenarios=SCENARIOS, *, seeds: Sequence[int] = range(1000, 1005), n_experiments: int = 400,
    progress=None,
) -> pd.DataFrame:
    """Run :func:`run_calibration` for every scenario and seed and pool the seeds.

    Returns one row per scenario and measure: the scenario's settings, ``measure, rate,
    mc_se, seed_min, seed_max, n`` (see :func:`calibration_summary`).
    """
    rows = []
    for sc in scenarios:
        counts: dict[str, list[dict]] = {}
        for seed in seeds:
            res = run_calibration(n_experiments=n_experiments, seed=int(seed), **sc)
            for k, (hits, n) in res.items():
                counts.setdefault(k, []).append({"seed": seed, "hits": hits, "n": n})
            if progress is not None:
                progress(sc, seed)
        for k, per_seed in counts.items():
            rows.append({**sc, "measure": k, **calibration_summary(pd.DataFrame(per_seed))})
    return pd.DataFrame(rows)


def calibration_markdown(table: pd.DataFrame, *, seeds: Sequence[int], n_experiments: int) -> str:
    """The calibration table as Markdown: rate +- Monte Carlo SE [range over seeds]."""
    measures = [m for m in MEASURES if m in set(table["measure"])]
    head = ("| fish/group | trials | ci_method | " + " | ".join(measures) + " |\n"
            + "|---" * (3 + len(measures)) + "|\n")
    lines = []
    keys = ["n_per_group", "n_trials", "ci_method"]
    for (n, trials, method), sub in table.groupby(keys, sort=False):
        cells = []
        by = sub.set_index("measure")
        for m in measures:
            if m not in by.index:
                cells.append("")
                continue
            r = by.loc[m]
            cells.append(f"{r['rate']:.3f} ± {r['mc_se']:.3f} [{r['seed_min']:.3f}-"
                         f"{r['seed_max']:.3f}]")
        lines.append(f"| {n} | {trials} | {method} | " + " | ".join(cells) + " |")
    seeds = list(seeds)
    foot = (f"\n{n_experiments} experiments per seed, seeds {seeds[0]}-{seeds[-1]} "
            f"({len(seeds)} seeds, {n_experiments * len(seeds)} experiments per row); cells: "
            "pooled rate ± binomial Monte Carlo SE [lowest-highest single-seed rate].\n")
    return head + "\n".join(lines) + "\n" + foot


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m fishtrack.stats.simulate [--experiments N] [--seeds A-B]``"""
    import argparse
    import sys
    import time

    ap = argparse.ArgumentParser(description="Calibration of fishtrack's group statistics "
                                 "on simulated experiments (docs/statistics.md).")
    ap.add_argument("--experiments", type=int, default=400, help="experiments per seed")
    ap.add_argument("--seeds", default="1000-1004", help="seed range A-B (inclusive)")
    args = ap.parse_args(argv)
    a, _, b = args.seeds.partition("-")
    seeds = range(int(a), int(b or a) + 1)
    t0 = time.perf_counter()

    def progress(sc, seed):
        print(f"  {sc} seed {seed}: {time.perf_counter() - t0:.0f} s", file=sys.stderr,
              flush=True)

    table = calibrate(seeds=seeds, n_experiments=args.experiments, progress=progress)
    print(calibration_markdown(table, seeds=seeds, n_experiments=args.experiments))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
