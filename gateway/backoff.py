"""Bounded exponential backoff with jitter, shared by every reconnecting loop.

After pytak's `supervise_with_reconnect`: the delay doubles from `initial`
up to `maximum`, each wait is spread by ±`jitter` so a fleet of links that
failed together does not retry in lockstep, and the delay resets once a
connection has stayed up for `reset_after` seconds.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field


@dataclass
class Backoff:
    initial: float = 1.0
    maximum: float = 30.0
    factor: float = 2.0
    jitter: float = 0.2
    reset_after: float = 60.0
    _next: float = field(default=0.0, init=False)
    _started: float | None = field(default=None, init=False)
    attempts: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum:
            raise ValueError("backoff needs 0 < initial <= maximum")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter is a fraction in [0, 1)")
        self._next = self.initial

    def connected(self) -> None:
        """Call when a connection is up; the delay resets if it stays up long enough."""
        self._started = time.monotonic()

    def next_delay(self) -> float:
        """The wait before the next attempt (call after a failure)."""
        if self._started is not None and time.monotonic() - self._started >= self.reset_after:
            self._next = self.initial
            self.attempts = 0
        self._started = None
        base = self._next
        self._next = min(self.maximum, self._next * self.factor)
        self.attempts += 1
        spread = base * self.jitter
        return max(0.0, min(self.maximum * (1 + self.jitter), base + random.uniform(-spread, spread)))
