"""RTP packetization: H.264 per RFC 6184 (single NAL unit + FU-A), H.265 per RFC 7798 (single + FU).

The loop's slice NAL units are fragmented once (``PacketizedLoop``); per frame only the stamp
SEI is new, and RTP headers are stamped on at send time (``RtpStream``).
"""
from __future__ import annotations

import os
import struct
import time

from .loop import EncodedLoop
from .sei import build_stamp_nal

PAYLOAD_TYPE = 96
CLOCK_RATE = 90_000
DEFAULT_MAX_PAYLOAD = 1400  # keeps IPv4/UDP datagrams under a 1500-byte MTU
_RTP_HEADER = struct.Struct("!BBHII")
_NTP_EPOCH_OFFSET = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01


def fragment_h264(nal: bytes, max_payload: int) -> list[bytes]:
    """RTP payloads for one H.264 NAL unit: itself, or FU-A fragments (RFC 6184 5.8)."""
    if len(nal) <= max_payload:
        return [nal]
    indicator = (nal[0] & 0xE0) | 28
    ntype = nal[0] & 0x1F
    body = nal[1:]
    step = max_payload - 2
    out: list[bytes] = []
    for off in range(0, len(body), step):
        fu = ntype | (0x80 if off == 0 else 0) | (0x40 if off + step >= len(body) else 0)
        out.append(bytes((indicator, fu)) + body[off:off + step])
    return out


def fragment_h265(nal: bytes, max_payload: int) -> list[bytes]:
    """RTP payloads for one H.265 NAL unit: itself, or FU fragments (RFC 7798 4.4.3)."""
    if len(nal) <= max_payload:
        return [nal]
    ntype = (nal[0] >> 1) & 0x3F
    hdr = bytes(((nal[0] & 0x81) | (49 << 1), nal[1]))
    body = nal[2:]
    step = max_payload - 3
    out: list[bytes] = []
    for off in range(0, len(body), step):
        fu = ntype | (0x80 if off == 0 else 0) | (0x40 if off + step >= len(body) else 0)
        out.append(hdr + bytes((fu,)) + body[off:off + step])
    return out


def fragment(codec: str, nal: bytes, max_payload: int = DEFAULT_MAX_PAYLOAD) -> list[bytes]:
    return fragment_h264(nal, max_payload) if codec == "h264" else fragment_h265(nal, max_payload)


class PacketizedLoop:
    """The loop's RTP payloads, fragmented once and shared by all sessions."""

    def __init__(self, loop: EncodedLoop, max_payload: int = DEFAULT_MAX_PAYLOAD) -> None:
        if not 64 <= max_payload <= 65000:
            raise ValueError("max RTP payload must be 64..65000 bytes")
        self.loop = loop
        self.codec = loop.codec
        self.max_payload = max_payload
        params = [p for n in loop.param_sets for p in fragment(self.codec, n, max_payload)]
        self._prefix = [params] + [[] for _ in range(len(loop) - 1)]
        self._slices = [[p for n in f for p in fragment(self.codec, n, max_payload)] for f in loop.frames]

    def __len__(self) -> int:
        return len(self._slices)

    def payloads(self, index: int, counter: int, send_us: int) -> list[bytes]:
        """Parameter sets (IDR only), the stamp SEI, then the slice payloads of frame ``index``."""
        sei = fragment(self.codec, build_stamp_nal(self.codec, counter, send_us), self.max_payload)
        return self._prefix[index] + sei + self._slices[index]


class RtpStream:
    """Sequence number / timestamp / SSRC state of one outgoing RTP stream (one per session)."""

    def __init__(self, clock_origin: float) -> None:
        rnd = os.urandom(10)
        self.ssrc = int.from_bytes(rnd[0:4], "big") or 1
        self.seq = int.from_bytes(rnd[4:6], "big")
        self.ts_base = int.from_bytes(rnd[6:10], "big")
        self.clock_origin = clock_origin  # monotonic seconds that map to ts_base
        self.packets = 0
        self.octets = 0

    def timestamp(self, mono: float) -> int:
        """The 90 kHz RTP timestamp of a monotonic-clock instant."""
        return (self.ts_base + round((mono - self.clock_origin) * CLOCK_RATE)) & 0xFFFFFFFF

    def packetize(self, payloads: list[bytes], ts: int) -> list[bytes]:
        """RTP packets for one access unit; the marker bit is set on the last one."""
        last = len(payloads) - 1
        out: list[bytes] = []
        seq, ssrc = self.seq, self.ssrc
        for i, payload in enumerate(payloads):
            out.append(_RTP_HEADER.pack(0x80, PAYLOAD_TYPE | (0x80 if i == last else 0), seq, ts, ssrc) + payload)
            seq = (seq + 1) & 0xFFFF
            self.octets += len(payload)
        self.seq = seq
        self.packets += len(out)
        return out

    def sender_report(self, mono_now: float, wall_now: float | None = None,
                      cname: bytes = b"fieldgw-hil-camera") -> bytes:
        """A compound RTCP packet: SR (RFC 3550 6.4.1) + SDES CNAME."""
        wall = time.time() if wall_now is None else wall_now
        ntp_sec = int(wall) + _NTP_EPOCH_OFFSET
        ntp_frac = int((wall % 1.0) * (1 << 32)) & 0xFFFFFFFF
        sr = struct.pack("!BBHIIIIII", 0x80, 200, 6, self.ssrc, ntp_sec & 0xFFFFFFFF, ntp_frac,
                         self.timestamp(mono_now), self.packets & 0xFFFFFFFF, self.octets & 0xFFFFFFFF)
        item = bytes((1, len(cname))) + cname + b"\x00"  # CNAME item, then end-of-list
        item += b"\x00" * (-len(item) % 4)
        sdes = struct.pack("!BBHI", 0x81, 202, (len(item) + 4) // 4, self.ssrc) + item
        return sr + sdes
