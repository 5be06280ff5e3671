"""The background's refinement shares its arenas among the process's compute threads (issue
15, fixed costs: the 4-well 1 MP run refined its four wells one after the other on one core
while the other idled, before its first frame). Each arena's work is its own, so the refined
background is that of the one-thread loop, value for value."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from fixtures_arenas import assert_same_refinement, refinement_plate

from fishtrack import _threads
from fishtrack.arenas import detect_arenas
from fishtrack.config import load_config
from fishtrack.io.video import open_video
from fishtrack.tracking import background, estimate_background

pytestmark = pytest.mark.timeout(120)




def _on_one_and_two_threads(monkeypatch, module, name: str, step):
    """``step()`` with the compute threads capped at 1, then at 2: its two results, each
    after checking that ``module.name`` (a per-arena function) ran on that many threads."""
    threads: set[str] = set()
    fn = getattr(module, name)

    def seen(*args, **kwargs):
        threads.add(threading.current_thread().name)
        return fn(*args, **kwargs)

    monkeypatch.setattr(module, name, seen)
    out = []
    for n in (1, 2):
        monkeypatch.setattr(_threads, "_APPLIED", n)
        threads.clear()
        out.append(step())
        assert len(threads) == n, (n, threads)
    return out


@pytest.mark.parametrize("still", [False, True])
def test_refinement_on_two_threads_equals_the_loop(tmp_path, monkeypatch, still):
    """A 2 x 3-well plate (one well empty; with ``still``, a fish that sits still in the
    median, removed per arena): the arenas' fish are found on two threads, and every model,
    the fish length, area and their evidence equal the one-thread refinement's."""
    cfg, bg, arenas = refinement_plate(tmp_path, still)

    one, two = _on_one_and_two_threads(
        monkeypatch, background, "_fish_blobs",
        lambda: bg.refine(arenas, cfg.tracking, fish_per_arena=1, layout="wells"))
    assert len(one.models) == len(arenas)
    assert_same_refinement(one, two)


def _four_wells(tmp_path):
    """A simulated 2 x 2-well plate (50 frames): the simulation, its config, the background
    estimated from it and the number of frames."""
    from fishtrack.synth import SimSpec, simulate

    spec = SimSpec(name="f", layout="wells", rows=2, cols=2, fps=50, duration_s=1, seed=6,
                   fish_length_px=30, flicker=0.03)
    sim = simulate(spec, tmp_path / "sim")
    cfg = load_config(sim.config_path)
    with open_video(sim.video_path) as src:
        return sim, cfg, estimate_background(src, cfg.tracking), len(src)


def test_fishness_floors_on_two_threads_equal_the_loop(tmp_path, monkeypatch):
    """The tracker's set-up computes each arena's fishness floor (the midline tracer's noise
    floor, from the calibration frames) on the compute threads too, not one arena after the
    other on the main thread before the first frame (issue 15, fixed costs): the same floors
    as one thread's."""
    from fishtrack.tracking import tracker

    _, cfg, bg, n_frames = _four_wells(tmp_path)
    bg = bg.refine(detect_arenas(bg.image, cfg.arenas), cfg.tracking)

    one, two = _on_one_and_two_threads(
        monkeypatch, tracker, "fishness_floor",
        lambda: [m.floor for m in tracker._Run(bg, cfg.tracking, "wells", 1, n_frames, None,
                                               16).bg.models])
    assert len(one) == 4 and all(np.isfinite(one))
    assert one == two


def test_segmenting_on_two_threads_equals_the_loop(tmp_path, monkeypatch):
    """Without the compiled kernels (a few wells), the arenas of each chunk are segmented
    (fishness and blobs) on the compute threads while the main thread runs the arenas' steps
    in order (issue 15: on a 4-well 1 MP plate the main thread's fishness and outlines were
    the tracking stage's serial chain while the decoding thread waited): the fishness is made
    off the main thread, on two threads, and the tracks equal the one-thread loop's."""
    from fishtrack.tracking import track_video, tracker

    sim, cfg, bg, n_frames = _four_wells(tmp_path)
    arenas = detect_arenas(bg.image, cfg.arenas)
    assert len(arenas) == 4
    monkeypatch.setattr(tracker, "_KERNELS", None)  # the NumPy path (4 fish < KERNEL_MIN_FISH)

    def run():
        with open_video(sim.video_path) as src:
            return track_video(src, arenas, cfg.tracking, background=bg, chunk_size=16).tracks

    one, two = _on_one_and_two_threads(monkeypatch, tracker, "fishness_chunk", run)
    assert len(one) == 4 * n_frames and one["detected"].mean() > 0.9
    assert two.equals(one)


