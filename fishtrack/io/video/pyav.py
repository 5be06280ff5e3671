"""Containers read with PyAV (FFmpeg): the index pass, seeking and decoding."""

from __future__ import annotations

import math
import threading
from array import array
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from fishtrack.errors import VideoError
from fishtrack.io.video.backend import Frame, Report, SourceInfo, gap_damage, one_line
from fishtrack.io.video.encoder import EncoderSettings, encoder_settings
from fishtrack.io.video.grey import FULL_RANGE_FORMATS, GREY_FORMATS, LIMITED_TO_FULL, LUMA_FORMATS
from fishtrack.io.video.mp4 import (
    MP4_SUFFIXES,
    LimitedFile,
    mp4_complete_prefix,
    mp4_missing_moov,
)
from fishtrack.io.video.packets import FrameIndex, PacketLog, PacketTable
from fishtrack.io.video.records import DamageKind, DamageRecord

DECODE_THREADS = 0
"""FFmpeg decoding threads per opened video (``thread_count``; 0: FFmpeg's choice, about one per
core). ``fishtrack._threads.limit_threads`` sets it in worker processes sharing the cores."""
_MAX_DEMUX_RETRIES = 32  # demux restarts after errors, per pass
_MAX_SEEK_ATTEMPTS = 3  # seeks to ever earlier keyframes before decoding from the start
_SEEK_MIN_GAP = 2  # seek forward only when it skips more than this many frames (measured:
# a seek costs less than decoding three frames, for MJPG and for frame-threaded H.264)
_MAX_SAFE_RETRIES = 64  # single-threaded re-decodes of a GOP after a lost frame, per read


def _is_av_error(exc: BaseException) -> bool:
    mod = type(exc).__module__ or ""
    return mod == "av" or mod.startswith("av.") or isinstance(exc, OSError)


def _av_open(path: Path, limit: int | None = None):
    import av

    try:
        if limit is not None:
            return av.open(LimitedFile(path, limit), mode="r", format=None)
        return av.open(str(path), mode="r")
    except Exception as exc:  # noqa: BLE001 - every FFmpeg failure becomes a VideoError
        if path.suffix.lower() in MP4_SUFFIXES and mp4_missing_moov(path):
            raise VideoError(
                "MP4/MOV index ('moov' atom) is missing - the recording was probably cut off; "
                "its frames cannot be located",
                path=path,
            ) from None
        if isinstance(exc, PermissionError):
            raise VideoError("permission denied", path=path) from None
        why = one_line(exc).replace(f": '{path}'", "")  # FFmpeg repeats the file name
        raise VideoError(f"not a readable video file (FFmpeg: {why})", path=path) from None


def _av_open_recovering(path: Path) -> tuple[Any, int | None]:
    """Open a container; an MP4 cut inside a box is opened up to its last complete box."""
    try:
        return _av_open(path), None
    except VideoError:
        limit = mp4_complete_prefix(path) if path.suffix.lower() in MP4_SUFFIXES else None
        if limit is None or mp4_missing_moov(path):
            raise
        try:
            return _av_open(path, limit), limit
        except VideoError:
            pass
        raise



