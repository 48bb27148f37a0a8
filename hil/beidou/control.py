"""Control-port commands of the BeiDou simulator (on top of the base's `unplug SECONDS` and `stats`).

    received [clear]          what the host sent and the terminal accepted
    msg SENDER TEXT...        a team card sends a text (GB18030, as code)
    pos SENDER LAT LON        a team card sends a compact 0x01 position report now
    noise HEX                 raw bytes on the line
    cut SENTENCE [KEEP]       a sentence cut mid-way (or after KEEP bytes), no terminator
    inhibit N                 transmit inhibit state 0-3 (0: may transmit)
    beam P1,...               beam powers (2.1: 0-4 for up to 10 beams; bds3: dBHz 0-99)
    unplug SECONDS            pull the cable; back after SECONDS under a new /dev/pts
    stats                     counters of the line, the card and the sentences
"""

from __future__ import annotations

import time
from typing import Any

from . import nmea
from .card import valid_address
from .report import short_position
from .terminal import Terminal

Reply = dict[str, Any]


class Commands:
    def __init__(self, terminal: Terminal) -> None:
        self.t = terminal

    def handlers(self) -> dict[str, Any]:
        return {"received": self.received, "msg": self.msg, "pos": self.pos, "noise": self.noise,
                "cut": self.cut, "inhibit": self.inhibit, "beam": self.beam, "help": self.help}

    async def help(self, args: list[str]) -> Reply:
        return {"ok": True, "help": [line.strip() for line in (__doc__ or "").splitlines()[2:] if line.strip()]}

    async def received(self, args: list[str]) -> Reply:
        if args not in ([], ["clear"]):
            return {"ok": False, "error": "usage: received [clear]"}
        messages = list(self.t.messages)
        if args:
            self.t.messages.clear()
        return {"ok": True, "messages": messages}

    @staticmethod
    def _sender(text: str) -> str:
        if not valid_address(text):
            raise ValueError(f"sender must be a 7-digit card address, got {text!r}")
        return text

    async def msg(self, args: list[str]) -> Reply:
        if len(args) < 2:
            return {"ok": False, "error": "usage: msg SENDER TEXT..."}
        data = " ".join(args[1:]).encode("gb18030")
        return self._deliver(self._sender(args[0]), data)

    async def pos(self, args: list[str]) -> Reply:
        if len(args) != 3:
            return {"ok": False, "error": "usage: pos SENDER LAT LON"}
        data = short_position(int(time.time()), float(args[1]), float(args[2]))
        return self._deliver(self._sender(args[0]), data)

    def _deliver(self, sender: str, data: bytes) -> Reply:
        sent = self.t.deliver(sender, data)
        return {"ok": True, "sent": sent, "hex": data.hex().upper()}

    async def noise(self, args: list[str]) -> Reply:
        if len(args) != 1:
            return {"ok": False, "error": "usage: noise HEX"}
        data = bytes.fromhex(args[0])
        return {"ok": True, "sent": self.t.raw(data), "bytes": len(data)}

    async def cut(self, args: list[str]) -> Reply:
        if len(args) not in (1, 2):
            return {"ok": False, "error": "usage: cut SENTENCE [KEEP]"}
        text = args[0].removeprefix("$")
        line = ("$" + text).encode("ascii") if "*" in text else nmea.sentence(text)[:-2]
        keep = int(args[1]) if len(args) == 2 else len(line) // 2
        if not 0 < keep < len(line):
            raise ValueError(f"KEEP must be 1..{len(line) - 1}")
        return {"ok": True, "sent": self.t.raw(line[:keep]), "text": line[:keep].decode("ascii")}

    async def inhibit(self, args: list[str]) -> Reply:
        if len(args) != 1 or args[0] not in ("0", "1", "2", "3"):
            return {"ok": False, "error": "usage: inhibit N (0-3)"}
        self.t.card.inhibit = int(args[0])
        return {"ok": True, "inhibit": self.t.card.inhibit}

    async def beam(self, args: list[str]) -> Reply:
        top = self.t.dialect.max_power
        if len(args) != 1:
            return {"ok": False, "error": f"usage: beam P1,... (each 0-{top})"}
        powers = [int(p) for p in args[0].split(",")]
        if not 1 <= len(powers) <= 10 or not all(0 <= p <= top for p in powers):
            raise ValueError(f"1-10 powers, each 0-{top}")
        if self.t.dialect.name == "2.1":
            powers += [0] * (10 - len(powers))  # BSI always carries 10 beams
        self.t.beams = powers
        return {"ok": True, "beams": powers, "locked": self.t.locked}
