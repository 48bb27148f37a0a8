"""The two sentence dialects of a BeiDou RDSS terminal: 2.1 (ICA/ICI, TXA, TXR, BSI) and BDS-3 (ICR/ICP, TCQ, TCI, PWI).

Both answer a send with `$BDFKI`, in different layouts; `parse_feedback`
turns either into one `Feedback` with the BDS-3 reason numbers (2.1 says only
"interval ok" and an inhibit state, so its reasons are inferred from those).
Parsers raise ValueError for a sentence of the right name but the wrong shape.
"""

from __future__ import annotations

import math

import string
from dataclasses import dataclass
from typing import ClassVar

from drivers.beidou_rdss.sentence import build

CAPACITY_BITS = {1: 110, 2: 408, 3: 628, 4: 848}
HOST = "CC"

# FKI reasons (BDS-3 numbering; 0: refused without one of these)
UNSPECIFIED, INTERVAL, INHIBIT, SILENCE, NOT_LOCKED, NO_CARD, NO_PERMISSION = range(7)
REASONS = {UNSPECIFIED: "refused without a reason", INTERVAL: "service interval not reached",
           INHIBIT: "transmit inhibited", SILENCE: "radio silence", NOT_LOCKED: "power not locked",
           NO_CARD: "no card", NO_PERMISSION: "no permission"}
TRANSIENT = frozenset({UNSPECIFIED, INHIBIT, SILENCE, NOT_LOCKED})  # retried with backoff
_HEX = frozenset(string.hexdigits)


@dataclass(frozen=True)
class CardInfo:
    address: str
    serial: str
    interval_s: int
    level: int

    @property
    def capacity_bits(self) -> int:
        return CAPACITY_BITS[self.level]

    @property
    def capacity_bytes(self) -> int:
        return self.capacity_bits // 8


@dataclass(frozen=True)
class Feedback:
    accepted: bool
    reason: int  # one of REASONS (UNSPECIFIED when accepted)
    wait_s: float  # what the terminal says remains of the service interval

    @property
    def why(self) -> str:
        return REASONS.get(self.reason, f"reason {self.reason}")


@dataclass(frozen=True)
class Received:
    sender: str
    code: str  # the content as hex digits


def _card(fields: tuple[str, ...]) -> CardInfo:
    if len(fields) < 6:
        raise ValueError(f"card information has {len(fields)} fields, expected at least 6")
    addr, serial, _broadcast, _user_type, interval, level = fields[:6]
    if not addr.isdigit():
        raise ValueError(f"card address {addr!r} is not digits")
    lvl = int(level)
    if lvl not in CAPACITY_BITS:
        raise ValueError(f"card level {level!r} is not 1-4")
    value = float(interval)
    if not (math.isfinite(value) and 0 <= value <= 86400):
        raise ValueError(f"service interval {interval!r} out of range")
    seconds = int(value)
    if not 0 <= seconds <= 86400:
        raise ValueError(f"service interval {interval!r} out of range")
    return CardInfo(addr, serial, seconds, lvl)


def _message(sender: str, code: str) -> Received:
    if not sender.isdigit():
        raise ValueError(f"sender {sender!r} is not a card address")
    if not code or len(code) % 2 or not _HEX.issuperset(code):
        raise ValueError("content is not whole bytes of hex digits")
    return Received(sender, code.upper())


MAX_WAIT_S = 3600.0  # no card's service interval is longer: a bigger "wait" is a garbled field


def _wait(text: str) -> float:
    """The terminal's remaining wait, bounded (a garbled `inf` or `1e9` must not stall sending for good)."""
    if not text.strip():
        return 0.0
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"wait {text!r} is not a number of seconds")
    return min(MAX_WAIT_S, max(0.0, value))


