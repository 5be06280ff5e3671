"""Long recordings in flat memory (issue 15): ``fishtrack track`` from start to exit.

Usage::

    python bench/bench_long_recording.py --out section.md [--minutes 30] [--skip-issue-row]

or ``from bench_long_recording import run; figures = run("section.md")`` (``make bench``: the
full 30 minutes).

What is measured
----------------
1. **A long plate recording.** A 48-well plate (6 x 8 wells, 1280 x 960 px, fish 28 px long,
   30 fps, H.264) is simulated for 60 s; its packets are repeated (remuxed with PyAV, not
   re-encoded) to make a 1-minute and a ``--minutes`` (30) minute recording. Each is run
   through ``fishtrack track VIDEO --out DIR --config CFG`` as a subprocess, from start to
   exit (tracking, behaviour, every output written). While it runs, its resident memory
   (``VmRSS``) and peak (``VmHWM``) are read from ``/proc`` every minute; the process's
   peak RSS is its ``ru_maxrss`` from ``os.wait4``. Reported: frames per second of the
   whole process, peak RSS of the 1-minute and the long run and their ratio (goal: <= 1.05
   and <= 400 MB), the per-minute samples, and the load average of the machine.
2. **The issue's table row**: a 16-well plate, 800 x 800 px MJPG at 100 fps, 30 s, and the
   same packets repeated to 5 min: peak RSS of the in-memory path (``track_to_folder``
   without ``stream``, what ``fishtrack track`` did before issue 15) and of ``fishtrack
   track`` (streaming), for both lengths.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

_IN_MEMORY = (
    "import sys; from fishtrack.pipeline import track_to_folder; "
    "track_to_folder(sys.argv[1], sys.argv[2], sys.argv[3])"
)


_BEHAVIOUR_ONLY = """
import sys
from pathlib import Path
import numpy as np, pandas as pd, pyarrow.parquet as pq
from fishtrack.behaviour import OUTPUT_COLUMNS
from fishtrack.config import resolve_config
from fishtrack.io.tables import SpillFile, write_table_parts
from fishtrack.pipeline import _classify_streamed, _late_imports, _spill_sink
_late_imports()  # pipeline's pd / pa, bound after the tracking in a real run
from fishtrack.trial import TrialResult
src, cfg, out, times = sys.argv[1], resolve_config(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
if len(sys.argv) > 5:
    import fishtrack.pipeline
    fishtrack.pipeline.PART_ROWS = int(sys.argv[5])
pf = pq.ParquetFile(src)
cols = [c for c in pf.schema_arrow.names if c not in OUTPUT_COLUMNS]
head = pq.read_table(src, columns=["frame", "time_s", "arena", "fish"]).to_pandas()
n_fish = len(head.groupby(["arena", "fish"]).size())
n_frames = int(head["frame"].max()) + 1
span = float(np.median(np.diff(np.sort(head["time_s"].unique())))) * n_frames
del head
with SpillFile(out, prefix=".tracks-spill") as spill:
    sink = _spill_sink(spill)  # row groups as the tracker's sink writes them
    for k in range(times):
        for i in range(pf.num_row_groups):
            b = pf.read_row_group(i, columns=cols).to_pandas()
            b["frame"] += k * n_frames
            b["time_s"] += k * span
            sink(b)
    res = TrialResult(tracks=pd.DataFrame(columns=cols))
    _classify_streamed(res, spill, {"kept_slots": list(range(n_fish)), "n_slots": n_fish}, cfg)
    write_table_parts(res.tracks_parts(), out / "tracks.parquet")
"""


def behaviour_only(tracks: Path, config: Path, out: Path, times: int,
                   part_rows: int | None = None) -> dict:
    """The streamed behaviour stage and the writing of ``tracks.parquet`` alone, on the
    tracker's columns of ``tracks`` repeated ``times`` times (frames and times shifted):
    what the end of ``fishtrack track`` does, without the tracking before it."""
    out.mkdir(parents=True, exist_ok=True)
    return run_process([sys.executable, "-c", _BEHAVIOUR_ONLY, str(tracks), str(config), str(out),
                        str(times), *([str(part_rows)] if part_rows else [])], sample_s=60.0)


def loop_packets(src: Path, dst: Path, times: int) -> Path:
    """Repeat the packets of a video ``times`` times (remux with PyAV, no re-encoding)."""
    from bench_tracker import _loop

    return _loop(src, dst, times)


def run_process(cmd: list[str], *, sample_s: float = 60.0) -> dict:
    """Run ``cmd`` to its exit; wall time, peak RSS (``ru_maxrss``, MB) and ``VmRSS`` /
    ``VmHWM`` sampled every ``sample_s`` seconds (``bench/_proc.py``)."""
    from _proc import run_process as run

    return run(cmd, sample_s=sample_s)


def fishtrack_track(video: Path, config: Path, out: Path, **kw) -> dict:
    exe = Path(sys.executable).with_name("fishtrack")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "fishtrack"]
    return run_process([*cmd, "track", str(video), "--out", str(out), "--config", str(config)], **kw)


def in_memory(video: Path, config: Path, out: Path) -> dict:
    return run_process([sys.executable, "-c", _IN_MEMORY, str(video), str(config), str(out)])


def _n_frames(video: Path) -> int:
    from fishtrack.io.video import open_video

    with open_video(video) as src:
        return len(src)


def _rows(folder: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(folder / "tracks.parquet").metadata.num_rows


def _behaviour_s(folder: Path) -> float:
    """Wall time of the behaviour stage (``timings`` in provenance.json), s."""
    import json

    prov = json.loads((folder / "provenance.json").read_text(encoding="utf-8"))
    return float(prov.get("timings_s", {}).get("behaviour", float("nan")))


def run(out_path: str | Path, *, minutes: float = 30.0, issue_row: bool = True,
        paths: tuple[str, ...] = ("in memory", "streaming")) -> dict:
    from fishtrack.synth import SimSpec, simulate

    out_path = Path(out_path)
    work = Path(tempfile.mkdtemp(prefix="fishtrack-bench-long-"))
    res: dict = {"minutes": minutes, "load_start": os.getloadavg()}
    # 1) the long plate recording
    fps = 30
    sim = simulate(SimSpec(name="plate48", layout="wells", rows=6, cols=8, width=1280, height=960,
                           fps=fps, duration_s=60, fish_length_px=28, noise_sd=2.0, seed=3),
                   work / "plate48")
    cfg = sim.out_dir / "config.yaml"
    n_long = max(1, round(minutes))
    runs = {}
    for label, times in (("1 min", 1), (f"{minutes:g} min", n_long)):
        video = loop_packets(sim.video_path, work / f"plate48_{times}.mp4", times)
        r = fishtrack_track(video, cfg, work / f"out_{times}")
        r["n_frames"] = _n_frames(video)
        r["rows"] = _rows(work / f"out_{times}")
        r["behaviour_s"] = _behaviour_s(work / f"out_{times}")
        r["fps"] = r["n_frames"] / r["wall_s"]
        runs[label] = r
    res["plate"] = runs
    first, last = runs["1 min"], runs[f"{minutes:g} min"]
    res["ratio"] = last["peak_rss_mb"] / first["peak_rss_mb"]
    # 2) the issue's table row
    if issue_row:
        sim16 = simulate(SimSpec(name="plate16", layout="wells", rows=4, cols=4, width=800, height=800,
                                 fps=100, duration_s=30, codec="mjpg", noise_sd=2.0, seed=4),
                         work / "plate16")
        cfg16 = sim16.out_dir / "config.yaml"
        v5 = loop_packets(sim16.video_path, work / "plate16_5min.avi", 10)
        row = {}
        for length, video in (("30 s", sim16.video_path), ("5 min", v5)):
            if "in memory" in paths:
                row[("in memory", length)] = in_memory(video, cfg16, work / f"mem_{length[:2]}")
            if "streaming" in paths:
                row[("streaming", length)] = fishtrack_track(video, cfg16,
                                                             work / f"str_{length[:2]}")
        res["issue_row"] = row
    res["load_end"] = os.getloadavg()
    _write_md(out_path, res)
    return res


def _write_md(path: Path, r: dict) -> None:
    runs = r["plate"]
    lines = [
        "## Long recordings in flat memory (`bench/bench_long_recording.py`)",
        "",
        "`fishtrack track VIDEO --out DIR --config CFG` run as a subprocess from start to exit "
        "(tracking, behaviour, every output written); 48-well plate (6 x 8 wells), 1280 x 960 "
        "px, 30 fps, H.264, fish 28 px long, 60 s simulated and its packets repeated. Peak RSS "
        "is the process's `ru_maxrss`, CPU time its user + system time; frames/s counts the whole "
        "process (start-up, background, tracking, behaviour, writing); the behaviour stage is "
        "its wall time (`timings_s` in provenance.json).",
        "",
        "| recording | frames | fish-frames | wall time | CPU time | behaviour stage | frames/s "
        "| peak RSS |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, x in runs.items():
        lines.append(f"| {label} | {x['n_frames']} | {x['rows']} | {x['wall_s']:.0f} s | "
                     f"{x.get('cpu_s', float('nan')):.0f} s | {x['behaviour_s']:.0f} s | "
                     f"{x['fps']:.1f} | {x['peak_rss_mb']:.0f} MB |")
    long = list(runs.values())[-1]
    lines += [
        "",
        f"Peak RSS ratio {list(runs)[-1]} / 1 min: **{r['ratio']:.3f}** (goal <= 1.05, and "
        "<= 400 MB). Load average (1, 5, 15 min) at the start "
        f"{', '.join(f'{v:.1f}' for v in r['load_start'])}, at the end "
        f"{', '.join(f'{v:.1f}' for v in r['load_end'])} (2 cores).",
        "",
        f"Sampled every minute during the {list(runs)[-1]} run (VmRSS / VmHWM, MB): "
        + (", ".join(f"{s['t_s'] / 60:.0f} min {s['rss_mb']:.0f}/{s['hwm_mb']:.0f}"
                     for s in long["samples"]) or "(shorter than a minute)") + ".",
    ]
    if "issue_row" in r:
        row = r["issue_row"]
        lines += [
            "",
            "The issue's table row: 16-well plate, 800 x 800 px MJPG, 100 fps, 30 s and the same "
            "packets repeated to 5 min; peak RSS of the in-memory path (`track_to_folder` without "
            "`stream`, what `fishtrack track` did before) and of `fishtrack track` (streaming):",
            "",
            "| path | 30 s | 5 min | ratio |",
            "|---|---|---|---|",
        ]
        for how in ("in memory", "streaming"):
            if (how, "30 s") not in row:
                continue
            a, b = row[(how, "30 s")], row[(how, "5 min")]
            lines.append(f"| {how} | {a['peak_rss_mb']:.0f} MB ({a['wall_s']:.0f} s) | "
                         f"{b['peak_rss_mb']:.0f} MB ({b['wall_s']:.0f} s) | "
                         f"{b['peak_rss_mb'] / a['peak_rss_mb']:.2f} |")
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("bench_long_recording.md"))
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--skip-issue-row", action="store_true")
    ap.add_argument("--issue-row-streaming-only", action="store_true",
                    help="the issue's row: streaming path only (the in-memory one is slow)")
    args = ap.parse_args(argv)
    paths = ("streaming",) if args.issue_row_streaming_only else ("in memory", "streaming")
    r = run(args.out, minutes=args.minutes, issue_row=not args.skip_issue_row, paths=paths)
    print(args.out.read_text())
    return 0 if r else 1


if __name__ == "__main__":
    sys.exit(main())
