"""RTP packets in (RFC 3550), reordered in a small window; RTCP receiver reports out.

Reordering: a packet in sequence goes straight through (no added latency). A
packet from after a gap waits in the window for the missing ones; when the
window holds REORDER_WINDOW packets the gap is declared lost, the caller is
told (`lost`), and the waiting packets go out in order. A packet older than
what already went out (a late duplicate) is dropped. Memory: at most
REORDER_WINDOW packets per track.
"""

from __future__ import annotations

import os
import struct
import time
from dataclasses import dataclass

REORDER_WINDOW = 64  # packets; ~1 IDR at 720p, a few P frames


@dataclass(slots=True)
class RtpPacket:
    seq: int
    ts: int
    ssrc: int
    pt: int
    marker: bool
    payload: bytes


def parse_rtp(data: bytes) -> RtpPacket | None:
    """None for anything that is not an RTP version 2 packet."""
    if len(data) < 12 or data[0] >> 6 != 2:
        return None
    b0, b1 = data[0], data[1]
    off = 12 + 4 * (b0 & 0x0F)
    if b0 & 0x10:  # header extension
        if len(data) < off + 4:
            return None
        off += 4 + 4 * int.from_bytes(data[off + 2:off + 4], "big")
    end = len(data)
    if b0 & 0x20:  # padding
        end -= data[-1]
    if end < off:
        return None
    seq, ts, ssrc = struct.unpack_from("!HII", data, 2)
    return RtpPacket(seq, ts, ssrc, b1 & 0x7F, bool(b1 & 0x80), data[off:end])


def seq_newer(a: int, b: int) -> bool:
    """a comes after b (16-bit serial arithmetic)."""
    return 0 < ((a - b) & 0xFFFF) < 0x8000


class Reorder:
    """Sequence-number reordering in a bounded window; `push` returns (lost_before, packet) in order."""

    def __init__(self, window: int = REORDER_WINDOW) -> None:
        self.window = window
        self.expected: int | None = None
        self._held: dict[int, RtpPacket] = {}
        self.lost = 0  # packets given up on
        self.late = 0  # packets dropped as too late or duplicate
        self.reordered = 0  # packets that arrived early and waited

    def reset(self) -> None:
        self.expected = None
        self._held.clear()

    def push(self, pkt: RtpPacket) -> list[tuple[bool, RtpPacket]]:
        if self.expected is None:
            self.expected = pkt.seq
        if pkt.seq == self.expected:
            out = [(False, pkt)]
            self.expected = (pkt.seq + 1) & 0xFFFF
            self._drain(out)
            return out
        if not seq_newer(pkt.seq, self.expected):
            self.late += 1
            return []
        if (pkt.seq - self.expected) & 0xFFFF >= 0x4000:  # a jump far ahead: the sender restarted its sequence
            self._held.clear()
            self.expected = (pkt.seq + 1) & 0xFFFF
            return [(True, pkt)]
        if pkt.seq in self._held:
            self.late += 1
            return []
        self._held[pkt.seq] = pkt
        self.reordered += 1
        out: list[tuple[bool, RtpPacket]] = []
        if len(self._held) >= self.window:
            first = min(self._held, key=lambda s: (s - self.expected) & 0xFFFF)
            self.lost += (first - self.expected) & 0xFFFF
            self.expected = first
            gap = True
            while self.expected in self._held:
                out.append((gap, self._held.pop(self.expected)))
                gap = False
                self.expected = (self.expected + 1) & 0xFFFF
            self.reordered -= len(out)
            self._drain(out)
        return out

    def _drain(self, out: list[tuple[bool, RtpPacket]]) -> None:
        while self._held and self.expected in self._held:
            out.append((False, self._held.pop(self.expected)))
            self.expected = (self.expected + 1) & 0xFFFF


