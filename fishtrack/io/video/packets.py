"""The container index: what the demux-only pass (:mod:`.pyav`) learns about every frame.

:class:`PacketLog` collects the packets as they are demuxed, :class:`PacketTable` holds one row
per frame slot (parallel columns, spliced and sorted together), and :class:`FrameIndex` keeps
the columns the readers need.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from dataclasses import dataclass, fields, replace

import numpy as np

from fishtrack.io.video.encoder import EncoderSettings, encoder_settings
from fishtrack.io.video.records import DamageKind, DamageRecord

_NO_TS = -(2**63)  # "no timestamp" while collecting packets
_NO_DTS = -(2**62)  # "no dts" in PacketTable.dts (the frame is then sought by its key)


class PacketLog:
    """The packets met by the demux pass, in decode order: compact columns (8 bytes a value,
    so the pass stays small for long videos), one value per non-empty packet."""

    def __init__(self) -> None:
        self.pts = array("q")
        self.dts = array("q")
        self.pos = array("q")
        self.size = array("q")
        self.dur = array("q")
        self.key = bytearray()
        self.corrupt = bytearray()
        self.encoder: EncoderSettings | None = None  # read from the first non-empty packet

    def __len__(self) -> int:
        return len(self.pts)

    def extend(self, packets: Iterable) -> None:
        """Append every non-empty packet; what was appended stays if ``packets`` raises."""
        add_pts, add_dts, add_pos = self.pts.append, self.dts.append, self.pos.append
        add_size, add_dur = self.size.append, self.dur.append
        add_key, add_corrupt = self.key.append, self.corrupt.append
        for pkt in packets:
            if not pkt.size:
                continue
            if self.encoder is None:
                self.encoder = encoder_settings(bytes(pkt))
            pts, dts, ppos = pkt.pts, pkt.dts, pkt.pos
            add_pts(_NO_TS if pts is None else pts)
            add_dts(_NO_TS if dts is None else dts)
            add_pos(-1 if ppos is None else ppos)
            add_size(pkt.size)
            add_dur(pkt.duration or 0)
            add_key(pkt.is_keyframe)
            add_corrupt(pkt.is_corrupt)

    def pts_equal_dts(self) -> bool:
        """No packet has a pts different from its dts (no frame reordering)."""
        pts = np.frombuffer(self.pts, np.int64)
        dts = np.frombuffer(self.dts, np.int64)
        return bool(np.all((pts == _NO_TS) | (dts == _NO_TS) | (pts == dts)))

    def table(self) -> tuple[PacketTable, str | None]:
        """The packets as a :class:`PacketTable` keyed by pts (by dts where a packet has no pts),
        and the time source (``"container pts"``/``"container dts"``); when some packet has
        neither, the keys are decode-order ordinals and the time source is None."""
        n = len(self)
        pts = np.frombuffer(self.pts, np.int64)
        dts = np.frombuffer(self.dts, np.int64)
        has_pts, has_dts = pts != _NO_TS, dts != _NO_TS
        time_source: str | None = "container pts"
        if has_pts.all():
            keys = pts.copy()
        elif (has_pts | has_dts).all():
            keys = np.where(has_pts, pts, dts)
            time_source = "container dts" if not has_pts.any() else "container pts"
        else:
            time_source = None
            keys = np.arange(n, dtype=np.int64)
        table = PacketTable(
            keys=keys,
            dec=np.arange(n, dtype=np.int64),
            dts=np.where(has_dts, dts, _NO_DTS),
            is_key=np.frombuffer(self.key, np.uint8).astype(bool),
            has_packet=np.ones(n, bool),
            corrupt=np.frombuffer(self.corrupt, np.uint8).astype(bool),
            pos=np.frombuffer(self.pos, np.int64).copy(),
            size=np.frombuffer(self.size, np.int64).copy(),
            dur=np.frombuffer(self.dur, np.int64).copy(),
        )
        return table, time_source


@dataclass(frozen=True)
class PacketTable:
    """One row per frame slot: a demuxed packet, or a frame known to exist whose packet is lost
    (a placeholder). All columns have one length and are spliced and reordered together."""

    keys: np.ndarray  # int64 ordering timestamp (pts, else dts; decode ordinal without either)
    dec: np.ndarray  # int64 decode-order ordinal of the packet; -1 for a placeholder
    dts: np.ndarray  # int64 dts; _NO_DTS when the packet has none
    is_key: np.ndarray  # bool keyframe packet
    has_packet: np.ndarray  # bool a packet was demuxed (False for a placeholder)
    corrupt: np.ndarray  # bool the demuxer flagged the packet as damaged
    pos: np.ndarray  # int64 byte position in the file; -1 unknown
    size: np.ndarray  # int64 packet bytes
    dur: np.ndarray  # int64 packet duration in time-base units; 0 unknown

    def __len__(self) -> int:
        return int(self.keys.shape[0])

    def take(self, rows: np.ndarray) -> PacketTable:
        """The rows ``rows`` (indices or mask) of every column."""
        return PacketTable(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})

    def with_keys(self, keys: np.ndarray) -> PacketTable:
        return replace(self, keys=keys)

    def with_lost(self, keys: np.ndarray) -> PacketTable:
        """Placeholder rows appended for frames at timestamps ``keys`` whose packets are lost
        (sought by their key; no packet to decode)."""
        m = int(keys.size)
        if m == 0:
            return self
        add = {
            "keys": keys,
            "dec": np.full(m, -1, np.int64),
            "dts": keys,
            "is_key": np.zeros(m, bool),
            "has_packet": np.zeros(m, bool),
            "corrupt": np.zeros(m, bool),
            "pos": np.full(m, -1, np.int64),
            "size": np.zeros(m, np.int64),
            "dur": np.zeros(m, np.int64),
        }
        return PacketTable(
            **{k: np.concatenate([getattr(self, k), v]) for k, v in add.items()}
        )

    def by_key(self) -> tuple[PacketTable, int, int]:
        """Rows in presentation order (stable sort by key); of rows with the same key only the
        first is kept. Returns the table, the number of rows dropped and the frame number of
        the first dropped one (the frame its packet duplicates; 0 if none)."""
        order = np.argsort(self.keys, kind="stable")
        keys_sorted = self.keys[order]
        first = np.ones(keys_sorted.size, bool)
        first[1:] = keys_sorted[1:] != keys_sorted[:-1]
        n_dup = int((~first).sum())
        dup_frame = int(np.cumsum(first)[np.flatnonzero(~first)[0]] - 1) if n_dup else 0
        return self.take(order[first]), n_dup, dup_frame

    def seek_ts(self) -> np.ndarray:
        """Timestamp to seek to each row's packet: its dts, else its key."""
        return np.where(self.dts > _NO_DTS, self.dts, self.keys)

    def last_byte(self) -> int:
        """End of the furthest packet in the file (-1 if no position is known)."""
        return int((self.pos + self.size).max()) if (self.pos >= 0).any() else -1

    def last_decoded(self) -> int:
        """Row of the last packet in decode order."""
        return int(np.argmax(self.dec))

    def ends_cut_short(self, file_size: int) -> bool:
        """The last packet in decode order is flagged damaged and reaches the end of the file
        (or has no known position): the file was cut off inside it."""
        last = self.last_decoded()
        return bool(self.corrupt[last]) and (
            self.pos[last] < 0 or self.pos[last] + self.size[last] >= file_size - 64
        )

    def retimed_by_index(
        self, entries: tuple[np.ndarray, np.ndarray, np.ndarray], file_size: int
    ) -> tuple[PacketTable, tuple[np.ndarray, np.ndarray] | None]:
        """Timestamps from the container index, and a placeholder for every packet it lists
        that the demuxer did not deliver.

        Demuxers that number packets by counting (AVI) renumber everything after a chunk they
        could not parse. When the container index (``entries``: byte positions, timestamps and
        sizes) lists every packet by byte position, the frame timestamps are taken from it, and
        each listed packet that lies inside the file but was lost keeps a slot. Returns the
        table and, when the timestamps changed, the sorted (positions, timestamps) the readers
        use to retime packets (else None). Only for streams without frame reordering (the
        caller checks).
        """
        e_pos, e_ts, e_size = entries
        if e_pos.size < len(self):
            return self, None
        e_end = e_pos + e_size
        uniq = np.unique(e_pos).size == e_pos.size
        if not (uniq and (self.pos >= 0).all()):
            return self, None
        # an entry may point at the chunk header a few bytes before the packet data
        order = np.argsort(e_pos)
        j = np.searchsorted(e_pos[order], self.pos, side="right") - 1
        gap = self.pos - e_pos[order][np.clip(j, 0, None)]
        found = (j >= 0) & (gap >= 0) & (gap <= 16)
        if not (found.all() and np.unique(j).size == j.size):
            return self, None
        table, retime = self, None
        matched_ts = e_ts[order][j]
        if not np.array_equal(matched_ts, self.keys):
            table = self.with_keys(matched_ts)
            retime = (e_pos[order], e_ts[order])
        in_file = e_end <= file_size
        seen = np.zeros(e_pos.size, bool)
        seen[order[j]] = True
        return table.with_lost(e_ts[(~seen) & in_file]), retime

    def lost_tail_keys(self) -> np.ndarray:
        """Timestamps of frames lost at the end of a truncated file with reordered (B-)frames.

        Packets after the cut are missing in decode order; with B-frames some of them belong
        between frames that are present (a P-frame is stored before the B-frames it follows on
        screen). They are found as timestamp gaps among the last few frames (as many as the
        stream's reordering depth) and get slots, so that the frames around them keep their
        numbers.
        """
        keys, dec = self.keys, self.dec
        n = keys.size
        ok = self.has_packet & (dec >= 0)
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

    def slot_damage(self, tail_keys: np.ndarray, cut_short: bool) -> list[DamageRecord]:
        """Records for frame slots without a readable packet: placeholders (``tail_keys``: lost
        with the end of the file, others: listed by the container index but unreadable) and
        packets flagged as damaged (``cut_short``: the last one is cut off by the end)."""
        damage = []
        tail_set = set(tail_keys.tolist())
        for slot in np.flatnonzero(~self.has_packet):
            if int(self.keys[slot]) in tail_set:
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
        last_dec_slot = self.last_decoded()
        for slot in np.flatnonzero(self.corrupt):
            at_end = slot == last_dec_slot and cut_short
            kind: DamageKind = "truncated" if at_end else "corrupt_packet"
            what = (
                "cut short by the end of the file" if at_end else "flagged corrupt by the demuxer"
            )
            damage.append(DamageRecord(int(slot), kind, f"packet {what}"))
        return damage


class FrameIndex:
    """Per-frame (presentation order) columns the readers need to seek and to number frames."""

    def __init__(
        self,
        table: PacketTable,
        ordinal: bool,
        retime: tuple[np.ndarray, np.ndarray] | None = None,
    ):
        self.keys = table.keys  # int64 pts (or dts) in stream time base; 0..n-1 in ordinal mode
        self.dec = table.dec  # int64 decode-order ordinal of the frame's packet, -1 if none
        self.seek_ts = table.seek_ts()  # int64 timestamp to seek to this frame's packet
        self.is_key = table.is_key  # bool keyframe packet
        # bool a readable packet exists: packets the demuxer flags as damaged are not decoded
        # (their frames are reported instead)
        self.has_packet = table.has_packet & ~table.corrupt
        self.ordinal = ordinal  # True: no timestamps; frames numbered in decode order
        self.key_slots = np.flatnonzero(self.is_key & self.has_packet)
        self.n = int(self.keys.shape[0])
        # (entry positions, entry timestamps): packets get their timestamps from the container
        # index by byte position (demuxers that renumber after a lost chunk)
        self.retime = retime

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
