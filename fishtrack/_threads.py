"""Threads of one process when several fishtrack processes share a machine's cores.

A ``fishtrack track`` process alone uses more than one thread: FFmpeg's frame threads decode
(``thread_type`` AUTO, as many as the machine has cores), :data:`MEASURE_THREADS
<fishtrack.tracking.tracker.MEASURE_THREADS>` threads measure heads and midlines while the
main thread segments, and OpenCV and BLAS each keep a pool as large as the machine. That is
right for one process, but ``fishtrack run --workers N`` (or a dask cluster) starts N such
processes on the same cores, and every one of them then runs all those pools: the cores are
oversubscribed and time goes to switching and waiting rather than tracking.

:func:`limit_threads` caps them for the rest of the process (a worker process runs trials one
after the other); :func:`threads_per_trial` is the share of the usable cores one of
``concurrent`` trials gets; :func:`restore_malloc_thresholds` undoes a dask worker's
``MALLOC_TRIM_THRESHOLD_`` for the trial's large arrays; :func:`limit_malloc_arenas` (called by
the ``fishtrack`` command at start-up) keeps the tracker's threads from each holding freed
memory in an allocator arena of its own; :func:`trim_heap` hands freed heap memory back to the
OS between the stages of a run; :func:`compute_threads` is the thread budget of a compute
step (the background median). See
docs/experiments.md ("Threads per worker").
"""

from __future__ import annotations

import contextlib
import os

__all__ = [
    "compute_threads",
    "import_beside",
    "limit_malloc_arenas",
    "limit_threads",
    "release_code_pages",
    "restore_malloc_thresholds",
    "threads_per_trial",
    "trim_heap",
    "usable_cores",
]

