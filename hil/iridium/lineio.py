"""The modem's receive side: bytes from the host, read as command lines or as raw binary."""
from __future__ import annotations

import asyncio
import contextlib

LINE_MAX = 512  # a command line longer than this (no CR) loses its head, like an overrun line buffer
BUFFER_MAX = 65536  # bytes held while the modem is busy; more are dropped (UART overrun)


class InputBuffer:
    """Bytes from the pty, consumed by one reader coroutine."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._more = asyncio.Event()
        self.overruns = 0

    def feed(self, data: bytes) -> None:
        room = BUFFER_MAX - len(self._buf)
        if len(data) > room:
            self.overruns += 1
            data = data[:max(room, 0)]
        self._buf += data
        self._more.set()

    def clear(self) -> None:
        self._buf.clear()

    async def _wait(self) -> None:
        self._more.clear()
        await self._more.wait()

    async def readline(self) -> bytes:
        """The next command line up to and including its CR, without the LFs that lead it."""
        while True:
            while self._buf[:1] == b"\n":
                del self._buf[0]
            end = self._buf.find(b"\r")
            if end >= 0:
                line = bytes(self._buf[:end + 1])
                del self._buf[:end + 1]
                return line
            if len(self._buf) > LINE_MAX:
                self.overruns += 1
                del self._buf[:-LINE_MAX]
            await self._wait()

    async def readexactly(self, n: int, timeout: float) -> bytes | None:
        """Exactly n raw bytes, or None (and what came is dropped) if they don't all arrive in time."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while len(self._buf) < n:
                    await self._wait()
                data = bytes(self._buf[:n])
                del self._buf[:n]
                return data
        self._buf.clear()
        return None
