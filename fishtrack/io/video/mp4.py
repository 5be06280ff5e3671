"""ISO-BMFF (MP4/MOV) top-level boxes: a missing index, a file cut inside a box."""

from __future__ import annotations

import io
from pathlib import Path

MP4_SUFFIXES = (".mp4", ".mov", ".m4v", ".3gp")


def mp4_boxes(path: Path) -> list[tuple[bytes, int, int]]:
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


def mp4_missing_moov(path: Path) -> bool:
    """True when an ISO-BMFF file has media data but no ``moov`` box (recording cut off)."""
    types = {b[0] for b in mp4_boxes(path)}
    return b"ftyp" in types and b"moov" not in types and bool(types & {b"mdat", b"free", b"wide"})


def mp4_complete_prefix(path: Path) -> int | None:
    """End of the last complete top-level box when the file ends inside a box, else None."""
    boxes = mp4_boxes(path)
    try:
        size = path.stat().st_size
    except OSError:
        return None
    if len(boxes) < 2 or boxes[-1][1] + boxes[-1][2] <= size:
        return None
    return boxes[-1][1]


class LimitedFile(io.RawIOBase):
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
