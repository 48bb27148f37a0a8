"""The link emulator: a TCP proxy whose two directions are shaped by a Profile,
with outages that reset every connection and refuse new ones."""
from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any, Self

from .connection import Connection, Side
from .pipe import QUEUE_LIMIT, READ_CHUNK, Direction
from .profile import Profile

log = logging.getLogger(__name__)


class LinkEmulator:
    """``LinkEmulator(listen=("127.0.0.1", 0), target=(host, port), profile=Profile(...))``.

    Each accepted connection gets its own upstream connection to ``target``.
    Bandwidth is per direction, shared by all connections; latency and jitter
    are one-way, per chunk, never reordering. ``queue_limit`` bounds the bytes
    each direction of each connection holds (plus one read of READ_CHUNK).
    """

    def __init__(self, listen: tuple[str, int] = ("127.0.0.1", 0), target: tuple[str, int] = ("127.0.0.1", 1883),
                 profile: Profile | None = None, *, queue_limit: int = QUEUE_LIMIT, seed: int | None = None) -> None:
        self.listen = listen
        self.target = target
        self.queue_limit = queue_limit
        self.read_chunk = READ_CHUNK
        self._profile = profile or Profile()
        self._rng = random.Random(seed)
        self._up = Direction("up", self._profile)
        self._down = Direction("down", self._profile)
        self._server: asyncio.base_events.Server | None = None
        self._connections: set[Connection] = set()
        self._outage_end: float | None = None
        self._outage_timer: asyncio.TimerHandle | None = None
        self._up_event = asyncio.Event()
        self._up_event.set()
        self._counts = {"accepted": 0, "refused": 0, "closed": 0, "upstream_failed": 0, "outages": 0}

    # lifecycle
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        host, port = self.listen
        self._server = await loop.create_server(lambda: Side("client", self._accepted), host, port,
                                                reuse_address=True)
        log.info("listening on %s:%d → %s:%d (%s)", *self.address, *self.target, self._profile.describe())

    async def stop(self) -> None:
        if self._outage_timer is not None:
            self._outage_timer.cancel()
        if self._server is not None:
            self._server.close()
        for conn in list(self._connections):
            conn.abort()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        await asyncio.sleep(0)  # let the transports run their close callbacks

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    @property
    def address(self) -> tuple[str, int]:
        if self._server is None or not self._server.sockets:
            raise RuntimeError("emulator not started")
        host, port = self._server.sockets[0].getsockname()[:2]
        return host, port

    @property
    def port(self) -> int:
        return self.address[1]

    # profile
    @property
    def profile(self) -> Profile:
        return self._profile

    def set_profile(self, profile: Profile) -> None:
        """Applies to bytes shaped from now on (both directions)."""
        self._profile = profile
        self._up.set_profile(profile)
        self._down.set_profile(profile)
        log.info("profile: %s", profile.describe())

    # outages
    @property
    def in_outage(self) -> bool:
        return self._outage_end is not None

    async def outage(self, seconds: float) -> None:
        """Start an outage now for ``seconds``: every open connection is reset and
        new ones are reset as soon as accepted until it ends. Returns once the
        open connections are closed (not when the outage ends; see ``wait_up``).
        A new outage replaces the end time of one in progress."""
        if not seconds > 0:
            raise ValueError(f"outage must last > 0 s, got {seconds}")
        loop = asyncio.get_running_loop()
        if self._outage_timer is not None:
            self._outage_timer.cancel()
        self._outage_end = time.monotonic() + seconds
        self._outage_timer = loop.call_later(seconds, self.up)
        self._up_event.clear()
        self._counts["outages"] += 1
        log.info("outage for %g s: closing %d connection(s)", seconds, len(self._connections))
        for conn in list(self._connections):
            conn.abort()
        await asyncio.sleep(0)

    def up(self) -> None:
        """End an outage now (no-op when the link is up)."""
        if self._outage_timer is not None:
            self._outage_timer.cancel()
            self._outage_timer = None
        if self._outage_end is not None:
            log.info("link up")
        self._outage_end = None
        self._up_event.set()

    async def wait_up(self) -> None:
        await self._up_event.wait()

    # connections
    def _accepted(self, side: Side) -> None:
        if self.in_outage:
            self._counts["refused"] += 1
            side.reset()
            return
        self._counts["accepted"] += 1
        conn = Connection(side, self.target, self._up, self._down, self._rng, self.queue_limit, self._closed)
        self._connections.add(conn)
        conn.start()

    def _closed(self, conn: Connection) -> None:
        self._connections.discard(conn)
        self._counts["closed"] += 1
        if conn.upstream_failed:
            self._counts["upstream_failed"] += 1

    def stats(self) -> dict[str, Any]:
        remaining = None
        if self._outage_end is not None:
            remaining = round(max(0.0, self._outage_end - time.monotonic()), 3)
        return {
            "state": "outage" if self.in_outage else "up",
            "outage_remaining_s": remaining,
            "profile": self._profile.as_dict(),
            "bytes": {"up": self._up.forwarded, "down": self._down.forwarded},
            "queued": {"up": self._up.queued, "down": self._down.queued},
            "peak_queued": {"up": self._up.peak_queued, "down": self._down.peak_queued},
            "queue_limit": self.queue_limit,
            "read_chunk": self.read_chunk,
            "connections": {**self._counts, "active": len(self._connections)},
        }
