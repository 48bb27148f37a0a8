"""Body-worn transmitter: the stamped loop as MPEG-TS over UDP (7 TS packets = 1316 bytes per datagram)."""
from __future__ import annotations

import ipaddress
import logging
import socket
import time
from fractions import Fraction

import av

from .clock import FrameClock
from .loop import EncodedLoop

log = logging.getLogger(__name__)

TS_PACKET = 188
DATAGRAM = 7 * TS_PACKET  # 1316
_TB = Fraction(1, 90_000)


class DatagramWriter:
    """File-like sink for PyAV's muxer: every write (<= 1316 bytes, whole TS packets) is one datagram."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.datagrams = 0
        self.dropped = 0

    def write(self, data: bytes) -> int:
        try:
            self.sock.send(data)
            self.datagrams += 1
        except (BlockingIOError, ConnectionRefusedError):  # no receiver yet / full buffer: UDP drops
            self.dropped += 1
        except OSError as exc:
            self.dropped += 1
            log.debug("send failed: %s", exc)
        return len(data)

    def flush(self) -> None:
        pass


def open_udp(host: str, port: int, ttl: int) -> socket.socket:
    addr = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_DGRAM)[0][4]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if ipaddress.ip_address(addr[0]).is_multicast:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
    sock.connect(addr)
    sock.setblocking(False)
    return sock


class TsPusher:
    """Replays the loop in real time into an MPEG-TS muxer whose output goes out as UDP datagrams."""

    def __init__(self, media: EncodedLoop, host: str, port: int, ttl: int = 1) -> None:
        self.media = media
        self.sock = open_udp(host, port, ttl)
        self.writer = DatagramWriter(self.sock)
        self.container = av.open(self.writer, "w", format="mpegts", buffer_size=DATAGRAM,
                                 options={"flush_packets": "1"})
        cfg = media.config
        self.stream = self.container.add_mux_stream("h264" if media.codec == "h264" else "hevc", rate=cfg.fps)
        self.stream.width, self.stream.height = cfg.width, cfg.height  # type: ignore[attr-defined]
        self.stream.time_base = _TB
        self.counter = 0
        self.frames_sent = 0

    @property
    def source(self) -> tuple[str, int]:
        return self.sock.getsockname()

    async def run(self) -> None:
        media, stream = self.media, self.stream
        clock = FrameClock(media.config.fps)
        n = len(media)
        index = 0
        need_idr = False
        while True:
            due, skipped = await clock.tick()
            if skipped:
                self.counter += skipped
                index = (index + skipped) % n
                need_idr = index != 0
            if not (need_idr and index != 0):
                need_idr = False
                data = media.access_unit_annexb(index, self.counter, time.time_ns() // 1000, with_aud=True)
                pkt = av.Packet(data)
                pkt.stream = stream
                pkt.time_base = _TB
                pkt.pts = pkt.dts = round((due - clock.start) * 90_000)
                pkt.is_keyframe = index == 0
                self.container.mux(pkt)
                self.frames_sent += 1
            self.counter += 1
            index = (index + 1) % n

    def close(self) -> None:
        try:
            self.container.close()
        except Exception as exc:  # noqa: BLE001 - best effort trailer on shutdown
            log.debug("closing muxer: %s", exc)
        self.sock.close()
