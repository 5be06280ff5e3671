"""The background's frame sample: which frames (:func:`sample_indices`), decoding them
(:func:`read_sample`) and their per-pixel median (:func:`median`), the first step of
:func:`fishtrack.tracking.background.estimate_background`.

Kept apart from :mod:`fishtrack.tracking` so that it imports only NumPy and the video reader
(no pandas, pyarrow or the tracker): ``fishtrack track`` starts it in a thread
(:class:`EarlySample`) while its main thread imports the rest of the pipeline (issue 15, fixed
costs). PyAV decodes and converts frames outside the GIL, and NumPy's partition runs outside
it too, so the two overlap on two cores. The sample is the same whichever thread takes it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fishtrack._threads import compute_threads
from fishtrack.errors import TrackingError

if TYPE_CHECKING:
    from fishtrack.config import Config

__all__ = ["EarlySample", "Sample", "median", "read_sample", "sample_indices", "take_sample"]

#: bytes the background sample may hold (frames beyond this are not sampled)
SAMPLE_BYTES = 64_000_000
#: keyframes further apart than this (frames, on average) make the background sample runs of
#: consecutive frames from keyframes (:func:`sample_indices`)
RUN_GOP = 8
#: fewest keyframes (moments of the recording) a run-based background sample may come from;
#: with fewer, frames are sampled evenly whatever the decoding cost
MIN_RUNS = 12


def sample_indices(n_frames: int, k: int, keyframes: np.ndarray | None = None) -> np.ndarray:
    """About ``k`` frame numbers spread over ``n_frames`` (all frames if fewer).

    Without ``keyframes`` (or when they are at most :data:`RUN_GOP` frames apart, or fewer
    than :data:`MIN_RUNS`) the frames are spread evenly. With keyframes further apart (H.264
    or HEVC with long groups of pictures) every frame sampled in the middle of a group would
    cost decoding the group up to it (~7 s on a 1 MP, 100 fps file with keyframes 250 frames
    apart, whatever its length), so the sample is instead ``ceil(k / m)``-frame runs that
    start at ``m = min(k, number of keyframes)`` keyframes spread evenly over the video: the
    same number of frames for a few decoded frames each. The per-pixel median is then taken
    over ``m`` moments of the recording instead of ``k`` (a moving fish covers a pixel in few
    of them; see docs/tracking.md).
    """
    if n_frames <= 0:
        return np.zeros(0, dtype=np.int64)
    k = int(min(max(k, 1), n_frames))
    even = np.unique(np.round(np.linspace(0, n_frames - 1, k)).astype(np.int64))
    if keyframes is None or k >= n_frames:
        return even
    kf = np.unique(np.asarray(keyframes, np.int64))
    kf = kf[(kf >= 0) & (kf < n_frames)]
    if kf.size < MIN_RUNS or n_frames / kf.size <= RUN_GOP:
        return even
    starts = kf[np.unique(np.round(np.linspace(0, kf.size - 1, min(k, kf.size))).astype(np.int64))]
    run = -(-k // starts.size)
    ends = np.minimum(np.append(starts[1:], n_frames), starts + run)
    return np.unique(np.concatenate([np.arange(a, b) for a, b in zip(starts, ends, strict=True)]))


def _frame_shape(source: Any) -> tuple[int, int] | None:
    if isinstance(source, np.ndarray):
        return source.shape[1], source.shape[2]
    meta = getattr(source, "meta", None)
    if meta is not None and getattr(meta, "height", None):
        return int(meta.height), int(meta.width)
    return None


def read_sample(source: Any, idx: np.ndarray, batch: int = 128) -> np.ndarray:
    """Frames ``idx`` as one (K, H, W) uint8 array (frames the source cannot decode are left
    out). One ``sample`` call per ``batch`` frames: the source then decodes forward within a
    group of pictures instead of seeking for every frame. A sample of one batch (a 1 MP
    video's 61 frames) is the source's own array, not copied again (issue 15: the copy was
    the 1 MP run's peak memory)."""
    if isinstance(source, np.ndarray):
        return np.ascontiguousarray(source[idx])
    if not hasattr(source, "sample"):
        return np.stack([np.asarray(source.read(int(i))) for i in idx])
    out: np.ndarray | None = None
    k = 0
    for b0 in range(0, len(idx), batch):
        part = np.asarray(source.sample(idx[b0 : b0 + batch]))
        if part.ndim != 3 or part.dtype != np.uint8:
            raise TrackingError(f"frames must be grey uint8 (N, H, W), got {part.dtype} {part.shape}")
        if len(idx) <= batch:
            out, k = part, len(part)
            break
        if out is None:
            out = np.empty((len(idx), *part.shape[1:]), np.uint8)
        out[k : k + len(part)] = part
        k += len(part)
    if out is None:
        raise TrackingError("no frame of the video could be decoded")
    return out[:k]


def median(stack: np.ndarray) -> np.ndarray:
    """Per-pixel median of a (K, H, W) uint8 stack, ``np.median(stack, axis=0)`` to the last
    bit, computed in row strips (bounded memory, each strip's values in cache), the strips
    shared by :func:`~fishtrack._threads.compute_threads` threads (NumPy compares and sums
    outside the GIL).

    No pixel's values are sorted: the order statistic of rank ``r`` (0-based) of 8-bit values
    is found bit by bit, from the highest: it is at least ``v | bit`` exactly when at most
    ``r`` of the pixel's K values are below that, so eight passes of one comparison and one
    count over the strip give it (:func:`_order_statistic`). About a fifth of the CPU of the
    radix sort it replaces (0.08 against 0.40 s for 61 frames of 1 MP on one thread, issue
    15: the 1 MP run waits for this median before its first frame). The median of an even K
    is the mean of the two middle values, as NumPy takes it."""
    k, h, w = stack.shape
    out = np.empty((h, w), dtype=np.float32)
    rows = max(1, int(1_000_000 // max(1, k * w)))
    lo, hi = (k - 1) // 2, k // 2

    def strip(r0: int) -> None:
        part = stack[:, r0 : r0 + rows]
        low = _order_statistic(part, lo)
        mid = low if lo == hi else (low + _order_statistic(part, hi).astype(np.float64)) / 2
        out[r0 : r0 + rows] = mid

    starts = range(0, h, rows)
    n = min(compute_threads(), len(starts))
    if n <= 1:
        for r0 in starts:
            strip(r0)
        return out
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(n, thread_name_prefix="fishtrack-median") as pool:
        list(pool.map(strip, starts))
    return out


def _order_statistic(stack: np.ndarray, rank: int) -> np.ndarray:
    """The value of 0-based ``rank`` in sorted order of each pixel of a (K, ...) uint8
    ``stack`` (uint8, the shape of one frame): the largest ``v`` with at most ``rank`` values
    below it, built from the highest bit down."""
    count = np.uint8 if len(stack) < 256 else np.uint16 if len(stack) < 65_536 else np.int64
    v = np.zeros(stack.shape[1:], np.uint8)
    for bit in (128, 64, 32, 16, 8, 4, 2, 1):
        trial = v | np.uint8(bit)
        below = (stack < trial).sum(axis=0, dtype=count)
        np.copyto(v, trial, where=below <= rank)
    return v


@dataclass
class Sample:
    """The background's sampled frames (``frames``, uint8 (K, H, W)), their frame numbers
    (``indices``) and per-pixel median (``median``, float32 (H, W))."""

    indices: np.ndarray
    frames: np.ndarray | None
    median: np.ndarray


def take_sample(source: Any, background_frames: int) -> Sample:
    """About ``background_frames`` frames of ``source`` (a video source or a uint8 (N, H, W)
    array; fewer when they would hold more than :data:`SAMPLE_BYTES`, at least 20), chosen by
    :func:`sample_indices`, and their median."""
    n = len(source)
    if n == 0:
        raise TrackingError("the video has no frames")
    k = background_frames
    shape = _frame_shape(source)
    if shape is not None:
        k = int(min(k, max(20, SAMPLE_BYTES // max(1, shape[0] * shape[1]))))
    idx = sample_indices(n, k, getattr(source, "keyframes", None))
    frames = read_sample(source, idx)
    if frames.ndim != 3 or frames.dtype != np.uint8:
        raise TrackingError(f"frames must be grey uint8 (N, H, W), got {frames.dtype} {frames.shape}")
    return Sample(indices=idx, frames=frames, median=median(frames))


class EarlySample:
    """Open ``video`` as ``config``'s ``video`` section says and take its background sample
    (:func:`take_sample`) in a thread, from now on.

    ``fishtrack track`` starts one before it imports the pipeline and hands it to
    :func:`fishtrack.pipeline.track_to_folder` (``early``), whose first stages then use its
    source and sample instead of opening and sampling the video themselves; errors of the
    thread are raised there, where the same step would have raised them. Use it as a context
    manager: leaving it waits for the thread and closes a source nobody took.
    """

    def __init__(self, video: str | Path, config: Config) -> None:
        self.video = Path(video)
        self._key = self._key_of(self.video, config)
        self._source: Any = None
        self._sample: Sample | None = None
        self._open_error: BaseException | None = None
        self._sample_error: BaseException | None = None
        self._taken = False
        self._thread = threading.Thread(target=self._run, args=(config,),
                                        name="fishtrack-background-sample", daemon=True)
        self._thread.start()

    @staticmethod
    def _key_of(video: Path, config: Config) -> tuple:
        v = config.video
        crop = None if v.crop is None else tuple(v.crop)
        return (str(video), crop, v.fps, config.tracking.background_frames)

    def _run(self, config: Config) -> None:
        try:
            from fishtrack.io.video import open_video

            self._source = open_video(self.video, crop=config.video.crop, fps=config.video.fps)
            self._source.hold_warnings()  # given by source(), in the caller's thread
        except BaseException as exc:  # noqa: BLE001 - raised again by source()
            self._open_error = exc
            return
        try:
            self._sample = take_sample(self._source, config.tracking.background_frames)
        except BaseException as exc:  # noqa: BLE001 - raised again by sample()
            self._sample_error = exc

    def matches(self, video: str | Path, config: Config) -> bool:
        """Whether this sample is the one the run of ``video`` with ``config`` would take."""
        return self._key == self._key_of(Path(video), config)

    def source(self) -> Any:
        """The opened video source (the caller closes it), once the thread is done, with the
        damage warnings of the thread's reads given now (in the caller's thread); the thread's
        error if opening failed."""
        self._thread.join()
        if self._open_error is not None:
            raise self._open_error
        self._taken = True
        self._source.release_warnings()
        return self._source

    def sample(self) -> Sample:
        """The sample, once the thread is done; the thread's error if sampling failed."""
        self._thread.join()
        if self._open_error is not None:
            raise self._open_error
        if self._sample_error is not None:
            raise self._sample_error
        if self._sample is None:
            raise RuntimeError("the early background sample was already taken")
        sample, self._sample = self._sample, None  # handed over: the frames go with its user
        return sample

    def close(self) -> None:
        """Wait for the thread; close the source unless :meth:`source` handed it over."""
        self._thread.join()
        if not self._taken and self._source is not None:
            self._source.close()
        self._sample = None

    def __enter__(self) -> EarlySample:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
