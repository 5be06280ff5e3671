"""Streaming video sources: containers, TIFF stacks and image folders, read as 8-bit grey.

``open_video(path, crop=None, fps=None)`` returns a :class:`VideoSource`::

    with open_video("run1.avi", crop=(0, 0, 512, 512)) as src:
        print(src.meta.n_frames, src.meta.fps)
        for chunk in src.chunks(64):
            chunk.indices, chunk.times, chunk.frames   # int64 (N,), float64 (N,), uint8 (N, H, W)
        background = np.median(src.sample(np.linspace(0, len(src) - 1, 50).astype(int)), axis=0)

Formats
-------
* Containers read with PyAV (FFmpeg): AVI (MJPG, raw, FFV1, ...), MP4/MOV/M4V, MKV, and anything
  else FFmpeg can demux and decode (H.264, H.265, ...).
* Multi-page TIFF stacks (``.tif``/``.tiff``, tifffile): every page is one frame.
* Folders of images (``.png .tif .tiff .jpg .jpeg .bmp``), in natural sort order
  (``frame_2`` before ``frame_10``, natsort); hidden files are ignored.

Grey conversion (documented rules, all tested)
----------------------------------------------
* YUV video: the luma plane is used directly (no colour conversion is computed). Limited-range
  ("TV", 16-235) luma is expanded to 0-255 with ``floor((Y - 16) * 255 / 219 + 0.5)`` clipped --
  bit-identical to FFmpeg's ``gray`` conversion (``to_ndarray(format="gray")``) and within 2 grey
  levels of OpenCV's BGR->grey; full-range (``yuvj*``, MJPEG) luma is used as is.
  Grey video (``gray``) is used as is. Anything else (RGB, palette, >8-bit YUV) goes through
  FFmpeg's ``gray`` conversion (``VideoFrame.to_ndarray(format="gray")``).
* Colour images and TIFF pages: ITU-R BT.601 luma (``cv2.cvtColor`` ``*2GRAY``); alpha is dropped.
* 16-bit (and float) TIFF/PNG: linear min..max scaling with one rule for the whole source, so that
  every frame is scaled identically (background subtraction depends on that). ``lo``/``hi`` are
  the minimum and maximum grey value of up to 16 frames spread evenly over the source (always
  including the first and the last); then ``v8 = floor((v - lo) * 255 / (hi - lo) + 0.5)``,
  clipped to 0..255 (values outside the sampled range saturate). ``meta.grey_rule`` states the
  numbers used.

Frames, times and counts
------------------------
Frame numbers are 0-based positions in presentation order of the frames the file holds, and are
never renumbered: a frame that cannot be decoded is simply absent from the chunk
(``chunk.indices`` skips it) and a :class:`DamageRecord` says why. Frames that the container's
own index lists but that cannot be read (an AVI chunk with a damaged header), and frames lost at
a cut-off end between frames that are still present (B-frames are stored after the frame that
follows them), keep their slots, so every frame after them keeps its number. ``timestamps[i]``
is the presentation time of frame ``i`` in seconds from the first frame, taken from the
container's pts (variable frame rate and dropped camera frames keep their real times). With
``fps=`` the container's times are replaced by ``i / fps`` (and timestamp gaps are no longer
reported). For containers the exact frame count and every pts come from one demux-only pass over
the packets (no decoding; it reads the whole file once, typically well under 1 % of the decode
time: ~100-200 thousand packets/s from a warm page cache). The pass runs lazily on the first use
of ``meta``, ``timestamps``, ``len()``, ``damage`` or any read, and is cached (about 40 bytes
per frame, e.g. 14 MB for one hour at 100 fps). Packets without pts
use their dts; if a stream has neither (raw elementary streams), frames are numbered in decode
order and times come from the packet durations or, failing that, from the nominal rate. TIFF
stacks count pages and image folders count files; they carry no frame rate, so ``meta.fps`` and
the timestamps are NaN unless ``fps=`` is given (ImageJ TIFFs with ``finterval`` excepted). In a
folder whose file names end in a frame counter (``img_0007.png``) with gaps, the counter gives the
times (``(counter - first counter) / fps``) and each gap is reported as ``missing_frames``.

Chunks, random access and cost
------------------------------
Decoded pictures are copied (and range-expanded) straight from FFmpeg's luma plane into
preallocated chunk arrays, which are recycled once the consumer has dropped every reference to
them. ``chunks(n)`` decodes in a background thread (PyAV releases the GIL; FFmpeg decodes with its
own frame threads) ``prefetch`` chunks ahead of the consumer, so decoding overlaps the consumer's
processing; memory is bounded by about ``(prefetch + 3) * n * H * W`` bytes whatever the video
length. A frame-threaded decoder that meets a damaged packet can drop the neighbouring frames
in flight without a word, so when a wanted frame does not come out its GOP is decoded again
single-threaded before the frame is declared undecodable. Chunk ``k`` holds the frames whose
indices lie in ``[start + k*n, start + (k+1)*n)``; a window with no decodable frame yields no
chunk.

Random access (``read``, ``read_range``, ``sample``) seeks to the last keyframe at or before the
requested frame (in both presentation and decode order) and decodes forward, matching decoded
frames to frame numbers by their pts -- never by counting after a seek, so H.264/H.265 with
B-frames and open GOPs are handled. A random read therefore costs up to one GOP of decoding
(intra-only codecs such as MJPG, FFV1, raw, TIFF and image files cost one frame). ``sample``
sorts the requested frames and decodes forward instead of seeking when the next requested frame is
in the same GOP or at most 2 frames ahead (a seek costs about as much as decoding one frame).
Demuxers differ in what a seek timestamp means (MP4 and Matroska look up presentation times,
others decode times; with B-frames a keyframe's dts lies before its pts), so the keyframe's pts
is tried first, then its dts, and the kind that lands exactly on the keyframe is remembered for the
file. If a seek lands after the wanted keyframe it is retried from an earlier keyframe, and after
three failures the file is decoded from the start. Streams without timestamps cannot seek: every
random read decodes from the first frame.

Opening a container costs about as much as decoding a frame or two (FFmpeg probes the stream), so
the handle opened by ``open_video`` is reused for the index pass and then by the first reader.

Damaged input
-------------
A truncated or partly corrupt file yields every frame that can be decoded; what was lost is
appended to ``src.damage`` (``DamageRecord(frame, kind, detail)``) and reported by a
:class:`DamagedVideoWarning` naming the file and the frames, once per record, at the end of the
read that found it. Kinds:

* ``truncated`` -- the file ends before the length its header declares; ``frame`` is the first
  frame number past the last one in the file (``n_frames``), or a packet cut short by the end.
* ``corrupt_packet`` -- the demuxer flagged a packet as damaged or could not parse part of the
  file, or the decoder reported errors in a picture. Such frames are not returned: a picture
  known to be wrong would mislead the tracker. (Frames that depend on a damaged one until the next
  keyframe may carry artefacts the decoder does not report.)
* ``undecodable_frame`` -- the decoder produced no picture for this frame (it is skipped), or an
  image file in a folder cannot be read (skipped, not fatal).
* ``missing_frames`` -- frames absent from the file: a gap in the timestamps longer than 1.5
  nominal frame intervals (dropped camera frames), a packet listed in the container index whose
  data cannot be read, a gap in an image folder's frame counter, or a part of the file after
  unreadable data.

An MP4 cut off inside a box (fragmented MP4 from robust recorders) is read up to its last complete
box. Not recovered: data the container does not index that follows unreadable bytes (e.g. a
damaged Matroska cluster ends the stream there; reported as ``missing_frames``).

Every retry loop is bounded, so a damaged file never hangs the reader. What cannot be read at all
raises :class:`fishtrack.errors.VideoError` with a one-line message naming the file: missing,
empty or unreadable file, not a video, no video stream, unsupported codec, an MP4/MOV whose index
(``moov`` atom) is missing because the recording was cut off, a folder without images, a TIFF
whose pages change shape, or an image in a folder whose size differs from the first image (fatal:
frames of different sizes cannot be tracked together). FFmpeg's own exceptions never escape.
"""

from __future__ import annotations

import io
import math
import os
import queue
import re
import sys
import threading
import time
import warnings
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from fishtrack.errors import VideoError

__all__ = [
    "open_video",
    "VideoSource",
    "VideoMeta",
    "Chunk",
    "DamageRecord",
    "DamageKind",
    "DamagedVideoWarning",
    "IMAGE_SUFFIXES",
    "TIFF_SUFFIXES",
]

DamageKind = Literal["truncated", "corrupt_packet", "undecodable_frame", "missing_frames"]

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")
TIFF_SUFFIXES = (".tif", ".tiff")

_MAX_DEMUX_RETRIES = 32  # demux restarts after errors, per pass
_MAX_SEEK_ATTEMPTS = 3  # seeks to ever earlier keyframes before decoding from the start
_SEEK_MIN_GAP = 2  # seek forward only when it skips more than this many frames (measured:
# a seek costs less than decoding three frames, for MJPG and for frame-threaded H.264)
_MAX_SAFE_RETRIES = 64  # single-threaded re-decodes of a GOP after a lost frame, per read
_GAP_FACTOR = 1.5  # a timestamp gap longer than this many nominal intervals = missing frames
_N_SCALE_SAMPLES = 16  # frames sampled for the 16-bit min..max rule
_MP4_SUFFIXES = (".mp4", ".mov", ".m4v", ".3gp")
_NONE = -(2**63)  # "no timestamp" in the packet columns

