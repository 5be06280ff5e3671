"""Behaviour stress suite on the held-out seeds (issue 11): scoring from video and from true tracks.

Usage::

    python bench/bench_behaviour_stress.py --out section.md [--seeds 4000-4199]
        [--video-seeds 4000-4099] [--report 4000-4199] [--workers 2] [--quick] [--csv results.csv]

or ``from bench_behaviour_stress import run; figures = run("section.md")``.

Each seed draws a whole recording at random (``fishtrack.synth.stress.draw_recording``: layout,
fish count and size, 60-1000 fps, polarity, tail contrast, camera noise, flicker, codec and
quality, and per fish its bouting, still fish and fish passive through the whole open loop).
Every recording is scored twice against its truth:

* **video**: rendered, encoded and run through the whole pipeline (``track_to_folder``, as
  ``fishtrack track``): tracker errors count;
* **truth**: the simulator's true tracks plus simulated tracking noise (white + slow wander +
  glitches + lost frames), scored by ``classify``: the behaviour stage alone.

Tuning used seeds 0-999 only. ``--report A-B`` names the held-out reporting range of this run
(default: the ``--seeds`` range); the section labels the seeds as tuning seeds (inside 0-999),
held-out (inside the reporting range and outside 0-999) or, otherwise, as seeds of neither
kind. ``--video-seeds`` scores only a part of the seeds from video (slow; ``none``: no video)
and all of them from the true tracks. The goals (issue 11):
frame-state kappa >= 0.9 in >= 95 % of recordings (median >= 0.95), per-fish passive-fraction
error <= 0.03, every still fish 100 % passive, bout onset F1 >= 0.9 (+/- 50 ms).

``--keep DIR`` keeps the truth and tracks of every video-mode recording;
``bench/rescore_behaviour_stress.py --keep DIR`` scores them again with a changed behaviour
rule without tracking again.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from fishtrack.synth.stress import (  # noqa: E402
    F1_GOAL,
    ISSUE_ROWS,
    KAPPA_GOAL,
    PASSIVE_ERR_GOAL,
    REPORT_SEEDS,
    TUNE_SEEDS,
    run_issue_row,
    run_recording,
    state_score,
    summarise,
)


def _one(args) -> dict:
    seed, mode, work, keep = args
    try:
        return run_recording(seed, work, mode=mode, keep=keep)
    except Exception as err:  # a crash is a result too: it is reported, not hidden
        return {"seed": seed, "mode": mode, "error": f"{type(err).__name__}: {err}"[:300]}


def _run_mode(seeds, mode, work, workers, keep=False) -> pd.DataFrame:
    jobs = [(s, mode, work, keep) for s in seeds]
    if workers > 1:
        with ProcessPoolExecutor(workers) as ex:
            rows = list(ex.map(_one, jobs))
    else:
        rows = [_one(j) for j in jobs]
    return pd.DataFrame(rows)


def _fmt(v, nd=3) -> str:
    if isinstance(v, float):
        return "n/a" if not np.isfinite(v) else f"{v:.{nd}f}"
    return str(v)


def _band(fps: pd.Series) -> pd.Series:
    return pd.cut(fps, [0, 100, 300, 1001], labels=["60-100 fps", "100-300 fps", "300-1000 fps"],
                  right=False)


def _summary_table(df: pd.DataFrame) -> list[str]:
    lines = ["| subset | n | kappa median / worst | kappa >= 0.9 | passive err <= 0.03 (recordings / fish) "
             "| still fish 100 % passive | bout F1 pooled / median / worst | all goals |",
             "|---|---|---|---|---|---|---|---|"]
    parts = [("all", df)]
    for b, sub in df.groupby(_band(df["draw_fps"]), observed=True):
        parts.append((str(b), sub))
    for lay, sub in df.groupby("draw_layout"):
        parts.append((str(lay), sub))
    if "draw_codec" in df:
        for codec, sub in df.groupby("draw_codec"):
            parts.append((str(codec).upper(), sub))
    for name, sub in parts:
        s = summarise(sub)
        lines.append(
            f"| {name} | {s['n']} | {_fmt(s['kappa_median'])} / {_fmt(s['kappa_worst'])} | "
            f"{s['kappa_ge_0.9']:.0%} | {s['passive_err_le_0.03']:.0%} / {s['fish_passive_ok']:.0%} | "
            f"{s['still_fish_ok']} of {s['still_fish']} ({s['still_fish_missing']} not found) | "
            f"{_fmt(s['bout_f1_pooled'])} / {_fmt(s['bout_f1_median'])} / {_fmt(s['bout_f1_worst'])} | "
            f"{s['recordings_all_goals']:.0%} |"
        )
    return lines


def _worst(df: pd.DataFrame, n=8) -> list[str]:
    d = df.assign(score=state_score(df)).sort_values(["score", "passive_err_max"],
                                                     ascending=[True, False]).head(n)
    lines = ["| seed | kappa* | passive err max | still ok | bout F1 | fish not found | fps | layout "
             "| fish px | tail contrast | noise sd | codec | tail error (bouts) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in d.itertuples():
        lines.append(
            f"| {r.seed} | {_fmt(r.score)} | {_fmt(r.passive_err_max)} | {r.still_ok} | "
            f"{_fmt(r.bout_f1)} | {r.fish_missing} | {r.draw_fps:.0f} | {r.draw_layout} | "
            f"{r.draw_fish_length_px:.0f} | {r.draw_tail_contrast_grey:.0f} | {r.draw_noise_sd:.1f} | "
            f"{r.draw_codec} | {_fmt(getattr(r, 'tail_err_bout_rad', np.nan))} rad |"
        )
    return lines


def _ok(df: pd.DataFrame) -> pd.Series:
    return ((state_score(df) >= KAPPA_GOAL) & (df["passive_err_max"].fillna(1) <= PASSIVE_ERR_GOAL)
            & df["still_ok"].astype(bool) & (df["bout_f1"].fillna(0) >= F1_GOAL))


def seed_label(seeds, report=None) -> str:
    """How the section describes ``seeds``: tuning seeds (any inside 0-999), held-out seeds
    (all inside the reporting range ``report``, default ``seeds`` themselves, and outside
    0-999), or neither."""
    seeds = set(seeds)
    report = set(seeds if report is None else report)
    if seeds & set(TUNE_SEEDS):
        return "TUNING seeds (inside the tuning range 0-999)"
    if seeds <= report:
        return "held-out reporting range, never used for tuning"
    return "outside the tuning range but not the declared reporting range"


def run(out_path, *, seeds=REPORT_SEEDS, workers: int | None = None, quick: bool = False,
        csv: str | Path | None = None, rows: bool = True, keep: str | Path | None = None,
        video_seeds=None, report=None) -> dict:
    """Run the suite on ``seeds`` in both modes (and the issue's table rows) and write a
    Markdown section to ``out_path``; returns the summaries. ``keep``: a folder in which the
    truth and tracks of every video-mode recording are kept (videos deleted).
    ``video_seeds``: score only these from video (default: ``seeds``). ``report``: the
    held-out reporting range the seeds are labelled against (default: ``seeds``)."""
    import shutil
    import tempfile

    workers = workers or max(1, min(2, os.cpu_count() or 1))
    seeds = list(seeds)[:6] if quick else list(seeds)
    vseeds = seeds if video_seeds is None else [s for s in video_seeds if s in set(seeds)]
    report = list(seeds) if report is None else list(report)
    work = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="fishtrack-stress-"))
    t0 = time.perf_counter()
    res = {}
    times = {}
    for mode in ("truth", "video"):
        t1 = time.perf_counter()
        res[mode] = _run_mode(vseeds if mode == "video" else seeds, mode, work, workers,
                              keep="tables" if keep and mode == "video" else False)
        times[mode] = time.perf_counter() - t1
    if csv:
        pd.concat(res.values(), ignore_index=True).to_csv(csv, index=False)
    issue = []
    if rows and not quick:
        for name in ISSUE_ROWS:
            try:
                issue.append(run_issue_row(name, work))
            except Exception as err:
                issue.append({"recording": name, "error": f"{type(err).__name__}: {err}"[:300]})
    total = time.perf_counter() - t0
    if not keep:
        shutil.rmtree(work, ignore_errors=True)
    write_section(out_path, res, issue, seeds=seeds, workers=workers, total_s=total, times=times,
                  report=report, video_seeds=vseeds)
    return {m: summarise(d[d["error"].isna()] if "error" in d else d)
            for m, d in res.items() if len(d)} | {
        "issue_rows": issue, "seconds": total}


def write_section(out_path, res: dict, issue: list, *, seeds, workers: int, total_s: float,
                  times: dict, report=None, video_seeds=None) -> None:
    """The Markdown section of the suite's results (``res``: ``{"video": df, "truth": df}``)."""
    seeds = list(seeds)
    vseeds = seeds if video_seeds is None else list(video_seeds)
    lines = ["## Behaviour stress suite (issue 11)", ""]
    vid_s = res["video"]["seconds"].median() if "seconds" in res["video"] else float("nan")
    lines.append(
        f"Seeds {seeds[0]}-{seeds[-1]} ({len(seeds)} recordings, {seed_label(seeds, report)}"
        + (f"; from video only seeds {vseeds[0]}-{vseeds[-1]}, {len(vseeds)} recordings"
           if vseeds != seeds and vseeds else "")
        + ("; none from video: the true tracks only" if not vseeds else "") + "), each "
        "a whole recording drawn at random by `fishtrack.synth.stress.draw_recording`. "
        f"Wall time {total_s / 60:.1f} min on {workers} worker process(es) (truth mode "
        f"{times['truth'] / 60:.1f} min, video mode {times['video'] / 60:.1f} min; "
        f"{vid_s:.1f} s median per recording in video mode). Goals: kappa >= 0.9 in >= 95 % of "
        "recordings (median >= 0.95), per-fish passive-fraction error <= 0.03, every still "
        "fish 100 % passive, bout onset F1 >= 0.9 (+/- 50 ms). kappa* is Cohen's kappa of "
        "passive vs active frames over the frames with a known state; where the truth holds "
        "one state only (kappa undefined) it is 1 if the accuracy is >= 0.97, else 0; a "
        "recording in which a fish was never found counts as 0.")
    for mode, title in (("video", "From video, through `fishtrack track`"),
                        ("truth", "From the true tracks with simulated tracking noise "
                                  "(the behaviour stage alone)")):
        df = res[mode]
        if df.empty:  # that mode was not run (--video-seeds none)
            continue
        err = df[df["error"].notna()] if "error" in df else df.iloc[0:0]
        ok = df[df["error"].isna()] if "error" in df else df
        lines += ["", f"### {title}", ""]
        if len(err):
            lines.append(f"{len(err)} recording(s) raised an error: " + "; ".join(
                f"seed {r.seed}: {r.error}" for r in err.itertuples()))
            lines.append("")
        if ok.empty:
            continue
        lines += _summary_table(ok) + ["", "Worst recordings:", ""] + _worst(ok)
    v, t = (d[d["error"].isna()] if "error" in d else d for d in (res["video"], res["truth"]))
    if len(v) and len(t):
        both = v[["seed"]].assign(video=_ok(v).to_numpy()).merge(
            t[["seed"]].assign(truth=_ok(t).to_numpy()), on="seed")
        lines += ["", "Where the failures come from (all goals met per recording):", "",
                  "| | truth mode ok | truth mode failed |", "|---|---|---|",
                  f"| video ok | {int((both.video & both.truth).sum())} | "
                  f"{int((both.video & ~both.truth).sum())} |",
                  f"| video failed | {int((~both.video & both.truth).sum())} | "
                  f"{int((~both.video & ~both.truth).sum())} |", "",
                  "A recording that fails from video but not from the true tracks fails because of "
                  "the tracker (fish not found, tail not traced, step-like tail noise); one that "
                  "fails both ways fails in the behaviour stage."]
    if issue:
        lines += ["", "### The recordings of the issue's table (simulated to match)", ""]
        for r in issue:
            lines.append("- **" + r.pop("recording") + "**: " + ", ".join(
                f"{k} {_fmt(v) if not isinstance(v, list) else v}" for k, v in r.items()))
    Path(out_path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("behaviour_stress.md"))
    ap.add_argument("--seeds", default=f"{REPORT_SEEDS.start}-{REPORT_SEEDS.stop - 1}")
    ap.add_argument("--video-seeds", default=None,
                    help="A-B: score only these seeds from video (default: all of --seeds); "
                         "none: no video, the true tracks only")
    ap.add_argument("--report", default=None,
                    help="A-B: the held-out reporting range of this run (default: --seeds)")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--quick", action="store_true", help="6 recordings, no issue rows")
    ap.add_argument("--csv", type=Path, default=None, help="also write every recording's figures")
    ap.add_argument("--keep", type=Path, default=None,
                    help="keep truth and tracks of the video-mode recordings in this folder")
    ap.add_argument("--no-rows", action="store_true", help="skip the issue's table rows")
    args = ap.parse_args(argv)
    def rng(text):
        if text is None:
            return None
        if text.strip().lower() == "none":
            return range(0)
        a, b = (int(x) for x in text.split("-"))
        return range(a, b + 1)

    out = run(args.out, seeds=rng(args.seeds), workers=args.workers, quick=args.quick,
              csv=args.csv, keep=args.keep, rows=not args.no_rows,
              video_seeds=rng(args.video_seeds), report=rng(args.report))
    print({k: v for k, v in out.items() if k != "issue_rows"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
