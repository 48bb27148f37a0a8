"""A token bucket that keeps an uplink within its byte budget (kbit/s)."""

from __future__ import annotations

import asyncio
import time


class TokenBucket:
    def __init__(self, rate_bytes_per_s: float, burst_bytes: float) -> None:
        if rate_bytes_per_s <= 0 or burst_bytes <= 0:
            raise ValueError("a token bucket needs a positive rate and burst")
        self.rate = rate_bytes_per_s
        self.burst = burst_bytes
        self._tokens = burst_bytes
        self._stamp = time.monotonic()

    @classmethod
    def for_kbps(cls, kbps: float) -> TokenBucket:
        rate = kbps * 1000 / 8
        return cls(rate, max(4096.0, rate))  # one second of budget, at least one large message

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    async def take(self, size: int) -> None:
        """Wait until `size` bytes fit the budget, then spend them (a message larger than the burst waits for a full bucket)."""
        need = min(float(size), self.burst)
        self._refill()
        while self._tokens < need:
            await asyncio.sleep((need - self._tokens) / self.rate)
            self._refill()
        self._tokens -= size  # may go negative for an oversized message: later sends wait it off
