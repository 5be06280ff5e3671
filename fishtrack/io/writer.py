"""Write grey-scale frame streams to video files (used by the simulator, previews and tests).

Codecs (``codec=``):

============  ==========================  ============================================
codec         container / suffix          notes
============  ==========================  ============================================
``h264``      .mp4 / .mov / .mkv          libx264, yuv420p, ``crf`` sets quality
``hevc``      .mp4 / .mkv                 libx265
``mjpg``      .avi                        Motion-JPEG, ``quality`` (2 best - 31 worst)
``ffv1``      .avi / .mkv                 lossless
``raw``       .avi                        uncompressed 8-bit grey (rawvideo gray)
``tiff``      .tif / .tiff                multi-page TIFF stack (tifffile)
``png``       a folder                    one PNG per frame, ``frame_000000.png`` ...
============  ==========================  ============================================

Frames are written in presentation order. ``write(frame, pts_s=...)`` accepts an explicit
timestamp (seconds) so variable-frame-rate files can be produced for tests. Output is written to
a temporary name next to the target and renamed when :meth:`VideoWriter.close` succeeds, so an
interrupted write never leaves a half-written file under the final name.
"""

from __future__ import annotations

import os
import shutil
import threading
from fractions import Fraction
from pathlib import Path
from typing import Literal

import numpy as np

from fishtrack.errors import VideoError

Codec = Literal["h264", "hevc", "mjpg", "ffv1", "raw", "tiff", "png"]

_AV_CODECS = {"h264": "libx264", "hevc": "libx265", "mjpg": "mjpeg", "ffv1": "ffv1", "raw": "rawvideo"}
_PIX_FMT = {"h264": "yuv420p", "hevc": "yuv420p", "mjpg": "yuvj420p", "ffv1": "gray", "raw": "gray"}
DEFAULT_SUFFIX = {
    "h264": ".mp4",
    "hevc": ".mp4",
    "mjpg": ".avi",
    "ffv1": ".avi",
    "raw": ".avi",
    "tiff": ".tif",
    "png": "",
}


