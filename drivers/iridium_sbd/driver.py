"""Iridium SBD driver: a 9602/9603 modem cabled to the gateway, the teams' Iridium units as devices.

The modem (the device without `options.address`) sends texts as MO messages
(fieldgw's 0x04 compact text, `execute(modem, "text", {to, text})`) and
receives the teams' MT messages: position batches (0x03) become Positions
on the device whose `options.address` is the batch's sender id (receive.py).
Sessions, the bounded send queue, retries and holds are in sessions.py;
framing and result codes in sbd.py. Its status: `imei`, `signal_bars`
(`AT+CSQF` every `poll_s`, also as telemetry), `sbd_state` / `sbd_detail`
(idle, session, retrying, waiting after MO status 36) and `send_queue`.

Options on the modem device: `poll_s` (30), `mailbox_poll_s` (300),
`registration_wait_s` (180), `retry_initial_s` (5), `retry_max_s` (60),
`max_attempts` (8), `session_timeout_s` (120), `stale_s` (900).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar

from drivers import compact_report
from drivers.common.at import AtChannel, AtError
from drivers.common.terminal_driver import TerminalDriver
from drivers.iridium_sbd import sbd
from drivers.iridium_sbd.sendqueue import Outgoing, SendQueue
from drivers.iridium_sbd.sessions import SessionOptions, Sessions
from gateway.driver_api import CommandError, DriverContext, LinkSpec, OnSent, TextRoute
from gateway.model import StatusUpdate, Telemetry, now_ms

log = logging.getLogger(__name__)

INIT_COMMANDS = ("ATE0", "AT&K0", "AT+SBDMTA=1")
SESSION_BUDGET_S = 30.0  # what one session usually takes, for the text command's overall timeout
_UNSET = object()


class IridiumSbdDriver(TerminalDriver):
    name: ClassVar[str] = "iridium_sbd"
    default_kind: ClassVar[str] = "satcom"
    address_pattern: ClassVar[str] = r"[A-Za-z0-9-]{1,32}"
    terminal_name: ClassVar[str] = "Iridium modem"
    default_baud: ClassVar[int] = 19200
    float_options: ClassVar[dict[str, tuple[float, float]]] = {
        "stale_s": (1.0, 86400.0), "poll_s": (1.0, 3600.0), "mailbox_poll_s": (1.0, 86400.0),
        "registration_wait_s": (0.0, 3600.0), "retry_initial_s": (0.01, 600.0), "retry_max_s": (0.01, 3600.0),
        "max_attempts": (1, 50), "session_timeout_s": (1.0, 600.0)}

    def __init__(self, link: LinkSpec, ctx: DriverContext) -> None:
        super().__init__(link, ctx)
        self._poll_s = self.option("poll_s", 30.0)
        initial = self.option("retry_initial_s", 5.0)
        self.session_options = SessionOptions(
            mailbox_poll_s=self.option("mailbox_poll_s", 300.0),
            registration_wait_s=self.option("registration_wait_s", 180.0),
            retry_initial_s=initial, retry_max_s=max(initial, self.option("retry_max_s", 60.0)),
            max_attempts=int(self.option("max_attempts", 8)),
            session_timeout_s=self.option("session_timeout_s", 120.0))
        self.sessions = Sessions(self, self.session_options, self._show)  # on self: survives a replug
        self._at: AtChannel | None = None
        self._at_totals: dict[str, int] = {}
        self._shown: dict[str, Any] = {}
        self.imei: str | None = None

    @property
    def queue(self) -> SendQueue:
        return self.sessions.queue

    # -- dispatch and commands ---------------------------------------------------
    def text_route(self, device_id: str) -> TextRoute | None:
        addr = self.terminals.address(device_id)
        if addr is None:
            return None
        header = len(compact_report.encode_text(addr, ""))
        return TextRoute("sbd", self.modem.id, addr, sbd.MO_MAX - header, lambda text: len(text.encode("utf-8")))

    def command_timeout(self, command: str) -> float | None:
        """Long enough for a 36 hold and every retry: registration wait + backoff schedule + sessions."""
        if command != "text":
            return None
        o = self.session_options
        retries, delay = 0.0, o.retry_initial_s
        for _ in range(o.max_attempts - 1):
            retries += min(delay, o.retry_max_s)
            delay *= 2
        return o.registration_wait_s + retries * 1.2 + o.max_attempts * SESSION_BUDGET_S

    def _encode(self, to: str, text: str) -> bytes:
        try:
            payload = compact_report.encode_text(to, text)
        except (compact_report.ReportError, UnicodeEncodeError) as exc:
            raise CommandError("rejected", f"cannot encode the text for {to}: {exc}") from None
        if len(payload) > sbd.MO_MAX:
            raise CommandError("rejected", f"one SBD message carries {sbd.MO_MAX} bytes; this text to {to} takes "
                                           f"{len(payload)} ({len(payload) - len(text.encode('utf-8'))} of them header)")
        return payload

    def check_command(self, device_id: str, command: str, args: dict[str, Any]) -> str | None:
        problem = super().check_command(device_id, command, args)
        if problem is None and command == "text":
            try:
                self._encode(self.terminals.resolve(args["to"], self.address_pattern), args["text"])
            except CommandError as exc:
                return exc.detail
        return problem

    async def execute(self, device_id: str, command: str, args: dict[str, Any], on_sent: OnSent) -> str:
        """Queue the text (also while the modem is away); `done` once a session took it to the gateway."""
        if command != "text":
            raise CommandError("rejected", f"{self.name} takes only text")
        to = self.resolve_to(args["to"])
        item = Outgoing(to, self._encode(to, args["text"]), on_sent)
        self.sessions.submit(item)
        self._show(send_queue=len(self.queue))
        try:
            return await item.result
        finally:  # done, failed, or given up by the router: out of the queue either way
            self.queue.remove(item)
            self._show(send_queue=len(self.queue))

    # -- the link ------------------------------------------------------------------
    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        at = AtChannel(reader, writer, self._unsolicited, ("SBDRING",))
        self._at = at
        tasks = [asyncio.create_task(at.serve(), name=f"iridium-read:{self.modem.id}")]
        try:
            await self._initialise(at)
            await self.sessions.resume(at)
            self.ctx.set_online(self.modem.id, True, f"Iridium modem on {self.url}")
            tasks += [asyncio.create_task(self.sessions.run(at), name=f"iridium-sessions:{self.modem.id}"),
                      asyncio.create_task(self._signal(at)), asyncio.create_task(self.expire_loop())]
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                t.result()
            raise ConnectionError("modem service stopped")
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._at = None
            self.forget_remotes()
            for k, v in at.stats.items():
                self._at_totals[k] = self._at_totals.get(k, 0) + v

    async def _initialise(self, at: AtChannel) -> None:
        for attempt in range(3):
            try:
                await at.command("AT", timeout=2.0)
                break
            except AtError as exc:
                if attempt == 2:
                    raise ConnectionError(f"the modem does not answer AT: {exc.result}") from None
        for cmd in INIT_COMMANDS:
            try:
                await at.command(cmd, timeout=3.0)
            except AtError as exc:
                self.counts["init_errors"] += 1
                self.event(self.modem.id, "modem_error", "warning", f"modem refused {cmd}: {exc.result}")
        try:
            self.imei = next((line for line in await at.command("AT+CGSN", timeout=3.0) if line.isdigit()), self.imei)
        except AtError:
            self.counts["init_errors"] += 1
        self._show(imei=self.imei, send_queue=len(self.queue))

    def _unsolicited(self, lines: list[str]) -> None:
        if lines[0].strip() == "SBDRING":
            self.counts["rings"] += 1
            self.sessions.ring()

    async def _signal(self, at: AtChannel) -> None:
        while True:
            try:
                bars = sbd.parse_csqf(await at.command("AT+CSQF", timeout=5.0))
            except AtError:
                bars = None
            if bars is None:
                self.counts["signal_poll_errors"] += 1
            else:
                self._show(signal_bars=bars)
                self.ctx.publish(Telemetry(self.modem.id, now_ms(), {"signal_bars": float(bars)}))
            await asyncio.sleep(self._poll_s)

    # -- status ------------------------------------------------------------------------
    def _show(self, **status: Any) -> None:
        """Publish the parts of the modem's status that changed."""
        changed = {k: v for k, v in status.items() if self._shown.get(k, _UNSET) != v}
        if changed:
            self._shown.update(changed)
            self.ctx.publish(StatusUpdate(self.modem.id, now_ms(), changed))

    def stats(self) -> dict[str, Any]:
        at = dict(self._at_totals)
        if self._at is not None:
            for k, v in self._at.stats.items():
                at[k] = at.get(k, 0) + v
        return {**self.counts, **{f"at_{k}": v for k, v in at.items()}, **self.sessions.stats()}
