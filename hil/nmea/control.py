"""Control-port commands of the NMEA simulator (added to ControlPort's `stats`, and `unplug` with --pty).

status                      true position, fix, sentences sent, faults pending, per-output counters
no_fix [on|off]             lose the fix (default on): RMC status V, VTG mode N, GGA quality 0 / get it back
bad_checksum [N]            the next N sentences (default 1) leave with a wrong checksum
garbage [binary|partial|both] [N]
                            noise on every output now: N random bytes (default 32, starting with the UBX
                            sync 0xB5 0x62) and/or the first half of a GGA sentence with no line end
stop | start                the receiver stops / starts writing (connections stay up)
speed KMH                   walking speed from now on (0..200)
heading DEG                 turn to this heading now (without waypoints)
"""
from __future__ import annotations

from typing import Any

from ..serialport import Handler
from .receiver import Receiver, finite


def _on_off(args: list[str], usage: str) -> bool:
    if not args:
        return True
    if len(args) != 1 or args[0].lower() not in ("on", "off"):
        raise ValueError(f"usage: {usage}")
    return args[0].lower() == "on"


def handlers(rx: Receiver) -> dict[str, Handler]:
    async def status(args: list[str]) -> dict[str, Any]:
        if args:
            raise ValueError("usage: status")
        return {"ok": True, **rx.status()}

    async def no_fix(args: list[str]) -> dict[str, Any]:
        rx.fix = not _on_off(args, "no_fix [on|off]")
        return {"ok": True, "fix": rx.fix}

    async def bad_checksum(args: list[str]) -> dict[str, Any]:
        if len(args) > 1 or (args and (not args[0].isdigit() or int(args[0]) > 1_000_000)):
            raise ValueError("usage: bad_checksum [N] (0..1000000)")
        rx.bad_checksum_left = int(args[0]) if args else 1
        return {"ok": True, "bad_checksum_pending": rx.bad_checksum_left}

    async def garbage(args: list[str]) -> dict[str, Any]:
        kind, n = "both", 32
        rest = list(args)
        if rest and rest[0] in ("binary", "partial", "both"):
            kind = rest.pop(0)
        if rest:
            if len(rest) != 1 or not rest[0].isdigit() or not 1 <= int(rest[0]) <= 65536:
                raise ValueError("usage: garbage [binary|partial|both] [N] (N 1..65536)")
            n = int(rest[0])
        return {"ok": True, "kind": kind, "bytes": rx.garbage(kind, n)}

    async def stop(args: list[str]) -> dict[str, Any]:
        rx.running = False
        return {"ok": True, "running": False}

    async def start(args: list[str]) -> dict[str, Any]:
        rx.running = True
        return {"ok": True, "running": True}

    async def speed(args: list[str]) -> dict[str, Any]:
        if len(args) != 1:
            raise ValueError("usage: speed KMH")
        v = finite(args[0])
        if not 0 <= v <= 200:
            raise ValueError("speed must be 0..200 km/h")
        rx.update()
        rx.walker.speed_kmh = v
        return {"ok": True, "speed_kmh": v}

    async def heading(args: list[str]) -> dict[str, Any]:
        if len(args) != 1:
            raise ValueError("usage: heading DEG")
        if rx.walker.waypoints:
            raise ValueError("the team follows waypoints; heading cannot be set")
        rx.update()
        rx.walker.heading = finite(args[0]) % 360.0
        return {"ok": True, "heading_deg": rx.walker.heading}

    return {"status": status, "no_fix": no_fix, "bad_checksum": bad_checksum, "garbage": garbage,
            "stop": stop, "start": start, "speed": speed, "heading": heading}
