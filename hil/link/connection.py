"""A proxied connection: the client's socket, its own upstream socket, two pipes."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import struct
from collections.abc import Callable

from .pipe import READ_CHUNK, WRITE_HIGH_WATER, Direction, Pipe

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0


def _noop_data(_data: bytes) -> None:
    pass


def _noop() -> None:
    pass


class Side(asyncio.BufferedProtocol):
    """One socket of a connection. Reads at most READ_CHUNK bytes at a time into
    its own buffer and hands copies to the pipe reading from it."""

    def __init__(self, name: str, on_made: Callable[[Side], None] | None = None) -> None:
        self.name = name
        self.transport: asyncio.Transport | None = None
        self.on_data: Callable[[bytes], None] = _noop_data
        self.on_eof: Callable[[], None] = _noop
        self.on_lost: Callable[[Side, Exception | None], None] = lambda _s, _e: None
        self.writable = asyncio.Event()
        self.writable.set()
        self._on_made = on_made
        self._buf = bytearray(READ_CHUNK)

    # asyncio.BufferedProtocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        with contextlib.suppress(OSError):
            transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._on_made is not None:
            self._on_made(self)

    def get_buffer(self, sizehint: int) -> memoryview:
        return memoryview(self._buf)

    def buffer_updated(self, nbytes: int) -> None:
        self.on_data(bytes(self._buf[:nbytes]))

    def eof_received(self) -> bool:
        self.on_eof()
        return True  # keep the socket open: the other direction may still carry data

    def connection_lost(self, exc: Exception | None) -> None:
        self.writable.set()  # release a pipe waiting to write; its task is cancelled anyway
        self.on_lost(self, exc)

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    # used by pipes and the connection
    def pause_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def write_eof(self) -> None:
        if self.transport is not None and not self.transport.is_closing() and self.transport.can_write_eof():
            self.transport.write_eof()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def reset(self) -> None:
        """Close at once with an RST (SO_LINGER 0), dropping anything unsent."""
        if self.transport is None:
            return
        with contextlib.suppress(OSError, AttributeError):
            self.transport.get_extra_info("socket").setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()


class Connection:
    """Client side accepted; connects upstream, then runs both pipes until both
    ends have sent FIN (closed gracefully) or either side fails (both reset)."""

    def __init__(self, client: Side, target: tuple[str, int], up: Direction, down: Direction,
                 rng: random.Random, queue_limit: int, on_closed: Callable[[Connection], None]) -> None:
        self.client = client
        # both sockets start paused: nothing is read until a pipe can take it
        self.upstream = Side("upstream", on_made=Side.pause_reading)
        self.target = target
        self._up, self._down = up, down
        self._rng = rng
        self._queue_limit = queue_limit
        self._on_closed = on_closed
        self.pipes: list[Pipe] = []
        self.closed = False
        self.upstream_failed = False
        self._open_task: asyncio.Task[None] | None = None
        client.on_lost = self._side_lost
        self.upstream.on_lost = self._side_lost

    def start(self) -> None:
        self.client.pause_reading()
        self._open_task = asyncio.create_task(self._open(), name="link-connect")

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(loop.create_connection(lambda: self.upstream, *self.target),
                                   CONNECT_TIMEOUT_S)
        except (TimeoutError, OSError) as exc:
            log.info("upstream %s:%d: %s", *self.target, exc)
            self.upstream_failed = True
            self.abort()
            return
        if self.closed:  # closed while connecting
            self.upstream.reset()
            return
        self.pipes = [
            Pipe(self._up, self.client, self.upstream, self._rng, self._pipe_done, self._queue_limit),
            Pipe(self._down, self.upstream, self.client, self._rng, self._pipe_done, self._queue_limit),
        ]
        for pipe in self.pipes:
            pipe.start()
        self.client.resume_reading()
        self.upstream.resume_reading()

    def _pipe_done(self, _pipe: Pipe) -> None:
        if self.pipes and all(p.done for p in self.pipes):
            self._finish()
            self.client.close()
            self.upstream.close()

    def _side_lost(self, side: Side, exc: Exception | None) -> None:
        if not self.closed:
            log.debug("%s side lost (%s): resetting the other", side.name, exc)
            self.abort()

    def abort(self) -> None:
        """Reset both sockets now (an outage, a failed side, the emulator stopping)."""
        if self.closed:
            return
        self._finish()
        self.client.reset()
        self.upstream.reset()

    def _finish(self) -> None:
        self.closed = True
        if self._open_task is not None and not self._open_task.done() \
                and self._open_task is not asyncio.current_task():
            self._open_task.cancel()
        for pipe in self.pipes:
            pipe.cancel()
        self._on_closed(self)
