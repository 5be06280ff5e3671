"""Per-frame tables of a container stream, built by the index pass (:mod:`.pyav`)."""

from __future__ import annotations

import numpy as np


class FrameIndex:
    """Per-frame (presentation order) tables of a container stream."""

    def __init__(self, keys, dec, seek_ts, is_key, has_packet, ordinal):
        self.keys = keys  # int64 pts (or dts) in stream time base; 0..n-1 in ordinal mode
        self.dec = dec  # int64 decode-order ordinal of the frame's packet, -1 if none
        self.seek_ts = seek_ts  # int64 timestamp to seek to this frame's packet (dts or pts)
        self.is_key = is_key  # bool keyframe packet
        self.has_packet = has_packet  # bool a readable packet exists
        self.ordinal = ordinal  # True: no timestamps; frames numbered in decode order
        self.key_slots = np.flatnonzero(is_key & has_packet)
        self.n = int(keys.shape[0])
        # (entry positions, entry timestamps): packets get their timestamps from the container
        # index by byte position (demuxers that renumber after a lost chunk)
        self.retime: tuple[np.ndarray, np.ndarray] | None = None

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


def lost_tail_keys(keys: np.ndarray, dec: np.ndarray, has_pk: np.ndarray) -> np.ndarray:
    """Timestamps of frames lost at the end of a truncated file with reordered (B-)frames.

    Packets after the cut are missing in decode order; with B-frames some of them belong between
    frames that are present (a P-frame is stored before the B-frames it follows on screen). They
    are found as timestamp gaps among the last few frames (as many as the stream's reordering
    depth) and get slots, so that the frames around them keep their numbers.
    """
    n = keys.size
    ok = has_pk & (dec >= 0)
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
