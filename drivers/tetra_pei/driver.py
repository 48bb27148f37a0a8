"""TETRA PEI driver: one radio cabled to the gateway, the radios it hears as devices.

The cabled radio (the device without `options.address`) is the gateway's
radio modem: its signal and registration are its status. Every other device
on the link is a radio (`address`: ISSI) or a talk group (`address`: GSSI,
`group: true`); a talk group with `members: ["1000-1099", ...]` makes every
radio heard from that range a device of its own (`{group id}-{ISSI}`) without
listing each in the kit. LIP short location reports become Positions (`source: lip`),
text SDS become `message` events, and the `text` command sends an SDS-TL
text with `AT+CMGS`, `sent` when the radio takes it and `done` when the
called radio's delivery report comes back.

A team radio (or a talk group's members) with a LIP reporting profile
(`firmware_configs/tetra/`, `lip_control.py`) has its basic location parameters
(minimum reporting interval, report type) set by `fieldgw config apply` and read
back by `fieldgw config audit` with LIP long PDUs over the same SDS path; the
running gateway reads a profiled radio back when the link starts and whenever
it is heard after being silent (stale, replugged), and reports drift
(`Driver.report_config_drift`). A radio that answers is online, as if heard.
"""

from __future__ import annotations

import asyncio
import binascii
import logging
import re
from typing import Any, ClassVar

from drivers.common.at import AtChannel, AtError
from drivers.common.terminal_driver import TerminalDriver
from drivers.tetra_pei import lip, lip_control, sds
from drivers.tetra_pei.lip_control import BasicParams, LipControlError, LipProfile
from gateway.driver_api import CommandError, ConfigDiff, DeviceSpec, DriverContext, LinkSpec, OnSent, TextRoute
from gateway.model import Position, now_ms

log = logging.getLogger(__name__)

INIT_COMMANDS = ("AT+CTSP=1,3,130", "AT+CTSP=1,3,10", "AT+CTSP=1,2,20", "AT+CTSDS=12,0,0,0,1")
REGISTRATION = {0: "not registered", 1: "registered", 2: "searching", 3: "registration denied"}
_CTSDSR = re.compile(r"^\+CTSDSR:\s*(\d+),(\d+),(\d+),(\d+),(\d+),(\d+)")
_CSQ = re.compile(r"^\+CSQ:\s*(\d+),(\d+)")
_CREG = re.compile(r"^\+CREG:\s*(\d+),(\d+)")
_CMGS = re.compile(r"^\+CMGS:\s*(\d+)(?:,(\d+))?")
_CNUMF = re.compile(r"^\+CNUMF:\s*\d+,(\d+)")
_HEX_LINE = re.compile(r"[0-9A-Fa-f]+")
KMH = 1 / 3.6
LIP_ATTEMPTS = 3  # a LIP control request is sent this many times before "no answer" (docs/serial-protocols.md)


def member_ranges(value: Any) -> list[tuple[int, int]]:
    """A talk group's `members`: ISSIs and "LOW-HIGH" ranges → inclusive ranges; ValueError explains."""
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        text = str(item)
        low, _, high = text.partition("-")
        if not low.isdigit() or (high and not high.isdigit()):
            raise ValueError(f"members: {text!r} is not an ISSI or a LOW-HIGH range of ISSIs")
        lo, hi = int(low), int(high or low)
        if not 0 < lo <= hi < 1 << 24:
            raise ValueError(f"members: {text!r} must be ISSIs 1..16777215, low before high")
        out.append((lo, hi))
    return out


