"""Real-time frame pacing on the monotonic clock (sleeps, never busy-polls)."""
from __future__ import annotations

import asyncio
import threading
import time

MAX_LAG_S = 0.5  # further behind than this: skip ahead instead of sending a burst


class FrameClock:
    """Yields the scheduled monotonic time of each frame: start, start + 1/fps, ...

    Frames are never sent early. If the sender was stalled for more than MAX_LAG_S,
    the schedule jumps forward (frames are skipped, not burst) and ``skipped`` counts them.
    asyncio's loop.time() is time.monotonic(), so both flavours share one time base.
    """

    def __init__(self, fps: float, start: float | None = None) -> None:
        self.period = 1.0 / fps
        self.start = time.monotonic() if start is None else start
        self.index = 0
        self.skipped = 0

    def _next(self, now: float) -> tuple[float, int]:
        due = self.start + self.index * self.period
        skipped = 0
        if now - due > MAX_LAG_S:
            skipped = int((now - due) / self.period)
            self.index += skipped
            self.skipped += skipped
            due = self.start + self.index * self.period
        self.index += 1
        return due, skipped

    async def tick(self) -> tuple[float, int]:
        """Sleep until the next frame is due; returns (scheduled time, frames skipped before it)."""
        due, skipped = self._next(time.monotonic())
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        return due, skipped

    def tick_blocking(self, stop: threading.Event) -> tuple[float, int] | None:
        """Thread flavour of tick(); None once ``stop`` is set."""
        due, skipped = self._next(time.monotonic())
        delay = due - time.monotonic()
        if stop.wait(delay if delay > 0 else 0):
            return None
        return due, skipped
