"""Drift-free periodic callbacks on the asyncio loop.

Each Periodic keeps its own deadline sequence derived from loop.time(), so
the long-run rate is exact regardless of how long callbacks take.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Callable

log = logging.getLogger(__name__)


class Periodic:
    """Calls ``callback()`` every ``period`` seconds until stopped."""

    def __init__(self, name: str, callback: Callable[[], None], period: float | None) -> None:
        self.name = name
        self._callback = callback
        self._period = period
        self._task: asyncio.Task[None] | None = None

    @property
    def period(self) -> float | None:
        return self._period

    def start(self, first_delay: float = 0.0) -> None:
        self.stop()
        if self._period is not None and self._period > 0:
            self._task = asyncio.get_running_loop().create_task(self._run(first_delay), name=self.name)

    def set_period(self, period: float | None) -> None:
        """Change the period; restarts the schedule (None/<=0 stops it)."""
        if period == self._period and (self._task is not None) == bool(period and period > 0):
            return
        self._period = period
        self.start(first_delay=0.0)

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self, first_delay: float) -> None:
        loop = asyncio.get_running_loop()
        assert self._period is not None
        period = self._period
        deadline = loop.time() + first_delay
        while True:
            delay = deadline - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                self._callback()
            except Exception:  # a bad tick must never kill the schedule
                log.exception("periodic %s failed", self.name)
            deadline += period
            now = loop.time()
            if deadline < now - period:  # fell far behind (loop stalled): resync, don't burst
                deadline = now
