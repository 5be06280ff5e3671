"""The tracker's compiled kernels give exactly the values of their NumPy references."""

import itertools

import numpy as np
import pytest

from fishtrack.tracking import tracker
from fishtrack.tracking.midline import _bilinear, _bilinear_np


@pytest.mark.parametrize("dtype", [np.float32, np.uint8, np.float64])
@pytest.mark.parametrize("shape", [(40, 49, 33), (3, 5, 7), (0, 9, 4)])
def test_bilinear_kernel_equals_numpy(dtype, shape):
    m, p, k = shape
    rng = np.random.default_rng(p)
    f = (rng.random((m, p, p)) * 200).astype(dtype)
    x = rng.random((m, k)) * (p + 4) - 2
    y = rng.random((m, k)) * (p + 4) - 2
    if m:
        # NaN, the last pixel, the clipped band just inside it, infinity, a negative position
        x[0, :5] = [np.nan, p - 1, p - 1.00005, np.inf, -0.5]
        y[0, :5] = [1, p - 1, 0.5, 1, 2]
    with np.errstate(invalid="ignore"):
        ref = _bilinear_np(f, x, y)
    tracker.use_kernels(True)
    try:
        got = _bilinear(f, x, y)  # the kernel for float32 patches, NumPy for the others
    finally:
        tracker.use_kernels(False)
    assert got.dtype == np.float32 and got.shape == (m, k)
    assert np.array_equal(got, ref)
    if m:
        assert got[0, 0] == 0 and got[0, 3] == 0 and got[0, 4] == 0  # outside: zero
        # (the last pixel is read 1e-4 px inside it)
        assert abs(got[0, 1] - float(f[0, p - 1, p - 1])) <= 1e-4 * 2 * 200
    # float32 positions take the NumPy path: the same values again
    assert np.array_equal(_bilinear(f, x.astype(np.float32), y.astype(np.float32)),
                          _bilinear_np(f, x.astype(np.float32), y.astype(np.float32)))


def test_bilinear_rows_kernel_equals_numpy():
    """Sampling chosen patches (``rows``, repeated and in any order) without copying them
    (``_kernels.bilinear_rows``) gives exactly the NumPy values of the copied patches."""
    rng = np.random.default_rng(3)
    m, p, k = 30, 41, 37
    f = (rng.random((m, p, p)) * 200).astype(np.float32)
    for rows in (np.array([4, 4, 0, 29, 7, 12]), np.arange(m)[::-1], np.zeros(0, np.int64)):
        x = rng.random((len(rows), k)) * (p + 4) - 2
        y = rng.random((len(rows), k)) * (p + 4) - 2
        ref = _bilinear_np(f[rows], x, y)
        assert np.array_equal(_bilinear(f, x, y, rows), ref)  # (NumPy)
        got = _kernels_on_off(lambda x=x, y=y, rows=rows: _bilinear(f, x, y, rows),
                              ("bilinear_rows",))[1]
        assert got.dtype == np.float32 and np.array_equal(got, ref)
        if len(rows):
            assert not np.array_equal(got, _bilinear_np(f[: len(rows)], x, y))


