"""One direction of one proxied connection: source socket → bucket → delay line → destination.

Back-pressure: a pipe holds at most ``queue_limit`` bytes plus one read
(``READ_CHUNK``); at the limit it stops reading its source socket, so the
kernel's buffers fill and the sender's TCP stack blocks.
"""
from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .profile import Profile
from .shaper import Clock, DelayLine, TokenBucket

if TYPE_CHECKING:
    from .connection import Side

READ_CHUNK = 16 * 1024        # largest single read from a socket
QUEUE_LIMIT = 64 * 1024       # a pipe stops reading at this many queued bytes
WRITE_HIGH_WATER = 16 * 1024  # transport write buffer above which a pipe waits


@dataclass
class Direction:
    """What all pipes of one direction ("up": client → target, "down": back) share."""

    name: str
    profile: Profile
    clock: Clock = time.monotonic
    bucket: TokenBucket = field(init=False)
    forwarded: int = 0      # bytes written to destination sockets
    queued: int = 0         # bytes read and not yet written, all pipes
    peak_queued: int = 0    # most bytes any single pipe ever held

    def __post_init__(self) -> None:
        self.bucket = TokenBucket(self.profile.bytes_per_s, self.clock)

    def set_profile(self, profile: Profile) -> None:
        self.profile = profile
        self.bucket.set_rate(profile.bytes_per_s)


class Pipe:
    def __init__(self, direction: Direction, src: Side, dst: Side, rng: random.Random,
                 on_done: Callable[[Pipe], None], queue_limit: int = QUEUE_LIMIT) -> None:
        self.direction = direction
        self.src = src
        self.dst = dst
        self.queue_limit = queue_limit
        self.queued = 0
        self.done = False
        self._on_done = on_done
        self._pending: deque[memoryview | None] = deque()
        self._has_pending = asyncio.Event()
        self._line = DelayLine(rng, direction.clock)
        self._paused = False
        self._tasks: list[asyncio.Task[None]] = []
        src.on_data = self.feed
        src.on_eof = self.feed_eof

    def start(self) -> None:
        name = f"link-{self.direction.name}"
        self._tasks = [asyncio.create_task(self._shape(), name=f"{name}-shape"),
                       asyncio.create_task(self._deliver(), name=f"{name}-deliver")]

    def cancel(self) -> None:
        for task in self._tasks:
            task.cancel()
        self.direction.queued -= self.queued
        self.queued = 0

    # source side (called from the protocol)
    def feed(self, data: bytes) -> None:
        n = len(data)
        self.queued += n
        self.direction.queued += n
        self.direction.peak_queued = max(self.direction.peak_queued, self.queued)
        self._pending.append(memoryview(data))
        self._has_pending.set()
        if self.queued >= self.queue_limit and not self._paused:
            self._paused = True
            self.src.pause_reading()

    def feed_eof(self) -> None:
        self._pending.append(None)
        self._has_pending.set()

    # the two stages
    async def _next_piece(self) -> memoryview | None:
        while not self._pending:
            self._has_pending.clear()
            await self._has_pending.wait()
        head = self._pending[0]
        quantum = self.direction.bucket.quantum()
        if head is None or len(head) <= quantum:
            return self._pending.popleft()
        self._pending[0] = head[quantum:]
        return head[:quantum]

    async def _shape(self) -> None:
        """Serialize pieces at the direction's rate, then put them on the delay line."""
        d = self.direction
        while True:
            piece = await self._next_piece()
            if piece is None:
                sent_at = d.clock()
            else:
                sent_at = d.bucket.reserve(len(piece))
                wait = sent_at - d.clock()
                if wait > 0:
                    await asyncio.sleep(wait)
            self._line.push(sent_at, None if piece is None else bytes(piece),
                            d.profile.latency_ms / 1000.0, d.profile.jitter_ms / 1000.0)
            if piece is None:
                return

    async def _deliver(self) -> None:
        """Write each piece at its release time; pass the end of stream on as a FIN."""
        d = self.direction
        while True:
            item = await self._line.pop()
            if item is None:
                self.dst.write_eof()
                self.done = True
                self._on_done(self)
                return
            await self.dst.writable.wait()
            self.dst.write(item)
            n = len(item)
            d.forwarded += n
            self.queued -= n
            d.queued -= n
            if self._paused and self.queued < self.queue_limit:
                self._paused = False
                self.src.resume_reading()