_APPLIED: int | None = None
_BLAS_LIMIT = None  # a threadpoolctl limiter kept alive for the process's lifetime


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity: a SLURM job's allocation, a
    ``taskset``), else ``os.cpu_count()``."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def threads_per_trial(concurrent: int, cores: int | None = None) -> int:
    """Threads for each of ``concurrent`` trials running at once on ``cores`` cores (the usable
    cores by default): ``cores // concurrent``, at least 1."""
    cores = usable_cores() if cores is None else int(cores)
    return max(1, cores // max(1, int(concurrent)))


def compute_threads() -> int:
    """Threads a compute step of this process may use: the cap of :func:`limit_threads` when
    one was set (a worker's share of the cores), else the usable cores."""
    return _APPLIED if _APPLIED is not None else usable_cores()


def limit_threads(n: int) -> int:
    """Cap this process's compute threads at ``n``: OpenCV (``cv2.setNumThreads``), BLAS /
    OpenMP pools (threadpoolctl, when installed), FFmpeg's decoding threads of videos opened
    from now on (:data:`fishtrack.io.video.pyav.DECODE_THREADS`) and the tracker's measuring
    threads (``min(MEASURE_THREADS, n)``; at least one, so measuring still overlaps
    segmenting). Returns ``n``. Idempotent; meant for worker processes."""
    global _APPLIED, _BLAS_LIMIT
    n = max(1, int(n))
    if _APPLIED == n:
        return n
    import cv2

    from fishtrack.io.video import pyav
    from fishtrack.tracking import tracker

    cv2.setNumThreads(n)
    pyav.DECODE_THREADS = n
    tracker.MEASURE_THREADS = max(1, min(tracker.DEFAULT_MEASURE_THREADS, n))
    with contextlib.suppress(ImportError):
        from threadpoolctl import threadpool_limits

        _BLAS_LIMIT = threadpool_limits(limits=n)
    _APPLIED = n
    return n


_MALLOC_ENV = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_")
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024
"""glibc's own ceiling for its adaptive mmap threshold on 64-bit systems (32 MiB); the trim
threshold is set to twice it, as glibc does when it adapts."""
_MALLOC_DONE = False


def restore_malloc_thresholds() -> bool:
    """Give glibc malloc back the thresholds it adapts to when a worker's environment fixed
    them. Returns True when they were changed.

    dask's nanny starts every worker process with ``MALLOC_TRIM_THRESHOLD_=65536``
    (``distributed.nanny.pre-spawn-environ``, to hand memory back to the OS). Setting any
    such variable turns off glibc's adaptive mmap threshold, so every array above 128 KiB
    (each chunk of frames, each per-chunk work array) is a fresh ``mmap`` whose pages are
    faulted in and zeroed again, and freed with ``munmap``: on 2 trials of issue 15's batch
    1.5 million page faults and 5.6 s of system time against 0.07 million and 0.6 s (user time
    8.5 vs 8.1 s). This sets the mmap threshold to glibc's adaptive ceiling
    (:data:`MMAP_THRESHOLD_BYTES`) and the trim threshold to twice it, only when one of
    those variables is set and only on glibc (``mallopt``); otherwise it does nothing."""
    global _MALLOC_DONE
    if _MALLOC_DONE or not any(os.environ.get(k) for k in _MALLOC_ENV):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
        ok = libc.mallopt(_M_TRIM_THRESHOLD, 2 * MMAP_THRESHOLD_BYTES) == 1 and ok
    except (OSError, AttributeError):  # not glibc: nothing to restore
        return False
    _MALLOC_DONE = ok
    return ok


_M_ARENA_MAX = -8
MALLOC_ARENAS = 2
"""glibc malloc arenas a tracking process uses at most (:func:`limit_malloc_arenas`)."""
_ARENAS_DONE = False


def limit_malloc_arenas(n: int = MALLOC_ARENAS) -> bool:
    """Let glibc malloc create at most ``n`` arenas in this process (``mallopt(M_ARENA_MAX)``),
    unless ``MALLOC_ARENA_MAX`` is set in the environment (the user's choice) or the C library
    is not glibc. Returns True when the limit was set.

    By default glibc gives each thread that allocates its own arena (up to 8 per core), and
    each keeps the memory freed in it for reuse: the tracker's decoding, segmenting and two
    measuring threads each allocate and free chunk-sized arrays, and the resident memory of a
    1 MP 4-well run grew by ~110 MB during tracking. With two arenas the threads share the
    freed memory (issue 15: peak RSS of ``fishtrack track`` on that plate 399-421 -> 372-374
    MB, the same CPU time). The limit holds only for arenas not yet created, so it is set
    when the process starts: the ``fishtrack`` command's entry point calls it (library users
    can, or can set ``MALLOC_ARENA_MAX=2``)."""
    global _ARENAS_DONE
    if _ARENAS_DONE or os.environ.get("MALLOC_ARENA_MAX"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(_M_ARENA_MAX, max(1, int(n))) == 1
    except (OSError, AttributeError):  # not glibc
        return False
    _ARENAS_DONE = ok
    return ok


def trim_heap() -> None:
    """Give freed heap memory back to the OS (glibc's ``malloc_trim``; a no-op elsewhere).

    glibc keeps large freed blocks for reuse, so a process's resident memory stays at the
    high-water mark of its last stage. A tracking run calls this after the big temporary
    arrays of background sampling and calibration, and between tracking and behaviour
    scoring, whose working memory would otherwise come on top of the tracking stage's freed
    working memory (issue 15: peak RSS of the 1 MP 4-well run)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


_MADV_DONTNEED = 4


def release_code_pages(library: str) -> int:
    """Drop from this process's resident memory the pages of the executable code of the shared
    libraries whose path contains ``library`` (their ``r-xp`` mappings: never written, so
    ``madvise(MADV_DONTNEED)`` only unmaps them from the process; a later call into the
    library reads them back from the page cache). Linux only (elsewhere a no-op). Returns the
    number of mappings released.

    For a library needed once, e.g. LLVM (``libllvmlite``: ~50 MB of its code resident after
    numba has loaded the tracker's cached kernels, unused while they run; issue 15)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        with open("/proc/self/maps") as fh:
            lines = [ln.split() for ln in fh]
    except (OSError, AttributeError):  # not Linux with glibc
        return 0
    n = 0
    for parts in lines:
        if len(parts) > 5 and parts[1] == "r-xp" and library in parts[5]:
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            n += libc.madvise(lo, hi - lo, _MADV_DONTNEED) == 0
    return n


def import_beside(*names: str, then=None):
    """Import the modules ``names`` (in that order) in a daemon thread, beside what the caller
    does meanwhile (issue 15, fixed costs: importing is mostly loading and linking compiled
    libraries), then call ``then()`` there if given (work the caller needs later and can
    have done beforehand, e.g. a lookup it caches); returns the started thread. An import
    error (or ``then``'s) is left to the caller's own import (or call), which raises it."""
    import importlib
    import threading

    def load() -> None:
        for name in names:
            try:
                importlib.import_module(name)
            except BaseException:  # noqa: BLE001, S110 - raised by the caller's own import
                return
        if then is not None:
            try:
                then()
            except BaseException:  # noqa: BLE001, S110 - raised by the caller's own call
                return

    thread = threading.Thread(target=load, name=f"fishtrack-import-{names[0]}", daemon=True)
    thread.start()
    return thread
