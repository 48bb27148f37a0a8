"""The MO messages waiting for the modem, kept on the driver so they survive a replug.

One message is sent at a time, oldest first. The queue is bounded
(`QUEUE_MAX`); when it is full a new text is *rejected* at once (the
operator or the dispatcher sees why and may retry later) rather than
silently pushing out an older message that someone already waits on.
A message whose command was given up (the router's timeout) is taken out;
if it was already written in the modem's MO buffer the driver clears that.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from gateway.driver_api import CommandError, OnSent

QUEUE_MAX = 16


@dataclass(eq=False)
class Outgoing:
    to: str
    payload: bytes
    on_sent: OnSent
    result: asyncio.Future[str] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    attempts: int = 0  # sessions that tried to send it and failed
    accepted: bool = False  # the modem took it into its MO buffer once ("sent")
    last_reason: str = ""

    @property
    def settled(self) -> bool:
        return self.result.done()

    def mark_sent(self) -> None:
        if not self.accepted:
            self.accepted = True
            self.on_sent()

    def succeed(self, detail: str) -> None:
        if not self.result.done():
            self.result.set_result(detail)

    def fail(self, reason: str) -> None:
        if not self.result.done():
            self.result.set_exception(CommandError("failed", reason))


class SendQueue:
    def __init__(self, limit: int = QUEUE_MAX) -> None:
        self.limit = limit
        self._items: deque[Outgoing] = deque()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: Outgoing) -> None:
        if len(self._items) >= self.limit:
            raise CommandError("rejected", f"the SBD send queue is full ({self.limit} messages wait for the "
                                           "satellite); try again later")
        self._items.append(item)

    def head(self) -> Outgoing | None:
        """The next message to send; messages whose command was given up are dropped first."""
        while self._items and self._items[0].settled:
            self._items.popleft()
        return self._items[0] if self._items else None

    def remove(self, item: Outgoing) -> None:
        try:
            self._items.remove(item)
        except ValueError:
            pass

    def finish(self, item: Outgoing, detail: str) -> None:
        self.remove(item)
        item.succeed(detail)

    def fail(self, item: Outgoing, reason: str) -> None:
        self.remove(item)
        item.fail(reason)
