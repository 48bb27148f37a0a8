"""SNMP driver: routers, mesh radios, LTE modems and UPSes as `network` (or `power`) devices.

Transport `udp://HOST:PORT` (161). Each device is polled every `poll_s`
(drivers/snmp/agent.py): telemetry `uptime_s`, `if_<name>_in_bps` /
`_out_bps` from octet counters (rates.py: wraps and resets never give a
spike) and the profile's OIDs (profile.py, firmware_configs/snmp/); status
`sys_name`, `interfaces` (ifName → oper status) and `snmp` (state, last
error, OIDs the agent lacks, counters). Events: `interface` down (warning)
/ up (info) from polls and linkDown/linkUp traps, `snmp_trap` for other
notifications, `agent_unreachable` / `agent_reachable`.

A failed poll (timeout: agent down or, for v2c, a wrong community, which
agents drop silently; `auth`: v3 credentials refused) is counted and shown
in status at once, but the device goes offline (with an event) only after
`max_failures` in a row; then it is polled with backoff (poll_s doubling
up to `retry_max_s`, with jitter). `run()` itself only ends when a trap
address cannot be bound.

`trap_listen: udp://HOST:PORT` on a device opens one notification receiver
per address in this driver (v2c with the device's community; v3 traps once
the agent's engine id has been read). Trap events are limited to
TRAP_EVENTS_PER_S per receiver; the rest are counted as dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Any, ClassVar

from drivers.snmp.agent import OPER, Agent, PollResult
from drivers.snmp.client import Manager, SnmpError
from drivers.snmp.options import DeviceOptions, Loc, check_options, parse_udp
from drivers.snmp.profile import ProfileTrap, SnmpProfile, check_profile
from drivers.snmp.traps import TrapListener
from gateway.backoff import Backoff
from gateway.driver_api import DeviceSpec, Driver, DriverContext, LinkSpec
from gateway.model import Event, Severity, StatusUpdate, Telemetry, now_ms

log = logging.getLogger(__name__)

LINK_DOWN, LINK_UP = "1.3.6.1.6.3.1.1.5.3", "1.3.6.1.6.3.1.1.5.4"
RESTARTS = {"1.3.6.1.6.3.1.1.5.1": "cold start", "1.3.6.1.6.3.1.1.5.2": "warm start"}
TRAP_EVENTS_PER_S = 20


class _Device:
    """One device's agent and what the driver remembers about it."""

    def __init__(self, spec: DeviceSpec, host: str, port: int) -> None:
        self.spec = spec
        self.opts = DeviceOptions.from_dict(spec.options)
        self.host = host
        self.agent = Agent(spec.id, Manager(host, port, self.opts.creds, self.opts.timeout_s, self.opts.retries),
                           SnmpProfile.from_dict(spec.profile), self.opts.hc_counters, self.opts.max_bps)
        self.counts: Counter[str] = Counter()
        self.oper: dict[int, str] = {}
        self.online = False
        self.failures = 0
        self.last_error = ""
        self.missing: list[str] = []
        self.status: dict[str, Any] = {}
        self.listener: TrapListener | None = None
        self.trap_states: set[str] = set()  # events of the profile's traps raised and not yet cleared


