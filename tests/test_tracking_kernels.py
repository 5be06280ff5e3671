"""The tracker's compiled kernels give exactly the values of their NumPy references."""

import numpy as np
import pytest

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
    got = _bilinear(f, x, y)
    assert got.dtype == np.float32 and got.shape == (m, k)
    assert np.array_equal(got, ref)
    if m:
        assert got[0, 0] == 0 and got[0, 3] == 0 and got[0, 4] == 0  # outside: zero
        # (the last pixel is read 1e-4 px inside it)
        assert abs(got[0, 1] - float(f[0, p - 1, p - 1])) <= 1e-4 * 2 * 200
    # float32 positions take the NumPy path: the same values again
    assert np.array_equal(_bilinear(f, x.astype(np.float32), y.astype(np.float32)),
                          _bilinear_np(f, x.astype(np.float32), y.astype(np.float32)))
