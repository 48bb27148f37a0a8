"""Bandwidth and delay: a shared token bucket per direction, a delay line per pipe."""
from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Callable

Clock = Callable[[], float]

BURST_S = 0.25        # the bucket holds up to this many seconds of credit
QUANTUM_S = 0.05      # a piece of a chunk is about this long on the wire
MIN_QUANTUM = 256     # bytes
MAX_QUANTUM = 16 * 1024
UNLIMITED_QUANTUM = 64 * 1024


class TokenBucket:
    """Serialization on a link of ``rate`` bytes/s, shared by every pipe of one direction.

    Kept as a virtual clock: ``_next_free`` is when the link finishes the last
    byte reserved so far. A reservation starts no earlier than
    ``now - BURST_S`` (that is the bucket's credit) and no earlier than
    ``_next_free`` (bytes already on the wire), so a burst of ``rate*BURST_S``
    bytes goes at once and the long-run rate is exactly ``rate``. Pipes reserve
    one quantum at a time, so connections sharing a direction interleave.
    """

    def __init__(self, rate: float | None, clock: Clock = time.monotonic) -> None:
        self._rate = rate
        self._clock = clock
        self._next_free = float("-inf")

    @property
    def rate(self) -> float | None:
        return self._rate

    def set_rate(self, rate: float | None) -> None:
        """Takes effect for the next reservation; reservations made keep their time."""
        self._rate = rate

    def quantum(self) -> int:
        """Largest piece to reserve at once (about QUANTUM_S of wire time)."""
        if self._rate is None:
            return UNLIMITED_QUANTUM
        return int(min(MAX_QUANTUM, max(MIN_QUANTUM, self._rate * QUANTUM_S)))

    def reserve(self, n: int) -> float:
        """Reserve ``n`` bytes of wire time; returns when they are through (clock time)."""
        now = self._clock()
        if self._rate is None:
            return now
        start = max(self._next_free, now - BURST_S)
        self._next_free = start + n / self._rate
        return max(now, self._next_free)


class DelayLine:
    """FIFO of (release time, item) for one pipe; release times never decrease.

    ``push`` draws a delay from latency ± jitter (floored at 0) and clamps the
    release time to the previous one, so jitter spreads delays but never
    reorders bytes within a connection.
    """

    def __init__(self, rng: random.Random, clock: Clock = time.monotonic) -> None:
        self._rng = rng
        self._clock = clock
        self._items: deque[tuple[float, bytes | None]] = deque()
        self._last_release = float("-inf")
        self._nonempty = asyncio.Event()

    def __len__(self) -> int:
        return len(self._items)

    def push(self, sent_at: float, item: bytes | None, latency_s: float, jitter_s: float) -> float:
        delay = latency_s + (self._rng.uniform(-jitter_s, jitter_s) if jitter_s > 0 else 0.0)
        release = max(sent_at + max(0.0, delay), self._last_release)
        self._last_release = release
        self._items.append((release, item))
        self._nonempty.set()
        return release

    async def pop(self) -> bytes | None:
        """The next item, at its release time (``None`` is the end-of-stream marker)."""
        while not self._items:
            self._nonempty.clear()
            await self._nonempty.wait()
        release, item = self._items[0]
        wait = release - self._clock()
        if wait > 0:
            await asyncio.sleep(wait)
        self._items.popleft()
        return item
