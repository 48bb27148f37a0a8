"""SBD sessions, one at a time: the send queue, ring alerts, mailbox checks, backoff.

One task (`run`) starts a session when a text waits, a ring alert came, the
last session said more MT messages queue, or `mailbox_poll_s` passed; it
sleeps on an Event otherwise (no polling). A session writes the queue's head
into the MO buffer if it is not there yet (`AT+SBDWB`: "sent"), runs
`AT+SBDIX` (`AT+SBDIXA` for a ring), then reads an MT message (`AT+SBDRB`).
Failed sessions back off (bounded, exponential, jittered; the MO buffer stays
written); MO status 36 holds every session for `registration_wait_s`.

Lives on the driver object, so a replug keeps the queue and the holds. When
the line goes during `AT+SBDIX`, `resume()` asks the modem (`AT+SBDS`) whether
its MOMSN moved on: if so the message went out and is done, else it is sent
again (at least once: a modem that lost power mid-session sent nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from drivers.common.at import AtChannel, AtError
from drivers.common.terminal_driver import TerminalDriver
from drivers.iridium_sbd import sbd
from drivers.iridium_sbd.receive import handle_mt
from drivers.iridium_sbd.sendqueue import Outgoing, SendQueue
from gateway.backoff import Backoff

UNKNOWN = object()  # what the modem's MO buffer holds after a (re)connect or a lost answer


@dataclass(frozen=True)
class SessionOptions:
    mailbox_poll_s: float = 300.0
    registration_wait_s: float = 180.0
    retry_initial_s: float = 5.0
    retry_max_s: float = 60.0
    max_attempts: int = 8
    session_timeout_s: float = 120.0


class Sessions:
    def __init__(self, drv: TerminalDriver, opts: SessionOptions, show: Callable[..., None]) -> None:
        self.drv = drv
        self.opts = opts
        self._show = show
        self.queue = SendQueue()
        self._wake = asyncio.Event()
        self._ring = False  # an SBDRING to answer with AT+SBDIXA
        self._mt_more = False  # the last session said more MT messages queue
        self._not_before = 0.0  # monotonic: no session before this (backoff, MO status 36)
        self._next_poll = 0.0
        self._buffer: Outgoing | None | object = UNKNOWN
        self._in_flight: tuple[Outgoing, int] | None = None  # AT+SBDIX running: the message, the MOMSN it takes
        self._backoff = self._new_backoff()

    def _new_backoff(self) -> Backoff:
        return Backoff(initial=self.opts.retry_initial_s, maximum=self.opts.retry_max_s, jitter=0.2)

    def submit(self, item: Outgoing) -> None:
        self.queue.put(item)
        self._wake.set()

    def ring(self) -> None:
        self._ring = True
        self._wake.set()

    async def resume(self, at: AtChannel) -> None:
        """After (re)connecting: the MO buffer is unknown; settle a session the line cut off."""
        self._buffer = UNKNOWN
        self._next_poll = time.monotonic() + self.opts.mailbox_poll_s
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is None or in_flight[0].settled:
            return
        item, momsn = in_flight
        status = await self._status(at)
        if status is not None and status[1] != momsn:
            self.drv.counts["mo_sent"] += 1
            self.queue.finish(item, f"sent to {item.to} through the Iridium gateway (MOMSN {momsn}; "
                                    "confirmed after the line came back)")

    async def _status(self, at: AtChannel) -> tuple[int, int, int, int] | None:
        try:
            return sbd.parse_sbds(await at.command("AT+SBDS", timeout=5.0))
        except (AtError, sbd.SbdError):
            self.drv.counts["sbds_errors"] += 1
            return None

    def _due_in(self) -> float:
        """Seconds until the next session should start (0: now)."""
        now = time.monotonic()
        wanted = now if self.queue.head() is not None or self._ring or self._mt_more else self._next_poll
        return max(0.0, wanted - now, self._not_before - now)

    async def run(self, at: AtChannel) -> None:
        while True:
            self._wake.clear()
            delay = self._due_in()
            if delay:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
                continue
            await self._session(at)

    async def _clear_mo(self, at: AtChannel) -> None:
        self._buffer = UNKNOWN
        await at.command("AT+SBDD0", timeout=5.0)
        self._buffer = None

    async def _session(self, at: AtChannel) -> None:
        answering, self._ring, self._mt_more = self._ring, False, False
        self._next_poll = time.monotonic() + self.opts.mailbox_poll_s
        item = self.queue.head()
        command = "AT+SBDIXA" if answering else "AT+SBDIX"
        try:
            if self._buffer is not None and self._buffer is not item:
                await self._clear_mo(at)  # unknown after a (re)connect, or a message given up
            if item is not None and self._buffer is not item:
                item = await self._write(at, item)
            self._show(sbd_state="session", sbd_detail=f"{command} ({'sending to ' + item.to if item else 'mailbox'})")
            if item is not None and (status := await self._status(at)) is not None:
                self._in_flight = (item, status[1])
            result = sbd.find_sbdix(await at.command(command, timeout=self.opts.session_timeout_s))
        except (AtError, sbd.SbdError) as exc:
            self._in_flight = None
            self.drv.counts["session_errors"] += 1
            self._ring = self._ring or answering
            self._failed(item, f"modem error: {exc}", sbd.Action.RETRY)
            return
        self._in_flight = None
        self.drv.counts["sessions"] += 1
        self._mt_more = result.mt_queued > 0
        if result.action is sbd.Action.DONE:
            self._backoff = self._new_backoff()
            self._show(sbd_state="idle", sbd_detail=f"last session: sent MOMSN {result.momsn}" if item else
                       "last session: mailbox checked")
            if item is not None:
                self.drv.counts["mo_sent"] += 1
                self.queue.finish(item, f"sent to {item.to} through the Iridium gateway (MOMSN {result.momsn})")
        else:
            self.drv.counts[f"mo_status_{result.mo_status}"] += 1
            self._ring = self._ring or answering
            self._failed(item, sbd.describe_mo(result.mo_status), result.action)
        if self._buffer is not None and (item is None or item.settled):
            with contextlib.suppress(AtError):  # else the next session clears it first
                await self._clear_mo(at)
        if result.mt_status == sbd.MT_RECEIVED:
            await self._read_mt(at, result.mtmsn)
        elif result.mt_status == sbd.MT_ERROR and result.action is sbd.Action.DONE:
            self.drv.counts["mt_errors"] += 1

    async def _write(self, at: AtChannel, item: Outgoing) -> Outgoing | None:
        """Put the message in the MO buffer: the message, or None if the modem refused its size.

        SbdError when the modem did not take it this time (timeout, checksum): retried.
        """
        self._buffer = UNKNOWN
        lines = await at.command(f"AT+SBDWB={len(item.payload)}", timeout=10.0, prompt="READY",
                                 payload=sbd.mo_payload(item.payload))
        code = sbd.write_result(lines)
        if code != sbd.WRITE_OK:
            self._buffer = None  # a refused write leaves the (cleared) buffer as it was
            if code == sbd.WRITE_BAD_SIZE:
                self.drv.counts["mo_failed"] += 1
                self.queue.fail(item, f"the modem refused a message of {len(item.payload)} bytes")
                return None
            raise sbd.SbdError(f"AT+SBDWB: {'no result' if code is None else sbd.WRITE_RESULTS.get(code, code)}")
        self._buffer = item
        self.drv.counts["mo_written"] += 1
        item.mark_sent()
        return item

    def _failed(self, item: Outgoing | None, reason: str, action: sbd.Action) -> None:
        """A session (or the write before it) failed: back off, and give up on the message when it is time."""
        if action is sbd.Action.WAIT:
            wait = self.opts.registration_wait_s
            until = time.strftime("%H:%M:%S UTC", time.gmtime(time.time() + wait))
            self._show(sbd_state="waiting", sbd_detail=f"{reason}: no session for {wait:g} s (until {until})")
        else:
            wait = self._backoff.next_delay()
        self._not_before = time.monotonic() + wait
        if item is None:
            if action is not sbd.Action.WAIT:
                self._show(sbd_state="retrying", sbd_detail=f"{reason}; next session in {wait:.1f} s")
            return
        item.attempts += 1
        item.last_reason = reason
        if action is sbd.Action.FAIL:
            self.drv.counts["mo_failed"] += 1
            self.queue.fail(item, f"the modem could not send to {item.to}: {reason}")
        elif item.attempts >= self.opts.max_attempts:
            self.drv.counts["mo_failed"] += 1
            self.queue.fail(item, f"not sent to {item.to} after {item.attempts} sessions; last: {reason}")
        elif action is sbd.Action.RETRY:
            self._show(sbd_state="retrying", sbd_detail=f"{reason}; attempt {item.attempts} of "
                                                        f"{self.opts.max_attempts}, next in {wait:.1f} s")

    async def _read_mt(self, at: AtChannel, mtmsn: int) -> None:
        """AT+SBDRB; read once more if the frame came damaged (the modem keeps it until the next session)."""
        problem = ""
        for _ in range(2):
            reader = sbd.SbdrbReader()
            try:
                await at.command("AT+SBDRB", timeout=10.0, binary=reader)
            except AtError as exc:
                problem = str(exc)
                continue
            if reader.data is not None:
                handle_mt(self.drv, reader.data, mtmsn)
                return
            self.drv.counts["mt_bad_frames"] += 1
            problem = reader.error or "no SBDRB frame"
        self.drv.counts["mt_dropped"] += 1
        self.drv.event(self.drv.modem.id, "mt_lost", "warning", f"MT message {mtmsn} could not be read: {problem}")

    def stats(self) -> dict[str, Any]:
        return {"send_queue": len(self.queue)}