@pytest.mark.parametrize("label", [True, False])
def test_cut_kernel_equals_numpy(label):
    """Patches, fish areas and motion energies of the compiled cut equal the NumPy ones,
    with patches clipped by every side of the crop, fully outside it, and the first frame
    with and without the frame before the chunk."""
    from fishtrack.tracking import _kernels
    from fishtrack.tracking.tracker import _cut_measure_np

    rng = np.random.default_rng(7 + label)
    n, h, w, p, m = 6, 40, 50, 21, 60
    d = rng.integers(0, 60, (n, h, w)).astype(np.uint8)
    crop = rng.integers(0, 255, (n, h + 4, w + 4)).astype(np.uint8)[:, 2:-2, 2:-2]  # a view
    prev = rng.integers(0, 255, (h, w)).astype(np.uint8)
    t = rng.integers(0, n, m).astype(np.int64)
    x0 = rng.integers(-p - 2, w + 2, m).astype(np.int64)
    y0 = rng.integers(-p - 2, h + 2, m).astype(np.int64)
    t[:4] = 0
    noise = rng.integers(0, 3, (m, p, p)).astype(np.uint8)
    noise[0] = 0  # no fish pixel: no motion energy
    # compact fish of random sizes anywhere in the patch (at its sides too), one after the
    # other large and small: the dilation's box follows each fish, not the patch
    yy, xx = np.mgrid[:p, :p]
    r = rng.uniform(0.5, 7.0, m) * (np.arange(m) % 2 * 3 + 1) / 4
    cy, cx = rng.uniform(-3, p + 2, (2, m))
    compact = (np.hypot(yy - cy[:, None, None], xx - cx[:, None, None]) <= r[:, None, None])
    compact = np.where(compact, 1, 2 * (noise == 2) * (rng.random((m, 1, 1)) < 0.3)).astype(np.uint8)
    compact[0] = 0
    # (without labels: fish pixels scattered sparsely, each its own small box)
    sparse = np.where(rng.random(d.shape) < 0.9, d // 2, d).astype(np.uint8)
    for mem, has_prev in itertools.product((noise, compact), (True, False)):
        dd = sparse if not label and mem is compact else d
        outs = []
        for fn in (_kernels.cut_measure, _cut_measure_np):
            fp = np.zeros((m, p, p), np.uint8)
            area = np.zeros(m, np.float32)
            motion = np.full(m, np.nan, np.float32)
            fn(dd, crop, prev, has_prev, t, x0, y0, mem, label, 30.0, fp, area, motion)
            outs.append((fp, area, motion))
        for a, b in zip(*outs, strict=True):
            assert np.array_equal(a, b, equal_nan=True)
        fp, area, motion = outs[0]
        assert np.isfinite(motion).sum() > 10 and (area > 0).sum() > 10
        assert np.isnan(motion[t == 0]).all() != has_prev
        if label:
            assert np.isnan(motion[0])


def test_cut_of_all_arenas_in_one_call_equals_one_call_per_arena():
    """``_kernels.cut_measure_arenas`` (a plate's cut in one call: every arena's fishness in
    one flat buffer, its crop a box of the whole frames, its frame before the chunk a box of
    one whole frame) gives exactly the patches, areas and motion of ``cut_measure`` called
    per arena on that arena's own arrays: arenas of different sizes, arenas without fish,
    patches clipped by the crop's sides or outside it, arenas with and without a frame before."""
    from fishtrack.tracking import _kernels

    rng = np.random.default_rng(15)
    n, big_h, big_w, p = 5, 90, 130, 15
    frames = rng.integers(0, 255, (n, big_h, big_w)).astype(np.uint8)
    prev_full = rng.integers(0, 255, (big_h, big_w)).astype(np.uint8)
    boxes = np.array([(0, 0, 30, 40), (40, 0, 25, 35), (80, 10, 40, 50), (0, 45, 30, 30),
                      (35, 50, 38, 44), (90, 60, 30, 40)], np.int64)  # (x0, y0, h, w)
    counts = [7, 0, 11, 1, 9, 0]
    has_prev = np.array([True, False, False, True, True, True])
    sizes = [n * bh * bw for _, _, bh, bw in boxes.tolist()]
    woff = np.cumsum([0, *sizes[:-1]]).astype(np.int64)
    work = rng.integers(0, 60, sum(sizes) + 17).astype(np.uint8)
    bounds = np.cumsum([0, *counts]).astype(np.int64)
    m = int(bounds[-1])
    t = rng.integers(0, n, m).astype(np.int64)
    t[::3] = 0
    x0 = np.empty(m, np.int64)
    y0 = np.empty(m, np.int64)
    for a, (_, _, bh, bw) in enumerate(boxes.tolist()):
        sl = slice(bounds[a], bounds[a + 1])
        x0[sl] = rng.integers(-p - 1, bw + 1, counts[a])
        y0[sl] = rng.integers(-p - 1, bh + 1, counts[a])
    yy, xx = np.mgrid[:p, :p]
    cy, cx = rng.uniform(-2, p + 1, (2, m))
    r = rng.uniform(1.0, 6.0, m)
    mem = np.where(np.hypot(yy - cy[:, None, None], xx - cx[:, None, None]) <= r[:, None, None],
                   1, 2 * (rng.random((m, p, p)) < 0.05)).astype(np.uint8)

    def out():
        return np.zeros((m, p, p), np.uint8), np.zeros(m, np.float32), np.full(m, np.nan, np.float32)

    fp1, area1, motion1 = out()
    _kernels.cut_measure_arenas(work, woff, boxes, frames, prev_full, has_prev, bounds, t, x0, y0,
                                mem, fp1, area1, motion1)
    fp2, area2, motion2 = out()
    for a, (bx, by, bh, bw) in enumerate(boxes.tolist()):
        lo, hi = bounds[a], bounds[a + 1]
        if hi == lo:
            continue
        d = work[woff[a]:woff[a] + sizes[a]].reshape(n, bh, bw)
        crop = frames[:, by:by + bh, bx:bx + bw]
        prev = np.array(prev_full[by:by + bh, bx:bx + bw])
        _kernels.cut_measure(d, crop, prev, bool(has_prev[a]), t[lo:hi], x0[lo:hi], y0[lo:hi],
                             mem[lo:hi], True, 0.0, fp2[lo:hi], area2[lo:hi], motion2[lo:hi])
    assert np.array_equal(fp1, fp2) and np.array_equal(area1, area2)
    assert np.array_equal(motion1, motion2, equal_nan=True)
    assert (area1 > 0).sum() > 10 and np.isfinite(motion1).sum() > 10
    assert np.isfinite(motion1[(t == 0) & has_prev.repeat(counts)]).any()  # the frame before read
    assert np.isnan(motion1[(t == 0) & ~has_prev.repeat(counts)]).all()


def _fish_patches(m: int, p: int, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Smoothed fishness patches (M, P, P) float32 of curved larvae (bright ridges fading to
    the tail, some C-bent so that the tail comes back near the head, some faint, a few
    empty) with noise, and their heads and initial directions."""
    import cv2

    fs = np.zeros((m, p, p), np.float32)
    heads = np.zeros((m, 2))
    theta0 = rng.uniform(-np.pi, np.pi, m)
    for i in range(m):
        img = np.zeros((p, p), np.float32)
        hx, hy = p / 2 + rng.normal(0, 2, 2)
        heads[i] = hx, hy
        if i % 11 == 10:
            fs[i] = rng.normal(0, 3, (p, p)).clip(0)  # no fish: noise only
            continue
        bend = rng.uniform(-0.35, 0.35) if i % 5 else rng.choice([-1, 1]) * 0.6  # C-bends
        amp = rng.uniform(8, 60)
        x, y, th = hx, hy, theta0[i]
        for s in range(28):
            v = amp * (1 - s / 34)
            cv2.circle(img, (int(round(x * 4)), int(round(y * 4))), 8 if s < 6 else 5,
                       float(v), -1, lineType=cv2.LINE_AA, shift=2)
            th += bend + rng.normal(0, 0.05)
            x, y = x + np.cos(th), y + np.sin(th)
        img = cv2.GaussianBlur(img, (0, 0), 1.2)
        fs[i] = (img + rng.normal(0, 2, (p, p))).clip(0)
    return fs, heads, theta0


@pytest.mark.parametrize("arc_smooth", [True, False])
def test_sweep_kernel_equals_numpy(arc_smooth):
    """trace_midlines with the compiled sweep gives exactly the NumPy path's midlines, traces,
    ridge values and ends, on curved, C-bent, faint and missing larvae."""
    from fishtrack.tracking import midline

    rng = np.random.default_rng(3 + arc_smooth)
    fs, heads, theta0 = _fish_patches(120, 53, rng)
    stop = rng.uniform(2, 8, len(fs)).astype(np.float32)
    outs = []
    for on in (False, True):
        tracker.use_kernels(on)
        try:
            assert (midline._SWEEP is not None) == on
            outs.append(midline.trace_midlines(fs, heads, theta0, 28.0, 10, stop,
                                               arc_smooth=arc_smooth))
            # float64 patches always take the NumPy path
            outs.append(midline.trace_midlines(fs[:7].astype(np.float64), heads[:7], theta0[:7],
                                               28.0, 10, stop[:7], arc_smooth=arc_smooth))
        finally:
            tracker.use_kernels(False)
    for a, b in ((outs[0], outs[2]), (outs[1], outs[3])):
        for f in ("points", "length", "ok", "trace", "ridge", "beside", "end"):
            assert np.array_equal(getattr(a, f), getattr(b, f), equal_nan=True), f
    ok = outs[0].ok
    assert 0.3 * len(ok) < ok.sum() < len(ok)  # tails found, not everywhere (empty patches)
    # the rigid anterior body's steps (ending within RIGID lengths) keep within RIGID_TURN of
    # the starting direction (the first step within FIRST_TURN; plus the parabola's half grid
    # step), C-bent larvae included
    step = 28.0 / 18
    first = max(step, 0.12 * 28.0)
    n_rigid = int((midline.RIGID * 28.0 - first) // step) + 1
    d = np.diff(outs[0].trace[:, : n_rigid + 1], axis=1)
    turn = midline.wrap(np.arctan2(d[..., 1], d[..., 0]) - theta0[:, None])
    assert n_rigid >= 3
    assert np.abs(turn[:, 0]).max() <= midline.FIRST_TURN + 0.033
    assert np.abs(turn[:, 1:]).max() <= midline.RIGID_TURN + 0.033


def test_held_sweeps_never_lose_a_tail_the_plain_sweeps_find():
    """``rigid_sweeps`` (``midline.RIGID_SWEEPS`` = 0.4 for head-embedded larvae) holds the
    sweeps within ``RIGID_TURN`` of the start beyond the straightened ``RIGID`` part. Where the
    body is not straight ahead there (a tail bent right behind the rigid part, or a faint tail
    lost in codec noise beside the cone: tuning seed 745), the held trace was pushed along the
    cone's edge into background and ended inside the anterior body: of these curved larvae
    the plain sweeps find 48 tails, the held ones alone kept 24. A fish whose held trace found
    no tail is now traced as without the held sweeps: every tail the plain sweeps find is kept,
    the same with the compiled sweep and in NumPy."""
    from fishtrack.tracking import midline

    rng = np.random.default_rng(3)
    fs, heads, theta0 = _fish_patches(120, 53, rng)
    stop = rng.uniform(2, 8, len(fs)).astype(np.float32)
    outs = {}
    for on in (False, True):
        tracker.use_kernels(on)
        try:
            for rs in (None, 0.4):
                outs[on, rs] = midline.trace_midlines(fs, heads, theta0, 28.0, 10, stop,
                                                      arc_smooth=False, rigid_sweeps=rs)
        finally:
            tracker.use_kernels(False)
    plain, held = outs[False, None], outs[False, 0.4]
    assert plain.ok.sum() >= 40
    assert not (plain.ok & ~held.ok).any()
    # the traces the held sweeps kept on their own are theirs (not the plain ones): they differ
    assert (held.ok & (np.abs(np.nan_to_num(held.points - plain.points)) > 0.01).any(axis=(1, 2))).sum() >= 5
    for f in ("points", "length", "ok", "trace", "ridge", "beside", "end"):
        assert np.array_equal(getattr(held, f), getattr(outs[True, 0.4], f), equal_nan=True), f


@pytest.mark.parametrize("kernels", [False, True])
def test_trace_stops_once_its_end_is_decided(kernels, monkeypatch):
    """A trace stops once its ridge has stayed below ``stop`` for a whole gap beyond the body
    (``midline.STOP_DECIDED``): the midlines, lengths, ends and the steps traced are exactly
    those of traces run to ``max_length``; the steps after the decided end are not traced (NaN
    in ``trace``, zero ridge), for most larvae of curved, C-bent, faint and missing larvae."""
    from fishtrack.tracking import midline

    rng = np.random.default_rng(17)
    fs, heads, theta0 = _fish_patches(150, 53, rng)
    stop = rng.uniform(2, 8, len(fs)).astype(np.float32)
    outs = []
    tracker.use_kernels(kernels)
    try:
        for on in (False, True):
            monkeypatch.setattr(midline, "STOP_DECIDED", on)
            outs.append(midline.trace_midlines(fs, heads, theta0, 28.0, 10, stop,
                                               arc_smooth=False))
    finally:
        tracker.use_kernels(False)
    full, short = outs
    for f in ("points", "length", "ok", "end"):
        assert np.array_equal(getattr(full, f), getattr(short, f), equal_nan=True), f
    traced = ~np.isnan(short.trace[:, 1:, 0])  # (M, n_steps) the steps traced
    assert np.array_equal(short.trace[:, 1:][traced], full.trace[:, 1:][traced])
    assert np.array_equal(short.ridge[traced], full.ridge[traced])
    assert (short.ridge[~traced] == 0).all() and (short.beside[~traced] == 0).all()
    stopped = ~traced[:, -1]
    assert not np.isnan(full.trace).any()
    assert stopped.mean() > 0.5  # most traces stop before max_length
    # every stopped trace went on for a whole gap (>= 2 steps) after its tail's end
    n_traced = traced.sum(axis=1)
    assert (n_traced[stopped] >= short.end[stopped] + 3).all()
    assert (n_traced[stopped] < traced.shape[1] - 1).mean() > 0.3  # ~5+ steps saved


def _eyed_larvae(m: int, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """uint8 patches (M, 53, 53) of :func:`_fish_patches`' larvae, every other one with two
    unequal eyes ahead of its head, one at the patch's corner, one empty; heads, directions."""
    import cv2

    fs, heads, theta0 = _fish_patches(m, 53, rng)
    own = np.clip(fs * 3, 0, 255).astype(np.uint8)
    for i in range(0, m, 2):  # two eyes ahead of the head, 2-5 px apart, unequal
        hx, hy = heads[i] - 4 * np.array([np.cos(theta0[i]), np.sin(theta0[i])])
        half = rng.uniform(1.0, 2.5)
        nx, ny = -np.sin(theta0[i]) * half, np.cos(theta0[i]) * half
        for sgn, v in ((1, 230), (-1, rng.uniform(120, 230))):
            cv2.circle(own[i], (int(round((hx + sgn * nx) * 4)), int(round((hy + sgn * ny) * 4))),
                       5, float(v), -1, lineType=cv2.LINE_AA, shift=2)
    own[3] = np.roll(own[3], (24, -25), axis=(0, 1))  # the fish at the patch's corner
    own[5] = 0
    return own, heads, theta0


def _kernels_on_off(fn, used: tuple[str, ...]):
    """``fn()`` with the kernels off, then on; checks that the head kernels ``used`` (names in
    ``_kernels``) were called with the kernels on (the real ones, counted)."""
    from types import SimpleNamespace

    from fishtrack.tracking import midline

    outs = []
    calls = dict.fromkeys(used, 0)
    for on in (False, True):
        tracker.use_kernels(on)
        try:
            assert (midline._HEADS is not None) == on
            if on:
                real = midline._HEADS

                def count(name, fn):
                    def f(*a):
                        calls[name] += 1
                        return fn(*a)
                    return f

                midline._HEADS = SimpleNamespace(**{k: count(k, getattr(real, k)) if k in used else getattr(real, k)
                                                    for k in real.__all__})
            outs.append(fn())
        finally:
            tracker.use_kernels(False)
    assert all(calls.values()), calls
    return outs


def test_head_kernels_equal_numpy():
    """locate_heads with the compiled steps (``_kernels.head_windows``, ``eye_heads``) gives
    exactly the NumPy path's heads and peaks on uint8 larvae: with two eyes (found as a pair),
    without (the eye's centroid), at the patch's edge (the window leaving the patch), empty
    patches, and with the search for a pair elsewhere."""
    from fishtrack.tracking import midline

    own, heads, _ = _eyed_larvae(150, np.random.default_rng(11))
    off, on = _kernels_on_off(lambda: (midline.locate_heads(own, 28.0, 0.7, elsewhere=False),
                                       midline.locate_heads(own[:40], 28.0, 0.7)),
                              ("head_windows", "eye_heads"))
    for a, b in zip(off, on, strict=True):
        assert a[0].dtype == b[0].dtype == np.float64 and a[1].dtype == b[1].dtype
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    # the heads are on the fish (near the drawn head), the empty patch's peak is zero
    near = np.hypot(*(off[0][0] - heads).T) < 8
    assert near[::2].mean() > 0.8 and off[0][1][5] == 0


def test_refine_heads_kernels_equal_numpy():
    """refine_heads with the compiled steps (``_kernels.head_profile``, ``head_point``) gives
    exactly the NumPy path's head points and reaches, from rough heads off the true ones, with
    the head feature decided per fish, given for all, and given per fish, and a per-fish floor."""
    from fishtrack.tracking import midline

    rng = np.random.default_rng(5)
    own, heads, theta0 = _eyed_larvae(150, rng)
    fs = midline.smooth_patches(own, 0.7).astype(np.float32)
    rough = heads + rng.normal(0, 2.0, heads.shape)
    floor = rng.uniform(0, 12, len(fs)).astype(np.float32)
    feat = rng.random(len(fs)) < 0.5

    def run():
        return [midline.refine_heads(fs, rough, theta0, 28.0, floor=floor, head_feature=hf,
                                     return_reach=True) for hf in (None, True, False, feat)]

    off, on = _kernels_on_off(run, ("head_profile", "head_point"))
    for a, b in zip(off, on, strict=True):
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    pts, reach = off[0]
    assert (pts != rough).any(axis=1).mean() > 0.8  # moved from the rough heads
    assert 0.05 < (reach > 0.17).mean() < 0.95  # fish with and without a head feature
    assert not np.array_equal(off[1][0], off[2][0])


def test_body_directions_kernel_equals_numpy():
    """body_directions with the compiled rays (``_kernels.body_rays``) gives exactly the NumPy
    path's directions and strengths, with and without the opposite direction, from heads at,
    off and outside the fish and a per-fish floor."""
    from fishtrack.tracking import midline

    rng = np.random.default_rng(9)
    fs, heads, _ = _fish_patches(120, 53, rng)
    heads = heads + rng.normal(0, 3.0, heads.shape)
    heads[:3] = [[-4.0, 10.0], [60.0, 60.0], [0.0, 52.0]]
    floor = rng.uniform(0, 10, len(fs)).astype(np.float32)

    def run():
        return (midline.body_directions(fs, heads, 28.0, floor=floor),
                midline.body_directions(fs, heads, 28.0, floor=floor, opposite=True))

    off, on = _kernels_on_off(run, ("body_rays",))
    for a, b in zip(off, on, strict=True):
        for x, y in zip(a, b, strict=True):
            assert x.dtype == y.dtype and np.array_equal(x, y)
    # the rays find the drawn bodies: stronger than on the empty (noise-only) patches
    strength = off[0][1]
    empty = np.arange(len(fs)) % 11 == 10
    assert np.median(strength[3:][~empty[3:]]) > 2 * np.median(strength[empty])


def test_trace_advance_kernel_equals_numpy():
    """trace_midlines with the compiled end of each step (``_kernels.trace_advance``: the new
    position, the ridge value and the fishness beside the ridge) gives exactly the NumPy
    path's midlines, traces, ridge and beside values."""
    from fishtrack.tracking import midline

    rng = np.random.default_rng(13)
    fs, heads, theta0 = _fish_patches(100, 53, rng)
    stop = rng.uniform(2, 8, len(fs)).astype(np.float32)
    off, on = _kernels_on_off(lambda: midline.trace_midlines(fs, heads, theta0, 28.0, 10, stop),
                              ("trace_advance",))
    for f in ("points", "length", "ok", "trace", "ridge", "beside", "end"):
        assert np.array_equal(getattr(off, f), getattr(on, f), equal_nan=True), f
    assert (off.beside > 0).mean() > 0.3 and 0.3 * len(fs) < off.ok.sum() < len(fs)


def _blob_stacks(rng, n_arenas):
    """Fishness stacks (N, h, w) of arenas of different sizes: smooth random shapes of all
    sizes (specks below ``min_area``, one-pixel lines, larvae-sized blobs, frames without any),
    zero on the outer rows and columns; one arena empty throughout."""
    import cv2

    stacks = []
    for a in range(n_arenas):
        n, h, w = 5, int(rng.integers(20, 70)), int(rng.integers(20, 70))
        d = np.zeros((n, h, w), np.uint8)
        if a != 1:
            for t in range(n):
                if t == 2:
                    continue  # a frame without a blob
                z = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0),
                                     float(rng.uniform(0.6, 3)))
                d[t] = np.where(z > np.quantile(z, rng.uniform(0.8, 0.97)), 40, 0).astype(np.uint8)
            d[0, h // 2, 3 : w - 3] = 40  # a line one pixel thick (zero area by moments)
        d[:, [0, -1]] = 0
        d[:, :, [0, -1]] = 0
        stacks.append(d)
    return stacks


def test_contour_stats_kernel_equals_opencv():
    """The compiled outline statistics are OpenCV's boundingRect, moments (m00, m10, m01) and
    closed arcLength, exactly, for every outline of random masks (including one-point and
    line outlines)."""
    import cv2

    from fishtrack.tracking import _kernels
    from fishtrack.tracking.segment import outlines

    rng = np.random.default_rng(11)
    cs = [c for d in _blob_stacks(rng, 12) for c in outlines(d, 20)]
    cs.append(np.array([[[5, 7]]], np.int32))  # a single point
    assert len(cs) > 100
    ends = np.cumsum([len(c) for c in cs], dtype=np.int64)
    rect = np.empty((len(cs), 4), np.int32)
    mom = np.empty((len(cs), 4))
    _kernels.contour_stats(np.concatenate(cs).reshape(-1, 2), ends, rect, mom)
    for i, c in enumerate(cs):
        mo = cv2.moments(c)
        assert tuple(rect[i]) == cv2.boundingRect(c)
        assert (mom[i, 0], mom[i, 1], mom[i, 2]) == (mo["m00"], mo["m10"], mo["m01"])
        assert mom[i, 3] == cv2.arcLength(c, True)
    assert (mom[:, 0] == 0).any() and (mom[:, 0] > 50).any()


def test_blobs_of_arenas_equals_find_blobs():
    """The plate's blobs of all arenas at once are find_blobs' blobs of each arena: the same
    values, dtypes, order and outlines (arenas of different heights, an empty arena)."""
    from fishtrack.tracking import _kernels
    from fishtrack.tracking.segment import blobs_of_arenas, find_blobs, outlines

    rng = np.random.default_rng(5)
    stacks = _blob_stacks(rng, 9)
    for min_area in (0.0, 6.0, 40.0):
        got = blobs_of_arenas([outlines(d, 20) for d in stacks], [d.shape[1] for d in stacks],
                              min_area, _kernels.contour_stats)
        n_blobs = 0
        for d, g in zip(stacks, got, strict=True):
            ref = find_blobs(d, 20, min_area)
            n_blobs += len(ref)
            for f in ("frame", "x0", "y0", "w", "h", "area", "cx", "cy"):
                a, b = getattr(ref, f), getattr(g, f)
                assert a.dtype == b.dtype and np.array_equal(a, b), f
            assert len(ref.contours) == len(g.contours)
            assert all(np.array_equal(a, b) for a, b in zip(ref.contours, g.contours, strict=True))
        assert n_blobs > 20 and len(got[1]) == 0
    assert all(len(b) == 0 for b in blobs_of_arenas([[], []], [10, 12], 5.0, _kernels.contour_stats))


def _opencv_fishness(frames, models, gains, polarity) -> list[np.ndarray]:
    """segment.fishness_chunk of every arena of ``models`` with its ``gains`` (flat)."""
    from fishtrack.tracking.segment import fishness_chunk

    out = []
    for m, g in zip(models, gains, strict=True):
        x0, y0, x1, y1 = m.bbox
        d = np.empty((len(frames), y1 - y0, x1 - x0), np.uint8)
        fishness_chunk(frames[:, y0:y1, x0:x1], m, polarity, d, gains=g)
        out.append(d.ravel())
    return out


@pytest.mark.parametrize("polarity", ["dark", "bright"])
def test_fishness_kernel_equals_opencv(polarity):
    """The compiled fishness of all arenas at once equals segment.fishness_chunk's OpenCV
    calls for every arena: gains around 1 (flicker) and gains that put the scaled background
    exactly half-way between grey levels (rounding half to even) or above 255 (saturation)."""
    from fishtrack.tracking import _kernels
    from fishtrack.tracking.background import ArenaModel

    rng = np.random.default_rng(17 + (polarity == "dark"))
    n, hf, wf = 4, 90, 120
    frames = rng.integers(0, 256, (n, hf, wf)).astype(np.uint8)
    boxes = [(0, 0, 40, 30), (35, 5, 80, 50), (70, 40, 120, 90), (3, 60, 20, 61)]
    models = []
    for x0, y0, x1, y1 in boxes:
        h, w = y1 - y0, x1 - x0
        bg = rng.integers(0, 256, (h, w)).astype(np.float32)
        bg[: h // 2] += 0.5  # half-way values, in float32 exactly
        valid = np.where(rng.random((h, w)) < 0.8, 255, 0).astype(np.uint8)
        models.append(ArenaModel(name="A", bbox=(x0, y0, x1, y1), bg=bg, valid=valid,
                                 threshold=10.0, noise=1.0, gain_yx=np.zeros((2, 1), np.int64),
                                 gain_ref=np.ones(1, np.float32)))
    gains = rng.uniform(0.9, 1.1, (len(boxes), n)).astype(np.float32)
    gains[0, 0], gains[1, 1], gains[2, 2] = 1.0, 2.0, 0.5
    ref = _opencv_fishness(frames, models, gains, polarity)
    boxes, bgs, valids, offs, in_call = tracker._plate_arrays(models)
    assert in_call.all()
    out = np.full(sum(len(r) for r in ref), 7, np.uint8)
    _kernels.fishness_arenas(frames, boxes, gains, bgs, valids, offs, polarity == "dark", out)
    assert np.array_equal(out, np.concatenate(ref))
    # a subset of the arenas (the others smooth their fishness): only theirs are written
    out[:] = 7
    sub = np.array([True, False, True, False])
    _kernels.fishness_arenas(frames, boxes[sub], gains[sub], bgs, valids, offs[sub],
                             polarity == "dark", out)
    parts = np.split(out, np.cumsum([len(r) for r in ref])[:-1])
    for keep, got, r in zip(sub, parts, ref, strict=True):
        assert np.array_equal(got, r) if keep else (got == 7).all()
    assert (out > 0).mean() > 0.2 and (out == 0).mean() > 0.2


@pytest.mark.parametrize("polarity", ["dark", "bright"])
def test_gains_and_fishness_in_one_pass_equal_numpy(polarity):
    """The plate's brightness gains and fishness in one compiled pass
    (``_kernels.gains_fishness_arenas``) equal segment.all_arena_gains' medians (odd and even
    counts of reference pixels, ties, one pixel) and the fishness of fishness_chunk with those
    gains, for the arenas that do not smooth their fishness (the others: their gains only)."""
    from fishtrack.tracking import _kernels
    from fishtrack.tracking.background import ArenaModel
    from fishtrack.tracking.segment import all_arena_gains

    rng = np.random.default_rng(29 + (polarity == "dark"))
    n, hf, wf = 5, 90, 120
    frames = rng.integers(0, 256, (n, hf, wf)).astype(np.uint8)
    boxes = [(0, 0, 40, 30), (35, 5, 80, 50), (70, 40, 120, 90), (3, 60, 20, 61), (50, 55, 66, 89)]
    counts = [400, 401, 7, 1, 60]
    models = []
    for (x0, y0, x1, y1), k in zip(boxes, counts, strict=True):
        h, w = y1 - y0, x1 - x0
        bg = rng.integers(0, 256, (h, w)).astype(np.float32)
        valid = np.where(rng.random((h, w)) < 0.8, 255, 0).astype(np.uint8)
        yx = np.stack([rng.integers(0, h, k), rng.integers(0, w, k)]).astype(np.int64)
        ref = bg[yx[0], yx[1]].astype(np.float32) + rng.uniform(-0.5, 2, k).astype(np.float32)
        ref[: k // 3] = 60.0  # ties among the quotients
        models.append(ArenaModel(name="A", bbox=(x0, y0, x1, y1), bg=bg, valid=valid,
                                 threshold=10.0, noise=1.0, gain_yx=yx, gain_ref=ref))
    frames[1] = frames[0]  # the same frame twice: the same gains
    want_g = np.stack(all_arena_gains(frames, models))
    want = _opencv_fishness(frames, models, want_g, polarity)
    boxes, bgs, valids, offs, _ = tracker._plate_arrays(models)
    pix, refs, ends = tracker._plate_gain_pixels(models, wf)
    fish = np.array([True, False, True, True, False])
    out = np.full(sum(len(r) for r in want), 7, np.uint8)
    gains = np.zeros((len(models), n), np.float32)
    _kernels.gains_fishness_arenas(frames, boxes, pix, refs, ends, fish, bgs, valids, offs,
                                   polarity == "dark", gains, out)
    assert np.array_equal(gains, want_g)
    assert len(np.unique(want_g)) > 10 and (want_g[:, 0] == want_g[:, 1]).all()
    parts = np.split(out, np.cumsum([len(r) for r in want])[:-1])
    for keep, got, r in zip(fish, parts, want, strict=True):
        assert np.array_equal(got, r) if keep else (got == 7).all()
    assert (out > 0).mean() > 0.2 and (out == 0).mean() > 0.2
    # no reference pixels in an arena, or references that are not finite: all_arena_gains
    models[3].gain_yx, models[3].gain_ref = np.zeros((2, 0), np.int64), np.zeros(0, np.float32)
    assert tracker._plate_gain_pixels(models, wf) is None


def test_limit_malloc_arenas_in_a_fresh_process():
    """Tracking caps glibc's malloc arenas at MALLOC_ARENAS unless the user set
    MALLOC_ARENA_MAX: the cap holds (six threads allocating at once share them; without the
    cap each gets its own), and with the variable set nothing is changed."""
    import os
    import subprocess
    import sys

    code = (
        "import ctypes, threading\n"
        "from fishtrack._threads import limit_malloc_arenas\n"
        "print(limit_malloc_arenas(), limit_malloc_arenas())\n"
        "libc = ctypes.CDLL('libc.so.6')\n"
        "libc.malloc.restype = libc.fopen.restype = ctypes.c_void_p\n"
        "libc.free.argtypes = libc.fflush.argtypes = [ctypes.c_void_p]\n"
        "libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]\n"
        "bar = threading.Barrier(6)\n"
        "def work():\n"
        "    p = libc.malloc(200000); bar.wait(); libc.free(p)\n"
        "ts = [threading.Thread(target=work) for _ in range(6)]\n"
        "[t.start() for t in ts]; [t.join() for t in ts]\n"
        "f = libc.fopen(b'/dev/stdout', b'w'); libc.malloc_info(0, f); libc.fflush(f)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout
    if "<malloc" not in out:
        pytest.skip("not glibc")
    assert out.splitlines()[0] == "True False"  # set once, then nothing to do
    from fishtrack._threads import MALLOC_ARENAS

    assert 1 <= out.count("<heap nr=") <= MALLOC_ARENAS
    env["MALLOC_ARENA_MAX"] = "4"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout
    assert out.splitlines()[0] == "False False"
    assert out.count("<heap nr=") > MALLOC_ARENAS  # (the cap is what kept them few)


@pytest.mark.parametrize("layout", ["wells", "chamber", "embedded"])
def test_tracks_with_kernels_equal_numpy(layout, tmp_path):
    """Whole tracking runs with the compiled kernels (a plate's path: blobs of all arenas at
    once, compiled cutting and sampling) give exactly the NumPy path's tracks, for every
    layout (noise, dust, flicker, an empty well)."""
    from fishtrack.config import TrackingConfig
    from fishtrack.io.video import open_video
    from fishtrack.synth import SimSpec, simulate
    from fishtrack.tracking import estimate_background, track_video

    kw = {"wells": dict(rows=2, cols=3, empty_arenas=["B3"], n_dust=15),
          "chamber": dict(fish_per_arena=2), "embedded": dict(rows=1, cols=2)}[layout]
    sim = simulate(SimSpec(name=layout, layout=layout, duration_s=1.2, fps=50, seed=21,
                           noise_sd=3.0, flicker=0.03, **kw), tmp_path)
    from fishtrack.arenas import Arena

    arenas = [Arena(name=r.name, row=int(r.row), col=int(r.col), shape=r.shape, cx=float(r.cx),
                    cy=float(r.cy), radius=float(r.radius),
                    bbox=(int(r.x0), int(r.y0), int(r.x1), int(r.y1)), margin=2.0)
              for r in sim.arenas.itertuples()]
    cfg = TrackingConfig()
    with open_video(sim.video_path) as src:
        bg = estimate_background(src, cfg)
        if layout == "wells":
            # one arena smoothing its fishness (a noisy arena): the others' fishness still
            # comes from the compiled call
            bg = bg.refine(arenas, cfg, fish_per_arena=1, layout=layout)
            bg.models[0].smooth = 1.0
        outs = []
        for on in (False, True):
            tracker.use_kernels(on)
            try:
                outs.append(track_video(src, arenas, cfg, background=bg, layout=layout,
                                        fish_per_arena=sim.spec.fish_per_arena).tracks)
            finally:
                tracker.use_kernels(False)
    assert outs[0].equals(outs[1])
    assert outs[0]["detected"].mean() > 0.5


def test_kernels_sample_uint8_smoothings_as_their_float32_copies():
    """The sampling kernels read uint8 smoothings as they are (each value converted to float32
    as it is read): trace_midlines (``sweep_step``, ``trace_advance``), body_directions
    (``body_rays``), refine_heads (``head_profile``) and ``_bilinear`` with and without
    ``rows`` (``bilinear2d``, ``bilinear_rows``) give on uint8 patches exactly what they give on
    their float32 copies; and a plate's measuring hands the kernels the uint8 smoothings (no
    float32 copy), with the same heads and midlines as the float32 copies give."""
    from types import SimpleNamespace

    from fishtrack.tracking import midline

    rng = np.random.default_rng(23)
    own, heads, theta0 = _eyed_larvae(90, rng)
    u8 = midline.smooth_patches(own, 1.0)
    f32 = u8.astype(np.float32)
    stop = rng.uniform(2, 30, len(u8)).astype(np.float32)
    x, y = (rng.uniform(-3, 56, (len(u8), 40)) for _ in range(2))
    rows = rng.integers(0, len(u8), 25)

    def run(fs):
        tr = midline.trace_midlines(fs, heads, theta0, 28.0, 10, stop)
        return ([getattr(tr, f) for f in ("points", "length", "ok", "trace", "ridge", "beside", "end")]
                + list(midline.body_directions(fs, heads, 28.0, floor=stop, opposite=True))
                + list(midline.refine_heads(fs, heads, theta0, 28.0, floor=stop, return_reach=True))
                + [midline._bilinear(fs, x, y), midline._bilinear(fs, x[:25], y[:25], rows)])

    seen = []
    tracker.use_kernels(True)
    try:
        real = midline._HEADS

        def spy(name):
            def f(*a):
                seen.append((name, a[0].dtype))
                return getattr(real, name)(*a)
            return f

        names = ("sweep_step", "trace_advance", "body_rays", "head_profile", "bilinear_rows")
        outs = [run(f32), run(u8)]
        midline._HEADS = SimpleNamespace(**{k: spy(k) if k in names else getattr(real, k)
                                            for k in real.__all__})
        midline._SWEEP, midline._KERNEL = spy("sweep_step"), spy("bilinear2d")
        prm = SimpleNamespace(sigma_trace=1.0, sigma_head=0.7, length=28.0, n_points=10,
                              head_feature=True)
        mem = (own > 0).astype(np.uint8)
        pt = tracker._Patches(own, mem, np.zeros((len(own), 2)), heads, np.ones(len(own), np.float32),
                              np.zeros(len(own), np.float32))
        meas_u8 = tracker._measure(pt, prm, stop)
        midline._HEADS, midline._SWEEP, midline._KERNEL = real, real.sweep_step, real.bilinear2d
        calls = []
        orig = tracker.smooth_patches_each
        tracker.smooth_patches_each = lambda f, s, dtype=None: calls.append(dtype) or orig(f, s, np.float32)
        try:
            meas_f32 = tracker._measure(pt, prm, stop)
        finally:
            tracker.smooth_patches_each = orig
    finally:
        tracker.use_kernels(False)
    for a, b in zip(*outs, strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)
    assert 0.3 * len(u8) < outs[0][2].sum() < len(u8)  # tails found, not on the empty patches
    assert {n for n, _ in seen} >= {"sweep_step", "trace_advance", "body_rays", "head_profile",
                                    "bilinear_rows"}
    assert {d for _, d in seen} == {np.dtype(np.uint8)}  # the plate's kernels read uint8
    assert calls == [np.uint8]  # (the float32 copies made here only as the reference)
    for f in ("head", "points", "heading", "ok"):
        assert np.array_equal(getattr(meas_u8, f), getattr(meas_f32, f), equal_nan=True), f
    assert meas_u8.ok.sum() > 0.3 * len(u8)
