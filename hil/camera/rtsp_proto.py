"""RTSP 1.0 message framing (RFC 2326): requests, responses, interleaved '$' frames, Transport."""
from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from email.utils import formatdate
from urllib.parse import urlsplit

MAX_LINE = 4096
MAX_HEADERS = 64
MAX_BODY = 65536
SERVER = "fieldgw-hil-camera/1.0"

REASONS = {
    200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable",
    451: "Parameter Not Understood",
    454: "Session Not Found", 455: "Method Not Valid in This State",
    459: "Aggregate Operation Not Allowed",
    461: "Unsupported Transport", 500: "Internal Server Error", 501: "Not Implemented",
    503: "Service Unavailable", 505: "RTSP Version Not Supported",
}

_REQUEST_LINE = re.compile(r"^([A-Z_]{1,32}) (\S{1,2048}) RTSP/(\d)\.(\d)$")


class BadRequest(Exception):
    """The peer sent something that is not RTSP; answer 400 (or 505) and close."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Request:
    method: str
    uri: str
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""

    @property
    def cseq(self) -> str | None:
        return self.headers.get("cseq")

    @property
    def path(self) -> str:
        if self.uri == "*":
            return "*"
        return urlsplit(self.uri).path or "/"

    @property
    def session_id(self) -> str | None:
        value = self.headers.get("session")
        return value.split(";", 1)[0].strip() if value else None


@dataclass
class Interleaved:
    channel: int
    data: bytes


async def read_message(reader: asyncio.StreamReader) -> Request | Interleaved | None:
    """The next request or interleaved frame; None at a clean end of stream."""
    try:
        first = await reader.readexactly(1)
    except asyncio.IncompleteReadError:
        return None
    if first == b"$":
        head = await reader.readexactly(3)
        size = int.from_bytes(head[1:3], "big")
        return Interleaved(head[0], await reader.readexactly(size))
    while first in b"\r\n":  # tolerate blank lines between requests
        try:
            first = await reader.readexactly(1)
        except asyncio.IncompleteReadError:
            return None
    line = first + await _readline(reader)
    try:
        text = line.decode("ascii").rstrip("\r\n")
    except UnicodeDecodeError:
        raise BadRequest("request line is not ASCII") from None
    m = _REQUEST_LINE.match(text)
    if not m:
        raise BadRequest(f"bad request line {text[:80]!r}")
    method, uri, major, minor = m.group(1), m.group(2), m.group(3), m.group(4)
    if (major, minor) != ("1", "0"):
        raise BadRequest(f"RTSP/{major}.{minor}", status=505)
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADERS + 1):
        raw = await _readline(reader)
        if raw in (b"\r\n", b"\n"):
            break
        try:
            name, sep, value = raw.decode("utf-8").partition(":")
        except UnicodeDecodeError:
            raise BadRequest("header is not UTF-8") from None
        if not sep or not name.strip() or " " in name.strip():
            raise BadRequest(f"bad header line {raw[:80]!r}")
        headers[name.strip().lower()] = value.strip()
    else:
        raise BadRequest("too many headers")
    body = b""
    length_text = headers.get("content-length", "0")
    if not length_text.isdigit() or int(length_text) > MAX_BODY:
        raise BadRequest("bad Content-Length")
    if int(length_text):
        body = await reader.readexactly(int(length_text))
    return Request(method, uri, headers, body)


async def _readline(reader: asyncio.StreamReader) -> bytes:
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.LimitOverrunError:
        raise BadRequest("line too long") from None
    if len(line) > MAX_LINE:
        raise BadRequest("line too long")
    return line


def response(status: int, cseq: str | None, headers: dict[str, str] | None = None, body: bytes = b"") -> bytes:
    lines = [f"RTSP/1.0 {status} {REASONS.get(status, 'Error')}"]
    if cseq is not None:
        lines.append(f"CSeq: {cseq}")
    lines.append(f"Server: {SERVER}")
    lines.append(f"Date: {formatdate(usegmt=True)}")
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class TransportSpec:
    """One alternative of a Transport request header that this server can serve."""
    tcp: bool
    channels: tuple[int, int] | None = None  # interleaved=a-b
    client_ports: tuple[int, int] | None = None  # client_port=a-b


def _pair(text: str) -> tuple[int, int] | None:
    a, sep, b = text.partition("-")
    if not a.isdigit() or (sep and not b.isdigit()):
        return None
    lo = int(a)
    hi = int(b) if sep else lo + 1
    return (lo, hi) if 0 <= lo <= 65535 and 0 <= hi <= 65535 else None


def parse_transport(header: str) -> TransportSpec | None:
    """The first supported unicast RTP/AVP alternative (TCP interleaved or UDP), else None."""
    for alt in header.split(","):
        parts = [p.strip() for p in alt.split(";") if p.strip()]
        if not parts:
            continue
        proto = parts[0].upper()
        params = dict(p.partition("=")[::2] for p in parts[1:])
        if "multicast" in params:
            continue
        if proto == "RTP/AVP/TCP":
            chans = _pair(params["interleaved"]) if params.get("interleaved") else None
            if params.get("interleaved") and (chans is None or max(chans) > 255):
                continue
            return TransportSpec(tcp=True, channels=chans)
        if proto in ("RTP/AVP", "RTP/AVP/UDP"):
            ports = _pair(params.get("client_port", ""))
            if ports is None or ports[0] == 0:
                continue
            return TransportSpec(tcp=False, client_ports=ports)
    return None
