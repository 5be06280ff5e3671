"""Execution back-ends: in-process, local processes (spawn), dask.distributed."""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing as mp
import os
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any

from fishtrack.errors import FishtrackError
from fishtrack.experiment.records import ProgressCallback, ProgressEvent


class QueueProgress:
    """Per-frame progress of a worker, forwarded through a multiprocessing queue (throttled)."""

    def __init__(self, queue, name: str, interval_s: float = 0.25):
        self.queue, self.name, self.interval_s = queue, name, interval_s
        self._last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self._last >= self.interval_s or done >= total:
            self._last = now
            with contextlib.suppress(Exception):
                self.queue.put_nowait((self.name, int(done), int(total)))



_worker_queue = None
"""This worker process's progress queue (:func:`_set_worker_queue`; ``None`` elsewhere)."""


def _set_worker_queue(queue) -> None:
    """Pool initializer: the progress queue a spawned worker inherits (a multiprocessing
    queue cannot be a task argument). Progress is best-effort: the worker may exit with
    messages unsent."""
    global _worker_queue
    _worker_queue = queue
    if queue is not None:
        queue.cancel_join_thread()


def worker_queue():
    """The progress queue of this worker process, or ``None``."""
    return _worker_queue


TRIAL_MODULES = ("fishtrack.experiment.worker", "fishtrack.pipeline")
"""What a worker started early (:func:`early_workers`) imports before its first task: the
wells check and the trials' modules (~0.9 s of CPU per worker)."""


def _init_worker(queue, preload: tuple[str, ...] = ()) -> None:
    """Pool initializer: :func:`_set_worker_queue`, then the ``preload`` modules imported."""
    _set_worker_queue(queue)
    for name in preload:
        importlib.import_module(name)


def _worker_ready() -> int:
    """A no-op task (its process id): submitted once per worker, it makes the pool start
    every worker process now."""
    return os.getpid()


class LocalWorkers:
    """A spawn process pool of ``workers`` processes and the progress queue they inherit."""

    def __init__(self, workers: int, want_progress: bool, preload: tuple[str, ...] = ()):
        ctx = mp.get_context("spawn")
        self.workers = workers
        self.want_progress = want_progress
        # inherited by the workers: no manager process (issue 15)
        self.queue = ctx.Queue() if want_progress else None
        self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx,
                                        initializer=_init_worker,
                                        initargs=(self.queue, tuple(preload)))

    def start_all(self) -> None:
        """Start every worker process now (a spawn pool starts them as tasks come)."""
        for _ in range(self.workers):
            self.pool.submit(_worker_ready)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        if self.queue is not None:
            self.queue.close()


_early: LocalWorkers | None = None
"""Workers started by :func:`early_workers`, not yet taken by a :class:`Backend`."""


def pool_size(workers: int, trials: int | None = None) -> int:
    """Local worker processes for ``workers`` asked (``-j``) and a run of ``trials`` trials
    (``None``: not known): none (the run works in its own process) for one worker or fewer,
    else ``workers``, but never more than one per trial (h17j: a one-trial run with
    ``-j 2`` started two)."""
    workers = int(workers)
    if workers <= 1:
        return 0
    return workers if trials is None else max(1, min(workers, int(trials)))


@contextlib.contextmanager
def early_workers(workers: int, want_progress: bool = True,
                  trials: int | None = None) -> Iterator[None]:
    """Start the local worker processes of a run of ``trials`` trials now (:func:`pool_size`
    of ``workers``), before this process imports what the run needs (``fishtrack run``: the
    runner, the statistics; issue 15): the workers' own imports of the trial modules
    (:data:`TRIAL_MODULES`) run beside this process's instead of after them. The first
    :class:`Backend` of the same size and progress takes them (and closes them when it
    closes); if none does, they are closed on leaving. One worker or fewer: nothing is
    started. ``fishtrack run`` reads and checks its manifest first, so that a refused one
    starts no worker (h17j)."""
    global _early
    size = pool_size(workers, trials)
    if size == 0:
        yield
        return
    early = LocalWorkers(size, want_progress, preload=TRIAL_MODULES)
    early.start_all()
    _early = early
    try:
        yield
    finally:
        if _early is early:  # not taken (e.g. the run stopped before its back-end)
            _early = None
            early.close()


def _take_early(workers: int, want_progress: bool) -> LocalWorkers | None:
    """The workers :func:`early_workers` started, when they fit; ``None`` otherwise."""
    global _early
    early = _early
    if early is None or early.workers != workers or early.want_progress != want_progress:
        return None
    _early = None
    return early


