"""The contract between the front (:mod:`.source`) and the backends, and what they share.

A backend is one kind of input (:mod:`.pyav` containers, :mod:`.tiff` stacks, :mod:`.folder`
image folders). :func:`fishtrack.io.video.open_video` picks one and wraps it in a
:class:`~fishtrack.io.video.VideoSource`, which does everything backend-independent: the fps
override, the crop, grey conversion into chunk buffers, chunking, the decode thread, random
access and the damage records and warnings. A backend only answers two questions: what does the
source hold (:meth:`Backend.info`), and what are the pictures of these frames
(:meth:`FrameReader.frames`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from fishtrack.io.video.encoder import EncoderSettings
from fishtrack.io.video.records import DamageRecord

Report = Callable[[DamageRecord], None]
"""Where a reader reports a frame it cannot deliver (:meth:`VideoSource._add_damage`)."""

Frame = tuple[int, np.ndarray, np.ndarray | None]
"""``(frame number, picture, lut)``: an (H, W) uint8 grey picture of the full frame (may be a
view into the decoder's buffer, valid until the next frame is asked for); ``lut`` is None, or
:data:`~fishtrack.io.video.grey.LIMITED_TO_FULL` when the picture is limited-range luma still to
be expanded (the front does it while copying into the chunk)."""

_GAP_FACTOR = 1.5  # a timestamp gap longer than this many nominal intervals = missing frames


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message without an ``[Errno n]`` prefix (for the
    one-line ``VideoError`` messages)."""
    text = str(exc).strip().splitlines()
    msg = text[0] if text else type(exc).__name__
    return re.sub(r"^\[Errno -?\d+\]\s*", "", msg)


@dataclass(frozen=True, kw_only=True)
class SourceInfo:
    """What a backend learns about its source (the index pass, for containers); the front
    turns it into :class:`~fishtrack.io.video.VideoMeta` and the timestamps."""

    n: int  # frames
    times: np.ndarray  # float64 (n,) seconds from the first frame (NaN without a rate)
    fps: float  # nominal rate (NaN when unknown)
    width: int
    height: int
    codec: str
    count_method: str  # VideoMeta.frame_count_method
    time_source: str
    grey_rule: str
    damage: list[DamageRecord]  # found while indexing
    gap_damage: list[DamageRecord] = field(default_factory=list)
    """Timestamp gaps; moot when ``fps=`` overrides the times."""
    keyframes: np.ndarray | None = None
    """int64 frame numbers decoding can start at without earlier frames (keyframes, in
    presentation order); None when any frame is read alone (images) or it is unknown."""
    encoder: EncoderSettings = field(default_factory=EncoderSettings)
    """What x264/x265 recorded about the compression (empty for other sources)."""


@runtime_checkable
class FrameReader(Protocol):
    """Decodes frames of one source, for one thread (made by :meth:`Backend.reader`)."""

    def frames(self, targets: Iterable[int]) -> Iterator[Frame]:
        """One :data:`Frame` for each of the increasing frame numbers ``targets`` that can be
        read, in that order; a frame that cannot is skipped and reported (``report``)."""
        ...

    def close(self) -> None:
        """Release the reader's file handles."""
        ...


@runtime_checkable
class Backend(Protocol):
    """One kind of input, opened (the constructor checks that it can be read: ``VideoError``
    otherwise) but not yet indexed."""

    path: Path
    width: int
    """Frame width in px (before any crop), known once opened."""
    height: int
    times_from_fps: bool
    """True when :meth:`info` itself turns the ``fps`` override into times (image folders with
    a frame counter in their file names); otherwise the front replaces the times by
    ``i / fps``."""

    def info(self, fps: float | None = None) -> SourceInfo:
        """What the source holds (for containers: runs the index pass once, then cached)."""
        ...

    def reader(self, report: Report) -> FrameReader:
        """A new reader; frames it cannot deliver are passed to ``report``."""
        ...

    def close(self) -> None:
        """Release what the backend holds open (readers are closed by their owners)."""
        ...


def gap_damage(times: np.ndarray, fps: float) -> list[DamageRecord]:
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
