"""Byte transports for MAVLink links: UDP listen, UDP client, TCP client, serial.

Each gives `send(data, to_system=None)` (never blocks) and `receive()`
(the next chunk; raises ConnectionError when the link is gone, which the
supervisor answers with a backoff and a fresh driver run). Incoming
datagrams wait in a bounded queue; when it is full the oldest is dropped
and counted (`dropped`): fresh telemetry beats stale.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

RECEIVE_QUEUE = 4096  # datagrams
MAX_PEERS = 8
SOCKET_BUFFER = 4 * 1024 * 1024  # the kernel's default ~208 KiB overflows during a 20-60 ms loop pause at 10k msg/s


@dataclass
class Chunk:
    data: bytes
    datagram: bool  # a whole datagram: frames never continue in the next one


class Transport:
    datagram = False

    def __init__(self) -> None:
        self.dropped = 0
        self.bytes_in = 0
        self.bytes_out = 0

    async def open(self) -> None:
        raise NotImplementedError

    def send(self, data: bytes, to_system: int | None = None) -> None:
        raise NotImplementedError

    async def receive(self) -> Chunk:
        raise NotImplementedError

    def learn(self, system: int) -> None:
        """The sender of the last received chunk is `system` (for UDP replies)."""

    def kernel_drops(self) -> int | None:
        return None

    async def close(self) -> None:
        return None


class _DatagramProtocol(asyncio.DatagramProtocol):
    def __init__(self, owner: UdpTransport) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.owner._received(data, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable on loopback when the peer is not up yet: not fatal for UDP.
        self.owner.errors += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner._received(None, ("", 0))


class UdpTransport(Transport):
    """`udp-listen://host:port` binds and answers whoever talks to it;
    `udp://host:port` sends to a fixed address and takes what comes back."""

    datagram = True

    def __init__(self, host: str, port: int, listen: bool) -> None:
        super().__init__()
        self.host, self.port, self.listen = host, port, listen
        self.errors = 0
        # None is the end-of-socket marker
        self._queue: asyncio.Queue[tuple[bytes | None, tuple[str, int]]] = asyncio.Queue(RECEIVE_QUEUE)
        self._transport: asyncio.DatagramTransport | None = None
        self._peers: OrderedDict[tuple[str, int], None] = OrderedDict()
        self._by_system: dict[int, tuple[str, int]] = {}
        self._last_addr: tuple[str, int] | None = None

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        if self.listen:
            self._transport, _ = await loop.create_datagram_endpoint(lambda: _DatagramProtocol(self), local_addr=(self.host, self.port))
        else:
            self._transport, _ = await loop.create_datagram_endpoint(lambda: _DatagramProtocol(self), remote_addr=(self.host, self.port))
            self._peers[(self.host, self.port)] = None
        sock = self._transport.get_extra_info("socket")
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
        self._inode = os.fstat(sock.fileno()).st_ino

    def kernel_drops(self) -> int | None:
        """Datagrams the kernel dropped on this socket (its buffer was full), from /proc/net/udp."""
        return kernel_udp_drops(getattr(self, "_inode", 0))

    @property
    def local_address(self) -> tuple[str, int]:
        assert self._transport is not None
        return self._transport.get_extra_info("sockname")[:2]

    def _received(self, data: bytes | None, addr: tuple[str, int]) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait((data, addr))
        if self.listen and data is not None:
            self._peers[addr] = None
            self._peers.move_to_end(addr)
            while len(self._peers) > MAX_PEERS:
                self._peers.popitem(last=False)

    async def receive(self) -> Chunk:
        data, addr = await self._queue.get()
        if data is None:
            raise ConnectionError("UDP socket closed")
        self._last_addr = addr
        self.bytes_in += len(data)
        return Chunk(data, True)

    def learn(self, system: int) -> None:
        if self.listen and self._last_addr is not None:
            self._by_system[system] = self._last_addr

    def send(self, data: bytes, to_system: int | None = None) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        if not self.listen:
            self._transport.sendto(data)
            self.bytes_out += len(data)
            return
        addr = self._by_system.get(to_system) if to_system else None
        for peer in [addr] if addr else list(self._peers):
            self._transport.sendto(data, peer)
            self.bytes_out += len(data)

    async def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


class StreamTransport(Transport):
    """`tcp://host:port` (a vehicle or SITL serving TCP) and `serial:///dev/…?baud=N`."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme == "tcp":
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(parts.hostname, parts.port), timeout=10)
        else:
            import serial_asyncio_fast

            query = parse_qs(parts.query)
            baud = int(query.get("baud", ["57600"])[0])
            self._reader, self._writer = await serial_asyncio_fast.open_serial_connection(url=parts.path, baudrate=baud)

    async def receive(self) -> Chunk:
        assert self._reader is not None
        data = await self._reader.read(4096)
        if not data:
            raise ConnectionError(f"{self.url}: closed by the other end")
        self.bytes_in += len(data)
        return Chunk(data, False)

    def send(self, data: bytes, to_system: int | None = None) -> None:
        if self._writer is None or self._writer.is_closing():
            return
        transport = self._writer.transport
        # A stalled serial line or TCP peer must not grow our memory without bound.
        if transport.get_write_buffer_size() > 256 * 1024:
            self.dropped += 1
            return
        self._writer.write(data)
        self.bytes_out += len(data)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._writer.wait_closed(), 1.0)


def kernel_udp_drops(inode: int) -> int | None:
    """The `drops` column of /proc/net/udp{,6} for the socket with this inode (Linux), else None."""
    if not inode:
        return None
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    if len(cols) >= 13 and cols[9] == str(inode):
                        return int(cols[12])
        except OSError:
            continue
    return None


def open_transport(url: str) -> Transport:
    parts = urlsplit(url)
    if parts.scheme in ("udp", "udp-listen"):
        return UdpTransport(parts.hostname or "127.0.0.1", parts.port or 14550, listen=parts.scheme == "udp-listen")
    if parts.scheme in ("tcp", "serial"):
        return StreamTransport(url)
    raise ValueError(f"unsupported MAVLink transport {url!r}")
