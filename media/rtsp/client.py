"""An RTSP 1.0 client session on asyncio: OPTIONS, DESCRIBE, SETUP (TCP interleaved or UDP), PLAY,
keep-alive, RTCP receiver reports, TEARDOWN.

Media is handed to per-track callbacks as it arrives, with no queue in between:
over TCP each `$` frame is dispatched as soon as it is read (the socket is the
only buffer, so a slow consumer pushes back on the camera), over UDP each
datagram as it is received (the kernel's receive buffer, SO_RCVBUF 2 MB, is
the only buffer; overflow is loss, which the depacketizer handles).

Keep-alive: GET_PARAMETER if the server lists it in OPTIONS' Public, else
OPTIONS, every half of the session timeout (at most 30 s). RTCP receiver
reports every RR_INTERVAL_S per track (cameras drop sessions that send none).
No media for MEDIA_TIMEOUT_S, a closed connection, an RTCP BYE or a failed
keep-alive ends the session (`done` resolves with the reason); reconnecting
is the caller's business.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit, urlunsplit

from media.rtsp.auth import Auth
from media.rtsp.message import (Interleaved, Request, Response, RtspError, ServerRequest, parse_session,
                                parse_transport, port_pair, read_message, reply)
from media.rtsp.rtp import ReceiverStats, new_ssrc, parse_rtcp, receiver_report
from media.rtsp.sdp import Media, SessionDescription, parse_sdp, resolve_control

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0
REQUEST_TIMEOUT_S = 5.0
MEDIA_TIMEOUT_S = 5.0  # no RTP this long after PLAY: the source is dead
RR_INTERVAL_S = 5.0  # RFC 3550's minimum interval
UDP_RCVBUF = 2 * 1024 * 1024
READ_LIMIT = 256 * 1024  # StreamReader buffer: one interleaved frame is at most 64 KB


@dataclass
class Track:
    media: Media
    url: str
    on_rtp: Callable[[bytes, float], None]
    stats: ReceiverStats
    channels: tuple[int, int] | None = None  # TCP interleaved
    udp: list[asyncio.DatagramTransport] = field(default_factory=list)  # [rtp, rtcp]
    rtcp_dest: tuple[str, int] | None = None
    last_rtp: float = 0.0


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """The URL without its user:password (never sent in request lines), and the credentials."""
    parts = urlsplit(url)
    if parts.username is None:
        return url, None, None
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    clean = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    return clean, unquote(parts.username), unquote(parts.password or "")


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, peer_host: str, on_data: Callable[[bytes, tuple[str, int]], None]) -> None:
        self.peer_host = peer_host
        self.on_data = on_data
        self.foreign = 0

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if addr[0] != self.peer_host:  # only the camera may feed this port
            self.foreign += 1
            return
        self.on_data(data, addr)

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP unreachable for an RTCP report: the camera decides, not us


class RtspClient:
    def __init__(self, url: str, transport: str = "tcp") -> None:
        if transport not in ("tcp", "udp"):
            raise ValueError(f"RTSP transport {transport!r}: tcp or udp")
        self.url, user, password = split_credentials(url)
        parts = urlsplit(self.url)
        if parts.scheme != "rtsp" or not parts.hostname:
            raise ValueError(f"not an rtsp:// URL: {self.url}")
        self.host, self.port = parts.hostname, parts.port or 554
        self.transport = transport
        self.auth = Auth(user, password or "") if user is not None else None
        self.public: set[str] = set()
        self.session: str | None = None
        self.session_timeout = 60.0
        self.tracks: list[Track] = []
        self.sdp: SessionDescription | None = None
        self.base = self.url
        self.done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._cseq = 0
        self._pending: dict[int, asyncio.Future[Response]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._by_channel: dict[int, tuple[Track, bool]] = {}  # channel → (track, is_rtcp)
        self._ssrc = new_ssrc()
        self._cname = f"fieldgw-{self._ssrc:08x}".encode()
        self.local_host = ""
        self.peer_host = ""
        self.playing_since: float | None = None

    # --- connection -------------------------------------------------------------------
    async def connect(self) -> None:
        self._reader, self._writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port, limit=READ_LIMIT), CONNECT_TIMEOUT_S)
        sock = self._writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.local_host = self._writer.get_extra_info("sockname")[0]
        self.peer_host = self._writer.get_extra_info("peername")[0]
        self._tasks.append(asyncio.create_task(self._read_loop(), name=f"rtsp-read:{self.url}"))

    def _end(self, reason: str) -> None:
        if not self.done.done():
            self.done.set_result(reason)
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ConnectionError(reason))
        self._pending.clear()

    async def _read_loop(self) -> None:
        assert self._reader is not None and self._writer is not None
        try:
            while True:
                msg = await read_message(self._reader)
                if isinstance(msg, Interleaved):
                    self._interleaved(msg.channel, msg.data)
                elif isinstance(msg, Response):
                    fut = self._pending.pop(msg.cseq, None) if msg.cseq is not None else None
                    if fut is not None and not fut.done():
                        fut.set_result(msg)
                elif isinstance(msg, ServerRequest):  # a camera's own keep-alive or announcement
                    ok = msg.method in ("OPTIONS", "GET_PARAMETER", "SET_PARAMETER")
                    self._writer.write(reply(200 if ok else 501, "OK" if ok else "Not Implemented",
                                             msg.headers.get("CSeq")))
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            self._end(f"RTSP connection closed ({type(exc).__name__})")
        except (RtspError, asyncio.LimitOverrunError, ValueError) as exc:
            self._end(f"RTSP protocol error: {exc}")
        except asyncio.CancelledError:
            self._end("closed")
            raise

    async def request(self, method: str, uri: str, headers: dict[str, str] | None = None) -> Response:
        """Send one request and wait for its response; answers a 401 once with the credentials."""
        for attempt in range(2):
            hdrs = dict(headers or {})
            if self.session and method != "DESCRIBE":
                hdrs.setdefault("Session", self.session)
            if self.auth is not None and (h := self.auth.header(method, uri)):
                hdrs["Authorization"] = h
            resp = await self._send(Request(method, uri, hdrs))
            if resp.status == 401 and attempt == 0 and self.auth is not None \
                    and self.auth.challenge(resp.headers.get_all("WWW-Authenticate")):
                continue
            if resp.status == 401:
                raise RtspError(f"{method} {uri}: 401 Unauthorized"
                                + ("" if self.auth else " (no credentials in the URL)"), 401)
            return resp
        raise AssertionError("unreachable")

    async def _send(self, req: Request) -> Response:
        if self.done.done():
            raise ConnectionError(self.done.result())
        assert self._writer is not None
        self._cseq += 1
        cseq = self._cseq
        fut: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._pending[cseq] = fut
        self._writer.write(req.encode(cseq))
        try:
            return await asyncio.wait_for(fut, REQUEST_TIMEOUT_S)
        except TimeoutError:
            raise TimeoutError(f"no answer to {req.method} in {REQUEST_TIMEOUT_S:.0f} s") from None
        finally:
            self._pending.pop(cseq, None)

    @staticmethod
    def _ok(resp: Response, what: str) -> Response:
        if not 200 <= resp.status < 300:
            raise RtspError(f"{what}: {resp.status} {resp.reason}".rstrip(), resp.status)
        return resp

    # --- session ----------------------------------------------------------------------
    async def describe(self) -> SessionDescription:
        resp = await self.request("OPTIONS", self.url)
        if 200 <= resp.status < 300:
            self.public = {m.strip().upper() for m in (resp.headers.get("Public") or "").split(",") if m.strip()}
        resp = self._ok(await self.request("DESCRIBE", self.url, {"Accept": "application/sdp"}), "DESCRIBE")
        ctype = (resp.headers.get("Content-Type") or "application/sdp").split(";")[0].strip().lower()
        if ctype != "application/sdp" or not resp.body:
            raise RtspError(f"DESCRIBE gave {ctype or 'nothing'}, not an SDP")
        self.base = (resp.headers.get("Content-Base") or resp.headers.get("Content-Location") or self.url).strip()
        self.sdp = parse_sdp(resp.body.decode("utf-8", "replace"))
        return self.sdp

    async def setup(self, media: Media, on_rtp: Callable[[bytes, float], None]) -> Track:
        track = Track(media, resolve_control(self.base, media.control), on_rtp, ReceiverStats(media.clock_rate))
        index = len(self.tracks)
        if self.transport == "tcp":
            transport = f"RTP/AVP/TCP;unicast;interleaved={2 * index}-{2 * index + 1}"
        else:
            ports = await self._bind_udp(track)
            transport = f"RTP/AVP;unicast;client_port={ports[0]}-{ports[1]}"
        try:
            resp = self._ok(await self.request("SETUP", track.url, {"Transport": transport}), f"SETUP {track.url}")
        except BaseException:
            for t in track.udp:
                t.close()
            raise
        if resp.headers.get("Session"):
            self.session, timeout = parse_session(resp.headers.get("Session") or "")
            if timeout:
                self.session_timeout = timeout
        reply_t = parse_transport(resp.headers.get("Transport") or "")
        if self.transport == "tcp":
            if "TCP" not in reply_t.get("protocol", "TCP").upper():
                raise RtspError(f"asked for TCP, the server answered {reply_t.get('protocol')}")
            track.channels = port_pair(reply_t.get("interleaved")) or (2 * index, 2 * index + 1)
            self._by_channel[track.channels[0]] = (track, False)
            self._by_channel[track.channels[1]] = (track, True)
        else:
            server = port_pair(reply_t.get("server_port"))
            if server is not None:
                track.rtcp_dest = (reply_t.get("source") or self.peer_host, server[1])
        self.tracks.append(track)
        return track

    async def _bind_udp(self, track: Track) -> tuple[int, int]:
        """An even/odd UDP port pair on the address the RTSP connection uses."""
        loop = asyncio.get_running_loop()
        for _ in range(32):
            rtp_sock = socket.socket(socket.AF_INET6 if ":" in self.local_host else socket.AF_INET, socket.SOCK_DGRAM)
            rtcp_sock = socket.socket(rtp_sock.family, socket.SOCK_DGRAM)
            try:
                rtp_sock.bind((self.local_host, 0))
                port = rtp_sock.getsockname()[1]
                if port & 1 or port >= 65535:
                    raise OSError("odd port")
                rtcp_sock.bind((self.local_host, port + 1))
            except OSError:
                rtp_sock.close()
                rtcp_sock.close()
                continue
            with contextlib.suppress(OSError):
                rtp_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RCVBUF)
            t_rtp, _ = await loop.create_datagram_endpoint(
                lambda: _Udp(self.peer_host, lambda d, a: self._rtp(track, d)), sock=rtp_sock)
            t_rtcp, _ = await loop.create_datagram_endpoint(
                lambda: _Udp(self.peer_host, lambda d, a: self._rtcp(track, d, a)), sock=rtcp_sock)
            track.udp = [t_rtp, t_rtcp]
            return port, port + 1
        raise OSError("no free even/odd UDP port pair for RTP/RTCP")

    async def play(self) -> None:
        if not self.tracks:
            raise RtspError("nothing set up to play")
        url = resolve_control(self.base, self.sdp.control if self.sdp else None)
        self._ok(await self.request("PLAY", url, {"Range": "npt=0.000-"}), "PLAY")
        now = time.monotonic()
        self.playing_since = now
        for t in self.tracks:
            t.last_rtp = now
        self._tasks.append(asyncio.create_task(self._housekeeping(), name=f"rtsp-keepalive:{self.url}"))

    # --- media ------------------------------------------------------------------------
    def _interleaved(self, channel: int, data: bytes) -> None:
        hit = self._by_channel.get(channel)
        if hit is None:
            return
        track, rtcp = hit
        if rtcp:
            self._rtcp(track, data, None)
        else:
            self._rtp(track, data)

    def _rtp(self, track: Track, data: bytes) -> None:
        now = time.monotonic()
        track.last_rtp = now
        if len(data) >= 12 and data[0] >> 6 == 2:
            seq, ts, ssrc = struct.unpack_from("!HII", data, 2)
            track.stats.packet(seq, ts, ssrc, now)
        track.on_rtp(data, now)

    def _rtcp(self, track: Track, data: bytes, addr: tuple[str, int] | None) -> None:
        if addr is not None and track.rtcp_dest is None:
            track.rtcp_dest = addr
        parse_rtcp(data, lambda ssrc, mid: track.stats.sender_report(mid, time.monotonic()),
                   lambda: self._end("the camera sent RTCP BYE"))

    def send_receiver_reports(self) -> None:
        for t in self.tracks:
            pkt = receiver_report(self._ssrc, t.stats, self._cname)
            if t.channels is not None and self._writer is not None and not self._writer.transport.is_closing():
                self._writer.write(b"$" + bytes((t.channels[1],)) + len(pkt).to_bytes(2, "big") + pkt)
            elif t.udp and t.rtcp_dest is not None:
                t.udp[1].sendto(pkt, t.rtcp_dest)

    async def _housekeeping(self) -> None:
        keepalive = max(1.0, min(30.0, self.session_timeout / 2))
        method = "GET_PARAMETER" if "GET_PARAMETER" in self.public else "OPTIONS"
        start = time.monotonic()
        next_rr, next_ka = start + 1.0, start + keepalive
        pending: asyncio.Task[None] | None = None
        try:
            while not self.done.done():
                await asyncio.sleep(0.25)
                now = time.monotonic()
                stale = [t for t in self.tracks if now - t.last_rtp > MEDIA_TIMEOUT_S and t.media.kind == "video"]
                if stale:
                    self._end(f"no media for {MEDIA_TIMEOUT_S:.0f} s")
                    return
                if now >= next_rr:
                    self.send_receiver_reports()
                    next_rr = now + RR_INTERVAL_S
                if now >= next_ka and (pending is None or pending.done()):
                    pending = asyncio.create_task(self._keepalive(method))
                    next_ka = now + keepalive
        finally:
            if pending is not None and not pending.done():
                pending.cancel()

    async def _keepalive(self, method: str) -> None:
        url = resolve_control(self.base, self.sdp.control if self.sdp else None) if method == "GET_PARAMETER" else self.url
        try:
            resp = await self.request(method, url)
        except (TimeoutError, ConnectionError, RtspError) as exc:
            self._end(f"keep-alive {method} failed: {exc}")
            return
        if resp.status == 454:
            self._end("the camera forgot the session (454)")
        elif not 200 <= resp.status < 300:
            log.info("%s: keep-alive %s answered %d", self.url, method, resp.status)

    # --- the end ----------------------------------------------------------------------
    def close(self, teardown: bool = True) -> None:
        """Synchronous: TEARDOWN is written (not awaited) and the connection closed after it."""
        w = self._writer
        if w is not None and not w.transport.is_closing():
            if teardown and self.session and self.playing_since is not None:
                hdrs = {"Session": self.session}
                url = resolve_control(self.base, self.sdp.control if self.sdp else None)
                if self.auth is not None and (h := self.auth.header("TEARDOWN", url)):
                    hdrs["Authorization"] = h
                self._cseq += 1
                w.write(Request("TEARDOWN", url, hdrs).encode(self._cseq))
            w.close()  # flushes what is buffered, then closes
        for t in self._tasks:
            t.cancel()
        for tr in self.tracks:
            for u in tr.udp:
                u.close()
        self._end("closed")
