"""What a video source hands out: metadata, chunks of frames and records of damage."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

__all__ = ["DamageKind", "DamageRecord", "DamagedVideoWarning", "VideoMeta", "Chunk"]

DamageKind = Literal["truncated", "corrupt_packet", "undecodable_frame", "missing_frames"]


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
        How frames were turned into 8-bit grey (see the :mod:`fishtrack.io.video` docstring).
    encoder
        What the encoder recorded about the compression, in one line (``"x264 - core 164,
        crf 23"``); ``""`` when the stream holds no such record (only x264/x265 write one).
    crf
        The constant-quality setting x264/x265 recorded (``crf``, or ``qp`` for a constant
        quantizer; lower keeps more detail); NaN when not recorded or coded to a bit rate.
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
    encoder: str = ""
    crf: float = float("nan")


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
