"""Where a whole ``fishtrack run`` spends its time, per process: a timeline of the parent and
of every worker process (issue 15, "many videos").

Usage::

    python bench/run_timeline.py MANIFEST -c CONFIG [-j 2 | --cluster] [--runs 1] [--out t.md]

Each run is the real command (``fishtrack run MANIFEST -c CONFIG -o TMP --force -j N``, the
console script a user runs) in a fresh process. A ``sitecustomize`` module put first on the
``PYTHONPATH`` of that process (and so of every process it starts: spawned workers, a dask
cluster's nannies and workers) notes milestones with the wall time since this script started
the command (``time.time``, one clock for all processes) and the CPU of the noting process so
far (``time.process_time``): the interpreter ready; the first import of the heavy packages
(pandas, pyarrow, matplotlib, scipy, numba, cv2, av, dask, ...; start and end); the parent's
steps (``run_experiment``, the pool's start, the wells check, the trials, statistics, report,
exit); and each task a worker runs (wells check, trial, report figure, the report's imports)
with its start and end. Nothing of fishtrack is changed on disk; the hook costs ~1 ms per
wrapped call. The table gives, per process, when it started, when its imports were done (its
first task), the wall and CPU of each task, and its CPU at exit; then the critical path's
parts (the parent before the first task, the workers' busy and idle time, the tail after the
last trial). Meant for a quiet machine; on a loaded one only the CPU figures mean much.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _proc import IMPORT_HOOK  # noqa: E402 - the bench folder is not a package

_HOOK = IMPORT_HOOK + r'''
import atexit, functools, os, sys, threading, time
_T0 = float(os.environ.get("FT_RUNTL_T0", "0") or 0)
_DIR = os.environ.get("FT_RUNTL_DIR")
_FH = open(os.path.join(_DIR, f"{os.getpid()}.tsv"), "a", buffering=1) if _DIR else None

def mark(name):
    if _FH is not None:
        _FH.write(f"{time.time() - _T0:.4f}\t{time.process_time():.4f}\t{name}\n")

mark("interp_ready " + " ".join(sys.argv[:3])[:120].replace("\t", " "))

HEAVY = ("pandas", "pyarrow", "matplotlib", "scipy", "numba", "cv2", "av", "dask",
         "distributed", "typer", "rich", "pydantic", "statsmodels", "numpy", "yaml",
         "fishtrack.pipeline", "fishtrack.experiment.worker", "fishtrack.experiment.runner",
         "fishtrack.report", "fishtrack.report.figures", "fishtrack.stats",
         "fishtrack.behaviour", "fishtrack.tracking.tracker", "fishtrack.cli")

def _label(a, k):
    for x in list(a) + list(k.values()):
        n = getattr(x, "name", None)
        if isinstance(n, str):
            return n
    if len(a) >= 3 and isinstance(a[2], str):  # draw_figure(job, folder, name)
        return a[2]
    if a and isinstance(a[0], str):
        return os.path.basename(a[0])
    return ""

def wrap(owner, attr, name):
    fn = getattr(owner, attr)
    if getattr(fn, "_ft_wrapped", False):
        return
    @functools.wraps(fn)
    def w(*a, **k):
        lab = _label(a, k)
        mark(f"{name}:start {lab}")
        try:
            return fn(*a, **k)
        finally:
            mark(f"{name}:end {lab}")
    w._ft_wrapped = True
    setattr(owner, attr, w)

PATCH = {
    "fishtrack.experiment.worker": [("", "_execute_trial", "trial"), ("", "_check_arenas", "check"),
                                    ("", "prepare_report", "prepare_report")],
    "fishtrack.report.figures": [("", "draw_figure", "figure")],
    "fishtrack.experiment.runner": [("", "run_experiment", "run_experiment"),
                                    ("", "_check_wells", "check_wells"),
                                    ("", "_execute", "execute"),
                                    ("", "_prepare_report", "parent_prepare_report"),
                                    ("", "_plan", "plan")],
    "fishtrack.experiment.aggregate": [("", "_compute_stats", "compute_stats")],
    "fishtrack.experiment.backends": [("Backend", "__enter__", "backend_enter"),
                                      ("Backend", "__exit__", "backend_exit")],
    "fishtrack.report": [("", "write_report", "write_report"),
                         ("", "begin_report", "begin_report"),
                         ("", "finish_report", "finish_report")],
}
_DEPTH = [0]

def _loaded(name, module, run):
    if name in HEAVY:
        mark(f"import:start {name}")
    try:
        run(module)
    finally:
        if name in HEAVY:
            mark(f"import:end {name}")
    for cls, attr, label in PATCH.get(name, ()):
        owner = getattr(module, cls, None) if cls else module
        if owner is not None and hasattr(owner, attr):  # (older code: not there)
            wrap(owner, attr, label)

if _DIR:
    around_imports(set(PATCH) | set(HEAVY), _loaded)
    atexit.register(lambda: mark("atexit"))
'''


def run_once(manifest: Path, config: Path, work: Path, i: int, workers: int,
             cluster: bool, keep: Path | None = None) -> tuple[dict[int, list], float, float]:
    """One ``fishtrack run``; the marks of each of its processes ``{pid: [(wall, cpu,
    name)]}``, its wall time and the CPU of it and its children (``os.wait4``)."""
    hook = work / "hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(_HOOK, encoding="utf-8")
    marks = work / f"marks{i}"
    marks.mkdir()
    out = work / f"out{i}"
    exe = Path(sys.executable).with_name("fishtrack")
    env = dict(os.environ, FT_RUNTL_DIR=str(marks),
               PYTHONPATH=os.pathsep.join([str(hook), *filter(None, [os.environ.get("PYTHONPATH")])]))
    if cluster:
        # the command itself cannot be given a Cluster: a small launcher starts one (2 single-
        # threaded processes, as bench_experiment.py does) and runs the CLI against it
        code = ("import sys; from dask.distributed import LocalCluster; from fishtrack.cli import main\n"
                "with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, "
                "dashboard_address=None) as c:\n"
                "    sys.argv = ['fishtrack', *sys.argv[1:], '--scheduler', c.scheduler_address]\n"
                "    try:\n        main()\n    except SystemExit:\n        pass\n")
        argv = [sys.executable, "-P", "-c", code]  # -P: not the current folder's fishtrack
    else:
        argv = [str(exe)]
    argv += ["run", str(manifest), "-c", str(config), "-o", str(out), "--force"]
    if not cluster:
        argv += ["-j", str(workers)]
    t0 = time.time()
    env["FT_RUNTL_T0"] = repr(t0)
    log = work / f"log{i}.txt"
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        pid = os.posix_spawn(argv[0], argv, env, file_actions=[(os.POSIX_SPAWN_DUP2, fd, 1),
                                                              (os.POSIX_SPAWN_DUP2, fd, 2)])
        _, status, usage = os.wait4(pid, 0)
    finally:
        os.close(fd)
    wall = time.time() - t0
    if status != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"fishtrack run failed (wait status {status}):\n{tail}")
    got: dict[int, list] = {}
    for f in marks.glob("*.tsv"):
        rows = []
        for line in f.read_text().splitlines():
            t, c, name = line.split("\t", 2)
            rows.append((float(t), float(c), name))
        got[int(f.stem)] = rows
    if keep is not None:  # the run's experiment folder, e.g. to compare its tables
        keep.mkdir(parents=True, exist_ok=True)
        shutil.move(str(out), str(keep / f"run{i + 1}"))
    shutil.rmtree(out, ignore_errors=True)
    return got, wall, usage.ru_utime + usage.ru_stime


def _first(rows: list, prefix: str) -> tuple[float, float] | None:
    for t, c, n in rows:
        if n.startswith(prefix):
            return t, c
    return None


def _last(rows: list, prefix: str) -> tuple[float, float] | None:
    hit = None
    for t, c, n in rows:
        if n.startswith(prefix):
            hit = (t, c)
    return hit


def _tasks(rows: list) -> list[tuple[str, str, float, float, float, float]]:
    """(kind, label, wall start, wall end, CPU start, CPU end) of each task of a process."""
    open_: dict[tuple[str, str], tuple[float, float]] = {}
    out = []
    for t, c, n in rows:
        head, _, lab = n.partition(" ")
        kind, _, edge = head.partition(":")
        if kind not in ("trial", "check", "figure", "prepare_report"):
            continue
        if edge == "start":
            open_[(kind, lab)] = (t, c)
        elif edge == "end" and (kind, lab) in open_:
            ts, cs = open_.pop((kind, lab))
            out.append((kind, lab, ts, t, cs, c))
    return out


def describe(got: dict[int, list], wall: float, cpu: float) -> str:
    parent = min(got, key=lambda p: got[p][0][0])
    lines = [f"whole run {wall:.2f} s wall, {cpu:.2f} s CPU (all processes)"]
    prow = got[parent]
    for key, label in (("import:end fishtrack.cli", "CLI imported"),
                       ("run_experiment:start", "run_experiment called"),
                       ("import:end fishtrack.experiment.runner", "runner imported"),
                       ("plan:end", "plan done"),
                       ("backend_enter:end", "back-end started"),
                       ("check_wells:end", "wells checked (barrier)"),
                       ("parent_prepare_report:end", "report's imports done (parent)"),
                       ("execute:end", "last trial done"),
                       ("begin_report:start", "trials read, report begun"),
                       ("finish_report:start", "tables written, report finishes"),
                       ("write_report:start", "tables written, report starts"),
                       ("write_report:end", "report written"),
                       ("finish_report:end", "report written"),
                       ("compute_stats:end", "statistics done"),
                       ("backend_exit:end", "back-end closed"),
                       ("atexit", "exit handlers")):
        hit = _first(prow, key)
        if hit:
            lines.append(f"  parent {label:34s} wall {hit[0]:6.2f}  CPU {hit[1]:6.2f}")
    workers = sorted((p for p in got if p != parent and _tasks(got[p])),
                     key=lambda p: got[p][0][0])
    others = [p for p in got if p != parent and p not in workers]
    for p in others:
        rows = got[p]
        lines.append(f"  other process {p}: {rows[0][2][13:70]!r} start {rows[0][0]:.2f}, "
                     f"last mark {rows[-1][0]:.2f}, CPU {rows[-1][1]:.2f}")
    busy_total = 0.0
    for p in workers:
        rows = got[p]
        tasks = _tasks(rows)
        first = tasks[0]
        lines.append(f"  worker {p}: started {rows[0][0]:.2f}, imports done (first task) "
                     f"{first[2]:.2f} with CPU {first[4]:.2f}; last task end {tasks[-1][3]:.2f}; "
                     f"CPU at last mark {rows[-1][1]:.2f}")
        heavy = [(n[11:], t, c) for t, c, n in rows if n.startswith("import:end ")]
        starts = {n[13:]: (t, c) for t, c, n in rows if n.startswith("import:start ")}
        imp = ", ".join(f"{m} {c - starts[m][1]:.2f}" for m, t, c in heavy
                        if m in starts and c - starts[m][1] >= 0.05)
        lines.append(f"    imports (CPU s, nested counted in each): {imp}")
        busy = 0.0
        for kind, lab, ts, te, cs, ce in tasks:
            busy += te - ts
            lines.append(f"    {kind:14s} {lab:22s} wall {ts:6.2f}-{te:6.2f} ({te - ts:5.2f})"
                         f"  CPU {ce - cs:5.2f}")
        busy_total += busy
        lines.append(f"    busy {busy:.2f} s of wall {tasks[-1][3] - rows[0][0]:.2f} s since start")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("manifest", type=Path)
    ap.add_argument("-c", "--config", type=Path, required=True)
    ap.add_argument("-j", "--workers", type=int, default=2)
    ap.add_argument("--cluster", action="store_true", help="a dask LocalCluster (2 x 1 thread)")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None, help="also write the text here")
    ap.add_argument("--keep", type=Path, default=None,
                    help="keep each run's experiment folder here (KEEP/run1, ...)")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="fishtrack-runtl-"))
    texts = []
    try:
        for i in range(args.runs):
            load = os.getloadavg()[0]
            got, wall, cpu = run_once(args.manifest.resolve(), args.config.resolve(), work, i,
                                      args.workers, args.cluster, args.keep)
            texts.append(f"run {i + 1} (load {load:.1f} before, {os.getloadavg()[0]:.1f} "
                         f"after): " + describe(got, wall, cpu))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = "\n".join(texts)
    if args.out is not None:
        args.out.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
