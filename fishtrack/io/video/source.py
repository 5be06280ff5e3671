"""The front: :class:`VideoSource` (chunks, random access, damage records) and
:func:`open_video`, which picks the backend."""

from __future__ import annotations

import math
import os
import queue
import sys
import threading
import time
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np

from fishtrack.errors import VideoError
from fishtrack.io.video.backend import Backend, FrameReader, one_line
from fishtrack.io.video.folder import FolderBackend
from fishtrack.io.video.grey import LIMITED_AFFINE, LIMITED_TO_FULL
from fishtrack.io.video.pyav import AVBackend
from fishtrack.io.video.records import Chunk, DamagedVideoWarning, DamageRecord, VideoMeta
from fishtrack.io.video.tiff import TIFF_SUFFIXES, TiffBackend, is_tiff


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

    def __init__(
        self,
        backend: Backend,
        path: Path,
        *,
        crop: tuple[int, int, int, int] | None,
        fps: float | None,
    ):
        self._b = backend
        self.path = path
        self._crop = crop
        self._fps_override = fps
        self._meta: VideoMeta | None = None
        self._times: np.ndarray | None = None
        self._keyframes: np.ndarray | None = None
        self._damage: list[DamageRecord] = []
        self._damage_keys: set[tuple[int, str]] = set()
        self._warned = 0
        self._held: list[int] | None = None  # damage counts at warnings held back
        self._lock = threading.RLock()
        self._ra: FrameReader | None = None  # random-access reader
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
            if self._fps_override and not b.times_from_fps:
                times = np.arange(info.n, dtype=np.float64) / fps
                time_source = "fps override"
            else:
                times = np.asarray(info.times, dtype=np.float64)
                time_source = info.time_source
            times.setflags(write=False)
            self._times = times
            self._keyframes = None if info.keyframes is None else np.asarray(info.keyframes, np.int64)
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
                encoder=info.encoder.describe(),
                crf=float(info.encoder.quality),
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
    def keyframes(self) -> np.ndarray | None:
        """int64 frame numbers decoding can start at (keyframes; every frame for intra-only
        codecs such as MJPG and FFV1), or None for TIFF stacks and image folders (any frame
        is read alone) and containers without timestamps. Random access to frame ``i``
        decodes from the last keyframe before it."""
        self._ensure()
        return self._keyframes

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

    def hold_warnings(self) -> None:
        """Hold back the damage warnings of this source's reads until
        :meth:`release_warnings` (a source read in a helper thread first, e.g. by
        :class:`~fishtrack.background_sample.EarlySample`: its warnings are then given in the
        thread that releases them, where ``warnings.catch_warnings`` records them)."""
        with self._lock:
            if self._held is None:
                self._held = []

    def release_warnings(self) -> None:
        """Give the warnings held back since :meth:`hold_warnings`, each as it would have been
        given, and stop holding them."""
        with self._lock:
            held, self._held = self._held or [], None
        for end in held:
            self._warn(end)

    def _warn(self, end: int | None = None) -> None:
        with self._lock:
            if self._held is not None:
                self._held.append(len(self._damage))
                return
            end = len(self._damage) if end is None else end
            new = self._damage[self._warned : end]
            self._warned = max(self._warned, end)
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
        if lut is LIMITED_TO_FULL:  # one affine pass: same values as the LUT, copy's cost
            cv2.transform(v, LIMITED_AFFINE, dst=dst)
        else:
            np.copyto(dst, v)
            if lut is not None:  # in place on the contiguous copy: faster than on a strided view
                cv2.LUT(dst, lut, dst=dst)

    def _new_reader(self) -> FrameReader:
        try:
            return self._b.reader(self._add_damage)
        except VideoError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise VideoError(
                f"cannot open for reading ({one_line(exc)})", path=self.path
            ) from None

    def _wrap(self, exc: BaseException) -> VideoError:
        if isinstance(exc, VideoError):
            return exc
        return VideoError(f"read failed ({type(exc).__name__}: {one_line(exc)})", path=self.path)

    def _range(self, start: int, stop: int | None) -> tuple[int, int]:
        n = len(self)
        stop = n if stop is None else min(int(stop), n)
        start = int(start)
        if start < 0 or start > n:
            raise IndexError(f"start {start} is outside 0..{n}")
        return start, max(start, stop)

    def _fill(
        self, reader: FrameReader, start: int, stop: int, n: int, stop_event=None
    ) -> Iterator[Chunk]:
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

    def _random_reader(self) -> FrameReader:
        if self._ra is None:
            self._ra = self._new_reader()
        return self._ra

    def _collect(
        self, indices: np.ndarray, out: np.ndarray | None = None
    ) -> tuple[list[int], list[np.ndarray]]:
        """Decode sorted unique ``indices``; returns the ones decoded and their frames (with
        ``out``, a (len(indices), H, W) uint8 array, the frames are its first rows, in order)."""
        self._check_open()
        self._ensure()
        got_i: list[int] = []
        got_f: list[np.ndarray] = []
        h, w = self._meta.height, self._meta.width
        with self._lock:
            try:
                reader = self._random_reader()
                for i, view, lut in reader.frames(int(x) for x in indices):
                    dst = np.empty((h, w), np.uint8) if out is None else out[len(got_f)]
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
        h, w = self._meta.height, self._meta.width
        if np.array_equal(uniq, req):  # sorted, no repeats (a background sample): no copy
            frames = np.empty((len(req), h, w), np.uint8)
            got_i, _ = self._collect(uniq, out=frames)
            return frames[: len(got_i)]
        got_i, got_f = self._collect(uniq)
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
    fps = _check_fps(fps, p)
    backend = _backend_for(p, fps)
    checked = _check_crop(crop, backend.width, backend.height, p)
    return VideoSource(backend, p, crop=checked, fps=fps)


def _check_fps(fps: float | None, p: Path) -> float | None:
    if fps is None:
        return None
    try:
        fps = float(fps)
    except (TypeError, ValueError):
        raise VideoError(f"fps must be a number, got {fps!r}", path=p) from None
    if not (math.isfinite(fps) and fps > 0):
        raise VideoError(f"fps must be > 0, got {fps}", path=p)
    return fps


def _backend_for(p: Path, fps: float | None) -> Backend:
    """The backend that reads ``p``: a folder of images, a TIFF stack (by suffix or by its
    header), else a container for FFmpeg."""
    try:
        exists = p.exists()
    except (OSError, ValueError) as exc:  # a name the OS refuses (too long, NUL)
        raise VideoError(f"cannot use this path ({one_line(exc)})", path=p) from None
    if not exists:
        raise VideoError("file not found", path=p)
    if p.is_dir():
        return FolderBackend(p, fps)
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise VideoError(f"cannot read file ({one_line(exc)})", path=p) from None
    if size == 0:
        raise VideoError("file is empty (0 bytes)", path=p)
    if not os.access(p, os.R_OK):
        raise VideoError("permission denied", path=p)
    if p.suffix.lower() in TIFF_SUFFIXES or is_tiff(p):
        return TiffBackend(p, fps)
    return AVBackend(p)
