"""Where a transmitter's bytes come from: TCP client, TCP server, UDP, serial.

Every transport feeds one bounded `Inbox` of chunks that the driver reads
with a timeout (so silence, the end of an epoch and a dead link are all seen
in one place, without polling). Items: bytes; `RESET` (a new connection:
a partial line from the old one is thrown away); `END` (the end of a
datagram: what is buffered is a whole line); an exception (the link failed:
the driver raises it and the supervisor reopens the link with backoff).

- `tcp://HOST:PORT` and `serial:///dev/...?baud=4800` open a byte stream
  through drivers/common/stream.py (the same opener the terminal drivers
  use); its end or error is the link's failure.
- `tcp-listen://HOST:PORT`: the transmitter connects in. One connection at a
  time: a newer one replaces the old (a transmitter that rebooted behind a
  half-open socket is heard at once); a closed connection is not a failure,
  the device just falls silent.
- `udp-listen://HOST:PORT`: datagrams of one or more sentences; datagrams over
  8 KiB are dropped and counted.

The inbox holds 256 items; when full, the oldest is dropped and counted
(`dropped_chunks`): a stalled consumer never grows memory.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from drivers.common.stream import StreamUrl, open_stream, parse_stream_url, tcp_address

SCHEMES = ("tcp", "serial", "tcp-listen", "udp-listen")
DEFAULT_BAUD = 4800  # NMEA 0183's own rate; most trackers say ?baud=9600 or more
INBOX_SIZE = 256
READ_SIZE = 4096
MAX_DATAGRAM = 8192
RESET = "reset"
END = "end"
Item = bytes | str | Exception


@dataclass(frozen=True)
class SourceUrl:
    scheme: str
    host: str = ""
    port: int = 0
    stream: StreamUrl | None = None

    def __str__(self) -> str:
        return str(self.stream) if self.stream is not None else f"{self.scheme}://{self.host}:{self.port}"


def parse_source_url(url: str) -> SourceUrl:
    """ValueError with a reason a person can act on."""
    scheme = urlsplit(url).scheme
    if scheme in ("tcp", "serial"):
        return SourceUrl(scheme, stream=parse_stream_url(url, DEFAULT_BAUD))
    if scheme in ("tcp-listen", "udp-listen"):
        host, port = tcp_address(urlsplit(url), f"{scheme} transport must be {scheme}://HOST:PORT")
        return SourceUrl(scheme, host, port)
    raise ValueError(f"transport must be one of {', '.join(s + '://' for s in SCHEMES)}, not {url!r}")


class Inbox:
    def __init__(self, counts: Counter[str], size: int = INBOX_SIZE) -> None:
        self._q: asyncio.Queue[Item] = asyncio.Queue(size)
        self.counts = counts  # the link's counters (kept across reopenings)

    def put(self, item: Item) -> None:
        if self._q.full():
            self._q.get_nowait()
            self.counts["dropped_chunks"] += 1
        self._q.put_nowait(item)

    async def get(self, timeout: float | None) -> Item | None:
        """The next item, or None after `timeout` seconds."""
        try:
            async with asyncio.timeout(timeout):
                return await self._q.get()
        except TimeoutError:
            return None


async def _pump(reader: asyncio.StreamReader, inbox: Inbox, on_end: Item | None) -> None:
    """Copy a stream into the inbox; at its end put `on_end` (None: nothing, the peer just left)."""
    try:
        while data := await reader.read(READ_SIZE):
            inbox.counts["bytes"] += len(data)
            inbox.put(data)
        inbox.put(END)
        if on_end is not None:
            inbox.put(on_end)
    except (OSError, ConnectionError) as exc:
        inbox.put(END)
        if on_end is not None:
            inbox.put(exc)


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) > MAX_DATAGRAM:
            self.inbox.counts["oversized_datagrams"] += 1
            return
        self.inbox.counts["bytes"] += len(data)
        self.inbox.put(data)
        self.inbox.put(END)

    def error_received(self, exc: Exception) -> None:
        self.inbox.counts["udp_errors"] += 1


@contextlib.asynccontextmanager
async def open_source(url: SourceUrl, inbox: Inbox) -> AsyncIterator[str]:
    """Start feeding `inbox` from the transport; yields a description; everything is closed on exit."""
    tasks: set[asyncio.Task[None]] = set()
    if url.stream is not None:
        reader, writer = await open_stream(url.stream)
        tasks.add(asyncio.create_task(_pump(reader, inbox, ConnectionError(f"{url} closed"))))
        try:
            yield f"connected to {url}"
        finally:
            writer.close()
            await _cancel(tasks)
        return
    if url.scheme == "udp-listen":
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_datagram_endpoint(lambda: _Datagrams(inbox), local_addr=(url.host, url.port))
        except OSError as exc:
            raise ConnectionError(f"cannot listen on udp {url.host}:{url.port}: {exc}") from exc
        try:
            yield f"listening on udp {url.host}:{url.port}"
        finally:
            transport.close()
        return
    current: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for old in current:
            old.close()
            inbox.counts["replaced_connections"] += 1
        current[:] = [writer]
        inbox.counts["connections"] += 1
        inbox.put(RESET)
        task = asyncio.current_task()
        if task is not None:
            tasks.add(task)
        try:
            await _pump(reader, inbox, None)
        finally:
            writer.close()
            if task is not None:
                tasks.discard(task)

    try:
        server = await asyncio.start_server(accept, url.host, url.port, limit=READ_SIZE * 4)
    except OSError as exc:
        raise ConnectionError(f"cannot listen on tcp {url.host}:{url.port}: {exc}") from exc
    try:
        yield f"listening on tcp {url.host}:{url.port}"
    finally:
        server.close()
        for w in current:
            w.close()
        await _cancel(tasks)


async def _cancel(tasks: set[asyncio.Task[None]]) -> None:
    for t in list(tasks):
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
