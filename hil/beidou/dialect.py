"""The two sentence dialects: what the host asks, and what the terminal says back.

2.1: ICA → ICI, TXA → FKI, TXR received, BSI beams.
BDS-3: ICR → ICP, TCQ → FKI, TCI received, PWI beams.
Each method returns a sentence *body* (no `$`, checksum or CRLF).
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from datetime import datetime

from .card import BROADCAST_ADDRESS, CRYPTO, SUBORDINATES, USER_TYPE, Card, Verdict, valid_address

HEX = frozenset(string.hexdigits)
BEAMS_21 = [2, 4, 3, 1, 0, 0, 0, 0, 0, 0]  # 10 beams, power 0-4
BEAMS_BDS3 = [44, 47, 41, 0, 0, 0, 0, 0, 0, 0]  # 10 beams, C/N0 dBHz


def is_code(text: str) -> bool:
    return all(c in HEX for c in text)


@dataclass(frozen=True)
class Send:
    dest: str
    code: str | None  # None: the sentence has the send's name but not its form


class Dialect21:
    name = "2.1"
    query, send, received = "ICA", "TXA", "TXR"
    foreign = frozenset({"ICR", "TCQ"})
    default_beams = BEAMS_21
    max_power = 4

    def card_info(self, card: Card) -> str:
        return (f"BDICI,{card.address},{card.serial},{BROADCAST_ADDRESS},{USER_TYPE},{card.interval_s},"
                f"{card.level},{CRYPTO},{SUBORDINATES}")

    def is_query(self, fields: list[str]) -> bool:
        return len(fields) == 2 and fields[0] == "0"  # 0: this card (1 would list a commander's subordinates)

    def parse_send(self, fields: list[str]) -> Send:
        # <7-digit addr>,<0 express|1 normal>,<0 Chinese|1 code|2 mixed>,<content>
        if len(fields) != 4:
            return Send(fields[0] if fields else "", None)
        dest, kind, encoding, content = fields
        ok = valid_address(dest) and kind in ("0", "1") and encoding == "1" and is_code(content)
        return Send(dest, content if ok else None)

    def feedback(self, v: Verdict, now: datetime) -> str:
        return f"BDFKI,TXA,{'Y' if v.accepted else 'N'},{'Y' if v.interval_ok else 'N'},{v.inhibit},{v.wait_s}"

    def message(self, sender: str, recipient: str, code: str, now: datetime) -> str:
        return f"BDTXR,1,{sender},1,{now:%H%M},{code}"

    def beams(self, powers: list[int], now: datetime) -> str:
        order = sorted(range(len(powers)), key=lambda i: -powers[i])
        live = [i + 1 for i in order if powers[i] > 0]
        response = live[0] if live else 0
        timing = live[1] if len(live) > 1 else response
        return f"BDBSI,{response},{timing}," + ",".join(str(p) for p in powers)


class DialectBds3:
    name = "bds3"
    query, send, received = "ICR", "TCQ", "TCI"
    foreign = frozenset({"ICA", "TXA"})
    default_beams = BEAMS_BDS3
    max_power = 99

    def card_info(self, card: Card) -> str:
        return (f"BDICP,{card.address},{card.serial},{BROADCAST_ADDRESS},{USER_TYPE},{card.interval_s},"
                f"{card.level},{CRYPTO}")

    def is_query(self, fields: list[str]) -> bool:
        return len(fields) == 2 and fields[0] == "0"

    def parse_send(self, fields: list[str]) -> Send:
        # <dest>,<freq>,<ack 1|2>,<1 Chinese|2 code|3 mixed>,<content>,<repeat>
        if len(fields) != 6:
            return Send(fields[0] if fields else "", None)
        dest, freq, ack, encoding, content, repeat = fields
        ok = (valid_address(dest) and freq.isdigit() and ack in ("1", "2") and encoding == "2"
              and is_code(content) and repeat.isdigit())
        return Send(dest, content if ok else None)

    def feedback(self, v: Verdict, now: datetime) -> str:
        return f"BDFKI,{now:%H%M%S},TCQ,{'Y' if v.accepted else 'N'},{v.reason},{v.wait_s}"

    def message(self, sender: str, recipient: str, code: str, now: datetime) -> str:
        return f"BDTCI,{sender},{recipient},2,2,{now:%H%M%S},{code}"

    def beams(self, powers: list[int], now: datetime) -> str:
        pairs = ",".join(f"{i + 1},{p}" for i, p in enumerate(powers))
        return f"BDPWI,{now:%H%M%S}.{now.microsecond // 10000:02d},{len(powers)},{pairs}"


Dialect = Dialect21 | DialectBds3
DIALECTS: dict[str, type[Dialect21] | type[DialectBds3]] = {"2.1": Dialect21, "bds3": DialectBds3}
