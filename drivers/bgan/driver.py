"""Inmarsat BGAN driver: the terminal's AT status as a `satcom` device.

Transport `serial:///dev/...[?baud=N]` or `tcp://host:port`. After `ATE0`,
every `poll_s` (default 10): `AT_ISIG` (C/N0), `AT+CGREG?` (packet
registration), `AT+CGACT?` (PDP contexts) and `AT_IGPS?` (the terminal's
own GPS), per docs/serial-protocols.md "Satellite terminal status".

Published: status and telemetry, the terminal's position (`source: bgan`)
while it has a fix, events when registration or the PDP state changes, and
`LinkHealth` for the uplink manager whenever the verdict changes: up when
registered (home or roaming) with a PDP context active. An ERROR or an
unanswered command is counted and the poll carries on; a terminal that
answers nothing for `max_failures` polls, or a line that goes away, ends
the run with ConnectionError after reporting the link down.

Built on TerminalDriver (stream opening, counters, option checks) with the
terminal as its modem and no remote terminals: a BGAN link is that one
device.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from typing import Any, ClassVar

from drivers.common.at import AtChannel, AtError
from drivers.common.terminal_driver import TerminalDriver
from gateway.driver_api import DriverContext, LinkSpec
from gateway.model import Fix, LinkHealth, Position, Telemetry, now_ms

log = logging.getLogger(__name__)

REGISTRATION = {0: "not registered", 1: "home", 2: "searching", 3: "denied", 4: "unknown", 5: "roaming"}
REGISTERED = (1, 5)
FIXES: dict[int, Fix] = {1: "2d", 2: "2d", 3: "3d"}  # 0: no fix [format unverified: 1 taken as a fix]
POSITION_EVERY_S = 60.0  # a terminal that stays put still says where it is this often
_NUM = r"(-?\d+(?:\.\d+)?)"
_ISIG = re.compile(rf"^_ISIG:\s*{_NUM}\s*$")
_CGREG = re.compile(r"^\+CGREG:\s*(\d+)\s*,\s*(\d+)")
_CGACT = re.compile(r"^\+CGACT:\s*(\d+)\s*,\s*([01])\s*$")
_IGPS = re.compile(rf"^_IGPS:\s*(\d)\s*,\s*{_NUM}\s*,\s*{_NUM}\s*$")
POLL = ("AT_ISIG", "AT+CGREG?", "AT+CGACT?", "AT_IGPS?")


class BganDriver(TerminalDriver):
    name: ClassVar[str] = "bgan"
    default_kind: ClassVar[str] = "satcom"
    terminal_name: ClassVar[str] = "BGAN terminal"
    default_baud: ClassVar[int] = 115200
    float_options: ClassVar[dict[str, tuple[float, float]]] = {
        "poll_s": (0.1, 3600.0), "timeout_s": (0.2, 60.0), "max_failures": (1, 100)}

    def __init__(self, link: LinkSpec, ctx: DriverContext) -> None:
        super().__init__(link, ctx)
        self._poll_s = self.option("poll_s", 10.0)
        self._timeout_s = self.option("timeout_s", 5.0)
        self._max_failures = int(self.option("max_failures", 3))
        self._at: AtChannel | None = None
        # Kept across runs: a terminal that comes back as it was is no news.
        self._health: tuple[bool, str] | None = None
        self._reg: int | None = None
        self._pdp: bool | None = None
        self._last_status: dict[str, Any] = {}
        self._last_fix: tuple[str, float, float] | None = None
        self._last_fix_at = 0.0
        self._timed_out = False
        self._unreadable = 0  # polls in a row that could not read registration and PDP state

    # -- kit checks ------------------------------------------------------------------
    @classmethod
    def check_device(cls, options: dict[str, Any], transport: str) -> list[tuple[tuple[str | int, ...], str]]:
        """Paths are below the device's `options` (as gateway/kit.py reports them)."""
        problems: list[tuple[tuple[str | int, ...], str]] = []
        problems.extend(super().check_device(options, transport))
        v = options.get("max_failures")
        if isinstance(v, float) and not v.is_integer():
            problems.append((("max_failures",), "max_failures must be a whole number"))
        if "address" in options:
            problems.append((("address",), "a BGAN terminal is the device itself: it takes no address"))
        known = set(cls.float_options)
        for name in sorted(set(options) - known - {"address"}):
            problems.append(((name,), f"unknown option {name!r}; the bgan driver takes {', '.join(sorted(known))}"))
        return problems

    @classmethod
    def check_link(cls, devices: list[dict[str, Any]]) -> list[tuple[int, tuple[str | int, ...], str]]:
        return [(i, (), "one BGAN terminal per transport: this one is already used by device #1")
                for i in range(1, len(devices))]

    @classmethod
    def commands_for(cls, kind: str) -> list[str]:
        return []

    def check_command(self, device_id: str, command: str, args: dict[str, Any]) -> str | None:
        return f"the {self.name} driver takes no commands"

    # -- the link ----------------------------------------------------------------------
    async def run(self) -> None:
        try:
            await super().run()
        except Exception as exc:  # the terminal cannot be read: its link counts as down until it can
            self._link(False, "no_answer", f"BGAN terminal not answering: {exc}")
            raise

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        at = AtChannel(reader, writer, lambda lines: None, ())
        self._at = at
        reading = asyncio.create_task(at.serve(), name=f"bgan-read:{self.modem.id}")
        polling: asyncio.Task[None] | None = None
        try:
            await self._start(at, reading)
            self.ctx.set_online(self.modem.id, True, f"terminal on {self.url}")
            polling = asyncio.create_task(self._poll_loop(at), name=f"bgan-poll:{self.modem.id}")
            done, _ = await asyncio.wait({reading, polling}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
            raise ConnectionError("terminal line closed")
        finally:
            children = [t for t in (reading, polling) if t is not None]
            for task in children:
                task.cancel()
            await asyncio.gather(*children, return_exceptions=True)  # a stop of serve() itself still propagates
            self._at = None
            self.counts.update({f"at_{k}": v for k, v in at.stats.items()})

    async def _start(self, at: AtChannel, reading: asyncio.Task[None]) -> None:
        """`ATE0`, tried twice (a first ERROR may be the rest of a half-typed line)."""
        for attempt in (1, 2):
            try:
                await at.command("ATE0", timeout=self._timeout_s)
                return
            except AtError as exc:
                if reading.done():
                    reading.result()  # the line went away: its ConnectionError says so
                self.counts["at_start_failures"] += 1
                if attempt == 2:
                    raise ConnectionError(f"terminal does not take ATE0: {exc.result}") from None

    async def _poll_loop(self, at: AtChannel) -> None:
        silent = 0
        while True:
            answered = await self._poll(at)
            silent = 0 if answered else silent + 1
            if silent >= self._max_failures:
                raise ConnectionError(f"terminal answered nothing for {silent} polls")
            await asyncio.sleep(self._poll_s)

    async def _ask(self, at: AtChannel, command: str) -> list[str] | None:
        """The answer's lines, or None (counted) for ERROR or no answer (`_timed_out` says which)."""
        timeouts = at.stats["timeouts"]
        self._timed_out = False
        try:
            return await at.command(command, timeout=self._timeout_s)
        except AtError as exc:
            self._timed_out = at.stats["timeouts"] > timeouts
            self.counts["unanswered" if self._timed_out else "errors"] += 1
            log.debug("%s: %s", self.modem.id, exc)
            return None

    async def _poll(self, at: AtChannel) -> bool:
        """One round of the four queries; False when the terminal answered none of them."""
        answers: dict[str, list[str] | None] = {}
        heard = False
        for command in POLL:
            answers[command] = await self._ask(at, command)
            heard = heard or not self._timed_out
            if not heard:
                return False  # silent from the first question: do not wait out the other three
        self.counts["polls"] += 1
        self._take(answers)
        return True

    # -- what the terminal said --------------------------------------------------------
    def _take(self, answers: dict[str, list[str] | None]) -> None:
        cn0 = self._parse_one(answers["AT_ISIG"], _ISIG)
        reg = self._parse_one(answers["AT+CGREG?"], _CGREG)
        gps = self._parse_one(answers["AT_IGPS?"], _IGPS)
        contexts = self._contexts(answers["AT+CGACT?"])
        status: dict[str, Any] = {}
        values: dict[str, float] = {}
        if cn0 is not None:
            values["cn0_dbhz"] = status["cn0_dbhz"] = float(cn0.group(1))
        stat = int(reg.group(2)) if reg is not None else None
        if stat is not None:
            status["registration"] = REGISTRATION.get(stat, f"state {stat}")
            status["registered"] = stat in REGISTERED
            self._changed_registration(stat)
        if contexts is not None:
            active = sorted(cid for cid, on in contexts.items() if on)
            status["pdp_active"] = bool(active)
            status["pdp_contexts"] = active
            self._changed_pdp(bool(active))
        if gps is not None:
            self._position(int(gps.group(1)), float(gps.group(2)), float(gps.group(3)), status)
        self._verdict(stat, contexts)
        if self._health is not None:
            status["link_up"] = self._health[0]
            values["link_up"] = 1.0 if self._health[0] else 0.0
        if status != self._last_status:
            self.status(status, values)
            self._last_status = status
        elif values:
            self.ctx.publish(Telemetry(self.modem.id, now_ms(), values))

    def _parse_one(self, lines: list[str] | None, pattern: re.Pattern[str]) -> re.Match[str] | None:
        if lines is None:
            return None
        found = None
        for line in lines:
            m = pattern.match(line)
            if m is not None and found is None:
                found = m
            elif m is None:
                self.counts["bad_lines"] += 1
        return found

    def _contexts(self, lines: list[str] | None) -> dict[int, bool] | None:
        if lines is None:
            return None
        out: dict[int, bool] = {}
        for line in lines:
            if m := _CGACT.match(line):
                out[int(m.group(1))] = m.group(2) == "1"
            else:
                self.counts["bad_lines"] += 1
        return out

    def _changed_registration(self, stat: int) -> None:
        before, self._reg = self._reg, stat
        if before is None or before == stat:
            return
        now, was = REGISTRATION.get(stat, f"state {stat}"), REGISTRATION.get(before, f"state {before}")
        self.event(self.modem.id, "registration", "info" if stat in REGISTERED else "warning",
                   f"BGAN registration: {now} (was {was})", registration=now, previous=was)

    def _changed_pdp(self, active: bool) -> None:
        before, self._pdp = self._pdp, active
        if before is None or before == active:
            return
        self.event(self.modem.id, "pdp", "info" if active else "warning",
                   "BGAN data context active" if active else "BGAN data context no longer active", active=active)

    def _position(self, fix_code: int, lat: float, lon: float, status: dict[str, Any]) -> None:
        status["gps_fix"] = fix_code
        fix = FIXES.get(fix_code)
        if fix is None:
            self._last_fix = None  # a fix regained is news at once, even at the same place
            return
        if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
            self.counts["bad_positions"] += 1
            return
        key = (fix, round(lat, 5), round(lon, 5))
        if key == self._last_fix and time.monotonic() - self._last_fix_at < POSITION_EVERY_S:
            return
        self._last_fix, self._last_fix_at = key, time.monotonic()
        self.ctx.publish(Position(self.modem.id, now_ms(), lat, lon, None, None, None, fix, "bgan"))

    def _verdict(self, stat: int | None, contexts: dict[int, bool] | None) -> None:
        if stat is None or contexts is None:
            self._unreadable += 1
            if self._unreadable >= self._max_failures:
                self._link(False, "unreadable", f"cannot read registration/PDP state for {self._unreadable} polls")
            return
        self._unreadable = 0
        if stat not in REGISTERED:
            self._link(False, "not_registered", f"BGAN {REGISTRATION.get(stat, f'registration state {stat}')}")
        elif not any(contexts.values()):
            self._link(False, "no_pdp", "BGAN registered but no PDP context active")
        else:
            self._link(True, "ok", f"BGAN registered ({REGISTRATION[stat]}), PDP context active")

    def _link(self, up: bool, why: str, detail: str) -> None:
        if self._health == (up, why):
            return
        self._health = (up, why)
        self.counts["reported_up" if up else "reported_down"] += 1
        log.info("bgan %s link %s: %s", self.modem.id, "up" if up else "down", detail)
        self.ctx.publish(LinkHealth(self.modem.id, now_ms(), up, detail))

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.counts)
        if self._at is not None:  # the live line's counters on top of the runs before
            for k, v in self._at.stats.items():
                out[f"at_{k}"] = out.get(f"at_{k}", 0) + v
        if self._health is not None:
            out["link_up"] = self._health[0]
        return out
