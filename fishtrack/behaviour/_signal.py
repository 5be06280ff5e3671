"""The three pieces of :mod:`scipy.signal` the behaviour stage uses, without importing it.

``import scipy.signal`` costs ~0.8 s of CPU and ~59 MB (its package pulls in
``scipy.stats``, ``scipy.interpolate`` and the array-API decorators that parse ~650
docstrings; issue 15, fixed costs), for three functions: :func:`find_peaks` with a prominence,
a distance, a window and ``width=0``; a Butterworth low-pass design; and :func:`sosfiltfilt`.
Here the numerical work runs in scipy's own compiled routines (its modules
``scipy.signal._peak_finding_utils`` and ``scipy.signal._sosfilt``, loaded on their own from
scipy's package folder, ~0.01 s), called in the same order with the same arguments as the
public functions call them, and the filter design is the same sequence of NumPy operations as
``scipy.signal.butter(..., output="sos")`` for a digital low-pass filter of even order; every
result is equal to scipy's to the last bit (tests/test_behaviour_signal.py compares them).
When a compiled module cannot be loaded on its own (another scipy layout), it is imported the
ordinary way (``scipy.signal`` with it).
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import threading
from functools import cache
from pathlib import Path

import numpy as np

_LOADING = threading.Lock()


def compiled(name: str):
    """scipy's compiled module ``scipy.signal.<name>``, without the ``scipy.signal`` package
    (the ordinary import when it is already loaded or cannot be loaded on its own). Loaded
    once, also when the behaviour stage's threads ask for it at once."""
    with _LOADING:
        return _compiled(name)


@cache
def _compiled(name: str):
    full = f"scipy.signal.{name}"
    if full in sys.modules:
        return sys.modules[full]
    try:
        import scipy

        folder = Path(scipy.__file__).parent / "signal"
        path = next(folder / (name + s) for s in importlib.machinery.EXTENSION_SUFFIXES
                    if (folder / (name + s)).is_file())
        loader = importlib.machinery.ExtensionFileLoader(full, str(path))
        spec = importlib.util.spec_from_file_location(full, path, loader=loader)
        module = importlib.util.module_from_spec(spec)
        loader.exec_module(module)
        # not left as a submodule of a package that was never imported: a later
        # ``import scipy.signal`` then loads it as its own, as usual
        if "scipy.signal" not in sys.modules and sys.modules.get(full) is module:
            del sys.modules[full]
        return module
    except (ImportError, OSError, StopIteration):
        return importlib.import_module(full)


def find_peaks(x: np.ndarray, *, prominence: float, distance: int, wlen: int) -> tuple[np.ndarray, dict]:
    """``scipy.signal.find_peaks(x, prominence=prominence, distance=distance, wlen=wlen,
    width=0)``: the peaks and their ``prominences`` and ``widths`` (at half the prominence).
    Peaks whose prominence or width is ill-defined warn as scipy's do
    (``PeakPropertyWarning``, a ``RuntimeWarning``). Should another scipy's private routines
    differ (a missing name, another signature), the public function is called instead."""
    try:
        return _find_peaks(x, prominence=prominence, distance=distance, wlen=wlen)
    except (AttributeError, TypeError):
        from scipy.signal import find_peaks as public

        pk, props = public(x, prominence=prominence, distance=distance, wlen=wlen, width=0)
        return pk, {"prominences": props["prominences"], "widths": props["widths"]}


def _find_peaks(x: np.ndarray, *, prominence: float, distance: int, wlen: int) -> tuple[np.ndarray, dict]:
    """:func:`find_peaks` by scipy's compiled routines, as the public function calls them."""
    pf = compiled("_peak_finding_utils")
    x = np.asarray(x, order="C", dtype=np.float64)
    if x.ndim != 1:
        raise ValueError("`x` must be a 1-D array")
    if distance < 1:
        raise ValueError("`distance` must be greater or equal to 1")
    if not wlen > 1:
        raise ValueError(f"`wlen` must be larger than 1, was {wlen}")
    peaks, _, _ = pf._local_maxima_1d(x)
    peaks = peaks[pf._select_by_peak_distance(peaks, x[peaks], distance)]
    prom, left, right = pf._peak_prominences(x, peaks, wlen=np.intp(wlen))
    keep = prominence <= prom
    peaks, prom, left, right = peaks[keep], prom[keep], left[keep], right[keep]
    widths = pf._peak_widths(x, peaks, 0.5, prom, left, right)[0]
    keep = 0 <= widths
    return peaks[keep], {"prominences": prom[keep], "widths": widths[keep]}


