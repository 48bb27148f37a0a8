"""RTP packets (RFC 3550 §5.1), RFC 4571 framing on TCP, and a small reordering window.

Pure: bytes in, payloads out, every oddity counted rather than raised past the caller.
"""

from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass

MAX_DROPOUT = 3000  # RFC 3550 A.1: a jump this far ahead is a restart, not a loss
MAX_MISORDER = 100


class RtpError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class RtpPacket:
    payload_type: int
    seq: int
    timestamp: int
    ssrc: int
    marker: bool
    payload: bytes

    def encode(self) -> bytes:
        return struct.pack("!BBHII", 0x80, (0x80 if self.marker else 0) | self.payload_type, self.seq,
                           self.timestamp, self.ssrc) + self.payload


def parse(data: bytes) -> RtpPacket:
    if len(data) < 12:
        raise RtpError("shorter than an RTP header")
    b0, b1, seq, ts, ssrc = struct.unpack_from("!BBHII", data)
    if b0 >> 6 != 2:
        raise RtpError("not RTP version 2")
    off = 12 + 4 * (b0 & 0x0F)
    if b0 & 0x10:  # header extension
        if len(data) < off + 4:
            raise RtpError("truncated header extension")
        off += 4 + 4 * struct.unpack_from("!H", data, off + 2)[0]
    end = len(data)
    if b0 & 0x20:  # padding: the last octet counts it
        pad = data[-1]
        if pad == 0 or off + pad > end:
            raise RtpError("bad padding")
        end -= pad
    if off > end:
        raise RtpError("truncated header")
    return RtpPacket(b1 & 0x7F, seq, ts, ssrc, bool(b1 & 0x80), bytes(data[off:end]))


def frame4571(packet: bytes) -> bytes:
    if len(packet) > 0xFFFF:
        raise RtpError("an RFC 4571 frame holds at most 65535 bytes")
    return struct.pack("!H", len(packet)) + packet


class Rfc4571Decoder:
    """Splits a TCP byte stream into RTP packets by their 2-byte big-endian length."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.empty_frames = 0

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        out = []
        pos = 0
        buf = self._buf
        while len(buf) - pos >= 2:
            n = buf[pos] << 8 | buf[pos + 1]
            if n == 0:
                self.empty_frames += 1
                pos += 2
                continue
            if len(buf) - pos - 2 < n:
                break
            out.append(bytes(buf[pos + 2:pos + 2 + n]))
            pos += 2 + n
        del buf[:pos]
        return out

    @property
    def pending(self) -> int:
        return len(self._buf)


class Reorder:
    """Puts packets back in sequence order within a window; losses skipped and counted, duplicates dropped.

    A packet far from the expected number (a sender that restarted) is taken, as a new start, only
    when the packet after it follows it; a lone stray is dropped and counted.
    A gap is waited for until `window` later packets have come (or `max_wait_s` has passed since
    the first of them came): then the missing ones are counted lost and delivery goes on.
    """

    def __init__(self, window: int = 64, max_wait_s: float = 0.2) -> None:
        self.window = window
        self.max_wait_s = max_wait_s
        self._next: int | None = None  # the sequence number due next
        self._held: dict[int, tuple[RtpPacket, float]] = {}
        self._bad_seq: int | None = None
        self.counts: Counter[str] = Counter()

    def push(self, pkt: RtpPacket, now: float) -> list[tuple[RtpPacket, bool]]:
        """Packets now deliverable, in order, each with `after_gap` (True: packets before it were lost)."""
        if self._next is None:
            self._next = pkt.seq
        delta = (pkt.seq - self._next) & 0xFFFF
        if delta >= 0x8000 and 0x10000 - delta <= MAX_MISORDER:  # a little behind the head
            self.counts["late_or_duplicate"] += 1
            return []
        if delta > MAX_DROPOUT:  # far off: a restart only if the next packet follows it (RFC 3550 A.1)
            if pkt.seq != self._bad_seq:
                self._bad_seq = (pkt.seq + 1) & 0xFFFF
                self.counts["out_of_range"] += 1
                return []
            self.counts["restarts"] += 1
            out = self._flush_all()
            self._next = pkt.seq
            return out + self._deliver_from(pkt, now, gap=True)
        if pkt.seq in self._held:
            self.counts["late_or_duplicate"] += 1
            return []
        return self._deliver_from(pkt, now, gap=False)

    def _deliver_from(self, pkt: RtpPacket, now: float, gap: bool) -> list[tuple[RtpPacket, bool]]:
        self._held[pkt.seq] = (pkt, now)
        out: list[tuple[RtpPacket, bool]] = []
        assert self._next is not None
        while True:
            held = self._held.pop(self._next, None)
            if held is not None:
                out.append((held[0], gap))
                gap = False
                self._next = (self._next + 1) & 0xFFFF
                continue
            if not self._held:
                break
            oldest = min(t for _, t in self._held.values())
            if len(self._held) <= self.window and now - oldest < self.max_wait_s:
                break
            # give up on the gap: skip to the first packet we hold
            first = min(self._held, key=lambda s: (s - self._next) & 0xFFFF)  # type: ignore[operator]
            self.counts["lost"] += (first - self._next) & 0xFFFF
            self._next = first
            gap = True
        self.counts["delivered"] += len(out)
        return out

    def _flush_all(self) -> list[tuple[RtpPacket, bool]]:
        assert self._next is not None
        nxt = self._next
        ordered = sorted(self._held.values(), key=lambda pt: (pt[0].seq - nxt) & 0xFFFF)
        self._held.clear()
        out = [(p, True) for p, _ in ordered]
        self.counts["delivered"] += len(out)
        return out
