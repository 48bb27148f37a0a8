"""SIP over UDP and TCP on one address (RFC 3261 §17, §18), with the transaction bits a platform needs.

* Inbound requests go to the handler at once (inline, on the loop: it must not block).
  A retransmitted request gets the cached response again without reaching the handler.
* `request()` sends a request and awaits its final response: over UDP retransmitted at
  T1 = 0.5 s doubling to T2 = 4 s until a response (a provisional one stops it for INVITE),
  failing after `timeout` (timer F/B, 32 s by default).
* TCP is framed by Content-Length; CRLF keep-alives are skipped. A connection that sends
  an unframeable message (no or an oversized Content-Length) is answered if possible and closed.
* Bounded: 256 KiB queued per TCP connection (more is dropped and counted), at most
  `MAX_TCP_CONNECTIONS` connections, `MAX_PENDING` client transactions, `CACHE_SIZE` cached responses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from drivers.gb28181 import sip
from drivers.gb28181.sip import SipError, SipMessage

log = logging.getLogger(__name__)

T1, T2 = 0.5, 4.0
TIMER_F = 32.0
SEND_BUFFER = 256 * 1024
MAX_TCP_CONNECTIONS = 4096
MAX_PENDING = 8192
CACHE_SIZE = 4096
CACHE_TTL = 32.0
UDP_RECEIVE_BUFFER = 4 * 1024 * 1024  # the kernel's queue for the SIP socket (the only receive queue: no other)


@dataclass(eq=False)
class TcpConn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    addr: tuple[str, int]
    closed: bool = False


@dataclass(frozen=True)
class Peer:
    """Where a message came from and where answers go: UDP (address) or a TCP connection."""

    transport: str  # "UDP" | "TCP"
    addr: tuple[str, int]
    conn: TcpConn | None = field(default=None, compare=False)

    @property
    def usable(self) -> bool:
        return self.transport == "UDP" or (self.conn is not None and not self.conn.closed)


Handler = Callable[[SipMessage, Peer], None]
StrayHandler = Callable[[SipMessage, Peer], None]


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, owner: SipTransport) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        self.owner.counts["udp_in"] += 1
        if not data.strip(b"\r\n"):
            return  # a keep-alive
        self.owner.received(data, Peer("UDP", (addr[0], addr[1])), stream=False)

    def error_received(self, exc: Exception) -> None:
        self.owner.counts["udp_errors"] += 1


class SipTransport:
    def __init__(self, host: str, port: int, on_request: Handler, on_stray: StrayHandler | None = None) -> None:
        self.host, self.port = host, port
        self.on_request = on_request
        self.on_stray = on_stray
        self.counts: Counter[str] = Counter()
        self._udp: asyncio.DatagramTransport | None = None
        self._server: asyncio.base_events.Server | None = None
        self._conns: set[TcpConn] = set()
        self._pending: dict[str, asyncio.Future[SipMessage]] = {}
        self._provisional: dict[str, asyncio.Event] = {}
        self._cache: OrderedDict[tuple[str, str, str, str], tuple[float, bytes]] = OrderedDict()
        self._local_ip: dict[str, str] = {}

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            with contextlib.suppress(OSError):  # a thousand devices registering at once must not overflow it
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER)
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        self._udp, _ = await loop.create_datagram_endpoint(lambda: _Udp(self), sock=sock)
        if self.port == 0:
            self.port = sock.getsockname()[1]
        self._server = await asyncio.start_server(self._accept, self.host, self.port, reuse_address=True)

    async def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._server is not None:
            self._server.close()
        for conn in list(self._conns):
            conn.closed = True
            conn.writer.close()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ConnectionError("SIP transport closed"))

    # -- addresses -------------------------------------------------------------------
    def local_ip(self, remote_ip: str) -> str:
        """The address of ours a device reaches (for Via, Contact, SDP)."""
        if self.host not in ("0.0.0.0", ""):
            return self.host
        ip = self._local_ip.get(remote_ip)
        if ip is None:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                try:
                    s.connect((remote_ip, 9))  # no packet is sent: only the route is looked up
                    ip = s.getsockname()[0]
                except OSError:
                    ip = "127.0.0.1"
            self._local_ip[remote_ip] = ip
        return ip

    def via(self, peer: Peer) -> str:
        return f"SIP/2.0/{peer.transport} {self.local_ip(peer.addr[0])}:{self.port};rport;branch={sip.new_branch()}"

    # -- receiving -------------------------------------------------------------------
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        addr = writer.get_extra_info("peername")
        if len(self._conns) >= MAX_TCP_CONNECTIONS:
            self.counts["tcp_refused"] += 1
            writer.close()
            return
        conn = TcpConn(reader, writer, (addr[0], addr[1]))
        self._conns.add(conn)
        self.counts["tcp_connections"] += 1
        peer = Peer("TCP", conn.addr, conn)
        buf = b""
        try:
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                buf += chunk
                buf = self._frames(buf, peer)
                if buf is None:
                    break
        except (ConnectionError, OSError):
            pass
        finally:
            conn.closed = True
            self._conns.discard(conn)
            writer.close()

    def _frames(self, buf: bytes, peer: Peer) -> bytes | None:  # type: ignore[return]
        """Every whole message in `buf` to `received`; the rest, or None to close the connection."""
        while True:
            buf = buf.lstrip(b"\r\n")
            parts = sip.split_head(buf)
            if parts is None:
                if len(buf) > sip.MAX_HEADER_BYTES:
                    self.counts["bad_messages"] += 1
                    return None
                return buf
            head, rest = parts
            try:
                n = sip.content_length(head)
            except SipError:
                n = -1
            n = 0 if n is None else n  # RFC 3261 §18.3 asks for one on streams; without it, no body
            if n < 0 or n > sip.MAX_BODY_BYTES:
                self.received(buf[:len(buf) - len(rest)], peer, stream=True)  # answered (400/413) if it can be
                self.counts["tcp_closed_unframeable"] += 1
                return None
            if len(rest) < n:
                return buf
            self.received(head + b"\r\n\r\n" + rest[:n], peer, stream=True)
            buf = rest[n:]

    def received(self, data: bytes, peer: Peer, stream: bool) -> None:
        try:
            msg = sip.parse(data, stream=stream)
        except SipError as exc:
            self.counts["bad_messages"] += 1
            log.debug("bad SIP from %s: %s", peer.addr, exc.reason)
            if exc.partial is not None and exc.partial.method != "ACK":
                self.send(sip.response_to(exc.partial, exc.status, _REASONS.get(exc.status, "Bad Request")), peer)
            return
        except Exception:  # the parser is fuzzed; this is the last guard against a crash
            self.counts["bad_messages"] += 1
            log.exception("SIP parser failed on %r", data[:80])
            return
        if msg.is_request:
            self.counts["requests_in"] += 1
            key = self._key(msg)
            cached = self._cache.get(key) if key else None
            if cached is not None and msg.method != "ACK":
                self.counts["retransmissions_in"] += 1
                self._send_bytes(cached[1], peer)
                return
            try:
                self.on_request(msg, peer)
            except Exception:  # a handler bug must not take the listener down
                self.counts["handler_errors"] += 1
                log.exception("handling %s from %s failed", msg.method, peer.addr)
        else:
            self.counts["responses_in"] += 1
            self._response(msg, peer)

    def _response(self, msg: SipMessage, peer: Peer) -> None:
        try:
            branch = sip.top_via(msg).branch
        except ValueError:
            self.counts["bad_messages"] += 1
            return
        fut = self._pending.get(branch)
        if fut is None or fut.done():
            self.counts["stray_responses"] += 1
            if self.on_stray is not None:
                self.on_stray(msg, peer)
            return
        if msg.status < 200:
            ev = self._provisional.get(branch)
            if ev is not None:
                ev.set()
            return
        fut.set_result(msg)

    @staticmethod
    def _key(msg: SipMessage) -> tuple[str, str, str, str] | None:
        try:
            return (sip.top_via(msg).branch, msg.method, msg.call_id, msg.get("CSeq"))
        except ValueError:
            return None

    # -- sending ---------------------------------------------------------------------
    def respond(self, req: SipMessage, resp: SipMessage, peer: Peer) -> None:
        data = resp.encode()
        key = self._key(req)
        if key is not None and resp.status >= 200:
            now = time.monotonic()
            self._cache[key] = (now, data)
            while self._cache and (len(self._cache) > CACHE_SIZE or next(iter(self._cache.values()))[0] < now - CACHE_TTL):
                self._cache.popitem(last=False)
        self._send_bytes(data, peer)

    def send(self, msg: SipMessage, peer: Peer) -> None:
        self._send_bytes(msg.encode(), peer)

    def _send_bytes(self, data: bytes, peer: Peer) -> None:
        if peer.transport == "UDP":
            if self._udp is not None:
                self._udp.sendto(data, peer.addr)
                self.counts["udp_out"] += 1
            return
        conn = peer.conn
        if conn is None or conn.closed:
            self.counts["send_no_connection"] += 1
            return
        if conn.writer.transport.get_write_buffer_size() > SEND_BUFFER:
            self.counts["tcp_send_dropped"] += 1
            return
        conn.writer.write(data)
        self.counts["tcp_out"] += 1

    async def request(self, msg: SipMessage, peer: Peer, timeout: float = TIMER_F,
                      on_sent: Callable[[], None] | None = None) -> SipMessage:
        """Send a request (its top Via must carry a fresh branch); its final response. TimeoutError,
        ConnectionError when the device's TCP connection is gone."""
        if not peer.usable:
            raise ConnectionError("the device's SIP connection is closed")
        if len(self._pending) >= MAX_PENDING:
            self.counts["pending_full"] += 1
            raise ConnectionError("too many SIP requests in flight")
        branch = sip.top_via(msg).branch
        fut: asyncio.Future[SipMessage] = asyncio.get_running_loop().create_future()
        provisional = asyncio.Event()
        self._pending[branch] = fut
        self._provisional[branch] = provisional
        data = msg.encode()
        self.counts["requests_out"] += 1
        try:
            async with asyncio.timeout(timeout):
                self._send_bytes(data, peer)
                if on_sent is not None:
                    on_sent()
                interval = T1
                while peer.transport == "UDP" and not (msg.method == "INVITE" and provisional.is_set()):
                    done, _ = await asyncio.wait([fut], timeout=interval)
                    if done or (msg.method == "INVITE" and provisional.is_set()):
                        break
                    self.counts["retransmissions_out"] += 1
                    self._send_bytes(data, peer)
                    interval = min(interval * 2, T2)
                return await fut
        finally:
            self._pending.pop(branch, None)
            self._provisional.pop(branch, None)

    def stats(self) -> dict[str, int]:
        return {**self.counts, "tcp_open": len(self._conns), "transactions_pending": len(self._pending)}


_REASONS = {400: "Bad Request", 413: "Request Entity Too Large", 505: "Version Not Supported"}
