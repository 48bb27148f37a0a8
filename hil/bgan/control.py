"""Control-port commands of the BGAN simulator (``unplug`` and ``stats`` come from the base).

    reg STAT             registration status 0..5 (1 home, 5 roaming, 2 searching, 0/3/4 not registered)
    pdp CID 0|1          deactivate / activate a PDP context (defined with the default APN if new)
    cn0 N                C/N0 in dBHz (readings add ±0.3 dB noise; 0 = no signal)
    gps FIX LAT LON      fix 0-3 and position in degrees
    noise HEX            send these bytes to the driver as they are (line noise, garbage)
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hil.serialport import ControlPort, Handler

from .device import BganDevice

MAX_NOISE = 4096


def build(device: BganDevice, stats_extra: Callable[[], dict[str, Any]]) -> ControlPort:
    t = device.terminal

    async def reg(args: list[str]) -> dict[str, Any]:
        if len(args) != 1:
            return {"ok": False, "error": "usage: reg STAT (0..5)"}
        t.set_reg(int(args[0]))
        return {"ok": True, "reg": t.reg, "link_up": t.link_up}

    async def pdp(args: list[str]) -> dict[str, Any]:
        if len(args) != 2 or args[1] not in ("0", "1"):
            return {"ok": False, "error": "usage: pdp CID 0|1"}
        t.set_pdp(int(args[0]), args[1] == "1")
        return {"ok": True, "pdp": t.describe()["pdp"], "link_up": t.link_up}

    async def cn0(args: list[str]) -> dict[str, Any]:
        if len(args) != 1:
            return {"ok": False, "error": "usage: cn0 N (dBHz)"}
        t.set_cn0(float(args[0]))
        return {"ok": True, "cn0": t.cn0}

    async def gps(args: list[str]) -> dict[str, Any]:
        if len(args) != 3:
            return {"ok": False, "error": "usage: gps FIX LAT LON"}
        t.set_gps(int(args[0]), float(args[1]), float(args[2]))
        return {"ok": True, "gps": t.describe()["gps"]}

    async def noise(args: list[str]) -> dict[str, Any]:
        try:
            data = bytes.fromhex("".join(args))
        except ValueError:
            data = b""
        if not data or len(data) > MAX_NOISE:
            return {"ok": False, "error": f"usage: noise HEX (1..{MAX_NOISE} bytes)"}
        device.noise(data)
        return {"ok": True, "bytes": len(data)}

    handlers: dict[str, Handler] = {"reg": reg, "pdp": pdp, "cn0": cn0, "gps": gps, "noise": noise}
    return ControlPort(device.port, handlers, lambda: {**device.stats(), **stats_extra()})
