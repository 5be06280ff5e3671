"""Recording-level values of the behaviour stage, from per-fish summaries.

Most of the behaviour stage works on each fish alone; a few values belong to the recording:
the median frame interval, whether any fish has a tail angle or pixel motion, the noise
pooled over the fish with enough quiet time, the decision to redo the noise-dependent steps,
the median tail noise of the QC flags. Each is computed by :func:`pooled` from a *summary*
of the fish at hand (arrays that concatenate over fish: per-fish values, or per-part
values such as a flag or a histogram) and a *reduce* function of the concatenated summary.

Without a :class:`Pool` (the ordinary :func:`fishtrack.behaviour.classify`) ``reduce`` runs on
the summary of every fish of the table at once. With one (:func:`pooling`), the stage sees only
some fish (a *part* of the recording): a value already known is returned, and the first one
not known yet stops the stage with :class:`PoolNeeded`, carrying the part's summary. The driver
(:func:`fishtrack.behaviour.classify.classify_parts`) collects that summary from every part,
reduces the concatenation, and runs the parts again with one more value known, until every part
runs through. ``reduce`` must give the same result on the concatenation of the parts'
summaries as on the summary of the whole table (medians, counts and flags do), and every part
must reach the same values in the same order (the stage's control flow depends only on the
configuration and on values pooled before).

A summary must not grow with the recording's length beyond a few numbers per video frame:
per-fish values, flags, histograms. A ``reduce`` whose summary is per video frame carries a
``fold(a, b)`` attribute that merges two summaries into one with the same reduction (and of
bounded size); ``classify_parts`` then keeps one running summary instead of every part's
(``bouts._frame_lowest``: the two lowest motions of each frame).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import numpy as np

__all__ = ["Pool", "PoolNeeded", "any_of", "ask_ahead", "memo", "memoizing", "pooled", "pooling",
           "reduce_parts", "remembered", "weighted_median"]


class PoolNeeded(Exception):  # noqa: N818 (a signal to the driver, not an error)
    """The stage needs the recording-level value ``key`` (raised under a :class:`Pool`)."""

    def __init__(self, key: tuple[str, int], reduce: Callable, summary: dict,
                 ahead: dict | None = None):
        super().__init__(f"recording-level value {key[0]} (#{key[1]}) is not known yet")
        self.key, self.reduce, self.summary = key, reduce, summary
        self.ahead = ahead or {}  # key -> (reduce, summary) of values asked for ahead


STATIC = frozenset({"dt_median", "any_motion_energy", "any_tail_angle", "any_body_length",
                    "median_body_length"})
"""Values that depend only on the input table, the same wherever the stage asks for them:
known once, they serve every later occurrence (fewer passes in ``classify_parts``)."""


class Pool:
    """The recording-level values known so far, keyed by ``(name, occurrence)``."""

    def __init__(self, known: dict | None = None, store=None):
        self.known = known if known is not None else {}
        self.store = store  # the part's kept step results (behaviour._steps.StepStore)
        self._seen: dict[str, int] = {}
        self._steps: dict[str, int] = {}
        self.ahead: dict = {}  # values asked for ahead (:func:`ask_ahead`)

    def key(self, name: str) -> tuple[str, int]:
        if name in STATIC:
            return (name, 0)
        k = self._seen.get(name, 0)
        self._seen[name] = k + 1
        return (name, k)


_POOL: ContextVar[Pool | None] = ContextVar("fishtrack_behaviour_pool", default=None)


def pooled(name: str, reduce: Callable, **summary):
    """``reduce(**summary)`` over the fish of the recording (see the module docstring)."""
    pool = _POOL.get()
    if pool is None:
        return reduce(**summary)
    key = pool.key(name)
    if key in pool.known:
        return pool.known[key]
    raise PoolNeeded(key, reduce, summary, {k: v for k, v in pool.ahead.items() if k != key})


def ask_ahead(name: str, reduce: Callable, summary: Callable[[], dict]) -> None:
    """Ask for the value :func:`pooled` will be asked for under ``name`` further on, together
    with the next value the stage stops at (one pass fewer in ``classify_parts``).

    Only for a value whose summary is already final here: ``summary()`` (called only under a
    pool, when the value is not known yet) must give what the later :func:`pooled` call
    gets. Without a pool, nothing happens (the later call computes the value)."""
    pool = _POOL.get()
    if pool is None:
        return
    key = (name, 0) if name in STATIC else (name, pool._seen.get(name, 0))
    if key not in pool.known and key not in pool.ahead:
        pool.ahead[key] = (reduce, summary())


def remembered(name: str, fn: Callable, *args, **kwargs):
    """``fn(*args, **kwargs)``, an expensive step of the behaviour stage whose result depends
    only on the part's rows and on the recording-level values known when it runs.

    Without a :class:`Pool` or a step store it is just computed. Under a pool with a store
    (:func:`fishtrack.behaviour.classify.classify_parts`) the result of the ``k``-th call of
    ``name`` in this part's run is read back from the store when an earlier pass kept it
    (the part's run repeats the same calls up to where that pass stopped), else computed and
    kept (:mod:`fishtrack.behaviour._steps`). ``fn`` may itself ask for pooled values and
    run remembered steps (a step read back counts their occurrences as if it ran); it must
    not change its arguments (a pass that reads the result back does not run it)."""
    pool = _POOL.get()
    store = pool.store if pool is not None else None
    if store is None:
        return fn(*args, **kwargs)
    from fishtrack.behaviour._steps import MISSING

    k = pool._steps.get(name, 0)
    pool._steps[name] = k + 1
    key = f"{name}.{k}"
    kept = store.load(key)
    if kept is not MISSING:
        # the occurrences of pooled values and steps inside the step count as if it ran
        for counts, delta in ((pool._seen, kept["pooled"]), (pool._steps, kept["steps"])):
            for n, d in delta.items():
                counts[n] = counts.get(n, 0) + d
        return kept["value"]
    seen, steps = dict(pool._seen), dict(pool._steps)
    out = fn(*args, **kwargs)  # a PoolNeeded raised here keeps nothing
    store.save(key, {"value": out,
                     "pooled": {n: c - seen.get(n, 0) for n, c in pool._seen.items()
                                if c != seen.get(n, 0)},
                     "steps": {n: c - steps.get(n, 0) for n, c in pool._steps.items()
                               if c != steps.get(n, 0)}})
    return out


_MEMO: ContextVar[dict | None] = ContextVar("fishtrack_behaviour_memo", default=None)


def memo(fn: Callable, *args):
    """``fn(*args)``, computed once per :func:`memoizing` context (one
    :func:`fishtrack.behaviour.classify.classify_parts` run: every part of every pass) for the
    same ``args`` (hashable); outside such a context just computed. For a function of its
    arguments and the module's constants alone whose result is not changed by its callers
    (a tuple of floats): the same values as computing it each time. Not kept beyond the
    context, so a constant changed between two runs (a test's ``monkeypatch``) is seen."""
    cache = _MEMO.get()
    if cache is None:
        return fn(*args)
    key = (fn, args)
    if key not in cache:
        cache[key] = fn(*args)
    return cache[key]


@contextmanager
def memoizing() -> Iterator[dict]:
    """The context of :func:`memo`'s results (nested: the outer one's)."""
    cache = _MEMO.get()
    if cache is not None:
        yield cache
        return
    cache = {}
    token = _MEMO.set(cache)
    try:
        yield cache
    finally:
        _MEMO.reset(token)


@contextmanager
def pooling(pool: Pool) -> Iterator[Pool]:
    """Run the behaviour stage on a part of a recording with the values of ``pool``."""
    token = _POOL.set(pool)
    try:
        yield pool
    finally:
        _POOL.reset(token)


def reduce_parts(reduce: Callable, summaries: list[dict]):
    """``reduce`` of the parts' summaries concatenated (in the parts' order)."""
    merged = {k: np.concatenate([np.atleast_1d(np.asarray(s[k])) for s in summaries])
              for k in summaries[0]}
    return reduce(**merged)


def any_of(flag: np.ndarray) -> bool:
    """Reduce: is any flag set (over the parts)."""
    return bool(np.any(flag))


def weighted_median(values: np.ndarray, counts: np.ndarray) -> float:
    """``np.median`` of ``values[i]`` repeated ``counts[i]`` times, exactly (the middle value,
    or the mean of the two middle values), without building the repeated array."""
    v, inv = np.unique(np.asarray(values, float), return_inverse=True)
    c = np.bincount(inv.ravel(), weights=np.asarray(counts, float), minlength=len(v))
    keep = c > 0
    v, c = v[keep], np.cumsum(c[keep])
    n = int(c[-1])
    lo = v[np.searchsorted(c, (n - 1) // 2, side="right")]
    hi = v[np.searchsorted(c, n // 2, side="right")]
    return float(lo) if n % 2 else float(np.mean(np.array([lo, hi])))