# limited-range (16-235) luma -> full range 0-255, identical to FFmpeg's gray conversion
_LIMITED_TO_FULL = np.clip(np.floor((np.arange(256) - 16) * 255.0 / 219.0 + 0.5), 0, 255).astype(
    np.uint8
)
# the same mapping as one saturating affine transform (no value lands near a rounding tie)
_LIMITED_AFFINE = np.array([[255.0 / 219.0, -16.0 * 255.0 / 219.0]], np.float32)
_FULL_RANGE_FORMATS = frozenset({"yuvj420p", "yuvj422p", "yuvj444p", "yuvj440p", "yuvj411p"})
_LUMA_FORMATS = frozenset(
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
_GREY_FORMATS = frozenset({"gray", "gray8"})


class DamagedVideoWarning(UserWarning):
    """A video was read only in part: see ``VideoSource.damage`` for where and why."""


@dataclass(frozen=True)
class DamageRecord:
    """One place where a video is damaged.

    Attributes
    ----------
    frame
        First frame number affected (0-based); for ``truncated`` the first frame number past the
        end of what the file holds.
    kind
        ``"truncated"``, ``"corrupt_packet"``, ``"undecodable_frame"`` or ``"missing_frames"``.
    detail
        One human-readable line.
    """

    frame: int
    kind: DamageKind
    detail: str

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for ``provenance.json``."""
        return asdict(self)


@dataclass(frozen=True)
class VideoMeta:
    """What a source holds.

    Attributes
    ----------
    path
        The file or folder.
    n_frames
        Exact number of frames (see ``frame_count_method``).
    fps
        Nominal frame rate in Hz (the ``fps=`` override if given, else the container's rate;
        NaN when unknown, e.g. a TIFF stack without rate). Per-frame times are in
        ``VideoSource.timestamps``.
    width, height
        Frame size in px after the crop.
    codec
        Codec name (``h264``, ``mjpeg``, ``ffv1``, ``rawvideo``, ``tiff``, ``png`` ...).
    duration_s
        From the start of the first frame to the end of the last: ``timestamps[-1] + 1 / fps``.
    frame_count_method
        How ``n_frames`` was obtained: ``"demuxed packets"``, ``"tiff pages"`` or
        ``"image files"``.
    time_source
        Where the timestamps come from: ``"container pts"``, ``"container dts"``,
        ``"packet durations"``, ``"nominal frame rate"``, ``"fps override"``,
        ``"file name counter"``, ``"imagej finterval"`` or ``"unknown"``.
    grey_rule
        How frames were turned into 8-bit grey (see the module docstring).
    """

    path: Path
    n_frames: int
    fps: float
    width: int
    height: int
    codec: str
    duration_s: float
    frame_count_method: str
    time_source: str = "container pts"
    grey_rule: str = ""


@dataclass(frozen=True)
class Chunk:
    """Consecutive decoded frames.

    Attributes
    ----------
    indices
        int64 (N,) frame numbers, strictly increasing (gaps where frames could not be decoded).
    times
        float64 (N,) seconds from the first frame.
    frames
        uint8 (N, H, W) grey frames (cropped if a crop was given).
    """

    indices: np.ndarray
    times: np.ndarray
    frames: np.ndarray

    def __len__(self) -> int:
        return int(self.indices.shape[0])


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    msg = text[0] if text else type(exc).__name__
    return re.sub(r"^\[Errno -?\d+\]\s*", "", msg)


def _is_av_error(exc: BaseException) -> bool:
    mod = type(exc).__module__ or ""
    return mod == "av" or mod.startswith("av.") or isinstance(exc, OSError)


class _Info:
    """What the lazy index pass learns about a source (backend-independent)."""

    def __init__(
        self,
        *,
        n: int,
        times: np.ndarray,
        fps: float,
        width: int,
        height: int,
        codec: str,
        count_method: str,
        time_source: str,
        grey_rule: str,
        damage: list[DamageRecord],
        gap_damage: list[DamageRecord] | None = None,
    ):
        self.n = n
        self.times = times
        self.fps = fps
        self.width = width
        self.height = height
        self.codec = codec
        self.count_method = count_method
        self.time_source = time_source
        self.grey_rule = grey_rule
        self.damage = damage
        self.gap_damage = gap_damage or []  # timestamp gaps; moot when fps= overrides times


def _gap_damage(times: np.ndarray, fps: float) -> list[DamageRecord]:
    """``missing_frames`` records for timestamp gaps longer than 1.5 nominal intervals."""
    if not (np.isfinite(fps) and fps > 0) or times.size < 2:
        return []
    dt = np.diff(times)
    interval = 1.0 / fps
    out = []
    for i in np.flatnonzero(dt > _GAP_FACTOR * interval):
        k = max(1, int(round(dt[i] / interval)) - 1)
        out.append(
            DamageRecord(
                int(i + 1),
                "missing_frames",
                f"{dt[i]:.4g} s without a frame before frame {i + 1} (~{k} frame(s) missing at "
                f"{fps:.6g} fps)",
            )
        )
    return out


class _Scaler:
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
            f"{_N_SCALE_SAMPLES} frames spread over the source)"
        )


def _spread(n: int, k: int) -> list[int]:
    return sorted({int(round(x)) for x in np.linspace(0, n - 1, min(n, k))})


# --------------------------------------------------------------------------------------------
# PyAV (FFmpeg) containers
# --------------------------------------------------------------------------------------------


def _mp4_boxes(path: Path) -> list[tuple[bytes, int, int]]:
    """Top-level ISO-BMFF boxes ``(type, start, size)``; the last may run past the end."""
    out: list[tuple[bytes, int, int]] = []
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            pos = 0
            for _ in range(100000):
                if pos + 8 > size:
                    break
                fh.seek(pos)
                head = fh.read(16)
                box_size = int.from_bytes(head[:4], "big")
                box_type = head[4:8]
                if box_size == 1 and len(head) >= 16:
                    box_size = int.from_bytes(head[8:16], "big")
                elif box_size == 0:
                    box_size = size - pos
                if box_size < 8 or not box_type.isalnum() and box_type != b"free":
                    break
                out.append((box_type, pos, box_size))
                pos += box_size
    except OSError:
        return []
    return out


def _mp4_missing_moov(path: Path) -> bool:
    """True when an ISO-BMFF file has media data but no ``moov`` box (recording cut off)."""
    types = {b[0] for b in _mp4_boxes(path)}
    return b"ftyp" in types and b"moov" not in types and bool(types & {b"mdat", b"free", b"wide"})


def _mp4_complete_prefix(path: Path) -> int | None:
    """End of the last complete top-level box when the file ends inside a box, else None."""
    boxes = _mp4_boxes(path)
    try:
        size = path.stat().st_size
    except OSError:
        return None
    if len(boxes) < 2 or boxes[-1][1] + boxes[-1][2] <= size:
        return None
    return boxes[-1][1]


class _LimitedFile(io.RawIOBase):
    """A read-only view of the first ``limit`` bytes of a file (opens cut-off MP4 fragments)."""

    def __init__(self, path: Path, limit: int):
        self._fh = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._limit = limit
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = max(0, min(len(b), self._limit - self._pos))
        if n == 0:
            return 0
        self._fh.seek(self._pos)
        data = self._fh.read(n)
        b[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._limit}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        if not self.closed:
            self._fh.close()
        super().close()


def _av_open(path: Path, limit: int | None = None):
    import av

    try:
        if limit is not None:
            return av.open(_LimitedFile(path, limit), mode="r", format=None)
        return av.open(str(path), mode="r")
    except Exception as exc:  # noqa: BLE001 - every FFmpeg failure becomes a VideoError
        if path.suffix.lower() in _MP4_SUFFIXES and _mp4_missing_moov(path):
            raise VideoError(
                "MP4/MOV index ('moov' atom) is missing - the recording was probably cut off; "
                "its frames cannot be located",
                path=path,
            ) from None
        if isinstance(exc, PermissionError):
            raise VideoError("permission denied", path=path) from None
        why = _one_line(exc).replace(f": '{path}'", "")  # FFmpeg repeats the file name
        raise VideoError(f"not a readable video file (FFmpeg: {why})", path=path) from None


def _av_open_recovering(path: Path) -> tuple[Any, int | None]:
    """Open a container; an MP4 cut inside a box is opened up to its last complete box."""
    try:
        return _av_open(path), None
    except VideoError:
        limit = _mp4_complete_prefix(path) if path.suffix.lower() in _MP4_SUFFIXES else None
        if limit is None or _mp4_missing_moov(path):
            raise
        try:
            return _av_open(path, limit), limit
        except VideoError:
            pass
        raise


class _AVIndex:
    """Per-frame (presentation order) tables of a container stream."""

    def __init__(self, keys, dec, seek_ts, is_key, has_packet, ordinal):
        self.keys = keys  # int64 pts (or dts) in stream time base; 0..n-1 in ordinal mode
        self.dec = dec  # int64 decode-order ordinal of the frame's packet, -1 if none
        self.seek_ts = seek_ts  # int64 timestamp to seek to this frame's packet (dts or pts)
        self.is_key = is_key  # bool keyframe packet
        self.has_packet = has_packet  # bool a readable packet exists
        self.ordinal = ordinal  # True: no timestamps; frames numbered in decode order
        self.key_slots = np.flatnonzero(is_key & has_packet)
        self.n = int(keys.shape[0])
        # (entry positions, entry timestamps): packets get their timestamps from the container
        # index by byte position (demuxers that renumber after a lost chunk)
        self.retime: tuple[np.ndarray, np.ndarray] | None = None

    def retime_packet(self, pkt) -> None:
        if self.retime is None or not pkt.size or pkt.pos is None or pkt.pos < 0:
            return
        e_pos, e_ts = self.retime
        j = int(np.searchsorted(e_pos, pkt.pos, side="right")) - 1
        if j >= 0 and pkt.pos - e_pos[j] <= 16:
            pkt.pts = int(e_ts[j])
            pkt.dts = int(e_ts[j])

    def slot_of(self, key: int | None, hint: int = -1) -> int | None:
        """Slot (frame number) of timestamp ``key``; ``hint`` is the likely answer (checked)."""
        if key is None or self.n == 0:
            return None
        if 0 <= hint < self.n and self.keys[hint] == key:  # frames come out in order
            return hint
        i = int(np.searchsorted(self.keys, key))
        if i < self.n and self.keys[i] == key:
            return i
        return None

    def keyframe_for(self, t: int) -> int | None:
        """Keyframe slot to start decoding from to reach frame ``t`` (None: from the start)."""
        if self.ordinal or self.key_slots.size == 0:
            return None
        cand = self.key_slots[self.key_slots <= t]
        if cand.size == 0:
            return None
        ref = self.dec[t] if self.has_packet[t] else None
        if ref is None or ref < 0:
            before = np.flatnonzero(self.has_packet[: t + 1])
            ref = self.dec[before[-1]] if before.size else 0
        ok = cand[self.dec[cand] <= ref]
        if ok.size == 0:
            return None
        return int(ok[np.argmax(self.dec[ok])])

    def keyframe_before(self, k: int) -> int | None:
        """The keyframe preceding keyframe slot ``k`` in decode order."""
        ks = self.key_slots
        earlier = ks[self.dec[ks] < self.dec[k]]
        if earlier.size == 0:
            return None
        return int(earlier[np.argmax(self.dec[earlier])])


def _lost_tail_keys(keys: np.ndarray, dec: np.ndarray, has_pk: np.ndarray) -> np.ndarray:
    """Timestamps of frames lost at the end of a truncated file with reordered (B-)frames.

    Packets after the cut are missing in decode order; with B-frames some of them belong between
    frames that are present (a P-frame is stored before the B-frames it follows on screen). They
    are found as timestamp gaps among the last few frames (as many as the stream's reordering
    depth) and get slots, so that the frames around them keep their numbers.
    """
    n = keys.size
    ok = has_pk & (dec >= 0)
    if n < 3 or ok.sum() < 3:
        return np.zeros(0, np.int64)
    delay = dec[ok] - np.flatnonzero(ok)
    depth = int(max(delay.max(), -delay.min()))
    if depth == 0:
        return np.zeros(0, np.int64)
    d = np.diff(keys)
    step = float(np.median(d))
    if step <= 0:
        return np.zeros(0, np.int64)
    out = []
    for i in range(max(0, n - depth - 2), n - 1):
        k = int(round(d[i] / step))
        if d[i] > 1.5 * step:
            out += [int(keys[i] + round(j * d[i] / k)) for j in range(1, k)]
    return np.array(sorted(set(out) - set(keys.tolist())), np.int64)


class _AVBackend:
    """Containers read with PyAV."""

    kind = "av"

    def __init__(self, path: Path):
        self.path = path
        c, self.limit = _av_open_recovering(path)
        try:
            if not c.streams.video:
                kinds = sorted({s.type for s in c.streams}) or ["none"]
                raise VideoError(
                    f"contains no video stream (streams: {', '.join(kinds)})", path=path
                )
            s = c.streams.video[0]
            self.stream_index = s.index
            cc = s.codec_context
            if cc is None:
                raise VideoError(
                    "unsupported codec: this FFmpeg build has no decoder for its video stream",
                    path=path,
                )
            self.codec = cc.name
            self.pix_fmt = cc.pix_fmt or ""
            self.width = int(cc.width or 0)
            self.height = int(cc.height or 0)
            self.time_base = Fraction(s.time_base) if s.time_base else Fraction(1, 1000)
            self.rate = self._nominal_rate(s)
            self.format_name = c.format.name if c.format else ""
            self.declared_frames = int(s.frames or 0)
            self.stream_duration = (
                float(s.duration * s.time_base) if s.duration and s.time_base else None
            )
            self.container_duration = float(c.duration) / 1e6 if c.duration else None
            probed = self.width <= 0 or self.height <= 0
            if probed:
                self.width, self.height = self._probe_size(c, s)
        except VideoError:
            c.close()
            raise
        except Exception as exc:  # noqa: BLE001
            c.close()
            raise VideoError(
                f"cannot read the video stream ({_one_line(exc)})", path=path
            ) from None
        # Opening a container costs as much as decoding a frame or two (FFmpeg probes the
        # stream), so one open handle is passed on: probe -> index pass -> first reader.
        self._spare_lock = threading.Lock()
        self._spare = None
        if probed:
            c.close()  # packets were consumed to learn the size: the index pass starts afresh
        else:
            self._spare = c
        self.file_size = self.limit if self.limit is not None else path.stat().st_size
        self._info: _Info | None = None
        self.index: _AVIndex | None = None
        self.seek_by = "pts"  # which keyframe timestamp this demuxer seeks by (learned)

    def take_container(self):
        """The open container left over from the previous step (None if there is none)."""
        with self._spare_lock:
            c, self._spare = self._spare, None
        return c

    def _give_container(self, c) -> None:
        with self._spare_lock:
            old, self._spare = self._spare, c
        if old is not None:
            _close_quietly(old)

    @staticmethod
    def _nominal_rate(s) -> float:
        for r in (getattr(s, "guessed_rate", None), s.average_rate, s.base_rate):
            try:
                if r is not None and float(r) > 0 and math.isfinite(float(r)) and float(r) < 1e5:
                    return float(r)
            except (TypeError, ZeroDivisionError):
                continue
        return float("nan")

    def _probe_size(self, c, s) -> tuple[int, int]:
        try:
            for n_pk, pkt in enumerate(c.demux(s)):
                if n_pk > 64:
                    break
                try:
                    for frame in pkt.decode():
                        return int(frame.width), int(frame.height)
                except Exception:  # noqa: BLE001 - try the next packet
                    continue
        except Exception:  # noqa: BLE001
            pass
        raise VideoError("no decodable frame found to learn the frame size", path=self.path)

    # -- the index pass ---------------------------------------------------------------------
    def info(self, fps: float | None = None) -> _Info:
        if self._info is None:
            self._info = self._scan()
        return self._info

    def _scan(self) -> _Info:  # noqa: C901 - one linear pass with its bookkeeping
        path = self.path
        c = self.take_container() or _av_open(path, self.limit)
        clean = False  # demuxed to the end without an error: the handle can be reused
        damage: list[DamageRecord] = []
        # compact per-packet columns (8 bytes a value): the pass stays small for long videos
        pts_l = array("q")
        dts_l = array("q")
        pos_l = array("q")
        size_l = array("q")
        dur_l = array("q")
        key_l = bytearray()
        corrupt_l = bytearray()
        demux_error: str | None = None
        try:
            s = c.streams[self.stream_index]
            errors = 0
            while True:
                n_before = len(pts_l)
                try:
                    for pkt in c.demux(s):
                        if not pkt.size:
                            continue
                        pts, dts, ppos = pkt.pts, pkt.dts, pkt.pos
                        pts_l.append(_NONE if pts is None else pts)
                        dts_l.append(_NONE if dts is None else dts)
                        pos_l.append(-1 if ppos is None else ppos)
                        size_l.append(pkt.size)
                        dur_l.append(pkt.duration or 0)
                        key_l.append(pkt.is_keyframe)
                        corrupt_l.append(pkt.is_corrupt)
                    break
                except Exception as exc:  # noqa: BLE001
                    if not _is_av_error(exc):
                        raise
                    errors += 1
                    demux_error = _one_line(exc)
                    if errors >= _MAX_DEMUX_RETRIES or len(pts_l) == n_before:
                        break
            clean = demux_error is None
            e_cols = (array("q"), array("q"), array("q"))
            try:
                for e in s.index_entries:
                    if e.size > 0 and e.pos >= 0:
                        e_cols[0].append(e.pos)
                        e_cols[1].append(e.timestamp)
                        e_cols[2].append(e.size)
            except Exception:  # noqa: BLE001 - the index is optional information
                e_cols = (array("q"), array("q"), array("q"))
        finally:
            if clean:  # the first reader seeks it back to its first keyframe
                self._give_container(c)
            else:
                _close_quietly(c)

        n_pk = len(pts_l)
        if n_pk == 0:
            self.close()
            why = f" (FFmpeg: {demux_error})" if demux_error else ""
            raise VideoError(f"contains no readable video frames{why}", path=path)

        pts_a = np.frombuffer(pts_l, np.int64)
        dts_a = np.frombuffer(dts_l, np.int64)
        has_pts, has_dts = pts_a != _NONE, dts_a != _NONE
        ordinal = False
        time_source = "container pts"
        if has_pts.all():
            keys = pts_a.copy()
        elif (has_pts | has_dts).all():
            keys = np.where(has_pts, pts_a, dts_a)
            time_source = "container dts" if not has_pts.any() else "container pts"
        else:
            ordinal = True
            keys = np.arange(n_pk, dtype=np.int64)
        dts_arr = np.where(has_dts, dts_a, -(2**62))
        pos = np.frombuffer(pos_l, np.int64).copy()
        sizes = np.frombuffer(size_l, np.int64).copy()
        dur_all = np.frombuffer(dur_l, np.int64).copy()
        dec_all = np.arange(n_pk, dtype=np.int64)
        has_pk = np.ones(n_pk, bool)
        is_key = np.frombuffer(key_l, np.uint8).astype(bool)
        corrupt = np.frombuffer(corrupt_l, np.uint8).astype(bool)
        del pts_l, dts_l, pos_l, size_l, dur_l, key_l, corrupt_l

        # Demuxers that number packets by counting (AVI) renumber everything after a chunk they
        # could not parse. When the container index lists every packet by byte position, take the
        # frame timestamps from it instead, and keep a slot for each listed packet that is lost.
        lost_keys = np.zeros(0, np.int64)
        retime = None
        if not ordinal and len(e_cols[0]) >= n_pk:
            e_pos = np.frombuffer(e_cols[0], np.int64)
            e_ts = np.frombuffer(e_cols[1], np.int64)
            e_end = e_pos + np.frombuffer(e_cols[2], np.int64)
            no_reorder = bool(np.all(~has_pts | ~has_dts | (pts_a == dts_a)))
            uniq = np.unique(e_pos).size == e_pos.size
            if no_reorder and uniq and (pos >= 0).all():
                # an entry may point at the chunk header a few bytes before the packet data
                order = np.argsort(e_pos)
                j = np.searchsorted(e_pos[order], pos, side="right") - 1
                gap = pos - e_pos[order][np.clip(j, 0, None)]
                found = (j >= 0) & (gap >= 0) & (gap <= 16)
                if found.all() and np.unique(j).size == j.size:
                    matched_ts = e_ts[order][j]
                    if not np.array_equal(matched_ts, keys):
                        keys = matched_ts
                        retime = (e_pos[order], e_ts[order])
                    in_file = e_end <= self.file_size
                    seen = np.zeros(e_pos.size, bool)
                    seen[order[j]] = True
                    lost_keys = e_ts[(~seen) & in_file]

        if lost_keys.size:
            keys = np.concatenate([keys, lost_keys])
            dec_all = np.concatenate([dec_all, np.full(lost_keys.size, -1, np.int64)])
            dts_arr = np.concatenate([dts_arr, lost_keys])
            is_key = np.concatenate([is_key, np.zeros(lost_keys.size, bool)])
            has_pk = np.concatenate([has_pk, np.zeros(lost_keys.size, bool)])
            corrupt = np.concatenate([corrupt, np.zeros(lost_keys.size, bool)])
            pos = np.concatenate([pos, np.full(lost_keys.size, -1, np.int64)])
            sizes = np.concatenate([sizes, np.zeros(lost_keys.size, np.int64)])

        # presentation order; duplicated timestamps keep their first packet
        dur_arr = np.concatenate([dur_all, np.zeros(keys.size - n_pk, np.int64)])
        order = np.argsort(keys, kind="stable")
        keys_sorted = keys[order]
        first = np.ones(keys_sorted.size, bool)
        first[1:] = keys_sorted[1:] != keys_sorted[:-1]
        n_dup = int((~first).sum())
        # frame number of the first repeated timestamp (the frame its packet duplicates)
        dup_frame = int(np.cumsum(first)[np.flatnonzero(~first)[0]] - 1) if n_dup else 0
        order = order[first]
        keys = keys[order]
        dec = dec_all[order]
        seek_ts = np.where(dts_arr[order] > -(2**62), dts_arr[order], keys)
        is_key = is_key[order]
        has_pk = has_pk[order]
        corrupt = corrupt[order]
        pos = pos[order]
        sizes = sizes[order]
        durs = dur_arr[order]
        fps = self.rate
        tb = float(self.time_base)

        # ---- does the file hold less than its header declares?
        lost_start = None if ordinal else self._lost_start(keys, fps, tb)
        trunc = None if ordinal else self._truncation(
            keys, durs, pos, sizes, fps, tb, start_s=lost_start[0] if lost_start else 0.0
        )
        last_dec_slot = int(np.argmax(dec))
        cut_short = bool(corrupt[last_dec_slot]) and (
            pos[last_dec_slot] < 0
            or pos[last_dec_slot] + sizes[last_dec_slot] >= self.file_size - 64
        )
        tail_keys = np.zeros(0, np.int64)
        if not ordinal and (cut_short or (trunc is not None and trunc[0] == "truncated")):
            tail_keys = _lost_tail_keys(keys, dec, has_pk)
        if tail_keys.size:
            m = tail_keys.size
            keys = np.concatenate([keys, tail_keys])
            order = np.argsort(keys, kind="stable")
            keys = keys[order]
            dec = np.concatenate([dec, np.full(m, -1, np.int64)])[order]
            seek_ts = np.concatenate([seek_ts, tail_keys])[order]
            is_key = np.concatenate([is_key, np.zeros(m, bool)])[order]
            has_pk = np.concatenate([has_pk, np.zeros(m, bool)])[order]
            corrupt = np.concatenate([corrupt, np.zeros(m, bool)])[order]
            pos = np.concatenate([pos, np.full(m, -1, np.int64)])[order]
            sizes = np.concatenate([sizes, np.zeros(m, np.int64)])[order]
        n = int(keys.size)
        # packets the demuxer flags as damaged are not decoded: their frames are reported instead
        self.index = _AVIndex(keys, dec, seek_ts, is_key, has_pk & ~corrupt, ordinal)
        self.index.retime = retime

        if ordinal:
            d = dur_all.astype(np.float64)
            if d.size and (d > 0).all():
                times = np.concatenate([[0.0], np.cumsum(d[:-1])]) * tb
                time_source = "packet durations"
            else:
                times = np.arange(n, dtype=np.float64) / fps
                time_source = "nominal frame rate"
        else:
            times = (keys - keys[0]).astype(np.float64) * tb

        # ---- damage found by the index pass
        if n_dup:
            damage.append(
                DamageRecord(
                    dup_frame,
                    "corrupt_packet",
                    f"{n_dup} packet(s) repeat another packet's timestamp (first: frame "
                    f"{dup_frame}); ignored",
                )
            )
        tail_set = set(tail_keys.tolist())
        for slot in np.flatnonzero(~has_pk):
            if int(keys[slot]) in tail_set:
                damage.append(
                    DamageRecord(
                        int(slot),
                        "truncated",
                        "frame lost with the end of the file (its packet follows the cut in "
                        "decode order)",
                    )
                )
            else:
                damage.append(
                    DamageRecord(
                        int(slot),
                        "missing_frames",
                        "the container index lists this frame but its packet cannot be read",
                    )
                )
        last_dec_slot = int(np.argmax(dec))
        for slot in np.flatnonzero(corrupt):
            at_end = slot == last_dec_slot and cut_short
            kind: DamageKind = "truncated" if at_end else "corrupt_packet"
            what = (
                "cut short by the end of the file" if at_end else "flagged corrupt by the demuxer"
            )
            damage.append(DamageRecord(int(slot), kind, f"packet {what}"))
        if demux_error is not None:
            last_end = int((pos + sizes).max()) if (pos >= 0).any() else -1
            damage.append(
                DamageRecord(
                    n,
                    "corrupt_packet",
                    f"demuxing stopped with an error after byte {last_end} of {self.file_size}: "
                    f"{demux_error}",
                )
            )
        if lost_start is not None:
            damage.append(DamageRecord(0, "missing_frames", lost_start[1]))
        no_container = self._container_unreadable()
        if no_container is not None:
            damage.append(DamageRecord(0, "corrupt_packet", no_container))
        if trunc is not None:
            damage.append(DamageRecord(n, trunc[0], trunc[1]))
        if self.limit is not None:
            full = path.stat().st_size
            damage.append(
                DamageRecord(
                    n,
                    "truncated",
                    f"the file ends inside an MP4 box; read up to byte {self.limit} of {full}",
                )
            )
        gaps = [] if ordinal else _gap_damage(times, fps)

        grey = self._grey_rule()
        return _Info(
            n=n,
            times=times,
            fps=fps,
            width=self.width,
            height=self.height,
            codec=self.codec,
            count_method="demuxed packets",
            time_source=time_source,
            grey_rule=grey,
            damage=damage,
            gap_damage=gaps,
        )

    _CONTAINER_SUFFIXES = {".avi": "AVI", ".mp4": "MP4", ".mov": "MOV", ".m4v": "MP4",
                           ".mkv": "Matroska", ".webm": "WebM"}

    def _container_unreadable(self) -> str | None:
        """A file named like a container that FFmpeg could only read as a bare stream of
        pictures (its header is damaged): the times then come from a default rate and lost
        frames cannot be seen."""
        fmt = self.format_name or ""
        kind = self._CONTAINER_SUFFIXES.get(self.path.suffix.lower())
        bare = fmt in ("mjpeg", "h264", "hevc", "mpegvideo", "m4v", "rawvideo", "image2",
                       "image2pipe", "mpjpeg") or fmt.endswith("_pipe")
        if kind is None or not bare:
            return None
        return (
            f"the {kind} header cannot be read: FFmpeg found only a bare {fmt} stream, so frame "
            "times come from a default rate and lost frames cannot be detected; set video.fps "
            "to the recording's frame rate"
        )

    def _lost_start(self, keys, fps, tb) -> tuple[float, str] | None:
        """Matroska timestamps start at 0: a first frame later than that means the start of
        the file could not be read (frames before it are lost; times still count from the first
        frame the file holds). Other containers may start at any time, so are not judged."""
        fmt = self.format_name or ""
        if "matroska" not in fmt or not keys.size or not (np.isfinite(fps) and fps > 0):
            return None
        t0 = float(keys[0]) * tb
        if t0 <= 1.5 / fps:
            return None
        k = max(1, int(round(t0 * fps)))
        return t0, (
            f"the first frame in the file is at {t0:.3f} s of the recording, not 0: ~{k} "
            "frame(s) before it are lost (damaged start of the file); times count from this "
            "frame"
        )

    def _truncation(
        self, keys, durs, pos, sizes, fps, tb, start_s: float = 0.0
    ) -> tuple[DamageKind, str] | None:
        """Compare what the file holds with the length its header declares (``start_s``:
        seconds lost before the first frame, not missing at the end)."""
        if not (np.isfinite(fps) and fps > 0):
            return None
        fmt = self.format_name or ""
        if "avi" in fmt and self.declared_frames > 0:
            expected = self.declared_frames * tb  # AVI: stream length in time-base units
        else:
            expected = self.stream_duration or self.container_duration
        if expected is None:
            return None
        interval = 1.0 / fps
        last_dur = float(durs[-1]) * tb if durs[-1] > 0 else interval
        covered = float(keys[-1] - keys[0]) * tb + last_dur + start_s
        missing_s = expected - covered
        if ("mov" in fmt or "mp4" in fmt) and self.declared_frames > keys.size:
            # MP4/MOV state an exact sample count
            missing_s = max(missing_s, (self.declared_frames - keys.size) * interval)
        if missing_s <= 0.75 * interval:
            return None
        k = max(1, int(round(missing_s / interval)))
        last_end = int((pos + sizes).max()) if (pos >= 0).any() else -1
        near_eof = last_end < 0 or last_end >= self.file_size - max(4096, self.file_size // 50)
        if near_eof:
            return (
                "truncated",
                f"file ends early: the header declares {expected:.3f} s but frames stop at "
                f"{covered:.3f} s (~{k} frame(s) missing)",
            )
        return (
            "missing_frames",
            f"unreadable data after byte {last_end} of {self.file_size}: frames stop at "
            f"{covered:.3f} s of the {expected:.3f} s the header declares (~{k} frame(s) lost)",
        )

    def _grey_rule(self) -> str:
        f = self.pix_fmt
        if f in _GREY_FORMATS:
            return "8-bit grey as stored"
        if f in _FULL_RANGE_FORMATS:
            return "full-range luma (Y) as stored"
        if f in _LUMA_FORMATS:
            return "luma (Y); limited range 16-235 expanded to 0-255 unless flagged full range"
        return f"FFmpeg gray conversion from {f or 'unknown pixel format'}"

    def reader(self, report) -> _AVReader:
        self.info()
        return _AVReader(self, report)

    def close(self) -> None:
        c = self.take_container()
        if c is not None:
            _close_quietly(c)


def _luma_view(frame) -> tuple[np.ndarray, np.ndarray | None]:
    """A view of the frame's grey/luma plane and the LUT to apply (None: use as is)."""
    name = frame.format.name
    if name in _GREY_FORMATS or name in _LUMA_FORMATS or name in _FULL_RANGE_FORMATS:
        plane = frame.planes[0]
        h, w = frame.height, frame.width
        buf = np.frombuffer(plane, np.uint8)
        view = buf[: plane.line_size * h].reshape(h, plane.line_size)[:, :w]
        if name in _GREY_FORMATS or name in _FULL_RANGE_FORMATS:
            return view, None
        if int(getattr(frame, "color_range", 0) or 0) == 2:  # AVCOL_RANGE_JPEG
            return view, None
        return view, _LIMITED_TO_FULL
    return frame.to_ndarray(format="gray"), None


class _SeekFailed(Exception):
    """The demuxer cannot seek this file: decode from the start instead."""


class _AVReader:
    """Decodes frames of one container for one thread.

    Decoding normally uses FFmpeg's frame threads. A frame-threaded decoder that meets a damaged
    packet can silently drop the neighbouring frames that were in flight, so when a wanted frame
    does not come out, that GOP is decoded again with a single-threaded decoder (a second handle)
    before the frame is declared undecodable; threaded decoding resumes at the next keyframe.
    """

    def __init__(self, backend: _AVBackend, report):
        self.b = backend
        self.idx = backend.index
        self.report = report  # callable(DamageRecord)
        self.n_decoded = 0  # pictures decoded so far (cost accounting, tests)
        self.last_error = ""
        self._handles: dict[bool, Any] = {}  # safe (single-threaded) flag -> (container, stream)
        self._handle(False)

    def _handle(self, safe: bool, *, reopen: bool = False):
        h = self._handles.get(safe)
        if h is not None and not reopen:
            return h
        if h is not None:
            _close_quietly(h[0])
        # the index pass's handle (demuxed to the end, never decoded: the first session seeks it
        # like a fresh one); a restart from the very start (reopen) always opens afresh
        c = None if reopen else self.b.take_container()
        if c is None:
            c = _av_open(self.b.path, self.b.limit)
        s = c.streams[self.b.stream_index]
        try:
            s.codec_context.thread_type = "NONE" if safe else "AUTO"
        except Exception:  # noqa: BLE001 - threading is an optimisation
            pass
        self._handles[safe] = (c, s)
        return c, s

    def close(self) -> None:
        for h in self._handles.values():
            _close_quietly(h[0])
        self._handles = {}

    # -- packets and frames -------------------------------------------------------------------
    @staticmethod
    def _packets(c, s) -> Iterator:
        errors = 0
        while True:
            try:
                yield from c.demux(s)
                return
            except Exception as exc:  # noqa: BLE001
                if not _is_av_error(exc):
                    raise
                errors += 1
                if errors >= _MAX_DEMUX_RETRIES:
                    return

    def _packet_dec(self, pkt) -> int | None:
        if self.idx.ordinal:
            return None
        self.idx.retime_packet(pkt)
        key = pkt.pts if pkt.pts is not None else pkt.dts
        slot = self.idx.slot_of(key)
        return None if slot is None else int(self.idx.dec[slot])

    def _seek_targets(self, kk: int) -> list[tuple[str, int]]:
        """Timestamps to seek to for keyframe slot ``kk``, the kind that worked before first.

        Demuxers disagree on what a seek timestamp means: MP4 and Matroska look it up among
        presentation times, others among decode times. With B-frames a keyframe's dts is below
        its pts, so seeking to the dts of a keyframe lands one GOP early in MP4 (correct but a
        GOP of wasted decoding) and seeking to the pts could land late elsewhere.
        """
        idx = self.idx
        out = [("pts", int(idx.keys[kk]))]
        if int(idx.seek_ts[kk]) != out[0][1]:
            out.append(("dts", int(idx.seek_ts[kk])))
            if self.b.seek_by == "dts":
                out.reverse()
        return out

    def _seek(self, c, s, kk: int, target_dec: int):
        """Seek so that demuxing starts at keyframe slot ``kk`` (or an earlier one, still before
        ``target_dec`` in decode order). Returns (packets, first packet) or None: landed late."""
        idx = self.idx
        early = None  # a target that landed at an earlier keyframe: usable, but wasteful
        failed = 0
        targets = self._seek_targets(kk)
        for kind, ts in targets:
            try:
                c.seek(ts, stream=s, backward=True)
            except Exception as exc:  # noqa: BLE001
                if not _is_av_error(exc):
                    raise
                failed += 1
                continue
            packets = self._packets(c, s)
            first = next((p for p in packets if p.size), None)
            if first is None:
                continue
            d = self._packet_dec(first)
            if d is None or idx.dec[kk] <= d <= target_dec:
                if d is not None and len(targets) > 1:
                    self.b.seek_by = kind
                return packets, first
            if d < idx.dec[kk] and early is None:
                early = ts
        if failed == len(targets):
            raise _SeekFailed
        if early is not None:  # nothing landed exactly: take the early landing again
            try:
                c.seek(early, stream=s, backward=True)
                packets = self._packets(c, s)
                first = next((p for p in packets if p.size), None)
            except Exception as exc:  # noqa: BLE001
                if not _is_av_error(exc):
                    raise
                raise _SeekFailed from None
            d = self._packet_dec(first) if first is not None else None
            if first is not None and (d is None or d <= target_dec):
                return packets, first
        return None

    def _session(self, k: int | None, safe: bool) -> Iterator[tuple[int, Any]]:
        """Decoded (slot, frame) pairs from keyframe slot ``k`` on (None: from the start)."""
        c, s = self._handle(safe)
        target_dec = int(self.idx.dec[k]) if k is not None else -1
        landed = None
        kk = k
        for _ in range(_MAX_SEEK_ATTEMPTS):
            if kk is None:
                break
            try:
                landed = self._seek(c, s, kk, target_dec)
            except _SeekFailed:
                break
            if landed is not None:
                break
            kk = self.idx.keyframe_before(kk)  # landed too late: aim earlier
        if landed is None:  # from the very start: reopen rather than trust a seek
            c, s = self._handle(safe, reopen=True)
            seq = self._packets(c, s)
        else:
            seq = _chain_one(landed[1], landed[0])
        for slot, frame in self._decode(seq, s.codec_context):
            self.n_decoded += 1
            yield slot, frame

    def _slot(self, f, count: int, hint: int) -> int | None:
        if self.idx.ordinal:
            return count
        return self.idx.slot_of(f.pts if f.pts is not None else f.dts, hint)

    def _decode(self, packets, cc) -> Iterator[tuple[int, Any]]:
        idx = self.idx
        started = False
        drained = False
        count = 0
        hint = -1  # the slot expected next: the one after the last frame's
        for pkt in packets:
            idx.retime_packet(pkt)
            if not pkt.size:
                drained = True
            elif pkt.is_corrupt:
                continue  # data known to be cut short/damaged: its frame is reported, not shown
            elif not started:
                if not pkt.is_keyframe and not idx.ordinal:
                    continue
                started = True
            try:
                frames = pkt.decode()
            except Exception as exc:  # noqa: BLE001
                if not _is_av_error(exc):
                    raise
                self.last_error = _one_line(exc)
                continue
            for f in frames:
                slot = self._slot(f, count, hint)
                count += 1
                if slot is not None and slot < idx.n:
                    hint = slot + 1
                    yield slot, f
        if not drained:
            try:
                for f in cc.decode(None):
                    slot = self._slot(f, count, hint)
                    count += 1
                    if slot is not None and slot < idx.n:
                        hint = slot + 1
                        yield slot, f
            except Exception:  # noqa: BLE001 - draining a broken decoder: nothing more to get
                pass

    def _next_key_after(self, t: int) -> int:
        later = self.idx.key_slots[self.idx.key_slots > t]
        return int(later[0]) if later.size else self.idx.n

    def frames(self, targets: Iterable[int]) -> Iterator[tuple[int, np.ndarray, np.ndarray | None]]:
        """(frame number, grey-or-luma view, LUT or None) for increasing ``targets``."""
        idx = self.idx
        W, H = self.b.width, self.b.height
        session = None
        safe = False
        safe_until = -1
        retries = _MAX_SAFE_RETRIES
        sess_kf = -1
        last_out = -1
        buffered = None
        dead: tuple[int, int, bool] | None = None  # (keyframe, last slot, safe) of a session at EOF
        for t in targets:
            if not idx.has_packet[t]:
                continue  # reported by the index pass
            k = kf = None  # keyframe to start from: looked up only when a seek is possible
            far = t - max(last_out, sess_kf - 1) > _SEEK_MIN_GAP
            if session is None or (far and not idx.ordinal):
                k = idx.keyframe_for(t)
                kf = -1 if k is None else k
            if session is not None:
                pos = max(last_out, sess_kf - 1)
                if (
                    t <= last_out
                    or (kf is not None and not idx.ordinal and kf - pos > _SEEK_MIN_GAP)
                    or (safe and t >= safe_until)
                ):
                    session = None
            if session is None and safe and t >= safe_until:
                safe = False
            while True:
                if session is None:
                    if kf is None:
                        k = idx.keyframe_for(t)
                        kf = -1 if k is None else k
                    # a session from this keyframe already ended before reaching t?
                    unreachable = dead is not None and kf <= dead[0] and t > dead[1]
                    if unreachable and not dead[2]:  # ... but it was frame-threaded
                        if safe:
                            unreachable = False
                        elif retries > 0 and not idx.ordinal:
                            retries -= 1
                            safe, safe_until, unreachable = True, self._next_key_after(t), False
                    if unreachable:
                        self._undecodable(t, "no picture before the end of the readable data")
                        break
                    session = self._session(k, safe)
                    sess_kf, last_out, buffered = kf, -1, None
                if buffered is None:
                    buffered = next(session, None)
                    if buffered is None:  # the session reached the end of the file
                        dead = (sess_kf, last_out, safe)
                        session = None
                        continue
                slot, fr = buffered
                if slot < t:
                    last_out = max(last_out, slot)
                    buffered = None
                    continue
                if slot > t:  # t was skipped by the decoder
                    if not safe and retries > 0 and not idx.ordinal:
                        retries -= 1
                        safe, safe_until = True, self._next_key_after(t)
                        session, dead = None, None
                        continue
                    self._undecodable(t, self.last_error or "the decoder produced no picture")
                    break
                buffered = None
                last_out = slot
                if fr.is_corrupt:
                    self.report(
                        DamageRecord(
                            t,
                            "corrupt_packet",
                            "the decoder reported errors in this frame; dropped",
                        )
                    )
                    break
                view, lut = _luma_view(fr)
                if view.shape != (H, W):
                    self._undecodable(
                        t, f"frame is {view.shape[1]}x{view.shape[0]}, expected {W}x{H}"
                    )
                    break
                yield t, view, lut
                break

    def _undecodable(self, t: int, why: str) -> None:
        self.report(DamageRecord(int(t), "undecodable_frame", why))


def _close_quietly(c) -> None:
    try:
        c.close()
    except Exception:  # noqa: BLE001
        pass


def _chain_one(first, rest):
    yield first
    yield from rest


# --------------------------------------------------------------------------------------------
# TIFF stacks
# --------------------------------------------------------------------------------------------


_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def _is_tiff(path: Path) -> bool:
    """The file starts with a TIFF (or BigTIFF) header, whatever its suffix (FFmpeg would
    read only the first page of a stack named e.g. ``.avi``)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(4) in _TIFF_MAGIC
    except OSError:
        return False


class _TiffLog:
    """Collects what tifffile logs instead of raising (e.g. a page chain that points past the
    end of a cut-off file) while the block runs, so it becomes a damage record and does not
    reach the user's terminal."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def __enter__(self) -> list[str]:
        import logging

        class _Handler(logging.Handler):
            def emit(h, record: logging.LogRecord) -> None:  # noqa: N805
                self.messages.append(record.getMessage())

        self._logger = logging.getLogger("tifffile")
        self._handler = _Handler(logging.WARNING)
        self._propagate = self._logger.propagate
        self._logger.addHandler(self._handler)
        self._logger.propagate = False
        return self.messages

    def __exit__(self, *exc: Any) -> None:
        self._logger.removeHandler(self._handler)
        self._logger.propagate = self._propagate


def _tiff_expected_frames(tif: Any, page_shape: tuple) -> int | None:
    """Frames the file says it holds (tifffile's shape metadata or ImageJ's ``images``)."""
    try:
        ij = tif.imagej_metadata
        if isinstance(ij, dict) and ij.get("images"):
            return int(ij["images"])
        shaped = tif.shaped_metadata
        if shaped and isinstance(shaped[0], dict) and shaped[0].get("shape"):
            shape = [int(v) for v in shaped[0]["shape"]]
            per_page = int(np.prod(page_shape))
            total = int(np.prod(shape))
            if per_page and total % per_page == 0:
                return total // per_page
    except Exception:  # noqa: BLE001 - metadata is a hint only
        return None
    return None


def _tiff_damage(path: Path, n: int, expected: int | None, logged: list[str]) -> list:
    """Damage records for a TIFF whose page chain ends early."""
    size = path.stat().st_size
    beyond = [
        m for m in logged
        if (o := re.search(r"offset (\d+)", m)) is not None and int(o.group(1)) >= size
    ]
    if expected is not None and expected > n:
        return [DamageRecord(
            n, "truncated",
            f"the TIFF describes {expected} frames but only {n} page(s) can be located; the "
            "file was probably cut off",
        )]
    if beyond:
        return [DamageRecord(
            n, "truncated",
            f"the chain of TIFF pages points past the end of the file after page {n - 1} "
            f"({beyond[0]}); later pages are lost",
        )]
    if any("offset" in m or "corrupted" in m for m in logged):
        return [DamageRecord(
            n, "missing_frames",
            f"the chain of TIFF pages is broken after page {n - 1} ({logged[0]}); later pages, "
            "if any, cannot be located",
        )]
    return []


def _count_tiff_pages(pages: Any, limit: int = 10_000_000) -> int:
    """Pages that can be located one after the other, up to the first broken one."""
    n = 0
    while n < limit:
        try:
            if pages[n] is None:
                break
        except Exception:  # noqa: BLE001 - the first page that cannot be read ends the count
            break
        n += 1
    return n


class _TiffBackend:
    kind = "tiff"

    def __init__(self, path: Path, fps: float | None):
        with _TiffLog() as logged:
            self._open(path, fps, logged)

    def _open(self, path: Path, fps: float | None, logged: list[str]) -> None:
        import tifffile

        self.path = path
        self.damage: list[DamageRecord] = []
        try:
            tif = tifffile.TiffFile(str(path))
        except Exception as exc:  # noqa: BLE001
            raise VideoError(f"not a readable TIFF file ({_one_line(exc)})", path=path) from None
        try:
            pages = tif.pages
            pages.cache = False
            try:
                self.n = len(pages)
                if self.n:
                    pages[self.n - 1]  # the last page tifffile counted may be the broken one
            except Exception as exc:  # noqa: BLE001 - a damaged page: count those before it
                self.n = _count_tiff_pages(pages)
                if self.n == 0:
                    raise
                logged.append(f"page {self.n}: {_one_line(exc)}")
            if self.n == 0:
                raise VideoError("TIFF file has no pages", path=path)
            p0 = pages[0]
            self.page_shape = tuple(p0.shape)
            self.dtype = np.dtype(p0.dtype)
            self.compression = str(getattr(p0.compression, "name", p0.compression)).lower()
            self.damage = _tiff_damage(
                path, self.n, _tiff_expected_frames(tif, self.page_shape), logged
            )
            for i in sorted({self.n // 2, self.n - 1}):
                self._check_shape(i, tuple(pages[i].shape))
            ij = tif.imagej_metadata or {}
            finterval = ij.get("finterval") if isinstance(ij, dict) else None
            self.stated_fps = 1.0 / float(finterval) if finterval else None
            self.scaler = _Scaler("rgb")
            first = [self.scaler.grey(p0.asarray())]
            if first[0].dtype != np.uint8:
                first += [
                    self.scaler.grey(pages[i].asarray())
                    for i in _spread(self.n, _N_SCALE_SAMPLES)
                    if i > 0
                ]
        except VideoError:
            tif.close()
            raise
        except Exception as exc:  # noqa: BLE001
            tif.close()
            raise VideoError(f"cannot read TIFF pages ({_one_line(exc)})", path=path) from None
        tif.close()
        self.scaler.fit(first)
        g = first[0]
        self.height, self.width = g.shape
        self.grey_dtype = g.dtype

    def _check_shape(self, i: int, shape: tuple) -> None:
        if shape != self.page_shape:
            raise VideoError(
                f"TIFF pages change shape: page {i} is {shape}, page 0 is {self.page_shape}; "
                "a stack must hold frames of one size",
                path=self.path,
            )

    def info(self, fps: float | None = None) -> _Info:
        fps = self.stated_fps if self.stated_fps else float("nan")
        return _Info(
            n=self.n,
            times=np.arange(self.n, dtype=np.float64) / fps,
            fps=fps,
            width=self.width,
            height=self.height,
            codec=f"tiff ({self.compression})" if self.compression not in ("none", "1") else "tiff",
            count_method="tiff pages",
            time_source="imagej finterval" if self.stated_fps else "unknown",
            grey_rule=self.scaler.rule(self.grey_dtype),
            damage=list(self.damage),
        )

    def reader(self, report) -> _TiffReader:
        return _TiffReader(self, report)

    def close(self) -> None:
        pass


class _TiffReader:
    def __init__(self, b: _TiffBackend, report):
        import tifffile

        self.b = b
        self.report = report
        try:
            with _TiffLog():
                self.tif = tifffile.TiffFile(str(b.path))
        except Exception as exc:  # noqa: BLE001
            raise VideoError(f"cannot reopen TIFF ({_one_line(exc)})", path=b.path) from None
        self.tif.pages.cache = False

    def frames(self, targets: Iterable[int]):
        b = self.b
        for t in targets:
            try:
                with _TiffLog() as logged:
                    page = self.tif.pages[t]
                    shape = tuple(page.shape)
                    if shape != b.page_shape:
                        b._check_shape(t, shape)
                    arr = page.asarray()
            except VideoError:
                raise
            except Exception as exc:  # noqa: BLE001
                self.report(
                    DamageRecord(int(t), "undecodable_frame", f"TIFF page: {_one_line(exc)}")
                )
                continue
            if logged:  # tifffile read the page but complained (e.g. data past the end)
                self.report(DamageRecord(int(t), "corrupt_packet", f"TIFF page: {logged[0]}"))
            yield t, b.scaler.to_uint8(b.scaler.grey(arr)), None

    def close(self) -> None:
        self.tif.close()


# --------------------------------------------------------------------------------------------
# image folders
# --------------------------------------------------------------------------------------------


def _imread(path: Path) -> np.ndarray | None:
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError:
        return None
    if data.size == 0:
        return None
    if path.suffix.lower() in TIFF_SUFFIXES:
        try:
            import tifffile

            return tifffile.imread(str(path), key=0)
        except Exception:  # noqa: BLE001 - fall back to OpenCV's TIFF reader
            pass
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    return img


class _FolderBackend:
    kind = "folder"

    def __init__(self, path: Path, fps: float | None):
        from natsort import natsorted

        self.path = path
        try:
            names = [
                p
                for p in path.iterdir()
                if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
            ]
        except OSError as exc:
            raise VideoError(f"cannot list folder ({_one_line(exc)})", path=path) from None
        if not names:
            raise VideoError(f"folder contains no images ({' '.join(IMAGE_SUFFIXES)})", path=path)
        self.files: list[Path] = natsorted(names, key=lambda p: p.name.lower())
        self.n = len(self.files)
        self.codec = self._codec_name()
        # the first readable image fixes size and colour layout
        first = None
        for f in self.files[:16]:
            first = _imread(f)
            if first is not None:
                break
        if first is None:
            raise VideoError(
                f"cannot read the first images of the folder (e.g. {self.files[0].name})", path=path
            )
        self.scaler = _Scaler("rgb" if self.files[0].suffix.lower() in TIFF_SUFFIXES else "bgr")
        try:
            g0 = self.scaler.grey(first)
        except ValueError as exc:
            raise VideoError(f"unsupported image layout ({exc})", path=self.files[0]) from None
        self.height, self.width = g0.shape
        self.grey_dtype = g0.dtype
        if g0.dtype != np.uint8:
            greys = []
            for i in _spread(self.n, _N_SCALE_SAMPLES):
                img = _imread(self.files[i])
                if img is not None:
                    g = self.scaler.grey(img)
                    if g.shape == g0.shape:
                        greys.append(g)
            self.scaler.fit(greys)
        self.counters = self._counters()

    def _codec_name(self) -> str:
        exts = {p.suffix.lower().lstrip(".") for p in self.files}
        exts = {"jpeg" if e == "jpg" else "tiff" if e == "tif" else e for e in exts}
        return "+".join(sorted(exts))

    def _counters(self) -> np.ndarray | None:
        nums = []
        for p in self.files:
            m = re.search(r"(\d+)(?!.*\d)", p.stem)
            if m is None:
                return None
            nums.append(int(m.group(1)))
        a = np.array(nums, np.int64)
        if a.size < 2:
            return None
        d = np.diff(a)
        if (d <= 0).any() or int(np.median(d)) != 1:
            return None
        return a

    def info(self, fps: float | None = None) -> _Info:
        rate = float(fps) if fps else float("nan")
        damage: list[DamageRecord] = []
        if self.counters is not None:
            times = (self.counters - self.counters[0]).astype(np.float64) / rate
            time_source = "file name counter"
            d = np.diff(self.counters)
            for i in np.flatnonzero(d > 1):
                damage.append(
                    DamageRecord(
                        int(i + 1),
                        "missing_frames",
                        f"file counter jumps from {self.counters[i]} to {self.counters[i + 1]} "
                        f"before {self.files[i + 1].name} ({int(d[i]) - 1} frame(s) missing)",
                    )
                )
        else:
            times = np.arange(self.n, dtype=np.float64) / rate
            time_source = "unknown"
        return _Info(
            n=self.n,
            times=times,
            fps=rate,
            width=self.width,
            height=self.height,
            codec=self.codec,
            count_method="image files",
            time_source=time_source,
            grey_rule=self.scaler.rule(self.grey_dtype),
            damage=damage,
        )

    def reader(self, report) -> _FolderReader:
        return _FolderReader(self, report)

    def close(self) -> None:
        pass


class _FolderReader:
    def __init__(self, b: _FolderBackend, report):
        self.b = b
        self.report = report

    def frames(self, targets: Iterable[int]):
        b = self.b
        for t in targets:
            f = b.files[t]
            img = _imread(f)
            if img is None:
                self.report(
                    DamageRecord(int(t), "undecodable_frame", f"cannot read image {f.name}")
                )
                continue
            try:
                g = b.scaler.grey(img)
            except ValueError as exc:
                self.report(DamageRecord(int(t), "undecodable_frame", f"{f.name}: {exc}"))
                continue
            if g.shape != (b.height, b.width):
                raise VideoError(
                    f"image is {g.shape[1]}x{g.shape[0]} but the folder's frames are "
                    f"{b.width}x{b.height}",
                    path=f,
                )
            yield t, b.scaler.to_uint8(g), None

    def close(self) -> None:
        pass


# --------------------------------------------------------------------------------------------
# the public source
# --------------------------------------------------------------------------------------------


class _Stop(Exception):
    pass


class _BufferPool:
    """Chunk buffers recycled once the consumer has dropped every reference to them.

    Fresh large arrays cost a page fault per 4 KiB on first write (as much as the copy itself);
    a buffer is reused only when nothing but the pool refers to it (any chunk, view or slice the
    consumer keeps holds a reference to the buffer), so recycling is invisible to the consumer.
    """

    _FREE_REFS = 3  # the pool's list, the loop variable and getrefcount's argument

    def __init__(self, shape: tuple[int, int, int], keep: int = 6):
        self.shape = shape
        self.keep = keep
        self.bufs: list[np.ndarray] = []

    def get(self) -> np.ndarray:
        for b in self.bufs:
            if sys.getrefcount(b) <= self._FREE_REFS:
                return b
        b = np.empty(self.shape, np.uint8)
        if len(self.bufs) < self.keep:
            self.bufs.append(b)
        return b


class VideoSource:
    """Frames of one video, read in chunks or at random. Create with :func:`open_video`.

    Thread-safety: one consumer at a time per call; ``chunks()`` decodes in its own thread with its
    own file handle, random access shares one handle guarded by a lock.
    """

    def __init__(self, backend, path: Path, *, crop, fps: float | None):
        self._b = backend
        self.path = path
        self._crop = crop
        self._fps_override = fps
        self._meta: VideoMeta | None = None
        self._times: np.ndarray | None = None
        self._damage: list[DamageRecord] = []
        self._damage_keys: set[tuple[int, str]] = set()
        self._warned = 0
        self._lock = threading.RLock()
        self._ra = None  # random-access reader
        self._closed = False

    # -- metadata ---------------------------------------------------------------------------
    def _ensure(self) -> None:
        if self._meta is not None:
            return
        with self._lock:
            if self._meta is not None:
                return
            b = self._b
            info = b.info(self._fps_override)
            for rec in info.damage:
                self._add_damage(rec)
            if not self._fps_override:
                for rec in info.gap_damage:
                    self._add_damage(rec)
            self._damage.sort(key=lambda r: r.frame)
            fps = float(self._fps_override) if self._fps_override else info.fps
            if self._fps_override and b.kind != "folder":
                times = np.arange(info.n, dtype=np.float64) / fps
                time_source = "fps override"
            else:
                times = np.asarray(info.times, dtype=np.float64)
                time_source = info.time_source
            times.setflags(write=False)
            self._times = times
            x, y, w, h = self._crop if self._crop else (0, 0, info.width, info.height)
            duration = (
                float(times[-1] + 1.0 / fps)
                if info.n and np.isfinite(fps) and fps > 0
                else float("nan")
            )
            self._meta = VideoMeta(
                path=self.path,
                n_frames=info.n,
                fps=float(fps),
                width=int(w),
                height=int(h),
                codec=info.codec,
                duration_s=duration,
                frame_count_method=info.count_method,
                time_source=time_source,
                grey_rule=info.grey_rule,
            )

    @property
    def meta(self) -> VideoMeta:
        """:class:`VideoMeta` (the first access runs the index pass for containers)."""
        self._ensure()
        self._warn()
        return self._meta

    @property
    def timestamps(self) -> np.ndarray:
        """float64 (n_frames,) seconds from the first frame (read-only)."""
        self._ensure()
        self._warn()
        return self._times

    @property
    def damage(self) -> list[DamageRecord]:
        """Damage found so far (index pass and every read), in the order found."""
        self._ensure()
        self._warn()
        with self._lock:
            return list(self._damage)

    @property
    def crop(self) -> tuple[int, int, int, int] | None:
        return self._crop

    def __len__(self) -> int:
        self._ensure()
        return self._meta.n_frames

    def __repr__(self) -> str:
        m = self._meta
        if m is None:
            return f"VideoSource({str(self.path)!r})"
        return (
            f"VideoSource({str(self.path)!r}, {m.n_frames} frames, {m.width}x{m.height}, "
            f"{m.fps:.6g} fps, {m.codec})"
        )

    # -- damage -----------------------------------------------------------------------------
    def _add_damage(self, rec: DamageRecord) -> None:
        key = (rec.frame, rec.kind)
        with self._lock:
            if key in self._damage_keys:
                return
            self._damage_keys.add(key)
            self._damage.append(rec)

    def _warn(self) -> None:
        with self._lock:
            new = self._damage[self._warned :]
            self._warned = len(self._damage)
        if not new:
            return
        kinds: dict[str, list[int]] = {}
        for r in new:
            kinds.setdefault(r.kind, []).append(r.frame)
        parts = []
        for kind, frames in kinds.items():
            shown = ", ".join(str(f) for f in frames[:8])
            more = f" and {len(frames) - 8} more" if len(frames) > 8 else ""
            parts.append(f"{kind} at frame(s) {shown}{more}")
        first = new[0].detail
        warnings.warn(
            DamagedVideoWarning(
                f"{self.path}: damaged video: {'; '.join(parts)} (first: {first}); "
                "see VideoSource.damage"
            ),
            stacklevel=3,
        )

    # -- reading ----------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise VideoError("video source is closed", path=self.path)

    def _crop_view(self, view: np.ndarray) -> np.ndarray:
        if self._crop is None:
            return view
        x, y, w, h = self._crop
        return view[y : y + h, x : x + w]

    def _store(self, dst: np.ndarray, view: np.ndarray, lut: np.ndarray | None) -> None:
        v = self._crop_view(view)
        if lut is _LIMITED_TO_FULL:  # one affine pass: same values as the LUT, copy's cost
            cv2.transform(v, _LIMITED_AFFINE, dst=dst)
        else:
            np.copyto(dst, v)
            if lut is not None:  # in place on the contiguous copy: faster than on a strided view
                cv2.LUT(dst, lut, dst=dst)

    def _new_reader(self):
        try:
            return self._b.reader(self._add_damage)
        except VideoError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise VideoError(
                f"cannot open for reading ({_one_line(exc)})", path=self.path
            ) from None

    def _wrap(self, exc: BaseException) -> VideoError:
        if isinstance(exc, VideoError):
            return exc
        return VideoError(f"read failed ({type(exc).__name__}: {_one_line(exc)})", path=self.path)

    def _range(self, start: int, stop: int | None) -> tuple[int, int]:
        n = len(self)
        stop = n if stop is None else min(int(stop), n)
        start = int(start)
        if start < 0 or start > n:
            raise IndexError(f"start {start} is outside 0..{n}")
        return start, max(start, stop)

    def _fill(self, reader, start: int, stop: int, n: int, stop_event=None) -> Iterator[Chunk]:
        """Chunks for frame windows [start + k*n, start + (k+1)*n) within [start, stop)."""
        h, w = self._meta.height, self._meta.width
        pool = _BufferPool((min(n, max(1, stop - start)), h, w))
        win = start
        buf = None
        idx: list[int] = []
        for i, view, lut in reader.frames(range(start, stop)):
            if stop_event is not None and stop_event.is_set():
                raise _Stop
            while i >= win + n:
                if idx:
                    yield self._chunk(buf, idx)
                    buf, idx = None, []
                win += n
            if buf is None:
                buf = pool.get()
            self._store(buf[len(idx)], view, lut)
            idx.append(i)
        if idx:
            yield self._chunk(buf, idx)

    def _chunk(self, buf: np.ndarray, idx: list[int]) -> Chunk:
        ind = np.asarray(idx, dtype=np.int64)
        frames = buf if len(idx) == buf.shape[0] else buf[: len(idx)]
        return Chunk(indices=ind, times=self._times[ind], frames=frames)

    def chunks(
        self, n: int = 64, *, start: int = 0, stop: int | None = None, prefetch: int = 1
    ) -> Iterator[Chunk]:
        """Decode frames ``start..stop-1`` in chunks of at most ``n`` frames.

        Parameters
        ----------
        n
            Frames per chunk (window of frame numbers; fewer if some are undecodable).
        start, stop
            Frame range (``stop=None``: to the end).
        prefetch
            Chunks decoded ahead in a background thread (0: decode in the caller's thread).

        Yields
        ------
        Chunk
            Fresh arrays for every chunk (the consumer may keep them).
        """
        if n < 1:
            raise ValueError(f"chunk size must be >= 1, got {n}")
        self._check_open()
        self._ensure()
        self._warn()
        start, stop = self._range(start, stop)
        if prefetch <= 0:
            return self._chunks_inline(n, start, stop)
        return self._chunks_threaded(n, start, stop, prefetch)

    def _chunks_inline(self, n: int, start: int, stop: int) -> Iterator[Chunk]:
        reader = self._new_reader()
        try:
            yield from self._fill(reader, start, stop, n)
        except (VideoError, GeneratorExit):
            raise
        except Exception as exc:  # noqa: BLE001
            raise self._wrap(exc) from None
        finally:
            reader.close()
            self._warn()

    def _chunks_threaded(self, n: int, start: int, stop: int, prefetch: int) -> Iterator[Chunk]:
        q: queue.Queue = queue.Queue(maxsize=prefetch)
        stop_event = threading.Event()
        done = object()

        def put(item) -> bool:
            while not stop_event.is_set():
                try:
                    q.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def work() -> None:
            reader = None
            try:
                reader = self._new_reader()
                for chunk in self._fill(reader, start, stop, n, stop_event):
                    if not put(chunk):
                        return
                put(done)
            except _Stop:
                return
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer
                put(exc)
            finally:
                if reader is not None:
                    reader.close()

        thread = threading.Thread(
            target=work, name=f"fishtrack-decode-{self.path.name}", daemon=True
        )
        thread.start()
        try:
            while True:
                item = q.get()
                if item is done:
                    break
                if isinstance(item, BaseException):
                    raise self._wrap(item) from None
                yield item
        finally:
            stop_event.set()
            deadline = time.monotonic() + 30.0  # a daemon thread stuck in FFmpeg is left behind
            while thread.is_alive() and time.monotonic() < deadline:
                try:
                    q.get_nowait()
                except queue.Empty:
                    thread.join(timeout=0.05)
            self._warn()

    def _random_reader(self):
        if self._ra is None:
            self._ra = self._new_reader()
        return self._ra

    def _collect(self, indices: np.ndarray) -> tuple[list[int], list[np.ndarray]]:
        """Decode sorted unique ``indices``; returns the ones decoded and their frames."""
        self._check_open()
        self._ensure()
        got_i: list[int] = []
        got_f: list[np.ndarray] = []
        h, w = self._meta.height, self._meta.width
        with self._lock:
            try:
                reader = self._random_reader()
                for i, view, lut in reader.frames(int(x) for x in indices):
                    dst = np.empty((h, w), np.uint8)
                    self._store(dst, view, lut)
                    got_i.append(i)
                    got_f.append(dst)
            except VideoError:
                raise
            except Exception as exc:  # noqa: BLE001
                if self._ra is not None:
                    self._ra.close()
                    self._ra = None
                raise self._wrap(exc) from None
        self._warn()
        return got_i, got_f

    def _norm_index(self, i: int) -> int:
        n = len(self)
        j = int(i)
        if j < 0:
            j += n
        if not 0 <= j < n:
            raise IndexError(f"frame {i} is outside 0..{n - 1}")
        return j

    def read(self, i: int) -> np.ndarray:
        """Frame ``i`` as uint8 (H, W). Raises VideoError if it cannot be decoded."""
        j = self._norm_index(i)
        got_i, got_f = self._collect(np.array([j]))
        if not got_i:
            raise VideoError(
                f"frame {j} cannot be decoded (see VideoSource.damage)", path=self.path
            )
        return got_f[0]

    def read_range(self, start: int, stop: int) -> Chunk:
        """Frames ``start..stop-1`` as one :class:`Chunk` (undecodable frames are absent)."""
        start, stop = self._range(start, stop)
        got_i, got_f = self._collect(np.arange(start, stop))
        h, w = self._meta.height, self._meta.width
        frames = np.stack(got_f) if got_f else np.empty((0, h, w), np.uint8)
        ind = np.asarray(got_i, np.int64)
        return Chunk(indices=ind, times=self._times[ind], frames=frames)

    def sample(self, indices: Iterable[int]) -> np.ndarray:
        """Frames at ``indices`` (any order, repeats allowed) as uint8 (K, H, W).

        Frames that cannot be decoded are left out (K is then smaller than requested; the damage
        is recorded). Requested frames are decoded in sorted order with as few seeks as possible.
        """
        req = np.array([self._norm_index(i) for i in indices], dtype=np.int64)
        if req.size == 0:
            self._ensure()
            return np.empty((0, self._meta.height, self._meta.width), np.uint8)
        uniq = np.unique(req)
        got_i, got_f = self._collect(uniq)
        h, w = self._meta.height, self._meta.width
        pos = {i: k for k, i in enumerate(got_i)}
        keep = [pos[i] for i in req if i in pos]
        out = np.empty((len(keep), h, w), np.uint8)
        for r, k in enumerate(keep):
            out[r] = got_f[k]
        return out

    # -- lifetime ---------------------------------------------------------------------------
    def close(self) -> None:
        """Release file handles (idempotent)."""
        with self._lock:
            if self._ra is not None:
                self._ra.close()
                self._ra = None
            self._b.close()
            self._closed = True

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()


def _check_crop(crop, width: int, height: int, path: Path) -> tuple[int, int, int, int] | None:
    if crop is None:
        return None
    try:
        x, y, w, h = (int(v) for v in crop)
        if any(int(v) != v for v in crop):
            raise ValueError
    except (TypeError, ValueError):
        raise VideoError(
            f"crop must be four integers [x, y, width, height], got {crop!r}", path=path
        ) from None
    if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > width or y + h > height:
        raise VideoError(
            f"crop [{x}, {y}, {w}, {h}] does not fit inside the {width}x{height} frame", path=path
        )
    return x, y, w, h


def open_video(
    path: str | os.PathLike,
    *,
    crop: tuple[int, int, int, int] | list[int] | None = None,
    fps: float | None = None,
) -> VideoSource:
    """Open a video file, a multi-page TIFF stack or a folder of images.

    Parameters
    ----------
    path
        Video file (anything FFmpeg reads), ``.tif``/``.tiff`` stack, or folder of images.
    crop
        ``[x, y, width, height]`` region read from every frame (px, origin top-left).
    fps
        Frame rate override (Hz): timestamps become ``frame / fps``. Needed for TIFF stacks and
        image folders to have times.

    Returns
    -------
    VideoSource

    Raises
    ------
    VideoError
        Missing, empty, unreadable or unsupported input, or a crop outside the frame.
    """
    p = Path(path)
    if fps is not None:
        try:
            fps = float(fps)
        except (TypeError, ValueError):
            raise VideoError(f"fps must be a number, got {fps!r}", path=p) from None
        if not (math.isfinite(fps) and fps > 0):
            raise VideoError(f"fps must be > 0, got {fps}", path=p)
    try:
        exists = p.exists()
    except (OSError, ValueError) as exc:  # a name the OS refuses (too long, NUL)
        raise VideoError(f"cannot use this path ({_one_line(exc)})", path=p) from None
    if not exists:
        raise VideoError("file not found", path=p)
    if p.is_dir():
        backend = _FolderBackend(p, fps)
    else:
        try:
            size = p.stat().st_size
        except OSError as exc:
            raise VideoError(f"cannot read file ({_one_line(exc)})", path=p) from None
        if size == 0:
            raise VideoError("file is empty (0 bytes)", path=p)
        if not os.access(p, os.R_OK):
            raise VideoError("permission denied", path=p)
        if p.suffix.lower() in TIFF_SUFFIXES or _is_tiff(p):
            backend = _TiffBackend(p, fps)
        else:
            backend = _AVBackend(p)
    checked = _check_crop(crop, backend.width, backend.height, p)
    return VideoSource(backend, p, crop=checked, fps=fps)
