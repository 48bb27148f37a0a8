"""One call's RTP in: UDP, or TCP with RFC 4571 framing as the listening (passive) or connecting
(active) side; packets checked, put in order, and their PS payloads handed on.

The SSRC is locked to the offer's `y=` when the device uses it, else to the first one
heard (devices differ; a mismatch is counted). Packets of any other SSRC are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections import Counter
from collections.abc import Callable

from drivers.gb28181 import rtp

OnPayload = Callable[[bytes, bool], None]
TCP_CONNECT_TIMEOUT_S = 10.0


class _UdpIn(asyncio.DatagramProtocol):
    def __init__(self, owner: RtpIn) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        self.owner.packet(data)


class RtpIn:
    def __init__(self, mode: str, expected_ssrc: int | None, on_payload: OnPayload) -> None:
        self.mode = mode  # udp | tcp-passive | tcp-active
        self.expected_ssrc = expected_ssrc
        self.on_payload = on_payload
        self.port = 0
        self.closed = asyncio.Event()  # a TCP media connection ended
        self.counts: Counter[str] = Counter()
        self.reorder = rtp.Reorder()
        self._ssrc: int | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._server: asyncio.base_events.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._writers: list[asyncio.StreamWriter] = []

    async def bind(self, ip: str = "0.0.0.0") -> int:
        """For udp and tcp-passive: listen; the port to offer (9 for tcp-active, RFC 4145)."""
        loop = asyncio.get_running_loop()
        if self.mode == "udp":
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2 * 1024 * 1024)
            sock.bind((ip, 0))
            self._udp, _ = await loop.create_datagram_endpoint(lambda: _UdpIn(self), sock=sock)
            self.port = sock.getsockname()[1]
        elif self.mode == "tcp-passive":
            self._server = await asyncio.start_server(self._accept, ip, 0)
            self.port = self._server.sockets[0].getsockname()[1]
        else:
            self.port = 9
        return self.port

    async def connect(self, host: str, port: int) -> None:
        """tcp-active: connect to the device's answered address."""
        async with asyncio.timeout(TCP_CONNECT_TIMEOUT_S):
            reader, writer = await asyncio.open_connection(host, port)
        self._tasks.append(asyncio.create_task(self._read(reader, writer)))

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._writers:  # one media connection per call
            self.counts["extra_connections"] += 1
            writer.close()
            return
        await self._read(reader, writer)

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        decoder = rtp.Rfc4571Decoder()
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                for pkt in decoder.feed(data):
                    self.packet(pkt)
        except (ConnectionError, OSError):
            pass
        finally:
            if decoder.pending:
                self.counts["truncated_tail_bytes"] += decoder.pending
            self.counts["empty_frames"] += decoder.empty_frames
            writer.close()
            self.closed.set()

    def packet(self, data: bytes) -> None:
        self.counts["packets"] += 1
        try:
            pkt = rtp.parse(data)
        except rtp.RtpError:
            self.counts["bad_packets"] += 1
            return
        if self._ssrc is None:
            self._ssrc = pkt.ssrc
            if self.expected_ssrc is not None and pkt.ssrc != self.expected_ssrc:
                self.counts["ssrc_not_y"] += 1
        elif pkt.ssrc != self._ssrc:
            if pkt.ssrc == self.expected_ssrc:  # the right one came after a stray: take it
                self._ssrc = pkt.ssrc
            else:
                self.counts["other_ssrc"] += 1
                return
        self.counts["bytes"] += len(pkt.payload)
        for p, gap in self.reorder.push(pkt, time.monotonic()):
            if p.payload:
                self.on_payload(p.payload, gap)

    async def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._server is not None:
            self._server.close()
        for w in self._writers:
            w.close()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def stats(self) -> dict[str, int]:
        return {**self.counts, **{f"rtp_{k}": v for k, v in self.reorder.counts.items()}}
