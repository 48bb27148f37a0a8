"""The loopback end a channel's MPEG-PS is read from: `tcp://127.0.0.1:PORT`, one port per channel.

The driver offers that URL as the channel's stream. Whoever connects (the gateway's
video relay, when the first viewer comes) is a *viewer connection*: the driver invites
the camera for it and writes the camera's program stream into it; when the connection
closes (the relay's last viewer left and it went idle), the call is hung up. One viewer
connection per channel at a time: a new one replaces the old (its call ends first).

The sink starts each connection at a pack header that carries a system header or PSM
(a key frame's, so the demuxer learns the stream type at once), starts again at the
next pack header after a loss, and holds at most 4 MiB unsent (more: dropped and
counted, and the stream resumes at the next key frame).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

PACK_START = b"\x00\x00\x01\xba"
KEY_MARKS = (b"\x00\x00\x01\xbb", b"\x00\x00\x01\xbc")  # system header, program stream map
SINK_BUFFER = 4 * 1024 * 1024


class PsSink:
    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.closed = asyncio.Event()
        self._wait_key = True
        self._wait_pack = True
        self.counts: Counter[str] = Counter()

    def deliver(self, payload: bytes, after_gap: bool) -> None:
        """One RTP payload of PS, in order; `after_gap`: packets before it were lost."""
        if self.closed.is_set():
            return
        if after_gap:
            self._wait_pack = True
            self.counts["gaps"] += 1
        if self._wait_pack:
            if not payload.startswith(PACK_START) or (self._wait_key and not _has_key_mark(payload)):
                self.counts["payloads_skipped"] += 1
                return
            self._wait_pack = self._wait_key = False
        if self.writer.transport.get_write_buffer_size() > SINK_BUFFER:
            self.counts["payloads_dropped_full"] += 1
            self._wait_pack = self._wait_key = True
            return
        self.writer.write(payload)
        self.counts["bytes_out"] += len(payload)

    def close(self) -> None:
        if not self.closed.is_set():
            self.closed.set()
            self.writer.close()


def _has_key_mark(payload: bytes) -> bool:
    head = payload[:256]
    return any(mark in head for mark in KEY_MARKS)


Viewer = Callable[[PsSink], Awaitable[None]]


class FeedServer:
    """One channel's loopback listener; `serve_viewer(sink)` runs while a viewer connection lasts."""

    def __init__(self, name: str, serve_viewer: Viewer) -> None:
        self.name = name
        self.serve_viewer = serve_viewer
        self.port = 0
        self._server: asyncio.base_events.Server | None = None
        self._current: tuple[PsSink, asyncio.Task[None]] | None = None
        self.connections = 0

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    async def start(self, port: int = 0) -> None:
        """Listen on `port` (the one used before, so the offered URL stays the same across restarts)."""
        try:
            self._server = await asyncio.start_server(self._accept, "127.0.0.1", port, reuse_address=True)
        except OSError:
            if port == 0:
                raise
            log.warning("feed %s: port %d taken; a new one (the stream's URL changes)", self.name, port)
            self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._current is not None:
            sink, task = self._current
            sink.close()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)

    def end_viewer(self) -> None:
        """Close the current viewer connection (the call is gone): the relay reconnects and a new call starts."""
        if self._current is not None:
            self._current[0].close()

    @property
    def active(self) -> bool:
        return self._current is not None and not self._current[0].closed.is_set()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        old = self._current
        if old is not None:
            old[0].close()
            await asyncio.gather(old[1], return_exceptions=True)
        sink = PsSink(writer)
        task = asyncio.create_task(self._run(sink), name=f"gb28181-viewer:{self.name}")
        self._current = (sink, task)
        closed = asyncio.create_task(sink.closed.wait())
        try:
            while True:
                read = asyncio.create_task(reader.read(4096))
                done, _ = await asyncio.wait([read, closed], return_when=asyncio.FIRST_COMPLETED)
                if read not in done:
                    read.cancel()
                    break
                if not read.result():  # the relay closed its end
                    break
        except (ConnectionError, OSError):
            pass
        finally:
            closed.cancel()
            sink.close()
            await asyncio.gather(task, return_exceptions=True)
            if self._current is not None and self._current[0] is sink:
                self._current = None

    async def _run(self, sink: PsSink) -> None:
        try:
            await self.serve_viewer(sink)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("feed %s: viewer failed", self.name)
        finally:
            sink.close()
