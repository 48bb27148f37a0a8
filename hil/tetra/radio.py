"""The simulated TETRA radio: PEI on a pty, team radios it hears, SDS in both directions.

Output discipline: a command's echo and response are written in one piece; an
unsolicited line (+CTSDSR, +CREG, injected noise) waits while a command is
queued, being processed or its PDU body is being typed, then goes out.
Received SDS reach the PEI only when registered and when the host has routed
that protocol id to the TE with `AT+CTSP=1,3,<pid>` (a real radio keeps them
otherwise).
Each team radio sends short LIP reports every `Team.lip_interval` seconds
(`--lip-interval` at start) and answers the LIP reporting-control requests the
host sends it (basic location parameters: set / report them back, lipctl.py)
after `--report-delay`; a set changes its interval from then on.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..serialport import PtyPort
from . import lip, lipctl, sds
from .at import Commands, Outgoing, RadioState
from .peiinput import PeiInput, Unit
from .team import Team

log = logging.getLogger(__name__)

LAYER_SDS_TL = 3
SEND_DELAY_S = 0.05        # the radio takes a moment to put an SDS on air before +CMGS
PDU_TIMEOUT_S = 10.0       # a CMGS body without Ctrl-Z is abandoned after this
TEAM_TEXTS = ("Position OK, moving on", "收到，正在前往集合点", "Need water at checkpoint", "已到达指定位置")


@dataclass
class RadioConfig:
    link: Path
    issi: int = 2001
    teams: list[Team] = field(default_factory=list)
    groups: set[int] = field(default_factory=set)
    lip_interval: float = 5.0
    text_interval: float = 0.0
    report_delay: float = 0.2
    csq: int = 25
    creg: int = 1


class Radio:
    def __init__(self, cfg: RadioConfig) -> None:
        self.cfg = cfg
        self.state = RadioState(issi=cfg.issi, csq=cfg.csq, creg=cfg.creg)
        self.port = PtyPort(cfg.link, self._on_data, on_unplug=self._on_unplug)
        self.input = PeiInput()
        self.commands = Commands(self.state, self._accept)
        self.teams: dict[int, Team] = {t.issi: t for t in cfg.teams}
        self.received: list[dict[str, Any]] = []
        self.counters: Counter[str] = Counter()
        self._units: asyncio.Queue[Unit] = asyncio.Queue()
        self._processing = False
        self._held: deque[bytes] = deque()
        self._after_response: list[Callable[[], None]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._timers: set[asyncio.TimerHandle] = set()
        self._pdu_timer: asyncio.TimerHandle | None = None
        self._refs = 0
        self._lip_wake: dict[int, asyncio.Event] = {t: asyncio.Event() for t in self.teams}
        for t in self.teams.values():
            t.set_lip_interval(cfg.lip_interval)

    # life cycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        self.port.plug()
        now = time.monotonic()
        for t in self.teams.values():
            t.updated = now
        self._tasks.append(asyncio.create_task(self._worker(), name="tetra-pei"))
        interval = self.cfg.lip_interval
        for k, team in enumerate(self.teams.values()):  # spread the teams over the interval
            first = min(interval, 1.0) + interval * k / len(self.teams)
            self._tasks.append(asyncio.create_task(self._lip_loop(team, first), name=f"tetra-lip-{team.issi}"))
        if self.cfg.text_interval > 0 and self.teams:
            self._tasks.append(asyncio.create_task(self._text_loop(), name="tetra-text"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        self.port.unplug_now()

    # host → radio -----------------------------------------------------------------------------
    def _on_data(self, data: bytes) -> None:
        for unit in self.input.feed(data):
            self._units.put_nowait(unit)
        self._arm_pdu_timer()

    def _arm_pdu_timer(self) -> None:
        if self.input.in_pdu and self._pdu_timer is None:
            self._pdu_timer = asyncio.get_running_loop().call_later(PDU_TIMEOUT_S, self._pdu_timeout)
        elif not self.input.in_pdu and self._pdu_timer is not None:
            self._pdu_timer.cancel()
            self._pdu_timer = None

    def _pdu_timeout(self) -> None:
        self._pdu_timer = None
        unit = self.input.timeout()
        if unit is not None:
            self._units.put_nowait(unit)

    def _on_unplug(self) -> None:
        self.input.reset()
        self._arm_pdu_timer()
        self.counters["dropped_unplugged"] += len(self._held)
        self._held.clear()

    async def _worker(self) -> None:
        while True:
            unit = await self._units.get()
            self._processing = True
            try:
                if self.state.echo and unit.raw:
                    self.port.write(unit.raw)
                lines = self.commands.run(unit)
                if unit.pdu is not None and lines and lines[-1] == "OK":
                    await asyncio.sleep(SEND_DELAY_S)
                if lines:
                    self.port.write(b"".join(b"\r\n" + line.encode("latin-1") + b"\r\n" for line in lines))
                for action in self._after_response:
                    action()
            finally:
                self._after_response.clear()
                self._processing = False
            self._flush()

    def _accept(self, out: Outgoing) -> int:
        """An SDS the radio accepted from the host: record it, plan the delivery reports."""
        info = sds.decode(out.pdu, out.bits)
        team = self.teams.get(out.to)
        to_kind = "team" if team else "group" if out.to in self.cfg.groups else "unknown"
        ai_service = self.state.ctsds[0] if self.state.ctsds else None
        self.received.append({
            "ts": time.time(), "to": out.to, "to_kind": to_kind, "bits": out.bits, "pdu_hex": out.pdu_hex,
            "pid": info.pid, "kind": info.kind, "text": info.text, "coding": info.coding,
            "report_requested": info.report_requested, "rr": info.rr, "ref": info.ref, "ai_service": ai_service,
            **({"lip": info.lip} if info.lip else {}),
            **({"lip_control": info.lip_control.to_json()} if info.lip_control else {})})
        self.counters["sds_from_host"] += 1
        ref = info.ref if info.ref is not None else 0
        if team is not None and info.kind in ("transfer", "simple"):
            team.texts_received += 1
        if info.pid == sds.PID_LIP:
            self._lip_from_host(team, to_kind, info)
        statuses: list[int] = []
        if info.report_requested and to_kind == "team":
            statuses = {sds.RR_RECEIPT: [sds.STATUS_RECEIVED], sds.RR_CONSUMED: [sds.STATUS_CONSUMED],
                        sds.RR_BOTH: [sds.STATUS_RECEIVED, sds.STATUS_CONSUMED]}[info.rr]
        elif info.report_requested and to_kind == "unknown":
            statuses = [sds.STATUS_FAILED]
        for i, status in enumerate(statuses):
            self._after_response.append(lambda i=i, status=status: self._later(
                self.cfg.report_delay * (i + 1), self.deliver, out.to, sds.report(ref, status)))
        return ref

    def _lip_from_host(self, team: Team | None, to_kind: str, info: sds.SdsInfo) -> None:
        """A LIP PDU the host sent: a team radio answers a reporting-control request; the rest is counted."""
        ctl = info.lip_control
        if ctl is None:
            self.counters["lip_short_from_host" if info.kind == "lip" else "lip_bad_from_host"] += 1
            return
        if ctl.response or ctl.ext not in (lipctl.EXT_BASIC_PARAMS, lipctl.EXT_REPORT_BASIC_PARAMS):
            self.counters["lip_control_ignored"] += 1  # not a request a team radio answers here
            return
        if team is None:  # a talk group or nobody: no answer (the simulator knows no group members)
            self.counters[f"lip_control_to_{to_kind}"] += 1
            return
        team.lip_requests += 1
        if team.lip_mute > 0:
            team.lip_mute -= 1
            self.counters["lip_control_unanswered"] += 1
            return
        result = team.lip_refuse  # 0 unless the control port told it to refuse everything
        if ctl.ext == lipctl.EXT_BASIC_PARAMS:
            assert ctl.min_interval_code is not None and ctl.report_type is not None
            seconds = lipctl.interval_seconds(ctl.min_interval_code)
            if not result and (seconds is None or ctl.report_type not in team.report_types_supported):
                result = lipctl.RESULT_UNSPECIFIED_ERROR  # the spec names no code for a value it cannot take
            if not result and seconds is not None:
                self.set_lip_interval(team.issi, seconds)
                team.report_type = ctl.report_type
            pdu, bits = lipctl.basic_params_response(result)
        else:
            pdu, bits = lipctl.report_params_response(result, team.min_interval_code, team.report_type)
        if result:
            team.lip_refused += 1
        self.counters["lip_control_answered"] += 1
        issi = team.issi
        self._after_response.append(lambda: self._later(self.cfg.report_delay, self.deliver, issi, pdu, bits))

    # radio → host -----------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self._processing or self.input.in_pdu or not self._units.empty()

    def emit(self, data: bytes) -> str:
        """Write unsolicited output now, or hold it until no command is in progress."""
        if not self.port.plugged:
            self.counters["dropped_unplugged"] += 1
            return "unplugged"
        if self.busy:
            self._held.append(data)
            return "held"
        self.port.write(data)
        return "sent"

    def _flush(self) -> None:
        while self._held and not self.busy:
            self.port.write(self._held.popleft())

    def _later(self, delay: float, fn: Callable[..., Any], *args: Any) -> None:
        def fire() -> None:
            self._timers.discard(handle)
            fn(*args)
        handle = asyncio.get_running_loop().call_later(delay, fire)
        self._timers.add(handle)

    def deliver(self, calling: int, pdu: bytes, bits: int | None = None, called: int | None = None) -> str:
        """An SDS heard on air for this radio → `+CTSDSR` on the PEI (if routed there)."""
        bits = len(pdu) * 8 if bits is None else bits
        if not self.state.registered:
            self.counters["lost_not_registered"] += 1
            return "not_registered"
        if not self.state.routed(LAYER_SDS_TL, pdu[0]):
            self.counters["not_routed"] += 1
            return "not_routed"
        called = self.state.issi if called is None else called
        line = f"\r\n+CTSDSR: 12,{calling},0,{called},0,{bits}\r\n{pdu.hex().upper()}\r\n"
        result = self.emit(line.encode("ascii"))
        if result != "unplugged":
            self.counters["sds_to_host"] += 1
        return result

    def send_lip(self, issi: int, lat: float | None = None, lon: float | None = None) -> dict[str, Any]:
        team = self.teams.get(issi)
        now = time.monotonic()
        if team is not None:
            team.advance(now)
            if lat is not None and lon is not None:
                team.place(lat, lon, now)
            team.lips_sent += 1
            loc = lip.ShortLocation(lat=team.lat, lon=team.lon, speed_kmh=team.speed_kmh, heading_deg=team.heading_deg)
        elif lat is not None and lon is not None:
            loc = lip.ShortLocation(lat=lat, lon=lon)
        else:
            raise ValueError(f"{issi} is not a team radio; give LAT LON")
        pdu = lip.encode(loc)
        return {"result": self.deliver(issi, pdu, lip.LIP_BITS), "pdu_hex": pdu.hex().upper(),
                "lat": loc.lat, "lon": loc.lon}

    def send_text(self, issi: int, text: str) -> dict[str, Any]:
        team = self.teams.get(issi)
        if team is not None:
            ref = team.next_ref()
            team.texts_sent += 1
        else:
            self._refs = self._refs % 255 + 1
            ref = self._refs
        pdu = sds.transfer(ref, text)
        return {"result": self.deliver(issi, pdu), "pdu_hex": pdu.hex().upper(), "coding": pdu[3], "ref": ref}

    def set_creg(self, stat: int) -> None:
        self.state.creg = stat
        if self.state.creg_n >= 1:
            self.emit(f"\r\n+CREG: {stat}\r\n".encode())

    def set_lip_interval(self, issi: int, seconds: float) -> None:
        """A team radio's periodic reporting interval (0 = none); the next report comes `seconds` from now."""
        self.teams[issi].set_lip_interval(seconds)
        self._lip_wake[issi].set()

    async def _lip_loop(self, team: Team, first: float) -> None:
        """One team radio's periodic LIP reports, every `team.lip_interval` seconds (none while it is 0)."""
        loop = asyncio.get_running_loop()
        wake = self._lip_wake[team.issi]
        due = loop.time() + first
        while True:
            interval = team.lip_interval
            try:
                if interval > 0:
                    await asyncio.wait_for(wake.wait(), max(0.0, due - loop.time()))
                else:
                    await wake.wait()
            except TimeoutError:
                self.send_lip(team.issi)
                due += interval
                if due <= loop.time():  # fell behind (a stalled loop): no burst to catch up
                    due = loop.time() + interval
                continue
            wake.clear()  # the interval changed
            due = loop.time() + team.lip_interval

    async def _text_loop(self) -> None:
        k = 0
        teams = list(self.teams)
        while True:
            await asyncio.sleep(self.cfg.text_interval)
            self.send_text(teams[k % len(teams)], f"{TEAM_TEXTS[k % len(TEAM_TEXTS)]} #{k + 1}")
            k += 1

    def stats(self) -> dict[str, Any]:
        s = self.state
        return {"issi": s.issi, "echo": s.echo, "routes": [[p, l1, l2] for (l1, l2), p in sorted(s.routes.items())],
                "ctsds": s.ctsds, "csq": s.csq, "creg": s.creg, "commands": self.commands.count,
                "command_errors": self.commands.errors, "received": len(self.received), "held": len(self._held),
                "in_pdu": self.input.in_pdu, **dict(self.counters)}
