"""Outgoing short messages: a bounded queue paced by the card's service interval.

The queue lives on the driver object, so texts waiting for the interval
survive a replug (the supervisor runs `run()` again on the same object and
`Sender.run` picks up the head of the queue). Policy when full: the new text
is refused at once with the reason (the caller learns it now, rather than a
timeout later); nothing already queued is dropped.

Pacing: never send before `interval_s` has passed since the last send the
terminal accepted, or since a send whose feedback never came (it may have
gone out). The terminal's own "interval not reached" answer moves the next
try to the time it names. Other refusals: transient ones (inhibit, silence,
power not locked, no reason given) and lost feedback are retried with
bounded exponential backoff and jitter, up to `max_attempts`; no card / no
permission fail at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from drivers.beidou_rdss.dialects import INTERVAL, TRANSIENT, Feedback
from gateway.backoff import Backoff
from gateway.driver_api import CommandError, OnSent

log = logging.getLogger(__name__)

MARGIN_S = 0.25  # on top of the interval: the terminal counts from its own send, a moment before its feedback
MAX_INTERVAL_REFUSALS = 5  # a terminal that keeps saying "interval" though we waited: give up on that text
Transmit = Callable[["Outgoing"], Awaitable[Feedback | None]]  # None: no feedback in time


@dataclass(eq=False)
class Outgoing:
    address: str
    code: str  # content as hex digits
    size: int  # bytes
    on_sent: OnSent
    backoff: Backoff
    done: asyncio.Future[str] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    queued_at: float = field(default_factory=time.monotonic)
    tries: int = 0  # transmissions
    failures: int = 0  # transient refusals and lost feedback
    interval_refusals: int = 0
    not_before: float = 0.0  # this text's own backoff
    last_problem: str = ""


class Sender:
    def __init__(self, maxlen: int, max_attempts: int, retry_initial_s: float,
                 show: Callable[[dict[str, Any]], None], counts: Counter[str]) -> None:
        self.maxlen = maxlen
        self.max_attempts = max_attempts
        self.retry_initial_s = retry_initial_s
        self.queue: deque[Outgoing] = deque()
        self.interval_s = 0.0
        self.last_accepted: float | None = None
        self.unconfirmed: float | None = None  # a send whose feedback never came
        self.not_before = 0.0  # from the terminal's "interval not reached, N s left"
        self._show = show
        self._counts = counts
        self._wake = asyncio.Event()
        self._shown: dict[str, Any] = {}

    # -- the command side --------------------------------------------------------
    def submit(self, address: str, code: str, size: int, on_sent: OnSent) -> Outgoing:
        if len(self.queue) >= self.maxlen:
            self._counts["sends_refused_queue_full"] += 1
            raise CommandError("rejected", f"{len(self.queue)} short messages already wait to be sent "
                                           f"(one every {self.interval_s:g} s); try again later")
        item = Outgoing(address, code, size, on_sent,
                        Backoff(initial=self.retry_initial_s, maximum=max(60.0, self.retry_initial_s)))
        self.queue.append(item)
        self._wake.set()
        self.show_state()
        return item

    def withdraw(self, item: Outgoing) -> None:
        """The caller gave up on this text (timeout, shutdown): it is not sent any more."""
        if item in self.queue:
            self.queue.remove(item)
            self._counts["sends_withdrawn"] += 1
            self._wake.set()
            self.show_state()

    def wait_left(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        due = self.not_before
        for t in (self.last_accepted, self.unconfirmed):
            if t is not None:
                due = max(due, t + self.interval_s + MARGIN_S)
        return max(0.0, due - now)

    def show_state(self, state: str | None = None, wait_s: float = 0.0) -> None:
        if state is None:
            state = "idle" if not self.queue else "queued"
        shown = {"send_queue": len(self.queue), "send_state": state, "send_wait_s": round(wait_s, 1),
                 "send_next_to": self.queue[0].address if self.queue else None}
        if shown != self._shown:
            self._shown = shown
            self._show(shown)

    # -- the link side -------------------------------------------------------------
    async def run(self, transmit: Transmit) -> None:
        """Send the queue in order until cancelled; a lost line raises out of `transmit`."""
        while True:
            if not self.queue:
                self.show_state()
                self._wake.clear()
                await self._wake.wait()
                continue
            item = self.queue[0]
            now = time.monotonic()
            interval_wait, own_wait = self.wait_left(now), item.not_before - now
            if interval_wait > 0 or own_wait > 0:
                if own_wait > interval_wait:
                    self.show_state(f"retrying after: {item.last_problem}", own_wait)
                else:
                    self.show_state("waiting for the service interval", interval_wait)
                self._wake.clear()
                try:  # re-check early when the queue changes (a withdrawn head)
                    async with asyncio.timeout(max(interval_wait, own_wait)):
                        await self._wake.wait()
                except TimeoutError:
                    pass
                continue
            await self._attempt(item, transmit)

    async def _attempt(self, item: Outgoing, transmit: Transmit) -> None:
        item.tries += 1
        self.unconfirmed = time.monotonic()
        self._counts["sends_transmitted"] += 1
        self.show_state("waiting for the terminal's feedback")
        feedback = await transmit(item)
        now = time.monotonic()
        if feedback is None:
            self._counts["feedback_timeouts"] += 1
            self._retry(item, now, "no feedback from the terminal")
            return
        self.unconfirmed = None
        if feedback.accepted:
            self.last_accepted = now
            self._counts["sends_accepted"] += 1
            self._finish(item, None)
        elif feedback.reason == INTERVAL:
            self._counts["refused_interval"] += 1
            item.interval_refusals += 1
            self.not_before = now + max(1.0, feedback.wait_s) + MARGIN_S
            if item.interval_refusals > MAX_INTERVAL_REFUSALS:
                self._finish(item, f"the terminal refused {item.interval_refusals} times: service interval not reached")
        elif feedback.reason in TRANSIENT:
            self._counts["refused_transient"] += 1
            self._retry(item, now, f"terminal refused: {feedback.why}")
        else:
            self._counts["refused_final"] += 1
            self._finish(item, f"terminal refused the message: {feedback.why}")

    def _retry(self, item: Outgoing, now: float, problem: str) -> None:
        item.failures += 1
        item.last_problem = problem
        if item.failures >= self.max_attempts:
            self._finish(item, f"{problem} ({item.failures} attempts)")
            return
        item.not_before = now + item.backoff.next_delay()
        log.info("short message to %s: %s; retrying", item.address, problem)

    def _finish(self, item: Outgoing, failure: str | None) -> None:
        if item in self.queue:
            self.queue.remove(item)
        if item.done.done():  # the caller gave up meanwhile
            return
        if failure is not None:
            self._counts["sends_failed"] += 1
            item.done.set_exception(CommandError("failed", failure))
            return
        try:
            item.on_sent()
        except Exception:
            log.exception("on_sent callback failed")
        waited = time.monotonic() - item.queued_at
        item.done.set_result(f"accepted by the terminal for {item.address}: {item.size} bytes, "
                             f"{item.tries} transmission{'s' if item.tries > 1 else ''}, after {waited:.1f} s")
