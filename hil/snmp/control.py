"""Control commands (one line in, one JSON line out):

  link IFINDEX up|down            ifOperStatus; sends linkUp/linkDown to --trap-to if it changed
  rate IFINDEX IN_BPS OUT_BPS     counter growth in bits per second (octets grow at bps/8)
  counter IFINDEX VALUE           set both octet counters (64-bit; Counter32 = low 32 bits),
                                  e.g. 4294967000 to watch ifInOctets wrap
  reset                           reboot: sysUpTime and counters to 0, links up, coldStart trap
  signal RSSI RSRP SINR RSRQ      modem signal base values (dBm, dBm, dB, dB); a slow swing is added
  stats                           router state and agent counters
"""
from __future__ import annotations

from typing import Any

from ..serialport import ControlPort
from .agent import Agent
from .router import Router


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
