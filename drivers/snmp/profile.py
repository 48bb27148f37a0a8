"""SNMP profiles as data (firmware_configs/snmp/*.yaml): the vendor OIDs of one device model.

    model: LTE router (simulated)
    version: 1
    oids:
      - {name: rssi_dbm, oid: 1.3.6.1.4.1.N.1.1.0, scale: 1}

`name` is a normalized telemetry name (NORMALIZED, or any other snake_case
name), `oid` a numeric scalar OID, `scale` multiplies the raw integer.
`check_profile()` lists every problem in words a person can act on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

NORMALIZED = ("rssi_dbm", "rsrp_dbm", "sinr_db", "rsrq_db", "link_quality_pct", "battery_pct", "battery_runtime_s",
              "load_pct", "input_v", "output_v")
MAX_OIDS = 64
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
_OID = re.compile(r"^1(\.(0|[1-9][0-9]{0,9})){3,127}$")
_TOP_KEYS = {"profile", "protocol", "model", "version", "oids", "note"}
_OID_KEYS = {"name", "oid", "scale", "note"}


@dataclass(frozen=True, slots=True)
class ProfileOid:
    name: str
    oid: str
    scale: float = 1.0


@dataclass(frozen=True, slots=True)
class SnmpProfile:
    model: str
    version: int
    oids: tuple[ProfileOid, ...]

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> SnmpProfile:
        """A checked profile (an empty one for None); ValueError listing the problems."""
        if not data:
            return cls("", 0, ())
        problems = check_profile(data)
        if problems:
            raise ValueError("; ".join(problems))
        oids = tuple(ProfileOid(o["name"], str(o["oid"]).lstrip("."), float(o.get("scale", 1.0))) for o in data["oids"])
        return cls(str(data["model"]), int(data["version"]), oids)


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
    return problems
