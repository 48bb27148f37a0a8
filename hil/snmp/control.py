"""Control commands (one line in, one JSON line out):

  link IFINDEX up|down            ifOperStatus; sends linkUp/linkDown to --trap-to if it changed
  rate IFINDEX IN_BPS OUT_BPS     counter growth in bits per second (octets grow at bps/8)
  counter IFINDEX VALUE           set both octet counters (64-bit; Counter32 = low 32 bits),
                                  e.g. 4294967000 to watch ifInOctets wrap
  reset                           reboot: sysUpTime and counters to 0, links up, coldStart trap
  signal RSSI RSRP SINR RSRQ      modem signal base values (dBm, dBm, dB, dB); a slow swing is added
  stats                           router state and agent counters

With --profile ups (hil/snmp/ups.py) instead:

  mains on|off                    mains power present or failed (the UPS goes on battery: upsTrapOnBattery)
  soc PERCENT                     set the battery's charge (it integrates on from there)
  load WATTS                      the load on the UPS's output
  temp C|auto                     pin the battery temperature, or back to the model's
  stats                           the UPS's values and agent counters
"""
from __future__ import annotations

from typing import Any

from ..serialport import ControlPort
from .agent import Agent
from .router import Router
from .ups import Ups


def build(router: Router, agent: Agent) -> ControlPort:
    async def link(args: list[str]) -> dict[str, Any]:
        if len(args) != 2 or args[1].lower() not in ("up", "down"):
            raise ValueError("usage: link IFINDEX up|down")
        index, up = int(args[0]), args[1].lower() == "up"
        changed = router.set_link(index, up)
        if changed:
            agent.link_trap(index)
        return {"ok": True, "ifindex": index, "up": up, "changed": changed}

    async def rate(args: list[str]) -> dict[str, Any]:
        if len(args) != 3:
            raise ValueError("usage: rate IFINDEX IN_BPS OUT_BPS")
        router.set_rate(int(args[0]), float(args[1]), float(args[2]))
        return {"ok": True, "ifindex": int(args[0]), "in_bps": float(args[1]), "out_bps": float(args[2])}

    async def counter(args: list[str]) -> dict[str, Any]:
        if len(args) != 2:
            raise ValueError("usage: counter IFINDEX VALUE")
        router.set_counter(int(args[0]), int(args[1]))
        return {"ok": True, "ifindex": int(args[0]), "value": int(args[1])}

    async def reset(args: list[str]) -> dict[str, Any]:
        router.reset()
        agent.cold_start_trap()
        return {"ok": True, "reboots": router.reboots}

    async def signal(args: list[str]) -> dict[str, Any]:
        if len(args) != 4:
            raise ValueError("usage: signal RSSI RSRP SINR RSRQ")
        rssi, rsrp, sinr, rsrq = (float(a) for a in args)
        router.set_signal(rssi, rsrp, sinr, rsrq)
        return {"ok": True, "rssi": rssi, "rsrp": rsrp, "sinr": sinr, "rsrq": rsrq}

    return ControlPort(None, {"link": link, "rate": rate, "counter": counter, "reset": reset, "signal": signal},
                       lambda: {**router.stats(), **agent.stats()})


def _number(text: str, low: float, high: float, what: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise ValueError(f"{what} must be a number {low:g}..{high:g}, got {text!r}") from None
    if not low <= v <= high:
        raise ValueError(f"{what} must be {low:g}..{high:g}, got {text}")
    return v


def build_ups(ups: Ups, agent: Agent) -> ControlPort:
    async def mains(args: list[str]) -> dict[str, Any]:
        if len(args) != 1 or args[0].lower() not in ("on", "off"):
            raise ValueError("usage: mains on|off")
        changed = ups.set_mains(args[0].lower() == "on")
        return {"ok": True, "mains": ups.mains, "changed": changed}

    def setter(attr: str, usage: str, high: float) -> Any:
        async def handler(args: list[str]) -> dict[str, Any]:
            if len(args) != 1:
                raise ValueError(f"usage: {usage}")
            ups.update()     # integrate up to now with the old value
            setattr(ups, attr, _number(args[0], 0, high, usage.split()[0]))
            return {"ok": True, attr: getattr(ups, attr)}
        return handler

    async def temp(args: list[str]) -> dict[str, Any]:
        if len(args) != 1:
            raise ValueError("usage: temp C|auto")
        ups.temp_pin = None if args[0].lower() == "auto" else _number(args[0], -20, 80, "temp")
        return {"ok": True, "temp_c": ups.temp_c()}

    return ControlPort(None, {"mains": mains, "soc": setter("soc", "soc PERCENT", 100),
                                    "load": setter("load_w", "load WATTS", 1050), "temp": temp},
                       lambda: {**ups.stats(), **agent.stats()})
