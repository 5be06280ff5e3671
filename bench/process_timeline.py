"""Where a whole ``fishtrack track`` process spends its wall time: a timeline from exec to exit.

Usage::

    python bench/process_timeline.py VIDEO -c CONFIG [--runs 3] [--out timeline.md]

Each run is a fresh process (``fishtrack track VIDEO -c CONFIG -o TMP``) started from this
one; the child installs an import hook before anything of fishtrack is imported, which wraps
the stage functions of the modules as they load (nothing of fishtrack is changed on disk) and
notes, at each milestone, the wall time since this process spawned it (``time.time``, the
same clock in both) and the CPU of the whole child so far (``time.process_time``: all its
threads; and, for a milestone reached on the main thread, that thread's own CPU,
``time.thread_time``: the serial chain, h15i 2026-12-07). Milestones: interpreter ready, CLI
imported, config read (the background sample's thread starts), pipeline imported, sample and its median done, background and arenas done,
refinement done, first chunk tracked, last chunk tracked, tracking done (the measuring queue
flushed), behaviour done, provenance built, ``tracks.parquet`` and every file written, summary
printed, exit handlers, process ended (``os.wait4``, with the peak RSS); and the CPU of each
kind of thread (its name without the trailing number: the main thread, the sample's, the
decoding, measuring, refinement and median threads, the import threads), summed over its runs
when they end (h15o 2026-12-07: config read, the sample's opening and decoding, the background
estimate and the tracker's set-up added as milestones). The table gives the
median over the runs (and the range) of each. The hook costs ~1 ms per wrapped call (a few
hundred per run). Meant for a quiet machine: on a loaded one only the CPU column means much.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _proc import IMPORT_HOOK  # noqa: E402 - the bench folder is not a package

_CHILD = IMPORT_HOOK + r'''
import functools, os, sys, threading, time
T0 = float(os.environ["FT_TIMELINE_T0"])
MARKS = []
FIRST_LAST = {}

def main_cpu():
    return time.thread_time() if threading.current_thread() is threading.main_thread() else -1.0

def mark(name, t=None):
    MARKS.append((time.time() - T0 if t is None else t, time.process_time(), main_cpu(), name))

mark("interp_ready")

THREAD_CPU = {}  # kind of thread (its name without the trailing number) -> CPU s of its runs

def kind_of(name):
    name = name.rstrip("0123456789_-")
    return "fishtrack-decode" if name.startswith("fishtrack-decode-") else name

_run = threading.Thread.run
def run(self):
    try:
        return _run(self)
    finally:
        k = kind_of(self.name)
        THREAD_CPU[k] = THREAD_CPU.get(k, 0.0) + time.thread_time()
threading.Thread.run = run

def wrap(owner, attr, name, first_last=False):
    fn = getattr(owner, attr)
    if first_last:
        state = FIRST_LAST.setdefault(name, {"n": 0})
        @functools.wraps(fn)
        def w(*a, **k):
            state["n"] += 1
            if state["n"] == 1:
                mark(name + ":first_start")
            r = fn(*a, **k)
            state["last"] = (time.time() - T0, time.process_time(), main_cpu())
            return r
    else:
        @functools.wraps(fn)
        def w(*a, **k):
            try:
                return fn(*a, **k)
            finally:
                mark(name + ":end")
    setattr(owner, attr, w)

PATCH = {
    "fishtrack.cli": [("", "_print_summary", "print_summary", False)],
    "fishtrack.config": [("", "resolve_config", "resolve_config", False)],
    "fishtrack.io.video": [("", "open_video", "open_video", False)],
    "fishtrack.background_sample": [("EarlySample", "_run", "early_sample", False),
                                    ("", "read_sample", "read_sample", False)],
    "fishtrack.pipeline": [("", "estimate_background", "estimate_background", False),
                           ("", "find_arenas", "find_arenas", False),
                           ("", "track_video", "track_video", False),
                           ("", "_classify_streamed", "classify_streamed", False),
                           ("", "build_provenance", "build_provenance", False)],
    "fishtrack.tracking.tracker": [("_Run", "track_chunk", "track_chunk", True),
                                   ("_Run", "__init__", "tracker_setup", False)],
    "fishtrack.tracking.background": [("Background", "refine", "bg_refine", False)],
    "fishtrack.trial": [("TrialFolder", "write", "trialfolder_write", False),
                        ("", "write_table_parts", "write_tracks_parquet", False)],
}

def _loaded(name, module, run):
    run(module)
    if name == "fishtrack.pipeline":
        mark("pipeline_imported")
    for cls, attr, label, fl in PATCH[name]:
        wrap(getattr(module, cls) if cls else module, attr, label, fl)

around_imports(PATCH, _loaded)
import atexit
def dump():
    mark("atexit")
    for name, st in FIRST_LAST.items():
        if "last" in st:
            MARKS.append((*st["last"], name + ":last_end"))
    THREAD_CPU["MainThread"] = time.thread_time()
    with open(os.environ["FT_TIMELINE_MARKS"], "w") as fh:
        for t, c, m, n in MARKS:
            fh.write(f"{t:.4f}\t{c:.3f}\t{m:.3f}\t{n}\n")
        for k, c in THREAD_CPU.items():
            fh.write(f"-1\t{c:.3f}\t-1\tthread:{k}\n")
atexit.register(dump)
sys.argv = ["fishtrack", *sys.argv[1:]]
from fishtrack.cli import main
mark("cli_imported")
main()
'''

MILESTONES = [
    ("interpreter ready", "interp_ready"),
    ("CLI imported (typer, rich)", "cli_imported"),
    ("config read (pydantic; the sample's thread starts)", "resolve_config:end"),
    ("pipeline imported (tracker, background, arenas)", "pipeline_imported"),
    ("video opened and indexed (sample's thread)", "open_video:end"),
    ("sample's frames decoded (its thread)", "read_sample:end"),
    ("background sample and its median done (thread)", "early_sample:end"),
    ("background estimated (gains, noise, polarity)", "estimate_background:end"),
    ("background and arenas done", "find_arenas:end"),
    ("refinement done", "bg_refine:end"),
    ("tracker set up (fishness floors)", "tracker_setup:end"),
    ("first chunk: tracking starts", "track_chunk:first_start"),
    ("last chunk tracked", "track_chunk:last_end"),
    ("tracking done (measuring queue flushed)", "track_video:end"),
    ("behaviour done", "classify_streamed:end"),
    ("provenance built", "build_provenance:end"),
    ("tracks.parquet written", "write_tracks_parquet:end"),
    ("every file written", "trialfolder_write:end"),
    ("summary printed", "print_summary:end"),
    ("exit handlers run", "atexit"),
    ("process ended", "process_end"),
]


def run_once(video: Path, config: Path, work: Path, i: int) -> tuple[dict, float]:
    """One child process; its milestones ``{name: (wall s since spawn, CPU s)}`` and peak
    RSS (MB)."""
    marks = work / f"marks{i}.tsv"
    out = work / f"out{i}"
    env = dict(os.environ, FT_TIMELINE_MARKS=str(marks))
    t0 = time.time()
    env["FT_TIMELINE_T0"] = repr(t0)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        pid = os.posix_spawn(sys.executable, [sys.executable, "-c", _CHILD, "track", str(video),
                                              "-c", str(config), "-o", str(out)], env,
                             file_actions=[(os.POSIX_SPAWN_DUP2, null, 1),
                                           (os.POSIX_SPAWN_DUP2, null, 2)])
        _, status, usage = os.wait4(pid, 0)
    finally:
        os.close(null)
    wall = time.time() - t0
    if status != 0:
        raise RuntimeError(f"fishtrack track {video} failed (wait status {status})")
    got: dict[str, tuple[float, float, float]] = {}
    for line in marks.read_text().splitlines():
        t, c, m, name = line.split("\t")
        if name.startswith("thread:"):
            got[name] = (float(t), float(c), float(m))
            continue
        got.setdefault(name, (float(t), float(c), float(m)))
    got["process_end"] = (wall, usage.ru_utime + usage.ru_stime, -1.0)
    shutil.rmtree(out, ignore_errors=True)
    return got, usage.ru_maxrss / 1024


def table(runs: list[dict], rss: list[float]) -> str:
    rows = [f"| milestone | wall s since exec: median (range) of {len(runs)} | CPU s (all threads) "
            "| CPU s of the main thread |", "|---|---|---|---|"]
    for label, key in MILESTONES:
        w = [r[key][0] for r in runs if key in r]
        c = [r[key][1] for r in runs if key in r]
        m = [r[key][2] for r in runs if key in r and r[key][2] >= 0]
        if w:
            main = f"{statistics.median(m):.2f}" if m else "-"  # marked in another thread
            rows.append(f"| {label} | {statistics.median(w):.2f} ({min(w):.2f}-{max(w):.2f}) | "
                        f"{statistics.median(c):.2f} | {main} |")
    kinds = sorted({k for r in runs for k in r if k.startswith("thread:")},
                   key=lambda k: -statistics.median(r.get(k, (0, 0, 0))[1] for r in runs))
    if kinds:
        rows += ["", "| thread (CPU s of all its runs, ended ones) | median (range) |", "|---|---|"]
        for k in kinds:
            c = [r.get(k, (0, 0.0, 0))[1] for r in runs]
            rows.append(f"| {k[7:]} | {statistics.median(c):.2f} ({min(c):.2f}-{max(c):.2f}) |")
    rows.append(f"\nPeak RSS {min(rss):.0f}-{max(rss):.0f} MB; load average "
                f"{os.getloadavg()[0]:.1f} at the end; {os.cpu_count()} cores.")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("video", type=Path)
    ap.add_argument("-c", "--config", type=Path, required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None, help="also write the table here")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="fishtrack-timeline-"))
    try:
        runs, rss = [], []
        for i in range(args.runs):
            got, peak = run_once(args.video, args.config, work, i)
            runs.append(got)
            rss.append(peak)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = table(runs, rss)
    if args.out is not None:
        args.out.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
