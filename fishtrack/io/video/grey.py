"""Turning decoded pictures into 8-bit grey (the rules are in the :mod:`fishtrack.io.video`
docstring)."""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

N_SCALE_SAMPLES = 16  # frames sampled for the 16-bit min..max rule

# limited-range (16-235) luma -> full range 0-255, identical to FFmpeg's gray conversion
LIMITED_TO_FULL = np.clip(np.floor((np.arange(256) - 16) * 255.0 / 219.0 + 0.5), 0, 255).astype(
    np.uint8
)
# the same mapping as one saturating affine transform (no value lands near a rounding tie)
LIMITED_AFFINE = np.array([[255.0 / 219.0, -16.0 * 255.0 / 219.0]], np.float32)
FULL_RANGE_FORMATS = frozenset({"yuvj420p", "yuvj422p", "yuvj444p", "yuvj440p", "yuvj411p"})
LUMA_FORMATS = frozenset(
    {
        "yuv420p",
        "yuv422p",
        "yuv444p",
        "yuv410p",
        "yuv411p",
        "yuv440p",
        "yuva420p",
        "yuva422p",
        "yuva444p",
        "nv12",
        "nv21",
        "nv16",
        "nv24",
        "nv42",
    }
)
GREY_FORMATS = frozenset({"gray", "gray8"})


class Scaler:
    """Turns a raw image (any dtype, grey or colour) into uint8 grey with one fixed rule."""

    def __init__(self, order: Literal["rgb", "bgr"]):
        self.order = order
        self.lo: float | None = None
        self.hi: float | None = None
        self.colour = False

    def grey(self, arr: np.ndarray) -> np.ndarray:
        """Grey in the source's own dtype (or float32), before any scaling."""
        a = arr
        if a.ndim == 3 and a.shape[2] == 1:
            a = a[:, :, 0]
        if a.ndim == 3:
            if a.shape[2] not in (3, 4):
                raise ValueError(f"{a.shape[2]} channels per pixel")
            if a.dtype not in (np.uint8, np.uint16, np.float32):
                a = a.astype(np.float32)
            rgb = self.order == "rgb"
            code = {
                (3, True): cv2.COLOR_RGB2GRAY,
                (3, False): cv2.COLOR_BGR2GRAY,
                (4, True): cv2.COLOR_RGBA2GRAY,
                (4, False): cv2.COLOR_BGRA2GRAY,
            }[(a.shape[2], rgb)]
            a = cv2.cvtColor(np.ascontiguousarray(a), code)
            self.colour = True
        if a.ndim != 2:
            raise ValueError(f"unexpected image shape {arr.shape}")
        if a.dtype == np.bool_:
            a = a.astype(np.uint8) * 255
        return a

    def fit(self, greys: list[np.ndarray]) -> None:
        if not greys or greys[0].dtype == np.uint8:
            return
        self.lo = float(min(float(np.nanmin(g)) for g in greys))
        self.hi = float(max(float(np.nanmax(g)) for g in greys))
        if not self.hi > self.lo:
            self.hi = self.lo + 1.0

    def to_uint8(self, g: np.ndarray) -> np.ndarray:
        if g.dtype == np.uint8:
            return g
        if self.lo is None:
            raise RuntimeError("scaler not fitted")
        scale = 255.0 / (self.hi - self.lo)
        x = (g.astype(np.float32) - np.float32(self.lo)) * np.float32(scale) + np.float32(0.5)
        np.nan_to_num(x, copy=False, nan=0.0)
        np.clip(x, 0, 255, out=x)
        return np.floor(x, out=x).astype(np.uint8)

    def rule(self, dtype: np.dtype) -> str:
        luma = "colour -> BT.601 luma; " if self.colour else ""
        if self.lo is None:
            return f"{luma}8-bit grey as stored" if not luma else f"{luma}8-bit"
        return (
            f"{luma}{np.dtype(dtype).name} scaled linearly: v8 = floor((v - {self.lo:g}) * 255 / "
            f"({self.hi:g} - {self.lo:g}) + 0.5) clipped to 0..255 (min..max of "
            f"{N_SCALE_SAMPLES} frames spread over the source)"
        )


def spread(n: int, k: int) -> list[int]:
    return sorted({int(round(x)) for x in np.linspace(0, n - 1, min(n, k))})
