"""SNMP profiles as data (firmware_configs/snmp/*.yaml): the vendor OIDs of one device model.

    model: LTE router (simulated)
    version: 1
    oids:
      - {name: rssi_dbm, oid: 1.3.6.1.4.1.N.1.1.0, scale: 1}

`name` is a normalized telemetry name (NORMALIZED, or any other snake_case
name), `oid` a numeric scalar OID, `scale` multiplies the raw integer. An
OID with `states` ({code: name}, an enumeration such as upsOutputSource)
goes to the device's status as the state's name instead of telemetry.

`traps` (optional) turn a device's notifications into events of their own:

    traps:
      - {oid: 1.3.6.1.2.1.33.2.1, event: on_battery, severity: warning, text: on battery, clears: [on_mains]}
      - {oid: 1.3.6.1.2.1.33.2.4, with_value: 1.3.6.1.2.1.33.1.6.3.2, event: on_mains, severity: info, ...}

`with_value`: only when one of the trap's varbinds has this value (an alarm
table's trap names its alarm that way). An event that another rule
`clears` is a state: it is raised once (a repeat of the trap, which RFC 1628
asks for every minute, is counted, not raised again) until that rule fires.
`check_profile()` lists every problem in words a person can act on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

NORMALIZED = ("rssi_dbm", "rsrp_dbm", "sinr_db", "rsrq_db", "link_quality_pct", "battery_pct", "battery_runtime_s",
              "load_pct", "input_v", "output_v",
              # the power names the modbus_power driver uses (gateway/kit_health.py reads soc_pct)
              "soc_pct", "battery_v", "battery_a", "battery_temp_c", "output_w")
SEVERITIES = ("info", "warning", "critical")
MAX_OIDS = 64
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
_OID = re.compile(r"^1(\.(0|[1-9][0-9]{0,9})){3,127}$")
_TOP_KEYS = {"profile", "protocol", "model", "version", "oids", "traps", "note"}
_OID_KEYS = {"name", "oid", "scale", "states", "note"}
_TRAP_KEYS = {"oid", "with_value", "event", "severity", "text", "clears", "note"}


@dataclass(frozen=True, slots=True)
class ProfileOid:
    name: str
    oid: str
    scale: float = 1.0
    states: tuple[tuple[int, str], ...] = ()  # (code, name): an enumeration, reported in status

    def state(self, code: int) -> str:
        return dict(self.states).get(code, f"code {code}")


@dataclass(frozen=True, slots=True)
class ProfileTrap:
    oid: str
    event: str
    severity: str
    text: str
    with_value: str | None = None
    clears: tuple[str, ...] = ()

    def matches(self, trap_oid: str, values: set[str]) -> bool:
        return trap_oid == self.oid and (self.with_value is None or self.with_value in values)


@dataclass(frozen=True, slots=True)
class SnmpProfile:
    model: str
    version: int
    oids: tuple[ProfileOid, ...]
    traps: tuple[ProfileTrap, ...] = ()

    def trap_rule(self, trap_oid: str, binds: dict[str, Any]) -> ProfileTrap | None:
        """The first rule for this notification (varbind values compared as dotted text), or None."""
        if not any(t.oid == trap_oid for t in self.traps):
            return None
        values = {str(v.prettyPrint() if hasattr(v, "prettyPrint") else v).lstrip(".") for v in binds.values()}
        return next((t for t in self.traps if t.matches(trap_oid, values)), None)

    def cleared(self) -> set[str]:
        """Events some rule clears: raised once until then."""
        return {name for t in self.traps for name in t.clears}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> SnmpProfile:
        """A checked profile (an empty one for None); ValueError listing the problems."""
        if not data:
            return cls("", 0, ())
        problems = check_profile(data)
        if problems:
            raise ValueError("; ".join(problems))
        oids = tuple(ProfileOid(o["name"], str(o["oid"]).lstrip("."), float(o.get("scale", 1.0)),
                                tuple(sorted((int(k), str(v)) for k, v in (o.get("states") or {}).items())))
                     for o in data["oids"])
        traps = tuple(ProfileTrap(str(t["oid"]).lstrip("."), t["event"], t["severity"], t["text"],
                                  str(t["with_value"]).lstrip(".") if t.get("with_value") else None,
                                  tuple(t.get("clears") or ())) for t in data.get("traps") or ())
        return cls(str(data["model"]), int(data["version"]), oids, traps)


def check_profile(data: Any) -> list[str]:
    if not isinstance(data, dict):
        return ["an SNMP profile is a mapping with model, version and oids"]
    problems: list[str] = []
    for key in sorted(set(data) - _TOP_KEYS, key=str):
        problems.append(f"unknown key {key!r}; an SNMP profile takes {', '.join(sorted(_TOP_KEYS))}")
    if data.get("protocol", "snmp") != "snmp":
        problems.append(f"protocol must be snmp, not {data.get('protocol')!r}")
    if not isinstance(data.get("model"), str) or not data.get("model"):
        problems.append("model: the device model, a non-empty string")
    version = data.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        problems.append("version: the profile's version, a whole number >= 1")
    oids = data.get("oids")
    if not isinstance(oids, list) or not oids:
        problems.append("oids: a non-empty list of {name, oid, scale}")
        return problems
    if len(oids) > MAX_OIDS:
        problems.append(f"oids: at most {MAX_OIDS}")
    names: set[str] = set()
    seen_oids: set[str] = set()
    for i, entry in enumerate(oids):
        where = f"oids[{i}]"
        if not isinstance(entry, dict):
            problems.append(f"{where}: a mapping with name, oid and optional scale")
            continue
        for key in sorted(set(entry) - _OID_KEYS, key=str):
            problems.append(f"{where}: unknown key {key!r}; takes {', '.join(sorted(_OID_KEYS))}")
        name = entry.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            problems.append(f"{where}.name: a snake_case name such as {', '.join(NORMALIZED[:4])}")
        elif name in names:
            problems.append(f"{where}.name: {name!r} is named twice")
        else:
            names.add(name)
        oid = entry.get("oid")
        text = str(oid).lstrip(".") if isinstance(oid, str) else None
        if text is None or not _OID.match(text):
            problems.append(f"{where}.oid: a numeric OID such as 1.3.6.1.4.1.99999.1.1.0 (quote it in YAML)")
        elif text in seen_oids:
            problems.append(f"{where}.oid: {text} is named twice")
        else:
            seen_oids.add(text)
        scale = entry.get("scale", 1)
        if isinstance(scale, bool) or not isinstance(scale, int | float) or scale == 0:
            problems.append(f"{where}.scale: a non-zero number")
        states = entry.get("states")
        if states is not None and (not isinstance(states, dict) or not states or not all(
                isinstance(k, int) and not isinstance(k, bool) and isinstance(v, str) and v for k, v in states.items())):
            problems.append(f"{where}.states: a mapping of codes to names, e.g. {{3: normal, 5: battery}}")
    problems.extend(_check_traps(data.get("traps")))
    return problems


def _check_traps(traps: Any) -> list[str]:
    if traps is None:
        return []
    if not isinstance(traps, list):
        return ["traps: a list of {oid, event, severity, text} (and with_value, clears)"]
    problems: list[str] = []
    events = {t.get("event") for t in traps if isinstance(t, dict)}
    for i, t in enumerate(traps):
        where = f"traps[{i}]"
        if not isinstance(t, dict):
            problems.append(f"{where}: a mapping with oid, event, severity and text")
            continue
        for key in sorted(set(t) - _TRAP_KEYS, key=str):
            problems.append(f"{where}: unknown key {key!r}; takes {', '.join(sorted(_TRAP_KEYS))}")
        for key in ("oid", "with_value"):
            value = t.get(key)
            if (key == "oid" or value is not None) and (not isinstance(value, str) or not _OID.match(value.lstrip("."))):
                problems.append(f"{where}.{key}: a numeric OID such as 1.3.6.1.2.1.33.2.1 (quote it in YAML)")
        if not isinstance(t.get("event"), str) or not _NAME.match(t["event"]):
            problems.append(f"{where}.event: a snake_case event type such as on_battery")
        if t.get("severity") not in SEVERITIES:
            problems.append(f"{where}.severity: one of {', '.join(SEVERITIES)}")
        if not isinstance(t.get("text"), str) or not t["text"]:
            problems.append(f"{where}.text: what the event says")
        clears = t.get("clears", [])
        if not isinstance(clears, list) or not all(isinstance(c, str) for c in clears):
            problems.append(f"{where}.clears: a list of event types this one ends")
        elif unknown := sorted(set(clears) - events):
            problems.append(f"{where}.clears: {', '.join(unknown)} is no event of these traps")
    return problems
