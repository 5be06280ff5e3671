"""Rendering a matplotlib figure to bytes, and the report's second process that renders
SVGs (``fishtrack.report._SvgApart``, issue 15).

Kept apart from :mod:`fishtrack.report` so that the second process, ``python -m
fishtrack._figure_render``, imports matplotlib alone (not pandas, scipy and the statistics):
it reads pickled figures from standard input and writes each one's SVG to standard output,
in order, as length-prefixed messages."""

from __future__ import annotations

import io
import pickle
import sys


def figure_bytes(fig, fmt: str = "png", *, dpi: int = 110) -> bytes:
    """Render a figure to PNG or SVG bytes (Agg / SVG backends, no display needed)."""
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi, metadata={"Date": None} if fmt == "svg" else None)
    return buf.getvalue()


def write_frame(stream, data: bytes) -> None:
    """One length-prefixed message on ``stream``."""
    stream.write(len(data).to_bytes(8, "little"))
    stream.write(data)
    stream.flush()


def read_frames(stream):
    """The length-prefixed messages of ``stream``, one by one, until it ends."""
    while True:
        head = stream.read(8)
        n = int.from_bytes(head, "little")
        data = stream.read(n) if len(head) == 8 else b""
        if len(head) < 8 or len(data) < n:
            return
        yield data


def main() -> None:
    for blob in read_frames(sys.stdin.buffer):
        write_frame(sys.stdout.buffer, figure_bytes(pickle.loads(blob), "svg"))


if __name__ == "__main__":
    main()
