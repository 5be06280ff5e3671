"""The behaviour stage's filter and peak search without ``import scipy.signal`` (issue 15,
fixed costs: ~0.8 s of CPU and ~59 MB per process): :mod:`fishtrack.behaviour._signal` must
give scipy.signal's results to the last bit, on the inputs the stage gives it (tail angles
with gaps bridged, plateaus of a still tail, short fish) and across frame rates."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.signal as ss

from fishtrack.behaviour import _signal
from fishtrack.behaviour.kinematics import TAIL_LOWPASS_HZ


def test_butterworth_design_equals_scipy():
    fs = np.r_[np.arange(2.5 * TAIL_LOWPASS_HZ, 1001.0, 1.0),
               np.random.default_rng(0).uniform(20.0, 5000.0, 200), 30.0, 59.94, 119.88]
    for f in fs:
        for order, cutoff in ((4, TAIL_LOWPASS_HZ), (2, 12.0), (6, 0.3 * f), (8, 0.05 * f)):
            if cutoff < f / 2:
                want = ss.butter(order, cutoff, fs=f, output="sos")
                got = _signal.butter_lowpass(order, cutoff, f)
                assert np.array_equal(got, want), (order, cutoff, f)
    with pytest.raises(ValueError):
        _signal.butter_lowpass(3, 10.0, 100.0)
    with pytest.raises(ValueError):
        _signal.butter_lowpass(4, 60.0, 100.0)


def _tails(rng, n):
    """Tail-angle-like traces: beats on a drifting baseline with noise, quantised copies
    (flat plateaus), a still tail and a step."""
    t = np.arange(n) / 100.0
    beat = 0.4 * np.sin(2 * np.pi * rng.uniform(5, 40) * t) * (rng.random(n) < 0.7)
    x = beat + np.cumsum(rng.normal(0, 0.02, n)) + rng.normal(0, 0.03, n)
    return [x, -x, np.round(x, 1), np.zeros(n), np.r_[np.zeros(n // 2), np.ones(n - n // 2)]]


def test_sosfiltfilt_equals_scipy():
    rng = np.random.default_rng(1)
    for k in range(200):
        n = int(rng.integers(2, 3000)) if k else 2
        fs = float(rng.choice([125.0, 200.0, 250.0, 333.3, 500.0, 1000.0]))
        sos = ss.butter(4, TAIL_LOWPASS_HZ, fs=fs, output="sos")
        for x in _tails(rng, n):
            pad = min(24, n - 1)
            got = _signal.sosfiltfilt(sos, x, pad)
            assert np.array_equal(got, ss.sosfiltfilt(sos, x, padlen=pad)), (k, n, fs)
    with pytest.raises(ValueError):
        _signal.sosfiltfilt(sos, np.zeros(5), 5)


def test_find_peaks_equals_scipy():
    rng = np.random.default_rng(2)
    for k in range(300):
        n = int(rng.integers(1, 2000))
        for x in _tails(rng, n):
            prom = float(rng.choice([0.0, rng.uniform(0.01, 0.5)]))
            dist = int(rng.integers(1, 12))
            wlen = 2 * int(rng.integers(1, 60)) + 1
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                got, gp = _signal.find_peaks(x, prominence=prom, distance=dist, wlen=wlen)
                want, wp = ss.find_peaks(x, prominence=prom, distance=dist, wlen=wlen, width=0)
            assert np.array_equal(got, want), (k, n)
            for key in ("prominences", "widths"):
                assert np.array_equal(gp[key], wp[key]), (k, n, key)


def test_flat_peaks_warn_as_scipy():
    """A still tail's plateaus warn as scipy's do (``kinematics.tail_extrema`` filters that
    warning by its message)."""
    x = np.r_[0.0, 1.0, 1.0, 0.0, 0.0, 2.0, 0.0]
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        _signal.find_peaks(x, prominence=0.0, distance=1, wlen=3)
    with warnings.catch_warnings(record=True) as want:
        warnings.simplefilter("always")
        ss.find_peaks(x, prominence=0.0, distance=1, wlen=3, width=0)
    assert want and [str(w.message) for w in got] == [str(w.message) for w in want]
    assert all(issubclass(w.category, RuntimeWarning) for w in got)


def test_scipy_signal_imports_as_usual_afterwards():
    """Loading scipy's compiled routines alone leaves no half-imported ``scipy.signal``: a
    later ordinary import gets its submodules as attributes and gives the same results."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys, numpy as np\n"
            "from fishtrack.behaviour import _signal as S\n"
            "x = np.sin(np.arange(300) / 4.0)\n"
            "a = S.sosfiltfilt(S.butter_lowpass(4, 20.0, 200.0), x, 24)\n"
            "p = S.find_peaks(x, prominence=0.1, distance=2, wlen=31)[0]\n"
            "assert 'scipy.signal' not in sys.modules\n"
            "import scipy.signal as ss\n"
            "assert ss._sosfilt._sosfilt and ss._peak_finding_utils._peak_widths\n"
            "b = ss.sosfiltfilt(ss.butter(4, 20.0, fs=200.0, output='sos'), x, padlen=24)\n"
            "q = ss.find_peaks(x, prominence=0.1, distance=2, wlen=31, width=0)[0]\n"
            "assert np.array_equal(a, b) and np.array_equal(p, q)\n")
    root = Path(__file__).resolve().parents[1]
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(root)), timeout=120)
    assert res.returncode == 0, res.stderr


def test_another_scipys_private_routines_fall_back_to_the_public_functions(monkeypatch):
    """A scipy whose compiled routines are missing or called otherwise (its private layout
    changed): the public functions give the same results."""
    import types

    S = _signal
    x = np.sin(np.arange(400) / 5.0) + 0.1 * np.random.default_rng(3).standard_normal(400)
    sos = S.butter_lowpass(4, 20.0, 200.0)
    want_f = ss.sosfiltfilt(sos, x, padlen=24)
    want_p = ss.find_peaks(x, prominence=0.2, distance=3, wlen=41, width=0)
    monkeypatch.setattr(S, "compiled", lambda name: types.SimpleNamespace())
    assert np.array_equal(S.sosfiltfilt(sos, x, 24), want_f)
    pk, props = S.find_peaks(x, prominence=0.2, distance=3, wlen=41)
    assert np.array_equal(pk, want_p[0])
    assert np.array_equal(props["prominences"], want_p[1]["prominences"])
    assert np.array_equal(props["widths"], want_p[1]["widths"])
