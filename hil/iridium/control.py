"""The simulator's own control commands (on top of hil.serialport's `unplug SECONDS` and `stats`).

    mt HEX              queue an MT message (1..270 bytes) in the gateway mailbox; ring if enabled
    peer ID LAT LON     a team unit's 0x03 position report (now, course and speed unknown), queued as `mt`
    received            MO messages that reached the gateway: [{ts, momsn, hex, length}]
    fail CODE [COUNT]   the next COUNT sessions (default 1) answer MO status CODE
    fail clear          forget failures not yet used
    csq N               signal 0..5 (+CSQ/+CSQF; at 0 sessions answer MO status 32)
    noise HEX           raw bytes from the modem to the host, now
    ring                repeat the ring alert if MT messages wait (the gateway repeats them too)
"""
from __future__ import annotations

import time
from typing import Any

from ..serialport import Handler
from .modem import Modem
from .network import Network
from .report import check_id, parse_lat_lon, position_report

USAGE = {"mt": "mt HEX", "peer": "peer ID LAT LON", "fail": "fail CODE [COUNT] | fail clear", "csq": "csq N (0..5)",
         "noise": "noise HEX"}


def _hex(args: list[str], usage: str) -> bytes:
    if len(args) != 1:
        raise ValueError(f"usage: {usage}")
    try:
        return bytes.fromhex(args[0])
    except ValueError:
        raise ValueError(f"not hex: {args[0][:40]!r}") from None


class Controls:
    def __init__(self, network: Network, modem: Modem) -> None:
        self.network = network
        self.modem = modem

    def handlers(self) -> dict[str, Handler]:
        return {"mt": self.mt, "peer": self.peer, "received": self.received, "fail": self.fail,
                "csq": self.csq, "noise": self.noise, "ring": self.ring}

    def deliver(self, data: bytes) -> dict[str, Any]:
        """An MT message into the gateway mailbox, then the ring alert (if enabled); ValueError if refused."""
        mtmsn = self.network.queue_mt(data)
        rang = self.modem.ring()
        return {"ok": True, "mtmsn": mtmsn, "length": len(data), "mailbox": len(self.network.mailbox), "ring": rang}

    async def mt(self, args: list[str]) -> dict[str, Any]:
        return self.deliver(_hex(args, USAGE["mt"]))

    async def peer(self, args: list[str]) -> dict[str, Any]:
        if len(args) != 3:
            raise ValueError(f"usage: {USAGE['peer']}")
        unit_id = check_id(args[0])
        lat, lon = parse_lat_lon(args[1], args[2])
        ts = int(time.time())
        return {**self.deliver(position_report(unit_id, ts, lat, lon)), "id": unit_id, "ts": ts}

    async def received(self, args: list[str]) -> dict[str, Any]:
        if args:
            raise ValueError("usage: received")
        return {"ok": True, "messages": list(self.network.received)}

    async def fail(self, args: list[str]) -> dict[str, Any]:
        if args == ["clear"]:
            self.network.failures.clear()
        elif 1 <= len(args) <= 2:
            self.network.inject(int(args[0]), int(args[1]) if len(args) == 2 else 1)
        else:
            raise ValueError(f"usage: {USAGE['fail']}")
        return {"ok": True, "pending": list(self.network.failures)}

    async def csq(self, args: list[str]) -> dict[str, Any]:
        if len(args) != 1 or not args[0].isdigit() or not 0 <= int(args[0]) <= 5:
            raise ValueError(f"usage: {USAGE['csq']}")
        self.network.csq = int(args[0])
        return {"ok": True, "csq": self.network.csq}

    async def noise(self, args: list[str]) -> dict[str, Any]:
        data = _hex(args, USAGE["noise"])
        return {"ok": True, "bytes": len(data), "sent": self.modem.send_raw(data)}

    async def ring(self, args: list[str]) -> dict[str, Any]:
        if args:
            raise ValueError("usage: ring")
        rang = bool(self.network.mailbox) and self.modem.ring()
        return {"ok": True, "ring": rang, "mailbox": len(self.network.mailbox)}
