"""The terminal's state: registration, PDP contexts, C/N0, GPS — and what changes it.

Registration and the PDP contexts are scripted independently (``reg 2`` does not
drop the contexts, ``reg 1`` does not restore them), so a test can put the
terminal in any combination; the link is up when registered (1 home, 5 roaming)
and a context is active. The driver's own ``AT+CGACT=1,<cid>`` succeeds only
while registered, as on a real terminal.
"""
from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

REGISTERED = (1, 5)
DEFAULT_APN = "BGAN.INMARSAT.COM"
MAX_CID = 11  # BGAN terminals offer up to 11 contexts


@dataclass
class Context:
    cid: int
    apn: str = DEFAULT_APN
    active: bool = False

    @property
    def address(self) -> str:
        return f"161.30.{180 + self.cid // 256}.{10 + self.cid % 256}"


class Terminal:
    def __init__(self, seed: int | None = None) -> None:
        self.rng = random.Random(seed)
        self.reg = 1
        self.contexts: dict[int, Context] = {1: Context(1, active=True)}
        self.cn0 = 56.0  # dBHz, a good BGAN signal; each reading adds a little noise
        self.gps: tuple[int, float, float] = (3, 52.21154, -0.09521)  # fix 0-3, lat, lon
        self.on_reg_change: Callable[[int], None] | None = None  # sessions send +CGREG: <stat> unsolicited

    # ---------------------------------------------------------------- scripted

    def set_reg(self, stat: int) -> None:
        if not 0 <= stat <= 5:
            raise ValueError("registration status must be 0..5")
        changed, self.reg = stat != self.reg, stat
        if changed and self.on_reg_change is not None:
            self.on_reg_change(stat)

    def set_pdp(self, cid: int, active: bool) -> None:
        check_cid(cid)
        self.contexts.setdefault(cid, Context(cid)).active = active

    def set_cn0(self, value: float) -> None:
        if not 0 <= value <= 100:
            raise ValueError("C/N0 must be 0..100 dBHz")
        self.cn0 = value

    def set_gps(self, fix: int, lat: float, lon: float) -> None:
        if not 0 <= fix <= 3 or not -90 <= lat <= 90 or not -180 <= lon <= 180:
            raise ValueError("gps FIX(0-3) LAT(-90..90) LON(-180..180)")
        self.gps = (fix, lat, lon)

    # ---------------------------------------------------------------- readings

    @property
    def registered(self) -> bool:
        return self.reg in REGISTERED

    @property
    def link_up(self) -> bool:
        return self.registered and any(c.active for c in self.contexts.values())

    def cn0_reading(self) -> float:
        if self.cn0 <= 0:
            return 0.0
        return round(max(0.0, self.cn0 + self.rng.gauss(0.0, 0.3)), 1)

    def describe(self) -> dict[str, Any]:
        return {"reg": self.reg, "link_up": self.link_up, "cn0": self.cn0,
                "gps": {"fix": self.gps[0], "lat": self.gps[1], "lon": self.gps[2]},
                "pdp": {str(c.cid): {"apn": c.apn, "active": c.active} for c in sorted_contexts(self)}}


def check_cid(cid: int) -> int:
    if not 1 <= cid <= MAX_CID:
        raise ValueError(f"cid must be 1..{MAX_CID}")
    return cid


def sorted_contexts(t: Terminal) -> list[Context]:
    return [t.contexts[cid] for cid in sorted(t.contexts)]