class TetraPeiDriver(TerminalDriver):
    name: ClassVar[str] = "tetra_pei"
    default_kind: ClassVar[str] = "radio"
    address_pattern: ClassVar[str] = r"\d{1,8}"
    terminal_name: ClassVar[str] = "TETRA radio"
    default_baud: ClassVar[int] = 38400
    float_options: ClassVar[dict[str, tuple[float, float]]] = {
        "stale_s": (1.0, 86400.0), "poll_s": (1.0, 3600.0), "report_timeout_s": (1.0, 600.0),
        "lip_response_s": (0.2, 120.0)}

    def __init__(self, link: LinkSpec, ctx: DriverContext) -> None:
        super().__init__(link, ctx)
        self._at: AtChannel | None = None
        self._next_ref = 0
        self._reports: dict[tuple[str, int], asyncio.Future[sds.DeliveryReport]] = {}  # (called SSI, reference)
        self._poll_s = self.option("poll_s", 10.0)
        self._report_timeout_s = self.option("report_timeout_s", 30.0)
        self.own_issi: str | None = None
        self._lip_response_s = self.option("lip_response_s", 8.0)
        self._lip_waiting: dict[tuple[str, int], asyncio.Future[lip_control.Response]] = {}  # (ISSI, extension)
        self._lip_locks: dict[str, asyncio.Lock] = {}  # one LIP control exchange per team radio at a time
        self._audits: dict[str, asyncio.Task[Any]] = {}  # device id → its read-back in flight
        self._groups = [(d, member_ranges(d.options.get("members"))) for d in link.devices
                        if d.options.get("group") and d.options.get("members")]

    @classmethod
    def check_device(cls, options: dict[str, Any], transport: str) -> list[tuple[tuple[str | int, ...], str]]:
        problems = super().check_device(options, transport)
        if "members" in options:
            if not options.get("group"):
                problems.append((("members",), "members belong to a talk group: set group: true and its GSSI as address"))
            try:
                member_ranges(options["members"])
            except ValueError as exc:
                problems.append((("members",), str(exc)))
        return problems

    @classmethod
    def check_profile(cls, profile: dict[str, Any]) -> list[str]:
        return lip_control.check_profile(profile)

    def discover(self, address: str) -> DeviceSpec | None:
        """A radio the kit does not list, heard from a talk group's member range: a device of its own."""
        issi = int(address)
        for group, ranges in self._groups:
            if any(lo <= issi <= hi for lo, hi in ranges):
                return self.adopt(f"{group.id}-{issi}"[:63], "radio", f"{group.name} · {issi}", address, member_of=group.id)
        return None

    # -- dispatch and commands ---------------------------------------------------
    def text_route(self, device_id: str) -> TextRoute | None:
        addr = self.terminals.address(device_id)
        if addr is None:
            return None
        dev = self.terminals.device_at(addr)
        group = bool(dev is not None and dev.options.get("group"))
        return TextRoute("tetra_sds", self.modem.id, addr, sds.MAX_TEXT_BYTES, sds.text_size, group=group)

    def command_timeout(self, command: str) -> float | None:
        return self._report_timeout_s + 15.0 if command == "text" else None

    def check_command(self, device_id: str, command: str, args: dict[str, Any]) -> str | None:
        problem = super().check_command(device_id, command, args)
        if problem is None and command == "text" and sds.text_size(args["text"]) > sds.MAX_TEXT_BYTES:
            return f"one SDS carries {sds.MAX_TEXT_BYTES} bytes ({sds.MAX_TEXT_BYTES // 2} Chinese characters); this text takes {sds.text_size(args['text'])}"
        return problem

    async def execute(self, device_id: str, command: str, args: dict[str, Any], on_sent: OnSent) -> str:
        if command != "text":
            raise CommandError("rejected", f"{self.name} takes only text")
        self.require_connected()
        addr = self.resolve_to(args["to"])
        dev = self.terminals.device_at(addr)
        group = bool(dev is not None and dev.options.get("group"))
        self._next_ref = self._next_ref % 255 + 1
        ref = self._next_ref
        try:
            pdu = sds.build_transfer(args["text"], ref, report=0 if group else sds.REPORT_RECEIPT)
        except sds.SdsError as exc:
            raise CommandError("rejected", str(exc)) from None
        waiter: asyncio.Future[sds.DeliveryReport] = asyncio.get_running_loop().create_future()
        if not group:
            self._reports[(addr, ref)] = waiter
        try:
            assert self._at is not None
            await self._at.command(f"AT+CMGS={addr},{len(pdu) * 8}", timeout=10.0, terminator=b"\r\n",
                                   payload=binascii.hexlify(pdu).upper() + b"\x1a")
            self.counts["sds_sent"] += 1
            on_sent()
            if group:
                return f"accepted by the radio for talk group {addr} (groups give no delivery report)"
            try:
                async with asyncio.timeout(self._report_timeout_s):
                    report = await waiter
            except TimeoutError:
                raise CommandError("failed", f"no delivery report from {addr} within {self._report_timeout_s:g} s") from None
        except AtError as exc:
            raise CommandError("failed", f"radio refused the SDS: {exc.result}") from None
        except ConnectionError as exc:
            raise CommandError("failed", f"radio line lost while sending: {exc}") from None
        finally:
            self._reports.pop((addr, ref), None)
        if not report.delivered:
            raise CommandError("failed", f"{addr} did not take the SDS (delivery status 0x{report.status:02x})")
        return f"delivered to {addr} (SDS-TL report 0x{report.status:02x})"

    # -- the link ------------------------------------------------------------------
    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        at = AtChannel(reader, writer, self._unsolicited, ("+CTSDSR:",), {"+CTSDSR:": 1}, _HEX_LINE.fullmatch)
        self._at = at
        serving = asyncio.create_task(at.serve(), name=f"tetra-read:{self.modem.id}")
        try:
            await self._initialise(at)
            self.ctx.set_online(self.modem.id, True, f"radio on {self.url}")
            for dev in self.link.devices:  # a talk group never speaks itself: it is reachable while the radio is
                if dev.options.get("group"):
                    self.ctx.set_online(dev.id, True, f"talk group reachable through {self.modem.id}")
                elif dev is not self.modem and self._lip_profile(dev) is not None:
                    self._audit(dev.id)  # the read-back at start; an answer also shows the radio is there
            helpers = [asyncio.create_task(self._poll(at)), asyncio.create_task(self.expire_loop())]
            try:
                await serving
            finally:
                for t in helpers:
                    t.cancel()
                await asyncio.gather(*helpers, return_exceptions=True)
        finally:
            serving.cancel()
            await asyncio.gather(serving, return_exceptions=True)
            self._at = None
            self.forget_remotes()
            for task in self._audits.values():  # they would only fail now: the line is gone
                task.cancel()
            for fut in (*self._reports.values(), *self._lip_waiting.values()):
                if not fut.done():
                    fut.set_exception(ConnectionError("radio line lost"))
            self.counts.update({f"at_{k}": v for k, v in at.stats.items()})

    async def _initialise(self, at: AtChannel) -> None:
        for cmd in ("ATE0", *INIT_COMMANDS):
            try:
                await at.command(cmd, timeout=3.0)
            except AtError as exc:
                if exc.result.startswith("no answer"):
                    raise ConnectionError(f"the radio does not answer {cmd}") from None
                self.counts["cme_errors"] += 1  # refused: say so and carry on (the spec's rule)
                self.event(self.modem.id, "radio_error", "warning", f"radio refused {cmd}: {exc.result}")
        try:
            for line in await at.command("AT+CNUMF?", timeout=3.0):
                if m := _CNUMF.match(line):
                    self.own_issi = m.group(1)
        except AtError:
            self.counts["cme_errors"] += 1

    async def _poll(self, at: AtChannel) -> None:
        last: dict[str, Any] = {}
        while True:
            status: dict[str, Any] = {}
            values: dict[str, float] = {}
            try:
                for line in await at.command("AT+CSQ?", timeout=5.0):
                    if (m := _CSQ.match(line)) and int(m.group(1)) != 99:
                        values["rssi_dbm"] = status["rssi_dbm"] = -113 + 2 * int(m.group(1))
                for line in await at.command("AT+CREG?", timeout=5.0):
                    if m := _CREG.match(line):
                        status["registration"] = REGISTRATION.get(int(m.group(2)), f"state {m.group(2)}")
            except AtError as exc:
                self.counts["poll_errors"] += 1
                log.debug("radio poll failed: %s", exc)
            if self.own_issi:
                status["issi"] = self.own_issi
            if status and status != last:
                if last.get("registration") != status.get("registration") and "registration" in last:
                    sev = "info" if status.get("registration") == "registered" else "warning"
                    self.event(self.modem.id, "registration", sev, f"radio {status.get('registration')}")
                self.status(status, values)
                last = status
            await asyncio.sleep(self._poll_s)

    # -- what the radio hears --------------------------------------------------
    def _unsolicited(self, lines: list[str]) -> None:
        m = _CTSDSR.match(lines[0])
        if m is None or len(lines) < 2:
            self.counts["bad_sds_header"] += 1
            return
        if m.group(1) != "12":  # 13 = status SDS (a pre-coded number, not SDS-TL): not text, not LIP
            self.counts["status_sds"] += 1
            return
        calling, called, bits = m.group(2), m.group(4), int(m.group(6))
        try:
            pdu = binascii.unhexlify(lines[1].strip())
        except (binascii.Error, ValueError):
            self.counts["bad_sds_hex"] += 1
            return
        if bits > len(pdu) * 8 or bits < 8:
            self.counts["bad_sds_length"] += 1
            return
        self.counts["sds_received"] += 1
        if lip_control.is_control(pdu):
            self._lip_response(calling, pdu, bits)
        elif pdu[0] == lip.PID_LIP:
            self._location(calling, pdu)
        elif pdu[0] in (sds.PID_TEXT, sds.PID_SIMPLE_TEXT):
            self._text(calling, called, pdu)
        else:
            self.counts["sds_unknown_pid"] += 1

    def _location(self, calling: str, pdu: bytes) -> None:
        try:
            report = lip.decode(pdu)
        except lip.LipError:
            self.counts["bad_lip"] += 1
            return
        self.counts["lip_reports"] += 1
        dev = self.heard(calling)
        fix = "none" if report.error_code == 7 else "2d"
        speed = None if report.speed_kmh is None else report.speed_kmh * KMH
        if dev is None:
            self.event(self.modem.id, "unlisted_radio", "info",
                       f"position from radio {calling}, which the kit does not list",
                       issi=calling, lat=report.lat, lon=report.lon)
            return
        self.ctx.publish(Position(dev.id, now_ms(), report.lat, report.lon, None, report.heading_deg, speed, fix, "lip"))

    def _text(self, calling: str, called: str, pdu: bytes) -> None:
        try:
            msg = sds.parse(pdu)
        except sds.SdsError:
            self.counts["bad_text_sds"] += 1
            return
        if isinstance(msg, sds.DeliveryReport):
            self.counts["delivery_reports"] += 1
            fut = self._reports.get((calling, msg.ref))  # a report counts only from the radio it was sent to
            if fut is not None and not fut.done():
                fut.set_result(msg)
            return
        self.counts["texts_received"] += 1
        dev = self.heard(calling)
        self.event(dev.id if dev else self.modem.id, "message", "info", msg.text,
                   sender=calling, to=called, channel="tetra_sds")

    def _lip_response(self, calling: str, pdu: bytes, bits: int) -> None:
        """A LIP PDU with extension: the response to a control request in flight, else counted and dropped."""
        try:
            resp = lip_control.parse_response(pdu, bits)
        except LipControlError:
            self.counts["lip_control_unhandled"] += 1
            return
        fut = self._lip_waiting.get((calling, resp.extension))
        if fut is None or fut.done():
            self.counts["lip_control_unexpected"] += 1
            return
        self.counts["lip_control_responses"] += 1
        super().heard(calling)  # it answered: it is there (and is being read back already)
        fut.set_result(resp)

    def heard(self, address: str) -> DeviceSpec | None:
        """As TerminalDriver.heard; a profiled radio heard after a silence is read back (drift reported)."""
        dev = self.terminals.device_at(address)
        fresh = dev is None or dev.id not in self._heard
        dev = super().heard(address)
        if dev is not None and fresh and not dev.options.get("group") and self._lip_profile(dev) is not None:
            self._audit(dev.id)
        return dev

    def _audit(self, device_id: str) -> None:
        """Read a profiled team radio back and report drift (unless that is under way already)."""
        if device_id in self._audits:
            return
        task = asyncio.get_running_loop().create_task(self.report_config_drift(device_id))
        self._audits[device_id] = task
        task.add_done_callback(lambda t: self._audits.pop(device_id, None) if self._audits.get(device_id) is t else None)

    # -- LIP reporting control (fieldgw config audit / apply) ---------------------------
    def _lip_profile(self, dev: DeviceSpec) -> LipProfile | None:
        """The device's LIP settings: its own profile, or (a talk group's member) its group's."""
        if dev.profile is None and dev.options.get("member_of"):
            group = next((d for d in self.link.devices if d.id == dev.options["member_of"]), None)
            return LipProfile.of(group.profile) if group is not None else None
        return LipProfile.of(dev.profile)

    def _lip_targets(self, device_id: str) -> list[tuple[str, str, LipProfile]]:
        """(diff name prefix, ISSI, settings) of each team radio behind `device_id`."""
        if device_id == self.modem.id:
            raise CommandError("rejected", f"{device_id} is the gateway's own radio: LIP reporting control is "
                                           "for the team radios it hears")
        addr = self.terminals.address(device_id)
        dev = None if addr is None else self.terminals.device_at(addr)
        if addr is None or dev is None:
            raise CommandError("rejected", f"no device {device_id!r} on {self.link.transport}")
        prof = self._lip_profile(dev)
        if prof is None:
            raise CommandError("rejected", f"{device_id} has no LIP reporting profile (protocol {lip_control.PROTOCOL})")
        if not dev.options.get("group"):
            return [("", addr, prof)]
        members = sorted((a, d) for a, d in self.terminals.by_address.items() if d.options.get("member_of") == dev.id)
        if not members:
            raise CommandError("failed", f"talk group {addr}: no member radio heard yet (a talk group is never sent "
                                         "LIP control; each member is read back when it is heard)")
        return [(f"{d.id}.", a, prof) for a, d in members]

    async def _lip_exchange(self, addr: str, request: bytes, extension: int) -> lip_control.Response:
        """Send one LIP control request to `addr` and wait for its response (LIP_ATTEMPTS tries)."""
        what = lip_control.EXTENSIONS[extension]
        async with self._lip_locks.setdefault(addr, asyncio.Lock()):
            for _ in range(LIP_ATTEMPTS):
                at = self._at  # set only while the line is served (connected)
                if at is None:
                    raise CommandError("failed", f"{self.terminal_name} {self.modem.id} is not connected")
                fut: asyncio.Future[lip_control.Response] = asyncio.get_running_loop().create_future()
                self._lip_waiting[(addr, extension)] = fut
                try:
                    await at.command(f"AT+CMGS={addr},{len(request) * 8}", timeout=10.0, terminator=b"\r\n",
                                     payload=binascii.hexlify(request).upper() + b"\x1a")
                    self.counts["lip_control_sent"] += 1
                    async with asyncio.timeout(self._lip_response_s):
                        return await fut
                except TimeoutError:
                    self.counts["lip_control_timeouts"] += 1
                except AtError as exc:
                    raise CommandError("failed", f"radio refused the LIP {what} request to {addr}: {exc.result}") from None
                except ConnectionError as exc:
                    raise CommandError("failed", f"radio line lost while asking {addr}: {exc}") from None
                finally:
                    if self._lip_waiting.get((addr, extension)) is fut:
                        del self._lip_waiting[(addr, extension)]
        raise CommandError("failed", f"no answer from {addr} to the LIP {what} request "
                                     f"({LIP_ATTEMPTS} attempts, {self._lip_response_s:g} s each)")

    async def _lip_read(self, addr: str) -> BasicParams:
        resp = await self._lip_exchange(addr, lip_control.report_request(), lip_control.EXT_REPORT_BASIC_PARAMS)
        if not resp.ok or resp.params is None:
            raise CommandError("failed", f"{addr} would not report its LIP basic location parameters: "
                                         f"{lip_control.result_name(resp.result)} (0x{resp.result:02x})")
        return resp.params

    async def config_audit(self, device_id: str) -> list[ConfigDiff]:
        diffs: list[ConfigDiff] = []
        for prefix, addr, prof in self._lip_targets(device_id):
            have = await self._lip_read(addr)
            diffs += [ConfigDiff(prefix + name, want, got) for name, want, got in prof.differences(have)]
        return diffs

    async def config_apply(self, device_id: str) -> list[ConfigDiff]:
        diffs: list[ConfigDiff] = []
        for prefix, addr, prof in self._lip_targets(device_id):
            complete = prof.min_interval_s is not None and prof.report_type is not None
            have = BasicParams(0, 0) if complete else await self._lip_read(addr)  # keep what the profile leaves out
            resp = await self._lip_exchange(addr, lip_control.set_request(prof.wanted(have)), lip_control.EXT_BASIC_PARAMS)
            if not resp.ok:
                raise CommandError("failed", f"{addr} refused the LIP basic location parameters: "
                                             f"{lip_control.result_name(resp.result)} (0x{resp.result:02x})")
            have = await self._lip_read(addr)
            diffs += [ConfigDiff(prefix + name, want, got) for name, want, got in prof.differences(have)]
        return diffs
