"""Control-port commands of the GB/T 28181 simulator (added to ControlPort's `stats`).

A command acts on the first device unless its last word is another simulated device's id.

status [DEVICE]            registration, channels (PTZ state), streams (packets sent), position, counters
reboot [SECONDS] [DEVICE]  power cut: everything stops without a word, then a fresh registration
                           (streams are gone: the platform must INVITE again); default --reboot-s
stop_keepalive [on|off]    stop (default on) / resume sending keepalives (the device stays "registered")
wrong_password [on|off]    register with a wrong password from now on (re-registers at once) / fix it
register [DEVICE]          drop the registration and register anew now
garbage [KIND] [DEVICE]    send malformed traffic: bytes, startline, headers, length, xml, entity, oversized
bye [CALL_ID|CHANNEL|all]  the device hangs up calls (BYE to the platform); default all
ptz CHANNEL HEX            apply a PTZCmd locally, as if the platform had sent it (for scripts)
"""
from __future__ import annotations

import asyncio
from typing import Any

from ..serialport import Handler
from .device import GARBAGE_KINDS, Device
from .ptz import decode


def _on_off(args: list[str], usage: str) -> bool:
    if not args:
        return True
    if len(args) != 1 or args[0].lower() not in ("on", "off"):
        raise ValueError(f"usage: {usage}")
    return args[0].lower() == "on"


def summary(devices: list[Device]) -> dict[str, Any]:
    states: dict[str, int] = {}
    for d in devices:
        states[d.state] = states.get(d.state, 0) + 1
    totals = {k: sum(d.counters[k] for d in devices) for k in devices[0].counters}
    return {"devices": len(devices), "registered_devices": states.get("registered", 0), "states": states,
            "totals": totals, "streams_total": sum(len(d.dialogs) for d in devices)}


def handlers(devices: list[Device], reboot_s: float) -> dict[str, Handler]:
    by_id = {d.id: d for d in devices}
    background: set[asyncio.Task[Any]] = set()

    def target(args: list[str]) -> tuple[Device, list[str]]:
        if args and args[-1] in by_id:
            return by_id[args[-1]], args[:-1]
        return devices[0], args

    def run(coro: Any) -> None:
        task = asyncio.create_task(coro)
        background.add(task)
        task.add_done_callback(background.discard)

    async def status(args: list[str]) -> dict[str, Any]:
        dev, rest = target(args)
        if rest:
            raise ValueError(f"no simulated device {rest[0]!r}; usage: status [DEVICE]")
        return {"ok": True, **dev.to_json(), "summary": summary(devices)}

    async def reboot(args: list[str]) -> dict[str, Any]:
        dev, rest = target(args)
        if len(rest) > 1:
            raise ValueError("usage: reboot [SECONDS] [DEVICE]")
        seconds = float(rest[0]) if rest else reboot_s
        if not 0 <= seconds <= 3600:
            raise ValueError("seconds must be 0..3600")
        run(dev.reboot(seconds))
        return {"ok": True, "device_id": dev.id, "reboot_s": seconds}

    async def stop_keepalive(args: list[str]) -> dict[str, Any]:
        dev, rest = target(args)
        dev.keepalive_paused = _on_off(rest, "stop_keepalive [on|off] [DEVICE]")
        return {"ok": True, "device_id": dev.id, "keepalive_paused": dev.keepalive_paused}

    async def wrong_password(args: list[str]) -> dict[str, Any]:
        dev, rest = target(args)
        on = _on_off(rest, "wrong_password [on|off] [DEVICE]")
        dev.set_wrong_password(on)
        return {"ok": True, "device_id": dev.id, "wrong_password": on}

    async def register(args: list[str]) -> dict[str, Any]:
        dev, rest = target(args)
        if rest:
            raise ValueError("usage: register [DEVICE]")
        dev.force_register()
        return {"ok": True, "device_id": dev.id}

    async def garbage(args: list[str]) -> dict[str, Any]:
        dev, rest = target(args)
        if len(rest) > 1 or (rest and rest[0] not in GARBAGE_KINDS):
            raise ValueError(f"usage: garbage [{'|'.join(GARBAGE_KINDS)}] [DEVICE]")
        kind = rest[0] if rest else "headers"
        return {"ok": True, "device_id": dev.id, "kind": kind, "bytes": dev.send_garbage(kind)}

    async def bye(args: list[str]) -> dict[str, Any]:
        dev, rest = target(args)
        if len(rest) > 1:
            raise ValueError("usage: bye [CALL_ID|CHANNEL|all] [DEVICE]")
        return {"ok": True, "device_id": dev.id, "ended": dev.hang_up(rest[0] if rest else "all")}

    async def ptz(args: list[str]) -> dict[str, Any]:
        dev, rest = target(args)
        if len(rest) != 2:
            raise ValueError("usage: ptz CHANNEL HEX [DEVICE]")
        channel = dev._channel(rest[0])
        if channel is None or channel.ptz is None:
            raise ValueError(f"no steerable channel {rest[0]}")
        channel.ptz.apply(decode(rest[1]))
        return {"ok": True, "channel": channel.id, "ptz": channel.ptz.to_json()}

    return {"status": status, "reboot": reboot, "stop_keepalive": stop_keepalive, "wrong_password": wrong_password,
            "register": register, "garbage": garbage, "bye": bye, "ptz": ptz}
