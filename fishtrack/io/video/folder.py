"""Folders of image files, in natural sort order."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np

from fishtrack.errors import VideoError
from fishtrack.io.video.backend import Frame, Report, SourceInfo, one_line
from fishtrack.io.video.grey import N_SCALE_SAMPLES, Scaler, spread
from fishtrack.io.video.records import DamageRecord
from fishtrack.io.video.tiff import TIFF_SUFFIXES

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")


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


class FolderBackend:
    times_from_fps = True  # info(fps) times the files by their name counter

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
            raise VideoError(f"cannot list folder ({one_line(exc)})", path=path) from None
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
        self.scaler = Scaler("rgb" if self.files[0].suffix.lower() in TIFF_SUFFIXES else "bgr")
        try:
            g0 = self.scaler.grey(first)
        except ValueError as exc:
            raise VideoError(f"unsupported image layout ({exc})", path=self.files[0]) from None
        self.height, self.width = g0.shape
        self.grey_dtype = g0.dtype
        if g0.dtype != np.uint8:
            greys = []
            for i in spread(self.n, N_SCALE_SAMPLES):
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

    def info(self, fps: float | None = None) -> SourceInfo:
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
        return SourceInfo(
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

    def reader(self, report: Report) -> _FolderReader:
        return _FolderReader(self, report)

    def close(self) -> None:
        pass


class _FolderReader:
    def __init__(self, b: FolderBackend, report: Report):
        self.b = b
        self.report = report

    def frames(self, targets: Iterable[int]) -> Iterator[Frame]:
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
