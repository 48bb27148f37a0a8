"""The snmp driver's device options and transport, checked the way gateway/kit.py reports problems."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from drivers.snmp.client import Credentials

Loc = tuple[str | int, ...]
NUMBERS: dict[str, tuple[float, float, float]] = {  # name: (default, low, high)
    "poll_s": (10.0, 0.1, 86400.0), "timeout_s": (2.0, 0.05, 60.0), "retry_max_s": (300.0, 0.1, 3600.0),
    "max_bps": (100e9, 1e3, 1e13)}
INTS: dict[str, tuple[int, int, int]] = {"max_failures": (3, 1, 100), "retries": (1, 0, 5)}
STRINGS = ("community", "user", "auth_key", "priv_key", "trap_listen")
KNOWN = {"version", "auth", "priv", "hc_counters", *NUMBERS, *INTS, *STRINGS}


def parse_udp(url: str, what: str = "transport", default_port: int = 161) -> tuple[str, int]:
    parts = urlsplit(url)
    try:
        port = parts.port or default_port
    except ValueError:
        port = 0
    if parts.scheme != "udp" or not parts.hostname or not 0 < port < 65536 or parts.path not in ("", "/"):
        raise ValueError(f"{what} must be udp://HOST:PORT (an agent: udp://192.168.1.1:161), not {url!r}")
    return parts.hostname, port


@dataclass(frozen=True)
class DeviceOptions:
    creds: Credentials
    poll_s: float
    timeout_s: float
    retry_max_s: float
    max_bps: float
    max_failures: int
    retries: int
    hc_counters: bool
    trap_listen: tuple[str, int] | None

    @classmethod
    def from_dict(cls, o: dict[str, Any]) -> DeviceOptions:
        version = str(o.get("version", "2c"))
        creds = Credentials(version, str(o.get("community", "public")), str(o.get("user", "")),
                            str(o.get("auth_key", "")), str(o.get("priv_key", "")))
        nums = {k: float(o.get(k, d)) for k, (d, _, _) in NUMBERS.items()}
        ints = {k: int(o.get(k, d)) for k, (d, _, _) in INTS.items()}
        trap = parse_udp(o["trap_listen"], "trap_listen", 162) if o.get("trap_listen") else None
        return cls(creds, nums["poll_s"], nums["timeout_s"], nums["retry_max_s"], nums["max_bps"],
                   ints["max_failures"], ints["retries"], bool(o.get("hc_counters", True)), trap)


def check_options(options: dict[str, Any], transport: str) -> list[tuple[Loc, str]]:
    problems: list[tuple[Loc, str]] = []
    try:
        parse_udp(transport)
    except ValueError as exc:
        problems.append(((), str(exc)))
    for name in sorted(set(options) - KNOWN):
        problems.append(((name,), f"unknown option {name!r}; the snmp driver takes {', '.join(sorted(KNOWN))}"))
    version = str(options.get("version", "2c"))
    if version not in ("2c", "3"):
        problems.append((("version",), "version must be \"2c\" or \"3\" (quote it: version: \"3\")"))
    for name, (_, lo, hi) in NUMBERS.items():
        v = options.get(name)
        if name in options and (isinstance(v, bool) or not isinstance(v, int | float) or not lo <= v <= hi):
            problems.append(((name,), f"{name} must be a number {lo:g}..{hi:g}"))
    for name, (_, ilo, ihi) in INTS.items():
        v = options.get(name)
        if name in options and (isinstance(v, bool) or not isinstance(v, int) or not ilo <= v <= ihi):
            problems.append(((name,), f"{name} must be a whole number {ilo}..{ihi}"))
    for name in STRINGS:
        if name in options and not isinstance(options[name], str):
            problems.append(((name,), f"{name} must be a string"))
    if "hc_counters" in options and not isinstance(options["hc_counters"], bool):
        problems.append((("hc_counters",), "hc_counters must be true or false"))
    if version == "3":
        if not options.get("user"):
            problems.append((("user",), "SNMPv3 needs a user (authPriv)"))
        for key in ("auth_key", "priv_key"):
            v = options.get(key)
            if not isinstance(v, str) or len(v) < 8:
                problems.append(((key,), f"SNMPv3 authPriv needs {key}, at least 8 characters"))
        if options.get("auth", "sha") != "sha":
            problems.append((("auth",), "auth: only sha (HMAC-SHA-96) is supported"))
        if options.get("priv", "aes") != "aes":
            problems.append((("priv",), "priv: only aes (AES-128 CFB) is supported"))
    elif any(k in options for k in ("user", "auth_key", "priv_key")):
        problems.append((("version",), "user/auth_key/priv_key are SNMPv3 options: set version: \"3\""))
    if isinstance(options.get("trap_listen"), str):
        try:
            parse_udp(options["trap_listen"], "trap_listen", 162)
        except ValueError as exc:
            problems.append((("trap_listen",), str(exc)))
    return problems
