"""Cheaper equivalents of NumPy calls on the tracker's hot paths give NumPy's exact values."""

from __future__ import annotations

import numpy as np
import pytest

from fishtrack.tracking.background import _cov_xy, _percentile95


@pytest.mark.parametrize("seed", range(3))
def test_cov_xy_is_numpys_cov(seed):
    rng = np.random.default_rng(seed)
    for _ in range(500):
        n = int(rng.integers(2, 400))
        pts = rng.integers(0, 80, (n, 2)).astype(np.float32)
        pts -= pts.mean(0)
        assert _cov_xy(pts).tobytes() == np.cov(pts.T).tobytes()


@pytest.mark.parametrize("kind", ["uniform", "ties", "normal"])
def test_percentile95_is_numpys_percentile(kind):
    rng = np.random.default_rng(7)
    for _ in range(1500):
        n = int(rng.integers(1, 300))
        if kind == "uniform":
            v = (rng.random(n) * 100).astype(np.float32)
        elif kind == "ties":
            v = rng.integers(0, 12, n).astype(np.float32)
        else:
            v = rng.normal(0, 30, n).astype(np.float32)
        want = np.percentile(v, 95)
        got = _percentile95(v)
        assert type(got) is type(want)
        assert np.float32(got).tobytes() == np.float32(want).tobytes(), (n, v)


def test_percentile95_other_arrays_go_to_numpy():
    v = np.arange(10, dtype=np.uint8)
    assert _percentile95(v) == np.percentile(v, 95)
    assert _percentile95(np.arange(7.0)) == np.percentile(np.arange(7.0), 95)


@pytest.mark.parametrize("shape", [(40, 53, 53), (3, 9, 14), (0, 9, 9)])
def test_smoothings_from_one_mosaic_equal_one_each(shape):
    """``smooth_patches_each`` (the tracker's two smoothings of a batch from one mosaic, a gap
    as wide as the widest kernel needs, converted as copied back) gives each patch blurred
    alone (zero outside it) exactly, bright pixels at the patches' edges included (where a
    patch's blur would leak into its neighbour without the gap)."""
    import cv2

    from fishtrack.tracking.midline import smooth_patches_each

    rng = np.random.default_rng(shape[0])
    f = rng.integers(0, 256, shape).astype(np.uint8)
    if shape[0]:
        f[:, :, -1] = 255
        f[:, :, 0] = 255
    sigmas = (0.77, 0.7, 2.4)
    for dtype in (np.float32, None):
        got = smooth_patches_each(f, sigmas, dtype)
        for g, s in zip(got, sigmas, strict=True):
            k = 2 * int(round(2 * s)) + 1
            ref = np.array([cv2.GaussianBlur(a, (k, k), s, borderType=cv2.BORDER_CONSTANT)
                            for a in f], np.uint8).reshape(shape).astype(dtype or np.uint8)
            assert g.dtype == ref.dtype and g.flags.c_contiguous
            assert np.array_equal(g, ref)
