"""One RTSP session: an RTP sender replaying the packetized loop to a TCP-interleaved or UDP sink."""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Protocol

from .clock import FrameClock
from .rtp import PacketizedLoop, RtpStream

log = logging.getLogger(__name__)

TCP_HIGH_WATER = 4 * 1024 * 1024  # bytes queued to a slow TCP client before frames are dropped
SR_INTERVAL_S = 1.0


class Sink(Protocol):
    def congested(self) -> bool: ...  # True: drop this frame (and resume at the next IDR)
    def send_rtp(self, packets: list[bytes]) -> None: ...
    def send_rtcp(self, packet: bytes) -> None: ...
    def close(self) -> None: ...
    def describe(self) -> str: ...


class TcpSink:
    """RTP/RTCP in '$' frames on the RTSP connection (RFC 2326 10.12)."""

    def __init__(self, writer: asyncio.StreamWriter, channels: tuple[int, int]) -> None:
        self.writer = writer
        self.channels = channels
        self._rtp_prefix = b"$" + bytes((channels[0],))
        self._rtcp_prefix = b"$" + bytes((channels[1],))

    def congested(self) -> bool:
        transport = self.writer.transport
        return transport.is_closing() or transport.get_write_buffer_size() > TCP_HIGH_WATER

    def send_rtp(self, packets: list[bytes]) -> None:
        p = self._rtp_prefix
        self.writer.write(b"".join(p + len(pkt).to_bytes(2, "big") + pkt for pkt in packets))

    def send_rtcp(self, packet: bytes) -> None:
        if not self.writer.transport.is_closing():
            self.writer.write(self._rtcp_prefix + len(packet).to_bytes(2, "big") + packet)

    def close(self) -> None:
        pass  # the connection belongs to the RTSP handler

    def describe(self) -> str:
        return f"RTP/AVP/TCP;unicast;interleaved={self.channels[0]}-{self.channels[1]}"


class _Ignore(asyncio.DatagramProtocol):
    """Receives the client's RTCP receiver reports / NAT punch packets: they only mean "alive"."""

    def __init__(self, on_packet: Callable[[], None]) -> None:
        self.on_packet = on_packet

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.on_packet()

    def error_received(self, exc: Exception) -> None:  # ICMP port unreachable etc.
        pass


class UdpSink:
    """RTP to client_port[0], RTCP to client_port[1], from a server port pair (even, even + 1)."""

    def __init__(self, rtp: asyncio.DatagramTransport, rtcp: asyncio.DatagramTransport,
                 server_ports: tuple[int, int], dest_host: str, client_ports: tuple[int, int]) -> None:
        self.rtp, self.rtcp = rtp, rtcp
        self.server_ports = server_ports
        self.rtp_dest = (dest_host, client_ports[0])
        self.rtcp_dest = (dest_host, client_ports[1])
        self.client_ports = client_ports

    @classmethod
    async def open(cls, bind_host: str, dest_host: str, client_ports: tuple[int, int],
                   on_packet: Callable[[], None]) -> UdpSink:
        rtp_sock, rtcp_sock = _bind_pair(bind_host)
        loop = asyncio.get_running_loop()
        rtp, _ = await loop.create_datagram_endpoint(lambda: _Ignore(on_packet), sock=rtp_sock)
        try:
            rtcp, _ = await loop.create_datagram_endpoint(lambda: _Ignore(on_packet), sock=rtcp_sock)
        except BaseException:
            rtp.close()
            raise
        ports = (rtp_sock.getsockname()[1], rtcp_sock.getsockname()[1])
        return cls(rtp, rtcp, ports, dest_host, client_ports)

    def congested(self) -> bool:
        return self.rtp.is_closing()

    def send_rtp(self, packets: list[bytes]) -> None:
        for pkt in packets:
            self.rtp.sendto(pkt, self.rtp_dest)

    def send_rtcp(self, packet: bytes) -> None:
        if not self.rtcp.is_closing():
            self.rtcp.sendto(packet, self.rtcp_dest)

    def close(self) -> None:
        self.rtp.close()
        self.rtcp.close()

    def describe(self) -> str:
        c, s = self.client_ports, self.server_ports
        return f"RTP/AVP;unicast;client_port={c[0]}-{c[1]};server_port={s[0]}-{s[1]}"


def _bind_pair(host: str, attempts: int = 64) -> tuple[socket.socket, socket.socket]:
    """Two UDP sockets on consecutive ports, the first even (RFC 3550 11)."""
    for _ in range(attempts):
        a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        a.bind((host, 0))
        port = a.getsockname()[1]
        if port % 2 == 0 and port < 65535:
            b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                b.bind((host, port + 1))
            except OSError:
                b.close()
            else:
                a.setblocking(False)
                b.setblocking(False)
                return a, b
        a.close()
    raise OSError("no free even/odd UDP port pair")


class StreamSession:
    """An RTSP session with one video track; PLAY starts the replay at the loop's IDR."""

    def __init__(self, media: PacketizedLoop, timeout_s: float) -> None:
        self.id = os.urandom(8).hex().upper()
        self.media = media
        self.timeout_s = timeout_s
        self.rtp = RtpStream(time.monotonic())
        self.sink: Sink | None = None
        self.task: asyncio.Task[None] | None = None
        self.counter = 0  # stamp counter: +1 per frame period, continuous across loop repeats and PLAYs
        self.frames_sent = 0
        self.frames_dropped = 0
        self.last_activity = time.monotonic()

    @property
    def playing(self) -> bool:
        return self.task is not None and not self.task.done()

    def touch(self) -> None:
        self.last_activity = time.monotonic()

    def expired(self, now: float) -> bool:
        return now - self.last_activity > self.timeout_s

    def play(self) -> tuple[int, int]:
        """Start (or restart) the replay now; returns (seq, rtptime) of its first packet."""
        self.stop_streaming()
        start = time.monotonic()
        first = (self.rtp.seq, self.rtp.timestamp(start))
        self.task = asyncio.create_task(self._run(FrameClock(self.media.loop.config.fps, start)))
        return first

    def stop_streaming(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.task = None

    def close(self) -> None:
        self.stop_streaming()
        if self.sink is not None:
            self.sink.close()

    async def _run(self, clock: FrameClock) -> None:
        assert self.sink is not None
        sink, rtp, media = self.sink, self.rtp, self.media
        n = len(media)
        index = 0
        need_idr = False
        next_sr = 0.0
        while True:
            due, skipped = await clock.tick()
            if skipped:
                self.counter += skipped
                self.frames_dropped += skipped
                index = (index + skipped) % n
                need_idr = index != 0
            if sink.congested():  # resume at the next IDR so the decoder never sees a broken GOP
                need_idr = True
                self.frames_dropped += 1
            elif need_idr and index != 0:
                self.frames_dropped += 1
            else:
                need_idr = False
                if due >= next_sr:  # SR first, so a receiver can map the very first frame to wall time
                    sink.send_rtcp(rtp.sender_report(time.monotonic()))
                    next_sr = due + SR_INTERVAL_S
                send_us = time.time_ns() // 1000
                sink.send_rtp(rtp.packetize(media.payloads(index, self.counter, send_us), rtp.timestamp(due)))
                self.frames_sent += 1
            self.counter += 1
            index = (index + 1) % n
