"""RTSP 1.0 message framing (RFC 2326): requests out, responses / server requests / `$` interleaved frames in.

One reader per connection takes whatever the server sends next: a response to one
of our requests, a request of its own (some cameras send OPTIONS or
GET_PARAMETER), or an interleaved binary frame (`$`, channel, 16-bit length,
RTP/RTCP data). Bounded: a header line over MAX_LINE, more than MAX_HEADERS
headers or a body over MAX_BODY is a protocol error, never a growing buffer.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

MAX_LINE = 8192
MAX_HEADERS = 64
MAX_BODY = 256 * 1024  # an SDP is a few KB
USER_AGENT = "fieldgw"


class RtspError(Exception):
    """The server said no, or spoke something that is not RTSP."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class Headers:
    """Case-insensitive headers keeping every value (WWW-Authenticate may come twice)."""

    def __init__(self) -> None:
        self._items: list[tuple[str, str]] = []

    def add(self, name: str, value: str) -> None:
        self._items.append((name, value))

    def get(self, name: str, default: str | None = None) -> str | None:
        low = name.lower()
        for k, v in self._items:
            if k.lower() == low:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        low = name.lower()
        return [v for k, v in self._items if k.lower() == low]

    def __contains__(self, name: str) -> bool:
        return self.get(name) is not None


@dataclass
class Response:
    status: int
    reason: str
    headers: Headers
    body: bytes = b""

    @property
    def cseq(self) -> int | None:
        v = self.headers.get("CSeq")
        try:
            return int(v.strip()) if v is not None else None
        except ValueError:
            return None


@dataclass
class ServerRequest:
    method: str
    uri: str
    headers: Headers
    body: bytes = b""


@dataclass
class Interleaved:
    channel: int
    data: bytes


@dataclass
class Request:
    method: str
    uri: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def encode(self, cseq: int) -> bytes:
        lines = [f"{self.method} {self.uri} RTSP/1.0", f"CSeq: {cseq}", f"User-Agent: {USER_AGENT}"]
        lines += [f"{k}: {v}" for k, v in self.headers.items()]
        if self.body:
            lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


async def _line(reader: asyncio.StreamReader) -> str:
    raw = await reader.readuntil(b"\n")  # the reader's limit bounds it (LimitOverrunError)
    if len(raw) > MAX_LINE:
        raise RtspError("RTSP header line too long")
    return raw.decode("utf-8", "replace").rstrip("\r\n")


async def read_message(reader: asyncio.StreamReader) -> Response | ServerRequest | Interleaved:
    """The next thing the server sent. Raises IncompleteReadError at EOF, RtspError on garbage."""
    first = await reader.readexactly(1)
    if first == b"$":
        head = await reader.readexactly(3)
        return Interleaved(head[0], await reader.readexactly(int.from_bytes(head[1:3], "big")))
    while first in (b"\r", b"\n"):  # stray line ends between messages
        first = await reader.readexactly(1)
        if first == b"$":
            head = await reader.readexactly(3)
            return Interleaved(head[0], await reader.readexactly(int.from_bytes(head[1:3], "big")))
    start = first.decode("latin-1") + await _line(reader)
    headers = Headers()
    for _ in range(MAX_HEADERS + 1):
        line = await _line(reader)
        if not line:
            break
        if line[0] in " \t" and headers._items:  # folded continuation
            k, v = headers._items[-1]
            headers._items[-1] = (k, v + " " + line.strip())
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise RtspError(f"bad RTSP header line {line[:80]!r}")
        headers.add(name.strip(), value.strip())
    else:
        raise RtspError("too many RTSP headers")
    try:
        length = int(headers.get("Content-Length", "0") or "0")
    except ValueError:
        raise RtspError("bad Content-Length") from None
    if not 0 <= length <= MAX_BODY:
        raise RtspError(f"RTSP body of {length} bytes refused")
    body = await reader.readexactly(length) if length else b""
    parts = start.split(" ", 2)
    if parts[0].startswith("RTSP/"):
        if len(parts) < 2 or not parts[1].isdigit():
            raise RtspError(f"bad RTSP status line {start[:80]!r}")
        return Response(int(parts[1]), parts[2] if len(parts) > 2 else "", headers, body)
    if len(parts) == 3 and parts[2].startswith("RTSP/"):
        return ServerRequest(parts[0], parts[1], headers, body)
    raise RtspError(f"not RTSP: {start[:80]!r}")


def reply(status: int, reason: str, cseq: str | None) -> bytes:
    """A response to a request the server sent us."""
    lines = [f"RTSP/1.0 {status} {reason}"] + ([f"CSeq: {cseq}"] if cseq is not None else [])
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def parse_session(value: str) -> tuple[str, float | None]:
    """`Session: id;timeout=N` → (id, timeout seconds or None)."""
    sid, *params = [p.strip() for p in value.split(";")]
    timeout = None
    for p in params:
        k, _, v = p.partition("=")
        if k.strip().lower() == "timeout":
            try:
                timeout = float(v.strip())
            except ValueError:
                pass
    return sid, timeout


def parse_transport(value: str) -> dict[str, str]:
    """A Transport header's parameters (the first transport spec only), lower-case keys."""
    spec = value.split(",")[0]
    out: dict[str, str] = {}
    for i, p in enumerate(spec.split(";")):
        p = p.strip()
        if i == 0:
            out["protocol"] = p
            continue
        k, _, v = p.partition("=")
        out[k.strip().lower()] = v.strip()
    return out


def port_pair(value: str | None) -> tuple[int, int] | None:
    """"a-b" (or "a") → (a, b)."""
    if not value:
        return None
    a, _, b = value.partition("-")
    try:
        lo = int(a)
        return lo, int(b) if b else lo + 1
    except ValueError:
        return None
