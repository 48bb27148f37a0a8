"""The terminal's user card: identity, capacity, service interval, and the send verdict."""

from __future__ import annotations

import math
from dataclasses import dataclass

CAPACITY_BITS = {1: 110, 2: 408, 3: 628, 4: 848}
MAX_CAPACITY_BITS = max(CAPACITY_BITS.values())
BROADCAST_ADDRESS = "0000000"  # the card has no broadcast group [simulator's choice]
USER_TYPE = "0"
CRYPTO = "0"  # no encryption module
SUBORDINATES = "0"

# FKI reasons (BDS-3); 0 when accepted, or refused for a reason the list has no number for.
REASON_NONE = 0
REASON_INTERVAL = 1
REASON_INHIBIT = 2
REASON_POWER = 4


def valid_address(text: str) -> bool:
    return len(text) == 7 and text.isdigit()


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    interval_ok: bool
    wait_s: int  # whole seconds until the service interval has passed (0 if it has)
    inhibit: int  # the terminal's transmit inhibit state, 0-3
    reason: int  # BDS-3 FKI reason
    problem: str  # "" when accepted; else inhibit | no-signal | interval | format | capacity


@dataclass
class Card:
    address: str
    level: int
    interval_s: int
    inhibit: int = 0
    last_send: float | None = None  # monotonic time of the last *accepted* send

    @property
    def capacity_bits(self) -> int:
        return CAPACITY_BITS[self.level]

    @property
    def serial(self) -> str:
        return "9" + self.address  # 8 digits, distinct per card [simulator's choice]

    def wait(self, now: float) -> float:
        if self.last_send is None:
            return 0.0
        return max(0.0, self.last_send + self.interval_s - now)

    def submit(self, code: str | None, now: float, locked: bool) -> Verdict:
        """Judge a send of `code` (hex digits; None if the sentence was malformed); record it if accepted.

        Every check is made so the 2.1 FKI can report them all; the BDS-3 reason
        is the first failing one in the order inhibit, power, interval, content.
        """
        wait = self.wait(now)
        wait_s = math.ceil(wait) if wait > 0 else 0
        interval_ok = wait_s == 0
        content = ""
        if code is None or not code:
            content = "format"
        elif len(code) * 4 > self.capacity_bits:
            content = "capacity"
        for problem, failed, reason in (("inhibit", self.inhibit != 0, REASON_INHIBIT),
                                        ("no-signal", not locked, REASON_POWER),
                                        ("interval", not interval_ok, REASON_INTERVAL),
                                        (content, bool(content), REASON_NONE)):
            if failed:
                return Verdict(False, interval_ok, wait_s, self.inhibit, reason, problem)
        self.last_send = now
        return Verdict(True, True, 0, self.inhibit, REASON_NONE, "")
