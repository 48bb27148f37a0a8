"""SIP transport of one simulated device: UDP or TCP to the platform, with the transaction bits a
device needs (RFC 3261 §17): client requests retransmitted over UDP (timers E/F), responses to
retransmitted requests repeated from a cache, and 2xx to INVITE repeated until the ACK (timer G).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

from . import sip
from .sip import Message, SipError

log = logging.getLogger(__name__)

T1, T2 = 0.5, 4.0
CACHE_S = 32.0  # how long a server transaction's response is kept for retransmitted requests

RequestHandler = Callable[[Message], None]


def local_ip_towards(host: str) -> str:
    """The local address the kernel would use to reach `host` (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect((host, 9))
            return s.getsockname()[0]
        except OSError:
            return "127.0.0.1"


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, owner: SipTransport) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.owner._received(data, addr)

    def error_received(self, exc: Exception) -> None:  # ICMP port unreachable and the like
        log.debug("udp error: %s", exc)


class SipTransport:
    """`proto` "udp" or "tcp". `on_request` gets every new request (ACKs included, retransmissions not);
    `on_closed` is called when a TCP connection ends."""

    def __init__(self, proto: str, platform: tuple[str, int], bind: tuple[str, int], on_request: RequestHandler,
                 on_closed: Callable[[], None] | None = None, timeout: float = 32.0, local_ip: str | None = None) -> None:
        self.proto = proto
        self.platform = platform
        self.bind = bind
        self.on_request = on_request
        self.on_closed = on_closed
        self.timeout = timeout
        self.local_ip_override = local_ip
        self.local: tuple[str, int] = ("127.0.0.1", 0)
        self._udp: asyncio.DatagramTransport | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._pending: dict[tuple[str, str], asyncio.Future[Message]] = {}
        self._served: dict[tuple[str, str, str], tuple[float, bytes | None]] = {}
        self._invite_2xx: dict[str, asyncio.Task[None]] = {}
        self.closed = False
        self.stats: dict[str, int] = {"sent": 0, "received": 0, "retransmitted": 0, "bad_messages": 0,
                                      "timeouts": 0, "duplicates": 0}

    # -- life cycle -------------------------------------------------------------------------

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        if self.proto == "udp":
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(self.bind)
            sock.setblocking(False)
            transport, _ = await loop.create_datagram_endpoint(lambda: _Udp(self), sock=sock)
            self._udp = transport
            name = sock.getsockname()
        else:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setblocking(False)
            try:
                sock.bind(self.bind)
                await asyncio.wait_for(loop.sock_connect(sock, self.platform), 10.0)
            except BaseException:
                sock.close()
                raise
            reader, writer = await asyncio.open_connection(sock=sock, limit=sip.MAX_MESSAGE * 2)
            self._writer = writer
            self._reader_task = asyncio.create_task(self._read_tcp(reader))
            name = sock.getsockname()
        ip = self.local_ip_override or (name[0] if name[0] not in ("0.0.0.0", "") else local_ip_towards(self.platform[0]))
        self.local = (ip, name[1])

    async def close(self) -> None:
        self.closed = True
        for t in self._invite_2xx.values():
            t.cancel()
        self._invite_2xx.clear()
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ConnectionError("transport closed"))
                fut.exception()  # nobody may be waiting: mark it retrieved
        self._pending.clear()
        if self._udp is not None:
            self._udp.close()
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._writer.wait_closed(), 1.0)
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader_task

    @property
    def via_transport(self) -> str:
        return self.proto.upper()

    def via(self, branch: str) -> str:
        return f"SIP/2.0/{self.via_transport} {self.local[0]}:{self.local[1]};rport;branch={branch}"

    # -- sending ----------------------------------------------------------------------------

    def send_raw(self, data: bytes, to: tuple[str, int] | None = None) -> None:
        """To the platform (UDP: or to `to`, where a request came from)."""
        if self.closed:
            return
        self.stats["sent"] += 1
        if self._udp is not None:
            self._udp.sendto(data, to or self.platform)
        elif self._writer is not None and not self._writer.is_closing():
            self._writer.write(data)

    async def request(self, msg: Message) -> Message:
        """Send a request and wait for its final response (1xx are skipped). TimeoutError after
        `timeout` s (timer F), ConnectionError if the transport closes meanwhile."""
        key = (msg.branch, msg.cseq[1])
        fut: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._pending[key] = fut
        data = msg.encode()
        deadline = time.monotonic() + self.timeout
        interval = T1
        try:
            self.send_raw(data)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.stats["timeouts"] += 1
                    raise TimeoutError(f"no response to {msg.summary()}")
                wait = min(interval, left) if self.proto == "udp" else left
                try:
                    return await asyncio.wait_for(asyncio.shield(fut), wait)
                except TimeoutError:
                    if self.proto == "udp" and time.monotonic() < deadline:
                        self.stats["retransmitted"] += 1
                        self.send_raw(data)
                        interval = min(interval * 2, T2)
        finally:
            self._pending.pop(key, None)

    def respond(self, req: Message, resp: Message) -> None:
        """Send a response (over UDP to where the request came from, RFC 3261 §18.2.2 with rport) and
        remember it for retransmissions of `req`."""
        data = resp.encode()
        self._served[(req.call_id, req.branch, req.get("CSeq"))] = (time.monotonic(), data)
        self.send_raw(data, req.source)
        if req.method == "INVITE" and 200 <= resp.status < 300 and self.proto == "udp":
            old = self._invite_2xx.pop(req.call_id, None)
            if old is not None:
                old.cancel()
            self._invite_2xx[req.call_id] = asyncio.create_task(self._repeat_2xx(req.call_id, data, req.source))

    async def _repeat_2xx(self, call_id: str, data: bytes, to: tuple[str, int] | None) -> None:
        interval, waited = T1, 0.0
        while waited < 64 * T1:
            await asyncio.sleep(interval)
            waited += interval
            self.stats["retransmitted"] += 1
            self.send_raw(data, to)
            interval = min(interval * 2, T2)
        self._invite_2xx.pop(call_id, None)

    # -- receiving --------------------------------------------------------------------------

    async def _read_tcp(self, reader: asyncio.StreamReader) -> None:
        splitter = sip.StreamSplitter()
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                try:
                    messages = splitter.feed(data)
                except SipError as exc:
                    self.stats["bad_messages"] += 1
                    log.warning("bad SIP stream from the platform: %s; connection dropped", exc)
                    break
                for m in messages:
                    self._received(m)
        except (ConnectionError, OSError):
            pass
        finally:
            if not self.closed:
                self.closed = True
                if self.on_closed is not None:
                    self.on_closed()

    def _received(self, data: bytes, source: tuple[str, int] | None = None) -> None:
        if not data.strip(b"\r\n"):
            return  # CRLF keep-alive
        self.stats["received"] += 1
        try:
            msg = sip.parse(data)
        except SipError as exc:
            self.stats["bad_messages"] += 1
            log.warning("dropped a bad SIP message (%s): %r", exc, data[:120])
            return
        if msg.is_request:
            msg.source = source
            self._incoming_request(msg)
        else:
            fut = self._pending.get((msg.branch, msg.cseq[1]))
            if fut is not None and not fut.done() and msg.status >= 200:
                fut.set_result(msg)

    def _incoming_request(self, msg: Message) -> None:
        now = time.monotonic()
        if len(self._served) > 512:
            self._served = {k: v for k, v in self._served.items() if now - v[0] < CACHE_S}
        if msg.method == "ACK":
            task = self._invite_2xx.pop(msg.call_id, None)
            if task is not None:
                task.cancel()
            self._dispatch(msg)
            return
        key = (msg.call_id, msg.branch, msg.get("CSeq"))
        seen = self._served.get(key)
        if seen is not None and now - seen[0] < CACHE_S:
            self.stats["duplicates"] += 1
            if seen[1] is not None:
                self.send_raw(seen[1], msg.source)
            return
        self._served[key] = (now, None)
        self._dispatch(msg)

    def _dispatch(self, msg: Message) -> None:
        try:
            self.on_request(msg)
        except Exception:  # noqa: BLE001 - one bad request must not take the device down
            log.exception("handling %s failed", msg.summary())
            if msg.method != "ACK":
                self.respond(msg, sip.response(msg, 500))

    def to_json(self) -> dict[str, Any]:
        return {"proto": self.proto, "local": list(self.local), **self.stats}
