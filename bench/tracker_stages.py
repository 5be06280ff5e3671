"""CPU time per frame of each tracking stage (where the time goes), for one simulated folder.

Usage::

    PYTHONPATH=<tree> python bench/tracker_stages.py SIM_FOLDER [--frames N]

``SIM_FOLDER`` is a folder written by ``fishtrack simulate`` / ``fishtrack.synth.simulate``
(its video and ``truth_arenas.csv``). The frames are decoded beforehand and tracked with
``track_video`` with the measuring run inline on the main thread (no worker threads), so that
every stage is timed on the thread that runs it (``time.thread_time`` around each stage; the
stages nest: ``_measure_all`` contains ``trace_midlines`` and ``_find_heads`` (which contains
``locate_heads``, ``refine_heads``, ``body_directions``, and midline traces), ``_step_single``
contains ``_cut``; a plate's segmentation, with the kernels, is ``fishness_arenas``, ``outlines``
and ``blobs_of_arenas`` instead of ``fishness_chunk`` and ``find_blobs``). The compiled kernels are loaded first when the plate has at least
``KERNEL_MIN_FISH`` fish. Then ``track_video`` with its measuring threads on the same frames:
CPU per frame of all threads. The bare PyAV decode of the file is timed too, and the fixed
costs of a run: the CPU of a fresh process importing what ``fishtrack track`` imports, of the
background estimate and of its refinement for the arenas. Not part of
``make bench`` (a development tool; issue 15's per-stage table in docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import collections
import functools
import sys
import time
from concurrent.futures import Future
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # last: the tree given by PYTHONPATH is the one measured
sys.path.insert(0, str(HERE))

STAGES = ["all_arena_gains", "fishness_chunk", "find_blobs", "outlines", "blobs_of_arenas", "_step_plate",
          "_labels",
          "_select_single", "_step_single", "_cut", "_measure_all", "_find_heads",
          "locate_heads", "refine_heads", "body_directions", "trace_midlines", "smooth_patches",
          "smooth_patches_each",
          "_write"]
#: compiled kernels timed as stages (a plate's path calls them through the kernels module)
KERNEL_STAGES = ["fishness_arenas"]


class _Inline:
    """A stand-in for the measuring threads' pool: runs each batch at once."""

    def __init__(self, *a, **k):
        pass

    def submit(self, fn, *a, **k):
        f: Future = Future()
        f.set_result(fn(*a, **k))
        return f

    def map(self, fn, *iterables):
        # the segmenting pool of a few wells (tracker._Run._segment_beside) maps its arenas
        return [fn(*a) for a in zip(*iterables, strict=True)]

    def shutdown(self, wait=True):
        pass


def _import_cpu() -> float:
    """CPU seconds (user + sys) of a fresh Python importing what ``fishtrack track`` imports
    before and after tracking (the CLI, the pipeline and the behaviour stage)."""
    import resource
    import subprocess

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-c", "import fishtrack.cli, fishtrack.pipeline, "
                    "fishtrack.behaviour.classify"], check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def run(folder: Path, frames_max: int | None = None) -> dict:
    import numpy as np
    import pandas as pd
    from bench_tracker import _bare_decode

    from fishtrack.arenas import Arena
    from fishtrack.config import TrackingConfig
    from fishtrack.io.video import open_video
    from fishtrack.tracking import estimate_background
    from fishtrack.tracking import tracker as T

    video = next(p for p in sorted(folder.iterdir()) if p.suffix in (".mp4", ".avi", ".mkv"))
    a = pd.read_csv(folder / "truth_arenas.csv")
    arenas = [Arena(name=r.name, row=int(r.row), col=int(r.col), shape=r.shape, cx=float(r.cx),
                    cy=float(r.cy), radius=float(r.radius),
                    bbox=(int(r.x0), int(r.y0), int(r.x1), int(r.y1)), margin=2.0)
              for r in a.itertuples()]
    cfg = TrackingConfig()
    res: dict = {"video": str(video), "import_cpu_s": _import_cpu()}
    with open_video(video) as src:
        frames = np.concatenate([c.frames for c in src.chunks(64)])
        c0 = time.process_time()
        bg0 = estimate_background(src, cfg)
        res["estimate_cpu_s"] = time.process_time() - c0
        c0 = time.process_time()
        bg = bg0.refine(arenas, cfg)
        res["refine_cpu_s"] = time.process_time() - c0
    if frames_max:
        frames = frames[:frames_max]
    n = len(frames)
    if len(arenas) >= T.KERNEL_MIN_FISH:
        T.use_kernels(True)
    T.track_video(T.ArraySource(frames[:64]), arenas, cfg, background=bg)  # warm-up
    res["frames"] = n
    c0 = time.process_time()
    T.track_video(T.ArraySource(frames), arenas, cfg, background=bg)
    res["threads_cpu_ms"] = 1000 * (time.process_time() - c0) / n
    acc: collections.Counter = collections.Counter()
    saved: dict = {}
    saved_k: dict = {}

    def wrap(name):
        f = getattr(T, name)
        saved[name] = f

        @functools.wraps(f)
        def w(*a, **k):
            t = time.thread_time()
            try:
                return f(*a, **k)
            finally:
                acc[name] += time.thread_time() - t

        setattr(T, name, w)

    pool = T.ThreadPoolExecutor
    T.ThreadPoolExecutor = _Inline
    for s in STAGES:
        if hasattr(T, s):
            wrap(s)
    kmod = T._KERNELS
    for s in KERNEL_STAGES if kmod is not None else []:
        if hasattr(kmod, s):
            f = getattr(kmod, s)

            def wk(*a, _f=f, _s=s):
                t = time.thread_time()
                try:
                    return _f(*a)
                finally:
                    acc[_s] += time.thread_time() - t

            setattr(kmod, s, wk)
            saved_k[s] = f
    try:
        t0 = time.thread_time()
        T.track_video(T.ArraySource(frames), arenas, cfg, background=bg, prefetch=0)
        res["inline_cpu_ms"] = 1000 * (time.thread_time() - t0) / n
    finally:
        T.ThreadPoolExecutor = pool
        for k, f in saved.items():
            setattr(T, k, f)
        for k, f in saved_k.items():
            setattr(kmod, k, f)
    res["stages_ms"] = {k: 1000 * v / n for k, v in acc.most_common()}
    cpu: list = []
    _bare_decode(video, cpu)
    res["decode_cpu_ms"] = 1000 * cpu[0]
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--frames", type=int, default=None, help="track only the first N frames")
    args = ap.parse_args(argv)
    r = run(args.folder, args.frames)
    print(f"{r['video']}: {r['frames']} frames")
    print(f"  fixed costs (CPU s): imports {r['import_cpu_s']:.2f} (fresh process), background "
          f"estimate {r['estimate_cpu_s']:.2f} (decoding its sample included), refinement "
          f"{r['refine_cpu_s']:.2f}")
    print(f"  bare decode                 {r['decode_cpu_ms']:6.2f} ms CPU per frame")
    print(f"  track_video, threads        {r['threads_cpu_ms']:6.2f} ms CPU per frame (all threads)")
    print(f"  track_video, inline         {r['inline_cpu_ms']:6.2f} ms CPU per frame")
    for k, v in r["stages_ms"].items():
        print(f"    {k:24s}  {v:6.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
