"""Line-based TCP control port: one command per line, one JSON line back.

    outage SECONDS                     start an outage now
    up                                 end an outage now
    profile [NAME] [key=value ...]     set the profile (a named base and/or fields)
    stats                              counters, queues, state, profile
    help                               the commands
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from .emulator import LinkEmulator
from .profile import ProfileError, from_text

log = logging.getLogger(__name__)

MAX_LINE = 4096
COMMANDS = ["outage SECONDS", "up", "profile [NAME] [bandwidth_kbps=N] [latency_ms=N] [jitter_ms=N]", "stats", "help"]


async def handle_command(emu: LinkEmulator, line: str) -> dict[str, Any]:
    """Carry out one command line; the reply always has ``ok``."""
    words = line.split()
    if not words:
        return {"ok": False, "error": "empty command"}
    cmd, args = words[0].lower(), words[1:]
    if cmd == "stats" and not args:
        return {"ok": True, **emu.stats()}
    if cmd == "up" and not args:
        emu.up()
        return {"ok": True, "state": "up"}
    if cmd == "outage":
        try:
            seconds = float(args[0]) if len(args) == 1 else float("nan")
        except ValueError:
            seconds = float("nan")
        if not 0 < seconds < float("inf"):
            return {"ok": False, "error": "usage: outage SECONDS (a number > 0)"}
        await emu.outage(seconds)
        return {"ok": True, "state": "outage", "outage_s": seconds}
    if cmd == "profile":
        try:
            profile = from_text(" ".join(args))
        except ProfileError as exc:
            return {"ok": False, "error": f"profile: {exc}"}
        emu.set_profile(profile)
        return {"ok": True, "profile": profile.as_dict()}
    if cmd == "help":
        return {"ok": True, "commands": COMMANDS}
    return {"ok": False, "error": f"unknown command {line.strip()!r}; commands: {'; '.join(COMMANDS)}"}


class ControlServer:
    def __init__(self, emu: LinkEmulator, listen: tuple[str, int]) -> None:
        self.emu = emu
        self.listen = listen
        self._server: asyncio.base_events.Server | None = None
        self._clients: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._client, *self.listen, limit=MAX_LINE,
                                                  reuse_address=True)

    @property
    def address(self) -> tuple[str, int]:
        assert self._server is not None and self._server.sockets
        host, port = self._server.sockets[0].getsockname()[:2]
        return host, port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._clients):
            writer.close()
        if self._server is not None:
            await self._server.wait_closed()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients.add(writer)
        try:
            while True:
                try:
                    raw = await reader.readline()
                except ValueError:  # line longer than MAX_LINE
                    writer.write(b'{"ok": false, "error": "line too long"}\n')
                    break
                if not raw:
                    break
                line = raw.decode("utf-8", "replace").strip()
                if not line:
                    continue
                if line.lower() in ("quit", "exit"):
                    break
                reply = await handle_command(self.emu, line)
                log.debug("control %r → %s", line, reply)
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._clients.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
