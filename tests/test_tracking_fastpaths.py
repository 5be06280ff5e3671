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
