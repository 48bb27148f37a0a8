"""The in-process event bus: drivers publish normalized messages, outputs subscribe.

`publish()` is synchronous and never blocks a driver. Taps (the device
registry) run inline, before fan-out, so every reader sees a consistent
state. Each subscriber has its own bounded queue; when it is full the oldest
message in that queue is dropped and counted (`dropped`), so a stalled
consumer (a slow SSE client, say) never slows a driver or another consumer.
Consumers that must lose nothing (the uplink) size their queue for the
longest stall they accept and persist what they take (the outbox).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.model import BusMessage

log = logging.getLogger(__name__)

Tap = Callable[[BusMessage], list[BusMessage] | None]


@dataclass(eq=False)
class Subscription:
    name: str
    types: tuple[type, ...]
    queue: asyncio.Queue[BusMessage]
    dropped: int = 0
    delivered: int = 0
    _bus: Bus | None = field(default=None, repr=False)

    async def get(self) -> BusMessage:
        return await self.queue.get()

    def get_nowait(self) -> BusMessage:
        return self.queue.get_nowait()

    def close(self) -> None:
        if self._bus is not None:
            self._bus.unsubscribe(self)
            self._bus = None

    def offer(self, msg: BusMessage) -> None:
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("bus subscriber %s is full: %d messages dropped", self.name, self.dropped)
        self.queue.put_nowait(msg)
        self.delivered += 1


class Bus:
    def __init__(self) -> None:
        self._subs: list[Subscription] = []
        self._taps: list[Tap] = []
        self.published = 0

    def add_tap(self, tap: Tap) -> None:
        """A synchronous observer run before fan-out; it may return follow-up messages."""
        self._taps.append(tap)

    def subscribe(self, name: str, types: tuple[type, ...], maxsize: int = 1000) -> Subscription:
        if maxsize <= 0:
            raise ValueError("bus queues are bounded: maxsize must be > 0")
        sub = Subscription(name=name, types=types, queue=asyncio.Queue(maxsize), _bus=self)
        self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)

    def publish(self, msg: BusMessage) -> None:
        pending = [msg]
        while pending:
            current = pending.pop(0)
            self.published += 1
            for tap in self._taps:
                follow = tap(current)
                if follow:
                    pending.extend(follow)
            for sub in self._subs:
                if isinstance(current, sub.types):
                    sub.offer(current)

    def stats(self) -> dict[str, dict[str, int]]:
        return {
            s.name: {"queued": s.queue.qsize(), "dropped": s.dropped, "delivered": s.delivered}
            for s in self._subs
        }