class SnmpDriver(Driver):
    name: ClassVar[str] = "snmp"
    default_kind: ClassVar[str] = "network"
    transport_schemes: ClassVar[tuple[str, ...]] = ("udp",)

    def __init__(self, link: LinkSpec, ctx: DriverContext) -> None:
        super().__init__(link, ctx)
        host, port = parse_udp(link.transport)
        self.devices = [_Device(d, host, port) for d in link.devices]
        self.counts: Counter[str] = Counter()
        self.listeners: dict[tuple[str, int], TrapListener] = {}
        self._trap_window = (0, 0)  # (second, events in it)

    # -- kit checks ------------------------------------------------------------------------
    @classmethod
    def check_device(cls, options: dict[str, Any], transport: str) -> list[tuple[Loc, str]]:
        return check_options(options, transport)

    @classmethod
    def check_link(cls, devices: list[dict[str, Any]]) -> list[tuple[int, Loc, str]]:
        return [(i, (), "one agent per udp:// address: this transport is already used by device #1")
                for i in range(1, len(devices))]

    @classmethod
    def check_profile(cls, profile: dict[str, Any]) -> list[str]:
        return check_profile(profile)

    # -- the link --------------------------------------------------------------------------
    async def run(self) -> None:
        try:
            for dev in self.devices:
                if dev.opts.trap_listen is not None:
                    dev.listener = self._listener(dev.opts.trap_listen)
                    if dev.opts.creds.version == "2c":
                        dev.listener.add_community(dev.opts.creds.community)
            async with asyncio.TaskGroup() as tg:
                for dev in self.devices:
                    tg.create_task(self._serve(dev))
        finally:
            for listener in self.listeners.values():
                listener.close()
            self.listeners.clear()
            for dev in self.devices:
                dev.agent.manager.close()
                dev.agent.manager = Manager(dev.host, dev.agent.manager.port, dev.opts.creds, dev.opts.timeout_s,
                                            dev.opts.retries)
                dev.listener = None
                dev.agent.engine_id = None

    def _listener(self, addr: tuple[str, int]) -> TrapListener:
        if addr not in self.listeners:
            listener = TrapListener(addr[0], addr[1], self._on_trap)
            try:
                listener.open()
            except OSError as exc:
                listener.close()
                raise ConnectionError(f"cannot receive traps on udp://{addr[0]}:{addr[1]}: {exc}") from None
            self.listeners[addr] = listener
        return self.listeners[addr]

    async def _serve(self, dev: _Device) -> None:
        loop = asyncio.get_running_loop()
        backoff = Backoff(initial=dev.opts.poll_s, maximum=max(dev.opts.poll_s, dev.opts.retry_max_s))
        while True:
            started = loop.time()
            dev.counts["polls"] += 1
            try:
                result = await dev.agent.poll()
            except SnmpError as exc:
                self._failed(dev, exc)
                delay = dev.opts.poll_s if dev.failures < dev.opts.max_failures else backoff.next_delay()
            else:
                self._take(dev, result)
                backoff = Backoff(initial=dev.opts.poll_s, maximum=max(dev.opts.poll_s, dev.opts.retry_max_s))
                delay = dev.opts.poll_s
            await asyncio.sleep(max(0.0, started + delay - loop.time()))

    def _failed(self, dev: _Device, exc: SnmpError) -> None:
        dev.failures += 1
        dev.counts[f"{exc.kind}_errors"] += 1
        hint = " (agent down, or a wrong community)" if exc.kind == "timeout" and dev.opts.creds.version == "2c" else ""
        dev.last_error = f"{exc.detail}{hint}"
        log.debug("%s poll failed (%d/%d): %s", dev.spec.id, dev.failures, dev.opts.max_failures, dev.last_error)
        state = "auth_failed" if exc.kind == "auth" else "no_answer" if exc.kind == "timeout" else "error"
        self._status(dev, {"snmp": self._snmp_status(dev, state)})
        if dev.failures == dev.opts.max_failures:
            why = f"agent at {dev.host} failed {dev.failures} polls in a row: {dev.last_error}"
            if dev.online:
                dev.online = False
                self.ctx.set_online(dev.spec.id, False, why)
            self._event(dev, "agent_unreachable", "warning", why, error=exc.kind)

    def _take(self, dev: _Device, r: PollResult) -> None:
        if dev.failures >= dev.opts.max_failures:
            self._event(dev, "agent_reachable", "info", f"agent at {dev.host} answering again")
        dev.failures = 0
        if not dev.online:
            dev.online = True
            self.ctx.set_online(dev.spec.id, True, f"agent answering at {dev.host}")
        if dev.listener is not None and dev.agent.engine_id is not None and dev.opts.creds.version == "3":
            dev.listener.add_v3_agent(dev.opts.creds, dev.agent.engine_id)
        for idx, state in sorted(r.oper.items()):
            self._oper(dev, idx, state, "poll")
        if r.missing:
            dev.counts["missing_values"] += len(r.missing)
        dev.missing = r.missing
        if r.telemetry:
            self.ctx.publish(Telemetry(dev.spec.id, now_ms(), r.telemetry))
        self._status(dev, {**r.status, "snmp": self._snmp_status(dev, "ok")})

    def _oper(self, dev: _Device, idx: int, state: str, source: str) -> None:
        before = dev.oper.get(idx)
        dev.oper[idx] = state
        if before is None or (before == "up") == (state == "up"):
            return
        name = dev.agent.names.get(idx, str(idx))
        up = state == "up"
        self._event(dev, "interface", "info" if up else "warning", f"interface {name} {'up' if up else state}",
                    interface=name, index=idx, up=up, source=source)
        if source == "trap" and "interfaces" in dev.status:
            self._status(dev, {"interfaces": {**dev.status["interfaces"], name: state}})

    def _on_trap(self, source: str, trap_oid: str, binds: dict[str, Any]) -> None:
        self.counts["traps"] += 1
        devs = [d for d in self.devices if d.listener is not None and (d.host == source or len(self.devices) == 1)]
        if not devs:
            self.counts["traps_unknown_source"] += 1
            return
        dev = devs[0]
        dev.counts["traps"] += 1
        second = int(time.monotonic())
        n = self._trap_window[1] + 1 if self._trap_window[0] == second else 1
        self._trap_window = (second, n)
        if n > TRAP_EVENTS_PER_S:
            dev.counts["traps_dropped"] += 1
            return
        rule = dev.agent.profile.trap_rule(trap_oid, binds)
        if rule is not None:
            self._profile_trap(dev, rule, trap_oid, binds)
            return
        if trap_oid in (LINK_DOWN, LINK_UP):
            idx = dev.agent.index_of(binds)
            if idx is not None:
                self._oper(dev, idx, "up" if trap_oid == LINK_UP else OPER[2], "trap")
                return
        what = RESTARTS.get(trap_oid)
        text = f"agent restarted ({what})" if what else f"trap {trap_oid} from {source}"
        shown = {k: v.prettyPrint() for k, v in list(binds.items())[:10]}
        self._event(dev, "snmp_trap", "info", text, trap=trap_oid, varbinds=shown)

    def _profile_trap(self, dev: _Device, rule: ProfileTrap, trap_oid: str, binds: dict[str, Any]) -> None:
        """A notification the device's profile names: its event, once per state (a repeat is counted)."""
        if rule.event in dev.trap_states:
            dev.counts["traps_repeated"] += 1
            return
        dev.trap_states -= set(rule.clears)
        if rule.event in dev.agent.profile.cleared():
            dev.trap_states.add(rule.event)
        shown = {k: v.prettyPrint() for k, v in list(binds.items())[:10]}
        self._event(dev, rule.event, rule.severity, rule.text, trap=trap_oid, varbinds=shown)  # type: ignore[arg-type]

    # -- output ----------------------------------------------------------------------------
    def _snmp_status(self, dev: _Device, state: str) -> dict[str, Any]:
        return {"state": state, "version": dev.opts.creds.version, "error": dev.last_error if state != "ok" else "",
                "failures": dev.failures, "missing": list(dev.missing),
                "profile": dev.agent.profile.model or None}

    def _status(self, dev: _Device, changes: dict[str, Any]) -> None:
        changed = {k: v for k, v in changes.items() if dev.status.get(k) != v}
        if changed:
            dev.status.update(changed)
            self.ctx.publish(StatusUpdate(dev.spec.id, now_ms(), changed))

    def _event(self, dev: _Device, type_: str, severity: Severity, text: str, **extra: Any) -> None:
        dev.counts[f"events_{type_}"] += 1
        log.info("%s: %s", dev.spec.id, text)
        self.ctx.publish(Event(dev.spec.id, now_ms(), type_, severity, text, extra))

    def stats(self) -> dict[str, Any]:
        return {**self.counts, "listeners": [f"udp://{h}:{p}" for h, p in self.listeners],
                "devices": {d.spec.id: {**d.counts, **d.agent.counter_stats(), "online": d.online}
                            for d in self.devices}}
