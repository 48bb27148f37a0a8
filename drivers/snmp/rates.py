"""Interface throughput from octet counters: wraps, resets and gaps handled without bogus spikes.

A 32-bit Counter32 wraps at 2**32 (a 100 Mbit/s link wraps in ~6 minutes);
a wrap is told from a reset (agent restart, counter cleared) by the size of
the step: the wrapped delta must be below half the counter's range and the
resulting rate below `max_bps`. An interval in which sysUpTime went
backwards, a counter dropped without a plausible wrap, the counter width
changed, or the rate is implausible is skipped (no value), never reported.
"""

from __future__ import annotations

from dataclasses import dataclass

WRAP32 = 1 << 32
WRAP64 = 1 << 64
DEFAULT_MAX_BPS = 100e9


@dataclass(slots=True)
class Sample:
    value: int
    bits: int  # 32 or 64
    t: float  # seconds (monotonic) when the value was read
    uptime: int | None = None  # the agent's sysUpTime in centiseconds


class CounterRate:
    """One octet counter → bit/s; `update()` returns None when the interval must be skipped."""

    __slots__ = ("max_bps", "last", "skipped", "wraps", "resets")

    def __init__(self, max_bps: float = DEFAULT_MAX_BPS) -> None:
        self.max_bps = max_bps
        self.last: Sample | None = None
        self.skipped = 0
        self.wraps = 0
        self.resets = 0

    def update(self, s: Sample) -> float | None:
        prev, self.last = self.last, s
        if prev is None:
            return None
        dt = s.t - prev.t
        if dt <= 0 or s.bits != prev.bits:
            self.skipped += 1
            return None
        if s.uptime is not None and prev.uptime is not None and s.uptime < prev.uptime:
            self.resets += 1  # the agent restarted: its counters started again from zero
            return None
        delta = s.value - prev.value
        if delta < 0:
            wrapped = delta + (WRAP32 if s.bits == 32 else WRAP64)
            if s.bits == 32 and wrapped < WRAP32 // 2 and wrapped * 8 / dt <= self.max_bps:
                self.wraps += 1
                delta = wrapped
            else:
                self.resets += 1  # a counter that dropped a lot: cleared, not wrapped
                return None
        bps = delta * 8 / dt
        if bps > self.max_bps:
            self.skipped += 1  # e.g. a reset between two polls that left the counter above its old value
            return None
        return bps
