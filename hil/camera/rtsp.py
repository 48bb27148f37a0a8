"""An RTSP 1.0 IP-camera server (asyncio): OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET/SET_PARAMETER."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from .rtp import PacketizedLoop
from .rtsp_proto import MAX_LINE, BadRequest, Interleaved, Request, parse_transport, read_message, response
from .sdp import build_sdp
from .session import StreamSession, TcpSink, UdpSink

log = logging.getLogger(__name__)

PUBLIC = "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER, SET_PARAMETER"
TRACK = "trackID=0"


class RtspServer:
    def __init__(self, media: PacketizedLoop, host: str, port: int, path: str = "/stream",
                 session_timeout: float = 60.0) -> None:
        self.media = media
        self.host, self.port = host, port
        self.path = "/" + path.strip("/")
        self.session_timeout = session_timeout
        self.sessions: dict[str, StreamSession] = {}
        self._server: asyncio.Server | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._conns: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    @property
    def url(self) -> str:
        return f"rtsp://{self.host}:{self.port}{self.path}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port,
                                                  reuse_address=True, limit=2 * MAX_LINE)
        self.port = self._server.sockets[0].getsockname()[1]
        self._reaper = asyncio.create_task(self._reap())
        log.info("RTSP camera at %s", self.url)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._reaper is not None:
            self._reaper.cancel()
        for s in list(self.sessions.values()):
            s.close()
        self.sessions.clear()
        for task, writer in list(self._conns.items()):
            writer.transport.abort()  # a client that stopped reading must not delay the exit
            task.cancel()
        await asyncio.gather(*self._conns, return_exceptions=True)

    def playing_sessions(self) -> int:
        return sum(1 for s in self.sessions.values() if s.playing)

    async def _reap(self) -> None:
        """Ends sessions that got neither a request nor RTCP within their timeout."""
        while True:
            await asyncio.sleep(min(5.0, self.session_timeout / 2))
            now = time.monotonic()
            for sid, s in list(self.sessions.items()):
                if s.expired(now):
                    log.info("session %s timed out", sid)
                    s.close()
                    self.sessions.pop(sid, None)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns[task] = writer
        peer = writer.get_extra_info("peername")
        owned: dict[str, StreamSession] = {}
        try:
            await Connection(self, reader, writer, owned).serve()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("RTSP connection from %s failed", peer)
        finally:
            self._conns.pop(task, None)
            for sid, s in owned.items():  # sessions end with their control connection
                s.close()
                self.sessions.pop(sid, None)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)


class Connection:
    """One RTSP control connection (and, for TCP transport, its interleaved media)."""

    def __init__(self, server: RtspServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 owned: dict[str, StreamSession]) -> None:
        self.server = server
        self.reader, self.writer = reader, writer
        self.owned = owned
        self.peer_host: str = writer.get_extra_info("peername")[0]
        self.local_host: str = writer.get_extra_info("sockname")[0]
        self._next_channel = 0

    async def serve(self) -> None:
        while True:
            idle = None if self.owned else self.server.session_timeout
            try:
                msg = await asyncio.wait_for(read_message(self.reader), idle)
            except BadRequest as exc:
                log.info("bad request from %s: %s", self.peer_host, exc)
                self.writer.write(response(exc.status, None, {"Connection": "close"}))
                await self.writer.drain()
                return
            except TimeoutError:
                return
            if msg is None:
                return
            if isinstance(msg, Interleaved):  # RTCP receiver reports over TCP
                for s in self.owned.values():
                    s.touch()
                continue
            self.writer.write(await self._dispatch(msg))
            await self.writer.drain()

    async def _dispatch(self, req: Request) -> bytes:
        cseq = req.cseq
        if cseq is None:
            return response(400, None)
        handler = getattr(self, "_on_" + req.method.lower(), None)
        if handler is None:
            return response(501, cseq, {"Public": PUBLIC})
        if req.method not in ("OPTIONS", "DESCRIBE") and req.session_id is not None:
            session = self._session(req)
            if session is None:
                return response(454, cseq)
            session.touch()
        try:
            return await handler(req, cseq)
        except Exception:
            log.exception("%s failed", req.method)
            return response(500, cseq)

    def _path_ok(self, req: Request, *, track: bool) -> bool:
        path = req.path.rstrip("/")
        base = self.server.path.rstrip("/")
        return path == base or (track and path == f"{base}/{TRACK}")

    def _session_header(self, s: StreamSession) -> str:
        return f"{s.id};timeout={int(self.server.session_timeout)}"

    def _session(self, req: Request) -> StreamSession | None:
        """This connection's session named in the request, unless it has timed out meanwhile."""
        session = self.owned.get(req.session_id) if req.session_id else None
        if session is not None and session.id not in self.server.sessions:
            del self.owned[session.id]  # reaped by the server
            return None
        return session

    async def _on_options(self, req: Request, cseq: str) -> bytes:
        return response(200, cseq, {"Public": PUBLIC})

    async def _on_describe(self, req: Request, cseq: str) -> bytes:
        if not self._path_ok(req, track=False):
            return response(404, cseq)
        accept = req.headers.get("accept", "application/sdp")
        if "application/sdp" not in accept and "*/*" not in accept:
            return response(406, cseq)
        base = req.uri.rstrip("/") + "/"
        sdp = build_sdp(self.server.media.loop, self.local_host, TRACK).encode()
        return response(200, cseq, {"Content-Base": base, "Content-Type": "application/sdp"}, sdp)

    async def _on_setup(self, req: Request, cseq: str) -> bytes:
        if not self._path_ok(req, track=True):
            return response(404, cseq)
        spec = parse_transport(req.headers.get("transport", ""))
        if spec is None:
            return response(461, cseq)
        session = self._session(req)
        if session is None:
            if req.session_id is not None:
                return response(454, cseq)
            session = StreamSession(self.server.media, self.server.session_timeout)
        elif session.playing:
            return response(455, cseq)
        if session.sink is not None:
            session.sink.close()
        if spec.tcp:
            chans = spec.channels or (self._next_channel, self._next_channel + 1)
            self._next_channel = max(self._next_channel, max(chans) + 1)
            session.sink = TcpSink(self.writer, chans)
        else:
            assert spec.client_ports is not None
            session.sink = await UdpSink.open(self.local_host, self.peer_host, spec.client_ports, session.touch)
        self.owned[session.id] = session
        self.server.sessions[session.id] = session
        log.info("SETUP %s from %s: %s", session.id, self.peer_host, session.sink.describe())
        transport = f"{session.sink.describe()};ssrc={session.rtp.ssrc:08X}"
        return response(200, cseq, {"Transport": transport, "Session": self._session_header(session)})

    async def _on_play(self, req: Request, cseq: str) -> bytes:
        session = self._session(req)
        if session is None:
            return response(454, cseq)
        if not self._path_ok(req, track=True):
            return response(404, cseq)
        if session.sink is None:
            return response(455, cseq)
        if session.playing:  # already playing: just confirm (some clients re-PLAY)
            return response(200, cseq, {"Session": self._session_header(session), "Range": "npt=0.000-"})
        seq, rtptime = session.play()
        track_url = req.uri.rstrip("/")
        if not track_url.endswith(TRACK):
            track_url += "/" + TRACK
        log.info("PLAY %s", session.id)
        return response(200, cseq, {
            "Session": self._session_header(session), "Range": "npt=0.000-",
            "RTP-Info": f"url={track_url};seq={seq};rtptime={rtptime}",
        })

    async def _on_pause(self, req: Request, cseq: str) -> bytes:
        session = self._session(req)
        if session is None:
            return response(454, cseq)
        session.stop_streaming()
        return response(200, cseq, {"Session": self._session_header(session)})

    async def _on_teardown(self, req: Request, cseq: str) -> bytes:
        session = self._session(req)
        if session is None:
            return response(454, cseq)
        session.close()
        self.owned.pop(session.id, None)
        self.server.sessions.pop(session.id, None)
        log.info("TEARDOWN %s", session.id)
        return response(200, cseq, {"Session": session.id})

    async def _on_get_parameter(self, req: Request, cseq: str) -> bytes:
        headers = {"Session": self._session_header(s)} if (s := self._session(req)) else {}
        return response(200, cseq, headers)  # keep-alive (empty body) and unknown parameters alike

    async def _on_set_parameter(self, req: Request, cseq: str) -> bytes:
        return response(200 if not req.body else 451, cseq)
