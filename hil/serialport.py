"""A simulated serial device on a pty pair, with a stable link name and a control port.

Shared by the serial simulators (hil/tetra, hil/iridium, hil/beidou, hil/bgan);
imports nothing of the gateway. The simulator owns the pty master; the slave
side is what a driver opens, reached through a symlink (`--link PATH`), like a
udev `/dev/serial/by-id/...` name. `unplug(seconds)` closes the pty the way a
pulled USB cable does (the driver's reads fail) and, after the pause, opens a
new pair under a *new* /dev/pts number and points the same link at it.

The control port is line-based TCP: one command per line, one JSON line back
(`{"ok": true, ...}` or `{"ok": false, "error": ...}`). Each simulator adds its
own commands; `unplug SECONDS` and `stats` are common.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import tty
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MAX_CONTROL_LINE = 65536
Handler = Callable[[list[str]], Awaitable[dict[str, Any]]]


class PtyPort:
    """The device end of a simulated serial cable."""

    def __init__(self, link: Path, on_data: Callable[[bytes], None],
                 on_plug: Callable[[], None] | None = None, on_unplug: Callable[[], None] | None = None) -> None:
        self.link = link
        self._on_data = on_data
        self._on_plug = on_plug  # the device learns its cable is back (e.g. to drop half-read input)
        self._on_unplug = on_unplug  # … or gone
        self._master: int | None = None
        self._slave: int | None = None
        self.plugged = False
        self.bytes_in = 0
        self.bytes_out = 0
        self.unplugs = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def slave_path(self) -> str:
        return os.ttyname(self._slave) if self._slave is not None else ""

    def plug(self) -> None:
        """Open a new pty pair and point the link at its slave."""
        self._loop = asyncio.get_running_loop()
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        tmp = self.link.with_name(self.link.name + ".tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(os.ttyname(slave))
        tmp.replace(self.link)
        self._loop.add_reader(master, self._readable)
        self.plugged = True
        if self._on_plug is not None:
            self._on_plug()
        log.info("serial device at %s (%s)", self.link, os.ttyname(slave))

    def unplug_now(self) -> None:
        """Close both ends: the driver's next read fails, like a pulled cable."""
        if self._master is not None and self._loop is not None:
            self._loop.remove_reader(self._master)
        for fd in (self._master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = None
        self.plugged = False
        with contextlib.suppress(FileNotFoundError):
            self.link.unlink()
        if self._on_unplug is not None:
            self._on_unplug()

    async def unplug(self, seconds: float) -> None:
        self.unplugs += 1
        self.unplug_now()
        await asyncio.sleep(seconds)
        self.plug()

    def write(self, data: bytes) -> bool:
        """Send bytes to the driver; False (and nothing sent) while unplugged.

        A pty buffers a few KiB: simulators write short lines, and a full
        buffer (nobody reading) drops the rest, as a UART does.
        """
        if self._master is None:
            return False
        try:
            n = os.write(self._master, data)
        except BlockingIOError:
            n = 0
        except OSError as exc:
            log.debug("pty write failed: %s", exc)
            return False
        self.bytes_out += n
        return n == len(data)

    def _readable(self) -> None:
        assert self._master is not None
        try:
            data = os.read(self._master, 4096)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno != errno.EIO:  # EIO: nobody has the slave open right now
                log.warning("pty read failed: %s", exc)
            return
        if data:
            self.bytes_in += len(data)
            self._on_data(data)

    def stats(self) -> dict[str, Any]:
        return {"plugged": self.plugged, "tty": self.slave_path, "bytes_in": self.bytes_in,
                "bytes_out": self.bytes_out, "unplugs": self.unplugs}


class ControlPort:
    """Line-based TCP control for a simulator: `name args...` → one JSON line."""

    def __init__(self, port: PtyPort | None, handlers: dict[str, Handler], stats: Callable[[], dict[str, Any]]) -> None:
        self.port = port
        self.handlers: dict[str, Handler] = {"stats": self._stats, **handlers}
        if port is not None:
            self.handlers["unplug"] = self._unplug
        self._stats_of = stats
        self._server: asyncio.base_events.Server | None = None

    async def start(self, host: str, port: int) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._client, host, port, limit=MAX_CONTROL_LINE)
        return self._server.sockets[0].getsockname()[:2]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _unplug(self, args: list[str]) -> dict[str, Any]:
        try:
            seconds = float(args[0]) if len(args) == 1 else -1.0
        except ValueError:
            seconds = -1.0
        if not 0 <= seconds <= 3600:
            return {"ok": False, "error": "usage: unplug SECONDS (0..3600)"}
        assert self.port is not None
        asyncio.get_running_loop().create_task(self.port.unplug(seconds))
        return {"ok": True, "unplugged_s": seconds}

    async def _stats(self, args: list[str]) -> dict[str, Any]:
        port = self.port.stats() if self.port is not None else {}
        return {"ok": True, **port, **self._stats_of()}

    async def handle(self, line: str) -> dict[str, Any]:
        words = line.split()
        if not words:
            return {"ok": False, "error": "empty command"}
        handler = self.handlers.get(words[0].lower())
        if handler is None:
            return {"ok": False, "error": f"unknown command {words[0]!r}; commands: {', '.join(sorted(self.handlers))}"}
        try:
            return await handler(words[1:])
        except (ValueError, IndexError) as exc:
            return {"ok": False, "error": f"{words[0]}: {exc}"}

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    raw = await reader.readline()
                except ValueError:
                    writer.write(b'{"ok": false, "error": "line too long"}\n')
                    break
                if not raw:
                    break
                line = raw.decode("utf-8", "replace").strip()
                if line:
                    writer.write(json.dumps(await self.handle(line), ensure_ascii=False).encode() + b"\n")
                    await writer.drain()
        except (ConnectionError, asyncio.CancelledError):  # a client still connected when the simulator stops
            pass
        finally:
            writer.close()
