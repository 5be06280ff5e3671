"""Multi-page TIFF stacks (tifffile): every page is one frame."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from fishtrack.errors import VideoError
from fishtrack.io.video.backend import Frame, Report, SourceInfo, one_line
from fishtrack.io.video.grey import N_SCALE_SAMPLES, Scaler, spread
from fishtrack.io.video.records import DamageRecord

TIFF_SUFFIXES = (".tif", ".tiff")

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def is_tiff(path: Path) -> bool:
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


class TiffBackend:
    times_from_fps = False  # ImageJ finterval, else unknown (or the override)

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
            raise VideoError(f"not a readable TIFF file ({one_line(exc)})", path=path) from None
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
                logged.append(f"page {self.n}: {one_line(exc)}")
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
            self.scaler = Scaler("rgb")
            first = [self.scaler.grey(p0.asarray())]
            if first[0].dtype != np.uint8:
                first += [
                    self.scaler.grey(pages[i].asarray())
                    for i in spread(self.n, N_SCALE_SAMPLES)
                    if i > 0
                ]
        except VideoError:
            tif.close()
            raise
        except Exception as exc:  # noqa: BLE001
            tif.close()
            raise VideoError(f"cannot read TIFF pages ({one_line(exc)})", path=path) from None
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

    def info(self, fps: float | None = None) -> SourceInfo:
        fps = self.stated_fps if self.stated_fps else float("nan")
        return SourceInfo(
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

    def reader(self, report: Report) -> _TiffReader:
        return _TiffReader(self, report)

    def close(self) -> None:
        pass


class _TiffReader:
    def __init__(self, b: TiffBackend, report: Report):
        import tifffile

        self.b = b
        self.report = report
        try:
            with _TiffLog():
                self.tif = tifffile.TiffFile(str(b.path))
        except Exception as exc:  # noqa: BLE001
            raise VideoError(f"cannot reopen TIFF ({one_line(exc)})", path=b.path) from None
        self.tif.pages.cache = False

    def frames(self, targets: Iterable[int]) -> Iterator[Frame]:
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
                    DamageRecord(int(t), "undecodable_frame", f"TIFF page: {one_line(exc)}")
                )
                continue
            if logged:  # tifffile read the page but complained (e.g. data past the end)
                self.report(DamageRecord(int(t), "corrupt_packet", f"TIFF page: {logged[0]}"))
            yield t, b.scaler.to_uint8(b.scaler.grey(arr)), None

    def close(self) -> None:
        self.tif.close()