class VideoWriter:
    """Stream frames (H x W uint8, or H x W x 3 BGR uint8) into a video file.

    Parameters
    ----------
    path
        Target file (or folder for ``png``).
    fps
        Nominal frame rate (Hz).
    codec
        One of the codecs in the module table.
    crf, quality
        Quality for H.264/H.265 (constant rate factor) and MJPEG (qscale).
    time_base
        Container time base for explicit timestamps (default 1/(1000*fps) when timestamps are
        given, else 1/fps).
    """

    def __init__(
        self,
        path: str | Path,
        fps: float,
        codec: Codec = "h264",
        *,
        crf: int = 18,
        quality: int = 3,
        variable_rate: bool = False,
    ):
        self.path = Path(path)
        self.fps = float(fps)
        self.codec = codec
        self.crf = crf
        self.quality = quality
        self.variable_rate = variable_rate
        self._n = 0
        self._size: tuple[int, int] | None = None
        self._tmp = self.path.with_name(f".{self.path.name}.part{os.getpid()}{self.path.suffix}")
        self._container = None
        self._stream = None
        self._tiff = None
        self._zeroed = False  # this writer holds the zero-filled heap (:func:`_zeroed_heap`)
        if codec not in DEFAULT_SUFFIX:
            raise VideoError(f"unknown codec {codec!r}; use one of {', '.join(DEFAULT_SUFFIX)}", path=self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if codec == "png":
            if self._tmp.exists():
                shutil.rmtree(self._tmp)
            self._tmp.mkdir(parents=True)

    # -- opening lazily once the frame size is known
    def _open(self, h: int, w: int) -> None:
        import av

        self._size = (h, w)
        if self.codec == "tiff":
            import tifffile

            self._tiff = tifffile.TiffWriter(self._tmp, bigtiff=False)
            return
        if self.codec == "png":
            return
        fmt = "avi" if self.path.suffix.lower() == ".avi" else None
        if self.codec in ("h264", "hevc"):
            _zeroed_heap(True)
            self._zeroed = True
        self._container = av.open(str(self._tmp), mode="w", format=fmt)
        rate = Fraction(self.fps).limit_denominator(1000)
        stream = self._container.add_stream(_AV_CODECS[self.codec], rate=rate)
        stream.width = w
        stream.height = h
        stream.pix_fmt = _PIX_FMT[self.codec]
        if self.variable_rate:
            stream.time_base = Fraction(1, 100000)
        opts: dict[str, str] = {}
        if self.codec in ("h264", "hevc"):
            opts = {"crf": str(self.crf), "preset": "veryfast"}
            if self.codec == "hevc":
                opts["x265-params"] = "log-level=error"
        elif self.codec == "mjpg":
            stream.codec_context.qscale = self.quality
            opts = {"qmin": str(self.quality), "qmax": str(self.quality)}
        stream.options = opts
        self._stream = stream

    def write(self, frame: np.ndarray, pts_s: float | None = None) -> None:
        """Append one frame; ``pts_s`` is its timestamp in seconds (variable_rate writers)."""
        import av

        if frame.dtype != np.uint8 and self.codec != "tiff":
            raise VideoError(f"frames must be uint8, got {frame.dtype}", path=self.path)
        h, w = frame.shape[:2]
        if self._size is None:
            self._open(h, w)
        elif (h, w) != self._size:
            raise VideoError(f"frame {self._n} is {w}x{h}, expected {self._size[1]}x{self._size[0]}", path=self.path)
        if self.codec == "tiff":
            if frame.ndim == 3 and frame.shape[2] in (3, 4):  # BGR(A) in, TIFF stores RGB(A)
                frame = frame[..., [2, 1, 0, 3][: frame.shape[2]]]
            self._tiff.write(np.ascontiguousarray(frame), contiguous=True)
        elif self.codec == "png":
            import cv2

            cv2.imwrite(str(self._tmp / f"frame_{self._n:06d}.png"), frame)
        else:
            if frame.ndim == 2:
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="gray")
            else:
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="bgr24")
            if self.variable_rate:
                if pts_s is None:
                    pts_s = self._n / self.fps
                vf.pts = int(round(pts_s / self._stream.time_base))
                vf.time_base = self._stream.time_base
            for packet in self._stream.encode(vf):
                self._container.mux(packet)
        self._n += 1

    def close(self) -> Path:
        """Flush, close and move the file to its final name; returns the path."""
        if self._stream is not None:
            for packet in self._stream.encode():
                self._container.mux(packet)
        if self._container is not None:
            self._container.close()
        self._release_heap()
        if self._tiff is not None:
            self._tiff.close()
        if self._n == 0:
            self.abort()
            raise VideoError("no frames were written", path=self.path)
        if self.codec == "png" and self.path.exists():
            shutil.rmtree(self.path)
        os.replace(self._tmp, self.path)
        self._container = self._stream = self._tiff = None
        return self.path

    def abort(self) -> None:
        """Discard the partial output."""
        try:
            if self._container is not None:
                self._container.close()
            if self._tiff is not None:
                self._tiff.close()
        except Exception:  # noqa: BLE001 - cleaning up after a failure
            pass
        self._release_heap()
        self._container = self._stream = self._tiff = None
        if self._tmp.is_dir():
            shutil.rmtree(self._tmp, ignore_errors=True)
        elif self._tmp.exists():
            self._tmp.unlink()

    @property
    def n_frames(self) -> int:
        return self._n

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _release_heap(self) -> None:
        if self._zeroed:
            self._zeroed = False
            _zeroed_heap(False)


_HEAP_LOCK = threading.Lock()
_HEAP_USERS = 0


def _zeroed_heap(on: bool) -> None:
    """Zero-fill every block ``malloc`` hands out while an H.264/HEVC writer is open (glibc's
    ``M_PERTURB``; reference-counted across writers; a no-op without glibc). x264's MB-tree
    rate control reads memory it has not written: with whatever the process's heap held
    (other tests before, another run) the same frames gave a different file in about one
    write of two, even single-threaded, so a simulated recording and every figure measured on
    it changed between runs (issue 12). With the heap zero-filled the file is the same every
    time, and the one such files usually were (a fresh process's memory is zero too)."""
    global _HEAP_USERS
    with _HEAP_LOCK:
        _HEAP_USERS += 1 if on else -1
        if (on and _HEAP_USERS == 1) or (not on and _HEAP_USERS == 0):
            try:
                import ctypes

                # M_PERTURB (-6): malloc fills new blocks with the byte ^ 0xff (0 for 0xff)
                ctypes.CDLL("libc.so.6").mallopt(-6, 0xFF if on else 0)
            except (OSError, AttributeError):  # not glibc
                pass


def write_video(
    path: str | Path, frames, fps: float, codec: Codec = "h264", **kw
) -> Path:
    """Write an iterable of frames; returns the final path."""
    with VideoWriter(path, fps, codec, **kw) as w:
        for f in frames:
            w.write(f)
    return Path(path)
