"""Modbus power driver: charge controllers, battery monitors and GX devices over Modbus RTU or TCP.

One driver instance serves one line (`serial:///dev/...?baud=115200` for
RTU, `tcp://host:port` for Modbus TCP) and every device on it, told apart
by `options.unit` (the slave id). Each device's register map is its
profile (`profile: modbus/epever_tracer.yaml`): what to read, how to scale
it, and which normalized names the values get. The units are polled in
turn, each at its own `poll_s`, one request per contiguous register block;
each request has its own timeout, so a dead unit costs the others one
timeout per retry, and it is retried with backoff once it is offline.

Output per poll: Telemetry (battery_v, battery_a, soc_pct, pv_w, ...), a
StatusUpdate when something changed (charger stage and fault; `modbus`:
unit, counted timeouts, CRC errors and exception responses, the last
error and registers the unit refuses), and events from the kit's
thresholds with hysteresis (thresholds.py). When no unit on the line
answers, or the line closes, `run()` raises and the supervisor reopens it
with backoff.

Settings (`fieldgw config audit|apply`): the map's writable holding
registers with a `value` (settings.py). They are read and written through
the same line lock as the polls, so a write never lands between a request
and its answer on an RTU bus; each request has the unit's timeout, and a
unit that is offline is refused at once with its last error. When a unit
comes online its settings are audited and drift is reported the way every
driver reports it (`Driver.report_config_drift`: status `config`, a
`config_drift` event), never corrected.

Options per device: `unit` (slave id; default the map's `default_unit`),
`poll_s` (5), `timeout_s` per request (1), `max_failures` polls without an
answer before the unit is offline (3), `retry_max_s` the longest wait
between retries of an offline unit (60), `thresholds` (thresholds.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any, ClassVar

from drivers.modbus_power import settings
from drivers.modbus_power.link import SCHEMES, Answer, CrcWatch, open_client, parse_link_url, read_block, write_block
from drivers.modbus_power.maps import Block, RegisterMap, check_map
from drivers.modbus_power.thresholds import check_thresholds
from drivers.modbus_power.unit import Unit
from gateway.driver_api import CommandError, ConfigDiff, DeviceSpec, Driver, DriverContext, LinkSpec
from gateway.model import StatusUpdate, Telemetry, now_ms

log = logging.getLogger(__name__)

Loc = tuple[str | int, ...]
_NUMBERS: dict[str, tuple[float, float]] = {"poll_s": (0.1, 86400.0), "timeout_s": (0.05, 60.0),
                                            "retry_max_s": (0.1, 3600.0)}
_INTS: dict[str, tuple[int, int]] = {"max_failures": (1, 100)}
_KNOWN = {"unit", "thresholds", *_NUMBERS, *_INTS}
FRAME_OUTCOMES = ("requests", "answers", "timeouts", "crc_errors", "exceptions", "bad_answers")


def _map_of(dev: DeviceSpec) -> RegisterMap:
    if not dev.profile:
        raise ValueError(f"{dev.id}: a modbus_power device needs its register map as profile (modbus/MODEL.yaml)")
    return RegisterMap.from_profile(dev.profile)


class ModbusPowerDriver(Driver):
    name: ClassVar[str] = "modbus_power"
    default_kind: ClassVar[str] = "power"
    transport_schemes: ClassVar[tuple[str, ...]] = SCHEMES

    def __init__(self, link: LinkSpec, ctx: DriverContext) -> None:
        super().__init__(link, ctx)
        self.url = parse_link_url(link.transport)
        self.units = [Unit(dev, _map_of(dev)) for dev in link.devices]
        self.by_id = {u.id: u for u in self.units}
        self.settings = {u.id: settings.setting_blocks(u.map) for u in self.units}
        self.counts: Counter[str] = Counter()
        self._crc: CrcWatch | None = None
        self._client: Any = None
        self._lock = asyncio.Lock()  # one request at a time on the line: polls, setting reads and writes
        self._audits: set[asyncio.Task[Any]] = set()

    # -- kit checks ------------------------------------------------------------------------
    @classmethod
    def check_device(cls, options: dict[str, Any], transport: str) -> list[tuple[Loc, str]]:
        problems: list[tuple[Loc, str]] = []
        serial = transport.startswith("serial:")
        try:
            parse_link_url(transport)
        except ValueError as exc:
            problems.append(((), f"transport {transport!r}: {exc}"))
        for name in sorted(set(options) - _KNOWN):
            problems.append(((name,), f"unknown option {name!r}; the modbus_power driver takes {', '.join(sorted(_KNOWN))}"))
        lo_unit, hi_unit = (1, 247) if serial else (0, 255)
        unit = options.get("unit")
        if unit is not None and (not isinstance(unit, int) or isinstance(unit, bool) or not lo_unit <= unit <= hi_unit):
            problems.append((("unit",), f"the unit (slave) id: a whole number {lo_unit}..{hi_unit}"))
        for name, (lo, hi) in _NUMBERS.items():
            v = options.get(name)
            if name in options and (isinstance(v, bool) or not isinstance(v, int | float) or not lo <= v <= hi):
                problems.append(((name,), f"{name} must be a number {lo:g}..{hi:g} (seconds)"))
        for name, (ilo, ihi) in _INTS.items():
            v = options.get(name)
            if name in options and (isinstance(v, bool) or not isinstance(v, int) or not ilo <= v <= ihi):
                problems.append(((name,), f"{name} must be a whole number {ilo}..{ihi}"))
        problems.extend((("thresholds", *loc), msg) for loc, msg in check_thresholds(options.get("thresholds")))
        return problems

    @classmethod
    def check_link(cls, devices: list[dict[str, Any]]) -> list[tuple[int, Loc, str]]:
        problems: list[tuple[int, Loc, str]] = []
        seen: dict[Any, str] = {}
        for i, dev in enumerate(devices):
            if not dev.get("profile"):
                problems.append((i, (), "a modbus_power device names its register map: profile: modbus/MODEL.yaml"))
            unit = (dev.get("options") or {}).get("unit")
            if unit in seen:
                what = f"unit {unit}" if unit is not None else "the map's default unit (no options.unit)"
                problems.append((i, ("unit",), f"{what} is also {seen[unit]!r} on {dev.get('transport')}: "
                                                "each device on one line needs its own unit id"))
            else:
                seen[unit] = dev.get("id", f"#{i}")
        return problems

    @classmethod
    def check_profile(cls, profile: dict[str, Any]) -> list[str]:
        return check_map(profile)

    # -- the line ------------------------------------------------------------------------
    async def run(self) -> None:
        timeout = max(u.timeout_s for u in self.units) + 1.0  # pymodbus's own wait: always longer than ours
        self._client, self._crc = await open_client(self.url, timeout)
        self.counts["opened"] += 1
        for unit in self.units:
            unit.reset_link()
        try:
            await self._serve()
        finally:
            for task in list(self._audits):
                task.cancel()
            self._client.close()
            self._client = None
            for unit in self.units:
                unit.online = False

    async def _request(self, unit: Unit, block: Block, words: list[int] | None = None) -> Answer:
        """Read `block` (or, with `words`, write them from its address) on the line, counted for `unit`;
        ConnectionError when the line is gone."""
        async with self._lock:
            if self._client is None:
                raise ConnectionError(f"the Modbus line {self.url} is closed")
            if words is None:
                ans = await read_block(self._client, unit.unit, block, unit.timeout_s, self._crc)
            else:
                ans = await write_block(self._client, unit.unit, block.address, words, unit.timeout_s, self._crc)
        unit.count(ans)
        return ans

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            unit = min(self.units, key=lambda u: u.next_due)
            delay = unit.next_due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            started = loop.time()
            values, heard = await self._read(unit)
            gone = unit.polled(started, loop.time(), heard)
            if heard:
                self._take(unit, values)
            else:
                self._publish_status(unit, {})
            if gone is not None:
                log.info("%s offline: %s", unit.id, gone)
                self.ctx.set_online(unit.id, False, gone)
            if all(u.given_up for u in self.units):
                raise ConnectionError(f"no unit answers on {self.url}: {unit.last_error}")

    async def _read(self, unit: Unit) -> tuple[dict[str, float], bool]:
        """One poll of one unit: its decoded values and whether it answered at all."""
        values: dict[str, float] = {}
        heard = False
        for block in list(unit.blocks):
            ans = await self._request(unit, block)
            if ans.words is not None:
                heard = True
                values.update(block.decode(ans.words))
            elif ans.heard:
                heard = True
                if ans.exception_code == 2:
                    unit.refused(block, ans)
            else:
                # No valid answer (timeout, CRC error, a mismatched answer): this unit is not asked again in
                # this poll. A dead unit costs one timeout, and on RTU (no transaction ids) a late answer can
                # never be taken for the answer to this unit's next block (0x311A+1 and 0x3201+1 look alike).
                break
        return values, heard

    def _take(self, unit: Unit, values: dict[str, float]) -> None:
        ts = now_ms()
        if not unit.online:
            unit.online = True
            self.ctx.set_online(unit.id, True, f"unit {unit.unit} answering on {self.url}")
            if self.settings[unit.id]:
                task = asyncio.get_running_loop().create_task(self.report_config_drift(unit.id))
                self._audits.add(task)
                task.add_done_callback(self._audits.discard)
        telemetry, status = unit.split_values(values)
        events = unit.alarms.evaluate(telemetry, status)
        status["alarms"] = unit.alarms.active()
        if telemetry:
            self.ctx.publish(Telemetry(unit.id, ts, telemetry))
        self._publish_status(unit, status)
        for event in events:
            log.info("%s: %s", unit.id, event.text)
            self.ctx.publish(event)

    def _publish_status(self, unit: Unit, status: dict[str, Any]) -> None:
        status["modbus"] = unit.comm_status(str(self.url))
        changed = unit.status_changes(status)
        if changed:
            self.ctx.publish(StatusUpdate(unit.id, now_ms(), changed))

    # -- settings (fieldgw config audit / apply) -----------------------------------------------
    def _settings_of(self, device_id: str) -> tuple[Unit, list[Block]]:
        unit = self.by_id.get(device_id)
        if unit is None:
            raise CommandError("rejected", f"no device {device_id!r} on {self.url}")
        if unit.given_up:
            raise CommandError("failed", f"unit {unit.unit} is offline: {unit.last_error}")
        return unit, self.settings[device_id]

    async def _settings_io(self, device_id: str, apply: bool) -> list[ConfigDiff]:
        unit, blocks = self._settings_of(device_id)

        async def read(block: Block) -> Answer:
            return await self._request(unit, block)

        async def write(block: Block, words: list[int]) -> Answer:
            return await self._request(unit, block, words)

        try:
            if apply:
                await settings.apply(blocks, read, write)
            return await settings.audit(blocks, read)
        except ConnectionError as exc:
            raise CommandError("failed", f"unit {unit.unit}: {exc}") from exc

    async def config_audit(self, device_id: str) -> list[ConfigDiff]:
        return await self._settings_io(device_id, apply=False)

    async def config_apply(self, device_id: str) -> list[ConfigDiff]:
        return await self._settings_io(device_id, apply=True)

    def stats(self) -> dict[str, Any]:
        """Requests and their outcomes on the line (`frames`, as metrics read them) and per unit."""
        frames = {k: sum(u.counts[k] for u in self.units) for k in FRAME_OUTCOMES}
        return {"line": str(self.url), "opened": self.counts["opened"], "frames": frames,
                "crc_errors_on_line": self._crc.count if self._crc is not None else 0,
                "units": {u.id: u.stats() for u in self.units}}
