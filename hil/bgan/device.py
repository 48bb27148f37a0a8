"""The terminal's AT interfaces: the pty (a USB/serial cable) and, optionally, TCP.

Each interface has its own echo and ``+CGREG=<n>`` setting; the pty's survive an
unplug (the terminal was not restarted, only the cable pulled), a TCP
connection starts from the defaults. ``noise`` and unsolicited result codes go
to every interface.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

from hil.serialport import PtyPort

from .at import AtSession, Counters
from .terminal import Terminal

log = logging.getLogger(__name__)
MAX_TCP_CLIENTS = 8


class BganDevice:
    def __init__(self, terminal: Terminal, link: Path) -> None:
        self.terminal = terminal
        self.counters = Counters()
        self.port = PtyPort(link, self._from_pty)
        self.pty_session = AtSession(terminal, self.port.write, self.counters)
        self.tcp_sessions: dict[asyncio.StreamWriter, AtSession] = {}
        self._server: asyncio.base_events.Server | None = None
        self.noise_bytes = 0
        terminal.on_reg_change = self._reg_changed

    def _from_pty(self, data: bytes) -> None:
        self.pty_session.feed(data)

    def sessions(self) -> list[AtSession]:
        return [self.pty_session, *self.tcp_sessions.values()]

    def _reg_changed(self, stat: int) -> None:
        for session in self.sessions():
            session.unsolicited(stat)

    def noise(self, data: bytes) -> None:
        self.noise_bytes += len(data)
        self.port.write(data)
        for writer in self.tcp_sessions:
            writer.write(data)

    # ---------------------------------------------------------------- TCP

    async def start_tcp(self, host: str, port: int) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._client, host, port)
        return self._server.sockets[0].getsockname()[:2]

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self.tcp_sessions) >= MAX_TCP_CLIENTS:
            log.warning("refusing a TCP client: %d already connected", MAX_TCP_CLIENTS)
            writer.close()
            return
        log.info("TCP client %s", writer.get_extra_info("peername"))
        self.tcp_sessions[writer] = AtSession(self.terminal, writer.write, self.counters)
        try:
            while data := await reader.read(4096):
                self.tcp_sessions[writer].feed(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            self.tcp_sessions.pop(writer, None)
            writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self.tcp_sessions):
            writer.close()
        with contextlib.suppress(Exception):
            self.port.unplug_now()

    def stats(self) -> dict[str, Any]:
        c = self.counters
        return {"commands": c.commands, "errors": c.errors, "overflows": c.overflows,
                "by_command": dict(c.by_command), "noise_bytes": self.noise_bytes,
                "tcp_clients": len(self.tcp_sessions), "echo": self.pty_session.echo,
                **self.terminal.describe()}
