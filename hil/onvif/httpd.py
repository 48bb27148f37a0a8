"""A small HTTP/1.1 server on asyncio streams: what a camera's embedded web server does for SOAP.

Persistent connections (HTTP/1.1 keep-alive; ``Connection: close`` honoured), Content-Length and chunked
request bodies, ``Expect: 100-continue``, bodies capped (413), request line and headers capped (431/400),
an idle connection closed after 30 s. Any malformed request gets 400 and the connection is closed;
other connections are not affected. ``abort()`` drops every connection at once (a reboot).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import formatdate

log = logging.getLogger(__name__)

MAX_LINE = 8192
MAX_HEADERS = 100
IDLE_S = 30.0
REASONS = {100: "Continue", 200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
           405: "Method Not Allowed", 411: "Length Required", 413: "Payload Too Large",
           431: "Request Header Fields Too Large", 500: "Internal Server Error", 501: "Not Implemented",
           505: "HTTP Version Not Supported"}


@dataclass
class Request:
    method: str
    path: str
    version: str
    headers: dict[str, str]
    body: bytes
    peer: str


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class HttpError(Exception):
    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status


Handler = Callable[[Request], Awaitable[Response]]


class HttpServer:
    def __init__(self, handler: Handler, max_body: int, server_name: str = "hil-onvif") -> None:
        self.handler = handler
        self.max_body = max_body
        self.server_name = server_name
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.requests = 0
        self.bad_requests = 0

    async def start(self, host: str, port: int) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._client, host, port, limit=MAX_LINE, reuse_address=True)
        return self._server.sockets[0].getsockname()[:2]

    @property
    def serving(self) -> bool:
        return self._server is not None

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        self.abort()

    def abort(self) -> None:
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        peer_text = f"{peer[0]}:{peer[1]}" if peer else "?"
        self._writers.add(writer)
        try:
            while True:
                try:
                    req = await asyncio.wait_for(self._read(reader, writer, peer_text), IDLE_S)
                except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                    return
                except HttpError as exc:
                    self.bad_requests += 1
                    log.info("bad HTTP request from %s: %s", peer_text, exc)
                    self._write(writer, Response(exc.status, str(exc).encode() + b"\n",
                                                 {"Content-Type": "text/plain"}), close=True)
                    await writer.drain()
                    return
                if req is None:
                    return
                self.requests += 1
                close = (req.headers.get("connection", "").lower() == "close"
                         or (req.version == "HTTP/1.0" and req.headers.get("connection", "").lower() != "keep-alive"))
                try:
                    resp = await self.handler(req)
                except Exception:  # a bug must not take the camera down: 500, like an embedded server
                    log.exception("handler failed")
                    resp = Response(500, b"internal error\n", {"Content-Type": "text/plain"})
                self._write(writer, resp, close)
                await writer.drain()
                if close:
                    return
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()

    async def _line(self, reader: asyncio.StreamReader) -> bytes:
        try:
            return await reader.readuntil(b"\n")
        except asyncio.LimitOverrunError:
            raise HttpError(431, "line too long") from None
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                raise HttpError(400, "connection closed inside the request") from None
            raise

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str) -> Request | None:
        try:
            first = await self._line(reader)
        except asyncio.IncompleteReadError:
            return None
        parts = first.decode("latin-1").strip().split(" ")
        if len(parts) != 3 or not parts[0].isalpha() or not parts[1].startswith("/"):
            raise HttpError(400, "bad request line")
        method, target, version = parts
        if version not in ("HTTP/1.1", "HTTP/1.0"):
            raise HttpError(505, f"version {version!r}")
        headers: dict[str, str] = {}
        for _ in range(MAX_HEADERS + 1):
            line = (await self._line(reader)).decode("latin-1").rstrip("\r\n")
            if not line:
                break
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip() or any(c in name for c in " \t"):
                raise HttpError(400, "bad header line")
            key = name.lower()
            headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
        else:
            raise HttpError(431, "too many header lines")
        if headers.get("expect", "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = b""
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = await self._chunked(reader)
        elif "content-length" in headers:
            text = headers["content-length"]
            if not text.isdigit():
                raise HttpError(400, "bad Content-Length")
            n = int(text)
            if n > self.max_body:
                raise HttpError(413, f"body of {n} bytes (max {self.max_body})")
            body = await reader.readexactly(n)
        elif method == "POST":
            raise HttpError(411, "POST without Content-Length")
        return Request(method, target.split("?", 1)[0], version, headers, body, peer)

    async def _chunked(self, reader: asyncio.StreamReader) -> bytes:
        body = b""
        while True:
            size_line = (await self._line(reader)).split(b";", 1)[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                raise HttpError(400, "bad chunk size") from None
            if size == 0:
                while (await self._line(reader)).strip():  # trailers
                    pass
                return body
            if len(body) + size > self.max_body:
                raise HttpError(413, f"chunked body over {self.max_body} bytes")
            body += await reader.readexactly(size)
            if await reader.readexactly(2) != b"\r\n":
                raise HttpError(400, "chunk not followed by CRLF")

    def _write(self, writer: asyncio.StreamWriter, resp: Response, close: bool) -> None:
        head = [f"HTTP/1.1 {resp.status} {REASONS.get(resp.status, 'Status')}",
                f"Server: {self.server_name}", f"Date: {formatdate(usegmt=True)}",
                f"Content-Length: {len(resp.body)}", f"Connection: {'close' if close else 'keep-alive'}"]
        head += [f"{k}: {v}" for k, v in resp.headers.items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + resp.body)
