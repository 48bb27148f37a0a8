"""Where the sentences go: the ways body-worn transmitters hand out NMEA.

* ``TcpClientOut`` (``--tcp-connect``): the device dials the receiver and reconnects after a failure,
  0.5 s, 1 s, 2 s ... up to 10 s apart (back to 0.5 s after 30 s connected). Sentences made while it
  is not connected are lost (counted), as a device with no link buffers nothing.
* ``TcpServerOut`` (``--tcp-listen``): any number of receivers connect; each gets every sentence from
  the moment it connects. A receiver more than 64 KiB behind loses sentences (counted per client).
* ``UdpOut`` (``--udp``): datagrams to one address, either one per epoch (every sentence of a fix
  in one datagram, the default) or one per sentence.
* ``PtyOut`` (``--pty``): a pty serial line (hil/serialport.py), unplugged from the control port.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from pathlib import Path
from typing import Any

from ..serialport import PtyPort

log = logging.getLogger(__name__)

MAX_BACKLOG = 64 * 1024
BACKOFF_FIRST_S, BACKOFF_MAX_S, STABLE_S = 0.5, 10.0, 30.0


class Output:
    name = "output"

    def __init__(self) -> None:
        self.sentences = 0   # sentences handed to the link
        self.bytes = 0
        self.dropped = 0     # sentences lost: not connected, receiver too slow, buffer full

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    def send(self, epoch: list[bytes]) -> None:
        raise NotImplementedError

    def raw(self, data: bytes) -> None:
        """Bytes that are not a sentence (noise); not counted as sentences."""
        raise NotImplementedError

    def stats(self) -> dict[str, Any]:
        return {"type": self.name, "sentences": self.sentences, "bytes": self.bytes, "dropped": self.dropped}


class TcpClientOut(Output):
    name = "tcp-connect"

    def __init__(self, host: str, port: int) -> None:
        super().__init__()
        self.host, self.port = host, port
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self.connects = 0
        self.failures = 0
        self.last_error = ""

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="nmea-tcp-connect")

    async def _run(self) -> None:
        delay = BACKOFF_FIRST_S
        while True:
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), 5.0)
            except (OSError, asyncio.TimeoutError) as exc:
                self.failures += 1
                self.last_error = str(exc) or type(exc).__name__
                log.info("connect to %s:%d failed (%s); again in %.1f s", self.host, self.port, self.last_error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)
                continue
            self.connects += 1
            self._writer = writer
            since = time.monotonic()
            log.info("connected to %s:%d", self.host, self.port)
            try:
                while await reader.read(4096):  # whatever the receiver says is ignored
                    pass
            except OSError:
                pass
            finally:
                self._writer = None
                writer.close()
            self.last_error = "closed by peer"
            if time.monotonic() - since >= STABLE_S:
                delay = BACKOFF_FIRST_S
            log.info("connection to %s:%d lost; again in %.1f s", self.host, self.port, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX_S)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._writer is not None:
            self._writer.close()

    def _write(self, data: bytes) -> bool:
        w = self._writer
        if w is None or w.is_closing() or w.transport.get_write_buffer_size() > MAX_BACKLOG:
            return False
        w.write(data)
        self.bytes += len(data)
        return True

    def send(self, epoch: list[bytes]) -> None:
        if self._write(b"".join(epoch)):
            self.sentences += len(epoch)
        else:
            self.dropped += len(epoch)

    def raw(self, data: bytes) -> None:
        self._write(data)

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "to": f"{self.host}:{self.port}", "connected": self._writer is not None,
                "connects": self.connects, "connect_failures": self.failures, "last_error": self.last_error}


class TcpServerOut(Output):
    name = "tcp-listen"

    def __init__(self, host: str, port: int) -> None:
        super().__init__()
        self.host, self.port = host, port
        self._server: asyncio.base_events.Server | None = None
        self._clients: dict[asyncio.StreamWriter, dict[str, Any]] = {}
        self.accepted = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._client, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    @property
    def address(self) -> list[Any]:
        return [self.host, self.port]

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        self.accepted += 1
        self._clients[writer] = {"peer": f"{peer[0]}:{peer[1]}" if peer else "?", "sentences": 0, "dropped": 0}
        try:
            while await reader.read(4096):
                pass
        except OSError:
            pass
        finally:
            self._clients.pop(writer, None)
            writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for w in list(self._clients):
            w.close()

    def send(self, epoch: list[bytes]) -> None:
        data = b"".join(epoch)
        self.sentences += len(epoch)
        for w, c in list(self._clients.items()):
            if w.is_closing() or w.transport.get_write_buffer_size() > MAX_BACKLOG:
                c["dropped"] += len(epoch)
                self.dropped += len(epoch)
                continue
            w.write(data)
            self.bytes += len(data)
            c["sentences"] += len(epoch)

    def raw(self, data: bytes) -> None:
        for w in list(self._clients):
            if not w.is_closing():
                w.write(data)

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "listen": f"{self.host}:{self.port}", "accepted": self.accepted,
                "clients": list(self._clients.values())}


class UdpOut(Output):
    name = "udp"

    def __init__(self, host: str, port: int, per_sentence: bool) -> None:
        super().__init__()
        self.host, self.port, self.per_sentence = host, port, per_sentence
        self._sock: socket.socket | None = None
        self.datagrams = 0

    async def start(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        self._sock.setblocking(False)

    async def close(self) -> None:
        if self._sock is not None:
            self._sock.close()

    def _sendto(self, data: bytes) -> bool:
        assert self._sock is not None
        try:
            self._sock.sendto(data, (self.host, self.port))
        except OSError:  # no route, ICMP unreachable from a closed port, full buffer: lost like any datagram
            return False
        self.datagrams += 1
        self.bytes += len(data)
        return True

    def send(self, epoch: list[bytes]) -> None:
        if self.per_sentence:
            for s in epoch:
                if self._sendto(s):
                    self.sentences += 1
                else:
                    self.dropped += 1
        elif self._sendto(b"".join(epoch)):
            self.sentences += len(epoch)
        else:
            self.dropped += len(epoch)

    def raw(self, data: bytes) -> None:
        self._sendto(data)

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "to": f"{self.host}:{self.port}", "datagrams": self.datagrams,
                "mode": "sentence" if self.per_sentence else "epoch"}


class PtyOut(Output):
    name = "pty"

    def __init__(self, link: Path) -> None:
        super().__init__()
        self.port = PtyPort(link, on_data=lambda data: None)  # what the host types is ignored

    async def start(self) -> None:
        self.port.plug()

    async def close(self) -> None:
        self.port.unplug_now()

    def send(self, epoch: list[bytes]) -> None:
        data = b"".join(epoch)
        if self.port.write(data):
            self.sentences += len(epoch)
            self.bytes += len(data)
        else:
            self.dropped += len(epoch)

    def raw(self, data: bytes) -> None:
        self.port.write(data)

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "link": str(self.port.link), **self.port.stats()}
