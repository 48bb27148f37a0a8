"""The radio's AT command set (the subset docs/serial-protocols.md names), with its state.

`Commands.run(unit)` returns the response lines, the final result code last
(`OK`, `ERROR` or `+CME ERROR: <n>`), or nothing for a line without `AT`.
Unknown commands answer `ERROR`; a known command with bad arguments answers
`+CME ERROR: <n>` with the EN 300 392-5 / 27.007 numbers below.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from .peiinput import Unit

CME_NOT_ALLOWED = 3
CME_INVALID_CHARS = 25      # the PDU is not hex
CME_NO_SERVICE = 30         # not registered
CME_RANGE = 34              # parameter value out of range (e.g. bit count vs PDU)
CME_SYNTAX = 35
MAX_SDS_BITS = 2047         # SDS type 4
MAX_SSI = 2**24 - 1
_HEX = re.compile(r"[0-9A-Fa-f]*")
_EXTENDED = re.compile(r"\+([A-Z]+)(=\?|=|\?)?(.*)", re.DOTALL)


class CmeError(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(f"+CME ERROR: {code}")
        self.code = code


class AtError(Exception):
    """Plain `ERROR`: a command the radio does not know or cannot parse."""


@dataclass
class RadioState:
    issi: int
    echo: bool = True
    routes: dict[tuple[int, int], int] = field(default_factory=dict)  # (layer 1, layer 2) -> service profile
    ctsds: list[int] | None = None
    csq: int = 25
    ber: int = 99
    creg_n: int = 0
    creg: int = 1
    cme_next: int | None = None

    def routed(self, layer1: int, layer2: int) -> bool:
        """Profile 1 (TE) or 2 (MT and TE) sends that SDS type to the PEI; 0 (MT only) keeps it."""
        return self.routes.get((layer1, layer2), 0) in (1, 2)

    @property
    def registered(self) -> bool:
        return self.creg in (1, 5)


@dataclass
class Outgoing:
    """An SDS the host asked the radio to send."""

    to: int
    bits: int
    pdu_hex: str
    pdu: bytes


Sender = Callable[[Outgoing], int]  # records/sends it, returns the message reference


def _ints(text: str, low: int, high: int) -> list[int]:
    parts = [p.strip() for p in text.split(",")]
    if not low <= len(parts) <= high or not all(p.isdigit() for p in parts):
        raise CmeError(CME_SYNTAX)
    return [int(p) for p in parts]


def split_commands(body: str) -> list[str]:
    """`E0`, `+CSQ?;+CREG?` → one entry per command (basic ones may run together)."""
    out: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c in " ;":
            i += 1
        elif c == "+":
            j = body.find(";", i)
            j = len(body) if j < 0 else j
            out.append(body[i:j].strip())
            i = j
        elif c.isalpha():
            j = i + 1
            while j < len(body) and body[j].isdigit():
                j += 1
            out.append(body[i:j])
            i = j
        else:
            raise AtError(body)
    return out


class Commands:
    def __init__(self, state: RadioState, send: Sender) -> None:
        self.state = state
        self._send = send
        self.count = 0
        self.errors = 0

    def run(self, unit: Unit) -> list[str]:
        if not unit.line and not unit.overflow:
            return []
        self.count += 1
        if unit.cancelled and self.state.cme_next is None:
            return ["OK"]  # ESC: the message is not sent
        lines = self._run(unit)
        if lines[-1] != "OK":
            self.errors += 1
        return lines

    def _run(self, unit: Unit) -> list[str]:
        if self.state.cme_next is not None:
            code, self.state.cme_next = self.state.cme_next, None
            return [f"+CME ERROR: {code}"]
        if unit.overflow or unit.timed_out:
            return ["ERROR"]
        info: list[str] = []
        try:
            for cmd in split_commands(unit.line[2:]):
                info += self._one(cmd.upper(), unit.pdu)
        except CmeError as exc:
            return [f"+CME ERROR: {exc.code}"]
        except AtError:
            return ["ERROR"]
        return [*info, "OK"]

    def _one(self, cmd: str, pdu: str | None) -> list[str]:
        s = self.state
        if cmd in ("E", "E0", "E1"):
            s.echo = cmd == "E1"
            return []
        if cmd in ("Z", "Z0"):
            s.echo, s.creg_n, s.cme_next = True, 0, None
            return []
        m = _EXTENDED.fullmatch(cmd)
        if m is None:
            raise AtError(cmd)
        name, op, args = m.group(1).upper(), m.group(2) or "", m.group(3).strip()
        if op == "=?":
            return []  # test form: supported
        handler = {"CTSP": self._ctsp, "CTSDS": self._ctsds, "CNUMF": self._cnumf, "CSQ": self._csq,
                   "CREG": self._creg}.get(name)
        if name == "CMGS":
            if op != "=" or pdu is None:
                raise CmeError(CME_SYNTAX)
            return self._cmgs(args, pdu)
        if handler is None:
            raise AtError(cmd)
        return handler(op, args)

    def _ctsp(self, op: str, args: str) -> list[str]:
        if op == "?":
            return [f"+CTSP: {p},{l1},{l2}" for (l1, l2), p in sorted(self.state.routes.items())]
        if op != "=":
            raise CmeError(CME_SYNTAX)
        v = _ints(args, 3, 5)  # <service profile>,<service layer 1>,<service layer 2>[,<AI mode>,<link id>]
        if v[0] > 2 or v[1] > 15 or v[2] > 255:
            raise CmeError(CME_RANGE)
        self.state.routes[(v[1], v[2])] = v[0]
        return []

    def _ctsds(self, op: str, args: str) -> list[str]:
        if op == "?":
            ctsds = self.state.ctsds
            return [f"+CTSDS: {','.join(map(str, ctsds))}"] if ctsds else []
        if op != "=":
            raise CmeError(CME_SYNTAX)
        v = _ints(args, 1, 6)  # <AI service>,<called party identity type>,<area>,<e2e>,<access priority>
        if v[0] > 15:
            raise CmeError(CME_RANGE)
        self.state.ctsds = v
        return []

    def _cnumf(self, op: str, args: str) -> list[str]:
        if op not in ("?", "") or args:
            raise CmeError(CME_SYNTAX)
        return [f"+CNUMF: 0,{self.state.issi}"]

    def _csq(self, op: str, args: str) -> list[str]:
        if op not in ("?", "") or args:  # the spec polls `AT+CSQ?`; 27.007 writes `AT+CSQ`
            raise CmeError(CME_SYNTAX)
        return [f"+CSQ: {self.state.csq},{self.state.ber}"]

    def _creg(self, op: str, args: str) -> list[str]:
        if op == "?":
            return [f"+CREG: {self.state.creg_n},{self.state.creg}"]
        if op != "=":
            raise CmeError(CME_SYNTAX)
        (n,) = _ints(args, 1, 1)
        if n > 2:
            raise CmeError(CME_RANGE)
        self.state.creg_n = n
        return []

    def _cmgs(self, args: str, pdu_text: str) -> list[str]:
        ssi, bits = _ints(args, 2, 2)
        if not 1 <= ssi <= MAX_SSI or not 1 <= bits <= MAX_SDS_BITS:
            raise CmeError(CME_RANGE)
        hex_text = pdu_text.strip()
        if not hex_text or len(hex_text) % 2 or not _HEX.fullmatch(hex_text):
            raise CmeError(CME_INVALID_CHARS)
        pdu = bytes.fromhex(hex_text)
        if not len(pdu) * 8 - 7 <= bits <= len(pdu) * 8:  # the hex carries ceil(bits/8) bytes
            raise CmeError(CME_RANGE)
        if not self.state.registered:
            raise CmeError(CME_NO_SERVICE)
        ref = self._send(Outgoing(to=ssi, bits=bits, pdu_hex=hex_text, pdu=pdu))
        return [f"+CMGS: 0,{ref}"]
