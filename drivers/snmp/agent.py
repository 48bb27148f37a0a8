"""One SNMP agent (one device): what a poll asks and what the answers mean.

A poll is one GET (sysUpTime, sysName, the profile's OIDs; snmpEngineID
once for v3) and one GETBULK walk of the interface columns (ifTable,
ifXTable's 64-bit counters when the agent has them). The result is split
into telemetry (throughput per interface, profile values, uptime) and
status (name, interface states, OIDs the agent does not have).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

from drivers.snmp.client import Manager, missing
from drivers.snmp.profile import SnmpProfile
from drivers.snmp.rates import CounterRate, Sample

SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
SYS_NAME = "1.3.6.1.2.1.1.5.0"
ENGINE_ID = "1.3.6.1.6.3.10.2.1.1.0"
IF_DESCR, IF_OPER = "1.3.6.1.2.1.2.2.1.2", "1.3.6.1.2.1.2.2.1.8"
IF_IN, IF_OUT = "1.3.6.1.2.1.2.2.1.10", "1.3.6.1.2.1.2.2.1.16"
IF_HC_IN, IF_HC_OUT = "1.3.6.1.2.1.31.1.1.1.6", "1.3.6.1.2.1.31.1.1.1.10"
IF_INDEX = "1.3.6.1.2.1.2.2.1.1"
IF_SPEED = "1.3.6.1.2.1.2.2.1.5"
SPEED_SATURATED = 4294967295  # ifSpeed of a link faster than Counter32 can tell
IF_NAME = "1.3.6.1.2.1.31.1.1.1.1"
OPER = {1: "up", 2: "down", 3: "testing", 4: "unknown", 5: "dormant", 6: "not_present", 7: "lower_layer_down"}
_SLUG = re.compile(r"[^a-z0-9]+")


@dataclass(slots=True)
class PollResult:
    telemetry: dict[str, float]
    status: dict[str, Any]
    oper: dict[int, str]  # ifIndex → normalized oper status
    missing: list[str] = field(default_factory=list)


def iface_names(descr: dict[int, str]) -> dict[int, str]:
    """ifIndex → a telemetry-safe name: the slug of ifName (else ifDescr), or the index when that is empty or taken."""
    out: dict[int, str] = {}
    taken: set[str] = set()
    for idx in sorted(descr):
        slug = _SLUG.sub("_", descr[idx].lower()).strip("_")[:24]
        name = slug if slug and slug not in taken and not slug.isdigit() else str(idx)
        taken.add(name)
        out[idx] = name
    return out


class Agent:
    def __init__(self, device_id: str, manager: Manager, profile: SnmpProfile, hc: bool = True,
                 max_bps: float = 100e9) -> None:
        self.id = device_id
        self.manager = manager
        self.profile = profile
        self.hc = hc
        self.max_bps = max_bps
        self.rates: dict[tuple[int, str], CounterRate] = {}
        self.engine_id: bytes | None = None
        self.names: dict[int, str] = {}

    async def poll(self) -> PollResult:
        """One poll; SnmpError (from the manager) when the agent gives no usable answer."""
        scalars = [SYS_UPTIME, SYS_NAME, *(o.oid for o in self.profile.oids)]
        want_engine = self.manager.creds.version == "3" and self.engine_id is None
        if want_engine:
            scalars.append(ENGINE_ID)
        got = await self.manager.get(scalars)
        cols = [IF_DESCR, IF_OPER, IF_SPEED, IF_IN, IF_OUT, IF_NAME, *((IF_HC_IN, IF_HC_OUT) if self.hc else ())]
        table = await self.manager.columns(cols)
        t = time.monotonic()
        result = PollResult({}, {}, {})
        uptime_v = got.get(SYS_UPTIME)
        uptime = None if uptime_v is None or missing(uptime_v) else int(uptime_v)
        if uptime is not None:
            result.telemetry["uptime_s"] = uptime / 100
        name_v = got.get(SYS_NAME)
        if name_v is not None and not missing(name_v):
            result.status["sys_name"] = name_v.prettyPrint()
        else:
            result.missing.append("sysName")
        if want_engine:
            eng = got.get(ENGINE_ID)
            if eng is not None and not missing(eng):
                self.engine_id = bytes(eng)
            else:  # an agent that does not serve SNMP-FRAMEWORK-MIB: the id learned by USM discovery
                self.engine_id = self.manager.peer_engine_id()
        for po in self.profile.oids:
            v = got.get(po.oid)
            if v is None or missing(v):
                result.missing.append(po.name)
                continue
            try:
                if po.states:   # an enumeration (upsOutputSource, upsBatteryStatus): a state in status
                    result.status[po.name] = po.state(int(v))
                else:
                    result.telemetry[po.name] = round(float(int(v)) * po.scale, 6)
            except (TypeError, ValueError):
                result.missing.append(po.name)
        self._interfaces(table, t, uptime, result)
        return result

    def _interfaces(self, table: dict[str, dict[int, Any]], t: float, uptime: int | None, result: PollResult) -> None:
        descr = {i: v.prettyPrint() for i, v in table[IF_DESCR].items() if not missing(v)}
        descr.update({i: v.prettyPrint() for i, v in table[IF_NAME].items() if not missing(v) and str(v)})
        indices = sorted(set(descr) | set(table[IF_OPER]) | set(table[IF_IN]))
        self.names = iface_names({i: descr.get(i, "") for i in indices})
        ifaces: dict[str, str] = {}
        for idx in indices:
            name = self.names[idx]
            oper_v = table[IF_OPER].get(idx)
            if oper_v is not None and not missing(oper_v):
                state = OPER.get(int(oper_v), "unknown")
                result.oper[idx] = state
                ifaces[name] = state
            for direction, (c32, c64) in (("in", (IF_IN, IF_HC_IN)), ("out", (IF_OUT, IF_HC_OUT))):
                hc = table.get(c64, {}).get(idx)
                if hc is not None and not missing(hc):
                    value, bits = int(hc), 64
                else:
                    low = table[c32].get(idx)
                    if low is None or missing(low):
                        continue
                    value, bits = int(low), 32
                rate = self.rates.setdefault((idx, direction), CounterRate(self.max_bps))
                speed = table[IF_SPEED].get(idx)
                if speed is not None and not missing(speed) and 0 < int(speed) < SPEED_SATURATED:
                    rate.max_bps = min(self.max_bps, 2.0 * int(speed))  # faster than the line: a jump, not traffic
                bps = rate.update(Sample(value, bits, t, uptime))
                if bps is not None:
                    result.telemetry[f"if_{name}_{direction}_bps"] = round(bps, 1)
        result.status["interfaces"] = ifaces

    def counter_stats(self) -> dict[str, int]:
        return {k: sum(getattr(r, k) for r in self.rates.values()) for k in ("wraps", "resets", "skipped")}

    def index_of(self, binds: dict[str, Any]) -> int | None:
        """The ifIndex a linkUp/linkDown trap is about."""
        for oid, value in binds.items():
            if oid.startswith(IF_INDEX + "."):
                try:
                    return int(value)
                except (TypeError, ValueError):
                    return int(oid.rsplit(".", 1)[1])
        for oid in binds:
            for col in (IF_OPER, IF_DESCR, "1.3.6.1.2.1.2.2.1.7"):
                if oid.startswith(col + "."):
                    return int(oid.rsplit(".", 1)[1])
        return None