def _track_by_chunks(run, sim, before_chunk=None):
    """Every chunk of the simulation through ``run`` (``before_chunk(k)`` first, if given);
    the tracks and the ``work`` buffer each chunk was segmented into."""
    from fishtrack.tracking import tracker

    works = []
    with open_video(sim.video_path) as src:
        for k, chunk in enumerate(src.chunks(run.chunk_frames)):
            if before_chunk is not None:
                before_chunk(k)
            run.track_chunk(chunk)
            works.append(run.work)
    run.queue.flush(force=True)
    return tracker._finish(run, []).tracks, works


def test_segmenting_threads_use_the_buffer_made_at_set_up(tmp_path, monkeypatch):
    """The segmenting threads' parts of ``work`` (one per arena, :meth:`_Run._arena_parts`)
    are made with the run, not by the first chunk throwing away the one-arena buffer made at
    set-up (the allocation that track_chunk and _segment_beside each repeated): one buffer
    for the whole run, and the tracks those of the one-thread loop."""
    from concurrent.futures import ThreadPoolExecutor

    from fishtrack.tracking import tracker

    sim, cfg, bg, n_frames = _four_wells(tmp_path)
    bg = bg.refine(detect_arenas(bg.image, cfg.arenas), cfg.tracking)
    monkeypatch.setattr(tracker, "_KERNELS", None)  # the NumPy path (4 fish < KERNEL_MIN_FISH)
    with ThreadPoolExecutor(2) as seg, ThreadPoolExecutor(1) as pool:
        run = tracker._Run(bg, cfg.tracking, "wells", 1, n_frames, None, 16, pool=pool,
                           segment_pool=seg)
        first = run.work
        one = max(int(np.prod(m.shape)) for m in bg.models)  # the largest arena's pixels
        assert len(first) == run.chunk_frames * run.cells > run.chunk_frames * one
        beside, works = _track_by_chunks(run, sim)
    assert len(works) == -(-n_frames // run.chunk_frames) > 1
    assert all(w is first for w in works)
    with ThreadPoolExecutor(1) as pool:
        loop, _ = _track_by_chunks(
            tracker._Run(bg, cfg.tracking, "wells", 1, n_frames, None, 16, pool=pool), sim)
    assert len(loop) == 4 * n_frames and loop["detected"].mean() > 0.9
    assert beside.equals(loop)


def test_work_grows_when_the_kernels_arrive_mid_run(tmp_path, monkeypatch):
    """The one case where ``work`` must grow: a run set up for the one-thread loop (no
    segmenting threads, too few fish to load the kernels, kernels not loaded) that finds the
    compiled kernels loaded before a later chunk (another run of the process loaded them)
    switches to a part per arena: the buffer grows once, and the tracks equal the NumPy
    loop's all through."""
    from fishtrack.tracking import midline, tracker

    sim, cfg, bg, n_frames = _four_wells(tmp_path)
    bg = bg.refine(detect_arenas(bg.image, cfg.arenas), cfg.tracking)
    for mod, name in ((tracker, "_KERNELS"), (midline, "_KERNEL"), (midline, "_SWEEP"),
                      (midline, "_HEADS")):
        monkeypatch.setattr(mod, name, getattr(mod, name))
    tracker.use_kernels(False)
    # measuring inline (no pool): the kernels are first called (compiled or loaded from
    # numba's cache) on one thread
    loop, works = _track_by_chunks(tracker._Run(bg, cfg.tracking, "wells", 1, n_frames, None, 16),
                                   sim)
    assert len({id(w) for w in works}) == 1
    run = tracker._Run(bg, cfg.tracking, "wells", 1, n_frames, None, 16)
    one = max(int(np.prod(m.shape)) for m in bg.models)  # the largest arena's pixels
    assert len(run.work) == run.chunk_frames * one < run.chunk_frames * run.cells
    mixed, works = _track_by_chunks(run, sim,
                                    lambda k: tracker.use_kernels(True) if k == 1 else None)
    assert tracker._KERNELS is not None
    assert works[1] is works[-1] is not works[0] and len(works[1]) == run.chunk_frames * run.cells
    assert len(loop) == 4 * n_frames and loop["detected"].mean() > 0.9
    assert mixed.equals(loop)
