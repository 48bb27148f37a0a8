"""Opening a terminal's byte stream: `serial:///dev/...?baud=N` or `tcp://host:port`.

A serial path is opened by name on every (re)connect, so a udev link such
as /dev/serial/by-id/usb-... that follows a replugged device to a new
ttyUSBn just works. A vanished device raises ConnectionError, which the
supervisor answers with a backoff and a fresh driver run.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import SplitResult, parse_qs, urlsplit

import serial_asyncio_fast

SCHEMES = ("serial", "tcp")
READ_LIMIT = 64 * 1024


@dataclass(frozen=True)
class StreamUrl:
    scheme: str
    path: str = ""
    host: str = ""
    port: int = 0
    baud: int = 115200

    def __str__(self) -> str:
        return f"{self.path} @ {self.baud} baud" if self.scheme == "serial" else f"{self.host}:{self.port}"


def parse_stream_url(url: str, default_baud: int = 115200) -> StreamUrl:
    """Parse a terminal URL; ValueError with a reason a person can act on."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    if parts.scheme == "serial":
        if not parts.path.startswith("/"):
            raise ValueError("serial transport must be serial:///dev/NAME[?baud=N]")
        baud_text = query.get("baud", [str(default_baud)])[0]
        if not baud_text.isdigit() or not 300 <= int(baud_text) <= 4_000_000:
            raise ValueError(f"serial baud must be a number 300..4000000, got {baud_text!r}")
        return StreamUrl("serial", path=parts.path, baud=int(baud_text))
    if parts.scheme == "tcp":
        host, port = tcp_address(parts, "tcp transport must be tcp://HOST:PORT")
        return StreamUrl("tcp", host=host, port=port)
    raise ValueError(f"transport must be serial:///dev/NAME or tcp://HOST:PORT, not {parts.scheme or url!r}://")


def tcp_address(parts: SplitResult, usage: str) -> tuple[str, int]:
    """HOST and PORT of a parsed tcp:// URL; ValueError(usage) when either is missing or bad."""
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or not port:
        raise ValueError(usage)
    return parts.hostname, port


async def open_stream(url: StreamUrl) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    try:
        if url.scheme == "serial":
            return await serial_asyncio_fast.open_serial_connection(url=url.path, baudrate=url.baud, limit=READ_LIMIT)
        return await asyncio.wait_for(asyncio.open_connection(url.host, url.port, limit=READ_LIMIT), 10)
    except (OSError, TimeoutError) as exc:
        raise ConnectionError(f"cannot open {url}: {exc}") from exc
    except Exception as exc:  # pyserial raises SerialException (an OSError subclass in recent versions, not all)
        raise ConnectionError(f"cannot open {url}: {exc}") from exc