class AVBackend:
    """Containers read with PyAV."""

    times_from_fps = False  # times come from the container (or the override)

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
            # x265 in MP4 keeps its settings record in the stream header, x264 in the first packet
            self.header_encoder = encoder_settings(bytes(cc.extradata or b""))
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
                f"cannot read the video stream ({one_line(exc)})", path=path
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
        self._info: SourceInfo | None = None
        self.index: FrameIndex | None = None
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
    def info(self, fps: float | None = None) -> SourceInfo:
        if self._info is None:
            self._info = self._scan()
        return self._info

    def _scan(self) -> SourceInfo:
        """The index pass: one demux-only pass over the file (no decoding) gives the exact
        frame count, every frame's timestamp, the keyframes and the damage the demuxer sees."""
        log, entries, demux_error = self._demux()
        if not len(log):
            self.close()
            why = f" (FFmpeg: {demux_error})" if demux_error else ""
            raise VideoError(f"contains no readable video frames{why}", path=self.path)
        table, time_source = log.table()
        encoder = self.header_encoder if self.header_encoder.name else log.encoder or EncoderSettings()
        ordinal = time_source is None  # no timestamps: frames numbered in decode order
        retime = None
        if not ordinal and log.pts_equal_dts():
            table, retime = table.retimed_by_index(entries, self.file_size)
        del log
        table, n_dup, dup_frame = table.by_key()  # presentation order

        # ---- does the file hold less than its header declares?
        lost_start = None if ordinal else self._lost_start(table.keys)
        trunc = None if ordinal else self._truncation(
            table, start_s=lost_start[0] if lost_start else 0.0
        )
        cut_short = table.ends_cut_short(self.file_size)
        tail_keys = np.zeros(0, np.int64)
        if not ordinal and (cut_short or (trunc is not None and trunc[0] == "truncated")):
            tail_keys = table.lost_tail_keys()
            table = table.with_lost(tail_keys).by_key()[0]
        self.index = FrameIndex(table, ordinal, retime)
        times, time_source = self._frame_times(table, time_source)

        # ---- damage found by the index pass
        n = len(table)
        damage: list[DamageRecord] = []
        if n_dup:
            damage.append(
                DamageRecord(
                    dup_frame,
                    "corrupt_packet",
                    f"{n_dup} packet(s) repeat another packet's timestamp (first: frame "
                    f"{dup_frame}); ignored",
                )
            )
        damage += table.slot_damage(tail_keys, cut_short)
        if demux_error is not None:
            damage.append(
                DamageRecord(
                    n,
                    "corrupt_packet",
                    f"demuxing stopped with an error after byte {table.last_byte()} of "
                    f"{self.file_size}: {demux_error}",
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
            full = self.path.stat().st_size
            damage.append(
                DamageRecord(
                    n,
                    "truncated",
                    f"the file ends inside an MP4 box; read up to byte {self.limit} of {full}",
                )
            )
        return SourceInfo(
            n=n,
            times=times,
            fps=self.rate,
            width=self.width,
            height=self.height,
            codec=self.codec,
            count_method="demuxed packets",
            time_source=time_source,
            grey_rule=self._grey_rule(),
            damage=damage,
            gap_damage=[] if ordinal else gap_damage(times, self.rate),
            keyframes=None if ordinal else self.index.key_slots.astype(np.int64),
            encoder=encoder,
        )

    def _demux(self) -> tuple[PacketLog, tuple[np.ndarray, np.ndarray, np.ndarray], str | None]:
        """Every packet of the video stream, the container's index entries (byte positions,
        timestamps, sizes) and the last demux error (None: read to the end cleanly)."""
        c = self.take_container() or _av_open(self.path, self.limit)
        clean = False  # demuxed to the end without an error: the handle can be reused
        log = PacketLog()
        demux_error: str | None = None
        try:
            s = c.streams[self.stream_index]
            errors = 0
            while True:
                n_before = len(log)
                try:
                    log.extend(c.demux(s))
                    break
                except Exception as exc:  # noqa: BLE001
                    if not _is_av_error(exc):
                        raise
                    errors += 1
                    demux_error = one_line(exc)
                    if errors >= _MAX_DEMUX_RETRIES or len(log) == n_before:
                        break
            clean = demux_error is None
            entries = _index_entries(s)
        finally:
            if clean:  # the first reader seeks it back to its first keyframe
                self._give_container(c)
            else:
                _close_quietly(c)
        return log, entries, demux_error

    def _frame_times(self, table: PacketTable, time_source: str | None) -> tuple[np.ndarray, str]:
        """Seconds from the first frame, and where they come from (``time_source`` None: the
        stream has no timestamps, so packet durations or the nominal rate)."""
        tb = float(self.time_base)
        if time_source is not None:
            return (table.keys - table.keys[0]).astype(np.float64) * tb, time_source
        d = table.dur.astype(np.float64)  # decode order (= frame order without timestamps)
        if d.size and (d > 0).all():
            return np.concatenate([[0.0], np.cumsum(d[:-1])]) * tb, "packet durations"
        return np.arange(len(table), dtype=np.float64) / self.rate, "nominal frame rate"

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

    def _lost_start(self, keys: np.ndarray) -> tuple[float, str] | None:
        """Matroska timestamps start at 0: a first frame later than that means the start of
        the file could not be read (frames before it are lost; times still count from the first
        frame the file holds). Other containers may start at any time, so are not judged."""
        fmt, fps, tb = self.format_name or "", self.rate, float(self.time_base)
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
        self, table: PacketTable, start_s: float = 0.0
    ) -> tuple[DamageKind, str] | None:
        """Compare what the file holds with the length its header declares (``start_s``:
        seconds lost before the first frame, not missing at the end)."""
        fps, tb, keys, durs = self.rate, float(self.time_base), table.keys, table.dur
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
        last_end = table.last_byte()
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
        if f in GREY_FORMATS:
            return "8-bit grey as stored"
        if f in FULL_RANGE_FORMATS:
            return "full-range luma (Y) as stored"
        if f in LUMA_FORMATS:
            return "luma (Y); limited range 16-235 expanded to 0-255 unless flagged full range"
        return f"FFmpeg gray conversion from {f or 'unknown pixel format'}"

    def reader(self, report: Report) -> _AVReader:
        self.info()
        return _AVReader(self, report)

    def close(self) -> None:
        c = self.take_container()
        if c is not None:
            _close_quietly(c)


def _index_entries(s) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The container index of stream ``s``: byte positions, timestamps and sizes of the packets
    it lists (empty when the container has none or it cannot be read)."""
    cols = (array("q"), array("q"), array("q"))
    try:
        for e in s.index_entries:
            if e.size > 0 and e.pos >= 0:
                cols[0].append(e.pos)
                cols[1].append(e.timestamp)
                cols[2].append(e.size)
    except Exception:  # noqa: BLE001 - the index is optional information
        cols = (array("q"), array("q"), array("q"))
    pos, ts, size = (np.frombuffer(c, np.int64) for c in cols)
    return pos, ts, size


def _luma_view(frame) -> tuple[np.ndarray, np.ndarray | None]:
    """A view of the frame's grey/luma plane and the LUT to apply (None: use as is)."""
    name = frame.format.name
    if name in GREY_FORMATS or name in LUMA_FORMATS or name in FULL_RANGE_FORMATS:
        plane = frame.planes[0]
        h, w = frame.height, frame.width
        buf = np.frombuffer(plane, np.uint8)
        view = buf[: plane.line_size * h].reshape(h, plane.line_size)[:, :w]
        if name in GREY_FORMATS or name in FULL_RANGE_FORMATS:
            return view, None
        if int(getattr(frame, "color_range", 0) or 0) == 2:  # AVCOL_RANGE_JPEG
            return view, None
        return view, LIMITED_TO_FULL
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

    def __init__(self, backend: AVBackend, report: Report):
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
            if not safe and DECODE_THREADS > 0:
                s.codec_context.thread_count = DECODE_THREADS
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
                self.last_error = one_line(exc)
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

    def frames(self, targets: Iterable[int]) -> Iterator[Frame]:
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