def butter_lowpass(order: int, cutoff: float, fs: float) -> np.ndarray:
    """``scipy.signal.butter(order, cutoff, fs=fs, output="sos")`` for an even ``order``, by
    the same steps as scipy 1.11-1.17 (``buttap``, pre-warping, ``lp2lp_zpk``,
    ``bilinear_zpk``, ``zpk2sos`` with ``pairing="nearest"``): the zeros all at -1, the poles
    in conjugate pairs, the pair nearest the unit circle in the last section."""
    if order < 2 or order % 2:
        raise ValueError(f"order must be even and >= 2, was {order}")
    fs = float(fs)
    wn = np.asarray(cutoff, dtype=np.float64) / (fs / 2)
    if not 0 < wn < 1:
        raise ValueError("Digital filter critical frequencies must be 0 < Wn < fs/2 "
                         f"(fs={fs} -> fs/2={fs / 2})")
    m = np.arange(-order + 1, order, 2, dtype=np.float64)
    p = -np.exp(1j * np.pi * m / (2 * order))  # the analog prototype (no zeros, gain 1)
    z = np.asarray([], dtype=np.float64)
    wo = float(2 * 2.0 * np.tan(np.pi * wn / 2.0))
    z, p, k = wo * z, wo * p, 1.0 * wo**order
    k = k * np.real(np.prod(4.0 - z) / np.prod(4.0 - p))
    p = (4.0 + p) / (4.0 - p)
    zeros = -np.ones(order)
    # one of each conjugate pair (with positive imaginary part), as scipy's _cplxreal
    p = p[np.lexsort((abs(p.imag), p.real))]
    tol = 100 * np.finfo(np.float64).eps
    pos, neg = p[p.imag > tol * abs(p)], p[p.imag < -tol * abs(p)]
    if len(pos) != order // 2 or len(neg) != order // 2:
        raise ValueError("poles not in conjugate pairs")
    same = np.diff(pos.real) <= tol * abs(pos[:-1])
    edges = np.diff(np.concatenate(([0], same, [0])))
    for a, b in zip(np.nonzero(edges > 0)[0], np.nonzero(edges < 0)[0] + 1, strict=True):
        for chunk in (pos[a:b], neg[a:b]):
            chunk[...] = chunk[np.lexsort([abs(chunk.imag)])]
    p = (pos + neg.conj()) / 2
    sos = np.zeros((order // 2, 6))
    for si in range(order // 2 - 1, -1, -1):
        i = np.argmin(np.abs(1 - np.abs(p)))
        p1, p = p[i], np.delete(p, i)
        pair = []
        for _ in range(2):  # the nearest zeros (all are -1, all real)
            j = np.argsort(np.abs(zeros - p1))[0]
            pair.append(zeros[j])
            zeros = np.delete(zeros, j)
        sos[si, :3] = np.multiply(np.asarray(1.0), _poly(np.asarray(pair)))
        sos[si, 3:] = np.real(_poly(np.asarray([p1, p1.conj()])))
    sos[0][:3] *= np.asarray(k).real
    return sos


def _poly(roots: np.ndarray) -> np.ndarray:
    """The monic polynomial of ``roots`` (scipy's ``_polyutils.poly``: successive
    convolutions)."""
    a = np.ones((1,), dtype=roots.dtype)
    one = np.ones_like(roots[0])
    for r in roots:
        a = np.convolve(a, np.stack((one, -r)), mode="full")
    return a


def _sosfilt_zi(sos: np.ndarray) -> np.ndarray:
    """``scipy.signal.sosfilt_zi``: each section's steady state for a unit step."""
    zi = np.empty((sos.shape[0], 2), dtype=sos.dtype)
    scale = 1.0
    for s in range(sos.shape[0]):
        b, a = sos[s, :3], sos[s, 3:]
        if a[0] != 1.0:
            b, a = b / a[0], a / a[0]
        companion = np.zeros((2, 2))
        companion[0] = -a[1:] / (1.0 * a[0:1])
        companion[1, 0] = 1
        zi[s] = scale * np.linalg.solve(np.eye(2) - companion.T, b[1:] - a[1:] * b[0])
        scale *= np.sum(sos[s, :3]) / np.sum(sos[s, 3:])
    return zi


def _sosfilt(sos: np.ndarray, x: np.ndarray, zi: np.ndarray) -> np.ndarray:
    """``scipy.signal.sosfilt(sos, x, zi=zi)[0]`` for a 1-D float64 ``x``."""
    y = np.array(x, np.float64, order="C").reshape(1, -1)
    state = np.ascontiguousarray(np.array(zi, np.float64).reshape(1, sos.shape[0], 2))
    try:
        compiled("_sosfilt")._sosfilt(sos, y, state)
    except (AttributeError, TypeError):  # another scipy's private routine: the public one
        from scipy.signal import sosfilt

        return sosfilt(sos, np.asarray(x, np.float64), zi=zi)[0]
    return y[0]


def sosfiltfilt(sos: np.ndarray, x: np.ndarray, padlen: int) -> np.ndarray:
    """``scipy.signal.sosfiltfilt(sos, x, padlen=padlen)`` for a 1-D ``x``: forwards then
    backwards from each end's steady state, on ``x`` extended by ``padlen`` samples at each end
    by odd reflection."""
    sos = np.asarray(sos, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    if x.shape[0] <= padlen:
        raise ValueError("The length of the input vector x must be greater than padlen, "
                         f"which is {padlen}.")
    ext = x
    if padlen > 0:
        ext = np.concatenate((2 * x[0:1] - x[padlen:0:-1], x,
                              2 * x[-1:] - x[-2 : -(padlen + 2) : -1]))
    zi = _sosfilt_zi(sos)
    y = _sosfilt(sos, ext, zi * ext[0:1])
    y = _sosfilt(sos, y[::-1], zi * y[-1:])[::-1]
    return y[padlen:-padlen] if padlen > 0 else y