class Backend:
    """Runs picklable top-level functions: inline, in a spawn process pool or on dask."""

    def __init__(self, workers: int, scheduler: Any, want_progress: bool,
                 trials: int | None = None):
        # local processes: at most one per trial (:func:`pool_size`); 0: in this process
        self._pool_size = pool_size(workers, trials)
        self.workers = max(1, self._pool_size)
        self.scheduler = scheduler
        self.want_progress = want_progress
        self.pool = None
        self.client = None
        self.queue = None
        self._own_client = False
        self._started: list = []
        self._local: LocalWorkers | None = None

    @property
    def concurrent(self) -> int:
        """Trials that run at once on one machine (they share its cores): the local workers;
        on dask the most worker threads on one host (0: not known yet, e.g. an adaptive
        cluster without workers; the worker then counts its own threads); 0 inline (one
        trial has the machine to itself: no limit)."""
        if self.client is not None:
            return _dask_slots_per_host(self.client)
        return self.workers if self.pool is not None else 0

    @property
    def parallel(self) -> bool:
        """Tasks run in other processes (a local pool or dask), not in this one."""
        return self.pool is not None or self.client is not None

    def __enter__(self) -> Backend:
        if self.scheduler is not None:
            self.client, self._own_client = _dask_client(self.scheduler)
        elif self._pool_size:
            local = (_take_early(self.workers, self.want_progress)
                     or LocalWorkers(self.workers, self.want_progress))
            self._local, self.pool, self.queue = local, local.pool, local.queue
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._local is not None:
            self._local.close()
        if self.client is not None and self._own_client:
            self.client.close()

    @property
    def slots(self) -> int:
        """Tasks the workers run at once: the local workers, or the dask cluster's worker
        processes now (0 inline, or a cluster without workers, e.g. scaled down)."""
        if self.client is not None:
            with contextlib.suppress(Exception):  # noqa: BLE001 - only a hint
                return len(self.client.scheduler_info().get("workers", {}))
            return 0
        return self.concurrent  # the local workers (0 inline)

    def start(self, fn: Callable, *args: Any) -> None:
        """:meth:`submit`, not waited for (kept until the back-end closes: dask cancels a
        task whose future is dropped)."""
        self._started.append(self.submit(fn, *args))

    def submit(self, fn: Callable, *args: Any) -> Any:
        """Start ``fn(*args)`` on a worker (a local pool or dask; :attr:`parallel`); its
        future (``.result()``)."""
        if self.client is not None:
            return self.client.submit(fn, *args, pure=False)
        return self.pool.submit(fn, *args)

    def map_unordered(
        self, fn: Callable, items: list[tuple], on_tick: Callable[[], None] | None = None,
        queued: Callable[[], None] | None = None,
    ) -> Iterator[tuple[int, Any]]:
        """Yield ``(index, fn(*items[index]))`` as calls finish; ``on_tick`` runs between;
        ``queued`` runs once every item is queued on the workers (not inline)."""
        if not items:
            return
        if self.client is not None:
            from dask.distributed import as_completed

            futures = [self.client.submit(fn, *args, pure=False) for args in items]
            index = {f.key: i for i, f in enumerate(futures)}
            if queued is not None:
                queued()
            for fut in as_completed(futures):
                i = index[fut.key]
                try:
                    yield i, fut.result()
                except Exception as err:  # noqa: BLE001 - a lost worker is one failed trial
                    yield i, err
        elif self.pool is not None:
            pending = {self.pool.submit(fn, *args): i for i, args in enumerate(items)}
            if queued is not None:
                queued()
            while pending:
                done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                if on_tick is not None:
                    on_tick()
                for fut in done:
                    i = pending.pop(fut)
                    try:
                        yield i, fut.result()
                    except Exception as err:  # noqa: BLE001 - e.g. a worker killed by the OS
                        yield i, err
        else:
            for i, args in enumerate(items):
                try:
                    yield i, fn(*args)
                except Exception as err:  # noqa: BLE001
                    yield i, err


def _dask_client(scheduler: Any) -> tuple[Any, bool]:
    """A dask Client for an address, a Cluster (e.g. dask-jobqueue's SLURMCluster) or a
    Client; ``(client, we_own_it)``."""
    try:
        from dask.distributed import Client
    except ImportError:
        raise FishtrackError(
            "scheduler given but dask.distributed is not installed; pip install 'dask[distributed]'"
        ) from None
    if isinstance(scheduler, Client):
        return scheduler, False
    try:
        if isinstance(scheduler, str):
            return Client(scheduler, timeout="20s"), True
        if hasattr(scheduler, "scheduler_address"):
            return Client(scheduler), True
    except (OSError, TimeoutError) as err:
        raise FishtrackError(f"cannot connect to the dask scheduler {scheduler}: {err}") from None
    raise TypeError("scheduler must be an address 'tcp://host:port', a dask Cluster or a Client")



def _dask_slots_per_host(client: Any) -> int:
    """The most task slots (worker threads) of the dask cluster on one host; 0 when unknown."""
    try:
        workers = client.scheduler_info().get("workers", {})
    except Exception:  # noqa: BLE001 - only a hint for the threads per trial
        return 0
    per_host: dict[str, int] = {}
    for addr, w in workers.items():
        host = w.get("host") or str(addr).rsplit(":", 1)[0]
        per_host[host] = per_host.get(host, 0) + int(w.get("nthreads", 1) or 1)
    return max(per_host.values(), default=0)


def trial_threads(concurrent: int) -> int:
    """Threads for one trial in this (worker) process: the usable cores shared by
    ``concurrent`` trials (:func:`fishtrack._threads.threads_per_trial`); 0 (no limit) when
    the trial runs alone. In a dask worker with ``concurrent`` unknown (0), its own threads."""
    if concurrent <= 0:
        if "distributed" not in sys.modules:  # not a dask worker (importing it unpickles)
            return 0
        try:
            from distributed import get_worker

            concurrent = int(get_worker().state.nthreads)
        except (ImportError, ValueError, AttributeError):
            return 0
    from fishtrack._threads import threads_per_trial

    return threads_per_trial(concurrent)


class InlineQueue:
    """Queue stand-in for in-process runs: forwards per-frame progress directly."""

    def __init__(self, progress: ProgressCallback):
        self.progress = progress

    def put_nowait(self, item: tuple[str, int, int]) -> None:
        name, done, total = item
        self.progress(ProgressEvent("trial", done, total, trial=name, status="running"))
