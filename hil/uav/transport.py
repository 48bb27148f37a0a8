"""UDP/TCP links. Every vehicle's frames go out on every link; frames read
from any link are decoded and handed to a single ``on_message`` callback."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections import OrderedDict
from typing import Callable, Protocol

from pymavlink.dialects.v20 import ardupilotmega as mavlink2

log = logging.getLogger(__name__)

MAX_UDP_PEERS = 8
TCP_MAX_BACKLOG = 256 * 1024  # bytes queued for a slow TCP client before frames are dropped

OnMessage = Callable[[mavlink2.MAVLink_message], None]


class Decoder:
    """Frame decoder that never raises and resynchronises after junk.

    pymavlink's robust parser drops a whole bogus "frame" when a junk byte looks
    like a start marker; here the bytes after that marker are parsed again, so a
    real frame hidden behind junk is still found. Unknown message ids are dropped.
    """

    def __init__(self) -> None:
        self._mav = mavlink2.MAVLink(None)
        self._mav.robust_parsing = True

    def reset(self) -> None:
        self._mav.buf = bytearray()
        self._mav.buf_index = 0
        self._mav.expected_length = mavlink2.HEADER_LEN_V1 + 2

    def feed(self, data: bytes) -> list[mavlink2.MAVLink_message]:
        out: list[mavlink2.MAVLink_message] = []
        pending = data
        while True:
            try:
                msg = self._mav.parse_char(pending)
            except Exception as exc:  # pymavlink can still raise on pathological input
                log.debug("decoder reset after %r", exc)
                self.reset()
                return out
            pending = b""
            if msg is None:
                return out
            if msg.get_msgId() >= 0:
                out.append(msg)
            elif not (isinstance(msg, mavlink2.MAVLink_bad_data) and msg.reason == "Bad prefix"):
                # a false start marker (bad CRC/length, or an id we don't know, which pymavlink
                # returns without a CRC check): rescan from the byte after it
                pending = bytes(msg.get_msgbuf()[1:]) + bytes(self._mav.buf[self._mav.buf_index:])
                self.reset()


class Link(Protocol):
    def send(self, data: bytes) -> None: ...
    def close(self) -> None: ...
    def local_address(self) -> tuple[str, int]: ...


async def _resolve(host: str, port: int, passive: bool = False) -> tuple[int, tuple]:  # type: ignore[type-arg]
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host or None, port, type=socket.SOCK_DGRAM,
                                   flags=socket.AI_PASSIVE if passive else 0)
    family, _, _, _, addr = infos[0]
    return family, addr


class _Datagram(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Callable[[bytes, tuple], None]) -> None:  # type: ignore[type-arg]
        self._on_datagram = on_datagram

    def datagram_received(self, data: bytes, addr: tuple) -> None:  # type: ignore[type-arg]
        self._on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("udp error: %s", exc)  # e.g. ICMP port unreachable: nobody listening yet


class UdpLink:
    """``--udp-out`` (fixed remote) or ``--udp-listen`` (reply to recent peers)."""

    def __init__(self, on_message: OnMessage, remote: tuple | None) -> None:  # type: ignore[type-arg]
        self._on_message = on_message
        self._remote = remote
        self._peers: OrderedDict[tuple, None] = OrderedDict()  # type: ignore[type-arg]
        self._decoder = Decoder()
        self._transport: asyncio.DatagramTransport | None = None

    @classmethod
    async def out(cls, host: str, port: int, on_message: OnMessage) -> "UdpLink":
        family, remote = await _resolve(host, port)
        link = cls(on_message, remote)
        local = ("::", 0) if family == socket.AF_INET6 else ("0.0.0.0", 0)
        await link._open(family, local)
        return link

    @classmethod
    async def listen(cls, host: str, port: int, on_message: OnMessage) -> "UdpLink":
        family, local = await _resolve(host, port, passive=True)
        link = cls(on_message, None)
        await link._open(family, local)
        return link

    async def _open(self, family: int, local: tuple) -> None:  # type: ignore[type-arg]
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Datagram(self._datagram), local_addr=local, family=family)
        self._transport = transport

    def _datagram(self, data: bytes, addr: tuple) -> None:  # type: ignore[type-arg]
        if self._remote is None:
            self._peers.pop(addr, None)
            self._peers[addr] = None
            while len(self._peers) > MAX_UDP_PEERS:
                self._peers.popitem(last=False)
        self._decoder.reset()  # a datagram carries whole frames: never let junk span datagrams
        for msg in self._decoder.feed(data):
            self._on_message(msg)

    def send(self, data: bytes) -> None:
        t = self._transport
        if t is None or t.is_closing():
            return
        targets = [self._remote] if self._remote is not None else list(self._peers)
        for addr in targets:
            try:
                t.sendto(data, addr)
            except OSError as exc:
                log.debug("udp send to %s failed: %s", addr, exc)

    def local_address(self) -> tuple[str, int]:
        assert self._transport is not None
        sockname = self._transport.get_extra_info("sockname")
        return str(sockname[0]), int(sockname[1])

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


class TcpListenLink:
    """``--tcp-listen``: every client gets the full stream; every client's frames are read."""

    def __init__(self, on_message: OnMessage) -> None:
        self._on_message = on_message
        self._server: asyncio.Server | None = None
        self._clients: dict[asyncio.StreamWriter, asyncio.Task[None]] = {}

    @classmethod
    async def listen(cls, host: str, port: int, on_message: OnMessage) -> "TcpListenLink":
        link = cls(on_message)
        link._server = await asyncio.start_server(link._client, host or None, port)
        return link

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients[writer] = task
        peer = writer.get_extra_info("peername")
        log.info("tcp client %s connected", peer)
        decoder = Decoder()
        try:
            while data := await reader.read(4096):
                for msg in decoder.feed(data):
                    self._on_message(msg)
        except (ConnectionError, OSError) as exc:
            log.debug("tcp client %s: %s", peer, exc)
        finally:
            self._clients.pop(writer, None)
            writer.close()
            log.info("tcp client %s gone", peer)

    def send(self, data: bytes) -> None:
        for writer in list(self._clients):
            if writer.is_closing():
                continue
            if writer.transport.get_write_buffer_size() > TCP_MAX_BACKLOG:
                continue  # slow reader: drop rather than grow without bound
            with contextlib.suppress(ConnectionError, OSError, RuntimeError):
                writer.write(data)

    def local_address(self) -> tuple[str, int]:
        assert self._server is not None and self._server.sockets
        sockname = self._server.sockets[0].getsockname()
        return str(sockname[0]), int(sockname[1])

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer, task in list(self._clients.items()):
            writer.close()
            task.cancel()
        self._clients.clear()
