"""BeiDou RDSS short-message driver: one terminal cabled to the gateway, the team cards it hears as devices.

The cabled terminal (the device without `options.address`, `options.dialect`
"2.1" or "bds3") is the modem: its card (address, service interval, level →
capacity), beam power and own RNSS position are its status. Every other
device on the link is a team card (`options.address`: 7 digits). A received
message whose first byte is 0x01-0x03 is a compact position report
(drivers/compact_report.py) and becomes a Position of the sender; any other
content is GB18030 text and becomes a `message` event. The `text` command
queues a short message (drivers/beidou_rdss/sender.py paces it by the
service interval) and is `sent` + `done` when the terminal accepts it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any, ClassVar

from drivers import compact_report
from drivers.beidou_rdss.content import decode_text, encode_text, is_report, text_size
from drivers.beidou_rdss.dialects import DIALECTS, NOT_LOCKED, UNSPECIFIED, CardInfo, Dialect, Feedback, dialect_name
from drivers.beidou_rdss.rnss import IGNORED_NMEA, NMEA_CMDS, Rnss
from drivers.beidou_rdss.sender import Outgoing, Sender
from drivers.beidou_rdss.sentence import Sentence, SentenceError, SentenceReader, parse
from drivers.common.terminal_driver import TerminalDriver
from gateway.driver_api import CommandError, DriverContext, LinkSpec, OnSent, TextRoute
from gateway.model import Position, now_ms

log = logging.getLogger(__name__)

CARD_TRIES, CARD_TIMEOUT_S = 3, 3.0
MIN_CAPACITY_BYTES = 13  # level 1: what text_route offers before the card has been read
INT_OPTIONS = {"queue_max": (1, 64), "send_attempts": (1, 20)}
PLAUSIBLE_TS = 1_000_000_000  # 2001: a report's own time before this is a receiver without a clock


class BeidouRdssDriver(TerminalDriver):
    name: ClassVar[str] = "beidou_rdss"
    default_kind: ClassVar[str] = "satcom"
    address_pattern: ClassVar[str] = r"\d{7}"
    terminal_name: ClassVar[str] = "BeiDou terminal"
    default_baud: ClassVar[int] = 115200
    float_options: ClassVar[dict[str, tuple[float, float]]] = {
        "stale_s": (1.0, 86400.0), "position_interval_s": (0.5, 3600.0), "beam_interval_s": (1.0, 3600.0),
        "feedback_timeout_s": (1.0, 120.0), "retry_initial_s": (0.1, 600.0)}

    def __init__(self, link: LinkSpec, ctx: DriverContext) -> None:
        super().__init__(link, ctx)
        self.dialect_name = dialect_name(self.modem.options.get("dialect"))
        self.card: CardInfo | None = None
        self.sender = Sender(int(self.option("queue_max", 8)), int(self.option("send_attempts", 5)),
                             self.option("retry_initial_s", 5.0), self._show_send, self.counts)
        self._feedback_timeout_s = self.option("feedback_timeout_s", 10.0)
        self._beam_interval_s = self.option("beam_interval_s", 10.0)
        self._beams_shown = -math.inf
        self._beam_powers: list[int] | None = None  # the latest, shown or not
        self._rnss = Rnss(self.modem.id, self.option("position_interval_s", 5.0))
        self._reader = SentenceReader()
        self._writer: asyncio.StreamWriter | None = None
        self._waiters: dict[str, asyncio.Future[Any]] = {}  # "card" / "feedback" → the answer awaited

    # -- kit checks --------------------------------------------------------------------
    @classmethod
    def check_device(cls, options: dict[str, Any], transport: str) -> list[tuple[tuple[str | int, ...], str]]:
        problems = super().check_device(options, transport)
        if "address" not in options and dialect_name(options.get("dialect")) is None:
            got = "missing" if "dialect" not in options else f"{options['dialect']!r}"
            problems.append((("dialect",), f"the BeiDou terminal needs options.dialect \"2.1\" or \"bds3\" ({got})"))
        for name, (lo, hi) in INT_OPTIONS.items():
            v = options.get(name, lo)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                problems.append(((name,), f"{name} must be a whole number {lo}..{hi}"))
        return problems

    # -- dispatch and commands -----------------------------------------------------------
    def text_route(self, device_id: str) -> TextRoute | None:
        addr = self.terminals.address(device_id)
        if addr is None:
            return None
        capacity = self.card.capacity_bytes if self.card else MIN_CAPACITY_BYTES
        return TextRoute("beidou", self.modem.id, addr, capacity, text_size)

    def command_timeout(self, command: str) -> float | None:
        if command != "text":
            return None
        interval = self.card.interval_s if self.card else 60
        return 4 * interval + 3 * self._feedback_timeout_s + 60.0

    def check_command(self, device_id: str, command: str, args: dict[str, Any]) -> str | None:
        problem = super().check_command(device_id, command, args)
        if problem is None and command == "text" and self.card is not None:
            try:
                encode_text(args["text"], self.card)
            except CommandError as exc:
                return exc.detail
        return problem

    async def execute(self, device_id: str, command: str, args: dict[str, Any], on_sent: OnSent) -> str:
        if command != "text":
            raise CommandError("rejected", f"{self.name} takes only text")
        addr = self.resolve_to(args["to"])
        if self.card is None:
            raise CommandError("failed", f"{self.terminal_name} {self.modem.id} has not been read yet (not connected)")
        data = encode_text(args["text"], self.card)
        item: Outgoing = self.sender.submit(addr, data.hex().upper(), len(data), on_sent)
        try:
            return await item.done
        finally:
            self.sender.withdraw(item)

    def _show_send(self, state: dict[str, Any]) -> None:
        self.status(state)

    # -- the link ------------------------------------------------------------------------
    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.dialect_name is None:
            raise ValueError("options.dialect must be \"2.1\" or \"bds3\"")
        dialect = DIALECTS[self.dialect_name]()
        self._writer = writer
        reading = asyncio.create_task(self._read(reader, dialect), name=f"beidou-read:{self.modem.id}")
        helpers: list[asyncio.Task[None]] = []
        try:
            card = await self._query_card(dialect, reading)
            self.card, self.sender.interval_s = card, float(card.interval_s)
            self.ctx.set_online(self.modem.id, True, f"{dialect.name} terminal, card {card.address}, on {self.url}")
            self.status({"dialect": dialect.name, "address": card.address, "card_serial": card.serial,
                         "service_interval_s": card.interval_s, "card_level": card.level,
                         "capacity_bits": card.capacity_bits, "capacity_bytes": card.capacity_bytes})
            helpers = [asyncio.create_task(self.sender.run(lambda item: self._transmit(dialect, item))),
                       asyncio.create_task(self.expire_loop())]
            done, _ = await asyncio.wait([reading, *helpers], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # the line's ConnectionError, or a bug: either ends this run
            raise ConnectionError("the terminal's reader stopped")
        finally:
            for task in (reading, *helpers):
                task.cancel()
            await asyncio.gather(reading, *helpers, return_exceptions=True)
            self._writer = None
            self._reader.reset()
            self.forget_remotes()
            for fut in self._waiters.values():
                if not fut.done():
                    fut.cancel()
            if self.sender.queue:
                self.sender.show_state("waiting for the terminal to return", self.sender.wait_left())

    def _write(self, data: bytes) -> None:
        if self._writer is None:
            raise ConnectionError("terminal not connected")
        self._writer.write(data)

    async def _ask(self, key: str, data: bytes, timeout: float) -> Any:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters[key] = fut
        try:
            self._write(data)
            async with asyncio.timeout(timeout):  # not wait_for: it can swallow a cancel on 3.11 (gh-86296)
                return await fut
        finally:
            self._waiters.pop(key, None)

    async def _query_card(self, dialect: Dialect, reading: asyncio.Task[None]) -> CardInfo:
        query = dialect.card_query()
        for _ in range(CARD_TRIES):
            asking = asyncio.ensure_future(self._ask("card", query, CARD_TIMEOUT_S))
            await asyncio.wait({asking, reading}, return_when=asyncio.FIRST_COMPLETED)
            if reading.done():
                asking.cancel()
                await asyncio.gather(asking, return_exceptions=True)
                reading.result()
                raise ConnectionError("the terminal's reader stopped")
            try:
                return asking.result()
            except TimeoutError:
                self.counts["card_query_timeouts"] += 1
        raise ConnectionError(f"no $BD{dialect.card_cmd} answer to {query.decode().strip()} in {CARD_TRIES} tries; "
                              f"is this a {dialect.name} terminal (options.dialect) with a card?")

    async def _transmit(self, dialect: Dialect, item: Outgoing) -> Feedback | None:
        try:
            fb: Feedback = await self._ask("feedback", dialect.send(item.address, item.code), self._feedback_timeout_s)
        except TimeoutError:
            return None
        if not fb.accepted and fb.reason == UNSPECIFIED and self._beam_powers is not None and not any(self._beam_powers):
            return Feedback(False, NOT_LOCKED, fb.wait_s)  # 2.1 gives no reason; no beam power says which
        return fb

    async def _read(self, reader: asyncio.StreamReader, dialect: Dialect) -> None:
        try:
            while True:
                data = await reader.read(4096)
                if not data:
                    raise ConnectionError("the terminal closed the line")
                for line in self._reader.feed(data):
                    self._line(line, dialect)
        except OSError as exc:  # pyserial: "device reports readiness to read but returned no data"
            raise ConnectionError(f"serial line lost: {exc}") from exc

    # -- what the terminal says -----------------------------------------------------------
    def _line(self, line: bytes, dialect: Dialect) -> None:
        try:
            s = parse(line)
        except SentenceError as exc:
            self.counts["bad_sentences"] += 1
            log.debug("dropped %r: %s", line[:80], exc)
            return
        self.counts["sentences"] += 1
        try:
            self._sentence(s, dialect)
        except (ValueError, IndexError) as exc:
            self.counts[f"bad_{s.cmd.lower()}"] += 1
            log.debug("malformed %s dropped: %s", s.cmd, exc)
        except Exception:  # a handler bug must not take the link down
            self.counts["handler_errors"] += 1
            log.exception("sentence %s could not be handled", s.body[:80])

    def _sentence(self, s: Sentence, dialect: Dialect) -> None:
        if s.cmd == dialect.card_cmd:
            self._answer("card", dialect.parse_card(s.fields))
        elif s.cmd == "FKI":
            feedback = dialect.parse_feedback(s.fields)
            if feedback is None:
                self.counts["feedback_other"] += 1
            else:
                self._answer("feedback", feedback)
        elif s.cmd == dialect.message_cmd:
            rx = dialect.parse_message(s.fields)
            self._message(rx.sender, bytes.fromhex(rx.code))
        elif s.cmd == dialect.beam_cmd:
            self._beams(dialect.parse_beams(s.fields))
        elif s.cmd in NMEA_CMDS and s.talker != "CC":
            position = self._rnss.feed(s.line())
            if position is not None:
                self.ctx.publish(position)
        elif s.cmd in IGNORED_NMEA:
            self.counts["nmea_ignored"] += 1
        else:
            self.counts["unknown_sentences"] += 1

    def _answer(self, key: str, value: Any) -> None:
        fut = self._waiters.get(key)
        if fut is None or fut.done():
            self.counts[f"unexpected_{key}"] += 1
        else:
            fut.set_result(value)

    def _beams(self, powers: list[int]) -> None:
        self._beam_powers = powers
        now = time.monotonic()
        if now - self._beams_shown < self._beam_interval_s:
            return
        self._beams_shown = now
        self.status({"beam_power": powers, "beam_locked": any(p > 0 for p in powers)},
                    {"beam_max": float(max(powers, default=0))})

    def _message(self, sender: str, data: bytes) -> None:
        self.counts["messages_received"] += 1
        if is_report(data):
            self._report(sender, data)
            return
        try:
            text, extra, clean = decode_text(data)
        except compact_report.ReportError:
            self.counts["bad_reports"] += 1
            return
        if not clean:
            self.counts["undecodable_texts"] += 1
        dev = self.heard(sender)
        self.event(dev.id if dev else self.modem.id, "message", "info", text, sender=sender, channel="beidou", **extra)

    def _report(self, sender: str, data: bytes) -> None:
        try:
            fixes = compact_report.decode(data).fixes
        except compact_report.ReportError as exc:
            self.counts["bad_reports"] += 1
            log.debug("bad position report from %s: %s", sender, exc)
            return
        self.counts["position_reports"] += 1
        dev = self.heard(sender)
        if dev is None:
            last = fixes[-1]
            self.event(self.modem.id, "unlisted_terminal", "info",
                       f"position from BeiDou card {sender}, which the kit does not list",
                       address=sender, lat=last.lat, lon=last.lon)
            return
        for f in fixes:
            ts = f.ts * 1000 if f.ts >= PLAUSIBLE_TS else now_ms()
            self.ctx.publish(Position(dev.id, ts, f.lat, f.lon, f.alt_m, f.heading_deg, f.speed_mps, f.fix, "beidou"))

    def stats(self) -> dict[str, Any]:
        return {**self.counts, **self._reader.counts, **self._rnss.counts, "send_queue": len(self.sender.queue)}