class ReceiverStats:
    """What an RTCP receiver report says about one source (RFC 3550 6.4.1, A.3, A.8)."""

    def __init__(self, clock_rate: int) -> None:
        self.clock_rate = clock_rate
        self.ssrc: int | None = None
        self.base_seq = 0
        self.max_seq = 0
        self.cycles = 0
        self.received = 0
        self.expected_prior = 0
        self.received_prior = 0
        self.jitter = 0.0
        self._transit: float | None = None
        self.lsr = 0  # middle 32 bits of the last SR's NTP time
        self.lsr_at: float | None = None

    def packet(self, seq: int, ts: int, ssrc: int, arrival: float) -> None:
        if self.ssrc != ssrc:
            self.ssrc, self.base_seq, self.max_seq, self.cycles = ssrc, seq, seq, 0
            self.received = self.expected_prior = self.received_prior = 0
            self.jitter, self._transit = 0.0, None
        self.received += 1
        if seq_newer(seq, self.max_seq):
            if seq < self.max_seq:
                self.cycles += 1 << 16
            self.max_seq = seq
        transit = arrival * self.clock_rate - ts
        if self._transit is not None:
            d = abs(transit - self._transit)
            if d < self.clock_rate * 10:  # ignore timestamp jumps (a new frame's ts is not a wall clock)
                self.jitter += (d - self.jitter) / 16
        self._transit = transit

    def sender_report(self, ntp_mid: int, now: float) -> None:
        self.lsr, self.lsr_at = ntp_mid, now

    def report_block(self, now: float) -> bytes:
        assert self.ssrc is not None
        extended = self.cycles + self.max_seq
        expected = extended - self.base_seq + 1
        lost = max(-(1 << 23), min((1 << 23) - 1, expected - self.received))
        exp_int = expected - self.expected_prior
        rec_int = self.received - self.received_prior
        self.expected_prior, self.received_prior = expected, self.received
        lost_int = exp_int - rec_int
        fraction = (lost_int << 8) // exp_int if exp_int > 0 and lost_int > 0 else 0
        dlsr = int((now - self.lsr_at) * 65536) if self.lsr_at is not None else 0
        return struct.pack("!IB3sIIII", self.ssrc, min(fraction, 255), (lost & 0xFFFFFF).to_bytes(3, "big"),
                           extended & 0xFFFFFFFF, int(self.jitter) & 0xFFFFFFFF, self.lsr & 0xFFFFFFFF,
                           dlsr & 0xFFFFFFFF)


def receiver_report(own_ssrc: int, stats: ReceiverStats, cname: bytes, now: float | None = None) -> bytes:
    """A compound RTCP packet: RR with one report block (none before the first packet) + SDES CNAME."""
    now = time.monotonic() if now is None else now
    blocks = stats.report_block(now) if stats.ssrc is not None else b""
    rr = struct.pack("!BBHI", 0x80 | (1 if blocks else 0), 201, (8 + len(blocks)) // 4 - 1, own_ssrc) + blocks
    item = bytes((1, len(cname))) + cname + b"\x00"
    item += b"\x00" * (-len(item) % 4)
    sdes = struct.pack("!BBHI", 0x81, 202, (len(item) + 4) // 4, own_ssrc) + item
    return rr + sdes


def parse_rtcp(data: bytes, on_sr, on_bye) -> None:  # type: ignore[no-untyped-def]
    """Walk a compound RTCP packet: sender reports (for LSR) and BYE (the source is leaving)."""
    i = 0
    while i + 4 <= len(data):
        if data[i] >> 6 != 2:
            return
        pt = data[i + 1]
        length = (int.from_bytes(data[i + 2:i + 4], "big") + 1) * 4
        if i + length > len(data):
            return
        if pt == 200 and length >= 28:
            ssrc, ntp_sec, ntp_frac = struct.unpack_from("!III", data, i + 4)
            on_sr(ssrc, ((ntp_sec & 0xFFFF) << 16) | (ntp_frac >> 16))
        elif pt == 203:
            on_bye()
        i += length


def new_ssrc() -> int:
    return int.from_bytes(os.urandom(4), "big") or 1


class Unwrap:
    """32-bit RTP timestamps → a running 64-bit count."""

    def __init__(self) -> None:
        self.last: int | None = None
        self.value = 0

    def __call__(self, ts: int) -> int:
        if self.last is None:
            self.value = ts
        else:
            d = (ts - self.last) & 0xFFFFFFFF
            self.value += d if d < 0x80000000 else d - 0x100000000
        self.last = ts
        return self.value