class Dialect21:
    name: ClassVar[str] = "2.1"
    card_cmd, send_cmd, message_cmd, beam_cmd = "ICI", "TXA", "TXR", "BSI"

    def card_query(self) -> bytes:
        return build(HOST, "ICA", ["0", "00"])

    def send(self, address: str, code: str) -> bytes:
        return build(HOST, "TXA", [address, "1", "1", code])  # normal message, code (hex) content

    def parse_card(self, fields: tuple[str, ...]) -> CardInfo:
        return _card(fields)

    def parse_feedback(self, fields: tuple[str, ...]) -> Feedback | None:
        """`TXA,<Y|N>,<interval ok Y|N>,<inhibit 0-3>,<wait s>`; None for feedback on another command."""
        if not fields or fields[0] != "TXA":
            return None
        if len(fields) < 5 or fields[1] not in ("Y", "N"):
            raise ValueError("TXA feedback is not TXA,Y|N,Y|N,inhibit,wait")
        if fields[1] == "Y":
            return Feedback(True, UNSPECIFIED, 0.0)
        wait = _wait(fields[4])
        if fields[2] == "N":
            return Feedback(False, INTERVAL, wait)
        if fields[3] not in ("", "0"):
            return Feedback(False, INHIBIT, wait)
        return Feedback(False, UNSPECIFIED, wait)

    def parse_message(self, fields: tuple[str, ...]) -> Received:
        """`<type>,<sender>,<encoding>,<hhmm>,<hex>`"""
        if len(fields) < 5:
            raise ValueError(f"TXR has {len(fields)} fields, expected 5")
        return _message(fields[1], fields[4])

    def parse_beams(self, fields: tuple[str, ...]) -> list[int]:
        """`<response beam>,<timing beam>,<p1>,…,<p10>` (power 0-4)."""
        if len(fields) < 3:
            raise ValueError("BSI carries no beam power")
        return [int(p) if p else 0 for p in fields[2:12]]


class DialectBds3:
    name: ClassVar[str] = "bds3"
    card_cmd, send_cmd, message_cmd, beam_cmd = "ICP", "TCQ", "TCI", "PWI"

    def card_query(self) -> bytes:
        return build(HOST, "ICR", ["0", "00"])

    def send(self, address: str, code: str) -> bytes:
        return build(HOST, "TCQ", [address, "2", "1", "2", code, "0"])  # code content, no repeat

    def parse_card(self, fields: tuple[str, ...]) -> CardInfo:
        return _card(fields)

    def parse_feedback(self, fields: tuple[str, ...]) -> Feedback | None:
        """`<hhmmss>,TCQ,<Y|N>,<reason 0-6>,<remaining s>`; None for feedback on another command."""
        if len(fields) < 2 or fields[1] != "TCQ":
            return None
        if len(fields) < 5 or fields[2] not in ("Y", "N"):
            raise ValueError("TCQ feedback is not time,TCQ,Y|N,reason,remaining")
        if fields[2] == "Y":
            return Feedback(True, UNSPECIFIED, 0.0)
        reason = int(fields[3]) if fields[3] else UNSPECIFIED
        return Feedback(False, reason if reason in REASONS else UNSPECIFIED, _wait(fields[4]))

    def parse_message(self, fields: tuple[str, ...]) -> Received:
        """`<sender>,<recipient>,<freq>,<encoding>,<hhmmss>,<hex>`"""
        if len(fields) < 6:
            raise ValueError(f"TCI has {len(fields)} fields, expected 6")
        return _message(fields[0], fields[5])

    def parse_beams(self, fields: tuple[str, ...]) -> list[int]:
        """`<hhmmss.ss>,<n>,<beam>,<power dBHz>,…` → powers in the order given."""
        if len(fields) < 2:
            raise ValueError("PWI carries no beam count")
        n = int(fields[1])
        pairs = fields[2:2 + 2 * n]
        if n < 0 or len(pairs) != 2 * n:
            raise ValueError(f"PWI announces {fields[1]} beams but carries {len(fields[2:]) // 2}")
        return [int(p) if p else 0 for p in pairs[1::2]]


Dialect = Dialect21 | DialectBds3
DIALECTS: dict[str, type[Dialect21] | type[DialectBds3]] = {"2.1": Dialect21, "bds3": DialectBds3}


def dialect_name(value: object) -> str | None:
    """The dialect an option names ("2.1", or 2.1 written unquoted in YAML, or "bds3"), or None."""
    text = str(value) if isinstance(value, str | float) and not isinstance(value, bool) else ""
    return text if text in DIALECTS else None
