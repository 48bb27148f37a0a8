"""The two ways onto a Bus: Modbus RTU on a pty (PtyPort) and Modbus TCP.

RTU: the bytes a driver writes arrive at the pty master; pymodbus's RTU framer
finds the request (and drops frames with a bad CRC, as a slave does), requests
are answered one at a time (the master waits for each), and the response goes
back through the pty. A pause longer than FRAME_GAP_S ends a partial frame: on
a real line 3.5 character times of silence do, but a pty has no timing to keep.

TCP: one task per connection, MBAP framing by pymodbus's socket framer,
requests answered in order.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import Any

from ..serialport import PtyPort
from .bus import Bus

log = logging.getLogger(__name__)

FRAME_GAP_S = 0.1
MAX_BUFFER = 512
MAX_MBAP_LENGTH = 254


class RtuLink:
    """A Bus on the device end of a simulated RS-485 cable (115200 8N1 in name only: it is a pty)."""

    def __init__(self, bus: Bus, link: Path) -> None:
        self.bus = bus
        self.port = PtyPort(link, self._on_data)
        self._buffer = b""
        self._last_byte = 0.0
        self._requests: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.port.plug()
        self._task = asyncio.create_task(self._worker(), name="power-rtu")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.port.unplug_now()

    def _on_data(self, data: bytes) -> None:
        now = time.monotonic()
        if self._buffer and now - self._last_byte > FRAME_GAP_S:
            self.bus.counters["bad_frames"] += 1
            log.debug("dropping a stale partial frame %s", self._buffer.hex())
            self._buffer = b""
        self._last_byte = now
        self._buffer = (self._buffer + data)[-MAX_BUFFER:]
        while self._buffer:
            used, dev_id, _tid, frame = self.bus.framer.decode(self._buffer)
            if not used:
                return          # incomplete: wait for more
            self._buffer = self._buffer[used:]
            if frame:
                self._requests.put_nowait((dev_id, frame))
            else:
                self.bus.counters["bad_frames"] += 1    # bad CRC: a slave stays silent

    async def _worker(self) -> None:
        while True:
            dev_id, frame = await self._requests.get()
            response = await self.bus.answer(dev_id, 0, frame)
            if response is not None:
                self.port.write(response)

    def stats(self) -> dict[str, Any]:
        return self.bus.stats()


class TcpLink:
    """A Bus behind a Modbus TCP listener (a GX device's port 502)."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self._server: asyncio.base_events.Server | None = None
        self._clients: set[asyncio.Task[Any]] = set()
        self.connections = 0

    async def start(self, host: str, port: int) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._client, host, port)
        return self._server.sockets[0].getsockname()[:2]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._clients):
            task.cancel()
        for task in list(self._clients):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        self.connections += 1
        buffer = b""
        try:
            while data := await reader.read(4096):
                buffer += data
                while len(buffer) >= 8:
                    protocol, length = int.from_bytes(buffer[2:4], "big"), int.from_bytes(buffer[4:6], "big")
                    if protocol != 0 or not 2 <= length <= MAX_MBAP_LENGTH:
                        self.bus.counters["bad_frames"] += 1
                        return          # not Modbus: a GX drops the connection
                    used, dev_id, tid, frame = self.bus.framer.decode(buffer)
                    if not used:
                        break
                    buffer = buffer[used:]
                    response = await self.bus.answer(dev_id, tid, frame)
                    if response is not None:
                        writer.write(response)
                        await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._clients.discard(task)
            writer.close()

    def stats(self) -> dict[str, Any]:
        return {"connections": self.connections, "clients": len(self._clients), **self.bus.stats()}
