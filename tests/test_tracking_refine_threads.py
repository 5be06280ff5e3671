"""The background's refinement shares its arenas among the process's compute threads (issue
15, fixed costs: the 4-well 1 MP run refined its four wells one after the other on one core
while the other idled, before its first frame). Each arena's work is its own, so the refined
background is that of the one-thread loop, value for value."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from fishtrack import _threads
from fishtrack.arenas import detect_arenas
from fishtrack.config import load_config
from fishtrack.io.video import open_video
from fishtrack.tracking import background, estimate_background

pytestmark = pytest.mark.timeout(120)


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and np.isnan(a):
        return np.isnan(b)
    return a == b


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
    from fishtrack.synth import SimSpec, simulate

    spec = SimSpec(name="r", layout="wells", rows=2, cols=3, fps=50, duration_s=2, seed=4,
                   fish_length_px=30, empty_arenas=["B3"], still_arenas=["A2"] if still else [])
    sim = simulate(spec, tmp_path / "sim")
    cfg = load_config(sim.config_path)
    with open_video(sim.video_path) as src:
        bg = estimate_background(src, cfg.tracking)
    arenas = detect_arenas(bg.image, cfg.arenas)

    one, two = _on_one_and_two_threads(
        monkeypatch, background, "_fish_blobs",
        lambda: bg.refine(arenas, cfg.tracking, fish_per_arena=1, layout="wells"))
    assert _same((one.fish_length_px, one.fish_area_px, one.length_evidence),
                 (two.fish_length_px, two.fish_area_px, two.length_evidence))
    assert len(one.models) == len(two.models) == len(arenas)
    for a, b in zip(one.models, two.models, strict=True):
        assert _same(a.__dict__, b.__dict__), a.name


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
